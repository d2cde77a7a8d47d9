"""Read one table file: CSV/TSV (delimiter sniffed, UTF-8 or UTF-16 with a BOM), Parquet or
an Excel sheet, into a :class:`RawTable` whose rows keep the number the user sees (header =
row 1 for CSV and Excel, record number for Parquet).

Examples
--------
>>> from hipstats.data.readers.files import read_table_file
>>> raw = read_table_file("data/example/participants.csv", "participants")   # doctest: +SKIP
>>> raw.problems                                                              # doctest: +SKIP
[]
"""

from __future__ import annotations

import io as _io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hipstats.data import schema
from hipstats.data.problems import Problem, ROW

__all__ = [
    "RawTable", "read_table_file", "TABLE_NAMES", "REQUIRED_TABLES", "PARTICIPANT_COLUMNS",
    "source_problem"
]


TABLE_NAMES = ("measurements", "participants", "sessions")
REQUIRED_TABLES = ("measurements", "participants")
TEXT_EXT = {".csv", ".tsv", ".txt"}
EXCEL_EXT = {".xlsx", ".xlsm", ".xls"}
PARQUET_EXT = {".parquet", ".pq"}

PARTICIPANT_COLUMNS = [c.name for c in schema.TABLES["participants"].columns if c.name != "participant_id"]


@dataclass
class RawTable:
    """Raw cells of one table as read from one file (or SQL table), before validation."""

    frame: pd.DataFrame | None
    file: str
    problems: list[Problem] = field(default_factory=list)
    decimal_comma: bool = False


# --------------------------------------------------------------------------- files
def source_problem(table, file, rule, message, row=None, column=None, value=None) -> Problem:
    """A :class:`~hipstats.data.problems.Problem` found while reading (argument order of the
    readers: table, file, rule, message, then where)."""
    return Problem(table, file, row, column, value, rule, message)


def _decode(data: bytes, table: str, file: str) -> tuple[str | None, list[Problem]]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError as err:
            return None, [source_problem(table, file, "encoding", f"file starts with a UTF-16 mark but cannot be decoded: {err.reason}")]
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
        return None, [source_problem(table, file, "encoding",
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
        return RawTable(None, file, [source_problem(table, file, "empty_file", "file is empty (no header, no rows)")])
    text, problems = _decode(data, table, file)
    if text is None:
        return RawTable(None, file, problems)
    sep = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(text)
    try:
        df = _parse_csv_text(text, sep)
    except pd.errors.ParserError as err:
        m = re.search(r"line (\d+)", str(err))
        row = int(m.group(1)) if m else None
        return RawTable(None, file, [source_problem(table, file, "unreadable",
                                              f"cannot parse the file: {err}".strip(), row=row)])
    except pd.errors.EmptyDataError:
        return RawTable(None, file, [source_problem(table, file, "empty_file", "file is empty (no header, no rows)")])
    if df.empty:
        return RawTable(None, file, [source_problem(table, file, "empty_file", "file has a header but no data rows")])
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
        return RawTable(None, file, [source_problem(table, file, "empty_file", "sheet is empty")])
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
        return RawTable(None, file, [source_problem(
            table, file, "excel_header",
            f"the header is on row {sheet_row}, not row 1; delete the {sheet_row - 1} row(s) above it "
            "(titles, notes, merged cells) so the column names are on the first row",
            row=sheet_row)])
    header_idx = first_index if header_at is None else int(df.index[header_at])
    header = [str(v).strip() if not (isinstance(v, float) and np.isnan(v)) else f"unnamed_{j}"
              for j, v in enumerate(df.loc[header_idx].tolist())]
    body = df.loc[df.index > header_idx]
    if body.empty:
        return RawTable(None, file, [source_problem(table, file, "empty_file", "sheet has a header but no data rows")])
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
                return RawTable(None, file, [source_problem(table, file, "empty_file", "file has no rows")])
            df = df.reset_index(drop=True)
            df.insert(0, ROW, np.arange(1, len(df) + 1))
            return RawTable(df, file)
        if ext in EXCEL_EXT:
            if path.stat().st_size == 0:
                return RawTable(None, file, [source_problem(table, file, "empty_file", "file is empty")])
            sheets = pd.read_excel(path, sheet_name=None, header=None, dtype=object)
            if sheet is None:
                names = {schema.normalise_column_name(k): k for k in sheets}
                sheet = names.get(table, next(iter(sheets)))
            return _read_excel_sheet(sheets[sheet], table, f"{file}[{sheet}]")
    except Exception as err:  # a broken file must become a report line, not a traceback
        return RawTable(None, file, [source_problem(table, file, "unreadable",
                                              f"cannot read the file ({type(err).__name__}: {err})")])
    return RawTable(None, file, [source_problem(table, file, "unreadable",
                                          f"unknown file type '{ext}' (use .csv, .tsv, .parquet or .xlsx)")])
