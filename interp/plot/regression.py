"""Analysis 4 — in-context regression: error against the number of in-context examples.

A regression transformer (Garg et al. 2022 setting, `interp.regression`) sees ``x1, f(x1), …, xk`` and
predicts ``f(xk)``; the curves give the normalised squared error ``(ŷ − y)² / d`` at each prompt length
``k`` (mean over prompts with a 95% band), for the model alone, the model with a task vector (LTV, FV,
random-θ control) and classical estimators (least squares, averaging, nearest neighbours, …), per function
class and covariate shift. The dashed vertical line marks the trained prompt length: beyond it the
model's position embeddings were never trained, and the question is whether a learned vector brings the
error back down (docs/design.md §1).

Inputs are the JSON files of the length-generalisation experiment, ``results/regression/<class>[_<shift>].json``::

    {"function_class", "shift", "trained_length", "n_dims", "k": [1..2T],
     "curves": {"model": {"mean": [...], "low": [...], "high": [...]}, "model+LTV": {...}, ...}}

`interp.regression.evaluate_curve`'s output (``"model"`` and ``"baselines"`` with ``lo``/``hi``) is
accepted too, which is what `shipped_checkpoint_curves` produces when no experiment results exist yet.

    fig, df = plot_regression_curves(load_regression_results("results/regression"))
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.plot.style import PlotError, style

__all__ = ["load_regression_results", "curves_frame", "plot_regression_curves", "shipped_checkpoint_curves"]

_CURVE_STYLE = {
    "model": ("#000000", "solid", 2.6),
    "model+LTV": ("#1f77b4", "solid", 2.4),
    "model+FV": ("#d62728", "solid", 2.0),
    "model+random-θ": ("#7f7f7f", "dot", 1.8),
    "least_squares": ("#2ca02c", "dash", 1.6),
}
_OTHER_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#ff7f0e"]


def load_regression_results(root: str | Path = "results/regression") -> list[dict]:
    """Every ``*.json`` under ``root`` as a record (an empty list if the folder does not exist)."""
    root = Path(root)
    if not root.is_dir():
        return []
    records = []
    for path in sorted(root.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise PlotError(
                f"{path} is not valid JSON ({err}); rerun the experiment that wrote it"
            ) from None
        _curves(record, str(path))  # validates
        record.setdefault("source", str(path))
        records.append(record)
    return records


def _curves(record: dict, where: str = "record") -> dict[str, dict]:
    """``{name: {"mean", "low", "high"}}`` from either schema (see the module docstring)."""
    if not isinstance(record, dict) or "k" not in record:
        raise PlotError(f"{where}: a regression result needs 'k' and 'curves' (or 'model'/'baselines')")
    raw: dict = {}
    if "curves" in record:
        raw.update(record["curves"])
    else:
        if "model" in record:
            raw["model"] = record["model"]
        raw.update(record.get("baselines", {}))
    if not raw:
        raise PlotError(f"{where}: no curves found (expected a 'curves' mapping)")
    n = len(record["k"])
    out = {}
    for name, c in raw.items():
        if not isinstance(c, dict) or "mean" not in c:
            raise PlotError(f"{where}: curve {name!r} needs a 'mean' list")
        low, high = c.get("low", c.get("lo")), c.get("high", c.get("hi"))
        if (
            len(c["mean"]) != n
            or (low is not None and len(low) != n)
            or (high is not None and len(high) != n)
        ):
            raise PlotError(f"{where}: curve {name!r} has {len(c['mean'])} points but 'k' has {n}")
        out[name] = {"mean": c["mean"], "low": low or c["mean"], "high": high or c["mean"]}
    return out


def curves_frame(records: Iterable[dict]) -> pd.DataFrame:
    """Tidy: one row per (function_class, shift, curve, k) with ``mean``, ``low``, ``high``, ``trained_length``."""
    rows = []
    for i, rec in enumerate(records):
        where = rec.get("source", f"record {i}")
        for name, c in _curves(rec, where).items():
            for j, k in enumerate(rec["k"]):
                rows.append({
                    "function_class": rec.get("function_class", "?"), "shift": rec.get("shift") or "none",
                    "curve": name, "k": int(k), "mean": _num(c["mean"][j]), "low": _num(c["low"][j]),
                    "high": _num(c["high"][j]), "trained_length": rec.get("trained_length"),
                })  # fmt: skip
    return pd.DataFrame(
        rows, columns=["function_class", "shift", "curve", "k", "mean", "low", "high", "trained_length"]
    )


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def plot_regression_curves(
    records_or_df,
    curves: Sequence[str] | None = None,
    log_y: bool = True,
    title: str | None = None,
    cols: int = 3,
):
    """One panel per (function class, shift): error vs k, 95% bands, trained length marked; ``(fig, df)``.

    ``curves`` restricts which curves are drawn (default: all; the model and vector curves first).
    """
    df = records_or_df if isinstance(records_or_df, pd.DataFrame) else curves_frame(records_or_df)
    if df.empty:
        raise PlotError("no regression curves to plot (run the length experiment or pass records)")
    if curves is not None:
        df = df[df.curve.isin(curves)]
    panels = list(dict.fromkeys(zip(df.function_class, df["shift"])))
    cols = min(cols, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.07, vertical_spacing=min(0.16, 0.45 / rows),
                        subplot_titles=[f"{fc} — " + (f"shift: {sh}" if sh != "none" else "no shift") for fc, sh in panels])  # fmt: skip
    names = list(dict.fromkeys([c for c in _CURVE_STYLE if c in set(df.curve)] + list(df.curve)))
    colours = {n: _CURVE_STYLE[n] if n in _CURVE_STYLE else (_OTHER_COLOURS[i % len(_OTHER_COLOURS)], "dot", 1.4)
               for i, n in enumerate(names)}  # fmt: skip
    floor = _display_floor(df) if log_y else None
    for p, (fc, sh) in enumerate(panels):
        r, c = p // cols + 1, p % cols + 1
        d = df[(df.function_class == fc) & (df["shift"] == sh)]
        for name in names:
            cd = d[d.curve == name].sort_values("k")
            if cd.empty:
                continue
            colour, dash, width = colours[name]
            low = cd.low.clip(lower=floor) if floor else cd.low
            high = cd.high.clip(lower=floor) if floor else cd.high
            mean = cd["mean"].clip(lower=floor) if floor else cd["mean"]
            fig.add_trace(go.Scatter(x=list(cd.k) + list(cd.k[::-1]), y=list(high) + list(low[::-1]), fill="toself", mode="lines",
                                     fillcolor=_alpha(colour, 0.12), line=dict(width=0), hoverinfo="skip",
                                     showlegend=False, legendgroup=name), row=r, col=c)  # fmt: skip
            fig.add_trace(go.Scatter(x=cd.k, y=mean, mode="lines", name=name, legendgroup=name, customdata=cd["mean"],
                                     showlegend=name not in _shown(fig), line=dict(color=colour, dash=dash, width=width),
                                     hovertemplate=name + ": k=%{x}, error %{customdata:.3g}<extra></extra>"), row=r, col=c)  # fmt: skip
        trained = d.trained_length.dropna()
        if len(trained):
            t = float(trained.iloc[0])
            fig.add_vline(x=t + 0.5, line=dict(color="#444", dash="dash", width=1.2), row=r, col=c)
            fig.add_annotation(x=t + 0.5, y=1.0, yref=f"y{'' if p == 0 else p + 1} domain", text=f" trained length {int(t)}",
                               showarrow=False, xanchor="left", yanchor="top", font=dict(size=11, color="#444"),
                               row=r, col=c)  # fmt: skip
        fig.update_xaxes(title_text="in-context examples k", row=r, col=c)
        fig.update_yaxes(title_text="normalised squared error" if c == 1 else None, type="log" if log_y else "linear",
                         exponentformat="power", row=r, col=c)  # fmt: skip
        if floor:
            model_high = d[d.curve.str.startswith("model")]["high"]
            # the top follows the model curves: least squares explodes near k = d (ill-conditioned) and would
            # squash them; anything higher runs off the top of the panel
            top = float(model_high.max()) * 1.5 if len(model_high) else float(d["high"].max())
            fig.update_yaxes(
                range=[math.log10(floor) - 0.05, math.log10(max(top, 2 * floor)) + 0.15], row=r, col=c
            )
    style(fig, title or "In-context regression: error vs number of examples (95% bands)",
          height=430 * rows + 110, width=max(700, 480 * cols))  # fmt: skip
    fig.update_layout(legend=dict(orientation="h", y=-0.12 if rows > 1 else -0.22, x=0))
    return fig, df


def _display_floor(df: pd.DataFrame) -> float:
    """Lowest error drawn on a log axis: a third of the best *model* curve, at least 1e-3 (least squares is
    ~1e-15 on noiseless linear data and would squash everything else); lower values sit on the floor."""
    model = df[df.curve.str.startswith("model") & (df["mean"] > 0)]["mean"]
    best = float(model.min()) if len(model) else float(df["mean"][df["mean"] > 0].min())
    return max(1e-3, best / 3)


def _shown(fig) -> set:
    return {t.name for t in fig.data if t.showlegend}


def _alpha(hex_colour: str, a: float) -> str:
    h = hex_colour.lstrip("#")
    return "rgba({},{},{},{})".format(*(int(h[i : i + 2], 16) for i in (0, 2, 4)), a)


def shipped_checkpoint_curves(
    classes: Sequence[str] | None = None, n_prompts: int = 300, seed: int = 0, shift: str | None = None
) -> list[dict]:
    """Error curves of the shipped checkpoints (model + classical baselines, no task vector), for when the
    length experiment's results do not exist yet. Classes without a shipped checkpoint are skipped."""
    from interp.regression import (
        FUNCTION_CLASSES,
        evaluate_curve,
        load_regression_model,
        shipped_checkpoint_dir,
    )

    records = []
    for fc in classes or sorted(FUNCTION_CLASSES):
        d = shipped_checkpoint_dir(fc)
        if not (d / "model.safetensors").exists():
            continue
        model = load_regression_model(fc)
        rec = evaluate_curve(model, n_prompts=n_prompts, seed=seed, shift=shift)
        rec["source"] = f"shipped checkpoint {d.name} (evaluate_curve, {n_prompts} prompts, seed {seed})"
        records.append(rec)
    return records
