"""Tests for hipstats.questions.loading (H4) and the load figures.

References used:
* hand-computed volume-load, adherence, pain and compliance tables for small typed-in logs;
* closed forms: OLS slope and CI (scipy.stats.linregress), Wilson interval (typed formula),
  the dose-response OLS (numpy least squares on the design matrix);
* simulation truth: a small numpy generator of training logs following the progression rule
  (flag probability q, violation probability v, adherence a: expected progression
  2 x 2.5 x a x (1 - (1 - v) q) kg/week), and hs.simulate_cohort (violation_prob 0.3,
  pain_flag_prob 0.03, adherence_mean 0.85, expected load paths from its latent adherence).
"""

from __future__ import annotations

import types
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from hipstats.errors import AnalysisError  # noqa: E402
from hipstats.questions.loading import (
    adherence,
    dose_response,
    loading_analysis,
    pain_flags,
    progression_compliance,
    progression_slopes,
    volume_load,
)

# ----------------------------------------------------------------------------------------
# small typed-in log
# ----------------------------------------------------------------------------------------
LOG = pd.DataFrame({
    "participant_id": ["a"] * 6 + ["b"] * 4,
    "session": [1, 1, 2, 2, 3, 3, 1, 1, 2, 2],
    "week": [0.25, 0.25, 0.75, 0.75, 1.25, 1.25, 0.25, 0.25, 1.25, 1.25],
    "exercise": ["ffe_split_squat", "glute_bridge"] * 5,
    "sets": [3, 2, 3, 2, 3, 2, 4, 2, 4, 2],
    "reps": [8, 10, 8, 10, 8, 10, 6, 12, 6, 12],
    "load_kg": [20, 0, 22.5, 0, 25, 0, 30, 0, 30, 0],
    "pain_nrs": [1, 1, 2, 6, 1, 0, 0, 0, 7, 1],
    "faults": ["back_knee_lean", "", "", "", "", "", "", "", "", ""],
    "completed": [True, True, True, True, True, False, True, True, True, True],
})
PEOPLE = pd.DataFrame({"participant_id": ["a", "b"], "arm": ["loading", "stretching"],
                       "mass_kg": [80.0, 60.0]})


def test_volume_load_hand_computed():
    s = volume_load(LOG, participants=PEOPLE).set_index(["participant_id", "session"])
    # a1: 3*8*20 = 480; a2: 3*8*22.5 = 540; a3: 3*8*25 = 600 (bridge not completed)
    # b1: 4*6*30 = 720; b2: 720
    assert s["volume_load_kg"].tolist() == [480.0, 540.0, 600.0, 720.0, 720.0]
    assert s["reps_volume"].tolist() == [44, 44, 24, 48, 48]
    assert s["bodyweight_reps"].tolist() == [20, 20, 0, 24, 24]
    assert s.loc[("a", 3), "n_completed"] == 1 and s.loc[("a", 3), "n_rows"] == 2
    # whole weeks: a's sessions 1, 2 are week 0, session 3 week 1
    w = volume_load(LOG, level="week", participants=PEOPLE).set_index(["participant_id", "week"])
    assert w["volume_load_kg"].tolist() == [1020.0, 600.0, 720.0, 720.0]
    assert w["sessions"].tolist() == [2, 1, 1, 1]
    assert w.loc[("a", 1.0), "cumulative_volume_kg"] == 1620.0
    assert w.loc[("b", 1.0), "cumulative_volume_kg"] == 1440.0


def test_volume_load_bodyweight_mass():
    # glute bridge at 0.5 x body mass: a: 2*10*40 = 800 in sessions 1, 2; b: 2*12*30 = 720
    s = volume_load(LOG, participants=PEOPLE, bodyweight="mass",
                    bodyweight_fraction={"glute_bridge": 0.5})
    assert s["volume_load_kg"].tolist() == [1280.0, 1340.0, 600.0, 1440.0, 1440.0]
    with pytest.raises(AnalysisError, match="mass_kg"):
        volume_load(LOG, participants=PEOPLE.drop(columns="mass_kg"), bodyweight="mass")
    with pytest.raises(AnalysisError, match="bodyweight must be"):
        volume_load(LOG, bodyweight="kg")


def test_volume_load_arm_week_and_levels():
    aw = volume_load(LOG, level="arm_week", participants=PEOPLE)
    assert set(aw["arm"]) == {"loading", "stretching"}
    assert aw.set_index(["arm", "week"]).loc[("loading", 0.0), "volume_load_kg"] == 1020.0
    with pytest.raises(AnalysisError, match="participants table"):
        volume_load(LOG, level="arm_week")
    with pytest.raises(AnalysisError, match="level must be"):
        volume_load(LOG, level="month")


