"""Tests of hipstats.models.emmeans against R (emmeans 1.8, lme4, lmerTest).

Reference values: tests/fixtures/emmeans/make_fixtures.R (outputs stored beside it).
Tolerances: means, SEs, df, CIs, t and raw/holm/bonferroni/fdr/tukey p-values match R to
1e-4 relative (OLS; the algebra is exact, so 1e-8 is achieved); single-step ``mvt`` p-values are
Monte-Carlo integrals in both R and scipy and match to 2e-3 absolute / 5 % relative.
LMM: with R's own fixed effects and covariance plugged in, means/SEs/contrasts match to 1e-8
relative (this tests the grid machinery independently of the engine); with hipstats' own
``fit_lmm`` the means and Satterthwaite df match lmerTest/emmeans to 1e-4 relative.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.formula.api as smf

from hipstats.errors import AnalysisError
from hipstats.models.emmeans import EMMResult, contrasts, emmeans, emtrends

FIX = Path(__file__).parent / "fixtures" / "emmeans"
RTOL = 1e-4


@pytest.fixture(scope="module")
def long():
    return pd.read_csv(FIX / "long_data.csv")


@pytest.fixture(scope="module")
def anc():
    return pd.read_csv(FIX / "ancova_data.csv")


@pytest.fixture(scope="module")
def r_con():
    con = pd.read_csv(FIX / "contrasts.csv")
    con["week"] = con["week"].fillna(con["fweek"])
    con["contrast"] = con["contrast"].str.replace("fweek", "week")
    return con


def _compare(py: pd.DataFrame, r: pd.DataFrame, keys: list[str], cols: dict[str, str], rtol=RTOL):
    """Merge on keys (as strings) and compare columns py_name -> r_name."""
    py, r = py.copy(), r.copy()
    for k in keys:
        py[k] = py[k].map(_key)
        r[k] = r[k].map(_key)
    m = py.merge(r, on=keys, suffixes=("_py", "_r"), how="outer", indicator=True)
    assert (m["_merge"] == "both").all(), m[m["_merge"] != "both"][keys + ["_merge"]]
    assert len(m) == len(r)
    for pc, rc in cols.items():
        a = m[pc + "_py" if pc + "_py" in m else pc].to_numpy(float)
        b = m[rc + "_r" if rc + "_r" in m else rc].to_numpy(float)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12, err_msg=f"{pc} vs R {rc}")


def _key(v):
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


EMM_COLS = {"estimate": "estimate", "se": "se", "df": "df", "ci_low": "ci_low", "ci_high": "ci_high"}
CON_COLS = {"estimate": "estimate", "se": "se", "df": "df", "statistic": "t", "p_value": "p_value",
            "ci_low": "ci_low", "ci_high": "ci_high"}


# ---------------------------------------------------------------------------------------------
# OLS ANCOVA
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ols_ancova(anc):
    return smf.ols("week_12 ~ arm + baseline + age_years + sex", anc).fit()


@pytest.mark.parametrize("weights", ["equal", "proportional"])
def test_emmeans_ols_ancova_matches_r(ols_ancova, weights):
    r = pd.read_csv(FIX / "emm_ols_ancova.csv")
    r = r[(r.model == "ols_ancova") & (r.weights == weights)]
    emm = emmeans(ols_ancova, "arm", weights=weights)
    assert isinstance(emm, EMMResult) and emm.df_method == "residual"
    _compare(emm.to_frame(), r, ["arm"], EMM_COLS)


@pytest.mark.parametrize("weights", ["equal", "proportional"])
def test_cov_keep_two_valued_numeric_matches_r(anc, weights):
    """A 0/1 numeric covariate is kept at both values (R's cov.keep = "2"), not at its mean."""
    d = anc.assign(male=(anc["sex"] == "male").astype(float))
    fit = smf.ols("week_12 ~ arm + baseline + male", d).fit()
    r = pd.read_csv(FIX / "emm_ols_ancova.csv")
    r = r[(r.model == "ols_keep") & (r.weights == weights)]
    emm = emmeans(fit, "arm", weights=weights)
    assert emm.grid["male"] == [0.0, 1.0]
    _compare(emm.to_frame(), r, ["arm"], EMM_COLS)


def test_emmeans_by_matches_r(ols_ancova):
    r = pd.read_csv(FIX / "emm_ols_ancova.csv")
    r = r[r.model == "ols_ancova_by_sex"]
    emm = emmeans(ols_ancova, "~ arm | sex")
    assert emm.by == ["sex"] and list(emm.to_frame().columns[:2]) == ["sex", "arm"]
    _compare(emm.to_frame(), r, ["arm", "sex"], EMM_COLS)


@pytest.mark.parametrize("family,ref", [("trt.vs.ctrl", "control"), ("pairwise", None), ("consec", None)])
def test_contrasts_ols_ancova_matches_r(ols_ancova, r_con, family, ref):
    r = r_con[(r_con.model == "ols_ancova") & (r_con.family == family)]
    emm = emmeans(ols_ancova, "arm")
    for adjust, rcol in [("none", "p_value"), ("holm", "p_holm"), ("bonferroni", "p_bonferroni"),
                         ("fdr_bh", "p_fdr")] + ([("tukey", "p_tukey")] if family == "pairwise" else []):
        con = contrasts(emm, family, ref=ref, adjust=adjust)
        assert set(con["contrast"]) == set(r["contrast"])
        _compare(con, r, ["contrast"], {**CON_COLS, "p_adj": rcol})


def test_contrast_mvt_adjustment_matches_r(ols_ancova, r_con):
    emm = emmeans(ols_ancova, "arm")
    for family in ("trt.vs.ctrl", "pairwise", "consec"):
        r = r_con[(r_con.model == "ols_ancova") & (r_con.family == family)].set_index("contrast")
        con = contrasts(emm, family, ref="control", adjust="mvt").set_index("contrast")
        a, b = con.loc[r.index, "p_adj"].to_numpy(), r["p_mvt"].to_numpy()
        np.testing.assert_allclose(a, b, rtol=0.05, atol=2e-3)


def test_simple_ancova_and_trt_vs_ctrl(anc, r_con):
    fit = smf.ols("week_12 ~ C(arm, Treatment('control')) + baseline", anc).fit()
    r = pd.read_csv(FIX / "emm_ols_ancova.csv")
    _compare(emmeans(fit, "arm").to_frame(), r[r.model == "ols_ancova_simple"], ["arm"], EMM_COLS)
    rc = r_con[(r_con.model == "ols_ancova_simple") & (r_con.family == "trt.vs.ctrl")]
    _compare(contrasts(emmeans(fit, "arm"), ref="control", adjust="holm"), rc, ["contrast"], {**CON_COLS, "p_adj": "p_holm"})


def test_a_single_contrast_is_not_called_adjusted(ols_ancova):
    """One comparison in a group: p_adj equals p whatever the method, and ``adjust`` says "none" so
    that no table or sentence calls it adjusted (as emmeans, which prints no adjustment for one test)."""
    emm = emmeans(ols_ancova, "arm")
    one = contrasts(emm, {"loading - control": [-1, 1, 0]}, adjust="holm")
    assert one["adjust"].tolist() == ["none"]
    assert one["p_adj"].iloc[0] == pytest.approx(one["p_value"].iloc[0], rel=1e-12)
    several = contrasts(emm, "pairwise", adjust="holm")
    assert set(several["adjust"]) == {"holm"}


# ---------------------------------------------------------------------------------------------
# OLS on long data: factor week, numeric week with at=, trends
# ---------------------------------------------------------------------------------------------
def test_emmeans_factor_week_by_and_consec(long, r_con):
    fit = smf.ols("y ~ arm * C(week) + sex", long).fit()
    r = pd.read_csv(FIX / "emm_ols_long_factor.csv").rename(columns={"fweek": "week"})
    emm = emmeans(fit, "arm", by="week")
    _compare(emm.to_frame(), r, ["arm", "week"], EMM_COLS)
    rc = r_con[(r_con.model == "ols_long_factor") & (r_con.family == "trt.vs.ctrl")]
    _compare(contrasts(emm, "trt.vs.ctrl", ref="control", adjust="holm"), rc, ["week", "contrast"],
             {**CON_COLS, "p_adj": "p_holm"})
    rc = r_con[(r_con.model == "ols_long_factor") & (r_con.family == "consec")]
    con = contrasts(emmeans(fit, "week", by="arm"), "consec", adjust="holm")
    _compare(con, rc, ["arm", "contrast"], {**CON_COLS, "p_adj": "p_holm"})


def test_emmeans_numeric_at_and_emtrends(long, r_con):
    fit = smf.ols("y ~ arm * week + age_years", long).fit()
    r = pd.read_csv(FIX / "emm_ols_long_at.csv")
    emm = emmeans(fit, "arm", by="week", at={"week": [0, 6, 12]})
    _compare(emm.to_frame(), r, ["arm", "week"], EMM_COLS)
    rc = r_con[(r_con.model == "ols_long_at")]
    _compare(contrasts(emm, ref="control", adjust="holm"), rc, ["week", "contrast"], {**CON_COLS, "p_adj": "p_holm"})

    rt = pd.read_csv(FIX / "emtrends.csv")
    tr = emtrends(fit, "arm", var="week")
    assert tr.estimate_name == "week.trend"
    _compare(tr.to_frame(), rt[rt.model == "ols_long_trend"],
             ["arm"], EMM_COLS)
    rc = r_con[(r_con.model == "ols_long_trend")]
    _compare(contrasts(tr, "pairwise", adjust="holm"), rc, ["contrast"], {**CON_COLS, "p_adj": "p_holm"})


def test_stateful_transform_and_treatment_coding_give_same_emms(long):
    """Reparametrising the model (centring, another reference level) must not change EMMs."""
    a = emmeans(smf.ols("y ~ arm * week + age_years", long).fit(), "arm", at={"week": [12]}).to_frame()
    b = emmeans(smf.ols("y ~ C(arm, Treatment('stretching')) * center(week) + standardize(age_years)",
                        long).fit(), "arm", at={"week": [12]}).to_frame()
    np.testing.assert_allclose(a["estimate"], b["estimate"], rtol=1e-10)
    np.testing.assert_allclose(a["se"], b["se"], rtol=1e-8)


def test_emmeans_equal_weights_closed_form():
    """Cell-means model: the EMM of a is the unweighted mean of its cell means (closed form)."""
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"a": np.repeat(["x", "y"], 30), "b": np.tile(["p", "q", "q"], 20)})
    d["v"] = rng.normal(size=60) + (d["a"] == "y") * 2 + (d["b"] == "q")
    fit = smf.ols("v ~ a * b", d).fit()
    cells = d.groupby(["a", "b"])["v"].mean()
    emm = emmeans(fit, "a").to_frame().set_index("a")
    for lvl in ("x", "y"):
        assert emm.loc[lvl, "estimate"] == pytest.approx(cells[lvl].mean(), rel=1e-10)
    prop = emmeans(fit, "a", weights="cells").to_frame().set_index("a")
    for lvl in ("x", "y"):
        assert prop.loc[lvl, "estimate"] == pytest.approx(d.loc[d.a == lvl, "v"].mean(), rel=1e-10)


