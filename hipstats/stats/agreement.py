"""Agreement between two readings: standard error of measurement (SEM), minimal detectable
change (MDC) and Bland-Altman limits of agreement.

* :func:`sem` and :func:`mdc` -- standard error of measurement and minimal detectable change
  (Weir 2005), from an ICC fit or a given SEM.
* :func:`bland_altman` -- limits of agreement (Bland and Altman 1986, 1999), with CIs, the
  proportional-bias regression and the repeated-measures limits of Bland and Altman (2007).

References
----------
Bland JM, Altman DG (1986). Statistical methods for assessing agreement between two methods
of clinical measurement. Lancet i:307-310.
Bland JM, Altman DG (1999). Measuring agreement in method comparison studies. Statistical
Methods in Medical Research 8:135-160.
Bland JM, Altman DG (2007). Agreement between methods of measurement with multiple
observations per individual. Journal of Biopharmaceutical Statistics 17:571-582.
Carkeet A (2015). Exact parametric confidence intervals for Bland-Altman limits of agreement.
Optometry and Vision Science 92:e71-e80.
Weir JP (2005). Quantifying test-retest reliability using the intraclass correlation
coefficient and the SEM. J Strength Cond Res 19:231-240.

Examples
--------
>>> import pandas as pd
>>> from hipstats.stats.agreement import bland_altman, mdc
>>> df = pd.DataFrame({"r1": [30, 41, 35, 28, 44, 38], "r2": [32, 40, 37, 31, 45, 37]})
>>> round(bland_altman(df, "r1", "r2").bias, 3)
-1.0
>>> round(mdc(2.0), 2)
5.54
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.errors import AnalysisError
from hipstats.results import DEPRECATED, PARTICIPANT_COLUMN, Result, html_table, resolve_participant
from hipstats.stats.icc import FORM_ALIASES, ICC_FORMS, IccFit, icc_fit
from hipstats.stats.inference import check_confidence, require_columns, z_critical

__all__ = ["sem", "mdc", "bland_altman", "BlandAltmanResult"]


# ---------------------------------------------------------------------------------------------
# SEM and MDC
# ---------------------------------------------------------------------------------------------
_SEM_METHODS = ("within", "agreement", "error", "icc")


def sem(data: pd.DataFrame | None = None, participant=PARTICIPANT_COLUMN, raters=None, ratings=None, *,
        method: str = "within", form: str = "ICC(A,1)", sd: float | None = None,
        icc_value: float | None = None, nan_policy: str = "raise", targets=DEPRECATED) -> float:
    r"""Standard error of measurement (SEM), in the unit of the ratings.

    Either from numbers (``sd`` and ``icc_value``: ``SEM = SD * sqrt(1 - ICC)``) or from data
    (long format, as for :func:`~hipstats.stats.icc.icc`).

    Parameters
    ----------
    data, participant, raters, ratings
        As in :func:`~hipstats.stats.icc.icc` (``participant``: the column(s) identifying the
        rated target, default ``"participant_id"``).
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
        As in :func:`~hipstats.stats.icc.icc`.
    targets : str or list of str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

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
    >>> from hipstats.stats.agreement import sem
    >>> round(sem(sd=9.0, icc_value=0.9), 3)
    2.846
    """
    if data is None:
        if sd is None or icc_value is None:
            raise ValueError("give data (with participant, raters, ratings) or both sd and icc_value")
        if sd < 0 or not -1 <= icc_value <= 1:
            raise ValueError(f"need sd >= 0 and -1 <= icc_value <= 1, got {sd}, {icc_value}")
        return float(sd * np.sqrt(1.0 - icc_value))
    if method not in _SEM_METHODS:
        raise ValueError(f"method must be one of {_SEM_METHODS}, got {method!r}")
    participant = resolve_participant(participant, where="sem", targets=targets)
    fit = icc_fit(data, participant, raters, ratings, nan_policy=nan_policy, what="sem")
    return sem_from_fit(fit, method, form)


def sem_from_fit(fit: IccFit, method: str, form: str = "ICC(A,1)") -> float:
    """Standard error of measurement from an :class:`~hipstats.stats.icc.IccFit` by
    ``method`` (see :func:`sem`); ``form`` is the ICC form for ``method="icc"``."""
    vc = fit.variance_components
    if method == "within":
        return float(np.sqrt(vc["within"]))
    if method == "error":
        return float(np.sqrt(vc["residual"]))
    if method == "agreement":
        return float(np.sqrt(max(vc["rater"], 0.0) + vc["residual"]))
    form = FORM_ALIASES.get(form, form)
    row = fit.table.loc[fit.table["form"] == form]
    if row.empty:
        raise ValueError(f"unknown ICC form {form!r}; use one of {[f[0] for f in ICC_FORMS]}")
    return float(fit.sd * np.sqrt(max(1.0 - float(row["icc"].iloc[0]), 0.0)))


def mdc(sem_value=None, *, confidence: float = 0.95, data=None, participant=PARTICIPANT_COLUMN,
        raters=None, ratings=None, method: str = "within", nan_policy: str = "raise",
        targets=DEPRECATED):
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
    data, participant, raters, ratings, method, nan_policy
        Passed to :func:`sem` when ``sem_value`` is omitted.
    targets : str or list of str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

    Returns
    -------
    float or ndarray

    References
    ----------
    Weir (2005); Haley SM, Fragala-Pinkham MA (2006) Phys Ther 86:735-743.

    Examples
    --------
    >>> from hipstats.stats.agreement import mdc
    >>> round(mdc(2.0), 3)
    5.544
    """
    confidence = check_confidence(confidence)
    participant = resolve_participant(participant, where="mdc", targets=targets)
    if sem_value is None:
        if data is None:
            raise ValueError("give sem_value or data (with participant, raters, ratings)")
        sem_value = sem(data, participant, raters, ratings, method=method, nan_policy=nan_policy)
    out = z_critical(confidence) * np.sqrt(2.0) * np.asarray(sem_value, dtype=float)
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------------------------------------
# Bland-Altman limits of agreement
# ---------------------------------------------------------------------------------------------
_BA_CI_METHODS = ("approx", "simple", "exact")


