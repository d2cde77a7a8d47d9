"""lme4 model formulas: ``y ~ fixed + (expr | group) + ...`` split into their parts.

The random part is parsed here, by a small tokenizer (no Python ``eval`` ever sees a ``|``);
the fixed part and the left side of every bar are handed to patsy, with R's treatment coding
(first level of a factor is the reference). Supported, as lme4:

==========================  ===========================================================
``(a | g)``                 correlated random effects ``a`` (intercept unless ``0 +``) by ``g``
``(a || g)``                uncorrelated: ``(1 | g) + (0 + t | g)`` for each term ``t`` of ``a``
                            (lme4's ``expandDoubleVerts``; a factor term stays one block)
``(1 | g1/g2)``             nested: ``(1 | g1) + (1 | g2:g1)`` (lme4's names)
``(1 | g1:g2)``             grouping by the combinations of ``g1`` and ``g2``
several terms               on one or different factors, crossed or nested
==========================  ===========================================================

Any column name that is a valid Python identifier works, keywords (``yield``, ``class``)
included; others are written in backticks (```hip IR (deg)```). A ``|`` that is not the bar of
a parenthesised random-effects term added with ``+`` is an error that says how to write it.

Examples
--------
>>> from hipstats.models.formula import parse_formula
>>> f = parse_formula("y ~ week * arm + (1 + week | participant_id) + (1 | site)")
>>> f.fixed, [t.label for t in f.random]
('week * arm', ['(1 + week | participant_id)', '(1 | site)'])
>>> [t.label for t in parse_formula("y ~ 1 + (Days || Subject)").random]
['(1 | Subject)', '(0 + Days | Subject)']
>>> [t.label for t in parse_formula("strength ~ 1 + (1 | batch/cask)").random]
['(1 | batch)', '(1 | cask:batch)']
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import patsy

from hipstats.errors import AnalysisError

__all__ = ["RandomTerm", "MixedFormula", "parse_formula", "patsy_code", "quote_name",
           "design_matrix"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | g1:g2:...)``.

    ``expr`` is the patsy code of the left side (names already quoted for patsy),
    ``expr_text`` how the user wrote it, ``group`` the grouping columns (their combinations
    form the grouping factor).
    """

    expr: str
    expr_text: str
    group: tuple[str, ...]

    @property
    def group_name(self) -> str:
        """lme4's name of the grouping factor, e.g. ``participant_id:side``."""
        return ":".join(self.group)

    @property
    def label(self) -> str:
        return f"({self.expr_text} | {':'.join(_show(g) for g in self.group)})"


@dataclass(frozen=True)
class MixedFormula:
    """A parsed lme4 formula: response and fixed part in patsy code, random terms."""

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...] = field(default_factory=tuple)

    @property
    def fixed_formula(self) -> str:
        """``response ~ fixed`` in patsy code."""
        return f"{self.response} ~ {self.fixed}"

    @property
    def random_text(self) -> str:
        return " + ".join(t.label for t in self.random)


def _show(name: str) -> str:
    return name if _IDENT.fullmatch(name) and not keyword.iskeyword(name) else f"`{name}`"


def quote_name(name: str) -> str:
    """patsy code for a column ``name`` (``Q("...")`` unless it is a plain identifier)."""
    if _IDENT.fullmatch(name) and not keyword.iskeyword(name):
        return name
    return "Q(" + repr(str(name)) + ")"


# --------------------------------------------------------------------------- tokenizer
def _scan(text: str):
    """Yield ``(kind, value, start, end, depth)``: kinds name, backtick, string, op, other.

    ``depth`` is the parenthesis depth at the token (before it for ``(``). Strings and
    backtick names are single tokens, so a ``|`` or ``+`` inside them is never structure.
    """
    i, n, depth = 0, len(text), 0
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise AnalysisError(f"unterminated string starting at character {i + 1} of "
                                    f"formula {text!r}")
            yield "string", text[i:j + 1], i, j + 1, depth
            i = j + 1
            continue
        if c == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise AnalysisError(f"unterminated backtick name starting at character {i + 1} "
                                    f"of formula {text!r}; close it with `")
            yield "backtick", text[i + 1:j], i, j + 1, depth
            i = j + 1
            continue
        m = _IDENT.match(text, i)
        if m:
            yield "name", m.group(0), i, m.end(), depth
            i = m.end()
            continue
        if text.startswith("||", i):
            yield "op", "||", i, i + 2, depth
            i += 2
            continue
        if c == "(":
            yield "op", "(", i, i + 1, depth
            depth += 1
            i += 1
            continue
        if c == ")":
            depth -= 1
            if depth < 0:
                raise AnalysisError(f"unbalanced ')' at character {i + 1} of formula {text!r}")
            yield "op", ")", i, i + 1, depth
            i += 1
            continue
        if c in "~+-*/:|^,.=[]{}<>!&%@":
            yield "op", c, i, i + 1, depth
            i += 1
            continue
        # numbers and anything else
        j = i + 1
        while j < n and (text[j].isalnum() or text[j] in "._"):
            j += 1
        yield "other", text[i:j], i, j, depth
        i = j
    if depth != 0:
        raise AnalysisError(f"unbalanced '(' in formula {text!r}")


