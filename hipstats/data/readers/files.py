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
from typing import Callable

import numpy as np
import pandas as pd

from hipstats.data import limits, schema
from hipstats.data.problems import Problem, ROW

__all__ = [
    "RawTable", "read_table_file", "TABLE_NAMES", "REQUIRED_TABLES", "PARTICIPANT_COLUMNS",
    "source_problem", "STATS_EXT", "check_size"
]


TABLE_NAMES = ("measurements", "participants", "sessions")
REQUIRED_TABLES = ("measurements", "participants")
TEXT_EXT = {".csv", ".tsv", ".txt"}
EXCEL_EXT = {".xlsx", ".xlsm", ".xls"}
PARQUET_EXT = {".parquet", ".pq"}
STATS_EXT = {".sav", ".zsav", ".por", ".dta"}  # SPSS and Stata: read by hipstats.data.readers.stats_files

PARTICIPANT_COLUMNS = [c.name for c in schema.TABLES["participants"].columns if c.name != "participant_id"]


@dataclass
class RawTable:
    """Raw cells of one table as read from one file (or SQL table), before validation."""

    frame: pd.DataFrame | None
    file: str
    problems: list[Problem] = field(default_factory=list)
    decimal_comma: bool = False
    #: Variable labels of the source (SPSS/Stata): column -> label; metadata only.
    column_labels: dict = field(default_factory=dict)
    #: What reading counted but did not refuse (user-missing codes read as missing).
    notes: list = field(default_factory=list)
    #: Columns the source itself flags as direct identifiers (REDCap's "Identifier?"): refused.
    identifier_fields: tuple[str, ...] = ()
    #: Rewrites a problem into the source's own terms (REDCap field and record), or None.
    locate: Callable[[Problem], Problem] | None = None
    #: Other files the table was read with (a REDCap data dictionary), for the manifest.
    also_read: tuple[str, ...] = ()


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
    if b"\x00" in data[:4096]:
        head = data[:4096]
        utf16 = max(head[0::2].count(0), head[1::2].count(0)) > len(head) // 8
        return None, [source_problem(table, file, "encoding",
                                     "file looks like UTF-16 text without a byte-order mark; re-save it as UTF-8 "
                                     "(in Excel: 'CSV UTF-8')" if utf16 else
                                     "file holds NUL bytes: it is not a text table")]
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
    """The delimiter of the header line, ignoring trailing whitespace (``a,b,c\t\t\t`` is comma-separated)."""
    first = text.split("\n", 1)[0].rstrip()
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _check_size(path: Path, table: str) -> list[Problem]:
    size = path.stat().st_size
    if size > limits.limit("file_bytes"):
        return [source_problem(table, str(path), "limit", limits.over_limit("file_bytes", size, "the file"))]
    return []


def _check_cells(df: pd.DataFrame, table: str, file: str) -> list[Problem]:
    """Cells longer than the limit (each such column once, first row named); they are emptied."""
    out, n_max = [], limits.limit("cell_chars")
    for c in df.columns:
        if c == ROW or not (pd.api.types.is_object_dtype(df[c]) or pd.api.types.is_string_dtype(df[c])):
            continue
        lengths = df[c].map(lambda v: len(v) if isinstance(v, str) else 0)
        long = lengths > n_max
        if long.any():
            i = int(np.flatnonzero(long.to_numpy())[0])
            row = int(df[ROW].iloc[i]) if ROW in df.columns else None
            out.append(source_problem(table, file, "limit", limits.over_limit(
                "cell_chars", int(lengths.iloc[i]), f"a cell of column '{limits.cut_value(str(c), 80)}'"),
                row=row, column=str(c), value=limits.cut_value(df[c].iloc[i])))
            df[c] = df[c].where(~long, None)
    return out


def _read_text(path: Path, table: str) -> RawTable:
    file = str(path)
    too_big = _check_size(path, table)
    if too_big:
        return RawTable(None, file, too_big)
    data = path.read_bytes()
    if not data.strip():
        return RawTable(None, file, [source_problem(table, file, "empty_file", "file is empty (no header, no rows)")])
    text, problems = _decode(data, table, file)
    if text is None:
        return RawTable(None, file, problems)
    sep = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(text)
    n_cols = text.split("\n", 1)[0].rstrip().count(sep) + 1
    if n_cols > limits.limit("columns"):
        return RawTable(None, file, [source_problem(table, file, "limit",
                                                    limits.over_limit("columns", n_cols, "the header"), row=1)])
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
    df.insert(0, ROW, _text_rows(text, len(df), sep))
    problems = problems + _check_cells(df, table, file)
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


