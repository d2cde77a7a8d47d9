"""Responder analysis: the share of each arm whose change exceeds the minimal detectable change.

A participant responds when ``change > mdc`` (``direction=">"``, strictly) or, for outcomes
where a fall is the improvement, ``change < -mdc`` (``direction="<"``). Per arm the share :math:`\\hat p = k/n` gets a Wilson
score interval

.. math:: \\frac{\\hat p + z^2/(2n) \\pm z\\sqrt{\\hat p(1-\\hat p)/n + z^2/(4n^2)}}{1 + z^2/n},

(R's ``prop.test(k, n, correct = FALSE)``). Arms are compared overall with Pearson's
chi-square test of the arms x responder table (no continuity correction), or Fisher's exact test
when an expected count is below 5 (``test="auto"``), and each arm against the reference by the
risk difference :math:`\\hat p_1 - \\hat p_0` with Newcombe's hybrid score interval (method 10):

.. math:: \\big[\\,\\hat\\Delta - \\sqrt{(\\hat p_1 - l_1)^2 + (u_0 - \\hat p_0)^2},\\;
          \\hat\\Delta + \\sqrt{(u_1 - \\hat p_1)^2 + (\\hat p_0 - l_0)^2}\\,\\big]

where :math:`(l_i, u_i)` are the Wilson limits, and Fisher's exact test of the 2 x 2 table.

References
----------
Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
*JASA*, 22(158), 209-212.

Newcombe, R. G. (1998). Interval estimation for the difference between independent
proportions: comparison of eleven methods. *Statistics in Medicine*, 17(8), 873-890.

Examples
--------
>>> import pandas as pd
>>> from hipstats.models.responders import responders
>>> df = pd.DataFrame({"arm": ["control"] * 10 + ["loading"] * 10,
...                    "change": [0, 1, 5, -2, 3, 0, 1, 6, 2, 0, 7, 8, 2, 9, 6, 5, 1, 8, 7, 6]})
>>> res = responders(df, "change", "arm", mdc=4.5, ref="control")
>>> res.by_arm[["arm", "n_participants", "n_responders", "proportion"]]
       arm  n_participants  n_responders  proportion
0  control              10             2         0.2
1  loading              10             8         0.8
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
from scipy import stats

from hipstats.errors import AnalysisError
from hipstats.results import Result, html_table, resolve_direction
from hipstats.stats.rates import wilson_ci

__all__ = ["ResponderResult", "responders", "wilson_ci", "newcombe_diff_ci"]


def newcombe_diff_ci(k1, n1, k0, n0, confidence: float = 0.95) -> tuple[float, float, float]:
    """Risk difference k1/n1 - k0/n0 with Newcombe's hybrid score (Wilson) interval.

    >>> d, lo, hi = newcombe_diff_ci(56, 70, 48, 80)
    >>> round(d, 4), round(lo, 4), round(hi, 4)
    (0.2, 0.0524, 0.3339)
    """
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson_ci(k1, n1, confidence)
    l0, u0 = wilson_ci(k0, n0, confidence)
    d = p1 - p0
    lo = d - np.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    hi = d + np.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return float(d), float(lo), float(hi)


class ResponderResult(Result):
    """Result of :func:`responders`.

    Attributes
    ----------
    by_arm : pandas.DataFrame
        ``arm, n_participants, n_responders, proportion, proportion_ci_low, proportion_ci_high``
        (Wilson).
    vs_ref : pandas.DataFrame
        ``arm, ref, risk_difference, risk_difference_ci_low, risk_difference_ci_high`` (Newcombe),
        ``risk_difference_p_value`` (Fisher exact).
    test : dict
        Overall comparison across arms: ``test`` (name), ``statistic``, ``df``, ``p_value``.
    mdc, confidence : float
    direction : {">", "<"}
    """

    def __init__(self, by_arm, vs_ref, test, mdc, direction, confidence, group):
        self.by_arm = by_arm
        self.vs_ref = vs_ref
        self.test = test
        self.mdc = mdc
        self.direction = direction
        self.confidence = confidence
        self.group = group

    def summary(self) -> pd.DataFrame:
        """Per-arm shares joined with the comparison against the reference arm."""
        return self.by_arm.merge(self.vs_ref, on="arm", how="left")

    def to_frame(self) -> pd.DataFrame:
        return self.summary()

    def _repr_html_(self) -> str:
        t = self.test
        up = self.direction == ">"
        return (f"<p><b>Responders</b> (change {html.escape(self.direction)} "
                f"{'' if up else '-'}{self.mdc:.3g}); overall {html.escape(str(t['test']))}: "
                f"statistic {t['statistic']:.3g}, p = {t['p_value']:.3g}</p>"
                + html_table(self.summary(), digits=3))

    def __repr__(self) -> str:
        return f"ResponderResult(mdc={self.mdc:g}, {self.test['test']} p={self.test['p_value']:.3g})\n" + \
            self.summary().to_string(index=False)

    def plot(self, ax=None):
        """Share of responders per arm with Wilson CIs; returns a matplotlib Figure."""
        import matplotlib.pyplot as plt

        from hipstats.plots.style import arm_palette, theme

        b = self.by_arm
        with theme():
            if ax is None:
                fig, ax = plt.subplots(figsize=(5, 3.6))
            else:
                fig = ax.figure
            pal = arm_palette(b["arm"].astype(str))
            xs = np.arange(len(b))
            ax.bar(xs, b["proportion"], color=[pal[str(a)] for a in b["arm"]], alpha=0.85)
            ax.errorbar(xs, b["proportion"], yerr=[b["proportion"] - b["proportion_ci_low"],
                                                   b["proportion_ci_high"] - b["proportion"]],
                        fmt="none", ecolor="black", capsize=4)
            ax.set_xticks(xs, b["arm"].astype(str))
            ax.set_ylim(0, 1)
            ax.set_ylabel("share of responders")
            ax.set_title(f"change beyond MDC {self.mdc:.3g} ({round(100 * self.confidence)}% CI)")
        return fig


def _fisher(table: np.ndarray, max_tables: int = 5_000_000) -> float:
    """Fisher's exact test of an r x 2 table (exact enumeration, R's ``fisher.test`` rule).

    Tables with the observed margins are enumerated; the p-value sums the probabilities
    (multivariate hypergeometric) of tables no more likely than the observed one, with R's
    relative tolerance 1e-7. NaN when there are more than ``max_tables`` partial tables.
    """
    from scipy.special import gammaln

    table = np.asarray(table, dtype=int)
    k, n = table[:, 0], table.sum(axis=1)
    K, N = int(k.sum()), int(n.sum())

    def lbinom(a, b):
        return gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)

    sums, logp = np.array([0]), np.array([0.0])
    remaining = np.concatenate([np.cumsum(n[::-1])[::-1][1:], [0]])
    for ni, rest in zip(n, remaining, strict=True):
        ks = np.arange(ni + 1)
        sums = (sums[:, None] + ks[None, :]).ravel()
        logp = (logp[:, None] + lbinom(ni, ks)[None, :]).ravel()
        keep = (sums <= K) & (sums + rest >= K)
        sums, logp = sums[keep], logp[keep]
        if len(sums) > max_tables:
            return float("nan")
    logp = logp - lbinom(N, K)
    obs = float(np.sum(lbinom(n, k)) - lbinom(N, K))
    p = np.exp(logp)
    return float(min(1.0, p[logp <= obs + np.log1p(1e-7)].sum()))


def responders(data: pd.DataFrame, change: str, group: str, mdc: float, *, direction: str = ">",
               ref=None, confidence: float = 0.95, test: str = "auto") -> ResponderResult:
    """Share of each arm whose change exceeds the MDC, with Wilson CIs and arm comparisons.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per participant (rows with a missing change are dropped).
    change : str
        Column with the change from baseline.
    group : str
        Arm column.
    mdc : float
        Minimal detectable change (e.g. MDC95 from :func:`hipstats.questions.reliability.reliability_summary`); must be > 0.
    direction : {">", "<"}
        ``">"``: responders improve by more than ``mdc`` (change > mdc); ``"<"``: change < -mdc
        (the test-positive rule, as everywhere in hipstats; the old +1 / -1 are read as ">" / "<"
        with a deprecation warning).
    ref : optional
        Reference arm for the risk differences; default the first arm in order of appearance.
    confidence : float, default 0.95
    test : {"auto", "chi2", "fisher"}
        Overall test: Pearson chi-square (no continuity correction), Fisher's exact test
        (exact enumeration of the arms x 2 table, as R's ``fisher.test``), or ``auto`` =
        Fisher when any expected count is below 5.

    Returns
    -------
    ResponderResult
        ``.by_arm``, ``.vs_ref``, ``.test``, ``.summary()``, ``.plot()``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"arm": ["control"] * 4 + ["loading"] * 4,
    ...                    "change": [0.0, 5.0, 1.0, -1.0, 6.0, 7.0, 2.0, 8.0]})
    >>> responders(df, "change", "arm", mdc=4.0).by_arm["n_responders"].tolist()
    [1, 3]
    """
    direction = resolve_direction(direction, where="responders")
    if not (np.isfinite(mdc) and mdc > 0):
        raise AnalysisError(f"mdc must be a positive number, got {mdc}")
    for col in (change, group):
        if col not in data.columns:
            raise AnalysisError(f"column {col!r} not found in data (columns: {list(data.columns)})")
    d = data.dropna(subset=[change, group])
    arms = list(pd.unique(d[group]))
    if hasattr(d[group], "cat"):
        arms = [a for a in d[group].cat.categories if a in set(arms)]
    if len(arms) < 1 or d.empty:
        raise AnalysisError(f"no participants with a non-missing {change!r}")
    ref = arms[0] if ref is None else ref
    if ref not in arms:
        raise AnalysisError(f"ref={ref!r} is not an arm in {group!r} ({arms})")
    x = d[change].to_numpy(float)
    resp = x > mdc if direction == ">" else x < -mdc
    n = np.array([(d[group] == a).sum() for a in arms])
    k = np.array([resp[(d[group] == a).to_numpy()].sum() for a in arms])
    lo, hi = wilson_ci(k, n, confidence)
    by_arm = pd.DataFrame({"arm": arms, "n_participants": n, "n_responders": k, "proportion": k / n,
                           "proportion_ci_low": lo, "proportion_ci_high": hi})

    table = np.column_stack([k, n - k])
    if len(arms) < 2:
        overall = {"test": "none", "statistic": np.nan, "df": np.nan, "p_value": np.nan}
    else:
        expected = np.outer(table.sum(1), table.sum(0)) / table.sum()
        use = test
        if test == "auto":
            use = "fisher" if (expected < 5).any() else "chi2"
        if use == "chi2":
            if (table.sum(0) == 0).any():
                overall = {"test": "chi2", "statistic": 0.0, "df": len(arms) - 1, "p_value": 1.0}
            else:
                chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
                overall = {"test": "chi2", "statistic": float(chi2), "df": int(dof), "p_value": float(p)}
        elif use == "fisher":
            overall = {"test": "fisher", "statistic": np.nan, "df": np.nan, "p_value": _fisher(table)}
        else:
            raise AnalysisError(f"test must be 'auto', 'chi2' or 'fisher', got {test!r}")

    rows = []
    i0 = arms.index(ref)
    for i, a in enumerate(arms):
        if i == i0:
            continue
        rd, rlo, rhi = newcombe_diff_ci(k[i], n[i], k[i0], n[i0], confidence)
        rows.append({"arm": a, "ref": ref, "risk_difference": rd, "risk_difference_ci_low": rlo,
                     "risk_difference_ci_high": rhi, "risk_difference_p_value": _fisher(table[[i, i0]])})
    vs_ref = pd.DataFrame(rows, columns=["arm", "ref", "risk_difference", "risk_difference_ci_low",
                                         "risk_difference_ci_high", "risk_difference_p_value"])
    return ResponderResult(by_arm, vs_ref, overall, float(mdc), direction, confidence, group)
