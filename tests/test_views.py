"""The view layer (hipstats.cohort.views): one rater rule, names found in the data, exclusions counted.

The issue's "done when": a cohort whose second rater alone measured some visits keeps those
visits in every analysis; other rater names give the same reliability, MDC and responder
results; h2/screening/pelvis results pickle; every left-out row is counted in the notes.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import hipstats as hs
from hipstats.cohort import views
from hipstats.errors import AnalysisError


def _cohort(m, c, label="relabelled", **settings):
    s = c.settings
    if settings:
        s = type(s)(arms=s.arms, reference_arm=s.reference_arm, extra={**s.extra, **settings})
    return hs.Cohort(m, c.participants, c.sessions, s, label)


@pytest.fixture(scope="module")
def r2_alone():
    """12 participants; rater R2 alone measured the baseline visit of 4 of them."""
    c = hs.simulate_cohort(12, seed=5, reliability_fraction=0.0)
    m = c.measurements.copy()
    ids = sorted(m["participant_id"].unique())[:4]
    at = m["participant_id"].isin(ids) & (m["visit"] == "baseline")
    m.loc[at, "rater"] = "R2"
    return _cohort(m, c, "R2 alone at 4 baselines"), ids


def test_second_rater_alone_keeps_the_visit_in_every_view(r2_alone):
    c, ids = r2_alone
    assert views.primary_rater(c, "hip_ir_deg") == "R1"
    v = views.trial_means(c, "hip_ir_deg")
    base = v[v["visit"] == "baseline"]
    assert base["participant_id"].nunique() == 12
    assert set(base.loc[base["participant_id"].isin(ids), "rater"]) == {"R2"}
    assert not any("rater" in n for n in v.attrs["notes"])  # nothing left out by the rater rule
    out = c.outcomes("hip_ir_deg")
    assert out.loc[out["visit"] == "baseline", "participant_id"].nunique() == 12
    af = c.analysis_frame("hip_ir_deg")
    assert af.loc[af["participant_id"].isin(ids), "baseline"].notna().all()
    flow = c.participant_flow()
    assert flow["baseline"].sum() == 12


def test_second_rater_alone_keeps_the_visit_in_every_analysis(r2_alone):
    c, ids = r2_alone
    warnings.simplefilter("ignore")
    h2 = hs.h2_analysis(c, mdc=5.0)
    pc = h2.participant_change
    assert pc.loc[pc["participant_id"].isin(ids), "baseline"].notna().all()
    assert h2.model.ngroups == 12
    h1 = hs.pelvis_analysis(c)
    f = h1.frame
    assert set(ids) <= set(f.loc[f["visit"] == "baseline", "participant_id"])
    h3 = hs.screening_analysis(c)
    assert set(ids) <= set(h3.units["participant_id"])
    change = views.visit_change(views.trial_means(c, "hip_ir_deg", side="mean"),
                                baseline="baseline", final=views.scheduled_visits(c)[-1])
    assert change.loc[change["participant_id"].isin(ids), "baseline"].notna().all()


# ---------------------------------------------------------------------------------------------
# other rater names give the same results
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def renamed():
    c = hs.simulate_cohort(40, seed=3)
    m = c.measurements.assign(rater=c.measurements["rater"].map({"R1": "JS", "R2": "AB"}))
    return c, _cohort(m, c, "JS/AB")


def test_other_rater_names_same_reliability_mdc_and_responders(renamed):
    c, c2 = renamed
    warnings.simplefilter("ignore")
    a = hs.reliability_summary(c, n_boot=60, seed=1).to_frame()
    b = hs.reliability_summary(c2, n_boot=60, seed=1).to_frame()
    assert "session-to-session" in set(a["design"])
    num = a.select_dtypes("number").columns
    pd.testing.assert_frame_equal(a[num].reset_index(drop=True), b[num].reset_index(drop=True))
    assert (a["design"].to_numpy() == b["design"].to_numpy()).all()
    h_a, h_b = hs.h2_analysis(c), hs.h2_analysis(c2)
    assert h_a.mdc is not None and h_a.mdc == pytest.approx(h_b.mdc, rel=1e-12)
    pd.testing.assert_frame_equal(h_a.responders.by_arm, h_b.responders.by_arm)
    assert any("JS" in n for n in h_b.notes)  # the rater the MDC came from is named


def test_primary_rater_is_found_by_cells_not_by_name(renamed):
    _, c2 = renamed
    assert views.primary_rater(c2, "hip_ir_deg") == "JS"  # alphabetically AB comes first
    assert views.retest_visit(c2) == "retest"


def test_ambiguous_primary_rater_is_an_error_naming_the_setting():
    m = pd.DataFrame({"participant_id": ["a", "a", "b", "c"], "visit": "baseline", "week": 0.0,
                      "measure": "hip_ir_deg", "side": "left", "value": [30.0, 33.0, 31.0, 32.0],
                      "rater": ["JS", "AB", "JS", "AB"]})
    with pytest.raises(AnalysisError, match="primary_rater"):
        views.trial_means(m, "hip_ir_deg")
    ok = m[m["participant_id"] != "a"]  # no overlap: the choice does not matter, no error
    assert len(views.trial_means(ok, "hip_ir_deg")) == 2


def test_declared_names_win_and_unknown_ones_are_errors(renamed):
    c, _ = renamed
    d = _cohort(c.measurements, c, primary_rater="R2", retest_visit="week_3")
    assert views.primary_rater(d, "hip_ir_deg") == "R2"
    assert views.retest_visit(d) == "week_3"
    bad = _cohort(c.measurements, c, retest_visit="nope")
    with pytest.raises(AnalysisError, match="retest_visit 'nope' declared but not in the data"):
        views.retest_visit(bad)
    sched = _cohort(c.measurements, c, scheduled_visits=["baseline", "week_12"])
    assert views.scheduled_visits(sched) == ["baseline", "week_12"]


def test_two_retest_candidates_are_ambiguous(renamed):
    c, _ = renamed
    m = c.measurements
    extra = m[m["visit"] == "retest"].assign(visit="retest_2", week=lambda d: d["week"] + 0.1)
    with pytest.raises(AnalysisError, match="retest visit is ambiguous"):
        views.retest_visit(pd.concat([m, extra], ignore_index=True))


# ---------------------------------------------------------------------------------------------
# exclusions are counted, with the reason
# ---------------------------------------------------------------------------------------------
def test_rater_overlap_is_counted_in_the_notes():
    c = hs.simulate_cohort(30, seed=2)
    m = c.measurements
    rows = m[(m["measure"] == "hip_ir_deg") & (m["rater"] == "R2") & ((m["pelvis"] == "free") | m["pelvis"].isna())
             & m["visit"].isin(views.scheduled_visits(c))]
    v = views.trial_means(c, "hip_ir_deg")
    note = f"{len(rows)} rows left out: rater R2 measured the same participant, visit and side as R1 (the primary rater)"
    assert note in v.attrs["notes"]
    retest = (m["measure"] == "hip_ir_deg") & (m["visit"] == "retest") & ((m["pelvis"] == "free") | m["pelvis"].isna())
    assert f"{int(retest.sum())} rows left out: visit 'retest' is not a scheduled visit" in v.attrs["notes"]
    warnings.simplefilter("ignore")
    h2 = hs.h2_analysis(c, mdc=5.0)
    assert note in h2.notes


def test_missing_values_and_baselines_are_counted():
    m = pd.DataFrame({"participant_id": ["a", "a", "b", "b"], "visit": ["baseline", "week_6"] * 2,
                      "week": [0.0, 6.0] * 2, "measure": "hip_ir_deg", "side": "left",
                      "value": [30.0, 34.0, np.nan, 33.0]})
    v = views.trial_means(m, "hip_ir_deg")
    assert v.attrs["notes"] == ["1 row left out: no hip_ir_deg value recorded"]
    ch = views.change_from_baseline(v)
    assert "1 participant left out: no 'baseline' value, so no change from baseline" in ch.attrs["notes"]


def test_no_side_is_one_thing():
    m = pd.DataFrame({"participant_id": "a", "visit": "baseline", "week": 0.0, "measure": "pelvic_tilt_deg",
                      "side": [None, "", "none", np.nan], "value": [10.0, 12.0, 14.0, 16.0]})
    v = views.trial_means(m, "pelvic_tilt_deg", pelvis=None)
    assert len(v) == 1 and v["side"].isna().all() and v["n_trials"].iloc[0] == 4


# ---------------------------------------------------------------------------------------------
# results pickle
# ---------------------------------------------------------------------------------------------
def test_h2_screening_pelvis_results_pickle():
    warnings.simplefilter("ignore")
    c = hs.simulate_cohort(36, seed=4)
    for res in (hs.h2_analysis(c, mdc=5.0), hs.screening_analysis(c), hs.pelvis_analysis(c)):
        back = pickle.loads(pickle.dumps(res))
        pd.testing.assert_frame_equal(back.summary(), res.summary())
        assert back.notes == res.notes
        assert "<table" in back._repr_html_()
    h2 = pickle.loads(pickle.dumps(hs.h2_analysis(c, mdc=5.0)))
    # the unpickled model still builds designs (EMMs on a new grid)
    emm = hs.emmeans(h2.model, "arm", by="visit")
    pd.testing.assert_frame_equal(emm.to_frame(), h2.emm.to_frame())
