"""Linear mixed models for longitudinal cohorts, fitted the lme4 way and fast.

The model is

.. math::

    y = X\\beta + Zb + \\varepsilon,\\qquad
    b \\sim N(0, \\sigma^2 \\Lambda_\\theta\\Lambda_\\theta^\\top),\\qquad
    \\varepsilon \\sim N(0, \\sigma^2 I),

with all random effects grouped by participant: a random intercept and optional random slopes
(correlated, lme4's ``(1 + week | participant_id)``) and optionally a random intercept for a
nested factor such as side within participant (lme4's ``(1 | participant_id:side)``).

:func:`fit_lmm` minimises lme4's profiled deviance over the relative covariance factor
:math:`\\theta` (Bates et al. 2015, sections 3.4-3.6). With :math:`L_\\theta L_\\theta^\\top =
\\Lambda^\\top Z^\\top Z\\Lambda + I`, :math:`R_X` the Cholesky factor of the Schur complement
for :math:`X` and :math:`r^2_\\theta` the minimal penalised residual sum of squares,

.. math::

    d_{ML}(\\theta) = \\log|L_\\theta|^2 + n\\left[1 + \\log\\frac{2\\pi r^2_\\theta}{n}\\right],
    \\quad
    d_{REML}(\\theta) = \\log|L_\\theta|^2 + \\log|R_X|^2
        + (n-p)\\left[1 + \\log\\frac{2\\pi r^2_\\theta}{n-p}\\right].

Because the random effects are grouped within participant the system is block diagonal; one
deviance evaluation works from per-participant sufficient statistics
(:math:`Z_i^\\top Z_i, Z_i^\\top X_i, Z_i^\\top y_i`) in :math:`O(N)` with vectorised tiny
Cholesky factors, and the analytic gradient is used by a bounded quasi-Newton optimiser
(L-BFGS-B, lower bound 0 on the diagonal of :math:`\\Lambda`) with a Nelder-Mead polish when
the gradient check fails.

Satterthwaite degrees of freedom follow lmerTest (Kuznetsova, Brockhoff & Christensen 2017):
for a contrast :math:`l`, :math:`\\nu = 2 (l^\\top C l)^2 / (g^\\top A g)` with
:math:`C(\\theta,\\sigma) = \\sigma^2 (R_X^\\top R_X)^{-1}`, :math:`g_j = l^\\top (\\partial C /
\\partial\\varphi_j) l` and :math:`A = 2 H^{-1}`, :math:`H` the Hessian of the (non-profiled)
deviance in :math:`\\varphi = (\\theta, \\sigma)`.

References
----------
Bates D, Maechler M, Bolker B, Walker S (2015). Fitting linear mixed-effects models using
lme4. Journal of Statistical Software 67(1), 1-48. doi:10.18637/jss.v067.i01

Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package: tests in linear mixed
effects models. Journal of Statistical Software 82(13), 1-26. doi:10.18637/jss.v082.i13

Examples
--------
>>> import numpy as np, pandas as pd
>>> from hipstats.models.lmm import fit_lmm
>>> rng = np.random.default_rng(0)
>>> pid = np.repeat(np.arange(40), 5); week = np.tile([0., 3, 6, 9, 12], 40)
>>> value = 36 + rng.normal(0, 8, 40)[pid] + 0.3 * week + rng.normal(0, 2, 200)
>>> df = pd.DataFrame({"participant_id": pid, "week": week, "value": value})
>>> res = fit_lmm("value ~ week", df, groups="participant_id")
>>> round(float(res.fe_params["week"]), 2)
0.32
"""

from __future__ import annotations

import contextlib
import html
import warnings

import numpy as np
import pandas as pd
import patsy
from scipy import optimize, stats

from hipstats.errors import AnalysisError, ConvergenceWarning, SingularFitWarning
from hipstats.models._lmm_core import Problem
from hipstats.results import Result, html_table, resolve_confidence

__all__ = ["fit_lmm", "LMMResult", "lrt"]

#: lme4's default tolerances: ``check.conv.grad`` (2e-3) and ``isSingular`` (1e-4).
GRAD_TOL = 2e-3
SINGULAR_TOL = 1e-4
#: Richardson levels of the numerical theta block of the Satterthwaite Hessian (1: one central
#: difference, error O(h^2); df within 5e-6 of 4 levels on every test_lmm fixture).
SATT_RICHARDSON = 1


# --------------------------------------------------------------------------- model frame
def _strip_tilde(f: str) -> str:
    f = str(f).strip()
    return f[1:].strip() if f.startswith("~") else f


def _columns_if_row_wise(terms, frame, eval_env):
    """Data columns used by ``terms`` if each design row depends on its data row alone.

    That holds unless a factor uses a stateful transform (``center``, ``standardize``,
    splines: they memorise data-wide statistics) or a name that is neither a column nor a
    non-data object of the formula environment. Returns None when it does not hold.
    """
    import builtins

    import patsy.builtins
    from patsy.eval import ast_names

    known = set(vars(patsy.builtins)) | set(vars(builtins))
    cols = []
    for term in terms:
        for factor in term.factors:
            if not isinstance(factor, patsy.EvalFactor):
                return None
            if factor.memorize_passes_needed({}, eval_env) > 0:
                return None
            for name in ast_names(factor.code):
                if name in frame.columns:
                    if name not in cols:
                        cols.append(name)
                    continue
                try:
                    obj = eval_env.namespace[name]
                except KeyError:
                    if name in known:
                        continue
                    return None
                if isinstance(obj, (np.ndarray, pd.Series, pd.Index, list, tuple)):
                    return None
    return cols