def test_no_sessions_at_all():
    empty = LOG.iloc[:0]
    for fn in (volume_load, progression_slopes, adherence, pain_flags, progression_compliance):
        with pytest.raises(AnalysisError, match="no training sessions"):
            fn(empty)
    cohort = types.SimpleNamespace(sessions=empty, participants=PEOPLE)
    with pytest.raises(AnalysisError, match="no training sessions"):
        loading_analysis(cohort)


def test_week_from_dates():
    log = LOG.drop(columns="week").assign(date=pd.to_datetime("2026-01-05")
                                          + pd.to_timedelta(LOG["week"] * 14, unit="D"))
    w = volume_load(log, level="week")
    # 0.25 -> day 3.5 -> week 0; 0.75 -> day 10.5 -> week 1 (relative to the first session)
    assert w.loc[w["participant_id"] == "a", "week"].tolist() == [0.0, 1.0, 2.0]


def test_adherence_and_wilson_hand_computed():
    per = adherence(LOG, participants=PEOPLE).set_index("participant_id")
    assert per.loc["a", ["prescribed", "completed"]].tolist() == [6, 5]
    k, n, z = 5, 6, stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert per.loc["a", "adherence"] == pytest.approx(5 / 6)
    assert per.loc["a", "adherence_ci_low"] == pytest.approx(centre - half, abs=1e-12)
    assert per.loc["a", "adherence_ci_high"] == pytest.approx(centre + half, abs=1e-12)
    sess = adherence(LOG, unit="session", participants=PEOPLE).set_index("participant_id")
    assert sess.loc["a", ["prescribed", "completed"]].tolist() == [3, 3]
    arm = adherence(LOG, level="arm", participants=PEOPLE).set_index("arm")
    assert arm.loc["loading", "adherence"] == pytest.approx(5 / 6)
    assert arm.loc["stretching", "n_participants"] == 1


def test_pain_flags_hand_computed():
    per = pain_flags(LOG, participants=PEOPLE).set_index("participant_id")
    # a: session 2 has pain 6 (bridge); b: session 2 has pain 7
    assert per.loc["a", ["sessions", "flagged", "first_flag_week"]].tolist() == [3, 1, 0.75]
    assert per.loc["b", ["sessions", "flagged", "first_flag_week"]].tolist() == [2, 1, 1.25]
    rows = pain_flags(LOG, unit="row", participants=PEOPLE).set_index("participant_id")
    assert rows.loc["a", ["rows", "flagged"]].tolist() == [5, 1]  # the missed row is not counted
    flags = pain_flags(LOG, level="flags", threshold=7)
    assert flags[["participant_id", "session", "max_pain"]].values.tolist() == [["b", 2, 7.0]]
    with pytest.raises(AnalysisError, match="pain_nrs"):
        pain_flags(LOG.assign(pain_nrs=np.nan))


def test_compliance_hand_computed():
    res = progression_compliance(LOG, participants=PEOPLE)
    # split squat, a: 20 -> 22.5 after a fault (violation), 22.5 -> 25 after a clean squat but a
    # painful bridge: a violation only with scope="session"; b: 30 -> 30 (no increase)
    v = res.violations
    assert v[["participant_id", "session", "prev_load_kg", "load_kg"]].values.tolist() == [
        ["a", 2, 20.0, 22.5]]
    assert v["prev_faults"].tolist() == ["back_knee_lean"]
    by_p = res.by_participant.set_index("participant_id")
    assert by_p.loc["a", ["transitions", "increases", "flagged", "violations"]].tolist() == [2, 2, 1, 1]
    assert by_p.loc["a", "unsafe_share"] == 0.5
    sess = progression_compliance(LOG, participants=PEOPLE, scope="session")
    assert sess.violations["session"].tolist() == [2, 3]
    assert set(res.grid["status"]) == {"ok", "progressed after fault/pain"}
    assert "glute_bridge" not in set(res.transitions["exercise"])  # bodyweight: nothing to raise
    with pytest.raises(AnalysisError, match="scope"):
        progression_compliance(LOG, scope="week")


