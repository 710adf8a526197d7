"""Errors that mean "bad input", which the CLI reports as one line (``INTERP_DEBUG=1`` shows tracebacks).

Each library module raises a specific subclass of ``ValueError`` (``TaskError``, ``PromptError``,
``InterventionError``, ``VectorError``, ...) or ``FileNotFoundError`` with a message that names the problem
and the fix; the CLI catches them here.
"""

from __future__ import annotations

import os

from interp.models import ModelNotAvailableError

USER_ERRORS: tuple[type[BaseException], ...] = (
    (ModelNotAvailableError, ValueError, FileNotFoundError) if not os.environ.get("INTERP_DEBUG") else ()
)
