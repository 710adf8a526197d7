"""The three task-vector methods on tiny models: one interface, artifacts, controls, training mechanics."""

from __future__ import annotations

import json

import pytest
import torch

from interp.cli import main
from interp.engine import final_logits
from interp.activations import head_activations
from interp.interventions import patch_head
from interp.problems import TextProblem
from interp.vectors import (
    FVConfig, LTVConfig, TVConfig, VectorError, causal_indirect_effects, fit, fit_ltv, load_vector,
)  # fmt: skip

SMALL_LTV = LTVConfig(steps=12, n_train=16, n_valid=8, n_mean=8, batch_size=8, eval_every=4)


@pytest.fixture()
def problem(tiny_model, builtin_task):
    return TextProblem(tiny_model, builtin_task, shots=3)


def _clean_cache(model, batch):
    """``run_with_cache`` of whole clean prompts: the reference every basis is defined on."""
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask)
    return cache


def _constant_answer_problem(model, shots=2):
    """Every query's answer is " yes": a task a frozen random model can be steered to, so learning is visible."""
    from interp.tasks import Pair, Task, load_task

    pairs = [Pair(p.input, "yes") for p in load_task("builtin:antonym").pairs]
    return TextProblem(model, Task("constant-yes", pairs, "test"), shots=shots)


def test_ltv_valid_loss_falls(tiny_model):
    """The LTV's loss on the held-out *valid* prompts falls to at most 0.85x its value at θ = 0 within 20
    steps, the returned θ reproduces the best valid loss by full forward passes, and a random θ of the
    same norm does worse."""
    problem = _constant_answer_problem(tiny_model)
    cfg = LTVConfig(steps=20, n_train=16, n_valid=8, n_mean=8, batch_size=8, eval_every=10, lr=1.0, patience=50)
    vec = fit("ltv", problem, cfg, progress=False)
    training = vec.meta["training"]
    curve = training["curve"]
    assert [c["step"] for c in curve] == [0, 10, 20]
    assert training["best_valid_loss"] <= 0.85 * curve[0]["valid_loss"]

    def valid_loss(v) -> float:
        logits, targets = [], []
        for setting in ("shuffled", "zero-shot"):
            batch = problem.batch(setting, "valid", cfg.n_valid)
            with torch.no_grad():
                logits.append(final_logits(problem.model, batch.tokens, batch.attention_mask, v.hooks(problem.model)))
            targets.append(batch.target_ids)
        return torch.nn.functional.cross_entropy(torch.cat(logits), torch.cat(targets)).item()

    assert valid_loss(vec) == pytest.approx(training["best_valid_loss"], rel=1e-4)
    control = vec.random_control(seed=1)
    assert torch.allclose(control.theta.norm(), vec.theta.norm(), atol=1e-5)
    assert valid_loss(control) > training["best_valid_loss"]
    assert vec.theta.shape == (problem.model.cfg.n_layers, problem.model.cfg.n_heads)
    for setting in ("zero-shot", "shuffled"):
        r = vec.evaluate(problem, setting, n=8)
        assert r.n == 8 and r.method == "LTV"


def test_training_pools_hold_the_cached_prefixes_not_a_padded_copy(problem):
    """A fit's train/valid pools are the problem's own cached prefixes (shared by every fit of a learning-rate
    grid), not one stack padded to the longest prompt: on ag_news the padded copies came to ~6 GB per fit
    and exhausted a 24 GB machine. Rows of both corruptions still score as the full recompute."""
    from interp.vectors.ltv import _Pool

    pool = _Pool.build([problem], ("zero-shot", "shuffled"), "train", 8)
    cached = [problem.prefix(setting, "train", 8)[1] for setting in ("zero-shot", "shuffled")]
    assert len(pool.prefix.parts) == 2 and all(a is b for a, b in zip(pool.prefix.parts, cached))
    assert cached[0].prefix_length < cached[1].prefix_length  # the short rows are not padded to the long ones
    rows = [9, 2, 15]  # shuffled, zero-shot, shuffled
    batches = [problem.batch(setting, "train", 8) for setting in ("zero-shot", "shuffled")]
    with torch.no_grad():
        full = torch.cat([final_logits(problem.model, b.tokens, b.attention_mask) for b in batches])
        assert torch.allclose(pool.prefix.select(rows).run(), full[rows], atol=1e-4)
    assert torch.equal(pool.targets, torch.cat([b.target_ids for b in batches]))


