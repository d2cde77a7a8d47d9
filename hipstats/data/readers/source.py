"""Read a cohort source of any kind into raw tables: a folder of table files (with an
optional ``hipstats.yaml``), one Excel workbook, one long file, a REDCap export or an SQL
database (see :mod:`hipstats.data.readers`).

Readers only read. They never create, change or delete anything at the source
(SQLite files are opened read-only; a missing SQLite file is an error, not a new
empty database). Every cell is kept as it was typed so that validation can quote
it; each row carries ``_row``, the row number the user sees (header = row 1 for
CSV and Excel, record number for Parquet and SQL).

Examples
--------
>>> from hipstats.data.readers.source import read_source
>>> raw, settings, label = read_source("data/example")   # doctest: +SKIP
>>> sorted(raw)                                          # doctest: +SKIP
['measurements', 'participants', 'sessions']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from hipstats.data import schema
from hipstats.data.problems import Problem, ROW
from hipstats.data.readers.files import (
    EXCEL_EXT,
    PARQUET_EXT,
    PARTICIPANT_COLUMNS,
    RawTable,
    read_table_file,
    REQUIRED_TABLES,
    source_problem,
    STATS_EXT,
    TABLE_NAMES,
    TEXT_EXT,
)
from hipstats.data.readers.redcap import (RedcapDictionary, dictionary_beside, find_redcap_project, is_redcap,
                                           read_redcap)
from hipstats.data.readers.stats_files import read_stats_file
from hipstats.data.readers.sql import is_sql_url, mask_url, read_sql
from hipstats.errors import SourceError

__all__ = ["read_settings", "read_source"]


SETTINGS_FILE = "hipstats.yaml"


# --------------------------------------------------------------------------- settings
def read_settings(f: Path | None, arms=None, *, advice: str | None = None) -> schema.ContractSettings:
    """The settings of a cohort from a settings file (``hipstats.yaml`` layout), for any source.

    Parameters
    ----------
    f : path-like or None
        The settings file; None or a file that does not exist gives the defaults.
    arms : sequence of str, optional
        Arms that override the file's ``arms``.
    advice : str, optional
        Where this source's arms are declared, for an ``unknown_arm`` problem (default: the file).

    Examples
    --------
    >>> from hipstats.data.readers.source import read_settings
    >>> read_settings(None, ["usual care", "hip loading"]).arms
    ('usual_care', 'hip_loading')
    """
    data: dict = {}
    if f is not None and Path(f).is_file():
        import yaml

        f = Path(f)
        try:
            raw = f.read_bytes()
            if len(raw) > 1_000_000:
                raise SourceError(f"{f}: larger than 1,000,000 bytes; a settings file holds a few lines")
            data = yaml.load(raw.decode("utf-8"), Loader=yaml.SafeLoader) or {}  # noqa: S506
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise SourceError(f"{f}: not UTF-8 (byte 0x{raw[err.start:err.start + 1].hex().upper()} on line {line}); "
                              "re-save it as UTF-8") from None
        except OSError as err:
            raise SourceError(f"{f}: cannot be read ({err.strerror or err})") from None
        except (yaml.YAMLError, RecursionError) as err:
            raise SourceError(f"{f}: not valid YAML ({str(err)[:300]})") from None
        if not isinstance(data, dict):
            raise SourceError(f"{f}: expected a mapping with keys such as 'arms' and 'reference_arm'")
    given = data.get("arms")
    if isinstance(given, str):  # arms: control, loading (a single word is not a list of arms: refused below)
        parts = [a.strip() for a in given.split(",") if a.strip()]
        given = parts if len(parts) >= 2 else given
    if arms is None and given is not None and not (
            isinstance(given, (list, tuple)) and given and all(isinstance(a, str) and a.strip() for a in given)):
        raise SourceError(f"{f}: 'arms' must be a list of arm labels such as [control, stretching, loading], "
                          f"got {str(given)[:100]!r}")
    arms = tuple(arms) if arms is not None else tuple(given or schema.DEFAULT_ARMS)
    arms = tuple(str(a).strip().lower().replace(" ", "_") for a in arms)
    ref = data.get("reference_arm")
    if ref is not None:
        ref = str(ref).strip().lower().replace(" ", "_")
        if ref not in arms:
            raise SourceError(f"{f}: reference_arm '{ref}' is not among arms {list(arms)}")
    extra = {k: v for k, v in data.items() if k not in ("arms", "reference_arm")}
    if advice is None:
        advice = f"declare the arm in {f} (arms: [...]) or pass --arms" if f is not None else \
            "pass --arms (reference first) or a settings file with --config FILE (arms: [...])"
    return schema.ContractSettings(arms=arms, reference_arm=ref, extra=extra, arms_advice=advice)


def _folder_settings(folder: Path, arms, config) -> schema.ContractSettings:
    """A ``--config`` file wins over the folder's own ``hipstats.yaml``."""
    if config is not None:
        return read_settings(Path(config), arms)
    own = folder / SETTINGS_FILE
    return read_settings(own, arms, advice=f"declare the arm in {own} (arms: [...]), pass --arms or "
                                           "--config FILE")


