"""The data contract: the single source of truth for tables, columns, units and ranges.

Every other module (loading, validation, simulation, the data dictionary in
``docs/data_dictionary.md``) reads its facts from here. Change a range or a
category in this file and validation, normalisation and the docs follow.

Three tables make a cohort (long, tidy format):

``measurements``
    One row per recorded trial of one measure on one side at one visit.
``participants``
    One row per participant, with the arm and baseline characteristics.
``sessions``
    The training log: one row per exercise per session.

Examples
--------
>>> from hipstats import schema
>>> schema.MEASURES["hip_ir_deg"].plausible
(0.0, 80.0)
>>> [c.name for c in schema.TABLES["participants"].required_columns]
['participant_id', 'arm']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "Column",
    "Table",
    "Measure",
    "MEASURES",
    "TABLES",
    "DEFAULT_ARMS",
    "SIDES",
    "DEVICES",
    "POSITIONS",
    "PELVIS_CONDITIONS",
    "EXERCISES",
    "FAULTS",
    "IDENTIFIER_PATTERNS",
    "is_identifier_column",
]


@dataclass(frozen=True)
class Column:
    """One column of a table in the data contract.

    Parameters
    ----------
    name : str
        Column name as it appears in the tidy table.
    dtype : {"string", "float", "int", "date", "category", "bool", "list"}
        Logical type. ``list`` is a semicolon-separated list of categories.
    required : bool
        Whether the column must be present.
    description : str
        Plain-language meaning, shown in the data dictionary.
    unit : str, optional
        Unit of measurement.
    categories : tuple of str, optional
        Allowed values (after normalisation) for ``category`` and ``list`` columns.
    minimum, maximum : float, optional
        Plausible range (inclusive).
    nullable : bool
        Whether empty cells are allowed.
    """

    name: str
    dtype: str
    required: bool
    description: str
    unit: str | None = None
    categories: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    """A table of the data contract: its columns and its unique key."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()

    @property
    def required_columns(self) -> list[Column]:
        return [c for c in self.columns if c.required]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def add_missing_columns(self, df):
        """Add absent contract columns to ``df`` in place (numbers as NaN, others as None); return it.

        >>> import pandas as pd
        >>> df = TABLES["participants"].add_missing_columns(pd.DataFrame({"participant_id": ["P1"]}))
        >>> df["age_years"].isna().item(), df["sex"].item() is None
        (True, True)
        """
        for c in self.columns:
            if c.name not in df.columns:
                df[c.name] = float("nan") if c.dtype in ("float", "int") else None
        return df

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class Measure:
    """A measure recorded in the ``measurements`` table.

    Parameters
    ----------
    name : str
        Value of the ``measure`` column.
    unit : {"deg", "score"}
        Degrees for angles, integer points for ordinal scores.
    plausible : tuple of float
        Inclusive plausible range; values outside are refused.
    sided : bool
        True for measures taken per leg (side must be left or right); False for
        whole-body measures (side must be empty).
    description : str
        Plain-language meaning.
    """

    name: str
    unit: str
    plausible: tuple[float, float]
    sided: bool
    description: str
    label: str = ""

    @property
    def is_angle(self) -> bool:
        return self.unit == "deg"

    @property
    def is_score(self) -> bool:
        return self.unit == "score"

    @property
    def categories(self) -> list[int] | None:
        """The full ordinal scale of a score (``[0, 1, ..., 5]`` for the Mens ASLR score), None for an angle.

        Weighted kappa needs the whole scale, not the scores that happen to be observed, so that
        its weights reflect the real distances between categories.

        >>> MEASURES["aslr_fms_score"].categories
        [0, 1, 2, 3]
        """
        if not self.is_score:
            return None
        lo, hi = self.plausible
        return list(range(int(lo), int(hi) + 1))


