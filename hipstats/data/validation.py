"""Validate raw cohort tables against the data contract and normalise them.

:func:`validate` reads a source and returns a :class:`ValidationReport` listing
every problem at once; :func:`hipstats.load_cohort` raises
:class:`hipstats.ValidationError` carrying the same report. Each problem names
the table, the file, the row (as the user sees it: the header is row 1 of a CSV
or sheet, so the first data row is row 2; for SQL tables row 1 is the first
record), the column, the offending value, the rule broken and a sentence that
says what to do.

Rules (the ``rule`` column of the report):

==================  ==========================================================
required_column     a required column is absent
identifier_column   a direct identifier column (name, email, phone, address,
                    date of birth, MRN) is present; identifiers are refused
identifier_value    a cell looks like an e-mail address or phone number (any text
                    column), or a participant_id / rater like a person's name;
                    the value is never echoed
lookalike_header    a header spells a contract column with lookalike letters of
                    another script (Cyrillic 'а' for 'a')
duplicate_column    two headers name the same column (``arm`` and ``ARM``,
                    ``age`` and ``age_years``, a repeated ``arm``)
limit               a file is over a reading limit (bytes, columns, cells,
                    characters per cell): see :mod:`hipstats.data.limits`
missing_value       a required cell is empty
type                a cell is not of the column's type (number, integer, date)
category            a label is not one of the allowed categories
range               a number is outside the plausible range
integer_score       an ordinal score is not a whole number
side                side missing for a per-leg measure, or given for a whole-body one
radians             angles recorded in radians (advice: convert to degrees)
duplicate_row       the same row appears twice
duplicate_key       two rows share a key (participant, visit, measure, side,
                    trial within rater/pelvis/position/device; or participant_id)
week_order          weeks go backwards relative to visit labels or dates
week_consistency    one visit of one participant has several different weeks
date_range          a visit or session date before the earliest plausible date
                    (:data:`hipstats.data.schema.EARLIEST_DATE`) or after the day
                    validation runs (a year such as 2101 or 1066)
before_baseline     a later visit (larger week) is dated before the participant's
                    baseline visit
week_date           a week contradicts the dates: it differs from the days since
                    the participant's baseline visit / 7 by more than
                    :data:`hipstats.data.schema.WEEK_TOLERANCE_DAYS` days
spreadsheet_error   a cell holds a spreadsheet error value (``#DIV/0!``, ``#N/A``,
                    ``#VALUE!`` ...): a formula failed before the file was saved
unknown_participant a participant in measurements/sessions is not in participants
unknown_arm         an arm not in the cohort's arm list
date_or_week        a session has neither date nor week
empty_file          a table file has no rows
encoding            a text file is not UTF-8 (or UTF-16 with BOM)
excel_header        an Excel sheet's header is not on the first row
unreadable          a file cannot be parsed at all
value_label         an SPSS/Stata code without a value label in a label column
==================  ==========================================================

Examples
--------
>>> import hipstats as hs
>>> report = hs.validate("data/example")      # doctest: +SKIP
>>> report.ok                                   # doctest: +SKIP
True
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from hipstats.data import identifiers, schema
from hipstats.data.limits import ECHO_CHARS, cut_value
from hipstats.data.problems import Problem, ROW, ValidationReport
from hipstats.data.normalize import (
    is_missing,
    normalise_bool,
    normalise_category,
    normalise_list,
    normalise_measure,
    normalise_sex,
    normalise_side,
    normalise_token,
    radians_measure_name,
)
from hipstats.data.normalize import label_week

__all__ = ["validate", "validate_tables"]


# --------------------------------------------------------------------------- helpers
class _Collector:
    """Accumulates problems for one table of one file."""

    def __init__(self, table: str, file: str, decimal_comma: bool = False):
        self.table = table
        self.file = file
        self.decimal_comma = decimal_comma
        self.problems: list[Problem] = []
        #: (row, column) cells already reported and emptied (a spreadsheet error, an implausible date):
        #: later rules do not report them again as missing or mistyped
        self.reported: set[tuple[int, str]] = set()

    def add(self, row, column, value, rule, message) -> None:
        row = None if row is None or (isinstance(row, float) and np.isnan(row)) else int(row)
        if (row, column) in self.reported:
            return
        self.problems.append(Problem(self.table, self.file, row, column, value, rule, message))

    def add_rows(self, df: pd.DataFrame, mask, column: str, rule: str, message_fn) -> None:
        """Add one problem per row of ``df[mask]``; ``message_fn(value)`` makes the sentence."""
        bad = df.loc[mask, [ROW, column]] if column in df.columns else df.loc[mask, [ROW]]
        for row, value in zip(bad[ROW], bad[column] if column in bad.columns else [None] * len(bad)):
            self.add(row, column, value, rule, message_fn(value))


def _unique_map(series: pd.Series, fn) -> pd.Series:
    """Apply a scalar normaliser to the distinct values only (fast on large tables)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    for i, u in enumerate(uniques):
        table[i] = fn(u)
    table[-1] = fn(None)  # code -1: missing
    return pd.Series(table[codes], index=series.index, dtype=object)


