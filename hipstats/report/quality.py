"""Data-quality tables and figures for the data-quality report.

Every table is computed from a :class:`hipstats.Cohort`; the notebook only calls these.

Examples
--------
>>> import hipstats as hs
>>> from hipstats.report import quality
>>> c = hs.simulate_cohort(n_participants=24, seed=2)
>>> t = quality.measure_summary(c)
>>> {"measure", "n_readings", "median", "out_of_range"} <= set(t.columns)
True
>>> list(quality.outliers(c).columns)[:4]
['measure', 'participant_id', 'visit', 'side']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hipstats.data import schema
from hipstats.plots.style import arm_label

__all__ = ["measure_summary", "outliers", "trial_agreement", "retention", "plot_distributions", "plot_flow",
           "record_data_findings", "table1", "participant_flow", "flow_table"]


def _present(cohort) -> list[str]:
    m = cohort.measurements
    return [x for x in schema.MEASURES if (m["measure"] == x).any()]


def measure_summary(cohort) -> pd.DataFrame:
    """Per measure: readings, participants, mean, SD, min, 5th/50th/95th percentile, max, out-of-range count.

    Out-of-range counts use the plausible ranges of :data:`hipstats.data.schema.MEASURES` and are
    zero for data that passed validation; they are shown as a check.
    """
    m = cohort.measurements
    rows = []
    for name in _present(cohort):
        v = m.loc[m["measure"] == name, "value"].dropna().to_numpy(float)
        lo, hi = schema.MEASURES[name].plausible
        q = np.percentile(v, [5, 50, 95]) if v.size else [np.nan] * 3
        rows.append({"measure": name, "n_readings": int(v.size),
                     "n_participants": int(m.loc[m["measure"] == name, "participant_id"].nunique()),
                     "mean": v.mean() if v.size else np.nan, "sd": v.std(ddof=1) if v.size > 1 else np.nan,
                     "min": v.min() if v.size else np.nan, "p5": q[0], "median": q[1], "p95": q[2],
                     "max": v.max() if v.size else np.nan, "plausible": f"{lo:g} to {hi:g}",
                     "out_of_range": int(((v < lo) | (v > hi)).sum())})
    return pd.DataFrame(rows).round(2)


def outliers(cohort, *, threshold: float = 3.5, measures=None) -> pd.DataFrame:
    r"""Unusual values: robust z-score of each participant's visit value within its measure and visit.

    .. math:: z = \frac{0.6745\,(x - \tilde{x})}{\mathrm{MAD}}

    (Iglewicz & Hoaglin, 1993), where :math:`\tilde x` and MAD are the median and median
    absolute deviation of the visit values (mean of trials, primary rater, own posture) of all
    participants at that visit. Values with :math:`|z| >` ``threshold`` are listed; they are
    not removed from any analysis.

    Returns
    -------
    DataFrame
        measure, participant_id, visit, side, value, visit_median, robust_z (sorted by |z|).
    """
    cols = ["measure", "participant_id", "visit", "side", "value", "visit_median", "robust_z"]
    parts = []
    for name in measures or [x for x in _present(cohort) if schema.MEASURES[x].is_angle]:
        o = cohort.outcomes(name, pelvis="free" if name != "pelvic_tilt_deg" else None)
        if o.empty:
            continue
        g = o.groupby("visit", observed=True)["value"]
        med = g.transform("median")
        mad = (o["value"] - med).abs().groupby(o["visit"], observed=True).transform("median")
        z = 0.6745 * (o["value"] - med) / mad.where(mad > 0)
        hit = o.assign(measure=name, visit_median=med, robust_z=z)[z.abs() > threshold]
        parts.append(hit)
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)[cols]
    out = out.reindex(out["robust_z"].abs().sort_values(ascending=False).index).reset_index(drop=True)
    return out.round({"value": 1, "visit_median": 1, "robust_z": 2})


def trial_agreement(cohort) -> pd.DataFrame:
    """Per degree measure: how far repeated trials of one reading lie apart (same visit, side, rater, condition).

    Returns
    -------
    DataFrame
        measure, n_readings (with 2+ trials), median_range, p95_range, max_range (degrees).
    """
    m = cohort.measurements
    rows = []
    for name in [x for x in _present(cohort) if schema.MEASURES[x].is_angle]:
        d = m[m["measure"] == name]
        keys = ["participant_id", "visit", "side", "rater", "pelvis", "position"]
        g = d.assign(**{k: d[k].astype(object).fillna("") for k in keys if k in d}).groupby(keys, observed=True)["value"]
        rng = (g.max() - g.min())[g.size() > 1]
        if rng.empty:
            continue
        rows.append({"measure": name, "n_readings": int(rng.size), "median_range": float(rng.median()),
                     "p95_range": float(rng.quantile(0.95)), "max_range": float(rng.max())})
    return pd.DataFrame(rows).round(2)


def participant_flow(cohort, as_of: str | None = None) -> pd.DataFrame:
    """CONSORT-style flow per arm and scheduled visit, with participants not yet due kept apart from those lost.

    A participant is *due* at a visit when their baseline date plus the typical time to that visit
    (median over the participants measured there) lies on or before ``as_of``, so an interim run
    does not count participants who have not reached a visit yet as missed. Without ``as_of``
    (a finished study) everyone allocated is due at every visit.

    Returns
    -------
    DataFrame
        arm, visit, week, allocated, measured, not_yet_due, missed (allocated - measured -
        not_yet_due), retained_pct (measured as % of those due).
    """
    p = cohort.participants[["participant_id", "arm"]]
    m = cohort.measurements
    visits = cohort.scheduled_visits
    seen = m[["participant_id", "visit"]].drop_duplicates()
    cutoff = pd.Timestamp(as_of) if as_of else None
    dated = cutoff is not None and "visit_date" in m and m["visit_date"].notna().any()
    due_by: dict[str, set] = {}
    if dated and visits:
        dates = m.assign(visit_date=pd.to_datetime(m["visit_date"], errors="coerce")).dropna(subset=["visit_date"])
        first = dates[dates["visit"] == visits[0]].groupby("participant_id")["visit_date"].min()
        for v in visits:
            at = dates[dates["visit"] == v].groupby("participant_id")["visit_date"].min()
            lag = (at - first.reindex(at.index)).dropna()
            typical = lag.median() if len(lag) else pd.Timedelta(0)
            due_by[v] = set(first.index[(first + typical) <= cutoff]) | set(at.index)
    week = cohort.schedule().set_index("visit")["week"]
    rows = []
    for arm in cohort.arms:
        ids = set(p.loc[p["arm"] == arm, "participant_id"])
        for v in visits:
            measured = seen.loc[(seen["visit"] == v) & seen["participant_id"].isin(ids), "participant_id"].nunique()
            due = len(ids & due_by[v]) if dated else len(ids)
            not_due = len(ids) - max(due, measured)
            due_n = len(ids) - not_due
            rows.append({"arm": arm, "visit": v, "week": float(week.get(v, np.nan)), "allocated": len(ids),
                         "measured": measured, "not_yet_due": not_due, "missed": due_n - measured,
                         "retained_pct": 100.0 * measured / due_n if due_n else np.nan})
    return pd.DataFrame(rows, columns=["arm", "visit", "week", "allocated", "measured", "not_yet_due", "missed",
                                       "retained_pct"])


def flow_table(cohort, as_of: str | None = None) -> pd.DataFrame:
    """The flow as one row per arm: allocated, then "measured of due" at each scheduled visit (for a page)."""
    f = participant_flow(cohort, as_of)
    if f.empty:
        return pd.DataFrame(columns=["arm", "allocated"])
    out = f.groupby("arm", sort=False)["allocated"].first().to_frame()
    for v, g in f.groupby("visit", sort=False):
        g = g.set_index("arm").reindex(out.index)
        due = g["allocated"] - g["not_yet_due"]
        out[str(v).replace("_", " ")] = [f"{int(a)} of {int(b)}" + (f" ({int(c)} not yet due)" if c else "")
                                         for a, b, c in zip(g["measured"], due, g["not_yet_due"])]
    return out.reset_index()


def retention(cohort, as_of: str | None = None) -> pd.DataFrame:
    """Share of participants due at each scheduled visit who were measured, per arm (long format)."""
    return participant_flow(cohort, as_of)


def table1(cohort) -> pd.DataFrame:
    """Table 1: baseline characteristics by arm (n and missing), for the data-quality report.

    Continuous characteristics (age, height, mass, and each angle measure at baseline: mean of
    sides and trials of the primary rater in own posture) as mean (SD); categorical ones (sex,
    dominant leg, sport, site) as n (%). A "missing" row follows any characteristic with
    missing values.

    Returns
    -------
    DataFrame
        characteristic, level, one column per arm labelled "<arm> (n = k)", and "All (n = N)".
    """
    from hipstats.report.tables import MEASURE_NAMES  # noqa: PLC0415

    p = cohort.participants.copy()
    arms = [str(a) for a in cohort.arms]
    p["arm"] = p["arm"].astype(str)
    groups = [(f"{arm_label(a)} (n = {int((p['arm'] == a).sum())})", p[p["arm"] == a]) for a in arms]
    groups.append((f"All (n = {len(p)})", p))
    rows: list[dict] = []

    def add_missing(name, series_by_group):
        miss = [int(pd.Series(s).isna().sum()) for s in series_by_group]
        if any(miss):
            rows.append({"characteristic": name, "level": "missing",
                         **{g: str(k) for (g, _), k in zip(groups, miss)}})

    def continuous(name, values_by_group, digits=1):
        row = {"characteristic": name, "level": "mean (SD)"}
        for (g, _), v in zip(groups, values_by_group):
            ok = pd.to_numeric(pd.Series(v), errors="coerce").dropna()
            row[g] = (f"{ok.mean():.{digits}f} ({ok.std(ddof=1):.{digits}f})" if len(ok) > 1 else
                      f"{ok.mean():.{digits}f}" if len(ok) == 1 else "–")
        rows.append(row)
        add_missing(name, values_by_group)

    for col, name in (("age_years", "Age (years)"), ("height_cm", "Height (cm)"), ("mass_kg", "Body mass (kg)")):
        if col in p and p[col].notna().any():
            continuous(name, [g[col] for _, g in groups])
    for col, name in (("sex", "Sex"), ("dominant_leg", "Dominant leg"), ("sport", "Sport"), ("site", "Site")):
        if col not in p or not p[col].notna().any():
            continue
        counts = p[col].dropna().astype(str).value_counts()
        levels = sorted(counts.index[:7]) if len(counts) > 8 else sorted(counts.index)
        shown = levels + (["other"] if len(counts) > 8 else [])
        for lev in shown:
            row = {"characteristic": name, "level": lev}
            for g, sub in groups:
                v = sub[col].dropna().astype(str)
                k = int((~v.isin(levels)).sum()) if lev == "other" else int((v == lev).sum())
                row[g] = f"{k} ({100 * k / len(v):.0f}%)" if len(v) else "–"
            rows.append(row)
        add_missing(name, [g[col] for _, g in groups])
    if cohort.scheduled_visits:
        base = cohort.baseline_visit
        for measure in [x for x in _present(cohort) if schema.MEASURES[x].is_angle]:
            o = cohort.outcomes(measure, pelvis="free" if measure != "pelvic_tilt_deg" else None, visits=[base])
            if o.empty:
                continue
            per = o.groupby("participant_id")["value"].mean()
            name = f"{MEASURE_NAMES.get(measure, measure)} at {base.replace('_', ' ')}"
            continuous(name, [per.reindex(g["participant_id"]).to_numpy() for _, g in groups])
    return pd.DataFrame(rows, columns=["characteristic", "level", *[g for g, _ in groups]])


def plot_flow(cohort, as_of: str | None = None):
    """Figure: CONSORT-style participant flow, one column of boxes per arm (allocated, then at each
    scheduled visit: measured, missed, not yet due)."""
    from matplotlib.figure import Figure  # noqa: PLC0415
    from matplotlib.patches import FancyBboxPatch  # noqa: PLC0415

    from hipstats.plots.style import arm_palette, theme  # noqa: PLC0415

    f = participant_flow(cohort, as_of)
    arms = [str(a) for a in cohort.arms]
    visits = list(dict.fromkeys(f["visit"]))
    pal = arm_palette(arms)
    n_rows = len(visits) + 1
    width = max(6.5, min(10.0, 2.3 * len(arms)))
    with theme():
        fig = Figure(figsize=(width, 0.9 * n_rows + 0.2))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, len(arms))
        ax.set_ylim(-n_rows + 0.5, 0.5)
        ax.axis("off")
        for j, arm in enumerate(arms):
            g = f[f["arm"].astype(str) == arm].set_index("visit")
            n = int((cohort.participants["arm"].astype(str) == arm).sum())
            texts = [f"{arm_label(arm)}\nallocated {n}"]
            for v in visits:
                r = g.loc[v]
                parts = [f"measured {int(r.measured)}"]
                if r.missed:
                    parts.append(f"missed {int(r.missed)}")
                if r.not_yet_due:
                    parts.append(f"not yet due {int(r.not_yet_due)}")
                texts.append(f"{str(v).replace('_', ' ')}: " + "\n".join(parts))
            for i, text in enumerate(texts):
                y = -i
                ax.add_patch(FancyBboxPatch((j + 0.05, y - 0.36), 0.9, 0.72, boxstyle="round,pad=0.02",
                                            facecolor=pal[arm] if i == 0 else "#ffffff", edgecolor=pal[arm],
                                            linewidth=1.4, alpha=0.45 if i == 0 else 1.0))
                ax.text(j + 0.5, y, text, ha="center", va="center", fontsize=9,
                        fontweight="bold" if i == 0 else "normal")
                if i:
                    ax.annotate("", xy=(j + 0.5, y + 0.39), xytext=(j + 0.5, y + 0.61),
                                arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 1})
    return fig


def plot_distributions(cohort, measures=("hip_ir_deg", "aslr_deg", "pelvic_tilt_deg")):
    """Figure: distribution of each degree measure at the first and last scheduled visit, per arm."""
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import seaborn as sns  # noqa: PLC0415

    from hipstats.plots.style import arm_palette, measure_label, theme  # noqa: PLC0415

    measures = [x for x in measures if x in _present(cohort)]
    visits = cohort.scheduled_visits
    keep = [visits[0], visits[-1]] if len(visits) > 1 else visits[:1]
    pal = arm_palette(cohort.arms)
    arm_of = cohort.participants.set_index("participant_id")["arm"]
    with theme():
        fig, axes = plt.subplots(1, max(1, len(measures)), figsize=(4.2 * max(1, len(measures)), 3.8), squeeze=False)
        for ax, name in zip(axes[0], measures):
            o = cohort.outcomes(name, pelvis="free" if name != "pelvic_tilt_deg" else None, visits=keep)
            o = o.assign(arm=o["participant_id"].map(arm_of), visit=pd.Categorical(o["visit"], categories=keep))
            sns.boxplot(data=o, x="visit", y="value", hue="arm", hue_order=cohort.arms, palette=pal, ax=ax,
                        fliersize=2, linewidth=0.8)
            lo, hi = schema.MEASURES[name].plausible
            ax.set_title(measure_label(name).split(" (")[0], fontsize=11)
            ax.set_xlabel("")
            ax.set_ylabel("deg")
            ax.set_xticks(ax.get_xticks(), [str(t.get_text()).replace("_", " ") for t in ax.get_xticklabels()])
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            axes[0][-1].legend(handles, [arm_label(x) for x in labels], title="Arm", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                               frameon=False)
        fig.tight_layout()
    plt.close(fig)
    return fig


def record_data_findings(cohort, *, as_of: str | None = None, display: bool = True):
    """Key findings for the data: participants measured at the last scheduled visit, of those due there."""
    from hipstats.report.findings import record  # noqa: PLC0415

    f = participant_flow(cohort, as_of)
    if f.empty:
        return [record("Data", "Participants measured", None, None, None, None,
                       "No scheduled visit has measurements yet.", display=display)]
    last = f["visit"].iloc[-1]
    g = f[f["visit"] == last]
    due = int((g["allocated"] - g["not_yet_due"]).sum())
    kept, n, waiting = int(g["measured"].sum()), int(g["allocated"].sum()), int(g["not_yet_due"].sum())
    pct = 100.0 * kept / due if due else None
    per_arm = ", ".join(f"{arm_label(r.arm)} {r.retained_pct:.0f}%" for r in g.itertuples() if np.isfinite(r.retained_pct))
    label = str(last).replace("_", " ")
    wait = f"; {waiting} more have not reached {label} yet" if waiting else ""
    sentence = (f"{kept} of the {due} participants due at {label} were measured ({pct:.0f}%; by arm: {per_arm})"
                f"{wait}." if pct is not None else f"None of the {n} participants has reached {label} yet.")
    return [record("Data", f"Participants measured at {label} (% of those due; {n} allocated)", pct, None, None,
                   None, sentence, digits=0, display=display)]
