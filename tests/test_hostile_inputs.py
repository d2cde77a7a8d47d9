"""Hostile input on the reader side (issue 17): identifiers however spelled, bounded cost, nothing
written at a source, and a problem table with exit 2 (never an internal error) for each bad input."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

import hipstats as hs
from hipstats.cli import main
from hipstats.data import identifiers
from hipstats.data.readers.sql import mask_url

VALID = Path(__file__).parent / "bad_inputs" / "_valid"


@pytest.fixture
def cohort(tmp_path) -> Path:
    for name in ("measurements.csv", "participants.csv", "sessions.csv"):
        shutil.copy(VALID / name, tmp_path / name)
    return tmp_path


def _files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _rules(folder) -> list[tuple]:
    return sorted((p.table, p.rule, p.row, p.column) for p in hs.validate(folder))


def _exit_2(folder, capsys) -> str:
    before = _files(Path(folder)) if Path(folder).is_dir() else None
    code = main(["validate", str(folder), "--max-rows", "0"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err and "internal error" not in (out + err).lower()
    if before is not None:
        assert _files(Path(folder)) == before
    return out + err


# ------------------------------------------------------------------------------ identifiers
HEADERS = ["FirstName", "LastName", "PatientName", "mobile_phone", "tel", "contact", "emailaddress", "MRN number",
           "nhs_no", "social_security_no", "geburtsdatum", "DOB (dd/mm/yyyy)", "postcode", "n\u0430me",
           "NAME", "Surname", "Vorname", "Téléphone", "Date de naissance", "zip", "Telefonnummer", "E-Mail-Adresse"]


@pytest.mark.parametrize("header", HEADERS)
def test_identifier_headers_are_refused_however_spelled(cohort, header, capsys):
    p = pd.read_csv(cohort / "participants.csv")
    p[header] = "x"
    p.to_csv(cohort / "participants.csv", index=False)
    assert ("participants", "identifier_column", None, header) in _rules(cohort)
    _exit_2(cohort, capsys)


def test_contract_columns_are_not_identifiers():
    names = [c.name for t in hs.schema.TABLES.values() for c in t.columns]
    names += ["redcap_event_name", "record_id", "notes", "site_name", "exercise_name"]
    assert [n for n in names if identifiers.is_identifier_header(n)] == []


def test_identifying_values_are_refused_and_never_echoed(cohort, capsys):
    p = pd.read_csv(cohort / "participants.csv")
    p["sport"] = ["football", "call jane.doe@example.org", "+44 7700 900123"]
    p.to_csv(cohort / "participants.csv", index=False)
    m = (cohort / "measurements.csv").read_text().replace(",R1,", ",rater.one@clinic.example,", 1)
    (cohort / "measurements.csv").write_text(m)
    rules = _rules(cohort)
    assert ("participants", "identifier_value", 3, "sport") in rules
    assert ("measurements", "identifier_value", 2, "rater") in rules
    out = _exit_2(cohort, capsys)
    for secret in ("jane.doe", "example.org", "7700", "rater.one"):
        assert secret not in out
    code = main(["validate", str(cohort), "--format", "csv"])
    assert code == 2 and "jane.doe" not in capsys.readouterr().out


def test_name_like_participant_ids_are_refused_but_numeric_codes_pass(cohort, capsys):
    for table in ("participants.csv", "measurements.csv", "sessions.csv"):
        text = (cohort / table).read_text().replace("P001", "123456789").replace("P003", "JOHN SMITH")
        (cohort / table).write_text(text)
    report = hs.validate(cohort)
    flagged = {(p.table, p.rule) for p in report}
    assert ("participants", "identifier_value") in flagged
    assert all("123456789" not in str(p.value) for p in report if p.rule == "identifier_value")
    out = _exit_2(cohort, capsys)
    assert main(["validate", str(cohort), "--format", "csv"]) == 2
    csv = capsys.readouterr().out
    assert "JOHN SMITH" not in out + csv and "withheld: person name" in csv


def test_redcap_identifier_flag_is_refused(cohort):
    from hipstats.data.readers import read_source
    from hipstats.data.validation import validate_tables

    raw, settings, label = read_source(cohort)
    raw["participants"].frame["site"] = "x"
    raw["participants"].identifier_fields = ["site"]
    _, report = validate_tables(raw, settings, source=label)
    assert [(p.rule, p.column) for p in report] == [("identifier_column", "site")]
    assert "data dictionary" in report.problems[0].message


# ------------------------------------------------------------------------------ sources are never written
def _sqlite(tmp_path, wal=False):
    import sqlite3

    db = tmp_path / "cohort.db"
    con = sqlite3.connect(db)
    if wal:
        con.execute("pragma journal_mode=wal")
    for name, table in hs.simulate_cohort(n_participants=12, seed=1).to_tables().items():
        table.to_sql(name, con, index=False)
    con.commit()
    con.close()
    return db


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite"])
def test_sqlite_is_read_only_whatever_the_driver(tmp_path, scheme, capsys):
    with pytest.raises(hs.SourceError, match="does not exist"):
        hs.validate(f"{scheme}:///{tmp_path}/missing.db")
    assert list(tmp_path.iterdir()) == []
    db = _sqlite(tmp_path, wal=True)
    before = _files(tmp_path)
    assert hs.validate(f"{scheme}:///{db}").ok
    assert _files(tmp_path) == before == {"cohort.db": before["cohort.db"]}  # no -wal, -shm, -journal


def test_sqlite_blob_cell_is_a_problem(tmp_path, capsys):
    import sqlite3

    db = _sqlite(tmp_path)
    con = sqlite3.connect(db)
    con.execute("update participants set site = ? where rowid = 2", (b"\x00\xffbinary",))
    con.commit()
    con.close()
    report = hs.validate(f"sqlite:///{db}")
    assert [(p.table, p.rule, p.row, p.column) for p in report] == [("participants", "type", 2, "site")]
    _exit_2(f"sqlite:///{db}", capsys)


def test_password_with_at_sign_is_fully_masked():
    url = "postgresql://ann:p@ss/w@rd@db.example:5432/cohort"
    assert mask_url(url) == "postgresql://ann:***@db.example:5432/cohort"
    from hipstats.report.manifest import mask_source

    assert "ss" not in mask_source(url).split("@")[0]


def test_validate_csv_neutralises_formulas(cohort, capsys):
    m = (cohort / "measurements.csv").read_text().replace(",goniometer,", ',"=HYPERLINK(""http://x.example"")",', 1)
    (cohort / "measurements.csv").write_text(m)
    assert main(["validate", str(cohort), "--format", "csv"]) == 2
    out = capsys.readouterr().out
    assert "'=HYPERLINK" in out and ',"=HYPERLINK' not in out


# ------------------------------------------------------------------------------ bounded cost
def test_a_million_columns_is_refused_before_parsing(cohort, capsys):
    header = ",".join(f"c{i}" for i in range(1_000_000))
    (cohort / "sessions.csv").write_text(header + "\n" + "1," * 999_999 + "1\n")
    rules = _rules(cohort)
    assert ("sessions", "limit", 1, None) in rules
    out = _exit_2(cohort, capsys)
    assert "HIPSTATS_MAX_COLUMNS" in out


def test_a_huge_cell_is_refused_and_cut(cohort, capsys):
    p = pd.read_csv(cohort / "participants.csv")
    p["sport"] = ["x" * 100_000, "football", "tennis"]
    p.to_csv(cohort / "participants.csv", index=False)
    assert ("participants", "limit", 2, "sport") in _rules(cohort)
    _exit_2(cohort, capsys)
    assert main(["validate", str(cohort), "--format", "csv"]) == 2
    csv = capsys.readouterr().out
    assert "x" * 300 not in csv and "HIPSTATS_MAX_CELL_CHARS" in csv and len(csv) < 2000


def _xlsx(path: Path, edit) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    for i, (name, df) in enumerate((n, pd.read_csv(VALID / f"{n}.csv")) for n in ("measurements", "participants")):
        ws = wb.active if i == 0 else wb.create_sheet()
        ws.title = name
        ws.append(list(df.columns))
        for row in df.itertuples(index=False):
            ws.append([None if pd.isna(v) else v for v in row])
    edit(wb)
    wb.save(path)
    return path


def test_xlsx_with_a_far_cell_is_refused_without_loading(tmp_path, capsys):
    f = _xlsx(tmp_path / "cohort.xlsx", lambda wb: wb["measurements"].cell(row=1048576, column=16384, value=1))
    assert f.stat().st_size < 50_000
    report = hs.validate(f)
    assert any(p.rule == "limit" and "HIPSTATS_MAX_COLUMNS" in p.message for p in report)
    _exit_2(f, capsys)


def test_xlsx_merged_header_error_values_and_uncached_formulas_are_reported(tmp_path, capsys):
    def edit(wb):
        ws = wb["participants"]
        ws.merge_cells("E1:F1")
        ws["E2"] = "=1/0"  # openpyxl saves formulas without a cached result
    f = _xlsx(tmp_path / "cohort.xlsx", edit)
    report = hs.validate(f)
    msgs = [(p.rule, p.row) for p in report]
    assert ("excel_header", 1) in msgs and ("type", 2) in msgs
    assert any("formula without a saved result" in p.message for p in report)
    _exit_2(f, capsys)


# ------------------------------------------------------------------------------ bad inputs: problem table, exit 2
def _header(cohort, table, old, new):
    lines = (cohort / table).read_text().splitlines()
    lines[0] = lines[0].replace(old, new, 1)
    (cohort / table).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("table,add,rule", [
    ("participants.csv", "ARM", "duplicate_column"),
    ("participants.csv", "age", "duplicate_column"),
    ("participants.csv", "arm", "duplicate_column"),
    ("measurements.csv", "Value ", "duplicate_column"),
])
def test_columns_naming_one_column_twice(cohort, capsys, table, add, rule):
    df = pd.read_csv(cohort / table)
    extra = df["arm"] if add in ("ARM", "arm") else (df["age_years"] if add == "age" else df["value"])
    text = (cohort / table).read_text().splitlines()
    text = [f"{line},{add}" if i == 0 else f"{line},{extra.iloc[i - 1]}" for i, line in enumerate(text)]
    (cohort / table).write_text("\n".join(text) + "\n")
    assert rule in [r for _, r, _, _ in _rules(cohort)]
    _exit_2(cohort, capsys)


def test_lookalike_header(cohort, capsys):
    _header(cohort, "measurements.csv", "value", "v\u0430lue")  # Cyrillic a
    rules = _rules(cohort)
    assert ("measurements", "lookalike_header", None, "v\u0430lue") in rules
    assert "U+0430" in _exit_2(cohort, capsys)


def test_utf16_without_bom(cohort, capsys):
    text = (cohort / "participants.csv").read_text()
    (cohort / "participants.csv").write_bytes(text.encode("utf-16-le"))
    assert ("participants", "encoding", None, None) in _rules(cohort)
    assert "UTF-16" in _exit_2(cohort, capsys)


def test_parquet_nested_values(cohort, capsys):
    p = pd.read_csv(cohort / "participants.csv")
    p["sport"] = [["a", "b"], ["c"], []]
    (cohort / "participants.csv").unlink()
    p.to_parquet(cohort / "participants.parquet")
    assert ("participants", "type", None, "sport") in _rules(cohort)
    _exit_2(cohort, capsys)


@pytest.mark.parametrize("yaml_text,message", [
    ("arms: 5\n", "'arms' must be a list"),
    ("arms: control\n", "'arms' must be a list"),
    ("arms: [control, stretching, loading]\nsite: 'M\xfcnchen'\n".encode("latin-1"), "not UTF-8"),
])
def test_bad_settings_file(cohort, capsys, yaml_text, message):
    f = cohort / "hipstats.yaml"
    f.write_bytes(yaml_text.encode() if isinstance(yaml_text, str) else yaml_text)
    assert message in _exit_2(cohort, capsys)


def test_unreadable_settings(cohort, capsys, monkeypatch):
    real = Path.read_bytes

    def deny(self):
        if self.name == "hipstats.yaml":
            raise PermissionError(13, "Permission denied")
        return real(self)

    (cohort / "hipstats.yaml").write_text("arms: [control, stretching, loading]\n")
    monkeypatch.setattr(Path, "read_bytes", deny)
    assert main(["validate", str(cohort)]) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and "Traceback" not in err


def test_header_with_trailing_tabs_keeps_the_comma(cohort):
    _header(cohort, "measurements.csv", "pelvis", "pelvis" + "\t" * 20)
    assert hs.validate(cohort).ok


def test_row_numbers_after_a_quoted_multiline_cell(cohort):
    lines = (cohort / "participants.csv").read_text().splitlines()
    lines[0] += ",sport"
    lines[1] += ',"plays\nfootball\non sundays"'
    lines[2] += ",tennis"
    lines[3] += ",yoga"
    (cohort / "participants.csv").write_text("\n".join(lines) + "\n")
    (cohort / "participants.csv").write_text((cohort / "participants.csv").read_text().replace("stretching", "pilates"))
    assert [(p.rule, p.row) for p in hs.validate(cohort)] == [("unknown_arm", 6)]  # the line the row starts on
