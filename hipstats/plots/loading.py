"""Figures for H4 (loading progression and safety) and H5 (form faults).

* :func:`load_progression_plot` — weekly volume-load per arm: mean per participant with 95 % CI.
* :func:`compliance_heatmap` — participant x week: no session, ok, or load progressed after
  a session with faults or pain.
* :func:`fault_rate_plot` — share of completed exercise rows with a fault by week (per arm),
  with Wilson 95 % CIs.

Every function returns a :class:`matplotlib.figure.Figure`.

Examples
--------
>>> import matplotlib; matplotlib.use("Agg")
>>> import pandas as pd
>>> from hipstats.plots.loading import load_progression_plot
>>> weekly = pd.DataFrame({"arm": ["loading"] * 3, "week": [0, 1, 2],
...     "volume_load_kg": [400., 450., 520.], "volume_load_kg_ci_low": [350., 400., 460.],
...     "volume_load_kg_ci_high": [450., 500., 580.], "n_participants": 20})
>>> load_progression_plot(weekly).axes[0].get_ylabel()
'Weekly volume-load per participant (kg)'
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.patches import Patch

from hipstats.errors import AnalysisError
from hipstats.plots.style import arm_label, arm_palette, ci_name, legend_outside, theme

__all__ = ["load_progression_plot", "compliance_heatmap", "fault_rate_plot"]

_STATUS_COLOURS = {"no session": "#F2F2F2", "ok": "#56B4E9",
                   "progressed after fault/pain": "#D55E00"}


def _figure(ax, size):
    if ax is None:
        return plt.subplots(figsize=size)
    return ax.figure, ax


def _arm_lines(ax, df, x, y, lo, hi, order=None):
    """One line per arm with a CI band, in the shared arm colours."""
    arms = list(order) if order is not None else list(pd.unique(df["arm"]))
    pal = arm_palette(arms)
    for a in arms:
        g = df[df["arm"] == a].sort_values(x)
        if g.empty:
            continue
        ax.fill_between(g[x], g[lo], g[hi], color=pal[str(a)], alpha=0.2, linewidth=0)
        ax.plot(g[x], g[y], color=pal[str(a)], lw=2, marker="o", ms=3, label=arm_label(a))


def load_progression_plot(data, *, confidence: float | None = None, ax=None):
    """Weekly volume-load per participant in each arm: mean with 95 % CI band.

    Parameters
    ----------
    data : DataFrame
        The output of :func:`hipstats.questions.loading.volume_load` with ``level="arm_week"``
        (arm, week, volume_load_kg, volume_load_kg_ci_low, volume_load_kg_ci_high).
    confidence : float, optional
        Level of the intervals in ``data`` (for the title; default ``data.attrs["confidence"]``, else 0.95).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not (isinstance(data, pd.DataFrame) and {"arm", "week", "volume_load_kg", "volume_load_kg_ci_low"}
            <= set(data.columns)):
        raise AnalysisError("load_progression_plot draws the table of volume_load(..., "
                            "level='arm_week'): arm, week, volume_load_kg, volume_load_kg_ci_low, "
                            "volume_load_kg_ci_high")
    with theme():
        fig, ax = _figure(ax, (7, 4.5))
        _arm_lines(ax, data, "week", "volume_load_kg", "volume_load_kg_ci_low", "volume_load_kg_ci_high")
        ax.set_xlabel("Protocol week")
        ax.set_ylabel("Weekly volume-load per participant (kg)")
        ax.set_title(f"Load progression by arm (sets x reps x load; mean, {ci_name(data if confidence is None else confidence)})",
                     fontsize=11)
        ax.set_ylim(bottom=0)
        legend_outside(ax, title="Arm")
        fig.tight_layout()
    return fig


