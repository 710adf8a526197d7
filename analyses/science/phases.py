"""The study's phases: which units each computes (``interp science run PHASE --tasks a,b``).

Phases (each resumable; a finished unit is read back, never recomputed):

- ``core``: per task, everything below in this order while the task's prompts stay in memory (the
  frozen prefixes are the dominant cost on a shared CPU): controls, ablation, the two halves, the second
  seed, the random-label basis;
- ``controls``: per task, the LTV, the bare model and clean ICL, the free steering vector, the cross-task basis;
- ``ablation``: LTVs trained on one corruption only;
- ``halves``: the LTV on each of two disjoint halves of the train split (the core of the stability test);
- ``stability``: the stability fits (a second seed, two disjoint halves of the train split);
- ``random-label``: the random-label basis;
- ``headcount``: the sparse-LTV / FV head-count curve;
- ``data``: data efficiency;
- ``portability``: natural-text templates.

``interp science summarise`` reads every stored unit (computing nothing), writes tidy tables and the verdicts
(`analyses.science.claims`). Progress goes to stderr.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import fields
from pathlib import Path

from analyses.common import slug
from analyses.science.units import DEFAULT_TASKS, Context, ExperimentSettings, UnitStore

PHASES = ("core", "controls", "ablation", "halves", "stability", "random-label", "basis", "geometry", "headcount",
          "data", "portability", "tuned", "tuned-seeds")  # fmt: skip
ROOT = Path("results/science/units")
SCIENCE_DIR = Path("results/science")  # the first model's tables; every other model's in a folder named after it
CLAIMS_PATH = Path("results/claims.json")  # every model's verdicts, merged (`interp science summarise`)
FIRST_MODEL = "smollm2-135m"
#: the suite sweep whose cells each model's sweep claims (LTV > FV / TV, θ across seeds) read
SWEEPS = {"smollm2-135m": "results/sweeps/text", "gemma-3-270m": "results/sweeps/gemma"}


def tables_dir(model: str, science_dir=SCIENCE_DIR) -> Path:
    """Where ``model``'s study writes its tables: ``results/science`` for the first model, else a sub-folder."""
    return Path(science_dir) if model == FIRST_MODEL else Path(science_dir) / model


def model_figure(figure: str, model: str) -> str:
    """The figure a claim about ``model`` cites: the first model's science figures are unsuffixed, every other
    model's carry its slug (`analyses.main.stage_science` draws them so)."""
    if model == FIRST_MODEL or not figure.startswith("figures/science_") or figure.endswith("two_models.html"):
        return figure
    return figure.removesuffix(".html") + f"_{slug(model)}.html"


def other_model_dirs(science_dir=SCIENCE_DIR) -> dict[str, Path]:
    """``{model: folder}`` of every other model whose study tables sit beside the first model's."""
    root = Path(science_dir)
    if not root.is_dir():
        return {}
    return {d.name: d for d in sorted(root.iterdir()) if d.is_dir() and (d / "controls.json").exists()}
TENSOR_ROOT = Path(".cache/science")


def _settings(args) -> ExperimentSettings:
    over = {}
    for f in fields(ExperimentSettings):
        value = getattr(args, f.name, None)
        if value is not None:
            over[f.name] = value
    return ExperimentSettings(**over)


