"""In-context regression (Garg et al. 2022): function classes, a read-in/read-out ``HookedTransformer``,
training, evaluation against classical estimators, and checkpoints shipped with the package.

    from interp.regression import load_regression_model, evaluate_curve
    model = load_regression_model("linear")           # shipped checkpoint
    curve = evaluate_curve(model, n_prompts=500, seed=0)
    curve["in_range_error"], curve["beyond_error"]
"""

from interp.loaders import LoadRequest as _LoadRequest
from interp.loaders import register_loader as _register_loader
from interp.regression.evaluation import BASELINES, baseline_predictions, default_baselines, evaluate_curve
from interp.regression.functions import (
    FUNCTION_CLASSES,
    SHIFTS,
    RegressionTask,
    SampledFunctions,
    Shift,
    get_function_class,
    get_shift,
    sample_prompts,
    sample_task,
)
from interp.regression.io import (
    CHECKPOINT_DIR,
    load_regression_model,
    read_checkpoint_config,
    save_regression_model,
    shipped_checkpoint_dir,
)
from interp.regression.model import RegressionConfig, RegressionTransformer, interleave, query_prompt
from interp.regression.train import TrainConfig, train_regression_model

# --- `interp.load_model("regression:linear")` and regression checkpoint folders, via the loader registry ----------


def _is_regression_checkpoint(name: str) -> bool:
    """A folder holding our checkpoint format (Hugging Face checkpoints name an architecture; ours do not)."""
    from pathlib import Path

    try:
        return Path(name).is_dir() and (Path(name) / "model.safetensors").exists() and bool(read_checkpoint_config(name))
    except (OSError, ValueError):
        return False


def _load_regression_request(request: _LoadRequest):
    # float32 unless a dtype was asked for: these models are small and trained in float32
    model = load_regression_model(request.spec, device=request.device)
    return model.to(request.asked_dtype) if request.asked_dtype is not None else model


_register_loader(
    "regression:", _load_regression_request, matches=_is_regression_checkpoint, offline=True,
    description=f"regression:<class> (the shipped in-context regression models: {', '.join(sorted(FUNCTION_CLASSES))})",
)  # fmt: skip


__all__ = [
    "BASELINES",
    "CHECKPOINT_DIR",
    "FUNCTION_CLASSES",
    "SHIFTS",
    "RegressionConfig",
    "RegressionTask",
    "RegressionTransformer",
    "SampledFunctions",
    "Shift",
    "TrainConfig",
    "baseline_predictions",
    "default_baselines",
    "evaluate_curve",
    "get_function_class",
    "get_shift",
    "interleave",
    "load_regression_model",
    "query_prompt",
    "read_checkpoint_config",
    "sample_prompts",
    "sample_task",
    "save_regression_model",
    "shipped_checkpoint_dir",
    "train_regression_model",
]
