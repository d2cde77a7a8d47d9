"""Screening accuracy of the ASLR for a hip internal-rotation deficit (study question H3).

Does an active straight leg raise below a cutoff (70 degrees by default) flag limited hip
internal rotation (IR)? Does anterior pelvic tilt skew the test? This module answers that with

* :func:`diagnostic_accuracy` -- the 2x2 table at a cutoff: sensitivity, specificity, PPV, NPV,
  likelihood ratios, accuracy and prevalence, each with a confidence interval;
* :func:`roc` -- the empirical ROC curve and its AUC with DeLong's CI (as R's pROC), returned as a
  :class:`ROCResult` that plots itself with a bootstrap band;
* :func:`roc_test` -- DeLong's test for two correlated AUCs (two scores on the same people);
* :func:`youden_cutoff` -- the Youden-optimal cutoff with stratified bootstrap CIs;
* :func:`reference_condition` -- the reference standard (IR deficit) from an IR value;
* :func:`screening_analysis` -- all of the above in one call on a :class:`~hipstats.cohort.Cohort`,
  overall and by standing tilt class.

Direction convention
--------------------
Throughout this module ``direction`` names the *test-positive rule*: ``"<"`` means a score
**below** the threshold is a positive test (an ASLR under 70 degrees flags a deficit), ``">"``
means a score above it is positive. pROC names directions by the ordering of the groups
instead: pROC's ``direction=">"`` ("controls > cases") is this module's ``"<"`` and pROC's
``"<"`` is this module's ``">"``. ``direction="auto"`` follows pROC's rule exactly: a higher
score is positive when ``median(controls) <= median(cases)``, otherwise a lower one.

References
----------
DeLong ER, DeLong DM, Clarke-Pearson DL (1988). Comparing the areas under two or more correlated
receiver operating characteristic curves: a nonparametric approach. Biometrics 44:837-845.
Sun X, Xu W (2014). Fast implementation of DeLong's algorithm for comparing the areas under
correlated receiver operating characteristic curves. IEEE Signal Process Lett 21:1389-1393.
Simel DL, Samsa GP, Matchar DB (1991). Likelihood ratios with confidence: sample size estimation
for diagnostic test studies. J Clin Epidemiol 44:763-770.
Robin X et al. (2011). pROC: an open-source package for R and S+ to analyze and compare ROC
curves. BMC Bioinformatics 12:77.
Obuchowski NA (1997). Nonparametric analysis of clustered ROC curve data. Biometrics 53:567-578.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.errors import AnalysisError

__all__ = [
    "diagnostic_accuracy",
    "roc",
    "ROCResult",
    "roc_test",
    "youden_cutoff",
    "reference_condition",
    "screening_analysis",
    "ScreeningResult",
]

_DIRECTIONS = ("<", "<=", ">", ">=")


# ----------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------
def _column(data: pd.DataFrame | None, col: Any, what: str) -> tuple[np.ndarray, str]:
    """Return a column (or an array-like when ``data`` is None) as an array and its name."""
    if data is None:
        arr = np.asarray(col)
        name = getattr(col, "name", None) or what
        return arr, str(name)
    if not isinstance(col, str):
        raise AnalysisError(f"{what} must be a column name of data, got {type(col).__name__}")
    if col not in data.columns:
        raise AnalysisError(f"{what} column {col!r} not in data (columns: {list(data.columns)})")
    return data[col].to_numpy(), col


def _as_condition(values: np.ndarray, name: str) -> np.ndarray:
    """Turn a condition column into float 1.0 / 0.0 / nan; refuse anything not binary."""
    s = pd.Series(values)
    if s.dtype == object or isinstance(s.dtype, pd.BooleanDtype):
        s = s.map(lambda v: np.nan if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                  else v)
    try:
        num = pd.to_numeric(s, errors="raise").astype(float)
    except (TypeError, ValueError):
        bad = s.dropna().unique()[:5]
        raise AnalysisError(
            f"condition column {name!r} must be boolean or 0/1 (True = condition present); "
            f"found values such as {list(bad)}") from None
    ok = num.isna() | num.isin([0.0, 1.0])
    if not ok.all():
        bad = num[~ok].unique()[:5]
        raise AnalysisError(
            f"condition column {name!r} must be boolean or 0/1 (True = condition present); "
            f"found {list(bad)}")
    return num.to_numpy()


def _xy(data, score, condition, *, warn_missing: bool = True) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Scores (float) and condition (bool) with rows missing either dropped."""
    x_raw, sname = _column(data, score, "score")
    c_raw, cname = _column(data, condition, "condition")
    if len(x_raw) != len(c_raw):
        raise AnalysisError(f"score ({len(x_raw)}) and condition ({len(c_raw)}) differ in length")
    try:
        x = pd.to_numeric(pd.Series(x_raw), errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise AnalysisError(f"score column {sname!r} must be numeric") from None
    c = _as_condition(c_raw, cname)
    if np.isinf(x).any():
        raise AnalysisError(f"score column {sname!r} holds infinite values; a ROC curve needs finite scores")
    keep = ~(np.isnan(x) | np.isnan(c))
    n_drop = int((~keep).sum())
    if keep.sum() == 0:
        raise AnalysisError(f"no rows with both {sname!r} and {cname!r} present ({len(x)} rows, all missing)")
    if n_drop and warn_missing:
        warnings.warn(f"dropped {n_drop} of {len(x)} rows with a missing {sname!r} or {cname!r}",
                      UserWarning, stacklevel=3)
    return x[keep], c[keep].astype(bool), sname, cname


def _require_both_classes(y: np.ndarray, cname: str, what: str) -> None:
    n_pos = int(y.sum())
    n = len(y)
    if n_pos == 0:
        raise AnalysisError(
            f"all {n} observations are negative for {cname!r} (no one has the condition): "
            f"{what} needs both people with and without the condition")
    if n_pos == n:
        raise AnalysisError(
            f"all {n} observations are positive for {cname!r} (no one is free of the condition): "
            f"{what} needs both people with and without the condition")


def _check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise AnalysisError(f"confidence must be between 0 and 1, got {confidence}")
    return float(confidence)


def _check_direction(direction: str, allow_auto: bool) -> None:
    allowed = _DIRECTIONS + (("auto",) if allow_auto else ())
    if direction not in allowed:
        raise AnalysisError(f"direction must be one of {allowed}, got {direction!r}")


# ----------------------------------------------------------------------------------------------
# proportions
# ----------------------------------------------------------------------------------------------
def _binom_ci(k, n, confidence: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score or Clopper-Pearson interval for k successes out of n (vectorised)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    alpha = 1 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "wilson":
            z = stats.norm.ppf(1 - alpha / 2)
            p = k / n
            denom = 1 + z**2 / n
            centre = (p + z**2 / (2 * n)) / denom
            half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
            lo, hi = centre - half, centre + half
        elif method == "exact":
            lo = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
            hi = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
        else:
            raise AnalysisError(f"ci must be 'wilson' or 'exact', got {method!r}")
    bad = n <= 0
    lo = np.where(bad, np.nan, np.clip(lo, 0, 1))
    hi = np.where(bad, np.nan, np.clip(hi, 0, 1))
    return lo, hi


def _lr_ci(tp, fp, fn, tn, confidence: float):
    """LR+ and LR- with log-method CIs (Simel 1991); 0.5 is added to every cell if one is zero."""
    cells = np.array([tp, fp, fn, tn], dtype=float)
    corrected = bool((cells == 0).any())
    if corrected:
        cells = cells + 0.5
    a, b, c, d = cells
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    sens, spec = a / (a + c), d / (b + d)
    lr_pos = sens / (1 - spec)
    lr_neg = (1 - sens) / spec
    se_pos = np.sqrt(1 / a - 1 / (a + c) + 1 / b - 1 / (b + d))
    se_neg = np.sqrt(1 / c - 1 / (a + c) + 1 / d - 1 / (b + d))
    out = []
    for est, se in ((lr_pos, se_pos), (lr_neg, se_neg)):
        out.append((est, est * np.exp(-z * se), est * np.exp(z * se)))
    return out, corrected


def _positive(x: np.ndarray, cutoff: float, direction: str) -> np.ndarray:
    return {"<": x < cutoff, "<=": x <= cutoff, ">": x > cutoff, ">=": x >= cutoff}[direction]


def diagnostic_accuracy(data: pd.DataFrame | None, score, condition, *, cutoff: float = 70.0,
                        direction: str = "<", ci: str = "wilson",
                        confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy of a dichotomised score against a reference condition (the 2x2 table).

    A test is positive when ``score <direction> cutoff`` (by default ASLR < 70 degrees).

    Parameters
    ----------
    data : DataFrame or None
        One row per tested unit. With ``data=None``, ``score`` and ``condition`` are arrays.
    score : str
        Column with the numeric test score (e.g. ASLR angle, degrees).
    condition : str
        Column with the reference standard: True / 1 = condition present (e.g. IR deficit).
    cutoff : float, default 70
        Threshold of the test.
    direction : {"<", "<=", ">", ">="}, default "<"
        The test is positive when ``score < cutoff`` (``"<"``), ``score <= cutoff`` and so on.
    ci : {"wilson", "exact"}, default "wilson"
        Interval for the proportions: Wilson score or Clopper-Pearson exact.
    confidence : float, default 0.95
        Confidence level.

    Returns
    -------
    DataFrame
        One row per statistic (``tp``, ``fp``, ``fn``, ``tn``, ``sensitivity``, ``specificity``,
        ``ppv``, ``npv``, ``lr_positive``, ``lr_negative``, ``accuracy``, ``prevalence``) with
        columns ``estimate``, ``ci_low``, ``ci_high``, ``numerator``, ``denominator``,
        ``method``. Counts have no CI.

    Notes
    -----
    With TP, FP, FN, TN the cells, sensitivity = TP / (TP + FN), specificity = TN / (TN + FP),
    PPV = TP / (TP + FP), NPV = TN / (TN + FN), accuracy = (TP + TN) / N and prevalence =
    (TP + FN) / N, each a binomial proportion with a Wilson interval

    .. math:: \\frac{\\hat p + z^2/2n \\pm z\\sqrt{\\hat p(1-\\hat p)/n + z^2/4n^2}}{1 + z^2/n}

    or the Clopper-Pearson interval (beta quantiles). PPV and NPV are those of the sample, so they
    carry its prevalence. LR+ = sens / (1 - spec) and LR- = (1 - sens) / spec with the log-method
    interval of Simel et al. (1991):
    :math:`SE(\\ln LR+) = \\sqrt{1/TP - 1/(TP+FN) + 1/FP - 1/(FP+TN)}` and
    :math:`SE(\\ln LR-) = \\sqrt{1/FN - 1/(TP+FN) + 1/TN - 1/(FP+TN)}`. When a cell is zero,
    0.5 is added to all four cells for the likelihood ratios (the ``method`` column says so).

    A cutoff outside the range of the scores gives a warning (every test is then positive, or
    every test negative) but the table is still computed. Rows with a missing score or condition
    are dropped with a warning.

    References
    ----------
    Altman DG, Bland JM (1994). Diagnostic tests 1: sensitivity and specificity. BMJ 308:1552.
    Simel DL, Samsa GP, Matchar DB (1991). J Clin Epidemiol 44:763-770.
    Newcombe RG (1998). Two-sided confidence intervals for the single proportion. Stat Med 17:857.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.screening import diagnostic_accuracy
    >>> df = pd.DataFrame({"aslr": [55, 62, 68, 75, 80, 66, 90, 85],
    ...                    "deficit": [1, 1, 1, 1, 0, 0, 0, 0]})
    >>> tab = diagnostic_accuracy(df, "aslr", "deficit", cutoff=70)
    >>> float(tab.loc["sensitivity", "estimate"]), float(tab.loc["specificity", "estimate"])
    (0.75, 0.75)
    """
    _check_direction(direction, allow_auto=False)
    confidence = _check_confidence(confidence)
    if ci not in ("wilson", "exact"):
        raise AnalysisError(f"ci must be 'wilson' or 'exact', got {ci!r}")
    x, y, sname, cname = _xy(data, score, condition)
    _require_both_classes(y, cname, "diagnostic accuracy (sensitivity and specificity)")
    _warn_cutoff_range(x, cutoff, sname)
    pos = _positive(x, cutoff, direction)
    tp, fp = int((pos & y).sum()), int((pos & ~y).sum())
    fn, tn = int((~pos & y).sum()), int((~pos & ~y).sum())
    return _accuracy_table(tp, fp, fn, tn, ci=ci, confidence=confidence)


def _warn_cutoff_range(x: np.ndarray, cutoff: float, sname: str) -> None:
    lo, hi = float(np.min(x)), float(np.max(x))
    if cutoff < lo or cutoff > hi:
        warnings.warn(f"cutoff {cutoff:g} lies outside the observed range of {sname!r} "
                      f"[{lo:g}, {hi:g}]: every test has the same result", UserWarning, stacklevel=3)


def _accuracy_table(tp: int, fp: int, fn: int, tn: int, *, ci: str, confidence: float) -> pd.DataFrame:
    n = tp + fp + fn + tn
    num = np.array([tp, tn, tp, tn, tp + tn, tp + fn], dtype=float)
    den = np.array([tp + fn, tn + fp, tp + fp, tn + fn, n, n], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = num / den
    lo, hi = _binom_ci(num, den, confidence, ci)
    label = "Wilson score" if ci == "wilson" else "Clopper-Pearson exact"
    rows = [(name, float(v), np.nan, np.nan, float(v), np.nan, "count")
            for name, v in zip(("tp", "fp", "fn", "tn"), (tp, fp, fn, tn))]
    for i, name in enumerate(("sensitivity", "specificity", "ppv", "npv", "accuracy", "prevalence")):
        rows.append((name, est[i], lo[i], hi[i], num[i], den[i], label))
    (lrp, lrn), corrected = _lr_ci(tp, fp, fn, tn, confidence)
    lr_label = "log method (Simel 1991)" + (", 0.5 added to each cell (zero cell)" if corrected else "")
    rows.insert(8, ("lr_positive", *map(float, lrp), np.nan, np.nan, lr_label))
    rows.insert(9, ("lr_negative", *map(float, lrn), np.nan, np.nan, lr_label))
    out = pd.DataFrame(rows, columns=["statistic", "estimate", "ci_low", "ci_high", "numerator",
                                      "denominator", "method"]).set_index("statistic")
    out.attrs["confidence"] = confidence
    return out


# ----------------------------------------------------------------------------------------------
# ROC curve and DeLong
# ----------------------------------------------------------------------------------------------
def _resolve_direction(x: np.ndarray, y: np.ndarray, direction: str) -> str:
    """Test-positive rule '<' (low is positive) or '>' (high is positive); 'auto' as pROC."""
    if direction == "auto":
        return ">" if np.median(x[~y]) <= np.median(x[y]) else "<"
    if direction not in ("<", ">"):
        raise AnalysisError(f"ROC direction must be 'auto', '<' or '>', got {direction!r}")
    return direction


def _thresholds(u: np.ndarray, direction: str) -> np.ndarray:
    """pROC's candidate thresholds: -inf, midpoints of sorted unique values, +inf.

    Includes pROC's fix for midpoints that round onto a data value (adjacent doubles).
    """
    lo = np.concatenate([[-np.inf], u])
    hi = np.concatenate([u, [np.inf]])
    with np.errstate(over="ignore", invalid="ignore"):
        t1 = (lo + hi) / 2
    t2 = lo / 2 + hi / 2
    thr = np.where(np.abs(t1) > 1e100, t2, t1)
    inner = np.arange(1, len(u))
    if len(inner):
        at_lo = thr[inner] == u[inner - 1]
        at_hi = thr[inner] == u[inner]
        if direction == "<":   # positive if x < t: t must exceed the lower value
            thr[inner[at_hi & ~at_lo]] = u[inner[at_hi & ~at_lo] - 1]
            # (pROC's ">" rule: a midpoint equal to the upper value moves to the lower value)
        else:
            thr[inner[at_lo]] = u[inner[at_lo]]
    return thr


def _counts_by_value(x: np.ndarray, y: np.ndarray):
    u, inv = np.unique(x, return_inverse=True)
    cases = np.bincount(inv[y], minlength=len(u))
    controls = np.bincount(inv[~y], minlength=len(u))
    return u, cases, controls


def _sesp_from_counts(cases: np.ndarray, controls: np.ndarray, direction: str):
    """Sensitivity and specificity at the U + 1 thresholds (ascending) from counts per value.

    Works on the last axis, so ``cases`` may be a (B, U) array of bootstrap counts.
    """
    m = cases.sum(axis=-1, keepdims=True)
    n = controls.sum(axis=-1, keepdims=True)
    zero = np.zeros(cases.shape[:-1] + (1,))
    below_cases = np.concatenate([zero, np.cumsum(cases, axis=-1)], axis=-1)
    below_controls = np.concatenate([zero, np.cumsum(controls, axis=-1)], axis=-1)
    if direction == "<":   # positive = values below the threshold
        tp, tn = below_cases, n - below_controls
    else:
        tp, tn = m - below_cases, below_controls
    return tp / m, tn / n, tp, tn


def _delong_placements(cases: np.ndarray, controls: np.ndarray):
    """DeLong placements by midranks (Sun & Xu 2014), for k scores at once.

    ``cases`` is (k, m) and ``controls`` (k, n), oriented so that higher means case.
    Returns AUC (k,), V10 (k, m) and V01 (k, n).
    """
    m, n = cases.shape[1], controls.shape[1]
    tz = stats.rankdata(np.concatenate([cases, controls], axis=1), axis=1)
    tx = stats.rankdata(cases, axis=1)
    ty = stats.rankdata(controls, axis=1)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return v10.mean(axis=1), v10, v01


def _delong_cov(v10: np.ndarray, v01: np.ndarray) -> np.ndarray:
    """DeLong covariance matrix S10/m + S01/n of the k AUCs."""
    m, n = v10.shape[1], v01.shape[1]
    if m < 2 or n < 2:
        k = v10.shape[0]
        return np.full((k, k), np.nan)
    return np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n


def _oriented(x: np.ndarray, direction: str) -> np.ndarray:
    return -x if direction == "<" else x


def _se_at_specificity(se: np.ndarray, sp: np.ndarray, targets: np.ndarray, direction: str) -> np.ndarray:
    """Sensitivity at given specificities, as pROC's coords(input="specificity").

    ``se``, ``sp``: (B, K) in ascending-threshold order. At an exact specificity the highest
    sensitivity is returned; between points it is interpolated linearly.
    """
    if direction == "<":  # make specificity increase along the last axis (sensitivity decreases)
        se, sp = se[..., ::-1], sp[..., ::-1]
    # index of the first point with sp >= target (exists since sp ends at 1)
    j = (sp[:, None, :] < targets[None, :, None] - 1e-12).sum(axis=-1)  # (B, S)
    j = np.minimum(j, sp.shape[-1] - 1)
    rows = np.arange(se.shape[0])[:, None]
    sp_j, se_j = sp[rows, j], se[rows, j]
    jm = np.maximum(j - 1, 0)
    sp_m, se_m = sp[rows, jm], se[rows, jm]
    exact = np.isclose(sp_j, targets[None, :], rtol=0, atol=1e-12) | (j == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (targets[None, :] - sp_j) / (sp_m - sp_j)
    interp = se_j + frac * (se_m - se_j)
    return np.where(exact, se_j, interp)


def _boot_counts(inv: np.ndarray, n_values: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_values) counts per unique value of a with-replacement resample of ``inv``."""
    k = len(inv)
    draw = inv[rng.integers(0, k, size=(n_boot, k))]
    flat = draw + n_values * np.arange(n_boot)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_values).reshape(n_boot, n_values)


def _stratified_boot(x: np.ndarray, y: np.ndarray, n_boot: int, seed):
    """Stratified (cases and controls resampled separately, as pROC) bootstrap counts."""
    rng = np.random.default_rng(seed)
    u, inv = np.unique(x, return_inverse=True)
    c = _boot_counts(inv[y], len(u), n_boot, rng)
    k = _boot_counts(inv[~y], len(u), n_boot, rng)
    return u, c, k


@dataclass(repr=False)
class ROCResult:
    """Empirical ROC curve of one score against a binary reference condition.

    Attributes
    ----------
    curve : DataFrame
        ``threshold``, ``sensitivity``, ``specificity`` at pROC's candidate thresholds
        (ascending; -inf, midpoints between sorted unique scores, +inf).
    auc, se, ci_low, ci_high : float
        Area under the curve and DeLong standard error and confidence interval.
    direction : {"<", ">"}
        Test-positive rule (``"<"``: a score below the threshold is positive).
    """

    curve: pd.DataFrame
    auc: float
    se: float
    ci_low: float
    ci_high: float
    confidence: float
    direction: str
    n_cases: int
    n_controls: int
    score: str
    condition: str
    cutoff: float | None = None
    ci_method: str = "DeLong"
    _x: np.ndarray = field(default=None, repr=False)
    _y: np.ndarray = field(default=None, repr=False)
    _cluster: np.ndarray | None = field(default=None, repr=False)

    @property
    def proc_direction(self) -> str:
        """The same direction in pROC's naming ("<": controls < cases)."""
        return ">" if self.direction == "<" else "<"

    def summary(self) -> pd.DataFrame:
        """One-row DataFrame: AUC, DeLong SE and CI, counts and direction."""
        return pd.DataFrame([{
            "score": self.score, "condition": self.condition, "n_cases": self.n_cases,
            "n_controls": self.n_controls, "direction": f"positive if {self.score} {self.direction} t",
            "auc": self.auc, "se": self.se, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "confidence": self.confidence, "ci_method": self.ci_method,
        }])

    def to_frame(self) -> pd.DataFrame:
        """The ROC curve as a tidy frame (copy of :attr:`curve`)."""
        return self.curve.copy()

    def ci_band(self, specificities=None, *, n_boot: int = 2000, seed=0,
                confidence: float | None = None) -> pd.DataFrame:
        """Pointwise bootstrap band of sensitivity at fixed specificities (as pROC's ``ci.se``).

        Cases and controls are resampled separately (stratified, as pROC); in each replicate the
        sensitivity at each specificity is read off the empirical ROC curve (linear interpolation
        between points, the highest sensitivity at an exact match, as pROC's ``coords``); the band
        is the percentile interval. It is pointwise, not simultaneous. For a clustered ROC (both
        sides of each participant) participants are resampled instead.

        Returns
        -------
        DataFrame
            ``specificity``, ``se_low``, ``se_median``, ``se_high``.
        """
        conf = self.confidence if confidence is None else _check_confidence(confidence)
        sp_targets = np.linspace(0, 1, 51) if specificities is None else np.asarray(specificities, float)
        if self._cluster is None:
            _, c, k = _stratified_boot(self._x, self._y, n_boot, seed)
        else:  # both sides of a participant: resample participants
            _, c, k = _cluster_boot_counts(self._x, self._y, self._cluster, n_boot, seed)
            ok = (c.sum(1) > 0) & (k.sum(1) > 0)
            c, k = c[ok], k[ok]
        se, sp, _, _ = _sesp_from_counts(c, k, self.direction)
        vals = _se_at_specificity(se, sp, sp_targets, self.direction)
        q = np.quantile(vals, [(1 - conf) / 2, 0.5, 1 - (1 - conf) / 2], axis=0)
        return pd.DataFrame({"specificity": sp_targets, "se_low": q[0], "se_median": q[1],
                             "se_high": q[2]})

    def at(self, cutoff: float) -> tuple[float, float]:
        """Sensitivity and specificity of the rule ``score <direction> cutoff``."""
        pos = _positive(self._x, cutoff, self.direction)
        return float(pos[self._y].mean()), float((~pos[~self._y]).mean())

    def plot(self, ax=None, **kwargs):
        """ROC curve with a bootstrap CI band and the cutoff marked; see
        :func:`hipstats.plots.screening.roc_plot`. Returns the matplotlib Figure."""
        from hipstats.plots.screening import roc_plot

        return roc_plot(self, ax=ax, **kwargs)

    def _repr_html_(self) -> str:
        s = self.summary().iloc[0]
        pct = round(100 * self.confidence)
        return (f"<div><strong>ROC: {html.escape(self.score)} for {html.escape(self.condition)}</strong>"
                f"<br>AUC {s.auc:.3f} ({pct}% CI {s.ci_low:.3f} to {s.ci_high:.3f}, "
                f"{html.escape(self.ci_method)}), "
                f"{self.n_cases} cases, {self.n_controls} controls; "
                f"{html.escape(s.direction)}</div>")

    def __repr__(self) -> str:
        return f"<ROCResult {self}>"

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return (f"ROC {self.score} for {self.condition}: AUC {self.auc:.3f} "
                f"({pct}% CI {self.ci_low:.3f} to {self.ci_high:.3f}, {self.ci_method}); "
                f"n = {self.n_cases} cases, {self.n_controls} controls")


def _roc_core(x, y, direction, confidence, sname, cname, cutoff=None) -> ROCResult:
    _require_both_classes(y, cname, "a ROC curve")
    d = _resolve_direction(x, y, direction)
    u, cases, controls = _counts_by_value(x, y)
    se, sp, _, _ = _sesp_from_counts(cases, controls, d)
    curve = pd.DataFrame({"threshold": _thresholds(u, d), "sensitivity": se, "specificity": sp})
    xo = _oriented(x, d)
    auc, v10, v01 = _delong_placements(xo[y][None, :], xo[~y][None, :])
    var = _delong_cov(v10, v01)[0, 0]
    auc = float(auc[0])
    if not np.isfinite(var):
        warnings.warn("DeLong variance needs at least two cases and two controls; SE and CI are NaN",
                      UserWarning, stacklevel=3)
    sd = float(np.sqrt(var)) if np.isfinite(var) else np.nan
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    lo, hi = (float(np.clip(auc - z * sd, 0, 1)), float(np.clip(auc + z * sd, 0, 1)))
    return ROCResult(curve=curve, auc=auc, se=sd, ci_low=lo, ci_high=hi, confidence=confidence,
                     direction=d, n_cases=int(y.sum()), n_controls=int((~y).sum()), score=sname,
                     condition=cname, cutoff=cutoff, _x=x, _y=y)


def roc(data: pd.DataFrame | None, score, condition, *, direction: str = "auto",
        confidence: float = 0.95, cutoff: float | None = None) -> ROCResult:
    """Empirical ROC curve and AUC with DeLong's confidence interval.

    Parameters
    ----------
    data : DataFrame or None
        One row per tested unit (``None``: ``score``, ``condition`` are arrays).
    score, condition : str
        Numeric score column and binary reference-condition column (True / 1 = present).
    direction : {"auto", "<", ">"}, default "auto"
        Test-positive rule: ``"<"`` a low score is positive (ASLR), ``">"`` a high one. ``"auto"``
        picks as pROC does: high is positive when median(controls) <= median(cases). Note that
        pROC's own labels are the other way round (see the module docstring).
    confidence : float, default 0.95
        Level of the DeLong interval.
    cutoff : float, optional
        A clinical cutoff to mark on the plot.

    Returns
    -------
    ROCResult

    Notes
    -----
    The AUC is the Mann-Whitney probability :math:`\\hat\\theta = P(X > Y) + \\tfrac12 P(X = Y)`
    for a case score X and control score Y (oriented so that higher means positive). DeLong's
    placements are :math:`V_{10}(X_i) = (T_{Z,i} - T_{X,i})/n` and
    :math:`V_{01}(Y_j) = 1 - (T_{Z,j} - T_{Y,j})/m` with T the midranks in the pooled sample (Z)
    and within cases (X) and controls (Y) (Sun & Xu 2014, O(N log N)). Then
    :math:`\\widehat{Var}(\\hat\\theta) = s^2_{10}/m + s^2_{01}/n` and the interval is
    :math:`\\hat\\theta \\pm z_{1-\\alpha/2}\\sqrt{Var}`, truncated to [0, 1] as in pROC's
    ``ci.auc(method = "delong")``. Missing rows are dropped with a warning.

    References
    ----------
    DeLong ER et al. (1988). Biometrics 44:837-845. Sun X, Xu W (2014). IEEE Signal Process Lett
    21:1389-1393. Robin X et al. (2011). BMC Bioinformatics 12:77.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.screening import roc
    >>> df = pd.DataFrame({"aslr": [55, 62, 68, 75, 80, 66, 90, 85],
    ...                    "deficit": [1, 1, 1, 1, 0, 0, 0, 0]})
    >>> r = roc(df, "aslr", "deficit")
    >>> r.direction, round(r.auc, 4)
    ('<', 0.875)
    """
    confidence = _check_confidence(confidence)
    if direction not in ("auto", "<", ">"):
        raise AnalysisError(f"ROC direction must be 'auto', '<' or '>', got {direction!r}")
    x, y, sname, cname = _xy(data, score, condition)
    return _roc_core(x, y, direction, confidence, sname, cname, cutoff)


def roc_test(data: pd.DataFrame, score1: str, score2: str, condition: str, *, direction: str = "auto",
             confidence: float = 0.95, alternative: str = "two-sided") -> pd.DataFrame:
    """DeLong's test for two correlated AUCs (two scores measured on the same units).

    Parameters
    ----------
    data : DataFrame
        One row per unit with both scores and the condition; rows missing any are dropped.
    score1, score2 : str
        The two score columns.
    condition : str
        Binary reference-condition column.
    direction : {"auto", "<", ">"} or tuple of two, default "auto"
        Test-positive rule per score ("auto" decided for each score separately, as pROC's
        ``roc()`` does before ``roc.test``). A warning is given when the directions differ.
    confidence : float
        Level of the CI of the AUC difference.
    alternative : {"two-sided", "greater", "less"}
        Alternative hypothesis about AUC1 - AUC2.

    Returns
    -------
    DataFrame
        One row: ``auc1``, ``auc2``, ``difference``, ``se``, ``ci_low``, ``ci_high``, ``z``,
        ``p_value``, ``n_cases``, ``n_controls``, ``direction1``, ``direction2``.

    Notes
    -----
    With S the DeLong covariance of the two AUCs (placements of both scores on the same cases and
    controls), :math:`z = (\\hat\\theta_1 - \\hat\\theta_2) / \\sqrt{S_{11} + S_{22} - 2S_{12}}`,
    as pROC's ``roc.test(method = "delong", paired = TRUE)``.

    References
    ----------
    DeLong ER et al. (1988). Biometrics 44:837-845.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.screening import roc_test
    >>> rng = np.random.default_rng(1)
    >>> y = rng.random(200) < 0.4
    >>> df = pd.DataFrame({"a": rng.normal(y * 1.0), "b": rng.normal(y * 0.3), "y": y})
    >>> res = roc_test(df, "a", "b", "y")
    >>> bool(res.loc[0, "p_value"] < 0.05)
    True
    """
    confidence = _check_confidence(confidence)
    if alternative not in ("two-sided", "greater", "less"):
        raise AnalysisError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    cols = [score1, score2, condition]
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise AnalysisError(f"columns {missing} not in data (columns: {list(data.columns)})")
    sub = data[cols]
    n_before = len(sub)
    sub = sub.dropna()
    if len(sub) < n_before:
        warnings.warn(f"dropped {n_before - len(sub)} of {n_before} rows with a missing score or "
                      f"condition", UserWarning, stacklevel=2)
    x1, y, _, cname = _xy(sub, score1, condition, warn_missing=False)
    x2, _, _, _ = _xy(sub, score2, condition, warn_missing=False)
    _require_both_classes(y, cname, "a ROC comparison")
    dirs = (direction, direction) if isinstance(direction, str) else tuple(direction)
    d1, d2 = _resolve_direction(x1, y, dirs[0]), _resolve_direction(x2, y, dirs[1])
    if d1 != d2:
        warnings.warn(f"the two scores have different directions ({score1}: {d1}, {score2}: {d2}); "
                      "DeLong's test should not be applied to ROC curves with a different direction",
                      UserWarning, stacklevel=2)
    xo = np.vstack([_oriented(x1, d1), _oriented(x2, d2)])
    auc, v10, v01 = _delong_placements(xo[:, y], xo[:, ~y])
    s = _delong_cov(v10, v01)
    diff = float(auc[0] - auc[1])
    sd = float(np.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1]))
    if sd == 0 and diff == 0:
        z = 0.0
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = diff / sd
    p = {"two-sided": 2 * stats.norm.sf(abs(z)), "greater": stats.norm.sf(z),
         "less": stats.norm.cdf(z)}[alternative]
    zc = stats.norm.ppf(1 - (1 - confidence) / 2)
    return pd.DataFrame([{
        "score1": score1, "score2": score2, "auc1": float(auc[0]), "auc2": float(auc[1]),
        "difference": diff, "se": sd, "ci_low": diff - zc * sd, "ci_high": diff + zc * sd,
        "z": float(z), "p_value": float(p), "alternative": alternative,
        "n_cases": int(y.sum()), "n_controls": int((~y).sum()), "direction1": d1, "direction2": d2,
    }])


