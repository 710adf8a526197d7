"""`interp.patching` against TransformerLens's own ``transformer_lens.patching`` (one full forward per patch).

Every exact result is compared with ``get_act_patch_*`` / ``generic_activation_patch`` run on the same
left-padded batch (TransformerLens computes the padding mask itself from the tokenizer's pad token, so
its path shares nothing with the engine's), on tiny random models of many architecture families and on
SmolLM2. Attribution patching is checked against a directional derivative taken through TransformerLens
hooks on the full model. Tolerance: 1e-4 of the largest effect (float32).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformer_lens import patching as tlp

import interp.patching as P
from interp.engine import FrozenPrefix, final_logits

RTOL = 1e-4
FAMILIES = ["gpt2", "gpt-neo", "gpt-neox", "bloom", "llama-3.2", "mistral", "gemma-2", "shortformer", "qwen3",
            "phi"]  # fmt: skip
ENGINE_FAMILIES = [*FAMILIES, "gemma-3", "olmo3", "gpt-oss", "mixtral", "opt", "attn-only"]


@contextmanager
def left_padding(model):
    """TransformerLens infers the attention mask from leading pad tokens when the tokenizer pads left."""
    old = model.tokenizer.padding_side
    model.tokenizer.padding_side = "left"
    try:
        yield
    finally:
        model.tokenizer.padding_side = old


def family_model(name):
    from interp.families import build_family
    from interp.tiny_tokenizers import tiny_tokenizer

    model = build_family(name)
    model.set_tokenizer(tiny_tokenizer(), default_padding_side="left")  # pad id 0: only for the mask
    return model


def random_pairs(model, lengths=(9, 12), seed=0) -> P.PromptPairs:
    """Left-padded pairs of unequal lengths; the corrupted prompt differs from the clean one in two tokens."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    clean = torch.zeros(len(lengths), width, dtype=torch.long)  # 0 = the tiny tokenizer's pad id
    mask = torch.zeros_like(clean)
    for i, n in enumerate(lengths):
        clean[i, width - n :] = torch.randint(2, model.cfg.d_vocab, (n,), generator=g)
        mask[i, width - n :] = 1
    corrupted = clean.clone()
    for i, n in enumerate(lengths):
        for pos in (width - n + 1, width - 3):
            corrupted[i, pos] = 2 + (int(clean[i, pos]) + 7) % (model.cfg.d_vocab - 2)
    answers = torch.randint(2, model.cfg.d_vocab, (len(lengths),), generator=g)
    wrong = torch.randint(2, model.cfg.d_vocab, (len(lengths),), generator=g)
    return P.make_pairs(model, (clean, mask), (corrupted, mask.clone()), answer=answers, wrong=wrong)


def tl_metric(pairs):
    metric = P.LogitDiff(pairs.answers, pairs.wrong)
    return lambda logits: metric(logits[:, -1].float()).mean()


def close(mine: torch.Tensor, ref: torch.Tensor) -> tuple[bool, float]:
    ref = ref.detach().cpu().float()
    scale = float(ref.abs().max())
    diff = float((mine - ref).abs().max())
    return scale > 0 and diff <= RTOL * scale, diff


# ------------------------------------------------------------------------------------------------------------
# The engine generalisation: re-running the last positions over a truncated frozen cache
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ENGINE_FAMILIES)
def test_run_from_suffix_equals_full_recompute(family):
    """A patch at (layer l, position p) re-run over positions p..T-1 from layer l equals the full forward
    with the same patch, for every l and p, with left padding."""
    model = family_model(family)
    pairs = random_pairs(model)
    tokens, mask = pairs.corrupted, pairs.corrupted_mask
    T = tokens.shape[1]
    names = [f"blocks.{l}.hook_resid_pre" for l in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter=lambda n: n in names)
    prefix = FrozenPrefix.from_batch(model, tokens, mask, shared=False)
    delta = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    worst = 0.0
    for layer in range(model.cfg.n_layers):
        for p in range(T):
            def add(act, hook, p=p):
                out = act.clone()
                out[:, p] += delta
                return out

            with torch.no_grad():
                full = final_logits(model, tokens, mask, [(names[layer], add)])
                resid = cache[names[layer]][:, p:].clone()
                resid[:, 0] += delta
                fast = prefix.run_from(layer, resid, attention_mask=mask[:, p:])
            worst = max(worst, float((full - fast).abs().max() / full.abs().max()))
    assert worst < 1e-5, f"{family}: relative difference {worst:.2e}"