def _text_rows(text: str, n: int, sep: str = ",") -> np.ndarray:
    """Line on which each data row starts (header = line 1), skipping blank lines like pandas.

    A quoted cell may span several lines; the rows after it keep the line numbers an editor shows.
    """
    if "\n\n" not in text.strip("\n") and '"' not in text:
        return np.arange(2, n + 2)
    import csv  # noqa: PLC0415

    starts, line = [], 1
    reader = csv.reader(_io.StringIO(text), delimiter=sep)
    for record in reader:
        if any(f.strip() for f in record):
            starts.append(line)
        line = reader.line_num + 1
    rows = np.asarray(starts[1: n + 1], dtype=int)
    if len(rows) < n:  # the csv module read the quoting differently from pandas: number in order
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
            bad = _check_size(path, table) or _check_parquet(path, table)
            if bad:
                return RawTable(None, file, bad)
            df = pd.read_parquet(path)
            if df.empty:
                return RawTable(None, file, [source_problem(table, file, "empty_file", "file has no rows")])
            df = df.reset_index(drop=True)
            df.insert(0, ROW, np.arange(1, len(df) + 1))
            return RawTable(df, file)
        if ext in EXCEL_EXT:
            if path.stat().st_size == 0:
                return RawTable(None, file, [source_problem(table, file, "empty_file", "file is empty")])
            bad = _check_size(path, table)
            if bad:
                return RawTable(None, file, bad)
            import zipfile  # noqa: PLC0415

            scanned = scan_workbook(path, table) if zipfile.is_zipfile(path) else {}
            if "" in scanned:  # the workbook as a whole is over a limit
                return RawTable(None, file, scanned[""])
            if not scanned:
                scanned = {k: [] for k in pd.ExcelFile(path).sheet_names}
            if sheet is None:
                names = {schema.normalise_column_name(k): k for k in scanned}
                sheet = names.get(table, next(iter(scanned), None))
            blocking = [p for p in scanned.get(sheet, []) if p.rule == "limit"]
            if blocking:
                return RawTable(None, f"{file}[{sheet}]", blocking)
            frame = pd.read_excel(path, sheet_name=sheet, header=None, dtype=object)
            rt = _read_excel_sheet(frame, table, f"{file}[{sheet}]")
            rt.problems[:0] = [Problem(p.table, f"{file}[{sheet}]", p.row, p.column, p.value, p.rule, p.message)
                               for p in scanned.get(sheet, [])]
            if rt.frame is not None:
                rt.problems += _check_cells(rt.frame, table, rt.file)
            return rt
    except Exception as err:  # a broken file must become a report line, not a traceback
        return RawTable(None, file, [source_problem(table, file, "unreadable",
                                              f"cannot read the file ({type(err).__name__}: {err})")])
    return RawTable(None, file, [source_problem(table, file, "unreadable",
                                          f"unknown file type '{ext}' (use .csv, .tsv, .parquet, .xlsx, "
                                          "SPSS .sav/.zsav/.por or Stata .dta)")])


def check_size(path, table: str) -> list[Problem]:
    """A ``limit`` problem when the file is over the size limit (:mod:`hipstats.data.limits`), else none."""
    return _check_size(Path(path), table)


