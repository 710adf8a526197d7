"""What the studies share that the library does not: their error type.

Figure style and writing are `interp.plot.style`; the results store and its keys are `interp.store`;
statistics are `interp.stats`; thresholds and task lists are `interp.defaults`.
"""

from __future__ import annotations

from interp.plot.style import PlotError


class AnalysisError(PlotError):
    """Bad input to a study or a figure pipeline (missing tables, wrong settings); the message names the fix."""


def slug(name: str) -> str:
    """A name as a file-name part: ``country-capital`` -> ``country_capital``, ``gemma-3-270m`` -> ``gemma_3_270m``
    (figure names such as ``head_weights_country_capital`` and ``science_controls_gemma_3_270m``)."""
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower()
