"""F tests of the fixed-effects terms of a linear mixed model, as lmerTest's ``anova``.

For each term of the fixed part a contrast matrix ``L`` (one row per degree of freedom) is
built exactly as lmerTest 3.1 does, and ``L beta = 0`` is tested with an F statistic on
``num_df = rank(L)`` and ``den_df`` denominator degrees of freedom:

* **type 3** (lmerTest's default; ``get_contrasts_type3``): with ``X`` the model matrix
  (treatment coding) and ``X_rd`` the rank-deficient "complete" design of every term
  (``~ 0 + term``), ``L = zapsmall(t(ginv(X) X_rd))``; columns of a term that is contained in
  other terms (SAS containment: same numeric variables, a subset of the factors) are
  orthogonalised on the columns of the terms containing it, higher-order terms first;
* **type 2** (``get_contrasts_type2_unfolded``): terms contained in no other term get their
  marginal contrast (identity rows of their coefficients); the others the Doolittle (type I)
  contrast with ``X`` reordered as [unrelated terms, the term, the terms containing it].

Denominator df:

* ``ddf="satterthwaite"`` (lmerTest's ``contestMD``): with ``L C L' = P D P'``,
  ``F = sum_m (P_m' L beta)^2 / d_m / q``; each ``P_m' L`` gets its Satterthwaite df
  ``nu_m``; ``E = sum nu_m / (nu_m - 2)``, ``den_df = 2 E / (E - q)`` (2 if any ``nu_m <= 2``);
* ``ddf="kenward-roger"`` (pbkrtest's ``KRmodcomp``, REML fits): the Kenward-Roger scaled F
  with the adjusted covariance of ``beta`` and its df (:mod:`hipstats.models.kenward_roger`),
  in pbkrtest's parameterisation (the variance components and covariances of each term and
  the residual variance, linear in ``V``), ``W`` the inverse expected REML information.
  The marginal covariance is split into independent blocks (connected components of the
  grouping factors: participants for participant-grouped models, one block for crossed ones).

References
----------
Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package: tests in linear mixed
effects models. J Stat Softw 82(13). doi:10.18637/jss.v082.i13

Kenward MG, Roger JH (1997). Small sample inference for fixed effects from restricted maximum
likelihood. Biometrics 53(3), 983-997.

Halekoh U, Hojsgaard S (2014). A Kenward-Roger approximation and parametric bootstrap methods
for tests in linear mixed models - the R package pbkrtest. J Stat Softw 59(9).

Examples
--------
>>> import numpy as np, pandas as pd
>>> from hipstats.models.lmm import fit_lmm
>>> rng = np.random.default_rng(3)
>>> pid = np.repeat(np.arange(40), 4); week = np.tile([0., 4, 8, 12], 40)
>>> arm = np.where(pid % 2, "loading", "control")
>>> y = 30 + rng.normal(0, 4, 40)[pid] + 0.4 * week * (arm == "loading") + rng.normal(0, 2, 160)
>>> df = pd.DataFrame({"pid": pid, "week": week, "arm": arm, "y": y})
>>> res = fit_lmm("y ~ week * arm + (1 | pid)", df)
>>> list(res.anova().columns)
['term', 'statistic', 'num_df', 'den_df', 'p_value', 'type', 'ddf']
>>> res.anova(ddf="kenward-roger")["term"].tolist()
['arm', 'week', 'week:arm']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.errors import AnalysisError

__all__ = ["anova", "term_contrasts", "KRFit", "kenward_roger_for", "contest"]

#: Largest independent block (observations) whose dense covariance Kenward-Roger builds.
KR_MAX_BLOCK = 3000


# --------------------------------------------------------------------------- model terms
@dataclass
class _Term:
    name: str
    cols: list          # column indices in X
    factors: tuple      # patsy factors
    numeric: frozenset  # numeric factors


def _terms(res):
    di = res.design_info
    if di is None:
        raise AnalysisError("anova needs a fit_lmm fit made from a formula")
    out = []
    for term, sl in zip(di.terms, di.term_slices.values()):
        if not term.factors:
            continue
        numeric = frozenset(f for f in term.factors if di.factor_infos[f].type == "numerical")
        out.append(_Term(term.name(), list(range(sl.start, sl.stop)), tuple(term.factors),
                         numeric))
    return out


def _has_intercept(res):
    di = res.design_info
    return any(not t.factors for t in di.terms)


def _containment(terms):
    """lmerTest's ``containment``: for each term, the terms that contain it."""
    out = {}
    for t1 in terms:
        v1 = set(t1.factors)
        out[t1.name] = [t2.name for t2 in terms
                        if v1 <= set(t2.factors) and set(t2.factors) - v1
                        and t1.numeric == t2.numeric]
    return out


