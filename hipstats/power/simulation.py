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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.errors import AnalysisError, ParameterError
from hipstats.power.design import TrialDesign, arm_sizes, draw_trial, mean_trajectories

__all__ = ["PowerResult", "simulate_power", "power_curve", "run_replicates", "run_chunk",
           "lmm_arrays", "lmm_frame", "true_theta", "arm_week_test", "change_test",
           "ancova_test", "fit_statsmodels", "REPLICATE_COLUMNS", "TESTS", "DF_METHODS",
           "ENGINES"]


#: Columns of the per-replicate result array returned by :func:`run_chunk`.
REPLICATE_COLUMNS = ("estimate", "se", "df", "p_value", "status")
#: status codes: 0 fitted cleanly, 1 fitted with a warning (counted), 2 failed (excluded).
OK, WARNED, FAILED = 0, 1, 2

TESTS = ("arm:week", "change", "ancova")
DF_METHODS = ("satterthwaite", "wald")
ENGINES = ("hipstats", "statsmodels")


# --------------------------------------------------------------------------------------------
# per-replicate tests
# --------------------------------------------------------------------------------------------
def _p_value(est: float, se: float, df: float) -> float:
    stat = abs(est / se)
    if not np.isfinite(df):
        return float(2.0 * stats.norm.sf(stat))
    return float(2.0 * stats.t.sf(stat, df))


