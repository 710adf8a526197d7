"""Verdicts: the paper's claims and each control, with numbers, 95% intervals and a verdict.

`summarise` reads every stored unit (a read-only store: nothing is computed; a task whose units are not
there yet is left out and listed), writes one tidy table per experiment to ``results/science/*.json``, and
the claims to ``results/claims.json``. Each claim is

    {"claim": ..., "verdict": "supported" | "not supported" | "confounded", "evidence": {...}, "figure": ...}

where every number in ``evidence`` that is an estimate carries ``ci_low`` / ``ci_high`` (Wilson for an
accuracy; a paired bootstrap over test queries for a difference of accuracies on the same queries; a
bootstrap over tasks for a mean over tasks; Fisher z for one correlation). The rule behind each verdict is
stated in the claim's ``rule`` field, fixed before looking at the numbers. Claims about regression come
from ``results/regression_positions/claims.json`` (written by the regression experiments) and are merged
in unchanged when that file exists.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from interp.defaults import STRONG_ICL
from interp.stats import bootstrap_mean, bootstrap_p_value, clustered_bootstrap, holm, wilson, wilson_interval
from analyses.science import controls, data_efficiency, portability, sparse, stability, sweep_claims, sweep_stability, tuned
from analyses.science.fits import fit_unit, plain_unit
from analyses.science.phases import CLAIMS_PATH, SCIENCE_DIR
from analyses.science.units import Context, MissingUnit, UnitStore, claim_record as _claim

REGRESSION_CLAIMS = Path("results/regression_positions/claims.json")
COMPARISON = Path("results/text_comparison.json")


# ----------------------------------------------------------------------------------------------- gathering
def _try(fn, *a, **kw):
    try:
        return fn(*a, **kw)
    except MissingUnit:
        return None


def gather(ctx: Context, store: UnitStore, tasks, portability_methods=None) -> dict:
    """Every experiment's tidy table from the stored units (tasks / variants not computed yet are skipped)."""
    tables: dict = {"controls": [], "stability": {}, "headcount": [], "data_efficiency": [], "portability": [],
                    "tuned": [], "missing": []}  # fmt: skip
    for task in tasks:
        fits = {}
        for name, kw in {
            "LTV": dict(random_control=True), "steering": dict(method="steer"),
            "cross-task basis": dict(basis=f"task:{controls.cross_task_source(task, tasks)}"),
            "LTV (zero-shot only)": dict(overrides={"corruptions": ["zero-shot"]}),
            "LTV (shuffled only)": dict(overrides={"corruptions": ["shuffled"]}),
            "random-label basis": dict(basis="random-label"),
            "Gaussian basis": dict(basis="gaussian"), "no-task basis": dict(basis="no-task"),
        }.items():  # fmt: skip
            found = _try(fit_unit, ctx, store, task, **kw)
            if found is not None:
                fits[name] = found
            else:
                tables["missing"].append(f"controls: {task} {name}")
        plain = _try(plain_unit, ctx, store, task)
        if "LTV" in fits and plain is not None:
            tables["controls"] += controls.summarise_task(task, {**fits, "plain": plain}, tasks)
        stab = {}
        for s in stability.SEEDS:
            stab[f"seed {s}"] = _try(fit_unit, ctx, store, task, seed=s, random_control=(s == 0))
        for h in stability.HALVES:
            stab[f"half {'AB'[h]}"] = _try(fit_unit, ctx, store, task, train_half=h)
        stab = {k: v for k, v in stab.items() if v is not None}
        if len(stab) >= 2:
            tables["stability"][task] = stability.summarise_task(stab)
        hc = _try(sparse.units, ctx, store, task)
        if hc is not None:
            tables["headcount"] += sparse.summarise_task(task, hc, ctx.model.cfg.n_layers * ctx.model.cfg.n_heads)
        de = _try(data_efficiency.units, ctx, store, task)
        if de is not None:
            tables["data_efficiency"] += data_efficiency.summarise_task(task, de)
        tu = tuned.gather(ctx, store, task)
        if tu:
            tables["tuned"] += tuned.summarise_task(task, tu)
        else:  # a grid or an extension past its edge not fitted yet: the task is left out, and says so
            tables["missing"].append(f"tuned: {task} (run `interp science run tuned`)")
        po = _try(portability.units, ctx, store, task, methods=tuple(portability_methods or portability.METHODS))
        if po is not None:
            tables["portability"] += portability.summarise_task(task, po)
    return tables


# ----------------------------------------------------------------------------------------------- helpers
def _acc(cell: dict) -> dict:
    return {k: cell[k] for k in ("accuracy", "ci_low", "ci_high", "n")}


def _rows(table, **match):
    return [r for r in table if all(r.get(k) == v for k, v in match.items())]


def _fits_correct(ctx, store, tasks, kw, setting) -> dict[str, list[bool]]:
    out = {}
    for task in tasks:
        f = _try(fit_unit, ctx, store, task, **kw)
        if f is not None:
            out[task] = f["eval"][setting]["correct"]
    return out


def _by_task(values: dict[str, list]) -> dict[str, np.ndarray]:
    """``{"task" or "task|variant": per-query values}`` -> ``{task: (n_variants, n_queries) or (n_queries,)}``:
    variants of one task (templates, seeds) score the same queries, so they are rows of one cluster."""
    grouped: dict[str, list] = {}
    for key, v in values.items():
        grouped.setdefault(key.split("|", 1)[0], []).append(np.asarray(v, dtype=float))
    out = {}
    for task, rows in grouped.items():
        if len({len(r) for r in rows}) == 1:
            out[task] = np.stack(rows) if len(rows) > 1 else rows[0]
        else:  # unequal query counts cannot be paired per query: keep the variants' queries side by side
            out[task] = np.concatenate(rows)
    return out


def _pooled_paired(a: dict[str, list[bool]], b: dict[str, list[bool]]) -> dict:
    """Paired difference a - b over the tasks both have: the mean over tasks of each task's mean difference on
    the same queries, with a clustered bootstrap interval (tasks, then queries within a task).

    Keys may be ``task`` or ``task|variant`` (a template, a seed): variants of one task score the same queries
    and are averaged per query, never counted as more queries. ``acc_a`` / ``acc_b`` are the pooled accuracies
    (descriptive, Wilson)."""
    keys = [k for k in a if k in b and len(a[k]) == len(b[k])]
    diffs = _by_task({k: np.asarray(a[k], dtype=float) - np.asarray(b[k], dtype=float) for k in keys})
    c = clustered_bootstrap(diffs)
    xa = [x for k in keys for x in a[k]]
    xb = [x for k in keys for x in b[k]]
    return {"diff": c["mean"], "ci_low": c["ci_low"], "ci_high": c["ci_high"], "n": c["n"], "n_tasks": c["n_clusters"],
            "clustered_by": "task, then query (variants of a task averaged per query)", "tasks": keys,
            "per_task": c["per_cluster"], "acc_a": wilson(xa), "acc_b": wilson(xb)}  # fmt: skip


