"""Standardised mean differences: Hedges' g with confidence intervals.

Two independent groups (a treatment arm against the reference arm):

.. math::

    d = \\frac{\\bar x_1 - \\bar x_2}{s_p},\\quad
    s_p = \\sqrt{\\frac{(n_1-1)s_1^2 + (n_2-1)s_2^2}{n_1+n_2-2}},\\quad
    g = J(\\nu)\\,d,\\quad
    J(\\nu) = \\frac{\\Gamma(\\nu/2)}{\\sqrt{\\nu/2}\\,\\Gamma((\\nu-1)/2)},\\ \\nu = n_1+n_2-2.

Paired data (change within participants) use :math:`d_z = \\bar D / s_D` with
:math:`\\nu = n-1`; :math:`g_z = J(\\nu)\\,d_z`.

Two confidence intervals are offered:

* ``"exact"`` (default): the noncentral-t interval (Steiger & Fouladi 1997). With
  :math:`t = d\\sqrt{\\tilde n}` (:math:`\\tilde n = n_1 n_2/(n_1+n_2)`, or :math:`n` when
  paired), find the noncentrality parameters :math:`\\lambda_L, \\lambda_U` with
  :math:`F_{t_\\nu(\\lambda_L)}(t) = 1-\\alpha/2` and :math:`F_{t_\\nu(\\lambda_U)}(t) = \\alpha/2`;
  the interval for :math:`\\delta` is :math:`\\lambda/\\sqrt{\\tilde n}`, and it is multiplied
  by :math:`J(\\nu)` to match the scale of g (as R's ``effectsize::hedges_g`` does).
* ``"normal"``: Hedges & Olkin's large-sample interval :math:`g \\pm z_{1-\\alpha/2} SE`, with
  :math:`SE^2 = 1/\\tilde n + g^2 / (2 N)` (N = n1 + n2; for paired data
  :math:`SE^2 = 1/n + g^2/(2n)`).

The exact interval has correct coverage for normal data at every sample size and is the
default; the normal interval is kept because many meta-analyses report it.

References
----------
Hedges, L. V. & Olkin, I. (1985). *Statistical Methods for Meta-Analysis*. Academic Press.

Steiger, J. H. & Fouladi, R. T. (1997). Noncentrality interval estimation and the evaluation
of statistical models. In *What if there were no significance tests?* (pp. 221-257).

Lakens, D. (2013). Calculating and reporting effect sizes to facilitate cumulative science.
*Frontiers in Psychology*, 4, 863.

Examples
--------
>>> import numpy as np
>>> from hipstats.stats.effect_sizes import hedges_g
>>> res = hedges_g(x=[6.1, 7.3, 5.2, 8.0, 6.6], y=[4.2, 5.1, 3.9, 5.5, 4.8])
>>> round(float(res["estimate"].iloc[0]), 3)
1.965
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from hipstats.errors import AnalysisError
from hipstats.results import DEPRECATED, PARTICIPANT_COLUMN, resolve_participant

__all__ = ["hedges_g", "hedges_j", "smd_ci"]


def hedges_j(df: float) -> float:
    """Hedges' exact small-sample correction :math:`J(\\nu)=\\Gamma(\\nu/2)/(\\sqrt{\\nu/2}\\Gamma((\\nu-1)/2))`.

    Approximately :math:`1 - 3/(4\\nu - 1)`.

    >>> round(hedges_j(10), 5)
    0.92275
    """
    if df <= 1:
        return float("nan")
    return float(np.exp(special.gammaln(df / 2) - 0.5 * np.log(df / 2) - special.gammaln((df - 1) / 2)))


def smd_ci(d: float, n_tilde: float, df: float, *, confidence: float = 0.95) -> tuple[float, float]:
    """Noncentral-t confidence interval of a standardised mean difference (Steiger & Fouladi 1997).

    With :math:`t = d\\sqrt{\\tilde n}` on ``df`` degrees of freedom, the noncentrality
    parameters :math:`\\lambda_L, \\lambda_U` with :math:`F_{t_\\nu(\\lambda_L)}(t) = 1-\\alpha/2`
    and :math:`F_{t_\\nu(\\lambda_U)}(t) = \\alpha/2` give the interval
    :math:`\\lambda/\\sqrt{\\tilde n}` for :math:`\\delta` (the scale of d; multiply by
    :func:`hedges_j` for the scale of g, as :func:`hedges_g` does).

    Parameters
    ----------
    d : float
        The standardised difference: Cohen's d (two groups) or :math:`d_z = \\bar D / s_D`
        (paired).
    n_tilde : float
        :math:`n_1 n_2 / (n_1 + n_2)` for two groups, the number of pairs ``n`` when paired.
    df : float
        Degrees of freedom of t: :math:`n_1 + n_2 - 2`, or :math:`n - 1` when paired.
    confidence : float, default 0.95
        Confidence level.

    Returns
    -------
    tuple of float
        ``(ci_low, ci_high)`` on the scale of d.

    Examples
    --------
    >>> lo, hi = smd_ci(0.8, 20, 19)
    >>> round(lo, 3), round(hi, 3)
    (0.286, 1.298)
    """
    if not 0 < confidence < 1:
        raise AnalysisError(f"confidence must be between 0 and 1, got {confidence}")
    alpha = 1 - confidence
    t = float(d) * np.sqrt(n_tilde)

    def solve(target: float) -> float:
        f = lambda ncp: stats.nct.cdf(t, df, ncp) - target  # noqa: E731 - local root function
        # bracket around the normal approximation of the noncentral t
        half = 4.0 * np.sqrt(1.0 + t * t / (2.0 * df)) + 1.0
        lo, hi = t - half, t + half
        while f(lo) < 0:
            lo -= half
        while f(hi) > 0:
            hi += half
        return optimize.brentq(f, lo, hi, xtol=1e-10, rtol=1e-12, maxiter=500)

    root_n = np.sqrt(n_tilde)
    return float(solve(1 - alpha / 2) / root_n), float(solve(alpha / 2) / root_n)


def _g_row(x: np.ndarray, y: np.ndarray | None, paired: bool, confidence: float, ci: str) -> dict:
    if paired:
        diff = x - y
        n = len(diff)
        if n < 3:
            raise AnalysisError(f"Hedges' g (paired) needs at least 3 pairs, got {n}")
        sd = diff.std(ddof=1)
        if not sd > 0:
            raise AnalysisError("Hedges' g (paired) is undefined: the differences have zero variance")
        d = diff.mean() / sd
        df, ntilde, N = n - 1, n, n
        row = {"n1": n, "n2": n, "mean1": x.mean(), "mean2": y.mean(), "sd": sd}
    else:
        n1, n2 = len(x), len(y)
        if n1 < 2 or n2 < 2:
            raise AnalysisError(f"at least 2 values per group are needed for Hedges' g, got {n1} and {n2}")
        df = n1 + n2 - 2
        sp = np.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / df)
        if not sp > 0:
            raise AnalysisError("Hedges' g is undefined: both groups have zero variance")
        d = (x.mean() - y.mean()) / sp
        ntilde, N = n1 * n2 / (n1 + n2), n1 + n2
        row = {"n1": n1, "n2": n2, "mean1": x.mean(), "mean2": y.mean(), "sd": sp}
    J = hedges_j(df)
    g = J * d
    se = np.sqrt(1 / ntilde + g**2 / (2 * N))
    if ci == "exact":
        d_lo, d_hi = smd_ci(d, ntilde, df, confidence=confidence)
        lo, hi = J * d_lo, J * d_hi
    elif ci == "normal":
        z = stats.norm.ppf(0.5 + confidence / 2)
        lo, hi = g - z * se, g + z * se
    else:
        raise AnalysisError(f"ci must be 'exact' or 'normal', got {ci!r}")
    row.update({"d": d, "J": J, "estimate": g, "se": se, "ci_low": lo, "ci_high": hi, "df": df,
                "ci_method": ci, "paired": paired})
    return row


def hedges_g(data: pd.DataFrame | None = None, dv: str | None = None, group: str | None = None, *,
             x: Sequence[float] | None = None, y: Sequence[float] | None = None, ref=None,
             paired: bool = False, participant: str = PARTICIPANT_COLUMN, confidence: float = 0.95,
             ci: str = "exact", subject=DEPRECATED) -> pd.DataFrame:
    """Hedges' g (bias-corrected standardised mean difference) with a confidence interval.

    Parameters
    ----------
    data : pandas.DataFrame, optional
        Long data with the outcome ``dv`` and the grouping column ``group``.
    dv, group : str, optional
        Outcome and group columns. With more than two groups, every group is compared with
        ``ref`` (one row per comparison).
    x, y : array_like, optional
        Two samples instead of ``data`` (``g`` is for x minus y).
    ref : optional
        Reference group (the "minus" side). Default: the second of two groups in order of
        appearance, or the first group when there are more than two.
    paired : bool, default False
        Paired samples (``x``/``y`` of equal length, or ``data`` with ``participant``
        identifying the pairs): :math:`g_z = J(n-1)\\,\\bar D/s_D`.
    participant : str, default "participant_id"
        Column identifying the participant (the pairs) when ``paired=True`` with ``data``.
    confidence : float, default 0.95
        Confidence level.
    ci : {"exact", "normal"}, default "exact"
        Noncentral-t interval (default) or Hedges & Olkin's normal approximation.
    subject : str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

    Returns
    -------
    pandas.DataFrame
        One row per comparison: ``group, ref, n1, n2, mean1, mean2, sd`` (pooled SD, or SD of
        the differences), ``d, J, estimate`` (g), ``se`` (normal-approximation SE), ``ci_low, ci_high, df,
        ci_method, paired``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"arm": ["loading"] * 4 + ["control"] * 4,
    ...                    "change": [6.0, 8.5, 4.1, 7.2, 0.5, -1.0, 2.2, 1.1]})
    >>> hedges_g(df, dv="change", group="arm", ref="control")[["group", "ref", "estimate"]].round(2)
         group      ref  estimate
    0  loading  control      3.07
    """
    if not 0 < confidence < 1:
        raise AnalysisError(f"confidence must be between 0 and 1, got {confidence}")
    participant = resolve_participant(participant, where="hedges_g", subject=subject)
    if data is None:
        if x is None or y is None:
            raise AnalysisError("give either data= with dv= and group=, or both x= and y=")
        xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if paired:
            if xa.shape != ya.shape:
                raise AnalysisError(f"paired samples must have equal length, got {len(xa)} and {len(ya)}")
            keep = np.isfinite(xa) & np.isfinite(ya)
            xa, ya = xa[keep], ya[keep]
        else:
            xa, ya = xa[np.isfinite(xa)], ya[np.isfinite(ya)]
        row = {"group": "x", "ref": "y", **_g_row(xa, ya, paired, confidence, ci)}
        return pd.DataFrame([row])

    for col in (dv, group) + ((participant,) if paired else ()):
        if col is None or col not in data.columns:
            raise AnalysisError(f"column {col!r} not found in data (columns: {list(data.columns)})")
    d = data.dropna(subset=[dv, group])
    levels = list(pd.unique(d[group]))
    if len(levels) < 2:
        raise AnalysisError(f"Hedges' g needs two groups in {group!r}, found {levels}")
    if ref is None:
        ref = levels[1] if len(levels) == 2 else levels[0]
    if ref not in levels:
        raise AnalysisError(f"ref={ref!r} is not a level of {group!r} ({levels})")
    rows = []
    for lvl in [v for v in levels if v != ref]:
        if paired:
            w = d[d[group].isin([lvl, ref])].pivot_table(index=participant, columns=group, values=dv,
                                                         aggfunc="mean").dropna()
            xa, ya = w[lvl].to_numpy(float), w[ref].to_numpy(float)
        else:
            xa = d.loc[d[group] == lvl, dv].to_numpy(float)
            ya = d.loc[d[group] == ref, dv].to_numpy(float)
        rows.append({"group": lvl, "ref": ref, **_g_row(xa, ya, paired, confidence, ci)})
    return pd.DataFrame(rows)
