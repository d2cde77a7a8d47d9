"""H1 — does pelvic position mask or limit hip internal rotation (IR)?

Three complementary analyses, each one function returning a tidy DataFrame, and one call
(:func:`pelvis_analysis`) that runs them all on a cohort:

* :func:`paired_pelvis_difference` — IR measured with a *neutral-pelvis setup* against IR in
  the participant's *own posture* ("free"), paired within participant, per side and pooled.
* :func:`~hipstats.stats.correlation.rm_corr` and
  :func:`~hipstats.stats.correlation.within_between` (generic, in :mod:`hipstats.stats`) — the
  association of standing pelvic tilt with IR split into its within-participant part (does IR
  change when *this* person's tilt changes?) and its between-participant part (do people with
  more tilt have less IR?).
  "Tilt masks rotation" is a within-participant claim; a pooled correlation mixes both levels.
* :func:`ir_by_tilt_class` — IR by posterior / neutral / anterior standing tilt class
  (:func:`~hipstats.cohort.views.tilt_class`, cut points
  :data:`hipstats.data.schema.DEFAULT_TILT_CUTS`).

The functions here take either a :class:`hipstats.cohort.Cohort` (anything with a
``measurements`` table) or a long ``measurements`` DataFrame (data contract columns); the
generic statistics take any DataFrame plus column names.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from hipstats.cohort.views import tilt_class
>>> list(tilt_class([2.0, 4.0, 13.9, 14.0, np.nan]))
['posterior', 'neutral', 'neutral', 'anterior', nan]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.cohort.views import cohort_table, readings, tilt_class, visit_values
from hipstats.data.schema import DEFAULT_TILT_CUTS, TILT_CLASSES
from hipstats.errors import AnalysisError, check_columns
from hipstats.questions.common import Result
from hipstats.results import resolve_confidence
from hipstats.stats.correlation import rm_corr, within_between
from hipstats.stats.effect_sizes import hedges_j, smd_ci
from hipstats.stats.inference import mean_ci, wald

__all__ = ["pelvis_frame", "paired_pelvis_difference", "ir_by_tilt_class", "pelvis_analysis", "PelvisResult"]


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
    >>> from hipstats.questions.pelvis import pelvis_frame
    >>> m = pd.DataFrame({"participant_id": ["p1"] * 3, "visit": "baseline", "week": 0.0,
    ...     "measure": ["hip_ir_deg", "hip_ir_deg", "pelvic_tilt_deg"],
    ...     "side": ["left", "left", None], "pelvis": ["free", "neutral", None],
    ...     "value": [30.0, 33.0, 10.0]})
    >>> pelvis_frame(m)[["ir_free", "ir_neutral", "tilt"]].values.tolist()
    [[30.0, 33.0, 10.0]]
    """
    m = cohort_table(data, "measurements")
    check_columns(m, ["participant_id", "visit", "measure", "value"], "a measurements table")
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
    df = readings(data, measure, pelvis=None, visits="all" if visits is None else visits,
                  rater="primary" if rater is None else rater)
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
    lo, hi, t, p = wald(mean, se, alpha, df=n - 1)
    dz = mean / sd
    dz_lo, dz_hi = smd_ci(dz, n, n - 1, confidence=1 - alpha)  # noncentral t (Cumming 2012)
    sd_av = (a.std(ddof=1) + b.std(ddof=1)) / 2
    try:
        w = stats.wilcoxon(d)
        w_stat, w_p = float(w.statistic), float(w.pvalue)
    except ValueError:
        w_stat, w_p = np.nan, np.nan
    return {"n_participants": n, "mean_neutral": a.mean(), "mean_free": b.mean(), "estimate": mean,
            "sd_diff": sd, "ci_low": float(lo), "ci_high": float(hi), "statistic": float(t),
            "df": n - 1, "p_value": float(p), "wilcoxon_statistic": w_stat, "wilcoxon_p_value": w_p,
            "d_z": dz, "d_z_ci_low": dz_lo, "d_z_ci_high": dz_hi,
            "g_av": hedges_j(n - 1) * mean / sd_av}


