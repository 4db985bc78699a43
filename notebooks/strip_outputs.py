"""Strip outputs, execution counts and execution timings from notebooks before committing them.

    python notebooks/strip_outputs.py notebooks/*.ipynb

tests/test_notebooks.py fails on a committed notebook that still has any of them.
"""

import sys

import nbformat


def strip(path: str) -> bool:
    """Strip one notebook in place; True if anything changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count = [], None
            changed = True
        if "execution" in cell.metadata:
            del cell.metadata["execution"]
            changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python notebooks/strip_outputs.py NOTEBOOK.ipynb...")
    for p in sys.argv[1:]:
        print(f"{p}: {'stripped' if strip(p) else 'already clean'}")
