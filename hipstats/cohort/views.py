"""Views of a cohort's tables that several analyses share: the cohort's tables and arms,
the primary-rater and scheduled-visit selection, trial means per participant x visit x side
(:func:`visit_values`), change from baseline (:func:`participant_change`), standing-tilt
classes (:func:`tilt_class`) and the training log prepared once (:func:`prepare_sessions`).

Each function takes a :class:`~hipstats.cohort.Cohort` or the table itself (a DataFrame with
the data contract's columns) and returns a tidy DataFrame.

Examples
--------
>>> from hipstats.cohort.views import tilt_class
>>> list(tilt_class([2.0, 8.0, 15.0]))
['posterior', 'neutral', 'anterior']
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hipstats.data.schema import DEFAULT_TILT_CUTS, TILT_CLASSES
from hipstats.errors import AnalysisError, check_columns

__all__ = ["tilt_class", "visit_values", "participant_change"]


VISIT_KEY = ["participant_id", "visit", "week"]


def cohort_table(data, name: str) -> pd.DataFrame:
    """Return table ``name`` ('measurements', 'sessions', 'participants') of a Cohort,
    or ``data`` itself when it already is a DataFrame."""
    if isinstance(data, pd.DataFrame):
        return data
    table = getattr(data, name, None)
    if isinstance(table, pd.DataFrame):
        return table
    raise AnalysisError(
        f"expected a Cohort or a DataFrame, got {type(data).__name__} without a '{name}' table")


def primary_rater(df: pd.DataFrame, rater: str | None) -> pd.DataFrame:
    """Keep one rater: the one given, else the rater with the most rows (the primary)."""
    if "rater" not in df.columns or df["rater"].isna().all():
        return df
    if rater is None:
        rater = df["rater"].value_counts().idxmax()
    out = df[df["rater"] == rater]
    if out.empty:
        raise AnalysisError(f"no measurements by rater {rater!r}; raters are "
                            f"{sorted(df['rater'].dropna().unique().tolist())}")
    return out


def scheduled_visits(data) -> list[str]:
    """Scheduled visits: the cohort's own list, else (as :meth:`Cohort.schedule`) the visits
    attended by at least half as many participants as the best-attended visit."""
    sched = getattr(data, "scheduled_visits", None)
    if sched is not None and not isinstance(data, pd.DataFrame):
        return list(sched)
    m = cohort_table(data, "measurements")
    n = m.groupby("visit", observed=True)["participant_id"].nunique()
    return n.index[n >= 0.5 * n.max()].tolist()


def select_visits(df: pd.DataFrame, visits, data) -> pd.DataFrame:
    """visits: None/"all" = all visits; "scheduled" = scheduled visits only (a retest visit of
    a reliability subset is left out); or a list of visit labels."""
    if visits is None or (isinstance(visits, str) and visits == "all"):
        return df
    if isinstance(visits, str) and visits == "scheduled":
        return df[df["visit"].isin(scheduled_visits(data))]
    labels = [visits] if isinstance(visits, str) else list(visits)
    out = df[df["visit"].isin(labels)]
    if out.empty:
        raise AnalysisError(f"none of the visits {labels} is in the data; visits are "
                            f"{sorted(df['visit'].astype(str).unique().tolist())}")
    return out


def visit_values(data, measure: str, *, pelvis: str | None = "free", rater: str | None = None,
                 position: str | None = None, visits=None, side: str = "mean") -> pd.DataFrame:
    """Mean of trials per participant and visit for one measure (primary rater).

    Returns participant_id, visit, week, side, value, n_trials. With ``side="mean"`` the two
    sides of a visit are averaged (side "mean"); "left"/"right" keep one side; "both" keeps both.
    Shared by the H1, H4 and H5 modules of :mod:`hipstats.questions`.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.cohort.views import visit_values
    >>> m = pd.DataFrame({"participant_id": "p1", "visit": "baseline", "week": 0.0,
    ...     "measure": "hip_ir_deg", "side": ["left", "left", "right", "right"],
    ...     "pelvis": "free", "value": [30.0, 32.0, 40.0, 42.0]})
    >>> visit_values(m, "hip_ir_deg")[["side", "value", "n_trials"]].values.tolist()
    [['mean', 36.0, 4]]
    """
    m = cohort_table(data, "measurements")
    check_columns(m, ["participant_id", "visit", "measure", "value"], "a measurements table")
    df = m[m["measure"] == measure]
    if df.empty:
        raise AnalysisError(f"no {measure!r} measurements; measures present: "
                            f"{sorted(m['measure'].astype(str).unique().tolist())}")
    if pelvis is not None and "pelvis" in df.columns and df["pelvis"].notna().any():
        df = df[df["pelvis"] == pelvis]
        if df.empty:
            raise AnalysisError(f"no {measure!r} measurements with pelvis == {pelvis!r}")
    if position is not None and "position" in df.columns:
        df = df[df["position"] == position]
    elif "position" in df.columns and df["position"].nunique() > 1:
        raise AnalysisError(f"{measure!r} was measured in several positions "
                            f"{sorted(df['position'].dropna().unique().tolist())}; pass position=")
    df = select_visits(primary_rater(df, rater), visits, data)
    df = df.copy()
    if "week" not in df.columns:
        df["week"] = np.nan
    if "side" not in df.columns:
        df["side"] = None
    df["side"] = df["side"].astype(object).where(df["side"].notna(), "none")
    if side in ("left", "right"):
        df = df[df["side"] == side]
        if df.empty:
            raise AnalysisError(f"no {measure!r} measurements on the {side} side")
    elif side not in ("mean", "both"):
        raise AnalysisError(f"side must be 'mean', 'both', 'left' or 'right', got {side!r}")
    keys = ["participant_id", "visit", "side"]
    out = (df.groupby(keys, observed=True, sort=True)
             .agg(week=("week", "first"), value=("value", "mean"), n_trials=("value", "size"))
             .reset_index())
    if side == "mean":
        out = (out.groupby(["participant_id", "visit"], observed=True, sort=True)
                  .agg(week=("week", "first"), value=("value", "mean"),
                       n_trials=("n_trials", "sum"))
                  .reset_index())
        out["side"] = "mean"
    return out[["participant_id", "visit", "week", "side", "value", "n_trials"]]


def participant_change(data, measure: str, *, final="final", pelvis: str | None = "free",
                       rater: str | None = None, position: str | None = None) -> pd.DataFrame:
    """Baseline, final value and change (final - baseline) per participant, sides averaged.

    ``final="final"`` uses the last scheduled visit of the cohort (the visit label with the
    latest median week; participants without it are left out); ``final="last"`` uses each
    participant's last visit; a visit label uses that visit.
    Baseline is each participant's earliest visit. Returns participant_id, baseline, final,
    final_week, change.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.cohort.views import participant_change
    >>> m = pd.DataFrame({"participant_id": "p1", "visit": ["baseline", "week_12"],
    ...     "week": [0.0, 12.0], "measure": "hip_ir_deg", "side": "left", "pelvis": "free",
    ...     "value": [30.0, 36.0]})
    >>> participant_change(m, "hip_ir_deg")["change"].tolist()
    [6.0]
    """
    v = visit_values(data, measure, pelvis=pelvis, rater=rater, position=position,
                     visits="scheduled", side="mean")
    v = v.sort_values(["participant_id", "week", "visit"])
    base = v.groupby("participant_id", sort=True).first()
    if final == "last":
        end = v.groupby("participant_id", sort=True).last()
    elif final == "final":  # the scheduled visit with the latest median week
        last_visit = v.groupby("visit")["week"].median().idxmax()
        end = v[v["visit"] == last_visit].groupby("participant_id").last()
    else:
        end = v[v["visit"] == final].groupby("participant_id").last()
    end = end[end["week"] > base.loc[end.index, "week"]]
    if end.empty:
        raise AnalysisError(f"no participant has a {measure!r} value after baseline at the "
                            f"{final!r} visit")
    out = pd.DataFrame({"baseline": base.loc[end.index, "value"], "final": end["value"],
                        "final_week": end["week"]})
    out["change"] = out["final"] - out["baseline"]
    return out.reset_index()


def arm_table(data, participants: pd.DataFrame | None) -> pd.DataFrame | None:
    """participant_id -> arm table from ``participants=`` or the cohort, if available."""
    if participants is None and not isinstance(data, pd.DataFrame):
        participants = getattr(data, "participants", None)
    if participants is None:
        return None
    check_columns(participants, ["participant_id", "arm"], "the participants table")
    return participants[["participant_id", "arm"]].drop_duplicates("participant_id")


# ----------------------------------------------------------------------------------------
# Tilt classes
# ----------------------------------------------------------------------------------------
def tilt_class(values, cuts: Sequence[float] = DEFAULT_TILT_CUTS) -> pd.Categorical:
    """Class standing pelvic tilt as posterior, neutral or anterior.

    With cut points :math:`(c_1, c_2)`: posterior if tilt :math:`< c_1`, neutral if
    :math:`c_1 \\le` tilt :math:`< c_2`, anterior if tilt :math:`\\ge c_2` (degrees, positive =
    anterior). Missing values stay missing.

    Parameters
    ----------
    values : array-like of float
        Standing pelvic tilt, degrees.
    cuts : pair of float
        Increasing cut points, default :data:`hipstats.data.schema.DEFAULT_TILT_CUTS` = (4, 14):
        the usual standing ASIS-PSIS angle of about 4-14 degrees anterior (Herrington 2011).

    Returns
    -------
    pandas.Categorical
        Ordered categories ``("posterior", "neutral", "anterior")``.

    References
    ----------
    Herrington L (2011). Assessment of the degree of pelvic tilt within a normal asymptomatic
    population. Manual Therapy 16:646-648.

    Examples
    --------
    >>> from hipstats.cohort.views import tilt_class
    >>> tilt_class([0, 10, 20], cuts=(5, 15)).tolist()
    ['posterior', 'neutral', 'anterior']
    """
    cuts = tuple(float(c) for c in cuts)
    if len(cuts) != 2 or not np.all(np.isfinite(cuts)) or not cuts[0] < cuts[1]:
        raise AnalysisError(f"cuts must be two finite increasing numbers, got {cuts}")
    x = pd.to_numeric(pd.Series(np.asarray(values, dtype=float).ravel()), errors="coerce")
    codes = np.digitize(x.to_numpy(), cuts, right=False)
    codes = np.where(np.isnan(x.to_numpy()), -1, codes)
    return pd.Categorical.from_codes(codes, categories=list(TILT_CLASSES), ordered=True)


def faults_list(v) -> list[str]:
    """The faults of one ``faults`` cell (``"a; b"``) as a list; empty for a missing cell.

    >>> faults_list("lumbar_rounding; knee_valgus"), faults_list(None)
    (['lumbar_rounding', 'knee_valgus'], [])
    """
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    return [f.strip() for f in str(v).split(";") if f.strip() and f.strip().lower() != "nan"]


def parse_faults(faults: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Fault lists and counts of a ``faults`` column, parsing each distinct string once.

    The lists of rows with the same string are the same (read-only) list object.
    """
    codes, uniq = pd.factorize(faults, use_na_sentinel=True)
    lists = np.empty(len(uniq) + 1, dtype=object)
    for i, v in enumerate(uniq):
        lists[i] = faults_list(v)
    lists[-1] = []  # missing values (code -1)
    counts = np.array([len(v) for v in lists], dtype=int)
    return lists[codes], counts[codes]