def _with_metadata(raw: dict[str, RawTable], settings: schema.ContractSettings) -> schema.ContractSettings:
    """Settings carrying what the readers kept beside the cells (variable labels, counted notes)."""
    labels = {t: dict(rt.column_labels) for t, rt in raw.items() if getattr(rt, "column_labels", None)}
    notes = tuple(n for rt in raw.values() for n in (getattr(rt, "notes", None) or ()))
    if not labels and not notes:
        return settings
    return dataclasses.replace(settings, variable_labels=labels, notes=settings.notes + notes)


def _read_table(path: Path, table: str, sheet=None) -> RawTable:
    """One table file of any kind: SPSS/Stata files by :mod:`~hipstats.data.readers.stats_files`."""
    if Path(path).suffix.lower() in STATS_EXT:
        return read_stats_file(path, table)
    return read_table_file(path, table, sheet)


# --------------------------------------------------------------------------- splitting
def _split_long(raw: RawTable) -> dict[str, RawTable]:
    """Split a single long file (measurements + participant columns) into two tables."""
    df = raw.frame
    norm = {c: schema.normalise_column_name(c) for c in df.columns}
    part_cols = [c for c in df.columns if norm[c] in PARTICIPANT_COLUMNS or norm[c] in ("group",)]
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


def _read_redcap_file(export: Path, event_map, dictionary) -> dict[str, RawTable]:
    single = read_table_file(export, "measurements")
    if single.frame is None:
        return {"measurements": single}
    return read_redcap(single, event_map, RedcapDictionary.read(dictionary) if dictionary else None)


