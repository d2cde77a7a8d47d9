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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hipstats.data import schema
from hipstats.data.problems import ROW, Problem
from hipstats.data.readers.files import PARTICIPANT_COLUMNS, RawTable, source_problem

__all__ = ["read_redcap", "is_redcap", "RedcapDictionary", "RedcapField", "find_redcap_project",
           "decode_export", "parse_event_map"]


# --------------------------------------------------------------------------- REDCap
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
        if isinstance(v, dict):
            return str(v.get("visit", event)), (None if v.get("week") is None else float(v["week"]))
        return (v[0], float(v[1])) if isinstance(v, (tuple, list)) else (str(v), None)
    label = re.sub(r"_arm_\d+$", "", str(event).strip().lower())
    from hipstats.data.normalize import label_week

    return label, label_week(label)


def read_redcap(raw: RawTable, event_map: dict | None = None, dictionary: "RedcapDictionary | None" = None
                ) -> dict[str, RawTable]:
    """Turn a REDCap export into measurements, participants and sessions.

    Conventions (documented in ``docs/data_dictionary.md``): ``record_id`` is the
    participant; ``redcap_event_name`` is the visit (``week_6_arm_1`` -> visit
    ``week_6`` at week 6; override with ``event_map={"event": ("visit", week)}`` or
    ``{"event": {"visit": ..., "week": ...}}``); measurement fields are named
    ``<measure>[_left|_right][_<pelvis>][_t<trial>][_r<k>]`` (for example
    ``hip_ir_deg_left_neutral_t2``; ``_r2`` takes the rater from the event's field ``rater_2``)
    or annotated in the data dictionary with ``@HIPSTATS(measure=..., side=..., pelvis=...,
    trial=..., rater=..., device=..., position=...)``; ``visit_date``, ``week``, ``rater``,
    ``device``, ``position`` and ``pelvis`` fields apply to the event's measurements (a field's
    own name or annotation wins); participant fields (arm, sex, age_years, ...) may sit on any
    event; rows of a repeating instrument that has an ``exercise`` field become sessions
    (its ``session`` field, else ``redcap_repeat_instance``, is the session number); rows of any other repeating instrument are
    measurements, with the instance as the trial unless the field names one. With a
    ``dictionary`` (:class:`RedcapDictionary`) codes become labels, checkboxes ``;`` lists, and
    notes, calc, descriptive, file and ``<form>_complete`` fields are never read
    (:func:`decode_export`); only contract measures are measure fields.
    """
    df = raw.frame.copy()
    specs: dict[str, dict] | None = None
    read_problems: list = []
    notes: list[str] = []
    record_field = "record_id"
    if dictionary is not None:
        record_field = next(iter(dictionary.fields), "record_id")
        df, specs, read_problems, notes = decode_export(df, dictionary, raw.file)
    else:  # no dictionary: REDCap's form status fields are never measures
        status = [c for c in df.columns if str(c).lower().endswith("_complete")]
        df = df.drop(columns=status)
        if status:
            notes.append(f"{Path(raw.file).name}: {len(status)} REDCap form status field(s) not read "
                         f"({', '.join(map(str, status))})")
    df.columns = [c if c == ROW else schema.normalise_column_name(c) for c in df.columns]
    flagged = [f for f in (dictionary.identifier_fields if dictionary is not None else []) if f in df.columns]
    df = df.loc[:, ~pd.Index(df.columns).duplicated()]
    file = raw.file
    rep = df.get("redcap_repeat_instrument", pd.Series("", index=df.index)).fillna("").astype(str).str.strip()
    session_forms = set(rep[(rep != "") & (df["exercise"].astype(str).str.strip() != "")]) if "exercise" in df else set()
    is_sess = rep.isin(session_forms) & (rep != "")
    base = df.loc[~is_sess].copy()
    # visit fields recorded on another instrument of the same event fill the rows that lack them
    keys = [base["record_id"].astype(str), base["redcap_event_name"].astype(str)]
    for v in [v for v in base.columns if v in _VISIT_FIELDS or re.fullmatch(r"rater_\d+", v)]:
        vals = base[v].replace("", np.nan)
        base[v] = vals.fillna(vals.groupby(keys).transform("first")).fillna("")
    # participants: first non-empty value per record
    pcols = [c for c in df.columns if c in PARTICIPANT_COLUMNS]
    prow = df.groupby("record_id", sort=False)[ROW].min()
    pframe = pd.DataFrame({ROW: prow.to_numpy(), "participant_id": prow.index.astype(str)})
    for c in pcols:
        vals = df[["record_id", c]].replace("", np.nan).dropna().groupby("record_id", sort=False)[c].first()
        pframe[c] = pframe["participant_id"].map(vals)
    if flagged:  # kept so that validation refuses them (never read, never echoed)
        pframe = pframe.join(df.groupby("record_id", sort=False)[flagged].first(), on="participant_id")
    # measurements: melt measure fields
    meas_rows = []
    used = set(_REDCAP_META) | set(pcols) | set(flagged) | {ROW}
    values: dict[int, dict[str, list[str]]] = {}
    instance = base.get("redcap_repeat_instance", pd.Series("", index=base.index)).astype(str).str.strip()
    events = {e: _event_to_visit(e, event_map) for e in base["redcap_event_name"].unique()}
    for c in df.columns:
        if c in _REDCAP_META or c in pcols or c in _VISIT_FIELDS or c in _SESSION_FIELDS or c == ROW:
            continue
        if specs is not None:
            spec = specs.get(c)
            if spec is None:
                continue
        else:
            spec = _name_spec(c)
            if not spec:
                continue
        used.add(c)
        if spec.get("rater") in df.columns:
            used.add(spec["rater"])
        keep = base[c].astype(str).str.strip() != ""
        sub = base.loc[keep]
        for row, v in zip(sub[ROW].to_numpy(), sub[c].to_numpy()):
            for k in _value_keys(v):
                values.setdefault(int(row), {}).setdefault(k, []).append(c)
        if sub.empty:
            continue
        visits = sub["redcap_event_name"].map(events)
        trial = spec.get("trial") or np.where(instance[keep].to_numpy() != "", instance[keep].to_numpy(), "1")
        part = pd.DataFrame({
            ROW: sub[ROW].to_numpy(),
            "participant_id": sub["record_id"].astype(str).to_numpy(),
            "visit": [v[0] for v in visits],
            "week": [("" if v[1] is None else v[1]) for v in visits],
            "measure": spec["measure"],
            "side": spec.get("side") or "",
            "trial": trial,
            "value": sub[c].to_numpy(),
        })
        if "week" in sub.columns:
            given = sub["week"].astype(str).str.strip()
            part["week"] = np.where(given.to_numpy() != "", given.to_numpy(), part["week"].to_numpy())
        for v in _VISIT_FIELDS - {"week"}:
            own = spec.get(v)
            if v == "rater" and own:
                part[v] = sub[own].to_numpy() if own in sub.columns else own
            elif own:
                part[v] = own
            elif v in sub.columns:
                part[v] = sub[v].to_numpy()
        meas_rows.append(part)
    measurements = (pd.concat(meas_rows, ignore_index=True).sort_values(ROW, kind="stable").reset_index(drop=True)
                    if meas_rows else None)
    used |= {c for c in base.columns if c in _VISIT_FIELDS} if meas_rows else set()
    origin = _Origin(file, record_field, {
        int(r): (str(rec), str(ev), str(ins), str(num)) for r, rec, ev, ins, num in zip(
            df[ROW], df["record_id"], df["redcap_event_name"], rep,
            df.get("redcap_repeat_instance", pd.Series("", index=df.index)).fillna("").astype(str))}, values,
        {("participants", "site"): "redcap_data_access_group" if "site" not in raw.frame.columns else "site",
         ("measurements", "visit"): "redcap_event_name",
         ("sessions", "session"): "session" if "session" in df.columns else "redcap_repeat_instance"})
    extra = dict(locate=origin, also_read=(dictionary.file,) if dictionary is not None and dictionary.file else ())
    out = {"participants": RawTable(pframe, file, list(raw.problems) + read_problems, raw.decimal_comma,
                                    identifier_fields=tuple(flagged), **extra)}
    if measurements is None:
        out["measurements"] = RawTable(None, file, [source_problem("measurements", file, "required_column",
                                                             "no measurement fields found (expected names like "
                                                             "hip_ir_deg_left_t1)")], **extra)
    else:
        out["measurements"] = RawTable(measurements, file, [], raw.decimal_comma, **extra)
    reps = df.loc[is_sess]
    if not reps.empty:
        sess = pd.DataFrame({ROW: reps[ROW].to_numpy(), "participant_id": reps["record_id"].astype(str).to_numpy()})
        if "redcap_repeat_instance" in reps.columns and "session" not in reps.columns:
            sess["session"] = reps["redcap_repeat_instance"].to_numpy()  # a session field wins
        for src, dst in _SESSION_FIELDS.items():
            if src in reps.columns and dst not in sess.columns:
                sess[dst] = reps[src].to_numpy()
                used.add(src)
                origin.columns[("sessions", dst)] = src
        out["sessions"] = RawTable(sess.reset_index(drop=True), file, [], raw.decimal_comma, **extra)
    unread = [c for c in df.columns if c not in used]
    if unread:
        notes.append(f"{Path(file).name}: REDCap field(s) not read, not part of the data contract: "
                     f"{', '.join(map(str, unread))}")
    out["participants"].notes = notes
    return out


