"""The main job: regenerate every figure under ``figures/`` (``interp figures [--quick] [--force]``).

Stages, each with its own progress bar, in the order they depend on each other:

1. **vectors** — per task: fit an LTV, an FV (CIE + layer sweep on valid) and a TV (layer sweep on
   valid); score every method on the test split (zero-shot and shuffled prompts) → head-weight figures.
2. **multi-task LTV** — one θ shared by all tasks → its head-weight figure and comparison cells.
3. **patching** — for the first task: activation and attribution patching vs LTV and FV head scores.
4. **layer sweep** — for the first task: FV / TV at every layer, single-layer LTVs at every few layers.
5. **geometry** — cosine similarity of the task vectors, 2-D PCA of per-prompt vectors (no model run).
6. **comparison table** — from the sweep store ``results/sweeps/text`` when it exists (``interp sweep``: the
   SmolLM2 run on the shared task suite, means over seeds), else from the cells of stages 1–2 (this run's
   built-in tasks).
7. **regression** — error curves from ``results/regression/*.json``; when there are none, from
   ``analyses.regression_length.run_length_experiment`` if it exists, else from the shipped
   checkpoints' own curves (no task vectors; the README says so). Then, from the committed
   ``results/regression_positions/*.json`` (no computation): the same experiment on models with and without
   learned position rows (`analyses.regression_positions`); skipped when there are none.
8. **science** — "is the LTV a task representation?": θ stability, head-count curve, controls, data
   efficiency, portability, drawn from the committed tables in ``results/science/`` (computed by
   ``interp science``; hours of CPU, so never recomputed here: a missing table is a note).

Every expensive unit is cached under ``.cache/figures/<sha>.json`` keyed by everything it depends on
(settings, model fingerprint, task content, stage code version), so a rerun with identical settings only
redraws; ``--force`` recomputes. The model is loaded only when some unit has to be computed.
Outputs: ``<name>.html`` (sharing one ``plotly.min.js``) and ``<name>.png`` per figure, ``results.json``
(every number behind the figures, with the settings and seeds), ``README.md`` (figures with captions),
``comparison_table.md``.

Defaults (SmolLM2-135M, 4 built-in tasks, 10-shot) are sized for <= 15 min on 2 CPU cores, ``--quick``
(2 tasks, smaller samples) for <= 3 min. ``interp figures --model tiny-gpt2 --quick`` runs the
plumbing on a tiny random model (the tests do this).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from analyses.common import AnalysisError, slug
from analyses.science.phases import CLAIMS_PATH, SCIENCE_DIR
from interp.defaults import FIGURE_BUILTIN_TASKS as BUILTIN_TASKS
from interp.defaults import FIGURE_SUITE_TASKS as SUITE_TASKS
from interp.defaults import SETTINGS
from interp.plot.style import FigureWriter
from interp.store import Store, digest, load_tensors, save_tensors, to_jsonable

#: bump a stage's version when its computation changes, so old cache entries are not reused
STAGE_VERSIONS = {"vectors": 1, "multitask": 1, "patching": 1, "sweep": 1, "regression": 1}


@dataclass
class FigureSettings:
    """Everything the figures depend on (hashed into the cache keys, written to results.json)."""

    model: str = "smollm2-135m"
    tasks: tuple[str, ...] | None = None  # None: the first n_tasks of BUILTIN_TASKS / SUITE_TASKS
    n_tasks: int = 4
    tasks_dir: str | None = None  # None: the project's built-in tasks
    shots: int = 10
    seed: int = 0
    n_test: int = 48  # test queries per (task, setting, method)
    ltv: dict = field(default_factory=lambda: dict(steps=60, n_train=32, n_valid=16, n_mean=32, batch_size=16,
                                                   eval_every=10, patience=3))  # fmt: skip
    fv: dict = field(default_factory=lambda: dict(top_k=10, n_mean=32, n_cie=8, n_valid=16))
    tv: dict = field(default_factory=lambda: dict(n_source=16, n_valid=16))
    multitask: bool = True
    patch_n: int = 8  # clean/corrupted prompt pairs for activation + attribution patching
    sweep_every: int = 3  # single-layer LTVs at layers 0, every, 2*every, ...
    sweep_vector_every: int = 1  # FV / TV injected at every layer (quick: every 2nd)
    sweep_ltv_steps: int = 30
    sweep_ltv_lr: float = 0.5  # a single layer's H weights need larger values than the all-layer θ (lr 0.05)
    top_k: int = 10
    regression_dir: str = "results/regression"
    # the length experiment on models with / without learned position rows; None: beside regression_dir
    regression_positions_dir: str | None = None
    regression_prompts: int = 300  # fallback curves of the shipped checkpoints
    comparison_sweep: str = "results/sweeps/text"  # an `interp sweep --out` store
    science_dir: str = str(SCIENCE_DIR)
    claims_path: str = str(CLAIMS_PATH)  # the verdicts the two-model figure draws (`interp science summarise`)
    quick: bool = False

    @classmethod
    def for_run(cls, quick: bool = False, **overrides) -> "FigureSettings":
        """Defaults, or the ``--quick`` variant (2 tasks, 5-shot, smaller samples), with overrides."""
        base = cls()
        if quick:
            base = replace(
                base, quick=True, n_tasks=2, shots=5, n_test=24, patch_n=4, sweep_every=10, sweep_vector_every=2, sweep_ltv_steps=15,
                regression_prompts=100,
                ltv=dict(steps=20, n_train=16, n_valid=8, n_mean=16, batch_size=8, eval_every=5, patience=2),
                fv=dict(top_k=10, n_mean=16, n_cie=4, n_valid=8), tv=dict(n_source=8, n_valid=8),
            )  # fmt: skip
        unknown = set(overrides) - set(asdict(base))
        if unknown:
            raise AnalysisError(f"unknown figure settings {sorted(unknown)}; known: {sorted(asdict(base))}")
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def task_names(self) -> list[str]:
        from interp.tasks import list_tasks

        if self.tasks:
            return list(self.tasks)
        if self.tasks_dir is None:
            return list(BUILTIN_TASKS[: self.n_tasks])
        available = list_tasks(self.tasks_dir)
        names = [t for t in SUITE_TASKS if t in available]
        names += [t for t in sorted(available) if t not in names]
        if not names:
            raise AnalysisError(f"no tasks found in {self.tasks_dir}")
        return names[: self.n_tasks]

    def task_spec(self, name: str) -> str:
        """What to hand to `load_task`: ``builtin:<name>`` without a tasks dir."""
        return name if (self.tasks_dir or ":" in name or name.endswith(".json")) else f"builtin:{name}"


# ----------------------------------------------------------------------------------------------- run
class FigureRun:
    """State of one `run_figures` call: settings, cache, figure writer, the (lazily loaded) model and problems."""

    def __init__(self, settings: FigureSettings, out: Path, cache_dir: Path, force: bool, progress: bool, png: bool,
                 model=None):  # fmt: skip
        self.s = settings
        self.out = Path(out)
        self.cache = Store(Path(cache_dir), force=force, log=lambda m: None)
        self.writer = FigureWriter(self.out, png=png)
        self.progress = progress
        self._model = model
        self._problems: dict[str, Any] = {}
        self._tasks: dict[str, Any] = {}
        self.results: dict[str, Any] = {}
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}
        self._fingerprint: str | None = None

    # lazily loaded things --------------------------------------------------------------------------
    @property
    def model(self):
        if self._model is None:
            from interp.models import load_model

            self._model = load_model(self.s.model, verbose=self.progress)
        return self._model

    def model_id(self) -> dict:
        """Identifies the model in cache keys without loading it when possible (the name + a weight hash)."""
        if self._fingerprint is None:
            if self._model is not None:
                from interp.models import model_fingerprint

                self._fingerprint = model_fingerprint(self._model)
            else:
                self._fingerprint = "name-only"
        return {"name": self.s.model, "fingerprint": self._fingerprint}

    def task(self, name: str):
        from interp.tasks import load_task

        if name not in self._tasks:
            self._tasks[name] = load_task(self.s.task_spec(name), self.s.tasks_dir, seed=self.s.seed)
        return self._tasks[name]

    def task_id(self, name: str) -> dict:
        t = self.task(name)
        return {
            "name": t.name,
            "sha": digest([[p.input, p.output] for p in t.pairs]),
            "splits": list(t.split_fractions),
        }

    def problem(self, name: str):
        from interp.problems import TextProblem

        if name not in self._problems:
            self._problems[name] = TextProblem(
                self.model, self.task(name), shots=self.s.shots, seed=self.s.seed
            )
        return self._problems[name]

    def key(self, stage: str, **parts) -> dict:
        return {"stage": stage, "version": STAGE_VERSIONS[stage], "model": self.model_id(), **parts}

    def bar(self, items, desc: str):
        return tqdm(items, desc=desc, disable=not self.progress, leave=True)

    def save(self, fig, name: str, caption: str, **kw) -> None:
        self.writer.save(fig, name, caption, **kw)


# ----------------------------------------------------------------------------------------------- stages
def _vector_settings(run: FigureRun) -> dict:
    s = run.s
    return {"shots": s.shots, "seed": s.seed, "n_test": s.n_test, "ltv": s.ltv, "fv": s.fv, "tv": s.tv}


def _cell(result, row: str, clean_correct: list[bool] | None) -> dict:
    """One comparison cell of this run (accuracy, CI, n, Todd's filtered accuracy), as `comparison_table` reads it."""
    from interp.stats import wilson_interval

    d = result.to_dict()
    d.pop("meta", None)
    d["row"] = row
    if clean_correct is not None and len(clean_correct) == result.n:
        kept = [c for c, ok in zip(result.correct, clean_correct) if ok]
        low, high = wilson_interval(sum(kept), len(kept))
        d["filtered"] = {"accuracy": sum(kept) / len(kept) if kept else float("nan"), "n": len(kept),
                         "ci_low": low, "ci_high": high}  # fmt: skip
    return d


def fit_tv_per_prompt(problem, config):
    """`interp.vectors.fit_tv` with the per-prompt hidden states ``[n_source, layer, d_model]`` it averages
    (the PCA of analysis 6 needs them)."""
    from interp.vectors import fit_tv

    return fit_tv(problem, config, progress=False, return_per_prompt=True)


def stage_vectors(run: FigureRun, tasks: list[str]) -> dict[str, dict]:
    """Stage 1: LTV / FV / TV per task, test-split cells, head-weight data; figures per task."""
    from interp.plot.heads import head_weight_data, plot_head_weights
    from interp.plot.layers import clean_icl_result
    from interp.problems import run_prefix
    from interp.vectors import FVConfig, LTVConfig, TVConfig, fit_fv, fit_ltv

    out = {}
    for name in run.bar(tasks, "[1/7] vectors per task"):
        key = run.key("vectors", task=run.task_id(name), **_vector_settings(run))

        def compute(folder: Path, name=name) -> dict:
            problem = run.problem(name)
            n_heads_total = problem.model.cfg.n_layers * problem.model.cfg.n_heads
            ltv = fit_ltv(problem, LTVConfig(**run.s.ltv, seed=run.s.seed), progress=False)
            fv_cfg = dict(run.s.fv, top_k=min(run.s.fv.get("top_k", 10), n_heads_total))
            fv = fit_fv(problem, FVConfig(**fv_cfg, seed=run.s.seed), progress=False)
            tv, per_prompt = fit_tv_per_prompt(problem, TVConfig(**run.s.tv))
            for label, vec in (("ltv", ltv), ("fv", fv), ("tv", tv)):
                vec.save(folder / label)
            save_tensors(folder, "per_prompt", {"tv_hidden": per_prompt})
            clean = clean_icl_result(problem, run.s.n_test)  # full forward: no prefix to reuse
            cells = [_cell(clean, "ICL (clean)", None)]
            methods = {"random-θ": ltv.random_control(run.s.seed), "FV": fv, "TV": tv, "LTV": ltv}
            for setting in SETTINGS:
                b, prefix = problem.prefix(setting, "test", run.s.n_test)
                o = run_prefix(prefix, lambda idx: [])
                cells.append(_cell(problem.result(o, b, "none"), "none", clean.correct))
                for label, vec in methods.items():
                    cells.append(_cell(vec.evaluate(problem, setting, n=run.s.n_test), label, clean.correct))
            return {
                "task": name,
                "cells": cells,
                "clean_correct": clean.correct,
                "head_weights": head_weight_data(ltv, fv, name).to_dict("records"),
                "ltv": {k: ltv.meta["training"][k] for k in ("steps_run", "best_step", "best_valid_loss", "stopped", "wall_s")},
                "fv": {"layer": fv.layer, "top_heads": fv.top_heads(), "layer_sweep": fv.meta.get("layer_sweep"),
                       "wall_s": fv.meta.get("wall_s")},
                "tv": {"layer": tv.layer, "layer_sweep": tv.meta.get("layer_sweep"), "wall_s": tv.meta.get("wall_s")},
                "n_layers": problem.model.cfg.n_layers,
                "folder": folder.name,
            }  # fmt: skip

        res = run.cache.get_or_compute(key, compute)
        res["_folder"] = str(run.cache.folder_of(key))
        out[name] = res
        fig, _ = plot_head_weights(pd.DataFrame(res["head_weights"]), top_k=run.s.top_k)
        acc = {c["row"]: c["accuracy"] for c in res["cells"] if c["setting"] == "shuffled"}
        run.save(fig, f"head_weights_{slug(name)}",
                 f"LTV weights θ (left, diverging, 0 = white) and FV causal indirect effects (middle) per head for "
                 f"*{name}*; the table lists each method's top {min(run.s.top_k, len(res['head_weights']))} heads.  \n"
                 f"Shuffled-label test accuracy: LTV {acc.get('LTV', float('nan')):.2f}, FV {acc.get('FV', float('nan')):.2f} "
                 f"(FV layer {res['fv']['layer']}, LTV {res['ltv']['steps_run']} steps).")  # fmt: skip
    return out


def stage_multitask(run: FigureRun, tasks: list[str], vec_results: dict) -> dict | None:
    """Stage 2: one LTV θ shared by all tasks (each with its own ā)."""
    from interp.plot.heads import multitask_head_weight_data, plot_multitask_head_weights
    from interp.vectors import LTVConfig, fit_ltv

    if not run.s.multitask or len(tasks) < 2:
        return None
    key = run.key("multitask", tasks=[run.task_id(t) for t in tasks], **_vector_settings(run))

    def compute(folder: Path) -> dict:
        problems = [run.problem(t) for t in tasks]
        multi = fit_ltv(problems, LTVConfig(**run.s.ltv, seed=run.s.seed), progress=False)
        multi.save(folder / "multi")
        cells, per_prompt = [], {}
        for t, problem in zip(tasks, problems):
            vec = multi.for_task(t)
            clean_correct = vec_results[t]["clean_correct"]
            for setting in SETTINGS:
                cells.append(
                    _cell(vec.evaluate(problem, setting, n=run.s.n_test), "LTV (multi-task)", clean_correct)
                )
            acts = problem.clean_activations(run.s.ltv["n_mean"]).contributions  # [n, L, H, d]
            per_prompt[t] = torch.einsum("lh,nlhd->nd", multi.theta, acts)
        save_tensors(folder, "per_prompt", per_prompt)
        return {"cells": cells, "head_weights": multitask_head_weight_data(multi).to_dict("records"),
                "training": {k: multi.meta["training"][k] for k in ("steps_run", "best_step", "stopped", "wall_s")}}  # fmt: skip

    for _ in run.bar(range(1), "[2/7] multi-task LTV"):
        res = run.cache.get_or_compute(key, compute)
    res["_folder"] = str(run.cache.folder_of(key))
    fig, _ = plot_multitask_head_weights(pd.DataFrame(res["head_weights"]), top_k=run.s.top_k)
    run.save(fig, "head_weights_multitask",
             f"Multi-task LTV trained on {len(tasks)} tasks at once: the shared θ (left) and, per task, the size "
             "|θ|·‖ā_task‖ of what each head adds.  \nThe same θ weights different head outputs per task (ā is task-specific).")  # fmt: skip
    return res


def stage_patching(run: FigureRun, task: str, vec_res: dict) -> dict:
    """Stage 3: activation / attribution patching vs LTV and FV head scores, for one task."""
    from analyses.patching import compare_head_scores, head_score_frame, patching_scores, reading

    key = run.key("patching", task=run.task_id(task), vectors=digest(vec_res["head_weights"]), n=run.s.patch_n,
                  shots=run.s.shots, seed=run.s.seed)  # fmt: skip

    def compute(folder: Path) -> dict:
        scores = patching_scores(run.problem(task), n=run.s.patch_n, seed=run.s.seed, progress=run.progress)
        return {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in scores.items()}

    for _ in run.bar(range(1), f"[3/7] patching ({task})"):
        res = run.cache.get_or_compute(key, compute)
    hw = pd.DataFrame(vec_res["head_weights"])
    n_layers, n_heads = int(hw.layer.max()) + 1, int(hw["head"].max()) + 1
    grid = lambda col: hw.sort_values(["layer", "head"])[col].to_numpy().reshape(n_layers, n_heads)
    df = head_score_frame(ltv=grid("ltv_score"), fv=grid("fv_cie"), act_patch=np.array(res["act_patch"]),
                          attr_patch=np.array(res["attr_patch"]))  # fmt: skip
    fig, stats = compare_head_scores(df, top_k=run.s.top_k,
                                     title=f"Per-head scores on {task}: LTV vs FV CIE vs activation / attribution patching "
                                           f"({res['n']} prompt pairs)")  # fmt: skip
    text = reading(stats)
    run.save(fig, "patching_comparison",
             f"Four per-head scores for *{task}* (one dot per head; red: in both top-{stats['k']}); panel titles give "
             f"Spearman ρ and top-{stats['k']} overlap.  \n{text}")  # fmt: skip
    return {"task": task, "heads": df.to_dict("records"), "spearman": stats["spearman"].to_dict(),
            "overlap": stats["overlap"].to_dict(), "top_heads": stats["top_heads"], "reading": text,
            "p_clean_mean": float(np.mean(res["p_clean"])), "p_corrupted_mean": float(np.mean(res["p_corrupted"])),
            "n_pairs": res["n"], "queries": res["queries"]}  # fmt: skip


def sweep_layers(n_layers: int, every: int) -> list[int]:
    """Single-layer LTV layers: 0, every, 2*every, ... (and the last layer)."""
    layers = list(range(0, n_layers, max(1, every)))
    if layers[-1] != n_layers - 1:
        layers.append(n_layers - 1)
    return layers


def stage_sweep(run: FigureRun, task: str, vec_res: dict) -> dict:
    """Stage 4: accuracy vs injection layer for FV, TV and single-layer LTVs, for one task."""
    from interp.plot.layers import compute_layer_sweep, plot_layer_sweep
    from interp.vectors import LTVConfig, load_vector

    n_layers = vec_res["n_layers"]
    layers = sweep_layers(n_layers, run.s.sweep_every)
    vector_layers = sweep_layers(n_layers, run.s.sweep_vector_every)
    key = run.key("sweep", task=run.task_id(task), vectors=digest(vec_res["head_weights"]), layers=layers,
                  vector_layers=vector_layers,
                  ltv_steps=run.s.sweep_ltv_steps, ltv_lr=run.s.sweep_ltv_lr, **_vector_settings(run))  # fmt: skip

    def compute(folder: Path) -> dict:
        problem = run.problem(task)
        base = Path(vec_res["_folder"])
        fv, tv, ltv = (load_vector(base / m, problem.model) for m in ("fv", "tv", "ltv"))
        cfg = LTVConfig(
            **dict(run.s.ltv, steps=run.s.sweep_ltv_steps, lr=run.s.sweep_ltv_lr), seed=run.s.seed
        )
        df = compute_layer_sweep(problem, fv, tv, ltv, ltv_layers=layers, ltv_config=cfg, settings=SETTINGS,
                                 n=run.s.n_test, fv_layers=vector_layers, tv_layers=vector_layers,
                                 progress=run.progress)  # fmt: skip
        return {"rows": df.to_dict("records")}

    for _ in run.bar(range(1), f"[4/7] layer sweep ({task})"):
        res = run.cache.get_or_compute(key, compute)
    df = pd.DataFrame(res["rows"])
    fig, _ = plot_layer_sweep(
        df, title=f"Injection layer sweep on {task} (test, n={run.s.n_test} per point, 95% CI bands)"
    )
    every = (
        f"every {run.s.sweep_every} layers ({', '.join(map(str, layers))})"
        if run.s.sweep_every > 1
        else "every layer"
    )
    vec_every = "each layer" if run.s.sweep_vector_every == 1 else f"every {run.s.sweep_vector_every} layers"
    run.save(fig, "layer_sweep",
             f"Test accuracy on *{task}* when the FV is added / the TV replaces the hidden state at {vec_every}, and of an "
             f"LTV trained at one layer only ({every}, {run.s.sweep_ltv_steps} steps at lr {run.s.sweep_ltv_lr}, to fit the CPU budget).  \n"
             "Dashed lines: the full all-layer LTV, the clean-ICL ceiling and the uncorrected model; bands are 95% Wilson CIs.")  # fmt: skip
    return {"task": task, "ltv_layers": layers, "vector_layers": vector_layers, "rows": res["rows"]}


def stage_geometry(run: FigureRun, tasks: list[str], vec_results: dict, multi: dict | None) -> dict:
    """Stage 5: cosine similarities of task vectors and 2-D PCA of per-prompt vectors (cached tensors only)."""
    from interp.plot.geometry import center_across_tasks, plot_cosine_similarity, plot_pca
    from interp.vectors import load_vector

    bar = run.bar(range(2), "[5/7] geometry")
    tv_layers = [vec_results[t]["tv"]["layer"] for t in tasks]
    layer = int(statistics.median_low(tv_layers))
    vectors, pca_tv, pca_multi = {}, {}, {}
    multi_vec = load_vector(Path(multi["_folder"]) / "multi") if multi else None
    for method in ("LTV", "LTV (multi-task)", "FV", "TV"):
        for t in tasks:
            base = Path(vec_results[t]["_folder"])
            if method == "LTV":
                vectors[(method, t)] = load_vector(base / "ltv").layer_vectors().sum(0)
            elif method == "LTV (multi-task)" and multi_vec is not None:
                vectors[(method, t)] = multi_vec.layer_vectors(t).sum(0)
            elif method == "FV":
                vectors[(method, t)] = load_vector(base / "fv").vector
            elif method == "TV":
                vectors[(method, t)] = load_vector(base / "tv").hidden[layer]
    for t in tasks:
        pca_tv[t] = load_tensors(Path(vec_results[t]["_folder"]) / "per_prompt.safetensors")["tv_hidden"][
            :, layer
        ]
    if multi:
        per = load_tensors(Path(multi["_folder"]) / "per_prompt.safetensors")
        pca_multi = {t: per[t] for t in tasks}
    fig, cos = plot_cosine_similarity(center_across_tasks(vectors, methods=("TV",)),
                                      title=f"Cosine similarity of task vectors ({len(tasks)} tasks; TV at layer {layer}, centred across tasks)")  # fmt: skip
    bar.update(1)
    run.save(fig, "vector_cosine",
             f"Cosine similarity between the task vectors of every (method, task): LTV and multi-task LTV as Σ_l v_l, the FV, "
             f"and the TV at layer {layer} (median of the tasks' best layers) minus its mean over tasks.  \n"
             "Blocks separate methods; a bright diagonal inside an off-diagonal block means two methods point the same way for a task.")  # fmt: skip
    panels = {f"hidden state at layer {layer} (per-prompt TV)": pca_tv}
    if pca_multi:
        panels["Σ θ_multi · a_p (per-prompt multi-task LTV)"] = pca_multi
    fig, pca = plot_pca(panels)
    bar.update(1)
    bar.close()
    n_per = {t: int(v.shape[0]) for t, v in pca_tv.items()}
    run.save(fig, "vector_pca",
             f"Per-prompt task vectors projected on their top two principal components, coloured by task "
             f"({min(n_per.values())}–{max(n_per.values())} prompts per task).  \nLeft: final-token hidden states of "
             "demonstration prompts at the TV layer; right: each prompt's head outputs weighted by the shared multi-task θ.")  # fmt: skip
    return {"tv_layer": layer, "cosine": cos.to_dict("records"), "pca": pca.to_dict("records")}


def stage_comparison(run: FigureRun, vec_results: dict, multi: dict | None) -> dict:
    """Stage 6: the comparison table as a figure and as Markdown."""
    from interp.plot.table import comparison_frame, plot_comparison_table
    from interp.sweep.report import load_comparison, to_markdown

    bar = run.bar(range(1), "[6/7] comparison table")
    report = load_comparison(run.s.comparison_sweep)
    if report is not None:
        meta_path = Path(run.s.comparison_sweep) / "sweep.json"
        model = json.loads(meta_path.read_text()).get("config", {}).get("model", "?") if meta_path.exists() else "?"
        source = (f"the sweep store `{run.s.comparison_sweep}` ({model}, {report.task.nunique()} tasks, "
                  f"{int(report.n_seeds.max())} seed(s) per cell at most, n ≤ {int(report.n.max())} test queries)")  # fmt: skip
    else:
        cells = [c for r in vec_results.values() for c in r["cells"]] + (multi["cells"] if multi else [])
        report = {"cells": cells, "config": {"model": run.s.model, **_vector_settings(run)}}
        source = (f"this run ({run.s.model}, {len(vec_results)} {'built-in ' if not run.s.tasks_dir else ''}tasks, "
                  f"{run.s.shots}-shot, n_test={run.s.n_test}); the sweep store `{run.s.comparison_sweep}` was not found")  # fmt: skip
        run.notes.append(
            f"Comparison table drawn from this run's cells: the sweep store {run.s.comparison_sweep} does not exist yet."
        )
    fig, df = plot_comparison_table(report)
    md = to_markdown(comparison_frame(report))
    (run.out / "comparison_table.md").write_text(f"# Text comparison\n\nSource: {source}.\n{md}")
    bar.update(1)
    bar.close()
    run.save(fig, "comparison_table",
             f"Test accuracy of every method on every task, zero-shot (top) and shuffled-label (bottom) prompts: 95% Wilson "
             f"intervals (one seed) or the mean ± sample std over seeds; source: {source}.  \nThe same table in Markdown: [comparison_table.md](comparison_table.md).")  # fmt: skip
    return {"source": source, "cells": df.to_dict("records")}


def stage_regression(run: FigureRun) -> dict | None:
    """Stage 7: regression error curves (experiment JSONs, else the experiment API, else shipped checkpoints)."""
    from interp.plot.regression import curves_frame, load_regression_results, plot_regression_curves

    bar = run.bar(range(1), "[7/7] regression curves")
    records = load_regression_results(run.s.regression_dir)
    if records:
        source = f"`{run.s.regression_dir}/*.json` ({len(records)} files)"
    else:
        records, source = _regression_fallback(run)
    bar.update(1)
    bar.close()
    if not records:
        note = "Regression figure skipped: no results in {} and no shipped checkpoint.".format(
            run.s.regression_dir
        )
        print(f"[figures] {note}")
        run.notes.append(note)
        return None
    df = curves_frame(records)
    has_vectors = any(c.startswith("model+") for c in df.curve.unique())
    second = (
        "Curves: the model alone, with an LTV / FV / random-θ control, the reused-position control and least squares."
        if has_vectors
        else "Model and classical estimators only: the length experiment's results (with task vectors) were not "
        "available when this figure was made."
    )  # fmt: skip
    classes = list(dict.fromkeys(df.function_class))
    for fc in classes:
        sub = df[df.function_class == fc]
        n_panels = sub["shift"].nunique()
        fig, _ = plot_regression_curves(sub, cols=2 if n_panels == 4 else 3,
                                        title=f"In-context regression, {fc}: error vs number of examples (95% bands)")  # fmt: skip
        run.save(fig, f"regression_curves_{slug(fc)}",
                 f"*{fc}*: normalised squared error vs number of in-context examples, per covariate shift (panels); "
                 f"dashed line = trained prompt length; source: {source}.  \n{second}")  # fmt: skip
    return {"source": source, "curves": df.to_dict("records")}


def stage_regression_positions(run: FigureRun) -> dict | None:
    """Regression without the position confound: drawn from committed results only (never retrains)."""
    from analyses.regression_positions import (
        SUMMARY_FIGURE,
        CURVES_FIGURE,
        load_position_results,
        plot_position_curves,
        plot_position_summary,
        position_claims,
    )

    root = Path(run.s.regression_positions_dir or Path(run.s.regression_dir).parent / "regression_positions")
    records = load_position_results(root)
    if not records:
        return None
    source = f"`{root}/*.json` ({len(records)} checkpoints; interp regress positions)"
    fig, _ = plot_position_curves(records)
    run.save(fig, CURVES_FIGURE,
             "Regression past the trained length on models with learned absolute positions (the shipped checkpoints) "
             "and without (rotary, no positional embedding): model, LTV, FV, random-θ, the reused-position-rows "
             f"control (learned positions only) and the model on its last T points; source: {source}.")  # fmt: skip
    fig, df = plot_position_summary(records)
    run.save(fig, SUMMARY_FIGURE,
             f"Mean error at 1–1.5× and 1.5–2× the trained length per checkpoint and method (95% CIs); source: {source}. "
             "Verdicts: results/regression_positions/claims.json.")  # fmt: skip
    return {"source": source, "ranges": df.to_dict("records"), "claims": position_claims(records)}


def _regression_fallback(run: FigureRun) -> tuple[list[dict], str]:
    from interp.plot.regression import shipped_checkpoint_curves

    try:
        from analyses.regression_length import run_length_experiment  # type: ignore[import-not-found]
    except ImportError:
        run_length_experiment = None
    from interp.regression import FUNCTION_CLASSES, shipped_checkpoint_dir

    classes = [
        fc for fc in sorted(FUNCTION_CLASSES) if (shipped_checkpoint_dir(fc) / "model.safetensors").exists()
    ]
    ckpt_ids = {fc: digest((shipped_checkpoint_dir(fc) / "config.json").read_text()) for fc in classes}
    if run_length_experiment is not None:
        records = []
        for fc in classes:
            key = {"stage": "regression", "version": STAGE_VERSIONS["regression"], "kind": "experiment",
                   "class": fc, "checkpoint": ckpt_ids[fc], "quick": run.s.quick}  # fmt: skip
            records.append(
                run.cache.get_or_compute(
                    key, lambda folder, fc=fc: run_length_experiment(fc, quick=run.s.quick)
                )
            )
        run.notes.append("Regression curves computed with analyses.regression_length.run_length_experiment "
                         f"(quick={run.s.quick}); {run.s.regression_dir} had no results.")  # fmt: skip
        return records, f"run_length_experiment(quick={run.s.quick}) on the shipped checkpoints"
    key = {"stage": "regression", "version": STAGE_VERSIONS["regression"], "kind": "shipped", "checkpoints": ckpt_ids,
           "n_prompts": run.s.regression_prompts, "seed": run.s.seed}  # fmt: skip
    res = run.cache.get_or_compute(key, lambda folder: {"records": shipped_checkpoint_curves(
        classes, n_prompts=run.s.regression_prompts, seed=run.s.seed)})  # fmt: skip
    note = (f"Regression curves are the shipped checkpoints' own (model + baselines, {run.s.regression_prompts} prompts): "
            f"{run.s.regression_dir} has no results and analyses.regression_length is not importable yet.")  # fmt: skip
    print(f"[figures] {note}")
    run.notes.append(note)
    return res[
        "records"
    ], f"shipped checkpoints ({', '.join(classes)}), evaluate_curve with {run.s.regression_prompts} prompts"


def stage_science(run: FigureRun) -> dict:
    """Stage 8: the issue-12 figures from ``results/science/*.json`` (never recomputed here; see the docstring)."""
    from analyses.science.figures import draw_all

    bar = run.bar(range(1), "[8/8] science figures")
    drawn, missing = draw_all(run.save, run.s.science_dir)
    bar.update(1)
    bar.close()
    if missing:
        run.notes.append(f"Science figures skipped for missing tables {', '.join(missing)} in {run.s.science_dir}/: "
                         "compute them with `interp science run ...` then `... summarise`.")  # fmt: skip
    claims = Path(run.s.claims_path)
    verdicts = json.loads(claims.read_text())["claims"] if claims.exists() else []
    # the second model's study (its own tables beside the first's) and the two side by side
    from analyses.science.figures import plot_claims_by_model
    from analyses.science.phases import other_model_dirs

    for model, folder in other_model_dirs(run.s.science_dir).items():
        more, _ = draw_all(lambda fig, name, caption: run.save(fig, f"{name}_{slug(model)}", f"{model}: {caption}"),
                           folder)  # fmt: skip
        drawn.update({f"{k}_{slug(model)}": v for k, v in more.items()})
    try:
        fig, df = plot_claims_by_model(verdicts)
        run.save(fig, "science_two_models", "Every claim judged on both models: headline estimate and 95% interval "
                 f"per model, the verdicts and whether they replicate. Source: `{claims}`.")  # fmt: skip
        drawn["science_two_models"] = len(df)
    except AnalysisError as err:
        run.notes.append(f"Two-model figure skipped: {err}")
    return {"figures": drawn, "missing": missing,
            "verdicts": [{"claim": c["claim"], "verdict": c["verdict"]} for c in verdicts]}  # fmt: skip


# ----------------------------------------------------------------------------------------------- main
def run_figures(
    out: str | Path = "figures",
    *,
    quick: bool = False,
    force: bool = False,
    tasks_dir: str | None = None,
    model: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    png: bool = True,
    loaded_model=None,
    **overrides,
) -> dict:
    """Regenerate every figure into ``out``; returns a summary (figures, timings, cache hits / misses).

    ``model`` picks another model (``"tiny-gpt2"`` in tests), ``loaded_model`` passes an already loaded one,
    ``overrides`` set `FigureSettings` fields (e.g. ``tasks=("antonym",)``, ``regression_dir=...``).
    """
    t_start = time.perf_counter()
    torch.set_num_threads(int(os.environ.get("INTERP_NUM_THREADS", "1")))
    settings = FigureSettings.for_run(quick=quick, model=model, tasks_dir=tasks_dir, **overrides)
    cache_dir = Path(cache_dir or os.environ.get("INTERP_FIGURES_CACHE", ".cache/figures"))
    run = FigureRun(settings, Path(out), cache_dir, force, progress, png, model=loaded_model)
    tasks = settings.task_names()
    if settings.model != "smollm2-135m" or loaded_model is not None:
        run.model
        run.model_id()

    def timed(name, fn, *a):
        t0 = time.perf_counter()
        value = fn(*a)
        run.timings[name] = round(time.perf_counter() - t0, 1)
        return value

    vec = timed("vectors", stage_vectors, run, tasks)
    multi = timed("multitask", stage_multitask, run, tasks, vec)
    run.results["head_weights"] = {t: vec[t]["head_weights"] for t in tasks}
    run.results["fitted"] = {t: {k: vec[t][k] for k in ("ltv", "fv", "tv")} for t in tasks}
    if multi:
        run.results["head_weights_multitask"] = multi["head_weights"]
        run.results["fitted"]["multitask"] = multi["training"]
    run.results["patching"] = timed("patching", stage_patching, run, tasks[0], vec[tasks[0]])
    run.results["layer_sweep"] = timed("sweep", stage_sweep, run, tasks[0], vec[tasks[0]])
    run.results["geometry"] = timed("geometry", stage_geometry, run, tasks, vec, multi)
    run.results["comparison"] = timed("comparison", stage_comparison, run, vec, multi)
    # this run's own test cells (behind the head-weight captions), also when the table comes from elsewhere
    run.results["cells_this_run"] = [c for t in tasks for c in vec[t]["cells"]] + (
        multi["cells"] if multi else []
    )
    run.results["regression"] = timed("regression", stage_regression, run)
    run.results["regression_positions"] = timed("regression_positions", stage_regression_positions, run)
    run.results["science"] = timed("science", stage_science, run)
    t0 = time.perf_counter()
    run.writer.flush()
    run.timings["png_export"] = round(time.perf_counter() - t0, 1)
    run.timings["total"] = round(time.perf_counter() - t_start, 1)
    summary = _write_outputs(run, tasks)
    if progress:
        print(f"[figures] wrote {len(run.writer.written)} figures to {run.out}/ in {run.timings['total']} s "
              f"(cache: {run.cache.reused} reused, {run.cache.computed} computed)")  # fmt: skip
    return summary


def _write_outputs(run: FigureRun, tasks: list[str]) -> dict:
    notes = run.notes + run.writer.notes
    meta = {
        "settings": asdict(run.s),
        "tasks": tasks,
        "model": run.model_id(),
        "seeds": {
            "global": run.s.seed,
            "task_splits": run.s.seed,
            "ltv": run.s.seed,
            "fv": run.s.seed,
            "random_theta_control": run.s.seed,
            "patching_pairs": run.s.seed,
        },  # fmt: skip
        "cache": {
            "dir": str(run.cache.root),
            "keys": run.cache.keys,
            "hits": run.cache.reused,
            "misses": run.cache.computed,
            "unit_compute_s": run.cache.compute_s,
            "total_compute_s": round(sum(run.cache.compute_s.values()), 1),
        },
        "timings_s": run.timings,
        "threads": torch.get_num_threads(),
        "figures": run.writer.written,
        "notes": notes,
    }
    _remove_stale_figures(run)
    payload = _round_floats(to_jsonable({**meta, "data": run.results}))
    (run.out / "results.json").write_text(json.dumps(payload, indent=1, allow_nan=True))
    (run.out / "README.md").write_text(_readme(run, tasks, notes))
    return {**meta, "out": str(run.out)}


def _remove_stale_figures(run: FigureRun) -> None:
    """Delete the files of figures a previous run in this folder wrote (per its results.json) and this one did not."""
    previous = run.out / "results.json"
    try:
        old = (
            {f["name"] for f in json.loads(previous.read_text()).get("figures", [])}
            if previous.exists()
            else set()
        )
    except (json.JSONDecodeError, AttributeError, TypeError, KeyError):
        return
    for name in old - {f["name"] for f in run.writer.written}:
        for suffix in (".html", ".png"):
            (run.out / f"{name}{suffix}").unlink(missing_ok=True)


def _round_floats(obj, digits: int = 6):
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, list):
        return [_round_floats(v, digits) for v in obj]
    if isinstance(obj, dict):
        return {k: _round_floats(v, digits) for k, v in obj.items()}
    return obj


