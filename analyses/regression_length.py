"""Length generalisation with task vectors: does an LTV keep a regression model's error low past its
trained prompt length, where the model alone degrades? Does an FV?

For one shipped checkpoint (trained length ``T``) and an optional shift:

1. fit an LTV on ``long`` prompts (``T .. 2T-1`` demonstrations; `RegressionProblem`) with ``ā`` from clean
   prompts of trained length, early-stopped on a valid split; a free steering vector per layer
   (`interp.vectors.fit_steering`) on the *same* long prompts, steps, minibatches and early stopping (only the
   learning rate differs: it is in residual-stream units, `regression_steering_config`); an FV from causal
   indirect effects under shuffled-y corruption (layer chosen on valid ``long`` prompts); the same-norm
   random-θ control;
2. evaluate on fresh test prompts with ``k = 1 .. 2T`` demonstrations: the model alone, +LTV, +steering, +FV,
   +random-θ, and least squares on the same points; mean normalised error per k with 95% CIs.

Intervals of the range summaries (``summary``, ``paired``, ``fractions``) take the *prompt* as the unit
(`interp.stats`): a prompt is one function draw and its points. `RegressionProblem` draws each length's
test prompts from its own generator (seeded by the setting ``k=N``), so a prompt normally appears at one
length only; settings whose seeds coincide would share their draws, and their rows are then one cluster
(``prompt_keys``: the errors of a cluster are averaged over its lengths before the bootstrap over clusters).
``prompt_unit`` in the result records how many clusters there are and how many lengths share one.

Controls worth reading beside the result (docs/design.md): most of the blow-up past ``T`` comes from
never-trained position embeddings, so a vector that "restores" long prompts may only be patching
positions. ``run_length_experiment`` returns plain data (the schema the figures read)::

    {"function_class", "shift", "trained_length", "n_dims", "k": [...],
     "curves": {"model": {"mean", "low", "high"}, "model+LTV": ..., "model+FV": ..., "model+random-θ": ...,
                "model, trained pos. rows reused": ..., "least_squares": ...},
     "summary": {name: {"in_range_error", "beyond_error",
                        "ranges": {range: {"mean", "ci_low", "ci_high", "n"}}}},
     "paired": {"A − B": {range: {"mean", "ci_low", "ci_high", "n"}}},
     "fractions": {"<vector> removed": {range: {"mean", "ci_low", "ci_high", "n"}}, "<vector> cost": ...},
     "prompt_unit": {...},
     "settings": {...}, "wall_s": ...}

Ranges (``k`` = prompt length in points, the query included): ``in_range`` ``2d <= k <= T``; ``beyond``
``T < k <= 2T``; ``beyond_1-1.5x`` ``T < k <= 1.5T``; ``beyond_1.5-2x`` ``1.5T < k <= 2T``. Every curve is
evaluated on the same test prompts, so ``paired`` differences (per prompt, then a 95% CI of the mean) compare
methods more tightly than two separate intervals.

The experiment runs on any checkpoint: a shipped class name (``"linear"``: learned absolute positions), a
directory name under ``interp/regression/checkpoints`` (``"linear_rotary"``, ``"linear_nope"``: no position
rows that training leaves untouched) or a path. Two controls say how much of a gain past ``T`` is about
positions rather than the task:

- ``model, trained pos. rows reused`` (learned absolute positions only): every never-trained ``W_pos`` row
  replaced by the last trained row of the same parity;
- ``model, last T points only`` (any model): past ``T`` the model sees only the last ``T - 1``
  demonstrations and the query, i.e. a prompt of the trained length (a sliding window).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from interp.engine import final_logits
from interp.problems import run_prefix
from interp.regression.evaluation import baseline_predictions
from interp.regression.functions import FUNCTION_CLASSES
from interp.regression.io import CHECKPOINT_DIR, load_regression_model
from interp.regression.problem import RegressionProblem, hash_setting
from interp.stats import bootstrap_mean, bootstrap_ratio, mean_ci
from interp.store import Store, file_hash, save_tensors
from interp.vectors import FVConfig, LTVConfig, SteeringConfig, fit_fv, fit_ltv, fit_steering

RESULTS_DIR = Path("results/regression")


def regression_ltv_config(quick: bool = False) -> LTVConfig:
    return LTVConfig(
        corruptions=("long",), n_mean=256, n_train=64 if quick else 512, n_valid=64 if quick else 256,
        steps=60 if quick else 400, batch_size=64, lr=0.05, eval_every=20, patience=5,
    )  # fmt: skip


#: the steering vector's learning rate (Adam, per residual coordinate): the library's default pairing with the
#: LTV's 0.05 per head weight (`SteeringConfig`); not tuned for either vector on this problem
STEERING_LR = 0.01


def regression_steering_config(quick: bool = False) -> SteeringConfig:
    """The LTV's prompts, steps, minibatches and early stopping (`SteeringConfig.like`), lr `STEERING_LR`."""
    return SteeringConfig.like(regression_ltv_config(quick), lr=STEERING_LR)