def paired_pelvis_difference(data, *, confidence: float = 0.95, alpha: float | None = None,
                             visits="scheduled", rater: str | None = None,
                             position: str | None = None) -> pd.DataFrame:
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
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).
    visits, rater, position
        Passed to :func:`pelvis_frame`.

    Returns
    -------
    DataFrame
        One row per side and "pooled": n_participants, mean_neutral, mean_free, estimate (the
        mean difference neutral - own posture), sd_diff, ci_low, ci_high, statistic (paired
        t), df, p_value, wilcoxon_statistic, wilcoxon_p_value, d_z, d_z_ci_low, d_z_ci_high,
        g_av.

    References
    ----------
    Lakens D (2013). Calculating and reporting effect sizes to facilitate cumulative science.
    Frontiers in Psychology 4:863.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.questions.pelvis import paired_pelvis_difference
    >>> rng = np.random.default_rng(1)
    >>> free = rng.normal(35, 8, 20)
    >>> df = pd.DataFrame({"participant_id": np.arange(20), "side": "left",
    ...                    "ir_free": free, "ir_neutral": free + 3 + rng.normal(0, 2, 20)})
    >>> res = paired_pelvis_difference(df)
    >>> res["side"].tolist()
    ['left', 'pooled']
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="paired_pelvis_difference")
    pf = _as_pelvis_frame(data, side="both", visits=visits, rater=rater, position=position)
    check_columns(pf, ["participant_id", "ir_neutral", "ir_free"], "paired_pelvis_difference")
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


