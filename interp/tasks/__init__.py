"""Text ICL tasks in the function-vectors JSON format, with deterministic train / valid / test splits.

A task file is a JSON list of ``{"input": str, "output": str}`` pairs (Todd et al. 2024's format).
Where tasks come from, in order:

1. the ``root`` argument of `load_task` / `list_tasks`;
2. the environment variable ``INTERP_TASKS_DIR`` (CI and tests point it at ``../shared/icl_tasks``);
3. the project's own built-in task set (``interp/tasks/builtin``), so the defaults need no external data.

A directory is searched at its top level and in ``abstractive/`` and ``extractive/`` (the suite's layout).
A name with a ``builtin:`` prefix always means the built-in set.

Splits are made over *distinct inputs* (a word that appears twice with two answers never straddles two
splits), shuffled with a seeded generator, so the same ``(task, seed, fractions)`` always gives the same
disjoint splits, recorded in the `Task` object. Demonstrations come from ``train``; LTV early stopping and
layer sweeps use ``valid``; every reported number uses ``test``.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

BUILTIN_DIR = Path(__file__).parent / "builtin"
TASKS_ENV_VAR = "INTERP_TASKS_DIR"
SUBDIRS = ("", "abstractive", "extractive")
DEFAULT_SPLIT_FRACTIONS = (0.6, 0.1, 0.3)


class TaskError(ValueError):
    """A task could not be found or read; the message names the file, entry and fix."""


@dataclass(frozen=True)
class Pair:
    input: str
    output: str


@dataclass
class Task:
    """One ICL task: its pairs and seeded, disjoint train / valid / test splits (indices into ``pairs``)."""

    name: str
    pairs: list[Pair]
    source: str
    seed: int = 0
    split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS
    splits: dict[str, list[int]] = field(default_factory=dict)
    n_dropped: int = 0  # entries of the file skipped for an empty input or output

    def __post_init__(self) -> None:
        if not self.splits:
            self.splits = make_splits(self.pairs, self.seed, self.split_fractions)

    def split(self, name: str) -> list[Pair]:
        if name not in self.splits:
            raise TaskError(f"unknown split {name!r}; choose one of {sorted(self.splits)}")
        return [self.pairs[i] for i in self.splits[name]]

    @property
    def train(self) -> list[Pair]:
        return self.split("train")

    @property
    def valid(self) -> list[Pair]:
        return self.split("valid")

    @property
    def test(self) -> list[Pair]:
        return self.split("test")

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "n_pairs": len(self.pairs),
            "seed": self.seed,
            "split_fractions": list(self.split_fractions),
            "split_sizes": {k: len(v) for k, v in self.splits.items()},
            "n_dropped": self.n_dropped,
        }

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return f"Task({self.name!r}, {len(self.pairs)} pairs, {sizes}, seed={self.seed})"


def make_splits(
    pairs: list[Pair], seed: int, fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS
) -> dict[str, list[int]]:
    """Disjoint train / valid / test index lists over distinct inputs (seeded, deterministic)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise TaskError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    by_input: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        by_input.setdefault(pair.input, []).append(i)
    inputs = sorted(by_input)
    random.Random(seed).shuffle(inputs)
    n = len(inputs)
    n_train = round(fractions[0] * n)
    n_valid = round(fractions[1] * n)
    groups = {
        "train": inputs[:n_train],
        "valid": inputs[n_train : n_train + n_valid],
        "test": inputs[n_train + n_valid :],
    }
    return {name: sorted(i for x in group for i in by_input[x]) for name, group in groups.items()}


def resolve_tasks_dir(root: str | os.PathLike | None = None) -> Path:
    """The directory tasks are read from: ``root``, else ``$INTERP_TASKS_DIR``, else the built-in set."""
    chosen = root if root is not None else os.environ.get(TASKS_ENV_VAR) or None
    if chosen is None:
        return BUILTIN_DIR
    path = Path(chosen).expanduser()
    if not path.is_dir():
        origin = "the tasks directory argument" if root is not None else f"${TASKS_ENV_VAR}"
        raise TaskError(
            f"tasks directory {path} (from {origin}) does not exist. Point it at a folder of "
            f"function-vectors JSON files (e.g. ../shared/icl_tasks), or unset it to use the built-in tasks."
        )
    return path


def list_tasks(root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Map of task name -> JSON file for every task found under the tasks directory."""
    base = resolve_tasks_dir(root)
    found: dict[str, Path] = {}
    for sub in SUBDIRS:
        folder = base / sub if sub else base
        if folder.is_dir():
            for file in sorted(folder.glob("*.json")):
                found.setdefault(file.stem, file)
    return found


def _read_pairs(path: Path) -> tuple[list[Pair], int]:
    """(pairs, number of entries dropped because their output is empty)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TaskError(f"{path} is not valid JSON ({err}). Fix or remove the file.") from None
    if not isinstance(raw, list):
        raise TaskError(f"{path} must hold a JSON list of {{'input', 'output'}} objects, got {type(raw).__name__}")
    if not raw:
        raise TaskError(f"{path} holds no pairs; a task needs at least a few dozen input/output pairs.")
    pairs, dropped = [], 0
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("input"), str) or not isinstance(
            entry.get("output"), str
        ):
            raise TaskError(
                f"{path}, entry {i}: expected an object with string 'input' and 'output', got {str(entry)[:120]}"
            )
        if not entry["output"].strip() or not entry["input"].strip():
            dropped += 1  # the published suite has a few of these; nothing to score, so count and skip
            continue
        pairs.append(Pair(entry["input"].strip(), entry["output"].strip()))
    if not pairs:
        raise TaskError(f"{path}: every entry has an empty input or output; nothing to learn from.")
    return pairs, dropped


def load_task(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
) -> Task:
    """Load a task by name (or a path to a JSON file) with seeded train / valid / test splits."""
    if name.startswith("builtin:"):
        name, root = name.split(":", 1)[1], BUILTIN_DIR
    as_path = Path(name)
    if as_path.suffix == ".json" and as_path.exists():
        path = as_path
        name = as_path.stem
    else:
        available = list_tasks(root)
        if name not in available:
            where = resolve_tasks_dir(root)
            raise TaskError(
                f"unknown task {name!r}: not found in {where} (searched {', '.join(s or '.' for s in SUBDIRS)}). "
                f"Available: {', '.join(sorted(available)) or '(none)'}. Pass --tasks-dir / set {TASKS_ENV_VAR}."
            )
        path = available[name]
    pairs, dropped = _read_pairs(path)
    return Task(
        name=name, pairs=pairs, source=str(path), seed=seed, split_fractions=split_fractions, n_dropped=dropped
    )


__all__ = ["Pair", "Task", "TaskError", "load_task", "list_tasks", "make_splits", "resolve_tasks_dir"]
