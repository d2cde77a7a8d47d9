"""Read the measurements, participants and sessions tables of an SQL database given as a
SQLAlchemy URL; passwords are masked in every message.

Nothing is ever written: SQLite files are opened read-only (never created), and a PostgreSQL
database is read inside a READ ONLY transaction (:func:`open_database`), so even a login with
write rights cannot change the source through hipstats. ``postgresql://`` and ``postgres://``
URLs without a driver are read with psycopg 3 (``pip install 'hipstats[postgres]'``).

Examples
--------
>>> from hipstats.data.readers.sql import is_sql_url, mask_url
>>> is_sql_url("postgresql://u:secret@db/cohort"), mask_url("postgresql://u:secret@db/cohort")
(True, 'postgresql://u:***@db/cohort')
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hipstats.data.problems import ROW
from hipstats.data.readers.files import REQUIRED_TABLES, RawTable, TABLE_NAMES, source_problem
from hipstats.errors import SourceError

__all__ = ["is_sql_url", "mask_url", "open_database", "read_sql", "sqlalchemy_url"]


def is_sql_url(source: Any) -> bool:
    """True for strings that look like SQLAlchemy URLs (``dialect[+driver]://...``)."""
    return isinstance(source, str) and bool(re.match(r"^[a-z][a-z0-9+]*://", source))


def mask_url(url: str) -> str:
    """Hide a password in a database URL for messages and manifests, even one holding ``@`` or ``/``.

    The user information ends at the last ``@`` of the URL; a ``password=`` query value is hidden too.

    >>> mask_url("postgresql://ann:p@ss/w@rd@db.example:5432/cohort?sslmode=require&password=x")
    'postgresql://ann:***@db.example:5432/cohort?sslmode=require&password=***'
    """
    url = str(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        rest = rest[:at].split(":", 1)[0] + ":***" + rest[at:]
    rest = re.sub(r"(?i)([?&](?:password|pwd|pass)=)[^&]*", r"\1***", rest)
    return f"{scheme}://{rest}"


def _password(url: str) -> str | None:
    rest = str(url).partition("://")[2]
    at = rest.rfind("@")
    return rest[:at].split(":", 1)[1] if at >= 0 and ":" in rest[:at] else None


def _sqlite_engine(url: str, shown: str):
    """A read-only engine for any SQLite URL spelling (``sqlite://``, ``sqlite+pysqlite://``...), or None.

    The file must exist (it is never created) and is opened ``mode=ro&immutable=1``: SQLite writes
    nothing beside it, no ``-wal``, ``-shm`` or ``-journal`` file, whatever the journal mode. When
    another program holds the database open in WAL mode (its ``-wal`` file exists) it is opened
    ``mode=ro`` so that the log's rows are read; the side files are that program's.
    """
    import sqlite3  # noqa: PLC0415
    from urllib.parse import quote  # noqa: PLC0415

    import sqlalchemy as sa  # noqa: PLC0415

    try:
        parsed = sa.engine.make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database.startswith("file:"):
        database = database[5:].split("?", 1)[0]
    if database in ("", ":memory:"):
        raise SourceError(f"{shown}: names no SQLite file (an in-memory database holds no cohort)")
    path = Path(database).expanduser()
    if not path.is_file():
        raise SourceError(f"{shown}: SQLite file '{path}' does not exist (it is not created)")
    path = path.resolve()
    # immutable=1 makes SQLite create no side file; it would also skip a write-ahead log still in use,
    # so a database with a live -wal file (another program has it open) is read with mode=ro alone
    live_wal = path.with_name(path.name + "-wal").exists()
    uri = f"file:{quote(str(path))}?mode=ro" + ("" if live_wal else "&immutable=1")

    def connect():
        con = sqlite3.connect(uri, uri=True)
        con.text_factory = _text_or_bytes  # a BLOB in a TEXT column becomes a problem, not a crash
        return con

    return sa.create_engine("sqlite://", creator=connect)


def _text_or_bytes(raw: bytes):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return bytes(raw)


def _binary_cells(df: pd.DataFrame, table: str, label: str) -> list:
    """Problems for BLOB cells (bytes), which are replaced by missing values; nothing is decoded."""
    problems = []
    for name in df.columns:
        if df[name].dtype != object:
            continue
        is_bytes = df[name].map(lambda v: isinstance(v, (bytes, bytearray, memoryview)))
        if is_bytes.any():
            first = int(np.flatnonzero(is_bytes.to_numpy())[0])
            n = int(is_bytes.sum())
            problems.append(source_problem(
                table, label, "type", f"column '{name}' holds {n} binary (BLOB) value{'s' if n != 1 else ''}, "
                "first on this row; store text or numbers", row=first + 1, column=str(name),
                value=f"<binary value of {len(bytes(df[name].iloc[first])):,} bytes>"))
            df[name] = df[name].where(~is_bytes, None)
    return problems


def sqlalchemy_url(url: str) -> str:
    """The URL SQLAlchemy opens: PostgreSQL without a driver goes to psycopg 3 (not psycopg2).

    >>> sqlalchemy_url("postgresql://reader@db/hip"), sqlalchemy_url("postgres://db/hip")
    ('postgresql+psycopg://reader@db/hip', 'postgresql+psycopg://db/hip')
    >>> sqlalchemy_url("sqlite:///cohort.db")
    'sqlite:///cohort.db'
    """
    scheme, sep, rest = str(url).partition("://")
    if sep and scheme.lower() in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return str(url)


def _server_engine(url: str, shown: str):
    import sqlalchemy as sa  # noqa: PLC0415

    target = sqlalchemy_url(url)
    if target.startswith("postgresql+psycopg://"):
        try:
            import psycopg  # noqa: F401, PLC0415
        except ImportError:
            raise SourceError(f"{shown}: reading PostgreSQL needs psycopg; install it with "
                              "pip install 'hipstats[postgres]'") from None
        parsed = sa.engine.make_url(target)
        # a server that does not answer is an error after 10 s, not a report job hanging for ever
        args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
        return sa.create_engine(target, connect_args=args)
    return sa.create_engine(target)


@contextlib.contextmanager
def open_database(url: str):
    """A read-only SQLAlchemy connection to the database at ``url`` (closed and disposed after).

    SQLite: the file opened ``mode=ro`` (it must exist). PostgreSQL: the connection's
    transaction is READ ONLY before the first query, and rolled back at the end. Errors
    (server down, wrong password, missing driver) are :class:`~hipstats.errors.SourceError`
    with any password masked.
    """
    shown = mask_url(url)
    engine = None
    try:
        engine = _sqlite_engine(url, shown) or _server_engine(url, shown)
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield conn
            conn.rollback()
    except SourceError:
        raise
    except Exception as err:
        text = f"{type(err).__name__}: {err}"
        secret = _password(url)
        for piece in sorted({secret, *(secret or "").replace("/", "@").split("@")} - {None, ""}, key=len, reverse=True):
            if len(piece) >= 2:
                text = text.replace(piece, "***")
        raise SourceError(f"{shown}: cannot read the database ({text[:500]})") from None
    finally:
        if engine is not None:
            engine.dispose()


# --------------------------------------------------------------------------- SQL
def read_sql(url: str, tables: dict | None) -> dict[str, RawTable]:
    """Read the contract's tables from the database at ``url`` (``tables`` maps a table to
    another name in the database) into raw tables with record numbers as rows."""
    import sqlalchemy as sa

    names = {t: t for t in TABLE_NAMES}
    names.update(tables or {})
    shown = mask_url(url)
    out: dict[str, RawTable] = {}
    with open_database(url) as conn:
        inspector = sa.inspect(conn)
        present = set(inspector.get_table_names())
        for table, sql_name in names.items():
            label = f"{shown}#{sql_name}"
            if sql_name not in present:
                if table in REQUIRED_TABLES:
                    out[table] = RawTable(None, label, [source_problem(
                        table, label, "missing_table",
                        f"table '{sql_name}' not found in the database (tables: {', '.join(sorted(present)) or 'none'})")])
                continue
            try:
                df = pd.read_sql_table(sql_name, conn)
            except UnicodeDecodeError:  # a BLOB among text: read the cells as they are
                result = conn.execute(sa.select(sa.text("*")).select_from(sa.table(sql_name)))
                keys, rows = list(result.keys()), result.fetchall()
                df = pd.DataFrame({k: pd.Series([r[i] for r in rows], dtype=object) for i, k in enumerate(keys)})
            if df.empty:
                out[table] = RawTable(None, label, [source_problem(table, label, "empty_file", "table has no rows")])
                continue
            problems = _binary_cells(df, table, label)
            df.insert(0, ROW, np.arange(1, len(df) + 1))
            out[table] = RawTable(df, label, problems)
    return out
