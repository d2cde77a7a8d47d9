"""Write a hipstats cohort (CSV folder) as a REDCap project export: raw data export + data
dictionary, as REDCap writes them (written from REDCap's documented export format,
independently of the reader in hipstats.data.readers.redcap).

Field kinds: coded radio/dropdown/yes-no fields, checkbox columns ``faults___<code>``,
``<form>_complete`` status fields, notes/calc/descriptive fields, an identifier-flagged field
(left out of the data, as REDCap's de-identified export does), ``_arm_1`` events, a repeating
training-log instrument, the site as ``redcap_data_access_group``, measure fields named by the
documented rule (``<measure>[_side][_pelvis]_t<k>[_r2]``) and device/position carried by
``@HIPSTATS(...)`` annotations.

``python tests/redcap_export.py`` rewrites the committed fixture project
tests/fixtures/redcap_project/ from the first 12 participants of data/example.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

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
    dictionary = pd.DataFrame(fields).reindex(columns=DICT_COLUMNS, fill_value="").fillna("")

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


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "redcap_project"
FIXTURE_PARTICIPANTS = 12


def subset_cohort(src: Path, folder: Path, n: int = FIXTURE_PARTICIPANTS) -> Path:
    """The first ``n`` participants of the CSV cohort ``src`` as a CSV folder (the plain twin of the fixture)."""
    folder.mkdir(parents=True, exist_ok=True)
    p = pd.read_csv(src / "participants.csv", dtype=str, keep_default_na=False).head(n)
    keep = set(p["participant_id"])
    p.to_csv(folder / "participants.csv", index=False)
    for name in ("measurements", "sessions"):
        t = pd.read_csv(src / f"{name}.csv", dtype=str, keep_default_na=False)
        t[t["participant_id"].isin(keep)].to_csv(folder / f"{name}.csv", index=False)
    (folder / "hipstats.yaml").write_bytes((src / "hipstats.yaml").read_bytes())
    return folder


if __name__ == "__main__":  # regenerate the committed fixture
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        plain = subset_cohort(EXAMPLE, Path(tmp) / "plain")
        for old in FIXTURE.glob("HipMobility_*.csv"):
            old.unlink()
        export_redcap_project(plain, FIXTURE)
    sys.exit(0)