def run_phase(phase: str, tasks: list[str], settings: ExperimentSettings, root=ROOT, tensor_root=TENSOR_ROOT,
              all_tasks=None, model=None, portability_methods=None) -> UnitStore:  # fmt: skip
    """Compute every unit of ``phase`` for ``tasks`` (one task at a time, its prompts freed afterwards)."""
    from analyses.science import controls, data_efficiency, portability, sparse, stability, tuned
    from analyses.science.fits import fit_unit

    store = UnitStore(root, tensor_root, log=lambda m: print(m, file=sys.stderr, flush=True))
    ctx = Context(settings, model)
    store.provenance = lambda: _provenance(ctx.model)
    all_tasks = list(all_tasks or tasks)
    if phase == "geometry":  # one unit over every task of the study (ā compared across tasks)
        controls.abar_similarity_unit(ctx, store, all_tasks)
        return store
    for task in tasks:
        if phase == "core":
            controls.units(ctx, store, task, all_tasks, which=("steer", "cross", "ablation"))
            for half in stability.HALVES:
                fit_unit(ctx, store, task, train_half=half)
            stability.fits_of(ctx, store, task)
            controls.units(ctx, store, task, all_tasks, which=("random-label",))
        elif phase == "controls":
            controls.units(ctx, store, task, all_tasks, which=("steer", "cross"))
        elif phase == "ablation":
            controls.units(ctx, store, task, all_tasks, which=("ablation",))
        elif phase == "halves":
            for half in stability.HALVES:
                fit_unit(ctx, store, task, train_half=half)
        elif phase == "stability":
            stability.fits_of(ctx, store, task)
        elif phase == "random-label":
            controls.units(ctx, store, task, all_tasks, which=("random-label",))
        elif phase == "basis":  # the basis controls that could fail: norm-matched Gaussian, ā without the task
            controls.units(ctx, store, task, all_tasks, which=("gaussian", "no-task"))
        elif phase == "headcount":
            sparse.units(ctx, store, task)
        elif phase == "data":
            data_efficiency.units(ctx, store, task)
        elif phase == "portability":
            portability.units(ctx, store, task, methods=tuple(portability_methods or portability.METHODS))
        elif phase == "tuned":  # LTV and steering, each tuned on valid from the same grid, to convergence
            tuned.units(ctx, store, task, seeds=tuned.SEEDS[:1])
        elif phase == "tuned-seeds":  # the same at the other fit seeds (repeated fits of the same queries)
            tuned.units(ctx, store, task, seeds=tuned.SEEDS[1:])
        else:
            raise SystemExit(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
        ctx._problems.clear()  # free this task's frozen prefixes (GBs) before the next task
        gc.collect()
    return store


def _provenance(model) -> dict:
    """Where a unit was computed (beside its result, not in its key): device, dtype, torch, host."""
    import platform

    import torch

    return {"device": str(model.cfg.device), "dtype": str(model.cfg.dtype), "torch": torch.__version__,
            "host": platform.node()}  # fmt: skip


def task_groups(phase: str, tasks: list[str], settings: ExperimentSettings, root, tensor_root, all_tasks,
                portability_methods=None) -> list:  # fmt: skip
    """One unit of work per task of ``phase`` for the one runner (`interp.sweep.runner.run_groups`, in this
    process or on Ray workers): each runs `run_phase` for its task on the worker's model, writing its units
    into the store at ``root``, which skips every unit it finds finished."""
    from interp.sweep.cells import GroupSpec

    options = {"fn": "analyses.science.phases:run_task_group", "phase": phase, "settings": settings.to_dict(),
               "root": str(Path(root).resolve()), "tensor_root": str(Path(tensor_root).resolve()),
               "all_tasks": list(all_tasks), "portability_methods": list(portability_methods or [])}  # fmt: skip
    if phase == "geometry":  # one unit over all the study's tasks
        return [GroupSpec("call", [(all_tasks[0], "")], 0, [], options, label="geometry (all tasks)")]
    return [GroupSpec("call", [(task, "")], 0, [], options, label=f"{phase} {task}") for task in tasks]


def run_task_group(model, group, emit) -> None:
    """Worker side of `task_groups`: the phase's units of one task, on ``model`` (emits no sweep records:
    the units are cells of the study's own store)."""
    o = group.options
    settings = ExperimentSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in o["settings"].items()})
    store = run_phase(o["phase"], [group.tasks[0][0]], settings, o["root"], o["tensor_root"], o["all_tasks"], model,
                      o["portability_methods"] or None)  # fmt: skip
    print(f"[science] {group.label}: {store.computed} units computed, {store.reused} reused", file=sys.stderr,
          flush=True)  # fmt: skip
