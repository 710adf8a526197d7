"""Analysis 6 — the geometry of task vectors: how alike are the vectors of different tasks and methods?

**Cosine similarity.** Each method is reduced to one ``d_model`` direction per task:

- LTV: ``Σ_l v_l = Σ_l Σ_h θ[l, h] ā[l, h]``, everything it adds to the residual stream (over all layers);
- multi-task LTV: the same with the shared θ and the task's own ā;
- FV: the vector itself (the sum of its top heads' mean outputs);
- TV: the mean hidden state at its layer, *centred* across tasks (minus the mean over tasks). A raw
  hidden state is dominated by a task-independent component (every pair would have cosine ≈ 1), and
  the TV replaces rather than adds, so only its task-specific part is comparable to additive vectors.

The heatmap's blocks read: within a method, are tasks separated (low off-diagonal similarity)? Across
methods, does the same task point the same way (a bright diagonal in an off-diagonal block)?

**PCA of per-prompt vectors.** Per prompt, the vector a method would build from that prompt alone, for
several tasks, projected on the top two principal components of all prompts together and coloured by
task: (i) the final-token hidden state at the TV layer of each demonstration prompt (a per-prompt TV);
(ii) per-prompt head outputs weighted by the multi-task LTV's shared θ, ``Σ_{l,h} θ[l,h] a_p[l,h]``
(same θ for every task, so any separation comes from the activations). The subplot titles give the
explained variance and a leave-one-out nearest-centroid accuracy in the full space (1.0: every prompt
is closer to its own task's mean than to any other task's).

    fig, df = plot_cosine_similarity({("LTV", "antonym"): v1, ("FV", "antonym"): v2, ...})
    fig, df = plot_pca({"hidden state at layer 12": {"antonym": X1, "capitalize": X2}})
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.plot.style import DIVERGING, PlotError, _numpy, style

__all__ = [
    "method_vectors",
    "center_across_tasks",
    "plot_cosine_similarity",
    "pca_2d",
    "nearest_centroid_accuracy",
    "plot_pca",
]

_TASK_COLOURS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
]


def method_vectors(
    ltv=None, fv=None, tv=None, tv_layer: int | None = None, multi=None, task: str | None = None
) -> dict:
    """One ``d_model`` vector per method for one task (see the module docstring); missing methods are skipped."""
    out = {}
    if ltv is not None:
        out["LTV"] = ltv.layer_vectors().sum(0)
    if multi is not None:
        out["LTV (multi-task)"] = multi.layer_vectors(task).sum(0)
    if fv is not None:
        out["FV"] = fv.vector
    if tv is not None:
        out["TV"] = tv.hidden[tv.layer if tv_layer is None else tv_layer]
    return out


def center_across_tasks(vectors: Mapping[tuple[str, str], object], methods=("TV",)) -> dict:
    """Subtract, for each method in ``methods``, the mean of its vectors over tasks."""
    out = {k: _numpy(v) for k, v in vectors.items()}
    for m in methods:
        keys = [k for k in out if k[0] == m]
        if len(keys) > 1:
            mean = np.mean([out[k] for k in keys], axis=0)
            for k in keys:
                out[k] = out[k] - mean
    return out


def plot_cosine_similarity(vectors: Mapping[tuple[str, str], object], title: str | None = None):
    """Heatmap of pairwise cosine similarity of ``{(method, task): vector}``; ``(fig, df)`` (long format)."""
    if len(vectors) < 2:
        raise PlotError("need at least two vectors to compare")
    keys = list(vectors)
    if not all(isinstance(k, tuple) and len(k) == 2 for k in keys):
        raise PlotError("keys must be (method, task) pairs")
    mat = np.stack([_numpy(vectors[k]).ravel() for k in keys])
    if len({row.shape for row in mat}) != 1:
        raise PlotError("all vectors must have the same size (d_model)")
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    cos = (mat / np.where(norms == 0, 1, norms)) @ (mat / np.where(norms == 0, 1, norms)).T
    labels = [f"{m} · {t}" for m, t in keys]
    fig = go.Figure(go.Heatmap(
        z=cos, x=labels, y=labels, colorscale=DIVERGING, zmin=-1, zmax=1, zmid=0, xgap=1, ygap=1,
        text=np.round(cos, 2), texttemplate="%{text}" if len(keys) <= 24 else None, textfont=dict(size=10),
        colorbar=dict(title="cosine"), hovertemplate="%{y}<br>%{x}<br>cos = %{z:.3f}<extra></extra>",
    ))  # fmt: skip
    methods = list(dict.fromkeys(m for m, _ in keys))
    # lines between method blocks
    edges = np.cumsum([sum(1 for m2, _ in keys if m2 == m) for m in methods])[:-1]
    for e in edges:
        fig.add_shape(
            type="line",
            x0=e - 0.5,
            x1=e - 0.5,
            y0=-0.5,
            y1=len(keys) - 0.5,
            line=dict(color="#333", width=1.5),
        )
        fig.add_shape(
            type="line",
            y0=e - 0.5,
            y1=e - 0.5,
            x0=-0.5,
            x1=len(keys) - 0.5,
            line=dict(color="#333", width=1.5),
        )
    size = max(600, 200 + 42 * len(keys))
    style(
        fig,
        title or "Cosine similarity of task vectors (TV centred across tasks)",
        height=size + 60,
        width=size + 160,
    )
    fig.update_yaxes(autorange="reversed", title_text="method · task")
    fig.update_xaxes(tickangle=-45, title_text="method · task")
    rows = [{"method_a": a[0], "task_a": a[1], "method_b": b[0], "task_b": b[1], "cosine": float(cos[i, j])}
            for i, a in enumerate(keys) for j, b in enumerate(keys)]  # fmt: skip
    return fig, pd.DataFrame(rows)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection of the rows of ``x`` on its top two principal components, and their explained-variance ratios."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise PlotError(f"PCA needs a [n >= 3, d] matrix, got shape {x.shape}")
    xc = x - x.mean(0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    var = s**2
    ratio = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    k = min(2, len(s))
    proj = u[:, :k] * s[:k]
    if k < 2:
        proj = np.hstack([proj, np.zeros((proj.shape[0], 2 - k))])
    return proj, np.pad(ratio[:2], (0, max(0, 2 - len(ratio))))


def nearest_centroid_accuracy(groups: Mapping[str, np.ndarray]) -> float:
    """Leave-one-out: the share of rows closer (Euclidean) to their own group's mean than to any other's."""
    names = list(groups)
    data = {g: np.asarray(groups[g], dtype=np.float64) for g in names}
    if len(names) < 2:
        return float("nan")
    sums = {g: data[g].sum(0) for g in names}
    right = total = 0
    for g in names:
        n_g = len(data[g])
        for x in data[g]:
            best, best_d = None, np.inf
            for h in names:
                if h == g:
                    if n_g < 2:
                        continue
                    centroid = (sums[g] - x) / (n_g - 1)
                else:
                    centroid = sums[h] / len(data[h])
                d = float(np.sum((x - centroid) ** 2))
                if d < best_d:
                    best, best_d = h, d
            right += best == g
            total += 1
    return right / total if total else float("nan")


def plot_pca(panels: Mapping[str, Mapping[str, object]], title: str | None = None):
    """2-D PCA scatter per panel of ``{panel: {task: [n_prompts, d] array}}``, coloured by task; ``(fig, df)``."""
    if not panels:
        raise PlotError("plot_pca needs at least one panel {name: {task: [n, d] array}}")
    names = list(panels)
    frames, subtitles, projections = [], [], []
    for name in names:
        groups = {t: _numpy(x) for t, x in panels[name].items()}
        if not groups or any(g.ndim != 2 for g in groups.values()):
            raise PlotError(f"panel {name!r}: every task needs a [n_prompts, d] array")
        x = np.concatenate(list(groups.values()))
        proj, ratio = pca_2d(x)
        tasks = np.concatenate([[t] * len(g) for t, g in groups.items()])
        index = np.concatenate([np.arange(len(g)) for g in groups.values()])
        acc = nearest_centroid_accuracy(groups)
        frames.append(
            pd.DataFrame(
                {"panel": name, "task": tasks, "prompt": index, "pc1": proj[:, 0], "pc2": proj[:, 1]}
            )
        )
        subtitles.append(
            f"{name}<br><sup>nearest-centroid accuracy {acc:.2f} (leave-one-out, full space)</sup>"
        )
        projections.append(ratio)
    df = pd.concat(frames, ignore_index=True)
    tasks_all = list(dict.fromkeys(df.task))
    colour = {t: _TASK_COLOURS[i % len(_TASK_COLOURS)] for i, t in enumerate(tasks_all)}
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=subtitles, horizontal_spacing=0.08)
    for c, name in enumerate(names, start=1):
        d = df[df.panel == name]
        for t in tasks_all:
            s = d[d.task == t]
            if s.empty:
                continue
            fig.add_trace(go.Scatter(x=s.pc1, y=s.pc2, mode="markers", name=t, legendgroup=t, showlegend=c == 1,
                                     marker=dict(color=colour[t], size=7, opacity=0.8, line=dict(width=0.5, color="white")),
                                     text=[f"{t} #{i}" for i in s.prompt], hovertemplate="%{text}<extra></extra>"),
                          row=1, col=c)  # fmt: skip
        r = projections[c - 1]
        fig.update_xaxes(title_text=f"PC1 ({100 * r[0]:.0f}% of variance)", row=1, col=c)
        fig.update_yaxes(title_text=f"PC2 ({100 * r[1]:.0f}% of variance)", row=1, col=c)
    style(
        fig,
        title or "Per-prompt task vectors, 2-D PCA, coloured by task",
        height=560,
        width=max(700, 560 * len(names)),
    )
    fig.update_layout(legend=dict(title="task"), margin=dict(t=120))
    return fig, df
