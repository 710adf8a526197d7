"""Tests of the regression modality: samplers, the read-in/read-out HookedTransformer, training, checkpoints.

Fast (CPU, one thread): a tiny model trains for ~20 s; everything else is a handful of forward passes.
"""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch

from interp.regression import (
    FUNCTION_CLASSES,
    SHIFTS,
    RegressionConfig,
    RegressionTransformer,
    evaluate_curve,
    interleave,
    load_regression_model,
    query_prompt,
    read_checkpoint_config,
    sample_prompts,
    sample_task,
    save_regression_model,
    shipped_checkpoint_dir,
)
from interp.regression.evaluation import baseline_predictions, normalised_errors
from interp.regression.train import TrainConfig, train_regression_model
from transformer_lens import TransformerLensKeyValueCache

torch.set_num_threads(1)
warnings.filterwarnings("ignore", category=DeprecationWarning)

D = 5


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def small_model() -> RegressionTransformer:
    """Random-init model of the shipped architecture (the cache / hook identities do not need training)."""
    return RegressionTransformer(RegressionConfig(n_dims=D, n_points=10, n_layers=2, n_heads=4, d_model=32)).eval()


# --------------------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", sorted(FUNCTION_CLASSES))
@pytest.mark.parametrize("shift", [None, *sorted(SHIFTS)])
def test_sampler_shapes_and_seeding(cls, shift):
    xs, ys = sample_prompts(cls, 16, 7, D, gen(3), shift=shift)
    assert xs.shape == (16, 7, D) and ys.shape == (16, 7)
    assert xs.dtype == ys.dtype == torch.float32
    assert torch.isfinite(ys).all()
    xs2, ys2 = sample_prompts(cls, 16, 7, D, gen(3), shift=shift)
    assert torch.equal(xs, xs2) and torch.equal(ys, ys2)
    xs3, ys3 = sample_prompts(cls, 16, 7, D, gen(4), shift=shift)
    assert not torch.equal(xs, xs3)


def test_function_scales():
    """Var y ~ d for linear / relu_net (Garg et al.'s scaling), s = 3 for sparse, 1 for trees."""
    expected = {"linear": D, "relu_net": D, "sparse_linear": 3, "decision_tree": 1}
    for cls, var in expected.items():
        _, ys = sample_prompts(cls, 4000, 8, D, gen(1))
        assert abs(ys.var().item() / var - 1) < 0.15, (cls, ys.var().item())


def test_sparse_linear_has_three_nonzeros():
    task = sample_task("sparse_linear", 200, D, gen())
    assert ((task.functions.w != 0).sum(1) == 3).all()


def test_decision_tree_matches_reference_walk():
    task = sample_task("decision_tree", 8, D, gen(2))
    xs, ys = task.sample_points(30, gen(5))
    f = task.functions
    for b in range(8):
        for i in range(30):
            node = 0
            for _ in range(4):
                node = 2 * node + (2 if xs[b, i, f.split_dims[b, node]] > 0 else 1)
            assert ys[b, i] == f.leaf_values[b, node - 15]


def test_fixed_task_reuses_the_function():
    """Demos and a later query come from the same w; the noisy shift adds noise around that w."""
    task = sample_task("linear", 32, D, gen(0))
    xs, ys = task.sample_points(10, gen(1))
    xq, yq = task.sample_points(1, gen(2))
    w = task.functions.w
    torch.testing.assert_close(ys, torch.einsum("bkd,bd->bk", xs, w))
    torch.testing.assert_close(yq, torch.einsum("bkd,bd->bk", xq, w))
    noisy = sample_task("linear", 2000, D, gen(0), shift="noisy")
    xn, yn = noisy.sample_points(20, gen(1))
    resid = yn - noisy.functions(xn)
    assert abs(resid.std().item() - 0.5) < 0.02


def test_shifts_change_the_x_distribution():
    xs, _ = sample_prompts("linear", 2000, 10, D, gen(0), shift="scaled")
    assert abs(xs.std().item() - 3.0) < 0.05
    task = sample_task("linear", 1, D, gen(0), shift="skewed")
    xs, _ = task.sample_points(200_000, gen(1))
    eig = torch.linalg.eigvalsh(torch.cov(xs[0].T)).flip(0)
    target = 1 / torch.arange(1, D + 1)
    target = target * D / target.sum()
    torch.testing.assert_close(eig, target, atol=0.03, rtol=0.03)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="known classes.*linear"):
        sample_prompts("quadratic", 2, 3, D, gen())
    with pytest.raises(ValueError, match="known shifts.*noisy"):
        sample_prompts("linear", 2, 3, D, gen(), shift="rotated")
    with pytest.raises(ValueError, match="known classes"):
        RegressionConfig(function_class="quadratic")


