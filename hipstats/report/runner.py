"""Run the report notebooks: validate, execute in parallel, export offline HTML, index, manifest.

:func:`run_reports` is what ``hipstats report`` calls. Order of events:

1. pick the notebooks (``only``) and read their declared parameters;
2. check the user's parameters against those declarations (:class:`ParameterError`, exit 2);
3. read and validate the source once (:class:`ValidationError`, exit 2) and check ``as_of``;
   nothing has been written up to here;
4. lock the output folder (a second run on it gets :class:`ReportError`, exit 1) and
   work in a hidden temporary folder inside it;
5. execute the notebooks with papermill, each in its own worker process and its own
   kernel (the kernel is this environment's Python, ``sys.executable``; each worker
   starts its first kernel during step 3, see :mod:`hipstats.report.kernels`), ``jobs`` at a
   time, longest first when an earlier run's durations are known; a notebook that fails
   does not stop the others;
6. export each executed notebook to HTML without code (:mod:`hipstats.report.export`),
   collect its key findings (:mod:`hipstats.report.findings`), write ``index.html`` and
   ``manifest.json``;
7. rename the temporary folder to ``<out>/<run_id>`` and only then point ``latest`` at it.

Examples
--------
>>> import hipstats as hs                                        # doctest: +SKIP
>>> run = hs.run_reports("data/example", out="reports", only=["data_quality"])  # doctest: +SKIP
>>> run.ok, run.index                                            # doctest: +SKIP
(True, PosixPath('reports/20260101-080000/index.html'))
"""

from __future__ import annotations

import datetime as _dt
import html as _html
import json
import os
import shutil
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hipstats.errors import ParameterError, ReportError, RunFailedError, ValidationError
from hipstats.report import findings as _findings
from hipstats.report import kernels as _kernels
from hipstats.report import notes as _notes
from hipstats.report import publish as _publish
from hipstats.report.data import SNAPSHOT_ENV, SOURCE_ENV, resolve_source, write_snapshot
from hipstats.report.lock import OutputLock
from hipstats.report.manifest import git_info, input_files, mask_source, package_versions
from hipstats.report.index import source_name
from hipstats.report.pdf import require_browser, write_pdfs
from hipstats.report.params import (
    NotebookInfo,
    list_notebooks,
    load_params_file,
    parse_param_strings,
    resolve_parameters,
    select_notebooks,
)

__all__ = ["run_reports", "RunResult", "NotebookResult", "check_as_of"]

@dataclass
class NotebookResult:
    """What happened to one notebook in a run."""

    name: str
    title: str
    status: str  # "ok" | "failed"
    duration_s: float
    html: str | None = None  # path relative to the run folder
    notebook: str | None = None  # executed .ipynb, relative to the run folder
    error: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class RunResult:
    """A finished report run.

    Attributes
    ----------
    run_id : str
    run_dir : Path
        ``<out>/<run_id>``.
    results : list of NotebookResult
    manifest : dict
        The content of ``manifest.json``.
    published : bool
        Whether ``<out>/latest`` now points at this run (False only when every notebook
        failed; :func:`run_reports` then raises :class:`~hipstats.errors.RunFailedError`).
    """

    run_id: str
    run_dir: Path
    results: list[NotebookResult]
    manifest: dict[str, Any]
    published: bool = True

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def index(self) -> Path:
        return self.run_dir / "index.html"

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if not r.ok]

    def findings(self) -> pd.DataFrame:
        """All key findings of the run: notebook, area, question, estimate, ci_low, ci_high, p, sentence."""
        rows = [{"notebook": r.name, **f} for r in self.results for f in r.findings]
        cols = ["notebook", "area", "question", "estimate", "ci_low", "ci_high", "p", "sentence"]
        return pd.DataFrame(rows, columns=cols + ["digits"])[cols] if rows else pd.DataFrame(columns=cols)

    def summary(self) -> pd.DataFrame:
        """One row per notebook: name, title, status, duration_s, findings, error, html."""
        return pd.DataFrame([{"notebook": r.name, "title": r.title, "status": r.status,
                              "duration_s": round(r.duration_s, 2), "findings": len(r.findings),
                              "error": r.error or "", "html": str(self.run_dir / r.html) if r.html else ""}
                             for r in self.results])

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"{len(self.failed)} failed ({', '.join(self.failed)})"
        return f"<RunResult {self.run_id}: {len(self.results)} notebooks, {state}; {self.index}>"

    def _repr_html_(self) -> str:
        return f"<p><b>Report run {_html.escape(self.run_id)}</b> &mdash; {_html.escape(str(self.index))}</p>" + \
            self.summary().to_html(index=False)


