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


def test_the_terminal_metrics_table_fits_80_columns_without_cutting_model_names():
    from rich.console import Console

    from hccprog.cli.common import metrics_table

    est = {"value": 0.6123, "ci_lower": 0.5512, "ci_upper": 0.6689}
    hr = {"hr": 1.85, "ci_lower": 1.2, "ci_upper": 12.84, "p_value": 1e-5}
    names = ["clinical_cox", "delta-radiomics-cox+clinical", "delta-radiomics-xgb+clinical", "albi", "crnn+clinical"]
    metrics = {"models": {n: {"kind": "fixed score" if n == "albi" else "cross-validated", "n": 160, "events": 120,
                              "harrell_c": est, "uno_c": est,
                              "risk_groups": {"hr_high_vs_low": hr, "degenerate": n == "albi"}} for n in names}}
    console = Console(width=80, record=True)
    console.print(metrics_table(metrics, "crnn: os (160 patients, 120 events)"))
    text = console.export_text()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    lines = text.splitlines()
    for name in names:
        assert any(line.lstrip().startswith(name) for line in lines), name
    albi = next(k for k, line in enumerate(lines) if line.lstrip().startswith("albi *"))
    assert "!" in lines[albi] + lines[albi + 1]  # the degenerate split is marked
    assert "0.612 (0.551-0.669)" in text
