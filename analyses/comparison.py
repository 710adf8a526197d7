"""The text comparison: every method on the same prompts and splits, from the sweep results store.

For each task: test-split top-1 first-token accuracy in the zero-shot and shuffled-label settings for

    no intervention | clean k-shot ICL (the ceiling) | random-θ control | FV | TV | LTV | LTV (multi-task)

The cells are computed by ``interp sweep`` (resumable, content-addressed, on Ray; see `interp.sweep`) into
one store; this module only reads it: means over seeds with their spread (one seed: 95% Wilson CIs), and
Todd et al.'s filter (items clean ICL answers right) beside plain accuracy.

    interp sweep --config results/sweeps/text.toml            # compute (or resume) the cells
    interp comparison --sweep results/sweeps/text        # -> results/text_comparison.md (the table)
"""

from __future__ import annotations

from pathlib import Path

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
