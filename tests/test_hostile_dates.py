"""Dates and weeks from hostile or mistyped input (issue 17): the calendar, the baseline, the week
tolerance, at their boundaries. The one-problem cases live in the corpus (tests/bad_inputs: date_in_2101,
date_in_1066, session_date_future, visit_before_baseline, week_contradicts_date,
session_week_contradicts_date); these tests pin the documented limits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

import hipstats as hs
from hipstats.data import schema
from hipstats.data.readers import read_source
from hipstats.data.validation import validate_tables

VALID = Path(__file__).parent / "bad_inputs" / "_valid"


def problems(folder, today=None):
    raw, settings, label = read_source(folder)
    _, report = validate_tables(raw, settings, source=label, today=today)
    return sorted((p.table, p.rule, p.row, p.column) for p in report)


def test_a_date_after_the_day_of_validation_is_refused():
    # the week 6 visits are dated 2026-03-16; validated on 2026-03-14 they lie in the future
    got = problems(VALID, today="2026-03-14")
    rows = [r for t, rule, r, c in got if rule == "date_range" and c == "visit_date"]
    assert rows == sorted([7, 8, 9, 10, 11, 17, 18, 19, 20, 21, 27, 28, 29, 30, 31])
    # sessions are dated up to 2026-02-11: validated on 2026-02-05, two are in the future
    got = problems(VALID, today="2026-02-05")
    assert [(t, r) for t, rule, r, c in got if t == "sessions"] == [("sessions", 3), ("sessions", 4)]


def test_one_day_of_grace_for_time_zones():
    assert problems(VALID, today="2026-03-15") == []  # 2026-03-16 is tomorrow: allowed
    assert problems(VALID, today=None) == []


def test_earliest_plausible_date_is_the_boundary(tmp_path):
    shutil.copytree(VALID, tmp_path, dirs_exist_ok=True)
    m = pd.read_csv(tmp_path / "measurements.csv", dtype=str, keep_default_na=False)
    m.loc[0, "visit_date"] = schema.EARLIEST_DATE  # allowed (and then week/date checks still apply)
    m.loc[2, "visit_date"] = str((pd.Timestamp(schema.EARLIEST_DATE) - pd.Timedelta(days=1)).date())
    m.to_csv(tmp_path / "measurements.csv", index=False)
    got = problems(tmp_path)
    assert ("measurements", "date_range", 4, "visit_date") in got
    assert ("measurements", "date_range", 2, "visit_date") not in got


@pytest.mark.parametrize("extra_days, refused", [(0, False), (7, False), (8, True), (-7, False), (-8, True)])
def test_week_tolerance_is_seven_days(tmp_path, extra_days, refused):
    shutil.copytree(VALID, tmp_path, dirs_exist_ok=True)
    m = pd.read_csv(tmp_path / "measurements.csv", dtype=str, keep_default_na=False)
    sel = (m["participant_id"] == "P002") & (m["visit"] == "week_6")
    m.loc[sel, "visit_date"] = str((pd.Timestamp("2026-02-02") + pd.Timedelta(days=42 + extra_days)).date())
    m.to_csv(tmp_path / "measurements.csv", index=False)
    got = problems(tmp_path)
    assert (("measurements", "week_date", 17, "week") in got) == refused
    assert len(got) == int(refused)


def test_week_date_message_names_both_and_the_tolerance():
    report = hs.validate(VALID.parent / "week_contradicts_date")
    (p,) = report.problems
    assert p.value == 6.0 and p.file.endswith("measurements.csv")
    for part in ("P001", "week_6", "week 6", "2026-05-11", "98 days", "2026-02-02", "56 days", "7 allowed"):
        assert part in p.message


def test_a_visit_without_a_week_is_derived_not_contradicted(tmp_path):
    # week left empty: derived from the dates, never reported as contradicting them
    shutil.copytree(VALID, tmp_path, dirs_exist_ok=True)
    m = pd.read_csv(tmp_path / "measurements.csv", dtype=str, keep_default_na=False)
    m.loc[m["visit"] == "week_6", "week"] = ""
    m.loc[m["visit"] == "week_6", "visit_date"] = "2026-05-11"
    m.to_csv(tmp_path / "measurements.csv", index=False)
    assert problems(tmp_path) == []
    weeks = hs.load_cohort(tmp_path).measurements.query("visit == 'week_6'")["week"].unique()
    assert list(weeks) == [14.0]


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_simulated_cohorts_keep_the_date_rules(tmp_path, seed):
    arms = ("usual_care", "hip_loading")
    cohort = hs.simulate_cohort(n_participants=40, arms=arms, seed=seed, weeks=(0, 4, 8, 16))
    cohort.write(tmp_path)
    report = hs.validate(tmp_path, arms=arms)
    assert report.ok, report.to_text()
    assert hs.validate(Path(__file__).parents[1] / "data" / "example").ok


def test_interim_as_of_leaves_later_rows_out_without_refusing_them():
    # an --as-of run validates the whole source against today, then leaves out what came later
    cohort = hs.load_cohort(VALID)
    interim = cohort.as_of("2026-03-01")
    assert set(interim.measurements["visit"]) == {"baseline"}
    assert set(cohort.measurements["visit"]) == {"baseline", "week_6"}
