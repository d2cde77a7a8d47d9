"""Tests of hipstats.power: analytic power against published values and statsmodels, simulated
power against closed forms (within Monte Carlo error), reproducibility across backends.

Monte Carlo tolerances: a simulated power p_hat from n replicates is compared with the exact
or analytic value p using 3 Monte Carlo standard errors, 3 * sqrt(p (1 - p) / n) (two-sided
~0.3% chance of a false alarm for a correct implementation; seeds are fixed so a run is
deterministic).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import TTestIndPower

from hipstats.errors import AnalysisError, ParameterError
from hipstats.power import design as dsg
from hipstats.power import simulation as sim
from hipstats.power import (
    PowerResult,
    TrialDesign,
    power_ancova,
    power_change_scores,
    power_curve,
    power_curve_plot,
    run_power_from_params,
    simulate_power,
)


def mc_tol(p: float, n: int, k: float = 3.0) -> float:
    return k * math.sqrt(p * (1 - p) / n)


TWO_VISIT = dict(arms=("control", "loading"), weeks=(0, 12), sd_intercept=8.0, sd_slope=0.0, dropout=0.0,
                 sd_residual=5.0)


# ------------------------------------------------------------------------------ analytic
@pytest.mark.parametrize("d, n_cohen", [(0.5, 64), (0.8, 26)])
def test_sample_size_matches_cohen_table(d, n_cohen):
    # Cohen (1988) Table 2.4.1, two-tailed alpha 0.05, power 0.80: exact integer n per group
    res = power_change_scores(effect=d * 10, sd=10, power=0.8)
    assert res.n_completers == n_cohen
    assert res.power >= 0.8


@pytest.mark.parametrize("effect, sd, n", [(5, 10, 20), (3, 7.5, 55), (2, 9, 130.5), (-4, 6, 12)])
def test_power_matches_statsmodels(effect, sd, n):
    ref = TTestIndPower().power(abs(effect) / sd, nobs1=n, alpha=0.05, ratio=1.0)
    assert power_change_scores(effect, sd, n_per_arm=n).power == pytest.approx(ref, abs=1e-8)


@pytest.mark.parametrize("d, target", [(0.3, 0.8), (0.5, 0.9), (1.0, 0.85)])
def test_solved_n_matches_statsmodels_and_guenther(d, target):
    res = power_change_scores(effect=d, sd=1.0, power=target, alpha=0.05)
    ref = TTestIndPower().solve_power(d, power=target, alpha=0.05)
    assert res.n_exact == pytest.approx(ref, rel=1e-6)
    # Guenther (1981, Am Stat 35:243): n_t ~ 2 (z_a + z_b)^2 / d^2 + z_a^2 / 4 (error < 0.2)
    za, zb = stats.norm.isf(0.025), stats.norm.ppf(target)
    assert res.n_exact == pytest.approx(2 * (za + zb) ** 2 / d**2 + za**2 / 4, abs=0.2)


def test_dropout_inflation():
    res = power_change_scores(effect=5, sd=10, power=0.8, dropout=0.2)
    assert (res.n_completers, res.n_per_arm) == (64.0, 80.0)  # 64 / (1 - 0.2)
    back = power_change_scores(effect=5, sd=10, n_per_arm=80, dropout=0.2)
    assert back.n_completers == pytest.approx(64.0)
    assert back.power == pytest.approx(res.power, abs=1e-12)
    assert power_change_scores(5, 10, power=0.8, dropout=0.15).n_per_arm == math.ceil(64 / 0.85)


@pytest.mark.parametrize("rho", [0.3, 0.5, 0.7, 0.85])
def test_ancova_design_effect_borm(rho):
    # Borm, Fransen & Lemmens (2007): ANCOVA on (1 - rho^2) n has the power of a t test on
    # the follow-up scores with n per group; the one-covariate df makes ANCOVA need slightly
    # more (less than one participant per arm here).
    t_test = power_change_scores(effect=4, sd=10, power=0.8)
    anc = power_ancova(effect=4, sd=10, rho=rho, power=0.8)
    assert anc.design_effect == pytest.approx(1 - rho**2)
    assert anc.sd_effective == pytest.approx(10 * math.sqrt(1 - rho**2))
    diff = anc.n_exact - (1 - rho**2) * t_test.n_exact
    assert 0 < diff < 1.0


def test_ancova_rho_zero_is_t_test_with_one_df_less():
    anc = power_ancova(effect=5, sd=10, rho=0.0, n_per_arm=40).power
    ref = TTestIndPower().power(0.5, nobs1=40, alpha=0.05, df=77)
    assert anc == pytest.approx(ref, abs=1e-8)


def test_analytic_argument_errors():
    with pytest.raises(ParameterError, match="exactly one"):
        power_change_scores(5, 10)
    with pytest.raises(ParameterError, match="exactly one"):
        power_change_scores(5, 10, n_per_arm=10, power=0.8)
    with pytest.raises(ParameterError, match="rho"):
        power_ancova(5, 10, rho=1.0, power=0.8)
    with pytest.raises(ParameterError, match="dropout"):
        power_change_scores(5, 10, power=0.8, dropout=1.0)
    assert isinstance(power_change_scores(5, 10, n_per_arm=30).summary(), pd.DataFrame)


# ------------------------------------------------------------------------------ design
def test_design_normalises_and_validates():
    d = TrialDesign(n_per_arm={"control": 10, "stretching": 12, "loading": 14}, dropout=0.1)
    assert d.n_total == 36 and d.dropout == {"control": 0.1, "stretching": 0.1, "loading": 0.1}
    assert d.dropout_weights == (0.25,) * 4
    with pytest.raises(ParameterError, match="missing"):
        TrialDesign(effects={"control": 0, "loading": 6})
    with pytest.raises(ParameterError, match="weeks"):
        TrialDesign(weeks=(0, 6, 3))
    with pytest.raises(ParameterError, match="weights"):
        TrialDesign(dropout_pattern=(1, 1))


def test_mean_change_shapes():
    lin = TrialDesign(effects={"control": 0, "stretching": 2, "loading": 6})
    assert lin.mean_change().loc["loading"].tolist() == [0, 1.5, 3, 4.5, 6]
    assert lin.true_contrast("arm:week", "loading", "control") == pytest.approx(0.5)
    plateau = TrialDesign(plateau_tau_weeks=4.0)
    assert plateau.mean_change().loc["loading", 12.0] == pytest.approx(6 * (1 - math.exp(-3)))
    slope = TrialDesign(effect_type="slope", effects={"control": 0, "stretching": .1,
                                                      "loading": .5})
    assert slope.true_contrast("change", "loading", "stretching") == pytest.approx(4.8)


def test_generator_moments_and_dropout():
    # the lean generator draws the stated model: check variance components and dropout rates
    d = TrialDesign(arms=("a", "b"), weeks=(0, 4, 8, 12), n_per_arm=20000,
                    effects={"a": 0, "b": 6}, sd_intercept=6, sd_slope=0.4,
                    corr_intercept_slope=-0.3, sd_residual=2, dropout={"a": 0.3, "b": 0.1},
                    dropout_pattern=(0, 0, 1))
    y, arm = dsg.draw_trial(d, np.random.default_rng(5))
    full = y[(arm == 0) & ~np.isnan(y).any(axis=1)]  # completers of the no-change arm
    t = np.array(d.weeks)
    c01 = -0.3 * 6 * 0.4
    model = 6**2 + c01 * np.add.outer(t, t) + 0.4**2 * np.outer(t, t) + 2**2 * np.eye(4)
    # n ~ 14,000: sampling error of a covariance ~ 1-2%
    assert np.allclose(np.cov(full.T), model, rtol=0.05, atol=0.5)
    assert np.nanmean(y[arm == 1, 0]) == pytest.approx(36, abs=0.15)
    assert np.nanmean(y[arm == 1, 3] - y[arm == 1, 0]) == pytest.approx(6, abs=0.2)
    m = d.endpoint_moments()  # the closed forms used for the last-visit formulas
    assert m["sd_baseline"] == pytest.approx(math.sqrt(model[0, 0]))
    assert m["sd_follow_up"] == pytest.approx(math.sqrt(model[3, 3]))
    assert m["rho"] == pytest.approx(model[0, 3] / math.sqrt(model[0, 0] * model[3, 3]))
    assert m["sd_change"] == pytest.approx(np.std(full[:, 3] - full[:, 0]), rel=0.03)
    assert np.isnan(y[arm == 0, 3]).mean() == pytest.approx(0.3, abs=0.015)
    assert np.isnan(y[:, 2]).sum() == 0  # pattern puts every dropout at the last visit
    mono = np.isnan(y)
    assert not (mono[:, :-1] & ~mono[:, 1:]).any()  # monotone


# ------------------------------------------------------------------------------ simulation
def test_change_score_simulation_matches_analytic():
    d = TrialDesign(n_per_arm=30, effects={"control": 0, "loading": 5},
                    **{**TWO_VISIT, "dropout": 0.2})
    res = simulate_power(d, test="change", n_sim=1000, seed=11, n_jobs=1)
    sd_change = math.sqrt(2) * 5.0
    ref = power_change_scores(5, sd_change, n_per_arm=30, dropout=0.2).power
    assert abs(res.power - ref) < mc_tol(ref, res.n_sim)
    assert res.ci_low < res.power < res.ci_high
    assert res.summary()["mean_estimate"].iloc[0] == pytest.approx(5.0, abs=0.25)


def test_ancova_simulation_matches_analytic():
    d = TrialDesign(n_per_arm=25, effects={"control": 0, "loading": 5}, **TWO_VISIT)
    res = simulate_power(d, test="ancova", n_sim=1000, seed=12, n_jobs=1)
    rho = 8.0**2 / (8.0**2 + 5.0**2)
    ref = power_ancova(5, math.sqrt(8.0**2 + 5.0**2), rho, n_per_arm=25).power
    assert abs(res.power - ref) < mc_tol(ref, res.n_sim)


@pytest.mark.parametrize("test", ["change", "ancova"])
def test_type_one_error_simple_tests(test):
    d = TrialDesign(n_per_arm=15, effects={"control": 0, "loading": 0}, **TWO_VISIT)
    res = simulate_power(d, test=test, n_sim=2000, seed=3, n_jobs=1)
    assert abs(res.power - 0.05) < mc_tol(0.05, 2000)


def test_lmm_two_visits_equals_change_score_t_test():
    # two visits, random intercept, complete data: the week x arm coefficient is the
    # difference in mean change and its Satterthwaite t test is the pooled t test, df 2n - 2
    d = TrialDesign(n_per_arm=20, effects={"control": 0, "loading": 4}, **TWO_VISIT)
    lmm = simulate_power(d, test="arm:week", n_sim=6, seed=4, n_jobs=1, random_slopes=False)
    chg = simulate_power(d, test="change", n_sim=6, seed=4, n_jobs=1)
    a, b = lmm.replicates, chg.replicates
    assert np.allclose(a["estimate"] * 12, b["estimate"], atol=1e-8)  # slope per week * 12
    assert np.allclose(a["se"] * 12, b["se"], rtol=1e-4)
    assert np.allclose(a["df"], 38, atol=0.05)
    assert np.allclose(a["p_value"], b["p_value"], rtol=1e-3, atol=1e-6)


def _slope_design(effect_b):
    return TrialDesign(arms=("control", "loading"), weeks=(0, 4, 8, 12), n_per_arm=15,
                       effects={"control": 0, "loading": effect_b}, effect_type="slope",
                       sd_intercept=6, sd_slope=0.3, corr_intercept_slope=0.2, sd_residual=3,
                       dropout=0.0)


def _slope_sd(d: TrialDesign) -> float:
    # complete balanced data: GLS slope = mean of per-participant OLS slopes, each with
    # variance sd_slope^2 + sd_residual^2 / Sxx, so the test is a two-sample t test on slopes
    t = np.asarray(d.weeks)
    return math.sqrt(d.sd_slope**2 + d.sd_residual**2 / ((t - t.mean()) ** 2).sum())


def test_lmm_slope_estimate_is_two_stage_slope_difference():
    d = _slope_design(0.25)
    res = simulate_power(d, n_sim=4, seed=8, n_jobs=1)
    t = np.asarray(d.weeks) - d.weeks[0]
    for r, ss in enumerate(np.random.SeedSequence(8).spawn(4)):
        y, arm = dsg.draw_trial(d, np.random.default_rng(ss))
        slopes = np.polyfit(t, y.T, 1)[0]
        two_stage = slopes[arm == 1].mean() - slopes[arm == 0].mean()
        assert res.replicates["estimate"].iloc[r] == pytest.approx(two_stage, abs=1e-6)
        assert res.replicates["df"].iloc[r] == pytest.approx(28, abs=2.5)


@pytest.mark.slow
def test_lmm_power_matches_slope_t_test():
    d = _slope_design(0.25)
    res = simulate_power(d, n_sim=120, seed=21, n_jobs=2, chunk_size=20)
    ref = power_change_scores(0.25, _slope_sd(d), n_per_arm=15).power
    assert res.n_failed == 0
    assert abs(res.power - ref) < mc_tol(ref, res.n_sim)


@pytest.mark.slow
def test_lmm_type_one_error_with_dropout():
    d = dataclasses_replace(_slope_design(0.0), dropout=0.2)
    res = simulate_power(d, n_sim=120, seed=22, n_jobs=2, chunk_size=20)
    assert res.n_failed == 0
    assert abs(res.power - 0.05) < mc_tol(0.05, res.n_sim)
    # the whole null distribution of Satterthwaite p-values is uniform (KS, 0.1% level)
    assert stats.kstest(res.replicates["p_value"], "uniform").pvalue > 0.001


def dataclasses_replace(d, **kw):
    import dataclasses

    return dataclasses.replace(d, **kw)


#: the columns power_curve's DataFrame had before it returned a PowerCurveResult
OLD_CURVE_COLUMNS = ["n_per_arm", "n_total", "power", "power_ci_low", "power_ci_high", "power_se", "power_fitted",
                     "n_sim", "n_failed", "n_not_converged", "n_singular", "flagged", "true_effect", "test",
                     "target", "reference", "alpha"]


def test_power_curve_is_a_result():
    import pickle

    import matplotlib.pyplot as plt

    from hipstats.power import PowerCurveResult
    from hipstats.results import Result

    d = TrialDesign(**{**TWO_VISIT, "arms": ("ctl <i>", "load")}, effects={"ctl <i>": 0, "load": 4})
    res, points = power_curve(d, [8, 24], test="change", n_sim=60, seed=1, n_jobs=1, confidence=0.9,
                              return_results=True)
    assert isinstance(res, PowerCurveResult) and isinstance(res, Result) and res.points == points
    frame = res.to_frame()
    assert list(frame.columns) == OLD_CURVE_COLUMNS  # one call migrates old code: .to_frame()
    assert frame["power"].tolist() == [p.power for p in points]
    assert frame.attrs["design_table"].equals(res.design_table()) and frame.attrs["notes"] == res.notes
    assert "8, 24 (the curve's points)" in res.design_table()["value"].tolist()
    summ = res.summary()
    assert list(summ.columns) == ["n_per_arm", "n_total", "power", "power_ci_low", "power_ci_high", "n_failed",
                                  "n_not_converged", "n_singular", "flagged"]
    assert res.confidence == 0.9 and res.notes[0].startswith("Power counts")
    assert res.first_reaching(2.0) is None
    html = res._repr_html_()
    assert "ctl &lt;i&gt;" in html and "<i>" not in html and "90% confidence" in html
    fig = res.plot(target_power=None)
    ax = fig.axes[0]
    assert list(ax.lines[0].get_ydata()) == frame.sort_values("n_per_arm")["power"].tolist()
    assert "90% Monte Carlo CI" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    back = pickle.loads(pickle.dumps(res))
    assert back.to_frame().equals(frame) and back.notes == res.notes


def test_power_curve_monotone_and_analytic():
    d = TrialDesign(effects={"control": 0, "loading": 4}, **TWO_VISIT)
    ns = [8, 16, 32, 64]
    curve = power_curve(d, ns, test="change", n_sim=400, seed=5, n_jobs=1).to_frame()
    assert list(curve["n_per_arm"]) == ns
    assert (curve["n_total"] == 2 * curve["n_per_arm"]).all()
    for lo, hi in zip(curve.itertuples(), curve.iloc[1:].itertuples()):
        assert hi.power > lo.power - 3 * math.hypot(lo.power_se, hi.power_se)
    for row in curve.itertuples():
        ref = power_change_scores(4, math.sqrt(2) * 5, n_per_arm=row.n_per_arm).power
        assert abs(row.power - ref) < mc_tol(ref, 400)
    fig = power_curve_plot(curve)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("participants") and len(ax.lines) >= 2
    import matplotlib.pyplot as plt

    plt.close(fig)


# ------------------------------------------------------------------------------ reproducibility
def test_same_seed_same_result_any_chunking_and_jobs():
    d = TrialDesign(n_per_arm=20, effects={"control": 0, "loading": 3}, **TWO_VISIT)
    a = simulate_power(d, test="ancova", n_sim=120, seed=9, n_jobs=1, chunk_size=120)
    b = simulate_power(d, test="ancova", n_sim=120, seed=9, n_jobs=2, chunk_size=7)
    c = simulate_power(d, test="ancova", n_sim=120, seed=10, n_jobs=1)
    assert a.backend == "sequential" and b.backend == "loky"
    pd.testing.assert_frame_equal(a.replicates, b.replicates, check_exact=True)
    assert not np.array_equal(a.replicates["estimate"], c.replicates["estimate"])
    # a replicate depends only on its own seed: the first 50 of 120 equal a 50-replicate run
    head = simulate_power(d, test="ancova", n_sim=50, seed=9, n_jobs=1)
    assert np.array_equal(head.replicates["estimate"], a.replicates["estimate"].iloc[:50])


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_equals_joblib(dask_client):
    d = TrialDesign(n_per_arm=20, effects={"control": 0, "loading": 3}, **TWO_VISIT)
    ref = simulate_power(d, test="change", n_sim=200, seed=13, n_jobs=2, chunk_size=50)
    on_dask = simulate_power(d, test="change", n_sim=200, seed=13, client=dask_client,
                             chunk_size=30)
    assert on_dask.backend == "dask"
    pd.testing.assert_frame_equal(ref.replicates, on_dask.replicates, check_exact=True)
    by_address = simulate_power(d, test="change", n_sim=200, seed=13,
                                client=dask_client.scheduler.address)
    assert by_address.power == ref.power


def test_dask_mixed_model_equals_joblib(dask_client):
    d = _slope_design(0.2)
    ref = simulate_power(d, n_sim=6, seed=14, n_jobs=2, chunk_size=3)
    on_dask = simulate_power(d, n_sim=6, seed=14, client=dask_client, chunk_size=2)
    seq = simulate_power(d, n_sim=6, seed=14, n_jobs=1, chunk_size=6)
    # bit-identical: every replicate is computed from its own data only
    pd.testing.assert_frame_equal(ref.replicates, on_dask.replicates, check_exact=True)
    pd.testing.assert_frame_equal(ref.replicates, seq.replicates, check_exact=True)


# ------------------------------------------------------------------------------ results, errors
def test_result_object_and_ci():
    d = TrialDesign(n_per_arm=10, effects={"control": 0, "loading": 4}, **TWO_VISIT)
    res = simulate_power(d, test="change", n_sim=100, seed=1, n_jobs=1, ci_method="wilson")
    assert isinstance(res, PowerResult)
    k, n = res.n_rejected, res.n_sim
    z = stats.norm.isf(0.025)  # Wilson interval by hand
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    assert (res.ci_low, res.ci_high) == pytest.approx((centre - half, centre + half), abs=1e-9)
    cp = simulate_power(d, test="change", n_sim=100, seed=1, n_jobs=1)
    assert cp.ci_low == pytest.approx(stats.beta.ppf(0.025, k, n - k + 1), abs=1e-9)
    summ = res.summary()
    assert summ.loc[0, "power"] == res.power and summ.loc[0, "contrast"] == "loading - control"
    assert "Simulated power" in res._repr_html_() and "PowerResult(" in repr(res)
    assert len(res.to_frame()) == 100
    fig = res.plot()
    assert fig.axes[0].get_ylabel() == "simulated trials"
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_failures_are_counted_not_hidden():
    # one participant per arm with dropout: many replicates have no completers in an arm
    d = TrialDesign(n_per_arm=2, effects={"control": 0, "loading": 4},
                    **{**TWO_VISIT, "dropout": 0.6})
    with pytest.warns(RuntimeWarning, match="could not be analysed"):
        res = simulate_power(d, test="ancova", n_sim=200, seed=2, n_jobs=1)
    assert 0 < res.n_failed < 200
    # the rule: failed trials count as not significant, and are counted
    assert res.power == res.n_rejected / res.n_sim
    assert res.power_fitted == res.n_rejected / (res.n_sim - res.n_failed)
    assert res.flagged and "FLAGGED" in repr(res) and "FLAGGED" in res._repr_html_()
    assert any("FLAGGED" in n for n in res.notes)
    summ = res.summary().iloc[0]
    assert summ["n_failed"] == res.n_failed and bool(summ["flagged"])
    result = power_curve(d, [2, 3], test="ancova", n_sim=100, seed=2, n_jobs=1)
    curve = result.to_frame()
    assert curve["flagged"].all() and len(curve.attrs["notes"]) == 3 and curve.attrs["notes"] == result.notes
    assert sum("FLAGGED" in n for n in result.notes) == 2
    # a point below the threshold is not flagged
    ok = simulate_power(d.with_n(30), test="ancova", n_sim=50, seed=2, n_jobs=1)
    assert not ok.flagged and ok.n_failed == 0


def test_simulation_argument_errors():
    d = TrialDesign()
    with pytest.raises(ParameterError, match="test"):
        simulate_power(d, test="slopes")
    with pytest.raises(ParameterError, match="target"):
        simulate_power(d, target="yoga")
    with pytest.raises(ParameterError, match="random slope"):
        simulate_power(TrialDesign(**TWO_VISIT, effects={"control": 0, "loading": 1}),
                       random_slopes=True)
    with pytest.raises(ParameterError, match="wald"):
        simulate_power(d, engine="statsmodels")
    with pytest.raises(AnalysisError, match="every simulated trial"):
        simulate_power(TrialDesign(n_per_arm=2, effects={"control": 0, "loading": 1},
                                   **{**TWO_VISIT, "dropout": 0.99}), test="change", n_sim=5,
                       n_jobs=1)


# ------------------------------------------------------------------------------ pilot fits
def test_from_fit_takes_variance_components_and_slopes():
    from hipstats.models.lmm import fit_lmm

    truth = TrialDesign(arms=("control", "loading"), n_per_arm=40, sd_intercept=7,
                        sd_slope=0.4, corr_intercept_slope=0.3, sd_residual=2.5,
                        effects={"control": 0.1, "loading": 0.6}, effect_type="slope")
    pilot = truth.simulate(seed=3)
    fit = fit_lmm("value ~ week * arm + (1 + week | participant_id)", pilot)
    d = TrialDesign.from_fit(fit, arms=("control", "loading"), weeks=(0, 6, 12),
                             n_per_arm=50, dropout=0.1)
    vc = fit.varcomp
    assert d.sd_intercept == pytest.approx(vc["sdcor"].iloc[0])
    assert d.sd_slope == pytest.approx(vc["sdcor"].iloc[1])
    assert d.corr_intercept_slope == pytest.approx(vc["sdcor"].iloc[2])
    assert d.sd_residual == pytest.approx(fit.sigma)
    fe = fit.fe_params
    assert d.effects["control"] == pytest.approx(fe["week"])
    assert d.effects["loading"] == pytest.approx(fe["week"] + fe["week:arm[T.loading]"])
    assert d.effect_type == "slope" and d.n_per_arm == {"control": 50, "loading": 50}
    # and the pilot recovers the generating values (n = 80, loose sampling tolerance)
    assert d.sd_intercept == pytest.approx(7, rel=0.25)
    assert d.effects["loading"] - d.effects["control"] == pytest.approx(0.5, abs=0.25)
    with pytest.raises(AnalysisError, match="random intercept and slope"):
        TrialDesign.from_fit(fit_lmm("value ~ week * arm + (1 | participant_id)", pilot),
                             arms=("control", "loading"), weeks=(0, 12))


def test_from_statsmodels_fit():
    import statsmodels.formula.api as smf

    pilot = _slope_design(0.3).simulate(seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' optimiser chatter
        fit = smf.mixedlm("value ~ week * arm", pilot, groups=pilot["participant_id"],
                          re_formula="~week").fit()
    d = TrialDesign.from_fit(fit, arms=("control", "loading"), weeks=(0, 12))
    assert d.sd_residual == pytest.approx(math.sqrt(fit.scale))
    assert d.effects["loading"] == pytest.approx(
        fit.fe_params["week"] + fit.fe_params["week:arm[T.loading]"])


# ------------------------------------------------------------------------------ CLI params
def test_run_power_from_params():
    analytic = run_power_from_params({"method": "ancova", "effect": "5", "sd": 10, "rho": 0.6,
                                      "power": 0.8, "dropout": 0.2})
    assert analytic.n_per_arm == math.ceil(42 / 0.8)
    params = {"arms": "control,loading", "weeks": "0,12", "effects": "control=0,loading=4",
              "sd_intercept": 8, "sd_slope": 0, "sd_residual": 5, "test": "change", "dropout": 0,
              "n_sim": "200", "jobs": 1, "seed": 5, "scheduler": None}
    one = run_power_from_params({**params, "n_per_arm": 20})
    direct = simulate_power(TrialDesign(n_per_arm=20, effects={"control": 0, "loading": 4},
                                        **TWO_VISIT), test="change", n_sim=200, seed=5,
                            n_jobs=1)
    assert one.power == direct.power
    curve = run_power_from_params({**params, "n_per_arm": "10,20"})
    assert list(curve.summary()["n_per_arm"]) == [10, 20]
    with pytest.raises(ParameterError, match="unknown"):
        run_power_from_params({"n_sims": 10})
    d = TrialDesign.from_params({"arms": "a,b", "weeks": "0,6,12", "n_per_arm": "a:10,b:12",
                                 "effects": "a:0,b:6", "dropout": "0.1", "corr": "-0.2",
                                 "n_sim": 5})
    assert d.n_per_arm == {"a": 10, "b": 12} and d.dropout == {"a": 0.1, "b": 0.1}
    assert d.corr_intercept_slope == -0.2 and d.weeks == (0.0, 6.0, 12.0)
    with pytest.raises(ParameterError, match="not a number"):
        TrialDesign.from_params({"arms": "a,b", "effects": "a:0,b:six"})


def test_from_cohort_uses_pilot_fit_and_observed_dropout():
    from hipstats.models.lmm import fit_lmm
    from hipstats.cohort.simulate import simulate_cohort

    pilot = simulate_cohort(n_participants=90, seed=1)
    gains = {"control": 0, "stretching": 2, "loading": 7}
    d = TrialDesign.from_cohort(pilot, "hip_ir_deg", n_per_arm=50, effects=gains)
    assert d.arms == tuple(pilot.arms) and d.weeks == (0.0, 3.0, 6.0, 9.0, 12.0)
    assert d.effects == {k: float(v) for k, v in gains.items()} and d.effect_type == "gain"
    # the same numbers by hand: participant x visit means, fit_lmm, from_fit
    f = pilot.analysis_frame("hip_ir_deg")
    pv = f.groupby(["participant_id", "visit"], observed=True, as_index=False).agg(
        arm=("arm", "first"), week=("week", "mean"), value=("value", "mean"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_lmm("value ~ week * C(arm, Treatment('control'))", pv,
                      participant="participant_id", re_formula="1 + week")
    assert d.sd_residual == pytest.approx(fit.sigma, rel=1e-6)
    assert d.sd_intercept == pytest.approx(fit.varcomp["sdcor"].iloc[0], rel=1e-6)
    # observed dropout: randomised participants without a week-12 value, per arm
    last = set(pv.loc[pv["visit"] == "week_12", "participant_id"])
    for arm in pilot.arms:
        ids = pilot.participants.loc[pilot.participants["arm"] == arm, "participant_id"]
        assert d.dropout[arm] == pytest.approx(1 - ids.isin(last).mean())
    # loose recovery of the generating truth (30 per arm): dropout 25/20/15 %
    assert d.dropout["control"] == pytest.approx(0.25, abs=0.2)


@pytest.mark.slow
def test_power_notebook_runs(tmp_path, small_cohort_dir):
    import nbformat
    import papermill as pm
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "hipstats" / "notebooks" / "power.ipynb"
    clean = nbformat.read(src, as_version=4)
    assert all(not c.get("outputs") for c in clean.cells if c.cell_type == "code")
    assert clean.cells[1].metadata["tags"] == ["parameters"]
    out = tmp_path / "power.ipynb"
    pm.execute_notebook(str(src), str(out), cwd=str(src.parent), progress_bar=False,
                        parameters={"n_sim": 20, "n_per_arm_grid": "20,40", "n_jobs": 1,
                                    "source": str(small_cohort_dir), "from_pilot": True,
                                    "effects": "control=0,stretching=2,loading=6",
                                    "target_power": 0.05})
    executed = nbformat.read(out, as_version=4)
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in executed.cells
                     if c.cell_type == "code" for o in c.get("outputs", []))
    html = "\n".join(str(o.get("data", {}).get("text/html", "")) for c in executed.cells
                     if c.cell_type == "code" for o in c.get("outputs", []))
    assert "pilot fit (pilot cohort" in html and "pilot observed" in html
    assert "Simulated power at" in html and "Lu, Luo" in html
    from hipstats.report.findings import extract

    found = extract(executed)
    assert [f.area for f in found] == ["Planning", "Planning"]
    assert found[0].ci_low <= found[0].estimate <= found[0].ci_high
    assert "Traceback" not in text and "simulating" not in text  # progress line removed


@pytest.mark.slow
def test_cli_notebook_and_api_give_the_same_answer(tmp_path):
    # the same question three ways: the package defaults plus three stated values
    import nbformat
    import papermill as pm
    from pathlib import Path

    from hipstats.cli import main
    from hipstats.report.findings import extract

    stated = {"effects": "control=0,stretching=2,loading=7", "sd_slope": "0.4", "dropout": "0.2"}
    api = simulate_power(TrialDesign(effects={"control": 0, "stretching": 2, "loading": 7},
                                     sd_slope=0.4, dropout=0.2, n_per_arm=60), n_sim=100, seed=0,
                         n_jobs=1)
    out = tmp_path / "cli.csv"
    assert main(["power", "--n-per-arm", "60", "--effects", stated["effects"], "--sd-slope", "0.4",
                 "--dropout", "0.2", "--n-sim", "100", "--jobs", "1", "--quiet", "--out",
                 str(out)]) == 0
    cli = pd.read_csv(out).iloc[0]
    src = Path(__file__).resolve().parents[1] / "hipstats" / "notebooks" / "power.ipynb"
    nb_out = tmp_path / "power.ipynb"
    pm.execute_notebook(str(src), str(nb_out), cwd=str(src.parent), progress_bar=False,
                        parameters={**stated, "n_sim": 100, "n_jobs": 1, "n_per_arm_grid": "60"})
    nb_power = extract(nbformat.read(nb_out, as_version=4))[0]
    assert cli["power"] == api.power == pytest.approx(nb_power.estimate, abs=1e-12)
    assert cli["power_ci_low"] == api.ci_low and nb_power.ci_low == pytest.approx(api.ci_low)
    # and all three say what they assumed, with the same sources
    design = pd.read_csv(str(out).replace(".csv", ".design.csv"))
    table = api.design_table()
    assert design["value"].tolist() == table["value"].tolist()
    assert design["source"].tolist() == table["source"].tolist()
    assert dict(zip(table["quantity"], table["source"]))["Random slope SD"] == "user"
    assert dict(zip(table["quantity"], table["source"]))["Residual SD"] == "default"
    assert dict(zip(table["quantity"], table["value"]))["Comparison"] == "loading vs stretching"


def test_lmm_arrays_equal_the_formula_design():
    # the replicate design built with numpy (fast path) is patsy's design of the formula
    # the formula engines fit, column for column, on data with dropout
    import patsy

    d = TrialDesign(n_per_arm=8, **{**TWO_VISIT, "dropout": 0.4, "weeks": (0, 4, 8, 12),
                                                  "arms": ("control", "stretching", "loading")})
    y, arm = dsg.draw_trial(d, np.random.default_rng(11))
    assert np.isnan(y).any()
    yv, X, names, pid = sim.lmm_arrays(y, arm, d.weeks, 3, 1)
    data, terms = sim.lmm_frame(y, arm, d.weeks, 3, 1)
    yp, Xp = patsy.dmatrices("value ~ week + " + " + ".join(terms), data,
                             return_type="dataframe")
    assert names == list(Xp.columns) == ["Intercept", "week", "a0", "week_a0", "a2", "week_a2"]
    np.testing.assert_array_equal(X, Xp.to_numpy())
    np.testing.assert_array_equal(yv, yp.to_numpy().ravel())
    np.testing.assert_array_equal(pid, data["participant_id"])


def test_true_theta_is_lme4_factor_of_the_generating_covariance():
    # Lambda Lambda' sd_residual^2 = Sigma (closed form of the random intercept/slope
    # covariance); intercept-only model: sd_intercept / sd_residual
    d = _slope_design(0.25)
    t0, t1, t2 = sim.true_theta(d, True)
    lam = np.array([[t0, 0.0], [t1, t2]]) * d.sd_residual
    s0, s1, r = d.sd_intercept, d.sd_slope, d.corr_intercept_slope
    np.testing.assert_allclose(lam @ lam.T, [[s0**2, r * s0 * s1], [r * s0 * s1, s1**2]],
                               rtol=1e-12)
    np.testing.assert_allclose(sim.true_theta(d, False), [s0 / d.sd_residual])


@pytest.mark.parametrize("start", ["identity", "truth"])
def test_replicate_test_matches_lmertest(start):
    # tests/fixtures/power: replicates drawn by the generator (make_replicates.py), each
    # fitted in R with lme4 REML + lmerTest (lmer_replicates.R); contrast loading vs the
    # non-first reference arm stretching; optimiser started at lme4's identity factor or (as
    # simulate_power does) at the generating theta. Tolerances: estimate 1e-4 deg/week
    # (SE ~0.2), SE 0.05%, Satterthwaite df 2% (observed: < 0.1%, except 1.2% on the
    # replicate where lme4 warns max|grad| 0.0034), p 0.001.
    from pathlib import Path

    here = Path(__file__).parent / "fixtures" / "power"
    data = pd.read_csv(here / "replicates.csv")
    ref = pd.read_csv(here / "lmer_results.csv").set_index("replicate")
    arms = ("control", "stretching", "loading")
    weeks = np.array([0, 3, 6, 9, 12], dtype=float)
    seeds = np.random.SeedSequence(2024).spawn(len(ref))
    design = TrialDesign(arms=arms, weeks=tuple(weeks), n_per_arm=12,
                         effects={"control": 0, "stretching": 2, "loading": 6}, sd_intercept=8,
                         sd_slope=0.3, corr_intercept_slope=0.2, sd_residual=3, dropout=0.25)
    theta0 = sim.true_theta(design, True) if start == "truth" else None
    for r, rep in data.groupby("replicate"):
        n = rep["participant_id"].max() + 1
        y = np.full((n, len(weeks)), np.nan)
        y[rep["participant_id"], np.searchsorted(weeks, rep["week"])] = rep["value"]
        arm = (rep.groupby("participant_id")["arm"].first()
               .map({a: i for i, a in enumerate(arms)}).to_numpy())
        # the generator still draws exactly these data from these seeds (stream layout)
        y_now, arm_now = dsg.draw_trial(design, np.random.default_rng(seeds[r]))
        assert np.array_equal(arm_now, arm)
        assert np.allclose(y_now, y, rtol=1e-9, atol=1e-9, equal_nan=True)
        est, se, df, converged, singular = sim.arm_week_test(y, arm, 2, 1, weeks=weeks, n_arms=3,
                                                random_slopes=True, df_method="satterthwaite",
                                                engine="hipstats", theta0=theta0)
        want = ref.loc[r]
        assert est == pytest.approx(want["estimate"], abs=1e-4)
        assert se == pytest.approx(want["se"], rel=5e-4)
        assert df == pytest.approx(want["df"], rel=0.02)
        p = 2 * stats.t.sf(abs(est / se), df)
        assert p == pytest.approx(want["p_value"], abs=1e-3)


def test_statsmodels_engine_agrees_on_estimates():
    # the statsmodels adapter (comparison engine) fits the same model: estimates agree with
    # fit_lmm within 2e-3 deg/week (SE ~0.2); statsmodels' SEs differ by up to ~6% here
    # (its fixed-effect covariance comes from a different Hessian / optimum; fit_lmm's SEs
    # match lmerTest to 1e-4, see test_replicate_test_matches_lmertest), so 10% on SE
    d = _slope_design(0.25)
    fast = simulate_power(d, n_sim=3, seed=30, n_jobs=1, df="wald")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slow = simulate_power(d, n_sim=3, seed=30, n_jobs=1, df="wald", engine="statsmodels")
    assert slow.n_failed == 0
    assert np.allclose(fast.replicates["estimate"], slow.replicates["estimate"], atol=2e-3)
    assert np.allclose(fast.replicates["se"], slow.replicates["se"], rtol=0.10)
    assert (fast.replicates["df"] == np.inf).all()


def test_progress_is_off_in_logs_and_with_quiet(capsys):
    from hipstats.power.progress import Progress, progress_target

    assert progress_target(False) is None
    assert progress_target(None) is None  # pytest captures stderr: not a terminal, no kernel
    with Progress(5, enabled=None) as bar:
        bar.advance(5)
    assert bar.done == 5 and capsys.readouterr().err == ""
    res = simulate_power(TrialDesign(n_per_arm=10, effects={"control": 0, "loading": 3},
                                     **TWO_VISIT), test="change", n_sim=20, n_jobs=1,
                         progress=False)
    assert res.n_sim == 20 and capsys.readouterr().err == ""


def test_cli_mmrm_and_slope_print_the_design_and_match_the_api(tmp_path, capsys):
    from hipstats.cli import main
    from hipstats.power import power_mmrm, power_slope, run_power_from_params

    dropout = "control=0.3,stretching=0.2,loading=0.1"
    design = TrialDesign(n_per_arm=50, dropout={"control": 0.3, "stretching": 0.2, "loading": 0.1})
    want = power_mmrm(**design.mmrm_inputs(), n_per_arm=50)
    out = tmp_path / "mmrm.csv"
    assert main(["power", "--method", "mmrm", "--n-per-arm", "50", "--dropout", dropout, "--quiet",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Design assumed" in printed and "Lu, Luo & Chen 2008" in printed
    cli = pd.read_csv(out).iloc[0]
    assert cli["power"] == pytest.approx(want.power, abs=1e-12)
    # the target arm keeps 90 %, the reference (stretching, the comparator) 80 %
    assert cli["retention"].endswith("0.9") and cli["retention_reference"].endswith("0.8")
    table = pd.read_csv(str(out).replace(".csv", ".design.csv")).set_index("quantity")
    assert table.loc["Dropout", "source"] == "user" and table.loc["Test", "source"] == "--method mmrm"
    assert "last visit" in table.loc["Test", "value"] and "normal" in table.loc["Degrees of freedom", "value"]
    # solving for n, from the CLI and from flat parameters (the API and the notebook's path)
    assert main(["power", "--method", "mmrm", "--power", "0.8", "--dropout", dropout, "--quiet",
                 "--out", str(out)]) == 0
    solved = power_mmrm(**design.mmrm_inputs(), power=0.8)
    assert pd.read_csv(out).iloc[0]["n_per_arm"] == solved.n_per_arm
    flat = run_power_from_params({"method": "mmrm", "power": 0.8, "dropout": dropout})
    assert flat["n_per_arm"].iloc[0] == solved.n_per_arm
    assert flat.attrs["design_table"].set_index("quantity").loc["Participants per arm (enrolled)",
                                                                "value"] == "solved for power 0.8"
    # the slope formula on the same design says that it ignores the dropout
    assert main(["power", "--method", "slope", "--n-per-arm", "50", "--quiet", "--out", str(out)]) == 0
    kw = TrialDesign(n_per_arm=50).slope_inputs()
    assert pd.read_csv(out).iloc[0]["power"] == pytest.approx(
        power_slope(kw.pop("delta"), kw.pop("times"), **kw, n_per_arm=50).power, abs=1e-12)
    table = pd.read_csv(str(out).replace(".csv", ".design.csv")).set_index("quantity")
    assert table.loc["Dropout", "value"].endswith("(the formula assumes none)")
    assert main(["power", "--method", "slope", "--slope-formula", "liuliang", "--power", "0.9", "--quiet",
                 "--out", str(out)]) == 0
    kw = TrialDesign().slope_inputs()
    assert pd.read_csv(out).iloc[0]["n_exact"] == pytest.approx(
        power_slope(kw.pop("delta"), kw.pop("times"), **kw, power=0.9, method="liuliang").n_exact, rel=1e-12)
    assert "Liu & Liang" in pd.read_csv(str(out).replace(".csv", ".design.csv")).set_index("quantity").loc[
        "Test", "value"]
    assert main(["power", "--method", "mmrm", "--slope-formula", "liuliang", "--quiet"]) == 2
    # options of another method are refused, not ignored
    assert main(["power", "--power", "0.8", "--quiet"]) == 2
    assert main(["power", "--method", "mmrm", "--effect", "3", "--quiet"]) == 2
    assert main(["power", "--method", "mmrm", "--test", "ancova", "--quiet"]) == 2


def test_worker_start_up_imports_no_closed_forms_or_scipy_stats():
    # each worker process imports hipstats.power.simulation to run replicates; the closed forms
    # (hipstats.power.analytic, scipy.stats/optimize) would more than double that start-up
    # (measured in benchmarks/bench_power.py: "importing the replicate code costs a fresh worker")
    import subprocess
    import sys

    code = ("import sys, hipstats.power.simulation as s; "
            "print(sorted(m for m in ('hipstats.power.analytic', 'scipy.stats', 'scipy.optimize') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
