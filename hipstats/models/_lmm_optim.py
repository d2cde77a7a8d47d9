"""Optimiser of :mod:`hipstats.models.lmm`: lme4's profiled deviance minimised over theta.

:func:`optimize_theta` minimises the deviance of an engine problem
(:class:`~hipstats.models._lmm_core.Problem`, :class:`~hipstats.models._lmm_blocked.BlockedProblem`)
in scaled units: bounded L-BFGS-B with the analytic gradient (one-factor engine) or BOBYQA
(blocked engine, as lme4), a boundary escape for a diagonal entry stuck at 0 that is not a
minimum, and a Nelder-Mead polish when lme4's gradient criterion (:func:`grad_check`,
:data:`GRAD_TOL`) fails. The numerical derivatives the fit and its Satterthwaite df need
(:func:`num_hessian`, :func:`richardson_jacobian`) and :func:`blas_single_thread` live here too.

Examples
--------
>>> import numpy as np
>>> from hipstats.models._lmm_optim import num_hessian
>>> num_hessian(lambda v: float(v @ v), np.zeros(2)).round(6).tolist()
[[2.0, 0.0], [0.0, 2.0]]
"""

from __future__ import annotations

import contextlib

import numpy as np
from scipy import optimize

__all__ = ["GRAD_TOL", "SINGULAR_TOL", "blas_single_thread", "grad_check", "num_hessian", "optimize_theta",
           "richardson_jacobian"]

#: lme4's default tolerances: ``check.conv.grad`` (2e-3) and ``isSingular`` (1e-4).
GRAD_TOL = 2e-3
SINGULAR_TOL = 1e-4

_BLAS_CONTROLLER: list = []


def blas_single_thread():
    """Limit BLAS to one thread while fitting (optional ``threadpoolctl``).

    Every linear-algebra call of a fit is tiny (at most p x p); multi-threaded OpenBLAS only
    adds synchronisation overhead there, and a lot of it on a busy machine. The loaded BLAS
    libraries are looked up once per process (a lookup reads the process memory map and
    costs milliseconds, more than a small fit); numpy and scipy have loaded theirs by then.

    Returns
    -------
    contextlib.AbstractContextManager
        ``threadpoolctl``'s limit, or a null context without ``threadpoolctl``.

    Examples
    --------
    >>> import numpy as np
    >>> with blas_single_thread():
    ...     float(np.linalg.det(np.eye(3)))
    1.0
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


def grad_check(prob, theta, reml):
    """lme4's check.conv.grad: max(min(|g|, |H^{-1/2} g|)) over parameters not at a bound.

    Parameters
    ----------
    prob : hipstats.models._lmm_core.Problem or hipstats.models._lmm_blocked.BlockedProblem
        The engine's deviance.
    theta : numpy.ndarray
        Engine theta.
    reml : bool

    Returns
    -------
    crit : float
        The criterion (lme4 declares convergence below :data:`GRAD_TOL`).
    g : numpy.ndarray
        The gradient of the profiled deviance in theta.
    H : numpy.ndarray or None
        Its (symmetrised; one-factor engine: central-difference Jacobian of the analytic
        gradient) Hessian, None when every parameter is at a bound.

    Examples
    --------
    >>> import numpy as np, pandas as pd, patsy
    >>> from hipstats.models._lmm_frame import ModelSpec
    >>> rng = np.random.default_rng(0)
    >>> d = pd.DataFrame({"g": np.repeat(np.arange(20), 4), "x": np.tile([0., 1, 2, 3], 20)})
    >>> d["y"] = rng.normal(0, 2, 20)[d["g"]] + d["x"] + rng.normal(0, 1, 80)
    >>> prob = ModelSpec("y ~ x + (1 | g)", d, patsy.EvalEnvironment.capture()).problem()
    >>> crit, g, H = grad_check(prob, prob.theta0, True)
    >>> bool(crit > GRAD_TOL), H.shape
    (True, (1, 1))
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


