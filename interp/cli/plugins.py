"""Verbs that live above the library: studies and figure pipelines register themselves here.

The library (`interp`) never imports the application layer (`analyses/`), yet every study is an ``interp``
verb. The bridge is the standard Python plugin registry: a package names its verb modules under the entry
point group ``interp.commands`` in its ``pyproject.toml``::

    [project.entry-points."interp.commands"]
    figures = "analyses.cli.figures"              # interp figures
    "regress.experiment" = "analyses.cli.regression_length"   # interp regress experiment

A verb module has the same shape as the library's own (``interp/cli/<verb>.py``): ``add_parser(subparsers)``
adds its sub-parser, ``run(args) -> int`` does the work. A dotted name (``parent.verb``) adds a sub-verb to a
library verb that calls `add_plugin_verbs` for itself (``interp regress``). This is how pytest finds its
plugins and how SAELens/pyvene register architectures: the dependency points from the plugin to the
library, never back.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

GROUP = "interp.commands"


def plugin_modules(parent: str | None = None) -> dict[str, object]:
    """``{verb: module}`` of the installed plugins for ``parent`` (``None``: top-level verbs).

    A plugin that fails to import is reported on stderr and left out: a broken study must not take the
    library's own verbs down with it.
    """
    out = {}
    for ep in entry_points(group=GROUP):
        head, _, tail = ep.name.rpartition(".")
        if (head or None) != parent:
            continue
        try:
            out[tail] = ep.load()
        except Exception as err:  # noqa: BLE001 - any import error of a third-party plugin
            print(f"interp: note: plugin verb {ep.name!r} ({ep.value}) failed to load: {err}", file=sys.stderr)
    return out


def add_plugin_verbs(subparsers, parent: str | None = None) -> None:
    """Add every plugin verb of ``parent`` to ``subparsers``; its ``run`` is stored as ``args.plugin_run``."""
    for verb, module in sorted(plugin_modules(parent).items()):
        module.add_parser(subparsers)
        subparsers.choices[verb].set_defaults(plugin_run=module.run)
