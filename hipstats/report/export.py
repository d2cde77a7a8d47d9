"""Executed notebook -> one self-contained, offline HTML file without code.

Uses nbconvert's :class:`~nbconvert.HTMLExporter` with ``exclude_input=True`` and the
``hipstats_report`` template (it extends JupyterLab's ``lab`` template and drops its
require.js, MathJax, mermaid and widget scripts, which load from CDNs). Figures are
embedded as ``data:`` URIs, CSS is inlined, and an error output (a traceback) is replaced by one plain
sentence: the traceback stays in the executed notebook and the run's manifest, never on a page.
:func:`external_references` parses a page and lists anything in it that would reach the
network or run script; the runner refuses to write a page for which it is not empty.

Examples
--------
>>> from hipstats.report.export import external_references
>>> external_references('<img src="data:image/png;base64,AAAA">')
[]
>>> external_references('<script src="https://cdn.example.org/x.js"></script>')
['script: https://cdn.example.org/x.js']
"""

from __future__ import annotations

import re
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["notebook_to_html", "external_references", "ASSETS", "report_css"]

ASSETS = Path(__file__).with_name("assets")
TEMPLATE = "hipstats_report"

#: Attributes whose value is a URL (or a list of URLs) that a browser may fetch or navigate to.
URL_ATTRIBUTES = frozenset({
    "src", "srcset", "href", "xlink:href", "poster", "data", "action", "formaction", "background", "lowsrc",
    "dynsrc", "longdesc", "manifest", "ping", "codebase", "archive", "cite", "icon", "profile", "usemap",
    "imagesrcset", "classid", "content-location"})
#: Elements that have no place in an offline report whatever their attributes.
REFUSED_ELEMENTS = frozenset({"script", "base", "iframe", "frame", "frameset", "object", "embed", "applet",
                              "portal", "template"})
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
_CSS_URL = re.compile(r"url\(\s*([\"']?)(.*?)\1\s*\)", re.I | re.S)
_CSS_IMPORT = re.compile(r"@import\s+(?:url\(\s*)?[\"']?\s*([^\"')\s;]+)", re.I)
_CSS_SCRIPT = re.compile(r"expression\s*\(|-moz-binding|behaviou?r\s*:", re.I)
_SAFE_DATA = re.compile(r"^data:(image/|font/|application/(x-)?font)", re.I)


def _loads_something(url: str) -> bool:
    """True when a URL value would reach the network or run script (``javascript:``, ``//host``, ``https:``...).

    Browsers drop ASCII whitespace and control characters inside a scheme (``java\tscript:``),
    so they are removed before looking. Allowed: fragments, relative paths and ``data:``
    images or fonts.
    """
    u = _CONTROL.sub("", url).replace("\\", "/").lower()
    if not u or u.startswith("#"):
        return False
    if u.startswith("//"):
        return True
    m = _SCHEME.match(u)
    if not m:
        return False  # a relative path inside the run folder
    return not (m.group(1) == "data" and _SAFE_DATA.match(u))


def _css_references(css: str) -> list[str]:
    out = [f"css: {m.group(2).strip()[:200]}" for m in _CSS_URL.finditer(css) if _loads_something(m.group(2))]
    out += [f"css @import: {m.group(1)[:200]}" for m in _CSS_IMPORT.finditer(css)]
    out += [f"css script: {m.group(0)}" for m in _CSS_SCRIPT.finditer(css)]
    return out


class _Guard(HTMLParser):
    """Collects everything in a page that would fetch from the network or run script."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._raw: str | None = None  # "style" or "script" while inside one

    def handle_starttag(self, tag, attrs):
        self._check(tag, attrs)
        if tag in ("style", "script"):
            self._raw = tag

    def handle_startendtag(self, tag, attrs):
        self._check(tag, attrs)

    def handle_endtag(self, tag):
        if tag == self._raw:
            self._raw = None

    def handle_data(self, data):
        if self._raw == "style":
            self.found += _css_references(data)

    def _check(self, tag, attrs):
        tag = tag.lower()
        found = self.found
        if tag in REFUSED_ELEMENTS:
            src = next((v for k, v in attrs if k in ("src", "data", "href") and v), None)
            found.append(f"{tag}: {src[:200] if src else 'element'}")
            return
        if tag == "meta":
            equiv = next((v or "" for k, v in attrs if k == "http-equiv"), "").strip().lower()
            if equiv in ("refresh", "set-cookie", "link"):
                found.append(f"meta http-equiv={equiv}")
        for name, value in attrs:
            name, value = name.lower(), value or ""
            if name.startswith("on"):
                found.append(f"{tag} {name}: {value[:200]}")
            elif name == "srcdoc":
                found.append(f"{tag} srcdoc")
            elif name == "style":
                found += [f"{tag} style {r}" for r in _css_references(value)]
            elif name in ("srcset", "imagesrcset"):
                for cand in value.split(","):
                    url = cand.strip().split(" ")[0] if cand.strip() else ""
                    if _loads_something(url):
                        found.append(f"{tag} {name}: {url[:200]}")
            elif name in URL_ATTRIBUTES or name.endswith(":href"):
                if _loads_something(value):
                    found.append(f"{tag} {name}: {value.strip()[:200]}")
            elif _loads_something(value) and _CONTROL.sub("", value).lower().startswith(("javascript:", "vbscript:")):
                found.append(f"{tag} {name}: {value.strip()[:200]}")  # e.g. <animate values="javascript:...">


def external_references(html: str) -> list[str]:
    """Everything in a page that would reach the network or run script, found by parsing it.

    Listed: any ``<script>`` (inline or not), ``<base>``, frames and plugins, ``<meta
    http-equiv=refresh>``, ``on*`` event handlers, ``srcdoc``, and any URL attribute (``src``,
    ``srcset``, ``href``, ``poster``, ``data``, ``action``, ``formaction``, ``xlink:href``, ...)
    or CSS ``url()`` / ``@import`` (in ``<style>`` and ``style=``) that is not a fragment, a
    relative path or a ``data:`` image or font; ``javascript:`` in any attribute. An empty
    list means the page works offline and runs no script.

    Examples
    --------
    >>> external_references('<a href="reports/x.html">x</a><img src="data:image/png;base64,AA">')
    []
    >>> external_references('<img srcset="a.png 1x, http://evil.example/b.png 2x">')
    ['img srcset: http://evil.example/b.png']
    >>> external_references('<svg onload="alert(1)"></svg>')
    ['svg onload: alert(1)']
    """
    guard = _Guard()
    guard.feed(html)
    guard.close()
    return guard.found


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

    import nbformat  # noqa: PLC0415

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.outputs = [nbformat.from_dict(copy.deepcopy(STOPPED)) if o.get("output_type") == "error" else o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                            and not (o.get("data") and set(o["data"]) <= {NOTE_MIME})]
    return nb


#: What a page shows where the notebook stopped with an error (the traceback is for the analyst: it is in the
#: executed notebook under ``notebooks/`` and the error in ``manifest.json`` of the run).
STOPPED = {"output_type": "display_data", "metadata": {}, "data": {
    "text/html": '<p class="hipstats-not-estimable">This part of the report stopped with an error, so what '
                 "follows is missing. The details are recorded for the analyst in the run's manifest.json and "
                 "in the executed notebook in the run's notebooks folder.</p>",
    "text/plain": "This part of the report stopped with an error; the details are in the run's manifest."}}


def _first_heading(nb) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return None
