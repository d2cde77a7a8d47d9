"""Tests for hipstats.questions.pelvis, hipstats.stats.correlation (H1) and its figures.

References used:
* Bland & Altman (1995) pH/PaCO2 data: the published repeated-measures correlation
  r_rm = -0.507 (df 38, p = 0.0008), and the exact values of R's rmcorr formulas
  (tests/fixtures/pelvis/make_fixtures.R -> reference.json).
* Closed form: rm_corr is OLS with participant dummies (numpy least squares here).
* lme4 / lmerTest fit of the within-between model on a stored data set (reference.json).
* Simulation with known truth (a small numpy generator below, shaped like the data contract):
  within slope -0.3, between slope -0.05, neutral-minus-free difference 0.3 * tilt.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import special, stats  # noqa: E402

from hipstats.errors import AnalysisError  # noqa: E402
from hipstats.cohort.views import tilt_class
from hipstats.questions.pelvis import (
    ir_by_tilt_class,
    paired_pelvis_difference,
    pelvis_analysis,
    pelvis_frame,
)
from hipstats.stats.correlation import rm_corr, within_between

FIX = Path(__file__).parent / "fixtures" / "pelvis"
REF = json.loads((FIX / "reference.json").read_text())

# ----------------------------------------------------------------------------------------
# A small generator with known truth (measurements table of the data contract)
# ----------------------------------------------------------------------------------------
TRUTH = dict(ir_mean=36.0, ir_sd_between=9.0, ir_sd_side=2.0, ir_sd_session=3.0, ir_sd_trial=2.0,
             tilt_mean=10.0, tilt_sd_between=5.0, tilt_sd_within=2.5, tilt_mask_ir=-0.3,
             tilt_between_ir=0.25)


def _latent(n, weeks, seed, **over):
    """Participant-visit-side latent values: neutral-setup IR and the visit's standing tilt.

    IR_neutral = a_i + 0.25 (mu_i - 10) + side_is + visit noise; IR_free = IR_neutral +
    tilt_mask_ir * tilt_ij (the standing tilt at that visit), so the within slope of free IR
    on tilt is -0.3 and the between slope 0.25 - 0.3 = -0.05.
    """
    t = {**TRUTH, **over}
    rng = np.random.default_rng(seed)
    nw = len(weeks)
    mu = rng.normal(t["tilt_mean"], t["tilt_sd_between"], n)
    a = rng.normal(t["ir_mean"], t["ir_sd_between"], n) + t["tilt_between_ir"] * (mu - t["tilt_mean"])
    tilt = mu[:, None] + rng.normal(0, t["tilt_sd_within"], (n, nw))          # n x visits
    side = rng.normal(0, t["ir_sd_side"], (n, 1, 2))
    neutral = a[:, None, None] + side + rng.normal(0, t["ir_sd_session"], (n, nw, 2))
    i, j, k = np.meshgrid(np.arange(n), np.arange(nw), np.arange(2), indexing="ij")
    return pd.DataFrame({
        "participant_id": [f"P{v:03d}" for v in i.ravel()],
        "visit": np.array(["baseline" if w == 0 else f"week_{w}" for w in weeks])[j.ravel()],
        "week": np.asarray(weeks, float)[j.ravel()], "side": np.array(["left", "right"])[k.ravel()],
        "neutral": neutral.ravel(), "tilt": tilt[i.ravel(), j.ravel()],
        "free": (neutral + t["tilt_mask_ir"] * tilt[:, :, None]).ravel()}), t, rng


def make_measurements(n=60, weeks=(0, 3, 6, 9, 12), seed=0, **over):
    """Long measurements table: IR (free and neutral, both sides, 2 trials each, trial noise
    sd 2) and standing tilt (2 identical trials) per visit."""
    lat, t, rng = _latent(n, weeks, seed, **over)
    parts = []
    for pel in ("neutral", "free"):
        for trial in (1, 2):
            parts.append(lat.assign(measure="hip_ir_deg", pelvis=pel, trial=trial,
                                    value=lat[pel] + rng.normal(0, t["ir_sd_trial"], len(lat))))
    tilt = lat[lat["side"] == "left"].assign(measure="pelvic_tilt_deg", side=None, pelvis=None)
    for trial in (1, 2):
        parts.append(tilt.assign(trial=trial, value=tilt["tilt"]))
    m = pd.concat(parts, ignore_index=True)[["participant_id", "visit", "week", "measure",
                                             "side", "value", "trial", "pelvis"]]
    m["rater"], m["position"] = "R1", np.where(m["measure"] == "hip_ir_deg", "prone", None)
    return m


def make_frame(n=60, weeks=(0, 3, 6, 9, 12), seed=0, side="mean", **over):
    """The pelvis frame that pelvis_frame() builds from make_measurements (same model; the
    mean of 2 trials adds noise with sd 2/sqrt(2)), generated directly for fast loops."""
    lat, t, rng = _latent(n, weeks, seed, **over)
    sd = t["ir_sd_trial"] / np.sqrt(2)
    lat["ir_free"] = lat["free"] + rng.normal(0, sd, len(lat))
    lat["ir_neutral"] = lat["neutral"] + rng.normal(0, sd, len(lat))
    if side == "mean":
        lat = (lat.groupby(["participant_id", "visit", "week"], as_index=False)
                  [["ir_free", "ir_neutral", "tilt"]].mean().assign(side="mean"))
    return lat


@pytest.fixture(scope="module")
def meas():
    return make_measurements(n=80, seed=11)


# ----------------------------------------------------------------------------------------
# tilt_class
# ----------------------------------------------------------------------------------------
def test_tilt_class_boundaries_and_missing():
    out = tilt_class([-5, 3.999, 4.0, 13.999, 14.0, 30, np.nan])
    assert isinstance(out, pd.Categorical)
    assert list(out.categories) == ["posterior", "neutral", "anterior"] and out.ordered
    assert out.tolist()[:6] == ["posterior", "posterior", "neutral", "neutral", "anterior",
                                "anterior"]
    assert pd.isna(out[6])
    assert tilt_class([5, 10], cuts=(6, 8)).tolist() == ["posterior", "anterior"]


@pytest.mark.parametrize("cuts", [(14, 4), (4,), (4, 4), (np.nan, 3)])
def test_tilt_class_bad_cuts(cuts):
    with pytest.raises(AnalysisError, match="cuts"):
        tilt_class([1.0], cuts=cuts)


# ----------------------------------------------------------------------------------------
# rm_corr
# ----------------------------------------------------------------------------------------
def test_rm_corr_bland_altman_published_and_r():
    d = pd.read_csv(FIX / "bland1995.csv")
    res = rm_corr(d, "PacO2", "pH", "Subject").iloc[0]
    ref = REF["bland1995"]
    # published (Bland & Altman 1995; Bakdash & Marusich 2017): r = -0.51, df 38, p = 0.0008
    assert res["df"] == 38 and round(res["estimate"], 2) == -0.51 and round(res["p_value"], 4) == 0.0008
    # the R package rmcorr itself (0.7.0; its CI since 0.5.4: psych::r.con(r, df + 2)): 1e-9
    assert REF["rmcorr"] >= "0.5.4"
    assert round(res["ci_low"], 4) == -0.7067 and round(res["ci_high"], 4) == -0.2319
    for key, ours in (("r", "estimate"), ("p", "p_value"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("slope", "slope")):
        assert res[ours] == pytest.approx(ref[key], abs=1e-9), key


def _rm_corr_ols(d, x, y, s):
    """Closed form: OLS y ~ participant dummies + x; r from the Type III SS of x."""
    D = pd.get_dummies(d[s], dtype=float).to_numpy()
    X1 = np.column_stack([D, d[x].to_numpy()])
    b, *_ = np.linalg.lstsq(X1, d[y].to_numpy(), rcond=None)
    rss_full = np.sum((d[y].to_numpy() - X1 @ b) ** 2)
    b0, *_ = np.linalg.lstsq(D, d[y].to_numpy(), rcond=None)
    rss_red = np.sum((d[y].to_numpy() - D @ b0) ** 2)
    ss_x = rss_red - rss_full
    dof = len(d) - D.shape[1] - 1
    F = ss_x / (rss_full / dof)
    return np.sign(b[-1]) * np.sqrt(ss_x / (ss_x + rss_full)), b[-1], dof, stats.f.sf(F, 1, dof)


def test_pelvis_frame_from_measurements(meas):
    """pelvis_frame = mean of trials per visit and side, sides averaged, tilt of the visit."""
    pf = pelvis_frame(meas)
    assert len(pf) == 80 * 5 and set(pf["side"]) == {"mean"}
    ir = meas[meas["measure"] == "hip_ir_deg"]
    by = ir.groupby(["participant_id", "visit", "pelvis"])["value"].mean().unstack()
    got = pf.set_index(["participant_id", "visit"])
    assert np.allclose(got["ir_free"], by.loc[got.index, "free"])
    assert np.allclose(got["ir_neutral"], by.loc[got.index, "neutral"])
    both = pelvis_frame(meas, side="both")
    assert len(both) == 2 * len(pf) and set(both["side"]) == {"left", "right"}
    assert list(pf["tilt_class"].cat.categories) == ["posterior", "neutral", "anterior"]


def test_rm_corr_equals_ols_with_subject_dummies(meas):
    pf = pelvis_frame(meas)
    res = rm_corr(pf, "tilt", "ir_free", "participant_id").iloc[0]
    r, slope, dof, p = _rm_corr_ols(pf, "tilt", "ir_free", "participant_id")
    assert res["estimate"] == pytest.approx(r, abs=1e-10)
    assert res["slope"] == pytest.approx(slope, abs=1e-10)
    assert res["df"] == dof and res["p_value"] == pytest.approx(p, rel=1e-8)
    wb = pd.read_csv(FIX / "within_between_data.csv")
    res2 = rm_corr(wb, "tilt", "ir", "participant_id").iloc[0]
    assert res2["estimate"] == pytest.approx(REF["within_between_rmcorr"]["r"], abs=1e-9)
    assert res2["df"] == REF["within_between_rmcorr"]["df"]


def test_rm_corr_single_visit_participants():
    d = pd.read_csv(FIX / "bland1995.csv")
    extra = pd.DataFrame({"Subject": [99], "pH": [7.0], "PacO2": [5.0]})
    with_single = rm_corr(pd.concat([d, extra]), "PacO2", "pH", "Subject").iloc[0]
    base = rm_corr(d, "PacO2", "pH", "Subject").iloc[0]
    assert with_single["n_excluded"] == 1 and with_single["estimate"] == pytest.approx(base["estimate"])
    assert with_single["df"] == base["df"]
    one_each = d.groupby("Subject").head(1)
    with pytest.raises(AnalysisError, match="single observation"):
        rm_corr(one_each, "PacO2", "pH", "Subject")


def test_rm_corr_constant_within_and_too_small():
    d = pd.DataFrame({"s": [1, 1, 2, 2, 3, 3], "x": [1, 1, 2, 2, 3, 3], "y": [1, 2, 3, 4, 5, 7.]})
    with pytest.raises(AnalysisError, match="does not vary within"):
        rm_corr(d, "x", "y", "s")
    d["x"] = [1, 2, 1, 2, 1, 2]
    with pytest.raises(AnalysisError, match="degrees of freedom"):
        rm_corr(d, "x", "y", "s")
    with pytest.raises(AnalysisError, match="column"):
        rm_corr(d, "x", "nope", "s")


# ----------------------------------------------------------------------------------------
# within_between
# ----------------------------------------------------------------------------------------
def test_within_between_matches_lme4_and_lmertest():
    d = pd.read_csv(FIX / "within_between_data.csv")
    res = within_between(d, "tilt", "ir", "participant_id").set_index("term")
    ref = REF["within_between_lmer"]
    for term, key in (("within", "within"), ("between", "between"),
                      ("contextual", "contextual"), ("Intercept", "intercept")):
        assert res.loc[term, "estimate"] == pytest.approx(ref[key], abs=1e-5), term  # lme4
        assert res.loc[term, "se"] == pytest.approx(ref[f"se_{key}"], rel=1e-3), term
    for term in ("within", "between", "contextual"):  # lmerTest Satterthwaite df, 1 %
        assert res.loc[term, "df"] == pytest.approx(ref[f"df_{term}"], rel=1e-2), term
    attrs = res.attrs
    assert attrs["var_participant"] == pytest.approx(ref["var_subject"], rel=1e-4)
    assert attrs["var_residual"] == pytest.approx(ref["var_residual"], rel=1e-4)
    assert attrs["n_participants"] == 30


def test_within_between_errors():
    d = pd.DataFrame({"s": [1, 1, 2, 2, 3, 3], "x": [1, 1, 2, 2, 3, 3.], "y": [1, 2, 3, 4, 5, 7.]})
    with pytest.raises(AnalysisError, match="within any"):
        within_between(d, "x", "y", "s")
    d["x"] = [1, 2, 1, 2, 1, 2.]
    with pytest.raises(AnalysisError, match="means of 'x' are all equal"):
        within_between(d, "x", "y", "s")
    with pytest.raises(AnalysisError, match="at least 3"):
        within_between(d[d.s < 3], "x", "y", "s")


# ----------------------------------------------------------------------------------------
# paired neutral vs own posture
# ----------------------------------------------------------------------------------------
def test_paired_difference_closed_form(meas):
    res = paired_pelvis_difference(meas).set_index("side")
    assert list(res.index) == ["left", "right", "pooled"]
    pf = pelvis_frame(meas, side="both")
    per = pf.groupby("participant_id")[["ir_neutral", "ir_free"]].mean()
    d = per["ir_neutral"] - per["ir_free"]
    tt = stats.ttest_rel(per["ir_neutral"], per["ir_free"])
    ci = tt.confidence_interval(0.95)
    row = res.loc["pooled"]
    assert row["n_participants"] == 80 and row["estimate"] == pytest.approx(d.mean(), abs=1e-12)
    assert row["p_value"] == pytest.approx(tt.pvalue, rel=1e-10)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-10)
    assert row["wilcoxon_p_value"] == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-10)
    assert row["d_z"] == pytest.approx(d.mean() / d.std(ddof=1), abs=1e-12)
    # g_av with the exact J; J(df) ~ 1 - 3/(4 df - 1) (Hedges 1981) to 1e-4 at df = 79
    sd_av = (per["ir_neutral"].std() + per["ir_free"].std()) / 2
    j_exact = np.exp(special.gammaln(79 / 2) - special.gammaln(78 / 2)) / np.sqrt(79 / 2)
    assert row["g_av"] == pytest.approx(j_exact * d.mean() / sd_av, rel=1e-12)
    assert j_exact == pytest.approx(1 - 3 / (4 * 79 - 1), abs=1e-4)
    # d_z CI: noncentral t inversion; the bounds put alpha/2 in each tail of nct(t_obs)
    t_obs = row["d_z"] * np.sqrt(80)
    assert stats.nct.cdf(t_obs, 79, row["d_z_ci_low"] * np.sqrt(80)) == pytest.approx(0.975)
    assert stats.nct.cdf(t_obs, 79, row["d_z_ci_high"] * np.sqrt(80)) == pytest.approx(0.025)


@pytest.mark.slow
def test_paired_difference_recovers_truth_and_dz_ci_covers():
    """Neutral - free = 0.3 * tilt: the pooled mean difference CI covers 0.3 * mean tilt of
    the sample about 95 % of the time (40 seeds: expect 38; accept >= 34, P(fail) < 1 %)."""
    hits_mean, hits_dz = 0, 0
    for seed in range(40):
        m = make_frame(n=25, weeks=(0, 6, 12), seed=100 + seed, side="both")
        res = paired_pelvis_difference(m).set_index("side").loc["pooled"]
        hits_mean += res["ci_low"] <= 0.3 * 10 <= res["ci_high"]
        # population d_z of the per-participant mean difference (2 sides x 3 visits):
        # 0.3 * (mu_i + mean of 3 within deviations) + trial noise (var 2^2/2 per condition
        # and side-visit, i.e. 4 per difference, averaged over 6 side-visits)
        sd = np.sqrt(0.3 ** 2 * (5.0 ** 2 + 2.5 ** 2 / 3) + 4.0 / 6)
        hits_dz += res["d_z_ci_low"] <= 3.0 / sd <= res["d_z_ci_high"]
    assert hits_mean >= 34 and hits_dz >= 34


def test_paired_difference_needs_neutral_readings(meas):
    with pytest.raises(AnalysisError, match="neutral-pelvis"):
        paired_pelvis_difference(meas[meas["pelvis"] != "neutral"])


# ----------------------------------------------------------------------------------------
# simulation truth: within slope -0.3, between slope -0.05
# ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_within_between_recovers_truth_at_nominal_rate():
    """Tilt read with error (variance 1.125 = 1.5^2 / 2 trials, as simulate_cohort): the
    corrected within (-0.3) and between (-0.05) slope CIs cover the truth in about 95 % of 40
    simulated cohorts (30 seeds: expect 28.5; accept >= 26, P(fail) < 2 %), while rm_corr's uncorrected
    slope covers the attenuated value -0.3 * 6.25 / (6.25 + 1.125).

    The between slope is estimated on observed participant-mean tilt, which carries within
    noise (var 2.5^2/5); its bias (about -0.01) is small next to its SE (~0.2)."""
    err = 1.5 ** 2 / 2
    lam = 2.5 ** 2 / (2.5 ** 2 + err)
    hits = {"within": 0, "between": 0, "rm": 0}
    for seed in range(30):
        pf = make_frame(n=40, seed=200 + seed)
        pf["tilt"] += np.random.default_rng(seed).normal(0, np.sqrt(err), len(pf))
        wb = within_between(pf, "tilt", "ir_free", "participant_id",
                            x_error_var=err).set_index("term")
        for term, truth in (("within", -0.3), ("between", -0.05)):
            row = wb.loc[f"{term}_corrected"]
            hits[term] += row["ci_low"] <= truth <= row["ci_high"]
        rc = rm_corr(pf, "tilt", "ir_free", "participant_id").iloc[0]
        se = abs(rc["slope"]) / abs(rc["estimate"] * np.sqrt(rc["df"] / (1 - rc["estimate"] ** 2)))
        crit = stats.t.ppf(0.975, rc["df"])
        hits["rm"] += rc["slope"] - crit * se <= -0.3 * lam <= rc["slope"] + crit * se
    assert min(hits.values()) >= 26, hits


def test_measurement_error_correction_closed_form():
    pf = make_frame(n=50, seed=3)
    pf["tilt"] += np.random.default_rng(0).normal(0, 1.0, len(pf))
    wb = within_between(pf, "tilt", "ir_free", "participant_id", x_error_var=1.0)
    t = wb.set_index("term")
    xw = pf["tilt"] - pf.groupby("participant_id")["tilt"].transform("mean")
    lam_w = 1 - (len(pf) - 50) * 1.0 / np.sum(xw ** 2)
    xbar = pf.groupby("participant_id")["tilt"].mean()
    lam_b = 1 - np.mean(1.0 / pf.groupby("participant_id").size()) / xbar.var()
    assert wb.attrs["reliability_within"] == pytest.approx(lam_w, rel=1e-12)
    assert t.loc["within_corrected", "estimate"] == pytest.approx(t.loc["within", "estimate"] / lam_w)
    assert t.loc["between_corrected", "estimate"] == pytest.approx(t.loc["between", "estimate"] / lam_b)
    # bootstrap inference: seeded (same seed -> same CI), the CI brackets the estimate, and
    # it is no longer the uncorrected CI scaled by 1/lambda
    assert wb.attrs["n_boot_used"] == wb.attrs["n_boot"] == 999
    again = within_between(pf, "tilt", "ir_free", "participant_id", x_error_var=1.0).set_index("term")
    assert again.loc["within_corrected", "ci_low"] == t.loc["within_corrected", "ci_low"]
    for term in ("within", "between"):
        r = t.loc[f"{term}_corrected"]
        assert r["ci_low"] < r["estimate"] < r["ci_high"]
        assert r["statistic"] == pytest.approx(r["estimate"] / r["se"]) and r["df"] == 49
    assert t.loc["within_corrected", "ci_high"] != pytest.approx(t.loc["within", "ci_high"] / lam_w, rel=1e-6)
    with pytest.raises(AnalysisError, match="measurement error"):
        within_between(pf, "tilt", "ir_free", "participant_id", x_error_var=50.0)


def test_corrected_slope_draws_reproduce_reml_fit():
    """Closed form: with every participant counted once, the GLS fixed effects at the REML
    variance components are the REML estimates (fit_lmm, to 1e-8) and the reliability ratios
    those of the data (1e-12); with a covariate too. The error-variance draws
    (x_error_df given) widen the corrected within CI when df is small."""
    from hipstats.stats.correlation import _corrected_slope_draws

    pf = make_frame(n=40, seed=8)
    pf["tilt"] += np.random.default_rng(1).normal(0, 1.5, len(pf))
    pf["c"] = np.random.default_rng(2).integers(0, 2, len(pf))
    for cov in ([], ["C(c)"]):
        wb = within_between(pf, "tilt", "ir_free", "participant_id", covariates=cov,
                            x_error_var=2.25, n_boot=50).set_index("term")
        d = pf.assign(_xb=pf.groupby("participant_id")["tilt"].transform("mean"))
        d = d.assign(_xw=d["tilt"] - d["_xb"]).rename(columns={"ir_free": "_y"})
        pt = _corrected_slope_draws(d, "participant_id", cov, wb.attrs, 2.25, None, 5, 0)["point"]
        assert pt["within"] == pytest.approx(wb.loc["within", "estimate"], abs=1e-8)
        assert pt["between"] == pytest.approx(wb.loc["between", "estimate"], abs=1e-8)
        assert pt["lambda_within"] == pytest.approx(wb.attrs["reliability_within"], rel=1e-12)
        assert pt["lambda_between"] == pytest.approx(wb.attrs["reliability_between"], rel=1e-12)
    width = {}
    for df in (None, 5):
        w = within_between(pf, "tilt", "ir_free", "participant_id", x_error_var=2.25,
                           x_error_df=df).set_index("term").loc["within_corrected"]
        width[df] = w["ci_high"] - w["ci_low"]
    assert width[5] > 1.1 * width[None]


@pytest.mark.slow
def test_corrected_within_slope_bootstrap_covers_truth():
    """Simulation truth: 100 cohorts of 25 participants x 5 visits, tilt read as the mean of 2
    trials with error SD 2.5 (reliability of the within tilt ~0.67), the error variance
    estimated from the trials (df = visits). The bootstrap CI of the corrected within slope
    (lambda and slopes re-estimated per draw, 400 draws) covers the true -0.3 at about 95%
    (0.92 over these 100; 0.94 over 300 cohorts, where the between CI covered -0.05 in 0.91).
    Band >= 0.88 (binomial
    SE ~0.022 at 0.95; P(fail) < 1%)."""
    hits = 0
    for seed in range(100):
        pf = make_frame(n=25, seed=1000 + seed)
        trials = np.random.default_rng(seed).normal(0, 2.5, (len(pf), 2))
        pf["tilt"] += trials.mean(axis=1)
        err = trials.var(axis=1, ddof=1).mean() / 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wb = within_between(pf, "tilt", "ir_free", "participant_id", x_error_var=err,
                                x_error_df=len(pf), n_boot=400, seed=seed).set_index("term")
        r = wb.loc["within_corrected"]
        hits += r["ci_low"] <= -0.3 <= r["ci_high"]
    assert hits >= 88, hits


def test_within_and_pooled_levels_differ():
    """With a strong structural between effect the within slope stays at the masking value
    (-0.3) while a naive pooled regression is pulled towards the between slope (+0.5)."""
    pf = make_frame(n=150, seed=5, tilt_between_ir=0.8, ir_sd_between=4)
    wb = within_between(pf, "tilt", "ir_free", "participant_id").set_index("term")
    assert wb.loc["within", "ci_low"] < -0.3 < wb.loc["within", "ci_high"]
    assert wb.loc["between", "ci_low"] < 0.5 < wb.loc["between", "ci_high"]
    assert wb.loc["contextual", "p_value"] < 0.001
    pooled = np.polyfit(pf["tilt"], pf["ir_free"], 1)[0]
    assert pooled > 0  # the pooled slope has the wrong sign for the masking question


# ----------------------------------------------------------------------------------------
# IR by tilt class
# ----------------------------------------------------------------------------------------
def test_ir_by_tilt_class_matches_hand_grouping(meas):
    res = ir_by_tilt_class(meas).set_index("tilt_class")
    pf = pelvis_frame(meas)
    base = pf[pf["visit"] == "baseline"].set_index("participant_id")
    cls = pd.cut(base["tilt"], [-np.inf, 4, 14, np.inf], right=False,
                 labels=["posterior", "neutral", "anterior"])
    for c in ("posterior", "neutral", "anterior"):
        sub = base[cls == c]
        assert res.loc[c, "n_participants"] == len(sub)
        assert res.loc[c, "ir_free"] == pytest.approx(sub["ir_free"].mean())
        assert res.loc[c, "ir_difference"] == pytest.approx((sub["ir_neutral"] - sub["ir_free"]).mean())
    # masking grows with tilt: anterior class has the largest neutral - free difference
    assert res.loc["anterior", "ir_difference"] > res.loc["neutral", "ir_difference"] > res.loc["posterior", "ir_difference"]
    assert set(res.attrs["anova"]) == {"ir_free", "ir_difference"}


def test_ir_by_tilt_class_anova_keeps_a_class_of_one(meas):
    """A tilt class with a single participant still enters the one-way ANOVA (as in R's aov: it adds to the
    between-class part); checked against statsmodels' OLS ANOVA of the same participants."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    pf = pelvis_frame(meas)
    base = pf[pf["visit"] == "baseline"].set_index("participant_id")
    low = np.sort(base["tilt"].dropna().to_numpy())
    cuts = ((low[0] + low[1]) / 2, 14)  # exactly one participant below the first cut
    res = ir_by_tilt_class(meas, cuts=cuts)
    assert res.set_index("tilt_class").loc["posterior", "n_participants"] == 1
    an = res.attrs["anova"]["ir_free"]
    d = base.assign(cls=pd.cut(base["tilt"], [-np.inf, *cuts, np.inf], right=False,
                               labels=["posterior", "neutral", "anterior"])).dropna(subset=["ir_free", "cls"])
    ref = anova_lm(smf.ols("ir_free ~ C(cls)", d).fit())
    assert (an["num_df"], an["den_df"]) == (2, len(d) - 3)
    assert an["statistic"] == pytest.approx(ref.loc["C(cls)", "F"], rel=1e-10)
    assert an["p_value"] == pytest.approx(ref.loc["C(cls)", "PR(>F)"], rel=1e-8)


