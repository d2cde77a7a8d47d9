"""Model frame and specification of :mod:`hipstats.models.lmm`: lme4 formula -> design matrices.

:func:`build_frame` turns a parsed lme4 formula (:mod:`hipstats.models.formula`) and a data frame
into the model frame (rows complete in every variable used, unused categories dropped, as lme4)
and patsy's design matrices; :class:`ModelSpec` holds everything a fit needs (formula, frame,
designs, the random-effects terms as :class:`~hipstats.models._lmm_blocked.TermData` in lme4's
order), decides which engine fits it (``kind``: ``"one"`` for the per-participant sufficient
statistics of :mod:`hipstats.models._lmm_core`, ``"blocked"`` for
:mod:`hipstats.models._lmm_blocked`), checks identifiability and builds the engine's problem.
:func:`legacy_formula` writes the short form ``participant=, re_formula=, nested=`` as an lme4
formula.

Examples
--------
>>> import numpy as np, pandas as pd, patsy
>>> from hipstats.models._lmm_frame import ModelSpec
>>> rng = np.random.default_rng(0)
>>> d = pd.DataFrame({"g": np.repeat(np.arange(8), 3), "site": np.repeat([0, 1], 12),
...                   "y": rng.normal(0, 1, 24)})
>>> ModelSpec("y ~ 1 + (1 | g) + (1 | site)", d, patsy.EvalEnvironment.capture()).kind
'blocked'
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy

from hipstats.errors import AnalysisError
from hipstats.models._lmm_blocked import BlockedProblem, TermData, lme4_order
from hipstats.models._lmm_core import Problem
from hipstats.models.formula import MixedFormula, design_matrix, parse_formula

__all__ = ["ModelSpec", "build_frame", "group_codes", "legacy_formula", "one_engine_z"]


def legacy_formula(formula, participant, re_formula, nested):
    """The lme4 formula that ``fit_lmm(formula, participant=, re_formula=, nested=)`` means.

    Parameters
    ----------
    formula : str
        The fixed part, without random-effects terms (``"value ~ week"``).
    participant : str
        The grouping column.
    re_formula : str
        The design of the random effects within ``participant`` (``"1 + week"``); never
        lme4 syntax (no ``|``).
    nested : str or None
        A column whose levels get a random intercept within ``participant``.

    Returns
    -------
    str
        ``value ~ x`` + ``(re_formula | participant)`` + ``(1 | participant:nested)``.

    Examples
    --------
    >>> legacy_formula("value ~ week", "participant_id", "1 + week", "side")
    'value ~ week + (1 + week | participant_id) + (1 | participant_id:side)'
    """
    if not isinstance(participant, str):
        raise AnalysisError(f"participant must be one column name, got {participant!r}; for several "
                            "grouping factors write them in the formula, e.g. "
                            "'y ~ x + (1 | participant_id) + (1 | site)'")
    if parse_formula(formula).random:
        raise AnalysisError(f"formula {formula!r} already has random-effects terms; drop "
                            "participant=/re_formula=/nested= (the formula says it all)")
    re_f = str(re_formula).strip()
    re_f = re_f[1:].strip() if re_f.startswith("~") else re_f
    if "|" in re_f:
        raise AnalysisError(
            f"re_formula {re_formula!r} contains '|': re_formula is the design within "
            f"participant={participant!r} and is never read as lme4 syntax. Write the random terms in "
            f"the formula instead, e.g. fit_lmm('{formula} + (1 | {participant}) + (0 + x | "
            f"{participant})', data)")
    text = f"{formula} + ({re_f or '1'} | {_show_name(participant)})"
    if nested is not None:
        if not isinstance(nested, str):
            raise AnalysisError(f"nested must be one column name, got {nested!r}; for several "
                                "nested factors write them in the formula, e.g. "
                                f"'(1 | {participant}/side/trial)'")
        text += f" + (1 | {_show_name(participant)}:{_show_name(nested)})"
    return text


def _show_name(name):
    from hipstats.models.formula import quote_name

    return name if quote_name(name) == name else f"`{name}`"


def group_codes(frame, cols):
    """Level codes and labels of the grouping factor formed by ``cols`` (sorted levels).

    Parameters
    ----------
    frame : pandas.DataFrame
    cols : sequence of str
        One column, or several whose combinations are the levels (labels ``a:b``).

    Returns
    -------
    codes : numpy.ndarray
        The level of each row, ``0 .. nlev - 1``.
    labels : list
        The levels in sorted order.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"g": ["b", "a", "b"], "side": ["L", "L", "R"]})
    >>> codes, labels = group_codes(d, ["g", "side"])
    >>> codes.tolist(), labels
    ([1, 0, 2], ['a:L', 'b:L', 'b:R'])
    """
    if len(cols) == 1:
        codes, uniques = pd.factorize(frame[cols[0]], sort=True)
        return codes, list(uniques)
    mi = pd.MultiIndex.from_frame(frame[list(cols)])
    codes, uniques = pd.factorize(mi, sort=True)
    return codes, [":".join(map(str, u)) for u in uniques]


def build_frame(mf, data, eval_env):
    """Model frame (rows complete in every variable used) and the design matrices.

    Parameters
    ----------
    mf : hipstats.models.formula.MixedFormula
        The parsed lme4 formula.
    data : pandas.DataFrame
    eval_env : patsy.EvalEnvironment
        Where the formula's functions are looked up.

    Returns
    -------
    frame : pandas.DataFrame
        The rows complete in the response, the fixed and random designs and the grouping
        columns (unused categories dropped, as lme4's model frame).
    y, X : pandas.DataFrame
        Response and fixed-effects design.
    xinfo : patsy.DesignInfo
        Of ``X``.
    Zs : list of (pandas.DataFrame, patsy.DesignInfo)
        The design of each random-effects term as written.

    Examples
    --------
    >>> import numpy as np, pandas as pd, patsy
    >>> from hipstats.models.formula import parse_formula
    >>> d = pd.DataFrame({"y": [1., 2, np.nan, 4], "x": [0., 1, 2, 3], "g": [1, 1, 2, 2]})
    >>> frame, y, X, xinfo, Zs = build_frame(parse_formula("y ~ x + (1 | g)"), d,
    ...                                      patsy.EvalEnvironment.capture())
    >>> len(frame), list(X.columns), list(Zs[0][0].columns)
    (3, ['Intercept', 'x'], ['Intercept'])
    """
    if not isinstance(data, pd.DataFrame):
        raise AnalysisError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if not mf.random:
        raise AnalysisError(f"formula {mf.text!r} has no random-effects term; add one such as "
                            "'+ (1 | participant_id)' (without random effects use OLS)")
    for t in mf.random:
        for g in t.group:
            if g not in data.columns:
                raise AnalysisError(f"grouping column {g!r} of {t.label} not found in data "
                                    f"(columns: {', '.join(map(str, data.columns))})")
    df = data if data.index.is_unique else data.reset_index(drop=True)
    try:
        desc = patsy.ModelDesc.from_formula(mf.fixed_formula)
        re_descs = [patsy.ModelDesc.from_formula("~ " + t.expr) for t in mf.random]
    except patsy.PatsyError as err:
        raise AnalysisError(f"cannot parse formula {mf.text!r}: {err} (write column names "
                            "that are not Python identifiers in backticks)") from err
    if not desc.lhs_termlist:
        raise AnalysisError(f"formula {mf.text!r} has no response (write 'value ~ ...')")

    def designs(frame):
        try:
            y, _ = design_matrix(desc.lhs_termlist, frame, eval_env)
            X, xinfo = design_matrix(desc.rhs_termlist, frame, eval_env)
            Zs = [design_matrix(d.rhs_termlist, frame, eval_env) for d in re_descs]
        except (patsy.PatsyError, SyntaxError) as err:
            raise AnalysisError(f"cannot build the model from formula {mf.text!r}: {err} "
                                "(write column names that are not Python identifiers in "
                                "backticks)") from err
        return y, X, xinfo, Zs

    y, X, xinfo, Zs = designs(df)
    keep = df.index.isin(y.index) & df.index.isin(X.index)
    for Z, _ in Zs:
        keep &= df.index.isin(Z.index)
    gcols = list(dict.fromkeys(g for t in mf.random for g in t.group))
    for g in gcols:
        keep &= df[g].notna().to_numpy()
    frame = df.loc[keep]
    # like lme4's model frame: drop categories without rows (they are not estimable)
    unused = {c: frame[c].cat.remove_unused_categories() for c in frame.columns
              if isinstance(frame[c].dtype, pd.CategoricalDtype)
              and frame[c].nunique(dropna=True) < len(frame[c].cat.categories)}
    if unused:
        frame = frame.assign(**unused)
    if unused or not (len(frame) == len(y) == len(X) and all(len(Z) == len(frame)
                                                             for Z, _ in Zs)):
        y, X, xinfo, Zs = designs(frame)
    if y.shape[1] != 1:
        raise AnalysisError(f"the response of {mf.text!r} must be one numeric column, "
                            f"got columns {list(y.columns)}")
    return frame, y, X, xinfo, Zs


class ModelSpec:
    """Everything needed to (re)fit a model: parsed formula, model frame, designs, terms.

    ``terms`` are the random-effects terms as written (:class:`TermData`), ``order`` lme4's
    order of them (most levels first), ``kind`` the engine that fits them: ``"one"`` (all
    random effects in one term, or one term plus an intercept nested in its factor: the
    per-participant sufficient statistics of :mod:`hipstats.models._lmm_core`) or
    ``"blocked"`` (:mod:`hipstats.models._lmm_blocked`).

    Parameters
    ----------
    formula : str or hipstats.models.formula.MixedFormula
        lme4 formula with its random-effects terms.
    data : pandas.DataFrame
    eval_env : patsy.EvalEnvironment

    Examples
    --------
    >>> import numpy as np, pandas as pd, patsy
    >>> rng = np.random.default_rng(0)
    >>> d = pd.DataFrame({"g": np.repeat(np.arange(6), 3), "x": np.tile([0., 1, 2], 6)})
    >>> d["y"] = rng.normal(0, 1, 18)
    >>> spec = ModelSpec("y ~ x + (1 | g)", d, patsy.EvalEnvironment.capture())
    >>> spec.kind, spec.X.shape, spec.re_formula
    ('one', (18, 2), '(1 | g)')
    """

    def __init__(self, formula, data, eval_env):
        mf = formula if isinstance(formula, MixedFormula) else parse_formula(formula)
        self.mf = mf
        self.formula = mf.text
        self.eval_env = eval_env
        frame, y, X, xinfo, Zs = build_frame(mf, data, eval_env)
        self.frame = frame
        self.yname = y.columns[0]
        self.design_info = xinfo
        self.exog_names = list(X.columns)
        self.X = X.to_numpy(float)
        self.y = y.to_numpy(float).ravel()
        n, p = self.X.shape
        if n == 0:
            raise AnalysisError("no complete rows left for the model (every row has a missing "
                                f"value in a variable of {mf.text!r})")
        self.terms, self.re_design_infos = [], []
        for t, (Z, zinfo) in zip(mf.random, Zs):
            codes, levels = group_codes(frame, t.group)
            self.terms.append(TermData(group=t.group_name, names=list(Z.columns),
                                       codes=np.asarray(codes), levels=levels,
                                       Xt=Z.to_numpy(float), label=t.label))
            self.re_design_infos.append(zinfo)
        self.group_cols = [t.group for t in mf.random]
        self._finish(n, p)

    def _finish(self, n, p):
        self.order = lme4_order([t.nlev for t in self.terms])
        self.kind, self.nest = self._route()
        self._check(n, p)

    def _route(self):
        """``("one", None)``, ``("one", (parent, child))`` or ``("blocked", None)``."""
        if len(self.terms) == 1:
            return "one", None
        if len(self.terms) == 2 and self.group_cols is not None:
            for a, b in ((0, 1), (1, 0)):
                ta, tb = self.terms[a], self.terms[b]
                ga, gb = set(self.group_cols[a]), set(self.group_cols[b])
                if (ga < gb and tb.names == ["Intercept"] and tb.k == 1
                        and np.all(tb.Xt == 1.0)):
                    return "one", (a, b)
        return "blocked", None

    def __getstate__(self):
        # patsy's DesignInfo and the formula's evaluation environment do not pickle; they are
        # rebuilt from the parsed formula and the model frame on unpickling
        state = dict(self.__dict__)
        state.update(design_info=None, re_design_infos=None, eval_env=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.frame is None or getattr(self, "mf", None) is None:
            return
        env = patsy.EvalEnvironment([{"np": np, "numpy": np, "pd": pd}])
        try:
            _, _, _, xinfo, Zs = build_frame(self.mf, self.frame, env)
        except AnalysisError:  # the formula used names of the caller's session: no new designs
            return
        self.design_info, self.re_design_infos, self.eval_env = xinfo, [z for _, z in Zs], env

    @classmethod
    def from_arrays(cls, X, y, Z, groups, *, exog_names, re_names):
        """Specification from ready design arrays: one term ``(Z | group)``, no formula.

        For callers that fit the same design many times (simulation power): patsy's design
        building costs more than the fit of a small model. The result has no model frame
        or ``design_info``, so it cannot ``predict``.
        """
        self = cls.__new__(cls)
        X = np.asarray(X, float)
        y = np.asarray(y, float).ravel()
        Z = np.asarray(Z, float)
        groups = np.asarray(groups)
        if X.ndim != 2 or Z.ndim != 2 or not (len(X) == len(y) == len(Z) == len(groups)):
            raise AnalysisError(f"X {X.shape}, y {y.shape}, Z {Z.shape} and groups "
                                f"{groups.shape} must be 2-D, 1-D, 2-D, 1-D with equal rows")
        if X.shape[1] != len(exog_names) or Z.shape[1] != len(re_names):
            raise AnalysisError("exog_names / re_names must name every column of X / Z")
        if not (np.isfinite(X).all() and np.isfinite(y).all() and np.isfinite(Z).all()):
            raise AnalysisError("X, y and Z must be finite (drop incomplete rows first)")
        self.mf = None
        self.formula = ("y ~ 0 + " + " + ".join(exog_names) + " + (0 + " + " + ".join(re_names)
                        + " | group)")
        self.eval_env = None
        self.frame = self.design_info = None
        self.re_design_infos = [None]
        self.yname = "y"
        self.exog_names = list(exog_names)
        self.X, self.y = X, y
        codes, uniques = pd.factorize(groups, sort=True)
        self.terms = [TermData(group="group", names=list(re_names), codes=np.asarray(codes),
                               levels=list(uniques), Xt=Z, label="(Z | group)")]
        self.group_cols = [("group",)]
        n, p = X.shape
        if n == 0:
            raise AnalysisError("no rows to fit")
        self._finish(n, p)
        return self

    @property
    def re_formula(self):
        return " + ".join(t.label for t in self.terms)

    def _check(self, n, p):
        rank = np.linalg.matrix_rank(self.X)
        if rank < p:
            # name the columns that are linear combinations of earlier ones
            bad, cols = [], []
            for j, name in enumerate(self.exog_names):
                if np.linalg.matrix_rank(self.X[:, cols + [j]]) == len(cols) + 1:
                    cols.append(j)
                else:
                    bad.append(name)
            raise AnalysisError(f"fixed-effects design of {self.formula!r} is rank deficient "
                                f"(rank {rank} < {p} columns); not estimable: {', '.join(bad)}")
        for t in self.terms:
            if t.nlev < 2:
                raise AnalysisError(f"need at least 2 levels of {t.group!r} for random effects "
                                    f"{t.label}, got {t.nlev}")
            if t.nlev >= n:
                raise AnalysisError(f"each level of {t.group!r} has a single observation; the "
                                    f"variance of {t.label} is not identifiable (number of "
                                    f"levels {t.nlev} must be < number of observations {n})")
            if n <= t.nlev * t.k:
                raise AnalysisError(f"number of observations ({n}) must exceed the number of "
                                    f"random effects ({t.nlev * t.k}) of {t.label}; the "
                                    "random-effects structure is too rich")
        if n <= p:
            raise AnalysisError(f"need more observations ({n}) than fixed effects ({p})")

    def problem(self):
        if self.kind == "one":
            t = self.terms[self.nest[0] if self.nest else 0]
            return Problem(self.X, self.y, one_engine_z(self), t.codes, t.k)
        return BlockedProblem(self.X, self.y, [self.terms[i] for i in self.order])

    def theta_to_lme4(self, theta_engine):
        """Engine theta -> lme4's theta (terms in lme4's order, lower triangles)."""
        th = np.asarray(theta_engine, float)
        if self.kind == "blocked" or self.nest is None:
            return th.copy()
        a, b = self.nest
        na = self.terms[a].k * (self.terms[a].k + 1) // 2
        slices = {a: th[:na], b: th[na:]}
        return np.concatenate([slices[i] for i in self.order])

    def theta_from_lme4(self, theta):
        th = np.asarray(theta, float)
        if self.kind == "blocked" or self.nest is None:
            return th.copy()
        a, b = self.nest
        sizes = {i: self.terms[i].k * (self.terms[i].k + 1) // 2 for i in (a, b)}
        pos, slices = 0, {}
        for i in self.order:
            slices[i] = th[pos:pos + sizes[i]]
            pos += sizes[i]
        return np.concatenate([slices[a], slices[b]])



def one_engine_z(spec):
    """The ``(n, Q)`` random-effects design of the one-factor engine (term, nested slots).

    Parameters
    ----------
    spec : ModelSpec
        A specification of ``kind == "one"``.

    Returns
    -------
    numpy.ndarray
        The term's columns, then one indicator column per level of the nested column (the
        same slots for every participant: ``side`` L and R below).

    Examples
    --------
    >>> import numpy as np, pandas as pd, patsy
    >>> d = pd.DataFrame({"g": np.repeat([1, 2, 3], 4), "side": ["L", "L", "R", "R"] * 3,
    ...                   "y": np.arange(12.0) % 5})
    >>> spec = ModelSpec("y ~ 1 + (1 | g) + (1 | g:side)", d, patsy.EvalEnvironment.capture())
    >>> one_engine_z(spec).shape
    (12, 3)
    """
    if spec.nest is None:
        return spec.terms[0].Xt
    a, b = spec.nest
    extra = [c for c in spec.group_cols[b] if c not in spec.group_cols[a]]
    ncodes, _ = group_codes(spec.frame, extra)
    Zn = np.zeros((len(spec.y), int(ncodes.max()) + 1))
    Zn[np.arange(len(spec.y)), ncodes] = 1.0
    return np.column_stack([spec.terms[a].Xt, Zn])
