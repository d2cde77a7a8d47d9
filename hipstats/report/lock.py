"""An exclusive lock on a report output folder (``fcntl.flock``), so scheduled runs never clobber each other.

Examples
--------
>>> import tempfile
>>> from hipstats.report.lock import OutputLock
>>> folder = tempfile.mkdtemp()
>>> with OutputLock(folder):
...     pass
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import stat
from pathlib import Path

from hipstats.errors import ReportError

__all__ = ["OutputLock", "LOCK_NAME"]

LOCK_NAME = ".hipstats-report.lock"


class OutputLock:
    """Hold ``<folder>/.hipstats-report.lock`` exclusively for the life of a run.

    The lock is released by the operating system when the process ends, so a run that
    was killed never leaves a stale lock behind. The lock file is opened with
    ``O_NOFOLLOW``: a symbolic link, hard link or special file planted under its name is
    refused (:class:`~hipstats.errors.ReportError`), never written through. A second run on the same folder gets a
    :class:`~hipstats.errors.ReportError` naming the run that holds the lock.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl  # noqa: PLC0415  (POSIX only)

        flags = (os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0))
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ReportError(f"{self.path} is a symbolic link; hipstats does not write through it. "
                                  "Remove it and run again") from None
            raise ReportError(f"cannot create the lock file in {self.folder}: {exc.strerror}") from exc
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            what = "not a regular file" if not stat.S_ISREG(st.st_mode) else "a hard link to another file"
            raise ReportError(f"{self.path} is {what}; hipstats does not write through it. "
                              "Remove it and run again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
                info = json.loads(holder) if holder else {}
            except (OSError, ValueError):
                info = {}
            os.close(fd)
            who = (f" (pid {info.get('pid')}, run {info.get('run_id')}, started {info.get('started')})"
                   if info else "")
            raise ReportError(f"another hipstats report run is writing to {self.folder}{who}; "
                              "wait for it to finish or use another --out folder") from None
        info = {"pid": os.getpid(), "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        self._fd = fd
        self.note(info)

    def note(self, info: dict) -> None:
        """Write who holds the lock (shown to a second run)."""
        if self._fd is None:
            return
        data = json.dumps({"pid": os.getpid(), **info}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is not None:
            import fcntl  # noqa: PLC0415

            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