def test_ir_by_tilt_class_empty_classes(meas):
    with pytest.warns(UserWarning, match="'posterior' has no participants"):
        res = ir_by_tilt_class(meas, cuts=(-30, 10))
    assert res.set_index("tilt_class").loc["posterior", "n_participants"] == 0
    with pytest.raises(AnalysisError, match="no participants with cut points"):
        ir_by_tilt_class(meas, cuts=(-40, -35))


# ----------------------------------------------------------------------------------------
# one call + figures
# ----------------------------------------------------------------------------------------
def test_pelvis_analysis_one_call(meas):
    res = pelvis_analysis(meas)
    s = res.summary()
    assert {"question", "estimate", "ci_low", "ci_high", "p_value", "interpretation"} <= set(s.columns)
    assert len(s) == 5
    assert s["interpretation"].str.len().gt(20).all()
    # the between slope is worded as a difference between participants, not a change
    between = s.loc[s["question"].str.startswith("Between"), ["estimate", "interpretation"]].iloc[0]
    word = "lower" if between["estimate"] < 0 else "higher"
    assert between["interpretation"].startswith(
        f"Participants whose average tilt is 1 deg higher have {abs(between['estimate']):.2f} deg {word} IR")
    assert "not a change" in between["interpretation"]
    if "within_corrected" in set(res.within_between["term"]):  # replicate tilt trials
        assert res.within_between.attrs["x_error_df"] == res.frame.attrs["tilt_error_df"] > 0
    frame = res.to_frame()
    assert set(frame["analysis"]) == {"paired", "rm_corr", "within_between", "by_class"}
    assert "H1" in res._repr_html_() and "Within-participant slope" in repr(res)
    left = pelvis_analysis(meas, side="left")
    assert (left.frame["side"] == "left").all()
    assert not np.isclose(left.within_between.loc[0, "estimate"],
                          res.within_between.loc[0, "estimate"])


