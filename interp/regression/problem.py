"""In-context regression as a `interp.problems.Problem`, so LTV / FV run on it unchanged.

A regression prompt is ``k`` demonstrations and a query, ``x_1, y_1, ..., x_k, y_k, x_q`` (``2k + 1``
positions); the model's scalar output at the final position (the query) predicts ``f(x_q)``. Every
task-vector method intervenes at that final position, exactly as for text.

Settings (``T`` = the model's trained prompt length in points):

- ``icl``: clean prompts with ``T - 1`` demonstrations (the query is the T-th point: in range). The mean
  head contributions ``ā`` of an LTV / FV come from these.
- ``long``: ``k`` drawn uniformly from ``T .. 2T - 1`` per prompt (left-padded), i.e. past the trained
  length, where the model's error climbs: what the LTV is trained to repair.
- ``shuffled``: ``T - 1`` demonstrations whose ``y`` are permuted among themselves (same x, same query):
  the FV's causal-indirect-effect corruption.
- ``k=N``: exactly ``N`` demonstrations (error-vs-length curves).

The problem's ``shift`` (``skewed`` / ``scaled`` / ``noisy``, see `functions.SHIFTS`) applies to every
setting. Metric: normalised squared error ``(ŷ - y)² / d`` (lower is better); training loss: Huber;
CIE quantity: minus the squared error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from interp.results import RegressionResult, Result  # noqa: F401  (RegressionResult: former name)
from interp.problems import Problem
from interp.regression.functions import get_shift, sample_task
from interp.regression.model import query_prompt

_SPLIT_SEED = {"train": 11, "valid": 22, "test": 33}


@dataclass
class RegressionBatch:
    """Left-padded regression prompts ending with a query x; ``targets`` are the true f(x_q)."""

    inputs: Float[Tensor, "batch pos d"]
    attention_mask: Int[Tensor, "batch pos"]
    targets: Float[Tensor, " batch"]
    n_demos: Int[Tensor, " batch"]
    setting: str
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def select(self, idx: Sequence[int] | Tensor) -> "RegressionBatch":
        idx_t = torch.as_tensor(list(idx), dtype=torch.long, device=self.inputs.device)
        mask = self.attention_mask[idx_t]
        start = int((mask.sum(0) > 0).nonzero()[0])
        return RegressionBatch(
            self.inputs[idx_t, start:], mask[:, start:], self.targets[idx_t], self.n_demos[idx_t], self.setting, dict(self.meta)
        )


@dataclass(repr=False)
class RegressionProblem(Problem):
    """Prompts, loss and metric for a `RegressionTransformer` (see the module docstring)."""

    model: Any
    shift: str | None = None
    seed: int = 0
    huber_delta: float = 1.0
    corruptions: tuple[str, ...] = ("long",)
    metric: str = "error"

    @classmethod
    def for_model(cls, model, shift: str | None = None, seed: int = 0) -> "RegressionProblem":
        get_shift(shift)  # validates the name
        return cls(model=model, shift=shift, seed=seed)

    @property
    def name(self) -> str:  # type: ignore[override]
        cfg = self.model.regression_config
        return cfg.function_class + (f"+{self.shift}" if self.shift else "")

    @property
    def trained_length(self) -> int:
        return self.model.regression_config.n_points

    def demos_for(self, setting: str, n: int, gen: torch.Generator) -> Tensor:
        T = self.trained_length
        if setting in ("icl", "shuffled"):
            return torch.full((n,), T - 1)
        if setting == "long":
            return torch.randint(T, 2 * T, (n,), generator=gen)
        if setting.startswith("k="):
            if not setting[2:].isdigit():
                raise ValueError(f"setting {setting!r}: k=N needs a non-negative integer N of demonstrations, e.g. k=10")
            k = int(setting[2:])
            max_k = (self.model.cfg.n_ctx - 1) // 2
            if not 0 <= k <= max_k:
                raise ValueError(f"{k} demonstrations do not fit the model's context (at most {max_k})")
            return torch.full((n,), k)
        raise ValueError(f"unknown regression setting {setting!r}; use icl, long, shuffled or k=N")

    def _make_batch(self, setting: str, split: str, n: int | None, seed: int) -> RegressionBatch:
        # Prompts are drawn on the CPU (CPU generators: the same data on every device), then moved to the model.
        with torch.device("cpu"):
            batch = self._sample_batch(setting, split, n, seed)
        device = self.model.read_in.weight.device
        return RegressionBatch(batch.inputs.to(device), batch.attention_mask.to(device), batch.targets.to(device),
                               batch.n_demos.to(device), batch.setting, batch.meta)  # fmt: skip

    def _sample_batch(self, setting: str, split: str, n: int | None, seed: int) -> RegressionBatch:
        n = n or 256
        cfg = self.model.regression_config
        gen = torch.Generator().manual_seed(self.seed * 7919 + _SPLIT_SEED[split] * 101 + seed + hash_setting(setting))
        n_demos = self.demos_for(setting, n, gen)
        task = sample_task(cfg.function_class, n, cfg.n_dims, gen, self.shift)
        max_k = int(n_demos.max())
        xs, ys = task.sample_points(max_k + 1, gen)  # the last point of each row is its query
        rows, masks, targets = [], [], []
        longest = 2 * max_k + 1
        for i in range(n):
            k = int(n_demos[i])
            demo_x, demo_y = xs[i : i + 1, :k], ys[i : i + 1, :k]
            if setting == "shuffled" and k > 1:
                demo_y = demo_y[:, torch.randperm(k, generator=gen)]
            prompt = query_prompt(demo_x, demo_y, xs[i : i + 1, max_k])[0]
            pad = longest - prompt.shape[0]
            rows.append(torch.cat([torch.zeros(pad, cfg.n_dims), prompt]))
            masks.append(torch.cat([torch.zeros(pad, dtype=torch.long), torch.ones(prompt.shape[0], dtype=torch.long)]))
            targets.append(ys[i, max_k])
        return RegressionBatch(
            torch.stack(rows), torch.stack(masks), torch.stack(targets), n_demos, setting,
            meta={"function_class": cfg.function_class, "shift": self.shift, "split": split, "seed": seed},
        )  # fmt: skip

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.huber_loss(outputs[:, 0], targets, delta=self.huber_delta)

    def row_metric(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return (outputs[:, 0] - targets) ** 2 / self.model.regression_config.n_dims

    def cie_quantity(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return -((outputs[:, 0] - targets) ** 2)

    def result(self, outputs: Tensor, batch: RegressionBatch, method: str, meta: dict | None = None) -> Result:
        errors = self.row_metric(outputs.detach(), batch.targets.to(outputs.device)).tolist()
        return Result.from_errors(errors, batch.setting, method, {**batch.meta, **(meta or {})})

    def _repr_fields(self) -> str:
        return f"name={self.name!r}, shift={self.shift!r}, seed={self.seed}"

    def describe(self) -> dict:
        cfg = self.model.regression_config
        return {"name": self.name, "metric": self.metric, "function_class": cfg.function_class,
                "shift": self.shift, "trained_length": cfg.n_points, "n_dims": cfg.n_dims, "seed": self.seed}  # fmt: skip


def hash_setting(setting: str) -> int:
    """A stable (process-independent) small integer per setting name."""
    return sum((i + 1) * ord(c) for i, c in enumerate(setting)) % 10_007
