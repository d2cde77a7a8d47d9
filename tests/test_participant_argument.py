"""One name for the participant argument: ``participant=`` (docs/vocabulary.md).

Every public call that takes the column identifying the participant names it
``participant=``; the old names (``subject=``, ``targets=``, ``groups=``, ``cluster=``) still
work as deprecated keyword aliases (DeprecationWarning naming ``participant=``, identical
results), and passing an alias with ``participant=`` is a TypeError.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import hipstats as hs
from hipstats.models.lmm import fit_arrays
from hipstats.power.simulation import fit_statsmodels
from hipstats.results import DEPRECATED, resolve_participant
from hipstats.stats.agreement import sem


def _repeated(seed=0, n=14, k=4):
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(n), k)
    mu = rng.normal(10, 4, n)[s]
    x = mu + rng.normal(0, 2, s.size)
    y = 30 - 0.1 * mu - 0.4 * (x - mu) + rng.normal(0, 3, n)[s] + rng.normal(0, 1, s.size)
    return pd.DataFrame({"pid": s, "x": x, "y": y, "week": np.tile(np.arange(k) * 4.0, n)})


def _ratings(seed=1, n=12, k=3):
    rng = np.random.default_rng(seed)
    true = rng.normal(40, 8, n)
    rows = [(i, r, true[i] + rng.normal(0, 2) + r) for i in range(n) for r in range(k)]
    return pd.DataFrame(rows, columns=["pid", "rater", "rating"])


def _same(a, b):
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif isinstance(a, float):
        assert a == b
    else:  # a result: its tables
        pd.testing.assert_frame_equal(a.summary(), b.summary())
        assert a.notes == b.notes


_REP = _repeated()
_RAT = _ratings()
_CATS = _RAT.assign(cat=pd.cut(_RAT["rating"], [0, 35, 45, 100], labels=["lo", "mid", "hi"]).astype(str))
_PAIRS = pd.DataFrame({"pid": np.repeat(np.arange(10), 3),
                       "a": np.random.default_rng(2).normal(40, 6, 30)}).assign(
    b=lambda d: d["a"] + np.random.default_rng(3).normal(0.5, 1.5, 30))
_PAIRED = pd.DataFrame({"pid": np.r_[np.arange(9), np.arange(9)], "visit": ["pre"] * 9 + ["post"] * 9,
                        "value": np.r_[np.random.default_rng(4).normal(30, 5, 9),
                                       np.random.default_rng(5).normal(34, 5, 9)]})
_RATES = pd.DataFrame({"pid": list("abcdef"), "k": [9, 1, 8, 2, 4, 5], "n": [10, 10, 12, 10, 9, 11]})

#: (name, call taking **{participant-argument: "pid"}, old name)
CALLS = [
    ("rm_corr", lambda **kw: hs.rm_corr(_REP, "x", "y", **kw), "subject"),
    ("within_between", lambda **kw: hs.within_between(_REP, "x", "y", **kw), "subject"),
    ("bland_altman", lambda **kw: hs.bland_altman(_PAIRS, "a", "b", **kw), "subject"),
    ("icc", lambda **kw: hs.icc(_RAT, raters="rater", ratings="rating", **kw), "targets"),
    ("sem", lambda **kw: sem(_RAT, raters="rater", ratings="rating", **kw), "targets"),
    ("mdc", lambda **kw: hs.mdc(data=_RAT, raters="rater", ratings="rating", **kw), "targets"),
    ("fleiss_kappa", lambda **kw: hs.fleiss_kappa(_CATS, rater="rater", rating="cat", **kw), "subject"),
    ("hedges_g", lambda **kw: hs.hedges_g(_PAIRED, dv="value", group="visit", ref="pre", paired=True, **kw),
     "subject"),
    ("pooled_rate", lambda **kw: hs.pooled_rate(_RATES, "k", "n", **kw), "cluster"),
    ("fit_lmm", lambda **kw: hs.fit_lmm("y ~ week", _REP, **kw), "groups"),
    ("fit_mmrm", lambda **kw: hs.fit_mmrm("y ~ C(week)", _REP, visit="week", covariance="cs", **kw), "subject"),
    ("fit_statsmodels", lambda **kw: fit_statsmodels("y ~ week", _REP, **kw), "groups"),
]


@pytest.mark.parametrize("name, call, old", CALLS, ids=[c[0] for c in CALLS])
def test_old_name_warns_and_gives_the_same_result(name, call, old):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the new name warns about nothing
        new = call(participant="pid")
    with pytest.warns(DeprecationWarning, match=rf"{old}= is deprecated; pass participant='pid'"):
        was = call(**{old: "pid"})
    if name == "fit_statsmodels":
        assert np.allclose(new.fe_params, was.fe_params) and new.fe_params.index.equals(was.fe_params.index)
    else:
        _same(new, was)
    with pytest.raises(TypeError, match=rf"participant='other' and its deprecated alias {old}='pid'"):
        call(participant="other", **{old: "pid"})


def test_the_new_name_is_used():
    """participant= really selects the column (a wrong one is an error, not ignored)."""
    with pytest.raises(Exception, match="nope"):
        hs.rm_corr(_REP, "x", "y", participant="nope")
    by_pid = hs.rm_corr(_REP, "x", "y", participant="pid")
    pooled = hs.rm_corr(_REP.assign(one=_REP["pid"] // 2), "x", "y", participant="one")
    assert by_pid["n_participants"].iloc[0] == 14 and pooled["n_participants"].iloc[0] == 7
    # the default is the house column
    renamed = _REP.rename(columns={"pid": "participant_id"})
    _same(hs.rm_corr(renamed, "x", "y"), by_pid)


def test_positional_participant_still_works():
    _same(hs.rm_corr(_REP, "x", "y", "pid"), hs.rm_corr(_REP, "x", "y", participant="pid"))
    _same(hs.icc(_RAT, "pid", "rater", "rating"), hs.icc(_RAT, participant="pid", raters="rater", ratings="rating"))
    _same(hs.bland_altman(_PAIRS, "a", "b", "pid"), hs.bland_altman(_PAIRS, "a", "b", participant="pid"))


def test_fit_arrays_groups_alias():
    d = _REP
    X = np.column_stack([np.ones(len(d)), d["week"]])
    kw = dict(exog_names=["Intercept", "week"], re_names=["Intercept"])
    new = fit_arrays(X, d["y"].to_numpy(), np.ones((len(d), 1)), d["pid"].to_numpy(), **kw)
    with pytest.warns(DeprecationWarning, match="groups= is deprecated"):
        old = fit_arrays(X, d["y"].to_numpy(), np.ones((len(d), 1)), groups=d["pid"].to_numpy(), **kw)
    pd.testing.assert_frame_equal(new.summary(), old.summary())
    with pytest.raises(TypeError, match="needs participant="):
        fit_arrays(X, d["y"].to_numpy(), np.ones((len(d), 1)), **kw)


def test_fit_lmm_formula_form_unchanged():
    """The formula names the grouping factor; participant= is only the short form."""
    a = hs.fit_lmm("y ~ week + (1 | pid)", _REP)
    b = hs.fit_lmm("y ~ week", _REP, participant="pid", re_formula="1")
    pd.testing.assert_frame_equal(a.summary(), b.summary())


def test_mmrm_result_participant_attribute_and_alias():
    fit = hs.fit_mmrm("y ~ C(week)", _REP, participant="pid", visit="week", covariance="cs")
    assert fit.participant == "pid" and fit.model_info()["participant"] == "pid"
    with pytest.warns(DeprecationWarning, match="MMRMResult.subject is deprecated; use MMRMResult.participant"):
        assert fit.subject == "pid"
    assert pickle.loads(pickle.dumps(fit)).participant == "pid"


def test_two_aliases_are_a_type_error():
    with pytest.raises(TypeError, match="deprecated aliases subject= and groups="):
        resolve_participant("participant_id", where="f", subject="a", groups="b")
    assert resolve_participant("x", where="f", subject=DEPRECATED) == "x"
    assert pickle.loads(pickle.dumps(DEPRECATED)) is DEPRECATED
