"""The report runner: failure handling, validation first, typed parameters, lock, run folders, provenance.

Uses two small test-only notebooks (tests/report_helpers.py): ``quick`` records a finding and
draws a figure; ``broken`` raises on purpose. The full notebook set is exercised in
tests/test_notebooks.py.
"""

from __future__ import annotations

import hashlib
import re
import json
import os
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from hipstats.cli import main
from hipstats.errors import ParameterError, ReportError
from hipstats.report import run_reports
from hipstats.report.export import external_references
from hipstats.report.lock import OutputLock

from report_helpers import write_cohort, write_test_notebooks


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("cohort"), n=45, seed=5)


@pytest.fixture(scope="module")
def nb_dir(tmp_path_factory):
    return write_test_notebooks(tmp_path_factory.mktemp("nbs"))


@pytest.fixture(scope="module")
def failed_run(cohort_dir, nb_dir, tmp_path_factory):
    """One run of quick + broken (in parallel), kept for several tests."""
    out = tmp_path_factory.mktemp("out")
    run = run_reports(cohort_dir, out, notebooks_dir=nb_dir, jobs=2, run_id="nightly-1", progress=False,
                      params=["label=hello"])
    return run, out


def test_failing_notebook_does_not_stop_the_others(failed_run):
    run, out = failed_run
    assert not run.ok and run.failed == ["broken"]
    status = {r.name: r.status for r in run.results}
    assert status == {"broken": "failed", "quick": "ok"}
    broken = next(r for r in run.results if r.name == "broken")
    assert broken.error == "ValueError: deliberate failure for the test"
    quick = next(r for r in run.results if r.name == "quick")
    assert [f["sentence"] for f in quick.findings] == ["hello: 45 participants"]


def test_failed_report_shows_the_error_where_it_happened(failed_run):
    run, _ = failed_run
    page = (run.run_dir / "reports" / "broken.html").read_text()
    assert 'id="papermill-error-cell"' in page and "hipstats-failed-banner" in page
    # where it stopped, the page says so in one plain sentence: no traceback, no exception name on a page
    assert page.index("Before the error.") < page.index("so what follows is missing") < page.index("After the error.")
    assert "deliberate failure" not in page and "ValueError" not in page and "Traceback" not in page
    assert 'class="jp-InputArea-editor' not in page
    assert external_references(page) == []
    # the analyst finds the error in the manifest and the traceback in the executed notebook
    import json

    entry = next(n for n in json.loads((run.run_dir / "manifest.json").read_text())["notebooks"]
                 if n["name"] == "broken")
    assert entry["error"] == "ValueError: deliberate failure for the test"
    assert "deliberate failure for the test" in (run.run_dir / entry["notebook"]).read_text()


def test_index_marks_failures_and_links_every_report(failed_run):
    run, _ = failed_run
    index = run.index.read_text()
    assert "1 of 2 report(s) failed" in index
    assert '<td class="status-failed">failed</td>' in index and '<td class="status-ok">ok</td>' in index
    for r in run.results:
        assert f'href="{r.html}"' in index and (run.run_dir / r.html).is_file()
    assert "hello: 45 participants" in index  # the key finding of the notebook that worked
    assert external_references(index) == []


def test_cli_exit_code_is_1_when_a_notebook_fails(cohort_dir, nb_dir, tmp_path, capsys):
    assert main(["report", str(cohort_dir), "--out", str(tmp_path), "--notebooks-dir", str(nb_dir), "-q",
                 "--only", "broken", "--run-id", "all-failed"]) == 1
    # every notebook failed: the run is complete and shows the error, but it never becomes latest
    assert (tmp_path / "all-failed" / "reports" / "broken.html").is_file()
    assert not (tmp_path / "latest").exists() and not (tmp_path / "LATEST").exists()
    assert "every notebook of run all-failed failed (broken)" in capsys.readouterr().err


