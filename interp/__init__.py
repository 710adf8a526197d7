"""interp: task representations of in-context learning (LTV, FV, TV) on TransformerLens.

One import gives the working set of a notebook::

    >>> import interp
    >>> model = interp.load_model("tiny-gpt2")              # "smollm2-135m" (offline default) for real work
    >>> problem = interp.TextProblem(model, interp.load_task("builtin:antonym"), shots=2)
    >>> config = interp.LTVConfig(steps=4, n_train=8, n_valid=4, n_mean=4, batch_size=4, eval_every=2)
    >>> ltv = interp.fit("ltv", problem, config, progress=False)
    >>> table = interp.compare(problem, ["icl", ltv], "zero-shot", n=8)    # paired: the same 8 queries
    >>> [row["method"] for row in table.to_dict()["rows"]]
    ['none', 'icl', 'LTV']
    >>> sorted(ltv.heads().columns)
    ['head', 'layer', 'mean_norm', 'score', 'task', 'theta']

- models and data: `load_model`, `load_task`, `list_tasks`, `TextProblem`, `RegressionProblem`;
- methods: `fit(method, problem, config)` with `LTVConfig` / `FVConfig` / `TVConfig`, `load_vector`;
- scoring: `evaluate(problem, method, setting)` -> `Result`, `compare(problem, methods, setting)` ->
  `Comparison` (paired differences with CIs);
- ad-hoc activation patching: `interp.patching` (exact on the frozen-prefix engine, and attribution patching);
- statistics: `interp.stats` (Wilson, Newcombe, paired and clustered bootstraps, Holm, rank correlations);
- figures: `interp.plot.*` (data in, ``(fig, tidy data)`` out).
"""

from interp import patching, plot, stats, vectors  # submodules as attributes: interp.plot.head_weights, ...
from interp import regression as _regression  # registers the ``regression:<class>`` model loader (interp.loaders)
from interp.evaluation import Comparison, Result, compare, evaluate
from interp.models import DEFAULT_MODEL, load_model
from interp.problems import TextProblem
from interp.tasks import list_tasks, load_task
from interp.vectors import FVConfig, LTVConfig, TVConfig, fit, load_vector


def __getattr__(name: str):
    if name == "RegressionProblem":  # imported on first use: it loads the regression function classes
        from interp.regression.problem import RegressionProblem

        return RegressionProblem
    raise AttributeError(f"module 'interp' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "Comparison",
    "FVConfig",
    "LTVConfig",
    "RegressionProblem",
    "Result",
    "TVConfig",
    "TextProblem",
    "compare",
    "evaluate",
    "fit",
    "list_tasks",
    "load_model",
    "load_task",
    "load_vector",
    "patching",
    "plot",
    "stats",
    "vectors",
]  # fmt: skip
