"""The command line: synth then validate, exit codes, help on every command."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from hccprog.cli import app
from tests.conftest import tree_hashes

runner = CliRunner()


def test_help_on_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("validate", "synth", "baselines", "evaluate"):
        assert command in result.output
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("hccprog ")


def test_synth_then_validate(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["synth", str(out), "--patients", "3", "--seed", "1", "--shape",
                                 "24x24x12", "--spacing", "16x16x20", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "truth.csv").exists()
    result = runner.invoke(app, ["validate", str(out / "cohort.yaml")])
    assert result.exit_code == 0, result.output
    assert "3 (3 with images)" in result.output and "OK" in result.output
    again = runner.invoke(app, ["synth", str(out), "--patients", "3"])
    assert again.exit_code == 1 and "exists" in again.output


def test_validate_reports_errors_and_writes_nothing(tiny_cohort):
    frame = pd.read_csv(tiny_cohort / "clinical.csv", dtype=str, keep_default_na=False)
    frame.loc[0, "os_event"] = "yes"
    frame.to_csv(tiny_cohort / "clinical.csv", index=False)
    before = tree_hashes(tiny_cohort.parent)
    result = runner.invoke(app, ["validate", str(tiny_cohort / "cohort.yaml")])
    assert result.exit_code == 1
    assert "clinical.csv, row 2, column 'os_event'" in result.output and "FAILED" in result.output
    assert tree_hashes(tiny_cohort.parent) == before


def test_validate_json(tiny_cohort):
    result = runner.invoke(app, ["validate", str(tiny_cohort / "cohort.yaml"), "--format", "json"])
    assert result.exit_code == 0
    payload = json.loads(result.output)
    assert payload["ok"] and payload["errors"] == 0
    assert payload["summary"]["patients"] == 6


def test_strict_fails_on_warnings(tiny_cohort):
    frame = pd.read_csv(tiny_cohort / "clinical.csv", dtype=str, keep_default_na=False)
    frame["inr"] = ""
    frame.to_csv(tiny_cohort / "clinical.csv", index=False)
    assert runner.invoke(app, ["validate", str(tiny_cohort / "cohort.yaml")]).exit_code == 0
    assert runner.invoke(app, ["validate", str(tiny_cohort / "cohort.yaml"), "--strict"]).exit_code == 1


@pytest.mark.parametrize("bad", ["96x96", "0x1x1", "axbxc"])
def test_synth_rejects_bad_shape(tmp_path, bad):
    result = runner.invoke(app, ["synth", str(tmp_path / "x"), "--shape", bad])
    assert result.exit_code == 1
    assert "--shape" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()
