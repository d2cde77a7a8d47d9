"""Tests of hipstats.models.mmrm against nlme::gls + emmeans and lme4/lmerTest/pbkrtest.

References (R scripts next to the fixtures in tests/fixtures/mmrm/):

* make_fixtures.R: nlme::gls with corSymm + varIdent (unstructured), corCompSymm, corAR1, with and
  without varIdent (heterogeneous), REML and ML, and emmeans of arm by visit and the arm contrast
  at each visit, on two data sets no one here wrote, both with visits missing: the mmrm
  package's ``fev_data`` (rows with missing FEV1 removed) and nlme's ``Orthodont`` with rows
  removed by the rule stated in the script.
* make_mmrm_fixtures.R: the mmrm package (0.3.16, built here from its CRAN source) with every
  structure (us, toep, toeph, ar1, ar1h, cs, csh), REML with Satterthwaite, Kenward-Roger and
  (us) Kenward-Roger-Linear, ML with Satterthwaite: logLik, coefficient covariance (KR: adjusted),
  residual covariance, EMMs with df and SEs, arm contrasts, type II F tests (mmrm's Anova).
* make_lmer_fixtures.R: the compound-symmetry MMRM as the equivalent random-intercept lmer fit:
  lmerTest's Satterthwaite df of the EMMs, contrasts and type II F tests.

Tolerances (issue 14), relative: 1e-4 for the log-likelihood, the residual covariance and the
covariance of the fixed effects (max abs difference over the largest entry), EMMs and their SEs;
fixed effects within 1e-3 of their SE. gls stops its optimiser earlier than we do on the flat
unstructured likelihood (our REML logLik is higher by 1e-7), which is why matrices are compared
relative to their scale. nlme reports the ML covariance of the fixed effects times N / (N - p);
that factor is applied to our (X'V^-1X)^-1 (mmrm's convention) before comparing.
Satterthwaite df against lmerTest: 1e-4 relative (its Hessian is numerical). emmeans' df for
gls fits are not compared: emmeans falls back to "appx-satterthwaite" there (refits on a
perturbed gls), which differs from the exact df by up to 65%.
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hipstats as hs
from hipstats.errors import AnalysisError
from hipstats.models._mmrm_covariance import Structure
from hipstats.models.mmrm import COVARIANCES, MMRMResult, fit_mmrm

FIX = Path(__file__).parent / "fixtures" / "mmrm"
GLS = json.loads((FIX / "gls_reference.json").read_text())
LMER = json.loads((FIX / "lmer_reference.json").read_text())
MMRM = json.loads((FIX / "mmrm_reference.json").read_text())
MMRM_KEYS = [k for k in MMRM if k != "versions"]
#: matrices against mmrm: where mmrm's optimiser stopped short of the optimum (our REML logLik
#: is higher by up to 2.5e-6 on the flat unstructured / heterogeneous Toeplitz likelihoods) the
#: residual covariance and the coefficient covariance differ by up to 2.5e-4 of their scale.
MMRM_MAT_RTOL = {"us": 3e-4, "toeph": 3e-4}
RTOL = 1e-4
LL_ATOL = 1e-4

SETS = {
    "fev": dict(formula="FEV1 ~ RACE + SEX + ARMCD * AVISIT", participant="USUBJID", visit="AVISIT",
                arm="ARMCD"),
    "orthodont": dict(formula="distance ~ Sex * visit", participant="Subject", visit="visit", arm="Sex"),
}
_CACHE: dict = {}


def _data(name):
    if name == "fev":
        return pd.read_csv(FIX / "fev_data.csv")
    d = pd.read_csv(FIX / "orthodont_missing.csv")
    d["visit"] = pd.Categorical(d["visit"], categories=["age8", "age10", "age12", "age14"])
    d["Sex"] = pd.Categorical(d["Sex"], categories=["Female", "Male"])  # R: read.csv, alphabetical
    return d


def _fit(name, cov, reml):
    key = (name, cov, reml)
    if key not in _CACHE:
        s = SETS[name]
        _CACHE[key] = fit_mmrm(s["formula"], _data(name), participant=s["participant"], visit=s["visit"],
                               covariance=cov, reml=reml)
    return _CACHE[key]


CASES = [(name, cov, method) for name in SETS for cov in ("us", "cs", "csh", "ar1", "ar1h")
         for method in ("REML", "ML")]


def _ids(case):
    return "-".join(case)


def _mrel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_against_gls(case):
    name, cov, method = case
    ref = GLS[name][f"{cov}_{method}"]
    fit = _fit(name, cov, method == "REML")
    assert fit.converged
    assert fit.llf == pytest.approx(ref["logLik"], rel=RTOL)
    assert fit.llf >= ref["logLik"] - 1e-6           # never a worse optimum than gls
    assert _mrel(fit.cov_residual, ref["sigma"]) < RTOL
    # patsy and R name the coefficients differently; both keep R's column order
    beta = np.array(list(ref["beta"].values()))
    assert np.max(np.abs(fit.fe_params.to_numpy() - beta) / fit.bse.to_numpy()) < 1e-3
    factor = 1.0 if method == "REML" else fit.n_rows / (fit.n_rows - len(beta))
    assert _mrel(factor * fit.cov_fe_model, ref["vcov"]) < RTOL


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_emmeans_against_gls(case):
    name, cov, method = case
    ref = GLS[name][f"{cov}_{method}"]
    s = SETS[name]
    fit = _fit(name, cov, method == "REML")
    factor = 1.0 if method == "REML" else np.sqrt(fit.n_rows / (fit.n_rows - len(fit.fe_params)))
    emm = hs.emmeans(fit, s["arm"], by=s["visit"])
    got = emm.to_frame()
    est_col = "estimate" if "estimate" in got.columns else "emmean"
    key = ["visit", "arm"]
    want = pd.DataFrame(ref["emm_df.error"]).set_index(key)
    g = got.assign(arm=got[s["arm"]].astype(str), visit=got[s["visit"]].astype(str)).set_index(key)
    g = g.loc[want.index]
    np.testing.assert_allclose(g[est_col], want["emmean"], rtol=RTOL)
    np.testing.assert_allclose(factor * g["se"], want["se"], rtol=RTOL)
    ct = hs.contrasts(emm, "revpairwise", adjust="none")
    want = pd.DataFrame(ref["contrast_df.error"])
    assert set(want["contrast"]) == {f"{a} - {b}" for a, b in [("TRT", "PBO"), ("Male", "Female")]
                                     if a in str(want["contrast"].iloc[0])}
    ct = ct.assign(visit=ct[s["visit"]].astype(str)).set_index("visit").loc[want["visit"]]
    assert (ct["contrast"].to_numpy() == want["contrast"].to_numpy()).all()
    np.testing.assert_allclose(ct["estimate"], want["estimate"], rtol=RTOL)
    np.testing.assert_allclose(factor * ct["se"], want["se"], rtol=RTOL)


@pytest.mark.parametrize("name", list(SETS))
def test_satterthwaite_against_lmertest(name):
    """CS MMRM == random-intercept LMM: Satterthwaite df of EMMs, contrasts and type II tests."""
    ref = LMER[name]
    s = SETS[name]
    fit = _fit(name, "cs", True)
    assert fit.llf == pytest.approx(ref["logLik"], rel=1e-8)
    emm = hs.emmeans(fit, s["arm"], by=s["visit"])
    got = emm.to_frame()
    r = ref["satterthwaite"]
    want = pd.DataFrame({k: r[k] for k in ("arm", "visit", "se", "df")}).set_index(["visit", "arm"])
    g = got.assign(arm=got[s["arm"]].astype(str), visit=got[s["visit"]].astype(str))
    g = g.set_index(["visit", "arm"]).loc[want.index]
    np.testing.assert_allclose(g["se"], want["se"], rtol=RTOL)
    np.testing.assert_allclose(g["df"], want["df"], rtol=1e-4)
    ct = hs.contrasts(emm, "revpairwise", adjust="none")
    ct = ct.assign(visit=ct[s["visit"]].astype(str)).set_index("visit").loc[r["contrast_visit"]]
    np.testing.assert_allclose(ct["se"], r["contrast_se"], rtol=RTOL)
    np.testing.assert_allclose(ct["df"], r["contrast_df"], rtol=1e-4)
    a = fit.anova("satterthwaite").set_index("term").loc[ref["anova_satterthwaite"]["term"]]
    np.testing.assert_allclose(a["statistic"], ref["anova_satterthwaite"]["F"], rtol=1e-6)
    np.testing.assert_array_equal(a["num_df"], ref["anova_satterthwaite"]["df1"])  # mmrm's names df1, df2
    np.testing.assert_allclose(a["den_df"], ref["anova_satterthwaite"]["df2"], rtol=2e-4)


_DDF = {"Satterthwaite": "satterthwaite", "Kenward-Roger": "kenward-roger",
        "Kenward-Roger-Linear": "kenward-roger-linear"}


@pytest.mark.parametrize("key", MMRM_KEYS)
def test_against_mmrm_package(key):
    """Likelihood, covariances, EMMs, Satterthwaite / Kenward-Roger df and type II F vs mmrm."""
    ref = MMRM[key]
    name, cov, method, ddf = key.split("_")
    s = SETS[name]
    fit = fit_mmrm(s["formula"], _data(name), participant=s["participant"], visit=s["visit"],
                   covariance=cov, reml=method == "REML", ddf=_DDF[ddf])
    assert fit.converged
    assert fit.llf == pytest.approx(ref["logLik"], rel=RTOL)
    assert fit.llf >= ref["logLik"] - 1e-6
    tol = MMRM_MAT_RTOL.get(cov, RTOL)
    assert _mrel(fit.cov_residual, ref["sigma"]) < tol
    assert _mrel(fit.cov_fe, ref["vcov"]) < tol
    emm = hs.emmeans(fit, s["arm"], by=s["visit"])
    got = emm.to_frame()
    est_col = "estimate" if "estimate" in got.columns else "emmean"
    want = pd.DataFrame(ref["emm"]).set_index(["visit", "arm"])
    g = got.assign(arm=got[s["arm"]].astype(str), visit=got[s["visit"]].astype(str))
    g = g.set_index(["visit", "arm"]).loc[want.index]
    np.testing.assert_allclose(g[est_col], want["emmean"], rtol=RTOL)
    np.testing.assert_allclose(g["se"], want["se"], rtol=RTOL)
    np.testing.assert_allclose(g["df"], want["df"], rtol=max(2 * RTOL, tol))
    ct = hs.contrasts(emm, "revpairwise", adjust="none")
    c = ref["contrast"]
    ct = ct.assign(visit=ct[s["visit"]].astype(str)).set_index("visit").loc[c["visit"]]
    np.testing.assert_allclose(ct["estimate"], c["estimate"], rtol=RTOL)
    np.testing.assert_allclose(ct["se"], c["se"], rtol=RTOL)
    np.testing.assert_allclose(ct["df"], c["df"], rtol=max(2 * RTOL, tol))
    a = fit.anova().set_index("term").loc[ref["anova"]["term"]]
    np.testing.assert_allclose(a["statistic"], ref["anova"]["F"], rtol=6 * RTOL)
    np.testing.assert_array_equal(a["num_df"], ref["anova"]["df1"])
    np.testing.assert_allclose(a["den_df"], ref["anova"]["df2"], rtol=max(2 * RTOL, tol))


# --------------------------------------------------------------------------- own checks
def _sim(n=60, m=4, seed=0, drop=0.2):
    rng = np.random.default_rng(seed)
    sd = np.linspace(2.0, 3.0, m)
    R = 0.5 + 0.4 * 0.6 ** np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
    np.fill_diagonal(R, 1.0)
    y = rng.multivariate_normal(np.zeros(m), R * np.outer(sd, sd), n)
    arm = np.where(np.arange(n) % 2 == 0, "placebo", "active")
    y += (arm == "active")[:, None] * np.linspace(0, 2, m)
    d = pd.DataFrame({"pid": np.repeat([f"P{i:03d}" for i in range(n)], m),
                      "visit": np.tile([f"week {3 * v}" for v in range(m)], n),
                      "arm": np.repeat(arm, m), "y": y.ravel()})
    gone = (rng.random(n * m) < drop) & (np.tile(np.arange(m), n) > 0)
    return d.loc[~gone].reset_index(drop=True)


def test_gradient_and_structure_derivatives():
    """Analytic dSigma, d2Sigma and deviance gradient against central differences."""
    rng = np.random.default_rng(2)
    for name in COVARIANCES:
        st = Structure(name, 4)
        th = rng.normal(0, 0.4, st.k)
        S, dS, d2S = st.sigma(th, order=2)
        h = 1e-6
        E = np.eye(st.k)
        num = np.stack([(st.sigma(th + h * e) - st.sigma(th - h * e)) / (2 * h) for e in E])
        num2 = np.stack([(st.sigma(th + h * e, 1)[1] - st.sigma(th - h * e, 1)[1]) / (2 * h) for e in E])
        np.testing.assert_allclose(dS, num, atol=1e-7)
        np.testing.assert_allclose(d2S, num2, atol=1e-6)
    fit = fit_mmrm("y ~ arm * visit", _sim(), participant="pid", visit="visit")
    eng = fit._engine
    th = fit.theta + 0.05
    for reml in (True, False):
        g = eng.evaluate(th, reml)[1]
        num = np.array([(eng.evaluate(th + 1e-5 * e, reml, False) - eng.evaluate(th - 1e-5 * e, reml, False))
                        / 2e-5 for e in np.eye(len(th))])
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_visit_order_natural_and_notes():
    d = _sim()
    d.loc[3, "y"] = np.nan
    fit = fit_mmrm("y ~ arm * visit", d, participant="pid", visit="visit")
    assert fit.visits == ["week 0", "week 3", "week 6", "week 9"]   # not "week 0, week 3, week 6..."
    assert list(fit.cov_residual.index) == fit.visits
    assert any("1 row left out" in n for n in fit.notes)
    assert fit.n_rows == d["y"].notna().sum()
    assert fit.patterns["n_participants"].sum() == fit.n_participants == 60


def test_unstructured_needs_every_visit_pair():
    d = _sim(n=40, m=3, drop=0.0)
    # nobody has both week 3 and week 6
    pid_num = d["pid"].str[1:].astype(int)
    d = d[~((pid_num % 4 < 2) & (d["visit"] == "week 3")) & ~((pid_num % 4 >= 2) & (d["visit"] == "week 6"))]
    with pytest.raises(AnalysisError, match=r"never together: \[\('week 6', 'week 3'\)\]"):
        fit_mmrm("y ~ arm * visit", d, participant="pid", visit="visit", covariance="us")
    with pytest.warns(UserWarning, match="fell back.*heterogeneous Toeplitz used instead of the requested unstructured"):
        fit = fit_mmrm("y ~ arm * visit", d, participant="pid", visit="visit", covariance="us",
                       fallback=["toeph", "cs"])
    assert fit.covariance == "toeph" and fit.requested_covariance == "us"
    assert any("40 participants" in n for n in fit.notes)


def test_too_many_parameters_and_bad_input():
    d = _sim(n=4, m=4, drop=0.0)
    with pytest.raises(AnalysisError, match="parameters but the data carry only"):
        fit_mmrm("y ~ arm * visit", d, participant="pid", visit="visit", covariance="us")
    d = _sim()
    with pytest.raises(AnalysisError, match="share a 'pid' and 'visit'"):
        fit_mmrm("y ~ arm", pd.concat([d, d.head(2)], ignore_index=True), participant="pid", visit="visit")
    with pytest.raises(AnalysisError, match="unknown covariance"):
        fit_mmrm("y ~ arm", d, participant="pid", visit="visit", covariance="banded")
    with pytest.raises(AnalysisError, match="need a REML fit"):
        fit_mmrm("y ~ arm", d, participant="pid", visit="visit", reml=False, ddf="kenward-roger")
    with pytest.raises(AnalysisError, match="rank deficient"):
        fit_mmrm("y ~ arm + I(arm == 'active')", d, participant="pid", visit="visit")
    with pytest.raises(AnalysisError, match="participant column 'id'"):
        fit_mmrm("y ~ arm", d, participant="id", visit="visit")


def test_result_base_pickle_and_emmeans():
    fit = fit_mmrm("y ~ arm * visit", _sim(), participant="pid", visit="visit", ddf="kenward-roger")
    assert isinstance(fit, MMRMResult) and isinstance(fit, hs.results.Result)
    s = fit.summary()
    assert list(s.columns) == ["estimate", "se", "df", "statistic", "p_value", "ci_low", "ci_high"]
    # Kenward-Roger: SEs from the adjusted covariance
    np.testing.assert_allclose(s["se"], np.sqrt(np.diag(fit.vcov("kenward-roger"))))
    a = fit.anova()
    assert list(a.columns) == ["term", "statistic", "num_df", "den_df", "p_value"]
    assert a["term"].tolist() == ["arm", "visit", "arm:visit"]
    back = pickle.loads(pickle.dumps(fit))
    e1 = hs.emmeans(fit, "arm", by="visit").to_frame()
    e2 = hs.emmeans(back, "arm", by="visit").to_frame()
    pd.testing.assert_frame_equal(e1, e2)
    # the EMM df are the fit's Kenward-Roger df of each EMM
    L = hs.emmeans(fit, "arm", by="visit").L
    np.testing.assert_allclose(e1["df"], fit.df(L, "kenward-roger"))
    assert "Mixed model for repeated measures" in fit._repr_html_()
    fig = fit.plot()
    assert fig.axes


def test_unbiased_on_simulation():
    """Simulation with known truth: the arm difference at the last visit (true 2) is covered."""
    hits = 0
    for seed in range(20):
        fit = fit_mmrm("y ~ arm * visit", _sim(n=80, seed=seed), participant="pid", visit="visit")
        ct = hs.contrasts(hs.emmeans(fit, "arm", by="visit"), "trt.vs.ctrl", ref="placebo",
                          adjust="none")
        last = ct[ct["visit"] == "week 9"].iloc[0]
        assert last["contrast"] == "active - placebo"
        hits += last["ci_low"] <= 2.0 <= last["ci_high"]
        assert abs(last["estimate"] - 2.0) < 2.0
    assert hits >= 16     # 95% intervals: P(hits < 16 | 20 draws) < 0.02


# --------------------------------------------------------------------------- H2 with an MMRM
def test_h2_analysis_with_mmrm():
    from hipstats.cohort.simulate import simulate_cohort
    from hipstats.questions.outcomes import h2_analysis
    from hipstats.report import areas

    cohort = simulate_cohort(60, seed=5)
    res = h2_analysis(cohort, "hip_ir_deg", mdc=6.0, model="mmrm", covariance="us")
    assert res.model_kind == "mmrm" and isinstance(res.model, MMRMResult)
    assert "unstructured residual covariance" in res.model_description
    assert "Kenward-Roger" in res.model_description
    assert res.key_estimand == "difference at final visit"
    assert any("participant-visit means" in n for n in res.model_notes)
    # the key finding is the EMM contrast at the final visit of an MMRM on participant means
    af = cohort.analysis_frame("hip_ir_deg", pelvis="free").dropna(subset=["value"])
    agg = af.groupby(["participant_id", "visit"], observed=True).agg(
        value=("value", "mean"), arm=("arm", "first")).reset_index()
    agg["arm"] = agg["arm"].astype(object)
    agg["visit"] = agg["visit"].astype(object)
    fit = fit_mmrm(res.formula, agg, participant="participant_id", visit="visit", visits=res.visits,
                   ddf="kenward-roger")
    ct = hs.contrasts(hs.emmeans(fit, "arm", by="visit"), "trt.vs.ctrl", ref=res.reference,
                      adjust="none")
    last = ct[ct["visit"] == res.visits[-1]].set_index("contrast")
    s = res.summary().set_index("arm")
    for arm in s.index:
        key = f"{arm} - {res.reference}"
        assert s.loc[arm, "estimand"] == "difference at final visit"
        assert s.loc[arm, "diff_change" if "diff_change" in s.columns else "difference_in_change"] == \
            pytest.approx(last.loc[key, "estimate"], rel=1e-5)
    table = areas.h2_contrast_table(res)
    assert set(table["visit"]) == {res.visits[-1]}
    texts = [f.sentence for f in areas.h2_findings(res, display=False)]
    assert any("MMRM" in t for t in texts)


def test_h2_mmrm_small_cohort_falls_back_with_note():
    from hipstats.cohort.simulate import simulate_cohort
    from hipstats.questions.outcomes import h2_analysis

    res = h2_analysis(simulate_cohort(8, seed=2), "hip_ir_deg", mdc=6.0, model="mmrm", covariance="us")
    if res.model.covariance != "us":
        assert any("used instead of the requested unstructured" in n for n in res.model_notes)
        assert res.model.covariance in res.model_description or \
            hs.models.mmrm.COVARIANCES[res.model.covariance] in res.model_description
    with pytest.raises(AnalysisError, match="model must be"):
        h2_analysis(simulate_cohort(8, seed=2), "hip_ir_deg", mdc=6.0, model="gee")
