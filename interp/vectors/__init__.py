"""Task-vector methods behind one interface: ``fit(method, problem, config) -> TaskVector``.

- ``"ltv"``: `LearnedTaskVector` (learned per-head weights, added at every layer), `fit_ltv`;
- ``"fv"``: `FunctionVector` (top-k heads by causal indirect effect, added at one layer), `fit_fv`;
- ``"tv"``: `HiddenStateTaskVector` (a layer's mean hidden state, replacing the zero-shot one), `fit_tv`;
- ``"steer"``: `SteeringVector` (a free d_model vector per layer, trained like the LTV: its control), `fit_steering`.

Every vector has ``hooks(model)``, ``evaluate(problem, setting)``, ``save(dir)``; `load_vector` reads any.
"""

from __future__ import annotations

from interp.vectors.base import TaskVector, VectorError, load_vector
from interp.vectors.function_vector import FunctionVector, FVConfig, causal_indirect_effects, fit_fv
from interp.vectors.ltv import LearnedTaskVector, LTVConfig, fit_ltv, project_onto_heads
from interp.vectors.steering import SteeringConfig, SteeringVector, fit_steering
from interp.vectors.task_vector import HiddenStateTaskVector, TVConfig, fit_tv

METHODS: dict[str, type[TaskVector]] = {
    "ltv": LearnedTaskVector,
    "fv": FunctionVector,
    "tv": HiddenStateTaskVector,
    "steer": SteeringVector,
}
CONFIGS = {"ltv": LTVConfig, "fv": FVConfig, "tv": TVConfig, "steer": SteeringConfig}
_FITTERS = {"ltv": fit_ltv, "fv": fit_fv, "tv": fit_tv, "steer": fit_steering}


def fit(method: str, problem, config=None, **kwargs) -> TaskVector:
    """Fit a task vector of ``method`` on ``problem`` (a `interp.problems.Problem`)."""
    if method not in _FITTERS:
        raise VectorError(f"unknown method {method!r}; choose one of {', '.join(_FITTERS)}")
    return _FITTERS[method](problem, config, **kwargs)


def rate_past_edge(tried, chosen: float) -> float | None:
    """The next learning rate to try when the valid split chose an edge of a geometric grid, else None.

    A rate chosen at the smallest or largest of the ``tried`` rates says only that the best rate may lie
    beyond the grid, so a tuned comparison is not settled there. The next rate is one grid step past that
    edge, the step being the ratio of the two rates nearest it (0.05 of {0.05, 0.2, 0.8} gives 0.0125; 0.8 gives
    3.2). Rounded to 6 significant digits so the rate reads (and keys a cache) the same on every machine.
    """
    rates = sorted({float(r) for r in tried})
    chosen = float(chosen)
    if len(rates) < 2 or chosen not in (rates[0], rates[-1]):
        return None
    near = rates[1] if chosen == rates[0] else rates[-2]
    return float(f"{chosen * chosen / near:.6g}")


def extend_past_edges(losses: dict[float, float], fit_rate, extend: int) -> float:
    """Choose the rate with the lowest valid loss in ``losses`` (rate -> best valid loss; ties go to the rate
    tried first), fitting up to ``extend`` more rates past an edge it sits at (`rate_past_edge`).

    ``fit_rate(lr)`` fits at ``lr`` and returns its best valid loss; ``losses`` gains each rate it fits. The
    one search behind `fit_lr_grid` and any caller that caches each rate's fit on its own.
    """
    def best() -> float:
        return min(losses, key=losses.get)

    for _ in range(extend):
        nxt = rate_past_edge(losses, best())
        if nxt is None:
            break
        losses[nxt] = fit_rate(nxt)
    return best()


def fit_lr_grid(method: str, problem, config, lrs, extend: int = 0, **kwargs) -> TaskVector:
    """Fit ``method`` once per learning rate in ``lrs`` and keep the fit with the lowest validation loss.

    For the trained vectors (``ltv``, ``steer``): the learning rate is chosen on the valid split, never on the
    test queries, so a comparison of two methods each tuned from the same grid is budget-matched. While the
    chosen rate sits at an edge of the rates tried, up to ``extend`` more rates are fitted one grid step past
    that edge (`rate_past_edge`). The kept vector's ``meta["training"]["lr_grid"]`` records every candidate's
    best validation loss and best step (a best step at the step cap means the cap bound: train longer).
    """
    from dataclasses import replace

    if method not in ("ltv", "steer"):
        raise VectorError(f"a learning-rate grid applies to trained vectors (ltv, steer), not {method!r}")
    lrs = [float(lr) for lr in lrs]
    if not lrs or any(lr <= 0 for lr in lrs):
        raise VectorError(f"the learning-rate grid must hold positive numbers, got {lrs}")
    config = config if config is not None else CONFIGS[method]()
    fits = {lr: fit(method, problem, replace(config, lr=lr), **kwargs) for lr in lrs}

    def fit_rate(lr: float) -> float:
        fits[lr] = fit(method, problem, replace(config, lr=lr), **kwargs)
        return fits[lr].meta["training"]["best_valid_loss"]

    losses = {lr: v.meta["training"]["best_valid_loss"] for lr, v in fits.items()}
    best = extend_past_edges(losses, fit_rate, extend)
    summary = {str(lr): {k: v.meta["training"].get(k) for k in ("best_valid_loss", "best_step", "steps_run")}
               for lr, v in sorted(fits.items())}  # fmt: skip
    chosen = fits[best]
    chosen.meta["training"]["lr_grid"] = summary
    chosen.meta["training"]["lr"] = best
    return chosen


__all__ = [
    "CONFIGS", "METHODS", "FVConfig", "FunctionVector", "HiddenStateTaskVector", "LTVConfig",
    "LearnedTaskVector", "SteeringConfig", "SteeringVector", "TVConfig", "TaskVector", "VectorError", "causal_indirect_effects", "extend_past_edges",
    "fit", "fit_fv", "fit_lr_grid", "fit_ltv", "fit_steering", "fit_tv", "load_vector", "project_onto_heads", "rate_past_edge",
]  # fmt: skip
