"""Benchmark: simulated-power replicates per second (hipstats.power.simulate_power).

Design: 3 arms (control, stretching, loading), 5 visits (weeks 0, 3, 6, 9, 12), 60
participants per arm, dropout 25/20/15 %, random intercept + slope (the H2 protocol model).
Target from issue 7: 1,000 replicates in under a minute on 2 cores (n_jobs=2).

Compared with the loop a Python user would write today: simulate, fit statsmodels MixedLM
(``smf.mixedlm(..., re_formula="~week").fit()``), read the Wald p-value, repeat — run on a few
replicates only and reported per replicate.

Usage::

    .venv/bin/python benchmarks/bench_power.py            # 1,000 replicates, writes results
    .venv/bin/python benchmarks/bench_power.py --n-sim 200 --naive 10 --no-write

Results go to benchmarks/results/power.md (numbers depend on machine load: the load average
at the start and end of the run is recorded with them). A ``## History`` section at the end of
that file (earlier figures, written by hand) is kept when the file is rewritten.
"""

from __future__ import annotations

import os

# single-threaded BLAS in this process too (loky workers get it from joblib): the model's
# matrices are tiny and threads only add overhead; also makes CPU time comparable
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from hipstats.power import design as dsg  # noqa: E402
from hipstats.power import simulation as sim  # noqa: E402
from hipstats.power import TrialDesign, simulate_power  # noqa: E402

DESIGN = TrialDesign(arms=("control", "stretching", "loading"), weeks=(0, 3, 6, 9, 12),
                     n_per_arm=60, effects={"control": 0, "stretching": 2, "loading": 6},
                     sd_intercept=9.0, sd_slope=0.4, sd_residual=4.0,
                     dropout={"control": 0.25, "stretching": 0.20, "loading": 0.15})
RESULTS = Path(__file__).parent / "results" / "power.md"


def naive_statsmodels(n: int, seed: int = 0) -> tuple[float, float, float]:
    """(wall s, CPU s, power) per replicate of a plain statsmodels MixedLM loop."""
    import statsmodels.formula.api as smf

    rej = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for ss in np.random.SeedSequence(seed).spawn(n):
        y, arm = dsg.draw_trial(DESIGN, np.random.default_rng(ss))
        data = dsg.to_long(y, arm, DESIGN.weeks, DESIGN.arms)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm("value ~ week * C(arm, Treatment('control'))", data,
                              groups=data["participant_id"], re_formula="~week").fit()
        rej += fit.pvalues["week:C(arm, Treatment('control'))[T.loading]"] < 0.05
    return ((time.perf_counter() - t0) / n, (time.process_time() - c0) / n, rej / n)


def timed(**kw):
    """(wall s, CPU s of this process, result)."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = simulate_power(DESIGN, seed=1, **kw)
    return time.perf_counter() - t0, time.process_time() - c0, res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sim", type=int, default=1000, help="replicates of the n_jobs=2 run")
    ap.add_argument("--probe", type=int, default=100, help="in-process replicates (CPU time)")
    ap.add_argument("--naive", type=int, default=10, help="statsmodels replicates")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    simulate_power(DESIGN, n_sim=2, n_jobs=1, seed=99)  # warm-up: imports, first fits
    load0 = os.getloadavg()
    cpu = []  # in-process runs: label, n, wall/rep, cpu/rep, power
    for label, df in [("hipstats fit_lmm, Satterthwaite df", "satterthwaite"),
                      ("hipstats fit_lmm, Wald (normal) df", "wald")]:
        wall, c, res = timed(n_sim=args.probe, n_jobs=1, df=df)
        cpu.append((label, args.probe, wall / args.probe, c / args.probe, res.power))
        print(cpu[-1], flush=True)
    w, c, pw = naive_statsmodels(args.naive)
    cpu.append(("naive loop: statsmodels MixedLM (Wald)", args.naive, w, c, pw))
    print(cpu[-1], flush=True)

    wall, _, res = timed(n_sim=args.n_sim, n_jobs=2, df="satterthwaite")
    par = (args.n_sim, wall, res.power, res.n_failed, res.ci_low, res.ci_high)
    print(par, flush=True)
    load1 = os.getloadavg()

    t1000_wall = 1000 * wall / args.n_sim
    t1000_idle = 1000 * cpu[0][3] / 2
    lines = [
        "# Simulation power benchmark (`benchmarks/bench_power.py`)",
        "",
        "Design: 3 arms x 5 visits (weeks 0-12) x 60 per arm, dropout 25/20/15 %, random "
        "intercept + slope (`sd_intercept` 9, `sd_slope` 0.4, `sd_residual` 4); test: "
        "loading - control difference in slopes (true 0.5 deg/week). "
        f"Machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, single-threaded BLAS. "
        f"Load average (1 min) at start {load0[0]:.1f}, at end {load1[0]:.1f}: when it is "
        "above the number of cores, other jobs shared the machine and wall times are "
        "inflated; the CPU time per replicate is the load-independent figure.",
        "",
        "## Parallel run (joblib/loky, n_jobs=2)",
        "",
        "| replicates | wall s | replicates/s | power (95% CI) | failed |",
        "| ---: | ---: | ---: | --- | ---: |",
        f"| {par[0]} | {par[1]:.1f} | {par[0] / par[1]:.2f} | {par[2]:.3f} "
        f"({par[4]:.3f}-{par[5]:.3f}) | {par[3]} |",
        "",
        "## Per replicate, in one process",
        "",
        "| engine | replicates | wall ms/replicate | CPU ms/replicate | power |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in cpu:
        lines.append(f"| {r[0]} | {r[1]} | {1000 * r[2]:.0f} | {1000 * r[3]:.0f} | "
                     f"{r[4]:.3f} |")
    lines += [
        "",
        f"* 1,000 replicates, Satterthwaite df, n_jobs=2, measured wall time: "
        f"**{t1000_wall:.0f} s** (target < 60 s: {'met' if t1000_wall < 60 else 'not met'} "
        "at this machine load).",
        f"* Projected on 2 idle cores from CPU time (1000 x CPU per replicate / 2): "
        f"**{t1000_idle:.0f} s** ({'meets' if t1000_idle < 60 else 'misses'} the target).",
        f"* CPU per replicate vs the naive statsmodels loop: "
        f"{cpu[2][3] / cpu[0][3]:.0f}x less with Satterthwaite df, "
        f"{cpu[2][3] / cpu[1][3]:.0f}x less with Wald df.",
        "* Powers from few replicates (the per-process rows) carry wide Monte Carlo error; "
        "statsmodels uses Wald z tests.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        old = RESULTS.read_text() if RESULTS.exists() else ""
        if "\n## History" in old:
            text += old[old.index("\n## History"):]
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
