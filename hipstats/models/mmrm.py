"""Mixed models for repeated measures (MMRM): generalised least squares with an unstructured
or structured residual covariance across visits, fitted by REML or ML.

The model, as the R package ``mmrm`` and ``nlme::gls`` write it: subject ``i`` is seen at the
visits ``S_i`` (a subset of the ``m`` scheduled visits) and

.. math::

    y_i = X_i\\beta + \\varepsilon_i,\\qquad \\varepsilon_i \\sim N(0, \\Sigma_{S_i}),\\qquad
    \\Sigma_{S_i} = \\Sigma(\\theta)[S_i, S_i],

independently between subjects, so a missing visit simply drops its row and column of
``Sigma`` (valid under missing at random). ``Sigma = D C D`` with ``D`` the diagonal of SDs and
``C`` from the chosen structure, in mmrm's unconstrained parameterisation ``theta``:

========  ===========================================================================
``us``    unstructured: ``Sigma = L L'``, ``L = D U``, ``D = diag(exp theta_1..m)``, ``U``
          unit lower triangular (the remaining ``m(m-1)/2`` entries, row by row)
``toep``  Toeplitz: one SD ``exp theta_1``, lag-``l`` correlation ``r(theta_{l+1})``
``toeph`` heterogeneous Toeplitz: ``m`` SDs, ``m - 1`` lag correlations
``ar1``   first-order autoregressive: ``exp theta_1``, ``rho = r(theta_2)``, ``C_ab = rho^|a-b|``
``ar1h``  heterogeneous AR(1): ``m`` SDs and ``rho``
``cs``    compound symmetry: ``exp theta_1``, ``rho = (1 + 1/(m-1)) logistic(theta_2) - 1/(m-1)``
``csh``   heterogeneous compound symmetry: ``m`` SDs and ``rho``
========  ===========================================================================

with ``r(x) = x / sqrt(1 + x^2)``; the lag of ``toep`` and ``ar1`` counts visits (positions in the
visit order), not time, as in mmrm.

For a given ``theta`` the log-likelihood is evaluated from per-visit-pattern sufficient
statistics: subjects with the same set of visits share ``Sigma_S``, and with
``XX_S[a, b] = sum_i x_ia x_ib'``, ``Xy_S[a, b] = sum_i x_ia y_ib`` and ``yy_S[a, b] =
sum_i y_ia y_ib`` summed over the subjects with pattern ``S`` (computed once),

.. math::

    X'V^{-1}X = \\sum_S \\sum_{ab} (\\Sigma_S^{-1})_{ab} XX_S[a,b],\\quad
    -2\\ell_{ML} = N\\log 2\\pi + \\sum_S n_S \\log|\\Sigma_S| + r'V^{-1}r,\\quad
    -2\\ell_{REML} = -2\\ell_{ML} - p\\log 2\\pi + \\log|X'V^{-1}X|,

so an evaluation costs ``O(patterns x m^2 p^2)`` whatever the number of subjects. The gradient
is analytic, ``d(-2 l)/d theta_h = sum_S <dSigma_S/dtheta_h, n_S W_S - W_S RR_S W_S - W_S M_S W_S>``
(``W_S = Sigma_S^{-1}``, ``RR_S`` the residual cross-products, ``M_S`` the REML term
``sum_i X_i Phi X_i'``), and the quasi-Newton optimiser (BFGS) is polished by Newton steps on
the Hessian (central differences of the analytic gradient), whose inverse ``2 H^{-1}`` is the
covariance of ``theta`` used for the Satterthwaite and Kenward-Roger df
(:mod:`hipstats.models.kenward_roger`), as mmrm does with TMB's Hessian.

The log-likelihood (REML criterion for REML fits) is the one ``mmrm``, ``nlme::gls`` and SAS
PROC MIXED report.

References
----------
Mallinckrodt CH, Lane PW, Schnell D, Peng Y, Mancuso JP (2008). Recommendations for the primary
analysis of continuous endpoints in longitudinal clinical trials. Drug Inf J 42, 303-319.

Sabanes Bove D et al. (2024). mmrm: Mixed Models for Repeated Measures. R package (vignettes
"Details of the model fitting", "Covariance structures", "Kenward-Roger").

Kenward MG, Roger JH (1997). Biometrics 53(3), 983-997.

Examples
--------
>>> import numpy as np, pandas as pd
>>> import hipstats as hs
>>> rng = np.random.default_rng(0)
>>> n, visits = 80, ["w0", "w4", "w8"]
>>> d = pd.DataFrame({"pid": np.repeat(np.arange(n), 3), "visit": visits * n,
...                   "arm": np.repeat(rng.permutation(["ctl", "trt"] * (n // 2)), 3)})
>>> d["y"] = (10 + 2 * (d["arm"] == "trt") * (d["visit"] != "w0")
...           + np.repeat(rng.normal(0, 2, n), 3) + rng.normal(0, 1, 3 * n))
>>> fit = hs.fit_mmrm("y ~ arm * visit", d.drop(index=[5, 8, 11]), participant="pid", visit="visit")
>>> fit.cov_residual.shape
(3, 3)
>>> emm = hs.emmeans(fit, "arm", by="visit")
>>> hs.contrasts(emm, "trt.vs.ctrl", adjust="none")["contrast"].tolist()
['trt - ctl', 'trt - ctl', 'trt - ctl']
"""

from __future__ import annotations

import html
import re
import warnings

import numpy as np
import pandas as pd
import patsy
from scipy import linalg, optimize, stats

