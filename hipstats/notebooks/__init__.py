"""The report notebooks that ship with hipstats.

The ``*.ipynb`` files in this folder are package data: a ``pip install`` carries them, and
``hipstats report`` / :func:`hipstats.run_reports` use them unless ``--notebooks DIR`` (or
``notebooks_dir=``) names a folder of customised copies, such as the one
``hipstats init`` writes. They are generated from ``build_notebooks.py`` next to them
(``python hipstats/notebooks/build_notebooks.py``; ``power.ipynb`` is kept by hand).

A notebook finds its data through its ``source`` parameter; when that is empty it takes
the environment variable ``HIPSTATS_SOURCE`` (see :func:`hipstats.report.data.notebook_source`).

Examples
--------
>>> import tempfile
>>> from hipstats.notebooks import copy_notebooks, notebooks_dir
>>> (notebooks_dir() / "outcomes.ipynb").is_file()
True
>>> copied = copy_notebooks(tempfile.mkdtemp())
>>> sorted(p.name for p in copied)[:2]
['data_quality.ipynb', 'loading_faults.ipynb']
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["notebooks_dir", "notebook_paths", "copy_notebooks"]


def notebooks_dir() -> Path:
    """The folder of the bundled report notebooks (inside the installed package)."""
    return Path(__file__).resolve().parent


def notebook_paths() -> list[Path]:
    """The bundled ``*.ipynb`` files, sorted by name."""
    return sorted(p for p in notebooks_dir().glob("*.ipynb") if not p.name.startswith((".", "_")))


def copy_notebooks(dest, *, overwrite: bool = False) -> list[Path]:
    """Copy the bundled notebooks into ``dest`` (created if needed) to customise them.

    Parameters
    ----------
    dest : path-like
        Target folder.
    overwrite : bool
        Replace notebooks that already exist there (default: keep them and skip).

    Returns
    -------
    list of Path
        The notebooks written (existing ones that were kept are not listed).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for src in notebook_paths():
        target = dest / src.name
        if target.exists() and not overwrite:
            continue
        shutil.copyfile(src, target)
        written.append(target)
    return written
