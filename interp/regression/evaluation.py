"""Error curves of in-context regression: the model against classical estimators, per prompt length.

For a prompt of ``k`` points, the model's prediction of ``y_k`` is read at the position of ``x_k`` and uses the
``k - 1`` demonstrations before it. ``evaluate_curve`` reports, for ``k = 1 .. max_points``, the
*normalised squared error* ``(y_hat_k - y_k)^2 / d`` averaged over fresh prompts, with a 95% confidence
interval (mean +- 1.96 standard errors over prompts), for the model and for baselines that see exactly the
same ``k - 1`` demonstrations:

- ``zero``: predict 0 (its error is ``Var y / d``: 1 for ``linear``; the scale every curve is read against).
- ``least_squares``: ``w = pinv(X) y`` (minimum-norm solution when ``k - 1 < d``), predict ``x_k . w``;
  Bayes-optimal for ``linear``.
- ``averaging``: ``w = mean_i y_i x_i`` (unbiased for isotropic x), predict ``x_k . w``.
- ``nn3``: mean ``y`` of the 3 nearest demonstrations (fewer when fewer exist).
- ``lasso`` (``sparse_linear`` only): scikit-learn ``Lasso(alpha=0.01, fit_intercept=False)``.
- ``tree`` (``decision_tree`` only): scikit-learn ``DecisionTreeRegressor(max_depth=4)`` fitted on the
  demonstrations.

With no demonstration (``k = 1``) every baseline predicts 0. Summary keys: ``in_range_error`` (mean over
``2d <= k <= trained length``, i.e. where least squares is well determined but the model is within the lengths
it was trained on) and ``beyond_error`` (``trained length < k <= 2 x trained length``: position embeddings
never trained), each with a CI computed over prompts (per-prompt mean over the ``k`` range first).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp.regression.functions import Shift, get_function_class, get_shift, sample_task

__all__ = [
    "BASELINES",
    "baseline_predictions",
    "default_baselines",
    "normalised_errors",
    "summarise_curve",
    "evaluate_curve",
    "model_predictions",
]

Predictor = Callable[[Float[Tensor, "batch k d"], Float[Tensor, "batch k"]], Float[Tensor, "batch k"]]


# --------------------------------------------------------------------------------------------------
# Baselines: each maps (xs [b, k, d], ys [b, k]) to the prediction of every y_i from points < i.
# --------------------------------------------------------------------------------------------------


def _zero(xs: Tensor, ys: Tensor) -> Tensor:
    return torch.zeros_like(ys)


def _least_squares(xs: Tensor, ys: Tensor) -> Tensor:
    preds = torch.zeros_like(ys)
    xs64, ys64 = xs.double(), ys.double()
    for i in range(1, xs.shape[1]):
        w = torch.linalg.pinv(xs64[:, :i]) @ ys64[:, :i, None]  # [b, d, 1], minimum-norm if i < d
        preds[:, i] = (xs64[:, i : i + 1] @ w)[:, 0, 0].to(ys.dtype)
    return preds


def _averaging(xs: Tensor, ys: Tensor) -> Tensor:
    preds = torch.zeros_like(ys)
    cum = torch.cumsum(xs * ys[..., None], dim=1)  # [b, k, d]: sum_{j<=i} y_j x_j
    counts = torch.arange(1, xs.shape[1] + 1, dtype=xs.dtype)[None, :, None]
    w = cum / counts  # w after points <= i
    preds[:, 1:] = (xs[:, 1:] * w[:, :-1]).sum(-1)
    return preds


def _nearest_neighbours(xs: Tensor, ys: Tensor, n_neighbours: int = 3) -> Tensor:
    preds = torch.zeros_like(ys)
    dists = torch.cdist(xs, xs)  # [b, k, k]
    for i in range(1, xs.shape[1]):
        m = min(n_neighbours, i)
        idx = dists[:, i, :i].topk(m, dim=1, largest=False).indices  # [b, m]
        preds[:, i] = torch.gather(ys[:, :i], 1, idx).mean(1)
    return preds


def _sklearn_per_prompt(make_estimator: Callable[[], object]) -> Predictor:
    def predict(xs: Tensor, ys: Tensor) -> Tensor:
        import warnings

        X, Y = xs.double().numpy(), ys.double().numpy()
        out = np.zeros_like(Y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings on tiny, rank-deficient fits
            for b in range(X.shape[0]):
                for i in range(1, X.shape[1]):
                    est = make_estimator()
                    est.fit(X[b, :i], Y[b, :i])
                    out[b, i] = est.predict(X[b, i : i + 1])[0]
        return torch.from_numpy(out).to(ys.dtype)

    return predict


def _lasso() -> object:
    from sklearn.linear_model import Lasso

    return Lasso(alpha=0.01, fit_intercept=False, max_iter=10_000)


def _tree() -> object:
    from sklearn.tree import DecisionTreeRegressor

    return DecisionTreeRegressor(max_depth=4, random_state=0)


BASELINES: Dict[str, Predictor] = {
    "zero": _zero,
    "least_squares": _least_squares,
    "averaging": _averaging,
    "nn3": _nearest_neighbours,
    "lasso": _sklearn_per_prompt(_lasso),
    "tree": _sklearn_per_prompt(_tree),
}


def default_baselines(function_class: str) -> List[str]:
    """The baselines reported for a class: the generic four, plus Lasso / a fitted tree where they apply."""
    names = ["zero", "least_squares", "averaging", "nn3"]
    if function_class == "sparse_linear":
        names.append("lasso")
    if function_class == "decision_tree":
        names.append("tree")
    return names


def baseline_predictions(
    name: str, xs: Float[Tensor, "batch k d"], ys: Float[Tensor, "batch k"]
) -> Float[Tensor, "batch k"]:
    """Prediction of every ``y_i`` from the points before it, by the named baseline."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known baselines: {sorted(BASELINES)}")
    return BASELINES[name](xs, ys)