def test_baselines_on_linear():
    xs, ys = sample_prompts("linear", 200, 12, D, gen(0))
    ls = normalised_errors(baseline_predictions("least_squares", xs, ys), ys, D).mean(0)
    assert ls[D + 1 :].max() < 1e-8  # exact once k - 1 >= d demonstrations
    avg = normalised_errors(baseline_predictions("averaging", xs, ys), ys, D).mean(0)
    assert avg[-1] < 0.8 * avg[1]
    nn = baseline_predictions("nn3", xs, ys)
    assert nn[:, 0].abs().max() == 0 and torch.allclose(nn[:, 1], ys[:, 0])  # one demo: copy its y


# --------------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------------


def test_config_round_trip_and_defaults():
    cfg = RegressionConfig(n_points=20, function_class="relu_net")
    assert cfg.n_ctx == 82 and cfg.d_mlp == 256
    assert RegressionConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_interleave_and_query_prompt_layout():
    xs, ys = sample_prompts("linear", 3, 4, D, gen())
    inp = interleave(xs, ys)
    assert inp.shape == (3, 8, D)
    assert torch.equal(inp[:, 0::2], xs)
    assert torch.equal(inp[:, 1::2, 0], ys) and (inp[:, 1::2, 1:] == 0).all()
    q = query_prompt(xs[:, :3], ys[:, :3], xs[:, 3])
    assert torch.equal(q, inp[:, :7])
    assert query_prompt(xs[:, :0], ys[:, :0], xs[:, 0]).shape == (3, 1, D)  # zero-shot


def test_forward_shapes_and_causality(small_model):
    xs, ys = sample_prompts("linear", 4, 6, D, gen())
    out = small_model(interleave(xs, ys))
    assert out.shape == (4, 12, 1)
    preds = small_model.predict(xs, ys)
    assert preds.shape == (4, 6)
    torch.testing.assert_close(preds, out[:, ::2, 0])
    ys2 = ys.clone()
    ys2[:, 3] += 10.0  # changes only what points > 3 see
    preds2 = small_model.predict(xs, ys2)
    torch.testing.assert_close(preds2[:, :4], preds[:, :4])
    assert not torch.allclose(preds2[:, 4:], preds[:, 4:])
    pq = small_model.predict_query(xs[:, :5], ys[:, :5], xs[:, 5])
    torch.testing.assert_close(pq, preds[:, 5], atol=1e-5, rtol=0)


def test_frozen_prefix_cache_equals_full_recompute(small_model):
    model = small_model
    xs, ys = sample_prompts("linear", 8, 9, D, gen(1))
    inputs = query_prompt(xs[:, :8], ys[:, :8], xs[:, 8])  # 17 positions, query last
    full = model(inputs)[:, -1]
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, inputs.shape[0])
    model(inputs[:, :-1], past_kv_cache=cache)
    cache.freeze()
    last = model(inputs[:, -1:], past_kv_cache=cache)
    assert last.shape == (8, 1, 1)
    assert (last[:, -1] - full).abs().max().item() <= 1e-5
    # the frozen cache is reusable: another query over the same prefix, still equal to a full recompute
    other_q = torch.randn(8, 1, D, generator=gen(9))
    full2 = model(torch.cat([inputs[:, :-1], other_q], 1))[:, -1]
    last2 = model(other_q, past_kv_cache=cache)[:, -1]
    assert (last2 - full2).abs().max().item() <= 1e-5
    assert cache[0].past_keys.shape[1] == inputs.shape[1] - 1


