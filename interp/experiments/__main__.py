"""``python -m interp.experiments run PHASE --tasks a,b`` / ``python -m interp.experiments summarise``.

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

``summarise`` reads every stored unit (computing nothing), writes tidy tables to ``<out>/*.json`` and the
verdicts to ``results/claims.json``. Progress goes to stderr; ``--json`` prints one JSON document.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from interp.experiments.units import DEFAULT_TASKS, Context, ExperimentSettings, UnitStore

PHASES = ("core", "controls", "ablation", "halves", "stability", "random-label", "headcount", "data", "portability")
ROOT = Path("results/science/units")
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
    from interp.experiments import controls, data_efficiency, portability, sparse, stability
    from interp.experiments.fits import fit_unit

    store = UnitStore(root, tensor_root, log=lambda m: print(m, file=sys.stderr, flush=True))
    ctx = Context(settings, model)
    all_tasks = list(all_tasks or tasks)
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
        elif phase == "headcount":
            sparse.units(ctx, store, task)
        elif phase == "data":
            data_efficiency.units(ctx, store, task)
        elif phase == "portability":
            portability.units(ctx, store, task, methods=tuple(portability_methods or portability.METHODS))
        else:
            raise SystemExit(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
        ctx._problems.clear()  # free this task's frozen prefixes (GBs) before the next task
        gc.collect()
    return store


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interp.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="compute the units of one or more phases (comma-separated, in order)")
    p_run.add_argument("phase", help=f"comma-separated phases among {', '.join(PHASES)}; each runs on every task")
    p_run.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated task names")
    p_run.add_argument("--all-tasks", default=",".join(DEFAULT_TASKS),
                       help="the full task list (the cross-task basis of a task is the next task in it)")
    p_run.add_argument("--portability-methods", default=None,
                       help="comma-separated vectors for the portability phase (default LTV,steering,FV,TV)")
    p_sum = sub.add_parser("summarise", help="tables + claims from the stored units (computes nothing)")
    p_sum.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    p_sum.add_argument("--out", default="results/science")
    p_sum.add_argument("--claims", default="results/claims.json")
    p_sum.add_argument("--json", action="store_true")
    p_sum.add_argument("--portability-methods", default=None, help="as for run: which portability units to read")
    p_sum.add_argument("--sweep", default="results/sweeps/text",
                       help="a sweep store whose LTV fits give θ stability across seeds and whose cells judge the "
                            "LTV-vs-FV and weak-ICL claims ('' to ignore it)")  # fmt: skip
    for p in (p_run, p_sum):
        p.add_argument("--root", default=str(ROOT))
        p.add_argument("--tensor-root", default=str(TENSOR_ROOT))
        for f in fields(ExperimentSettings):
            kind = {int: int, float: float}.get(type(f.default), str)
            p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=None)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("INTERP_NUM_THREADS", "1")))
    settings = _settings(args)
    if args.command == "run":
        tasks = [t for t in args.tasks.split(",") if t]
        phases = [p for p in args.phase.split(",") if p]
        for phase in phases:
            if phase not in PHASES:
                print(f"error: unknown phase {phase!r}; choose among {', '.join(PHASES)}", file=sys.stderr)
                return 2
        from interp.models import load_model

        model = load_model(settings.model)
        for phase in phases:
            methods = args.portability_methods.split(",") if args.portability_methods else None
            store = run_phase(phase, tasks, settings, args.root, args.tensor_root, args.all_tasks.split(","), model,
                              methods)  # fmt: skip
            print(f"[experiments] {phase}: {store.computed} units computed, {store.reused} reused", file=sys.stderr)
        return 0
    from interp.experiments.claims import summarise

    methods = tuple(args.portability_methods.split(",")) if args.portability_methods else None
    report = summarise([t for t in args.tasks.split(",") if t], settings, args.root, args.tensor_root, args.out,
                       args.claims, portability_methods=methods, sweep=args.sweep or None)  # fmt: skip
    if args.json:
        print(json.dumps(report["claims"], indent=1))
    else:
        for c in report["claims"]:
            print(f"{c['verdict']:<14} {c['claim']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