def _missing_mask(series: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
        return series.isna()
    return _unique_map(series, is_missing).astype(bool)


def _to_number(series: pd.Series, decimal_comma: bool) -> tuple[pd.Series, pd.Series]:
    """Numeric conversion; returns (numbers, mask of non-empty cells that are not numbers)."""
    if pd.api.types.is_bool_dtype(series):
        return pd.Series(np.nan, index=series.index), series.notna()
    if pd.api.types.is_numeric_dtype(series):
        nums = series.astype(float)
        nums = nums.where(np.isfinite(nums))
        return nums, pd.Series(False, index=series.index)

    def parse(v):
        if is_missing(v):
            return np.nan
        if isinstance(v, (bool, np.bool_)):
            return "bad"
        if isinstance(v, str):
            v = v.strip()
            if decimal_comma and re.fullmatch(r"[-+]?\d+,\d+", v):
                v = v.replace(",", ".")
        return v

    missing = _missing_mask(series)
    nums = pd.to_numeric(_unique_map(series, parse), errors="coerce").astype(float)
    nums = nums.where(np.isfinite(nums.to_numpy(dtype=float, na_value=np.nan)))
    return nums, nums.isna() & ~missing


def _to_date(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    missing = _missing_mask(series)
    obj = series.astype(object).where(~missing, None)
    parsed = pd.to_datetime(obj, errors="coerce", format="mixed", dayfirst=False)
    bad = parsed.isna() & ~missing
    return parsed, bad


# --------------------------------------------------------------------------- table checks
#: Error values a spreadsheet writes where a formula failed (Excel, LibreOffice, Google Sheets).
SPREADSHEET_ERRORS = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#N/A!",
                                "#GETTING_DATA", "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!",
                                "#BUSY!", "#UNKNOWN!", "#EXTERNAL!", "#PYTHON!", "#ERROR!"})
_LIBREOFFICE_ERROR = re.compile(r"Err:\d{3}")


def _is_spreadsheet_error(v) -> bool:
    if not isinstance(v, str):
        return False
    v = v.strip()
    return v.upper() in SPREADSHEET_ERRORS or bool(_LIBREOFFICE_ERROR.fullmatch(v))


def _check_spreadsheet_errors(df: pd.DataFrame, col: _Collector) -> pd.DataFrame:
    """Cells holding ``#DIV/0!``, ``#N/A``, ``#VALUE!``... (rule ``spreadsheet_error``): reported with
    their row and column, then emptied so that no later rule reports them again."""
    out = None
    for name in df.columns:
        if name == ROW or pd.api.types.is_numeric_dtype(df[name]) or pd.api.types.is_datetime64_any_dtype(df[name]):
            continue
        bad = _unique_map(df[name], _is_spreadsheet_error).astype(bool)
        if not bad.any():
            continue
        col.add_rows(df, bad, name, "spreadsheet_error",
                     lambda v, name=name: f"'{str(v).strip()}' in {name} is a spreadsheet error value: a formula "
                                          "failed before the file was saved; fix the formula (or enter the value, or "
                                          "leave the cell empty if it was not measured) and export again")
        col.reported.update((int(r), name) for r in df.loc[bad, ROW])
        out = df.copy() if out is None else out
        out[name] = out[name].where(~bad, None)
    return df if out is None else out


def _today() -> pd.Timestamp:
    """The day validation runs (UTC)."""
    return pd.Timestamp.now(tz="UTC").normalize().tz_localize(None)


def _check_date_range(df: pd.DataFrame, column: str, what: str, col: _Collector, today) -> pd.DataFrame:
    """Dates before :data:`schema.EARLIEST_DATE` or after ``today`` (+ grace) are refused (``date_range``)
    and emptied, so that the week checks do not report the same typing error again."""
    if column not in df.columns or df.empty:
        return df
    dates = df[column]
    earliest = pd.Timestamp(schema.EARLIEST_DATE)
    latest = pd.Timestamp(today).normalize() + pd.Timedelta(days=schema.FUTURE_GRACE_DAYS)
    early, late = dates.notna() & (dates < earliest), dates.notna() & (dates > latest)
    if not (early.any() or late.any()):
        return df
    shown = df.assign(**{column: dates.dt.strftime("%Y-%m-%d")})
    col.add_rows(shown, early, column, "date_range",
                 lambda v: f"{what} {v} is before {schema.EARLIEST_DATE}, the earliest plausible date; "
                           "check the year")
    col.add_rows(shown, late, column, "date_range",
                 lambda v: f"{what} {v} is after today ({pd.Timestamp(today):%Y-%m-%d}): it cannot have "
                           "happened yet; check the year")
    col.reported.update((int(r), column) for r in df.loc[early | late, ROW])
    df = df.copy()
    df.loc[early | late, column] = pd.NaT
    return df


