"""Figures for a notebook, one call each: data in, ``(plotly figure, tidy data)`` out.

``fig.show()`` draws a figure in a notebook; `interp.plot.style.FigureWriter` writes it as HTML + PNG. One
module per figure family (each docstring explains what is drawn); they are imported on first use, so
``import interp`` does not load plotly. Figure *pipelines* (which figures a paper needs, from which runs) live
above the library, in the application's ``analyses`` package.

- `head_weights(ltv, fv=None)` — the LTV's θ per head (diverging scale, centred at 0) beside the FV's causal
  indirect effects, and each method's top heads; `multitask_head_weights(multi_ltv)`.
- `layer_sweep(df)` — accuracy vs injection layer (`compute_layer_sweep(problem, fv, tv, ltv, ...)`).
- `regression_curves(records)`, `comparison_table(report)`, `cosine_similarity(vectors)`, `pca(panels)`.
- `comparison(c)` — a paired `interp.compare` table as a bar chart with 95% CIs.
- `patching(result)` — an `interp.patching` result as a heatmap (layer x head, or layer x position).

    >>> import interp, torch
    >>> ltv = interp.vectors.LearnedTaskVector({"theta": torch.randn(2, 4), "basis": torch.randn(1, 2, 4, 8)},
    ...                                        {"task": "demo"})
    >>> fig, df = interp.plot.head_weights(ltv, top_k=3)
    >>> len(df)
    8
"""

from __future__ import annotations

import importlib

_FIGURES = {
    "head_weights": ("interp.plot.heads", "plot_head_weights"),
    "multitask_head_weights": ("interp.plot.heads", "plot_multitask_head_weights"),
    "head_scores": ("analyses.patching", "compare_head_scores"),
    "patching_scores": ("analyses.patching", "patching_scores"),
    "head_score_frame": ("analyses.patching", "head_score_frame"),
    "compute_layer_sweep": ("interp.plot.layers", "compute_layer_sweep"),
    "layer_sweep": ("interp.plot.layers", "plot_layer_sweep"),
    "regression_curves": ("interp.plot.regression", "plot_regression_curves"),
    "comparison_table": ("interp.plot.table", "plot_comparison_table"),
    "cosine_similarity": ("interp.plot.geometry", "plot_cosine_similarity"),
    "pca": ("interp.plot.geometry", "plot_pca"),
}

__all__ = [
    "comparison", "comparison_table", "compute_layer_sweep", "cosine_similarity", "head_score_frame", "head_scores",
    "head_weights", "layer_sweep", "multitask_head_weights", "patching_scores", "pca", "regression_curves",
]  # fmt: skip


def __getattr__(name: str):
    if name in _FIGURES:
        module, attr = _FIGURES[name]
        fn = getattr(importlib.import_module(module), attr)
        globals()[name] = fn
        return fn
    raise AttributeError(f"interp.plot has no {name!r}; figures: {', '.join(__all__)}")


def __dir__() -> list[str]:
    return sorted(__all__)


def comparison(c, title: str | None = None):
    """Bar chart of a `interp.evaluation.Comparison`: each method's value with its 95% CI, and the paired
    difference to the reference with its CI; returns ``(fig, c.to_frame())``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = c.to_frame()
    fig = make_subplots(rows=1, cols=2, subplot_titles=(c.metric, f"paired difference to {c.reference!r}"))
    for col, (y, low, high) in enumerate([(c.metric, "ci_low", "ci_high"), ("diff", "diff_ci_low", "diff_ci_high")], 1):
        fig.add_trace(
            go.Bar(x=df.method, y=df[y], showlegend=False,
                   error_y=dict(type="data", symmetric=False, array=df[high] - df[y], arrayminus=df[y] - df[low])),
            row=1, col=col,
        )  # fmt: skip
    fig.update_layout(title=title or f"{next(iter(c.results.values())).task}: paired comparison (95% CIs)", height=380)
    return fig, df


def patching(result, normalized: bool = True, title: str | None = None):
    """Heatmap of an `interp.patching.PatchingResult` (diverging, centred at 0): ``(fig, result.to_frame())``."""
    from interp.patching import plot_patching

    return plot_patching(result, normalized=normalized, title=title), result.to_frame()
