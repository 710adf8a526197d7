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
