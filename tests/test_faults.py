"""Tests for hipstats.questions.faults (H5) and the fault-rate figure.

References used:
* hand-counted fault tables of a typed-in log; Wilson interval typed from its formula;
* closed forms: the logistic maximum-likelihood estimate found with scipy.optimize and its
  cluster-robust sandwich covariance computed with numpy (= GEE with independence working
  correlation); OLS by numpy least squares for the outcome association;
* simulation truth: a numpy generator with logit P(fault) = -0.5 - 0.15 week (the
  simulator's fault_logit_*), and hs.simulate_cohort.
"""

from __future__ import annotations

import types

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import optimize, stats  # noqa: E402

from hipstats.errors import AnalysisError  # noqa: E402
from hipstats.questions.faults import fault_outcome_association, fault_rates, fault_trend, faults_analysis

LOG = pd.DataFrame({
    "participant_id": ["a", "a", "a", "a", "b", "b", "b", "b"],
    "session": [1, 1, 2, 2, 1, 1, 2, 2],
    "week": [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0],
    "exercise": ["ffe_split_squat", "staggered_stance_deadlift"] * 4,
    "sets": 3, "reps": 8, "load_kg": 20.0,
    "faults": ["back_knee_lean;front_knee_drift", "lumbar_rounding", "", "lumbar_rounding",
               "back_knee_lean", "", "pelvic_tilt_loss", "lumbar_rounding;poor_hip_shift"],
    "completed": [True, True, True, True, True, False, True, True],
})
PEOPLE = pd.DataFrame({"participant_id": ["a", "b"], "arm": ["loading", "stretching"]})


