"""H4 — is the loading progressive and safe?

From the training log (the ``sessions`` table: one row per exercise per session):

* :func:`volume_load` — sets x reps x kg per row, session, week or arm-week (bodyweight
  exercises handled explicitly);
* :func:`progression_slopes` — each participant's load progression (OLS slope of load on
  week per exercise, with CI) and per-arm summaries;
* :func:`adherence` — completed / prescribed, per participant (Wilson CIs) and arm
  (participant-cluster CIs, :func:`hipstats.stats.rates.pooled_rate`);
* :func:`progression_compliance` — the rule "progress the load only after a session with
  solid form; pain at or above a threshold means stop" as a table of every load increase that
  followed a session with faults or pain, with rates per participant and arm;
* :func:`pain_flags` — sessions with pain at or above the threshold;
* :func:`dose_response` — IR change at the final visit on cumulative completed volume-load,
  between participants, adjusted for arm and baseline;
* :func:`loading_analysis` — all of it in one call on a cohort.

Conventions: a row of the log is one exercise in one session; only ``completed`` rows count
as training done (a missing ``completed`` means done). Sessions are ordered by the ``session``
number when present, else by ``date``, else by ``week`` (then one session per week is
assumed). The arm comes from the cohort's ``participants`` table (or ``participants=``).

Examples
--------
>>> import pandas as pd
>>> from hipstats.questions.loading import volume_load
>>> log = pd.DataFrame({"participant_id": "p1", "session": [1, 1, 2], "week": [0, 0, 0.5],
...     "exercise": ["ffe_split_squat", "glute_bridge", "ffe_split_squat"],
...     "sets": 3, "reps": [8, 12, 8], "load_kg": [20.0, 0.0, 22.5]})
>>> vl = volume_load(log)
>>> vl["volume_load_kg"].tolist(), vl["bodyweight_reps"].tolist()
([480.0, 540.0], [36, 0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.cohort.views import arm_table, need_arm, participant_change, prepare_sessions, prepared_source
from hipstats.errors import AnalysisError
from hipstats.questions.common import Result, adjusted_ols, estimate_or_note, note_rows
from hipstats.results import resolve_confidence
from hipstats.stats.inference import mean_ci
from hipstats.stats.rates import pooled_rate, with_rate

__all__ = [
    "COMPLIANCE_STATUS", "volume_load", "progression_slopes", "adherence", "progression_compliance",
    "pain_flags", "dose_response", "loading_analysis", "ComplianceResult", "LoadingResult"
]


#: Status labels of a participant-week in the compliance grid (heat map), in display order.
COMPLIANCE_STATUS: tuple[str, ...] = ("no session", "ok", "progressed after fault/pain")


# ----------------------------------------------------------------------------------------
# Volume-load
# ----------------------------------------------------------------------------------------
def volume_load(data, *, level: str = "session", bodyweight: str | None = None,
                bodyweight_fraction: float | Mapping[str, float] = 1.0,
                participants: pd.DataFrame | None = None, confidence: float = 0.95, alpha: float | None = None) -> pd.DataFrame:
    """Volume-load (sets x reps x kg) of completed training.

    .. math:: VL = \\sum_{\\text{completed rows}} \\text{sets} \\times \\text{reps} \\times
              \\text{load}

    Bodyweight rows (``load_kg == 0``) add nothing to the volume-load by default; their
    repetitions are counted in ``bodyweight_reps`` (and every row's in ``reps_volume`` =
    sets x reps). With ``bodyweight="mass"`` a bodyweight row's load is taken as
    ``bodyweight_fraction`` x the participant's ``mass_kg`` (participants table), e.g. 0.6 for
    a split squat's moved mass; a mapping gives one fraction per exercise (others 0).

    Parameters
    ----------
    data : Cohort or sessions DataFrame
    level : {"row", "session", "week", "arm_week"}
        Aggregation. ``"week"`` adds ``cumulative_volume_kg``; ``"arm_week"`` gives the mean
        weekly volume-load per participant in each arm and week with a t-based CI (the weeks
        a participant has log rows for; weeks with only missed sessions count as 0).
    bodyweight : {None, "mass"}
    bodyweight_fraction : float or mapping exercise -> float
    participants : DataFrame, optional
        participant_id, arm (and mass_kg for ``bodyweight="mass"``) when ``data`` is a log.
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        ``session``: participant_id, [arm], session, week, n_rows, n_completed,
        volume_load_kg, reps_volume, bodyweight_reps. ``week``: per participant and whole week
        with sessions (distinct sessions with a completed row) and the cumulative volume-load.

    References
    ----------
    Haff GG (2010). Quantifying workloads in resistance training: a brief review.
    Professional Strength and Conditioning 19:31-40.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.questions.loading import volume_load
    >>> log = pd.DataFrame({"participant_id": "p1", "week": [0, 1], "exercise": "glute_bridge",
    ...                     "sets": 2, "reps": 10, "load_kg": 0.0})
    >>> people = pd.DataFrame({"participant_id": ["p1"], "arm": ["loading"], "mass_kg": [70.0]})
    >>> volume_load(log, level="week", bodyweight="mass", bodyweight_fraction=0.5,
    ...             participants=people)["volume_load_kg"].tolist()
    [700.0, 700.0]
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="volume_load")
    s = prepare_sessions(data, participants)
    load = s["load_kg"].to_numpy(float).copy()
    bw = load == 0
    if bodyweight == "mass":
        people = participants
        if people is None and not isinstance(data, pd.DataFrame):
            people = getattr(data, "participants", None)
        if people is None or "mass_kg" not in people.columns:
            raise AnalysisError("bodyweight='mass' needs participants with a mass_kg column")
        mass = s["participant_id"].map(people.set_index("participant_id")["mass_kg"])
        if mass[bw].isna().any():
            miss = sorted(s.loc[bw & mass.isna(), "participant_id"].astype(str).unique())[:5]
            raise AnalysisError(f"bodyweight='mass' but mass_kg is missing for {miss}")
        if isinstance(bodyweight_fraction, Mapping):
            frac = s["exercise"].map(lambda e: float(bodyweight_fraction.get(e, 0.0)))
        else:
            frac = pd.Series(float(bodyweight_fraction), index=s.index)
        load = np.where(bw, frac.to_numpy() * mass.to_numpy(float), load)
    elif bodyweight is not None:
        raise AnalysisError(f"bodyweight must be None or 'mass', got {bodyweight!r}")
    done = s["completed"].to_numpy(bool)
    reps = (s["sets"] * s["reps"]).to_numpy(float)
    s["volume_load_kg"] = np.where(done, reps * load, 0.0)
    s["reps_volume"] = np.where(done, reps, 0.0)
    s["bodyweight_reps"] = np.where(done & bw, reps, 0.0)
    arm = ["arm"] if "arm" in s.columns else []
    if level == "row":
        return s
    sums = {"volume_load_kg": "sum", "reps_volume": "sum", "bodyweight_reps": "sum"}
    if level == "session":
        out = (s.groupby(["participant_id", *arm, "session"], sort=True, dropna=False)
                .agg(week=("week", "first"), n_rows=("exercise", "size"),
                     n_completed=("completed", "sum"), **{k: (k, v) for k, v in sums.items()})
                .reset_index())
        return _int_reps(out)
    if level in ("week", "arm_week"):
        s["_done_session"] = np.where(done, s["session"], np.nan)
        s["week"] = np.floor(s["week"])
        out = (s.groupby(["participant_id", *arm, "week"], sort=True, dropna=False)
                .agg(sessions=("_done_session", "nunique"), **{k: (k, v) for k, v in sums.items()})
                .reset_index())
        out["cumulative_volume_kg"] = out.groupby("participant_id")["volume_load_kg"].cumsum()
        out = _int_reps(out)
        if level == "week":
            return out
        need_arm(out, "volume-load")
        rows = []
        for (a, w), g in out.groupby(["arm", "week"], sort=True):
            m, lo, hi = mean_ci(g["volume_load_kg"].to_numpy(float), alpha)
            rows.append({"arm": a, "week": w, "n_participants": len(g), "volume_load_kg": m,
                         "volume_load_kg_ci_low": lo, "volume_load_kg_ci_high": hi,
                         "reps_volume": g["reps_volume"].mean()})
        return pd.DataFrame(rows)
    raise AnalysisError(f"level must be 'row', 'session', 'week' or 'arm_week', got {level!r}")


