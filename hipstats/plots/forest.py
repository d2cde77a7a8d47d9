"""Forest plot of key effects: one row per estimate with its confidence interval, one panel per unit.

Examples
--------
>>> import pandas as pd
>>> from hipstats.plots.forest import forest_plot
>>> rows = pd.DataFrame({"label": ["B minus A", "C minus A"], "estimate": [1.9, 7.3], "ci_low": [0.2, 5.7],
...                      "ci_high": [3.5, 8.9], "panel": ["Difference in change (deg)"] * 2, "null": [0.0, 0.0]})
>>> fig = forest_plot(rows, confidence=0.95)
>>> [ax.get_xlabel() for ax in fig.axes]
['Difference in change (deg), 95% CI']
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from hipstats.plots.style import theme

__all__ = ["forest_plot"]


def forest_plot(rows: pd.DataFrame, *, confidence: float = 0.95, wrap: int = 48, width: float = 7.6):
    """Figure: estimates with CIs, grouped into panels (``panel`` column), a dashed line at ``null``.

    Parameters
    ----------
    rows : DataFrame
        ``label``, ``estimate``, ``ci_low``, ``ci_high``, ``panel`` and optionally ``null``
        (value of no effect, drawn as a dashed line) and ``group`` (colour).
    confidence : float
        Level of the intervals (axis label).
    wrap : int
        Characters per line of a row label.
    width : float
        Figure width in inches.
    """
    from matplotlib.figure import Figure  # noqa: PLC0415  (no pyplot: safe in any process)

    rows = rows.reset_index(drop=True)
    panels = list(dict.fromkeys(rows["panel"]))
    lines = [max(1, len(textwrap.wrap(str(x), wrap))) for x in rows["label"]]
    heights = [sum(0.22 + 0.16 * lines[i] for i in rows.index[rows["panel"] == p]) + 0.55 for p in panels]
    level = f"{round(100 * confidence)}% CI"
    with theme():
        fig = Figure(figsize=(width, sum(heights) + 0.2), layout="constrained")
        axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
        for ax, panel in zip(axes, panels):
            sub = rows[rows["panel"] == panel]
            y = np.arange(len(sub))[::-1]
            est, lo, hi = (sub[c].to_numpy(float) for c in ("estimate", "ci_low", "ci_high"))
            ax.hlines(y, lo, hi, color="#0072B2", linewidth=2)
            ax.plot(est, y, "o", color="#0072B2", markersize=6, zorder=3)
            nulls = sub["null"].dropna().unique() if "null" in sub else []
            for v in nulls:
                ax.axvline(float(v), color="#555555", linestyle="--", linewidth=1, zorder=1)
            ax.set_yticks(y, ["\n".join(textwrap.wrap(str(x), wrap)) for x in sub["label"]], fontsize=9)
            ax.set_ylim(-0.6, len(sub) - 0.4)
            ax.set_xlabel(f"{panel}, {level}", fontsize=10)
            ax.tick_params(axis="x", labelsize=9)
            ax.grid(axis="y", visible=False)
    return fig
