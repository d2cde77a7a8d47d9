"""Benchmark: a simulated power curve (hipstats.power.power_curve) against the previous engine and
a statsmodels loop, in the same run.

Design: 3 arms (control, stretching, loading), 5 visits (weeks 0, 3, 6, 9, 12), dropout
25/20/15 %, random intercept + slope (the H2 protocol model), Satterthwaite df; the curve has
10 points (20, 30, ..., 110 per arm) of 1,000 simulated trials each. Target (issue 16): the
10 x 1,000 curve in under 20 s on 2 cores (about 2 ms of CPU per simulated trial).

Compared, in one run:

* **this engine** (`hipstats.power.reml.PatternModel`): the whole curve on 2 worker processes
  (wall time), and CPU per simulated trial in this process (60 per arm, Satterthwaite and Wald);
* **the previous engine** (hipstats before issue 16, commit ``BASE``, which fitted each trial
  through the general LMM engine's array entry): the same design in a subprocess running that
  commit's source tree (``git archive``), CPU per trial;
* **a statsmodels loop** (simulate, ``smf.mixedlm(..., re_formula="~week").fit()``, Wald p):
  what a Python user would write instead, CPU per trial on a few trials.

Usage::

    .venv/bin/python benchmarks/bench_power.py            # writes benchmarks/results/power.md
    .venv/bin/python benchmarks/bench_power.py --n-sim 200 --probe 50 --no-write

Wall times depend on machine load (the load average at the start and end is recorded); the
CPU time per trial is the load-independent figure. A ``## History`` section at the end of the
results file (earlier figures) is kept when the file is rewritten.
"""

from __future__ import annotations

import os

# single-threaded BLAS in this process too (loky workers get it from joblib): the model's
# matrices are tiny and threads only add overhead; also makes CPU time comparable
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from hipstats.power import TrialDesign, power_curve, simulate_power  # noqa: E402
from hipstats.power import design as dsg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASE = "e24c64a"  # main before issue 16
DESIGN_KW = dict(arms=("control", "stretching", "loading"), weeks=(0, 3, 6, 9, 12),
                 effects={"control": 0, "stretching": 2, "loading": 6}, sd_intercept=9.0,
                 sd_slope=0.4, sd_residual=4.0,
                 dropout={"control": 0.25, "stretching": 0.20, "loading": 0.15})
DESIGN = TrialDesign(n_per_arm=60, target="loading", reference="control", **DESIGN_KW)
GRID = list(range(20, 120, 10))
RESULTS = Path(__file__).parent / "results" / "power.md"

OLD_SCRIPT = """
import json, os, sys, time
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, "1")
from hipstats.power import TrialDesign, simulate_power
kw = json.loads(sys.argv[1]); n = int(sys.argv[2])
d = TrialDesign(n_per_arm=60, **{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})
simulate_power(d, n_sim=2, n_jobs=1, seed=99, target="loading", reference="control")
out = {}
for df in ("satterthwaite", "wald"):
    c0 = time.process_time()
    r = simulate_power(d, n_sim=n, n_jobs=1, seed=1, df=df, target="loading", reference="control")
    out[df] = [(time.process_time() - c0) / n, r.power]
print(json.dumps(out))
"""


def old_engine(n: int) -> dict:
    """CPU s per trial and power of the previous engine (commit BASE) in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASE, "hipstats"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": tmp}
        r = subprocess.run([sys.executable, "-c", OLD_SCRIPT, json.dumps(DESIGN_KW), str(n)],
                           capture_output=True, text=True, env=env, cwd=tmp, check=True)
        return json.loads(r.stdout.strip().splitlines()[-1])


def statsmodels_loop(n: int, seed: int = 0) -> tuple[float, float]:
    """(CPU s per trial, power) of a plain statsmodels MixedLM loop."""
    import statsmodels.formula.api as smf

    rej = 0
    c0 = time.process_time()
    for ss in np.random.SeedSequence(seed).spawn(n):
        y, arm = dsg.draw_trial(DESIGN, np.random.default_rng(ss))
        data = dsg.to_long(y, arm, DESIGN.weeks, DESIGN.arms)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm("value ~ week * C(arm, Treatment('control'))", data,
                              groups=data["participant_id"], re_formula="~week").fit()
        rej += fit.pvalues["week:C(arm, Treatment('control'))[T.loading]"] < 0.05
    return (time.process_time() - c0) / n, rej / n


IMPORT_SCRIPT = """
import time
c0 = time.process_time()
import hipstats.power.simulation  # what a worker process imports to run replicates
print(time.process_time() - c0)
"""


def worker_import_cpu() -> float:
    """CPU s to import the replicate code in a fresh process (a worker's start-up)."""
    r = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT], capture_output=True, text=True,
                       check=True, cwd=ROOT)
    return float(r.stdout.strip().splitlines()[-1])


