"""Prompt pairs the project writes for ad-hoc patching: indirect-object identification and factual recall.

Both sets are built for the model's own tokenizer: a pair is kept only if its clean and corrupted prompts
have the same number of tokens (so positions line up for position-wise patching) and the answer and the
wrong answer start with different tokens. Answers are the *first* token of ``" " + word`` (on SmolLM2
every name and city used here is one token).

- **IOI** (Wang et al. 2022): "When Mary and John went to the store, John gave a drink to" -> " Mary";
  the corrupted prompt repeats the other name ("..., Mary gave a drink to"), so the indirect object flips.
  Metric: logit(IO) - logit(S).
- **Factual recall** (Meng et al. 2022): "The Eiffel Tower is located in the city of" -> " Paris"; the
  corrupted prompt names another landmark ("The Colosseum ...", answer " Rome" = the wrong answer).
"""

from __future__ import annotations

import itertools
import random

import torch

from interp.patching.core import PatchingError, PromptPairs, make_pairs
from interp.prompts import default_bos

NAMES = ["Mary", "John", "Sarah", "Tom", "Anna", "David", "Emma", "Paul", "Lisa", "Mark", "Kate", "Peter", "Alice",
         "James", "Laura", "Daniel"]  # fmt: skip
IOI_TEMPLATES = [
    "When {io} and {s} went to the store, {s2} gave a drink to",
    "After {io} and {s} finished lunch, {s2} handed the book to",
    "While {io} and {s} were working at the office, {s2} sent a message to",
    "Then, {io} and {s} had a long argument. Afterwards {s2} said to",
]
FACTS = [
    ("The Eiffel Tower", "Paris"), ("The Colosseum", "Rome"), ("The Brandenburg Gate", "Berlin"),
    ("The Forbidden City", "Beijing"), ("The Space Needle", "Seattle"), ("The Kremlin", "Moscow"),
    ("The Acropolis", "Athens"), ("The Little Mermaid statue", "Copenhagen"), ("The Sydney Opera House", "Sydney"),
    ("The Alhambra", "Granada"), ("The Charles Bridge", "Prague"), ("The Burj Khalifa", "Dubai"),
]  # fmt: skip
FACT_TEMPLATE = "{subject} is located in the city of"


def _length(model, text: str) -> int:
    bos = 1 if default_bos(model) is not None else 0
    return bos + len(model.tokenizer(text, add_special_tokens=False)["input_ids"])


def _first(model, word: str) -> int:
    return model.tokenizer(" " + word, add_special_tokens=False)["input_ids"][0]


def _build(model, candidates, n: int, what: str) -> PromptPairs:
    """The first ``n`` candidates ``(clean, corrupted, answer, wrong)`` that line up for ``model``."""
    if model.tokenizer is None:
        raise PatchingError(f"the {what} set is text: the model needs a tokenizer")
    kept = []
    for clean, corrupted, answer, wrong in candidates:
        if len(kept) == n:
            break
        if _length(model, clean) != _length(model, corrupted):
            continue
        a, w = _first(model, answer), _first(model, wrong)
        if a != w:
            kept.append((clean, corrupted, a, w))
    if not kept:
        raise PatchingError(f"no {what} pair lines up under this model's tokenizer (equal lengths, distinct answers)")
    clean, corrupted, answers, wrong = zip(*kept)
    return make_pairs(model, list(clean), list(corrupted), answer=torch.tensor(answers, device="cpu"), wrong=torch.tensor(wrong, device="cpu"))


def ioi_pairs(model, n: int = 8, seed: int = 0) -> PromptPairs:
    """``n`` indirect-object-identification pairs (templates x name pairs, shuffled by ``seed``); answer =
    the indirect object, wrong = the subject."""
    combos = list(itertools.product(IOI_TEMPLATES, itertools.permutations(NAMES, 2)))
    random.Random(seed).shuffle(combos)
    candidates = (
        (t.format(io=io, s=s, s2=s), t.format(io=io, s=s, s2=io), io, s) for t, (io, s) in combos
    )
    return _build(model, candidates, n, "IOI")


def factual_pairs(model, n: int = 8, seed: int = 0) -> PromptPairs:
    """``n`` factual-recall pairs: a landmark's city (clean) against another landmark's (corrupted)."""
    combos = list(itertools.permutations(FACTS, 2))
    random.Random(seed).shuffle(combos)
    candidates = (
        (FACT_TEMPLATE.format(subject=s1), FACT_TEMPLATE.format(subject=s2), c1, c2) for (s1, c1), (s2, c2) in combos
    )
    return _build(model, candidates, n, "factual-recall")
