"""``hipstats report``, ``hipstats notebooks`` and ``hipstats init`` (registered by :mod:`hipstats.cli`)."""

from __future__ import annotations

import sys

import click

__all__ = ["report_command", "notebooks_command", "init_command"]


@click.command("report")
@click.argument("source", required=False)
@click.option("--out", "out", default="reports", show_default=True, type=click.Path(file_okay=False),
              help="Output folder; each run goes to OUT/<run-id>/ and OUT/latest points to the newest.")
@click.option("--only", multiple=True, help="Notebook(s) to run (repeat or comma-separate). Default: all but optional ones.")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Notebook parameter (checked against the notebooks' declared types); NB.KEY=VALUE for one notebook.")
@click.option("--params", "params_file", type=click.Path(dir_okay=False), help="YAML/JSON file of parameters.")
@click.option("--as-of", "as_of", metavar="DATE", help="Use only data recorded on or before DATE (YYYY-MM-DD).")
@click.option("--run-id", help="Name of the run folder (default: a timestamp).")
@click.option("--jobs", "-j", type=click.IntRange(1, 256), help="Notebooks run in parallel (default: number of cores).")
@click.option("--notebooks", "--notebooks-dir", "notebooks_dir", type=click.Path(file_okay=False, exists=True),
              help="Folder of customised report notebooks (hipstats init writes one). Default: the notebooks "
                   "shipped with hipstats.")
@click.option("--timeout", type=click.FloatRange(min=1), help="Per-cell timeout in seconds.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option("--pdf", is_flag=True, help="Also write an A4 PDF beside each page (needs headless Chromium).")
@click.option("--config", type=click.Path(dir_okay=False, exists=True),
              help="Project settings (hipstats.yaml: source, arms, reference_arm, event_map, primary_rater, "
                   "retest_visit, scheduled_visits) for any source, a database included; replaces a folder's own "
                   "hipstats.yaml.")
@click.option("--arms", help="Comma-separated allowed arms, reference first (overrides --config and the "
                             "folder's hipstats.yaml).")
@click.option("--event-map", "event_map", metavar="EVENT=VISIT[:WEEK],...|FILE",
              help="REDCap unique event names -> visits (and weeks), e.g. enrol_arm_1=baseline:0,fu6_arm_1=week_6:6, "
                   "or a YAML/JSON file of event: {visit, week}. Overrides --config's event_map.")
def report_command(source, out, only, params, params_file, as_of, run_id, jobs, notebooks_dir, timeout, quiet, pdf,
                   config, arms, event_map):
    """Run the report notebooks on SOURCE and write offline HTML reports with an index.

    SOURCE is a folder, file, REDCap export or SQLAlchemy URL (default: the `source` of
    --config, else the environment variable HIPSTATS_SOURCE). Exit codes: 0 all reports ok,
    1 a notebook failed (a run in which every notebook failed does not become latest) or the
    output is locked by another run, 2 bad data or bad parameters (nothing written).
    """
    from rich.console import Console

    from hipstats.data.readers.redcap import parse_event_map
    from hipstats.report.runner import run_reports

    run = run_reports(source, out, only=[o for o in only if o] or None, params=list(params),
                      params_file=params_file, as_of=as_of, run_id=run_id, jobs=jobs,
                      notebooks_dir=notebooks_dir, timeout=timeout, progress=not quiet, pdf=pdf,
                      config=config, arms=arms, event_map=parse_event_map(event_map) if event_map else None)
    console = Console(stderr=False, soft_wrap=True)
    if run.ok:
        console.print(f"[green]{len(run.results)} report(s) written[/green]: {run.index}")
    else:
        console.print(f"[red]{len(run.failed)} of {len(run.results)} report(s) failed[/red] "
                      f"({', '.join(run.failed)}): {run.index}")
    sys.exit(0 if run.ok else 1)


@click.command("notebooks")
@click.option("--notebooks", "--notebooks-dir", "notebooks_dir", type=click.Path(file_okay=False, exists=True),
              help="Folder of customised report notebooks (hipstats init writes one). Default: the notebooks "
                   "shipped with hipstats.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def notebooks_command(notebooks_dir, fmt):
    """List the report notebooks with their parameters, types and defaults."""
    from hipstats.report.params import list_notebooks

    nbs = list_notebooks(notebooks_dir)
    rows = [r for n in nbs for r in (n.to_frame_rows() or [{"notebook": n.name, "parameter": "", "type": "",
                                                           "default": "", "help": "", "in_default_set": n.default}])]
    if fmt in ("csv", "json"):
        import pandas as pd

        df = pd.DataFrame(rows)
        click.echo(df.to_csv(index=False) if fmt == "csv" else df.to_json(orient="records", indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="hipstats report notebooks")
    for col in ("notebook", "title", "parameter", "type", "default", "help"):
        table.add_column(col, overflow="fold")
    for n in nbs:
        label = n.name + ("" if n.default else " (--only)")
        params = list(n.parameters.values()) or [None]
        for i, p in enumerate(params):
            table.add_row(label if i == 0 else "", n.title if i == 0 else "",
                          p.name if p else "", p.type if p else "", repr(p.default) if p else "", p.help if p else "")
    Console(soft_wrap=False, width=140).print(table)


@click.command("init")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--source", help="The cohort (folder, file, REDCap project folder or database URL) for hipstats.yaml.")
@click.option("--force", is_flag=True, help="Replace files that already exist.")
def init_command(folder, source, force):
    """Write a starter report project into FOLDER.

    hipstats.yaml (source, arms), params.yaml (every notebook parameter, commented out),
    notebooks/ (copies of the report notebooks to customise) and cron.txt (a crontab line).
    """
    from hipstats.report.project import cron_line, init_project

    written = init_project(folder, source=source, force=force)
    click.echo(f"wrote {len(written)} files into {folder}:")
    for name in ("hipstats.yaml", "params.yaml", "notebooks/", "cron.txt"):
        click.echo(f"  {name}")
    click.echo("next: edit hipstats.yaml (source, arms), then run\n"
               f"  cd {folder} && hipstats report --config hipstats.yaml --notebooks notebooks "
               "--params params.yaml --out reports\nschedule it with this crontab line (crontab -e):\n"
               f"  {cron_line(folder)}")
