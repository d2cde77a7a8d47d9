"""Read the measurements, participants and sessions tables of an SQL database given as a
SQLAlchemy URL (SQLite opened read-only); passwords are masked in every message.

Examples
--------
>>> from hipstats.data.readers.sql import is_sql_url, mask_url
>>> is_sql_url("postgresql://u:secret@db/cohort"), mask_url("postgresql://u:secret@db/cohort")
(True, 'postgresql://u:***@db/cohort')
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hipstats.data.problems import ROW
from hipstats.data.readers.files import REQUIRED_TABLES, RawTable, TABLE_NAMES, source_problem
from hipstats.errors import SourceError

__all__ = ["is_sql_url", "mask_url", "read_sql"]


def is_sql_url(source: Any) -> bool:
    """True for strings that look like SQLAlchemy URLs (``dialect[+driver]://...``)."""
    return isinstance(source, str) and bool(re.match(r"^[a-z][a-z0-9+]*://", source))


def mask_url(url: str) -> str:
    """Hide a password in a database URL for messages and manifests."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


# --------------------------------------------------------------------------- SQL
def read_sql(url: str, tables: dict | None) -> dict[str, RawTable]:
    """Read the contract's tables from the database at ``url`` (``tables`` maps a table to
    another name in the database) into raw tables with record numbers as rows."""
    import sqlalchemy as sa

    names = {t: t for t in TABLE_NAMES}
    names.update(tables or {})
    shown = mask_url(url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        path = Path(url[len("sqlite:///"):].split("?", 1)[0])
        if not path.is_file():
            raise SourceError(f"{shown}: SQLite file '{path}' does not exist (it is not created)")
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            present = set(inspector.get_table_names())
            out: dict[str, RawTable] = {}
            for table, sql_name in names.items():
                label = f"{shown}#{sql_name}"
                if sql_name not in present:
                    if table in REQUIRED_TABLES:
                        out[table] = RawTable(None, label, [source_problem(
                            table, label, "missing_table",
                            f"table '{sql_name}' not found in the database (tables: {', '.join(sorted(present)) or 'none'})")])
                    continue
                df = pd.read_sql_table(sql_name, conn)
                if df.empty:
                    out[table] = RawTable(None, label, [source_problem(table, label, "empty_file", "table has no rows")])
                    continue
                df.insert(0, ROW, np.arange(1, len(df) + 1))
                out[table] = RawTable(df, label)
    except SourceError:
        raise
    except Exception as err:
        raise SourceError(f"{shown}: cannot read the database ({type(err).__name__}: {err})") from None
    finally:
        try:
            engine.dispose()
        except Exception:
            pass
    return out
