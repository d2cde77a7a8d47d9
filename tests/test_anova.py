"""ANOVA tables (types II and III, Satterthwaite and Kenward-Roger df) and Kenward-Roger
summaries against lmerTest 3.1-3 / pbkrtest 0.5.2 (tests/fixtures/lmm/make_fixtures_formula.R).

Tolerances: F statistics and log p-values 1e-4 relative, denominator df 2e-4 relative (lmerTest
and we differentiate numerically; on ChickWeight our REML optimum is 3e-8 better than lme4's,
which moves F by 2e-5), Kenward-Roger SEs 1e-5 relative (ChickWeight 3e-5).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hipstats.errors import AnalysisError
from hipstats.models.anova import term_contrasts
from hipstats.models.lmm import fit_lmm

FIX = Path(__file__).parent / "fixtures" / "lmm"
REF = json.loads((FIX / "reference_formula.json").read_text())


def load(name):
    d = pd.read_csv(FIX / f"{name}.csv.gz")
    if name == "cake":
        d["temperature"] = pd.Categorical(d["temperature"], categories=sorted(d["temperature"].unique()))
    if name == "chickweight":
        d["Diet"] = d["Diet"].astype(str)
    return d


MODELS = {
    "cake": ("cake", "angle ~ recipe * temperature + (1 | recipe:replicate)"),
    "chick": ("chickweight", "weight ~ Time * Diet + (1 + Time | Chick)"),
    "sleep": ("sleepstudy_int", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"),
}
_FITS: dict = {}


def fit(name):
    if name not in _FITS:
        data, formula = MODELS[name]
        _FITS[name] = fit_lmm(formula, load(data))
    return _FITS[name]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("typ", [2, 3])
@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger"])
def test_anova_matches_lmertest(name, typ, ddf):
    a = fit(name).anova(type=typ, ddf=ddf).set_index("term")
    ref = pd.DataFrame(REF[f"{name}_anova"][f"type{typ}_{ddf}"]).set_index("term")
    assert sorted(a.index) == sorted(ref.index)
    a = a.loc[ref.index]
    np.testing.assert_array_equal(a["num_df"], ref["num_df"])
    np.testing.assert_allclose(a["statistic"], ref["statistic"], rtol=1e-4)
    np.testing.assert_allclose(a["den_df"], ref["den_df"], rtol=2e-4)
    np.testing.assert_allclose(np.log(a["p_value"]), np.log(ref["p_value"]), rtol=1e-4)
    assert list(fit(name).anova(type=typ, ddf=ddf).columns) == [
        "term", "statistic", "num_df", "den_df", "p_value", "type", "ddf"]


@pytest.mark.parametrize("name", list(MODELS))
def test_kenward_roger_summary_matches_pbkrtest(name):
    res = fit(name)
    s = res.summary(ddf="kenward-roger")
    ref = pd.DataFrame(REF[f"{name}_kr"]["fixef"])
    ref.index = [t.replace("(Intercept)", "Intercept") for t in ref.pop("term")]
    ref.index = [_patsy(t) for t in ref.index]
    ref = ref.loc[s.index]
    np.testing.assert_allclose(s["se"], ref["se"], rtol=3e-5)
    np.testing.assert_allclose(s["df"], ref["df"], rtol=1e-4)
    # the adjusted covariance itself (pbkrtest::vcovAdj)
    order = [list(s.index).index(t) for t in s.index]
    kr = res.kenward_roger()
    vref = np.array(REF[f"{name}_kr"]["vcov_adj"])
    names_r = [_patsy(t.replace("(Intercept)", "Intercept"))
               for t in pd.DataFrame(REF[f"{name}_kr"]["fixef"])["term"]]
    idx = [names_r.index(t) for t in s.index]
    np.testing.assert_allclose(kr.vcov_adj[np.ix_(order, order)], vref[np.ix_(idx, idx)],
                               rtol=1e-4, atol=1e-8 * np.abs(vref).max())
    # and the unadjusted Phi is the model's covariance of beta
    np.testing.assert_allclose(kr.Phi, res.cov_fe.to_numpy(), rtol=1e-6)


def _patsy(term):
    import re

    parts = []
    for part in term.split(":"):
        m = re.fullmatch(r"(recipe|temperature|Diet)(.+)", part)
        parts.append(f"{m.group(1)}[T.{m.group(2)}]" if m else part)
    return ":".join(parts)


def test_type3_contrasts_are_lmertests_for_a_balanced_factorial():
    """cake is balanced: type II and III agree, and each type III contrast of a main effect
    averages over the other factor's levels (rows of L sum to the cell-mean contrast)."""
    res = fit("cake")
    L3, L2 = term_contrasts(res, 3), term_contrasts(res, 2)
    a3, a2 = res.anova(3), res.anova(2)
    np.testing.assert_allclose(a3["statistic"], a2["statistic"], rtol=1e-6)
    assert {k: v.shape for k, v in L3.items()} == {"recipe": (2, 18), "temperature": (5, 18),
                                                   "recipe:temperature": (10, 18)}
    assert set(L2) == set(L3)


def test_errors():
    res = fit("sleep")
    with pytest.raises(AnalysisError, match="type must be 3 or 2"):
        res.anova(type=1)
    with pytest.raises(AnalysisError, match="ddf must be"):
        res.anova(ddf="lme4")
    ml = fit_lmm(MODELS["sleep"][1], load("sleepstudy_int"), reml=False)
    with pytest.raises(AnalysisError, match="REML"):
        ml.anova(ddf="kenward-roger")
    d = load("cake")
    sumc = fit_lmm("angle ~ C(recipe, Sum) * temperature + (1 | recipe:replicate)", d)
    with pytest.raises(AnalysisError, match="treatment coding"):
        sumc.anova(type=3)
    # type II does not depend on the coding
    np.testing.assert_allclose(sumc.anova(type=2)["statistic"], fit("cake").anova(type=2)["statistic"],
                               rtol=1e-6)


def test_kenward_roger_refuses_huge_crossed_blocks(monkeypatch):
    from hipstats.models import anova as anova_mod

    monkeypatch.setattr(anova_mod, "KR_MAX_BLOCK", 50)
    d = load("penicillin")
    res = fit_lmm("diameter ~ 1 + (1 | plate) + (1 | sample)", d)
    with pytest.raises(AnalysisError, match="satterthwaite"):
        res.summary(ddf="kenward-roger")
