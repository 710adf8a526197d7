"""Natural-text portability (as Todd et al. test function vectors).

Each fitted vector (trained on ``Q: x\nA:`` prompts) is added to prompts that carry no demonstrations and
a different, natural template, e.g. ``The word "x" means``. If a vector represents the task rather than
fixing up one prompt format, it should raise the accuracy above the bare model's on these prompts too.
Scores are first-token accuracy on the test queries (95% Wilson intervals); the claims average each query
over the templates and bootstrap over tasks, then queries (`interp.stats.clustered_bootstrap`).

Twelve templates, none with the training format's ``Q:``/``A:`` markers; every vector the study fits is
tried (LTV, free steering, FV, TV), and the free steering vector twice more, split by the head basis:

- ``steering→span(ā)``: its projection onto the span of each layer's head means (the LTV closest to it,
  `interp.vectors.project_onto_heads`);
- ``steering⊥span(ā)``: the rest.

If the projection ports as the steering vector does, the head basis explains the portability; if the
orthogonal rest carries it, the portability says nothing about the heads.
"""

from __future__ import annotations

from analyses.science.fits import fit_unit, fv_unit, load_fitted, tv_unit
from analyses.science.units import Context, UnitStore, cell
from interp.prompts import Template


def _natural(name: str, query: str) -> Template:
    # the demo form only satisfies `Template`: these prompts are zero-shot, no demonstration is shown
    return Template(demo=query + " {output}\n", query=query, name=name)


#: natural zero-shot templates (task-agnostic: the input, a cue, and the answer's first token to come)
TEMPLATES = {t.name: t for t in (
    _natural("colon", "{input}:"),
    _natural("the-word-means", 'The word "{input}" means'),
    _natural("think-of", "When I think of {input}, I think of"),
    _natural("arrow", "{input} ->"),
    _natural("equals", "{input} ="),
    _natural("input-output", "Input: {input}\nOutput:"),
    _natural("becomes", "{input} becomes"),
    _natural("given", "Given {input}, the answer is"),
    _natural("maps-to", "{input} maps to"),
    _natural("consider", 'Consider "{input}". It gives'),
    _natural("x-y", "x: {input}\ny:"),
    _natural("in-short", "{input}, in short:"),
)}  # fmt: skip

PROJECTED, ORTHOGONAL = "steering→span(ā)", "steering⊥span(ā)"
METHODS = ("LTV", "steering", "FV", "TV", PROJECTED, ORTHOGONAL)


def _split_steering(ctx: Context, store: UnitStore, task: str) -> tuple[dict, dict]:
    """The free steering vector's projection onto span(ā) and its rest, plus the share of ‖v‖² kept."""
    from interp.vectors import SteeringVector, project_onto_heads

    steer = load_fitted(ctx, fit_unit(ctx, store, task, "steer", needs_vector=True))
    ltv = load_fitted(ctx, fit_unit(ctx, store, task, random_control=True, needs_vector=True))
    projected, kept = project_onto_heads(steer.vectors, ltv.basis[0], {**ltv.meta, "label": PROJECTED})
    rest = SteeringVector({"vectors": steer.vectors - projected.layer_vectors()}, {**steer.meta, "label": ORTHOGONAL})
    total = steer.vectors.double().pow(2).sum()
    share = float((projected.layer_vectors().double().pow(2).sum() / total).item()) if total > 0 else 1.0
    info = {"kept_fraction_by_layer": [round(float(x), 6) for x in kept], "kept_fraction": share}
    return {PROJECTED: projected, ORTHOGONAL: rest}, info


def units(ctx: Context, store: UnitStore, task: str, templates=tuple(TEMPLATES), methods=METHODS) -> dict:
    """Accuracy of each vector in ``methods`` (and of the bare model) on each natural template."""
    key = ctx.key("portability", task, "portability", templates=list(templates), methods=list(methods))

    def compute(folder) -> dict:
        from interp.problems import run_prefix

        fitters = {
            "LTV": lambda: fit_unit(ctx, store, task, random_control=True, needs_vector=True),
            "steering": lambda: fit_unit(ctx, store, task, "steer", needs_vector=True),
            "FV": lambda: fv_unit(ctx, store, task, needs_vector=True),
            "TV": lambda: tv_unit(ctx, store, task, needs_vector=True),
        }
        unknown = set(methods) - set(fitters) - {PROJECTED, ORTHOGONAL}
        if unknown:
            raise ValueError(f"unknown portability methods {sorted(unknown)}; choose among "
                             f"{', '.join([*fitters, PROJECTED, ORTHOGONAL])}")  # fmt: skip
        vectors = {m: load_fitted(ctx, fitters[m]()) for m in methods if m in fitters}
        projection = None
        if {PROJECTED, ORTHOGONAL} & set(methods):
            split, projection = _split_steering(ctx, store, task)
            vectors.update({m: v for m, v in split.items() if m in methods})
        out = {}
        for name in templates:
            problem = ctx.problem(task, template=TEMPLATES[name])
            batch, prefix = problem.prefix("zero-shot", "test", ctx.s.n_test)
            res = {"none": cell(problem.result(run_prefix(prefix, lambda idx: []), batch, "none"))}
            for label, vec in vectors.items():
                res[label] = cell(vec.evaluate(problem, "zero-shot", n=ctx.s.n_test))
            out[name] = res
        return {"templates": out, "projection": projection} if projection is not None else out

    return store.get_or_run("portability", key, compute)


def summarise_task(task: str, res: dict) -> list[dict]:
    kept = (res.get("projection") or {}).get("kept_fraction")
    res = res.get("templates", res)  # units with the steering split carry {"templates": ..., "projection": ...}
    return [
        {"task": task, "template": template, "method": method, "accuracy": c["accuracy"], "ci_low": c["ci_low"],
         "ci_high": c["ci_high"], "n": c["n"], "correct": c["correct"],
         **({"steering_norm2_in_span": kept} if method == PROJECTED and kept is not None else {})}
        for template, methods in res.items() for method, c in methods.items()
    ]  # fmt: skip


def run(ctx: Context, store: UnitStore, tasks, templates=tuple(TEMPLATES), methods=METHODS) -> list[dict]:
    rows = []
    for task in tasks:
        rows += summarise_task(task, units(ctx, store, task, templates, methods))
    return rows
