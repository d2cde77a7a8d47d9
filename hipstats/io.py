"""Read cohort sources into raw tables: folders, single files, REDCap exports, SQL databases.

Readers only read. They never create, change or delete anything at the source
(SQLite files are opened read-only; a missing SQLite file is an error, not a new
empty database). Every cell is kept as it was typed so that validation can quote
it; each row carries ``_row``, the row number the user sees (header = row 1 for
CSV and Excel, record number for Parquet and SQL).

Source kinds
------------
folder
    ``measurements``, ``participants`` and optionally ``sessions`` as ``.csv``,
    ``.tsv``, ``.parquet`` or ``.xlsx`` files; an optional ``hipstats.yaml``
    declares ``arms`` (first = reference) and ``reference_arm``.
Excel workbook
    One ``.xlsx`` with sheets named after the tables.
single long file
    One ``.csv``/``.parquet``/``.xlsx`` in measurements format, with participant
    columns (arm, sex, age_years, ...) repeated on each row.
REDCap export
    A flat CSV export with ``record_id`` and ``redcap_event_name`` (see
    :func:`read_redcap`).
SQL database
    A SQLAlchemy URL (``sqlite:///cohort.db``, ``postgresql://...``) with tables
    named measurements, participants and sessions.

Examples
--------
>>> from hipstats.io import read_source
>>> raw, settings, label = read_source("data/example")   # doctest: +SKIP
>>> sorted(raw)                                          # doctest: +SKIP
['measurements', 'participants', 'sessions']
"""

from __future__ import annotations

import io as _io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hipstats import schema
from hipstats.errors import SourceError
from hipstats.validation import ROW, Problem

__all__ = ["RawTable", "read_source", "read_table_file", "read_redcap", "is_sql_url", "mask_url"]

TABLE_NAMES = ("measurements", "participants", "sessions")
REQUIRED_TABLES = ("measurements", "participants")
TEXT_EXT = {".csv", ".tsv", ".txt"}
EXCEL_EXT = {".xlsx", ".xlsm", ".xls"}
PARQUET_EXT = {".parquet", ".pq"}
SETTINGS_FILE = "hipstats.yaml"

_PARTICIPANT_COLUMNS = [c.name for c in schema.TABLES["participants"].columns if c.name != "participant_id"]


@dataclass
class RawTable:
    """Raw cells of one table as read from one file (or SQL table), before validation."""

    frame: pd.DataFrame | None
    file: str
    problems: list[Problem] = field(default_factory=list)
    decimal_comma: bool = False


def is_sql_url(source: Any) -> bool:
    """True for strings that look like SQLAlchemy URLs (``dialect[+driver]://...``)."""
    return isinstance(source, str) and bool(re.match(r"^[a-z][a-z0-9+]*://", source))


