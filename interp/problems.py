"""A *problem* is what a task-vector method needs to know about a modality, behind one small interface.

The three methods (LTV, FV, TV) are written once, against `Problem`; `TextProblem` (an ICL text task on
a language model) and `interp.regression.problem.RegressionProblem` (in-context regression) implement it.
A problem hands out

- prompt batches by ``(setting, split, n)``: clean k-shot (``icl``), the corruptions (``shuffled``,
  ``zero-shot`` for text; longer-than-trained or shifted prompts for regression), and ``dummy`` prompts
  (TV sources);
- frozen prefixes of those batches (`interp.engine.FrozenPrefix`), *memoised*, so that every method
  and every evaluation on the same prompts shares one prefix computation;
- the training loss (first-token cross-entropy / Huber), the per-row metric reported (top-1 correct /
  normalised squared error), and the quantity a causal-indirect-effect measures (P(target) / minus the
  squared error).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from interp.activations import HeadActivations, head_activations
from interp.engine import FrozenPrefix, build_prefixes
from interp.evaluation import EvalResult, TokenScores, to_result
from interp.prompts import PromptBatch, model_prompts
from interp.tasks import Task


class Problem(ABC):
    """Modality-specific prompts, losses and metrics behind one interface (see the module docstring)."""

    model: Any
    name: str
    #: corruption settings an LTV is trained on / evaluated in by default
    corruptions: tuple[str, ...]
    #: "accuracy" (higher is better) or "error" (lower is better)
    metric: str

    def __init__(self) -> None:
        self._batches: dict[tuple, Any] = {}
        self._prefixes: dict[tuple, FrozenPrefix] = {}

    @abstractmethod
    def _make_batch(self, setting: str, split: str, n: int | None, seed: int) -> Any: ...

    def batch(self, setting: str, split: str, n: int | None, seed: int = 0):
        return self.prefix(setting, split, n, seed, build=False)[0]

    def prefix(
        self, setting: str, split: str, n: int | None, seed: int = 0, build: bool = True
    ) -> tuple[Any, FrozenPrefix | None]:
        """The batch and its frozen prefix, computed once per problem and shared by every method.

        Prompt ``i`` of a batch does not depend on ``n`` (queries are a seeded permutation, demos are drawn
        in order), so a request for fewer prompts is served by slicing a larger cached batch.
        """
        key = (setting, split, n, seed)
        if key not in self._batches:
            larger = [
                k for k in self._batches
                if k[0] == setting and k[1] == split and k[3] == seed and (k[2] is None or (n is not None and k[2] > n))
            ]  # fmt: skip
            if larger:
                source = larger[0]
                rows = list(range(min(n, len(self._batches[source]))))
                self._batches[key] = self._batches[source].select(rows)
                if source in self._prefixes:
                    self._prefixes[key] = self._prefixes[source].select(rows)
            else:
                self._batches[key] = self._make_batch(setting, split, n, seed)
        batch = self._batches[key]
        if build and key not in self._prefixes:
            self._prefixes[key] = build_prefixes(self.model, batch.inputs, batch.attention_mask)
        return batch, self._prefixes.get(key)

    def clean_activations(self, n: int) -> HeadActivations:
        """Per-head final-token activations of ``n`` clean k-shot train prompts (memoised)."""
        key = ("activations", n)
        if key not in self._batches:
            batch = self.batch("icl", "train", n)
            self._batches[key] = head_activations(self.model, batch.inputs, batch.attention_mask)
        return self._batches[key]

    @abstractmethod
    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean training loss of final-position outputs against targets (differentiable)."""

    @abstractmethod
    def row_metric(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Per-row reported metric: 1/0 correct (text) or normalised squared error (regression)."""

    @abstractmethod
    def cie_quantity(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Per-row quantity whose increase a head's causal indirect effect measures."""

    @abstractmethod
    def result(self, outputs: Tensor, batch, method: str, meta: dict | None = None) -> Any:
        """A labelled result object (with CIs) for reporting."""

    def better(self, a: float, b: float) -> bool:
        """Is metric value ``a`` better than ``b``?"""
        return a > b if self.metric == "accuracy" else a < b

    def describe(self) -> dict:
        return {"name": self.name, "metric": self.metric}


_SPLIT_SEED = {"train": 101, "valid": 202, "test": 303}  # distinct demo draws per split, stable across runs


@dataclass
class TextProblem(Problem):
    """An ICL text task on a language model: k-shot prompts, first-token targets."""

    model: Any
    task: Task
    shots: int = 10
    template: str = "qa"
    seed: int = 0
    corruptions: tuple[str, ...] = ("shuffled", "zero-shot")
    metric: str = "accuracy"
    _batches: dict = field(default_factory=dict, repr=False)
    _prefixes: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.task.name

    def _make_batch(self, setting: str, split: str, n: int | None, seed: int) -> PromptBatch:
        return model_prompts(
            self.model, self.task, setting=setting, shots=self.shots, n=n, split=split,
            template=self.template, seed=self.seed * 1000 + seed + _SPLIT_SEED[split],
        )  # fmt: skip

    def loss(self, outputs: Float[Tensor, "batch d_vocab"], targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs.float(), targets)

    def row_metric(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return (outputs.argmax(-1) == targets).float()

    def cie_quantity(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return outputs.float().softmax(-1).gather(1, targets[:, None]).squeeze(1)

    def result(self, outputs: Tensor, batch: PromptBatch, method: str, meta: dict | None = None) -> EvalResult:
        return to_result(TokenScores.from_logits(outputs, batch.target_ids), batch, method, meta)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "metric": self.metric,
            "task": self.task.describe(),
            "shots": self.shots,
            "template": self.template,
            "seed": self.seed,
        }


def targets_of(batch) -> Tensor:
    """Targets of a prompt batch: token ids for text, float y for regression."""
    return batch.targets if hasattr(batch, "targets") else batch.target_ids


@torch.no_grad()
def run_prefix(prefix: FrozenPrefix, hooks_for_rows, rows_per_call: int = 64) -> Tensor:
    """Final-position outputs of every row of ``prefix``, with ``hooks_for_rows(idx)`` giving the hooks
    for each sub-batch of row indices ``idx`` (so per-row interventions can be sliced consistently)."""
    outs = []
    for start in range(0, len(prefix), rows_per_call):
        idx = torch.arange(start, min(start + rows_per_call, len(prefix)), device=prefix.final_inputs.device)
        sub = prefix if len(idx) == len(prefix) else prefix.select(idx)
        outs.append(sub.run(hooks_for_rows(idx)))
    return torch.cat(outs)
