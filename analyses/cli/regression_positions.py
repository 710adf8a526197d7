"""Regression without the position confound: the length experiment on models with and without learned
absolute position rows, then the verdicts.

The shipped checkpoints (``linear``, ``sparse_linear``) add learned absolute position rows, and the rows past
the trained length never receive gradient; the ``*_rotary`` / ``*_nope`` checkpoints (rotary attention, no
positional embedding) have no such rows. For each checkpoint this runs
`analyses.regression_length.run_length_experiment` (LTV, the free steering vector trained like it, FV,
random-θ, the reused-rows and last-T-points controls; intervals bootstrapped over prompts) and writes ``results/regression_positions/<checkpoint>.json``; ``claims`` then writes
``results/regression_positions/claims.json`` (verdicts with 95% CIs) and ``table.md`` from those files, and
draws the two figures into ``figures/`` (``interp figures`` redraws them too, from the same files)::

    interp regress positions run linear sparse_linear linear_rotary sparse_linear_rotary
    interp regress positions claims

Each experiment is a cell of the store ``<out>/store`` (computed once; ``--force`` recomputes). Torch runs on one thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

OUT = Path("results/regression_positions")


HELP = "the length experiment on models with and without learned position rows (run | claims)"


def add_parser(regress_sub) -> None:
    p = regress_sub.add_parser("positions", help=HELP, description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="positions_command", required=True)
    r = sub.add_parser("run", help="run the length experiment on checkpoints")
    r.add_argument(
        "checkpoints",
        nargs="+",
        help="class names (shipped) or directory names under interp/regression/checkpoints",
    )
    r.add_argument("--quick", action="store_true")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--force", action="store_true", help="recompute existing result files")
    c = sub.add_parser("claims", help="write claims.json, table.md and the figures from the result files")
    c.add_argument("--figures", default="figures", help="figure folder ('' to skip the figures)")
    for q in (r, c):
        q.add_argument("--out", default=str(OUT))


def run(a) -> int:
    out = Path(a.out)
    if a.positions_command == "run":
        from analyses.regression_length import (
            format_table,
            length_experiment,
            load_checkpoint,
        )

        for name in a.checkpoints:
            try:
                load_checkpoint(name)
            except (ValueError, FileNotFoundError) as err:
                raise ValueError(str(err)) from None
        for name in a.checkpoints:
            t0 = time.time()
            result, computed = length_experiment(out, name, quick=a.quick, seed=a.seed, force=a.force)
            how = f"computed in {time.time() - t0:.0f} s" if computed else "read back from the store (--force to recompute)"
            print(format_table(result) + f"\n{out / name}.json: {how}\n", flush=True)
        return 0
    from analyses.regression_positions import (
        CURVES_FIGURE,
        SUMMARY_FIGURE,
        load_position_results,
        plot_position_curves,
        plot_position_summary,
        position_claims,
        position_table,
    )

    records = load_position_results(out)
    if not records:
        print(
            f"error: no result files in {out}; run `interp regress positions run ...` first",
            file=sys.stderr,
        )
        return 2
    claims = position_claims(records)
    (out / "claims.json").write_text(json.dumps(claims, indent=1, ensure_ascii=False) + "\n")
    table = position_table(records)
    (out / "table.md").write_text(table + "\n")
    print(table)
    if a.figures:
        from interp.plot.style import FigureWriter

        writer = FigureWriter(Path(a.figures))
        writer.save(
            plot_position_curves(records)[0],
            CURVES_FIGURE,
            "regression past the trained length, per checkpoint",
        )
        writer.save(
            plot_position_summary(records)[0], SUMMARY_FIGURE, "error past the trained length, per checkpoint"
        )
        writer.flush()
        print(f"figures: {', '.join(e['html'] for e in writer.written)} in {a.figures}/")
    for cl in claims:
        print(f"- {cl['claim']} [{cl['scope']}]: {cl['verdict']}")
    return 0