def test_pelvis_frame_without_pelvis_column_or_tilt(meas):
    m = meas[meas["pelvis"].isin(["free"]) | (meas["measure"] == "pelvic_tilt_deg")]
    pf = pelvis_frame(m.drop(columns="pelvis"))
    assert pf["ir_neutral"].isna().all() and pf["ir_free"].notna().all()
    res = pelvis_analysis(m.drop(columns="pelvis"))
    assert res.paired is None and len(res.summary()) == 4
    with pytest.raises(AnalysisError, match="no 'hip_ir_deg'"):
        pelvis_frame(meas[meas["measure"] == "pelvic_tilt_deg"])


def test_pelvis_figures_render(meas):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from hipstats.plots.pelvis import ir_vs_tilt_plot, paired_pelvis_plot

    res = pelvis_analysis(meas)
    for fig in (res.plot(), res.plot(kind="paired"), ir_vs_tilt_plot(res),
                paired_pelvis_plot(res, kind="difference")):
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert "deg" in ax.get_xlabel() + ax.get_ylabel()
        plt.close(fig)
    with pytest.raises(AnalysisError):
        res.plot(kind="nope")
    from hipstats.cohort.simulate import simulate_cohort

    sim = pelvis_analysis(simulate_cohort(n_participants=40, seed=8, sessions=False))
    for kind in ("tilt", "paired"):
        fig = sim.plot(kind=kind)
        assert isinstance(fig, Figure) and "deg" in fig.axes[0].get_ylabel()
        plt.close(fig)


