"""``interp fit``: fit a task vector (LTV, FV, TV or a free steering vector) and save it (safetensors + JSON).

    interp fit --method {ltv,fv,tv,steer} --model M --task T --out DIR [--json]
    interp fit --method ltv --model regression:linear --out DIR          # a regression model's LTV
"""

from __future__ import annotations

import json
from pathlib import Path

from interp.cli._common import add_task_args, non_negative_int, positive_int, problem_for

HELP = "fit a task vector (ltv, fv, tv, ...) and save it"


def add_parser(sub) -> None:
    p = sub.add_parser("fit", help=HELP, description=__doc__)
    add_task_args(p, task_required=False)
    p.add_argument("--method", required=True, help="ltv | fv | tv | steer")
    p.add_argument("--out", required=True, help="output directory (safetensors + JSON)")
    p.add_argument("--corruption", default=None, help="LTV: shuffled | zero-shot | both (default both)")
    p.add_argument("--steps", type=positive_int, default=None, help="LTV: maximum optimisation steps")
    p.add_argument("--layer", type=non_negative_int, default=None, help="FV / TV: injection layer (default: sweep on valid)")
    p.add_argument("--top-k", type=positive_int, default=None, help="FV: number of heads (default 10)")
    p.add_argument("--resume", action="store_true", help="LTV: resume from the checkpoint in --out")
    p.add_argument("--json", action="store_true")
    # regression models as the model: `--model regression:linear --task linear`
    p.add_argument("--shift", default=None, help="regression: evaluation shift for LTV training prompts")


def corruptions_for(args, problem) -> tuple[str, ...]:
    """--corruption as settings of ``problem``: ``both`` (the problem's defaults) or a comma-separated list."""
    if args.corruption in (None, "both"):
        return tuple(problem.corruptions)
    wanted = tuple(c.strip() for c in args.corruption.split(","))
    try:
        return problem.check_corruptions(wanted)
    except ValueError as err:
        raise ValueError(f"--corruption {args.corruption!r}: {err} (or 'both')") from None


def run(args) -> int:
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
