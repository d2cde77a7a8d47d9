"""Progress of long simulation runs, in a terminal and in a notebook.

A terminal gets a rich progress bar on standard error (rich is already the command line's
table library). A Jupyter notebook gets one line of text, updated in place through IPython's
display handle and removed when the run ends, so an executed notebook or a report page keeps
no progress output. Nothing is shown when standard error is not a terminal and no notebook
kernel runs (logs, cron jobs, pipes), or with ``progress=False`` (``--quiet``).

Examples
--------
>>> with Progress(10, "simulating", enabled=False) as bar:
...     bar.advance(10)
>>> bar.done
10
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress", "progress_target"]


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:  # noqa: BLE001 - no IPython shell
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def progress_target(enabled: bool | None) -> str | None:
    """Where progress goes: ``"terminal"``, ``"notebook"`` or None (nowhere).

    ``enabled=None`` decides from the environment (a terminal on standard error, or a
    notebook kernel); ``False`` turns progress off; ``True`` shows it wherever possible.
    """
    if enabled is False:
        return None
    if _in_notebook():
        return "notebook"
    stream = sys.stderr
    if enabled or (stream is not None and hasattr(stream, "isatty") and stream.isatty()):
        return "terminal"
    return None


class Progress:
    """Context manager counting finished work units (simulated trials).

    Parameters
    ----------
    total : int
        Units of the whole run.
    description : str
        Shown before the bar.
    enabled : bool or None
        See :func:`progress_target`.
    """

    def __init__(self, total: int, description: str = "simulating trials",
                 enabled: bool | None = None):
        self.total, self.description, self.done = int(total), description, 0
        self.target = progress_target(enabled)
        self._bar = self._task = self._handle = None
        self._t0 = self._last = 0.0

    def __enter__(self) -> Progress:
        self._t0 = self._last = time.monotonic()
        if self.target == "terminal":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     TimeRemainingColumn(), console=Console(stderr=True),
                                     transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        elif self.target == "notebook":
            from IPython.display import display

            self._handle = display(self._text(), display_id=True)
        return self

    def _text(self):
        from IPython.display import Pretty

        elapsed = time.monotonic() - self._t0
        share = self.done / self.total if self.total else 1.0
        return Pretty(f"{self.description}: {self.done:,} of {self.total:,} ({share:.0%}), "
                      f"{elapsed:.0f} s")

    def advance(self, n: int = 1) -> None:
        """Count *n* more finished units."""
        self.done += int(n)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        elif self._handle is not None:
            now = time.monotonic()
            if now - self._last > 0.5 or self.done >= self.total:
                self._last = now
                self._handle.update(self._text())

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self._handle is not None:
            from IPython.display import Pretty

            self._handle.update(Pretty(""))