def test_run_from_suffix_needs_tl_cache_path(tiny_gpt2):
    tokens = torch.randint(2, 500, (1, 6))
    prefix = FrozenPrefix.from_batch(tiny_gpt2, tokens, shared=True)
    with pytest.raises(ValueError, match="shared=False"):
        prefix.run_from(0, torch.zeros(1, 3, tiny_gpt2.cfg.d_model))
    with pytest.raises(ValueError, match="at most the whole prompt"):
        FrozenPrefix.from_batch(tiny_gpt2, tokens, shared=False).run_from(0, torch.zeros(1, 7, tiny_gpt2.cfg.d_model))


# ------------------------------------------------------------------------------------------------------------
# Exact patching == transformer_lens.patching
# ------------------------------------------------------------------------------------------------------------

TL_FUNCTIONS = {
    "resid_pre": (tlp.get_act_patch_resid_pre, dict(component="resid_pre", position="all")),
    "attn_out": (tlp.get_act_patch_attn_out, dict(component="attn_out", position="all")),
    "mlp_out": (tlp.get_act_patch_mlp_out, dict(component="mlp_out", position="all")),
    "attn_head_out_by_pos": (tlp.get_act_patch_attn_head_out_by_pos, dict(component="z", position="all")),
    "attn_head_out_all_pos": (tlp.get_act_patch_attn_head_out_all_pos, dict(component="z", position="all_at_once")),
}  # fmt: skip


@pytest.fixture(scope="module", params=FAMILIES)
def family_setup(request):
    model = family_model(request.param)
    pairs = random_pairs(model)
    with left_padding(model), torch.no_grad():
        _, clean_cache = model.run_with_cache(pairs.clean)
        _, corrupted_cache = model.run_with_cache(pairs.corrupted)
    return request.param, model, pairs, clean_cache, corrupted_cache


@pytest.mark.parametrize("what", list(TL_FUNCTIONS))
def test_exact_equals_transformer_lens(family_setup, what):
    family, model, pairs, clean_cache, _ = family_setup
    fn, kwargs = TL_FUNCTIONS[what]
    with left_padding(model), torch.no_grad():
        ref = fn(model, pairs.corrupted, clean_cache, tl_metric(pairs))
    mine = P.patch(model, pairs, **kwargs).grid()
    assert mine.shape == ref.shape
    ok, diff = close(mine, ref)
    assert ok, f"{family} {what}: max difference {diff:.3g}"


def test_final_position_heads_equal_transformer_lens_restricted(family_setup):
    """The fast path (shared prefix, one-token rows) == get_act_patch_attn_head_out_by_pos at the final
    position only (TransformerLens's index_df)."""
    family, model, pairs, clean_cache, _ = family_setup
    T = pairs.corrupted.shape[1]
    index = pd.DataFrame([(l, T - 1, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)],
                         columns=["layer", "pos", "head"])  # fmt: skip
    with left_padding(model), torch.no_grad():
        ref = tlp.get_act_patch_attn_head_out_by_pos(model, pairs.corrupted, clean_cache, tl_metric(pairs),
                                                     index_axis_names=None, index_df=index)  # fmt: skip
    result = P.patch_heads(model, pairs)
    assert result.positions.tolist() == [T - 1] * len(index)
    ok, diff = close(result.values, ref)
    assert ok, f"{family}: max difference {diff:.3g}"


