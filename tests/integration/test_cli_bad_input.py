"""Every bad input gets a clear answer: exit code, one message naming the file, row and column (or the
patient), no traceback, and nothing left in or beside the output folder. Each case is built from the
tiny synthetic cohort as a fixture."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tests.conftest import tree_hashes
from tests.integration.helpers import BUG, REPO, app, invoke, runner


def refused(code: int, output: str, *needles: str, out: Path | None = None, exit_code: int = 1) -> None:
    """The command failed cleanly: its exit code, each needle in its output, no traceback, and no
    output folder (nor a staging folder beside it)."""
    assert code == exit_code, output
    assert "Traceback" not in output, output
    for needle in needles:
        assert needle in output, (needle, output)
    if out is not None:
        assert not out.exists(), list(out.iterdir()) if out.is_dir() else out
        assert not list(out.parent.glob(f".{out.name}.*")), list(out.parent.glob(f".{out.name}.*"))


def _images(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "images.csv", dtype=str, keep_default_na=False)


def _row_of(folder: Path, path: str, column: str = "image") -> int:
    """The spreadsheet row (header = 1) of the first images.csv row holding ``path``."""
    frame = _images(folder)
    return int(frame.index[frame[column] == path][0]) + 2


def _edit_clinical(folder: Path, edit) -> None:
    frame = pd.read_csv(folder / "clinical.csv", dtype=str, keep_default_na=False)
    edit(frame)
    frame.to_csv(folder / "clinical.csv", index=False)


# ------------------------------------------------------------------------------------ validate


def test_truncated_image_fails_validate_but_passes_quick(tiny_cohort):
    image = _images(tiny_cohort).loc[3, "image"]
    data = (tiny_cohort / image).read_bytes()
    (tiny_cohort / image).write_bytes(data[: len(data) // 2])
    before = tree_hashes(tiny_cohort)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml")
    refused(code, output, "images.csv, row 5, column 'image'", Path(image).name, "[image-unreadable]")
    code, output = invoke("validate", tiny_cohort / "cohort.yaml", "--quick")
    assert code == 0, output  # headers only: the damage is past the header
    assert tree_hashes(tiny_cohort) == before  # validate writes nothing


def test_truncated_dicom_slice_fails_validate(tiny_cohort, ct_series_writer):
    folder, _ = ct_series_writer(tiny_cohort / "images" / "dicom_series", n=6, rows=16, cols=16)
    first = sorted(folder.iterdir())[2]
    first.write_bytes(first.read_bytes()[:-300])  # pixel data cut short, header intact
    frame = _images(tiny_cohort)
    frame.loc[0, ["image", "mask"]] = ["images/dicom_series", ""]
    frame.to_csv(tiny_cohort / "images.csv", index=False)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml")
    refused(code, output, "images.csv, row 2, column 'image'", "dicom_series", "voxel data cannot be read")
    assert "[image-unreadable]" in output


def _set_mask(folder: Path, row: int, array_fn, dtype=np.uint8) -> tuple[str, Path]:
    mask = _images(folder).loc[row, "mask"]
    path = folder / mask
    img = nib.load(path)
    nib.save(nib.Nifti1Image(array_fn(np.asarray(img.dataobj)).astype(dtype), img.affine), path)
    return mask, path


def test_all_zero_mask(tiny_cohort):
    mask, _ = _set_mask(tiny_cohort, 6, np.zeros_like)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml")
    refused(code, output, f"images.csv, row {_row_of(tiny_cohort, mask, 'mask')}, column 'mask'",
            Path(mask).name, "all zero", "[mask-empty]")
    assert output.count("[mask-empty]") == 1  # one message per file, not per row sharing it


def test_nan_in_float_mask_and_json_output(tiny_cohort):
    def with_nan(a):
        a = a.astype(np.float32)
        a[0, 0, 0] = np.nan
        return a

    _set_mask(tiny_cohort, 0, with_nan, np.float32)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml")
    refused(code, output, "images.csv, row 2, column 'mask'", "NaN", "[mask-nan]")
    result = runner.invoke(app, ["validate", str(tiny_cohort / "cohort.yaml"), "--format", "json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert any(i["code"] == "mask-nan" and i["row"] == 2 and i["column"] == "mask" for i in payload["issues"])


def test_probability_map_as_mask(tiny_cohort):
    _set_mask(tiny_cohort, 0, lambda a: a.astype(np.float32) * 0.37, np.float32)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml")
    refused(code, output, "images.csv, row 2, column 'mask'", "[mask-non-integer]")


def test_image_given_as_its_own_mask(tiny_cohort):
    frame = _images(tiny_cohort)
    frame.loc[1, "mask"] = frame.loc[1, "image"]
    frame.to_csv(tiny_cohort / "images.csv", index=False)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml", "--quick")
    refused(code, output, "images.csv, row 3, column 'mask'", "is the image itself", "[mask-is-image]")


def test_copy_of_the_image_as_mask(tiny_cohort):
    frame = _images(tiny_cohort)
    copy = tiny_cohort / "images" / "copy_of_ct.nii.gz"
    copy.write_bytes((tiny_cohort / frame.loc[1, "image"]).read_bytes())
    frame.loc[1, "mask"] = "images/copy_of_ct.nii.gz"
    frame.to_csv(tiny_cohort / "images.csv", index=False)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml")
    refused(code, output, "images.csv, row 3, column 'mask'", "not a label map", "[mask-not-labels]")


def _scale_spacing(path: Path, factor: float) -> None:
    img = nib.load(path)
    affine = img.affine.copy()
    affine[:3, :3] *= factor
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine, img.header), path)


def test_spacing_times_1000(tiny_cohort, tmp_path):
    frame = _images(tiny_cohort)
    _scale_spacing(tiny_cohort / frame.loc[2, "image"], 1000)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml", "--quick")
    refused(code, output, "images.csv, row 4, column 'image'", "implausible", "[spacing-implausible]")
    out = tmp_path / "run"
    code, output = invoke("train", tiny_cohort / "cohort.yaml", "--preset", "tiny", "--folds", "2", "--out", out,
                          "--cache", tmp_path / "cache")
    refused(code, output, "images.csv, row 4, column 'image'", "[spacing-implausible]", out=out)
    cache = tmp_path / "cache"  # stopped before preprocessing: nothing was resampled or cached
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_latin1_byte_in_cohort_yaml(tiny_cohort):
    path = tiny_cohort / "cohort.yaml"
    text = path.read_text().replace("name: ", "name: h\u00f4pital-", 1)
    path.write_bytes(text.encode("latin-1"))
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s.startswith("name:"))
    code, output = invoke("validate", path)
    refused(code, output, f"cohort.yaml, row {line}", "not UTF-8", "[yaml-encoding]")


def test_duplicate_top_level_key(tiny_cohort):
    path = tiny_cohort / "cohort.yaml"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, "endpoints:", "  os: {time: os_time, event: os_event}", ""]))
    code, output = invoke("validate", path)
    refused(code, output, f"cohort.yaml, row {len(lines) + 1}, column 'endpoints'", "appears twice",
            "[yaml-duplicate-key]")


def test_alias_bomb_is_rejected_fast(tiny_cohort):
    path = tiny_cohort / "cohort.yaml"
    bomb = ['lol0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    path.write_text(path.read_text() + "\n".join(bomb) + "\n")
    assert path.stat().st_size < 3000
    code, output = invoke("validate", path, "--quick")  # refused by counting aliases, never expanded
    refused(code, output, "cohort.yaml", "aliases", "[yaml-aliases]")


def test_parquet_nullable_values_are_missing(tiny_cohort):
    frame = pd.read_csv(tiny_cohort / "clinical.csv")
    frame["os_event"] = frame["os_event"].astype("Int64")
    frame.loc[1, "os_event"] = pd.NA
    frame["etiology"] = frame["etiology"].astype("string")
    frame.loc[2, "etiology"] = pd.NA
    frame["ecog"] = frame["ecog"].astype("Int64")
    frame.loc[3, "ecog"] = pd.NA
    frame.to_parquet(tiny_cohort / "clinical.parquet")
    path = tiny_cohort / "cohort.yaml"
    path.write_text(path.read_text().replace("clinical: clinical.csv", "clinical: clinical.parquet"))
    from hccprog.cohort import load_cohort

    result = load_cohort(path, check_images=False)
    assert result.ok, result.report.errors
    pid = str(frame.loc[1, "patient_id"])
    assert result.cohort[pid].outcomes["os"] is None  # missing, not the text "<NA>"
    assert result.cohort[str(frame.loc[2, "patient_id"])].covariates["etiology"] is None
    assert result.cohort[str(frame.loc[3, "patient_id"])].covariates["ecog"] is None
    assert "<NA>" not in {str(p.covariates["etiology"]) for p in result.cohort.patients.values()}
    assert "outcome-missing" in result.report.codes()


def test_validate_a_folder(tiny_cohort, tmp_path):
    code, output = invoke("validate", tiny_cohort, "--quick")
    assert code == 0, output
    (tmp_path / "empty").mkdir()
    code, output = invoke("validate", tmp_path / "empty")
    refused(code, output, "without a cohort.yaml")


def test_all_events_censored(tiny_cohort, tmp_path):
    def censor(f):
        f["os_event"] = "0"
        f["pfs_event"] = "0"

    _edit_clinical(tiny_cohort, censor)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml", "--quick")
    refused(code, output, "clinical.csv, column 'os_event'", "[endpoint-no-events]")
    out = tmp_path / "run"
    code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--out", out, "--n-boot", "10")
    refused(code, output, "clinical.csv", "os_event", "has the event", out=out)
    assert not list(tmp_path.glob(".run*"))  # no .partial either


def test_too_many_folds_and_one_patient(tiny_cohort, tmp_path):
    out = tmp_path / "run"
    code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--folds", "20", "--out", out)
    refused(code, output, "clinical.csv", "6 patients cannot be split into 20 folds", out=out)
    code, output = invoke("validate", tiny_cohort / "cohort.yaml", "--quick", "--folds", "20")
    refused(code, output, "clinical.csv", "[cohort-too-small]")
    frame = pd.read_csv(tiny_cohort / "clinical.csv", dtype=str, keep_default_na=False)
    frame.iloc[:1].to_csv(tiny_cohort / "clinical.csv", index=False)
    images = _images(tiny_cohort)
    images[images["patient_id"] == frame.loc[0, "patient_id"]].to_csv(tiny_cohort / "images.csv", index=False)
    code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--out", out)
    refused(code, output, "clinical.csv", "1 patient(s) with a known outcome", out=out)


# ----------------------------------------------------------------------------------- options


def test_bad_horizons(tiny_cohort, tmp_path):
    out = tmp_path / "run"
    code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--horizons", "0,-5", "--out", out)
    refused(code, output, "--horizons", "positive", "0, -5", out=out)


def test_missing_config_file(tiny_cohort, tmp_path):
    out = tmp_path / "run"
    for command in ("baselines", "train"):
        code, output = invoke(command, tiny_cohort / "cohort.yaml", "--config", tmp_path / "missing.yaml",
                              "--out", out)
        refused(code, output, "missing.yaml", "does not exist", out=out)


def test_train_options_that_a_config_file_settles_are_refused_beside_it(tiny_cohort, tmp_path):
    """``--config`` settles the model, endpoint, folds...: an option given beside it would be silently
    ignored, so it is refused, naming the options and the file."""
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"model": "crnn"}}))
    out = tmp_path / "run"
    code, output = invoke("train", tiny_cohort / "cohort.yaml", "--config", cfg, "--model", "dlop", "--folds", "3",
                          "--out", out)
    refused(code, output, "--model, --folds and --config", "train.yaml", "settles these itself", out=out)


def test_out_under_a_file_or_a_file(tiny_cohort, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep me")
    for out in (blocker / "run", blocker / "deeper" / "run"):
        code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--out", out)
        refused(code, output, "is a file, not a folder")
    code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--out", blocker, "--overwrite")
    refused(code, output, "is a file, not a folder")
    assert blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort", "file.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: permissions cannot be tested")
def test_out_not_writable(tiny_cohort, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--out", locked / "run")
        refused(code, output, "no write permission", out=locked / "run")
    finally:
        locked.chmod(0o700)


def test_out_not_writable_as_the_os_reports_it(tiny_cohort, tmp_path, monkeypatch):
    """The same check where the tests run as root (who may write anywhere): the permission answer of
    os.access is what hccprog acts on, before any work."""
    import hccprog.errors as errors

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(errors.os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--out", locked / "run")
    refused(code, output, "no write permission", str(locked), out=locked / "run")


# ------------------------------------------------------------------------- said, not silent


@pytest.mark.slow  # cross-validates the baselines of its own cohort (CI runs it)
def test_baselines_print_the_cohort_warnings(tiny_cohort, tmp_path):
    path = tiny_cohort / "cohort.yaml"
    path.write_text(path.read_text().replace("covariates:", "covarites:", 1))
    code, output = invoke("baselines", path, "--out", tmp_path / "a", "--folds", "2", "--repeats", "1",
                          "--n-boot", "10")
    assert code == 0, output
    assert "unknown key 'covarites' ignored" in output and "[yaml-unknown-key]" in output
    path.write_text(path.read_text().replace("covarites:", "covariates:", 1))
    _edit_clinical(tiny_cohort, lambda f: f.__setitem__("albumin", ""))
    code, output = invoke("baselines", path, "--out", tmp_path / "b", "--folds", "2", "--repeats", "1",
                          "--n-boot", "10")
    assert code == 0, output
    assert "column 'albumin'" in output and "no value for any of the 6 patients" in output
    assert "[covariate-empty]" in output


def test_run_staging_left_by_a_killed_run_is_cleaned(tiny_cohort, tmp_path):
    out = tmp_path / "run"
    orphan = tmp_path / ".run.k1ll3d"
    orphan.mkdir()
    (orphan / "predictions.csv").write_text("half")
    (orphan / ".hccprog-staging").write_text("999999999\n")  # no such process: the run was killed
    unrelated = tmp_path / ".run.notours"
    unrelated.mkdir()
    code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--out", out, "--folds", "2", "--repeats", "1",
                          "--n-boot", "10")
    assert code == 0, output
    assert not orphan.exists() and unrelated.exists()
    assert "left behind by an interrupted earlier run" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.notours", "cohort", "run"]


# ------------------------------------------------------------------------------ train / predict


@pytest.fixture
def trained_tiny(tiny_trained_run):
    """The session's tiny CRNN run (tests/integration/conftest.py); read-only."""
    return tiny_trained_run


