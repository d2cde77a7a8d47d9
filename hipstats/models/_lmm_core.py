"""Private numerical core of :mod:`hipstats.models.lmm`.

Profiled REML/ML deviance of a linear mixed model whose random effects are all grouped by one
factor (the participant), following lme4 (Bates, Maechler, Bolker & Walker 2015, J Stat Softw
67(1), sections 3.4-3.6), evaluated from per-participant sufficient statistics.

Model: ``y = X beta + Z b + e``, ``b ~ N(0, sigma^2 Lambda Lambda')``, ``e ~ N(0, sigma^2 I)``.
Every participant ``i`` has the same ``Q`` random-effect slots (padded with zero columns where
a participant has no rows for a slot, e.g. a side never measured), so ``Lambda`` is one small
``Q x Q`` matrix shared by all participants and the penalised system is block diagonal:

``A_i = Lambda' Z_i'Z_i Lambda + I``, ``L_i L_i' = A_i``,
``C_i = L_i^{-1} Lambda' [Z_i'X_i, Z_i'y_i]``,
``S = [X y]'[X y] - sum_i C_i'C_i = R R'`` (lower Cholesky),
``R_X = R[:p, :p]``, ``r^2 = R[p, p]^2`` (penalised residual sum of squares),

``d_ML(theta) = log|L|^2 + n (1 + log(2 pi r^2 / n))``,
``d_REML(theta) = log|L|^2 + log|R_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))``.

One evaluation costs ``O(N Q^2 p)``: the Cholesky factors and triangular solves of the many
tiny ``Q x Q`` blocks are vectorised over participants, looping only over ``Q``.
"""

from __future__ import annotations

import numpy as np

LOG2PI = float(np.log(2.0 * np.pi))


