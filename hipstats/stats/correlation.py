"""Association on two levels for repeated measures: the repeated-measures correlation
(:func:`rm_corr`, Bakdash and Marusich 2017) and the within/between-participant split of a
slope (:func:`within_between`, a random-intercept model with the participant mean and the
deviation from it), optionally corrected for measurement error in the predictor.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from hipstats.stats.correlation import rm_corr
>>> rng = np.random.default_rng(0)
>>> s = np.repeat(np.arange(10), 4); x = rng.normal(10, 5, 10)[s] + rng.normal(0, 2, 40)
>>> df = pd.DataFrame({"s": s, "x": x, "y": 40 - 0.3 * x + rng.normal(0, 5, 10)[s] + rng.normal(0, 0.5, 40)})
>>> bool(rm_corr(df, "x", "y", "s")["estimate"].iloc[0] < 0)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.errors import AnalysisError, check_columns
from hipstats.results import DEPRECATED, PARTICIPANT_COLUMN, resolve_confidence, resolve_participant
from hipstats.stats.inference import wald

__all__ = ["rm_corr", "within_between"]


# ----------------------------------------------------------------------------------------
# Repeated-measures correlation
# ----------------------------------------------------------------------------------------
def _within_participant(df: pd.DataFrame, x: str, y: str, participant: str):
    """Drop missing rows and participants with a single observation; centre x and y per participant."""
    check_columns(df, [x, y, participant], "rm_corr")
    d = df[[participant, x, y]].dropna()
    counts = d.groupby(participant)[x].transform("size")
    single = d.loc[counts < 2, participant].unique()
    d = d[counts >= 2]
    if d.empty:
        raise AnalysisError(f"every {participant!r} has a single observation of {x!r} and {y!r}; "
                            "a within-participant association needs repeated observations")
    g = d.groupby(participant)
    xc = d[x] - g[x].transform("mean")
    yc = d[y] - g[y].transform("mean")
    return d, xc.to_numpy(float), yc.to_numpy(float), single


def rm_corr(data: pd.DataFrame, x: str, y: str, participant: str = PARTICIPANT_COLUMN, *,
            confidence: float = 0.95, alpha: float | None = None, subject=DEPRECATED) -> pd.DataFrame:
    """Repeated-measures correlation (Bakdash & Marusich 2017).

    The common within-participant association of x and y: the ANCOVA
    :math:`y_{ij} = a_i + \\beta x_{ij} + e_{ij}` with one intercept per participant. With
    :math:`\\tilde x, \\tilde y` centred within participant,

    .. math::

        r_{rm} = \\operatorname{sign}(\\hat\\beta)\\sqrt{\\frac{SS_x}{SS_x + SS_{res}}}
               = \\frac{\\sum \\tilde x\\tilde y}{\\sqrt{\\sum\\tilde x^2 \\sum\\tilde y^2}},
        \\qquad \\hat\\beta = \\frac{\\sum\\tilde x\\tilde y}{\\sum\\tilde x^2}

    with :math:`df = N - k - 1` (N observations, k participants), p from
    :math:`t = r\\sqrt{df/(1-r^2)}` on df, and the CI by Fisher's z,
    :math:`\\tanh(\\operatorname{atanh} r \\pm z_{1-\\alpha/2}/\\sqrt{df-1})` as in the R package
    rmcorr >= 0.5.4 (``psych::r.con(r, df + 2)``: Fisher's z with ``n = df + 2``; rmcorr before
    0.5.4 used ``n = df``, an interval too wide by the factor ``sqrt((df - 1) / (df - 3))``).
    Participants with one observation carry no
    within-participant information and are left out (counted in ``n_excluded``).

    Parameters
    ----------
    data : DataFrame
        Long data, one row per observation.
    x, y : str
        Column names of the two measures.
    participant : str, default "participant_id"
        Column identifying the participant.
    confidence : float
        Level of the confidence interval (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).
    subject : str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        One row: estimate (r_rm), df, statistic (t), p_value, ci_low, ci_high, slope (common
        within slope of y on x), n_readings, n_participants, n_excluded.

    References
    ----------
    Bakdash JZ, Marusich LR (2017). Repeated measures correlation. Frontiers in Psychology 8:456.
    Bland JM, Altman DG (1995). Calculating correlation coefficients with repeated
    observations: Part 1 - correlation within subjects. BMJ 310:446.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.stats.correlation import rm_corr
    >>> df = pd.DataFrame({"s": [1, 1, 1, 2, 2, 2, 3, 3, 3], "x": [1, 2, 3, 5, 6, 7, 2, 4, 6],
    ...                    "y": [2.0, 3.5, 4.0, 1.0, 2.2, 3.1, 5.0, 5.5, 7.0]})
    >>> res = rm_corr(df, "x", "y", "s")
    >>> round(float(res["estimate"].iloc[0]), 3), int(res["df"].iloc[0])
    (0.913, 5)
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="rm_corr")
    participant = resolve_participant(participant, where="rm_corr", subject=subject)
    d, xc, yc, single = _within_participant(data, x, y, participant)
    k, n = d[participant].nunique(), len(d)
    dof = n - k - 1
    sxx, syy, sxy = xc @ xc, yc @ yc, xc @ yc
    if sxx == 0 or syy == 0:
        which = x if sxx == 0 else y
        raise AnalysisError(f"{which!r} does not vary within any {participant!r}; the "
                            "repeated-measures correlation is undefined")
    if dof < 4:
        raise AnalysisError(f"rm_corr needs at least 4 residual degrees of freedom "
                            f"(N - k - 1), got {dof} from {n} observations of {k} participants "
                            f"({participant!r})")
    r = float(np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0))
    with np.errstate(divide="ignore"):
        t = r * np.sqrt(dof / (1 - r * r)) if abs(r) < 1 else np.sign(r) * np.inf
    p = float(2 * stats.t.sf(abs(t), dof))
    z, crit = np.arctanh(np.clip(r, -0.999999999, 0.999999999)), stats.norm.ppf(1 - alpha / 2)
    half = crit / np.sqrt(dof - 1)          # Fisher's z with n = df + 2 (rmcorr >= 0.5.4)
    return pd.DataFrame([{"estimate": r, "df": dof, "statistic": float(t), "p_value": p,
                          "ci_low": float(np.tanh(z - half)), "ci_high": float(np.tanh(z + half)),
                          "slope": float(sxy / sxx), "n_readings": n, "n_participants": k,
                          "n_excluded": len(single)}])


