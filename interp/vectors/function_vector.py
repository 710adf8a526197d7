"""Function Vectors (Todd et al. 2024): the summed mean output of the heads with the largest causal effect.

1. Mean head activations over clean k-shot train prompts: ``z̄[l, h]`` (for patching) and ``ā[l, h]``
   (``z̄ @ W_O``, for the vector).
2. Causal indirect effect (CIE) of head ``(l, h)``: on *shuffled-label* prompts, replace its final-token
   ``hook_z`` by ``z̄[l, h]`` and measure the change of P(target) (text) / of minus the squared error
   (regression). All L×H heads are patched through the frozen-prefix engine: each prompt's prefix runs
   once, then every (prompt, head) pair is one row of a one-token batch (`interp.interventions.patch_heads`).
3. FV = Σ over the top-k heads by mean CIE of ``ā[l, h]`` (a single ``d_model`` vector), added to
   ``blocks.{layer}.hook_resid_post`` at the final token; the layer is chosen by a sweep on the valid
   split (or given).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.interventions import add_vectors, patch_heads
from interp.problems import Problem, run_prefix, targets_of
from interp.vectors.base import TaskVector, VectorError, describe_model


@dataclass
class FVConfig:
    top_k: int = 10
    n_mean: int = 48  # clean train prompts for z̄ / ā
    n_cie: int = 24  # shuffled train prompts for the causal indirect effects
    cie_setting: str = "shuffled"
    layer: int | None = None  # None: sweep on valid
    sweep_settings: tuple[str, ...] | None = None  # None: the problem's corruptions
    n_valid: int = 32
    rows_per_call: int = 27  # variant rows per forward (3 layers x 9 heads: measured fastest on 2 CPUs)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FunctionVector(TaskVector):
    method = "fv"

    @property
    def vector(self) -> Float[Tensor, " d_model"]:
        return self.tensors["vector"]

    @property
    def cie(self) -> Float[Tensor, "layer head"]:
        return self.tensors["cie"]

    @property
    def layer(self) -> int:
        return int(self.meta["layers"][0])

    def at_layer(self, layer: int) -> "FunctionVector":
        return FunctionVector(dict(self.tensors), {**self.meta, "layers": [layer]})

    def hooks(self, model):
        return add_vectors(model, {self.layer: self.vector}, hook="resid_post")

    def top_heads(self) -> list[tuple[int, int]]:
        return [tuple(h) for h in self.meta["top_heads"]]


_MAX_CIE_ROWS = 512  # rows per forward when prompts share a batch (bounds the [rows, d_vocab] logits)


@torch.no_grad()
def causal_indirect_effects(
    problem: Problem,
    mean_z: Float[Tensor, "layer head d_head"],
    n: int,
    setting: str = "shuffled",
    rows_per_call: int = 27,
    progress: bool = True,
) -> Float[Tensor, "layer head"]:
    """Mean change of the CIE quantity when each head's final-token z is set to its clean mean."""
    model = problem.model
    n_layers, n_heads = mean_z.shape[:2]
    if not hasattr(model, "blocks") or not all(
        f"blocks.{l}.attn.hook_z" in model.hook_dict for l in range(n_layers)
    ):
        raise VectorError(
            "causal indirect effects need blocks.{l}.attn.hook_z hook points; this model does not expose "
            "them (use a HookedTransformer with attention heads)"
        )
    batch, prefix = problem.prefix(setting, "train", n)
    targets = targets_of(batch)
    device = mean_z.device
    effects = torch.zeros(n_layers, n_heads, device=device)  # float32 sums whatever the model dtype
    # The clean final-token residual at every layer is computed once. Heads of layers [s, s + group) are
    # patched in one batch that runs only blocks s..L-1: a patch at layer l cannot change anything below
    # l. On the shared-prefix path several prompts go in one batch (their variants all read each prompt's
    # one stored prefix); on TransformerLens's cache path a batch holds one prompt's variants (a view).
    group = max(1, rows_per_call // n_heads)
    per_call = max(1, _MAX_CIE_ROWS // (group * n_heads)) if prefix.shared is not None else 1
    resid_pre_all, clean_out = prefix.final_resid_pre()  # [P, L, d], [P, d_vocab]: one batched run
    base_all = problem.cie_quantity(clean_out, targets)
    for first in tqdm(range(0, len(prefix), per_call), desc="CIE", disable=not progress, leave=False):
        idx = torch.arange(first, min(first + per_call, len(prefix)), device=device)
        chunk = prefix.select(idx)
        for start in range(0, n_layers, group):
            layers = torch.arange(start, min(start + group, n_layers), device=device).repeat_interleave(n_heads)
            heads = torch.arange(n_heads, device=device).repeat(len(layers) // n_heads)
            v = len(layers)  # variants per prompt; row i * v + j is variant j of prompt idx[i]
            rows = chunk.expand(v) if len(idx) == 1 else chunk.repeat(v)
            resid = resid_pre_all[idx, start].repeat_interleave(v, dim=0)
            hooks = patch_heads(model, layers.repeat(len(idx)), heads.repeat(len(idx)), mean_z)
            q = problem.cie_quantity(rows.run_from(start, resid, hooks), targets[idx].repeat_interleave(v))
            effects[layers, heads] += (q.view(len(idx), v) - base_all[idx, None]).float().sum(0)
    return (effects / len(prefix)).view(n_layers, n_heads)


def fit_fv(problem: Problem, config: FVConfig | None = None, *, progress: bool = True) -> FunctionVector:
    cfg = config or FVConfig()
    model = problem.model
    t0 = time.perf_counter()
    acts = problem.clean_activations(cfg.n_mean)
    n_layers, n_heads = acts.mean_z.shape[:2]
    if not 1 <= cfg.top_k <= n_layers * n_heads:
        raise VectorError(f"top_k must be between 1 and {n_layers * n_heads} (the number of heads), got {cfg.top_k}")
    cie = causal_indirect_effects(problem, acts.mean_z, cfg.n_cie, cfg.cie_setting, cfg.rows_per_call, progress)
    order = cie.flatten().argsort(descending=True)[: cfg.top_k]
    top = [(int(i) // n_heads, int(i) % n_heads) for i in order]
    vector = sum(acts.mean_contributions[l, h] for l, h in top)
    meta = {
        **describe_model(model),
        "label": "FV",
        "task": problem.name,
        "problem": problem.describe(),
        "top_heads": top,
        "config": cfg.to_dict(),
        "layers": [cfg.layer if cfg.layer is not None else n_layers // 3],
    }
    fv = FunctionVector(
        {"vector": vector, "cie": cie, "mean_z": acts.mean_z, "head_means": acts.mean_contributions}, meta
    )
    if cfg.layer is None:
        settings = cfg.sweep_settings or problem.corruptions
        sweep = layer_sweep(fv, problem, range(n_layers), settings, cfg.n_valid)
        fv.meta.update(layers=[best_layer(sweep, problem.metric)], layer_sweep={str(k): v for k, v in sweep.items()})
    fv.meta["wall_s"] = round(time.perf_counter() - t0, 2)
    return fv


def best_layer(sweep: dict[int, float], metric: str) -> int:
    """Best layer of a sweep (the earliest one on ties, which are common on small valid sets)."""
    pick = max if metric == "accuracy" else min
    return pick(sweep, key=sweep.get)


def layer_sweep(vec, problem: Problem, layers, settings, n_valid: int) -> dict[int, float]:
    """Valid-split metric of ``vec`` applied at each layer (``vec`` must have ``at_layer``).

    A vector acting at layer l leaves the final token's blocks below l unchanged, so each setting's
    ``hook_resid_pre`` is computed once and every candidate layer runs only blocks l..L-1 (`run_from`).
    """
    starts = []
    for setting in settings:
        batch, prefix = problem.prefix(setting, "valid", n_valid)
        starts.append((targets_of(batch), prefix, prefix.final_resid_pre()[0]))
    sweep = {}
    with torch.no_grad():
        for layer in layers:
            hooks = vec.at_layer(int(layer)).hooks(problem.model)
            values = [
                problem.row_metric(prefix.run_from(int(layer), resid_pre[:, int(layer)], hooks), targets).mean().item()
                for targets, prefix, resid_pre in starts
            ]
            sweep[int(layer)] = sum(values) / len(values)
    return sweep
