"""The frozen-prefix engine equals a full recompute: logits with and without every intervention, and
LTV-style gradients, on left-padded batches of unequal lengths."""

from __future__ import annotations

import pytest
import torch

from interp.activations import head_activations
from interp.engine import FrozenPrefix, build_prefixes, final_logits
from interp.interventions import add_vectors, patch_heads, replace_resid
from interp.prompts import model_prompts

TOL = 1e-4


def _batch(model, task, setting="icl", n=6, shots=3):
    return model_prompts(model, task, setting=setting, shots=shots, n=n, split="test", seed=1)


def _interventions(model, batch):
    gen = torch.Generator().manual_seed(0)
    cfg = model.cfg
    d = cfg.d_model
    z_vals = torch.randn(cfg.n_layers, cfg.n_heads, cfg.d_head, generator=gen)
    rows = len(batch)
    return {
        "none": [],
        "add_one_layer": add_vectors(model, {cfg.n_layers // 2: torch.randn(d, generator=gen)}),
        "add_every_layer": add_vectors(model, torch.randn(cfg.n_layers, d, generator=gen)),
        "add_resid_pre": add_vectors(model, {1: torch.randn(d, generator=gen)}, hook="resid_pre"),
        "replace": replace_resid(model, 0, torch.randn(d, generator=gen)),
        "patch_heads": patch_heads(
            model, [i % cfg.n_layers for i in range(rows)], [i % cfg.n_heads for i in range(rows)], z_vals
        ),
    }


def test_left_padding_is_unequal(tiny_model, builtin_task):
    batch = _batch(tiny_model, builtin_task)
    lengths = batch.attention_mask.sum(1)
    assert lengths.min() < lengths.max(), "the test needs rows of unequal length"


@pytest.mark.parametrize("setting", ["icl", "zero-shot"])
def test_engine_matches_full_recompute(tiny_model, builtin_task, setting):
    batch = _batch(tiny_model, builtin_task, setting)
    prefix = FrozenPrefix.from_batch(tiny_model, batch.tokens, batch.attention_mask)
    with torch.no_grad():
        for name, hooks in _interventions(tiny_model, batch).items():
            full = final_logits(tiny_model, batch.tokens, batch.attention_mask, hooks)
            fast = prefix.run(hooks)
            assert (full - fast).abs().max() <= TOL, name
    # and the intervention changes something (the equality is not vacuous)
    with torch.no_grad():
        assert (prefix.run(_interventions(tiny_model, batch)["add_every_layer"]) - prefix.run()).abs().max() > 1e-3


def test_unpadded_single_prompt_matches_model_forward(tiny_model, builtin_task):
    batch = _batch(tiny_model, builtin_task, n=1)
    with torch.no_grad():
        ref = tiny_model(batch.tokens)[:, -1]
        fast = FrozenPrefix.from_batch(tiny_model, batch.tokens, batch.attention_mask).run()
    assert (ref - fast).abs().max() <= TOL


def test_repeat_select_concat(tiny_model, builtin_task):
    batch = _batch(tiny_model, builtin_task)
    prefix = build_prefixes(tiny_model, batch.tokens, batch.attention_mask, chunk_size=4)  # concat of 2 chunks
    with torch.no_grad():
        base = final_logits(tiny_model, batch.tokens, batch.attention_mask)
        assert (prefix.run() - base).abs().max() <= TOL
        rep = prefix.repeat(3).run()
        assert (rep[::3] - base).abs().max() <= TOL and (rep[2::3] - base).abs().max() <= TOL
        assert (prefix.select([4, 1]).run() - base[[4, 1]]).abs().max() <= TOL


def test_ragged_prefix_rows_equal_full_recompute_without_padding_to_the_longest(tiny_model, builtin_task):
    """A multi-task pool keeps each task's prompts at their own length: any selection of rows, in any order,
    scores exactly as the full recompute of those prompts, and it holds fewer bytes than the padded stack."""
    from interp.engine import RaggedPrefix

    short, long = _batch(tiny_model, builtin_task, shots=1, n=4), _batch(tiny_model, builtin_task, shots=6, n=3)
    parts = [build_prefixes(tiny_model, b.tokens, b.attention_mask) for b in (short, long)]
    ragged = RaggedPrefix(parts)
    assert len(ragged) == 7 and ragged.nbytes() < FrozenPrefix.concat(parts).nbytes()
    with torch.no_grad():
        base = torch.cat([final_logits(tiny_model, b.tokens, b.attention_mask) for b in (short, long)])
        order = [5, 0, 6, 3, 1]  # rows of both parts, interleaved
        assert (ragged.select(order).run() - base[order]).abs().max() <= TOL
        assert (ragged.select([2, 1]).run() - base[[2, 1]]).abs().max() <= TOL  # one part, reversed
        assert (ragged.run() - base).abs().max() <= TOL


def test_ltv_gradients_match_full_recompute(tiny_model, builtin_task):
    batch = _batch(tiny_model, builtin_task, "shuffled")
    acts = head_activations(tiny_model, batch.tokens, batch.attention_mask)
    a_mean = acts.mean_contributions  # [layer head d_model]

    def loss_and_grad(run):
        theta = torch.randn(a_mean.shape[:2], generator=torch.Generator().manual_seed(0)).requires_grad_()
        vectors = torch.einsum("lh,lhm->lm", theta, a_mean)
        logits = run(add_vectors(tiny_model, vectors))
        loss = torch.nn.functional.cross_entropy(logits, batch.target_ids)
        loss.backward()
        return loss.detach(), theta.grad

    prefix = FrozenPrefix.from_batch(tiny_model, batch.tokens, batch.attention_mask)
    loss_fast, grad_fast = loss_and_grad(prefix.run)
    loss_full, grad_full = loss_and_grad(lambda h: final_logits(tiny_model, batch.tokens, batch.attention_mask, h))
    assert torch.allclose(loss_fast, loss_full, atol=TOL)
    assert grad_full.abs().max() > 0
    assert (grad_fast - grad_full).abs().max() <= TOL * max(1.0, grad_full.abs().max().item())
    tiny_model.zero_grad(set_to_none=True)


def test_final_position_must_not_be_padding(tiny_gpt2):
    tokens = torch.ones(2, 5, dtype=torch.long)
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[0, -1] = 0
    with pytest.raises(ValueError, match="pad on the left"):
        FrozenPrefix.from_batch(tiny_gpt2, tokens, mask)


def test_run_from_layer_and_expand(tiny_model, builtin_task):
    """Starting at layer l from the clean final-token residual equals a full run (hooks at >= l)."""
    batch = _batch(tiny_model, builtin_task)
    prefix = FrozenPrefix.from_batch(tiny_model, batch.tokens, batch.attention_mask)
    resid_pre, clean = prefix.final_resid_pre()
    hooks = add_vectors(tiny_model, {1: torch.randn(tiny_model.cfg.d_model, generator=torch.Generator().manual_seed(3))})
    with torch.no_grad():
        full = final_logits(tiny_model, batch.tokens, batch.attention_mask, hooks)
        assert (clean - final_logits(tiny_model, batch.tokens, batch.attention_mask)).abs().max() <= TOL
        for layer in range(tiny_model.cfg.n_layers):
            assert (prefix.run_from(layer, resid_pre[:, layer], hooks) - full).abs().max() <= TOL
        single = prefix.select([2]).expand(5)
        assert single.nbytes() == prefix.select([2]).nbytes()  # the prefix is not copied per row
        assert (single.run(hooks) - full[2:3]).abs().max() <= TOL


@pytest.mark.slow
def test_engine_matches_full_recompute_smollm2(smollm2, builtin_task):
    """The same equalities on the real grouped-query model (left padding, every intervention, gradients)."""
    batch = _batch(smollm2, builtin_task, "shuffled", n=4, shots=4)
    assert batch.attention_mask.sum(1).unique().numel() > 1
    prefix = FrozenPrefix.from_batch(smollm2, batch.tokens, batch.attention_mask)
    with torch.no_grad():
        for name, hooks in _interventions(smollm2, batch).items():
            full = final_logits(smollm2, batch.tokens, batch.attention_mask, hooks)
            assert (full - prefix.run(hooks)).abs().max() <= TOL, name
    acts = head_activations(smollm2, batch.tokens, batch.attention_mask)
    grads = []
    for run in (prefix.run, lambda h: final_logits(smollm2, batch.tokens, batch.attention_mask, h)):
        theta = torch.full(acts.mean_contributions.shape[:2], 0.1).requires_grad_()
        logits = run(add_vectors(smollm2, torch.einsum("lh,lhm->lm", theta, acts.mean_contributions)))
        torch.nn.functional.cross_entropy(logits, batch.target_ids).backward()
        grads.append(theta.grad)
    smollm2.zero_grad(set_to_none=True)
    assert (grads[0] - grads[1]).abs().max() <= TOL * max(1.0, grads[1].abs().max().item())


def test_a_run_frees_its_minibatch_without_the_garbage_collector(tiny_model, builtin_task):
    """A training step selects a minibatch of the pool (a copy of its keys and values) and runs it with
    gradients. With the cyclic collector off, dropping the minibatch must free those keys at once: a
    reference cycle in the cache objects kept every step's copy until the collector ran, and a steering fit
    grew to 18 GB on a 24 GB machine."""
    import gc
    import weakref

    batch = _batch(tiny_model, builtin_task)
    prefix = build_prefixes(tiny_model, batch.tokens, batch.attention_mask)
    vector = torch.zeros(tiny_model.cfg.n_layers, tiny_model.cfg.d_model, requires_grad=True)
    gc.collect()
    gc.disable()
    try:
        minibatch = prefix.select([4, 1, 3])
        held = minibatch.shared.keys[0] if minibatch.shared is not None else minibatch.cache.entries[0].past_keys
        freed = weakref.ref(held)
        minibatch.run(add_vectors(tiny_model, vector)).sum().backward()
        del minibatch, held
        assert freed() is None, "the minibatch's keys outlived it (a reference cycle)"
    finally:
        gc.enable()
    assert vector.grad is not None and vector.grad.abs().sum() > 0