def _check_identifier_columns(df: pd.DataFrame, col: _Collector, flagged: frozenset = frozenset()) -> None:
    """Headers naming a direct identifier however spelled (:mod:`hipstats.data.identifiers`),
    plus columns flagged as identifiers by the source itself (REDCap's data dictionary)."""
    for name in df.columns:
        if name == ROW:
            continue
        if identifiers.is_identifier_header(name) or str(name) in flagged:
            why = " (flagged as an identifier in the data dictionary)" if str(name) in flagged else ""
            col.add(None, str(name), None, "identifier_column",
                    f"column '{cut_value(str(name), 80)}' holds a direct identifier{why}; remove it and keep only "
                    "the pseudonymous participant_id (identifiers are refused, never stored)")


def _check_identifier_values(df: pd.DataFrame, col: _Collector, found: dict[str, str]) -> None:
    """Cells that look like an e-mail address or phone number in any text column, and participant
    ids or rater labels that look like a person's name. ``found`` collects them (value -> kind) so
    that no message echoes them."""
    for name in df.columns:
        if name == ROW or not (pd.api.types.is_object_dtype(df[name]) or pd.api.types.is_string_dtype(df[name])):
            continue
        canon = _ALIASES.get(schema.normalise_column_name(name), schema.normalise_column_name(name))
        names = canon in ("participant_id", "rater")
        kinds = _unique_map(df[name], lambda v, names=names: identifiers.identifying_kind(v, names=names))
        hit = kinds.notna()
        if not hit.any():
            continue
        for v, k in zip(df.loc[hit, name], kinds[hit]):
            found[str(v)] = k
        if canon == "participant_id":
            col.add_rows(df, hit, name, "identifier_value",
                         lambda v: f"participant_id looks like a {found[str(v)]}; use a pseudonymous code "
                                   "such as P001")
            continue
        first = df.loc[hit].iloc[0]
        n = int(hit.sum())
        col.add(first[ROW], str(name), None, "identifier_value",
                f"column '{name}' holds {n} value{'s' if n != 1 else ''} that look like a "
                f"{kinds[hit].iloc[0]} (first on this row); identifying values are refused, never stored")


def _check_header_spelling(df: pd.DataFrame, col: _Collector) -> pd.DataFrame:
    """Lookalike letters in a header, and several headers naming one column; keeps the first of those."""
    keep, seen = [], {}
    aliases = _ALIASES
    for c in df.columns:
        if c == ROW:
            keep.append(c)
            continue
        plain = schema.normalise_column_name(c)
        folded = identifiers.fold_header(c)
        if folded != plain and aliases.get(folded, folded) in _KNOWN_COLUMNS:
            odd = ", ".join(f"'{ch}' (U+{ord(ch):04X})" for ch in dict.fromkeys(str(c)) if ord(ch) > 127)
            col.add(None, str(c), None, "lookalike_header",
                    f"header '{c}' looks like '{aliases.get(folded, folded)}' but contains {odd}; "
                    "retype it in plain letters")
            continue
        m = re.fullmatch(r"(.+)\.(\d+)", str(c))  # pandas renames a repeated header 'arm' to 'arm.1'
        if m and m.group(1) in df.columns:
            plain = schema.normalise_column_name(m.group(1))
        canon = aliases.get(plain, plain)
        if canon in seen:
            col.add(None, str(c), None, "duplicate_column",
                    f"columns '{seen[canon]}' and '{m.group(1) if m and m.group(1) in df.columns else c}' both "
                    f"name '{canon}'; keep one")
            continue
        seen[canon] = str(c)
        keep.append(c)
    return df.loc[:, keep] if len(keep) < df.shape[1] else df


