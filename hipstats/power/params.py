"""Flat parameters (the ``hipstats power`` command, notebooks) to a power calculation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hipstats.errors import ParameterError
from hipstats.power.analytic import power_ancova, power_change_scores
from hipstats.power.design import DESIGN_KEYS, SIMULATION_KEYS, TrialDesign, normalise_keys, split_params
from hipstats.power.simulation import power_curve, simulate_power

__all__ = ["run_power_from_params"]

_ANALYTIC = {"change": power_change_scores, "ancova": power_ancova}


def run_power_from_params(params: Mapping[str, Any]):
    """Run a power calculation from flat parameters (the ``hipstats power`` command).

    ``params["method"]`` chooses what runs:

    * ``"simulation"`` (default): a :class:`TrialDesign` from the design keys (``arms``,
      ``weeks``, ``n_per_arm``, ``effects``, ``effect_type``, ``plateau_tau_weeks``,
      ``baseline_mean``, ``sd_intercept``, ``sd_slope``, ``corr_intercept_slope``,
      ``sd_residual``, ``dropout``, ``dropout_pattern``) and :func:`simulate_power` options
      (``test``, ``target``, ``reference``, ``df``, ``alpha``, ``n_sim``, ``seed``,
      ``n_jobs``, ``client``, ``chunk_size``, ``random_slopes``, ``engine``). Several values
      of ``n_per_arm`` give a :func:`power_curve` DataFrame, one value a
      :class:`PowerResult`.
    * ``"change"`` / ``"ancova"``: :func:`power_change_scores` / :func:`power_ancova` with
      ``effect``, ``sd``, (``rho``), and ``n_per_arm`` or ``power``, ``alpha``, ``dropout``.

    Strings are accepted as the command line gives them: lists as ``"0,3,6,9,12"``, per-arm
    values as ``"control=0,loading=6"`` or ``"control:0,loading:6"``; aliases ``jobs``
    (n_jobs), ``scheduler`` (client), ``corr``, ``tau``, ``visits``; dashes in keys are read
    as underscores (``n-sim``). ``None`` values are ignored (unset options), and so is an
    empty ``scheduler``.

    Examples
    --------
    >>> from hipstats.power import run_power_from_params
    >>> run_power_from_params({"method": "change", "effect": 5, "sd": 10,
    ...                        "power": 0.8}).n_per_arm
    64.0
    """
    p = normalise_keys(params)
    method = str(p.pop("method", "simulation")).lower()
    if method in _ANALYTIC:
        allowed = {"effect", "sd", "n_per_arm", "power", "alpha", "dropout"}
        if method == "ancova":
            allowed.add("rho")
        unknown = set(p) - allowed
        if unknown:
            raise ParameterError(f"unknown parameters for method {method!r}: {sorted(unknown)}")
        try:
            kw = {k: float(v) for k, v in p.items()}
        except (TypeError, ValueError) as err:
            raise ParameterError(f"analytic parameters must be numbers: {err}") from None
        return _ANALYTIC[method](**kw)
    if method != "simulation":
        raise ParameterError(f"method must be 'simulation', 'change' or 'ancova', got {method!r}")
    unknown = set(p) - DESIGN_KEYS - SIMULATION_KEYS
    if unknown:
        raise ParameterError(f"unknown parameters: {sorted(unknown)}")
    d, s, sizes = split_params(p)
    design = TrialDesign(n_per_arm=sizes[0], **d)
    if len(sizes) > 1:
        return power_curve(design, sizes, **s)
    return simulate_power(design, **s)