def _zapsmall(x, digits=7):
    x = np.asarray(x, float)
    mx = np.abs(x).max() if x.size else 0.0
    if mx > 0:
        d = max(0, digits - int(np.ceil(np.log10(mx))))
    else:
        d = digits
    return np.round(x, d)


def _doolittle(x, eps=1e-6):
    """lmerTest's ``doolittle``: unit lower ``L`` and upper ``U`` with ``x = L U``."""
    n = x.shape[0]
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        U[i, :] = x[i, :] - L[i, :i] @ U[:i, :]
        if i + 1 < n:
            col = x[i + 1:, i] - L[i + 1:, :i] @ U[:i, i]
            L[i + 1:, i] = 0.0 if abs(U[i, i]) < eps else col / U[i, i]
    L[np.abs(L) < eps] = 0.0
    U[np.abs(U) < eps] = 0.0
    return L, U


def _factor_columns(res, factor):
    """Full (not reduced) columns of one patsy factor on the model frame: every level's
    indicator for a categorical factor, its values for a numeric one."""
    import patsy

    di = res.design_info
    info = di.factor_infos[factor]
    frame = res.data
    if info.type == "numerical":
        val = np.asarray(factor.eval(info.state, frame), float)
        return val.reshape(len(frame), -1)
    from patsy.categorical import categorical_to_int

    raw = factor.eval(info.state, frame)
    codes = categorical_to_int(raw, info.categories, patsy.NAAction(NA_types=[]), origin=factor)
    out = np.zeros((len(frame), len(info.categories)))
    out[np.arange(len(frame)), codes] = 1.0
    return out


def _complete_design(res, terms):
    """lmerTest's ``get_rdX``: intercept, then ``model.matrix(~ 0 + term)`` of each term
    (products of full factor codings), and the block of columns belonging to each term."""
    n = res.n_rows
    cols = [np.ones((n, 1))] if _has_intercept(res) else []
    blocks, pos = {}, len(cols)
    for t in terms:
        M = np.ones((n, 1))
        for f in t.factors:
            F = _factor_columns(res, f)
            M = (M[:, :, None] * F[:, None, :]).reshape(n, -1)
        cols.append(M)
        blocks[t.name] = list(range(pos, pos + M.shape[1]))
        pos += M.shape[1]
    return np.hstack(cols), blocks


def _contrasts_type3(res, terms):
    X = res.model_matrix
    p = X.shape[1]
    rdX, blocks = _complete_design(res, terms)
    L = _zapsmall((np.linalg.pinv(X) @ rdX).T)                # (p_rd, p)
    # rows of L that correspond to model coefficients: the rdX column equal to each X column
    rows = []
    has_int = _has_intercept(res)
    col_term = {}
    for t in terms:
        for c in t.cols:
            col_term[c] = t.name
    for j in range(p):
        cand = [0] if (has_int and j not in col_term) else blocks[col_term[j]]
        match = [c for c in cand if np.allclose(rdX[:, c], X[:, j], rtol=0, atol=1e-12)]
        if not match:
            raise AnalysisError(
                "type III tests are built for treatment coding (R's contr.treatment, patsy's "
                f"default); column {res.exog_names[j]!r} is coded otherwise. Refit with the "
                "default coding or use type=2")
        rows.append(match[0])
    contains = _containment(terms)
    cols_of = {t.name: t.cols for t in terms}
    for t in sorted(terms, key=lambda t: len(t.factors), reverse=True):
        if contains[t.name]:
            Xc = L[:, [c for name in contains[t.name] for c in cols_of[name]]]
            Y = L[:, t.cols]
            coef, *_ = np.linalg.lstsq(Xc, Y, rcond=None)
            L[:, t.cols] = _zapsmall(Y - Xc @ coef)
    L = L[rows, :]                                            # (p, p): rows = coefficients
    out = {}
    for t in terms:
        Lt = L[:, t.cols].T
        out[t.name] = Lt[np.abs(Lt).sum(axis=1) > 1e-8]
    return out


def _contrasts_marginal(terms, p):
    eye = np.eye(p)
    return {t.name: eye[t.cols] for t in terms}