def _normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Canonical column names (lower case, ``_``) with a few common aliases."""
    aliases = _ALIASES
    out = {}
    for c in df.columns:
        if c == ROW:
            out[c] = c
            continue
        n = schema.normalise_column_name(c)
        out[c] = aliases.get(n, n)
    return df.rename(columns=out)


_ALIASES = {"id": "participant_id", "subject": "participant_id", "subject_id": "participant_id",
               "participant": "participant_id", "pid": "participant_id", "group": "arm",
               "visit_label": "visit", "load": "load_kg", "weight_kg": "mass_kg",
               "age": "age_years", "height": "height_cm", "mass": "mass_kg", "pain": "pain_nrs",
               "leg": "side", "sex_gender": "sex", "gender": "sex"}
_KNOWN_COLUMNS = frozenset(c.name for t in schema.TABLES.values() for c in t.columns)


def _check_columns(df: pd.DataFrame, table: schema.Table, col: _Collector) -> pd.DataFrame:
    df = _normalise_columns(df)
    for c in table.required_columns:
        if c.name not in df.columns:
            present = ", ".join(str(x) for x in df.columns if x != ROW) or "none"
            col.add(None, c.name, None, "required_column",
                    f"required column '{c.name}' is missing (columns present: {present})")
    return df


def _check_typed_columns(df: pd.DataFrame, table: schema.Table, col: _Collector,
                         decimal_comma: bool) -> pd.DataFrame:
    """Convert each contract column to its type, recording type/category/range/missing problems."""
    out = df.copy()
    for c in table.columns:
        if c.name not in out.columns:
            continue
        s = out[c.name]
        missing = _missing_mask(s)
        if not c.nullable:
            col.add_rows(out, missing, c.name, "missing_value",
                         lambda v, c=c: f"'{c.name}' must not be empty")
        if c.dtype in ("float", "int"):
            nums, bad = _to_number(s, decimal_comma)
            col.add_rows(out, bad, c.name, "type",
                         lambda v, c=c: f"'{v}' is not a number ({c.name} must be numeric"
                                        + (f", in {c.unit})" if c.unit else ")"))
            if c.dtype == "int":
                frac = nums.notna() & (nums != np.round(nums))
                col.add_rows(out, frac, c.name, "type",
                             lambda v, c=c: f"'{v}' is not a whole number ({c.name} must be an integer)")
            rng = _range_mask(nums, c.minimum, c.maximum)
            col.add_rows(out, rng, c.name, "range",
                         lambda v, c=c: f"{v} is outside the plausible range {_fmt_range(c)} for {c.name}")
            out[c.name] = nums
        elif c.dtype == "date":
            parsed, bad = _to_date(s)
            col.add_rows(out, bad, c.name, "type",
                         lambda v, c=c: f"'{v}' is not a date (use ISO 8601, e.g. 2026-03-14)")
            out[c.name] = parsed
        elif c.dtype == "category":
            norm = _normalise_category_series(s, c.name)
            allowed = set(c.categories or ())
            if c.name == "arm":
                out[c.name] = norm
                continue
            bad = norm.notna() & ~norm.isin(allowed)
            col.add_rows(out.assign(**{c.name: s}), bad, c.name, "category",
                         lambda v, c=c: f"'{v}' is not an allowed {c.name} (allowed: "
                                        f"{', '.join(c.categories or ())})")
            out[c.name] = norm
        elif c.dtype == "list":
            lists = _unique_map(s, lambda v, c=c: normalise_list(v, c.name))
            allowed = set(c.categories or ())
            bad = _unique_map(lists, lambda t: t is not None and any(x not in allowed for x in t)).astype(bool)
            col.add_rows(out.assign(**{c.name: s}), bad, c.name, "category",
                         lambda v, c=c: f"'{v}' holds a label that is not an allowed {c.name} item (allowed: "
                                        f"{', '.join(c.categories or ())}; separate items with ';')")
            out[c.name] = _unique_map(lists, lambda t: ";".join(t) if t is not None else "")
        elif c.dtype == "bool":
            b = _unique_map(s, normalise_bool)
            bad = b.notna() & ~b.map(lambda v: isinstance(v, bool))
            col.add_rows(out.assign(**{c.name: s}), bad, c.name, "type",
                         lambda v, c=c: f"'{v}' is not true/false (yes/no, 1/0 also accepted) for {c.name}")
            out[c.name] = b.where(~bad, None)
        else:  # string
            out[c.name] = _unique_map(s, lambda v: None if is_missing(v) else (
                str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip()))
    return out


def _normalise_category_series(s: pd.Series, name: str) -> pd.Series:
    if name == "side":
        return _unique_map(s, normalise_side)
    if name == "sex":
        return _unique_map(s, normalise_sex)
    if name == "measure":
        return _unique_map(s, normalise_measure)
    if name == "dominant_leg":
        return _unique_map(s, normalise_side)
    if name == "arm":
        return _unique_map(s, lambda v: None if is_missing(v) else normalise_token(v))
    return _unique_map(s, lambda v: normalise_category(v, name))


def _range_mask(nums: pd.Series, lo, hi) -> pd.Series:
    mask = pd.Series(False, index=nums.index)
    if lo is not None:
        mask |= nums < lo
    if hi is not None:
        mask |= nums > hi
    return mask & nums.notna()


def _fmt_range(c) -> str:
    unit = f" {c.unit}" if c.unit else ""
    return f"{c.minimum:g} to {c.maximum:g}{unit}"


def _row_hashes(df: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One 64-bit hash per row of the given columns (NaN and None hash alike)."""
    return pd.util.hash_pandas_object(df[columns], index=False, categorize=True)


def _check_duplicate_rows(raw: pd.DataFrame, col: _Collector) -> set:
    """Report exact repeats of earlier rows; return their row numbers."""
    content = [c for c in raw.columns if c != ROW]
    if not content or raw.empty:
        return set()
    h = _row_hashes(raw, content)
    dup = h.duplicated(keep="first")
    if not dup.any():
        return set()
    first_row = raw[ROW].groupby(h.to_numpy()).transform("min")
    for row, first in zip(raw.loc[dup, ROW], first_row[dup]):
        col.add(row, None, None, "duplicate_row", f"row {row} repeats row {first} exactly; delete one")
    return set(raw.loc[dup, ROW])


