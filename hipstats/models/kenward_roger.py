"""Kenward-Roger and Satterthwaite small-sample inference for Gaussian linear models whose
marginal covariance is block diagonal.

Model: ``y = X beta + e``, ``e ~ N(0, V(theta))``, ``V = blockdiag(V_i(theta))``, with ``k``
covariance parameters ``theta``. ``beta`` is the generalised least-squares estimate and
``Phi = (X' V^{-1} X)^{-1}`` its model-based covariance. Given, per block, the rows ``X_i``,
``V_i``, the first derivatives ``dV_i / dtheta_h`` and (for the full Kenward-Roger adjustment
of a non-linear parameterisation) the second derivatives, this module computes (Kenward &
Roger 1997, in the notation of the mmrm package's "Kenward-Roger" vignette)

.. math::

    P_h = X^\\top \\frac{\\partial V^{-1}}{\\partial\\theta_h} X,\\quad
    Q_{hj} = X^\\top V^{-1} \\frac{\\partial V}{\\partial\\theta_h} V^{-1}
             \\frac{\\partial V}{\\partial\\theta_j} V^{-1} X,\\quad
    R_{hj} = X^\\top V^{-1} \\frac{\\partial^2 V}{\\partial\\theta_h\\partial\\theta_j} V^{-1} X,

the adjusted covariance
:math:`\\Phi_A = \\Phi + 2\\Phi\\{\\sum_{hj} W_{hj}(Q_{hj} - P_h\\Phi P_j - \\tfrac14 R_{hj})\\}\\Phi`
(``W`` the asymptotic covariance of ``theta``), the Kenward-Roger denominator df ``m`` and F
scaling ``lambda`` of a contrast matrix ``L`` (as ``pbkrtest::Lb_ddf`` / ``.KR_adjust`` and
``mmrm:::h_kr_df``: built from the *unadjusted* ``Phi``; the Wald statistic uses ``Phi_A``), and
Satterthwaite df (``nu = 2 (l' Phi l)^2 / (g' W g)``, ``g_h = l' dPhi/dtheta_h l`` with
``dPhi/dtheta_h = -Phi P_h Phi``; multi-row contrasts as ``mmrm:::h_df_md_sat`` and lmerTest).

Interface
---------
``BlockGroup(X, V, dV, d2V=None)``
    Blocks of one shape. ``X`` ``(n, m, p)``: the rows of ``n`` blocks of ``m`` observations.
    Either one covariance shared by all ``n`` blocks (``V`` ``(m, m)``, ``dV`` ``(k, m, m)``,
    ``d2V`` ``(k, k, m, m)``; e.g. MMRM subjects with the same visit pattern; costs are then
    independent of ``n`` after one ``O(n m^2 p^2)`` pass), or one per block (``V``
    ``(n, m, m)``, ``dV`` ``(k, n, m, m)``, ``d2V`` ``(k, k, n, m, m)``; e.g. one block per
    participant of an LMM, or ``n = 1`` and one dense block for crossed designs).
    ``d2V=None`` means zero second derivatives (a linear parameterisation: R = 0).
``kr_components(block_groups, second=True) -> KRComponents``
    ``Phi`` (p, p), ``P`` (k, p, p), ``Q`` (k, k, p, p), ``R`` (k, k, p, p) or None, ``K``
    (k, k) = ``sum_i tr(V_i^{-1} dV_ih V_i^{-1} dV_ij)``. ``second=False`` skips Q, R (enough
    for df).
``expected_information(comp, reml=True) -> (k, k)``
    Expected information of ``theta`` (REML: ``1/2 tr(G dV_h G dV_j)``,
    ``G = V^{-1} - V^{-1} X Phi X' V^{-1}``; ML: ``1/2 K``). ``W`` = its inverse, as
    pbkrtest's ``vcovAdj`` (mmrm uses the inverse observed Hessian of the negative
    log-likelihood instead; pass either as ``W``).
``adjusted_vcov(comp, W, linear=False) -> Phi_A``
    ``linear=True`` drops the R terms (mmrm's "Kenward-Roger-Linear").
``kr_ddf(L, Phi, P, W) -> (ddf, scale)``
    Kenward-Roger denominator df and F scaling of the contrast rows ``L`` (q, p).
``kr_test(L, beta, Phi, Phi_adj, P, W, rhs=None) -> dict``
    ``statistic`` (scaled F), ``num_df``, ``den_df``, ``p_value``, ``scale``, ``f_unscaled``.
``satterthwaite_df(L, Phi, P, W) -> (q,)``
    Satterthwaite df of each row of ``L`` separately (t tests, EMMs, contrasts).
``satterthwaite_test(L, beta, Phi, P, W, rhs=None) -> dict``
    F test of all rows jointly: ``statistic``, ``num_df`` (rank), ``den_df``, ``p_value``.
``dphi(Phi, P) -> (k, p, p)``
    ``dPhi/dtheta_h = -Phi P_h Phi``.

``W`` must be the covariance of the *same* ``theta`` that ``dV`` differentiates in. The df are
invariant to a smooth reparameterisation of ``theta`` (when ``W`` is the inverse Hessian at the
optimum or the inverse expected information); ``Phi_A`` is not, through ``R`` (mmrm's
parameterisation for unstructured covariance is the log-Cholesky one, pbkrtest's for lme4 the
variance components themselves, linear, so R = 0).

References
----------
Kenward MG, Roger JH (1997). Small sample inference for fixed effects from restricted maximum
likelihood. Biometrics 53(3), 983-997. doi:10.2307/2533558

Halekoh U, Hojsgaard S (2014). A Kenward-Roger approximation and parametric bootstrap methods
for tests in linear mixed models - the R package pbkrtest. J Stat Softw 59(9).
doi:10.18637/jss.v059.i09

Sabanes Bove D et al. (2024). mmrm: Mixed Models for Repeated Measures. R package, vignette
"Kenward-Roger".

Examples
--------
>>> import numpy as np
>>> from hipstats.models.kenward_roger import (BlockGroup, kr_components, expected_information,
...                                            adjusted_vcov, kr_ddf, satterthwaite_df)
>>> X = np.stack([np.column_stack([np.ones(3), np.arange(3.0)])] * 10)   # 10 blocks of 3 rows
>>> s2, tau2 = 1.0, 2.0                                       # V = s2 I + tau2 J
>>> V = s2 * np.eye(3) + tau2 * np.ones((3, 3))
>>> dV = np.stack([np.eye(3), np.ones((3, 3))])               # d/ds2, d/dtau2 (linear)
>>> comp = kr_components([BlockGroup(X, V, dV)])
>>> W = np.linalg.inv(expected_information(comp))
>>> round(float(kr_ddf(np.array([[0.0, 1.0]]), comp.Phi, comp.P, W)[0]), 6)   # within slope
19.0
>>> bool(np.allclose(adjusted_vcov(comp, W), comp.Phi))        # balanced design: no inflation
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from hipstats.errors import AnalysisError

__all__ = ["BlockGroup", "KRComponents", "kr_components", "expected_information", "adjusted_vcov",
           "kr_ddf", "kr_test", "satterthwaite_df", "satterthwaite_test", "dphi"]


@dataclass
class BlockGroup:
    """Blocks of ``m`` observations with their rows, covariance and its derivatives.

    Parameters
    ----------
    X : (n, m, p) array
        Fixed-effects rows of each of the ``n`` blocks.
    V : (m, m) or (n, m, m) array
        Covariance shared by the blocks, or one per block.
    dV : (k, m, m) or (k, n, m, m) array
        ``dV / dtheta_h``.
    d2V : (k, k, m, m) or (k, k, n, m, m) array, optional
        ``d^2 V / dtheta_h dtheta_j``; None for a linear parameterisation (all zero).
    """

    X: np.ndarray
    V: np.ndarray
    dV: np.ndarray
    d2V: np.ndarray | None = None

    def __post_init__(self):
        self.X = np.asarray(self.X, float)
        self.V = np.asarray(self.V, float)
        self.dV = np.asarray(self.dV, float)
        if self.d2V is not None:
            self.d2V = np.asarray(self.d2V, float)
        if self.X.ndim != 3:
            raise AnalysisError(f"BlockGroup X must be (n, m, p), got shape {self.X.shape}")
        n, m, _ = self.X.shape
        shared = self.V.ndim == 2
        want_v = (m, m) if shared else (n, m, m)
        if self.V.shape != want_v:
            raise AnalysisError(f"BlockGroup V must be {want_v}, got {self.V.shape}")
        k = self.dV.shape[0]
        if self.dV.shape != (k, *want_v):
            raise AnalysisError(f"BlockGroup dV must be {(k, *want_v)}, got {self.dV.shape}")
        if self.d2V is not None and self.d2V.shape != (k, k, *want_v):
            raise AnalysisError(f"BlockGroup d2V must be {(k, k, *want_v)}, got {self.d2V.shape}")

    @property
    def shared(self) -> bool:
        return self.V.ndim == 2

    @property
    def k(self) -> int:
        return self.dV.shape[0]


@dataclass
class KRComponents:
    """``Phi``, ``P``, ``Q``, ``R`` and ``K`` of :func:`kr_components` (see module docstring)."""

    Phi: np.ndarray
    P: np.ndarray
    Q: np.ndarray | None
    R: np.ndarray | None
    K: np.ndarray
    XVX: np.ndarray


def _shared_parts(g: BlockGroup, second: bool):
    """Sums over the blocks of one shared-covariance group, via ``XX[a, b] = sum_i x_ia x_ib'``."""
    X = g.X
    n, m, p = X.shape
    k = g.k
    XX = np.einsum("iap,ibq->abpq", X, X, optimize=True).reshape(m * m, p * p)
    Vi = np.linalg.inv(g.V)
    Vi = 0.5 * (Vi + Vi.T)
    A = Vi @ g.dV @ Vi                                               # V^-1 dV_h V^-1 (k, m, m)
    mats = [Vi[None], -A]
    B = np.einsum("hab,jbc->hjac", g.dV @ Vi, g.dV @ Vi)             # dV_h V^-1 dV_j V^-1
    K = n * np.einsum("hjaa->hj", B)
    if second:
        mats.append(np.einsum("ab,hjbc->hjac", Vi, B).reshape(k * k, m, m))   # V^-1 dV V^-1 dV V^-1
        if g.d2V is not None:
            mats.append((Vi @ g.d2V @ Vi).reshape(k * k, m, m))
    stack = np.concatenate(mats, axis=0).reshape(-1, m * m)
    # contraction sum_ab M[a, b] XX[a, b] = sum_i X_i' M X_i
    out = (stack @ XX).reshape(-1, p, p)
    XVX, P = out[0], out[1:1 + k]
    Q = R = None
    if second:
        Q = out[1 + k:1 + k + k * k].reshape(k, k, p, p)
        if g.d2V is not None:
            R = out[1 + k + k * k:].reshape(k, k, p, p)
    return XVX, P, Q, R, K