@pytest.mark.parametrize("component", ["resid_mid", "resid_post"])
def test_resid_mid_post_and_noising_equal_generic_activation_patch(family_setup, component):
    family, model, pairs, clean_cache, corrupted_cache = family_setup
    if component == "resid_mid" and model.cfg.parallel_attn_mlp:
        with pytest.raises(P.PatchingError, match="no hook_resid_mid"):
            P.patch(model, pairs, component=component, position="all")
        return
    for direction, tokens, cache in (("denoising", pairs.corrupted, clean_cache),
                                     ("noising", pairs.clean, corrupted_cache)):  # fmt: skip
        with left_padding(model), torch.no_grad():
            ref = tlp.generic_activation_patch(
                model, tokens, cache, tl_metric(pairs), patch_setter=tlp.layer_pos_patch_setter,
                activation_name=component, index_axis_names=("layer", "pos"),
            )  # fmt: skip
        mine = P.patch(model, pairs, component=component, position="all", direction=direction).grid()
        ok, diff = close(mine, ref)
        assert ok, f"{family} {component} {direction}: max difference {diff:.3g}"


@pytest.mark.parametrize("family", ["llama-3.2", "gpt2"])
def test_qkv_and_pattern_equal_transformer_lens(family):
    model = family_model(family)
    pairs = random_pairs(model)
    metric = tl_metric(pairs)
    with left_padding(model), torch.no_grad():
        _, cache = model.run_with_cache(pairs.clean)
        refs = {
            "q": tlp.get_act_patch_attn_head_q_by_pos(model, pairs.corrupted, cache, metric),
            "k": tlp.get_act_patch_attn_head_k_by_pos(model, pairs.corrupted, cache, metric),
            "v": tlp.get_act_patch_attn_head_v_by_pos(model, pairs.corrupted, cache, metric),
            # [layer, head, dest_pos] in TransformerLens's order
            "pattern": tlp.get_act_patch_attn_head_pattern_by_pos(model, pairs.corrupted, cache, metric),
        }
    for comp, ref in refs.items():
        mine = P.patch(model, pairs, component=comp, position="all").grid()
        if comp == "pattern":
            mine = mine.permute(0, 2, 1)
        assert mine.shape == ref.shape, comp
        ok, diff = close(mine, ref)
        assert ok, f"{family} {comp}: max difference {diff:.3g}"
    # the final position of k / v on the fast path (grouped-query: per key-value head)
    final = P.patch(model, pairs, component="k").grid()
    ok, diff = close(final, refs["k"][:, -1])
    assert ok and final.shape[1] == (model.cfg.n_key_value_heads or model.cfg.n_heads)


def test_one_position_and_filters(tiny_model):
    pairs = random_pairs(tiny_model, lengths=(10,))
    full = P.patch(tiny_model, pairs, component="z", position="all")
    one = P.patch(tiny_model, pairs, component="z", position=4, layers=[1], heads=[0, 2])
    assert one.layers.tolist() == [1, 1] and one.heads.tolist() == [0, 2] and one.positions.tolist() == [4, 4]
    sel = full.to_frame().query("layer == 1 and position == 4 and head in [0, 2]")
    assert torch.allclose(one.values, torch.tensor(sel["value"].to_numpy(), dtype=torch.float32), atol=1e-5)
    final = P.patch(tiny_model, pairs, component="resid_pre", position=-1)
    assert torch.allclose(final.values, P.patch_resid_pre(tiny_model, pairs).grid()[:, -1], atol=1e-5)


# ------------------------------------------------------------------------------------------------------------
# Attribution patching == the directional derivative, taken through TransformerLens hooks
# ------------------------------------------------------------------------------------------------------------


def _directional(model, pairs, hook_name, index, source_cache):
    """d metric(corrupted + t * (clean - corrupted) at ``index``) / dt at t = 0, on the full model."""
    metric = tl_metric(pairs)
    t = torch.zeros((), requires_grad=True)

    def hook(act, hook):
        mask = torch.zeros_like(act)
        mask[index] = 1
        return act + t * mask * (source_cache[hook_name] - act.detach())

    with left_padding(model):
        value = metric(model.run_with_hooks(pairs.corrupted, fwd_hooks=[(hook_name, hook)]))
    (grad,) = torch.autograd.grad(value, t)
    return float(value.detach()), float(grad)


