"""Figures for H1 (pelvic position and hip internal rotation).

* :func:`ir_vs_tilt_plot` — IR against standing pelvic tilt, one thin line per participant
  (the repeated-measures correlation fit: common within slope through each participant's
  means) and the pooled within-participant slope in bold.
* :func:`paired_pelvis_plot` — IR with a neutral-pelvis setup against own posture: a slope
  graph (one line per participant) or a difference plot against standing tilt.

Every function returns a :class:`matplotlib.figure.Figure`.

The figures draw a :class:`~hipstats.questions.pelvis.PelvisResult` (its ``frame``,
``rm_corr``, ``paired`` and ``cuts``); they never recompute the analysis.

Examples
--------
>>> import matplotlib; matplotlib.use("Agg")
>>> import hipstats as hs
>>> from hipstats.plots.pelvis import ir_vs_tilt_plot
>>> res = hs.pelvis_analysis(hs.simulate_cohort(40, seed=1), n_boot=50)
>>> fig = ir_vs_tilt_plot(res)
>>> fig.axes[0].get_xlabel()
'Standing pelvic tilt (deg, + anterior)'
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.collections import LineCollection
import numpy as np

from hipstats.cohort.views import tilt_class
from hipstats.errors import AnalysisError

from hipstats.data.schema import DEFAULT_TILT_CUTS, MEASURES, TILT_CLASSES
from hipstats.plots.style import arm_palette, ci_name, theme

__all__ = ["ir_vs_tilt_plot", "paired_pelvis_plot"]

_TILT_LABEL = MEASURES["pelvic_tilt_deg"].label
_IR_LABEL = MEASURES["hip_ir_deg"].label


def ir_vs_tilt_plot(result, *, ax=None):
    """IR against standing tilt: participants as thin lines, pooled within slope in bold.

    Each participant gets a thin line with the common within-participant slope (the
    ``rm_corr`` of the result, :func:`hipstats.stats.correlation.rm_corr` of own-posture IR on
    tilt) through their mean tilt and mean IR, spanning their own tilt range and coloured by the
    tilt class of their mean tilt; points are the visits. The bold black line is the pooled
    within-participant slope through the grand means; the dashed grey line is the
    between-participant regression of participant means.

    Parameters
    ----------
    result : PelvisResult
        The result of :func:`hipstats.questions.pelvis.pelvis_analysis`: its ``frame``
        (participant_id, tilt, ir_free), ``rm_corr`` (slope, r) and ``cuts`` are drawn.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    y, cuts = "ir_free", tuple(getattr(result, "cuts", DEFAULT_TILT_CUTS))
    pf = result.frame.dropna(subset=["tilt", y])
    rc = result.rm_corr.iloc[0]
    slope = rc["slope"]
    means = pf.groupby("participant_id")[["tilt", y]].agg(["mean", "min", "max"])
    classes = tilt_class(means[("tilt", "mean")], cuts)
    pal = arm_palette(TILT_CLASSES)
    with theme():
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 5))
        else:
            fig = ax.figure
        colours = [pal.get(str(c), "#999999") for c in classes]
        x0, x1 = means[("tilt", "min")].to_numpy(), means[("tilt", "max")].to_numpy()
        xm, ym = means[("tilt", "mean")].to_numpy(), means[(y, "mean")].to_numpy()
        segs = np.stack([np.column_stack([x0, ym + slope * (x0 - xm)]),
                         np.column_stack([x1, ym + slope * (x1 - xm)])], axis=1)
        ax.add_collection(LineCollection(segs, colors=colours, linewidths=0.7, alpha=0.6))
        pt_col = pf["participant_id"].map(dict(zip(means.index, colours)))
        ax.scatter(pf["tilt"], pf[y], s=10, c=pt_col.tolist(), alpha=0.5, linewidths=0)
        gx, gy = pf["tilt"].mean(), pf[y].mean()
        xs = np.array([pf["tilt"].min(), pf["tilt"].max()])
        ax.plot(xs, gy + slope * (xs - gx), color="black", lw=3,
                label=f"within-participant slope {slope:.2f} deg/deg (repeated-measures r = {rc['estimate']:.2f})")
        mx, my = means[("tilt", "mean")], means[(y, "mean")]
        if mx.nunique() > 1:
            b = np.polyfit(mx, my, 1)
            ax.plot(xs, np.polyval(b, xs), color="0.4", lw=1.5, ls="--",
                    label=f"between participants {b[0]:.2f} deg/deg")
        for c in cuts:
            ax.axvline(c, color="0.6", lw=0.8, ls=":")
        for cls in TILT_CLASSES:
            ax.plot([], [], color=pal[cls], lw=2, label=f"{cls} tilt (participant mean)")
        ax.set_xlabel(_TILT_LABEL)
        ax.set_ylabel(f"{_IR_LABEL}, own posture")
        ax.set_title("Hip IR against standing pelvic tilt")
        ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        fig.tight_layout()
    return fig


