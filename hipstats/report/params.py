"""The notebook catalogue and typed parameter checks.

Every report notebook starts with a code cell tagged ``parameters`` whose lines read
``name: type = default`` (papermill's convention). :func:`list_notebooks` reads those
declarations without running anything, and :func:`resolve_parameters` checks the
values a user passes (``--param key=value`` strings or a YAML file) against them
before any notebook runs: an unknown name, a value of the wrong type, or a value outside
the choices a declaration's comment lists as ``one of {a, b, c}``, or outside the range
:data:`RANGES` gives a parameter of that name (a confidence level strictly between 0 and 1,
a positive number of bootstrap replicates, a known ICC form; every float finite) is a
:class:`hipstats.errors.ParameterError`, never a warning, raised before anything is written.

A ``--params`` file is read with limits (:data:`PARAMS_FILE_LIMITS`): at most 1 MB, at most
100 YAML aliases, at most 10,000 values; error messages are cut to 2,000 characters.

Examples
--------
>>> from hipstats.report.params import coerce
>>> coerce("cutoff", "65", "float"), coerce("jobs", "2", "int"), coerce("label", "007", "str")
(65.0, 2, '007')
>>> coerce("flag", "yes", "bool")
True
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hipstats.errors import ParameterError

__all__ = ["NotebookInfo", "Parameter", "list_notebooks", "select_notebooks", "parse_param_strings",
           "load_params_file", "resolve_parameters", "coerce", "default_notebooks_dir", "RUNNER_PARAMETERS",
           "OPTIONAL_NOTEBOOKS", "RANGES", "check_range", "cut", "PARAMS_FILE_LIMITS"]

#: Parameters the runner sets itself for every notebook that declares them.
RUNNER_PARAMETERS = ("source", "as_of")
#: Notebooks that only run when asked for with ``--only`` (or whose metadata says ``default: false``).
OPTIONAL_NOTEBOOKS = ("power",)

_CHOICES = re.compile(r"one of \{([^}]*)\}")
#: Limits on a ``--params`` file: bytes, YAML aliases (``*name``), values in the parsed document.
PARAMS_FILE_LIMITS = {"bytes": 1_000_000, "aliases": 100, "values": 10_000}
#: Longest error message about parameters (a hostile value is cut, never echoed in full).
MESSAGE_LIMIT = 2_000


def _unit_interval(v) -> bool:
    return 0 < v < 1


def _icc_forms() -> tuple[str, ...]:
    import hipstats  # noqa: PLC0415  (the reliability module, wherever it lives)

    return tuple(f for row in hipstats.ICC_FORMS for f in row[:2])


#: Allowed values by parameter name, for every notebook that declares the name:
#: name -> (rule in words, test). Float parameters must be finite in any case.
RANGES: dict[str, tuple[str, Any]] = {
    "confidence": ("strictly between 0 and 1 (e.g. 0.95)", _unit_interval),
    "alpha": ("strictly between 0 and 1 (e.g. 0.05)", _unit_interval),
    "target_power": ("strictly between 0 and 1 (e.g. 0.8)", _unit_interval),
    "n_boot": ("a whole number of at least 1", lambda v: v >= 1),
    "n_sim": ("a whole number of at least 1", lambda v: v >= 1),
    "n_per_arm": ("a whole number of at least 2", lambda v: v >= 2),
    "mdc": ("0 (the cohort's MDC95) or a positive change", lambda v: v >= 0),
    "pain_threshold": ("between 0 and 10 (pain NRS)", lambda v: 0 <= v <= 10),
    "sd_intercept": ("0 or more", lambda v: v >= 0),
    "sd_slope": ("0 or more", lambda v: v >= 0),
    "sd_residual": ("more than 0", lambda v: v > 0),
    "corr_intercept_slope": ("between -1 and 1", lambda v: -1 <= v <= 1),
    "form": ("one of the ICC forms", lambda v: v in _icc_forms()),
}


def cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out.

    >>> cut("x" * 30, 10)
    'xxxxxxxxxx... (20 more characters)'
    """
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def check_range(name: str, value: Any) -> None:
    """Raise :class:`ParameterError` when a typed parameter value is outside its allowed range.

    >>> check_range("confidence", 0.9)
    >>> check_range("confidence", 1.5)
    Traceback (most recent call last):
    ...
    hipstats.errors.ParameterError: parameter 'confidence' must be strictly between 0 and 1 (e.g. 0.95), got 1.5
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(f"parameter '{name}' must be a finite number, got {value!r}")
    rule = RANGES.get(name)
    if rule is None or value is None:
        return
    words, test = rule
    if name == "form":
        if not (isinstance(value, str) and test(value)):
            raise ParameterError(f"parameter 'form' must be one of the ICC forms {', '.join(_icc_forms())}, "
                                 f"got {cut(repr(value), 100)}")
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not test(value):
        raise ParameterError(f"parameter '{name}' must be {words}, got {cut(repr(value), 100)}")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True)
class Parameter:
    """One declared notebook parameter."""

    name: str
    type: str
    default: Any
    help: str = ""

    @property
    def choices(self) -> tuple[str, ...] | None:
        """Allowed values declared in the comment as ``one of {a, b, c}`` (compared case-insensitively).

        >>> Parameter("adjust", "str", "holm", "adjustment, one of {holm, BH, none}").choices
        ('holm', 'BH', 'none')
        """
        m = _CHOICES.search(self.help or "")
        if not m:
            return None
        return tuple(c.strip() for c in m.group(1).split(",") if c.strip())

    def check_choice(self, value: Any) -> None:
        """Raise :class:`ParameterError` when ``value`` is not one of the declared choices."""
        choices = self.choices
        if choices is None or value is None:
            return
        if str(value).strip().lower() not in {c.lower() for c in choices}:
            raise ParameterError(f"parameter '{self.name}' must be one of {', '.join(choices)}, "
                                 f"got {cut(repr(value), 100)}")

    @property
    def optional(self) -> bool:
        t = self.type.replace(" ", "")
        return "None" in t or t.startswith("Optional[")

    @property
    def base_type(self) -> str:
        t = self.type.replace(" ", "")
        m = re.fullmatch(r"Optional\[(.+)\]", t)
        if m:
            t = m.group(1)
        parts = [p for p in t.split("|") if p != "None"]
        return parts[0] if parts else "None"


@dataclass(frozen=True)
class NotebookInfo:
    """A report notebook: where it is, its title, and its declared parameters."""

    name: str
    path: Path
    title: str
    description: str
    parameters: dict[str, Parameter] = field(default_factory=dict)
    default: bool = True
    order: int = 100
    cost: float = 1.0  # relative run time, to start long notebooks first (metadata hipstats.cost)
    data_optional: bool = False  # metadata hipstats.needs_data false: runs without a source (power)

    @property
    def needs_data(self) -> bool:
        """True when the notebook reads the cohort (declares ``source`` and does not mark it optional)."""
        return "source" in self.parameters and not self.data_optional

    def to_frame_rows(self) -> list[dict[str, Any]]:
        return [{"notebook": self.name, "parameter": p.name, "type": p.type, "default": p.default,
                 "help": p.help, "in_default_set": self.default} for p in self.parameters.values()]


def default_notebooks_dir() -> Path:
    """The report notebooks that ship inside the package (:mod:`hipstats.notebooks`)."""
    from hipstats.notebooks import notebooks_dir  # noqa: PLC0415

    return notebooks_dir()


def _inspect(path: Path) -> dict[str, Parameter]:
    import papermill  # noqa: PLC0415

    try:
        raw = papermill.inspect_notebook(str(path))
    except Exception as exc:  # papermill raises plain exceptions for unreadable notebooks
        raise ParameterError(f"cannot read the parameters of {path}: {exc}") from exc
    out = {}
    for name, d in raw.items():
        default = d.get("default")
        try:
            import ast  # noqa: PLC0415

            default = ast.literal_eval(default) if isinstance(default, str) else default
        except (ValueError, SyntaxError):
            pass
        out[name] = Parameter(name, d.get("inferred_type_name") or "None", default, d.get("help") or "")
    return out


def _title(nb, fallback: str) -> tuple[str, str]:
    meta = nb.metadata.get("hipstats", {})
    if meta.get("title"):
        return meta["title"], meta.get("description", "")
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip(), meta.get("description", "")
    return fallback.replace("_", " ").capitalize(), meta.get("description", "")


def list_notebooks(notebooks_dir=None) -> list[NotebookInfo]:
    """Report notebooks in a folder, in report order, with their declared parameters.

    Parameters
    ----------
    notebooks_dir : path-like, optional
        Default :func:`default_notebooks_dir`.

    Returns
    -------
    list of NotebookInfo
        ``default`` is False for notebooks that only run with ``--only`` (``power`` and any
        whose metadata ``hipstats.default`` is false).
    """
    import nbformat  # noqa: PLC0415  (2-3 s to import: only when notebooks are read)

    folder = Path(notebooks_dir) if notebooks_dir is not None else default_notebooks_dir()
    if not folder.is_dir():
        raise ParameterError(f"notebooks folder {folder} does not exist")
    out = []
    for path in sorted(folder.glob("*.ipynb")):
        if path.name.startswith((".", "_")) or ".ipynb_checkpoints" in path.parts:
            continue
        nb = nbformat.read(path, as_version=4)
        meta = nb.metadata.get("hipstats", {})
        title, desc = _title(nb, path.stem)
        default = bool(meta.get("default", path.stem not in OPTIONAL_NOTEBOOKS))
        out.append(NotebookInfo(path.stem, path.resolve(), title, desc, _inspect(path), default,
                                int(meta.get("order", 100)), float(meta.get("cost", 1.0)),
                                meta.get("needs_data", True) is False))
    return sorted(out, key=lambda n: (n.order, n.name))


def select_notebooks(catalogue: list[NotebookInfo], only=None) -> list[NotebookInfo]:
    """The default set, or the notebooks named in ``only`` (list or comma-separated string)."""
    if not only:
        chosen = [n for n in catalogue if n.default]
        if not chosen:
            raise ParameterError("no report notebooks found")
        return chosen
    names = [x.strip() for x in (only.split(",") if isinstance(only, str) else only) for x in x.split(",")]
    names = [n for n in names if n]
    known = {n.name: n for n in catalogue}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ParameterError(f"unknown notebook(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in dict.fromkeys(names)]


# ------------------------------------------------------------------------ values
def coerce(name: str, raw: Any, type_name: str, *, optional: bool = False) -> Any:
    """Convert a value (a command-line string or a YAML value) to a declared parameter type.

    Raises
    ------
    ParameterError
        When the value does not fit the type.
    """
    t = type_name.replace(" ", "")
    if t.startswith("Optional[") or "|" in t:
        p = Parameter(name, t, None)
        optional, t = True, p.base_type
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "null") and t != "str"):
        if optional or t == "None":
            return None
        raise ParameterError(f"parameter '{name}' expects {type_name}, got no value")
    bad = ParameterError(f"parameter '{name}' expects {type_name}, got {cut(repr(raw), 100)}")
    if t in ("None", "Any", ""):
        # untyped declaration: strings from the command line are read as YAML scalars
        if isinstance(raw, str):
            import yaml  # noqa: PLC0415

            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError:
                return raw
        return raw
    if t == "str":
        if isinstance(raw, str):
            return raw
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return str(raw)
        raise bad
    if t == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise bad
    if t == "int":
        if isinstance(raw, bool):
            raise bad
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                raise bad from None
        raise bad
    if t == "float":
        if isinstance(raw, bool):
            raise bad
        if isinstance(raw, (int, float)):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw.strip())
            except ValueError:
                raise bad from None
        raise bad
    base = re.match(r"(list|tuple|dict)", t)
    if base:
        kind = base.group(1)
        value = raw
        if isinstance(raw, str):
            import yaml  # noqa: PLC0415

            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                raise bad from None
            if kind in ("list", "tuple") and isinstance(value, str):
                value = [v.strip() for v in raw.split(",") if v.strip()]
        if kind == "dict" and isinstance(value, dict):
            return value
        if kind in ("list", "tuple") and isinstance(value, (list, tuple)):
            inner = re.fullmatch(r"(?:list|tuple)\[(str|int|float|bool)(?:,\.\.\.)?\]", t)
            if inner:
                value = [coerce(name, v, inner.group(1)) for v in value]
            return list(value)
        raise bad
    raise ParameterError(f"parameter '{name}' has a type hipstats cannot check ({type_name}); "
                         "use str, int, float, bool, list or dict")


def parse_param_strings(items) -> dict[str, str]:
    """``["key=value", "nb.key=value"]`` -> dict (values stay strings until :func:`coerce`)."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ParameterError(f"--param expects key=value, got '{cut(item, 100)}'")
        key, value = item.split("=", 1)
        key = key.strip()
        if not re.fullmatch(r"([A-Za-z_][\w]*\.)?[A-Za-z_]\w*", key):
            raise ParameterError(f"--param name '{cut(key, 100)}' is not a valid parameter name")
        out[key] = value
    return out


