"""SPSS (.sav, .zsav, .por) and Stata (.dta) sources: the example cohort written the way a research
group keeps it in SPSS or Stata (numeric codes with value labels, variable labels, date formats,
user-missing codes) reads back to the same cohort as the CSV folder; bad files become problems."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hipstats as hs
from hipstats.cli import main
from hipstats.data.readers.stats_files import read_stats_file

import pyreadstat  # noqa: E402  (a dependency: a missing one fails, never skips)

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "example"

# label columns stored as numeric codes with value labels, as SPSS users do
CODED = {
    "participants": {"arm": ["control", "stretching", "loading"], "sex": ["female", "male", "other"],
                     "dominant_leg": ["left", "right"]},
    "measurements": {"side": ["left", "right"], "pelvis": ["free", "neutral", "anterior", "posterior"]},
    "sessions": {"completed": ["False", "True"]},
}
DATES = {"measurements": ["visit_date"], "sessions": ["date"]}
VARIABLE_LABELS = {"participants": {"age_years": "Age at baseline (years)", "arm": "Randomised arm"},
                   "measurements": {"value": "Reading (degrees or points)"}}


def _coded_table(name: str) -> tuple[pd.DataFrame, dict]:
    """The example CSV table with label columns as codes 1..k and their value labels."""
    t = pd.read_csv(EXAMPLE / f"{name}.csv", keep_default_na=False, na_values=[""])
    labels = {}
    for col, cats in CODED.get(name, {}).items():
        codes = {c: i + 1 for i, c in enumerate(cats)}
        t[col] = t[col].astype(str).map(lambda v, codes=codes: codes.get(v, np.nan)).astype(float)
        labels[col] = {i + 1: c for i, c in enumerate(cats)}
    for col in DATES.get(name, []):
        t[col] = pd.to_datetime(t[col]).dt.date
    for col in t.columns:
        if t[col].dtype == object or pd.api.types.is_string_dtype(t[col]):
            t[col] = t[col].astype(object).where(t[col].notna(), "")
    return t, labels


def write_spss_stata(folder: Path, ext: str) -> Path:
    """The example cohort as three SPSS or Stata files with value and variable labels."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("measurements", "participants", "sessions"):
        t, labels = _coded_table(name)
        path = folder / f"{name}{ext}"
        if ext == ".dta":
            pyreadstat.write_dta(t, path, column_labels=VARIABLE_LABELS.get(name), variable_value_labels=labels)
        elif ext == ".por":
            pyreadstat.write_por(t, path, column_labels=VARIABLE_LABELS.get(name))
        else:
            pyreadstat.write_sav(t, path, column_labels=VARIABLE_LABELS.get(name), variable_value_labels=labels,
                                 compress=ext == ".zsav")
    shutil.copy(EXAMPLE / "hipstats.yaml", folder / "hipstats.yaml")
    return folder


