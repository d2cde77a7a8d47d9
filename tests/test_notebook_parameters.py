"""Every report notebook's parameters are visible to papermill.

papermill reads a parameters cell line by line with a regular expression; a line it cannot
parse (for instance a comment containing ``=``, as ``"" = hipstats.yaml`` or
``control=0,loading=6``) is skipped with the warning "Unable to parse line", and that
parameter disappears from ``papermill.inspect_notebook``, ``hipstats notebooks`` and the
parameter checks. The names are compared with the assignments Python itself finds in the cell.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import nbformat
import papermill as pm
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "hipstats" / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))


def _assigned_names(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} parameters cells"
    names = []
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.AnnAssign):
            names.append(node.target.id)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets]
    return names


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_parses(path, caplog):
    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = pm.inspect_notebook(str(path))
    unparsed = [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]
    assert not unparsed, "\n".join(unparsed)
    names = _assigned_names(path)
    assert names, f"{path.name}: no parameters"
    assert list(found) == names
