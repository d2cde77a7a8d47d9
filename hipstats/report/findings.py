"""Key findings: recorded inside a notebook and collected by the runner; the headline ones go on the index.

A notebook calls :func:`record` (or :func:`record_summary` with an analysis result's
``.summary()`` table). Each call displays a small HTML box in the notebook (so the
reader sees the finding where it was computed) and carries the same finding as a
machine-readable output with the MIME type :data:`MIME_TYPE`. After a run,
:func:`extract` reads those outputs back from the executed notebook, which is how
the index page gets its key-findings table: no side files, and every number on
the index is the number the notebook computed with a package function.

Every finding is shown on its question's page. The index shows only the *headline* findings
(``headline=True``): the answer to each question and every pre-specified comparison of it, each
with a short plain-language ``brief``; a question without any headline finding shows all of
its findings there.

Examples
--------
>>> from hipstats.report import findings
>>> f = findings.Finding("H2", "IR gain, loading vs control (deg)", 4.1, 2.0, 6.2, 0.001,
...                      "Loading gained 4.1 deg more IR than no intervention.")
>>> bundle = f.mime_bundle()
>>> sorted(bundle)
['application/vnd.hipstats.finding+json', 'text/html', 'text/plain']
>>> findings.Finding.from_dict(bundle[findings.MIME_TYPE]) == f
True
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

__all__ = ["Finding", "MIME_TYPE", "record", "record_summary", "extract", "format_p", "format_ci", "ci_label",
           "significance_words"]

MIME_TYPE = "application/vnd.hipstats.finding+json"


def _num(x) -> float | None:
    """A JSON-safe float (None for missing / non-finite)."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def format_p(p) -> str:
    """p-value for people: "< 0.001", "0.032", or "" when missing.

    >>> format_p(0.0321), format_p(1e-6), format_p(None)
    ('0.032', '< 0.001', '')
    """
    p = _num(p)
    if p is None:
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _fmt(x, digits: int) -> str:
    x = _num(x)
    return "" if x is None else f"{x:.{digits}f}"


def ci_label(confidence: float = 0.95) -> str:
    """ "95% CI" for a confidence level (rounded to a whole percent).

    >>> ci_label(0.8), ci_label(0.95)
    ('80% CI', '95% CI')
    """
    return f"{round(100 * float(confidence))}% CI"


def significance_words(p, confidence: float = 0.95) -> str:
    """Plain words for a p-value against alpha = 1 - confidence ("" when p is missing).

    >>> significance_words(0.03), significance_words(0.03, confidence=0.99)
    ('unlikely to be chance', 'the data cannot rule out chance')
    """
    p = _num(p)
    if p is None:
        return ""
    return "unlikely to be chance" if p < 1.0 - float(confidence) else "the data cannot rule out chance"


def format_ci(low, high, digits: int = 2) -> str:
    """ "low to high" or "" when either end is missing.

    >>> format_ci(1.234, 5.6)
    '1.23 to 5.60'
    """
    lo, hi = _fmt(low, digits), _fmt(high, digits)
    return f"{lo} to {hi}" if lo and hi else ""


@dataclass(frozen=True)
class Finding:
    """One key finding: a study question's estimate, confidence interval, p-value and a sentence.

    Attributes
    ----------
    area : str
        Study question id (H1-H5, R, Data).
    question : str
        What was estimated, with units.
    estimate, ci_low, ci_high, p : float or None
    sentence : str
        The finding in plain words for clinicians.
    digits : int
        Decimals shown for estimate and CI.
    confidence : float
        Level of the CI (0.95 shows "95% CI"); :attr:`alpha` = 1 - confidence is the
        significance level the sentences use.
    statistic : str
        A test statistic shown instead of an estimate, with its df ("F(2, 147) = 0.29").
    unit : str
        Unit of the estimate ("deg", "ICC", "AUC"); findings with a unit and a CI go into the
        index's forest plot, one panel per unit.
    null : float or None
        Value of no effect drawn as a reference line in the forest plot (0 for differences).
    adjusted : str
        Multiplicity adjustment of ``p`` ("Holm over 3 arm comparisons"); "" when unadjusted.
    headline : bool
        Shown on the index (the answer to the question or one of its pre-specified comparisons);
        other findings are shown only on the question's page.
    brief : str
        The finding in one short sentence for the index (the number and CI are in their own
        columns there); "" uses ``sentence``.
    """

    area: str
    question: str
    estimate: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    sentence: str = ""
    digits: int = 2
    confidence: float = 0.95
    statistic: str = ""
    unit: str = ""
    null: float | None = None
    adjusted: str = ""
    headline: bool = False
    brief: str = ""

    def __post_init__(self):
        for name in ("estimate", "ci_low", "ci_high", "p", "null"):
            object.__setattr__(self, name, _num(getattr(self, name)))
        conf = _num(self.confidence)
        if conf is None or not 0 < conf < 1:
            raise ValueError(f"confidence must be between 0 and 1, got {self.confidence!r}")
        object.__setattr__(self, "confidence", conf)

    @property
    def alpha(self) -> float:
        """Significance level tied to the CI: 1 - confidence."""
        return 1.0 - self.confidence

    @property
    def not_estimable(self) -> bool:
        """True when the finding has no number: its sentence says why."""
        return self.estimate is None and not self.statistic

    @property
    def index_sentence(self) -> str:
        """The sentence the index shows: ``brief``, else ``sentence``."""
        return self.brief or self.sentence

    @property
    def ci_label(self) -> str:
        """ "95% CI" (or the level the finding was computed at)."""
        return ci_label(self.confidence)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        keys = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in keys})

    def _html(self) -> str:
        ci = format_ci(self.ci_low, self.ci_high, self.digits)
        p = format_p(self.p)
        stats = [self.statistic] if self.statistic else \
            [f"estimate {_fmt(self.estimate, self.digits)}"] if self.estimate is not None else []
        if ci:
            stats.append(f"{self.ci_label} {ci}")
        if p:
            stats.append((f"p {p}" if p.startswith("<") else f"p = {p}") + (f" ({self.adjusted})" if self.adjusted else ""))
        return ('<div class="hipstats-finding" style="border-left:4px solid #2b6cb0;background:#f0f5fb;'
                'padding:8px 12px;margin:8px 0">'
                f'<div style="font-size:0.85em;color:#2b6cb0;font-weight:bold">Key finding ({html.escape(self.area)})'
                f' &mdash; {html.escape(self.question)}</div>'
                f'<div style="font-size:1.05em;margin:4px 0">{html.escape(self.sentence)}</div>'
                f'<div style="font-size:0.85em;color:#444">{html.escape("; ".join(stats))}</div></div>')

    def __str__(self) -> str:
        ci = format_ci(self.ci_low, self.ci_high, self.digits)
        extra = ", ".join(x for x in (f"{self.ci_label} {ci}" if ci else "", f"p {format_p(self.p)}" if self.p is not None else "") if x)
        est = _fmt(self.estimate, self.digits)
        return f"[{self.area}] {self.question}: {est}{' (' + extra + ')' if extra else ''}. {self.sentence}"

    def mime_bundle(self) -> dict[str, Any]:
        """The display bundle: plain text, HTML box, and the JSON the runner extracts."""
        return {"text/plain": str(self), "text/html": self._html(), MIME_TYPE: self.to_dict()}

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.mime_bundle()


