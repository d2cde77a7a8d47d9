"""Linear mixed models written in lme4's formula syntax, fitted the lme4 way and fast.

The model is

.. math::

    y = X\\beta + Zb + \\varepsilon,\\qquad
    b \\sim N(0, \\sigma^2 \\Lambda_\\theta\\Lambda_\\theta^\\top),\\qquad
    \\varepsilon \\sim N(0, \\sigma^2 I),

written as lme4 does: ``fit_lmm("ir ~ week * arm + (1 + week | participant_id) + (1 | site)",
data)``, with correlated ``(a | g)``, uncorrelated ``(a || g)``, nested ``(1 | g1/g2)`` and
interaction ``(1 | g1:g2)`` terms on one or several grouping factors, crossed or nested
(:mod:`hipstats.models.formula` parses them; patsy builds the fixed part with R's treatment
coding). ``res.anova(type=3, ddf="kenward-roger")`` gives lmerTest's F tests
(:mod:`hipstats.models.anova`).

Two engines evaluate the same profiled deviance. When every random effect shares one factor
(the participant), optionally with one intercept nested in it (``(1 | participant_id:side)``),
the per-participant sufficient statistics of :mod:`hipstats.models._lmm_core` are used, with
analytic gradients. Anything else (crossed factors, several nested levels, uncorrelated terms)
goes to the blocked Cholesky engine of :mod:`hipstats.models._lmm_blocked` (MixedModels.jl's
factorisation; Bates, Alday & Kokandakar 2025), optimised by BOBYQA as lme4.

:func:`fit_lmm` minimises lme4's profiled deviance over the relative covariance factor
:math:`\\theta` (Bates et al. 2015, sections 3.4-3.6). With :math:`L_\\theta L_\\theta^\\top =
\\Lambda^\\top Z^\\top Z\\Lambda + I`, :math:`R_X` the Cholesky factor of the Schur complement
for :math:`X` and :math:`r^2_\\theta` the minimal penalised residual sum of squares,

.. math::

    d_{ML}(\\theta) = \\log|L_\\theta|^2 + n\\left[1 + \\log\\frac{2\\pi r^2_\\theta}{n}\\right],
    \\quad
    d_{REML}(\\theta) = \\log|L_\\theta|^2 + \\log|R_X|^2
        + (n-p)\\left[1 + \\log\\frac{2\\pi r^2_\\theta}{n-p}\\right].

With one grouping factor the system is block diagonal; one deviance evaluation works from
per-participant sufficient statistics (:math:`Z_i^\\top Z_i, Z_i^\\top X_i, Z_i^\\top y_i`) in
:math:`O(N)` with vectorised tiny Cholesky factors, and the analytic gradient is used by a
bounded quasi-Newton optimiser (L-BFGS-B, lower bound 0 on the diagonal of :math:`\\Lambda`)
with a Nelder-Mead polish when the gradient check fails.

Satterthwaite degrees of freedom follow lmerTest (Kuznetsova, Brockhoff & Christensen 2017):
for a contrast :math:`l`, :math:`\\nu = 2 (l^\\top C l)^2 / (g^\\top A g)` with
:math:`C(\\theta,\\sigma) = \\sigma^2 (R_X^\\top R_X)^{-1}`, :math:`g_j = l^\\top (\\partial C /
\\partial\\varphi_j) l` and :math:`A = 2 H^{-1}`, :math:`H` the Hessian of the (non-profiled)
deviance in :math:`\\varphi = (\\theta, \\sigma)`.

The code is split by topic: the model frame and specification (formula -> design matrices,
engine choice, identifiability checks) are :mod:`hipstats.models._lmm_frame`, the optimiser
(L-BFGS-B / BOBYQA, boundary escape, lme4's convergence check) and the numerical derivatives
are :mod:`hipstats.models._lmm_optim`; this module holds the public API (:func:`fit_lmm`,
:func:`fit_arrays`, :func:`lrt`) and :class:`LMMResult`.

References
----------
Bates D, Maechler M, Bolker B, Walker S (2015). Fitting linear mixed-effects models using
lme4. Journal of Statistical Software 67(1), 1-48. doi:10.18637/jss.v067.i01

Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package: tests in linear mixed
effects models. Journal of Statistical Software 82(13), 1-26. doi:10.18637/jss.v082.i13

Bates D, Alday PM, Kokandakar AH (2025). Mixed-model log-likelihood evaluation via a blocked
Cholesky factorization. arXiv:2505.11674.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from hipstats.models.lmm import fit_lmm
>>> rng = np.random.default_rng(0)
>>> pid = np.repeat(np.arange(40), 5); week = np.tile([0., 3, 6, 9, 12], 40)
>>> value = 36 + rng.normal(0, 8, 40)[pid] + 0.3 * week + rng.normal(0, 2, 200)
>>> df = pd.DataFrame({"participant_id": pid, "week": week, "value": value})
>>> res = fit_lmm("value ~ week + (1 | participant_id)", df)
>>> round(float(res.fe_params["week"]), 2)
0.32
"""

from __future__ import annotations

import html
import warnings

