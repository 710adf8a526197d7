"""``interp report``: the comparison table (Markdown + figure) of a sweep's results store.

    interp report --sweep results/sweeps/NAME [--out DIR] [--all] [--json]
"""

from __future__ import annotations

import json

HELP = "the comparison table (Markdown + figure) of a sweep's results store"


def add_parser(sub) -> None:
    p = sub.add_parser("report", help=HELP, description=__doc__)
    p.add_argument("--sweep", required=True, help="a sweep's --out folder")
    p.add_argument("--out", default=None, help="where to write report.md and the figure (default: the sweep folder)")
    p.add_argument("--all", dest="all_cells", action="store_true",
                   help="every finished cell of the store, not only the last run's grid")
    p.add_argument("--json", action="store_true", help="print the table as one JSON object")


def run(args) -> int:
    from interp.sweep.report import write_report

    out = write_report(args.sweep, args.out, quiet=args.json, all_cells=args.all_cells)
    if args.json:
        print(json.dumps(out, default=str))
    return 0
