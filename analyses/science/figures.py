"""Figures of "is the LTV a task representation?" (issue 12), drawn from the committed tables.

The experiments (`analyses.science`) write tidy tables to ``results/science/*.json``; each function
here turns one table into ``(plotly figure, tidy DataFrame)`` without running a model:

- `plot_theta_stability`: per task, the mean θ over fits (seeds, disjoint halves) with the heads whose
  sign agrees across every fit marked, and the fits' Spearman agreement in the subplot title;
- `plot_headcount`: accuracy vs number of heads (sparse LTV, FV with the same k, LTV on the FV's heads);
- `plot_controls`: every control's accuracy beside the LTV's, per task and setting, with clean ICL;
- `plot_data_efficiency`: accuracy vs labelled prompts (LTV, free steering vector; FV, TV as references);
- `plot_portability`: accuracy on natural zero-shot templates per method, with the bare model.

Error bars are 95% Wilson intervals of accuracy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analyses.common import AnalysisError
from analyses.science.phases import SCIENCE_DIR
from analyses.science.tuned import FIGURE as TUNED_FIGURE  # one name for the figure and the claim citing it
from interp.plot.style import DIVERGING, METHOD_COLOURS, signed_range, style

COLOURS = {
    **METHOD_COLOURS,
    "steering": "#8c564b",
    "cross-task basis": "#e377c2",
    "random-label basis": "#ff7f0e",
    "LTV (zero-shot only)": "#aec7e8",
    "LTV (shuffled only)": "#6baed6",
    "LTV (top-k by |θ|·‖ā‖, refitted)": METHOD_COLOURS["LTV"],
    "FV (top-k by CIE)": METHOD_COLOURS["FV"],
    "LTV on the FV's heads": "#9467bd",
}
SETTINGS = ("zero-shot", "shuffled")


def load_table(name: str, root: str | Path = SCIENCE_DIR):
    """The ``rows`` of ``<root>/<name>.json`` (None when the file does not exist)."""
    path = Path(root) / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["rows"]


def _errors(df: pd.DataFrame) -> dict:
    return dict(type="data", symmetric=False, array=(df["ci_high"] - df["accuracy"]).tolist(),
                arrayminus=(df["accuracy"] - df["ci_low"]).tolist())  # fmt: skip


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(max_cols, max(1, n))
    return math.ceil(n / cols), cols


# ----------------------------------------------------------------------------------------------- stability
def plot_theta_stability(table: dict):
    """Mean θ over fits per task (heatmap, layers × heads), sign-consistent heads marked with a dot."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not table:
        raise AnalysisError("the stability table is empty: run `interp science run core` first")
    tasks = list(table)
    titles = []
    for t in tasks:
        halves = [p for p in table[t]["pairs"] if p["kind"] == "halves"]
        seeds = [p for p in table[t]["pairs"] if p["kind"] == "seeds"]
        bits = []
        if halves:
            bits.append(f"halves ρ={halves[0]['spearman_theta']:.2f}")
        if seeds:
            bits.append(f"seeds ρ={seeds[0]['spearman_theta']:.2f}")
        titles.append(f"{t}<br><sup>{', '.join(bits)}; {table[t]['n_sign_consistent']} sign-consistent</sup>")
    rows, cols = _grid(len(tasks))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.06, vertical_spacing=0.12)
    records = []
    for i, t in enumerate(tasks):
        mean = np.asarray(table[t]["theta_mean"])
        consistent = np.asarray(table[t]["sign_consistent"], dtype=bool)
        r, c = i // cols + 1, i % cols + 1
        bound = signed_range(mean)
        fig.add_trace(go.Heatmap(z=mean, colorscale=DIVERGING, zmin=-bound, zmax=bound, showscale=(i == 0),
                                 colorbar=dict(title="mean θ", len=0.5), hovertemplate="L%{y}H%{x}: %{z:.3f}<extra></extra>"),
                      row=r, col=c)  # fmt: skip
        ly, hx = np.nonzero(consistent)
        fig.add_trace(go.Scatter(x=hx, y=ly, mode="markers", marker=dict(symbol="circle", size=5, color="black"),
                                 name="sign consistent across fits", showlegend=(i == 0), hoverinfo="skip"),
                      row=r, col=c)  # fmt: skip
        fig.update_xaxes(title_text="head", row=r, col=c)
        fig.update_yaxes(title_text="layer", row=r, col=c)
        for l in range(mean.shape[0]):
            for h in range(mean.shape[1]):
                records.append({"task": t, "layer": l, "head": h, "theta_mean": float(mean[l, h]),
                                "theta_sd": float(np.asarray(table[t]["theta_sd"])[l, h]),
                                "sign_consistent": bool(consistent[l, h])})  # fmt: skip
    style(fig, "θ stability: mean θ over fits (seeds, disjoint halves); dots: same sign in every fit",
          height=420 * rows, width=300 * cols + 150)  # fmt: skip
    return fig, pd.DataFrame(records)


