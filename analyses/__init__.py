"""Analyses: one module per figure family; every function returns ``(plotly figure, tidy data)``.

- `interp.plot.head_weights` — an LTV's θ per head beside the FV's causal indirect effects; the multi-task θ.
- `analyses.patching` — LTV head sizes vs FV CIE vs activation and attribution patching (Spearman, top-k).
- `interp.plot.layer_sweep` — accuracy vs the layer a vector is injected at (FV, TV, single-layer LTVs).
- `interp.plot.regression_curves` — in-context regression error vs number of examples, trained length marked.
- `interp.plot.comparison_table` — the method x task comparison as a figure and as Markdown.
- `interp.plot.geometry` — cosine similarity of task vectors; 2-D PCA of per-prompt vectors by task.
- `analyses.common` — head labels, HTML + PNG writing, the content-addressed result cache.
- `analyses.main` — the main job, ``interp figures [--quick] [--force]``, which writes ``figures/``.

Each module's docstring explains what it computes; the notebooks in ``notebooks/`` use them interactively.
"""
