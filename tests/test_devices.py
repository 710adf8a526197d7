"""Every tensor the library creates lives on the model's device.

A CPU-only machine cannot run a CUDA model, but it can catch the bug that breaks one: a tensor created
without ``device=`` (θ, masks, CIE tables, targets, ...). Here the model sits on the CPU while torch's
*default* device is ``meta``: any tensor the library creates without naming a device lands on ``meta``,
and the first operation mixing it with the model's CPU tensors raises ("Tensor on device meta is not on
the expected device cpu"), or a ``.item()`` on it fails. Code that takes the device from the model (or
from an input tensor) never notices the default. TransformerLens's own forward pass is default-device
clean, so every failure here is the toolkit's.

The same holds for dtype: a bfloat16 model runs the public paths end to end, with LTV θ kept in float32.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from interp.problems import TextProblem
from interp.vectors import FVConfig, LTVConfig, TVConfig, fit_fv, fit_ltv, fit_tv

SMALL_LTV = LTVConfig(steps=3, n_train=6, n_valid=4, n_mean=4, batch_size=3, eval_every=3)
SMALL_FV = FVConfig(top_k=2, n_mean=4, n_cie=2, n_valid=4)
SMALL_TV = TVConfig(n_source=3, n_valid=4)


@contextlib.contextmanager
def default_device_meta():
    """Tensors created without an explicit device land on ``meta`` (the model stays on the CPU)."""
    with torch.device("meta"):
        yield


@pytest.fixture(scope="module")
def text_problem():
    from interp.models import load_model
    from interp.tasks import load_task

    model = load_model("tiny-llama", device="cpu")
    return TextProblem(model, load_task("builtin:antonym"), shots=2)


def test_meta_default_catches_cpu_created_tensors():
    """The mechanism itself: a CPU model meeting a tensor created without a device fails loudly."""
    weight = torch.ones(3)
    with default_device_meta():
        stray = torch.zeros(3)  # what `torch.zeros(n)` inside library code would create
        with pytest.raises((RuntimeError, NotImplementedError)):
            (weight + stray).sum().item()


def test_text_paths_create_tensors_on_the_model_device(text_problem):
    from interp.plot.layers import compute_layer_sweep
    from analyses.patching import patching_scores
    from interp.results import evaluate_batch
    from interp.prompts import model_prompts

    p = text_problem
    with default_device_meta():
        batch = model_prompts(p.model, p.task, setting="icl", shots=2, n=4, split="test", seed=0)
        assert batch.tokens.device == batch.target_ids.device == p.model.W_E.device
        assert evaluate_batch(p.model, batch, method="none", progress=False).n == 4
        ltv = fit_ltv(p, SMALL_LTV, progress=False)
        assert ltv.theta.dtype == torch.float32
        ltv.evaluate(p, "zero-shot", n=3)
        ltv.random_control(seed=1).evaluate(p, "shuffled", n=3)
        fv = fit_fv(p, SMALL_FV, progress=False)
        tv = fit_tv(p, SMALL_TV, progress=False)
        fv.evaluate(p, "zero-shot", n=3)
        tv.evaluate(p, "zero-shot", n=3)
        patching_scores(p, n=2, progress=False)
        compute_layer_sweep(p, fv, tv, ltv, ltv_layers=[1], ltv_config=SMALL_LTV, n=3, progress=False)


def test_regression_paths_create_tensors_on_the_model_device():
    from interp.regression import load_regression_model
    from interp.regression.problem import RegressionProblem

    model = load_regression_model("linear", device="cpu")
    with default_device_meta():
        problem = RegressionProblem.for_model(model)
        ltv = fit_ltv(problem, LTVConfig(n_mean=8, n_train=8, n_valid=8, steps=2, batch_size=4, eval_every=2),
                      progress=False)  # fmt: skip
        ltv.evaluate(problem, problem.corruptions[0], n=4)
        fit_fv(problem, FVConfig(top_k=2, n_mean=8, n_cie=2, n_valid=8), progress=False)


def test_bfloat16_model_runs_every_method(text_problem):
    """A bf16 model: prompts, LTV (θ in float32), FV, TV and evaluation run and give finite numbers."""
    from interp.models import load_model
    from interp.tasks import load_task

    model = load_model("tiny-llama", dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    p = TextProblem(model, load_task("builtin:antonym"), shots=2)
    ltv = fit_ltv(p, SMALL_LTV, progress=False)
    assert ltv.theta.dtype == torch.float32 and torch.isfinite(ltv.theta).all()
    for vec in (ltv, fit_fv(p, SMALL_FV, progress=False), fit_tv(p, SMALL_TV, progress=False)):
        r = vec.evaluate(p, "zero-shot", n=3)
        assert r.n == 3 and 0.0 <= r.accuracy <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_vector_saved_on_the_cpu_runs_on_a_cuda_model(text_problem, tmp_path):
    """The bug a lent H200 found: `load_vector` left tensors on the CPU, and the FV-from-saved-heads path then
    added a CPU vector to CUDA activations. A vector now follows the model it is loaded for."""
    from interp.models import load_model
    from interp.tasks import load_task
    from interp.vectors import load_vector

    fv = fit_fv(text_problem, SMALL_FV, progress=False)
    fv.save(tmp_path / "fv")
    cuda_model = load_model("tiny-llama", device="cuda", dtype="float32")
    loaded = load_vector(tmp_path / "fv", cuda_model)
    assert all(t.device.type == "cuda" for t in loaded.tensors.values())
    cuda_problem = TextProblem(cuda_model, load_task("builtin:antonym"), shots=2)
    assert loaded.evaluate(cuda_problem, "zero-shot", n=3).n == 3
