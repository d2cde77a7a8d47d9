"""Analytic longitudinal power (power_slope, power_mmrm) against R's longpower.

The fixtures tests/fixtures/power/longpower_slope.csv and longpower_mmrm.csv were written by
tests/fixtures/power/longpower_cases.R with longpower 1.0.27 installed from its CRAN source.
Tolerances: n per arm to 1e-8 relative (the same closed form; longpower's own uniroot for the
power has tolerance eps^2, so power to 1e-7 absolute).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hipstats as hs
from hipstats.errors import ParameterError
from hipstats.power import analytic

FIX = Path(__file__).parent / "fixtures" / "power"
SLOPE = pd.read_csv(FIX / "longpower_slope.csv")
MMRM = pd.read_csv(FIX / "longpower_mmrm.csv")


def _times(s):
    return [float(v) for v in s.split(",")]


@pytest.mark.parametrize("row", SLOPE.to_dict("records"), ids=lambda r: f"{r['method']}-{r['case']}")
def test_power_slope_matches_longpower(row):
    kw = dict(delta=row["delta"], times=_times(row["times"]), sd_intercept=row["sd_intercept"],
              sd_slope=row["sd_slope"], sd_residual=row["sd_residual"],
              cor_intercept_slope=row["cor"], alpha=row["alpha"], method=row["method"])
    n = hs.power_slope(power=row["target_power"], **kw)
    assert n.n_exact == pytest.approx(row["n_per_arm"], rel=1e-8)
    assert n.n_per_arm == math.ceil(row["n_per_arm"] - 1e-9)
    assert n.power >= row["target_power"]
    p = hs.power_slope(n_per_arm=row["n_given"], **kw)
    assert p.power == pytest.approx(row["power_at_n_given"], abs=1e-7)
    assert p.n_per_arm == row["n_given"]


@pytest.mark.parametrize("row", MMRM.to_dict("records"), ids=lambda r: f"case-{r['case']}")
def test_power_mmrm_matches_longpower(row):
    k = int(row["k"])
    kind, rho = row["corr"].split()
    rho = float(rho)
    idx = np.arange(k)
    R = rho ** np.abs(np.subtract.outer(idx, idx)) if kind == "ar1" else rho
    kw = dict(delta=row["delta"], sd=row["sd"], correlation=R, retention=_times(row["retention_a"]),
              retention_reference=_times(row["retention_b"]), ratio=row["ratio"], alpha=row["alpha"])
    n = hs.power_mmrm(power=row["target_power"], **kw)
    assert n.n_exact == pytest.approx(row["n1"], rel=1e-8)
    assert n.n_per_arm_reference == math.ceil(row["n2"] - 1e-9)
    assert n.power >= row["target_power"]
    # longpower's N is the total of both arms
    n_a = row["N_given"] * row["ratio"] / (1 + row["ratio"])
    p = hs.power_mmrm(n_per_arm=n_a, **kw)
    assert p.power == pytest.approx(row["power_at_N_given"], abs=1e-7)


def test_mmrm_phi_closed_forms():
    # no dropout: phi = 1 whatever the correlation (the last visit is always observed)
    R = 0.6 ** np.abs(np.subtract.outer(range(4), range(4)))
    assert analytic.mmrm_phi(R, np.ones(4)) == pytest.approx(1.0)
    # independent visits: only completers inform the last visit, phi = 1 / r_J
    assert analytic.mmrm_phi(np.eye(4), np.array([1, .9, .8, .6])) == pytest.approx(1 / 0.6)
    # AR(1): longpower's power.mmrm.ar1 closed form
    r, t = np.array([1, .9, .8, .7]), np.arange(1, 5)
    phi_ar1 = 1 / r[-1] - np.sum(0.25 ** (2 * (t[-1] - t[:-1])) * (1 / r[1:] - 1 / r[:-1]))
    R = 0.25 ** np.abs(np.subtract.outer(range(4), range(4)))
    assert analytic.mmrm_phi(R, r) == pytest.approx(phi_ar1, rel=1e-12)


def test_slope_two_visits_is_change_score_formula():
    # two visits, no slope variance: the slope test is the change-score z test over the interval
    res = hs.power_slope(0.5, [0, 12], sd_intercept=8, sd_slope=0, sd_residual=5, power=0.8)
    sd_change = math.sqrt(2) * 5
    z = 1.959963984540054 + 0.8416212335729143
    assert res.n_exact == pytest.approx(2 * z**2 * sd_change**2 / (0.5 * 12) ** 2, rel=1e-10)


def test_analytic_longitudinal_argument_errors():
    with pytest.raises(ParameterError, match="exactly one"):
        hs.power_slope(0.5, [0, 6, 12], 9, 0.4, 6)
    with pytest.raises(ParameterError, match="increasing"):
        hs.power_slope(0.5, [0, 12, 6], 9, 0.4, 6, power=0.8)
    with pytest.raises(ParameterError, match="method"):
        hs.power_slope(0.5, [0, 6, 12], 9, 0.4, 6, power=0.8, method="edland")
    with pytest.raises(ParameterError, match="non-increasing"):
        hs.power_mmrm(2, 5, 0.5, [1, 0.8, 0.9], power=0.8)
    with pytest.raises(ParameterError, match="3 x 3"):
        hs.power_mmrm(2, 5, np.eye(2), [1, 0.9, 0.8], power=0.8)
    with pytest.raises(ParameterError, match="positive definite"):
        hs.power_mmrm(2, 5, np.array([[1, .99, 0], [.99, 1, .99], [0, .99, 1]]), [1, .9, .8],
                      power=0.8)
    assert isinstance(hs.power_mmrm(2, 5, 0.5, [1, .9, .8], n_per_arm=50).summary(), pd.DataFrame)


def _mc_tol(p, n, k=3.0):
    return k * math.sqrt(p * (1 - p) / n)


@pytest.mark.slow
def test_power_slope_agrees_with_simulated_mixed_model():
    # Same question both ways: two arms, 5 visits, no dropout, linear slopes; the simulation fits
    # the REML mixed model with Wald (normal) df, the reference distribution of the formula.
    times = (0, 3, 6, 9, 12)
    kw = dict(sd_intercept=9.0, sd_slope=0.4, sd_residual=6.0, cor_intercept_slope=0.2)
    analytic_res = hs.power_slope(0.3, times, n_per_arm=40, **kw)
    design = hs.TrialDesign(arms=("a", "b"), weeks=times, n_per_arm=40, effect_type="slope",
                            effects={"a": 0.0, "b": 0.3}, **{k if k != "cor_intercept_slope" else
                                                              "corr_intercept_slope": v
                                                              for k, v in kw.items()})
    sim = hs.simulate_power(design, target="b", reference="a", df="wald", n_sim=600, seed=5,
                            n_jobs=1)
    assert sim.n_failed == 0
    assert abs(sim.power - analytic_res.power) < _mc_tol(analytic_res.power, 600) + 0.01


@pytest.mark.slow
def test_power_mmrm_variance_and_power_by_simulation():
    # GLS with the known covariance under monotone dropout: the variance of the last-visit mean
    # is sd^2 phi / n (Lu, Luo & Chen 2008) and the z test has the formula's power.
    rng = np.random.default_rng(3)
    k, n, n_rep, sd, delta = 4, 60, 2000, 2.0, 0.9
    R = 0.5 ** np.abs(np.subtract.outer(range(k), range(k)))
    ret = np.array([1.0, 0.9, 0.8, 0.7])
    V = sd**2 * R
    # dropout pattern: share ret_j - ret_{j+1} observed up to visit j
    last = np.repeat(np.arange(k), np.round(n * -np.diff(np.append(ret, 0))).astype(int))
    assert last.size == n
    infos = [np.linalg.inv(V[: j + 1, : j + 1]) for j in range(k)]
    info = sum(np.pad(infos[j], (0, k - 1 - j)) for j in last)
    cov = np.linalg.inv(info)
    assert cov[-1, -1] == pytest.approx(sd**2 * analytic.mmrm_phi(R, ret) / n, rel=1e-10)
    L = np.linalg.cholesky(V)
    est = np.empty((n_rep, 2))
    for arm in range(2):
        y = rng.standard_normal((n_rep, n, k)) @ L.T + arm * delta
        score = np.zeros((n_rep, k))
        for j in range(k):
            rows = last == j
            score[:, : j + 1] += y[:, rows, : j + 1].sum(axis=1) @ infos[j]
        est[:, arm] = (score @ cov)[:, -1]
    z = (est[:, 1] - est[:, 0]) / math.sqrt(2 * cov[-1, -1])
    assert np.var(est[:, 0]) == pytest.approx(cov[-1, -1], rel=0.1)
    expected = hs.power_mmrm(delta, sd, R, ret, n_per_arm=n).power
    observed = float(np.mean(np.abs(z) > 1.959963984540054))
    assert abs(observed - expected) < _mc_tol(expected, n_rep) + 0.005


# ---------------------------------------------------------------------------------------------
# power_mmrm against a second method: simulated trials, each fitted with hs.fit_mmrm
# (tests/fixtures/power/mmrm_simulation.py wrote mmrm_simulation.csv: 1,000 trials of a known
# design, unstructured covariance, 20 % monotone dropout, Satterthwaite df) and against
# longpower::power.mmrm on the same design (longpower_mmrm_simulated_design.R).
# ---------------------------------------------------------------------------------------------
def _mmrm_simulation_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("mmrm_simulation", FIX / "mmrm_simulation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _mmrm_analytic(sim):
    kw = sim.design().mmrm_inputs()
    return kw, hs.power_mmrm(**kw, n_per_arm=sim.DESIGN_KW["n_per_arm"])


def test_power_mmrm_agrees_with_simulated_mmrm_fits():
    sim = _mmrm_simulation_module()
    trials = pd.read_csv(FIX / "mmrm_simulation.csv")
    kw, res = _mmrm_analytic(sim)
    n, n_arm = len(trials), sim.DESIGN_KW["n_per_arm"]
    assert n == sim.N_TRIALS and trials["converged"].all()  # no fit left out
    assert 0.5 < res.power < 0.9  # a design where power discriminates
    # power: the share of fitted trials with p < 0.05, within 3 Monte Carlo SE of the formula
    observed = float((trials["p_value"] < 0.05).mean())
    mc_se = math.sqrt(res.power * (1 - res.power) / n)
    assert abs(observed - res.power) < 3 * mc_se
    # the estimate: unbiased for the design's difference at the last visit, and its spread is
    # the formula's sd * sqrt(2 phi / n) (3 MC SE; SE of an SD ~ SD / sqrt(2 (n - 1)))
    sd_formula = kw["sd"] * math.sqrt(res.inputs["phi_target"] / n_arm + res.inputs["phi_reference"] / n_arm)
    assert trials["estimate"].mean() == pytest.approx(kw["delta"], abs=3 * sd_formula / math.sqrt(n))
    assert trials["estimate"].std() == pytest.approx(sd_formula, abs=3 * sd_formula / math.sqrt(2 * (n - 1)))
    # the fits' own SEs average the formula's SD (REML SEs are nearly unbiased at 50 per arm)
    assert trials["se"].mean() == pytest.approx(sd_formula, rel=0.02)


def test_power_mmrm_matches_longpower_on_the_simulated_design():
    sim = _mmrm_simulation_module()
    want = pd.read_csv(FIX / "longpower_mmrm_simulated_design.csv").iloc[0]
    kw, res = _mmrm_analytic(sim)
    assert kw["sd"] == pytest.approx(want["sd"], rel=1e-12)  # same visit covariance, derived in R
    assert res.power == pytest.approx(want["power"], abs=1e-9)
    assert hs.power_mmrm(**kw, power=want["target_power"]).n_exact == pytest.approx(want["n1_at_target"],
                                                                                    rel=1e-8)


@pytest.mark.slow
def test_mmrm_simulation_fixture_is_what_the_code_gives():
    sim = _mmrm_simulation_module()
    again = sim.simulate(n_trials=4)
    stored = pd.read_csv(FIX / "mmrm_simulation.csv").head(4)
    for col in ("n_rows", "estimate", "se", "df", "p_value"):
        assert again[col].to_numpy() == pytest.approx(stored[col].to_numpy(), rel=1e-6), col


@pytest.mark.parametrize("make", [
    lambda: hs.power_mmrm(4.0, 9.0, np.array([[1, .6, .5], [.6, 1, .7], [.5, .7, 1]]), [1, .9, .8],
                          n_per_arm=40, ratio=1.5, retention_reference=[1, .85, .7]),
    lambda: hs.power_slope(0.3, [0, 3, 6, 9, 12], 9.0, 0.15, 3.0, 0.2, power=0.9, method="liuliang"),
    lambda: hs.power_ancova(effect=5.0, sd=8.0, rho=0.6, power=0.8, dropout=0.1),
    lambda: hs.power_change_scores(effect=5.0, sd=8.0, n_per_arm=30),
], ids=["mmrm", "slope", "ancova", "change"])
def test_analytic_results_are_results(make):
    import pickle

    import matplotlib.pyplot as plt

    from hipstats.results import Result

    res = make()
    assert isinstance(res, Result) and res.confidence is None  # no interval, no level
    again = pickle.loads(pickle.dumps(res))
    pd.testing.assert_frame_equal(again.summary(), res.summary())
    assert res.to_frame().equals(res.summary()) and "<table" in res._repr_html_()
    # power_at re-derives the power from the stored inputs alone: the same number at the same n
    # (solved for n: enrolment is rounded up after dropout, so at least the power reported)
    if res.solved_for == "power" or getattr(res, "dropout", 0) == 0:
        assert res.power_at(res.n_per_arm) == pytest.approx(res.power, abs=1e-12)
    else:
        assert res.power_at(res.n_per_arm) >= res.power - 1e-12
    assert res.power_at(2 * res.n_per_arm) > res.power
    fig = res.plot()
    assert fig.axes[0].get_xlabel() == "participants per arm"
    plt.close(fig)
