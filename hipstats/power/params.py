"""Flat parameters (the ``hipstats power`` command, notebooks) to a power calculation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hipstats.errors import ParameterError
from hipstats.power.analytic import power_ancova, power_change_scores, power_mmrm, power_slope
from hipstats.power.design import (
    DEFAULTS,
    DESIGN_KEYS,
    SIMULATION_KEYS,
    TrialDesign,
    normalise_keys,
    split_params,
)
from hipstats.power.simulation import power_curve, simulate_power

__all__ = ["run_power_from_params", "plan_from_params", "Plan", "longitudinal_power_from_params"]

_ANALYTIC = {"change": power_change_scores, "ancova": power_ancova}


def run_power_from_params(params: Mapping[str, Any], *, pilot=None, pilot_label: str = "pilot"):
    """Run a power calculation from flat parameters (the ``hipstats power`` command).

    ``params["method"]`` chooses what runs:

    * ``"simulation"`` (default): a :class:`TrialDesign` from the design keys (``arms``,
      ``weeks``, ``n_per_arm``, ``effects``, ``effect_type``, ``plateau_tau_weeks``,
      ``baseline_mean``, ``sd_intercept``, ``sd_slope``, ``corr_intercept_slope``,
      ``sd_residual``, ``dropout``, ``dropout_pattern``) and :func:`simulate_power` options
      (``test``, ``target``, ``reference``, ``df``, ``alpha``, ``n_sim``, ``seed``,
      ``n_jobs``, ``client``, ``chunk_size``, ``random_slopes``, ``engine``). Several values
      of ``n_per_arm`` give a :func:`power_curve` result (:class:`PowerCurveResult`), one value a
      :class:`PowerResult`.
    * ``"slope"`` / ``"mmrm"``: the analytic longitudinal formulas (:func:`power_slope`,
      :func:`power_mmrm`) on the same design keys, see :func:`longitudinal_power_from_params`
      (a DataFrame, one row per size, with the design table in ``attrs``);
    * ``"change"`` / ``"ancova"``: :func:`power_change_scores` / :func:`power_ancova` with
      ``effect``, ``sd``, (``rho``), and ``n_per_arm`` or ``power``, ``alpha``, ``dropout``.

    ``pilot``: a pilot cohort whose variance components and dropout the design takes (see
    :func:`plan_from_params`).

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
    if method in ("slope", "mmrm"):
        return longitudinal_power_from_params(p, method, pilot=pilot, pilot_label=pilot_label)
    if method != "simulation":
        raise ParameterError("method must be 'simulation', 'slope', 'mmrm', 'change' or 'ancova', "
                             f"got {method!r}")
    plan = plan_from_params(p, pilot=pilot, pilot_label=pilot_label)
    if len(plan.sizes) > 1:
        return power_curve(plan.design, plan.sizes, **plan.run)
    return simulate_power(plan.design, **plan.run)


@dataclass(frozen=True)
class Plan:
    """A design, the simulation settings and the sizes to simulate (:func:`plan_from_params`)."""

    design: TrialDesign
    run: dict
    sizes: list


