"""Turn each study question's analysis result into key findings (and the small tables notebooks show).

The analysis modules compute everything; the functions here only pick the estimates that
answer a question and word them for clinicians. Each ``*_findings`` function records its
rows with :func:`hipstats.report.findings.record` (``display=False`` only builds them) and
returns the list of :class:`~hipstats.report.findings.Finding`.

Examples
--------
>>> from hipstats.report.areas import icc_words
>>> icc_words(0.93), icc_words(0.62)
('excellent', 'moderate')
"""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd

from hipstats.errors import AnalysisError
from hipstats.plots.style import arm_label
from hipstats.report.findings import Finding, ci_label, format_p, record, record_summary, significance_words
from hipstats.report.notes import plain_reason
from hipstats.report.tables import MEASURE_NAMES, table

__all__ = ["rater_agreement", "retest_agreement", "score_agreement", "attempt", "show", "NotEstimable", "result_confidence", "icc_words", "rater_pairs", "retest_pairs", "reliability_findings", "h2_findings", "h2_contrast_table",
           "pelvis_findings", "screening_findings", "loading_findings", "faults_findings", "loading_arm", "mdc_note",
           "tilt_comparisons", "tilt_comparison_table", "rm_corr_table", "adjustment_words", "cohort_overview",
           "validation_summary", "reliability_table", "agreement_table",
           "arms_sentence"]

MEASURE_LABELS = {"hip_ir_deg": "hip internal rotation", "aslr_deg": "ASLR angle",
                  "pelvic_tilt_deg": "standing pelvic tilt", "aslr_mens_score": "Mens ASLR score",
                  "aslr_fms_score": "FMS ASLR score"}


def result_confidence(result, default: float = 0.95) -> float:
    """The confidence level an analysis result was computed at.

    Looks for ``result.confidence``, ``result.settings["confidence"]``, ``result.alpha`` (as
    1 - alpha), a table's ``attrs["confidence"]``, in that order; else ``default``.

    >>> class R: alpha = 0.2
    >>> result_confidence(R())
    0.8
    """
    def ok(x):
        try:
            return 0 < float(x) < 1
        except (TypeError, ValueError):
            return False

    attrs = getattr(result, "attrs", None)
    settings = getattr(result, "settings", None)
    candidates = [getattr(result, "confidence", None),
                  settings.get("confidence") if isinstance(settings, dict) else None,
                  (1 - getattr(result, "alpha")) if ok(getattr(result, "alpha", None)) else None,
                  attrs.get("confidence") if isinstance(attrs, dict) else None]
    for c in candidates:
        if ok(c):
            return round(float(c), 10)
    return default


def not_estimable(what: str, reason) -> str:
    """The sentence a notebook shows for a sub-analysis the data cannot support."""
    return f"{what}: not estimable: {plain_reason(reason)}"


class NotEstimable:
    """A sub-analysis the data cannot support: shown in a notebook as one sentence; falsy.

    >>> bool(NotEstimable("retest agreement", "no retest visit"))
    False
    """

    def __init__(self, what: str, reason):
        self.what, self.reason = what, str(reason)
        self.said = False  # shown once on a page; later uses show nothing

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return not_estimable(self.what, self.reason)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html  # noqa: PLC0415

        self.said = True
        return f'<p class="hipstats-not-estimable">{html.escape(str(self))}</p>'

    def __getattr__(self, name):  # a guarded result used further down stays a sentence
        if name.startswith("_"):
            raise AttributeError(name)
        return self