# --------------------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------------------


def normalised_errors(
    preds: Float[Tensor, "batch k"], ys: Float[Tensor, "batch k"], n_dims: int
) -> Float[Tensor, "batch k"]:
    """``(y_hat - y)^2 / d`` per prompt and position."""
    return (preds.double() - ys.double()) ** 2 / n_dims


def _mean_ci(values: Tensor) -> Dict[str, float]:
    """Mean and 95% normal CI over the first axis of a 1-D tensor."""
    n = values.shape[0]
    mean = values.mean().item()
    se = values.std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "lo": mean - 1.96 * se, "hi": mean + 1.96 * se, "se": se}


def summarise_curve(errors: Float[Tensor, "batch k"]) -> Dict[str, List[float]]:
    """Per-position mean and 95% CI (mean +- 1.96 SE over prompts) of an error matrix."""
    n = errors.shape[0]
    mean = errors.mean(0)
    se = errors.std(0, unbiased=True) / math.sqrt(n) if n > 1 else torch.full_like(mean, float("nan"))
    return {
        "mean": mean.tolist(),
        "lo": (mean - 1.96 * se).tolist(),
        "hi": (mean + 1.96 * se).tolist(),
    }


def _range_summary(errors: Tensor, k_lo: int, k_hi: int) -> Optional[Dict[str, float]]:
    """Mean over k in [k_lo, k_hi] (1-indexed, inclusive) with a CI over prompts; None if the range is empty."""
    k_hi = min(k_hi, errors.shape[1])
    if k_lo > k_hi:
        return None
    return _mean_ci(errors[:, k_lo - 1 : k_hi].mean(1))


@torch.no_grad()
def model_predictions(
    model, xs: Float[Tensor, "batch k d"], ys: Float[Tensor, "batch k"], batch_size: int = 500
) -> Float[Tensor, "batch k"]:
    """``model.predict`` in chunks, without gradients; on the CPU in float32 like ``xs`` (the model may sit
    on a GPU, in another dtype: predictions come back for reporting)."""
    return torch.cat([model.predict(xs[i : i + batch_size], ys[i : i + batch_size]).float().to(ys.device)
                      for i in range(0, xs.shape[0], batch_size)])  # fmt: skip


