"""Sweeps: content-addressed, resumable cells in one store (tiny random model, in-process and one Ray worker)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from interp.sweep import Store, SweepConfig, SweepConfigError, read_results, run_sweep

BUILTIN = Path(__file__).resolve().parents[1] / "interp" / "tasks" / "builtin"
SMALL = {  # method options small enough for a tiny model in seconds
    "ltv": {"n_mean": 6, "n_train": 6, "n_valid": 6, "steps": 4, "eval_every": 2, "batch_size": 4},
    "fv": {"n_mean": 6, "n_cie": 3, "n_valid": 6, "top_k": 3},
    "tv": {"n_source": 6, "n_valid": 6},
    "ltv_multi": {"n_mean": 6, "n_train": 4, "n_valid": 4, "steps": 4, "eval_every": 2, "batch_size": 4},
}


def small_config(out, tasks_dir, **kw) -> SweepConfig:
    base = dict(model="tiny-gpt2", tasks=("antonym", "capitalize"), tasks_dir=str(tasks_dir),
                methods=("none", "icl", "ltv", "random"), settings=("zero-shot", "shuffled"), seeds=(0,),
                n=6, shots=3, workers=0, out=str(out), **SMALL)  # fmt: skip
    return SweepConfig.from_dict({**base, **kw})


@pytest.fixture()
def tasks_dir(tmp_path):
    d = tmp_path / "tasks"
    d.mkdir()
    for name in ("antonym", "capitalize"):
        shutil.copy(BUILTIN / f"{name}.json", d / f"{name}.json")
    return d


def cell_files(out) -> dict[str, float]:
    return {f.name: f.stat().st_mtime_ns for f in (Path(out) / "cells").glob("*.json")}


def test_rerun_computes_nothing_and_store_is_tidy(tmp_path, tasks_dir):
    cfg = small_config(tmp_path / "s", tasks_dir)
    first = run_sweep(cfg, progress=False)
    # per task: none, ltv, random in 2 settings + one clean-ICL cell = 7; two tasks
    assert first == {**first, "cells": 14, "computed": 14, "reused": 0, "failed": 0}
    before = cell_files(cfg.out)
    second = run_sweep(cfg, progress=False)
    assert (second["computed"], second["reused"], second["failed"]) == (0, 14, 0)
    assert cell_files(cfg.out) == before  # nothing rewritten
    df = pd.read_parquet(Path(cfg.out) / "results.parquet")
    assert df.key.nunique() == 14 and set(df.metric) == {"accuracy", "target_prob", "accuracy_filtered"}
    acc = df[df.metric == "accuracy"]
    assert len(acc) == 14 and acc.value.between(0, 1).all() and (acc.ci_low <= acc.value).all()
    assert (acc.n == 6).all() and set(acc.setting) == {"icl", "zero-shot", "shuffled"}
    # one fitted LTV per task, shared by its cells and by the random-θ control
    arts = sorted(p.name.split("-s0-")[0] for p in (Path(cfg.out) / "artifacts").iterdir())
    assert arts == ["ltv-antonym", "ltv-capitalize"]
    assert read_results(cfg.out).equals(df)


def test_interrupted_sweep_resumes_only_missing_cells(tmp_path, tasks_dir):
    cfg = small_config(tmp_path / "s", tasks_dir)
    seen = []

    def stop_after_five(record):
        seen.append(record["key"])
        if len(seen) == 5:
            raise KeyboardInterrupt  # as if the sweep were killed here

    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, progress=False, on_cell=stop_after_five)
    kept = cell_files(cfg.out)
    assert len(kept) == 5
    resumed = run_sweep(cfg, progress=False)
    assert (resumed["computed"], resumed["reused"], resumed["failed"]) == (9, 5, 0)
    after = cell_files(cfg.out)
    assert all(after[name] == mtime for name, mtime in kept.items())  # the 5 finished cells were not redone
    assert run_sweep(cfg, progress=False)["computed"] == 0


def test_killed_process_leaves_no_partial_cell(tmp_path, tasks_dir):
    """A temp file left by a kill mid-write is ignored; a truncated cell file counts as missing."""
    cfg = small_config(tmp_path / "s", tasks_dir, methods=("none",), settings=("zero-shot",))
    run_sweep(cfg, progress=False)
    cells = sorted((Path(cfg.out) / "cells").glob("*.json"))
    cells[0].write_text('{"key": "trunc')  # a half-written file (what a non-atomic write would leave)
    (Path(cfg.out) / "cells" / ".x.json.123.tmp").write_text("{")
    again = run_sweep(cfg, progress=False)
    assert (again["computed"], again["reused"]) == (1, 1)
    assert json.loads(cells[0].read_text())["status"] == "ok"


def test_malformed_task_fails_its_cells_and_is_retried(tmp_path, tasks_dir):
    (tasks_dir / "broken.json").write_text('[{"input": "a", "output": "b"}, {oops')
    cfg = small_config(tmp_path / "s", tasks_dir, tasks=("antonym", "broken"), methods=("none", "icl", "ltv-multi"))
    out = run_sweep(cfg, progress=False)
    # per task: none x 2 settings + icl = 3 cells, + the multi-task LTV's 2 per task
    assert (out["cells"], out["failed"], out["computed"]) == (10, 5, 5)
    failures = Store(cfg.out).failures()
    assert {f["task"] for f in failures} == {"broken"} and all("not valid JSON" in f["error"] for f in failures)
    meta = json.loads((Path(cfg.out) / "sweep.json").read_text())
    assert len(meta["failures"]) == 5
    # the multi-task LTV was trained on the loadable task and scored there
    ok = read_results(cfg.out)
    assert set(ok[ok.method == "ltv-multi"].task) == {"antonym"}
    # rerun: the failed cells are retried (and fail again), finished ones are reused
    again = run_sweep(cfg, progress=False)
    assert (again["computed"], again["reused"], again["failed"]) == (0, 5, 5)


def test_unscorable_task_fails_alone_and_the_multi_task_ltv_trains_on_the_rest(tmp_path, tasks_dir):
    """A task none of whose targets this tokenizer can score (SmolLM2 splits word_length's " 5" into " " "5")
    fails its own cells with the prompt error; the multi-task LTV is fitted on the other tasks, not lost."""
    pairs = [{"input": f"w{i}", "output": "\u2603"} for i in range(40)]  # " ☃" starts with a bare-space token here
    (tasks_dir / "snowman.json").write_text(json.dumps(pairs))
    cfg = small_config(tmp_path / "s", tasks_dir, tasks=("antonym", "snowman"), methods=("none", "ltv-multi"),
                       settings=("zero-shot",))  # fmt: skip
    out = run_sweep(cfg, progress=False)
    assert (out["cells"], out["failed"]) == (4, 2)
    failures = Store(cfg.out).failures()
    assert {f["task"] for f in failures} == {"snowman"}
    assert all("bare space" in f["error"] for f in failures)
    ok = read_results(cfg.out)
    assert set(ok[ok.method == "ltv-multi"].task) == {"antonym"}


def test_a_bfloat16_sweep_does_not_reuse_float32_cells(tmp_path, tasks_dir, monkeypatch):
    """The model fingerprint ignores dtype (vectors move between dtypes); the cell key must not."""
    cfg = small_config(tmp_path / "s", tasks_dir, methods=("none",), settings=("zero-shot",))
    assert run_sweep(cfg, progress=False)["computed"] == 2
    monkeypatch.setenv("INTERP_DTYPE", "bfloat16")
    again = run_sweep(cfg, progress=False)
    assert (again["computed"], again["reused"]) == (2, 0)
    records = [json.loads(p.read_text()) for p in (Path(cfg.out) / "cells").glob("*.json")]
    assert sorted(r["dtype"] for r in records) == ["bfloat16", "bfloat16", "float32", "float32"]
    monkeypatch.delenv("INTERP_DTYPE")
    assert run_sweep(cfg, progress=False)["computed"] == 0  # float32 keys unchanged (the bare fingerprint)


def test_multi_task_group_shares_one_cache_bound_and_frees_each_task(tmp_path, tasks_dir, monkeypatch):
    """40 tasks each caching up to the full bound ran a 24 GB machine out of memory: the multi-task group splits
    one bound between its tasks and empties a task's cache once its cells are scored."""
    from interp.sweep import cells as cells_mod

    made = []
    real = cells_mod._problem

    def recording(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(cells_mod, "_problem", recording)
    monkeypatch.setenv("INTERP_CACHE_BYTES", str(10_000_000))
    cfg = small_config(tmp_path / "s", tasks_dir, methods=("ltv-multi",))
    out = run_sweep(cfg, progress=False)
    assert (out["computed"], out["failed"]) == (4, 0)
    assert [p.cache.max_bytes for p in made] == [5_000_000, 5_000_000]
    assert all(len(p.cache) == 0 for p in made)


def test_keys_follow_content_not_execution(tmp_path, tasks_dir):
    cfg = small_config(tmp_path / "s", tasks_dir, methods=("none", "icl"))
    assert run_sweep(cfg, progress=False)["computed"] == 6
    # a different output-independent execution detail (threads) reuses everything
    assert run_sweep(small_config(tmp_path / "s", tasks_dir, methods=("none", "icl"), threads=1), progress=False)["computed"] == 0
    # editing one task file's content recomputes that task's cells only
    data = json.loads((tasks_dir / "capitalize.json").read_text())
    (tasks_dir / "capitalize.json").write_text(json.dumps(data[:-1]))
    again = run_sweep(cfg, progress=False)
    assert (again["computed"], again["reused"]) == (3, 3)
    # a new seed adds cells, a changed method option only that method's cells
    assert run_sweep(small_config(tmp_path / "s", tasks_dir, methods=("none", "icl"), seeds=(0, 1)), progress=False)["computed"] == 6


def test_multi_task_options_key_only_the_multi_task_cells(tmp_path, tasks_dir):
    from interp.sweep.keys import plan, resolve_tasks

    def keys(**kw):
        cfg = small_config(tmp_path / "s", tasks_dir, methods=("none", "ltv", "random", "ltv-multi"), **kw)
        return {(c.task, c.method, c.setting): c.key for g in plan(cfg, "fp", resolve_tasks(cfg)) for c in g.cells}

    base = keys()
    multi = keys(ltv_multi={**SMALL["ltv_multi"], "n_train": 2})
    single = keys(ltv={**SMALL["ltv"], "steps": 5})
    changed = lambda other: {k[1] for k in base if base[k] != other[k]}  # noqa: E731
    assert changed(multi) == {"ltv-multi"} and changed(single) == {"ltv", "random"}
    # and the multi-task fit trains with those options (per-task pools of 2 prompts per corruption)
    cfg = small_config(tmp_path / "m", tasks_dir, methods=("ltv-multi",), ltv_multi={**SMALL["ltv_multi"], "n_train": 2})
    assert run_sweep(cfg, progress=False)["failed"] == 0
    (art,) = (Path(cfg.out) / "artifacts").iterdir()
    assert json.loads((art / "meta.json").read_text())["config"]["n_train"] == 2


def test_seeds_change_demos_not_test_queries(tiny_gpt2):
    from interp.sweep.cells import SweepProblem
    from interp.tasks import load_task

    task = load_task("builtin:antonym")
    a, b = (SweepProblem(tiny_gpt2, task, shots=3, seed=s) for s in (0, 1))
    qa, qb = a.batch("icl", "test", 8), b.batch("icl", "test", 8)
    assert [q.input for q in qa.queries] == [q.input for q in qb.queries]
    assert qa.texts != qb.texts  # other demonstrations
    assert a.batch("icl", "train", 8).texts != b.batch("icl", "train", 8).texts


def test_config_toml_and_flags(tmp_path):
    from interp.cli import build_parser
    from interp.cli.sweep import config_from_args

    toml = tmp_path / "sweep.toml"
    toml.write_text('tasks = ["antonym"]\nseeds = [0, 1]\nn = 7\n[ltv]\nsteps = 11\n')
    args = build_parser().parse_args(["sweep", "--config", str(toml), "--n", "9", "--set", "fv.top_k=4",
                                      "--set", "ltv_multi.n_train=5"])  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.ltv_multi.n_train == 5 and cfg.ltv.n_train != 5
    assert cfg.tasks == ("antonym",) and cfg.seeds == (0, 1) and cfg.n == 9
    assert cfg.ltv.steps == 11 and cfg.ltv.n_train == SweepConfig().ltv.n_train and cfg.fv.top_k == 4
    with pytest.raises(SweepConfigError, match="unknown sweep option"):
        SweepConfig.from_dict({"taks": ["x"]})
    with pytest.raises(SweepConfigError, match="unknown method"):
        SweepConfig(methods="none,lvt").validate()


def test_cli_json_and_errors(tmp_path, tasks_dir, capsys):
    from interp.cli import main

    args = ["sweep", "--model", "tiny-gpt2", "--tasks", "antonym", "--tasks-dir", str(tasks_dir), "--methods", "none",
            "--settings", "zero-shot", "--n", "5", "--shots", "3", "--workers", "0", "--out", str(tmp_path / "s"), "--json"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    summary = json.loads(out)  # exactly one JSON document
    assert set(summary) == {"cells", "computed", "reused", "failed", "wall_s", "out"} and summary["computed"] == 1
    assert main(args + ["--tasks", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'nosuch'" in err and len(err.strip().splitlines()) == 1
    assert main(["report", "--sweep", str(tmp_path / "s"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["cells"] == 1 and (tmp_path / "s" / "report.md").exists()
    assert main(["comparison", "--sweep", str(tmp_path / "s"), "--out", str(tmp_path / "t.md")]) == 0
    assert "| none | 0." in (tmp_path / "t.md").read_text()
    assert main(["comparison", "--sweep", str(tmp_path / "absent")]) == 2


def test_one_ray_worker(tmp_path, tasks_dir):
    pytest.importorskip("ray")
    cfg = small_config(tmp_path / "s", tasks_dir, methods=("none", "icl"), workers=1)
    out = run_sweep(cfg, progress=False)
    assert (out["computed"], out["failed"]) == (6, 0)
    meta = json.loads((Path(cfg.out) / "sweep.json").read_text())
    assert meta["model"]["pid"] > 0 and "ray_init_s" in meta["timings_s"]
    # the in-process mode finds the Ray worker's cells
    assert run_sweep(SweepConfig.from_dict({**cfg.to_dict(), "workers": 0}), progress=False)["computed"] == 0


def test_sigkilled_sweep_resumes_only_missing_cells(tmp_path, tasks_dir):
    """A real kill (SIGKILL of the sweep process midway), then the same command: only missing cells run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "interp.cli", "sweep", "--model", "tiny-gpt2", "--tasks", "antonym,capitalize",
           "--tasks-dir", str(tasks_dir), "--methods", "none,icl,ltv", "--n", "6", "--shots", "3", "--workers", "0",
           "--out", str(out), "--json", "--quiet"] + [f"--set=ltv.{k}={v}" for k, v in SMALL["ltv"].items()]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(cell_files(out)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = cell_files(out)
    assert 2 <= len(kept) < 10, "the sweep should have been killed midway"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    summary = json.loads(done.stdout)
    assert (summary["cells"], summary["reused"], summary["computed"]) == (10, len(kept), 10 - len(kept))
    assert all(cell_files(out)[n] == m for n, m in kept.items())


def _tidy(rows):
    """A tidy store table from (task, method, setting, seed, accuracy) tuples (one accuracy row per cell)."""
    return pd.DataFrame([
        {"key": f"{t}-{m}-{s}-{seed}", "task": t, "method": m, "setting": s, "seed": seed, "metric": "accuracy",
         "value": v, "ci_low": max(0.0, v - 0.1), "ci_high": min(1.0, v + 0.1), "n": 100}
        for t, m, s, seed, v in rows
    ])  # fmt: skip


def test_headline_means_and_seed_spread_by_hand():
    from interp.sweep.report import headline_frame

    rows = []
    # task a: 3 seeds, strong ICL; task b: 1 seed, weak ICL (0.1)
    for seed, (icl, ltv) in enumerate([(0.9, 0.6), (0.8, 0.8), (0.7, 1.0)]):
        rows += [("a", "icl", "icl", seed, icl), ("a", "ltv", "zero-shot", seed, ltv)]
    rows += [("b", "icl", "icl", 0, 0.1), ("b", "ltv", "zero-shot", 0, 0.4)]
    rows += [("c", "icl", "icl", 0, 0.0)]  # a task still in progress (no LTV yet): left out of every mean
    # a task with two of the three seeds so far: in the means over tasks, not in the spread over seeds
    rows += [("e", "icl", "icl", 0, 0.9), ("e", "icl", "icl", 1, 0.9), ("e", "ltv", "zero-shot", 0, 0.0),
             ("e", "ltv", "zero-shot", 1, 0.0)]  # fmt: skip
    head = headline_frame(_tidy(rows)).set_index(["setting", "method"])
    ltv = head.loc[("zero-shot", "LTV")]
    # over tasks: a's seed mean 0.8, b's 0.4, e's 0.0 -> 0.4; strong-ICL tasks: a (mean ICL 0.8) and e (0.9)
    assert ltv.mean_all == pytest.approx(0.4) and ltv.tasks == 3
    assert ltv.mean_strong_icl == pytest.approx(0.4) and ltv.tasks_strong_icl == 2
    # seeded tasks (a only): per-seed means 0.6, 0.8, 1.0 -> 0.8 ± 0.2
    assert (ltv.seeded_tasks, ltv.seeds) == (1, 3)
    assert ltv.seed_mean == pytest.approx(0.8) and ltv.seed_std == pytest.approx(0.2)
    # the seeds shared by the most tasks: 0 and 1, on a and e -> per-seed means 0.3 and 0.4
    assert (ltv.wide_seed_list, ltv.wide_seeded_tasks) == ("0,1", 2)
    assert ltv.wide_seed_mean == pytest.approx(0.35) and ltv.wide_seed_std == pytest.approx(0.1 / 2**0.5)
    assert head.loc[("zero-shot", "ICL (clean)")].mean_all == pytest.approx((0.8 + 0.1 + 0.9) / 3)


def test_many_tasks_report_as_rows_and_mark_weak_icl():
    from interp.plot.table import plot_comparison_table
    from interp.sweep.report import summary_frame, to_markdown

    rows = []
    for i in range(14):
        icl = 0.05 if i == 13 else 0.9 - 0.05 * i
        rows += [(f"t{i:02d}", "icl", "icl", 0, icl), (f"t{i:02d}", "none", "zero-shot", 0, 0.01 * i)]
    summary = summary_frame(_tidy(rows))
    md = to_markdown(summary)
    assert "| task | none | ICL (clean) |" in md
    assert "| t13 † |" in md and "| t00 |" in md and "1 of 14 tasks" in md
    body = [line for line in md.splitlines() if line.startswith("| t") and not line.startswith("| task")]
    assert body[0].startswith("| t00 ") and body[-1].startswith("| t13 †")  # sorted by clean ICL, weak kept
    assert "| **mean over tasks** | **0.065** |" in md  # mean of 0.00 .. 0.13
    fig, _ = plot_comparison_table(summary)
    assert list(fig.data[0].y)[-2:] == ["t13 †", "<b>mean over tasks</b>"]


def test_gpus_per_worker_packs_workers_on_a_gpu():
    """One 135M model per H200 leaves it idle: a fraction lets Ray place several workers on one GPU."""
    from interp.cli import build_parser
    from interp.cli.sweep import config_from_args
    from interp.sweep.runner import actor_options

    args = build_parser().parse_args(["sweep", "--tasks", "antonym", "--workers", "8", "--gpus-per-worker", "0.125"])
    cfg = config_from_args(args).validate()
    assert actor_options(cfg, "cuda")["num_gpus"] == 0.125
    assert "num_gpus" not in actor_options(cfg, "cpu")
    assert actor_options(SweepConfig(tasks="a"), "cuda:0")["num_gpus"] == 1
    for bad in (0, -1, 1.5):
        with pytest.raises(SweepConfigError, match="gpus_per_worker"):
            SweepConfig(tasks="a", gpus_per_worker=bad).validate()


def test_steering_in_the_sweep_keeps_the_best_learning_rate_on_valid(tmp_path, tasks_dir):
    """`steer` cells: one fit per learning rate of the grid, the kept one has the lowest validation loss
    (chosen on valid, never on test), and the grid is part of the cell's key."""
    from interp.cli import main

    args = ["sweep", "--model", "tiny-gpt2", "--tasks", "antonym", "--tasks-dir", str(tasks_dir), "--methods", "steer",
            "--settings", "zero-shot", "--seeds", "0", "--n", "6", "--workers", "0", "--quiet", "--json",
            "--steer-lr-grid", "0.001,0.3", "--out", str(tmp_path / "s")]  # fmt: skip
    for opt in ("steps=6", "eval_every=2", "n_train=8", "n_valid=4", "batch_size=4"):
        args += ["--set", f"steer.{opt}"]
    assert main(args) == 0
    (cell,) = [json.loads(p.read_text()) for p in (tmp_path / "s" / "cells").glob("*.json")]
    grid = cell["fit"]["lr_grid"]
    assert cell["status"] == "ok" and set(grid) == {"0.001", "0.3"}
    assert cell["fit"]["lr"] == float(min(grid, key=lambda lr: grid[lr]["best_valid_loss"]))
    assert main(args[:-2] + ["--steer-lr-grid", "0.001", "--out", str(tmp_path / "s")]) == 0  # another grid: a new cell
    assert len(list((tmp_path / "s" / "cells").glob("*.json"))) == 2
