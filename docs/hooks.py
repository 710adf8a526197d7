"""MkDocs hook: an API page whose library module is missing from the checkout is left out of the site.

`docs/api/patching.md` documents `interp.patching`; when that module is absent (a checkout from before it
landed), the page and its nav entry are dropped so ``mkdocs build --strict`` still passes.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: API page (relative to docs/) -> the library file it documents
OPTIONAL_PAGES = {"api/patching.md": "interp/patching.py"}


def _missing() -> set[str]:
    return {page for page, module in OPTIONAL_PAGES.items() if not (ROOT / module).exists()}


def _prune(nav, missing: set[str]):
    out = []
    for item in nav:
        if isinstance(item, dict):
            title, value = next(iter(item.items()))
            if isinstance(value, list):
                out.append({title: _prune(value, missing)})
            elif value not in missing:
                out.append(item)
        elif item not in missing:
            out.append(item)
    return out


def on_config(config, **kwargs):
    missing = _missing()
    if missing and config.get("nav"):
        config["nav"] = _prune(config["nav"], missing)
    return config


def on_files(files, config, **kwargs):
    for page in _missing():
        found = files.get_file_from_path(page)
        if found is not None:
            files.remove(found)
    return files