# ----------------------------------------------------------------------------------------------
# Youden
# ----------------------------------------------------------------------------------------------
def _youden_pick(tp: np.ndarray, tn: np.ndarray, m: int, n: int, direction: str) -> np.ndarray:
    """Index of the Youden-optimal threshold per row; ties go to the highest sensitivity.

    J is compared as the integer tp*n + tn*m, so ties are exact.
    """
    score = np.rint(tp).astype(np.int64) * n + np.rint(tn).astype(np.int64) * m
    if direction == "<":  # sensitivity grows with the threshold index: take the last maximum
        k = score.shape[-1]
        return k - 1 - np.argmax(score[..., ::-1], axis=-1)
    return np.argmax(score, axis=-1)


def _boot_thresholds(u: np.ndarray, present: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Midpoint threshold of each replicate at gap ``k`` (between u[k-1] and u[k]), using only the
    values present in that replicate."""
    b, nu = present.shape
    idx = np.arange(nu)
    last_le = np.maximum.accumulate(np.where(present, idx, -1), axis=1)           # (B, U)
    next_ge = np.minimum.accumulate(np.where(present, idx, nu)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(b)
    lo_i = np.where(k > 0, last_le[rows, np.clip(k - 1, 0, nu - 1)], -1)
    hi_i = np.where(k < nu, next_ge[rows, np.clip(k, 0, nu - 1)], nu)
    lo = np.where(lo_i >= 0, u[np.clip(lo_i, 0, nu - 1)], -np.inf)
    hi = np.where(hi_i < nu, u[np.clip(hi_i, 0, nu - 1)], np.inf)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(lo), lo, np.where(np.isinf(hi), hi, (lo + hi) / 2))


def youden_cutoff(data: pd.DataFrame | None, score, condition, *, direction: str = "auto",
                  n_boot: int = 2000, seed=None, confidence: float = 0.95) -> pd.DataFrame:
    """Youden-optimal cutoff with stratified bootstrap percentile CIs.

    Parameters
    ----------
    data : DataFrame or None
        One row per tested unit.
    score, condition : str
        Score column and binary reference-condition column.
    direction : {"auto", "<", ">"}, default "auto"
        Test-positive rule, as in :func:`roc`.
    n_boot : int, default 2000
        Bootstrap replicates (0 for no CIs).
    seed : int or numpy Generator, optional
        Seed of the bootstrap.
    confidence : float, default 0.95
        Level of the percentile intervals.

    Returns
    -------
    DataFrame
        Rows ``cutoff``, ``sensitivity``, ``specificity``, ``youden_j`` with ``estimate``,
        ``ci_low``, ``ci_high``. ``attrs["ties"]`` holds every threshold that attains the maximum
        (pROC returns them all), ``attrs["direction"]`` the test-positive rule.

    Notes
    -----
    The cutoff maximises :math:`J = Se(t) + Sp(t) - 1` over pROC's candidate thresholds (the
    midpoints between sorted unique scores, and +-inf), as ``coords(roc, "best",
    best.method = "youden")`` (which reports Se + Sp, i.e. J + 1). When several thresholds tie,
    the one with the highest sensitivity is reported (the screening view: miss fewer deficits);
    all are in ``attrs["ties"]``. The bootstrap resamples cases and controls separately
    (stratified, as pROC), recomputes the curve and re-optimises the cutoff in every replicate
    (same tie rule); CIs are percentiles. The sensitivity and specificity CIs are those at the
    re-optimised cutoff, so they describe the optimised rule, not a fixed one. All replicates are
    computed at once from counts per unique score.

    The maximised J of a sample overestimates the population J (it is the maximum of noisy
    estimates), and its percentile interval inherits the bias: in binormal simulations (n = 200)
    the 95% interval of J covered the true J only about 82% of the time, while the interval of
    the cutoff covered the true cutoff about 97% of the time. Read J's interval as optimistic.

    References
    ----------
    Youden WJ (1950). Index for rating diagnostic tests. Cancer 3:32-35.
    Fluss R, Faraggi D, Reiser B (2005). Estimation of the Youden index and its associated cutoff
    point. Biometrical Journal 47:458-472.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.screening import youden_cutoff
    >>> df = pd.DataFrame({"aslr": [55, 62, 68, 75, 80, 66, 90, 85],
    ...                    "deficit": [1, 1, 1, 1, 0, 0, 0, 0]})
    >>> res = youden_cutoff(df, "aslr", "deficit", n_boot=200, seed=1)
    >>> float(res.loc["cutoff", "estimate"])
    77.5
    """
    confidence = _check_confidence(confidence)
    x, y, sname, cname = _xy(data, score, condition)
    return _youden_core(x, y, direction, n_boot, seed, confidence, sname, cname)


def _youden_core(x, y, direction, n_boot, seed, confidence, sname, cname, cluster=None) -> pd.DataFrame:
    _require_both_classes(y, cname, "a Youden cutoff")
    d = _resolve_direction(x, y, direction)
    m, n = int(y.sum()), int((~y).sum())
    u, cases, controls = _counts_by_value(x, y)
    se, sp, tp, tn = _sesp_from_counts(cases, controls, d)
    thr = _thresholds(u, d)
    jint = np.rint(tp).astype(np.int64) * n + np.rint(tn).astype(np.int64) * m
    best = np.flatnonzero(jint == jint.max())
    ties = pd.DataFrame({"threshold": thr[best], "sensitivity": se[best], "specificity": sp[best],
                         "youden_j": se[best] + sp[best] - 1})
    k0 = int(_youden_pick(tp, tn, m, n, d))
    est = {"cutoff": thr[k0], "sensitivity": se[k0], "specificity": sp[k0],
           "youden_j": se[k0] + sp[k0] - 1}
    ci = {key: (np.nan, np.nan) for key in est}
    n_boot = int(n_boot or 0)
    if n_boot > 0:
        if cluster is None:
            _, bc, bk = _stratified_boot(x, y, n_boot, seed)
        else:
            _, bc, bk = _cluster_boot_counts(x, y, cluster, n_boot, seed)
            ok = (bc.sum(1) > 0) & (bk.sum(1) > 0)
            bc, bk = bc[ok], bk[ok]
        bse, bsp, btp, btn = _sesp_from_counts(bc, bk, d)
        mb = np.rint(bc.sum(1, keepdims=True)).astype(np.int64)
        nb = np.rint(bk.sum(1, keepdims=True)).astype(np.int64)
        kb = _youden_pick(btp, btn, mb, nb, d)
        rows = np.arange(len(kb))
        draws = {"cutoff": _boot_thresholds(u, (bc + bk) > 0, kb),
                 "sensitivity": bse[rows, kb], "specificity": bsp[rows, kb]}
        draws["youden_j"] = draws["sensitivity"] + draws["specificity"] - 1
        ci = {key: _pct(v, confidence) for key, v in draws.items()}
    out = pd.DataFrame({"estimate": [float(v) for v in est.values()],
                        "ci_low": [float(ci[k][0]) for k in est],
                        "ci_high": [float(ci[k][1]) for k in est]},
                       index=pd.Index(list(est), name="statistic"))
    out.attrs.update(ties=ties, direction=d, n_boot=n_boot, confidence=confidence,
                     score=sname, condition=cname,
                     bootstrap="stratified" if cluster is None else "participant cluster")
    return out


# ----------------------------------------------------------------------------------------------
# unpaired comparison of two AUCs (independent groups, e.g. tilt classes)
# ----------------------------------------------------------------------------------------------
def _auc_unpaired_test(r1: ROCResult, r2: ROCResult) -> dict:
    """DeLong test of two AUCs from independent samples, as pROC's ``roc.test(paired = FALSE)``:
    :math:`D = (\\theta_1 - \\theta_2)/\\sqrt{V_1 + V_2}` referred to a t distribution with
    Welch-type df :math:`(V_1 + V_2)^2 / (V_1^2/(N_1 - 1) + V_2^2/(N_2 - 1))`."""
    v1, v2 = r1.se**2, r2.se**2
    n1, n2 = r1.n_cases + r1.n_controls, r2.n_cases + r2.n_controls
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (r1.auc - r2.auc) / np.sqrt(v1 + v2)
        df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    p = 2 * stats.t.sf(abs(d), df) if np.isfinite(d) and np.isfinite(df) else np.nan
    return {"difference": r1.auc - r2.auc, "se": float(np.sqrt(v1 + v2)), "statistic": float(d),
            "df": float(df), "p_value": float(p)}


# ----------------------------------------------------------------------------------------------
# clustered data (both sides of a participant)
# ----------------------------------------------------------------------------------------------
def _obuchowski_var(xo: np.ndarray, y: np.ndarray, cluster: np.ndarray) -> tuple[float, float]:
    """AUC and its variance for clustered data (Obuchowski 1997).

    With placements V10 of the N1 cases and V01 of the N0 controls over all units, and per cluster
    sums :math:`V_{10,i\\cdot}`, :math:`V_{01,i\\cdot}` with :math:`m_i` cases and :math:`n_i`
    controls:
    :math:`S_{10} = \\frac{I_{10}}{(I_{10}-1)N_1}\\sum_i (V_{10,i\\cdot} - m_i\\theta)^2`,
    :math:`S_{01} = \\frac{I_{01}}{(I_{01}-1)N_0}\\sum_i (V_{01,i\\cdot} - n_i\\theta)^2`,
    :math:`S_{11} = \\frac{I}{I-1}\\sum_i (V_{10,i\\cdot} - m_i\\theta)(V_{01,i\\cdot} - n_i\\theta)`,
    :math:`Var = S_{10}/N_1 + S_{01}/N_0 + 2S_{11}/(N_1N_0)`. With one unit per cluster it equals
    DeLong's variance.
    """
    auc, v10, v01 = _delong_placements(xo[y][None, :], xo[~y][None, :])
    theta = float(auc[0])
    codes, ids = pd.factorize(cluster)
    n_cl = len(ids)
    m_i = np.bincount(codes[y], minlength=n_cl)
    n_i = np.bincount(codes[~y], minlength=n_cl)
    a = np.bincount(codes[y], weights=v10[0], minlength=n_cl) - m_i * theta
    b = np.bincount(codes[~y], weights=v01[0], minlength=n_cl) - n_i * theta
    n1, n0 = int(y.sum()), int((~y).sum())
    i10, i01 = int((m_i > 0).sum()), int((n_i > 0).sum())
    if i10 < 2 or i01 < 2:
        return theta, np.nan
    s10 = i10 / ((i10 - 1) * n1) * np.sum(a**2)
    s01 = i01 / ((i01 - 1) * n0) * np.sum(b**2)
    s11 = n_cl / (n_cl - 1) * np.sum(a * b)
    return theta, float(s10 / n1 + s01 / n0 + 2 * s11 / (n1 * n0))


def _cluster_boot_counts(x: np.ndarray, y: np.ndarray, cluster: np.ndarray, n_boot: int, seed):
    """Counts per unique score of cases and controls in participant-cluster bootstrap resamples."""
    rng = np.random.default_rng(seed)
    u, inv = np.unique(x, return_inverse=True)
    codes, ids = pd.factorize(cluster)
    n_cl = len(ids)
    w = _boot_counts(np.arange(n_cl), n_cl, n_boot, rng).astype(float)   # (B, I) draws per cluster
    a_case = np.zeros((n_cl, len(u)))
    a_ctrl = np.zeros((n_cl, len(u)))
    np.add.at(a_case, (codes[y], inv[y]), 1.0)
    np.add.at(a_ctrl, (codes[~y], inv[~y]), 1.0)
    return u, w @ a_case, w @ a_ctrl


def _pct(v: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval; NaN replicates (undefined statistic) are dropped, infinite ones kept."""
    v = v[~np.isnan(v)]
    if not len(v):
        return np.nan, np.nan
    lo, hi = np.quantile(v, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)


