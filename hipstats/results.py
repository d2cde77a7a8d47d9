"""The one base of every analysis result (lifelines style).

Every public analysis returns a :class:`Result`. Whatever it computes, a result answers the
same questions the same way:

``summary()``
    the key-estimate table: one row per estimate a report would quote (a DataFrame in the
    house vocabulary, see ``docs/vocabulary.md``);
``to_frame()``
    the full tidy table (every estimate, one row each);
``plot()``
    the result's figure (a matplotlib Figure);
``notes``
    a list of plain-language notes: rows a view left out and why (``"12 rows left out: rater
    AB measured the same participant, visit and side as JS"``), sub-analyses the data could
    not support, the names the analysis found in the data (primary rater, retest visit);
``not_estimable``
    sub-analysis name -> reason, for the parts that could not be estimated (their attribute
    is None);
``confidence``
    the confidence level of every interval in the result (None when it has no interval);
``tables()``
    every public table of the result by name (``summary``, ``to_frame`` and each DataFrame
    attribute), which is what the vocabulary test walks;
``_repr_html_``
    the notebook view: title, notes and the summary table, every value that comes from the
    data escaped with :func:`html.escape` (labels such as arm or rater names are user input).

Results pickle (no formula objects, lambdas or closures are kept), so they can be cached
and sent to worker processes.

Examples
--------
>>> import pandas as pd
>>> from hipstats.results import Result
>>> class Mean(Result):
...     _title = "Mean"
...     def __init__(self, x):
...         self.table = pd.DataFrame({"estimate": [sum(x) / len(x)], "n_participants": [len(x)]})
...         self.confidence = None
...         self.add_note("1 row left out: no value")
...     def summary(self):
...         return self.table.copy()
>>> r = Mean([1.0, 3.0])
>>> r.summary()["estimate"].tolist(), r.notes
([2.0], ['1 row left out: no value'])
>>> sorted(r.tables())
['summary', 'table', 'to_frame']
"""

from __future__ import annotations

import html
from collections.abc import Iterable

import pandas as pd

from hipstats.errors import AnalysisError

__all__ = ["Result", "html_table", "exclusion_note", "resolve_confidence", "resolve_direction",
           "resolve_participant", "renamed_attribute", "DEPRECATED", "PARTICIPANT_COLUMN"]

#: the participant column of every table (docs/vocabulary.md)
PARTICIPANT_COLUMN = "participant_id"