# ----------------------------------------------------------------------------------------
# the package's simulated cohort (hs.simulate_cohort) as the truth
# ----------------------------------------------------------------------------------------
def test_tilt_error_variance_from_trials():
    from hipstats.cohort.simulate import simulate_cohort

    c = simulate_cohort(n_participants=150, seed=4, sessions=False)
    pf = pelvis_frame(c)
    # truth: tilt_sd_trial^2 / 2 trials = 1.125 (rounding to 0.1 deg adds ~0.004); 1000+
    # visit pairs give an SE of about 0.05
    assert pf.attrs["tilt_error_var"] == pytest.approx(c.truth["tilt_sd_trial"] ** 2 / 2, abs=0.2)
    assert set(pf["visit"]) == set(c.scheduled_visits)  # the retest visit is left out


@pytest.mark.slow
def test_simulated_cohort_truth_recovered_at_nominal_rate():
    """On 12 hs.simulate_cohort cohorts (60 participants) the 95 % CIs of the corrected within
    slope (truth tilt_mask_ir = -0.3), the corrected between slope (0.25 - 0.3 = -0.05) and the
    neutral-minus-own-posture difference (0.3 x tilt_mean = 3 deg) each cover the truth in
    >= 10 of 12 (expect 11.4; P(fail) < 2 %)."""
    from hipstats.cohort.simulate import simulate_cohort

    hits = {"within": 0, "between": 0, "paired": 0}
    for seed in range(12):
        c = simulate_cohort(n_participants=60, seed=500 + seed, sessions=False)
        t = c.truth
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = pelvis_analysis(c)
        wb = res.within_between.set_index("term")
        within, between = t["tilt_mask_ir"], t["tilt_between_ir"] + t["tilt_mask_ir"]
        hits["within"] += wb.loc["within_corrected", "ci_low"] <= within <= wb.loc["within_corrected", "ci_high"]
        hits["between"] += wb.loc["between_corrected", "ci_low"] <= between <= wb.loc["between_corrected", "ci_high"]
        p = res.paired.set_index("side").loc["pooled"]
        hits["paired"] += p["ci_low"] <= -t["tilt_mask_ir"] * t["tilt_mean"] <= p["ci_high"]
    assert min(hits.values()) >= 10, hits


