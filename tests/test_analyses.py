"""The analyses (figures + tidy data) and the main job `interp figures`, on tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from interp.plot.style import PlotError, head_frame, png_available, top_heads
from interp.stats import spearman
from interp.store import Store


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def fitted(tiny_gpt2):
    """A tiny-gpt2 problem with small LTV / FV / TV fits and a two-task multi-task LTV."""
    from interp.problems import TextProblem
    from interp.tasks import load_task
    from interp.vectors import FVConfig, LTVConfig, TVConfig, fit_fv, fit_ltv, fit_tv

    problem = TextProblem(tiny_gpt2, load_task("builtin:antonym"), shots=3)
    other = TextProblem(tiny_gpt2, load_task("builtin:capitalize"), shots=3)
    # θ starts non-zero: with 6 steps the valid loss may never improve on a random model, and a zero θ
    # would make the LTV's head scores and vector degenerate (NaN correlations, zero cosines).
    ltv_cfg = LTVConfig(steps=6, n_train=8, n_valid=4, n_mean=6, batch_size=4, eval_every=3, init="normal",
                        init_std=0.1)  # fmt: skip
    ltv = fit_ltv(problem, ltv_cfg, progress=False)
    fv = fit_fv(problem, FVConfig(top_k=3, n_mean=6, n_cie=3, n_valid=4), progress=False)
    tv = fit_tv(problem, TVConfig(n_source=4, n_valid=4), progress=False)
    multi = fit_ltv([problem, other], ltv_cfg, progress=False)
    return {
        "problem": problem,
        "other": other,
        "ltv": ltv,
        "fv": fv,
        "tv": tv,
        "multi": multi,
        "ltv_cfg": ltv_cfg,
    }


def _axis_titles(fig) -> list[str]:
    layout = fig.to_dict()["layout"]
    return [v.get("title", {}).get("text") for k, v in layout.items() if k.startswith(("xaxis", "yaxis"))]


def _fake_regression(tmp: Path) -> Path:
    """Two result files in the schema of the length experiment (one with lo/hi keys, one with a shift)."""
    root = tmp / "regression"
    root.mkdir(parents=True, exist_ok=True)
    k = list(range(1, 9))
    curve = lambda scale: {
        "mean": [scale / i for i in k],
        "low": [0.8 * scale / i for i in k],
        "high": [1.2 * scale / i for i in k],
    }
    rec = {"function_class": "linear", "shift": None, "trained_length": 4, "n_dims": 2, "k": k,
           "curves": {"model": curve(1.0), "model+LTV": curve(0.5), "model+FV": curve(0.9),
                      "model+random-θ": curve(1.1), "least_squares": curve(0.1)}}  # fmt: skip
    (root / "linear.json").write_text(json.dumps(rec))
    skewed = dict(
        rec,
        shift="skewed",
        curves={"model": {"mean": curve(2)["mean"], "lo": curve(2)["low"], "hi": curve(2)["high"]}},
    )
    (root / "linear_skewed.json").write_text(json.dumps(skewed))
    return root


# ----------------------------------------------------------------------------------------------- common
def test_head_frame_and_helpers():
    df = head_frame({"a": torch.arange(6.0).view(2, 3)}, task="t")
    assert list(df.columns) == ["task", "layer", "head", "head_label", "a"]
    assert df.head_label.tolist() == ["L0H0", "L0H1", "L0H2", "L1H0", "L1H1", "L1H2"]
    assert top_heads(torch.tensor([[0.0, -5.0], [2.0, 1.0]]), 2) == [(1, 0), (1, 1)]
    assert top_heads(torch.tensor([[0.0, -5.0], [2.0, 1.0]]), 1, by_abs=True) == [(0, 1)]
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    with pytest.raises(PlotError, match="2-D"):
        head_frame({"a": torch.zeros(3)})


def test_store_counts_force_and_truncated_cells(tmp_path):
    calls = []
    cache = Store(tmp_path)
    key = {"stage": "x", "n": 1}
    compute = lambda folder: calls.append(folder) or {"value": np.float64(1.5), "t": torch.tensor([1, 2])}
    assert cache.get_or_compute(key, compute) == {"value": 1.5, "t": [1, 2]}
    assert cache.get_or_compute(key, compute) == {"value": 1.5, "t": [1, 2]}
    path = cache.path(cache.key(key))
    assert (cache.computed, cache.reused, len(calls)) == (1, 1, 1) and path.exists()
    Store(tmp_path, force=True).get_or_compute(key, compute)
    assert len(calls) == 2
    path.write_text("{truncated")  # an interrupted write is recomputed, not an error
    assert cache.get_or_compute(key, compute)["value"] == 1.5 and len(calls) == 3
    read_only = Store(tmp_path / "empty", read_only=True)
    with pytest.raises(LookupError, match="has not been computed"):
        read_only.get_or_compute(key, compute)
    # where a cell ran is written beside its result, is asked for only when computing, and never keys it
    asked = []
    cache.provenance = lambda: asked.append(1) or {"device": "cpu", "dtype": "torch.float32"}
    cache.get_or_compute(key, compute)
    assert asked == [] and "provenance" not in json.loads(path.read_text())
    cache.get_or_compute({"stage": "x", "n": 2}, compute)
    record = json.loads(cache.path(cache.key({"stage": "x", "n": 2})).read_text())
    assert asked == [1] and record["provenance"] == {"device": "cpu", "dtype": "torch.float32"}


# ----------------------------------------------------------------------------------------------- 1. head weights
def test_head_weights_figure_and_data(fitted):
    from interp.plot.heads import plot_head_weights, plot_multitask_head_weights

    ltv, fv = fitted["ltv"], fitted["fv"]
    n_layers, n_heads = ltv.theta.shape
    fig, df = plot_head_weights(ltv, fv, top_k=3)
    assert isinstance(fig, go.Figure) and len(df) == n_layers * n_heads
    assert {"layer", "head", "head_label", "theta", "ltv_score", "fv_cie", "ltv_rank", "cie_rank"} <= set(
        df.columns
    )
    assert np.allclose(df.theta.to_numpy().reshape(n_layers, n_heads), ltv.theta.numpy())
    assert np.allclose(df.fv_cie.to_numpy().reshape(n_layers, n_heads), fv.cie.numpy(), atol=1e-9)
    titles = _axis_titles(fig)
    assert titles.count("layer") == 2 and titles.count("head") == 2
    ca = fig.layout.coloraxis
    assert ca.cmid == 0 and ca.cmin == -ca.cmax  # diverging, centred at zero
    table = [t for t in fig.data if isinstance(t, go.Table)][0]
    assert len(table.cells.values[1]) == 3 and all(
        v.startswith("L") and "H" in v for v in table.cells.values[1]
    )
    # the cached path: plotting from the tidy frame gives the same figure data
    fig2, df2 = plot_head_weights(df, top_k=3)
    assert df2.equals(df) and len(fig2.data) == len(fig.data)

    mfig, mdf = plot_multitask_head_weights(fitted["multi"])
    assert len(mdf) == 2 * n_layers * n_heads and set(mdf.task) == {"antonym", "capitalize"}
    assert "layer" in _axis_titles(mfig)


def test_head_weights_bad_input(fitted):
    from interp.plot.heads import plot_head_weights

    with pytest.raises(PlotError, match="LearnedTaskVector"):
        plot_head_weights(fitted["fv"])
    with pytest.raises(PlotError, match="lacks columns"):
        plot_head_weights(pd.DataFrame({"layer": [0]}))
    with pytest.raises(PlotError, match="top_k"):
        plot_head_weights(fitted["ltv"], top_k=0)


# ----------------------------------------------------------------------------------------------- 2. patching
def test_aligned_pairs_share_demos(fitted):
    from analyses.patching import aligned_pairs

    pairs = aligned_pairs(fitted["problem"], 3)
    assert len(pairs) == 3
    for p in pairs:
        clean, corrupt = p.clean_text.split("\n"), p.corrupted_text.split("\n")
        q_clean = [l for l in clean if l.startswith("Q:")]
        assert q_clean == [l for l in corrupt if l.startswith("Q:")]  # same demo inputs and query
        assert [l for l in clean if l.startswith("A:")] != [l for l in corrupt if l.startswith("A:")]
        assert p.query in q_clean[-1]


def test_activation_patching_engine_matches_transformer_lens(tiny_model):
    from analyses.patching import activation_patching_tl, patching_scores
    from interp.problems import TextProblem
    from interp.tasks import load_task

    problem = TextProblem(tiny_model, load_task("builtin:antonym"), shots=3)
    engine = patching_scores(problem, n=2, progress=False)
    reference = activation_patching_tl(problem, n=2)
    scale = reference.abs().max()
    assert scale > 0 and torch.allclose(engine["act_patch"], reference, atol=1e-4 * float(scale))
    attr = engine["attr_patch"]
    assert attr.shape == reference.shape and torch.isfinite(attr).all()
    assert spearman(attr, reference) > 0.3  # a first-order estimate of the same effects


def test_patch_single_head_matches_scores(fitted):
    from analyses.patching import patch_single_head, patching_scores

    scores = patching_scores(fitted["problem"], n=3, attribution=False, progress=False)
    df = patch_single_head(fitted["problem"], 1, 2, n=3)
    assert (
        list(df.columns) == ["query", "p_clean", "p_corrupted", "p_patched", "delta", "recovered"]
        and len(df) == 3
    )
    # float32 noise of two batchings is relative to the largest effect, not to this (possibly tiny) one
    scale = float(scores["act_patch"].abs().max())
    assert df.delta.mean() == pytest.approx(float(scores["act_patch"][1, 2]), rel=1e-4, abs=1e-4 * scale)
    with pytest.raises(PlotError, match="does not exist"):
        patch_single_head(fitted["problem"], 9, 0)


def test_compare_head_scores(fitted):
    from analyses.patching import compare_head_scores, head_score_frame, reading

    n_layers, n_heads = fitted["ltv"].theta.shape
    rng = np.random.default_rng(0)
    act = rng.normal(size=(n_layers, n_heads))
    df = head_score_frame(
        ltv=fitted["ltv"], fv=fitted["fv"], act_patch=act, attr_patch=act + 0.01 * rng.normal(size=act.shape)
    )
    assert len(df) == n_layers * n_heads and {"ltv_score", "fv_cie", "act_patch", "attr_patch"} <= set(
        df.columns
    )
    fig, stats = compare_head_scores(df, top_k=3)
    rho = stats["spearman"]
    assert (
        rho.shape == (4, 4) and np.allclose(rho.values, rho.values.T) and np.allclose(np.diag(rho.values), 1)
    )
    assert rho.loc["act_patch", "attr_patch"] > 0.9 and stats["overlap"].loc["act_patch", "act_patch"] == 3
    assert len(stats["pairs"]) == 6 and all(r["k"] == 3 for r in stats["pairs"])
    titles = _axis_titles(fig)
    assert "activation patching (ΔP)" in titles and "LTV |θ|·‖ā‖" in titles
    assert "Attribution patching is a good" in reading(stats)
    with pytest.raises(PlotError, match="at least two"):
        head_score_frame(ltv=fitted["ltv"])


# ----------------------------------------------------------------------------------------------- 3. layer sweep
def test_layer_sweep(fitted):
    from interp.plot.layers import compute_layer_sweep, plot_layer_sweep

    p = fitted["problem"]
    n_layers = p.model.cfg.n_layers
    df = compute_layer_sweep(p, fitted["fv"], fitted["tv"], fitted["ltv"], ltv_layers=[1],
                             ltv_config=fitted["ltv_cfg"], n=6, progress=False)  # fmt: skip
    sweep = df[df.kind == "sweep"]
    assert len(sweep) == (2 * n_layers + 1) * 2  # FV + TV at every layer, one single-layer LTV; two settings
    assert set(df[df.kind == "reference"].method) == {"LTV (all layers)", "ICL (clean)", "none"}
    assert (df.n == 6).all()
    # the bare-model reference rows from an independent full forward pass on the same test prompts
    for setting in ("zero-shot", "shuffled"):
        batch = p.batch(setting, "test", 6)
        with torch.no_grad():
            _, cache = p.model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask)
            logits = p.model.unembed(p.model.ln_final(cache[f"blocks.{n_layers - 1}.hook_resid_post"][:, -1:]))[:, -1]
        correct = int((logits.argmax(-1) == batch.target_ids).sum())
        row = df[(df.kind == "reference") & (df.method == "none") & (df.setting == setting)].iloc[0]
        assert row.accuracy == correct / 6
        # Wilson interval: published closed form for k successes of 6
        z = 1.96
        centre, half = (correct + z**2 / 2) / (6 + z**2), z * np.sqrt(correct * (6 - correct) / 6 + z**2 / 4) / (6 + z**2)
        assert (row.ci_low, row.ci_high) == pytest.approx((max(0, centre - half), min(1, centre + half)))
    fig, same = plot_layer_sweep(df)
    assert same is df and "injection layer" in _axis_titles(fig)
    assert any("test accuracy" in (t or "") for t in _axis_titles(fig))
    with pytest.raises(PlotError, match="out of range"):
        compute_layer_sweep(p, fitted["fv"], ltv_layers=[99], ltv_config=fitted["ltv_cfg"])
    with pytest.raises(PlotError, match="ltv_config"):
        compute_layer_sweep(p, ltv_layers=[0])


# ----------------------------------------------------------------------------------------------- 4. regression
def test_regression_curves_from_json(tmp_path):
    from interp.plot.regression import load_regression_results, plot_regression_curves

    records = load_regression_results(_fake_regression(tmp_path))
    assert len(records) == 2
    fig, df = plot_regression_curves(records)
    assert list(df.columns) == [
        "function_class",
        "shift",
        "curve",
        "k",
        "mean",
        "low",
        "high",
        "trained_length",
    ]
    assert len(df) == 8 * 5 + 8 and set(df["shift"]) == {"none", "skewed"}
    assert "in-context examples k" in _axis_titles(fig) and "normalised squared error" in _axis_titles(fig)
    assert load_regression_results(tmp_path / "absent") == []
    (tmp_path / "regression" / "bad.json").write_text(
        json.dumps({"k": [1, 2], "curves": {"model": {"mean": [1]}}})
    )
    with pytest.raises(PlotError, match="has 1 points"):
        load_regression_results(tmp_path / "regression")


# ----------------------------------------------------------------------------------------------- 5. comparison
def test_comparison_table():
    from interp.plot.table import comparison_frame, plot_comparison_table
    from interp.sweep.report import to_markdown

    cells = [{"task": t, "setting": "icl", "row": "ICL (clean)", "accuracy": 0.9, "ci_low": 0.8, "ci_high": 0.95, "n": 20}
             for t in ("a", "b")]  # fmt: skip
    cells += [{"task": t, "setting": s, "row": r, "accuracy": 0.5, "ci_low": 0.3, "ci_high": 0.7, "n": 20,
               "filtered": {"accuracy": 0.6, "n": 18}}
              for t in ("a", "b") for s in ("zero-shot", "shuffled") for r in ("none", "FV", "LTV")]  # fmt: skip
    report = {"cells": cells}
    df = comparison_frame(report)
    assert len(df) == 2 * 2 + 12 and {
        "task",
        "setting",
        "method",
        "accuracy",
        "ci_low",
        "ci_high",
        "n",
    } <= set(df.columns)
    fig, _ = plot_comparison_table(report)
    heat = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert (
        len(heat) == 2
        and list(heat[0].x) == ["a", "b", "mean"]
        and list(heat[0].y) == ["none", "ICL (clean)", "FV", "LTV"]
    )
    assert "method" in _axis_titles(fig)
    assert "| method |" in to_markdown(comparison_frame(report))
    with pytest.raises(PlotError, match="no cells"):
        comparison_frame({"cells": []})


# ----------------------------------------------------------------------------------------------- 6. geometry
def test_geometry(fitted):
    from interp.plot.geometry import (
        center_across_tasks,
        method_vectors,
        nearest_centroid_accuracy,
        plot_cosine_similarity,
        plot_pca,
    )  # fmt: skip

    vecs = method_vectors(
        ltv=fitted["ltv"], fv=fitted["fv"], tv=fitted["tv"], multi=fitted["multi"], task="antonym"
    )
    assert set(vecs) == {"LTV", "LTV (multi-task)", "FV", "TV"}
    keyed = {(m, "antonym"): v for m, v in vecs.items()} | {("TV", "other"): vecs["TV"] * 2}
    fig, df = plot_cosine_similarity(center_across_tasks(keyed))
    assert len(df) == 25 and {"method_a", "task_a", "method_b", "task_b", "cosine"} <= set(df.columns)
    assert np.allclose(df[(df.method_a == df.method_b) & (df.task_a == df.task_b)].cosine, 1.0, atol=1e-5)
    assert "method · task" in _axis_titles(fig)
    rng = np.random.default_rng(0)
    groups = {"a": rng.normal(size=(6, 10)), "b": rng.normal(size=(5, 10)) + 20}
    assert nearest_centroid_accuracy(groups) == 1.0
    fig, pca = plot_pca({"panel": groups})
    assert len(pca) == 11 and list(pca.columns) == ["panel", "task", "prompt", "pc1", "pc2"]
    assert any(t and t.startswith("PC1") for t in _axis_titles(fig))
    with pytest.raises(PlotError):
        plot_cosine_similarity({("LTV", "a"): vecs["LTV"]})


def test_fit_tv_per_prompt_from_definition(fitted):
    """The per-prompt TV sources from their definition: ``hook_resid_post`` at the final token of the dummy-query
    demonstration prompts (train split), one full ``run_with_cache`` each; the TV is their mean at its layer."""
    from analyses.main import fit_tv_per_prompt
    from interp.vectors import TVConfig

    problem = fitted["problem"]
    model = problem.model
    tv, per_prompt = fit_tv_per_prompt(problem, TVConfig(n_source=4, n_valid=4))
    batch = problem.batch("dummy", "train", 4)
    assert all(t.rstrip().endswith("A:") for t in batch.texts)
    expected = torch.zeros(4, model.cfg.n_layers, model.cfg.d_model)
    with torch.no_grad():
        for i in range(4):  # one prompt at a time, no padding at all
            tokens = batch.tokens[i : i + 1, batch.attention_mask[i].bool()]
            _, cache = model.run_with_cache(tokens)
            for l in range(model.cfg.n_layers):
                expected[i, l] = cache[f"blocks.{l}.hook_resid_post"][0, -1]
    assert torch.allclose(per_prompt, expected, atol=1e-4)
    assert torch.allclose(tv.hidden, expected.mean(0), atol=1e-4)
    assert 0 <= tv.layer < model.cfg.n_layers


# ----------------------------------------------------------------------------------------------- main job
def test_main_quick_writes_everything_and_caches(tmp_path, tiny_gpt2):
    from analyses.main import run_figures

    out, cache = tmp_path / "figures", tmp_path / "cache"
    kwargs = dict(quick=True, model="tiny-gpt2", cache_dir=cache, progress=False, loaded_model=tiny_gpt2,
                  regression_dir=str(_fake_regression(tmp_path)), comparison_sweep=str(tmp_path / "absent"),
                  science_dir=str(tmp_path / "absent"), claims_path=str(tmp_path / "absent.json"))  # fmt: skip
    first = run_figures(out, **kwargs)
    names = {f["name"] for f in first["figures"]}
    assert names == {"head_weights_antonym", "head_weights_country_capital", "head_weights_multitask",
                     "patching_comparison", "layer_sweep", "vector_cosine", "vector_pca", "comparison_table",
                     "regression_curves_linear"}  # fmt: skip
    for name in names:
        assert (out / f"{name}.html").stat().st_size > 1000
        assert "plotly.min.js" in (out / f"{name}.html").read_text()[:5000]  # shared, not inlined
        assert (out / f"{name}.png").exists() == png_available()[0]
    assert (out / "plotly.min.js").exists() and (out / "comparison_table.md").exists()
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["quick"] is True and results["settings"]["seed"] == 0 and "seeds" in results
    assert {
        "head_weights",
        "patching",
        "layer_sweep",
        "geometry",
        "comparison",
        "regression",
        "cells_this_run",
    } <= set(results["data"])
    readme = (out / "README.md").read_text()
    assert all(f"({name}.html)" in readme for name in names)
    assert first["cache"]["misses"] == 5 and first["cache"]["hits"] == 0
    assert len(list(cache.glob("cells/*.json"))) == 5

    second = run_figures(out, **kwargs)
    assert second["cache"]["misses"] == 0 and second["cache"]["hits"] == 5  # nothing recomputed

    third = run_figures(out, **kwargs, force=True)
    assert third["cache"]["misses"] == 5


def test_main_without_browser_writes_html_and_says_so(tmp_path, tiny_gpt2, monkeypatch, capsys):
    import interp.plot.style as common
    from analyses.main import run_figures

    monkeypatch.setattr(common, "png_available", lambda: (False, "no browser (test)"))
    out = tmp_path / "figures"
    run_figures(out, quick=True, model="tiny-gpt2", cache_dir=tmp_path / "cache", progress=False,
                loaded_model=tiny_gpt2, tasks=("antonym", "capitalize"), regression_dir=str(tmp_path / "none"),
                comparison_sweep=str(tmp_path / "absent"))  # fmt: skip
    assert not list(out.glob("*.png")) and (out / "layer_sweep.html").exists()
    assert capsys.readouterr().out.count("PNG export skipped") == 1
    assert "PNG export skipped: no browser (test)" in (out / "README.md").read_text()


def test_cli_figures_dispatch(tmp_path, monkeypatch):
    from interp.cli import main

    monkeypatch.chdir(tmp_path)
    _fake_regression(tmp_path / "results")
    monkeypatch.setenv("INTERP_FIGURES_MODEL", "tiny-gpt2")
    monkeypatch.setenv("INTERP_FIGURES_CACHE", str(tmp_path / "cache"))
    assert main(["figures", "--quick", "--out", "figs"]) == 0
    assert (tmp_path / "figs" / "results.json").exists() and (tmp_path / "figs" / "README.md").exists()
    assert json.loads((tmp_path / "figs" / "results.json").read_text())["settings"]["model"] == "tiny-gpt2"


def test_settings_errors():
    from analyses.main import FigureSettings

    with pytest.raises(PlotError, match="unknown figure settings"):
        FigureSettings.for_run(nope=1)
    quick = FigureSettings.for_run(quick=True)
    assert quick.n_tasks == 2 and quick.quick and FigureSettings.for_run().n_tasks == 4
    assert FigureSettings.for_run().task_names() == [
        "antonym",
        "country_capital",
        "present_past",
        "capitalize",
    ]


def test_evaluate_from_layer_equals_full_evaluation(fitted):
    from interp.plot.layers import evaluate_from_layer

    p, cache = fitted["problem"], {}
    for vec in (fitted["fv"], fitted["tv"]):
        for layer in range(p.model.cfg.n_layers):
            v = vec.at_layer(layer)
            fast = evaluate_from_layer(v, layer, p, "shuffled", 6, cache)
            full = v.evaluate(p, "shuffled", n=6)
            assert fast.correct == full.correct and np.allclose(fast.prob, full.prob, rtol=1e-4, atol=1e-9)


def test_comparison_loader_reads_sweep_store(tmp_path):
    from interp.plot.table import plot_comparison_table
    from interp.sweep.report import load_comparison
    from interp.sweep.store import Store

    assert load_comparison(tmp_path / "absent") is None
    store = Store(tmp_path / "sweep")
    for seed, acc in ((0, 0.4), (1, 0.6)):
        metrics = {"accuracy": {"value": acc, "ci_low": acc - 0.2, "ci_high": acc + 0.2, "n": 10}}
        store.write({"key": f"k{seed}", "status": "ok", "task": "x", "method": "ltv", "setting": "zero-shot",
                     "seed": seed, "metrics": metrics, "correct": [True] * 10}, {"model": "m"})  # fmt: skip
    summary = load_comparison(tmp_path / "sweep")
    row = summary.iloc[0]
    assert (row.method, row.n_seeds) == ("LTV", 2) and row.accuracy == pytest.approx(0.5)
    assert row["std"] == pytest.approx(0.2 / 2**0.5)  # sample std of {0.4, 0.6}
    fig, _ = plot_comparison_table(summary)
    assert "± 0.14" in str([t.text for t in fig.data])


def test_stale_figures_are_removed(tmp_path, tiny_gpt2):
    from analyses.main import run_figures

    out = tmp_path / "figures"
    out.mkdir()
    (out / "old_figure.html").write_text("x")
    (out / "unrelated.txt").write_text("keep")
    (out / "results.json").write_text(json.dumps({"figures": [{"name": "old_figure"}]}))
    run_figures(out, quick=True, model="tiny-gpt2", cache_dir=tmp_path / "cache", progress=False, png=False,
                loaded_model=tiny_gpt2, regression_dir=str(tmp_path / "none"),
                comparison_sweep=str(tmp_path / "absent"))  # fmt: skip
    assert not (out / "old_figure.html").exists() and (out / "unrelated.txt").exists()
    first = (out / "layer_sweep.html").read_bytes()
    run_figures(out, quick=True, model="tiny-gpt2", cache_dir=tmp_path / "cache", progress=False, png=False,
                loaded_model=tiny_gpt2, regression_dir=str(tmp_path / "none"),
                comparison_sweep=str(tmp_path / "absent"))  # fmt: skip
    assert (out / "layer_sweep.html").read_bytes() == first  # redrawing from the cache is byte-identical
