"""Limits on what one input may cost to read: bytes, columns, rows, characters per cell, sheet size.

A small hostile file must not take minutes or gigabytes: an .xlsx of 11 KB whose one cell
sits at ``XFD1048576``, a CSV whose header has a million columns, a zip that inflates a
thousandfold. Every reader checks :data:`LIMITS` before it parses, and a file over a limit is
one problem (rule ``limit``, exit 2) that names the limit and how to raise it: an
environment variable such as ``HIPSTATS_MAX_COLUMNS=5000``.

Examples
--------
>>> from hipstats.data.limits import limit, over_limit
>>> limit("columns")
1000
>>> over_limit("columns", 1_000_000, "the header")
'the header has 1,000,000 columns, more than the limit of 1,000 (raise it with the environment variable HIPSTATS_MAX_COLUMNS=<number> if the file is genuine)'
"""

from __future__ import annotations

import os

__all__ = ["LIMITS", "limit", "over_limit", "cut_value"]

#: name -> (default, environment variable, what is counted)
LIMITS: dict[str, tuple[int, str, str]] = {
    "file_bytes": (2_000_000_000, "HIPSTATS_MAX_FILE_BYTES", "bytes"),
    "columns": (1_000, "HIPSTATS_MAX_COLUMNS", "columns"),
    "rows": (20_000_000, "HIPSTATS_MAX_ROWS", "rows"),
    "cell_chars": (10_000, "HIPSTATS_MAX_CELL_CHARS", "characters in one cell"),
    "sheet_cells": (100_000_000, "HIPSTATS_MAX_SHEET_CELLS", "cells in its used range"),
    "unpacked_bytes": (4_000_000_000, "HIPSTATS_MAX_UNPACKED_BYTES", "bytes once unpacked"),
    "expansion": (200, "HIPSTATS_MAX_EXPANSION", "times its packed size once unpacked"),
}
#: Longest value echoed in a problem message (a longer one is cut and says how much was left out).
ECHO_CHARS = 200


def limit(name: str) -> int:
    """The limit ``name`` (its environment variable when set to a positive whole number, else the default)."""
    default, env, _ = LIMITS[name]
    raw = os.environ.get(env, "").strip().replace("_", "").replace(",", "")
    try:
        value = int(float(raw)) if raw else default
    except ValueError:
        return default
    return value if value > 0 else default


def over_limit(name: str, got: int, what: str) -> str:
    """The message for ``what`` (e.g. "the header") exceeding limit ``name`` with ``got``."""
    _, env, unit = LIMITS[name]
    return (f"{what} has {got:,} {unit}, more than the limit of {limit(name):,} (raise it with the "
            f"environment variable {env}=<number> if the file is genuine)")


def cut_value(value, n: int = ECHO_CHARS):
    """A cell value as echoed in a message: strings longer than ``n`` characters are cut.

    >>> cut_value("x" * 300)[-30:]
    'xxxxx... (100 more characters)'
    """
    if isinstance(value, str) and len(value) > n:
        return f"{value[:n]}... ({len(value) - n:,} more characters)"
    if isinstance(value, (bytes, bytearray)):
        return f"<binary value of {len(value):,} bytes>"
    return value
