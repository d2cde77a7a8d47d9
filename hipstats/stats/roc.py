"""ROC analysis of a continuous score against a binary condition, as R's pROC.

* :func:`roc` -- the empirical ROC curve and its AUC with DeLong's CI, returned as a
  :class:`ROCResult` that plots itself with a bootstrap band;
* :func:`roc_test` -- DeLong's test for two correlated AUCs (two scores on the same people);
* :func:`youden_cutoff` -- the Youden-optimal cutoff with stratified bootstrap CIs;
* clustered data (both sides of a participant): Obuchowski's variance of the AUC and cluster
  bootstrap intervals.

The accuracy at one cutoff is :func:`hipstats.stats.accuracy.diagnostic_accuracy`; the study's
H3 (does an ASLR below 70 degrees flag limited hip IR, overall and by standing tilt class?) is
:func:`hipstats.questions.screening.screening_analysis`.

Direction convention
--------------------
Throughout this module ``direction`` names the *test-positive rule*: ``"<"`` means a score
**below** the threshold is a positive test (an ASLR under 70 degrees flags a deficit), ``">"``
means a score above it is positive. pROC names directions by the ordering of the groups
instead: pROC's ``direction=">"`` ("controls > cases") is this module's ``"<"`` and pROC's
``"<"`` is this module's ``">"``. ``direction="auto"`` follows pROC's rule exactly: a higher
score is positive when ``median(controls) <= median(cases)``, otherwise a lower one.

References
----------
DeLong ER, DeLong DM, Clarke-Pearson DL (1988). Comparing the areas under two or more correlated
receiver operating characteristic curves: a nonparametric approach. Biometrics 44:837-845.
Sun X, Xu W (2014). Fast implementation of DeLong's algorithm for comparing the areas under
correlated receiver operating characteristic curves. IEEE Signal Process Lett 21:1389-1393.
Robin X et al. (2011). pROC: an open-source package for R and S+ to analyze and compare ROC
curves. BMC Bioinformatics 12:77.
Obuchowski NA (1997). Nonparametric analysis of clustered ROC curve data. Biometrics 53:567-578.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from hipstats.stats.roc import roc
>>> df = pd.DataFrame({"aslr": [55, 62, 68, 75, 80, 85, 66, 90], "deficit": [1, 1, 1, 0, 0, 0, 0, 0]})
>>> round(roc(df, "aslr", "deficit").auc, 3)
0.933
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.errors import AnalysisError
from hipstats.results import Result, exclusion_note
from hipstats.stats.accuracy import positive, require_both_classes, score_column, score_condition_arrays
from hipstats.stats.inference import check_confidence, wald

__all__ = ["roc", "ROCResult", "roc_test", "youden_cutoff"]


# ----------------------------------------------------------------------------------------------
# ROC curve and DeLong
# ----------------------------------------------------------------------------------------------
def _resolve_direction(x: np.ndarray, y: np.ndarray, direction: str) -> str:
    """Test-positive rule '<' (low is positive) or '>' (high is positive); 'auto' as pROC."""
    if direction == "auto":
        return ">" if np.median(x[~y]) <= np.median(x[y]) else "<"
    if direction not in ("<", ">"):
        raise AnalysisError(f"ROC direction must be 'auto', '<' or '>', got {direction!r}")
    return direction


def _thresholds(u: np.ndarray, direction: str) -> np.ndarray:
    """pROC's candidate thresholds: -inf, midpoints of sorted unique values, +inf.

    Includes pROC's fix for midpoints that round onto a data value (adjacent doubles).
    """
    lo = np.concatenate([[-np.inf], u])
    hi = np.concatenate([u, [np.inf]])
    with np.errstate(over="ignore", invalid="ignore"):
        t1 = (lo + hi) / 2
    t2 = lo / 2 + hi / 2
    thr = np.where(np.abs(t1) > 1e100, t2, t1)
    inner = np.arange(1, len(u))
    if len(inner):
        at_lo = thr[inner] == u[inner - 1]
        at_hi = thr[inner] == u[inner]
        if direction == "<":   # positive if x < t: t must exceed the lower value
            thr[inner[at_hi & ~at_lo]] = u[inner[at_hi & ~at_lo] - 1]
            # (pROC's ">" rule: a midpoint equal to the upper value moves to the lower value)
        else:
            thr[inner[at_lo]] = u[inner[at_lo]]
    return thr


def _counts_by_value(x: np.ndarray, y: np.ndarray):
    u, inv = np.unique(x, return_inverse=True)
    cases = np.bincount(inv[y], minlength=len(u))
    controls = np.bincount(inv[~y], minlength=len(u))
    return u, cases, controls


def _sesp_from_counts(cases: np.ndarray, controls: np.ndarray, direction: str):
    """Sensitivity and specificity at the U + 1 thresholds (ascending) from counts per value.

    Works on the last axis, so ``cases`` may be a (B, U) array of bootstrap counts.
    """
    m = cases.sum(axis=-1, keepdims=True)
    n = controls.sum(axis=-1, keepdims=True)
    zero = np.zeros(cases.shape[:-1] + (1,))
    below_cases = np.concatenate([zero, np.cumsum(cases, axis=-1)], axis=-1)
    below_controls = np.concatenate([zero, np.cumsum(controls, axis=-1)], axis=-1)
    if direction == "<":   # positive = values below the threshold
        tp, tn = below_cases, n - below_controls
    else:
        tp, tn = m - below_cases, below_controls
    return tp / m, tn / n, tp, tn


def _delong_placements(cases: np.ndarray, controls: np.ndarray):
    """DeLong placements by midranks (Sun & Xu 2014), for k scores at once.

    ``cases`` is (k, m) and ``controls`` (k, n), oriented so that higher means case.
    Returns AUC (k,), V10 (k, m) and V01 (k, n).
    """
    m, n = cases.shape[1], controls.shape[1]
    tz = stats.rankdata(np.concatenate([cases, controls], axis=1), axis=1)
    tx = stats.rankdata(cases, axis=1)
    ty = stats.rankdata(controls, axis=1)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return v10.mean(axis=1), v10, v01


def _delong_cov(v10: np.ndarray, v01: np.ndarray) -> np.ndarray:
    """DeLong covariance matrix S10/m + S01/n of the k AUCs."""
    m, n = v10.shape[1], v01.shape[1]
    if m < 2 or n < 2:
        k = v10.shape[0]
        return np.full((k, k), np.nan)
    return np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n


def oriented(x: np.ndarray, direction: str) -> np.ndarray:
    """Scores oriented so that larger means test-positive (negated for the ``"<"`` rule)."""
    return -x if direction == "<" else x


def _se_at_specificity(se: np.ndarray, sp: np.ndarray, targets: np.ndarray, direction: str) -> np.ndarray:
    """Sensitivity at given specificities, as pROC's coords(input="specificity").

    ``se``, ``sp``: (B, K) in ascending-threshold order. At an exact specificity the highest
    sensitivity is returned; between points it is interpolated linearly.
    """
    if direction == "<":  # make specificity increase along the last axis (sensitivity decreases)
        se, sp = se[..., ::-1], sp[..., ::-1]
    # index of the first point with sp >= target (exists since sp ends at 1)
    j = (sp[:, None, :] < targets[None, :, None] - 1e-12).sum(axis=-1)  # (B, S)
    j = np.minimum(j, sp.shape[-1] - 1)
    rows = np.arange(se.shape[0])[:, None]
    sp_j, se_j = sp[rows, j], se[rows, j]
    jm = np.maximum(j - 1, 0)
    sp_m, se_m = sp[rows, jm], se[rows, jm]
    exact = np.isclose(sp_j, targets[None, :], rtol=0, atol=1e-12) | (j == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (targets[None, :] - sp_j) / (sp_m - sp_j)
    interp = se_j + frac * (se_m - se_j)
    return np.where(exact, se_j, interp)


def _boot_counts(inv: np.ndarray, n_values: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_values) counts per unique value of a with-replacement resample of ``inv``."""
    k = len(inv)
    draw = inv[rng.integers(0, k, size=(n_boot, k))]
    flat = draw + n_values * np.arange(n_boot)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_values).reshape(n_boot, n_values)


