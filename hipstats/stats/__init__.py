"""Generic statistics: arrays or tidy frames in, results out; nothing here knows a Cohort.

* :mod:`~hipstats.stats.icc` -- intraclass correlations (McGraw and Wong's six forms);
* :mod:`~hipstats.stats.agreement` -- SEM, MDC and Bland-Altman limits of agreement;
* :mod:`~hipstats.stats.kappa` -- Cohen's and Fleiss' kappa;
* :mod:`~hipstats.stats.accuracy` -- diagnostic accuracy at a cut-off;
* :mod:`~hipstats.stats.roc` -- ROC curves, DeLong's test, Youden's cut-off;
* :mod:`~hipstats.stats.correlation` -- repeated-measures correlation, within/between slopes;
* :mod:`~hipstats.stats.effect_sizes` -- Hedges' g;
* :mod:`~hipstats.stats.rates` -- pooled rates with cluster-robust intervals;
* :mod:`~hipstats.stats.inference` -- small shared pieces (checks, Wald tests, mean CIs).

Examples
--------
>>> from hipstats.stats.agreement import mdc
>>> round(mdc(1.5), 2)
4.16
"""