# ------------------------------------------------------------------------------ helpers
def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).astimezone()


def check_as_of(as_of) -> str:
    """Normalise an ``--as-of`` date to ``YYYY-MM-DD`` ("" when not given)."""
    if as_of in (None, ""):
        return ""
    try:
        ts = pd.Timestamp(str(as_of))
    except (ValueError, TypeError):
        raise ParameterError(f"--as-of must be a date such as 2026-03-31, got '{as_of}'") from None
    if ts is pd.NaT or pd.isna(ts):
        raise ParameterError(f"--as-of must be a date such as 2026-03-31, got '{as_of}'")
    return ts.strftime("%Y-%m-%d")


def _previous_durations(out: Path) -> dict[str, float]:
    rid = _publish.current_run(out)
    manifest = out / rid / "manifest.json" if rid else None
    try:
        if manifest is None or manifest.is_symlink() or not manifest.is_file() or manifest.stat().st_size > 1 << 22:
            return {}
        m = json.loads(manifest.read_text(encoding="utf-8"))
        return {n["name"]: float(n["duration_s"]) for n in m.get("notebooks", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _new_run_id(out: Path, run_id: str | None) -> str:
    if run_id:
        _publish.check_run_id(run_id)
        if os.path.lexists(out / run_id):
            raise ReportError(f"run folder {out / run_id} already exists; choose another --run-id")
        return run_id
    base = _now().strftime("%Y%m%d-%H%M%S")
    rid, k = base, 1
    while os.path.lexists(out / rid):
        k += 1
        rid = f"{base}-{k}"
    return rid


def _check_complete(tmp: Path, results: list[NotebookResult]) -> None:
    """Refuse to publish a run folder in which a page it lists is missing (disk full, write error)."""
    missing = [r.html for r in results if r.html and not (tmp / r.html).is_file()]
    missing += [n for n in ("index.html", "manifest.json") if not (tmp / n).is_file()]
    if missing:
        raise ReportError(f"the run could not be written completely ({', '.join(missing)} missing: disk full "
                          "or not writable?); it was not published and the previous run stays the latest")


def _check_unchanged(files: list[dict[str, Any]]) -> None:
    """Refuse to publish a run whose input files changed while it ran (the manifest would not match)."""
    from hipstats.report.manifest import sha256_file  # noqa: PLC0415

    changed = []
    for f in files:
        p = Path(f["path"])
        try:
            if p.stat().st_size != f["bytes"] or sha256_file(p) != f["sha256"]:
                changed.append(p.name)
        except OSError:
            changed.append(p.name)
    if changed:
        raise ReportError(f"the source changed during the report run ({', '.join(changed)}); the run was not "
                          "published. Run the report again when the data are no longer being written")


# ------------------------------------------------------------------------------ worker
def _execute_one(job: dict[str, Any]) -> dict[str, Any]:
    """Run one notebook with papermill and export it (runs in a worker, see :func:`kernels.init_worker`)."""
    import nbformat  # noqa: PLC0415
    import papermill  # noqa: PLC0415

    from hipstats.report.export import external_references, notebook_to_html  # noqa: PLC0415

    run_dir = Path(job["run_dir"])
    out_nb = run_dir / job["notebook_rel"]
    out_html = run_dir / job["html_rel"]
    t0 = time.perf_counter()
    status, error, km, tb = "ok", None, None, None
    try:
        km = _kernels.take_kernel()
        papermill.execute_notebook(job["path"], str(out_nb), parameters=job["parameters"], km=km,
                                   kernel_name=km.kernel_name, progress_bar=False,
                                   log_output=False, request_save_on_cell_execute=False,
                                   execution_timeout=job["timeout"], report_mode=True)
    except papermill.PapermillExecutionError as exc:
        status, error = "failed", f"{exc.ename}: {exc.evalue}".strip()
    except Exception as exc:  # kernel died, timeout, unreadable notebook ...
        status, error = "failed", f"{type(exc).__name__}: {exc}".strip()
    finally:
        if km is not None:
            _kernels.stop_kernel(km)
    duration = time.perf_counter() - t0
    found: list[dict[str, Any]] = []
    noted: list[dict[str, Any]] = []
    try:
        if out_nb.is_file():
            nb = nbformat.read(out_nb, as_version=4)
            found = [f.to_dict() for f in _findings.extract(nb)]
            noted = _notes.extract(nb)
            page = notebook_to_html(nb, title=job["title"], failed=status != "ok", banner=job["banner"])
        else:
            page = _error_page(job["title"])
        refs = external_references(page)
        if refs:
            raise ReportError(f"refusing to write {out_html.name}: it would load or run "
                              f"{'; '.join(refs[:3])[:300]}")
        _publish.write_atomic(out_html, page)
    except Exception as exc:
        status = "failed"
        msg = f"HTML export failed: {type(exc).__name__}: {exc}"
        error = f"{error}; {msg}" if error else msg
        tb = traceback.format_exc()  # for the manifest; a page shows no traceback
        try:
            _publish.write_atomic(out_html, _error_page(job["title"]))
        except OSError:
            pass  # disk full: the runner finds the page missing and does not publish the run
    return {"name": job["name"], "status": status, "duration_s": round(duration, 3), "error": error,
            "traceback": tb, "findings": found, "warnings": noted, "export_s": round(time.perf_counter() - t0 - duration, 3)}


def _error_page(title: str) -> str:
    """The page of a notebook that produced no page: a plain sentence; the error goes to the manifest."""
    from hipstats.report.export import report_css  # noqa: PLC0415

    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_html.escape(title)}</title>'
            f'<style>{report_css()}</style></head><body><nav class="hipstats-nav"><a href="../index.html">'
            f'&larr; All reports of this run</a></nav><main><h1>{_html.escape(title)}</h1>'
            f'<div class="hipstats-failed-banner">This report could not be produced.</div>'
            f'<p>What went wrong is recorded for the analyst in the run\'s manifest.json (entry '
            f'&ldquo;{_html.escape(title)}&rdquo;), with the full traceback when there is one; '
            f'a page shows no program output.</p></main></body></html>')


