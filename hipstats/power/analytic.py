"""Closed-form power and sample size for two-arm comparisons.

* :func:`power_change_scores`: t test on change from baseline;
* :func:`power_ancova`: follow-up adjusted for baseline (design effect :math:`1 - \\rho^2`);

both with dropout inflation, returning an :class:`AnalyticPower`; and for the longitudinal
design, as R's longpower (a :class:`LongitudinalPower` each):

* :func:`power_slope`: difference in mean slopes in the random intercept-and-slope model
  (Diggle et al. 2002; Liu & Liang 1997);
* :func:`power_mmrm`: difference at the last visit in an MMRM with monotone dropout
  (Lu, Luo & Chen 2008).

Examples
--------
>>> from hipstats.power import power_change_scores
>>> round(power_change_scores(effect=5, sd=10, n_per_arm=64).power, 3)
0.801
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from hipstats.errors import ParameterError
from hipstats.results import Result

__all__ = ["AnalyticPower", "power_change_scores", "power_ancova", "LongitudinalPower",
           "power_slope", "power_mmrm", "mmrm_phi"]


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


def _power_by_n_figure(result, n_max: float):
    """Power against participants per arm (the result's :meth:`power_at`), its own size marked."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from hipstats.plots import theme  # noqa: PLC0415

    n0 = float(result.n_per_arm)
    grid = np.unique(np.linspace(max(3.0, n0 / 4), max(n_max, 2 * n0), 60).round())
    with theme():
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(grid, [result.power_at(n) for n in grid], color="#0072B2", lw=2)
        ax.plot([n0], [result.power], "o", color="#D55E00",
                label=f"{n0:g} per arm: power {result.power:.0%}")
        ax.axhline(0.8, color="#999999", lw=1, ls="--")
        ax.set_xlabel("participants per arm")
        ax.set_ylabel("power")
        ax.set_ylim(0, 1)
        ax.legend(frameon=False, loc="lower right")
        fig.tight_layout()
    return fig


@dataclass(frozen=True, repr=False, eq=False)
class AnalyticPower(Result):
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

    _title = "Analytic power (two arms, last visit)"

    def summary(self) -> pd.DataFrame:
        """One-row DataFrame of all fields."""
        return pd.DataFrame([dataclasses.asdict(self)])

    def power_at(self, n_per_arm: float) -> float:
        """Power of the same comparison with *n_per_arm* enrolled per arm (same dropout)."""
        kw = dict(effect=self.effect, sd=self.sd, n_per_arm=float(n_per_arm), alpha=self.alpha,
                  dropout=self.dropout)
        if self.method == "ANCOVA":
            return power_ancova(rho=self.rho, **kw).power
        return power_change_scores(**kw).power

    def plot(self, n_max: float | None = None):
        """Power against participants per arm, this result's size marked.

        Returns
        -------
        matplotlib.figure.Figure
        """
        return _power_by_n_figure(self, n_max or 2 * self.n_per_arm)


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


# ============================================================================================
# longitudinal designs (longpower's lmmpower and power.mmrm)
# ============================================================================================
@dataclass(frozen=True, repr=False, eq=False)
class LongitudinalPower(Result):
    """Result of :func:`power_slope` or :func:`power_mmrm`.

    Attributes
    ----------
    method : str
        ``"diggle"``, ``"liuliang"`` (slopes) or ``"lu-luo-chen"`` (MMRM).
    solved_for : {"power", "n"}
    n_per_arm : float
        Participants to enrol in the (target) arm: given, or ``ceil(n_exact)``.
    n_per_arm_reference : float
        Participants in the reference arm (``n_per_arm / ratio``, rounded up when solved).
    n_exact : float
        Continuous solution of the sample-size formula for the target arm, as longpower
        reports it (``n_per_arm`` when it was given).
    power : float
        Power at ``n_per_arm`` (at least the requested power when solving for n).
    delta, alpha : float
        Difference tested (slope difference per time unit, or mean difference at the last
        visit) and two-sided level.
    variance_factor : float
        The design's variance factor: :math:`\\xi` (slopes; the variance of the
        least-squares slope of one participant) or :math:`\\phi` (MMRM; inflation of the last
        visit's variance by dropout and correlation).
    inputs : dict
        The other inputs, as given.
    """

    method: str
    solved_for: str
    n_per_arm: float
    n_per_arm_reference: float
    n_exact: float
    power: float
    delta: float
    alpha: float
    variance_factor: float
    inputs: dict

    def summary(self) -> pd.DataFrame:
        """One-row DataFrame: method, what was solved for, n per arm, power, delta, alpha."""
        row = {k: getattr(self, k) for k in ("method", "solved_for", "n_per_arm",
                                            "n_per_arm_reference", "n_exact", "power",
                                            "delta", "alpha", "variance_factor")}
        row.update({k: (", ".join(f"{x:g}" for x in np.ravel(v)) if np.ndim(v) else v)
                    for k, v in self.inputs.items()})
        return pd.DataFrame([row])

    @property
    def _title(self) -> str:
        return ("Analytic MMRM power (Lu, Luo & Chen 2008)" if self.method == "lu-luo-chen" else
                f"Analytic slope power ({'Liu & Liang 1997' if self.method == 'liuliang' else 'Diggle et al. 2002'})")

    def power_at(self, n_per_arm: float) -> float:
        """Power of the same design with *n_per_arm* in the target arm (same allocation ratio)."""
        n = float(n_per_arm)
        if self.method == "lu-luo-chen":
            i = self.inputs
            k = len(i["retention"])
            R = np.eye(k)
            R[np.triu_indices(k, 1)] = i["correlation"]
            R = R + np.triu(R, 1).T
            return power_mmrm(self.delta, i["sd"], R, i["retention"], n_per_arm=n, alpha=self.alpha,
                              ratio=i["ratio"], retention_reference=i["retention_reference"]).power
        i = dict(self.inputs)
        return power_slope(self.delta, i.pop("times"), **i, n_per_arm=n, alpha=self.alpha,
                           method=self.method).power

    def plot(self, n_max: float | None = None):
        """Power against participants per arm, this result's size marked.

        Returns
        -------
        matplotlib.figure.Figure
        """
        return _power_by_n_figure(self, n_max or 2 * self.n_per_arm)


def _z_sum(alpha: float, power: float) -> float:
    return float(stats.norm.isf(alpha / 2.0) + stats.norm.ppf(power))


def _power_from_z(z_total: float, alpha: float) -> float:
    """Power of a two-sided z test whose (z_alpha/2 + z_power) equals *z_total* (one tail,
    as longpower)."""
    return float(stats.norm.cdf(z_total - stats.norm.isf(alpha / 2.0)))


def _check_common(delta, alpha, n_per_arm, power):
    if (n_per_arm is None) == (power is None):
        raise ParameterError("give exactly one of n_per_arm and power (the other is solved for)")
    if not (np.isfinite(delta) and delta != 0):
        raise ParameterError(f"delta must be a non-zero number, got {delta}")
    if not 0 < alpha < 1:
        raise ParameterError(f"alpha must be in (0, 1), got {alpha}")
    if power is not None and not alpha / 2 < power < 1:
        raise ParameterError(f"power must be in (alpha/2, 1), got {power}")
    if n_per_arm is not None and not n_per_arm > 0:
        raise ParameterError(f"n_per_arm must be positive, got {n_per_arm}")


def _slope_covariance(times, sd_intercept, sd_slope, sd_residual, cor):
    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ParameterError(f"times must be at least two increasing values, got {list(t)}")
    for name, v in (("sd_intercept", sd_intercept), ("sd_slope", sd_slope)):
        if not v >= 0:
            raise ParameterError(f"{name} must be >= 0, got {v}")
    if not sd_residual > 0:
        raise ParameterError(f"sd_residual must be positive, got {sd_residual}")
    if not -1 <= cor <= 1:
        raise ParameterError(f"cor_intercept_slope must be in [-1, 1], got {cor}")
    cov = cor * sd_intercept * sd_slope
    D = np.array([[sd_intercept**2, cov], [cov, sd_slope**2]])
    X = np.column_stack([np.ones_like(t), t])
    return t, X @ D @ X.T + sd_residual**2 * np.eye(t.size)


def _liu_liang_info(t: np.ndarray, V: np.ndarray) -> float:
    """delta' Sigma_1 delta / delta^2 of Liu & Liang (1997) for the slope difference with
    equal allocation (longpower's lmmpower(method="liuliang") covariates)."""
    k = t.size
    u = [t[:, None], np.zeros((k, 1))]
    v = [np.column_stack([np.ones(k), np.ones(k), t]), np.column_stack([np.ones(k), np.zeros(k), t])]
    Vinv = np.linalg.inv(V)
    pi = (0.5, 0.5)
    Ipl = sum(p * ui.T @ Vinv @ vi for p, ui, vi in zip(pi, u, v))
    Ill_inv = np.linalg.inv(sum(p * vi.T @ Vinv @ vi for p, vi in zip(pi, v)))
    S1 = sum(p * (ui.T - Ipl @ Ill_inv @ vi.T) @ Vinv @ (ui - vi @ Ill_inv @ Ipl.T)
             for p, ui, vi in zip(pi, u, v))
    return float(S1[0, 0])


def power_slope(delta: float, times: Sequence[float], sd_intercept: float, sd_slope: float,
                sd_residual: float, cor_intercept_slope: float = 0.0, *,
                n_per_arm: float | None = None, power: float | None = None,
                alpha: float = 0.05, method: str = "diggle") -> LongitudinalPower:
    """Power or sample size for a difference in mean slopes between two arms.

    The analysis is a linear mixed model with a random intercept and slope per participant,
    every participant measured at ``times``; the test compares the arms' mean slopes. With
    :math:`V = Z D Z' + \\sigma_e^2 I` the covariance of one participant's measurements
    (:math:`Z = [1, t]`, :math:`D` from the intercept and slope SDs and their correlation) and
    :math:`\\xi = [(X'V^{-1}X)^{-1}]_{22}` (:math:`X = [1, t]`), Diggle et al. (2002, p. 29)
    give per arm

    .. math::

        n = \\frac{2 (z_{1-\\alpha/2} + z_{1-\\beta})^2 \\xi}{\\delta^2}

    and power :math:`\\Phi(|\\delta| \\sqrt{n / (2\\xi)} - z_{1-\\alpha/2})`. ``method=
    "liuliang"`` uses the general formula of Liu & Liang (1997) with the covariates of
    longpower's ``lmmpower`` (the same number for this design). Both are normal
    approximations, as in longpower; small trials have slightly less power (t rather than
    normal reference; compare :func:`hipstats.power.simulate_power`).

    Parameters
    ----------
    delta : float
        Difference in mean slope (outcome units per time unit of ``times``).
    times : sequence of float
        Measurement times (same unit as ``delta``'s denominator), increasing.
    sd_intercept, sd_slope, sd_residual : float
        Random intercept SD, random slope SD (per time unit), residual SD.
    cor_intercept_slope : float
        Correlation of random intercept and slope.
    n_per_arm, power : float
        Give exactly one: participants per arm (power is computed) or the target power
        (n is solved for).
    alpha : float
        Two-sided significance level.
    method : {"diggle", "liuliang"}

    Returns
    -------
    LongitudinalPower

    References
    ----------
    Diggle PJ, Heagerty P, Liang K-Y, Zeger SL (2002). Analysis of Longitudinal Data, 2nd ed.
    Oxford University Press, p. 29.
    Liu G, Liang K-Y (1997). Sample size calculations for studies with correlated
    observations. Biometrics 53:937-947.
    Donohue MC, Edland SD. longpower: Power and sample size calculations for linear mixed
    models (R package; ``lmmpower``, ``diggle.linear.power``, ``liu.liang.linear.power``).

    Examples
    --------
    >>> from hipstats.power import power_slope
    >>> res = power_slope(1.5, [0, .25, .5, .75, 1, 1.25, 1.5], sd_intercept=55**.5,
    ...                   sd_slope=24**.5, sd_residual=10**.5, cor_intercept_slope=0.8,
    ...                   power=0.8)
    >>> round(res.n_exact, 2), res.n_per_arm     # longpower's lmmpower example: n = 207.31
    (207.31, 208.0)
    """
    _check_common(delta, alpha, n_per_arm, power)
    if method not in ("diggle", "liuliang"):
        raise ParameterError(f"method must be 'diggle' or 'liuliang', got {method!r}")
    t, V = _slope_covariance(times, sd_intercept, sd_slope, sd_residual, cor_intercept_slope)
    if method == "diggle":
        X = np.column_stack([np.ones_like(t), t])
        xi = float(np.linalg.inv(X.T @ np.linalg.solve(V, X))[1, 1])
    else:
        xi = 1.0 / (4.0 * _liu_liang_info(t, V))  # N = z^2 / (d^2 S1), n = N / 2 = 2 z^2 xi / d^2
    inputs = dict(times=tuple(float(v) for v in t), sd_intercept=float(sd_intercept),
                  sd_slope=float(sd_slope), sd_residual=float(sd_residual),
                  cor_intercept_slope=float(cor_intercept_slope))

    def power_at(n):
        return _power_from_z(abs(delta) * math.sqrt(n / (2.0 * xi)), alpha)

    if power is None:
        n = float(n_per_arm)
        return LongitudinalPower(method, "power", n, n, n, power_at(n), float(delta),
                                 float(alpha), xi, inputs)
    n_exact = 2.0 * _z_sum(alpha, power) ** 2 * xi / delta**2
    n = float(_ceil(n_exact))
    return LongitudinalPower(method, "n", n, n, n_exact, power_at(n), float(delta),
                             float(alpha), xi, inputs)


def _correlation_matrix(correlation, k: int) -> np.ndarray:
    R = np.asarray(correlation, dtype=float)
    if R.ndim == 0:
        r = float(R)
        if not -1 / max(k - 1, 1) < r < 1:
            raise ParameterError(f"an exchangeable correlation for {k} visits must be in "
                                 f"(-1/{k - 1}, 1), got {r}")
        R = np.full((k, k), r)
        np.fill_diagonal(R, 1.0)
    if R.shape != (k, k):
        raise ParameterError(f"correlation must be a number or a {k} x {k} matrix (one row per "
                             f"visit of retention), got shape {R.shape}")
    if not np.allclose(R, R.T) or not np.allclose(np.diag(R), 1.0):
        raise ParameterError("correlation must be a symmetric matrix with ones on the diagonal")
    if np.linalg.eigvalsh(R).min() <= 0:
        raise ParameterError("correlation matrix is not positive definite")
    return R


def _retention(r, k: int | None, name: str) -> np.ndarray:
    r = np.asarray(r, dtype=float)
    if r.ndim != 1 or r.size < 1 or (k is not None and r.size != k):
        raise ParameterError(f"{name} must list the share retained at each visit"
                             + (f" ({k} values)" if k else ""))
    if np.any(r <= 0) or np.any(r > 1) or np.any(np.diff(r) > 0):
        raise ParameterError(f"{name} must be non-increasing shares in (0, 1], got {list(r)}")
    return r


def mmrm_phi(R: np.ndarray, retention: np.ndarray) -> float:
    """Variance inflation :math:`\\phi` of the last visit under monotone dropout (Lu, Luo & Chen
    2008, formula 3): :math:`\\phi = [I^{-1}]_{JJ}`,
    :math:`I = \\sum_j (r_j - r_{j+1}) \\, \\mathrm{pad}(R_{[1:j]}^{-1})`, :math:`r_{J+1} = 0`.

    >>> import numpy as np
    >>> mmrm_phi(np.eye(3), np.array([1.0, 0.9, 0.8]))   # independent visits: 1 / r_J
    1.25
    """
    k = R.shape[0]
    r0 = np.append(retention, 0.0)
    info = np.zeros((k, k))
    for j in range(1, k + 1):
        info[:j, :j] += (r0[j - 1] - r0[j]) * np.linalg.inv(R[:j, :j])
    return float(np.linalg.inv(info)[k - 1, k - 1])


def power_mmrm(delta: float, sd: float, correlation, retention, *,
               n_per_arm: float | None = None, power: float | None = None,
               alpha: float = 0.05, ratio: float = 1.0,
               retention_reference=None) -> LongitudinalPower:
    """Power or sample size of an MMRM comparison at the last visit with monotone dropout.

    Lu, Luo & Chen (2008), as longpower's ``power.mmrm``: with retention :math:`r_j` (share of
    an arm still measured at visit *j*, :math:`r_1 = 1`) and visit correlation matrix
    :math:`R`, the variance of the last-visit mean is inflated by
    :math:`\\phi = [I^{-1}]_{JJ}` (:func:`mmrm_phi`) and

    .. math::

        n_a = \\frac{(\\phi_a + \\lambda \\phi_b)(z_{1-\\alpha/2} + z_{1-\\beta})^2 \\sigma^2}
        {\\delta^2},\\qquad n_b = n_a / \\lambda

    (:math:`\\lambda` = ``ratio`` = :math:`n_a / n_b`); power is the inverse (normal
    approximation, one tail, as longpower).

    Parameters
    ----------
    delta : float
        Difference between arms in mean at the last visit.
    sd : float
        SD of the outcome at the last visit (within arm).
    correlation : float or (k, k) array
        Correlation of the visits; a number means exchangeable (compound symmetry).
    retention : sequence of float
        Share of the (target) arm retained at each of the k visits, first 1, non-increasing.
    n_per_arm, power : float
        Give exactly one: participants enrolled in the target arm, or the target power.
    alpha : float
        Two-sided significance level.
    ratio : float
        Allocation ratio target : reference (longpower's ``lambda``).
    retention_reference : sequence of float, optional
        Retention in the reference arm (default the same as ``retention``).

    Returns
    -------
    LongitudinalPower

    References
    ----------
    Lu K, Luo X, Chen P-Y (2008). Sample size estimation for repeated measures analysis in
    randomized clinical trials with missing data. Int J Biostat 4(1), article 9.

    Examples
    --------
    >>> import numpy as np
    >>> from hipstats.power import power_mmrm
    >>> R = 0.25 ** np.abs(np.subtract.outer(range(4), range(4)))   # AR(1), longpower's example
    >>> res = power_mmrm(0.5, 1, R, [1, .9, .8, .7], power=0.8)
    >>> round(res.n_exact, 2)       # longpower::power.mmrm: n1 = 88.96
    88.96
    """
    _check_common(delta, alpha, n_per_arm, power)
    if not sd > 0:
        raise ParameterError(f"sd must be positive, got {sd}")
    if not ratio > 0:
        raise ParameterError(f"ratio must be positive, got {ratio}")
    ra = _retention(retention, None, "retention")
    rb = ra if retention_reference is None else _retention(retention_reference, ra.size,
                                                           "retention_reference")
    R = _correlation_matrix(correlation, ra.size)
    phi_a, phi_b = mmrm_phi(R, ra), mmrm_phi(R, rb)
    factor = (phi_a + ratio * phi_b) * sd**2  # n_a = factor * z^2 / delta^2
    inputs = dict(sd=float(sd), correlation=tuple(float(x) for x in R[np.triu_indices(ra.size, 1)]),
                  retention=tuple(float(x) for x in ra), retention_reference=tuple(float(x) for x in rb), ratio=float(ratio),
                  phi_target=phi_a, phi_reference=phi_b)

    def power_at(n_a, n_b):
        return _power_from_z(abs(delta) / (sd * math.sqrt(phi_a / n_a + phi_b / n_b)), alpha)

    if power is None:
        n = float(n_per_arm)
        return LongitudinalPower("lu-luo-chen", "power", n, n / ratio, n, power_at(n, n / ratio),
                                 float(delta), float(alpha), phi_a, inputs)
    n_exact = factor * _z_sum(alpha, power) ** 2 / delta**2
    n, n_ref = float(_ceil(n_exact)), float(_ceil(n_exact / ratio))
    return LongitudinalPower("lu-luo-chen", "n", n, n_ref, n_exact, power_at(n, n_ref),
                             float(delta), float(alpha), phi_a, inputs)
