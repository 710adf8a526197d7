"""Sweeps: every experiment as content-addressed, resumable cells in one results store, run on Ray.

    from interp.sweep import SweepConfig, run_sweep, read_results
    summary = run_sweep(SweepConfig(tasks=("antonym",), methods=("none", "icl", "ltv"), out="results/sweeps/x"))
    df = read_results("results/sweeps/x")          # tidy: one row per cell x metric

- `config`: `SweepConfig`, the grid (model x tasks x methods x settings x seeds + method options) and how to
  run it; the ``interp sweep`` flags and ``--config sweep.toml`` mirror it;
- `cells`: what a group of cells computes (the one module that calls the fitting / evaluation API);
- `keys`: content-addressed cell keys and the plan (cells grouped per (task, seed));
- `store`: atomic per-cell records, fitted-vector artifacts, the tidy Parquet table;
- `runner`: Ray actors (one model each) serving groups of cells, or in-process with ``workers=0``;
- `report`: the comparison table (Markdown + figure) from a store, means across seeds and their spread.
"""

from interp.sweep.config import METHODS, SweepConfig, SweepConfigError
from interp.sweep.runner import run_sweep
from interp.sweep.store import Store, read_results

__all__ = ["METHODS", "Store", "SweepConfig", "SweepConfigError", "read_results", "run_sweep"]