def batched_cholesky(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack ``(N, Q, Q)`` of SPD matrices, vectorised over N."""
    n, q, _ = A.shape
    L = np.zeros_like(A)
    for j in range(q):
        s = A[:, j, j] - np.einsum("nk,nk->n", L[:, j, :j], L[:, j, :j])
        d = np.sqrt(s)
        L[:, j, j] = d
        if j + 1 < q:
            L[:, j + 1:, j] = (
                A[:, j + 1:, j] - np.einsum("nik,nk->ni", L[:, j + 1:, :j], L[:, j, :j])
            ) / d[:, None]
    return L


def batched_forward(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L_i C_i = B_i`` for lower-triangular ``L`` ``(N,Q,Q)``, ``B`` ``(N,Q,c)``."""
    q = L.shape[1]
    C = np.empty_like(B)
    for j in range(q):
        r = B[:, j, :] - np.einsum("nk,nkc->nc", L[:, j, :j], C[:, :j, :])
        C[:, j, :] = r / L[:, j, j][:, None]
    return C


def batched_backward(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L_i' C_i = B_i`` for lower-triangular ``L`` ``(N,Q,Q)``, ``B`` ``(N,Q,c)``."""
    q = L.shape[1]
    C = np.empty_like(B)
    for j in range(q - 1, -1, -1):
        r = B[:, j, :] - np.einsum("nk,nkc->nc", L[:, j + 1:, j], C[:, j + 1:, :])
        C[:, j, :] = r / L[:, j, j][:, None]
    return C


class Problem:
    """Sufficient statistics of one model and its deviance, gradient and estimates.

    Parameters
    ----------
    X : (n, p) fixed-effects design.
    y : (n,) response.
    Z : (n, Q) random-effects design (``q`` correlated terms, then ``Q - q`` nested
        intercept slots that share one variance).
    codes : (n,) integer participant codes ``0..N-1``.
    q : number of correlated random-effect terms (columns of the ``re_formula`` design).
    """

    def __init__(self, X, y, Z, codes, q):
        X = np.asarray(X, float)
        y = np.asarray(y, float)
        Z = np.asarray(Z, float)
        self.n, self.p = X.shape
        self.Q = Z.shape[1]
        self.q = int(q)
        self.nested = self.Q > self.q
        order = np.argsort(codes, kind="stable")
        cs = np.asarray(codes)[order]
        starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
        self.N = len(starts)
        Xy = np.column_stack([X, y])
        Zs = Z[order]
        Xys = Xy[order]
        self.ZZ = np.add.reduceat(Zs[:, :, None] * Zs[:, None, :], starts, axis=0)
        self.ZXy = np.add.reduceat(Zs[:, :, None] * Xys[:, None, :], starts, axis=0)
        self.XyXy = Xy.T @ Xy
        # theta layout: lower triangle of the q x q factor, column-major (lme4's order),
        # then one relative SD shared by the nested slots.
        self.tri = [(i, j) for j in range(self.q) for i in range(j, self.q)]
        self.ntheta = len(self.tri) + (1 if self.nested else 0)
        lower = [0.0 if i == j else -np.inf for (i, j) in self.tri]
        if self.nested:
            lower.append(0.0)
        self.lower = np.array(lower)
        self.theta0 = np.array([1.0 if i == j else 0.0 for (i, j) in self.tri]
                               + ([1.0] if self.nested else []))

    # ------------------------------------------------------------------ building blocks
    def lam(self, theta):
        theta = np.asarray(theta, float)
        Lam = np.zeros((self.Q, self.Q))
        for k, (i, j) in enumerate(self.tri):
            Lam[i, j] = theta[k]
        if self.nested:
            idx = np.arange(self.q, self.Q)
            Lam[idx, idx] = theta[-1]
        return Lam

    def _dlam_entries(self, k):
        """Entries (r, s) of Lambda that parameter k sets (d Lambda / d theta_k = sum E_rs)."""
        if k < len(self.tri):
            return [self.tri[k]]
        return [(j, j) for j in range(self.q, self.Q)]

    def solve(self, theta):
        """Penalised least squares at ``theta``: everything the deviance and estimates need."""
        Lam = self.lam(theta)
        LtZZ = np.matmul(Lam.T, self.ZZ)                      # Lambda' Z_i'Z_i
        A = np.matmul(LtZZ, Lam)
        A[:, np.arange(self.Q), np.arange(self.Q)] += 1.0
        L = batched_cholesky(A)
        B = np.matmul(Lam.T, self.ZXy)                       # Lambda' [Z'X, Z'y]
        C = batched_forward(L, B)
        c = self.p + 1
        Cf = C.reshape(-1, c)
        S = self.XyXy - Cf.T @ Cf
        R = np.linalg.cholesky(S)
        Rx = R[: self.p, : self.p]
        r2 = R[self.p, self.p] ** 2
        # beta = Sxx^{-1} Sxy = Rx'^{-1} l
        beta = np.linalg.solve(Rx.T, R[self.p, : self.p])
        ldL2 = 2.0 * np.log(L[:, np.arange(self.Q), np.arange(self.Q)]).sum()
        ldRX2 = 2.0 * np.log(np.diag(Rx)).sum()
        return dict(Lam=Lam, LtZZ=LtZZ, L=L, C=C, Rx=Rx, r2=r2, beta=beta,
                    ldL2=ldL2, ldRX2=ldRX2)

    def deviance(self, theta, reml=True, st=None):
        """Profiled deviance (-2 log-likelihood, REML criterion when ``reml``)."""
        st = self.solve(theta) if st is None else st
        n, p = self.n, self.p
        if reml:
            nr = n - p
            return st["ldL2"] + st["ldRX2"] + nr * (1.0 + LOG2PI + np.log(st["r2"] / nr))
        return st["ldL2"] + n * (1.0 + LOG2PI + np.log(st["r2"] / n))

    def deviance_varpar(self, varpar, reml=True):
        """Deviance at given ``(theta, sigma)`` (not profiled over sigma), as lmerTest."""
        theta, sigma = varpar[:-1], varpar[-1]
        st = self.solve(theta)
        s2 = sigma ** 2
        dev = st["ldL2"] + st["r2"] / s2 + self.n * np.log(2 * np.pi * s2)
        if reml:
            dev += st["ldRX2"] - self.p * np.log(2 * np.pi * s2)
        return dev

    def conditional_modes(self, st):
        """Spherical random effects ``u_i`` (N, Q) at the PLS solution."""
        C = st["C"]
        cu = C[:, :, self.p] - C[:, :, : self.p] @ st["beta"]
        return batched_backward(st["L"], cu[:, :, None])[:, :, 0]

    def unscaled_cov_beta(self, theta=None, st=None):
        st = self.solve(theta) if st is None else st
        Rinv = np.linalg.inv(st["Rx"])
        return Rinv.T @ Rinv

    def gradient(self, theta, reml=True):
        """Analytic gradient of the profiled deviance with respect to theta.

        Uses ``d log|A_i| = tr(A_i^{-1} dA_i)``, the envelope theorem for the penalised RSS
        ``d r^2 = -2 sum_i (Z_i' res_i)' dLambda u_i``, and for REML
        ``d log|R_X'R_X| = tr(P dS_xx)``, ``P = S_xx^{-1}``.
        """
        st = self.solve(theta)
        p, Q = self.p, self.Q
        L, C, Lam = st["L"], st["C"], st["Lam"]
        # H = sum_i A_i^{-1} Lambda' ZZ_i
        AinvLtZZ = batched_backward(L, batched_forward(L, st["LtZZ"]))
        H = AinvLtZZ.sum(axis=0)
        u = self.conditional_modes(st)                              # (N, Q)
        b = u @ Lam.T                                               # Lambda u_i
        Zres = (self.ZXy[:, :, p] - self.ZXy[:, :, :p] @ st["beta"]
                - np.einsum("nqr,nr->nq", self.ZZ, b))
        K = Zres.T @ u                                              # sum_i Zres_i u_i'
        dldL2 = 2.0 * H.T                                           # entry (r,s) -> 2 H[s,r]
        dr2 = -2.0 * K
        n = self.n
        if reml:
            G = batched_backward(L, C[:, :, :p])                    # A_i^{-1} W_i
            P = self.unscaled_cov_beta(st=st)
            GP = G @ P
            M1 = np.einsum("nsp,nrp->sr", GP, self.ZXy[:, :, :p])  # sum G_i P ZX_i'
            V = np.matmul(GP, np.transpose(G, (0, 2, 1)))         # G_i P G_i'
            M2 = np.einsum("nst,ntr->sr", V, st["LtZZ"])
            dldRX2 = (-2.0 * (M1 - M2)).T                           # entry (r,s) -> [s,r]
            E = dldL2 + dldRX2 + (n - p) / st["r2"] * dr2
        else:
            E = dldL2 + n / st["r2"] * dr2
        g = np.zeros(self.ntheta)
        for k in range(self.ntheta):
            g[k] = sum(E[r, s] for (r, s) in self._dlam_entries(k))
        return g
