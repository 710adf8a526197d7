"""Analysis 3 — where in the network a task vector works: accuracy against the layer it is injected at.

For one task, on the test split's corrupted prompts (zero-shot and shuffled labels), top-1 first-token
accuracy with 95% Wilson intervals when

- the **FV** (one ``d_model`` vector, the sum of its top heads' mean outputs) is *added* to
  ``blocks.{l}.hook_resid_post`` at the final token, for every layer l;
- the **TV** of layer l (the mean hidden state of demonstration prompts at that layer) *replaces* the
  final-token hidden state at layer l, for every l;
- an **LTV restricted to layer l** is trained with θ active at that layer only (``LTVConfig(layers=(l,))``)
  and applied there — on CPU only at a subset of layers (every few layers; the caption says which);

with horizontal lines for the full all-layer LTV, the clean k-shot ICL ceiling and the uncorrected
model. Every point costs one-token runs over frozen prefixes (`interp.engine`): the prompts' prefixes
are computed once and shared by every layer and method.

    df = compute_layer_sweep(problem, fv, tv, ltv, ltv_layers=range(0, 30, 3), ltv_config=cfg)
    fig, df = plot_layer_sweep(df)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from tqdm.auto import tqdm

from interp.plot.style import METHOD_COLOURS, PlotError, style
from interp.engine import final_logits
from interp.problems import run_prefix

__all__ = [
    "compute_layer_sweep",
    "evaluate_from_layer",
    "plot_layer_sweep",
    "clean_icl_result",
    "SWEEP_METHODS",
]

SWEEP_METHODS = ("FV", "TV", "LTV (single layer)")
REFERENCE_ROWS = ("LTV (all layers)", "ICL (clean)", "none")
_COLUMNS = ["method", "layer", "setting", "accuracy", "ci_low", "ci_high", "n", "kind"]


def _row(result, method: str, layer, setting: str, kind: str) -> dict:
    low, high = result.ci
    return {"method": method, "layer": layer, "setting": setting, "accuracy": result.accuracy,
            "ci_low": low, "ci_high": high, "n": result.n, "kind": kind}  # fmt: skip


@torch.no_grad()
def clean_icl_result(problem, n: int, split: str = "test"):
    """Clean k-shot accuracy (the ceiling), by the reference full forward pass."""
    batch = problem.batch("icl", split, n)
    logits = torch.cat([final_logits(problem.model, c.tokens, c.attention_mask) for c in batch.chunks(16)])
    return problem.result(logits, batch, method="ICL (clean)")


@torch.no_grad()
def evaluate_from_layer(
    vec, layer: int, problem, setting: str, n: int, cache: dict | None = None, split: str = "test"
):
    """``vec.evaluate(problem, setting)`` for a vector acting at ``layer`` only, running blocks ``layer..L-1``
    from the final token's cached ``hook_resid_pre`` (`FrozenPrefix.run_from`): layers below the
    intervention are computed once per setting instead of once per layer (same result, tested)."""
    cache = {} if cache is None else cache
    if setting not in cache:
        batch, prefix = problem.prefix(setting, split, n)
        cache[setting] = (batch, prefix, prefix.final_resid_pre()[0])
    batch, prefix, resid_pre = cache[setting]
    out = prefix.run_from(layer, resid_pre[:, layer], vec.hooks(problem.model))
    return problem.result(out, batch, method=vec.label)


def compute_layer_sweep(
    problem,
    fv=None,
    tv=None,
    ltv=None,
    *,
    ltv_layers: Iterable[int] = (),
    ltv_config=None,
    settings: Sequence[str] = ("zero-shot", "shuffled"),
    n: int = 48,
    fv_layers: Iterable[int] | None = None,
    tv_layers: Iterable[int] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Tidy accuracies: one row per (method, layer, setting), plus reference rows (``kind="reference"``).

    ``fv`` / ``tv`` are fitted vectors (anything with ``at_layer``); ``ltv`` the full LTV (a reference
    line); ``ltv_layers`` the layers at which a single-layer LTV is trained with ``ltv_config`` (an
    `LTVConfig`; its ``layers`` field is set per layer). FV / TV layers default to every layer.
    """
    model = problem.model
    n_layers = model.cfg.n_layers
    if not settings:
        raise PlotError("settings must name at least one corrupted setting (zero-shot, shuffled)")
    ltv_layers = [int(l) for l in ltv_layers]
    bad = [l for l in ltv_layers + list(fv_layers or []) + list(tv_layers or []) if not 0 <= l < n_layers]
    if bad:
        raise PlotError(f"layers {bad} out of range for a {n_layers}-layer model")
    if ltv_layers and ltv_config is None:
        raise PlotError("ltv_layers given without ltv_config (an LTVConfig for the single-layer fits)")
    rows: list[dict] = []
    jobs = []
    for label, vec, layers in (("FV", fv, fv_layers), ("TV", tv, tv_layers)):
        if vec is not None:
            if not hasattr(vec, "at_layer"):
                raise PlotError(
                    f"the {label} must be a vector with .at_layer(layer), got {type(vec).__name__}"
                )
            jobs += [(label, vec, l) for l in (range(n_layers) if layers is None else layers)]
    jobs += [("LTV (single layer)", None, l) for l in ltv_layers]
    start_cache: dict[str, tuple] = {}
    bar = tqdm(jobs, desc="layer sweep", disable=not progress, leave=False)
    for label, vec, layer in bar:
        bar.set_postfix_str(f"{label} L{layer}")
        if vec is None:
            from interp.vectors import fit_ltv

            vec = fit_ltv(problem, replace(ltv_config, layers=(layer,)), progress=False)
            for setting in settings:
                rows.append(_row(vec.evaluate(problem, setting, n=n), label, layer, setting, "sweep"))
        else:
            for setting in settings:
                result = evaluate_from_layer(vec.at_layer(layer), layer, problem, setting, n, start_cache)
                rows.append(_row(result, label, layer, setting, "sweep"))
    clean = clean_icl_result(problem, n)
    for setting in settings:
        if ltv is not None:
            rows.append(
                _row(ltv.evaluate(problem, setting, n=n), "LTV (all layers)", None, setting, "reference")
            )
        batch, prefix = problem.prefix(setting, "test", n)
        rows.append(
            _row(
                problem.result(run_prefix(prefix, lambda idx: []), batch, "none"),
                "none",
                None,
                setting,
                "reference",
            )
        )
        rows.append(_row(clean, "ICL (clean)", None, setting, "reference"))
    return pd.DataFrame(rows, columns=_COLUMNS)