import numpy as np
import pandas as pd
import patsy
from scipy import stats

from hipstats.errors import AnalysisError, ConvergenceWarning, SingularFitWarning
from hipstats.models._lmm_blocked import conditional_modes
from hipstats.models._lmm_frame import ModelSpec, legacy_formula, one_engine_z
from hipstats.models._lmm_optim import (
    GRAD_TOL,
    SINGULAR_TOL,
    blas_single_thread,
    grad_check,
    num_hessian,
    optimize_theta,
    richardson_jacobian,
)
from hipstats.results import (
    DEPRECATED,
    Result,
    html_table,
    renamed_attribute,
    resolve_confidence,
    resolve_participant,
)
from hipstats.stats.inference import coefficient_table

__all__ = ["fit_lmm", "fit_arrays", "LMMResult", "lrt"]

# lme4's tolerances GRAD_TOL (check.conv.grad, 2e-3) and SINGULAR_TOL (isSingular, 1e-4) are
# defined in hipstats.models._lmm_optim (imported above, so hipstats.models.lmm.GRAD_TOL works).

#: Richardson levels of the numerical theta block of the Satterthwaite Hessian (1: one central
#: difference, error O(h^2); df within 5e-6 of 4 levels on every test_lmm fixture).
SATT_RICHARDSON = 1


# --------------------------------------------------------------------------- public API
def fit_lmm(formula, data, participant=None, re_formula="1", *, nested=None, reml=True,
            engine="fast", maxiter=1000, warn=True, groups=DEPRECATED):
    """Fit a linear mixed model written in lme4's formula syntax.

    Parameters
    ----------
    formula : str
        lme4 formula: ``"ir ~ week * arm + (1 + week | participant_id) + (1 | site)"``. The
        fixed part is patsy code with R's treatment coding (first level of a factor is the
        reference; ``C(arm, Treatment('control'))`` picks another); random terms are
        ``(expr | g)`` (correlated), ``(expr || g)`` (uncorrelated), ``(1 | g1/g2)``
        (nested), ``(1 | g1:g2)``, on one or several grouping factors, crossed or nested;
        grouping columns may be numbers or strings. Column names that are Python keywords
        work as they are (``yield``); other names go in backticks. See
        :mod:`hipstats.models.formula`.
    data : pandas.DataFrame
        Long data, one row per observation. Rows with a missing value in any variable used
        (response, fixed and random effects, grouping columns) are dropped.
    participant, re_formula, nested : str, optional
        The short form for the participant as the grouping factor:
        ``fit_lmm("value ~ week", data, participant="participant_id", re_formula="1 + week",
        nested="side")`` means exactly
        ``"value ~ week + (1 + week | participant_id) + (1 | participant_id:side)"``.
        ``re_formula`` is the design within ``participant`` and may not contain ``|``. Leave
        ``participant`` out when the formula has its random terms (the formula names the
        grouping factor).
    reml : bool, default True
        REML (True) or maximum likelihood (False).
    engine : {"fast", "statsmodels"}
        ``"fast"``: lme4's profiled deviance (per-participant sufficient statistics when all
        random effects share one factor, the blocked Cholesky engine otherwise).
        ``"statsmodels"``: statsmodels ``MixedLM`` (default settings), wrapped in the same
        result (cross-checks; one grouping factor, optionally one nested intercept).
    maxiter : int, default 1000
        Iteration limit of the optimiser.
    warn : bool, default True
        Emit :class:`~hipstats.errors.ConvergenceWarning` and
        :class:`~hipstats.errors.SingularFitWarning`.
    groups : str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

    Returns
    -------
    LMMResult

    Notes
    -----
    The variance parameters are lme4's relative covariance factor ``theta``: for each term in
    lme4's order (most levels first; ties keep the written order unless a later term has
    more levels, then ``rev(order(levels))``), the lower triangle of the Cholesky factor of
    its covariance over ``sigma^2``, column-major, diagonal bounded below by 0. The fit is
    declared converged when lme4's gradient criterion ``max(min(|g|, |H^{-1/2} g|)) < 0.002``
    holds and singular when any bounded ``theta`` is below ``1e-4``.

    References
    ----------
    Bates D, Maechler M, Bolker B, Walker S (2015). J Stat Softw 67(1). doi:10.18637/jss.v067.i01

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.models.lmm import fit_lmm
    >>> rng = np.random.default_rng(1)
    >>> pid = np.repeat(np.arange(60), 5); week = np.tile([0., 3, 6, 9, 12], 60)
    >>> y = 36 + rng.normal(0, 6, 60)[pid] + (0.5 + rng.normal(0, .3, 60)[pid]) * week
    >>> df = pd.DataFrame({"participant_id": pid, "week": week,
    ...                    "value": y + rng.normal(0, 1, 300)})
    >>> res = fit_lmm("value ~ week + (1 + week | participant_id)", df)
    >>> res.summary().loc["week", ["estimate", "df"]].round(2).tolist()
    [0.48, 59.0]
    """
    eval_env = patsy.EvalEnvironment.capture(1)
    participant = resolve_participant(participant, where="fit_lmm", default=None, groups=groups)
    if participant is not None:
        formula = legacy_formula(formula, participant, re_formula, nested)
    elif nested is not None or str(re_formula).strip() not in ("1", "~1", "~ 1"):
        raise AnalysisError("re_formula= and nested= need participant=; or write the random terms "
                            "in the formula, e.g. 'value ~ week + (1 + week | participant_id)'")
    spec = ModelSpec(formula, data, eval_env)
    return _fit_spec(spec, reml=reml, engine=engine, maxiter=maxiter, warn=warn)


