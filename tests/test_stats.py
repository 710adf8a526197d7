"""interp.stats against independent expectations: published values, pandas' own rank correlations, and
properties a correct clustered bootstrap must have (not a copy of its formula)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp.stats import (
    bootstrap_interval,
    bootstrap_p_value,
    clustered_bootstrap,
    holm,
    kendall,
    paired_bootstrap,
    spearman,
    top_k_overlap,
)


def test_holm_matches_the_textbook_step_down():
    # Holm (1979) step-down by hand: sorted p = .005, .01, .03, .04 times 4, 3, 2, 1 -> .02, .03, .06, .04 -> the
    # running maximum makes the last .06
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    assert adjusted == pytest.approx({"d": 0.02, "a": 0.03, "c": 0.06, "b": 0.06})
    assert holm({"x": 0.9, "y": 0.8}) == pytest.approx({"y": 1.0, "x": 1.0})  # capped at 1


def test_rank_correlations_equal_pandas():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(size=40)
    b[:10] = a[:10]  # some agreement, and ties below
    a[5:8] = 1.0
    assert spearman(a, b) == pytest.approx(pd.Series(a).corr(pd.Series(b), method="spearman"))
    assert kendall(a, b) == pytest.approx(pd.Series(a).corr(pd.Series(b), method="kendall"))
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_top_k_overlap():
    assert top_k_overlap([5, -4, 0, 1], [3, 0, -9, 0], k=2) == 0.5  # {0, 1} vs {2, 0}
    assert top_k_overlap([5, -4, 0, 1], [3, 0, -9, 0], k=2, by_abs=False) == 0.5  # {0, 3} vs {0, 1}


def test_clustered_bootstrap_means_tasks_and_widens_with_task_spread():
    rng = np.random.default_rng(1)
    # two tasks of unequal size: the estimand weighs tasks equally, not queries
    r = clustered_bootstrap({"a": np.ones(10), "b": np.zeros(90)})
    assert r["mean"] == pytest.approx(0.5) and r["n_clusters"] == 2 and r["n"] == 100
    # tasks that differ a lot: resampling tasks must give a wider interval than pooling every query
    tasks = {f"t{i}": (rng.random(100) < p).astype(float) for i, p in enumerate([0.1, 0.9, 0.2, 0.8, 0.5, 0.3])}
    pooled = bootstrap_interval(np.concatenate(list(tasks.values())))
    clustered = clustered_bootstrap(tasks)
    assert clustered["ci_high"] - clustered["ci_low"] > 2 * (pooled[2] - pooled[1])
    # repeated fits (rows of one task) are averaged per query: identical rows change nothing
    one = clustered_bootstrap({"t": tasks["t0"]})
    three = clustered_bootstrap({"t": np.stack([tasks["t0"]] * 3)})
    assert (one["mean"], one["ci_low"], one["ci_high"], one["n"]) == (three["mean"], three["ci_low"], three["ci_high"], three["n"])


def test_clustered_bootstrap_covers_the_task_mean():
    """Coverage by simulation: tasks drawn with their own accuracies around 0.5; the 95% interval of the mean
    over tasks should contain 0.5 in most of 60 repetitions (a pooled-query interval does far less often)."""
    rng = np.random.default_rng(2)
    hits = pooled_hits = 0
    for _ in range(60):
        ps = np.clip(rng.normal(0.5, 0.2, size=8), 0, 1)
        tasks = {f"t{i}": (rng.random(60) < p).astype(float) for i, p in enumerate(ps)}
        c = clustered_bootstrap(tasks, n_boot=400)
        hits += c["ci_low"] <= 0.5 <= c["ci_high"]
        _, lo, hi = bootstrap_interval(np.concatenate(list(tasks.values())), n_boot=400)
        pooled_hits += lo <= 0.5 <= hi
    assert hits >= 50 and pooled_hits < hits


def test_bootstrap_p_value_and_paired_record():
    assert bootstrap_p_value(np.ones(30)) == pytest.approx(1 / 2000)
    assert bootstrap_p_value(np.zeros(30)) == 1.0
    rng = np.random.default_rng(3)
    assert bootstrap_p_value(rng.normal(0, 1, 200)) > 0.05
    r = paired_bootstrap([1, 1, 1, 0], [0, 0, 1, 0])
    assert r["diff"] == pytest.approx(0.5) and r["n"] == 4
