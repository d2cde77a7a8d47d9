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
tiny ``Q x Q`` blocks are vectorised over participants, looping only over ``Q``. Arrays are
stored component-first (``ZZ[a, b, i]``, shape ``(Q, Q, N)``) so that every operation is a
contiguous vector operation of length ``N`` or a small BLAS product.
"""

from __future__ import annotations

import numpy as np

LOG2PI = float(np.log(2.0 * np.pi))


def batched_cholesky(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of SPD matrices stored component-first, ``A`` ``(Q, Q, N)``."""
    q = A.shape[0]
    L = np.zeros_like(A)
    for j in range(q):
        s = A[j, j] - sum(L[j, k] * L[j, k] for k in range(j)) if j else A[j, j]
        d = np.sqrt(s)
        L[j, j] = d
        for i in range(j + 1, q):
            v = A[i, j] - sum(L[i, k] * L[j, k] for k in range(j)) if j else A[i, j]
            L[i, j] = v / d
    return L


def batched_forward(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L_i C_i = B_i``; ``L`` ``(Q, Q, N)`` lower triangular, ``B`` ``(Q, c, N)``."""
    q = L.shape[0]
    C = np.empty_like(B)
    for j in range(q):
        r = B[j].copy()
        for k in range(j):
            r -= L[j, k] * C[k]
        C[j] = r / L[j, j]
    return C


def batched_backward(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L_i' C_i = B_i``; ``L`` ``(Q, Q, N)`` lower triangular, ``B`` ``(Q, c, N)``."""
    q = L.shape[0]
    C = np.empty_like(B)
    for j in range(q - 1, -1, -1):
        r = B[j].copy()
        for k in range(j + 1, q):
            r -= L[k, j] * C[k]
        C[j] = r / L[j, j]
    return C


class Deviance:
    """lme4's profiled deviance from the pieces of a penalised least-squares solution.

    Subclasses provide ``n``, ``p`` and ``solve(theta)`` returning ``ldL2`` (log|L|^2),
    ``ldRX2`` (log|R_X|^2) and ``r2`` (penalised residual sum of squares).
    """

    def _dev(self, st, reml):
        n, p = self.n, self.p
        if reml:
            nr = n - p
            return st["ldL2"] + st["ldRX2"] + nr * (1.0 + LOG2PI + np.log(st["r2"] / nr))
        return st["ldL2"] + n * (1.0 + LOG2PI + np.log(st["r2"] / n))

    def deviance(self, theta, reml=True, st=None):
        """Profiled deviance (-2 log-likelihood, REML criterion when ``reml``)."""
        return self._dev(self.solve(theta) if st is None else st, reml)

    def deviance_varpar(self, varpar, reml=True):
        """Deviance at given ``(theta, sigma)`` (not profiled over sigma), as lmerTest."""
        theta, sigma = varpar[:-1], varpar[-1]
        st = self.solve(theta)
        s2 = sigma ** 2
        dev = st["ldL2"] + st["r2"] / s2 + self.n * np.log(2 * np.pi * s2)
        if reml:
            dev += st["ldRX2"] - self.p * np.log(2 * np.pi * s2)
        return dev


class Problem(Deviance):
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
        # component-first layout: (Q, Q, N) and (Q, p + 1, N)
        self.ZZ = np.ascontiguousarray(
            np.add.reduceat(Zs[:, :, None] * Zs[:, None, :], starts, axis=0).transpose(1, 2, 0))
        self.ZXy = np.ascontiguousarray(
            np.add.reduceat(Zs[:, :, None] * Xys[:, None, :], starts, axis=0).transpose(1, 2, 0))
        self.ZX = np.ascontiguousarray(self.ZXy[:, : self.p])
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
        # RMS of the random-effects column each theta entry multiplies (row i of Lambda)
        rms = np.sqrt(np.array([self.ZZ[j, j].sum() for j in range(self.Q)]) / self.n)
        rms = np.where(rms > 0, rms, 1.0)
        self.theta_scale = np.array([rms[i] for (i, j) in self.tri]
                                    + ([1.0] if self.nested else []))
        # dmap @ E.ravel() = [sum of E[r, s] over the entries (r, s) parameter k sets]_k
        self.dmap = np.zeros((self.ntheta, self.Q * self.Q))
        for k in range(self.ntheta):
            for (r, s) in self._dlam_entries(k):
                self.dmap[k, r * self.Q + s] += 1.0

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
        Q, N, p = self.Q, self.N, self.p
        c = p + 1
        Lam = self.lam(theta)
        LtZZ = (Lam.T @ self.ZZ.reshape(Q, -1)).reshape(Q, Q, N)          # Lambda' Z_i'Z_i
        # A_i = Lambda' (Lambda' Z_i'Z_i)' (Z_i'Z_i symmetric)
        A = (Lam.T @ LtZZ.transpose(1, 0, 2).reshape(Q, -1)).reshape(Q, Q, N)
        A[np.arange(Q), np.arange(Q)] += 1.0
        L = batched_cholesky(A)
        B = (Lam.T @ self.ZXy.reshape(Q, -1)).reshape(Q, c, N)           # Lambda'[Z'X, Z'y]
        C = batched_forward(L, B)
        S = self.XyXy.copy()
        for j in range(Q):
            S -= C[j] @ C[j].T
        R = np.linalg.cholesky(S)
        Rx = R[:p, :p]
        r2 = R[p, p] ** 2
        beta = np.linalg.solve(Rx.T, R[p, :p])                            # Sxx^{-1} Sxy
        ldL2 = 2.0 * sum(np.log(L[j, j]).sum() for j in range(Q))
        ldRX2 = 2.0 * np.log(np.diag(Rx)).sum()
        return dict(Lam=Lam, LtZZ=LtZZ, L=L, C=C, Rx=Rx, r2=r2, beta=beta,
                    ldL2=ldL2, ldRX2=ldRX2)

    def _u(self, st):
        C = st["C"]
        cu = C[:, self.p, :] - np.tensordot(st["beta"], C[:, : self.p, :], axes=(0, 1))
        return batched_backward(st["L"], cu[:, None, :])[:, 0, :]          # (Q, N)

    def conditional_modes(self, st):
        """Spherical random effects ``u_i`` as an ``(N, Q)`` array at the PLS solution."""
        return self._u(st).T

    def unscaled_cov_beta(self, theta=None, st=None):
        st = self.solve(theta) if st is None else st
        Rinv = np.linalg.inv(st["Rx"])
        return Rinv.T @ Rinv

    def grad_parts(self, theta, reml=True):
        """Gradients of ``log|L|^2``, ``log|R_X|^2`` (zeros unless ``reml``) and ``r^2``.

        Uses ``d log|A_i| = tr(A_i^{-1} dA_i)``, the envelope theorem for the penalised RSS
        ``d r^2 = -2 sum_i (Z_i' res_i)' dLambda u_i``, and for REML
        ``d log|R_X'R_X| = tr(P dS_xx)``, ``P = S_xx^{-1}``, with
        ``dS_xx = -sum_i [dW_i'G_i + G_i'dW_i - G_i' dA_i G_i]``, ``W_i = Lambda'Z_i'X_i``,
        ``G_i = A_i^{-1} W_i``. Returns ``(state, d_ldL2, d_ldRX2, d_r2)``.
        """
        st = self.solve(theta)
        p, Q = self.p, self.Q
        L, C, Lam, beta = st["L"], st["C"], st["Lam"], st["beta"]
        # one backward solve: A_i^{-1} [Lambda' ZZ_i, W_i (so G_i), Lambda' Z_i'y_i]
        Bk = batched_backward(L, np.concatenate([batched_forward(L, st["LtZZ"]), C], axis=1))
        H = Bk[:, :Q, :].sum(axis=2)                 # H[s, r] = sum_i (A_i^{-1} Lambda' ZZ_i)[s, r]
        G = Bk[:, Q:Q + p, :]                                             # (Q, p, N)
        u = Bk[:, Q + p, :] - np.tensordot(beta, G, axes=(0, 1))          # (Q, N), as _u
        b = Lam @ u
        Zres = (self.ZXy[:, p, :] - np.tensordot(beta, self.ZX, axes=(0, 1))
                - np.einsum("qrn,rn->qn", self.ZZ, b))
        E_L = 2.0 * H.T                                                   # entry (r, s)
        E_r = -2.0 * (Zres @ u.T)                                         # sum_i Zres_i u_i'
        if reml:
            P = self.unscaled_cov_beta(st=st)
            GP = np.matmul(P, G)                                          # (G_i P)[s] (P sym)
            M1 = GP.reshape(Q, -1) @ self.ZX.reshape(Q, -1).T             # sum G_i P ZX_i'
            V = np.einsum("spn,tpn->stn", GP, G)                          # G_i P G_i'
            M2 = np.einsum("stn,trn->sr", V, st["LtZZ"])
            E_X = -2.0 * (M1 - M2).T
        else:
            E_X = np.zeros_like(E_L)
        return (st, *(self.dmap @ E.ravel() for E in (E_L, E_X, E_r)))

    def dsxx_dtheta(self, theta=None, st=None):
        """Analytic derivatives ``dS_xx / dtheta_k`` (list of ``p x p``) of ``S_xx = R_X R_X'``.

        ``S_xx = X'X - sum_i W_i' A_i^{-1} W_i`` with ``W_i = Lambda' Z_i'X_i`` and
        ``A_i = Lambda' Z_i'Z_i Lambda + I``, so with ``G_i = A_i^{-1} W_i``
        ``dS_xx = -sum_i [dW_i'G_i + G_i'dW_i - G_i' dA_i G_i]``. For ``dLambda = E_rs``,
        ``dW_i = E_sr Z_i'X_i`` and ``G_i' dA_i G_i = g_s v_r' + v_r g_s'`` with ``g_s`` row
        ``s`` of ``G_i`` and ``v_r = G_i' (Lambda' Z_i'Z_i)[:, r]``; the sums over participants
        are ``p x N`` by ``N x p`` products. The covariance of ``beta`` is
        ``sigma^2 S_xx^{-1}``, so ``d(S_xx^{-1}) = -S_xx^{-1} dS_xx S_xx^{-1}``.
        """
        st = self.solve(theta) if st is None else st
        p = self.p
        G = batched_backward(st["L"], np.ascontiguousarray(st["C"][:, :p, :]))   # (Q, p, N)
        V = np.einsum("trn,tpn->rpn", st["LtZZ"], G)                            # v_r: (p, N)
        out = []
        for k in range(self.ntheta):
            D = np.zeros((p, p))
            for (r, s) in self._dlam_entries(k):
                M = self.ZX[r] @ G[s].T - G[s] @ V[r].T
                D -= M + M.T
            out.append(D)
        return out

    def value_and_grad(self, theta, reml=True):
        """Profiled deviance and its analytic gradient with respect to theta."""
        st, gL, gX, gr = self.grad_parts(theta, reml)
        m = (self.n - self.p) if reml else self.n
        return self._dev(st, reml), gL + gX + m / st["r2"] * gr

    def varpar_gradient(self, varpar, reml=True):
        """Analytic gradient of :meth:`deviance_varpar` in ``(theta, sigma)``."""
        theta, sigma = np.asarray(varpar[:-1], float), float(varpar[-1])
        st, gL, gX, gr = self.grad_parts(theta, reml)
        s2 = sigma ** 2
        m = (self.n - self.p) if reml else self.n
        g_sigma = -2.0 * st["r2"] / sigma ** 3 + 2.0 * m / sigma
        return np.r_[gL + gX + gr / s2, g_sigma]

    def gradient(self, theta, reml=True):
        """Analytic gradient of the profiled deviance (see :meth:`value_and_grad`)."""
        return self.value_and_grad(theta, reml)[1]
