"""Analysis 1 — which heads a Learned Task Vector uses, next to the heads a Function Vector picks.

An LTV is a weight ``θ[l, h]`` per attention head; what head ``(l, h)`` actually adds to the residual
stream is ``θ[l, h] · ā[l, h]`` (its mean clean output, scaled), so two numbers describe a head:

- ``θ[l, h]`` itself (signed: a negative weight *subtracts* the head's mean output), drawn on a diverging
  colour scale centred at 0;
- its *score* ``|θ[l, h]| · ‖ā[l, h]‖``, the size of what it writes (`LearnedTaskVector.head_scores`):
  a large θ on a head whose output is tiny does little, so rankings use the score.

Beside it, the Function Vector's causal indirect effect (CIE) of each head: the change of P(target) on
shuffled-label prompts when the head's final-token output is set to its clean mean (Todd et al.). The FV
is the sum of the top-k heads by CIE. If both methods found the same task-carrying heads, the bright
cells of the two heatmaps coincide; the table lists each method's top heads (``L{layer}H{head}``).

For a multi-task LTV (one θ shared by several tasks, each with its own ā) `plot_multitask_head_weights`
shows the shared θ and, per task, the score ``|θ| · ‖ā_task‖``.

    fig, df = plot_head_weights(ltv, fv)          # a fitted LearnedTaskVector and FunctionVector
    fig.show(); df.sort_values("ltv_score").tail()
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.plot.style import DIVERGING, PlotError, head_frame, signed_range, style

__all__ = [
    "head_weight_data",
    "multitask_head_weight_data",
    "plot_head_weights",
    "plot_multitask_head_weights",
]


def head_weight_data(ltv, fv=None, task: str | None = None) -> pd.DataFrame:
    """Tidy per-head data of one task: ``theta``, ``ltv_score`` (|θ|·‖ā‖), ``fv_cie`` (if ``fv``), ranks.

    ``ltv`` is a `LearnedTaskVector` (for a multi-task one, ``task`` names whose ā to use).
    """
    if not hasattr(ltv, "theta") or not hasattr(ltv, "head_scores"):
        raise PlotError(f"expected a LearnedTaskVector, got {type(ltv).__name__}")
    values = {"theta": ltv.theta, "ltv_score": ltv.head_scores(task)}
    if fv is not None:
        if not hasattr(fv, "cie"):
            raise PlotError(f"fv must be a FunctionVector (with .cie), got {type(fv).__name__}")
        if tuple(fv.cie.shape) != tuple(ltv.theta.shape):
            raise PlotError(f"FV CIE shape {tuple(fv.cie.shape)} != LTV θ shape {tuple(ltv.theta.shape)}: "
                                "were they fitted on the same model?")  # fmt: skip
        values["fv_cie"] = fv.cie
    name = task or ltv.meta.get("task", "?")
    return _add_ranks(head_frame(values, task=name))


def _add_ranks(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["ltv_rank"] = df["ltv_score"].rank(ascending=False, method="first").astype(int)
    if "fv_cie" in df:
        df["cie_rank"] = df["fv_cie"].rank(ascending=False, method="first").astype(int)
    return df


def _grid(df: pd.DataFrame, column: str):
    """[layer][head] nested lists of ``column`` and of the head labels (for hover text)."""
    n_layers, n_heads = int(df.layer.max()) + 1, int(df["head"].max()) + 1
    if len(df) != n_layers * n_heads:
        raise PlotError(f"per-head data must have one row per (layer, head): {len(df)} rows for "
                            f"{n_layers} x {n_heads} heads")  # fmt: skip
    d = df.sort_values(["layer", "head"])
    z = d[column].to_numpy().reshape(n_layers, n_heads)
    labels = d["head_label"].to_numpy().reshape(n_layers, n_heads)
    return z, labels, n_layers, n_heads


def _heatmap(df, column, coloraxis, hover_name):
    z, labels, n_layers, n_heads = _grid(df, column)
    return go.Heatmap(
        z=z, x=list(range(n_heads)), y=list(range(n_layers)), coloraxis=coloraxis, customdata=labels,
        hovertemplate="%{customdata}<br>" + hover_name + " = %{z:.4g}<extra></extra>", xgap=1, ygap=1,
    )  # fmt: skip


def _colorbar(title: str, domain) -> dict:
    """A vertical colour bar just right of a subplot whose x-domain is ``domain``."""
    return dict(title=title, x=domain[1] + 0.008, xanchor="left", len=0.9, thickness=12)


def _axes(fig, n_layers, n_heads, cols, y_title_cols=None):
    step = 1 if n_layers <= 12 else 3
    for c in cols:
        fig.update_xaxes(title_text="head", tickmode="array", tickvals=list(range(n_heads)), row=1, col=c)
        show = y_title_cols is None or c in y_title_cols
        fig.update_yaxes(title_text="layer" if show else None, tickmode="array", tickvals=list(range(0, n_layers, step)),
                         range=[-0.5, n_layers - 0.5], row=1, col=c)  # fmt: skip


def plot_head_weights(
    ltv_or_data, fv=None, task: str | None = None, top_k: int = 10, title: str | None = None
):
    """θ heatmap (diverging, 0-centred) | FV CIE heatmap | the top-k heads of each; returns ``(fig, df)``.

    ``ltv_or_data`` is a `LearnedTaskVector` (then ``fv`` / ``task`` as in `head_weight_data`) or the
    DataFrame `head_weight_data` returns (as cached by the main job).
    """
    df = ltv_or_data if isinstance(ltv_or_data, pd.DataFrame) else head_weight_data(ltv_or_data, fv, task)
    missing = {"layer", "head", "head_label", "theta", "ltv_score"} - set(df.columns)
    if missing:
        raise PlotError(f"head-weight data lacks columns {sorted(missing)}")
    if top_k < 1:
        raise PlotError(f"top_k must be >= 1, got {top_k}")
    df = _add_ranks(df) if "ltv_rank" not in df else df
    has_fv = "fv_cie" in df
    task_name = str(df["task"].iloc[0]) if "task" in df else (task or "")
    _, _, n_layers, n_heads = _grid(df, "theta")
    k = min(top_k, len(df))

    cols = 3 if has_fv else 2
    titles = (
        ["LTV weight θ[l, h]"] + (["FV causal indirect effect (ΔP)"] if has_fv else []) + [f"top {k} heads"]
    )
    heat_w = 0.2 + 0.03 * n_heads
    widths = [heat_w] * (cols - 1) + [0.55 if has_fv else 0.4]
    specs = [[{"type": "heatmap"}] * (cols - 1) + [{"type": "table"}]]
    fig = make_subplots(rows=1, cols=cols, column_widths=widths, specs=specs, subplot_titles=titles,
                        horizontal_spacing=0.11)  # fmt: skip
    fig.add_trace(_heatmap(df, "theta", "coloraxis", "θ"), row=1, col=1)
    r_theta = signed_range(df.theta)
    fig.update_layout(coloraxis=dict(colorscale=DIVERGING, cmin=-r_theta, cmax=r_theta, cmid=0,
                                     colorbar=_colorbar("θ", fig.layout.xaxis.domain)))  # fmt: skip
    if has_fv:
        fig.add_trace(_heatmap(df, "fv_cie", "coloraxis2", "CIE"), row=1, col=2)
        r_cie = signed_range(df.fv_cie)
        fig.update_layout(coloraxis2=dict(colorscale=DIVERGING, cmin=-r_cie, cmax=r_cie, cmid=0,
                                          colorbar=_colorbar("ΔP", fig.layout.xaxis2.domain)))  # fmt: skip
    _axes(fig, n_layers, n_heads, range(1, cols))

    by_ltv = df.sort_values("ltv_rank").head(k)
    header = ["#", "LTV head", "θ", "|θ|·‖ā‖"]
    cells = [list(range(1, k + 1)), list(by_ltv.head_label), [f"{v:+.2f}" for v in by_ltv.theta],
             [f"{v:.2f}" for v in by_ltv.ltv_score]]  # fmt: skip
    if has_fv:
        by_cie = df.sort_values("cie_rank").head(k)
        header += ["FV head", "CIE"]
        cells += [list(by_cie.head_label), [f"{v:+.2g}" for v in by_cie.fv_cie]]
    widths_t = [0.45, 1, 1.0, 1.05] + ([1, 1.2] if has_fv else [])
    fig.add_trace(go.Table(header=dict(values=header, align="left", fill_color="#e8e8e8"), columnwidth=widths_t,
                           cells=dict(values=cells, align="left", height=24)), row=1, col=cols)  # fmt: skip
    both = set(by_ltv.head_label) & set(df.sort_values("cie_rank").head(k).head_label) if has_fv else set()
    default_title = f"Head weights — {task_name}" + (
        f" (top-{k} overlap LTV ∩ FV: {len(both)})" if has_fv else ""
    )
    style(fig, title or default_title, height=max(520, 60 + 20 * n_layers), width=1250 if has_fv else 900)
    return fig, df


def multitask_head_weight_data(multi_ltv) -> pd.DataFrame:
    """Long table: one row per (task, layer, head) with the shared ``theta`` and the task's ``ltv_score``."""
    tasks = getattr(multi_ltv, "tasks", None)
    if not tasks:
        raise PlotError("expected a (multi-task) LearnedTaskVector with .tasks")
    frames = [
        head_frame({"theta": multi_ltv.theta, "ltv_score": multi_ltv.head_scores(t)}, task=t) for t in tasks
    ]
    return pd.concat(frames, ignore_index=True)


