"""Write the report notebooks (hipstats/notebooks/*.ipynb) from the readable sources below.

The .ipynb files are generated so that their content stays reviewable as plain Python:
edit this file, then run ``python hipstats/notebooks/build_notebooks.py`` (``--check`` exits 1 when
the committed notebooks differ from what this script would write). ``power.ipynb`` is
not built here (its owner maintains it directly).

Notebook rules: the first code cell is tagged ``parameters`` and declares typed defaults
that work wherever the notebook is opened (``source`` empty: the ``HIPSTATS_SOURCE`` environment
variable, else a clear message saying how to point it at data); every number comes
from a hipstats function; markdown explains each table and figure in plain words.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

PARAMS_COMMON = '''\
source: str = ""  # cohort: folder, single file, REDCap export or database URL; "" takes $HIPSTATS_SOURCE
as_of: str = ""  # use only data recorded on or before this date (YYYY-MM-DD); "" uses everything
primary_rater: str = ""  # rater kept where two raters measured the same visit and side; empty: hipstats.yaml or the rater who measured most
retest_visit: str = ""  # visit label of the reliability retest; empty: hipstats.yaml or found from the data
scheduled_visits: str = ""  # comma-separated scheduled visit labels; empty: hipstats.yaml or found from attendance'''

SETUP = '''\
import hipstats as hs
from hipstats import report

report.setup_figures()
cohort = report.open_cohort(source, as_of=as_of, primary_rater=primary_rater, retest_visit=retest_visit,
                            scheduled_visits=scheduled_visits)
report.areas.cohort_overview(cohort)'''

SETUP_MD = ("The table below is the data this report describes: the number of participants, measurement rows, "
            "training-log rows and visits attended in each arm.")


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags=()):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# Relative run times (20,000 participants), so that the runner starts the long notebooks first.
COST = {"data_quality": 1.0, "reliability": 2.0, "pelvis": 1.0, "outcomes": 1.5, "screening": 0.8,
        "loading_faults": 4.0}


def notebook(name: str, title: str, order: int, description: str, cells: list, params: str = "",
             imports: str = "") -> tuple:
    setup = SETUP.replace("from hipstats import report\n", "from hipstats import report\n" + imports.strip("\n") + "\n"
                          if imports else "from hipstats import report\n")
    head = [md(f"# {title}\n\n{description}"),
            code(PARAMS_COMMON + ("\n" + params.strip("\n") if params else ""), tags=["parameters"]),
            md(SETUP_MD), code(setup)]
    nb = new_notebook(cells=head + cells)
    for i, cell in enumerate(nb.cells):  # stable ids keep the generated files reproducible
        cell.id = f"{name.replace('_', '-')}-{i:02d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["hipstats"] = {"title": title, "order": order, "description": description, "default": True,
                               "cost": COST.get(name, 1.0)}
    return name, nb


# ---------------------------------------------------------------------------------------------
DATA_QUALITY = notebook("data_quality", "Data quality", 10, """\
What data this report set rests on: whether the files keep the data contract, who was measured at each visit,
what is missing, how the measurements are spread, and which values look unusual.""", [
    md("""\
## Validation

Before any report is made, every table is checked against the hipstats data contract: required columns,
allowed values (sides, arms, measures), plausible ranges (for example hip internal rotation 0 to 80 degrees),
unique participants and no direct identifiers such as names or e-mail addresses. The table below lists
every problem found. A report run stops before producing anything when the data break a rule, so in a
finished report this table says that no problems were found."""),
    code("report.areas.validation_summary(source)"),
    md("""\
## Table 1: participants at baseline