def paired_pelvis_plot(result, *, kind: str = "slope", ax=None):
    """Neutral-pelvis setup against own posture, one value per participant.

    ``kind="slope"``: a slope graph, one thin line per participant from own posture to
    neutral setup (mean of sides and visits) and the mean with its 95 % CI in bold.
    ``kind="difference"``: the difference neutral - own posture per participant against
    their mean standing tilt, with the mean difference and its 95 % CI as a band; a rising
    cloud means the more anterior the tilt, the more rotation the own posture hides.

    Parameters
    ----------
    result : PelvisResult
        The result of :func:`hipstats.questions.pelvis.pelvis_analysis`: the participants of
        its ``frame`` and the pooled row of its ``paired`` table are drawn.
    kind : {"slope", "difference"}
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if result.paired is None:
        raise AnalysisError("the result has no paired neutral-vs-own-posture comparison to draw")
    pf = result.frame.dropna(subset=["ir_neutral", "ir_free"])
    per = pf.groupby("participant_id")[["ir_neutral", "ir_free", "tilt"]].mean()
    pooled = result.paired.set_index("side").loc["pooled"]
    pal = arm_palette(["free", "neutral"])
    ci = ci_name(result)
    with theme():
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 5))
        else:
            fig = ax.figure
        if kind == "slope":
            x = np.array([0.0, 1.0])
            segs = np.stack([np.column_stack([np.zeros(len(per)), per["ir_free"]]),
                             np.column_stack([np.ones(len(per)), per["ir_neutral"]])], axis=1)
            ax.add_collection(LineCollection(segs, colors="0.6", linewidths=0.6, alpha=0.5))
            ax.scatter(np.zeros(len(per)), per["ir_free"], s=12, color=pal["free"], zorder=3)
            ax.scatter(np.ones(len(per)), per["ir_neutral"], s=12, color=pal["neutral"],
                       zorder=3)
            ax.plot(x, [pooled["mean_free"], pooled["mean_neutral"]], color="black", lw=3,
                    label=f"mean difference {pooled['estimate']:.1f} deg ({ci} "
                          f"{pooled['ci_low']:.1f} to {pooled['ci_high']:.1f})")
            ax.set_xticks(x, ["Own posture", "Neutral-pelvis setup"])
            ax.set_xlim(-0.3, 1.3)
            ax.set_xlabel("Pelvic condition during the IR test")
            ax.set_ylabel(_IR_LABEL)
        elif kind == "difference":
            diff = per["ir_neutral"] - per["ir_free"]
            ax.axhspan(pooled["ci_low"], pooled["ci_high"], color=pal["neutral"], alpha=0.25,
                       label=f"{ci} of the mean difference")
            ax.axhline(pooled["estimate"], color="black", lw=2,
                       label=f"mean difference {pooled['estimate']:.1f} deg")
            ax.axhline(0, color="0.4", lw=0.8, ls="--")
            ax.scatter(per["tilt"], diff, s=14, color=pal["free"], alpha=0.8)
            ax.set_xlabel(f"Participant mean {_TILT_LABEL[0].lower()}{_TILT_LABEL[1:]}")
            ax.set_ylabel("IR neutral setup - own posture (deg)")
        else:
            raise AnalysisError(f"kind must be 'slope' or 'difference', got {kind!r}")
        ax.set_title("Hip IR: neutral-pelvis setup vs own posture")
        ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
        fig.tight_layout()
    return fig