@pytest.mark.parametrize("family", ["llama-3.2", "gpt2", "gemma-2"])
def test_attribution_equals_directional_derivative(family):
    model = family_model(family)
    pairs = random_pairs(model)
    with left_padding(model), torch.no_grad():
        _, cache = model.run_with_cache(pairs.clean)
    T = pairs.corrupted.shape[1]
    heads = P.patch(model, pairs, component="z", method="attribution")
    resid = P.patch(model, pairs, component="resid_pre", position="all", method="attribution")
    for layer, head in [(0, 1), (1, 3)]:
        name = f"blocks.{layer}.attn.hook_z"
        base, slope = _directional(model, pairs, name, (slice(None), T - 1, head), cache)
        got = heads.to_frame().query(f"layer == {layer} and head == {head}")["value"].item()
        assert got == pytest.approx(base + slope, rel=1e-4, abs=1e-5)
    for layer, pos in [(0, T - 5), (1, T - 2)]:
        name = f"blocks.{layer}.hook_resid_pre"
        base, slope = _directional(model, pairs, name, (slice(None), pos), cache)
        got = resid.to_frame().query(f"layer == {layer} and position == {pos}")["value"].item()
        assert got == pytest.approx(base + slope, rel=1e-4, abs=1e-5)
    assert heads.corrupted == pytest.approx(base, rel=1e-5)


def test_agreement_reports_rank_correlation_and_overlap(tiny_model):
    pairs = random_pairs(tiny_model)
    exact = P.patch(tiny_model, pairs, component="z", position="all")
    approx = P.patch(tiny_model, pairs, component="z", position="all", method="attribution")
    same = P.agreement(exact, exact, top_k=5)
    assert same.spearman == pytest.approx(1) and same.top_k_overlap == 5 and same.sign_agreement == 1
    ag = P.agreement(exact, approx, top_k=5)
    assert -1 <= ag.spearman <= 1 and 0 <= ag.top_k_overlap <= 5 and ag.n == len(exact)
    assert list(ag.worst.columns) == ["component", "layer", "head", "position", "exact", "estimate", "difference"]
    assert "Spearman" in str(ag) and set(ag.to_dict()) >= {"spearman", "kendall", "top_k_overlap"}
    with pytest.raises(P.PatchingError, match="different components"):
        P.agreement(exact, P.patch(tiny_model, pairs, component="attn_out", position="all"))


# ------------------------------------------------------------------------------------------------------------
# Inputs, results, errors
# ------------------------------------------------------------------------------------------------------------


def test_result_table_json_and_heatmap(tiny_gpt2):
    result = P.patch(tiny_gpt2, "the cat sat on the", "the dog sat on the", answer=" a", wrong=" in")
    frame = result.to_frame()
    assert list(frame.columns) == ["component", "layer", "head", "position", "value", "normalized"]
    assert len(frame) == tiny_gpt2.cfg.n_layers * tiny_gpt2.cfg.n_heads
    expected = (frame["value"] - result.corrupted) / (result.clean - result.corrupted)
    assert torch.allclose(torch.tensor(frame["normalized"].to_numpy()), torch.tensor(expected.to_numpy()))
    doc = json.loads(json.dumps(result.to_dict()))
    assert {"model", "component", "position", "method", "metric", "clean", "corrupted", "tokens_clean",
            "tokens_corrupted", "rows"} <= set(doc)  # fmt: skip
    assert doc["tokens_corrupted"] == tiny_gpt2.tokenizer("the dog sat on the", add_special_tokens=False)["input_ids"]
    assert {r["position"] for r in doc["rows"]} == {len(doc["tokens_corrupted"]) - 1}
    resid = P.patch_resid_pre(tiny_gpt2, "the cat sat on the", "the dog sat on the", answer=" a", wrong=" in")
    assert all(r["head"] is None for r in resid.to_dict()["rows"])
    # the whole residual stream of any layer, at every position at once, carries the clean run entirely
    whole = P.patch(tiny_gpt2, "the cat sat on the", "the dog sat on the", answer=" a", wrong=" in",
                    component="resid_pre", position="all_at_once")  # fmt: skip
    assert torch.allclose(whole.normalized, torch.ones(tiny_gpt2.cfg.n_layers), atol=1e-4)
    for r in (result, resid):
        fig = P.plot_patching(r)
        assert fig.data[0].type == "heatmap"


