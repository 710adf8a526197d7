"""Natural-text portability (as Todd et al. test function vectors).

Each fitted vector (trained on ``Q: x\\nA:`` prompts) is added to prompts that carry no demonstrations and
a different, natural template, e.g. ``The word "x" means``. If a vector represents the task rather than
fixing up one prompt format, it should raise the accuracy above the bare model's on these prompts too.
Scores are first-token accuracy on the test queries (95% Wilson intervals).
"""

from __future__ import annotations

from analyses.science.fits import fit_unit, fv_unit, load_fitted, tv_unit
from analyses.science.units import Context, UnitStore, cell
from interp.prompts import Template

#: natural zero-shot templates (the demo form is only there to satisfy `Template`; no demos are shown)
TEMPLATES = {
    "colon": Template(demo="{input}: {output}\n", query="{input}:", name="colon"),
    "the-word-means": Template(demo='The word "{input}" means {output}\n', query='The word "{input}" means',
                               name="the-word-means"),  # fmt: skip
    "think-of": Template(demo="When I think of {input}, I think of {output}\n",
                         query="When I think of {input}, I think of", name="think-of"),  # fmt: skip
}


METHODS = ("LTV", "steering", "FV", "TV")


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
        unknown = set(methods) - set(fitters)
        if unknown:
            raise ValueError(f"unknown portability methods {sorted(unknown)}; choose among {', '.join(fitters)}")
        vectors = {m: load_fitted(ctx, fitters[m]()) for m in methods}
        out = {}
        for name in templates:
            problem = ctx.problem(task, template=TEMPLATES[name])
            batch, prefix = problem.prefix("zero-shot", "test", ctx.s.n_test)
            res = {"none": cell(problem.result(run_prefix(prefix, lambda idx: []), batch, "none"))}
            for label, vec in vectors.items():
                res[label] = cell(vec.evaluate(problem, "zero-shot", n=ctx.s.n_test))
            out[name] = res
        return out

    return store.get_or_run("portability", key, compute)


def summarise_task(task: str, res: dict) -> list[dict]:
    return [
        {"task": task, "template": template, "method": method, "accuracy": c["accuracy"], "ci_low": c["ci_low"],
         "ci_high": c["ci_high"], "n": c["n"], "correct": c["correct"]}
        for template, methods in res.items() for method, c in methods.items()
    ]  # fmt: skip


def run(ctx: Context, store: UnitStore, tasks, templates=tuple(TEMPLATES), methods=METHODS) -> list[dict]:
    rows = []
    for task in tasks:
        rows += summarise_task(task, units(ctx, store, task, templates, methods))
    return rows
