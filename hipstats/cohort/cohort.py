"""The validated cohort and the derived views analyses need.

:func:`load_cohort` reads a source, validates it (raising
:class:`hipstats.ValidationError` with every problem) and returns a
:class:`Cohort`: the three normalised tables plus views such as one outcome per
participant x visit x side, change from baseline and baseline covariates.

Examples
--------
>>> import hipstats as hs
>>> cohort = hs.simulate_cohort(n_participants=30, seed=1)
>>> ir = cohort.outcomes("hip_ir_deg")
>>> list(ir.columns)
['participant_id', 'visit', 'week', 'side', 'value', 'n_trials', 'sd', 'rater']
>>> frame = cohort.analysis_frame("hip_ir_deg")
>>> {"baseline", "change", "arm", "standing_tilt_deg"} <= set(frame.columns)
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hipstats.cohort import views
from hipstats.data import schema
from hipstats.errors import AnalysisError, ParameterError, ValidationError

__all__ = ["Cohort", "load_cohort"]

_BASE_COVARIATES = ["arm", "sex", "age_years", "height_cm", "mass_kg", "sport", "site", "dominant_leg"]


@dataclass
class Cohort:
    """A validated cohort: measurements, participants and sessions in tidy long format.

    Parameters
    ----------
    measurements, participants, sessions : DataFrame
        Normalised tables with the columns of :mod:`hipstats.data.schema`.
    settings : ContractSettings
        Arms (first = reference) of this cohort.
    source : str
        Where the data came from.
    files : list of str
        Files read (for provenance).
    truth : dict, optional
        Generating parameters, for simulated cohorts only.
    """

    measurements: pd.DataFrame
    participants: pd.DataFrame
    sessions: pd.DataFrame
    settings: schema.ContractSettings = field(default_factory=schema.ContractSettings)
    source: str = "<memory>"
    files: list[str] = field(default_factory=list)
    truth: dict[str, Any] | None = None

    def __post_init__(self):
        self.measurements = _finish_measurements(self.measurements)
        self.participants = _finish_participants(self.participants, self.settings)
        self.sessions = _finish_sessions(self.sessions)
        self._cache: dict = {}

    # A Cohort is treated as immutable: derived views are cached. Make a changed
    # cohort with subset(), as_of() or a new Cohort(...) rather than editing tables in place.
    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        value = self._cache[key]
        return value.copy() if isinstance(value, (pd.DataFrame, pd.Series)) else value

    # ------------------------------------------------------------------ basics
    @property
    def arms(self) -> list[str]:
        """Arms in the cohort's declared order (reference first)."""
        present = set(self.participants["arm"].dropna())
        return [a for a in self.settings.arms if a in present]

    @property
    def reference_arm(self) -> str:
        return self.settings.reference

    @property
    def n_participants(self) -> int:
        return int(self.participants["participant_id"].nunique())

    def schedule(self) -> pd.DataFrame:
        """Visits with their median week, attendance and whether they are scheduled.

        See :func:`hipstats.cohort.views.visit_schedule`: declared ``scheduled_visits``
        (``hipstats.yaml``) win; otherwise a visit attended by at least half as many
        participants as the best-attended visit is scheduled. Extra visits (a reliability
        retest of a subset) stay in the data and are left out of outcome views, with a note.
        """
        return self._cached("schedule", lambda: views.visit_schedule(self))

    @property
    def scheduled_visits(self) -> list[str]:
        s = self.schedule()
        return s.loc[s["scheduled"], "visit"].tolist()

    @property
    def baseline_visit(self) -> str:
        visits = self.scheduled_visits
        if not visits:
            raise AnalysisError("the cohort has no measurements, so no baseline visit")
        return visits[0]

    @property
    def retest_visit(self) -> str | None:
        """The retest visit (declared, or found by :func:`hipstats.cohort.views.retest_visit`); None if none."""
        return self._cached("retest_visit", lambda: views.retest_visit(self))

    def primary_rater(self, measure: str) -> str | None:
        """The primary rater of a measure (:func:`hipstats.cohort.views.primary_rater`; None without raters)."""
        return self._cached(("primary_rater", measure), lambda: views.primary_rater(self, measure))

    def with_settings(self, **names) -> "Cohort":
        """The same cohort with view settings declared (``primary_rater``, ``retest_visit``,
        ``scheduled_visits``), as ``hipstats.yaml`` or report parameters declare them.

        Empty values ("" or None) leave a setting to the rules of :mod:`hipstats.cohort.views`.
        """
        unknown = sorted(set(names) - set(views.VIEW_SETTINGS))
        if unknown:
            raise ParameterError(f"unknown view setting(s) {unknown}; known: {', '.join(views.VIEW_SETTINGS)}")
        extra = dict(self.settings.extra)
        for k, v in names.items():
            if v is None or (isinstance(v, (str, list, tuple)) and len(v) == 0):
                continue
            extra[k] = v
        settings = dataclasses.replace(self.settings, extra=extra)
        return Cohort(self.measurements, self.participants, self.sessions, settings, self.source,
                      list(self.files), self.truth)

    # ------------------------------------------------------------------ views
    def outcomes(self, measure: str, *, pelvis: str | None = "free", visits="scheduled",
                 rater: str | None = "primary", side: str | None = None) -> pd.DataFrame:
        """One value per participant x visit x side: the mean of trials (:func:`hipstats.cohort.views.trial_means`).

        Parameters
        ----------
        measure : str
            A measure name from :data:`hipstats.data.schema.MEASURES`.
        pelvis : str or None
            Pelvic condition to keep; None keeps all conditions. Default "free" (own
            posture). Readings with no condition recorded count as own posture: they are
            kept for "free" and never for "neutral", "anterior" or "posterior".
        visits : "scheduled", "all" or list of str
            Which visits to keep (see :meth:`schedule`).
        rater : "primary", a rater code, or None
            "primary" applies the one-rater rule: the primary rater only where two raters
            measured the same participant, visit and side, whoever measured elsewhere;
            None averages all raters.
        side : "left", "right" or None
            Keep one side only.

        Returns
        -------
        DataFrame
            participant_id, visit, week, side, value (mean), n_trials, sd, rater; left-out rows
            counted in ``attrs["notes"]``.
        """
        if measure not in schema.MEASURES:
            raise AnalysisError(f"unknown measure '{measure}' (known: {', '.join(schema.MEASURES)})")
        if pelvis is not None and pelvis not in schema.PELVIS_CONDITIONS:
            raise AnalysisError(f"unknown pelvis condition '{pelvis}' (known: {', '.join(schema.PELVIS_CONDITIONS)})")
        if isinstance(visits, str) and visits not in ("scheduled", "all"):
            raise AnalysisError(f"visits must be 'scheduled', 'all' or a list of labels, not '{visits}'")
        key = ("outcomes", measure, pelvis, visits if isinstance(visits, str) else tuple(visits), rater, side)
        return self._cached(key, lambda: views.trial_means(self, measure, pelvis=pelvis, visits=visits,
                                                           side=side or "both", rater=rater))

    def baseline_covariates(self) -> pd.DataFrame:
        """Participants with baseline standing tilt (``standing_tilt_deg``) and baseline outcomes.

        Baseline outcomes are the mean over sides of the baseline visit
        (``baseline_hip_ir_deg``, ``baseline_aslr_deg``).
        """
        return self._cached("baseline_covariates", self._baseline_covariates)

    def _baseline_covariates(self) -> pd.DataFrame:
        p = self.participants.copy()
        base = self.baseline_visit if not self.measurements.empty else None
        tilt = self.outcomes("pelvic_tilt_deg", pelvis=None, visits=[base] if base else "all")
        p["standing_tilt_deg"] = p["participant_id"].map(tilt.groupby("participant_id")["value"].mean())
        for measure in ("hip_ir_deg", "aslr_deg"):
            b = self.outcomes(measure, visits=[base] if base else "all")
            p[f"baseline_{measure}"] = p["participant_id"].map(b.groupby("participant_id")["value"].mean())
        return p

    def analysis_frame(self, measure: str, **outcome_kw) -> pd.DataFrame:
        """Outcomes with baseline, change from baseline and baseline covariates merged.

        Parameters
        ----------
        measure : str
        **outcome_kw
            Passed to :meth:`outcomes` (pelvis, visits, rater, side).

        Returns
        -------
        DataFrame
            participant_id, visit, week, side, value, n_trials, sd, baseline, change,
            arm (ordered, reference first), sex, age_years, ..., standing_tilt_deg.
            Participants without a baseline value have NaN baseline and change.
        """
        out = self.outcomes(measure, **outcome_kw)
        if out.empty:
            raise AnalysisError(f"no '{measure}' outcomes to analyse")
        sched = [v for v in self.scheduled_visits if v in set(out["visit"])]
        out = views.change_from_baseline(out, baseline=sched[0] if sched else None)
        notes = out.attrs
        cov = self.baseline_covariates()
        keep = ["participant_id"] + [c for c in cov.columns if c != "participant_id"]
        out = out.merge(cov[keep], on="participant_id", how="left")
        out["arm"] = pd.Categorical(out["arm"], categories=self.arms)
        out.attrs = dict(notes)
        return out

    def participant_flow(self) -> pd.DataFrame:
        """CONSORT-style flow: participants randomised and measured at each scheduled visit, per arm."""
        p = self.participants[["participant_id", "arm"]]
        seen = self.measurements[["participant_id", "visit"]].drop_duplicates()
        rows = []
        for arm in self.arms:
            ids = set(p.loc[p["arm"] == arm, "participant_id"])
            n = len(ids)
            row = {"arm": arm, "allocated": n}
            for v in self.scheduled_visits:
                k = seen.loc[(seen["visit"] == v) & seen["participant_id"].isin(ids), "participant_id"].nunique()
                row[v] = k
            last = self.scheduled_visits[-1] if self.scheduled_visits else None
            row["retained_pct"] = round(100.0 * row.get(last, 0) / n, 1) if n and last else np.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def missingness(self) -> pd.DataFrame:
        """Per measure and scheduled visit: participants expected (still attending), observed, % missing."""
        m = self.measurements
        attended = m[["participant_id", "visit"]].drop_duplicates()
        rows = []
        for measure in [x for x in schema.MEASURES if (m["measure"] == x).any()]:
            have = m.loc[m["measure"] == measure, ["participant_id", "visit"]].drop_duplicates()
            for v in self.scheduled_visits:
                exp = attended.loc[attended["visit"] == v, "participant_id"].nunique()
                obs = have.loc[have["visit"] == v, "participant_id"].nunique()
                rows.append({"measure": measure, "visit": v, "attended": exp, "measured": obs,
                             "missing_pct": round(100.0 * (exp - obs) / exp, 1) if exp else np.nan})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ subsets
    def as_of(self, date) -> "Cohort":
        """The cohort as it was recorded by a date (measurements and sessions on or before it).

        Raises
        ------
        ParameterError
            When the cohort records no dates to restrict on.
        """
        cutoff = pd.Timestamp(date)
        m, s = self.measurements, self.sessions
        if m["visit_date"].isna().all():
            raise ParameterError("as-of date given but the measurements have no visit_date column to filter on")
        m = m[m["visit_date"].isna() | (m["visit_date"] <= cutoff)]
        if not s.empty and s["date"].notna().any():
            s = s[s["date"].isna() | (s["date"] <= cutoff)]
        p = self.participants[self.participants["participant_id"].isin(set(m["participant_id"]))]
        return Cohort(m.copy(), p.copy(), s.copy(), self.settings, f"{self.source} (as of {cutoff.date()})",
                      list(self.files), self.truth)

    def subset(self, participants) -> "Cohort":
        """A cohort restricted to some participant ids."""
        ids = set(participants)
        keep = lambda df: df[df["participant_id"].isin(ids)].copy()  # noqa: E731
        return Cohort(keep(self.measurements), keep(self.participants), keep(self.sessions), self.settings,
                      self.source, list(self.files), self.truth)

    # ------------------------------------------------------------------ output
    def summary(self) -> pd.DataFrame:
        """Counts per arm: participants, measurement rows, sessions, visits attended."""
        p = self.participants
        m = self.measurements.merge(p[["participant_id", "arm"]], on="participant_id", how="left")
        s = self.sessions.merge(p[["participant_id", "arm"]], on="participant_id", how="left")
        rows = []
        for arm in self.arms:
            rows.append({"arm": arm,
                         "participants": int((p["arm"] == arm).sum()),
                         "measurements": int((m["arm"] == arm).sum()),
                         "sessions": int((s["arm"] == arm).sum()),
                         "visits": int(m.loc[m["arm"] == arm, ["participant_id", "visit"]].drop_duplicates().shape[0])})
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return (f"<Cohort {self.source}: {self.n_participants} participants, arms {self.arms}, "
                f"{len(self.measurements)} measurements, {len(self.sessions)} session rows>")

    def _repr_html_(self) -> str:
        return (f"<p><b>Cohort</b> {html.escape(self.source)}: {self.n_participants} participants, "
                f"visits {html.escape(', '.join(map(str, self.scheduled_visits)))}</p>" + self.summary().to_html(index=False))

    def to_tables(self) -> dict[str, pd.DataFrame]:
        """The three tables in contract column order, as they would be written to disk."""
        out = {}
        for name, df in (("measurements", self.measurements), ("participants", self.participants),
                         ("sessions", self.sessions)):
            cols = schema.TABLES[name].column_names
            extra = [c for c in df.columns if c not in cols and not c.startswith("_")]
            t = df[[c for c in cols if c in df.columns] + extra].copy()
            for c in t.columns:
                if pd.api.types.is_datetime64_any_dtype(t[c]):
                    t[c] = t[c].dt.strftime("%Y-%m-%d")
            out[name] = t
        return out

    def write(self, folder, *, format: str = "csv", overwrite: bool = False) -> list[Path]:
        """Write the three tables to a folder (atomically: each file appears whole or not at all).

        Parameters
        ----------
        folder : path-like
        format : {"csv", "parquet", "xlsx"}
        overwrite : bool
            Refuse to replace existing table files unless True.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ext = {"csv": ".csv", "parquet": ".parquet", "xlsx": ".xlsx"}.get(format)
        if ext is None:
            raise ParameterError(f"format must be csv, parquet or xlsx, not '{format}'")
        targets = {name: folder / f"{name}{ext}" for name in ("measurements", "participants", "sessions")}
        if not overwrite:
            exists = [str(p) for p in targets.values() if p.exists()]
            if exists:
                raise ParameterError(f"refusing to overwrite {', '.join(exists)} (pass overwrite=True / --force)")
        written = []
        for name, table in self.to_tables().items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=ext, dir=folder)
            os.close(fd)
            try:
                if format == "csv":
                    table.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")
                elif format == "parquet":
                    table.to_parquet(tmp, index=False)
                else:
                    table.to_excel(tmp, index=False, sheet_name=name)
                os.chmod(tmp, 0o666 & ~_umask())
                os.replace(tmp, targets[name])
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            written.append(targets[name])
        return written

    def fingerprint(self) -> str:
        """SHA-256 of the tables' content (stable across formats), for provenance."""
        h = hashlib.sha256()
        for name, table in self.to_tables().items():
            h.update(name.encode())
            h.update(table.to_csv(index=False, float_format="%.10g").encode())
        return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- finishing
