"""Small shared pieces of inference used by several statistics modules: argument checks,
normal and t critical values, Wald tests, mean and proportion confidence intervals, and the
multiplicity adjustment of a family of p-values (:func:`p_adjust`).

Examples
--------
>>> from hipstats.stats.inference import z_critical
>>> round(z_critical(0.95), 4)
1.96
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import numpy as np
from scipy import stats

from hipstats.errors import AnalysisError


# ---------------------------------------------------------------------------------------------
# small validation helpers
# ---------------------------------------------------------------------------------------------
def as_list(cols: str | Sequence[str]) -> list[str]:
    """One column name or several, as a list.

    >>> as_list("rater"), as_list(["participant_id", "side"])
    (['rater'], ['participant_id', 'side'])
    """
    return [cols] if isinstance(cols, str) else list(cols)


def require_columns(data: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    """Raise :class:`TypeError` unless ``data`` is a DataFrame and :class:`AnalysisError`
    naming the missing columns and those available unless it has all of ``cols``.

    >>> require_columns(pd.DataFrame({"a": [1]}), ["a"], "icc")
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{what}: data must be a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise AnalysisError(
            f"{what}: column(s) {missing} not in data; available: {list(data.columns)}"
        )


def check_confidence(confidence: float) -> float:
    """``confidence`` as a float, or :class:`AnalysisError` (a ValueError) unless 0 < it < 1.

    >>> check_confidence(0.9)
    0.9
    """
    if not 0 < confidence < 1:
        raise AnalysisError(f"confidence must be between 0 and 1, got {confidence!r}")
    return float(confidence)


def z_critical(confidence: float) -> float:
    """Two-sided standard-normal critical value for a ``confidence`` interval.

    >>> round(z_critical(0.95), 3)
    1.96
    """
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wald(est, se, alpha: float, df: float | None = None):
    """Wald interval and two-sided test of ``est`` with standard error ``se``.

    Returns ``(ci_low, ci_high, statistic, p_value)`` at level ``1 - alpha``, from the normal
    distribution or, with ``df``, from Student's t.

    >>> lo, hi, z, p = wald(2.0, 1.0, 0.05)
    >>> round(float(lo), 3), round(float(hi), 3), round(float(p), 4)
    (0.04, 3.96, 0.0455)
    """
    est, se = np.asarray(est, float), np.asarray(se, float)
    dist = stats.norm if df is None else stats.t(df)
    crit = dist.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    return est - crit * se, est + crit * se, z, 2 * dist.sf(np.abs(z))


def mean_ci(v: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """Mean of the non-missing values and its t interval at level ``1 - alpha``
    (NaN bounds with fewer than two values).

    >>> m, lo, hi = mean_ci(np.array([1.0, 2.0, 3.0, np.nan]), 0.05)
    >>> float(m), round(float(lo), 3), round(float(hi), 3)
    (2.0, -0.484, 4.484)
    """
    v = v[~np.isnan(v)]
    if v.size == 0:
        return np.nan, np.nan, np.nan
    m = v.mean()
    if v.size < 2:
        return m, np.nan, np.nan
    h = stats.t.ppf(1 - alpha / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return m, m - h, m + h


def coefficient_table(estimate: pd.Series, se, df, confidence: float = 0.95) -> pd.DataFrame:
    """The fixed-effect table of a model in the vocabulary: ``estimate, se, df, statistic (t),
    p_value, ci_low, ci_high`` per term (index ``term``), t tests and t intervals on ``df``.

    The one table of the mixed models (:class:`hipstats.models.lmm.LMMResult` and
    :class:`hipstats.models.mmrm.MMRMResult` summaries).

    >>> t = coefficient_table(pd.Series({"a": 2.0}), [1.0], [10.0])
    >>> round(float(t.loc["a", "statistic"]), 1), round(float(t.loc["a", "ci_low"]), 3)
    (2.0, -0.228)
    """
    se = pd.Series(np.asarray(se, float), index=estimate.index, name="se")
    df = np.asarray(df, float)
    t = estimate / se
    p = 2 * stats.t.sf(np.abs(t), df)
    crit = stats.t.ppf(0.5 + confidence / 2, df)
    out = pd.DataFrame({"estimate": estimate, "se": se, "df": df, "statistic": t, "p_value": p,
                        "ci_low": estimate - crit * se, "ci_high": estimate + crit * se})
    out.index.name = "term"
    return out


# ---------------------------------------------------------------------------------------------
# multiplicity
# ---------------------------------------------------------------------------------------------
#: Methods of :func:`p_adjust` (R's ``p.adjust`` names: holm, bonferroni, BH = fdr_bh; sidak).
P_ADJUST_METHODS: tuple[str, ...] = ("none", "holm", "bonferroni", "sidak", "fdr_bh")


def p_adjust(p, method: str = "holm") -> np.ndarray:
    """Adjust a family of p-values for multiple comparisons, as R's ``p.adjust``.

    Holm, Bonferroni, Sidak and Benjamini-Hochberg (``"fdr_bh"``); ``"none"`` returns them
    unchanged. Missing p-values (NaN) stay missing and do not count towards the family.

    Parameters
    ----------
    p : array-like of float
        The unadjusted p-values of one family.
    method : {"holm", "bonferroni", "sidak", "fdr_bh", "none"}, default "holm"

    Returns
    -------
    ndarray
        Adjusted p-values, in the order of ``p``.

    Examples
    --------
    >>> p_adjust([0.01, 0.04, 0.03]).round(3).tolist()   # R: p.adjust(c(.01, .04, .03), "holm")
    [0.03, 0.06, 0.06]
    >>> p_adjust([0.01, np.nan, 0.04], "bonferroni").tolist()
    [0.02, nan, 0.08]
    """
    if method not in P_ADJUST_METHODS:
        raise AnalysisError(f"unknown p-value adjustment {method!r}; use one of {P_ADJUST_METHODS}")
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    m = len(q)
    if method == "none" or m == 0:
        out[ok] = q
        return out
    if method == "bonferroni":
        adj = np.minimum(1.0, m * q)
    elif method == "sidak":
        adj = 1.0 - (1.0 - q) ** m
    else:
        order = np.argsort(q, kind="mergesort")
        qs = q[order]
        if method == "holm":
            steps = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * qs))
        else:  # fdr_bh
            steps = np.minimum(1.0, np.minimum.accumulate((m / np.arange(m, 0, -1)) * qs[::-1])[::-1])
        adj = np.empty(m)
        adj[order] = steps
    out[ok] = adj
    return out