def test_progression_slopes_closed_form():
    log = make_log(n=6, seed=1)
    out = progression_slopes(log)
    for _, row in out.iterrows():
        g = log[(log["participant_id"] == row["participant_id"]) & log["completed"]
                & (log["exercise"] == row["exercise"])]
        lr = stats.linregress(g["week"], g["load_kg"])
        crit = stats.t.ppf(0.975, len(g) - 2)
        assert row["slope_kg_per_week"] == pytest.approx(lr.slope, abs=1e-10)
        assert row["slope_kg_per_week_ci_low"] == pytest.approx(lr.slope - crit * lr.stderr, abs=1e-10)
    assert set(out["exercise"]) == {"ffe_split_squat"}  # bodyweight exercise left out
    with pytest.raises(AnalysisError, match="external load"):
        progression_slopes(log[log["exercise"] == "glute_bridge"])


# ----------------------------------------------------------------------------------------
# a generator with known truth
# ----------------------------------------------------------------------------------------
def make_log(n=40, weeks=12, seed=0, q_fault=0.3, p_pain=0.05, violation=0.3, a_mean=0.85,
             a_conc=10.0, arm="loading", start=20.0):
    """Two sessions a week; a loaded split squat (+2.5 kg after a completed session without
    fault or pain, or anyway with probability ``violation``) and a bodyweight glute bridge.
    Adherence a_i ~ Beta(mean a_mean, concentration a_conc); fault and pain per completed row."""
    rng = np.random.default_rng(seed)
    a = rng.beta(a_mean * a_conc, (1 - a_mean) * a_conc, n)
    k = np.arange(2 * weeks)
    done = rng.random((n, k.size)) < a[:, None]
    fault = done & (rng.random((n, k.size)) < q_fault)
    pain = np.where(done, np.where(rng.random((n, k.size)) < p_pain, 7.0, 1.0), np.nan)
    flag = fault | (pain >= 5)
    viol = rng.random((n, k.size)) < violation
    inc = np.zeros((n, k.size))
    inc[:, 1:] = (done[:, :-1] & (~flag[:, :-1] | viol[:, 1:])) * 2.5
    load = start + np.cumsum(inc, axis=1)
    pid = np.repeat([f"{arm[:1].upper()}{i:03d}" for i in range(n)], k.size)
    sq = pd.DataFrame({"participant_id": pid, "session": np.tile(k + 1, n),
                       "week": np.tile(k / 2 + 0.25, n), "exercise": "ffe_split_squat",
                       "sets": 3, "reps": 8, "load_kg": load.ravel(),
                       "faults": np.where(fault.ravel(), "back_knee_lean", ""),
                       "pain_nrs": pain.ravel(), "completed": done.ravel()})
    bridge = sq.assign(exercise="glute_bridge", load_kg=0.0, faults="", pain_nrs=1.0)
    bridge["pain_nrs"] = np.where(bridge["completed"], 1.0, np.nan)
    log = pd.concat([sq, bridge], ignore_index=True)
    log.attrs["adherence"] = dict(zip(pd.unique(pid), a))
    return log


def _truth_slope(q_fault, p_pain, violation, a):
    q = 1 - (1 - q_fault) * (1 - p_pain)
    return 2 * 2.5 * a * (1 - (1 - violation) * q)


@pytest.mark.slow
def test_progression_and_rule_rates_recover_truth_at_nominal_rate():
    """Over 20 simulated arms (30 participants), the 95 % CIs of the arm-mean progression slope
    (truth 5 a (1 - 0.7 q) averaged over participants' adherence), of the violation rate
    (truth 0.3), of the row pain rate (0.05) and of the mean adherence (0.85) cover the truth
    in >= 17 of 20 (expect 19; P(fail) < 2 % each)."""
    hits = dict(slope=0, violation=0, pain=0, adherence=0)
    people = None
    for seed in range(20):
        log = make_log(n=30, seed=seed)
        people = pd.DataFrame({"participant_id": log["participant_id"].unique(), "arm": "loading"})
        truth = _truth_slope(0.3, 0.05, 0.3, 0.85)  # E over a_i of a linear function of a_i
        arm = progression_slopes(log, level="arm", participants=people).iloc[0]
        hits["slope"] += arm["mean_slope_ci_low"] <= truth <= arm["mean_slope_ci_high"]
        comp = progression_compliance(log, participants=people).by_arm.iloc[0]
        hits["violation"] += comp["violation_rate_ci_low"] <= 0.3 <= comp["violation_rate_ci_high"]
        # per completed row: squat rows carry pain with prob 0.05, bridge rows never
        pain_rows = pain_flags(log[log["exercise"] == "ffe_split_squat"], unit="row",
                               level="arm", participants=people).iloc[0]
        hits["pain"] += pain_rows["rate_ci_low"] <= 0.05 <= pain_rows["rate_ci_high"]
        adh = adherence(log, level="arm", participants=people).iloc[0]
        hits["adherence"] += adh["mean_adherence_ci_low"] <= 0.85 <= adh["mean_adherence_ci_high"]
    assert min(hits.values()) >= 17, hits


