"""Plumbing shared by the experiments: settings, the units' store, memoised problems, scored cells.

Every experiment is a function over independent *units* (one vector fit and its evaluations, one FV's
causal effects, ...). A unit is a cell of the one results store (`interp.store.Store`): its key hashes
everything the result depends on (the experiment, the unit's own settings, the shared `ExperimentSettings`,
the model's fingerprint and the task's content), it is written atomically, so an interrupted run resumes
where it stopped and a finished unit is never recomputed. Tensors a later unit needs (a fitted vector) are
the cell's artifacts, kept apart in a git-ignored cache (the JSON results are small enough to commit, the
vectors are not; a unit whose vector is asked for but missing is refitted). `UnitStore.get_or_run` is the only
entry point and units never share mutable state beyond the memoised problems of one process (which only
cache prompts and frozen prefixes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from interp.defaults import STUDY_TASKS
from interp.stats import wilson
from interp.store import MissingCell, Store, digest

#: the study's tasks (one list for the whole project: `interp.defaults.STUDY_TASKS`)
DEFAULT_TASKS = STUDY_TASKS


class ExperimentError(ValueError):
    """An experiment cannot run as asked; the message names the problem and the fix."""


MissingUnit = MissingCell  # a read-only store was asked for a unit that has not been computed yet


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


class UnitStore(Store):
    """The units' store: one `interp.store.Store` (``root/cells/<key>.json``; tensors under ``tensor_root``),
    each unit a cell whose ``kind`` is its experiment."""

    def __init__(self, root, tensor_root=None, force: bool = False, read_only: bool = False,
                 log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        super().__init__(root, tensor_root, force=force, read_only=read_only,
                         log=log or (lambda msg: print(msg, flush=True)))  # fmt: skip

    def get_or_run(self, experiment: str, key: dict, compute: Callable[[Path], dict], needs_folder: bool = False) -> dict:
        """The stored result of ``key``, or ``compute(folder)`` stored atomically (also when ``needs_folder``
        and the unit's tensor folder is gone, e.g. in a fresh checkout that has only the JSON results)."""
        return self.get_or_compute(key, compute, kind=experiment, needs_artifacts=needs_folder,
                                   label=f"{key.get('task', '')} {key.get('unit', '')}".strip())  # fmt: skip


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
        content = digest([[p.input, p.output] for p in task.pairs])
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
    return {
        **wilson(correct),
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
    return wilson([c for cell in cells for c in cell["correct"]])


def claim_record(claim, verdict, evidence, figure, rule, **extra) -> dict:
    """One entry of ``results/claims.json``: the claim, its verdict, the evidence, its figure and the rule."""
    return {"claim": claim, "verdict": verdict, "evidence": evidence, "figure": figure, "rule": rule, **extra}
