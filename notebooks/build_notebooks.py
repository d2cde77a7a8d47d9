"""Write the report notebooks (notebooks/*.ipynb) from the readable sources below.

The .ipynb files are generated so that their content stays reviewable as plain Python:
edit this file, then run ``python notebooks/build_notebooks.py`` (``--check`` exits 1 when
the committed notebooks differ from what this script would write). ``power.ipynb`` is
not built here (its owner maintains it directly).

Notebook rules: the first code cell is tagged ``parameters`` and declares typed defaults
that work when the notebook is opened in JupyterLab from this folder; every number comes
from a hipstats function; markdown explains each table and figure in plain words.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

PARAMS_COMMON = '''\
source: str = "../data/example"  # cohort: folder, single file, REDCap export or database URL
as_of: str = ""  # use only data recorded on or before this date (YYYY-MM-DD); "" uses everything'''

SETUP = '''\
import hipstats as hs
from hipstats import report

cohort = report.open_cohort(source, as_of=as_of)
cohort'''

SETUP_MD = ("The cohort below is the data this report describes: the number of participants, measurements, "
            "training sessions and visits in each arm.")


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags=()):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def notebook(name: str, title: str, order: int, description: str, cells: list, params: str = "") -> tuple:
    head = [md(f"# {title}\n\n{description}"),
            code(PARAMS_COMMON + ("\n" + params.strip("\n") if params else ""), tags=["parameters"]),
            md(SETUP_MD), code(SETUP)]
    nb = new_notebook(cells=head + cells)
    for i, cell in enumerate(nb.cells):  # stable ids keep the generated files reproducible
        cell.id = f"{name.replace('_', '-')}-{i:02d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["hipstats"] = {"title": title, "order": order, "description": description, "default": True}
    return name, nb


# ---------------------------------------------------------------------------------------------
DATA_QUALITY = notebook("data_quality", "Data quality", 10, """\
What data this report set rests on: whether the files keep the data contract, who was measured at each visit,
what is missing, how the measurements are spread, and which values look unusual.""", [
    md("""\
## Validation

Before any report is made, every table is checked against the hipstats data contract: required columns,
allowed values (sides, arms, measures), plausible ranges (for example hip internal rotation 0 to 80 degrees),
unique participants and no direct identifiers such as names or e-mail addresses. The table below lists
every problem found. A report run stops before producing anything when the data break a rule, so in a
finished report this table says that no problems were found."""),
    code("report.validation_report(source)"),
    md("""\
## Participant flow

A CONSORT-style count: how many participants were allocated to each arm and how many were measured at each
scheduled visit. The last column is the share of each arm still measured at the final visit. Arms that lose
more participants are harder to compare fairly, because those who leave may differ from those who stay."""),
    code("cohort.participant_flow()"),
    md("""\
The figure shows the same counts as percentages over time: a line that falls steeply means that arm lost
many participants."""),
    code("report.quality.plot_flow(cohort)"),
    md("""\
## Missing measurements

For each measure and visit: how many participants attended the visit, how many had that measure recorded,
and the percent missing among those who attended. Missing values at attended visits point to a gap in the
measurement routine rather than to drop-out."""),
    code("cohort.missingness()"),
    md("""\
## Distributions

A summary of every measure over all visits: number of readings, mean, standard deviation, the middle 90%
(5th to 95th percentile) and the extremes, next to the plausible range of the data contract. Values outside
that range are refused by validation, so the last column is a check that should read zero."""),
    code("report.quality.measure_summary(cohort)"),
    md("""\
The boxes show the middle half of the values at the first and the last visit in each arm; the line inside
a box is the median and dots are individual unusual values. Boxes that move up between the visits in one
arm but not in another are the first sign of a treatment effect (tested properly in the outcome report)."""),
    code("report.quality.plot_distributions(cohort)"),
    md("""\
## Agreement between repeated trials

Each measurement is taken more than once in a row (trials). The table shows how far the trials of one
reading lie apart, in degrees: the typical (median) spread, the spread exceeded by only 5% of readings,
and the largest. Large spreads point to a measurement problem worth checking with the rater."""),
    code("report.quality.trial_agreement(cohort)"),
    md("""\
## Unusual values

Participants whose value at a visit lies far from the other participants at that visit (robust z-score
above 3.5, based on the median and the median absolute deviation). These values are kept in every analysis;
the list is for checking them against the case report forms. Participants are identified only by their
pseudonymous study ID."""),
    code("report.quality.outliers(cohort)"),
    md("""\
## Key finding

How many participants the analyses can use at the end of the protocol."""),
    code("report.quality.record_data_findings(cohort);"),
])

NOTEBOOKS = [DATA_QUALITY]


def build(check: bool = False) -> int:
    stale = []
    for name, nb in NOTEBOOKS:
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(nb) + "\n"
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
            continue
        nbformat.validate(nb)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python notebooks/build_notebooks.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(build(check="--check" in sys.argv[1:]))