def test_participant_slope_tracks_adherence():
    """Per participant, the expected slope is 5 a_i (1 - 0.7 q): the participants' slopes
    regress on their latent adherence with slope 5 (1 - 0.7 q) (CI covers)."""
    log = make_log(n=150, seed=9, q_fault=0.2, p_pain=0.0)
    out = progression_slopes(log).set_index("participant_id")
    a = pd.Series(log.attrs["adherence"]).reindex(out.index)
    lr = stats.linregress(a, out["slope_kg_per_week"])
    truth = _truth_slope(0.2, 0.0, 0.3, 1.0)
    crit = stats.t.ppf(0.975, len(a) - 2)
    assert abs(lr.slope - truth) < crit * lr.stderr
    assert abs(lr.intercept) < crit * lr.intercept_stderr


# ----------------------------------------------------------------------------------------
# dose-response
# ----------------------------------------------------------------------------------------
def _dose_cohort(n=90, seed=0, beta=0.5):
    """Three arms; the loading arm's cumulative volume-load varies with adherence; IR change at
    week 12 = 1 + arm effect + beta * volume / 1000 - 0.1 (baseline - 36) + noise."""
    rng = np.random.default_rng(seed)
    arms = np.array(["control", "stretching", "loading"])[np.arange(n) % 3]
    ids = [f"P{i:03d}" for i in range(n)]
    logs = []
    for arm in ("stretching", "loading"):
        who = [p for p, a in zip(ids, arms) if a == arm]
        log = make_log(n=len(who), seed=seed + (arm == "loading"), arm=arm,
                       start=0.0 if arm == "stretching" else 20.0, violation=1.0, q_fault=0.0,
                       p_pain=0.0)
        if arm == "stretching":
            log["load_kg"] = 0.0
        mapping = dict(zip(pd.unique(log["participant_id"]), who))
        logs.append(log.assign(participant_id=log["participant_id"].map(mapping)))
    sessions = pd.concat(logs, ignore_index=True)
    vol = (sessions[sessions["completed"]].assign(v=lambda d: d.sets * d.reps * d.load_kg)
           .groupby("participant_id")["v"].sum().reindex(ids).fillna(0.0))
    base = rng.normal(36, 8, n)
    effect = pd.Series({"control": 0.0, "stretching": 1.0, "loading": 2.0})[arms].to_numpy()
    change = 1 + effect + beta * vol.to_numpy() / 1000 - 0.1 * (base - 36) + rng.normal(0, 2, n)
    rows = []
    for visit, week, value in (("baseline", 0.0, base), ("week_12", 12.0, base + change)):
        for side in ("left", "right"):
            for trial in (1, 2):
                rows.append(pd.DataFrame({"participant_id": ids, "visit": visit, "week": week,
                                          "measure": "hip_ir_deg", "side": side, "trial": trial,
                                          "pelvis": "free", "value": value}))
    m = pd.concat(rows, ignore_index=True)
    people = pd.DataFrame({"participant_id": ids, "arm": arms})
    return types.SimpleNamespace(measurements=m, sessions=sessions, participants=people), vol


def test_dose_response_closed_form_and_truth():
    cohort, vol = _dose_cohort(seed=2)
    res = dose_response(cohort).set_index("term")
    d = res.attrs["data"].set_index("participant_id")
    assert np.allclose(d["volume_load_kg"], vol.reindex(d.index))
    X = np.column_stack([np.ones(len(d)), d["arm"] == "loading", d["arm"] == "stretching",
                         d["volume_load_kg"] / 1000, d["baseline"]]).astype(float)
    b, *_ = np.linalg.lstsq(X, d["change"].to_numpy(), rcond=None)
    assert res.loc["volume_load_per_1000kg", "estimate"] == pytest.approx(b[3], abs=1e-8)
    assert res.loc["baseline", "estimate"] == pytest.approx(b[4], abs=1e-8)
    row = res.loc["volume_load_per_1000kg"]
    assert row["ci_low"] <= 0.5 <= row["ci_high"]   # truth 0.5 deg per 1000 kg
    assert res.attrs["n_participants"] == 90


