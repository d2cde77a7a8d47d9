"""Tests of hipstats.stats.accuracy, hipstats.stats.roc and hipstats.questions.screening (H3: does an ASLR below a cutoff flag limited hip IR?).

References used
---------------
* R pROC 1.18.0 fixtures (tests/fixtures/screening/make_fixtures.R): AUC, DeLong variance and CI,
  coords (all and Youden-best), paired DeLong roc.test, on pROC's aSAH data and on a simulated
  data set with many ties. Tolerance 1e-6 absolute on AUC, variance, CIs, z and p; 1e-9 on the
  curve coordinates (they are ratios of counts).
* Published 2x2 example: Altman & Bland (1994) BMJ 308:1552 liver scan (TP 231, FP 32, FN 27,
  TN 54), estimates to the 3 decimals printed; statsmodels' proportion_confint (Wilson,
  Clopper-Pearson) and confint_proportions_2indep(method="log", compare="ratio") (Katz log
  interval of a ratio of two independent proportions = Simel's LR interval) to 1e-10.
* Simulation truth: binormal model with a closed-form AUC; the DeLong interval covers it at about
  the nominal rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from hipstats.errors import AnalysisError
from hipstats.questions import screening as scq
from hipstats.stats import accuracy as accm
from hipstats.stats import roc as rocm

FIX = Path(__file__).parent / "fixtures" / "screening"

# pROC names directions by group order; hipstats by the test-positive rule (module docstring)
TO_HS = {"auto": "auto", "<": ">", ">": "<"}


@pytest.fixture(scope="module")
def datasets():
    asah = pd.read_csv(FIX / "asah.csv").rename(columns={"poor": "case"})
    ties = pd.read_csv(FIX / "ties.csv")
    return {"asah": asah, "ties": ties}


def _read(name):
    return pd.read_csv(FIX / name, keep_default_na=False, na_values=[""])


# ------------------------------------------------------------------------------------------ ROC
@pytest.mark.parametrize("row", _read("roc_summary.csv").to_dict("records"),
                         ids=lambda r: f"{r['dataset']}-{r['score']}-{r['direction_input']}-{r['conf_level']}")
def test_auc_and_delong_ci_match_proc(datasets, row):
    df = datasets[row["dataset"]]
    r = rocm.roc(df, row["score"], "case", direction=TO_HS[row["direction_input"]],
                confidence=row["conf_level"])
    assert r.proc_direction == row["direction"]
    assert (r.n_cases, r.n_controls) == (row["n_cases"], row["n_controls"])
    assert r.auc == pytest.approx(row["auc"], abs=1e-6)
    assert r.se**2 == pytest.approx(row["var_delong"], abs=1e-6)
    assert r.ci_low == pytest.approx(row["ci_low"], abs=1e-6)
    assert r.ci_high == pytest.approx(row["ci_high"], abs=1e-6)


@pytest.mark.parametrize("key", sorted({(r["dataset"], r["score"], r["direction_input"])
                                        for r in _read("roc_coords.csv").to_dict("records")}))
def test_roc_curve_matches_proc_coords(datasets, key):
    dataset, score, dir_in = key
    ref = _read("roc_coords.csv")
    ref = ref[(ref.dataset == dataset) & (ref.score == score) & (ref.direction_input == dir_in)]
    ref = ref.astype({"threshold": float}).sort_values(["threshold", "sensitivity"]).reset_index(drop=True)
    curve = rocm.roc(datasets[dataset], score, "case", direction=TO_HS[dir_in]).curve
    curve = curve.sort_values(["threshold", "sensitivity"]).reset_index(drop=True)
    assert len(curve) == len(ref)
    np.testing.assert_allclose(curve["threshold"], ref["threshold"], rtol=1e-12)
    np.testing.assert_allclose(curve["sensitivity"], ref["sensitivity"], atol=1e-9)
    np.testing.assert_allclose(curve["specificity"], ref["specificity"], atol=1e-9)


@pytest.mark.parametrize("key", sorted({(r["dataset"], r["score"], r["direction_input"])
                                        for r in _read("youden.csv").to_dict("records")}))
def test_youden_matches_proc_coords_best(datasets, key):
    dataset, score, dir_in = key
    ref = _read("youden.csv")
    ref = ref[(ref.dataset == dataset) & (ref.score == score) & (ref.direction_input == dir_in)]
    res = rocm.youden_cutoff(datasets[dataset], score, "case", direction=TO_HS[dir_in], n_boot=0)
    ties = res.attrs["ties"].sort_values("threshold").reset_index(drop=True)
    ref = ref.sort_values("threshold").reset_index(drop=True)
    np.testing.assert_allclose(ties["threshold"], ref["threshold"], rtol=1e-12)
    np.testing.assert_allclose(ties["sensitivity"], ref["sensitivity"], atol=1e-9)
    np.testing.assert_allclose(ties["specificity"], ref["specificity"], atol=1e-9)
    np.testing.assert_allclose(ties["youden_j"] + 1, ref["youden"], atol=1e-9)  # pROC: Se + Sp
    # the reported cutoff is the tie with the highest sensitivity
    assert res.loc["cutoff", "estimate"] == ties.loc[ties["sensitivity"].idxmax(), "threshold"]


@pytest.mark.parametrize("row", _read("roc_test.csv").to_dict("records"),
                         ids=lambda r: f"{r['dataset']}-{r['score1']}-{r['score2']}")
def test_paired_delong_test_matches_proc(datasets, row):
    res = rocm.roc_test(datasets[row["dataset"]], row["score1"], row["score2"], "case",
                       confidence=row["conf_level"]).iloc[0]
    assert (res.direction1, res.direction2) == (TO_HS[row["direction1"]], TO_HS[row["direction2"]])
    for col, ours in (("auc1", "auc1"), ("auc2", "auc2"), ("z", "statistic"), ("p_value", "p_value"),
                      ("ci_low", "ci_low"), ("ci_high", "ci_high")):
        assert res[ours] == pytest.approx(row[col], abs=1e-6), col


def test_bootstrap_band_agrees_with_proc_ci_se(datasets):
    # Both are Monte Carlo (10,000 stratified replicates each); sensitivities move in steps of
    # 1/41 = 0.024 here, so allow two steps.
    ref = _read("ci_se.csv")
    r = rocm.roc(datasets["asah"], "s100b", "case")
    band = r.ci_band(ref["specificity"].to_numpy(), n_boot=10_000, seed=3)
    for col in ("sensitivity_ci_low", "sensitivity_median", "sensitivity_ci_high"):
        old = {"sensitivity_ci_low": "se_low", "sensitivity_median": "se_median", "sensitivity_ci_high": "se_high"}[col]
        np.testing.assert_allclose(band[col], ref[old], atol=0.05, err_msg=col)


def test_auc_is_mann_whitney_probability():
    # closed form: AUC = U / (m n) with ties counted 1/2 (scipy's Mann-Whitney U)
    rng = np.random.default_rng(7)
    y = rng.random(120) < 0.4
    x = np.round(rng.normal(y * 0.8, 1), 1)
    r = rocm.roc(None, x, y, direction=">")
    u = stats.mannwhitneyu(x[y], x[~y]).statistic
    assert r.auc == pytest.approx(u / (y.sum() * (~y).sum()), abs=1e-12)


def test_roc_test_identical_scores_gives_zero():
    rng = np.random.default_rng(2)
    y = rng.random(60) < 0.5
    df = pd.DataFrame({"a": rng.normal(y * 1.0), "y": y})
    df["b"] = df["a"]
    res = rocm.roc_test(df, "a", "b", "y").iloc[0]
    assert res.statistic == 0 and res.estimate == 0 and res.p_value == 1


def _binormal(rng, n_rep, m, n, delta):
    """n_rep data sets of m cases ~ N(delta, 1) and n controls ~ N(0, 1); true AUC Phi(delta/sqrt2)."""
    return rng.normal(delta, 1, size=(n_rep, m)), rng.normal(0, 1, size=(n_rep, n))


def test_delong_ci_covers_true_auc_at_nominal_rate():
    # 2000 binormal data sets (m = 40 cases, n = 80 controls, true AUC = Phi(1/sqrt 2) = 0.760),
    # all placements at once. Coverage of the 95% interval: Monte Carlo SE 0.005; DeLong is a
    # little liberal at this size, so accept 0.92 to 0.97.
    rng = np.random.default_rng(11)
    delta, reps = 1.0, 2000
    cases, controls = _binormal(rng, reps, 40, 80, delta)
    auc, v10, v01 = rocm._delong_placements(cases, controls)
    var = v10.var(axis=1, ddof=1) / 40 + v01.var(axis=1, ddof=1) / 80
    true = stats.norm.cdf(delta / np.sqrt(2))
    z = stats.norm.ppf(0.975)
    cover = np.mean((auc - z * np.sqrt(var) <= true) & (true <= auc + z * np.sqrt(var)))
    assert 0.92 <= cover <= 0.97
    # and the vectorised placements agree with the public function on one replicate
    x = np.concatenate([cases[0], controls[0]])
    y = np.r_[np.ones(40, bool), np.zeros(80, bool)]
    r = rocm.roc(None, x, y, direction=">")
    assert r.auc == pytest.approx(auc[0], abs=1e-12)
    assert r.se == pytest.approx(np.sqrt(var[0]), abs=1e-12)


# ------------------------------------------------------------------------------ 2x2 accuracy
def _two_by_two(tp, fp, fn, tn):
    y = np.r_[np.ones(tp + fn, bool), np.zeros(fp + tn, bool)]
    x = np.r_[np.zeros(tp), np.ones(fn), np.zeros(fp), np.ones(tn)]  # 0 = positive test
    return pd.DataFrame({"score": x, "cond": y})


def test_diagnostic_accuracy_published_liver_scan():
    # Altman & Bland 1994: sensitivity 0.895, specificity 0.628, PPV 0.878, NPV 0.667, prev 0.75
    df = _two_by_two(231, 32, 27, 54)
    tab = accm.diagnostic_accuracy(df, "score", "cond", cutoff=0.5, direction="<")
    assert tab.loc[["tp", "fp", "fn", "tn"], "estimate"].tolist() == [231, 32, 27, 54]
    assert tab.loc["sensitivity", "estimate"] == pytest.approx(0.895, abs=5e-4)
    assert tab.loc["specificity", "estimate"] == pytest.approx(0.628, abs=5e-4)
    assert tab.loc["ppv", "estimate"] == pytest.approx(0.878, abs=5e-4)
    assert tab.loc["npv", "estimate"] == pytest.approx(0.667, abs=5e-4)
    assert tab.loc["prevalence", "estimate"] == pytest.approx(0.75, abs=5e-3)
    assert tab.loc["lr_positive", "estimate"] == pytest.approx((231 / 258) / (32 / 86), rel=1e-12)


@pytest.mark.parametrize("ci,sm_method", [("wilson", "wilson"), ("exact", "beta")])
@pytest.mark.parametrize("cells", [(231, 32, 27, 54), (9, 3, 1, 20), (5, 0, 2, 12)])
def test_diagnostic_accuracy_cis_match_statsmodels(ci, sm_method, cells):
    tp, fp, fn, tn = cells
    tab = accm.diagnostic_accuracy(_two_by_two(*cells), "score", "cond", cutoff=0.5, ci=ci,
                                  confidence=0.9)
    for stat, k, n in [("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp),
                       ("ppv", tp, tp + fp), ("npv", tn, tn + fn),
                       ("accuracy", tp + tn, sum(cells)), ("prevalence", tp + fn, sum(cells))]:
        lo, hi = proportion_confint(k, n, alpha=0.1, method=sm_method)
        assert tab.loc[stat, "ci_low"] == pytest.approx(lo, abs=1e-10), stat
        assert tab.loc[stat, "ci_high"] == pytest.approx(hi, abs=1e-10), stat


def test_likelihood_ratio_log_ci_matches_katz_ratio_interval():
    tp, fp, fn, tn = 231, 32, 27, 54
    tab = accm.diagnostic_accuracy(_two_by_two(tp, fp, fn, tn), "score", "cond", cutoff=0.5)
    lo, hi = confint_proportions_2indep(tp, tp + fn, fp, fp + tn, method="log", compare="ratio")
    assert (tab.loc["lr_positive", "ci_low"], tab.loc["lr_positive", "ci_high"]) == (
        pytest.approx(lo, abs=1e-10), pytest.approx(hi, abs=1e-10))
    lo, hi = confint_proportions_2indep(fn, tp + fn, tn, fp + tn, method="log", compare="ratio")
    assert (tab.loc["lr_negative", "ci_low"], tab.loc["lr_negative", "ci_high"]) == (
        pytest.approx(lo, abs=1e-10), pytest.approx(hi, abs=1e-10))
    # hand value: LR+ 2.406 (1.823 to 3.176)
    assert tab.loc["lr_positive", "estimate"] == pytest.approx(2.406, abs=5e-4)


def test_zero_cell_likelihood_ratio_is_corrected_and_labelled():
    tab = accm.diagnostic_accuracy(_two_by_two(5, 0, 2, 12), "score", "cond", cutoff=0.5)
    assert "0.5 added" in tab.loc["lr_positive", "method"]
    assert tab.loc["lr_positive", "estimate"] == pytest.approx((5.5 / 8) / (0.5 / 13), rel=1e-12)
    assert np.isfinite(tab.loc["lr_positive", ["ci_low", "ci_high"]].astype(float)).all()


def test_cutoff_direction_and_boundary():
    df = pd.DataFrame({"s": [60, 70, 70, 80], "c": [1, 1, 0, 0]})
    strict = accm.diagnostic_accuracy(df, "s", "c", cutoff=70, direction="<")
    incl = accm.diagnostic_accuracy(df, "s", "c", cutoff=70, direction="<=")
    assert strict.loc["tp", "estimate"] == 1 and incl.loc["tp", "estimate"] == 2
    above = accm.diagnostic_accuracy(df, "s", "c", cutoff=65, direction=">")
    assert above.loc["tp", "estimate"] == 1 and above.loc["fp", "estimate"] == 2


# ------------------------------------------------------------------------------ edge cases
def test_all_positive_or_negative_condition_is_refused():
    df = pd.DataFrame({"s": [60.0, 65, 80], "c": [1, 1, 1]})
    for fn in (accm.diagnostic_accuracy, rocm.roc, rocm.youden_cutoff):
        with pytest.raises(AnalysisError, match="all 3 observations are positive"):
            fn(df, "s", "c")
    with pytest.raises(AnalysisError, match="all 3 observations are negative"):
        rocm.roc(df.assign(c=0), "s", "c")


def test_non_binary_condition_and_missing_columns():
    df = pd.DataFrame({"s": [60.0, 65, 80], "c": [0, 1, 2]})
    with pytest.raises(AnalysisError, match="boolean or 0/1"):
        rocm.roc(df, "s", "c")
    with pytest.raises(AnalysisError, match="'nope' not in data"):
        rocm.roc(df, "nope", "c")


def test_cutoff_outside_range_warns_but_computes():
    df = pd.DataFrame({"s": [60.0, 65, 80, 85], "c": [1, 1, 0, 0]})
    with pytest.warns(UserWarning, match="outside the observed range"):
        tab = accm.diagnostic_accuracy(df, "s", "c", cutoff=120)
    assert tab.loc["sensitivity", "estimate"] == 1 and tab.loc["specificity", "estimate"] == 0


def test_missing_values_are_dropped_with_a_warning():
    df = pd.DataFrame({"s": [60.0, np.nan, 65, 80, 85], "c": [1, 1, np.nan, 0, 0]})
    with pytest.warns(UserWarning, match="dropped 2 of 5 rows"):
        r = rocm.roc(df, "s", "c")
    assert (r.n_cases, r.n_controls) == (1, 2)
    with pytest.raises(AnalysisError, match="all missing"):
        rocm.roc(pd.DataFrame({"s": [np.nan], "c": [1]}), "s", "c")


# ------------------------------------------------------------------------------ Youden
def test_youden_cutoff_bootstrap_ci_covers_true_cutoff():
    # Binormal truth: cases N(60, 10), controls N(80, 10); with equal variances the population
    # Youden cutoff is the midpoint, 70. Over 100 seeded data sets (n = 200, 500 replicates each)
    # the 95% percentile CI of the cutoff should cover 70 at about the nominal rate; it is known
    # to be somewhat conservative, so accept 0.88 to 1.0 (Monte Carlo SE about 0.02).
    cover = []
    for s in range(100):
        rng = np.random.default_rng(s)
        y = rng.random(200) < 0.4
        x = np.round(np.where(y, rng.normal(60, 10, 200), rng.normal(80, 10, 200)), 1)
        res = rocm.youden_cutoff(None, x, y, n_boot=500, seed=s)
        cover.append(res.loc["cutoff", "ci_low"] <= 70 <= res.loc["cutoff", "ci_high"])
    assert 0.88 <= np.mean(cover) <= 1.0


def test_youden_is_seeded_and_direction_auto():
    rng = np.random.default_rng(5)
    y = rng.random(300) < 0.4
    df = pd.DataFrame({"aslr": np.round(np.where(y, rng.normal(60, 10, 300), rng.normal(80, 10, 300))),
                       "deficit": y})
    a = rocm.youden_cutoff(df, "aslr", "deficit", n_boot=300, seed=1)
    b = rocm.youden_cutoff(df, "aslr", "deficit", n_boot=300, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["direction"] == "<"
    assert (a["ci_low"] <= a["ci_high"]).all()
    assert rocm.youden_cutoff(df, "aslr", "deficit", n_boot=0)["ci_low"].isna().all()


def test_youden_bootstrap_thresholds_are_midpoints_of_resampled_values():
    # compare the vectorised bootstrap with a plain loop over the same resamples
    rng = np.random.default_rng(9)
    y = rng.random(50) < 0.5
    x = np.round(rng.normal(70 - 8 * y, 9) / 2) * 2
    u, c, k = rocm._stratified_boot(x, y, 40, seed=4)
    se, sp, tp, tn = rocm._sesp_from_counts(c, k, "<")
    kb = rocm._youden_pick(tp, tn, int(y.sum()), int((~y).sum()), "<")
    thr = rocm._boot_thresholds(u, (c + k) > 0, kb)
    for b in range(40):
        xb = np.r_[np.repeat(u, c[b]), np.repeat(u, k[b])]
        yb = np.r_[np.ones(c[b].sum(), bool), np.zeros(k[b].sum(), bool)]
        res = rocm.youden_cutoff(None, xb, yb, direction="<", n_boot=0)
        assert thr[b] == pytest.approx(res.loc["cutoff", "estimate"], abs=1e-12)


# ------------------------------------------------------------------------------ unpaired test
@pytest.mark.parametrize("row", _read("roc_test_unpaired.csv").to_dict("records"), ids=lambda r: r["score"])
def test_unpaired_delong_matches_proc(datasets, row):
    df = datasets["asah"]
    f = df["gender"] == "Female"
    r1, r2 = rocm.roc(df[f], row["score"], "case"), rocm.roc(df[~f], row["score"], "case")
    res = rocm.auc_unpaired_test(r1, r2)
    assert r1.auc == pytest.approx(row["auc_female"], abs=1e-6)
    assert r2.auc == pytest.approx(row["auc_male"], abs=1e-6)
    for key in ("statistic", "df", "p_value"):
        assert res[key] == pytest.approx(row[key], abs=1e-6), key


# ------------------------------------------------------------------------------ clustered AUC
def _paired_sides(rng, n_part):
    """Two sides per participant with a shared participant effect on IR and on ASLR."""
    b = rng.normal(0, 1, n_part)[:, None]
    u = rng.normal(0, 1, n_part)[:, None]
    ir = 36 + 7 * b + 3 * rng.normal(0, 1, (n_part, 2))
    aslr = 80 + 0.8 * (ir - 36) + 8 * u + 6 * rng.normal(0, 1, (n_part, 2))
    return ir.ravel(), aslr.ravel(), np.repeat(np.arange(n_part), 2)


def test_obuchowski_reduces_to_delong_for_singleton_clusters(datasets):
    df = datasets["ties"]
    r = rocm.roc(df, "aslr", "case")
    x = rocm.oriented(df["aslr"].to_numpy(float), r.direction)
    auc, var = rocm.obuchowski_var(x, df["case"].to_numpy(bool), np.arange(len(df)))
    assert auc == pytest.approx(r.auc, abs=1e-12)
    assert var == pytest.approx(r.se**2, rel=1e-10)


def test_obuchowski_ci_covers_true_auc_with_correlated_sides():
    # Two correlated sides per participant (shared effects on IR and ASLR); deficit = IR < 30,
    # score = ASLR (low is positive). True unit-level AUC from one large independent sample
    # (200,000 participants, Monte Carlo SE < 0.001). Over 400 cohorts of 80 participants the
    # clustered 95% CI should cover it at about the nominal rate. Wald-type DeLong intervals are
    # a little liberal with ~25 deficits (0.93 here, and likewise for plain DeLong on independent
    # data), so accept 0.91 to 0.975 (Monte Carlo SE 0.011). Treating the sides as independent
    # (plain DeLong) must cover less often.
    rng = np.random.default_rng(2024)
    ir, aslr, _ = _paired_sides(rng, 200_000)
    y = ir < 30
    true = rocm.roc(None, aslr, y, direction="<").auc
    z = stats.norm.ppf(0.975)
    cover, naive = [], []
    for _ in range(400):
        ir, aslr, cl = _paired_sides(rng, 80)
        y = ir < 30
        auc, var = rocm.obuchowski_var(-aslr, y, cl)
        cover.append(abs(auc - true) <= z * np.sqrt(var))
        _, v10, v01 = rocm._delong_placements(-aslr[y][None], -aslr[~y][None])
        naive.append(abs(auc - true) <= z * np.sqrt(rocm._delong_cov(v10, v01)[0, 0]))
    assert 0.91 <= np.mean(cover) <= 0.975
    assert np.mean(naive) < np.mean(cover)


def test_obuchowski_variance_agrees_with_cluster_bootstrap():
    # Independent check of the clustered variance: the variance of the AUC over 2000 bootstrap
    # resamples of participants, on one cohort of 150 participants; agree within 10%.
    rng = np.random.default_rng(5)
    ir, aslr, cl = _paired_sides(rng, 150)
    y = ir < 30
    _, var = rocm.obuchowski_var(-aslr, y, cl)
    # resample participants: weight w_i = times drawn; AUC = sum w w psi / (sum w m)(sum w n)
    w = np.stack([np.bincount(rng.integers(0, 150, 150), minlength=150) for _ in range(2000)])
    psi = (aslr[y][:, None] < aslr[~y][None, :]) + 0.5 * (aslr[y][:, None] == aslr[~y][None, :])
    wa, wc = w[:, cl[y]], w[:, cl[~y]]
    aucs = ((wa @ psi) * wc).sum(1) / (wa.sum(1) * wc.sum(1))
    assert var / np.var(aucs) == pytest.approx(1, abs=0.1)


# ------------------------------------------------------------------------------ reference condition
def _ir_frame():
    return pd.DataFrame({"participant_id": ["P1", "P1", "P2", "P2", "P3"],
                         "side": ["left", "right", "left", "right", "left"],
                         "value": [25.0, 38.0, 40.0, np.nan, 29.9]})


def test_reference_condition_rules():
    ir = _ir_frame()
    assert scq.reference_condition(ir).tolist() == [True, False, False, pd.NA, True]
    assert scq.reference_condition(ir, threshold=26).tolist() == [True, False, False, pd.NA, False]
    z = scq.reference_condition(ir, deficit="z", mean=36, sd=9, threshold=-1.2)  # IR < 25.2
    assert z.tolist() == [True, False, False, pd.NA, False]
    sd = scq.reference_condition(ir, deficit="side_difference", threshold=10)
    # P1: left 13 below right -> left deficit; P2 right missing -> NA; P3 has no right side -> NA
    assert sd.tolist() == [True, False, pd.NA, pd.NA, pd.NA]


def test_reference_condition_errors():
    ir = _ir_frame()
    with pytest.raises(AnalysisError, match="explicit threshold"):
        scq.reference_condition(ir, deficit="side_difference")
    with pytest.raises(AnalysisError, match="mean= and sd="):
        scq.reference_condition(ir, deficit="z", threshold=-1)
    with pytest.raises(AnalysisError, match="deficit must be"):
        scq.reference_condition(ir, deficit="lower")
    with pytest.raises(AnalysisError, match="one row per participant and side"):
        scq.reference_condition(pd.concat([ir, ir]), deficit="side_difference", threshold=5)


# ------------------------------------------------------------------------------ cohort analysis
@pytest.fixture(scope="module")
def cohort():
    from hipstats.cohort.simulate import simulate_cohort

    return simulate_cohort(150, seed=3)


@pytest.fixture(scope="module")
def result(cohort):
    return scq.screening_analysis(cohort, n_boot=300, seed=1)


def test_screening_analysis_matches_the_pure_functions(result):
    units = result.units.dropna(subset=["score", "condition"]).astype({"condition": bool})
    assert units["participant_id"].is_unique  # lower-IR side: one unit per participant
    # the chosen side is the participant's lower IR side
    acc = accm.diagnostic_accuracy(units, "score", "condition", cutoff=70)
    mine = result.accuracy[result.accuracy["group"] == "all"].set_index("statistic")
    pd.testing.assert_series_equal(mine["estimate"], acc["estimate"], check_names=False)
    r = rocm.roc(units, "score", "condition")
    assert result.roc.auc == pytest.approx(r.auc, abs=1e-12)
    assert result.roc.direction == "<"
    s = result.summary()
    assert s["group"].tolist() == ["all", "posterior", "neutral", "anterior"]
    assert s["n_units"].iloc[1:].sum() == s["n_units"].iloc[0]
    for g in ("posterior", "neutral", "anterior"):
        sub = units[units["tilt_class"] == g]
        if g in result.rocs:
            assert result.rocs[g].auc == pytest.approx(rocm.roc(sub, "score", "condition",
                                                               direction="<").auc, abs=1e-12)
    long = result.to_frame()
    assert {"cutoff 70", "roc", "youden"} == set(long["analysis"])
    assert "<table" in result._repr_html_()


def test_lower_ir_side_is_chosen(cohort, result):
    ir = cohort.outcomes("hip_ir_deg", pelvis="neutral", visits=["baseline"])
    low = ir.loc[ir.groupby("participant_id")["value"].idxmin(), ["participant_id", "value"]]
    merged = result.units.merge(low, on="participant_id")
    np.testing.assert_allclose(merged["ir"], merged["value"])
    assert result.units["condition"].astype(bool).eq(result.units["ir"] < 30).all()


def test_both_sides_use_clustered_intervals(cohort):
    res = scq.screening_analysis(cohort, sides="both", n_boot=300, seed=2, by_tilt_class=False)
    assert res.roc.ci_method.startswith("Obuchowski")
    assert (res.units.groupby("participant_id").size() <= 2).all()
    units = res.units.dropna(subset=["score", "condition"]).astype({"condition": bool})
    naive = rocm.roc(units, "score", "condition")
    assert res.roc.auc == pytest.approx(naive.auc, abs=1e-12)
    acc = res.accuracy.set_index("statistic")
    assert acc.loc["sensitivity", "method"].startswith("participant cluster bootstrap")
    assert acc.loc["sensitivity", "ci_low"] < acc.loc["sensitivity", "estimate"] < acc.loc["sensitivity", "ci_high"]


def test_side_difference_definition_runs(cohort):
    res = scq.screening_analysis(cohort, deficit="side_difference", threshold=4, n_boot=0,
                                 by_tilt_class=False)
    assert res.settings["deficit_label"] == "IR more than 4 deg below the other side"
    assert 0 < res.summary().loc[0, "n_deficit"] < res.summary().loc[0, "n_units"]


def test_empty_class_is_said_once_in_the_result(cohort):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the result says it (summary note, notes), no warning repeats it
        res = scq.screening_analysis(cohort, cuts=(-40, 10), n_boot=0)
    assert "posterior" not in res.rocs
    row = res.summary().set_index("group").loc["posterior"]
    assert row["n_units"] == 0 and np.isnan(row["auc"])
    assert row["note"] == "no participants in this tilt class (standing tilt < -40 deg)"
    assert "posterior: not estimable: no participants in this tilt class (standing tilt < -40 deg)" in res.notes
    tc = res.tilt_comparison.set_index("group")
    assert list(tc.index) == ["posterior", "anterior"]  # every pre-specified comparison keeps its row
    assert np.isnan(tc.loc["posterior", ["estimate", "p_value", "p_adj", "ci_low"]].astype(float)).all()
    assert res.not_estimable["posterior vs neutral"] == "the posterior tilt class could not be analysed"
    assert tc.loc["anterior", "p_adj"] == tc.loc["anterior", "p_value"]  # a family of one estimable comparison


def test_small_classes_give_reasons_with_counts():
    """A 12-participant cohort: a class with one participant (who has the deficit) and one with a single
    deficit (no DeLong interval). Each reason is in the result once, with its counts, and no warning repeats
    it; the tilt comparisons keep their rows with the reason."""
    import warnings

    from hipstats.cohort.simulate import simulate_cohort

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        res = scq.screening_analysis(simulate_cohort(12, seed=2026), n_boot=50)
    s = res.summary().set_index("group")
    assert s["n_units"].tolist() == [12, 1, 7, 4] and s["n_deficit"].tolist() == [5, 1, 3, 1]
    assert s.loc["posterior", "note"] == ("the only participant in this tilt class has IR < 30 deg: accuracy "
                                          "needs participants with and without it")
    yd = res.youden.set_index(["group", "statistic"]).loc[("anterior", "cutoff"), ["ci_low", "ci_high"]]
    which = "interval needs" if np.isfinite(yd.to_numpy(float)).all() else "and Youden-cutoff intervals need"
    assert s.loc["anterior", "note"] == f"1 participant with IR < 30 deg and 3 without: the AUC {which} at least 2 of each"
    assert s.loc["all", "note"] == s.loc["neutral", "note"] == ""
    assert np.isnan(s.loc["anterior", "auc_ci_low"]) and np.isfinite(s.loc["anterior", "auc"])
    tc = res.tilt_comparison.set_index("group")
    assert tc["p_value"].isna().all() and tc["p_adj"].isna().all()
    assert res.not_estimable["anterior vs neutral"] == "the AUC of the anterior tilt class has no interval"
    assert res.not_estimable["posterior vs neutral"] == "the posterior tilt class could not be analysed"
    assert len(res.notes) == len(set(res.notes)) == 4


def test_no_deficit_at_all_is_refused(cohort):
    with pytest.raises(AnalysisError, match="all 150 observations are negative"):
        scq.screening_analysis(cohort, threshold=-5, n_boot=0)


def test_cutoff_outside_data_warns(cohort):
    with pytest.warns(UserWarning, match="outside the observed range"):
        res = scq.screening_analysis(cohort, cutoff=200, n_boot=0, by_tilt_class=False)
    assert res.summary().loc[0, "sensitivity"] == 1.0


def test_unknown_visit_is_refused(cohort):
    with pytest.raises(AnalysisError, match="visit 'week_99' not in the cohort"):
        scq.screening_analysis(cohort, visit="week_99")


def test_missing_aslr_is_left_out_with_warning(cohort):
    from hipstats.cohort import Cohort

    m = cohort.measurements
    drop = (m["measure"] == "aslr_deg") & m["participant_id"].isin(["P0001", "P0002"])
    c2 = Cohort(m[~drop].reset_index(drop=True), cohort.participants, cohort.sessions, cohort.settings)
    with pytest.warns(UserWarning, match="2 of 150 units lack"):
        res = scq.screening_analysis(c2, n_boot=0, by_tilt_class=False)
    assert res.summary().loc[0, "n_units"] == 148


def test_anterior_tilt_skews_sensitivity_as_simulated():
    # Simulation truth: ASLR rises aslr_tilt_effect deg per deg of anterior tilt. With a strong
    # effect (2 deg/deg) anteriorly tilted people pass the ASLR despite an IR deficit, so the
    # anterior class must have lower sensitivity than the posterior class, and the difference
    # must vanish (within noise) when the effect is 0. Two 600-participant cohorts.
    import warnings

    from hipstats.cohort.simulate import simulate_cohort

    def sens(effect):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = simulate_cohort(600, weeks=(0, 1), seed=8, sessions=False, aslr_tilt_effect=effect)
            s = scq.screening_analysis(c, n_boot=0).summary().set_index("group")
        return s
    strong, none = sens(2.0), sens(0.0)
    assert strong.loc["anterior", "sensitivity_ci_high"] < strong.loc["posterior", "sensitivity_ci_low"]
    assert none.loc["anterior", "sensitivity_ci_high"] > none.loc["posterior", "sensitivity_ci_low"]
    assert none.loc["posterior", "sensitivity_ci_high"] > none.loc["anterior", "sensitivity_ci_low"]


# ------------------------------------------------------------------------------ figures
def test_roc_plot_renders(result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hipstats.plots.screening import roc_plot

    fig = roc_plot(result, n_boot=100)
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert ax.get_xlabel() == "1 - specificity (false-positive rate)"
    assert ax.get_ylabel().startswith("Sensitivity")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("ASLR angle < 70 deg: sensitivity ") for t in legend)  # the cutoff, in words
    assert "95% CI band (pointwise, bootstrap)" in legend
    assert len(ax.collections) >= 1  # the CI band
    plt.close(fig)
    fig = result.roc.plot(n_boot=100)
    assert len(fig.axes) == 1
    plt.close(fig)
    fig = result.roc.plot(band=False)
    assert len(fig.axes[0].collections) == 0
    plt.close(fig)


def test_roc_result_summary_and_html(result):
    s = result.roc.summary()
    assert s.loc[0, "ci_method"] == "DeLong" and s.loc[0, "auc_ci_low"] < s.loc[0, "auc"] < s.loc[0, "auc_ci_high"]
    assert "AUC" in result.roc._repr_html_()
    band = result.roc.ci_band([0.5, 0.9], n_boot=200, seed=1)
    assert (band["sensitivity_ci_low"] <= band["sensitivity_median"]).all() and (band["sensitivity_median"] <= band["sensitivity_ci_high"]).all()


def test_roc_result_is_a_result_and_pickles():
    """ROCResult is on the one result base: summary() (AUC row in the vocabulary), to_frame() (the
    curve), notes, an escaped HTML view, plot(); it survives pickling with the same AUC and band."""
    import pickle  # noqa: PLC0415

    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    from hipstats.results import Result  # noqa: PLC0415

    rng = np.random.default_rng(4)
    y = rng.random(80) < 0.4
    df = pd.DataFrame({"<b>score</b>": rng.normal(y * 1.0), "y": y})
    r = rocm.roc(df, "<b>score</b>", "y", confidence=0.9)
    assert isinstance(r, Result) and r.confidence == 0.9
    s = r.summary()
    assert {"auc", "auc_se", "auc_ci_low", "auc_ci_high"} <= set(s.columns)
    assert not {"se", "ci_low", "ci_high"} & set(s.columns)
    assert s.loc[0, "auc_ci_low"] < s.loc[0, "auc"] < s.loc[0, "auc_ci_high"]
    pd.testing.assert_frame_equal(r.to_frame(), r.curve)
    r.add_note("2 rows left out: <missing> score")
    page = r._repr_html_()
    assert "<b>score</b>" not in page and "&lt;b&gt;score&lt;/b&gt;" in page and "&lt;missing&gt;" in page
    back = pickle.loads(pickle.dumps(r))
    assert back.auc == r.auc and back.notes == r.notes
    pd.testing.assert_frame_equal(back.ci_band(n_boot=50, seed=1), r.ci_band(n_boot=50, seed=1))
    assert back.plot() is not None


def test_roc_counts_the_rows_it_leaves_out_in_its_notes():
    df = pd.DataFrame({"s": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0], "c": [0, 0, 1, 1, np.nan, 1]})
    with pytest.warns(UserWarning, match="dropped 2 of 6"):
        r = rocm.roc(df, "s", "c")
    assert r.notes == ["2 rows left out: no 's' or no 'c'"]
    assert rocm.roc(df.dropna(), "s", "c").notes == []


# ------------------------------------------------------------------------------ tilt comparisons vs R
# tests/fixtures/screening/make_tilt_cohort.py wrote a small simulated cohort (baseline readings of one
# rater); make_tilt_fixtures.R re-implements the H3 units (trial means, lower-IR side, IR < 30 deg, tilt
# classes) and runs pROC's roc.test(method = "delong", paired = FALSE) for each class against neutral,
# with the interval built from pROC's DeLong variances and t(df), and R's p.adjust(method = "holm").
# Tolerance: 1e-9 absolute on AUCs, differences, SEs, D, p, p_adj and CI ends; 1e-9 relative on df.
def _tilt_cohort():
    from hipstats.cohort import Cohort

    m = pd.read_csv(FIX / "tilt_measurements.csv")
    p = pd.read_csv(FIX / "tilt_participants.csv")
    return Cohort(measurements=m, participants=p, sessions=pd.DataFrame())


@pytest.mark.parametrize("confidence", [0.95, 0.90])
def test_tilt_comparisons_match_proc_unpaired_delong(confidence):
    res = scq.screening_analysis(_tilt_cohort(), n_boot=0, confidence=confidence)
    ref_units = pd.read_csv(FIX / "tilt_units.csv").set_index("participant_id").sort_index()
    mine = res.units.set_index("participant_id").sort_index()
    assert mine.index.equals(ref_units.index)
    assert (mine["side"] == ref_units["side"]).all()
    np.testing.assert_allclose(mine["score"], ref_units["score"], atol=1e-9)
    assert (mine["condition"].astype(bool) == ref_units["condition"]).all()
    assert (mine["tilt_class"].astype(str) == ref_units["tilt_class"]).all()

    ref = _read("tilt_comparison.csv")
    ref = ref[np.isclose(ref["confidence"], confidence)].set_index("group")
    tc = res.tilt_comparison.set_index("group")
    assert list(tc.index) == ["posterior", "anterior"] == list(ref.index)
    assert tc.attrs["confidence"] == confidence
    assert (tc["reference"] == "neutral").all() and (tc["adjust"] == "holm").all()
    for g in tc.index:
        assert res.rocs[g].auc == pytest.approx(ref.loc[g, "auc"], abs=1e-9)
        assert res.rocs["neutral"].auc == pytest.approx(ref.loc[g, "auc_reference"], abs=1e-9)
        for col in ("estimate", "se", "statistic", "p_value", "p_adj", "ci_low", "ci_high"):
            assert tc.loc[g, col] == pytest.approx(ref.loc[g, col], abs=1e-9), (g, col)
        assert tc.loc[g, "df"] == pytest.approx(ref.loc[g, "df"], rel=1e-9)
        classes = ref_units["tilt_class"].isin([g, "neutral"])
        assert tc.loc[g, "n_participants"] == classes.sum()
    # the adjustment changed something (the test can tell Holm from none) and the CI inverts the test
    assert tc.loc["posterior", "p_adj"] > tc.loc["posterior", "p_value"]
    alpha = 1 - confidence
    for g in tc.index:
        assert (tc.loc[g, "p_value"] < alpha) == (tc.loc[g, "ci_low"] > 0 or tc.loc[g, "ci_high"] < 0)


def test_tilt_comparison_adjust_is_named_and_applied():
    c = _tilt_cohort()
    none = scq.screening_analysis(c, n_boot=0, adjust="none").tilt_comparison
    bonf = scq.screening_analysis(c, n_boot=0, adjust="bonferroni").tilt_comparison
    np.testing.assert_allclose(none["p_adj"], none["p_value"])
    np.testing.assert_allclose(bonf["p_adj"], np.minimum(1, 2 * bonf["p_value"]))
    assert set(bonf["adjust"]) == {"bonferroni"}
    with pytest.raises(AnalysisError, match="adjust must be one of"):
        scq.screening_analysis(c, n_boot=0, adjust="tukey")


def test_overall_band_is_computed_by_the_analysis():
    res = scq.screening_analysis(_tilt_cohort(), n_boot=300, seed=4, by_tilt_class=False)
    band = res.roc.band
    assert list(band.columns) == ["specificity", "sensitivity_ci_low", "sensitivity_median", "sensitivity_ci_high"]
    assert (band["sensitivity_ci_low"] <= band["sensitivity_ci_high"]).all()
    again = scq.screening_analysis(_tilt_cohort(), n_boot=300, seed=4, by_tilt_class=False)
    pd.testing.assert_frame_equal(band, again.roc.band)  # seeded
    assert scq.screening_analysis(_tilt_cohort(), n_boot=0, by_tilt_class=False).roc.band is None


def test_roc_figure_draws_the_result_with_its_labels(monkeypatch):
    """The screening figure draws the band the analysis computed (it never calls the bootstrap), its CI labels
    follow the result's confidence, no code names, and the legends sit below the axes, clear of the curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = scq.screening_analysis(_tilt_cohort(), n_boot=100, confidence=0.9)

    def no_recompute(*args, **kwargs):
        raise AssertionError("the figure recomputed the band")

    monkeypatch.setattr(rocm.ROCResult, "ci_band", no_recompute)
    fig = res.plot()
    fig.canvas.draw()
    texts = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    texts += [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text()]
    joined = " ".join(texts)
    assert "90% CI band (pointwise, bootstrap)" in texts and "95%" not in joined
    assert any(t.startswith("All 120 participants: AUC ") and "(90% CI " in t for t in texts)
    assert any(t.startswith("Posterior tilt, 23 participants: AUC ") for t in texts)
    assert "hip internal rotation below 30 deg" in fig._suptitle.get_text()
    for code in ("aslr_deg", "hip_ir_deg", "_", "IR <", "Se ", "Sp "):
        assert code not in joined, code
    for ax in fig.axes:
        box, leg = ax.get_window_extent(), ax.get_legend().get_window_extent()
        assert leg.y1 < box.y0  # below the axes
    plt.close(fig)



def test_page_says_why_no_tilt_class_could_be_compared():
    """12 participants: neither tilt class can be compared with neutral; the page's table slot says so once,
    naming each class with its reason (it used to show nothing, while the text promised both comparisons)."""
    import warnings

    import hipstats as hs
    from hipstats.report.areas import NotEstimable, tilt_comparison_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scq.screening_analysis(hs.simulate_cohort(12, seed=1))
    out = tilt_comparison_table(res)
    assert isinstance(out, NotEstimable)
    text = str(out)
    assert "posterior: " in text and "anterior: " in text and "not estimable" in text
    assert text.count("not estimable") == 1
