"""What every verb of the ``interp`` command line shares: argument types, the common flag groups, the
torch set-up, and building a problem from ``--task`` / ``--model``.

A verb module (``interp/cli/<verb>.py``) holds only ``add_parser(subparsers)`` and ``run(args) -> int``; the
work itself is done by the library (`interp.evaluation`, `interp.vectors`, `interp.sweep`, ...).
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_THREADS = "1"  # on 2 shared cores one torch thread is usually faster than two


class Parser(argparse.ArgumentParser):
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


def int_list(text: str) -> list[int]:
    """``"10,30"`` -> ``[10, 30]`` (positive integers), for argparse."""
    values = [positive_int(v) for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def setup_torch() -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")
    torch.set_num_threads(int(os.environ.get("INTERP_NUM_THREADS", DEFAULT_THREADS)))


def add_device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:1 ... (default: cuda when available, else cpu)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bfloat16 on cuda, float32 on cpu)")


def add_task_args(p: argparse.ArgumentParser, task_required: bool = True, shots_default: int | None = 10) -> None:
    p.add_argument("--model", default="smollm2-135m", help="model name (default: smollm2-135m, offline)")
    add_device_args(p)
    p.add_argument("--task", required=task_required, help="task name (see `interp tasks`)")
    p.add_argument("--tasks-dir", default=None, help="folder of function-vectors JSON tasks ($INTERP_TASKS_DIR)")
    p.add_argument("--shots", type=non_negative_int, default=shots_default,
                   help="demonstrations per prompt (default 10" + (", or the vector's)" if shots_default is None else ")"))
    p.add_argument("--template", default="qa", help="'qa' (Q: x\\nA: y), 'arrow' (x -> y), or a custom demo string")
    p.add_argument("--seed", type=int, default=0, help="seed of the task's splits and of the prompts (demos, query order)")


def problem_for(args, model):
    """A text problem for --task, or a regression problem when the model is a regression checkpoint."""
    if getattr(model.cfg, "d_vocab", None) == 1 and hasattr(model, "read_in"):
        from interp.regression.problem import RegressionProblem

        return RegressionProblem.for_model(model, shift=getattr(args, "shift", None), seed=args.seed)
    from interp.problems import TextProblem
    from interp.tasks import load_task

    if not args.task:
        raise ValueError("--task is required for a language model (see `interp tasks`)")
    task = load_task(args.task, args.tasks_dir, seed=args.seed)
    return TextProblem(model, task, shots=args.shots, template=args.template, seed=args.seed)


def vector_problem_args(args, vector) -> None:
    """Fill --task / --shots / --template from the vector's metadata where the user gave none; say when the
    vector's split seed differs (its training items may then sit in this run's test split)."""
    problem_meta = vector.meta.get("problem", {})
    if getattr(args, "shots", None) is None:
        args.shots = problem_meta.get("shots", 10)
    if args.template == "qa" and "template" in problem_meta:
        args.template = problem_meta["template"]
    if not args.task and vector.meta.get("task"):
        args.task = vector.meta["task"]
    if "seed" in problem_meta and problem_meta["seed"] != args.seed:
        print(
            f"interp {args.command}: note: the vector was fitted with --seed {problem_meta['seed']} (task splits differ "
            f"from --seed {args.seed}: its training queries may be among these test queries)",
            file=sys.stderr,
        )


def note_n(result, args) -> None:
    """Say on stderr when the split held fewer scorable queries than --n asked for."""
    if result.n < args.n:
        skipped = f" ({result.skipped} skipped: first target token is a bare space)" if result.skipped else ""
        print(
            f"interp {args.command}: note: --n {args.n} asked for more queries than split {args.split!r} of "
            f"{result.task!r} holds{skipped}; used n={result.n}",
            file=sys.stderr,
        )
