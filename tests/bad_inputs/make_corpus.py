"""Write the corpus of bad inputs used by tests/test_bad_inputs.py.

Each case is a folder holding a small cohort (measurements, participants,
sessions) with exactly one thing wrong, and ``expected.json`` naming the problem
that validation must report: table, rule, row (as the user sees it: header = row 1),
column. Run ``python tests/bad_inputs/make_corpus.py`` to regenerate; the
files are committed so the corpus is visible and reviewable.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent


def base_tables() -> dict[str, pd.DataFrame]:
    """A tiny valid cohort: 3 participants, baseline and week 6, IR, ASLR and tilt, 1 trial."""
    rows = []
    for pid, ir, aslr, tilt in (("P001", 35.0, 78.0, 9.5), ("P002", 41.5, 84.0, 12.0), ("P003", 28.0, 66.0, 6.5)):
        for visit, week, date, gain in (("baseline", 0, "2026-02-02", 0.0), ("week_6", 6, "2026-03-16", 3.0)):
            for side in ("left", "right"):
                rows.append([pid, visit, week, date, "hip_ir_deg", side, ir + gain, 1, "R1", "goniometer", "prone", "free"])
                rows.append([pid, visit, week, date, "aslr_deg", side, aslr + gain, 1, "R1", "inclinometer", "", "free"])
            rows.append([pid, visit, week, date, "pelvic_tilt_deg", "", tilt, 1, "R1", "inclinometer", "", ""])
    measurements = pd.DataFrame([r[:2] + [float(r[2])] + r[3:] for r in rows], columns=["participant_id", "visit", "week", "visit_date", "measure", "side",
                                               "value", "trial", "rater", "device", "position", "pelvis"])
    participants = pd.DataFrame({"participant_id": ["P001", "P002", "P003"], "arm": ["control", "loading", "stretching"],
                                 "sex": ["female", "male", "female"], "age_years": [23, 27, 31],
                                 "height_cm": [168.0, 181.5, 172.0], "mass_kg": [61.0, 80.5, 66.0]})
    sessions = pd.DataFrame({"participant_id": ["P002", "P002", "P002"], "session": [1, 2, 3],
                             "date": ["2026-02-04", "2026-02-07", "2026-02-11"], "week": [0.3, 0.7, 1.3],
                             "exercise": ["ffe_split_squat"] * 3, "sets": [3, 3, 3], "reps": [8, 8, 8],
                             "load_kg": [10.0, 12.5, 12.5], "rpe": [6, 6, 7], "pain_nrs": [1, 0, 2],
                             "faults": ["", "back_knee_lean", ""], "completed": [True, True, True]})
    return {"measurements": measurements, "participants": participants, "sessions": sessions}


def row_of(index: int) -> int:
    """User-facing row number of a 0-based data index (header is row 1)."""
    return index + 2


CASES: list[dict] = []


def case(name, expect, description):
    def deco(fn):
        CASES.append({"name": name, "fn": fn, "expect": expect, "description": description})
        return fn
    return deco


@case("missing_column", [{"table": "measurements", "rule": "required_column", "row": None, "column": "value"}],
      "measurements has no value column")
def _(t):
    t["measurements"] = t["measurements"].drop(columns=["value"])


@case("not_a_number", [{"table": "measurements", "rule": "type", "row": 6, "column": "value"}],
      "a value cell holds text")
def _(t):
    t["measurements"]["value"] = t["measurements"]["value"].astype(object)
    t["measurements"].loc[4, "value"] = "abc"


@case("out_of_range", [{"table": "measurements", "rule": "range", "row": 2, "column": "value"}],
      "hip IR of 95 degrees is implausible")
def _(t):
    t["measurements"].loc[0, "value"] = 95.0


@case("unknown_category", [{"table": "measurements", "rule": "category", "row": 3, "column": "device"}],
      "device 'protractor' is not an allowed device")
def _(t):
    t["measurements"].loc[1, "device"] = "protractor"


@case("duplicate_row", [{"table": "measurements", "rule": "duplicate_row", "row": 32, "column": None}],
      "a row is repeated at the end of the file")
def _(t):
    m = t["measurements"]
    t["measurements"] = pd.concat([m, m.iloc[[3]]], ignore_index=True)


@case("duplicate_key", [{"table": "measurements", "rule": "duplicate_key", "row": 32, "column": None}],
      "same participant, visit, measure, side and trial recorded twice with different values")
def _(t):
    m = t["measurements"]
    extra = m.iloc[[0]].copy()
    extra["value"] = 36.0
    t["measurements"] = pd.concat([m, extra], ignore_index=True)


@case("weeks_backwards", [{"table": "measurements", "rule": "week_order", "row": 2, "column": "week"}],
      "P001's week_6 visit is recorded at week 0.5 while baseline is at week 1 (dates agree with weeks)")
def _(t):
    m = t["measurements"]
    sel = m["participant_id"] == "P001"
    m.loc[sel & (m["visit"] == "baseline"), "week"] = 1
    m.loc[sel & (m["visit"] == "week_6"), "week"] = 0.5
    m.loc[sel & (m["visit"] == "week_6"), "visit_date"] = "2026-02-02"
    m.loc[sel & (m["visit"] == "baseline"), "visit_date"] = "2026-02-05"


@case("week_inconsistent", [{"table": "measurements", "rule": "week_consistency", "row": 2, "column": "week"}],
      "one reading of P001's baseline visit says week 2")
def _(t):
    t["measurements"].loc[1, "week"] = 2


@case("unknown_participant", [{"table": "measurements", "rule": "unknown_participant", "row": 32,
                               "column": "participant_id"}],
      "measurements for P999, who is not in participants")
def _(t):
    m = t["measurements"]
    extra = m.iloc[[0]].copy()
    extra["participant_id"] = "P999"
    t["measurements"] = pd.concat([m, extra], ignore_index=True)


@case("unknown_arm", [{"table": "participants", "rule": "unknown_arm", "row": 3, "column": "arm"}],
      "arm 'yoga' is not declared")
def _(t):
    t["participants"].loc[1, "arm"] = "yoga"


@case("identifier_name", [{"table": "participants", "rule": "identifier_column", "row": None, "column": "Name"}],
      "participants carry a Name column")
def _(t):
    t["participants"]["Name"] = ["Ann Lee", "Bo Chan", "Cy Diaz"]


@case("identifier_email", [{"table": "participants", "rule": "identifier_column", "row": None, "column": "E-mail"}],
      "participants carry an E-mail column")
def _(t):
    t["participants"]["E-mail"] = ["a@x.org", "b@x.org", "c@x.org"]


@case("identifier_dob", [{"table": "participants", "rule": "identifier_column", "row": None,
                          "column": "Date of Birth"}],
      "participants carry a date of birth")
def _(t):
    t["participants"]["Date of Birth"] = ["2001-01-01", "1999-05-05", "1995-03-03"]


@case("identifier_mrn", [{"table": "measurements", "rule": "identifier_column", "row": None, "column": "MRN"}],
      "measurements carry a medical record number column")
def _(t):
    t["measurements"]["MRN"] = "12345678"


@case("identifier_value", [{"table": "participants", "rule": "identifier_value", "row": 2,
                            "column": "participant_id"},
                           {"table": "measurements", "rule": "unknown_participant", "row": 2,
                            "column": "participant_id"}],
      "a participant_id is an email address")
def _(t):
    t["participants"].loc[0, "participant_id"] = "ann.lee@example.org"


@case("empty_file", [{"table": "measurements", "rule": "empty_file", "row": None, "column": None}],
      "measurements.csv is zero bytes")
def _(t):
    t["measurements"] = b""


@case("header_only", [{"table": "participants", "rule": "empty_file", "row": None, "column": None}],
      "participants.csv has a header and no rows")
def _(t):
    t["participants"] = t["participants"].iloc[0:0]


@case("wrong_encoding", [{"table": "participants", "rule": "encoding", "row": 3, "column": None}],
      "participants.csv saved as Windows-1252 (a site named Zürich)")
def _(t):
    p = t["participants"].copy()
    p["site"] = ["Basel", "Zürich", "Bern"]
    t["participants"] = p.to_csv(index=False).encode("cp1252")


@case("excel_header_offset", [{"table": "participants", "rule": "excel_header", "row": 3, "column": None}],
      "participants.xlsx has a title and a blank row above the header")
def _(t):
    t["participants"] = ("xlsx_offset", t["participants"])


@case("radians_values", [{"table": "measurements", "rule": "radians", "row": 2, "column": "value"}],
      "hip IR recorded in radians")
def _(t):
    m = t["measurements"]
    sel = m["measure"] == "hip_ir_deg"
    m.loc[sel, "value"] = (m.loc[sel, "value"] * math.pi / 180).round(4)


@case("radians_name", [{"table": "measurements", "rule": "radians", "row": 2, "column": "measure"}],
      "a measure named hip_ir_rad")
def _(t):
    t["measurements"].loc[0, "measure"] = "hip_ir_rad"
    t["measurements"].loc[0, "value"] = 0.61


@case("side_missing", [{"table": "measurements", "rule": "side", "row": 3, "column": "side"}],
      "an ASLR reading without a side")
def _(t):
    t["measurements"].loc[1, "side"] = ""


@case("side_on_tilt", [{"table": "measurements", "rule": "side", "row": 6, "column": "side"}],
      "standing pelvic tilt given a side")
def _(t):
    t["measurements"].loc[4, "side"] = "L"


@case("score_not_integer", [{"table": "measurements", "rule": "integer_score", "row": 32, "column": "value"}],
      "an FMS ASLR score of 2.5")
def _(t):
    m = t["measurements"]
    extra = m.iloc[[0]].copy()
    extra["measure"] = "aslr_fms_score"
    extra["value"] = 2.5
    extra["device"] = ""
    extra["position"] = ""
    t["measurements"] = pd.concat([m, extra], ignore_index=True)


@case("duplicate_participant", [{"table": "participants", "rule": "duplicate_key", "row": 5, "column": "participant_id"}],
      "P001 listed twice with different arms")
def _(t):
    p = t["participants"]
    extra = p.iloc[[0]].copy()
    extra["arm"] = "loading"
    t["participants"] = pd.concat([p, extra], ignore_index=True)


@case("missing_table", [{"table": "participants", "rule": "missing_table", "row": None, "column": None}],
      "the folder has no participants table")
def _(t):
    t["participants"] = None


@case("height_in_metres", [{"table": "participants", "rule": "range", "row": 2, "column": "height_cm"},
                           {"table": "participants", "rule": "range", "row": 3, "column": "height_cm"},
                           {"table": "participants", "rule": "range", "row": 4, "column": "height_cm"}],
      "height given in metres (wrong unit)")
def _(t):
    t["participants"]["height_cm"] = [1.68, 1.815, 1.72]


@case("bad_fault_and_pain", [{"table": "sessions", "rule": "category", "row": 3, "column": "faults"},
                             {"table": "sessions", "rule": "range", "row": 4, "column": "pain_nrs"}],
      "an unknown fault label and a pain score of 12")
def _(t):
    t["sessions"]["faults"] = ["", "knee cave", ""]
    t["sessions"]["pain_nrs"] = [1, 0, 12]


@case("session_without_time", [{"table": "sessions", "rule": "date_or_week", "row": 2, "column": "week"}],
      "a session with neither date nor week")
def _(t):
    t["sessions"].loc[0, "date"] = ""
    t["sessions"].loc[0, "week"] = math.nan


@case("broken_csv", [{"table": "measurements", "rule": "unreadable", "row": 4, "column": None}],
      "a row with more fields than the header")
def _(t):
    text = t["measurements"].to_csv(index=False).splitlines()
    text[3] = text[3] + ",extra,fields"
    t["measurements"] = ("\n".join(text) + "\n").encode()


@case("missing_id", [{"table": "measurements", "rule": "missing_value", "row": 4, "column": "participant_id"}],
      "a reading with no participant_id")
def _(t):
    t["measurements"].loc[2, "participant_id"] = ""


@case("date_in_2101", [{"table": "measurements", "rule": "date_range", "row": 17, "column": "visit_date"}],
      "a visit date typed with the year 2101 (after today)")
def _(t):
    t["measurements"].loc[15, "visit_date"] = "2101-03-16"


@case("date_in_1066", [{"table": "measurements", "rule": "date_range", "row": 2, "column": "visit_date"}],
      "a visit date in the year 1066 (before the earliest plausible date)")
def _(t):
    t["measurements"].loc[0, "visit_date"] = "1066-10-14"


@case("session_date_future", [{"table": "sessions", "rule": "date_range", "row": 3, "column": "date"}],
      "a training session dated 2207")
def _(t):
    t["sessions"].loc[1, "date"] = "2207-02-07"


@case("visit_before_baseline", [{"table": "measurements", "rule": "before_baseline", "row": 27,
                                 "column": "visit_date"}],
      "P003's week 6 visit is dated two weeks before the baseline visit")
def _(t):
    m = t["measurements"]
    m.loc[(m["participant_id"] == "P003") & (m["visit"] == "week_6"), "visit_date"] = "2026-01-19"


@case("week_contradicts_date", [{"table": "measurements", "rule": "week_date", "row": 7, "column": "week"}],
      "P001's week 6 visit is dated 14 weeks after baseline")
def _(t):
    m = t["measurements"]
    m.loc[(m["participant_id"] == "P001") & (m["visit"] == "week_6"), "visit_date"] = "2026-05-11"


@case("session_week_contradicts_date", [{"table": "sessions", "rule": "week_date", "row": 4, "column": "week"}],
      "a session at week 5 dated 9 days after baseline")
def _(t):
    t["sessions"].loc[2, "week"] = 5.0


@case("spreadsheet_error_csv", [{"table": "measurements", "rule": "spreadsheet_error", "row": 5, "column": "value"},
                                {"table": "measurements", "rule": "spreadsheet_error", "row": 8, "column": "rater"},
                                {"table": "participants", "rule": "spreadsheet_error", "row": 4,
                                 "column": "height_cm"}],
      "#DIV/0!, #N/A and #VALUE! exported as text into CSV cells")
def _(t):
    m = t["measurements"]
    m["value"] = m["value"].astype(object)
    m.loc[3, "value"] = "#DIV/0!"
    m.loc[6, "rater"] = "#N/A"
    p = t["participants"]
    p["height_cm"] = p["height_cm"].astype(object)
    p.loc[2, "height_cm"] = "#VALUE!"


@case("spreadsheet_error_xlsx", [{"table": "participants", "rule": "type", "row": 3, "column": None}],
      "participants.xlsx: height of row 3 is a formula whose saved result is #DIV/0!")
def _(t):
    t["participants"] = ("xlsx_error", t["participants"], "E3", "#DIV/0!")


def write_case(folder: Path, tables: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, obj in tables.items():
        if obj is None:
            continue
        if isinstance(obj, bytes):
            (folder / f"{name}.csv").write_bytes(obj)
        elif isinstance(obj, tuple) and obj[0] == "xlsx_offset":
            df = obj[1]
            path = folder / f"{name}.xlsx"
            with pd.ExcelWriter(path, engine="openpyxl") as xw:
                df.to_excel(xw, index=False, sheet_name=name, startrow=2)
                xw.sheets[name]["A1"] = "Hip cohort - participants (exported 2026-03-01)"
        elif isinstance(obj, tuple) and obj[0] == "xlsx_error":
            write_xlsx_with_error(folder / f"{name}.xlsx", name, *obj[1:])
        else:
            obj.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")


def write_xlsx_with_error(path: Path, sheet: str, df: pd.DataFrame, ref: str, error: str) -> None:
    """An .xlsx whose cell ``ref`` holds a formula with the cached error value ``error`` (as Excel saves
    it: ``<c t="e"><f>...</f><v>#DIV/0!</v></c>``); openpyxl cannot write a cached value, so the
    sheet's XML is edited after writing."""
    import re
    import zipfile

    df.to_excel(path, index=False, sheet_name=sheet, engine="openpyxl")
    with zipfile.ZipFile(path) as zf:
        members = {i: zf.read(i) for i in zf.infolist()}
    for info, data in members.items():
        if info.filename.startswith("xl/worksheets/sheet"):
            xml, n = re.subn(rf'<c r="{ref}"[^>]*?(?:/>|>.*?</c>)',
                             f'<c r="{ref}" t="e"><f>1/0</f><v>{error}</v></c>', data.decode("utf-8"))
            assert n == 1, f"cell {ref} not found"
            members[info] = xml.encode("utf-8")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members.items():
            zf.writestr(info, data)


def main() -> None:
    for c in CASES:
        folder = HERE / c["name"]
        if folder.exists():
            shutil.rmtree(folder)
        tables = base_tables()
        c["fn"](tables)
        write_case(folder, tables)
        (folder / "expected.json").write_text(json.dumps({"description": c["description"], "problems": c["expect"]},
                                                         indent=2) + "\n", encoding="utf-8")
    valid = HERE / "_valid"
    if valid.exists():
        shutil.rmtree(valid)
    write_case(valid, base_tables())
    print(f"wrote {len(CASES)} cases and _valid/ under {HERE}")


if __name__ == "__main__":
    main()
