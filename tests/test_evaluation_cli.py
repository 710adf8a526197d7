"""Scoring, confidence intervals, the result table, and the `interp eval` contract."""

from __future__ import annotations

import json

import pytest
import torch

from interp.cli import main
from interp.evaluation import EvalResult, ResultTable, TokenScores, evaluate, wilson_interval


def test_wilson_interval():
    low, high = wilson_interval(0, 10)
    assert low == 0 and 0.25 < high < 0.35
    low, high = wilson_interval(50, 100)
    assert abs(low - 0.404) < 1e-3 and abs(high - 0.596) < 1e-3


def test_token_scores():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    s = TokenScores.from_logits(logits, torch.tensor([1, 2]))
    assert s.correct.tolist() == [True, False] and s.rank.tolist() == [0, 1]
    assert torch.allclose(s.prob.sum(), logits.softmax(-1)[[0, 1], [1, 2]].sum())


def test_evaluate_and_table(tiny_gpt2, builtin_task):
    r = evaluate(tiny_gpt2, builtin_task, setting="icl", shots=2, n=10, progress=False)
    assert r.n == 10 and 0 <= r.accuracy <= 1 and r.ci[0] <= r.accuracy <= r.ci[1]
    table = ResultTable([r, r.subset([True] * 5 + [False] * 5)])
    assert table.to_dataframe().shape[0] == 2 and "| antonym | icl | none |" in table.to_markdown()


def test_cli_eval_json(capsys):
    assert main(["eval", "--model", "tiny-llama", "--task", "antonym", "--n", "7", "--shots", "2", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "ci_low", "ci_high", "n", "skipped"):
        assert key in rec
    assert rec["n"] == 7


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "--model", "nope", "--task", "antonym"], "Unknown model 'nope'"),
        (["eval", "--model", "tiny-gpt2", "--task", "nope"], "unknown task 'nope'"),
        (["eval", "--model", "tiny-gpt2", "--task", "antonym", "--tasks-dir", "/no/such/dir"], "does not exist"),
        (["eval", "--model", "tiny-gpt2", "--task", "builtin:antonym", "--shots", "999"], "too few for 999-shot"),
    ],
)
def test_cli_errors(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2_icl_beats_zero_shot(smollm2):
    from interp.tasks import load_task

    task = load_task("builtin:capitalize")
    icl = evaluate(smollm2, task, setting="icl", shots=5, n=24, progress=False)
    zero = evaluate(smollm2, task, setting="zero-shot", n=24, progress=False)
    assert icl.accuracy >= 0.6 and icl.accuracy > zero.accuracy + 0.3