def _block_parts(g: BlockGroup, second: bool):
    """Sums over blocks that each have their own covariance (batched over blocks)."""
    X = g.X
    k = g.k
    Vi = np.linalg.inv(g.V)                                          # (n, m, m)
    VX = Vi @ X                                                      # (n, m, p)
    XVX = np.einsum("iap,iaq->pq", X, VX, optimize=True)
    D = g.dV @ VX[None]                                              # dV_h V^-1 X (k, n, m, p)
    P = -np.einsum("iap,hiaq->hpq", VX, D, optimize=True)
    DVi = g.dV @ Vi[None]                                            # dV_h V^-1 (k, n, m, m)
    K = np.einsum("hiab,jiba->hj", DVi, DVi, optimize=True)
    Q = R = None
    if second:
        E = Vi[None] @ D                                             # V^-1 dV_h V^-1 X
        # Q_hj = sum_i D_hi' E_ji: one (k p, n m) x (n m, k p) product
        n, m, p = X.shape
        Dr = D.transpose(0, 3, 1, 2).reshape(k * p, n * m)
        Er = E.transpose(0, 3, 1, 2).reshape(k * p, n * m)
        Q = (Dr @ Er.T).reshape(k, p, k, p).transpose(0, 2, 1, 3)
        if g.d2V is not None:
            R = np.einsum("iap,hjiab,ibq->hjpq", VX, g.d2V, VX, optimize=True)
    return XVX, P, Q, R, K


