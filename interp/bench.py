"""Benchmark: the frozen-prefix engine against full-prompt recompute, same prompts both ways.

    interp bench            # a table
    interp bench --json     # one JSON object: ltv_step_speedup, cie_speedup, engine_peak_mb, full_peak_mb, ...

What is measured (SmolLM2-135M by default, 10-shot prompts of the built-in antonym task, batch 16):

- one LTV training step (forward + backward to θ): engine (one-token run over the frozen prefix) vs the
  full prompt with the same hooks. The engine's prefix is built once per training pool, so it is not
  part of a step (its cost is reported separately as ``prefix_build_s``).
- causal indirect effects of every head over 16 prompts: the engine (prefix once, then all
  (prompt, head) variants as one-token rows; prefix included in the time) vs one full forward of the 16
  prompts per head. The full path is timed on ``full_cie_heads`` heads and scaled linearly to all heads
  (each head is an independent, identical-cost forward), which the output says.
- peak memory of the LTV step on each path, each in a fresh subprocess (peak RSS above the RSS after
  loading the model and building the inputs).

Speed-ups are ratios measured in one run on the same machine; rerun to see the spread.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _setup(model_name: str, batch_size: int = 16, shots: int = 10):
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(int(os.environ.get("INTERP_NUM_THREADS", "1")))
    from interp.models import load_model
    from interp.problems import TextProblem
    from interp.tasks import load_task

    model = load_model(model_name, verbose=False)
    model.requires_grad_(False)
    problem = TextProblem(model, load_task("builtin:antonym"), shots=shots)
    batch = problem.batch("shuffled", "train", batch_size)
    return model, problem, batch


def _ltv_step(model, batch, prefix=None):
    import torch

    from interp.activations import head_activations
    from interp.engine import final_logits
    from interp.interventions import add_vectors

    a_mean = head_activations(model, batch.tokens[:4], batch.attention_mask[:4]).mean_contributions
    theta = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, requires_grad=True)

    def step():
        vectors = torch.einsum("lh,lhm->lm", theta, a_mean)
        hooks = add_vectors(model, vectors)
        if prefix is not None:
            logits = prefix.run(hooks)
        else:
            logits = final_logits(model, batch.tokens, batch.attention_mask, hooks)
        loss = torch.nn.functional.cross_entropy(logits, batch.target_ids)
        loss.backward()
        theta.grad = None

    return step


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _memory_probe(path: str, model_name: str) -> None:
    """Subprocess entry: run one LTV step on ``path`` and print peak RSS above the set-up RSS."""
    from interp.engine import FrozenPrefix

    model, _, batch = _setup(model_name)
    prefix = FrozenPrefix.from_batch(model, batch.tokens, batch.attention_mask) if path == "engine" else None
    step = _ltv_step(model, batch, prefix)
    import gc
    import threading

    gc.collect()
    base = _rss_mb()
    peak = [base]
    done = threading.Event()

    def poll():  # ru_maxrss is a process-lifetime high-water mark (model loading dominates it): sample instead
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.0005)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    step()
    step()
    done.set()
    watcher.join()
    print(json.dumps({"peak_mb": peak[0] - base, "rss_base_mb": base}))


def _probe(path: str, model_name: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", f"from interp.bench import _memory_probe; _memory_probe({path!r}, {model_name!r})"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def run_benchmark(model_name: str = "smollm2-135m", quick: bool = False, full_cie_heads: int = 4) -> dict:
    import torch

    from interp.activations import head_activations
    from interp.engine import FrozenPrefix, final_logits
    from interp.interventions import patch_head
    from interp.vectors.function_vector import causal_indirect_effects

    repeats = 2 if quick else 5
    model, problem, batch = _setup(model_name)
    n_heads = model.cfg.n_layers * model.cfg.n_heads
    t0 = time.perf_counter()
    prefix = FrozenPrefix.from_batch(model, batch.tokens, batch.attention_mask)
    prefix_build_s = time.perf_counter() - t0

    engine_step = _time(_ltv_step(model, batch, prefix), repeats)
    full_step = _time(_ltv_step(model, batch, None), max(1, repeats // 2))

    mean_z = head_activations(model, batch.tokens, batch.attention_mask).mean_z
    problem._prefixes.clear()  # include the prefix build in the engine's CIE time
    t0 = time.perf_counter()
    causal_indirect_effects(problem, mean_z, n=len(batch), progress=False)
    engine_cie = time.perf_counter() - t0
    heads = [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)][:: max(1, n_heads // full_cie_heads)][:full_cie_heads]
    t0 = time.perf_counter()
    with torch.no_grad():
        final_logits(model, batch.tokens, batch.attention_mask)  # the clean baseline run
        for layer, head in heads:
            final_logits(model, batch.tokens, batch.attention_mask, patch_head(model, layer, head, mean_z[layer, head]))
    full_cie_measured = time.perf_counter() - t0
    full_cie = full_cie_measured / (len(heads) + 1) * (n_heads + 1)

    engine_mb, full_mb = _probe("engine", model_name), _probe("full", model_name)
    return {
        "model": model_name,
        "batch": len(batch),
        "prompt_tokens": int(batch.tokens.shape[1]),
        "n_heads": n_heads,
        "threads": torch.get_num_threads(),
        "prefix_build_s": round(prefix_build_s, 3),
        "ltv_step_engine_s": round(engine_step, 4),
        "ltv_step_full_s": round(full_step, 4),
        "ltv_step_speedup": round(full_step / engine_step, 1),
        "cie_engine_s": round(engine_cie, 2),
        "cie_full_s": round(full_cie, 2),
        "cie_full_measured_heads": len(heads),
        "cie_speedup": round(full_cie / engine_cie, 1),
        "engine_peak_mb": round(engine_mb, 1),
        "full_peak_mb": round(full_mb, 1),
    }


def format_table(r: dict) -> str:
    rows = [
        ("LTV step (fwd+bwd, batch %d)" % r["batch"], f"{r['ltv_step_full_s']:.3f} s", f"{r['ltv_step_engine_s']:.4f} s", f"{r['ltv_step_speedup']}x"),
        (f"CIE, all {r['n_heads']} heads x {r['batch']} prompts", f"{r['cie_full_s']:.1f} s*", f"{r['cie_engine_s']:.2f} s", f"{r['cie_speedup']}x"),
        ("peak memory of an LTV step", f"{r['full_peak_mb']:.0f} MB", f"{r['engine_peak_mb']:.0f} MB", ""),
    ]
    out = [f"model {r['model']}, {r['prompt_tokens']}-token prompts, {r['threads']} torch thread(s); prefix build {r['prefix_build_s']:.2f} s (once per pool)",
           f"{'':<40}{'full recompute':>16}{'engine':>12}{'speed-up':>10}"]
    out += [f"{a:<40}{b:>16}{c:>12}{d:>10}" for a, b, c, d in rows]
    out.append(f"* full CIE timed on {r['cie_full_measured_heads']} heads + the clean run, scaled to all heads")
    return "\n".join(out)


def cmd_bench(args) -> int:
    result = run_benchmark(args.model, quick=args.quick)
    print(json.dumps(result) if args.json else format_table(result))
    return 0
