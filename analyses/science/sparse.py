"""Sparse LTVs and the head-count curve: how many heads does the task need, and are they the FV's?

Top-k pruning with refitting: from the full LTV (all L·H heads) keep the k heads with the largest size
``|θ|·‖ā‖`` and refit θ on those heads alone (same prompts, steps, early stopping), for k in `COUNTS`.
Beside it, at every k:

- the FV built from the top-k heads by causal indirect effect (its layer re-chosen on the valid split), and
- an LTV restricted to the FV's top-k heads (θ refitted on them).

If the task lives in a few heads, the sparse LTV should reach the full LTV's accuracy with few heads, and
its heads should overlap the FV's (chance overlap of two random k-sets: k²/(L·H)).
"""

from __future__ import annotations

import numpy as np

from analyses.science.fits import fit_unit, fv_topk_unit
from analyses.science.units import Context, UnitStore

COUNTS = (1, 2, 5, 10, 20, 50)


def top_heads(scores, k: int) -> list[tuple[int, int]]:
    arr = np.asarray(scores)
    order = np.argsort(-arr.ravel(), kind="stable")[:k]
    return [(int(i) // arr.shape[1], int(i) % arr.shape[1]) for i in order]


def units(ctx: Context, store: UnitStore, task: str, counts=COUNTS) -> dict:
    n_total = ctx.model.cfg.n_layers * ctx.model.cfg.n_heads
    counts = [k for k in counts if k < n_total]  # k = all heads is the full LTV itself
    full = fit_unit(ctx, store, task, random_control=True)
    out = {"full": full, "ltv": {}, "fv": {}, "ltv_on_fv": {}}
    for k in counts:
        heads = top_heads(full["head_scores"], k)
        out["ltv"][k] = {**fit_unit(ctx, store, task, overrides={"heads": heads}), "heads": heads}
        fv = fv_topk_unit(ctx, store, task, k)
        out["fv"][k] = fv
        fv_heads = [tuple(h) for h in fv["top_heads"]]
        out["ltv_on_fv"][k] = {**fit_unit(ctx, store, task, overrides={"heads": fv_heads}), "heads": fv_heads}
    return out


def summarise_task(task: str, res: dict, n_heads_total: int) -> list[dict]:
    rows = []

    def add(method, k, ev, heads=None, extra=None):
        for setting in ("zero-shot", "shuffled"):
            c = ev[setting]
            rows.append({"task": task, "method": method, "k": k, "setting": setting, "accuracy": c["accuracy"],
                         "ci_low": c["ci_low"], "ci_high": c["ci_high"], "n": c["n"],
                         **({"heads": [list(h) for h in heads]} if heads is not None else {}), **(extra or {})})  # fmt: skip

    add("LTV (top-k by |θ|·‖ā‖, refitted)", n_heads_total, res["full"]["eval"])
    for k in sorted(res["ltv"]):
        ltv_heads = {tuple(h) for h in res["ltv"][k]["heads"]}
        fv_heads = {tuple(h) for h in res["fv"][k]["top_heads"]}
        overlap = {"overlap_with_fv": len(ltv_heads & fv_heads), "overlap_chance": k * k / n_heads_total}
        add("LTV (top-k by |θ|·‖ā‖, refitted)", k, res["ltv"][k]["eval"], res["ltv"][k]["heads"], overlap)
        add("FV (top-k by CIE)", k, res["fv"][k]["eval"], res["fv"][k]["top_heads"], {"layer": res["fv"][k]["layer"]})
        add("LTV on the FV's heads", k, res["ltv_on_fv"][k]["eval"], res["ltv_on_fv"][k]["heads"])
    return rows


def run(ctx: Context, store: UnitStore, tasks, counts=COUNTS) -> list[dict]:
    n_total = ctx.model.cfg.n_layers * ctx.model.cfg.n_heads
    rows = []
    for task in tasks:
        rows += summarise_task(task, units(ctx, store, task, counts), n_total)
    return rows
