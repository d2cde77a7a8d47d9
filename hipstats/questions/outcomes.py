"""H2 in one call: do loading protocols improve IR / ASLR more than stretching or nothing?

:func:`h2_analysis` runs the whole pre-specified analysis of a cohort for one measure and
returns tidy frames a report notebook can show:

1. **Mixed model** (:func:`hipstats.models.lmm.fit_lmm`, REML) on the per-side trial means::

       value ~ C(arm) * C(visit)  +  (1 + week | participant)  +  (1 | participant:side)

   The visit enters the fixed part as a *factor* (one mean per arm and visit, the
   "mixed model for repeated measures" mean structure). It assumes no shape for the
   trajectory, so a gain that plateaus (as exercise effects do, e.g. ``gain (1 - e^{-t/tau})``)
   is estimated without bias at every visit, which a linear ``arm x week`` slope would not do;
   with 5 visits it costs only (arms - 1) x (visits - 1) extra parameters. The random
   intercept and slope on the numeric week absorb each participant's level and drift (and,
   through the likelihood, keep the estimates valid when participants drop out at random
   given their earlier values); the nested side intercept models the left-right correlation.
2. **EMM trajectories**: estimated marginal means per arm and visit with Satterthwaite CIs
   (:func:`hipstats.models.emmeans.emmeans`), and the change from baseline per arm and visit.
3. **Contrasts**: each arm against the reference arm at every visit, and at the final visit
   the *difference in change from baseline* (arm change minus reference change; the primary
   H2 estimand) for every arm against the reference and between the active arms, with
   multiplicity-adjusted p-values.
4. **ANCOVA at end of protocol**: participant-level (mean of sides) final value ~ baseline +
   arm (:func:`hipstats.models.ancova.ancova`).
5. **Hedges' g** of the participant-level change from baseline to the final visit, each arm
   against the reference (:func:`hipstats.stats.effect_sizes.hedges_g`, exact CI).
6. **Responders**: share of each arm whose participant-level change exceeds the MDC95
   (:func:`hipstats.models.responders.responders`). Without ``mdc=``, the session-to-session
   MDC95 of the measure (same pelvis condition) is taken from
   :func:`hipstats.questions.reliability.reliability_summary` on the cohort's retest subset. That MDC
   is for a single side's trial-mean reading; applied to the mean of two sides it is
   conservative (fewer responders).

References
----------
Mallinckrodt, C. H. et al. (2008). Recommendations for the primary analysis of continuous
endpoints in longitudinal clinical trials. *Drug Information Journal*, 42, 303-319.

Vickers, A. J. & Altman, D. G. (2001). Analysing controlled trials with baseline and follow
up measurements. *BMJ*, 323, 1123-1124.

Examples
--------
>>> from hipstats.cohort.simulate import simulate_cohort
>>> from hipstats.questions.outcomes import h2_analysis
>>> res = h2_analysis(simulate_cohort(90, seed=3), "hip_ir_deg", mdc=6.0)  # doctest: +SKIP
>>> res.summary()                                                            # doctest: +SKIP
"""

from __future__ import annotations

import html
import warnings

import numpy as np
import pandas as pd

from hipstats.cohort import views
from hipstats.errors import AnalysisError
from hipstats.results import Result, html_table, resolve_direction
from hipstats.models.ancova import AncovaResult, ancova
from hipstats.models.emmeans import EMMResult, contrasts, emmeans
from hipstats.models.responders import ResponderResult, responders
from hipstats.stats.effect_sizes import hedges_g

__all__ = ["H2Result", "h2_analysis"]


