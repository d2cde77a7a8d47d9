"""REDCap as REDCap writes it: the example cohort exported as a REDCap project (raw data export +
data dictionary with every field kind, REDCap's file names) reads back as the same cohort as the
CSV folder.

The exporter below is written from REDCap's documented export format, independently of the
reader: coded radio/dropdown/yes-no fields, checkbox columns ``faults___<code>``, ``_complete``
status fields, notes/calc/descriptive fields, an identifier-flagged field, ``_arm_1`` events, a
repeating training-log instrument, the site as ``redcap_data_access_group``, measure fields
named by the documented rule and device/position carried by ``@HIPSTATS(...)`` annotations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hipstats as hs
from hipstats.cli import main
from hipstats.data.readers.redcap import RedcapDictionary, find_redcap_project

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "example"
DICT_COLUMNS = ["Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
                "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
                "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
                "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
                "Matrix Ranking?", "Field Annotation"]


def _choices(labels):
    return " | ".join(f"{i}, {lab}" for i, lab in enumerate(labels, start=1))


def export_redcap_project(src: Path, folder: Path, project: str = "HipMobility", *,
                          identifiers: bool = False) -> tuple[Path, Path]:
    """Write the CSV cohort in ``src`` as a REDCap raw-data export and data dictionary.

    As REDCap's de-identified export ("remove all tagged identifier fields") unless
    ``identifiers``: the dictionary flags ``initials``, the data leave it out."""
    m = pd.read_csv(src / "measurements.csv", dtype=str, keep_default_na=False)
    p = pd.read_csv(src / "participants.csv", dtype=str, keep_default_na=False)
    s = pd.read_csv(src / "sessions.csv", dtype=str, keep_default_na=False)
    folder.mkdir(parents=True, exist_ok=True)
    fields = []  # dictionary rows

    def add(name, form, ftype, choices="", validation="", identifier="", annotation=""):
        fields.append({"Variable / Field Name": name, "Form Name": form, "Field Type": ftype,
                       "Field Label": name.replace("_", " "), "Choices, Calculations, OR Slider Labels": choices,
                       "Text Validation Type OR Show Slider Number": validation, "Identifier?": identifier,
                       "Field Annotation": annotation})

    arms, sexes, sports, legs = (sorted(p[c].unique()) for c in ("arm", "sex", "sport", "dominant_leg"))
    add("record_id", "enrolment", "text")
    add("initials", "enrolment", "text", identifier="y")
    add("intro", "enrolment", "descriptive")
    add("arm", "enrolment", "radio", _choices(arms))
    add("sex", "enrolment", "radio", _choices(sexes))
    add("age_years", "enrolment", "text", validation="integer")
    add("height_cm", "enrolment", "text", validation="number")
    add("mass_kg", "enrolment", "text", validation="number")
    add("bmi", "enrolment", "calc", "round([mass_kg]/(([height_cm]/100)^2),1)")
    add("sport", "enrolment", "dropdown", _choices(sports))
    add("dominant_leg", "enrolment", "radio", _choices(legs))
    add("enrolment_notes", "enrolment", "notes")
    # visit form: one column per measure x side x pelvis x trial x (second) rater
    for f in ("visit_date", "week", "rater", "rater_2"):
        add(f, "visit", "text", validation={"visit_date": "date_ymd", "week": "number"}.get(f, ""))
    m["rk"] = np.where(m["rater"] == "R1", "", "_r2")
    m["field"] = (m["measure"] + np.where(m["side"] != "", "_" + m["side"], "")
                  + np.where((m["pelvis"] != "") & (m["measure"] != "pelvic_tilt_deg"), "_" + m["pelvis"], "")
                  + "_t" + m["trial"] + m["rk"])
    assert (m.loc[m["measure"] == "pelvic_tilt_deg", "pelvis"] == "").all()
    for field, g in m.groupby("field", sort=True):
        device, position = g["device"].iloc[0], g["position"].iloc[0]
        assert g["device"].nunique() == 1 and g["position"].nunique() == 1
        ann = " ".join(f"{k}={v}" for k, v in (("device", device), ("position", position)) if v)
        scored = g["measure"].iloc[0].endswith("_score")
        add(field, "visit", "radio" if scored else "text", "0, 0 | 1, 1 | 2, 2 | 3, 3 | 4, 4 | 5, 5" if scored else "",
            "" if scored else "number", annotation=f"@HIPSTATS({ann})" if ann else "")
    add("visit_comments", "visit", "notes")
    # training log (repeating instrument)
    exercises = sorted(s["exercise"].unique())
    faults = sorted({f for v in s["faults"] if v for f in v.split(";")})
    for f, kind, ch in (("session", "text", ""), ("date", "text", ""), ("week", "text", ""),
                        ("exercise", "dropdown", _choices(exercises)), ("sets", "text", ""), ("reps", "text", ""),
                        ("load_kg", "text", ""), ("rpe", "text", ""), ("pain_nrs", "text", ""),
                        ("faults", "checkbox", _choices(faults)), ("completed", "yesno", "")):
        if f != "week":  # the visit form's week field serves the log too (one field, one name)
            add(f, "training_log", kind, ch, "number" if kind == "text" and f != "date" else "")
    dictionary = pd.DataFrame(fields).reindex(columns=DICT_COLUMNS).fillna("")

    code = lambda labels: {lab: str(i) for i, lab in enumerate(labels, start=1)}  # noqa: E731
    rows = []
    for _, r in p.iterrows():
        rows.append({"record_id": r["participant_id"], "redcap_event_name": "baseline_arm_1",
                     "redcap_data_access_group": r["site"], "initials": "XY", "arm": code(arms)[r["arm"]],
                     "sex": code(sexes)[r["sex"]], "age_years": r["age_years"], "height_cm": r["height_cm"],
                     "mass_kg": r["mass_kg"], "bmi": "22.0", "sport": code(sports)[r["sport"]],
                     "dominant_leg": code(legs)[r["dominant_leg"]], "enrolment_notes": "called twice, fine",
                     "enrolment_complete": "2"})
    visits = m.pivot_table(index=["participant_id", "visit", "visit_date", "week"], columns="field",
                           values="value", aggfunc="first").reset_index()
    raters = m[m["rater"] != "R1"].groupby(["participant_id", "visit"])["rater"].first()
    site = p.set_index("participant_id")["site"].to_dict()
    measure_fields = set(m["field"])
    for _, r in visits.iterrows():
        row = {"record_id": r["participant_id"], "redcap_event_name": f"{r['visit']}_arm_1",
               "redcap_data_access_group": site[r["participant_id"]],
               "visit_date": r["visit_date"], "week": r["week"], "rater": "R1",
               "rater_2": raters.get((r["participant_id"], r["visit"]), ""), "visit_comments": "note text",
               "visit_complete": "2"}
        # a score is a radio field: its code is "0", never the "-0" a simulated score can carry
        row.update({f: ("" if pd.isna(v) else "0" if v == "-0" else v) for f, v in r.items() if f in measure_fields})
        rows.append(row)
    instances = s.groupby("participant_id", sort=False).cumcount() + 1
    for inst, (_, r) in zip(instances, s.iterrows()):
        row = {"record_id": r["participant_id"], "redcap_event_name": "training_arm_1",
               "redcap_repeat_instrument": "training_log", "redcap_repeat_instance": str(inst),
               "redcap_data_access_group": site[r["participant_id"]],
               "session": r["session"], "date": r["date"], "week": r["week"],
               "exercise": code(exercises)[r["exercise"]], "sets": r["sets"], "reps": r["reps"],
               "load_kg": r["load_kg"], "rpe": r["rpe"], "pain_nrs": r["pain_nrs"],
               "completed": {"True": "1", "False": "0"}[r["completed"]], "training_log_complete": "1"}
        chosen = set(r["faults"].split(";")) if r["faults"] else set()
        row.update({f"faults___{code(faults)[f]}": ("1" if f in chosen else "0") for f in faults})
        rows.append(row)
    columns = ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
               "redcap_data_access_group"]
    for f in fields:
        name = f["Variable / Field Name"]
        if f["Field Type"] == "descriptive" or name == "record_id" or (f["Identifier?"] and not identifiers):
            continue
        if f["Field Type"] == "checkbox":
            columns += [f"{name}___{code(faults)[x]}" for x in faults]
        else:
            columns.append(name)
    for form in ("enrolment", "visit", "training_log"):
        columns.append(f"{form}_complete")
    data = pd.DataFrame(rows).reindex(columns=list(dict.fromkeys(columns))).fillna("")
    data_file = folder / f"{project}_DATA_2026-10-01_0930.csv"
    dict_file = folder / f"{project}_DataDictionary_2026-10-01.csv"
    data.to_csv(data_file, index=False)
    dictionary.to_csv(dict_file, index=False)
    return data_file, dict_file


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("redcap")
    export_redcap_project(EXAMPLE, folder)
    return folder


def _same_tables(a: hs.Cohort, b: hs.Cohort) -> None:
    for name in ("participants", "measurements", "sessions"):
        x, y = getattr(a, name), getattr(b, name)
        cols = [c for c in x.columns if not c.startswith("_")]
        assert sorted(cols) == sorted(c for c in y.columns if not c.startswith("_")), name
        # -0.0 and 0.0 are one value (a REDCap code "0"); everything else must match as text
        key = lambda df: df[cols].astype(str).replace("-0.0", "0.0").sort_values(cols).reset_index(drop=True)  # noqa: E731
        pd.testing.assert_frame_equal(key(x), key(y), obj=name)


def test_project_files_are_found_by_redcaps_names(project):
    data, dictionary = find_redcap_project(project)
    assert data.name == "HipMobility_DATA_2026-10-01_0930.csv"
    assert dictionary.name == "HipMobility_DataDictionary_2026-10-01.csv"
    d = RedcapDictionary.read(dictionary)
    assert d.identifier_fields == ["initials"]
    assert {"notes", "calc", "descriptive", "checkbox", "radio", "dropdown", "yesno", "text"} <= \
        {f.type for f in d.fields.values()}


def test_redcap_project_validates_clean_and_is_the_csv_cohort(project):
    report = hs.validate(project)
    assert report.ok, report.to_text(max_rows=20)
    _same_tables(hs.load_cohort(EXAMPLE), hs.load_cohort(project))
    assert main(["validate", str(project)]) == 0


def test_notes_identifiers_and_status_fields_never_reach_the_tables(project):
    cohort = hs.load_cohort(project)
    cells = pd.concat([getattr(cohort, t).astype(str) for t in ("participants", "measurements", "sessions")])
    text = " ".join(cells.to_numpy().ravel().tolist())
    assert "note text" not in text and "called twice" not in text and "XY" not in cells.to_numpy()
    assert set(cohort.measurements["measure"].astype(str)) <= set(hs.schema.MEASURES)


def test_the_data_file_named_explicitly_finds_its_dictionary(project):
    data, _ = find_redcap_project(project)
    assert hs.validate(data).ok


def test_a_bad_code_names_the_redcap_field_and_record(project, tmp_path):
    data, dictionary = find_redcap_project(project)
    frame = pd.read_csv(data, dtype=str, keep_default_na=False)
    frame.loc[0, "arm"] = "7"
    frame.to_csv(tmp_path / data.name, index=False)
    (tmp_path / dictionary.name).write_bytes(dictionary.read_bytes())
    report = hs.validate(tmp_path)
    bad = report.to_frame()
    assert not report.ok and (bad["column"] == "arm").any() and (bad["value"].astype(str) == "7").any()
