"""Shared fixtures: small simulated cohorts written to disk, and a non-interactive matplotlib."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

import hipstats as hs  # noqa: E402


@pytest.fixture(scope="session")
def small_cohort():
    """60 participants, 3 arms, 5 visits; seed fixed."""
    return hs.simulate_cohort(n_participants=60, seed=11)


@pytest.fixture(scope="session")
def small_cohort_dir(tmp_path_factory, small_cohort):
    """The small cohort written as CSV tables in a folder."""
    folder = tmp_path_factory.mktemp("small_cohort")
    small_cohort.write(folder)
    return folder
