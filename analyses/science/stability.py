"""θ stability: do two fits of the LTV give the same head weights?

If θ is a representation of the task in attention heads, it should not depend much on which prompts it
was fitted on. Per task we fit the LTV

- with different seeds (each seed redraws every prompt: the clean prompts behind ā, the corrupted training
  and validation prompts, and the minibatch order), and
- on two disjoint halves of the train split (no query, label or ā source in common),

and compare every pair of fits (two seeds; the two halves; the seed-0 fit on all the data vs each half, which
share half their training data, a weaker test) by the Spearman correlation of θ, of the head sizes ``|θ|·‖ā‖`` (what each
head actually adds), and by the overlap of their top-10 heads by size (chance: 10·10/270 ≈ 0.37 heads for
SmolLM2's 30×9 heads). Correlation intervals are Fisher-z 95% intervals over the L·H heads (heads are
treated as independent observations, which makes the intervals optimistic).
"""

from __future__ import annotations

import itertools

import numpy as np

from interp.stats import spearman

from analyses.science.fits import fit_unit
from analyses.science.units import Context, UnitStore
from interp.stats import fisher_z_interval

SEEDS = (0, 1)
HALVES = (0, 1)
TOP = 10


def fits_of(ctx: Context, store: UnitStore, task: str) -> dict[str, dict]:
    """Every LTV fit of the stability experiment for ``task`` (label -> fit result)."""
    out = {f"seed {s}": fit_unit(ctx, store, task, seed=s, random_control=(s == 0)) for s in SEEDS}
    out.update({f"half {'AB'[h]}": fit_unit(ctx, store, task, train_half=h) for h in HALVES})
    return out


def _spearman(a, b) -> float:
    return spearman(np.asarray(a), np.asarray(b))


def compare(fits: dict[str, dict]) -> list[dict]:
    """Pairwise agreement of the fits' θ and head sizes (seed pairs, and the two halves)."""
    rows = []
    labels = list(fits)
    for a, b in itertools.combinations(labels, 2):
        kind = "seeds" if a.startswith("seed") and b.startswith("seed") else (
            "halves" if a.startswith("half") and b.startswith("half") else "full vs half")
        if kind == "full vs half" and not (a == "seed 0" or b == "seed 0"):
            continue  # full-data fit vs one half (they share half their training data): only for seed 0
        ta, tb = np.asarray(fits[a]["theta"]).ravel(), np.asarray(fits[b]["theta"]).ravel()
        sa, sb = np.asarray(fits[a]["head_scores"]).ravel(), np.asarray(fits[b]["head_scores"]).ravel()
        n = ta.size
        r_theta, r_size = _spearman(ta, tb), _spearman(sa, sb)
        top_a, top_b = set(np.argsort(-sa)[:TOP]), set(np.argsort(-sb)[:TOP])
        sign_agree = float(np.mean(np.sign(ta) == np.sign(tb)))
        # null for the size correlation: ‖ā‖ is shared by both fits and varies a lot across heads, so sizes
        # correlate even for unrelated θ; permute b's θ over heads and keep its ‖ā‖
        with np.errstate(divide="ignore", invalid="ignore"):
            norm_b = np.where(np.abs(tb) > 1e-12, sb / np.abs(tb), np.nan)
        fill = np.nanmedian(norm_b) if np.isfinite(norm_b).any() else 1.0
        norm_b = np.where(np.isfinite(norm_b), norm_b, fill)
        perm = np.random.default_rng(0).permutation(n)
        r_null = _spearman(sa, np.abs(tb[perm]) * norm_b)
        lo_t, hi_t = fisher_z_interval(r_theta, n)
        lo_s, hi_s = fisher_z_interval(r_size, n)
        rows.append({
            "pair": f"{a} vs {b}", "kind": kind, "n_heads": n,
            "spearman_theta": r_theta, "spearman_theta_ci": [lo_t, hi_t],
            "spearman_size": r_size, "spearman_size_ci": [lo_s, hi_s], "spearman_size_null": r_null,
            "top10_overlap": len(top_a & top_b), "top10_chance": TOP * TOP / n,
            "sign_agreement": sign_agree,
        })  # fmt: skip
    return rows


def run(ctx: Context, store: UnitStore, tasks) -> dict:
    """Fit and compare, per task; returns ``{task: {"fits": {label: accuracy...}, "pairs": [...], "theta_mean"...}}``."""
    return {task: summarise_task(fits_of(ctx, store, task)) for task in tasks}


def summarise_task(fits: dict[str, dict]) -> dict:
    thetas = np.stack([np.asarray(f["theta"]) for f in fits.values()])  # [fits, L, H]
    signs = np.sign(thetas)
    consistent = (np.abs(signs.sum(0)) == len(fits)) & (signs[0] != 0)
    return {
        "pairs": compare(fits),
        "theta_mean": thetas.mean(0).tolist(),
        "theta_sd": thetas.std(0).tolist(),
        "sign_consistent": consistent.tolist(),
        "n_sign_consistent": int(consistent.sum()),
        "accuracy": {label: {s: {k: f["eval"][s][k] for k in ("accuracy", "ci_low", "ci_high", "n")}
                             for s in f["eval"]} for label, f in fits.items()},  # fmt: skip
    }
