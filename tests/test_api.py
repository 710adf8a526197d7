"""The notebook user's API: one import, runnable docstring examples, the bounded problem cache, input
checks with their messages, and a model fingerprint that tells apart models with the same config."""

from __future__ import annotations

import copy
import doctest
import importlib

import pytest
import torch

import interp


def test_one_import_exposes_the_working_set():
    for name in ("load_model", "load_task", "list_tasks", "TextProblem", "RegressionProblem", "fit", "LTVConfig",
                 "FVConfig", "TVConfig", "load_vector", "evaluate", "compare", "Result", "Comparison", "plot"):  # fmt: skip
        obj = getattr(interp, name)
        assert name in interp.__all__ and (name == "plot" or obj.__doc__), name
    for name in ("head_weights", "multitask_head_weights", "head_scores", "layer_sweep", "regression_curves",
                 "comparison_table", "cosine_similarity", "pca", "comparison"):  # fmt: skip
        assert callable(getattr(interp.plot, name)) and getattr(interp.plot, name).__doc__
    with pytest.raises(AttributeError, match="interp.plot has no 'nope'"):
        interp.plot.nope  # noqa: B018


@pytest.mark.parametrize(
    "module", ["interp", "interp.evaluation", "interp.problems", "interp.plot", "interp.vectors.base"]
)
def test_docstring_examples_run(module):
    result = doctest.testmod(
        importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------------------------------------ cache
def test_problem_cache_is_bounded_visible_and_clearable(tiny_gpt2, builtin_task):
    problem = interp.TextProblem(tiny_gpt2, builtin_task, shots=2)
    batch, prefix = problem.prefix("zero-shot", "test", 6)
    # keys + values of every layer, one copy per prompt, float32: from the shapes alone (either engine path)
    cfg = tiny_gpt2.cfg
    one_prefix = cfg.n_layers * 2 * len(batch) * (cfg.n_key_value_heads or cfg.n_heads) * prefix.prefix_length * cfg.d_head * 4
    assert problem.cache.nbytes >= one_prefix > 0
    first_entries = problem.cache.nbytes
    assert "cache: 2 entries" in repr(problem) and "KiB" in repr(problem) and "task='antonym'" in repr(problem)
    problem.clear_cache()
    assert len(problem.cache) == 0 and "cache: 0 entries, 0 B" in repr(problem)
    # the bound: room for the first batch + prefix only; older entries are evicted first, the newest is kept
    small = interp.TextProblem(tiny_gpt2, builtin_task, shots=2, cache_bytes=first_entries + 1)
    small.prefix("zero-shot", "test", 6)
    assert small.cache.evictions == 0 and len(small.cache) == 2
    small.prefix("shuffled", "test", 6)
    keys = small.cache.keys()
    assert small.cache.evictions >= 2 and (small.cache.nbytes <= small.cache.max_bytes or len(keys) == 1)
    assert ("prefix", "shuffled", "test", 6, 0) in keys and ("prefix", "zero-shot", "test", 6, 0) not in keys
    # evicted prompts come back identical
    again, _ = small.prefix("zero-shot", "test", 6)
    assert torch.equal(again.tokens, batch.tokens)
    # least recently *used*: touching an entry protects it
    lru = interp.TextProblem(tiny_gpt2, builtin_task, shots=2, cache_bytes=10**9)
    from interp.problems import nbytes

    zero_shot = nbytes(lru.batch("zero-shot", "test", 3))
    lru.batch("shuffled", "test", 3)
    lru.batch("zero-shot", "test", 3)
    icl = nbytes(interp.TextProblem(tiny_gpt2, builtin_task, shots=2).batch("icl", "test", 3))
    lru.cache.max_bytes = zero_shot + icl + 1
    lru.batch("icl", "test", 3)
    assert ("batch", "zero-shot", "test", 3, 0) in lru.cache and ("batch", "shuffled", "test", 3, 0) not in lru.cache
    # the old private dict still works for callers that freed prefixes through it
    lru.prefix("icl", "test", 3)
    assert ("icl", "test", 3, 0) in lru._prefixes
    lru._prefixes.pop(("icl", "test", 3, 0))
    assert ("icl", "test", 3, 0) not in lru._prefixes


# ------------------------------------------------------------------------------------------ input checks
def test_problem_input_checks(tiny_gpt2, builtin_task):
    from interp.problems import ProblemError

    for kwargs, message in [
        ({"shots": -1}, "shots must be a non-negative integer"),
        ({"shots": 2.5}, "shots must be a non-negative integer"),
        ({"seed": "0"}, "seed must be an integer"),
        ({"template": "nonsense"}, "unknown template 'nonsense'"),
        ({"corruptions": ("zero-shot", "typo")}, r"unknown corruption setting\(s\) \['typo'\]"),
    ]:
        with pytest.raises(ProblemError, match=message):
            interp.TextProblem(tiny_gpt2, builtin_task, **kwargs)
    with pytest.raises(ProblemError, match="task must be a Task"):
        interp.TextProblem(tiny_gpt2, "antonym")
    problem = interp.TextProblem(tiny_gpt2, builtin_task, shots=2)
    with pytest.raises(ProblemError, match="repeat a setting"):
        problem.check_corruptions(("zero-shot", "zero-shot"))
    with pytest.raises(ProblemError, match="unknown split 'dev'"):
        problem.batch("zero-shot", "dev", 3)
    with pytest.raises(ValueError, match="positive number of prompts"):
        problem.batch("zero-shot", "test", -2)


def test_regression_setting_k_must_be_an_integer():
    from interp.regression import RegressionConfig, RegressionTransformer

    model = RegressionTransformer(RegressionConfig(n_dims=3, n_points=6, n_layers=2, n_heads=2, d_model=32))
    problem = interp.RegressionProblem.for_model(model)
    with pytest.raises(ValueError, match="k=N needs a non-negative integer N of demonstrations, e.g. k=10"):
        problem.batch("k=2.5", "test", 4)
    assert "name='linear'" in repr(problem) and "cache:" in repr(problem)


# ------------------------------------------------------------------------------------------ fingerprint
def test_fingerprint_tells_apart_equal_configs_with_different_weights(tiny_gpt2):
    from transformer_lens import HookedTransformer

    from interp.models import load_tiny, model_fingerprint

    same_config_other_seed = load_tiny("tiny-gpt2", seed=1)
    a, b = same_config_other_seed.cfg.to_dict(), tiny_gpt2.cfg.to_dict()
    assert {k: v for k, v in a.items() if k != "seed"} == {k: v for k, v in b.items() if k != "seed"}
    assert model_fingerprint(same_config_other_seed) != model_fingerprint(tiny_gpt2)
    twin = copy.deepcopy(tiny_gpt2)
    assert model_fingerprint(twin) == model_fingerprint(tiny_gpt2)
    # a change confined to the last block's MLP (no longer only block 0's W_O is read)
    with torch.no_grad():
        twin.blocks[-1].mlp.W_out.mul_(1.01)
    assert model_fingerprint(twin) != model_fingerprint(tiny_gpt2)
    twin = copy.deepcopy(tiny_gpt2)
    with torch.no_grad():
        twin.unembed.W_U.add_(0.01)
    assert model_fingerprint(twin) != model_fingerprint(tiny_gpt2)
    # the same weights in another dtype are the same model
    assert model_fingerprint(copy.deepcopy(tiny_gpt2).to(torch.bfloat16)) == model_fingerprint(tiny_gpt2)
    assert isinstance(tiny_gpt2, HookedTransformer)


def test_vector_refuses_a_model_with_equal_config_and_other_weights(tmp_path, tiny_gpt2, builtin_task):
    from interp.models import load_tiny
    from interp.vectors import VectorError

    problem = interp.TextProblem(tiny_gpt2, builtin_task, shots=2)
    tv = interp.fit("tv", problem, interp.TVConfig(n_source=4, n_valid=4, layer=1), progress=False)
    tv.save(tmp_path / "tv")
    assert interp.load_vector(tmp_path / "tv", tiny_gpt2).layer == 1
    with pytest.raises(VectorError, match="refit it on this model"):
        interp.load_vector(tmp_path / "tv", load_tiny("tiny-gpt2", seed=1))
