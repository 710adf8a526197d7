"""Results: the one type every method and modality is scored into, and the low-level scoring of a batch.

- `TokenScores`: per-query scores of the target's first token at the final position (top-1 correct,
  probability, rank).
- `Result`: one *per-row score* per prompt (``1``/``0`` top-1 first-token correct for text; normalised
  squared error ``(ŷ - y)² / d`` for regression), its mean (``value``: accuracy or error), a 95% CI, ``n``
  and metadata (task, setting, method, split, seeds). Accuracy is plain accuracy over *every* scored query
  (never only over items some method got right, a bias of the reference code), with a Wilson score interval
  (`interp.stats`); a mean error gets a mean ± 1.96 standard-error interval. Todd et al.'s filter (keep only
  items the model answers correctly with clean k-shot ICL) is `Result.subset`.
- `score_batch` / `evaluate_batch`: score a prompt batch you built yourself, optionally over a frozen prefix.

This module sits below the problems and the vectors (they produce `Result`s); choosing and pairing methods
is `interp.evaluation`, above them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.engine import FrozenPrefix, final_logits
from interp.interventions import Hook
from interp.prompts import PromptBatch
from interp.stats import mean_ci, wilson_interval

#: metric name -> True when higher is better
METRICS = {"accuracy": True, "error": False}
DIFF_CI = {
    "accuracy": "Newcombe (1998) method 10: hybrid score interval for a difference of paired proportions",
    "error": "paired percentile bootstrap of the mean difference (2000 resamples of prompts, seed 0)",
}


class EvaluationError(ValueError):
    """An evaluation cannot run as asked (bad n, unknown method, unpaired rows); the message says the fix."""


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



def check_n(n: int | None, name: str = "n") -> None:
    """``n`` is a positive number of prompts, or None for the whole split."""
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise EvaluationError(f"{name} must be a positive integer number of prompts (or None: whole split), got {n!r}")
    if n < 1:
        raise EvaluationError(f"{name} must be a positive number of prompts (or None for the whole split), got {n}")
