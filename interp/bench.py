"""Benchmark: the frozen-prefix engine against full-prompt recompute, and against its FLOP-count ideal.

    interp bench            # a table
    interp bench --json     # one JSON object: ltv_step_speedup, cie_speedup, engine_peak_mb, full_peak_mb, ...
    interp bench --quick    # batch 16 only (10-shot and 30-shot), fewer repeats

What is measured (SmolLM2-135M by default, prompts of the built-in antonym task with shuffled labels), in
a grid of prompt lengths (10-shot and 30-shot) and batch sizes (16 and 64 prompts):

- one LTV training step (forward + backward to θ): engine (one-token run over the frozen prefix) vs the
  full prompts with the same hooks. The engine's prefix is built once per training pool, so it is not
  part of a step (its cost is reported separately as ``prefix_build_s``).
- causal indirect effects of every head over the batch's prompts: the engine (prefix build included,
  then every (prompt, head) variant as one-token rows) vs one full forward of the prompts per head.
- ``*_ideal_speedup``: the same ratio counted in FLOPs (matmul multiply-adds x 2: projections, MLP,
  attention over the keys each query sees, unembedding of the final position), where the engine does
  only what is necessary: a head patch at layer l runs blocks l..L-1 for one token. ``*_achieved``
  is the measured speed-up as a fraction of that ideal.
- ``ltv_step_floor_s``: the least time an engine LTV step can take on *this* machine: a 16-row step reads every
  weight matrix (and the prompts' prefix keys / values) once forward and once backward, so it is bound by
  memory bandwidth, not FLOPs (``roofline``:
  the measured streaming bandwidth and GEMM throughput); ``ltv_step_roofline_speedup`` is the full step over
  that floor (the best speed-up this machine allows) and ``ltv_step_roofline_achieved`` the floor over the
  engine's measured step.
- peak memory of an LTV step on each path, each in a fresh subprocess (peak RSS above the RSS once the
  model, the inputs and the engine's prefix exist): a batch of 16 drawn from a 64-prompt training pool
  (as `fit_ltv` trains), against the full recompute of the same 16 prompts.

Ad-hoc patching (`interp.patching`), against TransformerLens's own ``transformer_lens.patching`` on the same
left-padded batch of prompt pairs (``interp bench --only patching`` runs just this part):

- ``patch_heads_final_speedup``: every head's ``hook_z`` at the final position (10-shot antonym pairs, clean
  vs shuffled labels): `interp.patching.patch` end to end (clean run, corrupted prefix, every head a
  one-token row from its layer) vs ``get_act_patch_attn_head_out_by_pos`` restricted to the final position
  (``index_df``: one full forward per head, logits at every position, as TransformerLens computes them);
- ``patch_resid_all_pos_speedup``: ``resid_pre`` at every (layer, position) of IOI pairs, each patch
  re-running positions p..T-1 from its layer over the frozen earlier keys / values, vs
  ``get_act_patch_resid_pre``;
- each with ``*_ideal_speedup``, the same ratio in FLOPs (TransformerLens's forwards as it runs them,
  against the work the engine cannot avoid: a patch at (l, p) runs positions p..T-1 through blocks
  l..L-1 and unembeds the final position), and ``*_achieved`` = measured / ideal.

The full paths are expensive, so they are timed on part of the work and scaled linearly, which the
output states: a full CIE runs one independent, identical-cost forward per head (timed on
``full_cie_heads`` heads + the clean run), and both full paths cost the same per prompt (timed on at most
``full_tokens`` prompt tokens' worth of prompts; prompt ``i`` is the same in every batch size). The
headline cell (10-shot, batch 16) times the full LTV step on all 16 prompts.

Speed-ups are ratios measured in one run on the same machine; ``load_avg`` records the machine's load
(1-minute average) at the start and end of the run. Rerun to see the spread.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

HEADLINE = (10, 16)  # (shots, batch) of the top-level keys


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _load_model(model_name: str):
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(int(os.environ.get("INTERP_NUM_THREADS", "1")))
    from interp.models import load_model

    model = load_model(model_name, verbose=False)
    model.requires_grad_(False)
    return model


def _problem(model, shots: int):
    from interp.problems import TextProblem
    from interp.tasks import load_task

    return TextProblem(model, load_task("builtin:antonym"), shots=shots)


def _setup(model_name: str, batch_size: int = 16, shots: int = 10):
    model = _load_model(model_name)
    problem = _problem(model, shots)
    return model, problem, problem.batch("shuffled", "train", batch_size)


def _ltv_step(model, batch, prefix=None, rows=None):
    """One LTV step (θ -> per-layer vectors -> loss -> backward) on the engine (``prefix``; ``rows`` picks
    a minibatch from it) or on the full prompts of ``batch``."""
    import torch

    from interp.activations import head_activations
    from interp.engine import final_logits
    from interp.interventions import add_vectors

    a_mean = head_activations(model, batch.tokens[:4], batch.attention_mask[:4]).mean_contributions
    theta = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, requires_grad=True)
    targets = batch.target_ids if rows is None else batch.target_ids[rows]

    def step():
        vectors = torch.einsum("lh,lhm->lm", theta, a_mean)
        hooks = add_vectors(model, vectors)
        if prefix is not None:
            logits = (prefix if rows is None else prefix.select(rows)).run(hooks)
        else:
            logits = final_logits(model, batch.tokens, batch.attention_mask, hooks)
        loss = torch.nn.functional.cross_entropy(logits, targets)
        loss.backward()
        theta.grad = None

    return step


def _time(fn, repeats: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ------------------------------------------------------------------------------------------------
# FLOP counts (the ideal)
# ------------------------------------------------------------------------------------------------


def _flops(cfg):
    """FLOP counters for ``cfg`` (2 x multiply-adds of the matmuls; elementwise work is not counted)."""
    d, h, dh = cfg.d_model, cfg.n_heads, cfg.d_head
    kv = cfg.n_key_value_heads or h
    mlp = (3 if cfg.gated_mlp else 2) * d * cfg.d_mlp
    linear = 2 * (d * h * dh + 2 * d * kv * dh + h * dh * d + mlp)  # per token and layer
    attend = 2 * 2 * h * dh  # per (query, key) pair and layer: scores + weighted values
    unembed = 2 * d * cfg.d_vocab

    def prompt(tokens: int, layers: int) -> float:
        """A causal forward of ``tokens`` positions through ``layers`` blocks (no unembedding)."""
        return layers * (tokens * linear + attend * tokens * (tokens + 1) / 2)

    def final_token(keys: int, layers: int) -> float:
        """One final-position row through ``layers`` blocks, attending to ``keys`` keys."""
        return layers * (linear + attend * keys)

    return prompt, final_token, unembed


def ideal_speedups(cfg, tokens: int, batch: int) -> dict:
    """FLOP-count ideal speed-ups of the two benchmarks for ``batch`` prompts of ``tokens`` tokens."""
    prompt, final_token, unembed = _flops(cfg)
    L, H = cfg.n_layers, cfg.n_heads
    # LTV step: forward + backward (input gradients only: ~1x the forward's linear FLOPs; the full path's
    # attention backward also needs every position's key/value gradients: 2x its forward)
    full_fwd = prompt(tokens, L) + unembed
    full_attn = L * 2 * 2 * H * cfg.d_head * tokens * (tokens + 1) / 2
    full_step = batch * (2 * full_fwd + full_attn)
    engine_step = batch * 2 * (final_token(tokens, L) + unembed)
    # CIE: one full forward per head + the clean run, against the prefix once, the final token's clean
    # residuals once, and for each (prompt, head at layer l) blocks l..L-1 + the unembedding
    full_cie = batch * (L * H + 1) * (prompt(tokens, L) + unembed)
    engine_cie = batch * (
        prompt(tokens - 1, L)
        + final_token(tokens, L)
        + unembed
        + H * sum(final_token(tokens, L - layer) + unembed for layer in range(L))
    )
    return {"ltv_step_ideal_speedup": full_step / engine_step, "cie_ideal_speedup": full_cie / engine_cie}


# ------------------------------------------------------------------------------------------------
# The machine's roofline: a 16-row step is bandwidth-bound, the full recompute compute-bound
# ------------------------------------------------------------------------------------------------


def machine_roofline(model, repeats: int = 3) -> dict:
    """This machine's streaming bandwidth (GB/s: bytes read + written by a copy of a tensor far larger than
    any cache) and matmul throughput (GFLOP/s on a projection-sized GEMM of a full batch), in the model's dtype,
    on the bench's torch threads."""
    import torch

    dtype, device = model.cfg.dtype, model.cfg.device
    big = torch.ones(64 * 2**20, dtype=torch.float32, device=device).to(dtype)  # 256 MB in float32
    copy_s = _time(lambda: big.clone(), repeats)
    d, f = model.cfg.d_model, model.cfg.d_mlp or 4 * model.cfg.d_model
    x = torch.ones(1568, d, dtype=dtype, device=device)
    w = torch.ones(d, f, dtype=dtype, device=device) / d
    gemm_s = _time(lambda: x @ w, repeats)
    return {"bandwidth_gbs": 2 * big.numel() * big.element_size() / copy_s / 1e9,
            "gemm_gflops": 2 * x.shape[0] * d * f / gemm_s / 1e9}  # fmt: skip


