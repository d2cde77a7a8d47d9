"""Kernels started ahead of time for report runs (hipstats.report.kernels).

Each check runs in a child process, because a report worker changes its own environment
(``JUPYTER_PATH``, ``MPLBACKEND``) and ``sys.modules``, which the test process must keep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from hipstats.report.kernels import KERNEL_PRELOAD, kernel_argv, write_kernelspec


def _child(code: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


WORKER = """
    import json, sys
    from pathlib import Path
    from hipstats.report import kernels
    sys.path.insert(0, TESTS)
    from test_report_kernels import _gone
    folder = Path(sys.argv[1])
    name, jpath = kernels.write_kernelspec(folder / "jupyter")
    kernels.init_worker({"kernel_name": name, "jupyter_path": jpath, "cwd": str(folder),
                         "env": {"HIPSTATS_TEST_VAR": "seen"}})
""".replace("TESTS", repr(str(Path(__file__).parent)))


def test_kernelspec_is_this_interpreter(tmp_path):
    name, jpath = write_kernelspec(tmp_path)
    spec = json.loads((tmp_path / "kernels" / name / "kernel.json").read_text())
    assert spec["argv"] == kernel_argv() and spec["argv"][0] == sys.executable
    assert jpath == str(tmp_path) and "{connection_file}" in spec["argv"]


def test_warm_kernel_has_the_modules_but_no_names(tmp_path):
    out = _child(WORKER + """
    from jupyter_core.utils import run_sync
    km = kernels.take_kernel()
    kc = km.client(); kc.start_channels(); run_sync(kc.wait_for_ready)(timeout=120)
    code = ("import os, sys, json; print(json.dumps({'last': repr(_), 'out': len(Out), "
            "'names': sorted(k for k in globals() if not k.startswith('_') and k not in "
            "('In', 'Out', 'exit', 'quit', 'get_ipython', 'open', 'os', 'sys', 'json')), "
            "'loaded': [m for m in %r if m in sys.modules], 'cwd': os.getcwd(), "
            "'var': os.environ.get('HIPSTATS_TEST_VAR'), 'python': sys.executable}))" % (kernels.KERNEL_PRELOAD,))
    lines = []
    reply = run_sync(kc.execute_interactive)(code, timeout=120,
                                             output_hook=lambda m: lines.append(m["content"].get("text", "")))
    pid = km.provisioner.process.pid
    kernels.stop_kernel(km)  # closes the client above too (papermill leaves its client open)
    import threading, time
    time.sleep(0.3)
    res = json.loads("".join(lines)); res["reply"] = reply["content"]["status"]; res["pid"] = pid
    res["hb_threads"] = [t.name for t in threading.enumerate() if type(t).__name__ == "HBChannel" and t.is_alive()]
    res["count"] = reply["content"]["execution_count"]
    print(json.dumps(res))
    """, str(tmp_path))
    assert out["reply"] == "ok"
    assert out["count"] == 1  # the preload did not advance the execution count (first cell is In [1])
    assert out["names"] == []  # ... and bound no name in the notebook's namespace
    assert out["last"] == "''" and out["out"] == 0  # ... nor an output (_ and Out as in a fresh kernel)
    assert out["hb_threads"] == []  # the kernel client was closed with the kernel
    assert out["loaded"] == list(KERNEL_PRELOAD)
    assert out["cwd"] == str(tmp_path) and out["var"] == "seen" and out["python"] == sys.executable
    assert _gone(out["pid"])


def _gone(pid: int, wait: float = 30) -> bool:
    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False


def test_unused_kernel_is_stopped_by_its_worker(tmp_path):
    # checked while the worker is still alive: an IPython kernel would also exit on its own
    # once its parent is gone, which would hide a worker that never stops its spare kernel
    out = _child(WORKER + """
    pid = kernels._SPARE.provisioner.process.pid
    kernels._stop_spare()
    print(json.dumps({"gone_while_worker_alive": _gone(pid), "spare": kernels._SPARE}))
    """, str(tmp_path))
    assert out == {"gone_while_worker_alive": True, "spare": None}


POOL = """
    import json, os, sys, multiprocessing, time
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path
    from hipstats.report import kernels

    def pids():
        return os.getpid(), kernels._SPARE.provisioner.process.pid

    if __name__ == "__main__":
        folder = Path(sys.argv[1])
        name, jpath = kernels.write_kernelspec(folder / "jupyter")
        settings = {"kernel_name": name, "jupyter_path": jpath, "cwd": str(folder), "env": {}}
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=kernels.init_worker, initargs=(settings,))
        print(json.dumps(pool.submit(pids).result()), flush=True)
        ACTION
"""


def test_worker_stops_its_kernel_and_exits_when_the_runner_is_killed(tmp_path):
    # the runner dies without any clean-up (SIGKILL); its worker must not wait forever
    script = tmp_path / "runner.py"
    script.write_text(textwrap.dedent(POOL).replace("ACTION", "os._exit(9)"))
    r = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300)
    worker, kernel = json.loads(r.stdout.strip().splitlines()[0])
    assert _gone(worker) and _gone(kernel)


def test_worker_kills_its_kernels_on_sigterm(tmp_path):
    # the handler is checked directly, while the worker is alive: once a worker is gone its
    # kernel would also exit on its own (IPython polls its parent), which would hide a missing one
    out = _child(WORKER + """
    import signal
    handler = signal.getsignal(signal.SIGTERM)
    pid = kernels._SPARE.provisioner.process.pid
    kernels._kill_kernels_now()
    print(json.dumps({"handler": callable(handler), "gone": _gone(pid, wait=10)}))
    """, str(tmp_path))
    assert out == {"handler": True, "gone": True}


def test_private_folders_of_dead_runs_are_removed(tmp_path, monkeypatch):
    import tempfile

    from hipstats.report.kernels import private_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f"hipstats-report-{dead}-abc123"
    (stale / "jupyter").mkdir(parents=True)
    (stale / "cohort.pkl").write_bytes(b"participant data")
    alive = tmp_path / f"hipstats-report-{os.getpid()}-def456"
    alive.mkdir()
    other = tmp_path / "hipstats-report-notapid"
    other.mkdir()
    new = private_folder()
    try:
        assert not stale.exists()  # a run that was killed
        assert alive.is_dir() and other.is_dir()  # a running run, and a folder that is not ours
        assert new.parent == tmp_path and new.name.startswith(f"hipstats-report-{os.getpid()}-")
        assert oct(new.stat().st_mode & 0o777) == "0o700"
    finally:
        new.rmdir()


def test_iri_grammar_is_skipped_and_notebooks_still_validate():
    out = _child("""
    import json, sys
    from hipstats.report.kernels import skip_iri_format_checker
    skip_iri_format_checker()
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.validate(nb)
    bad = nbformat.v4.new_notebook(); bad["cells"] = [{"cell_type": "code"}]
    try:
        nbformat.validate(bad); invalid_caught = False
    except nbformat.ValidationError:
        invalid_caught = True
    print(json.dumps({"skipped": sys.modules.get("rfc3987_syntax", "absent") is None,
                      "invalid_caught": invalid_caught}))
    """)
    assert out == {"skipped": True, "invalid_caught": True}


def test_iri_grammar_is_left_alone_once_jsonschema_is_loaded():
    out = _child("""
    import json, sys
    import jsonschema
    before = sys.modules.get("rfc3987_syntax", "absent")
    from hipstats.report.kernels import skip_iri_format_checker
    skip_iri_format_checker()
    print(json.dumps({"unchanged": sys.modules.get("rfc3987_syntax", "absent") is before}))
    """)
    assert out == {"unchanged": True}
