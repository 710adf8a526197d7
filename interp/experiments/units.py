"""Plumbing shared by the experiments: settings, a per-unit result store, memoised problems, scored cells.

Every experiment is a function over independent *units* (one vector fit and its evaluations, one FV's
causal effects, ...). A unit's result is one JSON file ``<root>/<experiment>/<sha>.json`` whose name hashes
everything the result depends on (the experiment, the unit's own settings, the shared `ExperimentSettings`,
the model's fingerprint and the task's content); it is written atomically, so an interrupted run resumes
where it stopped and a finished unit is never recomputed. Tensors a later unit needs (a fitted vector)
are saved under ``<tensor_root>/<experiment>/<sha>/`` (by default a git-ignored cache: the JSON results are
small enough to commit, the vectors are not; a unit whose vector is asked for but missing is refitted). A sweep runner can run each unit as one cell:
`UnitStore.get_or_run` is the only entry point and units never share mutable state beyond the memoised
problems of one process (which only cache prompts and frozen prefixes).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from interp.evaluation import wilson_interval

#: the tasks of the issue: SmolLM2's clean 10-shot ICL ≥ 0.5, plus antonym and one weak task
DEFAULT_TASKS = (
    "capitalize", "present-past", "singular-plural", "lowercase_first_letter", "choose_first_of_3",
    "adjective_v_verb_3", "antonym", "english-french",
)  # fmt: skip


class ExperimentError(ValueError):
    """An experiment cannot run as asked; the message names the problem and the fix."""


class MissingUnit(LookupError):
    """A read-only store was asked for a unit that has not been computed yet."""


@dataclass(frozen=True)
class ExperimentSettings:
    """Settings shared by every unit (reduced from the comparison's for 2 shared CPU cores; see README)."""

    model: str = "smollm2-135m"
    tasks_dir: str | None = None
    shots: int = 10
    n_mean: int = 24  # clean train prompts averaged for ā (LTV basis, FV)
    n_train: int = 32  # corrupted train prompts per corruption
    n_valid: int = 16  # corrupted valid prompts per corruption (early stopping)
    steps: int = 60
    batch_size: int = 16
    ltv_lr: float = 0.1  # twice the default: 60 steps instead of 300 (the comparison's best steps: 60-300)
    steer_lr: float = 0.02
    eval_every: int = 15
    patience: int = 2
    n_test: int = 48  # test prompts per setting
    n_cie: int = 16  # shuffled prompts for the FV's causal indirect effects
    seed: int = 0

    def ltv_config(self, **overrides):
        from interp.vectors import LTVConfig

        base = dict(
            n_mean=self.n_mean, n_train=self.n_train, n_valid=self.n_valid, steps=self.steps,
            batch_size=self.batch_size, lr=self.ltv_lr, eval_every=self.eval_every, patience=self.patience,
            seed=self.seed,
        )  # fmt: skip
        return LTVConfig(**{**base, **overrides})

    def steering_config(self, **overrides):
        from interp.vectors import SteeringConfig

        return SteeringConfig.like(self.ltv_config(), lr=self.steer_lr, **overrides)

    def to_dict(self) -> dict:
        return asdict(self)


def sha_of(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass
class UnitStore:
    """One JSON file per unit of work under ``root/<experiment>/`` (see the module docstring)."""

    root: Path
    tensor_root: Path | None = None
    force: bool = False
    read_only: bool = False  # summarising: a missing unit raises `MissingUnit` instead of being computed
    computed: int = 0
    reused: int = 0
    log: Callable[[str], None] = field(default=lambda msg: print(msg, flush=True))

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.tensor_root = Path(self.tensor_root) if self.tensor_root is not None else self.root

    def path(self, experiment: str, key: dict) -> Path:
        return self.root / experiment / f"{sha_of(key)}.json"

    def folder(self, experiment: str, key: dict) -> Path:
        return self.tensor_root / experiment / sha_of(key)

    def load(self, experiment: str, key: dict) -> dict | None:
        path = self.path(experiment, key)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None  # a truncated file (cannot happen with atomic writes, but be safe): recompute
        return record["result"] if record.get("key") == _jsonable(key) else None

    def get_or_run(
        self, experiment: str, key: dict, compute: Callable[[Path], dict], needs_folder: bool = False
    ) -> dict:
        """The stored result of ``key``, or ``compute(folder)`` stored atomically (also when ``needs_folder``
        and the unit's tensor folder is gone, e.g. in a fresh checkout that has only the JSON results)."""
        if not self.force and not (needs_folder and not (self.folder(experiment, key) / "meta.json").exists()):
            found = self.load(experiment, key)
            if found is not None:
                self.reused += 1
                return found
        if self.read_only:
            if (found := self.load(experiment, key)) is not None:
                return found
            raise MissingUnit(f"{experiment}: {key.get('task')} {key.get('unit')}")
        folder = self.folder(experiment, key)
        t0 = time.perf_counter()
        result = compute(folder)
        wall = round(time.perf_counter() - t0, 1)
        path = self.path(experiment, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".json.tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": _jsonable(key), "wall_s": wall, "result": _jsonable(result)}, indent=None))
        tmp.replace(path)
        self.computed += 1
        self.log(f"[{experiment}] {key.get('task', '')} {key.get('unit', '')} done in {wall:.0f} s")
        return _jsonable(result)

    def records(self, experiment: str) -> list[dict]:
        """Every stored unit of ``experiment`` as ``{"key", "wall_s", "result"}``."""
        out = []
        for path in sorted((self.root / experiment).glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except json.JSONDecodeError:
                continue
        return out


def _jsonable(obj):
    def default(o):
        if isinstance(o, torch.Tensor):
            return o.detach().cpu().tolist()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, (np.floating, np.integer, np.bool_)):
            return o.item()
        if isinstance(o, (set, tuple)):
            return list(o)
        raise TypeError(f"cannot serialise {type(o).__name__}")

    return json.loads(json.dumps(obj, default=default))


