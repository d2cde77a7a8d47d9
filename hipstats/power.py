"""Power and sample size for planning the next hip-mobility trial.

Two kinds of answer:

* **Analytic** power and sample size for the simple two-arm comparisons:
  :func:`power_change_scores` (t test on change from baseline) and :func:`power_ancova`
  (follow-up adjusted for baseline, design effect :math:`1 - \\rho^2`), both with dropout
  inflation.
* **Simulation** power for the longitudinal mixed model of the protocol analysis (H2):
  describe the trial with a :class:`TrialDesign` (arms, visits, participants per arm, dropout,
  assumed effects and variance components, or take them from a pilot fit with
  :meth:`TrialDesign.from_fit`, as R's simr does), then :func:`simulate_power` draws ``n_sim``
  trials, fits the model to each and reports the share of significant week x arm contrasts
  with a Monte Carlo confidence interval. :func:`power_curve` repeats this along participants
  per arm and :func:`power_curve_plot` draws the curve.

Replicates run in parallel processes with joblib (loky) by default, or on a Dask cluster when
a ``dask.distributed`` client or scheduler address is given. Each replicate draws from its own
child of ``numpy.random.SeedSequence(seed)``, so a result depends only on ``seed``, never on
``n_jobs``, chunking or backend.

Examples
--------
>>> from hipstats.power import power_change_scores, TrialDesign, simulate_power
>>> round(power_change_scores(effect=5, sd=10, n_per_arm=64).power, 3)
0.801
>>> design = TrialDesign(arms=("control", "loading"), weeks=(0, 12), n_per_arm=40,
...                      effects={"control": 0, "loading": 6}, sd_intercept=9,
...                      sd_slope=0.0, sd_residual=6)
>>> res = simulate_power(design, test="change", n_sim=200, n_jobs=1)
>>> 0.5 < res.power < 1
True
"""

from __future__ import annotations

import dataclasses
import html
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from hipstats import _power_sim as _sim
from hipstats.errors import AnalysisError, ParameterError

__all__ = [
    "AnalyticPower",
    "power_change_scores",
    "power_ancova",
    "TrialDesign",
    "PowerResult",
    "simulate_power",
    "power_curve",
    "power_curve_plot",
    "run_power_from_params",
]


# ============================================================================================
# analytic power
# ============================================================================================
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


# ============================================================================================
# trial design
# ============================================================================================
def _per_arm(value, arms: Sequence[str], name: str, cast=float) -> dict[str, Any]:
    if isinstance(value, Mapping):
        missing = [a for a in arms if a not in value]
        extra = [k for k in value if k not in arms]
        if missing or extra:
            raise ParameterError(f"{name}: arms {list(arms)} expected, missing {missing}, "
                                 f"unknown {extra}")
        return {a: cast(value[a]) for a in arms}
    return {a: cast(value) for a in arms}