def _value_keys(v) -> list[str]:
    """Ways a cell value can come back in a problem (the raw text, or the number it holds)."""
    text = str(v).strip()
    try:
        return [text, repr(float(text))]
    except ValueError:
        return [text]


@dataclass
class _Origin:
    """Where each table cell read from a REDCap export came from: export row -> record, event,
    repeat instrument and instance; measurement values -> the REDCap field(s) holding them."""

    file: str
    record_field: str
    records: dict
    values: dict
    columns: dict

    def __call__(self, p: Problem) -> Problem:
        if p.file != self.file or p.rule.startswith("redcap_"):
            return p
        if p.column == "participant_id":
            name = self.record_field
        elif p.column == "value" and p.table == "measurements" and p.row in self.values:
            held = self.values[p.row]
            hits = next((held[k] for k in _value_keys(p.value) if k in held), None)
            name = ", ".join(dict.fromkeys(hits)) if hits else "value"
        else:
            name = self.columns.get((p.table, p.column), p.column)
        return Problem(p.table, p.file, p.row, name, p.value, p.rule,
                       f"REDCap {_where(self.records.get(p.row), self.record_field)}"
                       f"{'field' if name and ',' not in str(name) else 'fields'} '{name}': {p.message}"
                       if name else f"REDCap {_where(self.records.get(p.row), self.record_field)}: {p.message}")


