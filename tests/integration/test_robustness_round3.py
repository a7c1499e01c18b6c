"""Robustness, round 3 (issue 34): the modality from the data, NIfTI without orientation, the checks of
`validate` in every command, DICOM failures that say why, single DICOM files, expected conditions never
called bugs, run folders that name no file outside themselves, and progress lines in logs.

The DICOM cases use the real files that ship inside pydicom (``pydicom.data``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import CTImageStorage, generate_uid

from hccprog.errors import (
    ConfigError,
    HccprogError,
    InputError,
    OutputError,
    OutputExistsError,
    RunFolderError,
    describe,
)
from hccprog.imaging import ImageReadError, read_image, read_mask
from hccprog.imaging.modality import intensity_modality, resolve_modality
from tests.integration.helpers import BUG, invoke


def _images(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "images.csv", dtype=str, keep_default_na=False)


def _pydicom_file(name: str) -> Path:
    return Path(get_testdata_file(name))


@pytest.fixture(scope="module")
def tiny_mri_master(tmp_path_factory) -> Path:
    from hccprog.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("tiny-mri") / "cohort"
    synthesize(out, SynthConfig(patients=6, seed=3, shape=(32, 32, 16), spacing=(12.0, 12.0, 15.0), workers=1,
                                modality="mri"))
    return out


RENAME_CT = {"MR_T2": "CT_T2", "MR_ART": "CT_ART", "MR_PV": "CT_PV"}


def _renamed(master: Path, dst: Path, rename: dict[str, str]) -> Path:
    shutil.copytree(master, dst)
    frame = _images(dst)
    frame["series"] = frame["series"].replace(rename)
    frame.to_csv(dst / "images.csv", index=False)
    return dst


# ------------------------------------------------------------------------------------ 1. modality


def test_modality_rules():
    assert intensity_modality(np.array([-1000.0] * 10 + [40.0] * 990)) == "CT"
    assert intensity_modality(np.linspace(0, 900, 1000)) == "MR"
    d = resolve_modality("CT_PV", intensities="MR")
    assert d.modality == "MR" and d.source == "intensities" and "named like CT" in d.notes[0]
    assert resolve_modality("PV", tag="MR", intensities="MR").modality == "MR"
    assert resolve_modality("CT_PV", declared="MR", intensities="MR").notes == []
    assert resolve_modality("MR_T2", declared="CT").modality == "CT"
    assert resolve_modality("CT_PV").modality == "CT" and resolve_modality("MR_PV").modality == "MR"


def test_mr_volume_under_a_ct_name_is_flagged_and_gives_the_mri_tensors(tiny_mri_master, tmp_path):
    """MR volumes named CT_* are a `validate` warning naming the series, and preprocess to exactly the
    tensors of the same volumes named MR_* (before, they were windowed as CT: most voxels saturated)."""
    from hccprog.cohort import load_cohort
    from hccprog.preprocessing.slices import SliceConfig, load_timepoint

    ct_named = _renamed(tiny_mri_master, tmp_path / "ct-named", RENAME_CT)
    code, output = invoke("validate", ct_named / "cohort.yaml")
    assert code == 0 and "modality-mismatch" in output and "series 'CT_PV'" in output, output
    code, output = invoke("validate", tiny_mri_master / "cohort.yaml")
    assert code == 0 and "modality-mismatch" not in output, output

    mr = load_cohort(tiny_mri_master / "cohort.yaml").cohort
    ct = load_cohort(ct_named / "cohort.yaml").cohort
    for pid in mr.ids[:2]:
        a, _, _ = load_timepoint(mr[pid].timepoints[0], ["MR_PV"], SliceConfig())
        b, _, _ = load_timepoint(ct[pid].timepoints[0], ["CT_PV"], SliceConfig())
        np.testing.assert_array_equal(a, b)
        assert float((b >= 0.999).mean()) < 0.05  # z-scored, not saturated by a CT window


@pytest.mark.slow
def test_mr_volume_under_a_ct_name_trains_as_mri(tiny_mri_master, tmp_path):
    """Through the real `train` path: the CT-named MR cohort is flagged and predicts what the MR-named one does."""
    ct_named = _renamed(tiny_mri_master, tmp_path / "ct-named", RENAME_CT)
    runs = {}
    for label, cohort in (("mr", tiny_mri_master), ("ct", ct_named)):
        out = tmp_path / f"run-{label}"
        code, output = invoke("train", cohort / "cohort.yaml", "--preset", "tiny", "--folds", "2", "--n-boot", "10",
                              "--out", out, "--cache", tmp_path / f"cache-{label}")
        assert code == 0, output
        runs[label] = (out, output)
    assert "modality-mismatch" in runs["ct"][1] and "series 'CT_PV'" in runs["ct"][1]
    assert "normalised as MRI" in runs["ct"][1]
    assert "modality-mismatch" not in runs["mr"][1]

    def crnn(out: Path) -> pd.DataFrame:
        p = pd.read_csv(out / "predictions.csv", dtype={"patient_id": str})
        return p[p["model"] == "crnn"].reset_index(drop=True)

    a, b = crnn(runs["mr"][0]), crnn(runs["ct"][0])
    assert len(a) == 6
    np.testing.assert_allclose(a["risk"].to_numpy(float), b["risk"].to_numpy(float), rtol=0, atol=1e-9)


def test_declared_modality_wins_and_is_validated(tiny_mri_master, tmp_path):
    cohort = _renamed(tiny_mri_master, tmp_path / "c", {"MR_PV": "PV"})
    with open(cohort / "cohort.yaml", "a") as fh:
        fh.write("series:\n  PV:\n    modality: mri\n")
    from hccprog.cohort import load_cohort

    res = load_cohort(cohort / "cohort.yaml")
    assert res.ok, res.report.to_dicts()
    assert not [i for i in res.report.warnings if i.code == "modality-mismatch"]
    vol = res.cohort[res.cohort.ids[0]].timepoints[0]["PV"].image.load()
    assert vol.meta["modality"] == "MR" and vol.meta["modality_source"] == "declared"
    (cohort / "cohort.yaml").write_text((cohort / "cohort.yaml").read_text().replace("modality: mri",
                                                                                     "modality: US"))
    code, output = invoke("validate", cohort / "cohort.yaml")
    assert code == 1 and "series.PV.modality" in output


def _with_geometry(src: Path, dst: Path, *, modality: str | None = None, ct: bool = False) -> Path:
    """A copy of a pydicom test file (its encoded pixel data untouched) with the geometry tags a series
    needs, and optionally another modality."""
    ds = pydicom.dcmread(src)
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.8, 0.8]
    ds.SliceThickness = 2.0
    ds.SeriesInstanceUID = ds.get("SeriesInstanceUID", generate_uid())
    if modality:
        ds.Modality = modality
    if ct:
        ds.SOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=False)
    return dst


def test_dicom_mr_tag_wins_over_a_ct_name(tmp_path, tiny_cohort):
    from hccprog.cohort.model import ImageRef

    folder = tmp_path / "mr"
    folder.mkdir()
    shutil.copy(_pydicom_file("MR_small.dcm"), folder / "a.dcm")
    vol = ImageRef(folder, series="CT_PV").load()
    assert vol.meta["modality"] == "MR" and vol.meta["modality_source"] == "DICOM tag"


@pytest.mark.parametrize(("name", "what"), [("examples_palette.dcm", "ultrasound"),
                                            ("SC_rgb_small_odd.dcm", "colour image"),
                                            ("JPEG2000.dcm", "nuclear-medicine")])
def test_non_ct_mr_images_are_refused_with_what_they_are(tmp_path, name, what):
    path = _with_geometry(_pydicom_file(name), tmp_path / "s" / "a.dcm")
    for given in (path, path.parent):
        with pytest.raises(ImageReadError) as err:
            read_image(given)
        assert what in str(err.value) and "CT and MR scans only" in str(err.value)
        assert "3D array" not in str(err.value)


# ------------------------------------------------------------------------------- 2. NIfTI orientation


def _nifti_cohort_image(tiny_cohort: Path) -> Path:
    return tiny_cohort / _images(tiny_cohort).loc[0, "image"]


def test_nifti_without_orientation_is_a_validate_warning(tiny_cohort):
    path = _nifti_cohort_image(tiny_cohort)
    img = nib.load(path)
    out = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine)
    out.set_qform(None, code=0)
    out.set_sform(None, code=0)
    nib.save(out, path)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml", "--all-warnings")
    assert code == 0, output
    assert "nifti-no-orientation" in output and path.name in output and "qform_code and sform_code" in output


def test_nifti_with_a_singular_affine_is_a_validate_error(tiny_cohort):
    path = _nifti_cohort_image(tiny_cohort)
    img = nib.load(path)
    header = img.header.copy()
    header["srow_z"] = [0.0, 0.0, 0.0, 0.0]  # the third axis collapses
    header.set_qform(None, code=0)  # nibabel refuses to write a singular affine itself
    header["sform_code"] = 1
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), None, header=header), path)
    assert np.linalg.matrix_rank(nib.load(path).header.get_sform()[:3, :3]) < 3
    for args in (("validate",), ("validate", "--quick")):
        code, output = invoke(*args, tiny_cohort / "cohort.yaml")
        assert code == 1, output
        assert path.name in output and "singular or not finite" in output
    with pytest.raises(ImageReadError, match="singular"):
        read_image(path)


# ------------------------------------------------------------------------ 3. one check, every command


def _nan_mask(tiny_cohort: Path) -> Path:
    mask = tiny_cohort / _images(tiny_cohort).loc[0, "mask"]
    img = nib.load(mask)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), mask)
    return mask


def test_nan_mask_is_refused_by_train_as_by_validate(tiny_cohort, tmp_path):
    mask = _nan_mask(tiny_cohort)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml")
    assert code == 1 and "NaN" in output
    out = tmp_path / "run"
    code, output = invoke("train", tiny_cohort / "cohort.yaml", "--preset", "tiny", "--folds", "2", "--n-boot",
                          "10", "--out", out, "--cache", tmp_path / "cache")
    assert code == 1, output
    assert mask.name in output and "NaN" in output and "[mask-nan]" in output and not out.exists()
    for cmd in (("features", tiny_cohort / "cohort.yaml", "--out", tmp_path / "f.parquet"),
                ("propagate", tiny_cohort / "cohort.yaml", "--out", tmp_path / "prop")):
        code, output = invoke(*cmd)
        assert code == 1 and "[mask-nan]" in output, output
    with pytest.raises(ImageReadError, match="NaN"):  # and wherever the library reads it
        read_mask(mask)


# ---------------------------------------------------------------------------------- 4. DICOM decoding


def test_truncated_pixel_data_says_why(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    shutil.copy(_pydicom_file("MR_truncated.dcm"), folder / "a.dcm")
    for given in (folder, folder / "a.dcm"):
        with pytest.raises(ImageReadError) as err:
            read_image(given)
        text = str(err.value)
        assert "less than expected" in text and "Explicit VR Little Endian" in text and "a.dcm" in text
        assert "ImageIO" not in text and "cannot be read: cannot be read" not in text


def test_missing_codec_names_the_package_and_gdcm_fallback_is_quiet(tmp_path, monkeypatch, capfd):
    from hccprog.imaging import dicom

    path = _with_geometry(_pydicom_file("JPGExtended.dcm"), tmp_path / "s" / "a.dcm", modality="CT", ct=True)
    capfd.readouterr()
    vol = read_image(path)  # 12-bit JPEG: pydicom's Pillow cannot, ITK's GDCM can
    assert vol.shape[2] == 1 and np.isfinite(vol.array).all()
    captured = capfd.readouterr()
    assert captured.err == "", captured.err
    monkeypatch.setattr(dicom, "_gdcm_decode", lambda p: None)
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    text = str(err.value)
    assert "JPEG Extended" in text and "pylibjpeg-libjpeg" in text and "a.dcm" in text


# ------------------------------------------------------------------------------ 5. single DICOM files


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm",
                                  "CT_small.dcm"])
def test_a_single_dicom_file_reads_like_its_folder(tmp_path, name):
    folder = tmp_path / "s"
    folder.mkdir()
    shutil.copy(_pydicom_file(name), folder / "a.dcm")
    a, b = read_image(folder), read_image(folder / "a.dcm")
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine, b.affine)
    if name.startswith("MR_small"):  # every encoding of MR_small decodes to MR_small's voxels and grid
        reference = read_image(_pydicom_file("MR_small.dcm"))
        np.testing.assert_array_equal(b.array, reference.array)
        np.testing.assert_allclose(b.affine, reference.affine)
        # LPS rows/columns become RAS: both in-plane axes reverse, rows and columns swap
        stored = pydicom.dcmread(_pydicom_file("MR_small.dcm")).pixel_array.astype(np.float32)
        np.testing.assert_array_equal(b.array[:, :, 0].T[::-1, ::-1], stored)


# -------------------------------------------------------------------- 6. expected conditions, no "bug"


def test_every_mapped_exception_type_is_described_without_calling_it_a_bug():
    mapped = [InputError("x"), ConfigError("x"), RunFolderError("x"), OutputError("x"), OutputExistsError("x"),
              ImageReadError("f.nii", "x"), FileNotFoundError(2, "No such file", "f"),
              PermissionError(13, "Permission denied", "f"), MemoryError()]
    for exc in mapped:
        message, hint = describe(exc)
        assert BUG not in (hint or "") and message, exc
    assert all(issubclass(type(e), HccprogError) for e in mapped[:6])
    assert BUG in (describe(RuntimeError("x"))[1] or "")


@pytest.fixture
def trained(tiny_trained_run):
    """The session's tiny CRNN run (tests/integration/conftest.py); read-only."""
    return tiny_trained_run