def kr_components(block_groups, second: bool = True) -> KRComponents:
    """``Phi``, ``P``, ``Q``, ``R`` and ``K`` summed over every block of every group.

    Parameters
    ----------
    block_groups : sequence of BlockGroup
        All blocks of the model (the same ``p`` and ``k`` in each group).
    second : bool, default True
        Also compute ``Q`` and ``R`` (needed for :func:`adjusted_vcov` and
        :func:`expected_information`; not for the df).

    Returns
    -------
    KRComponents

    Examples
    --------
    >>> import numpy as np
    >>> X = np.ones((4, 2, 1)); V = np.eye(2); dV = np.eye(2)[None]
    >>> kr_components([BlockGroup(X, V, dV)]).Phi        # (8 obs, variance 1)
    array([[0.125]])
    """
    groups = list(block_groups)
    if not groups:
        raise AnalysisError("kr_components needs at least one BlockGroup")
    p, k = groups[0].X.shape[2], groups[0].k
    XVX = np.zeros((p, p))
    P = np.zeros((k, p, p))
    K = np.zeros((k, k))
    Q = np.zeros((k, k, p, p)) if second else None
    R = None
    for g in groups:
        if g.X.shape[2] != p or g.k != k:
            raise AnalysisError(f"every BlockGroup needs p={p} columns and k={k} parameters, got "
                                f"p={g.X.shape[2]}, k={g.k}")
        if g.X.shape[0] == 0:
            continue
        xvx, Pg, Qg, Rg, Kg = (_shared_parts if g.shared else _block_parts)(g, second)
        XVX += xvx
        P += Pg
        K += Kg
        if second:
            Q += Qg
            if Rg is not None:
                R = Rg if R is None else R + Rg
    XVX = 0.5 * (XVX + XVX.T)
    try:
        Phi = np.linalg.inv(XVX)
    except np.linalg.LinAlgError as err:
        raise AnalysisError("X' V^-1 X is singular: the fixed effects are not estimable") from err
    Phi = 0.5 * (Phi + Phi.T)
    if second and R is None:
        R = np.zeros_like(Q)
    return KRComponents(Phi=Phi, P=P, Q=Q, R=R, K=K, XVX=XVX)