def regression_fv_config(quick: bool = False) -> FVConfig:
    return FVConfig(top_k=3, n_mean=256, n_cie=32 if quick else 128, sweep_settings=("long",), n_valid=64 if quick else 256)


def _curve(errors_per_k: list[list[float]]) -> dict:
    stats = [mean_ci(e) for e in errors_per_k]
    return {"mean": [s[0] for s in stats], "low": [s[1] for s in stats], "high": [s[2] for s in stats]}


POS_CONTROL = "model, trained pos. rows reused"
WINDOW_CONTROL = "model, last T points only"


def load_checkpoint(checkpoint: str | Path):
    """A shipped class name (``"linear"``), a checkpoint directory name under ``interp/regression/checkpoints``
    (``"linear_rotary"``) or a checkpoint path, loaded."""
    if isinstance(checkpoint, str) and checkpoint not in FUNCTION_CLASSES and (CHECKPOINT_DIR / checkpoint).is_dir():
        return load_regression_model(CHECKPOINT_DIR / checkpoint)
    return load_regression_model(checkpoint)


def length_ranges(T: int, d: int) -> dict[str, tuple[int, int]]:
    """Inclusive ``k`` ranges (prompt length in points, the query included) of the summaries."""
    return {
        "in_range": (2 * d, T),
        "beyond": (T + 1, 2 * T),
        "beyond_1-1.5x": (T + 1, (3 * T) // 2),
        "beyond_1.5-2x": ((3 * T) // 2 + 1, 2 * T),
    }


UNIT = "prompt (bootstrap over prompts; a prompt's errors at several lengths averaged first)"


def _stat(values, n_values: int | None = None) -> dict:
    """Mean of one value per prompt and its bootstrap 95% CI over prompts (`interp.stats.bootstrap_mean`)."""
    st = bootstrap_mean(np.asarray(values, dtype=float))
    return {**st, "n_values": st["n"] if n_values is None else n_values, "unit": UNIT}


def unique_prompt_keys(ks: list[int], n: int) -> list[list[str]]:
    """Every (length, row) its own prompt: the pooled reading, where no two lengths share a draw."""
    return [[f"k{k}/row{i}" for i in range(n)] for k in ks]


def prompt_units(errors: dict[str, list[list[float]]], ks: list[int], keys: list[list[str]], lo: int, hi: int,
                 names) -> tuple[dict[str, np.ndarray], int]:  # fmt: skip
    """``{name: per-prompt mean error over the lengths lo <= k <= hi}`` (prompts in one order for every name)
    and the number of (prompt, length) values averaged."""
    groups: dict[str, list[tuple[int, int]]] = {}
    for ki, k in enumerate(ks):
        if lo <= k <= hi:
            for r, key in enumerate(keys[ki]):
                groups.setdefault(key, []).append((ki, r))
    cells = [g for g in groups.values()]
    out = {}
    for name in names:
        rows = errors[name]
        out[name] = np.array([sum(rows[ki][r] for ki, r in g) / len(g) for g in cells], dtype=float)
    return out, sum(len(g) for g in cells)


def summarise_errors(errors: dict[str, list[list[float]]], ks: list[int], T: int, d: int, pairs,
                     keys: list[list[str]] | None = None) -> tuple[dict, dict]:  # fmt: skip
    """Per-curve range summaries and paired differences ``A − B`` (same prompts) with 95% CIs over prompts.

    ``keys[ki][row]`` names the prompt of each error (rows of one prompt at several lengths are one unit);
    default: every (length, row) its own prompt."""
    ranges = length_ranges(T, d)
    keys = keys or unique_prompt_keys(ks, len(next(iter(errors.values()))[0]))
    summary, paired = {}, {}
    per_range = {rn: prompt_units(errors, ks, keys, lo, hi, list(errors)) for rn, (lo, hi) in ranges.items()}
    for name in errors:
        r = {rn: _stat(units[name], n_values) for rn, (units, n_values) in per_range.items()}
        summary[name] = {"in_range_error": r["in_range"]["mean"], "beyond_error": r["beyond"]["mean"], "ranges": r}
    for a, b in pairs:
        if a in errors and b in errors:
            paired[f"{a} − {b}"] = {rn: _stat(units[a] - units[b], n_values)
                                    for rn, (units, n_values) in per_range.items()}  # fmt: skip
    return summary, paired


def _ratio(num: np.ndarray, den: np.ndarray, n_values: int) -> dict:
    return {**bootstrap_ratio(num, den), "n_values": n_values, "unit": UNIT}


def summarise_fractions(errors: dict[str, list[list[float]]], ks: list[int], T: int, d: int, vectors,
                        keys: list[list[str]] | None = None, reference: str = "model+LTV") -> dict:  # fmt: skip
    """Sizes relative to the model's own error, each with a bootstrap 95% CI over prompts
    (`interp.stats.bootstrap_ratio`: numerator and denominator resampled together):

    - ``"<v> removed"``: ``(model − v) / model`` per range, the share of the model's error that ``v`` removes;
    - ``"<v> cost"``: ``(v − model) / model`` per range (read in range: what ``v`` costs where the model works);
    - ``"<reference> − <v> removed"``: ``(v − reference) / model``, how much more of the model's error the
      reference removes than ``v`` (the difference of the two shares, on the same prompts).
    """
    ranges = length_ranges(T, d)
    keys = keys or unique_prompt_keys(ks, len(next(iter(errors.values()))[0]))
    names = [n for n in ["model", *vectors] if n in errors]
    out: dict[str, dict] = {}
    for rn, (lo, hi) in ranges.items():
        units, n_values = prompt_units(errors, ks, keys, lo, hi, names)
        m = units["model"]
        for v in names[1:]:
            out.setdefault(f"{v} removed", {})[rn] = _ratio(m - units[v], m, n_values)
            out.setdefault(f"{v} cost", {})[rn] = _ratio(units[v] - m, m, n_values)
            if reference in units and v != reference:
                out.setdefault(f"{reference} − {v} removed", {})[rn] = _ratio(units[v] - units[reference], m, n_values)
    return out


def run_length_experiment(
    checkpoint: str | Path, shift: str | None = None, quick: bool = False, n_test: int | None = None, seed: int = 0,
    model=None, progress: bool = False, errors_out: Path | None = None,
) -> dict:
    """LTV / FV / random-θ / controls past the trained length on one checkpoint (see the module docstring).

    ``checkpoint``: a shipped class name, a directory name under ``interp/regression/checkpoints`` or a path
    (ignored when ``model`` is given). ``errors_out``: a folder for every per-prompt error
    (``errors.safetensors``, one ``[length, prompt]`` tensor per curve), so later rules can be judged on them."""
    t0 = time.perf_counter()
    model = model or load_checkpoint(checkpoint)
    model.requires_grad_(False)
    rcfg = model.regression_config
    problem = RegressionProblem.for_model(model, shift=shift, seed=seed)
    T, d = problem.trained_length, rcfg.n_dims
    ltv = fit_ltv(problem, regression_ltv_config(quick), progress=progress)
    steer = fit_steering(problem, regression_steering_config(quick), progress=progress)
    fv = fit_fv(problem, regression_fv_config(quick), progress=progress)
    vectors = {"model+LTV": ltv, "model+steering": steer, "model+FV": fv, "model+random-θ": ltv.random_control(seed)}
    n_test = n_test or (64 if quick else 256)
    ks = list(range(1, 2 * T + 1))  # prompt length in points, the query included (k - 1 demonstrations)
    # the reused-rows control exists only where there are learned position rows to reuse
    controls = [POS_CONTROL] if rcfg.positional_embedding_type == "standard" else []
    names = ["model", *vectors, *controls, WINDOW_CONTROL, "least_squares"]
    errors: dict[str, list[list[float]]] = {name: [] for name in names}
    # the prompt behind each error: the draw of setting k=N is seeded by hash_setting (the problem's other seed
    # terms are the same for every k here), so two lengths share prompts only where their hashes coincide
    keys = [[f"draw{hash_setting(f'k={k - 1}')}/row{i}" for i in range(n_test)] for k in ks]
    control_model = position_control(model) if controls else None
    for k in ks:
        setting = f"k={k - 1}"
        if k == 1:  # a lone query has no prefix to freeze: run it whole
            batch, prefix = problem.batch(setting, "test", n_test), None
        else:
            batch, prefix = problem.prefix(setting, "test", n_test)
        for name, hooks in [("model", []), *[(n, v.hooks(model)) for n, v in vectors.items()]]:
            if prefix is None:
                with torch.no_grad():
                    out = final_logits(model, batch.inputs, batch.attention_mask, hooks)
            else:
                out = run_prefix(prefix, lambda idx, h=hooks: h, rows_per_call=256)
            errors[name].append(problem.row_metric(out, batch.targets).tolist())
        if control_model is not None:
            with torch.no_grad():
                out = final_logits(control_model, batch.inputs, batch.attention_mask)
            errors[POS_CONTROL].append(problem.row_metric(out, batch.targets).tolist())
        if k > T:  # the last T - 1 demonstrations and the query: a prompt of the trained length
            keep = 2 * (T - 1) + 1
            with torch.no_grad():
                out = final_logits(model, batch.inputs[:, -keep:], batch.attention_mask[:, -keep:])
            errors[WINDOW_CONTROL].append(problem.row_metric(out, batch.targets).tolist())
        else:
            errors[WINDOW_CONTROL].append(list(errors["model"][-1]))
        errors["least_squares"].append(_least_squares_errors(_demos(batch, k - 1, d), batch, d))
        problem._prefixes.pop((setting, "test", n_test, 0), None)
    curves = {name: _curve(e) for name, e in errors.items()}
    if errors_out is not None:
        save_tensors(Path(errors_out), "errors", {name: torch.tensor(e) for name, e in errors.items()})
    pairs = [("model+LTV", "model"), ("model+FV", "model"), ("model+random-θ", "model"), ("model+LTV", "model+FV"),
             ("model+LTV", "model+random-θ"), ("model+LTV", POS_CONTROL), ("model+LTV", WINDOW_CONTROL),
             (POS_CONTROL, "model"), ("model", WINDOW_CONTROL), ("model+steering", "model"),
             ("model+LTV", "model+steering")]  # fmt: skip
    summary, paired = summarise_errors(errors, ks, T, d, pairs, keys)
    fractions = summarise_fractions(errors, ks, T, d, list(vectors), keys)
    draws = [ks_key[0].split("/")[0] for ks_key in keys]
    return {
        "function_class": rcfg.function_class,
        "checkpoint": Path(str(checkpoint)).name,
        "positional_embedding_type": rcfg.positional_embedding_type,
        "shift": shift,
        "trained_length": T,
        "n_dims": d,
        "length_version": LENGTH_VERSION,
        "k": ks,
        "k_means": "prompt length in points, the query included (k - 1 demonstrations), as in evaluate_curve",
        "curves": curves,
        "summary": summary,
        "paired": paired,
        "fractions": fractions,
        "prompt_unit": {"unit": UNIT, "n_lengths": len(ks), "n_test_per_length": n_test,
                        "n_draws": len(set(draws)), "lengths_sharing_a_draw": len(draws) - len(set(draws))},
        "vectors": {
            "ltv": {kk: ltv.meta["training"][kk] for kk in ("steps_run", "best_step", "stopped", "wall_s")},
            "steering": {**{kk: steer.meta["training"][kk] for kk in ("steps_run", "best_step", "stopped", "wall_s")},
                         "lr": steer.meta["config"]["lr"], "n_parameters": steer.n_parameters},
            "fv": {"layer": fv.layer, "top_heads": fv.top_heads()},
        },
        "settings": {"quick": quick, "n_test": n_test, "seed": seed, "ltv": ltv.meta["config"],
                     "steering": steer.meta["config"], "fv": fv.meta["config"]},
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def position_control(model):
    """The model with every never-trained position-embedding row replaced by the last trained row of the
    same parity (x or y slot): the docs/design.md control showing how much of the error past the trained length
    is only about untrained positions. Only for learned absolute positions (rotary / NoPE have no rows)."""
    import copy

    if model.regression_config.positional_embedding_type != "standard":
        raise ValueError(
            f"position_control needs learned absolute position rows; this model uses "
            f"positional_embedding_type={model.regression_config.positional_embedding_type!r} (no W_pos rows to reuse)"
        )

    control = copy.deepcopy(model)
    last = 2 * model.regression_config.n_points  # positions 0 .. 2T-1 were trained
    with torch.no_grad():
        W_pos = control.pos_embed.W_pos
        for p in range(last, W_pos.shape[0]):
            W_pos[p] = W_pos[last - 2 + (p % 2)]
    return control


def _demos(batch, k: int, d: int):
    """(xs [b, k, d], ys [b, k], x_query [b, d]) back out of a k-demonstration prompt."""
    inputs = batch.inputs[:, -(2 * k + 1) :]
    xs = inputs[:, 0 : 2 * k : 2]
    ys = inputs[:, 1 : 2 * k : 2, 0]
    return xs, ys, inputs[:, -1]


def _least_squares_errors(demos, batch, d: int) -> list[float]:
    xs, ys, xq = demos
    all_x = torch.cat([xs, xq[:, None]], dim=1)
    all_y = torch.cat([ys, batch.targets[:, None]], dim=1)
    pred = baseline_predictions("least_squares", all_x, all_y)[:, -1]  # prediction of the query from the k demos
    return ((pred - batch.targets) ** 2 / d).tolist()


#: bump when `run_length_experiment` computes something else, so stored cells are not reused
LENGTH_VERSION = 2  # 2: + the free steering vector, intervals bootstrapped over prompts, fractions


def _checkpoint_dir(checkpoint: str | Path) -> Path:
    if isinstance(checkpoint, str) and (CHECKPOINT_DIR / checkpoint).is_dir():
        return CHECKPOINT_DIR / checkpoint
    return Path(checkpoint)


def result_name(checkpoint: str | Path, shift: str | None) -> str:
    """The file stem of a result: ``<checkpoint>[_<shift>]``."""
    return Path(str(checkpoint)).name + (f"_{shift}" if shift else "")


def length_spec(checkpoint: str | Path, shift: str | None, quick: bool, seed: int) -> dict:
    """The store key of one length experiment: the checkpoint's *content* (weights and config), not its name."""
    folder = _checkpoint_dir(checkpoint)
    weights = sorted(folder.glob("*.safetensors")) + [folder / "config.json"]
    return {"study": "regression-length", "checkpoint": result_name(checkpoint, None),
            "checkpoint_content": [file_hash(w) for w in weights if w.exists()], "shift": shift, "quick": quick,
            "seed": seed, "version": LENGTH_VERSION}  # fmt: skip


def length_experiment(out_dir: Path, checkpoint: str | Path, shift: str | None = None, quick: bool = False,
                      seed: int = 0, force: bool = False) -> tuple[dict, bool]:  # fmt: skip
    """`run_length_experiment` as a cell of the store ``<out_dir>/store`` (computed once, then read back),
    exported as ``<out_dir>/<checkpoint>[_<shift>].json``; returns ``(result, computed)``.

    A result file written before the store existed (same checkpoint content, shift, quick and seed) is
    adopted as the cell instead of being recomputed: the committed results keep their numbers.
    """
    out_dir = Path(out_dir)
    store = Store(out_dir / "store", force=force)
    spec = length_spec(checkpoint, shift, quick, seed)
    export = out_dir / f"{result_name(checkpoint, shift)}.json"
    if not force and export.exists() and store.read(store.key(spec)) is None:
        old = json.loads(export.read_text())
        same_run = old.get("settings", {}).get("quick") == quick and old.get("settings", {}).get("seed") == seed
        if same_run and old.get("length_version", 1) == LENGTH_VERSION:  # never adopt a stale version's numbers
            store.get_or_compute(spec, lambda folder: old, kind="regression-length", label=export.stem)
            store.computed = 0  # adopted, not computed
    result = store.get_or_compute(spec, lambda folder: run_length_experiment(checkpoint, shift=shift, quick=quick,
                                                                              seed=seed, errors_out=folder),
                                  kind="regression-length", label=export.stem)  # fmt: skip
    write_result(result, out_dir)
    return result, store.computed > 0


def write_result(result: dict, out_dir: Path = RESULTS_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result.get("checkpoint", result["function_class"]) + (f"_{result['shift']}" if result["shift"] else "")
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=1))
    return path


def format_table(result: dict) -> str:
    T = result["trained_length"]
    lines = [f"{result.get('checkpoint', result['function_class'])} (shift: {result['shift'] or 'none'}; trained length T={T} points, d={result['n_dims']})",
             f"{'':<34}{'in-range (2d<=k<=T)':>22}{'beyond (T<k<=2T)':>20}"]  # fmt: skip
    for name, s in result["summary"].items():
        lines.append(f"{name:<34}{s['in_range_error']:>22.4f}{s['beyond_error']:>20.4f}")
    return "\n".join(lines)
