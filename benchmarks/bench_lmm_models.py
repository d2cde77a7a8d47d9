"""Benchmark: several grouping factors, the one-factor engine, and ANOVA with Kenward-Roger.

In one run, each hipstats fit timed against lme4 (``Rscript``; time of ``lmer`` only, data
already loaded, inside R with ``system.time``):

1. **InstEval** (lme4's data set: 73,421 ratings, 2,972 students x 1,128 instructors x 14
   departments, crossed): ``y ~ service + (1 | s) + (1 | d) + (1 | dept)``, REML. Target:
   hipstats <= 0.5x lme4's time with an equal or better log-likelihood. (The data are written
   by R from ``lme4::InstEval``; nothing is stored in the repository.)
2. **10,000 participants x 6 visits** (simulated as in ``bench_lmm.py``):
   ``value ~ arm * week + (1 + week | participant_id)``. Target: <= 0.25x lme4.
3. **ANOVA with Kenward-Roger df at 2,000 participants** (the same design): time of
   ``res.anova(type=3, ddf="kenward-roger")`` on a fitted model, cold (nothing cached), against
   lmerTest's ``anova(m, ddf = "Satterthwaite")`` (pbkrtest's Kenward-Roger at this size builds
   dense 12,000 x 12,000 matrices; it is run only with ``--r-kr``). Target: under one second.

Run::

    .venv/bin/python benchmarks/bench_lmm_models.py     # writes benchmarks/results/lmm_models.md
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
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_lmm import simulate  # noqa: E402

from hipstats.models.lmm import fit_lmm  # noqa: E402

INSTEVAL = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"
COHORT = "value ~ arm * week + (1 + week | participant_id)"

R_SCRIPT = r"""
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
what <- args[1]; out <- args[2]; reps <- as.integer(args[3])
if (what == "insteval_data") {
  d <- lme4::InstEval
  write.csv(data.frame(s = as.integer(as.character(d$s)), d = as.integer(as.character(d$d)),
                       dept = as.integer(as.character(d$dept)),
                       service = as.integer(d$service) - 1L, y = as.integer(d$y)),
            out, row.names = FALSE)
  quit(save = "no")
}
d <- read.csv(args[4])
if (what == "insteval") {
  for (c in c("s", "d", "dept")) d[[c]] <- factor(d[[c]])
  f <- y ~ service + (1 | s) + (1 | d) + (1 | dept)
} else {
  d$arm <- factor(d$arm, levels = c("control", "stretching", "loading"))
  f <- value ~ arm * week + (1 + week | participant_id)
}
times <- numeric(reps)
for (r in seq_len(reps))
  times[r] <- system.time(m <- lme4::lmer(f, data = d, REML = TRUE))[["elapsed"]]
res <- list(times = times, loglik = as.numeric(logLik(m)), theta = unname(getME(m, "theta")),
            feval = m@optinfo$feval, messages = m@optinfo$conv$lme4$messages,
            lme4 = as.character(packageVersion("lme4")), R = R.version.string)
