"""Private engine of :mod:`hipstats.power`: replicate generator, per-replicate tests, runners.

Nothing here is public API. The public functions in :mod:`hipstats.power` validate their
input, build a :class:`hipstats.power.TrialDesign` and call :func:`run_replicates`.

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

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.errors import AnalysisError

if TYPE_CHECKING:  # pragma: no cover
    from hipstats.power import TrialDesign

#: Columns of the per-replicate result array returned by :func:`run_chunk`.
REPLICATE_COLUMNS = ("estimate", "se", "df", "p_value", "status")
#: status codes: 0 fitted cleanly, 1 fitted with a warning (counted), 2 failed (excluded).
OK, WARNED, FAILED = 0, 1, 2

TESTS = ("arm:week", "change", "ancova")
DF_METHODS = ("satterthwaite", "wald")
ENGINES = ("hipstats", "statsmodels")


# --------------------------------------------------------------------------------------------
# data generation
# --------------------------------------------------------------------------------------------
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


def generate(design: TrialDesign, rng: np.random.Generator,
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
        y, arm = generate(design, np.random.default_rng(ss), sizes, means)
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