def _stratified_boot(x: np.ndarray, y: np.ndarray, n_boot: int, seed):
    """Stratified (cases and controls resampled separately, as pROC) bootstrap counts."""
    rng = np.random.default_rng(seed)
    u, inv = np.unique(x, return_inverse=True)
    c = _boot_counts(inv[y], len(u), n_boot, rng)
    k = _boot_counts(inv[~y], len(u), n_boot, rng)
    return u, c, k


@dataclass(repr=False)
class ROCResult(Result):
    """Empirical ROC curve of one score against a binary reference condition.

    A :class:`hipstats.results.Result`: ``summary()`` is the AUC row, ``to_frame()`` the curve,
    ``plot()`` the figure, ``notes`` and an escaped HTML view; it pickles.

    Attributes
    ----------
    curve : DataFrame
        ``threshold``, ``sensitivity``, ``specificity`` at pROC's candidate thresholds
        (ascending; -inf, midpoints between sorted unique scores, +inf).
    auc, se, ci_low, ci_high : float
        Area under the curve and DeLong standard error and confidence interval.
    direction : {"<", ">"}
        Test-positive rule (``"<"``: a score below the threshold is positive).
    band : DataFrame or None
        The pointwise confidence band of the curve (:meth:`ci_band`) when the analysis that made
        the curve computed it (:func:`hipstats.questions.screening.screening_analysis` does); a
        figure draws it as it is.
    """

    curve: pd.DataFrame
    auc: float
    se: float
    ci_low: float
    ci_high: float
    confidence: float
    direction: str
    n_cases: int
    n_controls: int
    score: str
    condition: str
    cutoff: float | None = None
    ci_method: str = "DeLong"
    band: pd.DataFrame | None = field(default=None, repr=False)
    _x: np.ndarray = field(default=None, repr=False)
    _y: np.ndarray = field(default=None, repr=False)
    _cluster: np.ndarray | None = field(default=None, repr=False)

    _title = "ROC curve"

    @property
    def proc_direction(self) -> str:
        """The same direction in pROC's naming ("<": controls < cases)."""
        return ">" if self.direction == "<" else "<"

    def summary(self) -> pd.DataFrame:
        """One-row DataFrame: ``auc`` with ``auc_se``, ``auc_ci_low``, ``auc_ci_high`` (DeLong), counts
        and direction."""
        return pd.DataFrame([{
            "score": self.score, "condition": self.condition, "n_cases": self.n_cases,
            "n_controls": self.n_controls, "direction": f"positive if {self.score} {self.direction} t",
            "auc": self.auc, "auc_se": self.se, "auc_ci_low": self.ci_low, "auc_ci_high": self.ci_high,
            "confidence": self.confidence, "ci_method": self.ci_method,
        }])

    def to_frame(self) -> pd.DataFrame:
        """The ROC curve as a tidy frame (copy of :attr:`curve`)."""
        return self.curve.copy()

    def ci_band(self, specificities=None, *, n_boot: int = 2000, seed=0,
                confidence: float | None = None) -> pd.DataFrame:
        """Pointwise bootstrap band of sensitivity at fixed specificities (as pROC's ``ci.se``).

        Cases and controls are resampled separately (stratified, as pROC); in each replicate the
        sensitivity at each specificity is read off the empirical ROC curve (linear interpolation
        between points, the highest sensitivity at an exact match, as pROC's ``coords``); the band
        is the percentile interval. It is pointwise, not simultaneous. For a clustered ROC (both
        sides of each participant) participants are resampled instead.

        Returns
        -------
        DataFrame
            ``specificity``, ``sensitivity_ci_low``, ``sensitivity_median``, ``sensitivity_ci_high``.
        """
        conf = self.confidence if confidence is None else check_confidence(confidence)
        sp_targets = np.linspace(0, 1, 51) if specificities is None else np.asarray(specificities, float)
        if self._cluster is None:
            _, c, k = _stratified_boot(self._x, self._y, n_boot, seed)
        else:  # both sides of a participant: resample participants
            _, c, k = _cluster_boot_counts(self._x, self._y, self._cluster, n_boot, seed)
            ok = (c.sum(1) > 0) & (k.sum(1) > 0)
            c, k = c[ok], k[ok]
        se, sp, _, _ = _sesp_from_counts(c, k, self.direction)
        vals = _se_at_specificity(se, sp, sp_targets, self.direction)
        q = np.quantile(vals, [(1 - conf) / 2, 0.5, 1 - (1 - conf) / 2], axis=0)
        return pd.DataFrame({"specificity": sp_targets, "sensitivity_ci_low": q[0], "sensitivity_median": q[1],
                             "sensitivity_ci_high": q[2]})

    def at(self, cutoff: float) -> tuple[float, float]:
        """Sensitivity and specificity of the rule ``score <direction> cutoff``."""
        pos = positive(self._x, cutoff, self.direction)
        return float(pos[self._y].mean()), float((~pos[~self._y]).mean())

    def plot(self, ax=None, **kwargs):
        """ROC curve with a bootstrap CI band and the cutoff marked; see
        :func:`hipstats.plots.screening.roc_plot`. Returns the matplotlib Figure."""
        from hipstats.plots.screening import roc_plot

        return roc_plot(self, ax=ax, **kwargs)

    def _repr_html_(self) -> str:
        s = self.summary().iloc[0]
        pct = round(100 * self.confidence)
        return (f"<div><strong>ROC: {html.escape(self.score)} for {html.escape(self.condition)}</strong>"
                f"<br>AUC {s.auc:.3f} ({pct}% CI {s.auc_ci_low:.3f} to {s.auc_ci_high:.3f}, "
                f"{html.escape(self.ci_method)}), "
                f"{self.n_cases} cases, {self.n_controls} controls; "
                f"{html.escape(s.direction)}"
                + "".join(f"<br>note: {html.escape(n)}" for n in self.notes) + "</div>")

    def __repr__(self) -> str:
        return f"<ROCResult {self}>"

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return (f"ROC {self.score} for {self.condition}: AUC {self.auc:.3f} "
                f"({pct}% CI {self.ci_low:.3f} to {self.ci_high:.3f}, {self.ci_method}); "
                f"n = {self.n_cases} cases, {self.n_controls} controls")


