"""Tiny random models of every architecture family TransformerLens (3.9) builds as a ``HookedTransformer``.

Each family starts from TransformerLens's *own* config conversion, so the tiny model carries exactly the
features TL sets for that architecture (parallel attention + MLP, partial rotary, ALiBi, grouped-query
attention, sliding windows, soft-caps, pre+post norms, qk-norm, mixture of experts, ...):

- for architectures TL converts from a Hugging Face config, a default ``transformers`` config of that
  architecture is written to a temporary directory and passed to
  ``transformer_lens.loading_from_pretrained.convert_hf_model_config`` (offline: it only reads the file);
- for architectures TL recognises by model name (Llama 3.2 with its rotary scaling, Gemma 1/2/3), TL's
  config of a named checkpoint (``google/gemma-2-2b``, ...) is used, which TL writes without the hub;
- for TL's own model families that are stored as TL configs on the hub (shortformer, SoLU, attention-only),
  the config is written here with the same fields.

`shrink` then maps the full-size config to a tiny one (2-6 layers, d_model 64, 4 heads of 16, a
``d_vocab``-sized vocabulary) while keeping every architectural feature: the ratio of query to key-value
heads (one kv head stays one), the rotary fraction, a local/global layer pattern long enough to contain
both kinds, a sliding window shorter than the check prompts, a few experts. `build_family` returns a
randomly initialised ``HookedTransformer`` with random biases and norm weights (zero biases and unit
norms would hide bugs in the identities `interp.check` tests).

    model = build_family("gemma-2")
    names = list(FAMILIES)
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from unittest import mock
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

TINY = dict(d_model=64, n_heads=4, d_head=16, d_mlp=128)
TINY_VOCAB = 512
TINY_CTX = 64
TINY_WINDOW = 5  # shorter than the check prompts, so sliding-window layers really drop keys


@dataclass(frozen=True)
class Family:
    """One architecture family: how to get TL's full-size config, and what it exercises."""

    name: str
    features: str
    source: str  # "hf:<transformers config class>", "tl:<official TL model name>" or "hand"
    hf_overrides: tuple[tuple[str, Any], ...] = ()
    hand: Callable[[], dict] | None = None


def _shortformer() -> dict:
    # TL's NeelNanda shortformer models (attn-only-*-shortformer...): positions enter Q and K only.
    return dict(n_layers=2, d_model=512, n_heads=8, d_head=64, d_mlp=2048, n_ctx=1024, d_vocab=48262,
                act_fn="gelu", normalization_type="LN", positional_embedding_type="shortformer",
                original_architecture="neel")  # fmt: skip


def _solu() -> dict:
    return dict(n_layers=2, d_model=512, n_heads=8, d_head=64, d_mlp=2048, n_ctx=1024, d_vocab=48262,
                act_fn="solu_ln", normalization_type="LN", positional_embedding_type="standard",
                original_architecture="neel")  # fmt: skip


def _attn_only() -> dict:
    return dict(n_layers=2, d_model=512, n_heads=8, d_head=64, n_ctx=1024, d_vocab=48262, attn_only=True,
                normalization_type="LN", positional_embedding_type="standard", original_architecture="neel")  # fmt: skip


