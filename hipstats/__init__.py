"""hipstats: hip mobility cohort statistics and scheduled reports."""

from hipstats.errors import (
    AnalysisError,
    HipstatsError,
    ParameterError,
    ReportError,
    SourceError,
    ValidationError,
)

__version__ = "0.1.0"