def same_cohort(a: hs.Cohort, b: hs.Cohort) -> None:
    for name in ("measurements", "participants", "sessions"):
        ta, tb = a.to_tables()[name], b.to_tables()[name]
        assert list(ta.columns) == list(tb.columns), name
        pd.testing.assert_frame_equal(ta.reset_index(drop=True), tb.reset_index(drop=True), check_dtype=False,
                                      check_exact=False, rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def from_csv():
    return hs.load_cohort(EXAMPLE)


@pytest.mark.parametrize("ext", [".sav", ".zsav", ".dta"])
def test_example_cohort_from_spss_and_stata_equals_csv(tmp_path, from_csv, ext):
    folder = write_spss_stata(tmp_path / "cohort", ext)
    assert hs.validate(folder).ok
    cohort = hs.load_cohort(folder)
    same_cohort(from_csv, cohort)
    assert cohort.arms == from_csv.arms
    assert cohort.settings.variable_labels["participants"]["age_years"] == "Age at baseline (years)"
    assert all(f.endswith(ext) for f in cohort.files)


def test_portable_spss_file_with_short_names_beside_csv_tables(tmp_path, from_csv):
    """A .por file holds names of up to 8 characters: the contract's short aliases (pid, age...) are read."""
    folder = tmp_path / "por"
    folder.mkdir()
    for name in ("measurements", "sessions", "hipstats.yaml"):
        suffix = "" if name.endswith(".yaml") else ".csv"
        shutil.copy(EXAMPLE / f"{name}{suffix}", folder / f"{name}{suffix}")
    t = pd.read_csv(EXAMPLE / "participants.csv", keep_default_na=False)
    short = t.rename(columns={"participant_id": "PID", "age_years": "AGE", "height_cm": "HEIGHT", "mass_kg": "MASS",
                              "dominant_leg": "LEG_DOM"}).drop(columns=["LEG_DOM"])
    pyreadstat.write_por(short, folder / "participants.por", column_labels={"AGE": "Age (years)"})
    cohort = hs.load_cohort(folder)
    expected = from_csv.participants.drop(columns=["dominant_leg"])
    got = cohort.participants[expected.columns]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)
    assert cohort.settings.variable_labels["participants"] == {"AGE": "Age (years)"}


def test_user_missing_codes_are_missing_and_counted(tmp_path):
    folder = write_spss_stata(tmp_path / "um", ".sav")
    part, labels = _coded_table("participants")
    part.loc[[0, 3], "age_years"] = -99.0
    pyreadstat.write_sav(part, folder / "participants.sav", variable_value_labels=labels,
                         missing_ranges={"age_years": [-99]})
    meas, mlabels = _coded_table("measurements")
    meas.loc[[5, 6, 7], "value"] = 999.0
    pyreadstat.write_sav(meas, folder / "measurements.sav", variable_value_labels=mlabels,
                         missing_ranges={"value": [{"lo": 990.0, "hi": 999.0}]})
    report = hs.validate(folder)
    assert report.ok, report.to_text()
    assert any("2 'age_years' cells" in n and "-99" in n for n in report.notes)
    assert any("3 measurement rows" in n and "999" in n for n in report.notes)
    cohort = hs.load_cohort(folder)
    p = cohort.participants.set_index("participant_id")
    assert p["age_years"].isna().sum() == 2
    assert len(cohort.measurements) == len(hs.load_cohort(EXAMPLE).measurements) - 3
    assert cohort.settings.notes == tuple(report.notes)
    # undeclared, the same 999 readings are out of range: user-missing is what made them missing
    pyreadstat.write_sav(meas, folder / "measurements.sav", variable_value_labels=mlabels)
    assert {p.rule for p in hs.validate(folder)} == {"range"}


def test_stata_extended_missing_values_are_missing(tmp_path):
    frame = pd.DataFrame({"participant_id": ["P1", "P2", "P3"], "arm": [1, 2, 1], "age_years": [24.0, 31.0, 40.0]})
    path = tmp_path / "participants.dta"
    pyreadstat.write_dta(frame, path, variable_value_labels={"arm": {1: "control", 2: "loading"}},
                         missing_user_values={"age_years": ["a"]})
    # pyreadstat writes .a for a cell holding the letter; make P2's age a user-missing .a
    frame["age_years"] = frame["age_years"].astype(object)
    frame.loc[1, "age_years"] = "a"
    pyreadstat.write_dta(frame, path, variable_value_labels={"arm": {1: "control", 2: "loading"}},
                         missing_user_values={"age_years": ["a"]})
    raw = read_stats_file(path, "participants")
    assert raw.frame["arm"].tolist() == ["control", "loading", "control"]
    assert raw.frame["age_years"].isna().tolist() == [False, True, False]
    assert raw.notes and "1 'age_years' cell" in raw.notes[0]