def test_non_estimable_cell_is_nan_with_warning():
    d = pd.DataFrame({"a": list("xxyyzz") * 3, "b": list("pqpqpp") * 3})
    d["v"] = np.arange(len(d), dtype=float) % 5
    fit = smf.ols("v ~ a * b", d).fit()  # cell (z, q) is empty: rank-deficient model
    with pytest.warns(UserWarning, match="not estimable"):
        emm = emmeans(fit, ["a", "b"]).to_frame().set_index(["a", "b"])
    assert np.isnan(emm.loc[("z", "q"), "estimate"])
    assert np.isfinite(emm.loc[("x", "q"), "estimate"])


def test_errors_name_the_problem(ols_ancova):
    with pytest.raises(AnalysisError, match="not a variable"):
        emmeans(ols_ancova, "week")
    with pytest.raises(AnalysisError, match="not levels"):
        emmeans(ols_ancova, "arm", at={"arm": ["nope"]})
    emm = emmeans(ols_ancova, "arm")
    with pytest.raises(AnalysisError, match="not a level"):
        contrasts(emm, ref="nope")
    with pytest.raises(AnalysisError, match="adjust"):
        contrasts(emm, adjust="scheffe-ish")
    with pytest.raises(AnalysisError, match="tukey"):
        contrasts(emm, "trt.vs.ctrl", adjust="tukey")
    with pytest.raises(AnalysisError, match="numeric"):
        emtrends(ols_ancova, "arm", var="sex")