Baseline characteristics of each arm and of all participants: mean (standard deviation) for measurements,
number (percent) for categories, and how many values are missing. Arms that differ clearly at baseline
are harder to compare; the outcome analyses adjust for each participant's own baseline."""),
    code('report.table(report.quality.table1(cohort), "Baseline characteristics by arm", group="characteristic")'),
    md("""\
## Participant flow

A CONSORT-style count: how many participants were allocated to each arm and, at each scheduled visit, how
many of those due were measured. In an interim report (data up to a cut-off date) participants who have not
reached a visit yet are counted as *not yet due*, not as missed. Arms that miss more participants are harder
to compare fairly, because those who leave may differ from those who stay."""),
    code('report.table(report.quality.flow_table(cohort, as_of=as_of), "Participants measured at each visit, of '
         'those due")'),
    md("""\
The diagram shows the same flow for each arm, visit by visit: measured, missed (due but not measured) and,
in an interim report, not yet due."""),
    code("report.quality.plot_flow(cohort, as_of=as_of)"),
    md("""\
## Missing measurements

For each measure and visit: how many participants attended the visit, how many had that measure recorded,
and the percent missing among those who attended. Missing values at attended visits point to a gap in the
measurement routine rather than to drop-out."""),
    code('report.table(cohort.missingness(), "Missing measurements at attended visits")'),
    md("""\
## Distributions

A summary of every measure over all visits: number of readings, mean, standard deviation, the middle 90%
(5th to 95th percentile) and the extremes, next to the plausible range of the data contract. Values outside
that range are refused by validation, so the last column is a check that should read zero."""),
    code('report.table(report.quality.measure_summary(cohort), "Distribution of every measure (all visits)")'),
    md("""\
The boxes show the middle half of the values at the first and the last visit in each arm; the line inside
a box is the median and dots are individual unusual values. Boxes that move up between the visits in one
arm but not in another are the first sign of a treatment effect (tested properly in the outcome report)."""),
    code("report.quality.plot_distributions(cohort)"),
    md("""\
## Agreement between repeated trials

Each measurement is taken more than once in a row (trials). The table shows how far the trials of one
reading lie apart, in degrees: the typical (median) spread, the spread exceeded by only 5% of readings,
and the largest. Large spreads point to a measurement problem worth checking with the rater."""),
    code('report.table(report.quality.trial_agreement(cohort), "Spread between repeated trials", unit="deg")'),
    md("""\
## Unusual values

Participants whose value at a visit lies far from the other participants at that visit (robust z-score
above 3.5, based on the median and the median absolute deviation). These values are kept in every analysis;
the list is for checking them against the case report forms. Participants are identified only by their
pseudonymous study ID."""),
    code('report.table(report.quality.outliers(cohort), "Unusual values (robust z-score above 3.5)")'),
    md("""\
## Key finding

How many participants the analyses can use at the end of the protocol."""),
    code("report.quality.record_data_findings(cohort, as_of=as_of);"),
])