def test_dose_response_needs_volume_variation_within_arm():
    cohort, _ = _dose_cohort(seed=3)
    s = cohort.sessions
    cohort.sessions = s.assign(completed=True, load_kg=np.where(s["load_kg"] > 0, 20.0, 0.0))
    with pytest.raises(AnalysisError, match="does not vary within any arm"):
        dose_response(cohort)


# ----------------------------------------------------------------------------------------
# the package's simulated cohort
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    from hipstats.cohort.simulate import simulate_cohort

    return simulate_cohort(n_participants=150, seed=7)


def test_simulated_cohort_rates_match_truth(sim):
    t = sim.truth
    comp = progression_compliance(sim).by_arm.set_index("arm")
    assert comp.loc["loading", "violation_rate_ci_low"] <= t["violation_prob"] <= comp.loc[
        "loading", "violation_rate_ci_high"]
    assert "control" not in comp.index and "stretching" not in comp.index  # no loads to raise
    rows = pain_flags(sim, unit="row", level="arm").set_index("arm")
    for arm in ("loading", "stretching"):
        assert rows.loc[arm, "rate_ci_low"] <= t["pain_flag_prob"] <= rows.loc[arm, "rate_ci_high"]
        adh = adherence(sim, level="arm").set_index("arm").loc[arm]
        assert adh["mean_adherence_ci_low"] <= t["adherence_mean"] <= adh["mean_adherence_ci_high"]


def test_simulated_cohort_progression_matches_expected_paths(sim):
    """Expected load path under the simulator's rule, given each participant's latent
    adherence a_i: E[L_k] = L_0 + 2.5 a_i sum_{j<k} (1 - (1 - v) P(flag_j)), with
    P(flag_j) = 1 - (1 - logistic(-0.5 - 0.15 w_j)) (1 - 0.03). The mean over participants of
    the OLS slope of that expected path on each participant's completed weeks lies in the CI
    of the observed arm-mean slope."""
    t = sim.truth
    a = t["participants"].set_index("participant_id")["adherence"]
    out = progression_slopes(sim)
    log = sim.sessions[sim.sessions["completed"]]
    expected = []
    for _, row in out.iterrows():
        g = log[(log["participant_id"] == row["participant_id"])
                & (log["exercise"] == row["exercise"])].sort_values("session")
        k = g["session"].to_numpy() - 1
        weeks_all = (np.arange(k.max() + 1) + 0.5) / 2
        logit = t["fault_logit_intercept"] + t["fault_logit_week"] * weeks_all
        p_flag = 1 - (1 - 1 / (1 + np.exp(-logit))) * (1 - t["pain_flag_prob"])
        step = t["load_increment_kg"] * a[row["participant_id"]] * (
            1 - (1 - t["violation_prob"]) * p_flag)
        path = np.r_[0.0, np.cumsum(step)[:-1]]
        expected.append(np.polyfit(g["week"], path[k], 1)[0])
    out["expected"] = expected
    for ex, g in out.groupby("exercise"):
        m, s = g["slope_kg_per_week"].mean(), g["slope_kg_per_week"].std() / np.sqrt(len(g))
        crit = stats.t.ppf(0.975, len(g) - 1)
        assert abs(m - g["expected"].mean()) < crit * s, (ex, m, g["expected"].mean())


def test_loading_analysis_one_call_and_figures(sim):
    from matplotlib.figure import Figure
    import matplotlib.pyplot as plt

    from hipstats.plots.loading import compliance_heatmap, load_progression_plot

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = loading_analysis(sim)
    s = res.summary()
    assert list(s["arm"]) == ["loading", "stretching"]
    assert {"mean_adherence", "mean_slope_kg_per_week", "violation_rate", "pain_flag_rate"} <= set(s)
    assert res.dose_response is not None and "volume_load_per_1000kg" in set(res.dose_response["term"])
    assert "H4" in res._repr_html_()
    for fig in (res.plot(), res.plot(kind="compliance"), load_progression_plot(volume_load(sim, level="arm_week")),
                compliance_heatmap(progression_compliance(sim), max_participants=None)):
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert "week" in ax.get_xlabel().lower()
        plt.close(fig)
    assert "kg" in res.plot().axes[0].get_ylabel()
    with pytest.raises(AnalysisError, match="kind"):
        res.plot(kind="pie")


