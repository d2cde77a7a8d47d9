"""Linear mixed models written in lme4's formula syntax, fitted the lme4 way and fast.

The model is

.. math::

    y = X\\beta + Zb + \\varepsilon,\\qquad
    b \\sim N(0, \\sigma^2 \\Lambda_\\theta\\Lambda_\\theta^\\top),\\qquad
    \\varepsilon \\sim N(0, \\sigma^2 I),

written as lme4 does: ``fit_lmm("ir ~ week * arm + (1 + week | participant_id) + (1 | site)",
data)``, with correlated ``(a | g)``, uncorrelated ``(a || g)``, nested ``(1 | g1/g2)`` and
interaction ``(1 | g1:g2)`` terms on one or several grouping factors, crossed or nested
(:mod:`hipstats.models.formula` parses them; patsy builds the fixed part with R's treatment
coding). ``res.anova(type=3, ddf="kenward-roger")`` gives lmerTest's F tests
(:mod:`hipstats.models.anova`).

Two engines evaluate the same profiled deviance. When every random effect shares one factor
(the participant), optionally with one intercept nested in it (``(1 | participant_id:side)``),
the per-participant sufficient statistics of :mod:`hipstats.models._lmm_core` are used, with
analytic gradients. Anything else (crossed factors, several nested levels, uncorrelated terms)
goes to the blocked Cholesky engine of :mod:`hipstats.models._lmm_blocked` (MixedModels.jl's
factorisation; Bates, Alday & Kokandakar 2025), optimised by BOBYQA as lme4.

:func:`fit_lmm` minimises lme4's profiled deviance over the relative covariance factor
:math:`\\theta` (Bates et al. 2015, sections 3.4-3.6). With :math:`L_\\theta L_\\theta^\\top =
\\Lambda^\\top Z^\\top Z\\Lambda + I`, :math:`R_X` the Cholesky factor of the Schur complement
for :math:`X` and :math:`r^2_\\theta` the minimal penalised residual sum of squares,

.. math::

    d_{ML}(\\theta) = \\log|L_\\theta|^2 + n\\left[1 + \\log\\frac{2\\pi r^2_\\theta}{n}\\right],
    \\quad
    d_{REML}(\\theta) = \\log|L_\\theta|^2 + \\log|R_X|^2
        + (n-p)\\left[1 + \\log\\frac{2\\pi r^2_\\theta}{n-p}\\right].

With one grouping factor the system is block diagonal; one deviance evaluation works from
per-participant sufficient statistics (:math:`Z_i^\\top Z_i, Z_i^\\top X_i, Z_i^\\top y_i`) in
:math:`O(N)` with vectorised tiny Cholesky factors, and the analytic gradient is used by a
bounded quasi-Newton optimiser (L-BFGS-B, lower bound 0 on the diagonal of :math:`\\Lambda`)
with a Nelder-Mead polish when the gradient check fails.

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

Bates D, Alday PM, Kokandakar AH (2025). Mixed-model log-likelihood evaluation via a blocked
Cholesky factorization. arXiv:2505.11674.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from hipstats.models.lmm import fit_lmm
>>> rng = np.random.default_rng(0)
>>> pid = np.repeat(np.arange(40), 5); week = np.tile([0., 3, 6, 9, 12], 40)
>>> value = 36 + rng.normal(0, 8, 40)[pid] + 0.3 * week + rng.normal(0, 2, 200)
>>> df = pd.DataFrame({"participant_id": pid, "week": week, "value": value})
>>> res = fit_lmm("value ~ week + (1 | participant_id)", df)
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
from hipstats.models._lmm_blocked import BlockedProblem, TermData, conditional_modes, lme4_order
from hipstats.models._lmm_core import Problem
from hipstats.models.formula import MixedFormula, design_matrix, parse_formula
from hipstats.results import (
    DEPRECATED,
    Result,
    html_table,
    renamed_attribute,
    resolve_confidence,
    resolve_participant,
)
from hipstats.stats.inference import coefficient_table

__all__ = ["fit_lmm", "fit_arrays", "LMMResult", "lrt"]

#: lme4's default tolerances: ``check.conv.grad`` (2e-3) and ``isSingular`` (1e-4).
GRAD_TOL = 2e-3
SINGULAR_TOL = 1e-4
#: Richardson levels of the numerical theta block of the Satterthwaite Hessian (1: one central
#: difference, error O(h^2); df within 5e-6 of 4 levels on every test_lmm fixture).
SATT_RICHARDSON = 1


# --------------------------------------------------------------------------- model frame
def _legacy_formula(formula, participant, re_formula, nested):
    """The lme4 formula that ``fit_lmm(formula, participant=, re_formula=, nested=)`` means.

    ``re_formula`` is the design of the random effects within ``participant`` (``"1 + week"``),
    ``nested`` a column whose levels get a random intercept within ``participant``:
    ``value ~ x`` + ``(re_formula | participant)`` + ``(1 | participant:nested)``.
    """
    if not isinstance(participant, str):
        raise AnalysisError(f"participant must be one column name, got {participant!r}; for several "
                            "grouping factors write them in the formula, e.g. "
                            "'y ~ x + (1 | participant_id) + (1 | site)'")
    if parse_formula(formula).random:
        raise AnalysisError(f"formula {formula!r} already has random-effects terms; drop "
                            "participant=/re_formula=/nested= (the formula says it all)")
    re_f = str(re_formula).strip()
    re_f = re_f[1:].strip() if re_f.startswith("~") else re_f
    if "|" in re_f:
        raise AnalysisError(
            f"re_formula {re_formula!r} contains '|': re_formula is the design within "
            f"participant={participant!r} and is never read as lme4 syntax. Write the random terms in "
            f"the formula instead, e.g. fit_lmm('{formula} + (1 | {participant}) + (0 + x | "
            f"{participant})', data)")
    text = f"{formula} + ({re_f or '1'} | {_show_name(participant)})"
    if nested is not None:
        if not isinstance(nested, str):
            raise AnalysisError(f"nested must be one column name, got {nested!r}; for several "
                                "nested factors write them in the formula, e.g. "
                                f"'(1 | {participant}/side/trial)'")
        text += f" + (1 | {_show_name(participant)}:{_show_name(nested)})"
    return text


def _show_name(name):
    from hipstats.models.formula import quote_name

    return name if quote_name(name) == name else f"`{name}`"


def _group_codes(frame, cols):
    """Level codes and labels of the grouping factor formed by ``cols`` (sorted levels)."""
    if len(cols) == 1:
        codes, uniques = pd.factorize(frame[cols[0]], sort=True)
        return codes, list(uniques)
    mi = pd.MultiIndex.from_frame(frame[list(cols)])
    codes, uniques = pd.factorize(mi, sort=True)
    return codes, [":".join(map(str, u)) for u in uniques]


def _build_frame(mf, data, eval_env):
    """Model frame (rows complete in every variable used) and the design matrices."""
    if not isinstance(data, pd.DataFrame):
        raise AnalysisError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if not mf.random:
        raise AnalysisError(f"formula {mf.text!r} has no random-effects term; add one such as "
                            "'+ (1 | participant_id)' (without random effects use OLS)")
    for t in mf.random:
        for g in t.group:
            if g not in data.columns:
                raise AnalysisError(f"grouping column {g!r} of {t.label} not found in data "
                                    f"(columns: {', '.join(map(str, data.columns))})")
    df = data if data.index.is_unique else data.reset_index(drop=True)
    try:
        desc = patsy.ModelDesc.from_formula(mf.fixed_formula)
        re_descs = [patsy.ModelDesc.from_formula("~ " + t.expr) for t in mf.random]
    except patsy.PatsyError as err:
        raise AnalysisError(f"cannot parse formula {mf.text!r}: {err} (write column names "
                            "that are not Python identifiers in backticks)") from err
    if not desc.lhs_termlist:
        raise AnalysisError(f"formula {mf.text!r} has no response (write 'value ~ ...')")

    def designs(frame):
        try:
            y, _ = design_matrix(desc.lhs_termlist, frame, eval_env)
            X, xinfo = design_matrix(desc.rhs_termlist, frame, eval_env)
            Zs = [design_matrix(d.rhs_termlist, frame, eval_env) for d in re_descs]
        except (patsy.PatsyError, SyntaxError) as err:
            raise AnalysisError(f"cannot build the model from formula {mf.text!r}: {err} "
                                "(write column names that are not Python identifiers in "
                                "backticks)") from err
        return y, X, xinfo, Zs

    y, X, xinfo, Zs = designs(df)
    keep = df.index.isin(y.index) & df.index.isin(X.index)
    for Z, _ in Zs:
        keep &= df.index.isin(Z.index)
    gcols = list(dict.fromkeys(g for t in mf.random for g in t.group))
    for g in gcols:
        keep &= df[g].notna().to_numpy()
    frame = df.loc[keep]
    # like lme4's model frame: drop categories without rows (they are not estimable)
    unused = {c: frame[c].cat.remove_unused_categories() for c in frame.columns
              if isinstance(frame[c].dtype, pd.CategoricalDtype)
              and frame[c].nunique(dropna=True) < len(frame[c].cat.categories)}
    if unused:
        frame = frame.assign(**unused)
    if unused or not (len(frame) == len(y) == len(X) and all(len(Z) == len(frame)
                                                             for Z, _ in Zs)):
        y, X, xinfo, Zs = designs(frame)
    if y.shape[1] != 1:
        raise AnalysisError(f"the response of {mf.text!r} must be one numeric column, "
                            f"got columns {list(y.columns)}")
    return frame, y, X, xinfo, Zs


class _Spec:
    """Everything needed to (re)fit a model: parsed formula, model frame, designs, terms.

    ``terms`` are the random-effects terms as written (:class:`TermData`), ``order`` lme4's
    order of them (most levels first), ``kind`` the engine that fits them: ``"one"`` (all
    random effects in one term, or one term plus an intercept nested in its factor: the
    per-participant sufficient statistics of :mod:`hipstats.models._lmm_core`) or
    ``"blocked"`` (:mod:`hipstats.models._lmm_blocked`).
    """

    def __init__(self, formula, data, eval_env):
        mf = formula if isinstance(formula, MixedFormula) else parse_formula(formula)
        self.mf = mf
        self.formula = mf.text
        self.eval_env = eval_env
        frame, y, X, xinfo, Zs = _build_frame(mf, data, eval_env)
        self.frame = frame
        self.yname = y.columns[0]
        self.design_info = xinfo
        self.exog_names = list(X.columns)
        self.X = X.to_numpy(float)
        self.y = y.to_numpy(float).ravel()
        n, p = self.X.shape
        if n == 0:
            raise AnalysisError("no complete rows left for the model (every row has a missing "
                                f"value in a variable of {mf.text!r})")
        self.terms, self.re_design_infos = [], []
        for t, (Z, zinfo) in zip(mf.random, Zs):
            codes, levels = _group_codes(frame, t.group)
            self.terms.append(TermData(group=t.group_name, names=list(Z.columns),
                                       codes=np.asarray(codes), levels=levels,
                                       Xt=Z.to_numpy(float), label=t.label))
            self.re_design_infos.append(zinfo)
        self.group_cols = [t.group for t in mf.random]
        self._finish(n, p)

    def _finish(self, n, p):
        self.order = lme4_order([t.nlev for t in self.terms])
        self.kind, self.nest = self._route()
        self._check(n, p)

    def _route(self):
        """``("one", None)``, ``("one", (parent, child))`` or ``("blocked", None)``."""
        if len(self.terms) == 1:
            return "one", None
        if len(self.terms) == 2 and self.group_cols is not None:
            for a, b in ((0, 1), (1, 0)):
                ta, tb = self.terms[a], self.terms[b]
                ga, gb = set(self.group_cols[a]), set(self.group_cols[b])
                if (ga < gb and tb.names == ["Intercept"] and tb.k == 1
                        and np.all(tb.Xt == 1.0)):
                    return "one", (a, b)
        return "blocked", None

    def __getstate__(self):
        # patsy's DesignInfo and the formula's evaluation environment do not pickle; they are
        # rebuilt from the parsed formula and the model frame on unpickling
        state = dict(self.__dict__)
        state.update(design_info=None, re_design_infos=None, eval_env=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.frame is None or getattr(self, "mf", None) is None:
            return
        env = patsy.EvalEnvironment([{"np": np, "numpy": np, "pd": pd}])
        try:
            _, _, _, xinfo, Zs = _build_frame(self.mf, self.frame, env)
        except AnalysisError:  # the formula used names of the caller's session: no new designs
            return
        self.design_info, self.re_design_infos, self.eval_env = xinfo, [z for _, z in Zs], env

    @classmethod
    def from_arrays(cls, X, y, Z, groups, *, exog_names, re_names):
        """Specification from ready design arrays: one term ``(Z | group)``, no formula.

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
        self.mf = None
        self.formula = ("y ~ 0 + " + " + ".join(exog_names) + " + (0 + " + " + ".join(re_names)
                        + " | group)")
        self.eval_env = None
        self.frame = self.design_info = None
        self.re_design_infos = [None]
        self.yname = "y"
        self.exog_names = list(exog_names)
        self.X, self.y = X, y
        codes, uniques = pd.factorize(groups, sort=True)
        self.terms = [TermData(group="group", names=list(re_names), codes=np.asarray(codes),
                               levels=list(uniques), Xt=Z, label="(Z | group)")]
        self.group_cols = [("group",)]
        n, p = X.shape
        if n == 0:
            raise AnalysisError("no rows to fit")
        self._finish(n, p)
        return self

    @property
    def re_formula(self):
        return " + ".join(t.label for t in self.terms)

    def _check(self, n, p):
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
        for t in self.terms:
            if t.nlev < 2:
                raise AnalysisError(f"need at least 2 levels of {t.group!r} for random effects "
                                    f"{t.label}, got {t.nlev}")
            if t.nlev >= n:
                raise AnalysisError(f"each level of {t.group!r} has a single observation; the "
                                    f"variance of {t.label} is not identifiable (number of "
                                    f"levels {t.nlev} must be < number of observations {n})")
            if n <= t.nlev * t.k:
                raise AnalysisError(f"number of observations ({n}) must exceed the number of "
                                    f"random effects ({t.nlev * t.k}) of {t.label}; the "
                                    "random-effects structure is too rich")
        if n <= p:
            raise AnalysisError(f"need more observations ({n}) than fixed effects ({p})")

    def problem(self):
        if self.kind == "one":
            t = self.terms[self.nest[0] if self.nest else 0]
            return Problem(self.X, self.y, _one_engine_z(self), t.codes, t.k)
        return BlockedProblem(self.X, self.y, [self.terms[i] for i in self.order])

    def theta_to_lme4(self, theta_engine):
        """Engine theta -> lme4's theta (terms in lme4's order, lower triangles)."""
        th = np.asarray(theta_engine, float)
        if self.kind == "blocked" or self.nest is None:
            return th.copy()
        a, b = self.nest
        na = self.terms[a].k * (self.terms[a].k + 1) // 2
        slices = {a: th[:na], b: th[na:]}
        return np.concatenate([slices[i] for i in self.order])

    def theta_from_lme4(self, theta):
        th = np.asarray(theta, float)
        if self.kind == "blocked" or self.nest is None:
            return th.copy()
        a, b = self.nest
        sizes = {i: self.terms[i].k * (self.terms[i].k + 1) // 2 for i in (a, b)}
        pos, slices = 0, {}
        for i in self.order:
            slices[i] = th[pos:pos + sizes[i]]
            pos += sizes[i]
        return np.concatenate([slices[a], slices[b]])


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
    if getattr(prob, "analytic", True):
        H = _num_jacobian(lambda t: prob.gradient(t, reml), theta)
    else:
        H = prob.hessian(theta, reml)
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


def _bobyqa(f, x0, lower, maxiter):
    """Powell's BOBYQA (nlopt), lme4's default optimiser for ``lmer``: derivative-free,
    bound-constrained. Returns an object with ``x, fun, nfev, nit, message``."""
    import nlopt

    k = len(x0)
    count = [0]

    def obj(x, grad):
        count[0] += 1
        return float(f(x))

    opt = nlopt.opt(nlopt.LN_BOBYQA, k)
    opt.set_min_objective(obj)
    lo = np.where(np.isfinite(lower), lower, -1e10)
    opt.set_lower_bounds(lo)
    opt.set_ftol_abs(1e-8)                 # lme4's nloptwrap defaults
    opt.set_xtol_abs(1e-8)
    opt.set_maxeval(max(int(maxiter) * 10, 2 * k + 2) if maxiter > 1 else 2 * k + 2)
    x0 = np.maximum(np.asarray(x0, float), lo)
    opt.set_initial_step(np.maximum(0.25 * np.abs(x0), 0.1))
    try:
        x = opt.optimize(x0)
        fun, msg = opt.last_optimum_value(), f"nlopt BOBYQA result {opt.last_optimize_result()}"
    except nlopt.RoundoffLimited:
        x, fun, msg = x0, float(f(x0)), "nlopt BOBYQA stopped: roundoff limited"
    return optimize.OptimizeResult(x=np.asarray(x), fun=float(fun), nfev=count[0], nit=count[0],
                                   message=msg)


def _escape_boundary(f, local, phi, fbest, bounded, maxiter):
    """Move off a boundary point that is not a minimum.

    The deviance depends on Lambda only through Lambda Lambda', which is even in the last
    diagonal entry (and in any diagonal entry whose column is otherwise 0), so such an entry
    at 0 has zero gradient there and a gradient method that hits the bound stops even when
    the minimum is inside. For every bounded entry at 0 a bounded
    Brent line search along that entry decides; if it improves, the local optimiser
    restarts from there.
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
                alt = local(start)
                nfev += alt.nfev
                if alt.fun < r.fun:
                    phi, fbest = alt.x, float(alt.fun)
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
    start is lme4's identity factor in those units. One-factor engine: bounded L-BFGS-B with
    the analytic gradient; blocked engine: BOBYQA on the deviance alone, as lme4. If a
    bounded entry ends at 0 the optimiser is restarted with that entry moved off the
    boundary when a line search finds a lower deviance (a boundary point that
    is not a minimum is not accepted, see :func:`_escape_boundary`); if
    lme4's gradient criterion still fails a Nelder-Mead polish and a second local run
    follow. ``theta0`` (e.g. the true values in a simulation) replaces the identity start;
    bounded entries start at least 0.01 (scaled units) off their bound.
    """
    s = prob.theta_scale
    lower = prob.lower

    def f(phi):
        return prob.deviance(phi / s, reml)

    def fg(phi):
        v, g = prob.value_and_grad(phi / s, reml)
        return v, g / s

    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    bounded = np.isfinite(lower)
    analytic = getattr(prob, "analytic", True)

    def local(x0):
        res = _lbfgsb(fg, x0, bounds, maxiter) if analytic else _bobyqa(f, x0, lower, maxiter)
        res.x = np.maximum(res.x, lower)
        return res

    if theta0 is None:
        x0 = prob.theta0.copy()
    else:
        x0 = np.asarray(theta0, float) * s
        x0 = np.where(bounded, np.maximum(x0, lower + 1e-2), x0)
    res = local(x0)
    nfev, nit, msg = res.nfev, res.nit, str(res.message)
    phi, fbest = res.x, float(res.fun)
    if maxiter > 1:
        phi, fbest, extra = _escape_boundary(f, local, phi, fbest, bounded & (s > 0), maxiter)
        nfev += extra
    theta = phi / s
    crit, g, H = _grad_check(prob, theta, reml)
    if crit > GRAD_TOL and maxiter > 1:
        nm = optimize.minimize(f, phi, method="Nelder-Mead", bounds=bounds,
                               options=dict(maxfev=400 * prob.ntheta, xatol=1e-7,
                                            fatol=1e-9, adaptive=True))
        res = local(np.maximum(nm.x, lower))
        nfev += nm.nfev + res.nfev
        if res.fun <= fbest:
            theta, msg = res.x / s, str(res.message)
        crit, g, H = _grad_check(prob, theta, reml)
    return theta, crit, g, H, nfev, f"{msg} ({nit} iterations)"


# --------------------------------------------------------------------------- public API
def fit_lmm(formula, data, participant=None, re_formula="1", *, nested=None, reml=True,
            engine="fast", maxiter=1000, warn=True, groups=DEPRECATED):
    """Fit a linear mixed model written in lme4's formula syntax.

    Parameters
    ----------
    formula : str
        lme4 formula: ``"ir ~ week * arm + (1 + week | participant_id) + (1 | site)"``. The
        fixed part is patsy code with R's treatment coding (first level of a factor is the
        reference; ``C(arm, Treatment('control'))`` picks another); random terms are
        ``(expr | g)`` (correlated), ``(expr || g)`` (uncorrelated), ``(1 | g1/g2)``
        (nested), ``(1 | g1:g2)``, on one or several grouping factors, crossed or nested;
        grouping columns may be numbers or strings. Column names that are Python keywords
        work as they are (``yield``); other names go in backticks. See
        :mod:`hipstats.models.formula`.
    data : pandas.DataFrame
        Long data, one row per observation. Rows with a missing value in any variable used
        (response, fixed and random effects, grouping columns) are dropped.
    participant, re_formula, nested : str, optional
        The short form for the participant as the grouping factor:
        ``fit_lmm("value ~ week", data, participant="participant_id", re_formula="1 + week",
        nested="side")`` means exactly
        ``"value ~ week + (1 + week | participant_id) + (1 | participant_id:side)"``.
        ``re_formula`` is the design within ``participant`` and may not contain ``|``. Leave
        ``participant`` out when the formula has its random terms (the formula names the
        grouping factor).
    reml : bool, default True
        REML (True) or maximum likelihood (False).
    engine : {"fast", "statsmodels"}
        ``"fast"``: lme4's profiled deviance (per-participant sufficient statistics when all
        random effects share one factor, the blocked Cholesky engine otherwise).
        ``"statsmodels"``: statsmodels ``MixedLM`` (default settings), wrapped in the same
        result (cross-checks; one grouping factor, optionally one nested intercept).
    maxiter : int, default 1000
        Iteration limit of the optimiser.
    warn : bool, default True
        Emit :class:`~hipstats.errors.ConvergenceWarning` and
        :class:`~hipstats.errors.SingularFitWarning`.
    groups : str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

    Returns
    -------
    LMMResult

    Notes
    -----
    The variance parameters are lme4's relative covariance factor ``theta``: for each term in
    lme4's order (most levels first; ties keep the written order unless a later term has
    more levels, then ``rev(order(levels))``), the lower triangle of the Cholesky factor of
    its covariance over ``sigma^2``, column-major, diagonal bounded below by 0. The fit is
    declared converged when lme4's gradient criterion ``max(min(|g|, |H^{-1/2} g|)) < 0.002``
    holds and singular when any bounded ``theta`` is below ``1e-4``.

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
    >>> res = fit_lmm("value ~ week + (1 + week | participant_id)", df)
    >>> res.summary().loc["week", ["estimate", "df"]].round(2).tolist()
    [0.48, 59.0]
    """
    eval_env = patsy.EvalEnvironment.capture(1)
    participant = resolve_participant(participant, where="fit_lmm", default=None, groups=groups)
    if participant is not None:
        formula = _legacy_formula(formula, participant, re_formula, nested)
    elif nested is not None or str(re_formula).strip() not in ("1", "~1", "~ 1"):
        raise AnalysisError("re_formula= and nested= need participant=; or write the random terms "
                            "in the formula, e.g. 'value ~ week + (1 + week | participant_id)'")
    spec = _Spec(formula, data, eval_env)
    return _fit_spec(spec, reml=reml, engine=engine, maxiter=maxiter, warn=warn)


def fit_arrays(X, y, Z, participant=None, *, exog_names, re_names, reml=True, maxiter=1000,
               warn=True, theta0=None, groups=DEPRECATED):
    """:func:`fit_lmm` on ready design arrays (fast path of simulation power).

    ``X`` (n, p) fixed effects, ``y`` (n,), ``Z`` (n, q) correlated random effects per
    participant, ``participant`` (n,) the participant label of each row (``groups`` is its
    deprecated alias); ``theta0`` an optional start for ``theta``. Same optimiser, checks and
    :class:`LMMResult` as :func:`fit_lmm` (without a model frame: no ``predict``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pid = np.repeat(np.arange(30), 4); week = np.tile([0., 4, 8, 12], 30)
    >>> y = 40 + rng.normal(0, 5, 30)[pid] + 0.5 * week + rng.normal(0, 1, 120)
    >>> X = np.column_stack([np.ones(120), week])
    >>> fit = fit_arrays(X, y, np.ones((120, 1)), pid, exog_names=["Intercept", "week"],
    ...                  re_names=["Intercept"])
    >>> round(float(fit.fe_params["week"]), 1)
    0.5
    """
    participant = resolve_participant(participant, where="fit_arrays", default=None, groups=groups)
    if participant is None:
        raise TypeError("fit_arrays() needs participant= (the participant label of each row)")
    spec = _Spec.from_arrays(X, y, Z, participant, exog_names=exog_names, re_names=re_names)
    return _fit_spec(spec, reml=reml, engine="fast", maxiter=maxiter, warn=warn, theta0=theta0)



def _fit_spec(spec, *, reml, engine, maxiter, warn, theta0=None):
    if engine not in ("fast", "statsmodels"):
        raise AnalysisError(f"engine must be 'fast' or 'statsmodels', got {engine!r}")
    prob = spec.problem()
    if engine == "fast":
        with _blas_single_thread():
            theta, crit, grad, hess, nfev, msg = _optimize(prob, reml, maxiter, theta0)
        converged = crit <= GRAD_TOL
        info = dict(engine="fast", grad_crit=crit, gradient=grad, hessian=hess, nfev=nfev,
                    message=msg, algorithm="blocked" if spec.kind == "blocked" else "one")
    else:
        if spec.kind != "one":
            raise AnalysisError("engine='statsmodels' handles one grouping factor (plus one "
                                f"nested intercept); {spec.formula!r} needs engine='fast'")
        theta, converged, info = _fit_statsmodels(spec, prob, reml, maxiter)
    res = LMMResult(spec, prob, theta, reml=reml, converged=converged, info=info)
    if warn and not converged:
        warnings.warn(f"mixed model {spec.formula!r} did not converge ({info['engine']} engine: "
                      f"{info.get('message', '')}; gradient criterion "
                      f"{info.get('grad_crit', float('nan')):.3g} > {GRAD_TOL})",
                      ConvergenceWarning, stacklevel=3)
    if warn and res.singular:
        warnings.warn(f"singular fit for {spec.formula!r}: a variance is ~0 or a correlation "
                      f"is +/-1 (theta = {np.round(res.theta, 5).tolist()}); simplify the "
                      "random effects", SingularFitWarning, stacklevel=3)
    return res


def _fit_statsmodels(spec, prob, reml, maxiter):
    from statsmodels.regression.mixed_linear_model import MixedLM

    q = prob.q
    Zall = _one_engine_z(spec)
    codes = spec.terms[spec.nest[0] if spec.nest else 0].codes
    re_names = spec.terms[spec.nest[0] if spec.nest else 0].names
    exog_vc = None
    if spec.nest is not None:
        Zn = Zall[:, q:]
        exog_vc = {"nested": {}}
        for g in np.unique(codes):
            exog_vc["nested"][g] = Zn[codes == g]
    model = MixedLM(pd.Series(spec.y, name=spec.yname),
                    pd.DataFrame(spec.X, columns=spec.exog_names), groups=codes,
                    exog_re=pd.DataFrame(Zall[:, :q], columns=re_names), exog_vc=exog_vc)
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
    if spec.nest is not None:
        theta.append(float(np.sqrt(max(float(np.asarray(smres.vcomp)[0]) / scale, 0.0))))
    theta = np.asarray(theta)
    crit, grad, _ = _grad_check(prob, np.maximum(theta, prob.lower), reml)
    info = dict(engine="statsmodels", engine_result=smres, engine_llf=float(smres.llf),
                grad_crit=crit, gradient=grad, algorithm="one",
                message=f"statsmodels converged={smres.converged}",
                engine_warnings=[str(w.message) for w in caught])
    return theta, bool(smres.converged), info


def _one_engine_z(spec):
    """The ``(n, Q)`` random-effects design of the one-factor engine (term, nested slots)."""
    if spec.nest is None:
        return spec.terms[0].Xt
    a, b = spec.nest
    extra = [c for c in spec.group_cols[b] if c not in spec.group_cols[a]]
    ncodes, _ = _group_codes(spec.frame, extra)
    Zn = np.zeros((len(spec.y), int(ncodes.max()) + 1))
    Zn[np.arange(len(spec.y)), ncodes] = 1.0
    return np.column_stack([spec.terms[a].Xt, Zn])


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
    >>> m0 = fit_lmm("value ~ 1 + (1 | participant_id)", df)
    >>> m1 = fit_lmm("value ~ week + (1 | participant_id)", df)
    >>> bool(lrt(m0, m1).loc["model_big", "p_value"] < 0.001)
    True
    """
    small, big = (m.refit_ml() if m.reml else m for m in (model_small, model_big))
    if small.n_rows != big.n_rows:
        raise AnalysisError(f"models were fitted to different numbers of rows ({small.n_rows} vs "
                            f"{big.n_rows}); drop missing values first so both use the same rows")
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
    formula, re_formula, reml, engine
        The formula as written, its random terms as fitted (``||`` and ``/`` expanded), the
        method and the engine.
    llf, aic, bic : float
        Log-likelihood (REML criterion for REML fits, as lme4's ``logLik``), AIC, BIC with
        ``npar = p + len(theta) + 1``.
    n_rows : int
        Rows fitted (``nobs`` is a deprecated alias).
    ngroups : int
        Levels of the grouping factor of the first random term written (e.g. participants);
        ``ngrps`` has every factor, as lme4's ``ngrps``.
    converged, singular : bool
    sigma2 : float
        Residual variance.
    theta : numpy.ndarray
        Relative covariance factor, lme4's ``getME(fit, "theta")`` (terms in lme4's order).
    deviance, npar, sigma, fit_info
        -2 llf, number of parameters, residual SD, and optimiser details (engine, gradient
        criterion, gradient and Hessian of the profiled deviance, evaluations, message).
    varcomp : pandas.DataFrame
        SDs and correlations (like ``as.data.frame(VarCorr(fit))``).
    """

    nobs = renamed_attribute("n_rows", "nobs")

    def __init__(self, spec, prob, theta, *, reml, converged, info):
        self._spec, self._prob = spec, prob
        self.confidence = 0.95  # of summary()'s intervals; summary(confidence=) gives others
        self._theta_engine = np.asarray(theta, float)
        self.theta = spec.theta_to_lme4(self._theta_engine)
        self.reml = bool(reml)
        self.converged = bool(converged)
        self.engine = info["engine"]
        self.fit_info = info
        st = prob.solve(self._theta_engine)
        self._st = st
        n, p = prob.n, prob.p
        self.n_rows = n
        first = spec.terms[0]
        self.ngroups = first.nlev
        self.ngrps = {spec.terms[i].group: spec.terms[i].nlev for i in spec.order}
        self.sigma2 = float(st["r2"] / (n - p if reml else n))
        self.sigma = float(np.sqrt(self.sigma2))
        names = spec.exog_names
        self.fe_params = pd.Series(st["beta"], index=names, name="estimate")
        self._unsc = prob.unscaled_cov_beta(st=st)
        self.cov_fe = pd.DataFrame(self.sigma2 * self._unsc, index=names, columns=names)
        self.bse = pd.Series(np.sqrt(np.diag(self.cov_fe)), index=names, name="se")
        self.deviance = float(prob.deviance(self._theta_engine, reml, st=st))
        self.llf = -0.5 * self.deviance
        self.npar = p + prob.ntheta + 1
        self.aic = -2 * self.llf + 2 * self.npar
        self.bic = -2 * self.llf + np.log(n) * self.npar
        bounded = np.isfinite(prob.lower)
        self.singular = bool(np.any(self._theta_engine[bounded] < SINGULAR_TOL))
        self._satt = None
        self._kr = None
        self._blups = None

    # -- specification passthrough
    formula = property(lambda self: self._spec.formula)
    re_formula = property(lambda self: self._spec.re_formula)
    design_info = property(lambda self: self._spec.design_info)
    data = property(lambda self: self._spec.frame)
    exog_names = property(lambda self: list(self._spec.exog_names))
    #: The fixed-effects model matrix actually fitted (``n_rows x p``).
    model_matrix = property(lambda self: self._spec.X)

    # -- variance components
    def re_terms(self):
        """``[(TermData, T)]`` in lme4's order, ``T`` the term's relative factor."""
        out, pos = [], 0
        for i in self._spec.order:
            t = self._spec.terms[i]
            T = np.zeros((t.k, t.k))
            for j in range(t.k):
                for r in range(j, t.k):
                    T[r, j] = self.theta[pos]
                    pos += 1
            out.append((t, T))
        return out

    def _group_labels(self):
        """lme4's VarCorr names: a factor's second term is ``g.1``, its third ``g.2``."""
        seen, out = {}, []
        for t, _ in self.re_terms():
            k = seen.get(t.group, 0)
            out.append(t.group if k == 0 else f"{t.group}.{k}")
            seen[t.group] = k + 1
        return out

    @property
    def cov_re(self):
        """Covariance matrix of the random effects of each term.

        A DataFrame when the model has one random term (e.g. ``(1 + week | participant_id)``),
        otherwise a dict ``{group label: DataFrame}`` with lme4's VarCorr labels.
        """
        mats = {}
        for lab, (t, T) in zip(self._group_labels(), self.re_terms()):
            mats[lab] = pd.DataFrame(self.sigma2 * T @ T.T, index=t.names, columns=t.names)
        if len(mats) == 1:
            return next(iter(mats.values()))
        return mats

    @property
    def varcomp(self) -> pd.DataFrame:
        """Tidy variance components: one row per SD (``var2`` empty) and per correlation.

        Columns ``group, var1, var2, vcov, sdcor`` as R's ``as.data.frame(VarCorr(fit))``,
        terms in lme4's order.
        """
        rows = []
        for g, (t, T) in zip(self._group_labels(), self.re_terms()):
            cov = self.sigma2 * T @ T.T
            names = t.names
            for i, nm in enumerate(names):
                rows.append((g, nm, None, cov[i, i], np.sqrt(cov[i, i])))
            for j in range(len(names)):
                for i in range(j + 1, len(names)):
                    den = np.sqrt(cov[i, i] * cov[j, j])
                    rows.append((g, names[j], names[i], cov[i, j],
                                 cov[i, j] / den if den > 0 else np.nan))
        rows.append(("Residual", None, None, self.sigma2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "var1", "var2", "vcov", "sdcor"])

    def _term_blups(self):
        if self._blups is None:
            terms = self.re_terms()
            self._blups = conditional_modes([t for t, _ in terms], [T for _, T in terms],
                                            self._spec.X, self._spec.y, self.fe_params)
        return self._blups

    def ranef(self) -> dict:
        """BLUPs (conditional modes) per grouping factor, as lme4's ``ranef``.

        Returns ``{factor: DataFrame}``, one row per level (``g1:g2`` levels are written
        ``a:b``), one column per random effect; terms on the same factor share one frame.
        """
        out: dict = {}
        for (t, _), b in zip(self.re_terms(), self._term_blups()):
            df = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=t.names)
            if t.group in out:
                out[t.group] = out[t.group].join(df, rsuffix=".1")
            else:
                out[t.group] = df
        return out

    @property
    def random_effects(self) -> pd.DataFrame:
        """BLUPs per level of the grouping factor when there is one (see :meth:`ranef`)."""
        re_ = self.ranef()
        if len(re_) != 1:
            raise AnalysisError(f"the model has {len(re_)} grouping factors "
                                f"({', '.join(re_)}); use res.ranef() for all of them")
        return next(iter(re_.values()))

    # -- inference
    def _satterthwaite_parts(self):
        """``A = 2 H^{-1}`` and ``dC/dpsi`` in ``psi = (theta * d, sigma)``.

        The df are invariant to a smooth reparametrisation of the variance parameters, so
        they are computed in the well-conditioned scaled parameters the optimiser uses.
        One-factor engine: ``dC/dpsi`` is analytic (``C = sigma^2 S_xx^{-1}``, see
        :meth:`~hipstats.models._lmm_core.Problem.dsxx_dtheta`); so are the ``sigma`` row
        and column of the Hessian ``H`` of the deviance ``f`` in ``(theta, sigma)``. At
        ``sigma = sigma_hat(theta)`` the profiled deviance ``d`` has Hessian
        ``H_dd = H_tt - H_ts H_ts' / H_ss`` (``df/dsigma = 0`` there), so the ``theta`` block
        ``H_tt`` is recovered from the Hessian of ``d`` that the convergence check already
        computed; without one (every parameter at a bound) it is the central-difference
        Jacobian of the analytic gradient (step ``1e-3 max(|psi|, 0.05)``,
        :data:`SATT_RICHARDSON` Richardson levels). Blocked engine: central differences of
        the deviance and of ``C`` throughout, as lmerTest does with numDeriv.
        """
        if self._satt is None:
            with _blas_single_thread():
                if getattr(self._prob, "analytic", True):
                    self._satt = self._compute_satterthwaite_parts()
                else:
                    self._satt = self._numeric_satterthwaite_parts()
        return self._satt

    def _numeric_satterthwaite_parts(self):
        prob, reml = self._prob, self.reml
        sc = prob.theta_scale
        k = prob.ntheta
        psi0 = np.r_[self._theta_engine * sc, self.sigma]

        def f(psi):
            return prob.deviance_varpar(np.r_[psi[:k] / sc, psi[k]], reml)

        H = _num_hessian(f, psi0)
        A = 2.0 * np.linalg.pinv(H)
        s2 = self.sigma2
        jac = []
        h = 1e-4 * np.maximum(np.abs(psi0[:k]), 0.05)
        for j in range(k):
            e = np.zeros(k)
            e[j] = h[j]
            Pp = prob.unscaled_cov_beta((psi0[:k] + e) / sc)
            Pm = prob.unscaled_cov_beta((psi0[:k] - e) / sc)
            jac.append(s2 * (Pp - Pm) / (2 * h[j]))
        jac.append(2.0 * self.sigma * self._unsc)
        return A, jac

    def _compute_satterthwaite_parts(self):
        prob, reml = self._prob, self.reml
        sc = prob.theta_scale
        sigma, s2 = self.sigma, self.sigma2
        m = (prob.n - prob.p) if reml else prob.n
        theta = self._theta_engine

        def grad_theta(phi):          # d deviance / d phi at fixed sigma
            _, gL, gX, gr = prob.grad_parts(phi / sc, reml)
            return (gL + gX + gr / s2) / sc

        _, _, _, gr = prob.grad_parts(theta, reml)
        h_ts = -2.0 * gr / sigma ** 3 / sc
        h_ss = 6.0 * self._st["r2"] / sigma ** 4 - 2.0 * m / s2
        hprof = self.fit_info.get("hessian") if self.engine == "fast" else None
        if hprof is not None:
            Htt = hprof / np.outer(sc, sc) + np.outer(h_ts, h_ts) / h_ss
        else:
            Htt = _richardson_jacobian(grad_theta, theta * sc, r=SATT_RICHARDSON)
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

    def check_contrast(self, L) -> np.ndarray:
        """``L`` as a ``(k, p)`` float matrix over the fixed effects (error naming them)."""
        L = np.atleast_2d(np.asarray(L, float))
        p = self._prob.p
        if L.shape[1] != p:
            raise AnalysisError(f"contrast matrix must have {p} columns (one per fixed effect: "
                                f"{', '.join(self.exog_names)}), got {L.shape[1]}")
        return L

    def df_satterthwaite(self, L) -> np.ndarray:
        """Satterthwaite denominator df for each row of a contrast matrix ``L`` (k x p).

        .. math:: \\nu_l = \\frac{2 (l^\\top C l)^2}{g^\\top A g},\\quad
            g_j = l^\\top \\frac{\\partial C}{\\partial \\varphi_j} l,\\quad A = 2H^{-1}

        as lmerTest's ``contest1D``; ``H`` is the Hessian of the deviance in
        ``(theta, sigma)``.

        Examples
        --------
        >>> # res.df_satterthwaite(np.eye(len(res.fe_params)))   # df of every coefficient
        """
        L = self.check_contrast(L)
        A, jac = self._satterthwaite_parts()
        C = self.cov_fe.to_numpy()
        out = np.empty(L.shape[0])
        for r, l in enumerate(L):
            v = l @ C @ l
            g = np.array([l @ Jk @ l for Jk in jac])
            den = g @ A @ g
            out[r] = 2.0 * v ** 2 / den if den > 0 else np.inf
        return out

    def ddf_method(self, ddf) -> str:
        """Canonical name of a df method: ``satterthwaite`` or ``kenward-roger`` (REML only)."""
        key = str(ddf).strip().lower().replace("_", "-").replace(" ", "-")
        key = {"kr": "kenward-roger", "kenward-roger": "kenward-roger", "kenwardroger":
               "kenward-roger", "satterthwaite": "satterthwaite", "satt": "satterthwaite"
               }.get(key)
        if key is None:
            raise AnalysisError(f"ddf must be 'satterthwaite' or 'kenward-roger', got {ddf!r}")
        if key == "kenward-roger" and not self.reml:
            raise AnalysisError("Kenward-Roger df need a REML fit (as pbkrtest); refit with "
                                "reml=True or use ddf='satterthwaite'")
        return key

    def summary(self, confidence: float | None = None, ddf: str = "satterthwaite", *,
                alpha: float | None = None) -> pd.DataFrame:
        """Fixed effects: estimate, se, df, statistic (t), p_value, CI at ``confidence``.

        ``confidence`` defaults to the result's level (0.95); ``alpha=`` is the deprecated way
        to set it (``confidence = 1 - alpha``).

        ``ddf="satterthwaite"`` (lmerTest's default) or ``"kenward-roger"``: then ``se`` is
        from the Kenward-Roger adjusted covariance and ``df`` the Kenward-Roger df, as
        ``summary(fit, ddf = "Kenward-Roger")`` in lmerTest (pbkrtest).
        """
        confidence = resolve_confidence(self.confidence if confidence is None else confidence, alpha,
                                        where="LMMResult.summary")
        key = self.ddf_method(ddf)
        est = self.fe_params
        eye = np.eye(len(est))
        if key == "kenward-roger":
            kr = self.kenward_roger()
            se = pd.Series(np.sqrt(np.diag(kr.vcov_adj)), index=est.index, name="se")
            df = np.array([kr.ddf_1d(row) for row in eye])
        else:
            se = self.bse
            df = self.df_satterthwaite(eye)
        return coefficient_table(est, se, df, confidence)

    def kenward_roger(self):
        """The Kenward-Roger machinery of this fit (cached), see :mod:`hipstats.models.anova`."""
        if self._kr is None:
            from hipstats.models.anova import kenward_roger_for

            self._kr = kenward_roger_for(self)
        return self._kr

    def anova(self, type: int | str = 3, ddf: str = "satterthwaite") -> pd.DataFrame:
        """F tests of every fixed-effects term, as lmerTest's ``anova(fit, type, ddf)``.

        See :func:`hipstats.models.anova.anova`.
        """
        from hipstats.models.anova import anova

        return anova(self, type=type, ddf=ddf)

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
        """Fit statistics: n_rows, ngroups, llf, aic, bic, sigma, converged, singular, engine."""
        return pd.Series({"formula": self.formula, "random": self.re_formula,
                          "method": "REML" if self.reml else "ML", "engine": self.engine,
                          "algorithm": self.fit_info.get("algorithm"),
                          "n_rows": self.n_rows, "ngroups": self.ngroups,
                          "ngrps": ", ".join(f"{g}: {n}" for g, n in self.ngrps.items()),
                          "llf": self.llf, "aic": self.aic, "bic": self.bic, "sigma": self.sigma,
                          "converged": self.converged, "singular": self.singular})

    # -- predictions
    def predict(self, newdata=None, random=True) -> pd.Series:
        """Fitted values for ``newdata`` (default: the model frame).

        ``random=True`` adds the BLUPs of every term (levels not in the fit get 0, i.e. the
        population prediction, as lme4's ``allow.new.levels``); ``random=False`` gives
        ``X beta`` only. Rows with missing predictors give NaN.
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
        spec = self._spec
        need = list(dict.fromkeys(g for cols in spec.group_cols for g in cols))
        missing = [c for c in need if c not in data.columns]
        if missing:
            raise AnalysisError(f"newdata has no column {', '.join(map(repr, missing))} for the "
                                "random effects; pass random=False for population predictions")
        ok = X.index
        contrib = np.zeros(len(ok))
        blups = dict(zip(spec.order, self._term_blups()))
        for i, (t, info) in enumerate(zip(spec.terms, spec.re_design_infos)):
            Zr = patsy.build_design_matrices([info], data, NA_action="drop",
                                             return_type="dataframe")[0]
            ok = ok.intersection(Zr.index)
        contrib = pd.Series(0.0, index=ok)
        for i, (t, info) in enumerate(zip(spec.terms, spec.re_design_infos)):
            Zr = patsy.build_design_matrices([info], data.loc[ok], NA_action="drop",
                                             return_type="dataframe")[0].to_numpy(float)
            cols = spec.group_cols[i]
            sub = data.loc[ok, list(cols)]
            if len(cols) == 1:
                keys = sub[cols[0]].to_numpy()
                lookup = {v: j for j, v in enumerate(t.levels)}
            else:
                keys = [":".join(map(str, r)) for r in sub.itertuples(index=False, name=None)]
                lookup = {v: j for j, v in enumerate(t.levels)}
            idx = np.array([lookup.get(v, -1) for v in keys], dtype=int)
            have = idx >= 0
            B = np.zeros((len(ok), t.k))
            B[have] = blups[i][idx[have]]
            contrib += np.einsum("nk,nk->n", Zr, B)
        pred.loc[ok] = pred.loc[ok].to_numpy() + contrib.to_numpy()
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

        from hipstats.plots.style import theme

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
        return (f"LMMResult({self.formula!r}, {'REML' if self.reml else 'ML'}, "
                f"n_rows={self.n_rows}, ngrps={self.ngrps}, llf={self.llf:.3f}, "
                f"converged={self.converged}, singular={self.singular})")

    def _repr_html_(self):
        info = self.model_info()
        head = ", ".join(f"<b>{html.escape(str(k))}</b>: {html.escape(str(v))}"
                         for k, v in info.items())
        return (f"<div><p>Linear mixed model &mdash; {head}</p>"
                f"<p><b>Fixed effects</b></p>{html_table(self.summary().reset_index())}"
                f"<p><b>Variance components</b></p>"
                f"{html_table(self.varcomp)}</div>")


# --------------------------------------------------------------------------- numerics
def _num_hessian(f, x, d=1e-3, floor=0.05):
    """Central-difference Hessian of ``f`` at ``x`` (step ``d max(|x|, floor)``)."""
    x = np.asarray(x, float)
    k = len(x)
    h = d * np.maximum(np.abs(x), floor)
    f0 = f(x)
    H = np.empty((k, k))
    E = np.diag(h)
    for i in range(k):
        H[i, i] = (f(x + E[i]) - 2 * f0 + f(x - E[i])) / h[i] ** 2
        for j in range(i):
            H[i, j] = H[j, i] = (f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j])
                                 + f(x - E[i] - E[j])) / (4 * h[i] * h[j])
    return H


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
