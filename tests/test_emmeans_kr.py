"""emmeans / emtrends / contrasts on hipstats mixed models with Kenward-Roger and
Satterthwaite df, and emmeans' default adjustments (tukey, dunnettx, mvt), against R's emmeans
1.8.4 with pbkrtest 0.5.2 / lmerTest 3.1-3 (tests/fixtures/lmm/make_fixtures_formula.R).

Tolerances: means, SEs and df 2e-4 relative (our REML optimum on ChickWeight differs from
lme4's by 3e-8 in the log-likelihood, which moves SEs by ~1e-5); adjusted p-values 5e-4 relative
(tukey, dunnettx; they amplify the SE difference), 3e-3 for mvt (Monte-Carlo integration on
both sides).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hipstats.errors import AnalysisError
from hipstats.models.emmeans import DEFAULT_ADJUST, contrasts, emmeans, emtrends
from hipstats.models.lmm import fit_lmm

FIX = Path(__file__).parent / "fixtures" / "lmm"
REF = json.loads((FIX / "reference_formula.json").read_text())


@pytest.fixture(scope="module")
def chick():
    d = pd.read_csv(FIX / "chickweight.csv.gz")
    d["Diet"] = d["Diet"].astype(str)
    return fit_lmm("weight ~ Time * Diet + (1 + Time | Chick)", d)


@pytest.fixture(scope="module")
def cake():
    d = pd.read_csv(FIX / "cake.csv.gz")
    d["temperature"] = pd.Categorical(d["temperature"], categories=sorted(d["temperature"].unique()))
    return fit_lmm("angle ~ recipe * temperature + (1 | recipe:replicate)", d)


def _cmp_means(frame, ref, ref_est):
    """Our ``estimate`` column against R's column ``ref_est`` (emmean, or <var>.trend)."""
    np.testing.assert_allclose(frame["estimate"], ref[ref_est], rtol=2e-4)
    np.testing.assert_allclose(frame["se"], ref["SE"], rtol=2e-4)
    np.testing.assert_allclose(frame["df"], ref["df"], rtol=2e-4)
    np.testing.assert_allclose(frame["ci_low"], ref["ci_low"], rtol=2e-4)
    np.testing.assert_allclose(frame["ci_high"], ref["ci_high"], rtol=2e-4)


@pytest.mark.parametrize("lmer_df,key", [("kenward-roger", "kr"), ("satterthwaite", "satterthwaite")])
def test_emmeans_df_methods_match_r(chick, lmer_df, key):
    e = emmeans(chick, "Diet", lmer_df=lmer_df)
    assert e.df_method == lmer_df
    _cmp_means(e.frame, pd.DataFrame(REF["chick_emmeans"][key]), "emmean")
    if key == "kr":
        np.testing.assert_allclose(e.L @ e.fit.vcov @ e.L.T, REF["chick_emmeans"]["kr_vcov"],
                                   rtol=2e-4, atol=1e-9)


def test_emtrends_kenward_roger_matches_r(chick):
    t = emtrends(chick, "Diet", var="Time", lmer_df="kr")
    _cmp_means(t.frame, pd.DataFrame(REF["chick_emmeans"]["trend_kr"]), "Time.trend")


@pytest.mark.parametrize("key,lmer_df,method,adjust,rtol", [
    ("pairwise_kr", "kenward-roger", "pairwise", "tukey", 5e-4),
    ("trt_vs_ctrl_kr", "kenward-roger", "trt.vs.ctrl", "dunnettx", 5e-4),
    ("trt_vs_ctrl_sat", "satterthwaite", "trt.vs.ctrl", "dunnettx", 5e-4),
    ("pairwise_sat", "satterthwaite", "pairwise", "tukey", 5e-4),
    ("consec_sat", "satterthwaite", "consec", "mvt", 3e-3),
])
def test_contrast_defaults_and_df_match_emmeans(chick, key, lmer_df, method, adjust, rtol):
    c = contrasts(emmeans(chick, "Diet", lmer_df=lmer_df), method)   # emmeans' default adjust
    ref = pd.DataFrame(REF["chick_emmeans"][key])
    assert (c["adjust"] == adjust).all() and DEFAULT_ADJUST[method] == adjust
    assert list(c["contrast"]) == list(ref["contrast"])
    np.testing.assert_allclose(c["estimate"], ref["estimate"], rtol=2e-4)
    np.testing.assert_allclose(c["se"], ref["SE"], rtol=2e-4)
    np.testing.assert_allclose(c["df"], ref["df"], rtol=2e-4)
    np.testing.assert_allclose(c["statistic"], ref["t.ratio"], rtol=2e-4)
    np.testing.assert_allclose(c["p_adj"], ref["p.value"], rtol=rtol)


def test_trend_pairs_kenward_roger_match_emmeans(chick):
    c = contrasts(emtrends(chick, "Diet", var="Time", lmer_df="kr"), "pairwise")
    ref = pd.DataFrame(REF["chick_emmeans"]["trend_pairs_kr"])
    np.testing.assert_allclose(c["df"], ref["df"], rtol=2e-4)
    np.testing.assert_allclose(c["p_adj"], ref["p.value"], rtol=5e-4)


def test_cake_kenward_roger_means_and_dunnettx(cake):
    e = emmeans(cake, "recipe", lmer_df="kenward-roger")
    _cmp_means(e.frame, pd.DataFrame(REF["cake_emmeans"]["kr"]), "emmean")
    c = contrasts(e, "trt.vs.ctrl")
    ref = pd.DataFrame(REF["cake_emmeans"]["trt_vs_ctrl_kr"])
    np.testing.assert_allclose(c["p_adj"], ref["p.value"], rtol=5e-4)
    np.testing.assert_allclose(c["df"], ref["df"], rtol=2e-4)


def test_dunnettx_with_one_comparison_is_the_t_test(chick):
    e = emmeans(chick, "Diet", at={"Diet": ["1", "2"]})
    c = contrasts(e, "trt.vs.ctrl", adjust="dunnettx")
    np.testing.assert_allclose(c["p_adj"], c["p_value"], rtol=1e-12)


def test_lmer_df_errors(chick):
    with pytest.raises(AnalysisError, match="lmer_df"):
        emmeans(chick, "Diet", lmer_df="containment")
