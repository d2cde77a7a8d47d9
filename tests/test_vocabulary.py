"""One vocabulary across every public result table (docs/vocabulary.md).

Builds every public analysis on a small simulated cohort, walks every table its result
returns (``summary()``, ``to_frame()``, ``tables()`` and public DataFrame attributes, into
nested results) and refuses any statistics column outside the vocabulary. Also checks that
every CI-returning public call accepts ``confidence=``.
"""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import hipstats as hs

#: names the vocabulary refuses anywhere (docs/vocabulary.md, "Refused names")
REFUSED = {
    "p", "pval", "p_val", "pvalue", "t", "z", "f", "F", "W", "emmean", "mean_diff", "diff", "difference", "g",
    "n", "n_subjects", "n_obs", "subject", "subject_id", "targets", "groups", "cluster", "se_low", "se_high",
    "se_median",
}
_COMPANION = re.compile(r"^(?:(?P<prefix>.+?)_)?(?P<kind>se|ci_low|ci_high|p_value|p_adj|statistic)"
                        r"(?:_(?P<method>[a-z]+))?$")


def vocabulary_problems(columns) -> list[str]:
    """Why a table's column names break the vocabulary (empty when they do not)."""
    cols = [str(c) for c in columns]
    have = set(cols)
    out = []
    for c in cols:
        if c in REFUSED:
            out.append(f"{c!r} is refused")
            continue
        if re.search(r"(^|_)pval($|_)|(^|_)p_wilcoxon$|^p_(?!value$|adj$)", c):
            out.append(f"{c!r}: a p-value is p_value / <estimate>_p_value")
            continue
        m = _COMPANION.match(c)
        if m is None or c in ("statistic_name",):
            continue
        prefix = m.group("prefix") or ""
        if prefix == "":
            if m.group("kind") in ("ci_low", "ci_high", "se") and "estimate" not in have:
                out.append(f"{c!r} without an 'estimate' column")
        elif prefix not in have and m.group("kind") != "statistic" and f"{prefix}_statistic" not in have:
            # a second test of the same estimate is named by its test: wilcoxon_statistic, wilcoxon_p_value
            out.append(f"{c!r}: prefix {prefix!r} is not a column of the table")
    return out


def test_checker_refuses_old_names():
    assert vocabulary_problems(["estimate", "se", "ci_low", "ci_high", "p_value", "p_adj", "n_participants"]) == []
    assert vocabulary_problems(["icc", "icc_ci_low", "icc_ci_high", "icc_ci_low_f"]) == []
    assert vocabulary_problems(["rate", "rate_ci_low_wilson"]) == []
    assert vocabulary_problems(["estimate", "p_value", "wilcoxon_statistic", "wilcoxon_p_value"]) == []
    assert vocabulary_problems(["estimate", "wilcoxon_p_value"])
    assert vocabulary_problems(["pval"]) and vocabulary_problems(["bias", "bias_pval"])
    assert vocabulary_problems(["risk_difference", "rd_ci_low"])
    assert vocabulary_problems(["auc", "ci_low", "ci_high"])
    assert vocabulary_problems(["emmean", "se"]) and vocabulary_problems(["n_subjects"])