def test_result_object_api(ols_ancova):
    import matplotlib

    matplotlib.use("Agg")
    emm = emmeans(ols_ancova, "arm")
    s = emm.summary()
    assert {"statistic", "p_value"} <= set(s.columns)
    np.testing.assert_allclose(s["statistic"], s["estimate"] / s["se"])
    assert "<table" in emm._repr_html_() and "baseline" in emm._repr_html_()
    fig = emm.plot()
    assert fig.axes and len(fig.axes[0].lines) >= 1
    assert emm.contrasts("pairwise").shape[0] == 3
    custom = contrasts(emm, {"active - control": [-1, 0.5, 0.5]}, adjust="none")
    m = emm.to_frame().set_index("arm")["estimate"]
    assert custom["estimate"].iloc[0] == pytest.approx((m["loading"] + m["stretching"]) / 2 - m["control"])


def test_mixedlm_results_are_asymptotic(long):
    md = smf.mixedlm("y ~ arm * C(week)", long, groups="participant_id")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = md.fit(reml=True)
    emm = emmeans(fit, "arm", by="week")
    f = emm.to_frame()
    assert emm.df_method == "asymptotic" and np.isinf(f["df"]).all()
    # the cell mean of a saturated fixed-effects model is linear in beta: check one by hand
    b = fit.fe_params
    row = f[(f.arm == "loading") & (f.week == 12)].iloc[0]
    hand = b["Intercept"] + b["arm[T.loading]"] + b["C(week)[T.12]"] + b["arm[T.loading]:C(week)[T.12]"]
    assert row["estimate"] == pytest.approx(hand, rel=1e-12)
    assert row["ci_high"] - row["estimate"] == pytest.approx(1.959963985 * row["se"], rel=1e-8)


