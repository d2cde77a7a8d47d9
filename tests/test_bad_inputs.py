"""The corpus of bad inputs (tests/bad_inputs/*): each one reports exactly its problem,
through the Python API and the CLI, and nothing on disk changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import hipstats as hs
from hipstats.cli import main

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = sorted(p for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith("_"))


def snapshot(folder: Path) -> dict[str, tuple[int, str, int]]:
    """Every file under a folder: size, SHA-256 and modification time."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_size, hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns)
    return out


def expected(case: Path) -> list[tuple]:
    problems = json.loads((case / "expected.json").read_text())["problems"]
    return sorted((p["table"], p["rule"], p["row"], p["column"]) for p in problems)


def test_corpus_is_large_enough():
    assert len(CASES) >= 20


def test_valid_base_passes():
    assert hs.validate(CORPUS / "_valid").ok


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validate_reports_exact_problem(case):
    before = snapshot(case)
    report = hs.validate(case)
    got = sorted((p.table, p.rule, p.row, p.column) for p in report)
    assert got == expected(case), report.to_text()
    for p in report:  # every problem says where and why
        assert p.file and p.message and p.rule
    assert snapshot(case) == before


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_load_cohort_raises_with_same_report(case):
    with pytest.raises(hs.ValidationError) as info:
        hs.load_cohort(case)
    got = sorted((p.table, p.rule, p.row, p.column) for p in info.value.report)
    assert got == expected(case)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_prints_table_and_exits_2(case, capsys):
    before = snapshot(case)
    code = main(["validate", str(case), "--max-rows", "0"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in out + err
    for _, rule, _, _ in expected(case):
        assert rule in out
    assert snapshot(case) == before


def test_cli_csv_output_lists_problem_fields(capsys):
    code = main(["validate", str(CORPUS / "out_of_range"), "--format", "csv"])
    out = capsys.readouterr().out
    assert code == 2
    header, first = out.splitlines()[:2]
    assert header == "table,file,row,column,value,rule,message"
    assert "measurements" in first and ",2,value,95.0,range," in first


def test_all_problems_at_once(tmp_path):
    """Several broken rules in several tables are all reported in one pass."""
    import shutil

    for name in ("measurements.csv", "participants.csv", "sessions.csv"):
        shutil.copy(CORPUS / "_valid" / name, tmp_path / name)
    m = (tmp_path / "measurements.csv").read_text().splitlines()
    m[1] = m[1].replace(",35.0,", ",135.0,")
    m[3] = m[3].replace(",goniometer,", ",protractor,")
    (tmp_path / "measurements.csv").write_text("\n".join(m) + "\n")
    p = (tmp_path / "participants.csv").read_text().replace("stretching", "yoga")
    (tmp_path / "participants.csv").write_text(p)
    rules = sorted(pr.rule for pr in hs.validate(tmp_path))
    assert rules == ["category", "range", "unknown_arm"]


def test_missing_source_is_a_clear_error(tmp_path, capsys):
    code = main(["validate", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2 and "no such file or folder" in err and "Traceback" not in err
