"""Diagnostic accuracy of a screening score at a cut-off: sensitivity, specificity, predictive
values and likelihood ratios with confidence intervals, plus the shared score/condition checks
of :mod:`hipstats.stats.roc`.

References
----------
Simel DL, Samsa GP, Matchar DB (1991). Likelihood ratios with confidence: sample size estimation
for diagnostic test studies. J Clin Epidemiol 44:763-770.

Examples
--------
>>> import pandas as pd
>>> from hipstats.stats.accuracy import diagnostic_accuracy
>>> df = pd.DataFrame({"aslr": [55, 62, 68, 75, 80, 85, 66, 90],
...                    "deficit": [1, 1, 1, 0, 0, 0, 0, 0]})
>>> tab = diagnostic_accuracy(df, "aslr", "deficit", cutoff=70)
>>> float(tab.loc["sensitivity", "estimate"])
1.0
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.errors import AnalysisError
from hipstats.stats.inference import check_confidence

__all__ = ["diagnostic_accuracy"]


DIRECTIONS = ("<", "<=", ">", ">=")


# ----------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------
def score_column(data: pd.DataFrame | None, col: Any, what: str) -> tuple[np.ndarray, str]:
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


def as_condition(values: np.ndarray, name: str) -> np.ndarray:
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


def score_condition_arrays(data, score, condition, *, warn_missing: bool = True) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Scores (float) and condition (bool) with rows missing either dropped."""
    x_raw, sname = score_column(data, score, "score")
    c_raw, cname = score_column(data, condition, "condition")
    if len(x_raw) != len(c_raw):
        raise AnalysisError(f"score ({len(x_raw)}) and condition ({len(c_raw)}) differ in length")
    try:
        x = pd.to_numeric(pd.Series(x_raw), errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise AnalysisError(f"score column {sname!r} must be numeric") from None
    c = as_condition(c_raw, cname)
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


def require_both_classes(y: np.ndarray, cname: str, what: str) -> None:
    """Raise :class:`AnalysisError` unless the condition ``y`` has both cases and controls."""
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


def check_direction(direction: str, allow_auto: bool) -> None:
    """Raise :class:`AnalysisError` unless ``direction`` is a test-positive rule of
    :data:`DIRECTIONS` (or ``"auto"`` where ``allow_auto``)."""
    allowed = DIRECTIONS + (("auto",) if allow_auto else ())
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


def positive(x: np.ndarray, cutoff: float, direction: str) -> np.ndarray:
    """Test-positive mask of scores ``x`` at ``cutoff`` under the rule ``direction``.

    >>> positive(np.array([60.0, 70.0, 80.0]), 70.0, "<").tolist()
    [True, False, False]
    """
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
    >>> from hipstats.stats.accuracy import diagnostic_accuracy
    >>> df = pd.DataFrame({"aslr": [55, 62, 68, 75, 80, 66, 90, 85],
    ...                    "deficit": [1, 1, 1, 1, 0, 0, 0, 0]})
    >>> tab = diagnostic_accuracy(df, "aslr", "deficit", cutoff=70)
    >>> float(tab.loc["sensitivity", "estimate"]), float(tab.loc["specificity", "estimate"])
    (0.75, 0.75)
    """
    check_direction(direction, allow_auto=False)
    confidence = check_confidence(confidence)
    if ci not in ("wilson", "exact"):
        raise AnalysisError(f"ci must be 'wilson' or 'exact', got {ci!r}")
    x, y, sname, cname = score_condition_arrays(data, score, condition)
    require_both_classes(y, cname, "diagnostic accuracy (sensitivity and specificity)")
    warn_cutoff_range(x, cutoff, sname)
    pos = positive(x, cutoff, direction)
    tp, fp = int((pos & y).sum()), int((pos & ~y).sum())
    fn, tn = int((~pos & y).sum()), int((~pos & ~y).sum())
    return accuracy_table(tp, fp, fn, tn, ci=ci, confidence=confidence)


def warn_cutoff_range(x: np.ndarray, cutoff: float, sname: str) -> None:
    """Warn when ``cutoff`` lies outside the observed range of the score ``x``."""
    lo, hi = float(np.min(x)), float(np.max(x))
    if cutoff < lo or cutoff > hi:
        warnings.warn(f"cutoff {cutoff:g} lies outside the observed range of {sname!r} "
                      f"[{lo:g}, {hi:g}]: every test has the same result", UserWarning, stacklevel=3)


def accuracy_table(tp: int, fp: int, fn: int, tn: int, *, ci: str, confidence: float) -> pd.DataFrame:
    """The table of :func:`diagnostic_accuracy` from the four cells of the 2x2 table
    (interval method ``ci`` for the proportions)."""
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
