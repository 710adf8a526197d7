"""Scoring: one result type for every method and modality, paired comparisons, confidence intervals.

What is computed.

- A `Result` holds one *per-row score* per prompt (``1``/``0`` top-1 first-token correct for text;
  normalised squared error ``(ŷ - y)² / d`` for regression), its mean (``value``: accuracy or error),
  a 95% CI, ``n``, and metadata (task, setting, method, split, seeds). Accuracy is plain accuracy over
  *every* scored query (never only over items some method got right, a bias of the reference code), with
  a Wilson score interval, which behaves at 0% and 100% where the normal approximation does not; a mean
  error gets a mean ± 1.96 standard-error interval. Todd et al.'s filter (keep only items the model
  answers correctly with clean k-shot ICL) is available separately via `Result.subset`.
- `evaluate(problem, method, setting)` scores one method: ``"none"`` (the bare model), ``"icl"`` (clean
  k-shot prompts on the same queries), or any task vector. Every evaluation draws its prompts from
  ``problem.batch(setting, split, n, seed)``, the one seed derivation of the toolkit, so the same
  ``(problem, setting, split, n, seed)`` gives the same prompts whatever the method, in the API and the CLI.
- `compare(problem, methods, setting)` scores several methods on those same prompts and reports each one's
  difference to a reference method with a *paired* 95% CI: Newcombe's hybrid score interval for the
  difference of paired proportions (method 10 of Newcombe 1998) for accuracy, a paired percentile
  bootstrap of the mean difference (2,000 resamples of the prompts, seeded) for regression errors. Paired
  intervals are much narrower than two independent ones when both methods succeed and fail on the same
  prompts, so "LTV beats FV on this task" is a statement with a tested CI.

Example on a tiny random model (any `HookedTransformer` works the same way)::

    >>> import interp
    >>> model = interp.load_model("tiny-gpt2")
    >>> problem = interp.TextProblem(model, interp.load_task("builtin:antonym"), shots=2)
    >>> r = interp.evaluate(problem, "none", "zero-shot", n=8)
    >>> r.metric, r.n, len(r.scores)
    ('accuracy', 8, 8)
    >>> table = interp.compare(problem, ["none", "icl"], "zero-shot", n=8)
    >>> [row["method"] for row in table.to_dict()["rows"]]
    ['none', 'icl']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp.interventions import Hook
from interp.results import DIFF_CI, EvaluationError, Result, check_n
from interp.stats import newcombe_paired_interval, paired_bootstrap_interval
from interp.vectors.base import TaskVector, load_vector

__all__ = ["Comparison", "EvaluationError", "Result", "compare", "evaluate"]


# ---------------------------------------------------------------------------------------- evaluate / compare
def _resolve(problem, method) -> tuple[str, Any]:
    """(label, vector or None) for a method spec: "none", "icl", a TaskVector or a saved vector's directory."""
    if isinstance(method, str) and method in ("none", "icl"):
        return method, None
    if isinstance(method, (str, Path)):
        vec = load_vector(method, problem.model)
    elif isinstance(method, TaskVector):
        vec = method
    else:
        raise EvaluationError(
            f"unknown method {method!r}: use 'none' (bare model), 'icl' (clean k-shot prompts), a fitted "
            "task vector, or the directory of a saved one"
        )
    if hasattr(vec, "for_task") and len(getattr(vec, "tasks", [])) > 1:
        vec = vec.for_task(problem.name)
    return vec.label, vec


def evaluate(
    problem,
    method: Any = "none",
    setting: str | None = None,
    *,
    split: str = "test",
    n: int | None = 100,
    seed: int = 0,
    hooks: Sequence[Hook] | None = None,
    label: str | None = None,
) -> Result:
    """Score ``method`` on ``problem`` in ``setting`` on the ``split``'s first ``n`` prompts.

    Args:
        problem: a `TextProblem` or `RegressionProblem`.
        method: ``"none"`` (no intervention), ``"icl"`` (clean k-shot prompts: the ceiling; ``setting`` is
            then ``"icl"``), a fitted `TaskVector`, or the directory of a saved one.
        setting: the prompts (text: ``zero-shot`` / ``shuffled`` / ``icl``; regression: ``long`` / ``k=N`` /
            ...). Default: the problem's first corruption.
        n: number of prompts (None: the whole split); a larger n than the split holds uses the whole split
            and records ``n_requested`` in ``meta``.
        seed: prompt seed; the same ``(problem, setting, split, n, seed)`` gives the same prompts whatever
            the method (see `interp.problems.Problem.batch`).
        hooks / label: an ad-hoc intervention (TransformerLens hooks applied at the final token) and its name.

    >>> import interp
    >>> problem = interp.TextProblem(interp.load_model("tiny-gpt2"), interp.load_task("builtin:antonym"), shots=2)
    >>> interp.evaluate(problem, "none", "zero-shot", n=4).n
    4
    """
    check_n(n)
    setting = setting or problem.corruptions[0]
    name, vec = _resolve(problem, method)
    if hooks is not None:
        if method != "none":
            raise EvaluationError("give either a method or hooks=, not both")
        name = label or "hooks"
    if name == "icl":
        setting = "icl"
    if vec is not None:
        return vec.evaluate(problem, setting, split=split, n=n, seed=seed, label=label)
    return problem.score(setting, list(hooks or []), split=split, n=n, seed=seed, label=label or name,
                         full_forward=name == "icl")  # fmt: skip