def _task_mean(values: dict[str, float]) -> dict:
    """``{"task|...": number}`` -> bootstrap over tasks of each task's mean (cells of one task are not
    independent units: they share its queries)."""
    per_task: dict[str, list] = {}
    for key, v in values.items():
        if v is not None and np.isfinite(v):
            per_task.setdefault(key.split("|", 1)[0], []).append(v)
    out = bootstrap_mean([float(np.mean(v)) for v in per_task.values()])
    return {**out, "n_tasks": out["n"], "clustered_by": "task (cells of a task averaged first)"}


# ----------------------------------------------------------------------------------------------- claims
def comparison_claims(steer_vs_ltv: dict | None) -> list[dict]:
    """LTV > FV on zero-shot and on shuffled text, from the full comparison (10 tasks, n ≈ 100 each)."""
    if not COMPARISON.exists():
        return []
    report = json.loads(COMPARISON.read_text())
    out = []
    for setting in ("zero-shot", "shuffled"):
        cells = {(c["task"], c["method"]): c for c in report["cells"] if c["setting"] == setting}
        tasks = sorted({t for t, m in cells if m == "LTV" and (t, "FV") in cells})
        per_task, k_ltv, k_fv, n = {}, 0, 0, 0
        wins = losses = 0
        for t in tasks:
            a, b = cells[(t, "LTV")], cells[(t, "FV")]
            per_task[t] = {"LTV": _acc(a), "FV": _acc(b)}
            k_ltv += round(a["accuracy"] * a["n"])
            k_fv += round(b["accuracy"] * b["n"])
            n += a["n"]
            wins += a["ci_low"] > b["ci_high"]
            losses += b["ci_low"] > a["ci_high"]
        la, ha = wilson_interval(k_ltv, n)
        lf, hf = wilson_interval(k_fv, n)
        diff = (k_ltv - k_fv) / n
        # unpaired normal interval of the pooled difference (the comparison stores no per-query outcomes; the
        # queries are shared, so this interval is conservative)
        se = math.sqrt((k_ltv / n) * (1 - k_ltv / n) / n + (k_fv / n) * (1 - k_fv / n) / n)
        evidence = {
            "difference_LTV_minus_FV": {"diff": diff, "ci_low": diff - 1.96 * se, "ci_high": diff + 1.96 * se},
            "source": str(COMPARISON), "tasks": tasks,
            "LTV_pooled": {"accuracy": k_ltv / n, "ci_low": la, "ci_high": ha, "n": n},
            "FV_pooled": {"accuracy": k_fv / n, "ci_low": lf, "ci_high": hf, "n": n},
            "tasks_LTV_above_FV_ci_disjoint": int(wins), "tasks_FV_above_LTV_ci_disjoint": int(losses),
            "per_task": per_task,
        }  # fmt: skip
        verdict = "supported" if diff - 1.96 * se > 0 else "not supported"
        extra = {}
        if verdict == "supported" and steer_vs_ltv is not None and steer_vs_ltv.get(setting) is not None:
            d = steer_vs_ltv[setting]
            evidence["free_steering_minus_LTV"] = {k: d[k] for k in ("diff", "ci_low", "ci_high", "n")}
            if d["ci_high"] >= 0:  # a label-trained free vector is not worse than the LTV
                verdict = "confounded"
                extra["confounded_by"] = (
                    "label supervision: the LTV is trained on the task's labels, the FV is not; a free steering "
                    "vector trained on the same labelled prompts is not worse than the LTV (see the controls), so "
                    "the gap over the FV does not show that the head basis represents the task")
        out.append(_claim(
            f"LTV > FV on {setting} text prompts", verdict, evidence, "figures/comparison_table.html",
            "supported if the pooled accuracy difference LTV − FV has a 95% interval above 0; confounded if, in "
            "addition, a free steering vector trained on the same labels is not significantly worse than the LTV",
            **extra))  # fmt: skip
    return out


def summarise(tasks, settings, root, tensor_root, out_dir=SCIENCE_DIR, claims_path=CLAIMS_PATH,
              model=None, portability_methods=None, sweep=sweep_stability.DEFAULT_SWEEP) -> dict:  # fmt: skip
    """Tables, verdicts and README of the experiments from the stored units (and, for θ stability across
    seeds, the LTV fits of the sweep store ``sweep``, when it exists); computes nothing."""
    ctx = Context(settings, model)
    store = UnitStore(root, tensor_root, read_only=True)
    tables = gather(ctx, store, list(tasks), portability_methods)
    tables["stability_sweep"] = sweep_stability.stability_table(sweep) if sweep and Path(sweep).is_dir() else {}
    out_dir = Path(out_dir)
    previous = out_dir / "stability_sweep.json"
    if sweep and previous.exists():
        # a sweep's fitted vectors are git-ignored artifacts: a fresh checkout has none, but the committed table
        # keeps each task's derived row; keep the rows whose fits are not here to recompute them
        for task, row in json.loads(previous.read_text()).get("rows", {}).items():
            tables["stability_sweep"].setdefault(task, row)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("controls", "stability", "stability_sweep", "headcount", "data_efficiency", "portability", "tuned"):
        data = tables[name]
        if name in ("portability", "tuned"):
            data = [{k: v for k, v in r.items() if k != "correct"} for r in data]
        meta = {"sweep": str(sweep)} if name == "stability_sweep" else {"settings": settings.to_dict()}
        _write(out_dir / f"{name}.json", {**meta, "rows": data})
    claims = [c for c in build_claims(ctx, store, list(tasks), tables, sweep) if _measured(c)]
    if tables["stability_sweep"]:
        claims.append(seed_stability_claim(tables["stability_sweep"]))
    if REGRESSION_CLAIMS.exists():
        try:
            reg = json.loads(REGRESSION_CLAIMS.read_text())
            claims += reg if isinstance(reg, list) else reg.get("claims", [])
        except json.JSONDecodeError:
            tables["missing"].append(f"{REGRESSION_CLAIMS} is not valid JSON")
    from analyses.science.phases import model_figure

    for c in claims:  # which model each verdict is about (a claim judged on two models is two entries)
        c.setdefault("model", f"regression:{c['checkpoint']}" if c.get("checkpoint") else settings.model)
        if not str(c["model"]).startswith("regression:"):
            c["figure"] = model_figure(c.get("figure", ""), c["model"])  # its own model's figure
    claims = merge_models(claims, Path(claims_path), settings.model)
    report = {"claims": claims, "missing": tables["missing"], "settings": settings.to_dict(), "tasks": list(tasks)}
    _write(Path(claims_path), report)
    (out_dir / "README.md").write_text(science_markdown(report, tables))
    return {**report, "tables": tables}


