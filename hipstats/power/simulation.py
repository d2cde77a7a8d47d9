"""Simulated power: replicates, per-replicate tests, joblib and Dask runners, results.

:func:`simulate_power` draws ``n_sim`` trials from a :class:`~hipstats.power.TrialDesign`
(:func:`hipstats.power.design.draw_trial`), fits the analysis model to each and reports the
share of significant contrasts with a Monte Carlo CI (:class:`PowerResult`);
:func:`power_curve` repeats this along participants per arm.

The generating model (one value per participant and visit)
----------------------------------------------------------
.. math::

    y_{ij} = \\mu + m_{a(i)}(t_j) + b_{0i} + b_{1i} t_j + e_{ij},\\qquad
    (b_{0i}, b_{1i}) \\sim N(0, \\Sigma),\\quad e_{ij} \\sim N(0, \\sigma_e^2)

where :math:`m_a(t)` is the mean change from baseline of arm *a* (linear slope, linear ramp to
the gain at the last visit, or the plateau curve ``gain * (1 - exp(-t / tau))`` of
:func:`hipstats.cohort.simulate.simulate_cohort`), :math:`\\Sigma` holds the random intercept SD, the
random slope SD and their correlation, and :math:`\\sigma_e` is the visit-level residual SD of the
analysed value (for hipstats cohorts: the mean of the trials and sides a participant gives at a
visit). This is the measurement model of ``simulate_cohort`` collapsed to the value that the
protocol models analyse; it is drawn with vectorised numpy instead of building a full cohort
per replicate.

Dropout is monotone: a participant of arm *a* drops out with probability ``dropout[a]``; the
first missed visit is drawn over the follow-up visits (uniformly by default, or with the
weights of ``dropout_pattern``) and that visit and every later one are missing.

Reproducibility
---------------
Replicate *r* draws everything from ``numpy.random.default_rng(SeedSequence(seed).spawn(n_sim)[r])``
and the draws of one replicate never depend on any other, so the results are identical whatever
the chunking, ``n_jobs`` or backend (joblib/loky, sequential, Dask).
"""

from __future__ import annotations

import html
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special  # not scipy.stats: worker processes import this module (start-up cost)

from hipstats.errors import AnalysisError, ParameterError
from hipstats.power.design import (
    DF_METHODS,
    TESTS,
    TrialDesign,
    arm_sizes,
    draw_trial,
    mean_trajectories,
)
from hipstats.power.progress import Progress
from hipstats.power.reml import PatternModel
from hipstats.results import DEPRECATED, PARTICIPANT_COLUMN, Result, html_table, resolve_participant

__all__ = ["PowerResult", "PowerCurveResult", "simulate_power", "power_curve", "curve_row", "run_replicates",
           "run_tasks", "run_chunk", "chunk_seeds", "p_values", "lmm_arrays", "lmm_frame",
           "true_theta", "arm_week_test", "change_test", "ancova_test", "fit_statsmodels",
           "REPLICATE_COLUMNS", "TESTS", "DF_METHODS", "ENGINES", "ACCOUNTING_RULE",
           "MAX_FAILED_SHARE"]


#: Columns of the per-replicate result array returned by :func:`run_chunk` (flags as 0/1).
REPLICATE_COLUMNS = ("estimate", "se", "df", "p_value", "converged", "singular", "failed")
ENGINES = ("hipstats", "statsmodels")
#: Default share of failed fits above which a design point is flagged in every output.
MAX_FAILED_SHARE = 0.05
#: The counting rule, printed with every simulated power.
ACCOUNTING_RULE = (
    "Power counts every simulated trial: significant = fitted and p < alpha; a trial whose "
    "analysis failed (no estimate, SE or df) counts as not significant. Fits that did not "
    "converge or are singular (a variance component at zero) keep their p-value and are "
    "counted. A design point where more than {share:.0%} of fits failed is flagged.")