def stability_frame(table: dict) -> pd.DataFrame:
    """One row per (task, pair of fits): Spearman of θ and of head sizes, top-10 overlap."""
    rows = []
    for t, s in table.items():
        for p in s["pairs"]:
            rows.append({"task": t, **{k: v for k, v in p.items() if not isinstance(v, list)},
                         "spearman_theta_ci_low": p["spearman_theta_ci"][0], "spearman_theta_ci_high": p["spearman_theta_ci"][1]})  # fmt: skip
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- head count
def plot_headcount(rows: list[dict]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = pd.DataFrame(rows)
    if df.empty:
        raise AnalysisError("the head-count table is empty: run `interp science run headcount` first")
    tasks = list(dict.fromkeys(df["task"]))
    fig = make_subplots(rows=len(SETTINGS), cols=len(tasks), shared_yaxes=True,
                        subplot_titles=[f"{t} ({s})" for s in SETTINGS for t in tasks])  # fmt: skip
    for j, t in enumerate(tasks):
        for i, s in enumerate(SETTINGS):
            for method in dict.fromkeys(df["method"]):
                sub = df[(df.task == t) & (df.setting == s) & (df.method == method)].sort_values("k")
                if sub.empty:
                    continue
                fig.add_trace(go.Scatter(x=sub["k"], y=sub["accuracy"], error_y=_errors(sub), mode="lines+markers",
                                         name=method, legendgroup=method, showlegend=(i == 0 and j == 0),
                                         line=dict(color=COLOURS.get(method))), row=i + 1, col=j + 1)  # fmt: skip
            fig.update_xaxes(type="log", title_text="heads (k)", row=i + 1, col=j + 1)
        fig.update_yaxes(title_text="test accuracy", range=[0, 1.02], row=1, col=1)
        fig.update_yaxes(title_text="test accuracy", range=[0, 1.02], row=2, col=1)
    style(fig, "Head-count curve: accuracy vs number of heads (95% Wilson intervals)", height=700,
          width=max(700, 330 * len(tasks)))  # fmt: skip
    return fig, df.drop(columns=[c for c in ("heads",) if c in df])


# ----------------------------------------------------------------------------------------------- controls
CONTROL_ORDER = ("LTV", "random-θ", "cross-task basis", "random-label basis", "steering", "LTV (zero-shot only)",
                 "LTV (shuffled only)", "none")  # fmt: skip


def plot_controls(rows: list[dict]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = pd.DataFrame(rows)
    if df.empty:
        raise AnalysisError("the controls table is empty: run `interp science run core` first")
    tasks = list(dict.fromkeys(df["task"]))
    fig = make_subplots(rows=len(SETTINGS), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[f"{s} test prompts" for s in SETTINGS])  # fmt: skip
    variants = [v for v in CONTROL_ORDER if v in set(df["variant"])]
    for i, s in enumerate(SETTINGS):
        for v in variants:
            sub = df[(df.setting == s) & (df.variant == v)].set_index("task").reindex(tasks).reset_index()
            fig.add_trace(go.Bar(x=sub["task"], y=sub["accuracy"], error_y=_errors(sub[["accuracy", "ci_low", "ci_high"]].fillna(0)), name=v,
                                 legendgroup=v, showlegend=(i == 0), marker_color=COLOURS.get(v)), row=i + 1, col=1)  # fmt: skip
        icl = df[df.variant == "ICL (clean)"].set_index("task").reindex(tasks).reset_index()
        fig.add_trace(go.Scatter(x=icl["task"], y=icl["accuracy"], mode="markers", name="ICL (clean, 10-shot)",
                                 marker=dict(symbol="line-ew-open", size=40, color="black", line=dict(width=3, color="black")),
                                 legendgroup="icl", showlegend=(i == 0)), row=i + 1, col=1)  # fmt: skip
        fig.update_yaxes(title_text="test accuracy", range=[0, 1.05], row=i + 1, col=1)
    fig.update_layout(barmode="group")
    style(fig, "Controls vs the LTV (95% Wilson intervals; black line: clean 10-shot ICL)",
          height=800, width=max(900, 170 * len(tasks)))  # fmt: skip
    return fig, df


# ----------------------------------------------------------------------------------------------- data efficiency
def plot_data_efficiency(rows: list[dict]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = pd.DataFrame(rows)
    if df.empty:
        raise AnalysisError("the data-efficiency table is empty: run `interp science run data` first")
    tasks = list(dict.fromkeys(df["task"]))
    fig = make_subplots(rows=len(SETTINGS), cols=len(tasks), shared_yaxes=True,
                        subplot_titles=[f"{t} ({s})" for s in SETTINGS for t in tasks])  # fmt: skip
    curves = df[df.n_train.notna()]
    x_max = float(curves["n_train"].max()) if not curves.empty else 32.0
    x_min = float(curves["n_train"].min()) if not curves.empty else 4.0
    for j, t in enumerate(tasks):
        for i, s in enumerate(SETTINGS):
            for method in ("LTV", "steering"):
                sub = curves[(curves.task == t) & (curves.setting == s) & (curves.method == method)].sort_values("n_train")
                if not sub.empty:
                    fig.add_trace(go.Scatter(x=sub["n_train"], y=sub["accuracy"], error_y=_errors(sub), mode="lines+markers",
                                             name=method, legendgroup=method, showlegend=(i == 0 and j == 0),
                                             line=dict(color=COLOURS.get(method))), row=i + 1, col=j + 1)  # fmt: skip
            for method in ("FV", "TV"):
                ref = df[(df.task == t) & (df.setting == s) & (df.method == method)]
                if not ref.empty:
                    y = float(ref["accuracy"].iloc[0])
                    fig.add_trace(go.Scatter(x=[x_min, x_max], y=[y, y], mode="lines", name=f"{method} (no labels)",
                                             legendgroup=method, showlegend=(i == 0 and j == 0),
                                             line=dict(color=COLOURS.get(method), dash="dash")), row=i + 1, col=j + 1)  # fmt: skip
            sizes = sorted({int(n) for n in curves["n_train"]})
            fig.update_xaxes(type="log", tickvals=sizes, ticktext=[str(n) for n in sizes],
                             title_text="labelled prompts per corruption", row=i + 1, col=j + 1)  # fmt: skip
    fig.update_yaxes(range=[0, 1.02])
    style(fig, "Data efficiency: test accuracy vs labelled training prompts (95% Wilson intervals)", height=700,
          width=max(700, 330 * len(tasks)))  # fmt: skip
    return fig, df


# ----------------------------------------------------------------------------------------------- portability
def plot_portability(rows: list[dict]):
    """Per task, each vector's zero-shot accuracy on the natural templates: the bar is the mean over templates,
    each dot one template (12 templates × 7 methods are unreadable as grouped bars)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from analyses.science.portability import ORTHOGONAL, PROJECTED

    df = pd.DataFrame(rows)
    if df.empty:
        raise AnalysisError("the portability table is empty: run `interp science run portability` first")
    df = df.drop(columns=[c for c in ("correct",) if c in df])
    tasks = list(dict.fromkeys(df["task"]))
    methods = [m for m in ("none", "LTV", "steering", PROJECTED, ORTHOGONAL, "FV", "TV") if m in set(df.method)]
    n_rows, n_cols = _grid(len(tasks))
    fig = make_subplots(rows=n_rows, cols=n_cols, shared_yaxes=True, subplot_titles=tasks)
    colours = {**COLOURS, PROJECTED: "#c49c94", ORTHOGONAL: "#e7cb94"}
    for j, t in enumerate(tasks):
        r, c = j // n_cols + 1, j % n_cols + 1
        for method in methods:
            sub = df[(df.task == t) & (df.method == method)]
            if sub.empty:
                continue
            fig.add_trace(go.Bar(x=[method], y=[sub["accuracy"].mean()], name=method, legendgroup=method,
                                 showlegend=(j == 0), marker_color=colours.get(method), opacity=0.8,
                                 hovertext=f"mean over {len(sub)} templates"), row=r, col=c)  # fmt: skip
            fig.add_trace(go.Scatter(x=[method] * len(sub), y=sub["accuracy"], mode="markers", text=sub["template"],
                                     marker=dict(color="black", size=4), showlegend=False, legendgroup=method,
                                     hovertemplate="%{text}: %{y:.2f}<extra></extra>"), row=r, col=c)  # fmt: skip
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(range=[0, 1.05])
    fig.update_yaxes(title_text="zero-shot accuracy", col=1)
    n_templates = df["template"].nunique()
    style(fig, f"Natural-text portability: bar = mean over {n_templates} demonstration-free templates, dot = one "
               "template; steering→span(ā) is the free vector projected onto the head means",
          height=330 * n_rows + 120, width=max(700, 300 * n_cols))  # fmt: skip
    return fig, df


# ----------------------------------------------------------------------------------------------- tuned steering
def plot_tuned(rows: list[dict]):
    """LTV vs free steering, both tuned on valid from the same grid: per task and setting, accuracy averaged
    over fit seeds (each seed its dot); hover shows the chosen learning rates and best steps."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = pd.DataFrame(rows)
    if df.empty:
        raise AnalysisError("the tuned table is empty: run `interp science run tuned` first")
    df = df.drop(columns=[c for c in ("correct", "lr_grid") if c in df])
    tasks = list(dict.fromkeys(df["task"]))
    fig = make_subplots(rows=len(SETTINGS), cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=[f"{s} test prompts" for s in SETTINGS])  # fmt: skip
    colours = {"LTV (tuned)": COLOURS.get("LTV"), "steering (tuned)": COLOURS.get("steering")}
    for i, s in enumerate(SETTINGS):
        for j, method in enumerate(colours):
            sub = df[(df.setting == s) & (df.method == method)]
            if sub.empty:
                continue
            mean = sub.groupby("task", sort=False)["accuracy"].mean().reindex(tasks)
            info = sub.groupby("task", sort=False).apply(
                lambda g: ", ".join(f"seed {r.seed}: lr {r.lr}, best step {r.best_step}" for r in g.itertuples()),
                include_groups=False).reindex(tasks)  # fmt: skip
            fig.add_trace(go.Bar(x=tasks, y=mean.values, name=method, legendgroup=method, showlegend=(i == 0),
                                 marker_color=colours[method], offsetgroup=j, hovertext=info.values),
                          row=i + 1, col=1)  # fmt: skip
            fig.add_trace(go.Scatter(x=sub["task"], y=sub["accuracy"], mode="markers", showlegend=False,
                                     marker=dict(color="black", size=4), legendgroup=method, offsetgroup=j),
                          row=i + 1, col=1)  # fmt: skip
        fig.update_yaxes(title_text="test accuracy", range=[0, 1.05], row=i + 1, col=1)
    fig.update_layout(barmode="group", scattermode="group")
    style(fig, "LTV vs free steering, both with lr chosen on valid from the same grid and early-stopped "
               "(bar: mean over fit seeds; dot: one seed)", height=700, width=max(900, 150 * len(tasks)))  # fmt: skip
    return fig, df


# ----------------------------------------------------------------------------------------------- two models
def plot_claims_by_model(claims: list[dict]):
    """Every text claim judged on more than one model: its headline estimate (the first interval in its
    evidence) with the 95% interval, one marker per model, the verdicts beside it — the study side by side."""
    import plotly.graph_objects as go

    from analyses.science.claims import headline_estimate

    rows = []
    for c in claims:
        if str(c.get("model", "")).startswith("regression:") or len(c.get("verdicts_by_model") or {}) < 2:
            continue
        h = headline_estimate(c.get("evidence", {}))
        if h is not None:
            rows.append({"claim": c["claim"], "model": c["model"], "estimate_name": h[0], "estimate": h[1],
                         "ci_low": h[2], "ci_high": h[3], "verdict": c["verdict"],
                         "replicates": c.get("replicates")})  # fmt: skip
    df = pd.DataFrame(rows)
    if df.empty:
        raise AnalysisError("no claim has verdicts on two models yet: run `interp science summarise` per model")
    claims_order = list(dict.fromkeys(df["claim"]))
    short = {c: (c if len(c) <= 70 else c[:67] + "…") for c in claims_order}
    models = list(dict.fromkeys(df["model"]))
    fig = go.Figure()
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
    for i, model in enumerate(models):
        sub = df[df.model == model]
        offset = (i - (len(models) - 1) / 2) * 0.25
        y = [len(claims_order) - 1 - claims_order.index(c) + offset for c in sub["claim"]]
        fig.add_trace(go.Scatter(
            x=sub["estimate"], y=y, mode="markers", name=model, marker=dict(color=palette[i % len(palette)], size=8,
            symbol=["circle" if v == "supported" else "x" if v == "not supported" else "diamond" for v in sub["verdict"]]),
            error_x=dict(type="data", symmetric=False, array=(sub["ci_high"] - sub["estimate"]).tolist(),
                         arrayminus=(sub["estimate"] - sub["ci_low"]).tolist()),
            text=[f"{v} · {n}" for v, n in zip(sub["verdict"], sub["estimate_name"])],
            hovertemplate="%{text}: %{x:.3f}<extra>" + model + "</extra>"))  # fmt: skip
    fig.add_vline(x=0, line_dash="dot", line_color="grey")
    ticks = [short[c] + ("  ✓" if df[df.claim == c]["replicates"].iloc[0] else "  ✗") for c in claims_order]
    fig.update_yaxes(tickvals=list(range(len(claims_order)))[::-1], ticktext=ticks, tickfont=dict(size=10))
    fig.update_xaxes(title_text="headline estimate with 95% interval (clustered over tasks; see each claim's evidence)")
    style(fig, "The study on two models: ● supported, ✕ not supported, ◆ confounded; ✓ / ✗ after a claim: the "
               "verdict replicates / differs", height=max(400, 34 * len(claims_order) + 160), width=1250)  # fmt: skip
    return fig, df


# ----------------------------------------------------------------------------------------------- all
FIGURES = (
    ("stability", "plot_theta_stability", "science_theta_stability",
     "θ stability: per task, θ averaged over LTV fits with different seeds (every prompt redrawn) and on two "
     "disjoint halves of the train split; dots mark heads whose θ has the same sign in every fit. Subplot titles: "
     "Spearman correlation of θ between the halves' fits and between the seeds' fits (Fisher-z intervals in "
     "`results/science/stability.json`)."),
    ("stability_sweep", "plot_theta_stability", "science_theta_stability_seeds",
     "θ stability across seeds at the comparison's settings: per task, θ averaged over the LTV fits of the sweep "
     "store (one per seed; a seed redraws the training queries, demonstrations and ā prompts from the same split); "
     "dots mark heads whose θ has the same sign in every fit. Subplot titles: Spearman correlation of θ between "
     "the first two seeds' fits (every pair, with Fisher-z intervals, in `results/science/stability_sweep.json`)."),
    ("headcount", "plot_headcount", "science_headcount",
     "Head-count curve: test accuracy vs number of heads k for the LTV pruned to its top-k heads by |θ|·‖ā‖ and "
     "refitted, the FV built from the top-k heads by causal indirect effect (layer re-chosen on valid), and an LTV "
     "refitted on the FV's k heads; the rightmost LTV point is the full LTV (all heads). 95% Wilson intervals."),
    ("controls", "plot_controls", "science_controls",
     "Controls per task: the LTV beside θ on another task's ā (cross-task basis), on ā of random-label prompts, "
     "a random θ of the same norm, a free per-layer steering vector trained identically, LTVs trained on one "
     "corruption only, and the bare model; black bars: clean 10-shot ICL on the same test queries. 95% Wilson intervals."),
    ("data_efficiency", "plot_data_efficiency", "science_data_efficiency",
     "Data efficiency: test accuracy vs labelled training prompts per corruption for the LTV and the free steering "
     "vector; dashed: FV and TV (no labels beyond the demonstrations). 95% Wilson intervals."),
    ("tuned", "plot_tuned", TUNED_FIGURE,
     "The free steering control, budget-matched: the LTV and a free per-layer steering vector, each with its "
     "learning rate chosen on the valid split from the same grid and trained until the valid loss stops "
     "improving (up to 240 steps), at several fit seeds (the same test queries). Bar: mean over seeds; dot: one "
     "seed; hover: the chosen rate and best step."),
    ("portability", "plot_portability", "science_portability",
     "Natural-text portability: each vector (fitted on Q/A prompts) added to demonstration-free natural templates; "
     "the bare model for reference. 95% Wilson intervals."),
)  # fmt: skip




def draw_all(save, science_dir: str | Path = SCIENCE_DIR) -> tuple[dict, list[str]]:
    """Draw every figure whose table exists with ``save(fig, name, caption)``; returns (drawn rows, missing tables)."""
    drawn, missing = {}, []
    for table, fn, name, caption in FIGURES:
        rows = load_table(table, science_dir)
        if not rows:
            missing.append(table)
            continue
        fig, df = globals()[fn](rows)
        save(fig, name, caption + f" Source: `{science_dir}/{table}.json`.")
        drawn[name] = len(df)
    return drawn, missing