def test_options_and_errors():
    log = make_log(n=5, seed=3)
    only = progression_slopes(log, exercise="ffe_split_squat")
    assert set(only["exercise"]) == {"ffe_split_squat"} and len(only) == 5
    with pytest.raises(AnalysisError, match="level must be"):
        progression_slopes(log, level="week")
    with pytest.raises(AnalysisError, match="unit must be"):
        adherence(log, unit="week")
    with pytest.raises(AnalysisError, match="participants table"):
        adherence(log, level="arm")
    with pytest.raises(AnalysisError, match="'week' or a 'date'"):
        volume_load(log.drop(columns="week"))
    cohort, _ = _dose_cohort(seed=4)
    last = dose_response(cohort, final="last", adjust=("arm",))
    assert "baseline" not in set(last["term"]) and last.attrs["n_participants"] == 90
    # participants without a final visit are left out
    m = cohort.measurements
    cohort.measurements = m[~((m["participant_id"] == "P000") & (m["visit"] == "week_12"))]
    assert dose_response(cohort).attrs["n_participants"] == 89


# ----------------------------------------------------------------------------------------
# pooled rates over participants: participant-cluster CI (pooled_rate)
# ----------------------------------------------------------------------------------------
def test_pooled_rate_coverage_clustered():
    """Simulation truth: 400 datasets of 30 participants with 10-30 rows each and
    logit p_i = logit(0.25) + b_i, b_i ~ N(0, 1). The target of the pooled share is
    E[p_i] (rows independent of b_i), by 80-point Gauss-Hermite quadrature. The Wilson CI
    (rows as independent) under-covers badly; the cluster CI covers at about 95%.
    Band: 0.92-0.98 for the cluster CI (binomial SE of a coverage over 400 datasets ~0.011),
    Wilson below 0.80. All datasets go through one vectorised pooled_rate call (by=dataset)."""
    from hipstats.stats.rates import pooled_rate

    rng = np.random.default_rng(2024)
    n_sets, g, mu, sd = 400, 30, np.log(0.25 / 0.75), 1.0
    x, w = np.polynomial.hermite_e.hermegauss(80)
    truth = float(np.sum(w / (1 + np.exp(-(mu + sd * x)))) / np.sqrt(2 * np.pi))
    n = rng.integers(10, 31, size=(n_sets, g))
    p = 1 / (1 + np.exp(-(mu + rng.normal(0, sd, (n_sets, g)))))
    k = rng.binomial(n, p)
    per = pd.DataFrame({"dataset": np.repeat(np.arange(n_sets), g),
                        "participant_id": np.tile(np.arange(g), n_sets),
                        "k": k.ravel(), "n": n.ravel()})
    r = pooled_rate(per, "k", "n", by=["dataset"])
    assert len(r) == n_sets and (r["n_participants"] == g).all()
    assert np.allclose(r["rate"], k.sum(1) / n.sum(1))
    cover = ((r["rate_ci_low"] <= truth) & (truth <= r["rate_ci_high"])).mean()
    cover_w = ((r["rate_ci_low_wilson"] <= truth) & (truth <= r["rate_ci_high_wilson"])).mean()
    assert 0.92 <= cover <= 0.98, cover
    assert cover_w < 0.80, cover_w


def test_pooled_rate_edges():
    """Hand-checked edge cases: all-zero counts use Wilson with G participants as n; with no
    between-participant spread the CI is never narrower than Wilson on the rows."""
    from hipstats.stats.rates import pooled_rate, wilson_ci

    zero = pd.DataFrame({"participant_id": list("abcd"), "k": 0, "n": 10})
    r = pooled_rate(zero, "k", "n").iloc[0]
    lo, hi = wilson_ci(0, 4, 0.95)
    assert r["rate"] == 0 and r["rate_ci_low"] == pytest.approx(float(lo), abs=1e-12)
    assert r["rate_ci_high"] == pytest.approx(float(hi), abs=1e-12)
    same = pd.DataFrame({"participant_id": list("abcd"), "k": 5, "n": 10})
    r = pooled_rate(same, "k", "n").iloc[0]
    assert [r["rate_ci_low"], r["rate_ci_high"]] == pytest.approx(
        [r["rate_ci_low_wilson"], r["rate_ci_high_wilson"]], abs=1e-12)