def patsy_code(text: str) -> str:
    """``text`` with backtick names and Python keywords turned into patsy's ``Q("...")``.

    >>> patsy_code("`hip IR` ~ yield + C(arm, Treatment('control'))")
    "Q('hip IR') ~ Q('yield') + C(arm, Treatment('control'))"
    """
    out, last = [], 0
    toks = list(_scan(text))
    for k, (kind, val, s, e, _) in enumerate(toks):
        rep = None
        if kind == "backtick":
            rep = quote_name(val) if val else None
            if rep is None:
                raise AnalysisError(f"empty backtick name in formula {text!r}")
        elif kind == "name" and keyword.iskeyword(val) and val not in ("True", "False", "None"):
            after = toks[k + 1] if k + 1 < len(toks) else None
            before = toks[k - 1] if k else None
            if not (after and after[1] == "(") and not (before and before[1] == "."):
                rep = quote_name(val)
        if rep is not None:
            out.append(text[last:s])
            out.append(rep)
            last = e
    out.append(text[last:])
    return "".join(out)


# --------------------------------------------------------------------------- parsing
def _split_top(text: str, sep: str, base_depth: int = 0):
    """Split ``text`` at the operator ``sep`` where it is at parenthesis depth ``base_depth``."""
    parts, start = [], 0
    for kind, val, s, e, depth in _scan(text):
        if kind == "op" and val == sep and depth == base_depth:
            parts.append(text[start:s])
            start = e
    parts.append(text[start:])
    return parts


def _bars(text: str):
    return [(val, s, e, depth) for kind, val, s, e, depth in _scan(text)
            if kind == "op" and val in ("|", "||")]


_FIX = ("write random effects as added, parenthesised terms, e.g. "
        "'y ~ week + (1 + week | participant_id) + (1 | site)'; for uncorrelated effects use "
        "'(1 | g) + (0 + week | g)' or '(week || g)'")


def _group_names(text: str, formula: str) -> list[tuple[str, ...]]:
    """Grouping factors of a bar's right side: ``g``, ``g1:g2``, ``g1/g2`` (nested)."""
    levels = _split_top(text, "/")
    out, prefix = [], ()
    for lev in levels:
        names = []
        for part in _split_top(lev, ":"):
            toks = list(_scan(part))
            if len(toks) != 1 or toks[0][0] not in ("name", "backtick"):
                raise AnalysisError(
                    f"cannot read the grouping factor {text.strip()!r} in {formula!r}: after "
                    "the bar write column names joined by ':' (interaction) or '/' (nesting), "
                    "e.g. '(1 | site/participant_id)'; put other names in backticks")
            names.append(toks[0][1])
        prefix = tuple(names) + prefix        # lme4 names a/b 'b:a'
        out.append(prefix)
    return out


def _double_bar_terms(expr_code: str, expr_text: str) -> list[tuple[str, str]]:
    """lme4's ``expandDoubleVerts``: intercept alone, then ``0 + term`` for each term."""
    import patsy

    try:
        desc = patsy.ModelDesc.from_formula("~ " + expr_code)
    except patsy.PatsyError as err:
        raise AnalysisError(f"cannot read random-effects expression {expr_text!r}: {err}") from err
    out = []
    for term in desc.rhs_termlist:
        if not term.factors:
            out.append(("1", "1"))
        else:
            name = term.name()
            out.append((f"0 + {name}", f"0 + {name}"))
    return out