def roc_core(x, y, direction, confidence, sname, cname, cutoff=None) -> ROCResult:
    """The :class:`ROCResult` of score ``x`` for condition ``y`` (arrays already checked), with
    DeLong's CI; the work of :func:`roc` without its argument handling."""
    require_both_classes(y, cname, "a ROC curve")
    d = _resolve_direction(x, y, direction)
    u, cases, controls = _counts_by_value(x, y)
    se, sp, _, _ = _sesp_from_counts(cases, controls, d)
    curve = pd.DataFrame({"threshold": _thresholds(u, d), "sensitivity": se, "specificity": sp})
    xo = oriented(x, d)
    auc, v10, v01 = _delong_placements(xo[y][None, :], xo[~y][None, :])
    var = _delong_cov(v10, v01)[0, 0]
    auc = float(auc[0])
    if not np.isfinite(var):
        warnings.warn("DeLong variance needs at least two cases and two controls; SE and CI are NaN",
                      UserWarning, stacklevel=3)
    sd = float(np.sqrt(var)) if np.isfinite(var) else np.nan
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    lo, hi = (float(np.clip(auc - z * sd, 0, 1)), float(np.clip(auc + z * sd, 0, 1)))
    return ROCResult(curve=curve, auc=auc, se=sd, ci_low=lo, ci_high=hi, confidence=confidence,
                     direction=d, n_cases=int(y.sum()), n_controls=int((~y).sum()), score=sname,
                     condition=cname, cutoff=cutoff, _x=x, _y=y)