def fit_arrays(X, y, Z, participant=None, *, exog_names, re_names, reml=True, maxiter=1000,
               warn=True, theta0=None, groups=DEPRECATED):
    """:func:`fit_lmm` on ready design arrays (fast path of simulation power).

    ``X`` (n, p) fixed effects, ``y`` (n,), ``Z`` (n, q) correlated random effects per
    participant, ``participant`` (n,) the participant label of each row (``groups`` is its
    deprecated alias); ``theta0`` an optional start for ``theta``. Same optimiser, checks and
    :class:`LMMResult` as :func:`fit_lmm` (without a model frame: no ``predict``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pid = np.repeat(np.arange(30), 4); week = np.tile([0., 4, 8, 12], 30)
    >>> y = 40 + rng.normal(0, 5, 30)[pid] + 0.5 * week + rng.normal(0, 1, 120)
    >>> X = np.column_stack([np.ones(120), week])
    >>> fit = fit_arrays(X, y, np.ones((120, 1)), pid, exog_names=["Intercept", "week"],
    ...                  re_names=["Intercept"])
    >>> round(float(fit.fe_params["week"]), 1)
    0.5
    """
    participant = resolve_participant(participant, where="fit_arrays", default=None, groups=groups)
    if participant is None:
        raise TypeError("fit_arrays() needs participant= (the participant label of each row)")
    spec = ModelSpec.from_arrays(X, y, Z, participant, exog_names=exog_names, re_names=re_names)
    return _fit_spec(spec, reml=reml, engine="fast", maxiter=maxiter, warn=warn, theta0=theta0)



def _fit_spec(spec, *, reml, engine, maxiter, warn, theta0=None):
    if engine not in ("fast", "statsmodels"):
        raise AnalysisError(f"engine must be 'fast' or 'statsmodels', got {engine!r}")
    prob = spec.problem()
    if engine == "fast":
        with blas_single_thread():
            theta, crit, grad, hess, nfev, msg = optimize_theta(prob, reml, maxiter, theta0)
        converged = crit <= GRAD_TOL
        info = dict(engine="fast", grad_crit=crit, gradient=grad, hessian=hess, nfev=nfev,
                    message=msg, algorithm="blocked" if spec.kind == "blocked" else "one")
    else:
        if spec.kind != "one":
            raise AnalysisError("engine='statsmodels' handles one grouping factor (plus one "
                                f"nested intercept); {spec.formula!r} needs engine='fast'")
        theta, converged, info = _fit_statsmodels(spec, prob, reml, maxiter)
    res = LMMResult(spec, prob, theta, reml=reml, converged=converged, info=info)
    if warn and not converged:
        warnings.warn(f"mixed model {spec.formula!r} did not converge ({info['engine']} engine: "
                      f"{info.get('message', '')}; gradient criterion "
                      f"{info.get('grad_crit', float('nan')):.3g} > {GRAD_TOL})",
                      ConvergenceWarning, stacklevel=3)
    if warn and res.singular:
        warnings.warn(f"singular fit for {spec.formula!r}: a variance is ~0 or a correlation "
                      f"is +/-1 (theta = {np.round(res.theta, 5).tolist()}); simplify the "
                      "random effects", SingularFitWarning, stacklevel=3)
    return res


def _fit_statsmodels(spec, prob, reml, maxiter):
    from statsmodels.regression.mixed_linear_model import MixedLM

    q = prob.q
    Zall = one_engine_z(spec)
    codes = spec.terms[spec.nest[0] if spec.nest else 0].codes
    re_names = spec.terms[spec.nest[0] if spec.nest else 0].names
    exog_vc = None
    if spec.nest is not None:
        Zn = Zall[:, q:]
        exog_vc = {"nested": {}}
        for g in np.unique(codes):
            exog_vc["nested"][g] = Zn[codes == g]
    model = MixedLM(pd.Series(spec.y, name=spec.yname),
                    pd.DataFrame(spec.X, columns=spec.exog_names), groups=codes,
                    exog_re=pd.DataFrame(Zall[:, :q], columns=re_names), exog_vc=exog_vc)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        smres = model.fit(reml=reml, maxiter=maxiter)
    scale = float(smres.scale)
    cov = np.asarray(smres.cov_re, float) / scale
    evals, evecs = np.linalg.eigh(0.5 * (cov + cov.T))
    cov = (evecs * np.maximum(evals, 0)) @ evecs.T
    try:
        T = np.linalg.cholesky(cov + 1e-14 * np.eye(q))
    except np.linalg.LinAlgError:
        T = np.diag(np.sqrt(np.maximum(np.diag(cov), 0)))
    theta = [T[i, j] for (i, j) in prob.tri]
    if spec.nest is not None:
        theta.append(float(np.sqrt(max(float(np.asarray(smres.vcomp)[0]) / scale, 0.0))))
    theta = np.asarray(theta)
    crit, grad, _ = grad_check(prob, np.maximum(theta, prob.lower), reml)
    info = dict(engine="statsmodels", engine_result=smres, engine_llf=float(smres.llf),
                grad_crit=crit, gradient=grad, algorithm="one",
                message=f"statsmodels converged={smres.converged}",
                engine_warnings=[str(w.message) for w in caught])
    return theta, bool(smres.converged), info