def _check_parquet(path: Path, table: str) -> list[Problem]:
    """Column count and nested values (lists, structs, maps) of a Parquet file, from its schema alone."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    meta = pq.read_metadata(path)
    file = str(path)
    if meta.num_columns > limits.limit("columns"):
        return [source_problem(table, file, "limit", limits.over_limit("columns", meta.num_columns, "the file"))]
    if meta.num_rows > limits.limit("rows"):
        return [source_problem(table, file, "limit", limits.over_limit("rows", meta.num_rows, "the file"))]
    out = []
    for field_ in pq.read_schema(path):
        t = field_.type
        if pa.types.is_nested(t) or pa.types.is_dictionary(t) and pa.types.is_nested(t.value_type):
            out.append(source_problem(table, file, "type", f"column '{field_.name}' holds nested values ({t}); "
                                      "a table cell holds one number, date or label", column=field_.name))
    return out


_CELL_REF = re.compile(r"([A-Z]{1,3})(\d+)")


def _col_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def scan_workbook(path, table: str) -> dict[str, list[Problem]]:
    """Look at an .xlsx without loading it: sheet names and, per sheet, what reading it would cost or hide.

    Streams each sheet's XML once (bounded memory) and reports, before pandas reads anything:
    the used range over the column, row or cell limit (a lone cell at ``XFD1048576``), a zip
    that unpacks to more than the unpacked-size or expansion limit, merged cells in the header
    row (the header loses a column name), error values (``#DIV/0!``, ``#N/A``) and formulas
    without a cached value (both would become empty cells without a word).

    Returns
    -------
    dict
        sheet name -> problems (empty list when the sheet is fine), in workbook order.
    """
    import zipfile  # noqa: PLC0415
    from xml.etree.ElementTree import iterparse  # noqa: PLC0415

    file = str(path)
    ns = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    rel_ns = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        unpacked = sum(i.file_size for i in infos)
        packed = max(1, sum(i.compress_size for i in infos))
        if unpacked > limits.limit("unpacked_bytes"):
            return {"": [source_problem(table, file, "limit", limits.over_limit("unpacked_bytes", unpacked, "the workbook"))]}
        if unpacked // packed > limits.limit("expansion") and unpacked > 50_000_000:
            return {"": [source_problem(table, file, "limit",
                                        limits.over_limit("expansion", unpacked // packed, "the workbook"))]}
        names = zf.namelist()
        rels = {}
        if "xl/_rels/workbook.xml.rels" in names:
            for _, el in iterparse(zf.open("xl/_rels/workbook.xml.rels")):
                if el.tag.endswith("Relationship"):
                    target = el.get("Target", "")
                    rels[el.get("Id")] = target.lstrip("/") if target.startswith("/") else "xl/" + target
        sheets: dict[str, str] = {}
        for _, el in iterparse(zf.open("xl/workbook.xml")):
            if el.tag == ns + "sheet":
                sheets[el.get("name")] = rels.get(el.get(rel_ns + "id"), "")
        out: dict[str, list[Problem]] = {}
        max_cols, max_rows, max_cells = limits.limit("columns"), limits.limit("rows"), limits.limit("sheet_cells")
        for name, member in sheets.items():
            problems: list[Problem] = []
            out[name] = problems
            if member not in names:
                continue
            top_row, top_col, n_cells, errors, no_cache, merged = 0, 0, 0, [], [], []
            for _, el in iterparse(zf.open(member)):
                tag = el.tag
                if tag == ns + "c":
                    n_cells += 1
                    m = _CELL_REF.fullmatch(el.get("r", ""))
                    if m:
                        col, row = _col_number(m.group(1)), int(m.group(2))
                        top_col, top_row = max(top_col, col), max(top_row, row)
                        if el.get("t") == "e" and len(errors) < 5:
                            errors.append((row, m.group(1), (el.findtext(ns + "v") or "").strip()))
                        if el.find(ns + "f") is not None and not (el.findtext(ns + "v") or "").strip() \
                                and len(no_cache) < 5:
                            no_cache.append((row, m.group(1)))
                    el.clear()
                    if top_col > max_cols or top_row > max_rows or n_cells > max_cells:
                        break
                elif tag == ns + "mergeCell":
                    merged.append(el.get("ref", ""))
                elif tag == ns + "row":
                    el.clear()
            if top_col > max_cols:
                problems.append(source_problem(table, file, "limit", limits.over_limit(
                    "columns", top_col, f"sheet '{name}' (a cell in column {top_col:,})")))
            elif top_row > max_rows:
                problems.append(source_problem(table, file, "limit", limits.over_limit(
                    "rows", top_row, f"sheet '{name}' (a cell in row {top_row:,})")))
            elif n_cells > max_cells or top_row * top_col > max_cells:
                problems.append(source_problem(table, file, "limit", limits.over_limit(
                    "sheet_cells", max(n_cells, top_row * top_col), f"sheet '{name}'")))
            for ref in merged:
                m = re.fullmatch(r"([A-Z]+)(\d+):([A-Z]+)(\d+)", ref)
                if m and m.group(2) == "1" and m.group(1) != m.group(3):
                    problems.append(source_problem(table, file, "excel_header",
                                                   f"header cells {ref} are merged: the columns after the first "
                                                   "lose their name; unmerge them and name each column", row=1))
            for row, col, v in errors:
                problems.append(source_problem(table, file, "type", f"cell {col}{row} holds the spreadsheet error "
                                               f"{v or '#ERROR'}; fix the formula or enter the value", row=row,
                                               value=v or None))
            for row, col in no_cache:
                problems.append(source_problem(table, file, "type", f"cell {col}{row} holds a formula without a "
                                               "saved result (the file was written by a program that does not "
                                               "calculate); open and save it in Excel or LibreOffice, or enter "
                                               "the value", row=row))
    return out
