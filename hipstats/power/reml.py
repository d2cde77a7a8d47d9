"""REML fits of the planned trial's mixed model from per-pattern sufficient statistics.

The power simulation fits the same model to thousands of replicates of one design:
``value ~ week * arm`` with a random intercept (and slope) per participant, every participant
measured at the design's visits until (monotone) dropout. A participant's fixed-effects rows
:math:`X_i` and random-effects rows :math:`Z_i` depend only on the *pattern* (arm, last visit
observed), so a design with *a* arms and *k* visits has at most *a k* distinct
:math:`(X_g, Z_g)`, shared by every replicate, and the data enter the REML criterion only
through per-pattern sums: the count :math:`n_g`, :math:`\\sum_i Z_g' y_i`,
:math:`\\sum_i (Z_g' y_i)(Z_g' y_i)'` and :math:`\\sum_i y_i' y_i`. With lme4's
parameterisation :math:`V_i = \\sigma^2 (I + Z_i \\Lambda \\Lambda' Z_i')` and Woodbury /
Sylvester (:math:`M_g = I_q + \\Lambda' Z_g' Z_g \\Lambda`), the profiled REML deviance

.. math::

    d(\\theta) = \\sum_g n_g \\log|M_g| + \\log|X'WX| + (N - p)\\Big(1 +
    \\log \\frac{2\\pi\\, r'Wr}{N - p}\\Big)

is a sum of *q x q* (q = 1 or 2, written out elementwise) and *p x p* terms, independent of
the number of participants. The criterion is evaluated for many :math:`\\theta` and many
replicates in one numpy call (leading axes), so a Newton step with its finite-difference
gradient and Hessian (19 points for three parameters) costs about one evaluation, shared by a
block of replicates. Lower bounds (diagonal of :math:`\\Lambda` >= 0) are handled with an
active set; the optimiser starts at the design's true :math:`\\theta`.

The test of one fixed effect uses lmerTest's Satterthwaite df: variance parameters
:math:`(\\theta, \\sigma)`, their covariance :math:`2 H^{-1}` from the Hessian :math:`H` of the
REML deviance (finite differences in :math:`\\theta`, analytic in :math:`\\sigma`), the
gradient of :math:`\\mathrm{Var}(\\hat\\beta_j) = \\sigma^2 [(X'WX)^{-1}]_{jj}`, and
:math:`\\nu = 2 \\mathrm{Var}^2 / (g' 2H^{-1} g)`.

Every replicate's numbers are computed from its own data only (elementwise over the
replicate axis; a converged replicate is frozen), so results do not depend on which other
replicates share its block, process or backend. Checked against lme4 + lmerTest
(tests/fixtures/power) in tests/test_power.py.

Examples
--------
>>> import numpy as np
>>> from hipstats.power.design import TrialDesign, draw_trial
>>> d = TrialDesign(n_per_arm=30, sd_slope=0.4, dropout=0.2)
>>> model = PatternModel(d.weeks, len(d.arms), reference=0, random_slopes=True)
>>> ys = np.stack([draw_trial(d, np.random.default_rng(s))[0] for s in range(3)])
>>> arm = draw_trial(d, np.random.default_rng(0))[1]
>>> fits = model.fit(ys, arm, theta0=[3.0, 0.0, 0.13], j=model.names.index("week_a2"))
>>> fits["converged"].tolist()
[True, True, True]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hipstats.errors import AnalysisError

__all__ = ["PatternModel", "SINGULAR_TOL"]

#: a fit is singular when a diagonal element of Lambda is below this (lme4's isSingular tol)
SINGULAR_TOL = 1e-4
_LOG2PI = math.log(2.0 * math.pi)


def _stencil_offsets(d: int) -> np.ndarray:
    """Unit offsets of the central-difference gradient/Hessian stencil: centre, +-e_i, and
    (+-e_i +- e_k) for i < k (in that order)."""
    rows = [np.zeros(d)]
    for i in range(d):
        for s in (1.0, -1.0):
            x = np.zeros(d)
            x[i] = s
            rows.append(x)
    for i in range(d):
        for k in range(i + 1, d):
            for si, sk in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                x = np.zeros(d)
                x[i], x[k] = si, sk
                rows.append(x)
    return np.array(rows)


class PatternModel:
    """The trial's mixed model for every replicate of one design (see the module docstring).

    Parameters
    ----------
    weeks : sequence of float
        Visit times; the model's time is counted from the first.
    n_arms : int
        Arms (participants' arm codes are 0 .. n_arms - 1).
    reference : int
        Arm of the treatment coding.
    random_slopes : bool
        Random intercept and slope (else intercept only).

    Attributes
    ----------
    names : list of str
        Fixed-effect names: ``Intercept, week`` then ``a<k>, week_a<k>`` for every
        non-reference arm *k* (as :func:`hipstats.power.simulation.lmm_arrays`).
    """

    def __init__(self, weeks: Sequence[float], n_arms: int, reference: int, random_slopes: bool):
        t = np.asarray(weeks, dtype=float) - float(weeks[0])
        self.t, self.k, self.n_arms, self.reference = t, t.size, int(n_arms), int(reference)
        self.q = 2 if random_slopes else 1
        others = [a for a in range(n_arms) if a != reference]
        self.names = ["Intercept", "week"] + [n for a in others for n in (f"a{a}", f"week_a{a}")]
        self.p = 2 + 2 * len(others)
        G = n_arms * self.k
        self.G = G
        # per pattern g = arm * k + last visit: the 2 x p map from (sum y, sum t y) to X'y and
        # the per-participant cross products X'X (p x p), Z'X (2 x p) and Z'Z (3 entries),
        # with Z = [1, t]; the intercept-only model uses their first row / entry
        self.P = np.zeros((G, 2, self.p))
        self.C = np.zeros((G, self.p, self.p))
        self.F = np.zeros((3, G))  # entries (1,1), (1,t), (t,t) of Z'Z per pattern, Z = [1, t]
        for a in range(n_arms):
            for m in range(self.k):
                g = a * self.k + m
                Z = np.column_stack([np.ones(m + 1), t[: m + 1]])
                X = np.hstack([Z] + [Z * (a == o) for o in others])
                self.P[g] = np.hstack([np.eye(2)] + [np.eye(2) * (a == o) for o in others])
                self.C[g] = X.T @ X
                ZZ = Z.T @ Z
                self.F[:, g] = ZZ[0, 0], ZZ[0, 1], ZZ[1, 1]
        # fixed-effect block (2 columns) of each non-reference arm
        self.blocks = {a: 2 + 2 * i for i, a in enumerate(others)}
        self.n_theta = 3 if self.q == 2 else 1
        self.lower = np.array([0.0, -np.inf, 0.0]) if self.q == 2 else np.array([0.0])
        self.Z = np.column_stack([np.ones(self.k), t])
        self.offsets = _stencil_offsets(self.n_theta)

    # ------------------------------------------------------------------ data
    def statistics(self, y: np.ndarray, arm: np.ndarray) -> dict:
        """Per-pattern sufficient statistics of replicates *y* (R, participants, visits).

        NaN marks visits missed after dropout (monotone, baseline observed); *arm* holds the
        participants' arm codes (the same in every replicate).
        """
        y = np.asarray(y, dtype=float)
        R, n_part, k = y.shape
        obs = ~np.isnan(y)
        last = obs.sum(axis=2) - 1                                     # (R, n)
        if np.any(last < 0) or np.any(obs != (np.arange(k) <= last[..., None])):
            raise AnalysisError("the pattern engine needs monotone dropout after an observed "
                                "baseline")
        y0 = np.where(obs, y, 0.0)
        u = y0 @ self.Z                                                # (R, n, 2)
        g = (np.asarray(arm)[None, :] * k + last) + (np.arange(R) * self.G)[:, None]
        g = g.ravel()
        size = R * self.G

        def total(w):
            return np.bincount(g, weights=w.ravel(), minlength=size).reshape(R, self.G)

        n_g = np.bincount(g, minlength=size).reshape(R, self.G).astype(float)
        s0, s1 = total(u[..., 0]), total(u[..., 1])
        t0 = total(u[..., 0] * u[..., 0])
        t1 = total(u[..., 0] * u[..., 1])
        t2 = total(u[..., 1] * u[..., 1])
        N = obs.sum(axis=(1, 2)).astype(float)
        if np.any(N <= self.p):
            raise AnalysisError(f"too few observations for {self.p} fixed effects")
        S = np.stack([s0, s1], axis=-1)                                # (R, G, 2)
        return dict(n=n_g, s0=s0, s1=s1,
                    t0=t0, t1=t1, t2=t2, yy=(y0 * y0).sum(axis=(1, 2)),
                    Xty=np.einsum("rgi,gia->ra", S, self.P), N=N,
                    Cn=np.einsum("rg,gab->rab", n_g, self.C))

    @staticmethod
    def _take(st: dict, rows) -> dict:
        return {k: v[rows] for k, v in st.items()}

    # ------------------------------------------------------------------ criterion
    def _factor(self, theta: np.ndarray):
        """(l0, l1, l2) of Lambda = [[l0, 0], [l1, l2]], each (R, P, 1)."""
        l0 = theta[..., 0:1]
        if self.q == 1:
            z = np.zeros_like(l0)
            return l0, z, z
        return l0, theta[..., 1:2], theta[..., 2:3]

    def parts(self, theta: np.ndarray, st: dict, j: int | None = None) -> dict:
        """Pieces of the REML criterion for thetas (R, P, n_theta) of replicates *st* (R).

        Returns a dict of (R, P) arrays: ``logdetM`` (sum n_g log|M_g|), ``logdetA``
        (log|X'WX|), ``rWr``, ``ajj`` ([(X'WX)^-1]_jj, with *j*) and ``beta`` (R, P, p).
        """
        l0, l1, l2 = self._factor(theta)                               # (R, P, 1)
        f0, f1, f2 = self.F                                            # (G,)
        # M = I + Lambda' Z'Z Lambda (for the intercept-only model l1 = l2 = 0)
        m00 = 1.0 + l0 * l0 * f0 + 2.0 * l0 * l1 * f1 + l1 * l1 * f2   # (R, P, G)
        m01 = l2 * (l0 * f1 + l1 * f2)
        m11 = 1.0 + l2 * l2 * f2
        det = m00 * m11 - m01 * m01
        if np.any(det <= 0):
            raise AnalysisError("non-positive definite random-effects block")
        i00, i01, i11 = m11 / det, -m01 / det, m00 / det
        n = st["n"][:, None, :]                                        # (R, 1, G)
        logdetM = (np.log(det) * n).sum(axis=-1)
        # K = Lambda' Z'Z (2 x 2); X_g = Z_g [I, arm indicators], so X'WX and X'Wy need only
        # the 2 x 2 Q_g = n_g K' M^-1 K and the 2-vector K' M^-1 Lambda' Z'y per pattern
        k00, k01 = l0 * f0 + l1 * f1, l0 * f1 + l1 * f2
        k10, k11 = l2 * f1, l2 * f2
        mk00, mk01 = i00 * k00 + i01 * k10, i00 * k01 + i01 * k11
        mk10, mk11 = i01 * k00 + i11 * k10, i01 * k01 + i11 * k11
        s0, s1 = st["s0"][:, None, :], st["s1"][:, None, :]
        w0, w1 = l0 * s0 + l1 * s1, l2 * s1
        shape = l0.shape[:2] + (self.n_arms, self.k)

        def by_arm(x):                                                 # (R, P, n_arms)
            return x.reshape(shape).sum(axis=-1)

        q00 = by_arm(n * (k00 * mk00 + k10 * mk10))
        q01 = by_arm(n * (k00 * mk01 + k10 * mk11))
        q11 = by_arm(n * (k01 * mk01 + k11 * mk11))
        v0 = by_arm(mk00 * w0 + mk10 * w1)
        v1 = by_arm(mk01 * w0 + mk11 * w1)
        Q = np.stack([np.stack([q00, q01], -1), np.stack([q01, q11], -1)], -2)  # (R, P, a, 2, 2)
        v = np.stack([v0, v1], -1)                                     # (R, P, a, 2)
        S = np.zeros(l0.shape[:2] + (self.p, self.p))
        S[..., :2, :2] = Q.sum(axis=2)
        c = np.broadcast_to(st["Xty"][:, None, :], S.shape[:-1]).copy()
        c[..., :2] -= v.sum(axis=2)
        for a, b in self.blocks.items():
            S[..., b:b + 2, b:b + 2] = Q[:, :, a]
            S[..., :2, b:b + 2] = Q[:, :, a]
            S[..., b:b + 2, :2] = Q[:, :, a]
            c[..., b:b + 2] -= v[:, :, a]
        A = st["Cn"][:, None] - S                                      # (R, P, p, p)
        t0, t1, t2 = st["t0"][:, None, :], st["t1"][:, None, :], st["t2"][:, None, :]
        u00 = l0 * l0 * t0 + 2.0 * l0 * l1 * t1 + l1 * l1 * t2
        u01 = l2 * (l0 * t1 + l1 * t2)
        u11 = l2 * l2 * t2
        yWy = st["yy"][:, None] - (i00 * u00 + 2.0 * i01 * u01 + i11 * u11).sum(axis=-1)
        rhs = c[..., None]
        if j is not None:
            ej = np.zeros(c.shape + (1,))
            ej[..., j, 0] = 1.0
            rhs = np.concatenate([rhs, ej], axis=-1)
        sol = np.linalg.solve(A, rhs)
        beta = sol[..., 0]
        sign, logdetA = np.linalg.slogdet(A)
        if np.any(sign <= 0):
            raise AnalysisError("rank-deficient fixed-effects design (an arm without data?)")
        out = dict(logdetM=logdetM, logdetA=logdetA, rWr=yWy - (c * beta).sum(axis=-1),
                   beta=beta)
        if j is not None:
            out["ajj"] = sol[..., j, 1]
        return out

    def deviance(self, theta: np.ndarray, st: dict) -> np.ndarray:
        """Profiled REML deviance, (R, P), for thetas (R, P, n_theta)."""
        pt = self.parts(theta, st)
        nu = (st["N"] - self.p)[:, None]
        rWr = pt["rWr"]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = pt["logdetM"] + pt["logdetA"] + nu * (1.0 + _LOG2PI + np.log(rWr / nu))
        return np.where(rWr > 0, out, np.inf)

    # ------------------------------------------------------------------ finite differences
    def _steps(self, theta: np.ndarray, rel: float = 1e-4) -> np.ndarray:
        """Difference steps: *rel* relative, at least *rel* x 0.05 (theta is SD / residual SD).

        The optimiser's gradient uses 1e-4; the Satterthwaite Hessian 1e-3 (central second
        differences lose about eps / h^2 of the deviance's precision, ~1e-13 x 1e3).
        """
        return rel * np.maximum(np.abs(theta), 0.05)

    def _grad_hess(self, f: np.ndarray, h: np.ndarray):
        """Central-difference gradient (R, d) and Hessian (R, d, d) from stencil values f."""
        d = h.shape[-1]
        f0 = f[:, 0]
        g = np.empty(h.shape)
        H = np.empty(h.shape + (d,))
        for i in range(d):
            fp, fm = f[:, 1 + 2 * i], f[:, 2 + 2 * i]
            g[:, i] = (fp - fm) / (2 * h[:, i])
            H[:, i, i] = (fp - 2 * f0 + fm) / (h[:, i] * h[:, i])
        idx = 1 + 2 * d
        for i in range(d):
            for k in range(i + 1, d):
                fpp, fpm, fmp, fmm = (f[:, idx + r] for r in range(4))
                H[:, i, k] = H[:, k, i] = (fpp - fpm - fmp + fmm) / (4 * h[:, i] * h[:, k])
                idx += 4
        return g, H

    # ------------------------------------------------------------------ fit
    def fit(self, y: np.ndarray, arm: np.ndarray, theta0=None, *, j: int,
            satterthwaite: bool = True, max_iter: int = 50, gtol: float = 1e-5,
            xtol: float = 1e-7) -> dict:
        """REML fits of replicates *y* (R, participants, visits); test of fixed effect *j*.

        Returns a dict of (R,) arrays: ``estimate``, ``se``, ``df`` (Satterthwaite, or inf
        with ``satterthwaite=False``), ``converged``, ``singular``, ``n_iter`` and ``theta``
        (R, n_theta).
        """
        st = self.statistics(y, arm)
        R, d = st["n"].shape[0], self.n_theta
        lower = self.lower
        start = ([1.0, 0.0, 1.0][:d] if theta0 is None
                 else np.asarray(theta0, dtype=float).reshape(d))
        theta = np.tile(np.maximum(start, lower), (R, 1))
        converged = np.zeros(R, dtype=bool)
        active = np.ones(R, dtype=bool)
        n_iter = np.zeros(R, dtype=int)
        alphas = np.array([1.0, 0.5, 0.25, 0.1, 0.03, 0.01])
        betas = np.array([0.1, 1e-2, 1e-3, 1e-4, 1e-5])
        for _ in range(max_iter):
            rows = np.flatnonzero(active)
            if rows.size == 0:
                break
            sub, th = self._take(st, rows), theta[rows]
            n_iter[rows] += 1
            h = self._steps(th)
            f = self.deviance(th[:, None, :] + self.offsets[None] * h[:, None, :], sub)
            bad = ~np.all(np.isfinite(f), axis=1)
            g, H = self._grad_hess(np.where(np.isfinite(f), f, 0.0), h)
            free = ~((th <= lower + 1e-12) & (g > 0))
            gf = np.where(free, g, 0.0)
            gmax = np.abs(gf).max(axis=1)
            done = (gmax < gtol) & ~bad
            # Newton step on the free parameters (Hessian shifted when not positive definite)
            eye = np.eye(d)
            mask = free[:, :, None] & free[:, None, :]
            Hf = np.where(mask, H, eye)
            Hf = np.where(np.isfinite(Hf), Hf, eye)
            ev = np.linalg.eigvalsh(Hf)
            scale = np.maximum(1.0, np.abs(ev).max(axis=1))
            shift = np.where(ev.min(axis=1) <= 1e-8 * scale, np.abs(ev.min(axis=1)) + 1e-6 * scale, 0.0)
            step = -np.linalg.solve(Hf + shift[:, None, None] * eye, gf[..., None])[..., 0]
            # a diagonal element at its bound where the criterion curves down: the deviance
            # is even in it, so the gradient there is zero and Newton cannot leave this saddle;
            # step into the interior instead (the line search scales it)
            hdiag = np.diagonal(H, axis1=1, axis2=2)
            escape = (th <= lower + 1e-12) & (hdiag < 0) & np.isfinite(lower)
            step = np.where(escape, 0.1, step)
            done &= ~escape.any(axis=1)
            # not a descent direction (indefinite or poor Hessian): use the negative gradient
            descent = (step * gf).sum(axis=1) < 0
            gnorm = np.maximum(np.linalg.norm(gf, axis=1, keepdims=True), 1e-300)
            sd = -gf / gnorm * np.maximum(np.abs(th).max(axis=1, keepdims=True), 0.1)
            step = np.where(descent[:, None] | escape.any(axis=1, keepdims=True), step, sd)
            # candidates: the Newton (or escape) step scaled, and short steepest-descent steps
            cand = np.concatenate([th[:, None, :] + alphas[None, :, None] * step[:, None, :],
                                   th[:, None, :] + betas[None, :, None] * sd[:, None, :]], axis=1)
            cand = np.maximum(cand, lower)
            fc = self.deviance(cand, sub)
            better = fc < f[:, :1]
            any_better = better.any(axis=1)
            first = better.argmax(axis=1)
            new = cand[np.arange(rows.size), first]
            moved = np.abs(new - th).max(axis=1)
            upd = ~done & ~bad & any_better
            theta[rows[upd]] = new[upd]
            stalled = ~done & ~bad & ~any_better
            converged[rows] = done | (upd & (moved < xtol)) | (stalled & (gmax < 1e3 * gtol))
            active[rows] = ~(done | bad | stalled | (upd & (moved < xtol)))
        pt = self.parts(theta[:, None, :], st, j=j)
        nu = st["N"] - self.p
        sigma2 = pt["rWr"][:, 0] / nu
        est = pt["beta"][:, 0, j]
        ajj = pt["ajj"][:, 0]
        se = np.sqrt(sigma2 * ajj)
        diag = theta[:, [0, 2]] if self.q == 2 else theta[:, [0]]
        out = dict(estimate=est, se=se, converged=converged,
                   singular=diag.min(axis=1) < SINGULAR_TOL, n_iter=n_iter, theta=theta)
        out["df"] = (self.satterthwaite(theta, st, np.sqrt(sigma2), j) if satterthwaite
                     else np.full(R, np.inf))
        return out

    # ------------------------------------------------------------------ Satterthwaite
    def satterthwaite(self, theta: np.ndarray, st: dict, sigma: np.ndarray, j: int) -> np.ndarray:
        """lmerTest's Satterthwaite df of fixed effect *j* at the fits (theta, sigma)."""
        d = theta.shape[1]
        nu = (st["N"] - self.p)[:, None]
        h = self._steps(theta, 1e-3)
        pt = self.parts(theta[:, None, :] + self.offsets[None] * h[:, None, :], st, j=j)
        s = sigma[:, None]
        full = nu * np.log(s * s) + pt["logdetM"] + pt["logdetA"] + pt["rWr"] / (s * s)
        _, H_tt = self._grad_hess(full, h)
        g_rwr, _ = self._grad_hess(pt["rWr"], h)
        g_a, _ = self._grad_hess(pt["ajj"], h)
        s1, rwr0, a0 = sigma, pt["rWr"][:, 0], pt["ajj"][:, 0]
        H = np.empty((theta.shape[0], d + 1, d + 1))
        H[:, :d, :d] = H_tt
        H[:, :d, d] = H[:, d, :d] = -2.0 * g_rwr / s1[:, None] ** 3
        H[:, d, d] = -2.0 * nu[:, 0] / s1**2 + 6.0 * rwr0 / s1**4
        var = s1 * s1 * a0
        grad = np.concatenate([(s1 * s1)[:, None] * g_a, (2.0 * s1 * a0)[:, None]], axis=1)
        with np.errstate(all="ignore"):
            try:
                cov = 2.0 * np.linalg.inv(H)
            except np.linalg.LinAlgError:
                cov = np.stack([2.0 * np.linalg.pinv(x) for x in H])
            denom = np.einsum("ri,rij,rj->r", grad, cov, grad)
            return np.where(denom > 0, 2.0 * var * var / denom, np.nan)