# ------------------------------------------------------------------------------ main entry
def run_reports(source=None, out="reports", *, only=None, params: dict[str, Any] | list[str] | None = None,
                params_file=None, as_of=None, run_id: str | None = None, jobs: int | None = None,
                notebooks_dir=None, timeout: float | None = None, progress: bool = True,
                console=None, pdf: bool = False, config=None, arms=None, event_map=None) -> RunResult:
    """Run the report notebooks on a cohort and write offline HTML, an index and a manifest.

    Parameters
    ----------
    source : str or path-like, optional
        Cohort source (folder, file, REDCap export or SQLAlchemy URL). Default: the
        environment variable ``HIPSTATS_SOURCE``; required when a selected notebook reads data.
    out : path-like
        Output folder; the run lands in ``<out>/<run_id>/`` and ``<out>/latest`` points to it.
    only : list of str or str, optional
        Notebook names to run (default: every notebook in the default set).
    params : dict or list of "key=value", optional
        Notebook parameters, checked against each notebook's declared parameters and types.
        ``"nb.key"`` (or ``{nb: {key: value}}``) targets one notebook.
    params_file : path-like, optional
        YAML/JSON file of parameters (``params`` override it).
    as_of : str or date, optional
        Restrict every notebook to data recorded on or before this date.
    run_id : str, optional
        Name of the run folder (default a local timestamp, ``YYYYmmdd-HHMMSS``).
    jobs : int, optional
        Notebooks run at the same time (default ``os.cpu_count()``).
    notebooks_dir : path-like, optional
        A folder of customised notebooks (``hipstats init`` writes one); default the notebooks
        that ship inside the package (:mod:`hipstats.notebooks`).
    timeout : float, optional
        Per-cell execution timeout in seconds (default none).
    progress : bool
        Show a progress display on stderr.
    config : path-like, optional
        A project settings file (``hipstats.yaml``, see :mod:`hipstats.report.project`):
        ``source`` when none is given, ``arms``, ``reference_arm``, ``event_map``. Works for
        every source kind (a database or a single file has no folder to hold one).
    arms : sequence of str or str, optional
        Allowed arms, reference first (comma-separated string accepted); overrides ``config``
        and the source folder's ``hipstats.yaml``.
    event_map : dict, optional
        REDCap event name -> visit label and week; overrides ``config``.
    pdf : bool
        Also print every page (and the index) to an A4 PDF beside it with headless Chromium
        (:mod:`hipstats.report.pdf`); checked before anything runs.

    Returns
    -------
    RunResult
        ``.ok`` is False when some notebook failed (the run is still complete, indexed and
        becomes ``latest``).

    Raises
    ------
    ParameterError
        Unknown parameter, wrong type, unknown notebook, bad ``as_of`` or run id.
    ValidationError
        The source breaks the data contract (nothing is written).
    ReportError
        Another run holds the lock on ``out``, or the output cannot be written.
    RunFailedError
        Every notebook failed: the run folder is complete (each page shows its error) but
        ``latest`` is not moved; the :class:`RunResult` is the exception's ``run``.

    Notes
    -----
    Safe to call from a plain script without an ``if __name__ == "__main__":`` guard: the
    worker processes do not run the caller's main module again
    (:func:`hipstats.report.kernels.worker_context`).
    """
    started = _now()
    t_start = time.perf_counter()
    catalogue = list_notebooks(notebooks_dir)
    selected = select_notebooks(catalogue, only)
    nb_dir = selected[0].path.parent

    given: dict[str, Any] = {}
    if params_file:
        given.update(load_params_file(params_file))
    if isinstance(params, (list, tuple)):
        given.update(parse_param_strings(params))
    elif params:
        given.update(params)
    as_of_s = check_as_of(as_of)
    _publish.check_run_id(run_id)
    browser = require_browser() if pdf else None  # a missing browser is said before anything runs
    load_options = _load_options(config, arms, event_map)
    configured = load_options.pop("source", None)
    if source in (None, ""):
        source = configured or os.environ.get(SOURCE_ENV, "").strip() or None
        if source is None and any(n.needs_data for n in selected):
            raise ParameterError(f"no SOURCE given: name the cohort (a folder, file, REDCap export or database "
                                 f"URL), e.g. `hipstats report data/cohort`, or set the environment variable "
                                 f"{SOURCE_ENV}")
    src = resolve_source(source) if source is not None else ""  # "" : no selected notebook reads data
    # notebooks get the source with any password masked (their executed copies are kept in the run
    # folder); they read the validated cohort from the run's snapshot, recorded under that name
    per_nb = resolve_parameters(selected, given, runner={"source": mask_source(src), "as_of": as_of_s},
                                catalogue=catalogue)
    jobs = max(1, int(jobs or os.cpu_count() or 1))

    # ---- start the worker processes now: each imports papermill and nbconvert and starts its first
    # kernel (which imports the analysis modules) while the source is validated below; nothing runs
    # a notebook until validation has passed. Kernelspec and snapshot live in a private temporary
    # folder outside the output, so a run that stops at validation writes nothing there.
    private = _kernels.private_folder()
    pool = None
    try:
        kernel_name, jupyter_path = _kernels.write_kernelspec(private / "jupyter")
        snapshot = private / "cohort.pkl"
        settings = {"kernel_name": kernel_name, "jupyter_path": jupyter_path, "cwd": str(nb_dir),
                    "env": {SNAPSHOT_ENV: str(snapshot)}}
        n_workers = min(jobs, len(selected))
        pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=_kernels.worker_context(),
                                   initializer=_kernels.init_worker, initargs=(settings,))
        for _ in range(n_workers):
            pool.submit(os.getpid)  # the pool starts its processes on demand: make it start them all now
        result = _run(pool, selected, catalogue, per_nb, given, src, as_of_s, run_id, jobs, out, nb_dir,
                      timeout, progress, console, started, t_start, snapshot, pdf_browser=browser,
                      load_options=load_options)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM turned into SystemExit by the command
        if pool is not None:
            _stop_pool_now(pool)
        raise
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # the workers stop the kernels they started
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return result


