"""Tasks (loading, splits, errors) and prompts (settings, padding, targets, errors)."""

from __future__ import annotations

import json

import pytest
import torch

from interp.models import smollm2_tokenizer
from interp.prompts import PromptError, build_prompts, derangement, first_target_token, get_template
from interp.tasks import BUILTIN_DIR, TaskError, list_tasks, load_task


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


def test_builtin_tasks_are_the_default(monkeypatch):
    monkeypatch.delenv("INTERP_TASKS_DIR", raising=False)
    names = list_tasks()
    assert len(names) >= 6 and all(p.parent == BUILTIN_DIR for p in names.values())
    for name in names:
        assert len(load_task(name).pairs) >= 100


def test_shared_suite_both_subfolders(shared_tasks_dir):
    names = list_tasks(shared_tasks_dir)
    assert "antonym" in names and "choose_first_of_3" in names  # abstractive and extractive
    t = load_task("present-past", shared_tasks_dir)
    assert t.n_dropped >= 1  # the published file has an entry with an empty output: skipped and counted


def test_env_var_selects_directory(monkeypatch, shared_tasks_dir):
    monkeypatch.setenv("INTERP_TASKS_DIR", str(shared_tasks_dir))
    assert "country-capital" in list_tasks()
    assert load_task("builtin:antonym").source.startswith(str(BUILTIN_DIR))


def test_splits_disjoint_deterministic():
    a, b = load_task("builtin:antonym", seed=3), load_task("builtin:antonym", seed=3)
    assert a.splits == b.splits
    inputs = {s: {p.input for p in a.split(s)} for s in ("train", "valid", "test")}
    assert not inputs["train"] & inputs["test"] and not inputs["train"] & inputs["valid"]
    assert not inputs["valid"] & inputs["test"]
    assert sum(len(v) for v in a.splits.values()) == len(a.pairs)
    assert load_task("builtin:antonym", seed=4).splits != a.splits


def test_task_errors(tmp_path):
    with pytest.raises(TaskError, match="does not exist"):
        load_task("antonym", tmp_path / "missing")
    with pytest.raises(TaskError, match="Available: antonym"):
        load_task("nope", BUILTIN_DIR)
    (tmp_path / "bad.json").write_text("[{\"input\": 1}")
    with pytest.raises(TaskError, match="bad.json is not valid JSON"):
        load_task("bad", tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps([{"input": "a", "output": "b"}, {"input": "x"}]))
    with pytest.raises(TaskError, match="bad.json, entry 1"):
        load_task("bad", tmp_path)
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(TaskError, match="holds no pairs"):
        load_task("empty", tmp_path)


def test_prompt_settings(tok, builtin_task):
    icl = build_prompts(builtin_task, tok, setting="icl", shots=4, n=8, seed=0)
    zs = build_prompts(builtin_task, tok, setting="zero-shot", n=8, seed=0)
    sh = build_prompts(builtin_task, tok, setting="shuffled", shots=4, n=8, seed=0)
    assert len(icl) == len(zs) == len(sh) == 8
    assert icl.texts[0].count("Q: ") == 5 and zs.texts[0].count("Q: ") == 1
    assert all(t.endswith("\nA:") for t in icl.texts)
    # queries come from test, never repeated among the demos
    test_inputs = {p.input for p in builtin_task.test}
    assert all(q.input in test_inputs for q in icl.queries)
    # shuffled: same format, but no demo shows its own answer
    train = {p.input: p.output for p in builtin_task.train}
    for text in sh.texts:
        demos = [blk.split("\nA: ") for blk in text.split("\n\n")[:-1]]
        assert all(train[q[3:]] != a for q, a in demos)
    # left padding: final token real in every row, targets are first tokens with the leading space
    assert icl.attention_mask[:, -1].all() and (icl.attention_mask[:, 0] == 0).any()
    assert tok.decode(icl.target_ids[0]).startswith(" ")


def test_target_tokens_and_counts(tok):
    tid, n = first_target_token(tok, "cold")
    assert tok.decode([tid]) == " cold" and n == 1
    _, n = first_target_token(tok, "antidisestablishmentarianism")
    assert n > 1


def test_templates(tok, builtin_task):
    b = build_prompts(builtin_task, tok, template="arrow", shots=2, n=2)
    assert " -> " in b.texts[0] and b.texts[0].endswith(" ->")
    custom = get_template("Input: {input} Output: {output}\n")
    assert custom.query == "Input: {input} Output:"
    with pytest.raises(PromptError, match="unknown template"):
        get_template("nonsense")


def test_prompt_errors(tok, builtin_task):
    with pytest.raises(PromptError, match="too few for 400-shot"):
        build_prompts(builtin_task, tok, shots=400)
    with pytest.raises(PromptError, match="context is 20"):
        build_prompts(builtin_task, tok, shots=10, n=2, n_ctx=20)
    with pytest.raises(PromptError, match="unknown setting"):
        build_prompts(builtin_task, tok, setting="weird")


def test_derangement_has_no_fixed_points():
    import random

    rng = random.Random(0)
    for n in range(2, 12):
        perm = derangement(n, rng)
        assert sorted(perm) == list(range(n)) and all(i != p for i, p in enumerate(perm))


def test_select_trims_padding(tok, builtin_task):
    b = build_prompts(builtin_task, tok, shots=3, n=6)
    sub = b.select([0])
    assert sub.attention_mask.all() and torch.equal(sub.target_ids, b.target_ids[:1])