def test_dates_arrive_as_dates(tmp_path, from_csv):
    folder = write_spss_stata(tmp_path / "d", ".sav")
    raw = read_stats_file(folder / "sessions.sav", "sessions")
    first = raw.frame["date"].dropna().iloc[0]
    assert isinstance(first, (dt.date, dt.datetime, pd.Timestamp))
    assert hs.load_cohort(folder).sessions["date"].dtype.kind == "M"


def _cli(args, capsys):
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_unlabelled_code_is_a_problem_naming_file_row_column_value(tmp_path, capsys):
    folder = write_spss_stata(tmp_path / "bad", ".sav")
    part, labels = _coded_table("participants")
    part.loc[4, "arm"] = 4.0
    pyreadstat.write_sav(part, folder / "participants.sav", variable_value_labels=labels)
    report = hs.validate(folder)
    bad = [p for p in report if p.rule == "value_label"]
    assert len(bad) == 1
    p = bad[0]
    assert (p.table, p.row, p.column, p.value) == ("participants", 5, "arm", "4")
    assert p.file.endswith("participants.sav") and "1 = control" in p.message
    assert [q.rule for q in report if q.column == "arm"] == ["value_label"]  # said once, not also unknown_arm
    rc, text = _cli(["validate", str(folder)], capsys)
    assert rc == 2 and "value_label" in text and "Traceback" not in text


def test_string_where_a_number_is_expected(tmp_path, capsys):
    folder = write_spss_stata(tmp_path / "str", ".sav")
    meas, labels = _coded_table("measurements")
    meas["value"] = meas["value"].map(lambda v: f"{v:g}")
    meas.loc[9, "value"] = "n/m"
    pyreadstat.write_sav(meas, folder / "measurements.sav", variable_value_labels=labels)
    report = hs.validate(folder)
    [p] = [p for p in report]
    assert (p.rule, p.row, p.column, p.value) == ("type", 10, "value", "n/m")
    assert p.file.endswith("measurements.sav")
    rc, text = _cli(["validate", str(folder)], capsys)
    assert rc == 2 and "Traceback" not in text


@pytest.mark.parametrize("ext", [".sav", ".dta", ".por", ".zsav"])
def test_corrupt_file_is_a_clear_problem(tmp_path, capsys, ext):
    folder = write_spss_stata(tmp_path / "corrupt", ".sav")
    (folder / "participants.sav").unlink()
    (folder / f"participants{ext}").write_bytes(b"$FL2@(#) not really SPSS" + bytes(range(256)) * 4)
    report = hs.validate(folder)
    [p] = [p for p in report if p.table == "participants"]
    assert p.rule == "unreadable" and p.file.endswith(f"participants{ext}")
    assert ("SPSS" if ext != ".dta" else "Stata") in p.message
    rc, text = _cli(["validate", str(folder)], capsys)
    assert rc == 2 and "unreadable" in text and "Traceback" not in text
    with pytest.raises(hs.ValidationError):
        hs.load_cohort(folder)


def test_single_long_spss_file(tmp_path, from_csv):
    t = from_csv.to_tables()
    long = t["measurements"].merge(t["participants"], on="participant_id")
    arms = {"control": 1, "stretching": 2, "loading": 3}
    long["arm"] = long["arm"].map(arms).astype(float)
    long["visit_date"] = pd.to_datetime(long["visit_date"]).dt.date
    for c in long.columns:
        if long[c].dtype == object or pd.api.types.is_string_dtype(long[c]):
            long[c] = long[c].astype(object).where(long[c].notna(), "")
    path = tmp_path / "cohort.sav"
    pyreadstat.write_sav(long, path, variable_value_labels={"arm": {v: k for k, v in arms.items()}})
    loaded = hs.load_cohort(path)
    pd.testing.assert_frame_equal(loaded.to_tables()["measurements"], t["measurements"], check_dtype=False)
    assert sorted(loaded.participants["arm"].unique()) == sorted(arms)
