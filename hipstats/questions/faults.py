"""H5 — which form faults occur, and do they matter?

* :func:`fault_rates` — share of exercise rows with each fault (and with any fault) by
  exercise, arm and week, with participant-cluster CIs (rows of one participant are
  correlated; Wilson CIs kept alongside);
* :func:`fault_trend` — change of the fault rate over weeks: a logistic GEE clustered by
  participant, odds ratio per week with a robust CI;
* :func:`fault_outcome_association` — a participant's fault rate against their outcome change,
  adjusted for arm and baseline;
* :func:`faults_analysis` — all of it in one call on a cohort.

The unit is a completed session-exercise row (one exercise in one session); its ``faults``
cell is a semicolon list, so a row can show several faults. Rows not completed have no form to
judge and are left out.

Examples
--------
>>> import pandas as pd
>>> from hipstats.questions.faults import fault_rates
>>> log = pd.DataFrame({"participant_id": "p1", "week": [0., 0., 1.], "session": [1, 2, 3],
...     "exercise": "ffe_split_squat", "sets": 3, "reps": 8, "load_kg": 10.0,
...     "faults": ["back_knee_lean;front_knee_drift", "", "back_knee_lean"]})
>>> r = fault_rates(log, by=("exercise",))
>>> r.set_index("fault")["n_fault"].to_dict()["back_knee_lean"]
2
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hipstats.cohort.views import (
    arm_table,
    faults_list,
    need_arm,
    participant_change,
    prepare_sessions,
    prepared_source,
)
from hipstats.data.schema import FAULTS
from hipstats.errors import AnalysisError, ConvergenceWarning
from hipstats.questions.common import Result, adjusted_ols, estimate_or_note, note_rows
from hipstats.results import resolve_confidence
from hipstats.stats.inference import wald
from hipstats.stats.rates import pooled_rate

__all__ = ["fault_rates", "fault_trend", "fault_outcome_association", "faults_analysis",
           "FaultsResult"]

ANY = "any"


def _completed(data, participants) -> pd.DataFrame:
    s = prepare_sessions(data, participants)
    s = s[s["completed"]]
    if s.empty:
        raise AnalysisError("no completed exercise in the training log; fault rates need "
                            "completed sessions")
    return s


def _has_fault(s: pd.DataFrame, fault: str) -> pd.Series:
    """Whether each row's fault list holds ``fault`` (``"any"``: any fault), judged once per
    distinct ``faults`` string."""
    if fault == ANY:
        return s["any_fault"]
    codes, uniq = pd.factorize(s["faults"], use_na_sentinel=True)
    hit = np.array([fault in faults_list(v) for v in uniq] + [False], dtype=bool)
    return pd.Series(hit[codes], index=s.index)


def _fault_names(s: pd.DataFrame) -> list[str]:
    seen = {f for v in pd.unique(s["faults"]) for f in faults_list(v)}
    return [f for f in FAULTS if f in seen] + sorted(seen - set(FAULTS))


def fault_rates(data, *, by: Sequence[str] = ("exercise", "arm", "week"),
                faults: Sequence[str] | None = None, participants: pd.DataFrame | None = None,
                confidence: float = 0.95, alpha: float | None = None) -> pd.DataFrame:
    """Fault rates: share of completed exercise rows showing each fault, with
    participant-cluster CIs.

    The ``faults`` list of each row is exploded; a row with two faults counts once for each,
    and once for ``"any"``. Rates per group are :math:`k/n` with :math:`n` the completed rows
    in the group and :math:`k` those with the fault. Rows of one participant are correlated
    (some participants fault far more often than others), so ``rate_ci_low`` /
    ``rate_ci_high`` are participant-cluster CIs (:func:`hipstats.stats.rates.pooled_rate`:
    ratio estimator with cluster-robust variance, on the logit scale). The Wilson score CI,
    which treats every row as independent, is kept as ``rate_ci_low_wilson`` /
    ``rate_ci_high_wilson``: it is right only for the rows of a single participant (e.g.
    ``by=("participant_id",)``, where both CIs coincide) and too narrow for cells pooling
    several participants. For change over weeks use :func:`fault_trend`.

    Parameters
    ----------
    data : Cohort or sessions DataFrame
    by : sequence of str
        Grouping columns of the log (``exercise``, ``arm``, ``week``, ``protocol_week`` = whole
        weeks, ``participant_id`` ...); empty for the whole log.
    faults : sequence of str, optional
        Faults to report (default: every fault seen); ``"any"`` is always reported.
    participants : DataFrame, optional
        participant_id, arm, when ``data`` is a log and ``"arm"`` is in ``by``.
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        by..., fault, n_participants, n_rows, n_fault, rate, rate_ci_low, rate_ci_high
        (cluster CI), rate_ci_low_wilson, rate_ci_high_wilson.

    References
    ----------
    Cochran WG (1977). Sampling Techniques, 3rd ed., section 6.11.
    Wilson EB (1927). JASA 22:209-212.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.questions.faults import fault_rates
    >>> log = pd.DataFrame({"participant_id": "p1", "week": [0., 1.], "exercise": "other",
    ...                     "sets": 1, "reps": 5, "faults": ["lumbar_rounding", ""]})
    >>> fault_rates(log, by=()).query("fault == 'any'")["rate"].tolist()
    [0.5]
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="fault_rates")
    s = _completed(data, participants)
    by = list(by)
    if "arm" in by:
        need_arm(s, "fault rates")
    missing = [c for c in by if c not in s.columns]
    if missing:
        raise AnalysisError(f"cannot group fault rates by {missing}: not columns of the log")
    names = list(faults) if faults is not None else _fault_names(s)
    ind = pd.DataFrame({f: _has_fault(s, f) for f in names}, index=s.index)
    ind[ANY] = s["any_fault"]
    cells = list(dict.fromkeys([*by, "participant_id"]))
    ind = pd.concat([s[cells], ind], axis=1)
    counts = ind.groupby(cells, sort=True, observed=True).agg(["sum", "size"])
    rows = []
    for f in [ANY, *names]:
        per = pd.DataFrame({"n_rows": counts[(f, "size")], "n_fault": counts[(f, "sum")]})
        rows.append(pooled_rate(per.reset_index(), "n_fault", "n_rows", by=by, confidence=1 - alpha)
                    .assign(fault=f))
    out = pd.concat(rows, ignore_index=True)
    return out[[*by, "fault", "n_participants", "n_rows", "n_fault", "rate", "rate_ci_low",
                "rate_ci_high", "rate_ci_low_wilson", "rate_ci_high_wilson"]]