def record(area: str, question: str, estimate, ci_low=None, ci_high=None, p=None, sentence: str = "",
           *, digits: int = 2, confidence: float = 0.95, display: bool = True, statistic: str = "",
           unit: str = "", null=None, adjusted: str = "", headline: bool = False, brief: str = "") -> Finding:
    """Record a key finding: show it in the notebook and hand it to the report index.

    Parameters
    ----------
    area : str
        Study question id: "H1" ... "H5", "R" or "Data".
    question : str
        What was estimated, with units (e.g. "IR gain at week 12, loading vs control (deg)").
    estimate, ci_low, ci_high, p : float or None
        Numbers from a package function (never typed in by hand).
    sentence : str
        The result in plain words.
    digits : int
        Decimals for the index page.
    confidence : float, default 0.95
        Level of the CI (shown as "95% CI"); pass the analysis result's confidence.
    display : bool
        Display the finding (default). False only builds the :class:`Finding`.
    statistic, unit, null, adjusted, headline, brief
        See :class:`Finding`.

    Returns
    -------
    Finding

    Examples
    --------
    >>> from hipstats.report.findings import record
    >>> f = record("R", "ICC(A,1) of hip IR", 0.91, 0.87, 0.94, None,
    ...            "Two raters agree closely.", display=False)
    >>> f.estimate
    0.91
    """
    f = Finding(area, question, estimate, ci_low, ci_high, p, sentence, digits, confidence, statistic, unit, null,
                adjusted, bool(headline), brief)
    if display:
        from IPython.display import display as _display  # noqa: PLC0415

        _display(f.mime_bundle(), raw=True)
    return f


def record_summary(area: str, summary: pd.DataFrame, *, rows=None, digits: int = 2, confidence: float = 0.95,
                   display: bool = True) -> list[Finding]:
    """Record the rows of an analysis result's ``.summary()`` table as key findings.

    Parameters
    ----------
    area : str
    summary : DataFrame
        Columns ``question``, ``estimate``, ``ci_low``, ``ci_high``, ``p`` and
        ``interpretation`` (or ``sentence``), as the analysis modules' ``summary()`` return;
        optional ``headline`` (bool) and ``brief`` columns (see :class:`Finding`).
    rows : list of int, optional
        Positions of the rows to record (default all).
    digits : int
    confidence : float, default 0.95
        Level of the CIs in ``summary``.
    display : bool

    Returns
    -------
    list of Finding

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"question": ["q"], "estimate": [1.0], "ci_low": [0.5], "ci_high": [1.5],
    ...                   "p_value": [0.01], "interpretation": ["plain words"]})
    >>> [f.sentence for f in record_summary("H1", s, display=False)]
    ['plain words']
    """
    text_col = "interpretation" if "interpretation" in summary.columns else "sentence"
    missing = {"question", "estimate", text_col} - set(summary.columns)
    if missing:
        from hipstats.errors import AnalysisError  # noqa: PLC0415

        raise AnalysisError(f"summary table lacks column(s) {', '.join(sorted(missing))}")
    picked = summary if rows is None else summary.iloc[list(rows)]
    out = []
    for r in picked.to_dict("records"):
        out.append(record(area, str(r["question"]), r.get("estimate"), r.get("ci_low"), r.get("ci_high"),
                          r.get("p_value", r.get("p")), str(r.get(text_col, "")), digits=digits, confidence=confidence,
                          display=display, headline=bool(r.get("headline", False)), brief=str(r.get("brief", "") or "")))
    return out


def extract(nb) -> list[Finding]:
    """All findings recorded in an executed notebook (a ``nbformat`` node), in cell order."""
    out = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data") or {}
            if MIME_TYPE in data:
                payload = data[MIME_TYPE]
                if isinstance(payload, str):  # some writers store JSON as text
                    import json  # noqa: PLC0415

                    payload = json.loads(payload)
                out.append(Finding.from_dict(payload))
    return out
