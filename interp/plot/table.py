"""Analysis 5 — the text comparison table (every method, every task, both corrupted settings) as a figure.

Reads a sweep's results store (``interp sweep --out results/sweeps/text``: one cell per task x method x
setting x seed with top-1 first-token test accuracy and its 95% Wilson interval), reduced to means over
seeds by `interp.sweep.report.summary_frame`, and draws it as a heatmap table: rows are methods (no intervention, clean ICL ceiling, random-θ control, FV, TV,
LTV, multi-task LTV), columns are tasks plus their mean, one panel per setting; each cell shows the
accuracy and its interval (one seed) or its spread over seeds (± sample std). The clean-ICL row is the
same in both panels (it has no corruption).
`interp.sweep.report.to_markdown` gives the same table in Markdown.

    summary = interp.sweep.report.load_comparison("results/sweeps/text")
    fig, df = plot_comparison_table(summary)
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.plot.style import PlotError, style

from interp.defaults import ROW_ORDER, WEAK_ICL, WIDE
from interp.defaults import SETTINGS as _SETTINGS

__all__ = ["comparison_frame", "plot_comparison_table"]


def comparison_frame(report) -> pd.DataFrame:
    """Tidy: one row per (task, setting, method) with accuracy, CI, n, seeds and Todd's filtered accuracy.

    ``report`` is a sweep summary (`interp.sweep.report.summary_frame`, returned as is) or a dict with the
    ``cells`` of this run (`interp.evaluation.EvalResult.to_dict` plus ``row``); the clean-ICL cell (setting
    ``icl``) is repeated under each corrupted setting, as in the Markdown table.
    """
    if isinstance(report, pd.DataFrame):
        if report.empty:
            raise PlotError("the comparison summary has no cells")
        return report
    cells = report.get("cells") if isinstance(report, dict) else None
    if not cells:
        raise PlotError("the comparison report has no cells")
    rows = []
    for c in cells:
        missing = {"task", "setting", "row", "accuracy", "ci_low", "ci_high", "n"} - set(c)
        if missing:
            raise PlotError(f"a comparison cell lacks {sorted(missing)}: {c}")
        settings = _SETTINGS if c["row"] == "ICL (clean)" else (c["setting"],)
        for s in settings:
            f = c.get("filtered") or {}
            rows.append({"task": c["task"], "setting": s, "method": c["row"], "accuracy": c["accuracy"],
                         "std": 0.0, "n_seeds": 1, "ci_low": c["ci_low"], "ci_high": c["ci_high"], "n": c["n"],
                         "filtered_accuracy": f.get("accuracy", np.nan), "filtered_n": f.get("n", np.nan)})  # fmt: skip
    return pd.DataFrame(rows)


def plot_comparison_table(report_or_df, title: str | None = None):
    """Heatmap table: methods x (tasks + mean), one panel per setting, 'acc [lo, hi]' in every cell."""
    df = report_or_df if isinstance(report_or_df, pd.DataFrame) else comparison_frame(report_or_df)
    if df.empty:
        raise PlotError("no comparison cells to draw")
    tasks = list(dict.fromkeys(df.task))
    methods = [m for m in ROW_ORDER if m in set(df.method)] + sorted(set(df.method) - set(ROW_ORDER))
    settings = [s for s in _SETTINGS if s in set(df.setting)] or list(dict.fromkeys(df.setting))
    if len(tasks) > WIDE:
        return _plot_tasks_as_rows(df, tasks, methods, settings, title), df
    columns = tasks + ["mean"]
    tilted = len(tasks) > 6 or max(len(t) for t in tasks) > 16
    fig = make_subplots(rows=len(settings), cols=1, vertical_spacing=0.2 if tilted else 0.1,
                        subplot_titles=[f"{s} prompts (test accuracy; {_how(df)})" for s in settings])  # fmt: skip
    for i, setting in enumerate(settings, start=1):
        d = df[df.setting == setting]
        z, text = [], []
        for m in methods:
            zr, tr = [], []
            for t in tasks:
                cell = d[(d.method == m) & (d.task == t)]
                if cell.empty:
                    zr.append(None)
                    tr.append("–")
                else:
                    c = cell.iloc[0]
                    zr.append(c.accuracy)
                    if c.get("n_seeds", 1) > 1:
                        tr.append(f"<b>{c.accuracy:.2f}</b><br>± {c['std']:.2f} ({int(c.n_seeds)} seeds)")
                    else:
                        tr.append(f"<b>{c.accuracy:.2f}</b><br>[{c.ci_low:.2f}, {c.ci_high:.2f}]")
            vals = [v for v in zr if v is not None]
            mean = float(np.mean(vals)) if vals else None
            zr.append(mean)
            tr.append(f"<b>{mean:.2f}</b>" if mean is not None else "–")
            z.append(zr)
            text.append(tr)
        fig.add_trace(go.Heatmap(
            z=z, x=columns, y=methods, text=text, texttemplate="%{text}", textfont=dict(size=11), coloraxis="coloraxis",
            xgap=2, ygap=2,
            hovertemplate="%{y} on %{x}: %{z:.3f}<extra>" + setting + "</extra>",
        ), row=i, col=1)  # fmt: skip
        fig.update_yaxes(autorange="reversed", title_text="method", row=i, col=1)
        fig.update_xaxes(tickangle=-25 if tilted else 0, row=i, col=1)
    n = int(df.n.max())
    fig.update_layout(
        coloraxis=dict(colorscale="Blues", cmin=0, cmax=1, colorbar=dict(title="accuracy", len=0.6))
    )
    style(fig, title or f"Text comparison: every method on every task (n ≤ {n} test queries per cell)",
          height=(400 if tilted else 330) * len(settings) + 150, width=max(900, 140 + 118 * len(columns)))  # fmt: skip
    return fig, df


def _cell_text(c) -> str:
    if c.get("n_seeds", 1) > 1:
        return f"{c.accuracy:.2f} ±{c['std']:.2f}"
    return f"{c.accuracy:.2f}"


def _plot_tasks_as_rows(df: pd.DataFrame, tasks, methods, settings, title):
    """Many tasks (a whole suite): rows are tasks sorted by clean-ICL accuracy (weak-ICL tasks marked †, not
    dropped), columns are methods, one panel per setting side by side, the mean over tasks as the last row."""
    icl = df[df.method == "ICL (clean)"].drop_duplicates("task").set_index("task").accuracy.to_dict()
    tasks = sorted(tasks, key=lambda t: (-icl.get(t, -1.0), t))
    labels = [f"{t} †" if icl.get(t, 1.0) < WEAK_ICL else t for t in tasks] + ["<b>mean over tasks</b>"]
    fig = make_subplots(rows=1, cols=len(settings), horizontal_spacing=0.03, shared_yaxes=True,
                        subplot_titles=[f"{s} prompts" for s in settings])  # fmt: skip
    for i, setting in enumerate(settings, start=1):
        d = df[df.setting == setting]
        z, text = [], []
        for t in tasks:
            zr, tr = [], []
            for m in methods:
                cell = d[(d.method == m) & (d.task == t)]
                zr.append(None if cell.empty else float(cell.iloc[0].accuracy))
                tr.append("–" if cell.empty else _cell_text(cell.iloc[0]))
            z.append(zr)
            text.append(tr)
        means = [d[d.method == m].accuracy.mean() if (d.method == m).any() else None for m in methods]
        z.append(means)
        text.append(["–" if v is None else f"<b>{v:.2f}</b>" for v in means])
        fig.add_trace(go.Heatmap(
            z=z, x=methods, y=labels, text=text, texttemplate="%{text}", textfont=dict(size=10),
            coloraxis="coloraxis", xgap=1, ygap=1, hovertemplate="%{x} on %{y}: %{z:.3f}<extra>" + setting + "</extra>",
        ), row=1, col=i)  # fmt: skip
        fig.update_yaxes(autorange="reversed", row=1, col=i)
        fig.update_xaxes(tickangle=-30, side="top", row=1, col=i)
    fig.update_layout(coloraxis=dict(colorscale="Blues", cmin=0, cmax=1, colorbar=dict(title="accuracy", len=0.4)))
    # the method labels sit on top of each panel (tilted): lift the panel titles above them, not onto them
    label_px = 14 + 6.5 * max(len(m) for m in methods) * 0.5  # height of a -30° label of the longest name
    for annotation in fig.layout.annotations[: len(settings)]:
        annotation.update(yshift=label_px + 12, font=dict(size=15))
    n = int(df.n.max())
    style(fig, title or f"Text comparison: every method on every task (n ≤ {n} test queries per cell)",
          height=24 * (len(tasks) + 1) + 260 + int(label_px), width=max(900, 260 + 2 * 95 * len(methods)))  # fmt: skip
    # the main title at the very top, the panel titles between it and the tilted labels
    fig.update_layout(margin=dict(t=int(130 + label_px)), title=dict(y=0.99, yref="container", yanchor="top"))
    fig.add_annotation(text=f"test accuracy ({_how(df)}); tasks sorted by clean ICL; † clean ICL < {WEAK_ICL}",
                       xref="paper", yref="paper", x=0, y=-0.02, showarrow=False, xanchor="left", yanchor="top")  # fmt: skip
    return fig


def _how(df: pd.DataFrame) -> str:
    seeds = int(df["n_seeds"].max()) if "n_seeds" in df else 1
    return "mean ± sample std over seeds" if seeds > 1 else "95% Wilson CI"
