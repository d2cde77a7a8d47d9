"""R -- how reliable are the cohort's readings? One call, :func:`reliability_summary`:
n, ICC with CI, SEM and MDC95 per measure and design (trial-to-trial, session-to-session,
rater-to-rater), built on :mod:`hipstats.stats.icc`, :mod:`hipstats.stats.agreement` and
:mod:`hipstats.stats.kappa`.

Examples
--------
>>> import hipstats as hs
>>> from hipstats.questions.reliability import reliability_summary
>>> table = reliability_summary(hs.simulate_cohort(40, seed=1), measures=["hip_ir_deg"])
>>> sorted(table.to_frame()["design"].unique())[:1]
['rater-to-rater']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hipstats.cohort import views
from hipstats.data.schema import MEASURES
from hipstats.errors import AnalysisError, ParameterError
from hipstats.results import Result
from hipstats.stats.agreement import mdc, sem_from_fit
from hipstats.stats.icc import FORM_ALIASES, ICC_FORMS, cluster_bootstrap_icc, icc_fit
from hipstats.stats.inference import check_confidence, require_columns, z_critical
from hipstats.stats.kappa import cohen_kappa

__all__ = ['reliability_summary', 'ReliabilityResult']


# ---------------------------------------------------------------------------------------------
# One-call summary for a cohort
# ---------------------------------------------------------------------------------------------
_DEFAULT_MEASURES = ("aslr_deg", "hip_ir_deg", "pelvic_tilt_deg", "aslr_mens_score",
                     "aslr_fms_score")
_DESIGNS = ("trial-to-trial", "session-to-session", "rater-to-rater")
_CONDITIONS = ("pelvis", "position", "device")


def _design_frame(df: pd.DataFrame, design: str, baseline_visit: str, retest_visit: str,
                  primary_rater: str | None):
    """Rows, targets and 'raters' column for one design, or a reason why it cannot be done."""
    has_rater = "rater" in df.columns and (df["rater"] != "").any()
    if design == "trial-to-trial":
        targets = ["participant_id", "visit", "side"] + (["rater"] if has_rater else [])
        if df["trial"].nunique() < 2:
            return None, "only one trial per visit"
        return (df, targets, "trial"), None
    if design == "session-to-session":
        sub = df[df["visit"].isin([baseline_visit, retest_visit])]
        if has_rater and not sub.empty:
            rater = primary_rater if primary_rater is not None else sub["rater"].mode().iloc[0]
            if sub.loc[sub["rater"] == rater, "visit"].nunique() < 2 and sub["visit"].nunique() == 2:
                return None, (f"rater {rater!r} has no {baseline_visit!r}/{retest_visit!r} "
                              "readings (set primary_rater)")
            sub = sub[sub["rater"] == rater]
        if sub["visit"].nunique() < 2:
            return None, f"no {retest_visit!r} visit to pair with {baseline_visit!r}"
        return (sub, ["participant_id", "side"], "visit"), None
    if not has_rater or df["rater"].nunique() < 2:
        return None, "only one rater"
    return (df, ["participant_id", "visit", "side"], "rater"), None

_RELIABILITY_KEY = ["form", "icc", "icc_ci_low", "icc_ci_high", "sem", "mdc95"]


class ReliabilityResult(Result):
    """Result of :func:`reliability_summary`: reliability of every measure by design.

    Attributes
    ----------
    table : DataFrame
        One row per measure, condition (pelvis, position, device where recorded) and design:
        the full table (see :func:`reliability_summary`).
    skipped : DataFrame
        measure (condition), design, reason: the combinations the data cannot support.
    baseline_visit, retest_visit, primary_rater : str or None
        The names the session-to-session design used (found in the data or declared).
    confidence : float
    """

    _title = "Reliability"

    def __init__(self, table: pd.DataFrame, skipped: list[dict], *, confidence: float, baseline_visit,
                 retest_visit, primary_rater, conditions):
        self.table = table
        self.skipped = pd.DataFrame(skipped, columns=["measure", *conditions, "design", "reason"]
                                    if not skipped else None)
        self.confidence = confidence
        self.baseline_visit, self.retest_visit = baseline_visit, retest_visit
        self.primary_rater = dict(primary_rater)  # measure -> rater of the session-to-session design
        self.conditions = list(conditions)
        for measure, who in self.primary_rater.items():
            by = f" by rater {who}" if who else ""
            self.add_note(f"{measure} session-to-session: visit {retest_visit!r} against {baseline_visit!r}{by}")
        for s in skipped:
            what = " ".join(str(s[k]) for k in ("measure", *conditions, "design") if s.get(k) not in (None, ""))
            self.add_note(f"{what}: not estimable: {s['reason']}")

    def summary(self) -> pd.DataFrame:
        """The key estimates: ICC with CI, SEM and MDC95 per measure, condition and design."""
        keys = ["measure", *self.conditions, "design", "n_participants"]
        return self.table[[c for c in keys + _RELIABILITY_KEY if c in self.table.columns]].copy()

    def to_frame(self) -> pd.DataFrame:
        """The full table (every column of :func:`reliability_summary`)."""
        return self.table.copy()

    def plot(self, ax=None):
        """ICC with its CI per measure and design (a forest plot); returns the Figure."""
        import matplotlib.pyplot as plt  # noqa: PLC0415

        from hipstats.plots.style import theme  # noqa: PLC0415

        t = self.table
        labels = [" / ".join(str(r[k]) for k in ("measure", *self.conditions, "design") if str(r.get(k, "")) != "")
                  for _, r in t.iterrows()]
        with theme():
            if ax is None:
                fig, ax = plt.subplots(figsize=(7, 0.35 * len(t) + 1.2))
            else:
                fig = ax.figure
            y = np.arange(len(t))[::-1]
            ax.errorbar(t["icc"], y, xerr=[t["icc"] - t["icc_ci_low"], t["icc_ci_high"] - t["icc"]], fmt="o",
                        color="#0072B2", capsize=3)
            ax.set_yticks(y, labels)
            ax.set_xlim(min(0.0, float(np.nanmin(t["icc_ci_low"]))), 1.0)
            ax.set_xlabel(f"ICC ({round(100 * self.confidence)}% CI)")
            ax.set_title("Reliability by measure and design")
        return fig


def reliability_summary(data, *, measures: Sequence[str] | None = None,
                        designs: Sequence[str] = _DESIGNS, form: str = "ICC(A,1)",
                        confidence: float = 0.95, baseline_visit: str | None = None,
                        retest_visit: str | None = None, primary_rater: str | None = None,
                        nan_policy: str = "omit",
                        tilt_cuts: Sequence[float] | None = None, ci: str = "cluster",
                        n_boot: int = 1000, seed=0) -> pd.DataFrame:
    r"""Reliability of every measure by design: participants, ICC with CI, SEM and MDC95.

    The targets of an ICC here are participant-sides (or participant-side-visits): the two
    sides and the visits of one participant are *not* independent targets, so the F-based
    ICC interval (which assumes independent targets) is too narrow. The default CI is
    therefore a participant-cluster bootstrap: participants are drawn with replacement, each
    bringing all their targets, and the ICC (same McGraw & Wong formula) and SEM are
    re-estimated in each of ``n_boot`` draws (vectorised); the CI is the point estimate
    ± :math:`t_{G-1}` bootstrap SEs on the Fisher z scale of the ICC (log scale of the SEM),
    transformed back (:math:`G` participants; MDC95 CI = 1.96 sqrt 2 x SEM CI). The point
    estimates are those of the full data. The F-based CI is kept as ``ci_low_f`` /
    ``ci_high_f``.

    Parameters
    ----------
    data : Cohort or DataFrame
        A cohort (anything with a ``.measurements`` table) or a measurements DataFrame in the
        data contract's long format (``participant_id``, ``visit``, ``measure``, ``side``,
        ``value``, ``trial``, optional ``rater``, ``pelvis``, ``position``, ``device``).
    measures : list of str, optional
        Measures to summarise (default: aslr_deg, hip_ir_deg, pelvic_tilt_deg and the two ASLR
        scores, those present).
    designs : sequence of str
        Any of ``"trial-to-trial"`` (trials of the same participant, visit, side and rater;
        the ICC of a single trial), ``"session-to-session"`` (``baseline_visit`` vs
        ``retest_visit`` by ``primary_rater``; trial-mean readings), ``"rater-to-rater"``
        (raters at the same visit; trial-mean readings).
    form : str
        ICC form reported (default ICC(A,1), absolute agreement of a single reading).
    confidence : float
        Level of the ICC confidence interval (the MDC is always MDC95).
    baseline_visit, retest_visit : str, optional
        Visit labels of the test-retest pair; by default the cohort's baseline and retest
        visits (declared in ``hipstats.yaml`` or found by :func:`hipstats.cohort.views.retest_visit`).
    primary_rater : str, optional
        Rater whose baseline and retest readings are compared; by default each measure's
        primary rater (:func:`hipstats.cohort.views.primary_rater`).
    nan_policy : {"omit", "model", "raise"}
        Passed to :func:`~hipstats.stats.icc.icc` (default: drop targets without a complete set of readings).
    tilt_cuts : pair of float, optional
        Cut points of the posterior / neutral / anterior tilt classes used for the tilt-class
        kappa (default ``hipstats.data.schema.DEFAULT_TILT_CUTS``).
    ci : {"cluster", "f"}
        What ``ci_low`` / ``ci_high`` hold: the participant-cluster bootstrap CI (default) or
        the F-based CI (targets as independent; always also in ``ci_low_f`` / ``ci_high_f``).
        With ``nan_policy="model"`` (REML) or fewer than 3 participants no bootstrap is done
        and the F-based CI is reported (see ``ci_method``).
    n_boot : int
        Bootstrap draws (default 1000).
    seed : int or numpy Generator seed
        Seed of the bootstrap (results are reproducible).

    Returns
    -------
    ReliabilityResult
        ``to_frame()``: one row per measure, condition (pelvis, position, device where recorded)
        and design: ``n_participants`` (the independent units: the effective sample size for the
        CIs), ``n_targets`` (participant-sides, or participant-side-visits),
        ``n_readings`` (readings compared), ``form``, ``icc``, ``icc_ci_low``, ``icc_ci_high`` (the
        CI of ``ci_method``), ``icc_ci_low_f``, ``icc_ci_high_f`` (F-based, targets as independent),
        ``ci_method``, ``sem`` (``sqrt(MS_within)``, the within-target SD in the measure's
        unit: the typical error of a single reading is about ±SEM, 95% of readings within
        ±1.96·SEM of the participant's true value) with ``sem_ci_low``, ``sem_ci_high``,
        ``mdc95`` (``1.96 sqrt(2) SEM``) with ``mdc95_ci_low``, ``mdc95_ci_high`` (bootstrap
        CIs; NaN without bootstrap) and, where two readings are compared, ``kappa`` with
        ``kappa_ci_low``/``kappa_ci_high`` and ``kappa_on`` saying on what: for the ordinal
        scores the quadratic-weighted Cohen's kappa on the full score scale, for pelvic tilt the
        unweighted kappa of the tilt classes (posterior / neutral / anterior). Combinations
        the data cannot support are listed, with the reason, in ``.skipped`` and the notes;
        the visits and raters used in ``.notes``.

    Notes
    -----
    Left and right sides enter as separate targets (so ``n_targets`` counts participant-sides); they
    are not independent, so the F-based CIs (``ci_low_f``, ``ci_high_f``) are too narrow when
    sides are strongly correlated; the default bootstrap CI resamples participants and is
    valid for that dependence (Field & Welsh 2007 on the cluster bootstrap). Report
    ``n_participants`` as the sample size.

    References
    ----------
    Field CA, Welsh AH (2007). Bootstrapping clustered data. JRSS B 69:369-390.
    McGraw KO, Wong SP (1996). Psychological Methods 1:30-46.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.questions.reliability import reliability_summary
    >>> rng = np.random.default_rng(1)
    >>> true = rng.normal(36, 9, 20)
    >>> rows = [dict(participant_id=f"P{i:02d}", visit="baseline", measure="hip_ir_deg",
    ...              side="left", trial=t, rater=r, value=true[i] + rng.normal(0, 2))
    ...         for i in range(20) for r in ("R1", "R2") for t in (1, 2)]
    >>> out = reliability_summary(pd.DataFrame(rows))
    >>> out.to_frame()[["design", "n_participants", "n_targets", "n_readings"]].to_numpy().tolist()
    [['trial-to-trial', 20, 40, 2], ['rater-to-rater', 20, 20, 2]]
    >>> out.to_frame()["ci_method"].iloc[0]
    'participant-cluster bootstrap (1000 draws)'
    """
    confidence = check_confidence(confidence)
    if FORM_ALIASES.get(form, form) not in {f[0] for f in ICC_FORMS}:
        raise ParameterError(f"unknown ICC form {str(form)[:100]!r}; use one of "
                             f"{', '.join(f for row in ICC_FORMS for f in row[:2])}")
    if ci not in ("cluster", "f"):
        raise ValueError(f"ci must be 'cluster' or 'f', got {ci!r}")
    if tilt_cuts is None:
        from hipstats.data.schema import DEFAULT_TILT_CUTS as tilt_cuts
    bad = [d for d in designs if d not in _DESIGNS]
    if bad:
        raise ValueError(f"unknown design(s) {bad}; choose from {_DESIGNS}")
    meas = getattr(data, "measurements", data)
    if not isinstance(meas, pd.DataFrame):
        raise TypeError("reliability_summary needs a Cohort (with .measurements) or a "
                        f"measurements DataFrame, got {type(data).__name__}")
    require_columns(meas, ["participant_id", "visit", "measure", "value"], "reliability_summary")
    names_problem = None
    if "session-to-session" in designs:
        try:  # the names are found in the data (or declared), never assumed
            baseline_visit = baseline_visit or views.baseline_visit(data)
            retest_visit = retest_visit or views.retest_visit(data)
        except AnalysisError as err:
            names_problem = str(err)
        if retest_visit is None and names_problem is None:
            names_problem = ("no retest visit: no visit repeats baseline before the first follow-up "
                             "(declare retest_visit in hipstats.yaml if the cohort has one)")
    raters_used = {}
    df = meas.copy()
    for col in ("side", "rater") + _CONDITIONS:
        if col in df.columns:
            df[col] = df[col].astype("object").where(df[col].notna(), "").astype(str)
        elif col == "side":
            df[col] = ""
    df["trial"] = df["trial"].fillna(1).astype(int) if "trial" in df.columns else 1
    df["measure"] = df["measure"].astype(str)
    conds = [c for c in _CONDITIONS if c in df.columns and (df[c] != "").any()]
    if measures is None:
        measures = [m for m in _DEFAULT_MEASURES if (df["measure"] == m).any()]
    rows, skipped = [], []
    for measure in measures:
        mdf = df[df["measure"] == measure]
        if mdf.empty:
            skipped.append(dict(measure=measure, reason="no readings"))
            continue
        groups = mdf.groupby(conds, sort=True, observed=True) if conds else [((), mdf)]
        for key, gdf in groups:
            key = key if isinstance(key, tuple) else (key,)
            cond = dict(zip(conds, key))
            for design in designs:
                who = primary_rater
                if design == "session-to-session":
                    if names_problem is not None:
                        skipped.append(dict(measure=measure, **cond, design=design, reason=names_problem))
                        continue
                    if who is None:
                        try:
                            who = views.primary_rater(data, measure)
                        except AnalysisError as err:
                            skipped.append(dict(measure=measure, **cond, design=design, reason=str(err)))
                            continue
                    raters_used[measure] = who
                spec, reason = _design_frame(gdf, design, baseline_visit, retest_visit, who)
                label = dict(measure=measure, **cond, design=design)
                if spec is None:
                    skipped.append(dict(label, reason=reason))
                    continue
                rows_df, targets, raters = spec
                try:
                    row = _summary_row(rows_df, targets, raters, measure, form, confidence,
                                       nan_policy, tuple(tilt_cuts),
                                       boot=dict(n_boot=n_boot, seed=seed) if ci == "cluster"
                                       else None)
                except AnalysisError as err:
                    skipped.append(dict(label, reason=str(err)))
                    continue
                rows.append(dict(label, **row))
    out = pd.DataFrame(rows)
    if out.empty:
        raise AnalysisError("reliability_summary: no measure and design had repeated readings "
                            f"to analyse; reasons: {skipped[:5]}")
    return ReliabilityResult(out, skipped, confidence=confidence, baseline_visit=baseline_visit,
                             retest_visit=retest_visit, primary_rater=raters_used, conditions=conds)


def _summary_row(df, targets, raters, measure, form, confidence, nan_policy, tilt_cuts,
                 boot=None):
    form = FORM_ALIASES.get(form, form)
    fit = icc_fit(df, targets, raters, "value", confidence=confidence, nan_policy=nan_policy,
                   what=f"{measure} by {raters}")
    row = fit.table.set_index("form").loc[form]
    used = fit.info.pop("targets_used")
    mat = fit.info.pop("matrix", None)
    pids = (used.get_level_values("participant_id") if isinstance(used, pd.MultiIndex)
            else used)
    s = sem_from_fit(fit, "within")
    f_lo, f_hi = float(row["icc_ci_low"]), float(row["icc_ci_high"])
    b = (np.nan,) * 4 + (0,)
    if boot is not None and mat is not None:
        b = cluster_bootstrap_icc(mat, np.asarray(pids), form, confidence=confidence, **boot)
    z2 = z_critical(0.95) * np.sqrt(2.0)  # as mdc()
    if b[4]:
        method, lo, hi = f"participant-cluster bootstrap ({b[4]} draws)", b[0], b[1]
    else:
        method, lo, hi = "F (targets as independent)", f_lo, f_hi
    out = dict(n_participants=int(pd.Index(pids).nunique()), n_targets=fit.n_targets,
               n_readings=fit.n_raters, form=form, icc=float(row["icc"]), icc_ci_low=lo, icc_ci_high=hi,
               icc_ci_low_f=f_lo, icc_ci_high_f=f_hi, ci_method=method,
               sem=s, sem_ci_low=b[2], sem_ci_high=b[3],
               mdc95=mdc(s, confidence=0.95), mdc95_ci_low=z2 * b[2], mdc95_ci_high=z2 * b[3])
    scale = MEASURES[measure].categories if measure in MEASURES else None
    two_readings = fit.n_raters == 2
    if (scale is not None or measure == "pelvic_tilt_deg") and two_readings:
        # kappa on the categories a clinician would act on: the score itself (quadratic
        # weights, full scale) or the tilt class of the (trial-mean) reading (unweighted)
        wide = df.pivot_table(index=targets, columns=raters, values="value", aggfunc="mean")
        if scale is None:
            wide = pd.DataFrame(np.digitize(wide.to_numpy(), tilt_cuts), columns=wide.columns,
                                index=wide.index).where(wide.notna())
            scale, weights = [0, 1, 2], None
            label = f"tilt class (cuts {tilt_cuts[0]:g}, {tilt_cuts[1]:g} deg), unweighted"
        else:
            weights, label = "quadratic", "score, quadratic weights"
        if fit.info["ratings_per_cell_max"] == 1 or label.startswith("tilt"):
            k = cohen_kappa(wide, wide.columns[0], wide.columns[1], weights=weights,
                            categories=scale, confidence=confidence)
            out.update(kappa=float(k["kappa"].iloc[0]), kappa_ci_low=float(k["kappa_ci_low"].iloc[0]),
                       kappa_ci_high=float(k["kappa_ci_high"].iloc[0]), kappa_on=label)
    return out
