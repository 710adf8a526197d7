"""A *problem* is what a task-vector method needs to know about a modality, behind one small interface.

The three methods (LTV, FV, TV) are written once, against `Problem`; `TextProblem` (an ICL text task on
a language model) and `interp.regression.problem.RegressionProblem` (in-context regression) implement it.
A problem hands out

- prompt batches by ``(setting, split, n, seed)``: clean k-shot (``icl``), the corruptions (``shuffled``,
  ``zero-shot`` for text; longer-than-trained or shifted prompts for regression), and ``dummy`` prompts
  (TV sources). This is the *one* place prompts are drawn, so every evaluation (bare model, clean ICL,
  any vector; API and CLI) of the same ``(problem, setting, split, n, seed)`` sees the same prompts. For
  text, row ``i`` of every setting has the same query (only the demonstrations differ), so methods
  scored in different settings are still paired row by row;
- frozen prefixes of those batches (`interp.engine.FrozenPrefix`), *memoised* in a cache bounded by bytes
  (least recently used entries are evicted first; ``problem.cache_bytes`` or ``$INTERP_CACHE_BYTES``,
  default 4 GiB), so every method and every evaluation on the same prompts shares one prefix
  computation. ``repr(problem)`` shows the cache's size; ``problem.clear_cache()`` empties it;
- the training loss (first-token cross-entropy / Huber), the per-row metric reported (top-1 correct /
  normalised squared error), and the quantity a causal-indirect-effect measures (P(target) / minus the
  squared error).

    >>> import interp
    >>> problem = interp.TextProblem(interp.load_model("tiny-gpt2"), interp.load_task("builtin:antonym"), shots=2)
    >>> batch, prefix = problem.prefix("zero-shot", "test", 4)
    >>> len(batch), len(problem.cache)
    (4, 2)
    >>> problem.clear_cache(); len(problem.cache)
    0
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from interp.activations import HeadActivations, head_activations
from interp.engine import FrozenPrefix, build_prefixes, final_logits
from interp.results import Result, TokenScores, check_n, to_result
from interp.prompts import SETTINGS, PromptBatch, PromptError, get_template, model_prompts
from interp.tasks import Task

DEFAULT_CACHE_BYTES = 4 * 2**30


class ProblemError(ValueError):
    """A problem was built or queried with a bad argument; the message names it and the fix."""


def nbytes(obj: Any, _seen: set | None = None) -> int:
    """Bytes held by the tensors reachable from ``obj`` (batches, prefixes, activations; models skipped)."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen or isinstance(obj, torch.nn.Module):
        return 0
    seen.add(id(obj))
    if isinstance(obj, Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v, seen) for v in obj)
    if isinstance(obj, dict):
        return sum(nbytes(v, seen) for v in obj.values())
    if hasattr(obj, "__dict__") and not isinstance(obj, (str, bytes, type)):
        return sum(nbytes(v, seen) for v in vars(obj).values())
    return 0


