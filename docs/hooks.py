"""MkDocs hook: the patching API page follows whatever shape `interp.patching` has in the checkout.

`interp.patching` may be one module or a package of modules; the page lists the package and each public
submodule it finds. When the library has no `interp.patching` at all (a checkout from before it landed), the
page and its nav entry are dropped, so ``mkdocs build --strict`` passes either way.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = "api/patching.md"
MARKER = "<!-- patching-modules -->"


def _patching_modules() -> list[str]:
    """``interp.patching`` and its public submodules, as they exist now (empty: no such module)."""
    package = ROOT / "interp" / "patching"
    if (package / "__init__.py").exists():
        subs = sorted(p.stem for p in package.glob("*.py") if not p.stem.startswith("_"))
        return ["interp.patching", *(f"interp.patching.{s}" for s in subs)]
    return ["interp.patching"] if (ROOT / "interp" / "patching.py").exists() else []


def _prune(nav, page: str):
    out = []
    for item in nav:
        if isinstance(item, dict):
            title, value = next(iter(item.items()))
            if isinstance(value, list):
                out.append({title: _prune(value, page)})
            elif value != page:
                out.append(item)
        elif item != page:
            out.append(item)
    return out


def on_config(config, **kwargs):
    if not _patching_modules() and config.get("nav"):
        config["nav"] = _prune(config["nav"], PAGE)
    return config


def on_files(files, config, **kwargs):
    if not _patching_modules():
        found = files.get_file_from_path(PAGE)
        if found is not None:
            files.remove(found)
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    if page.file.src_uri == PAGE:
        markdown = markdown.replace(MARKER, "\n\n".join(f"::: {m}" for m in _patching_modules()))
    return markdown