def evaluate_curve(
    model,
    function_class: Optional[str] = None,
    n_prompts: int = 1000,
    max_points: Optional[int] = None,
    seed: int = 0,
    shift: Union[None, str, Shift] = None,
    baselines: Optional[Sequence[str]] = None,
    batch_size: int = 500,
) -> Dict[str, object]:
    """Normalised error per prompt length ``k = 1 .. max_points`` for the model and the baselines.

    Args:
        model: a ``RegressionTransformer``.
        function_class: which class to draw prompts from (default: the model's own).
        n_prompts: fresh prompts (one function each), drawn from ``torch.Generator().manual_seed(seed)``.
        max_points: longest prompt, in points (default: twice the trained length).
        shift: an evaluation shift name (``skewed``, ``scaled``, ``noisy``) or None.
        baselines: names from ``BASELINES`` (default: ``default_baselines(function_class)``); ``()`` for none.

    Returns a dict with ``k``, ``model`` and ``baselines[name]`` curves (``mean``, ``lo``, ``hi`` lists, one
    entry per k), ``trained_length``, ``in_range_error`` / ``in_range_ci`` (``2d <= k <= trained length``),
    ``beyond_error`` / ``beyond_ci`` (``trained length < k <= 2 x trained length``; None if not reached), and the
    same two summaries per baseline under ``baseline_in_range`` / ``baseline_beyond``.
    """
    cfg = model.regression_config
    function_class = get_function_class(function_class or cfg.function_class).name
    shift_obj = get_shift(shift)
    trained = cfg.n_points
    max_points = 2 * trained if max_points is None else max_points
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if 2 * max_points > model.cfg.n_ctx:
        raise ValueError(
            f"prompt too long: max_points={max_points} needs {2 * max_points} positions > n_ctx={model.cfg.n_ctx} "
            f"(at most {model.cfg.n_ctx // 2} points)"
        )
    if baselines is None:
        baselines = default_baselines(function_class)
    for name in baselines:
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}; known baselines: {sorted(BASELINES)}")

    d = cfg.n_dims
    g = torch.Generator().manual_seed(seed)
    task = sample_task(function_class, n_prompts, d, g, shift_obj)
    xs, ys = task.sample_points(max_points, g)

    was_training = model.training
    model.eval()
    try:
        model_err = normalised_errors(model_predictions(model, xs, ys, batch_size), ys, d)
    finally:
        model.train(was_training)

    in_lo, in_hi = 2 * d, trained
    be_lo, be_hi = trained + 1, 2 * trained

    def _val(s: Optional[Dict[str, float]], key: str):
        return None if s is None else s[key]

    in_range = _range_summary(model_err, in_lo, in_hi)
    beyond = _range_summary(model_err, be_lo, be_hi)
    result: Dict[str, object] = {
        "function_class": function_class,
        "model_function_class": cfg.function_class,
        "shift": shift_obj.name if shift_obj is not None else None,
        "n_prompts": n_prompts,
        "seed": seed,
        "n_dims": d,
        "max_points": max_points,
        "trained_length": trained,
        "k": list(range(1, max_points + 1)),
        "in_range_k": [in_lo, in_hi],
        "beyond_k": [be_lo, be_hi],
        "model": summarise_curve(model_err),
        "in_range_error": _val(in_range, "mean"),
        "in_range_ci": None if in_range is None else [in_range["lo"], in_range["hi"]],
        "beyond_error": _val(beyond, "mean"),
        "beyond_ci": None if beyond is None else [beyond["lo"], beyond["hi"]],
        "baselines": {},
        "baseline_in_range": {},
        "baseline_beyond": {},
    }
    for name in baselines:
        err = normalised_errors(baseline_predictions(name, xs, ys), ys, d)
        result["baselines"][name] = summarise_curve(err)
        result["baseline_in_range"][name] = _val(_range_summary(err, in_lo, in_hi), "mean")
        result["baseline_beyond"][name] = _val(_range_summary(err, be_lo, be_hi), "mean")
    return result
