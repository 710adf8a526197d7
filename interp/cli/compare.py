"""``interp compare``: the bare model, clean ICL and task vectors on the same prompts, with paired differences.

Score the bare model ('none'), clean k-shot ICL ('icl') and each --vector on the same queries, and each
one's difference to the reference with a paired 95% CI (Newcombe's interval for paired proportions; a
paired bootstrap for regression errors). --json prints {"reference": ..., "rows": [{"method", "n",
"accuracy", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high"}, ...]}.

    interp compare --task T --setting zero-shot --vector DIR [--vector DIR2] [--json]
"""

from __future__ import annotations

import argparse
import json

from interp.cli._common import add_task_args, note_n, positive_int, problem_for, vector_problem_args

HELP = "bare model, clean ICL and task vectors on the same prompts, with paired differences"


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help=HELP, description=__doc__.replace("%", "%%"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_task_args(p, task_required=False, shots_default=None)
    p.add_argument("--setting", default="zero-shot", choices=["zero-shot", "shuffled", "icl"],
                   help="prompts the bare model and the vectors see (default zero-shot)")
    p.add_argument("--vector", action="append", default=[], metavar="DIR", help="a fitted vector (repeatable)")
    p.add_argument("--n", type=positive_int, default=100, help="number of queries (capped at the split size)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--reference", default="none", help="method the differences are taken to: none | icl | a --vector DIR")
    p.add_argument("--no-icl", action="store_true", help="leave out the clean-ICL row")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args) -> int:
    from interp.evaluation import compare
    from interp.models import load_model, parse_dtype
    from interp.vectors import load_vector

    model = load_model(args.model, device=args.device, dtype=parse_dtype(args.dtype), verbose=not args.json)
    vectors = [load_vector(path, model) for path in args.vector]
    if vectors:
        vector_problem_args(args, vectors[0])
    if args.shots is None:
        args.shots = 10
    problem = problem_for(args, model)
    labels = {}
    for path, vec in zip(args.vector, vectors):
        if vec.label in labels.values() or vec.label in ("none", "icl"):
            vec.meta["label"] = f"{vec.label} ({path})"
        labels[path] = vec.label
    methods: list = ["none"] + ([] if args.no_icl else ["icl"]) + vectors
    if args.reference in ("none", "icl"):
        if args.reference == "icl" and args.no_icl:
            raise ValueError("--reference icl needs the clean-ICL row; drop --no-icl")
        reference = args.reference
    elif args.reference in labels:
        reference = vectors[args.vector.index(args.reference)]
    else:
        raise ValueError(f"--reference {args.reference!r} is not 'none', 'icl' or one of the --vector directories")
    table = compare(problem, methods, args.setting, reference=reference, split=args.split, n=args.n)
    note_n(table.results[table.reference], args)
    print(json.dumps(table.to_dict()) if args.json else repr(table))
    return 0
