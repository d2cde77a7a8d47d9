"""The run's ``index.html``: key findings (one row per question) and a link plus status per report.

Self-contained: inline CSS, no scripts, opens offline from disk.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from hipstats.report.export import report_css
from hipstats.report.findings import Finding, format_ci, format_p

__all__ = ["write_index", "render_index", "AREA_ORDER"]

AREA_ORDER = ("Data", "R", "H1", "H2", "H3", "H4", "H5")
AREA_NAMES = {
    "Data": "Data quality",
    "R": "Measurement reliability",
    "H1": "H1 Pelvic position and IR",
    "H2": "H2 Loading vs stretching vs none",
    "H3": "H3 ASLR screening for limited IR",
    "H4": "H4 Progressive, safe loading",
    "H5": "H5 Form faults",
}


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def render_index(manifest: dict[str, Any], results) -> str:
    """HTML of the index page for a run (``results``: list of NotebookResult)."""
    failed = [r for r in results if not r.ok]
    rows = []
    for r in results:
        for f in r.findings:
            rows.append((r, Finding.from_dict(f)))
    rank = {a: i for i, a in enumerate(AREA_ORDER)}
    rows.sort(key=lambda rf: (rank.get(rf[1].area, len(AREA_ORDER)), rf[1].area))

    parts = [f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta name="generator" content="hipstats report">
<title>hipstats reports &mdash; {_e(manifest['run_id'])}</title>
<style>{report_css()}
body {{ margin: 0; color: #1a202c; }}
h1 {{ font-size: 1.6em; margin: 20px 0 4px 0; }} h2 {{ font-size: 1.2em; margin-top: 28px; }}
</style></head><body><div class="hipstats-page">
<h1>Hip mobility cohort &mdash; reports</h1>
<p class="hipstats-meta">Run <code>{_e(manifest['run_id'])}</code>"""
                 + (f" &middot; data <code>{_e(manifest['source'])}</code>" if manifest.get("source") else "")
                 + (f" as of <b>{_e(manifest['as_of'])}</b>" if manifest.get("as_of") else "")
                 + f""" &middot; started {_e(manifest['started'])}, finished {_e(manifest['ended'])}
&middot; hipstats {_e(manifest['packages'].get('hipstats'))}"""
                 + (f" &middot; commit <code>{_e((manifest.get('git') or {}).get('commit', '')[:10])}</code>"
                    if manifest.get("git") else "")
                 + "</p>"]
    if failed:
        parts.append(f'<div class="hipstats-summary failed"><b>{len(failed)} of {len(results)} report(s) failed:</b> '
                     + ", ".join(f'<a href="{_e(r.html)}">{_e(r.title)}</a>' for r in failed)
                     + ". Their findings are missing below; each failed report shows the error where it happened.</div>")
    else:
        parts.append(f'<div class="hipstats-summary ok">All {len(results)} report(s) ran without errors.</div>')

    parts.append("<h2>Key findings</h2>")
    if rows:
        parts.append('<table class="hipstats-index findings"><thead><tr><th>Question</th><th>What was estimated</th>'
                     '<th>Estimate</th><th>95% CI</th><th>p</th><th>In plain words</th><th>Report</th></tr></thead><tbody>')
        for r, f in rows:
            est = "" if f.estimate is None else f"{f.estimate:.{f.digits}f}"
            parts.append(f'<tr><td>{_e(AREA_NAMES.get(f.area, f.area))}</td><td>{_e(f.question)}</td>'
                         f'<td class="num">{_e(est)}</td><td class="num">{_e(format_ci(f.ci_low, f.ci_high, f.digits))}</td>'
                         f'<td class="num">{_e(format_p(f.p))}</td><td>{_e(f.sentence)}</td>'
                         f'<td><a href="{_e(r.html)}">{_e(r.title)}</a></td></tr>')
        parts.append("</tbody></table>")
    else:
        parts.append("<p>No findings were recorded in this run.</p>")

    parts.append('<h2>Reports</h2><table class="hipstats-index reports"><thead><tr><th>Report</th><th>Status</th>'
                 '<th>Time (s)</th><th>Findings</th><th>Details</th></tr></thead><tbody>')
    for r in results:
        cls = "status-ok" if r.ok else "status-failed"
        parts.append(f'<tr><td><a href="{_e(r.html)}">{_e(r.title)}</a></td>'
                     f'<td class="{cls}">{"ok" if r.ok else "failed"}</td><td class="num">{r.duration_s:.1f}</td>'
                     f'<td class="num">{len(r.findings)}</td><td>{_e(r.error or "")}</td></tr>')
    parts.append("</tbody></table>")
    files = manifest.get("inputs") or []
    parts.append('<h2>Provenance</h2><p class="hipstats-meta">Input files and their SHA-256, package versions, '
                 'parameters and timings are recorded in <a href="manifest.json">manifest.json</a>.</p>')
    if files:
        parts.append('<table class="hipstats-index inputs"><thead><tr><th>Input file</th><th>Bytes</th><th>SHA-256</th>'
                     '</tr></thead><tbody>')
        for f in files:
            parts.append(f'<tr><td>{_e(Path(f["path"]).name)}</td><td class="num">{f["bytes"]}</td>'
                         f'<td><code>{_e(f["sha256"])}</code></td></tr>')
        parts.append("</tbody></table>")
    parts.append("</div></body></html>\n")
    return "".join(parts)


def write_index(path, manifest: dict[str, Any], results) -> Path:
    """Write ``index.html`` for a run."""
    from hipstats.report.publish import write_atomic  # noqa: PLC0415

    return write_atomic(path, render_index(manifest, results))
