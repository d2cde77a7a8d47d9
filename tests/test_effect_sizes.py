"""Tests of Hedges' g (hipstats.stats.effect_sizes) and responder analysis (responders).

References: R (tests/fixtures/emmeans/make_fixtures.R codes g, J, the noncentral-t and the
normal CIs from their formulas with pt()/uniroot(); Wilson CIs from prop.test(correct=FALSE);
Newcombe's hybrid interval; chisq.test and fisher.test), statsmodels' proportion_confint and
confint_proportions_2indep, and Newcombe's (1998) published example.
Tolerances: 1e-6 relative for g, J, SE and CIs (root finding to 1e-12); 1e-8 for Wilson /
Newcombe limits and test p-values; published example to its 4 printed decimals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from hipstats.errors import AnalysisError
from hipstats.stats.effect_sizes import hedges_g, hedges_j
from hipstats.models.responders import newcombe_diff_ci, responders, wilson_ci

FIX = Path(__file__).parent / "fixtures" / "emmeans"


@pytest.fixture(scope="module")
def anc():
    return pd.read_csv(FIX / "ancova_data.csv").sort_values("participant_id")


@pytest.fixture(scope="module")
def r_g():
    return pd.read_csv(FIX / "hedges_g.csv").set_index("case")


def _check_g(row, ref, ci):
    for col in ("d", "J", "g", "se", "df"):
        ours = "estimate" if col == "g" else col
        assert row[ours] == pytest.approx(ref[col], rel=1e-6), col
    assert row["ci_low"] == pytest.approx(ref[f"{ci}_low"], rel=1e-6)
    assert row["ci_high"] == pytest.approx(ref[f"{ci}_high"], rel=1e-6)


@pytest.mark.parametrize("ci", ["exact", "normal"])
def test_hedges_g_two_groups_matches_r(anc, r_g, ci):
    res = hedges_g(anc, dv="change", group="arm", ref="control", ci=ci).set_index("group")
    assert set(res.index) == {"loading", "stretching"}
    assert (res["ref"] == "control").all() and (res["ci_method"] == ci).all()
    _check_g(res.loc["loading"], r_g.loc["loading_vs_control_change"], ci)
    _check_g(res.loc["stretching"], r_g.loc["stretching_vs_control_change"], ci)
    res90 = hedges_g(anc, dv="change", group="arm", ref="control", ci=ci, confidence=0.9).set_index("group")
    _check_g(res90.loc["stretching"], r_g.loc["stretching_vs_control_change_90"], ci)


@pytest.mark.parametrize("ci", ["exact", "normal"])
def test_hedges_g_paired_and_arrays_match_r(anc, r_g, ci):
    lo = anc[anc.arm == "loading"]
    res = hedges_g(x=lo["week_12"], y=lo["baseline"], paired=True, ci=ci).iloc[0]
    _check_g(res, r_g.loc["loading_paired_week12_vs_baseline"], ci)
    long = lo.melt(id_vars="participant_id", value_vars=["baseline", "week_12"], var_name="visit")
    res2 = hedges_g(long, dv="value", group="visit", ref="baseline", paired=True,
                    participant="participant_id", ci=ci).iloc[0]
    _check_g(res2, r_g.loc["loading_paired_week12_vs_baseline"], ci)
    small = hedges_g(x=[6.1, 7.3, 5.2, 8.0, 6.6], y=[4.2, 5.1, 3.9, 5.5, 4.8], ci=ci).iloc[0]
    _check_g(small, r_g.loc["small"], ci)


def test_hedges_j_against_published_values_and_approximation():
    # Hedges (1981) table: J(2) = 1/sqrt(pi) = 0.5642, J(10) = 0.9227
    assert hedges_j(2) == pytest.approx(1 / np.sqrt(np.pi), rel=1e-12)
    assert round(hedges_j(10), 4) == 0.9227
    # J(df) ~ 1 - 3/(4 df - 1); the two differ by about 0.33 / df^2
    for df in (10, 30, 100, 1000):
        assert hedges_j(df) == pytest.approx(1 - 3 / (4 * df - 1), abs=0.5 / df**2)
    assert hedges_j(1e6) == pytest.approx(1.0, abs=1e-6)


def test_exact_ci_coverage_by_simulation():
    """Noncentral-t interval: coverage of the true delta (J-scaled limits) near 95 % at n=6."""
    rng = np.random.default_rng(7)
    delta, n, reps = 0.8, 6, 300
    J = hedges_j(2 * n - 2)
    hits = 0
    for _ in range(reps):
        x, y = rng.normal(delta, 1, n), rng.normal(0, 1, n)
        r = hedges_g(x=x, y=y).iloc[0]
        hits += (r["ci_low"] / J) <= delta <= (r["ci_high"] / J)
    # binomial SE at 0.95 and 300 reps is 0.0126: accept 0.91-0.99 (about 3 SE)
    assert 0.91 <= hits / reps <= 0.99


def test_hedges_g_errors():
    with pytest.raises(AnalysisError, match="zero variance"):
        hedges_g(x=[1, 1, 1], y=[2, 2, 2])
    with pytest.raises(AnalysisError, match="equal length"):
        hedges_g(x=[1, 2, 3], y=[1, 2], paired=True)
    with pytest.raises(AnalysisError, match="two groups"):
        hedges_g(pd.DataFrame({"a": ["x"] * 3, "v": [1.0, 2, 3]}), dv="v", group="a")


# ---------------------------------------------------------------------------------------------
# responders
# ---------------------------------------------------------------------------------------------
def test_wilson_matches_statsmodels_and_r():
    r = pd.read_csv(FIX / "responders_by_arm.csv")
    lo, hi = wilson_ci(r["responders"], r["n"])
    np.testing.assert_allclose(lo, r["ci_low"], rtol=1e-8)
    np.testing.assert_allclose(hi, r["ci_high"], rtol=1e-8)
    for k, n, conf in [(0, 10, 0.95), (10, 10, 0.9), (3, 17, 0.99), (50, 120, 0.95)]:
        slo, shi = proportion_confint(k, n, alpha=1 - conf, method="wilson")
        lo, hi = wilson_ci(k, n, conf)
        assert (lo, hi) == pytest.approx((slo, shi), abs=1e-12)


def test_newcombe_published_example_and_statsmodels():
    # Newcombe (1998), Table II example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339
    d, lo, hi = newcombe_diff_ci(56, 70, 48, 80)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    for k1, n1, k0, n0 in [(9, 16, 2, 18), (5, 17, 2, 18), (0, 10, 0, 20), (10, 10, 0, 10)]:
        ref = confint_proportions_2indep(k1, n1, k0, n0, method="newcomb", compare="diff")
        assert newcombe_diff_ci(k1, n1, k0, n0)[1:] == pytest.approx(tuple(ref), abs=1e-10)


def test_responders_match_r(anc):
    r_arm = pd.read_csv(FIX / "responders_by_arm.csv")
    r_ref = pd.read_csv(FIX / "responders_vs_ref.csv").set_index("arm")
    r_test = pd.read_csv(FIX / "responders_tests.csv").set_index("test")
    mdc = float(r_arm["mdc"].iloc[0])
    res = responders(anc, "change", "arm", mdc, ref="control", test="chi2")
    b = res.by_arm.set_index("arm").loc[r_arm["arm"]]
    np.testing.assert_array_equal(b["n_participants"], r_arm["n"])
    np.testing.assert_array_equal(b["n_responders"], r_arm["responders"])
    np.testing.assert_allclose(b["proportion_ci_low"], r_arm["ci_low"], rtol=1e-8)
    np.testing.assert_allclose(b["proportion_ci_high"], r_arm["ci_high"], rtol=1e-8)
    v = res.vs_ref.set_index("arm").loc[r_ref.index]
    for col in ("risk_difference", "ci_low", "ci_high"):
        ours = col if col == "risk_difference" else f"risk_difference_{col}"
        np.testing.assert_allclose(v[ours], r_ref[col], rtol=1e-8)
    np.testing.assert_allclose(v["risk_difference_p_value"], r_ref["p_fisher"], rtol=1e-8)
    assert res.test["test"] == "chi2"
    assert res.test["statistic"] == pytest.approx(r_test.loc["chi2", "statistic"], rel=1e-8)
    assert res.test["p_value"] == pytest.approx(r_test.loc["chi2", "p_value"], rel=1e-8)
    fis = responders(anc, "change", "arm", mdc, ref="control", test="fisher")
    assert fis.test["p_value"] == pytest.approx(r_test.loc["fisher", "p_value"], rel=1e-8)
    # all expected counts >= 5 here -> auto chooses chi-square
    assert responders(anc, "change", "arm", mdc, ref="control").test["test"] == "chi2"
    s = res.summary()
    assert {"proportion", "risk_difference", "risk_difference_ci_low"} <= set(s.columns)
    assert "<table" in res._repr_html_()


def test_responders_small_table_fisher_rxc():
    r_test = pd.read_csv(FIX / "responders_tests.csv").set_index("test")
    df = pd.DataFrame({"arm": ["a"] * 15 + ["b"] * 15 + ["c"] * 15,
                       "change": [10] * 5 + [0] * 10 + [10] * 8 + [0] * 7 + [10] * 12 + [0] * 3})
    res = responders(df, "change", "arm", mdc=5, test="fisher")
    assert res.test["p_value"] == pytest.approx(r_test.loc["fisher_small", "p_value"], rel=1e-8)
    chi = responders(df, "change", "arm", mdc=5, test="chi2")
    assert chi.test["statistic"] == pytest.approx(r_test.loc["chi2_small", "statistic"], rel=1e-8)


def test_responders_direction_threshold_and_errors():
    df = pd.DataFrame({"arm": ["c", "c", "t", "t"], "change": [-5.0, -3.0, 3.0, 3.0000001]})
    res = responders(df, "change", "arm", mdc=3)
    assert res.by_arm["n_responders"].tolist() == [0, 1]  # strictly greater than the MDC
    assert res.test["test"] == "fisher"  # expected counts below 5 -> auto chooses Fisher
    assert responders(df, "change", "arm", mdc=4, direction="<").by_arm["n_responders"].tolist() == [1, 0]
    with pytest.warns(DeprecationWarning, match="direction"):  # the old +1/-1 still read
        assert responders(df, "change", "arm", mdc=4, direction=-1).by_arm["n_responders"].tolist() == [1, 0]
    with pytest.raises(AnalysisError, match="mdc"):
        responders(df, "change", "arm", mdc=0)
    with pytest.raises(AnalysisError, match="direction"):
        responders(df, "change", "arm", mdc=1, direction=2)
    with pytest.raises(AnalysisError, match="ref"):
        responders(df, "change", "arm", mdc=1, ref="zzz")


@pytest.mark.parametrize("d,n", [(-0.7, 30), (-2.5, 12), (-0.05, 150)])
def test_smd_ci_of_a_negative_difference_mirrors_the_positive_one(d, n):
    """The noncentral-t interval is symmetric in the sign of d (t -> -t mirrors the noncentral t family).
    Pelvis's old private copy raised on negative d_z (e.g. 30 pairs, d_z = -0.7); smd_ci, used by
    pelvis_analysis since, must give the mirrored interval."""
    from hipstats.stats.effect_sizes import smd_ci

    lo, hi = smd_ci(d, n, n - 1, confidence=0.9)
    plo, phi = smd_ci(-d, n, n - 1, confidence=0.9)
    assert lo < d < hi
    assert (lo, hi) == pytest.approx((-phi, -plo), abs=1e-8)
