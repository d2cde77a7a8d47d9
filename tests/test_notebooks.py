"""Every report notebook executes (papermill, through the runner) on a small simulated cohort.

One run of the default notebook set on a 60-participant cohort, two notebooks at a time;
the tests then check each notebook's status, its key findings, and its offline HTML.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from hipstats.report import list_notebooks, run_reports
from hipstats.report.export import external_references

from report_helpers import write_cohort

DEFAULT_SET = ["data_quality", "reliability", "pelvis", "outcomes", "screening", "loading_faults"]
AREAS = {"data_quality": {"Data"}, "reliability": {"R"}, "pelvis": {"H1"}, "outcomes": {"H2"},
         "screening": {"H3"}, "loading_faults": {"H4", "H5"}}
FIGURES = {"data_quality": 2, "reliability": 2, "pelvis": 2, "outcomes": 2, "screening": 1, "loading_faults": 3}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    src = write_cohort(tmp_path_factory.mktemp("cohort"), n=60, seed=11)
    return run_reports(src, tmp_path_factory.mktemp("reports"), jobs=2, progress=False,
                       params={"screening.n_boot": 200})


def test_default_set_is_every_area_notebook():
    assert [n.name for n in list_notebooks() if n.default] == DEFAULT_SET


def test_every_notebook_runs(run):
    assert [r.name for r in run.results] == DEFAULT_SET
    assert {r.name: r.error for r in run.results if not r.ok} == {}


@pytest.mark.parametrize("name", DEFAULT_SET)
def test_notebook_records_its_key_findings(run, name):
    r = next(x for x in run.results if x.name == name)
    areas = {f["area"] for f in r.findings}
    assert areas == AREAS[name]
    for f in r.findings:
        assert f["estimate"] is not None and f["sentence"], f
        if f["ci_low"] is not None:
            assert f["ci_low"] <= f["estimate"] <= f["ci_high"], f


@pytest.mark.parametrize("name", DEFAULT_SET)
def test_html_is_offline_without_code_and_with_figures(run, name):
    page = (run.run_dir / "reports" / f"{name}.html").read_text()
    assert external_references(page) == []
    # no code: every code cell is rendered without its input, and no code text leaks
    cells = re.findall(r'<div class="jp-Cell jp-CodeCell[^"]*"', page)
    assert cells and all("jp-mod-noInput" in c for c in cells)
    assert "open_cohort(" not in page and "highlight hl-ipython3" not in page
    nb = nbformat.read(run.run_dir / "notebooks" / f"{name}.ipynb", as_version=4)
    shown = sum("image/svg+xml" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert shown == FIGURES[name]  # each figure once, as vector graphics
    assert len(re.findall(r"<img [^>]*src=\"data:image/svg\+xml;base64,", page)) == shown
    # the runner injected absolute paths
    assert Path(nb.metadata["papermill"]["parameters"]["source"]).is_absolute()
    # no error outputs in a successful notebook
    assert not any(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_index_has_every_question_and_report(run):
    index = run.index.read_text()
    for label in ("Data quality", "Measurement reliability", "H1 ", "H2 ", "H3 ", "H4 ", "H5 "):
        assert label in index, label
    for r in run.results:
        assert f'href="{r.html}"' in index
    assert "All 6 report(s) ran without errors." in index
    assert external_references(index) == []


def test_every_notebook_runs_on_a_six_participant_cohort(tmp_path):
    """`hipstats simulate --n 6` then `hipstats report`: sub-analyses the data cannot support are shown as
    "not estimable" sentences instead of failing the notebook."""
    from hipstats.cli import main

    src, out = tmp_path / "cohort", tmp_path / "reports"
    assert main(["simulate", "--out", str(src), "--n", "6"]) == 0
    code = main(["report", str(src), "--out", str(out), "-j", "2", "-q", "-p", "screening.n_boot=200"])
    manifest = next(out.glob("*/manifest.json")).read_text()
    assert code == 0, manifest
