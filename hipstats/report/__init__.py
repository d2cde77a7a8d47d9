"""Scheduled report generation: parameterized notebooks -> offline HTML, an index, a manifest.

Public API
----------
:func:`run_reports`
    Run the report notebooks on a cohort (what ``hipstats report`` does).
:func:`list_notebooks`
    The report notebooks with their declared parameters (``hipstats notebooks``).
:func:`record`, :func:`record_summary`
    Record a key finding inside a notebook; the index page collects them.
:func:`table`
    A result table for a page (great_tables: human labels, CIs, footnotes; never cut).
:func:`open_cohort`
    Load the cohort in a notebook (from the run's validated snapshot under ``hipstats report``).

Examples
--------
>>> import hipstats.report as rep
>>> [n.name for n in rep.list_notebooks()][:1]       # doctest: +SKIP
['data_quality']
"""

from hipstats.report import areas, quality
from hipstats.report.data import open_cohort, validation_report
from hipstats.report.display import setup_figures
from hipstats.report.findings import Finding, record, record_summary
from hipstats.report.params import NotebookInfo, Parameter, list_notebooks
from hipstats.report.runner import NotebookResult, RunResult, run_reports
from hipstats.report.tables import table

__all__ = ["areas", "quality", "table", "Finding", "NotebookInfo", "NotebookResult", "Parameter", "RunResult", "list_notebooks",
           "open_cohort", "record", "record_summary", "run_reports", "setup_figures", "validation_report"]
