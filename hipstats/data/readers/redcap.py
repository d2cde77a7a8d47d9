"""Read a flat REDCap export (``record_id`` x ``redcap_event_name``) into the contract's
measurements, participants and sessions tables; events become visits (``baseline_arm_1`` ->
``baseline``, week from the label or an explicit ``event_map``).

Examples
--------
>>> import pandas as pd
>>> from hipstats.data.readers.redcap import is_redcap
>>> is_redcap(pd.DataFrame(columns=["record_id", "redcap_event_name", "hip_ir_deg_left_1"]))
True
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from hipstats.data import schema
from hipstats.data.problems import ROW
from hipstats.data.readers.files import PARTICIPANT_COLUMNS, RawTable, source_problem

__all__ = ["read_redcap", "is_redcap"]


# --------------------------------------------------------------------------- REDCap
_REDCAP_FIELD = re.compile(
    r"^(?P<measure>[a-z_]+?)(?:_(?P<side>left|right|l|r))?(?:_t(?:rial)?_?(?P<trial>\d+))?$")
_REDCAP_META = {"record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
                "redcap_data_access_group", "redcap_survey_identifier"}
_SESSION_FIELDS = {"session_date": "date", "date": "date", "week": "week", "session_week": "week",
                   "exercise": "exercise", "sets": "sets", "reps": "reps", "load_kg": "load_kg", "rpe": "rpe",
                   "pain_nrs": "pain_nrs", "faults": "faults", "completed": "completed", "session": "session"}
_VISIT_FIELDS = {"visit_date", "rater", "device", "position", "pelvis", "week"}


def is_redcap(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` is a flat REDCap export (has ``record_id`` and ``redcap_event_name``)."""
    cols = {schema.normalise_column_name(c) for c in frame.columns}
    return {"record_id", "redcap_event_name"} <= cols


def _event_to_visit(event: str, event_map: dict | None) -> tuple[str, float | None]:
    if event_map and event in event_map:
        v = event_map[event]
        return (v[0], float(v[1])) if isinstance(v, (tuple, list)) else (str(v), None)
    label = re.sub(r"_arm_\d+$", "", str(event).strip().lower())
    from hipstats.data.normalize import label_week

    return label, label_week(label)


def read_redcap(raw: RawTable, event_map: dict | None = None) -> dict[str, RawTable]:
    """Turn a REDCap flat export into measurements, participants and sessions.

    Conventions (documented in ``docs/data_dictionary.md``): ``record_id`` is the
    participant; ``redcap_event_name`` is the visit (``week_6_arm_1`` -> visit
    ``week_6`` at week 6; override with ``event_map={"event": ("visit", week)}``);
    measurement fields are named ``<measure>[_left|_right][_t<trial>]`` (for
    example ``hip_ir_deg_left_t2`` or ``pelvic_tilt_deg_t1``); ``visit_date``, ``rater``,
    ``device``, ``position`` and ``pelvis`` apply to the event's measurements;
    participant fields (arm, sex, age_years, ...) may sit on any event; rows of a
    repeating instrument that has an ``exercise`` field become sessions
    (``redcap_repeat_instance`` = session number).
    """
    df = raw.frame.copy()
    df.columns = [c if c == ROW else schema.normalise_column_name(c) for c in df.columns]
    file = raw.file
    rep = df.get("redcap_repeat_instrument", pd.Series("", index=df.index)).fillna("").astype(str).str.strip()
    is_rep = rep != ""
    base = df.loc[~is_rep]
    # participants: first non-empty value per record
    pcols = [c for c in df.columns if c in PARTICIPANT_COLUMNS]
    prow = base.groupby("record_id", sort=False)[ROW].min()
    pframe = pd.DataFrame({ROW: prow.to_numpy(), "participant_id": prow.index.astype(str)})
    for c in pcols:
        vals = base[["record_id", c]].replace("", np.nan).dropna().groupby("record_id", sort=False)[c].first()
        pframe[c] = pframe["participant_id"].map(vals)
    # measurements: melt measure fields
    meas_rows = []
    for c in df.columns:
        if c in _REDCAP_META or c in pcols or c in _VISIT_FIELDS or c in _SESSION_FIELDS or c == ROW:
            continue
        m = _REDCAP_FIELD.match(c)
        if not m:
            continue
        sub = base.loc[base[c].astype(str).str.strip() != "", [ROW, "record_id", "redcap_event_name", c,
                                                               *[v for v in _VISIT_FIELDS if v in base.columns]]]
        if sub.empty:
            continue
        visits = sub["redcap_event_name"].map(lambda e: _event_to_visit(e, event_map))
        part = pd.DataFrame({
            ROW: sub[ROW].to_numpy(),
            "participant_id": sub["record_id"].astype(str).to_numpy(),
            "visit": [v[0] for v in visits],
            "week": [("" if v[1] is None else v[1]) for v in visits],
            "measure": m.group("measure"),
            "side": m.group("side") or "",
            "trial": m.group("trial") or "1",
            "value": sub[c].to_numpy(),
        })
        if "week" in sub.columns:
            given = sub["week"].astype(str).str.strip()
            part["week"] = np.where(given.to_numpy() != "", given.to_numpy(), part["week"].to_numpy())
        for v in _VISIT_FIELDS - {"week"}:
            if v in sub.columns:
                part[v] = sub[v].to_numpy()
        meas_rows.append(part)
    measurements = (pd.concat(meas_rows, ignore_index=True).sort_values(ROW, kind="stable").reset_index(drop=True)
                    if meas_rows else None)
    out = {"participants": RawTable(pframe, file, list(raw.problems), raw.decimal_comma)}
    if measurements is None:
        out["measurements"] = RawTable(None, file, [source_problem("measurements", file, "required_column",
                                                             "no measurement fields found (expected names like "
                                                             "hip_ir_deg_left_t1)")])
    else:
        out["measurements"] = RawTable(measurements, file, [], raw.decimal_comma)
    reps = df.loc[is_rep]
    if not reps.empty and "exercise" in reps.columns:
        sess = pd.DataFrame({ROW: reps[ROW].to_numpy(), "participant_id": reps["record_id"].astype(str).to_numpy()})
        if "redcap_repeat_instance" in reps.columns:
            sess["session"] = reps["redcap_repeat_instance"].to_numpy()
        for src, dst in _SESSION_FIELDS.items():
            if src in reps.columns and dst not in sess.columns:
                sess[dst] = reps[src].to_numpy()
        out["sessions"] = RawTable(sess.reset_index(drop=True), file, [], raw.decimal_comma)
    return out