def plan_from_params(params: Mapping[str, Any], *, pilot=None, measure: str | None = None,
                     pilot_label: str = "pilot") -> Plan:
    """The design and settings that flat parameters describe (command line, notebook, API).

    Keys are :class:`TrialDesign` fields (aliases ``corr``, ``tau``, ``visits``) and
    :func:`simulate_power` settings (``n_sim``, ``seed``, ``n_jobs``/``jobs``,
    ``client``/``scheduler``, ...); ``None`` and ``""`` mean "not given", so the package
    default (:data:`hipstats.power.design.DEFAULTS`) applies and the design table says so.
    ``n_per_arm`` may list several sizes (a power curve).

    With ``pilot`` (a :class:`hipstats.Cohort`), the variance components, arms, visits and
    dropout come from the pilot (:meth:`TrialDesign.from_cohort` with outcome ``measure``,
    default ``params["pilot_measure"]`` or ``"hip_ir_deg"``); any design value given in
    *params* wins over the pilot's. Effects are never taken from the pilot: give them, or the
    defaults apply when the pilot's arms are the default arms.

    Examples
    --------
    >>> from hipstats.power.params import plan_from_params
    >>> plan = plan_from_params({"n_per_arm": "40,60", "sd_slope": "0.4", "n_sim": 100})
    >>> plan.sizes, plan.design.sources["sd_slope"], plan.design.sources["sd_residual"]
    ([40, 60], 'user', 'default')
    """
    p = normalise_keys(params)
    measure = measure or p.pop("pilot_measure", None) or "hip_ir_deg"
    unknown = set(p) - DESIGN_KEYS - SIMULATION_KEYS
    if unknown:
        raise ParameterError(f"unknown parameters: {sorted(unknown)}")
    d, s, sizes = split_params(p)
    if pilot is None:
        design = TrialDesign(**d) if sizes is None else TrialDesign(n_per_arm=sizes[0], **d)
    else:
        arms = [str(a) for a in pilot.arms]
        effects = d.pop("effects", None)
        if effects is None:
            if set(arms) != set(DEFAULTS["effects"]):
                raise ParameterError(f"the pilot's arms {arms} are not the default arms: give "
                                     "effects per arm (e.g. --effects " +
                                     ",".join(f"{a}=0" for a in arms) + ")")
            effects = dict(DEFAULTS["effects"])
        design = TrialDesign.from_cohort(
            pilot, measure, n_per_arm=sizes[0] if sizes else DEFAULTS["n_per_arm"],
            weeks=d.pop("weeks", None), effects=effects,
            effect_type=d.pop("effect_type", DEFAULTS["effect_type"]),
            plateau_tau_weeks=d.pop("plateau_tau_weeks", None),
            dropout=d.pop("dropout", "observed"), source_label=pilot_label)
        src = dict(design.sources)
        src["effects"] = "user" if "effects" in p else "default"
        src["n_per_arm"] = "user" if sizes else "default"
        design = dataclasses.replace(design, sources=src)
        d.pop("arms", None)
        if d:
            design = design.replace(**d)
    return Plan(design=design, run=s, sizes=sizes or [int(max(design.n_per_arm.values()))])


_LONGITUDINAL = {
    "slope": ("difference in mean slope, random intercept and slope model, normal approximation "
              "(Diggle et al. 2002, as longpower's lmmpower)", "arm:week"),
    "mmrm": ("difference in mean at the last visit, MMRM with unstructured covariance and monotone "
             "dropout, normal approximation (Lu, Luo & Chen 2008, as longpower's power.mmrm)", "change"),
}


