"""Per-head outputs at the final token: what each attention head writes into the residual stream.

For head ``h`` of layer ``l`` with ``z = blocks.{l}.attn.hook_z[:, -1, h]`` (its attention-weighted values,
``[d_head]``), the head's contribution is ``a[l, h] = z @ W_O[l, h]`` (``[d_model]``), and

    sum_h a[l, h] + b_O[l] == blocks.{l}.hook_attn_out[:, -1]

exactly (a test holds this for GPT-2-style and grouped-query models: ``hook_z`` always has one slot per
*query* head, key/value sharing happens before it). Task-vector methods are built from the mean of
``a[l, h]`` over clean ICL prompts of a task (``ā``): the LTV weights it per head, the FV sums the top
heads, and CIE patches ``z`` back to its mean.

Only ``hook_z`` at the final position is kept (``[batch, layer, head, d_head]``), never a full
``run_with_cache``: for SmolLM2 that is 30 x 9 x 64 floats per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import einops
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer


@torch.no_grad()
def final_position_activations(
    model: HookedTransformer,
    inputs: Tensor,
    attention_mask: Tensor | None,
    hook_name: str,
    *,
    batch_size: int = 16,
    pos: int = -1,
) -> Tensor:
    """``hook_name.format(layer=l)`` of every layer at position ``pos``, stacked on dim 1, in batches,
    keeping nothing else (no ``run_with_cache``). E.g. ``"blocks.{layer}.attn.hook_z"`` -> ``[batch, layer, head, d_head]``."""
    n_layers = model.cfg.n_layers
    out = []
    for start in range(0, inputs.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        store: dict[int, Tensor] = {}

        def save(act: Tensor, hook):
            store[hook.layer()] = act[:, pos].detach().clone()

        mask = attention_mask[sl] if attention_mask is not None else None
        hooks = [(hook_name.format(layer=layer), save) for layer in range(n_layers)]
        with model.hooks(fwd_hooks=hooks):
            model(inputs[sl], attention_mask=mask, return_type=None)
        out.append(torch.stack([store[layer] for layer in range(n_layers)], dim=1))
    return torch.cat(out)


def final_token_z(
    model: HookedTransformer, inputs: Tensor, attention_mask: Tensor | None = None, *, batch_size: int = 16
) -> Float[Tensor, "batch layer head d_head"]:
    """``hook_z`` of every layer at the final token."""
    return final_position_activations(model, inputs, attention_mask, "blocks.{layer}.attn.hook_z", batch_size=batch_size)


def final_token_resid(
    model: HookedTransformer, inputs: Tensor, attention_mask: Tensor | None = None, *, batch_size: int = 16
) -> Float[Tensor, "batch layer d_model"]:
    """``hook_resid_post`` of every layer at the final token."""
    return final_position_activations(model, inputs, attention_mask, "blocks.{layer}.hook_resid_post", batch_size=batch_size)


def stacked_W_O(model: HookedTransformer) -> Float[Tensor, "layer head d_head d_model"]:
    return torch.stack([block.attn.W_O for block in model.blocks])


def stacked_b_O(model: HookedTransformer) -> Float[Tensor, "layer d_model"]:
    return torch.stack([block.attn.b_O for block in model.blocks])


def head_contributions(
    model: HookedTransformer, z: Float[Tensor, "... layer head d_head"]
) -> Float[Tensor, "... layer head d_model"]:
    """``a[..., l, h] = z[..., l, h] @ W_O[l, h]``: each head's write into the residual stream."""
    return einops.einsum(z, stacked_W_O(model).to(z.dtype), "... l h d, l h d m -> ... l h m")


@dataclass
class HeadActivations:
    """Final-token ``z`` and per-head contributions of a batch, with their means over the batch."""

    z: Float[Tensor, "batch layer head d_head"]
    contributions: Float[Tensor, "batch layer head d_model"]

    @property
    def mean_z(self) -> Float[Tensor, "layer head d_head"]:
        return self.z.mean(0)

    @property
    def mean_contributions(self) -> Float[Tensor, "layer head d_model"]:
        return self.contributions.mean(0)


@torch.no_grad()
def head_activations(
    model: HookedTransformer, inputs: Tensor, attention_mask: Tensor | None = None, *, batch_size: int = 16
) -> HeadActivations:
    """Per-head ``z`` and ``a = z @ W_O`` at the final token for every prompt of a batch."""
    z = final_token_z(model, inputs, attention_mask, batch_size=batch_size)
    return HeadActivations(z=z, contributions=head_contributions(model, z))


def mean_head_activations(model: HookedTransformer, batch, *, batch_size: int = 16) -> HeadActivations:
    """`head_activations` of a `PromptBatch` (anything with ``inputs`` and ``attention_mask``)."""
    return head_activations(model, batch.inputs, batch.attention_mask, batch_size=batch_size)