# ----------------------------------------------------------------------------------------------
# every public result
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def results():
    warnings.simplefilter("ignore")
    c = hs.simulate_cohort(48, seed=11)
    af = c.analysis_frame("hip_ir_deg")
    rng = np.random.default_rng(0)
    xy = pd.DataFrame({"x": rng.normal(60, 15, 60), "y": np.r_[np.zeros(30), np.ones(30)],
                       "x2": rng.normal(60, 15, 60)})
    m = c.measurements
    base = m[(m.measure == "hip_ir_deg") & (m.visit == "baseline") & (m.rater == "R1")]
    pairs = hs.report.areas.rater_pairs(c) if hasattr(hs, "report") else None
    final = af[af.visit == af.sort_values("week").visit.iloc[-1]].dropna(subset=["baseline"])
    pc = final.groupby(["participant_id", "arm"], observed=True)[["change", "baseline", "value"]].mean().reset_index()
    made = {
        "reliability_summary": hs.reliability_summary(c, n_boot=30),
        "icc": hs.icc(base, participant=["participant_id", "side"], raters="trial", ratings="value"),
        "bland_altman": hs.bland_altman(pairs, *pairs.attrs["raters"], participant="participant_id"),
        "cohen_kappa": hs.cohen_kappa(pd.DataFrame({"a": rng.integers(0, 4, 40), "b": rng.integers(0, 4, 40)}),
                                      "a", "b"),
        "h2_analysis": hs.h2_analysis(c, mdc=5.0),
        "pelvis_analysis": hs.pelvis_analysis(c),
        "screening_analysis": hs.screening_analysis(c),
        "loading_analysis": hs.loading_analysis(c),
        "faults_analysis": hs.faults_analysis(c),
        "fit_lmm": hs.fit_lmm("value ~ week", af, participant="participant_id"),
        "ancova": hs.ancova(pc, "value", "baseline", "arm"),
        "hedges_g": hs.hedges_g(pc, dv="change", group="arm"),
        "responders": hs.responders(pc, "change", "arm", 5.0),
        "roc": hs.roc(xy, "x", "y"),
        "roc_test": hs.roc_test(xy, "x", "x2", "y"),
        "diagnostic_accuracy": hs.diagnostic_accuracy(xy, "x", "y", cutoff=60),
        "youden_cutoff": hs.youden_cutoff(xy, "x", "y", n_boot=30),
        "rm_corr": hs.rm_corr(af.dropna(subset=["standing_tilt_deg"]), "standing_tilt_deg", "value", "participant_id"),
        "power_ancova": hs.power_ancova(effect=5.0, sd=8.0, rho=0.6, n_per_arm=30),
        "power_change_scores": hs.power_change_scores(effect=5.0, sd=8.0, n_per_arm=30),
        "power_slope": hs.power_slope(0.3, [0, 3, 6, 9, 12], 9.0, 0.15, 3.0, n_per_arm=40),
        "power_mmrm": hs.power_mmrm(4.0, 9.0, 0.6, [1, 0.9, 0.8], n_per_arm=40),
        "simulate_power": hs.simulate_power(hs.TrialDesign(n_per_arm=20), n_sim=20, n_jobs=1, progress=False),
        "power_curve": hs.power_curve(hs.TrialDesign(), [10, 20], n_sim=10, n_jobs=1, progress=False),
    }
    made["emmeans"] = hs.emmeans(made["fit_lmm"], "week", at={"week": [0.0, 12.0]})
    return made


def _walk(name, obj, seen, out, depth=0):
    if isinstance(obj, pd.DataFrame):
        out.setdefault(name, obj)
        return
    if obj is None or depth > 3 or id(obj) in seen or not (hasattr(obj, "summary") or hasattr(obj, "tables")):
        return
    if isinstance(obj, (pd.Series, pd.Index)):
        return
    seen.add(id(obj))
    tables = getattr(obj, "tables", None)
    if callable(tables):
        for k, t in tables().items():
            _walk(f"{name}.{k}", t, seen, out, depth + 1)
    for meth in ("summary", "to_frame"):
        f = getattr(obj, meth, None)
        if callable(f):
            try:
                _walk(f"{name}.{meth}()", f(), seen, out, depth + 1)
            except Exception:  # noqa: BLE001 - a part the data cannot support has no table
                pass
    for k, v in getattr(obj, "__dict__", {}).items():
        if not k.startswith("_"):
            _walk(f"{name}.{k}", v, seen, out, depth + 1)


def public_tables(results) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    for name, r in results.items():
        _walk(name, r, set(), out)
    return out


def test_walk_reaches_every_result(results):
    tables = public_tables(results)
    for name in results:
        assert any(k == name or k.startswith(name + ".") for k in tables), f"{name}: no table found"
    assert len(tables) > 60


def _problems(results, names):
    bad = {}
    for name, t in public_tables({k: v for k, v in results.items() if k in names}).items():
        if name.endswith(("cov_fe", ".frame.units", ".units")) or "design" in name:
            continue  # model matrices and the analysis' input rows, not result tables
        p = vocabulary_problems(t.columns)
        if p:
            bad[name] = p
    return bad


def test_every_public_table_speaks_the_vocabulary(results):
    bad = _problems(results, set(results))
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())


def test_every_result_is_a_result(results):
    from hipstats.results import Result

    tidy_frames = {"icc", "cohen_kappa", "hedges_g", "diagnostic_accuracy", "roc_test", "rm_corr", "youden_cutoff"}
    for name, r in results.items():
        if name in tidy_frames:
            assert isinstance(r, pd.DataFrame), name
        else:
            assert isinstance(r, Result), f"{name} returns {type(r).__name__}, not a hipstats Result"


