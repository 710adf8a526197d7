"""Batches of ICL prompts: k-shot, zero-shot and shuffled-label, left-padded, with first-token targets.

A prompt is ``k`` demonstrations from the task's *train* split followed by one query from the split asked
for, rendered with a template::

    Q: hot\\nA: cold\\n\\nQ: big\\nA: small\\n\\nQ: tall\\nA:        ("qa", Todd et al.'s default)
    hot -> cold\\nbig -> small\\ntall ->                            ("arrow", Hendel et al.)

The model must continue with ``" " + output``; we score the *first token* of that string (with its leading
space). Targets that tokenise into several tokens are kept and counted (``n_multi_token``); targets whose
first token is a bare space (e.g. `` 5`` split as ``" " "5"``) carry no information and are skipped and
counted (``n_skipped``), never silently dropped.

Settings:
- ``icl``: clean k-shot (the ceiling);
- ``zero-shot``: the query alone;
- ``shuffled``: the k demos with their outputs permuted by a derangement (no demo keeps its own answer),
  so the prompt shows the format but not the task;
- ``dummy``: k clean demos plus a query drawn from *train* (Hendel et al.'s task-vector source prompts).

Batches are left-padded with an attention mask, so the final token of every row sits at position ``-1``:
every intervention of this toolkit acts there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from interp.tasks import Pair, Task

Setting = Literal["icl", "zero-shot", "shuffled", "dummy"]
SETTINGS: tuple[str, ...] = ("icl", "zero-shot", "shuffled", "dummy")


class PromptError(ValueError):
    """Prompts could not be built as asked; the message says what to change."""


@dataclass(frozen=True)
class Template:
    """How a demonstration and a query are rendered. ``{input}`` / ``{output}`` are substituted."""

    demo: str
    query: str
    prefix: str = ""
    name: str = "custom"

    def render(self, demos: Sequence[Pair], query_input: str) -> str:
        body = "".join(self.demo.format(input=d.input, output=d.output) for d in demos)
        return self.prefix + body + self.query.format(input=query_input)

    def to_dict(self) -> dict:
        return {"demo": self.demo, "query": self.query, "prefix": self.prefix, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> "Template":
        return cls(**d)


TEMPLATES: dict[str, Template] = {
    "qa": Template(demo="Q: {input}\nA: {output}\n\n", query="Q: {input}\nA:", name="qa"),
    "arrow": Template(demo="{input} -> {output}\n", query="{input} ->", name="arrow"),
}


def get_template(template: str | Template) -> Template:
    if isinstance(template, Template):
        return template
    if template in TEMPLATES:
        return TEMPLATES[template]
    if "{input}" in template and "{output}" in template:
        # A user demo template; the query is the demo cut just before its output (minus trailing space).
        cut = template.index("{output}")
        return Template(demo=template, query=template[:cut].rstrip(" "), name="custom")
    raise PromptError(
        f"unknown template {template!r}: use one of {sorted(TEMPLATES)} or a demo string containing "
        "'{input}' and '{output}' such as 'Input: {input} Output: {output}\\n'"
    )


@dataclass
class PromptBatch:
    """Left-padded prompts ready for the model; final token at position -1 of every row."""

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    target_ids: Int[Tensor, " batch"]
    texts: list[str]
    queries: list[Pair]
    setting: str
    shots: int
    n_multi_token: int = 0
    n_skipped: int = 0
    meta: dict = field(default_factory=dict)
    row_multi_token: list[bool] = field(default_factory=list)

    @property
    def inputs(self) -> Tensor:
        """What the model consumes (tokens here; regression batches hold float vectors)."""
        return self.tokens

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def select(self, idx: Sequence[int] | Tensor) -> "PromptBatch":
        idx_list = [int(i) for i in idx]
        idx_t = torch.tensor(idx_list, dtype=torch.long, device=self.tokens.device)
        trimmed = trim_left_padding(self.tokens[idx_t], self.attention_mask[idx_t])
        return PromptBatch(
            tokens=trimmed[0],
            attention_mask=trimmed[1],
            target_ids=self.target_ids[idx_t],
            texts=[self.texts[i] for i in idx_list],
            queries=[self.queries[i] for i in idx_list],
            setting=self.setting,
            shots=self.shots,
            n_multi_token=sum(self.row_multi_token[i] for i in idx_list) if self.row_multi_token else 0,
            n_skipped=self.n_skipped,
            meta=dict(self.meta),
            row_multi_token=[self.row_multi_token[i] for i in idx_list] if self.row_multi_token else [],
        )

    def to(self, device: torch.device | str) -> "PromptBatch":
        """The same batch with its tensors on ``device`` (the model's; prompts are built on the CPU)."""
        return replace(
            self,
            tokens=self.tokens.to(device),
            attention_mask=self.attention_mask.to(device),
            target_ids=self.target_ids.to(device),
        )

    def chunks(self, size: int):
        for start in range(0, len(self), size):
            yield self.select(range(start, min(start + size, len(self))))


def trim_left_padding(tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Drop columns that are padding in every row (after selecting a sub-batch)."""
    keep_from = int((mask.sum(0) > 0).nonzero()[0]) if mask.any() else 0
    return tokens[:, keep_from:], mask[:, keep_from:]


def derangement(n: int, rng: random.Random) -> list[int]:
    """A random permutation with no fixed point (identity for n < 2, where none exists)."""
    if n < 2:
        return list(range(n))
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


def _unscorable(task) -> PromptError:
    return PromptError(f"every target of task {task.name!r} starts with a bare space token; nothing to score")


def require_scorable(tokenizer, task) -> None:
    """Raise the PromptError that building prompts would raise if *no* output of ``task`` can be scored with
    ``tokenizer`` (e.g. SmolLM2 splits every word_length answer as ``" " "5"``), before any prompt is built."""
    if not any(first_target_token(tokenizer, pair.output)[0] >= 0 for pair in task.pairs):
        raise _unscorable(task)


def first_target_token(tokenizer, output: str) -> tuple[int, int]:
    """(first token id of ``" " + output``, number of tokens); id -1 if the first token is only whitespace."""
    ids = tokenizer(" " + output, add_special_tokens=False)["input_ids"]
    if not ids:
        return -1, 0
    if not tokenizer.decode([ids[0]]).strip():
        return -1, len(ids)
    return ids[0], len(ids)


def build_prompts(
    task: Task,
    tokenizer,
    *,
    setting: str = "icl",
    shots: int = 10,
    n: int | None = None,
    split: str = "test",
    template: str | Template = "qa",
    seed: int = 0,
    bos: str | None = None,
    n_ctx: int | None = None,
    queries: Sequence[Pair] | None = None,
) -> PromptBatch:
    """Build a left-padded batch of prompts for ``task``.

    Args:
        setting: ``icl`` | ``zero-shot`` | ``shuffled`` | ``dummy`` (see the module docstring).
        shots: demonstrations per prompt (ignored for zero-shot).
        n: number of prompts (default: the whole split; capped at the split size).
        split: where queries come from; demos always come from ``train`` and never repeat the query.
        bos: a token string to prepend (e.g. ``"<|endoftext|>"``), or None for no BOS.
        n_ctx: the model's context length; a longer prompt is an error naming the fix.
        queries: explicit query pairs (overrides ``split`` / ``n``).
    """
    if setting not in SETTINGS:
        raise PromptError(f"unknown setting {setting!r}; choose one of {SETTINGS}")
    tmpl = get_template(template)
    rng = random.Random(seed)
    train = task.train
    k = 0 if setting == "zero-shot" else shots
    if k < 0:
        raise PromptError(f"shots must be >= 0, got {shots}")
    if setting == "shuffled" and k < 2:
        raise PromptError("the shuffled setting needs at least 2 shots (a derangement of one label is impossible)")
    if k + 1 > len(train):
        raise PromptError(
            f"task {task.name!r} has {len(train)} train pairs, too few for {k}-shot prompts plus a distinct query; "
            f"use fewer shots (--shots) or a larger task."
        )
    if queries is None:
        pool = train if setting == "dummy" else task.split(split)
        order = list(range(len(pool)))
        rng.shuffle(order)
        if n is not None:
            order = order[:n]
        queries = [pool[i] for i in order]
    if not queries:
        raise PromptError(f"no queries: split {split!r} of task {task.name!r} is empty")

    texts, target_ids, kept, multi = [], [], [], []
    n_multi = n_skipped = 0
    for query in queries:
        target, n_tok = first_target_token(tokenizer, query.output)
        if target < 0:
            n_skipped += 1
            continue
        n_multi += n_tok > 1
        multi.append(n_tok > 1)
        candidates = [p for p in train if p.input != query.input]
        demos = rng.sample(candidates, k) if k else []
        if setting == "shuffled":
            perm = derangement(k, rng)
            demos = [Pair(d.input, demos[perm[i]].output) for i, d in enumerate(demos)]
        texts.append(tmpl.render(demos, query.input))
        target_ids.append(target)
        kept.append(query)
    if not texts:
        raise _unscorable(task)

    tokens, mask = tokenize_left_padded(tokenizer, texts, bos=bos, n_ctx=n_ctx)
    return PromptBatch(
        tokens=tokens,
        attention_mask=mask,
        target_ids=torch.tensor(target_ids, dtype=torch.long, device="cpu"),
        texts=texts,
        queries=kept,
        setting=setting,
        shots=k,
        n_multi_token=n_multi,
        n_skipped=n_skipped,
        meta={"task": task.name, "template": tmpl.to_dict(), "seed": seed, "split": split, "bos": bos},
        row_multi_token=multi,
    )


def tokenize_left_padded(
    tokenizer, texts: Sequence[str], *, bos: str | None = None, n_ctx: int | None = None
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Tokenise without special tokens, optionally prepend ``bos``, left-pad to a common length."""
    bos_ids: list[int] = []
    if bos is not None:
        bos_id = tokenizer.convert_tokens_to_ids(bos)
        if bos_id is None or bos_id == tokenizer.unk_token_id and bos != tokenizer.unk_token:
            raise PromptError(f"BOS token {bos!r} is not in the tokenizer's vocabulary")
        bos_ids = [bos_id]
    rows = [bos_ids + tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    longest = max(len(r) for r in rows)
    if n_ctx is not None and longest > n_ctx:
        raise PromptError(
            f"a prompt has {longest} tokens but the model's context is {n_ctx}; use fewer shots or shorter inputs."
        )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # Built on the CPU (explicitly: not wherever torch's default device points); `model_prompts` moves them.
    tokens = torch.full((len(rows), longest), pad_id, dtype=torch.long, device="cpu")
    mask = torch.zeros((len(rows), longest), dtype=torch.long, device="cpu")
    for i, row in enumerate(rows):
        tokens[i, longest - len(row) :] = torch.tensor(row, dtype=torch.long, device="cpu")
        mask[i, longest - len(row) :] = 1
    return tokens, mask


def model_prompts(model, task: Task, **kwargs) -> PromptBatch:
    """`build_prompts` with the model's tokenizer, context length and BOS convention filled in."""
    kwargs.setdefault("n_ctx", model.cfg.n_ctx)
    kwargs.setdefault("bos", default_bos(model))
    return build_prompts(task, model.tokenizer, **kwargs).to(model.W_E.device)


def default_bos(model) -> str | None:
    """The BOS string this toolkit prepends for ``model`` (None: SmolLM2 and tiny models, see models.py)."""
    if not model.cfg.default_prepend_bos or model.tokenizer is None:
        return None
    return model.tokenizer.bos_token
