"""Run a sweep: plan the grid, skip finished cells, fan the rest out over Ray actors (or run in-process).

Each Ray actor (`SweepWorker`) loads the model once in ``__init__`` and then serves many groups of cells
(`interp.sweep.cells.run_group`); the driver hands the next pending group to whichever actor is free
(`ray.wait` over the groups in flight, like `ray.util.ActorPool`, but knowing which group a lost worker held). Workers write each finished cell straight into the store (atomically), so a sweep killed at any
point keeps every cell finished so far, and the same command computes only what is missing. Without
``address`` a local Ray instance is started (usage stats off, no dashboard); with ``address`` the sweep joins
that cluster (then ``out`` must be a folder every node sees, e.g. a shared filesystem). Workers ask Ray for
one GPU each when the device is CUDA, so one command fans out over a machine's GPUs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from interp.sweep.cells import GroupSpec, load_worker_model, model_identity, run_group
from interp.sweep.config import SweepConfig
from interp.sweep.keys import plan, resolve_tasks
from interp.store import write_json_atomic
from interp.sweep.store import Store


class SweepWorkerError(RuntimeError):
    """A Ray worker failed to start (its model could not be loaded); the message carries the worker's error."""


def _root_cause(err: BaseException) -> str:
    """The last ``SomeError: message`` line of a Ray error's text (the worker's own exception)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    causes = [ln for ln in lines if ln.split(":", 1)[0].endswith(("Error", "Exception"))]
    return (causes or lines or [type(err).__name__])[-1][:500]


def _failed_record(cell, error: str) -> dict:
    return {"key": cell.key, "status": "failed", "task": cell.task, "method": cell.method, "setting": cell.setting,
            "seed": cell.seed, "error": error, "stage": "worker"}  # fmt: skip


def keyed_model(ident: dict) -> str:
    """What a cell's key holds of its model: the fingerprint, plus the dtype unless it is float32.

    The fingerprint is dtype-blind on purpose (a vector fitted in float32 loads into a bfloat16 copy of the
    model), but a cell computed in bfloat16 is not the float32 cell's result: a CUDA sweep in the default
    bfloat16 must not be served the CPU's float32 cells, nor the reverse. float32 keys stay the bare fingerprint.
    """
    dtype = ident.get("dtype", "float32")
    return ident["model_fingerprint"] if dtype == "float32" else f"{ident['model_fingerprint']}/{dtype}"


def _context(cfg: SweepConfig, ident: dict) -> dict:
    """Fields written into every cell record (the cell's parameters beyond task / method / setting / seed)."""
    return {
        "model": cfg.model, "model_fingerprint": ident["model_fingerprint"], "dtype": ident.get("dtype", "float32"),
        "shots": cfg.shots,
        "n_requested": cfg.n, "template": cfg.template, "split_seed": cfg.split_seed,
    }  # fmt: skip


def release_memory() -> None:
    """Collect garbage and return freed heap pages to the OS: without it glibc keeps a finished group's
    prefixes mapped, and a long-running worker's resident memory climbs to twice a group's working set."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


class SweepWorker:
    """One model, many groups of cells (used as a Ray actor; also in-process with ``workers=0``)."""

    def __init__(self, model_name: str, device: str | None, threads: int, out: str, context: dict | None = None):
        import torch

        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        self.model = load_worker_model(model_name, device)
        self.load_s = time.perf_counter() - t0
        self.store = Store(out)
        self.context = context or {}

    def identity(self) -> dict:
        dtype = str(self.model.cfg.dtype).removeprefix("torch.")
        return {**model_identity(self.model), "dtype": dtype, "load_s": round(self.load_s, 2), "pid": os.getpid()}

    def set_context(self, context: dict) -> None:
        self.context = context

    def run(self, group: GroupSpec, emit: Callable[[dict], None] | None = None) -> list[dict]:
        records = []
        # a retried group (after a worker restart) skips the cells it already finished
        done = self.store.finished_among([c.key for c in group.cells])
        if done:
            records += list(done.values())
            group = GroupSpec(group.kind, group.tasks, group.seed, [c for c in group.cells if c.key not in done],
                              group.options, group.artifacts, group.label)  # fmt: skip

        def write(record: dict) -> None:
            self.store.write(record, self.context)
            records.append(record)
            if emit is not None:
                emit(record)

        try:
            run_group(self.model, group, write)
        finally:
            release_memory()  # a group's prompts and prefixes (GBs) are garbage now; give the pages back
        return records


@dataclass
class Execution:
    """Where and how groups run (none of it is part of any cell's key)."""

    model: str
    out: str  # the store the workers write cells into
    workers: int = 1  # Ray actors, one model each; 0 = in this process
    device: str | None = None
    threads: int = 1
    address: str | None = None
    gpus_per_worker: float = 1.0

    @classmethod
    def of(cls, cfg: SweepConfig) -> Execution:
        return cls(cfg.model, cfg.out, cfg.workers, cfg.device, cfg.threads, cfg.address, cfg.gpus_per_worker)


def run_groups(
    groups: Callable[[dict], list[GroupSpec]] | list[GroupSpec],
    ex: Execution,
    *,
    context: Callable[[dict], dict] | None = None,
    progress: bool = True,
    on_cell: Callable[[dict], None] | None = None,
    on_start: Callable[[dict, list[GroupSpec]], None] | None = None,
    label: str = "",
) -> dict:
    """The one runner: compute ``groups`` on workers that each hold ``ex.model`` (in-process or Ray actors).

    ``groups`` may be a function of the loaded model's identity (a sweep's cell keys hold the model's
    fingerprint); cells already finished in ``ex.out`` are skipped. Each worker writes every finished cell
    straight into the store, so a run killed at any point keeps what it finished. A sweep's grid, a science
    study's per-task phases (``kind="call"``) and any other grid of cells run through here. Returns
    ``{"model": identity, "groups": [...], "total", "pending", "computed", "failed", "timings_s"}``.
    """
    store = Store(ex.out)
    device = ex.device or ("cuda" if _cuda() else "cpu")
    timings: dict[str, float] = {}
    local_worker, ray_mod = None, None
    try:
        if ex.workers == 0:
            local_worker = SweepWorker(ex.model, ex.device, ex.threads, ex.out)
            ident = local_worker.identity()
        else:
            t0 = time.perf_counter()
            ray_mod, actors = _start_ray(ex, device)
            timings["ray_init_s"] = round(time.perf_counter() - t0, 2)
            try:
                ident = ray_mod.get(actors[0].identity.remote())
                ray_mod.get([a.identity.remote() for a in actors])  # all models loaded
            except ray_mod.exceptions.RayError as err:  # e.g. an unknown model: one clear line, not a Ray trace
                raise SweepWorkerError(f"a sweep worker could not start: {_root_cause(err)}") from None
            timings["workers_ready_s"] = round(time.perf_counter() - t0, 2)
        ctx = context(ident) if context is not None else {}
        all_groups = groups(ident) if callable(groups) else list(groups)
        total = sum(len(g.cells) for g in all_groups)
        done = store.finished()
        pending = []
        for g in all_groups:
            cells = [c for c in g.cells if c.key not in done]
            if cells or g.kind == "call":  # a call group keeps its own cells (it skips what it finds finished)
                pending.append(GroupSpec(g.kind, g.tasks, g.seed, cells, g.options, g.artifacts, g.label))
        n_pending = sum(len(g.cells) for g in pending)
        if on_start is not None:
            on_start(ident, all_groups)
        stats = {"computed": 0, "failed": 0}
        bar = tqdm(total=n_pending or len(pending), desc=label or f"cells {ex.out}", unit="cell" if n_pending else "group",
                   file=sys.stderr, disable=not progress, dynamic_ncols=True)  # fmt: skip
        running = [0]

        def seen(record: dict) -> None:
            stats["computed" if record["status"] == "ok" else "failed"] += 1
            running[0] -= 1
            bar.update(1)
            bar.set_postfix(done=stats["computed"], running=running[0], failed=stats["failed"], refresh=False)
            if on_cell is not None:
                on_cell(record)

        def group_done(g: GroupSpec) -> None:
            if not g.cells:  # a call group with no cells of its own: one tick of the bar per group
                bar.update(1)
            if g.kind != "call":
                store.write_table()  # the table follows the cells as they land (a store copied mid-run is usable)

        if local_worker is not None:
            local_worker.set_context(ctx)
            for g in pending:
                running[0] = len(g.cells)
                local_worker.run(g, emit=seen)
                group_done(g)
        else:
            ray_mod.get([a.set_context.remote(ctx) for a in actors])
            queue = list(pending)
            idle = list(actors)
            futures: dict = {}  # future -> (actor, group)
            in_flight: dict[str, float] = {}  # cells sent to a worker and not yet seen here -> time sent

            def submit() -> None:
                while queue and idle:
                    g, actor = queue.pop(0), idle.pop(0)
                    futures[actor.run.remote(g)] = (actor, g)
                    running[0] += len(g.cells)
                    in_flight.update({c.key: time.time() for c in g.cells})

            def count(rec: dict) -> None:
                if in_flight.pop(rec["key"], None) is not None:
                    seen(rec)

            submit()
            bar.set_postfix(done=0, running=running[0], failed=0)
            while futures:
                ready, _ = ray_mod.wait(list(futures), num_returns=1, timeout=5)
                if not ready:
                    # workers write each cell as it finishes: count the ones landed so far (live progress)
                    for key, sent in list(in_flight.items()):
                        path = store.cells_dir / f"{key}.json"
                        if path.exists() and path.stat().st_mtime >= sent - 1:  # not a previous run's failure
                            try:
                                count(json.loads(path.read_text()))
                            except (json.JSONDecodeError, OSError):
                                pass
                    continue
                actor, g = futures.pop(ready[0])
                try:
                    records = ray_mod.get(ready[0])
                    idle.append(actor)
                except ray_mod.exceptions.RayError as err:
                    # the worker died (e.g. killed for memory) beyond its restarts: its unfinished cells are
                    # recorded as failed (the next run retries them) and the run goes on with the others
                    msg = f"worker lost: {_root_cause(err)}"
                    records = [dict(_failed_record(c, msg), **ctx) for c in g.cells if c.key in in_flight]
                    for rec in records:
                        store.write(rec, ctx)
                    if g.kind == "call":
                        stats["failed"] += 1
                        print(f"interp: {g.label} failed: {msg}", file=sys.stderr)
                    if not isinstance(err, ray_mod.exceptions.ActorDiedError):
                        idle.append(actor)
                for rec in records:
                    count(rec)
                group_done(g)
                if not idle and not futures and queue:
                    raise SweepWorkerError("every worker died; rerun the same command to resume")
                submit()
        bar.close()
        return {"model": ident, "groups": all_groups, "pending": pending, "total": total, "n_pending": n_pending,
                "computed": stats["computed"], "failed": stats["failed"], "timings_s": timings, "context": ctx}  # fmt: skip
    finally:
        if ray_mod is not None:
            ray_mod.shutdown()  # ends this run's actors (and the local instance, if this call started it)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_sweep(
    cfg: SweepConfig, *, progress: bool = True, on_cell: Callable[[dict], None] | None = None
) -> dict:
    """Compute every missing cell of ``cfg``'s grid into ``cfg.out``; returns the run's summary.

    ``on_cell(record)`` is called in this process after each cell is stored (in-process mode: as each cell
    finishes; with Ray: as each group comes back). Exceptions from it (e.g. KeyboardInterrupt) stop the sweep
    with every cell finished so far kept.
    """
    t_start = time.perf_counter()
    cfg.validate()
    tasks = resolve_tasks(cfg)  # unknown task -> config error before anything starts
    store = Store(cfg.out)
    state: dict = {}

    def start(ident: dict, groups: list[GroupSpec]) -> None:
        state["grid"] = [c.key for g in groups for c in g.cells]
        write_json_atomic(store.root / "sweep.json", {
            "config": cfg.to_dict(), "model": ident, "grid": state["grid"], "summary": None, "timings_s": {},
        })  # fmt: skip

    run = run_groups(lambda ident: plan(cfg, keyed_model(ident), tasks), Execution.of(cfg),
                     context=lambda ident: _context(cfg, ident), progress=progress, on_cell=on_cell, on_start=start,
                     label=f"sweep {cfg.out}")  # fmt: skip
    records = store.records()
    store.write_table(records)
    summary = {
        "cells": run["total"],
        "computed": run["computed"],
        "reused": run["total"] - run["n_pending"],
        "failed": run["failed"],
        "wall_s": round(time.perf_counter() - t_start, 2),
        "out": str(cfg.out),
    }
    pending_keys = {c.key for g in run["pending"] for c in g.cells}
    failures = [r for r in records.values() if r.get("status") == "failed" and r["key"] in pending_keys]
    write_json_atomic(store.root / "sweep.json", {
        "config": cfg.to_dict(), "model": run["model"], "grid": state["grid"], "summary": summary,
        "timings_s": run["timings_s"],
        "failures": [{k: r.get(k) for k in ("task", "method", "setting", "seed", "error")} for r in failures],
    })  # fmt: skip
    return summary


def actor_options(cfg: SweepConfig | Execution, device: str) -> dict:
    """Ray resources of one worker: its threads, and on CUDA its share of a GPU (``gpus_per_worker``)."""
    opts = {"num_cpus": cfg.threads, "max_restarts": 3, "max_task_retries": 3}
    if device.startswith("cuda"):
        opts["num_gpus"] = cfg.gpus_per_worker
    return opts


def _start_ray(cfg: Execution, device: str):
    """A local Ray instance (or the cluster at ``cfg.address``) and ``cfg.workers`` model-serving actors."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if cfg.address:
        ray.init(address=cfg.address, **kwargs)
    else:
        gpus = None
        if device.startswith("cuda"):
            import torch

            gpus = torch.cuda.device_count()
        # Ray starts workers at niceness +15 by default (to favour its own daemons); a sweep's workers are the
        # work itself, so they run at the driver's niceness (`nice -n 5 interp sweep ...` then applies to them)
        system = {"worker_niceness": 0}
        if "RAY_memory_monitor_refresh_ms" not in os.environ:
            # Ray's memory monitor kills Ray workers when the *node* is nearly full, whoever fills it: on a
            # machine shared with other programs that kills the sweep for their memory. Locally, leave true
            # out-of-memory to the kernel (set RAY_memory_monitor_refresh_ms to keep Ray's monitor).
            system["memory_monitor_refresh_ms"] = 0
        # address="local": always a new instance of our own size; with None, Ray would join a cluster that a
        # `ray start` (or $RAY_ADDRESS) left running on this machine, and refuse our num_cpus there
        ray.init(address="local", num_cpus=max(cfg.workers * cfg.threads, 1), num_gpus=gpus, _system_config=system,
                 **kwargs)  # fmt: skip
    worker_cls = ray.remote(SweepWorker)
    # a worker killed (e.g. by Ray's memory monitor on a crowded machine) restarts and its group is retried;
    # the retry skips the cells the dead worker had already written
    opts = actor_options(cfg, device)
    actors = [
        worker_cls.options(**opts).remote(cfg.model, cfg.device, cfg.threads, str(Path(cfg.out).resolve()))
        for _ in range(cfg.workers)
    ]
    return ray, actors