@dataclass
class Comparison:
    """Several methods on the same prompts: each one's value and CI, and its paired difference to ``reference``.

    ``to_dict()`` is the JSON of ``interp compare --json``:
    ``{"reference": ..., "rows": [{"method", "n", <metric>, "ci_low", "ci_high", "diff", "diff_ci_low",
    "diff_ci_high"}, ...]}``; ``diff = value(method) - value(reference)`` with the paired CI named by
    ``diff_ci_method``.
    """

    reference: str
    results: dict[str, Result]
    diffs: dict[str, tuple[float, float, float]]
    metric: str

    @property
    def diff_ci_method(self) -> str:
        return DIFF_CI[self.metric]

    def __getitem__(self, method: str) -> Result:
        return self.results[method]

    def rows(self) -> list[dict]:
        out = []
        for label, r in self.results.items():
            low, high = r.ci
            d, d_low, d_high = self.diffs[label]
            out.append({"method": label, "n": r.n, self.metric: r.value, "ci_low": low, "ci_high": high,
                        "diff": d, "diff_ci_low": d_low, "diff_ci_high": d_high})  # fmt: skip
        return out

    def to_dict(self) -> dict:
        return {"reference": self.reference, "rows": self.rows()}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows())

    def __repr__(self) -> str:
        any_r = next(iter(self.results.values()))
        lines = [f"Comparison on {any_r.task!r} (paired, reference {self.reference!r}; diff CI: {self.diff_ci_method})"]
        for row in self.rows():
            lines.append(
                f"  {row['method']:<16} {self.metric} {row[self.metric]:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
                f"  diff {row['diff']:+.3f} [{row['diff_ci_low']:+.3f}, {row['diff_ci_high']:+.3f}]  n={row['n']}"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        any_r = next(iter(self.results.values()))
        caption = (
            f"<b>{any_r.task}</b>, {self.metric} with 95% CIs; <i>diff</i> = method − {self.reference!r} on the same "
            f"prompts, paired CI: {self.diff_ci_method}"
        )
        return f"<div>{caption}{self.to_frame().to_html(index=False, float_format=lambda v: f'{v:.3f}')}</div>"


def _row_ids(problem, result_batch) -> list:
    ids = getattr(problem, "row_ids", None)
    return ids(result_batch) if ids is not None else list(range(len(result_batch)))


def compare(
    problem,
    methods: Sequence[Any] = ("none", "icl"),
    setting: str | None = None,
    *,
    reference: Any = "none",
    split: str = "test",
    n: int | None = 100,
    seed: int = 0,
) -> Comparison:
    """Score every method on the same prompts; each row adds the paired difference to ``reference``.

    ``methods`` are as in `evaluate` (``"none"``, ``"icl"``, task vectors, saved vectors' directories);
    ``reference`` is added first when it is not among them. Accuracy differences get Newcombe's paired
    interval, error differences a paired bootstrap (see the module docstring).

    >>> import interp
    >>> problem = interp.TextProblem(interp.load_model("tiny-gpt2"), interp.load_task("builtin:antonym"), shots=2)
    >>> c = interp.compare(problem, ["icl"], "zero-shot", n=6)
    >>> list(c.results), c["none"].n, c.diffs["none"]
    (['none', 'icl'], 6, (0.0, 0.0, 0.0))
    """
    check_n(n)
    setting = setting or problem.corruptions[0]
    specs = list(methods)
    if not specs:
        raise EvaluationError("compare needs at least one method")
    if not any(_same_spec(m, reference) for m in specs):
        specs.insert(0, reference)
    results: dict[str, Result] = {}
    row_ids: dict[str, list] = {}
    ref_label = None
    for spec in specs:
        result = evaluate(problem, spec, setting, split=split, n=n, seed=seed)
        label = _unique(result.method, results)
        result.method = label
        results[label] = result
        batch_setting = "icl" if label == "icl" or result.setting == "icl" else setting
        row_ids[label] = _row_ids(problem, problem.batch(batch_setting, split, n, seed))
        if ref_label is None and _same_spec(spec, reference):
            ref_label = label
    assert ref_label is not None
    ref = results[ref_label]
    metric = ref.metric
    diffs = {}
    for label, r in results.items():
        if row_ids[label] != row_ids[ref_label]:
            raise EvaluationError(
                f"{label!r} and {ref_label!r} were not scored on the same prompts in this problem "
                f"(setting {r.setting!r} vs {ref.setting!r} draw different rows), so no paired difference exists"
            )
        if label == ref_label:
            diffs[label] = (0.0, 0.0, 0.0)
        elif metric == "accuracy":
            diffs[label] = newcombe_paired_interval(r.correct, ref.correct)
        else:
            diffs[label] = paired_bootstrap_interval(r.scores, ref.scores)
    return Comparison(reference=ref_label, results=results, diffs=diffs, metric=metric)


def _same_spec(a, b) -> bool:
    if isinstance(a, (str, Path)) and isinstance(b, (str, Path)):
        return str(a) == str(b)
    return a is b


def _unique(label: str, taken: dict) -> str:
    if label not in taken:
        return label
    i = 2
    while f"{label} #{i}" in taken:
        i += 1
    return f"{label} #{i}"
