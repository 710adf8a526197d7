"""``interp regress experiment``: LTV / FV past the trained prompt length (`analyses.regression_length`).

    interp regress experiment --class {linear,...,all} [--shift S] [--quick] [--out results/regression] [--json]
"""

from __future__ import annotations

import json
from pathlib import Path

HELP = "LTV / FV past the trained length (writes results/regression/)"


def add_parser(sub) -> None:
    p = sub.add_parser("experiment", help=HELP, description=__doc__)
    p.add_argument("--class", dest="function_class", required=True)
    p.add_argument("--shift", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default results/regression)")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    """One (class, shift) experiment, or ``--class all``: every shipped class, with and without each shift."""
    from analyses.regression_length import format_table, length_experiment
    from interp.regression import FUNCTION_CLASSES, SHIFTS

    if args.function_class == "all":
        jobs = [(c, s) for c in sorted(FUNCTION_CLASSES) for s in (None, *sorted(SHIFTS))]
    else:
        jobs = [(args.function_class, args.shift)]
    for function_class, shift in jobs:
        out = Path(args.out or "results/regression")
        result, computed = length_experiment(out, function_class, shift, quick=args.quick, seed=args.seed)
        how = "computed" if computed else "read back from the store"
        print(json.dumps(result["summary"]) if args.json else format_table(result) + f"\n{how}; wrote {out}\n")
    return 0
