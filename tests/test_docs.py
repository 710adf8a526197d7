"""The documentation: the site builds without a warning, the results pages match the stores, the README stays
short, and nothing in the code or the docs cites a file that is not in the repository."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250
#: where citations are checked: the library, the application, the tests, the docs and the README
CITING = ("interp", "analyses", "tests", "docs", "README.md")
_TOP = r"(?:interp|analyses|tests|docs|results|figures|scripts|notebooks)"
_EXT = r"(?:py|md|json|toml|ipynb|sh|csv|parquet|yml|yaml|txt|png|html)"
#: a repository path with a file extension, e.g. ``results/claims.json`` or ``interp/engine.py``
CITATION = re.compile(rf"(?<![\w./-])({_TOP}/[\w./-]*\.{_EXT})(?![\w/])")
#: templates, not files: ``figures/<name>.html``, ``results/sweeps/NAME/...``, ``{a,b}``, globs
TEMPLATE = re.compile(r"[<>{}*]|NAME|\.\.\.")


def _missing_tool() -> str | None:
    for module, package in (("mkdocs", "mkdocs"), ("material", "mkdocs-material"),
                            ("mkdocstrings_handlers.python", "mkdocstrings[python]")):  # fmt: skip
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return package
    return None


def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: every page, every nav entry, every API page from the docstrings, no warning."""
    missing = _missing_tool()
    if missing:
        pytest.skip(f"{missing} is not installed (pip install -e '.[dev]' installs the docs tools)")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    site = tmp_path / "site"
    for parts in (("index.html",), ("design", "index.html"), ("results", "science", "index.html"),
                  ("api", "engine", "index.html")):  # fmt: skip
        assert site.joinpath(*parts).exists(), parts
    # the API reference really rendered the docstrings (mkdocstrings, not an empty page)
    assert "FrozenPrefix" in (site / "api/engine/index.html").read_text()


def test_results_pages_are_fresh(monkeypatch):
    """The committed ``docs/results/*.md`` equal a fresh render from the committed stores."""
    monkeypatch.chdir(ROOT)
    from analyses.docs_pages import render_pages

    pages = render_pages()
    stale = [name for name, text in pages.items() if (ROOT / "docs/results" / name).read_text() != text]
    assert not stale, f"stale results pages {stale}: run `interp docs` and commit docs/results/"
    extra = {p.name for p in (ROOT / "docs/results").glob("*.md")} - set(pages)
    assert not extra, f"docs/results/ holds pages the generator does not write: {sorted(extra)}"


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES}); move detail to docs/"


def _text_files():
    for name in CITING:
        path = ROOT / name
        if path.is_file():
            yield path
            continue
        for f in sorted(path.rglob("*")):
            if f.is_file() and f.suffix in (".py", ".md", ".yml", ".toml") and "checkpoints" not in f.parts:
                yield f


def test_design_doc_is_in_the_repository():
    """The design document is ``docs/design.md``; nothing cites the notes that are not in the repository."""
    assert (ROOT / "docs/design.md").exists()
    old = "DESIGN" + ".md"  # spelled in two parts so that this file does not cite it
    citing = [str(f.relative_to(ROOT)) for f in _text_files() if old in f.read_text(errors="ignore")]
    assert not citing, f"{old} is not in the repository; cite docs/design.md instead: {citing}"


def test_cited_files_exist():
    """Every repository path cited in code, docstrings, tests, docs and the README exists (relative to the root,
    or, for Markdown links, to the citing file's folder)."""
    missing = []
    for f in _text_files():
        text = f.read_text(errors="ignore")
        for m in CITATION.finditer(text):
            cited = m.group(1).rstrip(".")
            if TEMPLATE.search(text[max(0, m.start() - 1) : m.end() + 1]):
                continue
            if (ROOT / cited).exists() or (f.parent / cited).exists():
                continue
            line = text.count("\n", 0, m.start()) + 1
            missing.append(f"{f.relative_to(ROOT)}:{line}: {cited}")
    assert not missing, "cited files that do not exist:\n" + "\n".join(sorted(set(missing)))