def test_train_into_an_existing_folder(trained, tiny_cohort, tmp_path):
    code, output = invoke("train", tiny_cohort / "cohort.yaml", "--preset", "tiny", "--folds", "2", "--out", trained)
    assert code == 1 and "exists" in output and "--overwrite" in output, output
    assert BUG not in output and "overwrite=True" not in output


@pytest.mark.parametrize("content", [b"not a weights file at all", b"\x80\x04K\x01."])
def test_a_weights_file_that_is_not_one(trained, tiny_cohort, tmp_path, content):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "models" / "crnn.pt").write_bytes(content)
    for cmd in (("predict", run, tiny_cohort / "cohort.yaml", "--out", tmp_path / "p"),
                ("explain", run, tiny_cohort / "cohort.yaml", "-p", "SYN0001", "--out", tmp_path / "e")):
        code, output = invoke(*cmd)
        assert code == 1 and "crnn.pt" in output and BUG not in output, output
        assert "Unpickling" not in output


def test_predict_on_a_cohort_missing_a_series(trained, tiny_cohort, tmp_path):
    frame = _images(tiny_cohort)
    frame = frame[frame["series"] != "CT_PV"]
    frame.to_csv(tiny_cohort / "images.csv", index=False)
    code, output = invoke("predict", trained, tiny_cohort / "cohort.yaml", "--out", tmp_path / "p")
    assert code == 1 and "CT_PV" in output and "series_aliases" in output and BUG not in output, output
    assert "unexpected" not in output


