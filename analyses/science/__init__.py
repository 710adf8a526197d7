"""Is the LTV a task representation? Experiments that could come out against it (issue 12, text part).

One module per experiment, each a function over independent, resumable units (`analyses.science.units`):

- `stability`: θ fitted with different seeds / on disjoint halves of the train split, compared;
- `controls`: cross-task and random-label bases, a free steering vector, random θ, ICL, corruption ablation;
- `sparse`: top-k pruned and refitted LTVs vs the FV with the same number of heads (the head-count curve);
- `data_efficiency`: accuracy vs number of labelled training prompts (LTV, free steering vector; FV, TV);
- `portability`: vectors added to natural zero-shot templates;
- `claims`: verdicts on the paper's claims and on each control, written to ``results/claims.json``.

Run them with ``interp science run PHASE --tasks ...`` (results under ``results/science/``);
``interp science summarise`` collects the stored units into tidy tables and the claims.
"""

from analyses.science.units import DEFAULT_TASKS, Context, ExperimentError, ExperimentSettings, UnitStore

__all__ = ["DEFAULT_TASKS", "Context", "ExperimentError", "ExperimentSettings", "UnitStore"]