MEASURES: dict[str, Measure] = {
    m.name: m
    for m in [
        Measure("aslr_deg", "deg", (0.0, 130.0), True,
                "Active straight leg raise: angle of the raised leg from the table, degrees.",
                "ASLR (deg)"),
        Measure("hip_ir_deg", "deg", (0.0, 80.0), True,
                "Hip internal rotation range of motion, degrees.",
                "Hip IR (deg)"),
        Measure("hip_er_deg", "deg", (0.0, 90.0), True,
                "Hip external rotation range of motion, degrees.",
                "Hip ER (deg)"),
        Measure("pelvic_tilt_deg", "deg", (-30.0, 40.0), False,
                "Standing sagittal pelvic tilt, degrees; positive = anterior tilt.",
                "Standing pelvic tilt (deg, + anterior)"),
        Measure("aslr_mens_score", "score", (0.0, 5.0), True,
                "Mens ASLR difficulty score per side, 0 (not difficult) to 5 (unable).",
                "ASLR Mens score (0-5)"),
        Measure("aslr_fms_score", "score", (0.0, 3.0), True,
                "Functional Movement Screen ASLR score, 0 (pain) to 3.",
                "ASLR FMS score (0-3)"),
    ]
}

SIDES: tuple[str, ...] = ("left", "right")
DEVICES: tuple[str, ...] = ("goniometer", "inclinometer", "smartphone", "imu", "palm")
POSITIONS: tuple[str, ...] = ("prone", "seated", "supine")
PELVIS_CONDITIONS: tuple[str, ...] = ("neutral", "free", "anterior", "posterior")
SEXES: tuple[str, ...] = ("female", "male", "other")
DEFAULT_ARMS: tuple[str, ...] = ("control", "stretching", "loading")
EXERCISES: tuple[str, ...] = (
    "ffe_split_squat",
    "staggered_stance_deadlift",
    "wall_adductor_drill",
    "hold_90_90",
    "glute_bridge",
    "hamstring_curl",
    "other",
)
FAULTS: tuple[str, ...] = (
    "back_knee_lean",
    "front_knee_drift",
    "lumbar_rounding",
    "pelvic_tilt_loss",
    "poor_hip_shift",
)

_MEASUREMENTS = Table(
    "measurements",
    "One row per recorded trial of one measure, on one side, at one visit.",
    (
        Column("participant_id", "string", True, "Pseudonymous participant code; never a name.", nullable=False),
        Column("visit", "string", True, "Visit label, e.g. baseline, week_6.", nullable=False),
        Column("week", "float", False, "Weeks since baseline; derived from visit_date when absent.",
               unit="weeks", minimum=0.0, maximum=260.0),
        Column("visit_date", "date", False, "Date of the visit (ISO 8601)."),
        Column("measure", "category", True, "What was measured; see the measures table.",
               categories=tuple(MEASURES), nullable=False),
        Column("side", "category", False,
               "left or right; empty only for whole-body measures (pelvic tilt). L, R, Left, r ... are accepted.",
               categories=SIDES),
        Column("value", "float", True, "The reading: degrees for *_deg measures, integer points for *_score.",
               nullable=False),
        Column("trial", "int", False, "Trial number within the visit, 1 when absent.", minimum=1, maximum=20),
        Column("rater", "string", False, "Who measured (a code, not a name)."),
        Column("device", "category", False, "Instrument used.", categories=DEVICES),
        Column("position", "category", False, "Test position for rotation measures.", categories=POSITIONS),
        Column("pelvis", "category", False,
               "Pelvic condition during the test: neutral (set up), free (own posture), anterior, posterior.",
               categories=PELVIS_CONDITIONS),
    ),
    key=("participant_id", "visit", "measure", "side", "trial", "rater", "pelvis", "position", "device"),
)

_PARTICIPANTS = Table(
    "participants",
    "One row per participant; extra columns are kept.",
    (
        Column("participant_id", "string", True, "Pseudonymous participant code, unique.", nullable=False),
        Column("arm", "category", True, "Protocol arm (see the cohort's arm list).", nullable=False),
        Column("sex", "category", False, "female, male or other (F/M accepted).", categories=SEXES),
        Column("age_years", "float", False, "Age at baseline.", unit="years", minimum=10, maximum=100),
        Column("height_cm", "float", False, "Standing height.", unit="cm", minimum=100, maximum=230),
        Column("mass_kg", "float", False, "Body mass.", unit="kg", minimum=30, maximum=200),
        Column("sport", "string", False, "Main sport."),
        Column("site", "string", False, "Recruiting site."),
        Column("dominant_leg", "category", False, "Preferred kicking leg.", categories=SIDES),
    ),
    key=("participant_id",),
)

