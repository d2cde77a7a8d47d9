"""Result tables for people: one function, :func:`table`, turns any result DataFrame into a report table.

Built on `great_tables <https://posit-dev.github.io/great-tables/>`_ (see docs/DECISIONS.md):
human column labels with units, numbers at a precision that suits the quantity, p-values as
``< 0.001``, confidence intervals as one "0.93 to 0.98" column under a spanner with their
estimate, methods and adjustments that are the same on every row as footnotes, no index
column, nothing truncated. A table that would be wider than an A4 page is never scrolled or
cut: it is split into several tables that repeat the identifying columns (or, with
``long=True``, turned so that each estimate is a row).

Every cell and label is escaped by great_tables; no font or script is loaded from the network.

Examples
--------
>>> import pandas as pd
>>> from hipstats.report.tables import table
>>> df = pd.DataFrame({"measure": ["hip_ir_deg"], "icc": [0.9553], "ci_low": [0.946], "ci_high": [0.9634],
...                    "p_value": [2e-41], "adjust": ["holm"]})
>>> t = table(df, confidence=0.9)
>>> t.frames[0].iloc[0].tolist()
['Hip internal rotation (deg)', '0.96', '0.95 to 0.96', '< 0.001']
>>> t.labels[0]["icc__ci"]
'90% CI'
>>> t.footnotes
['CI: 90% confidence interval.', 'p-values adjusted for multiple comparisons (Holm).']
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hipstats.plots.style import MEASURE_LABELS
from hipstats.report.notes import plain_note

__all__ = ["table"]

#: Page budget in characters (about 720 CSS px of A4 print at 9 pt, 1,070 px on screen at 1280 px).
PAGE_CHARS = 120
_PAD = 2  # characters of cell padding per column
_WRAP = 24  # a wrapping text column takes at most this many characters of width

MISSING = "–"

MEASURE_NAMES = MEASURE_LABELS

#: Column labels: the shared vocabulary first, then the analyses' own columns.
LABELS = {
    "estimate": "Estimate", "se": "SE", "df": "df", "statistic": "Statistic", "p_value": "p",
    "p_adj": "p (adjusted)", "n_participants": "Participants", "n": "n", "k": "Readings per unit",
    "measure": "Measure", "arm": "Arm", "ref": "Reference arm", "reference": "Reference", "visit": "Visit",
    "final_visit": "Final visit", "week": "Week", "side": "Side", "rater": "Rater", "device": "Device",
    "position": "Position", "pelvis": "Pelvis", "design": "Design", "form": "ICC form", "icc": "ICC",
    "sem": "SEM", "mdc95": "MDC95", "mdc": "MDC", "kappa": "Kappa", "kappa_on": "Kappa on", "contrast": "Comparison",
    "term": "Term", "group": "Group", "tilt_class": "Tilt class", "sensitivity": "Sensitivity",
    "specificity": "Specificity", "ppv": "PPV", "npv": "NPV", "lr_positive": "LR+", "lr_negative": "LR-",
    "auc": "AUC", "youden_cutoff": "Youden cutoff", "prevalence": "Prevalence", "n_units": "Hips",
    "n_deficit": "Limited IR", "hedges_g": "Hedges' g", "risk_difference": "Responder difference",
    "responders_arm": "Responders (arm)", "responders_ref": "Responders (reference)",
    "diff_change": "Difference in change", "ancova_diff": "ANCOVA difference",
    "difference_in_change": "Difference in change", "ancova_difference": "ANCOVA difference",
    "n_targets": "Participant-sides", "n_readings": "Readings compared", "n_responders": "Responders",
    "n_pairs": "Pairs", "po": "Observed agreement", "pe": "Chance agreement", "n_categories": "Categories",
    "weights": "Weights", "mean_diff": "Mean difference",
    "sd_diff": "SD of differences", "mean_neutral": "Mean, neutral pelvis", "mean_free": "Mean, own posture",
    "t": "t", "z": "z", "wilcoxon_W": "Wilcoxon W", "p_wilcoxon": "p (Wilcoxon)", "d_z": "Cohen's dz",
    "g_av": "Hedges' g (av)", "r": "r", "slope": "Slope", "n_obs": "Observations", "n_subjects": "Participants",
    "n_excluded": "Left out", "tilt_mean": "Mean tilt (deg)", "ir_free": "IR, own posture (deg)",
    "ir_neutral": "IR, neutral pelvis (deg)", "diff": "Difference (deg)", "bias": "Bias", "sd": "SD",
    "loa_low": "Lower limit", "loa_high": "Upper limit", "allocated": "Allocated", "retained_pct": "Retained (%)",
    "attended": "Attended", "measured": "Measured", "missing_pct": "Missing (%)", "n_readings": "Readings",
    "mean": "Mean", "min": "Min", "p5": "5th pct", "median": "Median", "p95": "95th pct", "max": "Max",
    "plausible": "Plausible range", "out_of_range": "Out of range", "median_range": "Median spread",
    "p95_range": "95th pct spread", "max_range": "Largest spread", "value": "Value", "visit_median": "Visit median",
    "robust_z": "Robust z", "exercise": "Exercise", "mean_slope": "Mean rise (kg/week)",
    "mean_slope_kg_per_week": "Mean rise (kg/week)", "median_slope": "Median rise (kg/week)",
    "share_progressive": "Progressing (share)", "mean_adherence": "Mean adherence", "flagged": "Sessions with fault or pain",
    "violations": "Raised after flag", "violation_rate": "Raised after flag (share)", "unsafe_share": "Raised although rule said hold (share of raises)",
    "num_df": "Numerator df", "den_df": "Denominator df", "increases": "Load increases",
    "pain_flag_rate": "Pain-flag rate", "participants_flagged": "Participants flagged", "completed": "Completed",
    "prescribed": "Prescribed", "adherence": "Adherence", "sessions": "Sessions", "rate": "Rate",
    "mean_rate": "Mean rate", "fault": "Fault", "n_rows": "Exercise rows", "n_fault": "With fault",
    "log_or_per_week": "Log odds ratio per week", "odds_ratio_per_week": "Odds ratio per week",
    "question": "What was estimated", "interpretation": "In plain words", "note": "Note", "proportion": "Proportion",
    "responders": "Responders", "participant_id": "Participant", "estimand": "Estimand", "emmean": "Mean",
    "change": "Change", "limits": "Limits (SD)", "x": "First", "y": "Second", "sessions_per_week": "Sessions/week",
    "participants": "Participants", "measurements": "Measurement rows", "visits": "Visits attended",
    "characteristic": "Characteristic", "level": "", "statistic_name": "", "condition": "Test condition",
    "p": "p", "pval": "p", "p_adj_holm": "p (Holm)", "reason": "Reason", "rule": "Rule", "column": "Column",
    "row": "Row", "file": "File", "message": "Problem",
    # vocabulary renames of issue 11 (vocab helper)
    "ir_difference": "Difference (deg)", "wilcoxon_statistic": "Wilcoxon W", "wilcoxon_p_value": "p (Wilcoxon)",
    "log_or_per_week_se": "SE (log odds ratio)", "kappa_se": "SE", "num_df": "df (numerator)",
    "den_df": "df (denominator)", "slope_kg_per_week_se": "SE (kg/week)",
}

#: Columns whose values are in the measure's unit (the ``unit=`` argument labels them).
UNIT_COLUMNS = {"estimate", "se", "mean", "sd", "min", "p5", "median", "p95", "max", "sem", "mdc95", "mdc", "bias",
                "loa_low", "loa_high", "mean_diff", "sd_diff", "mean_neutral", "mean_free", "diff_change",
                "ancova_diff", "difference_in_change", "ancova_difference", "value", "visit_median", "median_range", "p95_range", "max_range", "emmean", "change"}

#: Columns describing how a number was computed: constant over the rows they become a footnote.
METHOD_COLUMNS = {"adjust": "p-values adjusted for multiple comparisons ({})", "ci_method": "Confidence intervals: {}",
                  "method": "Method: {}", "form": "ICC form: {}", "df_method": "Degrees of freedom: {}",
                  "estimand": "Estimand: {}", "kappa_on": "Kappa on: {}"}
_ADJUST = {"holm": "Holm", "bonferroni": "Bonferroni", "sidak": "Sidak", "fdr_bh": "Benjamini-Hochberg",
           "bh": "Benjamini-Hochberg", "fdr": "Benjamini-Hochberg", "dunnettx": "Dunnett (approx.)", "tukey": "Tukey"}
_ALT = {"f": "F-distribution", "wilson": "Wilson"}
#: Columns never shown (kept in the result's own table).
HIDDEN = {"confidence", "limits"}
#: Code-like text columns whose values are shown with spaces for underscores.
CODE_COLUMNS = {"arm", "ref", "reference_arm", "contrast", "measure", "visit", "final_visit", "exercise", "fault", "term", "design", "kappa_on", "tilt_class",
                "group", "reference", "estimand", "pelvis", "position", "device"}
_PROPORTION = {"icc", "kappa", "auc", "sensitivity", "specificity", "ppv", "npv", "prevalence", "r", "proportion",
               "adherence", "mean_adherence", "share_progressive", "violation_rate", "unsafe_share", "pain_flag_rate",
               "rate", "mean_rate", "risk_difference", "responders_arm", "responders_ref"}
#: Model terms as a reader knows them.
TERM_NAMES = {"Intercept": "Intercept", "baseline": "Baseline value", "week": "Week", "fault_rate": "Fault rate",
              "fault_rate_per_10pct": "Fault rate (per 10 percentage points)", "within": "Within participants",
              "between": "Between participants", "contextual": "Between minus within (contextual)",
              "within_corrected": "Within participants, corrected for tilt measurement error",
              "between_corrected": "Between participants, corrected for tilt measurement error"}
_TERM = re.compile(r"C\((\w+)(?:,\s*Treatment\([^)]*\))?\)\[T\.([^\]]+)\]")


def _is_p(col: str) -> bool:
    return col in ("p", "p_value", "p_adj", "pval") or col.endswith(("_p_value", "_p_adj", "_pval")) or \
        col.startswith("p_")


def _is_aux(col: str) -> bool:
    """Columns that accompany an estimate (counts, spread, df, test statistics)."""
    return col in ("df", "se", "sd", "t", "z", "statistic", "k", "n") or col.startswith(("n_", "sd_", "se_"))


def _words(text: str) -> str:
    return str(text).replace("_", " ")


def label(col: str, unit: str | None = None) -> str:
    """The human label of a column (with its unit when the column is in the measure's unit)."""
    if col in LABELS:
        out = LABELS[col]
    else:
        base = re.sub(r"_(deg|kg|pct|cm|s)$", "", col)
        out = _words(base)
        out = out[:1].upper() + out[1:]
        suffix = col[len(base) + 1:]
        if suffix:
            out += f" ({'%' if suffix == 'pct' else suffix})"
    if unit and col in UNIT_COLUMNS and "(" not in out:
        out += f" ({unit})"
    return out


def value_label(col: str, value) -> str:
    """A categorical cell for people: measure codes named, model terms and underscores cleaned."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    text = str(value)
    if col == "measure" and text in MEASURE_NAMES:
        return MEASURE_NAMES[text]
    if col == "term" and text in TERM_NAMES:
        return TERM_NAMES[text]
    if col == "term" and re.fullmatch(r"volume_load_per_[\d.]+kg", text):
        return f"Cumulative volume-load (per {float(text[16:-2]):,.0f} kg)"
    if col == "term" and (fr := re.fullmatch(r"fault_rate_per_([\d.]+)", text)):
        return f"Fault rate (per {100 * float(fr.group(1)):g} percentage points)"
    m = _TERM.fullmatch(text)
    if m:
        return f"{_words(m.group(1))}: {m.group(2)}"
    if col in CODE_COLUMNS:
        text = _words(text)
    return text


def format_p(p) -> str:
    """ "< 0.001", "0.032" (three decimals) or the missing mark."""
    try:
        v = float(p)
    except (TypeError, ValueError):
        return MISSING
    if not math.isfinite(v):
        return MISSING
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def _digits(col: str, values: np.ndarray) -> int:
    finite = values[np.isfinite(values)]
    if col in _PROPORTION or col.endswith(("_rate", "_share")):
        return 2 if not finite.size or np.nanmax(np.abs(finite)) <= 1.5 else 1
    if not finite.size:
        return 1
    if col.startswith(("lr_", "odds_ratio")) or col.endswith("_ratio"):  # ratios: never shown as whole numbers
        return 1 if np.nanmedian(np.abs(finite)) >= 10 else 2 if np.nanmedian(np.abs(finite)) < 1 else 1
    if np.allclose(finite, np.round(finite)):
        return 0
    if col == "df":
        return 1
    if col.endswith("_pct"):  # percentages: one decimal
        return 1
    nonzero = finite[finite != 0]  # exact zeros (no missing values, no faults) say nothing of the scale
    mid = float(np.median(np.abs(nonzero)))
    return 0 if mid >= 100 else 1 if mid >= 1 else 2 if mid >= 0.01 else 3


def _num(x, digits: int) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return MISSING
    if not math.isfinite(v):
        return MISSING
    s = f"{v:,.{digits}f}"
    return "0" + s[2:] if s.startswith("-0") and float(s.replace(",", "")) == 0 else s


@dataclass
class _Family:
    name: str  # the estimate column
    ci: tuple[str, str] | None = None
    p: list[str] = field(default_factory=list)


def _families(df: pd.DataFrame, numeric: list[str]) -> tuple[dict[str, _Family], set[str]]:
    """Estimate columns with their CI ends and p-values (``x_ci_low``/``x_ci_high``, ``x_p_value``; a bare
    ``ci_low``/``ci_high`` belongs to ``estimate`` or, when absent, to the numeric column left of it)."""
    cols = list(df.columns)
    fams: dict[str, _Family] = {}
    used: set[str] = set()
    alt = {c for c in cols if re.search(r"ci_(low|high)_\w+$", c)}  # alternative intervals (ci_low_f, _wilson)
    for c in cols:
        if c in alt or not c.endswith("ci_low"):
            continue
        prefix = c[: -len("ci_low")]
        high = prefix + "ci_high"
        if high not in df.columns:
            continue
        stem = prefix.rstrip("_")
        if stem and stem in df.columns:
            est = stem
        elif not stem and "estimate" in df.columns:
            est = "estimate"
        else:  # nearest estimate-like numeric column to the left (not a count, SD, SE, df or test statistic)
            left = [x for x in cols[: cols.index(c)] if x in numeric and "ci_" not in x and not _is_p(x)
                    and x not in fams and not _is_aux(x)]
            if not left:
                continue
            est = left[-1]
        fams.setdefault(est, _Family(est)).ci = (c, high)
        used |= {c, high}
    for c in cols:
        if not _is_p(c) or c in used:
            continue
        for suffix in ("_p_value", "_p_adj", "_pval"):
            stem = c[: -len(suffix)] if c.endswith(suffix) else None
            owner = stem if stem in fams else next((f for f in fams if stem and f.startswith(stem + "_")), None)
            if owner is not None:
                fams[owner].p.append(c)
                used.add(c)
                break
    return fams, used | alt


@dataclass
class ReportTable:
    """One or more rendered great_tables (a wide table split to fit the page) with their footnotes.

    ``frames`` are the formatted cell texts, ``labels`` the column labels and ``gts`` the
    :class:`great_tables.GT` objects; ``data`` is the table as passed in.
    """

    data: pd.DataFrame
    frames: list[pd.DataFrame]
    labels: list[dict[str, str]]
    spanners: list[dict[str, list[str]]]
    footnotes: list[str]
    title: str | None = None
    group: str | None = None

    @property
    def gts(self):
        return [self._gt(i) for i in range(len(self.frames))]

    def _gt(self, i: int):
        from great_tables import GT, loc, style  # noqa: PLC0415

        frame = self.frames[i]
        gt = GT(frame, groupname_col=self.group if self.group in frame.columns else None)
        title = self.title if i == 0 else (f"{self.title} (continued)" if self.title else None)
        if title:
            gt = gt.tab_header(title=title)
        for name, cols in self.spanners[i].items():
            gt = gt.tab_spanner(label=name, columns=cols, id=f"sp-{i}-{name}")
        labels = {c: v for c, v in self.labels[i].items() if c in frame.columns}
        gt = gt.cols_label(**labels) if labels else gt
        text_cols = [c for c in frame.columns if c != self.group and frame.attrs.get("kinds", {}).get(c) == "text"]
        num_cols = [c for c in frame.columns if c != self.group and c not in text_cols]
        if num_cols:
            gt = gt.cols_align(align="right", columns=num_cols)
            gt = gt.tab_style(style=style.text(whitespace="nowrap"), locations=loc.body(columns=num_cols))
        if text_cols:
            gt = gt.cols_align(align="left", columns=text_cols)
        if i == len(self.frames) - 1:
            for note in self.footnotes:
                gt = gt.tab_source_note(note)
        return gt.tab_options(table_font_size="14px", heading_align="left", heading_title_font_size="16px",
                              data_row_padding="3px", column_labels_font_weight="bold",
                              source_notes_font_size="12px", container_overflow_x="visible", table_margin_left="0")

    def _repr_html_(self) -> str:
        parts = []
        for gt in self.gts:
            body = gt.as_raw_html(make_page=False)
            parts.append(body)
        return '<div class="hipstats-table">' + "".join(parts) + "</div>"

    def __repr__(self) -> str:
        return "\n\n".join(f.rename(columns=l).to_string(index=False) for f, l in zip(self.frames, self.labels)) + \
            ("\n" + "\n".join(self.footnotes) if self.footnotes else "")

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self._repr_html_(), "text/plain": repr(self)}

    def to_html(self) -> str:
        """The table(s) as an HTML fragment (what a report page shows)."""
        return self._repr_html_()


def _width(strings: Iterable[str], header: str, wrap: bool) -> int:
    cells = [len(s) for s in strings] or [0]
    head = max((len(w) for w in header.split()), default=0) if wrap or len(header) > 12 else len(header)
    body = min(max(cells), _WRAP) if wrap else max(cells)
    return max(body, head) + _PAD


def table(data: pd.DataFrame, title: str | None = None, *, confidence: float | None = None, unit: str | None = None,
          notes: Iterable[str] = (), group: str | None = None, keys: list[str] | None = None, long: bool = False,
          digits: Mapping[str, int] | None = None, labels: Mapping[str, str] | None = None,
          hide: Iterable[str] = (), max_chars: int = PAGE_CHARS) -> ReportTable:
    """A result table formatted for a report page (and for a script's notebook).

    Parameters
    ----------
    data : DataFrame
        A result table in the shared vocabulary (``estimate``, ``ci_low``, ``p_value``, ...,
        ``<estimate>_ci_low`` for wide tables). The index is dropped unless it is named.
    title : str, optional
    confidence : float, optional
        Level of the intervals; default ``data.attrs["confidence"]`` or 0.95. Labels read "95% CI".
    unit : str, optional
        Unit of the measure ("deg"), added to the labels of columns in that unit.
    notes : iterable of str
        Extra footnotes (methods, adjustments).
    group : str, optional
        Column whose values become row groups (default ``"measure"`` when it has several values).
    keys : list of str, optional
        Identifying columns repeated when a wide table is split (default: the leading text columns).
    long : bool
        One row per estimate (and key), the values of the key column as column spanners: for
        tables with many estimates, such as screening accuracy by group.
    digits, labels : mapping, optional
        Decimals or labels for particular columns.
    hide : iterable of str
        Columns left out of the page (they stay in the result).
    max_chars : int
        Width budget of the page in characters; wider tables are split.

    Returns
    -------
    ReportTable
        Displays as HTML; ``frames`` and ``labels`` hold the text that is shown. Anything that
        is not a DataFrame (a "not estimable" sentence, None) is returned unchanged.
    """
    if not isinstance(data, pd.DataFrame):  # a "not estimable" sentence (or nothing) passes through unchanged
        return data
    df = data.copy()
    if not isinstance(df.index, pd.RangeIndex) and any(n is not None for n in df.index.names):
        df = df.reset_index()
    df = df.reset_index(drop=True)
    conf = confidence if confidence is not None else float(data.attrs.get("confidence", 0.95) or 0.95)
    ci_name = f"{round(100 * conf) if abs(100 * conf - round(100 * conf)) < 1e-9 else round(100 * conf, 1)}% CI"
    digits, labels = dict(digits or {}), dict(labels or {})
    footnotes: list[str] = []

    # method columns that are the same on every row -> footnotes; empty columns and hidden ones go
    for col in list(df.columns):
        if col not in df.columns:  # dropped with an earlier column (p_adj with adjust "none")
            continue
        values = df[col]
        if col in hide or col in HIDDEN:
            df = df.drop(columns=col)
        elif values.isna().all() or (values.dtype == object or pd.api.types.is_string_dtype(values)) and \
                values.fillna("").astype(str).str.strip().eq("").all():
            df = df.drop(columns=col)
        elif col in METHOD_COLUMNS and values.nunique(dropna=True) == 1:
            v = str(values.dropna().iloc[0])
            if v.lower() not in ("none", ""):
                footnotes.append(METHOD_COLUMNS[col].format(_ADJUST.get(v.lower(), v)) + ".")
            elif col == "adjust" and "p_adj" in df.columns and "p_value" in df.columns:
                df = df.drop(columns="p_adj")  # nothing was adjusted (e.g. a single comparison): p_adj is p
            df = df.drop(columns=col)
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    fams, used = _families(df, numeric)
    alternative = [c for c in used if re.search(r"ci_(low|high)_\w+$", c)]
    if alternative:
        kinds_alt = sorted({_ALT.get(c.rsplit("_", 1)[-1], c.rsplit("_", 1)[-1]) for c in alternative})
        footnotes.append("Alternative intervals (" + ", ".join(kinds_alt) + ") are in the result's own table.")
        df = df.drop(columns=alternative)
    text_cols = [c for c in df.columns if c not in numeric]
    if group is None and "measure" in df.columns and df["measure"].nunique() > 1 and not long and \
            df["measure"].duplicated().any():
        group = "measure"
    if keys is None:
        keys = []
        for c in df.columns:
            if c in text_cols and c not in ("question", "interpretation", "note"):
                keys.append(c)
            else:
                break
    keys = [k for k in keys if k != group]
    if len(df) > 1:  # an identifying column with one value on every row is said once, below the table
        for k in list(keys):
            if df[k].nunique(dropna=False) == 1 and len(keys) > 1:
                footnotes.append(f"{labels.get(k, label(k))}: {value_label(k, df[k].iloc[0])}.")
                keys.remove(k)
                df = df.drop(columns=k)
                text_cols.remove(k)

    # format every cell
    out: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    col_labels: dict[str, str] = {}
    spanners: dict[str, list[str]] = {}
    members: dict[str, list[str]] = {}  # estimate column -> its displayed columns (kept together)
    names: dict[str, str] = {}  # estimate column -> its own label (the spanner's)
    order: list[str] = []
    for col in df.columns:
        if col in used and col not in fams:
            continue
        if col in text_cols:
            out[col] = [value_label(col, v) for v in df[col]]
            kinds[col] = "text"
            col_labels[col] = labels.get(col, label(col))
            order.append(col)
            continue
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
        if _is_p(col):
            out[col] = [format_p(v) for v in vals]
            col_labels[col] = labels.get(col, label(col) if col in LABELS else "p" + (" (adjusted)" if "adj" in col else ""))
            order.append(col)
            continue
        d = digits.get(col, _digits(col, vals))
        out[col] = [_num(v, d) for v in vals]
        col_labels[col] = labels.get(col, label(col, unit))
        order.append(col)
        fam = fams.get(col)
        if fam is None:
            continue
        group_cols = [col]
        if fam.ci:
            lo = pd.to_numeric(df[fam.ci[0]], errors="coerce").to_numpy(float)
            hi = pd.to_numeric(df[fam.ci[1]], errors="coerce").to_numpy(float)
            ci_col = f"{col}__ci"
            out[ci_col] = [f"{_num(a, d)} to {_num(b, d)}" if math.isfinite(a) and math.isfinite(b) else MISSING
                           for a, b in zip(lo, hi)]
            col_labels[ci_col] = ci_name
            order.append(ci_col)
            group_cols.append(ci_col)
        for pc in fam.p:
            pcol = f"{col}__{pc}"
            out[pcol] = [format_p(v) for v in pd.to_numeric(df[pc], errors="coerce")]
            col_labels[pcol] = "p (adjusted)" if "adj" in pc else "p"
            order.append(pcol)
            group_cols.append(pcol)
        members[col] = group_cols
        names[col] = col_labels[col]
        if len(fams) > 1 and len(group_cols) > 1:
            spanners[labels.get(col, label(col, unit))] = group_cols
            col_labels[col] = "Estimate"
    frame = pd.DataFrame({c: out[c] for c in order})
    if MISSING in frame.to_numpy():
        footnotes.append(f"{MISSING} not estimable from these data (or not applicable).")
    frame.attrs["kinds"] = kinds
    notes = [n for n in notes if n]
    footnotes = footnotes + list(notes)
    if fams and any(f.ci for f in fams.values()):
        footnotes.insert(0, f"CI: {ci_name[:-3].strip()} confidence interval.")

    if long:
        return _long(data, frame, col_labels, members, names, keys, footnotes, title, max_chars)

    # split the value columns into pieces that fit the page; the key columns repeat in every piece
    if group:
        kinds[group] = "text"
    key_cols = [k for k in keys if k in frame.columns]
    widths = {c: _width(frame[c], col_labels.get(c, c), kinds.get(c) == "text") for c in frame.columns if c != group}
    # a spanner needs the width of its label
    blocks: list[list[str]] = []
    seen: set[str] = set()
    for c in frame.columns:
        if c in seen or c in key_cols or c == group:
            continue
        block = members.get(c, [c])
        seen |= set(block)
        blocks.append(block)
    key_width = sum(widths[k] for k in key_cols)
    pieces: list[list[str]] = []
    current: list[str] = []
    used_width = key_width
    for block in blocks:
        w = sum(widths[c] for c in block)
        if current and used_width + w > max_chars:
            pieces.append(current)
            current, used_width = [], key_width
        current.extend(block)
        used_width += w
    if current or not pieces:
        pieces.append(current)
    frames, all_labels, all_spanners = [], [], []
    lead = ([group] if group in frame.columns else []) + key_cols
    for piece in pieces:
        f = frame[lead + piece].copy()
        f.attrs["kinds"] = kinds
        frames.append(f)
        all_labels.append({c: col_labels[c] for c in f.columns if c in col_labels})
        all_spanners.append({n: cols for n, cols in spanners.items() if set(cols) <= set(piece)})
    return ReportTable(data, frames, all_labels, all_spanners, footnotes, title, group if group in frame else None)


#: Text columns that are sentences in their own right (shown as a footnote without the column's name).
_PROSE_COLUMNS = frozenset({"note", "notes", "interpretation", "reason", "message", "description"})


def _long(data, frame, col_labels, members, names, keys, footnotes, title, max_chars=PAGE_CHARS) -> ReportTable:
    """Each estimate family a row; the first key's values become column spanners.

    Text columns (a note per group) become footnotes naming their group, so a long sentence never
    widens the table; when the groups do not fit the page side by side, they are split over
    several tables that repeat the row labels.
    """
    key = keys[0] if keys else None
    texts = [c for c in frame.columns if c not in keys and frame.attrs.get("kinds", {}).get(c) == "text"]
    notes = []
    for c in texts:
        for i in range(len(frame)):
            text = str(frame[c].iloc[i]).strip()
            if text:
                tag = frame[key].iloc[i] if key else ""
                text = plain_note(UserWarning, text)
                if c not in _PROSE_COLUMNS:  # a short value ("no") needs its column's name to mean anything
                    text = f"{col_labels.get(c, label(c))}: {text}"
                notes.append(f"{tag}: {text}" if tag else text)
    fams = [c for c in frame.columns if c not in keys and c not in texts]
    blocks: list[list[str]] = []
    seen: set[str] = set()
    for c in fams:
        if c in seen:
            continue
        b = members.get(c, [c])
        seen |= set(b)
        blocks.append(b)
    has_ci = any(len(b) > 1 for b in blocks)
    ci_name = next((v for k, v in col_labels.items() if k.endswith("__ci")), "CI")
    rows = []
    for b in blocks:
        est = b[0]
        row = {"statistic": names.get(est, col_labels[est])}
        for i in range(len(frame)):
            tag = frame[key].iloc[i] if key else ""
            row[f"{tag}__est"] = frame[est].iloc[i]
            if has_ci:
                row[f"{tag}__ci"] = frame[b[1]].iloc[i] if len(b) > 1 and b[1].endswith("__ci") else ""
        rows.append(row)
    out = pd.DataFrame(rows)
    tags = [frame[key].iloc[i] if key else "" for i in range(len(frame))]
    head = _width(out["statistic"], "", True) if len(out) else 0
    per_group = {t: sum(_width(out[c], lab, False) for c, lab in
                        ((f"{t}__est", "Estimate"), *(((f"{t}__ci", ci_name),) if has_ci else ())))
                 for t in tags}
    pieces: list[list] = [[]]
    width = head
    for t in tags:
        if pieces[-1] and width + per_group[t] > max_chars:
            pieces.append([])
            width = head
        pieces[-1].append(t)
        width += per_group[t]
    frames, all_labels, all_spanners = [], [], []
    for piece in pieces:
        cols = ["statistic"]
        labels = {"statistic": ""}
        spanners: dict[str, list[str]] = {}
        for tag in piece:
            group_cols = [f"{tag}__est"] + ([f"{tag}__ci"] if has_ci else [])
            labels[group_cols[0]] = "Estimate"
            if has_ci:
                labels[group_cols[1]] = ci_name
            spanners[str(tag) if tag else "Estimate"] = group_cols
            cols += group_cols
        f = out[cols].copy()
        f.attrs["kinds"] = {"statistic": "text"}
        frames.append(f)
        all_labels.append(labels)
        all_spanners.append(spanners)
    return ReportTable(data, frames, all_labels, all_spanners, footnotes + notes, title, None)