def roc(data: pd.DataFrame | None, score, condition, *, direction: str = "auto",
        confidence: float = 0.95, cutoff: float | None = None) -> ROCResult:
    """Empirical ROC curve and AUC with DeLong's confidence interval.

    Parameters
    ----------
    data : DataFrame or None
        One row per tested unit (``None``: ``score``, ``condition`` are arrays).
    score, condition : str
        Numeric score column and binary reference-condition column (True / 1 = present).
    direction : {"auto", "<", ">"}, default "auto"
        Test-positive rule: ``"<"`` a low score is positive (ASLR), ``">"`` a high one. ``"auto"``
        picks as pROC does: high is positive when median(controls) <= median(cases). Note that
        pROC's own labels are the other way round (see the module docstring).
    confidence : float, default 0.95
        Level of the DeLong interval.
    cutoff : float, optional
        A clinical cutoff to mark on the plot.

    Returns
    -------
    ROCResult

    Notes
    -----
    The AUC is the Mann-Whitney probability :math:`\\hat\\theta = P(X > Y) + \\tfrac12 P(X = Y)`
    for a case score X and control score Y (oriented so that higher means positive). DeLong's
    placements are :math:`V_{10}(X_i) = (T_{Z,i} - T_{X,i})/n` and
    :math:`V_{01}(Y_j) = 1 - (T_{Z,j} - T_{Y,j})/m` with T the midranks in the pooled sample (Z)
    and within cases (X) and controls (Y) (Sun & Xu 2014, O(N log N)). Then
    :math:`\\widehat{Var}(\\hat\\theta) = s^2_{10}/m + s^2_{01}/n` and the interval is
    :math:`\\hat\\theta \\pm z_{1-\\alpha/2}\\sqrt{Var}`, truncated to [0, 1] as in pROC's
    ``ci.auc(method = "delong")``. Missing rows are dropped with a warning.

    References
    ----------
    DeLong ER et al. (1988). Biometrics 44:837-845. Sun X, Xu W (2014). IEEE Signal Process Lett
    21:1389-1393. Robin X et al. (2011). BMC Bioinformatics 12:77.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.stats.roc import roc
    >>> df = pd.DataFrame({"aslr": [55, 62, 68, 75, 80, 66, 90, 85],
    ...                    "deficit": [1, 1, 1, 1, 0, 0, 0, 0]})
    >>> r = roc(df, "aslr", "deficit")
    >>> r.direction, round(r.auc, 4)
    ('<', 0.875)
    """
    confidence = check_confidence(confidence)
    if direction not in ("auto", "<", ">"):
        raise AnalysisError(f"ROC direction must be 'auto', '<' or '>', got {direction!r}")
    x, y, sname, cname = score_condition_arrays(data, score, condition)
    n_all = len(score_column(data, score, "score")[0])
    out = roc_core(x, y, direction, confidence, sname, cname, cutoff)
    if n_all > len(x):  # counted in the result, not only warned
        out.add_note(exclusion_note(n_all - len(x), f"no {sname!r} or no {cname!r}"))
    return out


