"""The patching engine behind `interp.patching` (read that package's docstring first): prompt pairs and
metrics, the one generic `patch` function (exact patching on the frozen-prefix engine, or attribution
patching), its named specialisations, results, `agreement` and the heatmap."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.engine import FrozenPrefix, final_logits
from interp.prompts import PromptBatch, default_bos, tokenize_left_padded

__all__ = [
    "COMPONENTS",
    "Agreement",
    "AnswerProb",
    "Component",
    "LogitDiff",
    "PatchingError",
    "PatchingResult",
    "PromptPairs",
    "agreement",
    "attribution_patch",
    "make_pairs",
    "patch",
    "patch_attn_out",
    "patch_heads",
    "patch_heads_all_pos",
    "patch_heads_by_pos",
    "patch_mlp_out",
    "patch_resid_mid",
    "patch_resid_post",
    "patch_resid_pre",
    "plot_patching",
    "problem_pairs",
]  # fmt: skip

Position = Literal["final", "all", "all_at_once"] | int
MetricFn = Callable[[Float[Tensor, "pair d_vocab"]], Tensor]


class PatchingError(ValueError):
    """Patching was asked for something that cannot be computed as asked; the message names the fix."""


# ------------------------------------------------------------------------------------------------
# Components
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """A kind of activation: its hook (``{l}`` = layer) and what indexes one instance of it per layer."""

    name: str
    hook: str
    per_head: Literal["head", "kv_head"] | None = None
    pattern: bool = False  # [batch, head, query_pos, key_pos] (other hooks are [batch, pos, ...])

    def hook_name(self, layer: int) -> str:
        return self.hook.format(l=layer)


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in [
        Component("z", "blocks.{l}.attn.hook_z", "head"),
        Component("q", "blocks.{l}.attn.hook_q", "head"),
        Component("k", "blocks.{l}.attn.hook_k", "kv_head"),
        Component("v", "blocks.{l}.attn.hook_v", "kv_head"),
        Component("pattern", "blocks.{l}.attn.hook_pattern", "head", pattern=True),
        Component("attn_out", "blocks.{l}.hook_attn_out"),
        Component("mlp_out", "blocks.{l}.hook_mlp_out"),
        Component("resid_pre", "blocks.{l}.hook_resid_pre"),
        Component("resid_mid", "blocks.{l}.hook_resid_mid"),
        Component("resid_post", "blocks.{l}.hook_resid_post"),
    ]
}
ALIASES = {"heads": "z", "head": "z", "result": "z", "head_out": "z", "attn_head_out": "z"}


def get_component(model: HookedTransformer, name: str | Component) -> Component:
    """The `Component` called ``name`` (or an alias), checked against ``model``'s blocks."""
    if isinstance(name, Component):
        comp = name
    else:
        key = ALIASES.get(name, name)
        if key not in COMPONENTS:
            raise PatchingError(
                f"unknown component {name!r}; choose one of {sorted(COMPONENTS)} (or 'heads' for 'z')"
            )
        comp = COMPONENTS[key]
    cfg = model.cfg
    if comp.name == "mlp_out" and cfg.attn_only:
        raise PatchingError("this model is attention-only: it has no MLP to patch; use 'attn_out' or 'z'")
    if comp.name == "resid_mid" and (cfg.parallel_attn_mlp or cfg.attn_only):
        raise PatchingError(
            "this model has no hook_resid_mid: its blocks are "
            + ("parallel attention+MLP" if cfg.parallel_attn_mlp else "attention-only")
            + ", so there is no residual stream between attention and MLP; use 'resid_pre' or 'resid_post'"
        )
    return comp


def _n_heads(model: HookedTransformer, comp: Component) -> int:
    if comp.per_head == "kv_head" and model.cfg.n_key_value_heads is not None:
        return model.cfg.n_key_value_heads
    return model.cfg.n_heads


# ------------------------------------------------------------------------------------------------
# Prompt pairs and metrics
# ------------------------------------------------------------------------------------------------