def fault_trend(data, *, fault: str = ANY, by_arm: bool = False, exercise: str | None = None,
                participants: pd.DataFrame | None = None, cov_struct: str = "exchangeable",
                confidence: float = 0.95, alpha: float | None = None) -> pd.DataFrame:
    """Change of the fault rate over weeks: logistic GEE clustered by participant.

    .. math:: \\operatorname{logit} P(\\text{fault}_{ij}) = \\beta_0 + \\beta_1\\,\\text{week}_{ij}
              \\;[+\\;\\text{arm terms}]

    fitted by generalised estimating equations (binomial family, logit link, working
    correlation ``cov_struct`` within participant) with robust (sandwich) standard errors, so
    the CI stays valid when a participant's rows are correlated. ``exp(beta_1)`` is the
    population-averaged odds ratio per week (< 1: faults become rarer).

    Parameters
    ----------
    fault : str
        ``"any"`` or one fault name.
    by_arm : bool
        Add arm main effects and an arm x week interaction; then one row per arm.
    exercise : str, optional
        Restrict to one exercise.
    cov_struct : {"exchangeable", "independence"}
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        One row (or one per arm): log_or_per_week, log_or_per_week_se, statistic (z),
        p_value, odds_ratio_per_week, odds_ratio_per_week_ci_low, odds_ratio_per_week_ci_high,
        n_rows, n_participants; ``attrs["fit"]`` holds the statsmodels result.

    References
    ----------
    Liang KY, Zeger SL (1986). Longitudinal data analysis using generalized linear models.
    Biometrika 73:13-22.

    Examples
    --------
    >>> import hipstats as hs  # doctest: +SKIP
    >>> hs.fault_trend(hs.simulate_cohort(seed=1))  # doctest: +SKIP
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="fault_trend")
    import statsmodels.api as sm  # noqa: PLC0415
    import statsmodels.formula.api as smf  # noqa: PLC0415

    s = _completed(data, participants)
    if exercise is not None:
        s = s[s["exercise"] == exercise]
        if s.empty:
            raise AnalysisError(f"no completed rows of exercise {exercise!r}")
    y = _has_fault(s, fault)
    d = pd.DataFrame({"y": y.astype(float).to_numpy(), "week": s["week"].to_numpy(float),
                      "g": s["participant_id"].astype(str).to_numpy(),
                      "order": s["session_order"].to_numpy()})
    if by_arm:
        need_arm(s, "fault trend")
        d["arm"] = s["arm"].astype(str).to_numpy()
    if d["y"].nunique() < 2:
        state = "every" if d["y"].iloc[0] == 1 else "no"
        raise AnalysisError(f"{state} completed row shows fault {fault!r}; a trend needs both")
    if d["week"].nunique() < 2:
        raise AnalysisError("all completed rows are in the same week; no trend over weeks")
    d = d.sort_values(["g", "order"])
    cs = {"exchangeable": sm.cov_struct.Exchangeable(),
          "independence": sm.cov_struct.Independence()}.get(cov_struct)
    if cs is None:
        raise AnalysisError(f"cov_struct must be 'exchangeable' or 'independence', got "
                            f"{cov_struct!r}")
    formula = "y ~ C(arm) * week" if by_arm and d["arm"].nunique() > 1 else "y ~ week"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = smf.gee(formula, "g", d, family=sm.families.Binomial(), cov_struct=cs).fit()
    for w in caught:
        if "converge" in str(w.message).lower():
            warnings.warn(f"fault trend GEE: {w.message}", ConvergenceWarning, stacklevel=2)
            break
    names = list(fit.params.index)
    cov = fit.cov_params().to_numpy()
    rows = []
    groups = sorted(d["arm"].unique()) if by_arm else [None]
    for a in groups:
        c = np.zeros(len(names))
        c[names.index("week")] = 1.0
        if a is not None and f"C(arm)[T.{a}]:week" in names:
            c[names.index(f"C(arm)[T.{a}]:week")] = 1.0
        est = float(c @ fit.params.to_numpy())
        se = float(np.sqrt(c @ cov @ c))
        lo, hi, z, p = wald(est, se, alpha)
        sub = d if a is None else d[d["arm"] == a]
        row = {"fault": fault, "log_or_per_week": est, "log_or_per_week_se": se, "statistic": float(z),
               "p_value": float(p), "odds_ratio_per_week": np.exp(est),
               "odds_ratio_per_week_ci_low": float(np.exp(lo)),
               "odds_ratio_per_week_ci_high": float(np.exp(hi)), "n_rows": len(sub),
               "n_participants": sub["g"].nunique()}
        rows.append(row if a is None else {"arm": a, **row})
    out = pd.DataFrame(rows)
    out.attrs["fit"] = fit
    return out


def fault_outcome_association(cohort, measure: str = "hip_ir_deg", *, fault: str = ANY,
                              per: float = 0.1, final="final",
                              adjust: Sequence[str] = ("arm", "baseline"),
                              confidence: float = 0.95, alpha: float | None = None) -> pd.DataFrame:
    """Does a participant's fault rate go with less improvement?

    .. math:: \\Delta y_i = \\beta_0 + \\beta_F\\,\\frac{f_i}{\\text{per}}
              + \\sum_a\\gamma_a[\\text{arm}_i = a] + \\delta\\,y_{i0} + e_i

    by OLS over participants with completed training rows, where :math:`f_i` is the share of
    their completed exercise rows with the fault and :math:`\\Delta y_i` the change of the
    measure from baseline to the final visit (sides averaged, own posture). :math:`\\beta_F`
    is the difference in change per ``per`` (default 0.1 = 10 percentage points) of fault
    rate, within arm. Observational: faults may mark people who respond less.

    Parameters
    ----------
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).

    Returns
    -------
    DataFrame
        term, estimate, se, statistic (t), p_value, ci_low, ci_high (the fault term is named
        ``fault_rate_per_<per>``); ``attrs`` holds n, r_squared, formula and ``data``.

    Examples
    --------
    >>> import hipstats as hs  # doctest: +SKIP
    >>> hs.fault_outcome_association(hs.simulate_cohort(seed=1))  # doctest: +SKIP
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="fault_outcome_association")
    s = _completed(cohort, None)
    f = _has_fault(s, fault)
    rate = f.groupby(s["participant_id"]).mean().rename("fault_rate")
    change = participant_change(cohort, measure, final=final)
    df = change.merge(rate.reset_index(), on="participant_id", how="inner")
    people = arm_table(cohort, None)
    if people is not None:
        df = df.merge(people, on="participant_id", how="left")
    elif "arm" in adjust:
        raise AnalysisError("adjusting for arm needs the participants table")
    if df.empty:
        raise AnalysisError("no participant has both completed training and an outcome change")
    return adjusted_ols(df, "fault_rate", per, adjust, alpha, f"fault_rate_per_{per:g}", cohort)


