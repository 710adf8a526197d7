"""The results store: every computed thing is a content-addressed *cell*, written once, read back forever.

A cell's key hashes everything its result depends on (`digest` of a JSON spec: the model's fingerprint, the
task file's content, the method and its config, the code version, the seeds, ...). So

- a finished cell is found again by any later run that asks for the same thing, whichever study or verb asks
  (a sweep, a figure stage, a science unit, a regression experiment): rerunning computes nothing;
- changing any ingredient (a task file's bytes, a method option, a ``version`` bump) gives a new key: the cell
  is computed afresh and the old one stays in the store under its own key;
- execution details (workers, device placement of the same model, output folder) are not in the key.

Layout of a store folder::

    ROOT/cells/<key>.json        one record per cell, written atomically (temp file + ``os.replace``)
    ROOT/artifacts/<key>/        tensors of a cell (fitted vectors: safetensors + JSON), when it has any;
                                 ``artifacts_root`` can put them elsewhere (a git-ignored cache)

Why per-cell JSON files (and not one database file): a cell file is the unit of atomic writing, so a kill
never leaves a half-written cell, concurrent workers never write the same file, resuming is "which keys
exist", and git diffs a new result as one new small file.

Two kinds of record share the layout. `Store.get_or_compute` writes ``{"key", "kind", "spec", "status": "ok",
"wall_s", "result"}`` — the generic cell any study uses; a sweep (`interp.sweep`) writes flat records with its
own columns (``task``, ``method``, ``metrics``, ...) through `Store.write`. Both are read by `Store.records`.

    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.get_or_compute({"x": 1}, lambda folder: {"y": 2}, kind="demo")
    {'y': 2}
    >>> store.get_or_compute({"x": 1}, lambda folder: 1 / 0, kind="demo")   # found: not recomputed
    {'y': 2}
    >>> store.computed, store.reused
    (1, 1)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


class MissingCell(LookupError):
    """A read-only store was asked for a cell that has not been computed yet."""


# ------------------------------------------------------------------------------------------------ keys
def _json_default(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _json_default_or_str(obj):
    try:
        return _json_default(obj)
    except TypeError:
        return str(obj)  # a record's context may hold paths, dtypes, ...: readable, not lost


def to_jsonable(obj: Any) -> Any:
    """Round-trip through JSON: tensors and numpy arrays become lists, tuples lists, NaN stays NaN."""
    return json.loads(json.dumps(obj, default=_json_default))


def digest(spec: Any, length: int = 20) -> str:
    """The content address of a JSON-able spec: sha256 of its canonical JSON (keys sorted, no spaces)."""
    blob = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_hash(path: str | Path) -> str:
    """The content hash of a file (a task's JSON): its bytes, not its name or location."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` so that readers see the old file or the whole new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, default=_json_default_or_str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_tensors(folder: Path, name: str, tensors: dict[str, torch.Tensor]) -> Path:
    """``<folder>/<name>.safetensors`` (float32, on the CPU)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    save_file({k: v.detach().contiguous().cpu().float() for k, v in tensors.items()}, str(path))
    return path


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


# ------------------------------------------------------------------------------------------------ the store
class Store:
    """A folder of content-addressed cells (see the module docstring).

    Args:
        root: the store folder (``cells/`` and, by default, ``artifacts/`` inside it).
        artifacts_root: where cells' tensors go instead (e.g. a git-ignored cache beside committed results).
        force: recompute and overwrite every cell `get_or_compute` is asked for.
        read_only: a missing cell raises `MissingCell` instead of being computed (summaries, figures).
        log: called with one line per computed cell (progress goes to stderr in the CLI).
    """

    def __init__(
        self,
        root: str | Path,
        artifacts_root: str | Path | None = None,
        *,
        force: bool = False,
        read_only: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.cells_dir = self.root / "cells"
        self.artifacts = Path(artifacts_root) if artifacts_root is not None else self.root / "artifacts"
        self.force, self.read_only = force, read_only
        self.log = log or (lambda msg: None)
        self.computed = 0
        self.reused = 0
        #: seconds each cell took when it was computed (read back from its record on a hit), by key
        self.compute_s: dict[str, float] = {}
        #: the keys asked for through `get_or_compute`, in order
        self.keys: list[str] = []
        #: where a computed cell ran (e.g. ``{"device": "cuda:0", "dtype": "torch.bfloat16"}``), written beside
        #: its result but never part of its key: called only when a cell is computed (it may load a model)
        self.provenance: Callable[[], dict] | None = None

    # -- one cell
    def key(self, spec: dict) -> str:
        return digest(spec)

    def path(self, key: str) -> Path:
        return self.cells_dir / f"{key}.json"

    def folder(self, key: str) -> Path:
        """The artifacts folder of cell ``key`` (not created)."""
        return self.artifacts / key

    def folder_of(self, spec: dict) -> Path:
        """The artifacts folder of the cell of ``spec``."""
        return self.folder(self.key(to_jsonable(spec)))

    def read(self, key: str) -> dict | None:
        """The record of ``key``, or None (missing, or unreadable: then it is recomputed)."""
        try:
            return json.loads(self.path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return None

    def write(self, record: dict, context: dict | None = None) -> None:
        """Store a flat record (it carries its own ``key``), merged over ``context``."""
        write_json_atomic(self.path(record["key"]), {**(context or {}), **record})

    def get_or_compute(
        self,
        spec: dict,
        compute: Callable[[Path], Any],
        *,
        kind: str = "",
        needs_artifacts: bool = False,
        label: str = "",
    ) -> Any:
        """The stored result of ``spec``, or ``compute(folder)`` stored atomically.

        ``folder`` is the cell's artifacts folder, for tensors a later cell loads (a fitted vector). With
        ``needs_artifacts`` a stored result whose folder is gone (a fresh checkout that has only the committed
        JSON) is recomputed rather than returned without its tensors.
        """
        spec = to_jsonable(spec)
        key = self.key(spec)
        self.keys.append(key)
        record = None if self.force else self.read(key)
        if record is not None and record.get("spec") != spec:
            record = None  # a hash collision or a hand-edited file: never serve another spec's result
        have_artifacts = not needs_artifacts or (self.folder(key) / "meta.json").exists()
        if record is not None and (have_artifacts or self.read_only):
            self.reused += 1
            self.compute_s[key] = float(record.get("wall_s", math.nan))
            return record["result"]
        if self.read_only:
            raise MissingCell(f"{kind or 'cell'} {label or key} has not been computed (store {self.root})")
        folder = self.folder(key)
        # what an interrupted computation left in the folder is kept: ``compute`` may resume from it (a saved
        # vector whose result was lost is scored, not refitted) and overwrites what it cannot use
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        result = to_jsonable(compute(folder))
        wall = round(time.perf_counter() - t0, 1)
        self.compute_s[key] = wall
        where = {"provenance": to_jsonable(self.provenance())} if self.provenance is not None else {}
        write_json_atomic(self.path(key), {"key": key, "kind": kind, "spec": spec, "status": "ok", "wall_s": wall,
                                           **where, "result": result})  # fmt: skip
        self.computed += 1
        self.log(f"[{kind or 'cell'}] {label or key} done in {wall:.0f} s")
        return result

    # -- every cell
    def records(self, kind: str | None = None) -> dict[str, dict]:
        """Every readable record by key (``kind``: only generic cells of that kind)."""
        out = {}
        if self.cells_dir.is_dir():
            for f in sorted(self.cells_dir.glob("*.json")):
                try:
                    rec = json.loads(f.read_text())
                except (json.JSONDecodeError, OSError):
                    continue
                if kind is None or rec.get("kind") == kind:
                    out[rec.get("key", f.stem)] = rec
        return out

    def finished_among(self, keys: list[str]) -> dict[str, dict]:
        """The ok records of ``keys`` (reads only those files)."""
        out = {}
        for k in keys:
            rec = self.read(k)
            if rec is not None and rec.get("status") == "ok":
                out[k] = rec
        return out

    def finished(self) -> set[str]:
        return {k for k, r in self.records().items() if r.get("status") == "ok"}

    def failures(self) -> list[dict]:
        return [r for r in self.records().values() if r.get("status") == "failed"]
