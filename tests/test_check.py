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
    assert (
        set(cfg["gemma-2"].attn_types) == {"local", "global"}
        and cfg["gemma-2"].use_normalization_before_and_after
    )
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
    monkeypatch.setattr(
        activation_functions, "apply_softcap", lambda x, cap: x
    )  # the engine imports it lazily
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


# ----------------------------------------------------------------------------------------------------------
# 16-bit: every shortcut judged against a float32 copy of the model, beside its 16-bit reference path
# ----------------------------------------------------------------------------------------------------------


def test_16bit_criterion_by_hand():
    """The bound is FACTOR x the 16-bit reference's error against float32 (max and mean) + one ulp."""
    from interp.check import FACTOR_16BIT, _compare_16bit

    exact = torch.linspace(-10, 10, 101, dtype=torch.float64)
    noise = torch.sin(torch.arange(101, dtype=torch.float64)) * 0.1  # |noise| <= 0.1, mean ~0.064
    ref16 = exact + noise
    ulp_floor = 2**-8 * 10  # one bf16 ulp of max|exact| = 10
    ok = _compare_16bit("x", exact + 1.5 * noise, ref16, exact, torch.bfloat16)
    assert ok.passed and ok.ref_err == pytest.approx(noise.abs().max().item())
    assert ok.tol == pytest.approx(FACTOR_16BIT * noise.abs().max().item() + ulp_floor)
    assert ok.fast_err_mean == pytest.approx(1.5 * noise.abs().mean().item())
    assert not _compare_16bit("x", exact + 3 * noise, ref16, exact, torch.bfloat16).passed
    # a mean error past its bound (2 x 0.063 + 2^-8 x mean|exact| = 0.146) fails even with the max within its own
    spread = _compare_16bit("x", exact + torch.full_like(noise, 0.2), ref16, exact, torch.bfloat16)
    assert spread.fast_err <= spread.tol and spread.fast_err_mean > spread.mean_tol and not spread.passed


def test_float32_reference_is_an_upcast_copy():
    from interp.check import float32_reference

    model = build_family("gemma-3", dtype=torch.bfloat16)
    ref = float32_reference(model)
    assert {p.dtype for p in ref.parameters()} == {torch.float32} and ref.cfg.dtype == torch.float32
    assert model_dtype_of(model) == torch.bfloat16 and model.cfg.dtype == torch.bfloat16  # untouched
    assert torch.equal(ref.W_Q.to(torch.bfloat16), model.W_Q)  # the same weights, upcast exactly
    # rotary tables are recomputed in float32 (not the bf16 table upcast)
    assert ref.blocks[0].attn.rotary_sin.dtype == torch.float32
    assert not torch.equal(ref.blocks[0].attn.rotary_sin, model.blocks[0].attn.rotary_sin.float())


def model_dtype_of(model):
    return next(model.parameters()).dtype


@pytest.fixture(scope="module")
def family_report_bf16():
    return check_families(dtype=torch.bfloat16)


def test_every_family_passes_in_bfloat16(family_report_bf16):
    """The bf16 matrix on the CPU: every family passes (or is refused), and each check reports how far the
    shortcut and the 16-bit reference path are from the float32 copy."""
    fams = family_report_bf16["families"]
    bad = {name: r["reason"] for name, r in fams.items() if r["status"] == "fail"}
    assert not bad, bad
    assert family_report_bf16["passed"] >= 20 and "float32" in family_report_bf16["criterion"]
    for name, r in fams.items():
        if r["status"] == "pass":
            errors = r["errors"]
            assert set(errors) >= {"final_logits", "engine_none", "run_from", "ltv_gradient", "cie"}, name
            # the reference really is float32: the bf16 forward is measurably off from it
            assert errors["final_logits"]["ref"] > 0 and r["worst_ratio"] < 1, name


def test_float16_family_passes_against_float32():
    checks = check_model(build_family("llama-3.2", dtype=torch.float16))
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert all(c.fast_err is not None and c.ref_err is not None and c.mean_tol is not None for c in checks)
    assert max(c.ref_err for c in checks if c.name.startswith("engine")) > 0