def _where(record: tuple | None, record_field: str = "record_id") -> str:
    if record is None:
        return ""
    rec, event, instrument, instance = record
    text = f"record '{rec}', event '{event}'"
    if instrument:
        text += f", instrument '{instrument}' instance {instance}"
    return text + ", "


# --------------------------------------------------------------------------- REDCap projects
#: REDCap's default export file names: ``<Project>_DATA_<YYYY-MM-DD_HHMM>.csv`` (raw data) and
#: ``<Project>_DataDictionary_<YYYY-MM-DD>.csv``.
DATA_FILE = re.compile(r"^(?P<project>.+?)_DATA_(?P<stamp>\d{4}-\d{2}-\d{2}(?:_\d{4})?)\.csv$", re.I)
DICTIONARY_FILE = re.compile(r"^(?P<project>.+?)_DataDictionary_(?P<stamp>\d{4}-\d{2}-\d{2})\.csv$", re.I)
#: Field types whose values never enter a table (free text, computed, layout, uploads).
IGNORED_TYPES = ("notes", "calc", "descriptive", "file")
_ANNOTATION = re.compile(r"@HIPSTATS\(([^)]*)\)", re.I)
_PROJECT_FIELD = re.compile(
    r"^(?P<measure>[a-z_]+?)(?:_(?P<side>left|right|l|r))?(?:_(?P<pelvis>neutral|free|anterior|posterior))?"
    r"(?:_t(?:rial)?_?(?P<trial>\d+))?(?:_r(?P<rater>\d+))?$")


