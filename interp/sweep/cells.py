"""What one group of sweep cells computes: the ONLY module of `interp.sweep` that calls the fitting and
evaluation API (`interp.vectors.fit_*`, `TaskVector.evaluate`, `interp.problems.TextProblem`).

A *cell* is one (task, method, setting, seed) and yields one accuracy (Wilson 95% CI) and one mean target
probability on the test split. Cells are computed in *groups*: all pending cells of one (task, seed) share
one `SweepProblem`, so every prompt prefix, the clean head means (shared by LTV and FV), and the valid
prefixes (shared by the LTV's early stopping and the FV / TV layer sweeps) are computed once for all the
group's methods; each fitted vector is fitted once for both settings and saved as an artifact, and a later
group that needs it (e.g. the random-θ control of an already fitted LTV) loads it instead of refitting.
The multi-task LTV is one group per seed over all the sweep's tasks.

Seeds: a seed changes the sampled demonstrations (train, valid and test prompts), the LTV's minibatches and
the random-θ draw; the train/valid/test split (``split_seed``) and the test *queries* stay fixed, so every
seed and every method is scored on the same test items in the same order (Todd's filter can then be applied
per item across cells).
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from interp.engine import final_logits
from interp.results import EvalResult
from interp.problems import TextProblem, run_prefix
from interp.prompts import model_prompts, require_scorable
from interp.tasks import load_task
from interp.vectors import (
    FVConfig, LTVConfig, SteeringConfig, TVConfig, fit_fv, fit_lr_grid, fit_ltv, fit_tv, load_vector,
)  # fmt: skip

#: bump a method's version when what its cells compute changes: its cells (and only those) are recomputed
CELL_VERSION: dict[str, int] = {"none": 1, "icl": 1, "ltv": 1, "fv": 1, "tv": 1, "random": 1, "ltv-multi": 2, "steer": 1}
#: the fitted vector each method's cells use (None: no fit)
FIT_OF: dict[str, str | None] = {
    "none": None, "icl": None, "ltv": "ltv", "fv": "fv", "tv": "tv", "random": "ltv", "ltv-multi": "ltv-multi",
    "steer": "steer",
}  # fmt: skip
LABELS = {
    "none": "none", "icl": "ICL (clean)", "random": "random-θ", "fv": "FV", "tv": "TV", "ltv": "LTV",
    "ltv-multi": "LTV (multi-task)", "steer": "steering",
}  # fmt: skip
_TEST_QUERY_SEED = 303  # the test queries' order: fixed by the split, not by the sweep seed


@dataclass
class CellSpec:
    """One cell of the grid and its content-addressed key (see `interp.sweep.keys`)."""

    key: str
    task: str
    method: str
    setting: str  # "zero-shot" | "shuffled" | "icl" (the clean-ICL cell)
    seed: int
    fit_key: str | None = None  # artifact of the fitted vector this cell evaluates


@dataclass
class GroupSpec:
    """The unit of work sent to a worker: the pending cells of one (task, seed), or of one multi-task LTV."""

    kind: str  # "task" | "multi" | "call" (``options["fn"]``: "module:function", see `run_group`)
    tasks: list[tuple[str, str]]  # (name, JSON path)
    seed: int
    cells: list[CellSpec]
    options: dict[str, Any]  # shots, template, n, split_seed, ltv / fv / tv / ltv_multi configs (dicts)
    artifacts: str = ""  # folder of fitted vectors
    label: str = field(default="")


class SweepProblem(TextProblem):
    """A `TextProblem` whose test queries are fixed by the split alone (not by the sweep seed)."""

    def _make_batch(self, setting: str, split: str, n: int | None, seed: int):
        if split != "test":
            return super()._make_batch(setting, split, n, seed)
        pool = self.task.test
        order = list(range(len(pool)))
        random.Random(self.task.seed * 1000 + _TEST_QUERY_SEED).shuffle(order)
        queries = [pool[i] for i in (order if n is None else order[:n])]
        return model_prompts(
            self.model, self.task, setting=setting, shots=self.shots, split="test", queries=queries,
            template=self.template, seed=self.seed * 1000 + seed + _TEST_QUERY_SEED,
        )  # fmt: skip


def load_worker_model(name: str, device: str | None = None):
    """The model a worker serves cells with (loaded once per worker)."""
    from interp.models import load_model

    return load_model(name, device=device, verbose=False)


def model_identity(model) -> dict:
    from interp.vectors.base import describe_model

    return describe_model(model)


def _configs(options: dict, seed: int, model) -> dict[str, Any]:
    n_heads = model.cfg.n_layers * model.cfg.n_heads
    fv = FVConfig(**options["fv"])
    return {
        "ltv": replace(LTVConfig(**options["ltv"]), seed=seed),
        "fv": replace(fv, seed=seed, top_k=min(fv.top_k, n_heads)),
        "tv": TVConfig(**options["tv"]),
        "steer": replace(SteeringConfig(**{k: v for k, v in options.get("steer", {}).items() if k != "lr_grid"}),
                         seed=seed),
        "steer_lr_grid": tuple(options.get("steer", {}).get("lr_grid", ())),
    }


def _problem(model, name: str, path: str, seed: int, options: dict) -> SweepProblem:
    task = load_task(path, seed=options["split_seed"])
    task.name = name
    return SweepProblem(model, task, shots=options["shots"], template=options["template"], seed=seed)


def _metrics(result: EvalResult) -> dict:
    d = result.to_dict()
    p_low, p_high = d["target_prob_ci"]
    return {
        "accuracy": {"value": d["accuracy"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "n": d["n"]},
        "target_prob": {"value": d["target_prob"], "ci_low": p_low, "ci_high": p_high, "n": d["n"]},
    }


def _evaluate_plain(problem: SweepProblem, setting: str, n: int) -> EvalResult:
    """No intervention; the clean-ICL ceiling is a full forward (its prefix is reused by nothing)."""
    if setting == "icl":
        batch = problem.batch("icl", "test", n)
        with torch.no_grad():
            logits = torch.cat([final_logits(problem.model, c.tokens, c.attention_mask) for c in batch.chunks(16)])
        return problem.result(logits, batch, "ICL (clean)")
    batch, prefix = problem.prefix(setting, "test", n)
    return problem.result(run_prefix(prefix, lambda idx: []), batch, "none")


def _ok(cell: CellSpec, result: EvalResult, timing: dict, fit_info: dict | None) -> dict:
    return {
        "key": cell.key, "status": "ok", "task": cell.task, "method": cell.method, "setting": cell.setting,
        "seed": cell.seed, "metrics": _metrics(result), "correct": [bool(c) for c in result.correct],
        "skipped": result.skipped, "multi_token": result.multi_token, "timing": timing,
        "fit": fit_info, "artifact": cell.fit_key,
    }  # fmt: skip


def _failed(cell: CellSpec, err: BaseException, stage: str) -> dict:
    return {
        "key": cell.key, "status": "failed", "task": cell.task, "method": cell.method, "setting": cell.setting,
        "seed": cell.seed, "error": f"{type(err).__name__}: {err}", "stage": stage,
        "traceback": traceback.format_exc(limit=6)[-3000:],
    }  # fmt: skip


def _fit_info(vec) -> dict:
    meta = vec.meta
    info: dict[str, Any] = {}
    if vec.method in ("ltv", "steer"):
        keys = ("steps_run", "best_step", "stopped", "wall_s", "lr", "lr_grid")
        info = {k: meta.get("training", {}).get(k) for k in keys if k in meta.get("training", {})}
    elif vec.method in ("fv", "tv"):
        info = {"layer": vec.layer}
        if vec.method == "fv":
            info["top_heads"] = vec.top_heads()
    return info


class _Vectors:
    """Fitted vectors of one group: loaded from their artifact when it exists, else fitted and saved."""

    def __init__(self, model, artifacts: str, fitters: dict[str, Callable[[], Any]]):
        self.model, self.root, self.fitters, self.cache, self.fit_s = model, Path(artifacts), fitters, {}, {}

    def get(self, fit: str, fit_key: str):
        if isinstance(self.cache.get(fit_key), Exception):
            raise self.cache[fit_key]  # a fit that failed fails every cell that needs it, without refitting
        if fit_key not in self.cache:
            path = self.root / fit_key
            t0 = time.perf_counter()
            if (path / "meta.json").exists() and (path / "vector.safetensors").exists():
                vec, reused = load_vector(path, self.model), True
            else:
                try:
                    vec, reused = self.fitters[fit](), False
                except Exception as err:
                    self.cache[fit_key] = err
                    raise
                vec.save(path)  # atomic (TaskVector.save writes temp files, then renames)
            self.cache[fit_key] = vec
            self.fit_s[fit_key] = (round(time.perf_counter() - t0, 3), reused)
        return self.cache[fit_key]


def run_group(model, group: GroupSpec, emit: Callable[[dict], None]) -> None:
    """Compute every cell of ``group`` on ``model``, calling ``emit(record)`` as each cell finishes.

    A cell that raises is emitted as ``status: failed`` with its error; the group goes on with the rest.
    If the task itself cannot be loaded (e.g. a malformed file), every cell of the group fails with that error.
    """
    opts = group.options
    if group.kind == "multi":
        return _run_multi(model, group, emit)
    if group.kind == "call":
        # any study's unit of work on the worker's model: the function is named, not pickled, so a Ray worker
        # imports it itself (the library never imports the application; the application names its function)
        import importlib

        module, _, attr = opts["fn"].partition(":")
        return getattr(importlib.import_module(module), attr)(model, group, emit)
    name, path = group.tasks[0]
    try:
        problem = _problem(model, name, path, group.seed, opts)
        cfgs = _configs(opts, group.seed, model)
    except Exception as err:  # noqa: BLE001 - recorded per cell; the sweep goes on
        for cell in group.cells:
            emit(_failed(cell, err, "task"))
        return
    vectors = _Vectors(model, group.artifacts, {
        "ltv": lambda: fit_ltv(problem, cfgs["ltv"], progress=False),
        "fv": lambda: fit_fv(problem, cfgs["fv"], progress=False),
        "tv": lambda: fit_tv(problem, cfgs["tv"], progress=False),
        "steer": lambda: fit_lr_grid("steer", problem, cfgs["steer"], cfgs["steer_lr_grid"] or (cfgs["steer"].lr,),
                                     progress=False),
    })  # fmt: skip
    # fits first in a fixed order (LTV before its random control), so prefixes are shared as planned
    order = {"icl": 0, "none": 1, "ltv": 2, "random": 3, "steer": 4, "fv": 5, "tv": 6}
    for cell in sorted(group.cells, key=lambda c: (order.get(c.method, 9), c.setting)):
        stage = "fit"
        try:
            fit_info = None
            if cell.method in ("none", "icl"):
                t0 = time.perf_counter()
                result, timing = _evaluate_plain(problem, cell.setting, opts["n"]), {}
            else:
                vec = vectors.get(FIT_OF[cell.method], cell.fit_key)
                fit_s, reused = vectors.fit_s[cell.fit_key]
                if cell.method == "random":
                    vec = vec.random_control(group.seed)
                fit_info = _fit_info(vec)
                timing = {"fit_s": fit_s, "fit_reused": reused}
                stage, t0 = "evaluate", time.perf_counter()
                result = vec.evaluate(problem, cell.setting, n=opts["n"])
            timing["eval_s"] = round(time.perf_counter() - t0, 3)
            emit(_ok(cell, result, timing, fit_info))
        except Exception as err:  # noqa: BLE001
            emit(_failed(cell, err, stage))


def _run_multi(model, group: GroupSpec, emit: Callable[[dict], None]) -> None:
    """One LTV over every loadable task of the sweep (one θ, each task's own head means), scored per task."""
    opts = group.options
    problems, broken = {}, {}
    for name, path in group.tasks:
        try:
            problem = _problem(model, name, path, group.seed, opts)
            # a task none of whose answers this tokenizer can score must not sink the fit of all the others
            require_scorable(model.tokenizer, problem.task)
            problems[name] = problem
        except Exception as err:  # noqa: BLE001
            broken[name] = err  # e.g. a malformed file, or no target this tokenizer can score: the rest train on
    cells = [c for c in group.cells if c.task not in broken]
    for cell in group.cells:
        if cell.task in broken:
            emit(_failed(cell, broken[cell.task], "task"))
    if not cells:
        return
    # One cache bound for the whole group, not one per task: each problem's LRU cache may otherwise grow to the
    # full bound, and 40 tasks' test prefixes (~0.85 GB each on SmolLM2) killed a 24 GB machine. Nothing in this
    # group reuses a task's prefixes after its pool is built (the pools hold their own copy) or after its cells.
    budget = next(iter(problems.values())).cache.max_bytes
    for problem in problems.values():
        problem.set_cache_bytes(budget // len(problems))
    fit_key = cells[0].fit_key
    try:
        cfg = replace(LTVConfig(**opts["ltv_multi"]), seed=group.seed)
        vectors = _Vectors(model, group.artifacts, {"ltv-multi": lambda: fit_ltv(list(problems.values()), cfg, progress=False)})
        multi = vectors.get("ltv-multi", fit_key)
        fit_s, reused = vectors.fit_s[fit_key]
    except Exception as err:  # noqa: BLE001
        for cell in cells:
            emit(_failed(cell, err, "fit"))
        return
    info = {**_fit_info(multi), "tasks": list(problems)}
    remaining = {name: sum(c.task == name for c in cells) for name in problems}
    for cell in cells:
        try:
            t0 = time.perf_counter()
            result = multi.for_task(cell.task).evaluate(problems[cell.task], cell.setting, n=opts["n"])
            timing = {"fit_s": fit_s, "fit_reused": reused, "eval_s": round(time.perf_counter() - t0, 3)}
            emit(_ok(cell, result, timing, info))
        except Exception as err:  # noqa: BLE001
            emit(_failed(cell, err, "evaluate"))
        finally:
            remaining[cell.task] -= 1
            if not remaining[cell.task]:
                problems[cell.task].clear_cache()  # this task's test prefixes are done with