@dataclass(frozen=True)
class TrialDesign:
    """A planned longitudinal trial and the assumptions to simulate it under.

    The generating model, one value per participant and visit (for hipstats cohorts the mean
    of trials and sides at a visit, as the protocol models analyse it):

    .. math::

        y_{ij} = \\mu + m_{a(i)}(t_j) + b_{0i} + b_{1i} t_j + e_{ij}

    with random intercept and slope :math:`(b_{0i}, b_{1i})` (SDs ``sd_intercept``,
    ``sd_slope``, correlation ``corr_intercept_slope``), residual SD ``sd_residual`` and the
    arm's mean change :math:`m_a(t)` from ``effects``. This is the measurement model of
    :func:`hipstats.cohort.simulate.simulate_cohort` collapsed to the analysed value.

    Parameters
    ----------
    arms : sequence of str
        Arm labels; the first is the default reference of the tests.
    weeks : sequence of float
        Visit times in weeks, first = baseline; at least two, increasing.
    n_per_arm : int or dict
        Participants enrolled per arm (one number for all arms, or per arm).
    effects : dict
        Per arm: with ``effect_type="gain"`` the mean change from baseline at the last visit
        (or at plateau with ``plateau_tau_weeks``); with ``effect_type="slope"`` the mean
        change per week. Arms left out of a dict are an error; use 0 for no change.
    effect_type : {"gain", "slope"}
    plateau_tau_weeks : float, optional
        With gains: mean change ``gain * (1 - exp(-t / tau))`` (simulate_cohort's curve)
        instead of a linear ramp to the gain at the last visit.
    baseline_mean : float
        Mean at baseline (does not affect power).
    sd_intercept, sd_slope, corr_intercept_slope, sd_residual : float
        Variance components (outcome units; slope SD per week).
    dropout : float or dict
        Probability per arm of missing follow-up from some visit on (monotone dropout).
    dropout_pattern : "uniform" or sequence of float
        Distribution of the first missed visit over the follow-up visits (weights are
        normalised); ``"uniform"`` gives each follow-up visit the same probability.

    Examples
    --------
    >>> from hipstats.power import TrialDesign
    >>> d = TrialDesign(n_per_arm=60, dropout={"control": .25, "stretching": .2, "loading": .15})
    >>> d.n_total, d.dropout["loading"]
    (180, 0.15)
    """

    arms: tuple[str, ...] = ("control", "stretching", "loading")
    weeks: tuple[float, ...] = (0.0, 3.0, 6.0, 9.0, 12.0)
    n_per_arm: Any = 60
    effects: Any = field(default_factory=lambda: {"control": 0.0, "stretching": 2.0,
                                                  "loading": 6.0})
    effect_type: str = "gain"
    plateau_tau_weeks: float | None = None
    baseline_mean: float = 36.0
    sd_intercept: float = 9.0
    sd_slope: float = 0.15
    corr_intercept_slope: float = 0.0
    sd_residual: float = 3.0
    dropout: Any = 0.0
    dropout_pattern: Any = "uniform"

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        arms = tuple(str(a) for a in self.arms)
        if len(arms) < 2 or len(set(arms)) != len(arms):
            raise ParameterError(f"need at least two distinct arms, got {list(arms)}")
        put("arms", arms)
        weeks = tuple(float(w) for w in self.weeks)
        if len(weeks) < 2 or np.any(np.diff(weeks) <= 0):
            raise ParameterError(f"weeks must be at least two increasing times, got {weeks}")
        put("weeks", weeks)
        n = _per_arm(self.n_per_arm, arms, "n_per_arm", int)
        if min(n.values()) < 2:
            raise ParameterError(f"need at least 2 participants per arm, got {n}")
        put("n_per_arm", n)
        put("effects", _per_arm(self.effects, arms, "effects"))
        if self.effect_type not in ("gain", "slope"):
            raise ParameterError(f"effect_type must be 'gain' or 'slope', got {self.effect_type!r}")
        if self.plateau_tau_weeks is not None and not self.plateau_tau_weeks > 0:
            raise ParameterError("plateau_tau_weeks must be positive")
        for name in ("sd_intercept", "sd_slope"):
            if getattr(self, name) < 0:
                raise ParameterError(f"{name} must be >= 0")
        if not self.sd_residual > 0:
            raise ParameterError("sd_residual must be positive")
        if not -1 <= self.corr_intercept_slope <= 1:
            raise ParameterError("corr_intercept_slope must be in [-1, 1]")
        drop = _per_arm(self.dropout, arms, "dropout")
        if any(not 0 <= v < 1 for v in drop.values()):
            raise ParameterError(f"dropout must be in [0, 1) per arm, got {drop}")
        put("dropout", drop)
        k = len(weeks) - 1
        if isinstance(self.dropout_pattern, str):
            if self.dropout_pattern != "uniform":
                raise ParameterError("dropout_pattern must be 'uniform' or weights per "
                                     "follow-up visit")
        else:
            w = np.asarray(self.dropout_pattern, dtype=float)
            if w.shape != (k,) or np.any(w < 0) or w.sum() <= 0:
                raise ParameterError(f"dropout_pattern needs {k} non-negative weights "
                                     "(one per follow-up visit)")
            put("dropout_pattern", tuple(float(v) for v in w))

    # -- derived ---------------------------------------------------------------------------
    @property
    def n_total(self) -> int:
        """Participants enrolled in all arms."""
        return int(sum(self.n_per_arm.values()))

    @property
    def dropout_weights(self) -> tuple[float, ...]:
        """Probabilities of the first missed visit over the follow-up visits."""
        k = len(self.weeks) - 1
        if self.dropout_pattern == "uniform":
            return (1.0 / k,) * k
        w = np.asarray(self.dropout_pattern)
        return tuple(float(v) for v in w / w.sum())

    def mean_change(self) -> pd.DataFrame:
        """Mean change from baseline per arm (rows) and week (columns)."""
        return pd.DataFrame(_sim.mean_trajectories(self), index=list(self.arms),
                            columns=list(self.weeks))

    def true_contrast(self, test: str, target: str, reference: str) -> float:
        """The value the test estimates under this design.

        ``"arm:week"``: difference in least-squares slope over the visits (equal to the slope
        difference when change is linear); ``"change"`` / ``"ancova"``: difference in mean
        change at the last visit.
        """
        m = self.mean_change()
        if test == "arm:week":
            t = np.asarray(self.weeks) - self.weeks[0]
            tc = t - t.mean()
            slope = (m.to_numpy() @ tc) / (tc @ tc)
            return float(slope[self.arms.index(target)] - slope[self.arms.index(reference)])
        return float(m.iloc[self.arms.index(target), -1] - m.iloc[self.arms.index(reference), -1])

    def endpoint_moments(self) -> pd.Series:
        """SDs and correlation of baseline and last visit implied by the variance components.

        With :math:`T` the time from baseline to the last visit,
        :math:`\\mathrm{Var}(y_0) = \\sigma_0^2 + \\sigma_e^2`,
        :math:`\\mathrm{Var}(y_T) = \\sigma_0^2 + 2 r \\sigma_0 \\sigma_1 T + \\sigma_1^2 T^2
        + \\sigma_e^2`, :math:`\\mathrm{Cov} = \\sigma_0^2 + r \\sigma_0 \\sigma_1 T`. These are
        the ``sd`` and ``rho`` inputs of :func:`power_change_scores` (``sd_change``) and
        :func:`power_ancova` (``sd_follow_up``, ``rho``) for the last-visit analyses.

        Returns
        -------
        Series
            sd_baseline, sd_follow_up, rho, sd_change.

        Examples
        --------
        >>> from hipstats.power import TrialDesign
        >>> m = TrialDesign(sd_intercept=8, sd_slope=0, sd_residual=6).endpoint_moments()
        >>> round(float(m["rho"]), 2), round(float(m["sd_change"]), 2)
        (0.64, 8.49)
        """
        t = self.weeks[-1] - self.weeks[0]
        s0, s1, r, se = (self.sd_intercept, self.sd_slope, self.corr_intercept_slope,
                         self.sd_residual)
        v0 = s0 * s0 + se * se
        c01 = s0 * s0 + r * s0 * s1 * t
        v1 = s0 * s0 + 2 * r * s0 * s1 * t + s1 * s1 * t * t + se * se
        return pd.Series({"sd_baseline": math.sqrt(v0), "sd_follow_up": math.sqrt(v1),
                          "rho": c01 / math.sqrt(v0 * v1),
                          "sd_change": math.sqrt(v0 + v1 - 2 * c01)})

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrialDesign:
        """Design from flat parameters as the command line and notebooks give them.

        Lists may be strings (``"0,3,6,9,12"``), per-arm values ``"control=0,loading=6"``
        or ``"control:0,loading:6"``;
        the keys are the field names (aliases ``corr``, ``tau``, ``visits``). Keys that are
        not design fields are ignored, ``None`` values too.

        Examples
        --------
        >>> from hipstats.power import TrialDesign
        >>> d = TrialDesign.from_params({"arms": "control,loading", "weeks": "0,6,12",
        ...                              "effects": "control=0,loading=6", "n_per_arm": "40"})
        >>> d.weeks, d.n_total
        ((0.0, 6.0, 12.0), 80)
        """
        d, _, sizes = _split_params(params)
        return cls(n_per_arm=sizes[0], **d)

    def with_n(self, n_per_arm) -> TrialDesign:
        """Copy with another number of participants per arm."""
        return dataclasses.replace(self, n_per_arm=n_per_arm)

    def simulate(self, seed=0) -> pd.DataFrame:
        """One simulated trial as a tidy frame (participant_id, arm, week, value).

        Examples
        --------
        >>> from hipstats.power import TrialDesign
        >>> TrialDesign(n_per_arm=10).simulate(seed=1).shape
        (150, 4)
        """
        rng = np.random.default_rng(seed)
        y, arm = _sim.generate(self, rng)
        return _sim.to_long(y, arm, self.weeks, self.arms)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the design (JSON-friendly)."""
        return dataclasses.asdict(self)

    # -- from a pilot fit ---------------------------------------------------------------------
    @classmethod
    def from_fit(cls, fit, *, arms: Sequence[str], weeks: Sequence[float], n_per_arm=60,
                 effects: Mapping[str, float] | None = None, time: str = "week",
                 arm: str = "arm", dropout=0.0, dropout_pattern="uniform",
                 effect_type: str = "slope", plateau_tau_weeks: float | None = None,
                 scale_slope_sd: float = 1.0) -> TrialDesign:
        """Design whose variance components (and, unless given, effects) come from a pilot fit.

        As simr's ``extend()``/``powerSim`` do, the fitted model of a pilot cohort supplies the
        random intercept SD, random slope SD, their correlation and the residual SD; the
        per-arm slopes are read from the fixed effects ``<time>`` and the
        ``<time> x <arm>`` interaction terms (treatment coding against the pilot's reference
        arm) unless ``effects`` is given. Effects taken from a pilot are slopes per week.

        Parameters
        ----------
        fit : LMMResult or statsmodels MixedLMResults
            Random intercept-and-slope fit, e.g. ``fit_lmm("value ~ week * arm", data,
            groups="participant_id", re_formula="1 + week")``.
        arms, weeks, n_per_arm, dropout, dropout_pattern
            The planned trial (see :class:`TrialDesign`).
        effects : dict, optional
            Per-arm effects (interpreted with ``effect_type``); default the per-arm slopes
            (change per week) from the fit's fixed effects. Pilot effect estimates are noisy:
            planning usually keeps the pilot's variance components but states the effect
            that matters clinically.
        effect_type : {"slope", "gain"}
            Meaning of a given ``effects`` (see :class:`TrialDesign`); ignored when the
            effects come from the fit (always slopes).
        plateau_tau_weeks : float, optional
            With gains: plateau curve (see :class:`TrialDesign`).
        time, arm : str
            Names of the time and arm variables in the fit's formula.
        scale_slope_sd : float
            Multiplier on the pilot's slope SD (sensitivity analysis).

        Examples
        --------
        >>> from hipstats.models.lmm import fit_lmm
        >>> from hipstats.power import TrialDesign
        >>> pilot = TrialDesign(arms=("control", "loading"), n_per_arm=40, sd_slope=0.5,
        ...                     effects={"control": 0, "loading": 6}).simulate(seed=1)
        >>> fit = fit_lmm("value ~ week * arm", pilot, groups="participant_id",
        ...               re_formula="1 + week")
        >>> d = TrialDesign.from_fit(fit, arms=("control", "loading"), weeks=(0, 6, 12))
        >>> d.effect_type, round(d.effects["loading"] - d.effects["control"], 1)
        ('slope', 0.5)
        """
        cov, resid_var = _variance_components(fit, time)
        sd0, sd1 = math.sqrt(max(cov[0, 0], 0.0)), math.sqrt(max(cov[1, 1], 0.0))
        corr = float(cov[0, 1] / (sd0 * sd1)) if sd0 > 0 and sd1 > 0 else 0.0
        fe = _fixed_effects(fit)
        if effects is None:
            effects, effect_type = _slopes_from_fixed_effects(fe, arms, time, arm), "slope"
        intercept = float(fe.get("Intercept", fe.iloc[0]))
        return cls(arms=tuple(arms), weeks=tuple(weeks), n_per_arm=n_per_arm,
                   effects=dict(effects), effect_type=effect_type,
                   plateau_tau_weeks=plateau_tau_weeks, baseline_mean=intercept,
                   sd_intercept=sd0, sd_slope=sd1 * scale_slope_sd,
                   corr_intercept_slope=float(np.clip(corr, -1, 1)),
                   sd_residual=math.sqrt(resid_var), dropout=dropout,
                   dropout_pattern=dropout_pattern)

    @classmethod
    def from_cohort(cls, cohort, measure: str = "hip_ir_deg", *, n_per_arm=60,
                    weeks: Sequence[float] | None = None,
                    effects: Mapping[str, float] | None = None, effect_type: str = "gain",
                    plateau_tau_weeks: float | None = None, dropout="observed",
                    dropout_pattern="uniform", pelvis: str | None = "free",
                    scale_slope_sd: float = 1.0) -> TrialDesign:
        """Design whose variance components (and dropout) come from a pilot cohort.

        The cohort's outcome (mean of trials and sides per participant and visit, as the
        protocol model analyses it; :meth:`hipstats.Cohort.analysis_frame`) is fitted with
        :func:`hipstats.models.lmm.fit_lmm` (``value ~ week * arm``, random intercept and slope
        per participant, REML) and :meth:`TrialDesign.from_fit` takes the variance components.

        Parameters
        ----------
        cohort : hipstats.Cohort
            Pilot cohort.
        measure : str
            Outcome measure, e.g. ``"hip_ir_deg"`` or ``"aslr_deg"``.
        n_per_arm : int or dict
            Planned participants per arm.
        weeks : sequence of float, optional
            Planned visits; default the cohort's scheduled visits (median week, rounded to
            whole weeks).
        effects : dict, optional
            Assumed effects per arm (``effect_type``); default the pilot's fitted slopes.
        effect_type, plateau_tau_weeks, dropout_pattern, scale_slope_sd
            See :class:`TrialDesign` and :meth:`TrialDesign.from_fit`.
        dropout : "observed", float or dict
            ``"observed"``: per arm, the share of the pilot's randomised participants without a
            value at the last scheduled visit.
        pelvis : str or None
            Pelvic condition of the outcome (see :meth:`hipstats.Cohort.outcomes`).

        Returns
        -------
        TrialDesign

        Examples
        --------
        >>> from hipstats.cohort.simulate import simulate_cohort
        >>> from hipstats.power import TrialDesign
        >>> pilot = simulate_cohort(n_participants=60, seed=2)
        >>> d = TrialDesign.from_cohort(pilot, "hip_ir_deg", n_per_arm=40,
        ...                             effects={"control": 0, "stretching": 2, "loading": 6})
        >>> d.weeks, d.n_total
        ((0.0, 3.0, 6.0, 9.0, 12.0), 120)
        """
        import warnings

        from hipstats.models.lmm import fit_lmm

        frame = cohort.analysis_frame(measure, pelvis=pelvis)
        pv = (frame.groupby(["participant_id", "visit"], observed=True, as_index=False)
              .agg(arm=("arm", "first"), week=("week", "mean"), value=("value", "mean")))
        arms = [str(a) for a in cohort.arms]
        ref = str(cohort.reference_arm) if cohort.reference_arm in arms else arms[0]
        pv["arm"] = pd.Categorical(pv["arm"].astype(str), categories=arms)
        with warnings.catch_warnings():
            # a singular pilot fit still gives usable components (slope SD ~ 0)
            warnings.simplefilter("ignore", UserWarning)
            fit = fit_lmm(f"value ~ week * C(arm, Treatment({ref!r}))", pv,
                          groups="participant_id", re_formula="1 + week")
        sched = cohort.schedule()
        sched = sched[sched["scheduled"]]
        if weeks is None:
            weeks = tuple(float(w) for w in np.round(sched["week"].to_numpy(dtype=float)))
        if isinstance(dropout, str):
            if dropout != "observed":
                raise ParameterError("dropout must be 'observed', a number or a dict per arm")
            last = set(pv.loc[pv["visit"] == sched["visit"].iloc[-1], "participant_id"])
            parts = cohort.participants[["participant_id", "arm"]].astype({"arm": str})
            dropout = {a: float(1 - parts.loc[parts["arm"] == a, "participant_id"]
                                .isin(last).mean()) for a in arms}
        return cls.from_fit(fit, arms=arms, weeks=weeks, n_per_arm=n_per_arm, effects=effects,
                            effect_type=effect_type, plateau_tau_weeks=plateau_tau_weeks,
                            dropout=dropout, dropout_pattern=dropout_pattern,
                            scale_slope_sd=scale_slope_sd)


def _fixed_effects(fit) -> pd.Series:
    fe = getattr(fit, "fe_params", None)
    if fe is None:
        raise AnalysisError("the fit has no fe_params (fixed effects)")
    return pd.Series(fe)


def _variance_components(fit, time: str) -> tuple[np.ndarray, float]:
    """(2x2 intercept/slope covariance, residual variance) from an LMMResult or MixedLM fit."""
    cov = getattr(fit, "cov_re", None)
    if cov is None:
        raise AnalysisError("the fit exposes no random-effects covariance (cov_re)")
    cov_df = cov if isinstance(cov, pd.DataFrame) else pd.DataFrame(np.atleast_2d(cov))
    if cov_df.shape != (2, 2):
        raise AnalysisError("TrialDesign.from_fit needs a random intercept and slope fit "
                            f"(re_formula='1 + {time}'), got a {cov_df.shape[0]}-term "
                            "random-effects covariance")
    if time in map(str, cov_df.index):
        order = [i for i in cov_df.index if str(i) != time] + [time]
        cov_df = cov_df.loc[order, order]
    for name in ("scale", "sigma2", "resid_var"):
        v = getattr(fit, name, None)
        if v is not None and np.isscalar(v):
            return cov_df.to_numpy(dtype=float), float(v)
    raise AnalysisError("the fit exposes no residual variance (scale)")


def _slopes_from_fixed_effects(fe: pd.Series, arms: Sequence[str], time: str, arm: str
                               ) -> dict[str, float]:
    if time not in fe.index:
        raise AnalysisError(f"the fit has no fixed effect {time!r}; pass effects=")
    base = float(fe[time])
    out = {}
    for a in arms:
        hits = [k for k in fe.index if time in str(k).split(":") and ":" in str(k)
                and str(k).replace(time, "").strip(":").endswith(f"[T.{a}]")]
        out[a] = base + (float(fe[hits[0]]) if hits else 0.0)
    n_ref = sum(1 for a in arms if not any(
        str(k).endswith(f"[T.{a}]") or f"[T.{a}]:" in str(k) for k in fe.index))
    if n_ref != 1:
        raise AnalysisError(f"cannot match arms {list(arms)} to the fit's terms "
                            f"{list(map(str, fe.index))}; pass effects=")
    return out


# ============================================================================================
# simulation power
# ============================================================================================
def _binomial_ci(k: int, n: int, level: float, method: str) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level,
                                             method={"clopper-pearson": "exact",
                                                     "wilson": "wilson"}[method])
    return float(ci.low), float(ci.high)


@dataclass(frozen=True, repr=False, eq=False)
class PowerResult:
    """Simulated power of one design and test (see :func:`simulate_power`).

    Attributes
    ----------
    power : float
        Share of successfully fitted replicates with p < alpha.
    ci_low, ci_high : float
        Monte Carlo confidence interval of the power (``ci_method``, level ``ci_level``).
    n_sim, n_failed, n_warned : int
        Replicates run; replicates whose fit failed (excluded from ``power``); replicates
        fitted with a convergence warning (included).
    true_effect : float
        The contrast the test estimates under the design (see
        :meth:`TrialDesign.true_contrast`).
    replicates : DataFrame
        One row per replicate: estimate, se, df, p_value, status (0 ok, 1 warned, 2 failed),
        rejected.

    Examples
    --------
    >>> from hipstats.power import TrialDesign, simulate_power
    >>> d = TrialDesign(arms=("control", "loading"), weeks=(0, 12), n_per_arm=20,
    ...                 effects={"control": 0, "loading": 0}, sd_slope=0)
    >>> res = simulate_power(d, test="change", n_sim=400, n_jobs=1, seed=3)
    >>> abs(res.power - 0.05) < 3 * res.mc_se + 0.01   # type I error under no effect
    True
    >>> list(res.summary().columns[:4])
    ['test', 'contrast', 'df', 'n_per_arm']
    """

    power: float
    ci_low: float
    ci_high: float
    ci_method: str
    ci_level: float
    n_sim: int
    n_failed: int
    n_warned: int
    n_rejected: int
    alpha: float
    test: str
    df: str
    target: str
    reference: str
    true_effect: float
    seed: Any
    backend: str
    elapsed_s: float
    design: TrialDesign
    replicates: pd.DataFrame

    @property
    def mc_se(self) -> float:
        """Monte Carlo standard error sqrt(p(1-p)/n) of the power estimate."""
        n = self.n_sim - self.n_failed
        return math.sqrt(self.power * (1 - self.power) / n) if n else float("nan")

    def summary(self) -> pd.DataFrame:
        """One-row DataFrame: test, contrast, true effect, mean estimate, power and its CI."""
        ok = self.replicates[self.replicates["status"] < _sim.FAILED]
        return pd.DataFrame([{
            "test": self.test,
            "contrast": f"{self.target} - {self.reference}",
            "df": self.df,
            "n_per_arm": ", ".join(str(v) for v in self.design.n_per_arm.values()),
            "true_effect": self.true_effect,
            "mean_estimate": float(ok["estimate"].mean()) if len(ok) else float("nan"),
            "power": self.power,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "mc_se": self.mc_se,
            "alpha": self.alpha,
            "n_sim": self.n_sim,
            "n_failed": self.n_failed,
            "n_warned": self.n_warned,
        }])

    def to_frame(self) -> pd.DataFrame:
        """Per-replicate results (copy)."""
        return self.replicates.copy()

    def plot(self, ax=None):
        """Histogram of the replicate estimates, true effect marked, rejected ones shaded.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        from hipstats.plots.style import theme

        ok = self.replicates[self.replicates["status"] < _sim.FAILED]
        with theme():
            if ax is None:
                fig, ax = plt.subplots(figsize=(6, 4))
            else:
                fig = ax.figure
            bins = np.histogram_bin_edges(ok["estimate"], bins="auto")
            ax.hist(ok.loc[~ok["rejected"], "estimate"], bins=bins, color="#999999",
                    label="not significant")
            ax.hist(ok.loc[ok["rejected"], "estimate"], bins=bins, color="#0072B2",
                    alpha=0.8, label=f"p < {self.alpha:g} ({self.power:.0%})")
            ax.axvline(self.true_effect, color="#D55E00", lw=2, label="true effect")
            unit = " per week" if self.test == "arm:week" else ""
            ax.set_xlabel(f"estimated {self.target} - {self.reference}{unit}")
            ax.set_ylabel("replicates")
            ax.legend(frameon=False)
        return fig

    def __repr__(self) -> str:
        return (f"PowerResult(power={self.power:.3f}, {self.ci_level:.0%} CI "
                f"[{self.ci_low:.3f}, {self.ci_high:.3f}], test={self.test!r}, "
                f"{self.target} - {self.reference}, n_sim={self.n_sim}, "
                f"failed={self.n_failed})")

    def _repr_html_(self) -> str:
        head = (f"<p><b>Simulated power {self.power:.1%}</b> "
                f"({self.ci_level:.0%} {html.escape(self.ci_method)} CI {self.ci_low:.1%} to "
                f"{self.ci_high:.1%}) for the {html.escape(self.test)} contrast "
                f"{html.escape(self.target)} - {html.escape(self.reference)}, "
                f"{self.n_sim} replicates ({self.n_failed} failed), seed {self.seed}.</p>")
        return head + self.summary().to_html(index=False, float_format=lambda v: f"{v:.4g}")


