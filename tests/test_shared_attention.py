"""Shared-prefix attention equals the full recompute and TransformerLens's own cached attention, on tiny
random models of every attention family it claims (absolute / rotary / ALiBi positions, grouped-query
attention, sliding and alternating local windows, attention softcaps, QK norms, parallel attention + MLP,
split QKV inputs, per-head results), and hooks see what TransformerLens's attention shows them."""

from __future__ import annotations

import math

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.engine import SHARED_PREFIX_ENV, FrozenPrefix, build_prefixes, final_logits
from interp.interventions import add_vectors, patch_heads
from interp.shared_attention import unsupported_reason

TOL = 1e-4
VOCAB = 97
ROTARY = dict(positional_embedding_type="rotary", rotary_dim=8)
LLAMA = dict(normalization_type="RMS", act_fn="silu", gated_mlp=True, final_rms=True, **ROTARY)

FAMILIES = {
    "gpt2": dict(normalization_type="LN", act_fn="gelu"),
    "llama-gqa": dict(n_key_value_heads=2, original_architecture="LlamaForCausalLM", **LLAMA),
    "mistral-sliding-window": dict(
        n_key_value_heads=2, use_local_attn=True, attn_types=["local", "local"], window_size=5, **LLAMA
    ),
    "gemma2-local-global-softcap": dict(
        n_key_value_heads=1, use_local_attn=True, attn_types=["local", "global"], window_size=4,
        attn_scores_soft_cap=2.0, use_normalization_before_and_after=True, rotary_base_local=100, **LLAMA,
    ),  # fmt: skip
    "gemma3-qk-norm": dict(
        n_key_value_heads=2, use_qk_norm=True, use_local_attn=True, attn_types=["global", "local"],
        window_size=3, rotary_base_local=10, **LLAMA,
    ),  # fmt: skip
    "gptj-parallel-adjacent-rotary": dict(
        normalization_type="LN", act_fn="gelu", parallel_attn_mlp=True, rotary_adjacent_pairs=True,
        positional_embedding_type="rotary", rotary_dim=4,
    ),  # fmt: skip
    "neox-parallel-partial-rotary": dict(
        normalization_type="LN", act_fn="gelu", parallel_attn_mlp=True, positional_embedding_type="rotary",
        rotary_dim=4,
    ),  # fmt: skip
    "bloom-alibi": dict(normalization_type="LN", act_fn="gelu", positional_embedding_type="alibi"),
    "gpt-oss-sinks-local": dict(
        n_key_value_heads=2, use_attention_sinks=True, use_local_attn=True, attn_types=["local", "global"],
        window_size=4, **LLAMA,
    ),  # fmt: skip
    "olmo2-full-width-qk-norm": dict(original_architecture="Olmo2ForCausalLM", **LLAMA),
    "clip-qkv-inverse-layer-scale": dict(
        normalization_type="LN", act_fn="gelu", clip_qkv=0.8, scale_attn_by_inverse_layer_idx=True
    ),
}


