"""Train an in-context regression transformer and save it as a checkpoint directory.

Example (the shipped linear checkpoint)::

    python scripts/train_regression.py --class linear --steps 20000 --max-minutes 22 \\
        --out interp/regression/checkpoints/linear

and one without learned position rows (rotary attention; ``--positional-embedding none`` for NoPE)::

    python scripts/train_regression.py --class linear --positional-embedding rotary --steps 8000 \\
        --out interp/regression/checkpoints/linear_rotary

Writes ``model.safetensors``, ``config.json`` (architecture + training settings + final evaluation),
``train_log.jsonl`` and ``eval_curve.json`` into ``--out``. Torch runs on one thread unless ``--threads``.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from interp.regression.functions import FUNCTION_CLASSES
from interp.regression.model import POSITIONAL_EMBEDDING_TYPES, RegressionConfig
from interp.regression.train import TrainConfig, train_regression_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--class", dest="function_class", required=True, choices=sorted(FUNCTION_CLASSES))
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock cap (the lr schedule adapts)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--lr-schedule", choices=["cosine", "constant"], default="cosine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--curriculum", action="store_true", help="grow active dims and prompt length (off by default)")
    p.add_argument("--n-dims", type=int, default=5)
    p.add_argument("--n-points", type=int, default=20, help="trained prompt length in (x, y) pairs")
    p.add_argument("--n-layers", type=int, default=3)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--d-mlp", type=int, default=None)
    p.add_argument("--act-fn", default="gelu")
    p.add_argument(
        "--positional-embedding",
        choices=POSITIONAL_EMBEDDING_TYPES,
        default="standard",
        help="standard: learned absolute rows (the shipped checkpoints); rotary; none (NoPE)",
    )
    p.add_argument("--log-every", type=int, default=250)
    p.add_argument("--eval-prompts", type=int, default=1000)
    p.add_argument("--eval-seed", type=int, default=12345)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    model_cfg = RegressionConfig(
        n_dims=a.n_dims,
        n_points=a.n_points,
        n_layers=a.n_layers,
        n_heads=a.n_heads,
        d_model=a.d_model,
        d_mlp=a.d_mlp,
        act_fn=a.act_fn,
        function_class=a.function_class,
        init_seed=a.seed,
        positional_embedding_type=a.positional_embedding,
    )
    train_cfg = TrainConfig(
        steps=a.steps,
        batch_size=a.batch_size,
        lr=a.lr,
        warmup_steps=a.warmup_steps,
        lr_schedule=a.lr_schedule,
        seed=a.seed,
        max_minutes=a.max_minutes,
        curriculum=a.curriculum,
        log_every=a.log_every,
        eval_prompts=a.eval_prompts,
        eval_seed=a.eval_seed,
        n_threads=a.threads,
    )
    print(f"model: {model_cfg}\ntraining: {train_cfg}", flush=True)
    train_regression_model(model_cfg, train_cfg, out_dir=a.out, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
