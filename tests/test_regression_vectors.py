"""LTV / FV on in-context regression through the same method code as text (RegressionProblem)."""

from __future__ import annotations

import json

import pytest
import torch

from interp.cli import main
from interp.engine import FrozenPrefix, final_logits
from interp.regression import RegressionConfig, RegressionTransformer
from analyses.regression_length import POS_CONTROL, run_length_experiment
from interp.regression.problem import RegressionProblem
from interp.vectors import FVConfig, LTVConfig, fit_fv, fit_ltv


@pytest.fixture(scope="module")
def tiny_regressor():
    torch.manual_seed(0)
    model = RegressionTransformer(RegressionConfig(n_dims=3, n_points=6, n_layers=2, n_heads=2, d_model=32))
    model.eval()
    return model


def test_long_batches_are_left_padded_and_engine_exact(tiny_regressor):
    problem = RegressionProblem.for_model(tiny_regressor)
    batch, prefix = problem.prefix("long", "train", 12)
    lengths = batch.attention_mask.sum(1)
    assert lengths.min() < lengths.max() and batch.attention_mask[:, -1].all()
    assert ((batch.n_demos >= 6) & (batch.n_demos <= 11)).all()
    with torch.no_grad():
        full = final_logits(tiny_regressor, batch.inputs, batch.attention_mask)
        assert (prefix.run() - full).abs().max() < 1e-4


def test_shuffled_keeps_xs_and_query(tiny_regressor):
    problem = RegressionProblem.for_model(tiny_regressor)
    clean = problem.batch("icl", "train", 4)
    assert clean.inputs.shape[1] == 2 * 5 + 1 and (clean.n_demos == 5).all()
    shuffled = problem.batch("shuffled", "train", 4)
    assert shuffled.inputs.shape == clean.inputs.shape


def test_ltv_and_fv_on_regression(tiny_regressor):
    problem = RegressionProblem.for_model(tiny_regressor, shift="scaled")
    ltv = fit_ltv(problem, LTVConfig(n_mean=16, n_train=32, n_valid=16, steps=10, batch_size=8, eval_every=5), progress=False)
    assert ltv.theta.shape == (2, 2) and ltv.meta["corruptions"] == ["long"]
    fv = fit_fv(problem, FVConfig(top_k=2, n_mean=16, n_cie=4, n_valid=16), progress=False)
    assert fv.cie.shape == (2, 2) and len(fv.top_heads()) == 2
    res = ltv.evaluate(problem, "long", n=8)
    batch = problem.batch("long", "test", 8)
    with torch.no_grad():
        out = final_logits(tiny_regressor, batch.inputs, batch.attention_mask, ltv.hooks(tiny_regressor))
    expected = ((out[:, 0] - batch.targets) ** 2 / 3).tolist()  # normalised squared error, d = 3
    assert res.n == 8 and res.errors == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_length_experiment_schema(tiny_regressor):
    r = run_length_experiment("linear", quick=True, n_test=8, model=tiny_regressor)
    assert r["k"] == list(range(1, 13)) and r["trained_length"] == 6
    for name in ("model", "model+LTV", "model+FV", "model+random-θ", POS_CONTROL, "least_squares"):
        assert len(r["curves"][name]["mean"]) == 12 and name in r["summary"]
    json.dumps(r)  # plain data


def test_bad_inputs(tiny_regressor, capsys):
    with pytest.raises(ValueError, match="unknown regression setting"):
        RegressionProblem.for_model(tiny_regressor).batch("weird", "test", 2)
    with pytest.raises(ValueError, match="do not fit the model's context"):
        RegressionProblem.for_model(tiny_regressor).batch("k=99", "test", 2)
    with pytest.raises(ValueError):
        RegressionProblem.for_model(tiny_regressor, shift="sideways")
    assert main(["regress", "eval", "--class", "cubic", "--n", "5"]) == 2
    assert "unknown function class 'cubic'" in capsys.readouterr().err


def test_cli_regress_eval_json(capsys):
    assert main(["regress", "eval", "--class", "linear", "--n", "50", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("trained_length", "in_range_error", "beyond_error", "curve", "k"):
        assert key in rec
    assert rec["in_range_error"] < 0.05
