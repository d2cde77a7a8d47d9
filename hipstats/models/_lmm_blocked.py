"""Private numerical core of :mod:`hipstats.models.lmm` for several random-effects terms.

lme4's profiled deviance (Bates, Maechler, Bolker & Walker 2015, J Stat Softw 67(1),
sections 3.4-3.6) evaluated with the blocked Cholesky factorisation of MixedModels.jl
(Bates, Alday & Kokandakar 2025): the terms are ordered by decreasing number of levels (lme4's
order, so ``theta`` is lme4's ``getME(fit, "theta")``), and the first term, the one with most
levels, gives a block-diagonal leading block that is factorised as many tiny ``k x k``
Cholesky factors at once; everything else is the Schur complement of that block.

Model ``y = X beta + Z b + e``, ``b = Lambda u``, ``u ~ N(0, sigma^2 I)``. Columns of ``Z``
come term by term, level-major within a term (``k_t`` columns per level), ``Lambda`` is block
diagonal with ``I_{l_t} (x) T_t`` for term ``t`` (``T_t`` lower triangular, ``theta`` its lower
triangle column by column). With ``W = [Z_2 .. Z_T, X, y]`` and ``Z_1`` the first term:

``A_1 = Lambda_1' Z_1'Z_1 Lambda_1 + I`` (block diagonal, blocks ``T_1' Z_1i'Z_1i T_1 + I``),

``G = Lambda_1 A_1^{-1} Lambda_1'`` (block diagonal), ``B = Z_1' W``,

``S = Lambda_W' (W'W - B' G B) Lambda_W + diag(I, 0)``, ``Lambda_W = diag(Lambda_2.., I_{p+1})``

so that ``log|L|^2 = log|A_1| + log|S_rr|`` (``S_rr`` the random-effects block of ``S``) and the
Cholesky factor of the Schur complement of ``S_rr`` in ``S`` is ``[[R_X, 0], [r', r]]``:

``d_ML = log|L|^2 + n (1 + log(2 pi r^2 / n))``,
``d_REML = log|L|^2 + log|R_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))``.

``S`` is factorised densely (LAPACK Cholesky) when it is small (``m = sum_{t>1} l_t k_t + p + 1
<= DENSE_MAX``); otherwise ``S_rr`` is factorised sparsely by SuperLU
(``scipy.sparse.linalg.splu``, symmetric mode, no pivoting off the diagonal) and
``log|S_rr| = sum log|U_ii|`` -- exact, and fast for nested factors, where ``S_rr`` stays block
diagonal. The sufficient statistics ``Z_1'Z_1``, ``B`` and ``W'W`` are computed once, so an
evaluation costs nothing in ``n``.

The optimiser works on the deviance alone (as lme4's BOBYQA): gradients and the Hessian of
the convergence check are central differences.

References
----------
Bates D, Maechler M, Bolker B, Walker S (2015). Fitting linear mixed-effects models using
lme4. Journal of Statistical Software 67(1), 1-48. doi:10.18637/jss.v067.i01

Bates D, Alday PM, Kokandakar AH (2025). Mixed-model log-likelihood evaluation via a blocked
Cholesky factorization. arXiv:2505.11674.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from hipstats.models._lmm_core import Deviance, batched_backward, batched_cholesky, batched_forward

#: Largest Schur complement factorised densely; larger ones go to sparse LU.
DENSE_MAX = 3000


@dataclass
class TermData:
    """One random-effects term: grouping codes, its ``n x k`` model matrix and names."""

    group: str             # lme4 name of the grouping factor (``g`` or ``g1:g2``)
    names: list            # column names of the term's model matrix
    codes: np.ndarray      # (n,) level codes 0..l-1
    levels: list           # level labels
    Xt: np.ndarray         # (n, k)
    label: str = ""        # how the term was written

    @property
    def k(self):
        return self.Xt.shape[1]

    @property
    def nlev(self):
        return len(self.levels)


def lme4_order(nlevels):
    """lme4's ``mkReTrms`` term order: if levels are not already non-increasing,
    ``rev(order(nl))`` (ties end up in reverse order of writing)."""
    nl = list(nlevels)
    if not any(b > a for a, b in zip(nl, nl[1:])):
        return list(range(len(nl)))
    asc = sorted(range(len(nl)), key=lambda i: (nl[i], i))
    return asc[::-1]


def term_z(t: TermData) -> sp.csc_matrix:
    """Sparse ``n x (l k)`` random-effects matrix of a term (level-major columns)."""
    n, k = t.Xt.shape
    rows = np.repeat(np.arange(n), k)
    cols = (t.codes[:, None] * k + np.arange(k)[None, :]).ravel()
    return sp.csc_matrix((t.Xt.ravel(), (rows, cols)), shape=(n, t.nlev * k))


class BlockedProblem(Deviance):
    """Sufficient statistics and profiled deviance of a model with several terms.

    Parameters
    ----------
    X : (n, p) fixed-effects design; y : (n,) response.
    terms : list of :class:`TermData`, already in lme4's order (most levels first).
    """

    analytic = False

    def __init__(self, X, y, terms):
        X = np.asarray(X, float)
        y = np.asarray(y, float)
        self.n, self.p = X.shape
        self.terms = list(terms)
        self.N = self.terms[0].nlev
        t1 = self.terms[0]
        k1 = t1.k
        # first term: per-level blocks Z_1i'Z_1i, component-first (k, k, l)
        order = np.argsort(t1.codes, kind="stable")
        cs = t1.codes[order]
        starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
        Xs = t1.Xt[order]
        zz = np.zeros((t1.nlev, k1, k1))
        zz[cs[starts]] = np.add.reduceat(Xs[:, :, None] * Xs[:, None, :], starts, axis=0)
        self.ZZ1 = np.ascontiguousarray(zz.transpose(1, 2, 0))
        Xy = np.column_stack([X, y])
        Zr = [term_z(t) for t in self.terms[1:]]
        self.qr = sum(z.shape[1] for z in Zr)
        W = sp.hstack(Zr + [sp.csc_matrix(Xy)], format="csc")
        self.m = W.shape[1]
        Z1 = term_z(t1)
        self.B = (Z1.T @ W).tocsr()                      # (q1, m)
        WW = (W.T @ W)
        self.dense = self.m <= DENSE_MAX
        self.WW = WW.toarray() if self.dense else WW.tocsc()
        self._pairs(k1)
        self.XyXy = Xy.T @ Xy
        # theta layout: per term, lower triangle column-major
        self.tri = []
        for ti, t in enumerate(self.terms):
            self.tri += [(ti, i, j) for j in range(t.k) for i in range(j, t.k)]
        self.ntheta = len(self.tri)
        self.lower = np.array([0.0 if i == j else -np.inf for (_, i, j) in self.tri])
        self.theta0 = np.array([1.0 if i == j else 0.0 for (_, i, j) in self.tri])
        rms = []
        for t in self.terms:
            r = np.sqrt((t.Xt ** 2).sum(axis=0) / self.n)
            rms.append(np.where(r > 0, r, 1.0))
        self.theta_scale = np.array([rms[ti][i] for (ti, i, j) in self.tri])

    def _pairs(self, k1):
        """Precompute ``B'GB`` as a sparse linear map of the per-level blocks ``G_i``.

        ``(B'GB)[a, b] = sum_i sum_{r,s} G_i[r, s] B[(i,r), a] B[(i,s), b]``: every pair of
        nonzeros of ``B`` within one level contributes ``B B`` times one entry of ``vec(G)``.
        ``self._P`` maps ``vec(G)`` (``l1 k1 k1``) to the distinct ``(a, b)`` positions, so
        an evaluation is one sparse matrix-vector product.
        """
        B = self.B.tocoo()
        level = B.row // k1
        r = B.row % k1
        order = np.lexsort((B.col, level))
        level, r, col, val = level[order], r[order], B.col[order], B.data[order]
        counts = np.bincount(level, minlength=self.N)
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        npairs = counts.astype(np.int64) ** 2
        total = int(npairs.sum())
        lev_of = np.repeat(np.arange(self.N), npairs)
        w = np.arange(total) - np.repeat(np.cumsum(npairs) - npairs, npairs)
        cnt = counts[lev_of]
        e1 = starts[lev_of] + w // cnt
        e2 = starts[lev_of] + w % cnt
        key = col[e1].astype(np.int64) * self.m + col[e2]
        gidx = lev_of * k1 * k1 + r[e1] * k1 + r[e2]
        if self.dense:
            # rows of P are the entries of the dense m x m matrix (no search for distinct keys)
            self._P = sp.csr_matrix((val[e1] * val[e2], (key, gidx)),
                                    shape=(self.m * self.m, self.N * k1 * k1))
            self._pair_key = None
            return
        uniq, inv = np.unique(key, return_inverse=True)
        self._P = sp.csr_matrix((val[e1] * val[e2], (inv, gidx)),
                                shape=(len(uniq), self.N * k1 * k1))
        self._pair_key = uniq
        self._pair_rc = (uniq // self.m, uniq % self.m)

    # ------------------------------------------------------------------ building blocks
    def factors(self, theta):
        """The ``T_t`` (lower triangular ``k_t x k_t``) of each term at ``theta``."""
        Ts = [np.zeros((t.k, t.k)) for t in self.terms]
        for v, (ti, i, j) in zip(np.asarray(theta, float), self.tri):
            Ts[ti][i, j] = v
        return Ts

    def _lambda_template(self):
        """Sparsity pattern of ``Lambda_W`` and, per stored entry, its theta index (-1: 1)."""
        rows, cols, src_idx = [], [], []
        off = 0
        k0 = 0
        t_index = {}
        for n, (ti, i, j) in enumerate(self.tri):
            t_index[(ti, i, j)] = n
        for ti, t in enumerate(self.terms):
            if ti == 0:
                continue
            k = t.k
            base = off + np.arange(t.nlev) * k
            for j in range(k):
                for i in range(j, k):
                    rows.append(base + i)
                    cols.append(base + j)
                    src_idx.append(np.full(t.nlev, t_index[(ti, i, j)]))
            off += t.nlev * k
        del k0
        rows.append(off + np.arange(self.p + 1))
        cols.append(off + np.arange(self.p + 1))
        src_idx.append(np.full(self.p + 1, -1))
        rows, cols, src_idx = (np.concatenate(a) for a in (rows, cols, src_idx))
        M = sp.csr_matrix((np.arange(1, len(rows) + 1, dtype=float), (rows, cols)),
                          shape=(self.m, self.m))
        perm = M.data.astype(int) - 1                 # csr order -> entry
        self._lam_csr = M
        self._lam_src = src_idx[perm]
        self._lam_diag = bool(np.all(rows == cols))

    def lambda_rest(self, theta):
        """``Lambda_W``: a vector (diagonal case) or a CSR matrix."""
        if not hasattr(self, "_lam_csr"):
            self._lambda_template()
        vals = np.where(self._lam_src >= 0, np.asarray(theta, float)[self._lam_src], 1.0)
        if self._lam_diag:
            d = np.empty(self.m)
            d[self._lam_csr.indices] = vals
            return d
        M = self._lam_csr.copy()
        M.data = vals
        return M

    def solve(self, theta):
        """Penalised least squares at ``theta``: log-determinants, ``R_X``, ``r^2``, ``beta``."""
        p, qr = self.p, self.qr
        Ts = self.factors(theta)
        T1 = Ts[0]
        k1 = T1.shape[0]
        l1 = self.N
        # A_1 blocks and G = T1 A^{-1} T1' per level
        Q = k1
        LtZZ = (T1.T @ self.ZZ1.reshape(Q, -1)).reshape(Q, Q, l1)
        A = (T1.T @ LtZZ.transpose(1, 0, 2).reshape(Q, -1)).reshape(Q, Q, l1)
        A[np.arange(Q), np.arange(Q)] += 1.0
        L1 = batched_cholesky(A)
        ld1 = 2.0 * sum(np.log(L1[j, j]).sum() for j in range(Q))
        eye = np.broadcast_to(np.eye(Q)[:, :, None], (Q, Q, l1)).copy()
        Ainv = batched_backward(L1, batched_forward(L1, eye))             # (Q, Q, l1)
        G = np.einsum("ab,bcn,dc->nad", T1, Ainv, T1)                     # (l1, Q, Q)
        bgb = self._P @ G.ravel()
        LamW = self.lambda_rest(theta)
        if self.dense:
            S = self.WW - bgb.reshape(self.m, self.m)
            if qr:
                if isinstance(LamW, np.ndarray):
                    S *= LamW[:, None]
                    S *= LamW[None, :]
                else:
                    S = np.asarray(LamW.T @ np.asarray((LamW.T @ S.T).T))
            S[np.arange(qr), np.arange(qr)] += 1.0
            Lc, info = sla.lapack.dpotrf(S, lower=1, clean=1, overwrite_a=1)
            if info != 0:
                raise np.linalg.LinAlgError(f"Schur complement not positive definite ({info})")
            ldr = 2.0 * np.log(np.diag(Lc)[:qr]).sum()
            R = Lc[qr:, qr:]
            lu = None
        else:
            if isinstance(LamW, np.ndarray):
                LamW = sp.diags(LamW, format="csr")
            BGB = sp.csc_matrix((bgb, self._pair_rc), shape=(self.m, self.m))
            S = (LamW.T @ (self.WW - BGB) @ LamW).tocsc()
            S = S + sp.diags(np.r_[np.ones(qr), np.zeros(p + 1)], format="csc")
            Srr, Srx, Sxx = S[:qr, :qr].tocsc(), S[:qr, qr:].toarray(), S[qr:, qr:].toarray()
            lu = spla.splu(Srr, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                           options=dict(SymmetricMode=True))
            ldr = float(np.log(np.abs(lu.U.diagonal())).sum())
            Sc = Sxx - Srx.T @ lu.solve(Srx)
            R = sla.cholesky(0.5 * (Sc + Sc.T), lower=True, check_finite=False)
        Rx = R[:p, :p]
        r2 = R[p, p] ** 2
        beta = sla.solve_triangular(Rx.T, R[p, :p], lower=False, check_finite=False)
        ldRX2 = 2.0 * np.log(np.diag(Rx)).sum()
        return dict(Ts=Ts, Rx=Rx, r2=r2, beta=beta, ldL2=ld1 + ldr, ldRX2=ldRX2)

    def unscaled_cov_beta(self, theta=None, st=None):
        st = self.solve(theta) if st is None else st
        Rinv = sla.solve_triangular(st["Rx"], np.eye(self.p), lower=True)
        return Rinv.T @ Rinv

    # ------------------------------------------------------------------ derivatives
    def _h(self, theta):
        return 1e-4 * np.maximum(np.abs(theta), 0.05 / self.theta_scale)

    def value_and_grad(self, theta, reml=True):
        """Deviance and its central-difference gradient (one-sided at a bound)."""
        theta = np.asarray(theta, float)
        f0 = self.deviance(theta, reml)
        g = np.empty_like(theta)
        h = self._h(theta)
        for k in range(len(theta)):
            e = np.zeros_like(theta)
            e[k] = h[k]
            fp = self.deviance(theta + e, reml)
            if theta[k] - h[k] < self.lower[k]:
                g[k] = (fp - f0) / h[k]
            else:
                g[k] = (fp - self.deviance(theta - e, reml)) / (2 * h[k])
        return f0, g

    def gradient(self, theta, reml=True):
        return self.value_and_grad(theta, reml)[1]

    def hessian(self, theta, reml=True, fun=None):
        """Central-difference Hessian of ``fun`` (default the profiled deviance) at ``theta``
        (step ``1e-3 max(|x|, 0.05 / scale)``, two-sided also at a bound: the deviance is
        defined for negative diagonal entries of ``Lambda``, as numDeriv uses in lmerTest)."""
        f = fun or (lambda t: self.deviance(t, reml))
        x = np.asarray(theta, float)
        k = len(x)
        h = 1e-3 * np.maximum(np.abs(x), 0.05 / np.r_[self.theta_scale, np.ones(k - self.ntheta)])
        c = x
        f0 = f(c)
        H = np.empty((k, k))
        fp, fm = np.empty(k), np.empty(k)
        for i in range(k):
            e = np.zeros(k)
            e[i] = h[i]
            fp[i], fm[i] = f(c + e), f(c - e)
            H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
        for i in range(k):
            for j in range(i + 1, k):
                e_i, e_j = np.zeros(k), np.zeros(k)
                e_i[i], e_j[j] = h[i], h[j]
                v = (f(c + e_i + e_j) - f(c + e_i - e_j) - f(c - e_i + e_j)
                     + f(c - e_i - e_j)) / (4 * h[i] * h[j])
                H[i, j] = H[j, i] = v
        return H



def conditional_modes(terms, Ts, X, y, beta):
    """BLUPs ``b = Lambda u`` per term, ``u`` solving ``(Lambda'Z'Z Lambda + I) u =
    Lambda'Z'(y - X beta)`` (sparse LU, exact). Returns a list of ``(l_t, k_t)`` arrays."""
    Z = sp.hstack([term_z(t) for t in terms], format="csc")
    Lam = sp.block_diag([sp.kron(sp.identity(t.nlev), sp.csr_matrix(T))
                         for t, T in zip(terms, Ts)], format="csc")
    ZL = (Z @ Lam).tocsc()
    A = (ZL.T @ ZL + sp.identity(ZL.shape[1])).tocsc()
    rhs = ZL.T @ (np.asarray(y, float) - np.asarray(X, float) @ np.asarray(beta, float))
    b = Lam @ spla.splu(A).solve(rhs)
    out, pos = [], 0
    for t in terms:
        q = t.nlev * t.k
        out.append(b[pos:pos + q].reshape(t.nlev, t.k))
        pos += q
    return out