def merge_models(claims: list[dict], path: Path, model: str) -> list[dict]:
    """This model's claims beside the other models' entries already in ``path`` (a summarise run per model),
    each text claim marked ``replicates``: True / False when another model has a verdict on the same claim (the
    same verdict, or not), None when only one model was tested."""
    others = []
    if path.exists():
        try:
            old = json.loads(path.read_text()).get("claims", [])
        except (json.JSONDecodeError, AttributeError):
            old = []
        others = [c for c in old if c.get("model") not in (None, model) and not str(c.get("model")).startswith("regression:")]
    merged = claims + others
    by_claim: dict[str, dict[str, str]] = {}
    for c in merged:
        if not str(c.get("model", "")).startswith("regression:"):
            by_claim.setdefault(c["claim"], {})[c["model"]] = c["verdict"]
    for c in merged:
        verdicts = by_claim.get(c["claim"], {})
        if not str(c.get("model", "")).startswith("regression:"):
            c["replicates"] = (len(set(verdicts.values())) == 1) if len(verdicts) > 1 else None
            c["verdicts_by_model"] = verdicts
    return merged


#: the unit of the θ-reproducibility intervals: a task's two fits give one correlation (over its heads), and the
#: tasks are what is resampled, since the heads of one fit are not independent draws
THETA_UNIT = "task (one correlation per task, computed over its heads; the bootstrap resamples tasks)"


def seed_stability_claim(table: dict) -> dict:
    """θ reproducible across sweep seeds (nearly independent training prompts, same task): per task the mean
    over its seed pairs, then a bootstrap over tasks."""

    def per_task(key):
        return {t: float(np.mean([p[key] for p in st["pairs"]])) for t, st in table.items()}

    theta, size = per_task("spearman_theta"), per_task("spearman_size")
    null, top, sign = per_task("spearman_size_null"), per_task("top10_overlap"), per_task("sign_agreement")
    n_heads = next(iter(table.values()))["pairs"][0]["n_heads"]
    b_theta = bootstrap_mean(theta.values())
    verdict = "supported" if b_theta["n"] >= 3 and b_theta["ci_low"] > 0.5 else "not supported"
    return _claim(
        "The LTV encodes the task in attention heads: θ is a reproducible head weighting (LTV fits of the same task "
        "with different seeds - other training queries, demonstrations and ā prompts - agree)", verdict,
        {"spearman_theta_seeds_mean_over_tasks": b_theta,
         "spearman_head_size_seeds_mean_over_tasks": bootstrap_mean(size.values()),
         "spearman_head_size_null_permuted_theta": bootstrap_mean(null.values()),
         "top10_overlap_seeds_mean_over_tasks": bootstrap_mean(top.values()), "top10_overlap_chance": 100 / n_heads,
         "sign_agreement_seeds_mean_over_tasks": bootstrap_mean(sign.values()),
         "sign_consistent_heads_per_task": {t: st["n_sign_consistent"] for t, st in table.items()},
         "per_task_spearman_theta": theta, "seeds_per_task": {t: len(st["source"]["artifacts"]) for t, st in table.items()},
         "clustered_by": THETA_UNIT,
         "source": "LTV artifacts of the sweep store (results/sweeps/text), fitted at the comparison's settings"},
        "figures/science_theta_stability_seeds.html",
        "supported if the mean over tasks (≥ 3) of the per-task mean Spearman correlation of θ between seed pairs "
        "has a 95% bootstrap interval (over tasks) above 0.5")  # fmt: skip


def science_markdown(report: dict, tables: dict) -> str:
    """``results/science/README.md``: the verdicts, then each experiment's numbers as tables."""
    s = report["settings"]
    lines = [
        "# Is the LTV a task representation? (issue 12, text part)", "",
        f"Model `{s['model']}`, {s['shots']}-shot, LTV / steering: n_mean={s['n_mean']}, n_train={s['n_train']} per "
        f"corruption, n_valid={s['n_valid']}, ≤ {s['steps']} steps (eval every {s['eval_every']}, patience "
        f"{s['patience']}), lr {s['ltv_lr']} (θ) / {s['steer_lr']} (steering); n_test={s['n_test']} per setting. "
        "Accuracies: top-1 first-token, 95% Wilson intervals; differences: paired bootstrap over test queries.", "",
        "## Verdicts", "", claims_markdown(report["claims"]),
    ]  # fmt: skip
    if tables["controls"]:
        lines += ["## Controls (test accuracy [95% CI]; Δ = variant − LTV on the same queries [95% CI])", "",
                  "| task | variant | setting | accuracy | Δ vs LTV | train acc |", "|---|---|---|---|---|---|"]  # fmt: skip
        for r in tables["controls"]:
            d = (f"{r['diff_vs_ltv']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]"
                 if "diff_vs_ltv" in r and r["variant"] != "LTV" else "")  # fmt: skip
            tr = f"{r['train_accuracy']:.2f}" if "train_accuracy" in r else ""
            lines.append(f"| {r['task']} | {r['variant']} | {r['setting']} | {r['accuracy']:.3f} "
                         f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}] | {d} | {tr} |")  # fmt: skip
        lines.append("")
    for name, title in (("stability", "θ stability"), ("stability_sweep", "θ stability across the sweep's seeds "
                                                          "(its LTV fits at the comparison's settings)")):  # fmt: skip
        if not tables.get(name):
            continue
        lines += [f"## {title} (Spearman ρ between fits [Fisher-z 95% CI over heads])", "",
                  r"| task | pair | ρ(θ) | ρ(\|θ\|·‖ā‖) | ρ null (permuted θ) | top-10 overlap (chance) | sign agreement |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for t, st in tables[name].items():
            for p in st["pairs"]:
                lines.append(
                    f"| {t} | {p['pair']} | {p['spearman_theta']:.2f} [{p['spearman_theta_ci'][0]:.2f}, "
                    f"{p['spearman_theta_ci'][1]:.2f}] | {p['spearman_size']:.2f} | {p.get('spearman_size_null', float('nan')):.2f} | "
                    f"{p['top10_overlap']} ({p['top10_chance']:.2f}) | {p['sign_agreement']:.2f} |")  # fmt: skip
        lines.append("")
    for name, cols in (("headcount", ("task", "method", "k", "setting")), ("data_efficiency", ("task", "method", "n_train", "setting")),
                       ("portability", ("task", "template", "method")),
                       ("tuned", ("task", "method", "seed", "setting", "lr", "best_step"))):  # fmt: skip
        if tables[name]:
            lines += [f"## {name.replace('_', ' ')}", "", "| " + " | ".join(cols) + " | accuracy [95% CI] |",
                      "|" + "---|" * (len(cols) + 1)]  # fmt: skip
            for r in tables[name]:
                lines.append("| " + " | ".join(str(r.get(c)) for c in cols)
                             + f" | {r['accuracy']:.3f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] |")  # fmt: skip
            lines.append("")
    if report["missing"]:
        lines += ["## Not computed (CPU budget)", "", *[f"- {m}" for m in report["missing"]], ""]
    return "\n".join(lines)


def _measured(claim: dict) -> bool:
    """False for a claim whose headline number is NaN (its units exist but measure nothing, e.g. no k=10)."""
    head = _headline(claim.get("evidence", {}))
    return bool(head) and "nan" not in head.split(":")[-1]


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, allow_nan=True, default=float) + "\n")
    tmp.replace(path)