def _resolve_jobs(n_jobs: int) -> int:
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        import os

        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return int(n_jobs)


def _options(design: TrialDesign, test, target, reference, df, random_slopes, engine):
    if test not in _sim.TESTS:
        raise ParameterError(f"test must be one of {_sim.TESTS}, got {test!r}")
    if df not in _sim.DF_METHODS:
        raise ParameterError(f"df must be one of {_sim.DF_METHODS}, got {df!r}")
    if engine not in _sim.ENGINES:
        raise ParameterError(f"engine must be one of {_sim.ENGINES}, got {engine!r}")
    target = design.arms[-1] if target is None else str(target)
    reference = design.arms[0] if reference is None else str(reference)
    for name, a in (("target", target), ("reference", reference)):
        if a not in design.arms:
            raise ParameterError(f"{name} arm {a!r} is not one of {list(design.arms)}")
    if target == reference:
        raise ParameterError("target and reference arms must differ")
    if engine == "statsmodels" and test == "arm:week" and df != "wald":
        raise ParameterError("the statsmodels engine has no Satterthwaite df; use df='wald'")
    if random_slopes is None:
        random_slopes = len(design.weeks) > 2
    if random_slopes and len(design.weeks) < 3:
        raise ParameterError("a random slope needs at least three visits")
    return dict(test=test, target=target, reference=reference, df=df,
                random_slopes=bool(random_slopes), engine=engine)