@pytest.fixture
def run_copy(trained_tiny, tmp_path):
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(trained_tiny, dst)
    return dst


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/hccprog-pwned",))


@pytest.mark.parametrize("damage", ["tampered", "truncated", "incomplete", "json-truncated", "json-incomplete",
                                    "config-garbage"])
def test_predict_refuses_a_damaged_run(run_copy, tiny_cohort, tmp_path, damage):
    weights, desc = run_copy / "models" / "crnn.pt", run_copy / "models" / "crnn.json"
    if damage == "tampered":
        state = torch.load(weights, weights_only=True)
        state["exploit"] = _Exploit()
        with open(weights, "wb") as fh:
            pickle.dump(state, fh)  # a plain pickle that would run code
        named = weights
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:5000])
        named = weights
    elif damage == "incomplete":
        state = torch.load(weights, weights_only=True)
        state.pop(next(iter(state)))
        torch.save(state, weights)
        named = weights
    elif damage == "json-truncated":
        desc.write_text(desc.read_text()[:300])
        named = desc
    elif damage == "json-incomplete":
        d = json.loads(desc.read_text())
        d.pop("network")
        desc.write_text(json.dumps(d))
        named = desc
    else:
        (run_copy / "config.yaml").write_text("command: [unclosed\n")
        named = run_copy / "config.yaml"
    out = tmp_path / "pred"
    code, output = invoke("predict", run_copy, tiny_cohort / "cohort.yaml", "--out", out,
                          "--cache", tmp_path / "cache")
    refused(code, output, str(named.name), out=out)
    if damage != "config-garbage":
        assert "damaged or was not written by hccprog" in output
    assert "weights_only" not in output
    assert not Path("/tmp/hccprog-pwned").exists()


