"""Every console, cron, Python and YAML block of the README runs as shown.

The README's placeholders are replaced by real places before a command runs (the cohort
``/data/hipcohort`` and ``SOURCE`` by the bundled example, ``/srv/reports`` and ``DIR`` by
temporary folders, ``/opt/hipstats`` by the repository); nothing else in a command is changed,
except the three commands that cannot run inside the test suite, each replaced by the closest
check that can: ``make test`` (it runs this suite) by ``make -n test``, ``make report`` writes
into a temporary ``OUT`` instead of ``reports/``, and ``jupyter lab DIR`` (a server) by
executing one notebook of DIR the way JupyterLab would, with the same environment.
The SPSS and Stata folders (``/data/hipcohort-spss``, ``/data/hipcohort-stata``) are the example
cohort written as labelled ``.sav`` / ``.dta`` files, and the PostgreSQL URL is a database
holding the example on the server of ``HIPSTATS_TEST_POSTGRES`` (started by ``.ci/run``; without
it, and only outside CI, the same commands run on a SQLite copy of the example).

A block in a language this test does not know fails it, so a new kind of example cannot slip
through untested.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
BLOCKS = [(lang, body) for lang, body in BLOCK.findall(README)]
EXAMPLE = ROOT / "data" / "example"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def blocks(*langs: str) -> list[str]:
    return [body for lang, body in BLOCKS if lang in langs]


def test_every_block_is_a_kind_this_test_runs():
    kinds = [lang for lang, _ in BLOCKS]
    assert set(kinds) <= {"console", "cron", "python", "yaml", ""}, kinds
    # the one unlabelled block is the project layout drawing; every other block runs below
    layout = [body for lang, body in BLOCKS if lang == ""]
    assert len(layout) == 1 and "hipstats/" in layout[0] and "tests/" in layout[0]


def _commands(block: str) -> list[str]:
    out = []
    for line in block.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()  # trailing "# what it does" comments
        if line and not line.startswith("#"):
            out.append(line)
    return out


PG_PLACEHOLDER = "postgresql://reader:PASSWORD@dbhost:5432/hipcohort"


@pytest.fixture()
def study_sources(tmp_path, request):
    """Real places for the README's SPSS, Stata and PostgreSQL placeholders."""
    from test_postgres import ON_CI, _Database, _typed_tables
    from test_stats_files import write_spss_stata

    places = {"/data/hipcohort-spss": write_spss_stata(tmp_path / "spss", ".sav"),
              "/data/hipcohort-stata": write_spss_stata(tmp_path / "stata", ".dta")}
    dsn = os.environ.get("HIPSTATS_TEST_POSTGRES", "").strip()
    if dsn:
        db = _Database(dsn, _typed_tables())
        request.addfinalizer(db.drop)
        places[PG_PLACEHOLDER] = db.url
    else:
        assert not ON_CI, "CI=true but HIPSTATS_TEST_POSTGRES is not set: .ci/run must start PostgreSQL"
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{tmp_path / 'example.db'}")
        with engine.begin() as conn:
            for name, table in _typed_tables().items():
                table.to_sql(name, conn, index=False)
        engine.dispose()
        places[PG_PLACEHOLDER] = f"sqlite:///{tmp_path / 'example.db'}"
    return {k: str(v) for k, v in places.items()}


def _place(cmd: str, tmp: Path, places: dict | None = None) -> str:
    """Put real places where the README shows placeholders."""
    for placeholder, real in (places or {}).items():
        cmd = cmd.replace(placeholder, real)
    cmd = cmd.replace("/data/hipcohort", str(EXAMPLE)).replace("/srv/reports", str(tmp / "srv-reports"))
    cmd = cmd.replace("/data/redcap_export", str(ROOT / "tests" / "fixtures" / "redcap_project"))
    cmd = cmd.replace("/opt/hipstats", str(ROOT))
    cmd = re.sub(r"\bSOURCE\b", str(EXAMPLE), cmd)
    cmd = re.sub(r"--out DIR\b", f"--out {tmp / 'dir'}", cmd)
    if cmd.startswith("make report"):
        cmd += f" OUT={tmp / 'make-reports'}"
    elif cmd.startswith("make test"):
        cmd = cmd.replace("make test", "make -n test", 1)  # it is this suite: check the target only
    m = re.search(r"jupyter lab (\S+)", cmd)
    if m:  # a server: run one of its notebooks the way JupyterLab would, with the same environment
        nb = Path(m.group(1)) / "data_quality.ipynb"
        cmd = cmd.replace(m.group(0), f"jupyter nbconvert --to notebook --execute {nb} "
                                      f"--output-dir {tmp / 'lab-out'}")
    return cmd


