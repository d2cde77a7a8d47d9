"""What readers and rules report: a :class:`Problem` (table, file, row, column, value, rule,
message) and the :class:`ValidationReport` that collects them. It sits below both the readers
and the validation rules, so each imports it downward.

Examples
--------
>>> from hipstats.data.problems import Problem, ValidationReport
>>> p = Problem(table="participants", file="participants.csv", row=3, column="arm",
...             value="sham", rule="unknown_arm", message="arm 'sham' is not in the arm list")
>>> p.rule
'unknown_arm'
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Problem", "ValidationReport"]


ROW = "_row"  # column carrying the user-facing row number through normalisation


@dataclass(frozen=True)
class Problem:
    """One broken rule in one place of the data."""

    table: str
    file: str
    row: int | None
    column: str | None
    value: Any
    rule: str
    message: str


class ValidationReport:
    """Every problem found in a source; empty when the data keep the contract.

    Attributes
    ----------
    source : str
        What was validated (path or URL with any password masked).
    problems : list of Problem
    notes : list of str
        What reading counted without refusing it (e.g. SPSS user-missing codes read as missing).
    """

    def __init__(self, source: str, problems: list[Problem] | None = None, notes=None):
        self.source = source
        self.problems: list[Problem] = list(problems or [])
        self.notes: list[str] = list(notes or [])

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self):
        return iter(self.problems)

    def __bool__(self) -> bool:  # a report object is always truthy; use .ok
        return True

    def extend(self, problems) -> None:
        self.problems.extend(problems)

    def to_frame(self) -> pd.DataFrame:
        """Problems as a tidy DataFrame (table, file, row, column, value, rule, message)."""
        cols = ["table", "file", "row", "column", "value", "rule", "message"]
        if not self.problems:
            return pd.DataFrame(columns=cols)
        df = pd.DataFrame([asdict(p) for p in self.problems], columns=cols)
        df["row"] = df["row"].astype("Int64")
        df["value"] = df["value"].map(_show_value)
        return df

    def to_csv(self) -> str:
        """Problems as CSV text that a spreadsheet opens without running anything in it.

        A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (a formula to
        Excel or LibreOffice, e.g. ``=HYPERLINK(...)``) is prefixed with ``'``, OWASP's advice for
        CSV injection; plain numbers such as ``-5`` are left as they are.

        >>> r = ValidationReport("x", [Problem("m", "f.csv", 2, "visit", '=HYPERLINK("http://e.x")', "category", "bad")])
        >>> print(r.to_csv().splitlines()[1])
        m,f.csv,2,visit,"'=HYPERLINK(""http://e.x"")",category,bad
        """
        df = self.to_frame().astype(object)
        return df.map(_neutralise).to_csv(index=False)

    def rules(self) -> list[str]:
        """Sorted distinct rules broken."""
        return sorted({p.rule for p in self.problems})

    def to_text(self, max_rows: int | None = None) -> str:
        """Plain-text table of the problems (what the CLI prints when rich is unavailable)."""
        if self.ok:
            return f"{self.source}: no problems found"
        df = self.to_frame()
        shown = df if max_rows is None else df.head(max_rows)
        text = shown.to_string(index=False, na_rep="")
        if max_rows is not None and len(df) > max_rows:
            text += f"\n... and {len(df) - max_rows} more"
        return text

    def __repr__(self) -> str:
        return f"<ValidationReport {self.source}: {len(self)} problem(s)>"

    def _repr_html_(self) -> str:
        if self.ok:
            return f"<p><b>{html.escape(self.source)}</b>: no problems found.</p>"
        return (f"<p><b>{html.escape(self.source)}</b>: {len(self)} problem(s)</p>"
                + self.to_frame().to_html(index=False, na_rep=""))


def _show_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _neutralise(cell):
    """A CSV cell that a spreadsheet cannot read as a formula (see :meth:`ValidationReport.to_csv`)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell
