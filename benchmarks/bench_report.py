"""Benchmark: `hipstats report` against a plain sequential papermill + nbconvert loop.

Both run the same default notebooks with the same parameters on the same data, in the same
invocation of this script, one after the other. Measured per run: wall time and peak memory
of the whole process tree (the runner or loop process plus every kernel and worker it starts;
sum of RSS sampled every 0.2 s with psutil).

The plain loop is what a user writes without hipstats: for each notebook,
``papermill.execute_notebook`` (each notebook loads and validates the source itself) then
``nbconvert.HTMLExporter(exclude_input=True)`` on the result.

Usage::

    python benchmarks/bench_report.py                  # example cohort and 20,000 participants
    python benchmarks/bench_report.py --sizes example  # quick
    python benchmarks/bench_report.py --jobs 2 --out benchmarks/results/report.md

Targets (issue 6): on 2 cores at most 0.6 of the plain loop's time; the 20,000-participant
report set in under 3 minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

PLAIN_LOOP = textwrap.dedent("""
    import sys, json, pathlib, papermill, nbformat
    from nbconvert import HTMLExporter
    nb_dir, source, out = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
    names = json.loads(sys.argv[4])
    out.mkdir(parents=True, exist_ok=True)
    status = {}
    for name in names:
        try:
            papermill.execute_notebook(str(nb_dir / f"{name}.ipynb"), str(out / f"{name}.ipynb"),
                                       parameters={"source": source}, cwd=str(nb_dir), kernel_name="python3",
                                       progress_bar=False)
            status[name] = "ok"
        except Exception as exc:
            status[name] = f"failed: {type(exc).__name__}"
        body, _ = HTMLExporter(exclude_input=True).from_notebook_node(nbformat.read(out / f"{name}.ipynb", 4))
        (out / f"{name}.html").write_text(body)
    print(json.dumps(status))
""")


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def measure(cmd: list[str], env: dict, timeout: float) -> dict:
    """Run a command; wall time, peak tree RSS, exit code, stdout tail."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(ps))
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        for p in [ps] + ps.children(recursive=True):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        out, rc = proc.communicate()[0] or "", "timeout"
    done.set()
    th.join()
    return {"wall_s": time.perf_counter() - t0, "peak_mb": peak[0] / 2**20, "rc": rc, "tail": (out or "")[-800:]}


def dataset(size: str, cache: Path) -> tuple[str, int]:
    if size == "example":
        return str(ROOT / "data" / "example"), 150
    n = int(size)
    folder = cache / f"cohort-{n}"
    if not (folder / "measurements.csv").is_file():
        subprocess.run([str(BIN / "hipstats"), "simulate", "--out", str(folder), "--n", str(n), "--seed", "2026",
                        "--force"], check=True)
    return str(folder), n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="example,20000")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "hipstats-bench"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "report.md"))
    ap.add_argument("--skip-plain", action="store_true", help="only time hipstats report")
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two runs this many times; report medians")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from hipstats.report.params import list_notebooks, select_notebooks

    names = [n.name for n in select_notebooks(list_notebooks(ROOT / "notebooks"))]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONWARNINGS="ignore")
    rows = []
    for size in args.sizes.split(","):
        src, n = dataset(size.strip(), cache)
        runs_hs, runs_pl, manifest = [], [], {}
        for rep in range(args.repeat):
            work = Path(tempfile.mkdtemp(prefix="bench-report-", dir=cache))
            print(f"== {size} (repeat {rep + 1}): {src}", flush=True)
            r_hs = measure([str(BIN / "hipstats"), "report", src, "--out", str(work / "hs"), "--jobs",
                            str(args.jobs), "--quiet"], env, args.timeout)
            print(f"hipstats report: {r_hs['wall_s']:.1f} s, {r_hs['peak_mb']:.0f} MB, rc {r_hs['rc']}", flush=True)
            runs_hs.append(r_hs)
            try:
                manifest = json.loads(next((work / "hs").glob("*/manifest.json")).read_text())
            except StopIteration:
                pass
            if not args.skip_plain:
                r_pl = measure([sys.executable, "-c", PLAIN_LOOP, str(ROOT / "notebooks"), src, str(work / "plain"),
                                json.dumps(names)], env, args.timeout)
                print(f"plain loop: {r_pl['wall_s']:.1f} s, {r_pl['peak_mb']:.0f} MB, rc {r_pl['rc']}", flush=True)
                runs_pl.append(r_pl)
        rows.append({"size": size, "n": n, "hs": _median(runs_hs), "plain": _median(runs_pl) if runs_pl else None,
                     "all_hs": [r["wall_s"] for r in runs_hs], "all_plain": [r["wall_s"] for r in runs_pl],
                     "phases": manifest.get("phases_s", {}),
                     "per_notebook": {x["name"]: (x["status"], x["duration_s"]) for x in manifest.get("notebooks", [])}})
    write_markdown(rows, args, names, Path(args.out))
    return 0


def _median(runs: list[dict]) -> dict:
    """The run with the median wall time (upper median for an even count); peak memory is the largest seen."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    mid = dict(ordered[len(ordered) // 2])
    mid["peak_mb"] = max(r["peak_mb"] for r in runs)
    return mid


def write_markdown(rows, args, names, path: Path) -> None:
    lines = ["# `hipstats report` vs a plain sequential papermill + nbconvert loop", "",
             f"Run {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} on {platform.node() or 'host'}: "
             f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python "
             f"{platform.python_version()}; `--jobs {args.jobs}`; notebooks: {', '.join(names)}.",
             f"Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
             "(other work on the machine inflates both columns alike).", "",
             "| data | participants | hipstats report (s) | peak MB | plain loop (s) | peak MB | ratio | exit codes |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        hs, pl = r["hs"], r["plain"]
        ratio = f"{hs['wall_s'] / pl['wall_s']:.2f}" if pl and pl["rc"] == 0 and hs["rc"] in (0, 1) else "n/a"
        lines.append(f"| {r['size']} | {r['n']:,} | {hs['wall_s']:.1f} | {hs['peak_mb']:.0f} | "
                     + (f"{pl['wall_s']:.1f} | {pl['peak_mb']:.0f} | " if pl else "not run | | ")
                     + f"{ratio} | hipstats {hs['rc']}, plain {pl['rc'] if pl else '-'} |")
    if args.repeat > 1:
        lines += ["", f"Medians of {args.repeat} alternating runs; all wall times (s):", ""]
        for r in rows:
            lines.append(f"- {r['size']}: hipstats {', '.join(f'{x:.1f}' for x in r['all_hs'])}; plain "
                         f"{', '.join(f'{x:.1f}' for x in r['all_plain'])}")
    lines += ["", "Inside `hipstats report` (last run): phases and per-notebook durations (status, seconds):", ""]
    for r in rows:
        lines.append(f"- {r['size']}: phases " + ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items()) + "; "
                     + ", ".join(f"{k} {v[0]} {v[1]:.1f}" for k, v in r["per_notebook"].items()))
    lines += ["", "Targets: ratio <= 0.6 on 2 cores; 20,000 participants under 180 s.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