_SESSIONS = Table(
    "sessions",
    "Training log: one row per prescribed exercise per session.",
    (
        Column("participant_id", "string", True, "Pseudonymous participant code.", nullable=False),
        Column("session", "int", False, "Session number within the participant (1, 2, ...).", minimum=1,
               maximum=1000),
        Column("date", "date", False, "Session date; give date or week (or both)."),
        Column("week", "float", False, "Protocol week of the session.", unit="weeks", minimum=0, maximum=260),
        Column("exercise", "category", True, "Exercise performed.", categories=EXERCISES, nullable=False),
        Column("sets", "int", True, "Sets performed.", minimum=0, maximum=20, nullable=False),
        Column("reps", "int", True, "Repetitions per set.", minimum=0, maximum=100, nullable=False),
        Column("load_kg", "float", False, "External load; 0 = bodyweight.", unit="kg", minimum=0, maximum=400),
        Column("rpe", "float", False, "Rating of perceived exertion.", unit="0-10", minimum=0, maximum=10),
        Column("pain_nrs", "float", False, "Pain numeric rating scale during the session.", unit="0-10",
               minimum=0, maximum=10),
        Column("faults", "list", False, "Semicolon-separated form faults seen in the session.",
               categories=FAULTS),
        Column("completed", "bool", False, "Whether the prescribed exercise was done (true when absent)."),
    ),
    key=("participant_id", "session", "date", "week", "exercise"),
)

TABLES: dict[str, Table] = {t.name: t for t in (_MEASUREMENTS, _PARTICIPANTS, _SESSIONS)}

#: Dates of visits and sessions: the plausible calendar and how far a week column may stray from
#: the dates (rules ``date_range``, ``before_baseline`` and ``week_date``; see the data dictionary).
#: A date before EARLIEST_DATE, or after the day validation runs (plus FUTURE_GRACE_DAYS for time
#: zones), is refused. A visit's week and its days since the participant's baseline visit (divided
#: by 7) may differ by at most WEEK_TOLERANCE_DAYS days: a visit window of one week either side.
EARLIEST_DATE: str = "1980-01-01"
FUTURE_GRACE_DAYS: int = 1
WEEK_TOLERANCE_DAYS: float = 7.0

#: Column names (after normalisation: lower case, non-alphanumerics as ``_``)
#: that hold direct identifiers and are refused wherever they appear.
IDENTIFIER_PATTERNS: tuple[str, ...] = (
    r"(first_|last_|full_|given_|family_|patient_|participant_|sur)?name",
    r"forename",
    r"e_?mail(_address)?",
    r"(tele)?phone(_number)?|mobile(_number)?|cell(_phone)?",
    r"(street_|home_|postal_|mailing_)?address(_line_?\d)?|street",
    r"dob|date_of_birth|birth_?date|birthday",
    r"mrn|medical_record(_number)?|hospital_number|nhs_number|ssn|social_security(_number)?",
)
_IDENTIFIER_RE = re.compile(r"^(?:" + "|".join(IDENTIFIER_PATTERNS) + r")$")


def normalise_column_name(name: object) -> str:
    """Lower-case a header and turn runs of non-alphanumerics into ``_``.

    >>> normalise_column_name(" Date of Birth ")
    'date_of_birth'
    """
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def is_identifier_column(name: object) -> bool:
    """True when a column header names a direct identifier (name, email, phone, ...).

    >>> is_identifier_column("E-mail"), is_identifier_column("participant_id")
    (True, False)
    """
    from hipstats.data.identifiers import is_identifier_header  # noqa: PLC0415

    return bool(_IDENTIFIER_RE.match(normalise_column_name(name))) or is_identifier_header(name)


@dataclass(frozen=True)
class ContractSettings:
    """Per-cohort settings layered on the contract (read from ``hipstats.yaml``).

    Parameters
    ----------
    arms : tuple of str
        Allowed arm labels; the first is the reference arm for contrasts.
    reference_arm : str, optional
        Arm that other arms are compared with; defaults to the first arm.
    extra : dict
        The settings file's other keys (view settings such as ``retest_visit``, ``event_map``).
    arms_advice : str
        Where arms are declared for this source (a folder's ``hipstats.yaml``, a ``--config``
        file, ``--arms``): the advice of an ``unknown_arm`` problem.
    variable_labels : dict
        Variable labels the source carries (SPSS/Stata): table -> column -> label. Metadata only.
    notes : tuple of str
        What reading counted without refusing it (user-missing codes read as missing).
    """

    arms: tuple[str, ...] = DEFAULT_ARMS
    reference_arm: str | None = None
    extra: dict = field(default_factory=dict)
    arms_advice: str = "declare the arm in hipstats.yaml (arms: [...]) or pass --arms"
    variable_labels: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        return self.reference_arm or self.arms[0]


