"""The notebooks run top to bottom as a reader would (on the real sample when it is there, on a
synthetic export otherwise), are stored without outputs, and match their paired scripts."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from homevision.data.synthetic import generate_listings, write_listings

from ..conftest import REAL_CANDIDATES
from .conftest import ROOT, train_in

NOTEBOOKS = ROOT / "notebooks"


def execute(name: str, folder: Path) -> list[str]:
    """Run notebooks/NAME.ipynb in a fresh kernel (it inherits this test's environment: its
    HOMEVISION_HOME and data) from `folder`; return every output as text ("[image]" for a
    figure). A cell that raises fails the test with the cell and its traceback."""
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": folder}}
    )
    client.execute()
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            texts.append(output.get("text") or data.get("text/plain", ""))
            if "image/png" in data:
                texts.append("[image]")
    return texts


@pytest.fixture
def notebook_data(tmp_path, monkeypatch) -> Path:
    """The real sample when it is beside the checkout, else a synthetic export; made the
    default data (HOMEVISION_DATA) of this test's project."""
    real = next((path for path in REAL_CANDIDATES if path.exists()), None)
    path = real or write_listings(generate_listings(600, seed=5), tmp_path / "listings.csv")
    monkeypatch.setenv("HOMEVISION_DATA", str(path))
    return path


def test_the_data_analysis_notebook_runs(notebook_data, tmp_path):
    outputs = execute("00_data-analysis", tmp_path)
    text = "\n".join(outputs)
    assert f"{notebook_data.name}:" in text
    assert "labelled (Sold with a ClosePrice)" in text
    assert "agrees with BathsFull/BathsHalf" in text
    assert "CurrentPrice" in text  # the leakage section ran
    assert outputs.count("[image]") == 5


@pytest.mark.slow
def test_the_model_notebook_reads_the_champion_and_explains_a_valuation(notebook_data, tmp_path):
    train_in(tmp_path, notebook_data, ["median_ppsf", "ridge"])
    outputs = execute("01_selection-models", tmp_path)
    text = "\n".join(outputs)
    assert "models:/homevision-price@champion: homevision-price v1" in text
    assert "honest (nested CV)" in text and "selection CV" in text
    assert "the file this run learned from" in text
    assert "largest gap between base + contributions and the valuation: $0" in text
    valuation = next(line for line in text.splitlines() if line.startswith("valuation $"))
    total = next(line for line in text.splitlines() if line.startswith("base + contributions"))
    assert valuation.split()[-1] == total.split()[-1]  # the reasons add up to the price
    assert outputs.count("[image]") == 6


@pytest.mark.parametrize("script", sorted(NOTEBOOKS.glob("*.py")), ids=lambda p: p.stem)
def test_notebooks_are_stored_without_outputs_and_match_their_scripts(script):
    stored = script.with_suffix(".ipynb")
    assert stored.exists(), f"{script.name} has no paired notebook: jupytext --sync {script}"
    notebook = nbformat.read(stored, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{stored.name} is stored with outputs: run nbstripout on it"
            )
    assert jupytext.writes(notebook, fmt="py:percent") == script.read_text(), (
        f"{stored.name} and {script.name} differ: jupytext --sync {script}"
    )


def test_every_notebook_has_its_script():
    for stored in NOTEBOOKS.glob("*.ipynb"):
        assert stored.with_suffix(".py").exists(), f"{stored.name} has no paired script"