def _qwen1() -> dict:
    # Qwen-1 (QWenLMHeadModel, remote code; TL's conversion needs its hub config): TL's fields for it.
    # A short training length puts the check prompts past it, where dynamic NTK and log-n scaling act.
    return dict(n_layers=2, d_model=2048, n_heads=16, d_head=128, d_mlp=5504, n_ctx=2048, d_vocab=151936,
                act_fn="silu", normalization_type="RMS", positional_embedding_type="rotary", rotary_dim=128,
                final_rms=True, gated_mlp=True, use_dynamic_ntk_rope=True, use_logn_attn=True,
                train_seq_length=8, original_architecture="QWenLMHeadModel")  # fmt: skip


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("gpt2", "absolute positions, LayerNorm, GELU", "hf:GPT2Config"),
        Family("gpt-neo", "alternating global/local (windowed) attention, no attention scaling", "hf:GPTNeoConfig"),
        Family("opt", "absolute positions (offset 2), ReLU", "hf:OPTConfig"),
        Family("gpt-j", "parallel attention+MLP, partial rotary (adjacent pairs)", "hf:GPTJConfig"),
        Family("gpt-neox", "Pythia / GPT-NeoX: parallel attention+MLP, partial rotary", "hf:GPTNeoXConfig"),
        Family("bloom", "ALiBi positions, embedding LayerNorm", "hf:BloomConfig"),
        Family("llama", "RMSNorm, gated SiLU MLP, rotary", "hf:LlamaConfig", (("num_key_value_heads", 8),)),
        Family("llama-3.2", "grouped-query attention, rotary scaled by parts (Llama 3.x)", "tl:meta-llama/Llama-3.2-1B"),
        Family("mistral", "grouped-query attention, sliding-window attention", "hf:MistralConfig"),
        Family("mixtral", "mixture of experts MLP (top-2 of 8)", "hf:MixtralConfig"),
        Family("qwen2", "q/k/v biases, grouped-query attention", "hf:Qwen2Config", (("num_key_value_heads", 8),)),
        Family("qwen3", "qk-norm (RMSNorm on queries and keys)", "hf:Qwen3Config", (("num_key_value_heads", 8),)),
        Family("phi", "parallel attention+MLP, partial rotary, LayerNorm", "hf:PhiConfig",
               (("partial_rotary_factor", 0.5),)),  # fmt: skip
        Family("phi3", "fused qkv / gated MLP (converted), RMSNorm", "hf:Phi3Config"),
        Family("gemma", "embedding scale, GELU gated MLP, one key-value head (MQA)", "tl:google/gemma-2b"),
        Family("gemma-2", "pre+post norms, attention and final-logit soft-caps, local/global layers",
               "tl:google/gemma-2-2b"),  # fmt: skip
        Family("gemma-3", "qk-norm, 5 local : 1 global layers with two rotary bases, pre+post norms",
               "tl:google/gemma-3-1b-pt"),  # fmt: skip
        Family("olmo3", "post-norms only, qk-norm, 3 local : 1 global", "hf:Olmo3Config"),
        Family("olmoe", "mixture of experts (64 experts, top-8), qk-norm", "hf:OlmoeConfig"),
        Family("gpt-oss", "attention sinks, mixture of experts, local/global, YaRN rotary", "hf:GptOssConfig"),
        Family("apertus", "xIELU activation, qk-norm", "hf:ApertusConfig"),
        Family("qwen1", "dynamic-NTK rotary and log-n attention past the training length", "hand", hand=_qwen1),
        Family("shortformer", "shortformer positions (added to queries and keys only)", "hand", hand=_shortformer),
        Family("solu", "SoLU activation with its LayerNorm", "hand", hand=_solu),
        Family("attn-only", "attention-only blocks (no MLP)", "hand", hand=_attn_only),
    ]
}


class FamilyError(ValueError):
    """A family name that does not exist, or one this TransformerLens cannot build."""


@contextlib.contextmanager
def _quiet():
    """TransformerLens / transformers log and print while converting; keep stdout clean (it is the JSON)."""
    level = logging.root.level
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)
        logging.root.setLevel(level)


def tl_config_dict(family: str) -> dict:
    """TransformerLens's full-size config dict for ``family`` (see the module docstring for the sources)."""
    from transformer_lens import loading_from_pretrained as tl_loading
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    if family not in FAMILIES:
        raise FamilyError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    kind, _, what = fam.source.partition(":")
    with _quiet():
        if kind == "hand":
            return fam.hand()  # type: ignore[misc]
        if kind == "tl":
            return convert_hf_model_config(what)
        import transformers

        hf_cfg = getattr(transformers, what)()
        # The architecture name TL dispatches on; transformers' default configs do not set it.
        arch = {"GPT2Config": "GPT2LMHeadModel"}.get(what, what.replace("Config", "ForCausalLM"))
        hf_cfg.architectures = [arch]
        # Attributes TL 3.9 reads that transformers 5 no longer sets on a default config.
        if what == "GPT2Config":
            hf_cfg.n_ctx = hf_cfg.n_positions
        for key, value in fam.hf_overrides:
            setattr(hf_cfg, key, value)
        with tempfile.TemporaryDirectory(prefix="interp-family-") as tmp:
            # TL reads a local directory's config.json through AutoConfig; hand it the in-memory config
            # instead (a saved-and-reloaded config loses attributes TL 3.9 reads, e.g. Phi's rotary fraction).
            # TL picks some architectures by substrings of the path ("llama", "gemma"): keep them out of it.
            path = Path(tmp) / "cfg"
            hf_cfg.save_pretrained(path)
            with mock.patch.object(tl_loading, "AutoConfig", _FixedAutoConfig(hf_cfg)):
                return convert_hf_model_config(str(path))


