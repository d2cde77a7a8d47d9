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

from hipstats.errors import AnalysisError
from hipstats.models.ancova import AncovaResult, ancova
from hipstats.models.emmeans import EMMResult, contrasts, emmeans
from hipstats.models.responders import ResponderResult, responders
from hipstats.stats.effect_sizes import hedges_g

__all__ = ["H2Result", "h2_analysis"]


class H2Result:
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
        ``arm, visit, week, emmean, se, df, ci_low, ci_high``.
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
    notes : dict
        Sub-analyses the data could not support (``ancova``, ``effect_sizes``, ``responders``)
        mapped to the reason (the :class:`AnalysisError` message); their attribute is None.
        The mixed model, EMMs and contrasts are always estimated (or the call raises).
    mdc : float
    mdc_source : str
    participant_change : pandas.DataFrame
        Participant-level baseline, final value and change (means of sides).
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def summary(self) -> pd.DataFrame:
        """Key results per active arm against the reference, at the final visit.

        Columns: ``arm, ref, diff_change`` (model, with ``ci_low``/``ci_high``/``p_adj``),
        ``ancova_diff`` (with CI and p), ``hedges_g`` (with CI), ``responders_arm``,
        ``responders_ref`` (shares), ``risk_difference`` (with CI).
        """
        ref = self.reference
        fin = self.final[(self.final["estimand"] == "difference in change")].set_index("contrast")
        anc = self.ancova.vs_ref.set_index("contrast") if self.ancova is not None else pd.DataFrame()
        g = self.effect_sizes.set_index("group") if self.effect_sizes is not None else pd.DataFrame()
        rows = []
        for arm in self.arms:
            if arm == ref:
                continue
            key = f"{arm} - {ref}"
            row = {"arm": arm, "ref": ref, "final_visit": self.visits[-1]}
            if key in fin.index:
                f = fin.loc[key]
                row.update(diff_change=f["estimate"], diff_change_ci_low=f["ci_low"],
                           diff_change_ci_high=f["ci_high"], diff_change_p_adj=f["p_adj"])
            if key in anc.index:
                a = anc.loc[key]
                row.update(ancova_diff=a["estimate"], ancova_ci_low=a["ci_low"],
                           ancova_ci_high=a["ci_high"], ancova_p_adj=a["p_adj"])
            if arm in g.index:
                row.update(hedges_g=g.loc[arm, "g"], g_ci_low=g.loc[arm, "ci_low"],
                           g_ci_high=g.loc[arm, "ci_high"])
            if self.responders is not None:
                b = self.responders.by_arm.set_index("arm")
                v = self.responders.vs_ref.set_index("arm")
                if arm in b.index and ref in b.index:
                    row.update(responders_arm=b.loc[arm, "proportion"], responders_ref=b.loc[ref, "proportion"])
                if arm in v.index:
                    row.update(risk_difference=v.loc[arm, "risk_difference"], rd_ci_low=v.loc[arm, "ci_low"],
                               rd_ci_high=v.loc[arm, "ci_high"])
            rows.append(row)
        return pd.DataFrame(rows)

    def to_frame(self) -> pd.DataFrame:
        """The EMM trajectories (arm x visit)."""
        return self.trajectories.copy()

    def plot(self, ax=None):
        """EMM trajectories per arm over weeks with CIs; returns a matplotlib Figure."""
        import matplotlib.pyplot as plt

        from hipstats.plots.style import arm_palette, theme

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
                ax.errorbar(x, s["emmean"], yerr=[s["emmean"] - s["ci_low"], s["ci_high"] - s["emmean"]],
                            fmt="o-", capsize=3, color=pal[str(arm)], label=str(arm))
            ax.set_xlabel("week")
            ax.set_ylabel(f"{self.measure} (estimated marginal mean)")
            ax.set_title(f"H2: {self.measure} by arm ({round(100 * self.confidence)}% CI)")
            ax.legend(title="arm", frameon=False)
        return fig

    def _repr_html_(self) -> str:
        fmt = lambda x: f"{x:.3g}"  # noqa: E731 - local formatter
        esc = lambda x: html.escape(str(x))  # noqa: E731 - arm names and notes come from data
        return (f"<p><b>H2 analysis</b> of {esc(self.measure)} (pelvis {esc(self.pelvis)}); reference arm "
                f"{esc(self.reference)}; {self.model.ngroups} participants, {self.model.nobs} observations; "
                + (f"MDC {self.mdc:.3g} ({esc(self.mdc_source)})</p>" if self.mdc is not None else "no MDC</p>")
                + "".join(f"<p><b>{esc(k)}</b>: not estimable: {esc(v)}</p>" for k, v in self.notes.items())
                + ("<p><b>Warning:</b> singular mixed-model fit (a variance is ~0); consider "
                   "re_formula='1'.</p>" if getattr(self.model, "singular", False) else "")
                + ("<p><b>Warning:</b> the mixed model did not converge.</p>"
                   if not getattr(self.model, "converged", True) else "")
                + self.summary().to_html(index=False, float_format=fmt)
                + "<p>Estimated marginal means</p>"
                + self.trajectories.to_html(index=False, float_format=fmt))

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
            rs = reliability_summary(cohort, measures=[measure], designs=["session-to-session"])
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
    return float(row["mdc95"]), (f"session-to-session MDC95 from the cohort's retest subset "
                                 f"(n = {int(row['n'])}, ICC = {row['icc']:.3f})")