def test_ltv_vector_is_weighted_head_sum(problem):
    vec = fit("ltv", problem, SMALL_LTV, progress=False)
    theta = torch.randn_like(vec.theta)
    vec.tensors["theta"] = theta
    model = problem.model
    cache = _clean_cache(model, problem.batch("icl", "train", SMALL_LTV.n_mean))
    expected = torch.zeros(model.cfg.n_layers, model.cfg.d_model)
    for l in range(model.cfg.n_layers):
        W_O = model.blocks[l].attn.W_O  # [head, d_head, d_model]
        z = cache[f"blocks.{l}.attn.hook_z"][:, -1]  # [batch, head, d_head]
        for h in range(model.cfg.n_heads):
            expected[l] += theta[l, h] * (z[:, h] @ W_O[h]).mean(0)
    assert torch.allclose(vec.layer_vectors(), expected, atol=1e-5)


def test_chunks_basis_reproduces_reference(problem):
    """The reference code's basis, from its definition: the mean of ``hook_attn_out`` at the final token over
    the clean train prompts, cut into H equal slices of the residual, head h owning slice h."""
    cfg = LTVConfig(**{**SMALL_LTV.to_dict(), "basis": "chunks", "steps": 2})
    vec = fit("ltv", problem, cfg, progress=False)
    model = problem.model
    cache = _clean_cache(model, problem.batch("icl", "train", cfg.n_mean))
    width = model.cfg.d_model // model.cfg.n_heads
    expected = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_model)
    for l in range(model.cfg.n_layers):
        attn_out = cache[f"blocks.{l}.hook_attn_out"][:, -1].mean(0)
        for h in range(model.cfg.n_heads):
            expected[l, h, h * width : (h + 1) * width] = attn_out[h * width : (h + 1) * width]
    assert expected.abs().sum() > 0 and torch.allclose(vec.basis[0], expected, atol=1e-5)


def test_ltv_nan_loss_stops_and_keeps_best(problem, monkeypatch):
    calls = {"n": 0}
    real_loss = problem.loss

    def flaky(out, targets):
        calls["n"] += 1
        return real_loss(out, targets) * (float("nan") if calls["n"] == 4 else 1.0)

    monkeypatch.setattr(problem, "loss", flaky)
    with pytest.warns(UserWarning, match="non-finite loss"):
        vec = fit_ltv(problem, SMALL_LTV, progress=False)
    assert "non-finite loss at step" in vec.meta["training"]["stopped"]
    assert torch.isfinite(vec.theta).all()


def test_ltv_checkpoint_resume_and_interrupt(problem, tmp_path, monkeypatch):
    cfg = LTVConfig(**{**SMALL_LTV.to_dict(), "checkpoint_every": 4, "patience": 99})
    full = fit_ltv(problem, cfg, checkpoint_dir=tmp_path / "a", progress=False)
    assert (tmp_path / "a" / "ltv_state.json").exists()
    # interrupt at step 6: the best θ so far is saved as a loadable vector
    from interp import engine

    real_run = engine.FrozenPrefix.run
    count = {"n": 0}

    def interrupting(self, hooks=()):
        if torch.is_grad_enabled():
            count["n"] += 1
            if count["n"] == 7:
                raise KeyboardInterrupt
        return real_run(self, hooks)

    monkeypatch.setattr(engine.FrozenPrefix, "run", interrupting)
    with pytest.raises(KeyboardInterrupt):
        fit_ltv(problem, cfg, checkpoint_dir=tmp_path / "b", progress=False)
    saved = load_vector(tmp_path / "b", problem.model)
    assert "interrupted at step 6" in saved.meta["training"]["stopped"]
    monkeypatch.setattr(engine.FrozenPrefix, "run", real_run)
    resumed = fit_ltv(problem, cfg, checkpoint_dir=tmp_path / "b", resume=True, progress=False)
    assert resumed.meta["training"]["steps_run"] == cfg.steps
    assert torch.allclose(resumed.theta, full.theta, atol=1e-4)  # same data order, same result


def test_cie_matches_one_full_forward_per_head(problem):
    model = problem.model
    clean = problem.batch("icl", "train", 8)
    mean_z = head_activations(model, clean.inputs, clean.attention_mask).mean_z
    cie = causal_indirect_effects(problem, mean_z, n=4, progress=False)
    batch = problem.batch("shuffled", "train", 4)
    with torch.no_grad():
        base = final_logits(model, batch.tokens, batch.attention_mask).softmax(-1)
        p_base = base[torch.arange(4), batch.target_ids]
        for layer, head in [(0, 0), (1, 3)]:
            out = final_logits(model, batch.tokens, batch.attention_mask, patch_head(model, layer, head, mean_z[layer, head]))
            p = out.softmax(-1)[torch.arange(4), batch.target_ids]
            assert torch.allclose((p - p_base).mean(), cie[layer, head], atol=1e-6)


