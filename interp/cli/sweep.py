"""``interp sweep``: run a grid of resumable, content-addressed cells on Ray (flags mirror `SweepConfig`).

    interp sweep --model smollm2-135m --tasks present-past,capitalize --methods none,icl,ltv,fv,tv,random \\
        --settings zero-shot,shuffled --seeds 0,1,2 --n 100 --workers 2 --tasks-dir ../shared/icl_tasks \\
        --out results/sweeps/NAME [--json]
    interp sweep --config sweep.toml [--workers 4] [--set ltv.steps=200]     # flags override the file
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from interp.sweep.config import METHODS, SweepConfig, SweepConfigError

_FLAG_FIELDS = ("model", "tasks", "tasks_dir", "methods", "settings", "seeds", "n", "shots", "template",
                "split_seed", "workers", "address", "device", "threads", "gpus_per_worker", "out", "steer_lr_grid")  # fmt: skip


HELP = "run a grid of resumable cells (model x task x method x setting x seed) on Ray"


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help=HELP,
                       description=__doc__, formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    p.add_argument("--config", default=None, help="a TOML file with SweepConfig's fields (flags given override it)")
    p.add_argument("--model", default=None, help="model name (default smollm2-135m)")
    p.add_argument("--tasks", default=None, help="comma-separated task names (or .json paths)")
    p.add_argument("--tasks-dir", dest="tasks_dir", default=None, help="folder of function-vectors JSON tasks")
    p.add_argument("--methods", default=None, help=f"comma-separated, from: {', '.join(METHODS)}")
    p.add_argument("--settings", default=None, help="comma-separated: zero-shot, shuffled")
    p.add_argument("--seeds", default=None, help="comma-separated integers (demos, minibatches, θ draws)")
    p.add_argument("--n", type=int, default=None, help="test queries per cell (default 100)")
    p.add_argument("--shots", type=int, default=None, help="demonstrations per prompt (default 10)")
    p.add_argument("--template", default=None)
    p.add_argument("--split-seed", dest="split_seed", type=int, default=None, help="train/valid/test split seed (default 0)")
    p.add_argument("--steer-lr-grid", dest="steer_lr_grid", default=None,
                   help="comma-separated learning rates; the steering vector keeps the best on the valid split")
    p.add_argument("--workers", type=int, default=None, help="Ray actors, one model each (default 1; 0 = in-process)")
    p.add_argument("--address", default=None, help="join a Ray cluster ('auto' or ray://host:10001)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default 1)")
    p.add_argument("--gpus-per-worker", dest="gpus_per_worker", type=float, default=None,
                   help="GPUs each worker reserves (default 1; 0.125 packs 8 workers on one GPU)")
    p.add_argument("--out", default=None, help="the results store folder (default results/sweeps/default)")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                   help="a method option, e.g. ltv.steps=200, fv.top_k=5, ltv_multi.n_train=8 (repeatable)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args) -> SweepConfig:
    base = SweepConfig.from_toml(args.config).to_dict() if args.config else {}
    for name in _FLAG_FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            base[name] = value
    for opt in args.options:
        if "=" not in opt or "." not in opt.split("=", 1)[0]:
            raise SweepConfigError(f"--set {opt!r}: expected METHOD.FIELD=VALUE, e.g. ltv.steps=200")
        lhs, raw = opt.split("=", 1)
        method, name = lhs.split(".", 1)
        if method not in ("ltv", "fv", "tv", "ltv_multi", "steer"):
            raise SweepConfigError(f"--set {opt!r}: options exist for ltv, fv, tv, ltv_multi and steer only")
        sub = base.get(method) or {}
        sub = sub if isinstance(sub, dict) else {f.name: getattr(sub, f.name) for f in fields(sub)}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        sub[name] = value
        base[method] = sub
    return SweepConfig.from_dict(base).validate()


def run(args) -> int:
    from interp.sweep.runner import SweepWorkerError, run_sweep

    cfg = config_from_args(args)
    try:
        summary = run_sweep(cfg, progress=not args.quiet)
    except SweepWorkerError as err:
        print(f"interp sweep: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['cells']} cells: {summary['computed']} computed, {summary['reused']} reused, "
              f"{summary['failed']} failed in {summary['wall_s']} s -> {summary['out']}")  # fmt: skip
    if summary["failed"]:
        print(f"interp sweep: {summary['failed']} cell(s) failed; errors in {summary['out']}/sweep.json "
              "(rerun the same command to retry them)", file=sys.stderr)  # fmt: skip
    return 0