# ---------------------------------------------------------------------------------------------
# Mixed models: R's own estimates plugged in (machinery), then the hipstats engine (df)
# ---------------------------------------------------------------------------------------------
def _plugin(name: str, rhs: str, data: pd.DataFrame):
    fx = pd.read_csv(FIX / name)
    di = patsy.dmatrix(rhs, data).design_info
    assert len(di.column_names) == len(fx)

    def norm(s):
        return (s.replace("[T.", "").replace("]", "").replace("C(week)", "fweek").replace("(Intercept)", "Intercept"))

    assert [norm(c) for c in di.column_names] == [norm(t) for t in fx["term"]]
    V = fx.iloc[:, 3:].to_numpy(float)
    return SimpleNamespace(fe_params=pd.Series(fx["estimate"].to_numpy(), index=di.column_names),
                           cov_fe=pd.DataFrame(V, index=di.column_names, columns=di.column_names),
                           design_info=di, data=data)


def test_lmer_plugin_machinery(long, r_con):
    res = _plugin("lmer_factor_fixef_vcov.csv", "arm * C(week)", long)
    r = pd.read_csv(FIX / "emm_lmer_factor.csv").rename(columns={"fweek": "week"})
    emm = emmeans(res, "arm", by="week")
    assert emm.df_method == "asymptotic"
    _compare(emm.to_frame(), r, ["arm", "week"], {"estimate": "estimate", "se": "se"}, rtol=1e-8)
    for fam in ("trt.vs.ctrl", "pairwise"):
        rc = r_con[(r_con.model == "lmer_factor") & (r_con.family == fam)]
        _compare(contrasts(emm, fam, ref="control"), rc, ["week", "contrast"],
                 {"estimate": "estimate", "se": "se"}, rtol=1e-8)
    rc = r_con[(r_con.model == "lmer_factor") & (r_con.family == "consec")]
    _compare(contrasts(emmeans(res, "week", by="arm"), "consec"), rc, ["arm", "contrast"],
             {"estimate": "estimate", "se": "se"}, rtol=1e-8)

    tres = _plugin("lmer_trend_fixef_vcov.csv", "arm * week", long)
    rt = pd.read_csv(FIX / "emtrends.csv")
    _compare(emtrends(tres, "arm", var="week").to_frame(),
             rt[rt.model == "lmer_trend"], ["arm"], {"estimate": "estimate", "se": "se"}, rtol=1e-8)


