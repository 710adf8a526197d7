"""In-context regression (Garg et al. 2022): function classes, a read-in/read-out ``HookedTransformer``,
training, evaluation against classical estimators, and checkpoints shipped with the package.

    from interp.regression import load_regression_model, evaluate_curve
    model = load_regression_model("linear")           # shipped checkpoint
    curve = evaluate_curve(model, n_prompts=500, seed=0)
    curve["in_range_error"], curve["beyond_error"]
"""

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
