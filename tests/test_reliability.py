"""Tests of hipstats.stats.icc/agreement/kappa and hipstats.questions.reliability against published examples, R fixtures and simulation truth.

References used (tolerances stated in each test):
* Shrout & Fleiss (1979), Table 2 data (6 targets x 4 judges) and the published coefficients.
* Bland & Altman (1986), Lancet, Table 1 peak expiratory flow rates (17 subjects).
* Fleiss' kappa worked example (10 subjects, 14 raters, 5 categories; Wikipedia "Fleiss' kappa").
* R fixtures in tests/fixtures/reliability (make_fixtures.R): psych::ICC, the McGraw & Wong r0
  tests, lme4 REML variance components, Bland & Altman (2007) repeated-measures limits,
  psych::cohen.kappa and the Fleiss-Cohen-Everitt variance.
* Simulations with known variance components (CI coverage at about the nominal rate).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from hipstats.errors import AnalysisError  # noqa: E402
from hipstats.questions.reliability import reliability_summary
from hipstats.stats.agreement import bland_altman, BlandAltmanResult, mdc, sem
from hipstats.stats.icc import _anova_mean_squares, _icc_forms, icc
from hipstats.stats.kappa import cohen_kappa, fleiss_kappa

FIX = Path(__file__).parent / "fixtures" / "reliability"
SF = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9],
               [6, 2, 4, 7]], dtype=float)
# Bland & Altman (1986) Table 1: Wright peak flow meter (1st, 2nd), mini Wright (1st, 2nd), l/min
PEFR = np.array([
    [494, 490, 512, 525], [395, 397, 430, 415], [516, 512, 520, 508], [434, 401, 428, 444],
    [476, 470, 500, 500], [557, 611, 600, 625], [413, 415, 364, 460], [442, 431, 380, 390],
    [650, 638, 658, 642], [433, 429, 445, 432], [417, 420, 432, 420], [656, 633, 626, 605],
    [267, 275, 260, 227], [478, 492, 477, 467], [178, 165, 259, 268], [423, 372, 350, 370],
    [427, 421, 451, 443]], dtype=float)


def to_long(mat: np.ndarray) -> pd.DataFrame:
    n, k = mat.shape
    t, r = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    return pd.DataFrame({"target": t.ravel(), "rater": r.ravel(), "rating": mat.ravel()})


def by_form(table: pd.DataFrame, key: str = "form") -> pd.DataFrame:
    return table.set_index(key)


# ------------------------------------------------------------------------------------ ICC
def test_shrout_fleiss_published_values():
    """S&F (1979) Table 2 example: BMS 11.24, WMS 6.26, JMS 32.49, EMS 1.02 and the six ICCs to
    2 decimals (.17, .29, .71, .44, .62, .91). Tolerance: half a unit in the last published
    digit (0.005). Their CIs are checked against psych::ICC below."""
    res = icc(to_long(SF), "target", "rater", "rating")
    ms = res.attrs["mean_squares"]
    for key, pub in {"msr": 11.24, "msw": 6.26, "msc": 32.49, "mse": 1.02}.items():
        assert abs(ms[key] - pub) <= 0.005, key
    published = {"ICC1": 0.17, "ICC2": 0.29, "ICC3": 0.71, "ICC1k": 0.44, "ICC2k": 0.62,
                 "ICC3k": 0.91}
    got = by_form(res, "sf_name")["icc"]
    for name, pub in published.items():
        assert abs(got[name] - pub) <= 0.005, name
    assert list(res["form"]) == ["ICC(1,1)", "ICC(A,1)", "ICC(C,1)", "ICC(1,k)", "ICC(A,k)",
                                 "ICC(C,k)"]
    assert res.attrs["n_targets"] == 6 and res.attrs["n_raters"] == 4


@pytest.fixture(scope="module")
def icc_data():
    return pd.read_csv(FIX / "icc_data.csv")


OURS = {"icc": "icc", "f": "statistic", "df1": "num_df", "df2": "den_df", "pval": "p_value",
        "ci_low": "icc_ci_low", "ci_high": "icc_ci_high"}  # R's (psych) column -> ours


@pytest.mark.parametrize("dataset", ["shrout_fleiss", "sim_n30_k3", "sim_n15_k2", "sim_n40_k5"])
@pytest.mark.parametrize("confidence", [0.95, 0.90])
def test_icc_matches_psych(icc_data, dataset, confidence):
    """All six forms, F, df, p and CI bounds equal psych::ICC (absolute tolerance 1e-9)."""
    ref = pd.read_csv(FIX / "icc_psych.csv")
    ref = ref[(ref.dataset == dataset) & np.isclose(ref.confidence, confidence)]
    res = by_form(icc(icc_data[icc_data.dataset == dataset], "target", "rater", "rating",
                      confidence=confidence), "sf_name")
    for _, row in ref.iterrows():
        for col in ("icc", "f", "df1", "df2", "pval", "ci_low", "ci_high"):
            got = res.loc[row.sf_name, OURS[col]]
            assert got == pytest.approx(row[col], abs=1e-9), (row.sf_name, col)


@pytest.mark.parametrize("r0", [0.2, 0.5])
def test_icc_f_tests_against_r0_match_mcgraw_wong(icc_data, r0):
    """F tests against r0 equal the McGraw & Wong formulas (as irr::icc) computed in R (1e-9)."""
    ref = pd.read_csv(FIX / "icc_r0.csv")
    ref = ref[np.isclose(ref.r0, r0)]
    for dataset, sub in ref.groupby("dataset"):
        res = by_form(icc(icc_data[icc_data.dataset == dataset], "target", "rater", "rating",
                          r0=r0))
        for _, row in sub.iterrows():
            for col in ("f", "df1", "df2", "pval"):
                assert res.loc[row.form, OURS[col]] == pytest.approx(row[col], rel=1e-9, abs=1e-12)


def test_icc_r0_zero_is_plain_test_and_r0_lowers_f():
    res0 = by_form(icc(to_long(SF), "target", "rater", "rating"))
    res5 = by_form(icc(to_long(SF), "target", "rater", "rating", r0=0.5))
    ms = res0.attrs["mean_squares"]
    assert res0.loc["ICC(C,1)", "statistic"] == pytest.approx(ms["msr"] / ms["mse"], rel=1e-12)
    assert res0.loc["ICC(1,1)", "statistic"] == pytest.approx(ms["msr"] / ms["msw"], rel=1e-12)
    assert (res5["statistic"] < res0["statistic"]).all()
    assert (res5["p_value"] > res0["p_value"]).all()


def test_trials_in_a_cell_are_averaged():
    """Several readings per target-rater cell give the ICC of the cell means (exact)."""
    rng = np.random.default_rng(3)
    long = to_long(SF)
    twice = pd.concat([long.assign(rating=long.rating + e)
                       for e in (rng.normal(0, 1, len(long)), np.zeros(len(long)))])
    means = twice.groupby(["target", "rater"], as_index=False)["rating"].mean()
    a = icc(twice, "target", "rater", "rating")
    b = icc(means, "target", "rater", "rating")
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["ratings_per_cell_max"] == 2


def test_icc_multi_column_targets():
    long = to_long(SF)
    long["pid"] = long["target"] // 2
    long["side"] = np.where(long["target"] % 2 == 0, "left", "right")
    a = icc(long, ["pid", "side"], "rater", "rating")
    b = icc(long, "target", "rater", "rating")
    np.testing.assert_allclose(a["icc"], b["icc"], rtol=1e-12)


def test_nan_policy_omit_drops_incomplete_targets():
    long = to_long(SF).iloc[1:]  # target 0 misses rater 0
    with pytest.raises(AnalysisError, match="nan_policy"):
        icc(long, "target", "rater", "rating")
    res = icc(long, "target", "rater", "rating", nan_policy="omit")
    ref = icc(to_long(SF[1:]), "target", "rater", "rating")
    np.testing.assert_allclose(res["icc"], ref["icc"], rtol=1e-12)
    assert res.attrs["n_targets_dropped"] == 1


@pytest.mark.parametrize("dataset", ["shrout_fleiss", "sim_n30_k3", "sim_n15_k2", "sim_n40_k5"])
def test_model_policy_equals_anova_on_balanced_data(icc_data, dataset):
    """REML variance components reproduce the ANOVA estimates on complete data when those are
    non-negative: ICCs and CI bounds agree to 1e-5 (optimiser tolerance)."""
    data = icc_data[icc_data.dataset == dataset]
    anova = icc(data, "target", "rater", "rating")
    vc = anova.attrs["variance_components"]
    if min(vc["target"], vc["rater"], vc["target_oneway"]) < 0:
        # REML truncates a negative variance at 0, ANOVA does not: then REML gives the
        # boundary solution and must have at least the REML likelihood of any ANOVA point
        model = icc(data, "target", "rater", "rating", nan_policy="model")
        assert min(model.attrs["variance_components"].values()) >= 0
        return
    model = icc(data, "target", "rater", "rating", nan_policy="model")
    for col in ("icc", "statistic", "num_df", "den_df", "icc_ci_low", "icc_ci_high"):
        np.testing.assert_allclose(model[col], anova[col], rtol=1e-5, atol=1e-5, err_msg=col)
    assert model.attrs["method"] == "reml"


def test_model_policy_matches_lme4_on_unbalanced_data():
    """Variance components with 25% of ratings missing equal lme4's REML (rel. 1e-4)."""
    data = pd.read_csv(FIX / "icc_unbalanced.csv")
    ref = pd.read_csv(FIX / "icc_lme4.csv").set_index(["model", "component"])["variance"]
    res = by_form(icc(data, "target", "rater", "rating", nan_policy="model"))
    vc = res.attrs["variance_components"]
    assert vc["target"] == pytest.approx(ref["crossed", "target"], rel=1e-4)
    assert vc["rater"] == pytest.approx(ref["crossed", "rater"], rel=1e-4)
    assert vc["residual"] == pytest.approx(ref["crossed", "Residual"], rel=1e-4)
    assert vc["target_oneway"] == pytest.approx(ref["oneway", "target"], rel=1e-4)
    assert vc["within"] == pytest.approx(ref["oneway", "Residual"], rel=1e-4)
    t, r, e = ref["crossed", "target"], ref["crossed", "rater"], ref["crossed", "Residual"]
    assert res.loc["ICC(A,1)", "icc"] == pytest.approx(t / (t + r + e), rel=1e-4)
    assert res.loc["ICC(C,1)", "icc"] == pytest.approx(t / (t + e), rel=1e-4)
    assert res.loc["ICC(A,k)", "icc"] == pytest.approx(t / (t + (r + e) / 5), rel=1e-4)
    assert res.loc["ICC(1,1)", "icc"] == pytest.approx(
        ref["oneway", "target"] / (ref["oneway", "target"] + ref["oneway", "Residual"]), rel=1e-4)
    assert res.attrs["n_ratings"] == len(data)


