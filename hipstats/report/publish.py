"""Publishing a report run in its output folder without following a planted link.

The output folder holds one folder per run and three pointers to the newest complete run:
``LATEST`` (a text file with its run id), ``latest`` (a symbolic link to its folder, when
the file system has them) and ``latest.html`` (a page that opens its index). Rules:

* Run ids are matched in full (:func:`check_run_id`): letters, digits, ``.``, ``_``, ``-``,
  no pointer name and no trailing newline.
* A pointer that exists but is not what hipstats writes (``latest`` as a folder or a
  regular file, ``LATEST`` or ``latest.html`` as a link or a folder) is an error
  (:func:`check_pointers`), found before any notebook runs, never left silently stale.
* Every file is written to a new temporary name (``O_CREAT | O_EXCL | O_NOFOLLOW``),
  flushed and renamed over its target (:func:`write_atomic`); a rename replaces a link
  itself, never the file it points to. A file is whole or absent, never half-written.
* :func:`publish` prepares all three pointers first and only then renames them into
  place, so a full disk leaves the previous pointers, all three agreeing, and no temporary
  files.
* :func:`clean_stale` removes hidden partial run folders left by a run that was killed
  (``SIGKILL``), recognised by the process id in their name being dead.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from hipstats.report.publish import check_run_id, publish, current_run
>>> out = Path(tempfile.mkdtemp())
>>> (out / "run-1").mkdir()
>>> publish(out, "run-1") in ("symlink", "file")
True
>>> current_run(out)
'run-1'
>>> check_run_id("latest")
Traceback (most recent call last):
...
hipstats.errors.ParameterError: --run-id 'latest' names one of the pointers of the output folder (LATEST, latest, latest.html); choose another
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from pathlib import Path

from hipstats.errors import ParameterError, ReportError

__all__ = ["check_run_id", "check_pointers", "write_atomic", "publish", "current_run", "clean_stale",
           "partial_name", "pid_alive", "POINTERS"]

#: The pointer names in an output folder (reserved: no run may be called so, in any letter case).
POINTERS = ("LATEST", "latest", "latest.html")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_PARTIAL = re.compile(r"\.(?P<rid>[A-Za-z0-9][A-Za-z0-9._-]{0,99})\.partial-(?P<pid>[0-9]{1,10})")
_TMP = re.compile(r"\.(?:LATEST|latest|latest\.html)\.tmp-(?P<pid>[0-9]{1,10})")
_RESERVED = {p.casefold() for p in POINTERS}


def check_run_id(run_id: str | None) -> None:
    """Raise :class:`ParameterError` unless ``run_id`` is a usable run folder name (None is fine).

    >>> check_run_id("nightly-1")
    >>> check_run_id("nightly\\n")
    Traceback (most recent call last):
    ...
    hipstats.errors.ParameterError: --run-id 'nightly\\n' must be 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit
    """
    if run_id is None:
        return
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        shown = repr(run_id)[1:-1] if isinstance(run_id, str) else repr(run_id)
        raise ParameterError(f"--run-id '{shown[:120]}' must be 1 to 100 letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit")
    if run_id.casefold() in _RESERVED or run_id.casefold().startswith("latest."):
        raise ParameterError(f"--run-id '{run_id}' names one of the pointers of the output folder "
                             f"({', '.join(POINTERS)}); choose another")


def partial_name(run_id: str, pid: int | None = None) -> str:
    """Name of the hidden folder a run is written to before it is renamed to ``run_id``."""
    return f".{run_id}.partial-{os.getpid() if pid is None else pid}"


def _kind(path: Path) -> str | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if stat.S_ISDIR(st.st_mode):
        return "folder"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "special file"


def check_pointers(out) -> None:
    """Raise :class:`ReportError` when a pointer in ``out`` is not what hipstats writes there.

    ``LATEST`` and ``latest.html`` must be regular files and ``latest`` a symbolic link
    (or absent); anything else was put there by someone else, and hipstats neither writes
    through it nor leaves it stale.
    """
    out = Path(out)
    wanted = {"LATEST": ("file",), "latest.html": ("file",), "latest": ("symlink",)}
    for name, ok in wanted.items():
        kind = _kind(out / name)
        if kind is not None and kind not in ok:
            raise ReportError(f"{out / name} is a {kind}, not the {' or '.join(ok)} hipstats keeps there as a "
                              "pointer to the newest run; move it away (hipstats neither writes through it "
                              "nor leaves it pointing at an old run)")


def write_atomic(path, data: str | bytes) -> Path:
    """Write a file whole or not at all: new temporary file (never through a link), fsync, rename.

    Raises
    ------
    OSError
        Disk full, no permission...; the temporary file is removed and ``path`` is unchanged.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    if os.path.lexists(tmp):
        os.unlink(tmp)  # left by a killed run of this same pid
    fd = os.open(tmp, flags, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _index_page(run_id: str) -> str:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="refresh" '
            f'content="0; url={run_id}/index.html"><title>Latest hipstats report</title></head>'
            f'<body><p>Latest report: <a href="{run_id}/index.html">{run_id}</a></p></body></html>\n')


