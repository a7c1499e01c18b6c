"""Mask propagation by registration, time points without masks, single-slice series, `hccprog propagate`."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hccprog.cli import app
from tests.conftest import tree_hashes

runner = CliRunner()


@pytest.fixture(scope="module")
def pair_cohort(tmp_path_factory):
    """Four synthetic CT patients with a follow-up, at 6 mm in-plane."""
    from hccprog.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("pair") / "cohort"
    synthesize(out, SynthConfig(patients=4, seed=2, shape=(48, 48, 24), spacing=(6.0, 6.0, 8.0), workers=1))
    return out


def _moved(volume, mask, angle_deg: float, shift_mm):
    """``volume`` and ``mask`` resampled under a known rotation about z and translation."""
    import SimpleITK as sitk

    from hccprog.preprocessing.register import from_sitk, to_sitk

    img, lab = to_sitk(volume, np.float32), to_sitk(mask, np.uint8)
    t = sitk.Euler3DTransform()
    t.SetCenter(img.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in img.GetSize()]))
    t.SetRotation(0.0, 0.0, np.deg2rad(angle_deg))
    t.SetTranslation([float(v) for v in shift_mm])
    return (from_sitk(sitk.Resample(img, img, t, sitk.sitkLinear, -1024.0)),
            from_sitk(sitk.Resample(lab, lab, t, sitk.sitkNearestNeighbor, 0)))


def test_propagated_mask_follows_a_known_displacement(pair_cohort):
    from hccprog.cohort import load_cohort
    from hccprog.preprocessing.register import dice, propagate_mask

    cohort = load_cohort(pair_cohort / "cohort.yaml").cohort
    patient = cohort.ids[0]
    base, fu = cohort[patient].timepoints
    src_img, src_mask = base["CT_PV"].load()
    fu_img, fu_mask = fu["CT_PV"].load()
    moved_img, moved_mask = _moved(fu_img, fu_mask, 9.0, (18.0, -14.0, 8.0))
    result = propagate_mask(src_img, src_mask, moved_img)
    assert result.mask.array.shape == moved_img.array.shape
    np.testing.assert_allclose(result.mask.affine, moved_img.affine)
    unregistered = dice(src_mask.array > 0, moved_mask.array > 0)
    liver = dice(result.mask.array > 0, moved_mask.array > 0)
    assert liver > 0.88 and liver > unregistered + 0.1, (liver, unregistered)
    # the tumor can do no better than its own change after TACE allows (baseline vs follow-up, aligned)
    bound = dice(src_mask.array == 2, fu_mask.array == 2)
    assert dice(result.mask.array == 2, moved_mask.array == 2) > bound - 0.2
    assert result.ncc_after > result.ncc_before and result.stages == ["rigid", "affine"]


def _drop_fu_mask(src, dst, pid=None):
    shutil.copytree(src, dst)
    images = pd.read_csv(dst / "images.csv", dtype=str, keep_default_na=False)
    pid = pid or images["patient_id"].iloc[0]
    images.loc[(images["patient_id"] == pid) & (images["timepoint"] == "fu1"), "mask"] = ""
    images.to_csv(dst / "images.csv", index=False)
    return pid


def test_missing_mask_is_propagated_or_treated_as_missing(pair_cohort, tmp_path):
    import yaml

    from hccprog.cohort import load_cohort
    from hccprog.preprocessing import SliceConfig, patient_slices

    cohort_dir = tmp_path / "c"
    pid = _drop_fu_mask(pair_cohort, cohort_dir)
    cohort = load_cohort(cohort_dir / "cohort.yaml").cohort
    cfg = SliceConfig(size=16, spacing_mm=(6.0, 6.0, 8.0), slices=2)
    channels = cfg.channels(cohort.series_names())
    propagated = patient_slices(cohort[pid], channels, cfg.model_copy(update={"missing_masks": "propagate"}))
    assert propagated["observed"].tolist() == [True, True]
    assert [str(e).split(":")[0] for e in propagated["imputed"]] == ["mask-propagated"]
    missing = patient_slices(cohort[pid], channels, cfg.model_copy(update={"missing_masks": "missing"}))
    assert missing["observed"].tolist() == [True, False]
    assert str(missing["imputed"][0]).startswith("timepoint-carried-forward: fu1 has no mask")
    np.testing.assert_array_equal(missing["x"][0], missing["x"][1])
    # the cohort's own setting decides when the preprocessing config does not
    spec = yaml.safe_load((cohort_dir / "cohort.yaml").read_text())
    spec["missing_masks"] = "missing"
    (cohort_dir / "cohort.yaml").write_text(yaml.safe_dump(spec))
    from hccprog.preprocessing import preprocess_cohort

    data = preprocess_cohort(load_cohort(cohort_dir / "cohort.yaml").cohort, cfg, cache_dir=tmp_path / "cache",
                             ids=[pid], workers=1)
    assert data.imputed[pid][0].startswith("timepoint-carried-forward") and not data.observed[0, 1]


def test_single_slice_series_is_an_error_for_a_slab_or_volume(pair_cohort, tmp_path):
    import nibabel as nib

    from hccprog.cohort import load_cohort
    from hccprog.preprocessing import SliceConfig, VolumeConfig, patient_slices, patient_volumes
    from hccprog.preprocessing.slices import InputTooThinError

    dst = tmp_path / "c"
    shutil.copytree(pair_cohort, dst)
    images = pd.read_csv(dst / "images.csv", dtype=str, keep_default_na=False)
    pid = images["patient_id"].iloc[0]
    row = images.index[(images["patient_id"] == pid) & (images["timepoint"] == "baseline")
                       & (images["series"] == "CT_NC")][0]
    img = nib.load(dst / images.loc[row, "image"])
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:, :, 10:11], img.affine), dst / "one.nii.gz")
    images.loc[row, ["image", "mask"]] = ["one.nii.gz", ""]
    images.to_csv(dst / "images.csv", index=False)
    patient = load_cohort(dst / "cohort.yaml").cohort[pid]
    slab = SliceConfig(size=16, spacing_mm=(6.0, 6.0, 8.0), slices=4, selection="contiguous")
    with pytest.raises(InputTooThinError, match=f"{pid}: baseline/CT_NC is a single-slice series"):
        patient_slices(patient, ["CT_NC", "CT_PV"], slab)
    with pytest.raises(InputTooThinError, match="needs a volume"):
        patient_volumes(patient, ["CT_NC"], VolumeConfig(size=16, spacing_mm=(6.0, 6.0, 6.0)))
    top = patient_slices(patient, ["CT_NC", "CT_PV"], slab.model_copy(update={"selection": "top_area"}))
    assert any(str(e).startswith("single-slice:") for e in top["imputed"])


def test_propagate_command_writes_masks_qc_and_merit(pair_cohort, tmp_path):
    src = tmp_path / "c"
    pid = _drop_fu_mask(pair_cohort, src)
    before = tree_hashes(src)
    out = tmp_path / "prop"
    res = runner.invoke(app, ["propagate", str(src / "cohort.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert tree_hashes(src) == before
    merit = pd.read_csv(out / "propagation.csv")
    assert merit[["patient_id", "timepoint", "status"]].values.tolist() == [[pid, "fu1", "propagated"]]
    assert merit["ncc_after"].iloc[0] > 0.3
    assert (out / "qc" / f"{pid}_fu1.png").stat().st_size > 10_000
    images = pd.read_csv(out / "images.csv", dtype=str, keep_default_na=False)
    row = images[(images["patient_id"] == pid) & (images["mask_source"].str.startswith("propagated"))]
    assert len(row) == 1 and (out / "masks").is_dir()
    checked = runner.invoke(app, ["validate", str(out / "cohort.yaml"), "--format", "json"])
    assert checked.exit_code == 0, checked.output
    assert "timepoint-without-mask" not in checked.output


def test_propagation_repeats_exactly(pair_cohort):
    """The same seed gives the same mask (the metric's sampling is seeded and single-threaded)."""
    from hccprog.cohort import load_cohort
    from hccprog.preprocessing.register import RegistrationConfig, propagate_mask

    cohort = load_cohort(pair_cohort / "cohort.yaml").cohort
    base, fu = cohort[cohort.ids[1]].timepoints
    src_img, src_mask = base["CT_PV"].load()
    moved_img, _ = _moved(fu["CT_PV"].load()[0], fu["CT_PV"].load()[1], 7.0, (10.0, 8.0, -6.0))
    a = propagate_mask(src_img, src_mask, moved_img, RegistrationConfig(seed=0))
    b = propagate_mask(src_img, src_mask, moved_img, RegistrationConfig(seed=0))
    np.testing.assert_array_equal(a.mask.array, b.mask.array)
    assert a.transform.GetParameters() == b.transform.GetParameters()
