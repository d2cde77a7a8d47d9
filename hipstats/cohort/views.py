"""Cohort views: the derived tables every analysis and notebook uses, with one set of rules.

Every function here takes a table (a :class:`hipstats.Cohort` or its long ``measurements``
/ ``sessions`` DataFrame) and returns a table. The rules below are the only place where
the package decides which readings an analysis sees; every row a view leaves out is
counted, with its reason, in the returned frame's ``attrs["notes"]`` (plain-language
sentences that analyses copy into their result's ``notes``).

The rules
---------
**Names found in the data** (each can be declared in ``hipstats.yaml`` or as a report
parameter of the same name, which always wins; a declared name the data do not contain is
an error, never a silent empty view):

``scheduled_visits``
    A visit is scheduled when at least half as many participants attend it as attend the
    best-attended visit; scheduled visits are ordered by their median week. Other visits (a
    reliability retest of a subset) stay in the data and are left out of outcome views,
    with a note.
``baseline`` visit
    The first scheduled visit.
``primary_rater``
    Per measure, the rater who measured the most participant-visit-sides (a tie is
    ambiguous: declare ``primary_rater``).
``retest_visit``
    The one unscheduled visit whose median week lies after baseline and before the first
    follow-up visit and whose participants were all measured at baseline (a repeat of
    baseline before anything changed); in data with exactly two visits (a test-retest study)
    the second. None when there is no such visit; two or more such visits are ambiguous
    (declare ``retest_visit``). Visits are ordered by median week, then by first appearance.

**Raters** (one rule): a view restricts to one rater only where two raters measured the
same participant, visit and side; there the primary rater's trials are kept (or, when
neither is the primary, the rater ranked first by the number of cells measured). Every
other reading is kept whoever measured it, so a visit measured only by the second rater
stays in every analysis. Readings without a rater are kept.

**No side** (one rule): a reading of a whole-body measure (pelvic tilt) has ``side`` None
(missing) in every view; ``""``, ``"none"`` and NaN are read as None. ``side="mean"``
averages the two sides of a visit into one row labelled ``"mean"``.

**Pelvic condition**: a reading with no pelvic condition recorded counts as own posture
(``"free"``): it is kept for ``pelvis="free"`` and never stands in for a neutral-pelvis
(or other set-up) reading.

Examples
--------
>>> import pandas as pd
>>> from hipstats.cohort.views import trial_means
>>> m = pd.DataFrame({"participant_id": ["p1"] * 4 + ["p2", "p3", "p4"], "visit": "baseline",
...     "week": 0.0, "measure": "hip_ir_deg", "side": "left", "trial": [1, 2, 1, 2, 1, 1, 1],
...     "rater": ["JS", "JS", "AB", "AB", "JS", "JS", "AB"],
...     "value": [30.0, 32.0, 35.0, 35.0, 40.0, 38.0, 41.0]})
>>> v = trial_means(m, "hip_ir_deg")
>>> v[["participant_id", "value", "n_trials", "rater"]].values.tolist()
[['p1', 31.0, 2, 'JS'], ['p2', 40.0, 1, 'JS'], ['p3', 38.0, 1, 'JS'], ['p4', 41.0, 1, 'AB']]
>>> v.attrs["notes"]
['2 rows left out: rater AB measured the same participant, visit and side as JS (the primary rater)']
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hipstats.data.schema import DEFAULT_TILT_CUTS, TILT_CLASSES
from hipstats.errors import AnalysisError, check_columns
from hipstats.results import exclusion_note

__all__ = [
    "VIEW_SETTINGS",
    "measurements_table",
    "declared",
    "visit_schedule",
    "scheduled_visits",
    "baseline_visit",
    "primary_rater",
    "retest_visit",
    "readings",
    "trial_means",
    "change_from_baseline",
    "participant_change",
    "visit_values",
    "visit_change",
    "cohort_table",
    "arm_table",
    "tilt_class",
    "prepare_sessions",
    "prepared_source",
    "faults_list",
    "parse_faults",
    "need_arm",
    "rater_pairs",
    "retest_pairs",
    "view_notes",
]

#: The names a cohort can declare in ``hipstats.yaml`` (and reports as parameters).
VIEW_SETTINGS = ("primary_rater", "retest_visit", "scheduled_visits")

_NO_SIDE = {"", "none", "nan", "na", "n/a"}

#: The key of one visit of one participant.
VISIT_KEY = ["participant_id", "visit", "week"]


# ----------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------
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


def measurements_table(data) -> pd.DataFrame:
    """The long measurements table of a Cohort, or ``data`` itself when it is a DataFrame."""
    return cohort_table(data, "measurements")


def declared(data, name: str, measure: str | None = None):
    """The value a cohort declares for ``name`` (``hipstats.yaml`` or a report parameter), else None.

    ``primary_rater`` may be declared per measure as a mapping (``{hip_ir_deg: JS}``).

    >>> declared(pd.DataFrame(), "retest_visit") is None
    True
    """
    if name not in VIEW_SETTINGS:
        raise AnalysisError(f"unknown view setting {name!r} (known: {', '.join(VIEW_SETTINGS)})")
    settings = getattr(data, "settings", None)
    value = getattr(settings, name, None)
    if value is None:
        extra = getattr(settings, "extra", None)
        value = extra.get(name) if isinstance(extra, dict) else None
    if isinstance(value, dict):
        value = value.get(measure) if measure is not None else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if name == "scheduled_visits":
        return [str(v) for v in ([value] if isinstance(value, str) else value)]
    return str(value)


def _side(s: pd.Series) -> pd.Series:
    """One representation of "no side": None."""
    s = s.astype(object)
    blank = s.isna() | s.map(lambda v: isinstance(v, str) and v.strip().lower() in _NO_SIDE)
    return s.where(~blank, None)


_MEMO: dict = {}


def _memo(data, key, make):
    """Cache ``make()`` per Cohort (a Cohort's tables are treated as immutable); never for a bare DataFrame."""
    if isinstance(data, pd.DataFrame) or not hasattr(data, "measurements"):
        return make()
    table = data.measurements
    slot = (id(table), key)
    hit = _MEMO.get(slot)
    if hit is not None and hit[0]() is table:
        return hit[1]
    value = make()
    for k in [k for k, (ref, _) in _MEMO.items() if ref() is None]:
        del _MEMO[k]
    _MEMO[slot] = (weakref.ref(table), value)
    return value


def view_notes(*frames) -> list[str]:
    """The notes of one or more views (``attrs["notes"]``), each once, in order."""
    out: list[str] = []
    for f in frames:
        for n in (getattr(f, "attrs", None) or {}).get("notes", []):
            if n not in out:
                out.append(n)
    return out


# ----------------------------------------------------------------------------------------
# names found in the data
# ----------------------------------------------------------------------------------------
def visit_schedule(data) -> pd.DataFrame:
    """Visits with their median week, attendance and whether they are scheduled.

    See the module rules: declared ``scheduled_visits`` win; otherwise a visit attended by at
    least half as many participants as the best-attended visit is scheduled.

    Returns
    -------
    DataFrame
        visit, week (median), n_participants, scheduled; ordered by week then label.

    Examples
    --------
    >>> m = pd.DataFrame({"participant_id": ["a", "b", "a", "b", "a"], "value": 1.0,
    ...                   "visit": ["baseline", "baseline", "week_6", "week_6", "retest"],
    ...                   "week": [0, 0, 6, 6, 0.5]})
    >>> visit_schedule(m)[["visit", "scheduled"]].values.tolist()
    [['baseline', True], ['retest', True], ['week_6', True]]
    """
    return _memo(data, ("schedule", repr(declared(data, "scheduled_visits"))),
                 lambda: _visit_schedule(data)).copy()


def _visit_schedule(data) -> pd.DataFrame:
    m = measurements_table(data)
    cols = ["visit", "week", "n_participants", "scheduled"]
    if m.empty:
        return pd.DataFrame(columns=cols)
    week = m["week"] if "week" in m.columns else pd.Series(np.nan, index=m.index)
    g = (pd.DataFrame({"visit": m["visit"].astype(str), "week": pd.to_numeric(week, errors="coerce"),
                       "participant_id": m["participant_id"]})
         .groupby("visit", observed=True)
         .agg(week=("week", "median"), n_participants=("participant_id", "nunique"))
         .reset_index())
    wanted = declared(data, "scheduled_visits")
    if wanted is not None:
        unknown = [v for v in wanted if v not in set(g["visit"])]
        if unknown:
            raise AnalysisError(f"scheduled_visits {unknown} declared but not in the data "
                                f"(visits are {sorted(g['visit'])})")
        g["scheduled"] = g["visit"].isin(wanted)
    else:
        g["scheduled"] = g["n_participants"] >= 0.5 * g["n_participants"].max()
    first = {v: i for i, v in enumerate(pd.unique(m["visit"].astype(str)))}
    g["_first"] = g["visit"].map(first)
    return g.sort_values(["week", "_first"]).reset_index(drop=True)[cols]


def scheduled_visits(data) -> list[str]:
    """The scheduled visits in order of their median week (see :func:`visit_schedule`)."""
    s = visit_schedule(data)
    return s.loc[s["scheduled"], "visit"].tolist()


def baseline_visit(data) -> str:
    """The first scheduled visit.

    Raises
    ------
    AnalysisError
        When there are no measurements.
    """
    visits = scheduled_visits(data)
    if not visits:
        raise AnalysisError("the cohort has no measurements, so no baseline visit")
    return visits[0]


def _cell_counts(m: pd.DataFrame) -> pd.Series:
    """Participant-visit-side cells measured by each rater, most first, ties by label."""
    rows = m[m["rater"].notna()] if "rater" in m.columns else m.iloc[:0]
    if rows.empty:
        return pd.Series(dtype=int)
    cells = rows.assign(side=_side(rows["side"]) if "side" in rows.columns else None,
                        rater=rows["rater"].astype(str))
    n = (cells[["participant_id", "visit", "side", "rater"]].astype(object).fillna("")
         .drop_duplicates().groupby("rater").size())
    return n.sort_index().sort_values(ascending=False, kind="stable")


def primary_rater(data, measure: str | None = None) -> str | None:
    """The primary rater of a measure: declared, else the rater who measured most cells.

    A cell is a participant, visit and side. None when no rater is recorded.

    Raises
    ------
    AnalysisError
        When a declared rater did not measure it, or when two raters measured equally many
        cells (ambiguous: declare ``primary_rater`` in ``hipstats.yaml``).

    Examples
    --------
    >>> m = pd.DataFrame({"participant_id": ["a", "b", "a"], "visit": "baseline",
    ...                   "measure": "hip_ir_deg", "side": "left", "value": 1.0,
    ...                   "rater": ["JS", "JS", "AB"]})
    >>> primary_rater(m, "hip_ir_deg")
    'JS'
    """
    m = measurements_table(data)
    if measure is not None and "measure" in m.columns:
        m = m[m["measure"] == measure]
    counts = _memo(data, ("cells", measure), lambda: _cell_counts(m))
    wanted = declared(data, "primary_rater", measure)
    if wanted is not None:
        if not counts.empty and wanted not in counts.index:
            raise AnalysisError(f"primary_rater {wanted!r} declared but did not measure "
                                f"{measure or 'anything'} (raters: {', '.join(counts.index)})")
        return wanted
    if counts.empty:
        return None
    if len(counts) > 1 and counts.iloc[0] == counts.iloc[1]:
        tied = counts.index[counts == counts.iloc[0]].tolist()
        raise AnalysisError(f"the primary rater of {measure or 'the measurements'} is ambiguous: "
                            f"raters {', '.join(tied)} measured {counts.iloc[0]} participant-visit-sides "
                            "each; declare primary_rater in hipstats.yaml (--config FILE for a database or a "
                            "single file) or as a report parameter")
    return str(counts.index[0])


def retest_visit(data) -> str | None:
    """The retest visit: declared, else found by the module rule (None when there is none).

    Raises
    ------
    AnalysisError
        When a declared visit is not in the data, or two visits fit the rule.

    Examples
    --------
    >>> m = pd.DataFrame({"participant_id": list("abcdeab"), "value": 1.0,
    ...     "visit": ["baseline"] * 5 + ["retest"] * 2, "week": [0, 0, 0, 0, 0, 0.4, 0.4]})
    >>> m = pd.concat([m, m.iloc[:5].assign(visit="week_6", week=6.0)])
    >>> retest_visit(m)
    'retest'
    """
    m = measurements_table(data)
    sched = visit_schedule(data)
    wanted = declared(data, "retest_visit")
    if wanted is not None:
        if wanted not in set(sched["visit"]):
            raise AnalysisError(f"retest_visit {wanted!r} declared but not in the data "
                                f"(visits are {sorted(sched['visit'])})")
        return wanted
    on = sched[sched["scheduled"]]
    if on.empty:
        return None
    base = on["visit"].iloc[0]
    base_week = on["week"].iloc[0]
    next_week = on["week"].iloc[1] if len(on) > 1 else np.inf
    at_base = set(m.loc[m["visit"] == base, "participant_id"])
    found = []
    for r in sched[~sched["scheduled"]].itertuples():
        who = set(m.loc[m["visit"] == r.visit, "participant_id"])
        week_ok = not np.isfinite(r.week) or base_week <= r.week < next_week
        if week_ok and who and who <= at_base:
            found.append(r.visit)
    if not found and len(sched) == 2:  # a test-retest study: two visits, the second repeats the first
        found = [sched["visit"].iloc[1]]
    if len(found) > 1:
        raise AnalysisError(f"the retest visit is ambiguous: visits {', '.join(found)} each repeat "
                            f"{base!r} before the first follow-up; declare retest_visit in hipstats.yaml (--config FILE for a database) "
                            "(or as a report parameter)")
    return found[0] if found else None


# ----------------------------------------------------------------------------------------
# the rater rule
# ----------------------------------------------------------------------------------------
def _one_rater_per_cell(m: pd.DataFrame, find_primary, keys: list[str]) -> tuple[pd.DataFrame, list[str], str | None]:
    """Keep one rater where two measured the same cell; count what is left out.

    ``find_primary()`` is called only when some cell has two raters (only then does the
    choice matter, so only then can an ambiguous primary rater stop the view).
    """
    if "rater" not in m.columns or m["rater"].notna().sum() == 0:
        return m, [], None
    named = m["rater"].notna()
    r = m.loc[named, "rater"].astype(str)
    cell = m.loc[named, keys].astype(object).fillna("").groupby(keys, sort=False).ngroup().to_numpy()
    if (pd.Series(r.to_numpy()).groupby(cell).nunique() < 2).all():
        return m, [], None
    primary = find_primary()
    order = _cell_counts(m).index.tolist()
    if primary is not None and primary in order:
        order = [primary] + [x for x in order if x != primary]
    rank = r.map({x: i for i, x in enumerate(order)}).astype(int)
    best = rank.groupby(cell).transform("min")
    drop = rank != best
    if not drop.any():
        return m, [], primary
    winner = pd.Series(order, dtype=object)[best[drop].to_numpy()].to_numpy()
    lost = pd.DataFrame({"loser": r[drop].to_numpy(), "winner": winner})
    notes = []
    for (loser, win), n in lost.groupby(["loser", "winner"], sort=False).size().items():
        tag = " (the primary rater)" if win == primary else ""
        notes.append(exclusion_note(n, f"rater {loser} measured the same participant, visit and side as "
                                       f"{win}{tag}"))
    keep = pd.Series(True, index=m.index)
    keep.loc[drop[drop].index] = False
    return m[keep], notes, primary


# ----------------------------------------------------------------------------------------
# trial means
# ----------------------------------------------------------------------------------------
def _condition(m: pd.DataFrame, pelvis: str | None, position: str | None, measure: str) -> pd.DataFrame:
    if pelvis is not None and "pelvis" in m.columns:
        if pelvis == "free":
            m = m[(m["pelvis"] == "free") | m["pelvis"].isna()]
        else:
            m = m[m["pelvis"] == pelvis]
    if "position" in m.columns:
        if position is not None:
            m = m[m["position"] == position]
        elif m["position"].nunique() > 1:
            raise AnalysisError(f"{measure!r} was measured in several positions "
                                f"{sorted(m['position'].dropna().astype(str).unique().tolist())}; pass position=")
    return m


def _visits(m: pd.DataFrame, visits, data, notes: list[str]) -> pd.DataFrame:
    if visits is None or (isinstance(visits, str) and visits == "all"):
        return m
    if isinstance(visits, str) and visits == "scheduled":
        keep = scheduled_visits(data)
        out = m[m["visit"].isin(keep)]
        for v, n in m.loc[~m["visit"].isin(keep), "visit"].value_counts(sort=False).items():
            notes.append(exclusion_note(n, f"visit {v!r} is not a scheduled visit"))
        return out
    labels = [visits] if isinstance(visits, str) else [str(v) for v in visits]
    return m[m["visit"].isin(labels)]


def readings(data, measure: str, *, pelvis: str | None = "free", position: str | None = None,
             visits="scheduled", rater: str | None = "primary") -> pd.DataFrame:
    """The single readings (trials) a view uses, after the module rules, with the left-out rows counted.

    Parameters are those of :func:`trial_means`. Returns the measurement rows (side None for
    whole-body measures, ``week`` and ``rater`` always present) with ``attrs["notes"]`` and
    ``attrs["primary_rater"]``.
    """
    m = measurements_table(data)
    missing = [c for c in ("participant_id", "visit", "measure", "value") if c not in m.columns]
    if missing:
        raise AnalysisError(f"a measurements table needs column(s) {missing}; the data have {list(m.columns)}")
    rows = m[m["measure"] == measure]
    notes: list[str] = []
    rows = _condition(rows, pelvis, position, measure)
    bad = rows["value"].isna()
    if bad.any():
        notes.append(exclusion_note(int(bad.sum()), f"no {measure} value recorded"))
        rows = rows[~bad]
    rows = _visits(rows, visits, data, notes)
    rows = rows.assign(side=_side(rows["side"]) if "side" in rows.columns else None)
    if "week" not in rows.columns:
        rows = rows.assign(week=np.nan)
    if "rater" not in rows.columns:
        rows = rows.assign(rater=None)
    chosen = None
    if rater == "primary":
        rows, n, chosen = _one_rater_per_cell(rows, lambda: primary_rater(data, measure),
                                              ["participant_id", "visit", "side"])
        notes += n
    elif rater not in (None, "each"):
        raters = sorted(rows["rater"].dropna().astype(str).unique().tolist())
        if raters and rater not in raters:
            raise AnalysisError(f"no {measure} measurements by rater {rater!r}; raters are {raters}")
        rows = rows[(rows["rater"] == rater) | rows["rater"].isna()]
        chosen = rater
    rows = rows.copy()
    rows.attrs = {"notes": notes, "primary_rater": chosen, "measure": measure}
    return rows


def trial_means(data, measure: str, *, pelvis: str | None = "free", position: str | None = None,
                visits="scheduled", side: str = "both", rater: str | None = "primary") -> pd.DataFrame:
    """One value per participant x visit x side: the mean of the trials.

    Parameters
    ----------
    data : Cohort or DataFrame
        A cohort or its long measurements table.
    measure : str
        The measure.
    pelvis : str or None
        Pelvic condition (default own posture, ``"free"``; readings without a condition
        count as own posture); None keeps every condition.
    position : str, optional
        Test position; required when the measure was taken in several positions.
    visits : "scheduled", "all" or list of str
        Which visits (default the scheduled ones, see :func:`visit_schedule`).
    side : {"both", "mean", "left", "right"}
        ``"both"`` one row per side (None for whole-body measures), ``"mean"`` the sides of a
        visit averaged (side ``"mean"``), or one side.
    rater : "primary", "each", a rater label, or None
        ``"primary"`` applies the one-rater rule (module docstring); ``"each"`` keeps every
        rater as its own row (column ``rater``); a label keeps that rater only; None averages
        all raters' trials.

    Returns
    -------
    DataFrame
        participant_id, visit, week, side, value, n_trials, sd, rater (the rater whose
        trials were averaged; missing when none or several). ``attrs["notes"]`` lists every
        left-out row with its reason, ``attrs["primary_rater"]`` the primary rater used.
    """
    rows = readings(data, measure, pelvis=pelvis, position=position, visits=visits, rater=rater)
    notes, chosen = list(rows.attrs["notes"]), rows.attrs["primary_rater"]
    keys = ["participant_id", "visit", "side"] + (["rater"] if rater == "each" else [])
    if side in ("left", "right"):
        rows = rows[rows["side"] == side]
    elif side not in ("both", "mean"):
        raise AnalysisError(f"side must be 'both', 'mean', 'left' or 'right', got {side!r}")
    cols = ["participant_id", "visit", "week", "side", "value", "n_trials", "sd", "rater"]
    if rows.empty:
        out = pd.DataFrame(columns=cols)
    else:
        g = rows.assign(side=rows["side"].where(rows["side"].notna(), ""),
                        rater=rows["rater"].astype(object).where(rows["rater"].notna(), ""))
        agg = dict(week=("week", "min"), value=("value", "mean"), n_trials=("value", "size"), sd=("value", "std"))
        if "rater" not in keys:
            agg.update(rater=("rater", "first"), _raters=("rater", "nunique"))
        out = g.groupby(keys, sort=False, observed=True).agg(**agg).reset_index()
        if "rater" not in keys:
            out["rater"] = out["rater"].where(out.pop("_raters") == 1, "")
        if side == "mean":
            out = (out.groupby(["participant_id", "visit"], sort=False, observed=True)
                      .agg(week=("week", "min"), value=("value", "mean"), n_trials=("n_trials", "sum"),
                           sd=("sd", "mean"), rater=("rater", "first"), _raters=("rater", "nunique"))
                      .reset_index().assign(side="mean"))
            out["rater"] = out["rater"].where(out.pop("_raters") == 1, "")
        out["side"] = out["side"].replace("", None)
        out["rater"] = out["rater"].astype(object).replace("", None)
        out["n_trials"] = out["n_trials"].astype(int)
        out = out[cols].sort_values(["participant_id", "week", "side"], na_position="first",
                                    kind="stable").reset_index(drop=True)
    out.attrs["notes"] = notes
    out.attrs["primary_rater"] = chosen
    out.attrs["measure"] = measure
    return out


# ----------------------------------------------------------------------------------------
# change from baseline
# ----------------------------------------------------------------------------------------
def change_from_baseline(values: pd.DataFrame, *, baseline: str | None = None,
                         keys: Sequence[str] = ("participant_id", "side")) -> pd.DataFrame:
    """Add each row's ``baseline`` (the value at the baseline visit) and ``change`` (value - baseline).

    Parameters
    ----------
    values : DataFrame
        A :func:`trial_means` view (participant_id, visit, week, side, value).
    baseline : str, optional
        The baseline visit label (default the visit with the earliest median week).
    keys : sequence of str
        What a baseline belongs to (participant and side).

    Returns
    -------
    DataFrame
        ``values`` with ``baseline`` and ``change`` (NaN where the baseline is missing; the
        number of such participants is in ``attrs["notes"]``).

    Examples
    --------
    >>> v = pd.DataFrame({"participant_id": ["a", "a", "b"], "visit": ["baseline", "week_6", "week_6"],
    ...                   "week": [0.0, 6.0, 6.0], "side": None, "value": [30.0, 34.0, 31.0]})
    >>> change_from_baseline(v)["change"].tolist()
    [0.0, 4.0, nan]
    """
    out = values.copy()
    notes = list(values.attrs.get("notes", []))
    if baseline is None:
        if out.empty:
            raise AnalysisError("no values, so no baseline")
        baseline = str(out.groupby("visit", observed=True)["week"].median().sort_values(kind="stable").index[0])
    keys = [k for k in keys if k in out.columns]
    key = out[keys].astype(object).fillna("").groupby(keys, sort=False).ngroup().to_numpy()
    at = (out["visit"] == baseline).to_numpy()
    base = pd.Series(out["value"].to_numpy()[at], index=key[at])
    base = base[~base.index.duplicated()]
    out["baseline"] = pd.Series(key).map(base).astype(float).to_numpy()
    out["change"] = out["value"] - out["baseline"]
    lost = out.loc[out["baseline"].isna(), "participant_id"].nunique()
    if lost:
        notes.append(exclusion_note(lost, f"no {baseline!r} value, so no change from baseline",
                                    unit="participant"))
    out.attrs.update(values.attrs)
    out.attrs["notes"] = notes
    out.attrs["baseline_visit"] = baseline
    return out


def visit_change(values: pd.DataFrame, *, baseline: str, final: str, by: Sequence[str] = ()) -> pd.DataFrame:
    """Participant-level baseline, final value and change (sides averaged).

    Parameters
    ----------
    values : DataFrame
        A :func:`trial_means` view (any side option); extra ``by`` columns are kept.
    baseline, final : str
        Visit labels.
    by : sequence of str
        Participant-level columns to keep (e.g. ``["arm"]``).

    Returns
    -------
    DataFrame
        participant_id, *by, baseline, final, final_week, change (NaN when either visit is
        missing: counted in ``attrs["notes"]``).

    Examples
    --------
    >>> v = pd.DataFrame({"participant_id": ["a", "a", "b"], "visit": ["baseline", "week_6", "baseline"],
    ...                   "week": [0.0, 6.0, 0.0], "side": "left", "value": [30.0, 34.0, 31.0]})
    >>> visit_change(v, baseline="baseline", final="week_6")["change"].tolist()
    [4.0, nan]
    """
    idx = ["participant_id", *by]
    sub = values[values["visit"].isin([baseline, final])]
    w = sub.pivot_table(index=idx, columns="visit", values="value", aggfunc="mean", observed=True)
    w = w.reindex(columns=[baseline, final]).rename(columns={baseline: "baseline", final: "final"})
    wk = sub[sub["visit"] == final].groupby(idx, observed=True)["week"].min()
    w["final_week"] = wk.reindex(w.index)
    w["change"] = w["final"] - w["baseline"]
    w.columns.name = None
    out = w.reset_index()
    notes = list(values.attrs.get("notes", []))
    for label, col in ((baseline, "baseline"), (final, "final")):
        n = int(out[col].isna().sum())
        if n:
            notes.append(exclusion_note(n, f"no {label!r} value, so no change from {baseline!r} to {final!r}",
                                        unit="participant"))
    out.attrs["notes"] = notes
    out.attrs["baseline_visit"], out.attrs["final_visit"] = baseline, final
    return out


def visit_values(data, measure: str, *, pelvis: str | None = "free", rater: str | None = None,
                 position: str | None = None, visits=None, side: str = "mean") -> pd.DataFrame:
    """Mean of trials per participant and visit for one measure (:func:`trial_means` with H1/H4/H5's defaults).

    ``rater=None`` applies the one-rater rule (the primary rater only where two raters
    overlap); ``visits=None`` keeps every visit; ``side="mean"`` averages the sides of a visit
    (side ``"mean"``), "both" keeps both (side None for whole-body measures), "left"/"right"
    one side. Returns participant_id, visit, week, side, value, n_trials (sorted by
    participant, visit, side) with the view's ``attrs["notes"]``.

    Raises
    ------
    AnalysisError
        When no reading is left (naming the measure, condition and side).

    Examples
    --------
    >>> m = pd.DataFrame({"participant_id": "p1", "visit": "baseline", "week": 0.0,
    ...     "measure": "hip_ir_deg", "side": ["left", "left", "right", "right"],
    ...     "pelvis": "free", "value": [30.0, 32.0, 40.0, 42.0]})
    >>> visit_values(m, "hip_ir_deg")[["side", "value", "n_trials"]].values.tolist()
    [['mean', 36.0, 4]]
    """
    v = trial_means(data, measure, pelvis=pelvis, position=position, visits="all" if visits is None else visits,
                    side=side, rater="primary" if rater is None else rater)
    if v.empty:
        m = measurements_table(data)
        if not (m["measure"] == measure).any():
            raise AnalysisError(f"no {measure!r} measurements; measures present: "
                                f"{sorted(m['measure'].dropna().astype(str).unique().tolist())}")
        if visits is not None and not isinstance(visits, str):
            labels = [str(x) for x in visits]
            if not m["visit"].isin(labels).any():
                raise AnalysisError(f"none of the visits {labels} is in the data; visits are "
                                    f"{sorted(m['visit'].astype(str).unique().tolist())}")
        what = f" with pelvis == {pelvis!r}" if pelvis is not None else ""
        raise AnalysisError(f"no {measure!r} measurements{what}" + (f" on the {side} side"
                                                                      if side in ("left", "right") else ""))
    out = (v.sort_values(["participant_id", "visit", "side"], na_position="first", kind="stable")
             [["participant_id", "visit", "week", "side", "value", "n_trials"]].reset_index(drop=True))
    out.attrs = dict(v.attrs)
    return out


def participant_change(data, measure: str, *, final="final", pelvis: str | None = "free",
                       rater: str | None = None, position: str | None = None) -> pd.DataFrame:
    """Baseline, final value and change (final - baseline) per participant, sides averaged.

    Baseline is the cohort's baseline visit (:func:`baseline_visit`); ``final="final"`` the
    last scheduled visit, ``final="last"`` each participant's last scheduled visit after
    baseline, or a visit label. Participants without both values are left out and counted in
    ``attrs["notes"]``. Returns participant_id, baseline, final, final_week, change.

    Examples
    --------
    >>> m = pd.DataFrame({"participant_id": "p1", "visit": ["baseline", "week_12"],
    ...     "week": [0.0, 12.0], "measure": "hip_ir_deg", "side": "left", "pelvis": "free",
    ...     "value": [30.0, 36.0]})
    >>> participant_change(m, "hip_ir_deg")["change"].tolist()
    [6.0]
    """
    v = visit_values(data, measure, pelvis=pelvis, rater=rater, position=position, visits="scheduled",
                     side="mean")
    sched = [x for x in scheduled_visits(data) if x in set(v["visit"])]
    base = sched[0] if sched else baseline_visit(data)
    if final == "last":
        later = v[(v["visit"] != base)].sort_values(["participant_id", "week", "visit"])
        last = later.groupby("participant_id", sort=True).tail(1)
        parts = []
        for label, rows in last.groupby("visit", sort=False):
            sub = v[v["participant_id"].isin(rows["participant_id"]) & v["visit"].isin([base, label])]
            parts.append(visit_change(sub, baseline=base, final=label))
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=["participant_id", "baseline", "final", "final_week", "change"])
        out.attrs["notes"] = view_notes(v, *parts)
    else:
        label = sched[-1] if final == "final" else str(final)
        out = visit_change(v, baseline=base, final=label)
    complete = out.dropna(subset=["change"]).sort_values("participant_id").reset_index(drop=True)
    complete.attrs = dict(out.attrs)
    if complete.empty:
        raise AnalysisError(f"no participant has a {measure!r} value at both {base!r} and the {final!r} visit")
    return complete