def children_cpu() -> float:
    """CPU s (user + system) used so far by this process's live child processes (the workers)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with the dev dependencies
        return float("nan")
    total = 0.0
    for c in psutil.Process().children(recursive=True):
        try:
            t = c.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def this_engine(n: int, df: str) -> tuple[float, float]:
    c0 = time.process_time()
    res = simulate_power(DESIGN, n_sim=n, n_jobs=1, seed=1, df=df, progress=False)
    return (time.process_time() - c0) / n, res.power


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sim", type=int, default=1000, help="trials per curve point")
    ap.add_argument("--probe", type=int, default=300, help="in-process trials (CPU time)")
    ap.add_argument("--old", type=int, default=100, help="trials of the previous engine")
    ap.add_argument("--naive", type=int, default=10, help="statsmodels trials")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    simulate_power(DESIGN, n_sim=20, n_jobs=1, seed=99, progress=False)  # warm-up
    load0 = os.getloadavg()
    c0, k0 = time.process_time(), children_cpu()
    t0 = time.perf_counter()
    curve = power_curve(DESIGN, GRID, n_sim=args.n_sim, n_jobs=2, seed=1, progress=False)
    curve_wall = time.perf_counter() - t0
    curve_cpu = time.process_time() - c0 + children_cpu() - k0  # parent + workers, start-up included
    print(f"curve {len(GRID)} x {args.n_sim}: {curve_wall:.1f} s wall, {curve_cpu:.1f} s CPU", flush=True)
    import_cpu = worker_import_cpu()
    new = {df: this_engine(args.probe, df) for df in ("satterthwaite", "wald")}
    print("this engine", new, flush=True)
    old = old_engine(args.old)
    print("previous engine", old, flush=True)
    sm_cpu, sm_power = statsmodels_loop(args.naive)
    print("statsmodels", sm_cpu, sm_power, flush=True)
    load1 = os.getloadavg()

    trials = len(GRID) * args.n_sim
    per_trial_wall = curve_wall / trials
    idle = 10_000 * new["satterthwaite"][0] / 2
    busy = max(load0[0], load1[0]) > (os.cpu_count() or 1) - 0.5
    load_text = ("other jobs shared the machine, so wall times are inflated" if busy else
                 "below the number of cores, so the wall time is close to what an idle machine gives")
    sm_curve = trials * sm_cpu / 2  # the same curve with the statsmodels loop on 2 processes
    lines = [
        "# Simulation power benchmark (`benchmarks/bench_power.py`)",
        "",
        "Design: 3 arms x 5 visits (weeks 0-12), dropout 25/20/15 %, random intercept + slope "
        "(`sd_intercept` 9, `sd_slope` 0.4, `sd_residual` 4), Satterthwaite df; test: loading - "
        "control difference in slopes (true 0.5 deg/week). Curve: "
        f"{len(GRID)} points ({GRID[0]}-{GRID[-1]} per arm) x {args.n_sim:,} trials. "
        f"Machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, single-threaded BLAS. Load average (1 min) at start "
        f"{load0[0]:.1f}, at end {load1[0]:.1f}: {load_text}; CPU time is the load-independent "
        "figure. All rows come from one run of this script.",
        "",
        "## Power curve, 2 worker processes (joblib/loky)",
        "",
        f"* {trials:,} simulated trials in **{curve_wall:.1f} s** wall "
        f"({1000 * per_trial_wall:.1f} ms per trial; target < 20 s for 10 x 1,000: "
        f"{'met' if curve_wall * 10_000 / trials < 20 else 'not met'} at this load, "
        "worker start-up included).",
        f"* CPU of the whole curve (this process + both workers, their start-up included): "
        f"**{curve_cpu:.1f} s**; importing the replicate code costs a fresh worker "
        f"{import_cpu:.2f} s CPU.",
        f"* Projected on 2 idle cores from CPU time (10,000 x CPU per trial / 2): **{idle:.1f} s**.",
        f"* The same curve with the statsmodels MixedLM loop (CPU per trial below x {trials:,} / 2 "
        f"processes): about **{sm_curve / 60:.0f} min**, {sm_curve / curve_wall:.0f} x this run's wall.",
        "",
        "| n per arm | power | 95% CI | failed | not converged | singular |",
        "| ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in curve.itertuples():
        lines.append(f"| {r.n_per_arm} | {r.power:.3f} | {r.power_ci_low:.3f}-{r.power_ci_high:.3f} "
                     f"| {r.n_failed} | {r.n_not_converged} | {r.n_singular} |")
    base = new["satterthwaite"][0]
    rows = [("this engine (PatternModel), Satterthwaite df", args.probe, *new["satterthwaite"]),
            ("this engine (PatternModel), Wald df", args.probe, *new["wald"]),
            (f"previous engine ({BASE}), Satterthwaite df", args.old, *old["satterthwaite"]),
            (f"previous engine ({BASE}), Wald df", args.old, *old["wald"]),
            ("statsmodels MixedLM loop (Wald)", args.naive, sm_cpu, sm_power)]
    lines += ["", "## CPU per simulated trial, one process, 60 per arm", "",
              "| engine | trials | CPU ms/trial | ratio to this engine | power |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for label, n, cpu, pw in rows:
        lines.append(f"| {label} | {n} | {1000 * cpu:.2f} | {cpu / base:.1f} | {pw:.3f} |")
    lines += ["", "Powers from few trials carry wide Monte Carlo error; statsmodels uses Wald z "
              "tests. The previous engine runs in a subprocess from `git archive " + BASE +
              " hipstats`."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        old_text = RESULTS.read_text() if RESULTS.exists() else ""
        if "\n## History" in old_text:
            text += old_text[old_text.index("\n## History"):]
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