class _FixedAutoConfig:
    """Stands in for ``transformers.AutoConfig`` inside TL's conversion: returns one given config."""

    def __init__(self, config):
        self.config = config

    def from_pretrained(self, *args, **kwargs):
        return self.config


def _local_global_layers(attn_types: list[str]) -> int:
    """Fewest leading layers containing both local and global attention (the pattern to keep)."""
    kinds = set()
    for i, kind in enumerate(attn_types):
        kinds.add(kind)
        if len(kinds) == 2:
            return max(2, i + 1)
    return 2


def shrink(cfg: dict, d_vocab: int = TINY_VOCAB, n_ctx: int = TINY_CTX) -> dict:
    """A tiny config with every architectural feature of ``cfg`` (see the module docstring)."""
    cfg = dict(cfg)
    old_heads, old_d_head = cfg.get("n_heads", 1), cfg.get("d_head", 64)
    attn_types = cfg.get("attn_types")
    n_layers = _local_global_layers(list(attn_types)) if attn_types else 2
    cfg.update(TINY, n_layers=n_layers, d_vocab=d_vocab, n_ctx=min(cfg.get("n_ctx", n_ctx), n_ctx))
    if cfg.get("attn_only"):
        cfg.pop("d_mlp", None)
    cfg.pop("d_vocab_out", None)
    if attn_types:
        cfg["attn_types"] = list(attn_types[:n_layers])
    if cfg.get("window_size"):
        cfg["window_size"] = TINY_WINDOW
    kv = cfg.get("n_key_value_heads")
    if kv is not None:
        cfg["n_key_value_heads"] = None if kv >= old_heads else (1 if kv == 1 else 2)
    if cfg.get("rotary_dim"):
        frac = cfg["rotary_dim"] / old_d_head
        cfg["rotary_dim"] = max(2, int(round(frac * TINY["d_head"] / 2)) * 2)
    if cfg.get("num_experts"):
        cfg["num_experts"] = 4
        cfg["experts_per_token"] = min(cfg.get("experts_per_token") or 2, 2)
    if cfg.get("attn_scale") and cfg.get("use_attn_scale", True) and old_d_head != TINY["d_head"]:
        # Gemma 2 27B-style explicit scales are sqrt(query_pre_attn_scalar); keep the usual sqrt(d_head).
        cfg["attn_scale"] = TINY["d_head"] ** 0.5
    if cfg.get("NTK_original_ctx_len"):
        cfg["NTK_original_ctx_len"] = max(8, n_ctx // 4)  # so the by-parts scaling acts at these lengths
    return cfg


def family_config(
    family: str, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0,
    d_vocab: int = TINY_VOCAB,
) -> HookedTransformerConfig:
    """The tiny ``HookedTransformerConfig`` of ``family``."""
    cfg = shrink(tl_config_dict(family), d_vocab=d_vocab)
    cfg.update(device=str(device), dtype=dtype, seed=seed, default_prepend_bos=False, tokenizer_prepends_bos=False,
               model_name=f"tiny-{family}", init_weights=True)  # fmt: skip
    for key in ("trust_remote_code", "tokenizer_name"):  # tiny models have no tokenizer to fetch
        cfg.pop(key, None)
    with _quiet():
        return HookedTransformerConfig(**cfg)


def randomise_biases_and_norms(model: HookedTransformer, seed: int = 0, scale: float = 0.1) -> HookedTransformer:
    """Random biases and norm weights near one: zeros / ones would make some identities trivially true."""
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            noise = scale * torch.randn(p.shape, generator=gen, device="cpu").to(device=p.device, dtype=p.dtype)
            if leaf.startswith("b_") or leaf == "b":
                p.copy_(noise)
            elif leaf == "w" and ".ln" in f".{name}":
                p.copy_(1 + noise)
    return model


def build_family(
    family: str, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0,
    d_vocab: int = TINY_VOCAB,
) -> HookedTransformer:
    """A randomly initialised tiny ``HookedTransformer`` of ``family`` (no tokenizer: feed token ids).

    Weights are drawn in float32 on the CPU, then cast and moved: the bfloat16 model of a family is the
    float32 one rounded (TL 3.9's mixture-of-experts layers also ignore ``cfg.dtype`` at construction)."""
    cfg = family_config(family, device="cpu", dtype=torch.float32, seed=seed, d_vocab=d_vocab)
    with _quiet(), torch.device("cpu"):
        model = HookedTransformer(cfg, move_to_device=True)
    randomise_biases_and_norms(model, seed)
    model = model.to(torch.device(device), print_details=False).to(dtype, print_details=False)
    model.eval()
    return model
