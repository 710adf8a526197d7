"""The ``interp`` command line: one module per verb, the work done by the library.

    interp eval --model smollm2-135m --task antonym --setting icl --shots 10 --n 100 [--json]
    interp compare --task T --setting zero-shot --vector DIR [--vector DIR2] [--json]
    interp fit --method {ltv,fv,tv,steer} --model M --task T --out DIR
    interp tasks [--tasks-dir D]            # list the tasks found
    interp bench [--json]                   # engine vs full-recompute speed and memory
    interp check --model M [--device D] [--dtype T] [--json]   # verify the engine's identities on a model
    interp check --families [--json]        # the same on a tiny model of every TransformerLens family
    interp patch --clean TEXT --corrupted TEXT --answer TOK --wrong TOK --component heads \
                 --position {final,all,INDEX} [--method attribution] [--json]   # ad-hoc activation patching
    interp regress {train,eval} ...         # in-context regression models
    interp sweep --tasks a,b --methods none,icl,ltv --seeds 0,1 --out results/sweeps/NAME   # resumable cells on Ray
    interp report --sweep results/sweeps/NAME  # the comparison table (Markdown + figure) from a sweep's store

and the verbs that studies register (`interp.cli.plugins`), e.g. ``interp figures``, ``interp science``,
``interp regress experiment``.

A verb is a module ``interp/cli/<verb>.py`` with ``add_parser(subparsers)`` and ``run(args) -> int``; shared
flags and argument types are in `interp.cli._common`. Errors that come from bad input (unknown model / task /
method, missing files) print one clear line and exit with status 2; nothing already written is removed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from interp.cli import bench, check, compare, fit, patch, regress, report, sweep, tasks
from interp.cli import eval as eval_verb
from interp.cli._common import Parser, setup_torch
from interp.cli.plugins import add_plugin_verbs

VERBS = (eval_verb, compare, fit, tasks, bench, check, patch, regress, sweep, report)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="interp", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.add_parser(sub)
        sub.choices[verb.add_parser.__module__.rpartition(".")[2]].set_defaults(plugin_run=None, verb_run=verb.run)
    add_plugin_verbs(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_torch()
    from interp.errors import USER_ERRORS

    run = getattr(args, "verb_run", None) or args.plugin_run
    try:
        return run(args)
    except USER_ERRORS as err:
        print(f"interp {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interp {args.command}: interrupted", file=sys.stderr)
        return 130