def test_fv_and_tv(problem):
    """The FV from its definition: causal indirect effects by one full forward per head (z at the final token
    set to its clean mean), the top-k heads' mean outputs z @ W_O summed, added at the FV's layer."""
    model = problem.model
    cfg = FVConfig(top_k=3, n_mean=8, n_cie=4, n_valid=8)
    fv = fit("fv", problem, cfg, progress=False)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    cache = _clean_cache(model, problem.batch("icl", "train", cfg.n_mean))
    mean_z = torch.stack([cache[f"blocks.{l}.attn.hook_z"][:, -1].mean(0) for l in range(n_layers)])
    batch = problem.batch("shuffled", "train", cfg.n_cie)
    rows = torch.arange(len(batch))

    def p_target(hooks=()):
        with torch.no_grad():
            logits = final_logits(model, batch.tokens, batch.attention_mask, hooks)
        return logits.softmax(-1)[rows, batch.target_ids]

    base = p_target()
    cie = torch.zeros(n_layers, n_heads)
    for l in range(n_layers):
        for h in range(n_heads):

            def patch(z, hook, h=h, l=l):
                z[:, -1, h] = mean_z[l, h]
                return z

            cie[l, h] = (p_target([(f"blocks.{l}.attn.hook_z", patch)]) - base).mean()
    assert torch.allclose(fv.cie, cie, atol=1e-6)
    top = [divmod(int(i), n_heads) for i in cie.flatten().argsort(descending=True)[:3]]
    assert sorted(fv.top_heads()) == sorted(top)
    expected = sum(mean_z[l, h] @ model.blocks[l].attn.W_O[h] for l, h in top)
    assert torch.allclose(fv.vector, expected, atol=1e-5)
    assert set(fv.meta["layer_sweep"]) == {"0", "1"}
    # applying it = adding the vector to blocks.{layer}.hook_resid_post at the final token
    zs = problem.batch("zero-shot", "test", 6)

    def add(resid, hook):
        resid[:, -1] += expected
        return resid

    with torch.no_grad():
        manual = final_logits(model, zs.tokens, zs.attention_mask, [(f"blocks.{fv.layer}.hook_resid_post", add)])
    assert fv.evaluate(problem, "zero-shot", n=6).correct == (manual.argmax(-1) == zs.target_ids).tolist()
    with pytest.raises(VectorError, match="top_k"):
        fit("fv", problem, FVConfig(top_k=n_layers * n_heads + 1), progress=False)
    # the sweep (run_from each candidate layer) equals evaluating the vector at that layer in full
    for layer, value in fv.meta["layer_sweep"].items():
        assert abs(fv.at_layer(int(layer)).valid_metric(problem, problem.corruptions, 8) - value) < 1e-9
    tv = fit("tv", problem, TVConfig(n_source=8, n_valid=8), progress=False)
    assert tv.hidden.shape == (n_layers, model.cfg.d_model)
    assert tv.evaluate(problem, "zero-shot", n=8).n == 8
    with pytest.raises(VectorError, match="has no .heads"):
        tv.heads()
    heads = fv.heads()
    assert len(heads) == n_layers * n_heads and heads.in_vector.sum() == 3
    assert sorted(zip(heads[heads.in_vector]["layer"], heads[heads.in_vector]["head"])) == sorted(top)