def _check_duplicate_keys(df: pd.DataFrame, key: list[str], col: _Collector, skip_rows: set) -> None:
    key = [k for k in key if k in df.columns]
    if not key:
        return
    sub = df[~df[ROW].isin(skip_rows)] if skip_rows else df
    if sub.empty:
        return
    h = _row_hashes(sub, key)
    dup = h.duplicated(keep=False)
    if not dup.any():
        return
    k = sub.loc[dup, key].astype(str)
    groups = sub.loc[dup].assign(_k=k.agg("|".join, axis=1)).groupby("_k", sort=False)
    for _, g in groups:
        rows = g[ROW].tolist()
        shown = ", ".join(f"{kk}={g.iloc[0][kk]}" for kk in key if g.iloc[0][kk] is not None
                          and not (isinstance(g.iloc[0][kk], float) and np.isnan(g.iloc[0][kk])))
        for r in rows[1:]:
            col.add(r, key[0] if len(key) == 1 else None, shown, "duplicate_key",
                    f"row {r} has the same key as row {rows[0]} ({shown}); each key must be unique")


# --------------------------------------------------------------------------- per table
def _check_measurements(df: pd.DataFrame, col: _Collector) -> pd.DataFrame:
    if "measure" in df.columns:
        # a measure recorded in radians by name (hip_ir_rad) -> refuse with advice
        rad = _unique_map(df["measure"], lambda v: radians_measure_name(v) if isinstance(v, str) else None)
        col.add_rows(df.assign(_m=df["measure"]), rad.notna(), "measure", "radians",
                     lambda v: f"measure '{v}' is in radians; hipstats stores angles in degrees: "
                               f"multiply by 180/pi (numpy.degrees) and name it '{radians_measure_name(v)}'")
        df = df.loc[rad.isna()].copy()
    df = _check_typed_columns(df, schema.TABLES["measurements"], col, col.decimal_comma)
    if {"measure", "value"} <= set(df.columns):
        for name, m in schema.MEASURES.items():
            sel = (df["measure"] == name) & df["value"].notna()
            if not sel.any():
                continue
            vals = df.loc[sel, "value"]
            lo, hi = m.plausible
            if m.is_angle and _looks_like_radians(vals, lo, hi):
                first = df.loc[sel, ROW].iloc[0]
                col.add(first, "value", f"{vals.abs().max():.3g} (max of {len(vals)})", "radians",
                        f"all {len(vals)} {name} values lie within +/-{np.radians(max(abs(lo), abs(hi))):.2f}: "
                        "they look like radians; convert with numpy.degrees (x 180/pi) before loading")
                continue
            out = sel & ((df["value"] < lo) | (df["value"] > hi))
            col.add_rows(df, out, "value", "range",
                         lambda v, name=name, lo=lo, hi=hi, m=m: f"{v:g} is outside the plausible range "
                         f"{lo:g} to {hi:g} {'degrees' if m.is_angle else 'points'} for {name}")
            if m.is_score:
                frac = sel & (df["value"] != np.round(df["value"]))
                col.add_rows(df, frac, "value", "integer_score",
                             lambda v, name=name: f"{v:g} is not a whole number; {name} is an integer score")
        if "side" in df.columns:
            sided = df["measure"].map({k: m.sided for k, m in schema.MEASURES.items()})
            need = (sided == True) & df["side"].isna()  # noqa: E712
            col.add_rows(df, need, "side", "side",
                         lambda v: "side is empty; this measure is taken per leg (left or right)")
            extra = (sided == False) & df["side"].notna() & df["side"].isin(schema.SIDES)  # noqa: E712
            col.add_rows(df, extra, "side", "side",
                         lambda v: f"side '{v}' given for a whole-body measure (pelvic tilt); leave it empty")
        elif "measure" in df.columns:
            if df["measure"].map(lambda v: schema.MEASURES[v].sided if v in schema.MEASURES else False).any():
                col.add(None, "side", None, "required_column",
                        "column 'side' is missing but per-leg measures are present")
    if "trial" not in df.columns:
        df["trial"] = 1.0
    df["trial"] = df["trial"].fillna(1.0)
    schema.TABLES["measurements"].add_missing_columns(df)
    df["visit_date"] = pd.to_datetime(df["visit_date"], errors="coerce")
    return df


def _looks_like_radians(vals: pd.Series, lo: float, hi: float) -> bool:
    """All readings of a degree measure fit inside the radian equivalent of its range."""
    if len(vals) < 5 or (vals == 0).all():
        return False
    return bool(vals.abs().max() <= np.radians(max(abs(lo), abs(hi))) + 1e-9)


def _derive_weeks(df: pd.DataFrame, col: _Collector) -> pd.DataFrame:
    """Fill week from visit_date (weeks since each participant's first visit)."""
    if df.empty:
        return df
    need = df["week"].isna() & df["visit_date"].notna()
    if need.any():
        first = df.groupby("participant_id")["visit_date"].transform("min")
        df.loc[need, "week"] = ((df.loc[need, "visit_date"] - first[need]).dt.days / 7.0).round(3)
    no_time = df["week"].isna() & df["visit_date"].isna()
    if no_time.any():
        baseline = df["visit"].map(lambda v: label_week(v) == 0)
        df.loc[no_time & baseline, "week"] = 0.0
        still = df["week"].isna()
        col.add_rows(df, still, "week", "missing_value",
                     lambda v: "week is empty and there is no visit_date to derive it from")
    return df


