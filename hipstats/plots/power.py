"""Power curve figure (:func:`hipstats.power.power_curve`)."""

from __future__ import annotations

import pandas as pd

from hipstats.errors import ParameterError
from hipstats.plots.style import arm_palette, theme

__all__ = ["power_curve_plot"]


def power_curve_plot(curve, *, target_power: float | None = 0.8, ax=None):
    """Draw a power curve from :func:`power_curve` with its Monte Carlo CI band.

    Parameters
    ----------
    curve : PowerCurveResult or DataFrame
        The result of :func:`hipstats.power.power_curve` (``result.plot()`` calls this), or a
        table with its columns (``n_per_arm``, ``power``, ``power_ci_low``, ``power_ci_high``;
        ``target``, ``reference``, ``test`` for the title). The band is labelled with the
        result's ``confidence`` (95% for a bare table).
    target_power : float, optional
        Horizontal reference line (e.g. 0.8), and the smallest size reaching it is marked.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.plots import power_curve_plot
    >>> curve = pd.DataFrame({"n_per_arm": [20, 40], "power": [.5, .8], "power_ci_low": [.45, .75],
    ...                       "power_ci_high": [.55, .85], "target": "loading",
    ...                       "reference": "control", "test": "arm:week"})
    >>> fig = power_curve_plot(curve)
    """
    import matplotlib.pyplot as plt

    confidence = 0.95
    if not isinstance(curve, pd.DataFrame):
        confidence = float(getattr(curve, "confidence", None) or 0.95)
        curve = curve.to_frame()
    need = {"n_per_arm", "power", "power_ci_low", "power_ci_high"}
    if not need <= set(curve.columns):
        raise ParameterError(f"curve needs columns {sorted(need)}")
    d = curve.sort_values("n_per_arm")
    color = "#0072B2"
    if "target" in d:
        color = arm_palette([str(d["target"].iloc[0])])[str(d["target"].iloc[0])]
    with theme():
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        else:
            fig = ax.figure
        ax.fill_between(d["n_per_arm"], d["power_ci_low"], d["power_ci_high"], color=color, alpha=0.2,
                        lw=0, label=f"{confidence:.0%} Monte Carlo CI")
        ax.plot(d["n_per_arm"], d["power"], marker="o", color=color, label="simulated power")
        if target_power is not None:
            ax.axhline(target_power, color="0.4", ls="--", lw=1)
            reached = d[d["power"] >= target_power]
            if len(reached):
                n0 = int(reached["n_per_arm"].iloc[0])
                ax.axvline(n0, color="0.4", ls=":", lw=1)
                ax.annotate(f"{target_power:.0%} at n = {n0} per arm", (n0, target_power),
                            xytext=(6, -14), textcoords="offset points", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("participants per arm (enrolled)")
        ax.set_ylabel("power")
        if {"target", "reference", "test"} <= set(d.columns):
            what = {"arm:week": "difference in slope", "change": "change to the last visit",
                    "ancova": "last visit, adjusted for baseline"}.get(str(d["test"].iloc[0]), "")
            ax.set_title(f"{d['target'].iloc[0]} vs {d['reference'].iloc[0]}"
                         + (f" ({what})" if what else ""))
        ax.legend(loc="lower right", frameon=False)
    return fig

