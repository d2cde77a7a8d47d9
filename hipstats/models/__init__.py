"""Model engines: the fast mixed-model engine, estimated marginal means, contrasts, ANCOVA and
responders. They take tidy frames and know nothing of a Cohort; the study's one-call H2 analysis
that combines them is :func:`hipstats.questions.outcomes.h2_analysis`.

Examples
--------
>>> import hipstats as hs
>>> from hipstats.models import fit_lmm
>>> cohort = hs.simulate_cohort(60, seed=2)
>>> fit = fit_lmm("value ~ week", cohort.analysis_frame("hip_ir_deg"), participant="participant_id",
...               re_formula="1 + week")
>>> bool(fit.converged)
True
"""

from hipstats.models.ancova import AncovaResult, ancova
from hipstats.models.emmeans import EMMResult, contrasts, emmeans, emtrends
from hipstats.models.lmm import LMMResult, fit_lmm, lrt
from hipstats.models.responders import ResponderResult, newcombe_diff_ci, responders, wilson_ci

__all__ = ["AncovaResult", "EMMResult", "LMMResult", "ResponderResult", "ancova", "contrasts", "emmeans",
           "emtrends", "fit_lmm", "lrt", "newcombe_diff_ci", "responders", "wilson_ci"]