def _drop_window(monkeypatch):
    """Break the engine: its shared-prefix attention forgets local (sliding-window) masks."""
    from interp import shared_attention

    real = shared_attention.SharedCache.allowed

    def allowed(self, attn, device):
        saved = attn.attn_type
        try:
            attn.attn_type = "global"
            return real(self, attn, device)
        finally:
            attn.attn_type = saved

    monkeypatch.setattr(shared_attention.SharedCache, "allowed", allowed)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16bit_check_catches_a_missing_window(monkeypatch, dtype):
    model = build_family("mistral", dtype=dtype)  # sliding window 5, shorter than the check prompts
    assert all(c.passed for c in check_model(model))
    _drop_window(monkeypatch)
    failed = {c.name for c in check_model(model) if not c.passed}
    assert {"engine_none", "engine_add_every_layer", "run_from"} <= failed, failed


def test_bf16_check_catches_a_missing_attention_softcap(monkeypatch):
    """Gemma 2's attention soft-cap dropped from the engine's attention: caught in bf16. A random tiny model's
    scores are ~0.1, where a cap of 50 is the identity; sharper queries/keys (x64, x4: powers of two, exact in
    bf16) and a cap of 1 make the cap bend them, as trained models' scores are bent."""
    from interp import shared_attention

    model = build_family("gemma-2", dtype=torch.bfloat16)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_Q.mul_(64)
            block.attn.W_K.mul_(4)
    model.cfg.attn_scores_soft_cap = 1.0
    assert all(c.passed for c in check_model(model))
    monkeypatch.setattr(shared_attention, "apply_softcap", lambda x, cap: x)
    failed = {c.name for c in check_model(model) if not c.passed}
    assert {"engine_none", "engine_head_patch", "run_from"} <= failed, failed


@pytest.fixture(scope="module")
def smollm2_bf16():
    from interp.check import float32_reference
    from interp.models import load_model

    model = load_model("smollm2-135m", device="cpu", dtype="bfloat16")
    return model, float32_reference(model)


@pytest.mark.slow
def test_smollm2_passes_in_bfloat16(smollm2_bf16):
    """The real model in bf16 (30 layers; the shared-prefix engine is not bit-equal to TL's forward there):
    every check passes against the float32 copy, and both paths' errors are reported."""
    model, reference = smollm2_bf16
    checks = check_model(model, reference=reference)
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    engine = next(c for c in checks if c.name == "engine_none")
    assert engine.ref_err > 0.05 and engine.fast_err > 0.05  # bf16 over 30 layers is far from exact ...
    assert engine.fast_err < 2 * engine.ref_err  # ... and the engine no farther than TL's own forward


@pytest.mark.slow
def test_smollm2_bf16_check_catches_a_dropped_key(monkeypatch, smollm2_bf16):
    """An off-by-one in the engine's mask (the first real token of each prompt never attended) fails in bf16."""
    from interp import shared_attention

    real = shared_attention.SharedCache.allowed

    def allowed(self, attn, device):
        ok = real(self, attn, device).clone()
        first = self.kv.mask.to(device).argmax(1)  # first non-padding position of each prompt
        ok[torch.arange(len(first), device=device), 0, 0, first] = False
        return ok

    monkeypatch.setattr(shared_attention.SharedCache, "allowed", allowed)
    model, reference = smollm2_bf16
    failed = {c.name for c in check_model(model, reference=reference) if not c.passed}
    assert {"engine_none", "engine_add_every_layer", "engine_head_patch", "run_from"} <= failed, failed


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
    assert "fast vs f32" in table and "ref vs f32" in table  # both paths' errors against float32
    assert main(["check", "--model", "tiny-llama", "--dtype", "float16", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["dtype"] == "float16" and "float32 copy" in record["criterion"]
    check = record["checks"]["engine_none"]
    assert check["fast_err"] <= check["tol"] and check["ref_err"] > 0 and check["fast_err_mean"] <= check["mean_tol"]