def simulate_power(design: TrialDesign, *, test: str = "arm:week", target: str | None = None,
                   reference: str | None = None, df: str = "satterthwaite",
                   alpha: float = 0.05, n_sim: int = 1000, seed: int = 0, n_jobs: int = -1,
                   client=None, chunk_size: int = 50, random_slopes: bool | None = None,
                   engine: str = "hipstats", ci_method: str = "clopper-pearson",
                   ci_level: float = 0.95) -> PowerResult:
    """Power of a trial design by simulation: draw, fit, test, repeat.

    Each replicate draws one trial from ``design`` (see :class:`TrialDesign`), fits the
    analysis model and tests the contrast of ``target`` vs ``reference`` at level ``alpha``;
    power is the share of replicates with p < alpha, with a binomial Monte Carlo CI.

    The tests (``test=``):

    ``"arm:week"`` (default)
        Linear mixed model ``value ~ week * arm`` (REML, treatment coding, all arms, all
        observed visits, so dropouts contribute their early visits) with a random intercept
        and slope per participant (intercept only with ``random_slopes=False``; default: slope
        when there are three or more visits). The test is the difference in mean slope
        (deg/week) between ``target`` and ``reference``, the ``week x arm`` coefficient,
        :math:`t = \\hat\\beta / SE` with Satterthwaite df (``df="satterthwaite"``, as
        lmerTest) or a normal reference (``df="wald"``).
    ``"change"``
        Pooled two-sample t test of change from first to last visit, completers of the two
        arms (matches :func:`power_change_scores`).
    ``"ancova"``
        OLS of the last visit on baseline and arm, completers of the two arms (matches
        :func:`power_ancova`).

    Parameters
    ----------
    design : TrialDesign
    test : {"arm:week", "change", "ancova"}
    target, reference : str, optional
        Arms compared; default the last and first of ``design.arms``.
    df : {"satterthwaite", "wald"}
        Reference distribution of the mixed-model test.
    alpha : float
        Two-sided level.
    n_sim : int
        Replicates.
    seed : int or numpy.random.SeedSequence
        Root seed; replicate *r* uses child *r* of ``SeedSequence(seed).spawn(n_sim)``.
    n_jobs : int
        joblib processes (loky); -1 all cores, 1 in this process.
    client : distributed.Client or str, optional
        Run on a Dask cluster (a client or a scheduler address such as
        ``"tcp://10.0.0.5:8786"``) instead of joblib.
    chunk_size : int
        Replicates per task (amortises scheduling overhead); does not change results.
    random_slopes : bool, optional
        Random slope in the analysis model (``"arm:week"`` only).
    engine : {"hipstats", "statsmodels"}
        Mixed-model engine: :func:`hipstats.models.lmm.fit_lmm` or statsmodels MixedLM
        (slow, Wald df only; for comparison). The hipstats engine fits each replicate's
        design arrays directly (no formula parsing; the same optimiser, convergence check
        and Satterthwaite df as ``fit_lmm``), starting the optimiser at the design's true
        variance components; see ``benchmarks/results/power.md`` for replicates per second.
    ci_method : {"clopper-pearson", "wilson"}
    ci_level : float

    Returns
    -------
    PowerResult

    Notes
    -----
    Replicates whose fit fails (an exception or a non-finite SE) are excluded from the power
    and counted in ``n_failed``; a warning is issued when any fail. Fits that converge with a
    warning are kept and counted in ``n_warned``.

    References
    ----------
    Green P, MacLeod CJ (2016). SIMR: an R package for power analysis of generalized linear
    mixed models by simulation. Methods Ecol Evol 7:493-498.
    Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package: tests in linear
    mixed effects models. J Stat Softw 82(13).

    Examples
    --------
    >>> from hipstats.power import TrialDesign, simulate_power
    >>> d = TrialDesign(arms=("control", "loading"), weeks=(0, 12), n_per_arm=30,
    ...                 effects={"control": 0, "loading": 5}, sd_slope=0, sd_residual=6)
    >>> res = simulate_power(d, test="ancova", n_sim=100, n_jobs=1, seed=1)
    >>> res.n_sim, res.n_failed
    (100, 0)
    """
    if not isinstance(design, TrialDesign):
        raise ParameterError("design must be a TrialDesign")
    opts = _options(design, test, target, reference, df, random_slopes, engine)
    if int(n_sim) < 1:
        raise ParameterError("n_sim must be at least 1")
    if not 0 < alpha < 1:
        raise ParameterError(f"alpha must be in (0, 1), got {alpha}")
    if ci_method not in ("clopper-pearson", "wilson"):
        raise ParameterError("ci_method must be 'clopper-pearson' or 'wilson'")
    t0 = time.perf_counter()
    arr, backend = _sim.run_replicates(design, opts, n_sim=int(n_sim), seed=seed,
                                       n_jobs=_resolve_jobs(n_jobs), client=client,
                                       chunk_size=max(1, int(chunk_size)))
    elapsed = time.perf_counter() - t0
    return _make_result(arr, design, opts, alpha=alpha, seed=seed, backend=backend,
                        elapsed=elapsed, ci_method=ci_method, ci_level=ci_level)


