"""Faults of the machine rather than the data (issue 17): a source folder or file that cannot be read.

The tests run as root, for whom permission bits do not stop a read, so the refusal is simulated
where the operating system would give it: the listing of one folder or the reading of one file
raises ``PermissionError`` (errno 13), exactly as ``os.scandir``/``open`` do for another user.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

import hipstats as hs
from hipstats.cli import main

VALID = Path(__file__).parent / "bad_inputs" / "_valid"


@pytest.fixture
def cohort(tmp_path) -> Path:
    folder = tmp_path / "cohort"
    shutil.copytree(VALID, folder)
    return folder


def _deny(monkeypatch, method: str, target: Path) -> None:
    """``Path.<method>`` raises EACCES for ``target`` only (everything else reads as usual)."""
    original = getattr(Path, method)

    def denied(self, *args, **kwargs):
        if Path(self).resolve() == target.resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, method, denied)


def test_unreadable_folder_is_a_source_error(cohort, monkeypatch):
    _deny(monkeypatch, "iterdir", cohort)
    with pytest.raises(hs.SourceError) as info:
        hs.validate(cohort)
    assert str(cohort) in str(info.value) and "cannot be read" in str(info.value)
    assert "Permission denied" in str(info.value)


@pytest.mark.parametrize("command", [["validate"], ["report", "--only", "data_quality", "--quiet"]])
def test_unreadable_folder_exits_2_without_traceback(cohort, monkeypatch, capsys, tmp_path, command):
    _deny(monkeypatch, "iterdir", cohort)
    argv = [command[0], str(cohort), *command[1:]]
    if command[0] == "report":
        argv += ["--out", str(tmp_path / "out")]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert str(cohort) in err and "cannot be read" in err
    assert "Traceback" not in out + err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unreadable_table_file_is_a_problem_naming_the_file(cohort, monkeypatch, capsys):
    target = cohort / "measurements.csv"
    _deny(monkeypatch, "read_bytes", target)
    report = hs.validate(cohort)
    (p,) = [p for p in report if p.table == "measurements"]
    assert p.rule == "unreadable" and p.file == str(target) and "Permission denied" in p.message
    code = main(["validate", str(cohort)])
    out, err = capsys.readouterr()
    assert code == 2 and "unreadable" in out and "Traceback" not in out + err


def test_unreadable_single_file_source_exits_2(cohort, monkeypatch, capsys):
    target = cohort / "measurements.csv"
    _deny(monkeypatch, "read_bytes", target)
    code = main(["validate", str(target)])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in out + err
    assert "measurements.csv" in out + err and "Permission denied" in out + err


def test_unreadable_settings_file_is_a_source_error(cohort, monkeypatch, capsys):
    settings = cohort / "hipstats.yaml"
    settings.write_text("arms: [control, stretching, loading]\n")
    _deny(monkeypatch, "read_bytes", settings)
    code = main(["validate", str(cohort)])
    err = capsys.readouterr().err
    assert code == 2 and str(settings) in err and "cannot be read" in err and "Traceback" not in err