RELIABILITY = notebook("reliability", "Can the measurements be trusted? (reliability)", 20, """\
How closely repeated readings of the same hip agree: trial to trial, between two raters on the same day, and
between two sessions about a week apart. Every later report rests on this: a change smaller than the
measurement error cannot be told apart from noise.""", [
    md("""\
## Reliability of every measure

One row per measure, test condition and design. **ICC** (intraclass correlation, here the absolute-agreement
form for a single reading) is the share of the differences between participants that is real rather than
measurement error: 1 means perfect agreement; by the usual guide values below 0.5 are poor, 0.5 to 0.75
moderate, 0.75 to 0.9 good and above 0.9 excellent. **SEM** (standard error of measurement) is the typical
error of one reading in degrees (or score points), and **MDC95** (minimal detectable change) is the smallest
change in one participant that is larger than measurement error with 95% confidence. For the ordinal scores and
for tilt classes, **kappa** measures agreement beyond chance."""),
    code('table = report.areas.attempt("Reliability", reliability_summary, cohort, form=form, confidence=confidence)\n'
         "report.areas.reliability_table(table)"),
    md("""\
## Agreement between two raters (Bland-Altman)

For each participant and side measured by both raters at baseline, the difference between the two raters'
readings is plotted against their average. The middle line is the average difference (a systematic offset
between raters, the *bias*); the outer lines are the 95% limits of agreement: for 95% of readings the two
raters differ by no more than this. Both sides of a participant enter, which the limits account for
(repeated-measures method of Bland and Altman, 2007). When the cohort has no second rater (or too few
participants read by both), a sentence says so instead."""),
    code("""\
ba_raters = report.areas.attempt("Agreement between two raters", report.areas.rater_agreement, cohort,
                                 "hip_ir_deg", pelvis="free", confidence=confidence)
report.areas.agreement_table(ba_raters)"""),
    code('report.areas.show(ba_raters, "plot", unit="deg")'),
    md("""\
## Agreement between two sessions (test-retest)

The same comparison for hip internal rotation measured by the same rater at baseline and again about a week
later, before any training could change it. Wider limits than between raters mean that day-to-day variation
(of the hip and of the setup) is the larger source of error. When the cohort has no retest visit, a sentence
says so instead."""),
    code("""\
ba_retest = report.areas.attempt("Agreement between two sessions", report.areas.retest_agreement, cohort,
                                 "hip_ir_deg", pelvis="free", confidence=confidence)
report.areas.agreement_table(ba_retest)"""),
    code('report.areas.show(ba_retest, "plot", unit="deg")'),
    md("""\
## Agreement on the ASLR difficulty score

Cohen's kappa with quadratic weights for the Mens ASLR score (0 to 5) given by the two raters: disagreements by
one point count less than disagreements by several points. Values above 0.8 are usually read as very good
agreement."""),
    code("""\
report.table(report.areas.attempt("Agreement on the Mens ASLR score", report.areas.score_agreement, cohort,
                                  "aslr_mens_score", weights="quadratic", confidence=confidence),
             "Weighted kappa, Mens ASLR score", confidence=confidence)"""),
    md("""\
## Key findings

Agreement between raters and between sessions for the two main outcomes, with the SEM and the MDC95 that the
outcome report uses to count responders, and the systematic difference between the raters next to their ICC."""),
    code("report.areas.reliability_findings(table, confidence=confidence, rater_bias={'hip_ir_deg': ba_raters});"),
], params="""\
form: str = "ICC(A,1)"  # ICC form reported (McGraw-Wong name, e.g. ICC(A,1), ICC(C,1), ICC(1,1))
confidence: float = 0.95  # confidence level of the intervals""", imports="""from hipstats.questions.reliability import reliability_summary""")

PELVIS = notebook("pelvis", "H1: Does pelvic position mask or limit hip internal rotation?", 30, """\
Hip internal rotation (IR) was measured twice at each visit: once with the pelvis set to neutral by the examiner,
and once in the participant's own posture. Standing pelvic tilt was measured too. This report asks whether the
way a participant holds the pelvis makes IR look better or worse than it is.""", [
    md("""\
## Neutral setup against own posture

The paired difference between IR measured with a neutral-pelvis setup and IR measured in the participant's own
posture, at the same visit. A positive difference means that the own posture hides some IR; this matters
because an IR deficit measured in own posture may partly be a pelvic-position effect rather than a hip
limitation. *d_z* is the difference in units of its standard deviation."""),
    code("""\
h1 = report.areas.attempt("H1 pelvis analysis", pelvis_analysis, cohort, cuts=(tilt_cut_low, tilt_cut_high),
                          side=side, confidence=confidence)
report.table(report.areas.show(h1, "paired"), "Neutral setup minus own posture, by side", unit="deg")"""),
    code('report.areas.show(h1, "plot", kind="paired")'),
    md("""\
## Tilt and IR within and between participants

Two different questions hide in one correlation. *Within* a participant: when the same person stands with more
anterior tilt at one visit than at another, does their IR change? *Between* participants: do people who usually
stand with more tilt have different IR? The mixed model separates the two slopes (degrees of IR per degree of
tilt); the repeated-measures correlation gives the within-participant association as a correlation. A clear
within-participant slope with a flat between-participant slope points to a measurement (masking) effect of
posture rather than to a structural difference between people."""),
    code('report.table(report.areas.show(h1, "within_between"), "Slope of IR on standing tilt (deg IR per deg tilt)")'),
    code('report.areas.rm_corr_table(report.areas.show(h1, "rm_corr"))'),
    code('report.areas.show(h1, "plot", kind="tilt")'),
    md("""\
## IR by tilt class

Participants grouped by their standing tilt into posterior, neutral and anterior classes (cut points given as
parameters, in degrees): mean IR in each class with its confidence interval."""),
    code('report.table(report.areas.show(h1, "by_class"), "Hip IR by standing tilt class (deg)")'),
    md("""\
## Key findings

The rows below are copied to the index page."""),
    code("report.areas.pelvis_findings(h1);"),
], params="""\
tilt_cut_low: float = 4.0  # standing tilt (deg) below which the pelvis counts as posterior
tilt_cut_high: float = 14.0  # standing tilt (deg) above which the pelvis counts as anterior
side: str = "mean"  # side for the tilt association: mean, left or right
confidence: float = 0.95  # confidence level of the intervals""", imports="""from hipstats.questions.pelvis import pelvis_analysis""")

