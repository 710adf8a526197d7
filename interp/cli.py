"""The ``interp`` command line.

    interp eval --model smollm2-135m --task antonym --setting icl --shots 10 --n 100 [--tasks-dir D] [--json]
    interp eval ... --vector DIR            # score with a fitted task vector applied
    interp fit --method {ltv,fv,tv} --model M --task T --out DIR
    interp tasks [--tasks-dir D]            # list the tasks found
    interp bench [--json]                   # engine vs full-recompute speed and memory
    interp check --model M [--device D] [--dtype T] [--json]   # verify the engine's identities on a model
    interp check --families [--json]        # the same on a tiny model of every TransformerLens family
    interp regress {train,eval} ...         # in-context regression models
    interp figures [--quick] [--force]      # regenerate every figure under figures/

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


def _setup_torch() -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")
    torch.set_num_threads(int(os.environ.get("INTERP_NUM_THREADS", DEFAULT_THREADS)))


def _add_device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:1 ... (default: cuda when available, else cpu)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bfloat16 on cuda, float32 on cpu)")


def _add_task_args(p: argparse.ArgumentParser, task_required: bool = True) -> None:
    p.add_argument("--model", default="smollm2-135m", help="model name (default: smollm2-135m, offline)")
    _add_device_args(p)
    p.add_argument("--task", required=task_required, help="task name (see `interp tasks`)")
    p.add_argument("--tasks-dir", default=None, help="folder of function-vectors JSON tasks ($INTERP_TASKS_DIR)")
    p.add_argument("--shots", type=int, default=10, help="demonstrations per prompt (default 10)")
    p.add_argument("--template", default="qa", help="'qa' (Q: x\\nA: y), 'arrow' (x -> y), or a custom demo string")
    p.add_argument("--seed", type=int, default=0, help="seed of splits, demos and queries")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interp", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("eval", help="accuracy of a model on a task (optionally with a task vector)")
    _add_task_args(p)
    p.add_argument("--setting", default="icl", choices=["icl", "zero-shot", "shuffled"])
    p.add_argument("--n", type=int, default=100, help="number of test queries (capped at the split size)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--vector", default=None, help="a fitted task vector directory (from `interp fit`)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    p = sub.add_parser("tasks", help="list available tasks")
    p.add_argument("--tasks-dir", default=None)

    p = sub.add_parser("fit", help="fit a task vector (ltv, fv or tv) and save it")
    _add_task_args(p, task_required=False)
    p.add_argument("--method", required=True, help="ltv | fv | tv")
    p.add_argument("--out", required=True, help="output directory (safetensors + JSON)")
    p.add_argument("--corruption", default=None, help="LTV: shuffled | zero-shot | both (default both)")
    p.add_argument("--steps", type=int, default=None, help="LTV: maximum optimisation steps")
    p.add_argument("--layer", type=int, default=None, help="FV / TV: injection layer (default: sweep on valid)")
    p.add_argument("--top-k", type=int, default=None, help="FV: number of heads (default 10)")
    p.add_argument("--resume", action="store_true", help="LTV: resume from the checkpoint in --out")
    p.add_argument("--json", action="store_true")
    # regression models as the model: `--model regression:linear --task linear`
    p.add_argument("--shift", default=None, help="regression: evaluation shift for LTV training prompts")

    p = sub.add_parser("bench", help="benchmark the frozen-prefix engine against full recompute")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="fewer repeats")

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
    rp.add_argument("--steps", type=int, default=6000)
    rp.add_argument("--out", default=None)
    rp.add_argument("--seed", type=int, default=0)
    rp = rsub.add_parser("eval", help="error vs number of in-context examples")
    rp.add_argument("--class", dest="function_class", required=True)
    rp.add_argument("--model", default=None, help="checkpoint directory (default: the shipped one)")
    rp.add_argument("--shift", default=None)
    rp.add_argument("--vector", default=None)
    rp.add_argument("--n", type=int, default=500, help="prompts per length")
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
    return parser


def cmd_tasks(args) -> int:
    from interp.tasks import list_tasks, load_task, resolve_tasks_dir

    root = resolve_tasks_dir(args.tasks_dir)
    print(f"tasks in {root}:")
    for name, path in list_tasks(args.tasks_dir).items():
        task = load_task(str(path))
        print(f"  {name:<28} {len(task.pairs):>6} pairs  {path.parent.name}")
    return 0


def cmd_eval(args) -> int:
    from interp.evaluation import evaluate_batch
    from interp.models import load_model, parse_dtype
    from interp.prompts import model_prompts
    from interp.tasks import load_task

    model = load_model(args.model, device=args.device, dtype=parse_dtype(args.dtype), verbose=not args.json)
    if args.vector:
        from interp.vectors.cli import cmd_eval_vector

        result = cmd_eval_vector(args, model)
    else:
        task = load_task(args.task, args.tasks_dir, seed=args.seed)
        batch = model_prompts(
            model, task, setting=args.setting, shots=args.shots, n=args.n, split=args.split,
            template=args.template, seed=args.seed,
        )  # fmt: skip
        result = evaluate_batch(model, batch, method="none", progress=not args.json)
    record = result.to_dict()
    record["model"] = args.model
    if args.json:
        print(json.dumps(record))
    else:
        print(result.summary())
        if result.multi_token:
            print(f"  ({result.multi_token} multi-token targets scored on their first token)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_torch()
    from interp.errors import USER_ERRORS

    handlers = {"eval": cmd_eval, "tasks": cmd_tasks}
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
