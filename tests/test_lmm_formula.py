"""lme4 formula syntax and several grouping factors, against lme4 / lmerTest.

Reference values: tests/fixtures/lmm/make_fixtures_formula.R (lme4 1.1-31, lmerTest 3.1-3) on
data sets shipped with R: sleepstudy (uncorrelated terms, integer Subject), Penicillin
(crossed), Pastes (nested), Dyestuff2 (singular), cake, ChickWeight, an InstEval subset (three
crossed factors). Tolerances: log-likelihood 1e-5 absolute and never below lme4's optimum
(lme4 stops on its own convergence criterion), fixed effects 1e-5 relative, SEs and
variance components 1e-3 relative (theta near a flat optimum), Satterthwaite df 2e-3 relative
(both sides are numerical derivatives).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hipstats.errors import AnalysisError, SingularFitWarning
from hipstats.models.formula import parse_formula
from hipstats.models.lmm import fit_lmm, lrt

FIX = Path(__file__).parent / "fixtures" / "lmm"
REF = json.loads((FIX / "reference_formula.json").read_text())

LL_ATOL = 1e-5
FE_RTOL = 1e-5
SE_RTOL = 1e-3
VC_RTOL = 1e-3
DF_RTOL = 2e-3


def load(name):
    d = pd.read_csv(FIX / f"{name}.csv.gz")
    if name == "cake":
        d["temperature"] = pd.Categorical(d["temperature"], categories=sorted(d["temperature"].unique()))
    if name == "chickweight":
        d["Diet"] = d["Diet"].astype(str)          # a factor, as in R (Chick stays numeric)
    return d


CASES = {
    # fixture: (data, formula as a user writes it)
    "sleep_uncorrelated": ("sleepstudy_int", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"),
    "sleep_doublebar": ("sleepstudy_int", "Reaction ~ Days + (Days || Subject)"),
    "sleep_correlated": ("sleepstudy_int", "Reaction ~ Days + (Days | Subject)"),
    "penicillin": ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    "pastes": ("pastes", "strength ~ 1 + (1 | batch/cask)"),
    "pastes_colon": ("pastes", "strength ~ 1 + (1 | batch) + (1 | batch:cask)"),
    "dyestuff2": ("dyestuff2", "Yield ~ 1 + (1 | Batch)"),
    "cake": ("cake", "angle ~ recipe * temperature + (1 | recipe:replicate)"),
    "chick": ("chickweight", "weight ~ Time * Diet + (1 + Time | Chick)"),
    "insteval": ("insteval_subset", "y ~ service + (1 | s) + (1 | d) + (1 | dept)"),
}
_FITS: dict = {}


def fit(name, reml=True):
    key = (name, reml)
    if key not in _FITS:
        data, formula = CASES[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            _FITS[key] = fit_lmm(formula, load(data), reml=reml)
    return _FITS[key]


def r_name(term):
    """lme4 coefficient name -> patsy's (recipeB -> recipe[T.B], Time:Diet2 -> Time:Diet[T.2])."""
    if term == "(Intercept)":
        return "Intercept"
    parts = []
    for part in term.split(":"):
        m = re.fullmatch(r"(recipe|temperature|Diet)(.+)", part)
        parts.append(f"{m.group(1)}[T.{m.group(2)}]" if m else part)
    return ":".join(parts)


def ref_fixef(name, method):
    fe = pd.DataFrame(REF[name][method]["fixef"])
    fe.index = [r_name(t) for t in fe.pop("term")]
    return fe


MODELS = [(n, m) for n in CASES for m in ("reml", "ml")]


@pytest.mark.parametrize("name,method", MODELS)
def test_loglik_theta_and_fixed_effects_match_lme4(name, method):
    res = fit(name, method == "reml")
    r = REF[name][method]
    assert res.llf >= r["loglik"] - LL_ATOL               # never a worse optimum than lme4
    # lme4 reports a failed gradient check on ChickWeight ML (its fit stops early there)
    tol = 1e-3 if r["messages"] else LL_ATOL
    np.testing.assert_allclose(res.llf, r["loglik"], atol=tol)
    assert res.n_rows == r["nobs"]
    assert res.singular == r["singular"]
    assert res.converged
    np.testing.assert_allclose(res.theta, np.atleast_1d(r["theta"]), rtol=VC_RTOL, atol=2e-4)
    ref = ref_fixef(name, method)
    assert sorted(res.fe_params.index) == sorted(ref.index)   # patsy orders terms its own way
    ref = ref.loc[res.fe_params.index]
    np.testing.assert_allclose(res.fe_params, ref["estimate"], rtol=FE_RTOL if not r["messages"]
                               else 1e-3, atol=1e-6)
    np.testing.assert_allclose(res.bse, ref["se"], rtol=SE_RTOL)
    np.testing.assert_allclose(res.sigma, r["sigma"], rtol=VC_RTOL)
    np.testing.assert_allclose([res.aic, res.bic], [r["aic"], r["bic"]], atol=2e-3 if r["messages"]
                               else 2 * LL_ATOL)
    assert res.ngrps == r["ngrps"]                        # lme4's ngrps(), names and order
    assert list(res.ngrps) == list(r["ngrps"])


