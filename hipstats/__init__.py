"""hipstats: hip mobility cohort statistics and scheduled reports.

Load and validate a cohort, answer the study's questions with tidy tables and
figures, and turn parameterized notebooks into offline HTML reports.

Examples
--------
>>> import hipstats as hs
>>> cohort = hs.simulate_cohort(n_participants=30, seed=0)
>>> cohort.arms
['control', 'stretching', 'loading']
"""

from hipstats import schema
from hipstats.cohort import Cohort, load_cohort
from hipstats.errors import (
    AnalysisError,
    HipstatsError,
    ParameterError,
    ReportError,
    SourceError,
    ValidationError,
)
from hipstats.simulate import SimulationParameters, simulate_cohort
from hipstats.validation import Problem, ValidationReport, validate

__version__ = "0.1.0"

__all__ = [
    "AnalysisError",
    "Cohort",
    "HipstatsError",
    "ParameterError",
    "Problem",
    "ReportError",
    "SimulationParameters",
    "SourceError",
    "ValidationError",
    "ValidationReport",
    "load_cohort",
    "schema",
    "simulate_cohort",
    "validate",
]
