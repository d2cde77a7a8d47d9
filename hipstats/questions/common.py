"""Pieces the study's question modules share: the base of their result objects (text and
notebook representations) and small helpers that record why an estimate is missing and fit
the adjusted OLS of H4 and H5.

Examples
--------
>>> from hipstats.questions.common import note_rows
>>> note_rows({"dose_response": "fewer than 10 participants"})
['not estimable: dose_response: fewer than 10 participants']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from hipstats.errors import AnalysisError
from hipstats.results import Result  # noqa: F401 - the one result base, re-exported for the question modules


# ----------------------------------------------------------------------------------------
# Small shared helpers (used by the question modules)
# ----------------------------------------------------------------------------------------
def estimate_or_note(notes: dict[str, str], name: str, fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``, or None with the reason in ``notes[name]`` when the data
    cannot support it (:class:`~hipstats.errors.AnalysisError`)."""
    try:
        return fn(*args, **kwargs)
    except AnalysisError as err:
        notes[name] = str(err)
        return None


def note_rows(notes: Mapping[str, str]) -> list[str]:
    """``"not estimable: <component>: <reason>"`` per entry of ``notes``."""
    return [f"not estimable: {k}: {v}" for k, v in notes.items()]


# ----------------------------------------------------------------------------------------
# Dose-response
# ----------------------------------------------------------------------------------------
def ols_table(df: pd.DataFrame, formula: str, alpha: float, rename: dict[str, str]):
    """OLS of ``formula`` on ``df`` (statsmodels) as a tidy coefficient table at level
    ``1 - alpha``, with the terms renamed by ``rename``."""
    import statsmodels.formula.api as smf  # noqa: PLC0415

    fit = smf.ols(formula, df).fit()
    ci = fit.conf_int(alpha)
    out = pd.DataFrame({"term": [rename.get(t, t) for t in fit.params.index],
                        "estimate": fit.params.values, "se": fit.bse.values,
                        "statistic": fit.tvalues.values, "p_value": fit.pvalues.values,
                        "ci_low": ci[0].values, "ci_high": ci[1].values})
    out.attrs.update({"n_rows": int(fit.nobs), "df_resid": float(fit.df_resid),
                      "r_squared": float(fit.rsquared), "formula": formula})
    return out


def adjusted_ols(df: pd.DataFrame, column: str, per: float, adjust: Sequence[str], alpha: float,
                  label: str, cohort) -> pd.DataFrame:
    """OLS change ~ column/per + adjusters (the cohort's reference arm first), data in ``attrs``.

    Checks that the exposure varies within arm when arm is adjusted for. The fitted frame
    (without the scaled helper column) is kept in ``attrs["data"]``.
    """
    x = "_exposure"
    data = df.assign(**{x: df[column] / per})
    reference = getattr(getattr(cohort, "settings", None), "reference", None)
    terms = [x]
    if "arm" in adjust:
        arms = data["arm"].dropna().unique()
        if len(arms) > 1:
            ref = reference if reference in arms else sorted(arms)[0]
            terms.append(f"C(arm, Treatment({ref!r}))")
        if not (data.groupby("arm")[x].std(ddof=0).fillna(0) > 0).any():
            raise AnalysisError(f"{label} does not vary within any arm; its effect cannot be "
                                "separated from the arm effect")
    if "baseline" in adjust:
        terms.append("baseline")
    if len(data) < len(terms) + 3:
        raise AnalysisError(f"{len(data)} participants are too few for {len(terms) + 1} "
                            "coefficients")
    out = ols_table(data, "change ~ " + " + ".join(terms), alpha, {x: label})
    out.attrs["n_participants"] = out.attrs["n_rows"]  # one row per participant
    out.attrs["data"] = df
    return out