@dataclass
class PromptPairs:
    """Clean and corrupted prompts, row ``i`` of each a pair; each side left-padded (final token at -1).

    ``answers`` / ``wrong``: one token id per pair (for the built-in metrics). ``texts``: the prompts as
    strings, where known.
    """

    clean: Int[Tensor, "pair pos"]
    clean_mask: Int[Tensor, "pair pos"]
    corrupted: Int[Tensor, "pair pos_c"]
    corrupted_mask: Int[Tensor, "pair pos_c"]
    answers: Int[Tensor, " pair"] | None = None
    wrong: Int[Tensor, " pair"] | None = None
    texts: list[tuple[str, str]] | None = None
    queries: list[str] | None = None

    def __post_init__(self) -> None:
        if self.clean.shape[0] != self.corrupted.shape[0]:
            raise PatchingError(
                f"{self.clean.shape[0]} clean prompts but {self.corrupted.shape[0]} corrupted ones: "
                "give one corrupted prompt per clean prompt"
            )
        for name in ("clean", "corrupted"):
            tokens, mask = getattr(self, name), getattr(self, f"{name}_mask")
            if tokens.shape != mask.shape:
                raise PatchingError(f"{name} tokens {list(tokens.shape)} and mask {list(mask.shape)} differ")
            if not bool(mask[:, -1].all()):
                raise PatchingError(f"some {name} prompts end in padding: pad on the left")
        for name in ("answers", "wrong"):
            ids = getattr(self, name)
            if ids is not None and ids.shape != (len(self),):
                raise PatchingError(f"{name} must hold one token id per pair ({len(self)}), got {list(ids.shape)}")

    def __len__(self) -> int:
        return self.clean.shape[0]

    def lengths(self, which: str = "corrupted") -> list[int]:
        return getattr(self, f"{which}_mask").sum(1).tolist()

    @property
    def aligned(self) -> bool:
        """Do clean and corrupted prompts have equal lengths pair by pair (so positions line up)?"""
        return self.clean.shape[1] == self.corrupted.shape[1] and bool(
            (self.clean_mask == self.corrupted_mask).all()
        )

    def token_lists(self, which: str = "corrupted") -> list[list[int]]:
        """Each prompt's tokens without padding."""
        tokens, mask = getattr(self, which), getattr(self, f"{which}_mask")
        return [row[m.bool()].tolist() for row, m in zip(tokens.cpu(), mask.cpu())]

    def to(self, device) -> PromptPairs:
        move = lambda t: None if t is None else t.to(device)
        return PromptPairs(move(self.clean), move(self.clean_mask), move(self.corrupted),
                           move(self.corrupted_mask), move(self.answers), move(self.wrong), self.texts,
                           self.queries)  # fmt: skip

    def select(self, idx: Sequence[int]) -> PromptPairs:
        """Some pairs (left padding trimmed to the longest kept row)."""
        idx = list(idx)

        def trim(t: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
            t, m = t[idx], m[idx]
            start = int((m.sum(0) > 0).nonzero()[0])
            return t[:, start:], m[:, start:]

        pick = lambda t: None if t is None else t[idx]
        return PromptPairs(*trim(self.clean, self.clean_mask), *trim(self.corrupted, self.corrupted_mask),
                           pick(self.answers), pick(self.wrong),
                           None if self.texts is None else [self.texts[i] for i in idx],
                           None if self.queries is None else [self.queries[i] for i in idx])  # fmt: skip


def _token_ids(model: HookedTransformer, spec, n: int, what: str) -> Tensor | None:
    """One token id per pair from a string / id / list of them / tensor."""
    if spec is None:
        return None
    if isinstance(spec, Tensor):
        ids = spec.reshape(-1).to(torch.long)
    else:
        items = [spec] if isinstance(spec, (str, int, np.integer)) else list(spec)
        ids_list = []
        for item in items:
            if isinstance(item, str):
                if model.tokenizer is None:
                    raise PatchingError(f"the model has no tokenizer: give {what} as token ids")
                toks = model.tokenizer(item, add_special_tokens=False)["input_ids"]
                if len(toks) != 1:
                    raise PatchingError(
                        f"{what} {item!r} is {len(toks)} tokens ({toks}); give a string that is one token "
                        "(often with its leading space, e.g. ' Mary') or a token id"
                    )
                ids_list.append(toks[0])
            else:
                ids_list.append(int(item))
        ids = torch.tensor(ids_list, dtype=torch.long, device="cpu")  # moved with the pairs to the model's device
    if len(ids) == 1 and n > 1:
        ids = ids.expand(n)
    if len(ids) != n:
        raise PatchingError(f"{len(ids)} {what} token(s) for {n} prompt pairs: give one, or one per pair")
    if ((ids < 0) | (ids >= model.cfg.d_vocab)).any():
        raise PatchingError(f"{what} token ids must be in 0..{model.cfg.d_vocab - 1}, got {ids.tolist()}")
    return ids.clone()


def _as_tokens(model: HookedTransformer, prompts, what: str) -> tuple[Tensor, Tensor, list[str] | None]:
    if isinstance(prompts, PromptBatch):
        return prompts.tokens, prompts.attention_mask, list(prompts.texts)
    if isinstance(prompts, str):
        prompts = [prompts]
    if isinstance(prompts, (list, tuple)) and prompts and all(isinstance(p, str) for p in prompts):
        if model.tokenizer is None:
            raise PatchingError(f"the model has no tokenizer: give the {what} prompts as token ids")
        tokens, mask = tokenize_left_padded(model.tokenizer, prompts, bos=default_bos(model), n_ctx=model.cfg.n_ctx)
        return tokens, mask, list(prompts)
    if isinstance(prompts, tuple) and len(prompts) == 2 and all(isinstance(t, Tensor) for t in prompts):
        return prompts[0], prompts[1], None  # (tokens, attention_mask)
    if isinstance(prompts, Tensor):
        tokens = prompts[None] if prompts.ndim == 1 else prompts
        if tokens.ndim != 2 or tokens.dtype not in (torch.long, torch.int, torch.int32, torch.int64):
            raise PatchingError(f"{what} token ids must be a [pos] or [batch, pos] integer tensor, got "
                                f"{tokens.dtype} {list(tokens.shape)}")  # fmt: skip
        return tokens.long(), torch.ones_like(tokens, dtype=torch.long), None
    raise PatchingError(
        f"cannot read the {what} prompts from {type(prompts).__name__}: give a string, a list of strings, "
        "a token tensor, a (tokens, attention_mask) tuple or a PromptBatch"
    )


def make_pairs(model: HookedTransformer, clean, corrupted=None, answer=None, wrong=None) -> PromptPairs:
    """`PromptPairs` from strings, lists of strings, token tensors ``[pos]`` / ``[batch, pos]`` (no
    padding), ``(tokens, attention_mask)`` tuples (left-padded) or `PromptBatch` es; ``clean`` may also be
    a `PromptPairs` (returned, with ``answer`` / ``wrong`` filled in if given). Strings are tokenised as the
    toolkit does everywhere (`interp.prompts.default_bos`); ``answer`` / ``wrong`` are one-token strings or
    token ids, one for all pairs or one per pair (a `PromptBatch` 's targets are the default answers)."""
    device = model.W_E.device
    if isinstance(clean, PromptPairs):
        pairs = clean
        if corrupted is not None:
            raise PatchingError("give either a PromptPairs or clean and corrupted prompts, not both")
    else:
        if corrupted is None:
            raise PatchingError("corrupted prompts are missing: patch(model, clean, corrupted, ...)")
        ct, cm, ctexts = _as_tokens(model, clean, "clean")
        xt, xm, xtexts = _as_tokens(model, corrupted, "corrupted")
        default_answer = clean.target_ids if isinstance(clean, PromptBatch) else None
        texts = list(zip(ctexts, xtexts)) if ctexts is not None and xtexts is not None else None
        pairs = PromptPairs(ct, cm, xt, xm, answers=default_answer, texts=texts)
    n = len(pairs)
    answers = _token_ids(model, answer, n, "answer") if answer is not None else pairs.answers
    wrongs = _token_ids(model, wrong, n, "wrong answer") if wrong is not None else pairs.wrong
    out = PromptPairs(pairs.clean, pairs.clean_mask, pairs.corrupted, pairs.corrupted_mask, answers, wrongs,
                      pairs.texts, pairs.queries)  # fmt: skip
    return out.to(device)


def problem_pairs(problem, n: int, split: str = "test", seed: int = 0, corruption: str = "shuffled") -> PromptPairs:
    """``n`` (clean k-shot, corrupted) prompt pairs of a `TextProblem` sharing demonstrations and query
    (``shuffled``: the same demonstrations with their labels deranged), answers = the first target token.

    A problem's batches of two settings share queries but not demonstrations (the derangement draws from
    the same random stream), so pairs are built one query at a time with one seed per pair; queries whose
    target cannot be scored are skipped, as everywhere in the toolkit.
    """
    from interp.prompts import build_prompts

    if n < 1:
        raise PatchingError(f"n must be >= 1, got {n}")
    if corruption == "shuffled" and problem.shots < 2:
        raise PatchingError("patching needs shots >= 2 (a shuffled-label twin needs two labels to derange)")
    model, task = problem.model, problem.task
    pool = task.split(split)
    order = list(range(len(pool)))
    np.random.default_rng(problem.seed * 1000 + seed).shuffle(order)
    clean_texts, corrupt_texts, targets, queries = [], [], [], []
    for i in order:
        if len(targets) == n:
            break
        kw = dict(shots=problem.shots, template=problem.template, queries=[pool[i]], seed=seed * 100_003 + i,
                  bos=default_bos(model), n_ctx=model.cfg.n_ctx)  # fmt: skip
        try:
            clean = build_prompts(task, model.tokenizer, setting="icl", **kw)
            corrupted = build_prompts(task, model.tokenizer, setting=corruption, **kw)
        except ValueError:  # an untokenisable target: skipped, like the library does
            continue
        clean_texts.append(clean.texts[0])
        corrupt_texts.append(corrupted.texts[0])
        targets.append(int(clean.target_ids[0]))
        queries.append(pool[i].input)
    if not targets:
        raise PatchingError(f"no usable queries in split {split!r} of task {task.name!r}")
    bos = default_bos(model)
    ct, cm = tokenize_left_padded(model.tokenizer, clean_texts, bos=bos, n_ctx=model.cfg.n_ctx)
    xt, xm = tokenize_left_padded(model.tokenizer, corrupt_texts, bos=bos, n_ctx=model.cfg.n_ctx)
    pairs = PromptPairs(ct, cm, xt, xm, answers=torch.tensor(targets, device=ct.device), texts=list(zip(clean_texts, corrupt_texts)),
                        queries=queries)  # fmt: skip
    return pairs.to(model.W_E.device)


@dataclass(frozen=True)
class LogitDiff:
    """``logit[answer] - logit[wrong]`` at the final position, per pair."""

    answers: Int[Tensor, " pair"]
    wrong: Int[Tensor, " pair"]
    name: str = "logit_diff"

    def __call__(self, logits: Float[Tensor, "pair d_vocab"]) -> Float[Tensor, " pair"]:
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, self.answers.to(logits.device)] - logits[rows, self.wrong.to(logits.device)]