def expected_information(comp: KRComponents, reml: bool = True) -> np.ndarray:
    """Expected information matrix of ``theta`` (REML or ML), as pbkrtest's ``vcovAdj``.

    ``I_hj = 1/2 [K_hj - 2 tr(Phi Q_hj) + tr(Phi P_h Phi P_j)]`` for REML, ``1/2 K_hj`` for ML.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.ones((5, 2, 1)); comp = kr_components([BlockGroup(X, np.eye(2), np.eye(2)[None])])
    >>> expected_information(comp)          # (n - p) / (2 s^4) with n = 10, p = 1, s2 = 1
    array([[4.5]])
    """
    if not reml:
        return 0.5 * comp.K
    if comp.Q is None:
        raise AnalysisError("expected_information(reml=True) needs Q: kr_components(second=True)")
    PhiP = comp.Phi @ comp.P                                          # (k, p, p)
    t2 = np.einsum("pq,hjqp->hj", comp.Phi, comp.Q)
    t3 = np.einsum("hpq,jqp->hj", PhiP, PhiP)
    info = 0.5 * (comp.K - 2.0 * t2 + t3)
    return 0.5 * (info + info.T)


def adjusted_vcov(comp: KRComponents, W: np.ndarray, linear: bool = False) -> np.ndarray:
    """Kenward-Roger adjusted covariance of ``beta``.

    ``Phi_A = Phi + 2 Phi {sum_hj W_hj (Q_hj - P_h Phi P_j - R_hj / 4)} Phi``; ``linear=True``
    leaves out ``R`` (mmrm's "Kenward-Roger-Linear").

    Examples
    --------
    >>> import numpy as np
    >>> X = np.ones((5, 2, 1)); comp = kr_components([BlockGroup(X, np.eye(2), np.eye(2)[None])])
    >>> adjusted_vcov(comp, np.linalg.inv(expected_information(comp)))   # one variance: no bias
    array([[0.1]])
    """
    if comp.Q is None:
        raise AnalysisError("adjusted_vcov needs Q and R: kr_components(second=True)")
    W = np.asarray(W, float)
    Phi, P = comp.Phi, comp.P
    PPhiP = np.einsum("hpq,qr,jrs->hjps", P, Phi, P)
    inner = comp.Q - PPhiP
    if not linear and comp.R is not None:
        inner = inner - 0.25 * comp.R
    S = np.einsum("hj,hjps->ps", W, inner)
    out = Phi + 2.0 * Phi @ S @ Phi
    return 0.5 * (out + out.T)


def _as_matrix(L, p):
    L = np.atleast_2d(np.asarray(L, float))
    if L.shape[1] != p:
        raise AnalysisError(f"contrast matrix must have {p} columns (one per fixed effect), got "
                            f"{L.shape[1]}")
    return L


