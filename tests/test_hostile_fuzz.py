"""Fuzz (hypothesis, fixed seed) over labels, headers and cell values of a small cohort: validation
exits 0 or 2, never with an internal error, writes nothing at the source, and a cohort that loads
renders no unescaped markup from its labels."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hipstats as hs
from hipstats.cli import main
from hipstats.report.export import external_references

VALID = Path(__file__).parent / "bad_inputs" / "_valid"
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
MARKUP = st.sampled_from(['<img srcset="http://e.x/a 1x">', "<svg onload=alert(1)>", "<script>x()</script>",
                          '"><a href=javascript:alert(1)>', "=HYPERLINK(\"http://e.x\")", "a@b.example"])
LABEL = st.one_of(TEXT, MARKUP, st.builds(lambda a, b: a + b, TEXT, MARKUP))


@settings(max_examples=12, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(visit=LABEL, rater=LABEL, header=LABEL, cell=LABEL)
def test_fuzzed_labels_headers_and_cells(tmp_path_factory, visit, rater, header, cell):
    folder = tmp_path_factory.mktemp("fuzz")
    for name in ("measurements.csv", "participants.csv", "sessions.csv"):
        shutil.copy(VALID / name, folder / name)
    m = pd.read_csv(VALID / "measurements.csv", dtype=str, keep_default_na=False)
    m.loc[m["visit"] == "week_6", "visit"] = visit
    m.loc[m.index[:3], "rater"] = rater
    m.to_csv(folder / "measurements.csv", index=False)
    p = pd.read_csv(VALID / "participants.csv", dtype=str, keep_default_na=False)
    p[header or "x"] = cell
    p.to_csv(folder / "participants.csv", index=False)
    before = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir()}
    code = main(["validate", str(folder), "--max-rows", "5"])
    assert code in (0, 2)
    assert {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir()} == before
    if code == 0:
        page = hs.load_cohort(folder)._repr_html_()
        assert external_references(page) == []
        assert "<script" not in page and "<svg" not in page and "<img" not in page
