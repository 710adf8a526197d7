"""Content-addressed cell keys: a cell's key hashes everything that determines its result.

    key = sha256(canonical JSON of {model fingerprint, task content hash(es), split seed, shots, template,
                                    n, method, its config, its code version, setting, seed})

so a finished cell is found again by any later sweep that asks for the same thing (whatever else that sweep
asks for), and changing any ingredient (a task file's bytes, a method option, `CELL_VERSION`) gives a new key:
the cell is computed afresh and the old result stays in the store under its own key. Execution details
(workers, address, device placement on the same model, output folder) are not part of the key.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from interp.store import digest, file_hash
from interp.sweep.cells import CELL_VERSION, FIT_OF, CellSpec, GroupSpec
from interp.sweep.config import SweepConfig, SweepConfigError


def resolve_tasks(cfg: SweepConfig) -> list[tuple[str, str]]:
    """(name, JSON path) of every task of the sweep; an unknown name is a config error (nothing runs).

    Only the file's *location* is checked here: a file that exists but is malformed fails its cells.
    """
    from interp.tasks import BUILTIN_DIR, list_tasks

    out = []
    for name in cfg.tasks:
        if Path(name).suffix == ".json":
            if not Path(name).exists():
                raise SweepConfigError(f"task file {name} does not exist")
            out.append((Path(name).stem, str(Path(name).resolve())))
            continue
        root, bare = (BUILTIN_DIR, name.split(":", 1)[1]) if name.startswith("builtin:") else (cfg.tasks_dir, name)
        available = list_tasks(root)
        if bare not in available:
            raise SweepConfigError(
                f"unknown task {name!r} (tasks dir: {root or 'built-in / $INTERP_TASKS_DIR'}); available: "
                f"{', '.join(sorted(available)) or '(none)'}. Pass --tasks-dir or fix --tasks."
            )
        out.append((bare, str(available[bare].resolve())))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise SweepConfigError(f"task names repeat in {names}; each task may appear once")
    return out


def plan(cfg: SweepConfig, fingerprint: str, tasks: list[tuple[str, str]]) -> list[GroupSpec]:
    """Every cell of the grid, grouped into units of work (one per (task, seed); one multi-task LTV per seed).

    Groups come seed by seed (all tasks of seed 0 first), so an interrupted sweep has whole seeds done.
    """
    hashes = {name: file_hash(path) for name, path in tasks}
    options = {
        "shots": cfg.shots, "template": cfg.template, "n": cfg.n, "split_seed": cfg.split_seed,
        "ltv": asdict(cfg.ltv), "fv": asdict(cfg.fv), "tv": asdict(cfg.tv),
        "ltv_multi": asdict(cfg.ltv_multi), "steer": {**asdict(cfg.steer), "lr_grid": list(cfg.steer_lr_grid)},
    }  # fmt: skip
    prompt = {"model": fingerprint, "split_seed": cfg.split_seed, "shots": cfg.shots, "template": cfg.template}
    method_cfg = {"ltv": options["ltv"], "random": options["ltv"], "fv": options["fv"], "tv": options["tv"],
                  "ltv-multi": options["ltv_multi"], "steer": options["steer"], "none": None, "icl": None}  # fmt: skip
    out_dir = str(Path(cfg.out).resolve() / "artifacts")
    groups: list[GroupSpec] = []
    for seed in cfg.seeds:
        for name, path in tasks:
            task_id = {"name": name, "sha": hashes[name]}
            cells = []
            for method in cfg.methods:
                if method == "ltv-multi":
                    continue
                fit = FIT_OF[method]
                fit_key = None
                if fit is not None:
                    fit_key = f"{fit}-{name}-s{seed}-" + digest(
                        {**prompt, "task": task_id, "fit": fit, "config": method_cfg[fit], "seed": seed,
                         "version": CELL_VERSION[fit]}, 12)  # fmt: skip
                for setting in ("icl",) if method == "icl" else cfg.settings:
                    key = digest({**prompt, "task": task_id, "n": cfg.n, "method": method, "config": method_cfg[method],
                                  "version": CELL_VERSION[method], "fit": fit_key, "setting": setting, "seed": seed})  # fmt: skip
                    cells.append(CellSpec(key, name, method, setting, seed, fit_key))
            groups.append(GroupSpec("task", [(name, path)], seed, cells, options, out_dir, f"{name} seed {seed}"))
        if "ltv-multi" in cfg.methods:
            all_tasks = sorted((n, hashes[n]) for n, _ in tasks)
            fit_key = f"ltv-multi-{len(tasks)}tasks-s{seed}-" + digest(
                {**prompt, "tasks": all_tasks, "fit": "ltv-multi", "config": options["ltv_multi"], "seed": seed,
                 "version": CELL_VERSION["ltv-multi"]}, 12)  # fmt: skip
            cells = [
                CellSpec(digest({**prompt, "tasks": all_tasks, "task": name, "n": cfg.n, "method": "ltv-multi",
                                 "fit": fit_key, "setting": s, "seed": seed, "version": CELL_VERSION["ltv-multi"]}),
                         name, "ltv-multi", s, seed, fit_key)
                for name, _ in tasks for s in cfg.settings
            ]  # fmt: skip
            groups.append(GroupSpec("multi", list(tasks), seed, cells, options, out_dir, f"multi-task LTV seed {seed}"))
    return groups