def plot_layer_sweep(df: pd.DataFrame, title: str | None = None, caption_layers: bool = True):
    """Accuracy vs injection layer, one panel per setting, 95% CI bands, reference lines; ``(fig, df)``."""
    missing = set(_COLUMNS) - set(df.columns)
    if missing:
        raise PlotError(f"layer-sweep data lacks columns {sorted(missing)}")
    sweep = df[df.kind == "sweep"]
    if sweep.empty:
        raise PlotError("layer-sweep data has no sweep rows")
    settings = list(dict.fromkeys(df.setting))
    fig = make_subplots(rows=1, cols=len(settings), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=[f"{s} prompts" for s in settings])  # fmt: skip
    x_max = int(sweep.layer.max())
    ref_style = {
        "LTV (all layers)": ("LTV", "dash"),
        "ICL (clean)": ("ICL (clean)", "dot"),
        "none": ("none", "dashdot"),
    }
    for c, setting in enumerate(settings, start=1):
        for method in SWEEP_METHODS:
            d = sweep[(sweep.method == method) & (sweep.setting == setting)].sort_values("layer")
            if d.empty:
                continue
            colour = METHOD_COLOURS[method]
            fig.add_trace(go.Scatter(
                x=list(d.layer) + list(d.layer[::-1]), y=list(d.ci_high) + list(d.ci_low[::-1]), fill="toself", mode="lines",
                fillcolor=_rgba(colour, 0.15), line=dict(width=0), hoverinfo="skip", showlegend=False,
                legendgroup=method,
            ), row=1, col=c)  # fmt: skip
            fig.add_trace(go.Scatter(
                x=d.layer, y=d.accuracy, mode="lines+markers", name=method, legendgroup=method, showlegend=c == 1,
                line=dict(color=colour, width=2),
                marker=dict(size=6 if method != "LTV (single layer)" else 9, symbol="circle" if method != "LTV (single layer)" else "diamond"),
                customdata=list(zip(d.ci_low, d.ci_high, d.n)),
                hovertemplate=method + " at layer %{x}: %{y:.2f} [%{customdata[0]:.2f}, %{customdata[1]:.2f}], n=%{customdata[2]}<extra></extra>",
            ), row=1, col=c)  # fmt: skip
        for method, (colour_key, dash) in ref_style.items():
            r = df[(df.kind == "reference") & (df.method == method) & (df.setting == setting)]
            if r.empty:
                continue
            acc = float(r.accuracy.iloc[0])
            fig.add_trace(go.Scatter(
                x=[0, x_max], y=[acc, acc], mode="lines", name=method + " (reference)", legendgroup=method,
                showlegend=c == 1, line=dict(color=METHOD_COLOURS[colour_key], dash=dash, width=1.8),
                hovertemplate=f"{method}: {acc:.2f} [{float(r.ci_low.iloc[0]):.2f}, {float(r.ci_high.iloc[0]):.2f}]<extra></extra>",
            ), row=1, col=c)  # fmt: skip
        fig.update_xaxes(title_text="injection layer", range=[-0.5, x_max + 0.5], dtick=max(1, round(x_max / 10)),
                         row=1, col=c)  # fmt: skip
    fig.update_yaxes(title_text="test accuracy (top-1, first token)", range=[-0.02, 1.02], row=1, col=1)
    n = int(sweep.n.max())
    ltv_layers = sorted(int(l) for l in sweep[sweep.method == "LTV (single layer)"].layer.unique())
    sub = f"single-layer LTV at layers {ltv_layers}" if (caption_layers and ltv_layers) else ""
    style(fig, title or f"Injection layer sweep (n={n} per point, 95% CI bands){'; ' + sub if sub else ''}",
          height=520, width=1250)  # fmt: skip
    fig.update_layout(legend=dict(orientation="h", y=-0.2, x=0))
    return fig, df


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