def plot_multitask_head_weights(ltv_or_data, top_k: int = 10, title: str | None = None):
    """The shared θ of a multi-task LTV, and per task the score |θ|·‖ā_task‖; returns ``(fig, df)``."""
    df = ltv_or_data if isinstance(ltv_or_data, pd.DataFrame) else multitask_head_weight_data(ltv_or_data)
    missing = {"task", "layer", "head", "head_label", "theta", "ltv_score"} - set(df.columns)
    if missing:
        raise PlotError(f"multi-task head-weight data lacks columns {sorted(missing)}")
    tasks = list(dict.fromkeys(df.task))
    first = df[df.task == tasks[0]]
    _, _, n_layers, n_heads = _grid(first, "theta")
    cols = 1 + len(tasks)
    fig = make_subplots(rows=1, cols=cols, subplot_titles=["shared θ"] + [f"|θ|·‖ā‖: {t}" for t in tasks],
                        horizontal_spacing=0.04 if cols > 3 else 0.08)  # fmt: skip
    fig.add_trace(_heatmap(first, "theta", "coloraxis", "θ"), row=1, col=1)
    r = signed_range(first.theta)
    smax = float(df.ltv_score.max()) or 1.0
    fig.update_layout(
        coloraxis=dict(colorscale=DIVERGING, cmin=-r, cmax=r, cmid=0,
                       colorbar=dict(title="θ", x=-0.12, len=0.9, thickness=12)),
        coloraxis2=dict(colorscale="Viridis", cmin=0, cmax=smax, colorbar=dict(title="score", len=0.9, thickness=12)),
    )  # fmt: skip
    for i, t in enumerate(tasks):
        fig.add_trace(_heatmap(df[df.task == t], "ltv_score", "coloraxis2", "score"), row=1, col=i + 2)
    _axes(fig, n_layers, n_heads, range(1, cols + 1), y_title_cols=(1,))
    tops = ", ".join(
        first.reindex(first.theta.abs().sort_values(ascending=False).index).head(min(top_k, 5)).head_label
    )
    style(fig, title or f"Multi-task LTV ({len(tasks)} tasks): shared θ; largest |θ|: {tops}",
          height=max(520, 60 + 20 * n_layers), width=max(900, 250 + 230 * cols))  # fmt: skip
    return fig, df
