"""Shared fixtures: tiny random models (GPT-2 style and grouped-query Llama style), SmolLM2, task data."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ.get("INTERP_NUM_THREADS", "1")))
warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")

SHARED_TASKS = Path(__file__).resolve().parents[1].parent / "shared" / "icl_tasks"


@pytest.fixture(scope="session")
def shared_tasks_dir() -> Path:
    root = Path(os.environ.get("INTERP_TASKS_DIR", SHARED_TASKS))
    if not (root / "abstractive").is_dir():
        pytest.skip(f"the function-vectors task suite is not at {root}; set INTERP_TASKS_DIR")
    return root


@pytest.fixture(scope="session", params=["tiny-gpt2", "tiny-llama"])
def tiny_model(request):
    from interp.models import load_model

    return load_model(request.param)


@pytest.fixture(scope="session")
def tiny_gpt2():
    from interp.models import load_model

    return load_model("tiny-gpt2")


@pytest.fixture(scope="session")
def smollm2():
    from interp.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def builtin_task():
    from interp.tasks import load_task

    return load_task("builtin:antonym")


# ----------------------------------------------------------------------------------------------------------
# Tiny Hugging Face checkpoints (random weights, the toolkit's tiny tokenizer), built offline in temp dirs
# ----------------------------------------------------------------------------------------------------------


def make_tiny_hf_checkpoint(path: Path, arch: str = "gpt2", seed: int = 0) -> Path:
    """Save a randomly initialised tiny HF causal LM (``gpt2`` or ``llama`` with grouped-query attention)
    plus the tiny tokenizer to ``path``; returns ``path``."""
    import transformers

    from interp.tiny_tokenizers import tiny_tokenizer

    torch.manual_seed(seed)
    if arch == "gpt2":
        config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=512, n_positions=128)
        config.n_ctx = 128  # TransformerLens reads n_ctx (the hub's gpt2 config.json has it)
        model = transformers.GPT2LMHeadModel(config)
    elif arch == "llama":
        config = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                          num_key_value_heads=2, intermediate_size=128, vocab_size=512,
                                          max_position_embeddings=128)  # fmt: skip
        model = transformers.LlamaForCausalLM(config)
    else:
        raise ValueError(arch)
    config.architectures = [type(model).__name__]
    with torch.no_grad():  # non-trivial biases / norms
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def make_tiny_hf_cache(root: Path, repo: str = "gpt2") -> Path:
    """A Hugging Face hub cache (``$HF_HUB_CACHE`` layout) holding a tiny random ``repo``; returns ``root``."""
    snapshot = root / f"models--{repo.replace('/', '--')}" / "snapshots" / ("0" * 40)
    make_tiny_hf_checkpoint(snapshot, "gpt2")
    refs = root / f"models--{repo.replace('/', '--')}" / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "main").write_text("0" * 40)
    return root
