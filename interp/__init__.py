"""interp: task representations of in-context learning (LTV, FV, TV) on TransformerLens.

    from interp import load_model, load_task
    from interp.problems import TextProblem
    from interp.vectors import fit
"""

from interp.models import DEFAULT_MODEL, load_model
from interp.tasks import list_tasks, load_task

__all__ = ["DEFAULT_MODEL", "list_tasks", "load_model", "load_task"]
