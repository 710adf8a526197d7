"""``interp docs``: rewrite the results pages of the documentation (``docs/results/``) from the committed stores.

    interp docs [--out docs/results]          # then commit docs/results/ (a test checks they are fresh)
"""

from __future__ import annotations

HELP = "rewrite docs/results/ (one page per study) from the committed result stores"


def add_parser(sub) -> None:
    p = sub.add_parser("docs", help=HELP, description=__doc__)
    p.add_argument("--out", default="docs/results", help="folder of the results pages")


def run(args) -> int:
    from analyses.docs_pages import write_results_pages

    for path in write_results_pages(args.out):
        print(path)
    return 0
