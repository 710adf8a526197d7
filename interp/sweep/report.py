"""The comparison table of a sweep, from its results store: every method x task x setting, means across seeds.

`summary_frame` reduces the store's tidy table to one row per (task, method, setting): the mean accuracy over
seeds, its spread (sample standard deviation over seeds, and min / max), the number of seeds, the Wilson 95%
interval when there is one seed, and Todd's filtered accuracy (items clean ICL answered right) averaged the
same way. The clean-ICL cell has no corruption; it is shown under each corrupted setting.

    interp report --sweep results/sweeps/NAME     # NAME/report.md, NAME/comparison_table.{html,png}, summary.csv
"""

from __future__ import annotations

import contextlib
import json
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from interp.defaults import ROW_ORDER, SETTINGS, STRONG_ICL, WEAK_ICL, WIDE
from interp.sweep.cells import LABELS
from interp.sweep.store import read_results



def summary_frame(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method label, setting): accuracy mean / std / min / max over seeds and its CI."""
    if tidy.empty:
        raise ValueError("the sweep's store has no finished cells yet; run `interp sweep` first")
    acc = tidy[tidy.metric == "accuracy"]
    filt = tidy[tidy.metric == "accuracy_filtered"][["task", "method", "setting", "seed", "value"]]
    filt = filt.rename(columns={"value": "filtered"})
    d = acc.merge(filt, on=["task", "method", "setting", "seed"], how="left")
    settings = [s for s in SETTINGS if s in set(d.setting)] or list(SETTINGS)
    # the clean-ICL cell is repeated under every corrupted setting
    icl = d[d.setting == "icl"]
    d = pd.concat([d[d.setting != "icl"]] + [icl.assign(setting=s) for s in settings], ignore_index=True)
    rows = []
    for (task, method, setting), g in d.groupby(["task", "method", "setting"], sort=False):
        vals = g.value.to_numpy(float)
        one = len(g) == 1
        rows.append({
            "task": task, "method": LABELS.get(method, method), "setting": setting,
            "accuracy": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            "min": float(vals.min()), "max": float(vals.max()), "n_seeds": len(vals),
            "seeds": ",".join(str(s) for s in sorted(g.seed)),
            "ci_low": float(g.ci_low.iloc[0]) if one else np.nan, "ci_high": float(g.ci_high.iloc[0]) if one else np.nan,
            "n": int(g.n.max()), "filtered_accuracy": float(np.nanmean(g.filtered)) if g.filtered.notna().any() else np.nan,
        })  # fmt: skip
    out = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(ROW_ORDER)}
    return out.sort_values(["setting", "method"], key=lambda s: s.map(order).fillna(99) if s.name == "method" else s,
                           kind="stable").reset_index(drop=True)  # fmt: skip


def format_cell(row) -> str:
    if row["n_seeds"] > 1:
        return f"{row['accuracy']:.2f} ± {row['std']:.2f}"
    return f"{row['accuracy']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"




def icl_accuracy(summary: pd.DataFrame) -> dict[str, float]:
    """Clean-ICL accuracy (mean over seeds) per task."""
    icl = summary[summary.method == LABELS["icl"]].drop_duplicates("task")
    return dict(zip(icl.task, icl.accuracy))


def headline_frame(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, method): accuracy averaged over the tasks that have every method — all of them, and those
    where clean ICL ≥ 0.5 —
    and, over the tasks that have several seeds, the mean over seeds of the per-seed task means ± their sample
    standard deviation (the spread a reader should compare differences against)."""
    summary = summary_frame(tidy)
    # only tasks that have every method (a sweep in progress has some tasks half done): means compare like with like
    methods = set(summary.method)
    complete = {t for t, g in summary.groupby("task") if set(g.method) == methods}
    summary = summary[summary.task.isin(complete)]
    tidy = tidy[tidy.task.isin(complete)]
    icl = icl_accuracy(summary)
    strong = {t for t, a in icl.items() if a >= STRONG_ICL}
    acc = tidy[tidy.metric == "accuracy"]
    icl_cells = acc[acc.setting == "icl"]
    settings = [s for s in SETTINGS if s in set(acc.setting)]
    acc = pd.concat([acc[acc.setting != "icl"]] + [icl_cells.assign(setting=s) for s in settings], ignore_index=True)
    seeds_per_task = acc[acc.method == "icl"].groupby("task").seed.nunique()
    multi = set(seeds_per_task[seeds_per_task > 1].index)
    rows = []
    for (setting, method), g in summary.groupby(["setting", "method"], sort=False):
        row = {"setting": setting, "method": method, "tasks": len(g), "mean_all": float(g.accuracy.mean()),
               "tasks_strong_icl": int(g.task.isin(strong).sum()),
               "mean_strong_icl": float(g[g.task.isin(strong)].accuracy.mean()) if g.task.isin(strong).any() else np.nan}  # fmt: skip
        code = next((k for k, v in LABELS.items() if v == method), method)
        m = acc[(acc.method == code) & (acc.setting == setting) & acc.task.isin(multi)]
        # per-seed means over the same tasks: only tasks that have every one of the seeds (a sweep in progress
        # has some seeds on some tasks only, which would compare different task sets across seeds)
        grid = m.pivot_table(index="task", columns="seed", values="value") if len(m) else pd.DataFrame()
        row.update(_seed_spread(grid, list(grid.columns)))
        # the seeds shared by the most tasks (e.g. seeds 0,1 on the whole suite when seed 2 ran on 10 tasks):
        # a cruder spread (fewer seeds) over far more tasks, shown beside the all-seeds one
        wide = max((list(c) for k in range(2, len(grid.columns) + 1) for c in combinations(grid.columns, k)),
                   key=lambda c: (len(grid[c].dropna()), len(c)), default=[])  # fmt: skip
        row.update({f"wide_{k}": v for k, v in _seed_spread(grid, wide).items()})
        row["wide_seed_list"] = ",".join(str(int(x)) for x in wide)
        rows.append(row)
    out = pd.DataFrame(rows)
    order = {**{m: i for i, m in enumerate(ROW_ORDER)}, **{s: i for i, s in enumerate(SETTINGS)}}
    return out.sort_values(["setting", "method"], key=lambda s: s.map(order).fillna(99),
                           kind="stable").reset_index(drop=True)  # fmt: skip


