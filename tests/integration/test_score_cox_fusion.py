"""DLOP_Cox (Sun et al. 2024): '<model>+clinical' as one multivariable Cox model of the image score and
the clinical factors screened on each training part; trained, applied by predict and explained."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import yaml

from hccprog.synth import SynthConfig, synthesize
from tests.integration.helpers import invoke


def test_multivariable_fusion_trains_predicts_and_explains(tmp_path):
    cohort = tmp_path / "cohort"
    synthesize(cohort, SynthConfig(patients=30, seed=11, shape=(32, 32, 16), spacing=(12.0, 12.0, 15.0), workers=1))
    code, output = invoke("config", "--model", "dlop-ctr", "--preset", "tiny", "--folds", "3", "--n-boot", "10")
    assert code == 0, output
    cfg = yaml.safe_load(output)
    cfg["train"]["fusion"] = "multivariable"
    cfg["train"]["fusion_screening"] = "none"  # every factor: 30 patients screen too few
    path = tmp_path / "dlop_cox.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run, cache = tmp_path / "run", tmp_path / "cache"
    code, output = invoke("train", cohort / "cohort.yaml", "--config", path, "--out", run, "--cache", cache)
    assert code == 0, output
    preds = pd.read_csv(run / "predictions.csv")
    fused = preds[preds["model"] == "dlop-ctr+clinical"]
    assert len(fused) == 30 and fused["risk"].notna().all()
    selection = json.loads((run / "training" / "fusion_selection.json").read_text())
    assert len(selection) == 3 and all(v["selected"] for v in selection.values())
    desc = json.loads((run / "models" / "dlop-ctr.json").read_text())
    fusion = desc["fusion"]
    assert fusion["kind"] == "multivariable" and "image_score" in fusion["score_cox"]["cox"]["covariates"]
    assert {r["term"] for r in fusion["hazard_ratios"]} >= {"image_score"}
    # predict applies the same model: the final model's fused risks of the training patients
    out = tmp_path / "pred"
    code, output = invoke("predict", run, cohort / "cohort.yaml", "--out", out, "--cache", cache)
    assert code == 0, output
    scored = pd.read_csv(out / "predictions.csv")
    mine = scored[scored["model"] == "dlop-ctr+clinical"].set_index("patient_id")
    image = scored[scored["model"] == "dlop-ctr"].set_index("patient_id")["risk"]
    assert len(mine) == 30 and mine["risk"].notna().all()
    # the fused risk is the Cox model's linear predictor: explain's contributions add up to it
    pid = str(mine.index[0])
    code, output = invoke("explain", run, cohort / "cohort.yaml", "-p", pid, "--out", tmp_path / "ex", "--cache",
                          cache, "--no-nifti")
    assert code == 0, output
    parts = pd.read_csv(tmp_path / "ex" / pid / "clinical_contributions.csv")
    assert "image_score" in set(parts["term"])
    assert np.isclose(parts["contribution"].sum(), mine.loc[pid, "risk"], atol=1e-5)
    hr = {r["term"]: r for r in fusion["hazard_ratios"]}["image_score"]
    assert np.isfinite(hr["hr"]) and hr["ci_lower"] < hr["hr"] < hr["ci_upper"]
    assert image.notna().all()