def _two_arm_completers(y: np.ndarray, arm: np.ndarray, it: int, ir: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = ((arm == it) | (arm == ir)) & ~np.isnan(y[:, -1]) & ~np.isnan(y[:, 0])
    return y[keep, 0], y[keep, -1], (arm[keep] == it).astype(float)


def _ols_coef_test(X: np.ndarray, yv: np.ndarray, j: int) -> tuple[float, float, float, int]:
    """Estimate, SE, residual df and status of coefficient *j* in an OLS fit."""
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
    return float(beta[j]), float(np.sqrt(s2 * xtx_inv[j, j])), float(df), OK


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
    """Difference in mean slope (target - reference) in the random-slope LMM.

    The hipstats engine fits the model arrays directly (private fast path of
    :func:`hipstats.models.lmm.fit_lmm`), starting the optimiser at ``theta0`` if given.
    """
    if engine == "hipstats":
        from hipstats.models.lmm import _fit_arrays

        yv, X, names, pid = lmm_arrays(y, arm, weeks, n_arms, ir)
        Z, re_names = (X[:, :2], names[:2]) if random_slopes else (X[:, :1], names[:1])
        fit = _fit_arrays(X, yv, Z, pid, exog_names=names, re_names=re_names, warn=False,
                          theta0=theta0)
    else:
        data, terms = lmm_frame(y, arm, weeks, n_arms, ir)
        formula = "value ~ week + " + " + ".join(terms)
        fit = resolve_engine(engine)(formula, data, "participant_id",
                                     "1 + week" if random_slopes else "1", warn=False)
    name = f"week_a{it}"
    names = list(fit.fe_params.index)
    j = names.index(name)
    est = float(fit.fe_params.iloc[j])
    se = float(np.sqrt(np.asarray(fit.cov_fe)[j, j]))
    if df_method == "wald":
        df = np.inf
    else:
        L = np.zeros(len(names))
        L[j] = 1.0
        df = float(np.squeeze(fit.df_satterthwaite(L)))
    return est, se, df, OK if getattr(fit, "converged", True) else WARNED


_TEST_FUNCS = {"arm:week": arm_week_test, "change": change_test, "ancova": ancova_test}


# --------------------------------------------------------------------------------------------
# mixed-model engines (same call signature as hipstats.models.lmm.fit_lmm)
# --------------------------------------------------------------------------------------------
class _StatsmodelsFit:
    """Adapter giving a statsmodels MixedLM fit the attributes the power code reads."""

    def __init__(self, res):
        k = len(res.model.exog_names)
        self.fe_params = res.fe_params
        self.cov_fe = np.asarray(res.cov_params())[:k, :k]
        self.bse = pd.Series(np.sqrt(np.diag(self.cov_fe)), index=self.fe_params.index)
        self.converged = bool(res.converged)

    def df_satterthwaite(self, L):  # pragma: no cover - documented limitation
        raise AnalysisError("the statsmodels engine offers no Satterthwaite df; use df='wald'")


def fit_statsmodels(formula, data, groups, re_formula="1", *, nested=None, reml=True,
                    warn=True):
    """statsmodels MixedLM behind the ``fit_lmm`` call signature (reference / benchmark only)."""
    import statsmodels.formula.api as smf

    mod = smf.mixedlm(formula, data, groups=data[groups], re_formula="~" + re_formula)
    with warnings.catch_warnings():
        if not warn:
            warnings.simplefilter("ignore")
        try:
            return _StatsmodelsFit(mod.fit(reml=reml))
        except (ValueError, np.linalg.LinAlgError) as err:
            raise AnalysisError(f"statsmodels MixedLM failed: {err}") from err


def resolve_engine(engine: str):
    if engine == "statsmodels":
        return fit_statsmodels
    if engine == "hipstats":
        from hipstats.models.lmm import fit_lmm

        return fit_lmm
    raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")


# --------------------------------------------------------------------------------------------
# running replicates
# --------------------------------------------------------------------------------------------
def run_chunk(design: TrialDesign, options: dict, seeds: Sequence[np.random.SeedSequence]
              ) -> np.ndarray:
    """Run the replicates of *seeds*; one row of :data:`REPLICATE_COLUMNS` per seed."""
    sizes = arm_sizes(design)
    means = mean_trajectories(design)
    func = _TEST_FUNCS[options["test"]]
    it, ir = design.arms.index(options["target"]), design.arms.index(options["reference"])
    extra = dict(weeks=np.asarray(design.weeks, dtype=float), n_arms=len(design.arms),
                 random_slopes=options["random_slopes"], df_method=options["df"],
                 engine=options["engine"])
    if options["engine"] == "hipstats":
        extra["theta0"] = true_theta(design, options["random_slopes"])
    out = np.full((len(seeds), len(REPLICATE_COLUMNS)), np.nan)
    for i, ss in enumerate(seeds):
        y, arm = draw_trial(design, np.random.default_rng(ss), sizes, means)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                est, se, df, status = func(y, arm, it, ir, **extra)
            except (AnalysisError, np.linalg.LinAlgError, ArithmeticError):
                out[i, 4] = FAILED
                continue
        if not (np.isfinite(est) and np.isfinite(se) and se > 0 and df > 0):
            out[i, 4] = FAILED
            continue
        out[i] = (est, se, df, _p_value(est, se, df), status)
    return out


def chunk_seeds(seed: int | np.random.SeedSequence, n_sim: int, chunk_size: int
                ) -> list[list[np.random.SeedSequence]]:
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    children = root.spawn(n_sim)
    return [children[i:i + chunk_size] for i in range(0, n_sim, chunk_size)]


def run_replicates(design: TrialDesign, options: dict, *, n_sim: int, seed, n_jobs: int,
                   client=None, chunk_size: int = 50) -> tuple[np.ndarray, str]:
    """Run *n_sim* replicates sequentially, with joblib (loky) or on a Dask cluster.

    Returns the (n_sim, 5) replicate array in replicate order and the backend name used.
    """
    chunks = chunk_seeds(seed, n_sim, chunk_size)
    if client is not None:
        from distributed import Client

        own = isinstance(client, str)
        cl = Client(client) if own else client
        try:
            futures = cl.map(run_chunk, [design] * len(chunks), [options] * len(chunks),
                             chunks, pure=False)
            parts = cl.gather(futures)
        finally:
            if own:
                cl.close()
        return np.vstack(parts), "dask"
    if n_jobs == 1 or len(chunks) == 1:
        return np.vstack([run_chunk(design, options, c) for c in chunks]), "sequential"
    from joblib import Parallel, delayed

    parts = Parallel(n_jobs=n_jobs, backend="loky")(
        delayed(run_chunk)(design, options, c) for c in chunks)
    return np.vstack(parts), "loky"


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
        ok = self.replicates[self.replicates["status"] < FAILED]
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

        from hipstats.plots import theme

        ok = self.replicates[self.replicates["status"] < FAILED]
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
    if test not in TESTS:
        raise ParameterError(f"test must be one of {TESTS}, got {test!r}")
    if df not in DF_METHODS:
        raise ParameterError(f"df must be one of {DF_METHODS}, got {df!r}")
    if engine not in ENGINES:
        raise ParameterError(f"engine must be one of {ENGINES}, got {engine!r}")
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
    arr, backend = run_replicates(design, opts, n_sim=int(n_sim), seed=seed,
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
    reps = pd.DataFrame(arr, columns=list(REPLICATE_COLUMNS))
    reps["status"] = reps["status"].astype(int)
    ok = reps["status"] < FAILED
    reps["rejected"] = ok & (reps["p_value"] < alpha)
    reps.insert(0, "replicate", np.arange(len(reps)))
    n_ok, n_rej = int(ok.sum()), int(reps["rejected"].sum())
    n_failed = len(reps) - n_ok
    if n_failed:
        warnings.warn(f"{n_failed} of {len(reps)} replicate fits failed and were excluded "
                      "from the power estimate", RuntimeWarning, stacklevel=3)
    if n_ok == 0:
        raise AnalysisError("every replicate fit failed; the design cannot support the test "
                            f"{opts['test']!r} (check n_per_arm, visits and dropout)")
    lo, hi = _binomial_ci(n_rej, n_ok, ci_level, ci_method)
    return PowerResult(
        power=n_rej / n_ok, ci_low=lo, ci_high=hi, ci_method=ci_method, ci_level=ci_level,
        n_sim=len(reps), n_failed=n_failed, n_warned=int((reps["status"] == WARNED).sum()),
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

