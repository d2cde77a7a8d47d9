"""Model frame of :mod:`hipstats.models.mmrm`: formula and long data -> design and visit patterns.

:func:`build_frame` builds the model frame and design (rows left out counted in notes) and the
visit order; :func:`group_patterns` groups the participants by the visits they were seen at
(:class:`Pattern`); :func:`support_problem` and :func:`rank_problem` say why the data cannot
support a covariance structure or a design; :func:`empirical_cov` gives the optimiser's start.

Examples
--------
>>> import numpy as np
>>> from hipstats.models._mmrm_frame import Pattern
>>> Pattern([0, 1, 2], np.ones((3, 3, 2)), np.zeros((3, 3)), ["a", "b", "c"]).m
3
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import patsy

from hipstats.errors import AnalysisError
from hipstats.models._mmrm_covariance import COVARIANCES
from hipstats.results import exclusion_note

__all__ = ["Pattern", "build_frame", "empirical_cov", "group_patterns", "rank_problem", "support_problem"]


def _natural_key(v):
    if isinstance(v, (int, float, np.integer, np.floating)):
        return (0, float(v), "")
    parts = re.split(r"(\d+(?:\.\d+)?)", str(v))
    return (1, 0.0, tuple((0, float(s)) if re.fullmatch(r"\d+(?:\.\d+)?", s) else (1, s)
                          for s in parts if s != ""))


def _visit_levels(col: pd.Series, visits):
    present = pd.unique(col.dropna())
    if visits is not None:
        order = list(visits)
        extra = [v for v in present if v not in set(order)]
        if extra:
            raise AnalysisError(f"visit column {col.name!r} has values not in visits=: "
                                f"{extra[:5]}")
        return [v for v in order if v in set(present)]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [v for v in col.cat.categories if v in set(present)]
    return sorted(present, key=_natural_key)


def build_frame(formula, data, subject, visit, visits, eval_env):
    """Model frame, design, visit positions and notes on dropped rows.

    Parameters
    ----------
    formula : str
        patsy mean model.
    data : pandas.DataFrame
    subject, visit : str
        Participant and visit columns.
    visits : sequence or None
        Visit order (else the categories, else natural order of the labels).
    eval_env : patsy.EvalEnvironment

    Returns
    -------
    frame : pandas.DataFrame
        The rows used (complete, unused categories dropped).
    y, X : pandas.DataFrame
        Response and design.
    levels : list
        The visits in order (visits without rows left out).
    vpos : numpy.ndarray
        Position of each row's visit in ``levels``.
    notes : list of str
        Rows left out and why.

    Examples
    --------
    >>> import numpy as np, pandas as pd, patsy
    >>> rng = np.random.default_rng(0)
    >>> d = pd.DataFrame({"pid": np.repeat(np.arange(20), 3), "visit": ["w0", "w4", "w8"] * 20})
    >>> d["y"] = np.repeat(rng.normal(0, 2, 20), 3) + rng.normal(0, 1, 60)
    >>> frame, y, X, levels, vpos, notes = build_frame("y ~ C(visit)", d.drop(index=[2, 5]), "pid",
    ...                                                "visit", None, patsy.EvalEnvironment.capture())
    >>> levels, X.shape, notes
    (['w0', 'w4', 'w8'], (58, 3), [])
    """
    if not isinstance(data, pd.DataFrame):
        raise AnalysisError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    for col, what in ((subject, "participant"), (visit, "visit")):
        if col not in data.columns:
            raise AnalysisError(f"{what} column {col!r} not found in data (columns: "
                                f"{', '.join(map(str, data.columns))})")
    df = data if data.index.is_unique else data.reset_index(drop=True)
    try:
        desc = patsy.ModelDesc.from_formula(formula)
    except patsy.PatsyError as err:
        raise AnalysisError(f"cannot parse formula {formula!r}: {err}") from err
    if not desc.lhs_termlist:
        raise AnalysisError(f"formula {formula!r} has no response (write 'value ~ ...')")
    notes = []
    keep = df[subject].notna() & df[visit].notna()
    n_key = int((~keep).sum())
    if n_key:
        notes.append(exclusion_note(n_key, f"no {subject} or no {visit}"))
    df = df.loc[keep]
    try:
        y, X = patsy.dmatrices(desc, df, eval_env=eval_env, NA_action="drop",
                               return_type="dataframe")
    except patsy.PatsyError as err:
        raise AnalysisError(f"cannot build the model from formula {formula!r}: {err}") from err
    n_na = len(df) - len(X)
    if n_na:
        notes.append(exclusion_note(n_na, f"a missing value in a variable of {formula}"))
    frame = df.loc[X.index]
    unused = {c: frame[c].cat.remove_unused_categories() for c in frame.columns
              if isinstance(frame[c].dtype, pd.CategoricalDtype)
              and frame[c].nunique(dropna=True) < len(frame[c].cat.categories)}
    if unused:
        frame = frame.assign(**unused)
        y, X = patsy.dmatrices(desc, frame, eval_env=eval_env, NA_action="raise",
                               return_type="dataframe")
    if y.shape[1] != 1:
        raise AnalysisError(f"the response of {formula!r} must be one numeric column, got "
                            f"{list(y.columns)}")
    if len(frame) == 0:
        raise AnalysisError(f"no complete rows left for {formula!r}")
    dup = frame.duplicated([subject, visit], keep=False)
    if dup.any():
        rows = frame.loc[dup, [subject, visit]].head(4)
        raise AnalysisError(f"{int(dup.sum())} rows share a {subject!r} and {visit!r} (an MMRM needs "
                            f"one row per subject and visit), e.g. rows "
                            f"{', '.join(f'{i} ({s}, {v})' for i, (s, v) in rows.iterrows())}")
    levels = _visit_levels(frame[visit], visits)
    pos = {v: i for i, v in enumerate(levels)}
    vpos = frame[visit].map(pos).to_numpy()
    if np.isnan(vpos.astype(float)).any():
        raise AnalysisError(f"visit values of {visit!r} could not be matched to visits=")
    return frame, y, X, levels, vpos.astype(int), notes


class Pattern:
    """Subjects observed at the same visits: their rows and sufficient statistics.

    Parameters
    ----------
    idx : array_like
        Visit positions ``(m_S,)``.
    X : numpy.ndarray
        ``(n_S, m_S, p)`` fixed-effects rows of each subject, by visit.
    Y : numpy.ndarray
        ``(n_S, m_S)`` responses.
    subjects : array_like
        The subjects' labels.

    Examples
    --------
    >>> import numpy as np
    >>> g = Pattern([0, 2], np.ones((4, 2, 1)), np.zeros((4, 2)), list("abcd"))
    >>> g.n, g.m
    (4, 2)
    """

    def __init__(self, idx, X, Y, subjects):
        self.idx = np.asarray(idx)                   # visit positions (m_S,)
        self.X = X                                   # (n_S, m_S, p)
        self.Y = Y                                   # (n_S, m_S)
        self.subjects = subjects
        n, m, _ = X.shape
        self.n, self.m = n, m


def group_patterns(frame, X, y, subject, vpos, m):
    """Group subjects by visit pattern (bit mask of visits), rows sorted by visit.

    Parameters
    ----------
    frame : pandas.DataFrame
        Model frame (:func:`build_frame`).
    X, y : numpy.ndarray
        Design and response, rows as ``frame``.
    subject : str
    vpos : numpy.ndarray
        Visit position of each row.
    m : int
        Number of visits.

    Returns
    -------
    patterns : list of Pattern
    nsub : int
        Subjects.
    mask, counts : numpy.ndarray
        Each subject's visit bit mask and number of rows.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> frame = pd.DataFrame({"pid": ["a", "a", "b", "c", "c"]})
    >>> vpos = np.array([0, 1, 0, 1, 0])
    >>> patterns, nsub, mask, counts = group_patterns(frame, np.ones((5, 1)), np.arange(5.0), "pid",
    ...                                                vpos, 2)
    >>> nsub, mask.tolist(), [(g.idx.tolist(), g.n) for g in patterns]
    (3, [3, 1, 3], [([0], 1), ([0, 1], 2)])
    >>> patterns[1].Y.tolist()  # rows sorted by visit
    [[0.0, 1.0], [4.0, 3.0]]
    """
    codes, subj = pd.factorize(frame[subject], sort=True)
    order = np.lexsort((vpos, codes))
    codes_s, vpos_s = codes[order], vpos[order]
    Xs, ys = X[order], y[order]
    nsub = len(subj)
    mask = np.zeros(nsub, dtype=np.int64)
    np.bitwise_or.at(mask, codes_s, (1 << vpos_s.astype(np.int64)))
    counts = np.bincount(codes_s, minlength=nsub)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    out = []
    for pat in np.unique(mask):
        sid = np.flatnonzero(mask == pat)
        mS = int(counts[sid[0]])
        rows = (starts[sid][:, None] + np.arange(mS)[None, :]).ravel()
        idx = vpos_s[rows[:mS]]
        out.append(Pattern(idx, Xs[rows].reshape(len(sid), mS, -1), ys[rows].reshape(len(sid), mS),
                            subj[sid]))
    return out, nsub, mask, counts


def support_problem(structure, patterns, levels, N, p):
    """Why the data cannot support ``structure`` (None when they can).

    Parameters
    ----------
    structure : hipstats.models._mmrm_covariance.Structure
    patterns : list of Pattern
    levels : list
        Visit labels (named in the message).
    N, p : int
        Observations and fixed effects.

    Returns
    -------
    str or None
        The reason, naming the visits or lags the structure lacks.

    Examples
    --------
    >>> import numpy as np
    >>> from hipstats.models._mmrm_covariance import Structure
    >>> one = [Pattern([0], np.ones((5, 1, 1)), np.zeros((5, 1)), list("abcde")),
    ...        Pattern([1], np.ones((5, 1, 1)), np.zeros((5, 1)), list("fghij"))]
    >>> why = support_problem(Structure("us", 2), one, ["w0", "w4"], 10, 1)
    >>> why.split(";")[1]
    " never together: [('w4', 'w0')]"
    """
    m, k = structure.m, structure.k
    pair = np.zeros((m, m), dtype=int)
    for g in patterns:
        pair[np.ix_(g.idx, g.idx)] += g.n
    name = COVARIANCES[structure.name]
    if k > N - p:
        return (f"{name} covariance has {k} parameters but the data carry only {N - p} residual "
                f"degrees of freedom ({N} observations, {p} fixed effects)")
    low = [levels[a] for a in range(m) if pair[a, a] < 2]
    if structure.hetero and low:
        return (f"{name} covariance needs a variance per visit, but visit(s) {low} have fewer than "
                "2 observations")
    if structure.name == "us":
        missing = [(levels[a], levels[b]) for a in range(m) for b in range(a)
                   if pair[a, b] == 0]
        if missing:
            return (f"{name} covariance needs every pair of visits observed together in at least "
                    f"one subject; never together: {missing[:6]}"
                    + (f" and {len(missing) - 6} more" if len(missing) > 6 else ""))
    if structure.name in ("toep", "toeph"):
        lags = [l for l in range(1, m) if pair[structure.lag == l].sum() == 0]
        if lags:
            return f"{name} covariance: no subject has two visits {lags} positions apart"
    if structure.ncor and m > 1 and pair[~np.eye(m, dtype=bool)].sum() == 0:
        return f"{name} covariance: no subject has more than one visit, correlations not estimable"
    return None


def rank_problem(X, names):
    """Why the design ``X`` is rank deficient, naming the columns not estimable (None if full rank).

    Parameters
    ----------
    X : numpy.ndarray
    names : list of str
        Column names of ``X``.

    Returns
    -------
    str or None
        The message; None when every column is estimable.

    Examples
    --------
    >>> import numpy as np
    >>> rank_problem(np.array([[1., 0, 0], [1, 1, 1], [1, 2, 2]]), ["Intercept", "a", "b"])
    'fixed-effects design is rank deficient (rank 2 < 3 columns); not estimable: b'
    """
    rank = np.linalg.matrix_rank(X)
    if rank == X.shape[1]:
        return None
    bad, cols = [], []
    for j, nm in enumerate(names):
        if np.linalg.matrix_rank(X[:, cols + [j]]) == len(cols) + 1:
            cols.append(j)
        else:
            bad.append(nm)
    return (f"fixed-effects design is rank deficient (rank {rank} < {X.shape[1]} columns); not "
            f"estimable: {', '.join(bad)}")


def empirical_cov(patterns, X, y, m):
    """Pairwise-complete covariance of OLS residuals across visits, made positive definite.

    The start of the optimiser (through :meth:`~hipstats.models._mmrm_covariance.Structure.start`).

    Parameters
    ----------
    patterns : list of Pattern
    X, y : numpy.ndarray
    m : int

    Returns
    -------
    numpy.ndarray
        ``(m, m)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> Y = rng.normal(0, 1, (40, 1)) + rng.normal(0, 1, (40, 3))
    >>> g = Pattern([0, 1, 2], np.ones((40, 3, 1)), Y, np.arange(40))
    >>> S = empirical_cov([g], np.ones((120, 1)), Y.ravel(), 3)
    >>> S.shape, bool(np.all(np.linalg.eigvalsh(S) > 0))
    ((3, 3), True)
    """
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    S = np.zeros((m, m))
    cnt = np.zeros((m, m))
    for g in patterns:
        R = g.Y - g.X @ beta
        S[np.ix_(g.idx, g.idx)] += R.T @ R
        cnt[np.ix_(g.idx, g.idx)] += g.n
    var = np.where(np.diag(cnt) > 0, np.diag(S) / np.maximum(np.diag(cnt), 1), np.nan)
    v = np.nan_to_num(var, nan=np.nanmean(var))
    v = np.where(v > 0, v, max(np.nanmean(var), 1e-6))
    with np.errstate(invalid="ignore", divide="ignore"):
        C = np.where(cnt > 0, S / cnt, 0.0)
        R = C / np.sqrt(np.outer(np.diag(C), np.diag(C)))
    R = np.nan_to_num(R)
    np.fill_diagonal(R, 1.0)
    e, U = np.linalg.eigh(0.5 * (R + R.T))
    R = (U * np.maximum(e, 0.05)) @ U.T
    d = np.sqrt(np.diag(R))
    R = R / np.outer(d, d)
    sd = np.sqrt(v)
    return R * np.outer(sd, sd)
