"""Measurement reliability and agreement: ICC, SEM, MDC, Bland-Altman and kappa.

Before a change of a few degrees in hip internal rotation can be believed, one must know how
much a reading moves between trials, sessions and raters. This module answers that on the
cohort's own long-format data:

* :func:`icc` -- all six intraclass correlation forms of McGraw and Wong (1996) with
  confidence intervals and F tests against a null value ``r0``; balanced data by two-way
  ANOVA, unbalanced data (missing ratings) by REML variance components (``nan_policy="model"``).
* :func:`sem` and :func:`mdc` -- standard error of measurement and minimal detectable change.
* :func:`reliability_summary` -- one call for a cohort: n, ICC with CI, SEM and MDC95 per
  measure and design (trial-to-trial, session-to-session, rater-to-rater).
* :func:`bland_altman` -- limits of agreement (Bland and Altman 1986, 1999), with CIs, the
  proportional-bias regression and the repeated-measures limits of Bland and Altman (2007).
* :func:`cohen_kappa` (unweighted, linear, quadratic; Fleiss, Cohen and Everitt 1969 standard
  errors) and :func:`fleiss_kappa` (several raters) for the ordinal ASLR scores and tilt classes.

Data are long: one row per reading, with columns naming the target (what is measured, e.g. a
participant's side at a visit), the rater (or trial, or session: whatever is compared) and the
rating. Several readings in one target-rater cell (trials) are averaged before the analysis,
so the ICC then describes the reliability of a *trial-mean* reading. To study trial-to-trial
reliability, pass the trial column as ``raters``.

References
----------
Shrout PE, Fleiss JL (1979). Intraclass correlations: uses in assessing rater reliability.
Psychological Bulletin 86:420-428.
McGraw KO, Wong SP (1996). Forming inferences about some intraclass correlation
coefficients. Psychological Methods 1:30-46 (and correction, 1:390).
Bland JM, Altman DG (1986). Statistical methods for assessing agreement between two methods
of clinical measurement. Lancet i:307-310.
Bland JM, Altman DG (1999). Measuring agreement in method comparison studies. Statistical
Methods in Medical Research 8:135-160.
Bland JM, Altman DG (2007). Agreement between methods of measurement with multiple
observations per individual. Journal of Biopharmaceutical Statistics 17:571-582.
Carkeet A (2015). Exact parametric confidence intervals for Bland-Altman limits of agreement.
Optometry and Vision Science 92:e71-e80.
Fleiss JL, Cohen J, Everitt BS (1969). Large sample standard errors of kappa and weighted
kappa. Psychological Bulletin 72:323-327.
Fleiss JL (1971). Measuring nominal scale agreement among many raters. Psychological
Bulletin 76:378-382.
Weir JP (2005). Quantifying test-retest reliability using the intraclass correlation
coefficient and the SEM. J Strength Cond Res 19:231-240.

Examples
--------
>>> import pandas as pd
>>> from hipstats.reliability import icc
>>> sf = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
>>> long = pd.DataFrame([(t, j, v) for t, row in enumerate(sf) for j, v in enumerate(row)],
...                     columns=["target", "judge", "rating"])
>>> icc(long, "target", "judge", "rating").set_index("sf_name")["icc"].round(2).tolist()
[0.17, 0.29, 0.71, 0.44, 0.62, 0.91]
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import optimize, stats

from hipstats.errors import AnalysisError, ConvergenceWarning, ParameterError

__all__ = [
    "icc",
    "sem",
    "mdc",
    "reliability_summary",
    "bland_altman",
    "BlandAltmanResult",
    "cohen_kappa",
    "fleiss_kappa",
]

#: Order and naming of the six ICC forms: McGraw & Wong name, Shrout & Fleiss name, description.
ICC_FORMS: tuple[tuple[str, str, str], ...] = (
    ("ICC(1,1)", "ICC1", "one-way random, single rater, absolute agreement"),
    ("ICC(A,1)", "ICC2", "two-way random, single rater, absolute agreement"),
    ("ICC(C,1)", "ICC3", "two-way mixed, single rater, consistency"),
    ("ICC(1,k)", "ICC1k", "one-way random, mean of k raters, absolute agreement"),
    ("ICC(A,k)", "ICC2k", "two-way random, mean of k raters, absolute agreement"),
    ("ICC(C,k)", "ICC3k", "two-way mixed, mean of k raters, consistency"),
)
_FORM_ALIASES = {sf: mw for mw, sf, _ in ICC_FORMS}
_NAN_POLICIES = ("raise", "omit", "model")


# ---------------------------------------------------------------------------------------------
# small validation helpers
# ---------------------------------------------------------------------------------------------
def _as_list(cols: str | Sequence[str]) -> list[str]:
    return [cols] if isinstance(cols, str) else list(cols)


def _require_columns(data: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{what}: data must be a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise AnalysisError(
            f"{what}: column(s) {missing} not in data; available: {list(data.columns)}"
        )


def _check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return float(confidence)


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _spearman_brown(rho, k):
    """Reliability of the mean of ``k`` readings from the single-reading reliability ``rho``.

    Where ``1 + (k - 1) * rho <= 0`` (a lower CI bound far below zero in unbalanced data) the
    transform is undefined and ``-inf`` is returned.
    """
    rho = np.asarray(rho, dtype=float)
    den = 1.0 + (k - 1.0) * rho
    with np.errstate(divide="ignore", invalid="ignore"):
        out = k * rho / den
    return np.where(den > 0, out, -np.inf)


def _inverse_spearman_brown(rho_k, k):
    return rho_k / (k - (k - 1.0) * rho_k)


# ---------------------------------------------------------------------------------------------
# ICC: the McGraw & Wong formulas, vectorised over any leading axes
# ---------------------------------------------------------------------------------------------
def _anova_mean_squares(y: np.ndarray) -> dict[str, np.ndarray]:
    """Two-way (targets x raters, one reading per cell) ANOVA mean squares.

    ``y`` has shape ``(..., n, k)``; leading axes are independent data sets (used for fast
    simulation). Returns MSR (targets), MSC (raters), MSE (residual) and MSW (within targets,
    one-way).
    """
    y = np.asarray(y, dtype=float)
    n, k = y.shape[-2:]
    grand = y.mean(axis=(-2, -1), keepdims=True)
    row = y.mean(axis=-1, keepdims=True)
    col = y.mean(axis=-2, keepdims=True)
    ss_r = k * ((row - grand) ** 2).sum(axis=(-2, -1))
    ss_c = n * ((col - grand) ** 2).sum(axis=(-2, -1))
    ss_t = ((y - grand) ** 2).sum(axis=(-2, -1))
    ss_e = ss_t - ss_r - ss_c
    return {
        "msr": ss_r / (n - 1),
        "msc": ss_c / (k - 1),
        "mse": ss_e / ((n - 1) * (k - 1)),
        "msw": (ss_c + ss_e) / (n * (k - 1)),
    }


def _icc_forms(msr, msc, mse, msw, *, k0, n0, K, df_r, df_c, df_e, df_w, confidence, r0):
    """All six ICC forms with F tests and CIs from (pseudo) mean squares.

    The McGraw & Wong (1996) formulas are written with the expected-mean-square coefficients
    ``k0`` (E[MSR] = k0 s2_t + s2_e) and ``n0`` (E[MSC] = n0 s2_r + s2_e); for balanced data
    ``k0 = K = k`` raters and ``n0 = n`` targets and the formulas are exactly those of the paper
    (and of psych::ICC and irr::icc). The average-of-K forms and their CI bounds are the
    Spearman-Brown transforms of the single forms, which is algebraically identical to McGraw &
    Wong's average-measure formulas; the F test of an average form against ``r0`` is the test of
    the single form against the inverse Spearman-Brown transform of ``r0`` (identical to irr).
    """
    alpha = 1.0 - confidence
    q = 1.0 - alpha / 2.0
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        # --- one-way and consistency single forms: exact F intervals
        for name, msd, df_d in (("ICC(1,1)", msw, df_w), ("ICC(C,1)", mse, df_e)):
            f0 = msr / msd
            rho = (msr - msd) / (msr + (k0 - 1.0) * msd)
            fl = f0 / stats.f.ppf(q, df_r, df_d)
            fu = f0 * stats.f.ppf(q, df_d, df_r)
            lo = (fl - 1.0) / (fl + k0 - 1.0)
            hi = (fu - 1.0) / (fu + k0 - 1.0)
            out[name] = dict(icc=rho, lo=lo, hi=hi, f0=f0, msd=msd, df_d=df_d)
        # --- agreement single form: Satterthwaite-type approximation (McGraw & Wong case 2A)
        ratio = k0 / n0
        rho_a = (msr - mse) / (msr + (k0 - 1.0) * mse + ratio * (msc - mse))
        a = ratio * rho_a / (1.0 - rho_a)
        b = 1.0 + k0 * rho_a / (1.0 - rho_a) - a
        v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / df_c + (b * mse) ** 2 / df_e)
        fl = stats.f.ppf(q, df_r, v)
        fu = stats.f.ppf(q, v, df_r)
        c = k0 * msc + (k0 * n0 - k0 - n0) * mse
        lo = n0 * (msr - fl * mse) / (fl * c + n0 * msr)
        hi = n0 * (fu * msr - mse) / (c + n0 * fu * msr)
        out["ICC(A,1)"] = dict(icc=rho_a, lo=lo, hi=hi)

    rows = []
    for mw, sf, desc in ICC_FORMS:
        single = mw.replace(",k)", ",1)")
        avg = mw.endswith(",k)")
        res = out[single]
        r0_single = _inverse_spearman_brown(r0, K) if avg else r0
        with np.errstate(divide="ignore", invalid="ignore"):
            if single == "ICC(A,1)":
                a0 = ratio * r0_single / (1.0 - r0_single)
                b0 = 1.0 + k0 * r0_single / (1.0 - r0_single) - a0
                den = a0 * msc + b0 * mse
                fval = msr / den
                df2 = den**2 / ((a0 * msc) ** 2 / df_c + (b0 * mse) ** 2 / df_e)
            else:
                fval = res["f0"] * (1.0 - r0_single) / (1.0 + (k0 - 1.0) * r0_single)
                df2 = res["df_d"] * np.ones_like(np.asarray(fval, dtype=float))
            pval = stats.f.sf(fval, df_r, df2)
        conv = (lambda x: _spearman_brown(x, K)) if avg else np.asarray
        rows.append(dict(form=mw, sf_name=sf, description=desc, icc=conv(res["icc"]),
                         f=fval, df1=df_r * np.ones_like(np.asarray(fval, dtype=float)),
                         df2=df2, pval=pval, ci_low=conv(res["lo"]), ci_high=conv(res["hi"])))
    return rows


# ---------------------------------------------------------------------------------------------
# REML for crossed random effects (targets x raters), profiled like lme4
# ---------------------------------------------------------------------------------------------
@dataclass
class _RemlFit:
    variances: dict[str, float]
    residual: float
    intercept: float
    deviance: float
    converged: bool


def _reml_crossed(y: np.ndarray, target: np.ndarray, rater: np.ndarray | None = None) -> _RemlFit:
    """REML fit of ``y = mu + t[target] + r[rater] + e`` (crossed factors; ``rater`` optional).

    The relative standard deviations ``lambda = sigma_b / sigma`` are optimised on ``[0, inf)``
    (a variance may sit on the boundary at zero); ``mu`` and ``sigma^2`` are profiled out as in
    lme4. Each evaluation uses only sufficient statistics: with ``A = Lambda Z'Z Lambda + I``
    partitioned into the (diagonal) target block and the rater block, ``A^{-1}`` and ``log|A|``
    come from the k x k Schur complement, so one evaluation costs O(n k + k^3). For balanced
    complete data with non-negative ANOVA estimates the optimum is the ANOVA (expected mean
    squares) solution.
    """
    y = np.asarray(y, dtype=float)
    N, p = y.size, 1
    n_i = np.bincount(target).astype(float)
    ty = np.bincount(target, weights=y)
    two = rater is not None
    if two:
        k = int(rater.max()) + 1
        m_j = np.bincount(rater, minlength=k).astype(float)
        ry = np.bincount(rater, weights=y, minlength=k)
        inc = np.zeros((n_i.size, k))
        np.add.at(inc, (target, rater), 1.0)
    xtx, xty, yty = float(N), float(y.sum()), float(y @ y)
    nt = np.stack([n_i, ty], axis=1)  # Z_t' [x, y]
    if two:
        mt = np.stack([m_j, ry], axis=1)  # Z_r' [x, y]
        eye_m = np.diag(m_j)

    def parts(lam):
        lt2 = lam[0] * lam[0]
        d = 1.0 + lt2 * n_i
        dnt = nt / d[:, None]
        quad = lt2 * (nt.T @ dnt)
        logdet = np.log(d).sum()
        if two:
            lr2 = lam[1] * lam[1]
            inc_d = inc / d[:, None]
            S = np.eye(k) + lr2 * eye_m - (lt2 * lr2) * (inc.T @ inc_d)
            W = lam[1] * (mt - lt2 * (inc.T @ dnt))
            L = np.linalg.cholesky(S)
            c = np.linalg.solve(L, W)
            quad = quad + c.T @ c
            logdet += 2.0 * np.log(np.diag(L)).sum()
        xhx = xtx - quad[0, 0]
        xhy = xty - quad[0, 1]
        yhy = yty - quad[1, 1]
        beta = xhy / xhx
        rss = max(yhy - xhy * beta, 1e-300)
        return (N - p) * np.log(rss) + logdet + np.log(xhx), rss, beta

    def objective(lam):
        return parts(lam)[0]

    nb = 2 if two else 1
    # start near the moment estimates: between-level variance of means over within variance
    resid_w = y - (ty / n_i)[target]
    s2w = max(resid_w @ resid_w / max(N - n_i.size, 1), 1e-12)
    start = [np.var(ty / n_i) / s2w]
    if two:
        start.append(np.var(ry / m_j) / s2w)
    start = np.sqrt(np.clip(start, 1e-2, 1e4))
    if nb == 1:
        res = optimize.minimize_scalar(lambda t: objective([t]), bounds=(0.0, 10 * start[0] + 10),
                                       method="bounded", options={"xatol": 1e-10})
        lam, converged = np.array([res.x]), bool(res.success)
    else:
        res = optimize.minimize(lambda t: objective(np.abs(t)), start, method="Nelder-Mead",
                                options={"xatol": 1e-8, "fatol": 1e-11, "maxiter": 4000})
        lam, converged = np.abs(res.x), bool(res.success)
    dev, rss, beta = parts(lam)
    sigma2 = rss / (N - p)
    if not converged:
        warnings.warn("REML optimisation of the ICC variance components did not converge",
                      ConvergenceWarning, stacklevel=3)
    names = ["target", "rater"][:nb]
    return _RemlFit({b: float(lam[i] ** 2 * sigma2) for i, b in enumerate(names)},
                    float(sigma2), float(beta), float(dev), converged)


# ---------------------------------------------------------------------------------------------
# ICC: data handling
# ---------------------------------------------------------------------------------------------
@dataclass
class _IccFit:
    table: pd.DataFrame
    mean_squares: dict[str, float]
    variance_components: dict[str, float]
    n_targets: int
    n_raters: int
    n_ratings: int
    sd: float
    info: dict = field(default_factory=dict)


def _codes(df: pd.DataFrame, cols: list[str]):
    """Integer codes (sorted levels) and the level labels of one or several id columns."""
    if len(cols) == 1:
        codes, labels = pd.factorize(df[cols[0]], sort=True)
        return codes, pd.Index(labels, name=cols[0])
    codes = df.groupby(cols, sort=True, observed=True).ngroup().to_numpy()
    # labels from the first row of each group (codes are 0..G-1 in sorted key order)
    first = np.unique(codes, return_index=True)[1]
    return codes, pd.MultiIndex.from_frame(df[cols].iloc[first].reset_index(drop=True))


def _cell_means(data, targets, raters, ratings, what):
    """Mean and count of the ratings in each target x rater cell (trials averaged)."""
    tcols, rcols = _as_list(targets), _as_list(raters)
    _require_columns(data, tcols + rcols + [ratings], what)
    ids = data[tcols + rcols]
    if ids.isna().any().any():
        bad = [c for c in tcols + rcols if ids[c].isna().any()]
        raise AnalysisError(f"{what}: missing values in identifier column(s) {bad}")
    y = pd.to_numeric(data[ratings], errors="coerce").to_numpy(float)
    tkey, tlab = _codes(data, tcols)
    rkey, rlab = _codes(data, rcols)
    ok = np.isfinite(y)
    k = len(rlab)
    cell = tkey[ok] * k + rkey[ok]
    size = len(tlab) * k
    counts = np.bincount(cell, minlength=size)
    sums = np.bincount(cell, weights=y[ok], minlength=size)
    filled = np.flatnonzero(counts)
    cells = pd.DataFrame({"t": filled // k, "r": filled % k,
                          "y": sums[filled] / counts[filled], "m": counts[filled]})
    return cells, tlab, rlab


def _icc_fit(data, targets, raters, ratings, *, confidence=0.95, nan_policy="raise", r0=0.0,
             what="icc") -> _IccFit:
    confidence = _check_confidence(confidence)
    if nan_policy not in _NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {_NAN_POLICIES}, got {nan_policy!r}")
    if not -1 < r0 < 1:
        raise ValueError(f"r0 must lie in (-1, 1), got {r0!r}")
    cells, tlab, rlab = _cell_means(data, targets, raters, ratings, what)
    n_all, k_all = len(tlab), len(rlab)
    _need_two(n_all, k_all, what)
    mat = np.full((n_all, k_all), np.nan)
    mat[cells["t"], cells["r"]] = cells["y"]
    per_cell = int(cells["m"].max()) if len(cells) else 0
    missing = np.isnan(mat)
    info = {"ratings_per_cell_max": per_cell, "targets_dropped": 0,
            "targets_used": tlab[~missing.all(axis=1)]}
    if missing.any() and nan_policy == "raise":
        rows = np.flatnonzero(missing.any(axis=1))
        examples = ", ".join(f"{tlab[i]!r} (no {', '.join(map(str, rlab[missing[i]]))})"
                             for i in rows[:5])
        raise AnalysisError(
            f"{what}: {missing.sum()} target-rater cell(s) have no rating in {len(rows)} "
            f"target(s), e.g. {examples}. Use nan_policy='omit' to drop incomplete targets or "
            f"nan_policy='model' to use every rating (REML variance components)."
        )
    if nan_policy == "omit" or (nan_policy == "model" and not missing.any()):
        keep = ~missing.any(axis=1)
        info["targets_dropped"] = int((~keep).sum())
        info["targets_used"] = tlab[keep]
        mat = mat[keep]
        _need_two(mat.shape[0], k_all, what, after=" after dropping incomplete targets"
                  if info["targets_dropped"] else "")
    if nan_policy == "model":
        return _icc_fit_model(mat, confidence, r0, info, what)
    info["matrix"] = mat  # complete targets x raters (for the participant-cluster bootstrap)
    return _icc_fit_anova(mat, confidence, r0, info, what)


def _need_two(n, k, what, after=""):
    if k < 2:
        raise AnalysisError(
            f"{what}: need at least two raters (or trials/sessions), got {k}{after}")
    if n < 2:
        raise AnalysisError(f"{what}: need at least two targets, got {n}{after}")


def _check_variation(values: np.ndarray, within_ok: bool, what: str) -> None:
    v = values[np.isfinite(values)]
    if v.size == 0 or np.ptp(v) == 0:
        raise AnalysisError(f"{what}: all ratings are identical ({v[0] if v.size else 'none'}); "
                            "reliability is undefined for constant ratings")
    if not within_ok:
        raise AnalysisError(f"{what}: every target got identical ratings from all raters (no "
                            "within-target variation), so the ICC is 1 with no sampling error; "
                            "check that raters/trials really are separate readings")


def _public(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in ("targets_used", "matrix")}


def _check_residual(residual: float, scale: float, what: str) -> None:
    if residual <= 1e-10 * scale:
        raise AnalysisError(f"{what}: the residual (target x rater) variance is zero -- every "
                            "rater differs from the others by the same constant on every target, "
                            "so the consistency ICC is 1 with no sampling error and the F tests "
                            "and intervals are undefined; check for copied or derived readings")


def _table(rows, attrs) -> pd.DataFrame:
    table = pd.DataFrame([{k: (float(v) if k not in ("form", "sf_name", "description") else v)
                           for k, v in r.items()} for r in rows])
    table.attrs.update(attrs)
    return table


def _icc_fit_anova(mat, confidence, r0, info, what) -> _IccFit:
    n, k = mat.shape
    ms = {key: float(v) for key, v in _anova_mean_squares(mat).items()}
    _check_variation(mat.ravel(), ms["msw"] > 0, what)
    _check_residual(ms["mse"], ms["msr"] + ms["msc"] + ms["msw"], what)
    rows = _icc_forms(ms["msr"], ms["msc"], ms["mse"], ms["msw"], k0=k, n0=n, K=k,
                      df_r=n - 1, df_c=k - 1, df_e=(n - 1) * (k - 1), df_w=n * (k - 1),
                      confidence=confidence, r0=r0)
    vc = {"target": (ms["msr"] - ms["mse"]) / k, "rater": (ms["msc"] - ms["mse"]) / n,
          "residual": ms["mse"], "within": ms["msw"],
          "target_oneway": (ms["msr"] - ms["msw"]) / k}
    attrs = dict(n_targets=n, n_raters=k, n_ratings=n * k, confidence=confidence, r0=r0,
                 method="anova", mean_squares=ms, variance_components=vc, **_public(info))
    return _IccFit(_table(rows, attrs), ms, vc, n, k, n * k, float(np.std(mat, ddof=1)), info)


def _weighted_mean_squares(mat: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """Two-way ANOVA mean squares of ``mat`` (n targets x k raters) with each target repeated
    ``w[b, t]`` times (frequency weights; one row of ``w`` per bootstrap draw). With all
    weights 1 this is :func:`_anova_mean_squares`."""
    y = mat - mat.mean()  # centred for numerical stability
    k = y.shape[1]
    n = w.sum(axis=1)
    col = (w @ y) / n[:, None]
    grand = col.mean(axis=1)
    ss_t = w @ (y ** 2).sum(axis=1) - n * k * grand ** 2
    ss_r = k * (w @ y.mean(axis=1) ** 2 - n * grand ** 2)
    ss_c = n * ((col - grand[:, None]) ** 2).sum(axis=1)
    ss_e = ss_t - ss_r - ss_c
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"msr": ss_r / (n - 1), "msc": ss_c / (k - 1), "mse": ss_e / ((n - 1) * (k - 1)),
                "msw": (ss_c + ss_e) / (n * (k - 1)), "n": n}


def _cluster_bootstrap_icc(mat: np.ndarray, cluster: np.ndarray, form: str, *,
                           confidence: float = 0.95, n_boot: int = 1000, seed=0):
    r"""Participant-cluster bootstrap CI of a single-reading ICC form and of the SEM.

    Participants (``cluster``: one code per row of ``mat``) are drawn with replacement, each
    bringing all their targets (both sides, all visits); the mean squares of every draw are
    computed at once from frequency weights (:func:`_weighted_mean_squares`) and the ICC
    re-estimated with the same McGraw & Wong formula. The CI uses the bootstrap standard error
    on a normalising scale, with the :math:`t_{G-1}` quantile (:math:`G` participants), and is
    transformed back:

    .. math::

        z(\rho) = \tfrac12 \ln\frac{1 + (k-1)\rho}{1 - \rho}\ \text{(Fisher)},\qquad
        z(\hat\rho) \pm t_{G-1}\,\operatorname{sd}_b\{z(\rho^*_b)\};\qquad
        \ln \widehat{SEM} \pm t_{G-1}\,\operatorname{sd}_b\{\ln SEM^*_b\}

    (in simulation this covers better than the percentile interval with 15-60
    participants). Returns (icc_lo, icc_hi, sem_lo, sem_hi, draws used); the MDC CI is the
    SEM CI times ``1.96 sqrt 2``. NaNs (and 0 draws) with fewer than 3 participants or when
    more than 10% of the draws are degenerate.
    """
    codes, cl = np.unique(cluster, return_inverse=True)
    g = codes.size
    if g < 3:
        return (np.nan,) * 4 + (0,)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot).astype(float)
    w = np.vstack([np.ones((1, g)), counts])[:, cl]  # row 0: the data themselves
    ms = _weighted_mean_squares(mat, w)
    k = mat.shape[1]
    rows = _icc_forms(ms["msr"], ms["msc"], ms["mse"], ms["msw"], k0=k, n0=ms["n"], K=k,
                      df_r=ms["n"] - 1, df_c=k - 1, df_e=(ms["n"] - 1) * (k - 1),
                      df_w=ms["n"] * (k - 1), confidence=confidence, r0=0.0)
    est = np.asarray(next(r["icc"] for r in rows if r["form"] == form), float)
    eps = 1e-6
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.clip(est, -1.0 / (k - 1) + eps, 1 - eps)
        z = 0.5 * np.log((1 + (k - 1) * rho) / (1 - rho))
        log_sem = 0.5 * np.log(ms["msw"])
    ok = np.isfinite(z) & np.isfinite(log_sem) & (ms["mse"] > 0)
    used = int(ok[1:].sum())
    if not ok[0] or used < 0.9 * n_boot:
        return (np.nan,) * 4 + (used,)
    q = stats.t.ppf(0.5 + confidence / 2, g - 1)
    zb, sb = z[1:][ok[1:]], log_sem[1:][ok[1:]]
    z_lo, z_hi = z[0] + np.array([-1, 1]) * q * zb.std(ddof=1)
    lo, hi = ((np.exp(2 * v) - 1) / (np.exp(2 * v) + k - 1) for v in (z_lo, z_hi))
    s_lo, s_hi = np.exp(log_sem[0] + np.array([-1, 1]) * q * sb.std(ddof=1))
    return float(lo), float(hi), float(s_lo), float(s_hi), used


def _icc_fit_model(mat, confidence, r0, info, what) -> _IccFit:
    t_idx, r_idx = np.nonzero(np.isfinite(mat))
    y = mat[t_idx, r_idx]
    # targets / raters without any rating carry no information
    t_idx = np.unique(t_idx, return_inverse=True)[1]
    r_idx = np.unique(r_idx, return_inverse=True)[1]
    n, k, N = int(t_idx.max()) + 1, int(r_idx.max()) + 1, y.size
    _need_two(n, k, what)
    per_target = np.bincount(t_idx)
    within_ss = ((y - (np.bincount(t_idx, y) / per_target)[t_idx]) ** 2).sum()
    _check_variation(y, within_ss > 0, what)
    if N - n - k + 1 < 1:
        raise AnalysisError(f"{what}: {N} ratings on {n} targets and {k} raters leave no "
                            "residual degrees of freedom for the crossed model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        two = _reml_crossed(y, t_idx, r_idx)
        one = _reml_crossed(y, t_idx)
    _check_residual(two.residual, float(np.var(y)), what)  # before any convergence warning
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    per_rater = np.bincount(r_idx)
    k0 = (N - (per_target**2).sum() / N) / (n - 1)
    n0 = (N - (per_rater**2).sum() / N) / (k - 1)
    s_t, s_r, s_e = two.variances["target"], two.variances["rater"], two.residual
    s_t1, s_w = one.variances["target"], one.residual
    ms = {"msr": k0 * s_t + s_e, "msc": n0 * s_r + s_e, "mse": s_e, "msw": s_w,
          "msr_oneway": k0 * s_t1 + s_w}
    rows_two = _icc_forms(ms["msr"], ms["msc"], ms["mse"], ms["msw"], k0=k0, n0=n0, K=k,
                          df_r=n - 1, df_c=k - 1, df_e=N - n - k + 1, df_w=N - n,
                          confidence=confidence, r0=r0)
    rows_one = _icc_forms(ms["msr_oneway"], ms["msc"], ms["mse"], ms["msw"], k0=k0, n0=n0, K=k,
                          df_r=n - 1, df_c=k - 1, df_e=N - n - k + 1, df_w=N - n,
                          confidence=confidence, r0=r0)
    rows = [r1 if r1["form"].startswith("ICC(1,") else r2 for r1, r2 in zip(rows_one, rows_two)]
    vc = {"target": s_t, "rater": s_r, "residual": s_e, "within": s_w, "target_oneway": s_t1}
    attrs = dict(n_targets=n, n_raters=k, n_ratings=N, confidence=confidence, r0=r0,
                 method="reml", mean_squares=ms, variance_components=vc, k0=k0, n0=n0,
                 converged=two.converged and one.converged, **_public(info))
    return _IccFit(_table(rows, attrs), ms, vc, n, k, N, float(np.std(y, ddof=1)), info)


def icc(data: pd.DataFrame, targets: str | Sequence[str], raters: str | Sequence[str],
        ratings: str, *, confidence: float = 0.95, nan_policy: str = "raise",
        r0: float = 0.0) -> pd.DataFrame:
    r"""Intraclass correlation coefficients: all six forms, with F tests and confidence intervals.

    Parameters
    ----------
    data : DataFrame
        Long format, one row per reading.
    targets : str or list of str
        Column(s) identifying what is measured (e.g. ``["participant_id", "side"]``).
    raters : str or list of str
        Column(s) identifying the readings compared: raters, trials, sessions or devices.
    ratings : str
        Column holding the reading.
    confidence : float
        Confidence level of the intervals (default 0.95).
    nan_policy : {"raise", "omit", "model"}
        What to do when some target-rater cells have no rating. ``"raise"`` (default): an
        :class:`~hipstats.errors.AnalysisError` naming the incomplete targets. ``"omit"``: drop
        incomplete targets (listwise, like psych/pingouin). ``"model"``: keep every rating and
        estimate the variance components of the crossed random-effects model
        ``y_ij = mu + t_i + r_j + e_ij`` by REML (own profiled implementation, lme4-style;
        the one-way forms from ``y_ij = mu + t_i + e_ij``).
    r0 : float
        Null value of the F tests (McGraw & Wong 1996, as in ``irr::icc``); 0 by default.

    Returns
    -------
    DataFrame
        One row per form -- ``form`` (McGraw & Wong name), ``sf_name`` (Shrout & Fleiss name),
        ``description``, ``icc``, ``f``, ``df1``, ``df2``, ``pval``, ``ci_low``, ``ci_high``. The
        attribute dict ``.attrs`` holds ``n_targets``, ``n_raters``, ``mean_squares``,
        ``variance_components``, ``method`` ("anova" or "reml") and the settings.

    Notes
    -----
    Several readings in one target-rater cell (trials) are averaged first; the ICC then refers
    to a trial-mean reading (pass the trial column as ``raters`` for trial-to-trial
    reliability). With ``n`` targets, ``k`` raters and two-way ANOVA mean squares MSR (targets),
    MSC (raters), MSE (residual) and MSW (within targets, one-way):

    .. math::

        ICC(1,1) &= \frac{MSR - MSW}{MSR + (k-1) MSW}, \quad
        ICC(C,1) = \frac{MSR - MSE}{MSR + (k-1) MSE}, \\
        ICC(A,1) &= \frac{MSR - MSE}{MSR + (k-1) MSE + \frac{k}{n}(MSC - MSE)},

    and the ``k`` forms are the Spearman-Brown steps of these (``(MSR - MSW)/MSR``,
    ``(MSR - MSE)/MSR`` and ``(MSR - MSE)/(MSR + (MSC - MSE)/n)``). CIs: exact F intervals for
    the one-way and consistency forms, McGraw & Wong's Satterthwaite approximation for the
    agreement forms. F tests against ``r0``: ``F = MSR/MSW (1-r0)/(1+(k-1)r0)`` (one-way),
    ``MSR/MSE (1-r0)/(1+(k-1)r0)`` (consistency) and ``MSR/(a MSC + b MSE)`` with
    ``a = k r0/(n(1-r0))``, ``b = 1 + k r0 (n-1)/(n(1-r0))`` and Satterthwaite ``df2``
    (agreement); for the ``k`` forms ``r0`` is the reliability of the mean.

    With ``nan_policy="model"`` the forms are the variance ratios, e.g.
    ``ICC(A,1) = s2_t / (s2_t + s2_r + s2_e)`` and ``ICC(A,k) = s2_t / (s2_t + (s2_r + s2_e)/k)``
    (``k`` = number of raters), from REML estimates. F tests and CIs use the same formulas with
    pseudo mean squares ``MSR* = k0 s2_t + s2_e``, ``MSC* = n0 s2_r + s2_e``, ``MSE* = s2_e``,
    where ``k0 = (N - sum n_i^2 / N)/(n - 1)`` and ``n0`` likewise are the unbalanced-design
    expected-mean-square coefficients, and residual df ``N - n - k + 1`` (one-way: ``N - n``).
    For complete data with non-negative ANOVA variance estimates this equals the ANOVA result;
    for unbalanced data the intervals are approximate (the coverage is checked by simulation in
    the tests).

    References
    ----------
    Shrout & Fleiss (1979); McGraw & Wong (1996); Koo TK, Li MY (2016) J Chiropr Med 15:155-163
    (choosing a form).

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.reliability import icc
    >>> df = pd.DataFrame({"pid": [1, 1, 2, 2, 3, 3, 4, 4],
    ...                    "rater": ["A", "B"] * 4,
    ...                    "ir": [30, 32, 41, 40, 35, 37, 28, 31]})
    >>> res = icc(df, "pid", "rater", "ir")
    >>> res.loc[res.form == "ICC(A,1)", ["icc", "ci_low", "ci_high"]].round(3).to_numpy().tolist()
    [[0.915, 0.299, 0.994]]
    """
    return _icc_fit(data, targets, raters, ratings, confidence=confidence,
                    nan_policy=nan_policy, r0=r0).table


# ---------------------------------------------------------------------------------------------
# SEM and MDC
# ---------------------------------------------------------------------------------------------
_SEM_METHODS = ("within", "agreement", "error", "icc")


def sem(data: pd.DataFrame | None = None, targets=None, raters=None, ratings=None, *,
        method: str = "within", form: str = "ICC(A,1)", sd: float | None = None,
        icc_value: float | None = None, nan_policy: str = "raise") -> float:
    r"""Standard error of measurement (SEM), in the unit of the ratings.

    Either from numbers (``sd`` and ``icc_value``: ``SEM = SD * sqrt(1 - ICC)``) or from data
    (long format, as for :func:`icc`).

    Parameters
    ----------
    data, targets, raters, ratings
        As in :func:`icc`.
    method : {"within", "agreement", "error", "icc"}
        ``"within"`` (default): ``sqrt(MSW)``, the within-target standard deviation of the
        one-way model (typical error; includes systematic rater/trial differences).
        ``"agreement"``: ``sqrt(s2_r + s2_e)`` from the two-way model, the SEM matching
        ICC(A,1). ``"error"``: ``sqrt(MSE)``, the consistency SEM that removes systematic
        rater/trial differences (matches ICC(C,1)). ``"icc"``: ``SD * sqrt(1 - ICC)`` with SD the
        standard deviation of all ratings and ICC the ``form`` estimate.
    form : str
        ICC form for ``method="icc"`` (McGraw & Wong or Shrout & Fleiss name).
    sd, icc_value : float, optional
        Give both (and no data) to apply ``SD * sqrt(1 - ICC)`` directly.
    nan_policy : str
        As in :func:`icc`.

    Returns
    -------
    float
        In words: the typical error of a single reading is about ±SEM (95% of readings within
        ±1.96·SEM of the participant's true value, for normally distributed errors).

    References
    ----------
    Weir (2005); de Vet HCW et al. (2006) J Clin Epidemiol 59:1033-1039.

    Examples
    --------
    >>> from hipstats.reliability import sem
    >>> round(sem(sd=9.0, icc_value=0.9), 3)
    2.846
    """
    if data is None:
        if sd is None or icc_value is None:
            raise ValueError("give data (with targets, raters, ratings) or both sd and icc_value")
        if sd < 0 or not -1 <= icc_value <= 1:
            raise ValueError(f"need sd >= 0 and -1 <= icc_value <= 1, got {sd}, {icc_value}")
        return float(sd * np.sqrt(1.0 - icc_value))
    if method not in _SEM_METHODS:
        raise ValueError(f"method must be one of {_SEM_METHODS}, got {method!r}")
    fit = _icc_fit(data, targets, raters, ratings, nan_policy=nan_policy, what="sem")
    return _sem_from_fit(fit, method, form)


def _sem_from_fit(fit: _IccFit, method: str, form: str = "ICC(A,1)") -> float:
    vc = fit.variance_components
    if method == "within":
        return float(np.sqrt(vc["within"]))
    if method == "error":
        return float(np.sqrt(vc["residual"]))
    if method == "agreement":
        return float(np.sqrt(max(vc["rater"], 0.0) + vc["residual"]))
    form = _FORM_ALIASES.get(form, form)
    row = fit.table.loc[fit.table["form"] == form]
    if row.empty:
        raise ValueError(f"unknown ICC form {form!r}; use one of {[f[0] for f in ICC_FORMS]}")
    return float(fit.sd * np.sqrt(max(1.0 - float(row["icc"].iloc[0]), 0.0)))


def mdc(sem_value=None, *, confidence: float = 0.95, data=None, targets=None, raters=None,
        ratings=None, method: str = "within", nan_policy: str = "raise"):
    r"""Minimal detectable change: ``MDC = z * sqrt(2) * SEM``.

    The smallest change between two readings of one person that exceeds measurement error with
    the given confidence (``z`` the two-sided normal quantile, 1.96 for 95%).

    Parameters
    ----------
    sem_value : float or array, optional
        A standard error of measurement. If omitted, it is computed from ``data`` with
        :func:`sem` (``method``, ``nan_policy`` passed on).
    confidence : float
        Confidence level (0.95 gives MDC95).

    Returns
    -------
    float or ndarray

    References
    ----------
    Weir (2005); Haley SM, Fragala-Pinkham MA (2006) Phys Ther 86:735-743.

    Examples
    --------
    >>> from hipstats.reliability import mdc
    >>> round(mdc(2.0), 3)
    5.544
    """
    confidence = _check_confidence(confidence)
    if sem_value is None:
        if data is None:
            raise ValueError("give sem_value or data (with targets, raters, ratings)")
        sem_value = sem(data, targets, raters, ratings, method=method, nan_policy=nan_policy)
    out = _z(confidence) * np.sqrt(2.0) * np.asarray(sem_value, dtype=float)
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------------------------------------
# Bland-Altman limits of agreement
# ---------------------------------------------------------------------------------------------
_BA_CI_METHODS = ("approx", "simple", "exact")


@dataclass
class BlandAltmanResult:
    """Limits of agreement between two measurement methods (or raters, sessions).

    Attributes
    ----------
    x, y : str
        Column names; differences are ``x - y``.
    method : str
        ``"classic"``, ``"repeated, true value varying"`` or ``"repeated, true value constant"``.
    n : int
        Number of pairs (classic, varying) or of readings (constant).
    n_subjects : int
        Number of subjects (equal to ``n`` for the classic analysis).
    bias, sd : float
        Mean difference and standard deviation of differences between single readings.
    loa_low, loa_high : float
        ``bias -/+ limits * sd``.
    bias_ci, loa_low_ci, loa_high_ci : tuple of float
        Confidence intervals at level ``confidence``.
    bias_pval : float
        Two-sided p-value of the t test of zero bias.
    slope, slope_ci, slope_pval, intercept : float
        Proportional bias: least-squares regression of difference on mean.
    points : DataFrame
        ``mean``, ``diff`` (and ``subject``) of the plotted points.
    """

    x: str
    y: str
    method: str
    n: int
    n_subjects: int
    bias: float
    sd: float
    loa_low: float
    loa_high: float
    bias_ci: tuple[float, float]
    loa_low_ci: tuple[float, float]
    loa_high_ci: tuple[float, float]
    bias_pval: float
    slope: float
    slope_ci: tuple[float, float]
    slope_pval: float
    intercept: float
    limits: float
    confidence: float
    ci_method: str
    points: pd.DataFrame = field(repr=False)
    details: dict = field(default_factory=dict, repr=False)

    def summary(self) -> pd.DataFrame:
        """Bias, limits of agreement and proportional-bias slope with CIs (one row each)."""
        rows = {
            "bias": (self.bias, *self.bias_ci, self.bias_pval),
            "loa_low": (self.loa_low, *self.loa_low_ci, np.nan),
            "loa_high": (self.loa_high, *self.loa_high_ci, np.nan),
            "slope": (self.slope, *self.slope_ci, self.slope_pval),
        }
        out = pd.DataFrame.from_dict(rows, orient="index",
                                     columns=["estimate", "ci_low", "ci_high", "pval"])
        out.index.name = "statistic"
        out.attrs.update(method=self.method, n=self.n, n_subjects=self.n_subjects,
                         sd=self.sd, confidence=self.confidence, limits=self.limits)
        return out

    def to_frame(self) -> pd.DataFrame:
        """One-row wide DataFrame with every number of the analysis."""
        return pd.DataFrame([{
            "x": self.x, "y": self.y, "method": self.method, "n": self.n,
            "n_subjects": self.n_subjects, "bias": self.bias, "bias_ci_low": self.bias_ci[0],
            "bias_ci_high": self.bias_ci[1], "bias_pval": self.bias_pval, "sd": self.sd,
            "loa_low": self.loa_low, "loa_low_ci_low": self.loa_low_ci[0],
            "loa_low_ci_high": self.loa_low_ci[1], "loa_high": self.loa_high,
            "loa_high_ci_low": self.loa_high_ci[0], "loa_high_ci_high": self.loa_high_ci[1],
            "slope": self.slope, "slope_ci_low": self.slope_ci[0],
            "slope_ci_high": self.slope_ci[1], "slope_pval": self.slope_pval,
            "limits": self.limits, "confidence": self.confidence, "ci_method": self.ci_method,
        }])

    def plot(self, **kwargs):
        """Bland-Altman plot; see :func:`hipstats.plots.reliability.bland_altman_plot`."""
        from hipstats.plots.reliability import bland_altman_plot

        return bland_altman_plot(self, **kwargs)

    def __str__(self) -> str:
        c = round(100 * self.confidence)
        return (f"Bland-Altman ({self.method}), {self.x} - {self.y}: n = {self.n}"
                f" ({self.n_subjects} subjects); bias {self.bias:.3g} "
                f"[{c}% CI {self.bias_ci[0]:.3g}, {self.bias_ci[1]:.3g}], SD {self.sd:.3g}, "
                f"limits of agreement {self.loa_low:.3g} to {self.loa_high:.3g}")

    def _repr_html_(self) -> str:
        head = (f"<p><b>Bland-Altman limits of agreement</b> ({html.escape(str(self.method))}): "
                f"<code>{html.escape(str(self.x))}</code> &minus; <code>{html.escape(str(self.y))}</code>, n = {self.n} "
                f"({self.n_subjects} subjects), SD of differences {self.sd:.4g}, limits = bias "
                f"&plusmn; {self.limits:g} SD, {round(100 * self.confidence)}% CIs "
                f"({html.escape(str(self.ci_method))}).</p>")
        return head + self.summary().to_html(float_format=lambda v: f"{v:.4g}", na_rep="")


def _ols_slope(mean: np.ndarray, diff: np.ndarray, confidence: float):
    """Least-squares slope of difference on mean with its t-based CI and p-value."""
    n = mean.size
    if n < 3 or np.ptp(mean) == 0:
        return np.nan, (np.nan, np.nan), np.nan, np.nan
    mc = mean - mean.mean()
    sxx = mc @ mc
    slope = (mc @ diff) / sxx
    intercept = diff.mean() - slope * mean.mean()
    resid = diff - intercept - slope * mean
    se = np.sqrt((resid @ resid) / (n - 2) / sxx)
    t = stats.t.ppf(0.5 + confidence / 2, n - 2)
    p = 2 * stats.t.sf(abs(slope / se), n - 2) if se > 0 else 0.0
    return float(slope), (float(slope - t * se), float(slope + t * se)), float(p), float(intercept)


def _single_reading_error(counts: pd.Series, what: str) -> None:
    ones = counts.index[counts.to_numpy() < 2].tolist()
    if ones:
        raise AnalysisError(
            f"bland_altman: {len(ones)} subject(s) have a single {what}, e.g. {ones[:5]}; "
            "repeated-measures limits need at least two per subject. Drop those subjects or "
            "use subject=None for the classic analysis of independent pairs."
        )


def bland_altman(data: pd.DataFrame, x: str, y: str, subject: str | None = None, *,
                 limits: float = 1.96, confidence: float = 0.95,
                 true_value: str = "varying", ci_method: str = "approx") -> BlandAltmanResult:
    r"""Bland-Altman limits of agreement, classic or for repeated measurements per subject.

    Parameters
    ----------
    data : DataFrame
        One row per pair of readings (``x`` and ``y`` taken together), or, for
        ``true_value="constant"``, one row per reading with the other column empty if the
        readings were not paired.
    x, y : str
        Columns with the two methods' readings; differences are ``x - y``.
    subject : str, optional
        Subject column. When given, the Bland & Altman (2007) repeated-measures limits are
        computed; every subject needs at least two pairs (two readings by each method).
    limits : float
        Multiplier of the SD of differences (1.96 for 95% limits; the 1986 paper used 2).
    confidence : float
        Level of the confidence intervals.
    true_value : {"varying", "constant"}
        Repeated measures only: whether the true value changes between a subject's pairs
        (e.g. readings at different visits) or stays constant (replicate readings).
    ci_method : {"approx", "simple", "exact"}
        CIs of the limits. ``"approx"`` (default): Bland & Altman (1999), ``SE^2 = s^2 (1/n +
        limits^2 / (2(n-1)))`` with a t quantile on ``n - 1`` df. ``"simple"``: the 1986
        shortcut ``SE = sqrt(3 s^2 / n)``. ``"exact"``: Carkeet (2015) non-central t intervals
        (classic analysis only). Repeated measures: ``"approx"`` by the delta method, ``SE^2 =
        Var(bias) + limits^2 Var(s^2) / (4 s^2)`` with ``Var(MS) = 2 MS^2 / df`` for each mean
        square in ``s^2``, t quantile on ``n_subjects - 1`` df.

    Returns
    -------
    BlandAltmanResult
        ``.summary()``, ``.to_frame()``, ``.plot()``, HTML repr.

    Notes
    -----
    Classic: ``d = x - y``, bias ``= mean(d)``, ``s = SD(d)``, limits ``bias +/- limits * s``;
    CI of the bias ``bias +/- t_{n-1} s / sqrt(n)``.

    Repeated, true value varying (Bland & Altman 2007, section 5): one-way ANOVA of ``d`` on
    subject with ``m_i`` pairs per subject, ``N = sum m_i``: ``s^2 = s_b^2 + MSW`` with
    ``s_b^2 = (MSB - MSW) / c``, ``c = (N^2 - sum m_i^2) / ((n - 1) N)`` (set to 0 if negative);
    bias is the mean of all differences.

    Repeated, true value constant (section 3): subject means ``xbar_i``, ``ybar_i``,
    ``s^2 = var(xbar_i - ybar_i) + (1 - 1/m_xh) s_xw^2 + (1 - 1/m_yh) s_yw^2`` with ``s_xw^2``
    the within-subject variance of method x and ``m_xh`` the harmonic mean of the numbers of x
    readings per subject; bias is the mean of ``xbar_i - ybar_i``.

    Proportional bias is the least-squares slope of difference on mean over the pairs (classic)
    or over the subject means (repeated measures, so that subjects are the independent units).

    References
    ----------
    Bland & Altman (1986, 1999, 2007); Carkeet (2015).

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.reliability import bland_altman
    >>> df = pd.DataFrame({"r1": [30, 41, 35, 28, 44, 38], "r2": [32, 40, 37, 31, 45, 37]})
    >>> res = bland_altman(df, "r1", "r2")
    >>> round(res.bias, 3), round(res.sd, 3)
    (-1.0, 1.673)
    """
    confidence = _check_confidence(confidence)
    if ci_method not in _BA_CI_METHODS:
        raise ValueError(f"ci_method must be one of {_BA_CI_METHODS}, got {ci_method!r}")
    if true_value not in ("varying", "constant"):
        raise ValueError(f"true_value must be 'varying' or 'constant', got {true_value!r}")
    cols = [x, y] + ([subject] if subject is not None else [])
    _require_columns(data, cols, "bland_altman")
    df = pd.DataFrame({c: data[c].to_numpy() for c in dict.fromkeys(cols)})
    df[x] = pd.to_numeric(df[x], errors="coerce")
    df[y] = pd.to_numeric(df[y], errors="coerce")
    if subject is not None and ci_method == "exact":
        raise ValueError("ci_method='exact' is available for the classic analysis only")
    if subject is not None and df[subject].isna().any():
        raise AnalysisError(f"bland_altman: {int(df[subject].isna().sum())} row(s) have no "
                            f"{subject!r}")
    if subject is None:
        fit = _ba_classic(df, x, y, limits, confidence, ci_method)
    elif true_value == "varying":
        fit = _ba_varying(df, x, y, subject, limits, confidence)
    else:
        fit = _ba_constant(df, x, y, subject, limits, confidence)
    pts = fit.pop("points")
    slope, slope_ci, slope_p, intercept = _ols_slope(
        fit.pop("reg_mean"), fit.pop("reg_diff"), confidence)
    return BlandAltmanResult(x=x, y=y, limits=float(limits), confidence=confidence,
                             ci_method=ci_method, slope=slope, slope_ci=tuple(map(float, slope_ci)),
                             slope_pval=slope_p, intercept=intercept, points=pts, **fit)


def _ba_paired(df, x, y, what):
    xv, yv = df[x].to_numpy(float), df[y].to_numpy(float)
    ok = np.isfinite(xv) & np.isfinite(yv)
    if ok.sum() < 3:
        raise AnalysisError(f"bland_altman: need at least 3 complete {x}/{y} pairs, got "
                            f"{int(ok.sum())}{what}")
    d = xv[ok] - yv[ok]
    if np.ptp(d) == 0:
        raise AnalysisError(f"bland_altman: all differences {x} - {y} equal {d[0]:g}; the "
                            "limits of agreement have no spread to estimate")
    return ok, d, (xv[ok] + yv[ok]) / 2


def _ba_limits(bias, se_bias, sd, var_sd2, df, limits, confidence, n_pairs, n_subjects,
               method, points, reg_mean, reg_diff, details):
    """Limits and their delta-method CIs (the 1999 approximation for the classic case)."""
    t = stats.t.ppf(0.5 + confidence / 2, df)
    se_loa = np.sqrt(se_bias**2 + limits**2 * var_sd2 / (4 * sd**2))
    lo, hi = bias - limits * sd, bias + limits * sd
    tstat = bias / se_bias
    return dict(method=method, n=n_pairs, n_subjects=n_subjects, bias=float(bias), sd=float(sd),
                loa_low=float(lo), loa_high=float(hi),
                bias_ci=(float(bias - t * se_bias), float(bias + t * se_bias)),
                loa_low_ci=(float(lo - t * se_loa), float(lo + t * se_loa)),
                loa_high_ci=(float(hi - t * se_loa), float(hi + t * se_loa)),
                bias_pval=float(2 * stats.t.sf(abs(tstat), df)), points=points,
                reg_mean=reg_mean, reg_diff=reg_diff, details=details)


def _ba_classic(df, x, y, limits, confidence, ci_method):
    ok, d, m = _ba_paired(df, x, y, "")
    n = d.size
    bias, sd = d.mean(), d.std(ddof=1)
    points = pd.DataFrame({"mean": m, "diff": d})
    out = _ba_limits(bias, sd / np.sqrt(n), sd, 2 * sd**4 / (n - 1), n - 1, limits, confidence,
                     n, n, "classic", points, m, d, {"dropped_rows": int(len(df) - n)})
    if ci_method == "simple":
        t = stats.t.ppf(0.5 + confidence / 2, n - 1)
        h = t * np.sqrt(3 * sd**2 / n)
        out["loa_low_ci"] = (out["loa_low"] - h, out["loa_low"] + h)
        out["loa_high_ci"] = (out["loa_high"] - h, out["loa_high"] + h)
    elif ci_method == "exact":
        q_lo, q_hi = _nct_quantiles(n, float(limits), confidence)
        out["loa_high_ci"] = (float(bias + q_lo * sd), float(bias + q_hi * sd))
        out["loa_low_ci"] = (float(bias - q_hi * sd), float(bias - q_lo * sd))
    return out


@lru_cache(maxsize=256)
def _nct_quantiles(n: int, limits: float, confidence: float) -> tuple[float, float]:
    """Carkeet (2015) factors: non-central t quantiles (df n-1, ncp limits*sqrt(n)) / sqrt(n)."""
    a = 1 - confidence
    q = stats.nct.ppf([a / 2, 1 - a / 2], n - 1, limits * np.sqrt(n)) / np.sqrt(n)
    return float(q[0]), float(q[1])


def _ba_varying(df, x, y, subject, limits, confidence):
    ok, d, mean = _ba_paired(df, x, y, "")
    s = df[subject].to_numpy()[ok]
    codes, labels = pd.factorize(s)
    m_i = np.bincount(codes).astype(float)
    _single_reading_error(pd.Series(m_i, index=labels), "pair of readings")
    n, N = m_i.size, d.size
    d_i = np.bincount(codes, weights=d) / m_i
    mean_i = np.bincount(codes, weights=mean) / m_i
    msw = ((d - d_i[codes]) ** 2).sum() / (N - n)
    bias = d.mean()
    msb = (m_i * (d_i - bias) ** 2).sum() / (n - 1)
    c = (N**2 - (m_i**2).sum()) / ((n - 1) * N)
    s2b = max((msb - msw) / c, 0.0)
    var_total = s2b + msw
    if s2b > 0:
        var_s2 = 2 * msb**2 / (c**2 * (n - 1)) + 2 * (1 - 1 / c) ** 2 * msw**2 / (N - n)
    else:
        var_s2 = 2 * msw**2 / (N - n)
    se_bias = np.sqrt((s2b * (m_i**2).sum() + msw * N) / N**2)
    points = pd.DataFrame({"mean": mean, "diff": d, "subject": s})
    details = dict(msb=msb, msw=msw, c=c, var_between=s2b, var_within=msw)
    return _ba_limits(bias, se_bias, np.sqrt(var_total), var_s2, n - 1, limits, confidence, N,
                      n, "repeated, true value varying", points, mean_i, d_i, details)


def _ba_constant(df, x, y, subject, limits, confidence):
    parts = {}
    for col in (x, y):
        v = df[[subject, col]].dropna()
        counts = v.groupby(subject, sort=True, observed=True)[col].size()
        _single_reading_error(counts, f"reading of {col!r}")
        means = v.groupby(subject, sort=True, observed=True)[col].mean()
        ss = ((v[col] - v[subject].map(means)) ** 2).sum()
        dfw = len(v) - counts.size
        parts[col] = dict(means=means, counts=counts, s2w=ss / dfw, dfw=dfw, N=len(v))
    sx, sy = set(parts[x]["means"].index), set(parts[y]["means"].index)
    if sx != sy:
        odd = sorted(map(str, sx ^ sy))
        raise AnalysisError(f"bland_altman: subject(s) {odd[:5]} have readings by only one of "
                            f"{x!r} and {y!r}")
    n = len(sx)
    if n < 3:
        raise AnalysisError(f"bland_altman: need at least 3 subjects, got {n}")
    xm, ym = parts[x]["means"], parts[y]["means"].reindex(parts[x]["means"].index)
    d_i = (xm - ym).to_numpy(float)
    s2d = d_i.var(ddof=1)
    var_total, var_s2 = s2d, 2 * s2d**2 / (n - 1)
    for col in (x, y):
        p = parts[col]
        mh = n / (1.0 / p["counts"].to_numpy(float)).sum()
        w = 1 - 1 / mh
        var_total += w * p["s2w"]
        var_s2 += w**2 * 2 * p["s2w"] ** 2 / p["dfw"]
    if var_total <= 0:
        raise AnalysisError("bland_altman: the differences have no spread to estimate")
    mean_i = ((xm + ym) / 2).to_numpy(float)
    points = pd.DataFrame({"mean": mean_i, "diff": d_i, "subject": xm.index.to_numpy()})
    details = dict(var_mean_diff=s2d, var_within_x=parts[x]["s2w"], var_within_y=parts[y]["s2w"])
    return _ba_limits(d_i.mean(), np.sqrt(s2d / n), np.sqrt(var_total), var_s2, n - 1, limits,
                      confidence, parts[x]["N"] + parts[y]["N"], n,
                      "repeated, true value constant", points, mean_i, d_i, details)


# ---------------------------------------------------------------------------------------------
# Kappa
# ---------------------------------------------------------------------------------------------
def _categories(values: Sequence, categories, what: str) -> list:
    observed = pd.unique(pd.Series(values))
    if categories is None:
        try:
            return sorted(observed)
        except TypeError:
            return sorted(observed, key=str)
    cats = list(categories)
    extra = [v for v in observed if v not in set(cats)]
    if extra:
        raise AnalysisError(f"{what}: rating(s) {extra[:5]} not among categories {cats}")
    return cats


def _kappa_weights(K: int, weights) -> np.ndarray:
    i = np.arange(K)
    dist = np.abs(i[:, None] - i[None, :]) / max(K - 1, 1)
    if weights is None:
        return np.eye(K)
    if weights == "linear":
        return 1.0 - dist
    if weights == "quadratic":
        return 1.0 - dist**2
    raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")


def cohen_kappa(data: pd.DataFrame, rater1: str, rater2: str, *, weights: str | None = None,
                confidence: float = 0.95, categories: Sequence | None = None) -> pd.DataFrame:
    r"""Cohen's kappa for two raters, unweighted or weighted, with standard error and CI.

    Parameters
    ----------
    data : DataFrame
        One row per rated subject, one column per rater (rows with a missing rating are
        dropped).
    rater1, rater2 : str
        Columns holding the two raters' categories.
    weights : {None, "linear", "quadratic"}
        Agreement weights for ordinal categories, ``1 - |i - j|/(K - 1)`` or
        ``1 - (i - j)^2/(K - 1)^2`` by position in ``categories``.
    confidence : float
        Level of the normal-theory CI.
    categories : sequence, optional
        The ordered category list (e.g. ``range(6)`` for the Mens ASLR score 0-5). By default
        the sorted union of the observed ratings; pass the full scale so that weights reflect
        the real distances when some scores are never used.

    Returns
    -------
    DataFrame
        One row: ``kappa``, ``se``, ``ci_low``, ``ci_high``, ``z`` and ``pval`` (test of
        kappa = 0 with the null standard error), ``po``, ``pe``, ``n``, ``n_categories``,
        ``weights``.

    Notes
    -----
    With observed proportions ``p_ij``, margins ``p_i.``, ``p_.j`` and weights ``w_ij``:
    ``po = sum w_ij p_ij``, ``pe = sum w_ij p_i. p_.j``, ``kappa = (po - pe)/(1 - pe)``.
    Large-sample variance (Fleiss, Cohen & Everitt 1969), with
    ``wbar_i. = sum_j p_.j w_ij`` and ``wbar_.j = sum_i p_i. w_ij``:

    .. math::

        \mathrm{Var}(\hat\kappa) = \frac{\sum_{ij} p_{ij}\,[w_{ij} - (\bar w_{i.} + \bar w_{.j})
        (1 - \hat\kappa)]^2 - [\hat\kappa - p_e (1 - \hat\kappa)]^2}{n (1 - p_e)^2}

    and under the null ``Var_0 = (sum p_i. p_.j [w_ij - (wbar_i. + wbar_.j)]^2 - pe^2) /
    (n (1 - pe)^2)``. The CI is ``kappa +/- z * SE`` (as psych::cohen.kappa).

    References
    ----------
    Cohen J (1960, 1968); Fleiss, Cohen & Everitt (1969).

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.reliability import cohen_kappa
    >>> df = pd.DataFrame({"a": [0, 1, 2, 2, 1, 0, 2, 1], "b": [0, 1, 2, 1, 1, 0, 2, 2]})
    >>> round(float(cohen_kappa(df, "a", "b")["kappa"].iloc[0]), 3)
    0.619
    """
    confidence = _check_confidence(confidence)
    _require_columns(data, [rater1, rater2], "cohen_kappa")
    df = data[[rater1, rater2]].dropna()
    n = len(df)
    if n < 2:
        raise AnalysisError(
            f"cohen_kappa: need at least two subjects rated by both raters, got {n}")
    cats = _categories(np.concatenate([df[rater1].to_numpy(), df[rater2].to_numpy()]),
                       categories, "cohen_kappa")
    K = len(cats)
    a = pd.Categorical(df[rater1], categories=cats).codes
    b = pd.Categorical(df[rater2], categories=cats).codes
    p = np.zeros((K, K))
    np.add.at(p, (a, b), 1.0)
    p /= n
    w = _kappa_weights(K, weights)
    pr, pc = p.sum(axis=1), p.sum(axis=0)
    po = (w * p).sum()
    pe = (w * np.outer(pr, pc)).sum()
    if np.isclose(pe, 1.0):
        raise AnalysisError("cohen_kappa: both raters used a single and the same category for "
                            "every subject; chance agreement is 1 and kappa is undefined")
    kappa = (po - pe) / (1 - pe)
    wr = w @ pc  # wbar_i.
    wc = pr @ w  # wbar_.j
    wsum = wr[:, None] + wc[None, :]
    var = (((p * (w - wsum * (1 - kappa)) ** 2).sum() - (kappa - pe * (1 - kappa)) ** 2)
           / (n * (1 - pe) ** 2))
    var0 = ((np.outer(pr, pc) * (w - wsum) ** 2).sum() - pe**2) / (n * (1 - pe) ** 2)
    se, se0 = np.sqrt(max(var, 0.0)), np.sqrt(max(var0, 0.0))
    z = _z(confidence)
    zstat = kappa / se0 if se0 > 0 else np.inf
    return pd.DataFrame([dict(kappa=kappa, se=se, ci_low=kappa - z * se, ci_high=kappa + z * se,
                              z=zstat, pval=float(2 * stats.norm.sf(abs(zstat))), po=po, pe=pe,
                              n=n, n_categories=K, weights=weights or "none")])


def fleiss_kappa(data: pd.DataFrame, subject: str, rater: str, rating: str, *,
                 categories: Sequence | None = None) -> pd.DataFrame:
    r"""Fleiss' kappa: chance-corrected agreement of several raters on nominal categories.

    Parameters
    ----------
    data : DataFrame
        Long format, one row per (subject, rater) rating.
    subject, rater, rating : str
        Columns. Every subject must be rated by the same number ``m >= 2`` of raters (they need
        not be the same raters); a rater may rate a subject only once.
    categories : sequence, optional
        Category list (default: observed categories).

    Returns
    -------
    DataFrame
        One row: ``kappa``, ``se`` (under the null), ``z``, ``pval``, ``p_agree`` (mean observed
        agreement), ``p_chance``, ``n_subjects``, ``n_raters``, ``n_categories``. Per-category
        kappas are in ``.attrs["category_kappa"]``.

    Notes
    -----
    With ``n_ij`` the number of raters putting subject ``i`` in category ``j``,
    ``p_j = sum_i n_ij / (N m)``, ``P_i = (sum_j n_ij^2 - m)/(m (m - 1))``:
    ``kappa = (mean P_i - sum p_j^2)/(1 - sum p_j^2)``. Null variance (Fleiss, Nee & Landis
    1979, as irr::kappam.fleiss): ``2 [(sum p_j q_j)^2 - sum p_j q_j (q_j - p_j)] /
    (N m (m - 1) (sum p_j q_j)^2)``, ``q_j = 1 - p_j``. With two raters Fleiss' kappa equals
    Scott's pi.

    References
    ----------
    Fleiss (1971); Fleiss JL, Nee JCM, Landis JR (1979) Psychol Bull 86:974-977.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.reliability import fleiss_kappa
    >>> df = pd.DataFrame({"s": [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4],
    ...                    "r": ["A", "B", "C"] * 4,
    ...                    "c": ["ant", "ant", "neu", "neu", "neu", "neu",
    ...                          "pos", "pos", "neu", "ant", "ant", "ant"]})
    >>> round(float(fleiss_kappa(df, "s", "r", "c")["kappa"].iloc[0]), 3)
    0.467
    """
    _require_columns(data, [subject, rater, rating], "fleiss_kappa")
    df = data[[subject, rater, rating]].dropna()
    dup = df.duplicated([subject, rater])
    if dup.any():
        ex = df.loc[dup, [subject, rater]].head(3).to_records(index=False).tolist()
        raise AnalysisError(f"fleiss_kappa: {int(dup.sum())} repeated (subject, rater) "
                            f"rating(s), e.g. {ex}; give one rating per rater and subject")
    cats = _categories(df[rating].to_numpy(), categories, "fleiss_kappa")
    counts = pd.crosstab(df[subject], df[rating]).reindex(columns=cats, fill_value=0)
    m_i = counts.sum(axis=1)
    if m_i.nunique() != 1:
        mode = int(m_i.mode().iloc[0])
        odd = m_i.index[m_i != mode].tolist()
        raise AnalysisError(f"fleiss_kappa: every subject needs the same number of raters; most "
                            f"have {mode} but subject(s) {odd[:5]} have "
                            f"{sorted(set(m_i[odd].tolist()))}")
    nmat = counts.to_numpy(float)
    N, m = nmat.shape[0], int(m_i.iloc[0])
    if m < 2:
        raise AnalysisError(f"fleiss_kappa: need at least two raters per subject, got {m}")
    if N < 2:
        raise AnalysisError(f"fleiss_kappa: need at least two subjects, got {N}")
    pj = nmat.sum(axis=0) / (N * m)
    qj = 1 - pj
    if np.isclose(pj.max(), 1.0):
        raise AnalysisError("fleiss_kappa: every rating is the same category; kappa is undefined")
    P_i = ((nmat**2).sum(axis=1) - m) / (m * (m - 1))
    p_agree, p_chance = P_i.mean(), (pj**2).sum()
    kappa = (p_agree - p_chance) / (1 - p_chance)
    pq = (pj * qj).sum()
    var0 = 2 * (pq**2 - (pj * qj * (qj - pj)).sum()) / (N * m * (m - 1) * pq**2)
    se = np.sqrt(var0)
    zstat = kappa / se
    with np.errstate(divide="ignore", invalid="ignore"):
        kj = 1 - (nmat * (m - nmat)).sum(axis=0) / (N * m * (m - 1) * pj * qj)
    out = pd.DataFrame([dict(kappa=kappa, se=se, z=zstat,
                             pval=float(2 * stats.norm.sf(abs(zstat))), p_agree=p_agree,
                             p_chance=p_chance, n_subjects=N, n_raters=m,
                             n_categories=len(cats))])
    out.attrs["category_kappa"] = dict(zip(cats, kj.tolist()))
    return out


# ---------------------------------------------------------------------------------------------
# One-call summary for a cohort
# ---------------------------------------------------------------------------------------------
_DEFAULT_MEASURES = ("aslr_deg", "hip_ir_deg", "pelvic_tilt_deg", "aslr_mens_score",
                     "aslr_fms_score")
_DESIGNS = ("trial-to-trial", "session-to-session", "rater-to-rater")
_CONDITIONS = ("pelvis", "position", "device")


def _score_scale(measure: str):
    from hipstats.schema import MEASURES

    m = MEASURES.get(measure)
    if m is None or not m.is_score:
        return None
    lo, hi = m.plausible
    return list(range(int(lo), int(hi) + 1))


def _design_frame(df: pd.DataFrame, design: str, baseline_visit: str, retest_visit: str,
                  primary_rater: str | None):
    """Rows, targets and 'raters' column for one design, or a reason why it cannot be done."""
    has_rater = "rater" in df.columns and (df["rater"] != "").any()
    if design == "trial-to-trial":
        targets = ["participant_id", "visit", "side"] + (["rater"] if has_rater else [])
        if df["trial"].nunique() < 2:
            return None, "only one trial per visit"
        return (df, targets, "trial"), None
    if design == "session-to-session":
        sub = df[df["visit"].isin([baseline_visit, retest_visit])]
        if has_rater and not sub.empty:
            rater = primary_rater if primary_rater is not None else sub["rater"].mode().iloc[0]
            if not (sub["rater"] == rater).any():
                return None, (f"rater {rater!r} has no {baseline_visit!r}/{retest_visit!r} "
                              "readings (set primary_rater)")
            sub = sub[sub["rater"] == rater]
        if sub["visit"].nunique() < 2:
            return None, f"no {retest_visit!r} visit to pair with {baseline_visit!r}"
        return (sub, ["participant_id", "side"], "visit"), None
    if not has_rater or df["rater"].nunique() < 2:
        return None, "only one rater"
    return (df, ["participant_id", "visit", "side"], "rater"), None


def reliability_summary(data, *, measures: Sequence[str] | None = None,
                        designs: Sequence[str] = _DESIGNS, form: str = "ICC(A,1)",
                        confidence: float = 0.95, baseline_visit: str = "baseline",
                        retest_visit: str = "retest", primary_rater: str | None = "R1",
                        nan_policy: str = "omit",
                        tilt_cuts: Sequence[float] | None = None, ci: str = "cluster",
                        n_boot: int = 1000, seed=0) -> pd.DataFrame:
    r"""Reliability of every measure by design: participants, ICC with CI, SEM and MDC95.

    The targets of an ICC here are participant-sides (or participant-side-visits): the two
    sides and the visits of one participant are *not* independent targets, so the F-based
    ICC interval (which assumes independent targets) is too narrow. The default CI is
    therefore a participant-cluster bootstrap: participants are drawn with replacement, each
    bringing all their targets, and the ICC (same McGraw & Wong formula) and SEM are
    re-estimated in each of ``n_boot`` draws (vectorised); the CI is the point estimate
    ± :math:`t_{G-1}` bootstrap SEs on the Fisher z scale of the ICC (log scale of the SEM),
    transformed back (:math:`G` participants; MDC95 CI = 1.96 sqrt 2 x SEM CI). The point
    estimates are those of the full data. The F-based CI is kept as ``ci_low_f`` /
    ``ci_high_f``.

    Parameters
    ----------
    data : Cohort or DataFrame
        A cohort (anything with a ``.measurements`` table) or a measurements DataFrame in the
        data contract's long format (``participant_id``, ``visit``, ``measure``, ``side``,
        ``value``, ``trial``, optional ``rater``, ``pelvis``, ``position``, ``device``).
    measures : list of str, optional
        Measures to summarise (default: aslr_deg, hip_ir_deg, pelvic_tilt_deg and the two ASLR
        scores, those present).
    designs : sequence of str
        Any of ``"trial-to-trial"`` (trials of the same participant, visit, side and rater;
        the ICC of a single trial), ``"session-to-session"`` (``baseline_visit`` vs
        ``retest_visit`` by ``primary_rater``; trial-mean readings), ``"rater-to-rater"``
        (raters at the same visit; trial-mean readings).
    form : str
        ICC form reported (default ICC(A,1), absolute agreement of a single reading).
    confidence : float
        Level of the ICC confidence interval (the MDC is always MDC95).
    baseline_visit, retest_visit : str
        Visit labels of the test-retest pair.
    primary_rater : str or None
        Rater whose baseline and retest readings are compared (None: the most frequent rater).
    nan_policy : {"omit", "model", "raise"}
        Passed to :func:`icc` (default: drop targets without a complete set of readings).
    tilt_cuts : pair of float, optional
        Cut points of the posterior / neutral / anterior tilt classes used for the tilt-class
        kappa (default ``hipstats.schema.DEFAULT_TILT_CUTS``).
    ci : {"cluster", "f"}
        What ``ci_low`` / ``ci_high`` hold: the participant-cluster bootstrap CI (default) or
        the F-based CI (targets as independent; always also in ``ci_low_f`` / ``ci_high_f``).
        With ``nan_policy="model"`` (REML) or fewer than 3 participants no bootstrap is done
        and the F-based CI is reported (see ``ci_method``).
    n_boot : int
        Bootstrap draws (default 1000).
    seed : int or numpy Generator seed
        Seed of the bootstrap (results are reproducible).

    Returns
    -------
    DataFrame
        One row per measure, condition (pelvis, position, device where recorded) and design:
        ``n_participants`` (the independent units: the effective sample size for the CIs),
        ``n`` (targets: participant-sides, or participant-side-visits),
        ``k`` (readings compared), ``form``, ``icc``, ``ci_low``, ``ci_high`` (the CI of
        ``ci_method``), ``ci_low_f``, ``ci_high_f`` (F-based, targets as independent),
        ``ci_method``, ``sem`` (``sqrt(MS_within)``, the within-target SD in the measure's
        unit: the typical error of a single reading is about ±SEM, 95% of readings within
        ±1.96·SEM of the participant's true value) with ``sem_ci_low``, ``sem_ci_high``,
        ``mdc95`` (``1.96 sqrt(2) SEM``) with ``mdc95_ci_low``, ``mdc95_ci_high`` (bootstrap
        CIs; NaN without bootstrap) and, where two readings are compared, ``kappa`` with
        ``kappa_ci_low``/``kappa_ci_high`` and ``kappa_on`` saying on what: for the ordinal
        scores the quadratic-weighted Cohen's kappa on the full score scale, for pelvic tilt the
        unweighted kappa of the tilt classes (posterior / neutral / anterior). Combinations
        the data cannot support are listed, with the reason, in ``.attrs["skipped"]``.

    Notes
    -----
    Left and right sides enter as separate targets (so ``n`` counts participant-sides); they
    are not independent, so the F-based CIs (``ci_low_f``, ``ci_high_f``) are too narrow when
    sides are strongly correlated; the default bootstrap CI resamples participants and is
    valid for that dependence (Field & Welsh 2007 on the cluster bootstrap). Report
    ``n_participants`` as the sample size.

    References
    ----------
    Field CA, Welsh AH (2007). Bootstrapping clustered data. JRSS B 69:369-390.
    McGraw KO, Wong SP (1996). Psychological Methods 1:30-46.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.reliability import reliability_summary
    >>> rng = np.random.default_rng(1)
    >>> true = rng.normal(36, 9, 20)
    >>> rows = [dict(participant_id=f"P{i:02d}", visit="baseline", measure="hip_ir_deg",
    ...              side="left", trial=t, rater=r, value=true[i] + rng.normal(0, 2))
    ...         for i in range(20) for r in ("R1", "R2") for t in (1, 2)]
    >>> out = reliability_summary(pd.DataFrame(rows))
    >>> out[["design", "n_participants", "n", "k"]].to_numpy().tolist()
    [['trial-to-trial', 20, 40, 2], ['rater-to-rater', 20, 20, 2]]
    >>> out["ci_method"].iloc[0]
    'participant-cluster bootstrap (1000 draws)'
    """
    confidence = _check_confidence(confidence)
    if _FORM_ALIASES.get(form, form) not in {f[0] for f in ICC_FORMS}:
        raise ParameterError(f"unknown ICC form {str(form)[:100]!r}; use one of "
                             f"{', '.join(f for row in ICC_FORMS for f in row[:2])}")
    if ci not in ("cluster", "f"):
        raise ValueError(f"ci must be 'cluster' or 'f', got {ci!r}")
    if tilt_cuts is None:
        from hipstats.schema import DEFAULT_TILT_CUTS as tilt_cuts
    bad = [d for d in designs if d not in _DESIGNS]
    if bad:
        raise ValueError(f"unknown design(s) {bad}; choose from {_DESIGNS}")
    meas = getattr(data, "measurements", data)
    if not isinstance(meas, pd.DataFrame):
        raise TypeError("reliability_summary needs a Cohort (with .measurements) or a "
                        f"measurements DataFrame, got {type(data).__name__}")
    _require_columns(meas, ["participant_id", "visit", "measure", "value"], "reliability_summary")
    df = meas.copy()
    for col in ("side", "rater") + _CONDITIONS:
        if col in df.columns:
            df[col] = df[col].astype("object").where(df[col].notna(), "").astype(str)
        elif col == "side":
            df[col] = ""
    df["trial"] = df["trial"].fillna(1).astype(int) if "trial" in df.columns else 1
    df["measure"] = df["measure"].astype(str)
    conds = [c for c in _CONDITIONS if c in df.columns and (df[c] != "").any()]
    if measures is None:
        measures = [m for m in _DEFAULT_MEASURES if (df["measure"] == m).any()]
    rows, skipped = [], []
    for measure in measures:
        mdf = df[df["measure"] == measure]
        if mdf.empty:
            skipped.append(dict(measure=measure, reason="no readings"))
            continue
        groups = mdf.groupby(conds, sort=True, observed=True) if conds else [((), mdf)]
        for key, gdf in groups:
            key = key if isinstance(key, tuple) else (key,)
            cond = dict(zip(conds, key))
            for design in designs:
                spec, reason = _design_frame(gdf, design, baseline_visit, retest_visit,
                                             primary_rater)
                label = dict(measure=measure, **cond, design=design)
                if spec is None:
                    skipped.append(dict(label, reason=reason))
                    continue
                rows_df, targets, raters = spec
                try:
                    row = _summary_row(rows_df, targets, raters, measure, form, confidence,
                                       nan_policy, tuple(tilt_cuts),
                                       boot=dict(n_boot=n_boot, seed=seed) if ci == "cluster"
                                       else None)
                except AnalysisError as err:
                    skipped.append(dict(label, reason=str(err)))
                    continue
                rows.append(dict(label, **row))
    out = pd.DataFrame(rows)
    if out.empty:
        raise AnalysisError("reliability_summary: no measure and design had repeated readings "
                            f"to analyse; reasons: {skipped[:5]}")
    out.attrs["skipped"] = skipped
    out.attrs["confidence"] = confidence
    return out


def _summary_row(df, targets, raters, measure, form, confidence, nan_policy, tilt_cuts,
                 boot=None):
    form = _FORM_ALIASES.get(form, form)
    fit = _icc_fit(df, targets, raters, "value", confidence=confidence, nan_policy=nan_policy,
                   what=f"{measure} by {raters}")
    row = fit.table.set_index("form").loc[form]
    used = fit.info.pop("targets_used")
    mat = fit.info.pop("matrix", None)
    pids = (used.get_level_values("participant_id") if isinstance(used, pd.MultiIndex)
            else used)
    s = _sem_from_fit(fit, "within")
    f_lo, f_hi = float(row["ci_low"]), float(row["ci_high"])
    b = (np.nan,) * 4 + (0,)
    if boot is not None and mat is not None:
        b = _cluster_bootstrap_icc(mat, np.asarray(pids), form, confidence=confidence, **boot)
    z2 = _z(0.95) * np.sqrt(2.0)  # as mdc()
    if b[4]:
        method, lo, hi = f"participant-cluster bootstrap ({b[4]} draws)", b[0], b[1]
    else:
        method, lo, hi = "F (targets as independent)", f_lo, f_hi
    out = dict(n_participants=int(pd.Index(pids).nunique()), n=fit.n_targets,
               k=fit.n_raters, form=form, icc=float(row["icc"]), ci_low=lo, ci_high=hi,
               ci_low_f=f_lo, ci_high_f=f_hi, ci_method=method,
               sem=s, sem_ci_low=b[2], sem_ci_high=b[3],
               mdc95=mdc(s, confidence=0.95), mdc95_ci_low=z2 * b[2], mdc95_ci_high=z2 * b[3])
    scale = _score_scale(measure)
    two_readings = fit.n_raters == 2
    if (scale is not None or measure == "pelvic_tilt_deg") and two_readings:
        # kappa on the categories a clinician would act on: the score itself (quadratic
        # weights, full scale) or the tilt class of the (trial-mean) reading (unweighted)
        wide = df.pivot_table(index=targets, columns=raters, values="value", aggfunc="mean")
        if scale is None:
            wide = pd.DataFrame(np.digitize(wide.to_numpy(), tilt_cuts), columns=wide.columns,
                                index=wide.index).where(wide.notna())
            scale, weights = [0, 1, 2], None
            label = f"tilt class (cuts {tilt_cuts[0]:g}, {tilt_cuts[1]:g} deg), unweighted"
        else:
            weights, label = "quadratic", "score, quadratic weights"
        if fit.info["ratings_per_cell_max"] == 1 or label.startswith("tilt"):
            k = cohen_kappa(wide, wide.columns[0], wide.columns[1], weights=weights,
                            categories=scale, confidence=confidence)
            out.update(kappa=float(k["kappa"].iloc[0]), kappa_ci_low=float(k["ci_low"].iloc[0]),
                       kappa_ci_high=float(k["ci_high"].iloc[0]), kappa_on=label)
    return out