#: Default cut points (degrees of standing pelvic tilt, + = anterior) for tilt classes:
#: below the first = "posterior", from the first up to the second = "neutral",
#: at or above the second = "anterior". Based on the usual standing ASIS-PSIS
#: angle of about 4-14 degrees anterior in healthy adults (Herrington 2011,
#: Man Ther 16:646). Every analysis that classes tilt takes ``cuts=`` to change them.
DEFAULT_TILT_CUTS: tuple[float, float] = (4.0, 14.0)
TILT_CLASSES: tuple[str, ...] = ("posterior", "neutral", "anterior")


#: How a REDCap project maps onto the contract (hipstats.data.readers.redcap), for the data dictionary.
REDCAP_RULES: tuple[str, ...] = (
    "A folder holding a REDCap raw-data export and its data dictionary under REDCap's own file names, "
    "`<Project>_DATA_<YYYY-MM-DD_HHMM>.csv` and `<Project>_DataDictionary_<YYYY-MM-DD>.csv`, is a source "
    "(the newest export; the newest dictionary of the same project). A data export named directly finds "
    "the dictionary beside it. A labels export (`_DATA_LABELS_`) is refused: export the raw data.",
    "",
    "- **Records and events.** The dictionary's first field (usually `record_id`) is the participant. "
    "`redcap_event_name` is the visit: the `_arm_N` suffix is dropped and the week read from the label "
    "(`week_6_arm_1` is visit `week_6` at week 6). Other event names are mapped with `--event-map "
    "EVENT=VISIT[:WEEK],...` (or a YAML file), or `event_map:` in `hipstats.yaml` / `--config`.",
    f"- **Measure fields** are named `<measure>[_left|_right][_<pelvis>][_t<trial>][_r<k>]`, where pelvis is "
    f"one of {', '.join(PELVIS_CONDITIONS)} (e.g. `hip_ir_deg_left_neutral_t2`), so the pelvis condition "
    "of H1 and of the screening reference standard is recorded in the field name; `_r2` takes the rater "
    "from the event's field `rater_2`. Or a field is annotated in the dictionary's Field Annotation with "
    "`@HIPSTATS(measure=... side=... pelvis=... trial=... rater=... device=... position=...)`; "
    "`@HIPSTATS(ignore)` leaves it out. Only contract measures are measure fields.",
    "- **Visit fields** `visit_date`, `week`, `rater`, `device`, `position` and `pelvis` apply to the event's "
    "measurements (a field's own name or annotation wins). Participant fields (arm, sex, age_years, ...) may "
    "sit on any event.",
    "- **Codes.** Radio, dropdown, yes/no and true/false codes become the dictionary's labels (arm `1`/`2`/`3` "
    "-> `control`/`stretching`/`loading`); a measure's codes are its values (a 0-5 score). Checkbox columns "
    "`<field>___<code>` become the `;` list of checked labels (faults). A code the dictionary does not list "
    "is a problem (rule `redcap_code`).",
    "- **Repeating instruments.** Rows of a repeating instrument with an `exercise` field are the sessions "
    "table (its `session` field, else `redcap_repeat_instance`, is the session number); rows of any other "
    "repeating instrument are measurements with the instance as the trial.",
    "- **Site.** `redcap_data_access_group` is the site where the project has no `site` field.",
    "- **Ignored, and said so.** `<form>_complete` and `<form>_timestamp` fields and notes, calc, descriptive "
    "and file fields are never read (notes are never copied into a report); `hipstats validate` lists them as "
    "notes, and every other field that is not part of the contract too.",
    "- **Identifiers.** Fields flagged `y` in the dictionary's Identifier? column are refused when the export "
    "holds them (rule `identifier_column`; their values are never echoed): use REDCap's de-identified export.",
    "- **Dictionary and export must match.** An export column the dictionary does not define is a problem "
    "(rule `redcap_dictionary`). Problems name the REDCap file, row, record, event, field and value. The "
    "dictionary is listed among a report's input files with its SHA-256.",
)