def test_clear_errors(tiny_gpt2):
    unequal = P.make_pairs(tiny_gpt2, "the cat sat on the mat", "a dog sat", answer=" a", wrong=" in")
    assert not unequal.aligned
    P.patch(tiny_gpt2, unequal, component="z")  # the final tokens line up
    with pytest.raises(P.PatchingError, match="equal length"):
        P.patch(tiny_gpt2, unequal, component="resid_pre", position="all")
    with pytest.raises(P.PatchingError, match="equal length"):
        P.patch(tiny_gpt2, unequal, component="pattern")
    with pytest.raises(P.PatchingError, match="unknown component"):
        P.patch(tiny_gpt2, unequal, component="neurons")
    with pytest.raises(P.PatchingError, match="tokens"):
        P.make_pairs(tiny_gpt2, "a", "b", answer=" extraordinarily")
    with pytest.raises(P.PatchingError, match="needs answer"):
        P.patch(tiny_gpt2, "a b", "a c", metric="logit_diff", answer=" a")
    with pytest.raises(P.PatchingError, match="outside"):
        P.patch(tiny_gpt2, "a b", "a c", answer=" a", wrong=" in", position=40)
    with pytest.raises(P.PatchingError, match="one corrupted prompt per clean"):
        P.make_pairs(tiny_gpt2, ["a", "b"], ["c"])
    with pytest.raises(P.PatchingError, match="out of range"):
        P.patch(tiny_gpt2, "a b", "a c", answer=" a", wrong=" in", layers=[7])
    with pytest.raises(P.PatchingError, match="one number, or one per pair"):
        P.patch(tiny_gpt2, "a b", "a c", metric=lambda logits: logits[:, :3])
    attn_only = family_model("attn-only")
    with pytest.raises(P.PatchingError, match="attention-only"):
        P.patch(attn_only, torch.tensor([3, 4, 5]), torch.tensor([3, 6, 5]), answer=1, component="mlp_out")


def test_callable_metric_and_problem_pairs(tiny_gpt2, builtin_task):
    from interp.problems import TextProblem

    problem = TextProblem(tiny_gpt2, builtin_task, shots=3)
    pairs = P.problem_pairs(problem, 3)
    assert len(pairs) == 3 and pairs.answers is not None and len(pairs.queries) == 3
    prob = P.patch(tiny_gpt2, pairs, metric="answer_prob")
    custom = P.patch(tiny_gpt2, pairs, metric=lambda logits: logits.softmax(-1)[torch.arange(3), pairs.answers])
    assert torch.allclose(prob.values, custom.values) and prob.per_pair.shape == (len(prob), 3)
    scalar = P.patch(tiny_gpt2, pairs, metric=lambda logits: logits.softmax(-1)[torch.arange(3), pairs.answers].mean())
    assert torch.allclose(scalar.values, prob.values, atol=1e-6) and scalar.per_pair is None


# ------------------------------------------------------------------------------------------------------------
# SmolLM2
# ------------------------------------------------------------------------------------------------------------

