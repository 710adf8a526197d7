"""What the studies share that the library does not: their error type.

Figure style and writing are `interp.plot.style`; the results store and its keys are `interp.store`;
statistics are `interp.stats`; thresholds and task lists are `interp.defaults`.
"""

from __future__ import annotations

from interp.plot.style import PlotError


class AnalysisError(PlotError):
    """Bad input to a study or a figure pipeline (missing tables, wrong settings); the message names the fix."""