def test_predict_names_unseen_levels(trained_tiny, tiny_cohort, tmp_path):
    frame = pd.read_csv(tiny_cohort / "clinical.csv", dtype=str, keep_default_na=False)
    pid = frame.loc[0, "patient_id"]
    frame.loc[0, "etiology"] = "ALIEN"
    frame.to_csv(tiny_cohort / "clinical.csv", index=False)
    out = tmp_path / "pred"
    code, output = invoke("predict", trained_tiny, tiny_cohort / "cohort.yaml", "--out", out,
                          "--cache", tmp_path / "cache")
    assert code == 0, output
    assert "ALIEN" in output and pid in output and "etiology" in output
    preds = pd.read_csv(out / "predictions.csv", dtype={"patient_id": str}, keep_default_na=False)
    fused = preds[(preds["patient_id"] == pid) & preds["model"].str.endswith("+clinical")]
    assert fused["imputed"].str.contains("etiology 'ALIEN' unseen in training").all()


@pytest.mark.slow  # trains a run of its own (CI runs it)
def test_train_names_a_patient_it_cannot_use(tiny_cohort, tmp_path):
    images = _images(tiny_cohort)
    victim = images.loc[0, "patient_id"]
    image = tiny_cohort / images.loc[0, "image"]
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])  # header intact, voxels cut: validate's check refuses it in train too
    out = tmp_path / "run"
    code, output = invoke("train", tiny_cohort / "cohort.yaml", "--preset", "tiny", "--folds", "2", "--n-boot", "10",
                          "--out", out, "--cache", tmp_path / "cache")
    assert code == 1 and image.name in output and not out.exists(), output
    image.write_bytes(data)
    images.loc[images["patient_id"] == victim, "mask"] = ""  # valid, but no mask at any time point to crop with
    images.to_csv(tiny_cohort / "images.csv", index=False)
    code, output = invoke("train", tiny_cohort / "cohort.yaml", "--preset", "tiny", "--folds", "2", "--n-boot", "10",
                          "--out", out, "--cache", tmp_path / "cache")
    assert code == 0, output
    assert "crnn cannot use 1 of 6 patients" in output and victim in output
    unscored = pd.read_csv(out / "unscored.csv", dtype=str)
    assert list(unscored["patient_id"]) == [victim] and (unscored["model"] == "crnn").all()
    assert victim not in set(pd.read_csv(out / "predictions.csv", dtype=str).query("model == 'crnn'")["patient_id"])
    assert "Patients a model could not use" in (out / "report.html").read_text()