def lrt(model_small, model_big):
    """Likelihood-ratio test between nested mixed models (refitted by ML, as lme4's anova).

    .. math:: \\chi^2 = 2(\\ell_{big} - \\ell_{small}),\\qquad
        df = k_{big} - k_{small}

    Parameters
    ----------
    model_small, model_big : LMMResult
        Nested models fitted to the same rows; REML fits are refitted with ML.

    Returns
    -------
    pandas.DataFrame
        One row per model: npar, aic, bic, loglik, deviance, statistic (chi-squared), df, p_value.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.models.lmm import fit_lmm, lrt
    >>> rng = np.random.default_rng(2)
    >>> pid = np.repeat(np.arange(30), 4); week = np.tile([0., 4, 8, 12], 30)
    >>> df = pd.DataFrame({"participant_id": pid, "week": week,
    ...     "value": rng.normal(0, 5, 30)[pid] + 0.5 * week + rng.normal(0, 2, 120)})
    >>> m0 = fit_lmm("value ~ 1 + (1 | participant_id)", df)
    >>> m1 = fit_lmm("value ~ week + (1 | participant_id)", df)
    >>> bool(lrt(m0, m1).loc["model_big", "p_value"] < 0.001)
    True
    """
    small, big = (m.refit_ml() if m.reml else m for m in (model_small, model_big))
    if small.n_rows != big.n_rows:
        raise AnalysisError(f"models were fitted to different numbers of rows ({small.n_rows} vs "
                            f"{big.n_rows}); drop missing values first so both use the same rows")
    k_s, k_b = small.npar, big.npar
    if k_b <= k_s:
        raise AnalysisError(f"model_big must have more parameters than model_small "
                            f"({k_b} vs {k_s}); pass the smaller model first")
    chisq = max(0.0, 2.0 * (big.llf - small.llf))
    ddf = k_b - k_s
    out = pd.DataFrame({
        "formula": [small.formula, big.formula],
        "re_formula": [small.re_formula, big.re_formula],
        "npar": [k_s, k_b], "aic": [small.aic, big.aic], "bic": [small.bic, big.bic],
        "loglik": [small.llf, big.llf], "deviance": [-2 * small.llf, -2 * big.llf],
        "statistic": [np.nan, chisq], "df": [np.nan, ddf],
        "p_value": [np.nan, float(stats.chi2.sf(chisq, ddf))],
    }, index=pd.Index(["model_small", "model_big"], name="model"))
    return out