if (what == "anova") {
  mt <- lmerTest::lmer(f, data = d, REML = TRUE)
  res$anova_satt_s <- system.time(a <- anova(mt, type = 3))[["elapsed"]]
  if (length(args) >= 5 && args[5] == "kr")
    res$anova_kr_s <- system.time(anova(mt, type = 3, ddf = "Kenward-Roger"))[["elapsed"]]
}
write_json(res, out, auto_unbox = TRUE, digits = NA)
"""


def run_r(tmp, what, data=None, repeats=1, extra=()):
    script = Path(tmp) / "bench.R"
    script.write_text(R_SCRIPT)
    out = Path(tmp) / f"{what}.json"
    cmd = ["Rscript", str(script), what, str(out), str(repeats)]
    if data is not None:
        cmd.append(str(data))
    cmd += list(extra)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"R failed ({what}): {proc.stderr[-800:]}")
    res = json.loads(out.read_text())
    res["times"] = [float(x) for x in np.atleast_1d(res["times"])]   # one repeat: a scalar
    return res


def time_fit(formula, df, repeats):
    times, res = [], None
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            res = fit_lmm(formula, df)
            times.append(time.perf_counter() - t0)
    return times, res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the cohort fits")
    ap.add_argument("--insteval-repeats", type=int, default=1)
    ap.add_argument("--r-kr", action="store_true", help="also time pbkrtest's Kenward-Roger ANOVA")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lmm_models.md"))
    args = ap.parse_args(argv)
    if shutil.which("Rscript") is None:
        sys.exit("Rscript with lme4 and lmerTest is needed for the ratios")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # 1. InstEval
        data = Path(tmp) / "insteval.csv"
        script = Path(tmp) / "bench.R"
        script.write_text(R_SCRIPT)
        subprocess.run(["Rscript", str(script), "insteval_data", str(data), "0"], check=True,
                       capture_output=True)
        ie = pd.read_csv(data)
        print("InstEval: hipstats ...", flush=True)
        ht, hres = time_fit(INSTEVAL, ie, args.insteval_repeats)
        print(f"  {min(ht):.2f} s llf {hres.llf:.6f}", flush=True)
        print("InstEval: lme4 ...", flush=True)
        r = run_r(tmp, "insteval", data, args.insteval_repeats)
        print(f"  {min(r['times']):.2f} s llf {r['loglik']:.6f}", flush=True)
        rows.append(dict(model="InstEval crossed (1|s)+(1|d)+(1|dept)", rows=len(ie),
                         hipstats_s=min(ht), lme4_s=min(r["times"]), target="<= 0.5",
                         llf_diff=hres.llf - r["loglik"], hipstats_evals=hres.fit_info["nfev"],
                         lme4_evals=r["feval"], lme4=r["lme4"], R=r["R"]))
        # 2. 10,000 participants
        df = simulate(10000, seed=10000)
        path = Path(tmp) / "cohort10k.csv"
        df.to_csv(path, index=False)
        print("10,000 participants: hipstats ...", flush=True)
        ht, hres = time_fit(COHORT, df, args.repeats)
        print(f"  {min(ht):.2f} s", flush=True)
        r = run_r(tmp, "cohort", path, args.repeats)
        print(f"  lme4 {min(r['times']):.2f} s", flush=True)
        rows.append(dict(model="10,000 participants (1 + week | participant_id)", rows=len(df),
                         hipstats_s=min(ht), lme4_s=min(r["times"]), target="<= 0.25",
                         llf_diff=hres.llf - r["loglik"], hipstats_evals=hres.fit_info["nfev"],
                         lme4_evals=r["feval"]))
        # 3. ANOVA with Kenward-Roger at 2,000 participants
        df2 = simulate(2000, seed=2000)
        path2 = Path(tmp) / "cohort2k.csv"
        df2.to_csv(path2, index=False)
        kr_times, satt_times = [], []
        for _ in range(args.repeats):
            fresh = fit_lmm(COHORT, df2)
            t0 = time.perf_counter()
            a_kr = fresh.anova(type=3, ddf="kenward-roger")
            kr_times.append(time.perf_counter() - t0)
            fresh = fit_lmm(COHORT, df2)
            t0 = time.perf_counter()
            fresh.anova(type=3, ddf="satterthwaite")
            satt_times.append(time.perf_counter() - t0)
        r = run_r(tmp, "anova", path2, 1, extra=("kr",) if args.r_kr else ())
    anova_row = dict(kr_s=min(kr_times), satt_s=min(satt_times),
                     r_satt_s=r.get("anova_satt_s"), r_kr_s=r.get("anova_kr_s"),
                     table=a_kr)
    write_report(pd.DataFrame(rows), anova_row, Path(args.out), args)
    print(Path(args.out).read_text())


def _markdown(df):
    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def write_report(t, a, path, args):
    import scipy

    lines = ["# Mixed models: several grouping factors, one-factor engine, Kenward-Roger ANOVA", "",
             f"Generated by `benchmarks/bench_lmm_models.py` (`--repeats {args.repeats} "
             f"--insteval-repeats {args.insteval_repeats}`). Times in seconds, best of the "
             "repeats, hipstats' whole `fit_lmm` call (model frame, sufficient statistics, "
             "optimisation, convergence check) against lme4's `lmer` alone (data loaded), "
             "both REML; `llf` = hipstats minus lme4 (>= 0: hipstats' optimum is as good or "
             "better).", "",
             "| model | rows | hipstats s | lme4 s | hipstats / lme4 | target | llf hipstats - lme4 "
             "| deviance evaluations hipstats / lme4 |",
             "|---|---:|---:|---:|---:|:--:|---:|---:|"]
    for _, r in t.iterrows():
        lines.append(f"| {r['model']} | {r['rows']:,} | {r['hipstats_s']:.2f} | {r['lme4_s']:.2f} "
                     f"| {r['hipstats_s'] / r['lme4_s']:.2f} | {r['target']} | "
                     f"{r['llf_diff']:.2e} | {r['hipstats_evals']} / {r['lme4_evals']} |")
    lines += ["", "hipstats' evaluation count includes the convergence check (finite-difference "
              "gradient and Hessian for the blocked engine; the one-factor engine's count is "
              "of L-BFGS-B steps with analytic gradients).", "",
              "## ANOVA (type III) at 2,000 participants x 6 visits", "",
              f"`res.anova(type=3, ddf='kenward-roger')` on a fresh fit (nothing cached): "
              f"**{a['kr_s']:.3f} s** (target: under 1 s); Satterthwaite: {a['satt_s']:.3f} s; "
              f"lmerTest's `anova(m, type = 3)` (Satterthwaite): "
              f"{a['r_satt_s']:.3f} s" + (f"; lmerTest/pbkrtest Kenward-Roger: {a['r_kr_s']:.1f} s"
                                          if a.get("r_kr_s") else
                                          "; pbkrtest's Kenward-Roger not run (`--r-kr`)") + ".",
              "", _markdown(a["table"]), ""]
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    lines += ["Timings on a shared 2-core machine with other jobs running; the ratios come from "
              "the same run.", "",
              "Environment: " + ", ".join([
                  f"Python {platform.python_version()}", f"numpy {np.__version__}",
                  f"scipy {scipy.__version__}", f"{t['R'].iloc[0]}, lme4 {t['lme4'].iloc[0]}",
                  f"{os.cpu_count()} CPUs", "load average at the end "
                  f"{tuple(round(x, 1) for x in load)}"]) + ".", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