class H2Result(Result):
    """Everything :func:`h2_analysis` computes, as tidy frames.

    Attributes
    ----------
    measure, pelvis, reference, arms, visits : metadata
    model : LMMResult
        The mixed model.
    fixed_effects, variance_components : pandas.DataFrame
        From the model (Satterthwaite df).
    emm : EMMResult
        Estimated marginal means per arm (``by`` visit).
    trajectories : pandas.DataFrame
        ``arm, visit, week, estimate`` (the EMM), ``se, df, ci_low, ci_high``.
    change : pandas.DataFrame
        Model-based change from baseline per arm and visit (``estimate`` = EMM(visit) -
        EMM(baseline)) with CIs.
    vs_ref_by_visit : pandas.DataFrame
        Each arm minus the reference arm at every visit.
    final : pandas.DataFrame
        At the final visit: ``estimand`` "difference in change" (primary) and "difference at
        final visit", for each arm vs the reference and between active arms.
    ancova : AncovaResult or None
    effect_sizes : pandas.DataFrame or None
        Hedges' g of the change from baseline to the final visit vs the reference.
    responders : ResponderResult or None
    not_estimable : dict
        Sub-analyses the data could not support (``ancova``, ``effect_sizes``, ``responders``)
        mapped to the reason (the :class:`AnalysisError` message); their attribute is None.
        The mixed model, EMMs and contrasts are always estimated (or the call raises).
    notes : list of str
        Rows the views left out (with counts and reasons), the MDC's source, the parts
        that are not estimable.
    mdc : float
    mdc_source : str
    participant_change : pandas.DataFrame
        Participant-level baseline, final value and change (means of sides).
    """

    _title = "H2: change by arm"

    def __init__(self, *, notes=(), not_estimable=None, **kw):
        self.__dict__.update(kw)
        self.add_notes(notes)
        for name, reason in (not_estimable or {}).items():
            self.mark_not_estimable(name, reason)

    def summary(self) -> pd.DataFrame:
        """Key results per active arm against the reference, at the final visit.

        Columns: ``arm, ref, final_visit, difference_in_change`` (model, with
        ``difference_in_change_ci_low``/``_ci_high``/``_p_adj``), ``ancova_difference`` (with
        ``_ci_low``/``_ci_high``/``_p_adj``), ``hedges_g`` (with ``_ci_low``/``_ci_high``),
        ``responders_arm``, ``responders_ref`` (shares), ``risk_difference`` (with
        ``_ci_low``/``_ci_high``).
        """
        ref = self.reference
        fin = self.final[(self.final["estimand"] == getattr(self, "key_estimand", "difference in change"))
                         ].set_index("contrast")
        anc = self.ancova.vs_ref.set_index("contrast") if self.ancova is not None else pd.DataFrame()
        g = self.effect_sizes.set_index("group") if self.effect_sizes is not None else pd.DataFrame()
        rows = []
        for arm in self.arms:
            if arm == ref:
                continue
            key = f"{arm} - {ref}"
            row = {"arm": arm, "ref": ref, "final_visit": self.visits[-1],
                   "estimand": getattr(self, "key_estimand", "difference in change")}
            if key in fin.index:
                f = fin.loc[key]
                row.update(difference_in_change=f["estimate"], difference_in_change_ci_low=f["ci_low"],
                           difference_in_change_ci_high=f["ci_high"], difference_in_change_p_adj=f["p_adj"])
            if key in anc.index:
                a = anc.loc[key]
                row.update(ancova_difference=a["estimate"], ancova_difference_ci_low=a["ci_low"],
                           ancova_difference_ci_high=a["ci_high"], ancova_difference_p_adj=a["p_adj"])
            if arm in g.index:
                row.update(hedges_g=g.loc[arm, "estimate"], hedges_g_ci_low=g.loc[arm, "ci_low"],
                           hedges_g_ci_high=g.loc[arm, "ci_high"])
            if self.responders is not None:
                b = self.responders.by_arm.set_index("arm")
                v = self.responders.vs_ref.set_index("arm")
                if arm in b.index and ref in b.index:
                    row.update(responders_arm=b.loc[arm, "proportion"], responders_ref=b.loc[ref, "proportion"])
                if arm in v.index:
                    row.update(risk_difference=v.loc[arm, "risk_difference"],
                               risk_difference_ci_low=v.loc[arm, "risk_difference_ci_low"],
                               risk_difference_ci_high=v.loc[arm, "risk_difference_ci_high"])
            rows.append(row)
        return pd.DataFrame(rows)

    def to_frame(self) -> pd.DataFrame:
        """The EMM trajectories (arm x visit)."""
        return self.trajectories.copy()

    def plot(self, ax=None):
        """EMM trajectories per arm over weeks with CIs; returns a matplotlib Figure."""
        import matplotlib.pyplot as plt

        from hipstats.plots.style import arm_palette, legend_outside, measure_label, theme

        t = self.trajectories
        with theme():
            if ax is None:
                fig, ax = plt.subplots(figsize=(6.4, 4.2))
            else:
                fig = ax.figure
            pal = arm_palette(self.arms)
            span = (t["week"].max() - t["week"].min()) or 1.0
            n = len(self.arms)
            for i, arm in enumerate(self.arms):
                s = t[t["arm"] == arm]
                x = s["week"].to_numpy(float) + (i - (n - 1) / 2) * 0.012 * span
                ax.errorbar(x, s["estimate"], yerr=[s["estimate"] - s["ci_low"], s["ci_high"] - s["estimate"]],
                            fmt="o-", capsize=3, color=pal[str(arm)], label=str(arm))
            ax.set_xlabel("Week since baseline")
            ax.set_ylabel(f"{measure_label(self.measure)}\nestimated mean")
            ax.set_title(f"{measure_label(self.measure).split(' (')[0]} by arm (bars: {round(100 * self.confidence)}% CI)",
                         fontsize=11)
            legend_outside(ax, "Arm")
            fig.tight_layout()
        return fig

    def _repr_html_(self) -> str:
        esc = lambda x: html.escape(str(x))  # noqa: E731 - labels come from the data
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return (f"<p><b>H2 analysis</b> of {esc(self.measure)} (pelvis {esc(self.pelvis)}); reference arm "
                f"{esc(self.reference)}; {self.model.ngroups} participants, {self.model.n_rows} observations; "
                + (f"MDC {self.mdc:.3g} ({esc(self.mdc_source)})</p>" if self.mdc is not None else "no MDC</p>")
                + ("<p><b>Warning:</b> singular mixed-model fit (a variance is ~0); consider "
                   "re_formula='1'.</p>" if getattr(self.model, "singular", False) else "")
                + ("<p><b>Warning:</b> the mixed model did not converge.</p>"
                   if not getattr(self.model, "converged", True) else "")
                + html_table(self.summary(), digits=3)
                + "<p>Estimated marginal means</p>"
                + html_table(self.trajectories, digits=3)
                + (f'<ul class="hipstats-notes">{notes}</ul>' if notes else ""))

    def __repr__(self) -> str:
        return (f"H2Result({self.measure}, arms={self.arms}, ref={self.reference}, "
                f"n={self.model.ngroups})\n" + self.summary().to_string(index=False))


