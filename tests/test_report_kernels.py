"""Kernels started ahead of time for report runs (hipstats.report.kernels).

Each check runs in a child process, because a report worker changes its own environment
(``JUPYTER_PATH``, ``MPLBACKEND``) and ``sys.modules``, which the test process must keep.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

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
    folder = Path(sys.argv[1])
    name, jpath = kernels.write_kernelspec(folder / "jupyter")
    kernels.init_worker({"kernel_name": name, "jupyter_path": jpath, "cwd": str(folder),
                         "env": {"HIPSTATS_TEST_VAR": "seen"}})
"""


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
    code = ("import os, sys, json; print(json.dumps({"
            "'names': sorted(k for k in globals() if not k.startswith('_') and k not in "
            "('In', 'Out', 'exit', 'quit', 'get_ipython', 'open', 'os', 'sys', 'json')), "
            "'loaded': [m for m in %r if m in sys.modules], 'cwd': os.getcwd(), "
            "'var': os.environ.get('HIPSTATS_TEST_VAR'), 'python': sys.executable}))" % (kernels.KERNEL_PRELOAD,))
    lines = []
    reply = run_sync(kc.execute_interactive)(code, timeout=120,
                                             output_hook=lambda m: lines.append(m["content"].get("text", "")))
    kc.stop_channels(); pid = km.provisioner.process.pid
    kernels.stop_kernel(km)
    res = json.loads("".join(lines)); res["reply"] = reply["content"]["status"]; res["pid"] = pid
    res["count"] = reply["content"]["execution_count"]
    print(json.dumps(res))
    """, str(tmp_path))
    assert out["reply"] == "ok"
    assert out["count"] == 1  # the preload did not advance the execution count (first cell is In [1])
    assert out["names"] == []  # ... and bound no name in the notebook's namespace
    assert out["loaded"] == list(KERNEL_PRELOAD)
    assert out["cwd"] == str(tmp_path) and out["var"] == "seen" and out["python"] == sys.executable
    time.sleep(0.5)
    assert not psutil.pid_exists(out["pid"]) or psutil.Process(out["pid"]).status() == psutil.STATUS_ZOMBIE


def test_unused_kernel_is_stopped_when_its_worker_exits(tmp_path):
    out = _child(WORKER + """
    print(json.dumps({"pid": kernels._SPARE.provisioner.process.pid}))
    """, str(tmp_path))
    deadline = time.time() + 30
    while psutil.pid_exists(out["pid"]) and time.time() < deadline:
        if psutil.Process(out["pid"]).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.2)
    assert not psutil.pid_exists(out["pid"]) or psutil.Process(out["pid"]).status() == psutil.STATUS_ZOMBIE


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
