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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.engine import FrozenPrefix, final_logits
from interp.interventions import Hook
from interp.prompts import PromptBatch

#: metric name -> True when higher is better
METRICS = {"accuracy": True, "error": False}
DIFF_CI = {
    "accuracy": "Newcombe (1998) method 10: hybrid score interval for a difference of paired proportions",
    "error": "paired percentile bootstrap of the mean difference (2000 resamples of prompts, seed 0)",
}


class EvaluationError(ValueError):
    """An evaluation cannot run as asked (bad n, unknown method, unpaired rows); the message says the fix."""


# ---------------------------------------------------------------------------------------- intervals
def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    >>> [round(x, 4) for x in wilson_interval(50, 100)]
    [0.4038, 0.5962]
    """
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    # the bounds are exactly 0 at 0 successes and 1 at n (no float residue like 3e-18)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def mean_ci(values: Sequence[float] | np.ndarray, z: float = 1.96) -> tuple[float, float, float]:
    """(mean, low, high) with a normal-approximation interval of the mean."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (float("nan"),) * 3
    mean = float(arr.mean())
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else 0.0
    return mean, mean - z * se, mean + z * se


def newcombe_paired_interval(x: Sequence[bool], y: Sequence[bool], z: float = 1.96) -> tuple[float, float, float]:
    """Difference ``mean(x) - mean(y)`` of two paired binary outcomes and its 95% CI (Newcombe 1998, method 10).

    ``x[i]`` and ``y[i]`` are two methods' outcomes on the same prompt ``i``. The interval combines the two
    Wilson intervals of the marginal proportions, corrected by the correlation ``φ`` of the 2×2 table of
    pairs, so it is narrow when the methods agree on most prompts.

    >>> d, lo, hi = newcombe_paired_interval([1] * 30 + [0] * 10, [1] * 20 + [0] * 20)
    >>> round(d, 3), lo > 0
    (0.25, True)
    """
    x_arr, y_arr = np.asarray(x, dtype=bool), np.asarray(y, dtype=bool)
    if x_arr.shape != y_arr.shape:
        raise EvaluationError(f"paired outcomes need equal lengths, got {x_arr.size} and {y_arr.size}")
    n = x_arr.size
    if n == 0:
        return (float("nan"),) * 3
    a = int((x_arr & y_arr).sum())
    b = int((x_arr & ~y_arr).sum())
    c = int((~x_arr & y_arr).sum())
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denom) if denom > 0 else 0.0
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    eps = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    diff = p1 - p2
    return diff, max(-1.0, diff - delta), min(1.0, diff + eps)