@dataclass(frozen=True)
class RedcapField:
    """One row of a REDCap data dictionary."""

    name: str
    form: str
    type: str
    choices: tuple[tuple[str, str], ...] = ()
    validation: str = ""
    identifier: bool = False
    annotation: tuple[tuple[str, str], ...] = ()

    def label(self, code: str) -> str:
        """The label of a choice code (the code itself when it is not a choice)."""
        return dict(self.choices).get(str(code).strip(), code)


class RedcapDictionary:
    """A REDCap data dictionary: field types, choice labels, identifier flags, annotations.

    Examples
    --------
    >>> import io
    >>> d = RedcapDictionary.from_frame(pd.DataFrame({
    ...     "Variable / Field Name": ["record_id", "arm", "faults"], "Form Name": ["enrol"] * 3,
    ...     "Field Type": ["text", "radio", "checkbox"],
    ...     "Choices, Calculations, OR Slider Labels": ["", "1, control | 2, loading", "1, lumbar_rounding | 2, knee"],
    ...     "Identifier?": ["", "", ""], "Field Annotation": ["", "", ""]}))
    >>> d["arm"].label("2"), d.forms
    ('loading', ['enrol'])
    """

    def __init__(self, fields: list[RedcapField], file: str = ""):
        self.fields = {f.name: f for f in fields}
        self.file = file

    def __getitem__(self, name: str) -> RedcapField:
        return self.fields[name]

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    @property
    def forms(self) -> list[str]:
        return list(dict.fromkeys(f.form for f in self.fields.values() if f.form))

    @property
    def identifier_fields(self) -> list[str]:
        """Fields the project flags as identifiers (column 'Identifier?' = y)."""
        return [f.name for f in self.fields.values() if f.identifier]

    @classmethod
    def read(cls, path) -> "RedcapDictionary":
        """Read ``<Project>_DataDictionary_<date>.csv`` as REDCap writes it."""
        from hipstats.errors import SourceError  # noqa: PLC0415

        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise SourceError(f"{path}: cannot read the REDCap data dictionary ({err})") from None
        return cls.from_frame(frame, str(path))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, file: str = "") -> "RedcapDictionary":
        from hipstats.errors import SourceError  # noqa: PLC0415

        cols = {}
        for c in frame.columns:
            n = str(c).strip().lower()
            for key, start in (("name", "variable"), ("form", "form name"), ("type", "field type"),
                               ("choices", "choices"), ("validation", "text validation type"),
                               ("identifier", "identifier"), ("annotation", "field annotation")):
                if n.startswith(start) and key not in cols:
                    cols[key] = c
        if not {"name", "form", "type"} <= set(cols):
            raise SourceError(f"{file or 'data dictionary'}: not a REDCap data dictionary (needs the columns "
                              "'Variable / Field Name', 'Form Name' and 'Field Type')")
        fields = []
        for _, r in frame.iterrows():
            get = lambda k: str(r[cols[k]]).strip() if k in cols else ""  # noqa: E731
            ftype = get("type").lower()
            choices: tuple = ()
            if ftype in ("radio", "dropdown", "checkbox"):
                choices = tuple((code.strip(), label.strip()) for code, _, label in
                                (part.partition(",") for part in get("choices").split("|")) if code.strip())
            elif ftype == "yesno":
                choices = (("1", "yes"), ("0", "no"))
            elif ftype == "truefalse":
                choices = (("1", "true"), ("0", "false"))
            notes = _ANNOTATION.search(get("annotation"))
            annotation = ()
            if notes:
                annotation = tuple((k.strip().lower(), v.strip()) for k, _, v in
                                   (item.partition("=") for item in re.split(r"[,\s]+", notes.group(1))) if k.strip())
            fields.append(RedcapField(get("name").lower(), get("form"), ftype, choices, get("validation").lower(),
                                      get("identifier").lower() in ("y", "yes", "1"), annotation))
        return cls(fields, file)


