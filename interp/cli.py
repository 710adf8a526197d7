"""The ``interp`` command line.

    interp eval --model smollm2-135m --task antonym --setting icl --shots 10 --n 100 [--tasks-dir D] [--json]
    interp eval ... --vector DIR            # score with a fitted task vector applied
    interp compare --task T --setting zero-shot --vector DIR [--vector DIR2] [--json]
                                            # bare model, clean ICL and each vector on the same prompts,
                                            # with paired differences to the bare model
    interp fit --method {ltv,fv,tv} --model M --task T --out DIR
    interp tasks [--tasks-dir D]            # list the tasks found
    interp bench [--json]                   # engine vs full-recompute speed and memory
    interp check --model M [--device D] [--dtype T] [--json]   # verify the engine's identities on a model
    interp check --families [--json]        # the same on a tiny model of every TransformerLens family
    interp regress {train,eval} ...         # in-context regression models
    interp figures [--quick] [--force]      # regenerate every figure under figures/
    interp sweep --tasks a,b --methods none,icl,ltv --seeds 0,1 --out results/sweeps/NAME   # resumable cells on Ray
    interp report --sweep results/sweeps/NAME  # the comparison table (Markdown + figure) from a sweep's store

Errors that come from bad input (unknown model / task / method, missing files) print one clear line and
exit with status 2; nothing already written is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

DEFAULT_THREADS = "1"  # on 2 shared cores one torch thread is usually faster than two


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr naming the option, exit status 2 (argparse also prints usage)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _setup_torch() -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")
    torch.set_num_threads(int(os.environ.get("INTERP_NUM_THREADS", DEFAULT_THREADS)))


def _int_list(text: str) -> list[int]:
    """``"10,30"`` -> ``[10, 30]`` (positive integers), for argparse."""
    values = [positive_int(v) for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def _add_device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:1 ... (default: cuda when available, else cpu)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bfloat16 on cuda, float32 on cpu)")


def _add_task_args(p: argparse.ArgumentParser, task_required: bool = True, shots_default: int | None = 10) -> None:
    p.add_argument("--model", default="smollm2-135m", help="model name (default: smollm2-135m, offline)")
    _add_device_args(p)
    p.add_argument("--task", required=task_required, help="task name (see `interp tasks`)")
    p.add_argument("--tasks-dir", default=None, help="folder of function-vectors JSON tasks ($INTERP_TASKS_DIR)")
    p.add_argument("--shots", type=non_negative_int, default=shots_default,
                   help="demonstrations per prompt (default 10" + (", or the vector's)" if shots_default is None else ")"))
    p.add_argument("--template", default="qa", help="'qa' (Q: x\\nA: y), 'arrow' (x -> y), or a custom demo string")
    p.add_argument("--seed", type=int, default=0, help="seed of the task's splits and of the prompts (demos, query order)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="interp", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("eval", help="accuracy of a model on a task (optionally with a task vector)")
    _add_task_args(p)
    p.add_argument("--setting", default="icl", choices=["icl", "zero-shot", "shuffled"])
    p.add_argument("--n", type=positive_int, default=100, help="number of test queries (capped at the split size)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--vector", default=None, help="a fitted task vector directory (from `interp fit`)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    p = sub.add_parser(
        "compare", formatter_class=argparse.RawTextHelpFormatter,
        help="bare model, clean ICL and task vectors on the same prompts, with paired differences",
        description="Score the bare model ('none'), clean k-shot ICL ('icl') and each --vector on the same\n"
        "queries, and each one's difference to the reference with a paired 95%% CI (Newcombe's\n"
        "interval for paired proportions; a paired bootstrap for regression errors).\n"
        "--json prints {\"reference\": ..., \"rows\": [{\"method\", \"n\", \"accuracy\", \"ci_low\",\n"
        "\"ci_high\", \"diff\", \"diff_ci_low\", \"diff_ci_high\"}, ...]}.",
    )  # fmt: skip
    _add_task_args(p, task_required=False, shots_default=None)
    p.add_argument("--setting", default="zero-shot", choices=["zero-shot", "shuffled", "icl"],
                   help="prompts the bare model and the vectors see (default zero-shot)")
    p.add_argument("--vector", action="append", default=[], metavar="DIR", help="a fitted vector (repeatable)")
    p.add_argument("--n", type=positive_int, default=100, help="number of queries (capped at the split size)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--reference", default="none", help="method the differences are taken to: none | icl | a --vector DIR")
    p.add_argument("--no-icl", action="store_true", help="leave out the clean-ICL row")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    p = sub.add_parser("tasks", help="list available tasks")
    p.add_argument("--tasks-dir", default=None)

    p = sub.add_parser("fit", help="fit a task vector (ltv, fv or tv) and save it")
    _add_task_args(p, task_required=False)
    p.add_argument("--method", required=True, help="ltv | fv | tv")
    p.add_argument("--out", required=True, help="output directory (safetensors + JSON)")
    p.add_argument("--corruption", default=None, help="LTV: shuffled | zero-shot | both (default both)")
    p.add_argument("--steps", type=positive_int, default=None, help="LTV: maximum optimisation steps")
    p.add_argument("--layer", type=non_negative_int, default=None, help="FV / TV: injection layer (default: sweep on valid)")
    p.add_argument("--top-k", type=positive_int, default=None, help="FV: number of heads (default 10)")
    p.add_argument("--resume", action="store_true", help="LTV: resume from the checkpoint in --out")
    p.add_argument("--json", action="store_true")
    # regression models as the model: `--model regression:linear --task linear`
    p.add_argument("--shift", default=None, help="regression: evaluation shift for LTV training prompts")

    p = sub.add_parser("bench", help="benchmark the frozen-prefix engine against full recompute")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="batch 16 only (10- and 30-shot), fewer repeats")
    p.add_argument("--shots", type=_int_list, default=None, help="prompt lengths in shots, e.g. 10 or 10,30 (default 10,30)")
    p.add_argument("--batch", type=_int_list, default=None,
                   help="prompts per batch, e.g. 4 for a large model on a small machine (default 16,64; --quick: 16)")

    p = sub.add_parser("check", help="verify the engine's identities on a model (or on every architecture family)")
    p.add_argument("--model", default="smollm2-135m", help="model to check (default: smollm2-135m)")
    p.add_argument("--families", action="store_true", help="check a tiny random model of every TL family instead")
    p.add_argument("--family", action="append", default=None, help="check only this family (repeatable)")
    p.add_argument("--n-prompts", type=int, default=3, help="left-padded prompts per check (default 3)")
    _add_device_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("regress", help="in-context regression models")
    rsub = p.add_subparsers(dest="regress_command", required=True)
    rp = rsub.add_parser("train", help="train an ICL regression model")
    rp.add_argument("--class", dest="function_class", required=True)
    rp.add_argument("--steps", type=positive_int, default=6000)
    rp.add_argument("--out", default=None)
    rp.add_argument("--seed", type=int, default=0)
    rp = rsub.add_parser("eval", help="error vs number of in-context examples")
    rp.add_argument("--class", dest="function_class", required=True)
    rp.add_argument("--model", default=None, help="checkpoint directory (default: the shipped one)")
    rp.add_argument("--shift", default=None)
    rp.add_argument("--vector", default=None)
    rp.add_argument("--n", type=positive_int, default=500, help="prompts per length")
    _add_device_args(rp)
    rp.add_argument("--seed", type=int, default=1)
    rp.add_argument("--json", action="store_true")

    rp = rsub.add_parser("experiment", help="LTV / FV past the trained length (writes results/regression/)")
    rp.add_argument("--class", dest="function_class", required=True)
    rp.add_argument("--shift", default=None)
    rp.add_argument("--quick", action="store_true")
    rp.add_argument("--seed", type=int, default=0)
    rp.add_argument("--out", default=None, help="output folder (default results/regression)")
    rp.add_argument("--json", action="store_true")

    p = sub.add_parser("figures", help="regenerate every figure under figures/ (the main job)")
    p.add_argument("--quick", action="store_true", help="smaller n, fewer tasks (<= 3 min)")
    p.add_argument("--force", action="store_true", help="recompute even if cached")
    p.add_argument("--out", default="figures")
    p.add_argument("--tasks-dir", default=None)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)  # tests: a tiny model

    from interp.sweep.cli import add_sweep_parser

    add_sweep_parser(sub)  # `interp sweep`, `interp report`
    return parser


def cmd_tasks(args) -> int:
    from interp.tasks import list_tasks, load_task, resolve_tasks_dir

    root = resolve_tasks_dir(args.tasks_dir)
    print(f"tasks in {root}:")
    for name, path in list_tasks(args.tasks_dir).items():
        task = load_task(str(path))
        print(f"  {name:<28} {len(task.pairs):>6} pairs  {path.parent.name}")
    return 0


def _note_n(result, args) -> None:
    """Say on stderr when the split held fewer scorable queries than --n asked for."""
    if result.n < args.n:
        skipped = f" ({result.skipped} skipped: first target token is a bare space)" if result.skipped else ""
        print(
            f"interp {args.command}: note: --n {args.n} asked for more queries than split {args.split!r} of "
            f"{result.task!r} holds{skipped}; used n={result.n}",
            file=sys.stderr,
        )


def cmd_eval(args) -> int:
    from interp.evaluation import evaluate
    from interp.models import load_model, parse_dtype

    model = load_model(args.model, device=args.device, dtype=parse_dtype(args.dtype), verbose=not args.json)
    if args.vector:
        from interp.vectors.cli import cmd_eval_vector

        result = cmd_eval_vector(args, model)
    else:
        from interp.vectors.cli import problem_for

        problem = problem_for(args, model)
        # the same prompts `interp eval --vector` and `interp compare` score (one seed derivation)
        result = evaluate(problem, "icl" if args.setting == "icl" else "none", args.setting, split=args.split, n=args.n)
    _note_n(result, args)
    record = result.to_dict()
    record["model"] = args.model
    if args.json:
        print(json.dumps(record))
    else:
        print(result.summary())
        if result.multi_token:
            print(f"  ({result.multi_token} multi-token targets scored on their first token)")
    return 0


def cmd_compare(args) -> int:
    from interp.evaluation import compare
    from interp.models import load_model, parse_dtype
    from interp.vectors import load_vector
    from interp.vectors.cli import problem_for, vector_problem_args

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
    _note_n(table.results[table.reference], args)
    if args.json:
        print(json.dumps(table.to_dict()))
    else:
        print(repr(table))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_torch()
    from interp.errors import USER_ERRORS

    handlers = {"eval": cmd_eval, "compare": cmd_compare, "tasks": cmd_tasks}
    try:
        if args.command == "fit":
            from interp.vectors.cli import cmd_fit

            return cmd_fit(args)
        if args.command == "check":
            from interp.check import cmd_check

            return cmd_check(args)
        if args.command == "bench":
            from interp.bench import cmd_bench

            return cmd_bench(args)
        if args.command == "regress":
            from interp.regression.cli import cmd_regress

            return cmd_regress(args)
        if args.command in ("sweep", "report"):
            from interp.sweep.cli import cmd_report, cmd_sweep

            return {"sweep": cmd_sweep, "report": cmd_report}[args.command](args)
        if args.command == "figures":
            from analyses.main import cmd_figures  # type: ignore[import-not-found]

            return cmd_figures(args)
        return handlers[args.command](args)
    except USER_ERRORS as err:
        print(f"interp {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