# --------------------------------------------------------------------------- result
class LMMResult(Result):
    """A fitted linear mixed model (see :func:`fit_lmm`).

    Attributes
    ----------
    fe_params : pandas.Series
        Fixed-effect estimates :math:`\\hat\\beta`.
    cov_fe : pandas.DataFrame
        :math:`\\hat\\sigma^2 (R_X^\\top R_X)^{-1}`.
    bse : pandas.Series
        Standard errors of the fixed effects.
    design_info : patsy.DesignInfo
        Fixed-effects design, for building rows for new data
        (``patsy.build_design_matrices([res.design_info], newdata)``).
    data : pandas.DataFrame
        The model frame actually used (rows with missing values dropped).
    formula, re_formula, reml, engine
        The formula as written, its random terms as fitted (``||`` and ``/`` expanded), the
        method and the engine.
    llf, aic, bic : float
        Log-likelihood (REML criterion for REML fits, as lme4's ``logLik``), AIC, BIC with
        ``npar = p + len(theta) + 1``.
    n_rows : int
        Rows fitted (``nobs`` is a deprecated alias).
    ngroups : int
        Levels of the grouping factor of the first random term written (e.g. participants);
        ``ngrps`` has every factor, as lme4's ``ngrps``.
    converged, singular : bool
    sigma2 : float
        Residual variance.
    theta : numpy.ndarray
        Relative covariance factor, lme4's ``getME(fit, "theta")`` (terms in lme4's order).
    deviance, npar, sigma, fit_info
        -2 llf, number of parameters, residual SD, and optimiser details (engine, gradient
        criterion, gradient and Hessian of the profiled deviance, evaluations, message).
    varcomp : pandas.DataFrame
        SDs and correlations (like ``as.data.frame(VarCorr(fit))``).
    """

    nobs = renamed_attribute("n_rows", "nobs")

    def __init__(self, spec, prob, theta, *, reml, converged, info):
        self._spec, self._prob = spec, prob
        self.confidence = 0.95  # of summary()'s intervals; summary(confidence=) gives others
        self._theta_engine = np.asarray(theta, float)
        self.theta = spec.theta_to_lme4(self._theta_engine)
        self.reml = bool(reml)
        self.converged = bool(converged)
        self.engine = info["engine"]
        self.fit_info = info
        st = prob.solve(self._theta_engine)
        self._st = st
        n, p = prob.n, prob.p
        self.n_rows = n
        first = spec.terms[0]
        self.ngroups = first.nlev
        self.ngrps = {spec.terms[i].group: spec.terms[i].nlev for i in spec.order}
        self.sigma2 = float(st["r2"] / (n - p if reml else n))
        self.sigma = float(np.sqrt(self.sigma2))
        names = spec.exog_names
        self.fe_params = pd.Series(st["beta"], index=names, name="estimate")
        self._unsc = prob.unscaled_cov_beta(st=st)
        self.cov_fe = pd.DataFrame(self.sigma2 * self._unsc, index=names, columns=names)
        self.bse = pd.Series(np.sqrt(np.diag(self.cov_fe)), index=names, name="se")
        self.deviance = float(prob.deviance(self._theta_engine, reml, st=st))
        self.llf = -0.5 * self.deviance
        self.npar = p + prob.ntheta + 1
        self.aic = -2 * self.llf + 2 * self.npar
        self.bic = -2 * self.llf + np.log(n) * self.npar
        bounded = np.isfinite(prob.lower)
        self.singular = bool(np.any(self._theta_engine[bounded] < SINGULAR_TOL))
        self._satt = None
        self._kr = None
        self._blups = None

    # -- specification passthrough
    formula = property(lambda self: self._spec.formula)
    re_formula = property(lambda self: self._spec.re_formula)
    design_info = property(lambda self: self._spec.design_info)
    data = property(lambda self: self._spec.frame)
    exog_names = property(lambda self: list(self._spec.exog_names))
    #: The fixed-effects model matrix actually fitted (``n_rows x p``).
    model_matrix = property(lambda self: self._spec.X)

    # -- variance components
    def re_terms(self):
        """``[(TermData, T)]`` in lme4's order, ``T`` the term's relative factor."""
        out, pos = [], 0
        for i in self._spec.order:
            t = self._spec.terms[i]
            T = np.zeros((t.k, t.k))
            for j in range(t.k):
                for r in range(j, t.k):
                    T[r, j] = self.theta[pos]
                    pos += 1
            out.append((t, T))
        return out

    def _group_labels(self):
        """lme4's VarCorr names: a factor's second term is ``g.1``, its third ``g.2``."""
        seen, out = {}, []
        for t, _ in self.re_terms():
            k = seen.get(t.group, 0)
            out.append(t.group if k == 0 else f"{t.group}.{k}")
            seen[t.group] = k + 1
        return out

    @property
    def cov_re(self):
        """Covariance matrix of the random effects of each term.

        A DataFrame when the model has one random term (e.g. ``(1 + week | participant_id)``),
        otherwise a dict ``{group label: DataFrame}`` with lme4's VarCorr labels.
        """
        mats = {}
        for lab, (t, T) in zip(self._group_labels(), self.re_terms()):
            mats[lab] = pd.DataFrame(self.sigma2 * T @ T.T, index=t.names, columns=t.names)
        if len(mats) == 1:
            return next(iter(mats.values()))
        return mats

    @property
    def varcomp(self) -> pd.DataFrame:
        """Tidy variance components: one row per SD (``var2`` empty) and per correlation.

        Columns ``group, var1, var2, vcov, sdcor`` as R's ``as.data.frame(VarCorr(fit))``,
        terms in lme4's order.
        """
        rows = []
        for g, (t, T) in zip(self._group_labels(), self.re_terms()):
            cov = self.sigma2 * T @ T.T
            names = t.names
            for i, nm in enumerate(names):
                rows.append((g, nm, None, cov[i, i], np.sqrt(cov[i, i])))
            for j in range(len(names)):
                for i in range(j + 1, len(names)):
                    den = np.sqrt(cov[i, i] * cov[j, j])
                    rows.append((g, names[j], names[i], cov[i, j],
                                 cov[i, j] / den if den > 0 else np.nan))
        rows.append(("Residual", None, None, self.sigma2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "var1", "var2", "vcov", "sdcor"])

    def _term_blups(self):
        if self._blups is None:
            terms = self.re_terms()
            self._blups = conditional_modes([t for t, _ in terms], [T for _, T in terms],
                                            self._spec.X, self._spec.y, self.fe_params)
        return self._blups

    def ranef(self) -> dict:
        """BLUPs (conditional modes) per grouping factor, as lme4's ``ranef``.

        Returns ``{factor: DataFrame}``, one row per level (``g1:g2`` levels are written
        ``a:b``), one column per random effect; terms on the same factor share one frame.
        """
        out: dict = {}
        for (t, _), b in zip(self.re_terms(), self._term_blups()):
            df = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=t.names)
            if t.group in out:
                out[t.group] = out[t.group].join(df, rsuffix=".1")
            else:
                out[t.group] = df
        return out

    @property
    def random_effects(self) -> pd.DataFrame:
        """BLUPs per level of the grouping factor when there is one (see :meth:`ranef`)."""
        re_ = self.ranef()
        if len(re_) != 1:
            raise AnalysisError(f"the model has {len(re_)} grouping factors "
                                f"({', '.join(re_)}); use res.ranef() for all of them")
        return next(iter(re_.values()))

    # -- inference
    def _satterthwaite_parts(self):
        """``A = 2 H^{-1}`` and ``dC/dpsi`` in ``psi = (theta * d, sigma)``.

        The df are invariant to a smooth reparametrisation of the variance parameters, so
        they are computed in the well-conditioned scaled parameters the optimiser uses.
        One-factor engine: ``dC/dpsi`` is analytic (``C = sigma^2 S_xx^{-1}``, see
        :meth:`~hipstats.models._lmm_core.Problem.dsxx_dtheta`); so are the ``sigma`` row
        and column of the Hessian ``H`` of the deviance ``f`` in ``(theta, sigma)``. At
        ``sigma = sigma_hat(theta)`` the profiled deviance ``d`` has Hessian
        ``H_dd = H_tt - H_ts H_ts' / H_ss`` (``df/dsigma = 0`` there), so the ``theta`` block
        ``H_tt`` is recovered from the Hessian of ``d`` that the convergence check already
        computed; without one (every parameter at a bound) it is the central-difference
        Jacobian of the analytic gradient (step ``1e-3 max(|psi|, 0.05)``,
        :data:`SATT_RICHARDSON` Richardson levels). Blocked engine: central differences of
        the deviance and of ``C`` throughout, as lmerTest does with numDeriv.
        """
        if self._satt is None:
            with blas_single_thread():
                if getattr(self._prob, "analytic", True):
                    self._satt = self._compute_satterthwaite_parts()
                else:
                    self._satt = self._numeric_satterthwaite_parts()
        return self._satt

    def _numeric_satterthwaite_parts(self):
        prob, reml = self._prob, self.reml
        sc = prob.theta_scale
        k = prob.ntheta
        psi0 = np.r_[self._theta_engine * sc, self.sigma]

        def f(psi):
            return prob.deviance_varpar(np.r_[psi[:k] / sc, psi[k]], reml)

        H = num_hessian(f, psi0)
        A = 2.0 * np.linalg.pinv(H)
        s2 = self.sigma2
        jac = []
        h = 1e-4 * np.maximum(np.abs(psi0[:k]), 0.05)
        for j in range(k):
            e = np.zeros(k)
            e[j] = h[j]
            Pp = prob.unscaled_cov_beta((psi0[:k] + e) / sc)
            Pm = prob.unscaled_cov_beta((psi0[:k] - e) / sc)
            jac.append(s2 * (Pp - Pm) / (2 * h[j]))
        jac.append(2.0 * self.sigma * self._unsc)
        return A, jac

    def _compute_satterthwaite_parts(self):
        prob, reml = self._prob, self.reml
        sc = prob.theta_scale
        sigma, s2 = self.sigma, self.sigma2
        m = (prob.n - prob.p) if reml else prob.n
        theta = self._theta_engine

        def grad_theta(phi):          # d deviance / d phi at fixed sigma
            _, gL, gX, gr = prob.grad_parts(phi / sc, reml)
            return (gL + gX + gr / s2) / sc

        _, _, _, gr = prob.grad_parts(theta, reml)
        h_ts = -2.0 * gr / sigma ** 3 / sc
        h_ss = 6.0 * self._st["r2"] / sigma ** 4 - 2.0 * m / s2
        hprof = self.fit_info.get("hessian") if self.engine == "fast" else None
        if hprof is not None:
            Htt = hprof / np.outer(sc, sc) + np.outer(h_ts, h_ts) / h_ss
        else:
            Htt = richardson_jacobian(grad_theta, theta * sc, r=SATT_RICHARDSON)
        k = prob.ntheta
        H = np.empty((k + 1, k + 1))
        H[:k, :k] = 0.5 * (Htt + Htt.T)
        H[:k, k] = H[k, :k] = h_ts
        H[k, k] = h_ss
        A = 2.0 * np.linalg.pinv(H)
        P = self._unsc
        jac = [-s2 * (P @ D @ P) / sc[j]
               for j, D in enumerate(prob.dsxx_dtheta(st=self._st))]
        jac.append(2.0 * sigma * P)
        return A, jac

    def check_contrast(self, L) -> np.ndarray:
        """``L`` as a ``(k, p)`` float matrix over the fixed effects (error naming them)."""
        L = np.atleast_2d(np.asarray(L, float))
        p = self._prob.p
        if L.shape[1] != p:
            raise AnalysisError(f"contrast matrix must have {p} columns (one per fixed effect: "
                                f"{', '.join(self.exog_names)}), got {L.shape[1]}")
        return L

    def df_satterthwaite(self, L) -> np.ndarray:
        """Satterthwaite denominator df for each row of a contrast matrix ``L`` (k x p).

        .. math:: \\nu_l = \\frac{2 (l^\\top C l)^2}{g^\\top A g},\\quad
            g_j = l^\\top \\frac{\\partial C}{\\partial \\varphi_j} l,\\quad A = 2H^{-1}

        as lmerTest's ``contest1D``; ``H`` is the Hessian of the deviance in
        ``(theta, sigma)``.

        Examples
        --------
        >>> # res.df_satterthwaite(np.eye(len(res.fe_params)))   # df of every coefficient
        """
        L = self.check_contrast(L)
        A, jac = self._satterthwaite_parts()
        C = self.cov_fe.to_numpy()
        out = np.empty(L.shape[0])
        for r, l in enumerate(L):
            v = l @ C @ l
            g = np.array([l @ Jk @ l for Jk in jac])
            den = g @ A @ g
            out[r] = 2.0 * v ** 2 / den if den > 0 else np.inf
        return out

    def ddf_method(self, ddf) -> str:
        """Canonical name of a df method: ``satterthwaite`` or ``kenward-roger`` (REML only)."""
        key = str(ddf).strip().lower().replace("_", "-").replace(" ", "-")
        key = {"kr": "kenward-roger", "kenward-roger": "kenward-roger", "kenwardroger":
               "kenward-roger", "satterthwaite": "satterthwaite", "satt": "satterthwaite"
               }.get(key)
        if key is None:
            raise AnalysisError(f"ddf must be 'satterthwaite' or 'kenward-roger', got {ddf!r}")
        if key == "kenward-roger" and not self.reml:
            raise AnalysisError("Kenward-Roger df need a REML fit (as pbkrtest); refit with "
                                "reml=True or use ddf='satterthwaite'")
        return key

    def summary(self, confidence: float | None = None, ddf: str = "satterthwaite", *,
                alpha: float | None = None) -> pd.DataFrame:
        """Fixed effects: estimate, se, df, statistic (t), p_value, CI at ``confidence``.

        ``confidence`` defaults to the result's level (0.95); ``alpha=`` is the deprecated way
        to set it (``confidence = 1 - alpha``).

        ``ddf="satterthwaite"`` (lmerTest's default) or ``"kenward-roger"``: then ``se`` is
        from the Kenward-Roger adjusted covariance and ``df`` the Kenward-Roger df, as
        ``summary(fit, ddf = "Kenward-Roger")`` in lmerTest (pbkrtest).
        """
        confidence = resolve_confidence(self.confidence if confidence is None else confidence, alpha,
                                        where="LMMResult.summary")
        key = self.ddf_method(ddf)
        est = self.fe_params
        eye = np.eye(len(est))
        if key == "kenward-roger":
            kr = self.kenward_roger()
            se = pd.Series(np.sqrt(np.diag(kr.vcov_adj)), index=est.index, name="se")
            df = np.array([kr.ddf_1d(row) for row in eye])
        else:
            se = self.bse
            df = self.df_satterthwaite(eye)
        return coefficient_table(est, se, df, confidence)

    def kenward_roger(self):
        """The Kenward-Roger machinery of this fit (cached), see :mod:`hipstats.models.anova`."""
        if self._kr is None:
            from hipstats.models.anova import kenward_roger_for

            self._kr = kenward_roger_for(self)
        return self._kr

    def anova(self, type: int | str = 3, ddf: str = "satterthwaite") -> pd.DataFrame:
        """F tests of every fixed-effects term, as lmerTest's ``anova(fit, type, ddf)``.

        See :func:`hipstats.models.anova.anova`.
        """
        from hipstats.models.anova import anova

        return anova(self, type=type, ddf=ddf)

    def conf_int(self, confidence: float | None = None, *, alpha: float | None = None) -> pd.DataFrame:
        """Confidence intervals of the fixed effects with Satterthwaite t quantiles."""
        return self.summary(confidence, alpha=alpha)[["ci_low", "ci_high"]]

    def to_frame(self) -> pd.DataFrame:
        """Long tidy frame: fixed effects (``component="fixed"``) and variance components."""
        fe = self.summary().reset_index().assign(component="fixed")
        vc = self.varcomp.rename(columns={"sdcor": "estimate"})
        vc = vc.assign(component="random",
                       term=[f"{g}: {a}" + ("" if pd.isna(b) else f" ~ {b}")
                             if not pd.isna(a) else "Residual"
                             for g, a, b in zip(vc["group"], vc["var1"], vc["var2"])],
                       kind=["sd" if pd.isna(b) else "cor" for b in vc["var2"]])
        fe["kind"] = "coef"
        cols = ["component", "term", "kind", "estimate", "se", "df", "statistic", "p_value", "ci_low", "ci_high"]
        return pd.concat([fe, vc], ignore_index=True).reindex(columns=cols)

    def model_info(self) -> pd.Series:
        """Fit statistics: n_rows, ngroups, llf, aic, bic, sigma, converged, singular, engine."""
        return pd.Series({"formula": self.formula, "random": self.re_formula,
                          "method": "REML" if self.reml else "ML", "engine": self.engine,
                          "algorithm": self.fit_info.get("algorithm"),
                          "n_rows": self.n_rows, "ngroups": self.ngroups,
                          "ngrps": ", ".join(f"{g}: {n}" for g, n in self.ngrps.items()),
                          "llf": self.llf, "aic": self.aic, "bic": self.bic, "sigma": self.sigma,
                          "converged": self.converged, "singular": self.singular})

    # -- predictions
    def predict(self, newdata=None, random=True) -> pd.Series:
        """Fitted values for ``newdata`` (default: the model frame).

        ``random=True`` adds the BLUPs of every term (levels not in the fit get 0, i.e. the
        population prediction, as lme4's ``allow.new.levels``); ``random=False`` gives
        ``X beta`` only. Rows with missing predictors give NaN.
        """
        if self.design_info is None:
            raise AnalysisError("this fit was made from design arrays (no formula design); "
                                "predict needs a fit_lmm fit")
        data = self.data if newdata is None else newdata
        X = patsy.build_design_matrices([self.design_info], data, NA_action="drop",
                                        return_type="dataframe")[0]
        pred = pd.Series(np.nan, index=data.index, name="predicted")
        pred.loc[X.index] = X.to_numpy(float) @ self.fe_params.to_numpy()
        if not random:
            return pred
        spec = self._spec
        need = list(dict.fromkeys(g for cols in spec.group_cols for g in cols))
        missing = [c for c in need if c not in data.columns]
        if missing:
            raise AnalysisError(f"newdata has no column {', '.join(map(repr, missing))} for the "
                                "random effects; pass random=False for population predictions")
        ok = X.index
        contrib = np.zeros(len(ok))
        blups = dict(zip(spec.order, self._term_blups()))
        for i, (t, info) in enumerate(zip(spec.terms, spec.re_design_infos)):
            Zr = patsy.build_design_matrices([info], data, NA_action="drop",
                                             return_type="dataframe")[0]
            ok = ok.intersection(Zr.index)
        contrib = pd.Series(0.0, index=ok)
        for i, (t, info) in enumerate(zip(spec.terms, spec.re_design_infos)):
            Zr = patsy.build_design_matrices([info], data.loc[ok], NA_action="drop",
                                             return_type="dataframe")[0].to_numpy(float)
            cols = spec.group_cols[i]
            sub = data.loc[ok, list(cols)]
            if len(cols) == 1:
                keys = sub[cols[0]].to_numpy()
                lookup = {v: j for j, v in enumerate(t.levels)}
            else:
                keys = [":".join(map(str, r)) for r in sub.itertuples(index=False, name=None)]
                lookup = {v: j for j, v in enumerate(t.levels)}
            idx = np.array([lookup.get(v, -1) for v in keys], dtype=int)
            have = idx >= 0
            B = np.zeros((len(ok), t.k))
            B[have] = blups[i][idx[have]]
            contrib += np.einsum("nk,nk->n", Zr, B)
        pred.loc[ok] = pred.loc[ok].to_numpy() + contrib.to_numpy()
        return pred

    @property
    def resid(self) -> pd.Series:
        """Conditional residuals ``y - X beta - Z b``."""
        return pd.Series(self._spec.y, index=self.data.index) - self.predict()

    def refit_ml(self) -> LMMResult:
        """The same model refitted by maximum likelihood."""
        return _fit_spec(self._spec, reml=False, engine=self.engine, maxiter=1000, warn=True)

    # -- display
    def plot(self, ax=None, intercept=False):
        """Forest plot of the fixed effects with 95% Satterthwaite CIs; returns the Figure."""
        import matplotlib.pyplot as plt

        from hipstats.plots.style import theme

        s = self.summary()
        if not intercept:
            s = s.drop(index=[t for t in s.index if t == "Intercept"])
        with theme():
            if ax is None:
                fig, ax = plt.subplots(figsize=(6, 0.4 * len(s) + 1.2))
            else:
                fig = ax.figure
            ypos = np.arange(len(s))[::-1]
            ax.errorbar(s["estimate"], ypos, xerr=[s["estimate"] - s["ci_low"],
                                                   s["ci_high"] - s["estimate"]],
                        fmt="o", color="#0072B2", capsize=3)
            ax.axvline(0, color="#999999", lw=1)
            ax.set_yticks(ypos, s.index)
            ax.set_xlabel("estimate (95% CI)")
            ax.set_title(f"{self.formula}")
        return fig

    def __repr__(self):
        return (f"LMMResult({self.formula!r}, {'REML' if self.reml else 'ML'}, "
                f"n_rows={self.n_rows}, ngrps={self.ngrps}, llf={self.llf:.3f}, "
                f"converged={self.converged}, singular={self.singular})")

    def _repr_html_(self):
        info = self.model_info()
        head = ", ".join(f"<b>{html.escape(str(k))}</b>: {html.escape(str(v))}"
                         for k, v in info.items())
        return (f"<div><p>Linear mixed model &mdash; {head}</p>"
                f"<p><b>Fixed effects</b></p>{html_table(self.summary().reset_index())}"
                f"<p><b>Variance components</b></p>"
                f"{html_table(self.varcomp)}</div>")