@pytest.mark.parametrize("name,method", MODELS)
def test_variance_components_match_lme4(name, method):
    res = fit(name, method == "reml")
    ref = pd.DataFrame(REF[name][method]["varcorr"])
    mine = res.varcomp
    assert list(mine["group"]) == list(ref["grp"])     # lme4's order and names (g, g.1)
    np.testing.assert_allclose(mine["sdcor"], ref["sdcor"], rtol=VC_RTOL, atol=1e-4)


@pytest.mark.parametrize("name", [n for n in CASES if n != "dyestuff2"])
def test_satterthwaite_df_match_lmertest(name):
    res = fit(name)
    ref = ref_fixef(name, "reml").loc[res.fe_params.index]
    np.testing.assert_allclose(res.summary()["df"], ref["df"], rtol=DF_RTOL)


def test_issue_case_integer_subject_uncorrelated_is_lme4s_model():
    """The call that used to fit a different model (Python's bitwise or): -871.83."""
    d = load("sleepstudy_int")
    assert pd.api.types.is_integer_dtype(d["Subject"])
    res = fit_lmm("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", d)
    np.testing.assert_allclose(res.llf, -871.834646790741, atol=LL_ATOL)
    # and the old keyword form refuses a '|' instead of reading it as Python
    with pytest.raises(AnalysisError, match=r"contains '\|'.*formula instead"):
        fit_lmm("Reaction ~ Days", d, participant="Subject",
                re_formula="(1 | Subject) + (0 + Days | Subject)")


def test_double_bar_equals_written_out_terms():
    a, b = fit("sleep_doublebar"), fit("sleep_uncorrelated")
    np.testing.assert_allclose(a.llf, b.llf, atol=1e-9)
    assert a.re_formula == "(1 | Subject) + (0 + Days | Subject)"


def test_nested_slash_equals_colon_and_lme4_names():
    a, b = fit("pastes"), fit("pastes_colon")
    np.testing.assert_allclose(a.llf, b.llf, atol=1e-9)
    assert list(a.varcomp["group"]) == ["cask:batch", "batch", "Residual"]
    assert list(b.varcomp["group"]) == ["batch:cask", "batch", "Residual"]


def test_old_keyword_form_maps_exactly_onto_the_formula():
    d = load("pastes")
    new = fit_lmm("strength ~ 1 + (1 | batch) + (1 | batch:cask)", d)
    old = fit_lmm("strength ~ 1", d, participant="batch", nested="cask")
    assert old.formula == "strength ~ 1 + (1 | batch) + (1 | batch:cask)"
    np.testing.assert_allclose(old.llf, new.llf, atol=1e-12)
    with pytest.raises(AnalysisError, match="several nested factors"):
        fit_lmm("strength ~ 1", d, participant="batch", nested=["cask", "sample"])
    with pytest.raises(AnalysisError, match="already has random-effects terms"):
        fit_lmm("strength ~ 1 + (1 | batch)", d, participant="batch")
    with pytest.raises(AnalysisError, match="need participant="):
        fit_lmm("strength ~ 1 + (1 | batch)", d, re_formula="1 + x")


def test_two_engines_agree_where_both_apply():
    """The one-factor engine (per-participant sufficient statistics) and the blocked engine
    give the same optimum on models both can fit (second method)."""
    from hipstats.models._lmm_blocked import BlockedProblem

    for name in ("sleep_correlated", "pastes", "chick"):
        res = fit(name)
        sp = res._spec
        assert sp.kind == "one"
        blocked = BlockedProblem(sp.X, sp.y, [sp.terms[i] for i in sp.order])
        np.testing.assert_allclose(blocked.deviance(res.theta), res.deviance, rtol=1e-10)
        np.testing.assert_allclose(blocked.unscaled_cov_beta(res.theta), res._unsc, rtol=1e-8)


def test_sparse_schur_path_equals_dense(monkeypatch):
    """Past DENSE_MAX the Schur complement is factorised by sparse LU: same deviance."""
    from hipstats.models import _lmm_blocked

    res = fit("insteval")
    sp = res._spec
    terms = [sp.terms[i] for i in sp.order]
    dense = _lmm_blocked.BlockedProblem(sp.X, sp.y, terms)
    monkeypatch.setattr(_lmm_blocked, "DENSE_MAX", 10)
    sparse = _lmm_blocked.BlockedProblem(sp.X, sp.y, terms)
    assert dense.dense and not sparse.dense
    for th in (res.theta, res.theta + 0.1, np.array([1.0, 0.5, 0.2])):
        for reml in (True, False):
            np.testing.assert_allclose(sparse.deviance(th, reml), dense.deviance(th, reml),
                                       rtol=1e-11)