def _int_reps(df: pd.DataFrame) -> pd.DataFrame:
    for c in ("reps_volume", "bodyweight_reps", "n_completed"):
        if c in df.columns:
            df[c] = df[c].round().astype(int)
    return df


# ----------------------------------------------------------------------------------------
# Progression slopes
# ----------------------------------------------------------------------------------------
def _group_ols_slopes(gid: np.ndarray, x: np.ndarray, y: np.ndarray, n_groups: int,
                      alpha: float) -> pd.DataFrame:
    """OLS slope of y on x in each group, in closed form from per-group sums.

    With :math:`x_c = x - \\bar x_g`, :math:`y_c = y - \\bar y_g`:
    :math:`\\hat b_g = \\sum x_c y_c / \\sum x_c^2`,
    :math:`SE = \\sqrt{\\sum (y_c - \\hat b_g x_c)^2 / (n_g - 2) / \\sum x_c^2}` and the CI
    :math:`\\hat b_g \\pm t_{n_g-2,1-\\alpha/2} SE`. NaN where :math:`n_g < 3` or x does not
    vary within the group. ``gid`` are group codes 0..n_groups-1.
    """
    n = np.bincount(gid, minlength=n_groups).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = x - (np.bincount(gid, x, n_groups) / n)[gid]
        yc = y - (np.bincount(gid, y, n_groups) / n)[gid]
        sxx = np.bincount(gid, xc * xc, n_groups)
        b = np.bincount(gid, xc * yc, n_groups) / sxx
        rss = np.bincount(gid, (yc - b[gid] * xc) ** 2, n_groups)
        se = np.sqrt(rss / (n - 2) / sxx)
        xmin = pd.Series(x).groupby(gid).min().to_numpy()
        xmax = pd.Series(x).groupby(gid).max().to_numpy()
        bad = (n < 3) | (xmin == xmax)
        h = stats.t.ppf(1 - alpha / 2, np.where(bad, 1, n - 2)) * se
    b, se, h = (np.where(bad, np.nan, v) for v in (b, se, h))
    return pd.DataFrame({"slope_kg_per_week": b, "slope_kg_per_week_se": se,
                         "slope_kg_per_week_ci_low": b - h, "slope_kg_per_week_ci_high": b + h})