def find_redcap_project(folder) -> tuple[Path, Path | None] | None:
    """The newest REDCap data export in ``folder`` and its data dictionary (REDCap's file names).

    The dictionary is the newest ``<Project>_DataDictionary_<date>.csv`` of the same project
    (else the newest of any project); None when there is none. None when the folder holds no
    ``<Project>_DATA_<date>.csv``.
    """
    from hipstats.errors import SourceError  # noqa: PLC0415

    folder = Path(folder)
    try:
        names = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as err:
        raise SourceError(f"{folder}: the folder cannot be read ({err.strerror or err})") from None
    labels = [p.name for p in names if re.search(r"_DATA_LABELS_", p.name, re.I)]
    data = sorted((DATA_FILE.match(p.name).group("stamp"), p) for p in names if DATA_FILE.match(p.name))
    if not data:
        if labels:
            raise SourceError(f"{folder / labels[0]}: a REDCap export with labels; export the raw data "
                              "('CSV / Microsoft Excel (raw data)') together with the data dictionary")
        return None
    stamp, export = data[-1]
    project = DATA_FILE.match(export.name).group("project")
    dicts = sorted((DICTIONARY_FILE.match(p.name).group("stamp"), DICTIONARY_FILE.match(p.name).group("project") == project, p)
                   for p in names if DICTIONARY_FILE.match(p.name))
    same = [d for d in dicts if d[1]]
    chosen = (same or dicts)[-1][2] if dicts else None
    return export, chosen


def dictionary_beside(data_file) -> Path | None:
    """The data dictionary next to a REDCap data export named as REDCap names it, if any."""
    p = Path(data_file)
    m = DATA_FILE.match(p.name)
    if not m or not p.parent.is_dir():
        return None
    found = sorted(q for q in p.parent.iterdir() if DICTIONARY_FILE.match(q.name)
                   and DICTIONARY_FILE.match(q.name).group("project") == m.group("project"))
    return found[-1] if found else None


def decode_export(frame: pd.DataFrame, dictionary: RedcapDictionary, file: str = ""
                  ) -> tuple[pd.DataFrame, dict[str, dict], list[Problem], list[str]]:
    """Apply a data dictionary to a raw REDCap export (column names as REDCap writes them).

    Radio, dropdown, yes/no and true/false codes become their labels (not for measure fields,
    whose codes are the values); checkbox columns ``<field>___<code>`` become one column of the
    checked labels joined by ``;``; ``<form>_complete``, notes, calc, descriptive and file fields
    are dropped; ``redcap_data_access_group`` becomes ``site`` where the project has no site field.

    A column the dictionary does not know (``redcap_dictionary``) and a code that is not one of
    its field's choices (``redcap_code``) are problems naming the field and the record.

    Returns
    -------
    frame : DataFrame
    measures : dict
        field -> {measure, side, pelvis, trial, rater, device, position} for measure fields.
    problems : list of Problem
    notes : list of str
        The fields left out on purpose (status, notes, calc, descriptive, file fields).
    """
    df = frame.copy()
    record_field = next(iter(dictionary.fields), "record_id")
    if record_field != "record_id" and record_field in df.columns and "record_id" not in df.columns:
        df = df.rename(columns={record_field: "record_id"})
    records = _records(df)
    status = [f"{form}_{kind}" for form in dictionary.forms for kind in ("complete", "timestamp")]
    drop = list(status)
    problems = _unknown_fields(df, dictionary, set(status), file)
    measures: dict[str, dict] = {}
    for f in dictionary.fields.values():
        spec = _measure_spec(f)
        if spec is not None:
            measures[f.name] = spec
        if f.type in IGNORED_TYPES:
            drop.append(f.name)
        elif f.type == "checkbox":
            boxes = {c: c.split("___", 1)[1] for c in df.columns if str(c).lower().startswith(f.name + "___")}
            if boxes:
                labels = {re.sub(r"[^0-9a-z]", "_", code.lower()): label for code, label in f.choices}
                for c, code in boxes.items():
                    if re.sub(r"[^0-9a-z]", "_", code.lower()) not in labels:
                        problems.append(Problem("sessions", file, None, c, None, "redcap_code",
                                                f"REDCap checkbox column '{c}': code '{code}' is not a choice of "
                                                f"field '{f.name}' in the data dictionary ({_codes(f)})"))
                    bad = ~df[c].astype(str).str.strip().str.lower().isin(("", "0", "1", "checked", "unchecked"))
                    problems += _code_problems(df, c, bad, records, file, "0 or 1 (unchecked or checked)")
                checked = [df[c].astype(str).str.strip().str.lower().isin(("1", "checked")) for c in boxes]
                names = [labels.get(re.sub(r"[^0-9a-z]", "_", code.lower()), code) for code in boxes.values()]
                df[f.name] = [";".join(n for n, on in zip(names, row) if on) for row in zip(*checked)]
                drop.extend(boxes)
        elif f.choices and f.name in df.columns:
            mapping = dict(f.choices)
            text = df[f.name].astype(str).str.strip()
            problems += _code_problems(df, f.name, (text != "") & ~text.isin(mapping), records, file, _codes(f))
            if spec is None:  # a measure's codes are its values (a 0-5 score)
                df[f.name] = df[f.name].map(lambda v, m=mapping: m.get(str(v).strip(), v))
    dropped = [c for c in dict.fromkeys(drop) if c in df.columns]
    notes = []
    if any(c in status for c in dropped):
        notes.append(f"{Path(file).name}: {sum(c in status for c in dropped)} REDCap form status field(s) not "
                     "read (<form>_complete, <form>_timestamp)")
    kinds = [f"{c} ({dictionary[c].type})" for c in dropped if c not in status and c in dictionary]
    if kinds:
        notes.append(f"{Path(file).name}: REDCap free-text, calculated, descriptive and file fields not read "
                     f"(never copied into a report): {', '.join(kinds)}")
    df = df.drop(columns=dropped)
    if "redcap_data_access_group" in df.columns:
        dag = df["redcap_data_access_group"].astype(str).str.strip()
        df["site"] = dag if "site" not in df.columns else df["site"].where(df["site"].astype(str).str.strip() != "", dag)
    return df, measures, problems, notes