def test_frozen_prefix_cache_with_hooks_and_run_with_cache(small_model):
    """Hooks fire on the one-position run, and hook_z there equals the full run's final position."""
    model = small_model
    xs, ys = sample_prompts("linear", 4, 6, D, gen(2))
    inputs = query_prompt(xs[:, :5], ys[:, :5], xs[:, 5])
    _, full_cache = model.run_with_cache(inputs)
    kv = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 4)
    model(inputs[:, :-1], past_kv_cache=kv)
    kv.freeze()
    _, last_cache = model.run_with_cache(inputs[:, -1:], past_kv_cache=kv)
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.attn.hook_z"
        torch.testing.assert_close(last_cache[name][:, -1], full_cache[name][:, -1], atol=1e-5, rtol=0)
    torch.testing.assert_close(last_cache["hook_pos_embed"][:, 0], model.W_pos[inputs.shape[1] - 1].expand(4, -1))


def test_left_padding_with_attention_mask(small_model):
    """A left-padded prompt with its attention mask gives the unpadded prompt's final output."""
    model = small_model
    xs, ys = sample_prompts("linear", 1, 4, D, gen(5))
    short = query_prompt(xs[:, :3], ys[:, :3], xs[:, 3])  # 7 positions
    padded = torch.cat([torch.zeros(1, 3, D), short], 1)
    mask = torch.tensor([[0, 0, 0] + [1] * short.shape[1]])
    torch.testing.assert_close(
        model(padded, attention_mask=mask)[:, -1], model(short)[:, -1], atol=1e-5, rtol=0
    )


def test_hook_z_head_contributions_sum_to_attn_out(small_model):
    model = small_model
    xs, ys = sample_prompts("linear", 4, 6, D, gen(3))
    _, cache = model.run_with_cache(query_prompt(xs[:, :5], ys[:, :5], xs[:, 5]))
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][:, -1]  # [batch, head, d_head]
        heads = torch.einsum("bhd,hdm->bhm", z, model.W_O[layer])  # [batch, head, d_model]
        recon = heads.sum(1) + model.b_O[layer]
        torch.testing.assert_close(recon, cache[f"blocks.{layer}.hook_attn_out"][:, -1], atol=1e-5, rtol=0)


def test_read_in_goes_through_hook_embed(small_model):
    model = small_model
    xs, ys = sample_prompts("linear", 2, 3, D, gen(4))
    inputs = interleave(xs, ys)
    zeroed = model.run_with_hooks(inputs, fwd_hooks=[("hook_embed", lambda act, hook: act * 0)])
    only_pos = model(torch.zeros_like(inputs), stop_at_layer=0) - model.read_in.bias  # W_pos rows
    torch.testing.assert_close(only_pos[0], model.W_pos[: inputs.shape[1]])
    assert not torch.allclose(zeroed, model(inputs))


@pytest.mark.parametrize("shift", [None, *sorted(SHIFTS)])
def test_evaluate_curve_structure(small_model, shift):
    curve = evaluate_curve(small_model, "linear", n_prompts=24, max_points=14, seed=0, shift=shift,
                           baselines=["zero", "least_squares", "averaging", "nn3"])
    assert curve["k"] == list(range(1, 15)) and curve["trained_length"] == 10
    for c in [curve["model"], *curve["baselines"].values()]:
        assert len(c["mean"]) == len(c["lo"]) == len(c["hi"]) == 14
        assert all(lo <= m <= hi for lo, m, hi in zip(c["lo"], c["mean"], c["hi"]))
    assert curve["in_range_k"] == [2 * D, 10] and curve["beyond_k"] == [11, 20]
    assert curve["in_range_ci"][0] <= curve["in_range_error"] <= curve["in_range_ci"][1]
    assert curve["beyond_error"] is not None  # k 11..14 reached
    assert curve["shift"] == shift
    if shift != "noisy":
        assert curve["baseline_in_range"]["least_squares"] < 1e-6
    else:  # noise floor 0.25 / d on the observed y
        assert curve["baseline_in_range"]["least_squares"] > 0.25 / D * 0.8
    short = evaluate_curve(small_model, n_prompts=8, max_points=10, baselines=())
    assert short["beyond_error"] is None and short["baselines"] == {}


