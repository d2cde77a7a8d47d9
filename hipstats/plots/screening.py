"""Figures for H3 (does an ASLR below a cutoff flag limited hip internal rotation?).

* :func:`roc_plot` -- ROC curve with a pointwise bootstrap confidence band, the clinical cutoff
  marked with its sensitivity and specificity, and the AUC with its CI; for a
  :class:`~hipstats.questions.screening.ScreeningResult` a second panel overlays the curves of the
  standing tilt classes (does anterior tilt skew the test?).

Returns a :class:`matplotlib.figure.Figure`.

Examples
--------
>>> import matplotlib; matplotlib.use("Agg")
>>> import numpy as np, pandas as pd
>>> from hipstats.stats.roc import roc
>>> from hipstats.plots.screening import roc_plot
>>> rng = np.random.default_rng(0)
>>> y = rng.random(150) < 0.4
>>> df = pd.DataFrame({"aslr": rng.normal(80 - 12 * y, 12), "deficit": y})
>>> fig = roc_plot(roc(df, "aslr", "deficit", cutoff=70), n_boot=200)
>>> fig.axes[0].get_xlabel()
'1 - specificity (false-positive rate)'
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from hipstats.data.schema import MEASURES
from hipstats.plots.style import arm_palette, theme

__all__ = ["roc_plot"]

_XLABEL = "1 - specificity (false-positive rate)"
_YLABEL = "Sensitivity (true-positive rate)"


def _curve_xy(r):
    c = r.curve
    fpr = 1 - c["specificity"].to_numpy()
    se = c["sensitivity"].to_numpy()
    order = np.lexsort((se, fpr))
    return fpr[order], se[order]


def _rule_text(r, cutoff: float) -> str:
    m = MEASURES.get(r.score)
    if m is not None and m.label:
        unit = " deg" if m.is_angle else ""
        return f"{m.label.split(' (')[0]} {r.direction} {cutoff:g}{unit}"
    return f"{r.score} {r.direction} {cutoff:g}"


def _draw_one(ax, r, *, colour, label, band, n_boot, seed, cutoff, lw=2.0, annotate=True):
    if band:
        b = r.ci_band(np.linspace(0, 1, 101), n_boot=n_boot, seed=seed)
        ax.fill_between(1 - b["specificity"], b["sensitivity_ci_low"], b["sensitivity_ci_high"], color=colour, alpha=0.18,
                        linewidth=0, label=f"{round(100 * r.confidence)}% CI band (bootstrap)")
    fpr, se = _curve_xy(r)
    ax.plot(fpr, se, color=colour, lw=lw, label=label)
    if cutoff is not None:
        sens, spec = r.at(cutoff)
        ax.plot([1 - spec], [sens], marker="o", ms=8, color=colour, markeredgecolor="black", zorder=5)
        if annotate:
            ax.annotate(f"{_rule_text(r, cutoff)}\nSe {sens:.2f}, Sp {spec:.2f}", xy=(1 - spec, sens),
                        xytext=(12, -28), textcoords="offset points", fontsize=9,
                        arrowprops={"arrowstyle": "-", "color": "0.4"})


def _frame_axes(ax, title):
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="no discrimination")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel(_XLABEL)
    ax.set_ylabel(_YLABEL)
    if title:
        ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8, frameon=True)


def _auc_label(r, prefix: str = "") -> str:
    pct = round(100 * r.confidence)
    return f"{prefix}AUC {r.auc:.2f} ({pct}% CI {r.ci_low:.2f}-{r.ci_high:.2f})"


def roc_plot(result, *, ax=None, band: bool = True, n_boot: int = 2000, seed=0,
             cutoff: float | None = None, by_class: bool = True, title: str | None = None):
    """ROC curve with a CI band and the cutoff marked.

    Parameters
    ----------
    result : ROCResult or ScreeningResult
        From :func:`hipstats.stats.roc.roc` or :func:`hipstats.questions.screening.screening_analysis`.
    ax : matplotlib Axes, optional
        Draw the main panel here (a ScreeningResult's tilt-class panel is then not drawn).
    band : bool, default True
        Draw the pointwise bootstrap band of sensitivity at each specificity
        (:meth:`ROCResult.ci_band`, as pROC's ``ci.se``; participants are resampled when both
        sides were analysed).
    n_boot : int, default 2000
        Bootstrap replicates of the band.
    seed : int, optional
        Seed of the band's bootstrap.
    cutoff : float, optional
        Cutoff to mark; default the result's cutoff (70 deg in screening_analysis).
    by_class : bool, default True
        For a ScreeningResult, add a panel with one curve per standing tilt class.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    with theme():
        if hasattr(result, "curve") and hasattr(result, "auc") and not hasattr(result, "rocs"):
            cut = result.cutoff if cutoff is None else cutoff
            if ax is None:
                fig, ax = plt.subplots(figsize=(5.5, 5.5))
            else:
                fig = ax.figure
            _draw_one(ax, result, colour="#0072B2", label=_auc_label(result), band=band,
                      n_boot=n_boot, seed=seed, cutoff=cut)
            _frame_axes(ax, title or f"ROC: {result.score} for {result.condition}")
            return fig
        if not hasattr(result, "rocs"):
            raise TypeError(f"roc_plot needs a ROCResult or ScreeningResult, got {type(result).__name__}")
        cut = result.settings["cutoff"] if cutoff is None else cutoff
        classes = [g for g in result.rocs if g != "all"]
        two = by_class and bool(classes) and ax is None
        if ax is None:
            fig, axes = plt.subplots(1, 2 if two else 1, figsize=(11 if two else 5.5, 5.5),
                                     squeeze=False)
            ax = axes[0, 0]
        else:
            fig = ax.figure
        overall = result.rocs["all"]
        n = result.auc.set_index("group")
        _draw_one(ax, overall, colour="#000000", band=band, n_boot=n_boot, seed=seed, cutoff=cut,
                  label=_auc_label(overall, f"all (n = {n.loc['all', 'n_units']}): "))
        unit = {"lower_ir": "lower-IR side of each participant", "both": "both sides, clustered",
                "left": "left side", "right": "right side"}.get(result.settings["sides"], "")
        _frame_axes(ax, f"All participants ({unit})")
        if two:
            ax2 = fig.axes[1]
            pal = arm_palette(classes)
            for g in classes:
                r = result.rocs[g]
                _draw_one(ax2, r, colour=pal[g], band=False, n_boot=n_boot, seed=seed, cutoff=cut,
                          label=_auc_label(r, f"{g} (n = {n.loc[g, 'n_units']}): "), annotate=False)
            missing = [g for g in result.not_estimable]
            _frame_axes(ax2, "By standing tilt class" + (f" (no curve: {', '.join(missing)})"
                                                          if missing else ""))
        fig.suptitle(title or f"ASLR screening for {result.settings['deficit_label']}: "
                              f"{_rule_text(overall, cut)} marked", fontsize=12)
        fig.tight_layout()
        return fig