class Context:
    """The model, tasks and memoised problems of one process (prompts and frozen prefixes are shared)."""

    def __init__(self, settings: ExperimentSettings, model=None):
        self.s = settings
        self._model = model
        self._tasks: dict[str, Any] = {}
        self._problems: dict[tuple, Any] = {}
        self._model_id: dict | None = None

    @property
    def model(self):
        if self._model is None:
            from interp.models import load_model

            self._model = load_model(self.s.model)
        return self._model

    def model_id(self) -> dict:
        if self._model_id is None:
            from interp.models import model_fingerprint

            self._model_id = {"name": self.model.cfg.model_name, "fingerprint": model_fingerprint(self.model)}
        return self._model_id

    def task(self, name: str):
        if name not in self._tasks:
            from interp.tasks import load_task

            self._tasks[name] = load_task(name, self.s.tasks_dir, seed=self.s.seed)
        return self._tasks[name]

    def task_id(self, name: str) -> dict:
        task = self.task(name)
        content = sha_of([[p.input, p.output] for p in task.pairs])
        return {"name": name, "content": content, "splits": {k: len(v) for k, v in task.splits.items()}}

    def problem(self, name: str, *, seed: int = 0, train_half: int | None = None, template=None):
        """A `TextProblem`: ``seed`` redraws every prompt; ``train_half`` (0/1) keeps one of two disjoint halves
        of the train split (valid / test prompts are shared with the full problem); ``template`` renders
        prompts with another template (portability)."""
        from interp.problems import TextProblem

        tkey = template if template is None or isinstance(template, str) else repr(template)
        key = (name, seed, train_half, tkey)
        if key not in self._problems:
            task = self.task(name)
            if train_half is not None:
                train = list(task.splits["train"])
                rng = np.random.default_rng(1234)
                order = rng.permutation(len(train))
                half = sorted(train[i] for i in order[train_half :: 2])  # disjoint halves of equal size
                task = replace(task, splits={**task.splits, "train": half})
            problem = TextProblem(self.model, task, shots=self.s.shots, seed=self.s.seed + seed,
                                  **({"template": template} if template is not None else {}))  # fmt: skip
            if train_half is not None:
                base = self.problem(name, seed=seed, template=template)
                # the halves differ in what is learned from (ā, training prompts); early stopping and the test
                # use the full problem's valid / test prompts (their demos come from the full train split)
                problem.prefix = _shared_prefix(problem, base)
            self._problems[key] = problem
        return self._problems[key]

    def key(self, experiment: str, task: str | None, unit: str, **parts) -> dict:
        return {
            "experiment": experiment, "unit": unit, "task": task,
            "task_id": self.task_id(task) if task else None, "model": self.model_id(),
            "settings": self.s.to_dict(), **parts,
        }  # fmt: skip


def _shared_prefix(problem, base):
    own = problem.prefix

    def prefix(setting, split, n, seed=0, build=True):
        if split in ("valid", "test"):
            return base.prefix(setting, split, n, seed, build)
        return own(setting, split, n, seed, build)

    return prefix


# ----------------------------------------------------------------------------------------------- scoring
def cell(result) -> dict:
    """An `EvalResult` as a JSON cell: accuracy with its 95% Wilson interval and the per-query outcomes."""
    correct = [bool(c) for c in result.correct]
    low, high = wilson_interval(sum(correct), len(correct))
    return {
        "accuracy": float(np.mean(correct)) if correct else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "n": len(correct),
        "correct": correct,
        "target_prob": float(np.mean(result.prob)) if len(result.prob) else float("nan"),
    }


def evaluate_vector(ctx: Context, vec, task: str, settings=("zero-shot", "shuffled"), problem=None) -> dict:
    problem = problem or ctx.problem(task)
    return {s: cell(vec.evaluate(problem, s, n=ctx.s.n_test)) for s in settings}


def evaluate_plain(ctx: Context, task: str, setting: str, problem=None) -> dict:
    """The bare model (no vector) in ``setting`` (``icl`` is clean k-shot ICL)."""
    from interp.problems import run_prefix

    problem = problem or ctx.problem(task)
    batch, prefix = problem.prefix(setting, "test", ctx.s.n_test)
    out = run_prefix(prefix, lambda idx: [])
    return cell(problem.result(out, batch, method="none" if setting != "icl" else "ICL (clean)"))


def pooled(cells: list[dict]) -> dict:
    """Accuracy pooled over several cells (every query counts once) with its Wilson interval."""
    k = sum(sum(c["correct"]) for c in cells)
    n = sum(len(c["correct"]) for c in cells)
    low, high = wilson_interval(k, n)
    return {"accuracy": k / n if n else float("nan"), "ci_low": low, "ci_high": high, "n": n}


def paired_difference(a: list[bool], b: list[bool], n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of ``a - b`` over the same queries, with a 95% paired bootstrap interval."""
    x = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if x.size == 0:
        return {"diff": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    boots = x[rng.integers(0, x.size, (n_boot, x.size))].mean(1)
    return {"diff": float(x.mean()), "ci_low": float(np.quantile(boots, 0.025)),
            "ci_high": float(np.quantile(boots, 0.975)), "n": int(x.size)}  # fmt: skip


def fisher_z_interval(r: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of a correlation by the Fisher z-transform (``n`` paired observations)."""
    if n <= 3 or not math.isfinite(r):
        return (float("nan"), float("nan"))
    r = max(min(r, 0.999999), -0.999999)
    centre, half = math.atanh(r), z / math.sqrt(n - 3)
    return (math.tanh(centre - half), math.tanh(centre + half))
