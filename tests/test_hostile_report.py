"""Hostile input on the report side: values from data are escaped wherever they are rendered, the
offline guard parses pages, the output folder never follows a planted link, runs are published
whole or not at all, and parameters are range-checked before anything is written."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell

from hipstats.cli import main
from hipstats.errors import ParameterError, ReportError, RunFailedError
from hipstats.report import publish, run_reports
from hipstats.report.export import external_references
from hipstats.report.lock import LOCK_NAME, OutputLock
from hipstats.report.params import load_params_file

from report_helpers import _nb, write_cohort, write_test_notebooks

#: Markup that must never become an element of a report page (from the hostile test of issue 17).
PAYLOADS = [
    '<img srcset="http://evil.example/a.png 1x">',
    "<svg onload=alert(1)>",
    "<input type=image src=//evil.example/b.png>",
    '<video poster="https://evil.example/p.png"></video>',
    "<script>alert(1)</script>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    "<object data=http://evil.example/o></object>",
    '<form action="https://evil.example/f"><button formaction="//evil.example/g">go</button></form>',
    '<div style="background:url(http://evil.example/c.png)">x</div>',
    '<meta http-equiv="refresh" content="0;url=http://evil.example/">',
    '<base href="http://evil.example/">',
    '<svg><image xlink:href="http://evil.example/i.png"/></svg>',
    '<iframe srcdoc="&lt;b&gt;x&lt;/b&gt;"></iframe>',
    "<style>@import url(http://evil.example/s.css);</style>",
    "<img src=x onerror=alert(1)>",
    '<link rel="stylesheet" href="https://evil.example/s.css">',
    '<img src="  HTTPS://evil.example/x.png">',
    '<img srcset="ok.png 1x, //evil.example/y.png 2x">',
    '<svg><animate attributeName="href" values="javascript:alert(1)"/></svg>',
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_guard_refuses_every_payload(payload):
    assert external_references(f"<html><body><p>ok</p>{payload}</body></html>"), payload


def test_guard_accepts_what_reports_contain():
    page = ('<!DOCTYPE html><html><head><meta charset="utf-8"><style>.a{background:url(data:image/png;base64,AA)}'
            '</style></head><body><nav><a href="../index.html">back</a> <a href="#papermill-error-cell">error</a>'
            '</nav><img src="data:image/png;base64,iVBORw0KGgo="><a href="reports/x.html">x</a>'
            '<a href="manifest.json">m</a><p>&lt;script&gt;alert(1)&lt;/script&gt;</p></body></html>')
    assert external_references(page) == []


def test_matplotlib_svg_escapes_labels(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label=PAYLOADS[1])
    ax.set_title(PAYLOADS[0])
    ax.set_xlabel(PAYLOADS[4])
    ax.legend()
    fig.savefig(tmp_path / "f.svg")
    plt.close(fig)
    svg = (tmp_path / "f.svg").read_text()
    assert external_references(svg) == []
    assert "<script" not in svg and "<img" not in svg and "&lt;script&gt;" in svg


# ------------------------------------------------------------------------------ a full run with hostile labels
HOSTILE_VISIT = '<img srcset="http://evil.example/a.png 1x"><svg onload=alert(1)>'
HOSTILE_RATER = "<script>alert('rater')</script>"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    src = write_cohort(tmp_path_factory.mktemp("hostile"), n=24, seed=4)
    m = pd.read_csv(src / "measurements.csv")
    assert "week_6" in set(m["visit"]) and "R2" in set(m["rater"])
    m["visit"] = m["visit"].replace({"week_6": HOSTILE_VISIT})
    m["rater"] = m["rater"].replace({"R2": HOSTILE_RATER})
    m.to_csv(src / "measurements.csv", index=False)
    nbs = tmp_path_factory.mktemp("nbs")
    show = _nb("Hostile labels", [new_code_cell(
        "import hipstats as hs\nfrom hipstats import report\nreport.setup_figures()\n"
        "cohort = report.open_cohort(source, as_of=as_of)\ndisplay(cohort)\n"
        "display(report.quality.measure_summary(cohort))\ndisplay(report.quality.retention(cohort))\n"
        "display(report.quality.outliers(cohort, threshold=0.5))\n"
        "visit = cohort.scheduled_visits[2]\n"
        "report.record('Data', f'measured at {visit}', 1.0, None, None, None, f'label {visit}', digits=0)\n"
        "w = cohort.measurements.query(\"measure == 'hip_ir_deg'\").pivot_table(index=['participant_id', 'visit',"
        " 'side'], columns='rater', values='value', aggfunc='mean', observed=True).dropna().reset_index()\n"
        "a, b = sorted(cohort.measurements['rater'].dropna().unique())[:2]\n"
        "display(hs.bland_altman(w, a, b))\n"
        "report.quality.plot_flow(cohort)")])
    nbformat.write(show, nbs / "hostile.ipynb")
    import shutil

    from hipstats.report.params import default_notebooks_dir

    shutil.copy(default_notebooks_dir() / "data_quality.ipynb", nbs / "data_quality.ipynb")
    out = tmp_path_factory.mktemp("out")
    run = run_reports(src, out, notebooks_dir=nbs, jobs=2, progress=False)
    return run


def test_hostile_labels_are_escaped_on_every_page(hostile_run):
    run = hostile_run
    assert run.ok, run.summary()[["notebook", "error"]].to_dict("records")
    pages = [run.run_dir / r.html for r in run.results] + [run.index]
    shown = 0
    for page in pages:
        text = page.read_text()
        assert external_references(text) == [], page
        soup = BeautifulSoup(text, "html.parser")
        assert not soup.find_all(["script", "svg", "iframe", "object", "base"]), page
        assert not soup.find_all(srcset=True) and not soup.find_all(onload=True), page
        shown += text.count("&lt;img srcset=") + text.count("&lt;script&gt;")
    assert shown >= 3  # the labels are shown, as text
    hostile = (run.run_dir / "reports" / "hostile.html").read_text()
    assert "&lt;script&gt;alert(" in hostile  # the rater label in the Bland-Altman heading


# ------------------------------------------------------------------------------ the output folder
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 20-participant cohort folder and the quick/broken test notebooks."""
    base = tmp_path_factory.mktemp("small")
    return write_cohort(base / "cohort", n=20, seed=5), write_test_notebooks(base / "nbs")


