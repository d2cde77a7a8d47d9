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

__all__ = ["measure_summary", "outliers", "trial_agreement", "retention", "plot_distributions", "plot_flow",
           "record_data_findings"]


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


def retention(cohort) -> pd.DataFrame:
    """Share of allocated participants measured at each scheduled visit, per arm (long format)."""
    flow = cohort.participant_flow()
    visits = cohort.scheduled_visits
    long = flow.melt(id_vars=["arm", "allocated"], value_vars=visits, var_name="visit", value_name="measured")
    long["retained_pct"] = 100.0 * long["measured"] / long["allocated"]
    week = cohort.schedule().set_index("visit")["week"]
    long["week"] = long["visit"].map(week)
    return long


def plot_flow(cohort):
    """Figure: percent of each arm measured at each scheduled visit."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from hipstats.plots.style import arm_palette, theme  # noqa: PLC0415

    r = retention(cohort)
    pal = arm_palette(cohort.arms)
    with theme():
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for arm, g in r.groupby("arm", sort=False):
            ax.plot(g["week"], g["retained_pct"], marker="o", color=pal[str(arm)], label=str(arm))
        ax.set_xlabel("week")
        ax.set_ylabel("measured (% of allocated)")
        ax.set_ylim(0, 105)
        ax.legend(title="arm", frameon=False)
        ax.set_title("Participants measured at each visit")
        fig.tight_layout()
    plt.close(fig)
    return fig


def plot_distributions(cohort, measures=("hip_ir_deg", "aslr_deg", "pelvic_tilt_deg")):
    """Figure: distribution of each degree measure at the first and last scheduled visit, per arm."""
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import seaborn as sns  # noqa: PLC0415

    from hipstats.plots.style import arm_palette, theme  # noqa: PLC0415

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
            ax.set_title(name)
            ax.set_xlabel("")
            ax.set_ylabel("degrees")
            if ax is not axes[0][0] and ax.get_legend() is not None:
                ax.get_legend().remove()
        fig.tight_layout()
    plt.close(fig)
    return fig


def record_data_findings(cohort, *, display: bool = True):
    """Key findings for the data: participants analysed and retention at the last visit."""
    from hipstats.report.findings import record  # noqa: PLC0415

    flow = cohort.participant_flow()
    last = cohort.scheduled_visits[-1]
    n, kept = int(flow["allocated"].sum()), int(flow[last].sum())
    pct = 100.0 * kept / n if n else float("nan")
    per_arm = ", ".join(f"{r.arm} {r.retained_pct:.0f}%" for r in flow.itertuples())
    return [record("Data", f"Participants measured at {last} (% of {n} allocated)", pct, None, None, None,
                   f"{kept} of {n} participants ({pct:.0f}%) were measured at {last}; by arm: {per_arm}.",
                   digits=1, display=display)]
