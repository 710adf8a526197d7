"""``interp fit``, ``interp eval --vector`` and ``interp compare``'s vectors: task vectors from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def problem_for(args, model):
    """A text problem for --task, or a regression problem when the model is a regression checkpoint."""
    if getattr(model.cfg, "d_vocab", None) == 1 and hasattr(model, "read_in"):
        from interp.regression.problem import RegressionProblem  # type: ignore[import-not-found]

        return RegressionProblem.for_model(model, shift=getattr(args, "shift", None), seed=args.seed)
    from interp.problems import TextProblem
    from interp.tasks import load_task

    if not args.task:
        raise ValueError("--task is required for a language model (see `interp tasks`)")
    task = load_task(args.task, args.tasks_dir, seed=args.seed)
    return TextProblem(model, task, shots=args.shots, template=args.template, seed=args.seed)


def corruptions_for(args, problem) -> tuple[str, ...]:
    """--corruption as settings of ``problem``: ``both`` (the problem's defaults) or a comma-separated list."""
    if args.corruption in (None, "both"):
        return tuple(problem.corruptions)
    wanted = tuple(c.strip() for c in args.corruption.split(","))
    try:
        return problem.check_corruptions(wanted)
    except ValueError as err:
        raise ValueError(f"--corruption {args.corruption!r}: {err} (or 'both')") from None


def cmd_fit(args) -> int:
    from interp.models import load_model, parse_dtype
    from interp.vectors import CONFIGS, METHODS, VectorError, fit

    if args.method not in METHODS:
        raise VectorError(f"unknown --method {args.method!r}; choose one of {', '.join(METHODS)}")
    if args.method != "ltv":
        for option, value in (("--corruption", args.corruption), ("--steps", args.steps), ("--resume", args.resume or None)):
            if value is not None:
                raise VectorError(f"{option} applies to --method ltv only, not {args.method}")
    if args.method != "fv" and args.top_k is not None:
        raise VectorError(f"--top-k applies to --method fv only, not {args.method}")
    if args.corruption is not None and "icl" in args.corruption.split(","):  # clean in every modality: say so before loading
        raise VectorError(
            f"--corruption {args.corruption!r}: 'icl' is the clean setting, an LTV trained there has nothing to repair; "
            "use shuffled, zero-shot or both (text) or long (regression)"
        )
    out = Path(args.out)
    model = load_model(args.model, device=args.device, dtype=parse_dtype(args.dtype), verbose=not args.json)
    problem = problem_for(args, model)
    config = CONFIGS[args.method]()
    if args.method == "ltv":
        config.corruptions = corruptions_for(args, problem)
        if args.steps is not None:
            config.steps = args.steps
        vector = fit("ltv", problem, config, checkpoint_dir=out, resume=args.resume, progress=not args.json)
    else:
        if args.layer is not None:
            if args.layer >= model.cfg.n_layers:
                raise VectorError(f"--layer {args.layer} is out of range for a {model.cfg.n_layers}-layer model")
            config.layer = args.layer
        if args.method == "fv" and args.top_k is not None:
            config.top_k = args.top_k
        vector = fit(args.method, problem, config, progress=not args.json)
    vector.save(out)
    results = [vector.evaluate(problem, setting) for setting in problem.corruptions]
    summary = {
        "method": args.method,
        "task": problem.name,
        "layers": vector.layers if len(vector.layers) <= 3 else f"{len(vector.layers)} layers",
        "out": str(out),
        **{f"{r.setting}_{problem.metric}": round(r.value, 4) for r in results},
    }
    if args.method == "ltv":
        summary["stopped"] = vector.meta["training"]["stopped"]
        summary["best_step"] = vector.meta["training"]["best_step"]
    print(json.dumps(summary) if args.json else "  ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


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


def cmd_eval_vector(args, model):
    from interp.evaluation import evaluate
    from interp.vectors import load_vector

    vector = load_vector(args.vector, model)
    args.shots = None if args.shots == 10 else args.shots  # the vector's shots unless given explicitly
    vector_problem_args(args, vector)
    problem = problem_for(args, model)
    return evaluate(problem, vector, args.setting, split=args.split, n=args.n)
