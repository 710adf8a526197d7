"""``interp regress train|eval``: train in-context regression models, measure their error vs prompt length.

    interp regress train --class linear --steps 20000 --max-minutes 22 --out interp/regression/checkpoints/linear
    interp regress train --class linear --positional-embedding rotary --steps 8000 --out DIR   # no learned rows
    interp regress eval --class linear [--model DIR] [--shift skewed] [--vector DIR] --n 500 --json

``train`` takes every field of `interp.regression.RegressionConfig` (architecture) and
`interp.regression.TrainConfig` (optimisation) as a flag, and writes ``model.safetensors``, ``config.json``,
``train_log.jsonl`` and ``eval_curve.json`` into ``--out``.

``eval`` prints (or with ``--json`` emits) ``trained_length``, ``in_range_error`` (mean normalised error for
2d <= k <= trained length), ``beyond_error`` (trained length < k <= 2x) and the per-k curve; with ``--vector``
the curve is measured with that task vector applied at every query (k = prompt length in points, query
included).

Studies register further sub-verbs here (``interp regress experiment``, ``interp regress positions``: see
`interp.cli.plugins`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from interp.cli._common import add_device_args, positive_int

HELP = "in-context regression models"
# RegressionConfig fields set by other flags, or derived
_MODEL_FLAGS_SKIP = {"function_class", "init_seed"}
_TRAIN_FLAGS_SKIP = {"seed", "steps"}
# shorter spellings kept from the former training script
_ALIASES = {"positional_embedding_type": ("--positional-embedding",), "n_threads": ("--threads",)}


def _field_type(f: dataclasses.Field):
    """The argparse type of a dataclass field (Optional[int] -> int; bool fields become store_true)."""
    tp = f.type if not isinstance(f.type, str) else eval(f.type, vars(typing))  # noqa: S307 (our own annotations)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def _add_dataclass_flags(p: argparse.ArgumentParser, cls, skip: set[str], title: str) -> None:
    group = p.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flags = ["--" + f.name.replace("_", "-")] + [alias for alias in _ALIASES.get(f.name, ())]
        kind = _field_type(f)
        if kind is bool:
            group.add_argument(*flags, dest=f.name, action="store_true", default=None)
        else:
            group.add_argument(*flags, dest=f.name, type=kind, default=None, metavar=kind.__name__.upper())


def _overrides(args, cls, skip: set[str]) -> dict:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if f.name not in skip and getattr(args, f.name, None) is not None}  # fmt: skip


def add_parser(sub) -> None:
    from interp.cli.plugins import add_plugin_verbs
    from interp.regression.model import RegressionConfig
    from interp.regression.train import TrainConfig

    p = sub.add_parser("regress", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rsub = p.add_subparsers(dest="regress_command", required=True)
    rp = rsub.add_parser("train", help="train an ICL regression model")
    rp.add_argument("--class", dest="function_class", required=True)
    rp.add_argument("--steps", type=positive_int, default=6000)
    rp.add_argument("--out", default=None)
    rp.add_argument("--seed", type=int, default=0, help="initialisation and data seed")
    _add_dataclass_flags(rp, RegressionConfig, _MODEL_FLAGS_SKIP, "architecture (RegressionConfig)")
    _add_dataclass_flags(rp, TrainConfig, _TRAIN_FLAGS_SKIP, "optimisation (TrainConfig)")
    rp = rsub.add_parser("eval", help="error vs number of in-context examples")
    rp.add_argument("--class", dest="function_class", required=True)
    rp.add_argument("--model", default=None, help="checkpoint directory (default: the shipped one)")
    rp.add_argument("--shift", default=None)
    rp.add_argument("--vector", default=None)
    rp.add_argument("--n", type=positive_int, default=500, help="prompts per length")
    add_device_args(rp)
    rp.add_argument("--seed", type=int, default=1)
    rp.add_argument("--json", action="store_true")
    add_plugin_verbs(rsub, parent="regress")


def run(args) -> int:
    handlers = {"train": _train, "eval": _eval}
    if args.regress_command in handlers:
        return handlers[args.regress_command](args)
    return args.plugin_run(args)


def _train(args) -> int:
    from interp.regression import FUNCTION_CLASSES, RegressionConfig, TrainConfig, train_regression_model

    if args.function_class not in FUNCTION_CLASSES:
        raise ValueError(f"unknown function class {args.function_class!r}; known: {sorted(FUNCTION_CLASSES)}")
    out = Path(args.out or f"runs/regression-{args.function_class}")
    model_cfg = RegressionConfig(function_class=args.function_class, init_seed=args.seed,
                                 **_overrides(args, RegressionConfig, _MODEL_FLAGS_SKIP))  # fmt: skip
    train_cfg = TrainConfig(steps=args.steps, seed=args.seed, **_overrides(args, TrainConfig, _TRAIN_FLAGS_SKIP))
    print(f"model: {model_cfg}\ntraining: {train_cfg}", file=sys.stderr, flush=True)
    _, info = train_regression_model(model_cfg, train_cfg, out_dir=out, log=lambda s: print(s, file=sys.stderr, flush=True))
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
    import torch

    from interp.engine import final_logits
    from interp.problems import run_prefix
    from interp.stats import mean_ci
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
            problem.forget(f"k={k - 1}", "test", args.n)  # one length at a time: bounded memory
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