from hipstats.errors import AnalysisError, ConvergenceWarning
from hipstats.models import kenward_roger as kr
from hipstats.results import (
    DEPRECATED,
    PARTICIPANT_COLUMN,
    Result,
    exclusion_note,
    html_table,
    renamed_attribute,
    resolve_participant,
)
from hipstats.stats.inference import coefficient_table

__all__ = ["fit_mmrm", "MMRMResult", "COVARIANCES", "DDF_METHODS"]

#: Covariance structures and their long names (``"toeplitz"`` is accepted for ``"toep"``).
COVARIANCES: dict[str, str] = {
    "us": "unstructured", "toep": "Toeplitz", "toeph": "heterogeneous Toeplitz",
    "ar1": "first-order autoregressive", "ar1h": "heterogeneous first-order autoregressive",
    "cs": "compound symmetry", "csh": "heterogeneous compound symmetry"}
_ALIASES = {"toeplitz": "toep", "unstructured": "us", "ar(1)": "ar1", "compound symmetry": "cs"}
#: Denominator df methods of :meth:`MMRMResult.summary`, :meth:`~MMRMResult.anova` and EMMs.
DDF_METHODS = ("satterthwaite", "kenward-roger", "kenward-roger-linear", "asymptotic")
_DDF_ALIASES = {"kr": "kenward-roger", "kenward_roger": "kenward-roger", "satt": "satterthwaite",
                "kenward-roger linear": "kenward-roger-linear", "z": "asymptotic", "none": "asymptotic"}
LOG2PI = float(np.log(2.0 * np.pi))
#: Newton-decrement tolerance ``g' H^{-1} g`` of the deviance at which a fit counts as converged.
CONV_TOL = 1e-6


def _normalize_covariance(covariance: str) -> str:
    key = str(covariance).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in COVARIANCES:
        raise AnalysisError(f"unknown covariance={covariance!r}; use one of {list(COVARIANCES)} "
                            "('toeplitz' is accepted for 'toep')")
    return key


def _normalize_ddf(ddf: str) -> str:
    key = str(ddf).strip().lower().replace("_", "-")
    key = _DDF_ALIASES.get(key, key)
    if key not in DDF_METHODS:
        raise AnalysisError(f"unknown ddf={ddf!r}; use one of {DDF_METHODS}")
    return key


# --------------------------------------------------------------------------- covariance
def _r(x):
    """``x / sqrt(1 + x^2)`` and its first two derivatives (mmrm's map to a correlation)."""
    s = 1.0 + x * x
    return x / np.sqrt(s), s ** -1.5, -3.0 * x * s ** -2.5


def _cs_rho(x, m):
    a = 1.0 / (m - 1.0) if m > 1 else 0.0
    e = 1.0 / (1.0 + np.exp(-x))
    return e * (1.0 + a) - a, (1.0 + a) * e * (1.0 - e), (1.0 + a) * e * (1.0 - e) * (1.0 - 2.0 * e)