#: Prepared sessions tables handed to the sub-analyses by :func:`prepared_source`, by id
#: (weak: an entry goes with its frame). :func:`prepare_sessions` returns a copy of such a
#: frame instead of preparing it again.
_PREPARED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def prepared_source(data, participants: pd.DataFrame | None = None):
    """``data`` with its sessions table prepared once (:func:`prepare_sessions`).

    For a Cohort, a shallow copy whose ``sessions`` is the prepared table; for a log, the
    prepared table itself. Every analysis of this module called on the result reuses the
    prepared table (a copy of it) instead of preparing the log again.
    """
    s = prepare_sessions(data, participants)
    _PREPARED[id(s)] = s
    if isinstance(data, pd.DataFrame):
        return s
    src = copy.copy(data)
    src.sessions = s
    return src


def prepare_sessions(data, participants: pd.DataFrame | None = None) -> pd.DataFrame:
    """The training log with the derived columns every H4/H5 analysis uses.

    Adds: ``arm`` (when participants are known), ``completed`` (bool, True when missing),
    ``load_kg`` (0 when missing), ``week`` (from ``date`` when missing: whole weeks since the
    participant's first session), ``protocol_week`` (whole weeks: the floor of ``week``),
    ``session_order`` (1, 2, ... per participant), ``fault_list``
    (list of fault names), ``any_fault`` (bool), ``n_faults``.

    Raises :class:`~hipstats.errors.AnalysisError` when there are no sessions at all.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.cohort.views import prepare_sessions
    >>> log = pd.DataFrame({"participant_id": "p1", "week": [0.25, 1.75], "exercise": "other",
    ...                     "sets": 1, "reps": 5, "faults": ["lumbar_rounding", None]})
    >>> prepare_sessions(log)[["protocol_week", "session_order", "any_fault"]].values.tolist()
    [[0.0, 1, True], [1.0, 2, False]]
    """
    s = cohort_table(data, "sessions")
    if _PREPARED.get(id(s)) is s and (participants is None or "arm" in s.columns):
        return s.copy()
    if s is None or len(s) == 0:
        raise AnalysisError("the cohort has no training sessions (the sessions table is empty); "
                            "loading and fault analyses need a training log")
    check_columns(s, ["participant_id", "exercise", "sets", "reps"], "the sessions table")
    s = s.copy()
    if "load_kg" not in s.columns:
        s["load_kg"] = 0.0
    s["load_kg"] = pd.to_numeric(s["load_kg"], errors="coerce").fillna(0.0)
    if "completed" not in s.columns:
        s["completed"] = True
    s["completed"] = s["completed"].astype(object).where(s["completed"].notna(), True).astype(bool)
    if "week" not in s.columns or s["week"].isna().all():
        if "date" not in s.columns:
            raise AnalysisError("the sessions table needs a 'week' or a 'date' column")
        d = pd.to_datetime(s["date"])
        first = d.groupby(s["participant_id"]).transform("min")
        s["week"] = ((d - first).dt.days // 7).astype(float)
    if "session" in s.columns and s["session"].notna().all():
        order = s["session"]
    elif "date" in s.columns and s["date"].notna().all():
        order = pd.to_datetime(s["date"])
    else:
        order = s["week"]
    s["protocol_week"] = np.floor(s["week"])
    s["session_order"] = order.groupby(s["participant_id"]).rank(method="dense").astype(int)
    if "session" not in s.columns or s["session"].isna().any():
        s["session"] = s["session_order"]
    if "faults" not in s.columns:
        s["faults"] = ""
    s["fault_list"], s["n_faults"] = parse_faults(s["faults"])
    s["any_fault"] = s["n_faults"] > 0
    if "pain_nrs" not in s.columns:
        s["pain_nrs"] = np.nan
    arms = arm_table(data, participants)
    if arms is not None and "arm" not in s.columns:
        s = s.merge(arms, on="participant_id", how="left")
    return s.sort_values(["participant_id", "session_order", "exercise"]).reset_index(drop=True)


def need_arm(s: pd.DataFrame, what: str) -> None:
    """Raise :class:`AnalysisError` when the prepared log ``s`` has no ``arm`` column."""
    if "arm" not in s.columns:
        raise AnalysisError(f"{what} by arm needs the participants table (participant_id, arm): "
                            "pass a Cohort or participants=")
