"""`hccprog train` and `hccprog predict` end to end on a tiny synthetic cohort."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from hccprog.cli import app
from tests.conftest import tree_hashes
from tests.integration.helpers import REPO

runner = CliRunner()


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory):
    from hccprog.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("s30") / "cohort"
    synthesize(out, SynthConfig(patients=30, seed=11, shape=(32, 32, 16), spacing=(12.0, 12.0, 15.0), workers=1))
    return out


@pytest.fixture(scope="module")
def trained(small_cohort, tmp_path_factory):
    base = tmp_path_factory.mktemp("train")
    run, cache = base / "run", base / "cache"
    before = tree_hashes(small_cohort)
    result = runner.invoke(app, ["train", str(small_cohort / "cohort.yaml"), "--model", "crnn", "--endpoint", "os",
                                 "--folds", "3", "--preset", "tiny", "--n-boot", "50", "--out", str(run),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert tree_hashes(small_cohort) == before
    return run, cache, result.output


def test_end_to_end_run_folder(trained):
    run, _, output = trained
    assert "report:" in output
    for name in ("predictions.csv", "metrics.json", "config.yaml", "report.html", "folds.csv", "models/crnn.pt",
                 "models/crnn.json", "training/fold-0-0.json"):
        assert (run / name).exists(), name
    preds = pd.read_csv(run / "predictions.csv")
    models = set(preds["model"])
    assert {"crnn", "crnn+clinical", "clinical_cox"} <= models
    crnn = preds[preds["model"] == "crnn"]
    assert len(crnn) == 30 and crnn["patient_id"].is_unique and set(crnn["fold"]) == {0, 1, 2}
    assert crnn[[c for c in crnn.columns if c.startswith("surv_")]].notna().all().all()
    metrics = json.loads((run / "metrics.json").read_text())
    # the C in metrics.json is the out-of-fold C of predictions.csv against outcomes.csv, inside its CI
    from hccprog.evaluation.survival import harrell_c

    outcomes = pd.read_csv(run / "outcomes.csv", dtype={"patient_id": str}).set_index("patient_id")
    scored = crnn.assign(patient_id=crnn["patient_id"].astype(str)).set_index("patient_id").join(outcomes)
    c = metrics["models"]["crnn"]["harrell_c"]
    assert c["value"] == pytest.approx(harrell_c(scored["time"].to_numpy(), scored["event"].to_numpy(),
                                                 scored["risk"].to_numpy()), abs=1e-6)
    assert c["ci_lower"] < c["value"] < c["ci_upper"]
    conf = yaml.safe_load((run / "config.yaml").read_text())
    assert conf["command"] == "train" and conf["train"]["model"] == "crnn" and conf["train"]["preset"] == "tiny"
    assert not any(p.name.startswith(".run.partial") for p in run.parent.iterdir())  # resume state cleaned up
    state = torch.load(run / "models" / "crnn.pt", weights_only=True)
    assert any(k.startswith("encoders.0") for k in state)


def test_explain_a_patient(trained, small_cohort, tmp_path):
    """Grad-CAM++ overlays, maps on the original scans (NIfTI, on each scan's own grid), the fused
    model's contributions (adding up to its risk) and a card, with the scores predict gives."""
    import nibabel as nib

    from hccprog.cohort import load_cohort

    run, cache, _ = trained
    out = tmp_path / "explain"
    pid = "SYN0003"
    result = runner.invoke(app, ["explain", str(run), str(small_cohort / "cohort.yaml"), "-p", pid, "--out", str(out),
                                 "--cache", str(cache), "--method", "gradcam++", "--method", "gradcam"])
    assert result.exit_code == 0, result.output
    folder = out / pid
    for name in ("card.html", "overlay_gradcampp.png", "overlay_gradcam.png", "explanation.json",
                 "clinical_contributions.csv", "survival.png", "saliency.npz"):
        assert (folder / name).exists(), name
    entry = json.loads((folder / "explanation.json").read_text())
    scored = _predict(run, small_cohort, tmp_path / "pred", cache).set_index(["patient_id", "model"])
    for model in ("crnn", "crnn+clinical"):
        assert entry["scores"][model]["risk"] == pytest.approx(scored.loc[(pid, model), "risk"], abs=1e-5)
    contrib = pd.read_csv(folder / "clinical_contributions.csv")
    assert contrib["contribution"].sum() == pytest.approx(entry["scores"]["crnn+clinical"]["risk"], abs=1e-4)
    maps = np.load(folder / "saliency.npz")
    assert set(maps.files) == {"gradcampp", "gradcam"} and np.nanmax(maps["gradcampp"]) == pytest.approx(1.0)
    patient = load_cohort(small_cohort / "cohort.yaml").cohort[pid]
    niftis = sorted(folder.glob("saliency_gradcampp_*.nii.gz"))
    assert niftis
    tp = patient.timepoints[0]
    scan = next(s for s in tp.series.values() if s.mask is not None).image.load()
    img = nib.load(str(folder / f"saliency_gradcampp_{tp.label}.nii.gz"))
    assert img.shape == scan.shape and np.allclose(img.affine, scan.affine)
    assert np.asarray(img.dataobj).max() > 0
    card = (folder / "card.html").read_text()
    assert "Grad-CAM++" in card and "Contributions to the fused model" in card and "data:image/png" in card
    # explanations on request in predict
    result = runner.invoke(app, ["predict", str(run), str(small_cohort / "cohort.yaml"), "--out",
                                 str(tmp_path / "pred-x"), "--cache", str(cache), "--explain", "SYN0004"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pred-x" / "explanations" / "SYN0004" / "card.html").exists()
    result = runner.invoke(app, ["explain", str(run), str(small_cohort / "cohort.yaml"), "-p", "NOBODY", "--out",
                                 str(tmp_path / "none"), "--cache", str(cache)])
    assert result.exit_code != 0 and "NOBODY" in result.output
    # another layer of the encoder (a finer map); a module outside the per-slice path is refused
    result = runner.invoke(app, ["explain", str(run), str(small_cohort / "cohort.yaml"), "-p", pid, "--out",
                                 str(tmp_path / "fine"), "--cache", str(cache), "--layer",
                                 "encoders.0.backbone._blocks.5"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "fine" / pid / "explanation.json").read_text())["saliency"]["layers"] == [
        "encoders.0.backbone._blocks.5"]
    result = runner.invoke(app, ["explain", str(run), str(small_cohort / "cohort.yaml"), "-p", pid, "--out",
                                 str(tmp_path / "bad"), "--cache", str(cache), "--layer", "head"])
    assert result.exit_code != 0 and "--layer head" in result.output and not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_screenshots_of_a_report_and_a_card(trained, small_cohort, tmp_path):
    """What users see, rendered by headless Chromium: the report and a patient card render to
    non-blank pages, and the card prints on one A4 page."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("screenshots", REPO / "scripts" / "screenshots.py")
    shots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shots)
    if shots.chromium() is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    from PIL import Image

    run, cache, _ = trained
    result = runner.invoke(app, ["explain", str(run), str(small_cohort / "cohort.yaml"), "-p", "SYN0005", "--out",
                                 str(tmp_path / "x"), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    tiles = shots.screenshot(run / "report.html", tmp_path / "shots")
    tiles += shots.screenshot(tmp_path / "x" / "SYN0005" / "card.html", tmp_path / "shots")
    assert len(tiles) >= 3
    for tile in tiles:
        image = np.asarray(Image.open(tile).convert("L"))
        assert image.shape[1] == 1200 and image.std() > 10  # text and figures, not a blank page
    assert shots.pdf_pages(tmp_path / "shots" / "SYN0005_card.pdf") == 1


def test_second_train_reads_the_cache(small_cohort, trained, tmp_path):
    from hccprog.cohort import load_cohort
    from hccprog.preprocessing import SliceConfig, preprocess_cohort
    from hccprog.training.config import resolve_config

    _, cache, _ = trained
    cfg = resolve_config("tiny")
    cohort = load_cohort(small_cohort / "cohort.yaml").cohort
    data = preprocess_cohort(cohort, SliceConfig.model_validate(cfg.preprocessing.model_dump()), cache_dir=cache)
    assert data.stats["cached"] == 30 and data.stats["built"] == 0


def test_predict_new_patients(trained, small_cohort, tmp_path):
    run, cache, _ = trained
    dest = tmp_path / "pred"
    result = runner.invoke(app, ["predict", str(run), str(small_cohort / "cohort.yaml"), "--out", str(dest),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(dest / "predictions.csv")
    assert (scored["fold"] == -1).all() and set(scored["model"]) == {"crnn", "crnn+clinical"}
    desc = json.loads((run / "models" / "crnn.json").read_text())
    for name, part in (("crnn", desc), ("crnn+clinical", desc["fusion"])):
        preds = scored[scored["model"] == name]
        assert len(preds) == 30 and preds["patient_id"].is_unique
        cut = part["risk_groups"]["cutoffs"]
        assert list(preds["risk_group"]) == [int(r > cut[0]) for r in preds["risk"]]
        surv = preds[[c for c in preds.columns if c.startswith("surv_")]].to_numpy()
        assert ((surv >= 0) & (surv <= 1)).all() and (surv[:, :-1] >= surv[:, 1:] - 1e-12).all()
    # RadCLN on new patients: the bivariate Cox model of the image risk and the clinical Cox score,
    # both learned on the training cohort (recomputed here by hand from the saved coefficients)
    from hccprog.cohort import load_cohort
    from hccprog.survival.cox import CoxScore

    fusion = desc["fusion"]
    assert fusion["name"] == "crnn+clinical" and fusion["clinical_model"] == "clinical_cox"
    cohort = load_cohort(small_cohort / "cohort.yaml").cohort
    image = scored[scored["model"] == "crnn"].set_index("patient_id")["risk"]
    clin = CoxScore.from_state(fusion["clinical"]).predict_risk(cohort.covariates().loc[image.index])
    f = fusion["fusion"]
    za, zb = (image.to_numpy() - f["loc"][0]) / f["scale"][0], (clin - f["loc"][1]) / f["scale"][1]
    by_hand = (f["coefficients"]["score_a"] * (za - f["center"]["score_a"])
               + f["coefficients"]["score_b"] * (zb - f["center"]["score_b"]))
    fused = scored[scored["model"] == "crnn+clinical"].set_index("patient_id")["risk"].loc[image.index]
    np.testing.assert_allclose(fused.to_numpy(), by_hand, rtol=1e-4, atol=1e-5)  # the CSV keeps 6 digits
    metrics = json.loads((dest / "metrics.json").read_text())  # outcomes present: external validation
    assert {"crnn", "crnn+clinical"} <= set(metrics["models"])
    bad = runner.invoke(app, ["predict", str(tmp_path), str(small_cohort / "cohort.yaml"), "--out", str(dest)])
    assert bad.exit_code == 1


def test_predict_without_the_clinical_covariates_scores_the_image_model(trained, small_cohort, tmp_path):
    """A new cohort that lacks a covariate of the clinical Cox model gets the image model's
    predictions only, and a note says why the fused model is missing."""
    import shutil

    run, cache, _ = trained
    cohort = tmp_path / "cohort"
    shutil.copytree(small_cohort, cohort)
    spec = yaml.safe_load((cohort / "cohort.yaml").read_text())
    del spec["covariates"]["afp"]
    (cohort / "cohort.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    dest = tmp_path / "pred"
    result = runner.invoke(app, ["predict", str(run), str(cohort / "cohort.yaml"), "--out", str(dest),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert "crnn+clinical: not scored" in result.output and "afp" in result.output
    assert set(pd.read_csv(dest / "predictions.csv")["model"]) == {"crnn"}
    conf = yaml.safe_load((dest / "config.yaml").read_text())
    assert any("crnn+clinical: not scored" in n for n in conf["notes"])


@pytest.mark.slow
def test_interrupted_train_resumes_at_its_fold(small_cohort, tmp_path):
    from hccprog.cohort import load_cohort
    from hccprog.training.config import resolve_config
    from hccprog.training.run import train_run

    cohort = load_cohort(small_cohort / "cohort.yaml").cohort
    cfg = resolve_config("tiny", cv={"folds": 3, "repeats": 1, "seed": 0}, n_boot=0, final_model=False)
    out = tmp_path / "run"
    seen: list[str] = []

    def stop_in_fold_2(msg, done, total):
        seen.append(msg)
        if msg.startswith("repeat 1, fold 2: epoch 1"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cohort, small_cohort / "cohort.yaml", cfg, out, cache_dir=tmp_path / "c", progress=stop_in_fold_2)
    partial = tmp_path / ".run.partial"
    assert (partial / "fold-0-0.npz").exists() and not (partial / "fold-0-1.npz").exists()
    assert not out.exists()
    seen.clear()
    train_run(cohort, small_cohort / "cohort.yaml", cfg, out, cache_dir=tmp_path / "c", progress=seen.append and
              (lambda m, d, t: seen.append(m)))
    assert any("fold-0-0: resumed" in m for m in seen)
    assert not any(m.startswith("repeat 1, fold 1: epoch") for m in seen)
    assert any(m.startswith("repeat 1, fold 2: epoch") for m in seen)
    assert (out / "predictions.csv").exists() and not partial.exists()


@pytest.mark.slow
def test_dlop_trains_and_predicts_through_the_cli(small_cohort, trained, tmp_path):
    """DLOP_Combin: discrete-time outputs, fold-wise clinical screening, own survival curves."""
    _, cache, _ = trained  # same preprocessing as the tiny crnn run: read from the cache
    run = tmp_path / "dlop"
    result = runner.invoke(app, ["train", str(small_cohort / "cohort.yaml"), "--model", "dlop", "--folds", "3",
                                 "--preset", "tiny", "--n-boot", "20", "--out", str(run), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    preds = pd.read_csv(run / "predictions.csv")
    dlop = preds[preds["model"] == "dlop"]
    assert len(dlop) == 30 and {"dlop+clinical", "clinical_cox"} <= set(preds["model"])
    assert dlop["risk"].between(0, 1).all()  # 1 - S(3 years)
    surv = dlop[[c for c in dlop.columns if c.startswith("surv_")]].to_numpy()
    assert (surv.min() >= 0) and (surv.max() <= 1) and (surv[:, 1:] <= surv[:, :-1] + 1e-9).all()
    desc = json.loads((run / "models" / "dlop.json").read_text())
    assert desc["objective"]["kind"] == "discrete" and desc["objective"]["cuts"] == [365.25, 730.5, 1095.75, 1461.0]
    assert desc["clinical"]["selected"]
    new = _predict(run, small_cohort, tmp_path / "dlop-pred", cache)
    assert set(new["model"]) == {"dlop", "dlop+clinical"}
    assert (new["model"] == "dlop").sum() == 30 and new.loc[new["model"] == "dlop", "risk"].between(0, 1).all()


@pytest.mark.slow
def test_cldca_response_classification_through_the_cli(small_cohort, trained, tmp_path):
    """CLDCA on the response (PD vs disease control) beside a clinical logistic model, DeLong CIs."""
    from hccprog.cohort import load_cohort
    from hccprog.evaluation.classification import delong_auc_ci

    _, cache, _ = trained
    run = tmp_path / "cldca"
    result = runner.invoke(app, ["train", str(small_cohort / "cohort.yaml"), "--model", "cldca", "--endpoint",
                                 "response", "--folds", "3", "--preset", "tiny", "--out", str(run),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert "PD vs disease control" in result.output
    for name in ("predictions.csv", "metrics.json", "config.yaml", "report.html", "figures/roc.png", "outcomes.csv",
                 "cutoffs.json", "folds.csv"):
        assert (run / name).exists(), name
    page = (run / "report.html").read_text()
    assert f"run folder {run.name};" in page and "Response classification" in page  # not the staging name
    preds = pd.read_csv(run / "predictions.csv")
    assert set(preds["model"]) == {"cldca", "clinical_logistic"}
    cohort = load_cohort(small_cohort / "cohort.yaml").cohort
    labels = (cohort.responses() == "PD").astype(int)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "response" and metrics["models"]["cldca"]["n_positive"] == int(labels.sum())
    for name, g in preds.groupby("model"):
        assert len(g) == 30 and set(g["fold"]) == {0, 1, 2}
        assert ((1 / (1 + np.exp(-g["risk"])) - g["p_PD"]).abs() < 1e-5).all()
        auc = delong_auc_ci(labels.loc[g["patient_id"]], g["risk"])
        assert metrics["models"][name]["auc"]["value"] == pytest.approx(auc[0], abs=1e-6)
    (comp,) = metrics["comparisons"]
    assert comp["model"] == "cldca" and comp["reference"] == "clinical_logistic"
    assert comp["auc_difference"]["ci_lower"] <= comp["auc_difference"]["value"] <= comp["auc_difference"]["ci_upper"]

    # the final model scores new patients: logit, p_PD, group at the training cut-off; AUC where
    # the new cohort has responses
    desc = json.loads((run / "models" / "cldca.json").read_text())
    assert desc["task"] == "response" and desc["clinical"] is not None
    new = tmp_path / "cldca-new"
    result = runner.invoke(app, ["predict", str(run), str(small_cohort / "cohort.yaml"), "--out", str(new),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert "response AUC" in result.output
    scored = pd.read_csv(new / "predictions.csv")
    assert len(scored) == 30 and (scored["fold"] == -1).all()
    assert ((1 / (1 + np.exp(-scored["risk"])) - scored["p_PD"]).abs() < 1e-5).all()
    clear = (scored["risk"] - desc["threshold"]).abs() > 1e-4  # predictions.csv rounds to 6 digits
    assert (scored["risk_group"] == (scored["risk"] >= desc["threshold"]).astype(int))[clear].all()
    ext = json.loads((new / "metrics.json").read_text())["models"]["cldca"]
    y = labels.loc[scored["patient_id"]]
    assert ext["n"] == 30 and ext["auc"]["value"] == pytest.approx(delong_auc_ci(y, scored["risk"])[0], abs=1e-5)

    # CLDCA's ablation rows through `hccprog ablation` (response AUC table); a second call reuses them
    abl = tmp_path / "cldca-abl"
    args = ["ablation", str(small_cohort / "cohort.yaml"), "--model", "cldca", "--endpoint", "response",
            "--folds", "3", "--preset", "tiny", "--rows", "Mode7 (no LSTM),CLDCA", "--out", str(abl),
            "--cache", str(cache)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(abl / "ablation.csv")
    assert table["row"].tolist() == ["Mode7 (no LSTM)", "CLDCA"] and table["lstm"].tolist() == ["no", "yes"]
    m7 = json.loads((abl / "runs" / "mode7-no-lstm" / "metrics.json").read_text())["models"]["cldca"]["auc"]
    assert table.loc[0, "cldca AUC (95% CI)"].startswith(f"{m7['value']:.3f}")
    stamp = (abl / "runs" / "cldca" / "metrics.json").stat().st_mtime_ns
    assert runner.invoke(app, args).exit_code == 0
    assert (abl / "runs" / "cldca" / "metrics.json").stat().st_mtime_ns == stamp


@pytest.fixture(scope="module")
def mri_cohort(tmp_path_factory):
    """MRI (T2/ART/PV) at three time points: pre-treatment and after the first and second TACE."""
    from hccprog.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("mri") / "cohort"
    synthesize(out, SynthConfig(patients=16, seed=5, modality="mri", followups=2, shape=(32, 32, 16),
                                spacing=(12.0, 12.0, 15.0), workers=1))
    return out


@pytest.mark.slow
def test_progswin_risk_classes_through_the_cli(mri_cohort, tmp_path):
    """ProgSwin-UNETR on masked arterial volumes of three time points: class probabilities in
    predictions.csv, class metrics and KM of the predicted classes, predict on new patients."""
    from hccprog.cohort import load_cohort
    from hccprog.evaluation.classification import risk_class_labels

    run, cache = tmp_path / "ps", tmp_path / "cache"
    result = runner.invoke(app, ["train", str(mri_cohort / "cohort.yaml"), "--model", "progswin", "--folds", "2",
                                 "--preset", "tiny", "--n-boot", "20", "--out", str(run), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    conf = yaml.safe_load((run / "config.yaml").read_text())
    assert conf["train"]["preprocessing"]["kind"] == "volume" and conf["train"]["preprocessing"]["timepoints"] == 3
    preds = pd.read_csv(run / "predictions.csv")
    ps = preds[preds["model"] == "progswin"]
    probs = ps[["p_0", "p_1", "p_2", "p_3"]].to_numpy()
    assert len(ps) == 16 and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(ps["risk"], probs @ np.arange(4), atol=1e-4)  # the expected class
    assert preds.loc[preds["model"] != "progswin", "p_0"].isna().all()
    metrics = json.loads((run / "metrics.json").read_text())
    rc = metrics["models"]["progswin"]["risk_classes"]
    cohort = load_cohort(mri_cohort / "cohort.yaml").cohort
    out = cohort.outcomes("os", unit=cohort.time_unit)
    labels = risk_class_labels(out["time"], out["event"], rc["edges"])
    assert rc["n_known"] == int((labels >= 0).sum()) and sum(rc["predicted_counts"].values()) == 16
    assert rc["edges"] == pytest.approx([m * 365.25 / 12 for m in (12, 24, 36)])  # cohort unit: days
    assert (run / "figures" / "km_risk_classes.png").exists()
    assert "Risk classes of progswin" in (run / "report.html").read_text()
    desc = json.loads((run / "models" / "progswin.json").read_text())
    assert desc["objective"]["kind"] == "classes" and desc["streams"] == 3
    new = tmp_path / "ps-pred"
    result = runner.invoke(app, ["predict", str(run), str(mri_cohort / "cohort.yaml"), "--out", str(new),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(new / "predictions.csv")
    assert set(scored["model"]) == {"progswin", "progswin+clinical"}
    own = scored[scored["model"] == "progswin"]
    assert len(own) == 16 and np.allclose(own[["p_0", "p_1", "p_2", "p_3"]].sum(axis=1), 1, atol=1e-5)
    assert scored.loc[scored["model"] != "progswin", "p_0"].isna().all()  # the fused model has no classes
    # Grad-CAM++ of the 3D network: three planes per time point and the map on each observed scan
    result = runner.invoke(app, ["explain", str(run), str(mri_cohort / "cohort.yaml"), "-p", "SYN0001", "--out",
                                 str(tmp_path / "ps-explain"), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "ps-explain" / "SYN0001"
    assert (folder / "overlay_gradcampp.png").exists() and (folder / "card.html").exists()
    assert len(list(folder.glob("saliency_gradcampp_*.nii.gz"))) == 3
    assert np.load(folder / "saliency.npz")["gradcampp"].shape == (3, 1, 32, 32, 32)
    # per target class (Yao et al.: "the gradient of the target class"): one map per class
    result = runner.invoke(app, ["explain", str(run), str(mri_cohort / "cohort.yaml"), "-p", "SYN0001", "--out",
                                 str(tmp_path / "ps-classes"), "--cache", str(cache), "--target", "all",
                                 "--no-nifti"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "ps-classes" / "SYN0001"
    saved = np.load(folder / "saliency.npz")
    assert sorted(saved.files) == [f"gradcampp_class{k}" for k in range(4)]
    assert all((folder / f"overlay_gradcampp_class{k}.png").exists() for k in range(4))
    entry = json.loads((folder / "explanation.json").read_text())
    assert entry["saliency"]["explained"]["gradcampp_class2"] == "the logit of class 2"


@pytest.mark.slow
def test_dmmgnet_progression_head_and_ablation_through_the_cli(mri_cohort, tmp_path):
    """DMMGNet on liver/tumor crops of T2 and PV slabs: PFS risk and the 1-year progression
    probability in predictions.csv, its metrics and report section, predict, and a two-row
    ablation table whose rows are reused when the command runs again."""
    from hccprog.cohort import load_cohort
    from hccprog.survival.endpoints import horizon_labels

    run, cache = tmp_path / "dm", tmp_path / "cache"
    result = runner.invoke(app, ["train", str(mri_cohort / "cohort.yaml"), "--model", "dmmgnet", "--endpoint", "pfs",
                                 "--folds", "2", "--preset", "tiny", "--n-boot", "20", "--out", str(run),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    conf = yaml.safe_load((run / "config.yaml").read_text())
    pre = conf["train"]["preprocessing"]
    assert pre["selection"] == "contiguous"
    desc = json.loads((run / "models" / "dmmgnet.json").read_text())
    assert desc["channels"] == ["MR_T2", "MR_PV"]  # hccprog synth's names, resolved from the preset's alternatives
    preds = pd.read_csv(run / "predictions.csv")
    dm = preds[preds["model"] == "dmmgnet"]
    assert len(dm) == 16 and dm["p_progression"].between(0, 1).all()
    assert preds.loc[preds["model"] != "dmmgnet", "p_progression"].isna().all()
    metrics = json.loads((run / "metrics.json").read_text())
    pg = metrics["models"]["dmmgnet"]["progression"]
    cohort = load_cohort(mri_cohort / "cohort.yaml").cohort
    out = cohort.outcomes("pfs", unit=cohort.time_unit)
    labels = horizon_labels(out["time"], out["event"], 365.25)
    assert pg["n_known"] == int((labels >= 0).sum()) and pg["events"] == int((labels == 1).sum())
    assert "Progression head of dmmgnet" in (run / "report.html").read_text()
    new = tmp_path / "dm-pred"
    result = runner.invoke(app, ["predict", str(run), str(mri_cohort / "cohort.yaml"), "--out", str(new),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(new / "predictions.csv")
    assert scored.loc[scored["model"] == "dmmgnet", "p_progression"].between(0, 1).all()

    abl = tmp_path / "abl"
    args = ["ablation", str(mri_cohort / "cohort.yaml"), "--model", "dmmgnet", "--preset", "tiny", "--folds", "2",
            "--n-boot", "20", "--rows", "baseline,+CMTFM", "--out", str(abl), "--cache", str(cache)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(abl / "ablation.csv")
    assert table["row"].tolist() == ["baseline", "+CMTFM"]
    assert table[["sgcm", "mmdfm", "cmtfm"]].values.tolist() == [["no", "no", "no"], ["no", "no", "yes"]]
    row_metrics = json.loads((abl / "runs" / "cmtfm" / "metrics.json").read_text())
    c = row_metrics["models"]["dmmgnet"]["harrell_c"]["value"]
    assert table.loc[1, "dmmgnet C-index (95% CI)"].startswith(f"{c:.3f}")
    assert yaml.safe_load((abl / "runs" / "cmtfm" / "config.yaml").read_text())["train"]["network"]["cmtfm"]
    stamp = (abl / "runs" / "baseline" / "metrics.json").stat().st_mtime_ns
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and (abl / "runs" / "baseline" / "metrics.json").stat().st_mtime_ns == stamp
    bad = runner.invoke(app, [*args[:-4], "--rows", "nonsense", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "unknown ablation rows" in bad.output


@pytest.mark.slow
def test_progswin_classes_from_a_user_column(mri_cohort, tmp_path):
    """`--class-column`: the risk classes come from the clinical table (blank = unknown) and the
    class metrics are computed against them; a bad value names its file, row and column."""
    import shutil

    from hccprog.cohort import load_cohort
    from hccprog.training.run import class_labels_from_column

    cohort_dir = tmp_path / "cohort"
    shutil.copytree(mri_cohort, cohort_dir)
    spec = yaml.safe_load((cohort_dir / "cohort.yaml").read_text())
    table_path = cohort_dir / spec["clinical"]
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    classes = ["3", "2", "", "0", "1", "3", "2", "1", "0", "", "3", "2", "1", "0", "3", "2"][: len(table)]
    table["risk_class"] = classes
    table.to_csv(table_path, index=False)
    run = tmp_path / "ps"
    result = runner.invoke(app, ["train", str(cohort_dir / "cohort.yaml"), "--model", "progswin", "--folds", "2",
                                 "--preset", "tiny", "--n-boot", "20", "--class-column", "risk_class",
                                 "--out", str(run)])
    assert result.exit_code == 0, result.output
    rc = json.loads((run / "metrics.json").read_text())["models"]["progswin"]["risk_classes"]
    given = [int(c) for c in classes if c]
    assert rc["n_known"] == len(given) and rc["n_unknown"] == classes.count("")
    assert rc["class_counts"] == {str(k): given.count(k) for k in range(4)}
    assert rc["labels"] == "column risk_class"
    outcomes = pd.read_csv(run / "outcomes.csv", dtype={"patient_id": str}).set_index("patient_id")
    assert outcomes["risk_class"].tolist() == [int(c) if c else -1 for c in classes]
    assert "clinical table's column risk_class" in (run / "report.html").read_text()

    table.loc[4, "risk_class"] = "high"
    table.to_csv(table_path, index=False)
    cohort = load_cohort(cohort_dir / "cohort.yaml").cohort
    with pytest.raises(ValueError, match=r"row 6, column 'risk_class': 'high' is not a risk class 0\.\.3"):
        class_labels_from_column(cohort, cohort.ids, "risk_class", 4)
    with pytest.raises(ValueError, match="no column 'stage'"):
        class_labels_from_column(cohort, cohort.ids, "stage", 4)


def _renamed_weeks_upper(src, dst):
    """A copy of ``src`` with its series renamed (CT_PV -> PORTAL_VENOUS, ...), times in weeks and
    covariate columns in upper case: what another hospital's export looks like."""
    import shutil

    shutil.copytree(src, dst)
    images = pd.read_csv(dst / "images.csv")
    renames = {"CT_NC": "NATIVE", "CT_ART": "ARTERIAL", "CT_PV": "PORTAL_VENOUS"}
    images["series"] = images["series"].map(renames)
    images.to_csv(dst / "images.csv", index=False)
    spec = yaml.safe_load((dst / "cohort.yaml").read_text())
    clinical = pd.read_csv(dst / "clinical.csv", dtype=str)
    for ep in spec["endpoints"].values():
        clinical[ep["time"]] = (clinical[ep["time"]].astype(float) / 7).round(3).astype(str)
    upper = {c: c.upper() for c in spec["covariates"]}
    clinical = clinical.rename(columns=upper)
    spec["covariates"] = {upper[k]: v for k, v in spec["covariates"].items()}
    spec["time_unit"] = "weeks"
    clinical.to_csv(dst / "clinical.csv", index=False)
    (dst / "cohort.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return renames


def test_predict_maps_names_and_units(trained, small_cohort, tmp_path):
    """Renamed series (mapped with --series-alias), a cohort in weeks scored by a run in days, and
    upper-case covariates (matched case-insensitively): scored, with metrics and a report, and the
    survival columns in the new cohort's unit."""
    run, cache, _ = trained
    cohort = tmp_path / "other"
    renames = _renamed_weeks_upper(small_cohort, cohort)
    dest = tmp_path / "pred"
    plain = runner.invoke(app, ["predict", str(run), str(cohort / "cohort.yaml"), "--out", str(dest),
                                "--cache", str(cache)])
    assert plain.exit_code == 1 and "series_aliases" in plain.output and "--series-alias" in plain.output
    args = [a for old, new in renames.items() for a in ("--series-alias", f"{new}={old}")]
    result = runner.invoke(app, ["predict", str(run), str(cohort / "cohort.yaml"), "--out", str(dest),
                                 "--cache", str(cache), *args])
    assert result.exit_code == 0, result.output
    assert "case-insensitive" in result.output and "times converted" in result.output
    scored = pd.read_csv(dest / "predictions.csv")
    assert set(scored["model"]) == {"crnn", "crnn+clinical"}
    days = pd.read_csv(run / "predictions.csv")
    run_h = sorted(float(c[5:]) for c in days.columns if c.startswith("surv_"))
    desc = json.loads((run / "models" / "crnn.json").read_text())
    weeks = sorted(float(c[5:]) for c in scored.columns if c.startswith("surv_"))
    np.testing.assert_allclose(weeks, np.array(desc["horizons"]) / 7, rtol=1e-4)
    assert run_h  # the run's own columns are in days
    # the same patients scored in days by the original cohort: same risks, same survival
    same = runner.invoke(app, ["predict", str(run), str(small_cohort / "cohort.yaml"), "--out",
                               str(tmp_path / "ref"), "--cache", str(cache)])
    assert same.exit_code == 0, same.output
    ref = pd.read_csv(tmp_path / "ref" / "predictions.csv")
    a = scored.set_index(["patient_id", "model"]).sort_index()
    b = ref.set_index(["patient_id", "model"]).sort_index()
    np.testing.assert_allclose(a["risk"], b["risk"], rtol=1e-5, atol=1e-6)
    surv_a = a[[c for c in a.columns if c.startswith("surv_")]].to_numpy()
    surv_b = b[[c for c in b.columns if c.startswith("surv_")]].to_numpy()
    np.testing.assert_allclose(surv_a, surv_b, atol=1e-5)
    metrics = json.loads((dest / "metrics.json").read_text())
    assert metrics["time_unit"] == "weeks" and {"crnn", "crnn+clinical"} <= set(metrics["models"])
    assert (dest / "report.html").exists()


def _cohort_with_every_fill(src, dst):
    """A copy of ``src`` where one patient each lacks a series, a follow-up, a follow-up mask, a
    covariate value, has a mask on another grid and a single-slice series. Returns patient -> kind."""
    import shutil

    import nibabel as nib

    shutil.copytree(src, dst)
    images = pd.read_csv(dst / "images.csv", dtype=str, keep_default_na=False)
    ids = sorted(images["patient_id"].unique())
    kinds = {ids[0]: "series-filled", ids[1]: "timepoint-carried-forward", ids[2]: "mask-propagated",
             ids[3]: "covariate-imputed", ids[4]: "mask-resampled", ids[5]: "single-slice"}
    fu = images["timepoint"] == "fu1"
    drop = ((images["patient_id"] == ids[0]) & fu & (images["series"] == "CT_ART")) | (
        (images["patient_id"] == ids[1]) & fu)
    images.loc[(images["patient_id"] == ids[2]) & fu, "mask"] = ""
    row = images.index[(images["patient_id"] == ids[4]) & (images["timepoint"] == "baseline")]
    mask = nib.load(dst / images.loc[row[0], "mask"])
    fine = np.repeat(np.asarray(mask.dataobj), 2, axis=0)  # twice as many voxels along x: another grid
    affine = mask.affine.copy()
    affine[:3, 0] /= 2
    affine[:3, 3] -= mask.affine[:3, 0] / 4
    nib.save(nib.Nifti1Image(fine, affine), dst / "fine_mask.nii.gz")
    images.loc[row, "mask"] = "fine_mask.nii.gz"
    one = images.index[(images["patient_id"] == ids[5]) & (images["timepoint"] == "baseline")
                       & (images["series"] == "CT_NC")][0]
    img = nib.load(dst / images.loc[one, "image"])
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:, :, 8:9], img.affine), dst / "one_slice.nii.gz")
    images.loc[one, ["image", "mask"]] = ["one_slice.nii.gz", ""]  # the other series carry the mask
    images[~drop].to_csv(dst / "images.csv", index=False)
    clinical = pd.read_csv(dst / "clinical.csv", dtype=str, keep_default_na=False)
    clinical.loc[clinical["patient_id"] == ids[3], "afp"] = ""
    clinical.to_csv(dst / "clinical.csv", index=False)
    spec = yaml.safe_load((dst / "cohort.yaml").read_text())
    spec["resample_masks"] = True
    (dst / "cohort.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return kinds


@pytest.mark.slow
def test_every_fill_is_reported_in_validate_predictions_and_report(small_cohort, tmp_path):
    """Each fill path (series, time point, mask propagated, mask resampled, single slice, covariate) is
    (a) a validate warning, (b) in the imputed column of predictions.csv of train and predict and in
    predict's output, (c) counted in both reports."""
    cohort = tmp_path / "filled"
    kinds = _cohort_with_every_fill(small_cohort, cohort)
    codes = {"series-filled": "series-missing", "timepoint-carried-forward": "timepoints-missing",
             "mask-propagated": "timepoint-without-mask", "covariate-imputed": "covariate-missing",
             "mask-resampled": "mask-resampled", "single-slice": "single-slice"}
    checked = runner.invoke(app, ["validate", str(cohort / "cohort.yaml"), "--format", "json"])
    assert checked.exit_code == 0, checked.output
    found = {i["code"]: i["message"] for i in json.loads(checked.output)["issues"]}
    for pid, kind in kinds.items():
        assert codes[kind] in found, (kind, found.keys())
        if kind not in ("covariate-imputed", "mask-resampled", "single-slice"):
            assert pid in found[codes[kind]], (kind, found[codes[kind]])

    run, cache = tmp_path / "run", tmp_path / "cache"
    trained = runner.invoke(app, ["train", str(cohort / "cohort.yaml"), "--preset", "tiny", "--folds", "2",
                                  "--n-boot", "20", "--out", str(run), "--cache", str(cache)])
    assert trained.exit_code == 0, trained.output
    dest = tmp_path / "pred"
    scored = runner.invoke(app, ["predict", str(run), str(cohort / "cohort.yaml"), "--out", str(dest),
                                 "--cache", str(cache)])
    assert scored.exit_code == 0, scored.output
    for folder in (run, dest):
        preds = pd.read_csv(folder / "predictions.csv", dtype={"imputed": str}, keep_default_na=False)
        metrics = json.loads((folder / "metrics.json").read_text())
        report = (folder / "report.html").read_text()
        assert "What was filled in" in report
        from hccprog.fills import FILL_KINDS

        assert set().union(*metrics["imputed"].values()) <= set(FILL_KINDS)  # every entry parses as a kind
        for pid, kind in kinds.items():
            model = "crnn+clinical" if kind == "covariate-imputed" else "crnn"
            cell = preds[(preds["patient_id"] == pid) & (preds["model"] == model)]["imputed"].iloc[0]
            assert kind in cell, (folder.name, pid, kind, cell)
            assert metrics["imputed"][model][kind] >= 1 and kind in report
        untouched = preds[~preds["patient_id"].isin(list(kinds)) & (preds["model"] == "crnn")]["imputed"]
        assert (untouched == "").all()
    for kind in kinds.values():
        assert kind in scored.output, kind


@pytest.mark.slow  # trains a run of its own (CI runs it)
def test_response_cutoffs_are_learned_per_repeat_and_fold(small_cohort, trained, tmp_path):
    """With --repeats 3, the classification of each out-of-fold prediction uses the Youden cut-off
    learned on the training part of its own (repeat, fold); keyed by fold alone, later repeats
    overwrote repeat 0's cut-offs (learned on patients that include the test fold). --oracle works for
    the response endpoint too: a fixed score (fold -1) with cut-offs learned the same way."""
    from hccprog.cohort import load_cohort

    _, cache, _ = trained
    run = tmp_path / "resp"
    result = runner.invoke(app, ["train", str(small_cohort / "cohort.yaml"), "--model", "crnn", "--endpoint",
                                 "response", "--folds", "3", "--repeats", "3", "--preset", "tiny", "--n-boot", "10",
                                 "--oracle", f"{small_cohort / 'truth.csv'}:log_hazard_pfs",
                                 "--out", str(run), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    cutoffs = json.loads((run / "cutoffs.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    preds = pd.read_csv(run / "predictions.csv", dtype={"patient_id": str})
    folds = pd.read_csv(run / "folds.csv", dtype={"patient_id": str}).query("repeat == 0")
    fold_of = folds.set_index("patient_id")["fold"]
    labels = (load_cohort(small_cohort / "cohort.yaml").cohort.responses() == "PD").astype(int)
    assert set(preds["model"]) == {"crnn", "clinical_logistic", "oracle"}
    assert (preds.query("model == 'oracle'")["fold"] == -1).all() and "oracle" in metrics["models"]
    differ = False
    for name, g in preds.groupby("model"):
        by = {(c["repeat"], c["fold"]): c["cutoffs"][0] for c in cutoffs if c["model"] == name}
        # fitted models: every (repeat, fold); a fixed score has rows (and so cut-offs) in the first repeat only
        assert set(by) == {(r, f) for r in range(1 if name == "oracle" else 3) for f in range(3)}
        y = labels.loc[g["patient_id"]].to_numpy()
        split = fold_of.loc[g["patient_id"]].to_numpy()
        pred = (g["risk"].to_numpy() >= np.array([by[(0, f)] for f in split])).astype(int)
        assert metrics["models"][name]["accuracy"] == pytest.approx(float(np.mean(pred == y)), abs=1e-9)
        clear = np.abs(g["risk"].to_numpy() - np.array([by[(0, f)] for f in split])) > 1e-4  # 6-digit rounding
        assert (g["risk_group"].to_numpy() == pred)[clear].all()  # predictions.csv holds the classification
        if name != "oracle":
            old = (g["risk"].to_numpy() >= np.array([by[(2, f)] for f in split])).astype(int)
            differ |= float(np.mean(old == y)) != metrics["models"][name]["accuracy"]
    assert differ  # keyed by fold alone (repeat 2's cut-offs), the reported accuracy would differ


@pytest.mark.slow
def test_radiomics_trains_fuses_and_predicts(small_cohort, trained, tmp_path):
    """A feature-based model through `train` (fused with the clinical Cox model, its reduction steps per
    fold written) and `predict` (the saved JSON pipeline, no weights file); a tree classifier has no
    final model, and predict says so."""
    _, cache, _ = trained
    run = tmp_path / "rad"
    result = runner.invoke(app, ["train", str(small_cohort / "cohort.yaml"), "--model", "delta-radiomics-cox",
                                 "--preset", "tiny", "--folds", "3", "--n-boot", "10", "--out", str(run),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    preds = pd.read_csv(run / "predictions.csv")
    assert {"delta-radiomics-cox", "delta-radiomics-cox+clinical", "clinical_cox"} <= set(preds["model"])
    steps = pd.read_csv(run / "training" / "feature_selection.csv")
    assert len(steps) == 3 and (steps["after correlation clustering"] <= steps["extracted"]).all()
    assert (run / "models" / "delta-radiomics-cox.json").exists()
    assert not (run / "models" / "delta-radiomics-cox.pt").exists()
    scored = _predict(run, small_cohort, tmp_path / "rad-new", cache)
    assert set(scored["model"]) == {"delta-radiomics-cox", "delta-radiomics-cox+clinical"}
    assert len(scored) == 60 and scored["risk"].notna().all() and (scored["fold"] == -1).all()
    result = runner.invoke(app, ["explain", str(run), str(small_cohort / "cohort.yaml"), "-p", "SYN0002", "--out",
                                 str(tmp_path / "rad-explain"), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    feats = pd.read_csv(tmp_path / "rad-explain" / "SYN0002" / "feature_contributions.csv")
    entry = json.loads((tmp_path / "rad-explain" / "SYN0002" / "explanation.json").read_text())
    risk = entry["scores"]["delta-radiomics-cox"]["risk"]
    assert feats["contribution"].sum() + entry["features_baseline"] == pytest.approx(risk, abs=1e-6)

    rf = tmp_path / "rf"
    result = runner.invoke(app, ["train", str(small_cohort / "cohort.yaml"), "--model", "radiomics-rf", "--endpoint",
                                 "response", "--preset", "tiny", "--folds", "3", "--n-boot", "10", "--out", str(rf),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert "no final model is saved" in (rf / "config.yaml").read_text()
    # the same classifier on a survival endpoint: ordered risk classes (ProgSwin's comparators)
    classes = tmp_path / "rf-classes"
    result = runner.invoke(app, ["train", str(small_cohort / "cohort.yaml"), "--model", "radiomics-rf", "--endpoint",
                                 "os", "--preset", "tiny", "--folds", "3", "--n-boot", "10", "--out", str(classes),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(classes / "predictions.csv").query("model == 'radiomics-rf'")
    p_cols = [f"p_{k}" for k in range(4)]
    assert np.allclose(rows[p_cols].sum(axis=1), 1) and np.allclose(rows["risk"], rows[p_cols].to_numpy() @ range(4))
    rc = json.loads((classes / "metrics.json").read_text())["models"]["radiomics-rf"]["risk_classes"]
    assert rc["n_known"] + rc["n_unknown"] == 30
    result = runner.invoke(app, ["predict", str(rf), str(small_cohort / "cohort.yaml"), "--out", str(tmp_path / "x"),
                                 "--cache", str(cache)])
    assert result.exit_code == 1 and "without a final model" in result.output


def _predict(run, cohort, out, cache) -> pd.DataFrame:
    """``hccprog predict`` of a run folder on a cohort; its predictions.csv."""
    result = runner.invoke(app, ["predict", str(run), str(cohort / "cohort.yaml"), "--out", str(out),
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "predictions.csv")