# --------------------------------------------------------------------------------------------
# per-replicate tests
# --------------------------------------------------------------------------------------------
def p_values(est: np.ndarray, se: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided p-values of t = est / se with *df* (normal where df is infinite)."""
    stat = np.abs(np.asarray(est, float) / np.asarray(se, float))
    df = np.asarray(df, float)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(df), 2.0 * special.ndtr(-stat), 2.0 * special.stdtr(df, -stat))


def _two_arm_completers(y: np.ndarray, arm: np.ndarray, it: int, ir: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = ((arm == it) | (arm == ir)) & ~np.isnan(y[:, -1]) & ~np.isnan(y[:, 0])
    return y[keep, 0], y[keep, -1], (arm[keep] == it).astype(float)


def _ols_coef_test(X: np.ndarray, yv: np.ndarray, j: int) -> tuple[float, float, float, bool, bool]:
    """Estimate, SE, residual df, converged, singular of coefficient *j* in an OLS fit."""
    n, p = X.shape
    if n <= p:
        raise AnalysisError(f"{n} completers cannot support a model with {p} coefficients")
    beta, _, rank, _ = np.linalg.lstsq(X, yv, rcond=None)
    if rank < p:
        raise AnalysisError("rank-deficient design (an arm has no completers)")
    resid = yv - X @ beta
    df = n - p
    s2 = resid @ resid / df
    xtx_inv = np.linalg.inv(X.T @ X)
    return float(beta[j]), float(np.sqrt(s2 * xtx_inv[j, j])), float(df), True, False


def change_test(y, arm, it, ir, **_):
    """Pooled-variance two-sample t test on change (last - first visit), completers."""
    base, last, g = _two_arm_completers(y, arm, it, ir)
    X = np.column_stack([np.ones_like(g), g])
    return _ols_coef_test(X, last - base, 1)


def ancova_test(y, arm, it, ir, **_):
    """ANCOVA of the last visit on baseline and arm (two arms, completers)."""
    base, last, g = _two_arm_completers(y, arm, it, ir)
    X = np.column_stack([np.ones_like(g), base, g])
    return _ols_coef_test(X, last, 2)


def lmm_arrays(y: np.ndarray, arm: np.ndarray, weeks: Sequence[float], n_arms: int,
               reference: int) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Observed rows of one replicate as model arrays, treatment coded against *reference*.

    Returns the response, the fixed-effects design with columns ``Intercept, week`` then
    ``a<k>, week_a<k>`` for every non-reference arm *k* (``week`` counted from the first
    visit), its column names, and the participant index of every row. Built directly with
    numpy: every replicate has the same design up to its dropped visits, and building it
    through a formula engine would cost more than the fit.
    """
    n, k = y.shape
    obs = ~np.isnan(y)
    pid = np.broadcast_to(np.arange(n)[:, None], (n, k))[obs]
    wk = np.broadcast_to(np.asarray(weeks, dtype=float) - weeks[0], (n, k))[obs]
    arm_obs = np.broadcast_to(arm[:, None], (n, k))[obs]
    cols, names = [np.ones_like(wk), wk], ["Intercept", "week"]
    for a in range(n_arms):
        if a == reference:
            continue
        ind = (arm_obs == a).astype(float)
        cols += [ind, ind * wk]
        names += [f"a{a}", f"week_a{a}"]
    return y[obs], np.column_stack(cols), names, pid


def lmm_frame(y: np.ndarray, arm: np.ndarray, weeks: Sequence[float], n_arms: int,
              reference: int) -> tuple[pd.DataFrame, list[str]]:
    """:func:`lmm_arrays` as a long frame (for formula engines) and its arm term names.

    Explicit numeric columns keep coefficient names independent of any formula engine's
    naming of factor levels.
    """
    yv, X, names, pid = lmm_arrays(y, arm, weeks, n_arms, reference)
    data = pd.DataFrame(X[:, 1:], columns=names[1:])
    data.insert(0, "participant_id", pid)
    data["value"] = yv
    return data, names[2:]


def true_theta(design: TrialDesign, random_slopes: bool) -> np.ndarray:
    """lme4's ``theta`` of the generating model (start of every replicate's optimiser).

    The Cholesky factor of the random intercept/slope covariance over the residual SD
    (positive, checked by TrialDesign), lower triangle column by column.
    """
    se = float(design.sd_residual)
    s0, s1, r = design.sd_intercept, design.sd_slope, design.corr_intercept_slope
    if not random_slopes:
        return np.array([s0 / se])
    return np.array([s0, r * s1, s1 * np.sqrt(max(0.0, 1.0 - r * r))]) / se


def arm_week_test(y, arm, it, ir, *, weeks, n_arms, random_slopes, df_method, engine,
                  theta0=None, **_):
    """Difference in mean slope (target - reference) in the random-slope LMM, one replicate.

    Returns (estimate, se, df, converged, singular). The hipstats engine is
    :class:`hipstats.power.reml.PatternModel` (started at ``theta0`` if given); the
    statsmodels engine fits MixedLM (Wald df only).
    """
    if engine == "hipstats":
        model = PatternModel(weeks, n_arms, ir, random_slopes)
        fit = model.fit(np.asarray(y)[None], arm, theta0, j=model.names.index(f"week_a{it}"),
                        satterthwaite=df_method != "wald")
        return (float(fit["estimate"][0]), float(fit["se"][0]), float(fit["df"][0]),
                bool(fit["converged"][0]), bool(fit["singular"][0]))
    data, terms = lmm_frame(y, arm, weeks, n_arms, ir)
    formula = "value ~ week + " + " + ".join(terms)
    fit = fit_statsmodels(formula, data, "participant_id", "1 + week" if random_slopes else "1",
                          warn=False)
    names = list(fit.fe_params.index)
    j = names.index(f"week_a{it}")
    est = float(fit.fe_params.iloc[j])
    se = float(np.sqrt(np.asarray(fit.cov_fe)[j, j]))
    return est, se, np.inf, fit.converged, fit.singular


_TEST_FUNCS = {"arm:week": arm_week_test, "change": change_test, "ancova": ancova_test}


# --------------------------------------------------------------------------------------------
# statsmodels engine (reference / benchmark)
# --------------------------------------------------------------------------------------------
class _StatsmodelsFit:
    """Adapter giving a statsmodels MixedLM fit the attributes the power code reads."""

    def __init__(self, res):
        k = len(res.model.exog_names)
        self.fe_params = res.fe_params
        self.cov_fe = np.asarray(res.cov_params())[:k, :k]
        self.bse = pd.Series(np.sqrt(np.diag(self.cov_fe)), index=self.fe_params.index)
        self.converged = bool(res.converged)
        re_sd = np.sqrt(np.clip(np.diag(np.asarray(res.cov_re, dtype=float)), 0, None))
        self.singular = bool(np.min(re_sd / np.sqrt(res.scale)) < 1e-4)


def fit_statsmodels(formula, data, participant=PARTICIPANT_COLUMN, re_formula="1", *, nested=None,
                    reml=True, warn=True, groups=DEPRECATED):
    """statsmodels MixedLM of *formula* with random effects *re_formula* per *participant*
    (the participant column; ``groups`` is its deprecated alias): the reference and
    benchmark engine, Wald tests only."""
    import statsmodels.formula.api as smf

    participant = resolve_participant(participant, where="fit_statsmodels", groups=groups)
    mod = smf.mixedlm(formula, data, groups=data[participant], re_formula="~" + re_formula)
    with warnings.catch_warnings():
        if not warn:
            warnings.simplefilter("ignore")
        try:
            return _StatsmodelsFit(mod.fit(reml=reml))
        except (ValueError, np.linalg.LinAlgError) as err:
            raise AnalysisError(f"statsmodels MixedLM failed: {err}") from err


# --------------------------------------------------------------------------------------------
# running replicates
# --------------------------------------------------------------------------------------------
def _failed_row() -> np.ndarray:
    row = np.full(len(REPLICATE_COLUMNS), np.nan)
    row[4:] = (0.0, 0.0, 1.0)
    return row


def _finish(est, se, df, conv, sing) -> np.ndarray:
    """Replicate rows from test outputs; rows without a usable estimate, SE or df are failed."""
    est, se, df = (np.asarray(v, dtype=float) for v in (est, se, df))
    ok = np.isfinite(est) & np.isfinite(se) & (se > 0) & (df > 0) & ~np.isnan(df)
    out = np.tile(_failed_row(), (est.size, 1))
    with np.errstate(all="ignore"):
        p = p_values(est, np.where(ok, se, 1.0), np.where(ok, df, np.inf))
    out[ok, 0], out[ok, 1], out[ok, 2], out[ok, 3] = est[ok], se[ok], df[ok], p[ok]
    out[ok, 4] = np.asarray(conv, dtype=float)[ok]
    out[ok, 5] = np.asarray(sing, dtype=float)[ok]
    out[ok, 6] = 0.0
    return out


def run_chunk(design: TrialDesign, options: dict, seeds: Sequence[np.random.SeedSequence]
              ) -> np.ndarray:
    """Run the replicates of *seeds*; one row of :data:`REPLICATE_COLUMNS` per seed.

    With the hipstats engine, the mixed-model test fits all replicates of the chunk together
    (:class:`hipstats.power.reml.PatternModel`); if any of them cannot be fitted the chunk is
    refitted one replicate at a time, so a failure marks only its own replicate.
    """
    sizes = arm_sizes(design)
    means = mean_trajectories(design)
    it, ir = design.arms.index(options["target"]), design.arms.index(options["reference"])
    draws = [draw_trial(design, np.random.default_rng(ss), sizes, means) for ss in seeds]
    if not draws:
        return np.empty((0, len(REPLICATE_COLUMNS)))
    arm = draws[0][1]
    weeks = np.asarray(design.weeks, dtype=float)
    if options["test"] == "arm:week" and options["engine"] == "hipstats":
        model = PatternModel(weeks, len(design.arms), ir, options["random_slopes"])
        j = model.names.index(f"week_a{it}")
        theta0 = true_theta(design, options["random_slopes"])
        kw = dict(j=j, satterthwaite=options["df"] != "wald")
        Y = np.stack([y for y, _ in draws])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                f = model.fit(Y, arm, theta0, **kw)
                return _finish(f["estimate"], f["se"], f["df"], f["converged"], f["singular"])
            except (AnalysisError, np.linalg.LinAlgError, ArithmeticError):
                pass
            rows = []
            for y in Y:
                try:
                    f = model.fit(y[None], arm, theta0, **kw)
                    rows.append(_finish(f["estimate"], f["se"], f["df"], f["converged"],
                                        f["singular"])[0])
                except (AnalysisError, np.linalg.LinAlgError, ArithmeticError):
                    rows.append(_failed_row())
            return np.array(rows)
    func = _TEST_FUNCS[options["test"]]
    extra = dict(weeks=weeks, n_arms=len(design.arms), random_slopes=options["random_slopes"],
                 df_method=options["df"], engine=options["engine"])
    res = []
    for y, a in draws:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res.append(func(y, a, it, ir, **extra))
            except (AnalysisError, np.linalg.LinAlgError, ArithmeticError):
                res.append((np.nan, np.nan, np.nan, False, False))
    est, se, df, conv, sing = zip(*res)
    return _finish(est, se, df, conv, sing)


def chunk_seeds(seed: int | np.random.SeedSequence, n_sim: int, chunk_size: int
                ) -> list[list[np.random.SeedSequence]]:
    """Replicate seeds (children of ``SeedSequence(seed)``) in chunks of *chunk_size*."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    children = root.spawn(n_sim)
    return [children[i:i + chunk_size] for i in range(0, n_sim, chunk_size)]


def run_tasks(tasks: Sequence[tuple], *, n_jobs: int, client=None, progress=None,
              description: str = "simulating trials") -> tuple[list[np.ndarray], str]:
    """Run (design, options, seeds) tasks sequentially, with joblib (loky) or on Dask.

    Returns the tasks' replicate arrays in task order and the backend used; *progress*
    (see :class:`hipstats.power.progress.Progress`) counts finished replicates.
    """
    total = sum(len(t[2]) for t in tasks)
    with Progress(total, description, enabled=progress) as bar:
        if client is not None:
            from distributed import Client, as_completed

            own = isinstance(client, str)
            cl = Client(client) if own else client
            try:
                futures = [cl.submit(run_chunk, *t, pure=False) for t in tasks]
                sizes = {f.key: len(t[2]) for f, t in zip(futures, tasks)}
                for fut in as_completed(futures):
                    bar.advance(sizes[fut.key])
                parts = cl.gather(futures)
            finally:
                if own:
                    cl.close()
            return parts, "dask"
        if n_jobs == 1 or len(tasks) == 1:
            parts = []
            for t in tasks:
                parts.append(run_chunk(*t))
                bar.advance(len(t[2]))
            return parts, "sequential"
        from joblib import Parallel, delayed

        parts = []
        gen = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")(
            delayed(run_chunk)(*t) for t in tasks)
        for t, part in zip(tasks, gen):
            parts.append(part)
            bar.advance(len(t[2]))
        return parts, "loky"


def run_replicates(design: TrialDesign, options: dict, *, n_sim: int, seed, n_jobs: int,
                   client=None, chunk_size: int = 50, progress=False) -> tuple[np.ndarray, str]:
    """Run *n_sim* replicates of one design; the (n_sim, 7) array in replicate order and the
    backend used."""
    tasks = [(design, options, c) for c in chunk_seeds(seed, n_sim, chunk_size)]
    parts, backend = run_tasks(tasks, n_jobs=n_jobs, client=client, progress=progress)
    return np.vstack(parts), backend


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
def _binomial_ci(k: int, n: int, level: float, method: str) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    from scipy import stats  # noqa: PLC0415 - only the parent process summarises

    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level,
                                             method={"clopper-pearson": "exact",
                                                     "wilson": "wilson"}[method])
    return float(ci.low), float(ci.high)


@dataclass(frozen=True, repr=False, eq=False)
class PowerResult(Result):
    """Simulated power of one design (see :func:`simulate_power`).

    Attributes
    ----------
    power : float
        Share of all simulated trials that were fitted with p < alpha (failed fits count as
        not significant; see :data:`ACCOUNTING_RULE`).
    ci_low, ci_high : float
        Monte Carlo confidence interval of the power (``ci_method``, level ``confidence``).
    power_fitted : float
        Share significant among the trials whose fit did not fail.
    n_sim, n_failed, n_not_converged, n_singular, n_rejected : int
        Simulated trials; fits that failed (no estimate, SE or df); fits that did not converge;
        singular fits (a variance component at zero); significant trials.
    flagged : bool
        More than ``max_failed_share`` of the fits failed: the power is not trustworthy.
    true_effect : float
        The contrast the test estimates under the design (:meth:`TrialDesign.true_contrast`).
    design : TrialDesign
        The design simulated, with the source of every assumption.
    replicates : DataFrame
        One row per trial: estimate, se, df, p_value, converged, singular, failed, rejected.

    Examples
    --------
    >>> from hipstats.power import TrialDesign, simulate_power
    >>> d = TrialDesign(arms=("control", "loading"), weeks=(0, 12), n_per_arm=20,
    ...                 effects={"control": 0, "loading": 0}, sd_slope=0, dropout=0)
    >>> res = simulate_power(d, test="change", n_sim=400, n_jobs=1, seed=3)
    >>> abs(res.power - 0.05) < 3 * res.mc_se + 0.01   # type I error under no effect
    True
    >>> list(res.summary().columns[:4])
    ['test', 'contrast', 'df_method', 'n_per_arm']
    """

    power: float
    ci_low: float
    ci_high: float
    power_fitted: float
    ci_method: str
    n_sim: int
    n_failed: int
    n_not_converged: int
    n_singular: int
    n_rejected: int
    max_failed_share: float
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
    replicates: pd.DataFrame = field(repr=False)
    engine: str = "hipstats"
    confidence: float = 0.95  # after the defaults: Result defines a class-level confidence

    _title = "Simulated power"

    def __post_init__(self):
        self.add_note(ACCOUNTING_RULE.format(share=self.max_failed_share))
        if self.flagged:
            self.add_note(self.flag_text)

    @property
    def flagged(self) -> bool:
        """More than ``max_failed_share`` of the simulated trials failed to fit."""
        return self.n_failed > self.max_failed_share * self.n_sim

    @property
    def flag_text(self) -> str:
        """The warning shown with a flagged result ("" when not flagged)."""
        if not self.flagged:
            return ""
        return (f"FLAGGED: {self.n_failed} of {self.n_sim} simulated trials "
                f"({self.n_failed / self.n_sim:.0%}) could not be analysed (more than "
                f"{self.max_failed_share:.0%}); the design may not support the test")

    @property
    def mc_se(self) -> float:
        """Monte Carlo standard error sqrt(p(1-p)/n) of the power estimate."""
        return math.sqrt(self.power * (1 - self.power) / self.n_sim) if self.n_sim else float("nan")

    def summary(self) -> pd.DataFrame:
        """One row: test, contrast, true effect, mean estimate, power with its CI, counts."""
        ok = self.replicates[~self.replicates["failed"]]
        return pd.DataFrame([{
            "test": self.test,
            "contrast": f"{self.target} - {self.reference}",
            "df_method": self.df,
            "n_per_arm": ", ".join(str(v) for v in self.design.n_per_arm.values()),
            "true_effect": self.true_effect,
            "mean_estimate": float(ok["estimate"].mean()) if len(ok) else float("nan"),
            "power": self.power,
            "power_ci_low": self.ci_low,
            "power_ci_high": self.ci_high,
            "power_se": self.mc_se,
            "power_fitted": self.power_fitted,
            "alpha": self.alpha,
            "n_sim": self.n_sim,
            "n_failed": self.n_failed,
            "n_not_converged": self.n_not_converged,
            "n_singular": self.n_singular,
            "flagged": self.flagged,
        }])

    def to_frame(self) -> pd.DataFrame:
        """Per-replicate results (copy)."""
        return self.replicates.copy()

    def design_table(self) -> pd.DataFrame:
        """The design assumed (:meth:`TrialDesign.design_table`) and the simulation settings."""
        run = pd.DataFrame([
            {"quantity": "Simulated trials", "value": f"{self.n_sim:,}", "source": "run",
             "why": ""},
            {"quantity": "Random seed", "value": str(self.seed), "source": "run", "why": ""},
            {"quantity": "Model engine", "value": self.engine, "source": "run", "why": ""},
        ])
        return pd.concat([self.design.design_table(), run], ignore_index=True)

    def plot(self, ax=None):
        """Histogram of the replicate estimates, true effect marked, significant ones shaded.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        from hipstats.plots import theme

        ok = self.replicates[~self.replicates["failed"]]
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
            ax.set_ylabel("simulated trials")
            ax.legend(frameon=False)
        return fig

    def __repr__(self) -> str:
        flag = f", {self.flag_text}" if self.flagged else ""
        return (f"PowerResult(power={self.power:.3f}, {self.confidence:.0%} CI "
                f"[{self.ci_low:.3f}, {self.ci_high:.3f}], test={self.test!r}, "
                f"{self.target} - {self.reference}, n_sim={self.n_sim}, "
                f"failed={self.n_failed}, not converged={self.n_not_converged}, "
                f"singular={self.n_singular}{flag})")

    def _repr_html_(self) -> str:
        esc = html.escape
        flag = f'<p style="color:#b00020"><b>{esc(self.flag_text)}</b></p>' if self.flagged else ""
        head = (f"<p><b>Simulated power {self.power:.1%}</b> "
                f"({self.confidence:.0%} {esc(self.ci_method)} CI {self.ci_low:.1%} to "
                f"{self.ci_high:.1%}) for {esc(self.target)} vs {esc(self.reference)}, "
                f"{self.n_sim:,} simulated trials: {self.n_failed} failed, "
                f"{self.n_not_converged} not converged, {self.n_singular} singular.</p>")
        rule = f"<p><small>{esc(ACCOUNTING_RULE.format(share=self.max_failed_share))}</small></p>"
        return (flag + head + html_table(self.design_table()[["quantity", "value", "source"]])
                + rule)


def _resolve_jobs(n_jobs: int) -> int:
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        import os

        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return int(n_jobs)


def _prepare(design: TrialDesign, overrides: dict, random_slopes, engine) -> tuple[TrialDesign, dict]:
    if not isinstance(design, TrialDesign):
        raise ParameterError("design must be a TrialDesign")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes:
        design = design.replace(**changes)
    if engine not in ENGINES:
        raise ParameterError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "statsmodels" and design.test == "arm:week" and design.df != "wald":
        raise ParameterError("the statsmodels engine has no Satterthwaite df; use df='wald'")
    if random_slopes is None:
        random_slopes = len(design.weeks) > 2
    if random_slopes and len(design.weeks) < 3:
        raise ParameterError("a random slope needs at least three visits")
    return design, dict(test=design.test, target=design.target, reference=design.reference,
                        df=design.df, random_slopes=bool(random_slopes), engine=engine)


def _check_run(n_sim, ci_method, confidence, max_failed_share):
    if int(n_sim) < 1:
        raise ParameterError("n_sim must be at least 1")
    if ci_method not in ("clopper-pearson", "wilson"):
        raise ParameterError("ci_method must be 'clopper-pearson' or 'wilson'")
    if not 0 < confidence < 1:
        raise ParameterError(f"confidence must be in (0, 1), got {confidence}")
    if not 0 <= max_failed_share < 1:
        raise ParameterError(f"max_failed_share must be in [0, 1), got {max_failed_share}")


def simulate_power(design: TrialDesign, *, test: str | None = None, target: str | None = None,
                   reference: str | None = None, df: str | None = None,
                   alpha: float | None = None, n_sim: int = 1000, seed: int = 0,
                   n_jobs: int = -1, client=None, chunk_size: int = 50,
                   random_slopes: bool | None = None, engine: str = "hipstats",
                   ci_method: str = "clopper-pearson", confidence: float = 0.95,
                   max_failed_share: float = MAX_FAILED_SHARE,
                   progress: bool | None = None) -> PowerResult:
    """Power of a trial design by simulation: draw, fit, test, repeat.

    Each simulated trial is drawn from ``design`` (see :class:`TrialDesign`), analysed, and
    the contrast of the design's ``target`` vs ``reference`` arm is tested at level
    ``alpha``; power is the share of significant trials, with a binomial Monte Carlo CI.
    ``test``, ``target``, ``reference``, ``df`` and ``alpha`` default to the design's (they
    are part of the design, so every output can show them); passing them here changes the
    design (their source becomes ``user``).

    The tests (``design.test``):

    ``"arm:week"`` (default)
        Linear mixed model ``value ~ week * arm`` (REML, treatment coding, all arms, all
        observed visits, so dropouts contribute their early visits) with a random intercept
        and slope per participant (intercept only with ``random_slopes=False``; default: slope
        when there are three or more visits). The test is the difference in mean slope
        (deg/week) between target and reference, the ``week x arm`` coefficient,
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
    test, target, reference, df, alpha : optional
        Override the design's (see above).
    n_sim : int
        Simulated trials.
    seed : int or numpy.random.SeedSequence
        Root seed; trial *r* uses child *r* of ``SeedSequence(seed).spawn(n_sim)``.
    n_jobs : int
        joblib processes (loky); -1 all cores, 1 in this process.
    client : distributed.Client or str, optional
        Run on a Dask cluster (a client or a scheduler address such as
        ``"tcp://10.0.0.5:8786"``) instead of joblib.
    chunk_size : int
        Trials per task (amortises scheduling overhead); does not change results.
    random_slopes : bool, optional
        Random slope in the analysis model (``"arm:week"`` only).
    engine : {"hipstats", "statsmodels"}
        ``"hipstats"``: :class:`hipstats.power.reml.PatternModel`, REML from per-pattern
        sufficient statistics shared across trials (checked against lme4/lmerTest);
        ``"statsmodels"``: MixedLM per trial (slow, Wald df only; for comparison).
    ci_method : {"clopper-pearson", "wilson"}
    confidence : float
        Level of the Monte Carlo CI.
    max_failed_share : float
        A result with more failed fits than this share is flagged.
    progress : bool, optional
        Progress bar (terminal) or line (notebook); default on when standard error is a
        terminal or in a notebook, off in logs (:mod:`hipstats.power.progress`).

    Returns
    -------
    PowerResult

    Notes
    -----
    Nothing is left out silently (:data:`ACCOUNTING_RULE`): failed fits count as not
    significant and are counted (``n_failed``); fits that did not converge or are singular
    keep their p-value and are counted (``n_not_converged``, ``n_singular``);
    ``power_fitted`` is the power among fits that did not fail. A warning is issued and the
    result is flagged when more than ``max_failed_share`` failed.

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
    design, opts = _prepare(design, dict(test=test, target=target, reference=reference, df=df,
                                         alpha=alpha), random_slopes, engine)
    _check_run(n_sim, ci_method, confidence, max_failed_share)
    t0 = time.perf_counter()
    arr, backend = run_replicates(design, opts, n_sim=int(n_sim), seed=seed,
                                  n_jobs=_resolve_jobs(n_jobs), client=client,
                                  chunk_size=max(1, int(chunk_size)), progress=progress)
    return _make_result(arr, design, opts, seed=seed, backend=backend,
                        elapsed=time.perf_counter() - t0, ci_method=ci_method,
                        confidence=confidence, max_failed_share=max_failed_share)


def _seed_label(seed):
    if isinstance(seed, np.random.SeedSequence):
        return f"SeedSequence(entropy={seed.entropy}, spawn_key={tuple(seed.spawn_key)})"
    return seed


def _make_result(arr, design, opts, *, seed, backend, elapsed, ci_method, confidence,
                 max_failed_share, warn=True) -> PowerResult:
    reps = pd.DataFrame(arr, columns=list(REPLICATE_COLUMNS))
    for c in ("converged", "singular", "failed"):
        reps[c] = reps[c].astype(bool)
    reps["rejected"] = ~reps["failed"] & (reps["p_value"] < design.alpha)
    reps.insert(0, "replicate", np.arange(len(reps)))
    n_fit = int((~reps["failed"]).sum())
    n_rej = int(reps["rejected"].sum())
    n_failed = len(reps) - n_fit
    if n_fit == 0:
        raise AnalysisError("every simulated trial failed to fit; the design cannot support the "
                            f"test {design.test!r} (check n_per_arm, visits and dropout)")
    if warn and n_failed > max_failed_share * len(reps):
        warnings.warn(f"{n_failed} of {len(reps)} simulated trials could not be analysed "
                      f"(more than {max_failed_share:.0%}); they count as not significant",
                      RuntimeWarning, stacklevel=3)
    lo, hi = _binomial_ci(n_rej, len(reps), confidence, ci_method)
    fitted = reps[~reps["failed"]]
    return PowerResult(
        power=n_rej / len(reps), ci_low=lo, ci_high=hi, power_fitted=n_rej / n_fit,
        ci_method=ci_method, confidence=confidence, n_sim=len(reps), n_failed=n_failed,
        n_not_converged=int((~fitted["converged"]).sum()),
        n_singular=int(fitted["singular"].sum()), n_rejected=n_rej,
        max_failed_share=max_failed_share, alpha=design.alpha, test=design.test,
        df=design.df if design.test == "arm:week" else "residual", target=design.target,
        reference=design.reference,
        true_effect=design.true_contrast(design.test, design.target, design.reference),
        seed=_seed_label(seed), backend=backend, elapsed_s=elapsed, design=design,
        replicates=reps, engine=opts["engine"])


def curve_row(res: PowerResult) -> dict:
    """One power-curve row (the columns of :func:`power_curve`) from a result."""
    return {"n_per_arm": int(max(res.design.n_per_arm.values())), "n_total": res.design.n_total,
            "power": res.power, "power_ci_low": res.ci_low, "power_ci_high": res.ci_high,
            "power_se": res.mc_se, "power_fitted": res.power_fitted, "n_sim": res.n_sim,
            "n_failed": res.n_failed, "n_not_converged": res.n_not_converged,
            "n_singular": res.n_singular, "flagged": res.flagged,
            "true_effect": res.true_effect, "test": res.test, "target": res.target,
            "reference": res.reference, "alpha": res.alpha}


#: the columns of :meth:`PowerCurveResult.summary` (the key estimates of each point)
CURVE_SUMMARY_COLUMNS = ["n_per_arm", "n_total", "power", "power_ci_low", "power_ci_high", "n_failed",
                         "n_not_converged", "n_singular", "flagged"]


class PowerCurveResult(Result):
    """Simulated power along participants per arm (see :func:`power_curve`).

    Attributes
    ----------
    curve : DataFrame
        One row per point (the columns of :func:`curve_row`): n_per_arm, n_total, power,
        power_ci_low, power_ci_high, power_se, power_fitted, n_sim, n_failed, n_not_converged,
        n_singular, flagged, true_effect, test, target, reference, alpha.
    points : list of PowerResult
        The simulation of every point, in the order of ``curve``.
    test, target, reference : str
        The question every point answers.
    alpha : float
        Significance level of the test.
    confidence : float
        Level of the Monte Carlo intervals (``ci_method``).
    notes : list of str
        The counting rule and every flagged point.

    Examples
    --------
    >>> import pickle
    >>> from hipstats.power import TrialDesign, power_curve
    >>> plan = TrialDesign(arms=("usual care", "loading"), weeks=(0, 6, 12), sd_slope=0,
    ...                    effects={"usual care": 0, "loading": 2}, dropout=0)
    >>> res = power_curve(plan, [15, 60], test="ancova", n_sim=80, n_jobs=1, seed=4)
    >>> int(res.first_reaching(0.6)["n_per_arm"]), res.to_frame().shape[1]
    (60, 17)
    >>> pickle.loads(pickle.dumps(res)).summary().equals(res.summary())
    True
    """

    def __init__(self, points: Sequence[PowerResult], design_table: pd.DataFrame, *,
                 confidence: float, ci_method: str, max_failed_share: float):
        self.points = list(points)
        if not self.points:
            raise ParameterError("a power curve needs at least one point")
        self.curve = pd.DataFrame([curve_row(r) for r in self.points])
        first = self.points[0]
        self.test, self.target, self.reference, self.alpha = (first.test, first.target,
                                                               first.reference, first.alpha)
        self.confidence, self.ci_method = float(confidence), ci_method
        self._design_table = design_table
        self.add_note(ACCOUNTING_RULE.format(share=max_failed_share))
        for r in self.points:
            if r.flagged:
                self.add_note(f"n = {r.design.n_total // len(r.design.arms)} per arm: {r.flag_text}")

    @property
    def _title(self) -> str:
        return f"Simulated power curve: {self.target} vs {self.reference} ({self.test})"

    def summary(self) -> pd.DataFrame:
        """One row per point: size, power with its Monte Carlo CI, failed/unconverged/singular fits."""
        return self.curve[CURVE_SUMMARY_COLUMNS].copy()

    def to_frame(self) -> pd.DataFrame:
        """Every column of every point (the DataFrame :func:`power_curve` used to return, with
        ``attrs["design_table"]`` and ``attrs["notes"]``)."""
        frame = self.curve.copy()
        frame.attrs["design_table"] = self.design_table()
        frame.attrs["notes"] = list(self.notes)
        return frame

    def design_table(self) -> pd.DataFrame:
        """The design assumed, the curve's sizes in the participants-per-arm row."""
        return self._design_table.copy()

    def first_reaching(self, power: float) -> pd.Series | None:
        """The row of the smallest simulated size whose power reaches ``power`` (None if none)."""
        d = self.curve.sort_values("n_per_arm", kind="stable")
        reached = d[d["power"] >= power]
        return reached.iloc[0] if len(reached) else None

    def plot(self, *, target_power: float | None = 0.8, ax=None):
        """The power curve with its Monte Carlo band (:func:`hipstats.plots.power_curve_plot`)."""
        from hipstats.plots.power import power_curve_plot  # noqa: PLC0415 - matplotlib on demand

        return power_curve_plot(self, target_power=target_power, ax=ax)


def power_curve(design: TrialDesign, n_per_arm: Sequence[int], *, n_sim: int = 1000,
                seed: int = 0, n_jobs: int = -1, client=None, chunk_size: int = 50,
                random_slopes: bool | None = None, engine: str = "hipstats",
                ci_method: str = "clopper-pearson", confidence: float = 0.95,
                max_failed_share: float = MAX_FAILED_SHARE, progress: bool | None = None,
                return_results: bool = False, **overrides):
    """Simulated power along participants per arm.

    Point *i* (the same number in every arm) uses child *i* of
    ``SeedSequence(seed).spawn(len(n_per_arm))``, so it equals
    ``simulate_power(design.with_n(n), seed=child)``. All points' trials run in one pool of
    workers (one progress bar for the whole curve).

    Parameters
    ----------
    design : TrialDesign
        Everything but the size.
    n_per_arm : sequence of int
        Participants enrolled per arm at each point.
    n_sim, seed, n_jobs, client, chunk_size, random_slopes, engine, ci_method, confidence,
    max_failed_share, progress
        As in :func:`simulate_power`.
    return_results : bool
        Also return the :class:`PowerResult` of every point (they are the result's ``points``
        too).
    **overrides
        ``test``, ``target``, ``reference``, ``df``, ``alpha``: change the design.

    Returns
    -------
    PowerCurveResult
        ``summary()`` one row per point (size, power and its Monte Carlo CI, counts),
        ``to_frame()`` every column (n_per_arm, n_total, power, power_ci_low, power_ci_high,
        power_se, power_fitted, n_sim, n_failed, n_not_converged, n_singular, flagged,
        true_effect, test, target, reference, alpha; the DataFrame this function returned
        before, with ``attrs["design_table"]`` and ``attrs["notes"]``), ``design_table()``,
        ``plot()`` the curve, ``notes`` the counting rule and any flags. With
        ``return_results``, the pair (result, list of PowerResult).

    Examples
    --------
    >>> from hipstats.power import TrialDesign, power_curve
    >>> d = TrialDesign(arms=("control", "loading"), weeks=(0, 12),
    ...                 effects={"control": 0, "loading": 5}, sd_slope=0, sd_residual=6)
    >>> curve = power_curve(d, [10, 40], test="change", n_sim=100, n_jobs=1)
    >>> list(curve.summary()["n_per_arm"]), bool(curve.summary()["flagged"].any())
    ([10, 40], False)
    """
    unknown = set(overrides) - {"test", "target", "reference", "df", "alpha"}
    if unknown:
        raise ParameterError(f"unknown arguments: {sorted(unknown)}")
    ns = [int(n) for n in n_per_arm]
    if not ns:
        raise ParameterError("n_per_arm must list at least one size")
    design, opts = _prepare(design, overrides, random_slopes, engine)
    _check_run(n_sim, ci_method, confidence, max_failed_share)
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    children = root.spawn(len(ns))
    designs = [design.with_n(n) for n in ns]
    tasks, owner = [], []
    for i, (d, child) in enumerate(zip(designs, children)):
        for c in chunk_seeds(child, int(n_sim), max(1, int(chunk_size))):
            tasks.append((d, opts, c))
            owner.append(i)
    t0 = time.perf_counter()
    parts, backend = run_tasks(tasks, n_jobs=_resolve_jobs(n_jobs), client=client,
                               progress=progress,
                               description=f"simulating {len(ns)} designs x {n_sim:,} trials")
    elapsed = time.perf_counter() - t0
    results = []
    for i, (d, child) in enumerate(zip(designs, children)):
        arr = np.vstack([p for p, o in zip(parts, owner) if o == i])
        results.append(_make_result(arr, d, opts, seed=child, backend=backend,
                                    elapsed=elapsed / len(ns), ci_method=ci_method,
                                    confidence=confidence, max_failed_share=max_failed_share))
    table = design.design_table()
    table.loc[table["quantity"] == "Participants per arm (enrolled)", ["value", "source"]] = (
        ", ".join(str(n) for n in ns) + " (the curve's points)", "user")
    curve = PowerCurveResult(results, table, confidence=confidence, ci_method=ci_method,
                             max_failed_share=max_failed_share)
    return (curve, results) if return_results else curve
