"""Rates and proportions: Wilson intervals per group and a rate pooled over clustered rows
(participants contribute many sessions) with a cluster-robust logit interval.

Examples
--------
>>> import pandas as pd
>>> from hipstats.stats.rates import pooled_rate
>>> per = pd.DataFrame({"participant_id": ["a", "b", "c", "d"], "k": [3, 5, 4, 6], "n": [10, 10, 10, 10]})
>>> round(float(pooled_rate(per, "k", "n")["rate"].iloc[0]), 2)
0.45
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from hipstats.results import DEPRECATED, PARTICIPANT_COLUMN, resolve_confidence, resolve_participant

__all__ = ["pooled_rate", "wilson_ci"]


def wilson_ci(count, nobs, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion count/nobs (no continuity correction),
    vectorised (statsmodels' ``proportion_confint(method="wilson")``); NaN where nobs is 0.

    The one Wilson interval of the package (rates, responders, Newcombe's difference).

    >>> lo, hi = wilson_ci(8, 10)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.4902, 0.9433)
    """
    count, nobs = np.asarray(count, float), np.asarray(nobs, float)
    safe = np.where(nobs > 0, nobs, 1)
    lo, hi = proportion_confint(count, safe, alpha=1 - confidence, method="wilson")
    bad = ~(nobs > 0)
    return (np.where(bad, np.nan, np.clip(lo, 0, 1)), np.where(bad, np.nan, np.clip(hi, 0, 1)))


