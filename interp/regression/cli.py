"""``interp regress train|eval|experiment``: train ICL regression models, measure error vs prompt length.

    interp regress train --class linear --steps 6000 --out runs/linear
    interp regress eval --class linear [--model DIR] [--shift skewed] [--vector DIR] --n 500 --json
    interp regress experiment --class {linear,...,all} [--shift S] [--quick]   # LTV / FV past the trained length

``eval`` prints (or with ``--json`` emits) ``trained_length``, ``in_range_error`` (mean normalised error for
2d <= k <= trained length), ``beyond_error`` (trained length < k <= 2x) and the per-k curve; with ``--vector``
the curve is measured with that task vector applied at every query (k = prompt length in points, query
included).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from interp.evaluation import mean_ci


def cmd_regress(args) -> int:
    return {"train": _train, "eval": _eval, "experiment": _experiment}[args.regress_command](args)


def _train(args) -> int:
    from interp.regression import FUNCTION_CLASSES, RegressionConfig, TrainConfig, train_regression_model

    if args.function_class not in FUNCTION_CLASSES:
        raise ValueError(f"unknown function class {args.function_class!r}; known: {sorted(FUNCTION_CLASSES)}")
    out = Path(args.out or f"runs/regression-{args.function_class}")
    _, info = train_regression_model(
        RegressionConfig(function_class=args.function_class), TrainConfig(steps=args.steps, seed=args.seed), out_dir=out
    )
    final = info.get("final_eval", {})
    print(f"saved {out}  in-range error {final.get('in_range_error')}  beyond {final.get('beyond_error')}")
    return 0


def _eval(args) -> int:
    from interp.regression import FUNCTION_CLASSES, evaluate_curve, load_regression_model

    if args.function_class not in FUNCTION_CLASSES:
        raise ValueError(f"unknown function class {args.function_class!r}; known: {sorted(FUNCTION_CLASSES)}")
    from interp.models import parse_dtype, resolve_device

    model = load_regression_model(args.model or args.function_class, expected_class=args.function_class,
                                  device=resolve_device(getattr(args, "device", None)))  # fmt: skip
    if getattr(args, "dtype", None):
        model = model.to(parse_dtype(args.dtype))
    if args.vector:
        record = _eval_with_vector(model, args)
    else:
        curve = evaluate_curve(model, n_prompts=args.n, seed=args.seed, shift=args.shift)
        record = {
            "function_class": args.function_class,
            "shift": args.shift,
            "trained_length": curve["trained_length"],
            "in_range_error": curve["in_range_error"],
            "beyond_error": curve["beyond_error"],
            "k": curve["k"],
            "curve": curve["model"],
            "baselines": {name: c["mean"] for name, c in curve["baselines"].items()},
        }
    if args.json:
        print(json.dumps(record))
    else:
        print(
            f"{args.function_class} (shift {args.shift or 'none'}): trained length {record['trained_length']}, "
            f"in-range error {record['in_range_error']:.4f}, beyond {record['beyond_error']:.4f}"
        )
    return 0


def _eval_with_vector(model, args) -> dict:
    from interp.engine import final_logits
    from interp.problems import run_prefix
    from interp.regression.problem import RegressionProblem
    from interp.vectors import load_vector

    vector = load_vector(args.vector, model)
    problem = RegressionProblem.for_model(model, shift=args.shift, seed=args.seed)
    T, d = problem.trained_length, model.regression_config.n_dims
    hooks = vector.hooks(model)
    curve, per_k = [], []
    for k in range(1, 2 * T + 1):
        if k == 1:
            batch = problem.batch("k=0", "test", args.n)
            with torch.no_grad():
                out = final_logits(model, batch.inputs, batch.attention_mask, hooks)
        else:
            batch, prefix = problem.prefix(f"k={k - 1}", "test", args.n)
            out = run_prefix(prefix, lambda idx: hooks, rows_per_call=256)
            problem._prefixes.clear()
        errors = problem.row_metric(out, batch.targets).tolist()
        per_k.append(errors)
        curve.append(mean_ci(errors)[0])
    in_range = [e for k, row in enumerate(per_k, 1) if 2 * d <= k <= T for e in row]
    beyond = [e for k, row in enumerate(per_k, 1) if T < k for e in row]
    return {
        "function_class": model.regression_config.function_class,
        "shift": args.shift,
        "vector": str(args.vector),
        "method": vector.method,
        "trained_length": T,
        "in_range_error": mean_ci(in_range)[0],
        "beyond_error": mean_ci(beyond)[0],
        "k": list(range(1, 2 * T + 1)),
        "curve": curve,
    }


def _experiment(args) -> int:
    """One (class, shift) experiment, or ``--class all``: every shipped class, with and without each shift."""
    from interp.regression import FUNCTION_CLASSES, SHIFTS
    from interp.regression.experiments import format_table, run_length_experiment, write_result

    if args.function_class == "all":
        jobs = [(c, s) for c in sorted(FUNCTION_CLASSES) for s in (None, *sorted(SHIFTS))]
    else:
        jobs = [(args.function_class, args.shift)]
    for function_class, shift in jobs:
        result = run_length_experiment(function_class, shift=shift, quick=args.quick, seed=args.seed)
        path = write_result(result, Path(args.out or "results/regression"))
        print(json.dumps(result["summary"]) if args.json else format_table(result) + f"\nwrote {path}\n")
    return 0
