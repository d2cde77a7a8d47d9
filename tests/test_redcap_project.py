"""REDCap as REDCap writes it: a project's raw data export and data dictionary (REDCap's file
names) read as a cohort, the same cohort as the plain CSV files; bad REDCap inputs give a
problem naming the REDCap field and record, and exit 2.

The committed fixture tests/fixtures/redcap_project/ is the first 12 participants of
data/example written by tests/redcap_export.py (independently of the reader); the full example
is exported once per module for the done-when equality test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import hipstats as hs
from hipstats.cli import main
from hipstats.data.readers.redcap import RedcapDictionary, find_redcap_project, parse_event_map
from hipstats.errors import ParameterError
from redcap_export import EXAMPLE, FIXTURE, export_redcap_project, subset_cohort

DATA = "HipMobility_DATA_2026-10-01_0930.csv"
DICTIONARY = "HipMobility_DataDictionary_2026-10-01.csv"


@pytest.fixture(scope="module")
def full_project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("redcap")
    export_redcap_project(EXAMPLE, folder)
    return folder


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The CSV twin of the committed fixture."""
    return subset_cohort(EXAMPLE, tmp_path_factory.mktemp("plain") / "cohort")


@pytest.fixture
def editable(tmp_path):
    """A copy of the fixture project to break: (folder, data export, dictionary) as frames."""
    folder = tmp_path / "project"
    shutil.copytree(FIXTURE, folder)
    read = lambda name: pd.read_csv(folder / name, dtype=str, keep_default_na=False)  # noqa: E731
    return folder, read(DATA), read(DICTIONARY)


def _same_tables(a: hs.Cohort, b: hs.Cohort) -> None:
    for name in ("participants", "measurements", "sessions"):
        x, y = getattr(a, name), getattr(b, name)
        cols = [c for c in x.columns if not c.startswith("_")]
        assert sorted(cols) == sorted(c for c in y.columns if not c.startswith("_")), name
        # -0.0 and 0.0 are one value (a REDCap code "0"); everything else must match as text
        # and a checkbox has no order: faults compare as sets
        def key(df):
            out = df[cols].astype(str).replace("-0.0", "0.0")
            if "faults" in out:
                out["faults"] = out["faults"].map(lambda v: ";".join(sorted(v.split(";"))))
            return out.sort_values(cols).reset_index(drop=True)
        pd.testing.assert_frame_equal(key(x), key(y), obj=name)


def _problems(folder, capsys, *args) -> pd.DataFrame:
    """Problems of ``hipstats validate`` (json), after checking it exits 2 without a traceback."""
    capsys.readouterr()
    assert main(["validate", str(folder), "--format", "json", *args]) == 2
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return pd.DataFrame(json.loads(out.out))


def test_project_files_are_found_by_redcaps_names():
    data, dictionary = find_redcap_project(FIXTURE)
    assert (data.name, dictionary.name) == (DATA, DICTIONARY)
    d = RedcapDictionary.read(dictionary)
    assert d.identifier_fields == ["initials"]
    assert {"notes", "calc", "descriptive", "checkbox", "radio", "dropdown", "yesno", "text"} <= \
        {f.type for f in d.fields.values()}
    header = pd.read_csv(data, nrows=0).columns
    assert {"redcap_event_name", "redcap_repeat_instrument", "redcap_data_access_group", "faults___1",
            "visit_complete"} <= set(header)


def test_the_fixture_project_is_the_plain_cohort(plain):
    _same_tables(hs.load_cohort(plain), hs.load_cohort(FIXTURE))


def test_the_example_exported_as_redcap_is_the_example_cohort(full_project):
    report = hs.validate(full_project)
    assert report.ok, report.to_text(max_rows=20)
    _same_tables(hs.load_cohort(EXAMPLE), hs.load_cohort(full_project))


def test_decoded_codes_checkboxes_site_and_pelvis():
    cohort = hs.load_cohort(FIXTURE)
    raw = pd.read_csv(FIXTURE / DATA, dtype=str, keep_default_na=False)
    assert set(raw["arm"]) - {""} <= {"1", "2", "3"}                      # codes in the export ...
    assert set(cohort.participants["arm"].astype(str)) <= {"control", "stretching", "loading"}  # ... labels in
    dags = set(raw["redcap_data_access_group"]) - {""}
    assert set(cohort.participants["site"].astype(str)) == dags
    faults = cohort.sessions["faults"].dropna().astype(str)
    assert faults.str.contains(";").any() and not faults.str.contains("___").any()
    pelvis = cohort.measurements.loc[cohort.measurements["measure"].astype(str).str.startswith("hip_ir"), "pelvis"]
    assert {"neutral", "free"} <= set(pelvis.astype(str))                 # H1 and the screening reference


def test_ignored_fields_are_reported_and_never_reach_the_tables(capsys):
    report = hs.validate(FIXTURE)
    assert report.ok, report.to_text()
    said = " ".join(report.notes)
    for field in ("enrolment_notes (notes)", "visit_comments (notes)", "bmi (calc)", "form status"):
        assert field in said
    cohort = hs.load_cohort(FIXTURE)
    cells = " ".join(str(v) for t in ("participants", "measurements", "sessions")
                     for v in getattr(cohort, t).to_numpy().ravel())
    assert "note text" not in cells and "called twice" not in cells
    assert main(["validate", str(FIXTURE)]) == 0
    assert "enrolment_notes (notes)" in capsys.readouterr().out.replace("\n", " ")