OUTCOMES = notebook("outcomes", "H2: Do the arms differ in how hip IR and ASLR change?",
                    40, """\
The primary comparison of the trial: how hip internal rotation (IR, in own posture) and the ASLR angle changed
over the weeks in each arm, and whether an exercise protocol improved them more than the comparison arms.""", [
    code("report.areas.arms_sentence(cohort)"),
    md("""\
## Hip internal rotation over the weeks

Estimated mean IR in each arm at each visit, from a mixed model that uses every available measurement of every
participant (also from those who left the study early) and accounts for each participant's own level and rate of
change and for the two sides of one person being alike. Bars are confidence intervals. Lines that separate
over time show an effect of the protocol."""),
    code('ir = report.areas.attempt("Hip IR over the weeks", h2_analysis, cohort, "hip_ir_deg", mdc=mdc or None,\n'
         '                          confidence=confidence, adjust=adjust, model=model, covariance=covariance)\n'
         'report.areas.show(ir, "plot")'),
    code("report.areas.h2_model_note(ir)"),
    md("""\
The main result: the difference between arms in the change from baseline to the last visit (the gain in one arm
minus the gain in the other), with confidence intervals and p-values. The adjusted p-values account for making
several comparisons (the method is named below the table); the confidence intervals are per comparison, **not**
adjusted for multiple comparisons, so an interval that just excludes zero can go with an adjusted p-value above
the significance level. The key findings below say so. An interval that lies entirely above zero means the
first arm gained more. When the report is run with the MMRM model (parameter *model*, named in the model note
above), the main result is instead the difference between arms at the last visit itself."""),
    code('report.table(report.areas.h2_contrast_table(ir), "Hip IR: difference in change from baseline", unit="deg")'),
    md("""\
The same question answered in three further ways that should agree with the mixed model: an ANCOVA of the
final value adjusted for baseline, Hedges' *g* (the difference in change in standard
deviation units; 0.2 small, 0.5 medium, 0.8 large) and the share of **responders**, participants whose IR
improved by more than the minimal detectable change (MDC95), so by more than measurement error. On a small
cohort a part that cannot be estimated (for example fewer than two participants in an arm) is left out of the
table and named below with the reason."""),
    code('report.table(report.areas.show(ir, "summary"), "Hip IR: ANCOVA, Hedges\' g and responders against the reference arm", unit="deg")'),
    code('report.areas.mdc_note(ir)'),
    code('report.table(report.areas.show(ir, "responders.by_arm"), "Responders by arm (share)")'),
    md("""\
## ASLR angle over the weeks

The same analysis for the active straight leg raise angle."""),
    code('aslr = report.areas.attempt("ASLR angle over the weeks", h2_analysis, cohort, "aslr_deg", mdc=mdc or None,\n'
         '                            confidence=confidence, adjust=adjust, model=model, covariance=covariance)\n'
         'report.areas.show(aslr, "plot")'),
    code("report.areas.h2_model_note(aslr)"),
    code('report.table(report.areas.h2_contrast_table(aslr), "ASLR angle: difference in change from baseline", '
         'unit="deg")'),
    code('report.table(report.areas.show(aslr, "summary"), "ASLR angle: ANCOVA, Hedges\' g and responders", unit="deg")'),
    code('report.areas.mdc_note(aslr)'),
    md("""\
## Key findings

Differences in change from baseline to the last visit between arms (with the MMRM model: differences at the
last visit), for IR and for the ASLR angle."""),
    code("report.areas.h2_findings(ir);\nreport.areas.h2_findings(aslr);"),
], params="""\
mdc: float = 0.0  # change (deg) that counts a responder; 0 takes the cohort's test-retest MDC95
confidence: float = 0.95  # confidence level of the intervals
adjust: str = "holm"  # multiplicity adjustment of the p-values, one of {holm, bonferroni, sidak, fdr_bh, BH, fdr, none}
model: str = "lmm"  # H2 model, one of {lmm, mmrm}: per-side mixed model, or MMRM (key finding: arm difference at the final visit)
covariance: str = "us"  # MMRM residual covariance across visits, one of {us, toep, toeph, ar1, ar1h, cs, csh}""", imports="""from hipstats.questions.outcomes import h2_analysis""")

