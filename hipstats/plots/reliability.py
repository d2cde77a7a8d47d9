"""Figures for measurement agreement: the Bland-Altman plot.

Examples
--------
>>> import pandas as pd
>>> from hipstats.plots.reliability import bland_altman_plot
>>> from hipstats.stats.agreement import bland_altman
>>> df = pd.DataFrame({"r1": [30, 41, 35, 28, 44, 38], "r2": [32, 40, 37, 31, 45, 37]})
>>> fig = bland_altman_plot(bland_altman(df, x="r1", y="r2"))
>>> len(fig.axes)
1
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hipstats.plots.style import arm_palette, theme

__all__ = ["bland_altman_plot"]


def bland_altman_plot(result, *, ax=None, show_ci: bool = True, show_regression: bool = False,
                      max_legend: int = 12, title: str | None = None, unit: str = ""):
    """Bland-Altman plot: difference against mean, with bias, limits of agreement and CIs.

    Parameters
    ----------
    result : BlandAltmanResult
        A result of :func:`hipstats.stats.agreement.bland_altman` (the figure draws its numbers
        and never recomputes them).
    ax : matplotlib Axes, optional
        Draw into this axes; a new figure is made otherwise.
    show_ci : bool
        Shade the confidence intervals of the bias and of both limits.
    show_regression : bool
        Draw the proportional-bias regression line (difference on mean).
    max_legend : int
        With repeated measures, subjects are coloured and listed in the legend up to this many.
    title, unit : str
        Title (default built from the column names) and unit appended to the axis labels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    res = result
    pts = res.points
    suffix = f" ({unit})" if unit else ""
    with theme():
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4.5))
        else:
            fig = ax.figure
        hue = None
        palette = None
        if "participant_id" in pts.columns and pts["participant_id"].nunique() <= max_legend:
            hue = pts["participant_id"].astype(str)
            palette = arm_palette(pd.unique(hue))
        sns.scatterplot(x=pts["pair_mean"], y=pts["pair_difference"], hue=hue, palette=palette, ax=ax,
                        color=None if hue is not None else "#0072B2", alpha=0.8,
                        edgecolor="white", linewidth=0.5, legend=hue is not None)
        lines = [("bias", res.bias, res.bias_ci, "#333333", "-"),
                 ("lower LoA", res.loa_low, res.loa_low_ci, "#D55E00", "--"),
                 ("upper LoA", res.loa_high, res.loa_high_ci, "#D55E00", "--")]
        for label, value, ci, colour, style in lines:
            ax.axhline(value, color=colour, linestyle=style, linewidth=1.4)
            if show_ci:
                ax.axhspan(ci[0], ci[1], color=colour, alpha=0.12, linewidth=0)
            ax.annotate(f"{label} {value:.3g}", xy=(1.0, value), xycoords=("axes fraction", "data"),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=9,
                        color=colour, annotation_clip=False)
        ax.axhline(0.0, color="#999999", linewidth=0.8, zorder=0)
        if show_regression and np.isfinite(res.slope):
            xs = np.linspace(pts["pair_mean"].min(), pts["pair_mean"].max(), 50)
            ax.plot(xs, res.intercept + res.slope * xs, color="#009E73", linewidth=1.2,
                    label=f"slope {res.slope:.3g} (p = {res.slope_p_value:.2g})")
        if hue is not None:
            ax.legend(title="participant", fontsize=7, title_fontsize=8, loc="upper left",
                      bbox_to_anchor=(1.12, 1.0), frameon=False)
        elif show_regression and np.isfinite(res.slope):
            ax.legend(loc="best", fontsize=8)
        ax.set_xlabel(f"mean of {res.x} and {res.y}{suffix}")
        ax.set_ylabel(f"{res.x} \u2212 {res.y}{suffix}")
        ci = f", {round(100 * res.confidence)}% CIs shaded" if show_ci else ""
        ax.set_title(title or f"Bland-Altman: {res.x} vs {res.y} ({res.method}, n = {res.n_pairs}{ci})",
                     fontsize=10)
        fig.tight_layout()
    return fig
