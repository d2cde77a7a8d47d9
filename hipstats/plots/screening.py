"""Figures for H3 (does an ASLR below a cutoff flag limited hip internal rotation?).

* :func:`roc_plot` -- ROC curve with its pointwise bootstrap confidence band, the clinical cutoff
  marked with its sensitivity and specificity, and the AUC with its CI; for a
  :class:`~hipstats.questions.screening.ScreeningResult` a second panel overlays the curves of the
  standing tilt classes (does anterior tilt skew the test?).

The figure draws what the result holds: the band of a
:class:`~hipstats.questions.screening.ScreeningResult` is the one its analysis computed (with the
analysis' replicates and seed); nothing is re-estimated here. Labels are in words with units,
the CI label follows the result's confidence level, colours are colour-blind safe
(:func:`hipstats.plots.style.arm_palette`) and legends sit below the axes, clear of the curves.

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
from hipstats.plots.style import arm_label, arm_palette, ci_name, theme

__all__ = ["roc_plot"]

_XLABEL = "1 - specificity (false-positive rate)"
_YLABEL = "Sensitivity (true-positive rate)"
_SCORE_WORDS = {"aslr_deg": "ASLR angle"}


def _curve_xy(r):
    c = r.curve
    fpr = 1 - c["specificity"].to_numpy()
    se = c["sensitivity"].to_numpy()
    order = np.lexsort((se, fpr))
    return fpr[order], se[order]


def _score_words(score: str) -> str:
    if score in _SCORE_WORDS:
        return _SCORE_WORDS[score]
    m = MEASURES.get(score)
    return m.label.split(" (")[0] if m is not None and m.label else arm_label(score)


def _rule_text(r, cutoff: float) -> str:
    m = MEASURES.get(r.score)
    unit = " deg" if m is not None and m.is_angle else ""
    return f"{_score_words(r.score)} {r.direction} {cutoff:g}{unit}"


def _draw_one(ax, r, *, colour, label, band, cutoff, lw=2.0, annotate=True):
    if band is not None:
        ax.fill_between(1 - band["specificity"], band["sensitivity_ci_low"], band["sensitivity_ci_high"],
                        color=colour, alpha=0.18, linewidth=0,
                        label=f"{ci_name(r)} band (pointwise, bootstrap)")
    fpr, se = _curve_xy(r)
    ax.plot(fpr, se, color=colour, lw=lw, label=label)
    if cutoff is not None:
        sens, spec = r.at(cutoff)
        ax.plot([1 - spec], [sens], marker="o", ms=8, color=colour, markeredgecolor="black", zorder=5,
                linestyle="none", label=f"{_rule_text(r, cutoff)}: sensitivity {sens:.2f}, specificity {spec:.2f}"
                if annotate else None)


def _frame_axes(ax, title):
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="chance (AUC 0.5)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel(_XLABEL)
    ax.set_ylabel(_YLABEL)
    if title:
        ax.set_title(title, fontsize=11)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=8.5, frameon=False, ncol=1)


def _auc_label(r, prefix: str = "") -> str:
    return f"{prefix}AUC {r.auc:.2f} ({ci_name(r)} {r.ci_low:.2f} to {r.ci_high:.2f})" if np.isfinite(r.ci_low) \
        else f"{prefix}AUC {r.auc:.2f} (no interval)"


def _band(r, band: bool, n_boot: int, seed):
    """The band the result holds; a bare ROCResult without one computes its own (its :meth:`ci_band`)."""
    if not band:
        return None
    if getattr(r, "band", None) is not None:
        return r.band
    return r.ci_band(np.linspace(0, 1, 101), n_boot=n_boot, seed=seed) if n_boot > 0 else None


def roc_plot(result, *, ax=None, band: bool = True, n_boot: int = 2000, seed=0,
             cutoff: float | None = None, by_class: bool = True, title: str | None = None):
    """ROC curve with its CI band and the cutoff marked.

    Parameters
    ----------
    result : ROCResult or ScreeningResult
        From :func:`hipstats.stats.roc.roc` or :func:`hipstats.questions.screening.screening_analysis`.
    ax : matplotlib Axes, optional
        Draw the main panel here (a ScreeningResult's tilt-class panel is then not drawn).
    band : bool, default True
        Draw the pointwise confidence band of sensitivity at each specificity: the one the result
        holds (a ScreeningResult's overall curve carries the band its analysis computed; none when it
        ran with ``n_boot=0``). A bare ROCResult without a band computes it with
        :meth:`ROCResult.ci_band` (``n_boot``, ``seed``).
    n_boot : int, default 2000
        Bootstrap replicates of a bare ROCResult's band.
    seed : int, optional
        Seed of a bare ROCResult's band.
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
                fig, ax = plt.subplots(figsize=(5.5, 6.6))
            else:
                fig = ax.figure
            _draw_one(ax, result, colour="#0072B2", label=_auc_label(result),
                      band=_band(result, band, n_boot, seed), cutoff=cut)
            _frame_axes(ax, title or f"ROC: {_score_words(result.score)} for {arm_label(result.condition)}")
            return fig
        if not hasattr(result, "rocs"):
            raise TypeError(f"roc_plot needs a ROCResult or ScreeningResult, got {type(result).__name__}")
        s = result.settings
        cut = s["cutoff"] if cutoff is None else cutoff
        groups = list(result.auc["group"])
        classes = [g for g in groups if g != "all"]
        drawn = [g for g in classes if g in result.rocs]
        two = by_class and bool(classes) and ax is None
        if ax is None:
            fig, axes = plt.subplots(1, 2 if two else 1, figsize=(11 if two else 5.5, 6.8), squeeze=False)
            ax = axes[0, 0]
        else:
            fig = ax.figure
        overall = result.rocs["all"]
        n = result.auc.set_index("group")
        unit = "hips" if s.get("sides") == "both" else "participants"
        _draw_one(ax, overall, colour="#000000", band=overall.band if band else None, cutoff=cut,
                  label=_auc_label(overall, f"All {n.loc['all', 'n_units']} {unit}: "))
        which = {"lower_ir": "each participant's side with less internal rotation",
                 "both": "both sides of each participant", "left": "left side", "right": "right side"}
        _frame_axes(ax, f"All participants\n({which.get(s.get('sides'), '')})")
        if two:
            ax2 = fig.axes[1]
            pal = arm_palette(classes)
            for g in drawn:
                r = result.rocs[g]
                _draw_one(ax2, r, colour=pal[g], band=None, cutoff=cut, annotate=False,
                          label=_auc_label(r, f"{arm_label(g).capitalize()} tilt, {n.loc[g, 'n_units']} {unit}: "))
            missing = [g for g in classes if g not in result.rocs]
            _frame_axes(ax2, "By standing pelvic tilt\n" + (f"(no curve for {', '.join(missing)} tilt: see the "
                                                            "table)" if missing else "(each class's own curve)"))
        condition = s.get("condition_words") or s.get("deficit_label", "")
        fig.suptitle(title or f"{_score_words(overall.score)} as a screen for {condition}; "
                              f"the dot marks {_rule_text(overall, cut)}", fontsize=12)
        fig.tight_layout()
        return fig