def _visit_table(df: pd.DataFrame, given_week: pd.Series | None = None) -> pd.DataFrame:
    """One row per participant and visit: week, date and first row (and whether a week was given)."""
    keys = [df["participant_id"], df["visit"]]
    visits = (df.groupby(["participant_id", "visit"], sort=False)
                .agg(week=("week", "min"), date=("visit_date", "min"), row=(ROW, "min")).reset_index())
    given = (given_week if given_week is not None else df["week"].notna()).groupby(keys, sort=False).any()
    visits["week_given"] = given.reindex(pd.MultiIndex.from_frame(visits[["participant_id", "visit"]])).to_numpy()
    visits["label_week"] = visits["visit"].map(label_week)
    return visits


def _baselines(visits: pd.DataFrame) -> pd.DataFrame:
    """Each participant's baseline visit: the one labelled baseline (week 0), else the smallest week.

    Indexed by participant_id, columns ``b_visit``, ``b_week``, ``b_date``, ``b_row``.
    """
    order = visits.assign(_not_base=(visits["label_week"] != 0))
    order = order.sort_values(["participant_id", "_not_base", "week", "row"], kind="stable")
    base = order.drop_duplicates("participant_id").set_index("participant_id")
    return base[["visit", "week", "date", "row"]].add_prefix("b_")


def _week_date_gap(dates: pd.Series, weeks: pd.Series, base: pd.DataFrame, pids: pd.Series) -> pd.Series:
    """Days by which a week disagrees with the days since the participant's baseline visit (NaN: unknown)."""
    b = base.reindex(pids.to_numpy())
    days = (dates.to_numpy() - b["b_date"].to_numpy()) / np.timedelta64(1, "D")
    expected = (weeks.to_numpy(dtype=float) - b["b_week"].to_numpy(dtype=float)) * 7.0
    return pd.Series(days - expected, index=dates.index, dtype=float)


def _check_week_order(df: pd.DataFrame, col: _Collector, given_week: pd.Series | None = None) -> pd.DataFrame:
    """Weeks and dates of each participant's visits: one week per visit, a later visit not dated
    before baseline, the week agreeing with the dates, weeks and dates in the order of the labels.

    Returns the participants' baseline visits (:func:`_baselines`), which the sessions are checked against.
    """
    if df.empty or "week" not in df.columns:
        return _baselines(pd.DataFrame(columns=["participant_id", "visit", "week", "date", "row", "label_week"]))
    # one visit of one participant should have one week
    spread = df.groupby(["participant_id", "visit"], sort=False)["week"].agg(["min", "max"])
    incons = spread[(spread["max"] - spread["min"]) > 1e-9]
    for (pid, visit), r in incons.iterrows():
        rows = df.loc[(df["participant_id"] == pid) & (df["visit"] == visit), ROW]
        col.add(int(rows.iloc[0]), "week", f"{r['min']:g}..{r['max']:g}", "week_consistency",
                f"visit '{visit}' of participant {pid} has several weeks ({r['min']:g} to {r['max']:g}); "
                "one visit must have one week")
    visits = _visit_table(df, given_week)
    base = _baselines(visits)
    v = visits.join(base, on="participant_id")
    known = v["date"].notna() & v["b_date"].notna() & (v["row"] != v["b_row"])
    before = known & (v["week"] > v["b_week"]) & (v["date"] < v["b_date"])
    for _, r in v[before].iterrows():
        col.add(int(r["row"]), "visit_date", f"{r['date']:%Y-%m-%d}", "before_baseline",
                f"visit '{r['visit']}' of participant {r['participant_id']} (week {r['week']:g}) is dated "
                f"{r['date']:%Y-%m-%d}, before the baseline visit '{r['b_visit']}' on {r['b_date']:%Y-%m-%d}; "
                "check the date")
        col.reported.add((int(r["row"]), "visit_date"))
    gap = _week_date_gap(v["date"], v["week"], base, v["participant_id"])
    tol = schema.WEEK_TOLERANCE_DAYS
    off = known & ~before & v["week_given"].astype(bool) & (gap.abs() > tol)
    for idx in v.index[off.to_numpy()]:
        r = v.loc[idx]
        days = (r["date"] - r["b_date"]).days
        col.add(int(r["row"]), "week", r["week"], "week_date",
                f"visit '{r['visit']}' of participant {r['participant_id']} is at week {r['week']:g}, but it is "
                f"dated {r['date']:%Y-%m-%d}, {days} days ({days / 7:.1f} weeks) after the baseline visit on "
                f"{r['b_date']:%Y-%m-%d}: week and date disagree by {abs(gap[idx]):.0f} days, more than the "
                f"{tol:g} allowed; fix the week or the date")
    visits = visits.sort_values(["participant_id", "week", "row"], kind="stable")
    for key, column in (("label_week", "week"), ("date", "visit_date")):
        sub = visits.dropna(subset=[key])
        prev = sub.groupby("participant_id", sort=False)[[key, "visit", "week"]].shift()
        bad = sub[key] < prev[key]
        for idx in sub.index[bad.to_numpy()]:
            b, a = sub.loc[idx], prev.loc[idx]
            pid = b["participant_id"]
            if key == "label_week":
                col.add(int(b["row"]), column, b["week"], "week_order",
                        f"weeks go backwards for participant {pid}: visit '{b['visit']}' is at week "
                        f"{b['week']:g}, after visit '{a['visit']}' at week {a['week']:g}, but its label says "
                        "earlier; check the week or the visit label")
            else:
                col.add(int(b["row"]), column, str(b["date"].date()), "week_order",
                        f"weeks go backwards for participant {pid}: visit '{b['visit']}' (week {b['week']:g}) "
                        f"is dated before visit '{a['visit']}' (week {a['week']:g})")
    return base