def test_a_run_in_which_every_notebook_failed_leaves_latest_alone(cohort_dir, nb_dir, tmp_path):
    from hipstats.errors import RunFailedError

    good = run_reports(cohort_dir, tmp_path, notebooks_dir=nb_dir, only=["quick"], run_id="good", progress=False)
    assert good.ok and good.published
    with pytest.raises(RunFailedError, match="'latest' still points at the previous run") as err:
        run_reports(cohort_dir, tmp_path, notebooks_dir=nb_dir, only=["broken"], run_id="bad", progress=False)
    bad = err.value.run
    assert not bad.ok and not bad.published and bad.failed == ["broken"] and bad.manifest["status"] == "failed"
    assert (tmp_path / "bad" / "index.html").is_file()
    assert os.path.realpath(tmp_path / "latest") == str(good.run_dir)
    assert (tmp_path / "LATEST").read_text().strip() == "good"


def test_run_reports_from_a_plain_script_without_a_main_guard(cohort_dir, nb_dir, tmp_path):
    """The README's one-liner in a script of its own: spawn workers must not run the script again."""
    import subprocess

    script = tmp_path / "nightly.py"
    script.write_text("import hipstats as hs\n"
                      f"run = hs.run_reports({str(cohort_dir)!r}, out='out', notebooks_dir={str(nb_dir)!r},\n"
                      "                     only=['quick'], jobs=2, progress=False)\n"
                      "print('RUNS', run.ok, run.failed)\n", encoding="utf-8")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("RUNS") == 1 and "RUNS True []" in r.stdout
    assert "Traceback" not in r.stderr and "BrokenProcessPool" not in r.stderr
    assert len([p for p in (tmp_path / "out").iterdir() if p.is_dir() and not p.is_symlink()]) == 1


def test_run_folder_latest_pointer_and_manifest(failed_run, cohort_dir):
    run, out = failed_run
    assert run.run_dir == out / "nightly-1"
    assert os.path.realpath(out / "latest") == str(run.run_dir)
    assert (out / "LATEST").read_text().strip() == "nightly-1" and (out / "latest.html").is_file()
    assert not [p for p in out.iterdir() if ".partial" in p.name]  # the temporary folder was renamed
    assert not (run.run_dir / ".run").exists()  # private snapshot and kernelspec removed
    m = json.loads((run.run_dir / "manifest.json").read_text())
    assert m["status"] == "failed" and m["run_id"] == "nightly-1"
    files = {Path(f["path"]).name: f for f in m["inputs"]}
    assert {"measurements.csv", "participants.csv", "sessions.csv"} <= set(files)
    for name, f in files.items():
        assert f["sha256"] == hashlib.sha256((cohort_dir / name).read_bytes()).hexdigest()
    assert m["packages"]["hipstats"] and m["packages"]["papermill"] and m["kernel"]["python"] == sys.executable
    assert m["started"] <= m["ended"]
    nbs = {n["name"]: n for n in m["notebooks"]}
    assert nbs["broken"]["status"] == "failed" and nbs["quick"]["status"] == "ok"
    assert all(n["duration_s"] > 0 for n in nbs.values())
    assert m["parameters"]["per_notebook"]["quick"]["label"] == "hello"
    assert m["parameters"]["per_notebook"]["quick"]["source"] == str(cohort_dir.resolve())
    assert "git" in m  # None outside a repository, else commit/branch/dirty
    if m["git"]:
        assert len(m["git"]["commit"]) == 40