def _seed_label(seed):
    if isinstance(seed, np.random.SeedSequence):
        return f"SeedSequence(entropy={seed.entropy}, spawn_key={tuple(seed.spawn_key)})"
    return seed


def _make_result(arr, design, opts, *, alpha, seed, backend, elapsed, ci_method, ci_level
                 ) -> PowerResult:
    reps = pd.DataFrame(arr, columns=list(_sim.REPLICATE_COLUMNS))
    reps["status"] = reps["status"].astype(int)
    ok = reps["status"] < _sim.FAILED
    reps["rejected"] = ok & (reps["p_value"] < alpha)
    reps.insert(0, "replicate", np.arange(len(reps)))
    n_ok, n_rej = int(ok.sum()), int(reps["rejected"].sum())
    n_failed = len(reps) - n_ok
    if n_failed:
        import warnings

        warnings.warn(f"{n_failed} of {len(reps)} replicate fits failed and were excluded "
                      "from the power estimate", RuntimeWarning, stacklevel=3)
    if n_ok == 0:
        raise AnalysisError("every replicate fit failed; the design cannot support the test "
                            f"{opts['test']!r} (check n_per_arm, visits and dropout)")
    lo, hi = _binomial_ci(n_rej, n_ok, ci_level, ci_method)
    return PowerResult(
        power=n_rej / n_ok, ci_low=lo, ci_high=hi, ci_method=ci_method, ci_level=ci_level,
        n_sim=len(reps), n_failed=n_failed, n_warned=int((reps["status"] == _sim.WARNED).sum()),
        n_rejected=n_rej, alpha=alpha, test=opts["test"],
        df=opts["df"] if opts["test"] == "arm:week" else "residual", target=opts["target"],
        reference=opts["reference"],
        true_effect=design.true_contrast(opts["test"], opts["target"], opts["reference"]),
        seed=_seed_label(seed), backend=backend, elapsed_s=elapsed,
        design=design, replicates=reps)