@pytest.mark.parametrize("method", ["ltv", "fv", "tv"])
def test_save_load_round_trip_and_errors(problem, tmp_path, method, tiny_gpt2):
    configs = {"ltv": SMALL_LTV, "fv": FVConfig(top_k=2, n_mean=8, n_cie=2, n_valid=8), "tv": TVConfig(n_source=8, n_valid=8)}
    vec = fit(method, problem, configs[method], progress=False)
    vec.save(tmp_path / method)
    meta = json.loads((tmp_path / method / "meta.json").read_text())
    for key in ("method", "model_name", "model_fingerprint", "layers", "task", "problem", "config"):
        assert key in meta
    again = load_vector(tmp_path / method, problem.model)
    for name, t in vec.tensors.items():
        assert torch.equal(t, again.tensors[name])
    assert again.evaluate(problem, "zero-shot", n=6).accuracy == vec.evaluate(problem, "zero-shot", n=6).accuracy
    if problem.model.cfg.model_name != "tiny-gpt2":
        with pytest.raises(VectorError, match="refit it on this model"):
            load_vector(tmp_path / method, tiny_gpt2)
    raw = (tmp_path / method / "vector.safetensors").read_bytes()
    (tmp_path / method / "vector.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(VectorError, match="truncated or corrupt"):
        load_vector(tmp_path / method)
    with pytest.raises(VectorError, match="no task vector at"):
        load_vector(tmp_path / "missing")


def test_too_few_train_items(tiny_gpt2, builtin_task):
    with pytest.raises(ValueError, match="too few for 200-shot"):
        fit("ltv", TextProblem(tiny_gpt2, builtin_task, shots=200), SMALL_LTV, progress=False)


def test_cie_needs_hook_z(problem):
    class NoHeads:
        hook_dict: dict = {}

    fake = TextProblem.__new__(TextProblem)
    fake.model = NoHeads()
    with pytest.raises(VectorError, match="hook_z"):
        causal_indirect_effects(fake, torch.zeros(2, 4, 16), n=2)


def test_multitask_ltv(tiny_gpt2):
    from interp.tasks import load_task

    problems = [TextProblem(tiny_gpt2, load_task(f"builtin:{t}"), shots=2) for t in ("antonym", "capitalize")]
    vec = fit_ltv(problems, SMALL_LTV, progress=False)
    assert vec.basis.shape[0] == 2 and vec.tasks == ["antonym", "capitalize"]
    # the pool is one concatenated copy: no task keeps its own train/valid prefixes (memory over a whole suite)
    cached = [k for p in problems for k in p.cache.keys() if k[0] == "prefix" and k[2] in ("train", "valid")]
    assert cached == []
    with pytest.raises(VectorError, match="say which task"):
        vec.hooks(tiny_gpt2)
    assert vec.for_task("capitalize").evaluate(problems[1], "zero-shot", n=4).n == 4
    heads = vec.heads()
    assert len(heads) == 2 * tiny_gpt2.cfg.n_layers * tiny_gpt2.cfg.n_heads and set(heads.task) == {"antonym", "capitalize"}
    one = heads[(heads["task"] == "capitalize") & (heads["layer"] == 1) & (heads["head"] == 2)].iloc[0]
    assert one["score"] == pytest.approx(abs(float(vec.theta[1, 2])) * float(vec.basis[1, 1, 2].norm()), rel=1e-5)
    with pytest.raises(VectorError, match="same task twice"):
        fit_ltv([problems[0], problems[0]], SMALL_LTV, progress=False)


def test_ltv_refuses_clean_corruptions_and_corrupt_state(problem, tmp_path):
    for clean in ("icl", "dummy"):
        with pytest.raises(ValueError, match=f"corruption '{clean}' is a clean setting"):
            fit_ltv(problem, LTVConfig(**{**SMALL_LTV.to_dict(), "corruptions": (clean,)}), progress=False)
    cfg = LTVConfig(**{**SMALL_LTV.to_dict(), "steps": 4, "checkpoint_every": 2})
    fit_ltv(problem, cfg, checkpoint_dir=tmp_path, progress=False)
    state = tmp_path / "ltv_state.json"
    state.write_text(state.read_text()[:40])
    with pytest.raises(VectorError, match="ltv_state.json is truncated or corrupt .*fit without --resume"):
        fit_ltv(problem, cfg, checkpoint_dir=tmp_path, resume=True, progress=False)
    state.write_text("[1, 2]")
    with pytest.raises(VectorError, match="truncated or corrupt"):
        fit_ltv(problem, cfg, checkpoint_dir=tmp_path, resume=True, progress=False)


def test_cli_fit_and_eval(tmp_path, capsys):
    out = tmp_path / "fv"
    argv = ["fit", "--method", "fv", "--model", "tiny-gpt2", "--task", "antonym", "--shots", "2", "--out", str(out), "--top-k", "2", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["method"] == "fv" and "zero-shot_accuracy" in summary
    assert main(["eval", "--model", "tiny-gpt2", "--task", "antonym", "--setting", "zero-shot", "--vector", str(out), "--n", "5", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["n"] == 5 and rec["method"] == "FV"
    assert main(["fit", "--method", "nope", "--model", "tiny-gpt2", "--task", "antonym", "--out", str(tmp_path / "x")]) == 2
    assert "unknown --method 'nope'" in capsys.readouterr().err
    assert main(["eval", "--model", "tiny-gpt2", "--task", "antonym", "--vector", str(tmp_path / "none")]) == 2
    assert "no task vector at" in capsys.readouterr().err


def test_project_onto_heads_recovers_the_span_part_and_drops_the_rest():
    """Independent expectation: v = Σ_h θ[l, h] ā[l, h] + w with w orthogonal to every ā[l, h] (built by QR),
    so the projection must return exactly the first part, θ itself (ā of full rank) and ‖Σθā‖² / ‖v‖² kept."""
    from interp.vectors import project_onto_heads

    gen = torch.Generator().manual_seed(0)
    n_layers, n_heads, d_model = 3, 4, 16
    q, _ = torch.linalg.qr(torch.randn(n_layers, d_model, d_model, generator=gen, dtype=torch.float64))
    # [layer, head, d]: each head mean a combination of the first n_heads columns of q; the rest of q is ⊥ to them
    basis = torch.einsum("lij,lmj->lim", torch.randn(n_layers, n_heads, n_heads, generator=gen, dtype=torch.float64),
                         q[:, :, :n_heads])
    theta = torch.randn(n_layers, n_heads, generator=gen, dtype=torch.float64)
    inside = torch.einsum("lh,lhm->lm", theta, basis)
    outside = torch.einsum("lj,lmj->lm", torch.randn(n_layers, d_model - n_heads, generator=gen, dtype=torch.float64),
                           q[:, :, n_heads:])
    vectors = (inside + outside).float()
    vectors[1] = 0  # an inactive layer stays zero and counts as fully kept
    ltv, kept = project_onto_heads(vectors, basis.float())
    expected_inside = inside.float().clone()
    expected_inside[1] = 0
    torch.testing.assert_close(ltv.layer_vectors(), expected_inside, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ltv.theta[[0, 2]], theta.float()[[0, 2]], atol=1e-4, rtol=1e-4)
    expected_kept = inside.pow(2).sum(-1) / (inside + outside).pow(2).sum(-1)
    assert kept[1] == 1.0
    torch.testing.assert_close(kept[[0, 2]], expected_kept.float()[[0, 2]], atol=1e-5, rtol=1e-5)
    # the rest is orthogonal to every head mean
    rest = vectors - ltv.layer_vectors()
    assert torch.einsum("lm,lhm->lh", rest.double(), basis).abs().max() < 1e-4
    with pytest.raises(Exception, match="disagree on layers"):
        project_onto_heads(vectors[:2], basis.float())


def test_rate_past_edge_steps_one_grid_ratio_beyond_the_chosen_edge():
    from interp.vectors import rate_past_edge

    grid = (0.05, 0.2, 0.8)
    assert rate_past_edge(grid, 0.05) == 0.0125 and rate_past_edge(grid, 0.8) == 3.2
    assert rate_past_edge(grid, 0.2) is None  # interior: the valid split has bracketed its choice
    assert rate_past_edge((0.0125, 0.05, 0.2, 0.8), 0.0125) == 0.003125
    assert rate_past_edge((0.01,), 0.01) is None  # one rate: no grid step to take


def test_lr_grid_extends_past_an_edge_until_the_choice_is_bracketed(monkeypatch):
    """A valid loss with its minimum at lr 0.01, off the grid 0.05-0.8: the grid alone picks its edge 0.05;
    one extension reaches 0.0125 (now the lowest loss, again at an edge), a second tries 0.003125, which loses,
    so 0.0125 is kept with a rate tried on either side of it."""
    import math
    from types import SimpleNamespace

    from interp import vectors

    calls = []

    def fake_fit(method, problem, config, **kwargs):
        calls.append(config.lr)
        loss = math.log(config.lr / 0.01) ** 2
        return SimpleNamespace(meta={"training": {"best_valid_loss": loss, "best_step": 1, "steps_run": 2}})

    monkeypatch.setattr(vectors, "fit", fake_fit)
    grid = (0.05, 0.2, 0.8)
    assert vectors.fit_lr_grid("steer", None, None, grid).meta["training"]["lr"] == 0.05
    calls.clear()
    kept = vectors.fit_lr_grid("steer", None, None, grid, extend=2).meta["training"]
    assert calls == [0.05, 0.2, 0.8, 0.0125, 0.003125]
    assert kept["lr"] == 0.0125 and list(kept["lr_grid"]) == ["0.003125", "0.0125", "0.05", "0.2", "0.8"]
    calls.clear()
    assert vectors.fit_lr_grid("ltv", None, None, (0.001, 0.01, 0.1), extend=2).meta["training"]["lr"] == 0.01
    assert calls == [0.001, 0.01, 0.1]  # chosen inside the grid: nothing extra is fitted