def format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class ProblemCache:
    """Least-recently-used store bounded by the bytes of its tensors (an entry larger than the bound is
    still kept while it is the newest: the caller is using it)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ProblemError(f"cache_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.evictions = 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        if key not in self._entries:
            return default
        self._entries.move_to_end(key)
        return self._entries[key][0]

    def put(self, key: Hashable, value: Any) -> Any:
        self._entries[key] = (value, nbytes(value))
        self._entries.move_to_end(key)
        while self.nbytes > self.max_bytes and len(self._entries) > 1:
            self._entries.popitem(last=False)
            self.evictions += 1
        return value

    def pop(self, key: Hashable, default: Any = None) -> Any:
        item = self._entries.pop(key, None)
        return default if item is None else item[0]

    def clear(self) -> None:
        self._entries.clear()

    def keys(self) -> list:
        return list(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(size for _, size in self._entries.values())

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"{len(self)} entries, {format_bytes(self.nbytes)} of {format_bytes(self.max_bytes)}"


class _PrefixView:
    """``problem._prefixes`` as it used to be (a dict keyed ``(setting, split, n, seed)``), over the cache."""

    def __init__(self, cache: ProblemCache) -> None:
        self._cache = cache

    def pop(self, key: tuple, default: Any = None) -> Any:
        return self._cache.pop(("prefix", *key), default)

    def clear(self) -> None:
        for key in self._cache.keys():
            if key[0] == "prefix":
                self._cache.pop(key)

    def __contains__(self, key: tuple) -> bool:
        return ("prefix", *key) in self._cache

    def __getitem__(self, key: tuple) -> FrozenPrefix:
        if ("prefix", *key) not in self._cache:
            raise KeyError(key)
        return self._cache.get(("prefix", *key))

    def __len__(self) -> int:
        return sum(k[0] == "prefix" for k in self._cache.keys())


class Problem(ABC):
    """Modality-specific prompts, losses and metrics behind one interface (see the module docstring)."""

    model: Any
    name: str
    seed: int
    #: corruption settings an LTV is trained on / evaluated in by default
    corruptions: tuple[str, ...]
    #: "accuracy" (higher is better) or "error" (lower is better)
    metric: str
    #: settings that are *not* corruptions (training an LTV on them would learn nothing to repair)
    clean_settings: tuple[str, ...] = ("icl",)
    #: True when prompt i of a batch does not depend on n (so a smaller request can slice a larger batch)
    rows_independent_of_n: bool = False
    #: bound of the prefix / batch cache in bytes (None: $INTERP_CACHE_BYTES or 4 GiB)
    cache_bytes: int | None = None

    @abstractmethod
    def _make_batch(self, setting: str, split: str, n: int | None, seed: int) -> Any: ...

    # ------------------------------------------------------------------ cache
    @property
    def cache(self) -> ProblemCache:
        """The bounded LRU cache of this problem's batches, prefixes and clean activations."""
        cache = self.__dict__.get("_cache")
        if cache is None:
            limit = self.cache_bytes
            if limit is None:
                limit = int(os.environ.get("INTERP_CACHE_BYTES", DEFAULT_CACHE_BYTES))
            cache = self.__dict__["_cache"] = ProblemCache(limit)
        return cache

    def clear_cache(self) -> None:
        """Drop every cached batch, prefix and activation (they are recomputed, identically, on demand)."""
        self.cache.clear()

    def set_cache_bytes(self, max_bytes: int) -> None:
        """Empty the cache and bound it anew (e.g. one budget split between the many tasks of a multi-task fit)."""
        self.clear_cache()
        self.cache_bytes = int(max_bytes)
        self.__dict__.pop("_cache", None)  # rebuilt with the new bound on first use

    def forget(self, setting: str, split: str, n: int | None, seed: int = 0) -> None:
        """Drop one batch's cached prefix (e.g. test prompts no longer needed)."""
        self.cache.pop(("prefix", setting, split, n, seed))

    @property
    def _prefixes(self) -> _PrefixView:  # backwards compatibility: callers used to pop from this dict
        return _PrefixView(self.cache)

    # ------------------------------------------------------------------ prompts
    def batch(self, setting: str, split: str, n: int | None, seed: int = 0):
        """The prompts of ``(setting, split, n, seed)``: the same every time, whatever will score them."""
        return self.prefix(setting, split, n, seed, build=False)[0]

    def prefix(
        self, setting: str, split: str, n: int | None, seed: int = 0, build: bool = True
    ) -> tuple[Any, FrozenPrefix | None]:
        """The batch and its frozen prefix, computed once per problem and shared by every method."""
        check_n(n)
        key = (setting, split, n, seed)
        batch = self.cache.get(("batch", *key))
        prefix = self.cache.get(("prefix", *key))
        if batch is None:
            source = self._larger_cached(setting, split, n, seed)
            if source is not None:
                big = self.cache.get(("batch", *source))
                rows = list(range(min(n, len(big))))
                batch = big.select(rows)
                big_prefix = self.cache.get(("prefix", *source))
                if prefix is None and big_prefix is not None:
                    prefix = self.cache.put(("prefix", *key), big_prefix.select(rows))
            else:
                batch = self._make_batch(setting, split, n, seed)
            self.cache.put(("batch", *key), batch)
        if build and prefix is None:
            prefix = self.cache.put(("prefix", *key), build_prefixes(self.model, batch.inputs, batch.attention_mask))
        return batch, prefix

    def _larger_cached(self, setting: str, split: str, n: int | None, seed: int) -> tuple | None:
        """A cached batch of the same prompts with more rows, if slicing it gives exactly this batch."""
        if not self.rows_independent_of_n or n is None:
            return None
        for key in self.cache.keys():
            if key[0] == "batch" and key[1:3] == (setting, split) and key[4] == seed and (key[3] is None or key[3] > n):
                # skipped queries shift rows: slice only batches that skipped none
                if getattr(self.cache.get(key), "n_skipped", 0) == 0:
                    return key[1:]
        return None

    def row_ids(self, batch) -> list:
        """What identifies each row's query (equal lists = the same prompts, row by row)."""
        inputs = batch.inputs[:, -1]
        return [tuple(x) if isinstance(x, list) else x for x in inputs.tolist()]

    def clean_activations(self, n: int) -> HeadActivations:
        """Per-head final-token activations of ``n`` clean k-shot train prompts (memoised)."""
        key = ("activations", n)
        acts = self.cache.get(key)
        if acts is None:
            batch = self.batch("icl", "train", n)
            acts = self.cache.put(key, head_activations(self.model, batch.inputs, batch.attention_mask))
        return acts

    def check_corruptions(self, corruptions) -> tuple[str, ...]:
        """Corruption settings to train on: known settings, none of them clean, no repeats."""
        corruptions = tuple(corruptions)
        if not corruptions:
            raise ProblemError(f"no corruption given; use some of {', '.join(self.corruptions)}")
        for c in corruptions:
            if c in self.clean_settings:
                raise ProblemError(
                    f"corruption {c!r} is a clean setting of {type(self).__name__}: an LTV trained there has nothing "
                    f"to repair; use {' or '.join(self.corruptions)}"
                )
        if len(set(corruptions)) != len(corruptions):
            raise ProblemError(f"corruptions {corruptions} repeat a setting; give each once")
        return corruptions

    # ------------------------------------------------------------------ modality
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
    def result(self, outputs: Tensor, batch, method: str, meta: dict | None = None) -> Result:
        """A labelled `interp.results.Result` (per-row scores, CI) for reporting."""

    @torch.no_grad()
    def score(
        self,
        setting: str,
        hooks=(),
        *,
        split: str = "test",
        n: int | None = 100,
        seed: int = 0,
        label: str = "none",
        meta: dict | None = None,
        full_forward: bool = False,
    ) -> Result:
        """Score the model under ``hooks`` (final-token interventions) on ``(setting, split, n, seed)``'s prompts.

        The one scoring path of `interp.evaluate` and `TaskVector.evaluate`: the prompts' frozen prefix is
        built once (and cached), each sub-batch runs only its final token. ``full_forward`` runs whole prompts
        instead (clean ICL: one pass, no prefix worth caching).
        """
        check_n(n)
        if full_forward:
            batch = self.batch(setting, split, n, seed)
            outs = []
            for start in range(0, len(batch), 16):
                sub = batch.select(range(start, min(start + 16, len(batch))))
                outs.append(final_logits(self.model, sub.inputs, sub.attention_mask, list(hooks)))
            out = torch.cat(outs)
        else:
            batch, prefix = self.prefix(setting, split, n, seed)
            hooks = list(hooks)
            out = run_prefix(prefix, lambda idx: hooks)
        info: dict[str, Any] = {"problem_seed": self.seed, "eval_seed": seed, "split": split, **(meta or {})}
        if n is not None and len(batch) < n:
            info["n_requested"] = n
        return self.result(out, batch, method=label, meta=info)

    def better(self, a: float, b: float) -> bool:
        """Is metric value ``a`` better than ``b``?"""
        return a > b if self.metric == "accuracy" else a < b

    def describe(self) -> dict:
        return {"name": self.name, "metric": self.metric}

    def _repr_fields(self) -> str:
        return f"name={self.name!r}"

    def __repr__(self) -> str:
        model = getattr(getattr(self.model, "cfg", None), "model_name", type(self.model).__name__)
        return f"{type(self).__name__}({self._repr_fields()}, model={model!r}; cache: {self.cache!r})"


