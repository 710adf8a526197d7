"""Edge cases of the core modules that mutation testing showed no test reached (mutmut survivors that matter):
a prefix built in one chunk or without a mask, head 0 patched, the final-token residual and mean head
activations against ``run_with_cache``, and the evaluation helpers' boundaries."""

from __future__ import annotations

import pytest
import torch

from interp.activations import final_token_resid, head_contributions, mean_head_activations
from interp.engine import FrozenPrefix, build_prefixes, final_logits
from interp.results import EvaluationError, Result, check_n
from interp.stats import mean_ci, newcombe_paired_interval, paired_bootstrap_interval, wilson_interval
from interp.interventions import InterventionError, patch_head
from interp.problems import TextProblem


@pytest.fixture(scope="module")
def batch(tiny_gpt2, builtin_task):
    return TextProblem(tiny_gpt2, builtin_task, shots=2).batch("icl", "test", 8)  # row 7 is one token longer


def test_prefix_in_one_chunk_and_without_mask(tiny_gpt2, batch, monkeypatch):
    reference = final_logits(tiny_gpt2, batch.tokens, batch.attention_mask)
    one_chunk = build_prefixes(tiny_gpt2, batch.tokens, batch.attention_mask, chunk_size=64)  # a single part
    assert len(one_chunk) == 8 and torch.allclose(one_chunk.run(), reference, atol=1e-4)
    # a token budget of 3 rows splits long prompts into chunks of 3, 3 and 2 rows: the same logits
    chunks, from_batch = [], FrozenPrefix.from_batch
    monkeypatch.setattr(FrozenPrefix, "from_batch", lambda model, inp, *a, **k: chunks.append(len(inp)) or from_batch(model, inp, *a, **k))
    by_tokens = build_prefixes(tiny_gpt2, batch.tokens, batch.attention_mask, chunk_tokens=3 * batch.tokens.shape[1])
    monkeypatch.undo()
    assert chunks == [3, 3, 2] and torch.allclose(by_tokens.run(), reference, atol=1e-4)
    unpadded = batch.tokens[:1, batch.attention_mask[0].bool()]
    no_mask = build_prefixes(tiny_gpt2, unpadded, None)
    assert torch.allclose(no_mask.run(), final_logits(tiny_gpt2, unpadded), atol=1e-4)
    assert FrozenPrefix.concat([no_mask]) is no_mask


def test_patch_head_zero_and_range(tiny_gpt2, batch):
    value = torch.randn(tiny_gpt2.cfg.d_head)
    seen = {}

    def grab(z, hook):
        seen["z"] = z[:, -1, 0].clone()

    hooks = patch_head(tiny_gpt2, 1, 0, value) + [("blocks.1.attn.hook_z", grab)]
    with torch.no_grad():
        final_logits(tiny_gpt2, batch.tokens, batch.attention_mask, hooks)
    assert torch.allclose(seen["z"], value.expand_as(seen["z"]))
    with pytest.raises(InterventionError, match="head 4 out of range"):
        patch_head(tiny_gpt2, 0, tiny_gpt2.cfg.n_heads, value)
    with pytest.raises(InterventionError, match="head -1 out of range"):
        patch_head(tiny_gpt2, 0, -1, value)


def test_final_token_resid_and_mean_activations_match_run_with_cache(tiny_gpt2, batch):
    with torch.no_grad():
        _, cache = tiny_gpt2.run_with_cache(batch.tokens, attention_mask=batch.attention_mask)
    resid = final_token_resid(tiny_gpt2, batch.tokens, batch.attention_mask, batch_size=3)  # 3 batches
    for l in range(tiny_gpt2.cfg.n_layers):
        assert torch.allclose(resid[:, l], cache[f"blocks.{l}.hook_resid_post"][:, -1], atol=1e-5)
    acts = mean_head_activations(tiny_gpt2, batch, batch_size=2)
    z = torch.stack([cache[f"blocks.{l}.attn.hook_z"][:, -1] for l in range(tiny_gpt2.cfg.n_layers)], dim=1)
    assert torch.allclose(acts.z, z, atol=1e-5)
    assert torch.allclose(acts.contributions, head_contributions(tiny_gpt2, z), atol=1e-5)
    W_O = tiny_gpt2.blocks[1].attn.W_O
    assert torch.allclose(acts.mean_contributions[1, 3], (z[:, 1, 3] @ W_O[3]).mean(0), atol=1e-5)


def test_evaluation_boundaries():
    assert all(v != v for v in wilson_interval(0, 0))  # nan: no data
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(1, 2, z=0.0) == (0.5, 0.5)  # z = 0: the point estimate
    mean, low, high = mean_ci([1.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(1.96 * 1.0) and mean - low == pytest.approx(1.96)
    assert mean_ci([4.0]) == (4.0, 4.0, 4.0) and all(v != v for v in mean_ci([]))
    assert all(v != v for v in newcombe_paired_interval([], []))
    assert all(v != v for v in paired_bootstrap_interval([], []))
    d, low, high = newcombe_paired_interval([1] * 10, [0] * 10)  # every pair discordant one way
    assert d == 1.0 and 0.6 < low < 1.0 and high == 1.0
    check_n(None)
    check_n(1)
    for bad in (0, -3, True, "5", 1.0):
        with pytest.raises(EvaluationError):
            check_n(bad)
    with pytest.raises(EvaluationError, match="unknown metric 'f1'"):
        Result("f1", [1.0])
    r = Result("error", [0.5, 1.5])
    with pytest.raises(AttributeError, match="has no .accuracy"):
        r.accuracy  # noqa: B018
    assert r.ci_method == "mean ± 1.96 SE" and Result("accuracy", [1.0]).ci_method == "Wilson score 95%"
    assert "error 1" in repr(r) and r.higher_is_better is False


def test_intervention_errors_name_the_problem(tiny_gpt2):
    from interp.interventions import add_vectors

    v = torch.zeros(tiny_gpt2.cfg.d_model)
    with pytest.raises(InterventionError, match="hook must be one of .*got 'nope'"):
        add_vectors(tiny_gpt2, {0: v}, hook="nope")
    with pytest.raises(InterventionError, match="size 7 in its last dimension .* was it computed on another model"):
        add_vectors(tiny_gpt2, {0: torch.zeros(7)})


def test_reference_path_respects_left_padding(tiny_gpt2, batch):
    """A left-padded row scores as the same prompt run alone (the mask reaches the model)."""
    assert not batch.attention_mask[:, 0].all()  # some rows are padded
    padded = final_logits(tiny_gpt2, batch.tokens, batch.attention_mask)
    for i in range(len(batch)):
        alone = final_logits(tiny_gpt2, batch.tokens[i : i + 1, batch.attention_mask[i].bool()])
        assert torch.allclose(padded[i], alone[0], atol=1e-4)
