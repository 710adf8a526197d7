"""The text comparison: every method on the same prompts and splits, from the sweep results store.

For each task: test-split top-1 first-token accuracy in the zero-shot and shuffled-label settings for

    no intervention | clean k-shot ICL (the ceiling) | random-θ control | FV | TV | LTV | LTV (multi-task)

The cells are computed by ``interp sweep`` (resumable, content-addressed, on Ray; see `interp.sweep`) into
one store; this module only reads it: means over seeds with their spread (one seed: 95% Wilson CIs), and
Todd et al.'s filter (items clean ICL answers right) beside plain accuracy.

    interp sweep --config results/sweeps/text.toml            # compute (or resume) the cells
    python -m interp.comparison --sweep results/sweeps/text   # -> results/text_comparison.md (the table)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_TASKS = (
    "capitalize", "present-past", "singular-plural", "country-capital", "antonym", "english-french",
    "person-sport", "lowercase_first_letter", "choose_first_of_3", "adjective_v_verb_3",
)  # fmt: skip
DEFAULT_SWEEP = "results/sweeps/text"


def comparison_markdown(sweep: str | Path = DEFAULT_SWEEP, all_cells: bool = False) -> str:
    """The comparison table of a sweep store as Markdown (one block per setting)."""
    import json

    from interp.sweep.report import grid_results, headline_frame, headline_markdown, summary_frame, to_markdown

    sweep = Path(sweep)
    tidy = grid_results(sweep, all_cells)
    meta = json.loads((sweep / "sweep.json").read_text()) if (sweep / "sweep.json").exists() else {}
    cfg = meta.get("config", {})
    head = (f"# Text comparison ({cfg.get('model', '?')}, {cfg.get('shots', '?')}-shot)\n\n"
            f"Source: the sweep store `{sweep}` ({tidy.key.nunique()} cells; `interp report --sweep {sweep}`).\n")  # fmt: skip
    means = "\n**Means over tasks**\n\n" + headline_markdown(headline_frame(tidy))
    return head + means + to_markdown(summary_frame(tidy))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sweep", default=DEFAULT_SWEEP, help="a store written by `interp sweep --out`")
    p.add_argument("--out", default="results/text_comparison.md", help="where to write the Markdown table")
    p.add_argument("--all", dest="all_cells", action="store_true", help="every finished cell, not only the last grid")
    args = p.parse_args(argv)
    try:
        md = comparison_markdown(args.sweep, args.all_cells)
    except (FileNotFoundError, ValueError) as err:
        print(f"interp.comparison: error: {err}", file=sys.stderr)
        return 2
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