def _clustered_accuracy_ci(tab: pd.DataFrame, x, y, cluster, cutoff, direction, n_boot, seed,
                           confidence) -> pd.DataFrame:
    """Replace the CIs of an accuracy table by participant-cluster bootstrap percentiles."""
    u, c, k = _cluster_boot_counts(x, y, cluster, n_boot, seed)
    pos = _positive(u, cutoff, direction).astype(float)
    tp, fp = c @ pos, k @ pos
    fn, tn = c.sum(1) - tp, k.sum(1) - fp
    n = tp + fp + fn + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = {"sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp), "ppv": tp / (tp + fp),
                 "npv": tn / (tn + fn), "accuracy": (tp + tn) / n, "prevalence": (tp + fn) / n}
        draws["lr_positive"] = draws["sensitivity"] / (1 - draws["specificity"])
        draws["lr_negative"] = (1 - draws["sensitivity"]) / draws["specificity"]
    out = tab.copy()
    for key, v in draws.items():
        out.loc[key, ["ci_low", "ci_high"]] = _pct(v, confidence)
        out.loc[key, "method"] = f"participant cluster bootstrap percentile ({n_boot})"
    return out


# ----------------------------------------------------------------------------------------------
# reference condition
# ----------------------------------------------------------------------------------------------
_DEFAULT_THRESHOLDS = {"below": 30.0}


