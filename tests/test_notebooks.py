"""The notebooks run top to bottom (executed with nbclient) and are committed without outputs.

The SmolLM2 runs (each <= 3 min on CPU) are marked ``slow``; a fast variant runs the text notebooks on the
tiny random model (``INTERP_NOTEBOOK_MODEL=tiny-gpt2``) to catch API breakage in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def _execute(path: Path, env: dict[str, str], timeout: int = 300) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    book = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(
            book, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return book


def test_notebooks_exist_and_have_no_stale_outputs():
    assert [p.name for p in ALL] == ["01_quickstart.ipynb", "02_patching.ipynb", "03_regression.ipynb", "04_adhoc_patching.ipynb"]
    for path in ALL:
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        for cell in book.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has stale outputs"


def _all_output_text(book) -> str:
    parts = []
    for cell in book.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(out.get("text", ""))
            parts.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(parts)


@pytest.mark.parametrize("name", ["01_quickstart.ipynb", "02_patching.ipynb"])
def test_text_notebooks_run_on_tiny_model(name):
    book = _execute(
        NOTEBOOKS / name, {"INTERP_NOTEBOOK_MODEL": "tiny-gpt2", "INTERP_NUM_THREADS": "1"}, timeout=120
    )
    assert any(c.get("outputs") for c in book.cells if c.cell_type == "code")
    if name == "01_quickstart.ipynb":
        text = _all_output_text(book)
        assert "paired" in text and "diff" in text  # the paired comparison table was displayed


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_notebook_runs_on_default_model(path):
    """Top to bottom on SmolLM2 (and the shipped regression checkpoint), as a reader would run it."""
    # nbclient raises CellExecutionError on the first failing cell, so reaching here means no cell failed;
    # check instead that the notebook produced what it is for
    book = _execute(path, {"INTERP_NOTEBOOK_MODEL": "smollm2-135m", "INTERP_NUM_THREADS": "1"}, timeout=300)
    text = _all_output_text(book)
    if path.name == "01_quickstart.ipynb":
        assert "paired" in text and "LTV" in text and "random-θ" in text