# ----------------------------------------------------------------------------------------
# Within-between mixed model
# ----------------------------------------------------------------------------------------
def _random_intercept_fit(df: pd.DataFrame, y: str, terms: list[str], participant: str,
                          alpha: float, contrast: dict[str, float]):
    """REML random-intercept model ``y ~ terms + (1 | participant)`` by
    :func:`hipstats.models.lmm.fit_lmm` (lme4's profiled deviance, lmerTest's Satterthwaite df).

    Returns the fixed-effect table (term, estimate, se, df, statistic, p_value, ci_low, ci_high) with one extra
    row ``"contrast"`` for the linear combination ``contrast`` ({term: weight}), and a dict of
    fit information (variance components, n_readings, converged, singular, engine).
    """
    from hipstats.models.lmm import fit_lmm  # noqa: PLC0415 - models imports are heavier

    res = fit_lmm(f"{y} ~ " + " + ".join(terms), df, participant=participant)
    table = res.summary(1 - alpha).reset_index()
    names = list(res.fe_params.index)
    c = np.array([contrast.get(n, 0.0) for n in names])
    est = float(c @ res.fe_params.to_numpy())
    se = float(np.sqrt(c @ res.cov_fe.to_numpy() @ c))
    dof = float(res.df_satterthwaite(c[None, :])[0])
    lo, hi, t, p = wald(est, se, alpha, df=dof)
    row = pd.DataFrame([{"term": "contrast", "estimate": est, "se": se, "df": dof, "statistic": float(t),
                         "p_value": float(p), "ci_low": float(lo), "ci_high": float(hi)}])
    table = pd.concat([table, row], ignore_index=True)
    info = {"var_participant": float(res.cov_re.iloc[0, 0]), "var_residual": res.sigma2,
            "n_readings": res.n_rows, "converged": res.converged, "singular": res.singular,
            "engine": f"hipstats.models.lmm.fit_lmm ({res.engine}, REML, Satterthwaite df)"}
    return table, info