def test_arm_rates_use_cluster_ci(sim):
    """Pooled arm rows (violation rate, pain-flag rate, adherence) carry the cluster CI under
    the old column names and Wilson under *wilson_interval; both equal pooled_rate on the
    per-participant table."""
    from hipstats.stats.rates import pooled_rate

    comp = progression_compliance(sim)
    ref = pooled_rate(comp.by_participant, "violations", "flagged", by=["arm"], name="violation_rate")
    cols = ["violation_rate", "violation_rate_ci_low", "violation_rate_ci_high",
            "violation_rate_ci_low_wilson", "violation_rate_ci_high_wilson"]
    assert np.allclose(comp.by_arm[cols].to_numpy(float), ref[cols].to_numpy(float))
    pain = pain_flags(sim, level="arm")
    ref = pooled_rate(pain_flags(sim), "flagged", "sessions", by=["arm"])
    cols = ["rate", "rate_ci_low", "rate_ci_high", "rate_ci_low_wilson", "rate_ci_high_wilson"]
    assert np.allclose(pain[cols].to_numpy(float), ref[cols].to_numpy(float))
    s = loading_analysis(sim, measure=None).summary()
    assert {"violation_rate_ci_low", "violation_rate_ci_high", "pain_flag_rate_ci_low",
            "pain_flag_rate_ci_high"} <= set(s.columns)


# ----------------------------------------------------------------------------------------
# speed-ups: closed-form group slopes, faults parsed per distinct string, prepared log reused
# ----------------------------------------------------------------------------------------
def test_group_slopes_equal_per_group_ols_with_ties_and_degenerate_groups():
    """Closed-form per-group slopes/SEs = one numpy least-squares fit per group (tol 1e-10);
    groups with < 3 rows or constant x are NaN."""
    from hipstats.questions.loading import _group_ols_slopes

    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 30, 200)
    gid = np.repeat(np.arange(sizes.size), sizes)
    x = rng.integers(0, 12, gid.size).astype(float) + rng.choice([0.0, 0.5], gid.size)
    x[gid == 5] = 2.5  # constant x
    y = 20 + 2.5 * x + rng.normal(0, 3, gid.size) * (1 + gid % 3)
    out = _group_ols_slopes(gid, x, y, sizes.size, 0.05)
    for g in range(sizes.size):
        xg, yg = x[gid == g], y[gid == g]
        if xg.size < 3 or np.ptp(xg) == 0:
            assert np.isnan(out.loc[g, "slope_kg_per_week"]) and np.isnan(out.loc[g, "slope_kg_per_week_se"])
            continue
        X = np.column_stack([np.ones_like(xg), xg])
        beta, rss, *_ = np.linalg.lstsq(X, yg, rcond=None)
        cov = (rss[0] if rss.size else 0.0) / (xg.size - 2) * np.linalg.inv(X.T @ X)
        se = np.sqrt(cov[1, 1])
        crit = stats.t.ppf(0.975, xg.size - 2)
        assert out.loc[g, "slope_kg_per_week"] == pytest.approx(beta[1], abs=1e-10)
        assert out.loc[g, "slope_kg_per_week_se"] == pytest.approx(se, abs=1e-10)
        assert out.loc[g, "slope_kg_per_week_ci_high"] == pytest.approx(beta[1] + crit * se, abs=1e-10)


def test_progression_slopes_match_linregress_on_simulated_cohort(sim):
    """Every participant x exercise slope/SE/CI of the cohort = scipy linregress on that
    group's completed rows (tol 1e-10); start/end load follow session order."""
    out = progression_slopes(sim)
    s = sim.sessions
    s = s[s["completed"].fillna(True).astype(bool)]
    for _, row in out.sample(60, random_state=0).iterrows():
        g = s[(s["participant_id"] == row["participant_id"]) & (s["exercise"] == row["exercise"])]
        g = g.sort_values("session", kind="stable")
        assert row["n_sessions"] == len(g)
        assert row["start_load_kg"] == g["load_kg"].iloc[0]
        assert row["end_load_kg"] == g["load_kg"].iloc[-1]
        if len(g) < 3 or g["week"].nunique() < 2:
            assert np.isnan(row["slope_kg_per_week"])
            continue
        lr = stats.linregress(g["week"], g["load_kg"])
        crit = stats.t.ppf(0.975, len(g) - 2)
        assert row["slope_kg_per_week"] == pytest.approx(lr.slope, abs=1e-10)
        assert row["slope_kg_per_week_se"] == pytest.approx(lr.stderr, abs=1e-10)
        assert row["slope_kg_per_week_ci_low"] == pytest.approx(lr.slope - crit * lr.stderr, abs=1e-10)


def test_fault_lists_parsed_once_per_string_equal_row_by_row():
    from hipstats.cohort.views import faults_list, prepare_sessions

    faults = ["a;b", "", None, np.nan, " a ; ;nan", "b", "a;b", "nan"] * 5
    log = pd.DataFrame({"participant_id": "p1", "week": np.arange(40) / 2, "exercise": "x",
                        "sets": 1, "reps": 5, "faults": faults})
    s = prepare_sessions(log)
    by_row = [faults_list(v) for v in s["faults"]]
    assert s["fault_list"].tolist() == by_row
    assert s["n_faults"].tolist() == [len(v) for v in by_row]
    assert s["any_fault"].tolist() == [len(v) > 0 for v in by_row]