def _participant_change(af: pd.DataFrame, base_visit: str, final_visit: str) -> pd.DataFrame:
    """Participant-level (mean of sides) baseline, final value and change."""
    sub = af[af["visit"].isin([base_visit, final_visit])]
    w = sub.pivot_table(index=["participant_id", "arm"], columns="visit", values="value",
                        aggfunc="mean", observed=True)
    w = w.reindex(columns=[base_visit, final_visit]).rename(columns={base_visit: "baseline",
                                                                     final_visit: "final"})
    w["change"] = w["final"] - w["baseline"]
    return w.reset_index()


def h2_analysis(cohort, measure: str = "hip_ir_deg", *, pelvis: str | None = "free",
                mdc: float | None = None, direction: int = +1, re_formula: str = "1 + week",
                nested: str | None = "side", covariates=(), confidence: float = 0.95,
                adjust: str = "holm") -> H2Result:
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
        responder analysis is not estimable (``responders`` None, reason in ``notes``).
    direction : {+1, -1}
        +1 when an increase is the improvement (IR, ASLR angle).
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

    Notes
    -----
    A participant-level sub-analysis that the data cannot support (ANCOVA or Hedges' g with
    fewer than two participants in an arm, responders without an MDC) does not fail the call:
    its attribute is None and ``notes[name]`` holds the reason.

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
    af = cohort.analysis_frame(measure, pelvis=pelvis)
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
    model = fit_lmm(formula, af, groups="participant_id", re_formula=re_formula, nested=nested)

    # EMM trajectories and model-based change from baseline
    emm: EMMResult = emmeans(model, "arm", by="visit", confidence=confidence)
    traj = emm.to_frame()
    traj.insert(2, "week", traj["visit"].map(nominal_week).astype(float))
    traj = traj[["arm", "visit", "week", "emmean", "se", "df", "ci_low", "ci_high"]]
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
    done = done.assign(arm=pd.Categorical(done["arm"], categories=arms))
    resp: ResponderResult | None = None if mdc is None else attempt("responders", lambda: responders(
        done, "change", "arm", mdc, direction=direction, ref=ref, confidence=confidence))
    return H2Result(
        measure=measure, pelvis=pelvis, reference=ref, arms=arms, visits=order, confidence=confidence,
        model=model, formula=formula, fixed_effects=model.summary(alpha=1 - confidence),
        variance_components=model.varcomp, emm=emm, trajectories=traj, change=change,
        vs_ref_by_visit=vs_ref, final=final, ancova=anc, effect_sizes=g, responders=resp,
        mdc=None if mdc is None else float(mdc), mdc_source=mdc_source, participant_change=pc, notes=notes)
