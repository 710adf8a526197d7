"""Griffe extension for the API reference: doctest examples and rST tables in docstrings become code blocks.

The library's docstrings carry runnable ``>>>`` examples (the tests execute them). Left as they are, Markdown
reads ``>>>`` as nested block quotes and an output such as ``[0.4038, 0.5962]`` as a link. This wraps each
example that starts at the docstring's margin (with its ``...`` continuation and output lines, up to the next
blank line) in a fenced block; indented examples are already code blocks. reStructuredText simple tables
(``====  ====`` borders), which Markdown would read as headings, are shown as preformatted text. The
docstrings themselves are not changed.
"""

from __future__ import annotations

import re

import griffe

_FENCE = re.compile(r"^\s*(```|~~~)")
_RST_BORDER = re.compile(r"^=+( +=+)+\s*$")  # a reStructuredText simple table's border: ====  =====


def fence_doctests(text: str) -> str:
    """``text`` with every margin-level doctest example wrapped in a fenced ``pycon`` block (idempotent)."""
    out: list[str] = []
    lines = text.split("\n")
    i, in_fence = 0, False
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and _RST_BORDER.match(line):
            # an rST simple table (top border, header, border, rows, bottom border): shown as preformatted text,
            # which Markdown would otherwise read as setext headings
            if out and out[-1].strip():
                out.append("")
            out.append("```text")
            borders = 0
            while i < len(lines) and borders < 3:
                borders += bool(_RST_BORDER.match(lines[i]))
                out.append(lines[i])
                i += 1
            out.append("```")
            continue
        if in_fence or not line.startswith(">>>"):
            out.append(line)
            i += 1
            continue
        if out and out[-1].strip():
            out.append("")
        out.append("```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest examples of every docstring griffe loads."""

    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