def attempt(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or a :class:`NotEstimable` naming the reason when the data cannot support it
    (:class:`hipstats.errors.AnalysisError`, or a singular matrix: ``numpy.linalg.LinAlgError``).
    Other errors propagate.

    >>> def needs_two(): raise AnalysisError("only one rater")
    >>> str(attempt("rater agreement", needs_two))
    'rater agreement: not estimable: only one rater'
    """
    import numpy as np  # noqa: PLC0415

    try:
        return fn(*args, **kwargs)
    except AnalysisError as err:
        return NotEstimable(what, err)
    except np.linalg.LinAlgError:  # e.g. a measure that is constant leaves a singular model matrix
        return NotEstimable(what, "the data leave the model singular (is a measure constant, or an arm "
                                  "without variation?)")


def show(result, attr: str, *args, **kwargs):
    """An attribute (or method call with ``args``) of an analysis result, or a sentence when it is missing.

    ``result`` may be a :class:`NotEstimable` (returned as is); an attribute that is None is
    shown as "not estimable" with the reason from ``result.not_estimable[attr]`` when the result has one.
    """
    if isinstance(result, NotEstimable):
        return None if result.said else result  # each "not estimable" is said once, where it first applies
    value = result
    parts = attr.split(".")
    for i, part in enumerate(parts):
        value = getattr(value, part, None)
        if value is None:
            notes = getattr(result, "not_estimable", None)
            reason = None
            if isinstance(notes, dict):
                reason = notes.get(".".join(parts[:i + 1])) or notes.get(parts[0])
            return NotEstimable(parts[i].replace("_", " "), reason or "the data do not support it")
    if callable(value) and not isinstance(value, pd.DataFrame) and (args or kwargs or parts[-1] in ("plot",
                                                                                                    "summary")):
        value = attempt(parts[-1].replace("_", " "), value, *args, **kwargs)
    if isinstance(value, pd.DataFrame) and "confidence" not in value.attrs:  # its tables label CIs at its level
        value = value.copy()
        value.attrs["confidence"] = result_confidence(result)
    return value


def _unavailable(area: str, result, display: bool) -> list[Finding] | None:
    """A single not-estimable finding when the analysis itself could not run (a :class:`NotEstimable`)."""
    if isinstance(result, NotEstimable):
        # already said on this page (with its reason) where the analysis was attempted: the index still gets
        # the finding, the page's key findings only point back to it
        shown = display and not result.said
        found = record(area, result.what, None, None, None, None, str(result), display=shown, headline=True)
        if display and not shown:
            from IPython.display import display as show_bundle  # noqa: PLC0415

            pointer = f"{result.what}: the reason it could not be estimated is given above."
            show_bundle({**found.mime_bundle(), "text/plain": pointer,
                         "text/html": f'<p class="hipstats-not-estimable">{html.escape(pointer)}</p>'}, raw=True)
        return [found]
    return None


def icc_words(icc: float) -> str:
    """Koo & Li (2016) wording of an ICC: poor (< 0.5), moderate (< 0.75), good (< 0.9), excellent."""
    if icc is None or not np.isfinite(icc):
        return "not estimable"
    return "poor" if icc < 0.5 else "moderate" if icc < 0.75 else "good" if icc < 0.9 else "excellent"


def rater_pairs(cohort, measure: str = "hip_ir_deg", *, pelvis: str | None = "free", visit: str | None = None,
                raters: tuple[str, str] | None = None) -> pd.DataFrame:
    """Trial-mean readings of two raters at the same visit (:func:`hipstats.cohort.views.rater_pairs`)."""
    from hipstats.cohort.views import rater_pairs as pairs  # noqa: PLC0415

    return pairs(cohort, measure, pelvis=pelvis, visit=visit, raters=raters)


def retest_pairs(cohort, measure: str = "hip_ir_deg", *, pelvis: str | None = "free", retest_visit: str | None = None,
                 rater: str | None = "primary") -> pd.DataFrame:
    """Trial-mean readings of one rater at baseline and at the retest visit (:func:`hipstats.cohort.views.retest_pairs`).

    The retest visit and the rater are those of the cohort (declared in ``hipstats.yaml`` or found
    from the data, see :mod:`hipstats.cohort.views`).
    """
    from hipstats.cohort.views import retest_pairs as pairs  # noqa: PLC0415

    return pairs(cohort, measure, pelvis=pelvis, retest=retest_visit, rater=rater)


def _units(r) -> str:
    """ "28 participants, both sides" from a reliability_summary row (n_targets counts participant-sides)."""
    n = int(r["n_targets"])
    if "n_participants" not in r.index or pd.isna(r["n_participants"]):
        return f"n = {n}"
    k = int(r["n_participants"])
    if n == 2 * k:
        sides = "both sides"
    elif n == k:
        sides = "one reading each"
    else:
        sides = f"{n} participant-sides"
    return f"{k} participant{'s' if k != 1 else ''}, {sides}"


def rater_agreement(cohort, measure: str = "hip_ir_deg", *, pelvis: str | None = "free", confidence: float = 0.95):
    """Bland-Altman agreement of two raters (repeated-measures limits over sides) from :func:`rater_pairs`."""
    from hipstats.stats.agreement import bland_altman  # noqa: PLC0415

    pairs = rater_pairs(cohort, measure, pelvis=pelvis)
    return bland_altman(pairs, *pairs.attrs["raters"], participant="participant_id", confidence=confidence)


def retest_agreement(cohort, measure: str = "hip_ir_deg", *, pelvis: str | None = "free",
                     confidence: float = 0.95):
    """Bland-Altman agreement of retest against baseline (one rater) from :func:`retest_pairs`."""
    from hipstats.stats.agreement import bland_altman  # noqa: PLC0415

    pairs = retest_pairs(cohort, measure, pelvis=pelvis)
    return bland_altman(pairs, "retest", "baseline", participant="participant_id", confidence=confidence)


def score_agreement(cohort, measure: str = "aslr_mens_score", *, weights: str = "quadratic",
                    confidence: float = 0.95):
    """Weighted Cohen's kappa of two raters' ordinal scores from :func:`rater_pairs`, its CI at ``confidence``."""
    from hipstats.stats.kappa import cohen_kappa  # noqa: PLC0415

    from hipstats.data.schema import MEASURES  # noqa: PLC0415

    pairs = rater_pairs(cohort, measure, pelvis=None)
    scale = MEASURES[measure].categories if measure in MEASURES else None  # the whole scale, not the scores seen
    out = cohen_kappa(pairs, *pairs.attrs["raters"], weights=weights, confidence=confidence, categories=scale)
    out.attrs["confidence"] = confidence
    return out


def _p(row) -> float:
    """The p-value of a result row in the shared vocabulary (``p_value``) or the older ``p``."""
    for name in ("p_value", "p", "pval"):
        if name in row.index and pd.notna(row[name]):
            return float(row[name])
    return np.nan


def _visit(v) -> str:
    return str(v).replace("_", " ")


#: Fewest participants for an ICC headline: with fewer, the ICC and its interval say nothing useful
#: (with 1 or 2 participants the F-based interval can even leave [-1, 1]); the page's table still shows them.
MIN_ICC_PARTICIPANTS = 5


def reliability_findings(table, measures=("hip_ir_deg", "aslr_deg"), *, pelvis: str = "free",
                         confidence: float | None = None, rater_bias=None, display: bool = True) -> list[Finding]:
    """Key findings R: rater-to-rater and session-to-session ICC (with SEM and MDC95) of the main measures.

    ``confidence`` defaults to the table's ``attrs["confidence"]`` (0.95 when absent).
    The SEM is worded as the typical error of a single reading, with 95% of readings
    within ±1.96 SEM of the true value; the MDC95 is that of a single reading of one side.
    ``rater_bias`` maps a measure to its raters' Bland-Altman result: the systematic offset
    between raters is then reported next to (right after) the rater-to-rater ICC.

    The index headline of each measure is its first design (rater-to-rater when measured): its
    short sentence carries the raters' systematic difference and the other design's ICC and MDC95.
    """
    if isinstance(table, NotEstimable):
        return [record("R", table.what, None, None, None, None, str(table), display=display, headline=True)]
    conf = result_confidence(table) if confidence is None else confidence
    if not isinstance(table, pd.DataFrame):  # a ReliabilityResult
        table = table.to_frame()
    out = []
    designs = {"rater-to-rater": "between two raters", "session-to-session": "between two sessions a week apart"}
    short = {"rater-to-rater": "between raters", "session-to-session": "between sessions"}
    rater_bias = rater_bias or {}
    for measure in measures:
        t = table[table["measure"] == measure]
        if "pelvis" in t.columns and (t["pelvis"] == pelvis).any():
            t = t[t["pelvis"] == pelvis]
        label = MEASURE_LABELS.get(measure, measure)
        found = []  # (design, row, enough participants, rater bias)
        for design in designs:
            r = t[t["design"] == design]
            if r.empty:
                continue
            r = r.iloc[0]
            k = r["n_participants"] if "n_participants" in r.index and pd.notna(r["n_participants"]) else \
                r["n_targets"]
            ba = rater_bias.get(measure) if design == "rater-to-rater" else None
            ba = ba if ba is not None and not isinstance(ba, NotEstimable) else None
            found.append((design, r, int(k), ba))
        for i, (design, r, k, ba) in enumerate(found):
            words = designs[design]
            if k < MIN_ICC_PARTICIPANTS:
                out.append(record(
                    "R", f"{r['form']} of {label}, {design}", None, None, None, None,
                    f"Agreement {words} for {label}: not estimable: only {k} participant"
                    f"{'s were' if k != 1 else ' was'} measured twice this way; an ICC needs at least "
                    f"{MIN_ICC_PARTICIPANTS}.", confidence=conf, display=display, headline=i == 0))
                continue
            sem = float(r["sem"])
            offset = ""
            if ba is not None:
                offset = (f" The raters also differ systematically: {ba.x} reads {abs(ba.bias):.1f} deg "
                          f"{'lower' if ba.bias < 0 else 'higher'} than {ba.y} on average ({ci_label(conf)} "
                          f"{ba.bias_ci[0]:.1f} to {ba.bias_ci[1]:.1f}), which the ICC alone does not show.")
            brief = ""
            if i == 0:
                brief = f"{icc_words(r['icc']).capitalize()} {short[design]}"
                if ba is not None:
                    brief += (f", but {ba.x} reads {abs(ba.bias):.1f} deg {'lower' if ba.bias < 0 else 'higher'} "
                              f"than {ba.y} ({ci_label(conf)} {ba.bias_ci[0]:.1f} to {ba.bias_ci[1]:.1f})")
                mdc = (design, r)
                for other, r2, k2, _ in found[1:]:
                    if k2 >= MIN_ICC_PARTICIPANTS:
                        brief += f"; {icc_words(r2['icc'])} {short[other]} (ICC {r2['icc']:.2f})"
                        mdc = (other, r2)
                brief += (f". Changes above {mdc[1]['mdc95']:.1f} deg exceed measurement error (MDC95 "
                          f"{short[mdc[0]]}, single reading of one side).")
            out.append(record(
                "R", f"{r['form']} of {label}, {design} ({_units(r)})", r["icc"], r["icc_ci_low"], r["icc_ci_high"],
                None,
                f"Agreement {words} is {icc_words(r['icc'])} for {label} (ICC {r['icc']:.2f}, {_units(r)}); "
                f"a single reading has a typical error of about ±{sem:.1f} deg (SEM; 95% of readings within "
                f"±{1.96 * sem:.1f} deg), and only a change larger than {r['mdc95']:.1f} deg (MDC95 of a single "
                f"reading of one side) is more than measurement error." + offset,
                confidence=conf, display=display, unit="ICC", headline=i == 0, brief=brief))
            if ba is not None:
                out.append(record(
                    "R", f"Systematic difference between raters, {label} ({ba.x} minus {ba.y}, deg)", ba.bias,
                    ba.bias_ci[0], ba.bias_ci[1], getattr(ba, "bias_p_value", getattr(ba, "bias_pval", None)),
                    f"On average {ba.x} read {label} {abs(ba.bias):.1f} deg {'lower' if ba.bias < 0 else 'higher'} "
                    f"than {ba.y}; for 95% of readings the two raters differ by between {ba.loa_low:.1f} and "
                    f"{ba.loa_high:.1f} deg.", digits=1, confidence=conf, display=display, unit="deg", null=0.0))
    return out


def h2_contrast_table(result) -> pd.DataFrame:
    """The primary H2 estimand: difference in change from baseline to the final visit between arms."""
    if isinstance(result, NotEstimable):  # said once, where the analysis was attempted
        return None if result.said else result
    f = result.final[result.final["estimand"] == getattr(result, "key_estimand", "difference in change")]
    cols = [c for c in ("contrast", "visit", "estimate", "ci_low", "ci_high", "df", "p_value", "p_adj", "adjust")
            if c in f.columns]
    out = f[cols].reset_index(drop=True)
    # the model names arms with word characters only: show the arms as a reader knows them ("usual care")
    own = {re.sub(r"\W", "_", str(a)): arm_label(a) for a in getattr(result, "arms", [])}
    out["contrast"] = out["contrast"].map(lambda c: " - ".join(own.get(x, arm_label(x)) for x in str(c).split(" - ")))
    out.attrs["confidence"] = result_confidence(result)
    return out


_ADJUST_NAMES = {"holm": "Holm", "bonferroni": "Bonferroni", "sidak": "Sidak", "fdr_bh": "Benjamini-Hochberg",
                 "dunnettx": "Dunnett", "tukey": "Tukey", "mvt": "multivariate t"}


def h2_model_note(result):
    """Markdown naming the H2 model (LMM or MMRM with its covariance), with the model's notes."""
    from IPython.display import Markdown

    if isinstance(result, NotEstimable):
        return None if result.said else result
    notes = "".join(f"\n- {html.escape(n)}" for n in getattr(result, "model_notes", []))
    desc = html.escape(getattr(result, "model_description", "linear mixed model"))
    return Markdown(f"**Model:** {desc}.{notes}")


def adjustment_words(adjust, n_comparisons: int, what: str = "comparisons") -> str:
    """How a family of p-values was adjusted, for a sentence: "" when nothing was adjusted (no method, or a single
    comparison, where every method leaves p as it is), else the method and the number of comparisons.

    >>> adjustment_words("holm", 3, "arm comparisons"), adjustment_words("holm", 1), adjustment_words("none", 3)
    ('Holm-adjusted for the 3 arm comparisons', '', '')
    """
    if adjust is None or str(adjust).lower() in ("none", "", "nan") or n_comparisons < 2:
        return ""
    return f"{_ADJUST_NAMES.get(str(adjust).lower(), str(adjust))}-adjusted for the {n_comparisons} {what}"


#: The H2 result's sub-analyses (keys of ``H2Result.not_estimable``) in words.
H2_PARTS = {"ancova": "ANCOVA of the last visit", "effect_sizes": "Hedges' g of the change",
            "responders": "responders beyond the MDC95"}


def h2_findings(result, *, display: bool = True) -> list[Finding]:
    """Key findings H2: difference in change from baseline at the final visit, each pair of arms.

    The CI is per comparison (not adjusted for multiple comparisons) and, with several
    comparisons, the p-value is multiplicity-adjusted; the sentence says so, naming the method
    and the number of comparisons (with a single comparison nothing is adjusted and the sentence
    says p), and "unlikely to be chance" means the (adjusted) p is below alpha = 1 - confidence.
    Every comparison is an index headline.
    """
    if (na := _unavailable("H2", result, display)) is not None:
        return na
    label = MEASURE_LABELS.get(result.measure, result.measure)
    short = {"hip_ir_deg": "IR", "aslr_deg": "ASLR"}.get(result.measure, label)
    conf = result_confidence(result)
    out = []
    rows = h2_contrast_table(result)
    for r in rows.itertuples():
        a, b = r.contrast.split(" - ")
        more = "more" if r.estimate > 0 else "less"
        unlikely = significance_words(r.p_adj, conf).startswith("unlikely")
        sig = "this difference is unlikely to be chance" if unlikely else "the data cannot rule out no difference"
        adjusted = adjustment_words(r.adjust, len(rows), "arm comparisons")
        ci_words = f"{ci_label(conf)}, not adjusted for multiple comparisons" if adjusted else ci_label(conf)
        p_words = f"p {format_p(r.p_adj)}" + (f", {adjusted}" if adjusted else "")
        visit = _visit(r.visit)
        name = label[:1].upper() + label[1:]
        if getattr(result, "key_estimand", "difference in change") == "difference at final visit":
            title, unit = f"{name}: at {visit}, {a} minus {b} (deg)", "deg (difference at the final visit)"
            text = (f"At {visit}, {label} in the {a} arm was {abs(r.estimate):.1f} deg "
                    f"{'higher' if r.estimate > 0 else 'lower'} than in the {b} arm")
            brief = (f"{a[:1].upper() + a[1:]} had {abs(r.estimate):.1f} deg {'higher' if r.estimate > 0 else 'lower'}"
                     f" {short} than {b} at {visit}")
        else:
            title, unit = f"{name}: change to {visit}, {a} minus {b} (deg)", "deg (difference in change)"
            text = (f"From baseline to {visit}, the {a} arm gained {abs(r.estimate):.1f} deg {more} {label} "
                    f"than the {b} arm")
            brief = f"{a[:1].upper() + a[1:]} gained {abs(r.estimate):.1f} deg {more} {short} than {b}"
        brief += "; unlikely to be chance." if unlikely else "; the data cannot rule out no difference."
        out.append(record(
            "H2", title, r.estimate, r.ci_low, r.ci_high, r.p_adj,
            f"{text} ({ci_words}: {r.ci_low:.1f} to {r.ci_high:.1f}; {sig}, {p_words}"
            + (f"; {result.model_description})." if getattr(result, "model_kind", "lmm") == "mmrm" else ")."),
            digits=1, confidence=conf, display=display, unit=unit, null=0.0,
            adjusted=(adjusted.replace("-adjusted for the", " over the") + f" of {label}") if adjusted else "",
            headline=True, brief=brief))
    missing = getattr(result, "not_estimable", None) or getattr(result, "notes", None) or {}
    cap = label[:1].upper() + label[1:]
    for what, reason in (missing.items() if isinstance(missing, dict) else []):
        part = H2_PARTS.get(what, what.replace("_", " "))
        out.append(record("H2", f"{cap}: {part}", None, None, None, None, not_estimable(f"{cap}, {part}", reason),
                          confidence=conf, display=display))
    return out


def mdc_note(result):
    """The sentence that says which MDC the responder count uses and what it was applied to (HTML note)."""
    import html  # noqa: PLC0415

    from IPython.display import HTML  # noqa: PLC0415

    if isinstance(result, NotEstimable) or getattr(result, "mdc", None) is None:
        return None
    label = MEASURE_LABELS.get(result.measure, result.measure)
    src = str(getattr(result, "mdc_source", "") or "")
    given = src == "given"
    text = (f"Responders: a participant counts as a responder when their change in {label} from baseline to the "
            f"last visit, averaged over both sides, is larger than {result.mdc:.1f} deg. "
            + ("This MDC was given as a parameter. " if given else
               "That threshold is the MDC95 of a single reading of one side (from the cohort's test-retest "
               "readings). ")
            + "Averaging two sides reduces measurement error, so the threshold is conservative: it counts fewer "
              "responders than an MDC for two-side means would.")
    return HTML(f'<div class="hipstats-note"><b>Note.</b> {html.escape(text)}</div>')


def _f_statistic(result) -> str:
    """ "F(df1, df2) = x" of the one-way ANOVA of own-posture IR across tilt classes ("" when absent)."""
    by = getattr(result, "by_class", None)
    an = (getattr(by, "attrs", {}) or {}).get("anova", {}).get("ir_free") if by is not None else None
    if not an:
        return ""
    df1, df2 = an.get("num_df", an.get("df1")), an.get("den_df", an.get("df2"))
    if df1 is None or df2 is None:
        ns = [int(n) for n in by["n_participants"] if n >= 2]
        df1, df2 = len(ns) - 1, sum(ns) - len(ns)
    return f"F({int(df1)}, {int(df2)}) = {an.get('statistic', an.get('F')):.2f}"


def pelvis_findings(result, *, display: bool = True) -> list[Finding]:
    """Key findings H1 (the rows of :meth:`hipstats.questions.pelvis.PelvisResult.summary`), with units for the
    forest plot, the ANOVA shown as F with its df, and the corrected slope linked to the figure's."""
    if (na := _unavailable("H1", result, display)) is not None:
        return na
    conf = result_confidence(result)
    s = result.summary()
    wb = getattr(result, "within_between", None)
    raw_within = None
    if wb is not None and "term" in wb.columns and (wb["term"] == "within").any():
        raw_within = float(wb.loc[wb["term"] == "within", "estimate"].iloc[0])
    out = []
    for r in s.to_dict("records"):
        q = str(r["question"])
        text = str(r.get("interpretation", ""))
        est, p = _num_or_none(r.get("estimate")), r.get("p_value", r.get("p"))
        chance = "unlikely to be chance" if significance_words(p, conf).startswith("unlikely") else \
            "the data cannot rule out chance"
        kw: dict = {}
        if "ANOVA" in q:
            kw["statistic"] = _f_statistic(result)
            q = q.replace(" (one-way ANOVA F)", " (one-way ANOVA)")
            by = getattr(result, "by_class", None)
            means = ", ".join(f"{c.tilt_class} {c.ir_free:.1f}" for c in by.itertuples() if c.n_participants) \
                if by is not None and {"tilt_class", "ir_free", "n_participants"} <= set(by.columns) else ""
            kw.update(headline=True, brief=("Mean own-posture IR differs between tilt classes" if chance[0] == "u"
                                            else "No clear difference in own-posture IR between tilt classes")
                      + (f" ({means} deg)." if means else "."))
        elif q.startswith("Neutral-pelvis") and est is not None:
            kw.update(unit="deg", null=0.0, headline=True,
                      brief=f"In their own posture participants' IR reads {abs(est):.1f} deg "
                            f"{'lower' if est > 0 else 'higher'} than with the pelvis set neutral; {chance}.")
        elif "slope" in q:
            kw.update(unit="deg IR per deg tilt", null=0.0)
            if q.startswith("Within") and est is not None:
                kw.update(headline=True,
                          brief=f"Within a participant, 1 deg more anterior tilt goes with {abs(est):.2f} deg "
                                f"{'less' if est < 0 else 'more'} IR; {chance}"
                                + (" (corrected for tilt measurement error)." if "corrected" in q else "."))
            if q.startswith("Within") and "corrected" in q and raw_within is not None:
                text += (f"; the figure and the model table show the uncorrected within-participant slope "
                         f"({raw_within:.2f}), which measurement error in tilt pulls towards zero")
        elif "correlation" in q.lower():
            text = text.replace("r_rm", "repeated-measures r")
        out.append(record("H1", q, r.get("estimate"), r.get("ci_low"), r.get("ci_high"),
                          p, text, confidence=conf, display=display, **kw))
    return out


def _num_or_none(x) -> float | None:
    """A finite float, else None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


#: Fewest participants with (and without) the condition for an accuracy headline.
MIN_CASES = 5


def _too_few_cases(result) -> str | None:
    """Why the screen's overall accuracy is not worth headlining (fewer than :data:`MIN_CASES` units with or
    without the condition), or None."""
    a = result.summary().set_index("group").loc["all"]
    unit = "hips" if result.settings.get("sides") == "both" else "participants"
    cases = int(a.get("n_deficit", 0))
    controls = int(a.get("n_units", a.get("n_participants", 0))) - cases
    if cases < MIN_CASES or controls < MIN_CASES:
        return (f"only {cases} {unit} with limited IR and {controls} without; at least {MIN_CASES} of each are "
                "needed for a useful estimate")
    return None


def screening_findings(result, *, display: bool = True) -> list[Finding]:
    """Key findings H3: accuracy at the cutoff, AUC, Youden cutoff, and the AUC of every tilt class against
    neutral (both pre-specified comparisons, Holm-adjusted for the two)."""
    if (na := _unavailable("H3", result, display)) is not None:
        return na
    s = result.summary().set_index("group")
    a = s.loc["all"]
    conf = result_confidence(result)
    cut = result.settings["cutoff"]
    rule = f"ASLR {result.settings['direction']} {cut:g} deg"
    too_few = _too_few_cases(result)
    if too_few is not None:
        return [record("H3", f"Accuracy of {rule} for limited IR", None, None, None, None,
                       not_estimable("Screening accuracy", too_few), confidence=conf, display=display)]
    out = [
        record("H3", f"Sensitivity of {rule} for limited IR", a["sensitivity"], a["sensitivity_ci_low"],
               a["sensitivity_ci_high"], None,
               f"Of participants with limited IR, {100 * a['sensitivity']:.0f}% had {rule} "
               f"(the screen catches about {round(10 * a['sensitivity'])} in 10).", confidence=conf,
               display=display, headline=True,
               brief=f"The screen flags {100 * a['sensitivity']:.0f}% of those with limited IR."),
        record("H3", f"Specificity of {rule}", a["specificity"], a["specificity_ci_low"], a["specificity_ci_high"],
               None, f"Of participants without limited IR, {100 * a['specificity']:.0f}% were correctly not flagged.",
               confidence=conf, display=display, headline=True,
               brief=f"{100 * a['specificity']:.0f}% of those without limited IR are not flagged."),
        record("H3", "ROC AUC of ASLR for limited IR (DeLong CI)", a["auc"], a["auc_ci_low"], a["auc_ci_high"], None,
               f"Across all possible cutoffs, ASLR separates participants with and without limited IR with an AUC "
               f"of {a['auc']:.2f} (0.5 = no better than chance, 1 = perfect).", confidence=conf,
               display=display),
        record("H3", "Youden-optimal ASLR cutoff (deg, bootstrap CI)", a["youden_cutoff"], a["youden_cutoff_ci_low"],
               a["youden_cutoff_ci_high"], None,
               f"The cutoff that best balances sensitivity and specificity in these data is {a['youden_cutoff']:.0f} deg "
               f"(the pre-set cutoff is {cut:g} deg).", digits=1, confidence=conf, display=display),
    ]
    tc = tilt_comparisons(result)
    ok = np.isfinite(pd.to_numeric(tc["p_value"], errors="coerce"))
    reasons = getattr(result, "not_estimable", {}) or {}
    for r in tc[~ok].itertuples():  # said here, once: the page's table lists only the estimable comparisons
        out.append(record("H3", f"AUC, {r.group} minus {r.reference} tilt", None, None, None, None,
                          not_estimable(f"The AUC difference between {r.group} and {r.reference} tilt",
                                        reasons.get(f"{r.group} vs {r.reference}", "the data do not support it")
                                        + " (the reason is in the notes of the accuracy table)"),
                          confidence=conf, display=display, headline=True))
    tc = tc[ok]
    for r in tc.itertuples():
        adjusted = bool(adjustment_words(r.adjust, len(tc)))  # the rule H2 uses: a method and 2+ comparisons
        method = _ADJUST_NAMES.get(str(r.adjust).lower(), str(r.adjust))
        ci = (f"{ci_label(conf)} {r.ci_low:.2f} to {r.ci_high:.2f}{', not adjusted' if adjusted else ''}; "
              if np.isfinite(r.ci_low) and np.isfinite(r.ci_high) else "")
        p_words = f"{method}-adjusted p {format_p(r.p_adj)}" if adjusted else f"p {format_p(r.p_value)}"
        out.append(record(
            "H3", f"AUC, {r.group} minus {r.reference} tilt", r.estimate, r.ci_low, r.ci_high,
            r.p_adj if adjusted else r.p_value,
            f"In participants with {r.group} pelvic tilt the ASLR screen's AUC is {abs(r.estimate):.2f} "
            f"{'lower' if r.estimate < 0 else 'higher'} than with a {r.reference} pelvis ({ci}{p_words}).",
            confidence=conf, display=display, unit="AUC difference", null=0.0, headline=True,
            adjusted=f"{method} over the {len(tc)} tilt-class comparisons" if adjusted else "",
            brief=(f"AUC {abs(r.estimate):.2f} {'lower' if r.estimate < 0 else 'higher'} with {r.group} tilt than "
                   f"{r.reference}; " + ("unlikely to be chance." if significance_words(
                       r.p_adj if adjusted else r.p_value, conf).startswith("unlikely")
                       else "the data cannot rule out no difference."))))
    return out


def tilt_comparisons(result, *, estimable_only: bool = False) -> pd.DataFrame:
    """The result's comparisons of each tilt class's AUC with the reference class (H3's pre-specified
    comparisons, :attr:`~hipstats.questions.screening.ScreeningResult.tilt_comparison`: estimate, CI,
    adjusted p and the adjustment, computed by the analysis), as a page shows them. Nothing is recomputed.

    With ``estimable_only`` the comparisons the data cannot support are left out (the key findings say
    why), and when the screen's overall accuracy is not estimable (:data:`MIN_CASES`) there is no table.
    """
    if isinstance(result, NotEstimable):
        return None
    tc = getattr(result, "tilt_comparison", None)
    cols = ["group", "reference", "n_participants", "estimate", "ci_low", "ci_high", "se", "df", "statistic",
            "p_value", "p_adj", "adjust"]
    if tc is None or not len(tc):
        out = pd.DataFrame(columns=cols)
    else:
        out = tc[[c for c in cols if c in tc.columns]].reset_index(drop=True)
    if estimable_only:
        if _too_few_cases(result) is not None:
            return None
        out = out[np.isfinite(pd.to_numeric(out["p_value"], errors="coerce"))].reset_index(drop=True)
        if out.empty:
            return None
    out.attrs["confidence"] = result_confidence(tc if tc is not None and "confidence" in tc.attrs else result)
    return out


def tilt_comparison_table(result):
    """The page table of the tilt-class comparisons (estimable ones; :func:`tilt_comparisons`)."""
    if isinstance(result, NotEstimable):
        return None if result.said else result
    t = tilt_comparisons(result, estimable_only=True)
    if t is None or not len(t):  # none could be estimated: say which and why, once, here
        every = tilt_comparisons(result)
        if every is None or not len(every):
            return NotEstimable("Comparison of tilt classes", "the cohort has no tilt class besides the reference")
        reasons = getattr(result, "not_estimable", {}) or {}
        why = "; ".join(f"{r.group}: {reasons.get(f'{r.group} vs {r.reference}', 'the data do not support it')}"
                        for r in every.itertuples())
        return NotEstimable(f"Comparison of each tilt class with {every['reference'].iloc[0]}", why)
    return table(t, "AUC difference against the neutral tilt class",
                 labels={"group": "Tilt class", "estimate": "AUC difference", "statistic": "DeLong D",
                         "n_participants": "Participants"},
                 notes=["AUC difference: the AUC of the class minus that of the reference class (DeLong's test for "
                        "independent groups, t distribution with Welch-type df); intervals per comparison."])


def loading_arm(result) -> str | None:
    """The arm whose loads rose fastest (the loading protocol), found from the result, not by its name."""
    pr = getattr(result, "progression_by_arm", None)
    if pr is None or not len(pr):
        return None
    slope = "mean_slope" if "mean_slope" in pr.columns else "estimate"
    return str(pr.groupby("arm", observed=True)[slope].mean().idxmax())


def loading_findings(result, *, arm: str | None = None, display: bool = True) -> list[Finding]:
    """Key findings H4: progression, adherence, progression-rule violations, pain flags, dose-response.

    ``arm`` defaults to the arm whose loads rose fastest (:func:`loading_arm`).
    """
    if (na := _unavailable("H4", result, display)) is not None:
        return na
    conf = result_confidence(result)
    arm = arm or loading_arm(result) or ""
    shown = arm_label(arm)
    out = []
    pr = getattr(result, "progression_by_arm", None)
    if pr is not None and len(pr):
        for r in pr[pr["arm"] == arm].itertuples():
            out.append(record("H4", f"Load progression, {r.exercise.replace('_', ' ')} ({shown} arm, kg/week)",
                              r.mean_slope, r.mean_slope_ci_low,
                              r.mean_slope_ci_high, None,
                              f"In the {shown} arm the {r.exercise.replace('_', ' ')} load rose by {r.mean_slope:.1f} kg "
                              f"per week on average; {100 * r.share_progressive:.0f}% of participants progressed.",
                              digits=2, confidence=conf, display=display, headline=True,
                              brief=f"The {r.exercise.replace('_', ' ')} load rose {r.mean_slope:.1f} kg a week; "
                                    f"{100 * r.share_progressive:.0f}% of participants progressed."))
    ad = getattr(result, "adherence_by_arm", None)
    if ad is not None and (ad["arm"] == arm).any():
        r = ad[ad["arm"] == arm].iloc[0]
        out.append(record("H4", f"Mean adherence ({shown} arm, share of prescribed sessions completed)",
                          r["mean_adherence"], r["mean_adherence_ci_low"], r["mean_adherence_ci_high"], None,
                          f"Participants in the {shown} arm completed {100 * r['mean_adherence']:.0f}% of their "
                          "prescribed sessions on average.", confidence=conf, display=display))
    comp = getattr(getattr(result, "compliance", None), "by_arm", None)
    if comp is not None and (comp["arm"] == arm).any():
        r = comp[comp["arm"] == arm].iloc[0]
        out.append(record("H4", f"Load increases after a fault or pain session ({shown} arm, share)", r["violation_rate"],
                          r["violation_rate_ci_low"], r["violation_rate_ci_high"], None,
                          f"After {int(r['flagged'])} sessions with a form fault or pain the load was still raised "
                          f"{int(r['violations'])} times ({100 * r['violation_rate']:.0f}%), against the "
                          "progression rule.", confidence=conf, display=display))
    pain = getattr(result, "pain_by_arm", None)
    if pain is not None and (pain["arm"] == arm).any():
        r = pain[pain["arm"] == arm].iloc[0]
        out.append(record("H4", f"Sessions with pain at or above the stop threshold ({shown} arm, share)", r["rate"],
                          r["rate_ci_low"], r["rate_ci_high"], None,
                          f"{100 * r['rate']:.1f}% of {shown} sessions had a pain flag; {int(r['participants_flagged'])} "
                          "participants had at least one.", digits=3, confidence=conf, display=display, headline=True,
                          brief=f"{100 * r['rate']:.1f}% of sessions had pain at or above the stop threshold; "
                                f"{int(r['participants_flagged'])} participants had at least one such session."))
    dr = getattr(result, "dose_response", None)
    if dr is not None and len(dr):
        row = dr[dr["term"].astype(str).str.startswith("volume_load")]
        if len(row):
            r = row.iloc[0]
            out.append(record("H4", "Outcome change per 1,000 kg more cumulative volume-load (deg, within arm)",
                              r["estimate"], r["ci_low"], r["ci_high"], _p(r),
                              f"Within an arm, participants who lifted 1,000 kg more in total changed by "
                              f"{r['estimate']:+.2f} deg (dose-response).", confidence=conf, display=display))
    return out


def faults_findings(result, *, display: bool = True) -> list[Finding]:
    """Key findings H5: the rows of :meth:`hipstats.questions.faults.FaultsResult.summary`, worded for clinicians."""
    if (na := _unavailable("H5", result, display)) is not None:
        return na
    conf = result_confidence(result)
    s = attempt("H5 summary", result.summary)
    if isinstance(s, NotEstimable):
        return [record("H5", s.what, None, None, None, None, str(s), display=display)]
    words, headline, brief = [], [], []
    for r in s.itertuples():
        q, est = str(r.question), r.estimate
        key = False
        if q.startswith("Share of completed"):
            words.append(f"{100 * est:.0f}% of completed exercises in the training log had at least one form fault "
                         f"(back-knee lean, front-knee drift, lumbar rounding, loss of neutral pelvis, ...).")
            key, short = True, f"{100 * est:.0f}% of completed exercises had at least one form fault."
        elif q.startswith("Odds ratio"):
            words.append(f"With each training week the odds of a form fault changed by {100 * (est - 1):+.0f}%"
                         + (" - technique improved with practice." if r.ci_high < 1 else "."))
        elif q.startswith("Outcome change"):
            linked = getattr(r, "p_value", getattr(r, "p", 1.0)) < 1 - conf
            words.append(f"Within an arm, participants with 10 percentage points more faulty exercises changed by "
                         f"{est:+.1f} deg; " + ("faults went with a different gain." if linked else
                                                 "no clear link between faults and gain."))
            key, short = True, ("Participants with more faulty exercises gained differently." if linked else
                                "No clear link between how often faults occurred and the gain.")
        else:
            words.append(str(r.interpretation))
        headline.append(key)
        brief.append(short if key else "")
    return record_summary("H5", s.assign(interpretation=words, headline=headline, brief=brief), confidence=conf,
                          display=display)


# --------------------------------------------------------------------------------------------- page tables
def cohort_overview(cohort):
    """The cohort a page describes, as a table by arm (participants, records, visits) with the visits in a note."""
    visits = ", ".join(_visit(v) for v in cohort.scheduled_visits)
    return table(cohort.summary(), "The data in this report",
                 notes=[f"{cohort.n_participants} participants; scheduled visits: {visits}."])


def arms_sentence(cohort):
    """One line naming the cohort's own arms (reference first), for a page's introduction."""
    from IPython.display import Markdown  # noqa: PLC0415

    arms = [str(a) for a in cohort.arms]
    n = cohort.participants["arm"].astype(str).value_counts()
    parts = [f"**{arm_label(a)}** ({int(n.get(a, 0))} participants{', reference' if i == 0 else ''})" for i, a in enumerate(arms)]
    return Markdown("Arms in this cohort: " + ", ".join(parts) + ".")


def validation_summary(report_or_source):
    """The validation result for people: one sentence when the data keep the contract, else the problems."""
    from IPython.display import HTML  # noqa: PLC0415

    r = report_or_source
    if not hasattr(r, "problems"):
        from hipstats.report.data import validation_report  # noqa: PLC0415

        r = validation_report(report_or_source)
    if r.ok:
        return HTML('<p class="hipstats-summary ok">Every table keeps the data contract: no problems were found.</p>')
    df = r.to_frame()
    if "file" in df.columns:
        df["file"] = df["file"].map(lambda f: str(f).replace("\\", "/").rsplit("/", 1)[-1])
    return table(df, "Problems found in the data")


def reliability_table(table_, *, confidence: float | None = None):
    """The reliability summary as a page table: per measure (row groups), design and test condition: ICC,
    SEM and MDC95 with their CIs (kappa for ordinal scores and tilt classes), participants."""
    if isinstance(table_, NotEstimable) or table_ is None:
        return table_
    t = (table_ if isinstance(table_, pd.DataFrame) else table_.to_frame()).copy()
    cond_cols = [c for c in ("pelvis", "position", "device") if c in t.columns]
    t["condition"] = t[cond_cols].astype(object).apply(
        lambda r: ", ".join(f"{v} pelvis" if c == "pelvis" else str(v) for c, v in r.items()
                            if isinstance(v, str) and v), axis=1) if cond_cols else ""
    keep = ["measure", "design", "condition", "n_participants"]
    for fam in ("icc", "sem", "mdc95", "kappa"):
        lows = [f"{fam}_ci_low", f"{fam}_ci_high"] if fam != "icc" or "icc_ci_low" in t.columns else ["ci_low", "ci_high"]
        for c in (fam, *lows):
            if c in t.columns:
                keep.append(c)
    notes = []
    if "form" in t.columns and t["form"].nunique() == 1:
        notes.append(f"ICC form {t['form'].iloc[0]} (McGraw and Wong): absolute agreement of a single reading.")
    if "ci_method" in t.columns and t["ci_method"].nunique() == 1:
        notes.append(f"Confidence intervals: {t['ci_method'].iloc[0]}.")
    notes.append("SEM and MDC95 are in the measure's unit (deg, or score points) and refer to a single reading of "
                 "one side.")
    if "kappa_on" in t.columns and t["kappa_on"].notna().any():
        notes.append("Kappa: " + "; ".join(sorted(set(t["kappa_on"].dropna().astype(str)))) + ".")
    out = t[[c for c in keep if c in t.columns]]
    out.attrs["confidence"] = confidence or result_confidence(table_)
    return table(out, "Reliability of every measure", group="measure", notes=notes,
                 labels={"icc": "ICC", "n_participants": "Participants"})


#: Page labels of the repeated-measures correlation table: the result keeps the vocabulary (``estimate`` is r_rm).
RM_CORR_LABELS = {"estimate": "Repeated-measures r", "statistic": "t", "slope": "Common slope (deg IR per deg tilt)",
                  "n_readings": "Readings", "n_excluded": "Participants left out"}


def rm_corr_table(rm_corr):
    """The H1 repeated-measures correlation of standing tilt and IR as a page table: the estimate is shown as
    what it is, a repeated-measures correlation r (Bakdash and Marusich), with its CI, t test and the common
    within-participant slope. A "not estimable" sentence (or None) passes through."""
    if not isinstance(rm_corr, pd.DataFrame):
        return rm_corr
    return table(rm_corr, "Repeated-measures correlation of tilt and IR", labels=RM_CORR_LABELS,
                 digits={"estimate": 2})


def agreement_table(result):
    """A Bland-Altman result as a page table: bias, limits of agreement and proportional bias with CIs."""
    if isinstance(result, NotEstimable) or result is None:
        return result
    s = result.summary().reset_index()
    names = {"bias": f"Bias ({result.x} minus {result.y})", "loa_low": "Lower limit of agreement",
             "loa_high": "Upper limit of agreement", "slope": "Proportional bias (slope on the mean)"}
    key = s.columns[0]  # the summary's row label column ("term"; "statistic" before the vocabulary rename)
    s[key] = s[key].map(lambda x: names.get(x, x))
    s = s.rename(columns={key: "statistic_name", "pval": "p_value"})
    s.attrs["confidence"] = result.confidence
    return table(s, f"Agreement, {result.x} against {result.y}", digits={"estimate": 2},
                 notes=[f"{getattr(result, 'n_pairs', getattr(result, 'n', ''))} paired readings of "
                        f"{getattr(result, 'n_participants', getattr(result, 'n_subjects', ''))} participants; limits = bias ± "
                        f"{result.limits:g} SD of the differences ({result.method})."],
                 labels={"estimate": "deg"})
