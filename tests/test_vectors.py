"""The three task-vector methods on tiny models: one interface, artifacts, controls, training mechanics."""

from __future__ import annotations

import json

import pytest
import torch

from interp.activations import head_activations
from interp.cli import main
from interp.engine import final_logits
from interp.interventions import patch_head
from interp.problems import TextProblem
from interp.vectors import (
    FVConfig, LTVConfig, TVConfig, VectorError, causal_indirect_effects, fit, fit_ltv, load_vector,
)  # fmt: skip

SMALL_LTV = LTVConfig(steps=12, n_train=16, n_valid=8, n_mean=8, batch_size=8, eval_every=4)


@pytest.fixture()
def problem(tiny_model, builtin_task):
    return TextProblem(tiny_model, builtin_task, shots=3)


def test_ltv_learns_and_reports(problem):
    vec = fit("ltv", problem, LTVConfig(**{**SMALL_LTV.to_dict(), "lr": 0.2, "steps": 30, "patience": 50}), progress=False)
    curve = vec.meta["training"]["curve"]
    assert curve[0]["step"] == 0 and curve[-1]["step"] == 30
    # training reduces the (train) loss; the selected θ is the one with the best valid loss
    assert min(c["valid_loss"] for c in curve) == vec.meta["training"]["best_valid_loss"]
    assert vec.theta.shape == (problem.model.cfg.n_layers, problem.model.cfg.n_heads)
    if vec.meta["training"]["best_step"] > 0:
        assert vec.theta.abs().sum() > 0
    control = vec.random_control(seed=1)
    assert torch.allclose(control.theta.norm(), vec.theta.norm(), atol=1e-5)
    for setting in ("zero-shot", "shuffled"):
        r = vec.evaluate(problem, setting, n=8)
        assert r.n == 8 and r.method == "LTV"


def test_ltv_vector_is_weighted_head_sum(problem):
    vec = fit("ltv", problem, SMALL_LTV, progress=False)
    theta = torch.randn_like(vec.theta)
    vec.tensors["theta"] = theta
    batch = problem.batch("icl", "train", SMALL_LTV.n_mean)
    a_mean = head_activations(problem.model, batch.inputs, batch.attention_mask).mean_contributions
    expected = (theta[..., None] * a_mean).sum(1)
    assert torch.allclose(vec.layer_vectors(), expected, atol=1e-5)


def test_chunks_basis_reproduces_reference(problem):
    vec = fit("ltv", problem, LTVConfig(**{**SMALL_LTV.to_dict(), "basis": "chunks", "steps": 2}), progress=False)
    basis = vec.basis[0]  # [L, H, d]: head h owns one slice of the residual, together they sum to attn_out
    width = problem.model.cfg.d_model // problem.model.cfg.n_heads
    assert (basis[:, 1, :width] == 0).all() and (basis[:, 0, width:] == 0).all()


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
    import interp.vectors.ltv as ltv_mod

    real_run = ltv_mod.FrozenPrefix.run
    count = {"n": 0}

    def interrupting(self, hooks=()):
        if torch.is_grad_enabled():
            count["n"] += 1
            if count["n"] == 7:
                raise KeyboardInterrupt
        return real_run(self, hooks)

    monkeypatch.setattr(ltv_mod.FrozenPrefix, "run", interrupting)
    with pytest.raises(KeyboardInterrupt):
        fit_ltv(problem, cfg, checkpoint_dir=tmp_path / "b", progress=False)
    saved = load_vector(tmp_path / "b", problem.model)
    assert "interrupted at step 6" in saved.meta["training"]["stopped"]
    monkeypatch.setattr(ltv_mod.FrozenPrefix, "run", real_run)
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
    n_heads_total = problem.model.cfg.n_layers * problem.model.cfg.n_heads
    fv = fit("fv", problem, FVConfig(top_k=3, n_mean=8, n_cie=4, n_valid=8), progress=False)
    assert len(fv.top_heads()) == 3 and set(fv.meta["layer_sweep"]) == {"0", "1"}
    top = fv.top_heads()
    assert torch.allclose(fv.vector, sum(fv.tensors["head_means"][l, h] for l, h in top), atol=1e-6)
    assert fv.cie.flatten().argsort(descending=True)[0] == top[0][0] * problem.model.cfg.n_heads + top[0][1]
    with pytest.raises(VectorError, match="top_k"):
        fit("fv", problem, FVConfig(top_k=n_heads_total + 1), progress=False)
    # the sweep (run_from each candidate layer) equals evaluating the vector at that layer in full
    for layer, value in fv.meta["layer_sweep"].items():
        assert abs(fv.at_layer(int(layer)).valid_metric(problem, problem.corruptions, 8) - value) < 1e-9
    tv = fit("tv", problem, TVConfig(n_source=8, n_valid=8), progress=False)
    assert tv.hidden.shape == (problem.model.cfg.n_layers, problem.model.cfg.d_model)
    assert tv.evaluate(problem, "zero-shot", n=8).n == 8


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
    with pytest.raises(VectorError, match="say which task"):
        vec.hooks(tiny_gpt2)
    assert vec.for_task("capitalize").evaluate(problems[1], "zero-shot", n=4).n == 4


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
