"""Analysis 2 — do the heads an LTV weights agree with the heads that patching finds?

Four per-head scores for one task, each a ``[layer, head]`` array:

(a) **LTV** ``|θ[l, h]| · ‖ā[l, h]‖``: the size of what the learned vector makes head (l, h) add;
(b) **FV CIE**: mean change of P(target) on shuffled-label prompts when the head's final-token output
    ``z`` is set to its *mean* over clean prompts (Todd et al.);
(c) **activation patching** (the TransformerLens recipe): a *clean* prompt (k correct demonstrations) and
    its *corrupted* twin (the same demonstrations and query, labels deranged) are run; the head's
    final-token ``z`` of the corrupted run is replaced by its value *in the clean run of the same prompt*,
    and the change of P(target) is averaged over prompt pairs. Unlike (b), the patched value is
    prompt-specific, so (c) asks "does this head carry the task information of this prompt?";
(d) **attribution patching** (Nanda 2023): the first-order Taylor estimate of (c),
    ``∂P(target)/∂z · (z_clean − z_corrupted)`` summed over ``d_head``, from one forward and one
    backward pass of the corrupted prompt: cheap, exact when the model is locally linear in ``z``.

(c) and (d) are `interp.patching.patch` of ``hook_z`` at the final position with the ``answer_prob``
metric (the library's one patching code path, on the frozen-prefix engine: the corrupted prompts' prefix
is computed once and each head is a one-token variant). `activation_patching_tl` computes (c) with
``transformer_lens.patching.generic_activation_patch`` (a full forward per head and prompt) instead; the
tests hold the two equal.

`compare_head_scores` draws every pair as a scatter (one dot per head, the heads in both top-k sets
highlighted), with the Spearman rank correlation and top-k overlap of each pair, and `reading` turns those
numbers into a few sentences.

    scores = patching_scores(problem, n=8)            # activation + attribution patching
    df = head_score_frame(ltv=ltv, fv=fv, **scores)
    fig, stats = compare_head_scores(df, top_k=10); print(reading(stats))
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from analyses.common import AnalysisError
from interp.patching import PatchingError, PromptPairs, patch, problem_pairs
from interp.plot.style import head_frame, style
from interp.stats import spearman

__all__ = [
    "SCORE_COLUMNS",
    "PromptPair",
    "activation_patching_tl",
    "aligned_pairs",
    "compare_head_scores",
    "head_score_frame",
    "patch_single_head",
    "patching_scores",
    "reading",
]  # fmt: skip

#: column name -> axis label of the four scores
SCORE_COLUMNS = {
    "ltv_score": "LTV |θ|·‖ā‖",
    "fv_cie": "FV CIE (ΔP)",
    "act_patch": "activation patching (ΔP)",
    "attr_patch": "attribution patching (ΔP est.)",
}


@dataclass
class PromptPair:
    """One clean prompt and its corrupted twin (same demonstrations and query, labels deranged)."""

    clean: Tensor  # [1, pos] token ids, no padding
    corrupted: Tensor  # [1, pos']
    target: int
    query: str
    clean_text: str
    corrupted_text: str


def aligned_pairs(problem, n: int, split: str = "test", seed: int = 0) -> list[PromptPair]:
    """``n`` (clean, shuffled-label) prompt pairs sharing demonstrations and query, one by one
    (`interp.patching.problem_pairs` builds them; this view splits its batch into single pairs)."""
    pairs = _pairs(problem, n, split, seed)
    out = []
    for i in range(len(pairs)):
        one = pairs.select([i])
        out.append(PromptPair(one.clean, one.corrupted, int(one.answers[0]), pairs.queries[i], *pairs.texts[i]))
    return out


def _pairs(problem, n: int, split: str, seed: int) -> PromptPairs:
    try:
        return problem_pairs(problem, n, split, seed)
    except PatchingError as err:  # the analyses' callers catch AnalysisError
        raise AnalysisError(str(err)) from None


def patching_scores(
    problem,
    n: int = 8,
    split: str = "test",
    seed: int = 0,
    rows_per_call: int = 256,
    attribution: bool = True,
    progress: bool = True,
) -> dict:
    """Activation patching (and attribution patching) of every head's final-token output, clean → corrupted.

    Returns ``{"act_patch": [L, H], "attr_patch": [L, H] | None, "p_clean": [n], "p_corrupted": [n],
    "queries": [...]}``: mean ΔP(target) per head over ``n`` prompt pairs. Both are `interp.patching.patch`
    of ``hook_z`` at the final position with the ``answer_prob`` metric, on all pairs as one left-padded
    batch (``progress`` is accepted for compatibility; the engine run is a few calls).
    """
    pairs = _pairs(problem, n, split, seed)
    exact = patch(problem.model, pairs, metric="answer_prob", component="z", rows_per_call=rows_per_call)
    act = exact.grid() - exact.corrupted
    attr = None
    if attribution:
        approx = patch(problem.model, pairs, metric="answer_prob", component="z", method="attribution")
        attr = approx.grid() - approx.corrupted
    return {
        "act_patch": act,
        "attr_patch": attr,
        "p_clean": exact.clean_per_pair,
        "p_corrupted": exact.corrupted_per_pair,
        "queries": list(pairs.queries),
        "n": len(pairs),
        "split": split,
        "seed": seed,
    }


@torch.no_grad()
def activation_patching_tl(problem, n: int = 2, split: str = "test", seed: int = 0) -> Tensor:
    """Reference path for (c): ``transformer_lens.patching.generic_activation_patch`` on full prompts.

    A full forward per (prompt, head): slow, for checking the engine path on small models.
    """
    from transformer_lens import patching as tl_patching

    model = problem.model
    pairs = aligned_pairs(problem, n, split, seed)
    total = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device="cpu")

    def final_position_setter(corrupted_activation, index, clean_activation):
        _, head = index
        corrupted_activation[:, -1, head] = clean_activation[:, -1, head]
        return corrupted_activation

    for pair in pairs:
        _, cache = model.run_with_cache(pair.clean, names_filter=lambda name: name.endswith("attn.hook_z"))
        base = _p_target(model(pair.corrupted)[:, -1], pair.target)[0]
        effect = tl_patching.generic_activation_patch(
            model, pair.corrupted, cache,
            patching_metric=lambda logits, t=pair.target, b=base: _p_target(logits[:, -1], t)[0] - b,
            patch_setter=final_position_setter, activation_name="z", index_axis_names=("layer", "head"),
        )  # fmt: skip
        total += effect.cpu()
    return total / len(pairs)


def _p_target(logits: Tensor, target: int) -> Tensor:
    return logits.float().softmax(-1)[:, target]


def patch_single_head(
    problem, layer: int, head: int, n: int = 8, split: str = "test", seed: int = 0
) -> pd.DataFrame:
    """Patch one head's final-token output clean → corrupted on ``n`` prompt pairs; one row per prompt.

    Columns: ``query``, ``p_clean``, ``p_corrupted``, ``p_patched``, ``delta`` (patched − corrupted) and
    ``recovered`` (delta as a fraction of the clean − corrupted gap).
    """
    model = problem.model
    if not (0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads):
        raise AnalysisError(f"head L{layer}H{head} does not exist in a {model.cfg.n_layers}-layer, "
                            f"{model.cfg.n_heads}-head model")  # fmt: skip
    pairs = _pairs(problem, n, split, seed)
    result = patch(model, pairs, metric="answer_prob", component="z", layers=[layer], heads=[head])
    rows = []
    for i, query in enumerate(pairs.queries):
        p_clean, p_corr = result.clean_per_pair[i], result.corrupted_per_pair[i]
        p_patch = float(result.per_pair[0, i])
        gap = p_clean - p_corr
        rows.append({"query": query, "p_clean": p_clean, "p_corrupted": p_corr, "p_patched": p_patch,
                     "delta": p_patch - p_corr, "recovered": (p_patch - p_corr) / gap if abs(gap) > 1e-9 else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def head_score_frame(
    ltv=None, fv=None, act_patch=None, attr_patch=None, task: str | None = None, **_
) -> pd.DataFrame:
    """One row per head with every score given: ``ltv_score``, ``fv_cie``, ``act_patch``, ``attr_patch``.

    ``ltv`` / ``fv`` may be fitted vectors or ``[L, H]`` arrays; extra keyword arguments (e.g. the rest of
    `patching_scores`'s dict) are ignored.
    """
    values = {}
    if ltv is not None:
        values["ltv_score"] = ltv.head_scores(task) if hasattr(ltv, "head_scores") else ltv
    if fv is not None:
        values["fv_cie"] = fv.cie if hasattr(fv, "cie") else fv
    if act_patch is not None:
        values["act_patch"] = act_patch
    if attr_patch is not None:
        values["attr_patch"] = attr_patch
    if len(values) < 2:
        raise AnalysisError("need at least two of ltv, fv, act_patch, attr_patch to compare")
    return head_frame(values)


def _top(series: pd.Series, k: int) -> set:
    return set(series.sort_values(ascending=False).head(k).index)


def compare_head_scores(df: pd.DataFrame, top_k: int = 10, title: str | None = None):
    """Scatter of every pair of scores (one dot per head), Spearman ρ and top-k overlap; ``(fig, stats)``.

    ``stats`` has ``spearman`` (a square DataFrame), ``overlap`` (top-k intersection sizes), ``pairs``
    (one record per pair) and ``top_heads`` (each score's top-k labels).
    """
    cols = [c for c in SCORE_COLUMNS if c in df.columns]
    if len(cols) < 2:
        raise AnalysisError(
            f"need at least two score columns of {list(SCORE_COLUMNS)}, got {list(df.columns)}"
        )
    if top_k < 1:
        raise AnalysisError(f"top_k must be >= 1, got {top_k}")
    k = min(top_k, len(df))
    pairs = list(itertools.combinations(cols, 2))
    rho = pd.DataFrame(np.eye(len(cols)), index=cols, columns=cols)
    overlap = pd.DataFrame(k, index=cols, columns=cols)
    records = []
    for a, b in pairs:
        r = spearman(df[a], df[b])
        o = len(_top(df[a], k) & _top(df[b], k))
        rho.loc[a, b] = rho.loc[b, a] = r
        overlap.loc[a, b] = overlap.loc[b, a] = o
        records.append({"x": a, "y": b, "spearman": r, "top_k_overlap": o, "k": k})
    n_cols = min(3, len(pairs))
    n_rows = -(-len(pairs) // n_cols)
    fig = make_subplots(rows=n_rows, cols=n_cols, horizontal_spacing=0.09, vertical_spacing=0.2,
                        subplot_titles=[f"ρ = {r['spearman']:+.2f}, top-{k} overlap {r['top_k_overlap']}/{k}" for r in records])  # fmt: skip
    groups = {
        "in both top-k": "#d62728",
        "top-k of x only": "#1f77b4",
        "top-k of y only": "#2ca02c",
        "neither": "#c7c7c7",
    }
    for i, (a, b) in enumerate(pairs):
        row, col = i // n_cols + 1, i % n_cols + 1
        ta, tb = _top(df[a], k), _top(df[b], k)
        kind = pd.Series(["neither"] * len(df), index=df.index)
        kind[[j in ta and j not in tb for j in df.index]] = "top-k of x only"
        kind[[j in tb and j not in ta for j in df.index]] = "top-k of y only"
        kind[[j in ta and j in tb for j in df.index]] = "in both top-k"
        for name, colour in groups.items():
            sel = df[kind == name]
            fig.add_trace(go.Scatter(
                x=sel[a], y=sel[b], mode="markers", name=name, legendgroup=name,
                showlegend=name not in {t.name for t in fig.data if t.showlegend} and not sel.empty,
                marker=dict(color=colour, size=7 if name != "neither" else 5, line=dict(width=0)),
                text=sel["head_label"], hovertemplate="%{text}<br>x = %{x:.4g}<br>y = %{y:.4g}<extra></extra>",
            ), row=row, col=col)  # fmt: skip
        fig.update_xaxes(title_text=SCORE_COLUMNS[a], row=row, col=col, zeroline=True)
        fig.update_yaxes(title_text=SCORE_COLUMNS[b], row=row, col=col, zeroline=True)
    style(fig, title or "Per-head scores compared (one dot per head)", height=380 * n_rows + 120, width=1300)
    fig.update_layout(legend=dict(orientation="h", y=-0.12 if n_rows > 1 else -0.25, x=0))
    tops = {
        c: list(df.loc[list(df[c].sort_values(ascending=False).head(k).index), "head_label"]) for c in cols
    }
    return fig, {"spearman": rho, "overlap": overlap, "pairs": records, "top_heads": tops, "k": k}


def reading(stats: dict) -> str:
    """A few sentences on what agrees and what does not, from `compare_head_scores`'s numbers."""
    recs = [r for r in stats["pairs"] if np.isfinite(r["spearman"])]
    if not recs:
        return "No pair of scores has a defined rank correlation (a score is constant)."
    name = {c: SCORE_COLUMNS[c].split(" (")[0] for c in SCORE_COLUMNS}
    best = max(recs, key=lambda r: r["spearman"])
    worst = min(recs, key=lambda r: r["spearman"])
    k = stats["k"]
    lines = [
        f"Strongest agreement: {name[best['x']]} vs {name[best['y']]} (Spearman ρ = {best['spearman']:+.2f}, "
        f"{best['top_k_overlap']}/{k} shared top-{k} heads).",
        f"Weakest: {name[worst['x']]} vs {name[worst['y']]} (ρ = {worst['spearman']:+.2f}, "
        f"{worst['top_k_overlap']}/{k} shared).",
    ]
    by_pair = {(r["x"], r["y"]): r for r in recs}
    if ("act_patch", "attr_patch") in by_pair:
        r = by_pair[("act_patch", "attr_patch")]
        verdict = "a good" if r["spearman"] > 0.7 else "a rough" if r["spearman"] > 0.3 else "a poor"
        lines.append(f"Attribution patching is {verdict} first-order proxy for activation patching here "
                     f"(ρ = {r['spearman']:+.2f}).")  # fmt: skip
    if ("fv_cie", "act_patch") in by_pair:
        r = by_pair[("fv_cie", "act_patch")]
        lines.append(f"Mean-patching (FV CIE) vs prompt-specific patching: ρ = {r['spearman']:+.2f}; they differ "
                     "only in the value patched in (the clean mean vs the clean run of the same prompt).")  # fmt: skip
    ltv = [r for r in recs if "ltv_score" in (r["x"], r["y"])]
    if ltv:
        mean_rho = float(np.mean([r["spearman"] for r in ltv]))
        mean_overlap = float(np.mean([r["top_k_overlap"] for r in ltv]))
        if mean_rho > 0.5:
            verdict = "the LTV leans on the heads the causal scores single out."
        elif mean_overlap >= k / 4:
            verdict = ("its largest heads include causally important ones, but over all heads it tracks the causal scores "
                       "only loosely: it also weights heads whose individual patching effect is small (a sum over many "
                       "heads can do what a few strong heads do).")  # fmt: skip
        else:
            verdict = "it relies on different heads than the ones patching singles out."
        lines.append(f"LTV head sizes vs the causal scores: mean ρ = {mean_rho:+.2f}, mean top-{k} overlap "
                     f"{mean_overlap:.1f}/{k}; {verdict}")  # fmt: skip
    tops = stats.get("top_heads", {})
    if len(tops) > 1:
        common = set.intersection(*(set(v) for v in tops.values()))
        if common:
            order = [h for h in next(iter(tops.values())) if h in common]
            lines.append(f"In every score's top {k}: {', '.join(order)}.")
        else:
            lines.append(f"No head is in every score's top {k}.")
    lines.append(
        "(ρ runs over all heads, most of which have near-zero effects; the top-k overlap reads the important few.)"
    )
    return " ".join(lines)