SCREENING = notebook("screening", "H3: Does a low ASLR flag limited hip internal rotation?", 50, """\
The ASLR is quick to test. This report asks whether an ASLR below a cutoff (70 degrees by default) picks out
participants whose hip internal rotation is limited (below 30 degrees measured with a neutral pelvis), and
whether the participant's standing pelvic tilt changes how well the screen works.""", [
    md("""\
## Accuracy at the cutoff

For all participants at baseline (one hip per participant: the side with less IR) and for each standing tilt
class: **sensitivity** (of those with limited IR, the share the screen flags), **specificity** (of those without,
the share it clears), **PPV** and **NPV** (how often a flag, or a clear result, is right in this group) and the
ROC **AUC** with its confidence interval. The last columns give the cutoff that best balances sensitivity
and specificity (Youden) with a bootstrap confidence interval. PPV and NPV depend on how common limited IR is
in the group (*prevalence*)."""),
    code("""\
h3 = report.areas.attempt("Screening", screening_analysis, cohort, cutoff=cutoff, threshold=ir_threshold,
                          n_boot=n_boot, seed=seed, confidence=confidence)
report.table(report.areas.show(h3, "summary"), "Screening accuracy at the cutoff, by group", long=True)"""),
    md("""\
## ROC curves

Each curve shows every possible cutoff: the higher and further left a curve runs, the better the ASLR
separates limited from normal IR. The marked point is the pre-set cutoff; the shaded band is the confidence
band of the overall curve."""),
    code('report.areas.show(h3, "plot")'),
    md("""\
## Does pelvic tilt skew the screen?

The AUC of each tilt class compared with participants whose pelvis is neutral (DeLong's test for independent
groups). Both comparisons were planned, so both are reported (a comparison the data cannot support is named,
with the reason, below or under Key findings) and, when both can be made, their p-values are adjusted for making
two comparisons (the method is named below the table); the confidence intervals are per comparison. A clearly lower AUC in the anterior class would mean that anterior
tilt makes the ASLR a worse guide to hip IR."""),
    code('report.areas.tilt_comparison_table(h3)'),
    md("## Key findings"),
    code("report.areas.screening_findings(h3);"),
], params="""\
cutoff: float = 70.0  # ASLR (deg) below which the screen is positive
ir_threshold: float = 30.0  # IR (deg, neutral pelvis) below which IR counts as limited
n_boot: int = 2000  # bootstrap replicates for the Youden cutoff CI
seed: int = 0  # random seed of the bootstrap (same seed, same numbers)
confidence: float = 0.95  # confidence level of the intervals""", imports="""from hipstats.questions.screening import screening_analysis""")

