"""Read SPSS (``.sav``, ``.zsav``, ``.por``) and Stata (``.dta``) files with pyreadstat into a
:class:`~hipstats.data.readers.files.RawTable`, before any contract rule is checked.

What a statistics package stores beside the numbers is used, not lost:

* **value labels** become the cells (arm code 2 -> ``stretching``, side 1 -> ``left``) in every
  column except the contract's numeric ones (``value``, ``age_years``, ``week``...), whose
  numbers stay numbers. A code without a label in a contract label column (arm, side, sex,
  rater, ...) is a problem (rule ``value_label``) naming file, case, column and code;
* **user-missing values** (SPSS "Missing" codes and ranges, Stata's ``.a``-``.z``) are
  missing, and counted: a measurement whose ``value`` is user-missing is a reading not taken
  and its row is left out (as a CSV would simply not have it); elsewhere the cell becomes
  empty. Each count is a sentence in :attr:`RawTable.notes` (and ``cohort.settings.notes``);
* **variable labels** are kept as metadata (:attr:`RawTable.column_labels`, then
  ``cohort.settings.variable_labels``);
* **dates** (SPSS and Stata date formats) arrive as dates.

Rows are case numbers (the first case is row 1), as SPSS's Data View and Stata's browser
number them.

Examples
--------
>>> import tempfile, pandas as pd, pyreadstat
>>> from pathlib import Path
>>> from hipstats.data.readers.stats_files import read_stats_file
>>> path = Path(tempfile.mkdtemp()) / "participants.sav"
>>> frame = pd.DataFrame({"participant_id": ["P1", "P2"], "arm": [1.0, 2.0], "age_years": [24.0, -99.0]})
>>> pyreadstat.write_sav(frame, path, variable_value_labels={"arm": {1: "control", 2: "loading"}},
...                      missing_ranges={"age_years": [-99]}, column_labels={"age_years": "Age (years)"})
>>> raw = read_stats_file(path, "participants")
>>> raw.frame["arm"].tolist(), raw.frame["age_years"].isna().tolist()
(['control', 'loading'], [False, True])
>>> raw.column_labels
{'age_years': 'Age (years)'}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hipstats.data import limits, schema
from hipstats.data.problems import ROW
from hipstats.data.readers.files import RawTable, check_size, source_problem

__all__ = ["read_stats_file"]

_KIND = {".sav": "SPSS", ".zsav": "SPSS", ".por": "SPSS portable", ".dta": "Stata"}


def _reader(ext: str):
    import pyreadstat  # noqa: PLC0415

    return {".sav": pyreadstat.read_sav, ".zsav": pyreadstat.read_sav, ".por": pyreadstat.read_por,
            ".dta": pyreadstat.read_dta}[ext]


def _code_text(code) -> str:
    """A code as the user typed it: 2.0 -> '2'."""
    if isinstance(code, float) and code.is_integer():
        return str(int(code))
    return str(code)


def _user_missing_mask(s: pd.Series, ranges: list[dict] | None, letters: list | None) -> pd.Series:
    """Cells holding a declared user-missing code (SPSS ranges/values, Stata letters)."""
    mask = pd.Series(False, index=s.index)
    for r in ranges or ():
        lo, hi = r.get("lo"), r.get("hi")
        if isinstance(lo, str) or isinstance(hi, str):
            mask |= s.astype(object).isin({lo, hi})
        else:
            nums = pd.to_numeric(s, errors="coerce")
            mask |= (nums >= lo) & (nums <= hi)
    if letters:
        mask |= s.astype(object).map(lambda v: isinstance(v, str) and v in set(letters))
    return mask.fillna(False).astype(bool)


def _contract_columns(table: str) -> dict[str, schema.Column]:
    return {c.name: c for c in schema.TABLES[table].columns}


def read_stats_file(path, table: str) -> RawTable:
    """Read one SPSS or Stata file as the raw cells of ``table``.

    Parameters
    ----------
    path : path-like
        A ``.sav``, ``.zsav``, ``.por`` or ``.dta`` file.
    table : {"measurements", "participants", "sessions"}

    Returns
    -------
    RawTable
        Cells with value labels applied and user-missing codes emptied, ``_row`` the case
        number, ``column_labels`` the variable labels, ``notes`` the user-missing counts. A file
        pyreadstat cannot open is a ``RawTable`` without a frame and one ``unreadable`` problem.
    """
    path = Path(path)
    file = str(path)
    ext = path.suffix.lower()
    kind = _KIND[ext]
    read = _reader(ext)
    too_big = check_size(path, table)
    if too_big:
        return RawTable(None, file, too_big)
    try:
        _, head = read(path, metadataonly=True)
        if (head.number_columns or 0) > limits.limit("columns"):
            return RawTable(None, file, [source_problem(
                table, file, "limit", limits.over_limit("columns", head.number_columns, "the file"))])
        if (head.number_rows or 0) > limits.limit("rows"):
            return RawTable(None, file, [source_problem(
                table, file, "limit", limits.over_limit("rows", head.number_rows, "the file"))])
        # .por keeps no user-missing codes in pyreadstat (its reader has no user_missing option)
        df, meta = read(path) if ext == ".por" else read(path, user_missing=True)
    except Exception as err:  # pyreadstat's ReadstatError and friends: a broken file is a report line
        reason = str(err).strip() or type(err).__name__
        return RawTable(None, file, [source_problem(
            table, file, "unreadable", f"cannot read the {kind} file ({reason}); save it again from "
            f"{kind.split()[0]} or export the table as CSV")])
    if df.empty:
        return RawTable(None, file, [source_problem(table, file, "empty_file", "file has no cases (rows)")])
    df = df.reset_index(drop=True)
    df.insert(0, ROW, np.arange(1, len(df) + 1))
    contract = _contract_columns(table)
    problems, notes = [], []
    ranges = getattr(meta, "missing_ranges", None) or {}
    letters = getattr(meta, "missing_user_values", None) or {}
    keep = pd.Series(True, index=df.index)
    for name in [c for c in df.columns if c != ROW]:
        s = df[name]
        declared = _user_missing_mask(s, ranges.get(name), letters.get(name))
        if declared.any():
            n = int(declared.sum())
            codes = ", ".join(sorted({_code_text(v) for v in s[declared]}))
            if table == "measurements" and schema.normalise_column_name(name) == "value":
                keep &= ~declared
                notes.append(f"{path.name}: {n} measurement row{'s' if n != 1 else ''} whose '{name}' is a "
                             f"user-missing code ({codes}) left out as readings not taken")
            else:
                notes.append(f"{path.name}: {n} '{name}' cell{'s' if n != 1 else ''} holding a user-missing code "
                             f"({codes}) read as missing")
            s = s.astype(object).where(~declared, None)
            df[name] = s
        labels = (meta.variable_value_labels or {}).get(name)
        column = contract.get(schema.normalise_column_name(name))
        if not labels or (column is not None and column.dtype in ("float", "int")):
            continue
        by_text = {_code_text(k): str(v) for k, v in labels.items()}
        present = s.notna() & s.astype(object).map(lambda v: not (isinstance(v, str) and not v.strip()))
        text = s.astype(object).map(lambda v: _code_text(v) if v is not None and not pd.isna(v) else None)
        labelled = text.map(lambda t: t in by_text)
        unlabelled = present & ~labelled
        if unlabelled.any() and column is not None:
            known = ", ".join(f"{k} = {v}" for k, v in list(by_text.items())[:12])
            for code, rows in df.loc[unlabelled, ROW].groupby(text[unlabelled]):
                n = len(rows)
                problems.append(source_problem(
                    table, file, "value_label",
                    f"code {code} in '{name}' has no value label ({n} case{'s' if n != 1 else ''}, first shown; "
                    f"labels: {known}); add the label in {kind.split()[0]} or correct the code",
                    row=int(rows.iloc[0]), column=str(name), value=code))
        df[name] = pd.Series(np.where(labelled, text.map(by_text), text.where(present, None)),
                             index=df.index, dtype=object).where(present, None)
    if not keep.all():
        df = df.loc[keep].reset_index(drop=True)
        if df.empty:
            return RawTable(None, file, problems + [source_problem(
                table, file, "empty_file", "every case has a user-missing value: no readings")], notes=notes)
    column_labels = {str(k): str(v) for k, v in (meta.column_names_to_labels or {}).items() if v}
    return RawTable(df, file, problems, column_labels=column_labels, notes=notes)