def progression_slopes(data, *, level: str = "participant", exercise: str | Sequence[str] | None
                       = None, participants: pd.DataFrame | None = None, confidence: float = 0.95, alpha: float | None = None
                       ) -> pd.DataFrame:
    """Load progression: OLS slope of load (kg) on week per participant and exercise.

    For participant *i* and exercise *e*, over completed rows with an external load at some
    point (exercises always done with bodyweight are left out):

    .. math:: \\text{load}_{ij} = a_{ie} + b_{ie}\\,\\text{week}_{ij} + e_{ij},\\qquad
              \\hat b \\pm t_{n-2,1-\\alpha/2}\\,SE(\\hat b)

    ``level="arm"`` summarises the participants' slopes per arm and exercise: their mean with a
    t-based CI (participants as the unit), the median, and the share of participants whose
    slope CI lies above 0 (progressive).

    Parameters
    ----------
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        participant: participant_id, [arm], exercise, n_sessions, first_week, last_week,
        start_load_kg, end_load_kg, slope_kg_per_week, se, ci_low, ci_high. Slopes need at least
        3 sessions spread over 2 or more weeks (NaN otherwise).
        arm: arm, exercise, n_participants, mean_slope, ci_low, ci_high, median_slope,
        share_progressive.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.questions.loading import progression_slopes
    >>> log = pd.DataFrame({"participant_id": "p1", "week": [0, 1, 2, 3],
    ...     "exercise": "ffe_split_squat", "sets": 3, "reps": 8,
    ...     "load_kg": [10.0, 15.0, 20.0, 25.0]})
    >>> float(progression_slopes(log)["slope_kg_per_week"].iloc[0])
    5.0
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="progression_slopes")
    s = prepare_sessions(data, participants)
    s = s[s["completed"]]
    if exercise is not None:
        wanted = [exercise] if isinstance(exercise, str) else list(exercise)
        s = s[s["exercise"].isin(wanted)]
    loaded = s.groupby(["participant_id", "exercise"])["load_kg"].transform("max") > 0
    s = s[loaded]
    if s.empty:
        raise AnalysisError("no completed session with an external load (load_kg > 0)"
                            + (f" for exercise {exercise!r}" if exercise is not None else ""))
    arm = ["arm"] if "arm" in s.columns else []
    keys = ["participant_id", *arm, "exercise"]
    s = s.sort_values([*keys, "session_order"], kind="stable")
    s = s.assign(_g=s.groupby(keys, sort=True, observed=True).ngroup().to_numpy())
    s = s[s["_g"] >= 0]  # rows with a missing key (e.g. no arm) form no group, as in groupby
    if s.empty:
        raise AnalysisError("no participant and exercise with completed loaded rows"
                            + (" and a known arm" if arm else ""))
    g = s.groupby("_g", sort=True)
    out = g[keys].first().reset_index(drop=True)
    out["n_sessions"] = g.size().to_numpy()
    out["first_week"], out["last_week"] = g["week"].min().to_numpy(), g["week"].max().to_numpy()
    out["start_load_kg"] = g["load_kg"].first().to_numpy()
    out["end_load_kg"] = g["load_kg"].last().to_numpy()
    fit = _group_ols_slopes(s["_g"].to_numpy(), s["week"].to_numpy(float),
                            s["load_kg"].to_numpy(float), len(out), alpha)
    out = pd.concat([out, fit], axis=1)
    if level == "participant":
        return out
    if level != "arm":
        raise AnalysisError(f"level must be 'participant' or 'arm', got {level!r}")
    need_arm(out, "progression")
    rows = []
    for (a, e), g in out.dropna(subset=["slope_kg_per_week"]).groupby(["arm", "exercise"]):
        m, lo, hi = mean_ci(g["slope_kg_per_week"].to_numpy(float), alpha)
        rows.append({"arm": a, "exercise": e, "n_participants": len(g), "mean_slope": m,
                     "mean_slope_ci_low": lo, "mean_slope_ci_high": hi,
                     "median_slope": g["slope_kg_per_week"].median(),
                     "share_progressive": float((g["slope_kg_per_week_ci_low"] > 0).mean())})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------
# Adherence and pain
# ----------------------------------------------------------------------------------------
def _arm_rate_summary(per: pd.DataFrame, count: str, nobs: str, rate: str, alpha: float):
    """Per arm: pooled proportion with participant-cluster CI (:func:`pooled_rate`; Wilson
    kept as ``*_wilson``) and mean of participants' rates with t CI, truncated to [0, 1] (a share
    cannot leave it; with few participants the t interval would)."""
    rows = []
    for a, g in per.groupby("arm", sort=True):
        m, lo, hi = mean_ci(g[rate].to_numpy(float), alpha)
        lo, hi = (float(np.clip(v, 0.0, 1.0)) if np.isfinite(v) else v for v in (lo, hi))
        rows.append({"arm": a, f"mean_{rate}": m,
                     f"mean_{rate}_ci_low": lo, f"mean_{rate}_ci_high": hi})
    pooled = pooled_rate(per, count, nobs, by=["arm"], confidence=1 - alpha, name=rate)
    return pooled.merge(pd.DataFrame(rows), on="arm", how="left")


def adherence(data, *, level: str = "participant", unit: str = "row",
              participants: pd.DataFrame | None = None, confidence: float = 0.95, alpha: float | None = None) -> pd.DataFrame:
    """Adherence = completed / prescribed, with Wilson score CIs.

    ``unit="row"`` counts prescribed exercise rows; ``unit="session"`` counts sessions (a
    session is completed when any of its exercises was done).

    .. math:: \\hat p = k/n,\\qquad
              \\frac{\\hat p + z^2/2n \\pm z\\sqrt{\\hat p(1-\\hat p)/n + z^2/4n^2}}{1 + z^2/n}

    ``level="arm"`` reports the pooled proportion with a participant-cluster CI
    (:func:`pooled_rate`: cluster-robust ratio estimator on the logit scale; the Wilson CI,
    which treats rows as independent and is too narrow when adherence differs between
    participants, is kept as ``adherence_ci_low_wilson`` / ``adherence_ci_high_wilson``) and
    the mean of the participants' adherence with a t-based CI truncated to [0, 1] (participants as
    the unit; use this one to compare arms).

    Parameters
    ----------
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        participant: participant_id, [arm], prescribed, completed, adherence, adherence_ci_low,
        adherence_ci_high (Wilson: one participant's rows). arm: arm, n_participants,
        completed, prescribed, adherence, adherence_ci_low, adherence_ci_high (cluster CI),
        adherence_ci_low_wilson, adherence_ci_high_wilson, mean_adherence (+ t CI).

    References
    ----------
    Wilson EB (1927). Probable inference, the law of succession, and statistical inference.
    JASA 22:209-212.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.questions.loading import adherence
    >>> log = pd.DataFrame({"participant_id": "p1", "week": [0, 0, 1, 1],
    ...     "exercise": "hold_90_90", "sets": 2, "reps": 5,
    ...     "completed": [True, True, False, True]})
    >>> adherence(log)["adherence"].tolist()
    [0.75]
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="adherence")
    s = prepare_sessions(data, participants)
    if unit == "session":
        s = (s.groupby(["participant_id", *(["arm"] if "arm" in s.columns else []), "session"])
              ["completed"].any().reset_index())
    elif unit != "row":
        raise AnalysisError(f"unit must be 'row' or 'session', got {unit!r}")
    arm = ["arm"] if "arm" in s.columns else []
    per = (s.groupby(["participant_id", *arm], sort=True)
            .agg(prescribed=("completed", "size"), completed=("completed", "sum")).reset_index())
    per["completed"] = per["completed"].astype(int)
    per = with_rate(per, "completed", "prescribed", alpha, name="adherence")
    if level == "participant":
        return per
    if level != "arm":
        raise AnalysisError(f"level must be 'participant' or 'arm', got {level!r}")
    need_arm(per, "adherence")
    return _arm_rate_summary(per, "completed", "prescribed", "adherence", alpha)


