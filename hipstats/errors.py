"""Exceptions raised by hipstats.

One small hierarchy so that scripts can catch everything from hipstats with
``except hipstats.HipstatsError`` and the command line can turn any of them into
a clear message and a non-zero exit code without a traceback.

Examples
--------
>>> from hipstats.errors import AnalysisError
>>> try:
...     raise AnalysisError("need at least two raters, got 1 (rater 'A')")
... except ValueError as err:
...     print(err)
need at least two raters, got 1 (rater 'A')
"""

from __future__ import annotations

__all__ = [
    "HipstatsError",
    "ValidationError",
    "SourceError",
    "AnalysisError",
    "ConvergenceWarning",
    "SingularFitWarning",
    "ParameterError",
    "ReportError",
    "RunFailedError",
]


class HipstatsError(Exception):
    """Base class of every error hipstats raises on purpose."""


class ValidationError(HipstatsError):
    """The data break the data contract.

    Attributes
    ----------
    report : hipstats.data.problems.ValidationReport
        Every problem found, each with table, file, row, column, value, rule and message.
    """

    def __init__(self, report):
        self.report = report
        n = len(report)
        super().__init__(
            f"{n} problem{'s' if n != 1 else ''} in {report.source}:\n{report.to_text(max_rows=20)}"
        )


class SourceError(HipstatsError):
    """A data source cannot be opened or read at all (missing path, unknown format)."""


class AnalysisError(HipstatsError, ValueError):
    """The data cannot support the requested analysis (too few raters, constant ratings, ...)."""


class ParameterError(HipstatsError, ValueError):
    """A report or notebook parameter is unknown or has the wrong type."""


class ReportError(HipstatsError):
    """Report generation failed as a whole (lock held, output not writable, ...)."""


class RunFailedError(ReportError):
    """Every notebook of a report run failed; ``latest`` was left where it was.

    Attributes
    ----------
    run : hipstats.report.RunResult
        The complete, indexed run (its folder shows each notebook's error).
    """

    def __init__(self, run):
        self.run = run
        super().__init__(f"every notebook of run {run.run_id} failed ({', '.join(run.failed)}); "
                         f"'latest' still points at the previous run; the errors are in {run.index}")


class ConvergenceWarning(UserWarning):
    """An optimiser stopped without meeting its convergence criteria."""


class SingularFitWarning(UserWarning):
    """A mixed model's random-effects covariance is on the boundary (singular fit)."""


def check_columns(df, columns, what: str) -> None:
    """Raise :class:`AnalysisError` naming the missing ones when ``df`` lacks any of ``columns``.

    Examples
    --------
    >>> import pandas as pd
    >>> check_columns(pd.DataFrame({"a": [1]}), ["a"], "a table")
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnalysisError(f"{what} needs column(s) {missing}; the data have {list(df.columns)}")
