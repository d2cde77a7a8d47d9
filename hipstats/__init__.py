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

#: public name -> module that defines it (imported lazily on first attribute access)
_LAZY: dict[str, str] = {
    # reliability (R)
    "icc": "hipstats.reliability", "mdc": "hipstats.reliability", "reliability_summary": "hipstats.reliability",
    "bland_altman": "hipstats.reliability", "BlandAltmanResult": "hipstats.reliability",
    "cohen_kappa": "hipstats.reliability", "fleiss_kappa": "hipstats.reliability", "ICC_FORMS": "hipstats.reliability",
    # protocol models (H2)
    "fit_lmm": "hipstats.models.lmm", "LMMResult": "hipstats.models.lmm", "lrt": "hipstats.models.lmm",
    "emmeans": "hipstats.models.emmeans", "emtrends": "hipstats.models.emmeans",
    "contrasts": "hipstats.models.emmeans", "EMMResult": "hipstats.models.emmeans",
    "ancova": "hipstats.models.ancova", "AncovaResult": "hipstats.models.ancova",
    "hedges_g": "hipstats.models.effect_sizes",
    "responders": "hipstats.models.responders", "ResponderResult": "hipstats.models.responders",
    "h2_analysis": "hipstats.models.h2", "H2Result": "hipstats.models.h2",
    # pelvic positioning (H1)
    "tilt_class": "hipstats.pelvis", "paired_pelvis_difference": "hipstats.pelvis", "rm_corr": "hipstats.pelvis",
    "within_between": "hipstats.pelvis", "ir_by_tilt_class": "hipstats.pelvis",
    "pelvis_analysis": "hipstats.pelvis", "PelvisResult": "hipstats.pelvis",
    # screening (H3)
    "diagnostic_accuracy": "hipstats.screening", "roc": "hipstats.screening", "ROCResult": "hipstats.screening",
    "roc_test": "hipstats.screening", "youden_cutoff": "hipstats.screening",
    "reference_condition": "hipstats.screening", "screening_analysis": "hipstats.screening",
    "ScreeningResult": "hipstats.screening",
    # loading (H4) and faults (H5)
    "volume_load": "hipstats.loading", "progression_slopes": "hipstats.loading", "adherence": "hipstats.loading",
    "progression_compliance": "hipstats.loading", "pain_flags": "hipstats.loading",
    "dose_response": "hipstats.loading", "loading_analysis": "hipstats.loading", "pooled_rate": "hipstats.loading",
    "LoadingResult": "hipstats.loading",
    "fault_rates": "hipstats.faults", "fault_trend": "hipstats.faults",
    "fault_outcome_association": "hipstats.faults", "faults_analysis": "hipstats.faults",
    "FaultsResult": "hipstats.faults",
    # trial planning
    "power_change_scores": "hipstats.power.analytic", "power_ancova": "hipstats.power.analytic",
    "AnalyticPower": "hipstats.power.analytic", "power_slope": "hipstats.power.analytic",
    "power_mmrm": "hipstats.power.analytic", "LongitudinalPower": "hipstats.power.analytic",
    "TrialDesign": "hipstats.power.design",
    "simulate_power": "hipstats.power.simulation", "power_curve": "hipstats.power.simulation",
    "PowerResult": "hipstats.power.simulation", "power_curve_plot": "hipstats.plots.power",
    # reports
    "run_reports": "hipstats.report", "list_notebooks": "hipstats.report",
}
_SUBMODULES = {"reliability", "models", "pelvis", "screening", "loading", "faults", "power", "plots", "report",
               "io", "normalize", "cohort", "simulate", "validation", "cli"}


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
    "SimulationParameters", "SourceError", "ValidationError", "ValidationReport", "load_cohort", "schema",
    "simulate_cohort", "validate", *_LAZY,
])
