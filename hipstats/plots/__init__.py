"""Figures: one function per figure, seaborn-based, with a shared colour-blind-safe theme.

Every function returns a matplotlib Figure, so notebooks, scripts and reports draw
the same figure from the same code; result objects' ``.plot()`` call these.

Examples
--------
>>> import hipstats as hs
>>> from hipstats import plots
>>> ba = hs.bland_altman(hs.simulate_cohort(40, seed=1).analysis_frame("hip_ir_deg")
...                      .pivot_table(index=["participant_id", "side"], columns="visit", values="value")
...                      .dropna().reset_index(), x="baseline", y="week_3")
>>> fig = plots.bland_altman_plot(ba)
>>> type(fig).__name__
'Figure'
"""

from hipstats.plots.correlation import correlation_heatmap
from hipstats.plots.loading import compliance_heatmap, fault_rate_plot, load_progression_plot
from hipstats.plots.pelvis import ir_vs_tilt_plot, paired_pelvis_plot
from hipstats.plots.power import power_curve_plot
from hipstats.plots.reliability import bland_altman_plot
from hipstats.plots.screening import roc_plot
from hipstats.plots.style import OKABE_ITO, arm_palette, theme

__all__ = ["OKABE_ITO", "arm_palette", "bland_altman_plot", "compliance_heatmap", "correlation_heatmap", "fault_rate_plot",
           "ir_vs_tilt_plot", "load_progression_plot", "paired_pelvis_plot", "power_curve_plot", "roc_plot", "theme"]
