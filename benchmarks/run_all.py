"""Run every benchmark in turn (``make bench``); each writes its Markdown report to results/.

Timings depend on the machine and its load: compare the ratios each script measures in one
run, not absolute seconds across runs. R (lme4) is used when ``Rscript`` is installed; see
benchmarks/README.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = ["bench_lmm.py", "bench_mmrm.py", "bench_power.py", "bench_report.py"]


def main() -> int:
    failed = []
    for name in SCRIPTS:
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / name), *sys.argv[1:]])
        print(f"== {name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
