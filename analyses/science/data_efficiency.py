"""Data efficiency: test accuracy against the number of labelled training prompts.

The LTV and the free steering vector are trained on ``n`` corrupted prompts per corruption for each n in
`SIZES`, with the validation split scaled with n (``n_valid = n · n_valid / n_train`` of the study's
settings, at least 2): a fit given 4 labelled prompts must not early-stop on 16 more, or the small-n points
would see four times the labels they claim. Steps and early stopping are otherwise the same. The FV and the
TV need no labels beyond the demonstrations; they are drawn as horizontal references. A head basis that encodes the task should let
the LTV reach its accuracy with fewer labels than the 64× larger free vector.
"""

from __future__ import annotations

from analyses.science.fits import fit_unit, fv_unit, tv_unit
from analyses.science.units import Context, UnitStore

SIZES = (4, 8, 16, 32)


def units(ctx: Context, store: UnitStore, task: str, sizes=SIZES) -> dict:
    out = {"ltv": {}, "steer": {}}
    for n in sizes:
        over = {} if n == ctx.s.n_train else {"n_train": n, "n_valid": max(2, n * ctx.s.n_valid // ctx.s.n_train)}
        if 2 * n < ctx.s.batch_size:  # two corruptions per prompt count; a batch cannot exceed the pool
            over["batch_size"] = 2 * n
        out["ltv"][n] = fit_unit(ctx, store, task, overrides=over, random_control=(not over))
        out["steer"][n] = fit_unit(ctx, store, task, "steer", overrides=over)
    out["fv"] = fv_unit(ctx, store, task)
    out["tv"] = tv_unit(ctx, store, task)
    return out


def summarise_task(task: str, res: dict) -> list[dict]:
    rows = []
    for method, label in (("ltv", "LTV"), ("steer", "steering")):
        for n, fit in sorted(res[method].items()):
            for setting, c in fit["eval"].items():
                rows.append({"task": task, "method": label, "n_train": n, "setting": setting,
                             "accuracy": c["accuracy"], "ci_low": c["ci_low"], "ci_high": c["ci_high"],
                             "n": c["n"], "train_accuracy": fit["train_accuracy"]["accuracy"]})  # fmt: skip
    for method, label in (("fv", "FV"), ("tv", "TV")):
        for setting, c in res[method]["eval"].items():
            rows.append({"task": task, "method": label, "n_train": None, "setting": setting,
                         "accuracy": c["accuracy"], "ci_low": c["ci_low"], "ci_high": c["ci_high"], "n": c["n"]})  # fmt: skip
    return rows


def run(ctx: Context, store: UnitStore, tasks, sizes=SIZES) -> list[dict]:
    rows = []
    for task in tasks:
        rows += summarise_task(task, units(ctx, store, task, sizes))
    return rows
