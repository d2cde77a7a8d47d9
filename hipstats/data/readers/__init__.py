"""Readers: turn a source (a folder of tables, one table file, a long file, a REDCap export or an
SQL database) into raw tables with user-facing row numbers, before any rule is checked.

* :mod:`~hipstats.data.readers.files` -- CSV/TSV, Parquet and Excel files (:class:`RawTable`);
* :mod:`~hipstats.data.readers.redcap` -- REDCap exports (records x events);
* :mod:`~hipstats.data.readers.sql` -- SQL databases given as a SQLAlchemy URL;
* :mod:`~hipstats.data.readers.source` -- :func:`read_source`, which picks the reader.

Examples
--------
>>> from hipstats.data.readers import is_sql_url
>>> is_sql_url("sqlite:///cohort.db"), is_sql_url("data/example")
(True, False)
"""

from hipstats.data.readers.files import RawTable, read_table_file
from hipstats.data.readers.redcap import read_redcap
from hipstats.data.readers.source import read_source
from hipstats.data.readers.sql import is_sql_url, mask_url

__all__ = ["RawTable", "is_sql_url", "mask_url", "read_redcap", "read_source", "read_table_file"]