# ----------------------------------------------------------------------------------------------
# confidence= everywhere a CI is returned
# ----------------------------------------------------------------------------------------------
def _ci_calls():
    for name in sorted(hs._LAZY):
        obj = getattr(hs, name)
        if inspect.isfunction(obj) and not name.endswith("_plot"):  # figures draw the CI of the table they get
            doc = inspect.getdoc(obj) or ""
            if re.search(r"ci_low|confidence interval|\bCI\b", doc):
                yield name, obj


def test_confidence_accepted_by_every_ci_returning_call():
    missing = [name for name, f in _ci_calls() if "confidence" not in inspect.signature(f).parameters]
    assert not missing, f"no confidence= in {missing}"


def test_alpha_only_as_a_significance_level():
    offenders = []
    for name, f in _ci_calls():
        params = inspect.signature(f).parameters
        if "alpha" in params and not name.startswith(("power", "simulate_power")):
            if params["alpha"].default is not None:
                offenders.append(name)
    assert not offenders, f"alpha= still sets a CI level in {offenders} (use confidence=; alpha=None shim only)"


def test_alpha_alias_warns_and_sets_the_level():
    """The deprecated alpha= of a CI-returning call gives the CI of confidence = 1 - alpha, with a warning."""
    import numpy as np

    rng = np.random.default_rng(3)
    s = np.repeat(np.arange(12), 4)
    x = rng.normal(0, 1, s.size)
    df = pd.DataFrame({"s": s, "x": x, "y": 0.5 * x + rng.normal(0, 1, s.size)})
    new = hs.rm_corr(df, "x", "y", "s", confidence=0.9)
    with pytest.warns(DeprecationWarning, match="confidence=0.9"):
        old = hs.rm_corr(df, "x", "y", "s", alpha=0.1)
    pd.testing.assert_frame_equal(new, old)
    wide = hs.rm_corr(df, "x", "y", "s")
    assert wide["ci_low"].iloc[0] < new["ci_low"].iloc[0] < new["ci_high"].iloc[0] < wide["ci_high"].iloc[0]


# ----------------------------------------------------------------------------------------------
# one name for the participant argument
# ----------------------------------------------------------------------------------------------
#: old names of the participant argument; only allowed as deprecated keyword aliases
OLD_PARTICIPANT_NAMES = {"subject", "subjects", "subject_id", "targets", "groups", "cluster"}


def _public_callables():
    """Every public function and public method (and constructor) of the public API.

    The public API: the flat ``hipstats`` namespace and the ``__all__`` of every module whose
    dotted path has no private part.
    """
    import importlib
    import pkgutil

    seen = set()
    spaces = [("hipstats", {n: getattr(hs, n) for n in hs.__all__})]
    for m in pkgutil.walk_packages(hs.__path__, "hipstats."):
        if any(part.startswith("_") for part in m.name.split(".")):
            continue
        mod = importlib.import_module(m.name)
        spaces.append((m.name, {n: getattr(mod, n) for n in getattr(mod, "__all__", ()) if hasattr(mod, n)}))
    for space, names in spaces:
        for name, obj in names.items():
            members = []
            if inspect.isfunction(obj):
                members = [(name, obj)]
            elif inspect.isclass(obj) and obj.__module__.startswith("hipstats"):
                members = [(f"{name}.{k}", v) for k, v in vars(obj).items()
                           if inspect.isfunction(v) and (not k.startswith("_") or k == "__init__")]
            for qual, f in members:
                if id(f) not in seen:
                    seen.add(id(f))
                    yield f"{space}.{qual}", f


def test_public_api_walk_finds_the_participant_calls():
    names = {q.rsplit(".", 1)[-1] for q, _ in _public_callables()}
    assert {"rm_corr", "icc", "bland_altman", "fit_lmm", "fit_mmrm", "pooled_rate", "fleiss_kappa"} <= names


def participant_argument_problems(callables) -> tuple[list[str], list[str]]:
    """(offenders, aliased): parameters under an old participant name that are not a deprecated
    keyword alias (a keyword-only parameter whose default is ``hipstats.results.DEPRECATED``,
    next to a ``participant`` parameter), and the calls that keep such an alias."""
    from hipstats.results import DEPRECATED

    offenders, aliased = [], []
    for qual, f in callables:
        params = inspect.signature(f).parameters
        for p in params.values():
            if p.name not in OLD_PARTICIPANT_NAMES:
                continue
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is DEPRECATED:
                aliased.append(qual)
                if "participant" not in params:
                    offenders.append(f"{qual}: alias {p.name}= without participant=")
            else:
                offenders.append(f"{qual}({p.name}=...)")
    return offenders, aliased