def parse_formula(text: str) -> MixedFormula:
    """Split an lme4 formula into response, fixed part and random terms.

    Parameters
    ----------
    text : str
        ``"response ~ fixed + (expr | group) + ..."``.

    Returns
    -------
    MixedFormula

    Raises
    ------
    AnalysisError
        For a ``|`` that is not the bar of a random-effects term, a term not added with
        ``+``, an unreadable grouping factor or a formula without response.

    Examples
    --------
    >>> f = parse_formula("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)")
    >>> [(t.expr, t.group) for t in f.random]
    [('1', ('Subject',)), ('0 + Days', ('Subject',))]
    """
    if not isinstance(text, str) or "~" not in text:
        raise AnalysisError(f"formula {text!r} has no response; write 'value ~ ...'")
    tilde = [s for kind, val, s, e, d in _scan(text) if kind == "op" and val == "~" and d == 0]
    if len(tilde) != 1:
        raise AnalysisError(f"formula {text!r} must have exactly one '~' outside parentheses")
    lhs, rhs = text[:tilde[0]], text[tilde[0] + 1:]
    if not lhs.strip():
        raise AnalysisError(f"formula {text!r} has no response; write 'value ~ ...'")
    if _bars(lhs):
        raise AnalysisError(f"'|' in the response of {text!r}; {_FIX}")
    fixed_parts, random = [], []
    for chunk in _split_top(rhs, "+"):
        bars = _bars(chunk)
        stripped = chunk.strip()
        if not bars:
            if stripped:
                fixed_parts.append(stripped)
            elif random or fixed_parts:
                raise AnalysisError(f"empty term ('+ +') in formula {text!r}")
            continue
        toks = list(_scan(stripped))
        enclosed = (toks and toks[0][1] == "(" and toks[-1][1] == ")" and toks[0][4] == 0
                    and all(t[4] >= 1 for t in toks[1:-1]))
        inner_bars = [b for b in _bars(stripped) if b[3] == 1]
        if not enclosed or len(inner_bars) != 1 or len(_bars(stripped)) != 1:
            raise AnalysisError(f"cannot interpret the '|' in {stripped!r} of formula {text!r}: "
                                f"{_FIX} (for Python's bitwise or, compute the column first)")
        inner = stripped[1:-1]
        bar, s, e, _ = inner_bars[0]
        s, e = s - 1, e - 1
        left, right = inner[:s].strip(), inner[e:].strip()
        if not left or not right:
            raise AnalysisError(f"random-effects term {stripped!r} needs an expression before "
                                f"and a grouping factor after the bar, e.g. '(1 | Subject)'")
        groups = _group_names(right, text)
        code = patsy_code(left)
        exprs = _double_bar_terms(code, left) if bar == "||" else [(code, left)]
        for g in groups:
            for ecode, etext in exprs:
                random.append(RandomTerm(ecode, etext, g))
    if not random and not fixed_parts:
        raise AnalysisError(f"formula {text!r} has nothing after '~'")
    fixed = " + ".join(fixed_parts) if fixed_parts else "1"
    return MixedFormula(text=text, response=patsy_code(lhs.strip()), fixed=patsy_code(fixed),
                        random=tuple(random))


# --------------------------------------------------------------------------- designs
def _columns_if_row_wise(terms, frame, eval_env):
    """Data columns used by ``terms`` if each design row depends on its data row alone.

    That holds unless a factor uses a stateful transform (``center``, ``standardize``,
    splines: they memorise data-wide statistics) or a name that is neither a column nor a
    non-data object of the formula environment. Returns None when it does not hold.
    """
    import builtins

    import patsy.builtins
    from patsy.eval import ast_names

    known = set(vars(patsy.builtins)) | set(vars(builtins))
    cols = []
    for term in terms:
        for factor in term.factors:
            if not isinstance(factor, patsy.EvalFactor):
                return None
            if factor.memorize_passes_needed({}, eval_env) > 0:
                return None
            names = list(ast_names(factor.code))
            names += [m.group(2) for m in _Q_RE.finditer(factor.code)]
            for name in names:
                if name in frame.columns:
                    if name not in cols:
                        cols.append(name)
                    continue
                if name == "Q":
                    continue
                try:
                    obj = eval_env.namespace[name]
                except KeyError:
                    if name in known:
                        continue
                    return None
                if isinstance(obj, (np.ndarray, pd.Series, pd.Index, list, tuple)):
                    return None
    return cols


_Q_RE = re.compile(r"""Q\(\s*(['"])(.+?)\1\s*\)""")


def design_matrix(terms, frame, eval_env):
    """patsy design (NA rows dropped) of ``terms``, a DataFrame indexed like ``frame``.

    Returns ``(DataFrame, patsy.DesignInfo)``; ``terms`` is a patsy term list (e.g.
    ``patsy.ModelDesc.from_formula("y ~ x").rhs_termlist``).

    patsy handles categorical data element by element in Python, which dominates the cost of
    a fit with tens of thousands of rows. When every design row depends only on its data row
    (see :func:`_columns_if_row_wise`) the design is built on the distinct rows of the
    columns used (e.g. arms x weeks) and expanded; otherwise on the full frame.
    """
    desc = patsy.ModelDesc([], list(terms))
    cols = _columns_if_row_wise(terms, frame, eval_env)
    if cols:
        ids = frame.groupby(cols, dropna=False, sort=False, observed=True).ngroup().to_numpy()
        uniq, first = np.unique(ids, return_index=True)
        if len(uniq) <= len(frame) // 2:
            sub = frame[cols].iloc[first]
            sub.index = uniq
            D = patsy.dmatrix(desc, sub, eval_env=eval_env, NA_action="drop",
                              return_type="dataframe")
            keep = np.isin(ids, D.index.to_numpy())
            out = pd.DataFrame(D.to_numpy()[np.searchsorted(D.index.to_numpy(), ids[keep])],
                               index=frame.index[keep], columns=D.columns)
            return out, D.design_info
    D = patsy.dmatrix(desc, frame, eval_env=eval_env, NA_action="drop", return_type="dataframe")
    return D, D.design_info