def load_params_file(path) -> dict[str, Any]:
    """Read a YAML (or JSON) parameters file.

    Top-level keys are parameters for every notebook that declares them; a key naming a
    notebook with a mapping as value holds parameters for that notebook only::

        cutoff: 70
        screening:
          n_boot: 500
    """
    import yaml  # noqa: PLC0415

    p = Path(path)
    limits = PARAMS_FILE_LIMITS
    try:
        if not p.is_file():
            raise ParameterError(f"parameters file {p} does not exist")
        with open(p, "rb") as fh:
            raw = fh.read(limits["bytes"] + 1)
    except OSError as exc:
        raise ParameterError(f"cannot read parameters file {p}: {exc.strerror or exc}") from None
    if len(raw) > limits["bytes"]:
        raise ParameterError(f"parameters file {p} is larger than {limits['bytes']:,} bytes "
                             "(hipstats.report.params.PARAMS_FILE_LIMITS['bytes']); a parameters file "
                             "holds a few values")
    try:
        text = raw.decode("utf-8")
        if p.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.load(text, Loader=_bounded_loader(limits["aliases"]))  # noqa: S506 - SafeLoader subclass
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise ParameterError(cut(f"cannot read parameters file {p}: {exc}")) from None
    n = _count_values(data, limits["values"])
    if n > limits["values"]:
        raise ParameterError(f"parameters file {p} holds more than {limits['values']:,} values "
                             "(hipstats.report.params.PARAMS_FILE_LIMITS['values'])")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"parameters file {p} must hold a mapping of name: value")
    return data


