"""Tests of hipstats.models.ancova against R (lm + emmeans; tests/fixtures/emmeans/make_fixtures.R).

Tolerance: 1e-6 relative for coefficients, adjusted means, contrasts, p-values and the
slopes-homogeneity F test (OLS algebra is exact; R fixture printed with 15 digits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hipstats.errors import AnalysisError
from hipstats.models.ancova import AncovaResult, ancova

FIX = Path(__file__).parent / "fixtures" / "emmeans"
RTOL = 1e-6


@pytest.fixture(scope="module")
def anc():
    return pd.read_csv(FIX / "ancova_data.csv")


@pytest.fixture(scope="module")
def r_con():
    return pd.read_csv(FIX / "contrasts.csv")


def _check(py: pd.DataFrame, r: pd.DataFrame, key: str, cols: dict[str, str]):
    m = py.merge(r, on=key, suffixes=("_py", "_r"))
    assert len(m) == len(r) == len(py)
    for pc, rc in cols.items():
        a = m[pc + "_py"] if pc + "_py" in m else m[pc]
        b = m[rc + "_r"] if rc + "_r" in m else m[rc]
        np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=RTOL, err_msg=pc)


CON = {"estimate": "estimate", "se": "se", "df": "df", "statistic": "t", "p_value": "p_value",
       "ci_low": "ci_low", "ci_high": "ci_high"}


def test_ancova_with_covariates_matches_r(anc, r_con):
    res = ancova(anc, "week_12", "baseline", "arm", covariates=["age_years", "sex"], ref="control")
    assert isinstance(res, AncovaResult)
    # coefficients of the lm
    rc = pd.read_csv(FIX / "ancova_lm_coefs.csv").set_index("term")
    b = res.model.params
    assert b.iloc[0] == pytest.approx(rc.loc["(Intercept)", "estimate"], rel=RTOL)
    assert res.baseline_slope["estimate"] == pytest.approx(rc.loc["baseline", "estimate"], rel=RTOL)
    assert res.baseline_slope["ci_low"] == pytest.approx(rc.loc["baseline", "ci_low"], rel=RTOL)
    assert res.model.df_resid == rc["df"].iloc[0]
    # adjusted means = emmeans(lm, ~arm)
    r = pd.read_csv(FIX / "emm_ols_ancova.csv")
    r = r[(r.model == "ols_ancova") & (r.weights == "equal")]
    _check(res.adjusted_means.to_frame(), r, "arm", {"estimate": "estimate", "se": "se", "df": "df",
                                                     "ci_low": "ci_low", "ci_high": "ci_high"})
    # contrasts vs reference (holm) and pairwise (holm)
    rv = r_con[(r_con.model == "ols_ancova") & (r_con.family == "trt.vs.ctrl")]
    _check(res.vs_ref, rv, "contrast", {**CON, "p_adj": "p_holm"})
    rp = r_con[(r_con.model == "ols_ancova") & (r_con.family == "pairwise")]
    _check(res.pairwise, rp, "contrast", {**CON, "p_adj": "p_holm"})
    # the arm effect vs control equals the lm coefficient (no interaction)
    for arm in ("loading", "stretching"):
        est = res.vs_ref.set_index("contrast").loc[f"{arm} - control", "estimate"]
        assert est == pytest.approx(rc.loc[f"arm{arm}", "estimate"], rel=RTOL)
    # homogeneity of slopes F test
    rs = pd.read_csv(FIX / "ancova_slopes_test.csv").iloc[0]
    for k, rk in (("statistic", "F"), ("num_df", "df1"), ("den_df", "df2"), ("p_value", "p_value")):
        assert res.slopes_test[k] == pytest.approx(rs[rk], rel=RTOL)


def test_simple_ancova_matches_r_and_change_score_equivalence(anc, r_con):
    res = ancova(anc, "week_12", "baseline", "arm", ref="control")
    r = pd.read_csv(FIX / "emm_ols_ancova.csv")
    _check(res.adjusted_means.to_frame(), r[r.model == "ols_ancova_simple"], "arm",
           {"estimate": "estimate", "se": "se"})
    rv = r_con[(r_con.model == "ols_ancova_simple") & (r_con.family == "trt.vs.ctrl")]
    _check(res.vs_ref, rv, "contrast", {**CON, "p_adj": "p_holm"})
    # ANCOVA on change gives the same arm effects (baseline is a covariate)
    chg = ancova(anc, "change", "baseline", "arm", ref="control")
    np.testing.assert_allclose(chg.vs_ref["estimate"], res.vs_ref["estimate"], rtol=1e-10)
    np.testing.assert_allclose(chg.vs_ref["se"], res.vs_ref["se"], rtol=1e-10)


def test_recovers_simulated_effects():
    """Known truth: arm effects 2 and 6 on top of the baseline; 95% CIs cover them."""
    rng = np.random.default_rng(11)
    n = 400
    arm = np.repeat(["control", "stretching", "loading"], n)
    base = rng.normal(36, 9, 3 * n)
    eff = pd.Series(arm).map({"control": 0.0, "stretching": 2.0, "loading": 6.0}).to_numpy()
    df = pd.DataFrame({"arm": arm, "b": base, "y": 5 + 0.85 * base + eff + rng.normal(0, 3, 3 * n)})
    res = ancova(df, "y", "b", "arm", levels=["control", "stretching", "loading"])
    v = res.vs_ref.set_index("contrast")
    for name, truth in [("stretching - control", 2.0), ("loading - control", 6.0)]:
        assert v.loc[name, "ci_low"] < truth < v.loc[name, "ci_high"]
    assert res.baseline_slope["ci_low"] < 0.85 < res.baseline_slope["ci_high"]
    assert res.to_frame()["arm"].tolist() == ["control", "stretching", "loading"]


def test_result_api_and_errors(anc):
    import matplotlib

    matplotlib.use("Agg")
    res = ancova(anc, "week_12", "baseline", "arm", ref="control", cov_type="HC3")
    s = res.summary()
    assert set(s["family"]) == {"vs_ref", "pairwise"}
    assert "<table" in res._repr_html_()
    assert res.plot().axes
    assert {"n_participants", "baseline_mean", "estimate"} <= set(res.to_frame().columns)
    with pytest.raises(AnalysisError, match="not found"):
        ancova(anc, "week_99", "baseline", "arm")
    with pytest.raises(AnalysisError, match="reference arm"):
        ancova(anc, "week_12", "baseline", "arm", ref="yoga")
    with pytest.raises(AnalysisError, match="two arms"):
        ancova(anc[anc.arm == "control"], "week_12", "baseline", "arm")
    with pytest.raises(AnalysisError, match="at least 2 participants"):
        ancova(pd.concat([anc[anc.arm != "loading"], anc[anc.arm == "loading"].head(1)]),
               "week_12", "baseline", "arm")
