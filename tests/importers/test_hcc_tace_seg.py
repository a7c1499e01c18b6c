"""`hccprog import hcc-tace-seg` on a tree in the exact TCIA layout (the real HCC_048 series as a
baseline, DICOM-SEGs written by highdicom, synthetic follow-up studies), then validate, train and
predict end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from hccprog.cli import app
from tests.conftest import shared_data, tree_hashes
from tests.importers.tcia_tree import build_tree

runner = CliRunner()
PATIENTS = [f"HCC_{i:03d}" for i in range(1, 12)] + ["HCC_048"]


@pytest.fixture(scope="module")
def tcia(tmp_path_factory):
    real = shared_data("hcc-tace-seg", "HCC_048-portal-venous")
    root = tmp_path_factory.mktemp("tcia") / "HCC-TACE-Seg"
    truth = build_tree(root, real, PATIENTS, no_followup=("HCC_007",), earlier_study=("HCC_002",))
    return root, truth


@pytest.fixture(scope="module")
def imported(tcia, tmp_path_factory):
    root, _ = tcia
    xlsx = shared_data("hcc-tace-seg", "HCC-TACE-Seg_clinical_data-V2.xlsx")
    out = tmp_path_factory.mktemp("imp") / "cohort"
    before = tree_hashes(root)
    first = runner.invoke(app, ["import", "hcc-tace-seg", str(root), "--clinical", str(xlsx), "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert tree_hashes(root) == before  # input files are never modified
    return root, xlsx, out, first.output


def test_time_points_phases_and_masks(imported):
    _, _, out, output = imported
    images = pd.read_csv(out / "images.csv", dtype=str, keep_default_na=False)
    series = pd.read_csv(out / "import" / "series.csv", dtype=str, keep_default_na=False)
    spec = yaml.safe_load((out / "cohort.yaml").read_text())
    assert spec["time_unit"] == "weeks" and spec["id_column"] == "TCIA_ID"
    assert set(spec["endpoints"]) == {"os", "ttp"} and spec["response"] == "1_mRECIST"
    # baseline: the study with the DICOM-SEG; HCC_002's earlier chest study is listed, not used
    base = images[images["timepoint"] == "baseline"]
    assert set(base["patient_id"]) == set(PATIENTS)
    assert (base.groupby("patient_id")["mask"].apply(lambda m: (m != "").sum()) == 1).all()
    assert set(base[base["mask"] != ""]["series"]) == {"CT_PV"}
    assert (base[base["mask"] != ""]["mask_source"] == "given").all()
    synth = base[base["patient_id"] != "HCC_048"]
    assert set(synth["series"]) == {"CT_ART", "CT_PV"}
    early = series[series["description"] == "CHEST PORTAL VENOUS"]
    assert len(early) == 1 and early["used"].iloc[0].startswith("no: study precedes the baseline")
    scouts = series[series["description"] == "SCOUT"]
    assert len(scouts) == len(PATIENTS) - 1 and (scouts["used"].str.startswith("no:")).all()
    # the real series: no phase word, contrast IV, chest/abdomen/pelvis coverage -> PV, medium confidence
    real = series[series["folder"].str.contains("HCC_048") & series["description"].str.contains("C/A/P")]
    assert real[["phase", "confidence"]].values.tolist() == [["PV", "medium"]]
    # follow-ups: a day count, no mask; their "(AP)" description names no phase: uncertain, listed
    fu = images[images["timepoint"] == "fu1"]
    assert set(fu["patient_id"]) == set(PATIENTS) - {"HCC_007"} and (fu["mask"] == "").all()
    assert (fu["day"].astype(int) > 0).all()
    uncertain = yaml.safe_load((out / "import" / "phases_uncertain.yaml").read_text())["series"]
    assert len(uncertain) == len(PATIENTS) - 1 and "uncertain phase" in output


def test_phases_file_overrides_and_validate_reports_masks(imported, tmp_path):
    root, xlsx, out, _ = imported
    uncertain = yaml.safe_load((out / "import" / "phases_uncertain.yaml").read_text())
    phases = tmp_path / "phases.yaml"
    phases.write_text(yaml.safe_dump({"series": {uid: "PV" for uid in uncertain["series"]}}))
    again = runner.invoke(app, ["import", "hcc-tace-seg", str(root), "--clinical", str(xlsx), "--out", str(out),
                                "--phases", str(phases), "--overwrite"])
    assert again.exit_code == 0, again.output
    images = pd.read_csv(out / "images.csv", dtype=str, keep_default_na=False)
    assert set(images[images["timepoint"] == "fu1"]["series"]) == {"CT_PV"}
    assert not (out / "import" / "phases_uncertain.yaml").exists()
    checked = runner.invoke(app, ["validate", str(out / "cohort.yaml"), "--format", "json"])
    assert checked.exit_code == 0, checked.output
    issues = {i["code"]: i["message"] for i in json.loads(checked.output)["issues"]}
    assert "time point 'fu1' has no mask for 11 patient(s)" in issues["timepoint-without-mask"]
    assert "propagated" in issues["timepoint-without-mask"]


@pytest.mark.slow
def test_import_validate_train_predict(imported, tcia, tmp_path):
    """import -> validate -> train --model crnn --preset tiny -> predict, with masks propagated to the
    follow-ups (recorded per patient) and the real HCC_048 series read end to end."""
    root, xlsx, out, _ = imported
    uncertain = yaml.safe_load((out / "import" / "phases_uncertain.yaml").read_text()) if (
        out / "import" / "phases_uncertain.yaml").exists() else {"series": {}}
    phases = tmp_path / "phases.yaml"
    phases.write_text(yaml.safe_dump({"series": {uid: "PV" for uid in uncertain["series"]}}))
    cohort = tmp_path / "cohort"
    res = runner.invoke(app, ["import", "hcc-tace-seg", str(root), "--clinical", str(xlsx), "--out", str(cohort),
                              "--phases", str(phases)])
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["validate", str(cohort / "cohort.yaml")]).exit_code == 0
    run, cache = tmp_path / "run", tmp_path / "cache"
    trained = runner.invoke(app, ["train", str(cohort / "cohort.yaml"), "--model", "crnn", "--preset", "tiny",
                                  "--folds", "2", "--n-boot", "20", "--out", str(run), "--cache", str(cache)])
    assert trained.exit_code == 0, trained.output
    preds = pd.read_csv(run / "predictions.csv", dtype={"imputed": str}, keep_default_na=False)
    crnn = preds[preds["model"] == "crnn"].set_index("patient_id")
    assert set(crnn.index) == set(PATIENTS)
    for pid in PATIENTS:
        kind = "timepoint-carried-forward" if pid == "HCC_007" else "mask-propagated"
        assert kind in crnn.loc[pid, "imputed"], (pid, crnn.loc[pid, "imputed"])
    dest = tmp_path / "pred"
    scored = runner.invoke(app, ["predict", str(run), str(cohort / "cohort.yaml"), "--out", str(dest),
                                 "--cache", str(cache)])
    assert scored.exit_code == 0, scored.output
    new = pd.read_csv(dest / "predictions.csv")
    assert set(new["model"]) == {"crnn", "crnn+clinical"} and set(new["patient_id"]) == set(PATIENTS)
    assert np.isfinite(new["risk"]).all()
    assert "mask-propagated" in scored.output


def _retag(folder, modality: str) -> None:
    """Rewrite every image file below ``folder`` (not the DICOM-SEGs) with another Modality tag."""
    import pydicom

    for f in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        if ds.Modality != "SEG":
            ds.Modality = modality
            ds.save_as(f)


@pytest.fixture(scope="module")
def two_patients(tmp_path_factory):
    """HCC_001 (CT) and HCC_002 (every image series retagged MR) side by side with where cohorts go."""
    real = shared_data("hcc-tace-seg", "HCC_048-portal-venous")
    work = tmp_path_factory.mktemp("moved") / "project"
    root = work / "HCC-TACE-Seg"
    build_tree(root, real, ["HCC_001", "HCC_002"])
    _retag(root / "HCC_002", "MR")
    return work, root


def test_other_modality_listed_not_used_and_paths_move_with_the_folder(two_patients, tmp_path):
    import shutil

    work, root = two_patients
    xlsx = shared_data("hcc-tace-seg", "HCC-TACE-Seg_clinical_data-V2.xlsx")
    out = work / "cohort"
    res = runner.invoke(app, ["import", "hcc-tace-seg", str(root), "--clinical", str(xlsx), "--out", str(out),
                              "--overwrite"])
    assert res.exit_code == 0, res.output
    images = pd.read_csv(out / "images.csv", dtype=str, keep_default_na=False)
    series = pd.read_csv(out / "import" / "series.csv", dtype=str, keep_default_na=False)
    assert set(images["patient_id"]) == {"HCC_001"} and not images["series"].str.startswith("MR").any()
    mr = series[(series["patient_id"] == "HCC_002") & (series["modality"] == "MR")]
    assert len(mr) >= 2 and (mr["used"] == "no: modality MR: this collection is CT").all()
    assert "HCC_002: no usable image series" in res.output
    # every path in the cohort is relative to its folder: move the project and it still validates
    assert not any(p.startswith("/") for p in images["image"]) and images["image"].str.startswith("../").all()
    spec = yaml.safe_load((out / "cohort.yaml").read_text())
    assert not spec["clinical"].startswith("/")
    moved = tmp_path / "elsewhere"
    shutil.copytree(work, moved)
    shutil.copy(xlsx, moved / "clinical.xlsx")
    spec["clinical"] = "../clinical.xlsx"  # the table was outside the project: bring it along
    (moved / "cohort" / "cohort.yaml").write_text(yaml.safe_dump(spec))
    checked = runner.invoke(app, ["validate", str(moved / "cohort" / "cohort.yaml"), "--quick"])
    assert checked.exit_code == 0, checked.output


def test_import_of_no_patient_exits_non_zero_with_each_reason(two_patients, tmp_path):
    _, root = two_patients
    table = tmp_path / "table.csv"
    pd.DataFrame({"TCIA_ID": ["HCC_002", "HCC_105"], "OS": [10, 20]}).to_csv(table, index=False)
    out = tmp_path / "cohort"
    res = runner.invoke(app, ["import", "hcc-tace-seg", str(root), "--clinical", str(table), "--out", str(out)])
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert "no patient could be imported (2 found)" in text
    assert "HCC_001: images found but the patient is not in the clinical table" in text
    assert "HCC_002: no usable image series" in text and "modality MR: this collection is CT" in text
    assert "bug" not in text and not out.exists()
