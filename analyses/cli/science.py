"""``interp science``: the "is the LTV a task representation?" study (`analyses.science`).

    interp science run core,headcount --tasks capitalize,antonym [--tasks-dir D]   # compute units (resumable)
    interp science summarise [--tasks ...] [--json]        # tables -> results/science/*.json, verdicts -> results/claims.json

Phases (each resumable; a finished unit is read back from the store, never recomputed): core, controls,
ablation, halves, stability, random-label, headcount, data, portability (see `analyses.science.phases`).
``summarise`` computes nothing. Progress goes to stderr; ``--json`` prints one JSON document (the claims).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from analyses.science.phases import CLAIMS_PATH

HELP = "the LTV study: compute its units (run PHASE) or its tables and verdicts (summarise)"


def add_parser(sub) -> None:
    from analyses.science.phases import PHASES, ROOT, TENSOR_ROOT
    from analyses.science.units import DEFAULT_TASKS, ExperimentSettings

    parser = sub.add_parser("science", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ssub = parser.add_subparsers(dest="science_command", required=True)
    p_run = ssub.add_parser("run", help="compute the units of one or more phases (comma-separated, in order)")
    p_run.add_argument("phase", help=f"comma-separated phases among {', '.join(PHASES)}; each runs on every task")
    p_run.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated task names")
    p_run.add_argument("--all-tasks", default=",".join(DEFAULT_TASKS),
                       help="the full task list (the cross-task basis of a task is the next task in it)")
    p_run.add_argument("--portability-methods", default=None,
                       help="comma-separated vectors for the portability phase (default LTV,steering,FV,TV)")
    p_run.add_argument("--workers", type=int, default=0, help="Ray workers, one model each (default 0: this process)")
    p_run.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p_run.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p_run.add_argument("--address", default=None, help="join a Ray cluster ('auto' or ray://host:10001)")
    p_sum = ssub.add_parser("summarise", help="tables + claims from the stored units (computes nothing)")
    p_sum.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    p_sum.add_argument("--out", default=None,
                       help="where the tables go (default: results/science for smollm2-135m, "
                            "results/science/<model> for any other model)")  # fmt: skip
    p_sum.add_argument("--claims", default=str(CLAIMS_PATH))
    p_sum.add_argument("--json", action="store_true")
    p_sum.add_argument("--portability-methods", default=None, help="as for run: which portability units to read")
    p_sum.add_argument("--sweep", default=None,
                       help="a sweep store whose LTV fits give θ stability across seeds and whose cells judge the "
                            "LTV-vs-FV / TV and weak-ICL claims ('' to ignore it; default: the model's suite sweep, "
                            "results/sweeps/text for smollm2-135m, results/sweeps/gemma for gemma-3-270m)")  # fmt: skip
    for p in (p_run, p_sum):
        p.add_argument("--root", default=str(ROOT), help="the units' store")
        p.add_argument("--tensor-root", default=str(TENSOR_ROOT), help="the units' tensors (a git-ignored cache)")
        for f in fields(ExperimentSettings):
            kind = {int: int, float: float}.get(type(f.default), str)
            p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=None)


def run(args) -> int:
    from analyses.science.phases import PHASES, _settings, task_groups

    settings = _settings(args)
    if args.science_command == "run":
        from interp.sweep.runner import Execution, run_groups

        tasks = [t for t in args.tasks.split(",") if t]
        phases = [p for p in args.phase.split(",") if p]
        for phase in phases:
            if phase not in PHASES:
                raise ValueError(f"unknown phase {phase!r}; choose among {', '.join(PHASES)}")
        methods = args.portability_methods.split(",") if args.portability_methods else None
        # the one runner: each task of a phase is a unit of work on a worker holding the model
        ex = Execution(settings.model, args.root, workers=args.workers, device=args.device, threads=args.threads,
                       address=args.address)  # fmt: skip
        for phase in phases:
            groups = task_groups(phase, tasks, settings, args.root, args.tensor_root, args.all_tasks.split(","), methods)
            run = run_groups(groups, ex, label=f"science {phase}")
            print(f"[science] {phase}: {len(groups)} task(s) run, {run['failed']} failed", file=sys.stderr)
        return 0
    from analyses.science.claims import summarise

    methods = tuple(args.portability_methods.split(",")) if args.portability_methods else None
    from analyses.science.phases import SWEEPS, tables_dir

    out = args.out or tables_dir(settings.model)
    sweep = SWEEPS.get(settings.model) if args.sweep is None else (args.sweep or None)
    report = summarise([t for t in args.tasks.split(",") if t], settings, args.root, args.tensor_root, out,
                       args.claims, portability_methods=methods, sweep=sweep)  # fmt: skip
    if args.json:
        print(json.dumps(report["claims"], indent=1))
    else:
        for c in report["claims"]:
            print(f"{c['verdict']:<14} {c['claim']}", file=sys.stderr)
    return 0
