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
from interp.vectors.ltv import LearnedTaskVector, LTVConfig, fit_ltv
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


__all__ = [
    "CONFIGS", "METHODS", "FVConfig", "FunctionVector", "HiddenStateTaskVector", "LTVConfig",
    "LearnedTaskVector", "SteeringConfig", "SteeringVector", "TVConfig", "TaskVector", "VectorError", "causal_indirect_effects", "fit",
    "fit_fv", "fit_ltv", "fit_steering", "fit_tv", "load_vector",
]  # fmt: skip