def with_rate(df: pd.DataFrame, count: str, nobs: str, alpha: float, name: str = "rate"):
    """Add ``name``, ``name_ci_low``, ``name_ci_high`` (Wilson) to a frame of counts."""
    lo, hi = wilson_ci(df[count], df[nobs], 1 - alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        df[name] = np.where(df[nobs] > 0, df[count] / df[nobs].where(df[nobs] > 0, 1), np.nan)
    df[f"{name}_ci_low"], df[f"{name}_ci_high"] = lo, hi
    return df


def cluster_logit_ci(k_tot, n_tot, ss, g, alpha: float):
    """Cluster-robust logit CI of a pooled proportion (see :func:`pooled_rate`), vectorised.

    ``k_tot``, ``n_tot`` the pooled counts, ``ss`` the sum over clusters of
    :math:`(k_i - \\hat p n_i)^2` and ``g`` the number of clusters with rows. Where the CI
    cannot be estimated from the clusters (fewer than 2, or :math:`\\hat p` 0 or 1) it falls
    back to Wilson with the participants as the sample size (one reading per participant,
    the most conservative choice), or to Wilson on the rows with a single participant; the
    result is never narrower than the Wilson CI on the rows.
    """
    k_tot, n_tot, ss, g = (np.asarray(v, float) for v in (k_tot, n_tot, ss, g))
    w_lo, w_hi = wilson_ci(k_tot, n_tot, 1 - alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k_tot / n_tot
        var_p = g / (g - 1) * ss / n_tot ** 2
        se = np.sqrt(var_p) / (p * (1 - p))
        q = stats.t.ppf(1 - alpha / 2, np.maximum(g - 1, 1))
        lp = np.log(p / (1 - p))
        lo, hi = 1 / (1 + np.exp(-(lp - q * se))), 1 / (1 + np.exp(-(lp + q * se)))
    edge = (p <= 0) | (p >= 1)
    g_lo, g_hi = wilson_ci(p * g, g, 1 - alpha)  # Wilson with one reading per participant
    lo, hi = np.where(edge, g_lo, lo), np.where(edge, g_hi, hi)
    single = g < 2
    lo, hi = np.where(single, w_lo, np.fmin(lo, w_lo)), np.where(single, w_hi, np.fmax(hi, w_hi))
    bad = n_tot <= 0
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def pooled_rate(per: pd.DataFrame, count: str, nobs: str, *, by: Sequence[str] = (),
                participant: str = PARTICIPANT_COLUMN, confidence: float = 0.95,
                alpha: float | None = None, name: str = "rate", cluster=DEPRECATED) -> pd.DataFrame:
    """Pooled proportion of rows from many participants, with a participant-cluster CI.

    Rows (exercise rows, sessions, transitions) of one participant are correlated: a
    participant who often shows a fault shows it in many rows. The Wilson interval on the
    pooled counts treats every row as independent and is too narrow (coverage far below
    nominal when rates differ between participants). Here each participant is a cluster;
    the pooled proportion :math:`\\hat p = \\sum_i k_i / \\sum_i n_i` is a ratio estimator
    with the cluster-robust (sandwich, linearisation) variance

    .. math::

        \\widehat{\\operatorname{var}}(\\hat p) = \\frac{G}{G - 1}
            \\frac{\\sum_i (k_i - \\hat p\\, n_i)^2}{(\\sum_i n_i)^2},

    :math:`G` the number of participants; the CI is built on the logit scale,
    :math:`\\operatorname{logit}\\hat p \\pm t_{G-1,1-\\alpha/2}\\,
    \\operatorname{se}/(\\hat p(1-\\hat p))`, and transformed back (so it stays in [0, 1]).
    It is never narrower than the Wilson CI on the rows (design effect floored at 1); when
    :math:`\\hat p` is 0 or 1 the Wilson CI with the :math:`G` participants as the sample
    size is used, and with a single participant the Wilson CI on the rows. The Wilson CI is
    kept as ``name_ci_low_wilson`` / ``name_ci_high_wilson`` (rows as independent: only
    right for a single participant's rows).

    Parameters
    ----------
    per : DataFrame
        One row per cluster (participant) and cell: ``count`` successes out of ``nobs``
        (several rows per cluster and cell are summed).
    count, nobs : str
        Column names.
    by : sequence of str
        Cells (e.g. ``["arm"]``); empty for one pooled rate.
    participant : str, default "participant_id"
        Column identifying the participant (the cluster).
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).
    name : str
        Name of the rate column.
    cluster : str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        by..., n_participants, count, nobs, name, name_ci_low, name_ci_high (cluster CI),
        name_ci_low_wilson, name_ci_high_wilson.

    References
    ----------
    Cochran WG (1977). Sampling Techniques, 3rd ed., section 6.11 (ratio estimator).
    Liang KY, Zeger SL (1986). Biometrika 73:13-22 (cluster-robust variance).
    Wilson EB (1927). JASA 22:209-212.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.stats.rates import pooled_rate
    >>> per = pd.DataFrame({"participant_id": ["a", "b", "c", "d"], "k": [9, 1, 8, 2],
    ...                     "n": [10, 10, 10, 10]})
    >>> r = pooled_rate(per, "k", "n")
    >>> float(r["rate"].iloc[0]), bool(r["rate_ci_low"].iloc[0] < r["rate_ci_low_wilson"].iloc[0])
    (0.5, True)
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="pooled_rate")
    participant = resolve_participant(participant, where="pooled_rate", cluster=cluster)
    by = list(by)
    cells = list(dict.fromkeys([*by, participant]))
    d = per[[*cells, count, nobs]].copy()
    d[count], d[nobs] = d[count].astype(float), d[nobs].astype(float)
    keys = by or ["_all"]
    if not by:
        d["_all"] = 0
    d = (d.groupby(list(dict.fromkeys([*keys, participant])), sort=True, observed=True)
         [[count, nobs]].sum().reset_index())
    g = d.groupby(keys, sort=True, observed=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = g[count].transform("sum") / g[nobs].transform("sum")
    d["_ss"] = (d[count] - p.fillna(0) * d[nobs]) ** 2
    d["_g"] = (d[nobs] > 0).astype(int)
    out = d.groupby(keys, sort=True, observed=True).agg(
        n_participants=("_g", "sum"), **{count: (count, "sum"), nobs: (nobs, "sum")},
        _ss=("_ss", "sum")).reset_index()
    lo, hi = cluster_logit_ci(out[count], out[nobs], out.pop("_ss"), out["n_participants"],
                               alpha)
    out = with_rate(out, count, nobs, alpha, name)
    out = out.rename(columns={f"{name}_ci_low": f"{name}_ci_low_wilson",
                              f"{name}_ci_high": f"{name}_ci_high_wilson"})
    out[f"{name}_ci_low"], out[f"{name}_ci_high"] = lo, hi
    for c in (count, nobs):
        out[c] = out[c].astype(int)
    if not by:
        out = out.drop(columns="_all")
    return out[[*by, "n_participants", count, nobs, name, f"{name}_ci_low", f"{name}_ci_high",
                f"{name}_ci_low_wilson", f"{name}_ci_high_wilson"]]
