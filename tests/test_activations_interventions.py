"""Per-head contributions (the hook_attn_out identity) and interventions (shapes, cleanup, errors)."""

from __future__ import annotations

import pytest
import torch

from interp.activations import head_activations, stacked_b_O
from interp.interventions import InterventionError, add_vectors, intervene, patch_head, replace_resid
from interp.prompts import model_prompts


def _attn_out_final(model, batch):
    _, cache = model.run_with_cache(
        batch.tokens, attention_mask=batch.attention_mask, names_filter=lambda n: n.endswith("hook_attn_out")
    )
    return torch.stack([cache[f"blocks.{l}.hook_attn_out"][:, -1] for l in range(model.cfg.n_layers)], 1)


def _check_identity(model, task, atol):
    batch = model_prompts(model, task, setting="icl", shots=3, n=5)
    acts = head_activations(model, batch.tokens, batch.attention_mask, batch_size=2)
    cfg = model.cfg
    assert acts.contributions.shape == (5, cfg.n_layers, cfg.n_heads, cfg.d_model)
    reconstructed = acts.contributions.sum(2) + stacked_b_O(model)
    assert (reconstructed - _attn_out_final(model, batch)).abs().max() <= atol


def test_head_sum_equals_attn_out_tiny(tiny_model, builtin_task):
    _check_identity(tiny_model, builtin_task, 1e-5)


@pytest.mark.slow
def test_head_sum_equals_attn_out_smollm2(smollm2, builtin_task):
    assert smollm2.cfg.n_key_value_heads == 3 and smollm2.cfg.n_heads == 9  # grouped-query
    _check_identity(smollm2, builtin_task, 1e-4)


def test_hooks_removed_even_on_error(tiny_gpt2):
    hooks = add_vectors(tiny_gpt2, {0: torch.ones(tiny_gpt2.cfg.d_model)})
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(tiny_gpt2, hooks):
            assert any(len(hp.fwd_hooks) for hp in tiny_gpt2.hook_dict.values())
            raise RuntimeError("boom")
    assert not any(len(hp.fwd_hooks) for hp in tiny_gpt2.hook_dict.values())


def test_interventions_change_only_final_position(tiny_gpt2, builtin_task):
    batch = model_prompts(tiny_gpt2, builtin_task, shots=2, n=3)
    d = tiny_gpt2.cfg.d_model
    with torch.no_grad():
        clean = tiny_gpt2(batch.tokens, attention_mask=batch.attention_mask)
        for hooks in (
            add_vectors(tiny_gpt2, {0: torch.randn(d)}),
            replace_resid(tiny_gpt2, 1, torch.randn(d), hook="resid_pre"),
            patch_head(tiny_gpt2, 0, 1, torch.randn(tiny_gpt2.cfg.d_head)),
        ):
            with intervene(tiny_gpt2, hooks):
                out = tiny_gpt2(batch.tokens, attention_mask=batch.attention_mask)
            assert torch.allclose(out[:, :-1], clean[:, :-1], atol=1e-5)
            assert (out[:, -1] - clean[:, -1]).abs().max() > 1e-4


def test_intervention_errors(tiny_gpt2):
    d, L = tiny_gpt2.cfg.d_model, tiny_gpt2.cfg.n_layers
    with pytest.raises(InterventionError, match="d_model is 64"):
        add_vectors(tiny_gpt2, {0: torch.zeros(d + 1)})
    with pytest.raises(InterventionError, match="out of range for a 2-layer"):
        add_vectors(tiny_gpt2, {5: torch.zeros(d)})
    with pytest.raises(InterventionError, match=r"\[n_layers=2"):
        add_vectors(tiny_gpt2, torch.zeros(L + 1, d))
    with pytest.raises(InterventionError, match="d_model"):
        replace_resid(tiny_gpt2, 0, torch.zeros(3))
    with pytest.raises(InterventionError, match="head 9 out of range"):
        patch_head(tiny_gpt2, 0, 9, torch.zeros(tiny_gpt2.cfg.d_head))