def _contrasts_type2(res, terms):
    X = res.model_matrix
    p = X.shape[1]
    contains = _containment(terms)
    out = _contrasts_marginal([t for t in terms if not contains[t.name]], p)
    cols_of = {t.name: t.cols for t in terms}
    for t in terms:
        if not contains[t.name]:
            continue
        related = t.cols + [c for name in contains[t.name] for c in cols_of[name]]
        order = [c for c in range(p) if c not in related] + related
        Xn = X[:, order]
        Lc = _doolittle(Xn.T @ Xn)[0].T
        sel = [i for i, c in enumerate(order) if c in t.cols]
        back = np.empty(p, dtype=int)
        back[order] = np.arange(p)
        out[t.name] = Lc[sel][:, back]
    return {t.name: out[t.name] for t in terms}


def term_contrasts(res, type: int | str = 3) -> dict:
    """Contrast matrices of every fixed-effects term (lmerTest's ``show_tests``).

    Returns ``{term: L}``, ``L`` of shape ``(num_df, p)`` over ``res.fe_params``.
    """
    key = str(type).strip().upper()
    key = {"3": 3, "III": 3, "2": 2, "II": 2}.get(key)
    if key is None:
        raise AnalysisError(f"type must be 3 or 2 (III or II), got {type!r}")
    terms = _terms(res)
    if not terms:
        raise AnalysisError(f"{res.formula!r} has no fixed-effects term to test")
    p = len(res.fe_params)
    if len(terms) == 1 or p <= 1:
        return _contrasts_marginal(terms, p)
    return _contrasts_type3(res, terms) if key == 3 else _contrasts_type2(res, terms)


# --------------------------------------------------------------------------- F tests
def _fstat_ddf(nu, tol=1e-8):
    """lmerTest's ``get_Fstat_ddf``."""
    nu = np.asarray(nu, float)
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - len(nu))


def _contest_satterthwaite(res, L):
    beta = res.fe_params.to_numpy()
    C = res.cov_fe.to_numpy()
    if L.shape[0] == 1:
        est = float(L[0] @ beta)
        F = est ** 2 / float(L[0] @ C @ L[0])
        return F, 1, float(res.df_satterthwaite(L)[0])
    d, P = np.linalg.eigh(L @ C @ L.T)
    d, P = d[::-1], P[:, ::-1]                               # decreasing, as R's eigen
    tol = max(np.sqrt(np.finfo(float).eps) * d[0], 0.0)
    q = int((d > tol).sum())
    if q == 0:
        raise AnalysisError("contrast matrix has rank 0")
    PtL = (P.T @ L)[:q]
    if q == 1:
        return _contest_satterthwaite(res, PtL)
    F = float(np.sum((PtL @ beta) ** 2 / d[:q]) / q)
    nu = res.df_satterthwaite(PtL)
    return F, q, _fstat_ddf(nu)


def contest(res, L, ddf: str = "satterthwaite") -> dict:
    """F test of ``L beta = 0`` (lmerTest's ``contestMD`` / pbkrtest's ``KRmodcomp``).

    Returns ``dict(statistic, num_df, den_df, p_value)``.
    """
    L = res.check_contrast(L)
    key = res.ddf_method(ddf)
    if key == "kenward-roger":
        from hipstats.models.kenward_roger import kr_test

        kr = res.kenward_roger()
        r = kr_test(L, res.fe_params.to_numpy(), kr.Phi, kr.vcov_adj, kr.P, kr.W)
        return dict(statistic=float(r["statistic"]), num_df=int(r["num_df"]),
                    den_df=float(r["den_df"]), p_value=float(r["p_value"]))
    F, q, den = _contest_satterthwaite(res, L)
    return dict(statistic=F, num_df=q, den_df=den, p_value=float(stats.f.sf(F, q, den)))


def anova(res, type: int | str = 3, ddf: str = "satterthwaite") -> pd.DataFrame:
    """ANOVA table of the fixed-effects terms of an :class:`~hipstats.models.lmm.LMMResult`.

    Parameters
    ----------
    res : LMMResult
    type : {3, 2}
        Type III (lmerTest's default) or type II hypotheses (see the module docstring).
    ddf : {"satterthwaite", "kenward-roger"}
        Denominator df (Kenward-Roger needs a REML fit).

    Returns
    -------
    pandas.DataFrame
        One row per term: ``term, statistic`` (F), ``num_df, den_df, p_value``, and the
        ``type`` and ``ddf`` used.

    Examples
    --------
    >>> # res.anova(type=3, ddf="kenward-roger")      # see the module example
    """
    key = res.ddf_method(ddf)
    Ls = term_contrasts(res, type)
    rows = []
    for name, L in Ls.items():
        r = contest(res, L, ddf=key)
        rows.append({"term": name, **r})
    out = pd.DataFrame(rows, columns=["term", "statistic", "num_df", "den_df", "p_value"])
    out["type"] = "III" if str(type).strip().upper() in ("3", "III") else "II"
    out["ddf"] = key
    return out