def longitudinal_power_from_params(params: Mapping[str, Any], method: str, *, pilot=None,
                                   pilot_label: str = "pilot"):
    """Analytic longitudinal power (``"slope"`` or ``"mmrm"``) for the design flat parameters give.

    The design comes from :func:`plan_from_params` (same keys, defaults and pilot rules as the
    simulation), so the analytic answer and the simulated one describe one trial:

    * ``"slope"``: :func:`power_slope` with :meth:`TrialDesign.slope_inputs` (the formula
      assumes complete follow-up: the design's dropout is not used, and the table says so);
      ``slope_method`` ``"diggle"`` (default) or ``"liuliang"``;
    * ``"mmrm"``: :func:`power_mmrm` with :meth:`TrialDesign.mmrm_inputs`: the difference in
      mean change at the last visit, the visit covariance implied by the variance components
      and the retention implied by the dropout of each arm; unequal arm sizes give the
      allocation ratio.

    ``power`` (optional) solves for n per arm instead of computing power at ``n_per_arm``.
    Simulation settings (``n_sim``, ``seed``, ...) are refused: nothing is simulated.

    Returns
    -------
    pandas.DataFrame
        One row per size (:meth:`LongitudinalPower.summary`), with ``attrs["design_table"]``
        (every assumption and its source; the test and df rows say which formula answered)
        and ``attrs["notes"]``.

    Examples
    --------
    >>> from hipstats.power.params import longitudinal_power_from_params
    >>> t = longitudinal_power_from_params({"n_per_arm": "40,80"}, "mmrm")
    >>> t["n_per_arm"].tolist(), bool(t["power"].is_monotonic_increasing)
    ([40.0, 80.0], True)
    >>> t.attrs["design_table"].set_index("quantity").loc["Dropout", "source"]
    'default'
    """
    import pandas as pd  # noqa: PLC0415

    if method not in _LONGITUDINAL:
        raise ParameterError(f"method must be 'slope' or 'mmrm', got {method!r}")
    p = normalise_keys(params)
    slope_method = str(p.pop("slope_method", None) or "diggle").lower()
    if slope_method not in ("diggle", "liuliang"):
        raise ParameterError(f"slope_method must be 'diggle' or 'liuliang', got {slope_method!r}")
    if method != "slope" and slope_method != "diggle":
        raise ParameterError("slope_method applies to method 'slope'")
    target_power = p.pop("power", None)
    target_power = None if target_power in (None, "") else float(target_power)
    extra = set(p) & SIMULATION_KEYS - {"progress"}
    if extra:
        raise ParameterError(f"{sorted(extra)} apply to the simulation, not to the analytic "
                             f"--method {method}")
    p.pop("progress", None)
    test_label, test = _LONGITUDINAL[method]
    given_test = p.pop("test", None)
    if given_test not in (None, "", test):
        raise ParameterError(f"--method {method} answers the {test!r} question, not {given_test!r}")
    plan = plan_from_params(p, pilot=pilot, pilot_label=pilot_label)
    rows = []
    for n in ([None] if target_power is not None else plan.sizes):
        d = plan.design if n is None else plan.design.with_n(n)
        if method == "slope":
            kw = d.slope_inputs()
            res = power_slope(kw.pop("delta"), kw.pop("times"), **kw, method=slope_method,
                              **({"power": target_power} if n is None
                                 else {"n_per_arm": d.n_per_arm[d.target]}))
        else:
            kw = d.mmrm_inputs()
            ratio = d.n_per_arm[d.target] / d.n_per_arm[d.reference]
            res = power_mmrm(kw.pop("delta"), kw.pop("sd"), kw.pop("correlation"), kw.pop("retention"),
                             ratio=ratio, **kw, **({"power": target_power} if n is None
                                                   else {"n_per_arm": d.n_per_arm[d.target]}))
        rows.append(res.summary())
    table = pd.concat(rows, ignore_index=True)
    dt = plan.design.design_table()
    source = "user" if given_test else f"--method {method}"
    dt.loc[dt["quantity"] == "Test", ["value", "source", "why"]] = [test_label, source, ""]
    dt.loc[dt["quantity"] == "Degrees of freedom", ["value", "source", "why"]] = [
        "normal approximation (z)", f"--method {method}", ""]
    if target_power is not None:
        dt.loc[dt["quantity"] == "Participants per arm (enrolled)", ["value", "source", "why"]] = [
            f"solved for power {target_power:g}", "user (power)", ""]
    notes = []
    if method == "slope":
        dt.loc[dt["quantity"] == "Dropout", "value"] += " (the formula assumes none)"
        if slope_method == "liuliang":
            dt.loc[dt["quantity"] == "Test", "value"] = test_label.replace("Diggle et al. 2002",
                                                                           "Liu & Liang 1997")
        ref = "Liu & Liang 1997" if slope_method == "liuliang" else "Diggle et al. 2002"
        notes.append(f"Analytic normal approximation ({ref}, as R's longpower lmmpower); it "
                     "assumes complete follow-up, so dropout in the design is not used.")
    else:
        notes.append("Analytic normal approximation (Lu, Luo & Chen 2008, as R's longpower power.mmrm): "
                     "visit covariance from the variance components, retention at each visit from the "
                     "dropout; small trials have slightly less power than this (t, not normal, reference).")
    table.attrs["design_table"] = dt
    table.attrs["notes"] = notes
    return table