def _threshold_for(deficit: str, threshold: float | None) -> float:
    if deficit not in ("below", "z", "side_difference"):
        raise AnalysisError(f"deficit must be 'below', 'z' or 'side_difference', got {deficit!r}")
    if threshold is None:
        if deficit not in _DEFAULT_THRESHOLDS:
            raise AnalysisError(
                f"deficit={deficit!r} needs an explicit threshold (a z value such as -1.5 for 'z', "
                f"degrees for 'side_difference'); only 'below' has a default (30 deg)")
        return _DEFAULT_THRESHOLDS[deficit]
    return float(threshold)


def reference_condition(data: pd.DataFrame, value: str = "value", *, deficit: str = "below",
                        threshold: float | None = None, mean: float | None = None,
                        sd: float | None = None, side: str = "side",
                        by: tuple[str, ...] = ("participant_id", "visit")) -> pd.Series:
    """The reference standard: whether each row has an IR deficit.

    Parameters
    ----------
    data : DataFrame
        One row per participant x side (x visit), e.g. from ``Cohort.outcomes("hip_ir_deg")``.
    value : str, default "value"
        Column with the IR value (degrees).
    deficit : {"below", "z", "side_difference"}, default "below"
        ``"below"``: deficit when value < threshold (default 30 deg).
        ``"z"``: deficit when the normative z, (value - mean) / sd, is below threshold
        (``mean``, ``sd`` and ``threshold`` required, e.g. threshold=-1.5).
        ``"side_difference"``: deficit on the lower side when it is more than ``threshold``
        degrees below the other side of the same participant (and visit); the other side is not
        a deficit. Needs both sides; rows whose other side is missing get <NA>.
    threshold : float, optional
        The cut value; see ``deficit``.
    mean, sd : float, optional
        Normative mean and SD for ``deficit="z"``.
    side : str, default "side"
        Side column (``side_difference`` only).
    by : tuple of str
        Columns (those present) that identify one participant's pair of sides.

    Returns
    -------
    Series of pandas "boolean" dtype
        True = deficit, aligned with ``data``; <NA> where the value (or the other side) is missing.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.screening import reference_condition
    >>> ir = pd.DataFrame({"participant_id": ["P1", "P1", "P2", "P2"],
    ...                    "side": ["left", "right", "left", "right"],
    ...                    "value": [25.0, 38.0, 40.0, 44.0]})
    >>> reference_condition(ir).tolist()
    [True, False, False, False]
    >>> reference_condition(ir, deficit="side_difference", threshold=10).tolist()
    [True, False, False, False]
    >>> reference_condition(ir, deficit="z", mean=36, sd=9, threshold=-1).tolist()
    [True, False, False, False]
    """
    if value not in data.columns:
        raise AnalysisError(f"value column {value!r} not in data (columns: {list(data.columns)})")
    thr = _threshold_for(deficit, threshold)
    v = pd.to_numeric(data[value], errors="coerce")
    if deficit == "below":
        flag = v < thr
    elif deficit == "z":
        if mean is None or sd is None:
            raise AnalysisError("deficit='z' needs the normative mean= and sd= of IR")
        if not sd > 0:
            raise AnalysisError(f"normative sd must be positive, got {sd}")
        flag = (v - mean) / sd < thr
    else:
        if side not in data.columns:
            raise AnalysisError(f"deficit='side_difference' needs a {side!r} column")
        keys = [c for c in by if c in data.columns]
        if not keys:
            raise AnalysisError(f"deficit='side_difference' needs columns identifying a participant "
                                f"(any of {list(by)})")
        sides = data[side].astype(str).str.lower()
        if not sides.isin(["left", "right"]).all():
            raise AnalysisError(f"deficit='side_difference' needs sides 'left'/'right', found "
                                f"{sorted(set(sides) - {'left', 'right'})}")
        counts = data.assign(_s=sides).groupby(keys + ["_s"], dropna=False).size()
        if (counts > 1).any():
            raise AnalysisError("deficit='side_difference' needs one row per participant and side "
                                f"(within {keys}); average trials first")
        other_side = sides.map({"left": "right", "right": "left"})
        lookup = data.assign(_s=sides, _v=v).set_index(keys + ["_s"])["_v"]
        idx = pd.MultiIndex.from_frame(data[keys].assign(_s=other_side))
        other = pd.Series(lookup.reindex(idx).to_numpy(), index=data.index)
        flag = (other - v) > thr
        flag = flag.where(other.notna())
    out = pd.Series(flag, index=data.index).astype("boolean")
    out[v.isna().to_numpy()] = pd.NA
    return out.rename("condition")


