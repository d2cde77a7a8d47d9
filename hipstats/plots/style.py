"""Shared figure theme: colour-blind-safe palette and seaborn defaults.

Every figure function in :mod:`hipstats.plots` calls :func:`apply_theme` (via
``with theme():``) so notebooks, scripts and reports look the same.

Examples
--------
>>> from hipstats.plots.style import arm_palette
>>> arm_palette(["control", "loading"])["control"]
'#999999'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import matplotlib as mpl
import seaborn as sns

#: Okabe-Ito palette (colour-blind safe), black omitted.
OKABE_ITO: tuple[str, ...] = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#F0E442",  # yellow
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
)
_FIXED = {"control": "#999999", "stretching": "#56B4E9", "loading": "#D55E00",
          "left": "#0072B2", "right": "#E69F00",
          "anterior": "#D55E00", "neutral": "#009E73", "posterior": "#0072B2",
          "free": "#E69F00"}


#: Colour order for labels without a fixed colour: Okabe-Ito (yellow last, it is faint on white), then
#: Paul Tol's muted scheme, both colour-blind safe; beyond that the order repeats.
_ORDER: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
                           "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255",
                           "#AA4499")

#: Human names of the measures, with units, for axes and tables.
MEASURE_LABELS = {"hip_ir_deg": "Hip internal rotation (deg)", "hip_er_deg": "Hip external rotation (deg)",
                  "aslr_deg": "ASLR angle (deg)", "pelvic_tilt_deg": "Standing pelvic tilt (deg)",
                  "aslr_mens_score": "Mens ASLR score (0-5)", "aslr_fms_score": "FMS ASLR score (0-3)"}


def measure_label(measure: str) -> str:
    """ "Hip internal rotation (deg)" for ``hip_ir_deg``; other names with spaces for underscores."""
    return MEASURE_LABELS.get(str(measure), str(measure).replace("_", " "))


def arm_label(arm) -> str:
    """An arm (or any category code) as a reader sees it: the data layer stores arms as codes with
    underscores for spaces (``usual_care``); pages, legends and headings show ``usual care``.

    >>> arm_label("usual_care"), arm_label("loading")
    ('usual care', 'loading')
    """
    return str(arm).replace("_", " ").strip()


def ci_name(source=None, default: float = 0.95) -> str:
    """ "90% CI": the level of the intervals a figure draws, read from ``source`` (a number, a result with
    ``confidence``, or a table with ``attrs["confidence"]`` or a ``confidence`` column), else ``default``.

    >>> import pandas as pd
    >>> ci_name(0.9), ci_name(pd.DataFrame({"confidence": [0.8]})), ci_name(None)
    ('90% CI', '80% CI', '95% CI')
    """
    import pandas as pd  # noqa: PLC0415

    level = source
    if isinstance(source, pd.DataFrame):
        level = source.attrs.get("confidence")
        if level is None and "confidence" in source.columns and source["confidence"].nunique() == 1:
            level = source["confidence"].iloc[0]
    elif source is not None and not isinstance(source, (int, float)):
        level = getattr(source, "confidence", None)
    try:
        level = float(level)
    except (TypeError, ValueError):
        level = default
    if not 0 < level < 1:
        level = default
    pct = 100 * level
    return f"{pct:.0f}% CI" if abs(pct - round(pct)) < 1e-9 else f"{pct:.1f}% CI"


def arm_palette(levels: Iterable[str]) -> dict[str, str]:
    """Map category levels (arms, sides, tilt classes) to colour-blind-safe colours, distinct for any number.

    Known labels keep the same colour in every figure; others take the next unused colour of
    Okabe-Ito, then Paul Tol's muted palette (17 distinct colours before the order repeats).

    >>> pal = arm_palette(["usual care", "hip loading", "mobility", "yoga"])
    >>> len(set(pal.values()))
    4
    """
    out: dict[str, str] = {}
    levels = [str(x) for x in levels]
    used = {_FIXED[k] for k in levels if k in _FIXED}
    spare = [c for c in _ORDER if c not in used]
    i = 0
    for key in levels:
        if key in _FIXED:
            out[key] = _FIXED[key]
        else:
            out[key] = spare[i % len(spare)]
            i += 1
    return out


def legend_outside(ax, title: str | None = None, **kwargs):
    """A legend to the right of the axes, clear of the data."""
    return ax.legend(title=title, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, borderaxespad=0.0,
                     **kwargs)


@contextlib.contextmanager
def theme() -> Iterator[None]:
    """Context manager applying the hipstats seaborn theme to figures made inside it."""
    rc = {"figure.dpi": 100, "savefig.dpi": 110, "axes.titleweight": "bold",
          "axes.spines.top": False, "axes.spines.right": False}
    with sns.axes_style("whitegrid", rc=rc), sns.plotting_context("notebook"), mpl.rc_context(rc):
        yield