class FaultsResult(Result):
    """Everything :func:`faults_analysis` computes for H5.

    Attributes
    ----------
    overall : DataFrame
        :func:`fault_rates` of the whole log (each fault and "any").
    rates : DataFrame
        :func:`fault_rates` by exercise and arm (all weeks).
    weekly : DataFrame
        :func:`fault_rates` of ``"any"`` fault by arm and whole protocol week (for the figure).
    trend, trend_by_arm : DataFrame
    association : DataFrame or None
        Any part is None when the data cannot support it; ``notes`` maps its name to the
        reason (also listed by :meth:`summary` as "not estimable: ..." rows).
    notes : dict of str to str
    """

    _title = "H5: form faults"

    def __init__(self, *, notes=None, **parts):
        self.__dict__.update(parts)
        for name, reason in (notes or {}).items():
            self.mark_not_estimable(name, reason)

    def summary(self) -> pd.DataFrame:
        """Plain-language rows: overall rate, trend, association."""
        rows = []
        if self.overall is not None:
            r = self.overall.set_index("fault").loc[ANY]
            rows.append(("Share of completed exercise rows with any form fault", r["rate"],
                         r["rate_ci_low"], r["rate_ci_high"], np.nan,
                         f"{100 * r['rate']:.0f}% of {int(r['n_rows'])} completed exercise rows "
                         f"of {int(r['n_participants'])} participants (CI clustered by "
                         "participant)"))
        if self.trend is not None:
            t = self.trend.iloc[0]
            rows.append(("Odds ratio of a fault per training week (GEE)",
                         t["odds_ratio_per_week"], t["odds_ratio_per_week_ci_low"],
                         t["odds_ratio_per_week_ci_high"], t["p_value"],
                         "the odds of a fault change by "
                         f"{100 * (t['odds_ratio_per_week'] - 1):+.0f}% per week"))
        if self.association is not None:
            a = self.association.set_index("term")
            a = a[a.index.str.startswith("fault_rate_per")]
            if len(a):
                a = a.iloc[0]
                rows.append(("Outcome change per 10 points more fault rate (deg)", a["estimate"],
                             a["ci_low"], a["ci_high"], a["p_value"],
                             f"{a['estimate']:+.2f} deg change per 10 percentage points of fault "
                             "rate, within arm"))
        for name, note in zip(self.not_estimable, note_rows(self.not_estimable)):
            rows.append((name, np.nan, np.nan, np.nan, np.nan, note))
        return pd.DataFrame(rows, columns=["question", "estimate", "ci_low", "ci_high", "p_value",
                                           "interpretation"])

    def to_frame(self) -> pd.DataFrame:
        return self.rates

    def plot(self, **kwargs):
        """Fault rate by week and arm (:func:`hipstats.plots.loading.fault_rate_plot`)."""
        from hipstats.plots.loading import fault_rate_plot  # noqa: PLC0415

        return fault_rate_plot(self.weekly, **kwargs)


