"""H3 -- does the ASLR score screen for an internal-rotation deficit? One call,
:func:`screening_analysis`, on a cohort: the reference condition (:func:`reference_condition`),
diagnostic accuracy at the cut-off, the ROC curve with its AUC, Youden's cut-off, overall and by
standing-tilt class, built on :mod:`hipstats.stats.accuracy` and :mod:`hipstats.stats.roc`.

Examples
--------
>>> import hipstats as hs
>>> from hipstats.questions.screening import screening_analysis
>>> res = screening_analysis(hs.simulate_cohort(80, seed=3), n_boot=200)
>>> type(res).__name__
'ScreeningResult'
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.errors import AnalysisError
from hipstats.results import Result, exclusion_note, html_table
from hipstats.stats.accuracy import (
    accuracy_table,
    check_direction,
    positive,
    require_both_classes,
    warn_cutoff_range,
)
from hipstats.stats.inference import P_ADJUST_METHODS, check_confidence, p_adjust
from hipstats.stats.roc import (
    auc_unpaired_test,
    clustered_accuracy_ci,
    obuchowski_var,
    oriented,
    roc_core,
    ROCResult,
    youden_core,
)

__all__ = ["reference_condition", "screening_analysis", "ScreeningResult"]


# ----------------------------------------------------------------------------------------------
# reference condition
# ----------------------------------------------------------------------------------------------
_DEFAULT_THRESHOLDS = {"below": 30.0}


def _threshold_for(deficit: str, threshold: float | None) -> float:
    if deficit not in ("below", "z", "side_difference"):
        raise AnalysisError(f"deficit must be 'below', 'z' or 'side_difference', got {deficit!r}")
    if threshold is None:
        if deficit not in _DEFAULT_THRESHOLDS:
            raise AnalysisError(
                f"deficit={deficit!r} needs an explicit threshold (a z value such as -1.5 for 'z', "
                f"degrees for 'side_difference'); only 'below' has a default (30 deg)")
        return _DEFAULT_THRESHOLDS[deficit]
    return float(threshold)


def reference_condition(data: pd.DataFrame, value: str = "value", *, deficit: str = "below",
                        threshold: float | None = None, mean: float | None = None,
                        sd: float | None = None, side: str = "side",
                        by: tuple[str, ...] = ("participant_id", "visit")) -> pd.Series:
    """The reference standard: whether each row has an IR deficit.

    Parameters
    ----------
    data : DataFrame
        One row per participant x side (x visit), e.g. from ``Cohort.outcomes("hip_ir_deg")``.
    value : str, default "value"
        Column with the IR value (degrees).
    deficit : {"below", "z", "side_difference"}, default "below"
        ``"below"``: deficit when value < threshold (default 30 deg).
        ``"z"``: deficit when the normative z, (value - mean) / sd, is below threshold
        (``mean``, ``sd`` and ``threshold`` required, e.g. threshold=-1.5).
        ``"side_difference"``: deficit on the lower side when it is more than ``threshold``
        degrees below the other side of the same participant (and visit); the other side is not
        a deficit. Needs both sides; rows whose other side is missing get <NA>.
    threshold : float, optional
        The cut value; see ``deficit``.
    mean, sd : float, optional
        Normative mean and SD for ``deficit="z"``.
    side : str, default "side"
        Side column (``side_difference`` only).
    by : tuple of str
        Columns (those present) that identify one participant's pair of sides.

    Returns
    -------
    Series of pandas "boolean" dtype
        True = deficit, aligned with ``data``; <NA> where the value (or the other side) is missing.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.questions.screening import reference_condition
    >>> ir = pd.DataFrame({"participant_id": ["P1", "P1", "P2", "P2"],
    ...                    "side": ["left", "right", "left", "right"],
    ...                    "value": [25.0, 38.0, 40.0, 44.0]})
    >>> reference_condition(ir).tolist()
    [True, False, False, False]
    >>> reference_condition(ir, deficit="side_difference", threshold=10).tolist()
    [True, False, False, False]
    >>> reference_condition(ir, deficit="z", mean=36, sd=9, threshold=-1).tolist()
    [True, False, False, False]
    """
    if value not in data.columns:
        raise AnalysisError(f"value column {value!r} not in data (columns: {list(data.columns)})")
    thr = _threshold_for(deficit, threshold)
    v = pd.to_numeric(data[value], errors="coerce")
    if deficit == "below":
        flag = v < thr
    elif deficit == "z":
        if mean is None or sd is None:
            raise AnalysisError("deficit='z' needs the normative mean= and sd= of IR")
        if not sd > 0:
            raise AnalysisError(f"normative sd must be positive, got {sd}")
        flag = (v - mean) / sd < thr
    else:
        if side not in data.columns:
            raise AnalysisError(f"deficit='side_difference' needs a {side!r} column")
        keys = [c for c in by if c in data.columns]
        if not keys:
            raise AnalysisError(f"deficit='side_difference' needs columns identifying a participant "
                                f"(any of {list(by)})")
        sides = data[side].astype(str).str.lower()
        if not sides.isin(["left", "right"]).all():
            raise AnalysisError(f"deficit='side_difference' needs sides 'left'/'right', found "
                                f"{sorted(set(sides) - {'left', 'right'})}")
        counts = data.assign(_s=sides).groupby(keys + ["_s"], dropna=False).size()
        if (counts > 1).any():
            raise AnalysisError("deficit='side_difference' needs one row per participant and side "
                                f"(within {keys}); average trials first")
        other_side = sides.map({"left": "right", "right": "left"})
        lookup = data.assign(_s=sides, _v=v).set_index(keys + ["_s"])["_v"]
        idx = pd.MultiIndex.from_frame(data[keys].assign(_s=other_side))
        other = pd.Series(lookup.reindex(idx).to_numpy(), index=data.index)
        flag = (other - v) > thr
        flag = flag.where(other.notna())
    out = pd.Series(flag, index=data.index).astype("boolean")
    out[v.isna().to_numpy()] = pd.NA
    return out.rename("condition")


# ----------------------------------------------------------------------------------------------
# one call on a Cohort
# ----------------------------------------------------------------------------------------------
_SUMMARY_STATS = ("sensitivity", "specificity", "ppv", "npv", "lr_positive", "lr_negative")


@dataclass
class ScreeningResult(Result):
    """Result of :func:`screening_analysis`: ASLR screening accuracy for an IR deficit.

    Attributes
    ----------
    units : DataFrame
        The analysed units: participant_id, side, score, ir, condition, standing tilt and
        tilt_class.
    accuracy : DataFrame
        Long table of the 2x2 statistics at the cutoff, per group ("all" and each tilt class).
    auc : DataFrame
        AUC with CI per group.
    youden : DataFrame
        Youden-optimal cutoff, sensitivity, specificity and J with bootstrap CIs per group.
    tilt_comparison : DataFrame
        AUC of each tilt class minus that of the neutral class (the pre-specified comparisons of H3),
        one row each: ``group``, ``reference``, ``estimate``, ``se``, ``df``, ``statistic`` (DeLong's
        unpaired D), ``p_value``, ``p_adj`` (adjusted over the comparisons by the method in ``adjust``),
        ``ci_low``, ``ci_high`` (at ``settings["confidence"]``, per comparison, not adjusted),
        ``n_participants`` (in the two classes compared); ``attrs["confidence"]``.
    rocs : dict of str to ROCResult
        The ROC curves per group (groups that could not be analysed are missing).
    not_estimable : dict of str to str
        Why a group could not be analysed (empty class, no deficits, ...).
    settings : dict
        The arguments of the analysis.
    """

    units: pd.DataFrame
    accuracy: pd.DataFrame
    auc: pd.DataFrame
    youden: pd.DataFrame
    tilt_comparison: pd.DataFrame
    rocs: dict
    not_estimable: dict = field(default_factory=dict)  # noqa: RUF009 - a Result property, set in __init__
    settings: dict = field(default_factory=dict)

    @property
    def roc(self) -> ROCResult:
        """The overall ROC curve."""
        return self.rocs["all"]

    @property
    def groups(self) -> list[str]:
        return list(self.auc["group"])

    def summary(self) -> pd.DataFrame:
        """One row per group: counts, accuracy at the cutoff, AUC and the Youden cutoff, with CIs."""
        rows = []
        for g in self.groups:
            a = self.accuracy[self.accuracy["group"] == g].set_index("statistic")
            au = self.auc[self.auc["group"] == g].iloc[0]
            yd = self.youden[self.youden["group"] == g].set_index("statistic")
            row = {"group": g, "n_units": au["n_units"], "n_participants": au["n_participants"],
                   "n_deficit": au["n_cases"],
                   "prevalence": a.loc["prevalence", "estimate"] if len(a) else np.nan}
            for stat in _SUMMARY_STATS:
                for col, suffix in (("estimate", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high")):
                    row[stat + suffix] = a.loc[stat, col] if len(a) else np.nan
            row.update(auc=au["auc"], auc_ci_low=au["auc_ci_low"], auc_ci_high=au["auc_ci_high"])
            for col, suffix in (("estimate", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high")):
                row["youden_cutoff" + suffix] = yd.loc["cutoff", col] if len(yd) else np.nan
            row["note"] = "; ".join(v for v in (self.not_estimable.get(g), self.not_estimable.get(f"{g} AUC interval"))
                                    if v)
            rows.append(row)
        return pd.DataFrame(rows)

    def to_frame(self) -> pd.DataFrame:
        """Every estimate in one long tidy frame: group, analysis, statistic, estimate, CI."""
        acc = self.accuracy.assign(analysis=f"cutoff {self.settings['cutoff']:g}")
        au = self.auc.assign(analysis="roc", statistic="auc").rename(
            columns={"auc": "estimate", "auc_ci_low": "ci_low", "auc_ci_high": "ci_high"})
        yd = self.youden.assign(analysis="youden")
        cols = ["group", "analysis", "statistic", "estimate", "ci_low", "ci_high"]
        return pd.concat([acc[cols], au[cols], yd[cols]], ignore_index=True)

    def plot(self, **kwargs):
        """ROC curves (overall with CI band, and per tilt class) with the cutoff marked; see
        :func:`hipstats.plots.screening.roc_plot`. Returns the matplotlib Figure."""
        from hipstats.plots.screening import roc_plot

        return roc_plot(self, **kwargs)

    def _repr_html_(self) -> str:
        s = self.settings
        cols = ["group", "n_units", "n_deficit", "sensitivity", "specificity", "ppv", "npv", "auc",
                "auc_ci_low", "auc_ci_high", "youden_cutoff", "note"]
        head = (f"<strong>ASLR screening for IR deficit</strong>: positive if {html.escape(s['score_measure'])} "
                f"{html.escape(s['direction'])} {s['cutoff']:g}; deficit {html.escape(s['deficit_label'])}; "
                f"units: {html.escape(s['sides'])} at {html.escape(str(s['visit']))}")
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<div>{head}{html_table(self.summary()[cols], digits=3)}"
                + (f'<ul class="hipstats-notes">{notes}</ul>' if notes else "") + "</div>")

    def __repr__(self) -> str:
        return f"ScreeningResult(groups={self.groups}, cutoff={self.settings['cutoff']:g})"


def _deficit_label(deficit, thr, mean, sd) -> str:
    if deficit == "below":
        return f"IR < {thr:g} deg"
    if deficit == "z":
        return f"IR z < {thr:g} (norm mean {mean:g}, SD {sd:g})"
    return f"IR more than {thr:g} deg below the other side"


def _condition_words(deficit, thr, mean, sd, pelvis) -> str:
    """The reference condition in words for figures and pages ("hip internal rotation below 30 deg")."""
    setup = {"neutral": " (neutral-pelvis setup)", "free": " (own posture)"}.get(str(pelvis), "")
    if deficit == "below":
        return f"hip internal rotation below {thr:g} deg{setup}"
    if deficit == "z":
        return f"hip internal rotation more than {abs(thr):g} SD {'below' if thr < 0 else 'above'} the norm{setup}"
    return f"hip internal rotation more than {thr:g} deg below the other side{setup}"


def _screening_units(cohort, *, visit, ir_measure, ir_pelvis, score_measure, score_pelvis,
                     deficit, threshold, mean, sd, sides, cuts) -> pd.DataFrame:
    visits = cohort.measurements["visit"].astype(str).unique().tolist()
    if visit == "baseline" and "baseline" not in visits:
        visit = cohort.baseline_visit
    if visit not in visits:
        raise AnalysisError(f"visit {visit!r} not in the cohort (visits: {sorted(visits)})")
    ir = cohort.outcomes(ir_measure, pelvis=ir_pelvis, visits=[visit])
    if ir.empty and ir_pelvis == "neutral":
        own = cohort.outcomes(ir_measure, pelvis="free", visits=[visit])
        if not own.empty:
            warnings.warn(f"no {ir_measure!r} readings with a neutral-pelvis setup at visit {visit!r}; the "
                          "reference condition uses own-posture IR instead (ir_pelvis='free')", UserWarning,
                          stacklevel=3)
            ir, ir_pelvis = own, "free"
    if ir.empty:
        raise AnalysisError(f"no {ir_measure!r} outcomes with pelvis={ir_pelvis!r} at visit {visit!r}")
    sc = cohort.outcomes(score_measure, pelvis=score_pelvis, visits=[visit])
    if sc.empty:
        raise AnalysisError(f"no {score_measure!r} outcomes with pelvis={score_pelvis!r} at visit {visit!r}")
    units = (ir[["participant_id", "side", "value"]].rename(columns={"value": "ir"})
             .merge(sc[["participant_id", "side", "value"]].rename(columns={"value": "score"}),
                    on=["participant_id", "side"], how="outer"))
    units["condition"] = reference_condition(units, "ir", deficit=deficit, threshold=threshold,
                                             mean=mean, sd=sd, by=("participant_id",))
    if sides == "lower_ir":
        has = units.dropna(subset=["ir"]).sort_values(["participant_id", "ir", "side"])
        units = has.groupby("participant_id", sort=False).head(1)
    elif sides in ("left", "right"):
        units = units[units["side"] == sides]
    elif sides != "both":
        raise AnalysisError(f"sides must be 'lower_ir', 'both', 'left' or 'right', got {sides!r}")
    tilt = cohort.outcomes("pelvic_tilt_deg", pelvis=None, visits=[visit])
    tilt_mean = tilt.groupby("participant_id")["value"].mean()
    units = units.assign(standing_tilt_deg=units["participant_id"].map(tilt_mean))
    units["tilt_class"] = _tilt_class(units["standing_tilt_deg"], cuts)
    units = units.sort_values(["participant_id", "side"]).reset_index(drop=True)
    units.attrs["ir_pelvis"] = ir_pelvis  # the condition actually used (after any fallback)
    return units


def _tilt_class(values, cuts) -> pd.Categorical:
    from hipstats.cohort.views import tilt_class

    return tilt_class(values, cuts=cuts)


def _analyse_group(units: pd.DataFrame, *, clustered: bool, cutoff, direction, ci, confidence,
                   n_boot, seeds, group: str):
    x = units["score"].to_numpy(float)
    y = units["condition"].to_numpy(bool)
    cl = units["participant_id"].to_numpy() if clustered else None
    require_both_classes(y, f"IR deficit in group {group!r}", "screening accuracy")
    pos = positive(x, cutoff, direction)
    tp, fp = int((pos & y).sum()), int((pos & ~y).sum())
    fn, tn = int((~pos & y).sum()), int((~pos & ~y).sum())
    acc = accuracy_table(tp, fp, fn, tn, ci=ci, confidence=confidence)
    r = roc_core(x, y, "<" if direction in ("<", "<=") else ">", confidence, "score",
                  "condition", cutoff)
    if clustered:
        acc = clustered_accuracy_ci(acc, x, y, cl, cutoff, direction, n_boot, seeds[0], confidence)
        auc, var = obuchowski_var(oriented(x, r.direction), y, cl)
        z = stats.norm.ppf(1 - (1 - confidence) / 2)
        sd = float(np.sqrt(var)) if np.isfinite(var) else np.nan
        r.se, r.ci_low, r.ci_high = sd, float(np.clip(auc - z * sd, 0, 1)), float(np.clip(auc + z * sd, 0, 1))
        r.ci_method, r._cluster = "Obuchowski clustered DeLong", cl
    yd = youden_core(x, y, r.direction, n_boot, seeds[1], confidence, "score", "condition", cluster=cl)
    return acc, r, yd


def screening_analysis(cohort, *, cutoff: float = 70.0, deficit: str = "below",
                       threshold: float | None = None, mean: float | None = None,
                       sd: float | None = None, visit: str = "baseline", by_tilt_class: bool = True,
                       cuts=None, sides: str = "lower_ir", direction: str = "<",
                       score_measure: str = "aslr_deg", score_pelvis: str | None = "free",
                       ir_measure: str = "hip_ir_deg", ir_pelvis: str | None = "neutral",
                       ci: str = "wilson", confidence: float = 0.95, n_boot: int = 2000,
                       seed=0, adjust: str = "holm") -> ScreeningResult:
    """Does an ASLR below a cutoff flag an IR deficit? Overall and by standing tilt class (H3).

    Parameters
    ----------
    cohort : hipstats.cohort.Cohort
        The cohort; uses ``cohort.outcomes`` (mean of the primary rater's trials).
    cutoff : float, default 70
        ASLR cutoff in degrees; the test is positive when ``ASLR < cutoff`` (``direction``).
    deficit : {"below", "z", "side_difference"}, default "below"
        Reference standard from IR, see :func:`reference_condition`; ``threshold`` defaults to
        30 deg for "below" and must be given otherwise; ``mean``/``sd`` are the norms for "z".
    visit : str, default "baseline"
        Visit analysed (cross-sectional accuracy).
    by_tilt_class : bool, default True
        Also analyse each standing tilt class (posterior / neutral / anterior, from standing
        pelvic tilt at the same visit) and compare each class's AUC with the neutral class.
    cuts : pair of float, optional
        Tilt class cut points; default :data:`hipstats.data.schema.DEFAULT_TILT_CUTS` (as
        :func:`hipstats.cohort.views.tilt_class`).
    sides : {"lower_ir", "both", "left", "right"}, default "lower_ir"
        Unit of analysis. The two sides of a participant are correlated, so the default keeps one
        unit per participant: the side with the lower IR (its ASLR against its IR), i.e. the
        question "does the ASLR of the worse side flag the deficit?". ``"both"`` uses both sides
        and accounts for the pairing: the AUC variance is Obuchowski's clustered DeLong variance
        and the accuracy and Youden CIs come from a bootstrap over participants.
    direction : {"<", "<=", ">", ">="}, default "<"
        Test-positive rule for the cutoff; the ROC uses "<" or ">" accordingly.
    score_measure, score_pelvis, ir_measure, ir_pelvis : str
        Measures and pelvic conditions: ASLR in own posture ("free"), IR with the neutral-pelvis
        setup ("neutral") by default, so the reference standard is not masked by tilt.
    ci : {"wilson", "exact"}
        Interval for the proportions (independent units).
    confidence : float, default 0.95
    n_boot : int, default 2000
        Bootstrap replicates (Youden CIs, the overall curve's confidence band; with ``sides="both"``
        also the accuracy CIs). 0 skips the bootstraps (NaN Youden CIs, no band).
    seed : int, optional
        Seed of the bootstraps.
    adjust : {"holm", "bonferroni", "sidak", "fdr_bh", "none"}, default "holm"
        Multiplicity adjustment of the p-values of the tilt-class comparisons
        (:func:`hipstats.stats.inference.p_adjust`).

    Returns
    -------
    ScreeningResult

    Notes
    -----
    Each group ("all", then the tilt classes) gets
    :func:`~hipstats.stats.accuracy.diagnostic_accuracy` at the cutoff, :func:`~hipstats.stats.roc.roc`
    with the DeLong CI and :func:`~hipstats.stats.roc.youden_cutoff`. A group that cannot be analysed
    (no participants, or no one with / without a deficit) keeps a row with NaN estimates and a
    note, and a warning is given; the overall group must be analysable, else AnalysisError.
    AUCs of independent tilt classes are compared with the neutral class by DeLong's unpaired
    test (pROC's ``roc.test(paired = FALSE)``: a t statistic with Welch-type df), with the interval
    that inverts it (:func:`~hipstats.stats.roc.auc_unpaired_test`); the p-values of the
    comparisons are adjusted together (``adjust``).

    Examples
    --------
    >>> from hipstats.cohort.simulate import simulate_cohort
    >>> from hipstats.questions.screening import screening_analysis
    >>> res = screening_analysis(simulate_cohort(120, seed=1), n_boot=200)
    >>> res.summary()[["group", "n_units", "sensitivity", "auc"]].shape
    (4, 4)
    """
    from hipstats.data.schema import DEFAULT_TILT_CUTS, TILT_CLASSES

    confidence = check_confidence(confidence)
    check_direction(direction, allow_auto=False)
    if ci not in ("wilson", "exact"):
        raise AnalysisError(f"ci must be 'wilson' or 'exact', got {ci!r}")
    if adjust not in P_ADJUST_METHODS:
        raise AnalysisError(f"adjust must be one of {P_ADJUST_METHODS}, got {adjust!r}")
    cuts = tuple(DEFAULT_TILT_CUTS if cuts is None else cuts)
    thr = _threshold_for(deficit, threshold)
    units = _screening_units(cohort, visit=visit, ir_measure=ir_measure, ir_pelvis=ir_pelvis,
                             score_measure=score_measure, score_pelvis=score_pelvis, deficit=deficit,
                             threshold=thr, mean=mean, sd=sd, sides=sides, cuts=cuts)
    ir_pelvis = units.attrs.get("ir_pelvis", ir_pelvis)
    complete = units.dropna(subset=["score", "condition"])
    n_excl = len(units) - len(complete)
    if n_excl:
        warnings.warn(f"{n_excl} of {len(units)} units lack an ASLR or IR value at {visit!r} and "
                      "are left out", UserWarning, stacklevel=2)
    if complete.empty:
        raise AnalysisError(f"no participant has both {score_measure!r} and {ir_measure!r} at {visit!r}")
    complete = complete.assign(condition=complete["condition"].astype(bool))
    warn_cutoff_range(complete["score"].to_numpy(float), cutoff, score_measure)
    groups = [("all", complete)]
    if by_tilt_class:
        for cls in TILT_CLASSES:
            groups.append((cls, complete[complete["tilt_class"] == cls]))
    children = np.random.SeedSequence(seed).spawn(2 * len(groups) + 1)  # the last: the overall band
    acc_rows, auc_rows, yd_rows, rocs, notes = [], [], [], {}, {}
    unit = "hip" if sides == "both" else "participant"
    label = _deficit_label(deficit, thr, mean, sd)
    for i, (g, sub) in enumerate(groups):
        base = {"group": g, "n_units": len(sub), "n_participants": sub["participant_id"].nunique(),
                "n_cases": int(sub["condition"].sum()), "n_controls": int((~sub["condition"]).sum())}
        reason = _group_reason(g, base["n_units"], base["n_cases"], unit, label, cuts)
        if reason is not None and g != "all":  # said once, in the result (summary note), not as a warning too
            notes[g] = reason
            auc_rows.append({**base, "auc": np.nan, "auc_se": np.nan, "auc_ci_low": np.nan, "auc_ci_high": np.nan,
                             "ci_method": "", "direction": ""})
            continue
        with warnings.catch_warnings():  # too few cases or controls for DeLong: recorded below with its counts
            warnings.filterwarnings("ignore", "DeLong variance needs", UserWarning)
            acc, r, yd = _analyse_group(sub, clustered=sides == "both", cutoff=cutoff,
                                        direction=direction, ci=ci, confidence=confidence,
                                        n_boot=n_boot, seeds=children[2 * i: 2 * i + 2], group=g)
        if not np.isfinite(r.se):
            youden_too = not np.isfinite(yd.loc["cutoff", ["ci_low", "ci_high"]].to_numpy(float)).all()
            notes[f"{g} AUC interval"] = (
                f"{_count(base['n_cases'], unit)} with {label} and {base['n_controls']} without: the AUC "
                f"{'and Youden-cutoff intervals need' if youden_too else 'interval needs'} at least 2 of each")
        r.score, r.condition = score_measure, f"IR deficit ({_deficit_label(deficit, thr, mean, sd)})"
        rocs[g] = r
        acc_rows.append(_plain(acc.reset_index().assign(group=g)))
        auc_rows.append({**base, "auc": r.auc, "auc_se": r.se, "auc_ci_low": r.ci_low, "auc_ci_high": r.ci_high,
                         "ci_method": r.ci_method, "direction": r.direction})
        yd_rows.append(_plain(yd.reset_index().assign(group=g, n_ties=len(yd.attrs["ties"]))))
    lead = ["group"]
    accuracy = pd.concat(acc_rows, ignore_index=True)
    accuracy = accuracy[lead + [c for c in accuracy.columns if c not in lead]]
    youden = pd.concat(yd_rows, ignore_index=True)
    youden = youden[lead + [c for c in youden.columns if c not in lead]]
    if n_boot > 0:  # the overall curve's pointwise confidence band, drawn by the figure
        rocs["all"].band = rocs["all"].ci_band(np.linspace(0, 1, 101), n_boot=n_boot, seed=children[-1])
    tilt_comparison = _tilt_comparisons(rocs, complete, confidence, adjust, notes) if by_tilt_class else \
        _tilt_comparisons({}, complete, confidence, adjust, notes)
    settings = {"cutoff": float(cutoff), "direction": direction, "deficit": deficit, "threshold": thr,
                "mean": mean, "sd": sd, "deficit_label": _deficit_label(deficit, thr, mean, sd),
                "condition_words": _condition_words(deficit, thr, mean, sd, ir_pelvis),
                "visit": visit, "sides": sides, "cuts": cuts, "score_measure": score_measure,
                "score_pelvis": score_pelvis, "ir_measure": ir_measure, "ir_pelvis": ir_pelvis,
                "ci": ci, "confidence": confidence, "n_boot": n_boot, "seed": seed, "adjust": adjust,
                "n_excluded": n_excl}
    res = ScreeningResult(units=units, accuracy=accuracy, auc=pd.DataFrame(auc_rows), youden=youden,
                          tilt_comparison=tilt_comparison, rocs=rocs, not_estimable=notes, settings=settings)
    if n_excl:
        res.add_note(exclusion_note(n_excl, f"no ASLR or no IR value at {visit}", unit="unit"))
    for what, why in notes.items():
        res.add_note(f"{what}: not estimable: {why}")
    return res


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _group_reason(group: str, n: int, n_cases: int, unit: str, label: str, cuts) -> str | None:
    """Why a group cannot be analysed (no one in it, or everyone on one side of the reference standard)."""
    where = "in this tilt class" if group != "all" else "analysed"
    if n == 0:
        return f"no {unit}s {where}" + (f" ({_class_bounds(group, cuts)})" if group != "all" else "")
    if n_cases in (0, n):
        which = "every" if n_cases == n else "no"
        return (f"{which} {unit} {where} ({n}) has {label}: accuracy needs {unit}s with and without it"
                if n > 1 else f"the only {unit} {where} {'has' if n_cases else 'does not have'} {label}: "
                              f"accuracy needs {unit}s with and without it")
    return None


_COMPARISON_COLUMNS = ["group", "reference", "estimate", "se", "df", "statistic", "p_value", "p_adj", "ci_low",
                       "ci_high", "adjust", "n_participants"]


def _tilt_comparisons(rocs: dict, units: pd.DataFrame, confidence: float, adjust: str, notes: dict,
                      reference: str = "neutral") -> pd.DataFrame:
    """The AUC of every other tilt class against the ``reference`` class (H3's pre-specified comparisons):
    DeLong's unpaired test with its interval, p-values adjusted together over the estimable ones. A comparison
    the data cannot support keeps its row with NaN and its reason in ``notes`` (``"<class> vs <reference>"``)."""
    from hipstats.data.schema import TILT_CLASSES

    rows = []
    empty = dict.fromkeys(("estimate", "se", "statistic", "df", "p_value", "ci_low", "ci_high"), np.nan)
    for g in ([c for c in TILT_CLASSES if c != reference] if rocs else []):
        n = units.loc[units["tilt_class"].isin([g, reference]), "participant_id"].nunique()
        missing = [c for c in (g, reference) if c not in rocs or not np.isfinite(rocs[c].se)]
        if missing:  # the class's own note says why, with its counts
            notes[f"{g} vs {reference}"] = " and ".join(
                f"the {c} tilt class could not be analysed" if c not in rocs else f"the AUC of the {c} tilt class has "
                "no interval" for c in missing)
            both = g in rocs and reference in rocs  # both curves, but an AUC without a variance
            stats_ = {**empty, "estimate": rocs[g].auc - rocs[reference].auc if both else np.nan}
        else:
            stats_ = auc_unpaired_test(rocs[g], rocs[reference], confidence=confidence)
        rows.append({"group": g, "reference": reference, **stats_, "adjust": adjust, "n_participants": int(n)})
    out = pd.DataFrame(rows, columns=_COMPARISON_COLUMNS)
    if len(out):
        out["p_adj"] = p_adjust(out["p_value"].to_numpy(float), adjust)
    out.attrs["confidence"] = confidence
    return out


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    df.attrs = {}
    return df


def _class_bounds(cls: str, cuts) -> str:
    lo, hi = cuts
    return {"posterior": f"standing tilt < {lo:g} deg", "neutral": f"{lo:g} <= standing tilt < {hi:g} deg",
            "anterior": f"standing tilt >= {hi:g} deg"}.get(cls, "")
