"""The command line: exit codes, no tracebacks, simulate writes a valid cohort."""

from __future__ import annotations

import subprocess
import sys

import hipstats as hs
from hipstats.cli import main


def test_validate_clean_exits_0(capsys):
    assert main(["validate", "data/example"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_simulate_writes_valid_tables(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path), "--n", "12", "--seed", "1", "--format", "parquet"]) == 0
    assert hs.validate(tmp_path).ok
    assert main(["simulate", "--out", str(tmp_path), "--n", "12", "--format", "parquet"]) == 2  # no overwrite
    assert "refusing to overwrite" in capsys.readouterr().err


def test_bad_option_exits_2_without_traceback(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path), "--weeks", "0,x"]) == 2
    err = capsys.readouterr().err
    assert "--weeks must be numbers" in err and "Traceback" not in err
    assert main(["no-such-command"]) == 2


def test_console_script_runs_in_a_subprocess():
    r = subprocess.run([sys.executable, "-m", "hipstats.cli", "validate", "tests/bad_inputs/out_of_range"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "range" in r.stdout and "Traceback" not in r.stdout + r.stderr


def test_power_command_analytic(capsys, tmp_path):
    out = tmp_path / "power.csv"
    assert main(["power", "--method", "change", "--effect", "5", "--sd", "10", "--power", "0.8",
                 "--out", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out)
    assert table["n_per_arm"].item() == 64  # two-sample t test, d = 0.5, 80 % power: 64 per arm
    assert main(["power", "--set", "bogus=1"]) == 2
    assert "unknown parameters" in capsys.readouterr().err


def test_power_command_usage_errors(capsys):
    assert main(["power", "--method", "ancova", "--effect", "5", "--sd", "8", "--power", "0.8"]) == 2
    assert "needs --rho" in capsys.readouterr().err
    assert main(["power", "--method", "change", "--effect", "5", "--sd", "8", "--rho", "0.5"]) == 2
    assert main(["power", "--method", "change", "--power", "0.8"]) == 2
