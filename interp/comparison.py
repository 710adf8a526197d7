"""The text comparison: every method on the same prompts and splits, with 95% CIs.

For each task: test-split top-1 first-token accuracy in the zero-shot and shuffled-label settings for

    no intervention | clean k-shot ICL (the ceiling) | random-θ control | FV | TV | LTV | LTV (multi-task)

All methods share one `TextProblem` per task, so every prompt's prefix is computed once and each method
costs one-token runs (`interp.engine`). Queries are the same items in the same order in every setting,
so Todd et al.'s filter (items clean ICL answers right) is reported alongside plain accuracy.

    python -m interp.comparison --tasks-dir ../shared/icl_tasks --out results/text_comparison

writes ``.json`` (every cell with its CI and settings) and ``.md`` (the table).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from interp.engine import final_logits
from interp.evaluation import EvalResult, wilson_interval
from interp.problems import TextProblem, run_prefix
from interp.tasks import load_task
from interp.vectors.base import describe_model
from interp.vectors import FVConfig, LTVConfig, TVConfig, fit_fv, fit_ltv, fit_tv

DEFAULT_TASKS = (
    "capitalize", "present-past", "singular-plural", "country-capital", "antonym", "english-french",
    "person-sport", "lowercase_first_letter", "choose_first_of_3", "adjective_v_verb_3",
)  # fmt: skip
SETTINGS = ("zero-shot", "shuffled")
ROWS = ("none", "ICL (clean)", "random-θ", "FV", "TV", "LTV", "LTV (multi-task)")


@dataclass
class ComparisonConfig:
    model: str = "smollm2-135m"
    tasks: tuple[str, ...] = DEFAULT_TASKS
    tasks_dir: str | None = None
    shots: int = 10
    n_test: int = 100
    seed: int = 0
    # pools a little smaller than the library defaults: 10 tasks x 7 methods must fit in ~1 h on 2 CPU cores
    ltv: LTVConfig = field(default_factory=lambda: LTVConfig(n_mean=32, n_train=48, n_valid=24))
    fv: FVConfig = field(default_factory=lambda: FVConfig(n_mean=32, n_cie=16, n_valid=24))
    tv: TVConfig = field(default_factory=lambda: TVConfig(n_source=24, n_valid=24))
    multitask: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def _cell(result: EvalResult, clean_correct: list[bool] | None) -> dict:
    d = result.to_dict()
    d.pop("meta", None)
    if clean_correct is not None and len(clean_correct) == result.n:
        kept = [c for c, ok in zip(result.correct, clean_correct) if ok]
        low, high = wilson_interval(sum(kept), len(kept))
        d["filtered"] = {"accuracy": sum(kept) / len(kept) if kept else float("nan"), "n": len(kept), "ci_low": low, "ci_high": high}
    return d


def run_comparison(cfg: ComparisonConfig, model=None, progress: bool = True) -> dict:
    from interp.models import load_model

    model = model or load_model(cfg.model)
    t_start = time.perf_counter()
    problems, cells, vectors_meta, timings, clean_by_task = {}, [], {}, {}, {}
    for name in tqdm(cfg.tasks, desc="tasks", disable=not progress):
        t0 = time.perf_counter()
        problem = TextProblem(model, load_task(name, cfg.tasks_dir, seed=cfg.seed), shots=cfg.shots, seed=cfg.seed)
        problems[name] = problem
        batch, out = _outputs(problem, "icl", cfg.n_test, full=True)
        clean = problem.result(out, batch, method="ICL (clean)")
        clean_correct = clean_by_task[name] = clean.correct
        cells.append(_cell(clean, None) | {"row": "ICL (clean)"})
        ltv = fit_ltv(problem, cfg.ltv, progress=False)
        n_heads = model.cfg.n_layers * model.cfg.n_heads
        fv = fit_fv(problem, replace(cfg.fv, top_k=min(cfg.fv.top_k, n_heads)), progress=False)
        tv = fit_tv(problem, cfg.tv, progress=False)
        methods = {"random-θ": ltv.random_control(cfg.seed), "FV": fv, "TV": tv, "LTV": ltv}
        for setting in SETTINGS:
            batch, out = _outputs(problem, setting, cfg.n_test)
            cells.append(_cell(problem.result(out, batch, "none"), clean_correct) | {"row": "none"})
            for label, vec in methods.items():
                cells.append(_cell(vec.evaluate(problem, setting, n=cfg.n_test), clean_correct) | {"row": label})
        vectors_meta[name] = {
            "ltv": {k: ltv.meta["training"][k] for k in ("steps_run", "best_step", "stopped", "wall_s")},
            "fv": {"layer": fv.layer, "top_heads": fv.top_heads(), "layer_sweep": fv.meta["layer_sweep"]},
            "tv": {"layer": tv.layer, "layer_sweep": tv.meta["layer_sweep"]},
            "task": problem.task.describe(),
        }
        for setting in SETTINGS:  # free the test prefixes; train/valid pools stay for the multi-task LTV
            problem._prefixes.pop((setting, "test", cfg.n_test, 0), None)
        timings[name] = round(time.perf_counter() - t0, 1)

    if cfg.multitask and len(problems) > 1:
        t0 = time.perf_counter()
        multi = fit_ltv(list(problems.values()), cfg.ltv, progress=progress)
        timings["multitask_ltv_fit"] = round(time.perf_counter() - t0, 1)
        for name, problem in problems.items():
            clean_correct = clean_by_task[name]
            vec = multi.for_task(name)
            for setting in SETTINGS:
                cells.append(_cell(vec.evaluate(problem, setting, n=cfg.n_test), clean_correct) | {"row": "LTV (multi-task)"})
        vectors_meta["multitask"] = {k: multi.meta["training"][k] for k in ("steps_run", "best_step", "stopped", "wall_s")}
    return {
        "config": cfg.to_dict(),
        "model": describe_model(model),
        "cells": cells,
        "vectors": vectors_meta,
        "timings_s": timings,
        "total_wall_s": round(time.perf_counter() - t_start, 1),
        "threads": torch.get_num_threads(),
    }


def _outputs(problem: TextProblem, setting: str, n: int, full: bool = False):
    """Outputs with no intervention (full forward for the clean ICL ceiling: no prefix is reused there)."""
    if full:
        batch = problem.batch(setting, "test", n)
        with torch.no_grad():
            logits = torch.cat([final_logits(problem.model, c.tokens, c.attention_mask) for c in batch.chunks(16)])
        return batch, logits
    batch, prefix = problem.prefix(setting, "test", n)
    return batch, run_prefix(prefix, lambda idx: [])


def to_markdown(report: dict) -> str:
    """Rows = methods, columns = tasks x settings; each cell 'acc [lo, hi]'."""
    cells = report["cells"]
    tasks = list(dict.fromkeys(c["task"] for c in cells))
    lines = []
    for setting in SETTINGS:
        lines.append(f"\n**{setting}** (test split, top-1 first-token accuracy, 95% Wilson CI; n per task in the header)\n")
        ns = {t: next((c["n"] for c in cells if c["task"] == t and c["setting"] == setting), "?") for t in tasks}
        lines.append("| method | " + " | ".join(f"{t} (n={ns[t]})" for t in tasks) + " | mean |")
        lines.append("|---" * (len(tasks) + 2) + "|")
        for row in ROWS:
            vals, accs = [], []
            for t in tasks:
                match = [c for c in cells if c["task"] == t and c["row"] == row and (c["setting"] == setting or row == "ICL (clean)")]
                if match:
                    c = match[0]
                    accs.append(c["accuracy"])
                    vals.append(f"{c['accuracy']:.2f} [{c['ci_low']:.2f}, {c['ci_high']:.2f}]")
                else:
                    vals.append("–")
            mean = f"{sum(accs) / len(accs):.3f}" if accs else "–"
            lines.append(f"| {row} | " + " | ".join(vals) + f" | {mean} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--tasks", nargs="*", default=list(DEFAULT_TASKS))
    p.add_argument("--tasks-dir", default=None)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--shots", type=int, default=10)
    p.add_argument("--no-multitask", action="store_true")
    p.add_argument("--out", default="results/text_comparison")
    p.add_argument("--merge", nargs="+", default=None, help="merge the JSON reports of runs over disjoint task sets")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.merge:
        report = merge_reports([json.loads(Path(f).read_text()) for f in args.merge])
        write_report(report, Path(args.out))
        return 0
    cfg = ComparisonConfig(
        model=args.model, tasks=tuple(args.tasks), tasks_dir=args.tasks_dir, n_test=args.n_test,
        shots=args.shots, multitask=not args.no_multitask,
    )  # fmt: skip
    write_report(run_comparison(cfg), Path(args.out))
    return 0


def write_report(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    cfg = report["config"]
    md = to_markdown(report)
    notes = "\n".join(f"- {n}" for n in report.get("notes", []))
    out.with_suffix(".md").write_text(f"# Text comparison ({cfg['model']}, {cfg['shots']}-shot)\n{notes}\n{md}")
    print(md)
    print(f"total wall time {report['total_wall_s']} s; per task {report['timings_s']}")


def merge_reports(reports: list[dict]) -> dict:
    """Reports of runs over disjoint task sets (e.g. two processes, one per CPU core) as one."""
    merged = {
        "config": {**reports[0]["config"], "tasks": [t for r in reports for t in r["config"]["tasks"]]},
        "model": reports[0]["model"],
        "cells": [c for r in reports for c in r["cells"]],
        "vectors": {},
        "timings_s": {},
        "total_wall_s": max(r["total_wall_s"] for r in reports),
        "threads": reports[0]["threads"],
        "notes": [
            f"computed as {len(reports)} processes in parallel over disjoint task sets "
            f"({'; '.join(', '.join(r['config']['tasks']) for r in reports)}); each process's multi-task LTV "
            "was trained on the mix of its own tasks",
        ],
    }
    for i, r in enumerate(reports):
        for k, v in r["vectors"].items():
            merged["vectors"][k if k != "multitask" else f"multitask_{i}"] = v
        for k, v in r["timings_s"].items():
            merged["timings_s"][k if k != "multitask_ltv_fit" else f"multitask_ltv_fit_{i}"] = v
    merged["cpu_s_sum"] = round(sum(r["total_wall_s"] for r in reports), 1)
    return merged


if __name__ == "__main__":
    raise SystemExit(main())
