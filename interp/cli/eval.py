"""``interp eval``: accuracy (or error) of a model on a task, optionally with a fitted task vector applied.

    interp eval --model smollm2-135m --task antonym --setting icl --shots 10 --n 100 [--json]
    interp eval ... --vector DIR            # score with a fitted task vector applied
"""

from __future__ import annotations

import json

from interp.cli._common import add_task_args, note_n, positive_int, problem_for, vector_problem_args

HELP = "accuracy of a model on a task (optionally with a task vector)"


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help=HELP, description=__doc__)
    add_task_args(p)
    p.add_argument("--setting", default="icl", choices=["icl", "zero-shot", "shuffled"])
    p.add_argument("--n", type=positive_int, default=100, help="number of test queries (capped at the split size)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--vector", default=None, help="a fitted task vector directory (from `interp fit`)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args) -> int:
    from interp.evaluation import evaluate
    from interp.models import load_model, parse_dtype

    model = load_model(args.model, device=args.device, dtype=parse_dtype(args.dtype), verbose=not args.json)
    if args.vector:
        from interp.vectors import load_vector

        vector = load_vector(args.vector, model)
        args.shots = None if args.shots == 10 else args.shots  # the vector's shots unless given explicitly
        vector_problem_args(args, vector)
        result = evaluate(problem_for(args, model), vector, args.setting, split=args.split, n=args.n)
    else:
        problem = problem_for(args, model)
        # the same prompts `interp eval --vector` and `interp compare` score (one seed derivation)
        result = evaluate(problem, "icl" if args.setting == "icl" else "none", args.setting, split=args.split, n=args.n)
    note_n(result, args)
    record = result.to_dict()
    record["model"] = args.model
    if args.json:
        print(json.dumps(record))
    else:
        print(result.summary())
        if result.multi_token:
            print(f"  ({result.multi_token} multi-token targets scored on their first token)")
    return 0
