"""Per-cell cost of a full task (LTV + FV + TV fits and their evaluations), old engine path vs new.

    python scripts/task_cost.py                       # both paths, one subprocess each, back to back
    python scripts/task_cost.py --json out.json       # also write the numbers
    python scripts/task_cost.py --ltv-steps 60        # LTV steps per fit (default 60; the library's is 300)

One *cell* = one task (builtin:antonym, 10-shot, SmolLM2-135M): fit an LTV, an FV (CIE of every head +
layer sweep) and a TV (layer sweep), then evaluate each on the zero-shot and shuffled test prompts. The
same cell runs twice, each in a fresh process: with shared-prefix attention on, then with
``INTERP_SHARED_PREFIX=0`` (TransformerLens's per-row cache: the engine before this change). Each process reports wall
seconds per stage; the ratio of the two totals is the speed-up of a cell. The machine may be shared:
read ratios, and the load average printed beside each run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def run_cell(ltv_steps: int, n_eval: int) -> dict:
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(int(os.environ.get("INTERP_NUM_THREADS", "1")))
    from interp.engine import shared_prefix_enabled
    from interp.models import load_model
    from interp.problems import TextProblem
    from interp.tasks import load_task
    from interp.vectors import FVConfig, LTVConfig, TVConfig, fit

    model = load_model("smollm2-135m", verbose=False)
    problem = TextProblem(model, load_task("builtin:antonym"), shots=10)
    configs = {
        "ltv": LTVConfig(steps=ltv_steps, eval_every=20, patience=100),
        "fv": FVConfig(),
        "tv": TVConfig(),
    }
    stages, load = {}, [round(os.getloadavg()[0], 2)]
    t_all = time.perf_counter()
    for method, cfg in configs.items():
        t0 = time.perf_counter()
        vec = fit(method, problem, cfg, progress=False)
        stages[f"{method}_fit_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        scores = {s: vec.evaluate(problem, s, n=n_eval).accuracy for s in problem.corruptions}
        stages[f"{method}_eval_s"] = round(time.perf_counter() - t0, 1)
        stages[f"{method}_accuracy"] = {s: round(a, 3) for s, a in scores.items()}
        print(f"  {method}: {json.dumps({k: v for k, v in stages.items() if k.startswith(method)})}",
              file=sys.stderr, flush=True)  # fmt: skip
    load.append(round(os.getloadavg()[0], 2))
    return {
        "shared_prefix": shared_prefix_enabled(model),
        "total_s": round(time.perf_counter() - t_all, 1),
        **stages,
        "load_avg": load,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ltv-steps", type=int, default=60)
    parser.add_argument("--n-eval", type=int, default=100)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--one", choices=["0", "1"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_cell(args.ltv_steps, args.n_eval)))
        return 0
    results = {}
    for label, flag in (("after", "1"), ("before", "0")):
        env = {**os.environ, "INTERP_SHARED_PREFIX": flag}
        cmd = [sys.executable, __file__, "--one", flag, "--ltv-steps", str(args.ltv_steps), "--n-eval", str(args.n_eval)]
        print(f"{label} (INTERP_SHARED_PREFIX={flag}):", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
        results[label] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{label}: {json.dumps(results[label])}", file=sys.stderr, flush=True)
    results["cell_speedup"] = round(results["before"]["total_s"] / results["after"]["total_s"], 2)
    print(json.dumps(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
