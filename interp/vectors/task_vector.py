"""Task Vectors (Hendel et al. 2023): a layer's hidden state, transplanted into the zero-shot prompt.

Source prompts are k clean demonstrations followed by a *dummy* query from the train split; the hidden
state ``blocks.{l}.hook_resid_post[:, -1]`` at their final token, averaged over prompts, is the task vector
of layer l. Applying it *replaces* the hidden state at layer l of the target prompt's final token (the
zero-shot prompt ``Q: x\\nA:`` in Hendel et al.). The layer is chosen by a sweep on the valid split.
The hidden states of every layer are computed in one pass, so the sweep costs one-token runs only.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from jaxtyping import Float
from torch import Tensor

from interp.activations import final_token_resid
from interp.interventions import replace_resid
from interp.problems import Problem
from interp.vectors.base import TaskVector, describe_model
from interp.vectors.function_vector import best_layer, layer_sweep


@dataclass
class TVConfig:
    n_source: int = 32  # dummy-query demonstration prompts averaged
    layer: int | None = None  # None: sweep on valid
    sweep_settings: tuple[str, ...] = ("zero-shot",)
    n_valid: int = 32
    batch_size: int = 16

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HiddenStateTaskVector(TaskVector):
    method = "tv"

    @property
    def hidden(self) -> Float[Tensor, "layer d_model"]:
        return self.tensors["hidden"]

    @property
    def layer(self) -> int:
        return int(self.meta["layers"][0])

    def at_layer(self, layer: int) -> "HiddenStateTaskVector":
        return HiddenStateTaskVector(dict(self.tensors), {**self.meta, "layers": [layer]})

    def hooks(self, model):
        return replace_resid(model, self.layer, self.hidden[self.layer], hook="resid_post")


def fit_tv(
    problem: Problem, config: TVConfig | None = None, *, progress: bool = True, return_per_prompt: bool = False
):
    """Fit a TV; with ``return_per_prompt`` also return the source hidden states ``[n_source, layer, d_model]``
    it averages (e.g. for a PCA of per-prompt vectors)."""
    cfg = config or TVConfig()
    model = problem.model
    t0 = time.perf_counter()
    source = problem.batch("dummy", "train", cfg.n_source)
    per_prompt = final_token_resid(model, source.inputs, source.attention_mask, batch_size=cfg.batch_size)
    hidden = per_prompt.mean(0)
    n_layers = model.cfg.n_layers
    meta = {
        **describe_model(model),
        "label": "TV",
        "task": problem.name,
        "problem": problem.describe(),
        "config": cfg.to_dict(),
        "layers": [cfg.layer if cfg.layer is not None else n_layers // 2],
    }
    tv = HiddenStateTaskVector({"hidden": hidden}, meta)
    if cfg.layer is None:
        sweep = layer_sweep(tv, problem, range(n_layers), cfg.sweep_settings, cfg.n_valid)
        tv.meta.update(layers=[best_layer(sweep, problem.metric)], layer_sweep={str(k): v for k, v in sweep.items()})
    tv.meta["wall_s"] = round(time.perf_counter() - t0, 2)
    return (tv, per_prompt) if return_per_prompt else tv