def _records(df: pd.DataFrame) -> dict:
    rep = (df["redcap_repeat_instrument"].fillna("").astype(str) if "redcap_repeat_instrument" in df.columns
           else pd.Series("", index=df.index))
    inst = (df["redcap_repeat_instance"].fillna("").astype(str) if "redcap_repeat_instance" in df.columns
            else pd.Series("", index=df.index))
    ev = df["redcap_event_name"].astype(str) if "redcap_event_name" in df.columns else pd.Series("", index=df.index)
    rec = df["record_id"].astype(str) if "record_id" in df.columns else pd.Series("", index=df.index)
    return {int(r): (a, b, c, d) for r, a, b, c, d in zip(df[ROW], rec, ev, rep, inst)}


def _codes(f: RedcapField) -> str:
    return "codes " + ", ".join(f"{c} = {lab}" for c, lab in f.choices)


def _code_problems(df, column, bad, records, file, allowed) -> list[Problem]:
    """One ``redcap_code`` problem per cell of ``column`` whose code the data dictionary does not list."""
    return [Problem("participants", file, int(row), column, value, "redcap_code",
                    f"REDCap {_where(records.get(int(row)))}field '{column}': code '{value}' is not in the data "
                    f"dictionary ({allowed})")
            for row, value in zip(df.loc[bad, ROW], df.loc[bad, column])]


def _unknown_fields(df: pd.DataFrame, dictionary: RedcapDictionary, status: set, file: str) -> list[Problem]:
    """Export columns that the data dictionary does not define (an export and a dictionary of different
    project versions): each is a ``redcap_dictionary`` problem."""
    out = []
    for c in df.columns:
        name = str(c).lower()
        if c == ROW or name in _REDCAP_META or name in status or name in dictionary:
            continue
        if "___" in name and name.split("___", 1)[0] in dictionary:
            continue
        out.append(Problem("participants", file, None, str(c), None, "redcap_dictionary",
                           f"REDCap field '{c}' of the export is not in the data dictionary "
                           f"{Path(dictionary.file).name or ''}; export the data dictionary of the same project "
                           "version together with the data"))
    return out