def test_bad_inputs_raise_clear_errors(small_model):
    model = small_model
    with pytest.raises(ValueError, match="n_dims=5"):
        model(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match="n_dims=5"):
        model.predict(torch.randn(2, 4, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="too long"):
        model(torch.randn(1, model.cfg.n_ctx + 1, D))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(1, 4, dtype=torch.long))
    kv = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 1)
    model(torch.randn(1, model.cfg.n_ctx - 1, D), past_kv_cache=kv)
    kv.freeze()
    with pytest.raises(ValueError, match="too long"):
        model(torch.randn(1, 2, D), past_kv_cache=kv)
    with pytest.raises(ValueError, match="too long"):
        evaluate_curve(model, n_prompts=4, max_points=model.cfg.n_ctx // 2 + 1, baselines=())


# --------------------------------------------------------------------------------------------------
# training and checkpoints
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory):
    """2 layers, d_model 32, d = 2, 10 points: ~800 steps (~20 s on one thread)."""
    cfg = RegressionConfig(n_dims=2, n_points=10, n_layers=2, n_heads=4, d_model=32, function_class="linear")
    tc = TrainConfig(steps=800, lr=3e-3, warmup_steps=50, log_every=10_000, log_prompts=16, eval_prompts=1000, eval_seed=0)
    out = tmp_path_factory.mktemp("tiny_ckpt")
    model, info = train_regression_model(cfg, tc, out_dir=out, log=lambda s: None)
    return model, info, out


def test_tiny_model_beats_averaging(trained_tiny):
    _, info, _ = trained_tiny
    ev = info["final_eval"]
    assert ev["in_range_error"] < ev["baseline_in_range"]["averaging"]
    assert ev["in_range_error"] < 0.5 * ev["baseline_in_range"]["zero"]


def test_checkpoint_round_trip(trained_tiny, tmp_path):
    model, info, out = trained_tiny
    loaded = load_regression_model(out, expected_class="linear")
    assert loaded.regression_config == model.regression_config
    xs, ys = sample_prompts("linear", 4, 10, 2, gen(7))
    torch.testing.assert_close(loaded.predict(xs, ys), model.predict(xs, ys), atol=0, rtol=0)
    cfg = read_checkpoint_config(out)
    assert cfg["training"]["steps_done"] == 800 and "torch" in cfg["versions"]
    assert cfg["training"]["final_eval"]["in_range_error"] == info["final_eval"]["in_range_error"]
    # save again elsewhere and reload
    save_regression_model(loaded, tmp_path / "again")
    again = load_regression_model(str(tmp_path / "again"))
    torch.testing.assert_close(again.predict(xs, ys), model.predict(xs, ys), atol=0, rtol=0)


def test_checkpoint_errors(trained_tiny, tmp_path):
    _, _, out = trained_tiny
    with pytest.raises(ValueError, match="trained on 'linear'.*expected 'relu_net'"):
        load_regression_model(out, expected_class="relu_net")
    with pytest.raises(ValueError, match="known classes"):
        load_regression_model("quadratic")
    with pytest.raises(ValueError, match="known classes"):
        load_regression_model(out, expected_class="quadratic")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_regression_model(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(out / "config.json", broken / "config.json")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_regression_model(broken)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_regression_model(empty)


@pytest.mark.parametrize("cls", sorted(FUNCTION_CLASSES))
def test_shipped_checkpoint_matches_its_record(cls):
    """Each shipped model loads by class name and reproduces its recorded in-range error on fresh prompts."""
    assert (shipped_checkpoint_dir(cls) / "model.safetensors").exists(), f"no shipped checkpoint for {cls}"
    model = load_regression_model(cls, expected_class=cls)
    rc = model.regression_config
    assert (rc.n_dims, rc.n_points, rc.n_layers, rc.n_heads, rc.d_model) == (5, 20, 3, 4, 64)
    rec = model.checkpoint_config["training"]["final_eval"]
    curve = evaluate_curve(model, n_prompts=300, max_points=rc.n_points, seed=2024, baselines=())
    half_width_rec = (rec["in_range_ci"][1] - rec["in_range_ci"][0]) / 2
    half_width_new = (curve["in_range_ci"][1] - curve["in_range_ci"][0]) / 2
    tolerance = 1.5 * (half_width_rec + half_width_new) + 0.005
    assert abs(curve["in_range_error"] - rec["in_range_error"]) <= tolerance, (curve["in_range_error"], rec)
    if cls == "linear":
        assert rec["in_range_error"] <= 0.05
    # the shipped model is a real in-context learner: better than the averaging and 3-NN estimators
    base = rec["baseline_in_range"]
    assert curve["in_range_error"] < min(base["averaging"], base["nn3"], base["zero"])
    with pytest.raises(ValueError, match="expected"):
        other = next(c for c in FUNCTION_CLASSES if c != cls)
        load_regression_model(cls, expected_class=other)
