"""Which θ initialisation works for LTV training? zeros vs ones vs normal(0, 1), same prompts and pools.

    python scripts/ltv_init_study.py [--task builtin:antonym] [--tasks-dir D]

One `TextProblem` is shared, so the prefixes are computed once and only θ's training differs. Prints the
valid-loss curve summary and test accuracy (zero-shot, shuffled) for each init, and writes
results/ltv_init_study.json.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch

from interp import load_model, load_task
from interp.problems import TextProblem
from interp.vectors import LTVConfig, fit_ltv


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    p = argparse.ArgumentParser()
    p.add_argument("--task", default="builtin:antonym")
    p.add_argument("--tasks-dir", default=None)
    p.add_argument("--n-test", type=int, default=100)
    args = p.parse_args()
    model = load_model()
    problem = TextProblem(model, load_task(args.task, args.tasks_dir), shots=10)
    rows = []
    for init in ("zeros", "ones", "normal"):
        vec = fit_ltv(problem, LTVConfig(init=init, n_mean=32, n_train=48, n_valid=24), progress=False)
        t = vec.meta["training"]
        row = {
            "init": init,
            "valid_loss_at_init": t["curve"][0]["valid_loss"],
            "best_valid_loss": t["best_valid_loss"],
            "best_step": t["best_step"],
            "steps_run": t["steps_run"],
            "theta_norm": float(vec.theta.norm()),
            **{f"test_{s}": vec.evaluate(problem, s, n=args.n_test).accuracy for s in ("zero-shot", "shuffled")},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = Path("results/ltv_init_study.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"task": args.task, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