# ----------------------------------------------------------------------------------------
# pairs for agreement
# ----------------------------------------------------------------------------------------
def rater_pairs(data, measure: str = "hip_ir_deg", *, pelvis: str | None = "free", visit: str | None = None,
                raters: tuple[str, str] | None = None) -> pd.DataFrame:
    """Trial-mean readings of two raters at the same visit, one row per participant and side.

    The two raters default to the two who measured most cells of the visit (the primary
    first). Rows with only one of them are counted in ``attrs["notes"]``.

    Returns
    -------
    DataFrame
        participant_id, side, <rater 1>, <rater 2>; ``attrs["raters"]``, ``attrs["visit"]``.
    """
    visit = visit or baseline_visit(data)
    v = trial_means(data, measure, pelvis=pelvis, visits=[visit], rater="each")
    v = v[v["rater"].notna()]
    counts = v["rater"].value_counts()
    if raters is None:
        if len(counts) < 2:
            raise AnalysisError(f"{measure} at {visit} was not read by two raters")
        first = primary_rater(data, measure)
        order = sorted(counts.index, key=lambda r: (r != first, -counts[r], r))
        raters = (order[0], order[1])
    if len(raters) != 2 or any(r not in set(counts.index) for r in raters):
        raise AnalysisError(f"{measure} at {visit} was not read by raters {raters} "
                            f"(raters: {', '.join(map(str, counts.index))})")
    w = (v[v["rater"].isin(raters)].assign(side=lambda d: d["side"].astype(object).fillna(""))
         .pivot_table(index=["participant_id", "side"], columns="rater", values="value", observed=True)
         .reset_index())
    w.columns.name = None
    complete = w[list(raters)].notna().all(axis=1)
    out = w.loc[complete, ["participant_id", "side", *raters]].reset_index(drop=True)
    out["side"] = out["side"].replace("", None)
    if out.empty:
        raise AnalysisError(f"no participant has {measure} from both {raters[0]} and {raters[1]} at {visit}")
    out.attrs = {"notes": [exclusion_note(int((~complete).sum()), f"at {visit!r} read by only one of {raters[0]} "
                                          f"and {raters[1]}", unit="participant-side")] if (~complete).any() else []}
    out.attrs["raters"], out.attrs["visit"] = tuple(raters), visit
    return out