def test_participant_argument_has_one_name():
    """No public call names the participant column subject/targets/groups/cluster, except as
    a deprecated keyword alias (resolved by ``hipstats.results.resolve_participant``)."""
    offenders, aliased = participant_argument_problems(_public_callables())
    assert not offenders, "participant argument under an old name: " + ", ".join(offenders)
    assert len(aliased) >= 12


def test_checker_of_aliases_can_fail():
    from hipstats.results import DEPRECATED

    def bad(data, subject="participant_id"):  # an old name as a real parameter
        return data

    def lonely(data, *, groups=DEPRECATED):  # an alias of nothing
        return data

    def good(data, participant="participant_id", *, subject=DEPRECATED):
        return data

    offenders, aliased = participant_argument_problems([("bad", bad), ("lonely", lonely), ("good", good)])
    assert offenders == ["bad(subject=...)", "lonely: alias groups= without participant="]
    assert aliased == ["lonely", "good"]


# ----------------------------------------------------------------------------------------------
# result attributes and attrs keys
# ----------------------------------------------------------------------------------------------
#: names a count, a p-value or the participant may not have as a result attribute or attrs key
REFUSED_ATTRIBUTES = {"n", "n_subjects", "n_obs", "nobs", "p", "pval", "p_val", "pvalue", "subject",
                      "subject_id", "subjects", "targets", "cluster", "var_subject"}


def attribute_problems(name, obj, seen=None, depth=0) -> list[str]:
    """Refused attribute names of a result (and its nested results) and refused attrs keys of
    its tables; an alias kept by ``hipstats.results.renamed_attribute`` is allowed."""
    seen = set() if seen is None else seen
    out: list[str] = []
    if obj is None or depth > 3 or id(obj) in seen:
        return out
    seen.add(id(obj))
    if isinstance(obj, pd.DataFrame):
        return [f"{name}.attrs[{k!r}]" for k in obj.attrs if k in REFUSED_ATTRIBUTES]
    if not (hasattr(obj, "summary") or hasattr(obj, "tables")) or isinstance(obj, (pd.Series, pd.Index)):
        return out
    for k, v in vars(obj).items():
        if k.startswith("_"):
            continue
        if k in REFUSED_ATTRIBUTES:
            out.append(f"{name}.{k}")
        out += attribute_problems(f"{name}.{k}", v, seen, depth + 1)
    for cls in type(obj).__mro__:
        for k, v in vars(cls).items():
            if k in REFUSED_ATTRIBUTES and not getattr(v, "renamed_to", ""):
                out.append(f"{name}.{k} ({cls.__name__})")
    for meth in ("summary", "to_frame"):
        f = getattr(obj, meth, None)
        if callable(f):
            try:
                out += attribute_problems(f"{name}.{meth}()", f(), seen, depth + 1)
            except Exception:  # noqa: BLE001 - a part the data cannot support has no table
                pass
    return out


def test_result_attributes_and_attrs_keys_speak_the_vocabulary(results):
    c = hs.simulate_cohort(30, seed=2)
    agg = (c.analysis_frame("hip_ir_deg").groupby(["participant_id", "arm", "visit"], observed=True)["value"]
           .mean().reset_index())
    extra = {"fit_mmrm": hs.fit_mmrm("value ~ arm * visit", agg, visit="visit", covariance="cs")}
    bad = [p for name, r in {**results, **extra}.items() for p in attribute_problems(name, r)]
    assert not bad, "refused attribute names: " + ", ".join(bad)


def test_attribute_checker_can_fail():
    from hipstats.results import Result, renamed_attribute

    class Old(Result):
        nobs = renamed_attribute("n_rows", "nobs")

        def __init__(self):
            self.n = 3
            self.n_rows = 3
            self.table = pd.DataFrame({"estimate": [1.0]})
            self.table.attrs["pval"] = 0.5

        def summary(self):
            return self.table

    assert sorted(attribute_problems("old", Old())) == ["old.n", "old.table.attrs['pval']"]