@dataclass
class BlandAltmanResult(Result):
    """Limits of agreement between two measurement methods (or raters, sessions).

    Attributes
    ----------
    x, y : str
        Column names; differences are ``x - y``.
    method : str
        ``"classic"``, ``"repeated, true value varying"`` or ``"repeated, true value constant"``.
    n_pairs : int
        Number of pairs (classic, varying) or of readings (constant).
    n_participants : int
        Number of participants (equal to ``n_pairs`` for the classic analysis).
    bias, sd : float
        Mean difference and standard deviation of differences between single readings.
    loa_low, loa_high : float
        ``bias -/+ limits * sd``.
    bias_ci, loa_low_ci, loa_high_ci : tuple of float
        Confidence intervals at level ``confidence``.
    bias_p_value : float
        Two-sided p-value of the t test of zero bias.
    slope, slope_ci, slope_p_value, intercept : float
        Proportional bias: least-squares regression of difference on mean.
    points : DataFrame
        ``pair_mean``, ``pair_difference`` (and ``participant_id``) of the plotted points.
    """

    x: str
    y: str
    method: str
    n_pairs: int
    n_participants: int
    bias: float
    sd: float
    loa_low: float
    loa_high: float
    bias_ci: tuple[float, float]
    loa_low_ci: tuple[float, float]
    loa_high_ci: tuple[float, float]
    bias_p_value: float
    slope: float
    slope_ci: tuple[float, float]
    slope_p_value: float
    intercept: float
    limits: float
    confidence: float
    ci_method: str
    points: pd.DataFrame = field(repr=False)
    details: dict = field(default_factory=dict, repr=False)

    def summary(self) -> pd.DataFrame:
        """Bias, limits of agreement and proportional-bias slope with CIs (one row each)."""
        rows = {
            "bias": (self.bias, *self.bias_ci, self.bias_p_value),
            "loa_low": (self.loa_low, *self.loa_low_ci, np.nan),
            "loa_high": (self.loa_high, *self.loa_high_ci, np.nan),
            "slope": (self.slope, *self.slope_ci, self.slope_p_value),
        }
        out = pd.DataFrame.from_dict(rows, orient="index",
                                     columns=["estimate", "ci_low", "ci_high", "p_value"])
        out.index.name = "term"
        out.attrs.update(method=self.method, n_pairs=self.n_pairs, n_participants=self.n_participants,
                         sd=self.sd, confidence=self.confidence, limits=self.limits)
        return out

    def to_frame(self) -> pd.DataFrame:
        """One-row wide DataFrame with every number of the analysis."""
        return pd.DataFrame([{
            "x": self.x, "y": self.y, "method": self.method, "n_pairs": self.n_pairs,
            "n_participants": self.n_participants, "bias": self.bias, "bias_ci_low": self.bias_ci[0],
            "bias_ci_high": self.bias_ci[1], "bias_p_value": self.bias_p_value, "sd": self.sd,
            "loa_low": self.loa_low, "loa_low_ci_low": self.loa_low_ci[0],
            "loa_low_ci_high": self.loa_low_ci[1], "loa_high": self.loa_high,
            "loa_high_ci_low": self.loa_high_ci[0], "loa_high_ci_high": self.loa_high_ci[1],
            "slope": self.slope, "slope_ci_low": self.slope_ci[0],
            "slope_ci_high": self.slope_ci[1], "slope_p_value": self.slope_p_value,
            "limits": self.limits, "confidence": self.confidence, "ci_method": self.ci_method,
        }])

    def plot(self, **kwargs):
        """Bland-Altman plot; see :func:`hipstats.plots.reliability.bland_altman_plot`."""
        from hipstats.plots.reliability import bland_altman_plot

        return bland_altman_plot(self, **kwargs)

    def __str__(self) -> str:
        c = round(100 * self.confidence)
        return (f"Bland-Altman ({self.method}), {self.x} - {self.y}: n = {self.n_pairs}"
                f" ({self.n_participants} participants); bias {self.bias:.3g} "
                f"[{c}% CI {self.bias_ci[0]:.3g}, {self.bias_ci[1]:.3g}], SD {self.sd:.3g}, "
                f"limits of agreement {self.loa_low:.3g} to {self.loa_high:.3g}")

    def _repr_html_(self) -> str:
        esc = html.escape
        head = (f"<p><b>Bland-Altman limits of agreement</b> ({esc(self.method)}): "
                f"<code>{esc(str(self.x))}</code> &minus; <code>{esc(str(self.y))}</code>, n = {self.n_pairs} "
                f"({self.n_participants} participants), SD of differences {self.sd:.4g}, limits = bias "
                f"&plusmn; {self.limits:g} SD, {round(100 * self.confidence)}% CIs "
                f"({self.ci_method}).</p>")
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return (head + html_table(self.summary().reset_index())
                + (f'<ul class="hipstats-notes">{notes}</ul>' if notes else ""))


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
            f"bland_altman: {len(ones)} participant(s) have a single {what}, e.g. {ones[:5]}; "
            "repeated-measures limits need at least two per participant. Drop those participants or "
            "use participant=None for the classic analysis of independent pairs."
        )