def _design(terms, frame, eval_env):
    """patsy design (NA rows dropped) of ``terms``, a DataFrame indexed like ``frame``.

    patsy handles categorical data element by element in Python, which dominates the cost of
    a fit with tens of thousands of rows. When every design row depends only on its data row
    (see :func:`_columns_if_row_wise`) the design is built on the distinct rows of the
    columns used (e.g. arms x weeks) and expanded; otherwise on the full frame.
    """
    desc = patsy.ModelDesc([], list(terms))
    cols = _columns_if_row_wise(terms, frame, eval_env)
    if cols:
        ids = frame.groupby(cols, dropna=False, sort=False, observed=True).ngroup().to_numpy()
        uniq, first = np.unique(ids, return_index=True)
        if len(uniq) <= len(frame) // 2:
            sub = frame[cols].iloc[first]
            sub.index = uniq
            D = patsy.dmatrix(desc, sub, eval_env=eval_env, NA_action="drop",
                              return_type="dataframe")
            keep = np.isin(ids, D.index.to_numpy())
            out = pd.DataFrame(D.to_numpy()[np.searchsorted(D.index.to_numpy(), ids[keep])],
                               index=frame.index[keep], columns=D.columns)
            return out, D.design_info
    D = patsy.dmatrix(desc, frame, eval_env=eval_env, NA_action="drop", return_type="dataframe")
    return D, D.design_info


def _build_frame(formula, data, groups, re_formula, nested, eval_env):
    """Model frame (rows complete in every variable used) and the design matrices."""
    if not isinstance(data, pd.DataFrame):
        raise AnalysisError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    for col, what in ((groups, "groups"), (nested, "nested")):
        if col is not None and col not in data.columns:
            raise AnalysisError(f"{what} column {col!r} not found in data "
                                f"(columns: {', '.join(map(str, data.columns))})")
    df = data if data.index.is_unique else data.reset_index(drop=True)
    try:
        desc = patsy.ModelDesc.from_formula(formula)
        re_desc = patsy.ModelDesc.from_formula(_strip_tilde(re_formula))
    except patsy.PatsyError as err:
        raise AnalysisError(f"cannot parse formula {formula!r} / re_formula {re_formula!r}: "
                            f"{err}") from err
    if not desc.lhs_termlist:
        raise AnalysisError(f"formula {formula!r} has no response (write 'value ~ ...')")

    def designs(frame):
        try:
            y, _ = _design(desc.lhs_termlist, frame, eval_env)
            X, xinfo = _design(desc.rhs_termlist, frame, eval_env)
            Z, zinfo = _design(re_desc.rhs_termlist, frame, eval_env)
        except patsy.PatsyError as err:
            raise AnalysisError(f"cannot build the model from formula {formula!r} / "
                                f"re_formula {re_formula!r}: {err}") from err
        return y, X, Z, xinfo, zinfo

    y, X, Z, xinfo, zinfo = designs(df)
    keep = (df.index.isin(y.index) & df.index.isin(X.index) & df.index.isin(Z.index)
            & df[groups].notna().to_numpy())
    if nested is not None:
        keep &= df[nested].notna().to_numpy()
    frame = df.loc[keep]
    # like lme4's model frame: drop categories without rows (they are not estimable)
    unused = {c: frame[c].cat.remove_unused_categories() for c in frame.columns
              if isinstance(frame[c].dtype, pd.CategoricalDtype)
              and frame[c].nunique(dropna=True) < len(frame[c].cat.categories)}
    if unused:
        frame = frame.assign(**unused)
    if unused or not (len(frame) == len(y) == len(X) == len(Z)):
        y, X, Z, xinfo, zinfo = designs(frame)
    if y.shape[1] != 1:
        raise AnalysisError(f"the response of {formula!r} must be one numeric column, "
                            f"got columns {list(y.columns)}")
    return frame, y, X, Z, xinfo, zinfo


