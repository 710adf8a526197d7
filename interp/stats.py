"""Statistics: every interval, test and rank correlation the toolkit reports, in one place.

Which interval for which number — the *unit that varies independently* decides:

- one accuracy on n independent queries: `wilson_interval` (a score interval; right at 0/n and n/n, where
  the normal approximation is not);
- two methods scored on the *same* queries: the difference of paired proportions by
  `newcombe_paired_interval` (closed form, Newcombe 1998 method 10) or, for any per-query metric, the
  `paired_bootstrap` of the per-query differences — pairing removes the between-query variance that two
  separate intervals would double-count;
- a mean over tasks (one number per task): `bootstrap_mean` resamples *tasks*;
- a claim over many tasks, each scored on its own queries: the `clustered_bootstrap` resamples tasks, then
  queries within each resampled task (a two-stage bootstrap). Seeds that re-fit a vector and score the same
  test queries are *repeated fits*, not new data: they are averaged per query before resampling, so ten seeds
  never pass for ten times the queries;
- many per-task tests read together: `holm` adjusts their p-values (family-wise error), so "any 1 of 27
  tasks" is not a discovery by chance;
- agreement of two rankings: `spearman`, `kendall` (scipy) and `top_k_overlap`; `fisher_z_interval` for the
  interval of one correlation.

Every bootstrap here takes ``n_boot`` and ``seed`` and is deterministic for them (percentile intervals,
``numpy.random.default_rng(seed)``), so a stored claim reproduces bit for bit.

>>> [round(x, 4) for x in wilson_interval(50, 100)]
[0.4038, 0.5962]
>>> r = clustered_bootstrap({"a": [1, 1, 0, 1], "b": [0, 0, 1, 0]})
>>> round(r["mean"], 3), r["n_clusters"], r["n"]
(0.5, 2, 8)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

N_BOOT = 2000
LEVEL = 0.95


class StatsError(ValueError):
    """A statistic cannot be computed as asked (unpaired lengths, empty input); the message says the fix."""


# ------------------------------------------------------------------------------------------- proportions
def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    # the bounds are exactly 0 at 0 successes and 1 at n (no float residue like 3e-18)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def wilson(correct: Sequence[bool]) -> dict:
    """``{"accuracy", "ci_low", "ci_high", "n"}`` of per-query outcomes (Wilson interval)."""
    k, n = int(sum(bool(c) for c in correct)), len(correct)
    low, high = wilson_interval(k, n)
    return {"accuracy": k / n if n else float("nan"), "ci_low": low, "ci_high": high, "n": n}


def newcombe_paired_interval(x: Sequence[bool], y: Sequence[bool], z: float = 1.96) -> tuple[float, float, float]:
    """Difference ``mean(x) - mean(y)`` of two paired binary outcomes and its 95% CI (Newcombe 1998, method 10).

    ``x[i]`` and ``y[i]`` are two methods' outcomes on the same prompt ``i``. The interval combines the two
    Wilson intervals of the marginal proportions, corrected by the correlation ``φ`` of the 2×2 table of
    pairs, so it is narrow when the methods agree on most prompts.

    >>> d, lo, hi = newcombe_paired_interval([1] * 30 + [0] * 10, [1] * 20 + [0] * 20)
    >>> round(d, 3), lo > 0
    (0.25, True)
    """
    x_arr, y_arr = np.asarray(x, dtype=bool), np.asarray(y, dtype=bool)
    if x_arr.shape != y_arr.shape:
        raise StatsError(f"paired outcomes need equal lengths, got {x_arr.size} and {y_arr.size}")
    n = x_arr.size
    if n == 0:
        return (float("nan"),) * 3
    a = int((x_arr & y_arr).sum())
    b = int((x_arr & ~y_arr).sum())
    c = int((~x_arr & y_arr).sum())
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denom) if denom > 0 else 0.0
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    eps = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    diff = p1 - p2
    return diff, max(-1.0, diff - delta), min(1.0, diff + eps)


# ------------------------------------------------------------------------------------------- means
def mean_ci(values: Sequence[float] | np.ndarray, z: float = 1.96) -> tuple[float, float, float]:
    """(mean, low, high) with a normal-approximation interval of the mean (for curves of many prompts)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (float("nan"),) * 3
    mean = float(arr.mean())
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else 0.0
    return mean, mean - z * se, mean + z * se