# ----------------------------------------------------------------------------------------------
# one call on a Cohort
# ----------------------------------------------------------------------------------------------
_SUMMARY_STATS = ("sensitivity", "specificity", "ppv", "npv", "lr_positive", "lr_negative")


@dataclass
class ScreeningResult:
    """Result of :func:`screening_analysis`: ASLR screening accuracy for an IR deficit.

    Attributes
    ----------
    units : DataFrame
        The analysed units: participant_id, side, score, ir, condition, standing tilt and
        tilt_class.
    accuracy : DataFrame
        Long table of the 2x2 statistics at the cutoff, per group ("all" and each tilt class).
    auc : DataFrame
        AUC with CI per group.
    youden : DataFrame
        Youden-optimal cutoff, sensitivity, specificity and J with bootstrap CIs per group.
    tilt_comparison : DataFrame
        AUC of each tilt class against the neutral class (independent-groups DeLong test).
    rocs : dict of str to ROCResult
        The ROC curves per group (groups that could not be analysed are missing).
    notes : dict of str to str
        Why a group could not be analysed (empty class, no deficits, ...).
    settings : dict
        The arguments of the analysis.
    """

    units: pd.DataFrame
    accuracy: pd.DataFrame
    auc: pd.DataFrame
    youden: pd.DataFrame
    tilt_comparison: pd.DataFrame
    rocs: dict
    notes: dict
    settings: dict

    @property
    def roc(self) -> ROCResult:
        """The overall ROC curve."""
        return self.rocs["all"]

    @property
    def groups(self) -> list[str]:
        return list(self.auc["group"])

    def summary(self) -> pd.DataFrame:
        """One row per group: counts, accuracy at the cutoff, AUC and the Youden cutoff, with CIs."""
        rows = []
        for g in self.groups:
            a = self.accuracy[self.accuracy["group"] == g].set_index("statistic")
            au = self.auc[self.auc["group"] == g].iloc[0]
            yd = self.youden[self.youden["group"] == g].set_index("statistic")
            row = {"group": g, "n_units": au["n_units"], "n_participants": au["n_participants"],
                   "n_deficit": au["n_cases"],
                   "prevalence": a.loc["prevalence", "estimate"] if len(a) else np.nan}
            for stat in _SUMMARY_STATS:
                for col, suffix in (("estimate", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high")):
                    row[stat + suffix] = a.loc[stat, col] if len(a) else np.nan
            row.update(auc=au["auc"], auc_ci_low=au["ci_low"], auc_ci_high=au["ci_high"])
            for col, suffix in (("estimate", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high")):
                row["youden_cutoff" + suffix] = yd.loc["cutoff", col] if len(yd) else np.nan
            row["note"] = self.notes.get(g, "")
            rows.append(row)
        return pd.DataFrame(rows)

    def to_frame(self) -> pd.DataFrame:
        """Every estimate in one long tidy frame: group, analysis, statistic, estimate, CI."""
        acc = self.accuracy.assign(analysis=f"cutoff {self.settings['cutoff']:g}")
        au = self.auc.assign(analysis="roc", statistic="auc").rename(columns={"auc": "estimate"})
        yd = self.youden.assign(analysis="youden")
        cols = ["group", "analysis", "statistic", "estimate", "ci_low", "ci_high"]
        return pd.concat([acc[cols], au[cols], yd[cols]], ignore_index=True)

    def plot(self, **kwargs):
        """ROC curves (overall with CI band, and per tilt class) with the cutoff marked; see
        :func:`hipstats.plots.screening.roc_plot`. Returns the matplotlib Figure."""
        from hipstats.plots.screening import roc_plot

        return roc_plot(self, **kwargs)

    def _repr_html_(self) -> str:
        s = self.settings
        cols = ["group", "n_units", "n_deficit", "sensitivity", "specificity", "ppv", "npv", "auc",
                "auc_ci_low", "auc_ci_high", "youden_cutoff", "note"]
        head = (f"<strong>ASLR screening for IR deficit</strong>: positive if {html.escape(s['score_measure'])} "
                f"{html.escape(s['direction'])} {s['cutoff']:g}; deficit {html.escape(s['deficit_label'])}; "
                f"units: {html.escape(s['sides'])} at {html.escape(str(s['visit']))}")
        return f"<div>{head}{self.summary()[cols].to_html(index=False, float_format='%.3f')}</div>"

    def __repr__(self) -> str:
        return f"ScreeningResult(groups={self.groups}, cutoff={self.settings['cutoff']:g})"


def _deficit_label(deficit, thr, mean, sd) -> str:
    if deficit == "below":
        return f"IR < {thr:g} deg"
    if deficit == "z":
        return f"IR z < {thr:g} (norm mean {mean:g}, SD {sd:g})"
    return f"IR more than {thr:g} deg below the other side"


def _screening_units(cohort, *, visit, ir_measure, ir_pelvis, score_measure, score_pelvis,
                     deficit, threshold, mean, sd, sides, cuts) -> pd.DataFrame:
    visits = cohort.measurements["visit"].astype(str).unique().tolist()
    if visit == "baseline" and "baseline" not in visits:
        visit = cohort.baseline_visit
    if visit not in visits:
        raise AnalysisError(f"visit {visit!r} not in the cohort (visits: {sorted(visits)})")
    ir = cohort.outcomes(ir_measure, pelvis=ir_pelvis, visits=[visit])
    if ir.empty and ir_pelvis == "neutral":
        own = cohort.outcomes(ir_measure, pelvis="free", visits=[visit])
        if not own.empty:
            warnings.warn(f"no {ir_measure!r} readings with a neutral-pelvis setup at visit {visit!r}; the "
                          "reference condition uses own-posture IR instead (ir_pelvis='free')", UserWarning,
                          stacklevel=3)
            ir, ir_pelvis = own, "free"
    if ir.empty:
        raise AnalysisError(f"no {ir_measure!r} outcomes with pelvis={ir_pelvis!r} at visit {visit!r}")
    sc = cohort.outcomes(score_measure, pelvis=score_pelvis, visits=[visit])
    if sc.empty:
        raise AnalysisError(f"no {score_measure!r} outcomes with pelvis={score_pelvis!r} at visit {visit!r}")
    units = (ir[["participant_id", "side", "value"]].rename(columns={"value": "ir"})
             .merge(sc[["participant_id", "side", "value"]].rename(columns={"value": "score"}),
                    on=["participant_id", "side"], how="outer"))
    units["condition"] = reference_condition(units, "ir", deficit=deficit, threshold=threshold,
                                             mean=mean, sd=sd, by=("participant_id",))
    if sides == "lower_ir":
        has = units.dropna(subset=["ir"]).sort_values(["participant_id", "ir", "side"])
        units = has.groupby("participant_id", sort=False).head(1)
    elif sides in ("left", "right"):
        units = units[units["side"] == sides]
    elif sides != "both":
        raise AnalysisError(f"sides must be 'lower_ir', 'both', 'left' or 'right', got {sides!r}")
    tilt = cohort.outcomes("pelvic_tilt_deg", pelvis=None, visits=[visit])
    tilt_mean = tilt.groupby("participant_id")["value"].mean()
    units = units.assign(standing_tilt_deg=units["participant_id"].map(tilt_mean))
    units["tilt_class"] = _tilt_class(units["standing_tilt_deg"], cuts)
    units = units.sort_values(["participant_id", "side"]).reset_index(drop=True)
    units.attrs["ir_pelvis"] = ir_pelvis  # the condition actually used (after any fallback)
    return units


def _tilt_class(values, cuts) -> pd.Categorical:
    from hipstats.pelvis import tilt_class

    return tilt_class(values, cuts=cuts)


def _analyse_group(units: pd.DataFrame, *, clustered: bool, cutoff, direction, ci, confidence,
                   n_boot, seeds, group: str):
    x = units["score"].to_numpy(float)
    y = units["condition"].to_numpy(bool)
    cl = units["participant_id"].to_numpy() if clustered else None
    _require_both_classes(y, f"IR deficit in group {group!r}", "screening accuracy")
    pos = _positive(x, cutoff, direction)
    tp, fp = int((pos & y).sum()), int((pos & ~y).sum())
    fn, tn = int((~pos & y).sum()), int((~pos & ~y).sum())
    acc = _accuracy_table(tp, fp, fn, tn, ci=ci, confidence=confidence)
    r = _roc_core(x, y, "<" if direction in ("<", "<=") else ">", confidence, "score",
                  "condition", cutoff)
    if clustered:
        acc = _clustered_accuracy_ci(acc, x, y, cl, cutoff, direction, n_boot, seeds[0], confidence)
        auc, var = _obuchowski_var(_oriented(x, r.direction), y, cl)
        z = stats.norm.ppf(1 - (1 - confidence) / 2)
        sd = float(np.sqrt(var)) if np.isfinite(var) else np.nan
        r.se, r.ci_low, r.ci_high = sd, float(np.clip(auc - z * sd, 0, 1)), float(np.clip(auc + z * sd, 0, 1))
        r.ci_method, r._cluster = "Obuchowski clustered DeLong", cl
    yd = _youden_core(x, y, r.direction, n_boot, seeds[1], confidence, "score", "condition", cluster=cl)
    return acc, r, yd


def screening_analysis(cohort, *, cutoff: float = 70.0, deficit: str = "below",
                       threshold: float | None = None, mean: float | None = None,
                       sd: float | None = None, visit: str = "baseline", by_tilt_class: bool = True,
                       cuts=None, sides: str = "lower_ir", direction: str = "<",
                       score_measure: str = "aslr_deg", score_pelvis: str | None = "free",
                       ir_measure: str = "hip_ir_deg", ir_pelvis: str | None = "neutral",
                       ci: str = "wilson", confidence: float = 0.95, n_boot: int = 2000,
                       seed=0) -> ScreeningResult:
    """Does an ASLR below a cutoff flag an IR deficit? Overall and by standing tilt class (H3).

    Parameters
    ----------
    cohort : hipstats.cohort.Cohort
        The cohort; uses ``cohort.outcomes`` (mean of the primary rater's trials).
    cutoff : float, default 70
        ASLR cutoff in degrees; the test is positive when ``ASLR < cutoff`` (``direction``).
    deficit : {"below", "z", "side_difference"}, default "below"
        Reference standard from IR, see :func:`reference_condition`; ``threshold`` defaults to
        30 deg for "below" and must be given otherwise; ``mean``/``sd`` are the norms for "z".
    visit : str, default "baseline"
        Visit analysed (cross-sectional accuracy).
    by_tilt_class : bool, default True
        Also analyse each standing tilt class (posterior / neutral / anterior, from standing
        pelvic tilt at the same visit) and compare each class's AUC with the neutral class.
    cuts : pair of float, optional
        Tilt class cut points; default :data:`hipstats.schema.DEFAULT_TILT_CUTS` (as
        :func:`hipstats.pelvis.tilt_class`).
    sides : {"lower_ir", "both", "left", "right"}, default "lower_ir"
        Unit of analysis. The two sides of a participant are correlated, so the default keeps one
        unit per participant: the side with the lower IR (its ASLR against its IR), i.e. the
        question "does the ASLR of the worse side flag the deficit?". ``"both"`` uses both sides
        and accounts for the pairing: the AUC variance is Obuchowski's clustered DeLong variance
        and the accuracy and Youden CIs come from a bootstrap over participants.
    direction : {"<", "<=", ">", ">="}, default "<"
        Test-positive rule for the cutoff; the ROC uses "<" or ">" accordingly.
    score_measure, score_pelvis, ir_measure, ir_pelvis : str
        Measures and pelvic conditions: ASLR in own posture ("free"), IR with the neutral-pelvis
        setup ("neutral") by default, so the reference standard is not masked by tilt.
    ci : {"wilson", "exact"}
        Interval for the proportions (independent units).
    confidence : float, default 0.95
    n_boot : int, default 2000
        Bootstrap replicates (Youden CIs; with ``sides="both"`` also the accuracy CIs).
    seed : int, optional
        Seed of the bootstraps.

    Returns
    -------
    ScreeningResult

    Notes
    -----
    Each group ("all", then the tilt classes) gets :func:`diagnostic_accuracy` at the cutoff,
    :func:`roc` with the DeLong CI and :func:`youden_cutoff`. A group that cannot be analysed
    (no participants, or no one with / without a deficit) keeps a row with NaN estimates and a
    note, and a warning is given; the overall group must be analysable, else AnalysisError.
    AUCs of independent tilt classes are compared with the neutral class by DeLong's unpaired
    test (pROC's ``roc.test(paired = FALSE)``: a t statistic with Welch-type df).

    Examples
    --------
    >>> from hipstats.simulate import simulate_cohort
    >>> from hipstats.screening import screening_analysis
    >>> res = screening_analysis(simulate_cohort(120, seed=1), n_boot=200)
    >>> res.summary()[["group", "n_units", "sensitivity", "auc"]].shape
    (4, 4)
    """
    from hipstats.schema import DEFAULT_TILT_CUTS, TILT_CLASSES

    confidence = _check_confidence(confidence)
    _check_direction(direction, allow_auto=False)
    if ci not in ("wilson", "exact"):
        raise AnalysisError(f"ci must be 'wilson' or 'exact', got {ci!r}")
    cuts = tuple(DEFAULT_TILT_CUTS if cuts is None else cuts)
    thr = _threshold_for(deficit, threshold)
    units = _screening_units(cohort, visit=visit, ir_measure=ir_measure, ir_pelvis=ir_pelvis,
                             score_measure=score_measure, score_pelvis=score_pelvis, deficit=deficit,
                             threshold=thr, mean=mean, sd=sd, sides=sides, cuts=cuts)
    ir_pelvis = units.attrs.get("ir_pelvis", ir_pelvis)
    complete = units.dropna(subset=["score", "condition"])
    n_excl = len(units) - len(complete)
    if n_excl:
        warnings.warn(f"{n_excl} of {len(units)} units lack an ASLR or IR value at {visit!r} and "
                      "are left out", UserWarning, stacklevel=2)
    if complete.empty:
        raise AnalysisError(f"no participant has both {score_measure!r} and {ir_measure!r} at {visit!r}")
    complete = complete.assign(condition=complete["condition"].astype(bool))
    _warn_cutoff_range(complete["score"].to_numpy(float), cutoff, score_measure)
    groups = [("all", complete)]
    if by_tilt_class:
        for cls in TILT_CLASSES:
            groups.append((cls, complete[complete["tilt_class"] == cls]))
    children = np.random.SeedSequence(seed).spawn(2 * len(groups))
    acc_rows, auc_rows, yd_rows, rocs, notes = [], [], [], {}, {}
    for i, (g, sub) in enumerate(groups):
        base = {"group": g, "n_units": len(sub), "n_participants": sub["participant_id"].nunique(),
                "n_cases": int(sub["condition"].sum()), "n_controls": int((~sub["condition"]).sum())}
        try:
            if sub.empty:
                raise AnalysisError(f"no participants in tilt class {g!r} ({_class_bounds(g, cuts)})"
                                    if g != "all" else "no participants")
            acc, r, yd = _analyse_group(sub, clustered=sides == "both", cutoff=cutoff,
                                        direction=direction, ci=ci, confidence=confidence,
                                        n_boot=n_boot, seeds=children[2 * i: 2 * i + 2], group=g)
        except AnalysisError as err:
            if g == "all":
                raise
            notes[g] = str(err)
            warnings.warn(f"screening by tilt class: {err}", UserWarning, stacklevel=2)
            auc_rows.append({**base, "auc": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                             "ci_method": "", "direction": ""})
            continue
        r.score, r.condition = score_measure, f"IR deficit ({_deficit_label(deficit, thr, mean, sd)})"
        rocs[g] = r
        acc_rows.append(_plain(acc.reset_index().assign(group=g)))
        auc_rows.append({**base, "auc": r.auc, "se": r.se, "ci_low": r.ci_low, "ci_high": r.ci_high,
                         "ci_method": r.ci_method, "direction": r.direction})
        yd_rows.append(_plain(yd.reset_index().assign(group=g, n_ties=len(yd.attrs["ties"]))))
    lead = ["group"]
    accuracy = pd.concat(acc_rows, ignore_index=True)
    accuracy = accuracy[lead + [c for c in accuracy.columns if c not in lead]]
    youden = pd.concat(yd_rows, ignore_index=True)
    youden = youden[lead + [c for c in youden.columns if c not in lead]]
    comp = []
    if by_tilt_class and "neutral" in rocs:
        for g in ("posterior", "anterior"):
            if g in rocs:
                comp.append({"group": g, "reference": "neutral",
                             **_auc_unpaired_test(rocs[g], rocs["neutral"])})
    tilt_comparison = pd.DataFrame(comp, columns=["group", "reference", "difference", "se",
                                                  "statistic", "df", "p_value"])
    settings = {"cutoff": float(cutoff), "direction": direction, "deficit": deficit, "threshold": thr,
                "mean": mean, "sd": sd, "deficit_label": _deficit_label(deficit, thr, mean, sd),
                "visit": visit, "sides": sides, "cuts": cuts, "score_measure": score_measure,
                "score_pelvis": score_pelvis, "ir_measure": ir_measure, "ir_pelvis": ir_pelvis,
                "ci": ci, "confidence": confidence, "n_boot": n_boot, "seed": seed,
                "n_excluded": n_excl}
    return ScreeningResult(units=units, accuracy=accuracy, auc=pd.DataFrame(auc_rows), youden=youden,
                           tilt_comparison=tilt_comparison, rocs=rocs, notes=notes, settings=settings)


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    df.attrs = {}
    return df


def _class_bounds(cls: str, cuts) -> str:
    lo, hi = cuts
    return {"posterior": f"standing tilt < {lo:g} deg", "neutral": f"{lo:g} <= standing tilt < {hi:g} deg",
            "anterior": f"standing tilt >= {hi:g} deg"}.get(cls, "")
