"""The study's questions, one module each, on a Cohort: thin compositions of the cohort views,
the generic statistics and the model engines.

* :mod:`~hipstats.questions.reliability` -- R: how reliable are the readings?
* :mod:`~hipstats.questions.pelvis` -- H1: does pelvic position mask hip rotation?
* :mod:`~hipstats.questions.outcomes` -- H2: do the protocols change the outcomes?
* :mod:`~hipstats.questions.screening` -- H3: does the ASLR screen for an IR deficit?
* :mod:`~hipstats.questions.loading` -- H4: loading progression, adherence and safety;
* :mod:`~hipstats.questions.faults` -- H5: form faults.

Examples
--------
>>> from hipstats.questions.pelvis import pelvis_analysis
>>> pelvis_analysis.__name__
'pelvis_analysis'
"""
