"""``interp check``: verify the engine's identities on a model (or on a tiny model of every family)."""

from __future__ import annotations

from interp.cli._common import add_device_args

HELP = "verify the engine's identities on a model (or on every architecture family)"


def add_parser(sub) -> None:
    p = sub.add_parser("check", help=HELP, description=__doc__)
    p.add_argument("--model", default="smollm2-135m", help="model to check (default: smollm2-135m)")
    p.add_argument("--families", action="store_true", help="check a tiny random model of every TL family instead")
    p.add_argument("--family", action="append", default=None, help="check only this family (repeatable)")
    p.add_argument("--n-prompts", type=int, default=3, help="left-padded prompts per check (default 3)")
    add_device_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    from interp.check import cmd_check

    return cmd_check(args)