def paired_bootstrap_interval(
    x: Sequence[float], y: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``x - y`` over paired rows and its percentile-bootstrap CI (prompts resampled with replacement)."""
    diff = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    if diff.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(n_boot, diff.size))].mean(1)
    alpha = (1 - level) / 2
    return float(diff.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


# ---------------------------------------------------------------------------------------- per-row scores
@dataclass
class TokenScores:
    """Per-query scores of the target's first token at the final position."""

    correct: Tensor  # bool [batch]
    prob: Tensor  # float [batch]
    rank: Tensor  # long [batch], 0 = top-1

    @classmethod
    def from_logits(cls, logits: Float[Tensor, "batch d_vocab"], targets: Int[Tensor, " batch"]) -> TokenScores:
        logits = logits.detach().float()
        targets = targets.to(logits.device)
        target_logit = logits.gather(1, targets[:, None])
        rank = (logits > target_logit).sum(1)
        prob = logits.softmax(-1).gather(1, targets[:, None]).squeeze(1)
        return cls(correct=(rank == 0).cpu(), prob=prob.cpu(), rank=rank.cpu())

    @classmethod
    def cat(cls, parts: Sequence[TokenScores]) -> TokenScores:
        return cls(*(torch.cat([getattr(p, f) for p in parts]) for f in ("correct", "prob", "rank")))


# ---------------------------------------------------------------------------------------- the result type
@dataclass
class Result:
    """Per-row scores of one (task, setting, method) cell with their mean, 95% CI and metadata.

    The same type for text (``metric="accuracy"``, scores 1/0) and regression (``metric="error"``).
    ``to_dict`` is the JSON contract of ``interp eval --json``; ``to_frame`` gives a DataFrame (one row,
    or one row per prompt with ``per_row=True``); in a notebook the result renders as a small table.

    >>> r = Result("accuracy", [1.0, 0.0, 1.0, 1.0], method="LTV", setting="zero-shot", task="antonym")
    >>> r.value, r.n, r.accuracy
    (0.75, 4, 0.75)
    >>> r.to_frame()[["method", "accuracy", "n"]].values.tolist()
    [['LTV', 0.75, 4]]
    """

    metric: str
    scores: list[float]
    method: str = "none"
    setting: str = "?"
    task: str = "?"
    shots: int | None = None
    per_row: dict[str, list] = field(default_factory=dict)
    skipped: int = 0
    multi_token: int = 0
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise EvaluationError(f"unknown metric {self.metric!r}; use one of {sorted(METRICS)}")
        self.scores = [float(s) for s in self.scores]
        for name, values in self.per_row.items():
            if len(values) != len(self.scores):
                raise EvaluationError(f"per-row column {name!r} has {len(values)} values for {len(self.scores)} rows")

    # -------------------------------------------------------------- constructors
    @classmethod
    def from_token_scores(cls, scores: TokenScores, batch: PromptBatch, method: str, meta: dict | None = None) -> Result:
        return cls(
            metric="accuracy",
            scores=scores.correct.float().tolist(),
            method=method,
            setting=batch.setting,
            task=batch.meta.get("task", "?"),
            shots=batch.shots,
            per_row={
                "prob": [round(float(p), 6) for p in scores.prob],
                "rank": scores.rank.tolist(),
                "query": [q.input for q in batch.queries],
                "target": [q.output for q in batch.queries],
            },
            skipped=batch.n_skipped,
            multi_token=batch.n_multi_token,
            meta={**batch.meta, **(meta or {})},
        )

    @classmethod
    def from_errors(cls, errors: Sequence[float], setting: str, method: str, meta: dict | None = None) -> Result:
        meta = dict(meta or {})
        task = meta.get("function_class", "?") + (f"+{meta['shift']}" if meta.get("shift") else "")
        return cls(metric="error", scores=list(errors), method=method, setting=setting, task=task, meta=meta)

    # -------------------------------------------------------------- numbers
    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def value(self) -> float:
        """Mean per-row score: accuracy or mean error."""
        return float(np.mean(self.scores)) if self.scores else float("nan")

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric]

    @property
    def ci(self) -> tuple[float, float]:
        """95% CI of ``value``: Wilson for accuracy, mean ± 1.96 SE for error."""
        if self.metric == "accuracy":
            return wilson_interval(int(round(sum(self.scores))), self.n)
        _, low, high = mean_ci(self.scores)
        return low, high

    @property
    def ci_method(self) -> str:
        return "Wilson score 95%" if self.metric == "accuracy" else "mean ± 1.96 SE"

    def _need(self, metric: str, attr: str) -> None:
        if self.metric != metric:
            raise AttributeError(f"a result with metric {self.metric!r} has no .{attr}; use .value")

    @property
    def accuracy(self) -> float:
        self._need("accuracy", "accuracy")
        return self.value

    @property
    def correct(self) -> list[bool]:
        self._need("accuracy", "correct")
        return [s > 0.5 for s in self.scores]

    @property
    def prob(self) -> list[float]:
        return list(self.per_row.get("prob", []))

    @property
    def rank(self) -> list[int]:
        return list(self.per_row.get("rank", []))

    @property
    def error(self) -> float:
        self._need("error", "error")
        return self.value

    @property
    def errors(self) -> list[float]:
        self._need("error", "errors")
        return list(self.scores)

    def subset(self, mask: Sequence[bool]) -> Result:
        """Restrict to rows where ``mask`` holds (e.g. Todd's filter: clean ICL answered right)."""
        if len(mask) != self.n:
            raise EvaluationError(f"mask has {len(mask)} entries for {self.n} rows")
        keep = [i for i, m in enumerate(mask) if m]
        return Result(
            self.metric, [self.scores[i] for i in keep], self.method, self.setting, self.task, self.shots,
            {k: [v[i] for i in keep] for k, v in self.per_row.items()}, self.skipped, self.multi_token,
            {**self.meta, "filtered": True},
        )  # fmt: skip

    # -------------------------------------------------------------- views
    def to_dict(self, per_item: bool = False) -> dict:
        low, high = self.ci
        out: dict[str, Any] = {
            "task": self.task,
            "setting": self.setting,
            "method": self.method,
            "metric": self.metric,
            "n": self.n,
            self.metric: self.value,
            "ci_low": low,
            "ci_high": high,
        }
        if self.metric == "accuracy":
            prob_mean, prob_low, prob_high = mean_ci(self.prob)
            out.update(
                shots=self.shots,
                target_prob=prob_mean,
                target_prob_ci=[prob_low, prob_high],
                median_rank=float(np.median(self.rank)) if self.rank else float("nan"),
                skipped=self.skipped,
                multi_token=self.multi_token,
            )
        if self.meta:
            out["meta"] = self.meta
        if per_item:
            out["scores"] = self.scores
            if self.metric == "accuracy":
                out["correct"] = self.correct
            out.update({k: v for k, v in self.per_row.items() if k in ("prob", "rank")})
        return out

    def to_frame(self, per_row: bool = False):
        """A pandas DataFrame: one summary row, or one row per prompt (``score`` plus per-row columns)."""
        import pandas as pd

        if per_row:
            return pd.DataFrame({"row": range(self.n), "score": self.scores, **self.per_row}).assign(
                method=self.method, setting=self.setting, task=self.task
            )
        low, high = self.ci
        return pd.DataFrame(
            [{"task": self.task, "setting": self.setting, "method": self.method, self.metric: self.value,
              "ci_low": low, "ci_high": high, "n": self.n}]  # fmt: skip
        )

    def summary(self) -> str:
        low, high = self.ci
        digits = 3 if self.metric == "accuracy" else 4
        text = (
            f"{self.task:<24} {self.setting:<10} {self.method:<14} {self.metric[:3]} {self.value:.{digits}f} "
            f"[{low:.{digits}f}, {high:.{digits}f}]  n={self.n}"
        )
        if self.metric == "accuracy" and self.prob:
            text += f"  p(target) {np.mean(self.prob):.3f}"
        return text + (f"  skipped={self.skipped}" if self.skipped else "")

    def __repr__(self) -> str:
        low, high = self.ci
        return (
            f"Result({self.method!r} on {self.task!r} {self.setting}: {self.metric} {self.value:.4g} "
            f"[{low:.4g}, {high:.4g}], n={self.n})"
        )

    def _repr_html_(self) -> str:
        caption = f"<b>{self.method}</b> on {self.task} ({self.setting}), 95% CI: {self.ci_method}"
        return f"<div>{caption}{self.to_frame().to_html(index=False, float_format=lambda v: f'{v:.4g}')}</div>"


