"""The run's ``index.html``: a one-page summary: forest plot of key effects, key findings by question
(with a multiplicity statement), and a link plus status per report.

Self-contained: inline CSS, no scripts, opens offline from disk.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from hipstats.plots.style import arm_label
from hipstats.report.export import report_css
from hipstats.report.findings import Finding, ci_label, format_ci, format_p

__all__ = ["write_index", "render_index", "area_names", "multiplicity_statement", "forest_svg", "source_name",
           "headline_findings", "not_estimable_notes", "AREA_ORDER"]

AREA_ORDER = ("Data", "R", "H1", "H2", "H3", "H4", "H5")
AREA_NAMES = {
    "Data": "Data quality",
    "R": "Measurement reliability",
    "H1": "H1 Pelvic position and IR",
    "H2": "H2 Change in IR and ASLR by arm",
    "H3": "H3 ASLR screening for limited IR",
    "H4": "H4 Progressive, safe loading",
    "H5": "H5 Form faults",
}


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def area_names(manifest: dict[str, Any]) -> dict[str, str]:
    """Headings of the study questions, H2's from the cohort's own arms (``manifest["cohort"]["arms"]``).

    >>> area_names({"cohort": {"arms": ["usual_care", "hip_loading"]}})["H2"]
    'H2 usual care vs hip loading: change in IR and ASLR'
    """
    names = dict(AREA_NAMES)
    arms = [arm_label(a) for a in ((manifest.get("cohort") or {}).get("arms") or [])]
    if len(arms) >= 2:
        names["H2"] = f"H2 {' vs '.join(arms)}: change in IR and ASLR"
    return names


def _ci_header(found: list[Finding]) -> str:
    levels = {f.confidence for f in found if f.ci_low is not None}
    return ci_label(levels.pop()) if len(levels) == 1 else "CI"


def _estimate_cell(f: Finding) -> str:
    if f.statistic:
        return f.statistic
    return "" if f.estimate is None else f"{f.estimate:.{f.digits}f}"


def multiplicity_statement(found: list[Finding]) -> str:
    """One paragraph saying how many p-values the page shows and which are adjusted (marked *), and for what.

    >>> f = [Finding("H2", "a", 1.0, p=0.01, adjusted="Holm over 3 arm comparisons"), Finding("H1", "b", 2.0, p=0.2)]
    >>> multiplicity_statement(f)[:60]
    'This summary shows 2 p-values across 2 questions. Those mark'
    """
    with_p = [f for f in found if f.p is not None]
    if not with_p:
        return ""
    areas = list(dict.fromkeys(f.area for f in with_p))
    adjusted = list(dict.fromkeys(f"{f.area}: {f.adjusted}" for f in with_p if f.adjusted))
    alphas = {round(f.alpha, 6) for f in with_p}
    alpha = f"{alphas.pop():g}" if len(alphas) == 1 else "the significance level"
    text = (f"This summary shows {len(with_p)} p-value{'s' if len(with_p) != 1 else ''} across "
            f"{len(areas)} question{'s' if len(areas) != 1 else ''}. ")
    if adjusted:
        text += ("Those marked * are adjusted for their question's pre-specified comparisons ("
                 + "; ".join(adjusted) + "). ")
    text += (f"Nothing is adjusted across questions, so with this many tests a p-value below {alpha} can arise by "
             "chance alone; confidence intervals are not adjusted for multiple comparisons.")
    return text


def _forest_label(f: Finding) -> str:
    """ "H2: Hip internal rotation: change to week 12, loading minus control": the question without its trailing
    unit in brackets (the panel's axis names the unit)."""
    return f"{f.area}: " + re.sub(r"\s*\([^()]*\)\s*$", "", f.question)


def forest_svg(found: list[Finding]) -> str:
    """HTML of the forest plot of the key effects: findings with a unit, a CI and a value of no effect
    (differences, slopes), one inline SVG panel per unit, laid out in two columns; "" if none.

    >>> html_ = forest_svg([Finding("H2", "IR, B minus A (deg)", 1.9, 0.2, 3.5, unit="deg", null=0.0)])
    >>> html_.count("<svg"), "IR, B minus A" in html_
    (1, True)
    """
    rows = [{"label": _forest_label(f), "estimate": f.estimate, "ci_low": f.ci_low, "ci_high": f.ci_high,
             "panel": f.unit, "null": f.null}
            for f in found if f.unit and f.null is not None and None not in (f.estimate, f.ci_low, f.ci_high)]
    if not rows:
        return ""
    import io  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    from hipstats.plots.forest import forest_plot  # noqa: PLC0415

    levels = {f.confidence for f in found if f.unit}
    confidence = levels.pop() if len(levels) == 1 else 0.95
    frame = pd.DataFrame(rows)
    panels = []  # (height in inches, svg)
    for _, sub in frame.groupby("panel", sort=False):
        fig = forest_plot(sub, confidence=confidence, wrap=40, width=5.2)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight")
        svg = buf.getvalue()
        panels.append((fig.get_figheight(), f'<div class="hipstats-forest-panel">{svg[svg.index("<svg"):]}</div>'))
    # two columns of about equal height, each in reading order (the first panel on the left)
    import itertools  # noqa: PLC0415

    best = None
    choices = itertools.product((0, 1), repeat=len(panels) - 1) if len(panels) <= 12 else \
        [tuple(i % 2 for i in range(1, len(panels)))]  # many panels: alternate
    for sides in choices:
        sides = (0, *sides)
        height = max(sum(h for (h, _), s in zip(panels, sides) if s == c) for c in (0, 1))
        if best is None or height < best[0] - 1e-9:
            best = (height, sides)
    columns = [[p for p, s in zip(panels, best[1]) if s == c] for c in (0, 1)]
    return ('<div class="hipstats-forest">' + "".join(
        f'<div class="hipstats-forest-column">{"".join(svg for _, svg in col)}</div>' for col in columns if col)
        + "</div>")


def headline_findings(found: list[Finding]) -> list[Finding]:
    """The findings the index shows: per question its headline findings (the answer and every pre-specified
    comparison), or all of its findings when none is marked headline (e.g. a custom notebook's).

    >>> a, b, c = Finding("H1", "a", 1.0, headline=True), Finding("H1", "b", 2.0), Finding("Data", "c", 3.0)
    >>> [f.question for f in headline_findings([a, b, c])]
    ['a', 'c']
    """
    marked = {f.area for f in found if f.headline}
    return [f for f in found if f.headline or f.area not in marked]


def not_estimable_notes(found: list[Finding], shown: list[Finding]) -> list[str]:
    """Each sentence of a not-estimable finding that the index does not show as a row, once."""
    rows = {id(f) for f in shown}
    return list(dict.fromkeys(f"{f.area}: {f.sentence[:1].upper()}{f.sentence[1:].rstrip('.')}." for f in found
                              if f.not_estimable and id(f) not in rows))


def _status(manifest: dict[str, Any], results, found: list[Finding], shown: list[Finding]) -> str:
    """The data status box: participants by arm, the as-of date, run status, and what could not be estimated."""
    cohort = manifest.get("cohort") or {}
    failed = [r for r in results if not r.ok]
    lines = []
    if cohort.get("arms"):
        interim = "as_of_n_participants" in cohort and manifest.get("as_of")
        n = cohort.get("as_of_n_participants" if interim else "n_participants")
        per_arm = cohort.get("as_of_per_arm" if interim else "per_arm") or {}
        arms = ", ".join(_e(arm_label(a)) + (f" {_e(per_arm.get(a, 0))}" if per_arm else "") for a in cohort["arms"])
        who = f"{_e(n)} participants" if n is not None else "Participants"
        if interim:
            who += f" measured by {_e(manifest['as_of'])}"
        lines.append(f"<b>{who}</b> in {len(cohort['arms'])} arms ({arms})"
                     + (f", of {_e(cohort['n_participants'])} in the data" if interim and cohort.get("n_participants")
                        else "") + ".")
    last = cohort.get("last_measured")
    if manifest.get("as_of"):
        lines.append(f"<b>Interim analysis:</b> data recorded on or before <b>{_e(manifest['as_of'])}</b>"
                     + (f" (last measurement {_e(last)})" if last else "") + ".")
    elif last:
        lines.append(f"All data recorded, last measurement <b>{_e(last)}</b>.")
    if failed:
        lines.append(f'<span class="status-failed">{len(failed)} of {len(results)} report(s) failed:</span> '
                     + ", ".join(f'<a href="{_e(r.html)}">{_e(r.title)}</a>' for r in failed)
                     + ". Their findings are missing below; each failed report shows the error where it happened.")
    else:
        lines.append(f"All {len(results)} report(s) ran without errors.")
    notes = not_estimable_notes(found, shown)
    if notes:
        lines.append('<div class="hipstats-not-estimable-list"><b>Not estimable in this run</b> (details on the pages):'
                     "<ul>" + "".join(f"<li>{_e(x)}</li>" for x in notes) + "</ul></div>")
    cls = "failed" if failed else "ok"
    return f'<div class="hipstats-summary hipstats-status {cls}">' + " ".join(lines) + "</div>"


def render_index(manifest: dict[str, Any], results) -> str:
    """HTML of the index page for a run (``results``: list of NotebookResult): a one-page summary.

    Per question one row per headline finding (the answer and every pre-specified comparison, see
    :func:`headline_findings`) with a link to the question's page, where all its findings are; the
    data status; a forest plot of the headline effects; the reports and their status.
    """
    rows = []
    for r in results:
        for f in r.findings:
            rows.append((r, Finding.from_dict(f)))
    rank = {a: i for i, a in enumerate(AREA_ORDER)}
    rows.sort(key=lambda rf: (rank.get(rf[1].area, len(AREA_ORDER)), rf[1].area))
    found = [f for _, f in rows]
    shown = headline_findings(found)
    keep = {id(f) for f in shown}
    table_rows = [(r, f) for r, f in rows if id(f) in keep]
    names = area_names(manifest)

    parts = [f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta name="generator" content="hipstats report">
<title>hipstats reports &mdash; {_e(manifest['run_id'])}</title>
<style>{report_css()}
body {{ margin: 0; color: #1a202c; }}
h1 {{ font-size: 1.5em; margin: 16px 0 2px 0; }} h2 {{ font-size: 1.15em; margin: 18px 0 6px 0; }}
table.hipstats-index.findings {{ margin-bottom: 10px; }}
table.hipstats-index.findings td {{ padding: 3px 8px; }}
.hipstats-more {{ font-weight: normal; font-size: 0.88em; margin-left: 0.6em; }}
.hipstats-status {{ font-size: 0.95em; }}
table.hipstats-index.findings col.result {{ width: 31%; }} table.hipstats-index.findings col.est {{ width: 8%; }}
table.hipstats-index.findings col.ci {{ width: 11%; }} table.hipstats-index.findings col.p {{ width: 7%; }}
.hipstats-forest {{ display: flex; gap: 24px; align-items: flex-start; max-width: 1000px; }}
.hipstats-forest-column {{ flex: 1 1 0; min-width: 0; }}
.hipstats-forest-panel {{ break-inside: avoid; page-break-inside: avoid; margin-bottom: 6px; }}
.hipstats-forest .hipstats-forest-panel svg {{ width: 100%; max-width: 100%; height: auto; }}
.hipstats-reports {{ font-size: 0.92em; }}
@media print {{ .hipstats-status {{ padding: 6px 10px; }} h2 {{ margin: 10px 0 4px 0; }}
  table.hipstats-index.findings td {{ padding: 2px 5px; }} }}
</style></head><body><div class="hipstats-page hipstats-index-page">
<h1>Hip mobility cohort &mdash; summary</h1>
<p class="hipstats-meta">Run {_e(manifest['run_id'])}"""
                 + (f" &middot; data {_e(source_name(manifest['source']))}" if manifest.get("source") else "")
                 + (f" as of <b>{_e(manifest['as_of'])}</b>" if manifest.get("as_of") else "")
                 + f""" &middot; finished {_e(str(manifest['ended']).replace('T', ' ')[:16])}
&middot; hipstats {_e(manifest['packages'].get('hipstats'))}"""
                 + (f" &middot; commit {_e((manifest.get('git') or {}).get('commit', '')[:10])}"
                    if manifest.get("git") else "")
                 + "</p>", _status(manifest, results, found, shown)]

    parts.append("<h2>Key findings</h2>")
    if table_rows:
        levels = {f.confidence for f in shown if f.ci_low is not None}
        parts.append('<table class="hipstats-index findings"><colgroup><col class="result"><col class="est">'
                     '<col class="ci"><col class="p"><col class="words"></colgroup><thead><tr><th>Result</th>'
                     f'<th>Estimate</th><th>{_e(_ci_header(shown))}</th><th>p</th><th>In plain words</th>'
                     '</tr></thead><tbody>')
        current = None
        page = {}
        for r, f in rows:
            page.setdefault(f.area, r)
        more = {a: sum(1 for f in found if f.area == a) - sum(1 for f in shown if f.area == a) for a in page}
        for r, f in table_rows:
            if f.area != current:
                current = f.area
                link = page[f.area]
                extra = f"{more[f.area]} more result{'s' if more[f.area] != 1 else ''} and details" if more[f.area] \
                    else "details"
                parts.append(f'<tr class="area"><th colspan="5"><a href="{_e(link.html)}">{_e(names.get(f.area, f.area))}'
                             f'</a><span class="hipstats-more">{extra} on its page</span></th></tr>')
            ci = format_ci(f.ci_low, f.ci_high, f.digits)
            if ci and len(levels) > 1:
                ci = f"{ci} ({f.ci_label})"
            p = format_p(f.p) + (" *" if f.adjusted and f.p is not None else "")
            parts.append(f'<tr><td>{_e(f.question)}</td><td class="num">{_e(_estimate_cell(f))}</td>'
                         f'<td class="num">{_e(ci)}</td><td class="num">{_e(p)}</td>'
                         f'<td>{_e(f.index_sentence)}</td></tr>')
        parts.append("</tbody></table>")
        statement = multiplicity_statement(shown)
        if statement:
            parts.append(f'<p class="hipstats-multiplicity">{_e(statement)}</p>')
    else:
        parts.append("<p>No findings were recorded in this run.</p>")

    svg = forest_svg(shown)
    if svg:
        parts.append('<h2>Key effects</h2><p class="hipstats-meta">Each point is an estimate of the table above with '
                     f'its {_e(_ci_header([f for f in shown if f.unit]))}; the dashed line marks no effect.</p>'
                     f'<div class="hipstats-figure hipstats-forest">{svg}</div>')

    parts.append('<p class="hipstats-reports"><b>Reports:</b> ' + " &middot; ".join(
        f'<a href="{_e(r.html)}">{_e(r.title)}</a> <span class="{"status-ok" if r.ok else "status-failed"}">'
        f'{"ok" if r.ok else "failed"}</span>' + (f" ({_e(r.error)})" if not r.ok and r.error else "")
        for r in results) + "</p>")
    files = [Path(f["path"]).name for f in manifest.get("inputs") or []]
    parts.append('<p class="hipstats-meta">Provenance: '
                 + (f"input files {_e(', '.join(files))}; " if files else "")
                 + 'their SHA-256, package versions, parameters, timings and the technical text of any warnings '
                 'are in <a href="manifest.json">manifest.json</a>.</p>')
    parts.append("</div></body></html>\n")
    return "".join(parts)


def source_name(source: str) -> str:
    """The data source as a reader needs it: the folder or file name, or a URL without its host and path.

    >>> source_name("/home/ana/study/data/example"), source_name("postgresql://u:***@db.lab/hips")
    ('example', 'postgresql database hips')
    """
    text = str(source)
    if "://" in text:
        scheme = text.split("://", 1)[0].split("+")[0]
        return f"{scheme} database {text.rstrip('/').rsplit('/', 1)[-1]}"
    return Path(text).name or text


def write_index(path, manifest: dict[str, Any], results) -> Path:
    """Write ``index.html`` for a run."""
    from hipstats.report.publish import write_atomic  # noqa: PLC0415

    return write_atomic(path, render_index(manifest, results))
