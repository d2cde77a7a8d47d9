"""Likelihood engine and optimiser of :mod:`hipstats.models.mmrm`.

:class:`Engine` evaluates the deviance (-2 log-likelihood, REML or ML) of an MMRM and its
analytic gradient from per-visit-pattern sufficient statistics (the formulas are in
:mod:`hipstats.models.mmrm`), the GLS solution, the Hessian and the Kenward-Roger blocks;
:func:`optimize_theta` minimises it (BFGS, then Newton polish) and judges convergence.

Examples
--------
>>> from hipstats.models._mmrm_engine import CONV_TOL
>>> CONV_TOL
1e-06
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from hipstats.models import kenward_roger as kr

__all__ = ["CONV_TOL", "LOG2PI", "Engine", "optimize_theta"]

LOG2PI = float(np.log(2.0 * np.pi))
#: Newton-decrement tolerance ``g' H^{-1} g`` of the deviance at which a fit counts as converged.
CONV_TOL = 1e-6


class Engine:
    """Deviance (-2 log-likelihood) of an MMRM and its analytic gradient in ``theta``.

    Every visit pattern is padded to the full ``m`` visits (missing visits get an identity
    block in ``Sigma`` and zero sufficient statistics, which changes neither the likelihood nor
    the gradient), so one evaluation is a few batched operations over the patterns.

    Parameters
    ----------
    patterns : list of hipstats.models._mmrm_frame.Pattern
        The subjects grouped by visit pattern (:func:`~hipstats.models._mmrm_frame.group_patterns`).
    structure : hipstats.models._mmrm_covariance.Structure
    p : int
        Fixed effects.
    N : int
        Observations.

    Examples
    --------
    >>> import numpy as np
    >>> from hipstats.models._mmrm_covariance import Structure
    >>> from hipstats.models._mmrm_frame import Pattern
    >>> full = Pattern([0, 1, 2], np.ones((10, 3, 1)), np.arange(30.0).reshape(10, 3), np.arange(10))
    >>> part = Pattern([0, 2], np.ones((5, 2, 1)), np.ones((5, 2)), np.arange(10, 15))
    >>> engine = Engine([full, part], Structure("cs", 3), 1, 40)
    >>> dev, grad = engine.evaluate(np.array([2.0, 0.5]), reml=True)
    >>> bool(np.isfinite(dev)), grad.shape
    (True, (2,))
    """

    def __init__(self, patterns, structure, p, N):
        self.patterns, self.st, self.p, self.N = patterns, structure, p, N
        m, G = structure.m, len(patterns)
        self.G = G
        pres = np.zeros((G, m), dtype=bool)
        XX = np.zeros((G, m, m, p, p))
        Xy = np.zeros((G, m, m, p))
        yy = np.zeros((G, m, m))
        for g, pat in enumerate(patterns):
            i = pat.idx
            pres[g, i] = True
            ix = np.ix_(i, i)
            XX[g][ix] = np.einsum("iap,ibq->abpq", pat.X, pat.X, optimize=True)
            Xy[g][ix] = np.einsum("iap,ib->abp", pat.X, pat.Y, optimize=True)
            yy[g][ix] = pat.Y.T @ pat.Y
        self.mask = (pres[:, :, None] & pres[:, None, :]).astype(float)       # (G, m, m)
        self.pad = np.zeros((G, m, m))
        for g in range(G):
            self.pad[g][np.diag(~pres[g])] = 1.0
        self.n = np.array([pat.n for pat in patterns], float)
        self.XX = XX.reshape(G * m * m, p * p)
        self.XXg = XX.reshape(G, m * m, p * p)
        self.Xy = Xy.reshape(G * m * m, p)
        self.Xyg = Xy.reshape(G, m * m, p)
        self.yy = yy

    def _factor(self, S):
        Sp = self.mask * S + self.pad
        try:
            C = np.linalg.cholesky(Sp)
        except np.linalg.LinAlgError:
            return None
        W = np.linalg.inv(Sp)
        logdet = 2.0 * float(self.n @ np.log(np.diagonal(C, axis1=1, axis2=2)).sum(axis=1))
        return W, logdet

    def evaluate(self, theta, reml=True, grad=True):
        st, p, m, G = self.st, self.p, self.st.m, self.G
        if grad:
            S, dS = st.sigma(theta, order=1)
        else:
            S = st.sigma(theta)
        fac = self._factor(S)
        if fac is None:
            return (np.inf, None) if grad else np.inf
        W, logdet = fac
        w = W.reshape(-1)
        XVX = (w @ self.XX).reshape(p, p)
        XVy = w @ self.Xy
        yVy = float(w @ self.yy.reshape(-1))
        try:
            cx = np.linalg.cholesky(XVX)
        except np.linalg.LinAlgError:
            return (np.inf, None) if grad else np.inf
        beta = np.linalg.solve(XVX, XVy)
        dev = self.N * LOG2PI + logdet + yVy - beta @ XVy
        if reml:
            dev += 2.0 * np.log(np.diag(cx)).sum() - p * LOG2PI
        if not grad:
            return float(dev)
        B = (self.Xyg @ beta).reshape(G, m, m)             # B[a, b] = sum_i (x_ia'beta) y_ib
        RR = self.yy - B - B.transpose(0, 2, 1) + (self.XXg @ np.outer(beta, beta).ravel()).reshape(G, m, m)
        if reml:
            Phi = np.linalg.inv(XVX)
            RR = RR + (self.XXg @ Phi.ravel()).reshape(G, m, m)
        F = self.n[:, None, None] * W - W @ RR @ W
        Fsum = (self.mask * F).sum(axis=0)
        return float(dev), np.einsum("kab,ab->k", dS, Fsum)

    def solve(self, theta):
        """GLS ``beta``, ``Phi = (X'V^-1 X)^-1`` and ``X'V^-1 X`` at ``theta``."""
        p = self.p
        W, _ = self._factor(self.st.sigma(theta))
        w = W.reshape(-1)
        XVX = (w @ self.XX).reshape(p, p)
        XVX = 0.5 * (XVX + XVX.T)
        Phi = np.linalg.inv(XVX)
        Phi = 0.5 * (Phi + Phi.T)
        return Phi @ (w @ self.Xy), Phi, XVX

    def hessian(self, theta, reml):
        """Hessian of the deviance: central differences of the analytic gradient."""
        theta = np.asarray(theta, float)
        k = len(theta)
        H = np.empty((k, k))
        for j in range(k):
            h = 1e-4 * max(1.0, abs(theta[j]))
            e = np.zeros(k)
            e[j] = h
            H[:, j] = (self.evaluate(theta + e, reml)[1] - self.evaluate(theta - e, reml)[1]) / (2 * h)
        return 0.5 * (H + H.T)

    def kr_groups(self, theta):
        """:class:`~hipstats.models.kenward_roger.BlockGroup` per visit pattern."""
        S, dS, d2S = self.st.sigma(theta, order=2)
        out = []
        for g in self.patterns:
            i = g.idx
            out.append(kr.BlockGroup(g.X, S[np.ix_(i, i)], dS[:, i][:, :, i],
                                     d2S[:, :, i][:, :, :, i]))
        return out


def optimize_theta(engine, theta0, reml, maxiter):
    """BFGS on the unconstrained ``theta``, then Newton polish; returns theta, H, info.

    Parameters
    ----------
    engine : Engine
    theta0 : numpy.ndarray
        Start (e.g. :meth:`~hipstats.models._mmrm_covariance.Structure.start` of an empirical
        covariance).
    reml : bool
    maxiter : int
        Iteration limit of BFGS.

    Returns
    -------
    theta : numpy.ndarray
    H : numpy.ndarray
        Hessian of the deviance at ``theta``.
    info : dict
        ``nfev, nit, message, deviance, gradient, newton_decrement, hessian_pd, converged``
        (converged: Hessian positive definite and Newton decrement below :data:`CONV_TOL`).

    Examples
    --------
    >>> import numpy as np
    >>> from hipstats.models._mmrm_covariance import Structure
    >>> from hipstats.models._mmrm_frame import Pattern
    >>> rng = np.random.default_rng(1)
    >>> Y = rng.normal(0, 1, (30, 1)) + rng.normal(0, 1, (30, 3))
    >>> g = Pattern([0, 1, 2], np.ones((30, 3, 1)), Y, np.arange(30))
    >>> st = Structure("cs", 3)
    >>> theta, H, info = optimize_theta(Engine([g], st, 1, 90), st.start(np.eye(3)), True, 500)
    >>> info["converged"], H.shape
    (True, (2, 2))
    """
    def fg(t):
        v, g = engine.evaluate(t, reml)
        if not np.isfinite(v):
            return 1e300, np.zeros_like(t)
        return v, g

    res = optimize.minimize(fg, theta0, jac=True, method="BFGS",
                            options=dict(maxiter=maxiter, gtol=1e-6))
    theta, f = res.x, float(res.fun)
    nfev, msg = res.nfev, str(res.message)
    H = engine.hessian(theta, reml)
    moved = False
    for _ in range(6):
        g = engine.evaluate(theta, reml)[1]
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        dec = float(g @ step)
        if not np.isfinite(dec) or dec < 1e-14:
            break
        t = 1.0
        while t > 1e-4:
            cand = theta - t * step
            fc = engine.evaluate(cand, reml, grad=False)
            nfev += 1
            if fc <= f + 1e-12:
                theta, f, moved = cand, float(fc), True
                break
            t /= 2
        else:
            break
    if moved:
        H = engine.hessian(theta, reml)
    g = engine.evaluate(theta, reml)[1]
    evals = np.linalg.eigvalsh(H)
    pd_ok = bool(evals.min() > 1e-8 * max(evals.max(), 1.0))
    try:
        dec = float(g @ np.linalg.solve(H, g)) if pd_ok else np.inf
    except np.linalg.LinAlgError:
        dec = np.inf
    converged = pd_ok and abs(dec) < CONV_TOL
    return theta, H, dict(nfev=nfev, nit=res.nit, message=msg, deviance=f, gradient=g,
                          newton_decrement=dec, hessian_pd=pd_ok, converged=converged)
