"""The results store of a sweep: the one store (`interp.store.Store`) plus the sweep's tidy table.

    OUT/cells/<key>.json        one record per computed cell (ok, or failed with its error), written atomically
    OUT/artifacts/<fit key>/    fitted vectors (safetensors + meta.json), shared by the cells that use them
    OUT/results.parquet         the tidy table: one row per cell x metric (value, ci_low, ci_high, n + the
                                cell's parameters), rebuilt from cells/ at the end of every run
    OUT/sweep.json              the last run's config, model identity and summary

    df = pd.read_parquet("results/sweeps/NAME/results.parquet")

The Parquet table is a derived, typed, columnar view that pandas (and DuckDB, Polars, Spark) read in one
line, that diffs as one small binary file in git, and that needs no server or lock; a DuckDB database file
would add a single-writer lock and a storage format tied to the DuckDB version for no gain at this size.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from interp.stats import wilson_interval
from interp.store import Store as _CellStore
from interp.sweep.cells import LABELS

COLUMNS = [
    "key", "model", "model_fingerprint", "task", "method", "label", "setting", "seed", "shots", "n_requested",
    "metric", "value", "ci_low", "ci_high", "n",
]  # fmt: skip


class Store(_CellStore):
    """A sweep's store: the one cell store, and the tidy table of its cells."""

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
