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


def arm_palette(levels: Iterable[str]) -> dict[str, str]:
    """Map category levels (arms, sides, tilt classes) to fixed colour-blind-safe colours.

    Known labels keep the same colour in every figure; others take Okabe-Ito colours in order.
    """
    out: dict[str, str] = {}
    spare = iter(c for c in OKABE_ITO if c not in _FIXED.values())
    for level in levels:
        key = str(level)
        out[key] = _FIXED.get(key) or next(spare, "#000000")
    return out


@contextlib.contextmanager
def theme() -> Iterator[None]:
    """Context manager applying the hipstats seaborn theme to figures made inside it."""
    rc = {"figure.dpi": 100, "savefig.dpi": 110, "axes.titleweight": "bold",
          "axes.spines.top": False, "axes.spines.right": False}
    with sns.axes_style("whitegrid", rc=rc), sns.plotting_context("notebook"), mpl.rc_context(rc):
        yield
