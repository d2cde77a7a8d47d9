"""Notebook kernels for a report run: this environment's Python, started ahead of time.

A report notebook spends most of its time on a fixed cost that has nothing to do with the
data: starting an IPython kernel and importing pandas, matplotlib, statsmodels and hipstats
into it. While the runner reads and validates the source (one core busy, the other idle
on a two-core machine), each worker process of the run starts its first kernel and has it
import those modules (:data:`KERNEL_PRELOAD`), so the first notebook of every worker starts
on a warm kernel. Later notebooks get a fresh kernel each (no state is shared between
notebooks). Kernels are shut down by the worker that started them, together with the kernel
clients that talked to them; one that was started and never used is shut down when its
worker exits. A worker whose runner disappears (killed, not stopped) stops its kernels and
exits; a worker sent SIGTERM stops its kernels first; and an IPython kernel also exits on
its own when its parent process dies.

The kernel is always ``sys.executable -m ipykernel_launcher`` (a kernelspec written into the
run's private folder), never whatever ``python3`` kernel happens to be installed.

Examples
--------
>>> from hipstats.report.kernels import kernel_argv
>>> kernel_argv()[1:3]
['-m', 'ipykernel_launcher']
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import multiprocessing.util
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from hipstats.report.publish import pid_alive

__all__ = ["KERNEL_PRELOAD", "KERNEL_ENV", "kernel_argv", "write_kernelspec", "private_folder", "skip_iri_format_checker",
           "init_worker", "take_kernel", "start_kernel", "stop_kernel", "worker_context"]

#: Modules a kernel started ahead of time imports before its notebook arrives (most report
#: notebooks need all of them; the ones that do not lose nothing, the import happens while
#: the machine would otherwise wait for the validation of the source).
KERNEL_PRELOAD = ("hipstats.report", "hipstats.plots", "matplotlib.pyplot", "seaborn", "statsmodels.api")

#: Environment of every report kernel: figures must come back to the notebook as images,
#: whatever backend the caller set (cron jobs often set ``MPLBACKEND=Agg``); no debugger
#: warning about frozen modules.
KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def kernel_argv() -> list[str]:
    """The kernel command: this interpreter, quiet, without a command history database."""
    return [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
            "--IPKernelApp.log_level=ERROR", "--HistoryManager.enabled=False"]


def write_kernelspec(folder) -> tuple[str, str]:
    """Write a kernelspec for :func:`kernel_argv` under ``folder/kernels``.

    Returns
    -------
    name, jupyter_path : str, str
        The kernel name and the folder to put on ``JUPYTER_PATH`` so that Jupyter finds it.
    """
    folder = Path(folder)
    name = f"hipstats-{uuid.uuid4().hex[:10]}"
    kdir = folder / "kernels" / name
    kdir.mkdir(parents=True)
    spec = {"argv": kernel_argv(), "display_name": f"hipstats ({sys.executable})", "language": "python",
            "metadata": {"debugger": False}}
    (kdir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return name, str(folder)


_PRIVATE_PREFIX = "hipstats-report-"


def private_folder() -> Path:
    """A new private temporary folder for one run (kernelspec, snapshot), named after this process.

    Folders of earlier runs whose process no longer exists (a runner killed with SIGKILL
    cannot clean up) are removed first, so no participant data is left behind in the
    temporary folder for long.
    """
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{_PRIVATE_PREFIX}*"):
        m = re.fullmatch(rf"{_PRIVATE_PREFIX}(\d+)-\w+", old.name)
        try:
            if m and old.is_dir() and old.stat().st_uid == os.getuid() and not pid_alive(int(m.group(1))):
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix=f"{_PRIVATE_PREFIX}{os.getpid()}-"))


def skip_iri_format_checker() -> None:
    """Keep ``jsonschema`` from building its IRI grammar in this process (1.5-2 s per import).

    ``nbformat`` imports ``jsonschema``, which at import time compiles an Earley parser for
    the ``iri`` string format whenever the optional ``rfc3987-syntax`` package is installed
    (JupyterLab's dependencies install it). No notebook schema uses that format
    (python-jsonschema/jsonschema#1428). Marking the module as absent makes ``jsonschema``
    skip that one format check. Called only in processes hipstats owns: the ``hipstats``
    command's own process (:func:`hipstats.cli.run`, the console script) and the report
    workers; never on import of the library nor by :func:`hipstats.cli.main`.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ per worker
_SPARE: Any = None  # the kernel this worker started ahead of time, until a notebook takes it
_ACTIVE: Any = None  # the kernel running this worker's current notebook
_SETTINGS: dict[str, Any] = {}


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker that does not run the caller's main module again.

    Python's ``spawn`` start method re-imports the parent's ``__main__`` (the user's script)
    in every child, so a script calling :func:`hipstats.run_reports` at top level, without an
    ``if __name__ == "__main__":`` guard, would start the run again in each worker. Report
    workers run only hipstats functions (:func:`init_worker`, the runner's job function), so
    the main module is left out of what the child prepares.
    """

    @staticmethod
    def _Popen(process_obj):
        from multiprocessing import spawn  # noqa: PLC0415

        prepare = spawn.get_preparation_data

        def without_main(name):
            data = prepare(name)
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
            return data

        spawn.get_preparation_data = without_main
        try:
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        finally:
            spawn.get_preparation_data = prepare


class _WorkerContext(multiprocessing.context.SpawnContext):
    Process = _WorkerProcess


def worker_context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context of report workers: ``spawn``, without re-running ``__main__``.

    Safe from a plain script (no ``__main__`` guard needed), a notebook or ``python -c``.

    >>> worker_context().get_start_method()
    'spawn'
    """
    return _WorkerContext()


def init_worker(settings: dict[str, Any]) -> None:
    """Initialiser of a report worker process: environment, imports, and a kernel started ahead.

    ``settings`` holds ``kernel_name`` and ``jupyter_path`` (from :func:`write_kernelspec`),
    ``cwd`` (the notebooks' folder) and ``env`` (variables of the run for every kernel, such as
    the snapshot's path); :data:`KERNEL_ENV` is added to them.

    Never raises (an initialiser that raises breaks the whole process pool): when the kernel
    cannot be started here, the notebook starts its own and reports any error itself.
    """
    global _SPARE
    skip_iri_format_checker()
    _watch_for_the_end()
    _SETTINGS.clear()
    _SETTINGS.update(settings)
    os.environ.update({**KERNEL_ENV, **settings["env"]})
    base = os.environ.get("JUPYTER_PATH", "")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (settings["jupyter_path"], base) if p)
    try:
        _SPARE = start_kernel(preload=KERNEL_PRELOAD)
        multiprocessing.util.Finalize(None, _stop_spare, exitpriority=10)
    except Exception:  # noqa: BLE001 - the notebook will start its own kernel and show the error
        _SPARE = None
    import nbconvert  # noqa: F401, PLC0415
    import papermill  # noqa: F401, PLC0415

    import hipstats.report.export  # noqa: F401, PLC0415


def start_kernel(preload: tuple[str, ...] = ()):
    """Start a kernel of the run (returns at once; the kernel finishes starting on its own).

    Parameters
    ----------
    preload : tuple of str
        Modules the kernel imports at start-up, before it answers (nothing is bound in the
        notebook's namespace and the execution count is not advanced).

    Returns
    -------
    jupyter_client.AsyncKernelManager
    """
    from jupyter_core.utils import run_sync  # noqa: PLC0415

    km = _manager_class()(kernel_name=_SETTINGS["kernel_name"])
    # a statement, not an expression: IPython stores no output (_ and Out stay empty) and binds no name
    extra = [f"--IPKernelApp.exec_lines=if __import__({m!r}): pass" for m in preload]
    run_sync(km.start_kernel)(cwd=_SETTINGS["cwd"], extra_arguments=extra)
    return km


def take_kernel():
    """The kernel started ahead of time if there is one still alive, else a new one."""
    global _SPARE, _ACTIVE
    km, _SPARE = _SPARE, None
    if km is not None:
        from jupyter_core.utils import run_sync  # noqa: PLC0415

        if not run_sync(km.is_alive)():
            stop_kernel(km)
            km = None
    _ACTIVE = km if km is not None else start_kernel()
    return _ACTIVE


def stop_kernel(km) -> None:
    """Stop a kernel at once (its notebook is saved; nothing in it needs an orderly exit).

    The kernel clients papermill opened on it are closed too: papermill leaves them open when
    it did not start the kernel itself.
    """
    global _ACTIVE
    from jupyter_core.utils import run_sync  # noqa: PLC0415

    if km is _ACTIVE:
        _ACTIVE = None
    for kc in km.__dict__.pop("_hipstats_clients", []):
        try:
            kc.stop_channels()
        except Exception:  # noqa: BLE001, S110 - already closed
            pass
    try:
        if run_sync(km.is_alive)():
            run_sync(km.shutdown_kernel)(now=True)
        else:
            run_sync(km.cleanup_resources)()
    except Exception:  # noqa: BLE001, S110 - already gone
        pass


def _stop_spare() -> None:
    global _SPARE
    if _SPARE is not None:
        stop_kernel(_SPARE)
        _SPARE = None


@functools.cache
def _manager_class():
    """``AsyncKernelManager`` that remembers the clients it hands out, so they can be closed."""
    from jupyter_client.manager import AsyncKernelManager  # noqa: PLC0415

    class RunKernelManager(AsyncKernelManager):
        def client(self, **kwargs):
            kc = super().client(**kwargs)
            self.__dict__.setdefault("_hipstats_clients", []).append(kc)
            return kc

    return RunKernelManager


def _kill_kernels_now() -> None:
    """Kill this worker's kernels without the event loop (from a signal handler or a thread)."""
    for km in (_SPARE, _ACTIVE):
        proc = getattr(getattr(km, "provisioner", None), "process", None)
        try:
            if proc is not None:
                proc.kill()
        except Exception:  # noqa: BLE001, S110 - already gone
            pass


def _watch_for_the_end() -> None:
    """Stop this worker's kernels and exit when the runner dies or this worker gets SIGTERM."""
    def on_sigterm(signum, frame):  # noqa: ARG001
        _kill_kernels_now()
        os._exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        parent.join()  # returns when the runner process is gone
        _kill_kernels_now()
        os._exit(1)

    threading.Thread(target=watch, name="hipstats-parent-watch", daemon=True).start()