def _check_session_weeks(df: pd.DataFrame, base: pd.DataFrame, col: _Collector) -> None:
    """A session's week must agree with its date's days since the participant's baseline visit (``week_date``)."""
    if df.empty or base.empty or not {"date", "week", "participant_id"} <= set(df.columns):
        return
    sel = df["date"].notna() & df["week"].notna() & df["participant_id"].isin(base.index)
    if not sel.any():
        return
    sub = df.loc[sel]
    gap = _week_date_gap(sub["date"], sub["week"], base, sub["participant_id"])
    tol = schema.WEEK_TOLERANCE_DAYS
    for idx in sub.index[(gap.abs() > tol).to_numpy()]:
        r = sub.loc[idx]
        b = base.loc[r["participant_id"]]
        days = (r["date"] - b["b_date"]).days
        col.add(int(r[ROW]), "week", r["week"], "week_date",
                f"session of participant {r['participant_id']} is at week {r['week']:g}, but it is dated "
                f"{r['date']:%Y-%m-%d}, {days} days ({days / 7:.1f} weeks) after the baseline visit on "
                f"{b['b_date']:%Y-%m-%d}: week and date disagree by {abs(gap[idx]):.0f} days, more than the "
                f"{tol:g} allowed; fix the week or the date")


def _check_sessions(df: pd.DataFrame, col: _Collector) -> pd.DataFrame:
    df = _check_typed_columns(df, schema.TABLES["sessions"], col, col.decimal_comma)
    schema.TABLES["sessions"].add_missing_columns(df)
    no_time = df["date"].isna() & df["week"].isna()
    col.add_rows(df, no_time, "week", "date_or_week", lambda v: "session has neither a date nor a week")
    return df


def _check_participants(df: pd.DataFrame, col: _Collector, settings: schema.ContractSettings) -> pd.DataFrame:
    df = _check_typed_columns(df, schema.TABLES["participants"], col, col.decimal_comma)
    if "arm" in df.columns:
        allowed = set(settings.arms)
        bad = df["arm"].notna() & ~df["arm"].isin(allowed)
        col.add_rows(df, bad, "arm", "unknown_arm",
                     lambda v: f"arm '{v}' is not one of the cohort's arms ({', '.join(settings.arms)}); "
                               f"fix the label or {settings.arms_advice}")
    schema.TABLES["participants"].add_missing_columns(df)
    return df


# --------------------------------------------------------------------------- entry points
def validate_tables(raw: dict, settings: schema.ContractSettings | None = None, *, source: str = "<tables>",
                    today=None):
    """Validate and normalise raw tables.

    Parameters
    ----------
    raw : dict
        Table name -> :class:`hipstats.data.readers.files.RawTable` (frame of raw cells with a ``_row``
        column, file name, read-time problems).
    settings : ContractSettings, optional
        Arm list and reference arm.
    today : date-like, optional
        The day dates are judged against (a date after it is refused, rule ``date_range``);
        defaults to the day validation runs (UTC).

    Returns
    -------
    tables : dict of DataFrame
        Normalised, typed tables (``_row`` kept for error messages).
    report : ValidationReport
    """
    settings = settings or schema.ContractSettings()
    report = ValidationReport(source)
    tables: dict[str, pd.DataFrame] = {}
    found: dict[str, str] = {}  # identifying values seen (never echoed)
    today = _today() if today is None else pd.Timestamp(today)
    baselines = None  # each participant's baseline visit, from measurements (sessions are checked against it)
    for name in ("participants", "measurements", "sessions"):
        rt = raw.get(name)
        if rt is None:
            continue
        if name == "sessions" and rt.frame is None and all(p.rule == "empty_file" for p in rt.problems):
            continue  # the training log is optional: an empty sessions file means no sessions
        report.extend(rt.problems)
        if rt.frame is None:
            continue
        col = _Collector(name, rt.file, rt.decimal_comma)
        flagged = frozenset(getattr(rt, "identifier_fields", None) or ())
        _check_identifier_columns(rt.frame, col, flagged)
        frame = rt.frame.drop(columns=[c for c in rt.frame.columns if c != ROW and (
            identifiers.is_identifier_header(c) or str(c) in flagged)])
        _check_identifier_values(frame, col, found)
        frame = _check_header_spelling(frame, col)
        df = _check_columns(frame, schema.TABLES[name], col)
        df = _check_spreadsheet_errors(df, col)
        dup_rows = _check_duplicate_rows(df, col)
        if name != "participants" and any(p.rule == "required_column" for p in col.problems):
            report.extend(col.problems)  # row checks need the required columns
            continue
        if name == "measurements":
            df = _check_measurements(df, col)
            df = _check_date_range(df, "visit_date", "visit date", col, today)
            given_week = df["week"].notna()
            df = _derive_weeks(df, col)
            _check_duplicate_keys(df, list(schema.TABLES[name].key), col, dup_rows)
            baselines = _check_week_order(df, col, given_week)
        elif name == "participants":
            df = _check_participants(df, col, settings)
            _check_duplicate_keys(df, ["participant_id"], col, dup_rows)
        else:
            df = _check_sessions(df, col)
            df = _check_date_range(df, "date", "session date", col, today)
            _check_duplicate_keys(df, list(schema.TABLES[name].key), col, dup_rows)
            if baselines is not None:
                _check_session_weeks(df, baselines, col)
        report.extend(col.problems)
        tables[name] = df
    _check_cross_tables(tables, raw, report)
    # an SPSS/Stata code without a value label is said once (rule value_label), not again as a bad label
    unlabelled = {(p.table, p.column, str(p.value)) for p in report.problems if p.rule == "value_label"}
    report.problems = [p for p in report.problems if p.rule == "value_label"
                       or (p.table, p.column, str(p.value)) not in unlabelled]
    report.problems = [_withhold(_in_source_terms(p, raw), found) for p in report.problems]
    return tables, report


