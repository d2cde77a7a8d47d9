"""PostgreSQL sources against a real server, and custom arms / settings for a database source.

The server is not started here: ``.ci/run`` starts one on 127.0.0.1 and exports its URL as
``HIPSTATS_TEST_POSTGRES`` (``bash .ci/postgres.sh`` does the same by hand). Without it the
PostgreSQL tests skip with that reason, except under ``CI=true``, where a missing or unreachable
server FAILS them. The settings tests at the end use SQLite and always run.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

import pandas as pd
import pytest

import hipstats as hs
from hipstats.cli import main
from hipstats.data.readers.sql import mask_url, open_database, sqlalchemy_url
from hipstats.errors import SourceError

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "example"
DSN_ENV = "HIPSTATS_TEST_POSTGRES"
ON_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
CUSTOM_ARMS = {"control": "usual_care", "stretching": "mobility", "loading": "hip_loading"}


def _no_server(reason: str):
    if ON_CI:
        pytest.fail(f"CI=true but {reason}: .ci/run must start PostgreSQL and export {DSN_ENV}")
    pytest.skip(f"{reason}; set {DSN_ENV}=postgresql://user:password@host:port/db "
                "(`bash .ci/postgres.sh` starts a throwaway server)")


@pytest.fixture(scope="module")
def server() -> str:
    dsn = os.environ.get(DSN_ENV, "").strip()
    if not dsn:
        _no_server(f"no PostgreSQL server ({DSN_ENV} is not set)")
    psycopg = pytest.importorskip("psycopg") if not ON_CI else __import__("psycopg")
    try:
        with psycopg.connect(dsn, connect_timeout=5) as con:
            con.execute("select 1")
    except Exception as err:  # noqa: BLE001
        _no_server(f"the PostgreSQL server at {mask_url(dsn)} does not answer "
                   f"({type(err).__name__})")
    return dsn


def _typed_tables(rename_arms: dict | None = None) -> dict[str, pd.DataFrame]:
    """The example CSV tables with the column types a database holds (DATE, DOUBLE, BOOLEAN, TEXT)."""
    out = {}
    for name, dates in (("measurements", ["visit_date"]), ("participants", []), ("sessions", ["date"])):
        t = pd.read_csv(EXAMPLE / f"{name}.csv", parse_dates=dates)
        for d in dates:
            t[d] = t[d].dt.date
        if name == "participants" and rename_arms:
            t["arm"] = t["arm"].map(rename_arms)
        out[name] = t
    return out


class _Database:
    """A database of its own on the test server, made from the admin URL and dropped afterwards."""

    def __init__(self, admin_url: str, tables: dict[str, pd.DataFrame]):
        import psycopg
        import sqlalchemy as sa

        self.admin_url = admin_url
        self.name = f"hipstats_test_{secrets.token_hex(4)}"
        with psycopg.connect(admin_url, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{self.name}"')
        base = admin_url.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"
        engine = sa.create_engine(sqlalchemy_url(self.url))
        with engine.begin() as conn:
            for name, table in tables.items():
                table.to_sql(name, conn, index=False)
        engine.dispose()

    def digest(self) -> dict:
        import psycopg

        with psycopg.connect(self.url) as con:
            names = [r[0] for r in con.execute(
                "select tablename from pg_tables where schemaname = 'public' order by 1")]
            return {n: con.execute(f'select count(*), md5(coalesce(string_agg(t::text, \'|\' order by t::text), \'\')) '
                                   f'from "{n}" t').fetchone() for n in names}

    def drop(self):
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def example_db(server):
    db = _Database(server, _typed_tables())
    yield db
    db.drop()


@pytest.fixture(scope="module")
def custom_arm_db(server):
    db = _Database(server, _typed_tables(CUSTOM_ARMS))
    yield db
    db.drop()


def _password(url: str) -> str:
    return url.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]


def _same_cohort(a: hs.Cohort, b: hs.Cohort) -> None:
    """The same rows (a database table has no row order, so both sides are sorted on every column)."""
    for name in ("measurements", "participants", "sessions"):
        ta, tb = a.to_tables()[name], b.to_tables()[name]
        assert list(ta.columns) == list(tb.columns), name
        cols = list(ta.columns)
        ta = ta.sort_values(cols, na_position="first", kind="stable").reset_index(drop=True)
        tb = tb.sort_values(cols, na_position="first", kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(ta, tb, check_dtype=False, check_exact=False, rtol=1e-12, atol=1e-12)


def _cli(args, capsys):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out + out.err


# --------------------------------------------------------------------------- against the server
def test_cohort_from_postgresql_equals_the_files(example_db):
    before = example_db.digest()
    assert set(before) == {"measurements", "participants", "sessions"}
    assert hs.validate(example_db.url).ok
    cohort = hs.load_cohort(example_db.url)
    _same_cohort(hs.load_cohort(EXAMPLE), cohort)
    assert example_db.digest() == before  # nothing written
    secret = _password(example_db.url)
    assert secret not in cohort.source and "***" in cohort.source
    assert all(secret not in f for f in cohort.files)


def test_the_source_is_read_in_a_read_only_transaction(example_db):
    import sqlalchemy as sa

    with open_database(example_db.url) as conn:
        assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
        with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
            conn.exec_driver_sql("CREATE TABLE intruder (x int)")
    assert "intruder" not in example_db.digest()


def test_wrong_password_and_missing_database_are_clear_errors_with_the_password_masked(example_db, capsys):
    secret = _password(example_db.url)
    wrong = example_db.url.replace(f":{secret}@", ":Wr0ng-S3cret@")
    with pytest.raises(SourceError) as info:
        hs.load_cohort(wrong)
    assert "Wr0ng-S3cret" not in str(info.value) and "***" in str(info.value)
    rc, text = _cli(["validate", wrong], capsys)
    assert rc == 2 and "Wr0ng-S3cret" not in text and "Traceback" not in text and "cannot read the database" in text
    missing = example_db.url.rsplit("/", 1)[0] + "/no_such_cohort"
    rc, text = _cli(["validate", missing], capsys)
    assert rc == 2 and "no_such_cohort" in text and secret not in text


def test_custom_arms_for_postgresql_from_arms_and_config(custom_arm_db, tmp_path, capsys):
    url = custom_arm_db.url
    rc, text = _cli(["validate", url, "--max-rows", "1"], capsys)
    assert rc == 2 and "unknown_arm" in text
    assert "--arms" in text and "--config" in text and "hipstats.yaml (arms" not in text
    rc, text = _cli(["validate", url, "--arms", "usual_care,mobility,hip_loading"], capsys)
    assert rc == 0, text
    cfg = tmp_path / "hipstats.yaml"
    cfg.write_text(f"source: {url}\narms: [usual_care, mobility, hip_loading]\nretest_visit: week_12\n")
    rc, text = _cli(["validate", "--config", cfg], capsys)
    assert rc == 0, text
    cohort = hs.load_cohort(url, config=cfg)
    assert cohort.arms == ["usual_care", "mobility", "hip_loading"] and cohort.retest_visit == "week_12"


@pytest.mark.slow
def test_report_from_postgresql_with_config_masks_the_password_everywhere(custom_arm_db, tmp_path, capsys):
    url, secret = custom_arm_db.url, _password(custom_arm_db.url)
    cfg = tmp_path / "hipstats.yaml"
    cfg.write_text(f"source: {url}\narms: [usual_care, mobility, hip_loading]\n")
    out = tmp_path / "reports"
    rc, text = _cli(["report", "--config", cfg, "--only", "data_quality", "--out", out, "--quiet"], capsys)
    assert rc == 0, text
    manifest = json.loads((out / "latest" / "manifest.json").read_text())
    assert manifest["cohort"]["arms"] == ["usual_care", "mobility", "hip_loading"]
    assert "***" in manifest["source"]
    leaked = [p for p in out.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not leaked and secret not in text
    rc, text = _cli(["report", url, "--arms", "usual_care,mobility,hip_loading", "--only", "data_quality",
                     "--out", tmp_path / "r2", "--quiet"], capsys)
    assert rc == 0, text


# --------------------------------------------------------------------------- no server needed
@pytest.fixture()
def custom_arm_sqlite(tmp_path):
    import sqlalchemy as sa

    db = tmp_path / "cohort.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        for name, table in _typed_tables(CUSTOM_ARMS).items():
            table.to_sql(name, conn, index=False)
    engine.dispose()
    return f"sqlite:///{db}"


def test_database_arm_advice_names_options_that_work(custom_arm_sqlite, tmp_path):
    report = hs.validate(custom_arm_sqlite)
    [msg] = {p.message.split(";", 1)[1] for p in report if p.rule == "unknown_arm"}
    assert "--arms" in msg and "--config" in msg and "hipstats.yaml" not in msg
    cfg = tmp_path / "settings.yaml"
    cfg.write_text("arms: [usual_care, hip_loading]\n")  # mobility forgotten
    report = hs.validate(custom_arm_sqlite, config=cfg)
    [msg] = {p.message for p in report if p.rule == "unknown_arm"}
    assert "mobility" in msg and str(cfg) in msg


def test_validate_config_gives_source_arms_and_view_settings(custom_arm_sqlite, tmp_path, capsys):
    cfg = tmp_path / "hipstats.yaml"
    cfg.write_text(f"source: {custom_arm_sqlite}\nreference_arm: usual_care\n"
                   "arms: [hip_loading, mobility, usual_care]\nscheduled_visits: [baseline, week_6, week_12]\n")
    rc, text = _cli(["validate", "--config", cfg], capsys)
    assert rc == 0, text
    cohort = hs.load_cohort(custom_arm_sqlite, config=cfg)
    assert cohort.reference_arm == "usual_care"
    assert cohort.scheduled_visits == ["baseline", "week_6", "week_12"]
    rc, text = _cli(["validate", "--config", tmp_path / "missing.yaml"], capsys)
    assert rc == 2 and "missing.yaml" in text and "Traceback" not in text
    rc, text = _cli(["validate"], capsys)
    assert rc == 2 and "--config" in text


def test_config_replaces_a_folders_own_settings(tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    for name, table in _typed_tables(CUSTOM_ARMS).items():
        table.to_csv(folder / f"{name}.csv", index=False)
    (folder / "hipstats.yaml").write_text("arms: [control, stretching, loading]\n")
    assert not hs.validate(folder).ok
    cfg = tmp_path / "elsewhere.yaml"
    cfg.write_text("arms: [usual_care, mobility, hip_loading]\n")
    assert hs.validate(folder, config=cfg).ok


def test_postgresql_without_psycopg_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(SourceError, match=r"hipstats\[postgres\]") as info:
        hs.load_cohort("postgresql://reader:Secret99@127.0.0.1:1/cohort")
    assert "Secret99" not in str(info.value)
