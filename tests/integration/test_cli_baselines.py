"""`hccprog baselines` and `hccprog evaluate`: the run folder contract and the report."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from hccprog.cli import app
from tests.conftest import tree_hashes

runner = CliRunner()


@pytest.fixture(scope="module")
def clinical_cohort(tmp_path_factory):
    from hccprog.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("s60") / "cohort"
    synthesize(out, SynthConfig(patients=60, seed=5, shape=(24, 24, 12), spacing=(16.0, 16.0, 20.0), workers=1))
    return out


@pytest.fixture(scope="module")
def run_folder(clinical_cohort, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "os"
    before = tree_hashes(clinical_cohort)
    result = runner.invoke(app, ["baselines", str(clinical_cohort / "cohort.yaml"), "--endpoint", "os",
                                 "--out", str(run), "--repeats", "2", "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output
    assert tree_hashes(clinical_cohort) == before  # inputs untouched
    return run


def test_run_folder_follows_the_spec(run_folder):
    for name in ("predictions.csv", "metrics.json", "config.yaml", "report.html", "folds.csv", "outcomes.csv",
                 "predictions_repeats.csv"):
        assert (run_folder / name).exists(), name
    preds = pd.read_csv(run_folder / "predictions.csv")
    assert list(preds.columns[:4]) == ["patient_id", "model", "fold", "risk"]
    assert not preds.duplicated(["patient_id", "model"]).any()
    assert {"clinical_cox", "bclc", "child_pugh"} <= set(preds["model"])
    assert (preds.loc[preds["model"] == "bclc", "fold"] == -1).all()
    assert set(preds.loc[preds["model"] == "clinical_cox", "fold"]) == {0, 1, 2, 3, 4}
    surv = [c for c in preds.columns if c.startswith("surv_")]
    assert surv and preds.loc[preds["model"] == "clinical_cox", surv].notna().all().all()
    metrics = json.loads((run_folder / "metrics.json").read_text())
    assert metrics["schema"] == 1
    for name, m in metrics["models"].items():
        c = m["harrell_c"]
        assert c["ci_lower"] <= c["value"] <= c["ci_upper"], name
        assert m["n"] > 0 and m["events"] > 0
    assert metrics["models"]["clinical_cox"]["repeats"] == 2
    config = yaml.safe_load((run_folder / "config.yaml").read_text())
    assert config["cv"]["repeats"] == 2 and config["hccprog_version"]
    html = (run_folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "http://" not in html and "https://" not in html
    for fig in ("km_risk_groups.png", "td_roc.png", "calibration.png", "decision_curve.png",
                "forest_risk_groups.png", "nomogram_clinical_cox.png", "forest_model_clinical_cox.png"):
        assert (run_folder / "figures" / fig).stat().st_size > 10_000, fig


def test_evaluate_recomputes_the_same_metrics(run_folder):
    before = json.loads((run_folder / "metrics.json").read_text())
    (run_folder / "metrics.json").unlink()
    result = runner.invoke(app, ["evaluate", str(run_folder)])
    assert result.exit_code == 0, result.output
    after = json.loads((run_folder / "metrics.json").read_text())
    for name in before["models"]:
        assert after["models"][name]["harrell_c"] == before["models"][name]["harrell_c"]
        assert after["models"][name]["td_auc"] == before["models"][name]["td_auc"]


def test_config_reproduces_the_run(run_folder, clinical_cohort, tmp_path):
    again = tmp_path / "again"
    result = runner.invoke(app, ["baselines", str(clinical_cohort / "cohort.yaml"), "--config",
                                 str(run_folder / "config.yaml"), "--out", str(again)])
    assert result.exit_code == 0, result.output
    a = pd.read_csv(run_folder / "predictions.csv")
    b = pd.read_csv(again / "predictions.csv")
    pd.testing.assert_frame_equal(a, b)


def test_existing_run_is_not_overwritten(run_folder, clinical_cohort):
    result = runner.invoke(app, ["baselines", str(clinical_cohort / "cohort.yaml"), "--out", str(run_folder),
                                 "--repeats", "1"])
    assert result.exit_code == 1 and "exists" in result.output


def test_bad_endpoint_and_missing_run(clinical_cohort, tmp_path):
    result = runner.invoke(app, ["baselines", str(clinical_cohort / "cohort.yaml"), "--endpoint", "dfs",
                                 "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "dfs" in result.output
    assert not (tmp_path / "x").exists()
    result = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code == 1 and "not a run folder" in result.output


def test_response_baselines_and_evaluate(clinical_cohort, tmp_path):
    """`baselines --endpoint response`: the clinical logistic model through the same engine, run folder
    and report; `evaluate` recomputes the same metrics from the files."""
    from hccprog.cohort import load_cohort
    from hccprog.evaluation.classification import delong_auc_ci

    run = tmp_path / "resp"
    result = runner.invoke(app, ["baselines", str(clinical_cohort / "cohort.yaml"), "--endpoint", "response",
                                 "--out", str(run), "--folds", "3", "--repeats", "2", "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    assert "PD vs disease control" in result.output
    preds = pd.read_csv(run / "predictions.csv", dtype={"patient_id": str})
    outcomes = pd.read_csv(run / "outcomes.csv", dtype={"patient_id": str}).set_index("patient_id")
    labels = (load_cohort(clinical_cohort / "cohort.yaml").cohort.responses().dropna() == "PD").astype(int)
    assert set(preds["model"]) == {"clinical_logistic"}  # mRECIST, the label itself, is not a score here
    assert outcomes["label"].to_dict() == labels.to_dict() and len(preds) == len(labels)
    metrics = json.loads((run / "metrics.json").read_text())
    m = metrics["models"]["clinical_logistic"]
    assert metrics["task"] == "response" and metrics["reference"] == "clinical_logistic"
    y = labels.loc[preds["patient_id"]].to_numpy()
    assert m["auc"]["value"] == pytest.approx(delong_auc_ci(y, preds["risk"])[0], abs=1e-6)
    assert m["accuracy"] == pytest.approx(float((preds["risk_group"].to_numpy() == y).mean()), abs=1e-12)
    cutoffs = json.loads((run / "cutoffs.json").read_text())
    assert {(c["repeat"], c["fold"]) for c in cutoffs} == {(r, f) for r in range(2) for f in range(3)}
    assert (run / "figures" / "roc.png").stat().st_size > 10_000
    assert "Response classification" in (run / "report.html").read_text()
    (run / "metrics.json").unlink()
    assert runner.invoke(app, ["evaluate", str(run)]).exit_code == 0
    again = json.loads((run / "metrics.json").read_text())["models"]["clinical_logistic"]
    assert again == m
