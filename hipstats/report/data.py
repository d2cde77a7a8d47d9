"""Opening the cohort inside a report notebook, with a validated snapshot shared by a run.

A notebook calls :func:`open_cohort` with its ``source`` and ``as_of`` parameters. Run
on its own (JupyterLab, plain papermill) that is :func:`hipstats.load_cohort` followed by
:meth:`hipstats.Cohort.as_of`; an empty ``source`` takes the ``HIPSTATS_SOURCE``
environment variable (:func:`notebook_source`), so a notebook opened anywhere finds its data.
Under ``hipstats report`` the runner has already read and
validated the source once; it saves that cohort as a snapshot and names it in the
``HIPSTATS_REPORT_SNAPSHOT`` environment variable of the notebook kernels. The snapshot
is used when it was taken from the same source; when an input file no longer has the
SHA-256 recorded with it (the source changed mid-run) the notebook stops with a
:class:`~hipstats.errors.ReportError` instead of reading the changed file, and the runner
checks the hashes again before publishing, so a report never shows other data than the
manifest lists.

Examples
--------
>>> import hipstats as hs, tempfile
>>> from hipstats.report.data import open_cohort
>>> folder = tempfile.mkdtemp()
>>> _ = hs.simulate_cohort(n_participants=12, seed=3).write(folder)
>>> open_cohort(folder).n_participants
12
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

__all__ = ["open_cohort", "resolve_source", "notebook_source", "write_snapshot", "read_snapshot", "SNAPSHOT_ENV",
           "SOURCE_ENV", "validation_report"]

SNAPSHOT_ENV = "HIPSTATS_REPORT_SNAPSHOT"
#: Environment variable naming the cohort when a notebook's ``source`` parameter is empty.
SOURCE_ENV = "HIPSTATS_SOURCE"


def notebook_source(source=None) -> str:
    """The cohort a notebook reads: its ``source`` parameter, else ``$HIPSTATS_SOURCE``.

    Raises
    ------
    hipstats.SourceError
        When neither is set, with a message saying how to point the notebook at data.

    Examples
    --------
    >>> import os
    >>> notebook_source("data/example")
    'data/example'
    >>> os.environ.pop("HIPSTATS_SOURCE", None) and None
    >>> notebook_source("")
    Traceback (most recent call last):
    ...
    hipstats.errors.SourceError: this notebook has no data source. Set its 'source' parameter ...
    """
    s = "" if source is None else str(source).strip()
    if s:
        return s
    env = os.environ.get(SOURCE_ENV, "").strip()
    if env:
        return env
    from hipstats.errors import SourceError  # noqa: PLC0415

    raise SourceError(
        "this notebook has no data source. Set its 'source' parameter (first code cell) to a cohort "
        "folder, file, REDCap export or database URL, or set the environment variable "
        f"{SOURCE_ENV} before starting Jupyter ({SOURCE_ENV}=/path/to/cohort jupyter lab), "
        "or run it with: hipstats report SOURCE")


def resolve_source(source, base=None) -> str:
    """An absolute path for file sources (relative to ``base`` or the working folder); URLs unchanged."""
    s = str(source)
    if "://" in s:
        return s
    p = Path(s).expanduser()
    if not p.is_absolute():
        p = Path(base or os.getcwd()) / p
    return str(p.resolve())


def write_snapshot(path, source: str, cohort, report, files: list[dict[str, Any]]) -> Path:
    """Save a validated cohort for the notebooks of one run (pickle, in the run's private folder).

    The runner puts it in :func:`hipstats.report.kernels.private_folder` (mode 0700, outside
    the output, removed at the end of the run).
    """
    path = Path(path)
    with open(path, "wb") as fh:
        pickle.dump({"version": 1, "source": source, "files": files, "cohort": cohort, "report": report},
                    fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def read_snapshot(source: str) -> dict[str, Any] | None:
    """The run's snapshot for ``source`` (None outside a report run or for another source).

    Raises
    ------
    hipstats.ReportError
        An input file changed since the runner validated it.
    """
    path = os.environ.get(SNAPSHOT_ENV)
    if not path or not Path(path).is_file():
        return None
    with open(path, "rb") as fh:
        snap = pickle.load(fh)  # noqa: S301 - written by this run's own runner into its private folder
    if snap.get("source") != source:
        return None
    from hipstats.report.manifest import sha256_file  # noqa: PLC0415

    changed = []
    for f in snap.get("files", []):
        p = Path(f["path"])
        if not p.is_file() or p.stat().st_size != f["bytes"] or sha256_file(p) != f["sha256"]:
            changed.append(p.name)
    if changed:
        from hipstats.errors import ReportError  # noqa: PLC0415

        raise ReportError(f"the source changed during the report run ({', '.join(changed)} no longer has the "
                          "SHA-256 recorded in the manifest); the run reports only on the data it validated. "
                          "Run the report again when the data are no longer being written")
    return snap


def open_cohort(source, as_of: str | None = "", *, base=None, primary_rater: str | None = "",
                retest_visit: str | None = "", scheduled_visits: str | None = ""):
    """Load (or take from the run's snapshot) the validated cohort, restricted to ``as_of``.

    Parameters
    ----------
    source : str or path-like
        Cohort source; a relative path is taken relative to ``base`` (default the working
        folder, which is the notebook's folder in JupyterLab). Empty: ``$HIPSTATS_SOURCE``.
    primary_rater, retest_visit : str, optional
        Declare the primary rater / the retest visit ("" leaves them to ``hipstats.yaml`` or
        the rules of :mod:`hipstats.cohort.views`).
    scheduled_visits : str, optional
        Comma-separated scheduled visit labels ("" as above).
    as_of : str, optional
        ISO date; keep what was recorded on or before it ("" or None keeps everything).

    Returns
    -------
    hipstats.Cohort

    Raises
    ------
    hipstats.ValidationError, hipstats.SourceError, hipstats.ParameterError
    """
    from hipstats.cohort.cohort import load_cohort  # noqa: PLC0415

    src = resolve_source(notebook_source(source), base)
    snap = read_snapshot(src)
    cohort = snap["cohort"] if snap else load_cohort(src)
    if as_of:
        cohort = cohort.as_of(as_of)
    visits = [v.strip() for v in str(scheduled_visits or "").split(",") if v.strip()]
    if primary_rater or retest_visit or visits:  # report parameters win over hipstats.yaml
        cohort = cohort.with_settings(primary_rater=primary_rater or None, retest_visit=retest_visit or None,
                                      scheduled_visits=visits or None)
    return cohort


def validation_report(source, *, base=None):
    """The :class:`~hipstats.ValidationReport` of a source (from the run's snapshot when there is one)."""
    src = resolve_source(notebook_source(source), base)
    snap = read_snapshot(src)
    if snap is not None and snap.get("report") is not None:
        return snap["report"]
    from hipstats.data.validation import validate  # noqa: PLC0415

    return validate(src)