# --------------------------------------------------------------------------- Kenward-Roger
@dataclass
class KRFit:
    """Kenward-Roger pieces of one LMM fit: ``Phi`` (model covariance of ``beta``), ``P``,
    ``W`` (inverse expected REML information of the variance parameters) and the adjusted
    covariance ``vcov_adj`` (pbkrtest's ``vcovAdj``)."""

    Phi: np.ndarray
    P: np.ndarray
    W: np.ndarray
    vcov_adj: np.ndarray
    params: list

    def ddf_1d(self, l) -> float:
        """Kenward-Roger df of one linear combination ``l`` (pbkrtest's ``Lb_ddf``)."""
        from hipstats.models.kenward_roger import kr_ddf

        return float(kr_ddf(np.atleast_2d(l), self.Phi, self.P, self.W)[0])

    def ddf(self, L) -> np.ndarray:
        return np.array([self.ddf_1d(l) for l in np.atleast_2d(L)])


def _blocks(terms, n):
    """Independent blocks of observations: connected components of the grouping factors."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    rows, cols, off = [], [], n
    for t in terms:
        rows.append(np.arange(n))
        cols.append(off + t.codes)
        off += t.nlev
    r, c = np.concatenate(rows), np.concatenate(cols)
    A = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(off, off))
    _, lab = connected_components(A, directed=False)
    return lab[:n]


def kenward_roger_for(res) -> KRFit:
    """Build the Kenward-Roger machinery of a REML fit (cached by ``res.kenward_roger()``)."""
    from hipstats.models.kenward_roger import (BlockGroup, adjusted_vcov, expected_information,
                                               kr_components)

    if not res.reml:
        raise AnalysisError("Kenward-Roger needs a REML fit (as pbkrtest)")
    terms_T = res.re_terms()
    X = res.model_matrix
    n = X.shape[0]
    s2 = res.sigma2
    # pbkrtest's parameters: per term the lower triangle of Sigma_t, then the residual variance
    params, values = [], []
    for t, T in terms_T:
        S = s2 * T @ T.T
        for j in range(t.k):
            for i in range(j, t.k):
                params.append((t, i, j))
                values.append(S[i, j])
    params.append(None)
    values.append(s2)
    lab = _blocks([t for t, _ in terms_T], n)
    order = np.argsort(lab, kind="stable")
    sizes = np.bincount(lab)
    if sizes.max() > KR_MAX_BLOCK:
        raise AnalysisError(
            f"Kenward-Roger builds the dense covariance of each independent block; the "
            f"crossed random effects of {res.formula!r} join {sizes.max()} observations in one "
            f"block (limit {KR_MAX_BLOCK}). Use ddf='satterthwaite'")
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    groups = []
    for m in np.unique(sizes):
        which = np.flatnonzero(sizes == m)
        idx = order[starts[which][:, None] + np.arange(m)[None, :]]          # (nb, m)
        nb = len(which)
        V = np.zeros((nb, m, m))
        dV = np.zeros((len(params), nb, m, m))
        for h, (par, val) in enumerate(zip(params, values)):
            if par is None:
                D = np.broadcast_to(np.eye(m), (nb, m, m))
            else:
                t, i, j = par
                same = t.codes[idx][:, :, None] == t.codes[idx][:, None, :]
                xi, xj = t.Xt[idx, i], t.Xt[idx, j]
                D = xi[:, :, None] * xj[:, None, :]
                if i != j:
                    D = D + np.swapaxes(D, 1, 2)
                D = D * same
            dV[h] = D
            V += val * D
        groups.append(BlockGroup(X[idx], V, dV))
    comp = kr_components(groups, second=True)
    W = np.linalg.inv(expected_information(comp, reml=True))
    vadj = adjusted_vcov(comp, W)
    return KRFit(Phi=comp.Phi, P=comp.P, W=W, vcov_adj=vadj,
                 params=["residual" if p is None else f"{p[0].group}:{p[0].names[p[1]]}:"
                         f"{p[0].names[p[2]]}" for p in params])