def compliance_heatmap(result, *, ax=None, max_participants: int | None = 80):
    """Participant x week heat map of the progression rule.

    Each cell is a participant-week: grey = no session logged (or all missed), blue = trained
    without breaking the rule, vermillion = the load went up after a session with form faults
    or pain at or above the threshold. Participants are grouped by arm (an arm label per block)
    and sorted by the number of violations.

    Parameters
    ----------
    result : ComplianceResult
        The result of :func:`hipstats.questions.loading.progression_compliance`.
    max_participants : int or None
        Show at most this many participants (those with most violations first); None shows all.

    Returns
    -------
    matplotlib.figure.Figure
    """
    res = result
    if not hasattr(res, "grid"):
        raise AnalysisError("compliance_heatmap draws a ComplianceResult "
                            "(hipstats.questions.loading.progression_compliance)")
    grid = res.grid.copy()
    statuses = tuple(grid["status"].cat.categories)  # COMPLIANCE_STATUS of the result
    code = grid["status"].cat.codes
    grid["_code"] = code.to_numpy()
    wide = grid.pivot_table(index="participant_id", columns="week", values="_code",
                            aggfunc="max").fillna(0)
    viol = (wide == 2).sum(axis=1)
    arm = (grid.drop_duplicates("participant_id").set_index("participant_id")["arm"]
           if "arm" in grid.columns else pd.Series("", index=wide.index))
    order = (pd.DataFrame({"arm": arm.reindex(wide.index).astype(str), "v": -viol})
             .sort_values(["arm", "v"]).index)
    if max_participants is not None and len(order) > max_participants:
        keep = viol.sort_values(ascending=False).index[:max_participants]
        order = [p for p in order if p in set(keep)]
    wide = wide.loc[order]
    cmap = ListedColormap([_STATUS_COLOURS[s] for s in statuses])
    norm = BoundaryNorm(np.arange(-0.5, len(statuses)), cmap.N)
    with theme():
        fig, ax = _figure(ax, (8, max(3.0, 0.09 * len(wide) + 1.5)))
        weeks = wide.columns.to_numpy(float)
        ax.pcolormesh(np.arange(len(weeks) + 1), np.arange(len(wide) + 1), wide.to_numpy(),
                      cmap=cmap, norm=norm)
        step = max(1, len(weeks) // 12)
        ax.set_xticks(np.arange(len(weeks))[::step] + 0.5,
                      [f"{w:g}" for w in weeks[::step]], fontsize=8)
        ax.set_yticks([])
        arms_in_order = arm.reindex(wide.index).astype(str).to_numpy()
        start = 0
        for i in range(1, len(arms_in_order) + 1):
            if i == len(arms_in_order) or arms_in_order[i] != arms_in_order[start]:
                ax.text(-0.5, (start + i) / 2, arm_label(arms_in_order[start]), ha="right", va="center",
                        fontsize=8, rotation=90)
                if i < len(arms_in_order):
                    ax.axhline(i, color="black", lw=0.8)
                start = i
        ax.invert_yaxis()
        ax.grid(False)
        ax.set_xlabel("Protocol week (weeks since start)")
        ax.set_ylabel("Participants (by arm)", labelpad=26)  # clear of the arm names beside the rows
        ax.set_title(f"Load progression rule (pain threshold {res.pain_threshold:g} NRS)")
        # the legend sits right of the grid: below it, it would run into the axis label on a short grid
        ax.legend(handles=[Patch(color=_STATUS_COLOURS[s], label=s) for s in statuses],
                  loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1, frameon=False, fontsize=8)
        fig.tight_layout()
    return fig


def fault_rate_plot(data, *, fault: str = "any", confidence: float | None = None, ax=None):
    """Share of completed exercise rows with a form fault by week, one line per arm.

    Parameters
    ----------
    data : DataFrame
        The output of :func:`hipstats.questions.faults.fault_rates` by week:
        ``by=("arm", "protocol_week")`` (or with ``week``, or without arm).
    fault : str
        ``"any"`` or one fault name.
    confidence : float, optional
        Level of the intervals in ``data`` (for the title; default ``data.attrs["confidence"]``, else 0.95).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not (isinstance(data, pd.DataFrame) and {"fault", "rate"} <= set(data.columns)):
        raise AnalysisError("fault_rate_plot draws a table of fault_rates(..., by=(\"arm\", "
                            "\"protocol_week\")): fault, rate, rate_ci_low, rate_ci_high by week")
    x = "protocol_week" if "protocol_week" in data.columns else "week"
    if x not in data.columns:
        raise AnalysisError("fault_rate_plot needs rates by week or protocol_week")
    df = data[data["fault"] == fault]
    if df.empty:
        raise AnalysisError(f"no rates for fault {fault!r}; faults present: "
                            f"{sorted(data['fault'].unique())}")
    if "arm" not in df.columns:
        df = df.assign(arm="all")
    df = df.assign(rate=100 * df["rate"], lo=100 * df["rate_ci_low"], hi=100 * df["rate_ci_high"])
    with theme():
        fig, ax = _figure(ax, (7, 4.5))
        _arm_lines(ax, df, x, "rate", "lo", "hi")
        ax.set_xlabel("Protocol week")
        what = "any form fault" if fault == "any" else fault.replace("_", " ")
        ax.set_ylabel(f"Exercise rows with {what} (%)")
        ax.set_title(f"Form fault rate by week ({ci_name(data if confidence is None else confidence).replace('CI', 'Wilson CI')})")
        ax.set_ylim(0, min(100, max(5.0, float(df["hi"].max()) * 1.1)))
        legend_outside(ax, title="Arm")
        fig.tight_layout()
    return fig