EvalResult = Result  # the text result's former name
RegressionResult = Result  # the regression result's former name


class ResultTable(list):
    """A list of `Result` that renders as a DataFrame or a Markdown table."""

    def to_records(self) -> list[dict]:
        return [r.to_dict() for r in self]

    def to_frame(self):
        import pandas as pd

        return pd.concat([r.to_frame() for r in self], ignore_index=True)

    to_dataframe = to_frame

    def to_markdown(self, columns: Sequence[str] = ("task", "setting", "method", "value", "ci", "n")) -> str:
        head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
        rows = []
        for r in self:
            d = r.to_dict()
            d["ci"] = f"[{d['ci_low']:.2f}, {d['ci_high']:.2f}]"
            d["value"] = f"{r.value:.3f}"
            rows.append("| " + " | ".join(str(d[c]) for c in columns) + " |")
        return head + "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------- low-level scoring
def score_batch(
    model,
    batch: PromptBatch,
    hooks: Sequence[Hook] | Callable[[PromptBatch], Sequence[Hook]] = (),
    *,
    batch_size: int = 16,
    prefix: FrozenPrefix | None = None,
    progress: bool = False,
) -> TokenScores:
    """Score every prompt of ``batch`` (final-position logits only), optionally under ``hooks``.

    With ``prefix`` (a `FrozenPrefix` of this batch) only the final token is run.
    """
    parts = []
    with torch.no_grad():
        if prefix is not None:
            for start in range(0, len(batch), batch_size):
                idx = list(range(start, min(start + batch_size, len(batch))))
                sub = prefix.select(idx)
                hk = hooks(batch.select(idx)) if callable(hooks) else hooks
                parts.append(TokenScores.from_logits(sub.run(hk), batch.target_ids[idx]))
        else:
            chunks = list(batch.chunks(batch_size))
            for chunk in tqdm(chunks, desc="scoring", disable=not progress or len(chunks) < 3, leave=False):
                hk = hooks(chunk) if callable(hooks) else hooks
                logits = final_logits(model, chunk.tokens, chunk.attention_mask, hk)
                parts.append(TokenScores.from_logits(logits, chunk.target_ids))
    return TokenScores.cat(parts)