def _load_options(config, arms, event_map) -> dict[str, Any]:
    """``source``, ``arms``, ``event_map`` and ``config`` from a settings file, overridden by the arguments."""
    from hipstats.report.project import read_config  # noqa: PLC0415

    opts: dict[str, Any] = read_config(config) if config else {}
    if config:
        opts["config"] = str(config)  # the whole file (view settings too) reaches the cohort, any source
    if isinstance(arms, str):
        arms = [a.strip() for a in arms.split(",") if a.strip()]
    if arms:
        opts["arms"] = list(arms)
    if event_map:
        opts["event_map"] = event_map
    return {k: v for k, v in opts.items() if v is not None}


def _stop_pool_now(pool: ProcessPoolExecutor) -> None:
    """Stop the workers without waiting for their notebooks (each stops its kernels on SIGTERM)."""
    # ProcessPoolExecutor has no public way to stop running workers before Python 3.14
    # (terminate_workers); its process table is the only handle, and shutdown() drops it
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        try:
            proc.terminate()
        except (OSError, ValueError):
            pass


def _run(pool, selected, catalogue, per_nb, given, src, as_of_s, run_id, jobs, out, nb_dir, timeout, progress,
         console, started, t_start, snapshot: Path, pdf_browser: Path | None = None,
         load_options: dict[str, Any] | None = None) -> RunResult:
    # ---- validate the data before anything is written
    from hipstats.cohort.cohort import load_cohort  # noqa: PLC0415
    from hipstats.data.problems import ValidationReport  # noqa: PLC0415

    phases: dict[str, float] = {"prepare_s": time.perf_counter() - t_start}
    t_phase = time.perf_counter()
    needs_data = bool(src) and any("source" in n.parameters for n in selected)
    cohort = report = None
    cohort_info: dict[str, Any] = {}
    if needs_data:
        cohort = load_cohort(src, **(load_options or {}))  # raises ValidationError / SourceError
        cohort_info = {"arms": [str(a) for a in cohort.arms], "n_participants": int(cohort.n_participants),
                       "per_arm": {str(k): int(v) for k, v in
                                   cohort.participants["arm"].astype(str).value_counts().items()}}
        report = ValidationReport(mask_source(src), [])
        used = cohort
        if as_of_s:
            restricted = used = cohort.as_of(as_of_s)  # ParameterError when there are no dates
            if restricted.measurements.empty:
                raise ParameterError(f"no measurements were recorded on or before {as_of_s}")
        if used is not cohort:  # an interim run: the participants measured by the as-of date
            cohort_info["as_of_n_participants"] = int(used.n_participants)
            cohort_info["as_of_per_arm"] = {str(k): int(v) for k, v in
                                            used.participants["arm"].astype(str).value_counts().items()}
        dates = used.measurements["visit_date"].dropna() if "visit_date" in used.measurements else []
        if len(dates):  # the last measurement the reports use: the data's as-of date
            cohort_info["last_measured"] = str(dates.max())[:10]

    phases["validate_s"] = time.perf_counter() - t_phase
    out = Path(out).expanduser().resolve()
    lock = OutputLock(out)
    lock.acquire()
    tmp: Path | None = None
    try:
        _publish.check_pointers(out)
        _publish.clean_stale(out)
        rid = _new_run_id(out, run_id)
        lock.note({"run_id": rid, "started": started.isoformat(timespec="seconds")})
        tmp = out / _publish.partial_name(rid)
        (tmp / "reports").mkdir(parents=True)
        (tmp / "notebooks").mkdir()
        files = input_files(cohort.files if cohort is not None else [], src) if needs_data else []
        # a database has no file to hash: record the content of what was read instead
        fingerprint = cohort.fingerprint() if cohort is not None and "://" in src else None
        if cohort is not None:
            write_snapshot(snapshot, mask_source(src), cohort, report, files)
        del cohort
        banner = f"run {rid}" + (f" · data {source_name(mask_source(src))}" if src else "") + (f" as of {as_of_s}" if as_of_s else "")
        # longest first (durations of the previous run in this folder, else the notebooks' cost hints),
        # so that the slowest notebook does not start last and leave a core idle at the end
        previous = _previous_durations(out)
        if all(n.name in previous for n in selected):
            order = sorted(selected, key=lambda n: -previous[n.name])
        else:
            order = sorted(selected, key=lambda n: -n.cost)
        jobs_ = [{"name": n.name, "title": n.title, "path": str(n.path),
                  "parameters": per_nb[n.name], "run_dir": str(tmp),
                  "notebook_rel": f"notebooks/{n.name}.ipynb", "html_rel": f"reports/{n.name}.html",
                  "timeout": timeout, "banner": banner} for n in order]
        t_phase = time.perf_counter()
        raw = _run_pool(pool, jobs_, jobs, progress, console)
        _check_unchanged(files)
        phases["notebooks_s"] = time.perf_counter() - t_phase
        ended = _now()
        results = []
        for n in selected:
            r = raw[n.name]
            results.append(NotebookResult(n.name, n.title, r["status"], r["duration_s"],
                                          f"reports/{n.name}.html",
                                          f"notebooks/{n.name}.ipynb" if (tmp / f"notebooks/{n.name}.ipynb").exists()
                                          else None, r["error"], r["findings"], _public_params(per_nb[n.name])))
        manifest = {
            "hipstats_report": 1,
            "run_id": rid,
            "status": "ok" if all(r.ok for r in results) else "failed",
            "started": started.isoformat(timespec="seconds"),
            "ended": ended.isoformat(timespec="seconds"),
            "duration_s": round(time.perf_counter() - t_start, 3),
            "phases_s": {k: round(v, 3) for k, v in phases.items()},
            "source": mask_source(src),
            "as_of": as_of_s or None,
            "cohort": cohort_info,
            "inputs": files,
            "data_fingerprint": fingerprint,
            "parameters": {"given": _public_params(given), "per_notebook": {r.name: r.parameters for r in results}},
            "jobs": jobs,
            "kernel": {"python": sys.executable},
            "packages": package_versions(),
            "git": git_info(Path(__file__).parent),
            "notebooks_git": git_info(nb_dir),
            "host": {"platform": sys.platform, "cpu_count": os.cpu_count()},
            "notebooks": [{"name": r.name, "title": r.title, "status": r.status, "duration_s": r.duration_s,
                           "error": r.error, "html": r.html, "notebook": r.notebook,
                           "source_notebook": str(n.path), "findings": len(r.findings),
                           "warnings": raw[r.name].get("warnings", []),
                           **({"traceback": raw[r.name]["traceback"]} if raw[r.name].get("traceback") else {})}
                          for r, n in zip(results, selected)],
        }
        from hipstats.report.index import write_index  # noqa: PLC0415

        try:
            write_index(tmp / "index.html", manifest, results)
            if pdf_browser is not None:
                write_pdfs(tmp, browser=pdf_browser)
            _publish.write_atomic(tmp / "manifest.json", json.dumps(manifest, indent=2, default=str))
        except OSError:
            pass  # reported by _check_complete
        _check_complete(tmp, results)
        final = out / rid
        os.rename(tmp, final)
        tmp = None
        published = any(r.ok for r in results)  # a run in which every notebook failed never becomes latest
        if published:
            try:
                _publish.publish(out, rid)
            except ReportError as exc:
                raise ReportError(f"run {rid} is complete in {final}, but {exc}") from exc
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        lock.release()
    run = RunResult(rid, final, results, manifest, published)
    if not published:
        raise RunFailedError(run)
    return run