def publish(out, run_id: str) -> str:
    """Point ``LATEST``, ``latest`` and ``latest.html`` in ``out`` at the run folder ``run_id``.

    All three are prepared under temporary names first and renamed into place only when all
    were written, so they never disagree and a failure (full disk) leaves the previous ones.

    Returns
    -------
    str
        ``"symlink"``, or ``"file"`` when the file system has no symbolic links (then only
        ``LATEST`` and ``latest.html`` point at the run).

    Raises
    ------
    ReportError
        A pointer is not what hipstats keeps there, or the pointers could not be written.
    """
    out = Path(out)
    check_run_id(run_id)
    check_pointers(out)
    if _kind(out / run_id) != "folder":
        raise ReportError(f"run folder {out / run_id} is missing or not a folder; nothing was published")
    pid = os.getpid()
    staged: list[tuple[Path, Path]] = []
    try:
        for name, data in (("LATEST", run_id + "\n"), ("latest.html", _index_page(run_id))):
            tmp = out / f".{name}.tmp-{pid}"
            write_atomic(tmp, data)
            staged.append((tmp, out / name))
        link_tmp = out / f".latest.tmp-{pid}"
        kind = "file"
        try:
            if os.path.lexists(link_tmp):
                os.unlink(link_tmp)
            os.symlink(run_id, link_tmp, target_is_directory=True)
            staged.insert(0, (link_tmp, out / "latest"))
            kind = "symlink"
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
        for tmp, target in staged:
            os.replace(tmp, target)
        return kind
    except OSError as exc:
        raise ReportError(f"could not point {out}/latest at run {run_id}: {exc.strerror or exc}; "
                          "the previous pointers are unchanged") from exc
    finally:
        for tmp, _ in staged:
            if os.path.lexists(tmp):
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def current_run(out) -> str | None:
    """The run id ``LATEST`` names when it is a regular file with a valid id and its folder exists."""
    out = Path(out)
    p = out / "LATEST"
    if _kind(p) != "file":
        return None
    try:
        with open(p, "rb") as fh:
            rid = fh.read(256).decode("utf-8").strip()
        check_run_id(rid)
    except (OSError, UnicodeDecodeError, ParameterError):
        return None
    return rid if _kind(out / rid) == "folder" else None


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(out) -> list[str]:
    """Remove hidden partial run folders and pointer temporaries whose process is dead.

    Call it while holding the output lock. Returns the names removed. A link is removed
    as a link, never followed.
    """
    out = Path(out)
    removed = []
    try:
        entries = list(os.scandir(out))
    except OSError:
        return removed
    for entry in entries:
        m = _PARTIAL.fullmatch(entry.name) or _TMP.fullmatch(entry.name)
        if not m or int(m.group("pid")) == os.getpid() or pid_alive(int(m.group("pid"))):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
    return removed
