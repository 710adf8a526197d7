"""Scoring: top-1 first-token accuracy, target probability and rank, with 95% confidence intervals.

Accuracy is plain accuracy over *every* scored query (never only over items some method got right, a
bias of the reference code), with a Wilson score interval, which behaves at 0% and 100% where the
normal approximation does not. Probabilities get a mean ± 1.96 standard-error interval. Todd et al.'s
filter (keep only items the model answers correctly with clean k-shot ICL) is available separately via
`EvalResult.subset`.

`evaluate` runs a task in one setting, optionally under an intervention, using the frozen-prefix engine
when the intervention is a function of it (so sweeps reuse one prefix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.engine import FrozenPrefix, build_prefixes, final_logits
from interp.interventions import Hook
from interp.prompts import PromptBatch


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_ci(values: Sequence[float] | np.ndarray, z: float = 1.96) -> tuple[float, float, float]:
    """(mean, low, high) with a normal-approximation interval of the mean."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (float("nan"),) * 3
    mean = float(arr.mean())
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else 0.0
    return mean, mean - z * se, mean + z * se


@dataclass
class TokenScores:
    """Per-query scores of the target's first token at the final position."""

    correct: Tensor  # bool [batch]
    prob: Tensor  # float [batch]
    rank: Tensor  # long [batch], 0 = top-1

    @classmethod
    def from_logits(cls, logits: Float[Tensor, "batch d_vocab"], targets: Int[Tensor, " batch"]) -> "TokenScores":
        logits = logits.detach().float()
        target_logit = logits.gather(1, targets[:, None])
        rank = (logits > target_logit).sum(1)
        prob = logits.softmax(-1).gather(1, targets[:, None]).squeeze(1)
        return cls(correct=rank == 0, prob=prob, rank=rank)

    @classmethod
    def cat(cls, parts: Sequence["TokenScores"]) -> "TokenScores":
        return cls(*(torch.cat([getattr(p, f) for p in parts]) for f in ("correct", "prob", "rank")))


@dataclass
class EvalResult:
    """Scores of one (task, setting, method) cell, with CIs; ``to_dict`` is the JSON contract."""

    task: str
    setting: str
    method: str
    shots: int
    correct: list[bool]
    prob: list[float]
    rank: list[int]
    skipped: int = 0
    multi_token: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.correct)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.correct)) if self.correct else float("nan")

    @property
    def ci(self) -> tuple[float, float]:
        return wilson_interval(int(sum(self.correct)), self.n)

    def subset(self, mask: Sequence[bool]) -> "EvalResult":
        """Restrict to queries where ``mask`` holds (e.g. Todd's filter: clean ICL answered right)."""
        keep = [i for i, m in enumerate(mask) if m]
        return EvalResult(
            self.task, self.setting, self.method, self.shots,
            [self.correct[i] for i in keep], [self.prob[i] for i in keep], [self.rank[i] for i in keep],
            self.skipped, self.multi_token, {**self.meta, "filtered": True},
        )  # fmt: skip

    def to_dict(self, per_item: bool = False) -> dict:
        low, high = self.ci
        prob_mean, prob_low, prob_high = mean_ci(self.prob)
        out = {
            "task": self.task,
            "setting": self.setting,
            "method": self.method,
            "shots": self.shots,
            "n": self.n,
            "accuracy": self.accuracy,
            "ci_low": low,
            "ci_high": high,
            "target_prob": prob_mean,
            "target_prob_ci": [prob_low, prob_high],
            "median_rank": float(np.median(self.rank)) if self.rank else float("nan"),
            "skipped": self.skipped,
            "multi_token": self.multi_token,
            **({"meta": self.meta} if self.meta else {}),
        }
        if per_item:
            out.update(correct=self.correct, prob=self.prob, rank=self.rank)
        return out

    def summary(self) -> str:
        low, high = self.ci
        return (
            f"{self.task:<24} {self.setting:<10} {self.method:<14} acc {self.accuracy:.3f} "
            f"[{low:.3f}, {high:.3f}]  p(target) {np.mean(self.prob):.3f}  n={self.n}"
            + (f"  skipped={self.skipped}" if self.skipped else "")
        )


class ResultTable(list):
    """A list of `EvalResult` that renders as a DataFrame or a Markdown table."""

    def to_records(self) -> list[dict]:
        return [r.to_dict() for r in self]

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(self.to_records())

    def to_markdown(self, columns: Sequence[str] = ("task", "setting", "method", "accuracy", "ci", "n")) -> str:
        head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
        rows = []
        for r in self:
            d = r.to_dict()
            d["ci"] = f"[{d['ci_low']:.2f}, {d['ci_high']:.2f}]"
            d["accuracy"] = f"{d['accuracy']:.3f}"
            rows.append("| " + " | ".join(str(d[c]) for c in columns) + " |")
        return head + "\n".join(rows) + "\n"


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


def to_result(scores: TokenScores, batch: PromptBatch, method: str, meta: dict | None = None) -> EvalResult:
    return EvalResult(
        task=batch.meta.get("task", "?"),
        setting=batch.setting,
        method=method,
        shots=batch.shots,
        correct=scores.correct.tolist(),
        prob=[round(float(p), 6) for p in scores.prob],
        rank=scores.rank.tolist(),
        skipped=batch.n_skipped,
        multi_token=batch.n_multi_token,
        meta={**batch.meta, **(meta or {})},
    )


def evaluate_batch(
    model, batch: PromptBatch, hooks: Sequence[Hook] = (), method: str = "none", **kwargs
) -> EvalResult:
    return to_result(score_batch(model, batch, hooks, **kwargs), batch, method)


def evaluate(
    model,
    task,
    *,
    setting: str = "icl",
    shots: int = 10,
    n: int | None = 100,
    split: str = "test",
    template="qa",
    seed: int = 0,
    hooks: Sequence[Hook] = (),
    method: str = "none",
    batch_size: int = 16,
    progress: bool = True,
) -> EvalResult:
    """Accuracy etc. of ``model`` on ``task`` in ``setting`` (optionally under ``hooks``) on ``split``."""
    from interp.prompts import model_prompts

    batch = model_prompts(model, task, setting=setting, shots=shots, n=n, split=split, template=template, seed=seed)
    return evaluate_batch(model, batch, hooks, method=method, batch_size=batch_size, progress=progress)