@dataclass(frozen=True)
class AnswerProb:
    """``P(answer)`` at the final position (softmax over the vocabulary), per pair."""

    answers: Int[Tensor, " pair"]
    name: str = "answer_prob"

    def __call__(self, logits: Float[Tensor, "pair d_vocab"]) -> Float[Tensor, " pair"]:
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits.float().softmax(-1)[rows, self.answers.to(logits.device)]


def _resolve_metric(metric, pairs: PromptPairs) -> tuple[MetricFn, str]:
    if metric is None:
        metric = "logit_diff" if pairs.wrong is not None else "answer_prob"
    if isinstance(metric, str):
        if metric not in ("logit_diff", "answer_prob"):
            raise PatchingError(f"unknown metric {metric!r}: use 'logit_diff', 'answer_prob' or a callable")
        if pairs.answers is None or (metric == "logit_diff" and pairs.wrong is None):
            need = "answer= and wrong=" if metric == "logit_diff" else "answer="
            raise PatchingError(f"the {metric} metric needs {need} (the tokens it compares)")
        return (LogitDiff(pairs.answers, pairs.wrong) if metric == "logit_diff" else AnswerProb(pairs.answers)), metric
    if not callable(metric):
        raise PatchingError(f"metric must be 'logit_diff', 'answer_prob' or a callable, got {metric!r}")
    return metric, getattr(metric, "name", getattr(metric, "__name__", "custom"))


