"""PDF copies of report pages, printed by headless Chromium (``hipstats report --pdf``).

The pages carry their own print stylesheet (A4, nothing cut); Chromium prints them exactly
as a reader's browser would, with the network switched off. The HTML reports never depend on
this module: it is used only when PDFs are asked for, and a missing browser is reported with
the system package to install before any notebook runs (see docs/DECISIONS.md for why
Chromium and not WeasyPrint).

Examples
--------
>>> from hipstats.report.pdf import find_browser
>>> find_browser() is None or find_browser().exists()
True
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from hipstats.errors import ReportError

__all__ = ["PdfError", "find_browser", "require_browser", "html_to_pdf", "write_pdfs"]

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
         # every host name resolves nowhere and every proxied request goes to a closed port: offline
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost", "--proxy-server=http://127.0.0.1:9",
         "--proxy-bypass-list=<-loopback>"]


class PdfError(ReportError):
    """PDF output was asked for but cannot be made (no browser, or the browser failed)."""


def find_browser() -> Path | None:
    """The headless browser used for PDFs: ``$HIPSTATS_CHROMIUM`` or the first Chromium/Chrome on PATH."""
    env = os.environ.get("HIPSTATS_CHROMIUM")
    if env:
        return Path(env) if Path(env).exists() else None
    for name in _NAMES:
        exe = shutil.which(name)
        if exe:
            return Path(exe)
    return None


def require_browser() -> Path:
    """:func:`find_browser`, or a :class:`PdfError` that names the system package to install."""
    exe = find_browser()
    if exe is None:
        raise PdfError("--pdf needs headless Chromium, which is not installed: install the system package "
                       "'chromium' (Debian/Ubuntu: apt-get install chromium; macOS: brew install --cask chromium) "
                       "or set HIPSTATS_CHROMIUM to a Chrome/Chromium executable. The HTML reports do not need it.")
    return exe


def html_to_pdf(html: Path, pdf: Path, *, browser: Path | None = None, timeout: float = 180) -> Path:
    """Print one HTML page to an A4 PDF beside it (written to a temporary name, then renamed)."""
    exe = browser or require_browser()
    html, pdf = Path(html).resolve(), Path(pdf)
    tmp = pdf.with_name(f".{pdf.name}.partial-{os.getpid()}")
    with tempfile.TemporaryDirectory(prefix="hipstats-pdf-") as profile:
        r = subprocess.run([str(exe), *FLAGS, f"--user-data-dir={profile}", f"--print-to-pdf={tmp}",
                            "--virtual-time-budget=5000", html.as_uri()], capture_output=True, text=True,
                           timeout=timeout)
    if r.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        tail = (r.stderr or "").strip().splitlines()[-3:]
        raise PdfError(f"{exe.name} could not print {html.name} to PDF (exit {r.returncode}): " + " | ".join(tail))
    os.replace(tmp, pdf)
    return pdf


def write_pdfs(run_dir: Path, *, browser: Path | None = None) -> list[Path]:
    """A PDF beside ``index.html`` and beside every page in ``reports/`` of a run folder."""
    run_dir = Path(run_dir)
    exe = browser or require_browser()
    pages = [run_dir / "index.html", *sorted((run_dir / "reports").glob("*.html"))]
    return [html_to_pdf(p, p.with_suffix(".pdf"), browser=exe) for p in pages if p.exists()]
