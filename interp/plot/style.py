"""The house style of every figure, and writing figures to disk (HTML + PNG).

Every figure is written twice by `FigureWriter.save`:

- ``<name>.html``, interactive and offline: ``include_plotlyjs="directory"`` makes all pages load one
  ``plotly.min.js`` next to them (written once) instead of inlining 4 MB of JavaScript per file;
- ``<name>.png``, static, through kaleido, which drives a Chromium browser. Where none is installed
  (Debian: ``apt-get install -y chromium``) the PNGs are skipped with one printed note and the HTML is
  still written; `png_available` says which case holds.

Head labels and tidy per-head frames (`head_frame`, `top_heads`) are here too: every head heatmap reads them.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor

#: Diverging scale for signed quantities (θ, CIE, patching effects), always centred at 0 by `signed_range`.
DIVERGING = "RdBu_r"
#: One colour per method, shared by every figure.
METHOD_COLOURS = {
    "LTV": "#1f77b4",
    "LTV (multi-task)": "#17becf",
    "LTV (single layer)": "#9467bd",
    "FV": "#d62728",
    "TV": "#2ca02c",
    "random-θ": "#7f7f7f",
    "none": "#bcbd22",
    "ICL (clean)": "#000000",
    "activation patching": "#9467bd",
    "attribution patching": "#ff7f0e",
}
FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=13)


class PlotError(ValueError):
    """Bad input to an analysis (wrong shapes, missing data); the message names the problem and the fix."""


# ----------------------------------------------------------------------------------------------- labels
def head_label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def head_frame(values: dict[str, Tensor | np.ndarray], **constants: Any) -> pd.DataFrame:
    """Tidy per-head table: one row per (layer, head) with ``head_label`` and one column per named [L, H] array."""
    if not values:
        raise PlotError("head_frame needs at least one [layer, head] array")
    arrays = {k: _numpy(v) for k, v in values.items()}
    shapes = {k: a.shape for k, a in arrays.items()}
    first = next(iter(arrays.values()))
    if first.ndim != 2 or any(s != first.shape for s in shapes.values()):
        raise PlotError(f"every per-head array must be 2-D [layer, head] of one shape, got {shapes}")
    n_layers, n_heads = first.shape
    layers, heads = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    df = pd.DataFrame({"layer": layers.ravel(), "head": heads.ravel()})
    df.insert(2, "head_label", [head_label(int(l), int(h)) for l, h in zip(df["layer"], df["head"])])
    for name, arr in arrays.items():
        df[name] = arr.ravel().astype(float)
    for name, value in constants.items():
        df.insert(0, name, value)
    return df


def top_heads(values: Tensor | np.ndarray, k: int, by_abs: bool = False) -> list[tuple[int, int]]:
    """The ``k`` (layer, head) pairs with the largest values (or absolute values)."""
    arr = _numpy(values)
    if arr.ndim != 2:
        raise PlotError(f"expected a [layer, head] array, got shape {arr.shape}")
    flat = np.abs(arr).ravel() if by_abs else arr.ravel()
    order = np.argsort(-flat, kind="stable")[: max(0, min(k, flat.size))]
    return [(int(i) // arr.shape[1], int(i) % arr.shape[1]) for i in order]


def signed_range(values) -> float:
    """Symmetric colour range for a diverging scale centred at 0 (never 0 itself)."""
    arr = _numpy(values)
    m = float(np.nanmax(np.abs(arr))) if arr.size else 0.0
    return m if m > 0 and math.isfinite(m) else 1.0


def _numpy(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def style(fig, title: str | None = None, height: int | None = None, width: int | None = None):
    """House style: white template, readable fonts, room for titles; returns ``fig``."""
    fig.update_layout(template="plotly_white", font=FONT, title_font_size=16)
    if title is not None:
        fig.update_layout(title=dict(text=title, x=0.01, xanchor="left"))
    if height is not None:
        fig.update_layout(height=height)
    if width is not None:
        fig.update_layout(width=width)
    return fig


# ----------------------------------------------------------------------------------------------- figures
_PNG_STATE: dict[str, Any] = {"available": None, "reason": ""}

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def png_available() -> tuple[bool, str]:
    """Can kaleido export PNGs here? (needs the kaleido package and a Chromium/Chrome browser)."""
    if _PNG_STATE["available"] is None:
        try:
            import kaleido  # noqa: F401
        except ImportError:
            _PNG_STATE.update(
                available=False, reason="kaleido is not installed (pip install 'interp[figures]')"
            )
            return False, _PNG_STATE["reason"]
        env = os.environ.get("BROWSER_PATH")
        found = (env and Path(env).exists()) or any(shutil.which(b) for b in _BROWSERS) or _kaleido_chrome()
        if found:
            _PNG_STATE.update(available=True, reason="")
        else:
            _PNG_STATE.update(
                available=False,
                reason="no Chromium/Chrome browser found for kaleido; install one (Debian: apt-get install -y "
                "chromium, or set BROWSER_PATH) to get PNGs",
            )
    return bool(_PNG_STATE["available"]), str(_PNG_STATE["reason"])


def _kaleido_chrome() -> bool:
    """A browser kaleido downloaded itself (``kaleido.get_chrome_sync()``), if any."""
    try:
        from choreographer.browsers.chromium import Chromium  # type: ignore[import-not-found]

        return Chromium.find_browser(skip_local=False) is not None  # pragma: no cover - depends on install
    except Exception:
        return False


def disable_png(reason: str) -> None:
    """Turn PNG export off for this process (e.g. after kaleido failed once), with the reason printed once."""
    _PNG_STATE.update(available=False, reason=reason)


@dataclass
class FigureWriter:
    """Writes figures as HTML (shared ``plotly.min.js``) and PNG; remembers what it wrote for the README."""

    out: Path
    png: bool = True
    written: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _pending_png: list[tuple[Any, Path, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if self.png:
            ok, reason = png_available()
            if not ok:
                self._skip_png(reason)

    def _skip_png(self, reason: str) -> None:
        if self.png:
            note = f"PNG export skipped: {reason}. HTML figures are written as usual."
            print(f"[figures] {note}")
            self.notes.append(note)
        self.png = False

    def save(self, fig, name: str, caption: str, width: int | None = None, height: int | None = None) -> dict:
        """Write ``<name>.html`` now and queue ``<name>.png`` (written in one browser session by `flush`)."""
        if not name or "/" in name:
            raise PlotError(f"figure name must be a plain file stem, got {name!r}")
        html = self.out / f"{name}.html"
        # a fixed div id keeps the file byte-identical when the figure is (re)drawn from the same data
        fig.write_html(html, include_plotlyjs="directory", full_html=True, div_id=f"figure-{name}")
        width = width or int(fig.layout.width or 1000)
        height = height or int(fig.layout.height or 550)
        entry = {"name": name, "html": html.name, "png": None, "caption": caption, "title": _title_of(fig)}
        if self.png:
            self._pending_png.append((fig, self.out / f"{name}.png", width, height))
            entry["png"] = f"{name}.png"
        self.written.append(entry)
        return entry

    def flush(self) -> None:
        """Export the queued PNGs (one Chromium start for all of them); on failure skip PNGs, keep going."""
        if not self._pending_png:
            return
        pending, self._pending_png = self._pending_png, []
        if not self.png:
            return
        import plotly.io as pio

        try:
            pio.write_images(
                [f for f, *_ in pending], [str(p) for _, p, _, _ in pending],
                width=[w for *_, w, _ in pending], height=[h for *_, h in pending], scale=1.5,
            )  # fmt: skip
        except Exception as err:  # kaleido / browser failure: the HTML is already there
            disable_png(f"kaleido could not run a browser ({type(err).__name__}: {str(err)[:160]})")
            self._skip_png(_PNG_STATE["reason"])
            for entry in self.written:
                entry["png"] = None


def _title_of(fig) -> str:
    try:
        return str(fig.layout.title.text or "")
    except AttributeError:
        return ""