def _evaluate(metric: MetricFn, logits: Float[Tensor, "pair d_vocab"]) -> tuple[Tensor, Tensor | None]:
    """(mean over pairs, per-pair values or None when the metric returns one number)."""
    out = metric(logits.float())
    if not isinstance(out, Tensor):
        out = torch.tensor(float(out), device=logits.device)
    if out.ndim == 0:
        return out, None
    if out.shape != (logits.shape[0],):
        raise PatchingError(
            f"the metric returned shape {list(out.shape)}; it must return one number, or one per pair "
            f"([{logits.shape[0]}]), from final-position logits [pair, d_vocab]"
        )
    return out.mean(), out


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------


@dataclass
class PatchingResult:
    """One patching run: a value of the metric per patched component instance, and the baselines.

    ``layers`` / ``heads`` / ``positions`` / ``values`` run in parallel, one entry per patch (``head`` -1
    or ``position`` -1 where they do not apply). ``positions`` are columns of the (left-padded) corrupted
    tokens, counted from 0. ``per_pair`` holds each pair's value when the metric returns one per pair.
    """

    component: str
    position: Position
    method: str
    direction: str
    metric: str
    clean: float
    corrupted: float
    layers: Int[Tensor, " patch"]
    heads: Int[Tensor, " patch"]
    positions: Int[Tensor, " patch"]
    values: Float[Tensor, " patch"]
    n_layers: int
    n_heads: int
    n_positions: int
    tokens_clean: list[list[int]] = field(default_factory=list)
    tokens_corrupted: list[list[int]] = field(default_factory=list)
    per_pair: Float[Tensor, "patch pair"] | None = None
    clean_per_pair: list[float] | None = None
    corrupted_per_pair: list[float] | None = None
    model_name: str | None = None
    token_labels: list[str] | None = None

    @property
    def baseline(self) -> float:
        """The unpatched run's metric (corrupted when denoising, clean when noising)."""
        return self.corrupted if self.direction == "denoising" else self.clean

    @property
    def effects(self) -> Float[Tensor, " patch"]:
        """``value - baseline``: what each patch changed."""
        return self.values - self.baseline

    @property
    def normalized(self) -> Float[Tensor, " patch"]:
        """``(value - corrupted) / (clean - corrupted)`` (NaN when clean == corrupted)."""
        gap = self.clean - self.corrupted
        if gap == 0:
            return torch.full_like(self.values, float("nan"))
        return (self.values - self.corrupted) / gap

    def __len__(self) -> int:
        return len(self.values)

    def to_frame(self) -> pd.DataFrame:
        """One row per patch: component, layer, head, position, value, normalized (None where n/a)."""
        heads = [None if h < 0 else int(h) for h in self.heads.tolist()]
        positions = [None if p < 0 else int(p) for p in self.positions.tolist()]
        return pd.DataFrame({
            "component": self.component, "layer": self.layers.tolist(),
            "head": pd.array(heads, dtype="Int64"), "position": pd.array(positions, dtype="Int64"),
            "value": self.values.tolist(), "normalized": self.normalized.tolist(),
        })  # fmt: skip

    def to_dict(self) -> dict:
        """A JSON-ready document (the schema of ``interp patch --json``)."""
        one = len(self.tokens_clean) == 1

        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)  # NaN -> null (JSON has no NaN)

        return {
            "model": self.model_name,
            "component": self.component,
            "position": self.position,
            "method": self.method,
            "direction": self.direction,
            "metric": self.metric,
            "clean": float(self.clean),
            "corrupted": float(self.corrupted),
            "tokens_clean": self.tokens_clean[0] if one else self.tokens_clean,
            "tokens_corrupted": self.tokens_corrupted[0] if one else self.tokens_corrupted,
            "rows": [
                {"layer": int(l), "head": None if h < 0 else int(h), "position": None if p < 0 else int(p),
                 "value": float(v), "normalized": num(n)}
                for l, h, p, v, n in zip(self.layers.tolist(), self.heads.tolist(), self.positions.tolist(),
                                         self.values.tolist(), self.normalized.tolist())
            ],
        }  # fmt: skip

    def grid(self, normalized: bool = False) -> Tensor:
        """The values as ``[layer (, position) (, head)]`` in TransformerLens's axis order (a position axis
        for ``position="all"`` only; NaN where a patch was not computed)."""
        vals = self.normalized if normalized else self.values
        shape = [self.n_layers]
        index = [self.layers]
        if self.position == "all":
            shape.append(self.n_positions)
            index.append(self.positions)
        if bool((self.heads >= 0).any()):
            shape.append(self.n_heads)
            index.append(self.heads)
        out = torch.full(shape, float("nan"), dtype=vals.dtype, device=vals.device)
        out[tuple(index)] = vals
        return out

    def __repr__(self) -> str:
        return (f"PatchingResult({self.method} {self.direction} patching of {self.component} at position "
                f"{self.position!r}: {len(self)} patches, {self.metric} clean {self.clean:.4g}, corrupted "
                f"{self.corrupted:.4g})")  # fmt: skip

    def _repr_html_(self) -> str:
        frame = self.to_frame().sort_values("normalized", key=lambda s: -s.abs(), na_position="last").head(10)
        return f"<p>{self.__repr__()}</p><p>largest effects:</p>" + frame.to_html(index=False)


# ------------------------------------------------------------------------------------------------
# The generic patching function
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    """One patch: a component instance (layer, head or -1) at a position (-1: every position at once)."""

    layer: int
    head: int
    position: int