def bland_altman(data: pd.DataFrame, x: str, y: str, participant: str | None = None, *,
                 limits: float = 1.96, confidence: float = 0.95,
                 true_value: str = "varying", ci_method: str = "approx",
                 subject=DEPRECATED) -> BlandAltmanResult:
    r"""Bland-Altman limits of agreement, classic or for repeated measurements per participant.

    Parameters
    ----------
    data : DataFrame
        One row per pair of readings (``x`` and ``y`` taken together), or, for
        ``true_value="constant"``, one row per reading with the other column empty if the
        readings were not paired.
    x, y : str
        Columns with the two methods' readings; differences are ``x - y``.
    participant : str, optional
        Column identifying the participant. When given, the Bland & Altman (2007)
        repeated-measures limits are computed; every participant needs at least two pairs
        (two readings by each method). None (default): the classic analysis of independent
        pairs.
    limits : float
        Multiplier of the SD of differences (1.96 for 95% limits; the 1986 paper used 2).
    confidence : float
        Level of the confidence intervals.
    true_value : {"varying", "constant"}
        Repeated measures only: whether the true value changes between a participant's pairs
        (e.g. readings at different visits) or stays constant (replicate readings).
    ci_method : {"approx", "simple", "exact"}
        CIs of the limits. ``"approx"`` (default): Bland & Altman (1999), ``SE^2 = s^2 (1/n +
        limits^2 / (2(n-1)))`` with a t quantile on ``n - 1`` df. ``"simple"``: the 1986
        shortcut ``SE = sqrt(3 s^2 / n)``. ``"exact"``: Carkeet (2015) non-central t intervals
        (classic analysis only). Repeated measures: ``"approx"`` by the delta method, ``SE^2 =
        Var(bias) + limits^2 Var(s^2) / (4 s^2)`` with ``Var(MS) = 2 MS^2 / df`` for each mean
        square in ``s^2``, t quantile on ``n_participants - 1`` df.
    subject : str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

    Returns
    -------
    BlandAltmanResult
        ``.summary()``, ``.to_frame()``, ``.plot()``, HTML repr.

    Notes
    -----
    Classic: ``d = x - y``, bias ``= mean(d)``, ``s = SD(d)``, limits ``bias +/- limits * s``;
    CI of the bias ``bias +/- t_{n-1} s / sqrt(n)``.

    Repeated, true value varying (Bland & Altman 2007, section 5): one-way ANOVA of ``d`` on
    participant with ``m_i`` pairs per participant, ``N = sum m_i``: ``s^2 = s_b^2 + MSW`` with
    ``s_b^2 = (MSB - MSW) / c``, ``c = (N^2 - sum m_i^2) / ((n - 1) N)`` (set to 0 if negative);
    bias is the mean of all differences.

    Repeated, true value constant (section 3): participant means ``xbar_i``, ``ybar_i``,
    ``s^2 = var(xbar_i - ybar_i) + (1 - 1/m_xh) s_xw^2 + (1 - 1/m_yh) s_yw^2`` with ``s_xw^2``
    the within-participant variance of method x and ``m_xh`` the harmonic mean of the numbers of x
    readings per participant; bias is the mean of ``xbar_i - ybar_i``.

    Proportional bias is the least-squares slope of difference on mean over the pairs (classic)
    or over the participant means (repeated measures, so that participants are the independent units).

    References
    ----------
    Bland & Altman (1986, 1999, 2007); Carkeet (2015).

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.stats.agreement import bland_altman
    >>> df = pd.DataFrame({"r1": [30, 41, 35, 28, 44, 38], "r2": [32, 40, 37, 31, 45, 37]})
    >>> res = bland_altman(df, "r1", "r2")
    >>> round(res.bias, 3), round(res.sd, 3)
    (-1.0, 1.673)
    """
    confidence = check_confidence(confidence)
    participant = resolve_participant(participant, where="bland_altman", default=None, subject=subject)
    if ci_method not in _BA_CI_METHODS:
        raise ValueError(f"ci_method must be one of {_BA_CI_METHODS}, got {ci_method!r}")
    if true_value not in ("varying", "constant"):
        raise ValueError(f"true_value must be 'varying' or 'constant', got {true_value!r}")
    cols = [x, y] + ([participant] if participant is not None else [])
    require_columns(data, cols, "bland_altman")
    df = pd.DataFrame({c: data[c].to_numpy() for c in dict.fromkeys(cols)})
    df[x] = pd.to_numeric(df[x], errors="coerce")
    df[y] = pd.to_numeric(df[y], errors="coerce")
    if participant is not None and ci_method == "exact":
        raise ValueError("ci_method='exact' is available for the classic analysis only")
    if participant is not None and df[participant].isna().any():
        raise AnalysisError(f"bland_altman: {int(df[participant].isna().sum())} row(s) have no "
                            f"{participant!r}")
    if participant is None:
        fit = _ba_classic(df, x, y, limits, confidence, ci_method)
    elif true_value == "varying":
        fit = _ba_varying(df, x, y, participant, limits, confidence)
    else:
        fit = _ba_constant(df, x, y, participant, limits, confidence)
    pts = fit.pop("points")
    slope, slope_ci, slope_p, intercept = _ols_slope(
        fit.pop("reg_mean"), fit.pop("reg_diff"), confidence)
    return BlandAltmanResult(x=x, y=y, limits=float(limits), confidence=confidence,
                             ci_method=ci_method, slope=slope, slope_ci=tuple(map(float, slope_ci)),
                             slope_p_value=slope_p, intercept=intercept, points=pts, **fit)


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


