"""Executed notebook -> one self-contained, offline HTML file without code.

Uses nbconvert's :class:`~nbconvert.HTMLExporter` with ``exclude_input=True`` and the
``hipstats_report`` template (it extends JupyterLab's ``lab`` template and drops its
require.js, MathJax, mermaid and widget scripts, which load from CDNs). Figures are
embedded as ``data:`` URIs, CSS is inlined, and error outputs (tracebacks) stay visible.
:func:`external_references` lists anything in an HTML page that would reach the network;
the runner refuses to write a report for which it is not empty.

Examples
--------
>>> from hipstats.report.export import external_references
>>> external_references('<img src="data:image/png;base64,AAAA"><script>var a=1;</script>')
[]
>>> external_references('<script src="https://cdn.example.org/x.js"></script>')
['script: https://cdn.example.org/x.js']
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

__all__ = ["notebook_to_html", "external_references", "ASSETS", "report_css"]

ASSETS = Path(__file__).with_name("assets")
TEMPLATE = "hipstats_report"

_PATTERNS = {
    "script": re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?\s*((?:https?:)?//[^\"'\s>]+)", re.I),
    "link": re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?\s*((?:https?:)?//[^\"'\s>]+)", re.I),
    "import": re.compile(r"@import\s+(?:url\()?\s*[\"']?\s*([^\"')\s;]+)", re.I),
    "css-url": re.compile(r"url\(\s*[\"']?\s*((?:https?:)?//[^\"')\s]+)", re.I),
    "img": re.compile(r"<(?:img|iframe|source|video|audio|embed)\b[^>]*\bsrc\s*=\s*[\"']?\s*((?:https?:)?//[^\"'\s>]+)",
                      re.I),
    "module": re.compile(r"\b(?:import|from)\s*\(?\s*[\"']((?:https?:)?//[^\"']+)[\"']", re.I),
}


def external_references(html: str) -> list[str]:
    """Every script, stylesheet, font, ``@import`` or embedded resource the page would fetch.

    Plain hyperlinks (``<a href=...>``) are not listed: they load nothing by themselves.
    """
    out = []
    for kind, pat in _PATTERNS.items():
        for m in pat.finditer(html):
            out.append(f"{kind}: {m.group(1)}")
    return out


@lru_cache(maxsize=1)
def report_css() -> str:
    return (ASSETS / "report.css").read_text(encoding="utf-8")


def notebook_to_html(nb, *, title: str | None = None, failed: bool = False, banner: str = "") -> str:
    """Render an executed notebook (``nbformat`` node) to offline HTML without code cells.

    Parameters
    ----------
    nb : NotebookNode
    title : str, optional
        Page title (default the notebook's first heading).
    failed : bool
        Show a banner saying the notebook stopped with an error.
    banner : str
        Run information shown in the page header (source, date).

    Returns
    -------
    str
    """
    from nbconvert import HTMLExporter  # noqa: PLC0415
    from nbconvert.preprocessors import TagRemovePreprocessor  # noqa: PLC0415

    exporter = HTMLExporter(template_name=TEMPLATE, extra_template_basedirs=[str(ASSETS / "templates")],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            embed_images=True, theme="light")
    remove = TagRemovePreprocessor(remove_cell_tags={"remove-cell", "remove_cell", "hide-cell"},
                                   remove_all_outputs_tags={"remove-output", "remove_output"})
    exporter.register_preprocessor(remove, enabled=True)
    resources = {"hipstats_css": report_css(), "hipstats_failed": failed, "hipstats_banner": banner,
                 "metadata": {"name": title or _first_heading(nb) or "hipstats report"}}
    nb = _without_stderr(nb)
    if title:
        nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body


def _without_stderr(nb):
    """A copy without the kernel's stderr text (warnings with source paths, log lines) and without the
    manifest-only warning records: the page shows warnings as plain-language notes
    (:mod:`hipstats.report.notes`); the executed notebook keeps everything."""
    import copy  # noqa: PLC0415

    from hipstats.report.notes import MIME_TYPE as NOTE_MIME  # noqa: PLC0415

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                            and not (o.get("data") and set(o["data"]) <= {NOTE_MIME})]
    return nb


def _first_heading(nb) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return None