class _Spec:
    """Everything needed to (re)fit a model: formula, data, structure, patsy environment."""

    def __init__(self, formula, data, groups, re_formula, nested, eval_env):
        self.formula, self.groups = formula, groups
        self.re_formula, self.nested = re_formula, nested
        self.eval_env = eval_env
        frame, y, X, Zre, xinfo, zinfo = _build_frame(formula, data, groups, re_formula, nested,
                                                      eval_env)
        self.frame = frame
        self.yname = y.columns[0]
        self.design_info = xinfo
        self.re_design_info = zinfo
        self.exog_names = list(X.columns)
        self.re_names = list(Zre.columns)
        self.X = X.to_numpy(float)
        self.y = y.to_numpy(float).ravel()
        Zr = Zre.to_numpy(float)
        n, p = self.X.shape
        if n == 0:
            raise AnalysisError("no complete rows left for the model (every row has a missing "
                                f"value in a variable of {formula!r}, {re_formula!r} or "
                                f"{groups!r})")
        codes, uniques = pd.factorize(frame[groups], sort=True)
        self.codes, self.group_labels = codes, pd.Index(uniques, name=groups)
        if nested is not None:
            ncodes, nlev = pd.factorize(frame[nested], sort=True)
            self.nested_levels = list(nlev)
            Zn = np.zeros((n, len(nlev)))
            Zn[np.arange(n), ncodes] = 1.0
            Z = np.column_stack([Zr, Zn])
            n_nested_groups = len(pd.MultiIndex.from_arrays([codes, ncodes]).unique())
        else:
            self.nested_levels = []
            Z = Zr
            n_nested_groups = 0
        self.Z = Z
        self._check(n, p, len(uniques), Zr.shape[1], n_nested_groups)

    def __getstate__(self):
        # patsy's DesignInfo and the formula's evaluation environment do not pickle; they are
        # rebuilt from the formula and the model frame on unpickling
        state = dict(self.__dict__)
        state.update(design_info=None, re_design_info=None, eval_env=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.frame is None:
            return
        env = patsy.EvalEnvironment([{"np": np, "numpy": np, "pd": pd}])
        try:
            *_, xinfo, zinfo = _build_frame(self.formula, self.frame, self.groups, self.re_formula,
                                            self.nested, env)
        except AnalysisError:  # the formula used names of the caller's session: no new designs
            return
        self.design_info, self.re_design_info, self.eval_env = xinfo, zinfo, env

    @classmethod
    def from_arrays(cls, X, y, Z, groups, *, exog_names, re_names):
        """Specification from ready design arrays (no formula, no nested factor).

        For callers that fit the same design many times (simulation power): patsy's design
        building costs more than the fit of a small model. The result has no model frame
        or ``design_info``, so it cannot ``predict``.
        """
        self = cls.__new__(cls)
        X = np.asarray(X, float)
        y = np.asarray(y, float).ravel()
        Z = np.asarray(Z, float)
        groups = np.asarray(groups)
        if X.ndim != 2 or Z.ndim != 2 or not (len(X) == len(y) == len(Z) == len(groups)):
            raise AnalysisError(f"X {X.shape}, y {y.shape}, Z {Z.shape} and groups "
                                f"{groups.shape} must be 2-D, 1-D, 2-D, 1-D with equal rows")
        if X.shape[1] != len(exog_names) or Z.shape[1] != len(re_names):
            raise AnalysisError("exog_names / re_names must name every column of X / Z")
        if not (np.isfinite(X).all() and np.isfinite(y).all() and np.isfinite(Z).all()):
            raise AnalysisError("X, y and Z must be finite (drop incomplete rows first)")
        self.formula = "y ~ 0 + " + " + ".join(exog_names)
        self.re_formula = " + ".join(re_names)
        self.groups, self.nested, self.eval_env = "group", None, None
        self.frame = self.design_info = self.re_design_info = None
        self.yname = "y"
        self.exog_names, self.re_names = list(exog_names), list(re_names)
        self.X, self.y, self.Z = X, y, Z
        codes, uniques = pd.factorize(groups, sort=True)
        self.codes, self.group_labels = codes, pd.Index(uniques, name="group")
        self.nested_levels = []
        n, p = X.shape
        if n == 0:
            raise AnalysisError("no rows to fit")
        self._check(n, p, len(uniques), Z.shape[1], 0)
        return self

    def _check(self, n, p, ngroups, q, n_nested_groups):
        rank = np.linalg.matrix_rank(self.X)
        if rank < p:
            # name the columns that are linear combinations of earlier ones
            bad, cols = [], []
            for j, name in enumerate(self.exog_names):
                if np.linalg.matrix_rank(self.X[:, cols + [j]]) == len(cols) + 1:
                    cols.append(j)
                else:
                    bad.append(name)
            raise AnalysisError(f"fixed-effects design of {self.formula!r} is rank deficient "
                                f"(rank {rank} < {p} columns); not estimable: {', '.join(bad)}")
        if ngroups < 2:
            raise AnalysisError(f"need at least 2 levels of {self.groups!r} for random effects, "
                                f"got {ngroups}")
        n_re = ngroups * q + n_nested_groups
        if n <= n_re:
            raise AnalysisError(f"number of observations ({n}) must exceed the number of random "
                                f"effects ({n_re}); the random-effects structure "
                                f"{self.re_formula!r} (nested={self.nested!r}) is too rich")
        if n_nested_groups and n_nested_groups >= n:
            raise AnalysisError(f"each {self.groups}:{self.nested} level has a single "
                                "observation; nested variance is not identifiable")
        if n <= p:
            raise AnalysisError(f"need more observations ({n}) than fixed effects ({p})")

    def problem(self):
        return Problem(self.X, self.y, self.Z, self.codes, len(self.re_names))


# --------------------------------------------------------------------------- optimiser
_BLAS_CONTROLLER: list = []


def _blas_single_thread():
    """Limit BLAS to one thread while fitting (optional ``threadpoolctl``).

    Every linear-algebra call of a fit is tiny (at most p x p); multi-threaded OpenBLAS only
    adds synchronisation overhead there, and a lot of it on a busy machine. The loaded BLAS
    libraries are looked up once per process (a lookup reads the process memory map and
    costs milliseconds, more than a small fit); numpy and scipy have loaded theirs by then.
    """
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - optional
            _BLAS_CONTROLLER.append(None)
        else:
            _BLAS_CONTROLLER.append(ThreadpoolController())
    ctl = _BLAS_CONTROLLER[0]
    if ctl is None:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return ctl.limit(limits=1, user_api="blas")


def _grad_check(prob, theta, reml):
    """lme4's check.conv.grad: max(min(|g|, |H^{-1/2} g|)) over parameters not at a bound.

    Returns the criterion, the gradient and the (symmetrised, central-difference) Hessian of
    the profiled deviance in theta, None when every parameter is at a bound.
    """
    g = prob.gradient(theta, reml)
    free = ~((theta <= prob.lower + 1e-10) & (g > 0))
    if not free.any():
        return 0.0, g, None
    gf = g[free]
    H = _num_jacobian(lambda t: prob.gradient(t, reml), theta)
    H = 0.5 * (H + H.T)
    try:
        scg = np.linalg.solve(np.linalg.cholesky(H[np.ix_(free, free)]), gf)
        crit = float(np.max(np.minimum(np.abs(scg), np.abs(gf))))
    except np.linalg.LinAlgError:
        crit = float(np.max(np.abs(gf)))
    return crit, g, H


def _num_jacobian(fun, x, rel=1e-5):
    x = np.asarray(x, float)
    cols = []
    for k in range(len(x)):
        h = rel * max(abs(x[k]), 1e-2)
        e = np.zeros_like(x)
        e[k] = h
        cols.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2 * h))
    return np.column_stack(cols)


def _lbfgsb(fg, x0, bounds, maxiter):
    opts = dict(maxiter=maxiter, ftol=1e-10, gtol=1e-7, maxcor=20)
    return optimize.minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)


def _escape_boundary(f, fg, phi, fbest, bounded, lower, bounds, maxiter):
    """Move off a boundary point that is not a minimum.

    The deviance depends on Lambda only through Lambda Lambda', which is even in the last
    diagonal entry (and in any diagonal entry whose column is otherwise 0), so such an entry
    at 0 has zero gradient there and a gradient method that hits the bound stops even when
    the minimum is inside. For every bounded entry at 0 a bounded
    Brent line search along that entry decides; if it improves, L-BFGS-B restarts from there.
    """
    nfev = 0
    for _ in range(2 * len(phi)):
        moved = False
        for k in np.flatnonzero(bounded & (phi < SINGULAR_TOL)):
            def line(t, k=k):
                x = phi.copy()
                x[k] = t
                return f(x)

            r = optimize.minimize_scalar(line, bounds=(0.0, 3.0), method="bounded",
                                         options=dict(xatol=1e-7))
            nfev += r.nfev
            if r.fun < fbest - 1e-9:
                start = phi.copy()
                start[k] = r.x
                alt = _lbfgsb(fg, start, bounds, maxiter)
                nfev += alt.nfev
                if alt.fun < r.fun:
                    phi, fbest = np.maximum(alt.x, lower), float(alt.fun)
                else:
                    phi, fbest = start, float(r.fun)
                moved = True
                break
        if not moved:
            break
    return phi, fbest, nfev