def _percentiles(boots: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    return float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


def bootstrap_interval(
    values: Sequence[float] | np.ndarray, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap CI (the values resampled with replacement).

    The values must be the independent units: per-query differences of one task, or one number per task.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    boots = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(1)
    return (float(x.mean()), *_percentiles(boots, level))


def paired_bootstrap_interval(
    x: Sequence[float], y: Sequence[float], n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL
) -> tuple[float, float, float]:
    """Mean of ``x - y`` over paired rows and its percentile-bootstrap CI (rows resampled with replacement)."""
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x_arr.shape != y_arr.shape:
        raise StatsError(f"paired rows need equal lengths, got {x_arr.size} and {y_arr.size}")
    return bootstrap_interval(x_arr - y_arr, n_boot, seed, level)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """``{"diff", "ci_low", "ci_high", "n"}``: `paired_bootstrap_interval` as a record."""
    diff, low, high = paired_bootstrap_interval(a, b, n_boot, seed)
    return {"diff": diff, "ci_low": low, "ci_high": high, "n": int(np.asarray(a).size)}


def bootstrap_ratio(numerator, denominator, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> dict:
    """``{"mean", "ci_low", "ci_high", "n"}`` of ``mean(numerator) / mean(denominator)`` over paired units, with a
    percentile-bootstrap interval that resamples the *units* (both values of a unit together), so the
    denominator's own uncertainty is in the interval. E.g. the share of a model's error that a vector removes:
    ``numerator[i] = model[i] - vector[i]``, ``denominator[i] = model[i]`` per prompt ``i``.

    >>> r = bootstrap_ratio([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    >>> r["mean"], r["ci_low"], r["ci_high"]
    (0.5, 0.5, 0.5)
    """
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if num.shape != den.shape:
        raise StatsError(f"a ratio needs paired units, got {num.size} numerators and {den.size} denominators")
    if num.size == 0:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, num.size, size=(n_boot, num.size))
    boots = num[idx].mean(1) / den[idx].mean(1)
    low, high = _percentiles(boots, level)
    return {"mean": float(num.mean() / den.mean()), "ci_low": low, "ci_high": high, "n": int(num.size)}


def bootstrap_mean(values, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """``{"mean", "ci_low", "ci_high", "n"}`` of one number per unit (e.g. per task); missing / non-finite
    values (``None``, NaN) are left out and not counted."""
    x = [v for v in values if v is not None and math.isfinite(v)]
    mean, low, high = bootstrap_interval(x, n_boot, seed)
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": len(x)}


def clustered_bootstrap(
    by_cluster: Mapping[str, Sequence[float] | np.ndarray],
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> dict:
    """Mean over clusters (tasks) of the per-cluster mean, with a two-stage bootstrap interval.

    ``by_cluster[task]`` holds that task's per-query values — a vector ``(n_queries,)`` or, for repeated fits
    of the same task scored on the same queries, a matrix ``(n_seeds, n_queries)`` that is averaged over seeds
    first (the seeds are not independent data: they share the queries). Each bootstrap draw resamples tasks
    with replacement, then the queries of each drawn task with replacement, and averages task means; every
    task weighs the same whatever its number of queries, which is the estimand "the effect on a task".

    With one cluster this is the ordinary bootstrap over its queries. Returns ``{"mean", "ci_low",
    "ci_high", "n_clusters", "n", "per_cluster": {task: mean}, "clustered_by": "task, then query"}``.
    """
    clusters = {}
    for name, vals in by_cluster.items():
        arr = np.asarray(vals, dtype=float)
        if arr.ndim == 2:
            arr = arr.mean(0)  # repeated fits on the same queries -> one value per query
        arr = arr[np.isfinite(arr)]
        if arr.size:
            clusters[name] = arr
    empty = {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_clusters": 0, "n": 0,
             "per_cluster": {}, "clustered_by": "task, then query"}  # fmt: skip
    if not clusters:
        return empty
    names = sorted(clusters)
    arrays = [clusters[n] for n in names]
    means = np.array([a.mean() for a in arrays])
    rng = np.random.default_rng(seed)
    k = len(arrays)
    boots = np.empty(n_boot)
    picks = rng.integers(0, k, size=(n_boot, k))
    for b in range(n_boot):
        total = 0.0
        for c in picks[b]:
            a = arrays[c]
            total += a[rng.integers(0, a.size, a.size)].mean()
        boots[b] = total / k
    low, high = _percentiles(boots, level)
    return {"mean": float(means.mean()), "ci_low": low, "ci_high": high, "n_clusters": k,
            "n": int(sum(a.size for a in arrays)), "per_cluster": dict(zip(names, means.round(6).tolist())),
            "clustered_by": "task, then query"}  # fmt: skip


def bootstrap_p_value(values: Sequence[float] | np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> float:
    """Two-sided bootstrap p-value of "mean = 0" for per-unit values (e.g. per-query differences of one
    task): twice the share of bootstrap means on the far side of 0, floored at ``1 / n_boot``."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    boots = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(1)
    if np.all(x == x[0]):
        return 1.0 if x[0] == 0 else 1.0 / n_boot
    tail = min((boots <= 0).mean(), (boots >= 0).mean())
    return float(min(1.0, max(2 * tail, 1.0 / n_boot)))


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm–Bonferroni adjusted p-values (family-wise error over the given tests), by name.

    >>> {k: round(v, 3) for k, v in holm({"a": 0.01, "b": 0.04, "c": 0.03}).items()}
    {'a': 0.03, 'b': 0.06, 'c': 0.06}
    """
    items = sorted(((p, k) for k, p in p_values.items() if p is not None and math.isfinite(p)))
    m = len(items)
    out, running = {}, 0.0
    for i, (p, k) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))  # step-down: adjusted p-values never decrease
        out[k] = running
    return out


# ------------------------------------------------------------------------------------------- rankings
def spearman(a, b) -> float:
    """Spearman rank correlation (scipy; average ranks for ties); NaN if either side is constant."""
    from scipy.stats import spearmanr

    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(spearmanr(x, y).statistic)


def kendall(a, b) -> float:
    """Kendall's τ-b (scipy); NaN if either side is constant."""
    from scipy.stats import kendalltau

    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(kendalltau(x, y).statistic)


def top_k_overlap(a, b, k: int, by_abs: bool = True) -> float:
    """Share of the top-``k`` entries of ``a`` that are also among the top-``k`` of ``b`` (by |value|)."""
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if by_abs:
        x, y = np.abs(x), np.abs(y)
    k = min(k, x.size)
    if k == 0:
        return float("nan")
    top_a = set(np.argsort(-x, kind="stable")[:k].tolist())
    top_b = set(np.argsort(-y, kind="stable")[:k].tolist())
    return len(top_a & top_b) / k


def fisher_z_interval(r: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of a correlation by the Fisher z-transform (``n`` paired observations)."""
    if n <= 3 or not math.isfinite(r):
        return (float("nan"), float("nan"))
    r = max(min(r, 0.999999), -0.999999)
    centre, half = math.atanh(r), z / math.sqrt(n - 3)
    return (math.tanh(centre - half), math.tanh(centre + half))
