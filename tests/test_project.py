"""``hipstats init``: a starter project whose settings, parameters and notebooks a report run uses as written."""

from __future__ import annotations

import pytest
import yaml

from hipstats.cli import main
from hipstats.errors import ParameterError
from hipstats.report.params import list_notebooks, load_params_file, resolve_parameters
from hipstats.report.project import init_project, read_config


def test_init_writes_settings_params_notebooks_and_a_cron_line(tmp_path, capsys):
    folder = tmp_path / "nightly"
    assert main(["init", str(folder), "--source", "/data/hipcohort"]) == 0
    said = capsys.readouterr().out
    assert "crontab" in said and "hipstats report --config hipstats.yaml" in said
    assert read_config(folder / "hipstats.yaml") == {"source": "/data/hipcohort", "arms": None, "event_map": None}
    # the copied notebooks are a complete catalogue of their own
    assert [n.name for n in list_notebooks(folder / "notebooks")] == [n.name for n in list_notebooks()]
    # params.yaml: every line commented out, so it is valid and empty as written ...
    assert load_params_file(folder / "params.yaml") == {}
    # ... and uncommenting one notebook's block gives parameters the notebooks accept
    text = (folder / "params.yaml").read_text()
    block = text.split("# screening:\n", 1)[1].split("\n\n", 1)[0]
    uncommented = "screening:\n" + "\n".join(line[1:] for line in block.splitlines())
    values = yaml.safe_load(uncommented)
    assert values["screening"]["cutoff"] == 70.0
    resolve_parameters([n for n in list_notebooks() if n.default], values)
    cron = (folder / "cron.txt").read_text().splitlines()[-1]
    fields = cron.split()
    assert fields[:5] == ["0", "6", "*", "*", "1"] and f"cd {folder.resolve()}" in cron
    assert "--notebooks notebooks" in cron and "--params params.yaml" in cron and "--quiet" in cron


def test_init_refuses_to_replace_files_without_force(tmp_path):
    init_project(tmp_path)
    (tmp_path / "notebooks" / "outcomes.ipynb").write_text("{}")
    with pytest.raises(ParameterError, match="already has hipstats.yaml.*--force"):
        init_project(tmp_path)
    assert main(["init", str(tmp_path)]) == 2
    assert (tmp_path / "notebooks" / "outcomes.ipynb").read_text() == "{}"
    init_project(tmp_path, force=True)
    assert (tmp_path / "notebooks" / "outcomes.ipynb").read_text() != "{}"


def test_read_config_checks_keys_arms_and_makes_source_absolute(tmp_path):
    f = tmp_path / "hipstats.yaml"
    f.write_text("source: cohort\narms: [usual_care, loading]\nreference_arm: loading\n")
    cfg = read_config(f)
    assert cfg["source"] == str((tmp_path / "cohort").resolve()) and cfg["arms"] == ["loading", "usual_care"]
    f.write_text("source: postgresql://reader@db/hip\narms: control,loading\n")
    assert read_config(f) == {"source": "postgresql://reader@db/hip", "arms": ["control", "loading"],
                              "event_map": None}
    for text, msg in [("arm: [a]\n", "unknown key.*arm"), ("- a\n", "must hold a mapping"),
                      ("arms: [a]\nreference_arm: b\n", "reference_arm 'b'"), ("source: [\n", "not valid YAML")]:
        f.write_text(text)
        with pytest.raises(ParameterError, match=msg):
            read_config(f)
    with pytest.raises(ParameterError, match="does not exist"):
        read_config(tmp_path / "missing.yaml")
