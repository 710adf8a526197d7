"""A GPT-2-style ``HookedTransformer`` that reads vectors and writes a scalar: in-context regression.

Following Garg et al. (2022), a prompt of ``k`` points is fed as ``2k`` vectors in ``R^d``::

    x_1, [y_1, 0, ..., 0], x_2, [y_2, 0, ..., 0], ..., x_k, [y_k, 0, ..., 0]

(``interleave``). Each vector goes through a linear ``read_in: R^d -> R^{d_model}`` (in place of a token
embedding), then a learned absolute position embedding is added and the usual pre-LN blocks run. The
model's "vocabulary" has one entry (``d_vocab = 1``), so ``ln_final`` + ``unembed`` *is* the linear scalar
read-out: ``model(inputs)`` has shape ``[batch, pos, 1]``. The prediction of ``y_i`` is read at the
position of ``x_i`` (under causal attention it sees ``x_i`` and the points before it only); predictions
read at ``y`` positions are ignored.

Because the read-in replaces the token embedding inside ``input_to_embed``, everything else in
TransformerLens works unchanged: ``run_with_cache``, hooks (the read-in output is ``hook_embed``, the
position embedding ``hook_pos_embed``, heads ``blocks.{l}.attn.hook_z``), ``start_at_layer`` /
``stop_at_layer``, and ``TransformerLensKeyValueCache`` including the frozen mode: a prompt's prefix can be
run once into a cache and many variants of the final position evaluated on top of it.

The rest of the toolkit intervenes at the *final* position of a prompt, so ``query_prompt`` builds prompts
that end with a query ``x`` (``k`` demonstrations then the query: ``2k + 1`` positions) and
``predict_query`` reads the prediction there.

The context length is ``n_ctx = 4 * n_points + 2``: prompts of up to twice the trained length (plus a query)
fit, so that behaviour past the trained length can be studied. Position-embedding rows past ``2 * n_points``
never receive gradient in training and stay at their random initialisation.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.utilities import USE_DEFAULT_VALUE

from interp.regression.functions import get_function_class

__all__ = ["RegressionConfig", "RegressionTransformer", "interleave", "query_prompt"]


@dataclass
class RegressionConfig:
    """Architecture of an in-context regression transformer (and which function class it is for).

    ``n_points`` is the *trained* prompt length in (x, y) pairs; ``n_ctx`` defaults to ``4 * n_points + 2``
    positions so prompts up to twice as long, plus a query, fit. ``d_mlp`` defaults to ``4 * d_model``.
    """

    n_dims: int = 5
    n_points: int = 20
    n_layers: int = 3
    n_heads: int = 4
    d_model: int = 64
    d_mlp: Optional[int] = None
    act_fn: str = "gelu"
    function_class: str = "linear"
    n_ctx: Optional[int] = None
    init_seed: Optional[int] = 0

    def __post_init__(self) -> None:
        get_function_class(self.function_class)  # validates the name
        if self.d_mlp is None:
            self.d_mlp = 4 * self.d_model
        if self.n_ctx is None:
            self.n_ctx = 4 * self.n_points + 2
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.n_ctx < 2 * self.n_points:
            raise ValueError(f"n_ctx={self.n_ctx} cannot hold the trained length 2*n_points={2 * self.n_points}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RegressionConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown RegressionConfig keys {sorted(unknown)}; known keys: {sorted(known)}")
        return cls(**d)

    def to_hooked_config(self, device: Union[str, torch.device] = "cpu") -> HookedTransformerConfig:
        return HookedTransformerConfig(
            n_layers=self.n_layers,
            d_model=self.d_model,
            n_ctx=self.n_ctx,
            d_head=self.d_model // self.n_heads,
            n_heads=self.n_heads,
            d_mlp=self.d_mlp,
            act_fn=self.act_fn,
            d_vocab=1,
            d_vocab_out=1,
            normalization_type="LN",
            positional_embedding_type="standard",
            attn_only=False,
            original_architecture="RegressionTransformer",
            default_prepend_bos=False,
            device=str(device),
            seed=None,  # RegressionTransformer seeds its init itself, without touching global RNGs
            init_weights=True,
        )


def interleave(
    xs: Float[Tensor, "batch k d"], ys: Float[Tensor, "batch k"]
) -> Float[Tensor, "batch two_k d"]:
    """``x_1, [y_1, 0..0], x_2, [y_2, 0..0], ...``: ``2k`` input vectors per prompt."""
    if xs.ndim != 3 or ys.ndim != 2 or xs.shape[:2] != ys.shape:
        raise ValueError(f"expected xs [batch, k, d] and ys [batch, k], got {tuple(xs.shape)} and {tuple(ys.shape)}")
    b, k, d = xs.shape
    ys_padded = torch.zeros_like(xs)
    ys_padded[..., 0] = ys
    return torch.stack([xs, ys_padded], dim=2).reshape(b, 2 * k, d)


def query_prompt(
    xs: Float[Tensor, "batch k d"], ys: Float[Tensor, "batch k"], x_query: Float[Tensor, "batch d"]
) -> Float[Tensor, "batch two_k_plus_1 d"]:
    """``k`` demonstrations then a query ``x``: ``2k + 1`` positions, the query last (``k = 0`` allowed)."""
    if x_query.ndim != 2 or x_query.shape[0] != xs.shape[0] or x_query.shape[1] != xs.shape[2]:
        raise ValueError(f"expected x_query [batch={xs.shape[0]}, d={xs.shape[2]}], got {tuple(x_query.shape)}")
    return torch.cat([interleave(xs, ys), x_query[:, None, :]], dim=1)


class RegressionTransformer(HookedTransformer):
    """``HookedTransformer`` with a linear read-in of ``[batch, pos, n_dims]`` floats and a scalar read-out.

    ``model(inputs)`` -> ``[batch, pos, 1]``; ``model.predict(xs, ys)`` -> ``[batch, k]`` (prediction of each
    ``y_i`` from ``x_i`` and the points before it); ``model.predict_query(xs, ys, x_query)`` -> ``[batch]``.
    """

    def __init__(self, config: RegressionConfig, device: Union[str, torch.device] = "cpu"):
        # The initialisation is seeded by ``init_seed`` inside a forked RNG, so building (or loading) a model
        # leaves the global torch / numpy / random state alone (TransformerLens's own ``seed`` would reseed
        # all three).
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # "HookedTransformer is deprecated" (the project pins transformer-lens < 4)
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*HookedTransformer is deprecated.*")
            if config.init_seed is not None:
                torch.manual_seed(config.init_seed)
            super().__init__(config.to_hooked_config(device), move_to_device=True)
            self.regression_config = config
            self.read_in = nn.Linear(config.n_dims, config.d_model, device=device)  # default (kaiming-uniform) init
        self.setup()  # re-index modules and hook points now that read_in exists

    # ----------------------------------------------------------------------------------------------
    # input handling
    # ----------------------------------------------------------------------------------------------

    @property
    def n_dims(self) -> int:
        return self.regression_config.n_dims

    def check_inputs(self, inputs: Tensor, pos_offset: int = 0) -> Float[Tensor, "batch pos d"]:
        """Validate a float ``[batch, pos, n_dims]`` tensor (a ``[pos, n_dims]`` one gets a batch axis)."""
        if not isinstance(inputs, Tensor):
            raise TypeError(
                f"RegressionTransformer takes a float tensor [batch, pos, n_dims={self.n_dims}], "
                f"got {type(inputs).__name__}"
            )
        if not inputs.is_floating_point():
            raise TypeError(
                f"RegressionTransformer takes float inputs [batch, pos, n_dims={self.n_dims}] (not tokens), "
                f"got dtype {inputs.dtype}"
            )
        if inputs.ndim == 2:
            inputs = inputs[None]
        if inputs.ndim != 3 or inputs.shape[-1] != self.n_dims:
            raise ValueError(
                f"expected inputs of shape [batch, pos, n_dims={self.n_dims}], got {tuple(inputs.shape)}; "
                f"this model was trained on {self.n_dims}-dimensional x"
            )
        if pos_offset + inputs.shape[1] > self.cfg.n_ctx:
            raise ValueError(
                f"prompt too long: {pos_offset + inputs.shape[1]} positions (cache {pos_offset} + new "
                f"{inputs.shape[1]}) > n_ctx={self.cfg.n_ctx} (= {(self.cfg.n_ctx - 1) // 2} points plus a query)"
            )
        return inputs

    def input_to_embed(
        self,
        input: Float[Tensor, "batch pos d"],
        prepend_bos: Optional[bool] = USE_DEFAULT_VALUE,
        padding_side: Optional[str] = USE_DEFAULT_VALUE,
        attention_mask: Optional[Tensor] = None,
        past_kv_cache=None,
    ) -> Tuple[Float[Tensor, "batch pos d_model"], None, None, Optional[Tensor]]:
        """Read-in + position embedding. Same contract (and cache handling) as the parent's token version."""
        batch = input.shape[0] if isinstance(input, Tensor) and input.ndim == 3 else 1
        pos_offset = self.get_pos_offset(past_kv_cache, batch)
        inputs = self.check_inputs(input, pos_offset)
        batch, pos, _ = inputs.shape
        device = self.read_in.weight.device
        inputs = inputs.to(device=device, dtype=self.read_in.weight.dtype)

        if attention_mask is not None or past_kv_cache is not None:
            # As in the parent: an explicit mask is needed with a cache (the cache stores the mask of the
            # positions it holds, and a frozen cache returns prefix mask + this mask without storing it).
            if attention_mask is None:
                attention_mask = torch.ones(batch, pos, dtype=torch.long, device=device)
            if attention_mask.shape != (batch, pos):
                raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != inputs' [batch, pos] {(batch, pos)}")
            attention_mask = attention_mask.to(device)
            if past_kv_cache is not None:
                attention_mask = past_kv_cache.append_attention_mask(attention_mask)

        embed = self.hook_embed(self.read_in(inputs))  # [batch, pos, d_model]
        residual = self.get_residual(
            embed, pos_offset, attention_mask=attention_mask, return_shortformer_pos_embed=False,
            # placeholder ids (only their shape is read), made here on the model's device: TransformerLens
            # would otherwise build them on torch's default device
            tokens=torch.ones((batch, pos), dtype=torch.int, device=device),
        )  # [batch, pos, d_model], W_pos added through hook_pos_embed
        return residual, None, None, attention_mask

    # ----------------------------------------------------------------------------------------------
    # predictions
    # ----------------------------------------------------------------------------------------------

    def predict(self, xs: Float[Tensor, "batch k d"], ys: Float[Tensor, "batch k"]) -> Float[Tensor, "batch k"]:
        """Prediction of every ``y_i`` read at the position of ``x_i`` (uses points ``< i`` and ``x_i``)."""
        out = self(interleave(xs, ys))  # [batch, 2k, 1]
        return out[:, ::2, 0]

    def predict_query(
        self, xs: Float[Tensor, "batch k d"], ys: Float[Tensor, "batch k"], x_query: Float[Tensor, "batch d"]
    ) -> Float[Tensor, "batch"]:
        """Prediction at the final position of ``query_prompt(xs, ys, x_query)``."""
        return self(query_prompt(xs, ys, x_query))[:, -1, 0]