def test_kernel_is_this_environments_python_and_code_is_hidden(failed_run):
    run, _ = failed_run
    nb = nbformat.read(run.run_dir / "notebooks" / "quick.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"KERNEL {sys.executable}" in printed
    page = (run.run_dir / "reports" / "quick.html").read_text()
    assert "open_cohort(" not in page and "report.record(" not in page  # no code
    assert any("image/svg+xml" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert len(re.findall(r"<img [^>]*src=\"data:image/svg\+xml;base64,", page)) == 1  # embedded (vector), once


def test_python_api_result_frames(failed_run):
    run, _ = failed_run
    s = run.summary()
    assert list(s["notebook"]) == ["broken", "quick"] and list(s["status"]) == ["failed", "ok"]
    f = run.findings()
    assert list(f.columns) == ["notebook", "area", "question", "estimate", "ci_low", "ci_high", "p", "sentence"]
    assert f.loc[0, "estimate"] > 0 and "failed" in repr(run)


def test_bad_source_stops_before_anything_is_written(cohort_dir, nb_dir, tmp_path, capsys):
    bad = write_cohort(tmp_path / "bad", n=20, seed=2)
    m = pd.read_csv(bad / "measurements.csv")
    m.loc[m.index[3], "value"] = 500.0
    m.to_csv(bad / "measurements.csv", index=False)
    out = tmp_path / "out"
    assert main(["report", str(bad), "--out", str(out), "--notebooks-dir", str(nb_dir), "-q"]) == 2
    assert not out.exists()
    printed = capsys.readouterr().out
    assert "500" in printed and "measurements" in printed  # the validation table names the value


def test_direct_identifiers_are_refused(nb_dir, tmp_path):
    src = write_cohort(tmp_path / "ids", n=20, seed=3)
    p = pd.read_csv(src / "participants.csv")
    p["email"] = [f"person{i}@example.org" for i in range(len(p))]
    p.to_csv(src / "participants.csv", index=False)
    out = tmp_path / "out"
    assert main(["report", str(src), "--out", str(out), "--notebooks-dir", str(nb_dir), "-q"]) == 2
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    (["--param", "nosuch=1"], "unknown parameter 'nosuch'"),
    (["--param", "repeat=many"], "parameter 'repeat' expects int, got 'many'"),
    (["--param", "quick.repeat=2.5"], "expects int"),
    (["--only", "nosuch"], "unknown notebook"),
    (["--as-of", "someday"], "--as-of must be a date"),
    (["--run-id", "../escape"], "--run-id"),
])
def test_parameter_errors_exit_2_and_write_nothing(cohort_dir, nb_dir, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["report", str(cohort_dir), "--out", str(out), "--notebooks-dir", str(nb_dir), "-q", *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_params_file_types_are_checked(cohort_dir, nb_dir, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("quick:\n  repeat: [1, 2]\n")
    with pytest.raises(ParameterError, match="parameter 'repeat' expects int"):
        run_reports(cohort_dir, tmp_path / "out", notebooks_dir=nb_dir, params_file=f, progress=False)


def test_second_run_on_a_locked_output_fails_clearly(cohort_dir, nb_dir, tmp_path, capsys):
    out = tmp_path / "out"
    with OutputLock(out):
        with pytest.raises(ReportError, match="another hipstats report run is writing"):
            run_reports(cohort_dir, out, notebooks_dir=nb_dir, only=["quick"], progress=False)
        assert main(["report", str(cohort_dir), "--out", str(out), "--notebooks-dir", str(nb_dir), "-q",
                     "--only", "quick"]) == 1
    assert "another hipstats report run" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == [".hipstats-report.lock"]


def test_as_of_restricts_the_data_and_run_ids_are_never_reused(cohort_dir, nb_dir, tmp_path, failed_run, capsys):
    full_rows = failed_run[0].findings().loc[0, "estimate"]
    dates = pd.to_datetime(pd.read_csv(cohort_dir / "measurements.csv")["visit_date"])
    cut = (dates.min() + (dates.max() - dates.min()) / 3).date()
    cmd = ["report", str(cohort_dir), "--out", str(tmp_path), "--notebooks-dir", str(nb_dir), "-q", "--only", "quick",
           "--as-of", str(cut), "--run-id", "early"]
    assert main(cmd) == 0
    m = json.loads((tmp_path / "early" / "manifest.json").read_text())
    assert m["as_of"] == str(cut) and m["status"] == "ok"
    nb = nbformat.read(tmp_path / "early" / "notebooks" / "quick.ipynb", as_version=4)
    assert nb.metadata["papermill"]["parameters"]["as_of"] == str(cut)
    from hipstats.report.findings import extract

    expected = int((dates <= pd.Timestamp(cut)).sum())
    assert extract(nb)[0].estimate == expected < full_rows
    assert main(cmd) == 1  # the run folder exists: never overwritten
    assert "already exists" in capsys.readouterr().err


def test_sigterm_stops_the_run_cleanly(cohort_dir, tmp_path):
    """A scheduler's kill (SIGTERM) mid-run: exit 143, no partial output, no process or temp data left."""
    import signal
    import subprocess
    import tempfile
    import time

    import psutil
    from nbformat.v4 import new_code_cell

    from report_helpers import _nb

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    for name in ("slow_a", "slow_b"):
        nbformat.write(_nb(name, [new_code_cell("import time\nprint('STARTED', flush=True)\ntime.sleep(120)")]),
                       nbs / f"{name}.ipynb")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "hipstats.cli", "report", str(cohort_dir), "--out", str(out),
                             "--notebooks-dir", str(nbs), "--jobs", "2", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runner = psutil.Process(proc.pid)
    deadline = time.time() + 120
    partial = []
    while time.time() < deadline and not partial:  # validation passed: the run folder exists
        partial = list(out.glob(".*.partial-*")) if out.is_dir() else []
        time.sleep(0.2)
    assert partial, "the run never got past validation"
    kernels = []
    while time.time() < deadline and len(kernels) < 2:  # wait (on a busy machine too) for both kernels
        family = [runner] + runner.children(recursive=True)
        kernels = []
        for p in family:
            try:
                if "ipykernel_launcher" in " ".join(p.cmdline()):
                    kernels.append(p)
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.5)
    assert len(kernels) == 2, "the two notebooks' kernels never started"
    time.sleep(2)  # let them reach their sleeping cell
    family = [runner] + runner.children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated" in err
    assert not list(out.glob(".*.partial-*")) and not [p for p in out.iterdir() if p.is_dir()]
    assert not list(Path(tempfile.gettempdir()).glob(f"hipstats-report-{proc.pid}-*"))
    _, alive = psutil.wait_procs(family[1:], timeout=30)
    assert alive == [], [p.cmdline()[:3] for p in alive]


def test_screening_page_on_12_participants_says_each_not_estimable_once(tmp_path):
    """`hipstats simulate --n 12` (seed 2026): one tilt class has a single participant, another a single
    deficit. The page used to show each reason twice (a warning note box and the table footnote); now each
    part that cannot be estimated is said once, with its reason and counts, and no warning box repeats it."""
    from bs4 import BeautifulSoup

    import hipstats as hs

    src = tmp_path / "cohort"
    hs.simulate_cohort(12, seed=2026).write(src, overwrite=True)
    run = run_reports(src, tmp_path / "out", only=["screening"], jobs=1, progress=False)
    assert run.ok, run.summary()[["notebook", "error"]].to_dict("records")
    text = re.sub(r"\s+", " ", BeautifulSoup((run.run_dir / run.results[0].html).read_text(), "html.parser")
                  .get_text(" "))
    assert "Note." not in text  # no warning box
    once = ["the only participant in this tilt class has IR < 30 deg: accuracy needs participants with and "
            "without it", "1 participant with IR < 30 deg and 3 without: the AUC",
            "The AUC difference between posterior and neutral tilt: not estimable: the posterior tilt class could "
            "not be analysed", "The AUC difference between anterior and neutral tilt: not estimable: the AUC of the "
            "anterior tilt class has no interval"]
    for sentence in once:
        assert text.lower().count(sentence.lower()) == 1, (sentence, text.lower().count(sentence.lower()))
    assert "classs" not in text and "tables notes" not in text
    assert "DeLong variance" not in text and "needs at least two cases" not in text
    assert "AUC difference against the neutral tilt class" not in text  # no comparison table without a comparison