def power_curve(design: TrialDesign, n_per_arm: Sequence[int], **kwargs) -> pd.DataFrame:
    """Simulated power along participants per arm.

    Runs :func:`simulate_power` once per value of ``n_per_arm`` (the same number in every
    arm), with independent seeds spawned from ``seed`` (point *i* uses child *i* of
    ``SeedSequence(seed).spawn(len(n_per_arm))``).

    Parameters
    ----------
    design : TrialDesign
        Everything but the size.
    n_per_arm : sequence of int
        Participants enrolled per arm at each point.
    **kwargs
        Passed on to :func:`simulate_power` (test, target, reference, alpha, n_sim, seed,
        n_jobs, client, ...).

    Returns
    -------
    DataFrame
        One row per point: n_per_arm, n_total, power, ci_low, ci_high, mc_se, n_sim,
        n_failed, true_effect, test, target, reference, alpha. Draw it with
        :func:`power_curve_plot`.

    Examples
    --------
    >>> from hipstats.power import TrialDesign, power_curve
    >>> d = TrialDesign(arms=("control", "loading"), weeks=(0, 12),
    ...                 effects={"control": 0, "loading": 5}, sd_slope=0, sd_residual=6)
    >>> curve = power_curve(d, [10, 40], test="change", n_sim=100, n_jobs=1)
    >>> list(curve["n_per_arm"])
    [10, 40]
    """
    ns = [int(n) for n in n_per_arm]
    if not ns:
        raise ParameterError("n_per_arm must list at least one size")
    seed = kwargs.pop("seed", 0)
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rows = []
    for n, child in zip(ns, root.spawn(len(ns))):
        res = simulate_power(design.with_n(n), seed=child, **kwargs)
        rows.append({"n_per_arm": n, "n_total": res.design.n_total, "power": res.power,
                     "ci_low": res.ci_low, "ci_high": res.ci_high, "mc_se": res.mc_se,
                     "n_sim": res.n_sim, "n_failed": res.n_failed,
                     "true_effect": res.true_effect, "test": res.test, "target": res.target,
                     "reference": res.reference, "alpha": res.alpha})
    return pd.DataFrame(rows)


