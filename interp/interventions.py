"""Interventions at one position (by default the final token), as TransformerLens hook lists.

Each factory returns ``[(hook_name, hook_fn), ...]`` for ``model.hooks(fwd_hooks=...)`` /
``model.run_with_hooks``; the context manager `intervene` wraps ``model.hooks`` so hooks are removed when
the block exits, also when it raises. The three kinds the task-vector methods need:

- `add_vectors`: add ``v_l`` to ``blocks.{l}.hook_resid_post`` (or ``hook_resid_pre``) at the position;
  one vector for one layer (FV), or one per layer (LTV). Differentiable in ``v``.
- `replace_resid`: overwrite the hidden state of one layer at the position (TV).
- `patch_heads`: overwrite ``blocks.{l}.attn.hook_z[:, pos, h]`` (one head's output before ``W_O``) with a
  given value, e.g. its clean mean (FV causal indirect effect). Row-wise assignments let one batch carry
  many (layer, head) variants at once.

Because every edit is at ``pos`` only, the same hooks work on a full prompt and on the one-token run of
the frozen-prefix engine (where the final token is the only position, also ``-1``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

Hook = tuple[str, Callable]
RESID_HOOKS = ("resid_post", "resid_pre", "resid_mid")


class InterventionError(ValueError):
    """An intervention does not fit the model; the message says what and how to fix it."""


def _check_layer(model: HookedTransformer, layer: int) -> int:
    n = model.cfg.n_layers
    if not -n <= layer < n:
        raise InterventionError(f"layer {layer} is out of range for a {n}-layer model (use 0..{n - 1})")
    return layer % n


def _check_resid_hook(model: HookedTransformer, hook: str) -> None:
    if hook not in RESID_HOOKS:
        raise InterventionError(f"hook must be one of {RESID_HOOKS}, got {hook!r}")
    if hook == "resid_mid" and (model.cfg.parallel_attn_mlp or model.cfg.attn_only):
        raise InterventionError(
            "this model has no hook_resid_mid: its blocks are "
            + ("parallel attention+MLP (GPT-J, GPT-NeoX, Phi)" if model.cfg.parallel_attn_mlp else "attention-only")
            + ", so there is no residual stream between attention and MLP; use hook='resid_pre' or 'resid_post'"
        )


def _check_vector(model: HookedTransformer, v: Tensor, what: str) -> None:
    if v.shape[-1] != model.cfg.d_model:
        raise InterventionError(
            f"{what} has size {v.shape[-1]} in its last dimension but the model's d_model is {model.cfg.d_model}; "
            "was it computed on another model?"
        )


def _edit_position(act: Tensor, pos: int, new_value: Tensor) -> Tensor:
    """``act`` with ``act[:, pos]`` replaced, out of place (keeps autograd and the cached input intact)."""
    out = act.clone()
    out[:, pos] = new_value
    return out


def add_vectors(
    model: HookedTransformer,
    vectors: Mapping[int, Float[Tensor, "... d_model"]] | Float[Tensor, "layer d_model"],
    *,
    hook: str = "resid_post",
    pos: int = -1,
    scale: float = 1.0,
) -> list[Hook]:
    """Hooks adding ``scale * vectors[l]`` to ``blocks.{l}.hook_{hook}`` at ``pos``.

    ``vectors`` is a ``{layer: vector}`` mapping or a ``[n_layers, d_model]`` tensor (one per layer). A
    vector may also be ``[batch, d_model]`` (a different vector per row).
    """
    _check_resid_hook(model, hook)
    if isinstance(vectors, Tensor):
        if vectors.ndim != 2 or vectors.shape[0] != model.cfg.n_layers:
            raise InterventionError(
                f"a per-layer tensor must be [n_layers={model.cfg.n_layers}, d_model={model.cfg.d_model}], "
                f"got {list(vectors.shape)}; pass a {{layer: vector}} dict to add at some layers only"
            )
        vectors = {layer: vectors[layer] for layer in range(model.cfg.n_layers)}
    hooks = []
    for layer, v in vectors.items():
        layer = _check_layer(model, layer)
        _check_vector(model, v, f"the vector for layer {layer}")

        def add(act: Float[Tensor, "batch pos d_model"], hook, v=v):
            # a vector saved or built on another device (e.g. loaded on the CPU for a CUDA model) follows the activation
            return _edit_position(act, pos, act[:, pos] + scale * v.to(device=act.device, dtype=act.dtype))

        hooks.append((f"blocks.{layer}.hook_{hook}", add))
    return hooks


def replace_resid(
    model: HookedTransformer,
    layer: int,
    value: Float[Tensor, "... d_model"],
    *,
    hook: str = "resid_post",
    pos: int = -1,
) -> list[Hook]:
    """Hooks replacing the hidden state ``blocks.{layer}.hook_{hook}[:, pos]`` by ``value``."""
    _check_resid_hook(model, hook)
    layer = _check_layer(model, layer)
    _check_vector(model, value, "the replacement hidden state")

    def replace(act: Float[Tensor, "batch pos d_model"], hook):
        return _edit_position(act, pos, value.to(device=act.device, dtype=act.dtype).expand_as(act[:, pos]))

    return [(f"blocks.{layer}.hook_{hook}", replace)]


def patch_heads(
    model: HookedTransformer,
    layers: Int[Tensor, " batch"] | Sequence[int],
    heads: Int[Tensor, " batch"] | Sequence[int],
    values: Float[Tensor, "layer head d_head"],
    *,
    pos: int = -1,
) -> list[Hook]:
    """Row ``r`` of the batch gets ``z[r, pos, heads[r]] := values[layers[r], heads[r]]`` at ``layers[r]``.

    Rows with ``layers[r] < 0`` are left untouched (a clean reference inside the same batch). For one
    head on all rows pass ``layers=[l] * batch``.
    """
    cfg = model.cfg
    if values.shape[:2] != (cfg.n_layers, cfg.n_heads) or values.shape[-1] != cfg.d_head:
        raise InterventionError(
            f"head values must be [n_layers={cfg.n_layers}, n_heads={cfg.n_heads}, d_head={cfg.d_head}], "
            f"got {list(values.shape)}"
        )
    # On the values' (the model's) device, also when given as lists or on another device.
    layers_t = torch.as_tensor(layers, dtype=torch.long, device=values.device)
    heads_t = torch.as_tensor(heads, dtype=torch.long, device=values.device)
    if layers_t.shape != heads_t.shape or layers_t.ndim != 1:
        raise InterventionError("layers and heads must be 1-D and of equal length (one entry per batch row)")
    if (layers_t >= cfg.n_layers).any() or (heads_t >= cfg.n_heads).any() or (heads_t < 0).any():
        raise InterventionError(f"head indices out of range for {cfg.n_layers} layers x {cfg.n_heads} heads")
    hooks = []
    for layer in sorted(set(layers_t[layers_t >= 0].tolist())):
        rows = (layers_t == layer).nonzero().squeeze(-1)
        row_heads = heads_t[rows]

        def patch(z: Float[Tensor, "batch pos head d_head"], hook, rows=rows, row_heads=row_heads, layer=layer):
            if z.shape[0] != layers_t.shape[0]:
                raise InterventionError(
                    f"patch_heads was built for a batch of {layers_t.shape[0]} rows, the model ran {z.shape[0]}"
                )
            out = z.clone()
            out[rows, pos, row_heads] = values[layer, row_heads].to(z.dtype)
            return out

        hooks.append((f"blocks.{layer}.attn.hook_z", patch))
    return hooks


def patch_head(
    model: HookedTransformer, layer: int, head: int, value: Float[Tensor, "... d_head"], *, pos: int = -1
) -> list[Hook]:
    """Replace one head's ``hook_z`` at ``pos`` (every row) with ``value``."""
    layer = _check_layer(model, layer)
    if not 0 <= head < model.cfg.n_heads:
        raise InterventionError(f"head {head} out of range (model has {model.cfg.n_heads} heads per layer)")
    if value.shape[-1] != model.cfg.d_head:
        raise InterventionError(f"value has size {value.shape[-1]}, the model's d_head is {model.cfg.d_head}")

    def patch(z: Float[Tensor, "batch pos head d_head"], hook):
        out = z.clone()
        out[:, pos, head] = value.to(z.dtype)
        return out

    return [(f"blocks.{layer}.attn.hook_z", patch)]


@contextmanager
def intervene(model: HookedTransformer, hooks: Sequence[Hook]) -> Iterator[HookedTransformer]:
    """``with intervene(model, add_vectors(model, {9: fv})): model(tokens)`` — hooks always removed."""
    with model.hooks(fwd_hooks=list(hooks)):
        yield model
