"""End to end in a real browser: open index.html and a report in headless Chromium with the network off.

Needs Debian's ``chromium``: the session fixture installs it with apt when it is missing and the
tests run as root with apt available; otherwise the tests are skipped with the reason.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hipstats.report import run_reports

from report_helpers import write_cohort, write_test_notebooks

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every name resolves nowhere and every proxied request goes to a closed port: no network.
NETWORK_OFF = ["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost", "--proxy-server=http://127.0.0.1:9",
               "--proxy-bypass-list=<-loopback>"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        r = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, timeout=1800,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if r.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=600)
            subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=1800,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("headless Chromium is not installed and cannot be installed here (needs root and apt-get)")
    return exe


def _browse(exe, url, tmp_path, *extra):
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    r = subprocess.run([exe, *FLAGS, *NETWORK_OFF, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                        *extra, url], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    src = write_cohort(tmp_path_factory.mktemp("cohort"), n=30, seed=8)
    nbs = write_test_notebooks(tmp_path_factory.mktemp("nbs"))
    return run_reports(src, tmp_path_factory.mktemp("out"), notebooks_dir=nbs, only=["quick"], progress=False)


def test_index_opens_offline_with_findings_and_links(chromium, run, tmp_path):
    dom = _browse(chromium, (run.run_dir.parent / "latest" / "index.html").as_uri(), tmp_path, "--dump-dom")
    assert "Key findings" in dom and "measurement rows" in dom
    assert re.search(r'<a href="reports/quick.html">Quick check</a>', dom)


def test_report_figures_render_offline(chromium, run, tmp_path):
    # A copy of the report with a tiny inline probe that writes each image's load state into the DOM.
    page = (run.run_dir / "reports" / "quick.html").read_text()
    probe = ("<script>window.addEventListener('load', function () {var s = [];"
             "for (var i = 0; i < document.images.length; i++) {var im = document.images[i];"
             "s.push([im.src.slice(0, 15), im.complete, im.naturalWidth, im.naturalHeight]);}"
             "var svgs = document.querySelectorAll('.jp-OutputArea-output svg');"
             "for (var j = 0; j < svgs.length; j++) {var b = svgs[j].getBoundingClientRect();"
             "s.push(['svg', true, Math.round(b.width), Math.round(b.height)]);}"
             "document.body.setAttribute('data-images', JSON.stringify(s));});</script>")
    probed = run.run_dir / "reports" / "quick.probe.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    dom = _browse(chromium, probed.as_uri(), tmp_path, "--dump-dom")
    m = re.search(r"data-images=\"([^\"]*)\"", dom)
    assert m, "the probe did not run"
    images = json.loads(m.group(1).replace("&quot;", '"'))
    assert images, "no figure in the report"
    for src, complete, width, height in images:
        assert src.startswith(("data:image/png", "data:image/svg", "svg")) and complete and width > 100 and height > 100
    # and the page really paints them: the screenshot is not blank
    shot = tmp_path / "shot.png"
    _browse(chromium, (run.run_dir / "reports" / "quick.html").as_uri(), tmp_path, f"--screenshot={shot}",
            "--window-size=1200,1600")
    import matplotlib.image as mpimg
    import numpy as np

    px = mpimg.imread(shot)[..., :3]
    coloured = np.abs(px - px.mean(axis=2, keepdims=True)).max(axis=2) > 0.1  # non-grey pixels: the lines
    assert coloured.mean() > 0.001


# ---------------------------------------------------------------------------------------------
# The real report notebooks on cohorts unlike the example, looked at in the browser and in print.

PROBE = ("<script>window.addEventListener('load', function () {"
         "var W = document.documentElement.clientWidth, bad = [];"
         "var els = document.querySelectorAll('table, svg, img');"
         "for (var i = 0; i < els.length; i++) {var r = els[i].getBoundingClientRect();"
         "if (r.width > 0 && (r.right > W + 1 || r.left < -1)) bad.push([els[i].tagName, Math.round(r.left),"
         "Math.round(r.right), (els[i].className && els[i].className.baseVal === undefined ? els[i].className : '')]);}"
         "document.body.setAttribute('data-fit', JSON.stringify({width: W, "
         "scroll: document.documentElement.scrollWidth, n: els.length, bad: bad}));});</script>")


def _page_fit(exe, page: Path, tmp_path, width: int = 1280) -> dict:
    probed = page.with_name(page.stem + ".fit-probe.html")
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = _browse(exe, probed.as_uri(), tmp_path, "--dump-dom", f"--window-size={width},1000")
    finally:
        probed.unlink()
    m = re.search(r"data-fit=\"([^\"]*)\"", dom)
    assert m, f"the width probe did not run on {page.name}"
    return json.loads(m.group(1).replace("&quot;", '"'))


def _visible_text(page: Path) -> str:
    import html as _html

    s = re.sub(r"<style.*?</style>|<script.*?</script>|<svg.*?</svg>", "", page.read_text(encoding="utf-8"), flags=re.S)
    return re.sub(r"\s+", " ", _html.unescape(re.sub(r"<[^>]+>", " ", s)))


def _custom_cohort(folder: Path, n: int) -> Path:
    """n participants, arms named 'usual care', 'hip loading', 'mobility'; the mobility arm has no ASLR readings."""
    import hipstats as hs

    c = hs.simulate_cohort(n, arms=("usual care", "hip loading", "mobility"), seed=5)
    arm = c.participants.set_index("participant_id")["arm"]
    m = c.measurements
    c.measurements = m[~((m["participant_id"].map(arm) == "mobility") & (m["measure"] == "aslr_deg"))].reset_index(
        drop=True)
    c.write(folder, overwrite=True)
    (folder / "hipstats.yaml").write_text("arms: [usual care, hip loading, mobility]\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def small_custom_run(tmp_path_factory):
    src = _custom_cohort(tmp_path_factory.mktemp("custom12"), 12)
    return run_reports(src, tmp_path_factory.mktemp("out12"), params=["confidence=0.9"], progress=False)


@pytest.fixture(scope="module")
def interim_run(tmp_path_factory):
    import hipstats as hs

    c = hs.simulate_cohort(40, seed=9)
    d = c.measurements["visit_date"].dropna()
    mid = (d.min() + (d.max() - d.min()) / 2).date().isoformat()
    src = tmp_path_factory.mktemp("interim")
    c.write(src, overwrite=True)
    return run_reports(src, tmp_path_factory.mktemp("out-interim"), as_of=mid, progress=False)


def _pages(run) -> list[Path]:
    return [run.run_dir / "index.html", *sorted((run.run_dir / "reports").glob("*.html"))]


def test_custom_arms_small_cohort_and_interim_runs_render_every_page(small_custom_run, interim_run):
    for run in (small_custom_run, interim_run):
        assert run.ok, run.summary().to_string()
        for page in _pages(run):
            text = _visible_text(page)
            for bad in (r"\bnan\b", r"\binf\b", r"Traceback", r"Warning\b", r"/tmp/", r"\{'", r"\bp_adj\b",
                        r"\bci_low\b", r"hip_ir_deg|aslr_deg"):
                assert not re.search(bad, text), f"{page.name}: {bad!r} on the page"
    index = _visible_text(small_custom_run.run_dir / "index.html")
    assert "usual care vs hip loading vs mobility" in index
    assert "Loading vs stretching" not in index


def test_confidence_label_follows_the_parameter(small_custom_run):
    for page in _pages(small_custom_run):
        text = _visible_text(page)
        assert "95% CI" not in text, page.name
    assert "90% CI" in _visible_text(small_custom_run.run_dir / "index.html")
    assert "90% CI" in _visible_text(small_custom_run.run_dir / "reports" / "outcomes.html")


def test_interim_run_counts_not_yet_due_apart_from_missed(interim_run):
    text = _visible_text(interim_run.run_dir / "reports" / "data_quality.html")
    assert "not yet due" in text
    assert "lost many participants" not in text


def test_no_table_or_figure_wider_than_the_page_at_1280px(chromium, small_custom_run, interim_run, tmp_path):
    for run in (small_custom_run, interim_run):
        for page in _pages(run):
            fit = _page_fit(chromium, page, tmp_path)
            assert fit["n"] > 0 or page.name == "index.html"
            assert fit["scroll"] <= fit["width"], f"{page.name} scrolls sideways: {fit}"
            assert not fit["bad"], f"{page.name}: wider than the page: {fit['bad']}"


def test_printed_to_pdf_nothing_is_cut(chromium, small_custom_run, tmp_path):
    from hipstats.report.pdf import write_pdfs

    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    pdfs = write_pdfs(small_custom_run.run_dir, browser=Path(chromium))
    assert len(pdfs) == len(_pages(small_custom_run))
    for pdf in pdfs:
        xml = subprocess.run([pdftotext, "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        pages = re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', xml, flags=re.S)
        assert pages, pdf.name
        assert abs(float(pages[0][0]) - 595.3) < 2, "not A4"
        for width, _, body in pages:
            right = [float(x) for x in re.findall(r'xMax="([\d.]+)"', body)]
            assert max(right, default=0) <= float(width) - 5, f"{pdf.name}: text runs off the page"
        words = re.sub(r"<[^>]+>", " ", xml)
        html_text = _visible_text(pdf.with_suffix(".html"))
        for label in ("p (adjusted)", "MDC95", "95% CI", "90% CI"):
            if label in html_text:
                assert label.split()[0] in words, f"{pdf.name}: {label!r} missing from the PDF"


# ---------------------------------------------------------------------------------------------
# The index is a one-page summary: a bounded number of rows, two A4 pages at most, short on screen.

HEIGHT_PROBE = ("<script>window.addEventListener('load', function () {document.body.setAttribute('data-height', "
                "JSON.stringify({height: document.documentElement.scrollHeight, forest: (function () {"
                "var f = document.querySelector('.hipstats-forest'); return f ? Math.round(f.getBoundingClientRect()"
                ".bottom + window.scrollY) : -1;})()}));});</script>")


def _index_rows(page: Path) -> dict[str, int]:
    """Findings rows of the index per question heading."""
    body = page.read_text(encoding="utf-8").split('<table class="hipstats-index findings">', 1)[1].split("</table>")[0]
    rows: dict[str, int] = {}
    current = None
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S):
        head = re.search(r'<th colspan="5"><a [^>]*>(.*?)</a>', row)
        if head:
            current = head.group(1)
            rows[current] = 0
        elif "<td" in row:
            rows[current] += 1
    return rows


def test_index_is_a_one_page_summary(chromium, small_custom_run, interim_run, tmp_path):
    from math import comb

    from hipstats.report.pdf import html_to_pdf

    pdftotext = shutil.which("pdftotext")
    for run in (small_custom_run, interim_run):
        index = run.run_dir / "index.html"
        manifest = json.loads((run.run_dir / "manifest.json").read_text())
        n_arms = len(manifest["cohort"]["arms"])
        rows = _index_rows(index)
        # per question its answer (at most 3 rows), but every pre-specified comparison: H2 each pair of arms for
        # IR and ASLR, H3 accuracy at the cutoff (sensitivity, specificity) and each tilt class against neutral
        bound = {"H2": 2 * comb(n_arms, 2), "H3": 2 + 2}
        for heading, n in rows.items():
            area = heading.split()[0]
            assert 1 <= n <= max(3, bound.get(area, 0)), f"{index}: {n} rows under {heading!r}"
        assert sum(rows.values()) <= 3 * len(rows) + sum(bound.values())
        assert sum(len(r.findings) for r in run.results) > sum(rows.values())  # the rest is on the pages
        for r in run.results:  # ... really: every finding a notebook recorded is shown on its page
            page = (run.run_dir / r.html).read_text(encoding="utf-8")
            for f in r.findings:
                assert html.escape(f["question"], quote=False) in page, f"{r.html}: {f['question']!r} not shown"
        # on screen at 1280 px: the findings and the forest plot within about two screens of 900 px
        probed = index.with_name("index.height-probe.html")
        probed.write_text(index.read_text(encoding="utf-8").replace("</body>", HEIGHT_PROBE + "</body>"))
        try:
            dom = _browse(chromium, probed.as_uri(), tmp_path, "--dump-dom", "--window-size=1280,900")
        finally:
            probed.unlink()
        size = json.loads(re.search(r"data-height=\"([^\"]*)\"", dom).group(1).replace("&quot;", '"'))
        assert 0 < size["forest"] <= 2.5 * 900 and size["height"] <= 2.8 * 900, size
        # printed to A4: one page, two at most
        if pdftotext is None:
            pytest.skip("pdftotext (poppler-utils) is not installed")
        pdf = html_to_pdf(index, tmp_path / f"index-{run.run_id}.pdf", browser=Path(chromium))
        xml = subprocess.run([pdftotext, "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert 1 <= xml.count("<page ") <= 2, f"{index}: the index prints to {xml.count('<page ')} A4 pages"
