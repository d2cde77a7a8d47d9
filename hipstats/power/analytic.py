"""Closed-form power and sample size for two-arm comparisons.

* :func:`power_change_scores`: t test on change from baseline;
* :func:`power_ancova`: follow-up adjusted for baseline (design effect :math:`1 - \\rho^2`);

both with dropout inflation, returning an :class:`AnalyticPower`.

Examples
--------
>>> from hipstats.power import power_change_scores
>>> round(power_change_scores(effect=5, sd=10, n_per_arm=64).power, 3)
0.801
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from hipstats.errors import ParameterError

__all__ = ["AnalyticPower", "power_change_scores", "power_ancova"]


def _t_test_power(effect: float, sd: float, n: float, alpha: float, n_covariates: int) -> float:
    """Two-sided power of the two-sample t test, equal groups of *n*, noncentral t."""
    df = 2.0 * n - 2.0 - n_covariates
    if df <= 0:
        return float("nan")
    ncp = abs(effect) / sd * math.sqrt(n / 2.0)
    crit = stats.t.isf(alpha / 2.0, df)
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))


def _ceil(x: float) -> int:
    return int(math.ceil(x - 1e-9))


@dataclass(frozen=True)
class AnalyticPower:
    """Result of :func:`power_change_scores` or :func:`power_ancova`.

    Attributes
    ----------
    method : str
        ``"change scores t test"`` or ``"ANCOVA"``.
    solved_for : {"power", "n"}
    power : float
        Power. When solving for n: the power reached with ``n_completers`` per arm (at least
        the requested power).
    n_per_arm : float
        Participants to enrol per arm: given, or ``ceil(n_completers / (1 - dropout))``.
    n_completers : float
        Participants per arm with follow-up: ``ceil(n_exact)`` when solving for n, else the
        expected ``n_per_arm * (1 - dropout)``.
    n_exact : float
        Continuous solution of the power equation (NaN when power was computed).
    effect, sd, sd_effective, alpha, dropout, design_effect : float
        Inputs; ``sd_effective`` is the SD the test works with (``sd * sqrt(1 - rho**2)`` for
        ANCOVA), ``design_effect`` its square divided by ``sd**2``.
    """

    method: str
    solved_for: str
    power: float
    n_per_arm: float
    n_completers: float
    n_exact: float
    effect: float
    sd: float
    sd_effective: float
    alpha: float
    dropout: float
    design_effect: float
    rho: float = float("nan")

    def summary(self) -> pd.DataFrame:
        """One-row DataFrame of all fields."""
        return pd.DataFrame([dataclasses.asdict(self)])

    to_frame = summary

    def _repr_html_(self) -> str:
        return self.summary().to_html(index=False, float_format=lambda v: f"{v:.4g}")


def _solve(method: str, effect: float, sd: float, sd_eff: float, n_per_arm, power, alpha,
           dropout, n_covariates: int, rho: float = float("nan")) -> AnalyticPower:
    if (n_per_arm is None) == (power is None):
        raise ParameterError("give exactly one of n_per_arm and power (the other is solved for)")
    if not sd > 0:
        raise ParameterError(f"sd must be positive, got {sd}")
    if not 0 < alpha < 1:
        raise ParameterError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 <= dropout < 1:
        raise ParameterError(f"dropout must be in [0, 1), got {dropout}")
    if effect == 0:
        raise ParameterError("effect must be non-zero")
    deff = (sd_eff / sd) ** 2
    common = dict(method=method, effect=effect, sd=sd, sd_effective=sd_eff, alpha=alpha,
                  dropout=dropout, design_effect=deff, rho=rho)
    if power is None:
        n_comp = float(n_per_arm) * (1.0 - dropout)
        pw = _t_test_power(effect, sd_eff, n_comp, alpha, n_covariates)
        if not np.isfinite(pw):
            raise ParameterError(f"{n_comp:g} completers per arm leave no degrees of freedom")
        return AnalyticPower(solved_for="power", power=pw, n_per_arm=float(n_per_arm),
                             n_completers=n_comp, n_exact=float("nan"), **common)
    if not alpha < power < 1:
        raise ParameterError(f"power must be in (alpha, 1), got {power}")
    lo = 1.5 + n_covariates / 2.0 + 1e-6
    hi = 4.0
    while _t_test_power(effect, sd_eff, hi, alpha, n_covariates) < power:
        hi *= 2.0
        if hi > 1e9:
            raise ParameterError("effect too small: more than 1e9 participants per arm needed")
    n_exact = optimize.brentq(
        lambda n: _t_test_power(effect, sd_eff, n, alpha, n_covariates) - power, lo, hi,
        xtol=1e-10)
    n_comp = _ceil(n_exact)
    return AnalyticPower(solved_for="n",
                         power=_t_test_power(effect, sd_eff, n_comp, alpha, n_covariates),
                         n_per_arm=float(_ceil(n_comp / (1.0 - dropout))),
                         n_completers=float(n_comp), n_exact=float(n_exact), **common)


def power_change_scores(effect: float, sd: float, n_per_arm: float | None = None,
                        power: float | None = None, alpha: float = 0.05,
                        dropout: float = 0.0) -> AnalyticPower:
    """Power or sample size of a two-arm comparison of change scores (two-sample t test).

    Give either ``n_per_arm`` (power is computed) or ``power`` (n is solved for).

    Power of the two-sided pooled-variance t test with *n* completers per arm:

    .. math::

        1 - \\beta = P(T' > t_{1-\\alpha/2, \\nu}) + P(T' < -t_{1-\\alpha/2, \\nu}),\\quad
        T' \\sim t_\\nu(\\lambda),\\ \\nu = 2n - 2,\\ \\lambda = \\frac{\\delta}{\\sigma}\\sqrt{n/2}

    with :math:`\\delta` the difference in mean change and :math:`\\sigma` the SD of change
    scores. If baseline and follow-up share SD :math:`s` and correlate :math:`\\rho`,
    :math:`\\sigma = s\\sqrt{2(1-\\rho)}` (Frison & Pocock 1992). Dropout inflation: enrol
    :math:`n / (1 - d)` per arm; with ``n_per_arm`` given, power uses the expected
    :math:`n(1-d)` completers.

    Parameters
    ----------
    effect : float
        Difference between arms in mean change (outcome units, e.g. degrees).
    sd : float
        SD of the change scores (within arm).
    n_per_arm : float, optional
        Participants enrolled per arm.
    power : float, optional
        Target power (e.g. 0.8).
    alpha : float
        Two-sided significance level.
    dropout : float
        Expected fraction without follow-up, in [0, 1).

    Returns
    -------
    AnalyticPower

    References
    ----------
    Cohen J (1988). Statistical Power Analysis for the Behavioral Sciences, 2nd ed., Table
    2.4.1 (d = 0.5, power 0.8, alpha 0.05: n = 64 per group).
    Frison L, Pocock SJ (1992). Repeated measures in clinical trials. Stat Med 11:1685-1704.

    Examples
    --------
    >>> from hipstats.power import power_change_scores
    >>> res = power_change_scores(effect=5, sd=10, power=0.8, dropout=0.2)
    >>> res.n_completers, res.n_per_arm
    (64.0, 80.0)
    """
    return _solve("change scores t test", effect, sd, sd, n_per_arm, power, alpha, dropout,
                  n_covariates=0)


def power_ancova(effect: float, sd: float, rho: float, n_per_arm: float | None = None,
                 power: float | None = None, alpha: float = 0.05,
                 dropout: float = 0.0) -> AnalyticPower:
    """Power or sample size of a two-arm ANCOVA of follow-up adjusted for baseline.

    Borm, Fransen & Lemmens (2007): if baseline and follow-up correlate :math:`\\rho`, ANCOVA
    on groups of :math:`(1-\\rho^2)n` has the power of a t test on the follow-up scores with
    groups of :math:`n`: the residual SD is :math:`\\sigma\\sqrt{1-\\rho^2}` (design effect
    :math:`1-\\rho^2`). Power is computed as for the t test (see
    :func:`power_change_scores`) with that SD and :math:`\\nu = 2n - 3` df (one covariate),
    which also gives the small-sample correction of slightly more participants than
    :math:`(1-\\rho^2)n`. Dropout inflation :math:`n / (1 - d)`.

    Parameters
    ----------
    effect : float
        Difference between arms in mean follow-up (equivalently mean change) in outcome units.
    sd : float
        SD of the outcome at follow-up (assumed equal to baseline SD), within arm.
    rho : float
        Correlation between baseline and follow-up, in (-1, 1).
    n_per_arm, power, alpha, dropout
        As in :func:`power_change_scores`.

    Returns
    -------
    AnalyticPower

    References
    ----------
    Borm GF, Fransen J, Lemmens WAJG (2007). A simple sample size formula for analysis of
    covariance in randomized clinical trials. J Clin Epidemiol 60:1234-1238.

    Examples
    --------
    >>> from hipstats.power import power_ancova
    >>> res = power_ancova(effect=5, sd=10, rho=0.6, power=0.8)
    >>> round(res.design_effect, 2), res.n_completers
    (0.64, 42.0)
    """
    if not -1 < rho < 1:
        raise ParameterError(f"rho must be in (-1, 1), got {rho}")
    deff = 1.0 - rho * rho
    return _solve("ANCOVA", effect, sd, sd * math.sqrt(deff), n_per_arm, power, alpha, dropout,
                  n_covariates=1, rho=rho)