def _ba_limits(bias, se_bias, sd, var_sd2, df, limits, confidence, n_pairs, n_participants,
               method, points, reg_mean, reg_diff, details):
    """Limits and their delta-method CIs (the 1999 approximation for the classic case)."""
    t = stats.t.ppf(0.5 + confidence / 2, df)
    se_loa = np.sqrt(se_bias**2 + limits**2 * var_sd2 / (4 * sd**2))
    lo, hi = bias - limits * sd, bias + limits * sd
    tstat = bias / se_bias
    return dict(method=method, n_pairs=n_pairs, n_participants=n_participants, bias=float(bias), sd=float(sd),
                loa_low=float(lo), loa_high=float(hi),
                bias_ci=(float(bias - t * se_bias), float(bias + t * se_bias)),
                loa_low_ci=(float(lo - t * se_loa), float(lo + t * se_loa)),
                loa_high_ci=(float(hi - t * se_loa), float(hi + t * se_loa)),
                bias_p_value=float(2 * stats.t.sf(abs(tstat), df)), points=points,
                reg_mean=reg_mean, reg_diff=reg_diff, details=details)


def _ba_classic(df, x, y, limits, confidence, ci_method):
    ok, d, m = _ba_paired(df, x, y, "")
    n = d.size
    bias, sd = d.mean(), d.std(ddof=1)
    points = pd.DataFrame({"pair_mean": m, "pair_difference": d})
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


