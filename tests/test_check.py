"""`interp check`: the family matrix (every TransformerLens architecture, tiny and random), the checks'
power to catch a broken engine, refusals, and the CLI's single JSON document."""

from __future__ import annotations

import json

import pytest
import torch

from interp.check import check_families, check_model
from interp.engine import FrozenPrefix, UnsupportedModelError, refuse_unsupported
from interp.families import FAMILIES, build_family


@pytest.fixture(scope="module")
def family_report():
    return check_families()


def test_every_family_passes_or_is_refused(family_report):
    fams = family_report["families"]
    assert set(fams) == set(FAMILIES)
    bad = {name: r["reason"] for name, r in fams.items() if r["status"] == "fail"}
    assert not bad, bad
    assert family_report["passed"] >= 8
    for name, r in fams.items():
        if r["status"] == "unsupported":
            assert r["reason"], name  # a refusal names the feature
        else:
            assert set(r["max_abs_diff"]) >= {"final_logits", "head_identity", "engine_head_patch", "run_from",
                                              "ltv_gradient", "cie", "left_padding"}  # fmt: skip
    # Qwen-1's dynamic-NTK rotary past the training length is refused, by name
    assert fams["qwen1"]["status"] == "unsupported" and "dynamic-NTK" in fams["qwen1"]["reason"]


def test_families_keep_their_features():
    """The shrunk configs still carry what makes each family different (not 24 copies of GPT-2)."""
    cfg = {name: build_family(name).cfg for name in ("gpt-j", "bloom", "gemma", "gemma-2", "gemma-3", "mixtral",
                                                     "shortformer", "mistral", "qwen3")}  # fmt: skip
    assert cfg["gpt-j"].parallel_attn_mlp and cfg["gpt-j"].rotary_dim < cfg["gpt-j"].d_head
    assert cfg["bloom"].positional_embedding_type == "alibi"
    assert cfg["gemma"].n_key_value_heads == 1
    assert cfg["gemma-2"].output_logits_soft_cap > 0 and cfg["gemma-2"].attn_scores_soft_cap > 0
    assert set(cfg["gemma-2"].attn_types) == {"local", "global"} and cfg["gemma-2"].use_normalization_before_and_after
    assert cfg["gemma-3"].use_qk_norm and set(cfg["gemma-3"].attn_types) == {"local", "global"}
    assert cfg["mixtral"].num_experts == 4
    assert cfg["shortformer"].positional_embedding_type == "shortformer"
    assert cfg["mistral"].window_size < 10 and cfg["qwen3"].use_qk_norm


def test_check_catches_a_broken_engine(monkeypatch):
    model = build_family("llama")
    real_run = FrozenPrefix.run
    monkeypatch.setattr(FrozenPrefix, "run", lambda self, hooks=(): real_run(self, hooks) * 1.001)
    failed = {c.name for c in check_model(model) if not c.passed}
    assert {"engine_none", "engine_add_every_layer", "engine_head_patch"} <= failed


def test_check_catches_a_missing_final_softcap(monkeypatch):
    """The engine's own unembedding path must apply Gemma 2's final-logit soft-cap (it once did not)."""
    from transformer_lens.utilities import activation_functions

    model = build_family("gemma-2")
    assert all(c.passed for c in check_model(model))
    monkeypatch.setattr(activation_functions, "apply_softcap", lambda x, cap: x)  # the engine imports it lazily
    failed = {c.name for c in check_model(model) if not c.passed}
    assert "final_logits" in failed


def test_multi_device_models_are_refused():
    model = build_family("gpt2")
    model.cfg.n_devices = 2
    with pytest.raises(UnsupportedModelError, match="n_devices=2"):
        refuse_unsupported(model)
    with pytest.raises(UnsupportedModelError):
        check_model(model)


def test_resid_mid_is_refused_on_parallel_blocks():
    from interp.interventions import InterventionError, add_vectors

    model = build_family("gpt-j")
    with pytest.raises(InterventionError, match="no hook_resid_mid.*parallel"):
        add_vectors(model, {0: torch.zeros(model.cfg.d_model)}, hook="resid_mid")


def test_bfloat16_family_passes_with_bf16_tolerance():
    checks = check_model(build_family("gemma-2", dtype=torch.bfloat16))
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert all(c.tol >= 4 * 2**-8 * 1e-3 for c in checks)  # bf16 tolerances, not float32 ones


def test_cli_families_json_is_one_document(capsys):
    from interp.cli import main

    code = main(["check", "--family", "gpt2", "--family", "qwen1", "--json"])
    out = capsys.readouterr().out
    report = json.loads(out)  # exactly one JSON document (json.loads rejects trailing text)
    assert code == 0
    assert report["families"]["gpt2"]["status"] == "pass" and report["passed"] == 1 and report["failed"] == 0
    assert report["families"]["qwen1"]["status"] == "unsupported"


def test_cli_model_json_and_table(capsys):
    from interp.cli import main

    assert main(["check", "--model", "tiny-llama", "--device", "cpu", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["model"] == "tiny-llama" and record["failed"] == 0 and record["dtype"] == "float32"
    assert record["passed"] == len(record["checks"]) >= 10
    assert main(["check", "--model", "tiny-gpt2", "--dtype", "bfloat16"]) == 0
    table = capsys.readouterr().out
    assert "bfloat16" in table and "engine_head_patch" in table and "FAIL" not in table