# ----------------------------------------------------------------------------------------
# properties and options
# ----------------------------------------------------------------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-50, 50), scale=st.floats(0.1, 10))
def test_rm_corr_invariances(seed, shift, scale):
    """r_rm ignores participant-specific offsets and positive rescaling of x; negating x flips
    its sign; the slope scales with 1/scale."""
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(6), 4)
    d = pd.DataFrame({"s": s, "x": rng.normal(0, 1, 24), "y": rng.normal(0, 1, 24)})
    base = rm_corr(d, "x", "y", "s").iloc[0]
    offsets = rng.normal(0, 20, 6)[s]
    moved = d.assign(x=scale * d["x"] + shift + offsets, y=d["y"] - offsets)
    res = rm_corr(moved, "x", "y", "s").iloc[0]
    assert res["estimate"] == pytest.approx(base["estimate"], abs=1e-9)
    assert res["slope"] == pytest.approx(base["slope"] / scale, rel=1e-7, abs=1e-9)
    flipped = rm_corr(d.assign(x=-d["x"]), "x", "y", "s").iloc[0]
    assert flipped["estimate"] == pytest.approx(-base["estimate"], abs=1e-12)
    assert flipped["ci_low"] == pytest.approx(-base["ci_high"], abs=1e-12)


def test_within_between_with_covariate(meas):
    both = pelvis_frame(meas, side="both")
    wb = within_between(both, "tilt", "ir_free", "participant_id", covariates=["C(side)"])
    assert "C(side)[T.right]" in set(wb["term"])
    assert wb.loc[wb["term"] == "within", "estimate"].iloc[0] < 0


