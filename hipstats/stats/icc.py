"""Intraclass correlation: how much of the spread of readings is between targets.

Before a change of a few degrees in hip internal rotation can be believed, one must know how
much a reading moves between trials, sessions and raters. :func:`icc` gives all six
intraclass correlation forms of McGraw and Wong (1996) with confidence intervals and F tests
against a null value ``r0``; balanced data by two-way ANOVA, unbalanced data (missing ratings)
by REML variance components (``nan_policy="model"``). SEM, MDC and Bland-Altman limits are in
:mod:`hipstats.stats.agreement`, kappa in :mod:`hipstats.stats.kappa`, and the cohort's
one-call summary in :mod:`hipstats.questions.reliability`.

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

Examples
--------
>>> import pandas as pd
>>> from hipstats.stats.icc import icc
>>> sf = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
>>> long = pd.DataFrame([(t, j, v) for t, row in enumerate(sf) for j, v in enumerate(row)],
...                     columns=["target", "judge", "rating"])
>>> icc(long, "target", "judge", "rating").set_index("sf_name")["icc"].round(2).tolist()
[0.17, 0.29, 0.71, 0.44, 0.62, 0.91]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from hipstats.errors import AnalysisError, ConvergenceWarning
from hipstats.results import DEPRECATED, PARTICIPANT_COLUMN, resolve_participant
from hipstats.stats.inference import as_list, check_confidence, require_columns

__all__ = ["icc", "ICC_FORMS"]


#: Order and naming of the six ICC forms: McGraw & Wong name, Shrout & Fleiss name, description.
ICC_FORMS: tuple[tuple[str, str, str], ...] = (
    ("ICC(1,1)", "ICC1", "one-way random, single rater, absolute agreement"),
    ("ICC(A,1)", "ICC2", "two-way random, single rater, absolute agreement"),
    ("ICC(C,1)", "ICC3", "two-way mixed, single rater, consistency"),
    ("ICC(1,k)", "ICC1k", "one-way random, mean of k raters, absolute agreement"),
    ("ICC(A,k)", "ICC2k", "two-way random, mean of k raters, absolute agreement"),
    ("ICC(C,k)", "ICC3k", "two-way mixed, mean of k raters, consistency"),
)
FORM_ALIASES = {sf: mw for mw, sf, _ in ICC_FORMS}
_NAN_POLICIES = ("raise", "omit", "model")


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
                         icc_ci_low=conv(res["lo"]), icc_ci_high=conv(res["hi"]), statistic=fval,
                         num_df=df_r * np.ones_like(np.asarray(fval, dtype=float)), den_df=df2,
                         p_value=pval))
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
class IccFit:
    """One ICC fit: the six-form table, mean squares, variance components and design sizes;
    :func:`icc` shows the table, :func:`hipstats.stats.agreement.sem` reads the components."""

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
    tcols, rcols = as_list(targets), as_list(raters)
    require_columns(data, tcols + rcols + [ratings], what)
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


def icc_fit(data, participant, raters, ratings, *, confidence=0.95, nan_policy="raise", r0=0.0,
             what="icc") -> IccFit:
    """Fit the ICC forms of ``ratings`` (targets x raters) and return the :class:`IccFit`;
    :func:`icc` is this fit's table. Arguments as :func:`icc`."""
    confidence = check_confidence(confidence)
    if nan_policy not in _NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {_NAN_POLICIES}, got {nan_policy!r}")
    if not -1 < r0 < 1:
        raise ValueError(f"r0 must lie in (-1, 1), got {r0!r}")
    cells, tlab, rlab = _cell_means(data, participant, raters, ratings, what)
    n_all, k_all = len(tlab), len(rlab)
    _need_two(n_all, k_all, what)
    mat = np.full((n_all, k_all), np.nan)
    mat[cells["t"], cells["r"]] = cells["y"]
    per_cell = int(cells["m"].max()) if len(cells) else 0
    missing = np.isnan(mat)
    info = {"ratings_per_cell_max": per_cell, "n_targets_dropped": 0,
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
        info["n_targets_dropped"] = int((~keep).sum())
        info["targets_used"] = tlab[keep]
        mat = mat[keep]
        _need_two(mat.shape[0], k_all, what, after=" after dropping incomplete targets"
                  if info["n_targets_dropped"] else "")
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


def _icc_fit_anova(mat, confidence, r0, info, what) -> IccFit:
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
    return IccFit(_table(rows, attrs), ms, vc, n, k, n * k, float(np.std(mat, ddof=1)), info)


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


def cluster_bootstrap_icc(mat: np.ndarray, participant: np.ndarray, form: str, *,
                           confidence: float = 0.95, n_boot: int = 1000, seed=0):
    r"""Participant-cluster bootstrap CI of a single-reading ICC form and of the SEM.

    Participants (``participant``: one code per row of ``mat``) are drawn with replacement, each
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
    codes, cl = np.unique(participant, return_inverse=True)
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


def _icc_fit_model(mat, confidence, r0, info, what) -> IccFit:
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
    return IccFit(_table(rows, attrs), ms, vc, n, k, N, float(np.std(y, ddof=1)), info)


def icc(data: pd.DataFrame, participant: str | Sequence[str] = PARTICIPANT_COLUMN,
        raters: str | Sequence[str] = "rater", ratings: str = "value", *, confidence: float = 0.95,
        nan_policy: str = "raise", r0: float = 0.0, targets=DEPRECATED) -> pd.DataFrame:
    r"""Intraclass correlation coefficients: all six forms, with F tests and confidence intervals.

    Parameters
    ----------
    data : DataFrame
        Long format, one row per reading.
    participant : str or list of str, default "participant_id"
        Column(s) identifying the rated target: the participant, with the side where each
        side is a target (``["participant_id", "side"]``).
    raters : str or list of str, default "rater"
        Column(s) identifying the readings compared: raters, trials, sessions or devices.
    ratings : str, default "value"
        Column holding the reading (the defaults are the measurement table's columns).
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
    targets : str or list of str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        One row per form -- ``form`` (McGraw & Wong name), ``sf_name`` (Shrout & Fleiss name),
        ``description``, ``icc``, ``icc_ci_low``, ``icc_ci_high``, and the F test of
        ICC = ``r0``: ``statistic`` (F), ``num_df``, ``den_df``, ``p_value``. The
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
    >>> from hipstats.stats.icc import icc
    >>> df = pd.DataFrame({"pid": [1, 1, 2, 2, 3, 3, 4, 4],
    ...                    "rater": ["A", "B"] * 4,
    ...                    "ir": [30, 32, 41, 40, 35, 37, 28, 31]})
    >>> res = icc(df, "pid", "rater", "ir")
    >>> res.loc[res.form == "ICC(A,1)", ["icc", "icc_ci_low", "icc_ci_high"]].round(3).to_numpy().tolist()
    [[0.915, 0.299, 0.994]]
    """
    participant = resolve_participant(participant, where="icc", targets=targets)
    return icc_fit(data, participant, raters, ratings, confidence=confidence,
                   nan_policy=nan_policy, r0=r0).table
