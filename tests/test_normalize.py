"""Property-based tests of the label normalisers (hypothesis)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from hipstats.data import schema
from hipstats.data.normalize import (
    is_missing,
    normalise_bool,
    normalise_category,
    normalise_list,
    normalise_measure,
    normalise_sex,
    normalise_side,
    normalise_token,
    parse_number,
    radians_measure_name,
)

SIDE_SPELLINGS = {"left": ["l", "left", "lt", "Left", "LEFT", "L"], "right": ["r", "right", "rt", "Right", "R"]}


def case_and_space(draw_text: str, data) -> str:
    """Random upper/lower case and surrounding whitespace."""
    flips = data.draw(st.lists(st.booleans(), min_size=len(draw_text), max_size=len(draw_text)))
    body = "".join(c.upper() if f else c.lower() for c, f in zip(draw_text, flips))
    return data.draw(st.sampled_from(["", " ", "\t", "  "])) + body + data.draw(st.sampled_from(["", " ", "\n"]))


@given(st.data(), st.sampled_from([(k, s) for k, v in SIDE_SPELLINGS.items() for s in v]))
def test_side_ignores_case_and_space(data, pair):
    canonical, spelling = pair
    assert normalise_side(case_and_space(spelling, data)) == canonical


@given(st.text())
def test_side_is_idempotent_and_total(text):
    once = normalise_side(text)
    assert normalise_side(once) == once  # idempotent, never raises
    assert once is None or once in schema.SIDES or once == text


@given(st.text())
def test_token_is_idempotent_and_safe(text):
    t = normalise_token(text)
    assert normalise_token(t) == t
    assert all(c.isalnum() or c == "_" for c in t)
    assert not t.startswith("_") and not t.endswith("_")


@given(st.sampled_from(schema.DEVICES + schema.POSITIONS + schema.PELVIS_CONDITIONS), st.data())
def test_categories_survive_case_and_spacing(label, data):
    kind = ("device" if label in schema.DEVICES else "position" if label in schema.POSITIONS else "pelvis")
    assert normalise_category(case_and_space(label, data), kind) == label


@given(st.sampled_from(list(schema.MEASURES)), st.data())
def test_measure_names_are_fixed_points(name, data):
    assert normalise_measure(case_and_space(name, data)) == name
    assert radians_measure_name(name) is None


@given(st.lists(st.sampled_from(schema.FAULTS), max_size=4), st.sampled_from([";", "; ", ",", " ; "]))
def test_fault_lists_round_trip(faults, sep):
    assert normalise_list(sep.join(faults), "faults") == tuple(faults)


@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_parse_number_round_trips_floats(x):
    assert parse_number(repr(x)) == x
    assert parse_number(x) == x


@given(st.integers(-10_000, 10_000), st.integers(0, 99))
def test_decimal_comma(whole, frac):
    text = f"{whole},{frac:02d}"
    assert math.isclose(parse_number(text, decimal_comma=True), float(f"{whole}.{frac:02d}"))


@given(st.sampled_from(["", " ", "NA", "n/a", "NaN", "null", "None", "-"]))
def test_missing_markers(text):
    assert is_missing(text)
    assert normalise_side(text) is None and normalise_sex(text) is None and normalise_bool(text) is None


@settings(max_examples=50)
@given(st.sampled_from(["yes", "Y", "true", "1", "TRUE", "done"]), st.sampled_from(["no", "N", "false", "0", "skipped"]))
def test_bool_spellings(yes, no):
    assert normalise_bool(yes) is True and normalise_bool(no) is False


def test_radians_names():
    assert radians_measure_name("hip_ir_rad") == "hip_ir_deg"
    assert radians_measure_name("ASLR radians") == "aslr_deg"
    assert radians_measure_name("aslr_deg") is None
