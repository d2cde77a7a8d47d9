"""simulate_cohort: reproducible, valid by the contract, and faithful to its stated truth."""

from __future__ import annotations

import filecmp

import numpy as np
import pandas as pd
import pytest

import hipstats as hs
from hipstats.cli import main
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "data" / "example"


def test_same_seed_same_cohort():
    a, b = hs.simulate_cohort(40, seed=3), hs.simulate_cohort(40, seed=3)
    for name in ("measurements", "participants", "sessions"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    c = hs.simulate_cohort(40, seed=4)
    assert not a.measurements["value"].equals(c.measurements["value"])


def test_example_data_regenerates_bit_for_bit(tmp_path):
    """The documented command (make example-data) reproduces data/example exactly."""
    code = main(["simulate", "--out", str(tmp_path), "--n", "150", "--seed", "2026"])
    assert code == 0
    for name in ("measurements.csv", "participants.csv", "sessions.csv", "hipstats.yaml"):
        assert filecmp.cmp(tmp_path / name, EXAMPLE / name, shallow=False), name


def test_example_cohort_shape():
    c = hs.load_cohort(EXAMPLE)
    assert c.n_participants == 150 and c.arms == ["control", "stretching", "loading"]
    assert c.scheduled_visits == ["baseline", "week_3", "week_6", "week_9", "week_12"]
    assert set(c.measurements["rater"]) == {"R1", "R2"}
    assert (c.measurements["visit"] == "retest").any()


def test_simulated_cohort_passes_validation(tmp_path):
    c = hs.simulate_cohort(50, seed=9)
    c.write(tmp_path)
    assert hs.validate(tmp_path).ok


def test_truth_is_recorded():
    c = hs.simulate_cohort(30, seed=1, tilt_mask_ir=-0.5)
    t = c.truth
    assert t["tilt_mask_ir"] == -0.5 and t["arm_gain_ir"]["loading"] == 6.0
    assert len(t["participants"]) == 30 and {"ir_intercept", "adherence", "dropout_week"} <= set(t["participants"])


def test_unknown_parameter_is_refused():
    with pytest.raises(hs.ParameterError, match="unknown simulation parameter"):
        hs.simulate_cohort(30, seed=1, tilt_mask=0.1)


def test_large_sample_moments_match_truth():
    """With 3,000 participants the sample moments sit within a few standard errors of the truth."""
    c = hs.simulate_cohort(3000, seed=21, sessions=False)
    t = c.truth
    base = c.measurements[(c.measurements["visit"] == "baseline") & (c.measurements["rater"] == "R1")]
    # neutral-pelvis IR at baseline: mean = ir_mean + dominant-side effect / 2 (half the legs are dominant)
    ir = base[(base["measure"] == "hip_ir_deg") & (base["pelvis"] == "neutral")]["value"]
    expected = t["ir_mean"] + t["dominant_side_ir"] / 2
    assert abs(ir.mean() - expected) < 4 * t["ir_sd_between"] / np.sqrt(3000)
    tilt = base[base["measure"] == "pelvic_tilt_deg"]["value"]
    assert abs(tilt.mean() - t["tilt_mean"]) < 4 * t["tilt_sd_between"] / np.sqrt(3000)
    # own posture minus neutral = tilt_mask_ir x tilt (paired, same session)
    o = c.outcomes("hip_ir_deg", pelvis="free", visits=["baseline"])
    n = c.outcomes("hip_ir_deg", pelvis="neutral", visits=["baseline"])
    d = (o["value"].to_numpy() - n["value"].to_numpy()).mean()
    assert abs(d - t["tilt_mask_ir"] * t["tilt_mean"]) < 0.25
    # trial-to-trial SD of IR readings
    sd = base[base["measure"] == "hip_ir_deg"].groupby(["participant_id", "side", "pelvis"])["value"].std()
    assert abs(np.sqrt((sd ** 2).mean()) - t["ir_sd_trial"]) < 0.1
    # dropout per arm
    last = set(c.measurements.loc[c.measurements["visit"] == "week_12", "participant_id"])
    for arm, rate in t["dropout"].items():
        ids = c.participants.loc[c.participants["arm"] == arm, "participant_id"]
        observed = 1 - ids.isin(last).mean()
        assert abs(observed - rate) < 4 * np.sqrt(rate * (1 - rate) / len(ids))


def test_sessions_follow_the_progression_rule():
    c = hs.simulate_cohort(200, seed=2)
    s = c.sessions[c.sessions["exercise"] == "ffe_split_squat"].sort_values(["participant_id", "session"])
    prev = s.groupby("participant_id")[["load_kg", "faults", "pain_nrs", "completed"]].shift()
    inc = s["load_kg"] > prev["load_kg"]
    flagged = prev["completed"].eq(True) & ((prev["faults"] != "") | (prev["pain_nrs"] >= 5))
    # after a clean completed session the load always rises; after a flagged one it rises with violation_prob
    clean = prev["completed"].eq(True) & ~flagged
    assert inc[clean].all()
    rate = inc[flagged].mean()
    n = flagged.sum()
    assert abs(rate - c.truth["violation_prob"]) < 4 * np.sqrt(0.3 * 0.7 / n)
    assert (c.sessions.loc[c.participants.set_index("participant_id").loc[
        c.sessions["participant_id"], "arm"].to_numpy() == "control"].empty)
