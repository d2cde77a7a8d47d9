"""Normalisers for the labels people actually type: sides, sexes, categories, booleans.

Each normaliser maps one raw cell to its canonical form (see :mod:`hipstats.data.schema`)
or to ``None`` when the cell is empty, and raises nothing: a value it cannot
place is returned unchanged so that validation can name it in its report.

Examples
--------
>>> from hipstats.data.normalize import normalise_category, normalise_side
>>> [normalise_side(v) for v in ["L", " right", "Lt", "", None]]
['left', 'right', 'left', None, None]
>>> normalise_category("Smart Phone", "device")
'smartphone'
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "label_week",
    "is_missing",
    "normalise_token",
    "normalise_side",
    "normalise_sex",
    "normalise_bool",
    "normalise_category",
    "normalise_list",
    "normalise_measure",
    "parse_number",
    "radians_measure_name",
]

_MISSING_STRINGS = {"", "na", "n/a", "nan", "none", "null", "-", "--", ".", "missing"}

_SIDE = {
    "l": "left", "left": "left", "lt": "left", "lft": "left", "links": "left", "gauche": "left",
    "izquierda": "left", "sinister": "left", "sin": "left",
    "r": "right", "right": "right", "rt": "right", "rgt": "right", "rechts": "right", "droite": "right",
    "derecha": "right", "dexter": "right", "dx": "right",
}
_SEX = {
    "f": "female", "female": "female", "w": "female", "woman": "female", "women": "female",
    "girl": "female",
    "m": "male", "male": "male", "man": "male", "men": "male", "boy": "male",
    "o": "other", "other": "other", "x": "other", "diverse": "other", "d": "other",
    "non_binary": "other", "nonbinary": "other",
}
_BOOL = {
    "true": True, "t": True, "yes": True, "y": True, "1": True, "1_0": True, "done": True,
    "completed": True,
    "false": False, "f": False, "no": False, "n": False, "0": False, "0_0": False, "skipped": False,
    "missed": False,
}
_ALIASES: dict[str, dict[str, str]] = {
    "device": {"smart_phone": "smartphone", "phone_app": "smartphone", "app": "smartphone",
               "goniometry": "goniometer", "inclinometry": "inclinometer",
               "digital_inclinometer": "inclinometer", "inertial_sensor": "imu", "palpation_meter": "palm",
               "palpation_meter_palm": "palm"},
    "position": {"lying_prone": "prone", "sitting": "seated", "sit": "seated", "lying_supine": "supine"},
    "pelvis": {"own_posture": "free", "own": "free", "habitual": "free", "unconstrained": "free",
               "neutral_setup": "neutral", "neutral_pelvis": "neutral", "set_neutral": "neutral",
               "anterior_tilt": "anterior", "posterior_tilt": "posterior"},
    "exercise": {"ffe_split_squats": "ffe_split_squat", "split_squat": "ffe_split_squat",
                 "rear_foot_elevated_split_squat": "ffe_split_squat",
                 "staggered_stance_rdl": "staggered_stance_deadlift", "staggered_deadlift": "staggered_stance_deadlift",
                 "b_stance_rdl": "staggered_stance_deadlift", "adductor_wall_drill": "wall_adductor_drill",
                 "90_90": "hold_90_90", "90_90_hold": "hold_90_90", "bridge": "glute_bridge",
                 "hamstring_curls": "hamstring_curl"},
    "faults": {"knee_lean": "back_knee_lean", "back_knee": "back_knee_lean", "knee_drift": "front_knee_drift",
               "front_knee": "front_knee_drift", "rounding": "lumbar_rounding", "lumbar_flexion": "lumbar_rounding",
               "loss_of_neutral_pelvis": "pelvic_tilt_loss", "pelvis_loss": "pelvic_tilt_loss",
               "hip_shift": "poor_hip_shift"},
    "measure": {"aslr": "aslr_deg", "aslr_angle": "aslr_deg", "aslr_degrees": "aslr_deg",
                "hip_ir": "hip_ir_deg", "ir": "hip_ir_deg", "ir_deg": "hip_ir_deg",
                "internal_rotation": "hip_ir_deg", "hip_internal_rotation": "hip_ir_deg",
                "hip_er": "hip_er_deg", "er": "hip_er_deg", "er_deg": "hip_er_deg",
                "external_rotation": "hip_er_deg",
                "pelvic_tilt": "pelvic_tilt_deg", "tilt": "pelvic_tilt_deg", "standing_tilt": "pelvic_tilt_deg",
                "standing_pelvic_tilt": "pelvic_tilt_deg",
                "mens": "aslr_mens_score", "aslr_mens": "aslr_mens_score", "mens_score": "aslr_mens_score",
                "fms": "aslr_fms_score", "aslr_fms": "aslr_fms_score", "fms_score": "aslr_fms_score"},
}
_RADIANS_NAME = re.compile(r"^(?P<stem>.+?)_?(rad|rads|radian|radians)$")


def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT and blank or conventional 'missing' strings.

    >>> is_missing(" "), is_missing("NA"), is_missing(0)
    (True, True, False)
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, np.floating) and np.isnan(value):
        return True
    if isinstance(value, str) and value.strip().lower() in _MISSING_STRINGS:
        return True
    return False


def normalise_token(value: Any) -> str:
    """Lower-case, trim, and join words with ``_`` (``"Front knee-Drift "`` -> ``front_knee_drift``)."""
    return re.sub(r"[^0-9a-z]+", "_", str(value).strip().lower()).strip("_")


def normalise_side(value: Any) -> Any:
    """Map L, R, Left, rt, ... to ``left``/``right``; empty to None; anything else unchanged.

    >>> normalise_side("Rt"), normalise_side("both")
    ('right', 'both')
    """
    if is_missing(value):
        return None
    return _SIDE.get(normalise_token(value), value)


def normalise_sex(value: Any) -> Any:
    """Map F/M/woman/... to ``female``/``male``/``other``; empty to None."""
    if is_missing(value):
        return None
    return _SEX.get(normalise_token(value), value)


def normalise_bool(value: Any) -> Any:
    """Map yes/no/true/false/1/0 (any case) to bool; empty to None; anything else unchanged."""
    if is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    return _BOOL.get(normalise_token(value), value)


def normalise_category(value: Any, kind: str) -> Any:
    """Canonical form of a category label of the given column kind (device, pelvis, ...)."""
    if is_missing(value):
        return None
    token = normalise_token(value)
    return _ALIASES.get(kind, {}).get(token, token)


def normalise_measure(value: Any) -> Any:
    """Canonical measure name (``ASLR`` -> ``aslr_deg``, ``Hip IR`` -> ``hip_ir_deg``)."""
    return normalise_category(value, "measure")


def radians_measure_name(value: Any) -> str | None:
    """If a measure or column name says radians (``hip_ir_rad``), return the degree measure it stands for.

    >>> radians_measure_name("hip_ir_rad"), radians_measure_name("hip_ir_deg")
    ('hip_ir_deg', None)
    """
    if is_missing(value):
        return None
    m = _RADIANS_NAME.match(normalise_token(value))
    if not m:
        return None
    stem = m.group("stem")
    return _ALIASES["measure"].get(stem, stem + "_deg")


def normalise_list(value: Any, kind: str) -> Any:
    """Split a ``;``- or ``,``-separated list and normalise each item; empty to an empty tuple."""
    if is_missing(value):
        return ()
    parts = re.split(r"[;,|]", str(value))
    return tuple(normalise_category(p, kind) for p in parts if not is_missing(p))


def parse_number(value: Any, *, decimal_comma: bool = False) -> float | None:
    """Parse a cell as a float; None when empty; NaN-free. Raises ValueError when not a number.

    >>> parse_number("36,5", decimal_comma=True), parse_number(" 12 ")
    (36.5, 12.0)
    """
    if is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    text = str(value).strip()
    if decimal_comma and re.fullmatch(r"[-+]?\d+,\d+", text):
        text = text.replace(",", ".")
    out = float(text)
    if not math.isfinite(out):
        raise ValueError(value)
    return out


_LABEL_WEEK = re.compile(r"(?:^|[^a-z])(?:w|wk|week|weeks)[_ ]?(\d+(?:\.\d+)?)")


def label_week(label: Any) -> float | None:
    """Week encoded in a visit label: baseline -> 0, week_6 / wk6 / w6 -> 6, else None.

    Examples
    --------
    >>> [label_week(v) for v in ("baseline", "week_6", "wk12", "retest")]
    [0.0, 6.0, 12.0, None]
    """
    if not isinstance(label, str):
        return None
    t = label.strip().lower()
    if t in ("baseline", "bl", "base", "pre", "week_0", "w0"):
        return 0.0
    m = _LABEL_WEEK.search(t)
    return float(m.group(1)) if m else None