def pain_flags(data, *, threshold: float = 5, level: str = "participant", unit: str = "session",
               participants: pd.DataFrame | None = None, confidence: float = 0.95, alpha: float | None = None) -> pd.DataFrame:
    """Training with pain at or above ``threshold`` on the 0-10 NRS ("sharp pain means stop").

    Only completed rows count (pain is recorded when the exercise is done). With
    ``unit="session"`` a session is flagged when any of its completed exercises had
    ``pain_nrs >= threshold``; with ``unit="row"`` each completed exercise row is a unit.

    Parameters
    ----------
    threshold : float
        NRS at or above which the session should stop (default 5).
    level : {"flags", "participant", "arm"}
        ``flags``: the flagged units (participant, session, week, max pain, the exercises
        with pain at or above the threshold).
        ``participant``: units, flagged units, rate (Wilson CI), first flagged week.
        ``arm``: pooled rate with participant-cluster CI (``rate_ci_low``/``rate_ci_high``,
        :func:`pooled_rate`; Wilson kept as ``rate_ci_low_wilson``/``rate_ci_high_wilson``),
        mean participant rate (t CI), participants with a flag.
    unit : {"session", "row"}
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.questions.loading import pain_flags
    >>> log = pd.DataFrame({"participant_id": "p1", "week": [0., 1., 2.], "exercise": "other",
    ...                     "sets": 1, "reps": 5, "pain_nrs": [2, 6, 1]})
    >>> pain_flags(log)[["sessions", "flagged", "first_flag_week"]].values.tolist()
    [[3.0, 1.0, 1.0]]
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="pain_flags")
    s = prepare_sessions(data, participants)
    s = s[s["completed"]]
    if s["pain_nrs"].isna().all():
        raise AnalysisError("the sessions table has no pain_nrs values for completed exercises; "
                            "pain flags need them")
    if unit not in ("session", "row"):
        raise AnalysisError(f"unit must be 'session' or 'row', got {unit!r}")
    arm = ["arm"] if "arm" in s.columns else []
    s = s.assign(_flag=s["pain_nrs"] >= threshold)
    keys = ["participant_id", *arm, "session"] + (["exercise"] if unit == "row" else [])
    units = (s.groupby(keys, sort=True)
              .agg(week=("week", "first"), max_pain=("pain_nrs", "max"), flagged=("_flag", "any"))
              .reset_index())
    if level == "flags":
        out = units[units["flagged"]].drop(columns="flagged").reset_index(drop=True)
        ex = (s[s["_flag"]].groupby(keys)["exercise"].agg(lambda e: ";".join(map(str, e)))
              .rename("exercises").reset_index())
        return out.merge(ex, on=keys, how="left")
    n_name = "sessions" if unit == "session" else "rows"
    per = (units.groupby(["participant_id", *arm], sort=True)
                .agg(**{n_name: ("session", "size")}, flagged=("flagged", "sum")).reset_index())
    first = units[units["flagged"]].groupby("participant_id")["week"].min()
    per["first_flag_week"] = per["participant_id"].map(first)
    per["flagged"] = per["flagged"].astype(int)
    per = with_rate(per, "flagged", n_name, alpha)
    if level == "participant":
        return per
    if level != "arm":
        raise AnalysisError(f"level must be 'flags', 'participant' or 'arm', got {level!r}")
    need_arm(per, "pain flags")
    out = _arm_rate_summary(per, "flagged", n_name, "rate", alpha)
    flagged_people = per.groupby("arm")["flagged"].apply(lambda f: int((f > 0).sum()))
    out["participants_flagged"] = flagged_people.reindex(out["arm"]).to_numpy()
    return out


# ----------------------------------------------------------------------------------------
# Progression compliance
# ----------------------------------------------------------------------------------------
class ComplianceResult(Result):
    """The progression rule audited (see :func:`progression_compliance`).

    Attributes
    ----------
    transitions : DataFrame
        Every pair of consecutive logged sessions of an exercise: previous and current
        load, ``increase``, ``prev_fault``, ``prev_pain``, ``prev_flagged`` and ``violation``
        (load increased although the previous session had faults or pain).
    violations : DataFrame
        The rows of ``transitions`` with ``violation``.
    by_participant, by_arm : DataFrame
        Counts and rates: ``violation_rate`` = violations / flagged transitions (how often the
        rule was broken when it applied) and ``unsafe_share`` = violations / increases.
    grid : DataFrame
        participant_id, [arm], week (whole weeks: the floor of the session week), status in
        :data:`COMPLIANCE_STATUS` (for the heat map).
    """

    _title = "H4: load progression after faults or pain"

    def __init__(self, transitions, by_participant, by_arm, grid, pain_threshold, scope,
                 alpha: float = 0.05):
        self.transitions, self.by_participant, self.by_arm = transitions, by_participant, by_arm
        self.violations = transitions[transitions["violation"]].reset_index(drop=True)
        self.grid, self.pain_threshold, self.scope = grid, pain_threshold, scope
        self.alpha = alpha

    def summary(self) -> pd.DataFrame:
        if self.by_arm is not None:
            return self.by_arm
        return _rule_rates_pooled(self.by_participant, [], self.alpha)

    def to_frame(self) -> pd.DataFrame:
        return self.transitions

    def plot(self, **kwargs):
        """Participant x week heat map (:func:`hipstats.plots.loading.compliance_heatmap`)."""
        from hipstats.plots.loading import compliance_heatmap  # noqa: PLC0415

        return compliance_heatmap(self, **kwargs)


def _rule_rates_pooled(by_p: pd.DataFrame, keys: list[str], alpha: float) -> pd.DataFrame:
    """Pooled rule rates over participants (rows of ``by_p``) with participant-cluster CIs."""
    v = pooled_rate(by_p, "violations", "flagged", by=keys, confidence=1 - alpha, name="violation_rate")
    u = pooled_rate(by_p, "violations", "increases", by=keys, confidence=1 - alpha, name="unsafe_share")
    tot = (by_p.assign(_all=0).groupby(keys or ["_all"], sort=True)[["transitions"]]
           .sum().reset_index().drop(columns="_all", errors="ignore"))
    u = u.drop(columns=["n_participants", "violations"])  # v has them (n_participants: with
    # flagged transitions, the clusters of violation_rate)
    out = v.merge(u, on=keys) if keys else pd.concat([v, u], axis=1)
    out = tot.merge(out, on=keys) if keys else pd.concat([tot, out], axis=1)
    return out[[*keys, "n_participants", "transitions", "increases", "flagged", "violations",
                *[c for c in out.columns if c.startswith(("violation_rate", "unsafe_share"))]]]


def _rule_rates(df: pd.DataFrame, keys: list[str], alpha: float) -> pd.DataFrame:
    out = (df.groupby(keys, sort=True)
             .agg(transitions=("increase", "size"), increases=("increase", "sum"),
                  flagged=("prev_flagged", "sum"), violations=("violation", "sum"))
             .reset_index())
    for c in ("increases", "flagged", "violations"):
        out[c] = out[c].astype(int)
    out = with_rate(out, "violations", "flagged", alpha, "violation_rate")
    return with_rate(out, "violations", "increases", alpha, "unsafe_share")


def progression_compliance(data, *, pain_threshold: float = 5, scope: str = "exercise",
                           participants: pd.DataFrame | None = None, confidence: float = 0.95, alpha: float | None = None,
                           tol: float = 1e-9) -> ComplianceResult:
    """Audit the rule "progress load only after a session without faults; pain >= threshold
    means stop".

    For each participant and exercise the log rows are put in session order; each consecutive
    pair is a *transition* and its load change is the prescribed (logged) load against the
    previous one. The previous session is *flagged* when it was completed and had a form fault
    or ``pain_nrs >= pain_threshold`` — on that exercise (``scope="exercise"``) or on any
    exercise of that session (``scope="session"``); a missed session has no form to judge and
    is never flagged. A *violation* is a load increase (by more than ``tol`` kg) after a
    flagged session. Only exercises done with an external load (``load_kg > 0`` at some point
    for that participant) are audited: a bodyweight exercise has no load to raise.

    Rates: ``violation_rate`` = violations / flagged transitions, the probability
    that the load went up although the rule said hold; ``unsafe_share`` = violations /
    increases, the share of all increases that broke the rule. Per participant the CIs are
    Wilson; pooled over participants (``by_arm`` and ``summary()``) they are participant-cluster
    CIs (:func:`pooled_rate`), with the Wilson CIs kept as ``*_ci_low_wilson`` /
    ``*_ci_high_wilson`` (too narrow there: transitions of one participant are correlated).

    Parameters
    ----------
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).

    Returns
    -------
    ComplianceResult
        ``.violations`` (every unsafe increase), ``.by_participant``, ``.by_arm``, ``.grid``,
        ``.plot()`` (heat map).

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.questions.loading import progression_compliance
    >>> log = pd.DataFrame({"participant_id": "p1", "session": [1, 2, 3, 4],
    ...     "week": [0, 0.5, 1, 1.5], "exercise": "ffe_split_squat", "sets": 3, "reps": 8,
    ...     "load_kg": [10, 12.5, 15, 15], "faults": ["", "back_knee_lean", "", ""],
    ...     "pain_nrs": [1, 2, 6, 1]})
    >>> res = progression_compliance(log)
    >>> res.violations[["session", "prev_load_kg", "load_kg"]].values.tolist()
    [[3.0, 12.5, 15.0]]
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="progression_compliance")
    if scope not in ("exercise", "session"):
        raise AnalysisError(f"scope must be 'exercise' or 'session', got {scope!r}")
    all_rows = prepare_sessions(data, participants)
    loaded = all_rows.groupby(["participant_id", "exercise"])["load_kg"].transform("max") > 0
    s = all_rows.copy()
    done = s["completed"]
    s["_fault"] = done & s["any_fault"]
    s["_pain"] = done & (s["pain_nrs"] >= pain_threshold)
    if scope == "session":
        sess = s.groupby(["participant_id", "session_order"]).agg(_sf=("_fault", "any"),
                                                                  _sp=("_pain", "any"))
        s = s.join(sess, on=["participant_id", "session_order"])
        s["_fault"], s["_pain"] = s["_sf"], s["_sp"]
    s = s.sort_values(["participant_id", "exercise", "session_order"])
    g = s.groupby(["participant_id", "exercise"], sort=False)
    s["prev_load_kg"] = g["load_kg"].shift()
    s["prev_session"] = g["session"].shift()
    s["prev_completed"] = g["completed"].shift()
    s["prev_fault"] = g["_fault"].shift()
    s["prev_pain"] = g["_pain"].shift()
    s["prev_faults"] = g["faults"].shift()
    s["prev_pain_nrs"] = g["pain_nrs"].shift()
    tr = s[s["prev_load_kg"].notna() & loaded.reindex(s.index)].copy()
    if tr.empty:
        raise AnalysisError("no externally loaded exercise (load_kg > 0) appears in two sessions "
                            "of the log; there is no load change to audit")
    tr["prev_fault"] = tr["prev_fault"].astype(bool)
    tr["prev_pain"] = tr["prev_pain"].astype(bool)
    tr["increase"] = tr["load_kg"] > tr["prev_load_kg"] + tol
    tr["prev_flagged"] = tr["prev_fault"] | tr["prev_pain"]
    tr["violation"] = tr["increase"] & tr["prev_flagged"]
    arm = ["arm"] if "arm" in tr.columns else []
    cols = ["participant_id", *arm, "exercise", "prev_session", "session", "week", "prev_load_kg",
            "load_kg", "completed", "increase", "prev_completed", "prev_fault", "prev_faults",
            "prev_pain", "prev_pain_nrs", "prev_flagged", "violation"]
    tr = tr[cols].sort_values(["participant_id", "session", "exercise"]).reset_index(drop=True)
    by_p = _rule_rates(tr, ["participant_id", *arm], alpha)
    by_a = _rule_rates_pooled(by_p, ["arm"], alpha) if arm else None
    # participant x whole-week grid (floor of the session week) over weeks with log rows
    weeks = (all_rows.assign(week=np.floor(all_rows["week"]))
             .groupby(["participant_id", *arm, "week"]).agg(done=("completed", "any"))
             .reset_index())
    viol = (tr.assign(week=np.floor(tr["week"])).groupby(["participant_id", "week"])["violation"]
            .any().rename("_viol").reset_index())
    v = weeks[["participant_id", "week"]].merge(viol, on=["participant_id", "week"], how="left")
    v = v["_viol"].fillna(False).to_numpy(bool)
    weeks["status"] = np.where(v, COMPLIANCE_STATUS[2],
                               np.where(weeks["done"], COMPLIANCE_STATUS[1], COMPLIANCE_STATUS[0]))
    weeks["status"] = pd.Categorical(weeks["status"], categories=COMPLIANCE_STATUS)
    return ComplianceResult(tr, by_p, by_a, weeks.drop(columns="done"), pain_threshold, scope,
                            alpha)


