"""Provenance for a report run: input files with SHA-256, package versions, git commit.

Examples
--------
>>> from hipstats.report.manifest import package_versions
>>> "hipstats" in package_versions()
True
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["sha256_file", "input_files", "package_versions", "git_info", "mask_source"]

PACKAGES = ("hipstats", "numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn", "papermill",
            "nbconvert", "nbformat", "nbclient", "ipykernel", "jupyter_client", "pyyaml", "rich", "click")


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def mask_source(source: str) -> str:
    """A source label safe to write down: any password in a database URL is masked (also one with ``@``).

    >>> mask_source("postgresql://ann:p@ss@db/cohort")
    'postgresql://ann:***@db/cohort'
    """
    from hipstats.data.readers.sql import mask_url  # noqa: PLC0415

    return mask_url(str(source))


def input_files(files, source=None) -> list[dict[str, Any]]:
    """Path, size and SHA-256 of every input file read (plus settings next to a folder source)."""
    paths = [Path(f) for f in files if f and Path(f).is_file()]
    if source is not None and Path(str(source)).is_dir():
        for extra in ("hipstats.yaml", "hipstats.yml"):
            p = Path(str(source)) / extra
            if p.is_file():
                paths.append(p)
    seen, out = set(), []
    for p in paths:
        rp = p.resolve()
        if rp in seen:
            continue
        seen.add(rp)
        out.append({"path": str(rp), "bytes": rp.stat().st_size, "sha256": sha256_file(rp)})
    return out


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a report depends on."""
    out = {"python": platform.python_version(), "python_executable": sys.executable}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_info(path) -> dict[str, Any] | None:
    """Commit, branch and dirty flag of the git repository holding ``path`` (None outside git)."""
    try:
        cwd = str(Path(path).resolve())
        run = lambda *a: subprocess.run(["git", *a], cwd=cwd, capture_output=True, text=True,  # noqa: E731
                                         timeout=10, check=True).stdout.strip()
        commit = run("rev-parse", "HEAD")
        branch = run("rev-parse", "--abbrev-ref", "HEAD")
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "branch": branch, "dirty": dirty}
