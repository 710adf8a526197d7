"""The last-token engine: run a batch's prefix once, freeze its keys and values, then run many final-token
variants over it.

Why this is exact. Every intervention in this toolkit (LTV / FV addition, TV replacement, head patching
for causal indirect effects, layer sweeps) edits the *final position only*. Under causal attention the
earlier positions never see the final one, so their keys and values are the same in every variant. We
compute them once with TransformerLens's ``TransformerLensKeyValueCache``, ``freeze()`` it (so running
the final token reads the cache without appending to it), and each variant then costs a one-token
forward pass, and a one-token backward pass when training LTV weights, instead of a whole prompt.
Left padding is handled by TransformerLens itself: the cache keeps the prefix's attention mask, and
rotary / absolute positions are computed from it.

    prefix = FrozenPrefix.from_batch(model, batch.tokens, batch.attention_mask)
    clean = prefix.run()                                          # [batch, d_vocab], final position
    steered = prefix.run(add_vectors(model, {9: fv}))             # same hooks as on a full prompt
    many = prefix.repeat(270).run(patch_heads(model, layers, heads, z_mean))   # 270 variants per prompt

`final_logits` is the reference path (the full prompt recomputed every time); the tests prove the two
agree to float32 precision, with and without each kind of intervention, and for LTV gradients.

Shared prefixes. On every model `interp.shared_attention` supports (nearly all decoder families), the
prefix is stored once per *prompt*, not per row: ``expand`` / ``repeat`` only record how many variants
each prompt has, and the final token's attention scores all variants against the one stored copy with
a broadcasting matmul (the same hook points fire with the same values; see that module). Other models,
or ``INTERP_SHARED_PREFIX=0`` in the environment when the prefix is built, keep TransformerLens's own
cache path, where each row holds (a view of) its prefix.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from interp import shared_attention
from interp.interventions import Hook
from interp.shared_attention import SharedKV

#: environment switch: ``0`` keeps TransformerLens's per-row cache path for prefixes built afterwards
SHARED_PREFIX_ENV = "INTERP_SHARED_PREFIX"


def shared_prefix_enabled(model: HookedTransformer) -> bool:
    """Will a prefix built now for ``model`` use shared-prefix attention?"""
    if os.environ.get(SHARED_PREFIX_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return shared_attention.unsupported_reason(model) is None


class UnsupportedModelError(ValueError):
    """A model configuration the engine cannot run exactly; the message names the feature."""


def refuse_unsupported(model: HookedTransformer, key_length: int | None = None) -> None:
    """Raise `UnsupportedModelError` for configurations whose last-token runs would not be exact.

    ``key_length``: positions the final token attends over (cached prefix + new, padding included).
    """
    cfg = model.cfg
    if getattr(cfg, "n_devices", 1) > 1:
        raise UnsupportedModelError(
            f"n_devices={cfg.n_devices}: the frozen-prefix engine keeps one key-value cache on one device; "
            "load the model on a single device (n_devices=1), e.g. a GPU with enough memory or a smaller dtype"
        )
    train_length = getattr(cfg, "train_seq_length", None) or cfg.n_ctx
    if key_length is not None and getattr(cfg, "use_dynamic_ntk_rope", False) and key_length > train_length:
        # Qwen-1's dynamic NTK rotary widens the rotary base with the *key length* (padding included), so
        # a left-padded row and a cached prefix are rotated differently from the prompt run alone.
        raise UnsupportedModelError(
            f"dynamic-NTK rotary (use_dynamic_ntk_rope) at {key_length} positions, past the training length "
            f"{train_length}: the rotary base then depends on the key length, which left padding and the frozen "
            "prefix change; use prompts within the training length (fewer shots)"
        )


def _final_position_output(model: HookedTransformer, inputs: Tensor, **kwargs) -> Float[Tensor, "batch d_vocab"]:
    """Run all blocks, then ln_final + unembed (+ the final-logit soft-cap, Gemma 2) on the last position only
    (49k-way logits are costly)."""
    from transformer_lens.utilities.activation_functions import apply_softcap

    cache = kwargs.get("past_kv_cache")
    refuse_unsupported(model, inputs.shape[1] + (0 if cache is None else cache.previous_attention_mask.shape[1]))
    resid = model(inputs, stop_at_layer=model.cfg.n_layers, **kwargs)[:, -1:]
    if model.cfg.normalization_type is not None:
        resid = model.ln_final(resid)
    return apply_softcap(model.unembed(resid), model.cfg.output_logits_soft_cap)[:, -1]


def final_logits(
    model: HookedTransformer,
    inputs: Tensor,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    hooks: Sequence[Hook] = (),
) -> Float[Tensor, "batch d_vocab"]:
    """Reference path: the whole prompt through the model, output at the final position."""
    with model.hooks(fwd_hooks=list(hooks)):
        return _final_position_output(model, inputs, attention_mask=attention_mask)


@dataclass
class FrozenPrefix:
    """Keys/values of every position but the last, frozen; the final inputs kept to run variants."""

    model: HookedTransformer
    cache: TransformerLensKeyValueCache | None  # TransformerLens path: one (view of a) prefix per row
    final_inputs: Tensor  # [batch, 1] token ids, or [batch, 1, d_in] for continuous-input models
    shared: SharedKV | None = None  # shared path: one prefix per prompt, rows = prompts x variants

    @classmethod
    @torch.no_grad()
    def from_batch(
        cls,
        model: HookedTransformer,
        inputs: Tensor,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        hooks: Sequence[Hook] = (),
        shared: bool | None = None,
    ) -> "FrozenPrefix":
        """Run ``inputs[:, :-1]`` into a fresh cache and freeze it.

        ``hooks`` apply to the prefix run (e.g. a clean-run cache for patching experiments); they do not
        apply to later variants. ``shared=False`` keeps TransformerLens's cache path (needed by `run_from`
        over several positions); ``None`` uses shared-prefix attention where the model supports it.
        """
        if inputs.shape[1] < 2:
            raise ValueError("a prompt needs at least 2 positions to split into prefix + final token")
        batch = inputs.shape[0]
        if attention_mask is None:
            attention_mask = torch.ones(inputs.shape[:2], dtype=torch.long, device=inputs.device)
        if not bool(attention_mask[:, -1].all()):
            raise ValueError(
                "the final position is padding in some rows: pad on the left so every prompt ends at position -1"
            )
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, batch)
        shared = shared_prefix_enabled(model) if shared is None else bool(shared)
        rotated: dict[int, Tensor] = {}
        capture = []
        if shared and model.cfg.positional_embedding_type == "rotary":
            # the keys as attention scores them (after any user hook), so the rotation is done once
            def keep(k, hook):
                rotated[hook.layer()] = k.detach()

            capture = [(f"blocks.{l}.attn.hook_rot_k", keep) for l in range(model.cfg.n_layers)]
        with model.hooks(fwd_hooks=[*hooks, *capture]):
            model(inputs[:, :-1], attention_mask=attention_mask[:, :-1], past_kv_cache=cache, return_type=None)
        cache.freeze()
        if shared:
            keys = [rotated[l] for l in range(model.cfg.n_layers)] if capture else None
            kv = SharedKV.from_tl_cache(cache, keys)
            return cls(model=model, cache=None, final_inputs=inputs[:, -1:], shared=kv)
        return cls(model=model, cache=cache, final_inputs=inputs[:, -1:])

    def __len__(self) -> int:
        return self.final_inputs.shape[0]

    @property
    def prefix_length(self) -> int:
        if self.shared is not None:
            return self.shared.prefix_length
        return self.cache.previous_attention_mask.shape[1]

    @property
    def prefix_mask(self) -> Int[Tensor, "batch prefix"]:
        """The prefix's padding mask, one row per batch row (1 = token, 0 = left padding)."""
        if self.shared is not None:
            return self.shared.row_mask()
        return self.cache.previous_attention_mask

    def _run_cache(self):
        """The cache object handed to TransformerLens, and the context its attention needs."""
        if self.shared is not None:
            return self.shared.run_cache(self.model.cfg), shared_attention.installed(self.model)
        return self.cache, nullcontext()

    def run(self, hooks: Sequence[Hook] = ()) -> Float[Tensor, "batch d_vocab"]:
        """Model output at the final position with ``hooks`` active (gradients flow if enabled)."""
        ones = torch.ones((len(self), 1), dtype=torch.long, device=self.final_inputs.device)
        cache, attention = self._run_cache()
        with attention, self.model.hooks(fwd_hooks=list(hooks)):
            return _final_position_output(self.model, self.final_inputs, attention_mask=ones, past_kv_cache=cache)

    def run_from(
        self,
        layer: int,
        resid_pre: Float[Tensor, "batch d_model"] | Float[Tensor, "batch suffix d_model"],
        hooks: Sequence[Hook] = (),
        attention_mask: Int[Tensor, "batch suffix"] | None = None,
    ) -> Float[Tensor, "batch d_vocab"]:
        """Output at the final position when ``blocks.{layer}.hook_resid_pre`` of the final token is
        ``resid_pre``: runs only blocks ``layer..L-1`` (an intervention at layer l leaves the final
        token's earlier layers unchanged, so their result can be computed once and reused).

        ``resid_pre`` of shape ``[batch, s, d_model]`` re-runs the last ``s`` positions (``T-s .. T-1``, the
        final token last) from ``layer``, over the frozen keys / values of the positions before them (a
        patch at position ``T-s`` leaves every earlier position unchanged). ``attention_mask`` is then the
        padding mask of those ``s`` positions (default: no padding). Needs TransformerLens's cache path
        (``from_batch(..., shared=False)``) when ``s > 1``: shared-prefix attention runs one query position.
        """
        if resid_pre.ndim == 2:
            resid_pre = resid_pre[:, None, :]
        s = resid_pre.shape[1]
        kept = self.prefix_length + 1 - s  # frozen positions the re-run positions attend to
        if not 0 <= kept <= self.prefix_length:
            raise ValueError(
                f"run_from re-runs at most the whole prompt ({self.prefix_length + 1} positions), got {s}"
            )
        suffix_mask = (
            torch.ones(resid_pre.shape[:2], dtype=torch.long, device=resid_pre.device)
            if attention_mask is None
            else attention_mask.to(resid_pre.device)
        )
        if suffix_mask.shape != resid_pre.shape[:2]:
            raise ValueError(f"attention_mask must be [batch, {s}], got {list(suffix_mask.shape)}")
        if s == 1:
            cache, attention = self._run_cache()
        elif self.shared is not None:
            raise ValueError(
                "run_from over several positions needs TransformerLens's cache path: build the prefix with "
                "FrozenPrefix.from_batch(..., shared=False)"
            )
        else:
            cache, attention = self._truncated_cache(kept), nullcontext()
        mask = torch.cat([self.prefix_mask[:, :kept].to(suffix_mask.device), suffix_mask], dim=1)
        extra = {}
        if self.model.cfg.positional_embedding_type == "shortformer":
            # Shortformer positions enter every layer's queries and keys, not the residual stream: a run that
            # starts at a block must be handed the re-run positions' embedding (as `forward` computes it).
            extra["shortformer_pos_embed"] = self.model.hook_pos_embed(
                self.model.pos_embed(suffix_mask, kept, mask)
            )
        with attention, self.model.hooks(fwd_hooks=list(hooks)):
            return _final_position_output(
                self.model, resid_pre, start_at_layer=layer, attention_mask=mask, past_kv_cache=cache, **extra
            )

    def _truncated_cache(self, length: int) -> TransformerLensKeyValueCache | None:
        """The first ``length`` prefix positions as a frozen TransformerLens cache (views; None if empty)."""
        if length == 0:
            return None
        return TransformerLensKeyValueCache(
            entries=[
                TransformerLensKeyValueCacheEntry(e.past_keys[:, :length], e.past_values[:, :length], frozen=True)
                for e in self.cache.entries
            ],
            previous_attention_mask=self.cache.previous_attention_mask[:, :length],
            frozen=True,
        )

    @torch.no_grad()
    def final_resid_pre(
        self, hooks: Sequence[Hook] = ()
    ) -> tuple[Float[Tensor, "batch layer d_model"], Float[Tensor, "batch d_vocab"]]:
        """``hook_resid_pre`` of every layer at the final token (for `run_from`), and the output."""
        store: dict[int, Tensor] = {}

        def save(act, hook):
            store[hook.layer()] = act[:, -1].clone()

        n_layers = self.model.cfg.n_layers
        out = self.run([*hooks, *[(f"blocks.{l}.hook_resid_pre", save) for l in range(n_layers)]])
        return torch.stack([store[l] for l in range(n_layers)], dim=1), out

    def expand(self, n: int) -> "FrozenPrefix":
        """A one-prompt prefix seen as ``n`` identical rows, without copying the prefix."""
        if len(self) != 1:
            raise ValueError("expand() needs a one-prompt prefix; use repeat() for several prompts")
        if self.shared is not None:
            return self._with(self.shared.with_variants(n), self.final_inputs.expand(n, *self.final_inputs.shape[1:]))
        return self._derive(lambda t: t.expand(n, *t.shape[1:]))

    def select(self, idx: Sequence[int] | Tensor) -> "FrozenPrefix":
        """A sub-batch (rows ``idx``), sharing nothing mutable with this one."""
        idx_t = torch.as_tensor(idx, dtype=torch.long, device=self.final_inputs.device)
        if self.shared is not None:
            return self._with(self.shared.select(idx_t), self.final_inputs[idx_t])
        return self._derive(lambda t: t[idx_t])

    def repeat(self, n: int) -> "FrozenPrefix":
        """Each row repeated ``n`` times consecutively: row ``i * n + j`` is variant ``j`` of prompt ``i``
        (on the shared path without copying the prefix)."""
        if self.shared is not None:
            return self._with(self.shared.with_variants(n), self.final_inputs.repeat_interleave(n, dim=0))
        return self._derive(lambda t: t.repeat_interleave(n, dim=0))

    def _with(self, shared: SharedKV, final_inputs: Tensor) -> "FrozenPrefix":
        return FrozenPrefix(model=self.model, cache=None, final_inputs=final_inputs, shared=shared)

    def _derive(self, fn) -> "FrozenPrefix":
        cache = TransformerLensKeyValueCache(
            entries=[
                TransformerLensKeyValueCacheEntry(fn(e.past_keys), fn(e.past_values), frozen=True)
                for e in self.cache.entries
            ],
            previous_attention_mask=fn(self.cache.previous_attention_mask),
            frozen=True,
        )
        return FrozenPrefix(model=self.model, cache=cache, final_inputs=fn(self.final_inputs))

    @classmethod
    def concat(cls, prefixes: Sequence["FrozenPrefix"]) -> "FrozenPrefix":
        """Stack prefixes of possibly different lengths into one batch (left-padding the shorter ones)."""
        if len(prefixes) == 1:
            return prefixes[0]
        kinds = {p.shared is not None for p in prefixes}
        if len(kinds) > 1:
            raise ValueError(
                "cannot concatenate shared-prefix and TransformerLens-cache prefixes (built with different "
                f"{SHARED_PREFIX_ENV} settings); rebuild them under one setting"
            )
        final_inputs = torch.cat([p.final_inputs for p in prefixes])
        if kinds == {True}:
            shared = SharedKV.concat([p.shared for p in prefixes])
            return cls(prefixes[0].model, None, final_inputs, shared=shared)
        longest = max(p.prefix_length for p in prefixes)

        def pad(t: Tensor, length: int) -> Tensor:
            missing = longest - length
            if missing == 0:
                return t
            shape = (t.shape[0], missing, *t.shape[2:])
            return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim=1)

        entries = []
        for layer in range(len(prefixes[0].cache.entries)):
            keys = torch.cat([pad(p.cache[layer].past_keys, p.prefix_length) for p in prefixes])
            values = torch.cat([pad(p.cache[layer].past_values, p.prefix_length) for p in prefixes])
            entries.append(TransformerLensKeyValueCacheEntry(keys, values, frozen=True))
        mask = torch.cat([pad(p.cache.previous_attention_mask, p.prefix_length) for p in prefixes])
        cache = TransformerLensKeyValueCache(entries=entries, previous_attention_mask=mask, frozen=True)
        return cls(prefixes[0].model, cache, final_inputs)

    def nbytes(self) -> int:
        """Bytes held by the prefix keys and values (views count once per storage on the shared path)."""
        if self.shared is not None:
            return self.shared.nbytes()
        return sum(e.past_keys.nelement() * e.past_keys.element_size() * 2 for e in self.cache.entries)



