"""The ``hipstats`` command line.

Commands
--------
``hipstats validate SOURCE``
    Print every problem in a cohort source as a table; exit 0 when clean, 2 when not.
``hipstats simulate --out DIR``
    Write a synthetic cohort (the three tables) to a folder.
``hipstats report [SOURCE] --out DIR``
    Run the parameterized notebooks and write offline HTML reports (see
    :mod:`hipstats.report`).
``hipstats notebooks``
    List the notebooks with their parameters.
``hipstats power``
    Simulation power for a planned trial.
``hipstats init DIR``
    A starter report project: settings, notebooks to customise, a crontab line.

Errors are printed as one clear message (no traceback) with a non-zero exit code:
2 for bad input (data, parameters, usage), 1 for a failed run. Set
``HIPSTATS_DEBUG=1`` to see tracebacks.

Examples
--------
.. code-block:: console

    $ hipstats validate data/example
    data/example: no problems found
    $ hipstats simulate --out /tmp/cohort --n 60 --seed 1
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from hipstats.errors import HipstatsError, ParameterError, ReportError, SourceError, ValidationError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=False, width=max(100, int(os.environ.get("COLUMNS", "0") or 0)))


def print_report(report, *, fmt: str = "table", max_rows: int | None = None) -> None:
    """Print a ValidationReport as a rich table (or csv/json) on stdout."""
    if fmt == "csv":
        click.echo(report.to_csv(), nl=False)
        return
    if fmt == "json":
        click.echo(report.to_frame().to_json(orient="records", indent=2))
        return
    console = _console()
    for note in getattr(report, "notes", None) or ():
        console.print(f"note: {note}", highlight=False)
    if report.ok:
        console.print(f"[green]{report.source}: no problems found[/green]")
        return
    from rich.table import Table

    df = report.to_frame()
    shown = df if max_rows is None else df.head(max_rows)
    table = Table(title=f"{report.source}: {len(df)} problem(s)", show_lines=False, expand=False)
    for col in ["table", "file", "row", "column", "value", "rule", "message"]:
        table.add_column(col, overflow="fold", no_wrap=col in ("row", "rule"))
    for r in shown.itertuples(index=False):
        file = Path(str(r.file)).name if r.file else ""
        table.add_row(str(r.table), file, "" if r.row is None or str(r.row) == "<NA>" else str(r.row),
                      "" if r.column is None else str(r.column), str(r.value), str(r.rule), str(r.message))
    console.print(table)
    if max_rows is not None and len(df) > max_rows:
        console.print(f"... and {len(df) - max_rows} more (use --max-rows 0 to show all)")
    counts = df["rule"].value_counts()
    console.print("by rule: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hipstats")
def cli() -> None:
    """hipstats: hip mobility cohort statistics and scheduled reports."""


@cli.command()
@click.argument("source", required=False)
@click.option("--arms", help="Comma-separated allowed arms, reference first (overrides --config and the "
                             "folder's hipstats.yaml).")
@click.option("--config", type=click.Path(dir_okay=False),
              help="Settings file (hipstats.yaml: source, arms, reference_arm, view settings) for any source, "
                   "a database included.")
@click.option("--event-map", "event_map", metavar="EVENT=VISIT[:WEEK],...|FILE",
              help="REDCap unique event names -> visits (and weeks) of a longitudinal project, e.g. "
                   "enrol_arm_1=baseline:0,fu6_arm_1=week_6:6, or a YAML/JSON file of event: {visit, week}. "
                   "Overrides --config's event_map.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--max-rows", type=int, default=200, show_default=True, help="Rows to print; 0 for all.")
def validate(source: str | None, arms: str | None, config: str | None, event_map: str | None, fmt: str,
             max_rows: int) -> None:
    """Check SOURCE (folder, file, SPSS/Stata file, REDCap export or database URL) against the data contract.

    SOURCE defaults to the `source` of --config. Exits 0 when the data are clean and 2 when
    there are problems. Nothing is written.
    """
    from hipstats.data.validation import validate as _validate
    from hipstats.report.project import read_config

    settings = read_config(config) if config else {}
    source = source or settings.get("source")
    if not source:
        raise ParameterError("no SOURCE given: name the cohort (a folder, file or database URL) or give "
                             "--config FILE with a 'source:' line")
    arm_list = [a.strip() for a in arms.split(",") if a.strip()] if arms else settings.get("arms")
    from hipstats.data.readers.redcap import parse_event_map

    events = parse_event_map(event_map) if event_map else settings.get("event_map")
    report = _validate(source, arms=arm_list, config=config, event_map=events)
    print_report(report, fmt=fmt, max_rows=max_rows or None)
    sys.exit(EXIT_OK if report.ok else EXIT_BAD_INPUT)


@cli.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to write the tables to.")
@click.option("--n", "n_participants", type=click.IntRange(3, 1_000_000), default=150, show_default=True,
              help="Participants.")
@click.option("--weeks", default="0,3,6,9,12", show_default=True, help="Visit weeks, comma-separated.")
@click.option("--arms", default="control,stretching,loading", show_default=True, help="Arms, reference first.")
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--reliability-fraction", type=click.FloatRange(0, 1), default=0.2, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "xlsx"]), default="csv", show_default=True)
@click.option("--force", is_flag=True, help="Replace existing table files.")
def simulate(out, n_participants, weeks, arms, seed, reliability_fraction, fmt, force) -> None:
    """Write a synthetic cohort with known truth (measurements, participants, sessions) to OUT."""
    from hipstats.cohort.simulate import simulate_cohort

    try:
        week_list = [float(w) for w in weeks.split(",")]
    except ValueError:
        raise ParameterError(f"--weeks must be numbers separated by commas, got '{weeks}'") from None
    arm_list = [a.strip() for a in arms.split(",") if a.strip()]
    cohort = simulate_cohort(n_participants, week_list, arm_list, seed, reliability_fraction=reliability_fraction)
    written = cohort.write(out, format=fmt, overwrite=force)
    settings = Path(out) / "hipstats.yaml"
    if force or not settings.exists():
        settings.write_text("# Arms of this cohort; the first is the reference arm for contrasts.\n"
                            f"arms: [{', '.join(arm_list)}]\n", encoding="utf-8")
    click.echo(f"wrote {', '.join(str(p) for p in written)} ({cohort.n_participants} participants, seed {seed})")


@cli.command(context_settings={"show_default": True})
@click.option("--method", type=click.Choice(["simulation", "slope", "mmrm", "change", "ancova"]),
              default="simulation",
              help="Simulation power of the mixed model; for the same design the analytic formulas 'slope' "
                   "(difference in slopes, Diggle et al. 2002, longpower's lmmpower) or 'mmrm' (difference at "
                   "the last visit with dropout, Lu, Luo & Chen 2008, longpower's power.mmrm); or the "
                   "two-arm change-score / ANCOVA formulas (--effect, --sd).")
@click.option("--slope-formula", type=click.Choice(["diggle", "liuliang"]),
              help="With --method slope: Diggle et al. 2002 or Liu & Liang 1997 (as lmmpower). [default: diggle]")
@click.option("--n-per-arm", help="Participants per arm; several (comma-separated) give a power curve. "
                                  "[default: 60]")
@click.option("--arms", help="Arms, e.g. control,stretching,loading. [default: control,stretching,loading]")
@click.option("--weeks", help="Visit weeks, baseline first. [default: 0,3,6,9,12]")
@click.option("--effects", help="Gain per arm at the last visit (deg), e.g. control=0,loading=6. "
                                "[default: control=0,stretching=2,loading=6]")
@click.option("--target", help="Arm whose difference from the reference is tested. [default: the last arm]")
@click.option("--reference", help="Arm the target is compared with. [default: the arm listed before the target, "
                                  "i.e. the active comparator when arms are listed control, comparator, new]")
@click.option("--dropout", help="Dropout share, one number or per arm (control=0.25,loading=0.15). [default: 0.2]")
@click.option("--sd-intercept", help="Between-participant SD at baseline (deg). [default: 9]")
@click.option("--sd-slope", help="Between-participant SD of change per week (deg/week). [default: 0.15]")
@click.option("--corr", help="Correlation of baseline level and slope. [default: 0]")
@click.option("--sd-residual", help="Visit-to-visit SD of the visit mean (deg). [default: 3]")
@click.option("--test", "test_name", type=click.Choice(["arm:week", "change", "ancova"]),
              help="Simulated analysis. [default: arm:week]")
@click.option("--df", "df_method", type=click.Choice(["satterthwaite", "wald"]),
              help="Degrees of freedom of the mixed-model test. [default: satterthwaite]")
@click.option("--from-pilot", "pilot_source", metavar="SOURCE",
              help="Fit the pilot cohort in SOURCE and take its variance components, arms, visits and dropout.")
@click.option("--pilot-measure", default="hip_ir_deg", help="Outcome of the pilot fit (with --from-pilot).")
@click.option("--as-of", help="With --from-pilot: use only pilot data recorded on or before this date.")
@click.option("--effect", type=float, help="Analytic: difference in mean change between two arms (degrees).")
@click.option("--sd", type=float, help="Analytic: SD of the change scores (change) or of the outcome at "
                                        "follow-up (ancova), degrees.")
@click.option("--rho", type=float, help="ANCOVA: baseline-follow-up correlation (required for ancova).")
@click.option("--power", "target_power", type=float,
              help="Analytic (slope, mmrm, change, ancova): solve for n per arm at this power.")
@click.option("--alpha", type=float, help="Two-sided significance level. [default: 0.05]")
@click.option("--n-sim", type=click.IntRange(10), default=1000, help="Simulated trials per design.")
@click.option("--seed", type=int, default=0, help="Random seed (the API and the power notebook default to 0 too).")
@click.option("--jobs", type=int, default=-1, help="Worker processes (-1 = all cores).")
@click.option("--scheduler", help="Dask scheduler address (tcp://host:8786) to run replicates on a cluster.")
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE",
              help="Any other design or simulation parameter (plateau_tau_weeks, dropout_pattern, chunk_size, "
                   "max_failed_share, ...); repeatable.")
@click.option("--quiet", is_flag=True, help="No progress bar (it is also off when stderr is not a terminal).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Also write the result table as CSV to this file (and the design to FILE.design.csv).")
def power(method, slope_formula, n_per_arm, arms, weeks, effects, target, reference, dropout, sd_intercept, sd_slope, corr,
          sd_residual, test_name, df_method, pilot_source, pilot_measure, as_of, effect, sd, rho, target_power,
          alpha, n_sim, seed, jobs, scheduler, extra, quiet, out) -> None:
    """Power or sample size for a planned trial, with every assumption and where it came from."""
    from hipstats.power.params import plan_from_params, run_power_from_params

    if method == "ancova" and rho is None:
        raise click.UsageError("--method ancova needs --rho (the baseline-follow-up correlation)")
    if method == "change" and rho is not None:
        raise click.UsageError("--rho applies to --method ancova; for --method change give --sd as the SD of "
                               "the change scores")
    if method in ("change", "ancova") and (effect is None or sd is None):
        raise click.UsageError(f"--method {method} needs --effect and --sd")
    if method == "simulation" and target_power is not None:
        raise click.UsageError("--power solves for n with an analytic --method (slope, mmrm, change, ancova); "
                               "for simulation give several --n-per-arm values (a power curve)")
    if method in ("simulation", "slope", "mmrm") and (effect is not None or sd is not None):
        raise click.UsageError(f"--effect and --sd belong to --method change/ancova; --method {method} takes "
                               "the design (--effects, --sd-intercept, --sd-slope, --sd-residual)")
    params: dict = {"alpha": alpha}
    design_params = {"n_per_arm": n_per_arm, "arms": arms, "weeks": weeks, "effects": effects, "target": target,
                     "reference": reference, "dropout": dropout, "sd_intercept": sd_intercept,
                     "sd_slope": sd_slope, "corr": corr, "sd_residual": sd_residual, "test": test_name,
                     "df": df_method}
    if method in ("simulation", "slope", "mmrm"):
        params.update(design_params)
        if method == "simulation":
            params.update({"n_sim": n_sim, "seed": seed, "n_jobs": jobs, "client": scheduler,
                           "progress": False if quiet else None})
    else:
        params.update({"method": method, "effect": effect, "sd": sd, "n_per_arm": n_per_arm,
                       "power": target_power, "dropout": dropout})
        if method == "ancova":
            params["rho"] = rho
    for item in extra:
        if "=" not in item:
            raise ParameterError(f"--set expects KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        params[key.strip()] = value.strip()
    params = {k: v for k, v in params.items() if v is not None}
    pilot = None
    if pilot_source:
        if method not in ("simulation", "slope", "mmrm"):
            raise click.UsageError("--from-pilot applies to --method simulation, slope or mmrm")
        from hipstats.cohort import load_cohort

        pilot = load_cohort(pilot_source)
        if as_of:
            pilot = pilot.as_of(as_of)
        params["pilot_measure"] = pilot_measure
    console = _console()
    design_table = None
    if slope_formula and method != "slope":
        raise click.UsageError("--slope-formula applies to --method slope")
    if method in ("slope", "mmrm"):
        from hipstats.power.params import longitudinal_power_from_params

        if slope_formula:
            params["slope_method"] = slope_formula

        if target_power is not None:
            params["power"] = target_power
        table = longitudinal_power_from_params(params, method, pilot=pilot, pilot_label=str(pilot_source))
        design_table, notes = table.attrs["design_table"], table.attrs["notes"]
    else:
        result = run_power_from_params(params, pilot=pilot, pilot_label=str(pilot_source))
        from hipstats.power.simulation import PowerCurveResult

        # a curve shows every column of every point; one design its summary row
        table = result.to_frame() if isinstance(result, PowerCurveResult) else result.summary()
        design_table = result.design_table() if hasattr(result, "design_table") else None
        notes = list(getattr(result, "notes", []))
    from rich.table import Table

    if design_table is not None:
        dt = Table(title="Design assumed")
        for c in ("quantity", "value", "source"):
            dt.add_column(c)
        for row in design_table.itertuples(index=False):
            dt.add_row(row.quantity, row.value, row.source)
        console.print(dt)
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    rich_table = Table(title=f"hipstats power ({method})")  # one column per design, one row per quantity
    rich_table.add_column("quantity")
    for i in range(len(table)):
        rich_table.add_column(f"design {i + 1}" if len(table) > 1 else "value")
    for c in table.columns:
        rich_table.add_row(str(c), *[fmt(v) for v in table[c].tolist()])
    console.print(rich_table)
    for note in notes:
        console.print(f"[bold red]{note}[/]" if note.startswith(("FLAGGED", "n = ")) else note, highlight=False)
    if out:
        table.to_csv(out, index=False)
        written = [out]
        if design_table is not None:
            design_out = str(Path(out).with_suffix("")) + ".design.csv"
            design_table.to_csv(design_out, index=False)
            written.append(design_out)
        click.echo(f"wrote {', '.join(written)}")


def _register_report_commands() -> None:
    """Attach the commands that live next to the report package."""
    from hipstats.report.cli import init_command, notebooks_command, report_command

    cli.add_command(report_command, "report")
    cli.add_command(notebooks_command, "notebooks")
    cli.add_command(init_command, "init")


_register_report_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning hipstats errors into messages and exit codes."""
    debug = os.environ.get("HIPSTATS_DEBUG") == "1"
    try:
        cli.main(args=argv, prog_name="hipstats", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return EXIT_BAD_INPUT
    except ValidationError as exc:
        print_report(exc.report, max_rows=200)
        return EXIT_BAD_INPUT
    except (SourceError, ParameterError) as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_BAD_INPUT
    except ReportError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_FAILED
    except HipstatsError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # last resort: never show a traceback to a scheduled job's log
        if debug:
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (set HIPSTATS_DEBUG=1 for details)", err=True)
        return EXIT_FAILED
    return EXIT_OK


def run() -> None:
    """The ``hipstats`` console script: :func:`main` in a process of its own.

    Only here, where the whole process belongs to the command: jsonschema's IRI grammar is
    skipped (1.5-2 s on every notebook read, see
    :func:`hipstats.report.kernels.skip_iri_format_checker`), and SIGTERM (``kill``, a
    scheduler's timeout) ends the command like Ctrl-C does, so a report run stops its
    workers and kernels and removes its partial output before exiting with 143.
    """
    from hipstats.report.kernels import skip_iri_format_checker  # noqa: PLC0415

    skip_iri_format_checker()

    def on_sigterm(signum, frame):  # noqa: ARG001
        click.echo("terminated (SIGTERM): stopping", err=True)
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