# --------------------------------------------------------------------------- 7. no file outside the run


def test_a_run_folder_names_no_file_outside_itself(trained, tiny_cohort, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    desc_path = run / "models" / "crnn.json"
    desc = json.loads(desc_path.read_text())
    outside = tmp_path / "elsewhere.pt"
    outside.write_bytes(b"anything")
    desc["network"]["encoder_weights"] = str(outside)
    desc_path.write_text(json.dumps(desc))
    code, output = invoke("predict", run, tiny_cohort / "cohort.yaml", "--out", tmp_path / "p")
    assert code == 1 and "outside the run folder" in output and "crnn.json" in output and BUG not in output, output
    desc["network"]["encoder_weights"] = "../../elsewhere.pt"
    desc_path.write_text(json.dumps(desc))
    code, output = invoke("predict", run, tiny_cohort / "cohort.yaml", "--out", tmp_path / "p")
    assert code == 1 and "outside the run folder" in output, output


# ------------------------------------------------------------------------------------- 10. progress


@pytest.mark.slow
def test_progress_lines_in_a_log_while_train_runs(tiny_cohort, tmp_path):
    log = tmp_path / "train.log"
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "hccprog", "train", str(tiny_cohort / "cohort.yaml"), "--preset", "tiny",
           "--folds", "3", "--n-boot", "200", "--out", str(out), "--cache", str(tmp_path / "cache")]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        seen_running = set()
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            text = log.read_text()
            for k in (1, 2, 3):
                if f"fold {k}/3" in text and proc.poll() is None:
                    seen_running.add(k)
            time.sleep(0.05)
        proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert {1, 2} <= seen_running, (seen_running, text)  # written while it ran, not only at the end
    lines = [ln for ln in text.splitlines() if " progress: " in ln]
    assert any("fold 3/3" in ln for ln in lines) and any("preprocessing" in ln for ln in lines)
    assert all(time.strptime(ln[:19], "%Y-%m-%d %H:%M:%S") for ln in lines)