def _in_source_terms(p: Problem, raw: dict) -> Problem:
    """A problem named as its source names it (a REDCap field and record), when the reader can tell."""
    rt = raw.get(p.table)
    return rt.locate(p) if rt is not None and rt.locate is not None else p


def _withhold(p: Problem, found: dict[str, str]) -> Problem:
    """A problem with identifying values replaced and long values cut (nothing identifying, nothing huge, echoed)."""
    value = p.value
    if isinstance(value, str) and value in found:
        value = identifiers.WITHHELD.format(kind=found[value])
    value = cut_value(value)
    message = identifiers.redact(p.message, found)
    if len(message) > 2 * ECHO_CHARS + 200:
        message = cut_value(message, 2 * ECHO_CHARS + 200)
    if value is p.value and message is p.message:
        return p
    return Problem(p.table, p.file, p.row, p.column, value, p.rule, message)


def _check_cross_tables(tables: dict, raw: dict, report: ValidationReport) -> None:
    if "participants" not in tables:
        return
    known = set(tables["participants"]["participant_id"].dropna())
    for name in ("measurements", "sessions"):
        df = tables.get(name)
        if df is None or "participant_id" not in df.columns:
            continue
        col = _Collector(name, raw[name].file)
        unknown = df["participant_id"].notna() & ~df["participant_id"].isin(known)
        firsts = df.loc[unknown].drop_duplicates("participant_id")
        for row, pid in zip(firsts[ROW], firsts["participant_id"]):
            n = int((df["participant_id"] == pid).sum())
            col.add(row, "participant_id", pid, "unknown_participant",
                    f"participant '{pid}' ({n} row{'s' if n != 1 else ''}) is not in the participants table")
        report.extend(col.problems)


def validate(source, *, arms=None, tables=None, config=None, event_map=None, dictionary=None) -> ValidationReport:
    """Check a cohort source against the data contract and report every problem at once.

    Parameters
    ----------
    source : str or path-like
        A folder with ``measurements``, ``participants`` and (optional) ``sessions``
        tables as CSV, Parquet or Excel; a single CSV/Excel/Parquet file (long format or
        a REDCap export); or a SQLAlchemy URL such as ``sqlite:///cohort.db``.
    arms : sequence of str, optional
        Allowed arm labels (first = reference). Defaults to the source's
        ``hipstats.yaml`` or to control, stretching, loading.
    tables : dict, optional
        SQL table names when they differ from the defaults.
    config : path-like, optional
        A settings file (``hipstats.yaml`` layout) for any source, a database included.
    event_map : dict, optional
        REDCap event name -> visit label and week.

    Returns
    -------
    ValidationReport
        ``report.ok`` is True when the data keep the contract; ``report.to_frame()``
        lists table, file, row, column, value, rule and message for each problem.

    Notes
    -----
    Validation only reads: nothing in the source is created, changed or deleted.

    Examples
    --------
    >>> import hipstats as hs
    >>> hs.validate("data/example").ok            # doctest: +SKIP
    True
    """
    from hipstats.data.readers.source import read_source

    raw, settings, label = read_source(source, arms=arms, tables=tables, config=config, event_map=event_map, dictionary=dictionary)
    _, report = validate_tables(raw, settings, source=label)
    report.notes.extend(settings.notes)
    return report
