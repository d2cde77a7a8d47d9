"""End to end in a real browser: open index.html and a report in headless Chromium with the network off.

Needs Debian's ``chromium``: the session fixture installs it with apt when it is missing and the
tests run as root with apt available; otherwise the tests are skipped with the reason.
"""

from __future__ import annotations

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
             "document.body.setAttribute('data-images', JSON.stringify(s));});</script>")
    probed = run.run_dir / "reports" / "quick.probe.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    dom = _browse(chromium, probed.as_uri(), tmp_path, "--dump-dom")
    m = re.search(r"data-images=\"([^\"]*)\"", dom)
    assert m, "the probe did not run"
    images = json.loads(m.group(1).replace("&quot;", '"'))
    assert images, "no figure in the report"
    for src, complete, width, height in images:
        assert src.startswith("data:image/png") and complete and width > 100 and height > 100
    # and the page really paints them: the screenshot is not blank
    shot = tmp_path / "shot.png"
    _browse(chromium, (run.run_dir / "reports" / "quick.html").as_uri(), tmp_path, f"--screenshot={shot}",
            "--window-size=1200,1600")
    import matplotlib.image as mpimg
    import numpy as np

    px = mpimg.imread(shot)[..., :3]
    coloured = np.abs(px - px.mean(axis=2, keepdims=True)).max(axis=2) > 0.1  # non-grey pixels: the lines
    assert coloured.mean() > 0.001
