"""Loading from every source kind gives the same cohort; loading never writes to the source."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hipstats as hs
from hipstats.errors import SourceError


def frames_equal(a: hs.Cohort, b: hs.Cohort) -> None:
    for name in ("measurements", "participants", "sessions"):
        ta, tb = a.to_tables()[name], b.to_tables()[name]
        pd.testing.assert_frame_equal(ta.reset_index(drop=True), tb.reset_index(drop=True), check_dtype=False,
                                      check_exact=False, rtol=1e-12, atol=1e-12)


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort():
    return hs.simulate_cohort(24, seed=5)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
def test_round_trip_folder(cohort, tmp_path, fmt):
    cohort.write(tmp_path, format=fmt)
    before = digest(tmp_path)
    loaded = hs.load_cohort(tmp_path)
    frames_equal(cohort, loaded)
    assert digest(tmp_path) == before  # loading never writes to the source
    assert loaded.files and all(str(tmp_path) in f for f in loaded.files)


def test_write_refuses_to_overwrite(cohort, tmp_path):
    cohort.write(tmp_path)
    with pytest.raises(hs.ParameterError, match="refusing to overwrite"):
        cohort.write(tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_excel_workbook_with_sheets(cohort, tmp_path):
    path = tmp_path / "cohort.xlsx"
    with pd.ExcelWriter(path) as xw:
        for name, table in cohort.to_tables().items():
            table.to_excel(xw, sheet_name=name, index=False)
    frames_equal(cohort, hs.load_cohort(path))


def test_single_long_file(cohort, tmp_path):
    t = cohort.to_tables()
    long = t["measurements"].merge(t["participants"], on="participant_id")
    path = tmp_path / "long.csv"
    long.to_csv(path, index=False)
    loaded = hs.load_cohort(path)
    pd.testing.assert_frame_equal(loaded.to_tables()["measurements"], t["measurements"], check_dtype=False)
    pd.testing.assert_frame_equal(loaded.to_tables()["participants"].sort_values("participant_id").reset_index(drop=True),
                                  t["participants"].sort_values("participant_id").reset_index(drop=True),
                                  check_dtype=False)


def test_sqlite(cohort, tmp_path):
    import sqlalchemy as sa

    db = tmp_path / "cohort.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    for name, table in cohort.to_tables().items():
        table.to_sql(name, engine, index=False)
    engine.dispose()
    before = digest(tmp_path)
    loaded = hs.load_cohort(f"sqlite:///{db}")
    frames_equal(cohort, loaded)
    assert digest(tmp_path) == before
    assert hs.validate(f"sqlite:///{db}").ok


def test_sqlite_missing_file_is_not_created(tmp_path):
    db = tmp_path / "missing.db"
    with pytest.raises(SourceError, match="does not exist"):
        hs.load_cohort(f"sqlite:///{db}")
    assert not db.exists()


def test_sqlite_missing_table_reported(cohort, tmp_path):
    import sqlalchemy as sa

    db = tmp_path / "partial.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    cohort.to_tables()["measurements"].to_sql("measurements", engine, index=False)
    engine.dispose()
    report = hs.validate(f"sqlite:///{db}")
    assert [(p.table, p.rule) for p in report] == [("participants", "missing_table")]


def to_redcap(cohort: hs.Cohort) -> pd.DataFrame:
    """Build a REDCap-style flat export (events, wide measure fields, a repeating session instrument)."""
    m = cohort.to_tables()["measurements"]
    m = m[m["rater"] == "R1"]
    m = m[(m["pelvis"].fillna("free") == "free")]
    m = m[m["measure"].isin(["hip_ir_deg", "aslr_deg", "pelvic_tilt_deg"])]
    field = m["measure"] + np.where(m["side"].notna(), "_" + m["side"].fillna(""), "") + "_t" + m["trial"].astype(str)
    wide = (m.assign(field=field, event=m["visit"] + "_arm_1")
              .pivot_table(index=["participant_id", "event", "visit_date"], columns="field", values="value",
                           aggfunc="first").reset_index())
    wide = wide.rename(columns={"participant_id": "record_id", "event": "redcap_event_name"})
    p = cohort.to_tables()["participants"][["participant_id", "arm", "sex", "age_years"]]
    wide = wide.merge(p.rename(columns={"participant_id": "record_id"}), on="record_id", how="left")
    base = wide["redcap_event_name"] == "baseline_arm_1"
    for c in ("arm", "sex", "age_years"):
        wide.loc[~base, c] = np.nan
    s = cohort.to_tables()["sessions"]
    reps = pd.DataFrame({"record_id": s["participant_id"], "redcap_event_name": "baseline_arm_1",
                         "redcap_repeat_instrument": "training_session", "redcap_repeat_instance": s["session"],
                         "session_date": s["date"], "week": s["week"], "exercise": s["exercise"], "sets": s["sets"],
                         "reps": s["reps"], "load_kg": s["load_kg"], "rpe": s["rpe"], "pain_nrs": s["pain_nrs"],
                         "faults": s["faults"], "completed": s["completed"].map({True: 1, False: 0})})
    wide.insert(2, "redcap_repeat_instrument", "")
    wide.insert(3, "redcap_repeat_instance", "")
    return pd.concat([wide, reps], ignore_index=True)


def test_redcap_export(cohort, tmp_path):
    path = tmp_path / "export.csv"
    to_redcap(cohort).to_csv(path, index=False)
    loaded = hs.load_cohort(path)
    assert loaded.n_participants == cohort.n_participants
    want = cohort.outcomes("hip_ir_deg").reset_index(drop=True)
    got = loaded.outcomes("hip_ir_deg")
    pd.testing.assert_frame_equal(got[["participant_id", "visit", "side", "value", "n_trials"]],
                                  want[["participant_id", "visit", "side", "value", "n_trials"]], check_dtype=False)
    assert set(loaded.measurements["visit"]) >= {"baseline", "week_12"}
    w12 = loaded.measurements.loc[loaded.measurements["visit"] == "week_12", "week"]
    assert np.allclose(w12, 12.0)  # week from the event label
    assert len(loaded.sessions) == len(cohort.sessions)
    assert loaded.participants.set_index("participant_id")["arm"].to_dict() == \
        cohort.participants.set_index("participant_id")["arm"].to_dict()


def test_redcap_event_map(cohort, tmp_path):
    df = to_redcap(cohort)
    df["redcap_event_name"] = df["redcap_event_name"].replace({"baseline_arm_1": "screening_arm_1"})
    path = tmp_path / "export.csv"
    df.to_csv(path, index=False)
    loaded = hs.load_cohort(path, event_map={"screening_arm_1": ("baseline", 0)})
    assert "baseline" in set(loaded.measurements["visit"])


def test_semicolon_csv_with_decimal_commas_and_aliases(tmp_path):
    (tmp_path / "participants.csv").write_text("ID;Group;Sex;Age\nA1;Control;F;23\nA2;Loading;m;30\n")
    (tmp_path / "measurements.csv").write_text(
        "participant_id;visit;week;measure;leg;value\n"
        "A1;baseline;0;Hip IR;L;35,5\nA1;baseline;0;hip_ir;Right;37\n"
        "A2;baseline;0;ASLR;r;81,25\nA2;baseline;0;aslr_deg;lt;79\nA2;baseline;0;tilt;;11,5\n")
    c = hs.load_cohort(tmp_path)
    m = c.measurements
    assert m["side"].tolist() == ["left", "right", "right", "left", None]
    assert m["measure"].tolist() == ["hip_ir_deg", "hip_ir_deg", "aslr_deg", "aslr_deg", "pelvic_tilt_deg"]
    assert m["value"].tolist() == [35.5, 37.0, 81.25, 79.0, 11.5]
    assert c.participants["sex"].tolist() == ["female", "male"]
    assert c.participants["arm"].tolist() == ["control", "loading"]


def test_utf16_and_bom_files_are_read(tmp_path):
    (tmp_path / "participants.csv").write_bytes("participant_id,arm,site\nP1,control,Zürich\n".encode("utf-16"))
    (tmp_path / "measurements.csv").write_bytes(
        "\ufeffparticipant_id,visit,week,measure,side,value\nP1,baseline,0,hip_ir_deg,left,30\n".encode("utf-8"))
    c = hs.load_cohort(tmp_path)
    assert c.participants["site"].tolist() == ["Zürich"]


def test_week_derived_from_dates(tmp_path):
    (tmp_path / "participants.csv").write_text("participant_id,arm\nP1,control\n")
    (tmp_path / "measurements.csv").write_text(
        "participant_id,visit,visit_date,measure,side,value\n"
        "P1,baseline,2026-01-05,hip_ir_deg,left,30\nP1,week_6,2026-02-16,hip_ir_deg,left,33\n")
    c = hs.load_cohort(tmp_path)
    assert c.measurements["week"].tolist() == [0.0, 6.0]


def test_settings_file_declares_arms(tmp_path):
    (tmp_path / "hipstats.yaml").write_text("arms: [usual_care, yoga]\n")
    (tmp_path / "participants.csv").write_text("participant_id,arm\nP1,usual_care\nP2,yoga\n")
    (tmp_path / "measurements.csv").write_text(
        "participant_id,visit,week,measure,side,value\nP1,baseline,0,hip_ir_deg,left,30\n"
        "P2,baseline,0,hip_ir_deg,left,31\n")
    c = hs.load_cohort(tmp_path)
    assert c.arms == ["usual_care", "yoga"] and c.reference_arm == "usual_care"


def test_unknown_file_type(tmp_path):
    (tmp_path / "data.json").write_text("{}")
    report = hs.validate(tmp_path / "data.json")
    assert report.rules() == ["unreadable"]


def test_corrupt_excel_is_reported(tmp_path):
    (tmp_path / "participants.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "measurements.csv").write_text("participant_id,visit,week,measure,side,value\nP1,baseline,0,hip_ir_deg,left,30\n")
    report = hs.validate(tmp_path)
    assert ("participants", "unreadable") in [(p.table, p.rule) for p in report]