def test_the_data_file_named_explicitly_finds_its_dictionary():
    assert hs.validate(FIXTURE / DATA).ok


def test_the_dictionary_is_an_input_file_of_the_cohort():
    files = {Path(f).name for f in hs.load_cohort(FIXTURE).files}
    assert {DATA, DICTIONARY} <= files


def test_unknown_code_names_the_field_and_record(editable, capsys):
    folder, data, _ = editable
    i = data.index[data["redcap_event_name"] == "baseline_arm_1"][0]
    data.loc[i, "arm"] = "7"
    data.to_csv(folder / DATA, index=False)
    bad = _problems(folder, capsys)
    hit = bad[(bad["rule"] == "redcap_code") & (bad["column"] == "arm")]
    assert len(hit) == 1
    assert hit["row"].iloc[0] == i + 2 and str(hit["value"].iloc[0]) == "7"   # header is line 1
    assert data.loc[i, "record_id"] in hit["message"].iloc[0] and "baseline_arm_1" in hit["message"].iloc[0]
    assert hit["file"].iloc[0].endswith(DATA)


def test_bad_measure_value_names_the_redcap_field(editable, capsys):
    folder, data, _ = editable
    field = "hip_ir_deg_left_neutral_t1"
    i = data.index[data[field] != ""][0]
    data.loc[i, field] = "abc"
    data.to_csv(folder / DATA, index=False)
    bad = _problems(folder, capsys)
    hit = bad[bad["column"] == field]
    assert len(hit) == 1 and hit["row"].iloc[0] == i + 2
    assert f"record '{data.loc[i, 'record_id']}'" in hit["message"].iloc[0]
    assert "value" not in set(bad["column"])                      # never the internal column name


def test_dictionary_missing_a_field(editable, capsys):
    folder, _, dictionary = editable
    dictionary[dictionary["Variable / Field Name"] != "hip_ir_deg_left_neutral_t1"].to_csv(folder / DICTIONARY,
                                                                                           index=False)
    bad = _problems(folder, capsys)
    hit = bad[bad["rule"] == "redcap_dictionary"]
    assert list(hit["column"]) == ["hip_ir_deg_left_neutral_t1"]
    assert DICTIONARY in hit["message"].iloc[0]


def test_identifier_field_is_refused_without_its_values(editable, capsys):
    folder, data, _ = editable
    data.insert(5, "initials", "")
    data.loc[data["redcap_event_name"] == "baseline_arm_1", "initials"] = "JQX"
    data.to_csv(folder / DATA, index=False)
    capsys.readouterr()
    assert main(["validate", str(folder)]) == 2
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and "JQX" not in out.out + out.err
    bad = hs.validate(folder).to_frame()
    hit = bad[bad["rule"] == "identifier_column"]
    assert list(hit["column"]) == ["initials"] and "data dictionary" in hit["message"].iloc[0]
    assert "JQX" not in bad.astype(str).to_numpy().ravel().tolist()


def test_event_map_on_the_command_line(editable, plain, capsys, tmp_path):
    folder, data, _ = editable
    data["redcap_event_name"] = data["redcap_event_name"].replace({"baseline_arm_1": "enrol_arm_1",
                                                                   "week_12_arm_1": "final_arm_1"})
    data.to_csv(folder / DATA, index=False)
    events = "enrol_arm_1=baseline:0,final_arm_1=week_12:12"
    unmapped = hs.load_cohort(folder)
    assert {"enrol", "final"} <= set(unmapped.measurements["visit"].astype(str))
    _same_tables(hs.load_cohort(plain), hs.load_cohort(folder, event_map=parse_event_map(events)))
    assert main(["validate", str(folder), "--event-map", events]) == 0
    yaml_file = tmp_path / "events.yaml"
    yaml_file.write_text("enrol_arm_1: {visit: baseline, week: 0}\nfinal_arm_1: [week_12, 12]\n", encoding="utf-8")
    assert parse_event_map(str(yaml_file)) == parse_event_map(events)
    capsys.readouterr()
    assert main(["validate", str(folder), "--event-map", "enrol_arm_1"]) == 2
    out = capsys.readouterr()
    assert "EVENT=VISIT" in out.out + out.err and "Traceback" not in out.out + out.err


def test_event_map_rejects_a_week_that_is_not_a_number():
    with pytest.raises(ParameterError, match="week of event 'e'"):
        parse_event_map("e=baseline:soon")


def test_report_reads_the_event_map_and_lists_the_dictionary_as_input(editable, tmp_path, capsys):
    folder, data, _ = editable
    data["redcap_event_name"] = data["redcap_event_name"].replace({"baseline_arm_1": "enrol_arm_1"})
    data.to_csv(folder / DATA, index=False)
    out = tmp_path / "reports"
    capsys.readouterr()
    assert main(["report", str(folder), "--out", str(out), "--event-map", "enrol", "-q"]) == 2
    assert "EVENT=VISIT" in "".join(capsys.readouterr()) and not (out / "latest").exists()
    assert main(["report", str(folder), "--out", str(out), "--only", "data_quality", "-q", "--event-map",
                 "enrol_arm_1=baseline:0"]) == 0
    manifest = json.loads((out / "latest" / "manifest.json").read_text(encoding="utf-8"))
    names = {Path(f["path"]).name for f in manifest["inputs"]}
    assert {DATA, DICTIONARY} <= names
    page = (out / "latest" / "reports" / "data_quality.html").read_text(encoding="utf-8")
    assert "enrol" not in page and "note text" not in page
