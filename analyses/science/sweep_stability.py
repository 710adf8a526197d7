"""θ stability from the fits a sweep already made: one LTV per (task, seed) in ``results/sweeps/text``.

The full-suite sweep (`interp.sweep`) fits the LTV once per task and seed at the comparison's settings (up to
300 steps, 32 clean prompts for ā, 48 corrupted training prompts per corruption) and keeps every fitted vector as
an artifact. A sweep seed redraws the training *queries* (48 of a train split of hundreds, so two seeds share
about a tenth of them), every demonstration, the clean prompts behind ā and the minibatch order; the split is
fixed. Two seeds' fits are therefore nearly independent fits of the same task, which is what the stability test
asks: if θ represents the task in attention heads, it should not depend on which prompts it was fitted on.

This module turns those artifacts into the same table `analyses.science.stability` builds from its own units
(`summarise_task`: pairwise Spearman of θ and of the head sizes |θ|·‖ā‖, top-10 overlap, sign agreement, the
mean θ and which heads keep their sign in every fit), so the figure and the claims read either. Nothing is
fitted here; tasks with fewer than two seeds are skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analyses.science import stability

DEFAULT_SWEEP = Path("results/sweeps/text")


def sweep_fits(sweep: str | Path = DEFAULT_SWEEP, tasks=None) -> dict[str, dict[str, dict]]:
    """``{task: {"seed S": fit}}`` for every finished single-task LTV of the store whose artifact exists.

    A fit is ``{"theta": [L][H], "head_scores": [L][H] (|θ|·‖ā‖ with the fit's own ā), "eval": {setting:
    {accuracy, ci_low, ci_high, n}}, "artifact": name}``, the fields `stability.summarise_task` reads.
    """
    from safetensors.torch import load_file

    sweep = Path(sweep)
    fits: dict[str, dict[str, dict]] = {}
    from interp.sweep.store import Store

    for cell in sorted(Store(sweep).records().values(), key=lambda c: c.get("key", "")):
        if cell.get("status") != "ok" or cell.get("method") != "ltv" or not cell.get("artifact"):
            continue
        if tasks is not None and cell["task"] not in tasks:
            continue
        label = f"seed {cell['seed']}"
        fit = fits.setdefault(cell["task"], {}).get(label)
        if fit is None:
            folder = sweep / "artifacts" / cell["artifact"]
            if not (folder / "vector.safetensors").exists():
                continue
            tensors = load_file(str(folder / "vector.safetensors"))
            theta = tensors["theta"].double().numpy()
            basis = tensors["basis"].double().numpy()[0]  # [layer, head, d_model]: the task's ā
            fit = {"theta": theta.tolist(), "head_scores": (np.abs(theta) * np.linalg.norm(basis, axis=-1)).tolist(),
                   "eval": {}, "artifact": cell["artifact"]}  # fmt: skip
            fits[cell["task"]][label] = fit
        acc = cell["metrics"]["accuracy"]
        fit["eval"][cell["setting"]] = {k: acc[k] for k in ("ci_low", "ci_high", "n")} | {"accuracy": acc["value"]}
    return {t: dict(sorted(f.items())) for t, f in fits.items() if len(f) >= 2}


def stability_table(sweep: str | Path = DEFAULT_SWEEP, tasks=None) -> dict[str, dict]:
    """Per task with at least two seeds: `stability.summarise_task` of its seeds' fits (+ which artifacts)."""
    table = {}
    for task, fits in sorted(sweep_fits(sweep, tasks).items()):
        summary = stability.summarise_task(fits)
        summary["source"] = {"sweep": str(sweep), "artifacts": {k: f["artifact"] for k, f in fits.items()}}
        # every fit's own θ and scores: the store's artifacts are not committed, this table is
        summary["fits"] = {k: {"theta": f["theta"], "eval": f["eval"]} for k, f in fits.items()}
        table[task] = summary
    return table
