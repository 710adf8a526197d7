"""Training in-context regression transformers on CPU.

Every step draws a fresh batch of prompts (a new function per prompt, ``n_points`` points each) and minimises
the mean squared error of the predictions read at the ``x`` positions, over all ``n_points`` positions
(so the model learns to predict from 0, 1, ..., ``n_points - 1`` demonstrations at once). The optimiser is
Adam with a linear warm-up, then (by default) a cosine decay to ``min_lr_ratio * lr``; the schedule follows
``progress = max(step / steps, elapsed / max_minutes)`` so a wall-clock cap still ends on a decayed
learning rate.

An optional curriculum (off by default; Garg et al. use it at d = 20, it did not help at d = 5) starts with
fewer active x coordinates (the others are zeroed) and shorter prompts and grows both every
``curriculum_interval`` steps.

Every ``log_every`` steps the model's normalised error ``(y_hat - y)^2 / d`` per prompt length is measured on a
fixed set of prompts and printed beside the baselines' (least squares, averaging, 3-NN, and Lasso or a
fitted tree where they apply). At the end, ``evaluate_curve`` on ``eval_prompts`` fresh prompts (seed
``eval_seed``, lengths up to twice the trained one) gives the recorded ``in_range_error`` and
``beyond_error``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from jaxtyping import Float
from torch import Tensor

from interp.regression.evaluation import (
    baseline_predictions,
    default_baselines,
    evaluate_curve,
    model_predictions,
    normalised_errors,
)
from interp.regression.functions import sample_task
from interp.regression.io import save_regression_model
from interp.regression.model import RegressionConfig, RegressionTransformer

__all__ = ["TrainConfig", "lr_factor", "curriculum_state", "sample_training_batch", "train_regression_model"]


@dataclass
class TrainConfig:
    """Optimisation settings (the architecture lives in ``RegressionConfig``)."""

    steps: int = 6000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 200
    lr_schedule: str = "cosine"  # "cosine" (to min_lr_ratio * lr) or "constant" after warm-up
    min_lr_ratio: float = 0.1
    grad_clip: Optional[float] = 1.0
    seed: int = 0
    max_minutes: Optional[float] = None  # wall-clock cap: stop (with the schedule finished) when reached
    curriculum: bool = False
    curriculum_start_dims: int = 2
    curriculum_start_points: int = 6
    curriculum_interval: int = 250  # steps between increments (+1 dim, +2 points)
    log_every: int = 250
    log_prompts: int = 256
    log_seed: int = 999
    eval_prompts: int = 1000
    eval_seed: int = 12345
    n_threads: Optional[int] = 1  # torch.set_num_threads; None leaves torch's setting alone

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def lr_factor(progress: float, step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr``: linear warm-up over ``warmup_steps``, then constant or cosine in ``progress``."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.lr_schedule == "constant":
        return warm
    p = min(max(progress, 0.0), 1.0)
    return warm * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def curriculum_state(step: int, model_cfg: RegressionConfig, cfg: TrainConfig) -> Tuple[int, int]:
    """``(active_dims, n_points)`` at a step (the full sizes when the curriculum is off)."""
    if not cfg.curriculum:
        return model_cfg.n_dims, model_cfg.n_points
    inc = step // cfg.curriculum_interval
    dims = min(model_cfg.n_dims, cfg.curriculum_start_dims + inc)
    points = min(model_cfg.n_points, cfg.curriculum_start_points + 2 * inc)
    return dims, points


def sample_training_batch(
    function_class: str,
    batch_size: int,
    n_points: int,
    n_dims: int,
    generator: torch.Generator,
    active_dims: Optional[int] = None,
) -> Tuple[Float[Tensor, "batch k d"], Float[Tensor, "batch k"]]:
    """Fresh prompts; with ``active_dims < n_dims`` the trailing x coordinates are zeroed (curriculum)."""
    task = sample_task(function_class, batch_size, n_dims, generator)
    xs, _ = task.sample_points(n_points, generator)
    if active_dims is not None and active_dims < n_dims:
        xs[..., active_dims:] = 0.0
    return xs, task.functions(xs)


def _log_curve_line(step: int, loss: float, lr: float, model_err: Tensor, base_err: Dict[str, Tensor], d: int) -> str:
    mean = model_err.mean(0)  # [k]
    n = mean.shape[0]
    lo = min(2 * d, n)
    show = [k for k in (1, 2, d, 2 * d, n) if k <= n]
    parts = [f"step {step:6d}", f"loss {loss:.4f}", f"lr {lr:.2e}", f"model[k{lo}-{n}] {mean[lo - 1:].mean():.4f}"]
    parts += [f"{name}[k{lo}-{n}] {e.mean(0)[lo - 1:].mean():.4f}" for name, e in base_err.items()]
    parts.append("model@k " + " ".join(f"{k}:{mean[k - 1]:.3f}" for k in sorted(set(show))))
    return " | ".join(parts)


def train_regression_model(
    model_config: RegressionConfig,
    train_config: Optional[TrainConfig] = None,
    out_dir: Union[None, str, Path] = None,
    log: Callable[[str], None] = print,
    model: Optional[RegressionTransformer] = None,
) -> Tuple[RegressionTransformer, Dict[str, Any]]:
    """Train (a new, or the given) model; save it to ``out_dir`` if given. Returns ``(model, training_info)``.

    ``training_info`` is what goes into ``config.json["training"]``: the ``TrainConfig``, steps done, wall
    time, ms per step, final training loss and ``final_eval`` (``evaluate_curve`` summary on fresh prompts).
    ``out_dir`` also receives ``train_log.jsonl`` (a header line with the baselines' per-position errors on the
    log prompts, then one line per log step with the model's) and ``eval_curve.json`` (the final curve).
    """
    cfg = train_config or TrainConfig()
    if cfg.n_threads is not None:
        torch.set_num_threads(cfg.n_threads)
    if model is None:
        model = RegressionTransformer(model_config)
    model.train()
    d, fc = model_config.n_dims, model_config.function_class

    out = Path(out_dir) if out_dir is not None else None
    log_file = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        log_file = open(out / "train_log.jsonl", "w")

    # Fixed prompts for the periodic log, and the baselines' errors on them (computed once).
    g_log = torch.Generator().manual_seed(cfg.log_seed)
    log_xs, log_ys = sample_task(fc, cfg.log_prompts, d, g_log).sample_points(model_config.n_points, g_log)
    base_err = {
        name: normalised_errors(baseline_predictions(name, log_xs, log_ys), log_ys, d)
        for name in default_baselines(fc)
        if name != "zero"
    }

    if log_file is not None:  # first line: the baselines' per-position errors on the same log prompts
        header = {"log_prompts": cfg.log_prompts, "log_seed": cfg.log_seed}
        header["baseline_error"] = {n: [round(v, 5) for v in e.mean(0).tolist()] for n, e in base_err.items()}
        log_file.write(json.dumps(header) + "\n")

    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    step, loss_ema, last_loss = 0, None, float("nan")
    max_seconds = cfg.max_minutes * 60 if cfg.max_minutes is not None else None
    stopped_by = "steps"
    try:
        while step < cfg.steps:
            elapsed = time.time() - t0
            if max_seconds is not None and elapsed >= max_seconds:
                stopped_by = "max_minutes"
                break
            progress = step / cfg.steps
            if max_seconds is not None:
                progress = max(progress, elapsed / max_seconds)
            lr = cfg.lr * lr_factor(progress, step, cfg)
            for group in optimiser.param_groups:
                group["lr"] = lr

            active_dims, n_points = curriculum_state(step, model_config, cfg)
            xs, ys = sample_training_batch(fc, cfg.batch_size, n_points, d, g, active_dims)
            preds = model.predict(xs, ys)
            loss = ((preds - ys) ** 2).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimiser.step()
            last_loss = loss.item()
            loss_ema = last_loss if loss_ema is None else 0.98 * loss_ema + 0.02 * last_loss
            step += 1

            if step % cfg.log_every == 0 or step == cfg.steps:
                model.eval()
                model_err = normalised_errors(model_predictions(model, log_xs, log_ys), log_ys, d)
                model.train()
                log(_log_curve_line(step, loss_ema, lr, model_err, base_err, d) + f" | {time.time() - t0:.0f}s")
                if log_file is not None:
                    record = {
                        "step": step,
                        "elapsed_s": round(time.time() - t0, 2),
                        "lr": lr,
                        "loss_ema": loss_ema,
                        "model_error": [round(v, 5) for v in model_err.mean(0).tolist()],
                    }
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
    finally:
        if log_file is not None:
            log_file.close()
    wall = time.time() - t0
    model.eval()

    log(f"trained {step} steps in {wall:.0f}s ({1000 * wall / max(step, 1):.0f} ms/step); final evaluation ...")
    t_eval = time.time()
    curve = evaluate_curve(model, fc, n_prompts=cfg.eval_prompts, max_points=2 * model_config.n_points, seed=cfg.eval_seed)
    final_eval = {
        "n_prompts": cfg.eval_prompts,
        "seed": cfg.eval_seed,
        "max_points": curve["max_points"],
        "in_range_k": curve["in_range_k"],
        "beyond_k": curve["beyond_k"],
        "in_range_error": curve["in_range_error"],
        "in_range_ci": curve["in_range_ci"],
        "beyond_error": curve["beyond_error"],
        "beyond_ci": curve["beyond_ci"],
        "baseline_in_range": curve["baseline_in_range"],
        "baseline_beyond": curve["baseline_beyond"],
        "eval_seconds": round(time.time() - t_eval, 1),
    }
    log(
        f"in-range error (k {curve['in_range_k'][0]}..{curve['in_range_k'][1]}) {curve['in_range_error']:.4f} "
        f"CI {curve['in_range_ci'][0]:.4f}..{curve['in_range_ci'][1]:.4f}; beyond (k {curve['beyond_k'][0]}.."
        f"{curve['beyond_k'][1]}) {curve['beyond_error']:.4f}; baselines in-range "
        + ", ".join(f"{k} {v:.4f}" for k, v in curve["baseline_in_range"].items())
    )
    info: Dict[str, Any] = {
        "train_config": cfg.to_dict(),
        "steps_done": step,
        "stopped_by": stopped_by,
        "wall_seconds": round(wall, 1),
        "ms_per_step": round(1000 * wall / max(step, 1), 1),
        "torch_threads": torch.get_num_threads(),
        "final_loss_ema": loss_ema,
        "final_eval": final_eval,
    }
    if out is not None:
        save_regression_model(model, out, info)
        (out / "eval_curve.json").write_text(json.dumps(curve) + "\n")
        log(f"saved to {out}")
    return model, info