def _optimize(prob, reml, maxiter, theta0=None):
    """Minimise the profiled deviance over theta.

    The optimiser works on ``phi = theta * d`` where ``d`` is the root-mean-square of the
    random-effects column that each theta entry multiplies (the factor of a random slope on
    weeks is about the SD of weeks), which makes the problem far better conditioned; the
    start is lme4's identity factor in those units. Bounded L-BFGS-B with the analytic
    gradient; if a bounded entry ends at 0 the optimiser is restarted once with that entry
    moved off the boundary when a line search finds a lower deviance (a boundary point that
    is not a minimum is not accepted, see :func:`_escape_boundary`); if
    lme4's gradient criterion still fails a Nelder-Mead polish and a second L-BFGS-B run
    follow. ``theta0`` (e.g. the true values in a simulation) replaces the identity start;
    bounded entries start at least 0.01 (scaled units) off their bound.
    """
    s = prob.theta_scale

    def fg(phi):
        v, g = prob.value_and_grad(phi / s, reml)
        return v, g / s

    bounds = [(lo if np.isfinite(lo) else None, None) for lo in prob.lower]
    bounded = np.isfinite(prob.lower)
    if theta0 is None:
        x0 = prob.theta0.copy()
    else:
        x0 = np.asarray(theta0, float) * s
        x0 = np.where(bounded, np.maximum(x0, prob.lower + 1e-2), x0)
    res = _lbfgsb(fg, x0, bounds, maxiter)
    nfev, nit, msg = res.nfev, res.nit, str(res.message)
    phi, fbest = np.maximum(res.x, prob.lower), float(res.fun)
    if maxiter > 1:
        phi, fbest, extra = _escape_boundary(lambda x: fg(x)[0], fg, phi, fbest, bounded & (s > 0),
                                             prob.lower, bounds, maxiter)
        nfev += extra
    theta = phi / s
    crit, g, H = _grad_check(prob, theta, reml)
    if crit > GRAD_TOL and maxiter > 1:
        nm = optimize.minimize(lambda x: fg(x)[0], phi, method="Nelder-Mead", bounds=bounds,
                               options=dict(maxfev=400 * prob.ntheta, xatol=1e-7,
                                            fatol=1e-9, adaptive=True))
        res = _lbfgsb(fg, np.maximum(nm.x, prob.lower), bounds, maxiter)
        nfev += nm.nfev + res.nfev
        if res.fun <= fbest:
            theta, msg = np.maximum(res.x, prob.lower) / s, str(res.message)
        crit, g, H = _grad_check(prob, theta, reml)
    return theta, crit, g, H, nfev, f"{msg} ({nit} iterations)"


# --------------------------------------------------------------------------- public API
def fit_lmm(formula, data, groups, re_formula="1", *, nested=None, reml=True, engine="fast",
            maxiter=1000, warn=True):
    """Fit a linear mixed model with random effects grouped by participant.

    Parameters
    ----------
    formula : str
        Fixed effects in patsy syntax, e.g. ``"value ~ C(arm, Treatment('control')) * week +
        side"``.
    data : pandas.DataFrame
        Long data, one row per observation. Rows with a missing value in any variable used
        (response, fixed effects, random effects, ``groups``, ``nested``) are dropped.
    groups : str
        Column identifying participants (the grouping factor of every random effect).
    re_formula : str, default "1"
        Random-effects design per participant, e.g. ``"1 + week"`` (correlated random
        intercept and slope, lme4's ``(1 + week | participant_id)``); ``"0 + week"`` drops
        the intercept.
    nested : str, optional
        Column whose levels get a random intercept within participant, e.g. ``"side"``
        (lme4's ``+ (1 | participant_id:side)``).
    reml : bool, default True
        REML (True) or maximum likelihood (False).
    engine : {"fast", "statsmodels"}
        ``"fast"``: lme4's profiled deviance over per-participant sufficient statistics.
        ``"statsmodels"``: statsmodels ``MixedLM`` (default settings), wrapped in the same
        result (for cross-checks).
    maxiter : int, default 1000
        Iteration limit of the optimiser.
    warn : bool, default True
        Emit :class:`~hipstats.errors.ConvergenceWarning` and
        :class:`~hipstats.errors.SingularFitWarning`.

    Returns
    -------
    LMMResult

    Notes
    -----
    The variance parameters are lme4's relative covariance factor ``theta`` (lower triangle of
    the Cholesky factor of :math:`\\Sigma_b / \\sigma^2`, column-major, diagonal bounded below
    by 0; the nested intercept has one relative SD). The fit is declared converged when
    lme4's gradient criterion ``max(min(|g|, |H^{-1/2} g|)) < 0.002`` holds and singular when
    any bounded ``theta`` is below ``1e-4`` (a variance is ~0 or a correlation is +/-1).

    References
    ----------
    Bates D, Maechler M, Bolker B, Walker S (2015). J Stat Softw 67(1). doi:10.18637/jss.v067.i01

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.models.lmm import fit_lmm
    >>> rng = np.random.default_rng(1)
    >>> pid = np.repeat(np.arange(60), 5); week = np.tile([0., 3, 6, 9, 12], 60)
    >>> y = 36 + rng.normal(0, 6, 60)[pid] + (0.5 + rng.normal(0, .3, 60)[pid]) * week
    >>> df = pd.DataFrame({"participant_id": pid, "week": week,
    ...                    "value": y + rng.normal(0, 1, 300)})
    >>> res = fit_lmm("value ~ week", df, "participant_id", re_formula="1 + week")
    >>> res.summary().loc["week", ["estimate", "df"]].round(2).tolist()
    [0.48, 59.0]
    """
    eval_env = patsy.EvalEnvironment.capture(1)
    spec = _Spec(formula, data, groups, re_formula, nested, eval_env)
    return _fit_spec(spec, reml=reml, engine=engine, maxiter=maxiter, warn=warn)


