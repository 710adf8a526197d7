"""``interp bench``: the frozen-prefix engine against full recompute, speed and memory (see `interp.bench`)."""

from __future__ import annotations

from interp.cli._common import int_list

HELP = "benchmark the frozen-prefix engine against full recompute"


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help=HELP, description=__doc__)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="batch 16 only (10- and 30-shot), fewer repeats")
    p.add_argument("--shots", type=int_list, default=None, help="prompt lengths in shots, e.g. 10 or 10,30 (default 10,30)")
    p.add_argument("--batch", type=int_list, default=None,
                   help="prompts per batch, e.g. 4 for a large model on a small machine (default 16,64; --quick: 16)")
    p.add_argument("--only", choices=["patching", "task-cost"], default=None,
                   help="run only this part: patching (interp.patching vs transformer_lens.patching), or task-cost "
                        "(one task's LTV + FV + TV cell with shared-prefix attention vs the per-row cache)")


def run(args) -> int:
    from interp.bench import cmd_bench

    return cmd_bench(args)