def build_claims(ctx: Context, store: UnitStore, tasks: list[str], tables: dict, sweep=None) -> list[dict]:
    claims = []
    ltv = {s: _fits_correct(ctx, store, tasks, dict(random_control=True), s) for s in ("zero-shot", "shuffled")}

    def versus(kw):
        res = {}
        for s in ("zero-shot", "shuffled"):
            other = _fits_correct(ctx, store, tasks, kw, s)
            res[s] = _pooled_paired(other, ltv[s]) if other else None
        return res

    steer = versus(dict(method="steer"))
    from_sweep = sweep_claims.ltv_vs_fv_claims(sweep, steer) if sweep and Path(sweep).is_dir() else []
    claims += from_sweep or comparison_claims(steer)  # the sweep store when it has LTV and FV cells
    if sweep and Path(sweep).is_dir():
        claims += sweep_claims.ltv_vs_tv_claims(sweep, steer)
    weak = sweep_claims.weak_icl_claim(sweep) if sweep and Path(sweep).is_dir() else None
    if weak is not None:
        claims.append(weak)

    # --- θ stability ------------------------------------------------------------------------------------
    stab = tables["stability"]
    if stab:
        halves = {t: [p for p in s["pairs"] if p["kind"] == "halves"] for t, s in stab.items()}
        seeds = {t: [p for p in s["pairs"] if p["kind"] == "seeds"] for t, s in stab.items()}
        mixed = {t: [p for p in s["pairs"] if p["kind"] == "full vs half"] for t, s in stab.items()}
        partial = not any(halves.values())
        if partial:  # only one half fitted yet: the full-data fit vs that half (they share half their data)
            halves = mixed
        h_theta = bootstrap_mean([p[0]["spearman_theta"] for p in halves.values() if p])
        s_theta = bootstrap_mean([p[0]["spearman_theta"] for p in seeds.values() if p])
        h_size = bootstrap_mean([p[0]["spearman_size"] for p in halves.values() if p])
        h_size_null = bootstrap_mean([p[0].get("spearman_size_null") for p in halves.values() if p])
        h_top = bootstrap_mean([p[0]["top10_overlap"] for p in halves.values() if p])
        per_task = {t: {"halves": halves[t][0] if halves[t] else None, "seeds": seeds[t][0] if seeds[t] else None}
                    for t in stab}  # fmt: skip
        # with fewer than 3 tasks a bootstrap over tasks is meaningless: then every task's own Fisher-z interval
        # (over heads) must clear 0.5
        fisher = [p[0]["spearman_theta_ci"][0] for p in halves.values() if p]
        if h_theta["n"] >= 3:
            verdict = "supported" if h_theta["ci_low"] > 0.5 else "not supported"
        else:
            verdict = "supported" if fisher and min(fisher) > 0.5 else "not supported"
        claims.append(_claim(
            "The LTV encodes the task in attention heads: θ is a reproducible head weighting (two fits on disjoint "
            "halves of the training data agree)", verdict,
            {"spearman_theta_halves_mean_over_tasks": h_theta,
             # the study's own seed pairs, where it fitted any (the sweep's seeds have their own claim)
             **({"spearman_theta_seeds_mean_over_tasks": s_theta} if s_theta["n"] else {}),
             "spearman_head_size_halves_mean_over_tasks": h_size, "clustered_by": THETA_UNIT,
             "spearman_head_size_halves_null_permuted_theta": h_size_null,
             "top10_overlap_halves_mean_over_tasks": h_top, "top10_overlap_chance": 100 / (ctx.model.cfg.n_layers * ctx.model.cfg.n_heads),
             "per_task": per_task, "pairs_used": "full vs half (only one half fitted)" if partial else "halves"},
            "figures/science_theta_stability.html",
            "supported if the mean over tasks of the Spearman correlation of θ between the two halves' fits has a "
            "95% bootstrap interval (over tasks) above 0.5 (with fewer than 3 tasks: if every task's Fisher-z "
            "interval over heads is above 0.5)"))  # fmt: skip

    # --- ā geometry: is ā task-specific at all? ---------------------------------------------------------------
    geo = _try(controls.abar_similarity_unit, ctx, store, tasks)
    if geo is not None and len(geo["tasks"]) >= 3:
        n = len(geo["tasks"])
        gap = [geo["within"][t] - float(np.mean([geo["cross"][i][j] for j in range(n) if j != i]))
               for i, t in enumerate(geo["tasks"])]  # fmt: skip
        m = bootstrap_mean(gap)
        claims.append(_claim(
            "ā is task-specific: the head means of one task's prompts are closer to each other (two prompt draws) "
            "than to another task's", "supported" if m["ci_low"] > 0 else "not supported",
            {"within_minus_cross_task_cosine": {**m, "clustered_by": "task"}, "within": geo["within"],
             "cross_task_mean": float(np.mean([geo["cross"][i][j] for i in range(n) for j in range(n) if i != j])),
             "per_layer_cross_mean": geo["per_layer_cross_mean"], "tasks": geo["tasks"]},
            "figures/science_controls.html",
            "supported if the mean over tasks of (cosine of ā between prompt seeds 0 and 1 of the task) − (mean "
            "cosine of the task's ā with the other tasks' ā), averaged over heads, has a 95% bootstrap interval "
            "(over tasks) above 0"))  # fmt: skip

    # --- controls ------------------------------------------------------------------------------------------
    def control_claim(kw, claim, figure, rule_name):
        res = versus(kw)
        if not any(res.values()):
            return None
        ev = {s: r for s, r in res.items() if r}
        # the control minus the LTV; "LTV better" means an interval below 0
        below = all(r["ci_high"] < 0 for r in ev.values())
        verdict = "supported" if below else "not supported"
        return _claim(claim, verdict, {f"{rule_name}_minus_LTV_{s}": r for s, r in ev.items()}, figure,
                      f"supported if the paired difference ({rule_name} − LTV, mean over tasks, clustered bootstrap over "
                      "tasks then queries) has a 95% interval below 0 on both zero-shot and shuffled prompts")  # fmt: skip

    cross = {}
    for s in ("zero-shot", "shuffled"):
        a = {}
        for t in tasks:
            f = _try(fit_unit, ctx, store, t, basis=f"task:{controls.cross_task_source(t, tasks)}")
            if f is not None:
                a[t] = f["eval"][s]["correct"]
        cross[s] = _pooled_paired(a, ltv[s]) if a else None
    if any(cross.values()):
        below = all(r["ci_high"] < 0 for r in cross.values() if r)
        claims.append(_claim(
            "Control (cross-task basis): the head basis carries task information - θ fitted on another task's ā "
            "does worse than on the task's own ā", "supported" if below else "not supported",
            {f"cross_basis_minus_LTV_{s}": r for s, r in cross.items() if r}, "figures/science_controls.html",
            "supported if the paired difference (cross-task basis − LTV, mean over tasks, clustered bootstrap over "
            "tasks then queries) has a 95% interval below 0 on both settings; if it is not, the basis carries no task "
            "information and θ does the work"))  # fmt: skip
    c = control_claim(dict(basis="random-label"),
                      "Control (random-label basis): ā from clean prompts beats ā from prompts with random labels",
                      "figures/science_controls.html", "random_label_basis")
    if c:
        claims.append(c)
    for kw, claim, name in (
        (dict(basis="gaussian"), "Control (Gaussian basis): the task's ā beats a norm-matched Gaussian basis (the same "
         "head norms, random directions)", "gaussian_basis"),
        (dict(basis="no-task"), "Control (no-task basis): ā from the task's k-shot prompts beats ā from its queries "
         "without demonstrations (the format, not the mapping)", "no_task_basis"),
    ):  # fmt: skip
        c = control_claim(kw, claim, "figures/science_controls.html", name)
        if c:
            claims.append(c)
    if any(steer.values()):
        gaps = []
        for t in tasks:
            f = _try(fit_unit, ctx, store, t, method="steer")
            g = _try(fit_unit, ctx, store, t, random_control=True)
            if f is not None and g is not None:
                test_s = np.mean([np.mean(f["eval"][s]["correct"]) for s in f["eval"]])
                test_l = np.mean([np.mean(g["eval"][s]["correct"]) for s in g["eval"]])
                gaps.append((f["train_accuracy"]["accuracy"] - test_s) - (g["train_accuracy"]["accuracy"] - test_l))
        below = all(r["ci_high"] < 0 for r in steer.values() if r)
        claims.append(_claim(
            "Control (free steering vector): the head basis buys something - an unconstrained per-layer vector "
            "(L×d_model parameters) trained on the same prompts, steps and early stopping does worse on unseen "
            "queries than the LTV", "supported" if below else "not supported",
            {**{f"steering_minus_LTV_{s}": r for s, r in steer.items() if r},
             "generalisation_gap_steering_minus_LTV_mean_over_tasks": bootstrap_mean(gaps)},
            "figures/science_controls.html",
            "supported if the paired difference (steering − LTV, mean over tasks, clustered bootstrap over tasks then "
            "queries) has a 95% interval below 0 on both settings; the generalisation gap is (train − test accuracy) of the steering vector minus the "
            "LTV's, averaged over tasks"))  # fmt: skip
    tu = tables.get("tuned") or []
    if tu:
        claims.append(tuned_steering_claim(tu))
    rand = {}
    for s in ("zero-shot", "shuffled"):
        a = {}
        for t in tasks:
            f = _try(fit_unit, ctx, store, t, random_control=True)
            if f is not None and f.get("random_eval"):
                a[t] = f["random_eval"][s]["correct"]
        rand[s] = _pooled_paired(a, ltv[s]) if a else None
    if any(rand.values()):
        below = all(r["ci_high"] < 0 for r in rand.values() if r)
        claims.append(_claim(
            "Control (random θ): the trained θ beats a random θ of the same norm on the same basis",
            "supported" if below else "not supported", {f"random_theta_minus_LTV_{s}": r for s, r in rand.items() if r},
            "figures/science_controls.html", "supported if the paired difference (random θ − LTV, mean over tasks, "
            "clustered bootstrap over tasks then queries) has a 95% interval below 0 on both settings"))  # fmt: skip

    # label-supervised vs ICL: where ICL is weak, does the LTV exceed it?
    icl_rows = {r["task"]: r for r in tables["controls"] if r["variant"] == "ICL (clean)"}
    per_task, p_values = {}, {}
    for t, icl in icl_rows.items():
        plain = _try(plain_unit, ctx, store, t)
        f = _try(fit_unit, ctx, store, t, random_control=True)
        if plain is None or f is None:
            continue
        entry = {"ICL": _acc(plain["icl"]), "weak": plain["icl"]["accuracy"] < STRONG_ICL}  # not strong: "weak" here
        for s in ("zero-shot", "shuffled"):
            diff = np.asarray(f["eval"][s]["correct"], float) - np.asarray(plain["icl"]["correct"], float)
            d = clustered_bootstrap({t: diff})
            d = {"diff": d["mean"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "n": d["n"],
                 "p": bootstrap_p_value(diff)}  # fmt: skip
            entry[f"LTV_{s}"] = _acc(f["eval"][s])
            entry[f"LTV_{s}_minus_ICL"] = d
            p_values[f"{t}|{s}"] = d["p"] if d["diff"] > 0 else 1.0  # one direction: the LTV above ICL
        per_task[t] = entry
    if per_task:
        adjusted = holm(p_values)
        exceed = sorted(tuple(k.split("|")) for k, p in adjusted.items() if p < 0.05)
        weak = [t for t, e in per_task.items() if e["weak"]]
        weak_exceed = sorted({t for t, s in exceed if t in weak})
        weak_pooled = {}
        for setting in ("zero-shot", "shuffled"):
            a = {t: _try(fit_unit, ctx, store, t, random_control=True)["eval"][setting]["correct"] for t in weak}
            b = {t: _try(plain_unit, ctx, store, t)["icl"]["correct"] for t in weak}
            if a:
                weak_pooled[f"LTV_{setting}_minus_ICL_weak_tasks_pooled"] = _pooled_paired(a, b)
        claims.append(_claim(
            "Control (label supervision vs ICL): the LTV restores the model's ICL representation (it does not "
            "exceed clean k-shot ICL)", "not supported" if exceed else "supported",
            {**weak_pooled, "per_task": per_task, "weak_tasks": weak, "tasks_settings_where_LTV_exceeds_ICL": [list(x) for x in exceed],
             "weak_tasks_where_LTV_exceeds_ICL": weak_exceed, "holm_adjusted_p": adjusted},
            "figures/science_controls.html",
            "not supported if on some task × setting the LTV's test accuracy exceeds clean ICL's on the same queries "
            "with a Holm-adjusted (over every task × setting) bootstrap p < 0.05: there the LTV adds what ICL does "
            "not have, so it is not restoring ICL"))  # fmt: skip

    # corruption ablation: does training on one corruption transfer to the other?
    abl = {}
    for train_on, test_on in (("zero-shot", "shuffled"), ("shuffled", "zero-shot")):
        a = _fits_correct(ctx, store, tasks, dict(overrides={"corruptions": [train_on]}), test_on)
        same = _fits_correct(ctx, store, tasks, dict(overrides={"corruptions": [test_on]}), test_on)
        if a:
            abl[f"trained_{train_on}_tested_{test_on}_minus_LTV"] = _pooled_paired(a, ltv[test_on])
        if a and same:
            abl[f"trained_{train_on}_minus_trained_{test_on}_tested_{test_on}"] = _pooled_paired(a, same)
    if abl:
        transfer = [v for k, v in abl.items() if k.endswith("_minus_LTV")]
        ok = all(v["acc_a"]["ci_low"] > 0 for v in transfer) and all(v["diff"] > -0.15 for v in transfer)
        claims.append(_claim(
            "Control (corruption ablation): an LTV trained on one corruption transfers to the other (within 0.15 "
            "of the LTV trained on both)", "supported" if ok else "not supported", abl, "figures/science_controls.html",
            "supported if, tested on the corruption it was not trained on, each single-corruption LTV is within "
            "0.15 (point estimate) of the LTV trained on both"))  # fmt: skip

    # --- head-count curve ----------------------------------------------------------------------------------
    hc = tables["headcount"]
    cross = _cross_task_overlap(ctx, store, tasks)  # needs only the LTV fits and the FVs' CIEs, not the curve
    if hc or len(cross) >= 3:
        claims += headcount_claims(hc, cross)
    # --- data efficiency ---------------------------------------------------------------------------------------
    de = tables["data_efficiency"]
    if de:
        small = [r for r in de if r["method"] in ("LTV", "steering") and r["n_train"] is not None and r["n_train"] <= 8]
        by = {}
        for r in small:
            by.setdefault((r["task"], r["n_train"], r["setting"]), {})[r["method"]] = r
        m = _task_mean({f"{k[0]}|{k[1]}|{k[2]}": v["LTV"]["accuracy"] - v["steering"]["accuracy"]
                        for k, v in by.items() if len(v) == 2})  # fmt: skip
        claims.append(_claim(
            "Data efficiency: with few labelled prompts (≤ 8 per corruption) the LTV beats the free steering vector",
            "supported" if m["ci_low"] > 0 else "not supported",
            {"LTV_minus_steering_accuracy_small_n": m, "cells": sorted({f"{k[0]} n={k[1]} {k[2]}" for k in by})},
            "figures/science_data_efficiency.html",
            "supported if the mean over tasks (each task's n ≤ 8 × setting cells averaged first) of LTV − steering "
            "accuracy has a 95% bootstrap interval (over tasks) above 0"))  # fmt: skip
    # --- portability ---------------------------------------------------------------------------------------
    po = tables["portability"]
    if po:
        by = {}
        for r in po:
            by.setdefault(r["method"], {}).setdefault(f"{r['task']}|{r['template']}", r["correct"])
        ev = {}
        for method in ("LTV", "FV", "TV", "steering", portability.PROJECTED, portability.ORTHOGONAL):
            if method in by and "none" in by:
                ev[f"{method}_minus_none"] = _pooled_paired(by[method], by["none"])
        for other in ("FV", "TV"):
            if "LTV" in by and other in by:
                ev[f"LTV_minus_{other}"] = _pooled_paired(by["LTV"], by[other])
        ev["templates"] = sorted({r["template"] for r in po})
        clustered = ("mean over tasks; clustered bootstrap over tasks, then queries, the templates averaged per "
                     "query")  # fmt: skip
        ok = "LTV_minus_none" in ev and ev["LTV_minus_none"]["ci_low"] > 0
        claims.append(_claim(
            "Portability: the LTV transfers to natural zero-shot templates (raises accuracy over the bare model)",
            "supported" if ok else "not supported", ev, "figures/science_portability.html",
            f"supported if LTV − bare model ({clustered}) has a 95% interval above 0"))  # fmt: skip
        if "LTV_minus_TV" in ev:
            # the baseline that could win: the TV needs no labels and ported nearly as well on 3 templates
            claims.append(_claim(
                "Portability: the LTV ports better than the TV (the strongest label-free baseline)",
                "supported" if ev["LTV_minus_TV"]["ci_low"] > 0 else "not supported",
                {k: ev[k] for k in ("LTV_minus_TV", "LTV_minus_none", "TV_minus_none", "templates") if k in ev},
                "figures/science_portability.html",
                f"supported if LTV − TV ({clustered}) has a 95% interval above 0"))  # fmt: skip
        proj, steer = by.get(portability.PROJECTED), by.get("steering")
        if proj is not None and steer is not None and "none" in by:
            kept = _task_mean({f"{r['task']}|{r['template']}": r.get("steering_norm2_in_span") for r in po
                               if r["method"] == portability.PROJECTED})  # fmt: skip
            e = {"projected_minus_none": ev[f"{portability.PROJECTED}_minus_none"],
                 "projected_minus_steering": _pooled_paired(proj, steer),
                 "orthogonal_minus_none": ev.get(f"{portability.ORTHOGONAL}_minus_none"),
                 "steering_minus_none": ev.get("steering_minus_none"),
                 "steering_norm2_in_span": kept, "templates": ev["templates"]}  # fmt: skip
            ok = e["projected_minus_none"]["ci_low"] > 0 and e["projected_minus_steering"]["ci_low"] > -0.10
            claims.append(_claim(
                "Portability: the head basis explains the free steering vector's portability (its projection onto "
                "span(ā) ports as well as the whole vector)",
                "supported" if ok else "not supported", {k: v for k, v in e.items() if v is not None},
                "figures/science_portability.html",
                f"supported if projection − bare model has a 95% interval above 0 and projection − steering a 95% "
                f"interval above −0.10 (non-inferiority by 10 points); both {clustered}"))  # fmt: skip
    return claims


def tuned_steering_claim(rows: list[dict]) -> dict:
    """The free steering control with both vectors tuned the same way (`analyses.science.tuned`): seeds are
    repeated fits of the same test queries, averaged per query inside each task's cluster."""
    by: dict = {}
    for r in rows:
        by.setdefault((r["method"], r["setting"]), {})[f"{r['task']}|seed{r['seed']}"] = r["correct"]
    ltv_name, steer_name = tuned.METHODS["ltv"], tuned.METHODS["steer"]
    ev = {}
    for s in ("zero-shot", "shuffled"):
        if (steer_name, s) in by and (ltv_name, s) in by:
            ev[f"steering_minus_LTV_{s}"] = _pooled_paired(by[(steer_name, s)], by[(ltv_name, s)])
    fits = {(r["task"], r["method"], r["seed"]): r for r in rows if r["setting"] == "zero-shot"}
    for name in (ltv_name, steer_name):
        mine = [r for (t, m, sd), r in fits.items() if m == name]
        ev[f"{name}: fits"] = {
            "n": len(mine), "cap_bound": sum(bool(r["cap_bound"]) for r in mine),
            "lr_at_grid_edge": sum(bool(r["lr_at_grid_edge"]) for r in mine),
            "chosen_lr": {f"{r['task']}|seed{r['seed']}": r["lr"] for r in mine},
            "best_step": {f"{r['task']}|seed{r['seed']}": r["best_step"] for r in mine},
        }  # fmt: skip
    ev["seeds"] = sorted({r["seed"] for r in rows})
    ev["grid"], ev["grid_steps_past_an_edge"], ev["step_cap"] = list(tuned.GRID), tuned.EXTEND, tuned.STEPS
    ev["step_cap_doublings_where_it_bound"] = tuned.LONGER
    below = bool(ev) and all(v["ci_high"] < 0 for k, v in ev.items() if k.startswith("steering_minus_LTV_"))
    return _claim(
        "Control (free steering vector, tuned): with both vectors' learning rates chosen on valid from the same grid "
        "and trained until the valid loss stops improving, the free per-layer vector does worse on unseen queries "
        "than the LTV", "supported" if below else "not supported", ev, f"figures/{tuned.FIGURE}.html",
        f"supported if the paired difference (steering − LTV, each with lr from {list(tuned.GRID)} chosen on valid "
        f"and extended by up to {tuned.EXTEND} grid steps past an edge the valid split chose, "
        f"≤ {tuned.STEPS} steps with early stopping, the cap doubled up to {tuned.LONGER}× at the chosen rate where "
        "the best step was the cap; mean over tasks, clustered bootstrap over tasks then queries, "
        "fit seeds averaged per query) has a 95% interval below 0 on both settings")  # fmt: skip


def _cross_task_overlap(ctx: Context, store: UnitStore, tasks, ks=(5, 10, 20)) -> dict:
    """Top-k overlap of each task's LTV heads (by |θ|·‖ā‖) with its own FV heads (by CIE) and with every other
    task's FV heads: the baseline a "the LTV finds the FV's heads" claim must beat is another task's FV, since
    the FV's top heads are largely shared across tasks (task-general heads), not uniform chance."""
    from analyses.science.fits import fv_unit
    from interp.stats import top_k_overlap

    ltv = {t: f["head_scores"] for t in tasks if (f := _try(fit_unit, ctx, store, t, random_control=True))}
    fv = {t: f["cie"] for t in tasks if (f := _try(fv_unit, ctx, store, t))}
    both = [t for t in tasks if t in ltv and t in fv]
    out = {}
    for t in both:
        others = [o for o in fv if o != t]
        if not others:
            continue
        own = float(np.mean([top_k_overlap(ltv[t], fv[t], k, by_abs=False) for k in ks]))
        cross = float(np.mean([top_k_overlap(ltv[t], fv[o], k, by_abs=False) for o in others for k in ks]))
        fv_shared = float(np.mean([top_k_overlap(fv[t], fv[o], 10, by_abs=False) for o in others]))
        out[t] = {"own": own, "cross_task": cross, "own_minus_cross": own - cross, "fv_top10_shared_with_other_tasks": fv_shared,
                  "other_tasks": others}  # fmt: skip
    return out


def headcount_claims(hc: list[dict], cross: dict | None = None) -> list[dict]:
    """The head-count curve's claims (when its units exist) and the head-overlap claim (when ≥ 3 tasks have
    an LTV and an FV: ``cross`` from `_cross_task_overlap`)."""
    out = []
    ltv_name, fv_name = "LTV (top-k by |θ|·‖ā‖, refitted)", "FV (top-k by CIE)"
    if hc:
        out += _curve_claims(hc, ltv_name, fv_name)
    if not cross or len(cross) < 3:
        return out
    overlaps = [r for r in hc if r["method"] == ltv_name and "overlap_with_fv" in r and r["setting"] == "zero-shot"]
    excess = {f"{r['task']}|{r['k']}": r["overlap_with_fv"] / r["k"] for r in overlaps if r["k"] in (5, 10, 20)}
    chance = [r["overlap_chance"] / r["k"] for r in overlaps if r["k"] in (5, 10, 20)]
    beyond = bootstrap_mean([c["own_minus_cross"] for c in cross.values()])
    own = bootstrap_mean([c["own"] for c in cross.values()])
    out.append(_claim(
        "The sparse LTV keeps the FV's heads (its top-k heads by |θ|·‖ā‖ overlap the task's own FV top-k by CIE "
        "more than another task's FV top-k)", "supported" if beyond["ci_low"] > 0 else "not supported",
        {"own_minus_cross_task_overlap_fraction": {**beyond, "clustered_by": "task"},
         "own_overlap_fraction_k5_10_20": {**own, "clustered_by": "task"},
         **({"overlap_fraction_k5_10_20": _task_mean(excess)} if excess else {}),
         "chance_fraction_max": max(chance) if chance else None,
         "per_task_cross": cross, "per_task_k": {f"{r['task']}|k={r['k']}": r["overlap_with_fv"] for r in overlaps}},
        # without the head-count curve's units there is no headcount figure; the two-model figure shows this claim
        "figures/science_headcount.html" if hc else "figures/science_two_models.html",
        "supported if, over ≥ 3 tasks, the mean over tasks of (overlap of the LTV's top-k heads with the task's own "
        "FV top-k) − (mean overlap with the other tasks' FV top-k), k = 5, 10, 20 averaged, has a 95% bootstrap "
        "interval (over tasks) above 0; uniform chance (k/(L·H)) is reported but is a baseline that cannot win: "
        "the FV's top heads are largely shared across tasks"))  # fmt: skip
    return out


def _curve_claims(hc: list[dict], ltv_name: str, fv_name: str) -> list[dict]:
    out = []
    tasks = sorted({r["task"] for r in hc})
    full = {(r["task"], r["setting"]): r for r in hc if r["method"] == ltv_name and r["k"] == max(x["k"] for x in hc)}
    fracs, per_task = {}, {}
    for r in hc:
        if r["method"] == ltv_name and r["k"] == 10 and (r["task"], r["setting"]) in full:
            f = full[(r["task"], r["setting"])]
            per_task[f"{r['task']}|{r['setting']}"] = {"k10": _acc(r), "all": _acc(f)}
            if f["accuracy"] > 0:
                fracs[f"{r['task']}|{r['setting']}"] = r["accuracy"] / f["accuracy"]
    m = _task_mean(fracs)
    out.append(_claim(
        "A few heads carry the task: an LTV on its 10 largest heads (refitted) keeps ≥ 90% of the full LTV's accuracy",
        "supported" if m["ci_low"] >= 0.9 else "not supported",
        {"fraction_of_full_accuracy_k10": m, "per_task_setting": per_task, "tasks": tasks},
        "figures/science_headcount.html",
        "supported if the mean over tasks (settings averaged first) of accuracy(k=10)/accuracy(all heads) has a "
        "95% bootstrap interval (over tasks) with lower bound ≥ 0.9"))  # fmt: skip
    ltv_on_fv = {(r["task"], r["k"], r["setting"]): r for r in hc if r["method"] == "LTV on the FV's heads"}
    fv = {(r["task"], r["k"], r["setting"]): r for r in hc if r["method"] == fv_name}
    d = {f"{k[0]}|{k[2]}": ltv_on_fv[k]["accuracy"] - fv[k]["accuracy"] for k in fv if k in ltv_on_fv and k[1] == 10}
    m3 = _task_mean(d)
    out.append(_claim(
        "On the same 10 heads, learned weights (LTV on the FV's heads) beat the FV's unit weights at one layer",
        "supported" if m3["ci_low"] > 0 else "not supported", {"LTV_on_FV_heads_minus_FV_k10": m3},
        "figures/science_headcount.html",
        "supported if the mean over tasks (settings averaged first) of the accuracy difference at k=10 has a 95% "
        "bootstrap interval (over tasks) above 0"))  # fmt: skip
    return out


def headline_estimate(evidence: dict, prefix: str = "") -> tuple[str, float, float, float] | None:
    """The first interval-carrying number of an evidence dict: ``(name, estimate, ci_low, ci_high)``."""
    for name, value in evidence.items():
        if isinstance(value, dict) and "ci_low" in value:
            x = value.get("diff", value.get("mean", value.get("accuracy")))
            if x is not None:
                return prefix + name, x, value["ci_low"], value["ci_high"]
        if isinstance(value, dict):
            inner = headline_estimate(value, f"{prefix}{name}.")
            if inner:
                return inner
    return None


def _headline(evidence: dict) -> str:
    """`headline_estimate` as ``name: x [lo, hi]``."""
    h = headline_estimate(evidence)
    return f"{h[0]}: {h[1]:.3f} [{h[2]:.3f}, {h[3]:.3f}]" if h else ""


def claims_markdown(claims: list[dict]) -> str:
    """The verdict table (claim, verdict, headline number with its 95% interval, figure) in Markdown."""
    lines = ["| claim | model | verdict | replicates | headline evidence (95% CI) | figure |", "|---|---|---|---|---|---|"]
    for c in claims:
        by = f" ({c['confounded_by']})" if c.get("confounded_by") else ""
        rep = {True: "yes", False: "**no**", None: "–"}[c.get("replicates")]
        lines.append(f"| {c['claim']} | {c.get('model', '–')} | **{c['verdict']}**{by} | {rep} | "
                     f"{_headline(c.get('evidence', {}))} | {c.get('figure', '')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def replication_markdown(claims: list[dict]) -> str:
    """Claim × model: each text claim's verdict and headline number per model, and whether it replicates."""
    text = [c for c in claims if not str(c.get("model", "")).startswith("regression:")]
    models = list(dict.fromkeys(c["model"] for c in text))
    lines = ["| claim | " + " | ".join(models) + " | replicates |", "|---|" + "---|" * (len(models) + 1)]
    by_claim: dict[str, dict] = {}
    for c in text:
        by_claim.setdefault(c["claim"], {})[c["model"]] = c
    for claim, per_model in by_claim.items():
        cells = []
        for m in models:
            c = per_model.get(m)
            h = headline_estimate(c.get("evidence", {})) if c else None
            num = f" {h[1]:+.3f} [{h[2]:+.3f}, {h[3]:+.3f}]" if h else ""
            cells.append(f"**{c['verdict']}**{num}" if c else "not measured")
        rep = next(iter(per_model.values())).get("replicates")
        lines.append(f"| {claim} | " + " | ".join(cells) + f" | {({True: 'yes', False: '**no**', None: '–'})[rep]} |")
    return "\n".join(lines) + "\n"
