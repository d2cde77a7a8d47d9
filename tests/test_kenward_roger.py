"""Tests of hipstats.models.kenward_roger against pbkrtest (lme4 fits) and closed forms.

Reference: tests/fixtures/mmrm/make_kr_fixtures.R (pbkrtest 0.5.2, lme4 1.1-31) on sleepstudy
with rows removed by a stated rule. The variance parameters are taken from lme4's fit and the
covariance parameterised as pbkrtest does (the random-effect covariance entries and the residual
variance, linear, so d2V = 0). Tolerance: 1e-6 relative (the same formulas on the same inputs;
lme4's estimates are stored to full precision).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hipstats.errors import AnalysisError
from hipstats.models.kenward_roger import (BlockGroup, adjusted_vcov, dphi, expected_information,
                                           kr_components, kr_ddf, kr_test, satterthwaite_df,
                                           satterthwaite_test)

FIX = Path(__file__).parent / "fixtures" / "mmrm"
REF = json.loads((FIX / "kr_pbkrtest.json").read_text())
RTOL = 1e-6


def _groups(re, per_block=True):
    """Blocks of the sleepstudy subset for a random intercept or a random intercept + slope."""
    d = pd.read_csv(FIX / "kr_sleepstudy.csv")
    ref = REF[re]
    G = np.atleast_2d(np.array(ref["G"], float))
    s2 = float(ref["sigma2"])
    q = G.shape[0]
    # parameters: vech of G (lower triangle, column by column), then sigma^2
    tri = [(i, j) for j in range(q) for i in range(j, q)]
    by_size = {}
    for _, sub in d.groupby("Subject", sort=True):
        X = np.column_stack([np.ones(len(sub)), sub["Days"].to_numpy(float)])
        Z = X[:, :q]
        m = len(sub)
        V = Z @ G @ Z.T + s2 * np.eye(m)
        dV = []
        for (i, j) in tri:
            E = np.zeros((q, q))
            E[i, j] = E[j, i] = 1.0
            dV.append(Z @ E @ Z.T)
        dV.append(np.eye(m))
        by_size.setdefault(m, []).append((X, V, np.stack(dV)))
    groups = []
    for m, blocks in by_size.items():
        X = np.stack([b[0] for b in blocks])
        V = np.stack([b[1] for b in blocks])
        dV = np.stack([b[2] for b in blocks], axis=1)
        groups.append(BlockGroup(X, V, dV))
    return groups


@pytest.mark.parametrize("re", ["intercept", "slope"])
def test_against_pbkrtest(re):
    ref = REF[re]
    comp = kr_components(_groups(re))
    np.testing.assert_allclose(comp.Phi, np.array(ref["vcov"]), rtol=RTOL)
    W = np.linalg.inv(expected_information(comp))
    np.testing.assert_allclose(adjusted_vcov(comp, W), np.array(ref["vcov_adj"]), rtol=RTOL)
    ddf, _ = kr_ddf([[0.0, 1.0]], comp.Phi, comp.P, W)
    assert ddf == pytest.approx(ref["ddf_slope"], rel=RTOL)
    assert kr_ddf([[1.0, 5.0]], comp.Phi, comp.P, W)[0] == pytest.approx(ref["ddf_day5"], rel=RTOL)
    beta = np.array(ref["beta"])
    Phi_a = adjusted_vcov(comp, W)
    for key, L in (("kr_slope", [[0.0, 1.0]]), ("kr_both", np.eye(2))):
        r = kr_test(L, beta, comp.Phi, Phi_a, comp.P, W)
        assert r["statistic"] == pytest.approx(ref[key]["F"], rel=RTOL)
        assert r["den_df"] == pytest.approx(ref[key]["ddf"], rel=RTOL)
        assert r["scale"] == pytest.approx(ref[key]["scale"], rel=RTOL)


def test_shared_and_per_block_agree():
    """A group with one shared covariance equals the same blocks given one by one."""
    rng = np.random.default_rng(3)
    n, m, p, k = 7, 4, 3, 2
    X = rng.normal(size=(n, m, p))
    A = rng.normal(size=(m, m))
    V = A @ A.T + m * np.eye(m)
    dV = np.stack([np.eye(m), np.ones((m, m))])
    d2V = rng.normal(size=(k, k, m, m))
    d2V = d2V + d2V.transpose(1, 0, 3, 2)
    d2V = d2V + d2V.transpose(0, 1, 3, 2)
    shared = kr_components([BlockGroup(X, V, dV, d2V)])
    per = kr_components([BlockGroup(X, np.broadcast_to(V, (n, m, m)),
                                    np.broadcast_to(dV[:, None], (k, n, m, m)),
                                    np.broadcast_to(d2V[:, :, None], (k, k, n, m, m)))])
    for a in ("Phi", "P", "Q", "R", "K"):
        np.testing.assert_allclose(getattr(shared, a), getattr(per, a), rtol=1e-10, atol=1e-12)


def test_dense_formulas():
    """P, Q, R, K against the N x N formulas on one dense block."""
    rng = np.random.default_rng(5)
    N, p = 9, 2
    X = rng.normal(size=(N, p))
    A = rng.normal(size=(N, N))
    V = A @ A.T + N * np.eye(N)
    dV = [np.eye(N), np.diag(np.arange(N, dtype=float))]
    d2V = np.zeros((2, 2, N, N))
    d2V[1, 1] = np.diag(np.arange(N, dtype=float) ** 2)
    comp = kr_components([BlockGroup(X[None], V[None], np.stack(dV)[:, None], d2V[:, :, None])])
    Vi = np.linalg.inv(V)
    np.testing.assert_allclose(comp.Phi, np.linalg.inv(X.T @ Vi @ X), rtol=1e-10)
    for h in range(2):
        np.testing.assert_allclose(comp.P[h], -X.T @ Vi @ dV[h] @ Vi @ X, rtol=1e-10)
        for j in range(2):
            np.testing.assert_allclose(comp.Q[h, j], X.T @ Vi @ dV[h] @ Vi @ dV[j] @ Vi @ X,
                                       rtol=1e-10)
            np.testing.assert_allclose(comp.R[h, j], X.T @ Vi @ d2V[h, j] @ Vi @ X, rtol=1e-10,
                                       atol=1e-14)
            assert comp.K[h, j] == pytest.approx(np.trace(Vi @ dV[h] @ Vi @ dV[j]), rel=1e-10)
    np.testing.assert_allclose(dphi(comp.Phi, comp.P)[0],
                               -comp.Phi @ comp.P[0] @ comp.Phi, rtol=1e-12)


def test_satterthwaite_closed_form():
    """Independent errors, one variance: every Satterthwaite / KR df is n - p."""
    rng = np.random.default_rng(1)
    n, p = 30, 3
    X = rng.normal(size=(n, 1, p))
    s2 = 2.5
    comp = kr_components([BlockGroup(X, s2 * np.eye(1), np.eye(1)[None])])
    W = np.linalg.inv(expected_information(comp))
    L = rng.normal(size=(2, p))
    np.testing.assert_allclose(satterthwaite_df(L, comp.Phi, comp.P, W), n - p, rtol=1e-10)
    beta = rng.normal(size=p)
    r = satterthwaite_test(L, beta, comp.Phi, comp.P, W)
    assert r["num_df"] == 2 and r["den_df"] == pytest.approx(n - p, rel=1e-10)
    m, scale = kr_ddf(L, comp.Phi, comp.P, W)
    assert m == pytest.approx(n - p, rel=1e-10) and scale == pytest.approx(1.0, rel=1e-10)
    # the F statistic is the classical one
    Lb = L @ beta
    F = Lb @ np.linalg.solve(L @ comp.Phi @ L.T, Lb) / 2
    assert r["statistic"] == pytest.approx(F, rel=1e-10)


def test_bad_shapes():
    with pytest.raises(AnalysisError, match="X must be"):
        BlockGroup(np.ones((2, 3)), np.eye(3), np.eye(3)[None])
    with pytest.raises(AnalysisError, match="dV must be"):
        BlockGroup(np.ones((2, 3, 1)), np.eye(3), np.eye(2)[None])
    comp = kr_components([BlockGroup(np.ones((4, 2, 1)), np.eye(2), np.eye(2)[None])])
    with pytest.raises(AnalysisError, match="1 columns"):
        satterthwaite_df([[1.0, 2.0]], comp.Phi, comp.P, np.eye(1))