def _cohort_mdc(cohort, measure: str, pelvis: str | None) -> tuple[float, str]:
    try:
        from hipstats.questions.reliability import reliability_summary
    except ImportError as err:  # pragma: no cover - module present in hipstats
        raise AnalysisError("mdc= is required: hipstats.questions.reliability is not available") from err
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rel = reliability_summary(cohort, measures=[measure], designs=["session-to-session"])
            rs = rel.to_frame()
    except Exception as err:  # noqa: BLE001 - any failure means: no MDC from this cohort
        raise AnalysisError(f"mdc= is required: the cohort's reliability data give no session-to-session "
                            f"MDC for {measure} ({err})") from err
    if pelvis is not None and "pelvis" in rs.columns and rs["pelvis"].notna().any():
        rs = rs[rs["pelvis"] == pelvis]
    rs = rs[np.isfinite(rs.get("mdc95", pd.Series(dtype=float)))]
    if rs.empty:
        raise AnalysisError(f"mdc= is required: no session-to-session reliability data for {measure}"
                            + (f" (pelvis {pelvis})" if pelvis else ""))
    row = rs.iloc[0]
    who = rel.primary_rater.get(measure)
    return float(row["mdc95"]), (f"session-to-session MDC95 from the cohort's retest visit {rel.retest_visit!r} "
                                 f"against {rel.baseline_visit!r}" + (f" by rater {who}" if who else "")
                                 + f" ({int(row['n_participants'])} participants, ICC = {row['icc']:.3f})")


def _participant_change(af: pd.DataFrame, base_visit: str, final_visit: str) -> pd.DataFrame:
    """Participant-level (mean of sides) baseline, final value and change (:func:`hipstats.cohort.views.visit_change`)."""
    out = views.visit_change(af, baseline=base_visit, final=final_visit, by=["arm"])
    return out[["participant_id", "arm", "baseline", "final", "change"]]


_DDF_LABEL = {"kenward-roger": "Kenward-Roger", "kenward-roger-linear": "linear Kenward-Roger",
              "satterthwaite": "Satterthwaite", "asymptotic": "asymptotic (normal)"}