def _tiny(family: str, **extra) -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=48, d_vocab=VOCAB, n_ctx=64, seed=0, device="cpu",
        **{**FAMILIES[family], **extra},
    )  # fmt: skip
    model = HookedTransformer(cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # large random weights: peaked attention, so masks / windows / softcaps matter
        for name, p in model.named_parameters():
            if name.split(".")[-1].startswith("W_") and p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 1.5 / math.sqrt(p.shape[-2]))
            elif name.split(".")[-1].startswith("b_"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    model.eval()
    return model


def _batch(rows: int = 4, length: int = 13, seed: int = 0):
    """Random tokens, left-padded to unequal lengths (row i loses 2i leading positions)."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, VOCAB, (rows, length), generator=gen)
    mask = torch.ones(rows, length, dtype=torch.long)
    for i in range(rows):
        mask[i, : 2 * i] = 0
        tokens[i, : 2 * i] = 0
    return tokens, mask


def _tl_prefix(model, tokens, mask, monkeypatch) -> FrozenPrefix:
    with monkeypatch.context() as m:
        m.setenv(SHARED_PREFIX_ENV, "0")
        prefix = FrozenPrefix.from_batch(model, tokens, mask)
    assert prefix.shared is None
    return prefix


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    return request.param, _tiny(request.param)


def test_every_family_uses_the_shared_path(family):
    name, model = family
    assert unsupported_reason(model) is None, name
    tokens, mask = _batch()
    assert FrozenPrefix.from_batch(model, tokens, mask).shared is not None


def test_logits_and_interventions_match_full_recompute(family):
    name, model = family
    tokens, mask = _batch()
    cfg = model.cfg
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(cfg.n_layers, cfg.n_heads, cfg.d_head, generator=gen)
    prefix = FrozenPrefix.from_batch(model, tokens, mask)
    with torch.no_grad():
        for hooks in ([], add_vectors(model, torch.randn(cfg.n_layers, cfg.d_model, generator=gen)),
                      patch_heads(model, [0, 1, 1, 0], [3, 0, 2, 1], z)):  # fmt: skip
            full = final_logits(model, tokens, mask, hooks)
            assert (prefix.run(hooks) - full).abs().max() <= TOL, name
        # the prompts really differ in what they attend to (the equality is not vacuous)
        assert (final_logits(model, tokens, mask)[0] - final_logits(model, tokens, mask)[1]).abs().max() > 1e-2


def test_variants_share_one_prefix_and_match_full_recompute(family):
    """Three prompts x (clean + 4 head patches): 15 rows over 3 stored prefixes, equal to 15 full runs."""
    name, model = family
    tokens, mask = _batch(rows=3)
    cfg = model.cfg
    z = torch.randn(cfg.n_layers, cfg.n_heads, cfg.d_head, generator=torch.Generator().manual_seed(3))
    layers = torch.tensor([-1, 0, 0, 1, 1] * 3)
    heads = torch.tensor([0, 0, 3, 1, 2] * 3)
    prefix = FrozenPrefix.from_batch(model, tokens, mask)
    rows = prefix.repeat(5)
    assert rows.nbytes() == prefix.nbytes()  # no copy per variant
    hooks = patch_heads(model, layers, heads, z)
    with torch.no_grad():
        fast = rows.run(hooks)
        full = final_logits(model, tokens.repeat_interleave(5, 0), mask.repeat_interleave(5, 0), hooks)
        resid_pre, clean = prefix.final_resid_pre()
        from_layer_1 = rows.run_from(1, resid_pre[:, 1].repeat_interleave(5, 0), hooks)
    assert (fast - full).abs().max() <= TOL, name
    assert (fast[::5] - clean).abs().max() <= TOL
    assert (fast[1::5] - fast[::5]).abs().max() > 1e-3  # a patch changes the output
    patched_at_1 = layers == 1
    assert (from_layer_1[patched_at_1] - full[patched_at_1]).abs().max() <= TOL


def test_ltv_gradients_match_full_recompute(family):
    name, model = family
    tokens, mask = _batch()
    targets = torch.tensor([5, 17, 3, 40])
    basis = torch.randn(model.cfg.n_layers, 3, model.cfg.d_model, generator=torch.Generator().manual_seed(4))
    prefix = FrozenPrefix.from_batch(model, tokens, mask)
    model.requires_grad_(False)

    def grad(run):
        theta = torch.full((model.cfg.n_layers, 3), 0.5, requires_grad=True)
        logits = run(add_vectors(model, torch.einsum("lh,lhm->lm", theta, basis)))
        torch.nn.functional.cross_entropy(logits, targets).backward()
        return theta.grad

    try:
        fast, full = grad(prefix.run), grad(lambda h: final_logits(model, tokens, mask, h))
    finally:
        model.requires_grad_(True)
    assert full.abs().max() > 0
    assert (fast - full).abs().max() <= TOL * max(1.0, full.abs().max().item()), name


ATTN_HOOKS = ("hook_q", "hook_k", "hook_v", "hook_rot_q", "hook_rot_k", "hook_attn_scores", "hook_pattern", "hook_z")


def _record(model, prefix: FrozenPrefix, names) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}

    def keep(act, hook):
        seen[hook.name] = act.detach().clone()

    with torch.no_grad():
        prefix.run([(n, keep) for n in names])
    return seen


def test_hooks_fire_with_transformer_lens_shapes_and_values(family, monkeypatch):
    """Every attention hook point: same shape and values as TransformerLens's attention over its frozen
    cache (including ``hook_rot_k``, which holds every key of every row)."""
    name, model = family
    tokens, mask = _batch()
    names = [f"blocks.{l}.attn.{h}" for l in range(model.cfg.n_layers) for h in ATTN_HOOKS]
    names = [n for n in names if n in model.hook_dict]
    shared = _record(model, FrozenPrefix.from_batch(model, tokens, mask).select([0, 1, 2, 3]), names)
    ref = _record(model, _tl_prefix(model, tokens, mask, monkeypatch), names)
    assert sorted(shared) == sorted(ref) == sorted(names)
    for n in names:
        a, b = shared[n], ref[n]
        assert a.shape == b.shape, (name, n)
        finite = torch.isfinite(b)
        assert torch.equal(finite, torch.isfinite(a)), (name, n)
        assert (a[finite] - b[finite]).abs().max() <= TOL, (name, n)


def test_hook_edits_are_honoured(family, monkeypatch):
    """Hooks that *change* the pattern, scores or keys of the final query act as on the full prompt."""
    name, model = family
    tokens, mask = _batch()

    def halve_first_key(pattern, hook):  # final query row only: a full-prompt hook edits the same entries
        out = pattern.clone()
        out[:, :, -1, -1] *= 0.5
        return out

    def shift_scores(scores, hook):
        out = scores.clone()
        out[:, 1::2, -1] += 0.7
        return out

    edits = [("blocks.0.attn.hook_pattern", halve_first_key), ("blocks.1.attn.hook_attn_scores", shift_scores)]
    if model.cfg.positional_embedding_type == "rotary":

        def scale_last_key(k, hook):
            out = k.clone()
            out[:, -1] *= 2.0
            return out

        edits.append(("blocks.1.attn.hook_rot_k", scale_last_key))
    prefix = FrozenPrefix.from_batch(model, tokens, mask)
    with torch.no_grad():
        full = final_logits(model, tokens, mask, edits)
        assert (full - final_logits(model, tokens, mask)).abs().max() > 1e-3
        assert (prefix.run(edits) - full).abs().max() <= TOL, name
        assert (prefix.repeat(2).run(edits)[1::2] - full).abs().max() <= TOL, name


def test_select_concat_keep_sharing_and_values():
    model = _tiny("llama-gqa")
    tokens, mask = _batch(rows=6, length=11)
    prefix = build_prefixes(model, tokens, mask, chunk_size=4)  # concat of a 4-row and a 2-row chunk
    assert prefix.shared is not None and prefix.prefix_length == 10
    with torch.no_grad():
        base = final_logits(model, tokens, mask)
        assert (prefix.run() - base).abs().max() <= TOL
        rows = prefix.repeat(3)
        whole_prompts = rows.select(torch.arange(3, 9))  # all variants of prompts 1 and 2
        assert whole_prompts.shared.variants == 3 and whole_prompts.shared.n_prompts == 2
        assert (whole_prompts.run()[::3] - base[[1, 2]]).abs().max() <= TOL
        scattered = rows.select([7, 0, 16])  # prompts 2, 0, 5
        assert scattered.shared.variants == 1
        assert (scattered.run() - base[[2, 0, 5]]).abs().max() <= TOL
        single = prefix.select([2]).expand(5)
        assert single.nbytes() == prefix.select([2]).nbytes()
        mixed = FrozenPrefix.concat([prefix.select([0]).expand(2), prefix.select([4, 5])])
        assert (mixed.run() - base[[0, 0, 4, 5]]).abs().max() <= TOL


def test_switch_and_unsupported_models_keep_the_transformer_lens_path(monkeypatch):
    model = _tiny("gpt2")
    tokens, mask = _batch()
    tl = _tl_prefix(model, tokens, mask, monkeypatch)
    with torch.no_grad():
        assert (tl.run() - final_logits(model, tokens, mask)).abs().max() <= TOL
    with pytest.raises(ValueError, match=SHARED_PREFIX_ENV):
        FrozenPrefix.concat([tl, FrozenPrefix.from_batch(model, tokens, mask)])
    logn = _tiny("llama-gqa", use_logn_attn=True, train_seq_length=8)  # Qwen-1: scaling past 8 positions
    assert "log-n" in unsupported_reason(logn)
    prefix = FrozenPrefix.from_batch(logn, tokens, mask)
    assert prefix.shared is None
    with torch.no_grad():
        assert (prefix.run() - final_logits(logn, tokens, mask)).abs().max() <= TOL


def test_split_qkv_input_and_attn_result_hooks():
    """``use_split_qkv_input`` / ``use_attn_result`` models: TransformerLens's projection path and
    ``hook_result`` inside the shared attention, still equal to the full prompt."""
    model = _tiny("llama-gqa")
    model.set_use_split_qkv_input(True)
    model.set_use_attn_result(True)
    tokens, mask = _batch()
    edit = [("blocks.1.attn.hook_result", lambda r, hook: r * torch.linspace(0.0, 2.0, r.shape[2])[:, None])]
    prefix = FrozenPrefix.from_batch(model, tokens, mask)
    with torch.no_grad():
        for hooks in ([], edit):
            assert (prefix.run(hooks) - final_logits(model, tokens, mask, hooks)).abs().max() <= TOL
