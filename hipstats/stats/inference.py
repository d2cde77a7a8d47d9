"""Small shared pieces of inference used by several statistics modules: argument checks,
normal and t critical values, Wald tests, mean and proportion confidence intervals.

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
    return [cols] if isinstance(cols, str) else list(cols)


def require_columns(data: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{what}: data must be a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise AnalysisError(
            f"{what}: column(s) {missing} not in data; available: {list(data.columns)}"
        )


def check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return float(confidence)


def z_critical(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wald(est, se, alpha: float, df: float | None = None):
    """CI and two-sided p for estimate/SE (normal, or t with ``df``)."""
    est, se = np.asarray(est, float), np.asarray(se, float)
    dist = stats.norm if df is None else stats.t(df)
    crit = dist.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    return est - crit * se, est + crit * se, z, 2 * dist.sf(np.abs(z))


def mean_ci(v: np.ndarray, alpha: float) -> tuple[float, float, float]:
    v = v[~np.isnan(v)]
    if v.size == 0:
        return np.nan, np.nan, np.nan
    m = v.mean()
    if v.size < 2:
        return m, np.nan, np.nan
    h = stats.t.ppf(1 - alpha / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return m, m - h, m + h