class _Structure:
    """``Sigma(theta) = D C D`` of one covariance structure on ``m`` visits, with derivatives."""

    def __init__(self, name: str, m: int):
        self.name, self.m = name, m
        self.hetero = name in ("us", "toeph", "ar1h", "csh")
        self.nsd = m if self.hetero else 1
        self.ncor = {"us": m * (m - 1) // 2, "toep": m - 1, "toeph": m - 1, "ar1": 1, "ar1h": 1,
                     "cs": 1, "csh": 1}[name]
        if m == 1:
            self.ncor = 0
        self.k = self.nsd + self.ncor
        self.lower = [(i, j) for i in range(m) for j in range(i)]       # mmrm's row-wise order
        lag = np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
        self.lag = lag
        # constant tensors: Dsd[a] = e_a 1' + 1 e_a' (the visits whose SD parameter a sets)
        E = np.eye(m) if self.hetero else np.ones((1, m))
        self._Dsd = E[:, :, None] + E[:, None, :]                        # (nsd, m, m)
        self._Dsd2 = self._Dsd[:, None] * self._Dsd[None, :]             # (nsd, nsd, m, m)
        if name == "us" and m > 1:
            c = len(self.lower)
            self._rows = np.array([i for i, _ in self.lower])
            self._cols = np.array([j for _, j in self.lower])
            Eu = np.zeros((c, m, m))
            Eu[np.arange(c), self._rows, self._cols] = 1.0
            self._Eu = Eu
            EE = np.einsum("kab,lcb->klac", Eu, Eu)                      # E_k E_l'
            self._d2C_us = EE + EE.transpose(0, 1, 3, 2)

    def param_names(self, labels) -> list[str]:
        labels = [str(v) for v in labels]
        sd = [f"log_sd[{v}]" for v in labels] if self.hetero else ["log_sd"]
        if self.ncor == 0:
            return sd
        if self.name == "us":
            cor = [f"chol[{labels[i]},{labels[j]}]" for i, j in self.lower]
        elif self.name in ("toep", "toeph"):
            cor = [f"cor_lag{l}" for l in range(1, self.m)]
        else:
            cor = ["rho"]
        return sd + cor

    def _corr(self, phi):
        """``C``, ``dC/dphi`` (c, m, m) and ``d2C`` (c, c, m, m)."""
        m, c = self.m, self.ncor
        C = np.eye(m)
        dC = np.zeros((c, m, m))
        d2C = np.zeros((c, c, m, m))
        if c == 0:
            return C, dC, d2C
        if self.name == "us":
            U = np.eye(m)
            U[self._rows, self._cols] = phi
            C = U @ U.T
            EU = self._Eu @ U.T                                          # E_k U'
            dC = EU + EU.transpose(0, 2, 1)
            return C, dC, self._d2C_us
        if self.name in ("toep", "toeph"):
            r, r1, r2 = _r(np.asarray(phi, float))
            for l in range(1, m):
                mask = self.lag == l
                C[mask] = r[l - 1]
                dC[l - 1][mask] = r1[l - 1]
                d2C[l - 1, l - 1][mask] = r2[l - 1]
            return C, dC, d2C
        if self.name in ("ar1", "ar1h"):
            rho, r1, r2 = (float(v) for v in _r(float(phi[0])))
            d = self.lag.astype(float)
            C = rho ** d
            with np.errstate(divide="ignore", invalid="ignore"):
                p1 = np.where(d >= 1, d * rho ** np.maximum(d - 1, 0), 0.0)
                p2 = np.where(d >= 2, d * (d - 1) * rho ** np.maximum(d - 2, 0), 0.0)
            dC[0] = p1 * r1
            d2C[0, 0] = p2 * r1 ** 2 + p1 * r2
            return C, dC, d2C
        rho, r1, r2 = _cs_rho(float(phi[0]), m)
        off = ~np.eye(m, dtype=bool)
        C[off] = rho
        dC[0][off] = r1
        d2C[0, 0][off] = r2
        return C, dC, d2C

    def sigma(self, theta, order=0):
        """``Sigma`` (m, m); with ``order >= 1`` also ``dSigma`` (k, m, m), ``order 2`` ``d2Sigma``."""
        theta = np.asarray(theta, float)
        m, k, ns = self.m, self.k, self.nsd
        sd = np.exp(theta[:ns]) if self.hetero else np.full(m, np.exp(theta[0]))
        C, dC, d2C = self._corr(theta[ns:])
        S = sd[:, None] * C * sd[None, :]
        if order == 0:
            return S
        dS = np.empty((k, m, m))
        dS[:ns] = self._Dsd * S
        dS[ns:] = sd[None, :, None] * dC * sd[None, None, :]
        if order == 1:
            return S, dS
        d2S = np.zeros((k, k, m, m))
        d2S[:ns, :ns] = self._Dsd2 * S
        d2S[:ns, ns:] = self._Dsd[:, None] * dS[None, ns:]
        d2S[ns:, :ns] = d2S[:ns, ns:].transpose(1, 0, 2, 3)
        d2S[ns:, ns:] = sd[None, None, :, None] * d2C * sd[None, None, None, :]
        return S, dS, d2S

    def start(self, S):
        """``theta`` reproducing (approximately, for structured ``C``) the covariance ``S``."""
        m = self.m
        sd = np.sqrt(np.maximum(np.diag(S), 1e-8))
        R = S / np.outer(sd, sd)
        th_sd = np.log(sd) if self.hetero else np.array([np.log(np.sqrt(np.mean(sd ** 2)))])
        if self.ncor == 0:
            return th_sd
        if self.name == "us":
            L = np.linalg.cholesky(R)
            U = L / np.diag(L)[:, None]
            return np.r_[th_sd, [U[i, j] for i, j in self.lower]]

        def r_inv(rho):
            rho = np.clip(rho, -0.9, 0.95)
            return rho / np.sqrt(1.0 - rho ** 2)

        if self.name in ("toep", "toeph"):
            return np.r_[th_sd, [r_inv(np.mean(R[self.lag == l])) for l in range(1, m)]]
        if self.name in ("ar1", "ar1h"):
            return np.r_[th_sd, r_inv(np.mean(R[self.lag == 1]))]
        a = 1.0 / (m - 1.0)
        rho = float(np.clip(np.mean(R[~np.eye(m, dtype=bool)]), -a + 0.05, 0.95))
        e = (rho + a) / (1.0 + a)
        return np.r_[th_sd, np.log(e / (1.0 - e))]


# --------------------------------------------------------------------------- engine
class _Pattern:
    """Subjects observed at the same visits: their rows and sufficient statistics."""

    def __init__(self, idx, X, Y, subjects):
        self.idx = np.asarray(idx)                   # visit positions (m_S,)
        self.X = X                                   # (n_S, m_S, p)
        self.Y = Y                                   # (n_S, m_S)
        self.subjects = subjects
        n, m, _ = X.shape
        self.n, self.m = n, m