def _run(cmd: str, cwd: Path, tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg"}
    env.pop("HIPSTATS_SOURCE", None)
    if cmd.startswith("make "):
        cwd = ROOT
    r = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f"README command failed ({r.returncode}): {cmd}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_console_and_cron_blocks_run(tmp_path, study_sources):
    work = tmp_path / "work"  # commands with relative paths (data/example, nightly) run here
    work.mkdir()
    (work / "data").mkdir()
    (work / "data" / "example").symlink_to(EXAMPLE, target_is_directory=True)
    ran = []
    for block in blocks("console"):
        for cmd in _commands(block):
            ran.append(cmd)
            _run(_place(cmd, tmp_path, study_sources), work, tmp_path)
    for block in blocks("cron"):
        for line in _commands(block):
            fields = line.split(None, 5)
            assert len(fields) == 6 and all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5]), line
            ran.append(fields[5])
            _run(_place(fields[5], tmp_path), work, tmp_path)
    # what the commands promise is there
    assert any(c.startswith("hipstats init") for c in ran) and any("-p screening.cutoff" in c for c in ran)
    assert {"/data/hipcohort-spss", "/data/hipcohort-stata", PG_PLACEHOLDER} <= {
        p for p in study_sources if any(p in c for c in ran)}
    for out in ("dir", "srv-reports", "make-reports"):
        assert (tmp_path / out / "latest" / "index.html").is_file(), out
    assert (work / "nightly" / "reports" / "latest" / "index.html").is_file()
    lab = tmp_path / "lab-out" / "data_quality.ipynb"
    assert lab.is_file() and "no problems were found" in lab.read_text()


def test_python_blocks_run(tmp_path):
    for block in blocks("python"):
        script = tmp_path / "readme_block.py"
        script.write_text(block, encoding="utf-8")
        r = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, f"README Python block failed:\n{block}\n{r.stderr[-3000:]}"


def test_yaml_blocks_are_what_hipstats_reads(tmp_path):
    from hipstats.report.params import list_notebooks, load_params_file, resolve_parameters
    from hipstats.report.project import read_config

    kinds = []
    for i, block in enumerate(blocks("yaml")):
        data = yaml.safe_load(block)
        f = tmp_path / f"block{i}.yaml"
        f.write_text(block, encoding="utf-8")
        if set(data) <= {"arms", "reference_arm", "source", "event_map"}:
            kinds.append("settings")
            assert read_config(f)["arms"]
            folder = tmp_path / f"cohort{i}"
            import hipstats as hs

            hs.simulate_cohort(n_participants=12, seed=1, arms=read_config(f)["arms"]).write(folder)
            (folder / "hipstats.yaml").write_text(block, encoding="utf-8")
            assert hs.validate(folder).ok
        else:
            kinds.append("params")
            per_nb = resolve_parameters([n for n in list_notebooks() if n.default], load_params_file(f))
            assert per_nb["screening"]["cutoff"] == 65.0, per_nb
    assert sorted(kinds) == ["params", "settings"]


def test_inline_python_call_in_the_readme_is_the_api():
    import hipstats as hs

    for call in re.findall(r"`(hs\.[a-z_]+)\(", README):
        assert callable(eval(call, {"hs": hs})), call  # noqa: S307 - names taken from our own README
    from hipstats.report.params import list_notebooks

    assert "power" in {n.name for n in list_notebooks()}
