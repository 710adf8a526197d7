"""`interp bench`: the FLOP-count ideal and the machine roofline behave as their definitions say, and the
command prints one JSON document (on a tiny random model: the numbers themselves are for SmolLM2, see README)."""

from __future__ import annotations

import json
import os

import pytest

from interp.bench import ideal_speedups, ltv_step_floor_s, machine_roofline


@pytest.fixture(scope="module")
def tiny_llama():
    from interp.models import load_model

    return load_model("tiny-llama")


def test_ideal_speedups_grow_with_prompt_length():
    from types import SimpleNamespace

    # SmolLM2-135M's shape (only the shape enters a FLOP count)
    cfg = SimpleNamespace(n_layers=30, d_model=576, n_heads=9, d_head=64, n_key_value_heads=3, d_mlp=1536,
                          d_vocab=49152, gated_mlp=True)  # fmt: skip
    short, long = ideal_speedups(cfg, 100, 16), ideal_speedups(cfg, 300, 16)
    # an LTV step: the full path's cost is ~linear in T, the engine's one-token row nearly flat
    assert long["ltv_step_ideal_speedup"] > 2.5 * short["ltv_step_ideal_speedup"]
    # the CIE: the engine also builds each prompt's prefix once, so its ideal rises with T, but less than T
    assert 1.3 * short["cie_ideal_speedup"] < long["cie_ideal_speedup"] < 3 * short["cie_ideal_speedup"]
    # a batch scales both paths alike
    assert ideal_speedups(cfg, 100, 64)["ltv_step_ideal_speedup"] == pytest.approx(short["ltv_step_ideal_speedup"])


def test_ltv_step_floor_is_two_reads_of_the_weights(tiny_llama):
    slow_memory = {"bandwidth_gbs": 1.0, "gemm_gflops": 1e9}  # bandwidth-bound: every weight read twice
    cfg = tiny_llama.cfg
    weights = sum(p.numel() for p in tiny_llama.parameters()) - tiny_llama.embed.W_E.numel()
    kv = 16 * 49 * cfg.n_layers * 2 * cfg.n_key_value_heads * cfg.d_head  # 16 prompts' prefixes of 49 tokens
    expected = 2 * (weights + kv) * 4 / 1e9  # float32
    assert ltv_step_floor_s(tiny_llama, 50, 16, slow_memory) == pytest.approx(expected)
    slow_compute = {"bandwidth_gbs": 1e9, "gemm_gflops": 1e-3}  # compute-bound: then the FLOPs decide
    assert ltv_step_floor_s(tiny_llama, 50, 16, slow_compute) > expected
    measured = machine_roofline(tiny_llama, repeats=1)
    assert measured["bandwidth_gbs"] > 0.1 and measured["gemm_gflops"] > 0.1


def test_bench_json_is_one_document(capsys, monkeypatch):
    from interp.cli import main

    monkeypatch.setenv("INTERP_NUM_THREADS", "1")
    assert main(["bench", "--json", "--quick", "--model", "tiny-llama", "--shots", "2", "--batch", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("ltv_step_speedup", "cie_speedup", "engine_peak_mb", "full_peak_mb", "ltv_step_ideal_speedup",
                "ltv_step_floor_s", "ltv_step_roofline_speedup", "roofline"):  # fmt: skip
        assert key in out, key
    assert out["ltv_step_roofline_speedup"] >= out["ltv_step_speedup"] * out["ltv_step_roofline_achieved"] * 0.99


def test_patch_ideal_speedups_follow_the_work():
    from types import SimpleNamespace

    from interp.bench import patch_ideal_speedups

    cfg = SimpleNamespace(n_layers=30, d_model=576, n_heads=9, d_head=64, n_key_value_heads=3, d_mlp=1536,
                          d_vocab=49152, gated_mlp=True)  # fmt: skip
    short, long = patch_ideal_speedups(cfg, 20, 15), patch_ideal_speedups(cfg, 80, 30)
    # final-position heads: TransformerLens's forward grows with T, the engine's one-token rows hardly do
    assert long["patch_heads_final_ideal_speedup"] > 2.5 * short["patch_heads_final_ideal_speedup"]
    # every (layer, position): a patch at (l, p) still re-runs p..T-1 through l..L-1, about a quarter of the
    # full forwards' token-layers, plus their all-position unembeddings: a few times, not orders of magnitude
    assert 2 < short["patch_resid_all_pos_ideal_speedup"] < 12


def test_bench_only_patching_is_one_json_document(capsys, monkeypatch):
    import argparse

    from interp.bench import cmd_bench

    monkeypatch.setenv("INTERP_NUM_THREADS", "1")
    args = argparse.Namespace(model="tiny-llama", only="patching", quick=True, json=True, shots=[2], batch=None)
    assert cmd_bench(args) == 0
    out = json.loads(capsys.readouterr().out)
    for name in ("patch_heads_final", "patch_resid_all_pos"):
        for key in ("speedup", "ideal_speedup", "achieved", "engine_s", "tl_s", "tokens", "pairs"):
            assert f"{name}_{key}" in out, f"{name}_{key}"
        assert out[f"{name}_speedup"] > 0


def test_task_cost_runs_both_engine_paths_with_the_same_answers(capsys):
    """`interp bench --only task-cost` (formerly a one-off script): one task's LTV + FV + TV cell with
    shared-prefix attention and with the per-row cache; both are exact, so their accuracies must agree."""
    from interp.cli import main

    assert main(["bench", "--model", "tiny-gpt2", "--only", "task-cost", "--quick", "--shots", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for method in ("ltv", "fv", "tv"):
        assert out["shared_prefix"][f"{method}_accuracy"] == out["per_row_cache"][f"{method}_accuracy"]
    assert out["task_cost_speedup"] > 0 and os.environ.get("INTERP_SHARED_PREFIX") is None
