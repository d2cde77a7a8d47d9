"""The run's ``index.html``: a one-page summary: forest plot of key effects, key findings by question
(with a multiplicity statement), and a link plus status per report.

Self-contained: inline CSS, no scripts, opens offline from disk.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from hipstats.plots.style import arm_label
from hipstats.report.export import report_css
from hipstats.report.findings import Finding, ci_label, format_ci, format_p

__all__ = ["write_index", "render_index", "area_names", "multiplicity_statement", "forest_svg", "source_name",
           "AREA_ORDER"]

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
    """One paragraph saying how many p-values the page shows and which are adjusted, and for what.

    >>> f = [Finding("H2", "a", 1.0, p=0.01, adjusted="Holm over 3 arm comparisons"), Finding("H1", "b", 2.0, p=0.2)]
    >>> multiplicity_statement(f)[:60]
    'This summary shows 2 p-values across 2 questions. Within a q'
    """
    with_p = [f for f in found if f.p is not None]
    if not with_p:
        return ""
    areas = list(dict.fromkeys(f.area for f in with_p))
    adjusted = list(dict.fromkeys(f"{f.area}: {f.adjusted}" for f in with_p if f.adjusted))
    text = (f"This summary shows {len(with_p)} p-value{'s' if len(with_p) != 1 else ''} across "
            f"{len(areas)} question{'s' if len(areas) != 1 else ''}. ")
    if adjusted:
        text += "Within a question, p-values are adjusted for its pre-specified comparisons (" + "; ".join(adjusted) + "). "
    text += ("No adjustment is made across questions: each question is answered on its own, and with this many "
             "tests one or two p-values below 0.05 can arise by chance alone. Confidence intervals are not "
             "adjusted for multiple comparisons.")
    return text


def forest_svg(found: list[Finding]) -> str:
    """Inline SVG forest plot of the key effects: findings with a unit, a CI and a value of no effect
    (differences, slopes), one panel per unit; "" if none."""
    rows = [{"label": f"{f.area}: {f.question}", "estimate": f.estimate, "ci_low": f.ci_low, "ci_high": f.ci_high,
             "panel": f.unit, "null": f.null}
            for f in found if f.unit and f.null is not None and None not in (f.estimate, f.ci_low, f.ci_high)]
    if not rows:
        return ""
    import io  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    from hipstats.plots.forest import forest_plot  # noqa: PLC0415

    levels = {f.confidence for f in found if f.unit}
    fig = forest_plot(pd.DataFrame(rows), confidence=levels.pop() if len(levels) == 1 else 0.95)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def render_index(manifest: dict[str, Any], results) -> str:
    """HTML of the index page for a run (``results``: list of NotebookResult)."""
    failed = [r for r in results if not r.ok]
    rows = []
    for r in results:
        for f in r.findings:
            rows.append((r, Finding.from_dict(f)))
    rank = {a: i for i, a in enumerate(AREA_ORDER)}
    rows.sort(key=lambda rf: (rank.get(rf[1].area, len(AREA_ORDER)), rf[1].area))
    found = [f for _, f in rows]
    names = area_names(manifest)
    cohort = manifest.get("cohort") or {}

    parts = [f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta name="generator" content="hipstats report">
<title>hipstats reports &mdash; {_e(manifest['run_id'])}</title>
<style>{report_css()}
body {{ margin: 0; color: #1a202c; }}
h1 {{ font-size: 1.6em; margin: 20px 0 4px 0; }} h2 {{ font-size: 1.2em; margin-top: 28px; }}
</style></head><body><div class="hipstats-page">
<h1>Hip mobility cohort &mdash; summary</h1>
<p class="hipstats-meta">Run {_e(manifest['run_id'])}"""
                 + (f" &middot; data {_e(source_name(manifest['source']))}" if manifest.get("source") else "")
                 + (f" as of <b>{_e(manifest['as_of'])}</b>" if manifest.get("as_of") else "")
                 + f""" &middot; finished {_e(str(manifest['ended']).replace('T', ' ')[:16])}
&middot; hipstats {_e(manifest['packages'].get('hipstats'))}"""
                 + (f" &middot; commit {_e((manifest.get('git') or {}).get('commit', '')[:10])}"
                    if manifest.get("git") else "")
                 + "</p>"]
    if cohort.get("arms"):
        n = cohort.get("n_participants")
        parts.append(f'<p>{_e(n) + " participants in " if n else ""}{len(cohort["arms"])} arms: '
                     + ", ".join(_e(arm_label(a)) for a in cohort["arms"]) + ".</p>")
    if failed:
        parts.append(f'<div class="hipstats-summary failed"><b>{len(failed)} of {len(results)} report(s) failed:</b> '
                     + ", ".join(f'<a href="{_e(r.html)}">{_e(r.title)}</a>' for r in failed)
                     + ". Their findings are missing below; each failed report shows the error where it happened.</div>")
    else:
        parts.append(f'<div class="hipstats-summary ok">All {len(results)} report(s) ran without errors.</div>')

    svg = forest_svg(found)
    if svg:
        parts.append('<h2>Key effects</h2><p class="hipstats-meta">Each point is an estimate with its '
                     f'{_e(_ci_header([f for f in found if f.unit]))}; the dashed line marks no effect. '
                     'Details and wording are in the table below.</p>'
                     f'<div class="hipstats-figure hipstats-forest">{svg}</div>')
    parts.append("<h2>Key findings</h2>")
    statement = multiplicity_statement(found)
    if statement:
        parts.append(f'<p class="hipstats-multiplicity">{_e(statement)}</p>')
    if rows:
        parts.append('<table class="hipstats-index findings"><thead><tr><th>What was estimated</th>'
                     f'<th>Estimate</th><th>{_e(_ci_header(found))}</th><th>p</th><th>In plain words</th>'
                     '</tr></thead><tbody>')
        current = None
        by_area = {}
        for r, f in rows:
            by_area.setdefault(f.area, r)
        levels = {f.confidence for f in found if f.ci_low is not None}
        for r, f in rows:
            if f.area != current:
                current = f.area
                link = by_area[f.area]
                parts.append(f'<tr class="area"><th colspan="5">{_e(names.get(f.area, f.area))} &middot; '
                             f'<a href="{_e(link.html)}">{_e(link.title)}</a></th></tr>')
            ci = format_ci(f.ci_low, f.ci_high, f.digits)
            if ci and len(levels) > 1:
                ci = f"{ci} ({f.ci_label})"
            p = format_p(f.p) + (" *" if f.adjusted and f.p is not None else "")
            parts.append(f'<tr><td>{_e(f.question)}</td><td class="num">{_e(_estimate_cell(f))}</td>'
                         f'<td class="num">{_e(ci)}</td><td class="num">{_e(p)}</td><td>{_e(f.sentence)}</td></tr>')
        parts.append("</tbody></table>")
        if any(f.adjusted and f.p is not None for f in found):
            parts.append('<p class="hipstats-meta">* p-value adjusted for the question\'s pre-specified '
                         "comparisons (method in the multiplicity statement above).</p>")
    else:
        parts.append("<p>No findings were recorded in this run.</p>")

    details = any(not r.ok for r in results)
    parts.append('<h2>Reports</h2><table class="hipstats-index reports"><thead><tr><th>Report</th><th>Status</th>'
                 '<th>Findings</th>' + ("<th>Details</th>" if details else "") + '</tr></thead><tbody>')
    for r in results:
        cls = "status-ok" if r.ok else "status-failed"
        parts.append(f'<tr><td><a href="{_e(r.html)}">{_e(r.title)}</a></td>'
                     f'<td class="{cls}">{"ok" if r.ok else "failed"}</td><td class="num">{len(r.findings)}</td>'
                     + (f'<td>{_e(r.error or "")}</td>' if details else "") + "</tr>")
    parts.append("</tbody></table>")
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