def _ba_varying(df, x, y, participant, limits, confidence):
    ok, d, mean = _ba_paired(df, x, y, "")
    s = df[participant].to_numpy()[ok]
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
    points = pd.DataFrame({"pair_mean": mean, "pair_difference": d, "participant_id": s})
    details = dict(msb=msb, msw=msw, c=c, var_between=s2b, var_within=msw)
    return _ba_limits(bias, se_bias, np.sqrt(var_total), var_s2, n - 1, limits, confidence, N,
                      n, "repeated, true value varying", points, mean_i, d_i, details)


def _ba_constant(df, x, y, participant, limits, confidence):
    parts = {}
    for col in (x, y):
        v = df[[participant, col]].dropna()
        counts = v.groupby(participant, sort=True, observed=True)[col].size()
        _single_reading_error(counts, f"reading of {col!r}")
        means = v.groupby(participant, sort=True, observed=True)[col].mean()
        ss = ((v[col] - v[participant].map(means)) ** 2).sum()
        dfw = len(v) - counts.size
        parts[col] = dict(means=means, counts=counts, s2w=ss / dfw, dfw=dfw, N=len(v))
    sx, sy = set(parts[x]["means"].index), set(parts[y]["means"].index)
    if sx != sy:
        odd = sorted(map(str, sx ^ sy))
        raise AnalysisError(f"bland_altman: participant(s) {odd[:5]} have readings by only one of "
                            f"{x!r} and {y!r}")
    n = len(sx)
    if n < 3:
        raise AnalysisError(f"bland_altman: need at least 3 participants, got {n}")
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
    points = pd.DataFrame({"pair_mean": mean_i, "pair_difference": d_i, "participant_id": xm.index.to_numpy()})
    details = dict(var_mean_diff=s2d, var_within_x=parts[x]["s2w"], var_within_y=parts[y]["s2w"])
    return _ba_limits(d_i.mean(), np.sqrt(s2d / n), np.sqrt(var_total), var_s2, n - 1, limits,
                      confidence, parts[x]["N"] + parts[y]["N"], n,
                      "repeated, true value constant", points, mean_i, d_i, details)