def optimize_theta(prob, reml, maxiter, theta0=None):
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

    Parameters
    ----------
    prob : hipstats.models._lmm_core.Problem or hipstats.models._lmm_blocked.BlockedProblem
        The engine's deviance (``analytic`` False: BOBYQA).
    reml : bool
    maxiter : int
        Iteration limit of the local optimiser (1: no boundary escape, no polish).
    theta0 : array_like, optional
        Start in engine theta.

    Returns
    -------
    theta : numpy.ndarray
        Engine theta at the minimum.
    crit, g, H
        :func:`grad_check` at ``theta``.
    nfev : int
        Deviance evaluations.
    message : str
        The local optimiser's message and its iterations.

    Examples
    --------
    >>> import numpy as np, pandas as pd, patsy
    >>> from hipstats.models._lmm_frame import ModelSpec
    >>> rng = np.random.default_rng(3)
    >>> d = pd.DataFrame({"a": np.repeat(np.arange(6), 6), "b": np.tile(np.arange(6), 6)})
    >>> d["y"] = rng.normal(0, 1, 6)[d["a"]] + rng.normal(0, 1, 6)[d["b"]] + rng.normal(0, .5, 36)
    >>> prob = ModelSpec("y ~ 1 + (1 | a) + (1 | b)", d, patsy.EvalEnvironment.capture()).problem()
    >>> theta, crit, g, H, nfev, msg = optimize_theta(prob, True, 1000)
    >>> msg.startswith("nlopt BOBYQA"), theta.shape, bool(crit < GRAD_TOL)
    (True, (2,), True)
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
    crit, g, H = grad_check(prob, theta, reml)
    if crit > GRAD_TOL and maxiter > 1:
        nm = optimize.minimize(f, phi, method="Nelder-Mead", bounds=bounds,
                               options=dict(maxfev=400 * prob.ntheta, xatol=1e-7,
                                            fatol=1e-9, adaptive=True))
        res = local(np.maximum(nm.x, lower))
        nfev += nm.nfev + res.nfev
        if res.fun <= fbest:
            theta, msg = res.x / s, str(res.message)
        crit, g, H = grad_check(prob, theta, reml)
    return theta, crit, g, H, nfev, f"{msg} ({nit} iterations)"



# --------------------------------------------------------------------------- numerical derivatives
def num_hessian(f, x, d=1e-3, floor=0.05):
    """Central-difference Hessian of ``f`` at ``x`` (step ``d max(|x|, floor)``).

    Parameters
    ----------
    f : callable
        Scalar function of a 1-D array.
    x : array_like
    d, floor : float
        Relative step and the smallest ``|x|`` it is relative to.

    Returns
    -------
    numpy.ndarray
        ``(k, k)``, symmetric.

    Examples
    --------
    >>> import numpy as np
    >>> H = num_hessian(lambda v: v[0] ** 2 + 3 * v[0] * v[1], np.array([1.0, 2.0]))
    >>> np.round(H, 6).tolist()[0]
    [2.0, 3.0]
    """
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


def richardson_jacobian(fun, x, r=4):
    """Jacobian of ``fun`` at ``x`` by central differences with ``r`` Richardson levels.

    Parameters
    ----------
    fun : callable
        Function of a 1-D array returning an array.
    x : array_like
    r : int, default 4
        Richardson levels (1: one central difference with step ``1e-3 max(|x|, 0.05)``; each
        further level halves the step).

    Returns
    -------
    numpy.ndarray
        ``(len(fun(x)), len(x))``.

    Examples
    --------
    >>> import numpy as np
    >>> J = richardson_jacobian(lambda v: np.array([v[0] ** 3, v[0] * v[1]]), np.array([1.0, 2.0]))
    >>> np.round(J, 8).tolist()
    [[3.0, 0.0], [2.0, 1.0]]
    """
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