def _measure_spec(f: RedcapField) -> dict | None:
    """How a dictionary field maps to measurement rows: the name rule, then ``@HIPSTATS(...)``."""
    ann = dict(f.annotation)
    if "ignore" in ann or f.type in IGNORED_TYPES or f.type in ("checkbox", "yesno", "truefalse"):
        return None
    spec = _name_spec(f.name)
    spec.update({k: v for k, v in ann.items() if k in ("measure", "side", "pelvis", "trial", "rater", "device",
                                                       "position")})
    if spec.get("measure") not in schema.MEASURES:
        return None
    return spec


def _name_spec(name: str) -> dict:
    """The field name rule ``<measure>[_side][_pelvis][_t<k>][_r<k>]``; ``_r2`` -> the event's field rater_2."""
    m = _PROJECT_FIELD.match(str(name))
    spec = {k: v for k, v in (m.groupdict() if m else {}).items() if v}
    if spec.get("rater", "").isdigit():
        spec["rater"] = f"rater_{spec['rater']}"
    return spec


def parse_event_map(text: str) -> dict:
    """An event map from the command line: a YAML/JSON file, or ``EVENT=VISIT[:WEEK]`` pairs.

    Each REDCap unique event name maps to a visit label and optionally its week, as the
    ``event_map`` key of ``hipstats.yaml`` does (``{event: {visit: ..., week: ...}}`` or
    ``{event: [visit, week]}`` or ``{event: visit}``).

    Examples
    --------
    >>> parse_event_map("enrol_arm_1=baseline:0, followup_arm_1=week_12:12")
    {'enrol_arm_1': ('baseline', 0.0), 'followup_arm_1': ('week_12', 12.0)}
    """
    from hipstats.errors import ParameterError  # noqa: PLC0415

    path = Path(text)
    if "=" not in text and path.suffix.lower() in (".yaml", ".yml", ".json"):
        import yaml  # noqa: PLC0415

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ParameterError(f"--event-map {text}: cannot read it ({type(err).__name__}: "
                                 f"{str(err)[:300]})") from None
        if isinstance(data, dict) and isinstance(data.get("event_map"), dict):
            data = data["event_map"]
        if not isinstance(data, dict) or not data:
            raise ParameterError(f"--event-map {text}: must map REDCap unique event names to visits "
                                 "(event: {visit: week_6, week: 6})")
        out = {}
        for event, v in data.items():
            if isinstance(v, dict) and set(v) <= {"visit", "week"} and "visit" in v:
                out[str(event)] = (str(v["visit"]), _week(v.get("week"), text, event))
            elif isinstance(v, (list, tuple)) and len(v) == 2:
                out[str(event)] = (str(v[0]), _week(v[1], text, event))
            elif isinstance(v, (str, int, float)) and not isinstance(v, bool):
                out[str(event)] = (str(v), None)
            else:
                raise ParameterError(f"--event-map {text}: event '{event}' must map to a visit label, "
                                     "[visit, week] or {visit: ..., week: ...}")
        return out
    out = {}
    for part in [p for p in text.split(",") if p.strip()]:
        event, eq, target = part.partition("=")
        visit, _, week = target.partition(":")
        if not eq or not event.strip() or not visit.strip():
            raise ParameterError(f"--event-map: '{part.strip()}' is not EVENT=VISIT[:WEEK] "
                                 "(e.g. baseline_arm_1=baseline:0), nor a .yaml/.json file")
        out[event.strip()] = (visit.strip(), _week(week.strip() or None, "--event-map", event.strip()))
    if not out:
        raise ParameterError("--event-map: no EVENT=VISIT[:WEEK] pairs given")
    return out


def _week(value, where, event) -> float | None:
    from hipstats.errors import ParameterError  # noqa: PLC0415

    if value is None or value == "":
        return None
    try:
        week = float(value)
    except (TypeError, ValueError):
        week = float("nan")
    if not np.isfinite(week):
        raise ParameterError(f"{where}: the week of event '{event}' must be a number, got '{value}'")
    return week