def test_sleepstudy_plugin(r_con):
    ss = pd.read_csv(FIX / "sleepstudy.csv")
    res = _plugin("sleepstudy_fixef_vcov.csv", "Days", ss)
    emm = emmeans(res, "Days", at={"Days": [0, 5, 9]})
    r = pd.read_csv(FIX / "emm_lmer_sleepstudy.csv")
    _compare(emm.to_frame(), r, ["Days"], {"estimate": "estimate", "se": "se"}, rtol=1e-8)
    con = contrasts(emm, "consec")
    assert con["contrast"].tolist() == ["Days5 - Days0", "Days9 - Days5"]
    rc = r_con[r_con.model == "lmer_sleepstudy"]
    _compare(con, rc, ["contrast"], {"estimate": "estimate", "se": "se"}, rtol=1e-8)


def test_lmer_with_hipstats_engine_matches_lmertest_emmeans(long, r_con):
    """EMMs, Satterthwaite df and contrasts from hipstats' fit_lmm vs lmerTest + emmeans (1e-4)."""
    from hipstats.models.lmm import fit_lmm

    res = fit_lmm("y ~ arm * C(week)", long, participant="participant_id", re_formula="1 + week")
    emm = emmeans(res, "arm", by="week")
    assert emm.df_method == "satterthwaite"
    r = pd.read_csv(FIX / "emm_lmer_factor.csv").rename(columns={"fweek": "week"})
    _compare(emm.to_frame(), r, ["arm", "week"], EMM_COLS)
    for fam, adj in (("trt.vs.ctrl", "p_holm"), ("pairwise", "p_tukey")):
        rc = r_con[(r_con.model == "lmer_factor") & (r_con.family == fam)]
        con = contrasts(emm, fam, ref="control", adjust="holm" if adj == "p_holm" else "tukey")
        _compare(con, rc, ["week", "contrast"], {**CON_COLS, "p_adj": adj})

    tres = fit_lmm("y ~ arm * week", long, participant="participant_id", re_formula="1 + week")
    rt = pd.read_csv(FIX / "emtrends.csv")
    tr = emtrends(tres, "arm", var="week")
    _compare(tr.to_frame(), rt[rt.model == "lmer_trend"],
             ["arm"], EMM_COLS)
    rc = r_con[(r_con.model == "lmer_trend")]
    _compare(contrasts(tr, ref="control", adjust="holm"), rc, ["contrast"], {**CON_COLS, "p_adj": "p_holm"})


def test_sleepstudy_with_hipstats_engine():
    from hipstats.models.lmm import fit_lmm

    ss = pd.read_csv(FIX / "sleepstudy.csv")
    res = fit_lmm("Reaction ~ Days", ss, participant="Subject", re_formula="1 + Days")
    emm = emmeans(res, "Days", at={"Days": [0, 5, 9]})
    r = pd.read_csv(FIX / "emm_lmer_sleepstudy.csv")
    _compare(emm.to_frame(), r, ["Days"], EMM_COLS)


@pytest.mark.parametrize("method", ["holm", "bonferroni", "sidak", "fdr_bh"])
def test_p_adjust_matches_statsmodels(method):
    """The internal step-down/step-up adjustments equal statsmodels' multipletests (1e-12)."""
    from statsmodels.stats.multitest import multipletests

    from hipstats.stats.inference import p_adjust

    rng = np.random.default_rng(0)
    for size in (1, 2, 5, 11):
        p = rng.uniform(0, 0.3, size)
        p[-1] = p[0]  # ties
        np.testing.assert_allclose(p_adjust(p, method), multipletests(p, method=method)[1],
                                   rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("alias", ["BH", "bh", "fdr", "FDR_BH", "fdr_bh"])
def test_contrast_adjust_aliases_mean_benjamini_hochberg(ols_ancova, alias):
    """BH / fdr / fdr_bh (any case) give the same p_adj as fdr_bh, and the canonical name is reported."""
    emm = emmeans(ols_ancova, "arm")
    ref = contrasts(emm, "pairwise", adjust="fdr_bh")
    got = contrasts(emm, "pairwise", adjust=alias)
    np.testing.assert_allclose(got["p_adj"], ref["p_adj"], rtol=0, atol=0)
    assert set(got["adjust"]) == {"fdr_bh"}
    assert set(contrasts(emm, "pairwise", adjust="Holm")["adjust"]) == {"holm"}
    with pytest.raises(AnalysisError, match="unknown adjust"):
        contrasts(emm, "pairwise", adjust="hochberg")