LOADING_FAULTS = notebook("loading_faults", "H4 and H5: Is loading progressive and safe, and do form faults matter?",
                          60, """\
From the training log: how the loads rose over the weeks, how many sessions were completed, whether the
progression rule (raise the load only after a session without form faults and with little pain) was kept,
how often pain stopped a session, whether more training went with more gain, and which form faults occur.""", [
    md("""\
## Load progression (H4)

Mean weekly volume-load (sets x repetitions x kg) per arm, with confidence intervals. A steady rise means the
protocol was progressive; a flattening shows where participants stopped progressing."""),
    code('h4 = report.areas.attempt("Loading analysis (H4)", loading_analysis, cohort, pain_threshold=pain_threshold,\n'
         '                          confidence=confidence)\n'
         'report.areas.show(h4, "plot", kind="progression", confidence=confidence)'),
    md("""\
Per arm and exercise: the average rise in load per week over participants (kg/week, from each participant's own
progression line) and the share of participants whose load rose at all."""),
    code('report.table(report.areas.show(h4, "progression_by_arm"), "Load progression by arm and exercise")'),
    md("""\
## Adherence, rule-keeping and pain (H4)

One row per arm: mean adherence (completed share of the prescribed sessions), how often the load was raised
after a session with a form fault or pain (*violations*, against the progression rule), and the share of
sessions with pain at or above the stop threshold on the 0 to 10 scale."""),
    code('report.table(report.areas.show(h4, "summary"), "Adherence, rule-keeping and pain by arm")'),
    md("""\
Each row of the figure is a participant, each column a training week: it shows where load increases followed a
session that should have held the load."""),
    code('report.areas.show(h4, "plot", kind="compliance")'),
    md("""\
## Dose-response (H4)

Does more total training go with more IR gain? The regression of the IR change on cumulative volume-load
(per 1,000 kg), adjusted for arm and baseline IR. Participants who train more differ in other ways too, so
this is an association, not proof of cause. Any part of this report that the data cannot support (for example
too few participants for the regression) is shown as one sentence with the reason."""),
    code('report.table(report.areas.show(h4, "dose_response"), "IR change on cumulative volume-load", unit="deg")'),
    md("""\
## Form faults (H5)

Share of completed exercise rows with each fault, by exercise and arm (with confidence intervals), then the
weekly rate of any fault per arm: falling lines mean technique improved with practice."""),
    code('h5 = report.areas.attempt("Form-fault analysis (H5)", faults_analysis, cohort, confidence=confidence)\n'
         'report.table(report.areas.show(h5, "rates"), "Fault rates by exercise and arm", group="fault",\n'
         '             hide=["n_participants"])'),
    code('report.areas.show(h5, "plot", confidence=confidence)'),
    md("""\
The trend of the fault rate over the weeks (odds ratio per week from a GEE model that accounts for repeated
sessions of one participant) and the association of each participant's fault rate with their IR change."""),
    code('report.table(report.areas.show(h5, "trend"), "Change in fault odds per training week")'),
    code('report.table(report.areas.show(h5, "association"), "IR change on fault rate", unit="deg")'),
    md("## Key findings"),
    code("report.areas.loading_findings(h4);\nreport.areas.faults_findings(h5);"),
], params="""\
pain_threshold: float = 5.0  # pain NRS (0-10) at or above which a session counts as a stop
confidence: float = 0.95  # confidence level of the intervals""", imports="""from hipstats.questions.faults import faults_analysis
from hipstats.questions.loading import loading_analysis""")

NOTEBOOKS = [DATA_QUALITY, RELIABILITY, PELVIS, OUTCOMES, SCREENING, LOADING_FAULTS]


def build(check: bool = False) -> int:
    stale = []
    for name, nb in NOTEBOOKS:
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(nb) + "\n"
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
            continue
        nbformat.validate(nb)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python hipstats/notebooks/build_notebooks.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(build(check="--check" in sys.argv[1:]))