def mask_url(url: str) -> str:
    """Hide a password in a database URL for messages and manifests."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


# --------------------------------------------------------------------------- files
def _problem(table, file, rule, message, row=None, column=None, value=None) -> Problem:
    return Problem(table, file, row, column, value, rule, message)


def _decode(data: bytes, table: str, file: str) -> tuple[str | None, list[Problem]]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError as err:
            return None, [_problem(table, file, "encoding", f"file starts with a UTF-16 mark but cannot be decoded: {err.reason}")]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        bad = data[err.start: err.start + 1]
        guess = ""
        try:
            sample = data[max(0, err.start - 10): err.start + 10].decode("cp1252")
            guess = f" (it reads as Windows-1252/Latin-1 text: '...{sample.strip()}...')"
        except UnicodeDecodeError:
            pass
        return None, [_problem(table, file, "encoding",
                               f"file is not UTF-8: byte 0x{bad.hex().upper()} on row {line}{guess}; "
                               "re-save it as UTF-8 (in Excel: 'CSV UTF-8')", row=line, value=f"0x{bad.hex().upper()}")]


def _sniff_delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _read_text(path: Path, table: str) -> RawTable:
    file = str(path)
    data = path.read_bytes()
    if not data.strip():
        return RawTable(None, file, [_problem(table, file, "empty_file", "file is empty (no header, no rows)")])
    text, problems = _decode(data, table, file)
    if text is None:
        return RawTable(None, file, problems)
    sep = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(text)
    try:
        df = _parse_csv_text(text, sep)
    except pd.errors.ParserError as err:
        m = re.search(r"line (\d+)", str(err))
        row = int(m.group(1)) if m else None
        return RawTable(None, file, [_problem(table, file, "unreadable",
                                              f"cannot parse the file: {err}".strip(), row=row)])
    except pd.errors.EmptyDataError:
        return RawTable(None, file, [_problem(table, file, "empty_file", "file is empty (no header, no rows)")])
    if df.empty:
        return RawTable(None, file, [_problem(table, file, "empty_file", "file has a header but no data rows")])
    df.columns = [str(c).strip() for c in df.columns]
    df.insert(0, ROW, _text_rows(text, len(df)))
    return RawTable(df, file, problems, decimal_comma=(sep == ";"))


def _parse_csv_text(text: str, sep: str) -> pd.DataFrame:
    """All cells as strings; pyarrow's multithreaded reader for plain files, pandas' C parser otherwise.

    The C parser is the fallback for anything pyarrow refuses (ragged rows, odd quoting), and it
    names the offending line in its error message.
    """
    simple = "\n\n" not in text and '"' not in text and "\r" not in text
    if simple and len(text) > 1_000_000:
        try:
            df = pd.read_csv(_io.BytesIO(text.encode("utf-8")), sep=sep, dtype=str, keep_default_na=False,
                             engine="pyarrow")
            return df.apply(lambda col: col.str.strip()) if " " in text[:10_000] else df
        except Exception:  # fall back to the C parser, which gives line numbers
            pass
    return pd.read_csv(_io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                       skip_blank_lines=True, skipinitialspace=True)


def _text_rows(text: str, n: int) -> np.ndarray:
    """Row numbers of data rows in a text table (header = 1), skipping blank lines like pandas."""
    if "\n\n" not in text.strip("\n") and '"' not in text:
        return np.arange(2, n + 2)
    lines = text.splitlines()
    nonblank = [i + 1 for i, line in enumerate(lines) if line.strip()]
    rows = np.asarray(nonblank[1: n + 1], dtype=int)
    if len(rows) < n:  # quoted newlines: fall back to sequential numbering
        rows = np.arange(2, n + 2)
    return rows


def _read_excel_sheet(df: pd.DataFrame, table: str, file: str) -> RawTable:
    df = df.dropna(how="all")
    if df.empty:
        return RawTable(None, file, [_problem(table, file, "empty_file", "sheet is empty")])
    required = {c.name for c in schema.TABLES[table].required_columns}
    header_at = None
    for i in range(min(len(df), 15)):
        names = {schema.normalise_column_name(v) for v in df.iloc[i].tolist() if isinstance(v, str)}
        if required <= names or (table == "measurements" and {"participant_id", "measure", "value"} <= names):
            header_at = i
            break
    first_index = int(df.index[0])
    if header_at is not None and int(df.index[header_at]) != 0:
        sheet_row = int(df.index[header_at]) + 1
        return RawTable(None, file, [_problem(
            table, file, "excel_header",
            f"the header is on row {sheet_row}, not row 1; delete the {sheet_row - 1} row(s) above it "
            "(titles, notes, merged cells) so the column names are on the first row",
            row=sheet_row)])
    header_idx = first_index if header_at is None else int(df.index[header_at])
    header = [str(v).strip() if not (isinstance(v, float) and np.isnan(v)) else f"unnamed_{j}"
              for j, v in enumerate(df.loc[header_idx].tolist())]
    body = df.loc[df.index > header_idx]
    if body.empty:
        return RawTable(None, file, [_problem(table, file, "empty_file", "sheet has a header but no data rows")])
    body = body.copy()
    body.columns = header
    body = body.loc[:, [c for c in header if not c.startswith("unnamed_")]]
    body.insert(0, ROW, (body.index.to_numpy() + 1).astype(int))
    return RawTable(body.reset_index(drop=True), file)


def read_table_file(path: str | Path, table: str, sheet: str | int | None = None) -> RawTable:
    """Read one table from a CSV/TSV, Parquet or Excel file, keeping cells as typed.

    Parameters
    ----------
    path : path-like
    table : {"measurements", "participants", "sessions"}
    sheet : str or int, optional
        Excel sheet; default the sheet named like the table, else the first.
    """
    path = Path(path)
    file = str(path)
    ext = path.suffix.lower()
    try:
        if ext in TEXT_EXT:
            return _read_text(path, table)
        if ext in PARQUET_EXT:
            df = pd.read_parquet(path)
            if df.empty:
                return RawTable(None, file, [_problem(table, file, "empty_file", "file has no rows")])
            df = df.reset_index(drop=True)
            df.insert(0, ROW, np.arange(1, len(df) + 1))
            return RawTable(df, file)
        if ext in EXCEL_EXT:
            if path.stat().st_size == 0:
                return RawTable(None, file, [_problem(table, file, "empty_file", "file is empty")])
            sheets = pd.read_excel(path, sheet_name=None, header=None, dtype=object)
            if sheet is None:
                names = {schema.normalise_column_name(k): k for k in sheets}
                sheet = names.get(table, next(iter(sheets)))
            return _read_excel_sheet(sheets[sheet], table, f"{file}[{sheet}]")
    except Exception as err:  # a broken file must become a report line, not a traceback
        return RawTable(None, file, [_problem(table, file, "unreadable",
                                              f"cannot read the file ({type(err).__name__}: {err})")])
    return RawTable(None, file, [_problem(table, file, "unreadable",
                                          f"unknown file type '{ext}' (use .csv, .tsv, .parquet or .xlsx)")])


# --------------------------------------------------------------------------- settings
def _read_settings(folder: Path, arms=None) -> schema.ContractSettings:
    data: dict = {}
    f = folder / SETTINGS_FILE
    if f.is_file():
        import yaml

        try:
            data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise SourceError(f"{f}: not valid YAML ({err})") from None
        if not isinstance(data, dict):
            raise SourceError(f"{f}: expected a mapping with keys such as 'arms' and 'reference_arm'")
    arms = tuple(arms) if arms is not None else tuple(data.get("arms") or schema.DEFAULT_ARMS)
    arms = tuple(str(a).strip().lower().replace(" ", "_") for a in arms)
    ref = data.get("reference_arm")
    if ref is not None and ref not in arms:
        raise SourceError(f"{f}: reference_arm '{ref}' is not among arms {list(arms)}")
    extra = {k: v for k, v in data.items() if k not in ("arms", "reference_arm")}
    return schema.ContractSettings(arms=arms, reference_arm=ref, extra=extra)


# --------------------------------------------------------------------------- splitting
def _split_long(raw: RawTable) -> dict[str, RawTable]:
    """Split a single long file (measurements + participant columns) into two tables."""
    df = raw.frame
    norm = {c: schema.normalise_column_name(c) for c in df.columns}
    part_cols = [c for c in df.columns if norm[c] in _PARTICIPANT_COLUMNS or norm[c] in ("group",)]
    id_col = next((c for c in df.columns if norm[c] in ("participant_id", "id", "subject_id", "pid")), None)
    if id_col is None or not part_cols:
        return {"measurements": raw}
    participants = df[[ROW, id_col, *part_cols]].copy()
    participants[id_col] = participants[id_col].astype(str).str.strip()
    participants = participants.drop_duplicates(subset=[id_col], keep="first")
    measurements = df.drop(columns=part_cols)
    return {
        "measurements": RawTable(measurements, raw.file, raw.problems, raw.decimal_comma),
        "participants": RawTable(participants.reset_index(drop=True), raw.file, [], raw.decimal_comma),
    }


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
    cols = {schema.normalise_column_name(c) for c in frame.columns}
    return {"record_id", "redcap_event_name"} <= cols


def _event_to_visit(event: str, event_map: dict | None) -> tuple[str, float | None]:
    if event_map and event in event_map:
        v = event_map[event]
        return (v[0], float(v[1])) if isinstance(v, (tuple, list)) else (str(v), None)
    label = re.sub(r"_arm_\d+$", "", str(event).strip().lower())
    from hipstats.validation import _label_week

    return label, _label_week(label)


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
    pcols = [c for c in df.columns if c in _PARTICIPANT_COLUMNS]
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
        out["measurements"] = RawTable(None, file, [_problem("measurements", file, "required_column",
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


# --------------------------------------------------------------------------- SQL
def _read_sql(url: str, tables: dict | None) -> dict[str, RawTable]:
    import sqlalchemy as sa

    names = {t: t for t in TABLE_NAMES}
    names.update(tables or {})
    shown = mask_url(url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        path = Path(url[len("sqlite:///"):].split("?", 1)[0])
        if not path.is_file():
            raise SourceError(f"{shown}: SQLite file '{path}' does not exist (it is not created)")
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            present = set(inspector.get_table_names())
            out: dict[str, RawTable] = {}
            for table, sql_name in names.items():
                label = f"{shown}#{sql_name}"
                if sql_name not in present:
                    if table in REQUIRED_TABLES:
                        out[table] = RawTable(None, label, [_problem(
                            table, label, "missing_table",
                            f"table '{sql_name}' not found in the database (tables: {', '.join(sorted(present)) or 'none'})")])
                    continue
                df = pd.read_sql_table(sql_name, conn)
                if df.empty:
                    out[table] = RawTable(None, label, [_problem(table, label, "empty_file", "table has no rows")])
                    continue
                df.insert(0, ROW, np.arange(1, len(df) + 1))
                out[table] = RawTable(df, label)
    except SourceError:
        raise
    except Exception as err:
        raise SourceError(f"{shown}: cannot read the database ({type(err).__name__}: {err})") from None
    finally:
        try:
            engine.dispose()
        except Exception:
            pass
    return out


# --------------------------------------------------------------------------- dispatch
def _find_table_files(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    found: dict[str, list[Path]] = {t: [] for t in TABLE_NAMES}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith((".", "~$")):
            continue
        ext = p.suffix.lower()
        if ext not in TEXT_EXT | EXCEL_EXT | PARQUET_EXT:
            continue
        stem = schema.normalise_column_name(p.stem)
        if stem in found:
            found[stem].append(p)
    problems = []
    files: dict[str, Path] = {}
    for t, paths in found.items():
        if len(paths) > 1:
            problems.append(_problem(t, str(folder), "ambiguous_table",
                                     f"several files for table '{t}': {', '.join(p.name for p in paths)}; keep one"))
        elif paths:
            files[t] = paths[0]
    return files, problems


def read_source(source, *, arms=None, tables=None, event_map=None):
    """Read any supported source into raw tables.

    Returns
    -------
    raw : dict of RawTable
    settings : hipstats.schema.ContractSettings
    label : str
        Human-readable name of the source (password masked).

    Raises
    ------
    SourceError
        When the source does not exist or cannot be opened at all.
    """
    if is_sql_url(str(source)):
        url = str(source)
        arm_list = tuple(arms) if arms is not None else schema.DEFAULT_ARMS
        return _read_sql(url, tables), schema.ContractSettings(arms=arm_list), mask_url(url)
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_dir():
        settings = _read_settings(path, arms)
        files, problems = _find_table_files(path)
        raw: dict[str, RawTable] = {}
        if len(files) == 1 and "measurements" in files and not problems:
            single = read_table_file(files["measurements"], "measurements")
            if single.frame is not None and is_redcap(single.frame):
                return read_redcap(single, event_map), settings, str(path)
        for t in TABLE_NAMES:
            if t in files:
                raw[t] = read_table_file(files[t], t)
            elif t in REQUIRED_TABLES:
                raw[t] = RawTable(None, str(path / f"{t}.csv"), [_problem(
                    t, str(path), "missing_table",
                    f"no '{t}' table in the folder (expected {t}.csv, {t}.parquet or {t}.xlsx)")])
        if problems:
            first = next(iter(raw.values()), None)
            if first is not None:
                first.problems.extend(problems)
        if raw.get("measurements") and raw["measurements"].frame is not None and "participants" not in files:
            split = _split_long(raw["measurements"])
            if "participants" in split:
                raw.update(split)
        return raw, settings, str(path)
    settings = _read_settings(path.parent, arms)
    ext = path.suffix.lower()
    if ext in EXCEL_EXT:
        try:
            sheet_names = list(pd.ExcelFile(path).sheet_names)
        except Exception as err:
            return {"measurements": RawTable(None, str(path), [_problem(
                "measurements", str(path), "unreadable", f"cannot read the workbook ({type(err).__name__}: {err})")])}, \
                settings, str(path)
        normalised = {schema.normalise_column_name(s): s for s in sheet_names}
        if "measurements" in normalised:
            raw = {t: read_table_file(path, t, normalised[t]) for t in TABLE_NAMES if t in normalised}
            if "participants" not in raw:
                raw.update(_split_long(raw["measurements"]))
            return raw, settings, str(path)
    single = read_table_file(path, "measurements")
    if single.frame is None:
        return {"measurements": single}, settings, str(path)
    if is_redcap(single.frame):
        return read_redcap(single, event_map), settings, str(path)
    raw = _split_long(single)
    if "participants" not in raw:
        raw["participants"] = RawTable(None, str(path), [_problem(
            "participants", str(path), "missing_table",
            "a single file must carry the participant columns (at least 'arm') beside the measurements")])
    return raw, settings, str(path)