def _bounded_loader(max_aliases: int):
    """A ``yaml.SafeLoader`` that refuses documents with more than ``max_aliases`` aliases (anchor bombs)."""
    import yaml  # noqa: PLC0415

    class Loader(yaml.SafeLoader):
        n_aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.n_aliases += 1
                if self.n_aliases > max_aliases:
                    event = self.peek_event()
                    raise yaml.YAMLError(f"more than {max_aliases} aliases (*name) at {event.start_mark}; "
                                         "hipstats refuses YAML that expands references this much "
                                         "(PARAMS_FILE_LIMITS['aliases'])")
            return super().compose_node(parent, index)

    return Loader


def _count_values(data, limit: int) -> int:
    """Number of values in a parsed document, counting shared (aliased) nodes each time; stops past ``limit``."""
    n, stack = 0, [data]
    while stack and n <= limit:
        x = stack.pop()
        n += 1
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
    return n


def resolve_parameters(notebooks: list[NotebookInfo], given: dict[str, Any] | None = None, *,
                       runner: dict[str, Any] | None = None, catalogue: list[NotebookInfo] | None = None
                       ) -> dict[str, dict[str, Any]]:
    """Check user parameters against the notebooks' declarations; return the values per notebook.

    Parameters
    ----------
    notebooks : list of NotebookInfo
        The notebooks that will run.
    given : dict
        ``name -> value`` for every notebook that declares ``name``; ``"nb.name" -> value`` or
        ``nb -> {name: value}`` for one notebook.
    runner : dict
        Values the runner injects (source, as_of) into the notebooks that declare them.
    catalogue : list of NotebookInfo, optional
        All known notebooks, so that a parameter for a notebook that is not selected
        names the right problem.

    Returns
    -------
    dict
        notebook name -> {parameter: typed value} (only the parameters that are set).

    Raises
    ------
    ParameterError
        Listing every unknown name and wrong type at once.
    """
    by_name = {n.name: n for n in notebooks}
    all_names = {n.name for n in (catalogue or notebooks)}
    out: dict[str, dict[str, Any]] = {n.name: {} for n in notebooks}
    problems: list[str] = []
    used_global: set[str] = set()

    flat: list[tuple[str | None, str, Any]] = []
    for key, value in (given or {}).items():
        if key in all_names and isinstance(value, dict):
            flat.extend((key, k, v) for k, v in value.items())
        elif "." in key and key.split(".", 1)[0] in all_names:
            nb, k = key.split(".", 1)
            flat.append((nb, k, value))
        else:
            flat.append((None, key, value))

    for nb_name, key, value in flat:
        if key in RUNNER_PARAMETERS:
            problems.append(f"'{key}' is set by the runner (use the SOURCE argument / --as-of), "
                            "not with --param")
            continue
        targets = [by_name[nb_name]] if nb_name in by_name else ([] if nb_name else notebooks)
        if nb_name and nb_name not in by_name:
            problems.append(f"parameter '{nb_name}.{key}' is for notebook '{nb_name}', which is not selected")
            continue
        declared = [n for n in targets if key in n.parameters]
        if not declared:
            where = f"notebook '{nb_name}'" if nb_name else "any selected notebook"
            known = sorted({p for n in targets for p in n.parameters if p not in RUNNER_PARAMETERS})
            problems.append(f"unknown parameter '{cut(key, 100)}' for {where} (known: {', '.join(known) or 'none'})")
            continue
        used_global.add(key)
        for n in declared:
            decl = n.parameters[key]
            try:
                out[n.name][key] = coerce(key, value, decl.type, optional=decl.optional)
                decl.check_choice(out[n.name][key])
                check_range(key, out[n.name][key])
            except ParameterError as exc:
                problems.append(f"{n.name}: {exc}")
    for key, value in (runner or {}).items():
        for n in notebooks:
            if key in n.parameters:
                decl = n.parameters[key]
                try:
                    out[n.name][key] = coerce(key, value, decl.type, optional=decl.optional)
                except ParameterError as exc:
                    problems.append(f"{n.name}: {exc}")
    if problems:
        raise ParameterError(cut("invalid report parameters:\n  " + "\n  ".join(dict.fromkeys(problems))))
    return out
