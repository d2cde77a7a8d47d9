"""Power and sample size for planning the next hip-mobility trial.

One design object, :class:`TrialDesign` (:mod:`hipstats.power.design`), describes the planned
trial and every assumption, and the same object feeds each way of answering:

* :mod:`hipstats.power.analytic`: closed forms for two-arm comparisons at the last visit
  (:func:`power_change_scores`, :func:`power_ancova`) and for the longitudinal design, as
  R's longpower (:func:`power_slope`, :func:`power_mmrm`);
* :mod:`hipstats.power.simulation`: simulation power of the longitudinal mixed model
  (:func:`simulate_power`, :func:`power_curve`), with joblib or Dask;
* :mod:`hipstats.power.params`: flat parameters as the ``hipstats power`` command and the
  power notebook give them (:func:`run_power_from_params`).

Examples
--------
>>> from hipstats.power import power_change_scores, TrialDesign, simulate_power
>>> round(power_change_scores(effect=5, sd=10, n_per_arm=64).power, 3)
0.801
>>> design = TrialDesign(arms=("control", "loading"), weeks=(0, 12), n_per_arm=40,
...                      effects={"control": 0, "loading": 6}, sd_intercept=9,
...                      sd_slope=0.0, sd_residual=6)
>>> res = simulate_power(design, test="change", n_sim=200, n_jobs=1)
>>> 0.5 < res.power < 1
True
"""

import importlib

#: public name -> module that defines it, imported on first use: a worker process that only
#: runs replicates (hipstats.power.simulation) then never imports the closed forms' scipy.stats
_LAZY = {
    "AnalyticPower": "hipstats.power.analytic", "LongitudinalPower": "hipstats.power.analytic",
    "power_ancova": "hipstats.power.analytic", "power_change_scores": "hipstats.power.analytic",
    "power_mmrm": "hipstats.power.analytic", "power_slope": "hipstats.power.analytic",
    "TrialDesign": "hipstats.power.design",
    "run_power_from_params": "hipstats.power.params",
    "PowerResult": "hipstats.power.simulation", "PowerCurveResult": "hipstats.power.simulation", "power_curve": "hipstats.power.simulation",
    "simulate_power": "hipstats.power.simulation",
    "power_curve_plot": "hipstats.plots.power",  # the figure lives with the other figures
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hipstats.power' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AnalyticPower",
    "power_change_scores",
    "power_ancova",
    "power_slope",
    "power_mmrm",
    "LongitudinalPower",
    "TrialDesign",
    "PowerResult",
    "PowerCurveResult",
    "simulate_power",
    "power_curve",
    "power_curve_plot",
    "run_power_from_params",
]