def dose_response(cohort, measure: str = "hip_ir_deg", *, per: float = 1000.0,
                  final="final", adjust: Sequence[str] = ("arm", "baseline"),
                  arms: Sequence[str] | None = None, bodyweight: str | None = None,
                  bodyweight_fraction: float | Mapping[str, float] = 1.0,
                  confidence: float = 0.95, alpha: float | None = None) -> pd.DataFrame:
    """Between-participant dose-response: outcome change on cumulative completed volume-load.

    .. math:: \\Delta y_i = \\beta_0 + \\beta_V\\,\\frac{V_i}{\\text{per}}
              + \\sum_a \\gamma_a [\\text{arm}_i = a] + \\delta\\, y_{i0} + e_i

    fitted by OLS, where :math:`\\Delta y_i` is the change of the measure (sides averaged,
    own posture, primary rater) from baseline to the final visit and :math:`V_i` the
    participant's cumulative completed volume-load (kg) in sessions up to the final visit's
    week. :math:`\\beta_V` is the extra change per ``per`` kg of volume-load within arm; it is
    observational (participants choose how much they do), so read it as association.

    Parameters
    ----------
    cohort : Cohort
        Needs measurements, sessions and participants.
    measure : str
    per : float
        Volume-load unit for the slope (default 1000 kg).
    final : {"final", "last"} or visit label
        See :func:`hipstats.cohort.views.participant_change`.
    adjust : sequence of {"arm", "baseline"}
    arms : sequence of str, optional
        Arms to include (default all; participants without sessions have volume 0).
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        term, estimate, se, t, p, ci_low, ci_high; the volume term is named
        ``volume_load_per_<per>kg``; ``attrs`` holds n, r_squared, formula and the data used.

    Examples
    --------
    >>> import hipstats as hs  # doctest: +SKIP
    >>> hs.dose_response(hs.simulate_cohort(seed=2))  # doctest: +SKIP
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="dose_response")
    change = participant_change(cohort, measure, final=final)
    people = arm_table(cohort, None)
    if people is None:
        raise AnalysisError("dose_response needs the participants table (arm)")
    s = volume_load(cohort, level="row", bodyweight=bodyweight,
                    bodyweight_fraction=bodyweight_fraction)
    df = change.merge(people, on="participant_id", how="left")
    s = s.merge(df[["participant_id", "final_week"]], on="participant_id", how="inner")
    vol = s[s["week"] <= s["final_week"]].groupby("participant_id")["volume_load_kg"].sum()
    df["volume_load_kg"] = df["participant_id"].map(vol).fillna(0.0)
    if arms is not None:
        df = df[df["arm"].isin(list(arms))]
    return adjusted_ols(df, "volume_load_kg", per, adjust, alpha, f"volume_load_per_{per:g}kg", cohort)


# ----------------------------------------------------------------------------------------
# One call
# ----------------------------------------------------------------------------------------
class LoadingResult(Result):
    """Everything :func:`loading_analysis` computes for H4.

    Attributes
    ----------
    weekly, arm_weekly : DataFrame
        Volume-load per participant-week and per arm-week (mean with CI).
    progression, progression_by_arm : DataFrame
    adherence, adherence_by_arm : DataFrame
    compliance : ComplianceResult
    pain, pain_by_arm : DataFrame
    dose_response : DataFrame or None
        Any part is None when the data cannot support it; ``notes`` maps its name to the
        reason (also listed by :meth:`summary` as "not estimable: ..." rows).
    notes : dict of str to str
    """

    _title = "H4: loading progression and safety"

    def __init__(self, *, notes=None, **parts):
        self.__dict__.update(parts)
        for name, reason in (notes or {}).items():
            self.mark_not_estimable(name, reason)

    def summary(self) -> pd.DataFrame:
        """One row per arm: progression, adherence, rule violations, pain flags (pooled rates
        with participant-cluster CIs, :func:`pooled_rate`)."""
        parts = []
        if self.adherence_by_arm is not None:
            parts.append(self.adherence_by_arm[["arm", "n_participants", "mean_adherence",
                                                "mean_adherence_ci_low",
                                                "mean_adherence_ci_high"]])
        if self.progression_by_arm is not None and len(self.progression_by_arm):
            parts.append(self.progression_by_arm.groupby("arm")
                         .apply(lambda g: np.average(g["mean_slope"], weights=g["n_participants"]),
                                include_groups=False).rename("mean_slope_kg_per_week")
                         .reset_index())
        if self.compliance is not None and self.compliance.by_arm is not None:
            parts.append(self.compliance.by_arm[["arm", "flagged", "violations",
                                                 "violation_rate", "violation_rate_ci_low",
                                                 "violation_rate_ci_high", "unsafe_share"]])
        if self.pain_by_arm is not None:
            pain = self.pain_by_arm[["arm", "rate", "rate_ci_low", "rate_ci_high",
                                     "participants_flagged"]]
            parts.append(pain.rename(columns=lambda c: c.replace("rate", "pain_flag_rate", 1)
                                     if c.startswith("rate") else c))
        out = pd.DataFrame({"arm": pd.Series(dtype=object)})
        for i, part in enumerate(parts):
            out = part if i == 0 else out.merge(part, on="arm", how="left")
        notes = self.not_estimable
        if notes:  # one row per part that could not be estimated, in a ``note`` column
            out = pd.concat([out.assign(note=""), pd.DataFrame({"note": note_rows(notes)})],
                            ignore_index=True)
        return out

    def to_frame(self) -> pd.DataFrame:
        return self.summary()

    def plot(self, kind: str = "progression", **kwargs):
        """``kind="progression"`` (:func:`hipstats.plots.loading.load_progression_plot`) or
        ``"compliance"`` (:func:`hipstats.plots.loading.compliance_heatmap`)."""
        from hipstats.plots import loading as _plots  # noqa: PLC0415

        if kind == "progression":
            return _plots.load_progression_plot(self.arm_weekly, **kwargs)
        if kind == "compliance":
            return _plots.compliance_heatmap(self.compliance, **kwargs)
        raise AnalysisError(f"kind must be 'progression' or 'compliance', got {kind!r}")


def loading_analysis(cohort, *, pain_threshold: float = 5, scope: str = "exercise",
                     measure: str | None = "hip_ir_deg", bodyweight: str | None = None,
                     bodyweight_fraction: float | Mapping[str, float] = 1.0,
                     confidence: float = 0.95, alpha: float | None = None) -> LoadingResult:
    """H4 in one call: volume-load, progression, adherence, compliance, pain, dose-response.

    Parameters
    ----------
    cohort : Cohort
        With sessions and participants (and measurements for the dose-response).
    pain_threshold : float
        NRS at or above which a session means stop (default 5).
    scope : {"exercise", "session"}
        See :func:`progression_compliance`.
    measure : str or None
        Outcome for :func:`dose_response`; None skips it.
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).

    Returns
    -------
    LoadingResult

    Examples
    --------
    >>> import hipstats as hs  # doctest: +SKIP
    >>> hs.loading_analysis(hs.simulate_cohort(seed=3)).summary()  # doctest: +SKIP
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="loading_analysis")
    kw = dict(bodyweight=bodyweight, bodyweight_fraction=bodyweight_fraction)
    src = prepared_source(cohort)  # the log is prepared once for every part below
    notes: dict[str, str] = {}
    dose = None
    if measure is not None and isinstance(getattr(cohort, "measurements", None), pd.DataFrame):
        dose = estimate_or_note(notes, "dose_response", dose_response, src, measure, confidence=1 - alpha, **kw)
    return LoadingResult(confidence=round(1 - alpha, 12),
        weekly=estimate_or_note(notes, "weekly", volume_load, src, level="week", **kw),
        arm_weekly=estimate_or_note(notes, "arm_weekly", volume_load, src, level="arm_week",
                             confidence=1 - alpha, **kw),
        progression=estimate_or_note(notes, "progression", progression_slopes, src, confidence=1 - alpha),
        progression_by_arm=estimate_or_note(notes, "progression_by_arm", progression_slopes, src,
                                     level="arm", confidence=1 - alpha),
        adherence=estimate_or_note(notes, "adherence", adherence, src, confidence=1 - alpha),
        adherence_by_arm=estimate_or_note(notes, "adherence_by_arm", adherence, src, level="arm",
                                   confidence=1 - alpha),
        compliance=estimate_or_note(notes, "compliance", progression_compliance, src,
                             pain_threshold=pain_threshold, scope=scope, confidence=1 - alpha),
        pain=estimate_or_note(notes, "pain", pain_flags, src, threshold=pain_threshold, confidence=1 - alpha),
        pain_by_arm=estimate_or_note(notes, "pain_by_arm", pain_flags, src, threshold=pain_threshold,
                              level="arm", confidence=1 - alpha),
        dose_response=dose, pain_threshold=pain_threshold, notes=notes)
