"""Scoring, confidence intervals (single and paired), the one result type, paired evaluation, and the
`interp eval` / `interp compare` contracts, with their input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import interp
from interp.cli import main
from interp.results import EvaluationError, Result, ResultTable, TokenScores
from interp.stats import StatsError, newcombe_paired_interval, paired_bootstrap_interval, wilson_interval


# ------------------------------------------------------------------------------------------ intervals
def test_wilson_interval_published_values():
    # Newcombe (1998a), Table I, and the textbook 50/100 case
    low, high = wilson_interval(0, 10)
    assert low == 0 and abs(high - 0.2775) < 1e-4
    low, high = wilson_interval(50, 100)
    assert abs(low - 0.4038) < 1e-4 and abs(high - 0.5962) < 1e-4
    low, high = wilson_interval(81, 263)
    assert abs(low - 0.2553) < 1e-4 and abs(high - 0.3662) < 1e-4


def _paired_sample(rng, n, p_both, p_x_only, p_y_only):
    u = rng.random(n)
    x = u < p_both + p_x_only
    y = (u < p_both) | ((u >= p_both + p_x_only) & (u < p_both + p_x_only + p_y_only))
    return x, y


@pytest.mark.parametrize("cells", [(0.5, 0.15, 0.05), (0.1, 0.05, 0.05), (0.7, 0.2, 0.0)])
def test_newcombe_paired_interval_covers_the_true_difference(cells):
    """Coverage by simulation: the paired interval holds the true difference ~95% of the time (Newcombe's
    method 10 is slightly conservative), while the unpaired Wald interval of the same data is far wider."""
    rng = np.random.default_rng(0)
    p_both, p_x, p_y = cells
    truth = p_x - p_y
    hits, widths, unpaired = 0, [], []
    sims = 600
    for _ in range(sims):
        x, y = _paired_sample(rng, 60, p_both, p_x, p_y)
        d, low, high = newcombe_paired_interval(x, y)
        assert abs(d - (x.mean() - y.mean())) < 1e-12 and low <= d <= high
        hits += low <= truth <= high
        widths.append(high - low)
        se = np.sqrt(x.mean() * (1 - x.mean()) / 60 + y.mean() * (1 - y.mean()) / 60)
        unpaired.append(2 * 1.96 * se)
    assert 0.92 <= hits / sims <= 0.995
    if p_both >= 0.5:  # strongly correlated outcomes: pairing must pay off
        assert np.mean(widths) < 0.85 * np.mean(unpaired)


def test_newcombe_symmetry_and_identical_outcomes():
    rng = np.random.default_rng(1)
    x, y = _paired_sample(rng, 40, 0.4, 0.2, 0.1)
    d, low, high = newcombe_paired_interval(x, y)
    d2, low2, high2 = newcombe_paired_interval(y, x)
    assert d == pytest.approx(-d2) and low == pytest.approx(-high2) and high == pytest.approx(-low2)
    same = newcombe_paired_interval(x, x)
    assert same[0] == 0 and same[1] < 0 < same[2] and same[2] - same[1] < 0.1  # agree everywhere: narrow
    with pytest.raises(StatsError, match="equal lengths"):
        newcombe_paired_interval([1, 0], [1])


def test_paired_bootstrap_interval_coverage():
    rng = np.random.default_rng(2)
    hits = 0
    for i in range(200):
        base = rng.normal(size=50)
        x, y = base + rng.normal(0.3, 0.5, size=50), base  # shared per-row noise: pairing removes it
        _, low, high = paired_bootstrap_interval(x, y, n_boot=500, seed=i)
        hits += low <= 0.3 <= high
    assert 0.88 <= hits / 200 <= 0.99


def test_token_scores():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    s = TokenScores.from_logits(logits, torch.tensor([1, 2]))
    assert s.correct.tolist() == [True, False] and s.rank.tolist() == [0, 1]
    assert s.prob[0] == pytest.approx(np.exp(2) / (1 + np.exp(2) + np.exp(1)))


# ------------------------------------------------------------------------------------------ the result type
def test_one_result_type_for_text_and_regression():
    text = Result("accuracy", [1, 0, 1, 1], method="LTV", setting="zero-shot", task="antonym",
                  per_row={"prob": [0.9, 0.1, 0.8, 0.7], "rank": [0, 3, 0, 0]})  # fmt: skip
    reg = Result.from_errors([0.5, 1.5, 1.0], "long", "FV", {"function_class": "linear", "shift": "noisy"})
    assert text.value == 0.75 and text.accuracy == 0.75 and text.correct == [True, False, True, True]
    assert text.ci == pytest.approx((0.3006, 0.9544), abs=1e-4)  # Wilson 3/4
    assert reg.value == 1.0 and reg.error == 1.0 and reg.task == "linear+noisy" and reg.n == 3
    assert reg.ci == pytest.approx((1 - 1.96 * 0.5 / np.sqrt(3), 1 + 1.96 * 0.5 / np.sqrt(3)))
    assert not hasattr(reg, "accuracy") and not hasattr(text, "error")  # callers may still branch on these
    for r in (text, reg):
        frame = r.to_frame()
        assert len(frame) == 1 and frame[r.metric].iloc[0] == r.value
        assert len(r.to_frame(per_row=True)) == r.n
        html = r._repr_html_()
        assert "<table" in html and r.method in html
        assert json.loads(json.dumps(r.to_dict()))[r.metric] == r.value
    sub = text.subset([True, True, False, False])
    assert sub.value == 0.5 and sub.prob == [0.9, 0.1]
    with pytest.raises(EvaluationError, match="mask has 1 entries"):
        text.subset([True])
    with pytest.raises(EvaluationError, match="per-row column 'prob' has 1 values"):
        Result("accuracy", [1, 0], per_row={"prob": [0.5]})
    table = ResultTable([text, reg])
    assert table.to_frame().shape[0] == 2 and "| antonym | zero-shot | LTV | 0.750 |" in table.to_markdown()


# ------------------------------------------------------------------------------------------ paired evaluation
@pytest.fixture(scope="module")
def problem(tiny_gpt2, builtin_task):
    return interp.TextProblem(tiny_gpt2, builtin_task, shots=2)


@pytest.fixture(scope="module")
def fv(problem):
    return interp.fit("fv", problem, interp.FVConfig(top_k=2, n_mean=6, n_cie=2, n_valid=6), progress=False)


def test_every_method_sees_the_same_queries(problem, fv):
    none = interp.evaluate(problem, "none", "zero-shot", n=9)
    icl = interp.evaluate(problem, "icl", "zero-shot", n=9)
    vec = interp.evaluate(problem, fv, "zero-shot", n=9)
    assert none.per_row["query"] == icl.per_row["query"] == vec.per_row["query"]
    assert icl.setting == "icl" and none.setting == vec.setting == "zero-shot"
    # the same prompts as the vector's own evaluate and as a fresh problem (cache state does not matter)
    assert fv.evaluate(problem, "zero-shot", n=9).per_row == vec.per_row
    fresh = interp.TextProblem(problem.model, problem.task, shots=2)
    small_first = interp.evaluate(fresh, "none", "zero-shot", n=4)
    assert small_first.per_row == interp.evaluate(problem, "none", "zero-shot", n=4).per_row
    # demos of the clean prompts really are the k-shot ones (and differ from zero-shot only by them)
    batch = problem.batch("icl", "test", 9)
    assert all(t.count("Q:") == 3 for t in batch.texts)


def test_evaluate_errors(problem):
    for bad, message in [(-1, "positive number"), (0, "positive number"), (2.5, "positive integer")]:
        with pytest.raises(EvaluationError, match=message):
            interp.evaluate(problem, "none", "zero-shot", n=bad)
    with pytest.raises(EvaluationError, match="unknown method 42"):
        interp.evaluate(problem, 42, "zero-shot", n=2)
    r = interp.evaluate(problem, "none", "zero-shot", n=1000)
    assert r.n == len(problem.task.test) and r.meta["n_requested"] == 1000


def test_compare_paired_differences(problem, fv):
    c = interp.compare(problem, ["none", "icl", fv, fv.at_layer(1)], "zero-shot", n=10)
    d = c.to_dict()
    assert d["reference"] == "none" and [r["method"] for r in d["rows"]] == ["none", "icl", "FV", "FV #2"]
    none = c["none"].correct
    for row in d["rows"]:
        assert set(row) == {"method", "n", "accuracy", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high"}
        mine = c[row["method"]].correct
        assert row["n"] == 10 and row["diff"] == pytest.approx(np.mean(mine) - np.mean(none))
        assert row["diff_ci_low"] <= row["diff"] <= row["diff_ci_high"]
    assert c.to_frame().shape == (4, 8) and "paired CI" in c._repr_html_()
    by_icl = interp.compare(problem, ["none", fv], "zero-shot", reference="icl", n=10)
    assert list(by_icl.results) == ["icl", "none", "FV"] and by_icl.diffs["icl"] == (0.0, 0.0, 0.0)


def test_compare_refuses_unpaired_regression_settings():
    from interp.regression import RegressionConfig, RegressionTransformer

    torch.manual_seed(0)
    model = RegressionTransformer(RegressionConfig(n_dims=3, n_points=6, n_layers=2, n_heads=2, d_model=32)).eval()
    problem = interp.RegressionProblem.for_model(model)
    c = interp.compare(problem, ["none"], "long", n=8)
    assert c.metric == "error" and c["none"].n == 8
    with pytest.raises(EvaluationError, match="not scored on the same prompts"):
        interp.compare(problem, ["none", "icl"], "long", n=8)
    # rows of a regression batch depend on n, so a cached larger batch is never sliced for a smaller one
    big = problem.batch("long", "test", 8)
    small = problem.batch("long", "test", 4)
    fresh = interp.RegressionProblem.for_model(model).batch("long", "test", 4)
    assert torch.equal(small.inputs, fresh.inputs) and not torch.equal(big.targets[:4], small.targets)


# ------------------------------------------------------------------------------------------ the CLI
def test_cli_eval_json(capsys):
    assert main(["eval", "--model", "tiny-llama", "--task", "antonym", "--n", "7", "--shots", "2", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "ci_low", "ci_high", "n", "skipped", "metric"):
        assert key in rec
    assert rec["n"] == 7


def test_cli_eval_compare_and_api_agree(tmp_path, capsys, problem):
    """`interp eval`, `interp eval --vector`, `interp compare` and the API score the same prompts."""
    out = tmp_path / "fv"
    # builtin: the same task as the `problem` fixture whatever $INTERP_TASKS_DIR says (CI points it at the suite)
    assert main(["fit", "--method", "fv", "--model", "tiny-gpt2", "--task", "builtin:antonym", "--shots", "2",
                 "--out", str(out), "--top-k", "2", "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    common = ["--model", "tiny-gpt2", "--task", "builtin:antonym", "--setting", "zero-shot", "--n", "8", "--json"]
    assert main(["eval", *common, "--shots", "2"]) == 0
    bare = json.loads(capsys.readouterr().out)
    assert main(["eval", *common, "--vector", str(out)]) == 0
    steered = json.loads(capsys.readouterr().out)
    assert main(["compare", *common, "--vector", str(out)]) == 0
    table = json.loads(capsys.readouterr().out)
    assert set(table) == {"reference", "rows"} and table["reference"] == "none"
    rows = {r["method"]: r for r in table["rows"]}
    assert list(rows) == ["none", "icl", "FV"]
    assert rows["none"]["accuracy"] == bare["accuracy"] and rows["FV"]["accuracy"] == steered["accuracy"]
    api_none = interp.evaluate(problem, "none", "zero-shot", n=8)
    api_fv = interp.evaluate(problem, interp.load_vector(out, problem.model), "zero-shot", n=8)
    assert bare["target_prob"] == pytest.approx(np.mean(api_none.prob), abs=1e-6)
    assert steered["target_prob"] == pytest.approx(np.mean(api_fv.prob), abs=1e-6)
    assert main(["compare", *common, "--vector", str(out), "--reference", "nope"]) == 2
    assert "--reference 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "--model", "nope", "--task", "antonym"], "Unknown model 'nope'"),
        (["eval", "--model", "tiny-gpt2", "--task", "nope"], "unknown task 'nope'"),
        (["eval", "--model", "tiny-gpt2", "--task", "antonym", "--tasks-dir", "/no/such/dir"], "does not exist"),
        (["eval", "--model", "tiny-gpt2", "--task", "builtin:antonym", "--shots", "999"], "too few for 999-shot"),
        (["eval", "--model", "tiny-gpt2", "--task", "antonym", "--n", "-1"], "argument --n: must be a positive integer, got -1"),
        (["eval", "--model", "tiny-gpt2", "--task", "antonym", "--n", "0"], "argument --n: must be a positive integer, got 0"),
        (["eval", "--model", "tiny-gpt2", "--task", "antonym", "--n", "x"], "argument --n: expected a positive integer"),
        (["eval", "--model", "tiny-gpt2", "--task", "antonym", "--shots", "-2"], "argument --shots: must be >= 0, got -2"),
        (["compare", "--model", "tiny-gpt2", "--task", "antonym", "--n", "-5"], "argument --n: must be a positive"),
        (["fit", "--method", "ltv", "--model", "tiny-gpt2", "--task", "antonym", "--out", "/tmp/x", "--corruption", "icl"],
         "--corruption 'icl': 'icl' is the clean setting"),
        (["fit", "--method", "ltv", "--model", "tiny-gpt2", "--task", "antonym", "--out", "/tmp/x", "--corruption", "dummy"],
         "--corruption 'dummy': corruption 'dummy' is a clean setting"),
        (["fit", "--method", "ltv", "--model", "tiny-gpt2", "--task", "antonym", "--out", "/tmp/x", "--corruption", "noisy"],
         "--corruption 'noisy': unknown setting 'noisy'"),
        (["fit", "--method", "ltv", "--model", "tiny-gpt2", "--task", "antonym", "--out", "/tmp/x", "--steps", "0"],
         "argument --steps: must be a positive integer"),
        (["fit", "--method", "fv", "--model", "tiny-gpt2", "--task", "antonym", "--out", "/tmp/x", "--top-k", "0"],
         "argument --top-k: must be a positive integer"),
        (["fit", "--method", "fv", "--model", "tiny-gpt2", "--task", "antonym", "--out", "/tmp/x", "--steps", "5"],
         "--steps applies to --method ltv only"),
        (["fit", "--method", "tv", "--model", "tiny-gpt2", "--task", "antonym", "--out", "/tmp/x", "--layer", "7"],
         "--layer 7 is out of range for a 2-layer model"),
        (["regress", "eval", "--class", "linear", "--n", "-3"], "argument --n: must be a positive integer"),
    ],
)  # fmt: skip
def test_cli_errors(capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse errors exit from inside the parser
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_eval_says_what_n_it_used(capsys):
    assert main(["eval", "--model", "tiny-gpt2", "--task", "builtin:antonym", "--shots", "2", "--n", "500", "--json"]) == 0
    captured = capsys.readouterr()
    rec = json.loads(captured.out)
    assert rec["n"] == 48 and "--n 500 asked for more queries than split 'test' of 'antonym' holds; used n=48" in captured.err


@pytest.mark.slow
def test_smollm2_icl_beats_zero_shot(smollm2):
    problem = interp.TextProblem(smollm2, interp.load_task("builtin:capitalize"), shots=5)
    c = interp.compare(problem, ["none", "icl"], "zero-shot", n=24)
    assert c["icl"].accuracy >= 0.6 and c.diffs["icl"][1] > 0.2  # paired: the lower bound of the gain


def test_adhoc_hooks_and_labels(problem, fv):
    """An intervention given as hooks is scored like the vector it came from, under its own label."""
    mine = interp.evaluate(problem, hooks=fv.hooks(problem.model), label="my FV", setting="zero-shot", n=6)
    assert mine.method == "my FV" and mine.per_row == interp.evaluate(problem, fv, "zero-shot", n=6).per_row
    assert interp.evaluate(problem, hooks=[], setting="zero-shot", n=6).method == "hooks"
    with pytest.raises(EvaluationError, match="either a method or hooks="):
        interp.evaluate(problem, fv, "zero-shot", hooks=[], n=6)
    c = interp.compare(problem, [fv, fv], "zero-shot", n=6)
    assert [r.method for r in c.results.values()] == ["none", "FV", "FV #2"]
    assert set(c["FV"].to_frame(per_row=True).task) == {"antonym"}
