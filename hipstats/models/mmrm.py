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

The code is split by topic: the covariance structures are :mod:`hipstats.models._mmrm_covariance`,
the model frame and visit patterns :mod:`hipstats.models._mmrm_frame`, the likelihood engine and
optimiser :mod:`hipstats.models._mmrm_engine`; this module holds :func:`fit_mmrm` and
:class:`MMRMResult`.

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
import warnings

import numpy as np
import pandas as pd
import patsy
from scipy import stats

from hipstats.errors import AnalysisError, ConvergenceWarning
from hipstats.models import kenward_roger as kr
from hipstats.models._mmrm_covariance import COVARIANCES, Structure, normalize_covariance
from hipstats.models._mmrm_engine import CONV_TOL, Engine, optimize_theta
from hipstats.models._mmrm_engine import LOG2PI  # noqa: F401 - stays importable from here
from hipstats.models._mmrm_frame import (
    build_frame,
    empirical_cov,
    group_patterns,
    rank_problem,
    support_problem,
)
from hipstats.results import (
    DEPRECATED,
    PARTICIPANT_COLUMN,
    Result,
    html_table,
    renamed_attribute,
    resolve_participant,
)
from hipstats.stats.inference import coefficient_table

__all__ = ["fit_mmrm", "MMRMResult", "COVARIANCES", "DDF_METHODS"]

#: Denominator df methods of :meth:`MMRMResult.summary`, :meth:`~MMRMResult.anova` and EMMs.
DDF_METHODS = ("satterthwaite", "kenward-roger", "kenward-roger-linear", "asymptotic")
_DDF_ALIASES = {"kr": "kenward-roger", "kenward_roger": "kenward-roger", "satt": "satterthwaite",
                "kenward-roger linear": "kenward-roger-linear", "z": "asymptotic", "none": "asymptotic"}


def _normalize_ddf(ddf: str) -> str:
    key = str(ddf).strip().lower().replace("_", "-")
    key = _DDF_ALIASES.get(key, key)
    if key not in DDF_METHODS:
        raise AnalysisError(f"unknown ddf={ddf!r}; use one of {DDF_METHODS}")
    return key


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
    cov_list = [normalize_covariance(covariance)]
    for c in fallback or ():
        c = normalize_covariance(c)
        if c not in cov_list:
            cov_list.append(c)
    ddf = _normalize_ddf(ddf)
    if ddf.startswith("kenward") and not reml:
        raise AnalysisError("Kenward-Roger df need a REML fit (reml=True); use "
                            "ddf='satterthwaite' for ML")
    frame, ydf, Xdf, levels, vpos, notes = build_frame(formula, data, participant, visit, visits, eval_env)
    X = Xdf.to_numpy(float)
    y = ydf.to_numpy(float).ravel()
    N, p = X.shape
    problem = rank_problem(X, list(Xdf.columns))
    if problem:
        raise AnalysisError(problem)
    m = len(levels)
    patterns, nsub, mask, counts = group_patterns(frame, X, y, participant, vpos, m)
    if nsub < 2:
        raise AnalysisError(f"an MMRM needs at least 2 participants ({participant!r}), got {nsub}")
    tried = []
    for i, cov in enumerate(cov_list):
        structure = Structure(cov, m)
        why = support_problem(structure, patterns, levels, N, p)
        if why is None:
            engine = Engine(patterns, structure, p, N)
            S0 = empirical_cov(patterns, X, y, m)
            theta, H, info = optimize_theta(engine, structure.start(S0), reml, maxiter)
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