def test_model_policy_recovers_truth_with_missing_ratings():
    """Crossed targets x raters with known variances, a quarter of the ratings removed: the REML
    ICCs average near the truth (within 0.03 over 60 data sets, small REML bias included) and
    the approximate CIs cover the truth in 85-100% of the data sets (nominal 95%)."""
    st, sr, se, n, k = 3.0, 1.5, 2.0, 30, 4
    truth = {"ICC(A,1)": st**2 / (st**2 + sr**2 + se**2), "ICC(C,1)": st**2 / (st**2 + se**2),
             "ICC(A,k)": st**2 / (st**2 + (sr**2 + se**2) / k),
             "ICC(C,k)": st**2 / (st**2 + se**2 / k)}
    est = {f: [] for f in truth}
    cover = {f: [] for f in truth}
    for seed in range(60):
        rng = np.random.default_rng(seed)
        y = (rng.normal(0, st, n)[:, None] + rng.normal(0, sr, k)[None, :]
             + rng.normal(0, se, (n, k)))
        df = to_long(y)
        df = df.drop(rng.choice(len(df), len(df) // 4, replace=False))
        res = by_form(icc(df, "target", "rater", "rating", nan_policy="model"))
        for f, value in truth.items():
            est[f].append(res.loc[f, "icc"])
            cover[f].append(res.loc[f, "icc_ci_low"] <= value <= res.loc[f, "icc_ci_high"])
    for f, value in truth.items():
        assert abs(np.mean(est[f]) - value) < 0.03, f
        assert 0.85 <= np.mean(cover[f]) <= 1.0, (f, np.mean(cover[f]))


def test_anova_ci_coverage_by_simulation():
    """4000 simulated balanced data sets (n = 20 targets, k = 3 raters) with known variance
    components; the vectorised McGraw & Wong intervals cover the true ICC at 95% +/- 1.5 points
    (exact F intervals) and 93-98% (agreement forms, Satterthwaite approximation)."""
    rng = np.random.default_rng(2026)
    S, n, k = 4000, 20, 3
    st, sr, se = 2.0, 1.0, 1.5
    y = (rng.normal(0, st, (S, n, 1)) + rng.normal(0, sr, (S, 1, k))
         + rng.normal(0, se, (S, n, k)))
    y1 = rng.normal(0, st, (S, n, 1)) + rng.normal(0, np.hypot(sr, se), (S, n, k))  # one-way
    truth = {"ICC(A,1)": st**2 / (st**2 + sr**2 + se**2), "ICC(C,1)": st**2 / (st**2 + se**2),
             "ICC(A,k)": st**2 / (st**2 + (sr**2 + se**2) / k),
             "ICC(C,k)": st**2 / (st**2 + se**2 / k),
             "ICC(1,1)": st**2 / (st**2 + sr**2 + se**2),
             "ICC(1,k)": st**2 / (st**2 + (sr**2 + se**2) / k)}
    kw = dict(k0=k, n0=n, K=k, df_r=n - 1, df_c=k - 1, df_e=(n - 1) * (k - 1),
              df_w=n * (k - 1), confidence=0.95, r0=0.0)
    rows = {r["form"]: r for r in _icc_forms(**_anova_mean_squares(y), **kw)}
    rows1 = {r["form"]: r for r in _icc_forms(**_anova_mean_squares(y1), **kw)}
    for form, value in truth.items():
        r = rows1[form] if form.startswith("ICC(1,") else rows[form]
        cov = np.mean((r["icc_ci_low"] <= value) & (value <= r["icc_ci_high"]))
        lo, hi = (0.93, 0.98) if "A" in form else (0.935, 0.965)
        assert lo <= cov <= hi, (form, cov)
    # the F test against the true r0 rejects at about the nominal 5% (exact forms)
    rows_r0 = {r["form"]: r for r in _icc_forms(**_anova_mean_squares(y),
                                                 **{**kw, "r0": truth["ICC(C,1)"]})}
    assert 0.035 <= np.mean(rows_r0["ICC(C,1)"]["p_value"] < 0.05) <= 0.065


# ------------------------------------------------------------------------------------ SEM, MDC
def test_sem_and_mdc_formulas():
    assert sem(sd=9.0, icc_value=0.9) == pytest.approx(9.0 * np.sqrt(0.1), rel=1e-12)
    assert mdc(2.0) == pytest.approx(stats.norm.ppf(0.975) * np.sqrt(2) * 2.0, rel=1e-12)
    assert mdc(2.0, confidence=0.90) == pytest.approx(1.6448536 * np.sqrt(2) * 2.0, rel=1e-6)
    long = to_long(SF)
    ms = icc(long, "target", "rater", "rating").attrs["mean_squares"]
    assert sem(long, "target", "rater", "rating") == pytest.approx(np.sqrt(ms["msw"]), rel=1e-12)
    assert sem(long, "target", "rater", "rating", method="error") == pytest.approx(
        np.sqrt(ms["mse"]), rel=1e-12)
    agree = np.sqrt((ms["msc"] - ms["mse"]) / 6 + ms["mse"])
    assert sem(long, "target", "rater", "rating", method="agreement") == pytest.approx(agree)
    sd = SF.std(ddof=1)
    assert sem(long, "target", "rater", "rating", method="icc", form="ICC3") == pytest.approx(
        sd * np.sqrt(1 - 0.714840714840715), rel=1e-9)
    assert mdc(data=long, participant="target", raters="rater", ratings="rating") == pytest.approx(
        stats.norm.ppf(0.975) * np.sqrt(2 * ms["msw"]), rel=1e-12)


def test_sem_recovers_trial_sd():
    """With trial-to-trial SD 2 the within-target SEM is 2 (+/- 0.08 with 1000 targets)."""
    rng = np.random.default_rng(7)
    y = rng.normal(36, 9, (1000, 1)) + rng.normal(0, 2, (1000, 2))
    assert sem(to_long(y), "target", "rater", "rating") == pytest.approx(2.0, abs=0.08)


# ------------------------------------------------------------------------------------ summary
def simulate_measurements(n=400, seed=0, sd_between=9.0, sd_side=2.0, sd_session=3.0,
                          sd_trial=2.0, rater_bias=(0.0, 1.5)):
    """Long measurements with known variance components (own generator, data contract columns).

    hip_ir_deg (free and neutral pelvis) and aslr_deg per side, pelvic_tilt_deg (no side);
    baseline by R1 and R2, retest by R1, 2 trials each; aslr_mens_score 0-5 once per visit.
    """
    rng = np.random.default_rng(seed)
    rows = []
    pid = [f"P{i:04d}" for i in range(n)]
    person = rng.normal(0, sd_between, n)
    for measure, sided, pelvis_list in (("hip_ir_deg", True, ("free", "neutral")),
                                        ("aslr_deg", True, ("free",)),
                                        ("pelvic_tilt_deg", False, ("",))):
        base = {"hip_ir_deg": 36.0, "aslr_deg": 80.0, "pelvic_tilt_deg": 10.0}[measure]
        sides = ("left", "right") if sided else ("",)
        for pelvis in pelvis_list:
            side_eff = {s: rng.normal(0, sd_side if sided else 0.0, n) for s in sides}
            for visit, raters in (("baseline", ("R1", "R2")), ("retest", ("R1",))):
                for side in sides:
                    session = rng.normal(0, sd_session, n)
                    for j, rater in enumerate(raters):
                        for trial in (1, 2):
                            v = (base + person + side_eff[side] + session + rater_bias[j]
                                 + rng.normal(0, sd_trial, n))
                            rows.append(pd.DataFrame({
                                "participant_id": pid, "visit": visit, "measure": measure,
                                "side": side or None, "value": v, "trial": trial, "rater": rater,
                                "pelvis": pelvis or None}))
    latent = rng.normal(0, 1, n)
    for visit, raters in (("baseline", ("R1", "R2")), ("retest", ("R1",))):
        for rater in raters:
            score = np.clip(np.round(2.5 + 1.2 * latent + rng.normal(0, 0.5, n)), 0, 5)
            rows.append(pd.DataFrame({"participant_id": pid, "visit": visit,
                                      "measure": "aslr_mens_score", "side": "left",
                                      "value": score, "trial": 1, "rater": rater,
                                      "pelvis": None}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def measurements():
    return simulate_measurements()


def test_reliability_summary_recovers_known_variances(measurements):
    """True values (sd between 9, side 2, session 3, trial 2, rater biases 0/1.5):
    trial-to-trial ICC(A,1) = 94/98, SEM 2; session-to-session (trial means) ICC = 85/96,
    SEM sqrt(11); rater-to-rater ICC = 94/(94 + 1.125 + 2), SEM sqrt(3.125). Every 95% CI
    must cover its truth and the SEM be within 6% (n = 400 participants x 2 sides)."""
    res = reliability_summary(measurements)
    out = res.to_frame()
    ir = out[(out.measure == "hip_ir_deg") & (out.pelvis == "free")].set_index("design")
    truth = {"trial-to-trial": (94 / 98, 2.0),
             "session-to-session": (85 / 96, np.sqrt(11.0)),
             "rater-to-rater": (94 / 97.125, np.sqrt(3.125))}
    for design, (icc_true, sem_true) in truth.items():
        row = ir.loc[design]
        assert row["icc_ci_low"] <= icc_true <= row["icc_ci_high"], design
        assert row["sem"] == pytest.approx(sem_true, rel=0.06), design
        assert row["mdc95"] == pytest.approx(1.959964 * np.sqrt(2) * row["sem"], rel=1e-6)
        assert row["form"] == "ICC(A,1)"
    assert ir.loc["trial-to-trial", "n_targets"] == 400 * 2 * 3  # participant x side x (visit, rater)
    assert ir.loc["session-to-session", "n_targets"] == 800 and ir.loc["rater-to-rater", "n_targets"] == 800
    assert ir.loc["session-to-session", "n_participants"] == 400
    assert ir.loc["trial-to-trial", "n_participants"] == 400
    # pelvic tilt has no side; still analysed; scores get a weighted kappa, no trial design
    tilt = out[out.measure == "pelvic_tilt_deg"].set_index("design")
    assert set(tilt.index) == set(truth)
    assert tilt.loc["session-to-session", "n_targets"] == 400
    score = out[out.measure == "aslr_mens_score"].set_index("design")
    assert set(score.index) == {"session-to-session", "rater-to-rater"}
    assert score["kappa"].between(0.5, 1).all()
    assert score["kappa_on"].str.contains("quadratic").all()
    assert tilt["kappa_on"].str.startswith("tilt class").all()
    assert tilt["kappa"].between(0, 1).all()
    sk = res.skipped
    assert ((sk["measure"] == "aslr_mens_score") & (sk["design"] == "trial-to-trial")).any()
    assert any(n.startswith("aslr_mens_score") and "not estimable" in n for n in res.notes)
    assert "hip_ir_deg session-to-session: visit 'retest' against 'baseline' by rater R1" in res.notes


def test_reliability_summary_accepts_cohort_like_object(measurements):
    class CohortLike:
        pass

    c = CohortLike()
    c.measurements = measurements[measurements.measure == "aslr_deg"]
    out = reliability_summary(c, designs=["rater-to-rater"]).to_frame()
    assert out[["measure", "design"]].to_numpy().tolist() == [["aslr_deg", "rater-to-rater"]]
    renamed = c.measurements.assign(rater=c.measurements.rater.map({"R1": "AB", "R2": "CD"}))
    out = reliability_summary(renamed, designs=["session-to-session"], primary_rater="AB").to_frame()
    assert out.loc[0, "design"] == "session-to-session"
    # no name is assumed: the primary rater (AB, who measured most) is found from the data
    found = reliability_summary(renamed, designs=["session-to-session"]).to_frame()
    pd.testing.assert_frame_equal(found, out)
    with pytest.raises(AnalysisError, match="set primary_rater"):
        reliability_summary(renamed, designs=["session-to-session"], primary_rater="CD")
    with pytest.raises(ValueError, match="unknown design"):
        reliability_summary(c, designs=["day-to-day"])
    with pytest.raises(TypeError):
        reliability_summary([1, 2, 3])


def test_reliability_summary_on_simulated_cohort():
    """The package's own simulated cohort: every row finite, ICC in (0, 1], the R1/R2
    rater-to-rater and test-retest designs present for the reliability subset, and the
    trial-to-trial SEM of hip IR recovers truth["ir_sd_trial"] (within 0.2 deg, about 3 SE with
    ~600 participant-side-visits)."""
    from hipstats.cohort.simulate import simulate_cohort

    cohort = simulate_cohort(n_participants=60, seed=1)
    out = reliability_summary(cohort).to_frame()
    assert {"trial-to-trial", "session-to-session", "rater-to-rater"} <= set(out.design)
    assert np.isfinite(out[["icc", "icc_ci_low", "icc_ci_high", "sem", "mdc95"]].to_numpy()).all()
    assert ((out.icc > 0) & (out.icc <= 1)).all()
    ir = out[(out.measure == "hip_ir_deg") & (out.pelvis == "free")].set_index("design")
    assert ir.loc["trial-to-trial", "sem"] == pytest.approx(cohort.truth["ir_sd_trial"], abs=0.2)
    retest = cohort.measurements.query("visit == 'retest'")["participant_id"].nunique()
    assert ir.loc["session-to-session", "n_participants"] == retest


# ------------------------------------------------------------------------------------ Bland-Altman
def pefr_frame():
    return pd.DataFrame(PEFR, columns=["wright1", "wright2", "mini1", "mini2"])


def test_bland_altman_1986_peak_flow():
    """BA (1986): mean difference -2.1, SD 38.8, limits (2 SD) -79.7 to 75.5 l/min; 95% CI of the
    bias -22.0 to 17.8; of the lower limit -114.3 to -45.1, of the upper 40.9 to 110.1 (SE
    sqrt(3 s^2 / n)). Tolerances: 0.05 for the first-step values (one published decimal),
    0.25 for the limits and their CIs (the paper carries rounded intermediates)."""
    res = bland_altman(pefr_frame(), "wright1", "mini1", limits=2, ci_method="simple")
    assert res.bias == pytest.approx(-2.1, abs=0.05)
    assert res.sd == pytest.approx(38.8, abs=0.05)
    assert res.n_pairs == 17
    assert res.bias_ci == pytest.approx((-22.0, 17.8), abs=0.06)
    assert res.loa_low == pytest.approx(-79.7, abs=0.25)
    assert res.loa_high == pytest.approx(75.5, abs=0.25)
    assert res.loa_low_ci == pytest.approx((-114.3, -45.1), abs=0.25)
    assert res.loa_high_ci == pytest.approx((40.9, 110.1), abs=0.25)


def test_bland_altman_approx_and_exact_intervals():
    """'approx' is BA (1999): SE^2 = s^2 (1/n + z^2 / (2(n-1))) (closed form, 1e-10); 'exact'
    (Carkeet 2015) intervals cover the true limit at 95% +/- 2.5 points in 600 simulations
    (binomial SD 0.9 points); the approximation at 90-97% (it is known to be a little liberal
    for small n, here n = 12)."""
    res = bland_altman(pefr_frame(), "wright1", "mini1")
    n, s = 17, res.sd
    se = s * np.sqrt(1 / n + 1.96**2 / (2 * (n - 1)))
    t = stats.t.ppf(0.975, n - 1)
    assert res.loa_high_ci == pytest.approx((res.loa_high - t * se, res.loa_high + t * se),
                                            rel=1e-10)
    rng = np.random.default_rng(11)
    hits = {"exact": [], "approx": []}
    for _ in range(600):
        d = rng.normal(1.0, 2.0, 12)
        df = pd.DataFrame({"x": d, "y": np.zeros(12)})
        for method in hits:
            r = bland_altman(df, "x", "y", ci_method=method)
            hits[method].append(r.loa_high_ci[0] <= 1.0 + 1.96 * 2.0 <= r.loa_high_ci[1])
    assert 0.925 <= np.mean(hits["exact"]) <= 0.975
    assert 0.90 <= np.mean(hits["approx"]) <= 0.97


def test_bland_altman_proportional_bias():
    """A difference that grows with the mean (slope 0.1) is detected; its slope is the OLS slope."""
    rng = np.random.default_rng(5)
    truth = rng.uniform(20, 60, 80)
    df = pd.DataFrame({"x": truth * 1.1 + rng.normal(0, 1, 80), "y": truth})
    res = bland_altman(df, "x", "y")
    ref = stats.linregress((df.x + df.y) / 2, df.x - df.y)
    assert res.slope == pytest.approx(ref.slope, rel=1e-12)
    assert res.slope_p_value < 1e-6
    assert res.slope_ci[0] < res.slope < res.slope_ci[1]


@pytest.mark.parametrize("dataset,case", [("pefr", "varying"), ("pefr", "constant"),
                                          ("sim_varying", "varying"),
                                          ("sim_constant", "constant")])
def test_bland_altman_repeated_measures_match_r(dataset, case):
    """Bland & Altman (2007) limits equal the R computation from the paper's formulas (1e-9)."""
    ref = pd.read_csv(FIX / "ba_repeated.csv").set_index(["dataset", "case"]).loc[(dataset, case)]
    if dataset == "pefr":
        data = pd.read_csv(FIX / "ba_pefr_long.csv")
        if case == "constant":
            data = pd.concat([data[["subject", "x"]], data[["subject", "y"]]])
    else:
        data = pd.read_csv(FIX / f"ba_{dataset}.csv")
    res = bland_altman(data, "x", "y", participant="subject", true_value=case)
    for col in ("bias", "sd", "loa_low", "loa_high"):
        assert getattr(res, col) == pytest.approx(ref[col], rel=1e-9, abs=1e-12), col
    assert res.n_participants == data["subject"].nunique()
    assert res.loa_low_ci[0] < res.loa_low < res.loa_low_ci[1]


def test_repeated_measures_limits_cover_truth():
    """Varying true value, 3 pairs per subject, between-subject SD of differences 1 and within
    SD 2: true limits bias +/- 1.96 sqrt(5); the delta-method CIs cover them in 88-99% of 200
    simulated studies (nominal 95%)."""
    rng = np.random.default_rng(21)
    true_hi = 0.5 + 1.96 * np.sqrt(5.0)
    hits = []
    for _ in range(200):
        subj = np.repeat(np.arange(30), 3)
        d = 0.5 + rng.normal(0, 1, 30)[subj] + rng.normal(0, 2, 90)
        level = rng.normal(40, 8, 30)[subj]
        df = pd.DataFrame({"s": subj, "x": level + d, "y": level})
        r = bland_altman(df, "x", "y", participant="s")
        hits.append(r.loa_high_ci[0] <= true_hi <= r.loa_high_ci[1])
    assert 0.88 <= np.mean(hits) <= 0.99


def test_bland_altman_result_interface():
    res = bland_altman(pefr_frame(), "wright1", "mini1")
    assert isinstance(res, BlandAltmanResult)
    summ = res.summary()
    assert list(summ.index) == ["bias", "loa_low", "loa_high", "slope"]
    assert summ.loc["bias", "estimate"] == res.bias
    frame = res.to_frame()
    assert frame.shape[0] == 1 and frame.loc[0, "loa_high"] == res.loa_high
    html = res._repr_html_()
    assert "Bland-Altman" in html and "<table" in html
    assert "limits of agreement" in str(res)
    fig = res.plot(show_regression=True)
    assert isinstance(fig, matplotlib.figure.Figure)
    ax = fig.axes[0]
    ys = sorted(line.get_ydata()[0] for line in ax.get_lines()
                if len(set(line.get_ydata())) == 1)
    for value in (res.loa_low, res.bias, res.loa_high):
        assert any(np.isclose(value, y) for y in ys)
    plt.close("all")


def test_bland_altman_plot_from_data():
    from hipstats.plots.reliability import bland_altman_plot

    data = pd.read_csv(FIX / "ba_sim_varying.csv")
    fig = bland_altman_plot(bland_altman(data, x="x", y="y", participant="subject"), unit="deg")
    ax = fig.axes[0]
    assert "deg" in ax.get_ylabel()
    assert len(ax.collections[0].get_offsets()) == len(data)
    plt.close("all")


# ------------------------------------------------------------------------------------ kappa
@pytest.fixture(scope="module")
def kappa_data():
    return pd.read_csv(FIX / "kappa_data.csv")


@pytest.mark.parametrize("dataset,cols,cats", [
    ("scores", ("score1", "score2"), list(range(6))),
    ("tilt", ("tilt1", "tilt2"), ["posterior", "neutral", "anterior"]),
])
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_matches_psych(kappa_data, dataset, cols, cats, weights):
    """Kappa equals psych::cohen.kappa (1e-10); the variance equals psych's for unweighted kappa
    and the Fleiss-Cohen-Everitt (1969) formula computed in R for weighted kappa (psych's
    weighted variance uses different marginal weights), tolerance 1e-10; CI = kappa +/- 1.96 SE."""
    ref = pd.read_csv(FIX / "kappa_psych.csv")
    ref = ref[(ref.dataset == dataset) & (ref.weights == (weights or "none"))].iloc[0]
    res = cohen_kappa(kappa_data, *cols, weights=weights, categories=cats).iloc[0]
    assert res["kappa"] == pytest.approx(ref["kappa"], abs=1e-10)
    assert res["kappa_se"] ** 2 == pytest.approx(ref["var_fce"], abs=1e-10)
    if weights is None:
        assert res["kappa_se"] ** 2 == pytest.approx(ref["var"], abs=1e-10)
        assert (res["kappa_ci_low"], res["kappa_ci_high"]) == pytest.approx((ref.ci_low, ref.ci_high),
                                                                            abs=1e-9)
    assert res["kappa_ci_high"] - res["kappa"] == pytest.approx(1.959964 * res["kappa_se"], rel=1e-6)


def test_cohen_kappa_hand_example_and_null_test():
    """Two raters, 3 categories: po = 6/8, pe = (2*2 + 3*3 + 3*3)/64 -> kappa = 0.619."""
    df = pd.DataFrame({"a": [0, 1, 2, 2, 1, 0, 2, 1], "b": [0, 1, 2, 1, 1, 0, 2, 2]})
    res = cohen_kappa(df, "a", "b").iloc[0]
    pe = (2 * 2 + 3 * 3 + 3 * 3) / 64
    assert res["kappa"] == pytest.approx((6 / 8 - pe) / (1 - pe), rel=1e-12)
    assert res["p_value"] < 0.05
    rng = np.random.default_rng(0)
    indep = pd.DataFrame({"a": rng.integers(0, 4, 400), "b": rng.integers(0, 4, 400)})
    assert cohen_kappa(indep, "a", "b")["p_value"].iloc[0] > 0.05


def test_weighted_kappa_ci_coverage():
    """Quadratic-weighted kappa SE: 95% CIs cover the population kappa (from a large sample)
    in 91-99% of 250 samples of n = 150."""
    rng = np.random.default_rng(9)

    def draw(n):
        lat = rng.normal(0, 1, n)
        f = lambda: np.clip(np.round(2.5 + 1.2 * lat + rng.normal(0, 0.8, n)), 0, 5)  # noqa: E731
        return pd.DataFrame({"a": f(), "b": f()})

    true = cohen_kappa(draw(400_000), "a", "b", weights="quadratic",
                       categories=range(6))["kappa"].iloc[0]
    hits = [cohen_kappa(d, "a", "b", weights="quadratic", categories=range(6))
            .pipe(lambda r: r.kappa_ci_low.iloc[0] <= true <= r.kappa_ci_high.iloc[0])
            for d in (draw(150) for _ in range(250))]
    assert 0.91 <= np.mean(hits) <= 0.99


def test_fleiss_kappa_published_example():
    """10 subjects x 14 raters x 5 categories: P-bar 0.378, P-bar_e 0.213, kappa 0.210 (3 d.p.)."""
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
                      [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
                      [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    rows = [(i, r, j) for i, row in enumerate(table)
            for r, j in enumerate(np.repeat(np.arange(5), row))]
    res = fleiss_kappa(pd.DataFrame(rows, columns=["s", "r", "c"]), "s", "r", "c").iloc[0]
    assert res["p_agree"] == pytest.approx(0.378, abs=5e-4)
    assert res["p_chance"] == pytest.approx(0.213, abs=5e-4)
    assert res["kappa"] == pytest.approx(0.210, abs=5e-4)
    assert res["n_raters"] == 14 and res["n_targets"] == 10


def test_fleiss_kappa_two_raters_is_scotts_pi(kappa_data):
    """Two raters: Fleiss' kappa equals Scott's pi (po - pe)/(1 - pe), pe from pooled margins."""
    a, b = kappa_data["tilt1"], kappa_data["tilt2"]
    po = np.mean(a == b)
    pooled = pd.concat([a, b]).value_counts(normalize=True)
    pe = (pooled**2).sum()
    long = pd.DataFrame({"s": np.tile(np.arange(len(a)), 2), "r": np.repeat(["A", "B"], len(a)),
                         "c": np.concatenate([a, b])})
    res = fleiss_kappa(long, "s", "r", "c")
    assert res["kappa"].iloc[0] == pytest.approx((po - pe) / (1 - pe), rel=1e-12)


# ------------------------------------------------------------------------------------ errors
def test_errors_name_the_problem():
    long = to_long(SF)
    with pytest.raises(AnalysisError, match="two raters"):
        icc(long[long.rater == 0], "target", "rater", "rating")
    with pytest.raises(AnalysisError, match="two targets"):
        icc(long[long.target == 0], "target", "rater", "rating")
    with pytest.raises(AnalysisError, match="identical"):
        icc(long.assign(rating=5.0), "target", "rater", "rating")
    with pytest.raises(AnalysisError, match="identical ratings from all raters"):
        icc(long.assign(rating=long.target * 1.0), "target", "rater", "rating")
    shifted = pd.DataFrame({"t": [0, 0, 1, 1, 2, 2], "r": [0, 1] * 3, "y": [1, 3, 2, 4, 5, 7.0]})
    for policy in ("raise", "model"):
        with pytest.raises(AnalysisError, match="residual"):
            icc(shifted, "t", "r", "y", nan_policy=policy)
    with pytest.raises(AnalysisError, match="two targets, got 1 after dropping incomplete"):
        icc(long[long.target <= 1].iloc[1:], "target", "rater", "rating", nan_policy="omit")
    with pytest.raises(AnalysisError, match="column"):
        icc(long, "participant_id", "rater", "rating")
    with pytest.raises(ValueError, match="nan_policy"):
        icc(long, "target", "rater", "rating", nan_policy="drop")


def test_bland_altman_errors():
    pairs = pd.DataFrame({"s": [1, 1, 2, 2, 3], "x": [1.0, 2, 3, 4, 5], "y": [1.5, 2, 2, 4, 6]})
    with pytest.raises(AnalysisError, match=r"single pair.*\[3\]"):
        bland_altman(pairs, "x", "y", participant="s")
    with pytest.raises(AnalysisError, match="single reading"):
        bland_altman(pd.DataFrame({"s": [1, 1, 2, 2, 3, 3], "x": [1, 2, 3, 4, 5, None],
                                   "y": [1, 2, 3, None, 5, 6]}), "x", "y", participant="s",
                     true_value="constant")
    with pytest.raises(AnalysisError, match="equal"):
        bland_altman(pd.DataFrame({"x": [1.0, 2, 3], "y": [0.0, 1, 2]}), "x", "y")
    with pytest.raises(AnalysisError, match="at least 3"):
        bland_altman(pd.DataFrame({"x": [1.0, 2], "y": [0.0, 1]}), "x", "y")


def test_kappa_errors():
    with pytest.raises(AnalysisError, match="undefined"):
        cohen_kappa(pd.DataFrame({"a": [1, 1, 1], "b": [1, 1, 1]}), "a", "b")
    with pytest.raises(AnalysisError, match="not among categories"):
        cohen_kappa(pd.DataFrame({"a": [1, 7], "b": [1, 2]}), "a", "b", categories=range(6))
    long = pd.DataFrame({"s": [1, 1, 2, 2, 2], "r": ["A", "B", "A", "B", "C"],
                         "c": [0, 1, 1, 1, 0]})
    with pytest.raises(AnalysisError, match="same number of raters"):
        fleiss_kappa(long, "s", "r", "c")
    with pytest.raises(AnalysisError, match="repeated"):
        fleiss_kappa(pd.concat([long, long]), "s", "r", "c")


# ---------------------------------------------------------------------------------------------
# reliability_summary: participant-cluster bootstrap CI (both sides of a participant)
# ---------------------------------------------------------------------------------------------
def _two_side_sets(rng, n_sets, g, per=2, sd_p=8.0, sd_side=1.0, sd_e=4.0):
    """n_sets data sets of g participants x ``per`` targets (2 sides, or 2 sides x 2 visits)
    x 2 sessions; the true values of a participant's targets share a participant effect
    (sd_p) and differ by a target effect (sd_side), so the targets of a participant are
    strongly correlated; no session effect, so
    ICC(A,1) = ICC(C,1) = (sd_p^2 + sd_side^2) / (... + sd_e^2)."""
    true = (rng.normal(0, sd_p, (n_sets, g, 1, 1)) + rng.normal(0, sd_side, (n_sets, g, per, 1)))
    y = 36 + true + rng.normal(0, sd_e, (n_sets, g, per, 2))
    icc_true = (sd_p**2 + sd_side**2) / (sd_p**2 + sd_side**2 + sd_e**2)
    return y.reshape(n_sets, per * g, 2), np.repeat(np.arange(g), per), icc_true


def test_cluster_bootstrap_icc_covers_while_naive_f_undercovers():
    """Simulation truth: 200 data sets of 30 participants x 4 targets (2 sides x 2 visits, as
    the trial-to-trial design's targets) x 2 readings (true ICC(A,1) = 65/81 = 0.80). The
    F-based CI treats the 120 targets as independent and under-covers (0.82 with 400 sets);
    the participant-cluster bootstrap (200 draws per data set, vectorised; t_{G-1} x bootstrap
    SE on the Fisher z scale) covers at about 95% (0.93 with 400 sets; with 2 targets per
    participant F 0.91, bootstrap 0.94). Bands: bootstrap 0.89-0.99 (binomial SE over 200
    sets ~0.015), F below 0.88 and at least 0.06 below the bootstrap. The SEM (sqrt MSW) CI
    covers sd_e = 4 likewise (0.89-0.99)."""
    from hipstats.stats.icc import cluster_bootstrap_icc

    rng = np.random.default_rng(7)
    y, pid, icc_true = _two_side_sets(rng, 200, 30, per=4)
    ms = _anova_mean_squares(y)  # naive: all 200 sets at once
    n, k = y.shape[1:]
    rows = _icc_forms(ms["msr"], ms["msc"], ms["mse"], ms["msw"], k0=k, n0=n, K=k, df_r=n - 1,
                      df_c=k - 1, df_e=(n - 1) * (k - 1), df_w=n * (k - 1), confidence=0.95, r0=0)
    f = next(r for r in rows if r["form"] == "ICC(A,1)")
    cover_f = np.mean((f["icc_ci_low"] <= icc_true) & (icc_true <= f["icc_ci_high"]))
    boot = np.array([cluster_bootstrap_icc(y[i], pid, "ICC(A,1)", n_boot=200, seed=i)
                     for i in range(len(y))])
    assert (boot[:, 4] >= 180).all()
    cover_b = np.mean((boot[:, 0] <= icc_true) & (icc_true <= boot[:, 1]))
    cover_sem = np.mean((boot[:, 2] <= 4.0) & (4.0 <= boot[:, 3]))
    assert 0.89 <= cover_b <= 0.99, cover_b
    assert cover_f < 0.88 and cover_f <= cover_b - 0.06, (cover_f, cover_b)
    assert 0.89 <= cover_sem <= 0.99, cover_sem


def test_reliability_summary_reports_cluster_and_f_cis():
    """reliability_summary on 25 participants x 2 sides x 2 visits (session-to-session):
    ci_low/ci_high are the bootstrap CI (same seed -> same numbers as
    the helper on the participant-side matrix), ci_low_f/ci_high_f equal icc()'s F CI
    (1e-12), MDC CI = 1.96 sqrt 2 x SEM CI, and ci="f" restores the F CI."""
    from hipstats.stats.icc import cluster_bootstrap_icc

    y, pid, _ = _two_side_sets(np.random.default_rng(3), 1, 25)
    long = pd.DataFrame([dict(participant_id=f"P{pid[t]:02d}", side=("left", "right")[t % 2],
                              visit=("baseline", "retest")[j], measure="hip_ir_deg", trial=1,
                              value=y[0, t, j]) for t in range(50) for j in range(2)])
    out = reliability_summary(long, designs=["session-to-session"], n_boot=500, seed=5).to_frame().iloc[0]
    assert out["n_participants"] == 25 and out["n_targets"] == 50
    assert list(reliability_summary(long, designs=["session-to-session"]).to_frame().columns[:4]) == [
        "measure", "design", "n_participants", "n_targets"]
    ref = icc(long, ["participant_id", "side"], "visit", "value").set_index("form").loc["ICC(A,1)"]
    assert [out["icc_ci_low_f"], out["icc_ci_high_f"]] == pytest.approx([ref["icc_ci_low"], ref["icc_ci_high"]], abs=1e-12)
    b = cluster_bootstrap_icc(y[0], pid, "ICC(A,1)", n_boot=500, seed=5)
    assert [out["icc_ci_low"], out["icc_ci_high"], out["sem_ci_low"], out["sem_ci_high"]] == pytest.approx(
        list(b[:4]), abs=1e-12)
    assert out["ci_method"] == "participant-cluster bootstrap (500 draws)"
    assert out["mdc95_ci_low"] == pytest.approx(stats.norm.ppf(0.975) * np.sqrt(2) * b[2], rel=1e-12)
    assert out["sem_ci_low"] < out["sem"] < out["sem_ci_high"]
    f = reliability_summary(long, designs=["session-to-session"], ci="f").to_frame().iloc[0]
    assert (f["icc_ci_low"], f["icc_ci_high"]) == (f["icc_ci_low_f"], f["icc_ci_high_f"])
    assert f["ci_method"].startswith("F")
    with pytest.raises(ValueError, match="ci must be"):
        reliability_summary(long, ci="wald")


def test_codes_of_several_columns_match_sorted_groups():
    """Factorised multi-column codes: code i labels the i-th key in sorted order, and every
    row's code points at its own key (reference: sorted drop_duplicates of the keys)."""
    from hipstats.stats.icc import _codes

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"participant_id": rng.choice(["p3", "p1", "p2", "p10"], 300),
                       "side": rng.choice(["right", "left"], 300),
                       "trial": rng.integers(1, 4, 300)})
    codes, labels = _codes(df, ["participant_id", "side", "trial"])
    ref = df.drop_duplicates().sort_values(["participant_id", "side", "trial"])
    assert list(labels) == list(ref.itertuples(index=False, name=None))
    assert list(labels.names) == ["participant_id", "side", "trial"]
    assert [labels[c] for c in codes] == list(df.itertuples(index=False, name=None))


def test_score_agreement_weights_the_whole_scale_at_the_asked_confidence():
    """The report's Mens-score kappa uses the full 0-5 scale (quadratic weights depend on the number
    of categories, not on which scores happen to be seen) and its CI follows ``confidence``."""
    from hipstats.cohort.simulate import simulate_cohort
    from hipstats.report.areas import rater_pairs, score_agreement

    cohort = simulate_cohort(n_participants=60, seed=1)
    pairs = rater_pairs(cohort, "aslr_mens_score", pelvis=None)
    a, b = pairs.attrs["raters"]
    seen = sorted(set(pairs[a].dropna()) | set(pairs[b].dropna()))
    assert len(seen) < 6  # the simulated scores leave part of the scale unused
    # (quadratic kappa is unchanged by unused end categories, but a gap inside the scale moves it:
    # positions 0, 1, 2 for the scores 0, 1, 3 would make 1 -> 3 look like one step)
    gap = pd.DataFrame({"x": [0, 1, 3, 3, 1, 0, 3], "y": [0, 3, 1, 3, 1, 1, 3]})
    assert (cohen_kappa(gap, "x", "y", weights="quadratic", categories=range(6))["kappa"].iloc[0]
            != pytest.approx(cohen_kappa(gap, "x", "y", weights="quadratic")["kappa"].iloc[0], rel=1e-6))
    k95 = score_agreement(cohort, "aslr_mens_score")
    k90 = score_agreement(cohort, "aslr_mens_score", confidence=0.90)
    full = cohen_kappa(pairs, a, b, weights="quadratic", categories=range(6))
    assert int(k95["n_categories"].iloc[0]) == 6
    assert k95["kappa"].iloc[0] == pytest.approx(full["kappa"].iloc[0], rel=1e-12)
    w95 = k95["kappa_ci_high"].iloc[0] - k95["kappa_ci_low"].iloc[0]
    w90 = k90["kappa_ci_high"].iloc[0] - k90["kappa_ci_low"].iloc[0]
    assert w90 / w95 == pytest.approx(1.6448536 / 1.9599640, rel=1e-6)
    assert k90.attrs["confidence"] == 0.90