_SPLIT_SEED = {"train": 101, "valid": 202, "test": 303}  # distinct demo draws per split, stable across runs


def prompt_seed(problem_seed: int, split: str, seed: int) -> int:
    """The seed of a text batch's prompts: one derivation for every method, in the API and the CLI."""
    if split not in _SPLIT_SEED:
        raise ProblemError(f"unknown split {split!r}; use one of {', '.join(_SPLIT_SEED)}")
    return problem_seed * 1000 + seed + _SPLIT_SEED[split]


@dataclass(repr=False)
class TextProblem(Problem):
    """An ICL text task on a language model: k-shot prompts, first-token targets.

    >>> import interp
    >>> p = interp.TextProblem(interp.load_model("tiny-gpt2"), interp.load_task("builtin:antonym"), shots=2)
    >>> p.batch("zero-shot", "test", 3).texts[0].startswith("Q: ")
    True
    >>> interp.TextProblem(p.model, p.task, shots=-1)
    Traceback (most recent call last):
    ...
    interp.problems.ProblemError: shots must be a non-negative integer (demonstrations per prompt), got -1
    """

    model: Any
    task: Task
    shots: int = 10
    template: str = "qa"
    seed: int = 0
    corruptions: tuple[str, ...] = ("shuffled", "zero-shot")
    metric: str = "accuracy"
    cache_bytes: int | None = None
    clean_settings = ("icl", "dummy")
    rows_independent_of_n = True

    def __post_init__(self) -> None:
        if isinstance(self.shots, bool) or not isinstance(self.shots, int) or self.shots < 0:
            raise ProblemError(f"shots must be a non-negative integer (demonstrations per prompt), got {self.shots!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ProblemError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.task, Task):
            raise ProblemError(f"task must be a Task (from interp.load_task), got {type(self.task).__name__}")
        if getattr(self.model, "tokenizer", None) is None:
            raise ProblemError("a TextProblem needs a model with a tokenizer (model.tokenizer is None)")
        try:
            get_template(self.template)
        except PromptError as err:
            raise ProblemError(str(err)) from None
        unknown = [c for c in self.corruptions if c not in SETTINGS]
        if unknown:
            raise ProblemError(f"unknown corruption setting(s) {unknown}; text settings are {SETTINGS}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.task.name

    def _make_batch(self, setting: str, split: str, n: int | None, seed: int) -> PromptBatch:
        return model_prompts(
            self.model, self.task, setting=setting, shots=self.shots, n=n, split=split,
            template=self.template, seed=prompt_seed(self.seed, split, seed),
        )  # fmt: skip

    def row_ids(self, batch: PromptBatch) -> list:
        return [(q.input, q.output) for q in batch.queries]

    def check_corruptions(self, corruptions) -> tuple[str, ...]:
        unknown = [c for c in corruptions if c not in SETTINGS]
        if unknown:
            raise ProblemError(f"unknown setting {unknown[0]!r}; text corruptions are {' and '.join(self.corruptions)}")
        return super().check_corruptions(corruptions)

    def loss(self, outputs: Float[Tensor, "batch d_vocab"], targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs.float(), targets.to(outputs.device))

    def row_metric(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return (outputs.argmax(-1) == targets.to(outputs.device)).float()

    def cie_quantity(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return outputs.float().softmax(-1).gather(1, targets.to(outputs.device)[:, None]).squeeze(1)

    def result(self, outputs: Tensor, batch: PromptBatch, method: str, meta: dict | None = None) -> Result:
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

    def _repr_fields(self) -> str:
        return f"task={self.name!r}, shots={self.shots}, template={self.template!r}, seed={self.seed}"


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
