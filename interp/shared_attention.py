"""Shared-prefix attention: many final-token variants of a prompt attend to ONE stored copy of its prefix.

Context. The frozen-prefix engine (`interp.engine`) runs only the final token of a prompt, many times
over: one row per intervention (a head patch, a steering vector, a candidate layer...). Through
TransformerLens's key-value cache every row carries its own copy of the prefix keys and values, and each
layer of each run concatenates the final token's key onto that copy, rotates *all* the keys again
(rotary models), and repeats them to every query head (grouped-query models). For a causal-indirect-effect
sweep that is 270 copies of the same prefix per prompt and layer, which is where the time went.

What is computed here. For ``P`` prompts with ``V`` variants each (batch row ``r`` is variant ``r % V`` of
prompt ``r // V``) and a prefix of ``Tp`` positions, each layer stores

    keys   [P, kv_head, d_head, Tp]   rotary already applied (a prefix key's rotation depends only on
                                       its own position), transposed for ``q @ k``
    values [P, kv_head, Tp, d_head]

The final token's query ``q [P·V, 1, head, d_head]`` is regrouped to ``[P, kv_head, V·group, d_head]``
(``group`` query heads share a kv head: TransformerLens's ``repeat_interleave`` maps query head ``h`` to
kv head ``h // group``), so ONE batched matmul scores every variant and every query head against the
prefix: no per-variant copy, no grouped-query repeat. The final token's own key and value (different in
every variant) are one more column, scored row by row. The softmax runs over ``[prefix | self]``
together; the pattern is split again for ``z = pattern_prefix @ values + pattern_self · v_self``.

Same hooks, same values. The forward replaces ``AbstractAttention.forward`` for the final token only,
and fires the hook points TransformerLens's attention fires under a frozen cache, with the same shapes:
``hook_q / hook_k / hook_v`` (the final token), ``hook_rot_q`` ``[batch, 1, head, d_head]``,
``hook_rot_k`` ``[batch, Tp + 1, kv_head, d_head]`` (materialised per row *only when something is
hooked there*), ``hook_attn_scores`` / ``hook_pattern`` ``[batch, head, 1, Tp + 1]`` (masked positions
are ``-inf`` / ``0`` as in TransformerLens), ``hook_z``, ``hook_result`` when enabled. A hook that
returns a new tensor is honoured as in TransformerLens (scores and pattern are always materialised:
they are ``d_head`` times smaller than the keys).

Which models. `unsupported_reason` names what this forward does not reproduce (Qwen-1's log-n scaling
and dynamic-NTK rotary, whose tables depend on the context length; 4-bit weights; T5 relative biases;
bidirectional attention; ungrouped grouped-query attention); the engine then keeps TransformerLens's
cache path for that model. Everything else (absolute / shortformer / rotary / ALiBi positions,
grouped-query attention, sliding and alternating local windows, attention softcaps, QK norms (per head
and OLMo's full-width), clipped QKV, attention sinks, split QKV inputs, parallel attention + MLP blocks,
post-norm blocks) goes through here.
"""

from __future__ import annotations

import types
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.components import Attention, GroupedQueryAttention
from transformer_lens.components.abstract_attention import AbstractAttention
from transformer_lens.utilities.activation_functions import apply_softcap

_OLMO = ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")


