"""`hccprog import waw-tace` on a folder in the WAW-TACE layout (synthetic NIfTI phases, per-lesion NRRD
masks, TotalSegmentator output, an XLSX with definitions), then validate, train and predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from hccprog.cli import app
from tests.conftest import tree_hashes
from tests.importers.waw_tree import build_waw

runner = CliRunner()


@pytest.fixture(scope="module")
def waw(tmp_path_factory):
    from hccprog.synth import SynthConfig, synthesize

    synthetic = tmp_path_factory.mktemp("syn") / "cohort"
    synthesize(synthetic, SynthConfig(patients=14, seed=5, shape=(40, 40, 20), spacing=(9.0, 9.0, 12.0),
                                      followups=0, workers=1))
    root = tmp_path_factory.mktemp("waw") / "WAW-TACE"
    ids = build_waw(root, synthetic, without_liver=(0,))
    return root, ids, synthetic


@pytest.fixture(scope="module")
def imported(waw, tmp_path_factory):
    root, _, _ = waw
    out = tmp_path_factory.mktemp("imp") / "cohort"
    before = tree_hashes(root)
    res = runner.invoke(app, ["import", "waw-tace", str(root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert tree_hashes(root) == before
    return out, res.output


def test_layout_masks_and_clinical_mapping(waw, imported):
    from hccprog.imaging import read_geometry, read_mask

    _, ids, synthetic = waw
    out, output = imported
    spec = yaml.safe_load((out / "cohort.yaml").read_text())
    assert spec["endpoints"] == {"pfs": {"time": "Follow-up", "event": "Progression"}}
    assert spec["time_unit"] == "months" and spec["response"] == "mRECIST"
    assert {"Age", "Sex", "AFP"} <= set(spec["covariates"])
    assert "clinical event: Progression" in output and "Follow-up (months)" in output
    images = pd.read_csv(out / "images.csv", dtype=str, keep_default_na=False)
    assert set(images["patient_id"]) == set(ids) and len(images) == 4 * len(ids)
    assert set(images["series"]) == {"CT_NC", "CT_ART", "CT_PV", "CT_DEL"}
    assert images["image"].str.startswith("../").all()  # relative to the cohort folder: it can be moved
    first = sorted(ids, key=int)[0]
    assert "no TotalSegmentator liver" in output and first in output
    # the lesions merged into the tumor label on every phase, the delayed one (another grid) included
    images_syn = pd.read_csv(synthetic / "images.csv")
    for wid in sorted(ids, key=int)[1:3]:
        truth_rel = images_syn[(images_syn["patient_id"] == ids[wid]) & (images_syn["series"] == "CT_ART")]["mask"]
        truth = read_mask(synthetic / truth_rel.iloc[0]).array
        for series in ("CT_ART", "CT_DEL"):
            row = images[(images["patient_id"] == wid) & (images["series"] == series)].iloc[0]
            mask = read_mask(out / row["mask"], reference=read_geometry(out / row["image"])).array
            assert "2 lesion" in row["mask_source"] or "lesion file" in row["mask_source"]
            if series == "CT_ART":
                np.testing.assert_array_equal(mask == 2, truth == 2)
                np.testing.assert_array_equal(mask > 0, truth > 0)
            else:
                assert mask.shape[0] == truth.shape[0] // 2 and (mask == 2).sum() > 0
    clinical = pd.read_csv(out / "clinical.csv", dtype=str)
    assert set(clinical["Progression"].dropna()) <= {"0", "1"}
    checked = runner.invoke(app, ["validate", str(out / "cohort.yaml")])
    assert checked.exit_code == 0, checked.output


def test_unrecognised_endpoint_says_what_to_name(waw, tmp_path):
    root, _, _ = waw
    bad = runner.invoke(app, ["import", "waw-tace", str(root), "--out", str(tmp_path / "c"),
                              "--time-column", "Nope"])
    assert bad.exit_code == 1 and "no column 'Nope'" in bad.output


@pytest.mark.slow
def test_import_validate_train_predict(imported, tmp_path):
    out, _ = imported
    run, cache = tmp_path / "run", tmp_path / "cache"
    trained = runner.invoke(app, ["train", str(out / "cohort.yaml"), "--model", "crnn", "--preset", "tiny",
                                  "--endpoint", "pfs", "--folds", "2", "--n-boot", "20", "--out", str(run),
                                  "--cache", str(cache)])
    assert trained.exit_code == 0, trained.output
    preds = pd.read_csv(run / "predictions.csv", dtype={"imputed": str}, keep_default_na=False)
    crnn = preds[preds["model"] == "crnn"]
    assert len(crnn) == 14 and crnn["imputed"].str.contains("timepoint-carried-forward").all()
    dest = tmp_path / "pred"
    scored = runner.invoke(app, ["predict", str(run), str(out / "cohort.yaml"), "--out", str(dest),
                                 "--cache", str(cache)])
    assert scored.exit_code == 0, scored.output
    new = pd.read_csv(dest / "predictions.csv")
    assert set(new["model"]) == {"crnn", "crnn+clinical"} and new["patient_id"].nunique() == 14
    assert (dest / "report.html").exists()