def kr_ddf(L, Phi, P, W) -> tuple[float, float]:
    """Kenward-Roger denominator df ``m`` and F scaling ``lambda`` of the contrast rows ``L``.

    With ``Theta = L' (L Phi L')^{-1} L``, ``A1 = sum_hj W_hj tr(Theta Phi P_h Phi)
    tr(Theta Phi P_j Phi)`` and ``A2 = sum_hj W_hj tr(Theta Phi P_h Phi Theta Phi P_j Phi)``,
    ``q = rank(L)``: ``B = (A1 + 6 A2) / (2q)``, ``g = ((q+1) A1 - (q+4) A2) / ((q+2) A2)``,
    ``c1, c2, c3 = g, q - g, q + 2 - g`` over ``3q + 2(1 - g)``, ``E* = 1 / (1 - A2/q)``,
    ``rho = (1 - A2/q)^2 (1 + c1 B) / (q (1 - c2 B)^2 (1 - c3 B))``,
    ``m = 4 + (q + 2) / (q rho - 1)``, ``lambda = m / (E* (m - 2))`` (pbkrtest's
    ``.KR_adjust``, including its guards: ``lambda = 1`` when ``m`` is within 0.01 of 2).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.ones((5, 2, 1)); comp = kr_components([BlockGroup(X, np.eye(2), np.eye(2)[None])])
    >>> W = np.linalg.inv(expected_information(comp))
    >>> tuple(round(float(v), 6) for v in kr_ddf([[1.0]], comp.Phi, comp.P, W))   # n - p, 1
    (9.0, 1.0)
    """
    Phi = np.asarray(Phi, float)
    L = _as_matrix(L, Phi.shape[0])
    W = np.asarray(W, float)
    q = int(np.linalg.matrix_rank(L))
    if q == 0:
        raise AnalysisError("contrast matrix has rank 0")
    LPL = L @ Phi @ L.T
    Theta = L.T @ np.linalg.pinv(LPL) @ L
    U = Theta @ Phi @ np.asarray(P, float) @ Phi                      # (k, p, p)
    tr = np.einsum("hpp->h", U)
    A1 = float(tr @ W @ tr)
    A2 = float(np.einsum("hj,hpq,jqp->", W, U, U))
    if A2 <= 0:
        return np.inf, 1.0
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3.0 * q + 2.0 * (1.0 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    v0 = 1.0 + c1 * B
    v0 = 0.0 if abs(v0) < 1e-10 else v0
    v1, v2 = 1.0 - c2 * B, 1.0 - c3 * B
    e = 1.0 - A2 / q
    ratio = 0.0 if v1 == 0 else e / v1
    rho = ratio ** 2 * v0 / v2 / q
    m = 4.0 + (q + 2.0) / (q * rho - 1.0)
    scale = 1.0 if abs(m - 2.0) < 1e-2 else m * e / (m - 2.0)
    return float(m), float(scale)


def _wald(L, beta, V, rhs):
    d = L @ np.asarray(beta, float) - (0.0 if rhs is None else np.asarray(rhs, float))
    return float(d @ np.linalg.pinv(L @ V @ L.T) @ d)


def kr_test(L, beta, Phi, Phi_adj, P, W, rhs=None) -> dict:
    """Kenward-Roger F test of ``L beta = rhs`` (default 0).

    ``F = lambda / q (L beta - rhs)' (L Phi_A L')^{-1} (L beta - rhs)`` on ``q`` and ``m`` df
    (:func:`kr_ddf`), as ``pbkrtest::KRmodcomp`` and mmrm's ``df_md(method="Kenward-Roger")``.

    Returns
    -------
    dict
        ``statistic, num_df, den_df, p_value, scale, f_unscaled``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.ones((5, 2, 1)); comp = kr_components([BlockGroup(X, np.eye(2), np.eye(2)[None])])
    >>> W = np.linalg.inv(expected_information(comp))
    >>> r = kr_test([[1.0]], [0.5], comp.Phi, adjusted_vcov(comp, W), comp.P, W)
    >>> round(r["statistic"], 6), r["num_df"], round(r["den_df"], 6)
    (2.5, 1, 9.0)
    """
    Phi = np.asarray(Phi, float)
    L = _as_matrix(L, Phi.shape[0])
    q = int(np.linalg.matrix_rank(L))
    m, scale = kr_ddf(L, Phi, P, W)
    f0 = _wald(L, beta, np.asarray(Phi_adj, float), rhs) / q
    F = scale * f0
    return dict(statistic=F, num_df=q, den_df=m, p_value=float(stats.f.sf(F, q, m)),
                scale=scale, f_unscaled=f0)


def dphi(Phi, P) -> np.ndarray:
    """``dPhi / dtheta_h = -Phi P_h Phi`` for every ``h`` (``(k, p, p)``)."""
    Phi = np.asarray(Phi, float)
    return -Phi @ np.asarray(P, float) @ Phi


def satterthwaite_df(L, Phi, P, W) -> np.ndarray:
    """Satterthwaite df of each row ``l`` of ``L``: ``2 (l' Phi l)^2 / (g' W g)``.

    ``g_h = l' (dPhi/dtheta_h) l = -l' Phi P_h Phi l`` (mmrm's ``h_df_1d_sat``, lmerTest's
    ``contest1D`` with ``W = 2 H^{-1}`` of the deviance). Rows with zero variance get NaN.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.ones((5, 2, 1)); comp = kr_components([BlockGroup(X, np.eye(2), np.eye(2)[None])])
    >>> W = np.linalg.inv(expected_information(comp))
    >>> satterthwaite_df([[1.0]], comp.Phi, comp.P, W).round(6)
    array([9.])
    """
    Phi = np.asarray(Phi, float)
    L = _as_matrix(L, Phi.shape[0])
    W = np.asarray(W, float)
    LP = L @ Phi                                                      # (q, p)
    v = np.einsum("rp,rp->r", LP, L)
    g = -np.einsum("rp,hpq,rq->rh", LP, np.asarray(P, float), LP)     # (q, k)
    den = np.einsum("rh,hj,rj->r", g, W, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, 2.0 * v ** 2 / den, np.inf)
    out[~(v > 0)] = np.nan
    return out


def satterthwaite_test(L, beta, Phi, P, W, rhs=None) -> dict:
    """Satterthwaite F test of ``L beta = rhs`` (default 0) for a contrast matrix ``L``.

    As mmrm's ``h_df_md_sat`` and lmerTest's ``contestMD``: the eigen-decomposition
    ``L Phi L' = U diag(d) U'`` gives ``r = rank`` independent t statistics of the rows of
    ``U' L``, each with its Satterthwaite df ``nu_i``; ``F = sum t_i^2 / r`` on ``r`` and
    ``2E / (E - r)`` df, ``E = sum nu_i / (nu_i - 2)`` (2 when any ``nu_i <= 2``; the common
    value when all are equal).

    Returns
    -------
    dict
        ``statistic, num_df, den_df, p_value``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.ones((5, 2, 1)); comp = kr_components([BlockGroup(X, np.eye(2), np.eye(2)[None])])
    >>> W = np.linalg.inv(expected_information(comp))
    >>> r = satterthwaite_test([[1.0]], [0.5], comp.Phi, comp.P, W)
    >>> round(r["statistic"], 6), r["num_df"], round(r["den_df"], 6)
    (2.5, 1, 9.0)
    """
    Phi = np.asarray(Phi, float)
    L = _as_matrix(L, Phi.shape[0])
    beta = np.asarray(beta, float)
    est = L @ beta - (0.0 if rhs is None else np.asarray(rhs, float))
    C = L @ Phi @ L.T
    d, U = np.linalg.eigh(0.5 * (C + C.T))
    order = np.argsort(d)[::-1]
    d, U = d[order], U[:, order]
    tol = max(np.sqrt(np.finfo(float).eps) * d[0], 0.0)
    r = int(np.sum(d > tol))
    if r == 0:
        raise AnalysisError("contrast matrix has rank 0 (no estimable combination)")
    Lr = U[:, :r].T @ L
    t2 = (U[:, :r].T @ est) ** 2 / d[:r]
    F = float(t2.sum() / r)
    nu = satterthwaite_df(Lr, Phi, P, W)
    if r == 1 or np.all(np.abs(np.diff(nu)) < np.sqrt(np.finfo(float).eps)):
        den = float(np.mean(nu))
    elif np.any(nu <= 2):
        den = 2.0
    else:
        E = float(np.sum(nu / (nu - 2.0)))
        den = 2.0 * E / (E - r)
    return dict(statistic=F, num_df=r, den_df=den, p_value=float(stats.f.sf(F, r, den)))