def _readme(run: FigureRun, tasks: list[str], notes: list[str]) -> str:
    s = run.s
    lines = [
        "# Figures",
        "",
        "Generated by `interp figures" + (" --quick" if s.quick else "") + (f" --tasks-dir {s.tasks_dir}" if s.tasks_dir else "")
        + f"` (`analyses/main.py`): model `{s.model}`, tasks {', '.join(f'`{t}`' for t in tasks)}"
        + f" ({'built-in' if not s.tasks_dir else s.tasks_dir}), {s.shots}-shot, seed {s.seed}, n_test={s.n_test} per cell; "
        + f"this run took {run.timings.get('total', '?')} s wall time with {torch.get_num_threads()} torch thread(s) "
        + f"(cache: {run.cache.reused} units reused, {run.cache.computed} computed; computing every unit took "
        + f"{round(sum(run.cache.compute_s.values()))} s when it was first computed).",
        "",
        "Every number behind these figures, with the settings and seeds, is in [results.json](results.json). "
        "Each figure is also an interactive page (`.html`, works offline with `plotly.min.js` next to it).",
        "",
    ]  # fmt: skip
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    for f in run.writer.written:
        lines.append(f"## {f['title'] or f['name']}")
        lines.append("")
        if f["png"]:
            lines.append(f"[![{f['name']}]({f['png']})]({f['html']})")
        lines.append("")
        lines.append(f"{f['caption']}  ")
        lines.append(f"[interactive version]({f['html']})")
        lines.append("")
    return "\n".join(lines)


def cmd_figures(args) -> int:
    """Entry point of ``interp figures`` (see `interp.cli`)."""
    model = getattr(args, "model", None) or os.environ.get("INTERP_FIGURES_MODEL")
    run_figures(args.out, quick=args.quick, force=args.force, tasks_dir=args.tasks_dir, model=model)
    return 0