class RaggedPrefix:
    """The rows of several frozen prefixes of very different lengths, kept unpadded.

    ``FrozenPrefix.concat`` left-pads every row to the longest prefix. Over a whole task suite — 10-shot
    prompts of ~100 tokens beside ag_news's ~800 — that multiplies a multi-task LTV's pools by ~6 (the 41-task
    fit grew past 24 GB). Here each part keeps its own length; ``select`` builds a padded batch of just the
    rows asked for (a minibatch, or one ``run_prefix`` chunk), in the order asked for.
    """

    def __init__(self, parts: Sequence[FrozenPrefix]) -> None:
        if not parts:
            raise ValueError("a ragged prefix needs at least one part")
        self.parts = list(parts)
        self.model = self.parts[0].model
        # row bookkeeping stays on the CPU whatever the model's device (`select` moves the rows it hands out)
        cpu = torch.device("cpu")
        sizes = torch.tensor([len(p) for p in self.parts], device=cpu)
        self._part = torch.repeat_interleave(torch.arange(len(self.parts), device=cpu), sizes)
        self._row = torch.cat([torch.arange(int(n), device=cpu) for n in sizes])
        self.final_inputs = torch.cat([p.final_inputs for p in self.parts])

    def __len__(self) -> int:
        return len(self._part)

    def select(self, idx: Sequence[int] | Tensor) -> FrozenPrefix:
        idx_t = idx.long().cpu() if isinstance(idx, Tensor) else torch.as_tensor(idx, dtype=torch.long, device="cpu")
        parts, rows = self._part[idx_t], self._row[idx_t]
        pieces, order = [], []
        for part in parts.unique(sorted=True).tolist():
            where = (parts == part).nonzero().squeeze(-1)
            pieces.append(self.parts[part].select(rows[where].to(self.parts[part].final_inputs.device)))
            order.append(where)
        batch = FrozenPrefix.concat(pieces)
        # concat grouped the rows by part; put them back in the order they were asked for
        in_order = torch.arange(len(idx_t), device=idx_t.device)
        position = torch.empty_like(in_order)
        position[torch.cat(order)] = in_order
        return batch if len(pieces) == 1 and bool((position == in_order).all()) else batch.select(position)

    def run(self, hooks: Sequence[Hook] = ()) -> Float[Tensor, "batch d_vocab"]:
        return self.select(torch.arange(len(self), device="cpu")).run(hooks)

    def nbytes(self) -> int:
        return sum(p.nbytes() for p in self.parts)

