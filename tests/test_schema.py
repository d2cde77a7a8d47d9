"""The data contract module and the data dictionary generated from it."""

from pathlib import Path

import pytest

from hipstats.data import schema


def test_data_dictionary_is_up_to_date():
    doc = Path(__file__).parents[1] / "docs" / "data_dictionary.md"
    assert doc.read_text(encoding="utf-8") == schema.data_dictionary_markdown(), \
        "regenerate with: python -m hipstats.data.schema > docs/data_dictionary.md"


@pytest.mark.parametrize("name", ["name", "First Name", "surname", "E-mail", "email_address", "Phone",
                                  "mobile_number", "Address", "street", "DOB", "Date of Birth", "birthdate",
                                  "MRN", "medical_record_number", "NHS number"])
def test_identifier_columns_detected(name):
    assert schema.is_identifier_column(name)


@pytest.mark.parametrize("name", ["participant_id", "site", "sport", "arm", "rater", "device", "exercise",
                                  "visit_date", "age_years", "named_exercise_list"])
def test_ordinary_columns_not_flagged(name):
    assert not schema.is_identifier_column(name)


def test_every_measure_has_sane_range():
    for m in schema.MEASURES.values():
        assert m.plausible[0] < m.plausible[1]
        assert m.unit in ("deg", "score")
