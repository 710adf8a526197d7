"""``interp figures``: regenerate every figure under ``figures/`` (the main job; `analyses.main`).

    interp figures [--quick] [--force] [--out figures] [--tasks-dir D]
"""

from __future__ import annotations

import argparse

HELP = "regenerate every figure under figures/ (the main job)"


def add_parser(sub) -> None:
    p = sub.add_parser("figures", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller n, fewer tasks (<= 3 min)")
    p.add_argument("--force", action="store_true", help="recompute even if cached")
    p.add_argument("--out", default="figures")
    p.add_argument("--tasks-dir", default=None)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)  # tests: a tiny model


def run(args) -> int:
    from analyses.main import cmd_figures

    return cmd_figures(args)