def test_blups_match_dense_henderson_solution():
    """BLUPs of a crossed model equal the dense mixed-model-equations solution."""
    res = fit("penicillin")
    re_ = res.ranef()
    d = res.data
    sp = res._spec
    Z = np.column_stack([pd.get_dummies(d[c]).to_numpy(float) for c in ("plate", "sample")])
    G = np.diag(np.r_[np.full(d["plate"].nunique(), res.cov_re["plate"].iloc[0, 0]),
                      np.full(d["sample"].nunique(), res.cov_re["sample"].iloc[0, 0])])
    V = Z @ G @ Z.T + res.sigma2 * np.eye(len(d))
    b = G @ Z.T @ np.linalg.solve(V, sp.y - sp.X @ res.fe_params.to_numpy())
    mine = np.r_[re_["plate"]["Intercept"], re_["sample"]["Intercept"]]
    np.testing.assert_allclose(mine, b, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.predict().to_numpy(), sp.X @ res.fe_params.to_numpy() + Z @ b)


def test_keyword_and_backtick_column_names():
    d = load("pastes").rename(columns={"strength": "yield", "batch": "class", "cask": "cask id"})
    res = fit_lmm("yield ~ 1 + (1 | class/`cask id`)", d)
    np.testing.assert_allclose(res.llf, REF["pastes"]["reml"]["loglik"], atol=LL_ATOL)
    assert list(res.varcomp["group"]) == ["cask id:class", "class", "Residual"]


def test_string_and_numeric_grouping_columns_give_the_same_fit():
    d = load("sleepstudy_int")
    a = fit_lmm("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", d)
    b = fit_lmm("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
                d.assign(Subject="S" + d["Subject"].astype(str)))
    np.testing.assert_allclose(a.llf, b.llf, atol=1e-10)


@pytest.mark.parametrize("formula,match", [
    ("Reaction ~ Days + (1 | Subject)*Days", "cannot interpret the '|'"),
    ("Reaction ~ Days | Subject", "cannot interpret the '|'"),
    ("Reaction ~ I(Days | 1) + (1 | Subject)", "compute the column first"),
    ("Reaction ~ Days + (1 | Subject | Days)", "cannot interpret"),
    ("Reaction ~ Days + ( | Subject)", "needs an expression before"),
    ("Reaction ~ Days + (1 | Subject + Days)", "grouping factor"),
    ("Reaction ~ Days + (1 | nope)", "grouping column 'nope'"),
    ("Reaction ~ Days", "no random-effects term"),
    ("~ Days + (1 | Subject)", "no response"),
])
def test_uninterpretable_formulas_are_errors_naming_the_fix(formula, match):
    with pytest.raises(AnalysisError, match=match):
        fit_lmm(formula, load("sleepstudy_int"))


def test_parse_formula_structure():
    f = parse_formula("ir ~ week * arm + (1 + week | participant_id) + (1 | site)")
    assert f.fixed == "week * arm"
    assert [(t.expr, t.group) for t in f.random] == [("1 + week", ("participant_id",)),
                                                    ("1", ("site",))]
    f = parse_formula("y ~ x + (1 | a/b/c)")
    assert [t.group_name for t in f.random] == ["a", "b:a", "c:b:a"]
    # a '|' inside a string or backticks is not structure
    f = parse_formula("y ~ C(arm, Treatment('a|b')) + (1 | `g|h`)")
    assert f.random[0].group == ("g|h",) and "a|b" in f.fixed


def test_lrt_with_two_crossed_factors_matches_lme4_anova():
    d = load("penicillin")
    m0 = fit_lmm("diameter ~ 1 + (1 | plate)", d)
    m1 = fit_lmm("diameter ~ 1 + (1 | plate) + (1 | sample)", d)
    out = lrt(m0, m1)
    ref = pd.DataFrame(REF["penicillin_lrt"])
    np.testing.assert_allclose(out["loglik"], ref["loglik"], atol=LL_ATOL)
    np.testing.assert_allclose(out["npar"], ref["npar"])
    np.testing.assert_allclose(out.loc["model_big", "statistic"], ref["chisq"].iloc[1], rtol=1e-5)
    np.testing.assert_allclose(out.loc["model_big", "p_value"], ref["p"].iloc[1], rtol=1e-4)


def test_singular_crossed_fit_is_flagged():
    res = fit("insteval")
    assert res.singular and res.theta[2] < 1e-4           # dept variance on the boundary
    with pytest.warns(SingularFitWarning):
        fit_lmm(CASES["insteval"][1], load("insteval_subset"))
