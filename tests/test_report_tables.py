"""hipstats.report.tables: labels, precision, CIs, footnotes, escaping, fitting the page."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hipstats.report.export import external_references
from hipstats.report.tables import PAGE_CHARS, table


def _contrast():
    return pd.DataFrame({"contrast": ["b - a", "c - a"], "visit": ["week_12", "week_12"],
                         "estimate": [1.858754, 7.273596], "ci_low": [0.248057, 5.657923],
                         "ci_high": [3.469451, 8.889268], "df": [182.475, 187.35], "p_value": [0.02395, 5.37e-16],
                         "p_adj": [0.02395, 1.6e-15], "adjust": ["holm", "holm"]})


def test_labels_precision_ci_and_footnotes():
    t = table(_contrast(), confidence=0.9)
    f = t.frames[0]
    assert list(t.labels[0].values())[:4] == ["Comparison", "Estimate", "90% CI", "df"]
    assert f.iloc[0].tolist() == ["b - a", "1.9", "0.2 to 3.5", "182.5", "0.024", "0.024"]
    assert f.iloc[1, -1] == "< 0.001" and "e-" not in f.to_string()
    assert "p-values adjusted for multiple comparisons (Holm)." in t.footnotes
    assert "Visit: week 12." in t.footnotes  # the same on every row: said once
    assert "CI: 90% confidence interval." in t.footnotes
    html = t.to_html()
    assert "90% CI" in html and "95% CI" not in html and "Holm" in html
    assert ">0<" not in html  # no index column


def test_wide_families_get_spanners_and_missing_values_a_mark():
    df = pd.DataFrame({"group": ["all", "anterior"], "sensitivity": [0.5, np.nan],
                       "sensitivity_ci_low": [0.38, np.nan], "sensitivity_ci_high": [0.62, np.nan],
                       "lr_positive": [2.6, np.inf], "lr_positive_ci_low": [1.6, np.nan],
                       "lr_positive_ci_high": [4.4, np.nan]})
    t = table(df)
    assert t.spanners[0] == {"Sensitivity": ["sensitivity", "sensitivity__ci"],
                             "LR+": ["lr_positive", "lr_positive__ci"]}
    text = t.frames[0].to_string()
    assert "inf" not in text and "nan" not in text.lower()
    assert t.frames[0].iloc[1].tolist() == ["anterior", "–", "–", "–", "–"]
    assert any("not estimable" in n for n in t.footnotes)
    long = table(df, long=True)
    assert long.frames[0]["statistic"].tolist() == ["Sensitivity", "LR+"]
    assert list(long.spanners[0]) == ["all", "anterior"]


def test_cells_and_labels_are_escaped_and_nothing_is_fetched():
    df = pd.DataFrame({"arm": ["<script>alert(1)</script>", "a & b"], "estimate": [1.0, 2.0]})
    html = table(df, title="<b>t</b>", notes=["<img src=x>"]).to_html()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<b>t</b>" not in html and "<img src=x>" not in html
    assert external_references(html) == []
    assert "googleapis" not in html and "@import" not in html


def test_wide_table_is_split_not_cut():
    rng = np.random.default_rng(1)
    cols = {"measure": ["hip_ir_deg"] * 3, "design": ["a", "b", "c"]}
    for name in ("icc", "sem", "mdc95", "kappa", "bias", "slope"):
        cols[name] = rng.random(3)
        cols[f"{name}_ci_low"] = cols[name] - 0.1
        cols[f"{name}_ci_high"] = cols[name] + 0.1
    t = table(pd.DataFrame(cols))
    assert len(t.frames) > 1
    shown = [c for f in t.frames for c in f.columns if c not in ("measure", "design")]
    assert len(shown) == 12 and len(set(shown)) == 12  # every estimate and CI, once
    for f in t.frames:
        assert "design" in f.columns  # the identifying column repeats
        width = sum(max(f[c].str.len().max(), 6) + 2 for c in f.columns)
        assert width <= PAGE_CHARS + 20


def test_code_names_become_words():
    df = pd.DataFrame({"term": ["C(arm, Treatment('control'))[T.loading]", "volume_load_per_1000kg"],
                       "measure": ["hip_ir_deg", "aslr_deg"], "estimate": [5.7, 0.06], "p_value": [0.05, 0.5]})
    f = table(df).frames[0]
    assert f["term"].tolist() == ["arm: loading", "Cumulative volume-load (per 1,000 kg)"]
    assert f["measure"].tolist() == ["Hip internal rotation (deg)", "ASLR angle (deg)"]


def test_precision_follows_the_nonzero_values_and_percentages_get_one_decimal():
    # many exact zeros (no missing values at most visits) must not push a column to three decimals
    df = pd.DataFrame({"visit": ["a", "b", "c", "d", "e"], "missing_pct": [33.3, 0.0, 0.0, 0.0, 28.6],
                       "sd": [0.0, 0.0, 0.0, 2.345, 3.456]})
    html = table(df).to_html()
    assert "33.3<" in html and "33.300" not in html and "0.000" not in html
    assert "2.3<" in html and "3.5<" in html


def test_a_flag_reads_yes_or_no_and_a_long_tables_text_footnote_names_its_column():
    df = pd.DataFrame({"estimate": [0.9], "ci_low": [0.8], "ci_high": [0.95], "excluded": [False]})
    html = table(df, long=True).to_html()
    assert "Excluded: No." in html and ">False" not in html and "False." not in html
    wide = table(pd.DataFrame({"arm": ["a", "b"], "estimate": [1.0, 2.0], "excluded": [True, False]})).to_html()
    assert ">yes<" in wide and ">no<" in wide and "True" not in wide


def test_an_unadjusted_family_shows_one_p_column():
    """adjust 'none' (one comparison, or no method): p_adj repeats p, so the table shows p once."""
    df = pd.DataFrame({"contrast": ["b - a"], "estimate": [2.0], "ci_low": [-1.0], "ci_high": [5.0],
                       "p_value": [0.2], "p_adj": [0.2], "adjust": ["none"]})
    html = table(df).to_html()
    assert "adjusted" not in html and html.count("0.200") == 1
    first = df[["contrast", "adjust", "estimate", "ci_low", "ci_high", "p_value", "p_adj"]]  # adjust before p_adj
    assert table(first).to_html().count("0.200") == 1
    several = pd.DataFrame({"contrast": ["b - a", "c - a"], "estimate": [2.0, 1.0], "ci_low": [-1.0, -2.0],
                            "ci_high": [5.0, 4.0], "p_value": [0.2, 0.3], "p_adj": [0.4, 0.4], "adjust": ["holm"] * 2})
    assert "p (adjusted)" in table(several).to_html()
