"""Fitting units shared by every experiment: one vector fit (LTV, free steering vector, FV, TV) and its scores.

A fit unit is keyed by *what* is fitted (method, config overrides, which prompts, which basis), not by the
experiment that asked for it, so the LTV at the default settings is fitted once and serves the stability,
control, head-count and data-efficiency experiments alike. Each stores the fitted vector (safetensors +
JSON, `TaskVector.save`) next to its result and reports test accuracy on zero-shot and shuffled prompts
(with per-query outcomes for paired comparisons) and accuracy on its own training prompts (how far it
generalises to unseen queries).
"""

from __future__ import annotations

from pathlib import Path

import torch

from analyses.science.units import Context, UnitStore, cell, evaluate_vector

FITS = "fits"


def _train_pool_accuracy(problem, vec, n_train: int, corruptions) -> dict:
    """Accuracy of ``vec`` on the prompts it was trained on (pooled over its corruptions)."""
    from interp.problems import run_prefix, targets_of

    correct = []
    hooks = vec.hooks(problem.model)
    for setting in corruptions:
        batch, prefix = problem.prefix(setting, "train", n_train)
        out = run_prefix(prefix, lambda idx: hooks)
        correct += problem.row_metric(out, targets_of(batch)).bool().tolist()
    return {"accuracy": sum(correct) / len(correct), "n": len(correct)}


def saved_vector(ctx: Context, folder: Path):
    """The vector an earlier run of this very unit saved before its result JSON was written, or None.

    The folder is named by the unit's key, so a complete vector there *is* this fit (same model, prompts,
    config, seed): a run killed between saving the vector and writing the result, or a result JSON lost
    on the way back from another machine, costs only the evaluation, not the fit again.
    """
    from interp.vectors import VectorError, load_vector

    if not ((folder / "meta.json").exists() and (folder / "vector.safetensors").exists()):
        return None
    try:
        return load_vector(folder, ctx.model)
    except VectorError:
        return None  # truncated, or fitted on another model: refit


def basis_of(ctx: Context, task: str, source: str) -> torch.Tensor:
    """ā [layer, head, d_model] for an LTV of ``task`` from ``source``:

    - ``"own"``: the task's clean k-shot train prompts (the LTV's basis);
    - ``"task:<B>"``: task B's clean prompts (cross-task control);
    - ``"random-label"``: the task's own k-shot prompts with deranged labels (the shuffled setting);
    - ``"no-task"``: the task's own train queries as zero-shot prompts (the format and the inputs, no
      demonstration of the mapping): ā from text without the task;
    - ``"gaussian"``: a norm-matched Gaussian basis — each head's vector drawn from N(0, I) and scaled to the
      norm of the task's own ā[l, h] (seeded): a basis that carries nothing but the head norms.
    """
    from interp.activations import head_activations

    if source == "own":
        return ctx.problem(task).clean_activations(ctx.s.n_mean).mean_contributions
    if source.startswith("task:"):
        return ctx.problem(source.split(":", 1)[1]).clean_activations(ctx.s.n_mean).mean_contributions
    if source == "random-label":
        batch = ctx.problem(task).batch("shuffled", "train", ctx.s.n_mean)
        return head_activations(ctx.model, batch.inputs, batch.attention_mask).mean_contributions
    if source == "no-task":
        batch = ctx.problem(task).batch("zero-shot", "train", ctx.s.n_mean)
        return head_activations(ctx.model, batch.inputs, batch.attention_mask).mean_contributions
    if source == "gaussian":
        own = ctx.problem(task).clean_activations(ctx.s.n_mean).mean_contributions
        gen = torch.Generator(device="cpu").manual_seed(1234 + ctx.s.seed)
        noise = torch.randn(own.shape, generator=gen, dtype=torch.float32).to(own.device, own.dtype)
        return noise / noise.norm(dim=-1, keepdim=True) * own.norm(dim=-1, keepdim=True)
    raise ValueError(f"unknown basis source {source!r}; use own, task:<name>, random-label, no-task or gaussian")


def fit_unit(
    ctx: Context,
    store: UnitStore,
    task: str,
    method: str = "ltv",
    *,
    overrides: dict | None = None,
    seed: int = 0,
    train_half: int | None = None,
    basis: str = "own",
    random_control: bool = False,
    needs_vector: bool = False,
    lr_grid: tuple[float, ...] | None = None,
) -> dict:
    """Fit one vector (``ltv`` / ``steer``) and score it; cached (see the module docstring).

    ``overrides`` change the config (e.g. ``corruptions``, ``heads``, ``n_train``); ``seed`` redraws the
    prompts and the minibatch order; ``train_half`` fits on one of two disjoint halves of the train split;
    ``lr_grid`` fits once per learning rate and keeps the lowest validation loss (`interp.vectors.fit_lr_grid`:
    the test queries never choose it).
    """
    overrides = dict(overrides or {})
    # the grid enters the key only when given, so every unit fitted before it existed keeps its key
    grid = {"lr_grid": [float(x) for x in lr_grid]} if lr_grid else {}
    unit = f"{method} seed={seed} half={train_half} basis={basis} {overrides}" + (f" lr∈{grid['lr_grid']}" if grid else "")
    key = ctx.key(FITS, task, unit, method=method, overrides=overrides, seed=seed, train_half=train_half,
                  basis=basis, random_control=random_control, **grid)  # fmt: skip

    def compute(folder: Path) -> dict:
        from interp.vectors import fit_ltv, fit_steering

        problem = ctx.problem(task, seed=seed, train_half=train_half)
        if method not in ("ltv", "steer"):
            raise ValueError(f"fit_unit fits 'ltv' or 'steer', not {method!r}")
        make = ctx.s.ltv_config if method == "ltv" else ctx.s.steering_config
        cfg = make(seed=ctx.s.seed + seed, **overrides)
        vec = saved_vector(ctx, folder)
        if vec is None:
            kwargs = {"progress": False}
            if method == "ltv" and basis != "own":
                kwargs["basis"] = basis_of(ctx, task, basis)
            if grid:
                from interp.vectors import fit_lr_grid

                vec = fit_lr_grid(method, problem, cfg, grid["lr_grid"], **kwargs)
            else:
                vec = (fit_ltv if method == "ltv" else fit_steering)(problem, cfg, **kwargs)
            vec.save(folder)
        result = {
            "method": method,
            "eval": evaluate_vector(ctx, vec, task),
            "train_accuracy": _train_pool_accuracy(problem, vec, cfg.n_train, vec.meta["corruptions"]),
            "training": vec.meta["training"],
            "vector_dir": str(folder),
        }
        if method == "ltv":
            result["theta"] = vec.theta
            result["head_scores"] = vec.head_scores()
            result["n_active"] = int(vec.active_mask().sum().item())
            if random_control:
                result["random_eval"] = evaluate_vector(ctx, vec.random_control(seed=0), task)
        return result

    return store.get_or_run(FITS, key, compute, needs_folder=needs_vector)


