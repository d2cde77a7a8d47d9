"""The validated cohort and its views: :class:`Cohort` and :func:`load_cohort`
(:mod:`~hipstats.cohort.cohort`), the shared table views analyses build on
(:mod:`~hipstats.cohort.views`) and synthetic cohorts with known truth
(:mod:`~hipstats.cohort.simulate`).

Examples
--------
>>> from hipstats.cohort import Cohort, load_cohort
>>> Cohort.__name__, load_cohort.__name__
('Cohort', 'load_cohort')
"""

from hipstats.cohort.cohort import Cohort, load_cohort

__all__ = ["Cohort", "load_cohort"]
