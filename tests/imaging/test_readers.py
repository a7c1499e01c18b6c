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


# ------------------------------------------------------------------ validate's one-pass voxel reader


def _nifti(path, array, *, scale=None, big_endian=False, affine=None):
    affine = np.diag([0.8, 0.7, 2.5, 1.0]) if affine is None else affine
    img = nib.Nifti1Image(array, affine)
    if big_endian:
        img = nib.Nifti1Image(array.astype(array.dtype.newbyteorder(">")), affine,
                              nib.Nifti1Header(endianness=">"))
    if scale is not None:
        img.header.set_slope_inter(*scale)
    nib.save(img, path)
    return path


@pytest.mark.parametrize("name", ["v.nii.gz", "v.nii"])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_one_pass_reader_matches_nibabel(tmp_path, name, dtype):
    from hccprog.imaging.readers import pixel_stats, read_raw_mask

    rng = np.random.default_rng(0)
    array = rng.integers(0, 200, size=(33, 21, 70)).astype(dtype)  # more than one 1 MB block for int16
    path = _nifti(tmp_path / name, array)
    vol = read_raw_mask(path)
    assert np.array_equal(vol.array, np.asanyarray(nib.load(path).dataobj))
    assert np.allclose(vol.affine, nib.load(path).affine)
    stats = pixel_stats(path)
    assert stats.voxels == array.size and stats.nonfinite == 0
    assert stats.geometry.same_grid(read_geometry(path))


def test_one_pass_reader_big_endian_4d_and_scaled(tmp_path):
    from hccprog.imaging.readers import _nifti_volume, read_raw_mask

    array = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    big = _nifti(tmp_path / "big.nii.gz", array, big_endian=True)
    assert np.array_equal(read_raw_mask(big).array, array)
    four = _nifti(tmp_path / "four.nii.gz", array[..., None])
    assert read_raw_mask(four).array.shape == (6, 5, 4)
    scaled = _nifti(tmp_path / "scaled.nii.gz", array, scale=(2.0, -10.0))
    assert _nifti_volume(scaled) is None  # scaled: nibabel reads it, with the scaling
    assert np.allclose(read_raw_mask(scaled).array, array * 2.0 - 10.0)


def test_one_pass_reader_finds_truncation_nan_and_concatenated_gzip(tmp_path):
    import gzip

    from hccprog.imaging.readers import pixel_stats

    array = np.zeros((40, 40, 30), np.float32)
    array[3, 4, 5] = np.nan
    array[1, 1, 1] = np.inf
    path = _nifti(tmp_path / "f.nii.gz", array)
    assert pixel_stats(path).nonfinite == 2
    data = path.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) - 20])  # the deflate stream ends early
    with pytest.raises(ImageReadError):
        pixel_stats(cut)
    raw = gzip.decompress(data)
    short = tmp_path / "short.nii.gz"
    short.write_bytes(gzip.compress(raw[: len(raw) // 2]))  # a complete gzip holding half the voxels
    with pytest.raises(ImageReadError, match="ends early"):
        pixel_stats(short)
    split = tmp_path / "two-members.nii.gz"
    split.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))  # as `cat a.gz b.gz` writes
    assert pixel_stats(split).voxels == array.size