def to_result(scores: TokenScores, batch: PromptBatch, method: str, meta: dict | None = None) -> Result:
    return Result.from_token_scores(scores, batch, method, meta)


def evaluate_batch(model, batch: PromptBatch, hooks: Sequence[Hook] = (), method: str = "none", **kwargs) -> Result:
    """Score a prompt batch you built yourself (prefer `evaluate`, which pairs prompts across methods)."""
    return to_result(score_batch(model, batch, hooks, **kwargs), batch, method)


# ---------------------------------------------------------------------------------------- evaluate / compare
def check_n(n: int | None, name: str = "n") -> None:
    """``n`` is a positive number of prompts, or None for the whole split."""
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise EvaluationError(f"{name} must be a positive integer number of prompts (or None: whole split), got {n!r}")
    if n < 1:
        raise EvaluationError(f"{name} must be a positive number of prompts (or None for the whole split), got {n}")


def _resolve(problem, method) -> tuple[str, Any]:
    """(label, vector or None) for a method spec: "none", "icl", a TaskVector or a saved vector's directory."""
    from interp.vectors.base import TaskVector, load_vector

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


@torch.no_grad()
def _full_outputs(problem, batch, hooks: Sequence[Hook] = (), rows: int = 16) -> Tensor:
    """Reference path: whole prompts through the model (clean ICL is run once: no prefix worth caching)."""
    outs = []
    for start in range(0, len(batch), rows):
        sub = batch.select(range(start, min(start + rows, len(batch))))
        outs.append(final_logits(problem.model, sub.inputs, sub.attention_mask, hooks))
    return torch.cat(outs)


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
    if vec is not None and hasattr(vec, "check_applicable"):
        vec.check_applicable(problem)
    batch_hooks = list(hooks or []) if vec is None else vec.hooks(problem.model)
    if name == "icl":
        batch = problem.batch("icl", split, n, seed)
        out = _full_outputs(problem, batch)
    else:
        from interp.problems import run_prefix

        batch, prefix = problem.prefix(setting, split, n, seed)
        out = run_prefix(prefix, lambda idx: batch_hooks)
    meta: dict[str, Any] = {"problem_seed": problem.seed, "eval_seed": seed, "split": split}
    if vec is not None:
        meta["vector"] = vec.summary()
    if n is not None and len(batch) < n:
        meta["n_requested"] = n
    return problem.result(out, batch, method=label or name, meta=meta)


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