def _public_params(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (mask_source(v) if k == "source" and isinstance(v, str) else v) for k, v in d.items()}


def _run_pool(pool, jobs_: list[dict[str, Any]], n_jobs: int, progress: bool, console) -> dict[str, dict[str, Any]]:
    """Execute the jobs in worker processes with a rich progress display; never raises for one notebook."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    console = console or Console(stderr=True)
    results: dict[str, dict[str, Any]] = {}
    with Progress(TextColumn("[bold]notebooks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, disable=not progress,
                  transient=False) as bar:
        task = bar.add_task("running " + ", ".join(j["name"] for j in jobs_[:n_jobs]), total=len(jobs_))
        futures = {pool.submit(_execute_one, j): j for j in jobs_}
        pending = [j["name"] for j in jobs_]
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                r = fut.result()
            except Exception as exc:  # the worker process itself died
                r = {"name": job["name"], "status": "failed", "duration_s": 0.0, "findings": [],
                     "error": f"worker crashed: {type(exc).__name__}: {exc}"}
                try:
                    _publish.write_atomic(Path(job["run_dir"], job["html_rel"]), _error_page(job["title"]))
                except OSError:
                    pass  # the runner finds the page missing and does not publish the run
            results[job["name"]] = r
            pending.remove(job["name"])
            if progress:
                mark = "[green]ok[/green]" if r["status"] == "ok" else f"[red]FAILED[/red] {r['error']}"
                bar.console.print(f"  {job['name']}: {mark} ({r['duration_s']:.1f} s)", highlight=False,
                                  soft_wrap=True)
            bar.update(task, advance=1, description=("running " + ", ".join(pending[:n_jobs])) if pending
                       else "done")
    return results
