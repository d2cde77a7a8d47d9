"""Fast tests of the report machinery that need no kernel: parameters, findings, HTML checks, lock, index."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from hipstats.errors import ParameterError, ReportError
from hipstats.report import findings as fnd
from hipstats.report.export import external_references
from hipstats.report.lock import OutputLock
from hipstats.report.params import (
    coerce,
    list_notebooks,
    load_params_file,
    parse_param_strings,
    resolve_parameters,
    select_notebooks,
)
from hipstats.report.runner import check_as_of, run_reports

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "hipstats" / "notebooks"
DEFAULT_SET = ["data_quality", "reliability", "pelvis", "outcomes", "screening", "loading_faults"]


@pytest.fixture(scope="module")
def catalogue():
    return list_notebooks(NB_DIR)


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize("raw,type_,expected", [
    ("65", "float", 65.0), (65, "float", 65.0), ("2", "int", 2), (3.0, "int", 3), ("007", "str", "007"),
    (7, "str", "7"), ("yes", "bool", True), ("off", "bool", False), (True, "bool", True),
    ("a,b", "list", ["a", "b"]), ("[1, 2]", "list[int]", [1, 2]), (["1", "2"], "list[int]", [1, 2]),
    ("none", "Optional[float]", None), ("1.5", "float | None", 1.5), ("{a: 1}", "dict", {"a": 1}),
])
def test_coerce_accepts_values_of_the_declared_type(raw, type_, expected):
    assert coerce("x", raw, type_) == expected


@pytest.mark.parametrize("raw,type_", [
    ("abc", "float"), ("2.5", "int"), (True, "int"), (True, "float"), ("maybe", "bool"), (1, "bool"),
    ("x", "dict"), (None, "float"), ([1], "str"),
])
def test_coerce_refuses_wrong_types(raw, type_):
    with pytest.raises(ParameterError, match="parameter 'x' expects"):
        coerce("x", raw, type_)


def test_parse_param_strings():
    assert parse_param_strings(["a=1", "screening.cutoff=65", "s=x=y"]) == {"a": "1", "screening.cutoff": "65",
                                                                            "s": "x=y"}
    with pytest.raises(ParameterError, match="key=value"):
        parse_param_strings(["novalue"])
    with pytest.raises(ParameterError, match="not a valid parameter name"):
        parse_param_strings(["1bad=2"])


def test_params_file_yaml_and_errors(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("cutoff: 65\nscreening:\n  n_boot: 100\n")
    assert load_params_file(p) == {"cutoff": 65, "screening": {"n_boot": 100}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ParameterError, match="mapping"):
        load_params_file(bad)
    with pytest.raises(ParameterError, match="does not exist"):
        load_params_file(tmp_path / "missing.yaml")


def test_resolve_parameters_types_scopes_and_runner_values(catalogue):
    chosen = select_notebooks(catalogue)
    out = resolve_parameters(chosen, {"cutoff": "65", "confidence": 0.9, "screening": {"n_boot": 50},
                                      "outcomes.adjust": "bonferroni"},
                             runner={"source": "/data/x", "as_of": ""}, catalogue=catalogue)
    assert out["screening"] == {"cutoff": 65.0, "confidence": 0.9, "n_boot": 50, "source": "/data/x", "as_of": ""}
    assert out["outcomes"]["adjust"] == "bonferroni" and out["outcomes"]["confidence"] == 0.9
    assert "cutoff" not in out["pelvis"] and out["pelvis"]["confidence"] == 0.9
    assert out["data_quality"] == {"source": "/data/x", "as_of": ""}


def test_resolve_parameters_lists_every_problem(catalogue):
    chosen = select_notebooks(catalogue)
    with pytest.raises(ParameterError) as err:
        resolve_parameters(chosen, {"nonsense": 1, "cutoff": "seventy", "screening.n_boot": 2.5,
                                    "source": "/elsewhere", "power.n_sim": 10}, catalogue=catalogue)
    msg = str(err.value)
    assert "unknown parameter 'nonsense'" in msg
    assert "parameter 'cutoff' expects float, got 'seventy'" in msg
    assert "parameter 'n_boot' expects int, got 2.5" in msg
    assert "'source' is set by the runner" in msg
    assert "'power.n_sim' is for notebook 'power', which is not selected" in msg


def test_catalogue_default_set_and_only(catalogue):
    assert [n.name for n in select_notebooks(catalogue)] == DEFAULT_SET
    assert [n.name for n in select_notebooks(catalogue, "screening,pelvis")] == ["screening", "pelvis"]
    if any(n.name == "power" for n in catalogue):
        assert [n.name for n in select_notebooks(catalogue, ["power"])] == ["power"]
    with pytest.raises(ParameterError, match="unknown notebook"):
        select_notebooks(catalogue, ["nope"])


def test_check_as_of():
    assert check_as_of(None) == "" and check_as_of("2026-03-31") == "2026-03-31"
    assert check_as_of("2026/3/1") == "2026-03-01"
    with pytest.raises(ParameterError, match="as-of"):
        check_as_of("last tuesday")


# ------------------------------------------------------------------ notebooks are thin and typed
def test_notebooks_are_up_to_date_with_their_build_script():
    r = subprocess.run([sys.executable, str(NB_DIR / "build_notebooks.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", DEFAULT_SET)
def test_notebook_structure(name, catalogue):
    info = {n.name: n for n in catalogue}[name]
    nb = nbformat.read(info.path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"], "first code cell must be tagged 'parameters'"
    # every parameter is typed; the source is empty (HIPSTATS_SOURCE or a clear message), never a path
    # relative to the repository, so a notebook copied or installed elsewhere does not read stray data
    assert all(p.type not in ("None", "") for p in info.parameters.values()), info.parameters
    assert info.parameters["source"].default == "" and info.parameters["source"].type == "str"
    assert info.needs_data
    assert info.parameters["as_of"].type == "str"
    # thin: no definitions or loops in notebooks, short code cells, narrative around them
    for c in code[1:]:
        assert not any(line.lstrip().startswith(("def ", "class ", "for ", "while ", "lambda")) for line in
                       c.source.splitlines()), c.source
        body = [ln for ln in c.source.splitlines() if ln.strip() and not ln.startswith(("import ", "from "))]
        assert len(body) <= 5, c.source
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= len(code) // 2
    assert any("record" in c.source or "findings" in c.source for c in code), "notebook records no key finding"


# ------------------------------------------------------------------ findings
def test_finding_round_trip_through_a_notebook_output():
    f = fnd.record("H2", "IR gain (deg)", 4.25, 1.5, 7.0, 0.0004, "Loading gained more.", display=False)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data=f.mime_bundle()),
                    nbformat.v4.new_output("stream", name="stdout", text="hello")]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    # survives writing and reading the notebook as JSON
    again = nbformat.reads(nbformat.writes(nb), as_version=4)
    assert fnd.extract(again) == [f]
    assert "4.25" in f.mime_bundle()["text/plain"] and "p &lt; 0.001" in f.mime_bundle()["text/html"]


def test_finding_missing_numbers_and_p_format():
    f = fnd.Finding("R", "q", float("nan"), None, float("inf"), None, "s")
    assert f.estimate is None and f.ci_high is None
    assert json.loads(json.dumps(f.to_dict()))["estimate"] is None
    assert fnd.format_p(0.00049) == "< 0.001" and fnd.format_p(0.0456) == "0.046"


def test_record_summary_needs_the_summary_columns():
    import pandas as pd

    from hipstats.errors import AnalysisError

    with pytest.raises(AnalysisError, match="question"):
        fnd.record_summary("H1", pd.DataFrame({"estimate": [1.0]}), display=False)


# ------------------------------------------------------------------ offline HTML checks
@pytest.mark.parametrize("html,expected", [
    ('<script src="https://cdn.x.org/require.js"></script>', ["script: https://cdn.x.org/require.js"]),
    ("<link rel=stylesheet href=//fonts.googleapis.com/css>", ["link href: //fonts.googleapis.com/css"]),
    ("<style>@import url('https://a.b/c.css');</style>", ["css @import: https://a.b/c.css"]),
    ("<style>@font-face{src:url(https://f.io/x.woff)}</style>", ["css: https://f.io/x.woff"]),
    ('<img src="http://x.org/a.png">', ["img src: http://x.org/a.png"]),
    ('<script type="module">import mermaid from "https://cdn.j/m.mjs";</script>', ["script: element"]),
    # an external hyperlink is an external reference too (issue 17: any attribute)
    ('<a href="https://example.org">a link</a>', ["a href: https://example.org"]),
    ('<a href="reports/x.html">a link</a><img src="data:image/png;base64,AA">', []),
])
def test_external_references(html, expected):
    found = external_references(html)
    assert set(expected) <= set(found) and bool(found) == bool(expected)


# ------------------------------------------------------------------ lock
def test_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    with OutputLock(tmp_path) as first:
        first.note({"run_id": "r1", "started": "now"})
        with pytest.raises(ReportError, match=r"another hipstats report run is writing to .*run r1"):
            OutputLock(tmp_path).acquire()
    with OutputLock(tmp_path):  # released: free again
        pass


def test_lock_is_released_when_the_holder_process_dies(tmp_path):
    code = ("import sys, os; from hipstats.report.lock import OutputLock; l = OutputLock(sys.argv[1]); "
            "l.acquire(); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    with OutputLock(tmp_path):
        pass


# ------------------------------------------------------------------ confidence level and wording of findings
def test_finding_says_the_confidence_level_it_was_computed_at():
    f = fnd.Finding("H2", "q", 1.0, 0.5, 1.5, 0.1, "s", confidence=0.80)
    assert "80% CI 0.50 to 1.50" in f._html() and "80% CI" in str(f) and "95%" not in f._html()
    assert abs(f.alpha - 0.2) < 1e-12
    assert fnd.Finding.from_dict(f.to_dict()) == f
    assert "95% CI" in fnd.Finding("H2", "q", 1.0, 0.5, 1.5)._html()  # default level
    assert fnd.Finding.from_dict({"area": "R", "question": "q", "estimate": 1.0}).confidence == 0.95  # old outputs
    with pytest.raises(ValueError):
        fnd.Finding("H2", "q", 1.0, confidence=95)


def test_significance_words_follow_alpha():
    assert fnd.significance_words(0.1, confidence=0.80) == "unlikely to be chance"
    assert fnd.significance_words(0.1, confidence=0.95) == "the data cannot rule out chance"
    assert fnd.significance_words(0.03, confidence=0.99) == "the data cannot rule out chance"


def _h2_like(confidence, p_adj, adjust="holm"):
    import pandas as pd  # noqa: PLC0415

    final = pd.DataFrame({"estimand": ["difference in change"], "contrast": ["loading - control"], "visit": ["w12"],
                          "estimate": [4.0], "ci_low": [1.0], "ci_high": [7.0], "df": [50.0], "p_value": [p_adj],
                          "p_adj": [p_adj], "adjust": [adjust]})
    return type("R", (), {"measure": "hip_ir_deg", "confidence": confidence, "final": final, "notes": {}})()


def test_h2_finding_level_alpha_and_unadjusted_ci_wording():
    from hipstats.report.areas import h2_findings  # noqa: PLC0415

    (f,) = h2_findings(_h2_like(0.80, 0.1), display=False)
    assert f.confidence == 0.80 and "80% CI" in f._html()
    assert "80% CI, not adjusted for multiple comparisons: 1.0 to 7.0" in f.sentence
    assert "unlikely to be chance" in f.sentence and "Holm-adjusted p 0.100" in f.sentence  # 0.1 < alpha 0.2
    (g,) = h2_findings(_h2_like(0.95, 0.1), display=False)
    assert "cannot rule out" in g.sentence and "95% CI, not adjusted" in g.sentence
    (h,) = h2_findings(_h2_like(0.95, 0.01, adjust="none"), display=False)
    assert "(95% CI: 1.0 to 7.0;" in h.sentence and "not adjusted" not in h.sentence


def test_h2_finding_reports_sub_analyses_that_are_not_estimable():
    from hipstats.report.areas import h2_findings  # noqa: PLC0415

    r = _h2_like(0.95, 0.01)
    r.not_estimable = {"ANCOVA": "fewer than 2 participants in arm control"}
    out = h2_findings(r, display=False)
    assert out[-1].estimate is None and "not estimable: fewer than 2 participants" in out[-1].sentence


def test_reliability_finding_counts_participants_and_words_the_sem():
    import pandas as pd  # noqa: PLC0415

    from hipstats.report.areas import reliability_findings  # noqa: PLC0415

    t = pd.DataFrame({"measure": ["hip_ir_deg"], "pelvis": ["free"], "design": ["rater-to-rater"],
                      "form": ["ICC(A,1)"], "n_participants": [28], "n_targets": [56], "icc": [0.91], "icc_ci_low": [0.85],
                      "icc_ci_high": [0.95], "sem": [2.0], "mdc95": [5.5], "ci_method": ["cluster bootstrap"]})
    t.attrs["confidence"] = 0.9
    (f,) = reliability_findings(t, display=False)
    assert "(28 participants, both sides" in f.question and "28 participants, both sides" in f.sentence
    assert "typical error of about ±2.0 deg (SEM; 95% of readings within ±3.9 deg)" in f.sentence
    assert f.confidence == 0.9 and "90% CI" in f._html()


def test_reliability_finding_on_too_few_participants_is_not_estimable():
    import pandas as pd  # noqa: PLC0415

    from hipstats.report.areas import MIN_ICC_PARTICIPANTS, reliability_findings  # noqa: PLC0415

    t = pd.DataFrame({"measure": ["hip_ir_deg"], "pelvis": ["free"], "design": ["rater-to-rater"],
                      "form": ["ICC(A,1)"], "n_participants": [1], "n_targets": [2], "icc": [-0.92],
                      "icc_ci_low": [-1.14], "icc_ci_high": [-0.83], "sem": [2.3], "mdc95": [6.4]})
    (f,) = reliability_findings(t, display=False)
    assert f.estimate is None and f.ci_low is None
    assert "not estimable: only 1 participant was measured" in f.sentence and "poor" not in f.sentence
    assert str(MIN_ICC_PARTICIPANTS) in f.sentence


def test_tilt_comparison_page_and_finding_show_the_result_without_recomputing():
    """The H3 page table and findings take the tilt comparisons (CI, adjusted p, the adjustment) from the
    result as they are: a result whose table holds deliberately odd numbers shows exactly those numbers."""
    from pathlib import Path  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    from hipstats.cohort import Cohort  # noqa: PLC0415
    from hipstats.questions.screening import screening_analysis  # noqa: PLC0415
    from hipstats.report.areas import screening_findings, tilt_comparisons  # noqa: PLC0415

    fix = Path(__file__).parent / "fixtures" / "screening"
    c = Cohort(measurements=pd.read_csv(fix / "tilt_measurements.csv"),
               participants=pd.read_csv(fix / "tilt_participants.csv"), sessions=pd.DataFrame())
    res = screening_analysis(c, n_boot=0, confidence=0.9, adjust="bonferroni")
    shown = tilt_comparisons(res)
    assert shown.attrs["confidence"] == 0.9
    for col in ("estimate", "ci_low", "ci_high", "p_value", "p_adj", "adjust", "n_participants"):
        assert shown[col].tolist() == res.tilt_comparison[col].tolist(), col
    res.tilt_comparison.loc[0, ["ci_low", "ci_high", "p_adj"]] = [-0.123, 0.456, 0.789]  # not what a recomputation gives
    found = [f for f in screening_findings(res, display=False) if f.question.startswith("AUC, ")]
    assert [f.question for f in found] == ["AUC, posterior minus neutral tilt", "AUC, anterior minus neutral tilt"]
    assert (found[0].ci_low, found[0].ci_high, getattr(found[0], "p_value", getattr(found[0], "p", None))) == \
        (-0.123, 0.456, 0.789)
    assert "90% CI -0.12 to 0.46, not adjusted; Bonferroni-adjusted p 0.789" in found[0].sentence
    assert found[0].adjusted == "Bonferroni over the 2 tilt-class comparisons"


def test_choice_parameters_are_checked_before_a_run(catalogue):
    chosen = select_notebooks(catalogue, "outcomes")
    assert {"holm", "fdr_bh", "BH", "none"} <= set(chosen[0].parameters["adjust"].choices)
    assert resolve_parameters(chosen, {"adjust": "bh"})["outcomes"]["adjust"] == "bh"
    with pytest.raises(ParameterError, match="'adjust' must be one of"):
        resolve_parameters(chosen, {"adjust": "hochberg"})


def test_show_and_attempt_turn_missing_parts_into_sentences():
    import pandas as pd  # noqa: PLC0415

    from hipstats.errors import AnalysisError  # noqa: PLC0415
    from hipstats.report import areas  # noqa: PLC0415

    table = pd.DataFrame({"a": [1]})
    res = type("R", (), {"not_estimable": {"dose_response": "4 participants are too few"}, "dose_response": None,
                         "rates": table, "responders": None})()
    shown = areas.show(res, "rates")
    assert shown.equals(table) and shown.attrs["confidence"] == 0.95  # the result's level travels with the table
    s = areas.show(res, "dose_response")
    assert not s and str(s) == "dose response: not estimable: 4 participants are too few"
    assert "not estimable: the data do not support it" in str(areas.show(res, "responders.by_arm"))

    def boom():
        raise AnalysisError("only one rater")

    ne = areas.attempt("rater agreement", boom)
    assert areas.show(ne, "plot") is ne and "only one rater" in ne._repr_html_()
    assert areas.show(ne, "plot") is None  # said once: later uses of the same part show nothing
    (f,) = areas.pelvis_findings(ne, display=False)
    assert f.area == "H1" and f.estimate is None and "not estimable: only one rater" in f.sentence
    with pytest.raises(ZeroDivisionError):  # other errors are not hidden
        areas.attempt("x", lambda: 1 / 0)


# ------------------------------------------------------------------ notebooks ship inside the package
def test_bundled_notebooks_are_the_default_and_copies_can_be_customised(tmp_path):
    from hipstats.notebooks import copy_notebooks, notebooks_dir
    from hipstats.report.params import default_notebooks_dir

    assert default_notebooks_dir() == notebooks_dir() == NB_DIR.resolve()
    assert {n.name for n in list_notebooks()} >= set(DEFAULT_SET) | {"power"}
    copied = copy_notebooks(tmp_path)
    assert sorted(p.stem for p in copied) == sorted(n.name for n in list_notebooks())
    assert copy_notebooks(tmp_path) == []  # existing copies are kept
    power = {n.name: n for n in list_notebooks(tmp_path)}["power"]
    assert not power.needs_data and "source" in power.parameters


def test_notebook_source_takes_the_parameter_then_the_environment(monkeypatch):
    from hipstats.errors import SourceError
    from hipstats.report.data import SOURCE_ENV, notebook_source

    monkeypatch.delenv(SOURCE_ENV, raising=False)
    with pytest.raises(SourceError, match="HIPSTATS_SOURCE") as err:
        notebook_source("")
    assert "'source' parameter" in str(err.value) and "hipstats report SOURCE" in str(err.value)
    monkeypatch.setenv(SOURCE_ENV, "/data/cohort")
    assert notebook_source("") == "/data/cohort"
    assert notebook_source("elsewhere") == "elsewhere"


def test_report_without_source_names_the_ways_to_give_one(monkeypatch, tmp_path):
    from hipstats.cli import main
    from hipstats.report.data import SOURCE_ENV

    monkeypatch.delenv(SOURCE_ENV, raising=False)
    with pytest.raises(ParameterError, match="no SOURCE given.*HIPSTATS_SOURCE"):
        run_reports(None, tmp_path / "out", only=["data_quality"], progress=False)
    assert main(["report", "--out", str(tmp_path / "out"), "-q"]) == 2
    assert not (tmp_path / "out").exists()


def test_pelvis_rm_corr_row_is_labelled_as_a_repeated_measures_r():
    """The result keeps the vocabulary (estimate); the page labels it as the repeated-measures correlation it is,
    with the CI label at the result's level."""
    import warnings  # noqa: PLC0415

    import hipstats as hs  # noqa: PLC0415
    from hipstats.questions.pelvis import pelvis_analysis  # noqa: PLC0415
    from hipstats.report.areas import NotEstimable, rm_corr_table, show  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = pelvis_analysis(hs.simulate_cohort(40, seed=1), confidence=0.9)
    assert "estimate" in res.rm_corr.columns
    t = rm_corr_table(show(res, "rm_corr"))
    labels = t.labels[0]
    assert labels["estimate"] == "Repeated-measures r" and labels["estimate__ci"] == "90% CI"
    assert "Estimate" not in labels.values() and labels["statistic"] == "t"
    assert t.frames[0]["estimate"].iloc[0] == f"{res.rm_corr['estimate'].iloc[0]:.2f}"
    ne = NotEstimable("rm corr", "too few")
    assert rm_corr_table(ne) is ne