def _positions(position: Position, n_pos: int) -> list[int]:
    if position == "final":
        return [n_pos - 1]
    if position == "all":
        return list(range(n_pos))
    if position == "all_at_once":
        return [-1]
    if isinstance(position, (int, np.integer)) and not isinstance(position, bool):
        p = int(position)
        if not -n_pos <= p < n_pos:
            raise PatchingError(f"position {p} is outside the corrupted prompts' {n_pos} positions (0..{n_pos - 1})")
        return [p % n_pos]
    raise PatchingError(f"position must be 'final', 'all', 'all_at_once' or an index, got {position!r}")


def _check_range(values, n: int, what: str) -> list[int]:
    out = sorted({int(v) % n if -n <= int(v) < n else int(v) for v in values})
    bad = [v for v in out if not 0 <= v < n]
    if bad:
        raise PatchingError(f"{what} {bad} out of range: the model has {n} (0..{n - 1})")
    return out


def _capture(model: HookedTransformer, tokens: Tensor, mask: Tensor, names: Sequence[str], final_only: bool,
             grad: bool = False):
    """Final-position logits of a full forward, and the activations at ``names`` (all positions, or
    the final position only). With ``grad``, each activation gets a zero-valued leaf added, whose gradient
    is the metric's gradient with respect to that activation."""
    store: dict[str, Tensor] = {}
    leaves: dict[str, Tensor] = {}

    def save(act, hook):
        if not final_only:
            kept = act
        elif hook.name.endswith("hook_pattern"):  # [batch, head, query_pos, key_pos]
            kept = act[:, :, -1:]
        else:
            kept = act[:, -1:]
        store[hook.name] = kept.detach().clone()
        if grad:
            leaf = torch.zeros_like(act, requires_grad=True)
            leaves[hook.name] = leaf
            return act + leaf
        return None

    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx:
        logits = final_logits(model, tokens, mask, [(n, save) for n in names])
    return logits, store, leaves


def patch(
    model: HookedTransformer,
    clean,
    corrupted=None,
    metric: str | MetricFn | None = None,
    *,
    component: str | Component = "z",
    position: Position = "final",
    method: Literal["exact", "attribution"] = "exact",
    direction: Literal["denoising", "noising"] = "denoising",
    answer=None,
    wrong=None,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    rows_per_call: int = 256,
) -> PatchingResult:
    """Patch every instance of ``component`` (each head, or each layer) at ``position`` from one run into
    the other, and score each patch with ``metric`` on the final-position logits.

    Args:
        clean, corrupted: prompt pairs (see `make_pairs`: strings, token tensors, ``(tokens, mask)``,
            `PromptBatch` es, or a `PromptPairs` as ``clean`` alone, e.g. from `problem_pairs`).
        metric: ``"logit_diff"`` (needs ``answer`` and ``wrong``), ``"answer_prob"`` (needs ``answer``) or
            a callable from final logits ``[pair, d_vocab]`` (float32) to one value per pair, or one number.
            The reported value is the mean over pairs. Default: logit_diff if ``wrong`` is given.
        component: see `COMPONENTS` (``"z"``/``"heads"``, ``"attn_out"``, ``"mlp_out"``, ``"resid_pre"``,
            ``"resid_mid"``, ``"resid_post"``, ``"q"``, ``"k"``, ``"v"``, ``"pattern"``).
        position: ``"final"``, an index, ``"all"`` (each position on its own) or ``"all_at_once"``.
        method: ``"exact"`` (a run per patch, on the engine) or ``"attribution"`` (the gradient estimate).
        direction: ``"denoising"`` (clean activation into the corrupted run) or ``"noising"`` (the reverse).
        layers, heads: patch only these (default: all).
        rows_per_call: how many patched rows one engine call runs (memory vs per-call overhead).
    """
    if method not in ("exact", "attribution"):
        raise PatchingError(f"method must be 'exact' or 'attribution', got {method!r}")
    if direction not in ("denoising", "noising"):
        raise PatchingError(f"direction must be 'denoising' or 'noising', got {direction!r}")
    comp = get_component(model, component)
    pairs = make_pairs(model, clean, corrupted, answer, wrong)
    metric_fn, metric_name = _resolve_metric(metric, pairs)
    n_pos = pairs.corrupted.shape[1]
    wanted = _positions(position, n_pos)
    if (position != "final" or comp.pattern) and not pairs.aligned:
        cl, co = pairs.lengths("clean"), pairs.lengths("corrupted")
        i = next((i for i, (a, b) in enumerate(zip(cl, co)) if a != b), 0)
        raise PatchingError(
            f"clean and corrupted prompts of pair {i} have {cl[i]} and {co[i]} tokens: patching at position "
            f"{position!r}{' (attention patterns)' if comp.pattern else ''} needs prompts of equal length, so "
            "that positions line up; use position='final' (the final tokens line up whatever the lengths), "
            "or make the prompts the same length (e.g. swap words that are one token each)"
        )
    cfg = model.cfg
    n_heads = _n_heads(model, comp)
    layer_list = _check_range(range(cfg.n_layers) if layers is None else layers, cfg.n_layers, "layers")
    if comp.per_head:
        head_list = _check_range(range(n_heads) if heads is None else heads, n_heads, "heads")
    elif heads is not None:
        raise PatchingError(f"component {comp.name!r} has no heads: leave heads=None")
    else:
        head_list = [-1]
    # TransformerLens's order: layer, position, head
    units = [_Unit(l, h, p) for l in layer_list for p in wanted for h in head_list]

    if direction == "denoising":
        base, base_mask, src, src_mask = pairs.corrupted, pairs.corrupted_mask, pairs.clean, pairs.clean_mask
    else:
        base, base_mask, src, src_mask = pairs.clean, pairs.clean_mask, pairs.corrupted, pairs.corrupted_mask
    names = sorted({comp.hook_name(u.layer) for u in units})
    final_only = position == "final"
    with torch.no_grad():
        src_logits, src_acts, _ = _capture(model, src, src_mask, names, final_only)
    src_value, src_pairs = _evaluate(metric_fn, src_logits)

    if method == "exact":
        base_value, base_pairs, values, per_pair = _exact(
            model, comp, units, base, base_mask, src_acts, metric_fn, final_only, rows_per_call
        )
    else:
        base_value, base_pairs, values, per_pair = _attribution(
            model, comp, units, base, base_mask, src_acts, metric_fn, final_only
        )
    clean_v, corrupt_v = (src_value, base_value) if direction == "denoising" else (base_value, src_value)
    clean_p, corrupt_p = (src_pairs, base_pairs) if direction == "denoising" else (base_pairs, src_pairs)
    labels = None
    if model.tokenizer is not None and len(pairs) == 1:
        labels = [model.tokenizer.decode([t]) for t in pairs.token_lists("corrupted")[0]]
    return PatchingResult(
        component=comp.name, position=position, method=method, direction=direction, metric=metric_name,
        clean=float(clean_v), corrupted=float(corrupt_v),
        layers=torch.tensor([u.layer for u in units], device="cpu"), heads=torch.tensor([u.head for u in units], device="cpu"),
        positions=torch.tensor([u.position for u in units], device="cpu"), values=values.detach().float().cpu(),
        n_layers=cfg.n_layers, n_heads=n_heads, n_positions=n_pos,
        tokens_clean=pairs.token_lists("clean"), tokens_corrupted=pairs.token_lists("corrupted"),
        per_pair=None if per_pair is None else per_pair.detach().float().cpu(),
        clean_per_pair=None if clean_p is None else clean_p.tolist(),
        corrupted_per_pair=None if corrupt_p is None else corrupt_p.tolist(),
        model_name=getattr(cfg, "model_name", None), token_labels=labels,
    )  # fmt: skip


