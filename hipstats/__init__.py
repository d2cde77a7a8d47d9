"""hipstats: hip mobility cohort statistics and scheduled reports.

Load and validate a cohort, answer the study's questions with tidy tables and
figures, and turn parameterized notebooks into offline HTML reports.

The public API is flat (``hs.icc``, ``hs.fit_lmm``, ``hs.screening_analysis``, ...);
the analysis modules are imported on first use so that ``import hipstats`` and the
command line start quickly.

Examples
--------
>>> import hipstats as hs
>>> cohort = hs.simulate_cohort(n_participants=30, seed=0)
>>> cohort.arms
['control', 'stretching', 'loading']
"""

from __future__ import annotations

import importlib

from hipstats.cohort import Cohort, load_cohort
from hipstats.data import schema
from hipstats.errors import (
    AnalysisError,
    HipstatsError,
    ParameterError,
    ReportError,
    RunFailedError,
    SourceError,
    ValidationError,
)
from hipstats.cohort.simulate import SimulationParameters, simulate_cohort
from hipstats.data.problems import Problem, ValidationReport
from hipstats.data.validation import validate

__version__ = "0.1.0"

#: public name -> module that defines it (imported lazily on first attribute access)
_LAZY: dict[str, str] = {
    # reliability (R)
    "icc": "hipstats.stats.icc", "mdc": "hipstats.stats.agreement", "reliability_summary": "hipstats.questions.reliability", "ReliabilityResult": "hipstats.questions.reliability",
    "bland_altman": "hipstats.stats.agreement", "BlandAltmanResult": "hipstats.stats.agreement",
    "cohen_kappa": "hipstats.stats.kappa", "fleiss_kappa": "hipstats.stats.kappa", "ICC_FORMS": "hipstats.stats.icc",
    # protocol models (H2)
    "fit_mmrm": "hipstats.models.mmrm", "MMRMResult": "hipstats.models.mmrm",
    "fit_lmm": "hipstats.models.lmm", "LMMResult": "hipstats.models.lmm", "lrt": "hipstats.models.lmm",
    "emmeans": "hipstats.models.emmeans", "emtrends": "hipstats.models.emmeans",
    "contrasts": "hipstats.models.emmeans", "EMMResult": "hipstats.models.emmeans",
    "ancova": "hipstats.models.ancova", "AncovaResult": "hipstats.models.ancova",
    "hedges_g": "hipstats.stats.effect_sizes",
    "responders": "hipstats.models.responders", "ResponderResult": "hipstats.models.responders",
    "h2_analysis": "hipstats.questions.outcomes", "H2Result": "hipstats.questions.outcomes",
    # pelvic positioning (H1)
    "tilt_class": "hipstats.cohort.views", "paired_pelvis_difference": "hipstats.questions.pelvis", "rm_corr": "hipstats.stats.correlation",
    "within_between": "hipstats.stats.correlation", "ir_by_tilt_class": "hipstats.questions.pelvis",
    "pelvis_analysis": "hipstats.questions.pelvis", "PelvisResult": "hipstats.questions.pelvis",
    # screening (H3)
    "diagnostic_accuracy": "hipstats.stats.accuracy", "roc": "hipstats.stats.roc", "ROCResult": "hipstats.stats.roc",
    "roc_test": "hipstats.stats.roc", "youden_cutoff": "hipstats.stats.roc",
    "reference_condition": "hipstats.questions.screening", "screening_analysis": "hipstats.questions.screening",
    "ScreeningResult": "hipstats.questions.screening",
    # loading (H4) and faults (H5)
    "volume_load": "hipstats.questions.loading", "progression_slopes": "hipstats.questions.loading", "adherence": "hipstats.questions.loading",
    "progression_compliance": "hipstats.questions.loading", "pain_flags": "hipstats.questions.loading",
    "dose_response": "hipstats.questions.loading", "loading_analysis": "hipstats.questions.loading", "pooled_rate": "hipstats.stats.rates",
    "LoadingResult": "hipstats.questions.loading",
    "fault_rates": "hipstats.questions.faults", "fault_trend": "hipstats.questions.faults",
    "fault_outcome_association": "hipstats.questions.faults", "faults_analysis": "hipstats.questions.faults",
    "FaultsResult": "hipstats.questions.faults",
    # trial planning
    "power_change_scores": "hipstats.power.analytic", "power_ancova": "hipstats.power.analytic",
    "AnalyticPower": "hipstats.power.analytic", "power_slope": "hipstats.power.analytic",
    "power_mmrm": "hipstats.power.analytic", "LongitudinalPower": "hipstats.power.analytic",
    "TrialDesign": "hipstats.power.design",
    "simulate_power": "hipstats.power.simulation", "power_curve": "hipstats.power.simulation",
    "PowerResult": "hipstats.power.simulation", "PowerCurveResult": "hipstats.power.simulation", "power_curve_plot": "hipstats.plots.power",
    # reports
    "run_reports": "hipstats.report", "list_notebooks": "hipstats.report",
}
_SUBMODULES = {"data", "cohort", "stats", "models", "power", "questions", "plots", "report", "cli", "notebooks"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"hipstats.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'hipstats' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


__all__ = sorted([
    "AnalysisError", "Cohort", "HipstatsError", "ParameterError", "Problem", "ReportError",
    "RunFailedError", "SimulationParameters", "SourceError", "ValidationError", "ValidationReport", "load_cohort", "schema",
    "simulate_cohort", "validate", *_LAZY,
])
