"""Shared builders for the report tests: small cohorts and test-only notebooks."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import hipstats as hs

PARAMS = 'source: str = ""  # cohort\nas_of: str = ""  # date\nlabel: str = "quick"  # a label\nrepeat: int = 1  # a count'


def write_cohort(folder: Path, n: int = 60, seed: int = 11) -> Path:
    hs.simulate_cohort(n_participants=n, seed=seed).write(folder, overwrite=True)
    return folder


def _nb(title: str, cells: list, params: str = PARAMS, default: bool = True):
    p = new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell(f"# {title}"), p, *cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["hipstats"] = {"title": title, "default": default}
    return nb


def write_test_notebooks(folder: Path) -> Path:
    """quick.ipynb (records a finding, draws a figure, prints the kernel's Python) and broken.ipynb (raises)."""
    folder.mkdir(parents=True, exist_ok=True)
    quick = _nb("Quick check", [
        new_markdown_cell("Participants and measurements in the data."),
        new_code_cell("import sys\nfrom hipstats import report\nreport.setup_figures()\n"
                      "cohort = report.open_cohort(source, as_of=as_of)\nprint('KERNEL', sys.executable)"),
        new_code_cell("report.record('Data', 'measurement rows', len(cohort.measurements), None, None, None, "
                      "f'{label}: {cohort.n_participants} participants', digits=0);"),
        new_code_cell("report.quality.plot_flow(cohort)"),
    ])
    broken = _nb("Broken on purpose", [
        new_markdown_cell("Before the error."),
        new_code_cell("from hipstats import report\ncohort = report.open_cohort(source, as_of=as_of)\ncohort"),
        new_code_cell("raise ValueError('deliberate failure for the test')"),
        new_markdown_cell("After the error."),
    ])
    nbformat.write(quick, folder / "quick.ipynb")
    nbformat.write(broken, folder / "broken.ipynb")
    return folder
