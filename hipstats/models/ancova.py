"""Baseline-adjusted comparison of arms at the end of a protocol (ANCOVA).

The model is the ordinary least-squares regression

.. math:: y_{i} = \\beta_0 + \\sum_{a \\ne \\mathrm{ref}} \\tau_a\\,[\\mathrm{arm}_i = a]
          + \\gamma\\, y^{(0)}_{i} + \\delta^\\top z_i + \\varepsilon_i,

with :math:`y^{(0)}` the baseline value and :math:`z` optional covariates. :math:`\\tau_a` is the
baseline-adjusted difference between arm *a* and the reference arm. Adjusted means are the
estimated marginal means of each arm with the baseline and numeric covariates at their means
and equal weights over categorical covariates (:func:`hipstats.models.emmeans.emmeans`);
contrasts against the reference and between all arms come with t tests (residual df),
multiplicity-adjusted p-values and confidence intervals. ANCOVA on the final value and on the
change from baseline give identical arm effects (the baseline is a covariate); the outcome
here is the final value. The homogeneity-of-slopes F test (arm x baseline interaction) is
reported as a diagnostic.

References
----------
Vickers, A. J. & Altman, D. G. (2001). Analysing controlled trials with baseline and follow up
measurements. *BMJ*, 323(7321), 1123-1124.

EMA (2015). Guideline on adjustment for baseline covariates in clinical trials.
EMA/CHMP/295050/2013.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from hipstats.models.ancova import ancova
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"arm": np.repeat(["control", "stretching", "loading"], 30),
...                    "baseline": rng.normal(36, 9, 90)})
>>> df["week_12"] = (df["baseline"] + df["arm"].map({"control": 0, "stretching": 2,
...                  "loading": 6}) + rng.normal(0, 3, 90))
>>> res = ancova(df, "week_12", "baseline", "arm", levels=["control", "stretching", "loading"])
>>> res.vs_ref["contrast"].tolist()
['stretching - control', 'loading - control']
"""

from __future__ import annotations

import html

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hipstats.errors import AnalysisError
from hipstats.models.emmeans import EMMResult, contrasts, emmeans
from hipstats.results import Result, html_table

__all__ = ["AncovaResult", "ancova"]


def _q(name: str) -> str:
    return f"Q({name!r})"


class AncovaResult(Result):
    """Result of :func:`ancova`.

    Attributes
    ----------
    model : statsmodels RegressionResults
        The fitted OLS model.
    adjusted_means : EMMResult
        Adjusted (estimated marginal) means per arm.
    vs_ref : pandas.DataFrame
        Each arm minus the reference arm (baseline-adjusted), with CIs and adjusted p-values.
    pairwise : pandas.DataFrame
        All pairs of arms.
    slopes_test : dict
        Homogeneity of regression slopes (arm x baseline): ``statistic`` (F), ``num_df, den_df, p_value``.
    counts : pandas.DataFrame
        Per arm: ``n_participants`` (rows), raw baseline and outcome means.
    baseline_slope : dict
        Estimate, SE and CI of the baseline coefficient.
    """

    def __init__(self, model, adjusted_means, vs_ref, pairwise, slopes_test, counts, baseline_slope,
                 outcome, baseline, group, ref, confidence):
        self.model = model
        self.adjusted_means = adjusted_means
        self.vs_ref = vs_ref
        self.pairwise = pairwise
        self.slopes_test = slopes_test
        self.counts = counts
        self.baseline_slope = baseline_slope
        self.outcome, self.baseline, self.group, self.ref = outcome, baseline, group, ref
        self.confidence = confidence

    def summary(self) -> pd.DataFrame:
        """All arm comparisons (vs reference, then pairwise) in one tidy table."""
        a = self.vs_ref.assign(family="vs_ref")
        b = self.pairwise.assign(family="pairwise")
        return pd.concat([a, b], ignore_index=True)[["family"] + list(self.vs_ref.columns)]

    def to_frame(self) -> pd.DataFrame:
        """Adjusted means per arm (``estimate``, with CI) with the raw counts and means."""
        m = self.adjusted_means.to_frame()
        return self.counts.merge(m, left_on=self.group, right_on=self.group, how="right")

    def plot(self, ax=None):
        """Adjusted means with CIs; returns a matplotlib Figure."""
        fig = self.adjusted_means.plot(ax=ax)
        fig.axes[0].set_ylabel(f"adjusted {self.outcome}")
        fig.axes[0].set_title(f"{self.outcome} adjusted for {self.baseline}")
        return fig

    def _repr_html_(self) -> str:
        st = self.slopes_test
        esc = html.escape
        return (f"<p><b>ANCOVA</b> of {esc(str(self.outcome))} on {esc(str(self.group))} adjusted for "
                f"{esc(str(self.baseline))} (n = {int(self.model.nobs)}, residual df = {int(self.model.df_resid)}; "
                f"baseline slope {self.baseline_slope['estimate']:.3g}; "
                f"slopes homogeneity F = {st['statistic']:.3g}, p = {st['p_value']:.3g})</p>"
                + html_table(self.to_frame()) + html_table(self.summary()))

    def __repr__(self) -> str:
        return (f"AncovaResult({self.outcome} ~ {self.group} + {self.baseline}, n={int(self.model.nobs)})\n"
                + self.summary().to_string(index=False))