class _Engine:
    """Deviance (-2 log-likelihood) of an MMRM and its analytic gradient in ``theta``.

    Every visit pattern is padded to the full ``m`` visits (missing visits get an identity
    block in ``Sigma`` and zero sufficient statistics, which changes neither the likelihood nor
    the gradient), so one evaluation is a few batched operations over the patterns.
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


def _optimize(engine, theta0, reml, maxiter):
    """BFGS on the unconstrained ``theta``, then Newton polish; returns theta, H, info."""
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


# --------------------------------------------------------------------------- data
def _natural_key(v):
    if isinstance(v, (int, float, np.integer, np.floating)):
        return (0, float(v), "")
    parts = re.split(r"(\d+(?:\.\d+)?)", str(v))
    return (1, 0.0, tuple((0, float(s)) if re.fullmatch(r"\d+(?:\.\d+)?", s) else (1, s)
                          for s in parts if s != ""))


def _visit_levels(col: pd.Series, visits):
    present = pd.unique(col.dropna())
    if visits is not None:
        order = list(visits)
        extra = [v for v in present if v not in set(order)]
        if extra:
            raise AnalysisError(f"visit column {col.name!r} has values not in visits=: "
                                f"{extra[:5]}")
        return [v for v in order if v in set(present)]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [v for v in col.cat.categories if v in set(present)]
    return sorted(present, key=_natural_key)


def _build(formula, data, subject, visit, visits, eval_env):
    """Model frame, design, visit positions and notes on dropped rows."""
    if not isinstance(data, pd.DataFrame):
        raise AnalysisError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    for col, what in ((subject, "participant"), (visit, "visit")):
        if col not in data.columns:
            raise AnalysisError(f"{what} column {col!r} not found in data (columns: "
                                f"{', '.join(map(str, data.columns))})")
    df = data if data.index.is_unique else data.reset_index(drop=True)
    try:
        desc = patsy.ModelDesc.from_formula(formula)
    except patsy.PatsyError as err:
        raise AnalysisError(f"cannot parse formula {formula!r}: {err}") from err
    if not desc.lhs_termlist:
        raise AnalysisError(f"formula {formula!r} has no response (write 'value ~ ...')")
    notes = []
    keep = df[subject].notna() & df[visit].notna()
    n_key = int((~keep).sum())
    if n_key:
        notes.append(exclusion_note(n_key, f"no {subject} or no {visit}"))
    df = df.loc[keep]
    try:
        y, X = patsy.dmatrices(desc, df, eval_env=eval_env, NA_action="drop",
                               return_type="dataframe")
    except patsy.PatsyError as err:
        raise AnalysisError(f"cannot build the model from formula {formula!r}: {err}") from err
    n_na = len(df) - len(X)
    if n_na:
        notes.append(exclusion_note(n_na, f"a missing value in a variable of {formula}"))
    frame = df.loc[X.index]
    unused = {c: frame[c].cat.remove_unused_categories() for c in frame.columns
              if isinstance(frame[c].dtype, pd.CategoricalDtype)
              and frame[c].nunique(dropna=True) < len(frame[c].cat.categories)}
    if unused:
        frame = frame.assign(**unused)
        y, X = patsy.dmatrices(desc, frame, eval_env=eval_env, NA_action="raise",
                               return_type="dataframe")
    if y.shape[1] != 1:
        raise AnalysisError(f"the response of {formula!r} must be one numeric column, got "
                            f"{list(y.columns)}")
    if len(frame) == 0:
        raise AnalysisError(f"no complete rows left for {formula!r}")
    dup = frame.duplicated([subject, visit], keep=False)
    if dup.any():
        rows = frame.loc[dup, [subject, visit]].head(4)
        raise AnalysisError(f"{int(dup.sum())} rows share a {subject!r} and {visit!r} (an MMRM needs "
                            f"one row per subject and visit), e.g. rows "
                            f"{', '.join(f'{i} ({s}, {v})' for i, (s, v) in rows.iterrows())}")
    levels = _visit_levels(frame[visit], visits)
    pos = {v: i for i, v in enumerate(levels)}
    vpos = frame[visit].map(pos).to_numpy()
    if np.isnan(vpos.astype(float)).any():
        raise AnalysisError(f"visit values of {visit!r} could not be matched to visits=")
    return frame, y, X, levels, vpos.astype(int), notes


def _patterns(frame, X, y, subject, vpos, m):
    """Group subjects by visit pattern (bit mask of visits), rows sorted by visit."""
    codes, subj = pd.factorize(frame[subject], sort=True)
    order = np.lexsort((vpos, codes))
    codes_s, vpos_s = codes[order], vpos[order]
    Xs, ys = X[order], y[order]
    nsub = len(subj)
    mask = np.zeros(nsub, dtype=np.int64)
    np.bitwise_or.at(mask, codes_s, (1 << vpos_s.astype(np.int64)))
    counts = np.bincount(codes_s, minlength=nsub)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    out = []
    for pat in np.unique(mask):
        sid = np.flatnonzero(mask == pat)
        mS = int(counts[sid[0]])
        rows = (starts[sid][:, None] + np.arange(mS)[None, :]).ravel()
        idx = vpos_s[rows[:mS]]
        out.append(_Pattern(idx, Xs[rows].reshape(len(sid), mS, -1), ys[rows].reshape(len(sid), mS),
                            subj[sid]))
    return out, nsub, mask, counts


def _support_problem(structure, patterns, levels, N, p):
    """Why the data cannot support ``structure`` (None when they can)."""
    m, k = structure.m, structure.k
    pair = np.zeros((m, m), dtype=int)
    for g in patterns:
        pair[np.ix_(g.idx, g.idx)] += g.n
    name = COVARIANCES[structure.name]
    if k > N - p:
        return (f"{name} covariance has {k} parameters but the data carry only {N - p} residual "
                f"degrees of freedom ({N} observations, {p} fixed effects)")
    low = [levels[a] for a in range(m) if pair[a, a] < 2]
    if structure.hetero and low:
        return (f"{name} covariance needs a variance per visit, but visit(s) {low} have fewer than "
                "2 observations")
    if structure.name == "us":
        missing = [(levels[a], levels[b]) for a in range(m) for b in range(a)
                   if pair[a, b] == 0]
        if missing:
            return (f"{name} covariance needs every pair of visits observed together in at least "
                    f"one subject; never together: {missing[:6]}"
                    + (f" and {len(missing) - 6} more" if len(missing) > 6 else ""))
    if structure.name in ("toep", "toeph"):
        lags = [l for l in range(1, m) if pair[structure.lag == l].sum() == 0]
        if lags:
            return f"{name} covariance: no subject has two visits {lags} positions apart"
    if structure.ncor and m > 1 and pair[~np.eye(m, dtype=bool)].sum() == 0:
        return f"{name} covariance: no subject has more than one visit, correlations not estimable"
    return None


def _rank_problem(X, names):
    rank = np.linalg.matrix_rank(X)
    if rank == X.shape[1]:
        return None
    bad, cols = [], []
    for j, nm in enumerate(names):
        if np.linalg.matrix_rank(X[:, cols + [j]]) == len(cols) + 1:
            cols.append(j)
        else:
            bad.append(nm)
    return (f"fixed-effects design is rank deficient (rank {rank} < {X.shape[1]} columns); not "
            f"estimable: {', '.join(bad)}")


def _empirical_cov(patterns, X, y, m):
    """Pairwise-complete covariance of OLS residuals across visits, made positive definite."""
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    S = np.zeros((m, m))
    cnt = np.zeros((m, m))
    for g in patterns:
        R = g.Y - g.X @ beta
        S[np.ix_(g.idx, g.idx)] += R.T @ R
        cnt[np.ix_(g.idx, g.idx)] += g.n
    var = np.where(np.diag(cnt) > 0, np.diag(S) / np.maximum(np.diag(cnt), 1), np.nan)
    v = np.nan_to_num(var, nan=np.nanmean(var))
    v = np.where(v > 0, v, max(np.nanmean(var), 1e-6))
    with np.errstate(invalid="ignore", divide="ignore"):
        C = np.where(cnt > 0, S / cnt, 0.0)
        R = C / np.sqrt(np.outer(np.diag(C), np.diag(C)))
    R = np.nan_to_num(R)
    np.fill_diagonal(R, 1.0)
    e, U = np.linalg.eigh(0.5 * (R + R.T))
    R = (U * np.maximum(e, 0.05)) @ U.T
    d = np.sqrt(np.diag(R))
    R = R / np.outer(d, d)
    sd = np.sqrt(v)
    return R * np.outer(sd, sd)


# --------------------------------------------------------------------------- public API
def fit_mmrm(formula, data, participant=PARTICIPANT_COLUMN, visit="visit", covariance="us", *,
             reml=True, ddf="satterthwaite", visits=None, fallback=None, maxiter=500, warn=True,
             subject=DEPRECATED) -> MMRMResult:
    """Fit a mixed model for repeated measures (GLS with a residual covariance across visits).

    Parameters
    ----------
    formula : str
        Mean model in patsy syntax, e.g. ``"value ~ baseline + C(arm, Treatment('control')) *
        C(visit)"``. The visit usually enters as a factor.
    data : pandas.DataFrame
        Long data, one row per participant and visit. Rows with a missing value in a variable of
        the formula, the participant or the visit are dropped and counted in ``notes``.
    participant : str, default "participant_id"
        Column identifying the participant; rows of different participants are independent.
    visit : str, default "visit"
        Column of the visit (the rows and columns of the residual covariance). Order: ``visits``
        if given, else the categories of a categorical column, else ascending with numbers in
        labels compared as numbers (``"week 3"`` before ``"week 12"``). Visits without rows are
        left out.
    covariance : {"us", "toep", "toeph", "ar1", "ar1h", "cs", "csh"}, default "us"
        Residual covariance structure (see the module docstring; "toeplitz" means "toep").
    reml : bool, default True
        REML (True) or maximum likelihood.
    ddf : {"satterthwaite", "kenward-roger", "kenward-roger-linear", "asymptotic"}
        Default degrees-of-freedom method of :meth:`MMRMResult.summary`, :meth:`~MMRMResult.anova`
        and of EMMs and contrasts on the fit. Kenward-Roger needs ``reml=True``; with it the
        covariance of the fixed effects (``cov_fe``, SEs) is the Kenward-Roger adjusted one, as
        in mmrm.
    visits : sequence, optional
        Visit order.
    fallback : sequence of str, optional
        Structures to try in turn when the data cannot support ``covariance`` or its fit does
        not converge (e.g. ``("toeph", "ar1h", "cs")``); each fallback is warned about with the
        reason and recorded in ``notes``. Without it such a fit raises
        :class:`~hipstats.errors.AnalysisError` (design) or warns
        :class:`~hipstats.errors.ConvergenceWarning`.
    maxiter : int, default 500
        Iteration limit of the quasi-Newton optimiser.
    warn : bool, default True
        Emit warnings (fallback, convergence).
    subject : str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

    Returns
    -------
    MMRMResult

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(4)
    >>> d = pd.DataFrame({"id": np.repeat(np.arange(50), 4), "week": np.tile([0, 4, 8, 12], 50)})
    >>> d["y"] = np.repeat(rng.normal(0, 3, 50), 4) + 0.2 * d["week"] + rng.normal(0, 1, 200)
    >>> fit = fit_mmrm("y ~ C(week)", d, participant="id", visit="week", covariance="cs")
    >>> fit.covariance, fit.cov_residual.shape, bool(fit.converged)
    ('cs', (4, 4), True)
    """
    eval_env = patsy.EvalEnvironment.capture(1)
    participant = resolve_participant(participant, where="fit_mmrm", subject=subject)
    cov_list = [_normalize_covariance(covariance)]
    for c in fallback or ():
        c = _normalize_covariance(c)
        if c not in cov_list:
            cov_list.append(c)
    ddf = _normalize_ddf(ddf)
    if ddf.startswith("kenward") and not reml:
        raise AnalysisError("Kenward-Roger df need a REML fit (reml=True); use "
                            "ddf='satterthwaite' for ML")
    frame, ydf, Xdf, levels, vpos, notes = _build(formula, data, participant, visit, visits, eval_env)
    X = Xdf.to_numpy(float)
    y = ydf.to_numpy(float).ravel()
    N, p = X.shape
    problem = _rank_problem(X, list(Xdf.columns))
    if problem:
        raise AnalysisError(problem)
    m = len(levels)
    patterns, nsub, mask, counts = _patterns(frame, X, y, participant, vpos, m)
    if nsub < 2:
        raise AnalysisError(f"an MMRM needs at least 2 participants ({participant!r}), got {nsub}")
    tried = []
    for i, cov in enumerate(cov_list):
        structure = _Structure(cov, m)
        why = _support_problem(structure, patterns, levels, N, p)
        if why is None:
            engine = _Engine(patterns, structure, p, N)
            S0 = _empirical_cov(patterns, X, y, m)
            theta, H, info = _optimize(engine, structure.start(S0), reml, maxiter)
            if info["converged"] or i == len(cov_list) - 1:
                break
            why = (f"{COVARIANCES[cov]} fit did not converge (Newton decrement "
                   f"{info['newton_decrement']:.3g}, Hessian positive definite: "
                   f"{info['hessian_pd']})")
        if i == len(cov_list) - 1:
            raise AnalysisError(why + (f" (after {', '.join(t[0] for t in tried)})" if tried else "")
                                + f"; {nsub} participants, {N} observations, {m} visits")
        tried.append((cov, why))
    if tried:
        msg = "; ".join(w for _, w in tried)
        fb = (f"residual covariance: {COVARIANCES[structure.name]} used instead of the requested "
              f"{COVARIANCES[cov_list[0]]} ({nsub} participants, {N} observations, {m} visits); "
              f"{msg}")
        notes.append(fb)
        if warn:
            warnings.warn(f"MMRM fell back: {fb}", UserWarning, stacklevel=2)
    if warn and not info["converged"]:
        warnings.warn(f"MMRM {formula!r} ({structure.name}) did not converge: Newton decrement "
                      f"{info['newton_decrement']:.3g} (tolerance {CONV_TOL}), Hessian positive "
                      f"definite: {info['hessian_pd']}", ConvergenceWarning, stacklevel=2)
    pattern_table = pd.DataFrame({
        "visits": [", ".join(str(levels[j]) for j in g.idx) for g in patterns],
        "n_visits": [g.m for g in patterns], "n_participants": [g.n for g in patterns]}
    ).sort_values(["n_visits", "n_participants"], ascending=False, ignore_index=True)
    return MMRMResult(
        formula=formula, participant=participant, visit=visit, visits=levels, covariance=structure.name,
        requested_covariance=cov_list[0], reml=reml, ddf=ddf, frame=frame, exog_names=list(Xdf.columns),
        yname=ydf.columns[0], design_info=Xdf.design_info, engine=engine, theta=theta, hessian=H,
        info=info, nsub=nsub, notes=notes, patterns=pattern_table)


# --------------------------------------------------------------------------- result
class MMRMResult(Result):
    """A fitted MMRM (see :func:`fit_mmrm`).

    Attributes
    ----------
    fe_params : pandas.Series
        GLS estimates of the fixed effects.
    cov_fe : pandas.DataFrame
        Covariance of the fixed effects used for inference with the fit's ``ddf`` method:
        ``(X'V^-1X)^-1`` (Satterthwaite, asymptotic) or its Kenward-Roger adjustment.
    cov_fe_model : pandas.DataFrame
        ``(X'V^-1X)^-1`` always.
    bse : pandas.Series
        Standard errors from ``cov_fe``.
    cov_residual : pandas.DataFrame
        Estimated residual covariance across visits (visits x visits).
    cor_residual : pandas.DataFrame
        The corresponding correlation matrix.
    llf, aic, bic : float
        Log-likelihood (the REML criterion for REML fits, as ``logLik`` of mmrm and gls), AIC
        and BIC (``log`` of the number of participants) with the covariance parameters counted
        (REML, as mmrm) or all parameters (ML).
    theta, theta_vcov : numpy.ndarray
        Covariance parameters (mmrm's parameterisation, names in ``theta_names``) and their
        covariance ``2 H^{-1}`` (H the Hessian of the deviance).
    covariance, requested_covariance, reml, ddf, visits, participant, visit, formula
        The specification (``covariance`` differs from ``requested_covariance`` after a
        fallback; ``subject`` is a deprecated alias of ``participant``).
    n_rows, n_participants : int
        Rows fitted and participants (``nobs`` is a deprecated alias of ``n_rows``).
    converged : bool
    notes : list of str
        Rows left out and why, the covariance actually used after a fallback.
    patterns : pandas.DataFrame
        Visit patterns: visits, number of visits, number of participants.
    """

    subject = renamed_attribute("participant", "subject")
    nobs = renamed_attribute("n_rows", "nobs")

    def __init__(self, *, formula, participant, visit, visits, covariance, requested_covariance, reml,
                 ddf, frame, exog_names, yname, design_info, engine, theta, hessian, info, nsub,
                 notes, patterns):
        self.formula, self.participant, self.visit = formula, participant, visit
        self.visits = list(visits)
        self.covariance, self.requested_covariance = covariance, requested_covariance
        self.reml, self.ddf = bool(reml), ddf
        self._frame, self.exog_names, self.yname = frame, list(exog_names), yname
        self._design_info = design_info
        self._engine = engine
        self.theta = np.asarray(theta, float)
        self.theta_names = engine.st.param_names(self.visits)
        self.fit_info = info
        self.converged = bool(info["converged"])
        self.notes = list(notes)
        self.confidence = 0.95
        self.patterns = patterns
        self.n_rows, self.n_participants = engine.N, nsub
        self._hessian = hessian
        try:
            self.theta_vcov = 2.0 * np.linalg.inv(hessian)
        except np.linalg.LinAlgError:
            self.theta_vcov = 2.0 * np.linalg.pinv(hessian)
        beta, Phi, XVX = engine.solve(self.theta)
        names = self.exog_names
        self.fe_params = pd.Series(beta, index=names, name="estimate")
        self.cov_fe_model = pd.DataFrame(Phi, index=names, columns=names)
        S = engine.st.sigma(self.theta)
        self.cov_residual = pd.DataFrame(S, index=pd.Index(self.visits, name=visit),
                                         columns=pd.Index(self.visits, name=visit))
        sd = np.sqrt(np.diag(S))
        self.cor_residual = pd.DataFrame(S / np.outer(sd, sd), index=self.cov_residual.index,
                                         columns=self.cov_residual.columns)
        dev = float(engine.evaluate(self.theta, self.reml, grad=False))
        self.llf = -0.5 * dev
        k, p, n = engine.st.k, engine.p, engine.N
        self.npar = k if self.reml else k + p
        self.aic = -2 * self.llf + 2 * self.npar
        self.bic = -2 * self.llf + np.log(nsub) * self.npar
        self._kr = {}
        self._P = None
        self.cov_fe = self.vcov(ddf)
        self.bse = pd.Series(np.sqrt(np.diag(self.cov_fe)), index=names, name="se")

    _title = "Mixed model for repeated measures"

    # -- pickling: patsy's DesignInfo does not pickle; rebuilt from the formula and frame
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_design_info"] = None
        return state

    @property
    def design_info(self):
        """patsy ``DesignInfo`` of the fixed effects (rebuilt after unpickling)."""
        if self._design_info is None:
            rhs = patsy.ModelDesc([], patsy.ModelDesc.from_formula(self.formula).rhs_termlist)
            self._design_info = patsy.dmatrix(rhs, self._frame, return_type="dataframe").design_info
        return self._design_info

    @property
    def data(self) -> pd.DataFrame:
        """The rows used in the fit (model frame)."""
        return self._frame

    # -- small-sample machinery
    def _kr_parts(self, linear=False):
        key = "linear" if linear else "full"
        if key not in self._kr:
            if "comp" not in self._kr:
                self._kr["comp"] = kr.kr_components(self._engine.kr_groups(self.theta), second=True)
            comp = self._kr["comp"]
            self._kr[key] = kr.adjusted_vcov(comp, self.theta_vcov, linear=linear)
        return self._kr["comp"], self._kr[key]

    def _p_matrices(self):
        if self._P is None:
            if "comp" in self._kr:
                self._P = self._kr["comp"].P
            else:
                self._P = kr.kr_components(self._engine.kr_groups(self.theta), second=False).P
        return self._P

    def vcov(self, ddf=None) -> pd.DataFrame:
        """Covariance of the fixed effects for a df method (Kenward-Roger: adjusted)."""
        ddf = self.ddf if ddf is None else _normalize_ddf(ddf)
        if ddf.startswith("kenward"):
            self._check_kr(ddf)
            V = self._kr_parts(linear=ddf == "kenward-roger-linear")[1]
            return pd.DataFrame(V, index=self.exog_names, columns=self.exog_names)
        return self.cov_fe_model

    def _check_kr(self, ddf):
        if not self.reml:
            raise AnalysisError(f"ddf={ddf!r} needs a REML fit; this MMRM was fitted by ML")

    def _contrast(self, L):
        L = np.atleast_2d(np.asarray(L, float))
        if L.shape[1] != len(self.exog_names):
            raise AnalysisError(f"contrast matrix must have {len(self.exog_names)} columns (one per "
                                f"fixed effect: {', '.join(self.exog_names)}), got {L.shape[1]}")
        return L

    def df(self, L, ddf=None) -> np.ndarray:
        """Denominator df of each row of ``L`` (one-dimensional contrasts) for a df method."""
        L = self._contrast(L)
        ddf = self.ddf if ddf is None else _normalize_ddf(ddf)
        Phi = self.cov_fe_model.to_numpy()
        if ddf == "asymptotic":
            return np.full(L.shape[0], np.inf)
        if ddf == "satterthwaite":
            return kr.satterthwaite_df(L, Phi, self._p_matrices(), self.theta_vcov)
        self._check_kr(ddf)
        comp = self._kr_parts(linear=ddf == "kenward-roger-linear")[0]
        return np.array([kr.kr_ddf(l[None], Phi, comp.P, self.theta_vcov)[0] for l in L])

    def df_contrast(self, L) -> np.ndarray:
        """df of each row of ``L`` with the fit's ``ddf`` method (used by :func:`hipstats.emmeans`)."""
        return self.df(L)

    def test(self, L, ddf=None, rhs=None) -> dict:
        """F test of ``L beta = rhs``: ``statistic, num_df, den_df, p_value``."""
        L = self._contrast(L)
        ddf = self.ddf if ddf is None else _normalize_ddf(ddf)
        beta = self.fe_params.to_numpy()
        Phi = self.cov_fe_model.to_numpy()
        if ddf == "satterthwaite":
            r = kr.satterthwaite_test(L, beta, Phi, self._p_matrices(), self.theta_vcov, rhs)
        elif ddf == "asymptotic":
            d = L @ beta - (0.0 if rhs is None else rhs)
            q = int(np.linalg.matrix_rank(L))
            F = float(d @ np.linalg.pinv(L @ Phi @ L.T) @ d) / q
            r = dict(statistic=F, num_df=q, den_df=np.inf, p_value=float(stats.chi2.sf(F * q, q)))
        else:
            self._check_kr(ddf)
            comp, Va = self._kr_parts(linear=ddf == "kenward-roger-linear")
            r = kr.kr_test(L, beta, Phi, Va, comp.P, self.theta_vcov, rhs)
        return {k: r[k] for k in ("statistic", "num_df", "den_df", "p_value")}

    def summary(self, ddf=None, confidence: float = 0.95) -> pd.DataFrame:
        """Fixed effects: ``estimate, se, df, statistic (t), p_value, ci_low, ci_high``."""
        if not 0 < confidence < 1:
            raise AnalysisError(f"confidence must be between 0 and 1, got {confidence}")
        V = self.vcov(ddf)
        est = self.fe_params
        se = np.sqrt(np.diag(V.to_numpy()))
        return coefficient_table(est, se, self.df(np.eye(len(est)), ddf), confidence)

    def anova(self, ddf=None) -> pd.DataFrame:
        """Type II F tests, one row per model term (as ``car::Anova`` on an mmrm fit).

        The hypothesis of a term is mmrm's ``h_type2_contrast``: the term's coefficients, with
        the higher-order terms that contain it (and add only factors) projected as in car's
        type II. Columns ``term, statistic`` (F), ``num_df, den_df`` (numerator and
        denominator df, as the LMM anova), ``p_value``.
        """
        ddf = self.ddf if ddf is None else _normalize_ddf(ddf)
        rows = []
        for name, L in self._type2_contrasts().items():
            r = self.test(L, ddf)
            rows.append(dict(term=name, statistic=r["statistic"], num_df=r["num_df"],
                             den_df=r["den_df"], p_value=r["p_value"]))
        return pd.DataFrame(rows, columns=["term", "statistic", "num_df", "den_df", "p_value"])

    def _type2_contrasts(self) -> dict:
        di = self.design_info
        X = np.concatenate([g.X.reshape(-1, len(self.exog_names)) for g in self._engine.patterns])
        terms = [t for t in di.terms if t.factors]
        has_icpt = any(not t.factors for t in di.terms)
        cat = {f for f, info in di.factor_infos.items() if info.type == "categorical"}
        slices = di.term_slices
        p = X.shape[1]
        first_cat = next((t for t in terms if any(f in cat for f in t.factors)), None)
        out = {}
        for t in terms:
            cols = np.arange(p)[slices[t]]
            with_icpt = (not has_icpt) and t is first_cat
            nrow = len(cols) - int(with_icpt)
            if nrow == 0:
                continue
            L = np.zeros((nrow, p))
            L[:, cols] = np.c_[np.eye(nrow), -np.ones(nrow)] if with_icpt else np.eye(nrow)
            ft = set(t.factors)
            for u in terms:
                if u is t:
                    continue
                fu = set(u.factors)
                extra = fu - ft
                if not (ft <= fu and len(fu) >= len(ft) and extra and extra <= cat):
                    continue
                ucols = np.arange(p)[slices[u]]
                other = np.setdiff1d(np.arange(p), np.r_[cols, ucols])
                X1, X2, X0 = X[:, cols], X[:, ucols], X[:, other]
                R1 = X1 - X0 @ np.linalg.lstsq(X0, X1, rcond=None)[0] if len(other) else X1
                ret = np.linalg.solve(R1.T @ X1, R1.T @ X2)
                L[:, ucols] = ret[1:] - ret[0] if with_icpt else ret
            L[np.abs(L) < np.sqrt(np.finfo(float).eps)] = 0.0
            out[t.name()] = L
        return out

    def to_frame(self) -> pd.DataFrame:
        """Long tidy frame: fixed effects then residual SDs and correlations by visit."""
        fe = self.summary().reset_index().assign(component="fixed", kind="coef")
        S = self.cov_residual.to_numpy()
        R = self.cor_residual.to_numpy()
        rows = [dict(component="residual", term=f"sd[{v}]", kind="sd", estimate=np.sqrt(S[i, i]))
                for i, v in enumerate(self.visits)]
        rows += [dict(component="residual", term=f"cor[{self.visits[j]},{self.visits[i]}]",
                      kind="cor", estimate=R[i, j])
                 for j in range(len(self.visits)) for i in range(j + 1, len(self.visits))]
        cols = ["component", "term", "kind", "estimate", "se", "df", "statistic", "p_value",
                "ci_low", "ci_high"]
        return pd.concat([fe, pd.DataFrame(rows)], ignore_index=True).reindex(columns=cols)

    def model_info(self) -> pd.Series:
        """Specification and fit statistics."""
        return pd.Series({"formula": self.formula, "participant": self.participant, "visit": self.visit,
                          "covariance": self.covariance, "covariance_name": COVARIANCES[self.covariance],
                          "method": "REML" if self.reml else "ML", "ddf": self.ddf,
                          "n_rows": self.n_rows, "n_participants": self.n_participants,
                          "n_visits": len(self.visits), "llf": self.llf, "aic": self.aic,
                          "bic": self.bic, "converged": self.converged})

    def plot(self, ax=None):
        """Heat map of the residual correlation across visits; returns the Figure."""
        from hipstats.plots.correlation import correlation_heatmap

        return correlation_heatmap(self.cor_residual, ax=ax, label="residual correlation",
                                   title=f"Residual correlation ({COVARIANCES[self.covariance]})")

    def __repr__(self):
        return (f"MMRMResult({self.formula!r}, covariance={self.covariance!r}, "
                f"{'REML' if self.reml else 'ML'}, ddf={self.ddf!r}, n_rows={self.n_rows}, "
                f"n_participants={self.n_participants}, llf={self.llf:.3f}, "
                f"converged={self.converged})")

    def _repr_html_(self):
        info = self.model_info()
        head = ", ".join(f"<b>{html.escape(str(k))}</b>: {html.escape(str(v))}" for k, v in info.items())
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        cov = self.cov_residual.reset_index().rename(columns={self.visit: "visit"})
        cov.columns = [str(c) for c in cov.columns]
        return (f"<div><h4>{html.escape(self._title)}</h4><p>{head}</p>"
                + (f"<ul class=\"hipstats-notes\">{notes}</ul>" if notes else "")
                + f"<p><b>Fixed effects</b></p>{html_table(self.summary().reset_index())}"
                f"<p><b>Residual covariance</b></p>{html_table(cov)}</div>")
