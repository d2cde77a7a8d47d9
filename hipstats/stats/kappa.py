"""Chance-corrected agreement of categorical ratings: Cohen's kappa (unweighted, linear,
quadratic; Fleiss, Cohen and Everitt 1969 standard errors) and Fleiss' kappa for several raters.

References
----------
Fleiss JL, Cohen J, Everitt BS (1969). Large sample standard errors of kappa and weighted
kappa. Psychological Bulletin 72:323-327.
Fleiss JL (1971). Measuring nominal scale agreement among many raters. Psychological
Bulletin 76:378-382.

Examples
--------
>>> import pandas as pd
>>> from hipstats.stats.kappa import cohen_kappa
>>> df = pd.DataFrame({"a": [0, 1, 1, 2, 2, 0, 1, 2], "b": [0, 1, 2, 2, 2, 0, 1, 1]})
>>> round(float(cohen_kappa(df, "a", "b")["kappa"].iloc[0]), 3)
0.619
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.errors import AnalysisError
from hipstats.results import DEPRECATED, PARTICIPANT_COLUMN, resolve_participant
from hipstats.stats.inference import check_confidence, require_columns, z_critical

__all__ = ["cohen_kappa", "fleiss_kappa"]


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
        One row: ``kappa``, ``kappa_se``, ``kappa_ci_low``, ``kappa_ci_high``, ``statistic``
        (z) and ``p_value`` (test of kappa = 0 with the null standard error), ``po``, ``pe``,
        ``n_pairs`` (rated items), ``n_categories``, ``weights``.

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
    >>> from hipstats.stats.kappa import cohen_kappa
    >>> df = pd.DataFrame({"a": [0, 1, 2, 2, 1, 0, 2, 1], "b": [0, 1, 2, 1, 1, 0, 2, 2]})
    >>> round(float(cohen_kappa(df, "a", "b")["kappa"].iloc[0]), 3)
    0.619
    """
    confidence = check_confidence(confidence)
    require_columns(data, [rater1, rater2], "cohen_kappa")
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
    z = z_critical(confidence)
    zstat = kappa / se0 if se0 > 0 else np.inf
    return pd.DataFrame([dict(kappa=kappa, kappa_se=se, kappa_ci_low=kappa - z * se,
                              kappa_ci_high=kappa + z * se, statistic=zstat,
                              p_value=float(2 * stats.norm.sf(abs(zstat))), po=po, pe=pe,
                              n_pairs=n, n_categories=K, weights=weights or "none")])


def fleiss_kappa(data: pd.DataFrame, participant: str = PARTICIPANT_COLUMN, rater: str = "rater",
                 rating: str = "value", *, categories: Sequence | None = None,
                 subject=DEPRECATED) -> pd.DataFrame:
    r"""Fleiss' kappa: chance-corrected agreement of several raters on nominal categories.

    Parameters
    ----------
    data : DataFrame
        Long format, one row per (participant, rater) rating.
    participant, rater, rating : str
        Columns (default: the measurement table's ``participant_id``, ``rater``, ``value``).
        ``participant`` identifies the rated target (a list of columns is not taken; combine
        participant and side into one column where each side is a target). Every target must
        be rated by the same number ``m >= 2`` of raters (they need not be the same raters); a
        rater may rate a target only once.
    categories : sequence, optional
        Category list (default: observed categories).
    subject : str, optional
        Deprecated alias of ``participant`` (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        One row: ``kappa``, ``kappa_se`` (under the null), ``statistic`` (z), ``p_value``,
        ``p_agree`` (mean observed agreement), ``p_chance``, ``n_targets`` (rated participants),
        ``n_raters``, ``n_categories``. Per-category
        kappas are in ``.attrs["category_kappa"]``.

    Notes
    -----
    With ``n_ij`` the number of raters putting participant ``i`` in category ``j``,
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
    >>> from hipstats.stats.kappa import fleiss_kappa
    >>> df = pd.DataFrame({"s": [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4],
    ...                    "r": ["A", "B", "C"] * 4,
    ...                    "c": ["ant", "ant", "neu", "neu", "neu", "neu",
    ...                          "pos", "pos", "neu", "ant", "ant", "ant"]})
    >>> round(float(fleiss_kappa(df, "s", "r", "c")["kappa"].iloc[0]), 3)
    0.467
    """
    participant = resolve_participant(participant, where="fleiss_kappa", subject=subject)
    require_columns(data, [participant, rater, rating], "fleiss_kappa")
    df = data[[participant, rater, rating]].dropna()
    dup = df.duplicated([participant, rater])
    if dup.any():
        ex = df.loc[dup, [participant, rater]].head(3).to_records(index=False).tolist()
        raise AnalysisError(f"fleiss_kappa: {int(dup.sum())} repeated (participant, rater) "
                            f"rating(s), e.g. {ex}; give one rating per rater and participant")
    cats = _categories(df[rating].to_numpy(), categories, "fleiss_kappa")
    counts = pd.crosstab(df[participant], df[rating]).reindex(columns=cats, fill_value=0)
    m_i = counts.sum(axis=1)
    if m_i.nunique() != 1:
        mode = int(m_i.mode().iloc[0])
        odd = m_i.index[m_i != mode].tolist()
        raise AnalysisError(f"fleiss_kappa: every participant needs the same number of raters; most "
                            f"have {mode} but participant(s) {odd[:5]} have "
                            f"{sorted(set(m_i[odd].tolist()))}")
    nmat = counts.to_numpy(float)
    N, m = nmat.shape[0], int(m_i.iloc[0])
    if m < 2:
        raise AnalysisError(f"fleiss_kappa: need at least two raters per participant, got {m}")
    if N < 2:
        raise AnalysisError(f"fleiss_kappa: need at least two participants, got {N}")
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
    out = pd.DataFrame([dict(kappa=kappa, kappa_se=se, statistic=zstat,
                             p_value=float(2 * stats.norm.sf(abs(zstat))), p_agree=p_agree,
                             p_chance=p_chance, n_targets=N, n_raters=m,
                             n_categories=len(cats))])
    out.attrs["category_kappa"] = dict(zip(cats, kj.tolist()))
    return out
