"""hipstats installed anywhere: a wheel in a fresh virtual environment outside the repository.

The wheel is built from this checkout, installed with pip (dependencies from the package
registry, as a user would get them) into a temporary virtual environment, and its ``hipstats``
command makes the full report set from an empty working directory, with the notebooks that
ship inside the package. Slow (a build, an install and a report run); it runs in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env=None, timeout=1800):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} -> {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("install")
    wheels = base / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(ROOT)], cwd=base)
    wheel = next(wheels.glob("hipstats-*.whl"))
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=base)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
         cwd=base)
    return venv, wheel


def test_wheel_carries_the_notebooks_and_report_assets(installed):
    import zipfile

    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for nb in ("data_quality", "reliability", "pelvis", "outcomes", "screening", "loading_faults", "power"):
        assert f"hipstats/notebooks/{nb}.ipynb" in names
    assert "hipstats/report/assets/report.css" in names
    assert "hipstats/report/assets/templates/hipstats_report/index.html.j2" in names
    assert not any(n.startswith(("tests/", "data/", "benchmarks/")) for n in names)


def test_installed_hipstats_makes_the_full_report_set_from_an_empty_folder(installed, tmp_path):
    venv, _ = installed
    empty = tmp_path / "anywhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HIPSTATS_SOURCE", "VIRTUAL_ENV")}
    env["MPLBACKEND"] = "Agg"
    hipstats = str(venv / "bin" / "hipstats")
    # the package imported is the installed one, not this checkout
    where = _run([str(venv / "bin" / "python"), "-c", "import hipstats; print(hipstats.__file__)"], empty, env)
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    _run([hipstats, "simulate", "--out", "cohort", "--n", "60", "--seed", "5"], empty, env)
    r = _run([hipstats, "report", "cohort", "--out", "reports", "--quiet", "-p", "screening.n_boot=200"], empty, env)
    assert "report(s) written" in r.stdout
    manifest = json.loads((empty / "reports" / "latest" / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    assert [n["name"] for n in manifest["notebooks"]] == ["data_quality", "reliability", "pelvis", "outcomes",
                                                          "screening", "loading_faults"]
    assert all(n["source_notebook"].startswith(str(venv)) for n in manifest["notebooks"])
    assert (empty / "reports" / "latest" / "index.html").is_file()
    # nothing but the cohort and the reports appeared in the working folder
    assert sorted(p.name for p in empty.iterdir()) == ["cohort", "reports"]
    # a starter project from the installed package runs with its own copies of the notebooks
    _run([hipstats, "init", "project", "--source", str(empty / "cohort")], empty, env)
    _run([hipstats, "report", "--config", "hipstats.yaml", "--notebooks", "notebooks", "--params", "params.yaml",
          "--out", "reports", "--only", "data_quality", "--quiet"], empty / "project", env)
    assert (empty / "project" / "reports" / "latest" / "reports" / "data_quality.html").is_file()
