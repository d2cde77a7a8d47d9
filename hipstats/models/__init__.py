"""Longitudinal protocol models (H2): the fast mixed-model engine, estimated marginal means,
contrasts, ANCOVA, effect sizes, responders and the one-call H2 analysis.

Examples
--------
>>> import hipstats as hs
>>> from hipstats.models import fit_lmm
>>> cohort = hs.simulate_cohort(60, seed=2)
>>> fit = fit_lmm("value ~ week", cohort.analysis_frame("hip_ir_deg"), groups="participant_id",
...               re_formula="1 + week")
>>> bool(fit.converged)
True
"""

from hipstats.models.ancova import AncovaResult, ancova
from hipstats.models.effect_sizes import hedges_g, hedges_j
from hipstats.models.emmeans import EMMResult, contrasts, emmeans, emtrends
from hipstats.models.h2 import H2Result, h2_analysis
from hipstats.models.lmm import LMMResult, fit_lmm, lrt
from hipstats.models.responders import ResponderResult, newcombe_diff_ci, responders, wilson_ci

__all__ = ["AncovaResult", "EMMResult", "H2Result", "LMMResult", "ResponderResult", "ancova", "contrasts",
           "emmeans", "emtrends", "fit_lmm", "h2_analysis", "hedges_g", "hedges_j", "lrt", "newcombe_diff_ci",
           "responders", "wilson_ci"]