def within_between(data: pd.DataFrame, x: str, y: str, participant: str = PARTICIPANT_COLUMN, *,
                   covariates: Sequence[str] = (), x_error_var: float | None = None,
                   x_error_df: float | None = None, confidence: float = 0.95,
                   alpha: float | None = None, n_boot: int = 999, seed=0,
                   subject=DEPRECATED) -> pd.DataFrame:
    """Mixed model splitting x into between- and within-participant components.

    .. math::

        y_{ij} = \\beta_0 + \\beta_B\\,\\bar x_i + \\beta_W\\,(x_{ij} - \\bar x_i)
                 + \\gamma^\\top c_{ij} + u_i + e_{ij},\\quad u_i \\sim N(0,\\tau^2),\\;
                 e_{ij} \\sim N(0, \\sigma^2)

    fitted by REML with :func:`hipstats.models.lmm.fit_lmm` (t tests and CIs on
    Satterthwaite df, as lmerTest). :math:`\\beta_W` answers "when a participant's x moves
    by one unit, how does their y move?"; :math:`\\beta_B` "do participants with one unit
    more mean x have a different mean y?"; the contextual effect :math:`\\beta_B - \\beta_W`
    tests whether the two levels differ (Curran & Bauer 2011).

    **Measurement error in x.** When x is read with error (standing tilt: a few trials per
    visit), both slopes are attenuated towards 0, the within slope most because within
    variation is small. Given ``x_error_var`` :math:`\\sigma^2_u` (error variance of one
    observed x, e.g. the trial variance divided by the number of trials averaged), the rows
    ``within_corrected`` and ``between_corrected`` divide the estimate by the reliability
    ratios (regression calibration; Fuller 1987, Carroll et al. 2006)

    .. math::

        \\lambda_W = 1 - \\frac{(N - k)\\,\\sigma^2_u}{\\sum_{ij}(x_{ij} - \\bar x_i)^2},
        \\qquad
        \\lambda_B = 1 - \\frac{\\operatorname{mean}_i(\\sigma^2_u / n_i)}
                               {\\operatorname{var}_i(\\bar x_i)}

    and their SE, CI, t and p come from a participant cluster bootstrap that re-estimates
    :math:`\\lambda` and the slopes in every draw, so the uncertainty of :math:`\\lambda`
    is included: participants are drawn with replacement (``n_boot`` draws, ``seed``); the
    slopes of a draw are the GLS fixed effects of the random-intercept model with the variance
    components held at the REML estimates of the data (with all weights 1 this is the REML
    estimate itself), computed for all draws at once from per-participant cross-products;
    :math:`\\lambda_W`, :math:`\\lambda_B` are recomputed from the drawn participants, and,
    given ``x_error_df``, :math:`\\sigma^2_u` is redrawn as :math:`\\sigma^2_u\\chi^2_\\nu/\\nu`
    (the trial deviations are independent of the visit means). The CI is the percentile
    interval of the corrected draws; ``se`` their SD, ``statistic = estimate / se`` and ``p_value`` from
    :math:`t_{G-1}` (``df`` = participants - 1). Draws with :math:`\\lambda < 0.2` are left
    out (``attrs["n_boot_used"]``).

    Parameters
    ----------
    data : DataFrame
        Long data.
    x, y : str
        Column names of the predictor and the outcome.
    participant : str, default "participant_id"
        Column identifying the participant.
    covariates : sequence of str
        Extra fixed-effect terms (formula syntax, e.g. ``"C(side)"``).
    x_error_var : float, optional
        Measurement-error variance of x; adds the corrected rows.
    x_error_df : float, optional
        Degrees of freedom of ``x_error_var`` (replicate trials: sum over visits of trials -
        1); its sampling error then enters the bootstrap. None treats it as known.
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).
    n_boot : int
        Bootstrap draws for the corrected rows (default 999).
    seed : int
        Seed of the bootstrap.
    subject : str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        Rows ``within``, ``between``, ``contextual`` (between - within), with ``x_error_var``
        also ``within_corrected`` and ``between_corrected``, then the intercept and
        covariates: term, estimate, se, df, statistic (t), p_value, ci_low, ci_high; ``attrs``
        holds the variance components (var_participant, var_residual), n_readings, n_participants
        and the engine used.

    References
    ----------
    Curran PJ, Bauer DJ (2011). The disaggregation of within-person and between-person effects
    in longitudinal models of change. Annual Review of Psychology 62:583-619.
    Fuller WA (1987). Measurement Error Models. Wiley. Carroll RJ, Ruppert D, Stefanski LA,
    Crainiceanu CM (2006). Measurement Error in Nonlinear Models, 2nd ed. Chapman & Hall.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.stats.correlation import within_between
    >>> rng = np.random.default_rng(0)
    >>> s = np.repeat(np.arange(40), 4); mu = rng.normal(10, 5, 40)[s]
    >>> x = mu + rng.normal(0, 2, s.size)
    >>> y = 30 - 0.05 * mu - 0.3 * (x - mu) + rng.normal(0, 6, 40)[s] + rng.normal(0, 1, s.size)
    >>> wb = within_between(pd.DataFrame({"s": s, "x": x, "y": y}), "x", "y", "s")
    >>> bool(wb.set_index("term").loc["within", "estimate"] < 0)
    True
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="within_between")
    participant = resolve_participant(participant, where="within_between", subject=subject)
    check_columns(data, [x, y, participant], "within_between")
    d = data.dropna(subset=[x, y, participant]).copy()
    if d[participant].nunique() < 3:
        raise AnalysisError(f"within_between needs at least 3 participants ({participant!r}), got "
                            f"{d[participant].nunique()}")
    d["_xb"] = d.groupby(participant)[x].transform("mean")
    d["_xw"] = d[x] - d["_xb"]
    if np.allclose(d["_xw"], 0):
        raise AnalysisError(f"{x!r} does not vary within any {participant!r}: no within-participant "
                            "component to estimate")
    if np.isclose(d["_xb"].std(), 0):
        raise AnalysisError(f"the participant ({participant!r}) means of {x!r} are all equal: no between-participant "
                            "component to estimate")
    d = d.rename(columns={y: "_y"})
    table, info = _random_intercept_fit(d, "_y", ["_xb", "_xw", *covariates], participant, alpha,
                                        contrast={"_xb": 1.0, "_xw": -1.0})
    table["term"] = table["term"].replace({"_xb": "between", "_xw": "within",
                                           "contrast": "contextual"})
    if x_error_var is not None and np.isfinite(x_error_var) and x_error_var > 0:
        lam = _reliability_ratios(d, participant, float(x_error_var))
        fixed = table.set_index("term")
        draws = _corrected_slope_draws(d, participant, covariates, info, float(x_error_var),
                                       x_error_df, n_boot, seed)
        g = d[participant].nunique()
        rows = []
        for term in ("within", "between"):
            est = float(fixed.loc[term, "estimate"]) / lam[term]
            v = draws[term][np.isfinite(draws[term])]
            se = float(v.std(ddof=1)) if v.size > 1 else np.nan
            lo, hi = (np.percentile(v, [50 * alpha, 100 - 50 * alpha]) if v.size > 1
                      else (np.nan, np.nan))
            t = est / se
            rows.append({"term": f"{term}_corrected", "estimate": est, "se": se,
                         "df": float(g - 1), "statistic": t,
                         "p_value": float(2 * stats.t.sf(abs(t), g - 1)),
                         "ci_low": float(lo), "ci_high": float(hi)})
        table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
        info = {**info, "x_error_var": float(x_error_var), "reliability_within": lam["within"],
                "reliability_between": lam["between"],
                "x_error_df": np.nan if x_error_df is None else float(x_error_df),
                "n_boot": int(n_boot), "n_boot_used": int(draws["used"]),
                "corrected_ci": "participant cluster bootstrap (lambda re-estimated), percentile"}
    order = {"within": 0, "between": 1, "contextual": 2, "within_corrected": 3,
             "between_corrected": 4}
    table = table.iloc[np.argsort([order.get(t, 5) for t in table["term"]], kind="stable")]
    table = table.reset_index(drop=True)
    table.attrs.update(info)
    table.attrs["n_participants"] = int(d[participant].nunique())
    return table


def _corrected_slope_draws(d: pd.DataFrame, participant: str, covariates: Sequence[str],
                           info: dict, err: float, err_df: float | None, n_boot: int,
                           seed) -> dict:
    """Participant cluster bootstrap draws of the corrected within and between slopes.

    Per participant i: :math:`A_i = X_i^\\top V_i^{-1} X_i`, :math:`b_i = X_i^\\top V_i^{-1}
    y_i` with :math:`\\sigma^2 V_i^{-1} = I - c_i J`, :math:`c_i = \\tau^2 / (\\sigma^2 + n_i
    \\tau^2)` at the REML variance components; a draw with participant counts :math:`w`
    gives :math:`\\hat\\beta^* = (\\sum_i w_i A_i)^{-1} \\sum_i w_i b_i` (all draws at
    once), and :math:`\\lambda^*` from the same counts. ``point`` holds the uncorrected
    slopes and ratios of the data themselves (all counts 1)."""
    import patsy  # noqa: PLC0415

    rhs = " + ".join(["_xb", "_xw", *covariates])
    yv, X = patsy.dmatrices(f"_y ~ {rhs}", d, return_type="dataframe")
    subj = pd.factorize(d.loc[X.index, participant])[0]
    Xa, ya = X.to_numpy(float), yv.to_numpy(float)[:, 0]
    g, p = subj.max() + 1, Xa.shape[1]
    n_i = np.bincount(subj, minlength=g).astype(float)
    tau2, sig2 = max(info["var_participant"], 0.0), info["var_residual"]
    c = tau2 / (sig2 + n_i * tau2)
    sx = np.zeros((g, p))
    np.add.at(sx, subj, Xa)
    sy = np.bincount(subj, weights=ya, minlength=g)
    xx = np.zeros((g, p, p))
    np.add.at(xx, subj, Xa[:, :, None] * Xa[:, None, :])
    xy = np.zeros((g, p))
    np.add.at(xy, subj, Xa * ya[:, None])
    A = xx - c[:, None, None] * sx[:, :, None] * sx[:, None, :]
    b = xy - (c * sy)[:, None] * sx
    rng = np.random.default_rng(seed)
    w = np.vstack([np.ones((1, g)),  # row 0: the data themselves
                   rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot).astype(float)])
    with np.errstate(all="ignore"):
        Ab = np.einsum("bg,gij->bij", w, A)
        bb = w @ b
        ok = np.abs(np.linalg.det(Ab)) > 1e-12 * np.abs(np.einsum("bii->b", Ab)).max() ** p
        beta = np.full((n_boot + 1, p), np.nan)
        beta[ok] = np.linalg.solve(Ab[ok], bb[ok][:, :, None])[:, :, 0]
        e = err
        if err_df is not None and np.isfinite(err_df) and err_df > 0:
            e = err * np.r_[1.0, rng.chisquare(err_df, n_boot) / err_df]
        xw2 = np.bincount(subj, weights=d.loc[X.index, "_xw"].to_numpy(float) ** 2, minlength=g)
        xbar = np.bincount(subj, weights=d.loc[X.index, "_xb"].to_numpy(float),
                           minlength=g) / n_i
        lam_w = 1 - e * (w @ (n_i - 1)) / (w @ xw2)
        m = (w @ xbar) / g
        var_b = (w @ xbar ** 2 - g * m ** 2) / (g - 1)
        lam_b = 1 - e * (w @ (1 / n_i)) / g / var_b
    cols = list(X.columns)
    good = ok & (lam_w >= 0.2) & (lam_b >= 0.2)
    within = np.where(good, beta[:, cols.index("_xw")] / lam_w, np.nan)
    between = np.where(good, beta[:, cols.index("_xb")] / lam_b, np.nan)
    return {"within": within[1:], "between": between[1:], "used": int(good[1:].sum()),
            "point": {"within": beta[0, cols.index("_xw")], "between": beta[0, cols.index("_xb")],
                      "lambda_within": lam_w[0], "lambda_between": lam_b[0]}}


def _reliability_ratios(d: pd.DataFrame, participant: str, err: float) -> dict[str, float]:
    """lambda_W and lambda_B of :func:`within_between` (columns _xw, _xb of its frame)."""
    n_i = d.groupby(participant)["_xb"].size()
    xbar = d.groupby(participant)["_xb"].first()
    ssw = float((d["_xw"] ** 2).sum())
    lam_w = 1 - (len(d) - len(n_i)) * err / ssw
    lam_b = 1 - float((err / n_i).mean()) / float(xbar.var(ddof=1))
    if lam_w < 0.2 or lam_b < 0.2:
        raise AnalysisError(f"the measurement error of x (variance {err:.3g}) is too large next "
                            f"to its within-participant variation (reliability {lam_w:.2f}) or "
                            f"between-participant variation ({lam_b:.2f}) to correct for it")
    return {"within": lam_w, "between": lam_b}
