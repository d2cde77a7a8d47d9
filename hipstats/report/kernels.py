"""Notebook kernels for a report run: this environment's Python, started ahead of time.

A report notebook spends most of its time on a fixed cost that has nothing to do with the
data: starting an IPython kernel and importing pandas, matplotlib, statsmodels and hipstats
into it. While the runner reads and validates the source (one core busy, the other idle
on a two-core machine), each worker process of the run starts its first kernel and has it
import those modules (:data:`KERNEL_PRELOAD`), so the first notebook of every worker starts
on a warm kernel. Later notebooks get a fresh kernel each (no state is shared between
notebooks). Kernels are shut down by the worker that started them; one that was started and
never used is shut down when its worker exits, and an IPython kernel also exits on its own
when its parent process dies.

The kernel is always ``sys.executable -m ipykernel_launcher`` (a kernelspec written into the
run's private folder), never whatever ``python3`` kernel happens to be installed.

Examples
--------
>>> from hipstats.report.kernels import kernel_argv
>>> kernel_argv()[1:3]
['-m', 'ipykernel_launcher']
"""

from __future__ import annotations

import json
import multiprocessing.util
import os
import sys
import uuid
from pathlib import Path
from typing import Any

__all__ = ["KERNEL_PRELOAD", "kernel_argv", "write_kernelspec", "skip_iri_format_checker",
           "init_worker", "take_kernel", "start_kernel", "stop_kernel"]

#: Modules a kernel started ahead of time imports before its notebook arrives (most report
#: notebooks need all of them; the ones that do not lose nothing, the import happens while
#: the machine would otherwise wait for the validation of the source).
KERNEL_PRELOAD = ("hipstats.report", "hipstats.plots", "matplotlib.pyplot", "seaborn", "statsmodels.api")

#: Figures must come back to the notebook as images, whatever backend the caller set
#: (cron jobs often set ``MPLBACKEND=Agg``).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


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


def skip_iri_format_checker() -> None:
    """Keep ``jsonschema`` from building its IRI grammar in this process (1.5-2 s per import).

    ``nbformat`` imports ``jsonschema``, which at import time compiles an Earley parser for
    the ``iri`` string format whenever the optional ``rfc3987-syntax`` package is installed
    (JupyterLab's dependencies install it). No notebook schema uses that format
    (python-jsonschema/jsonschema#1428). Marking the module as absent makes ``jsonschema``
    skip that one format check. Called only in processes hipstats owns: the ``hipstats``
    command and the report workers, never on import of the library.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ per worker
_SPARE: Any = None  # the kernel this worker started ahead of time, until a notebook takes it
_SETTINGS: dict[str, Any] = {}


def init_worker(settings: dict[str, Any]) -> None:
    """Initialiser of a report worker process: environment, imports, and a kernel started ahead.

    ``settings`` holds ``kernel_name`` and ``jupyter_path`` (from :func:`write_kernelspec`),
    ``cwd`` (the notebooks' folder) and ``env`` (variables for every kernel of the run).

    Never raises (an initialiser that raises breaks the whole process pool): when the kernel
    cannot be started here, the notebook starts its own and reports any error itself.
    """
    global _SPARE
    skip_iri_format_checker()
    _SETTINGS.clear()
    _SETTINGS.update(settings)
    os.environ.update(settings["env"])
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
    from jupyter_client.manager import AsyncKernelManager  # noqa: PLC0415
    from jupyter_core.utils import run_sync  # noqa: PLC0415

    km = AsyncKernelManager(kernel_name=_SETTINGS["kernel_name"])
    extra = [f"--IPKernelApp.exec_lines=__import__({m!r})" for m in preload]
    run_sync(km.start_kernel)(cwd=_SETTINGS["cwd"], extra_arguments=extra)
    return km


def take_kernel():
    """The kernel started ahead of time if there is one still alive, else a new one."""
    global _SPARE
    km, _SPARE = _SPARE, None
    if km is not None:
        from jupyter_core.utils import run_sync  # noqa: PLC0415

        if run_sync(km.is_alive)():
            return km
        stop_kernel(km)
    return start_kernel()


def stop_kernel(km) -> None:
    """Stop a kernel at once (its notebook is saved; nothing in it needs an orderly exit)."""
    from jupyter_core.utils import run_sync  # noqa: PLC0415

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