IOI = [
    ("When Mary and John went to the store, John gave a drink to",
     "When Mary and John went to the store, Mary gave a drink to", " Mary", " John"),
    ("After the meeting, Sarah and Tom walked home. Tom handed the keys to",
     "After the meeting, Sarah and Tom walked home. Sarah handed the keys to", " Sarah", " Tom"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smollm2_equals_transformer_lens(smollm2):
    model = smollm2
    pairs = P.make_pairs(model, [c for c, *_ in IOI], [x for _, x, *_ in IOI], [a for *_, a, _ in IOI],
                         [w for *_, w in IOI])  # fmt: skip
    assert pairs.aligned and len(set(pairs.lengths())) == 2  # left padding: two lengths in one batch
    T = pairs.corrupted.shape[1]
    L, H = model.cfg.n_layers, model.cfg.n_heads
    metric = tl_metric(pairs)
    with left_padding(model), torch.no_grad():
        _, cache = model.run_with_cache(pairs.clean)
        heads_index = pd.DataFrame([(l, T - 1, h) for l in range(L) for h in range(H)], columns=["layer", "pos", "head"])
        ref_heads = tlp.get_act_patch_attn_head_out_by_pos(model, pairs.corrupted, cache, metric,
                                                           index_axis_names=None, index_df=heads_index)  # fmt: skip
        layers = [0, 13, L - 1]
        pos_index = pd.DataFrame([(l, p) for l in layers for p in range(T)], columns=["layer", "pos"])
        refs = {name: fn(model, pairs.corrupted, cache, metric, index_axis_names=None, index_df=pos_index)
                for name, fn in [("resid_pre", tlp.get_act_patch_resid_pre), ("attn_out", tlp.get_act_patch_attn_out),
                                 ("mlp_out", tlp.get_act_patch_mlp_out)]}  # fmt: skip
        head_pos = pd.DataFrame([(l, p, h) for l in [L - 2] for p in range(T) for h in range(H)],
                                columns=["layer", "pos", "head"])  # fmt: skip
        ref_head_pos = tlp.get_act_patch_attn_head_out_by_pos(model, pairs.corrupted, cache, metric,
                                                              index_axis_names=None, index_df=head_pos)  # fmt: skip
        all_pos = pd.DataFrame([(l, h) for l in [2, L - 1] for h in range(H)], columns=["layer", "head"])
        ref_all_pos = tlp.get_act_patch_attn_head_out_all_pos(model, pairs.corrupted, cache, metric,
                                                              index_axis_names=None, index_df=all_pos)  # fmt: skip
    ok, diff = close(P.patch_heads(model, pairs).values, ref_heads)
    assert ok, f"heads at the final position: {diff:.3g}"
    for name, ref in refs.items():
        ok, diff = close(P.patch(model, pairs, component=name, position="all", layers=layers).values, ref)
        assert ok, f"{name}: {diff:.3g}"
    ok, diff = close(P.patch(model, pairs, component="z", position="all", layers=[L - 2]).values, ref_head_pos)
    assert ok, f"heads by position: {diff:.3g}"
    ok, diff = close(P.patch(model, pairs, component="z", position="all_at_once", layers=[2, L - 1]).values,
                     ref_all_pos)  # fmt: skip
    assert ok, f"heads at all positions at once: {diff:.3g}"


# ------------------------------------------------------------------------------------------------------------
# The notebook
# ------------------------------------------------------------------------------------------------------------

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_adhoc_patching.ipynb"


def _run_notebook(model: str, timeout: int):
    import os

    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(NOTEBOOK, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "the notebook has stale outputs"
    old = {k: os.environ.get(k) for k in ("INTERP_NOTEBOOK_MODEL", "INTERP_NUM_THREADS")}
    os.environ.update({"INTERP_NOTEBOOK_MODEL": model, "INTERP_NUM_THREADS": "1"})
    try:
        NotebookClient(book, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # fmt: skip
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    texts = []
    for cell in book.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            texts.append(out.get("text", ""))
            texts.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(texts)


def test_notebook_runs_on_tiny_model():
    text = _run_notebook("tiny-gpt2", timeout=180)
    assert "Spearman" in text and "PatchingResult" in text


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_notebook_runs_on_smollm2():
    text = _run_notebook("smollm2-135m", timeout=600)
    assert "Spearman" in text and "PatchingResult" in text


# ------------------------------------------------------------------------------------------------------------
# The command line: interp patch
# ------------------------------------------------------------------------------------------------------------


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the verb through its own parser (the same add_parser / run the ``interp`` entry point registers)."""
    import argparse

    from interp.cli import patch as verb

    parser = argparse.ArgumentParser(prog="interp")
    verb.add_parser(parser.add_subparsers(dest="command"))
    code = verb.run(parser.parse_args(["patch", *argv]))
    out = capsys.readouterr()
    return code, out.out, out.err


def _cli_matches_transformer_lens(model, model_name, clean, corrupted, answer, wrong, capsys) -> float:
    code, out, _ = _cli(["--model", model_name, "--clean", clean, "--corrupted", corrupted, "--answer", answer,
                         "--wrong", wrong, "--component", "heads", "--position", "final", "--json"], capsys)  # fmt: skip
    assert code == 0
    doc = json.loads(out)  # exactly one JSON document on stdout
    assert set(doc) >= {"model", "component", "position", "method", "metric", "clean", "corrupted",
                        "tokens_clean", "tokens_corrupted", "rows"} and doc["metric"] == "logit_diff"  # fmt: skip
    pairs = P.make_pairs(model, clean, corrupted, answer=answer, wrong=wrong)
    assert doc["tokens_corrupted"] == pairs.token_lists()[0] and doc["tokens_clean"] == pairs.token_lists("clean")[0]
    T = len(doc["tokens_corrupted"])
    L, H = model.cfg.n_layers, model.cfg.n_heads
    index = pd.DataFrame([(l, T - 1, h) for l in range(L) for h in range(H)], columns=["layer", "pos", "head"])
    with torch.no_grad():
        _, cache = model.run_with_cache(pairs.clean)
        ref = tlp.get_act_patch_attn_head_out_by_pos(model, pairs.corrupted, cache, tl_metric(pairs),
                                                     index_axis_names=None, index_df=index)  # fmt: skip
    got = {(r["layer"], r["head"]): r for r in doc["rows"]}
    assert len(got) == L * H and all(r["position"] == T - 1 for r in doc["rows"])
    mine = torch.tensor([got[(l, h)]["value"] for l in range(L) for h in range(H)])
    ok, diff = close(mine, ref)
    assert ok, f"largest difference {diff:.3g}"
    r = doc["rows"][0]
    assert r["normalized"] == pytest.approx((r["value"] - doc["corrupted"]) / (doc["clean"] - doc["corrupted"]))
    return diff


def test_cli_patch_heads_final_equals_transformer_lens(tiny_gpt2, capsys):
    _cli_matches_transformer_lens(tiny_gpt2, "tiny-gpt2", "the cat sat on the", "the dog sat on the", " a", " in",
                                  capsys)  # fmt: skip


def test_cli_patch_positions_and_errors(capsys):
    code, out, _ = _cli(["--model", "tiny-gpt2", "--clean", "the cat sat on the", "--corrupted", "the dog sat on the",
                         "--answer", " a", "--wrong", " in", "--component", "resid_pre", "--position", "all",
                         "--method", "attribution", "--json"], capsys)  # fmt: skip
    doc = json.loads(out)
    assert code == 0 and doc["method"] == "attribution" and doc["position"] == "all"
    assert {r["position"] for r in doc["rows"]} == set(range(len(doc["tokens_corrupted"])))
    assert all(r["head"] is None for r in doc["rows"])
    code, out, _ = _cli(["--model", "tiny-gpt2", "--clean", "the cat sat on the", "--corrupted", "the dog sat on the",
                         "--answer", " a", "--wrong", " in", "--position", "3"], capsys)  # fmt: skip
    assert code == 0 and "logit difference" in out
    with pytest.raises(P.PatchingError, match="equal length"):  # the entry point prints it as one line, exit 2
        _cli(["--model", "tiny-gpt2", "--clean", "the cat sat", "--corrupted", "the dog sat on the", "--answer", " a",
              "--wrong", " in", "--position", "all"], capsys)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cli_patch_heads_final_equals_transformer_lens_on_smollm2(smollm2, capsys):
    clean, corrupted, answer, wrong = IOI[0]
    diff = _cli_matches_transformer_lens(smollm2, "smollm2-135m", clean, corrupted, answer, wrong, capsys)
    print(f"largest |interp patch - get_act_patch_attn_head_out_by_pos| on SmolLM2: {diff:.3g}")