def load_fitted(ctx: Context, result: dict):
    from interp.vectors import load_vector

    return load_vector(result["vector_dir"], ctx.model)


def fv_unit(ctx: Context, store: UnitStore, task: str, needs_vector: bool = False) -> dict:
    """The FV's causal indirect effects and its ā (one computation per task; top-k FVs are built from it)."""
    key = ctx.key(FITS, task, "fv-cie")

    def compute(folder: Path) -> dict:
        from interp.vectors import FVConfig, fit_fv

        fv = saved_vector(ctx, folder)
        if fv is None:
            top_k = min(10, ctx.model.cfg.n_layers * ctx.model.cfg.n_heads)
            fv = fit_fv(ctx.problem(task), FVConfig(top_k=top_k, n_mean=ctx.s.n_mean, n_cie=ctx.s.n_cie,
                                                    n_valid=ctx.s.n_valid), progress=False)  # fmt: skip
            fv.save(folder)
        return {"cie": fv.cie, "top_heads": fv.top_heads(), "layer": fv.layer, "vector_dir": str(folder),
                "eval": evaluate_vector(ctx, fv, task)}  # fmt: skip

    return store.get_or_run(FITS, key, compute, needs_folder=needs_vector)


def fv_topk_unit(ctx: Context, store: UnitStore, task: str, k: int, needs_vector: bool = False) -> dict:
    """FV from the top-``k`` heads by CIE, its layer chosen by a valid-split sweep, scored on test."""
    if k == min(10, ctx.model.cfg.n_layers * ctx.model.cfg.n_heads):
        return {**fv_unit(ctx, store, task, needs_vector), "k": k}
    key = ctx.key(FITS, task, f"fv-top{k}", k=k)

    def compute(folder: Path) -> dict:
        from interp.vectors import FunctionVector
        from interp.vectors.function_vector import best_layer, layer_sweep

        fv10 = load_fitted(ctx, fv_unit(ctx, store, task, needs_vector=True))
        problem = ctx.problem(task)
        cie = fv10.cie
        n_heads = cie.shape[1]
        order = cie.flatten().argsort(descending=True)[:k]
        top = [(int(i) // n_heads, int(i) % n_heads) for i in order]
        means = fv10.tensors["head_means"]
        vector = sum(means[l, h] for l, h in top)
        fv = FunctionVector({**fv10.tensors, "vector": vector}, {**fv10.meta, "top_heads": top,
                            "config": {**fv10.meta["config"], "top_k": k}})  # fmt: skip
        sweep = layer_sweep(fv, problem, range(ctx.model.cfg.n_layers), problem.corruptions, ctx.s.n_valid)
        fv = fv.at_layer(best_layer(sweep, problem.metric))
        fv.save(folder)
        return {"k": k, "top_heads": top, "layer": fv.layer, "vector_dir": str(folder), "eval": evaluate_vector(ctx, fv, task)}

    return store.get_or_run(FITS, key, compute, needs_folder=needs_vector)


def tv_unit(ctx: Context, store: UnitStore, task: str, needs_vector: bool = False) -> dict:
    key = ctx.key(FITS, task, "tv")

    def compute(folder: Path) -> dict:
        from interp.vectors import TVConfig, fit_tv

        tv = saved_vector(ctx, folder)
        if tv is None:
            tv = fit_tv(ctx.problem(task), TVConfig(n_source=ctx.s.n_mean, n_valid=ctx.s.n_valid), progress=False)
            tv.save(folder)
        return {"layer": tv.layers[0], "vector_dir": str(folder), "eval": evaluate_vector(ctx, tv, task)}

    return store.get_or_run(FITS, key, compute, needs_folder=needs_vector)


def plain_unit(ctx: Context, store: UnitStore, task: str) -> dict:
    """The bare model zero-shot / shuffled, and clean k-shot ICL, on the test prompts."""
    from analyses.science.units import evaluate_plain

    key = ctx.key(FITS, task, "plain")
    return store.get_or_run(FITS, key, lambda folder: {
        "eval": {s: evaluate_plain(ctx, task, s) for s in ("zero-shot", "shuffled")},
        "icl": evaluate_plain(ctx, task, "icl"),
    })  # fmt: skip
