"""Benchmark: MMRM fit time, hipstats vs nlme::gls (and the mmrm package when installed).

Model: ``value ~ baseline + arm * visit`` with an unstructured residual covariance across 5
visits (gls: ``correlation = corSymm(form = ~ visit_index | participant_id)``,
``weights = varIdent(form = ~ 1 | visit)``; mmrm: ``us(visit | participant_id)``), REML, on a
simulated trial of 2,000 participants x 5 visits, 2 arms, 15% of participants dropping out
for good at a random follow-up visit (monotone missing data).

In the same run:

* ``hipstats.fit_mmrm`` (the whole call: design, visit patterns, optimisation, Hessian for
  the df); best and median of ``--repeats`` runs;
* ``nlme::gls`` via ``Rscript``, timed inside R (``system.time`` around ``gls`` only, data
  already loaded);
* ``mmrm::mmrm`` the same way, when the mmrm package is installed (``--r-lib`` adds a library).

The REML log-likelihoods (the same criterion in all three) are reported, and the largest
relative difference of the residual covariance matrices, so the table also shows that the
three reached the same optimum.

Run::

    .venv/bin/python benchmarks/bench_mmrm.py               # writes benchmarks/results/mmrm.md
    .venv/bin/python benchmarks/bench_mmrm.py --n 500 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hipstats.models.mmrm import fit_mmrm  # noqa: E402

FORMULA = "value ~ baseline + C(arm, Treatment('control')) * C(visit)"
VISITS = ["week0", "week3", "week6", "week9", "week12"]

R_SCRIPT = r"""
suppressPackageStartupMessages({library(nlme); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$arm <- factor(d$arm, levels = c("control", "loading"))
d$visit <- factor(d$visit, levels = c("week0", "week3", "week6", "week9", "week12"))
d$participant_id <- factor(d$participant_id)
reps <- as.integer(args[3])
out <- list(R = R.version.string, nlme = as.character(packageVersion("nlme")))
times <- numeric(reps)
for (r in seq_len(reps)) {
  times[r] <- system.time(
    g <- gls(value ~ baseline + arm * visit, data = d,
             correlation = corSymm(form = ~ visit_index | participant_id),
             weights = varIdent(form = ~ 1 | visit), method = "REML")
  )[["elapsed"]]
}
full <- names(which(table(d$participant_id) == 5))[1]
out$gls <- list(times = times, loglik = as.numeric(logLik(g)),
                sigma = unname(unclass(getVarCov(g, individual = full))[1:5, 1:5]))
if (nzchar(args[4])) .libPaths(c(args[4], .libPaths()))
if (requireNamespace("mmrm", quietly = TRUE)) {
  suppressPackageStartupMessages(library(mmrm))
  mt <- numeric(reps)
  for (r in seq_len(reps)) {
    mt[r] <- system.time(
      m <- mmrm(value ~ baseline + arm * visit + us(visit | participant_id), data = d,
                reml = TRUE)
    )[["elapsed"]]
  }
  out$mmrm <- list(times = mt, loglik = as.numeric(logLik(m)), sigma = unname(VarCorr(m)),
                   version = as.character(packageVersion("mmrm")))
}
write_json(out, args[2], auto_unbox = TRUE, digits = NA)
"""


def simulate(n, seed=0, dropout=0.15):
    """n participants x 5 visits, unstructured covariance, monotone dropout of ``dropout``."""
    rng = np.random.default_rng(seed)
    m = len(VISITS)
    sd = np.array([8.0, 8.5, 9.0, 9.5, 10.0])
    lag = np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
    cor = 0.45 + 0.4 * 0.75 ** lag
    np.fill_diagonal(cor, 1.0)
    S = cor * np.outer(sd, sd)
    arm = np.where(np.arange(n) % 2 == 0, "control", "loading")
    base = rng.normal(36, 9, n)
    effect = np.array([0.0, 1.5, 3.0, 4.0, 4.5])
    mu = 0.5 * (base[:, None] - 36) + 36 + 0.3 * np.arange(m) + (arm == "loading")[:, None] * effect
    y = mu + rng.multivariate_normal(np.zeros(m), S, n)
    d = pd.DataFrame({"participant_id": np.repeat(np.arange(n), m), "visit": np.tile(VISITS, n),
                      "visit_index": np.tile(np.arange(1, m + 1), n), "arm": np.repeat(arm, m),
                      "baseline": np.repeat(base, m), "value": y.ravel()})
    drops = rng.random(n) < dropout
    first_missing = rng.integers(1, m, n)
    gone = np.repeat(drops, m) & (np.tile(np.arange(m), n) >= np.repeat(first_missing, m))
    return d.loc[~gone].reset_index(drop=True)


def time_hipstats(d, repeats):
    times, fit = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit = fit_mmrm(FORMULA, d, participant="participant_id", visit="visit", visits=VISITS)
        times.append(time.perf_counter() - t0)
    return times, fit


def run_r(d, repeats, r_lib):
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv, out, script = Path(tmp, "d.csv"), Path(tmp, "out.json"), Path(tmp, "b.R")
        d.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        proc = subprocess.run(["Rscript", str(script), str(csv), str(out), str(repeats), r_lib or ""],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return None
        res = json.loads(out.read_text())
        for part in ("gls", "mmrm"):
            if part in res:
                res[part]["times"] = [float(t) for t in np.atleast_1d(res[part]["times"])]
        return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--r-repeats", type=int, default=1)
    ap.add_argument("--r-lib", default=os.environ.get("MMRM_R_LIB", ""))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mmrm.md"))
    args = ap.parse_args()
    d = simulate(args.n)
    n_drop = args.n * len(VISITS) - len(d)
    fit_mmrm(FORMULA, d.head(200), participant="participant_id", visit="visit", visits=VISITS)  # warm-up
    times, fit = time_hipstats(d, args.repeats)
    load = os.getloadavg()[0]
    r = run_r(d, args.r_repeats, args.r_lib)
    hs_best, hs_med = min(times), float(np.median(times))
    S = fit.cov_residual.to_numpy()
    rows = [("hipstats fit_mmrm", hs_best, hs_med, fit.llf, 0.0, "1.00")]
    if r is not None:
        g = r["gls"]
        gt = min(g["times"])
        rows.append((f"nlme::gls {r['nlme']}", gt, float(np.median(g["times"])), g["loglik"],
                     float(np.max(np.abs(np.array(g["sigma"]) - S) / np.abs(S))), f"{gt / hs_best:.1f}"))
        if "mmrm" in r:
            mm = r["mmrm"]
            mt = min(mm["times"])
            rows.append((f"mmrm {mm['version']}", mt, float(np.median(mm["times"])),
                         mm["loglik"],
                         float(np.max(np.abs(np.array(mm["sigma"]) - S) / np.abs(S))), f"{mt / hs_best:.1f}"))
    lines = [
        "# MMRM benchmark: hipstats vs nlme::gls (and mmrm)", "",
        f"{args.n} participants x {len(VISITS)} visits, 2 arms, {n_drop} of {args.n * len(VISITS)} "
        f"visits missing ({int((d.groupby('participant_id').size() < len(VISITS)).sum())} participants "
        "dropped out), unstructured covariance, REML. `value ~ baseline + arm * visit`.", "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"1-minute load average {load:.1f} when hipstats was timed (a shared machine: compare the "
        "ratios, measured in this one run).", "",
        "| method | best (s) | median (s) | REML logLik | max rel. diff. of Sigma vs hipstats | time / hipstats |",
        "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, best, med, ll, dS, ratio in rows:
        lines.append(f"| {name} | {best:.3f} | {med:.3f} | {ll:.4f} | {dS:.1e} | {ratio} |")
    if r is not None:
        lines += ["", f"hipstats / nlme::gls time ratio: **{hs_best / min(r['gls']['times']):.3f}** "
                  "(target <= 0.2)."]
    else:
        lines += ["", "Rscript or nlme not available: no comparison in this run."]
    lines += ["", f"hipstats: {args.repeats} runs, gls/mmrm: {args.r_repeats} run(s) each; timed "
              "whole call for hipstats (model frame, design, patterns, fit, Hessian), the fitting call "
              "inside R for gls/mmrm (data already loaded).", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