def ir_by_tilt_class(data, *, cuts: Sequence[float] = DEFAULT_TILT_CUTS, visit="baseline",
                     confidence: float = 0.95, alpha: float | None = None,
                     rater: str | None = None, position: str | None = None) -> pd.DataFrame:
    """IR (own posture and neutral setup) by standing-tilt class, one value per participant.

    Participants are classed by :func:`tilt_class` of their standing tilt at ``visit``
    ("baseline" = each participant's first visit; "all" = the mean over all their scheduled
    visits, IR averaged alike; or a visit label). IR is the mean of sides and trials. For each
    class: participants, mean tilt, mean IR free and neutral and their difference
    (neutral - free) with t-based CIs at ``confidence`` (``alpha=`` is its deprecated
    complement). A one-way ANOVA across classes of free IR and of the difference is stored in
    ``attrs["anova"]`` (statistic = F, p_value, num_df, den_df).

    Empty classes stay in the table with ``n_participants = 0`` and a warning; fewer than two
    non-empty classes raise :class:`~hipstats.errors.AnalysisError`.

    Returns
    -------
    DataFrame
        tilt_class, n_participants, tilt_mean, then ``{ir_free, ir_neutral, ir_difference}``
        x ``{"", _ci_low, _ci_high}``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.questions.pelvis import ir_by_tilt_class
    >>> pf = pd.DataFrame({"participant_id": range(6), "visit": "baseline", "week": 0.0,
    ...     "tilt": [0, 2, 8, 10, 16, 20.0], "ir_free": [40, 38, 36, 35, 30, 31.0],
    ...     "ir_neutral": [40, 39, 38, 38, 35, 36.0]})
    >>> ir_by_tilt_class(pf)["n_participants"].tolist()
    [2, 2, 2]
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="ir_by_tilt_class")
    pf = _as_pelvis_frame(data, side="mean", visits="scheduled", rater=rater, position=position,
                          cuts=cuts)
    check_columns(pf, ["participant_id", "tilt", "ir_free"], "ir_by_tilt_class")
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
                     ir_difference=per["ir_neutral"] - per["ir_free"])
    rows, empty = [], []
    for cls in TILT_CLASSES:
        sub = per[per["tilt_class"] == cls]
        row = {"tilt_class": cls, "n_participants": len(sub),
               "tilt_mean": sub["tilt"].mean() if len(sub) else np.nan}
        for col in ("ir_free", "ir_neutral", "ir_difference"):
            m, lo, hi = mean_ci(sub[col].to_numpy(float), alpha)
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
    for col in ("ir_free", "ir_difference"):
        groups = [g[col].dropna().to_numpy() for _, g in per.groupby("tilt_class", observed=True)]
        # every non-empty class enters (a class of one participant adds to the between-class part, as in R's
        # aov); the test needs two classes and one residual degree of freedom
        groups = [g for g in groups if g.size >= 1]
        k, n_all = len(groups), sum(g.size for g in groups)
        if k >= 2 and n_all - k >= 1:
            f, p = stats.f_oneway(*groups)
            anova[col] = {"statistic": float(f), "p_value": float(p), "num_df": k - 1,
                          "den_df": n_all - k}
    out.attrs["anova"] = anova
    return out


# ----------------------------------------------------------------------------------------
# One call
# ----------------------------------------------------------------------------------------
class PelvisResult(Result):
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
        self.confidence = round(1 - alpha, 12)

    def summary(self) -> pd.DataFrame:
        """Plain-language summary: one row per question with estimate, CI, p."""
        lvl = f"{100 * (1 - self.alpha):.0f}%"
        rows = []
        if self.paired is not None:
            p = self.paired.set_index("side").loc["pooled"]
            rows.append(("Neutral-pelvis setup minus own-posture IR (deg, per participant)",
                         p["estimate"], p["ci_low"], p["ci_high"], p["p_value"],
                         f"IR measured in own posture is {abs(p['estimate']):.1f} deg "
                         f"{'lower' if p['estimate'] > 0 else 'higher'} than with a neutral "
                         f"setup ({lvl} CI {p['ci_low']:.1f} to {p['ci_high']:.1f}; "
                         f"d_z = {p['d_z']:.2f}, n = {int(p['n_participants'])})"))
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
                         f"tilt (deg/deg{note})", r["estimate"], r["ci_low"], r["ci_high"], r["p_value"],
                         text))
        c = self.rm_corr.iloc[0]
        rows.append(("Repeated-measures correlation of tilt with own-posture IR", c["estimate"],
                     c["ci_low"], c["ci_high"], c["p_value"],
                     f"r_rm = {c['estimate']:.2f} ({lvl} CI {c['ci_low']:.2f} to {c['ci_high']:.2f}), "
                     f"df = {int(c['df'])}"))
        an = self.by_class.attrs.get("anova", {}).get("ir_free")
        if an:
            ns = ", ".join(f"{r.tilt_class} {r.ir_free:.1f} (n={r.n_participants})"
                           for r in self.by_class.itertuples() if r.n_participants)
            rows.append(("Own-posture IR by standing tilt class (one-way ANOVA F)", an["statistic"],
                         np.nan, np.nan, an["p_value"], f"mean IR by class: {ns} deg"))
        return pd.DataFrame(rows, columns=["question", "estimate", "ci_low", "ci_high", "p_value",
                                           "interpretation"])

    def to_frame(self) -> pd.DataFrame:
        """All tables stacked long: analysis, term, estimate, ci_low, ci_high, p_value."""
        parts = []
        if self.paired is not None:
            parts.append(self.paired.assign(analysis="paired", term=self.paired["side"]))
        parts.append(self.rm_corr.assign(analysis="rm_corr", term="r"))
        parts.append(self.within_between.assign(analysis="within_between"))
        bc = self.by_class.assign(analysis="by_class", term=self.by_class["tilt_class"].astype(str))
        parts.append(bc.rename(columns={"ir_free": "estimate", "ir_free_ci_low": "ci_low",
                                        "ir_free_ci_high": "ci_high"}))
        cols = ["analysis", "term", "estimate", "ci_low", "ci_high", "p_value"]
        return pd.concat([p.reindex(columns=cols) for p in parts], ignore_index=True)

    def plot(self, kind: str = "tilt", **kwargs):
        """Figure: ``kind="tilt"`` IR against tilt (:func:`hipstats.plots.pelvis.ir_vs_tilt_plot`)
        or ``kind="paired"`` (:func:`hipstats.plots.pelvis.paired_pelvis_plot`)."""
        from hipstats.plots import pelvis as _plots  # noqa: PLC0415

        if kind == "tilt":
            return _plots.ir_vs_tilt_plot(self, **kwargs)
        if kind == "paired":
            return _plots.paired_pelvis_plot(self, **kwargs)
        raise AnalysisError(f"kind must be 'tilt' or 'paired', got {kind!r}")


def pelvis_analysis(cohort, *, cuts: Sequence[float] = DEFAULT_TILT_CUTS, side: str = "mean",
                    confidence: float = 0.95, alpha: float | None = None,
                    correct_tilt_error: bool = True, visits="scheduled",
                    rater: str | None = None, position: str | None = None,
                    n_boot: int = 999, seed=0) -> PelvisResult:
    """H1 in one call: paired neutral-vs-own-posture IR, tilt-IR association on both levels,
    and IR by tilt class.

    Parameters
    ----------
    cohort : Cohort or measurements DataFrame
    cuts : pair of float
        Tilt class cut points (default :data:`hipstats.data.schema.DEFAULT_TILT_CUTS`).
    side : {"mean", "left", "right"}
        Side used for the tilt association (default: mean of both sides per visit). The
        paired comparison always reports left, right and pooled.
    confidence : float
        Level of every confidence interval (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).
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
    confidence = resolve_confidence(confidence, alpha, where="pelvis_analysis")
    alpha = 1 - confidence
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
    paired = (paired_pelvis_difference(both, confidence=confidence)
              if both["ir_neutral"].notna().any() else None)
    assoc = frame.dropna(subset=["tilt", "ir_free"])
    if assoc.empty:
        raise AnalysisError("no visit has both standing pelvic tilt and own-posture IR")
    rmc = rm_corr(assoc, "tilt", "ir_free", "participant_id", confidence=confidence)
    err = frame.attrs.get("tilt_error_var") if correct_tilt_error else None
    wb = within_between(assoc, "tilt", "ir_free", "participant_id", x_error_var=err,
                        x_error_df=frame.attrs.get("tilt_error_df"), confidence=confidence,
                        n_boot=n_boot, seed=seed)
    by_class = ir_by_tilt_class(frame, cuts=cuts, confidence=confidence)
    return PelvisResult(frame, paired, rmc, wb, by_class, cuts, alpha)
