"""A report project: its settings file, its own notebooks, its schedule (``hipstats init``).

A project folder holds what a research group runs on a schedule::

    hipstats.yaml    where the data are and what they hold (source, arms, REDCap event map)
    params.yaml      notebook parameters (every declared parameter, commented out)
    notebooks/       copies of the report notebooks, to customise
    cron.txt         the crontab line that runs the reports every Monday at 06:00

:func:`read_config` reads the settings file for ``hipstats report --config`` and
``hipstats validate --config``; it works for every source kind (a folder's own
``hipstats.yaml`` is still read when no ``--config`` is given).

Settings keys (all optional)::

    source: /data/hipcohort                  # folder, file, REDCap export or database URL
    arms: [control, stretching, loading]     # allowed arms, reference first
    reference_arm: control                   # when it is not the first arm
    event_map:                               # REDCap event -> visit label and week
      baseline_arm_1: {visit: baseline, week: 0}

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from hipstats.report.project import init_project, read_config
>>> folder = Path(tempfile.mkdtemp()) / "nightly"
>>> written = init_project(folder, source="/data/hipcohort")
>>> sorted(p.name for p in written if p.parent == folder)
['cron.txt', 'hipstats.yaml', 'params.yaml']
>>> read_config(folder / "hipstats.yaml")["source"]
'/data/hipcohort'
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from hipstats.cohort.views import VIEW_SETTINGS
from hipstats.errors import ParameterError

__all__ = ["CONFIG_KEYS", "read_config", "init_project", "cron_line"]

#: Keys a project settings file may hold: where the data are, the arms, the REDCap event map and
#: the view settings a folder's own hipstats.yaml may declare (:data:`hipstats.cohort.views.VIEW_SETTINGS`).
CONFIG_KEYS = ("source", "arms", "reference_arm", "event_map", *VIEW_SETTINGS)


def read_config(path) -> dict[str, Any]:
    """Read a project settings file (YAML); relative ``source`` paths are taken from its folder.

    Returns
    -------
    dict
        ``source`` (str or None), ``arms`` (list with the reference first, or None) and
        ``event_map`` (dict or None).

    Raises
    ------
    ParameterError
        The file is missing, not YAML, not a mapping, or has an unknown key or a bad value.
    """
    import yaml  # noqa: PLC0415

    p = Path(path).expanduser()
    if not p.is_file():
        raise ParameterError(f"--config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ParameterError(f"--config file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"--config file {p} must hold a mapping with keys {', '.join(CONFIG_KEYS)}")
    unknown = [k for k in data if k not in CONFIG_KEYS]
    if unknown:
        raise ParameterError(f"--config file {p}: unknown key(s) {', '.join(map(str, unknown))}; "
                             f"allowed: {', '.join(CONFIG_KEYS)}")
    source = data.get("source")
    if source is not None:
        source = str(source)
        if "://" not in source and not Path(source).expanduser().is_absolute():
            source = str((p.parent / source).resolve())
    arms = data.get("arms")
    if arms is not None:
        if isinstance(arms, str):
            arms = [a.strip() for a in arms.split(",") if a.strip()]
        if not isinstance(arms, list) or not arms:
            raise ParameterError(f"--config file {p}: 'arms' must be a list such as [control, loading]")
        arms = [str(a) for a in arms]
    ref = data.get("reference_arm")
    if ref is not None:
        if arms is None or str(ref) not in arms:
            raise ParameterError(f"--config file {p}: reference_arm '{ref}' must be one of 'arms'")
        arms = [str(ref)] + [a for a in arms if a != str(ref)]
    event_map = data.get("event_map")
    if event_map is not None and not isinstance(event_map, dict):
        raise ParameterError(f"--config file {p}: 'event_map' must map REDCap event names to "
                             "{visit: label, week: number}")
    return {"source": source, "arms": arms, "event_map": event_map}


def cron_line(folder, *, hipstats_command: str | None = None, schedule: str = "0 6 * * 1") -> str:
    """The crontab line that runs the project's reports (default every Monday at 06:00)."""
    folder = Path(folder).resolve()
    exe = hipstats_command or _hipstats_command()
    return (f"{schedule}  cd {shlex.quote(str(folder))} && {exe} report --config hipstats.yaml "
            "--notebooks notebooks --params params.yaml --out reports --quiet >> reports.log 2>&1")


def _hipstats_command() -> str:
    """The ``hipstats`` script of this environment (absolute, as cron has no PATH of ours)."""
    here = Path(sys.executable).with_name("hipstats")
    found = str(here) if here.is_file() else shutil.which("hipstats")
    return shlex.quote(found) if found else "hipstats"


def _settings_text(source: str | None) -> str:
    src = source or "/path/to/cohort"
    return f"""\
# hipstats project settings: `hipstats report --config hipstats.yaml` (and `hipstats validate --config ...`).
# source: the cohort - a folder of tables, one file, a REDCap project folder (data export + data
#   dictionary), SPSS/Stata files, or a database URL such as postgresql://reader@dbhost/hipcohort
source: {src}
# arms: the arm labels of this study, reference first (default: control, stretching, loading)
# arms: [control, stretching, loading]
# reference_arm: control
# event_map: REDCap event -> visit label and week (default: read from the event label)
# event_map:
#   baseline_arm_1: {{visit: baseline, week: 0}}
#   week_6_arm_1: {{visit: week_6, week: 6}}
"""


def _params_text() -> str:
    from hipstats.report.params import RUNNER_PARAMETERS, list_notebooks  # noqa: PLC0415

    lines = ["# Notebook parameters: `hipstats report --params params.yaml`. Uncomment and change what you need.",
             "# A top-level key applies to every notebook that declares it; a notebook name with a mapping",
             "# applies to that notebook only. `hipstats notebooks` lists every parameter with its type.", ""]
    for nb in list_notebooks():
        params = [p for p in nb.parameters.values() if p.name not in RUNNER_PARAMETERS]
        if not params:
            continue
        lines.append(f"# {nb.name}:{'' if nb.default else '   (only with --only ' + nb.name + ')'}")
        for p in params:
            lines.append(f"#   {p.name}: {p.default!r}".replace("'", '"') + (f"   # {p.help}" if p.help else ""))
        lines.append("")
    return "\n".join(lines)


def init_project(folder, *, source: str | None = None, force: bool = False) -> list[Path]:
    """Write a starter report project into ``folder``.

    Parameters
    ----------
    folder : path-like
        Created if needed.
    source : str, optional
        The cohort, written into ``hipstats.yaml`` (default a placeholder to edit).
    force : bool
        Replace existing files (default: refuse, naming them).

    Returns
    -------
    list of Path
        Every file written.

    Raises
    ------
    ParameterError
        When a file would be replaced without ``force``.
    """
    from hipstats.notebooks import copy_notebooks, notebook_paths  # noqa: PLC0415

    folder = Path(folder).expanduser()
    files = {"hipstats.yaml": _settings_text(source), "params.yaml": _params_text(),
             "cron.txt": "# add this line with `crontab -e`:\n" + cron_line(folder) + "\n"}
    existing = [n for n in files if (folder / n).exists()]
    existing += [f"notebooks/{p.name}" for p in notebook_paths() if (folder / "notebooks" / p.name).exists()]
    if existing and not force:
        raise ParameterError(f"{folder} already has {', '.join(existing)}; use --force to replace them")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    written += copy_notebooks(folder / "notebooks", overwrite=True)
    return written