def test_loading_analysis_parts_equal_separate_calls(sim):
    """The prepared log reused by loading_analysis gives exactly the separate calls' tables,
    and the cohort's own sessions table is left untouched."""
    from hipstats.cohort.views import prepare_sessions, prepared_source

    before = sim.sessions.copy()
    res = loading_analysis(sim)
    pd.testing.assert_frame_equal(sim.sessions, before)
    assert res.not_estimable == {}
    pd.testing.assert_frame_equal(res.progression, progression_slopes(sim))
    pd.testing.assert_frame_equal(res.adherence_by_arm, adherence(sim, level="arm"))
    pd.testing.assert_frame_equal(res.pain_by_arm, pain_flags(sim, level="arm"))
    pd.testing.assert_frame_equal(res.weekly, volume_load(sim, level="week"))
    pd.testing.assert_frame_equal(res.compliance.transitions,
                                  progression_compliance(sim).transitions)
    pd.testing.assert_frame_equal(res.dose_response, dose_response(sim))
    src = prepared_source(sim)
    a, b = prepare_sessions(src), prepare_sessions(src)
    assert a is not b and a is not src.sessions  # copies: callers may add columns
    pd.testing.assert_frame_equal(a, prepare_sessions(sim))


def test_loading_analysis_tiny_cohort_records_what_cannot_be_estimated():
    """6 participants: the dose-response cannot separate volume from arm; the rest is still
    estimated, the part is None with its reason in notes and a summary row."""
    from hipstats.cohort.simulate import simulate_cohort

    res = loading_analysis(simulate_cohort(6, seed=1))
    assert res.dose_response is None
    assert "does not vary within any arm" in res.not_estimable["dose_response"]
    assert res.adherence_by_arm is not None and res.compliance is not None
    s = res.summary()
    notes = s["note"][s["note"] != ""].tolist()
    assert notes == [f"not estimable: dose_response: {res.not_estimable['dose_response']}"]
    assert s["arm"].notna().sum() == 2  # the two arm rows are still there


def test_loading_analysis_without_loaded_exercise_or_pain():
    """A bodyweight-only log without pain scores: progression, compliance and pain are None
    with reasons; adherence and volume-load are still reported."""
    log = make_log(n=8, seed=2)
    log = log[log["exercise"] == "glute_bridge"].drop(columns="pain_nrs")
    people = pd.DataFrame({"participant_id": log["participant_id"].unique(), "arm": "loading"})
    res = loading_analysis(types.SimpleNamespace(sessions=log, participants=people))
    assert res.progression is None and res.compliance is None and res.pain_by_arm is None
    assert "external load" in res.not_estimable["progression"]
    assert "no pain_nrs" in res.not_estimable["pain"]
    s = res.summary()
    assert s.loc[s["arm"] == "loading", "mean_adherence"].iloc[0] == pytest.approx(
        adherence(log, participants=people)["adherence"].mean())
    assert s["note"].str.startswith("not estimable: compliance: ").any()


def test_mean_adherence_ci_stays_within_0_and_1():
    """Three participants at 100%, 100% and 50%: the t interval of the mean (0.83, t_2 SE 0.17) reaches
    above 1; a share cannot, so the interval is truncated to [0, 1] and the lower end is the t one."""
    from scipy import stats

    from hipstats.questions.loading import adherence

    done = {"a": [True, True], "b": [True, True], "c": [True, False]}
    log = pd.DataFrame([{"participant_id": p, "week": w, "exercise": "hold_90_90", "sets": 2, "reps": 5,
                         "completed": c} for p, cs in done.items() for w, c in enumerate(cs)])
    parts = pd.DataFrame({"participant_id": ["a", "b", "c"], "arm": "x"})
    out = adherence(log, level="arm", participants=parts).iloc[0]
    x = np.array([1.0, 1.0, 0.5])
    half = stats.t.ppf(0.975, 2) * x.std(ddof=1) / np.sqrt(3)
    assert x.mean() + half > 1
    assert out["mean_adherence"] == pytest.approx(x.mean())
    assert out["mean_adherence_ci_high"] == 1.0
    assert out["mean_adherence_ci_low"] == pytest.approx(max(0.0, x.mean() - half))