def ltv_step_floor_s(model, tokens: int, batch: int, roofline: dict) -> float:
    """The least time an engine LTV step can take here: every weight matrix the final token passes through, and
    every prompt's stored prefix keys and values, are read once forward and once backward (input gradients),
    unless the step's FLOPs take longer."""
    cfg = model.cfg
    _, final_token, unembed = _flops(cfg)
    weights = sum(p.numel() for name, p in model.named_parameters() if not name.startswith(("embed.", "pos_embed.")))
    weights += cfg.d_model * cfg.d_vocab if model.unembed.W_U.data_ptr() == model.embed.W_E.data_ptr() else 0
    prefix_kv = batch * (tokens - 1) * cfg.n_layers * 2 * (cfg.n_key_value_heads or cfg.n_heads) * cfg.d_head
    read_s = 2 * (weights + prefix_kv) * cfg.dtype.itemsize / (roofline["bandwidth_gbs"] * 1e9)
    flop_s = batch * 2 * (final_token(tokens, model.cfg.n_layers) + unembed) / (roofline["gemm_gflops"] * 1e9)
    return max(read_s, flop_s)


# ------------------------------------------------------------------------------------------------
# Memory (subprocesses)
# ------------------------------------------------------------------------------------------------


def _memory_probe(path: str, model_name: str, pool: int = 64, batch: int = 16) -> None:
    """Subprocess entry: one LTV step of ``batch`` prompts on ``path`` (the engine draws them from a
    ``pool``-prompt prefix, as `fit_ltv` does); prints peak RSS above the set-up RSS."""
    import gc
    import threading

    import torch

    from interp.engine import FrozenPrefix

    model, _, pool_batch = _setup(model_name, batch_size=pool)
    rows = torch.randperm(pool, generator=torch.Generator().manual_seed(0))[:batch]
    if path == "engine":
        step = _ltv_step(model, pool_batch, FrozenPrefix.from_batch(model, pool_batch.tokens, pool_batch.attention_mask), rows)
    else:
        step = _ltv_step(model, pool_batch.select(rows.tolist()))
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


