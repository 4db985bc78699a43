"""The notebooks under notebooks/: each runs top to bottom in a fresh kernel (nbclient; ipykernel's ``python3``
kernel on this interpreter) on the shared data, draws its figures, and is committed without outputs."""

from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: Longest a single cell may run (the quickstart's training cell takes about a minute on 2 cores).
CELL_TIMEOUT_S = 600
#: Inline figures each notebook must draw (any other notebook: at least one).
FIGURES = {"quickstart.ipynb": 5}


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_quickstart_is_there():
    assert REPO / "notebooks" / "quickstart.ipynb" in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if "execution" in c.metadata
             or (c.cell_type == "code" and (c.outputs or c.execution_count is not None))]
    assert not dirty, (f"{path.name}: cells {dirty} keep outputs, execution counts or timings; strip them before "
                       "committing: python notebooks/strip_outputs.py notebooks/*.ipynb")
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_top_to_bottom(path, data_root, tmp_path, monkeypatch):
    # the kernel inherits the environment: PERFACE_DATA / PERFACE_CACHE as the tests use them, and a temporary
    # folder that pytest removes (the notebooks write their outputs under tempfile.gettempdir())
    monkeypatch.setenv("PERFACE_DATA", str(data_root))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    # the python3 kernel is this interpreter (ipykernel's own spec, found first on JUPYTER_PATH), whatever other
    # python3 kernels the user's Jupyter folders hold
    install_kernelspec(kernel_name="python3", prefix=str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter" / "share" / "jupyter"))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # cwd: notebooks/, as in Jupyter
    try:
        client.execute()
    except CellExecutionError as exc:  # names the failing cell, its source and the error
        pytest.fail(f"{path.name} failed:\n{exc}", pytrace=False)
    cells = _code_cells(nb)
    assert all(c.execution_count for c in cells), f"{path.name}: not every code cell ran"
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors
    figures = sum("image/png" in o.get("data", {}) for c in cells for o in c.outputs)
    assert figures >= FIGURES.get(path.name, 1), f"{path.name}: {figures} inline figures"