def retest_pairs(data, measure: str = "hip_ir_deg", *, pelvis: str | None = "free", retest: str | None = None,
                 baseline: str | None = None, rater: str | None = "primary") -> pd.DataFrame:
    """Trial-mean readings of one rater at baseline and at the retest visit.

    The retest visit and the rater default to those found by the module rules; the rater is
    the primary rater of the measure among the readings of the two visits.

    Returns
    -------
    DataFrame
        participant_id, side, baseline, retest (complete pairs); ``attrs["retest_visit"]``,
        ``attrs["baseline_visit"]``, ``attrs["rater"]``, ``attrs["notes"]``.
    """
    retest = retest or retest_visit(data)
    if retest is None:
        raise AnalysisError("no retest visit: no visit repeats baseline before the first follow-up "
                            "(declare retest_visit in hipstats.yaml if the cohort has one)")
    baseline = baseline or baseline_visit(data)
    who = primary_rater(data, measure) if rater == "primary" else rater
    v = trial_means(data, measure, pelvis=pelvis, visits=[baseline, retest], rater="each")
    if who is not None and v["rater"].notna().any():
        at_retest = v.loc[v["visit"] == retest, "rater"].dropna()
        if who not in set(at_retest) and not at_retest.empty:
            who = at_retest.value_counts().sort_index().idxmax() if rater == "primary" else who
        v = v[(v["rater"] == who) | v["rater"].isna()]
    w = (v.assign(side=v["side"].astype(object).fillna(""))
         .pivot_table(index=["participant_id", "side"], columns="visit", values="value", observed=True)
         .reindex(columns=[baseline, retest]).rename(columns={baseline: "baseline", retest: "retest"})
         .reset_index())
    w.columns.name = None
    has_retest = w["retest"].notna()
    w = w[has_retest]
    complete = w[["baseline", "retest"]].notna().all(axis=1)
    out = w[complete].reset_index(drop=True)
    out["side"] = out["side"].replace("", None)
    if out.empty:
        raise AnalysisError(f"no {measure} readings at both {baseline!r} and the retest visit {retest!r}"
                            + (f" by rater {who}" if who else ""))
    out.attrs = {"notes": ([exclusion_note(int((~complete).sum()), f"measured at {retest!r} but not at "
                                           f"{baseline!r}" + (f" by {who}" if who else ""), unit="participant-side")]
                           if (~complete).any() else [])}
    out.attrs.update(retest_visit=retest, baseline_visit=baseline, rater=who)
    return out


# ----------------------------------------------------------------------------------------
# participants, tilt classes and the training log (prepared once)
# ----------------------------------------------------------------------------------------
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