def _finish_measurements(df: pd.DataFrame) -> pd.DataFrame:
    cols = schema.TABLES["measurements"].column_names
    df = df.copy()
    schema.TABLES["measurements"].add_missing_columns(df)
    df = df[cols + [c for c in df.columns if c not in cols and not c.startswith("_")]]
    df["participant_id"] = df["participant_id"].astype(str)
    df["visit"] = df["visit"].astype(str)
    df["week"] = pd.to_numeric(df["week"], errors="coerce").astype(float)
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    df["trial"] = pd.to_numeric(df["trial"], errors="coerce").fillna(1).astype(int)
    df["visit_date"] = pd.to_datetime(df["visit_date"], errors="coerce")
    for c in ("side", "rater", "device", "position", "pelvis", "measure"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df.reset_index(drop=True)


def _finish_participants(df: pd.DataFrame, settings) -> pd.DataFrame:
    cols = schema.TABLES["participants"].column_names
    df = df.copy()
    schema.TABLES["participants"].add_missing_columns(df)
    df = df[cols + [c for c in df.columns if c not in cols and not c.startswith("_")]]
    df["participant_id"] = df["participant_id"].astype(str)
    for c in ("age_years", "height_cm", "mass_kg"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df.reset_index(drop=True)


def _finish_sessions(df: pd.DataFrame | None) -> pd.DataFrame:
    cols = schema.TABLES["sessions"].column_names
    df = pd.DataFrame(columns=cols) if df is None else df.copy()
    schema.TABLES["sessions"].add_missing_columns(df)
    df = df[cols + [c for c in df.columns if c not in cols and not c.startswith("_")]]
    df["participant_id"] = df["participant_id"].astype(str)
    for c in ("week", "load_kg", "rpe", "pain_nrs"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    for c in ("sets", "reps"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    df["session"] = pd.to_numeric(df["session"], errors="coerce").astype("Int64")
    df["date"] = pd.to_datetime(df["date"], errors="coerce")
    df["faults"] = df["faults"].fillna("").astype(str)
    completed = df["completed"].astype(object)
    df["completed"] = completed.where(completed.notna(), True).astype(bool)
    df["load_kg"] = df["load_kg"].fillna(0.0)
    return df.reset_index(drop=True)


def load_cohort(source, *, arms=None, tables=None, event_map=None, config=None, dictionary=None) -> Cohort:
    """Read, validate and normalise a cohort in one call.

    Parameters
    ----------
    source : str or path-like
        Folder of tables, single file, REDCap export or SQLAlchemy URL (see :mod:`hipstats.data.readers`).
    arms : sequence of str, optional
        Allowed arms, reference first (default from ``hipstats.yaml`` or control,
        stretching, loading).
    tables : dict, optional
        SQL table names when they differ from measurements/participants/sessions.
    event_map : dict, optional
        REDCap event name -> (visit label, week).
    config : path-like, optional
        A settings file (``hipstats.yaml`` layout) for any source, a database included; it
        replaces a folder's own ``hipstats.yaml``.

    Returns
    -------
    Cohort

    Raises
    ------
    ValidationError
        Carrying a :class:`~hipstats.data.problems.ValidationReport` of every problem.
    SourceError
        When the source cannot be opened.

    Examples
    --------
    >>> import hipstats as hs
    >>> cohort = hs.load_cohort("data/example")     # doctest: +SKIP
    >>> cohort.arms                                 # doctest: +SKIP
    ['control', 'stretching', 'loading']
    """
    from hipstats.data.readers.source import read_source
    from hipstats.data.validation import validate_tables

    raw, settings, label = read_source(source, arms=arms, tables=tables, event_map=event_map, config=config, dictionary=dictionary)
    tables_, report = validate_tables(raw, settings, source=label)
    if not report.ok:
        raise ValidationError(report)
    files = sorted({rt.file for rt in raw.values()} | {f for rt in raw.values() for f in rt.also_read})
    return Cohort(tables_["measurements"], tables_["participants"], tables_.get("sessions"), settings,
                  label, files)