def _fit_h2_mmrm(formula, af, order, covariates, covariance, ddf, fallback):
    """MMRM of the H2 mean model on participant x visit means of the sides; notes on the averaging."""
    from hipstats.models.mmrm import fit_mmrm

    keys = ["participant_id", "visit"]
    agg = (af.groupby(keys, sort=False, observed=True)
           .agg(value=("value", "mean"), arm=("arm", "first"), week=("week", "first"),
                **{c: (c, "first") for c in covariates})
           .reset_index())
    notes = []
    n_avg = len(af) - len(agg)
    if n_avg:
        notes.append(f"{len(af)} per-side values averaged into {len(agg)} participant-visit means "
                     "(an MMRM has one value per participant and visit)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        fit = fit_mmrm(formula, agg, participant="participant_id", visit="visit", visits=order,
                       covariance=covariance, ddf=ddf, fallback=list(fallback or ()))
    for w in caught:
        if not issubclass(w.category, UserWarning) or "fell back" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return fit, notes + list(fit.notes)


def h2_analysis(cohort, measure: str = "hip_ir_deg", *, pelvis: str | None = "free",
                mdc: float | None = None, direction: str = ">", re_formula: str = "1 + week",
                nested: str | None = "side", covariates=(), confidence: float = 0.95,
                adjust: str = "holm", model: str = "lmm", covariance: str = "us",
                ddf: str = "kenward-roger", fallback=("toeph", "ar1h", "csh", "cs")) -> H2Result:
    """Run the H2 analysis (mixed model, EMMs, contrasts, ANCOVA, Hedges' g, responders).

    Parameters
    ----------
    cohort : hipstats.cohort.Cohort
        The cohort; its ``analysis_frame(measure, pelvis=...)`` supplies the per-side trial
        means and its ``settings.reference`` the reference arm.
    measure : str, default "hip_ir_deg"
        Outcome measure (``hip_ir_deg`` or ``aslr_deg``; any sided or whole-body measure works).
    pelvis : str or None, default "free"
        Pelvic condition of the readings (IR in own posture by default).
    mdc : float, optional
        Minimal detectable change for the responder analysis; default: the cohort's
        session-to-session MDC95 (see module notes). When neither is available the
        responder analysis is not estimable (``responders`` None, reason in ``not_estimable``).
    direction : {">", "<"}
        ``">"`` when an increase is the improvement (IR, ASLR angle): the responder rule
        change > MDC (the old +1 / -1 are read as ">" / "<" with a deprecation warning).
    re_formula : str, default "1 + week"
        Random effects per participant (numeric week for the slope).
    nested : str or None, default "side"
        Random intercept nested within participant (ignored for whole-body measures).
    covariates : sequence of str
        Baseline covariates added to the mixed model and the ANCOVA (e.g. ``["age_years"]``).
    confidence : float, default 0.95
    adjust : str, default "holm"
        Multiplicity adjustment within each family of contrasts (any name
        :func:`hipstats.models.emmeans.contrasts` accepts, e.g. "BH"). p-values are adjusted;
        CIs are per comparison (not adjusted).

    model : {"lmm", "mmrm"}, default "lmm"
        ``"lmm"``: the mixed model above on the per-side values. ``"mmrm"``: the trial's
        regulatory-style primary analysis, a mixed model for repeated measures
        (:func:`hipstats.models.mmrm.fit_mmrm`, REML) on each participant's mean of the sides at
        each visit, ``value ~ arm * visit`` with the residual ``covariance`` across visits;
        its key finding (``key_estimand``) is the arm difference at the final visit.
    covariance : str, default "us"
        MMRM residual covariance (``"us"`` unstructured, ``"toeph"``, ``"ar1h"``, ``"csh"``,
        ``"cs"``, ... see :data:`hipstats.models.mmrm.COVARIANCES`).
    ddf : {"kenward-roger", "satterthwaite"}, default "kenward-roger"
        MMRM denominator df (and, for Kenward-Roger, adjusted SEs) of every EMM and contrast.
    fallback : sequence of str
        Simpler MMRM covariances tried in turn when the data cannot support ``covariance``
        or its fit does not converge; the one used is in ``model_description`` and ``notes``.

    Notes
    -----
    A participant-level sub-analysis that the data cannot support (ANCOVA or Hedges' g with
    fewer than two participants in an arm, responders without an MDC) does not fail the call:
    its attribute is None and ``not_estimable[name]`` holds the reason.

    Returns
    -------
    H2Result

    Examples
    --------
    >>> from hipstats.cohort.simulate import simulate_cohort
    >>> res = h2_analysis(simulate_cohort(60, seed=1), mdc=5.0)  # doctest: +SKIP
    >>> res.summary()[["arm", "diff_change", "diff_change_ci_low"]]  # doctest: +SKIP
    """
    from hipstats.models.emmeans import normalize_adjust
    from hipstats.models.lmm import fit_lmm

    adjust = normalize_adjust(adjust)
    direction = resolve_direction(direction, where="h2_analysis")
    af = cohort.analysis_frame(measure, pelvis=pelvis)
    view_notes = list(af.attrs.get("notes", []))
    af = af.dropna(subset=["value", "arm", "week"])
    arms = [a for a in cohort.arms if a in set(af["arm"].astype(object))]
    ref = cohort.settings.reference
    if ref not in arms:
        raise AnalysisError(f"reference arm {ref!r} has no {measure} data (arms with data: {arms})")
    if len(arms) < 2:
        raise AnalysisError(f"H2 needs at least two arms with {measure} data, found {arms}")
    sched = cohort.schedule()
    order = [v for v in sched.loc[sched["scheduled"], "visit"] if v in set(af["visit"])]
    if len(order) < 2:
        raise AnalysisError(f"H2 needs a baseline and at least one follow-up visit with {measure} data, "
                            f"found {order}")
    base_visit, final_visit = order[0], order[-1]
    nominal_week = sched.set_index("visit")["week"]
    for c in covariates:
        if c not in af.columns:
            raise AnalysisError(f"covariate {c!r} not found in the analysis frame")
    af = af.dropna(subset=list(covariates)).copy()
    af["arm"] = af["arm"].astype(object)
    af["visit"] = af["visit"].astype(object)
    if nested is not None and (nested not in af.columns or af[nested].isna().all()
                               or af[nested].nunique() < 2):
        nested = None

    arm_term = f"C(arm, Treatment({ref!r}), levels={arms!r})"
    visit_term = f"C(visit, levels={order!r})"
    cov_terms = "".join(f" + {c}" for c in covariates)
    formula = f"value ~ {arm_term} * {visit_term}{cov_terms}"
    model_kind = str(model).strip().lower()
    model_notes: list[str] = []
    if model_kind == "lmm":
        model = fit_lmm(formula, af, participant="participant_id", re_formula=re_formula, nested=nested)
        key_estimand = "difference in change"
        model_description = (f"linear mixed model on the per-side values, random effects {re_formula} by "
                             f"participant" + (f" and a {nested} intercept within participant" if nested else "")
                             + ", REML, Satterthwaite df")
    elif model_kind == "mmrm":
        model, model_notes = _fit_h2_mmrm(formula, af, order, covariates, covariance, ddf, fallback)
        key_estimand = "difference at final visit"
        from hipstats.models.mmrm import COVARIANCES
        model_description = (f"mixed model for repeated measures (MMRM) on each participant's mean of the "
                             f"sides per visit, {COVARIANCES[model.covariance]} residual covariance across "
                             f"visits, REML, {_DDF_LABEL.get(model.ddf, model.ddf)} df")
    else:
        raise AnalysisError(f"model must be 'lmm' or 'mmrm', got {model!r}")

    # EMM trajectories and model-based change from baseline
    emm: EMMResult = emmeans(model, "arm", by="visit", confidence=confidence)
    traj = emm.to_frame()
    traj.insert(2, "week", traj["visit"].map(nominal_week).astype(float))
    traj = traj[["arm", "visit", "week", "estimate", "se", "df", "ci_low", "ci_high"]]
    by_arm = emmeans(model, "visit", by="arm", confidence=confidence)
    change = contrasts(by_arm, "trt.vs.ctrl", ref=0, adjust="none")
    change.insert(1, "visit", [c.split(" - ")[0] for c in change["contrast"]])
    change.insert(2, "week", change["visit"].map(nominal_week).astype(float))
    change = change.drop(columns=["contrast", "p_adj", "adjust"])
    vs_ref = contrasts(emm, "trt.vs.ctrl", ref=ref, adjust=adjust)
    vs_ref.insert(1, "week", vs_ref["visit"].map(nominal_week).astype(float))

    # final visit: difference in change from baseline, and difference at the final visit
    cells = emmeans(model, ["arm", "visit"], at={"visit": [base_visit, final_visit]},
                    confidence=confidence)
    keys = list(zip(cells.frame["arm"], cells.frame["visit"], strict=True))
    pairs = [(a, ref) for a in arms if a != ref]
    actives = [a for a in arms if a != ref]
    pairs += [(actives[j], actives[i]) for i in range(len(actives)) for j in range(i + 1, len(actives))]

    def coef(a, b, with_baseline):
        c = np.zeros(len(keys))
        c[keys.index((a, final_visit))] += 1
        c[keys.index((b, final_visit))] -= 1
        if with_baseline:
            c[keys.index((a, base_visit))] -= 1
            c[keys.index((b, base_visit))] += 1
        return c

    finals = []
    for estimand, wb in (("difference in change", True), ("difference at final visit", False)):
        spec = {f"{a} - {b}": coef(a, b, wb) for a, b in pairs}
        f = contrasts(cells, spec, adjust=adjust)
        f.insert(0, "estimand", estimand)
        finals.append(f)
    final = pd.concat(finals, ignore_index=True)
    final.insert(1, "visit", final_visit)

    # participant-level: ANCOVA, Hedges' g, responders (each may be not estimable on a small cohort)
    notes: dict[str, str] = {}
    for a in cohort.arms:  # an arm without this measure is left out of every comparison: said, not dropped
        if a not in arms:
            notes[f"comparisons with {a}"] = f"the {a} arm has no readings of this measure"

    def attempt(name, fn):
        try:
            return fn()
        except AnalysisError as err:
            notes[name] = str(err)
            return None

    pc = _participant_change(af, base_visit, final_visit)
    pc = pc.merge(af.drop_duplicates("participant_id")[["participant_id", *covariates]],
                  on="participant_id", how="left") if covariates else pc
    anc: AncovaResult | None = attempt("ancova", lambda: ancova(
        pc, "final", "baseline", "arm", covariates=list(covariates), ref=ref, levels=arms,
        confidence=confidence, adjust=adjust))
    done = pc.dropna(subset=["change"])

    def effect_sizes():
        g = hedges_g(done, dv="change", group="arm", ref=ref, confidence=confidence)
        g["group"] = pd.Categorical(g["group"], categories=arms)
        g = g.sort_values("group").reset_index(drop=True)
        g["group"] = g["group"].astype(object)
        return g

    g = attempt("effect_sizes", effect_sizes)
    mdc_source = "given"
    if mdc is None:
        found = attempt("responders", lambda: _cohort_mdc(cohort, measure, pelvis))
        mdc, mdc_source = found if found is not None else (None, "not available")
        if mdc is not None:
            view_notes.append(f"responders: MDC {mdc:.3g} deg, the {mdc_source}")
    view_notes += [n for n in pc.attrs.get("notes", []) if n not in view_notes]
    done = done.assign(arm=pd.Categorical(done["arm"], categories=arms))
    resp: ResponderResult | None = None if mdc is None else attempt("responders", lambda: responders(
        done, "change", "arm", mdc, direction=direction, ref=ref, confidence=confidence))
    return H2Result(
        measure=measure, pelvis=pelvis, reference=ref, arms=arms, visits=order, confidence=confidence,
        model=model, formula=formula, model_kind=model_kind, model_description=model_description,
        key_estimand=key_estimand, model_notes=model_notes,
        fixed_effects=(model.summary(confidence) if model_kind == "lmm"
                       else model.summary(confidence=confidence)),
        variance_components=(model.varcomp if model_kind == "lmm"
                             else model.to_frame().query("component == 'residual'")
                             .drop(columns=["se", "df", "statistic", "p_value", "ci_low", "ci_high"])), emm=emm, trajectories=traj, change=change,
        vs_ref_by_visit=vs_ref, final=final, ancova=anc, effect_sizes=g, responders=resp,
        mdc=None if mdc is None else float(mdc), mdc_source=mdc_source, participant_change=pc,
        not_estimable=notes, notes=view_notes)