def _fit_arrays(X, y, Z, groups, *, exog_names, re_names, reml=True, maxiter=1000, warn=True,
                theta0=None):
    """:func:`fit_lmm` on ready design arrays (private fast path of simulation power).

    ``X`` (n, p) fixed effects, ``y`` (n,), ``Z`` (n, q) correlated random effects per
    participant, ``groups`` (n,) participant labels; ``theta0`` an optional start for
    ``theta``. Same optimiser, checks and :class:`LMMResult` as :func:`fit_lmm` (without a
    model frame: no ``predict``).
    """
    spec = _Spec.from_arrays(X, y, Z, groups, exog_names=exog_names, re_names=re_names)
    return _fit_spec(spec, reml=reml, engine="fast", maxiter=maxiter, warn=warn, theta0=theta0)


def _fit_spec(spec, *, reml, engine, maxiter, warn, theta0=None):
    prob = spec.problem()
    if engine == "fast":
        with _blas_single_thread():
            theta, crit, grad, hess, nfev, msg = _optimize(prob, reml, maxiter, theta0)
        converged = crit <= GRAD_TOL
        info = dict(engine="fast", grad_crit=crit, gradient=grad, hessian=hess, nfev=nfev,
                    message=msg)
    elif engine == "statsmodels":
        theta, converged, info = _fit_statsmodels(spec, prob, reml, maxiter)
    else:
        raise AnalysisError(f"engine must be 'fast' or 'statsmodels', got {engine!r}")
    res = LMMResult(spec, prob, theta, reml=reml, converged=converged, info=info)
    if warn and not converged:
        warnings.warn(f"mixed model {spec.formula!r} did not converge ({info['engine']} engine: "
                      f"{info.get('message', '')}; gradient criterion "
                      f"{info.get('grad_crit', float('nan')):.3g} > {GRAD_TOL})",
                      ConvergenceWarning, stacklevel=3)
    if warn and res.singular:
        warnings.warn(f"singular fit for {spec.formula!r} with random effects "
                      f"{spec.re_formula!r}{' + nested ' + spec.nested if spec.nested else ''}: "
                      f"a variance is ~0 or a correlation is +/-1 (theta = "
                      f"{np.round(theta, 5).tolist()}); simplify the random effects",
                      SingularFitWarning, stacklevel=3)
    return res


def _fit_statsmodels(spec, prob, reml, maxiter):
    from statsmodels.regression.mixed_linear_model import MixedLM

    q = len(spec.re_names)
    exog_vc = None
    if spec.nested is not None:
        Zn = spec.Z[:, q:]
        exog_vc = {spec.nested: {}}
        for g in np.unique(spec.codes):
            exog_vc[spec.nested][g] = Zn[spec.codes == g]
    model = MixedLM(pd.Series(spec.y, name=spec.yname),
                    pd.DataFrame(spec.X, columns=spec.exog_names), groups=spec.codes,
                    exog_re=pd.DataFrame(spec.Z[:, :q], columns=spec.re_names), exog_vc=exog_vc)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        smres = model.fit(reml=reml, maxiter=maxiter)
    scale = float(smres.scale)
    cov = np.asarray(smres.cov_re, float) / scale
    evals, evecs = np.linalg.eigh(0.5 * (cov + cov.T))
    cov = (evecs * np.maximum(evals, 0)) @ evecs.T
    try:
        T = np.linalg.cholesky(cov + 1e-14 * np.eye(q))
    except np.linalg.LinAlgError:
        T = np.diag(np.sqrt(np.maximum(np.diag(cov), 0)))
    theta = [T[i, j] for (i, j) in prob.tri]
    if spec.nested is not None:
        theta.append(float(np.sqrt(max(float(np.asarray(smres.vcomp)[0]) / scale, 0.0))))
    theta = np.asarray(theta)
    crit, grad, _ = _grad_check(prob, np.maximum(theta, prob.lower), reml)
    info = dict(engine="statsmodels", engine_result=smres, engine_llf=float(smres.llf),
                grad_crit=crit, gradient=grad,
                message=f"statsmodels converged={smres.converged}",
                engine_warnings=[str(w.message) for w in caught])
    return theta, bool(smres.converged), info


def lrt(model_small, model_big):
    """Likelihood-ratio test between nested mixed models (refitted by ML, as lme4's anova).

    .. math:: \\chi^2 = 2(\\ell_{big} - \\ell_{small}),\\qquad
        df = k_{big} - k_{small}

    Parameters
    ----------
    model_small, model_big : LMMResult
        Nested models fitted to the same rows; REML fits are refitted with ML.

    Returns
    -------
    pandas.DataFrame
        One row per model: npar, aic, bic, loglik, deviance, statistic (chi-squared), df, p_value.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.models.lmm import fit_lmm, lrt
    >>> rng = np.random.default_rng(2)
    >>> pid = np.repeat(np.arange(30), 4); week = np.tile([0., 4, 8, 12], 30)
    >>> df = pd.DataFrame({"participant_id": pid, "week": week,
    ...     "value": rng.normal(0, 5, 30)[pid] + 0.5 * week + rng.normal(0, 2, 120)})
    >>> m0 = fit_lmm("value ~ 1", df, "participant_id")
    >>> m1 = fit_lmm("value ~ week", df, "participant_id")
    >>> bool(lrt(m0, m1).loc["model_big", "p_value"] < 0.001)
    True
    """
    small, big = (m.refit_ml() if m.reml else m for m in (model_small, model_big))
    if small.nobs != big.nobs:
        raise AnalysisError(f"models were fitted to different numbers of rows ({small.nobs} vs "
                            f"{big.nobs}); drop missing values first so both use the same rows")
    k_s, k_b = small.npar, big.npar
    if k_b <= k_s:
        raise AnalysisError(f"model_big must have more parameters than model_small "
                            f"({k_b} vs {k_s}); pass the smaller model first")
    chisq = max(0.0, 2.0 * (big.llf - small.llf))
    ddf = k_b - k_s
    out = pd.DataFrame({
        "formula": [small.formula, big.formula],
        "re_formula": [small.re_formula, big.re_formula],
        "npar": [k_s, k_b], "aic": [small.aic, big.aic], "bic": [small.bic, big.bic],
        "loglik": [small.llf, big.llf], "deviance": [-2 * small.llf, -2 * big.llf],
        "statistic": [np.nan, chisq], "df": [np.nan, ddf],
        "p_value": [np.nan, float(stats.chi2.sf(chisq, ddf))],
    }, index=pd.Index(["model_small", "model_big"], name="model"))
    return out