# --------------------------------------------------------------------------- dispatch
def _find_table_files(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    found: dict[str, list[Path]] = {t: [] for t in TABLE_NAMES}
    try:
        entries = sorted(folder.iterdir())
    except OSError as err:
        raise SourceError(f"{folder}: the folder cannot be read ({err.strerror or err})") from None
    for p in entries:
        if not p.is_file() or p.name.startswith((".", "~$")):
            continue
        ext = p.suffix.lower()
        if ext not in TEXT_EXT | EXCEL_EXT | PARQUET_EXT | STATS_EXT:
            continue
        stem = schema.normalise_column_name(p.stem)
        if stem in found:
            found[stem].append(p)
    problems = []
    files: dict[str, Path] = {}
    for t, paths in found.items():
        if len(paths) > 1:
            problems.append(source_problem(t, str(folder), "ambiguous_table",
                                     f"several files for table '{t}': {', '.join(p.name for p in paths)}; keep one"))
        elif paths:
            files[t] = paths[0]
    return files, problems


def read_source(source, *, arms=None, tables=None, event_map=None, config=None, dictionary=None):
    """Read any supported source into raw tables.

    Parameters
    ----------
    source : str or path-like
        A folder of tables (CSV, Parquet, Excel, SPSS, Stata), one file, a REDCap export or an
        SQLAlchemy URL (``postgresql://``, ``sqlite:///``).
    arms : sequence of str, optional
        Allowed arms, reference first; override the settings file.
    tables : dict, optional
        SQL table names when they differ from measurements/participants/sessions.
    event_map : dict, optional
        REDCap event name -> visit label and week.
    config : path-like, optional
        A settings file (``hipstats.yaml`` layout: arms, reference_arm, view settings,
        event_map) for any source kind; it replaces a folder's own ``hipstats.yaml``. A
        database or a single file is configured only this way (or with ``arms``).
    dictionary : path-like, optional
        A REDCap data dictionary for a REDCap data export (default: the dictionary found beside
        it by REDCap's file names). A folder holding a REDCap project export under REDCap's own
        file names (``<Project>_DATA_<date>.csv`` and ``<Project>_DataDictionary_<date>.csv``)
        is read with its dictionary (:func:`~hipstats.data.readers.redcap.find_redcap_project`).

    Returns
    -------
    raw : dict of RawTable
    settings : hipstats.data.schema.ContractSettings
    label : str
        Human-readable name of the source (password masked).

    Raises
    ------
    SourceError
        When the source does not exist or cannot be opened at all.
    """
    if config is not None and not Path(config).is_file():
        raise SourceError(f"{config}: settings file (--config) does not exist")
    if is_sql_url(str(source)):
        url = str(source)
        settings = read_settings(Path(config) if config is not None else None, arms)
        return read_sql(url, tables), settings, mask_url(url)
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    raw, settings, label = _read_path(path, arms, event_map, config, dictionary)
    return raw, _with_metadata(raw, settings), label


def _read_path(path: Path, arms, event_map, config, dictionary=None):
    if path.is_dir():
        settings = _folder_settings(path, arms, config)
        if event_map is None:  # hipstats.yaml / --config: event_map
            event_map = settings.extra.get("event_map")
        project = find_redcap_project(path)
        if project is not None:
            export, found = project
            return _read_redcap_file(export, event_map, dictionary or found), settings, str(path)
        files, problems = _find_table_files(path)
        raw: dict[str, RawTable] = {}
        if len(files) == 1 and "measurements" in files and not problems:
            single = _read_table(files["measurements"], "measurements")
            if single.frame is not None and is_redcap(single.frame):
                return read_redcap(single, event_map), settings, str(path)
        for t in TABLE_NAMES:
            if t in files:
                raw[t] = _read_table(files[t], t)
            elif t in REQUIRED_TABLES:
                raw[t] = RawTable(None, str(path / f"{t}.csv"), [source_problem(
                    t, str(path), "missing_table",
                    f"no '{t}' table in the folder (expected {t}.csv, {t}.parquet, {t}.xlsx, {t}.sav or {t}.dta)")])
        if problems:
            first = next(iter(raw.values()), None)
            if first is not None:
                first.problems.extend(problems)
        if raw.get("measurements") and raw["measurements"].frame is not None and "participants" not in files:
            split = _split_long(raw["measurements"])
            if "participants" in split:
                raw.update(split)
        return raw, settings, str(path)
    settings = _folder_settings(path.parent, arms, config)
    if event_map is None:
        event_map = settings.extra.get("event_map")
    ext = path.suffix.lower()
    if ext in EXCEL_EXT:
        try:
            sheet_names = list(pd.ExcelFile(path).sheet_names)
        except Exception as err:
            return {"measurements": RawTable(None, str(path), [source_problem(
                "measurements", str(path), "unreadable", f"cannot read the workbook ({type(err).__name__}: {err})")])}, \
                settings, str(path)
        normalised = {schema.normalise_column_name(s): s for s in sheet_names}
        if "measurements" in normalised:
            raw = {t: _read_table(path, t, normalised[t]) for t in TABLE_NAMES if t in normalised}
            if "participants" not in raw:
                raw.update(_split_long(raw["measurements"]))
            return raw, settings, str(path)
    single = _read_table(path, "measurements")
    if single.frame is None:
        return {"measurements": single}, settings, str(path)
    if is_redcap(single.frame):
        dictionary = dictionary or dictionary_beside(path)
        return read_redcap(single, event_map, RedcapDictionary.read(dictionary) if dictionary else None), \
            settings, str(path)
    raw = _split_long(single)
    if "participants" not in raw:
        raw["participants"] = RawTable(None, str(path), [source_problem(
            "participants", str(path), "missing_table",
            "a single file must carry the participant columns (at least 'arm') beside the measurements")])
    return raw, settings, str(path)
