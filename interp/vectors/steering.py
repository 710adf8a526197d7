"""A free steering vector per layer: the LTV's unconstrained control.

The LTV restricts each layer's added vector to the span of that layer's mean head outputs,
``v_l = Σ_h θ[l, h] ā[l, h]`` (``L × H`` parameters). The free steering vector drops the basis and
learns ``v_l ∈ R^{d_model}`` directly (``L × d_model`` parameters, 64× more for SmolLM2), added at the
same hook (``blocks.{l}.hook_resid_post``, final token) and trained by the *same* loop as the LTV
(`interp.vectors.ltv.train_final_token`): same corrupted train prompts, steps, minibatches, valid-split
early stopping. Comparing the two says what the head basis costs (less capacity) or buys (better
generalisation to unseen queries, fewer labels needed): if the free vector matches the LTV everywhere,
the basis is not what makes the LTV work.

``v`` starts at zero (the identity intervention). Its learning rate is in residual-stream units, so it
differs from θ's (θ multiplies ā, whose norm is a few units); see `SteeringConfig.lr`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from interp.interventions import add_vectors
from interp.problems import Problem
from interp.vectors.base import ConfigDict, TaskVector, VectorError, describe_model
from interp.vectors.ltv import train_final_token


@dataclass
class SteeringConfig(ConfigDict):
    """Settings of a free-steering-vector fit; every field but ``lr`` means what it means in `LTVConfig`."""

    corruptions: tuple[str, ...] | None = None
    n_train: int = 64
    n_valid: int = 32
    steps: int = 300
    batch_size: int = 16
    lr: float = 0.01  # per coordinate of a d_model vector (Adam), vs 0.05 per head weight for the LTV
    l1: float = 0.0
    layers: tuple[int, ...] | None = None  # layers that get a vector (None: all)
    eval_every: int = 20
    patience: int = 5
    checkpoint_every: int = 50
    seed: int = 0

    @classmethod
    def like(cls, ltv_config, **overrides) -> "SteeringConfig":
        """The same prompts, steps and early stopping as an `LTVConfig` (its shared fields)."""
        shared = {k: v for k, v in asdict(ltv_config).items() if k in cls.__dataclass_fields__ and k != "lr"}
        return cls(**{**shared, **overrides})


@dataclass
class SteeringVector(TaskVector):
    """One learned ``d_model`` vector per layer, added at ``blocks.{l}.hook_resid_post`` (final token)."""

    method = "steer"

    @property
    def vectors(self) -> Float[Tensor, "layer d_model"]:
        return self.tensors["vectors"]

    def hooks(self, model):
        return add_vectors(model, self.vectors, hook="resid_post")

    @property
    def n_parameters(self) -> int:
        return int(len(self.layers) * self.vectors.shape[1])


def fit_steering(
    problems: Problem | Sequence[Problem],
    config: SteeringConfig | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> SteeringVector:
    """Train a free steering vector (one per layer) on the problems' corrupted prompts."""
    cfg = config or SteeringConfig()
    problems = [problems] if isinstance(problems, Problem) else list(problems)
    model = problems[0].model
    n_layers, d_model = model.cfg.n_layers, model.cfg.d_model
    mask = torch.zeros(n_layers, 1, device=model.cfg.device)
    for layer in cfg.layers if cfg.layers is not None else range(n_layers):
        if not 0 <= layer < n_layers:
            raise VectorError(f"layer {layer} out of range for a {n_layers}-layer model")
        mask[layer] = 1
    init = torch.zeros(n_layers, d_model, device=model.cfg.device, dtype=model.cfg.dtype)

    def make_hooks(vectors: Tensor, task_index: Tensor):
        return add_vectors(model, vectors * mask, hook="resid_post")  # one vector per layer for every row

    def finish(best: Tensor, state: dict, corruptions, t0: float) -> SteeringVector:
        names = [p.name for p in problems]
        meta = {
            **describe_model(model),
            "label": "steering",
            "task": names[0] if len(names) == 1 else "+".join(names),
            "tasks": names,
            "problem": problems[0].describe(),
            "layers": [l for l in range(n_layers) if mask[l].item()],
            "hook_names": [f"blocks.{l}.hook_resid_post" for l in range(n_layers) if mask[l].item()],
            "corruptions": list(corruptions),
            "config": cfg.to_dict(),
            "training": {
                "steps_run": state["step"],
                "best_step": state["best_step"],
                "best_valid_loss": state["best_loss"],
                "stopped": state["stopped"],
                "wall_s": round(time.perf_counter() - t0, 2),
                "curve": state["curve"],
            },
        }
        return SteeringVector({"vectors": (best * mask).detach().clone()}, meta)

    return train_final_token(
        problems, cfg, init, make_hooks, finish, grad_mask=mask, desc=f"steering {problems[0].name}",
        checkpoint_dir=checkpoint_dir, resume=resume, progress=progress,
    )  # fmt: skip
