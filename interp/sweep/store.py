"""The results store of a sweep: one folder, one tidy table.

    OUT/cells/<key>.json        one record per computed cell (ok, or failed with its error), written atomically
    OUT/artifacts/<fit key>/    fitted vectors (safetensors + meta.json), shared by the cells that use them
    OUT/results.parquet         the tidy table: one row per cell x metric (value, ci_low, ci_high, n + the
                                cell's parameters), rebuilt from cells/ at the end of every run
    OUT/sweep.json              the last run's config, model identity and summary

    df = pd.read_parquet("results/sweeps/NAME/results.parquet")

Why per-cell JSON plus Parquet (and not DuckDB): a cell file is the unit of atomic writing (temp file +
``os.replace``), so a kill never leaves a half-written cell, concurrent workers never write the same file,
and resuming is "which keys exist". The Parquet table is a derived, typed, columnar view that pandas (and
DuckDB, Polars, Spark) read in one line, that diffs as one small binary file in git, and that needs no
server or lock; a DuckDB database file would add a single-writer lock and a storage format tied to the
DuckDB version for no gain at this size (thousands of rows).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from interp.evaluation import wilson_interval
from interp.sweep.cells import LABELS

COLUMNS = [
    "key", "model", "model_fingerprint", "task", "method", "label", "setting", "seed", "shots", "n_requested",
    "metric", "value", "ci_low", "ci_high", "n",
]  # fmt: skip


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` so that readers see the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Store:
    def __init__(self, out: str | Path):
        self.root = Path(out)
        self.cells_dir = self.root / "cells"
        self.artifacts = self.root / "artifacts"

    def write(self, record: dict, context: dict) -> None:
        write_json_atomic(self.cells_dir / f"{record['key']}.json", {**context, **record})

    def records(self) -> dict[str, dict]:
        """Every readable cell record by key (an unreadable file counts as missing: it is recomputed)."""
        out = {}
        if self.cells_dir.is_dir():
            for f in self.cells_dir.glob("*.json"):
                try:
                    rec = json.loads(f.read_text())
                except (json.JSONDecodeError, OSError):
                    continue
                out[rec.get("key", f.stem)] = rec
        return out

    def finished_among(self, keys: list[str]) -> dict[str, dict]:
        """The ok records of ``keys`` (reads only those files)."""
        out = {}
        for k in keys:
            try:
                rec = json.loads((self.cells_dir / f"{k}.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError, OSError):
                continue
            if rec.get("status") == "ok":
                out[k] = rec
        return out

    def finished(self) -> set[str]:
        return {k for k, r in self.records().items() if r.get("status") == "ok"}

    def table(self, records: dict[str, dict] | None = None) -> pd.DataFrame:
        """The tidy table of every ok cell: one row per cell x metric, plus Todd's filtered accuracy (items
        the clean-ICL cell of the same task, seed and prompt settings answered right)."""
        records = self.records() if records is None else records
        ok = [r for r in records.values() if r.get("status") == "ok"]
        clean = {(r["task"], r["seed"], r.get("model_fingerprint"), r.get("shots"), r.get("n_requested")): r["correct"]
                 for r in ok if r["method"] == "icl"}  # fmt: skip
        rows = []
        for r in sorted(ok, key=lambda r: (r["seed"], r["task"], r["method"], r["setting"])):
            base = {c: r.get(c) for c in COLUMNS[:10]}
            base["label"] = LABELS.get(r["method"], r["method"])
            for metric, m in r["metrics"].items():
                rows.append({**base, "metric": metric, **{k: m[k] for k in ("value", "ci_low", "ci_high", "n")}})
            mask = clean.get((r["task"], r["seed"], r.get("model_fingerprint"), r.get("shots"), r.get("n_requested")))
            if mask is not None and len(mask) == len(r["correct"]):
                kept = [c for c, m in zip(r["correct"], mask) if m]
                low, high = wilson_interval(sum(kept), len(kept))
                value = sum(kept) / len(kept) if kept else float("nan")
                rows.append({**base, "metric": "accuracy_filtered", "value": value, "ci_low": low, "ci_high": high,
                             "n": len(kept)})  # fmt: skip
        df = pd.DataFrame(rows, columns=COLUMNS)
        return df.astype({"seed": "int64", "n": "int64"}) if len(df) else df

    def write_table(self, records: dict[str, dict] | None = None) -> pd.DataFrame:
        df = self.table(records)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".results.", suffix=".parquet.tmp")
        os.close(fd)
        try:
            df.to_parquet(tmp, index=False)
            os.replace(tmp, self.root / "results.parquet")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return df

    def failures(self) -> list[dict]:
        return [r for r in self.records().values() if r.get("status") == "failed"]


def read_results(out: str | Path) -> pd.DataFrame:
    """The store's tidy table (rebuilt from the cell records if the Parquet file is missing or stale)."""
    store = Store(out)
    path = store.root / "results.parquet"
    if not store.cells_dir.is_dir():
        raise FileNotFoundError(f"{store.root} is not a sweep store (no cells/ folder); run `interp sweep --out {store.root}`")
    newest = max((f.stat().st_mtime for f in store.cells_dir.glob("*.json")), default=0.0)
    if path.exists() and path.stat().st_mtime >= newest:
        return pd.read_parquet(path)
    return store.table()