# ------------------------------------------------------------------------------------ 8. importers


def test_validate_promises_no_propagation_to_a_patient_without_any_mask(tiny_cohort):
    frame = _images(tiny_cohort)
    pid = frame["patient_id"].iloc[0]
    mine = frame["patient_id"] == pid
    assert frame.loc[mine, "timepoint"].nunique() >= 2
    frame.loc[mine, "mask"] = ""
    other = frame["patient_id"] == frame["patient_id"].iloc[-1]  # another patient: follow-up without a mask
    frame.loc[other & (frame["timepoint"] != "baseline"), "mask"] = ""
    frame.to_csv(tiny_cohort / "images.csv", index=False)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml", "--format", "json")
    assert code == 0, output
    issues = {i["code"]: i["message"] for i in json.loads(output)["issues"]}
    assert pid in issues["patient-without-mask"] and "no mask to propagate from" in issues["patient-without-mask"]
    assert pid not in issues["timepoint-without-mask"]
    assert frame["patient_id"].iloc[-1] in issues["timepoint-without-mask"]


# ---------------------------------------------------------------------------- 9. an all-missing covariate


def test_an_all_missing_covariate_is_dropped_with_one_warning(tiny_cohort, tmp_path):
    import warnings

    import yaml

    clinical = tiny_cohort / "clinical.csv"
    frame = pd.read_csv(clinical, dtype=str, keep_default_na=False)
    frame["albumin"] = ""
    frame.to_csv(clinical, index=False)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml", "--format", "json", "--quick")
    assert code == 0, output
    about = [i for i in json.loads(output)["issues"] if i.get("column") == "albumin"]
    assert [i["code"] for i in about] == ["covariate-empty"], about  # one warning, no "imputed" claim
    assert "left out of every model" in about[0]["message"] and "imputed" not in about[0]["message"]
    out = tmp_path / "b"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--folds", "2", "--repeats", "1",
                              "--n-boot", "20", "--out", out)
    assert code == 0, output
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert "Mean of empty slice" not in output and "RuntimeWarning" not in output
    text = " ".join(output.split())
    for score in ("albi", "okuda", "hap", "clip", "mhap2"):  # each says, in the table, why it is absent
        assert f"{score} * - - not evaluated:" in text, (score, text)
    assert "albumin has no value" in text
    conf = yaml.safe_load((out / "config.yaml").read_text())
    assert set(conf["scores_absent"]) >= {"albi", "okuda", "hap", "clip", "mhap2"}
    hr = pd.read_csv(out / "models" / "clinical_cox_hazard_ratios.csv")
    assert not hr.iloc[:, 0].astype(str).str.contains("albumin").any()


