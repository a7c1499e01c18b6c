"""NIfTI/NRRD/MHA reading, canonical orientation, label remapping and geometry checks."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from hccprog.imaging import (
    LIVER,
    TUMOR,
    Geometry,
    ImageReadError,
    Volume,
    read_geometry,
    read_image,
    read_mask,
    remap_labels,
    resample_to,
)
from tests.conftest import shared_data


def _volume(shape=(5, 6, 7)):
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def test_nifti_in_las_orientation_is_flipped_to_ras(tmp_path):
    data = _volume()
    affine = np.diag([-2.0, 3.0, 4.0, 1.0])  # i points left
    affine[:3, 3] = [10, -20, 30]
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "a.nii.gz")
    vol = read_image(tmp_path / "a.nii.gz")
    assert vol.geometry.axcodes == ("R", "A", "S")
    np.testing.assert_array_equal(vol.array, data[::-1])
    assert vol.spacing == pytest.approx((2, 3, 4))
    # the same voxel keeps its world position
    world = affine @ [0, 1, 2, 1]
    np.testing.assert_allclose(vol.affine @ [4, 1, 2, 1], world)
    assert read_geometry(tmp_path / "a.nii.gz").same_grid(vol.geometry)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_sitk_formats_match_nifti(tmp_path, suffix):
    data = _volume()
    img = sitk.GetImageFromArray(data.transpose(2, 1, 0))  # sitk arrays are (z, y, x)
    img.SetSpacing((0.5, 0.75, 2.0))
    img.SetOrigin((1.0, 2.0, 3.0))
    sitk.WriteImage(img, str(tmp_path / f"a{suffix}"))
    vol = read_image(tmp_path / f"a{suffix}")
    # ITK's identity direction in LPS is L, P, S: canonical RAS flips i and j
    np.testing.assert_array_equal(vol.array, data[::-1, ::-1, :])
    assert vol.spacing == pytest.approx((0.5, 0.75, 2.0))
    # voxel (0,0,0) of the file sits at LPS (1,2,3) = RAS (-1,-2,3)
    np.testing.assert_allclose(vol.affine @ [4, 5, 0, 1], [-1.0, -2.0, 3.0, 1.0])


def test_label_remapping_and_tumor_priority():
    arr = np.array([0, 5, 6, 7, 9]).reshape(1, 1, 5)
    out = remap_labels(arr, {"liver": [5, 6], "tumor": 6})
    assert out.ravel().tolist() == [0, LIVER, TUMOR, 0, 0]


def test_real_nifti_liver_label_5_remapped():
    ct = shared_data("nifti-ct-small", "example_ct_sm.nii.gz")
    seg = shared_data("nifti-ct-small", "example_seg.nii.gz")
    image = read_image(ct)
    assert image.shape == (122, 101, 30)
    assert image.spacing == pytest.approx((3.0, 3.0, 3.0), abs=1e-3)
    mask = read_mask(seg, {"liver": 5}, reference=image.geometry)
    n_liver = int((mask.array == LIVER).sum())
    assert 38_000 < n_liver < 39_500
    assert set(np.unique(mask.array)) == {0, LIVER}
    # liver voxels are soft tissue in HU
    assert 0 < np.median(image.array[mask.array == LIVER]) < 200


def test_geometry_mismatch_rejected_unless_resampled(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), tmp_path / "img.nii.gz")
    shifted = np.eye(4)
    shifted[:3, 3] = [2, 0, 0]
    mask = np.zeros((8, 8, 4), np.uint8)
    mask[4, 4, 2] = 1
    nib.save(nib.Nifti1Image(mask, shifted), tmp_path / "mask.nii.gz")
    ref = read_geometry(tmp_path / "img.nii.gz")
    with pytest.raises(ImageReadError, match="origin"):
        read_mask(tmp_path / "mask.nii.gz", reference=ref)
    moved = read_mask(tmp_path / "mask.nii.gz", reference=ref, resample=True)
    assert moved.array[6, 4, 2] == LIVER and moved.array.sum() == 1


def test_small_float_noise_in_affine_is_tolerated():
    a = Geometry((4, 4, 4), np.eye(4))
    b_aff = np.eye(4)
    b_aff[:3, 3] = 1e-4
    assert a.same_grid(Geometry((4, 4, 4), b_aff))
    b_aff[:3, 3] = 0.5
    assert not a.same_grid(Geometry((4, 4, 4), b_aff))


def test_resample_places_partial_volume():
    src = Volume(np.ones((2, 2, 1), np.uint8), np.diag([1.0, 1.0, 1.0, 1.0]))
    src.affine[:3, 3] = [1, 1, 2]
    out = resample_to(src, Geometry((4, 4, 4), np.eye(4)))
    assert out.array.sum() == 4 and out.array[1:3, 1:3, 2].all()


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "bad.nii.gz").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="cannot be read"):
        read_geometry(tmp_path / "bad.nii.gz")
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "nope.nii.gz")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ImageReadError, match="unknown image format"):
        read_geometry(tmp_path / "x.txt")


def test_metatensor_carries_affine():
    vol = Volume(np.zeros((3, 4, 5), np.float32), np.diag([2.0, 2.0, 3.0, 1.0]))
    mt = vol.to_metatensor()
    assert tuple(mt.shape) == (1, 3, 4, 5)
    np.testing.assert_allclose(np.asarray(mt.affine), vol.affine)