def unsupported_reason(model) -> str | None:
    """Why ``model`` cannot use shared-prefix attention (``None``: it can)."""
    cfg = model.cfg
    blocks = getattr(model, "blocks", None)
    if blocks is None or len(blocks) == 0:
        return "the model has no transformer blocks"
    for block in blocks:
        attn = getattr(block, "attn", None)
        if type(attn) not in (Attention, GroupedQueryAttention):
            return f"attention class {type(attn).__name__} is not TransformerLens's Attention / GroupedQueryAttention"
        if getattr(attn, "_attention_dir_override", None) not in (None, "causal"):
            return "bidirectional attention"
    checks = [
        (cfg.attention_dir != "causal", "bidirectional attention"),
        (cfg.load_in_4bit, "4-bit weights"),
        (cfg.use_logn_attn, "Qwen-1 log-n attention scaling"),
        (cfg.use_dynamic_ntk_rope, "dynamic-NTK rotary (the table depends on the context length)"),
        (cfg.positional_embedding_type not in ("standard", "shortformer", "rotary", "alibi"),
         f"positional embedding {cfg.positional_embedding_type!r}"),
        (cfg.n_key_value_heads is not None and cfg.ungroup_grouped_query_attention,
         "ungrouped grouped-query attention"),
    ]  # fmt: skip
    for failed, reason in checks:
        if failed:
            return reason
    return None


# ------------------------------------------------------------------------------------------------
# Storage: one copy of each prompt's prefix keys / values, and the variant structure of the rows
# ------------------------------------------------------------------------------------------------