def roc_test(data: pd.DataFrame, score1: str, score2: str, condition: str, *, direction: str = "auto",
             confidence: float = 0.95, alternative: str = "two-sided") -> pd.DataFrame:
    """DeLong's test for two correlated AUCs (two scores measured on the same units).

    Parameters
    ----------
    data : DataFrame
        One row per unit with both scores and the condition; rows missing any are dropped.
    score1, score2 : str
        The two score columns.
    condition : str
        Binary reference-condition column.
    direction : {"auto", "<", ">"} or tuple of two, default "auto"
        Test-positive rule per score ("auto" decided for each score separately, as pROC's
        ``roc()`` does before ``roc.test``). A warning is given when the directions differ.
    confidence : float
        Level of the CI of the AUC difference.
    alternative : {"two-sided", "greater", "less"}
        Alternative hypothesis about AUC1 - AUC2.

    Returns
    -------
    DataFrame
        One row: ``auc1``, ``auc2``, ``estimate`` (AUC1 - AUC2), ``se``, ``ci_low``, ``ci_high``,
        ``statistic`` (z), ``p_value``, ``n_cases``, ``n_controls``, ``direction1``, ``direction2``.

    Notes
    -----
    With S the DeLong covariance of the two AUCs (placements of both scores on the same cases and
    controls), :math:`z = (\\hat\\theta_1 - \\hat\\theta_2) / \\sqrt{S_{11} + S_{22} - 2S_{12}}`,
    as pROC's ``roc.test(method = "delong", paired = TRUE)``.

    References
    ----------
    DeLong ER et al. (1988). Biometrics 44:837-845.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from hipstats.stats.roc import roc_test
    >>> rng = np.random.default_rng(1)
    >>> y = rng.random(200) < 0.4
    >>> df = pd.DataFrame({"a": rng.normal(y * 1.0), "b": rng.normal(y * 0.3), "y": y})
    >>> res = roc_test(df, "a", "b", "y")
    >>> bool(res.loc[0, "p_value"] < 0.05)
    True
    """
    confidence = check_confidence(confidence)
    if alternative not in ("two-sided", "greater", "less"):
        raise AnalysisError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    cols = [score1, score2, condition]
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise AnalysisError(f"columns {missing} not in data (columns: {list(data.columns)})")
    sub = data[cols]
    n_before = len(sub)
    sub = sub.dropna()
    if len(sub) < n_before:
        warnings.warn(f"dropped {n_before - len(sub)} of {n_before} rows with a missing score or "
                      f"condition", UserWarning, stacklevel=2)
    x1, y, _, cname = score_condition_arrays(sub, score1, condition, warn_missing=False)
    x2, _, _, _ = score_condition_arrays(sub, score2, condition, warn_missing=False)
    require_both_classes(y, cname, "a ROC comparison")
    dirs = (direction, direction) if isinstance(direction, str) else tuple(direction)
    d1, d2 = _resolve_direction(x1, y, dirs[0]), _resolve_direction(x2, y, dirs[1])
    if d1 != d2:
        warnings.warn(f"the two scores have different directions ({score1}: {d1}, {score2}: {d2}); "
                      "DeLong's test should not be applied to ROC curves with a different direction",
                      UserWarning, stacklevel=2)
    xo = np.vstack([oriented(x1, d1), oriented(x2, d2)])
    auc, v10, v01 = _delong_placements(xo[:, y], xo[:, ~y])
    s = _delong_cov(v10, v01)
    diff = float(auc[0] - auc[1])
    sd = float(np.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1]))
    if sd == 0 and diff == 0:
        z = 0.0
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = diff / sd
    p = {"two-sided": 2 * stats.norm.sf(abs(z)), "greater": stats.norm.sf(z),
         "less": stats.norm.cdf(z)}[alternative]
    zc = stats.norm.ppf(1 - (1 - confidence) / 2)
    return pd.DataFrame([{
        "score1": score1, "score2": score2, "auc1": float(auc[0]), "auc2": float(auc[1]),
        "estimate": diff, "se": sd, "ci_low": diff - zc * sd, "ci_high": diff + zc * sd,
        "statistic": float(z), "p_value": float(p), "alternative": alternative,
        "n_cases": int(y.sum()), "n_controls": int((~y).sum()), "direction1": d1, "direction2": d2,
    }])


# ----------------------------------------------------------------------------------------------
# Youden
# ----------------------------------------------------------------------------------------------
def _youden_pick(tp: np.ndarray, tn: np.ndarray, m: int, n: int, direction: str) -> np.ndarray:
    """Index of the Youden-optimal threshold per row; ties go to the highest sensitivity.

    J is compared as the integer tp*n + tn*m, so ties are exact.
    """
    score = np.rint(tp).astype(np.int64) * n + np.rint(tn).astype(np.int64) * m
    if direction == "<":  # sensitivity grows with the threshold index: take the last maximum
        k = score.shape[-1]
        return k - 1 - np.argmax(score[..., ::-1], axis=-1)
    return np.argmax(score, axis=-1)


