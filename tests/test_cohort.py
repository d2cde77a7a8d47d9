"""Cohort views against hand computations on a tiny cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hipstats as hs


@pytest.fixture()
def tiny(tmp_path):
    (tmp_path / "participants.csv").write_text(
        "participant_id,arm,sex,age_years\nP1,control,female,20\nP2,loading,male,30\nP3,loading,female,25\n")
    rows = ["participant_id,visit,week,visit_date,measure,side,value,trial,rater,pelvis"]
    for pid, base in (("P1", 30), ("P2", 40), ("P3", 35)):
        for visit, week, date, add in (("baseline", 0, "2026-01-05", 0), ("week_6", 6, "2026-02-16", 4)):
            if pid == "P3" and visit == "week_6":
                continue  # P3 drops out
            for side, s in (("left", 0), ("right", 2)):
                for trial, e in ((1, -1), (2, 1)):
                    rows.append(f"{pid},{visit},{week},{date},hip_ir_deg,{side},{base + add + s + e},{trial},R1,free")
                rows.append(f"{pid},{visit},{week},{date},hip_ir_deg,{side},{base + add + s + 3},1,R1,neutral")
                rows.append(f"{pid},{visit},{week},{date},hip_ir_deg,{side},{base + add + s + 9},1,R2,free")
            rows.append(f"{pid},{visit},{week},{date},pelvic_tilt_deg,,{10 + add},1,R1,")
    rows.append("P1,retest,0.4,2026-01-08,hip_ir_deg,left,31,1,R1,free")
    (tmp_path / "measurements.csv").write_text("\n".join(rows) + "\n")
    return hs.load_cohort(tmp_path)


def test_outcomes_mean_of_trials_primary_rater(tiny):
    o = tiny.outcomes("hip_ir_deg")
    p1 = o[o["participant_id"] == "P1"]
    assert p1["visit"].tolist() == ["baseline", "baseline", "week_6", "week_6"]
    assert p1["value"].tolist() == [30.0, 32.0, 34.0, 36.0]  # R2 (+9) and neutral (+3) excluded
    assert (p1["n_trials"] == 2).all()
    assert np.allclose(p1["sd"], np.sqrt(2))


def test_outcomes_filters(tiny):
    neutral = tiny.outcomes("hip_ir_deg", pelvis="neutral")
    assert neutral.loc[neutral["participant_id"] == "P1", "value"].tolist() == [33.0, 35.0, 37.0, 39.0]
    both_raters = tiny.outcomes("hip_ir_deg", rater=None, pelvis="free", visits=["baseline"], side="left")
    # P1 left baseline: trials 29, 31 (R1) and 39 (R2) -> mean 33
    assert both_raters.loc[both_raters["participant_id"] == "P1", "value"].item() == pytest.approx(33.0)
    with pytest.raises(hs.AnalysisError, match="unknown measure"):
        tiny.outcomes("hip_flexion")


def test_schedule_excludes_retest(tiny):
    s = tiny.schedule()
    assert s.loc[s["visit"] == "retest", "scheduled"].item() is False or not s.loc[s["visit"] == "retest", "scheduled"].item()
    assert tiny.scheduled_visits == ["baseline", "week_6"]
    assert "retest" in set(tiny.outcomes("hip_ir_deg", visits="all")["visit"])


def test_analysis_frame_change_and_covariates(tiny):
    f = tiny.analysis_frame("hip_ir_deg")
    p2 = f[(f["participant_id"] == "P2") & (f["side"] == "right")]
    assert p2["baseline"].tolist() == [42.0, 42.0]
    assert p2["change"].tolist() == [0.0, 4.0]
    assert p2["standing_tilt_deg"].tolist() == [10.0, 10.0]  # baseline tilt only
    assert list(f["arm"].cat.categories) == ["control", "loading"]
    assert f.loc[f["participant_id"] == "P3", "week"].max() == 0


def test_flow_and_missingness(tiny):
    flow = tiny.participant_flow().set_index("arm")
    assert flow.loc["loading", "allocated"] == 2 and flow.loc["loading", "week_6"] == 1
    assert flow.loc["loading", "retained_pct"] == 50.0
    miss = tiny.missingness()
    assert set(miss["measure"]) == {"hip_ir_deg", "pelvic_tilt_deg"}
    assert (miss["missing_pct"] == 0).all()


def test_as_of(tiny):
    early = tiny.as_of("2026-01-31")
    assert set(early.measurements["visit"]) == {"baseline", "retest"}
    assert early.n_participants == 3


def test_summary_and_repr(tiny):
    s = tiny.summary().set_index("arm")
    assert s.loc["control", "participants"] == 1
    assert "Cohort" in repr(tiny) and "<table" in tiny._repr_html_()


def test_fingerprint_is_stable(tiny, tmp_path):
    tiny.write(tmp_path / "copy")
    assert hs.load_cohort(tmp_path / "copy").fingerprint() == tiny.fingerprint()


def test_unlabelled_pelvis_is_own_posture_never_neutral(tmp_path):
    (tmp_path / "participants.csv").write_text("participant_id,arm\nP1,control\n")
    (tmp_path / "measurements.csv").write_text(
        "participant_id,visit,week,measure,side,value,pelvis\n"
        "P1,baseline,0,hip_ir_deg,left,30,\nP1,baseline,0,hip_ir_deg,right,32,free\n"
        "P1,baseline,0,hip_ir_deg,left,35,neutral\n")
    c = hs.load_cohort(tmp_path)
    assert c.outcomes("hip_ir_deg", pelvis="free")["value"].tolist() == [30.0, 32.0]
    assert c.outcomes("hip_ir_deg", pelvis="neutral")["value"].tolist() == [35.0]
    assert c.outcomes("hip_ir_deg", pelvis="posterior").empty


def test_screening_falls_back_to_own_posture_with_a_warning(tmp_path):
    c = hs.simulate_cohort(80, seed=4)
    m = c.measurements[c.measurements["pelvis"] != "neutral"].copy()
    m["pelvis"] = None
    unlabelled = hs.Cohort(m, c.participants, c.sessions, c.settings)
    with pytest.warns(UserWarning, match="own-posture IR instead"):
        res = hs.screening_analysis(unlabelled, n_boot=200, seed=1)
    assert res.settings["ir_pelvis"] == "free"