@pytest.fixture
def cohort_dir(small):
    return small[0]


@pytest.fixture
def nb_dir(small):
    return small[1]


def _report(cohort_dir, nb_dir, out, *extra):
    return main(["report", str(cohort_dir), "--out", str(out), "--notebooks-dir", str(nb_dir), "-q",
                 "--only", "quick", *extra])


def _pointers(out: Path) -> set[str]:
    """The run each pointer names (they must agree)."""
    names = {(out / "LATEST").read_text().strip()}
    names.add(os.readlink(out / "latest"))
    page = (out / "latest.html").read_text()
    names.add(page.split("url=")[1].split("/index.html")[0])
    return names


@pytest.mark.parametrize("planted", ["LATEST", "latest.html", LOCK_NAME])
def test_planted_symlink_is_never_written_through(cohort_dir, nb_dir, tmp_path, capsys, planted):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / planted).symlink_to(victim)
    assert _report(cohort_dir, nb_dir, out) == 1
    err = capsys.readouterr().err
    assert victim.read_text() == "precious\n"
    assert "symbolic link" in err or "symlink" in err, err
    assert not [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_latest_that_is_not_a_link_is_an_error_not_left_stale(cohort_dir, nb_dir, tmp_path, capsys, kind):
    out = tmp_path / "out"
    out.mkdir()
    if kind == "file":
        (out / "latest").write_text("mine")
    else:
        (out / "latest").mkdir()
    assert _report(cohort_dir, nb_dir, out) == 1
    assert f"latest is a {kind}" in capsys.readouterr().err
    assert not (out / "LATEST").exists() and not (out / "latest.html").exists()


def test_lock_refuses_hard_link_and_fifo(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.link(victim, out / LOCK_NAME)
    with pytest.raises(ReportError, match="hard link"):
        OutputLock(out).acquire()
    assert victim.read_text() == "keep"
    (out / LOCK_NAME).unlink()
    os.mkfifo(out / LOCK_NAME)
    with pytest.raises(ReportError, match="not a regular file"):
        OutputLock(out).acquire()  # returns at once: O_NONBLOCK, never blocks on a FIFO


@pytest.mark.parametrize("run_id", ["LATEST", "latest", "latest.html", "Latest", "nightly\n", "a/b", "-x", ""])
def test_pointer_names_and_bad_run_ids_are_refused(cohort_dir, nb_dir, tmp_path, capsys, run_id):
    out = tmp_path / "out"
    code = _report(cohort_dir, nb_dir, out, "--run-id", run_id)
    assert code == 2, capsys.readouterr()
    assert "--run-id" in capsys.readouterr().err
    assert not out.exists()


def test_run_ids_match_in_full():
    for bad in ("ok\n", "ok\x00", "ok ", "x" * 101, "latest.HTML"):
        with pytest.raises(ParameterError):
            publish.check_run_id(bad)
    publish.check_run_id("2026-01-01_night.2")


def test_publish_is_all_or_nothing_on_a_full_disk(tmp_path, monkeypatch):
    out = tmp_path
    for rid in ("one", "two"):
        (out / rid).mkdir()
    publish.publish(out, "one")
    real = publish.write_atomic

    def full(path, data):
        if "latest.html" in Path(path).name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(publish, "write_atomic", full)
    with pytest.raises(ReportError, match="No space left on device"):
        publish.publish(out, "two")
    assert _pointers(out) == {"one"}
    assert sorted(p.name for p in out.iterdir()) == ["LATEST", "latest", "latest.html", "one", "two"]
    monkeypatch.setattr(publish, "write_atomic", real)
    publish.publish(out, "two")
    assert _pointers(out) == {"two"} and publish.current_run(out) == "two"


def test_write_atomic_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "page.html"
    target.write_text("old")

    def boom(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        publish.write_atomic(target, "new" * 1000)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_run_with_a_page_that_could_not_be_written_is_not_published(cohort_dir, nb_dir, tmp_path, monkeypatch):
    from hipstats.report import runner

    out = tmp_path / "out"
    first = run_reports(cohort_dir, out, notebooks_dir=nb_dir, only=["quick"], run_id="good", progress=False)
    assert first.ok
    real_pool = runner._run_pool

    def disk_full_after(pool, jobs_, *a, **k):
        res = real_pool(pool, jobs_, *a, **k)
        for j in jobs_:  # as if the disk filled up while the page was written
            Path(j["run_dir"], j["html_rel"]).unlink()
        return res

    monkeypatch.setattr(runner, "_run_pool", disk_full_after)
    with pytest.raises(ReportError, match="could not be written completely"):
        run_reports(cohort_dir, out, notebooks_dir=nb_dir, only=["quick"], run_id="broken", progress=False)
    assert _pointers(out) == {"good"}
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "LATEST", "good", "latest", "latest.html"]


def test_index_write_failure_is_not_published(cohort_dir, nb_dir, tmp_path, monkeypatch):
    from hipstats.report import index

    out = tmp_path / "out"

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(index, "render_index", full)
    with pytest.raises(ReportError, match="index.html"):
        run_reports(cohort_dir, out, notebooks_dir=nb_dir, only=["quick"], run_id="r1", progress=False)
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_stale_partial_folders_of_dead_runs_are_removed(cohort_dir, nb_dir, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    out.mkdir()
    stale = out / publish.partial_name("20260101-000000", dead.pid)
    (stale / "reports").mkdir(parents=True)
    (out / f".LATEST.tmp-{dead.pid}").write_text("")
    alive = out / publish.partial_name("other", os.getppid())
    alive.mkdir()
    assert _report(cohort_dir, nb_dir, out, "--run-id", "after-kill") == 0
    names = {p.name for p in out.iterdir()}
    assert stale.name not in names and f".LATEST.tmp-{dead.pid}" not in names
    assert alive.name in names  # its process is alive: not ours to remove
    assert _pointers(out) == {"after-kill"}


# ------------------------------------------------------------------------------ parameters
@pytest.mark.parametrize("args,message", [
    (["--only", "outcomes", "--param", "confidence=1.5"], "'confidence' must be strictly between 0 and 1"),
    (["--only", "outcomes", "--param", "confidence=nan"], "'confidence' must be a finite number"),
    (["--only", "screening", "--param", "n_boot=-5"], "'n_boot' must be a whole number of at least 1"),
    (["--only", "screening", "--param", "cutoff=inf"], "'cutoff' must be a finite number"),
    (["--only", "reliability", "--param", "form=x"], "'form' must be one of the ICC forms ICC(1,1), ICC1"),
    (["--only", "outcomes", "--param", "confidence=" + "x" * 5000], "more characters"),
])
def test_parameter_ranges_are_checked_before_anything_is_written(cohort_dir, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["report", str(cohort_dir), "--out", str(out), "-q", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err) < 3000
    assert not out.exists()


def test_yaml_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join(['*a%d' % (i - 1)] * 9)}]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 1000
    with pytest.raises(ParameterError, match="aliases|more than 10,000 values") as info:
        load_params_file(bomb)
    assert len(str(info.value)) < 2100


def test_params_file_size_and_value_limits(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("x: " + "a" * 1_100_000 + "\n")
    with pytest.raises(ParameterError, match="larger than 1,000,000 bytes"):
        load_params_file(big)
    many = tmp_path / "many.json"
    many.write_text("{\"x\": [" + ",".join(["1"] * 20_000) + "]}")
    with pytest.raises(ParameterError, match="more than 10,000 values"):
        load_params_file(many)
    bad = tmp_path / "bad.yaml"
    bad.write_text("x: [" + "'a'," * 50_000 + "\n")
    with pytest.raises(ParameterError) as info:
        load_params_file(bad)
    assert len(str(info.value)) < 2100


# ------------------------------------------------------------------------------ the source during a run
def test_source_changed_mid_run_is_not_published(tmp_path):
    src = write_cohort(tmp_path / "src", n=20, seed=6)
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    change = _nb("Changes its source", [new_code_cell(
        "from pathlib import Path\nfrom hipstats import report\n"
        "p = Path(source) / 'measurements.csv'\np.write_text(p.read_text().replace(',baseline,', ',baseline,', 1) + '\\n')\n"
        "cohort = report.open_cohort(source, as_of=as_of)")])
    nbformat.write(change, nbs / "change.ipynb")
    out = tmp_path / "out"
    with pytest.raises(ReportError, match="source changed during the report run"):
        run_reports(src, out, notebooks_dir=nbs, progress=False, run_id="r")
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_sql_source_gets_a_content_fingerprint(nb_dir, tmp_path):
    import sqlalchemy as sa

    import hipstats as hs

    cohort = hs.simulate_cohort(n_participants=12, seed=7)
    db = tmp_path / "cohort.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    for name, table in cohort.to_tables().items():
        table.to_sql(name, engine, index=False)
    engine.dispose()
    run = run_reports(f"sqlite:///{db}", tmp_path / "out", notebooks_dir=nb_dir, only=["quick"], progress=False)
    assert run.ok
    assert run.manifest["data_fingerprint"] == hs.load_cohort(f"sqlite:///{db}").fingerprint()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort.db", "out"]  # no -wal/-shm/-journal left


# ------------------------------------------------------------------------------ degenerate data on a page
def test_constant_measure_is_not_estimable_on_the_outcomes_page(tmp_path):
    """Every hip IR reading identical (a device stuck at 40 deg) made the H2 mixed model singular: the page
    showed a raw LinAlgError traceback. Now the IR part says "not estimable" with a plain reason and the
    rest of the page (ASLR) is still computed."""
    src = write_cohort(tmp_path / "cohort", n=12, seed=5)
    m = pd.read_csv(src / "measurements.csv")
    m.loc[m["measure"] == "hip_ir_deg", "value"] = 40.0
    m.to_csv(src / "measurements.csv", index=False)
    run = run_reports(src, tmp_path / "out", only=["outcomes"], jobs=1, progress=False)
    assert run.ok, run.summary()[["notebook", "error"]].to_dict("records")
    page = (run.run_dir / run.results[0].html).read_text()
    text = BeautifulSoup(page, "html.parser").get_text(" ")
    assert "Hip IR over the weeks: not estimable" in text
    assert "constant" in text  # the plain reason
    # said once, with its reason, where the analysis stands; the key findings only point back to it
    assert text.count("Hip IR over the weeks: not estimable") == 1
    assert text.count("constant") == 1
    assert "Hip IR over the weeks: the reason it could not be estimated is given above" in text
    for leak in ("Traceback", "LinAlgError", "Error:", ".py"):
        assert leak not in text
    assert "ASLR angle: difference in change from baseline" in text  # the other measure is still reported


def test_an_error_page_shows_no_traceback_and_the_manifest_keeps_it(cohort_dir, tmp_path):
    """A page the runner refuses to write (it would load from the internet) is replaced by an error page:
    a plain sentence, and the traceback goes to the manifest (it used to be printed on the page)."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    nbformat.write(_nb("Loads from the web", [new_code_cell(
        "from IPython.display import HTML\nHTML('<img src=\"http://evil.example/x.png\">')")]), nbs / "web.ipynb")
    with pytest.raises(RunFailedError) as info:  # the only notebook failed: not published
        run_reports(cohort_dir, tmp_path / "out", notebooks_dir=nbs, only=["web"], run_id="r1", progress=False)
    run = info.value.run
    page = (run.run_dir / "reports" / "web.html").read_text()
    assert "could not be produced" in page and "manifest.json" in page
    for leak in ("Traceback", "ReportError", "evil.example", ".py"):
        assert leak not in page
    entry = json.loads((run.run_dir / "manifest.json").read_text())["notebooks"][0]
    assert "evil.example" in entry["error"]
    assert "Traceback (most recent call last)" in entry["traceback"] and "ReportError" in entry["traceback"]