def _boot_thresholds(u: np.ndarray, present: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Midpoint threshold of each replicate at gap ``k`` (between u[k-1] and u[k]), using only the
    values present in that replicate."""
    b, nu = present.shape
    idx = np.arange(nu)
    last_le = np.maximum.accumulate(np.where(present, idx, -1), axis=1)           # (B, U)
    next_ge = np.minimum.accumulate(np.where(present, idx, nu)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(b)
    lo_i = np.where(k > 0, last_le[rows, np.clip(k - 1, 0, nu - 1)], -1)
    hi_i = np.where(k < nu, next_ge[rows, np.clip(k, 0, nu - 1)], nu)
    lo = np.where(lo_i >= 0, u[np.clip(lo_i, 0, nu - 1)], -np.inf)
    hi = np.where(hi_i < nu, u[np.clip(hi_i, 0, nu - 1)], np.inf)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(lo), lo, np.where(np.isinf(hi), hi, (lo + hi) / 2))


def youden_cutoff(data: pd.DataFrame | None, score, condition, *, direction: str = "auto",
                  n_boot: int = 2000, seed=None, confidence: float = 0.95) -> pd.DataFrame:
    """Youden-optimal cutoff with stratified bootstrap percentile CIs.

    Parameters
    ----------
    data : DataFrame or None
        One row per tested unit.
    score, condition : str
        Score column and binary reference-condition column.
    direction : {"auto", "<", ">"}, default "auto"
        Test-positive rule, as in :func:`roc`.
    n_boot : int, default 2000
        Bootstrap replicates (0 for no CIs).
    seed : int or numpy Generator, optional
        Seed of the bootstrap.
    confidence : float, default 0.95
        Level of the percentile intervals.

    Returns
    -------
    DataFrame
        Rows ``cutoff``, ``sensitivity``, ``specificity``, ``youden_j`` with ``estimate``,
        ``ci_low``, ``ci_high``. ``attrs["ties"]`` holds every threshold that attains the maximum
        (pROC returns them all), ``attrs["direction"]`` the test-positive rule.

    Notes
    -----
    The cutoff maximises :math:`J = Se(t) + Sp(t) - 1` over pROC's candidate thresholds (the
    midpoints between sorted unique scores, and +-inf), as ``coords(roc, "best",
    best.method = "youden")`` (which reports Se + Sp, i.e. J + 1). When several thresholds tie,
    the one with the highest sensitivity is reported (the screening view: miss fewer deficits);
    all are in ``attrs["ties"]``. The bootstrap resamples cases and controls separately
    (stratified, as pROC), recomputes the curve and re-optimises the cutoff in every replicate
    (same tie rule); CIs are percentiles. The sensitivity and specificity CIs are those at the
    re-optimised cutoff, so they describe the optimised rule, not a fixed one. All replicates are
    computed at once from counts per unique score.

    The maximised J of a sample overestimates the population J (it is the maximum of noisy
    estimates), and its percentile interval inherits the bias: in binormal simulations (n = 200)
    the 95% interval of J covered the true J only about 82% of the time, while the interval of
    the cutoff covered the true cutoff about 97% of the time. Read J's interval as optimistic.

    References
    ----------
    Youden WJ (1950). Index for rating diagnostic tests. Cancer 3:32-35.
    Fluss R, Faraggi D, Reiser B (2005). Estimation of the Youden index and its associated cutoff
    point. Biometrical Journal 47:458-472.

    Examples
    --------
    >>> import pandas as pd
    >>> from hipstats.stats.roc import youden_cutoff
    >>> df = pd.DataFrame({"aslr": [55, 62, 68, 75, 80, 66, 90, 85],
    ...                    "deficit": [1, 1, 1, 1, 0, 0, 0, 0]})
    >>> res = youden_cutoff(df, "aslr", "deficit", n_boot=200, seed=1)
    >>> float(res.loc["cutoff", "estimate"])
    77.5
    """
    confidence = check_confidence(confidence)
    x, y, sname, cname = score_condition_arrays(data, score, condition)
    return youden_core(x, y, direction, n_boot, seed, confidence, sname, cname)


def youden_core(x, y, direction, n_boot, seed, confidence, sname, cname, cluster=None) -> pd.DataFrame:
    """The table of :func:`youden_cutoff` from checked arrays: the Youden-optimal cutoff with
    (stratified or, with ``cluster``, cluster) bootstrap percentile CIs."""
    require_both_classes(y, cname, "a Youden cutoff")
    d = _resolve_direction(x, y, direction)
    m, n = int(y.sum()), int((~y).sum())
    u, cases, controls = _counts_by_value(x, y)
    se, sp, tp, tn = _sesp_from_counts(cases, controls, d)
    thr = _thresholds(u, d)
    jint = np.rint(tp).astype(np.int64) * n + np.rint(tn).astype(np.int64) * m
    best = np.flatnonzero(jint == jint.max())
    ties = pd.DataFrame({"threshold": thr[best], "sensitivity": se[best], "specificity": sp[best],
                         "youden_j": se[best] + sp[best] - 1})
    k0 = int(_youden_pick(tp, tn, m, n, d))
    est = {"cutoff": thr[k0], "sensitivity": se[k0], "specificity": sp[k0],
           "youden_j": se[k0] + sp[k0] - 1}
    ci = {key: (np.nan, np.nan) for key in est}
    n_boot = int(n_boot or 0)
    if n_boot > 0:
        if cluster is None:
            _, bc, bk = _stratified_boot(x, y, n_boot, seed)
        else:
            _, bc, bk = _cluster_boot_counts(x, y, cluster, n_boot, seed)
            ok = (bc.sum(1) > 0) & (bk.sum(1) > 0)
            bc, bk = bc[ok], bk[ok]
        bse, bsp, btp, btn = _sesp_from_counts(bc, bk, d)
        mb = np.rint(bc.sum(1, keepdims=True)).astype(np.int64)
        nb = np.rint(bk.sum(1, keepdims=True)).astype(np.int64)
        kb = _youden_pick(btp, btn, mb, nb, d)
        rows = np.arange(len(kb))
        draws = {"cutoff": _boot_thresholds(u, (bc + bk) > 0, kb),
                 "sensitivity": bse[rows, kb], "specificity": bsp[rows, kb]}
        draws["youden_j"] = draws["sensitivity"] + draws["specificity"] - 1
        ci = {key: _pct(v, confidence) for key, v in draws.items()}
    out = pd.DataFrame({"estimate": [float(v) for v in est.values()],
                        "ci_low": [float(ci[k][0]) for k in est],
                        "ci_high": [float(ci[k][1]) for k in est]},
                       index=pd.Index(list(est), name="statistic"))
    out.attrs.update(ties=ties, direction=d, n_boot=n_boot, confidence=confidence,
                     score=sname, condition=cname,
                     bootstrap="stratified" if cluster is None else "participant cluster")
    return out


# ----------------------------------------------------------------------------------------------
# unpaired comparison of two AUCs (independent groups, e.g. tilt classes)
# ----------------------------------------------------------------------------------------------
def auc_unpaired_test(r1: ROCResult, r2: ROCResult, *, confidence: float = 0.95) -> dict:
    """DeLong test of two AUCs from independent samples, as pROC's ``roc.test(paired = FALSE)``,
    with the confidence interval of the difference.

    :math:`D = (\\theta_1 - \\theta_2)/\\sqrt{V_1 + V_2}` referred to a t distribution with
    Welch-type df :math:`(V_1 + V_2)^2 / (V_1^2/(N_1 - 1) + V_2^2/(N_2 - 1))`, :math:`V_i` the
    variance of each AUC (DeLong's, or Obuchowski's for clustered curves) and :math:`N_i` its units.
    The interval is :math:`\\theta_1 - \\theta_2 \\mp t_{df}\\sqrt{V_1 + V_2}`, the one that inverts
    the same test (pROC 1.18 reports no interval for the unpaired test).

    Parameters
    ----------
    r1, r2 : ROCResult
        The two curves (independent samples).
    confidence : float, default 0.95
        Level of the interval.

    Returns
    -------
    dict
        ``estimate`` (AUC 1 minus AUC 2), ``se``, ``statistic`` (D), ``df``, ``p_value`` (two-sided),
        ``ci_low``, ``ci_high``; NaN where a variance is not estimable.

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"x": [1, 2, 3, 4, 5, 6, 7, 2], "y": [0, 0, 0, 1, 1, 1, 1, 1]})
    >>> b = pd.DataFrame({"x": [1, 5, 2, 4, 3, 6, 2, 7], "y": [0, 0, 1, 0, 1, 1, 0, 1]})
    >>> t = auc_unpaired_test(roc(a, "x", "y", direction=">"), roc(b, "x", "y", direction=">"), confidence=0.9)
    >>> round(t["estimate"], 5), t["ci_low"] < t["estimate"] < t["ci_high"]   # 13.5/15 - 11.5/16
    (0.18125, True)
    """
    confidence = check_confidence(confidence)
    v1, v2 = r1.se**2, r2.se**2
    n1, n2 = r1.n_cases + r1.n_controls, r2.n_cases + r2.n_controls
    est, se = float(r1.auc - r2.auc), float(np.sqrt(v1 + v2))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = float((v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1)))
    if np.isfinite(se) and se > 0 and np.isfinite(df) and df > 0:
        lo, hi, d, p = (float(v) for v in wald(est, se, 1 - confidence, df))
    else:
        lo = hi = d = p = np.nan
    return {"estimate": est, "se": se, "statistic": d, "df": df, "p_value": p, "ci_low": lo, "ci_high": hi}


# ----------------------------------------------------------------------------------------------
# clustered data (both sides of a participant)
# ----------------------------------------------------------------------------------------------
def obuchowski_var(xo: np.ndarray, y: np.ndarray, cluster: np.ndarray) -> tuple[float, float]:
    """AUC and its variance for clustered data (Obuchowski 1997).

    With placements V10 of the N1 cases and V01 of the N0 controls over all units, and per cluster
    sums :math:`V_{10,i\\cdot}`, :math:`V_{01,i\\cdot}` with :math:`m_i` cases and :math:`n_i`
    controls:
    :math:`S_{10} = \\frac{I_{10}}{(I_{10}-1)N_1}\\sum_i (V_{10,i\\cdot} - m_i\\theta)^2`,
    :math:`S_{01} = \\frac{I_{01}}{(I_{01}-1)N_0}\\sum_i (V_{01,i\\cdot} - n_i\\theta)^2`,
    :math:`S_{11} = \\frac{I}{I-1}\\sum_i (V_{10,i\\cdot} - m_i\\theta)(V_{01,i\\cdot} - n_i\\theta)`,
    :math:`Var = S_{10}/N_1 + S_{01}/N_0 + 2S_{11}/(N_1N_0)`. With one unit per cluster it equals
    DeLong's variance.
    """
    auc, v10, v01 = _delong_placements(xo[y][None, :], xo[~y][None, :])
    theta = float(auc[0])
    codes, ids = pd.factorize(cluster)
    n_cl = len(ids)
    m_i = np.bincount(codes[y], minlength=n_cl)
    n_i = np.bincount(codes[~y], minlength=n_cl)
    a = np.bincount(codes[y], weights=v10[0], minlength=n_cl) - m_i * theta
    b = np.bincount(codes[~y], weights=v01[0], minlength=n_cl) - n_i * theta
    n1, n0 = int(y.sum()), int((~y).sum())
    i10, i01 = int((m_i > 0).sum()), int((n_i > 0).sum())
    if i10 < 2 or i01 < 2:
        return theta, np.nan
    s10 = i10 / ((i10 - 1) * n1) * np.sum(a**2)
    s01 = i01 / ((i01 - 1) * n0) * np.sum(b**2)
    s11 = n_cl / (n_cl - 1) * np.sum(a * b)
    return theta, float(s10 / n1 + s01 / n0 + 2 * s11 / (n1 * n0))


def _cluster_boot_counts(x: np.ndarray, y: np.ndarray, cluster: np.ndarray, n_boot: int, seed):
    """Counts per unique score of cases and controls in participant-cluster bootstrap resamples."""
    rng = np.random.default_rng(seed)
    u, inv = np.unique(x, return_inverse=True)
    codes, ids = pd.factorize(cluster)
    n_cl = len(ids)
    w = _boot_counts(np.arange(n_cl), n_cl, n_boot, rng).astype(float)   # (B, I) draws per cluster
    a_case = np.zeros((n_cl, len(u)))
    a_ctrl = np.zeros((n_cl, len(u)))
    np.add.at(a_case, (codes[y], inv[y]), 1.0)
    np.add.at(a_ctrl, (codes[~y], inv[~y]), 1.0)
    return u, w @ a_case, w @ a_ctrl


def _pct(v: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval; NaN replicates (undefined statistic) are dropped, infinite ones kept."""
    v = v[~np.isnan(v)]
    if not len(v):
        return np.nan, np.nan
    lo, hi = np.quantile(v, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)


def clustered_accuracy_ci(tab: pd.DataFrame, x, y, cluster, cutoff, direction, n_boot, seed,
                           confidence) -> pd.DataFrame:
    """Replace the CIs of an accuracy table by participant-cluster bootstrap percentiles."""
    u, c, k = _cluster_boot_counts(x, y, cluster, n_boot, seed)
    pos = positive(u, cutoff, direction).astype(float)
    tp, fp = c @ pos, k @ pos
    fn, tn = c.sum(1) - tp, k.sum(1) - fp
    n = tp + fp + fn + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = {"sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp), "ppv": tp / (tp + fp),
                 "npv": tn / (tn + fn), "accuracy": (tp + tn) / n, "prevalence": (tp + fn) / n}
        draws["lr_positive"] = draws["sensitivity"] / (1 - draws["specificity"])
        draws["lr_negative"] = (1 - draws["sensitivity"]) / draws["specificity"]
    out = tab.copy()
    for key, v in draws.items():
        out.loc[key, ["ci_low", "ci_high"]] = _pct(v, confidence)
        out.loc[key, "method"] = f"participant cluster bootstrap percentile ({n_boot})"
    return out