def test_fault_rates_hand_counted():
    r = fault_rates(LOG, by=("exercise",)).set_index(["exercise", "fault"])
    # split squat rows (4 completed): any 3, back_knee_lean 2, front_knee_drift 1
    assert r.loc[("ffe_split_squat", "any"), ["n_rows", "n_fault"]].tolist() == [4, 3]
    assert r.loc[("ffe_split_squat", "back_knee_lean"), "n_fault"] == 2
    assert r.loc[("ffe_split_squat", "front_knee_drift"), "n_fault"] == 1
    # deadlift: 3 completed rows (b's first was missed), all with lumbar rounding
    assert r.loc[("staggered_stance_deadlift", "lumbar_rounding"), ["n_rows", "n_fault"]].tolist() == [3, 3]
    assert r.loc[("staggered_stance_deadlift", "any"), "rate"] == 1.0
    k, n, z = 3, 4, stats.norm.ppf(0.975)
    p = k / n
    lo = (p + z * z / (2 * n) - z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
    assert r.loc[("ffe_split_squat", "any"), "rate_ci_low_wilson"] == pytest.approx(lo, abs=1e-12)
    # participant-cluster CI by hand: a 1/2, b 2/2 -> p = 3/4, var = G/(G-1) sum (k_i - p n_i)^2 / n^2
    var = 2 / 1 * ((1 - 1.5) ** 2 + (2 - 1.5) ** 2) / 16
    se_logit = np.sqrt(var) / (p * (1 - p))
    q = stats.t.ppf(0.975, 1)
    expit = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    lo_c = expit(np.log(3) - q * se_logit)
    hi_c = max(expit(np.log(3) + q * se_logit), r.loc[("ffe_split_squat", "any"), "rate_ci_high_wilson"])
    assert r.loc[("ffe_split_squat", "any"), ["rate_ci_low", "rate_ci_high"]].tolist() == pytest.approx(
        [lo_c, hi_c], abs=1e-12)
    assert r.loc[("ffe_split_squat", "any"), "n_participants"] == 2
    # one participant per cell: the cluster CI is the Wilson CI on that participant's rows
    pp = fault_rates(LOG, by=("participant_id",))
    assert np.allclose(pp["rate_ci_low"], pp["rate_ci_low_wilson"], equal_nan=True)
    assert np.allclose(pp["rate_ci_high"], pp["rate_ci_high_wilson"], equal_nan=True)
    # fault order follows the data contract; "any" first
    faults = fault_rates(LOG, by=())["fault"].tolist()
    assert faults == ["any", "back_knee_lean", "front_knee_drift", "lumbar_rounding",
                      "pelvic_tilt_loss", "poor_hip_shift"]


def test_fault_rates_by_arm_and_week():
    r = fault_rates(LOG, by=("arm", "week"), participants=PEOPLE).set_index(["arm", "week", "fault"])
    assert r.loc[("stretching", 1.0, "any"), ["n_rows", "n_fault"]].tolist() == [2, 2]
    assert r.loc[("loading", 1.0, "any"), ["n_rows", "n_fault"]].tolist() == [2, 1]
    with pytest.raises(AnalysisError, match="participants table"):
        fault_rates(LOG, by=("arm",))
    with pytest.raises(AnalysisError, match="not columns"):
        fault_rates(LOG, by=("site",))


def test_no_sessions_or_none_completed():
    with pytest.raises(AnalysisError, match="no training sessions"):
        fault_rates(LOG.iloc[:0])
    with pytest.raises(AnalysisError, match="no completed exercise"):
        fault_trend(LOG.assign(completed=False))


def test_trend_needs_faults_and_weeks():
    with pytest.raises(AnalysisError, match="no completed row shows fault"):
        fault_trend(LOG.assign(faults=""))
    with pytest.raises(AnalysisError, match="same week"):
        fault_trend(LOG.assign(week=0.0))


# ----------------------------------------------------------------------------------------
# generator with known truth
# ----------------------------------------------------------------------------------------
def make_fault_log(n=40, weeks=12, seed=0, b0=-0.5, b1=-0.15, sd_participant=0.0):
    """Two completed exercise rows per session, 2 sessions a week; logit P(fault) = b0 + b1 w
    (+ a participant random intercept when sd_participant > 0)."""
    rng = np.random.default_rng(seed)
    k = np.arange(2 * weeks)
    w = k / 2 + 0.25
    u = rng.normal(0, sd_participant, n) if sd_participant else np.zeros(n)
    p = 1 / (1 + np.exp(-(b0 + u[:, None, None] + b1 * w[None, :, None])))
    fault = rng.random((n, k.size, 2)) < p
    i, j, e = np.meshgrid(np.arange(n), k, np.arange(2), indexing="ij")
    return pd.DataFrame({
        "participant_id": [f"P{v:03d}" for v in i.ravel()], "session": j.ravel() + 1,
        "week": w[j.ravel()], "exercise": np.array(["ffe_split_squat", "hold_90_90"])[e.ravel()],
        "sets": 3, "reps": 8, "load_kg": 10.0,
        "faults": np.where(fault.ravel(), "pelvic_tilt_loss", ""), "completed": True})


def test_gee_independence_equals_logistic_mle_with_sandwich():
    log = make_fault_log(n=30, seed=4, sd_participant=0.8)
    res = fault_trend(log, cov_struct="independence").iloc[0]
    y = (log["faults"] != "").to_numpy(float)
    X = np.column_stack([np.ones(len(log)), log["week"].to_numpy(float)])

    def nll(b):
        eta = X @ b
        return np.sum(np.logaddexp(0, eta) - y * eta)

    b = optimize.minimize(nll, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    mu = 1 / (1 + np.exp(-X @ b))
    A = (X * (mu * (1 - mu))[:, None]).T @ X
    score = pd.DataFrame(X * (y - mu)[:, None]).groupby(log["participant_id"].to_numpy()).sum()
    B = score.to_numpy().T @ score.to_numpy()
    V = np.linalg.inv(A) @ B @ np.linalg.inv(A)
    assert res["log_or_per_week"] == pytest.approx(b[1], abs=1e-6)
    assert res["log_or_per_week_se"] == pytest.approx(np.sqrt(V[1, 1]), rel=1e-4)
    assert res["odds_ratio_per_week"] == pytest.approx(np.exp(b[1]), rel=1e-6)


@pytest.mark.slow
def test_fault_trend_recovers_truth_at_nominal_rate():
    """20 simulated logs (30 participants, 12 weeks): the 95 % CI of the log odds ratio per week
    covers the truth -0.15 in >= 17 of 20 (expect 19; P(fail) < 2 %)."""
    hits = 0
    for seed in range(20):
        res = fault_trend(make_fault_log(n=30, seed=100 + seed)).iloc[0]
        hits += np.log(res["odds_ratio_per_week_ci_low"]) <= -0.15 <= np.log(res["odds_ratio_per_week_ci_high"])
    assert hits >= 17


def test_fault_rates_by_week_match_truth():
    """Pooled over 200 participants, each week's rate CI covers logistic(-0.5 - 0.15 w) in
    >= 21 of the 24 half-weeks (expect 22.8)."""
    r = fault_rates(make_fault_log(n=200, seed=1), by=("week",))
    r = r[r["fault"] == "any"]
    truth = 1 / (1 + np.exp(0.5 + 0.15 * r["week"]))
    assert ((r["rate_ci_low"] <= truth) & (truth <= r["rate_ci_high"])).sum() >= 21


# ----------------------------------------------------------------------------------------
# association with outcome change
# ----------------------------------------------------------------------------------------
def _assoc_cohort(n=120, seed=0, beta=-3.0):
    """Participant fault propensity varies; change = 2 + arm + beta * fault_rate/0.1 ... with
    the fault rate observed from 48 rows, so beta is estimated with the observed rate."""
    rng = np.random.default_rng(10_000 + seed)
    log = make_fault_log(n=n, seed=seed, sd_participant=1.0)
    ids = pd.unique(log["participant_id"])
    arms = np.array(["stretching", "loading"])[np.arange(n) % 2]
    rate = (log["faults"] != "").groupby(log["participant_id"]).mean().reindex(ids).to_numpy()
    base = rng.normal(36, 8, n)
    change = 2 + 2 * (arms == "loading") + beta * rate / 0.1 - 0.1 * (base - 36) + rng.normal(0, 2, n)
    m = pd.concat([pd.DataFrame({"participant_id": ids, "visit": v, "week": w,
                                 "measure": "hip_ir_deg", "side": s, "pelvis": "free",
                                 "value": val})
                   for v, w, val in (("baseline", 0.0, base), ("week_12", 12.0, base + change))
                   for s in ("left", "right")], ignore_index=True)
    people = pd.DataFrame({"participant_id": ids, "arm": arms})
    return types.SimpleNamespace(measurements=m, sessions=log, participants=people)


def test_fault_outcome_association_closed_form():
    cohort = _assoc_cohort(seed=5)
    res = fault_outcome_association(cohort).set_index("term")
    d = res.attrs["data"]
    X = np.column_stack([np.ones(len(d)), d["arm"] == "stretching", d["fault_rate"] / 0.1,
                         d["baseline"]]).astype(float)
    b, *_ = np.linalg.lstsq(X, d["change"].to_numpy(), rcond=None)
    assert res.loc["fault_rate_per_0.1", "estimate"] == pytest.approx(b[2], abs=1e-8)
    assert res.loc["baseline", "estimate"] == pytest.approx(b[3], abs=1e-8)
    assert res.attrs["n_participants"] == 120
    with pytest.raises(AnalysisError, match="participants table"):
        fault_outcome_association(types.SimpleNamespace(measurements=cohort.measurements,
                                                        sessions=cohort.sessions))


@pytest.mark.slow
def test_fault_outcome_association_recovers_truth():
    """The 95 % CI of the fault-rate slope covers the truth (-3 deg per 10 points) in >= 17 of
    20 simulated cohorts (expect 19; P(fail) < 2 %)."""
    hits = 0
    for seed in range(20):
        row = fault_outcome_association(_assoc_cohort(n=80, seed=seed)).set_index("term").loc[
            "fault_rate_per_0.1"]
        hits += row["ci_low"] <= -3.0 <= row["ci_high"]
    assert hits >= 17


def test_faults_analysis_on_simulated_cohort():
    """hs.simulate_cohort: fault_logit_week = -0.15 is inside the GEE CI (overall and per arm),
    the week-0 rate is near logistic(-0.5), and the figure renders."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from hipstats.plots.loading import fault_rate_plot
    from hipstats.cohort.simulate import simulate_cohort

    c = simulate_cohort(n_participants=120, seed=11)
    t = c.truth
    res = faults_analysis(c)
    tr = res.trend.iloc[0]
    assert np.log(tr["odds_ratio_per_week_ci_low"]) <= t["fault_logit_week"] <= np.log(tr["odds_ratio_per_week_ci_high"])
    for _, row in res.trend_by_arm.iterrows():
        assert np.log(row["odds_ratio_per_week_ci_low"]) <= t["fault_logit_week"] <= np.log(row["odds_ratio_per_week_ci_high"])
    s = res.summary()
    assert len(s) == 3 and s["interpretation"].str.len().gt(10).all()
    assert set(res.rates["arm"]) == {"loading", "stretching"}
    assert "H5" in res._repr_html_()
    assert set(res.weekly["protocol_week"]) == set(range(12))  # whole weeks 0..11
    by_week = fault_rates(c, by=("week",))
    weekly = fault_rates(c, by=("arm", "protocol_week"))
    for fig in (res.plot(), fault_rate_plot(weekly, fault="pelvic_tilt_loss"),
                fault_rate_plot(fault_rates(c.sessions, by=("protocol_week",))), fault_rate_plot(by_week)):
        assert isinstance(fig, Figure)
        assert "(%)" in fig.axes[0].get_ylabel() and "week" in fig.axes[0].get_xlabel().lower()
        plt.close(fig)
    with pytest.raises(AnalysisError, match="no rates for fault"):
        fault_rate_plot(res.weekly, fault="back_knee_lean")
    with pytest.raises(AnalysisError, match="by week"):
        fault_rate_plot(res.rates)
    with pytest.raises(AnalysisError, match="draws a table of fault_rates"):
        fault_rate_plot(c)


def _clustered_log(n_people: int, rows_each: int, sd_logit: float, rng) -> pd.DataFrame:
    """A log where each participant has their own fault probability (logit random effect)."""
    pid = np.repeat([f"p{i:03d}" for i in range(n_people)], rows_each)
    p_i = 1 / (1 + np.exp(-(-1.0 + rng.normal(0, sd_logit, n_people))))
    fault = rng.random(pid.size) < np.repeat(p_i, rows_each)
    return pd.DataFrame({"participant_id": pid, "session": np.tile(np.arange(1, rows_each + 1), n_people),
                         "week": np.tile(np.arange(rows_each) / 3.0, n_people), "exercise": "other",
                         "sets": 1, "reps": 5, "faults": np.where(fault, "lumbar_rounding", "")})


def test_overall_fault_share_ci_is_clustered():
    """The overall share in fault_rates / faults summary is pooled_rate's participant-cluster CI
    (checked by hand from per-participant counts), wider than Wilson when participants differ;
    its coverage is tested in test_loading.test_pooled_rate_coverage_clustered."""
    log = _clustered_log(25, 30, 1.5, np.random.default_rng(11))
    r = fault_rates(log, by=()).set_index("fault").loc["any"]
    k = log.groupby("participant_id")["faults"].apply(lambda f: (f != "").sum()).to_numpy(float)
    n, g = np.full(25, 30.0), 25
    p = k.sum() / n.sum()
    se = np.sqrt(g / (g - 1) * ((k - p * n) ** 2).sum() / n.sum() ** 2) / (p * (1 - p))
    q = stats.t.ppf(0.975, g - 1)
    lo, hi = (1 / (1 + np.exp(-(np.log(p / (1 - p)) + s * q * se))) for s in (-1, 1))
    assert r["n_participants"] == 25 and r["rate"] == pytest.approx(p, abs=1e-12)
    assert [r["rate_ci_low"], r["rate_ci_high"]] == pytest.approx([lo, hi], abs=1e-12)
    # rates vary a lot between participants: the honest CI is clearly wider than Wilson's
    assert (r["rate_ci_high"] - r["rate_ci_low"]) > 1.5 * (r["rate_ci_high_wilson"] - r["rate_ci_low_wilson"])


def test_faults_analysis_tiny_cohort_records_what_cannot_be_estimated():
    """6 simulated participants: too few for the adjusted outcome association; the rates and
    trend are still estimated, the association is None with its reason in notes and in a
    "not estimable" summary row."""
    from hipstats.cohort.simulate import simulate_cohort

    res = faults_analysis(simulate_cohort(6, seed=1))
    assert res.association is None
    assert "too few" in res.not_estimable["association"]
    assert res.overall is not None and res.trend is not None
    s = res.summary()
    assert s["interpretation"].iloc[-1] == f"not estimable: association: {res.not_estimable['association']}"
    assert s["question"].iloc[0].startswith("Share of completed")


def test_faults_analysis_without_any_fault_keeps_rates():
    """No completed row shows a fault: the GEE trends cannot be fitted (None, with reasons);
    the rates (all 0) are still reported."""
    from hipstats.cohort.simulate import simulate_cohort

    c = simulate_cohort(20, seed=2)
    log = c.sessions.assign(faults="")
    res = faults_analysis(types.SimpleNamespace(sessions=log, participants=c.participants),
                          measure=None)
    assert res.trend is None and res.trend_by_arm is None
    assert "no completed row shows fault" in res.not_estimable["trend"]
    assert (res.overall["rate"] == 0).all()
    s = res.summary()
    assert s["interpretation"].str.startswith("not estimable: trend").any()


def test_faults_analysis_parts_equal_separate_calls():
    """faults_analysis reuses one prepared log; its parts equal the separate calls."""
    from hipstats.cohort.simulate import simulate_cohort

    c = simulate_cohort(40, seed=4)
    res = faults_analysis(c)
    assert res.not_estimable == {}
    pd.testing.assert_frame_equal(res.rates, fault_rates(c, by=("exercise", "arm")))
    pd.testing.assert_frame_equal(res.trend.drop(columns=[]), fault_trend(c))
    pd.testing.assert_frame_equal(res.association, fault_outcome_association(c))
    one = fault_rates(c, by=(), faults=["back_knee_lean"])
    by_row = c.sessions[c.sessions["completed"].fillna(True).astype(bool)]["faults"].fillna("")
    k = by_row.map(lambda v: "back_knee_lean" in [f.strip() for f in v.split(";")]).sum()
    assert one.set_index("fault").loc["back_knee_lean", "n_fault"] == k