# --------------------------------------------------------------------------- result
class LMMResult(Result):
    """A fitted linear mixed model (see :func:`fit_lmm`).

    Attributes
    ----------
    fe_params : pandas.Series
        Fixed-effect estimates :math:`\\hat\\beta`.
    cov_fe : pandas.DataFrame
        :math:`\\hat\\sigma^2 (R_X^\\top R_X)^{-1}`.
    bse : pandas.Series
        Standard errors of the fixed effects.
    design_info : patsy.DesignInfo
        Fixed-effects design, for building rows for new data
        (``patsy.build_design_matrices([res.design_info], newdata)``).
    data : pandas.DataFrame
        The model frame actually used (rows with missing values dropped).
    formula, re_formula, groups, nested, reml, engine
        The specification.
    llf, aic, bic : float
        Log-likelihood (REML criterion for REML fits, as lme4's ``logLik``), AIC, BIC with
        ``npar = p + len(theta) + 1``.
    nobs, ngroups : int
    converged, singular : bool
    sigma2 : float
        Residual variance.
    theta : numpy.ndarray
        Relative covariance factor (lme4's ``getME(fit, "theta")``): the lower triangle of
        the participant block column by column, then the nested intercept's relative SD
        (lme4 lists the ``participant:side`` term first).
    deviance, npar, sigma, cov_re, fit_info
        -2 llf, number of parameters, residual SD, random-effects covariance matrix, and
        optimiser details (engine, gradient criterion, gradient and Hessian of the profiled
        deviance in theta, evaluations, message).
    varcomp : pandas.DataFrame
        SDs and correlations (like ``as.data.frame(VarCorr(fit))``).
    random_effects : pandas.DataFrame
        BLUPs (conditional modes) per participant.
    """

    def __init__(self, spec, prob, theta, *, reml, converged, info):
        self._spec, self._prob = spec, prob
        self.confidence = 0.95  # of summary()'s intervals; summary(confidence=) gives others
        self.theta = np.asarray(theta, float)
        self.reml = bool(reml)
        self.converged = bool(converged)
        self.engine = info["engine"]
        self.fit_info = info
        st = prob.solve(self.theta)
        self._st = st
        n, p = prob.n, prob.p
        self.nobs, self.ngroups = n, prob.N
        self.sigma2 = float(st["r2"] / (n - p if reml else n))
        self.sigma = float(np.sqrt(self.sigma2))
        names = spec.exog_names
        self.fe_params = pd.Series(st["beta"], index=names, name="estimate")
        self._unsc = prob.unscaled_cov_beta(st=st)
        self.cov_fe = pd.DataFrame(self.sigma2 * self._unsc, index=names, columns=names)
        self.bse = pd.Series(np.sqrt(np.diag(self.cov_fe)), index=names, name="se")
        self.deviance = float(prob.deviance(self.theta, reml, st=st))
        self.llf = -0.5 * self.deviance
        self.npar = p + prob.ntheta + 1
        self.aic = -2 * self.llf + 2 * self.npar
        self.bic = -2 * self.llf + np.log(n) * self.npar
        bounded = np.isfinite(prob.lower)
        self.singular = bool(np.any(self.theta[bounded] < SINGULAR_TOL))
        self._satt = None

    # -- specification passthrough
    formula = property(lambda self: self._spec.formula)
    re_formula = property(lambda self: self._spec.re_formula)
    groups = property(lambda self: self._spec.groups)
    nested = property(lambda self: self._spec.nested)
    design_info = property(lambda self: self._spec.design_info)
    data = property(lambda self: self._spec.frame)
    exog_names = property(lambda self: list(self._spec.exog_names))

    # -- variance components
    @property
    def cov_re(self) -> pd.DataFrame:
        """Covariance matrix of the correlated random effects per participant."""
        q = len(self._spec.re_names)
        T = self._st["Lam"][:q, :q]
        return pd.DataFrame(self.sigma2 * T @ T.T, index=self._spec.re_names,
                            columns=self._spec.re_names)

    @property
    def varcomp(self) -> pd.DataFrame:
        """Tidy variance components: one row per SD (``var2`` empty) and per correlation.

        Columns ``group, var1, var2, vcov, sdcor`` as R's ``as.data.frame(VarCorr(fit))``.
        """
        rows = []
        cov = self.cov_re.to_numpy()
        names = self._spec.re_names
        g = self.groups
        for i, nm in enumerate(names):
            rows.append((g, nm, None, cov[i, i], np.sqrt(cov[i, i])))
        for j in range(len(names)):
            for i in range(j + 1, len(names)):
                den = np.sqrt(cov[i, i] * cov[j, j])
                rows.append((g, names[j], names[i], cov[i, j],
                             cov[i, j] / den if den > 0 else np.nan))
        if self.nested is not None:
            v = self.sigma2 * self.theta[-1] ** 2
            rows.append((f"{g}:{self.nested}", "Intercept", None, v, np.sqrt(v)))
        rows.append(("Residual", None, None, self.sigma2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "var1", "var2", "vcov", "sdcor"])

    @property
    def random_effects(self) -> pd.DataFrame:
        """BLUPs (conditional modes ``Lambda u``) per participant, lme4's ``ranef``.

        Columns: the ``re_formula`` terms, then ``"<nested>[<level>]"`` for the nested
        intercepts (NaN where the participant has no rows at that level).
        """
        u = self._prob.conditional_modes(self._st)
        b = u @ self._st["Lam"].T
        cols = list(self._spec.re_names) + [f"{self.nested}[{lev}]"
                                            for lev in self._spec.nested_levels]
        q = len(self._spec.re_names)
        if self.nested is not None:
            zz = self._prob.ZZ
            absent = np.stack([zz[j, j] == 0 for j in range(q, self._prob.Q)], axis=1)
            b[:, q:][absent] = np.nan
        return pd.DataFrame(b, index=self._spec.group_labels, columns=cols)

    # -- inference
    def _satterthwaite_parts(self):
        """``A = 2 H^{-1}`` and ``dC/dpsi`` in ``psi = (theta * d, sigma)``.

        The df are invariant to a smooth reparametrisation of the variance parameters, so
        they are computed in the well-conditioned scaled parameters the optimiser uses.
        ``dC/dpsi`` is analytic (``C = sigma^2 S_xx^{-1}``, see
        :meth:`~hipstats.models._lmm_core.Problem.dsxx_dtheta`); so are the ``sigma`` row
        and column of the Hessian ``H`` of the deviance ``f`` in ``(theta, sigma)``. At
        ``sigma = sigma_hat(theta)`` the profiled deviance ``d`` has Hessian
        ``H_dd = H_tt - H_ts H_ts' / H_ss`` (``df/dsigma = 0`` there), so the ``theta`` block
        ``H_tt`` is recovered from the Hessian of ``d`` that the convergence check already
        computed; without one (every parameter at a bound) it is the central-difference
        Jacobian of the analytic gradient (step ``1e-3 max(|psi|, 0.05)``,
        :data:`SATT_RICHARDSON` Richardson levels).
        """
        if self._satt is None:
            with _blas_single_thread():
                self._satt = self._compute_satterthwaite_parts()
        return self._satt

    def _compute_satterthwaite_parts(self):
        prob, reml = self._prob, self.reml
        sc = prob.theta_scale
        sigma, s2 = self.sigma, self.sigma2
        m = (prob.n - prob.p) if reml else prob.n

        def grad_theta(phi):          # d deviance / d phi at fixed sigma
            _, gL, gX, gr = prob.grad_parts(phi / sc, reml)
            return (gL + gX + gr / s2) / sc

        _, _, _, gr = prob.grad_parts(self.theta, reml)
        h_ts = -2.0 * gr / sigma ** 3 / sc
        h_ss = 6.0 * self._st["r2"] / sigma ** 4 - 2.0 * m / s2
        hprof = self.fit_info.get("hessian") if self.engine == "fast" else None
        if hprof is not None:
            Htt = hprof / np.outer(sc, sc) + np.outer(h_ts, h_ts) / h_ss
        else:
            Htt = _richardson_jacobian(grad_theta, self.theta * sc, r=SATT_RICHARDSON)
        k = prob.ntheta
        H = np.empty((k + 1, k + 1))
        H[:k, :k] = 0.5 * (Htt + Htt.T)
        H[:k, k] = H[k, :k] = h_ts
        H[k, k] = h_ss
        A = 2.0 * np.linalg.pinv(H)
        P = self._unsc
        jac = [-s2 * (P @ D @ P) / sc[j]
               for j, D in enumerate(prob.dsxx_dtheta(st=self._st))]
        jac.append(2.0 * sigma * P)
        return A, jac

    def df_satterthwaite(self, L) -> np.ndarray:
        """Satterthwaite denominator df for each row of a contrast matrix ``L`` (k x p).

        .. math:: \\nu_l = \\frac{2 (l^\\top C l)^2}{g^\\top A g},\\quad
            g_j = l^\\top \\frac{\\partial C}{\\partial \\varphi_j} l,\\quad A = 2H^{-1}

        as lmerTest's ``contest1D``; ``H`` is the Hessian of the deviance in
        ``(theta, sigma)`` (numerical Jacobian of its analytic gradient).

        Examples
        --------
        >>> # res.df_satterthwaite(np.eye(len(res.fe_params)))   # df of every coefficient
        """
        L = np.atleast_2d(np.asarray(L, float))
        p = self._prob.p
        if L.shape[1] != p:
            raise AnalysisError(f"contrast matrix must have {p} columns (one per fixed effect: "
                                f"{', '.join(self.exog_names)}), got {L.shape[1]}")
        A, jac = self._satterthwaite_parts()
        C = self.cov_fe.to_numpy()
        out = np.empty(L.shape[0])
        for r, l in enumerate(L):
            v = l @ C @ l
            g = np.array([l @ Jk @ l for Jk in jac])
            den = g @ A @ g
            out[r] = 2.0 * v ** 2 / den if den > 0 else np.inf
        return out

    def summary(self, confidence: float | None = None, *, alpha: float | None = None) -> pd.DataFrame:
        """Fixed effects: estimate, se, Satterthwaite df, statistic (t), p_value, CI at ``confidence``.

        ``confidence`` defaults to the level given to :func:`fit_lmm` (0.95); ``alpha=`` is
        the deprecated way to set it (``confidence = 1 - alpha``).
        """
        confidence = resolve_confidence(self.confidence if confidence is None else confidence, alpha,
                                        where="LMMResult.summary")
        est, se = self.fe_params, self.bse
        df = self.df_satterthwaite(np.eye(len(est)))
        t = est / se
        p = 2 * stats.t.sf(np.abs(t), df)
        crit = stats.t.ppf(0.5 + confidence / 2, df)
        out = pd.DataFrame({"estimate": est, "se": se, "df": df, "statistic": t, "p_value": p,
                            "ci_low": est - crit * se, "ci_high": est + crit * se})
        out.index.name = "term"
        return out

    def conf_int(self, confidence: float | None = None, *, alpha: float | None = None) -> pd.DataFrame:
        """Confidence intervals of the fixed effects with Satterthwaite t quantiles."""
        return self.summary(confidence, alpha=alpha)[["ci_low", "ci_high"]]

    def to_frame(self) -> pd.DataFrame:
        """Long tidy frame: fixed effects (``component="fixed"``) and variance components."""
        fe = self.summary().reset_index().assign(component="fixed")
        vc = self.varcomp.rename(columns={"sdcor": "estimate"})
        vc = vc.assign(component="random",
                       term=[f"{g}: {a}" + ("" if pd.isna(b) else f" ~ {b}")
                             if not pd.isna(a) else "Residual"
                             for g, a, b in zip(vc["group"], vc["var1"], vc["var2"])],
                       kind=["sd" if pd.isna(b) else "cor" for b in vc["var2"]])
        fe["kind"] = "coef"
        cols = ["component", "term", "kind", "estimate", "se", "df", "statistic", "p_value", "ci_low", "ci_high"]
        return pd.concat([fe, vc], ignore_index=True).reindex(columns=cols)

    def model_info(self) -> pd.Series:
        """Fit statistics: nobs, ngroups, llf, aic, bic, sigma, converged, singular, engine."""
        return pd.Series({"formula": self.formula, "re_formula": self.re_formula,
                          "nested": self.nested, "groups": self.groups,
                          "method": "REML" if self.reml else "ML", "engine": self.engine,
                          "nobs": self.nobs, "ngroups": self.ngroups, "llf": self.llf,
                          "aic": self.aic, "bic": self.bic, "sigma": self.sigma,
                          "converged": self.converged, "singular": self.singular})

    # -- predictions
    def predict(self, newdata=None, random=True) -> pd.Series:
        """Fitted values for ``newdata`` (default: the model frame).

        ``random=True`` adds each participant's BLUPs (participants not in the fit, and
        nested levels absent for a participant, get 0, i.e. the population prediction);
        ``random=False`` gives ``X beta`` only. Rows with missing predictors give NaN.
        """
        if self.design_info is None:
            raise AnalysisError("this fit was made from design arrays (no formula design); "
                                "predict needs a fit_lmm fit")
        data = self.data if newdata is None else newdata
        X = patsy.build_design_matrices([self.design_info], data, NA_action="drop",
                                        return_type="dataframe")[0]
        pred = pd.Series(np.nan, index=data.index, name="predicted")
        pred.loc[X.index] = X.to_numpy(float) @ self.fe_params.to_numpy()
        if not random:
            return pred
        missing = [c for c in [self.groups] + ([self.nested] if self.nested else [])
                   if c not in data.columns]
        if missing:
            raise AnalysisError(f"newdata has no column {', '.join(map(repr, missing))} for the "
                                "random effects; pass random=False for population predictions")
        Zr = patsy.build_design_matrices([self._spec.re_design_info], data, NA_action="drop",
                                         return_type="dataframe")[0]
        re = self.random_effects
        q = len(self._spec.re_names)
        ok = Zr.index.intersection(X.index)
        gid = data.loc[ok, self.groups]
        B = re.reindex(gid.to_numpy()).to_numpy()
        B = np.nan_to_num(B, nan=0.0)
        contrib = np.einsum("nq,nq->n", Zr.loc[ok].to_numpy(float), B[:, :q])
        if self.nested is not None:
            lev = data.loc[ok, self.nested].to_numpy()
            idx = {v: k for k, v in enumerate(self._spec.nested_levels)}
            col = np.array([idx.get(v, -1) for v in lev])
            has = col >= 0
            add = np.zeros(len(ok))
            add[has] = B[np.flatnonzero(has), q + col[has]]
            contrib = contrib + add
        pred.loc[ok] = pred.loc[ok].to_numpy() + contrib
        return pred

    @property
    def resid(self) -> pd.Series:
        """Conditional residuals ``y - X beta - Z b``."""
        return pd.Series(self._spec.y, index=self.data.index) - self.predict()

    def refit_ml(self) -> LMMResult:
        """The same model refitted by maximum likelihood."""
        return _fit_spec(self._spec, reml=False, engine=self.engine, maxiter=1000, warn=True)

    # -- display
    def plot(self, ax=None, intercept=False):
        """Forest plot of the fixed effects with 95% Satterthwaite CIs; returns the Figure."""
        import matplotlib.pyplot as plt

        from hipstats.plots._theme import theme

        s = self.summary()
        if not intercept:
            s = s.drop(index=[t for t in s.index if t == "Intercept"])
        with theme():
            if ax is None:
                fig, ax = plt.subplots(figsize=(6, 0.4 * len(s) + 1.2))
            else:
                fig = ax.figure
            ypos = np.arange(len(s))[::-1]
            ax.errorbar(s["estimate"], ypos, xerr=[s["estimate"] - s["ci_low"],
                                                   s["ci_high"] - s["estimate"]],
                        fmt="o", color="#0072B2", capsize=3)
            ax.axvline(0, color="#999999", lw=1)
            ax.set_yticks(ypos, s.index)
            ax.set_xlabel("estimate (95% CI)")
            ax.set_title(f"{self.formula}")
        return fig

    def __repr__(self):
        return (f"LMMResult({self.formula!r}, re={self.re_formula!r}, nested={self.nested!r}, "
                f"{'REML' if self.reml else 'ML'}, nobs={self.nobs}, ngroups={self.ngroups}, "
                f"llf={self.llf:.3f}, converged={self.converged}, singular={self.singular})")

    def _repr_html_(self):
        info = self.model_info()
        head = ", ".join(f"<b>{html.escape(str(k))}</b>: {html.escape(str(v))}"
                         for k, v in info.items())
        return (f"<div><p>Linear mixed model &mdash; {head}</p>"
                f"<p><b>Fixed effects</b></p>{html_table(self.summary().reset_index())}"
                f"<p><b>Variance components</b></p>"
                f"{html_table(self.varcomp)}</div>")


# --------------------------------------------------------------------------- numerics
def _steps(x, d=1e-3, floor=0.05):
    """Initial step ``d * max(|x|, floor)`` (parameters are on a unit-ish scale)."""
    x = np.asarray(x, float)
    return d * np.maximum(np.abs(x), floor)


def _richardson(values_by_step, r):
    """Richardson extrapolation of central differences with step halving (error O(h^2))."""
    a = list(values_by_step)
    for m in range(1, r):
        f = 4.0 ** m
        a = [(f * a[k + 1] - a[k]) / (f - 1) for k in range(len(a) - 1)]
    return a[0]


def _richardson_jacobian(fun, x, r=4):
    x = np.asarray(x, float)
    h0 = _steps(x)
    cols = []
    for k in range(len(x)):
        ests = []
        for m in range(r):
            e = np.zeros_like(x)
            e[k] = h0[k] / 2 ** m
            ests.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2 * e[k]))
        cols.append(_richardson(ests, r))
    return np.column_stack(cols)