@dataclass
class SharedKV:
    """Every layer's prefix keys/values, stored once per prompt; rows = prompts x variants."""

    keys: list[Float[Tensor, "prompt kv_head d_head prefix"]]
    values: list[Float[Tensor, "prompt kv_head prefix d_head"]]
    mask: Int[Tensor, "prompt prefix"]  # 1 = token, 0 = left padding
    variants: int = 1

    @property
    def n_prompts(self) -> int:
        return self.mask.shape[0]

    @property
    def prefix_length(self) -> int:
        return self.mask.shape[1]

    def __len__(self) -> int:
        return self.n_prompts * self.variants

    def nbytes(self) -> int:
        return sum(t.nelement() * t.element_size() for t in [*self.keys, *self.values])

    @classmethod
    def from_tl_cache(cls, cache, rotated_keys: Sequence[Tensor] | None = None) -> "SharedKV":
        """From a TransformerLens cache (``[batch, pos, kv_head, d_head]`` entries); ``rotated_keys``
        replace the cache's un-rotated keys for rotary models (the rotation is applied once here)."""
        keys = rotated_keys if rotated_keys is not None else [e.past_keys for e in cache.entries]
        return cls(
            keys=[k.permute(0, 2, 3, 1).contiguous() for k in keys],
            values=[e.past_values.permute(0, 2, 1, 3).contiguous() for e in cache.entries],
            mask=cache.previous_attention_mask.clone(),
        )

    # -- row structure ---------------------------------------------------------------------------
    def with_variants(self, n: int) -> "SharedKV":
        """Every row seen as ``n`` consecutive variants (no copy of the prefix)."""
        return SharedKV(self.keys, self.values, self.mask, self.variants * n)

    def select(self, rows: Int[Tensor, " rows"]) -> "SharedKV":
        """Rows ``rows`` (one variant each). Rows of one prompt that stay consecutive keep sharing:
        ``select`` of all variants of some prompts keeps ``variants``; otherwise prompts are gathered."""
        rows = rows.to(self.mask.device)
        v = self.variants
        if v > 1 and len(rows) % v == 0:
            blocks = rows.view(-1, v)
            if bool((blocks % v == torch.arange(v, device=rows.device)).all()) and bool(
                (blocks // v == blocks[:, :1] // v).all()
            ):
                return self._gather(blocks[:, 0] // v, v)
        return self._gather(rows // v, 1)

    def _gather(self, prompts: Tensor, variants: int) -> "SharedKV":
        if len(prompts) == self.n_prompts and bool((prompts == torch.arange(len(prompts), device=prompts.device)).all()):
            return SharedKV(self.keys, self.values, self.mask, variants)
        return SharedKV(
            [k.index_select(0, prompts) for k in self.keys],
            [x.index_select(0, prompts) for x in self.values],
            self.mask.index_select(0, prompts),
            variants,
        )

    def one_variant(self) -> "SharedKV":
        """The same rows with ``variants == 1`` (materialises one prefix copy per row)."""
        if self.variants == 1:
            return self
        return self._gather(torch.arange(self.n_prompts, device=self.mask.device).repeat_interleave(self.variants), 1)

    @classmethod
    def concat(cls, parts: Sequence["SharedKV"]) -> "SharedKV":
        """Stack along prompts, left-padding shorter prefixes (padding keys/values are zero and masked)."""
        if len({p.variants for p in parts}) > 1:
            parts = [p.one_variant() for p in parts]
        longest = max(p.prefix_length for p in parts)

        def pad(t: Tensor, length: int, dim: int) -> Tensor:
            missing = longest - length
            if missing == 0:
                return t
            shape = list(t.shape)
            shape[dim] = missing
            return torch.cat([t.new_zeros(shape), t], dim=dim)

        n_layers = len(parts[0].keys)
        return cls(
            keys=[torch.cat([pad(p.keys[l], p.prefix_length, 3) for p in parts]) for l in range(n_layers)],
            values=[torch.cat([pad(p.values[l], p.prefix_length, 2) for p in parts]) for l in range(n_layers)],
            mask=torch.cat([pad(p.mask, p.prefix_length, 1) for p in parts]),
            variants=parts[0].variants,
        )

    def row_mask(self) -> Int[Tensor, "row prefix"]:
        return self.mask.repeat_interleave(self.variants, dim=0) if self.variants > 1 else self.mask

    def run_cache(self, cfg) -> "SharedCache":
        return SharedCache(self, cfg)


class SharedCache:
    """What ``HookedTransformer.forward`` needs of a key-value cache, over shared storage.

    ``forward`` reads the cached length from ``past_kv_cache[0].past_keys.shape`` and extends the padding
    mask with ``append_attention_mask``; each block hands its entry to the attention, where
    `shared_attention` recognises it. (There is deliberately no ``past_keys`` tensor to misuse: only
    its shape.)
    """

    def __init__(self, kv: SharedKV, cfg) -> None:
        self.kv = kv
        self.frozen = True
        self.previous_attention_mask = kv.row_mask()
        n_kv = cfg.n_key_value_heads if cfg.n_key_value_heads is not None else cfg.n_heads
        shape = torch.Size((len(kv), kv.prefix_length, n_kv, cfg.d_head))
        self._allowed: dict = {}
        self.entries = [SharedLayerEntry(self, layer, shape) for layer in range(len(kv.keys))]

    def __getitem__(self, layer: int) -> "SharedLayerEntry":
        return self.entries[layer]

    def append_attention_mask(self, attention_mask: Int[Tensor, "row new"]) -> Int[Tensor, "row pos"]:
        attention_mask = attention_mask.to(self.previous_attention_mask.device)
        return torch.cat([self.previous_attention_mask, attention_mask], dim=-1)

    def allowed(self, attn: AbstractAttention, device) -> Tensor:
        """Which keys the final query may attend to: ``[prompt, 1, 1, Tp + 1]`` (padding and local
        windows masked; computed once per run and attention type, not per layer and call)."""
        key = (attn.attn_type, device)
        if key not in self._allowed:
            tp = self.kv.prefix_length
            ok = self.kv.mask.to(device).bool()
            if attn.attn_type == "local":
                # TransformerLens's window is in (padded) index space: key > query - window, query = Tp
                ok = ok & (torch.arange(tp, device=device) > tp - attn.cfg.window_size)
            ok = torch.cat([ok, torch.ones_like(ok[:, :1])], dim=1)
            self._allowed[key] = ok[:, None, None, :]
        return self._allowed[key]


class SharedLayerEntry:
    """One layer's view of a `SharedCache` (the object TransformerLens passes as ``past_kv_cache_entry``)."""

    def __init__(self, cache: SharedCache, layer: int, shape: torch.Size) -> None:
        # weak: cache -> entries -> cache would be a reference cycle, and the cache holds a minibatch's
        # gathered keys and values; cycles are freed only when Python's collector runs (it counts objects,
        # not bytes), so a training loop piled up GBs of dead minibatches (a steering fit grew to 18 GB)
        self._cache = weakref.ref(cache)
        self.layer = layer
        self.frozen = True
        self.past_keys = types.SimpleNamespace(shape=shape)  # read by HookedTransformer.get_pos_offset

    @property
    def cache(self) -> SharedCache:
        cache = self._cache()
        if cache is None:
            raise RuntimeError("this layer entry outlived its SharedCache: keep the cache while running the model")
        return cache

    @property
    def keys(self) -> Tensor:
        return self.cache.kv.keys[self.layer]

    @property
    def values(self) -> Tensor:
        return self.cache.kv.values[self.layer]


# ------------------------------------------------------------------------------------------------
# The attention forward for the final token
# ------------------------------------------------------------------------------------------------

_weights: "weakref.WeakKeyDictionary[AbstractAttention, dict]" = weakref.WeakKeyDictionary()


def _hooked(hook_point) -> bool:
    return bool(hook_point._forward_hooks or hook_point._backward_hooks or hook_point._forward_pre_hooks)


def _flat(attn: AbstractAttention, name: str, pattern: str) -> Tensor:
    """``rearrange(getattr(attn, name), pattern)`` as TransformerLens computes it on every call, kept
    between calls for frozen weights (re-made when the parameter is modified in place)."""
    w = getattr(attn, name)
    if w.requires_grad and torch.is_grad_enabled():
        return einops.rearrange(w, pattern).contiguous()  # differentiable, as in TransformerLens
    store = _weights.setdefault(attn, {})
    key = (w.data_ptr(), w._version, w.device, w.dtype, tuple(w.shape))
    hit = store.get(name)
    if hit is None or hit[0] != key:
        with torch.no_grad():
            hit = (key, einops.rearrange(w, pattern).contiguous())
        store[name] = hit
    return hit[1]


def _qkv(attn: AbstractAttention, query_input: Tensor, key_input: Tensor, value_input: Tensor):
    """``attn.calculate_qkv_matrices`` (same hooks, same arithmetic), without re-laying out the
    projection weights on every call."""
    cfg = attn.cfg
    if cfg.use_split_qkv_input or cfg.use_attn_in or query_input.ndim != 3:
        return attn.calculate_qkv_matrices(query_input, key_input, value_input)
    gqa = isinstance(attn, GroupedQueryAttention)
    names = ("W_Q", "_W_K", "_W_V") if gqa else ("W_Q", "W_K", "W_V")
    biases = ("b_Q", "_b_K", "_b_V") if gqa else ("b_Q", "b_K", "b_V")
    out = []
    for x, w_name, b_name, hook in zip(
        (query_input, key_input, value_input), names, biases, (attn.hook_q, attn.hook_k, attn.hook_v)
    ):
        w = _flat(attn, w_name, "head_index d_model d_head -> (head_index d_head) d_model")
        b = getattr(attn, b_name)
        y = F.linear(x, w, b.reshape(-1)).reshape(x.shape[0], x.shape[1], b.shape[0], b.shape[1])
        out.append(hook(y))
    q, k, v = out
    if cfg.use_qk_norm:
        q = attn._apply_qk_norm(q, attn.q_norm)
        k = attn._apply_qk_norm(k, attn.k_norm)
    return q, k, v


def _olmo_norms(attn: AbstractAttention, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """OLMo-family Q/K norms over the full projected vectors (before the head split), as in TL."""
    q = einops.rearrange(
        attn.q_norm(einops.rearrange(q, "batch pos head_index d_head -> batch pos (head_index d_head)")),
        "batch kv_pos (head_index d_head) -> batch kv_pos head_index d_head", head_index=q.shape[2],
    )  # fmt: skip
    k = einops.rearrange(
        attn.k_norm(einops.rearrange(k, "batch pos head_index d_head -> batch pos (head_index d_head)")),
        "batch kv_pos (head_index d_head) -> batch kv_pos head_index d_head", head_index=k.shape[2],
    )  # fmt: skip
    return q, k


def shared_attention(
    attn: AbstractAttention,
    query_input: Float[Tensor, "row 1 d_model"],
    key_input: Float[Tensor, "row 1 d_model"],
    value_input: Float[Tensor, "row 1 d_model"],
    past_kv_cache_entry=None,
    additive_attention_mask=None,
    attention_mask: Int[Tensor, "row pos"] | None = None,
    position_bias=None,
) -> Float[Tensor, "row 1 d_model"]:
    """Drop-in for ``AbstractAttention.forward`` when ``past_kv_cache_entry`` is a `SharedLayerEntry`
    (any other call goes to TransformerLens's own forward)."""
    if not isinstance(past_kv_cache_entry, SharedLayerEntry) or query_input.shape[1] != 1:
        return type(attn).forward(
            attn, query_input, key_input, value_input, past_kv_cache_entry=past_kv_cache_entry,
            additive_attention_mask=additive_attention_mask, attention_mask=attention_mask,
            position_bias=position_bias,
        )  # fmt: skip
    cfg = attn.cfg
    cache = past_kv_cache_entry.cache
    keys, values = past_kv_cache_entry.keys, past_kv_cache_entry.values  # [P, Hkv, d, Tp], [P, Hkv, Tp, d]
    n_prompts, n_kv, d_head, tp = keys.shape
    rows, n_var = cache.kv.n_prompts * cache.kv.variants, cache.kv.variants
    n_heads = cfg.n_heads
    group = n_heads // n_kv

    q, k, v = _qkv(attn, query_input, key_input, value_input)  # [rows, 1, H|Hkv, d]
    if cfg.original_architecture in _OLMO:
        q, k = _olmo_norms(attn, q, k)
    if cfg.clip_qkv is not None:
        q, k, v = (t.clamp(min=-cfg.clip_qkv, max=cfg.clip_qkv) for t in (q, k, v))
    if cfg.positional_embedding_type == "rotary":
        q = attn.hook_rot_q(attn.apply_rotary(q, tp, attention_mask))
        k = attn.apply_rotary(k, tp, attention_mask)  # the final key's rotation: its own position
        if _hooked(attn.hook_rot_k):
            # TransformerLens hooks every key of the row here: materialise them (rows x prefix)
            full = torch.cat([_per_row(keys.permute(0, 3, 1, 2), n_var).to(k.dtype), k], dim=1)
            full = attn.hook_rot_k(full)
            keys = full[:, :tp].permute(0, 2, 3, 1)
            values = _per_row(values, n_var)
            k = full[:, tp:]
            n_prompts, n_var = rows, 1

    # scores against the shared prefix: one batched matmul over [P, Hkv] with V·group query rows
    qg = q.reshape(n_prompts, n_var, n_kv, group, d_head).transpose(1, 2).reshape(n_prompts, n_kv, n_var * group, d_head)
    pre = torch.matmul(qg, keys.to(q.dtype)) / attn.attn_scale  # [P, Hkv, V·G, Tp]
    pre = pre.view(n_prompts, n_kv, n_var, group, tp).transpose(1, 2)  # [P, V, Hkv, G, Tp]
    q5 = q.reshape(n_prompts, n_var, n_kv, group, d_head)
    own = (q5 * k.reshape(n_prompts, n_var, n_kv, 1, d_head)).sum(-1, keepdim=True) / attn.attn_scale
    scores = torch.cat([pre, own], dim=-1).view(rows, n_heads, 1, tp + 1)
    scores = apply_softcap(scores, cfg.attn_scores_soft_cap)
    if cfg.positional_embedding_type == "alibi":
        if attn.alibi is None or tp + 1 > attn.alibi.size(-1):
            attn.alibi = AbstractAttention.create_alibi_bias(cfg.n_heads, tp + 1, cfg.device)
        scores = scores + attn.alibi[:, -1:, : tp + 1]
    allowed = cache.allowed(attn, scores.device)  # [P, 1, 1, T]
    ignore = attn.IGNORE.to(scores.device)
    scores = torch.where(allowed, scores.view(cache.kv.n_prompts, -1, n_heads, tp + 1), ignore)
    scores = scores.view(rows, n_heads, 1, tp + 1)
    if additive_attention_mask is not None:
        scores = scores + additive_attention_mask
    scores = attn.hook_attn_scores(scores)
    if cfg.use_attention_sinks:
        # as in TransformerLens: a learned per-head sink logit joins the softmax, then is dropped
        sink = attn.sinks.reshape(1, -1, 1, 1).expand(scores.shape[0], -1, scores.shape[-2], -1).to(scores.dtype)
        combined = torch.cat([scores, sink], dim=-1)
        combined = combined - combined.max(dim=-1, keepdim=True).values
        pattern = F.softmax(combined, dim=-1)[..., :-1]
    else:
        pattern = F.softmax(scores, dim=-1)
    pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern)
    pattern = attn.hook_pattern(pattern)  # [rows, H, 1, T]
    pattern = pattern.to(device=values.device, dtype=v.dtype)

    p5 = pattern.reshape(n_prompts, n_var, n_kv, group, tp + 1)
    pg = p5[..., :tp].transpose(1, 2).reshape(n_prompts, n_kv, n_var * group, tp)
    z = torch.matmul(pg, values.to(v.dtype)).view(n_prompts, n_kv, n_var, group, d_head).transpose(1, 2)
    z = z + p5[..., tp:] * v.reshape(n_prompts, n_var, n_kv, 1, d_head)
    z = attn.hook_z(z.reshape(rows, 1, n_heads, d_head))
    return _output(attn, z)


def _per_row(t: Tensor, variants: int) -> Tensor:
    return t.repeat_interleave(variants, dim=0) if variants > 1 else t


def _output(attn: AbstractAttention, z: Float[Tensor, "row 1 head d_head"]) -> Float[Tensor, "row 1 d_model"]:
    """TransformerLens's output projection (``use_attn_result`` included), weights laid out once."""
    cfg = attn.cfg
    if not cfg.use_attn_result:
        w = _flat(attn, "W_O", "head_index d_head d_model -> d_model (head_index d_head)")
        b_O = attn.b_O
        if w.device != z.device:
            w, b_O = w.to(z.device), b_O.to(z.device)
        if z.dtype != w.dtype:
            z = z.to(w.dtype)
        z = z.reshape(z.shape[0], z.shape[1], cfg.d_head * cfg.n_heads)
        if z.device.type == "mps":  # TransformerLens's workaround for pytorch#161640
            return torch.matmul(z, w.T) + b_O
        return F.linear(z, w, b_O)
    w = einops.rearrange(attn.W_O, "head_index d_head d_model -> 1 1 head_index d_head d_model").to(z.device)
    z = einops.rearrange(z.to(w.dtype), "batch pos head_index d_head -> batch pos head_index d_head 1")
    result = attn.hook_result((z * w).sum(-2))
    return einops.reduce(result, "batch position index model->batch position model", "sum") + attn.b_O


@contextmanager
def installed(model) -> Iterator[None]:
    """While active, every block's attention routes calls carrying a `SharedLayerEntry` to
    `shared_attention` (other calls are untouched); always removed on exit."""
    attns = [block.attn for block in model.blocks if "forward" not in vars(block.attn)]
    for attn in attns:
        attn.forward = types.MethodType(shared_attention, attn)
    try:
        yield
    finally:
        for attn in attns:
            del attn.forward


__all__ = [
    "SharedKV",
    "SharedCache",
    "SharedLayerEntry",
    "shared_attention",
    "installed",
    "unsupported_reason",
]