# ------------------------------------------------------------------------------------ 11. smaller items


def test_a_binary_file_given_as_csv_is_not_text(tiny_cohort):
    import gzip

    clinical = tiny_cohort / "clinical.csv"
    clinical.write_bytes(gzip.compress(clinical.read_bytes()))
    code, output = invoke("validate", tiny_cohort / "cohort.yaml", "--quick")
    assert code == 1 and "clinical.csv" in output and "not text but a gzip file" in " ".join(output.split())
    clinical.write_bytes(b"patient_id,age\x00\x01\x02\x00" * 50)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml", "--quick")
    assert code == 1 and "not text but binary data" in " ".join(output.split())


@pytest.mark.parametrize("where", ["/proc/hccprog-test/run", "/sys/hccprog-test"])
def test_out_under_an_unwritable_system_path_names_the_users_out(tiny_cohort, where):
    code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--folds", "2", "--out", where)
    text = " ".join(output.split())
    assert code == 1 and f"{where}: the output folder cannot be written" in text and BUG not in text
    code, output = invoke("features", tiny_cohort / "cohort.yaml", "--out", f"{where}/f.parquet")
    text = " ".join(output.split())
    assert code == 1 and f"{where}/f.parquet:" in text and "cannot be written" in text and BUG not in text


def test_one_minimum_cohort_size_in_validate_and_baselines(tiny_cohort, tmp_path):
    code, checked = invoke("validate", tiny_cohort / "cohort.yaml", "--quick", "--folds", "7")
    assert code == 1
    code, ran = invoke("baselines", tiny_cohort / "cohort.yaml", "--folds", "7", "--out", tmp_path / "b")
    assert code == 1
    rule = "6 patients cannot be split into 7 folds"
    assert rule in " ".join(checked.split()) and rule in " ".join(ran.split())
    # the response endpoint: the same per-class rule in validate as in baselines
    code, checked = invoke("validate", tiny_cohort / "cohort.yaml", "--quick", "--folds", "4", "--format", "json")
    response = [i["message"] for i in json.loads(checked)["issues"] if "endpoint 'response'" in i["message"]]
    code, ran = invoke("baselines", tiny_cohort / "cohort.yaml", "--endpoint", "response", "--folds", "4",
                       "--out", tmp_path / "r")
    assert response and code == 1 and response[0].split(": ", 1)[1][:40] in " ".join(ran.split())


def test_no_message_asks_for_overwrite_true():
    import hccprog

    root = Path(hccprog.__file__).parent
    hits = [str(p.relative_to(root)) for p in root.rglob("*.py") if "pass overwrite=True" in p.read_text()]
    assert hits == []


def test_sigterm_exits_with_a_message_like_ctrl_c(tiny_cohort, tmp_path):
    import signal

    out = tmp_path / "run"
    log = tmp_path / "log"
    cmd = [sys.executable, "-m", "hccprog", "baselines", str(tiny_cohort / "cohort.yaml"), "--folds", "2",
           "--repeats", "50", "--out", str(out)]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while proc.poll() is None and "progress: repeat" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    text = log.read_text()
    assert proc.returncode == 143, text
    assert "terminated (SIGTERM): nothing was written under --out" in " ".join(text.split())
    assert "Traceback" not in text and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]  # no staging folder left


def test_a_closed_pipe_on_stdout_ends_quietly():
    """``hccprog config ... | head -1``: the reader goes away; no error message, no traceback."""
    cmd = [sys.executable, "-m", "hccprog", "config", "--model", "crnn", "--preset", "paper"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # no reader: the first write fails with EPIPE
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err.decode()
    assert err.decode().strip() == ""