def _setter(comp: Component, src: Tensor, rows: Tensor, pair_rows: Tensor, heads: Tensor, src_pos: int | None,
            at_suffix: int | None):
    """A hook writing ``src`` (the source run's activation, [pair, pos, ...] or [pair, head, q, k]) into
    rows ``rows`` of the re-run: at re-run index ``at_suffix`` from source position ``src_pos``, or at
    every position (both None)."""

    def hook(act, hook):
        out = act.clone()  # out of place: keeps autograd and the cached input intact
        value = src.to(device=act.device, dtype=act.dtype)
        if comp.pattern:
            if at_suffix is None:
                out[rows, heads] = value[pair_rows, heads]
            else:
                out[rows, heads, at_suffix] = value[pair_rows, heads, src_pos]
        elif comp.per_head:
            if at_suffix is None:
                out[rows, :, heads] = value[pair_rows, :, heads]
            else:
                out[rows, at_suffix, heads] = value[pair_rows, src_pos, heads]
        elif at_suffix is None:
            out[rows] = value[pair_rows]
        else:
            out[rows, at_suffix] = value[pair_rows, src_pos]
        return out

    return hook


@torch.no_grad()
def _exact(model, comp, units, base, base_mask, src_acts, metric_fn, final_only: bool, rows_per_call: int):
    """Each patch as a row of an engine run from its layer over the base prompt's frozen earlier
    positions; returns (base value, base per pair, values [patch], per pair [patch, pair] or None)."""
    n_pairs = base.shape[0]
    n_layers = model.cfg.n_layers
    if final_only:
        prefix = FrozenPrefix.from_batch(model, base, base_mask)  # shared-prefix attention where supported
        resid_final, base_logits = prefix.final_resid_pre()  # [pair, layer, d_model]
        resid = None
    else:
        # every layer's resid_pre at every position of the base run, and its keys / values once
        prefix = FrozenPrefix.from_batch(model, base, base_mask, shared=False)
        names = [f"blocks.{l}.hook_resid_pre" for l in range(n_layers)]
        base_logits, acts, _ = _capture(model, base, base_mask, names, final_only=False)
        resid = [acts[n] for n in names]
    base_value, base_pairs = _evaluate(metric_fn, base_logits)
    values = torch.empty(len(units), device="cpu")
    per_pair = None if base_pairs is None else torch.empty(len(units), n_pairs, device="cpu")
    index = {u: i for i, u in enumerate(units)}
    by_position: dict[int, list[_Unit]] = {}
    for u in units:
        by_position.setdefault(u.position, []).append(u)
    per_call = max(1, rows_per_call // n_pairs)
    for p, todo in by_position.items():
        start_pos = max(p, 0)  # every position at once re-runs the whole prompt
        todo = sorted(todo, key=lambda u: (u.layer, u.head))
        for c in range(0, len(todo), per_call):
            chunk = todo[c : c + per_call]
            v = len(chunk)
            start = chunk[0].layer
            rows_prefix = prefix.expand(v) if n_pairs == 1 else prefix.repeat(v)
            if final_only:
                inp = resid_final[:, start].repeat_interleave(v, 0)
                mask = None
            else:
                inp = resid[start][:, start_pos:].repeat_interleave(v, 0)
                mask = base_mask[:, start_pos:].repeat_interleave(v, 0)
            hooks = []
            for layer in sorted({u.layer for u in chunk}):
                js = [j for j, u in enumerate(chunk) if u.layer == layer]
                rows = torch.tensor([i * v + j for i in range(n_pairs) for j in js], device=base.device)
                heads = torch.tensor([chunk[j].head for _ in range(n_pairs) for j in js], device=base.device)
                pair_rows = rows // v
                src = src_acts[comp.hook_name(layer)]
                if final_only:  # the source holds its final position only; the re-run is one token
                    src_pos, at = (0, 0) if p >= 0 else (None, None)
                else:
                    src_pos, at = (p, 0) if p >= 0 else (None, None)
                hooks.append((comp.hook_name(layer), _setter(comp, src, rows, pair_rows, heads, src_pos, at)))
            logits = rows_prefix.run_from(start, inp, hooks, attention_mask=mask)
            logits = logits.view(n_pairs, v, -1)
            for j, u in enumerate(chunk):
                value, pairs_v = _evaluate(metric_fn, logits[:, j])
                values[index[u]] = value
                if per_pair is not None:
                    per_pair[index[u]] = pairs_v
    return base_value, base_pairs, values, per_pair


def _attribution(model, comp, units, base, base_mask, src_acts, metric_fn, final_only: bool):
    """``∂metric/∂act · (act_source - act_base)`` for every patch, from one forward and one backward pass
    of the base prompts (a one-token run over a frozen prefix when only the final position is asked)."""
    names = sorted({comp.hook_name(u.layer) for u in units})
    store: dict[str, Tensor] = {}
    leaves: dict[str, Tensor] = {}
    if final_only:
        prefix = FrozenPrefix.from_batch(model, base, base_mask)

        def add_leaf(act, hook):
            store[hook.name] = act.detach().clone()
            leaves[hook.name] = torch.zeros_like(act, requires_grad=True)
            return act + leaves[hook.name]  # adds zero: its gradient is the gradient w.r.t. act

        with torch.enable_grad():
            logits = prefix.run([(n, add_leaf) for n in names])
    else:
        logits, store, leaves = _capture(model, base, base_mask, names, final_only=False, grad=True)
    with torch.enable_grad():
        out = metric_fn(logits.float())
        per_row = isinstance(out, Tensor) and out.ndim == 1
        total = out.sum() if per_row else out
        grads = dict(zip(names, torch.autograd.grad(total, [leaves[n] for n in names], allow_unused=True)))
    base_pairs = out.detach() if per_row else None
    base_value = out.detach().mean() if per_row else torch.as_tensor(out).detach()
    n_pairs = base.shape[0]
    values = torch.empty(len(units), device="cpu")
    per_pair = torch.empty(len(units), n_pairs, device="cpu") if per_row else None
    for i, u in enumerate(units):
        name = comp.hook_name(u.layer)
        g = grads[name]
        g = torch.zeros_like(store[name]) if g is None else g
        diff = src_acts[name].to(g.dtype) - store[name].to(g.dtype)
        prod = (g * diff).float()  # [pair, pos, (head,) feature] or [pair, head, q, k]
        if comp.pattern:
            prod = prod[:, u.head]  # [pair, q, k]
            prod = prod[:, -1 if final_only else u.position] if u.position >= 0 else prod
        else:
            if comp.per_head:
                prod = prod[:, :, u.head]
            if u.position >= 0:
                prod = prod[:, -1 if final_only else u.position]
        contribution = prod.reshape(n_pairs, -1).sum(-1)  # per pair (the gradient of a sum is per row)
        if per_row:
            per_pair[i] = base_pairs.float() + contribution
            values[i] = per_pair[i].mean()
        else:
            values[i] = base_value.float() + contribution.sum()
    return base_value, base_pairs, values, per_pair


# ------------------------------------------------------------------------------------------------
# Named specialisations (as transformer_lens.patching's get_act_patch_*)
# ------------------------------------------------------------------------------------------------

patch_heads = partial(patch, component="z", position="final")
patch_heads.__doc__ = "Every head's output (hook_z) at the final position (the engine's fast path). See `patch`."
patch_heads_by_pos = partial(patch, component="z", position="all")
patch_heads_by_pos.__doc__ = "Every head's output at every position, each on its own ([layer, pos, head]). See `patch`."
patch_heads_all_pos = partial(patch, component="z", position="all_at_once")
patch_heads_all_pos.__doc__ = "Every head's output at all positions together ([layer, head]). See `patch`."
patch_resid_pre = partial(patch, component="resid_pre", position="all")
patch_resid_pre.__doc__ = "The residual stream into each block at each position ([layer, pos]). See `patch`."
patch_resid_mid = partial(patch, component="resid_mid", position="all")
patch_resid_mid.__doc__ = "The residual stream between attention and MLP, by layer and position. See `patch`."
patch_resid_post = partial(patch, component="resid_post", position="all")
patch_resid_post.__doc__ = "The residual stream out of each block, by layer and position. See `patch`."
patch_attn_out = partial(patch, component="attn_out", position="all")
patch_attn_out.__doc__ = "Each attention layer's output at each position ([layer, pos]). See `patch`."
patch_mlp_out = partial(patch, component="mlp_out", position="all")
patch_mlp_out.__doc__ = "Each MLP's output at each position ([layer, pos]). See `patch`."
attribution_patch = partial(patch, method="attribution")
attribution_patch.__doc__ = "Attribution patching (gradient x activation difference) of any component. See `patch`."


# ------------------------------------------------------------------------------------------------
# Exact vs attribution: where can the approximation be trusted?
# ------------------------------------------------------------------------------------------------


@dataclass
class Agreement:
    """How well one patching result (an attribution estimate) tracks another (the exact answer)."""

    spearman: float
    kendall: float
    pearson: float
    top_k_overlap: int
    k: int
    sign_agreement: float  # fraction of the exact top-k patches whose effect the estimate signs right
    n: int
    worst: pd.DataFrame  # the patches where the two differ most (normalized effects)

    def to_dict(self) -> dict:
        return {"spearman": self.spearman, "kendall": self.kendall, "pearson": self.pearson,
                "top_k_overlap": self.top_k_overlap, "k": self.k, "sign_agreement": self.sign_agreement,
                "n": self.n}  # fmt: skip

    def __str__(self) -> str:
        verdict = "good" if self.spearman > 0.7 else "rough" if self.spearman > 0.3 else "poor"
        return (f"attribution vs exact over {self.n} patches: Spearman {self.spearman:+.2f}, Kendall "
                f"{self.kendall:+.2f}, Pearson {self.pearson:+.2f}; {self.top_k_overlap}/{self.k} of the largest "
                f"exact effects also among the estimate's largest, {self.sign_agreement:.0%} of them signed "
                f"right: a {verdict} proxy here")  # fmt: skip

    def _repr_html_(self) -> str:
        return f"<p>{self}</p><p>largest disagreements:</p>" + self.worst.to_html(index=False)


def agreement(exact: PatchingResult, estimate: PatchingResult, top_k: int = 10, n_worst: int = 10) -> Agreement:
    """Rank correlation (Spearman, Kendall: `interp.stats`), linear correlation, top-k overlap of the largest
    |effects| and sign agreement between two results over the same patches, and the patches where they
    differ most. Effects are ``value - baseline``, so the ranks read "which patches matter most"."""
    from interp.stats import kendall, spearman, top_k_overlap

    same = (
        exact.component == estimate.component and len(exact) == len(estimate)
        and torch.equal(exact.layers, estimate.layers) and torch.equal(exact.heads, estimate.heads)
        and torch.equal(exact.positions, estimate.positions)
    )  # fmt: skip
    if not same:
        raise PatchingError("the two results patch different components: run both with the same arguments")
    if top_k < 1:
        raise PatchingError(f"top_k must be >= 1, got {top_k}")
    a, b = exact.effects.double().numpy(), estimate.effects.double().numpy()
    k = min(top_k, len(a))
    constant = np.ptp(a) == 0 or np.ptp(b) == 0
    r = float("nan") if constant else float(np.corrcoef(a, b)[0, 1])
    top_a = np.argsort(-np.abs(a), kind="stable")[:k]
    signs = float(np.mean(np.sign(a[top_a]) == np.sign(b[top_a])))
    overlap = round(top_k_overlap(a, b, k, by_abs=True) * k)
    frame = exact.to_frame().drop(columns=["value"]).rename(columns={"normalized": "exact"})
    frame["estimate"] = estimate.normalized.tolist()
    frame["difference"] = frame["estimate"] - frame["exact"]
    worst = frame.reindex(frame["difference"].abs().sort_values(ascending=False).index).head(n_worst)
    return Agreement(spearman(a, b), kendall(a, b), r, overlap, k, signs, len(a), worst.reset_index(drop=True))


# ------------------------------------------------------------------------------------------------
# Figure
# ------------------------------------------------------------------------------------------------


def plot_patching(result: PatchingResult, normalized: bool = True, title: str | None = None):
    """A heatmap of ``result`` (plotly): layer x head, layer x position, or (layer, head) x position.

    Colours are centred at 0 (diverging); positions are labelled with the corrupted prompt's tokens when
    there is one prompt pair."""
    import plotly.graph_objects as go

    frame = result.to_frame()
    col = "normalized" if normalized else "value"
    has_heads = frame["head"].notna().any()
    by_pos = result.position == "all"
    pos_label = lambda p: (f"{p}: {result.token_labels[p]!r}" if result.token_labels and p < len(result.token_labels)
                           else str(p))  # fmt: skip
    if has_heads and by_pos:
        frame["row"] = [f"L{l}H{h}" for l, h in zip(frame["layer"], frame["head"])]
        table = frame.pivot_table(index="row", columns="position", values=col, sort=False)
        y_title, x_labels = "layer, head", [pos_label(int(p)) for p in table.columns]
    elif has_heads:
        table = frame.pivot_table(index="layer", columns="head", values=col)
        y_title, x_labels = "layer", [str(h) for h in table.columns]
    elif by_pos:
        table = frame.pivot_table(index="layer", columns="position", values=col)
        y_title, x_labels = "layer", [pos_label(int(p)) for p in table.columns]
    else:
        table = frame.pivot_table(index="layer", values=col)
        y_title, x_labels = "layer", [result.component]
    z = table.to_numpy()
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(
        z=z, x=x_labels, y=[str(i) for i in table.index], colorscale="RdBu", zmid=0, zmin=-bound, zmax=bound,
        colorbar=dict(title="normalized" if normalized else result.metric),
        hovertemplate="%{y} / %{x}: %{z:.4g}<extra></extra>",
    ))  # fmt: skip
    where = {"final": "final position", "all": "each position", "all_at_once": "all positions at once"}
    fig.update_layout(
        title=title or f"{result.method} {result.direction} patching of {result.component} "
        f"({where.get(result.position, f'position {result.position}')}; {result.metric})",
        xaxis_title="head" if has_heads and not by_pos else "position", yaxis_title=y_title,
        template="plotly_white", height=max(350, 16 * len(table) + 150), width=900,
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    return fig
