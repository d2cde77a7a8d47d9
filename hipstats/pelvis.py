"""H1 — does pelvic position mask or limit hip internal rotation (IR)?

Three complementary analyses, each one function returning a tidy DataFrame, and one call
(:func:`pelvis_analysis`) that runs them all on a cohort:

* :func:`paired_pelvis_difference` — IR measured with a *neutral-pelvis setup* against IR in
  the participant's *own posture* ("free"), paired within participant, per side and pooled.
* :func:`rm_corr` and :func:`within_between` — the association of standing pelvic tilt with
  IR split into its within-participant part (does IR change when *this* person's tilt
  changes?) and its between-participant part (do people with more tilt have less IR?).
  "Tilt masks rotation" is a within-participant claim; a pooled correlation mixes both levels.
* :func:`ir_by_tilt_class` — IR by posterior / neutral / anterior standing tilt class
  (:func:`tilt_class`, cut points :data:`hipstats.schema.DEFAULT_TILT_CUTS`).

All functions take either a :class:`hipstats.cohort.Cohort` (anything with a
``measurements`` table), a long ``measurements`` DataFrame (data contract columns) or, for
the generic statistics, any DataFrame plus column names.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from hipstats.pelvis import tilt_class
>>> list(tilt_class([2.0, 4.0, 13.9, 14.0, np.nan]))
['posterior', 'neutral', 'neutral', 'anterior', nan]
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from hipstats.errors import AnalysisError
from hipstats.schema import DEFAULT_TILT_CUTS, TILT_CLASSES

__all__ = [
    "tilt_class",
    "visit_values",
    "participant_change",
    "pelvis_frame",
    "paired_pelvis_difference",
    "rm_corr",
    "within_between",
    "ir_by_tilt_class",
    "pelvis_analysis",
    "PelvisResult",
]

_KEY = ["participant_id", "visit", "week"]


# ----------------------------------------------------------------------------------------
# Small shared helpers (also used by hipstats.loading and hipstats.faults)
# ----------------------------------------------------------------------------------------
class _Result:
    """Base of the fitted result objects (lifelines style).

    Subclasses set ``_title`` and implement :meth:`summary`, :meth:`to_frame` and
    :meth:`plot`; this base adds the text and notebook (HTML) representations.
    """

    _title = "hipstats result"

    def summary(self) -> pd.DataFrame:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_frame(self) -> pd.DataFrame:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        with pd.option_context("display.width", 160, "display.max_columns", None,
                               "display.max_colwidth", 70):
            return f"{self._title}\n{self.summary().to_string(index=False)}"

    def _repr_html_(self) -> str:
        return (f"<h4>{html.escape(self._title)}</h4>"
                + self.summary().to_html(index=False, float_format=lambda v: f"{v:.4g}"))


def _table(data, name: str) -> pd.DataFrame:
    """Return table ``name`` ('measurements', 'sessions', 'participants') of a Cohort,
    or ``data`` itself when it already is a DataFrame."""
    if isinstance(data, pd.DataFrame):
        return data
    table = getattr(data, name, None)
    if isinstance(table, pd.DataFrame):
        return table
    raise AnalysisError(
        f"expected a Cohort or a DataFrame, got {type(data).__name__} without a '{name}' table")


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnalysisError(f"{what} needs column(s) {missing}; the data have {list(df.columns)}")


def _primary_rater(df: pd.DataFrame, rater: str | None) -> pd.DataFrame:
    """Keep one rater: the one given, else the rater with the most rows (the primary)."""
    if "rater" not in df.columns or df["rater"].isna().all():
        return df
    if rater is None:
        rater = df["rater"].value_counts().idxmax()
    out = df[df["rater"] == rater]
    if out.empty:
        raise AnalysisError(f"no measurements by rater {rater!r}; raters are "
                            f"{sorted(df['rater'].dropna().unique().tolist())}")
    return out


def _scheduled_visits(data) -> list[str]:
    """Scheduled visits: the cohort's own list, else (as :meth:`Cohort.schedule`) the visits
    attended by at least half as many participants as the best-attended visit."""
    sched = getattr(data, "scheduled_visits", None)
    if sched is not None and not isinstance(data, pd.DataFrame):
        return list(sched)
    m = _table(data, "measurements")
    n = m.groupby("visit", observed=True)["participant_id"].nunique()
    return n.index[n >= 0.5 * n.max()].tolist()


def _select_visits(df: pd.DataFrame, visits, data) -> pd.DataFrame:
    """visits: None/"all" = all visits; "scheduled" = scheduled visits only (a retest visit of
    a reliability subset is left out); or a list of visit labels."""
    if visits is None or (isinstance(visits, str) and visits == "all"):
        return df
    if isinstance(visits, str) and visits == "scheduled":
        return df[df["visit"].isin(_scheduled_visits(data))]
    labels = [visits] if isinstance(visits, str) else list(visits)
    out = df[df["visit"].isin(labels)]
    if out.empty:
        raise AnalysisError(f"none of the visits {labels} is in the data; visits are "
                            f"{sorted(df['visit'].astype(str).unique().tolist())}")
    return out


def visit_values(data, measure: str, *, pelvis: str | None = "free", rater: str | None = None,
                 position: str | None = None, visits=None, side: str = "mean") -> pd.DataFrame:
    """Mean of trials per participant and visit for one measure (primary rater).

    Returns participant_id, visit, week, side, value, n_trials. With ``side="mean"`` the two
    sides of a visit are averaged (side "mean"); "left"/"right" keep one side; "both" keeps both.
    Shared by :mod:`hipstats.pelvis`, :mod:`hipstats.loading` and :mod:`hipstats.faults`.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.pelvis import visit_values
    >>> m = pd.DataFrame({"participant_id": "p1", "visit": "baseline", "week": 0.0,
    ...     "measure": "hip_ir_deg", "side": ["left", "left", "right", "right"],
    ...     "pelvis": "free", "value": [30.0, 32.0, 40.0, 42.0]})
    >>> visit_values(m, "hip_ir_deg")[["side", "value", "n_trials"]].values.tolist()
    [['mean', 36.0, 4]]
    """
    m = _table(data, "measurements")
    _require(m, ["participant_id", "visit", "measure", "value"], "a measurements table")
    df = m[m["measure"] == measure]
    if df.empty:
        raise AnalysisError(f"no {measure!r} measurements; measures present: "
                            f"{sorted(m['measure'].astype(str).unique().tolist())}")
    if pelvis is not None and "pelvis" in df.columns and df["pelvis"].notna().any():
        df = df[df["pelvis"] == pelvis]
        if df.empty:
            raise AnalysisError(f"no {measure!r} measurements with pelvis == {pelvis!r}")
    if position is not None and "position" in df.columns:
        df = df[df["position"] == position]
    elif "position" in df.columns and df["position"].nunique() > 1:
        raise AnalysisError(f"{measure!r} was measured in several positions "
                            f"{sorted(df['position'].dropna().unique().tolist())}; pass position=")
    df = _select_visits(_primary_rater(df, rater), visits, data)
    df = df.copy()
    if "week" not in df.columns:
        df["week"] = np.nan
    if "side" not in df.columns:
        df["side"] = None
    df["side"] = df["side"].astype(object).where(df["side"].notna(), "none")
    if side in ("left", "right"):
        df = df[df["side"] == side]
        if df.empty:
            raise AnalysisError(f"no {measure!r} measurements on the {side} side")
    elif side not in ("mean", "both"):
        raise AnalysisError(f"side must be 'mean', 'both', 'left' or 'right', got {side!r}")
    keys = ["participant_id", "visit", "side"]
    out = (df.groupby(keys, observed=True, sort=True)
             .agg(week=("week", "first"), value=("value", "mean"), n_trials=("value", "size"))
             .reset_index())
    if side == "mean":
        out = (out.groupby(["participant_id", "visit"], observed=True, sort=True)
                  .agg(week=("week", "first"), value=("value", "mean"),
                       n_trials=("n_trials", "sum"))
                  .reset_index())
        out["side"] = "mean"
    return out[["participant_id", "visit", "week", "side", "value", "n_trials"]]


def participant_change(data, measure: str, *, final="final", pelvis: str | None = "free",
                       rater: str | None = None, position: str | None = None) -> pd.DataFrame:
    """Baseline, final value and change (final - baseline) per participant, sides averaged.

    ``final="final"`` uses the last scheduled visit of the cohort (the visit label with the
    latest median week; participants without it are left out); ``final="last"`` uses each
    participant's last visit; a visit label uses that visit.
    Baseline is each participant's earliest visit. Returns participant_id, baseline, final,
    final_week, change.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.pelvis import participant_change
    >>> m = pd.DataFrame({"participant_id": "p1", "visit": ["baseline", "week_12"],
    ...     "week": [0.0, 12.0], "measure": "hip_ir_deg", "side": "left", "pelvis": "free",
    ...     "value": [30.0, 36.0]})
    >>> participant_change(m, "hip_ir_deg")["change"].tolist()
    [6.0]
    """
    v = visit_values(data, measure, pelvis=pelvis, rater=rater, position=position,
                     visits="scheduled", side="mean")
    v = v.sort_values(["participant_id", "week", "visit"])
    base = v.groupby("participant_id", sort=True).first()
    if final == "last":
        end = v.groupby("participant_id", sort=True).last()
    elif final == "final":  # the scheduled visit with the latest median week
        last_visit = v.groupby("visit")["week"].median().idxmax()
        end = v[v["visit"] == last_visit].groupby("participant_id").last()
    else:
        end = v[v["visit"] == final].groupby("participant_id").last()
    end = end[end["week"] > base.loc[end.index, "week"]]
    if end.empty:
        raise AnalysisError(f"no participant has a {measure!r} value after baseline at the "
                            f"{final!r} visit")
    out = pd.DataFrame({"baseline": base.loc[end.index, "value"], "final": end["value"],
                        "final_week": end["week"]})
    out["change"] = out["final"] - out["baseline"]
    return out.reset_index()


def _arms(data, participants: pd.DataFrame | None) -> pd.DataFrame | None:
    """participant_id -> arm table from ``participants=`` or the cohort, if available."""
    if participants is None and not isinstance(data, pd.DataFrame):
        participants = getattr(data, "participants", None)
    if participants is None:
        return None
    _require(participants, ["participant_id", "arm"], "the participants table")
    return participants[["participant_id", "arm"]].drop_duplicates("participant_id")


def _wald(est, se, alpha: float, df: float | None = None):
    """CI and two-sided p for estimate/SE (normal, or t with ``df``)."""
    est, se = np.asarray(est, float), np.asarray(se, float)
    dist = stats.norm if df is None else stats.t(df)
    crit = dist.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    return est - crit * se, est + crit * se, z, 2 * dist.sf(np.abs(z))


# ----------------------------------------------------------------------------------------
# Tilt classes
# ----------------------------------------------------------------------------------------
def tilt_class(values, cuts: Sequence[float] = DEFAULT_TILT_CUTS) -> pd.Categorical:
    """Class standing pelvic tilt as posterior, neutral or anterior.

    With cut points :math:`(c_1, c_2)`: posterior if tilt :math:`< c_1`, neutral if
    :math:`c_1 \\le` tilt :math:`< c_2`, anterior if tilt :math:`\\ge c_2` (degrees, positive =
    anterior). Missing values stay missing.

    Parameters
    ----------
    values : array-like of float
        Standing pelvic tilt, degrees.
    cuts : pair of float
        Increasing cut points, default :data:`hipstats.schema.DEFAULT_TILT_CUTS` = (4, 14):
        the usual standing ASIS-PSIS angle of about 4-14 degrees anterior (Herrington 2011).

    Returns
    -------
    pandas.Categorical
        Ordered categories ``("posterior", "neutral", "anterior")``.

    References
    ----------
    Herrington L (2011). Assessment of the degree of pelvic tilt within a normal asymptomatic
    population. Manual Therapy 16:646-648.

    Examples
    --------
    >>> from hipstats.pelvis import tilt_class
    >>> tilt_class([0, 10, 20], cuts=(5, 15)).tolist()
    ['posterior', 'neutral', 'anterior']
    """
    cuts = tuple(float(c) for c in cuts)
    if len(cuts) != 2 or not np.all(np.isfinite(cuts)) or not cuts[0] < cuts[1]:
        raise AnalysisError(f"cuts must be two finite increasing numbers, got {cuts}")
    x = pd.to_numeric(pd.Series(np.asarray(values, dtype=float).ravel()), errors="coerce")
    codes = np.digitize(x.to_numpy(), cuts, right=False)
    codes = np.where(np.isnan(x.to_numpy()), -1, codes)
    return pd.Categorical.from_codes(codes, categories=list(TILT_CLASSES), ordered=True)


# ----------------------------------------------------------------------------------------
# The per-visit pelvis frame
# ----------------------------------------------------------------------------------------
def pelvis_frame(data, *, measure: str = "hip_ir_deg", tilt_measure: str = "pelvic_tilt_deg",
                 side: str = "mean", rater: str | None = None, position: str | None = None,
                 visits="scheduled", cuts: Sequence[float] = DEFAULT_TILT_CUTS) -> pd.DataFrame:
    """One row per participant, visit (and side): IR free, IR neutral, standing tilt.

    Parameters
    ----------
    data : Cohort or DataFrame
        A cohort or its long ``measurements`` table.
    measure : str
        The rotation measure (default ``hip_ir_deg``); rows with ``pelvis == "free"`` (own
        posture) and ``pelvis == "neutral"`` (neutral-pelvis setup) are used. When the data
        have no ``pelvis`` column every IR reading is taken as "free".
    tilt_measure : str
        Standing tilt measure, mean of trials at the same visit.
    side : {"mean", "both", "left", "right"}
        ``"mean"`` averages the two sides of a visit (default: both sides share the visit's
        tilt, so keeping both would count one tilt reading twice).
    rater, position, visits
        Primary rater (default: the rater with most readings), test position, and visits
        (``"scheduled"`` drops retest visits; None keeps all; or a list of visit labels).

    Returns
    -------
    DataFrame
        participant_id, visit, week, side, ir_free, ir_neutral, tilt, tilt_class;
        ``attrs["tilt_error_var"]`` is the measurement-error variance of a visit's tilt (the
        pooled within-visit variance of the tilt trials divided by the number of trials; NaN
        without replicate trials), used to correct the tilt slopes for attenuation, and
        ``attrs["tilt_error_df"]`` its degrees of freedom (0 without replicates).

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.pelvis import pelvis_frame
    >>> m = pd.DataFrame({"participant_id": ["p1"] * 3, "visit": "baseline", "week": 0.0,
    ...     "measure": ["hip_ir_deg", "hip_ir_deg", "pelvic_tilt_deg"],
    ...     "side": ["left", "left", None], "pelvis": ["free", "neutral", None],
    ...     "value": [30.0, 33.0, 10.0]})
    >>> pelvis_frame(m)[["ir_free", "ir_neutral", "tilt"]].values.tolist()
    [[30.0, 33.0, 10.0]]
    """
    m = _table(data, "measurements")
    _require(m, ["participant_id", "visit", "measure", "value"], "a measurements table")
    has_pelvis = "pelvis" in m.columns and m.loc[m["measure"] == measure, "pelvis"].notna().any()
    free = visit_values(data, measure, pelvis="free" if has_pelvis else None, rater=rater,
                        position=position, visits=visits, side=side)
    out = free.rename(columns={"value": "ir_free"}).drop(columns="n_trials")
    neu = None
    if has_pelvis and (m.loc[m["measure"] == measure, "pelvis"] == "neutral").any():
        try:  # a rater may have measured own posture only
            neu = visit_values(data, measure, pelvis="neutral", rater=rater, position=position,
                               visits=visits, side=side)
        except AnalysisError:
            neu = None
    if neu is not None:
        neu = neu.rename(columns={"value": "ir_neutral", "week": "_week"})
        out = out.merge(neu[["participant_id", "visit", "side", "ir_neutral", "_week"]],
                        on=["participant_id", "visit", "side"], how="outer")
        out["week"] = out["week"].fillna(out.pop("_week"))
    else:
        out["ir_neutral"] = np.nan
    if (m["measure"] == tilt_measure).any():
        tilt = visit_values(data, tilt_measure, pelvis=None, rater=rater, visits=visits,
                            side="mean")[["participant_id", "visit", "value"]]
        out = out.merge(tilt.rename(columns={"value": "tilt"}), on=["participant_id", "visit"],
                        how="left")
    else:
        out["tilt"] = np.nan
    out["tilt_class"] = tilt_class(out["tilt"], cuts)
    out = out.sort_values(["participant_id", "week", "visit", "side"]).reset_index(drop=True)
    err, dof = (_trial_error_var(data, tilt_measure, rater, visits)
                if out["tilt"].notna().any() else (np.nan, 0))
    out.attrs["tilt_error_var"], out.attrs["tilt_error_df"] = err, dof
    return out


def _trial_error_var(data, measure: str, rater: str | None, visits) -> tuple[float, int]:
    """Measurement-error variance of a visit's mean of trials: the pooled within-visit
    variance of the trials times the mean of 1/(trials per visit), and its degrees of freedom
    (sum of trials - 1 over visits); (NaN, 0) without replicates."""
    m = _table(data, "measurements")
    df = _select_visits(_primary_rater(m[m["measure"] == measure], rater), visits, data)
    g = df.groupby(["participant_id", "visit"], observed=True)["value"]
    sizes = g.size()
    dof = int((sizes - 1).sum())
    if dof < 2:
        return np.nan, 0
    s2 = float(((df["value"] - g.transform("mean")) ** 2).sum() / dof)
    return s2 * float((1.0 / sizes).mean()), dof





def _as_pelvis_frame(data, **kw) -> pd.DataFrame:
    """Accept a Cohort, a long measurements table, or an already wide pelvis frame."""
    if isinstance(data, pd.DataFrame) and "measure" not in data.columns:
        return data
    return pelvis_frame(data, **kw)


# ----------------------------------------------------------------------------------------
# Paired neutral-vs-own-posture difference
# ----------------------------------------------------------------------------------------
def _hedges_j(df: float) -> float:
    """Exact small-sample correction J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2))."""
    return float(np.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / np.sqrt(df / 2))


def _dz_ci(dz: float, n: int, alpha: float) -> tuple[float, float]:
    """CI of d_z = mean/sd of differences by inverting the noncentral t (Cumming 2012)."""
    df, t_obs = n - 1, dz * np.sqrt(n)

    def root(p):
        f = lambda ncp: stats.nct.cdf(t_obs, df, ncp) - p  # noqa: E731
        span = 10 + abs(t_obs) * 2
        return optimize.brentq(f, t_obs - span, t_obs + span) / np.sqrt(n)

    return root(1 - alpha / 2), root(alpha / 2)


def _paired_row(a: np.ndarray, b: np.ndarray, alpha: float) -> dict:
    """Paired comparison of a (neutral) and b (free), one pair per participant."""
    d = a - b
    n = d.size
    if n < 3:
        raise AnalysisError(f"a paired comparison needs at least 3 participants with both a "
                            f"neutral-pelvis and an own-posture reading, got {n}")
    mean, sd = d.mean(), d.std(ddof=1)
    if sd == 0:
        raise AnalysisError("all neutral-minus-own-posture differences are equal; "
                            "no variability to test")
    se = sd / np.sqrt(n)
    lo, hi, t, p = _wald(mean, se, alpha, df=n - 1)
    dz = mean / sd
    dz_lo, dz_hi = _dz_ci(dz, n, alpha)
    sd_av = (a.std(ddof=1) + b.std(ddof=1)) / 2
    try:
        w = stats.wilcoxon(d)
        w_stat, w_p = float(w.statistic), float(w.pvalue)
    except ValueError:
        w_stat, w_p = np.nan, np.nan
    return {"n": n, "mean_neutral": a.mean(), "mean_free": b.mean(), "mean_diff": mean,
            "sd_diff": sd, "ci_low": float(lo), "ci_high": float(hi), "t": float(t),
            "df": n - 1, "p": float(p), "wilcoxon_W": w_stat, "p_wilcoxon": w_p,
            "d_z": dz, "d_z_ci_low": dz_lo, "d_z_ci_high": dz_hi,
            "g_av": _hedges_j(n - 1) * mean / sd_av}


def paired_pelvis_difference(data, *, alpha: float = 0.05, visits="scheduled",
                             rater: str | None = None, position: str | None = None
                             ) -> pd.DataFrame:
    """IR with a neutral-pelvis setup minus IR in own posture, paired within participant.

    For each participant the difference :math:`d = IR_{neutral} - IR_{free}` is averaged over
    the visits where both were measured: per side (one value per participant and side) and
    pooled (one value per participant: the mean over sides and visits, so every participant
    counts once and the test is not inflated by repeated readings). Positive differences
    mean the participant's own posture *hides* rotation.

    Reported per row (left, right, pooled): mean difference with a t-based CI, the paired t
    test, the Wilcoxon signed-rank test as a distribution-free check, and two effect sizes:

    * :math:`d_z = \\bar d / s_d` — the standardised mean of the differences, the effect size
      of the paired t test (:math:`t = d_z\\sqrt n`), with an exact CI by inverting the
      noncentral t distribution;
    * :math:`g_{av} = J(n-1)\\,\\bar d / ((s_{neutral} + s_{free})/2)` — Hedges' g on the
      average SD (Lakens 2013), comparable with between-group effect sizes, where
      :math:`J(\\nu) = \\Gamma(\\nu/2) / (\\sqrt{\\nu/2}\\,\\Gamma((\\nu-1)/2))`.

    Parameters
    ----------
    data : Cohort, measurements DataFrame, or a pelvis frame
        A pelvis frame (:func:`pelvis_frame` with ``side="both"``) needs participant_id,
        side, ir_neutral, ir_free.
    alpha : float
        1 - confidence level.
    visits, rater, position
        Passed to :func:`pelvis_frame`.

    Returns
    -------
    DataFrame
        One row per side and "pooled": n, mean_neutral, mean_free, mean_diff, sd_diff,
        ci_low, ci_high, t, df, p, wilcoxon_W, p_wilcoxon, d_z, d_z_ci_low, d_z_ci_high, g_av.

    References
    ----------
    Lakens D (2013). Calculating and reporting effect sizes to facilitate cumulative science.
    Frontiers in Psychology 4:863.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.pelvis import paired_pelvis_difference
    >>> rng = np.random.default_rng(1)
    >>> free = rng.normal(35, 8, 20)
    >>> df = pd.DataFrame({"participant_id": np.arange(20), "side": "left",
    ...                    "ir_free": free, "ir_neutral": free + 3 + rng.normal(0, 2, 20)})
    >>> res = paired_pelvis_difference(df)
    >>> res["side"].tolist()
    ['left', 'pooled']
    """
    pf = _as_pelvis_frame(data, side="both", visits=visits, rater=rater, position=position)
    _require(pf, ["participant_id", "ir_neutral", "ir_free"], "paired_pelvis_difference")
    pf = pf.dropna(subset=["ir_neutral", "ir_free"])
    if pf.empty:
        raise AnalysisError("no visit has both a neutral-pelvis and an own-posture (free) IR "
                            "reading; the paired comparison needs both")
    if "side" not in pf.columns:
        pf = pf.assign(side="mean")
    rows = []
    sides = [s for s in ("left", "right") if s in set(pf["side"])] or sorted(set(pf["side"]))
    for s in sides:
        per = pf[pf["side"] == s].groupby("participant_id")[["ir_neutral", "ir_free"]].mean()
        rows.append({"side": s, **_paired_row(per["ir_neutral"].to_numpy(),
                                              per["ir_free"].to_numpy(), alpha)})
    per = pf.groupby("participant_id")[["ir_neutral", "ir_free"]].mean()
    rows.append({"side": "pooled", **_paired_row(per["ir_neutral"].to_numpy(),
                                                 per["ir_free"].to_numpy(), alpha)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------
# Repeated-measures correlation
# ----------------------------------------------------------------------------------------
def _within_subject(df: pd.DataFrame, x: str, y: str, subject: str):
    """Drop missing rows and subjects with a single observation; centre x and y per subject."""
    _require(df, [x, y, subject], "rm_corr")
    d = df[[subject, x, y]].dropna()
    counts = d.groupby(subject)[x].transform("size")
    single = d.loc[counts < 2, subject].unique()
    d = d[counts >= 2]
    if d.empty:
        raise AnalysisError(f"every {subject!r} has a single observation of {x!r} and {y!r}; "
                            "a within-participant association needs repeated observations")
    g = d.groupby(subject)
    xc = d[x] - g[x].transform("mean")
    yc = d[y] - g[y].transform("mean")
    return d, xc.to_numpy(float), yc.to_numpy(float), single


def rm_corr(data: pd.DataFrame, x: str, y: str, subject: str, *, alpha: float = 0.05
            ) -> pd.DataFrame:
    """Repeated-measures correlation (Bakdash & Marusich 2017).

    The common within-participant association of x and y: the ANCOVA
    :math:`y_{ij} = a_i + \\beta x_{ij} + e_{ij}` with one intercept per participant. With
    :math:`\\tilde x, \\tilde y` centred within participant,

    .. math::

        r_{rm} = \\operatorname{sign}(\\hat\\beta)\\sqrt{\\frac{SS_x}{SS_x + SS_{res}}}
               = \\frac{\\sum \\tilde x\\tilde y}{\\sqrt{\\sum\\tilde x^2 \\sum\\tilde y^2}},
        \\qquad \\hat\\beta = \\frac{\\sum\\tilde x\\tilde y}{\\sum\\tilde x^2}

    with :math:`df = N - k - 1` (N observations, k participants), p from
    :math:`t = r\\sqrt{df/(1-r^2)}` on df, and the CI by Fisher's z,
    :math:`\\tanh(\\operatorname{atanh} r \\pm z_{1-\\alpha/2}/\\sqrt{df-3})` as in the R package
    rmcorr (which calls ``psych::r.con(r, df)``). Participants with one observation carry no
    within-participant information and are left out (counted in ``n_excluded``).

    Parameters
    ----------
    data : DataFrame
        Long data, one row per observation.
    x, y, subject : str
        Column names.
    alpha : float
        1 - confidence level.

    Returns
    -------
    DataFrame
        One row: r, df, p, ci_low, ci_high, slope (common within slope of y on x),
        n_obs, n_subjects, n_excluded.

    References
    ----------
    Bakdash JZ, Marusich LR (2017). Repeated measures correlation. Frontiers in Psychology 8:456.
    Bland JM, Altman DG (1995). Calculating correlation coefficients with repeated
    observations: Part 1 - correlation within subjects. BMJ 310:446.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.pelvis import rm_corr
    >>> df = pd.DataFrame({"s": [1, 1, 1, 2, 2, 2, 3, 3, 3], "x": [1, 2, 3, 5, 6, 7, 2, 4, 6],
    ...                    "y": [2.0, 3.5, 4.0, 1.0, 2.2, 3.1, 5.0, 5.5, 7.0]})
    >>> res = rm_corr(df, "x", "y", "s")
    >>> round(float(res["r"].iloc[0]), 3), int(res["df"].iloc[0])
    (0.913, 5)
    """
    d, xc, yc, single = _within_subject(data, x, y, subject)
    k, n = d[subject].nunique(), len(d)
    dof = n - k - 1
    sxx, syy, sxy = xc @ xc, yc @ yc, xc @ yc
    if sxx == 0 or syy == 0:
        which = x if sxx == 0 else y
        raise AnalysisError(f"{which!r} does not vary within any {subject!r}; the "
                            "repeated-measures correlation is undefined")
    if dof < 4:
        raise AnalysisError(f"rm_corr needs at least 4 residual degrees of freedom "
                            f"(N - k - 1), got {dof} from {n} observations of {k} participants "
                            f"({subject!r})")
    r = float(np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0))
    with np.errstate(divide="ignore"):
        t = r * np.sqrt(dof / (1 - r * r)) if abs(r) < 1 else np.sign(r) * np.inf
    p = float(2 * stats.t.sf(abs(t), dof))
    z, crit = np.arctanh(np.clip(r, -0.999999999, 0.999999999)), stats.norm.ppf(1 - alpha / 2)
    half = crit / np.sqrt(dof - 3)
    return pd.DataFrame([{"r": r, "df": dof, "p": p, "ci_low": float(np.tanh(z - half)),
                          "ci_high": float(np.tanh(z + half)), "slope": float(sxy / sxx),
                          "n_obs": n, "n_subjects": k, "n_excluded": len(single)}])


# ----------------------------------------------------------------------------------------
# Within-between mixed model
# ----------------------------------------------------------------------------------------
def _random_intercept_fit(df: pd.DataFrame, y: str, terms: list[str], subject: str,
                          alpha: float, contrast: dict[str, float]):
    """REML random-intercept model ``y ~ terms + (1 | subject)`` by
    :func:`hipstats.models.lmm.fit_lmm` (lme4's profiled deviance, lmerTest's Satterthwaite df).

    Returns the fixed-effect table (term, estimate, se, df, t, p, ci_low, ci_high) with one extra
    row ``"contrast"`` for the linear combination ``contrast`` ({term: weight}), and a dict of
    fit information (variance components, n_obs, converged, singular, engine).
    """
    from hipstats.models.lmm import fit_lmm  # noqa: PLC0415 - models imports are heavier

    res = fit_lmm(f"{y} ~ " + " + ".join(terms), df, groups=subject)
    table = res.summary(alpha).reset_index()
    names = list(res.fe_params.index)
    c = np.array([contrast.get(n, 0.0) for n in names])
    est = float(c @ res.fe_params.to_numpy())
    se = float(np.sqrt(c @ res.cov_fe.to_numpy() @ c))
    dof = float(res.df_satterthwaite(c[None, :])[0])
    lo, hi, t, p = _wald(est, se, alpha, df=dof)
    row = pd.DataFrame([{"term": "contrast", "estimate": est, "se": se, "df": dof, "t": float(t),
                         "p": float(p), "ci_low": float(lo), "ci_high": float(hi)}])
    table = pd.concat([table, row], ignore_index=True)
    info = {"var_subject": float(res.cov_re.iloc[0, 0]), "var_residual": res.sigma2,
            "n_obs": res.nobs, "converged": res.converged, "singular": res.singular,
            "engine": f"hipstats.models.lmm.fit_lmm ({res.engine}, REML, Satterthwaite df)"}
    return table, info


def within_between(data: pd.DataFrame, x: str, y: str, subject: str, *,
                   covariates: Sequence[str] = (), x_error_var: float | None = None,
                   x_error_df: float | None = None, alpha: float = 0.05, n_boot: int = 999,
                   seed=0) -> pd.DataFrame:
    """Mixed model splitting x into between- and within-participant components.

    .. math::

        y_{ij} = \\beta_0 + \\beta_B\\,\\bar x_i + \\beta_W\\,(x_{ij} - \\bar x_i)
                 + \\gamma^\\top c_{ij} + u_i + e_{ij},\\quad u_i \\sim N(0,\\tau^2),\\;
                 e_{ij} \\sim N(0, \\sigma^2)

    fitted by REML with :func:`hipstats.models.lmm.fit_lmm` (t tests and CIs on
    Satterthwaite df, as lmerTest). :math:`\\beta_W` answers "when a participant's x moves
    by one unit, how does their y move?"; :math:`\\beta_B` "do participants with one unit
    more mean x have a different mean y?"; the contextual effect :math:`\\beta_B - \\beta_W`
    tests whether the two levels differ (Curran & Bauer 2011).

    **Measurement error in x.** When x is read with error (standing tilt: a few trials per
    visit), both slopes are attenuated towards 0, the within slope most because within
    variation is small. Given ``x_error_var`` :math:`\\sigma^2_u` (error variance of one
    observed x, e.g. the trial variance divided by the number of trials averaged), the rows
    ``within_corrected`` and ``between_corrected`` divide the estimate by the reliability
    ratios (regression calibration; Fuller 1987, Carroll et al. 2006)

    .. math::

        \\lambda_W = 1 - \\frac{(N - k)\\,\\sigma^2_u}{\\sum_{ij}(x_{ij} - \\bar x_i)^2},
        \\qquad
        \\lambda_B = 1 - \\frac{\\operatorname{mean}_i(\\sigma^2_u / n_i)}
                               {\\operatorname{var}_i(\\bar x_i)}

    and their SE, CI, t and p come from a participant cluster bootstrap that re-estimates
    :math:`\\lambda` and the slopes in every draw, so the uncertainty of :math:`\\lambda`
    is included: participants are drawn with replacement (``n_boot`` draws, ``seed``); the
    slopes of a draw are the GLS fixed effects of the random-intercept model with the variance
    components held at the REML estimates of the data (with all weights 1 this is the REML
    estimate itself), computed for all draws at once from per-participant cross-products;
    :math:`\\lambda_W`, :math:`\\lambda_B` are recomputed from the drawn participants, and,
    given ``x_error_df``, :math:`\\sigma^2_u` is redrawn as :math:`\\sigma^2_u\\chi^2_\\nu/\\nu`
    (the trial deviations are independent of the visit means). The CI is the percentile
    interval of the corrected draws; ``se`` their SD, ``t = estimate / se`` and ``p`` from
    :math:`t_{G-1}` (``df`` = participants - 1). Draws with :math:`\\lambda < 0.2` are left
    out (``attrs["n_boot_used"]``).

    Parameters
    ----------
    data : DataFrame
        Long data.
    x, y, subject : str
        Column names.
    covariates : sequence of str
        Extra fixed-effect terms (formula syntax, e.g. ``"C(side)"``).
    x_error_var : float, optional
        Measurement-error variance of x; adds the corrected rows.
    x_error_df : float, optional
        Degrees of freedom of ``x_error_var`` (replicate trials: sum over visits of trials -
        1); its sampling error then enters the bootstrap. None treats it as known.
    alpha : float
        1 - confidence level.
    n_boot : int
        Bootstrap draws for the corrected rows (default 999).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    DataFrame
        Rows ``within``, ``between``, ``contextual`` (between - within), with ``x_error_var``
        also ``within_corrected`` and ``between_corrected``, then the intercept and
        covariates: term, estimate, se, df, t, p, ci_low, ci_high; ``attrs`` holds the variance
        components (var_subject, var_residual), n_obs, n_subjects and the engine used.

    References
    ----------
    Curran PJ, Bauer DJ (2011). The disaggregation of within-person and between-person effects
    in longitudinal models of change. Annual Review of Psychology 62:583-619.
    Fuller WA (1987). Measurement Error Models. Wiley. Carroll RJ, Ruppert D, Stefanski LA,
    Crainiceanu CM (2006). Measurement Error in Nonlinear Models, 2nd ed. Chapman & Hall.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.pelvis import within_between
    >>> rng = np.random.default_rng(0)
    >>> s = np.repeat(np.arange(40), 4); mu = rng.normal(10, 5, 40)[s]
    >>> x = mu + rng.normal(0, 2, s.size)
    >>> y = 30 - 0.05 * mu - 0.3 * (x - mu) + rng.normal(0, 6, 40)[s] + rng.normal(0, 1, s.size)
    >>> wb = within_between(pd.DataFrame({"s": s, "x": x, "y": y}), "x", "y", "s")
    >>> bool(wb.set_index("term").loc["within", "estimate"] < 0)
    True
    """
    _require(data, [x, y, subject], "within_between")
    d = data.dropna(subset=[x, y, subject]).copy()
    if d[subject].nunique() < 3:
        raise AnalysisError(f"within_between needs at least 3 {subject}s, got "
                            f"{d[subject].nunique()}")
    d["_xb"] = d.groupby(subject)[x].transform("mean")
    d["_xw"] = d[x] - d["_xb"]
    if np.allclose(d["_xw"], 0):
        raise AnalysisError(f"{x!r} does not vary within any {subject!r}: no within-participant "
                            "component to estimate")
    if np.isclose(d["_xb"].std(), 0):
        raise AnalysisError(f"the {subject} means of {x!r} are all equal: no between-participant "
                            "component to estimate")
    d = d.rename(columns={y: "_y"})
    table, info = _random_intercept_fit(d, "_y", ["_xb", "_xw", *covariates], subject, alpha,
                                        contrast={"_xb": 1.0, "_xw": -1.0})
    table["term"] = table["term"].replace({"_xb": "between", "_xw": "within",
                                           "contrast": "contextual"})
    if x_error_var is not None and np.isfinite(x_error_var) and x_error_var > 0:
        lam = _reliability_ratios(d, subject, float(x_error_var))
        fixed = table.set_index("term")
        draws = _corrected_slope_draws(d, subject, covariates, info, float(x_error_var),
                                       x_error_df, n_boot, seed)
        g = d[subject].nunique()
        rows = []
        for term in ("within", "between"):
            est = float(fixed.loc[term, "estimate"]) / lam[term]
            v = draws[term][np.isfinite(draws[term])]
            se = float(v.std(ddof=1)) if v.size > 1 else np.nan
            lo, hi = (np.percentile(v, [50 * alpha, 100 - 50 * alpha]) if v.size > 1
                      else (np.nan, np.nan))
            t = est / se
            rows.append({"term": f"{term}_corrected", "estimate": est, "se": se,
                         "df": float(g - 1), "t": t, "p": float(2 * stats.t.sf(abs(t), g - 1)),
                         "ci_low": float(lo), "ci_high": float(hi)})
        table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
        info = {**info, "x_error_var": float(x_error_var), "reliability_within": lam["within"],
                "reliability_between": lam["between"],
                "x_error_df": np.nan if x_error_df is None else float(x_error_df),
                "n_boot": int(n_boot), "n_boot_used": int(draws["used"]),
                "corrected_ci": "participant cluster bootstrap (lambda re-estimated), percentile"}
    order = {"within": 0, "between": 1, "contextual": 2, "within_corrected": 3,
             "between_corrected": 4}
    table = table.iloc[np.argsort([order.get(t, 5) for t in table["term"]], kind="stable")]
    table = table.reset_index(drop=True)
    table.attrs.update(info)
    table.attrs["n_subjects"] = int(d[subject].nunique())
    return table


def _corrected_slope_draws(d: pd.DataFrame, subject: str, covariates: Sequence[str],
                           info: dict, err: float, err_df: float | None, n_boot: int,
                           seed) -> dict:
    """Participant cluster bootstrap draws of the corrected within and between slopes.

    Per participant i: :math:`A_i = X_i^\\top V_i^{-1} X_i`, :math:`b_i = X_i^\\top V_i^{-1}
    y_i` with :math:`\\sigma^2 V_i^{-1} = I - c_i J`, :math:`c_i = \\tau^2 / (\\sigma^2 + n_i
    \\tau^2)` at the REML variance components; a draw with participant counts :math:`w`
    gives :math:`\\hat\\beta^* = (\\sum_i w_i A_i)^{-1} \\sum_i w_i b_i` (all draws at
    once), and :math:`\\lambda^*` from the same counts. ``point`` holds the uncorrected
    slopes and ratios of the data themselves (all counts 1)."""
    import patsy  # noqa: PLC0415

    rhs = " + ".join(["_xb", "_xw", *covariates])
    yv, X = patsy.dmatrices(f"_y ~ {rhs}", d, return_type="dataframe")
    subj = pd.factorize(d.loc[X.index, subject])[0]
    Xa, ya = X.to_numpy(float), yv.to_numpy(float)[:, 0]
    g, p = subj.max() + 1, Xa.shape[1]
    n_i = np.bincount(subj, minlength=g).astype(float)
    tau2, sig2 = max(info["var_subject"], 0.0), info["var_residual"]
    c = tau2 / (sig2 + n_i * tau2)
    sx = np.zeros((g, p))
    np.add.at(sx, subj, Xa)
    sy = np.bincount(subj, weights=ya, minlength=g)
    xx = np.zeros((g, p, p))
    np.add.at(xx, subj, Xa[:, :, None] * Xa[:, None, :])
    xy = np.zeros((g, p))
    np.add.at(xy, subj, Xa * ya[:, None])
    A = xx - c[:, None, None] * sx[:, :, None] * sx[:, None, :]
    b = xy - (c * sy)[:, None] * sx
    rng = np.random.default_rng(seed)
    w = np.vstack([np.ones((1, g)),  # row 0: the data themselves
                   rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot).astype(float)])
    with np.errstate(all="ignore"):
        Ab = np.einsum("bg,gij->bij", w, A)
        bb = w @ b
        ok = np.abs(np.linalg.det(Ab)) > 1e-12 * np.abs(np.einsum("bii->b", Ab)).max() ** p
        beta = np.full((n_boot + 1, p), np.nan)
        beta[ok] = np.linalg.solve(Ab[ok], bb[ok][:, :, None])[:, :, 0]
        e = err
        if err_df is not None and np.isfinite(err_df) and err_df > 0:
            e = err * np.r_[1.0, rng.chisquare(err_df, n_boot) / err_df]
        xw2 = np.bincount(subj, weights=d.loc[X.index, "_xw"].to_numpy(float) ** 2, minlength=g)
        xbar = np.bincount(subj, weights=d.loc[X.index, "_xb"].to_numpy(float),
                           minlength=g) / n_i
        lam_w = 1 - e * (w @ (n_i - 1)) / (w @ xw2)
        m = (w @ xbar) / g
        var_b = (w @ xbar ** 2 - g * m ** 2) / (g - 1)
        lam_b = 1 - e * (w @ (1 / n_i)) / g / var_b
    cols = list(X.columns)
    good = ok & (lam_w >= 0.2) & (lam_b >= 0.2)
    within = np.where(good, beta[:, cols.index("_xw")] / lam_w, np.nan)
    between = np.where(good, beta[:, cols.index("_xb")] / lam_b, np.nan)
    return {"within": within[1:], "between": between[1:], "used": int(good[1:].sum()),
            "point": {"within": beta[0, cols.index("_xw")], "between": beta[0, cols.index("_xb")],
                      "lambda_within": lam_w[0], "lambda_between": lam_b[0]}}


def _reliability_ratios(d: pd.DataFrame, subject: str, err: float) -> dict[str, float]:
    """lambda_W and lambda_B of :func:`within_between` (columns _xw, _xb of its frame)."""
    n_i = d.groupby(subject)["_xb"].size()
    xbar = d.groupby(subject)["_xb"].first()
    ssw = float((d["_xw"] ** 2).sum())
    lam_w = 1 - (len(d) - len(n_i)) * err / ssw
    lam_b = 1 - float((err / n_i).mean()) / float(xbar.var(ddof=1))
    if lam_w < 0.2 or lam_b < 0.2:
        raise AnalysisError(f"the measurement error of x (variance {err:.3g}) is too large next "
                            f"to its within-participant variation (reliability {lam_w:.2f}) or "
                            f"between-participant variation ({lam_b:.2f}) to correct for it")
    return {"within": lam_w, "between": lam_b}


# ----------------------------------------------------------------------------------------
# IR by tilt class
# ----------------------------------------------------------------------------------------
def _mean_ci(v: np.ndarray, alpha: float) -> tuple[float, float, float]:
    v = v[~np.isnan(v)]
    if v.size == 0:
        return np.nan, np.nan, np.nan
    m = v.mean()
    if v.size < 2:
        return m, np.nan, np.nan
    h = stats.t.ppf(1 - alpha / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return m, m - h, m + h


def ir_by_tilt_class(data, *, cuts: Sequence[float] = DEFAULT_TILT_CUTS, visit="baseline",
                     alpha: float = 0.05, rater: str | None = None,
                     position: str | None = None) -> pd.DataFrame:
    """IR (own posture and neutral setup) by standing-tilt class, one value per participant.

    Participants are classed by :func:`tilt_class` of their standing tilt at ``visit``
    ("baseline" = each participant's first visit; "all" = the mean over all their scheduled
    visits, IR averaged alike; or a visit label). IR is the mean of sides and trials. For each
    class: participants, mean tilt, mean IR free and neutral and their difference
    (neutral - free) with t-based CIs. A one-way ANOVA across classes of free IR and of the
    difference is stored in ``attrs["anova"]``.

    Empty classes stay in the table with ``n = 0`` and a warning; fewer than two non-empty
    classes raise :class:`~hipstats.errors.AnalysisError`.

    Returns
    -------
    DataFrame
        tilt_class, n, tilt_mean, then ``{ir_free, ir_neutral, diff}`` x ``{"", _ci_low,
        _ci_high}``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.pelvis import ir_by_tilt_class
    >>> pf = pd.DataFrame({"participant_id": range(6), "visit": "baseline", "week": 0.0,
    ...     "tilt": [0, 2, 8, 10, 16, 20.0], "ir_free": [40, 38, 36, 35, 30, 31.0],
    ...     "ir_neutral": [40, 39, 38, 38, 35, 36.0]})
    >>> ir_by_tilt_class(pf)["n"].tolist()
    [2, 2, 2]
    """
    pf = _as_pelvis_frame(data, side="mean", visits="scheduled", rater=rater, position=position,
                          cuts=cuts)
    _require(pf, ["participant_id", "tilt", "ir_free"], "ir_by_tilt_class")
    pf = pf.dropna(subset=["tilt"])
    if "ir_neutral" not in pf.columns:
        pf = pf.assign(ir_neutral=np.nan)
    if visit == "baseline":
        if "week" in pf.columns:
            pf = pf.sort_values(["participant_id", "week"])
        per = pf.groupby("participant_id").first()
    elif visit == "all":
        per = pf.groupby("participant_id")[["tilt", "ir_free", "ir_neutral"]].mean()
    else:
        per = pf[pf["visit"] == visit].groupby("participant_id").first()
    if per.empty:
        raise AnalysisError(f"no participant has standing tilt and IR at visit {visit!r}")
    per = per.assign(tilt_class=tilt_class(per["tilt"], cuts),
                     diff=per["ir_neutral"] - per["ir_free"])
    rows, empty = [], []
    for cls in TILT_CLASSES:
        sub = per[per["tilt_class"] == cls]
        row = {"tilt_class": cls, "n": len(sub),
               "tilt_mean": sub["tilt"].mean() if len(sub) else np.nan}
        for col in ("ir_free", "ir_neutral", "diff"):
            m, lo, hi = _mean_ci(sub[col].to_numpy(float), alpha)
            row.update({col: m, f"{col}_ci_low": lo, f"{col}_ci_high": hi})
        rows.append(row)
        if len(sub) == 0:
            empty.append(cls)
    if len(empty) >= 2:
        raise AnalysisError(f"tilt classes {empty} have no participants with cut points "
                            f"{tuple(cuts)} (tilt range {per['tilt'].min():.1f} to "
                            f"{per['tilt'].max():.1f} deg); IR cannot be compared across classes")
    if empty:
        warnings.warn(f"tilt class {empty[0]!r} has no participants with cut points "
                      f"{tuple(cuts)} (tilt range {per['tilt'].min():.1f} to "
                      f"{per['tilt'].max():.1f} deg)", UserWarning, stacklevel=2)
    out = pd.DataFrame(rows)
    out["tilt_class"] = pd.Categorical(out["tilt_class"], categories=TILT_CLASSES, ordered=True)
    anova = {}
    for col in ("ir_free", "diff"):
        groups = [g[col].dropna().to_numpy() for _, g in per.groupby("tilt_class", observed=True)]
        groups = [g for g in groups if g.size >= 2]
        if len(groups) >= 2:
            f, p = stats.f_oneway(*groups)
            anova[col] = {"F": float(f), "p": float(p)}
    out.attrs["anova"] = anova
    return out


# ----------------------------------------------------------------------------------------
# One call
# ----------------------------------------------------------------------------------------
class PelvisResult(_Result):
    """Everything :func:`pelvis_analysis` computes for H1.

    Attributes
    ----------
    frame : DataFrame
        The per-visit pelvis frame (:func:`pelvis_frame`).
    paired, rm_corr, within_between, by_class : DataFrame
        The outputs of :func:`paired_pelvis_difference`, :func:`rm_corr`,
        :func:`within_between` and :func:`ir_by_tilt_class`.
    """

    _title = "H1: pelvic position and hip internal rotation"

    def __init__(self, frame, paired, rmc, wb, by_class, cuts, alpha):
        self.frame, self.paired, self.rm_corr = frame, paired, rmc
        self.within_between, self.by_class = wb, by_class
        self.cuts, self.alpha = tuple(cuts), alpha

    def summary(self) -> pd.DataFrame:
        """Plain-language summary: one row per question with estimate, CI, p."""
        lvl = f"{100 * (1 - self.alpha):.0f}%"
        rows = []
        if self.paired is not None:
            p = self.paired.set_index("side").loc["pooled"]
            rows.append(("Neutral-pelvis setup minus own-posture IR (deg, per participant)",
                         p["mean_diff"], p["ci_low"], p["ci_high"], p["p"],
                         f"IR measured in own posture is {abs(p['mean_diff']):.1f} deg "
                         f"{'lower' if p['mean_diff'] > 0 else 'higher'} than with a neutral "
                         f"setup ({lvl} CI {p['ci_low']:.1f} to {p['ci_high']:.1f}; "
                         f"d_z = {p['d_z']:.2f}, n = {int(p['n'])})"))
        wb = self.within_between.set_index("term")
        for term in ("within", "between"):
            corrected = f"{term}_corrected" in wb.index
            r = wb.loc[f"{term}_corrected" if corrected else term]
            note = ", corrected for tilt measurement error" if corrected else ""
            ci = f"({lvl} CI {r['ci_low']:.2f} to {r['ci_high']:.2f})"
            if term == "within":  # a change within a person
                text = (f"IR changes by {r['estimate']:.2f} deg when a participant's tilt rises "
                        f"by 1 deg {ci}")
            else:  # a cross-sectional difference between people, not a change
                text = (f"Participants whose average tilt is 1 deg higher have "
                        f"{abs(r['estimate']):.2f} deg {'lower' if r['estimate'] < 0 else 'higher'}"
                        f" IR on average {ci}; a difference between participants, not a change")
            rows.append((f"{term.capitalize()}-participant slope of own-posture IR on standing "
                         f"tilt (deg/deg{note})", r["estimate"], r["ci_low"], r["ci_high"], r["p"],
                         text))
        c = self.rm_corr.iloc[0]
        rows.append(("Repeated-measures correlation of tilt with own-posture IR", c["r"],
                     c["ci_low"], c["ci_high"], c["p"],
                     f"r_rm = {c['r']:.2f} ({lvl} CI {c['ci_low']:.2f} to {c['ci_high']:.2f}), "
                     f"df = {int(c['df'])}"))
        an = self.by_class.attrs.get("anova", {}).get("ir_free")
        if an:
            ns = ", ".join(f"{r.tilt_class} {r.ir_free:.1f} (n={r.n})"
                           for r in self.by_class.itertuples() if r.n)
            rows.append(("Own-posture IR by standing tilt class (one-way ANOVA F)", an["F"],
                         np.nan, np.nan, an["p"], f"mean IR by class: {ns} deg"))
        return pd.DataFrame(rows, columns=["question", "estimate", "ci_low", "ci_high", "p",
                                           "interpretation"])

    def to_frame(self) -> pd.DataFrame:
        """All tables stacked long: analysis, term, estimate, ci_low, ci_high, p."""
        parts = []
        if self.paired is not None:
            parts.append(self.paired.assign(analysis="paired", term=self.paired["side"])
                         .rename(columns={"mean_diff": "estimate"}))
        parts.append(self.rm_corr.assign(analysis="rm_corr", term="r")
                     .rename(columns={"r": "estimate"}))
        parts.append(self.within_between.assign(analysis="within_between"))
        bc = self.by_class.assign(analysis="by_class", term=self.by_class["tilt_class"].astype(str))
        parts.append(bc.rename(columns={"ir_free": "estimate", "ir_free_ci_low": "ci_low",
                                        "ir_free_ci_high": "ci_high"}))
        cols = ["analysis", "term", "estimate", "ci_low", "ci_high", "p"]
        return pd.concat([p.reindex(columns=cols) for p in parts], ignore_index=True)

    def plot(self, kind: str = "tilt", **kwargs):
        """Figure: ``kind="tilt"`` IR against tilt (:func:`hipstats.plots.pelvis.ir_vs_tilt_plot`)
        or ``kind="paired"`` (:func:`hipstats.plots.pelvis.paired_pelvis_plot`)."""
        from hipstats.plots import pelvis as _plots  # noqa: PLC0415

        if kind == "tilt":
            return _plots.ir_vs_tilt_plot(self.frame, **kwargs)
        if kind == "paired":
            return _plots.paired_pelvis_plot(self.frame, **kwargs)
        raise AnalysisError(f"kind must be 'tilt' or 'paired', got {kind!r}")


def pelvis_analysis(cohort, *, cuts: Sequence[float] = DEFAULT_TILT_CUTS, side: str = "mean",
                    alpha: float = 0.05, correct_tilt_error: bool = True, visits="scheduled",
                    rater: str | None = None, position: str | None = None,
                    n_boot: int = 999, seed=0) -> PelvisResult:
    """H1 in one call: paired neutral-vs-own-posture IR, tilt-IR association on both levels,
    and IR by tilt class.

    Parameters
    ----------
    cohort : Cohort or measurements DataFrame
    cuts : pair of float
        Tilt class cut points (default :data:`hipstats.schema.DEFAULT_TILT_CUTS`).
    side : {"mean", "left", "right"}
        Side used for the tilt association (default: mean of both sides per visit). The
        paired comparison always reports left, right and pooled.
    alpha : float
        1 - confidence level.
    correct_tilt_error : bool
        Correct the within and between slopes for the measurement error of standing tilt,
        estimated from the replicate tilt trials (see :func:`within_between`); the summary
        then reports the corrected slopes, with participant cluster bootstrap CIs that
        include the uncertainty of the reliability ratios. Without replicate trials no
        correction is made.
    n_boot, seed
        Bootstrap draws and seed of the corrected slopes (see :func:`within_between`).
    visits, rater, position
        See :func:`pelvis_frame`.

    Returns
    -------
    PelvisResult
        ``.summary()`` plain-language rows; ``.paired``, ``.rm_corr``, ``.within_between``,
        ``.by_class`` tidy frames; ``.plot(kind="tilt" | "paired")``.

    Examples
    --------
    >>> import hipstats as hs  # doctest: +SKIP
    >>> res = hs.pelvis_analysis(hs.simulate_cohort(seed=1))  # doctest: +SKIP
    >>> res.summary()  # doctest: +SKIP
    """
    both = pelvis_frame(cohort, side="both", visits=visits, rater=rater, position=position,
                        cuts=cuts)
    if side == "mean":  # the mean of the per-side means, as pelvis_frame(side="mean")
        frame = (both.groupby(["participant_id", "visit"], sort=True, observed=True)
                 .agg(week=("week", "first"), ir_free=("ir_free", "mean"),
                      ir_neutral=("ir_neutral", "mean"), tilt=("tilt", "first")).reset_index()
                 .assign(side="mean"))
        frame["tilt_class"] = tilt_class(frame["tilt"], cuts)
        frame = frame[both.columns]
        frame.attrs.update(both.attrs)
    elif side == "both":
        frame = both
    else:
        frame = both[both["side"] == side].reset_index(drop=True)
        if frame.empty:
            raise AnalysisError(f"no IR readings on the {side} side")
    paired = (paired_pelvis_difference(both, alpha=alpha)
              if both["ir_neutral"].notna().any() else None)
    assoc = frame.dropna(subset=["tilt", "ir_free"])
    if assoc.empty:
        raise AnalysisError("no visit has both standing pelvic tilt and own-posture IR")
    rmc = rm_corr(assoc, "tilt", "ir_free", "participant_id", alpha=alpha)
    err = frame.attrs.get("tilt_error_var") if correct_tilt_error else None
    wb = within_between(assoc, "tilt", "ir_free", "participant_id", x_error_var=err,
                        x_error_df=frame.attrs.get("tilt_error_df"), alpha=alpha,
                        n_boot=n_boot, seed=seed)
    by_class = ir_by_tilt_class(frame, cuts=cuts, alpha=alpha)
    return PelvisResult(frame, paired, rmc, wb, by_class, cuts, alpha)