def faults_analysis(cohort, *, measure: str | None = "hip_ir_deg", confidence: float = 0.95, alpha: float | None = None
                    ) -> FaultsResult:
    """H5 in one call: rates by exercise and arm, weekly rates, GEE trend, outcome association.

    Parameters
    ----------
    cohort : Cohort
        With sessions and participants (and measurements for the association).
    measure : str or None
        Outcome for :func:`fault_outcome_association`; None skips it.
    confidence : float
        Level of the confidence intervals (default 0.95).
    alpha : float, optional
        Deprecated: 1 - confidence (read with a DeprecationWarning).

    Returns
    -------
    FaultsResult

    Examples
    --------
    >>> import hipstats as hs  # doctest: +SKIP
    >>> hs.faults_analysis(hs.simulate_cohort(seed=1)).summary()  # doctest: +SKIP
    """
    alpha = 1 - resolve_confidence(confidence, alpha, where="faults_analysis")
    has_arm = arm_table(cohort, None) is not None
    arm = ["arm"] if has_arm else []
    src = prepared_source(cohort)  # the log is prepared once for every part below
    notes: dict[str, str] = {}
    assoc = None
    if measure is not None and isinstance(getattr(cohort, "measurements", None), pd.DataFrame):
        assoc = estimate_or_note(notes, "association", fault_outcome_association, src, measure,
                          confidence=1 - alpha, adjust=("arm", "baseline") if has_arm else ("baseline",))
    return FaultsResult(confidence=round(1 - alpha, 12),
        overall=estimate_or_note(notes, "overall", fault_rates, src, by=(), confidence=1 - alpha),
        rates=estimate_or_note(notes, "rates", fault_rates, src, by=("exercise", *arm), confidence=1 - alpha),
        weekly=estimate_or_note(notes, "weekly", fault_rates, src, by=(*arm, "protocol_week"),
                         faults=[], confidence=1 - alpha),
        trend=estimate_or_note(notes, "trend", fault_trend, src, confidence=1 - alpha),
        trend_by_arm=(estimate_or_note(notes, "trend_by_arm", fault_trend, src, by_arm=True,
                                confidence=1 - alpha) if has_arm else None),
        association=assoc, notes=notes)