def test_pelvis_frame_rater_and_visit_selection():
    from hipstats.cohort.simulate import simulate_cohort

    c = simulate_cohort(n_participants=40, seed=2, sessions=False)
    pf = pelvis_frame(c)  # primary rater R1, scheduled visits
    assert len(pf) == c.measurements.loc[c.measurements["visit"] != "retest"].groupby(
        ["participant_id", "visit"]).ngroups
    r2 = pelvis_frame(c, rater="R2", visits=["baseline"])
    assert r2["ir_neutral"].isna().all() and r2["ir_free"].notna().all()  # R2: own posture only
    assert set(r2["visit"]) == {"baseline"} and len(r2) < len(pf)
    with pytest.raises(AnalysisError, match="rater 'R9'"):
        pelvis_frame(c, rater="R9")
    with pytest.raises(AnalysisError, match="none of the visits"):
        pelvis_frame(c, visits=["week_99"])
    allv = pelvis_frame(c, visits="all")
    assert "retest" in set(allv["visit"])


def test_ir_by_tilt_class_visit_options(meas):
    all_visits = ir_by_tilt_class(meas, visit="all")
    pf = pelvis_frame(meas)
    per = pf.groupby("participant_id")[["tilt", "ir_free"]].mean()
    cls = tilt_class(per["tilt"])
    assert all_visits.set_index("tilt_class").loc["anterior", "n_participants"] == (cls == "anterior").sum()
    wk6 = ir_by_tilt_class(meas, visit="week_6")
    assert wk6["n_participants"].sum() == 80