class _DeprecatedAlias:
    """The default of a deprecated keyword alias: "not given" (one instance, :data:`DEPRECATED`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<deprecated alias>"

    def __reduce__(self):
        return "DEPRECATED"


#: Default of every deprecated keyword alias of a renamed argument (``subject=DEPRECATED``).
#: A keyword-only parameter whose default is this object is an alias, not an argument of its
#: own: ``tests/test_vocabulary.py`` tells aliases from real parameters by it.
DEPRECATED = _DeprecatedAlias()


def exclusion_note(n_rows: int, reason: str, *, unit: str = "row") -> str:
    """The plain-language note for rows a view or an analysis left out.

    >>> exclusion_note(12, "rater AB measured the same participant, visit and side as JS")
    '12 rows left out: rater AB measured the same participant, visit and side as JS'
    >>> exclusion_note(1, "no value", unit="participant")
    '1 participant left out: no value'
    """
    n = int(n_rows)
    return f"{n} {unit}{'' if n == 1 else 's'} left out: {reason}"


def resolve_confidence(confidence: float | None = 0.95, alpha: float | None = None, *, where: str = "") -> float:
    """The confidence level of a call, reading the deprecated ``alpha=`` (CI level = 1 - alpha).

    ``alpha=`` is kept only as the significance level of a test (power); where it used to set
    the level of a confidence interval it still works, with a :class:`DeprecationWarning`.

    >>> resolve_confidence(0.9)
    0.9
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     resolve_confidence(alpha=0.1)
    0.9
    """
    if alpha is not None:
        import warnings  # noqa: PLC0415

        warnings.warn(f"{where + ': ' if where else ''}alpha= is deprecated for confidence intervals; "
                      f"pass confidence={1 - float(alpha):g}", DeprecationWarning, stacklevel=3)
        confidence = 1 - float(alpha)
    if confidence is None:
        confidence = 0.95
    confidence = float(confidence)
    if not 0 < confidence < 1:
        raise AnalysisError(f"confidence must be between 0 and 1, got {confidence}")
    return confidence


def resolve_participant(participant, *, where: str = "", default=PARTICIPANT_COLUMN, **aliases):
    """The participant argument of a call, reading its deprecated aliases (``subject=``, ...).

    Every public call names the column that identifies the participant ``participant=``
    (docs/vocabulary.md). Its old names (``subject=``, ``targets=``, ``groups=``,
    ``cluster=``) are keyword-only parameters whose default is :data:`DEPRECATED`; passed,
    they still work, with a :class:`DeprecationWarning` naming ``participant=``. Passing an
    alias together with ``participant=`` (set to anything but its default) is a
    :class:`TypeError`, as is passing two aliases.

    Parameters
    ----------
    participant
        The value of ``participant=`` as the call received it.
    where : str
        The name of the call (in the messages).
    default
        The default of the call's ``participant=`` (``"participant_id"``, or None where the
        participant is optional).
    **aliases
        Old name -> the value the call received for it (:data:`DEPRECATED` if not passed).

    Returns
    -------
    The participant argument (the alias' value when only the alias was passed).

    Examples
    --------
    >>> resolve_participant("pid", subject=DEPRECATED)
    'pid'
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     resolve_participant("participant_id", where="rm_corr", subject="pid")
    'pid'
    >>> str(w[0].message)
    "rm_corr: subject= is deprecated; pass participant='pid'"
    >>> resolve_participant("a", where="rm_corr", subject="b")
    Traceback (most recent call last):
    ...
    TypeError: rm_corr() got participant='a' and its deprecated alias subject='b'; pass participant= only
    """
    given = {k: v for k, v in aliases.items() if v is not DEPRECATED}
    if not given:
        return participant
    call = f"{where}()" if where else "the call"
    if len(given) > 1:
        raise TypeError(f"{call} got the deprecated aliases {' and '.join(f'{k}=' for k in given)} "
                        "of one argument; pass participant= only")
    (old, value), = given.items()
    if participant is not default and participant != default:
        raise TypeError(f"{call} got participant={participant!r} and its deprecated alias "
                        f"{old}={value!r}; pass participant= only")
    import warnings  # noqa: PLC0415

    warnings.warn(f"{where + ': ' if where else ''}{old}= is deprecated; pass participant={value!r}",
                  DeprecationWarning, stacklevel=3)
    return value


class _RenamedAttribute(property):
    """A property that reads a renamed attribute (``renamed_to`` names it) with a warning."""

    renamed_to: str = ""


def renamed_attribute(new: str, old: str) -> property:
    """A read-only property ``old`` that returns attribute ``new`` with a :class:`DeprecationWarning`.

    The alias a result class keeps for a renamed public attribute (``subject`` ->
    ``participant``, ``nobs`` -> ``n_rows``); its ``renamed_to`` names the new attribute, which
    is how ``tests/test_vocabulary.py`` tells an alias from an attribute of its own.

    >>> class Fit:
    ...     subject = renamed_attribute("participant", "subject")
    ...     def __init__(self):
    ...         self.participant = "pid"
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     Fit().subject
    'pid'
    >>> str(w[0].message), Fit.subject.renamed_to
    ('Fit.subject is deprecated; use Fit.participant', 'participant')
    """
    def get(self):
        import warnings  # noqa: PLC0415

        cls = type(self).__name__
        warnings.warn(f"{cls}.{old} is deprecated; use {cls}.{new}", DeprecationWarning, stacklevel=2)
        return getattr(self, new)

    alias = _RenamedAttribute(get, doc=f"Deprecated alias of ``{new}``.")
    alias.renamed_to = new
    return alias


def resolve_direction(direction, *, allow_auto: bool = False, where: str = "") -> str:
    """The test-positive rule ``"<"`` / ``">"`` (``"auto"`` where allowed), reading the old ``+1`` / ``-1``.

    ``">"``: a value above the threshold counts as positive (responder, flagged); ``"<"``:
    below. ``+1`` / ``-1`` (the old responder convention: +1 = an increase is the improvement)
    are read as ``">"`` / ``"<"`` with a :class:`DeprecationWarning`.

    >>> resolve_direction(">")
    '>'
    """
    if not isinstance(direction, str) and direction in (1, -1):
        import warnings  # noqa: PLC0415

        new = ">" if direction == 1 else "<"
        warnings.warn(f"{where + ': ' if where else ''}direction={direction:+d} is deprecated; pass "
                      f"direction={new!r}", DeprecationWarning, stacklevel=3)
        return new
    allowed = ("<", ">", "auto") if allow_auto else ("<", ">")
    if direction not in allowed:
        raise AnalysisError(f"direction must be one of {allowed}, got {direction!r}")
    return direction


def html_table(frame: pd.DataFrame, *, digits: int = 4) -> str:
    """A DataFrame as an HTML table with every label and value escaped.

    Numbers are shown with ``digits`` significant digits; text (arm, rater, visit labels
    coming from the data) is escaped with :func:`html.escape`, column names too.

    >>> html_table(pd.DataFrame({"arm": ["<b>x</b>"], "estimate": [1.234567]}))  # doctest: +ELLIPSIS
    '<table ...&lt;b&gt;x&lt;/b&gt;...1.235...'
    """
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        return html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False, name=None))
    return f'<table class="dataframe hipstats"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Result:
    """Base of every analysis result: ``summary()``, ``to_frame()``, ``plot()``, ``notes``.

    Subclasses implement :meth:`summary` (and usually :meth:`to_frame` and :meth:`plot`) and
    set ``_title``. Notes are added with :meth:`add_note` / :meth:`add_notes`; sub-analyses
    that the data could not support with :meth:`mark_not_estimable`.

    Attributes
    ----------
    notes : list of str
        Plain-language notes (exclusions with their counts and reasons, names found in the
        data, sub-analyses that could not be estimated).
    not_estimable : dict of str to str
        Sub-analysis name -> the reason it could not be estimated.
    confidence : float or None
        Confidence level of the result's intervals.
    """

    _title = "hipstats result"

    def __getattr__(self, name):
        # ``confidence`` is None for a result without intervals (a fallback, not a class
        # attribute, so dataclass results can declare it as a field)
        if name == "confidence":
            return None
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------ notes
    @property
    def notes(self) -> list[str]:
        """Plain-language notes (a list of str)."""
        notes = self.__dict__.get("_notes")
        if notes is None:
            notes = []
            object.__setattr__(self, "_notes", notes)
        return notes

    @notes.setter
    def notes(self, value: Iterable[str]) -> None:
        object.__setattr__(self, "_notes", [str(v) for v in value])

    @property
    def not_estimable(self) -> dict[str, str]:
        """Sub-analysis name -> why the data could not support it."""
        ne = self.__dict__.get("_not_estimable")
        if ne is None:
            ne = {}
            object.__setattr__(self, "_not_estimable", ne)
        return ne

    @not_estimable.setter
    def not_estimable(self, value) -> None:
        object.__setattr__(self, "_not_estimable", {str(k): str(v) for k, v in dict(value).items()})

    def add_note(self, text: str) -> None:
        """Append one note (duplicates are kept once)."""
        text = str(text)
        if text and text not in self.notes:
            self.notes.append(text)

    def add_notes(self, texts: Iterable[str] | None) -> None:
        """Append several notes, e.g. a view's ``attrs["notes"]``."""
        for t in texts or ():
            self.add_note(t)

    def mark_not_estimable(self, name: str, reason) -> None:
        """Record that sub-analysis ``name`` could not be estimated, and why (also as a note)."""
        self.not_estimable[str(name)] = str(reason)
        self.add_note(f"{str(name).replace('_', ' ')}: not estimable: {reason}")

    # ------------------------------------------------------------------ tables
    def summary(self) -> pd.DataFrame:
        """The key-estimate table."""
        raise NotImplementedError(f"{type(self).__name__} does not define summary()")

    def to_frame(self) -> pd.DataFrame:
        """The full tidy table (by default the summary)."""
        return self.summary()

    def plot(self, **kwargs):
        """The result's figure."""
        raise NotImplementedError(f"{type(self).__name__} has no figure")

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every public table of the result: ``summary``, ``to_frame`` and DataFrame attributes.

        A part that cannot be computed on these data (raises an error) is left out.
        """
        out: dict[str, pd.DataFrame] = {}
        for name in ("summary", "to_frame"):
            try:
                t = getattr(self, name)()
            except Exception:  # noqa: BLE001 - a part the data cannot support has no table
                continue
            if isinstance(t, pd.DataFrame):
                out[name] = t
        for name, value in vars(self).items():
            if not name.startswith("_") and isinstance(value, pd.DataFrame):
                out[name] = value
        return out

    # ------------------------------------------------------------------ display
    def _summary_or_none(self) -> pd.DataFrame | None:
        try:
            return self.summary()
        except Exception:  # noqa: BLE001 - a display must not raise
            return None

    def __repr__(self) -> str:
        s = self._summary_or_none()
        with pd.option_context("display.width", 160, "display.max_columns", None, "display.max_colwidth", 70):
            body = "" if s is None else "\n" + s.to_string(index=False)
        notes = "".join(f"\nnote: {n}" for n in self.notes)
        return f"{self._title}{body}{notes}"

    def _repr_html_(self) -> str:
        s = self._summary_or_none()
        conf = self.confidence
        level = f" ({round(100 * conf)}% confidence intervals)" if isinstance(conf, float) else ""
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<h4>{html.escape(self._title)}{html.escape(level)}</h4>"
                + ("" if s is None else html_table(s))
                + (f"<ul class=\"hipstats-notes\">{notes}</ul>" if notes else ""))

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        return dict(self.__dict__)

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)