def data_dictionary_markdown() -> str:
    """The data dictionary (``docs/data_dictionary.md``) rendered from this module.

    A test checks that the committed file equals this output, so the docs cannot
    drift from the contract.

    >>> "| hip_ir_deg |" in data_dictionary_markdown()
    True
    """
    lines = ["# hipstats data dictionary", "",
             "Generated from `hipstats/data/schema.py` by `python -m hipstats.data.schema > docs/data_dictionary.md`; "
             "do not edit by hand.", "",
             "Three tables in tidy long format. Column names are matched case-insensitively, with spaces and "
             "punctuation read as `_` (so `Participant ID` is `participant_id`). Row numbers in validation "
             "reports are the rows a person sees: the header is row 1 of a CSV file or sheet, so the first data "
             "row is row 2; for Parquet files and SQL tables row 1 is the first record.", ""]
    lines += ["## Measures", "", "| measure | unit | plausible range | per side | meaning |", "|---|---|---|---|---|"]
    for m in MEASURES.values():
        lines.append(f"| {m.name} | {'degrees' if m.is_angle else 'integer score'} | {m.plausible[0]:g} to "
                     f"{m.plausible[1]:g} | {'yes' if m.sided else 'no (side empty)'} | {m.description} |")
    lines += ["", "Angles must be in degrees: a measure named `*_rad`, or a degree measure whose readings all fit "
              "inside the radian equivalent of its range, is refused with advice to convert "
              "(`numpy.degrees`).", ""]
    for t in TABLES.values():
        lines += [f"## {t.name}", "", t.description, ""]
        if t.key:
            lines += [f"Unique key: ({', '.join(t.key)}); columns of the key that are absent are ignored.", ""]
        lines += ["| column | type | required | unit | allowed values / range | meaning |",
                  "|---|---|---|---|---|---|"]
        for c in t.columns:
            allowed = ""
            if c.categories:
                allowed = ", ".join(c.categories)
            elif c.minimum is not None or c.maximum is not None:
                allowed = f"{c.minimum:g} to {c.maximum:g}"
            if c.name == "arm":
                allowed = "declared in hipstats.yaml (default: " + ", ".join(DEFAULT_ARMS) + ")"
            lines.append(f"| {c.name} | {c.dtype} | {'yes' if c.required else 'no'} | {c.unit or ''} | "
                         f"{allowed} | {c.description} |")
        lines.append("")
    lines += ["## Dates and weeks", "",
              f"Visit dates (`visit_date`) and session dates (`date`) must lie between {EARLIEST_DATE} and the "
              f"day validation runs (one day of grace for time zones); outside that calendar a date is refused "
              "(rule `date_range`: a year such as 2101 or 1066 is a typing error). A report run `--as-of` a "
              "date still validates the whole source against today; rows after the as-of date are then left "
              "out of that run, not refused.", "",
              "Each participant's baseline visit is the visit labelled `baseline` (or week 0; without one, the "
              "visit with the smallest week). A later visit (larger week) dated before the baseline visit is "
              "refused (rule `before_baseline`).", "",
              f"Where a row gives both a week and a date, the week must agree with the days since the "
              f"participant's baseline visit divided by 7, within {WEEK_TOLERANCE_DAYS:g} days (a visit window "
              "of one week either side); otherwise the week column contradicts the dates (rule `week_date`). "
              "Session weeks are checked against the same baseline visit.", ""]
    lines += ["## Refused identifier columns", "",
              "Columns whose normalised name matches one of these patterns are refused in every table "
              "(rule `identifier_column`); participant ids that look like an email, a phone number or a "
              "person's name are refused too (rule `identifier_value`).", ""]
    lines += [f"- `{p}`" for p in IDENTIFIER_PATTERNS]
    lines += ["", "## REDCap projects", ""] + list(REDCAP_RULES)
    lines += ["", "## Tilt classes", "",
              f"Default cut points {DEFAULT_TILT_CUTS[0]:g} and {DEFAULT_TILT_CUTS[1]:g} degrees of standing "
              f"tilt: below {DEFAULT_TILT_CUTS[0]:g} posterior, up to {DEFAULT_TILT_CUTS[1]:g} neutral, "
              "from there anterior.", ""]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(data_dictionary_markdown(), end="")
