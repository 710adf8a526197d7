"""Controls that could falsify "the LTV is a task representation".

Per task, beside the LTV (its own ā, trained on shuffled + zero-shot prompts):

- **cross-task basis**: the same training, but θ weights another task's ā (its clean prompts). If it does
  as well as the true basis, ā carries no task information: θ does all the work.
- **random-label basis**: θ weights ā of the task's own prompts with deranged labels (format, no mapping).
- **free steering vector** (`interp.vectors.steering`): ``L × d_model`` free parameters instead of ``L × H``
  head weights, same prompts, steps and early stopping; its accuracy on its *training* prompts against the
  unseen test queries shows how each generalises.
- **random θ**: the trained θ's norm in a random direction (no training signal at all).
- **label-supervised vs ICL**: where clean k-shot ICL is weak, an LTV that beats it cannot be restoring ICL.
- **corruption ablation**: LTVs trained on zero-shot only and on shuffled only, each tested on both.
- **norm-matched Gaussian basis** and **ā without the task** (the task's queries, no demonstrations): bases
  that keep the head norms or the format but not the mapping; if they do as well, the basis is not the task.
- **ā geometry** (`abar_similarity_unit`): the cosine of ā[l, h] between tasks, beside the cosine between two
  draws of one task's prompts (another seed): if ā differs between tasks no more than between two draws of
  one task, a "task basis" has nothing task-specific to offer.

Every comparison with the LTV is a *paired* difference over the same test queries with a 95% bootstrap
interval; accuracies carry 95% Wilson intervals.
"""

from __future__ import annotations

from analyses.science.fits import fit_unit, plain_unit
from analyses.science.units import Context, UnitStore
from interp.stats import paired_bootstrap

SETTINGS = ("zero-shot", "shuffled")


def cross_task_source(task: str, tasks) -> str:
    """The task whose ā serves as ``task``'s cross-task basis: the next one in the list (cyclic)."""
    tasks = list(tasks)
    if len(tasks) < 2:
        raise ValueError("the cross-task control needs at least two tasks")
    return tasks[(tasks.index(task) + 1) % len(tasks)]


def units(ctx: Context, store: UnitStore, task: str, tasks, which=("steer", "cross", "ablation", "random-label")) -> dict:
    """Every control fit of ``task`` (cached); the most decisive first."""
    out = {"LTV": fit_unit(ctx, store, task, random_control=True), "plain": plain_unit(ctx, store, task)}
    if "steer" in which:
        out["steering"] = fit_unit(ctx, store, task, "steer")
    if "cross" in which:
        out["cross-task basis"] = fit_unit(ctx, store, task, basis=f"task:{cross_task_source(task, tasks)}")
    if "ablation" in which:
        out["LTV (zero-shot only)"] = fit_unit(ctx, store, task, overrides={"corruptions": ["zero-shot"]})
        out["LTV (shuffled only)"] = fit_unit(ctx, store, task, overrides={"corruptions": ["shuffled"]})
    if "random-label" in which:
        out["random-label basis"] = fit_unit(ctx, store, task, basis="random-label")
    if "gaussian" in which:
        out["Gaussian basis"] = fit_unit(ctx, store, task, basis="gaussian")
    if "no-task" in which:
        out["no-task basis"] = fit_unit(ctx, store, task, basis="no-task")
    return out


def summarise_task(task: str, fits: dict, tasks) -> list[dict]:
    """Tidy rows: one per (variant, setting) with accuracy, CI and the paired difference to the LTV."""
    rows = []
    ltv = fits["LTV"]["eval"]
    variants = {name: f["eval"] for name, f in fits.items() if name not in ("plain",)}
    variants["random-θ"] = fits["LTV"].get("random_eval")
    variants["none"] = fits["plain"]["eval"]
    for name, ev in variants.items():
        if ev is None:
            continue
        for setting in SETTINGS:
            c = ev[setting]
            diff = paired_bootstrap(c["correct"], ltv[setting]["correct"])
            row = {
                "task": task, "variant": name, "setting": setting, "accuracy": c["accuracy"],
                "ci_low": c["ci_low"], "ci_high": c["ci_high"], "n": c["n"],
                "diff_vs_ltv": diff["diff"], "diff_ci_low": diff["ci_low"], "diff_ci_high": diff["ci_high"],
            }  # fmt: skip
            if name in fits and "train_accuracy" in fits[name]:
                row["train_accuracy"] = fits[name]["train_accuracy"]["accuracy"]
            if name == "cross-task basis":
                row["basis_from"] = cross_task_source(task, tasks)
            rows.append(row)
    icl = fits["plain"]["icl"]
    rows.append({"task": task, "variant": "ICL (clean)", "setting": "icl", "accuracy": icl["accuracy"],
                 "ci_low": icl["ci_low"], "ci_high": icl["ci_high"], "n": icl["n"]})  # fmt: skip
    return rows


def run(ctx: Context, store: UnitStore, tasks, which=("steer", "cross", "ablation", "random-label")) -> list[dict]:
    rows = []
    for task in tasks:
        rows += summarise_task(task, units(ctx, store, task, tasks, which), tasks)
    return rows


def abar_similarity_unit(ctx: Context, store: UnitStore, tasks) -> dict:
    """Cosine similarity of the head means ā[l, h] (clean k-shot train prompts) across ``tasks``, averaged over
    heads per layer, and within each task between prompt seeds 0 and 1 (other demonstrations and queries):
    ``{"tasks", "cross": [task][task] mean cosine, "within": {task: mean cosine}, "per_layer_cross_mean": [L]}``."""
    import torch

    tasks = sorted(tasks)
    key = ctx.key("geometry", None, "abar-cosine", tasks=[ctx.task_id(t) for t in tasks])

    def compute(folder):
        means = {t: ctx.problem(t).clean_activations(ctx.s.n_mean).mean_contributions.float() for t in tasks}
        within = {}
        for t in tasks:
            other = ctx.problem(t, seed=1).clean_activations(ctx.s.n_mean).mean_contributions.float()
            within[t] = float(torch.nn.functional.cosine_similarity(means[t], other, dim=-1).mean())
        cross = [[float(torch.nn.functional.cosine_similarity(means[a], means[b], dim=-1).mean()) for b in tasks]
                 for a in tasks]  # fmt: skip
        per_layer = torch.stack([torch.nn.functional.cosine_similarity(means[a], means[b], dim=-1).mean(-1)
                                 for i, a in enumerate(tasks) for b in tasks[i + 1:]]).mean(0)  # fmt: skip
        return {"tasks": tasks, "cross": cross, "within": within, "per_layer_cross_mean": per_layer.tolist()}

    return store.get_or_run("geometry", key, compute)