@pytest.mark.slow  # trains a run of its own (CI runs it)
def test_interrupt_hint_and_corrupt_partial_state(tiny_cohort, tmp_path, monkeypatch):
    from hccprog.training import learners as train_mod

    calls = {"n": 0}
    real_fit = train_mod.DeepLearner.fit

    def fit_then_interrupt(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_fit(self, *a, **kw)

    monkeypatch.setattr(train_mod.DeepLearner, "fit", fit_then_interrupt)
    out = tmp_path / "run"
    args = ("train", tiny_cohort / "cohort.yaml", "--preset", "tiny", "--folds", "2", "--n-boot", "10", "--out", out,
            "--cache", tmp_path / "cache")
    code, output = invoke(*args)
    refused(code, output, "interrupted", "run the same command again to resume", exit_code=130)
    assert not out.exists()  # finished folds are kept aside for the resume, nothing under --out
    partial = tmp_path / ".run.partial"
    saved = sorted(partial.glob("fold-*.npz"))
    assert saved, list(partial.iterdir())
    saved[0].write_bytes(b"not an npz at all")
    monkeypatch.setattr(train_mod.DeepLearner, "fit", real_fit)
    code, output = invoke(*args)
    assert code == 0, output
    assert "is damaged" in output and "discarded, the fold is trained again" in output
    assert "Traceback" not in output and not partial.exists()


def test_debug_shows_the_traceback(tiny_cohort, tmp_path):
    result = runner.invoke(app, ["--debug", "baselines", str(tiny_cohort / "cohort.yaml"), "--folds", "20", "--out",
                                 str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.exception is not None and "cannot be split into 20 folds" in str(result.exception)


def test_no_yaml_module_left_unsafe():
    """Every YAML a user hands in goes through hccprog.safe_yaml (a plain safe_load has no alias bound)."""
    src = REPO / "src" / "hccprog"
    assert (src / "__init__.py").is_file(), src
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if "yaml.safe_load(" in p.read_text() or "yaml.load(" in p.read_text()]
    assert offenders == [], offenders
    assert yaml is not None


def test_a_fusion_that_cannot_be_fitted_names_the_fold(tiny_cohort, tmp_path, monkeypatch):
    """Too few patients (or a constant score) for a fusion in some fold: an expected condition with
    the fold, the patients and the way out, not 'a bug in hccprog'."""
    from hccprog.survival import cox

    def no_convergence(self, *args, **kwargs):
        raise RuntimeError("the Cox model did not converge even with penalizer 0.0001")

    monkeypatch.setattr(cox.BivariateCoxFusion, "fit", no_convergence)
    out = tmp_path / "run"
    code, output = invoke("baselines", tiny_cohort / "cohort.yaml", "--folds", "2", "--n-boot", "10", "--out", out)
    refused(code, output, "cannot be fitted in repeat 1, fold 1", "training patients", "fuse_with: null", out=out)
    assert BUG not in output
