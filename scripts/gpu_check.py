#!/usr/bin/env python
"""The GPU check: one rerunnable command for a CUDA machine, one JSON summary on stdout.

    python scripts/gpu_check.py                      # everything below, on cuda, bfloat16
    python scripts/gpu_check.py --shapes smollm2-135m llama-3.2-1b --skip-bench
    python scripts/gpu_check.py --device cpu --shapes smollm2-135m --quick   # plumbing test without a GPU

It runs, in this process, each step through the ``interp`` command line and records its JSON, wall time
and peak GPU memory (``torch.cuda.max_memory_allocated``):

1. ``interp check --families`` in float32 and in bfloat16 (tiny random models of every TL family);
2. ``interp check --model random:<shape> --dtype bfloat16`` for the shapes of SmolLM2-135M, Llama-3.2-1B,
   Gemma-2-2B and Llama-3-8B (seeded random weights: no downloads; 8B needs ~17 GB);
3. ``interp bench --json --model random:<shape>`` on the same shapes (speed-ups of the frozen-prefix
   engine over full recompute at the scale users work at);
4. an LTV and an FV fit on the shipped regression checkpoint ``regression:linear`` on the GPU.

It needs no network and no SmolLM2 wheel: only this repository, PyTorch (CUDA), transformers, einops,
safetensors and the wheels ``pip install -e .`` pulls in (bring them along on an offline machine).
A failing step is recorded with its error and the run continues; the exit status is 1 if any check failed
or any step crashed. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in this check may reach the network

SHAPES = ("smollm2-135m", "llama-3.2-1b", "gemma-2-2b", "llama-3-8b")


def _step(name: str, argv: list[str], device: str) -> dict:
    """Run ``interp <argv>`` in-process; its stdout must be one JSON document."""
    import torch

    from interp.cli import main

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    print(f"[gpu_check] {name}: interp {' '.join(argv)}", file=sys.stderr, flush=True)
    out = io.StringIO()
    t0 = time.perf_counter()
    record: dict = {"argv": argv}
    try:
        with contextlib.redirect_stdout(out):
            record["exit"] = main(argv)
        record["result"] = json.loads(out.getvalue())
    except Exception as err:  # recorded, the run goes on
        record["exit"] = -1
        record["error"] = f"{type(err).__name__}: {err}"
        record["traceback"] = traceback.format_exc()[-2000:]
        record["stdout"] = out.getvalue()[-1000:]
    record["wall_s"] = round(time.perf_counter() - t0, 2)
    if cuda:
        record["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(f"[gpu_check] {name}: exit {record['exit']} in {record['wall_s']} s", file=sys.stderr, flush=True)
    return record


def _gc() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), help=f"random shapes (default: {SHAPES})")
    parser.add_argument("--skip-bench", action="store_true")
    parser.add_argument("--quick", action="store_true", help="interp bench --quick")
    parser.add_argument("--out", default=None, help="also write the summary to this file")
    args = parser.parse_args(argv)

    import torch

    summary: dict = {
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "dtype": args.dtype,
        "steps": {},
    }
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        summary["error"] = "no CUDA GPU visible to torch; run with --device cpu for a plumbing test"
        print(json.dumps(summary))
        return 1
    steps = summary["steps"]
    dev = ["--device", args.device]
    steps["families_float32"] = _step("families float32", ["check", "--families", "--json", *dev, "--dtype", "float32"],
                                      args.device)  # fmt: skip
    steps["families_" + args.dtype] = _step(f"families {args.dtype}",
                                            ["check", "--families", "--json", *dev, "--dtype", args.dtype], args.device)  # fmt: skip
    for shape in args.shapes:
        model = f"random:{shape}"
        steps[f"check_{shape}"] = _step(f"check {model}", ["check", "--model", model, *dev, "--dtype", args.dtype,
                                                            "--json"], args.device)  # fmt: skip
        _gc()
        if not args.skip_bench:
            bench = ["bench", "--model", model, "--json"] + (["--quick"] if args.quick else [])
            steps[f"bench_{shape}"] = _step(f"bench {model}", bench, args.device)
            _gc()
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("ltv", "fv"):
            steps[f"regression_{method}"] = _step(
                f"fit {method} regression:linear",
                ["fit", "--method", method, "--model", "regression:linear", "--out", f"{tmp}/{method}", *dev, "--json"]
                + (["--steps", "100"] if method == "ltv" else []),
                args.device,
            )

    def failed(name: str, rec: dict) -> bool:
        result = rec.get("result") or {}
        return rec.get("exit") != 0 or bool(result.get("failed"))

    summary["failed_steps"] = [name for name, rec in steps.items() if failed(name, rec)]
    summary["speedups"] = {
        name.removeprefix("bench_"): {k: v for k, v in (rec.get("result") or {}).items() if "speedup" in k}
        for name, rec in steps.items()
        if name.startswith("bench_")
    }
    text = json.dumps(summary)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 1 if summary["failed_steps"] else 0


if __name__ == "__main__":
    sys.exit(main())