def power_curve_plot(curve: pd.DataFrame, *, target_power: float | None = 0.8, ax=None):
    """Draw a power curve from :func:`power_curve` with its Monte Carlo CI band.

    Parameters
    ----------
    curve : DataFrame
        Output of :func:`power_curve`.
    target_power : float, optional
        Horizontal reference line (e.g. 0.8), and the smallest size reaching it is marked.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.power import power_curve_plot
    >>> curve = pd.DataFrame({"n_per_arm": [20, 40], "power": [.5, .8], "ci_low": [.45, .75],
    ...                       "ci_high": [.55, .85], "target": "loading",
    ...                       "reference": "control", "test": "arm:week"})
    >>> fig = power_curve_plot(curve)
    """
    import matplotlib.pyplot as plt

    from hipstats.plots.style import arm_palette, theme

    need = {"n_per_arm", "power", "ci_low", "ci_high"}
    if not need <= set(curve.columns):
        raise ParameterError(f"curve needs columns {sorted(need)}")
    d = curve.sort_values("n_per_arm")
    color = "#0072B2"
    if "target" in d:
        color = arm_palette([str(d["target"].iloc[0])])[str(d["target"].iloc[0])]
    with theme():
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        else:
            fig = ax.figure
        ax.fill_between(d["n_per_arm"], d["ci_low"], d["ci_high"], color=color, alpha=0.2,
                        lw=0, label="95% Monte Carlo CI")
        ax.plot(d["n_per_arm"], d["power"], marker="o", color=color, label="simulated power")
        if target_power is not None:
            ax.axhline(target_power, color="0.4", ls="--", lw=1)
            reached = d[d["power"] >= target_power]
            if len(reached):
                n0 = int(reached["n_per_arm"].iloc[0])
                ax.axvline(n0, color="0.4", ls=":", lw=1)
                ax.annotate(f"{target_power:.0%} at n = {n0} per arm", (n0, target_power),
                            xytext=(6, -14), textcoords="offset points", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("participants per arm (enrolled)")
        ax.set_ylabel("power")
        if {"target", "reference", "test"} <= set(d.columns):
            ax.set_title(f"{d['test'].iloc[0]}: {d['target'].iloc[0]} vs "
                         f"{d['reference'].iloc[0]}")
        ax.legend(loc="lower right", frameon=False)
    return fig


# ============================================================================================
# command line entry
# ============================================================================================
_DESIGN_KEYS = {f.name for f in dataclasses.fields(TrialDesign)}
_SIM_KEYS = {"test", "target", "reference", "df", "alpha", "n_sim", "seed", "n_jobs",
             "client", "chunk_size", "random_slopes", "engine", "ci_method", "ci_level"}
_ALIASES = {"jobs": "n_jobs", "scheduler": "client", "corr": "corr_intercept_slope",
            "tau": "plateau_tau_weeks", "visits": "weeks"}
_ANALYTIC = {"change": power_change_scores, "ancova": power_ancova}


def _parse_list(value, cast=str):
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",") if v.strip()]
    return [cast(v.strip()) if isinstance(v, str) else cast(v) for v in value]