def ancova(data: pd.DataFrame, outcome: str, baseline: str, group: str,
           covariates: Sequence[str] = (), *, ref=None, levels: Sequence | None = None,
           confidence: float = 0.95, adjust: str = "holm", cov_type: str = "nonrobust"
           ) -> AncovaResult:
    """Baseline-adjusted group comparison (ANCOVA by OLS) with adjusted means and contrasts.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per participant; rows missing any used column are dropped.
    outcome : str
        End-of-protocol value (e.g. IR at week 12).
    baseline : str
        Baseline value of the same measure.
    group : str
        Arm column.
    covariates : sequence of str
        Extra adjustment covariates; non-numeric columns enter as factors.
    ref : optional
        Reference arm (default: first of ``levels``, or the first arm in sorted order).
    levels : sequence, optional
        Order of the arms in the output (default: categorical order, else the reference first
        then the others sorted).
    confidence : float, default 0.95
        CI level.
    adjust : str, default "holm"
        Multiplicity adjustment of the p-values within each family of contrasts (see
        :func:`hipstats.models.emmeans.contrasts`).
    cov_type : str, default "nonrobust"
        statsmodels covariance type (e.g. ``"HC3"`` for heteroscedasticity-robust SEs).

    Returns
    -------
    AncovaResult

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"arm": ["c", "c", "c", "t", "t", "t"],
    ...                    "pre": [30.0, 35, 40, 31, 36, 41], "post": [31.0, 35, 41, 35, 40, 44]})
    >>> res = ancova(df, "post", "pre", "arm", ref="c")
    >>> round(float(res.vs_ref["estimate"].iloc[0]), 3)
    3.05
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    cols = [outcome, baseline, group, *covariates]
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise AnalysisError(f"columns {missing} not found in data (columns: {list(data.columns)})")
    d = data.dropna(subset=cols).copy()
    for c in (outcome, baseline):
        if not pd.api.types.is_numeric_dtype(d[c]):
            raise AnalysisError(f"column {c!r} must be numeric, got dtype {d[c].dtype}")
    present = list(pd.unique(d[group]))
    if levels is None:
        if isinstance(d[group].dtype, pd.CategoricalDtype):
            levels = [lv for lv in d[group].cat.categories if lv in set(present)]
        else:
            levels = sorted(present, key=str)
        if ref is not None and ref in levels:
            levels = [ref] + [lv for lv in levels if lv != ref]
    levels = [lv for lv in levels if lv in set(present)]
    ref = levels[0] if ref is None else ref
    if ref not in levels:
        raise AnalysisError(f"reference arm {ref!r} has no complete rows in {group!r} (arms: {levels})")
    counts = d.groupby(group, observed=True).size()
    if len(levels) < 2:
        raise AnalysisError(f"ANCOVA needs at least two arms with data, found {levels}")
    small = [str(a) for a in levels if counts.get(a, 0) < 2]
    if small:
        raise AnalysisError(f"ANCOVA needs at least 2 participants per arm; too few in {', '.join(small)}")
    if isinstance(d[group].dtype, pd.CategoricalDtype):
        d[group] = d[group].astype(object)

    cov_terms = []
    for c in covariates:
        numeric = pd.api.types.is_numeric_dtype(d[c]) and not pd.api.types.is_bool_dtype(d[c])
        cov_terms.append(_q(c) if numeric else f"C({_q(c)})")
    gterm = f"C({_q(group)}, Treatment({ref!r}), levels={list(levels)!r})"
    rhs = " + ".join([gterm, _q(baseline), *cov_terms])
    formula = f"{_q(outcome)} ~ {rhs}"
    fit = smf.ols(formula, d).fit(cov_type=cov_type)
    if fit.df_resid < 1:
        raise AnalysisError(f"ANCOVA has no residual degrees of freedom (n = {len(d)}, "
                            f"{len(fit.params)} coefficients)")

    emm: EMMResult = emmeans(fit, group, confidence=confidence)
    vs_ref = contrasts(emm, "trt.vs.ctrl", ref=str(ref), adjust=adjust)
    pairwise = contrasts(emm, "pairwise", adjust=adjust) if len(levels) > 2 else vs_ref.copy()

    # homogeneity of regression slopes
    full = smf.ols(f"{_q(outcome)} ~ {rhs} + {gterm}:{_q(baseline)}", d).fit()
    tab = anova_lm(smf.ols(formula, d).fit(), full)
    slopes_test = {"statistic": float(tab["F"].iloc[1]), "num_df": float(tab["df_diff"].iloc[1]),
                   "den_df": float(tab["df_resid"].iloc[1]), "p_value": float(tab["Pr(>F)"].iloc[1])}

    bname = _q(baseline)
    ci = fit.conf_int(alpha=1 - confidence)
    baseline_slope = {"estimate": float(fit.params[bname]), "se": float(fit.bse[bname]),
                      "ci_low": float(ci.loc[bname, 0]), "ci_high": float(ci.loc[bname, 1]),
                      "p_value": float(fit.pvalues[bname])}
    raw = d.groupby(group, observed=True).agg(n_participants=(outcome, "size"), baseline_mean=(baseline, "mean"),
                                              outcome_mean=(outcome, "mean"))
    raw = raw.loc[levels].reset_index().rename(columns={"index": group})
    return AncovaResult(fit, emm, vs_ref, pairwise, slopes_test, raw, baseline_slope,
                        outcome, baseline, group, ref, confidence)
