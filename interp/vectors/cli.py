"""``interp fit`` and ``interp eval --vector``: fit / score task vectors from the command line."""

from __future__ import annotations

import json
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


def cmd_fit(args) -> int:
    from interp.models import load_model, parse_dtype
    from interp.vectors import CONFIGS, METHODS, VectorError, fit

    if args.method not in METHODS:
        raise VectorError(f"unknown --method {args.method!r}; choose one of {', '.join(METHODS)}")
    out = Path(args.out)
    model = load_model(args.model, device=args.device, dtype=parse_dtype(args.dtype), verbose=not args.json)
    problem = problem_for(args, model)
    config = CONFIGS[args.method]()
    if args.method == "ltv":
        if args.steps is not None:
            config.steps = args.steps
        if args.corruption:
            config.corruptions = ("shuffled", "zero-shot") if args.corruption == "both" else (args.corruption,)
        vector = fit("ltv", problem, config, checkpoint_dir=out, resume=args.resume, progress=not args.json)
    else:
        if args.layer is not None:
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
        **{f"{r.setting}_{problem.metric}": round(_headline(r), 4) for r in results},
    }
    if args.method == "ltv":
        summary["stopped"] = vector.meta["training"]["stopped"]
        summary["best_step"] = vector.meta["training"]["best_step"]
    print(json.dumps(summary) if args.json else "  ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


def _headline(result) -> float:
    return result.accuracy if hasattr(result, "accuracy") else result.error


def cmd_eval_vector(args, model):
    from interp.vectors import load_vector

    vector = load_vector(args.vector, model)
    problem_meta = vector.meta.get("problem", {})
    args.shots = problem_meta.get("shots", args.shots)
    args.template = problem_meta.get("template", args.template)
    if not args.task and vector.meta.get("task"):
        args.task = vector.meta["task"]
    problem = problem_for(args, model)
    if hasattr(vector, "for_task") and len(getattr(vector, "tasks", [])) > 1:
        vector = vector.for_task(problem.name)
    return vector.evaluate(problem, args.setting, split=args.split, n=args.n, seed=0)