def _seed_spread(grid: pd.DataFrame, seeds: list) -> dict:
    """Mean ± sample std over ``seeds`` of the per-seed means over the tasks that have every one of them."""
    sub = grid[seeds].dropna() if len(grid) and seeds else pd.DataFrame()
    per_seed = sub.mean(axis=0) if len(sub) else pd.Series(dtype=float)
    return {"seeded_tasks": int(len(sub)), "seeds": len(per_seed),
            "seed_mean": float(per_seed.mean()) if len(per_seed) else np.nan,
            "seed_std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else np.nan}  # fmt: skip


def headline_markdown(head: pd.DataFrame) -> str:
    wide = "wide_seeds" in head and bool(((head.wide_seeded_tasks != head.seeded_tasks) & (head.wide_seeds > 1)).any())
    lines = ["| setting | method | mean over tasks (n tasks) | mean over tasks with clean ICL ≥ 0.5 (n) | "
             "tasks with every seed: mean ± std over seeds (n tasks) |" +
             (" most tasks: mean ± std over seeds (n tasks; seeds) |" if wide else ""),
             "|---|---|---|---|---|" + ("---|" if wide else "")]  # fmt: skip
    for r in head.itertuples(index=False):
        seeded = (f"{r.seed_mean:.3f} ± {r.seed_std:.3f} ({r.seeded_tasks})" if r.seeds > 1 else "–")
        strong = f"{r.mean_strong_icl:.3f} ({r.tasks_strong_icl})" if r.tasks_strong_icl else "–"
        line = f"| {r.setting} | {r.method} | {r.mean_all:.3f} ({r.tasks}) | {strong} | {seeded} |"
        if wide:
            line += (f" {r.wide_seed_mean:.3f} ± {r.wide_seed_std:.3f} ({r.wide_seeded_tasks}; {r.wide_seed_list}) |"
                     if r.wide_seeds > 1 else " – |")  # fmt: skip
        lines.append(line)
    return "\n".join(lines) + "\n"


def _tasks_as_rows(summary: pd.DataFrame, how: str) -> str:
    """Rows = tasks (by clean-ICL accuracy), columns = methods; one block per setting. Tasks where clean ICL is
    below `WEAK_ICL` are marked † (there is little ICL behaviour to restore there), not dropped."""
    icl = icl_accuracy(summary)
    tasks = sorted(set(summary.task), key=lambda t: (-icl.get(t, -1), t))
    methods = [m for m in ROW_ORDER if m in set(summary.method)] + sorted(set(summary.method) - set(ROW_ORDER))
    lines = [f"\n† clean ICL < {WEAK_ICL}: a task with little in-context behaviour to restore "
             f"({sum(a < WEAK_ICL for a in icl.values())} of {len(tasks)} tasks).\n"]  # fmt: skip
    for setting in [s for s in SETTINGS if s in set(summary.setting)]:
        d = summary[summary.setting == setting]
        lines.append(f"\n**{setting}** (test split, top-1 first-token accuracy; {how}; n = {int(d.n.max())} test "
                     "queries per cell)\n")  # fmt: skip
        lines.append("| task | " + " | ".join(methods) + " |")
        lines.append("|---" * (len(methods) + 1) + "|")
        for t in tasks:
            vals = []
            for m in methods:
                c = d[(d.method == m) & (d.task == t)]
                vals.append("–" if c.empty else format_cell(c.iloc[0]))
            mark = " †" if icl.get(t, 1.0) < WEAK_ICL else ""
            lines.append(f"| {t}{mark} | " + " | ".join(vals) + " |")
        means = []
        for m in methods:
            dm = d[d.method == m]
            full = dm.task.nunique() == len(tasks)
            means.append(f"**{dm.accuracy.mean():.3f}**" + ("" if full else f" ({dm.task.nunique()} tasks)") if len(dm) else "–")
        lines.append("| **mean over tasks** | " + " | ".join(means) + " |")
    return "\n".join(lines) + "\n"


def to_markdown(summary: pd.DataFrame) -> str:
    """Rows = methods, columns = tasks (+ mean over tasks); one block per setting (tasks as rows when many)."""
    tasks = sorted(set(summary.task))
    methods = [m for m in ROW_ORDER if m in set(summary.method)] + sorted(set(summary.method) - set(ROW_ORDER))
    seeds = sorted(set(summary.n_seeds))
    how = ("mean ± sample std over seeds where a task has several, else one seed's 95% Wilson CI"
           if max(seeds) > 1 else "one seed, 95% Wilson CI")  # fmt: skip
    if len(tasks) > WIDE:
        return _tasks_as_rows(summary, how)
    lines = []
    for setting in [s for s in SETTINGS if s in set(summary.setting)]:
        d = summary[summary.setting == setting]
        lines.append(f"\n**{setting}** (test split, top-1 first-token accuracy; {how}; "
                     f"n = {int(d.n.max())} test queries per cell, seeds per cell: {'/'.join(map(str, seeds))})\n")  # fmt: skip
        lines.append("| method | " + " | ".join(tasks) + " | mean over tasks | filtered (Todd) |")
        lines.append("|---" * (len(tasks) + 3) + "|")
        for m in methods:
            vals, accs = [], []
            for t in tasks:
                c = d[(d.method == m) & (d.task == t)]
                if c.empty:
                    vals.append("–")
                else:
                    vals.append(format_cell(c.iloc[0]))
                    accs.append(c.iloc[0].accuracy)
            dm = d[d.method == m]
            full = len(accs) == len(tasks)
            mean = f"{np.mean(accs):.3f}" + ("" if full else f" ({len(accs)} tasks)") if accs else "–"
            filt = f"{np.nanmean(dm.filtered_accuracy):.3f}" if dm.filtered_accuracy.notna().any() else "–"
            lines.append(f"| {m} | " + " | ".join(vals) + f" | {mean} | {filt} |")
    return "\n".join(lines) + "\n"


def seed_means(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean over tasks per (method, setting) — over tasks every method has — for the headline numbers."""
    return (summary.groupby(["setting", "method"]).accuracy.agg(["mean", "count"]).reset_index()
            .rename(columns={"mean": "mean_accuracy", "count": "tasks"}))  # fmt: skip


def _markdown_table(df: pd.DataFrame) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|---" * len(df.columns) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def cost_frame(sweep: str | Path) -> pd.DataFrame:
    """Measured cost per method from the cell records: fits (counted once per fitted vector, fresh fits only)
    and evaluations, in seconds of wall time on the worker that computed them."""
    from interp.sweep.store import Store

    fits: dict[str, tuple[str, float]] = {}
    evals: dict[str, list[float]] = {}
    for r in Store(sweep).records().values():
        t = r.get("timing") or {}
        if r.get("status") != "ok":
            continue
        evals.setdefault(r["method"], []).append(t.get("eval_s", np.nan))
        if r.get("artifact") and not t.get("fit_reused", True) and r["method"] != "random":
            fits[r["artifact"]] = (r["method"], t["fit_s"])
    rows = []
    for method, values in evals.items():
        f = [s for m, s in fits.values() if m == method]
        rows.append({"method": LABELS.get(method, method), "cells": len(values),
                     "eval_s_mean": float(np.nanmean(values)), "fits": len(f),
                     "fit_s_mean": float(np.mean(f)) if f else np.nan})  # fmt: skip
    order = {m: i for i, m in enumerate(ROW_ORDER)}
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sort_values("method", key=lambda m: m.map(order).fillna(99)).reset_index(drop=True)
        total = df.eval_s_mean * df.cells + df.fit_s_mean.fillna(0) * df.fits
        df["share_of_time"] = (total / total.sum()).round(3)
    return df


def grid_results(sweep: str | Path, all_cells: bool = False) -> pd.DataFrame:
    """The store's tidy table restricted to the grid of its last ``interp sweep`` run (``all_cells``: every
    finished cell, e.g. of earlier grids with other tasks, which would otherwise be averaged together)."""
    sweep = Path(sweep)
    tidy = read_results(sweep)
    meta_path = sweep / "sweep.json"
    if not all_cells and meta_path.exists():
        grid = json.loads(meta_path.read_text()).get("grid")
        if grid:
            tidy = tidy[tidy.key.isin(set(grid))].reset_index(drop=True)
    # cells of one (task, method, setting, seed) under different keys (e.g. an earlier method config): keep one,
    # so that no seed is counted twice
    return tidy.drop_duplicates(["task", "method", "setting", "seed", "metric"], keep="last").reset_index(drop=True)


def write_report(sweep: str | Path, out: str | Path | None = None, quiet: bool = False, all_cells: bool = False) -> dict:
    """report.md, summary.csv and the comparison figure (HTML, PNG when a browser is available) of a store."""
    sweep = Path(sweep)
    out = Path(out) if out else sweep
    out.mkdir(parents=True, exist_ok=True)
    tidy = grid_results(sweep, all_cells)
    summary = summary_frame(tidy)
    md = to_markdown(summary)
    meta = json.loads((sweep / "sweep.json").read_text()) if (sweep / "sweep.json").exists() else {}
    model = meta.get("config", {}).get("model", "?")
    failed = [r for r in meta.get("failures", [])]
    notes = ""
    if failed:
        notes = "\nFailed cells in the last run (rerun the sweep to retry): " + "; ".join(
            f"{f['task']}/{f['method']}/{f['setting']}/seed {f['seed']}: {f['error']}" for f in failed[:20]) + "\n"  # fmt: skip
    head = headline_frame(tidy)
    md = ("**Means over tasks** (each method's mean accuracy; the spread over seeds is that of the per-seed means "
          "over the tasks run with several seeds)\n\n" + headline_markdown(head) + md)  # fmt: skip
    cost = cost_frame(sweep)
    if len(cost):
        md += ("\n**Cost per method** (wall seconds on the worker, this machine and its load; a vector is fitted once "
               "and evaluated in both settings; the first evaluation in a setting also builds that setting's test "
               "prefixes)\n\n" + _markdown_table(cost) + "\n")  # fmt: skip
    (out / "report.md").write_text(f"# Sweep {sweep.name}: text comparison ({model})\n\nSource: `{sweep}/results.parquet`"
                                   f" ({tidy.key.nunique()} cells).\n{notes}\n{md}")  # fmt: skip
    summary.to_csv(out / "summary.csv", index=False)
    head.to_csv(out / "headline.csv", index=False)
    files = [str(out / "report.md"), str(out / "summary.csv"), str(out / "headline.csv")]
    try:
        from interp.plot.table import plot_comparison_table
        from interp.plot.style import FigureWriter

        fig, _ = plot_comparison_table(summary, title=f"Sweep {sweep.name}: every method on every task ({model})")
        with contextlib.redirect_stdout(sys.stderr):  # the writer's notes must not pollute a --json stdout
            writer = FigureWriter(out)
            writer.save(fig, "comparison_table", "comparison table")
            writer.flush()
        files += [str(out / "comparison_table.html")] + ([str(out / "comparison_table.png")] if (out / "comparison_table.png").exists() else [])
    except ImportError as err:  # plotly not installed: the Markdown is still written
        files.append(f"(figure skipped: {err})")
    if not quiet:
        print(md)
        print("wrote " + ", ".join(files))
    table = json.loads(summary.to_json(orient="records"))  # NaN -> null: strict JSON
    return {"files": files, "cells": int(tidy.key.nunique()), "table": table,
            "headline": json.loads(head.to_json(orient="records"))}


def load_comparison(sweep: str | Path):
    """The comparison summary (one row per task x method x setting, means over seeds) of every finished cell of
    the sweep store at ``sweep`` (an ``interp sweep --out`` folder), or None when that store does not exist (yet)."""
    sweep = Path(sweep)
    if not (sweep / "cells").is_dir():
        return None
    tidy = grid_results(sweep, all_cells=True)  # the store grows over several runs (seeds, task subsets)
    return summary_frame(tidy) if len(tidy) else None
