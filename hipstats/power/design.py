"""The planned trial: one design object, its generating model and its parameters.

:class:`TrialDesign` describes the trial (arms, visits, participants per arm, dropout) and the
assumptions to simulate it under (effects, variance components); it can take its variance
components from a pilot fit (:meth:`TrialDesign.from_fit`, :meth:`TrialDesign.from_cohort`, as
R's simr does). :meth:`TrialDesign.draw` draws one trial from the model.

Examples
--------
>>> from hipstats.power import TrialDesign
>>> d = TrialDesign(n_per_arm=60)
>>> d.n_total
180
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hipstats.errors import AnalysisError, ParameterError

__all__ = ["TrialDesign", "DEFAULTS", "DEFAULT_PROVENANCE", "TESTS", "DF_METHODS", "draw_trial", "to_long", "mean_trajectories",
           "arm_sizes", "DESIGN_KEYS", "SIMULATION_KEYS",
           "split_params", "normalise_keys"]


#: Tests the simulation can run (see :func:`hipstats.power.simulate_power`).
TESTS = ("arm:week", "change", "ancova")
#: Reference distributions of the mixed-model test.
DF_METHODS = ("satterthwaite", "wald")

#: The one set of planning defaults, used by the Python API, the ``hipstats power`` command and
#: the power notebook. Where each value comes from is in :data:`DEFAULT_PROVENANCE`.
DEFAULTS: dict[str, Any] = {
    "arms": ("control", "stretching", "loading"),
    "weeks": (0.0, 3.0, 6.0, 9.0, 12.0),
    "n_per_arm": 60,
    "effects": {"control": 0.0, "stretching": 2.0, "loading": 6.0},
    "effect_type": "gain",
    "plateau_tau_weeks": None,
    "baseline_mean": 36.0,
    "sd_intercept": 9.0,
    "sd_slope": 0.15,
    "corr_intercept_slope": 0.0,
    "sd_residual": 3.0,
    "dropout": 0.2,
    "dropout_pattern": "uniform",
    "target": None,
    "reference": None,
    "test": "arm:week",
    "df": "satterthwaite",
    "alpha": 0.05,
}

#: Why each default is what it is (shown in every design table beside "default").
DEFAULT_PROVENANCE: dict[str, str] = {
    "arms": "the protocol's three arms, reference first",
    "weeks": "the protocol's visit schedule (baseline and every 3 weeks to 12)",
    "n_per_arm": "planning size to be checked, not a recommendation",
    "effects": "gains of the synthetic cohort (hipstats.simulate: loading 6, stretching 2 deg)",
    "effect_type": "effects are gains at the last visit",
    "plateau_tau_weeks": "linear change to the gain at the last visit",
    "baseline_mean": "synthetic cohort's baseline IR (does not affect power)",
    "sd_intercept": "synthetic cohort's between-participant SD (hipstats.simulate)",
    "sd_slope": "synthetic cohort's SD of individual change per week (hipstats.simulate)",
    "corr_intercept_slope": "no assumed link between starting level and rate of change",
    "sd_residual": ("synthetic cohort's visit-to-visit noise of the visit mean "
                    "(about 2.3 deg), rounded up"),
    "dropout": "middle of the synthetic cohort's 15-25% dropout, same in every arm",
    "dropout_pattern": "dropouts leave at any follow-up visit with equal chance",
    "target": "the last arm listed",
    "reference": ("the arm listed before the target: the active comparator when arms are "
                  "listed control, comparator, new treatment"),
    "test": "the protocol analysis: difference in mean slope in the mixed model",
    "df": "as lmerTest (Satterthwaite)",
    "alpha": "conventional two-sided 5%",
}


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

    arms: tuple[str, ...] = DEFAULTS["arms"]
    weeks: tuple[float, ...] = DEFAULTS["weeks"]
    n_per_arm: Any = DEFAULTS["n_per_arm"]
    effects: Any = field(default_factory=lambda: dict(DEFAULTS["effects"]))
    effect_type: str = DEFAULTS["effect_type"]
    plateau_tau_weeks: float | None = DEFAULTS["plateau_tau_weeks"]
    baseline_mean: float = DEFAULTS["baseline_mean"]
    sd_intercept: float = DEFAULTS["sd_intercept"]
    sd_slope: float = DEFAULTS["sd_slope"]
    corr_intercept_slope: float = DEFAULTS["corr_intercept_slope"]
    sd_residual: float = DEFAULTS["sd_residual"]
    dropout: Any = DEFAULTS["dropout"]
    dropout_pattern: Any = DEFAULTS["dropout_pattern"]
    target: str | None = None
    reference: str | None = None
    test: str = DEFAULTS["test"]
    df: str = DEFAULTS["df"]
    alpha: float = DEFAULTS["alpha"]
    sources: Any = field(default=None, compare=False)

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
        if self.test not in TESTS:
            raise ParameterError(f"test must be one of {TESTS}, got {self.test!r}")
        if self.df not in DF_METHODS:
            raise ParameterError(f"df must be one of {DF_METHODS}, got {self.df!r}")
        if not 0 < float(self.alpha) < 1:
            raise ParameterError(f"alpha must be in (0, 1), got {self.alpha}")
        put("alpha", float(self.alpha))
        given = {"target": self.target is not None, "reference": self.reference is not None}
        target = arms[-1] if self.target is None else str(self.target)
        if target not in arms:
            raise ParameterError(f"target arm {target!r} is not one of {list(arms)}")
        if self.reference is None:  # the arm listed before the target (see DEFAULTS)
            i = arms.index(target)
            reference = arms[i - 1] if i > 0 else arms[1]
        else:
            reference = str(self.reference)
        if reference not in arms:
            raise ParameterError(f"reference arm {reference!r} is not one of {list(arms)}")
        if target == reference:
            raise ParameterError("target and reference arms must differ")
        put("target", target)
        put("reference", reference)
        src = {} if self.sources is None else {str(k): str(v) for k, v in dict(self.sources).items()}
        for name in ("target", "reference"):
            if given[name] and name not in src:
                src[name] = "user"
        for name in DEFAULTS:
            if name not in src:
                src[name] = "default" if self._is_default(name) else "user"
        put("sources", src)

    def _is_default(self, name: str) -> bool:
        value, default = getattr(self, name), DEFAULTS[name]
        if name in ("target", "reference"):
            return True  # derived by the documented rule unless a source says otherwise
        if isinstance(value, Mapping):
            if isinstance(default, Mapping):
                return dict(value) == {k: float(v) for k, v in default.items()}
            return all(v == default for v in value.values())
        return value == default

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
        return pd.DataFrame(mean_trajectories(self), index=list(self.arms),
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

    def visit_covariance(self) -> np.ndarray:
        """Covariance of one participant's visits implied by the variance components.

        :math:`Z D Z' + \\sigma_e^2 I` with :math:`Z = [1, t]` (time from the first visit).
        """
        t = np.asarray(self.weeks) - self.weeks[0]
        c = self.corr_intercept_slope * self.sd_intercept * self.sd_slope
        D = np.array([[self.sd_intercept**2, c], [c, self.sd_slope**2]])
        Z = np.column_stack([np.ones_like(t), t])
        return Z @ D @ Z.T + self.sd_residual**2 * np.eye(t.size)

    def retention(self, arm: str) -> np.ndarray:
        """Expected share of *arm* still measured at each visit (monotone dropout).

        Examples
        --------
        >>> from hipstats.power import TrialDesign
        >>> TrialDesign(dropout=0.2).retention("loading").round(2).tolist()
        [1.0, 0.95, 0.9, 0.85, 0.8]
        """
        left = np.concatenate([[0.0], np.cumsum(self.dropout_weights)])
        return 1.0 - self.dropout[arm] * left

    def mmrm_inputs(self) -> dict[str, Any]:
        """The inputs of :func:`hipstats.power.power_mmrm` implied by this design.

        ``delta`` (target - reference mean change at the last visit), ``sd`` (SD at the last
        visit), ``correlation`` (of the visits), ``retention`` (target arm) and
        ``retention_reference``, ``alpha``.
        """
        V = self.visit_covariance()
        sd = np.sqrt(np.diag(V))
        return dict(delta=self.true_contrast("change", self.target, self.reference),
                    sd=float(sd[-1]), correlation=V / np.outer(sd, sd),
                    retention=self.retention(self.target),
                    retention_reference=self.retention(self.reference), alpha=self.alpha)

    def slope_inputs(self) -> dict[str, Any]:
        """The inputs of :func:`hipstats.power.power_slope` implied by this design (the formula
        assumes complete follow-up: dropout is not among them)."""
        return dict(delta=self.true_contrast("arm:week", self.target, self.reference),
                    times=tuple(w - self.weeks[0] for w in self.weeks),
                    sd_intercept=self.sd_intercept, sd_slope=self.sd_slope,
                    sd_residual=self.sd_residual, cor_intercept_slope=self.corr_intercept_slope,
                    alpha=self.alpha)

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
        d, _, sizes = split_params(params)
        return cls(**d) if sizes is None else cls(n_per_arm=sizes[0], **d)

    def replace(self, source: str = "user", **changes) -> TrialDesign:
        """Copy with some fields changed; their source becomes *source*.

        Examples
        --------
        >>> from hipstats.power import TrialDesign
        >>> TrialDesign().replace(sd_slope=0.4).sources["sd_slope"]
        'user'
        """
        unknown = set(changes) - set(DEFAULTS)
        if unknown:
            raise ParameterError(f"not design fields: {sorted(unknown)}")
        src = dict(self.sources)
        src.update({k: source for k in changes})
        if "target" in changes and "reference" not in changes and self.sources["reference"] == "default":
            changes["reference"], src["reference"] = None, "default"
        if "arms" in changes:
            for k in ("target", "reference"):
                if k not in changes and self.sources[k] == "default":
                    changes[k], src[k] = None, "default"
        return dataclasses.replace(self, sources=src, **changes)

    def with_n(self, n_per_arm) -> TrialDesign:
        """Copy with another number of participants per arm."""
        return self.replace(n_per_arm=n_per_arm)

    def design_table(self) -> pd.DataFrame:
        """Every assumption of the design, its value and where it came from.

        Columns ``quantity``, ``value`` (text, with units) and ``source`` (``default``,
        ``user``, ``pilot fit ...``, ``pilot observed ...``) and ``why`` (the reason for a
        default). This is the table every output of the power tools prints.

        Examples
        --------
        >>> from hipstats.power import TrialDesign
        >>> t = TrialDesign(sd_slope=0.4).design_table()
        >>> t.set_index("quantity").loc["Random slope SD", ["value", "source"]].tolist()
        ['0.4 deg/week', 'user']
        """
        def num(v, unit=""):
            return f"{v:.4g}{unit}"

        def per_arm(d, fmt):
            vals = list(d.values())
            if all(v == vals[0] for v in vals):
                return f"{fmt(vals[0])} in every arm"
            return ", ".join(f"{a} {fmt(v)}" for a, v in d.items())

        unit = "deg at the last visit" if self.effect_type == "gain" else "deg/week"
        shape = ("linear to the last visit" if self.effect_type == "slope" or
                 self.plateau_tau_weeks is None else
                 f"plateau, gain x (1 - exp(-week / {self.plateau_tau_weeks:g}))")
        pattern = ("any follow-up visit, equal chance" if self.dropout_pattern == "uniform" else
                   ", ".join(f"week {w:g}: {p:.0%}" for w, p in zip(self.weeks[1:], self.dropout_weights)))
        tests = {"arm:week": "difference in mean slope, mixed model (random intercept and slope)",
                 "change": "change from baseline to the last visit, t test (completers)",
                 "ancova": "last visit adjusted for baseline, ANCOVA (completers)"}
        dfs = {"satterthwaite": "Satterthwaite", "wald": "normal (Wald)"}
        rows = [
            ("Arms", ", ".join(self.arms), "arms"),
            ("Visits (weeks)", ", ".join(f"{w:g}" for w in self.weeks), "weeks"),
            ("Participants per arm (enrolled)", per_arm(self.n_per_arm, str), "n_per_arm"),
            ("Effects", per_arm(self.effects, lambda v: num(v)) + f" ({unit})", "effects"),
            ("Shape of change", shape, "plateau_tau_weeks"),
            ("Random intercept SD", num(self.sd_intercept, " deg"), "sd_intercept"),
            ("Random slope SD", num(self.sd_slope, " deg/week"), "sd_slope"),
            ("Intercept-slope correlation", num(self.corr_intercept_slope), "corr_intercept_slope"),
            ("Residual SD", num(self.sd_residual, " deg"), "sd_residual"),
            ("Dropout", per_arm(self.dropout, lambda v: f"{v:.0%}"), "dropout"),
            ("Dropout timing", pattern, "dropout_pattern"),
            ("Comparison", f"{self.target} vs {self.reference}", "reference"),
            ("Test", tests[self.test], "test"),
            ("Degrees of freedom", dfs[self.df] if self.test == "arm:week" else "residual (OLS)", "df"),
            ("Significance level (two-sided)", f"{self.alpha:g}", "alpha"),
        ]
        out = []
        for label, value, key in rows:
            source = self.sources.get(key, "default")
            why = DEFAULT_PROVENANCE.get(key, "") if source == "default" else ""
            if key == "reference" and self.sources.get("target") != "default":
                if source == "default":
                    source, why = "user (target); reference by rule", DEFAULT_PROVENANCE["reference"]
                else:
                    source = "user"
            out.append({"quantity": label, "value": value, "source": source, "why": why})
        return pd.DataFrame(out)

    def simulate(self, seed=0) -> pd.DataFrame:
        """One simulated trial as a tidy frame (participant_id, arm, week, value).

        Examples
        --------
        >>> from hipstats.power import TrialDesign
        >>> TrialDesign(n_per_arm=10, dropout=0).simulate(seed=1).shape
        (150, 4)
        """
        rng = np.random.default_rng(seed)
        y, arm = draw_trial(self, rng)
        return to_long(y, arm, self.weeks, self.arms)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the design (JSON-friendly)."""
        return dataclasses.asdict(self)

    # -- from a pilot fit ---------------------------------------------------------------------
    @classmethod
    def from_fit(cls, fit, *, arms: Sequence[str], weeks: Sequence[float], n_per_arm=60,
                 effects: Mapping[str, float] | None = None, time: str = "week",
                 arm: str = "arm", dropout=DEFAULTS["dropout"], dropout_pattern="uniform",
                 effect_type: str = "slope", plateau_tau_weeks: float | None = None,
                 scale_slope_sd: float = 1.0,
                 source_label: str = "pilot fit",
                 sources: Mapping[str, str] | None = None) -> TrialDesign:
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
            participant="participant_id", re_formula="1 + week")``.
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
        source_label : str
            Source recorded for the values taken from the fit (see :meth:`design_table`).
        sources : dict, optional
            Sources of other values (e.g. ``{"dropout": "pilot observed"}``).

        Examples
        --------
        >>> from hipstats.models.lmm import fit_lmm
        >>> from hipstats.power import TrialDesign
        >>> pilot = TrialDesign(arms=("control", "loading"), n_per_arm=40, sd_slope=0.5,
        ...                     effects={"control": 0, "loading": 6}).simulate(seed=1)
        >>> fit = fit_lmm("value ~ week * arm", pilot, participant="participant_id",
        ...               re_formula="1 + week")
        >>> d = TrialDesign.from_fit(fit, arms=("control", "loading"), weeks=(0, 6, 12))
        >>> d.effect_type, round(d.effects["loading"] - d.effects["control"], 1)
        ('slope', 0.5)
        """
        cov, resid_var = _variance_components(fit, time)
        sd0, sd1 = math.sqrt(max(cov[0, 0], 0.0)), math.sqrt(max(cov[1, 1], 0.0))
        corr = float(cov[0, 1] / (sd0 * sd1)) if sd0 > 0 and sd1 > 0 else 0.0
        fe = _fixed_effects(fit)
        src = {k: source_label for k in ("sd_intercept", "sd_slope", "corr_intercept_slope",
                                         "sd_residual", "baseline_mean")}
        if scale_slope_sd != 1.0:
            src["sd_slope"] = f"{source_label} x {scale_slope_sd:g} (user)"
        if effects is None:
            effects, effect_type = _slopes_from_fixed_effects(fe, arms, time, arm), "slope"
            src["effects"] = src["effect_type"] = source_label
        src.update(sources or {})
        intercept = float(fe.get("Intercept", fe.iloc[0]))
        return cls(arms=tuple(arms), weeks=tuple(weeks), n_per_arm=n_per_arm,
                   effects=dict(effects), effect_type=effect_type,
                   plateau_tau_weeks=plateau_tau_weeks, baseline_mean=intercept,
                   sd_intercept=sd0, sd_slope=sd1 * scale_slope_sd,
                   corr_intercept_slope=float(np.clip(corr, -1, 1)),
                   sd_residual=math.sqrt(resid_var), dropout=dropout,
                   dropout_pattern=dropout_pattern, sources=src)

    @classmethod
    def from_cohort(cls, cohort, measure: str = "hip_ir_deg", *, n_per_arm=60,
                    weeks: Sequence[float] | None = None,
                    effects: Mapping[str, float] | None = None, effect_type: str = "gain",
                    plateau_tau_weeks: float | None = None, dropout="observed",
                    dropout_pattern="uniform", pelvis: str | None = "free",
                    scale_slope_sd: float = 1.0,
                    source_label: str = "pilot") -> TrialDesign:
        """Design whose variance components (and dropout) come from a pilot cohort.

        The cohort's outcome (mean of trials and sides per participant and visit, as the
        protocol model analyses it; :meth:`hipstats.Cohort.analysis_frame`) is fitted with
        :func:`hipstats.models.lmm.fit_lmm` with :data:`PILOT_FORMULA`
        (``"value ~ week * arm + (1 + week | participant_id)"``: random intercept and slope per
        participant, REML, the cohort's reference arm as baseline level) and
        :meth:`TrialDesign.from_fit` takes the variance components.

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
        source_label : str
            Names the pilot in the design table (``"pilot fit (<label>)"``).

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
        # the reference arm first: treatment coding then takes it as the baseline level
        pv["arm"] = pd.Categorical(pv["arm"].astype(str), categories=[ref] + [a for a in arms if a != ref])
        with warnings.catch_warnings():
            # a singular pilot fit still gives usable components (slope SD ~ 0)
            warnings.simplefilter("ignore", UserWarning)
            fit = fit_lmm(PILOT_FORMULA, pv)
        sched = cohort.schedule()
        sched = sched[sched["scheduled"]]
        if weeks is None:
            weeks = tuple(float(w) for w in np.round(sched["week"].to_numpy(dtype=float)))
        observed = isinstance(dropout, str)
        if observed:
            if dropout != "observed":
                raise ParameterError("dropout must be 'observed', a number or a dict per arm")
            last = set(pv.loc[pv["visit"] == sched["visit"].iloc[-1], "participant_id"])
            parts = cohort.participants[["participant_id", "arm"]].astype({"arm": str})
            dropout = {a: float(1 - parts.loc[parts["arm"] == a, "participant_id"]
                                .isin(last).mean()) for a in arms}
        measured = f"{measure}, {cohort.n_participants} participants"
        return cls.from_fit(fit, arms=arms, weeks=weeks, n_per_arm=n_per_arm, effects=effects,
                            effect_type=effect_type, plateau_tau_weeks=plateau_tau_weeks,
                            dropout=dropout, dropout_pattern=dropout_pattern,
                            scale_slope_sd=scale_slope_sd,
                            source_label=f"pilot fit ({source_label}: {measured})",
                            sources={"dropout": f"pilot observed ({source_label})"} if observed
                            else None)


#: The pilot model of :meth:`TrialDesign.from_cohort`, in lme4's syntax.
PILOT_FORMULA = "value ~ week * arm + (1 + week | participant_id)"


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



def arm_sizes(design: TrialDesign) -> np.ndarray:
    """Participants per arm as an int array in ``design.arms`` order."""
    return np.array([design.n_per_arm[a] for a in design.arms], dtype=int)


def mean_trajectories(design: TrialDesign) -> np.ndarray:
    """Mean change from baseline, shape (n_arms, n_visits), in ``design.arms`` order."""
    t = np.asarray(design.weeks, dtype=float) - design.weeks[0]
    eff = np.array([design.effects[a] for a in design.arms], dtype=float)[:, None]
    if design.effect_type == "slope":
        return eff * t[None, :]
    if design.plateau_tau_weeks is None:  # linear ramp reaching the gain at the last visit
        return eff * (t / t[-1])[None, :]
    return eff * (1.0 - np.exp(-t / design.plateau_tau_weeks))[None, :]


def draw_trial(design: TrialDesign, rng: np.random.Generator,
             sizes: np.ndarray | None = None, means: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Draw one replicate trial.

    Returns
    -------
    y : ndarray, shape (n_participants, n_visits)
        Outcome, NaN where the visit was missed after dropout.
    arm : ndarray of int, shape (n_participants,)
        Index into ``design.arms``.
    """
    sizes = arm_sizes(design) if sizes is None else sizes
    means = mean_trajectories(design) if means is None else means
    weeks = np.asarray(design.weeks, dtype=float)
    t = weeks - weeks[0]
    arm = np.repeat(np.arange(len(sizes)), sizes)
    n, k = arm.size, weeks.size
    # every draw is made in full and in a fixed order so the stream layout never changes
    z = rng.standard_normal((n, 2))
    e = rng.standard_normal((n, k))
    u = rng.random(n)
    first_missing = 1 + rng.choice(k - 1, size=n, p=np.asarray(design.dropout_weights))
    s0, s1, r = design.sd_intercept, design.sd_slope, design.corr_intercept_slope
    b0 = s0 * z[:, 0]
    b1 = s1 * (r * z[:, 0] + np.sqrt(max(0.0, 1.0 - r * r)) * z[:, 1])
    y = (design.baseline_mean + means[arm] + b0[:, None] + b1[:, None] * t[None, :]
         + design.sd_residual * e)
    p_drop = np.array([design.dropout[a] for a in design.arms], dtype=float)[arm]
    dropped = u < p_drop
    missing = dropped[:, None] & (np.arange(k)[None, :] >= first_missing[:, None])
    y[missing] = np.nan
    return y, arm


def to_long(y: np.ndarray, arm: np.ndarray, weeks: Sequence[float], arms: Sequence[str]
            ) -> pd.DataFrame:
    """Tidy frame (participant_id, arm, week, value) of the observed visits of one replicate."""
    n, k = y.shape
    obs = ~np.isnan(y)
    pid = np.repeat(np.arange(n), k).reshape(n, k)[obs]
    wk = np.broadcast_to(np.asarray(weeks, dtype=float), (n, k))[obs]
    return pd.DataFrame({
        "participant_id": pid,
        "arm": pd.Categorical.from_codes(np.broadcast_to(arm[:, None], (n, k))[obs],
                                         categories=list(arms)),
        "week": wk,
        "value": y[obs],
    })


#: Options of :func:`hipstats.power.simulate_power` accepted as flat parameters.
SIMULATION_KEYS = {"n_sim", "seed", "n_jobs", "client", "chunk_size", "random_slopes", "engine", "ci_method",
                   "confidence", "max_failed_share", "progress"}
#: Fields of :class:`TrialDesign`.
DESIGN_KEYS = {f.name for f in dataclasses.fields(TrialDesign)} - {"sources"}
_ALIASES = {"jobs": "n_jobs", "scheduler": "client", "corr": "corr_intercept_slope",
            "tau": "plateau_tau_weeks", "visits": "weeks"}


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


def normalise_keys(params: Mapping[str, Any]) -> dict[str, Any]:
    """Keys with dashes read as underscores and aliases resolved; ``None`` values dropped."""
    return {_ALIASES.get(k.replace("-", "_"), k.replace("-", "_")): v
            for k, v in params.items() if v is not None}


def split_params(params: Mapping[str, Any]):
    """(design kwargs without n_per_arm, simulate_power kwargs, list of sizes or None).

    Empty strings count as not given (a notebook's "use the default").
    """
    p = {k: v for k, v in normalise_keys(params).items() if not (isinstance(v, str) and v == "")}
    d = {k: v for k, v in p.items() if k in DESIGN_KEYS}
    s = {k: v for k, v in p.items() if k in SIMULATION_KEYS}
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
    n_arg = d.pop("n_per_arm", None)
    if n_arg is None:
        sizes = None
    elif isinstance(n_arg, Mapping):
        sizes = [{k: int(v) for k, v in n_arg.items()}]
    elif isinstance(n_arg, (int, float, np.integer)):
        sizes = [int(n_arg)]
    else:
        sizes = _parse_list(n_arg, int)
    for key in ("n_sim", "n_jobs", "chunk_size", "seed"):
        if key in s:
            s[key] = int(s[key])
    if "alpha" in d:
        d["alpha"] = float(d["alpha"])
    for key in ("confidence", "max_failed_share"):
        if key in s:
            s[key] = float(s[key])
    if isinstance(s.get("progress"), str):
        s["progress"] = s["progress"].strip().lower() in ("true", "yes", "1")
    if isinstance(s.get("random_slopes"), str):
        flag = s["random_slopes"].strip().lower()
        if flag not in ("true", "false", "yes", "no", "1", "0"):
            raise ParameterError(f"random_slopes must be true or false, got {flag!r}")
        s["random_slopes"] = flag in ("true", "yes", "1")
    if s.get("client") == "":
        s.pop("client")
    return d, s, sizes