def _parse_mapping(value) -> dict[str, float]:
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    out = {}
    for item in _parse_list(value):
        sep = "=" if "=" in item else ":"
        if sep not in item:
            raise ParameterError(f"expected arm=value (or arm:value) pairs, got {item!r}")
        k, v = item.split(sep, 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise ParameterError(f"{item!r}: {v.strip()!r} is not a number") from None
    return out


def _normalise_keys(params: Mapping[str, Any]) -> dict[str, Any]:
    return {_ALIASES.get(k.replace("-", "_"), k.replace("-", "_")): v
            for k, v in params.items() if v is not None}


def _split_params(params: Mapping[str, Any]):
    """(design kwargs without n_per_arm, simulate_power kwargs, list of sizes)."""
    p = _normalise_keys(params)
    d = {k: v for k, v in p.items() if k in _DESIGN_KEYS}
    s = {k: v for k, v in p.items() if k in _SIM_KEYS}
    if "arms" in d:
        d["arms"] = tuple(_parse_list(d["arms"]))
    if "weeks" in d:
        d["weeks"] = tuple(_parse_list(d["weeks"], float))
    for key in ("effects", "dropout", "n_per_arm"):
        v = d.get(key)
        if isinstance(v, Mapping) or (isinstance(v, str) and ("=" in v or ":" in v)):
            d[key] = _parse_mapping(v)
    if isinstance(d.get("dropout"), str):
        d["dropout"] = float(d["dropout"])
    if isinstance(d.get("dropout_pattern"), str) and d["dropout_pattern"] != "uniform":
        d["dropout_pattern"] = tuple(_parse_list(d["dropout_pattern"], float))
    for key in ("plateau_tau_weeks", "baseline_mean", "sd_intercept", "sd_slope",
                "corr_intercept_slope", "sd_residual"):
        if key in d:
            d[key] = float(d[key])
    n_arg = d.pop("n_per_arm", 60)
    if isinstance(n_arg, Mapping):
        sizes = [{k: int(v) for k, v in n_arg.items()}]
    elif isinstance(n_arg, (int, float, np.integer)):
        sizes = [int(n_arg)]
    else:
        sizes = _parse_list(n_arg, int)
    for key in ("n_sim", "n_jobs", "chunk_size", "seed"):
        if key in s:
            s[key] = int(s[key])
    for key in ("alpha", "ci_level"):
        if key in s:
            s[key] = float(s[key])
    if isinstance(s.get("random_slopes"), str):
        flag = s["random_slopes"].strip().lower()
        if flag not in ("true", "false", "yes", "no", "1", "0"):
            raise ParameterError(f"random_slopes must be true or false, got {flag!r}")
        s["random_slopes"] = flag in ("true", "yes", "1")
    if s.get("client") == "":
        s.pop("client")
    return d, s, sizes


def run_power_from_params(params: Mapping[str, Any]):
    """Run a power calculation from flat parameters (the ``hipstats power`` command).

    ``params["method"]`` chooses what runs:

    * ``"simulation"`` (default): a :class:`TrialDesign` from the design keys (``arms``,
      ``weeks``, ``n_per_arm``, ``effects``, ``effect_type``, ``plateau_tau_weeks``,
      ``baseline_mean``, ``sd_intercept``, ``sd_slope``, ``corr_intercept_slope``,
      ``sd_residual``, ``dropout``, ``dropout_pattern``) and :func:`simulate_power` options
      (``test``, ``target``, ``reference``, ``df``, ``alpha``, ``n_sim``, ``seed``,
      ``n_jobs``, ``client``, ``chunk_size``, ``random_slopes``, ``engine``). Several values
      of ``n_per_arm`` give a :func:`power_curve` DataFrame, one value a
      :class:`PowerResult`.
    * ``"change"`` / ``"ancova"``: :func:`power_change_scores` / :func:`power_ancova` with
      ``effect``, ``sd``, (``rho``), and ``n_per_arm`` or ``power``, ``alpha``, ``dropout``.

    Strings are accepted as the command line gives them: lists as ``"0,3,6,9,12"``, per-arm
    values as ``"control=0,loading=6"`` or ``"control:0,loading:6"``; aliases ``jobs``
    (n_jobs), ``scheduler`` (client), ``corr``, ``tau``, ``visits``; dashes in keys are read
    as underscores (``n-sim``). ``None`` values are ignored (unset options), and so is an
    empty ``scheduler``.

    Examples
    --------
    >>> from hipstats.power import run_power_from_params
    >>> run_power_from_params({"method": "change", "effect": 5, "sd": 10,
    ...                        "power": 0.8}).n_per_arm
    64.0
    """
    p = _normalise_keys(params)
    method = str(p.pop("method", "simulation")).lower()
    if method in _ANALYTIC:
        allowed = {"effect", "sd", "n_per_arm", "power", "alpha", "dropout"}
        if method == "ancova":
            allowed.add("rho")
        unknown = set(p) - allowed
        if unknown:
            raise ParameterError(f"unknown parameters for method {method!r}: {sorted(unknown)}")
        try:
            kw = {k: float(v) for k, v in p.items()}
        except (TypeError, ValueError) as err:
            raise ParameterError(f"analytic parameters must be numbers: {err}") from None
        return _ANALYTIC[method](**kw)
    if method != "simulation":
        raise ParameterError(f"method must be 'simulation', 'change' or 'ancova', got {method!r}")
    unknown = set(p) - _DESIGN_KEYS - _SIM_KEYS
    if unknown:
        raise ParameterError(f"unknown parameters: {sorted(unknown)}")
    d, s, sizes = _split_params(p)
    design = TrialDesign(n_per_arm=sizes[0], **d)
    if len(sizes) > 1:
        return power_curve(design, sizes, **s)
    return simulate_power(design, **s)