# ------------------------------------------------------------------------------------------------
# One cell of the grid
# ------------------------------------------------------------------------------------------------


def _full_costs(model, batch, repeats: int, full_cie_heads: int, full_tokens: int, whole_ltv: bool) -> dict:
    """Per-prompt seconds of the full paths (LTV step; one CIE forward), timed on a prefix of the batch."""
    import torch

    from interp.activations import head_activations
    from interp.engine import final_logits
    from interp.interventions import patch_head

    n = len(batch) if whole_ltv else max(1, min(len(batch), full_tokens // batch.tokens.shape[1]))
    sub = batch.select(list(range(n)))
    ltv = _time(_ltv_step(model, sub), max(1, repeats // 2), warmup=False)
    mean_z = head_activations(model, sub.tokens, sub.attention_mask).mean_z
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    all_heads = [(l, h) for l in range(n_layers) for h in range(n_heads)]
    heads = all_heads[:: max(1, len(all_heads) // full_cie_heads)][:full_cie_heads]
    t0 = time.perf_counter()
    with torch.no_grad():
        final_logits(model, sub.tokens, sub.attention_mask)  # the clean baseline run
        for layer, head in heads:
            final_logits(model, sub.tokens, sub.attention_mask, patch_head(model, layer, head, mean_z[layer, head]))
    per_forward = (time.perf_counter() - t0) / (len(heads) + 1)
    return {"prompts": n, "ltv_per_prompt": ltv / n, "cie_forward_per_prompt": per_forward / n, "heads": len(heads)}


def _cell(model, problem, batch_size: int, repeats: int, full: dict, roofline: dict | None = None) -> dict:
    import torch

    from interp.activations import head_activations
    from interp.engine import FrozenPrefix
    from interp.vectors.function_vector import causal_indirect_effects

    batch = problem.batch("shuffled", "train", batch_size)
    n_all = model.cfg.n_layers * model.cfg.n_heads
    t0 = time.perf_counter()
    prefix = FrozenPrefix.from_batch(model, batch.tokens, batch.attention_mask)
    prefix_build_s = time.perf_counter() - t0
    engine_step = _time(_ltv_step(model, batch, prefix), repeats)
    del prefix

    mean_z = head_activations(model, batch.tokens[:16], batch.attention_mask[:16]).mean_z
    problem._prefixes.clear()  # include the prefix build in the engine's CIE time
    t0 = time.perf_counter()
    causal_indirect_effects(problem, mean_z, n=batch_size, progress=False)
    engine_cie = time.perf_counter() - t0
    problem._prefixes.clear()

    full_step = full["ltv_per_prompt"] * batch_size
    full_cie = full["cie_forward_per_prompt"] * batch_size * (n_all + 1)
    tokens = int(batch.tokens.shape[1])
    ideal = ideal_speedups(model.cfg, tokens, batch_size)
    out = {
        "shots": problem.shots,
        "batch": batch_size,
        "prompt_tokens": tokens,
        "prefix_build_s": round(prefix_build_s, 3),
        "ltv_step_engine_s": round(engine_step, 4),
        "ltv_step_full_s": round(full_step, 3),
        "ltv_step_speedup": round(full_step / engine_step, 1),
        "cie_engine_s": round(engine_cie, 2),
        "cie_full_s": round(full_cie, 1),
        "cie_speedup": round(full_cie / engine_cie, 1),
        "full_measured_prompts": full["prompts"],
        "cie_full_measured_heads": full["heads"],
        "threads": torch.get_num_threads(),
    }
    for name in ("ltv_step", "cie"):
        out[f"{name}_ideal_speedup"] = round(ideal[f"{name}_ideal_speedup"], 1)
        out[f"{name}_achieved"] = round(out[f"{name}_speedup"] / ideal[f"{name}_ideal_speedup"], 3)
    if roofline:  # the FLOP ideal ignores that 16 one-token rows stream every weight from memory
        floor = ltv_step_floor_s(model, tokens, batch_size, roofline)
        out["ltv_step_floor_s"] = round(floor, 4)
        out["ltv_step_roofline_speedup"] = round(full_step / floor, 1)
        out["ltv_step_roofline_achieved"] = round(floor / engine_step, 3)
    return out


def run_benchmark(
    model_name: str = "smollm2-135m",
    quick: bool = False,
    full_cie_heads: int = 4,
    shots: tuple[int, ...] = (10, 30),
    batches: tuple[int, ...] | None = None,
    full_tokens: int = 1600,
    progress: bool = True,
) -> dict:
    """The grid of cells (``quick``: batch 16 only); top-level keys are the headline cell's."""
    from interp.engine import shared_prefix_enabled

    load = [round(os.getloadavg()[0], 2)]
    if batches is None:  # --quick: the headline batch only
        batches = (HEADLINE[1],) if quick else (16, 64)
    repeats = 2 if quick else 4
    model = _load_model(model_name)
    roofline = machine_roofline(model)
    cells = []
    for n_shots in shots:
        problem = _problem(model, n_shots)
        first = problem.batch("shuffled", "train", min(batches))
        whole = (n_shots, min(batches)) == HEADLINE
        full = _full_costs(model, first, repeats, full_cie_heads, full_tokens, whole_ltv=whole)
        for batch_size in batches:
            cells.append(_cell(model, problem, batch_size, repeats, full, roofline))
            if progress:
                print(f"bench: {json.dumps(cells[-1])}", file=sys.stderr, flush=True)
    head = next((c for c in cells if (c["shots"], c["batch"]) == HEADLINE), cells[0])
    patching = patching_benchmark(model, shots=min(shots), repeats=1 if quick else 2)
    engine_mb, full_mb = _probe("engine", model_name), _probe("full", model_name)
    load.append(round(os.getloadavg()[0], 2))
    return {
        "model": model_name,
        "shared_prefix": shared_prefix_enabled(model),
        **{k: v for k, v in head.items() if k not in ("shots",)},
        "shots": head["shots"],
        "n_heads": model.cfg.n_layers * model.cfg.n_heads,
        "engine_peak_mb": round(engine_mb, 1),
        "full_peak_mb": round(full_mb, 1),
        "memory_step": "LTV step of 16 prompts; the engine draws them from a 64-prompt pool's prefix",
        "load_avg": load,
        "roofline": {k: round(v, 2) for k, v in roofline.items()},
        **patching,
        "grid": cells,
    }


def format_table(r: dict) -> str:
    out = [
        f"model {r['model']} ({'shared-prefix' if r['shared_prefix'] else 'TransformerLens-cache'} engine), "
        f"{r['threads']} torch thread(s), load average {r['load_avg'][0]} -> {r['load_avg'][-1]}",
        f"{'shots':>5}{'batch':>6}{'tokens':>7}  {'LTV step full / engine':>24}{'speed-up':>9}{'ideal':>7}"
        f"{'':>3}{'CIE full* / engine':>22}{'speed-up':>9}{'ideal':>7}",
    ]
    for c in r["grid"]:
        out.append(
            f"{c['shots']:>5}{c['batch']:>6}{c['prompt_tokens']:>7}  "
            f"{c['ltv_step_full_s']:>11.2f} s /{c['ltv_step_engine_s']:>8.3f} s{c['ltv_step_speedup']:>8}x"
            f"{c['ltv_step_ideal_speedup']:>6}x   {c['cie_full_s']:>10.0f} s /{c['cie_engine_s']:>7.1f} s"
            f"{c['cie_speedup']:>8}x{c['cie_ideal_speedup']:>6}x"
        )
    out.append(f"peak memory of an LTV step ({r['memory_step']}): full {r['full_peak_mb']:.0f} MB, "
               f"engine {r['engine_peak_mb']:.0f} MB")  # fmt: skip
    if r.get("roofline"):
        rf = r["roofline"]
        floors = ", ".join(f"{c['shots']}-shot/{c['batch']}: floor {c['ltv_step_floor_s']:.3f} s -> at most "
                           f"{c['ltv_step_roofline_speedup']}x" for c in r["grid"] if "ltv_step_floor_s" in c)  # fmt: skip
        out.append(f"roofline: {rf['bandwidth_gbs']:.1f} GB/s streaming, {rf['gemm_gflops']:.0f} GFLOP/s GEMM; "
                   f"engine LTV step (every weight read forward + backward) {floors}")  # fmt: skip
    if "patch_heads_final_speedup" in r:
        out.append(format_patching(r))
    out.append("* full paths timed on part of the work (heads, prompts) and scaled linearly; see --json")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------
# Ad-hoc patching (interp.patching) against transformer_lens.patching
# ------------------------------------------------------------------------------------------------


def patch_ideal_speedups(cfg, tokens_heads: int, tokens_resid: int) -> dict:
    """FLOP-count ideals of the two patching benchmarks (per prompt pair; a batch scales both paths alike).

    TransformerLens: the clean run plus one full forward per patch, each unembedding every position (as
    ``generic_activation_patch`` runs them). The engine: the clean run and the corrupted run (or prefix) once,
    then a patch at (layer l, position p) runs positions p..T-1 through blocks l..L-1 (each attending to the
    keys before it) and unembeds the final position."""
    prompt, final_token, unembed = _flops(cfg)
    L, H = cfg.n_layers, cfg.n_heads

    def tl_forward(t: int) -> float:
        return prompt(t, L) + t * unembed

    t = tokens_heads
    tl_heads = tl_forward(t) + L * H * tl_forward(t)
    engine_heads = (prompt(t, L) + unembed) + prompt(t - 1, L) + final_token(t, L) + unembed + H * sum(
        final_token(t, L - layer) + unembed for layer in range(L)
    )
    t = tokens_resid
    tl_resid = tl_forward(t) + L * t * tl_forward(t)
    # positions p..T-1 through the last L - l blocks: a prompt of T positions minus one of p (same keys seen)
    suffix = sum(prompt(t, L - layer) - prompt(p, L - layer) + unembed for layer in range(L) for p in range(t))
    engine_resid = 2 * (prompt(t, L) + unembed) + prompt(t - 1, L) + suffix
    return {"patch_heads_final_ideal_speedup": tl_heads / engine_heads,
            "patch_resid_all_pos_ideal_speedup": tl_resid / engine_resid}  # fmt: skip


def _tl_patch_seconds(model, pairs, fn, index, metric) -> tuple[float, float]:
    """Seconds of TransformerLens's clean run_with_cache, and per patch of ``fn`` (timed on ``index``)."""
    import contextlib
    import io

    import torch

    tokenizer = model.tokenizer
    old = tokenizer.padding_side
    tokenizer.padding_side = "left"  # TransformerLens infers the padding mask from the pad tokens
    try:
        with torch.no_grad():
            t0 = time.perf_counter()
            _, cache = model.run_with_cache(pairs.clean)
            clean_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
                fn(model, pairs.corrupted, cache, metric, index_axis_names=None, index_df=index)
            per_patch = (time.perf_counter() - t0) / len(index)
    finally:
        tokenizer.padding_side = old
    return clean_s, per_patch


def patching_benchmark(model, shots: int = 10, n_pairs: int = 4, resid_pairs: int = 2, tl_patches: int = 6,
                       repeats: int = 2) -> dict:
    """``patch_heads_final_*`` and ``patch_resid_all_pos_*`` (see the module docstring)."""
    import pandas as pd
    import torch
    from transformer_lens import patching as tlp

    from interp.patching import LogitDiff, patch, problem_pairs
    from interp.patching.prompt_sets import ioi_pairs

    L, H = model.cfg.n_layers, model.cfg.n_heads
    out: dict = {}
    # --- every head at the final position: the task-vector study's pairs (clean vs shuffled labels)
    pool = problem_pairs(_problem(model, shots), 4 * n_pairs)
    aligned = [i for i, (a, b) in enumerate(zip(pool.lengths("clean"), pool.lengths("corrupted"))) if a == b]
    pairs = pool.select(aligned[:n_pairs] or [0])
    metric = "answer_prob"
    engine = _time(lambda: patch(model, pairs, metric=metric, component="z"), repeats)
    T = pairs.corrupted.shape[1]
    rows = torch.arange(len(pairs), device=pairs.answers.device)
    probs = lambda logits: logits[:, -1].float().softmax(-1)[rows, pairs.answers].mean()  # noqa: E731
    step = max(1, L * H // tl_patches)
    units = [(l, T - 1, h) for l in range(L) for h in range(H)][::step][:tl_patches]
    clean_s, per = _tl_patch_seconds(model, pairs, tlp.get_act_patch_attn_head_out_by_pos,
                                     pd.DataFrame(units, columns=["layer", "pos", "head"]), probs)  # fmt: skip
    tl = clean_s + L * H * per
    out.update({"patch_heads_final_speedup": round(tl / engine, 1), "patch_heads_final_engine_s": round(engine, 2),
                "patch_heads_final_tl_s": round(tl, 1), "patch_heads_final_pairs": len(pairs),
                "patch_heads_final_tokens": int(T), "patch_heads_final_tl_measured": len(units)})  # fmt: skip
    tokens_heads = T
    # --- resid_pre at every (layer, position): IOI pairs (short prompts: the work grows as T^2 L^2)
    pairs = ioi_pairs(model, n=resid_pairs)
    diff = LogitDiff(pairs.answers, pairs.wrong)
    engine = _time(lambda: patch(model, pairs, component="resid_pre", position="all"), max(1, repeats - 1),
                   warmup=False)  # fmt: skip
    T = pairs.corrupted.shape[1]
    step = max(1, L * T // tl_patches)
    units = [(l, p) for l in range(L) for p in range(T)][::step][:tl_patches]
    clean_s, per = _tl_patch_seconds(model, pairs, tlp.get_act_patch_resid_pre,
                                     pd.DataFrame(units, columns=["layer", "pos"]),
                                     lambda logits: diff(logits[:, -1].float()).mean())  # fmt: skip
    tl = clean_s + L * T * per
    out.update({"patch_resid_all_pos_speedup": round(tl / engine, 1), "patch_resid_all_pos_engine_s": round(engine, 2),
                "patch_resid_all_pos_tl_s": round(tl, 1), "patch_resid_all_pos_pairs": len(pairs),
                "patch_resid_all_pos_tokens": int(T), "patch_resid_all_pos_tl_measured": len(units)})  # fmt: skip
    ideal = patch_ideal_speedups(model.cfg, tokens_heads, T)
    for name in ("patch_heads_final", "patch_resid_all_pos"):
        out[f"{name}_ideal_speedup"] = round(ideal[f"{name}_ideal_speedup"], 1)
        out[f"{name}_achieved"] = round(out[f"{name}_speedup"] / ideal[f"{name}_ideal_speedup"], 3)
    return out


def run_patching_benchmark(model_name: str = "smollm2-135m", quick: bool = False, shots: int = 10) -> dict:
    """Only the patching part (``interp bench --only patching``)."""
    import torch

    load = [round(os.getloadavg()[0], 2)]
    model = _load_model(model_name)
    out = patching_benchmark(model, shots=shots, repeats=1 if quick else 2)
    load.append(round(os.getloadavg()[0], 2))
    return {"model": model_name, **out, "threads": torch.get_num_threads(), "load_avg": load}


def format_patching(r: dict) -> str:
    lines = []
    for name, what in (("patch_heads_final", "every head at the final position"),
                       ("patch_resid_all_pos", "resid_pre at every layer and position")):  # fmt: skip
        if f"{name}_speedup" in r:
            lines.append(
                f"patching {what} ({r[f'{name}_pairs']} pairs of {r[f'{name}_tokens']} tokens): "
                f"transformer_lens.patching* {r[f'{name}_tl_s']:.1f} s / interp.patching {r[f'{name}_engine_s']:.2f} s "
                f"= {r[f'{name}_speedup']}x (ideal {r[f'{name}_ideal_speedup']}x)"
            )
    return "\n".join(lines)


def _task_cell(model, task: str, shots: int, ltv_steps: int, n_eval: int) -> dict:
    """One task's whole cell (LTV + FV + TV fits, each evaluated on the corrupted settings), timed per stage."""
    from interp.problems import TextProblem
    from interp.tasks import load_task
    from interp.vectors import FVConfig, LTVConfig, TVConfig, fit

    problem = TextProblem(model, load_task(task), shots=shots)  # a fresh problem: no prefix reused across runs
    n_heads = model.cfg.n_layers * model.cfg.n_heads  # a small model has fewer heads than the FV's default top-k
    configs = {"ltv": LTVConfig(steps=ltv_steps, eval_every=20, patience=100),
               "fv": FVConfig(top_k=min(FVConfig().top_k, n_heads)), "tv": TVConfig()}  # fmt: skip
    stages, t_all = {}, time.perf_counter()
    for method, cfg in configs.items():
        t0 = time.perf_counter()
        vec = fit(method, problem, cfg, progress=False)
        stages[f"{method}_fit_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        stages[f"{method}_accuracy"] = {s: round(vec.evaluate(problem, s, n=n_eval).accuracy, 3) for s in problem.corruptions}
        stages[f"{method}_eval_s"] = round(time.perf_counter() - t0, 1)
    return {"total_s": round(time.perf_counter() - t_all, 1), **stages}


def run_task_cost(model_name: str = "smollm2-135m", task: str = "builtin:antonym", shots: int = 10,
                  ltv_steps: int = 60, n_eval: int = 100) -> dict:  # fmt: skip
    """What one task costs end to end, with shared-prefix attention and with TransformerLens's per-row cache
    (``INTERP_SHARED_PREFIX=0``, the engine before shared prefixes), on one loaded model, back to back; the
    ratio of the totals is the speed-up of a sweep cell. Accuracies are reported too: both paths must agree."""
    from interp.engine import SHARED_PREFIX_ENV

    model = _load_model(model_name)
    out: dict = {"model": model_name, "task": task, "shots": shots, "ltv_steps": ltv_steps, "n_eval": n_eval}
    before = os.environ.get(SHARED_PREFIX_ENV)
    try:
        for label, flag in (("shared_prefix", "1"), ("per_row_cache", "0")):
            os.environ[SHARED_PREFIX_ENV] = flag
            load = os.getloadavg()[0]
            out[label] = {**_task_cell(model, task, shots, ltv_steps, n_eval),
                          "load_avg": [round(load, 2), round(os.getloadavg()[0], 2)]}  # fmt: skip
    finally:
        if before is None:
            os.environ.pop(SHARED_PREFIX_ENV, None)
        else:
            os.environ[SHARED_PREFIX_ENV] = before
    out["task_cost_speedup"] = round(out["per_row_cache"]["total_s"] / out["shared_prefix"]["total_s"], 2)
    return out


def cmd_bench(args) -> int:
    if getattr(args, "only", None) == "task-cost":
        result = run_task_cost(args.model, shots=(args.shots or [10])[0], ltv_steps=20 if args.quick else 60)
        print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
        return 0
    if getattr(args, "only", None) == "patching":
        result = run_patching_benchmark(args.model, quick=args.quick, shots=(args.shots or [10])[0])
        print(json.dumps(result) if args.json else format_patching(result))
        return 0
    kwargs = {}
    if args.shots:
        kwargs["shots"] = tuple(args.shots)
    if args.batch:
        kwargs["batches"] = tuple(args.batch)
    result = run_benchmark(args.model, quick=args.quick, **kwargs)
    print(json.dumps(result) if args.json else format_table(result))
    return 0
