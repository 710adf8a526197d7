"""``interp comparison``: the text comparison table (Markdown) from the sweep store (`analyses.comparison`).

    interp comparison [--sweep results/sweeps/text] [--out results/text_comparison.md] [--all]
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "the text comparison table (Markdown) of a sweep store"


def add_parser(sub) -> None:
    from analyses.comparison import DEFAULT_SWEEP

    p = sub.add_parser("comparison", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", default=DEFAULT_SWEEP, help="a store written by `interp sweep --out`")
    p.add_argument("--out", default="results/text_comparison.md", help="where to write the Markdown table")
    p.add_argument("--all", dest="all_cells", action="store_true", help="every finished cell, not only the last grid")


def run(args) -> int:
    from analyses.comparison import comparison_markdown

    md = comparison_markdown(args.sweep, args.all_cells)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(md)
    print(md)
    return 0