def build_prefixes(
    model: HookedTransformer,
    inputs: Tensor,
    attention_mask: Tensor | None,
    chunk_size: int = 32,
    chunk_tokens: int = 8192,
) -> FrozenPrefix:
    """`FrozenPrefix.from_batch` in chunks (bounded activation memory), concatenated.

    A chunk holds at most ``chunk_size`` rows and at most ``chunk_tokens`` padded positions: the prefix run's
    attention scores grow with rows x length², so 32 rows of a ~750-token 10-shot ag_news prompt took GBs
    beside the cache itself, where 32 rows of a 40-token prompt take MBs. Rows are independent, so the
    chunking changes no result.
    """
    rows_per_chunk = max(1, min(chunk_size, chunk_tokens // max(1, inputs.shape[1])))
    parts = []
    for start in range(0, inputs.shape[0], rows_per_chunk):
        sl = slice(start, start + rows_per_chunk)
        mask = attention_mask[sl] if attention_mask is not None else None
        inp, mask = _trim(inputs[sl], mask)
        parts.append(FrozenPrefix.from_batch(model, inp, mask))
    return FrozenPrefix.concat(parts)


def _trim(inputs: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Drop all-padding leading columns of a chunk (saves prefix compute on short rows)."""
    if mask is None:
        return inputs, None
    used = (mask.sum(0) > 0).nonzero()
    start = int(used[0]) if len(used) else 0
    return inputs[:, start:], mask[:, start:]
