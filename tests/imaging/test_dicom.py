"""DICOM series: sorting along the normal, rescale, padding, gaps, bad folders; DICOM-SEG."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import generate_uid

from hccprog.imaging import ImageReadError, read_geometry, read_image, read_mask
from hccprog.imaging.dicom import scan_series
from tests.conftest import shared_data, write_ct_slice


def test_series_sorted_by_position_not_name(tmp_path, ct_series_writer):
    positions = [10.0, 2.5, 7.5, 0.0, 5.0]  # written in this order, names shuffled
    folder, stored = ct_series_writer(tmp_path / "s", positions=positions)
    vol = read_image(folder)
    order = np.argsort(positions)
    expected = stored[:, :, order].astype(np.float32) - 1024.0  # rescale intercept
    # canonical RAS: i = columns flipped (L->R), j = rows flipped (P->A), k = slices (I->S)
    got = vol.array[::-1, ::-1, :].transpose(1, 0, 2)
    np.testing.assert_array_equal(got, np.maximum(expected, -1024.0))
    assert vol.geometry.axcodes == ("R", "A", "S")
    assert vol.spacing == pytest.approx((0.7, 0.8, 2.5))


def test_rescale_slope_and_intercept_per_slice(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    uid, study = generate_uid(), generate_uid()
    px = np.full((4, 4), 100, np.int16)
    for k, (slope, intercept) in enumerate([(1.0, -1024.0), (2.0, -1000.0)]):
        write_ct_slice(folder / f"{k}.dcm", px, float(k), series_uid=uid, study_uid=study,
                       slope=slope, intercept=intercept, spacing=(1.0, 1.0))
    vol = read_image(folder)
    assert set(np.unique(vol.array[:, :, 0])) == {-924.0}
    assert set(np.unique(vol.array[:, :, 1])) == {-800.0}


def test_padding_value_becomes_air(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    uid, study = generate_uid(), generate_uid()
    px = np.full((4, 4), 1100, np.int16)
    px[0, :] = -2000
    for k in range(2):
        write_ct_slice(folder / f"{k}.dcm", px, float(k), series_uid=uid, study_uid=study,
                       padding=-2000, spacing=(1.0, 1.0))
    vol = read_image(folder)
    assert vol.array.min() == -1024.0
    assert (vol.array == 76.0).sum() == 2 * 12


def test_missing_slice_is_reported_and_interpolated(tmp_path, ct_series_writer):
    folder, stored = ct_series_writer(tmp_path / "s", positions=[0.0, 2.5, 5.0, 10.0, 12.5])
    scan = scan_series(folder)
    assert scan.interpolated
    assert any("missing slice" in w for w in scan.warnings)
    vol = read_image(folder)
    assert vol.shape[2] == 6
    middle = vol.array[::-1, ::-1, 3].T
    expected = (stored[:, :, 2].astype(np.float32) + stored[:, :, 3]) / 2 - 1024
    np.testing.assert_allclose(middle, np.maximum(expected, -1024), atol=1e-3)


@pytest.mark.parametrize(
    ("problem", "message"),
    [("two_series", "2 series in one folder"), ("duplicate", "duplicated slice position"),
     ("empty", "no DICOM image files")],
)
def test_bad_folders_are_rejected(tmp_path, ct_series_writer, problem, message):
    folder = tmp_path / "s"
    if problem == "two_series":
        ct_series_writer(folder, n=3)
        write_ct_slice(folder / "other.dcm", np.zeros((6, 7), np.int16), 99.0,
                       series_uid=generate_uid(), study_uid=generate_uid())
    elif problem == "duplicate":
        ct_series_writer(folder, positions=[0.0, 2.5, 2.5, 5.0])
    else:
        folder.mkdir()
        (folder / "README.txt").write_text("not dicom")
    with pytest.raises(ImageReadError, match=message):
        read_geometry(folder)


def test_non_dicom_files_in_folder_are_ignored(tmp_path, ct_series_writer):
    folder, _ = ct_series_writer(tmp_path / "s", n=3)
    (folder / "LICENSE").write_text("text")
    (folder / "notes.md").write_text("# notes")
    assert read_geometry(folder).shape == (7, 6, 3)


def test_real_hcc048_portal_venous_series():
    folder = shared_data("hcc-tace-seg", "HCC_048-portal-venous")
    geo = read_geometry(folder)
    assert geo.shape == (512, 512, 89)
    assert geo.spacing == pytest.approx((0.703125, 0.703125, 2.5), abs=1e-4)
    vol = read_image(folder)
    assert vol.array.min() >= -1024 and vol.array.max() <= 3071
    # soft tissue (liver about 100 HU in portal-venous phase) is present, and so is air
    body = vol.array[(vol.array > -200) & (vol.array < 300)]
    assert 20 < np.median(body) < 120
    assert (vol.array <= -900).mean() > 0.2
    # z grows towards the head and spans the documented 220 mm (-396..-176 mm)
    assert vol.affine[2, 2] > 0
    assert vol.origin[2] == pytest.approx(-396.0, abs=1.5)


def test_real_dicom_seg_placed_on_its_ct_grid():
    folder = shared_data("dicom-seg-liver-3slice")
    ct = read_image(folder)
    assert ct.shape == (512, 512, 3)
    seg = read_mask(folder / "liver.dcm", {"liver": 1}, reference=ct.geometry)
    ref = read_mask(folder / "liver_seg.nrrd", {"liver": 1}, reference=ct.geometry)
    assert seg.geometry.same_grid(ct.geometry)
    assert (seg.array == 1).sum() == 36233 + 35645 + 35220
    np.testing.assert_array_equal(seg.array, ref.array)
    # the liver lies on the patient's right: positive x in RAS world coordinates
    i_centre = np.argwhere(seg.array == 1)[:, 0].mean()
    world_x = ct.affine[0, 0] * i_centre + ct.affine[0, 3]
    assert world_x > 30


def test_study_folder_lists_its_series(tmp_path, ct_series_writer):
    from hccprog.imaging import ImageReadError, read_geometry

    study = tmp_path / "02-15-1998-NA-CT"
    ct_series_writer(study / "2.000000-ART-1", n=3)
    ct_series_writer(study / "3.000000-PV-2", n=3)
    with pytest.raises(ImageReadError, match=r"2 sub-folder\(s\) hold DICOM series \('2.000000-ART-1', "
                                             r"'3.000000-PV-2'\): this looks like a study folder"):
        read_geometry(study)


def test_single_slice_series_and_an_itk_mask_share_their_grid(tmp_path, ct_series_writer):
    """A one-slice series takes SliceThickness as its z-spacing; ITK-based tools write 1 mm. Along an
    axis one voxel thick that is a convention, so the mask is accepted on the image's grid."""
    import SimpleITK as sitk

    from hccprog.imaging import read_geometry, read_image, read_mask

    folder, _ = ct_series_writer(tmp_path / "one", n=1, rows=6, cols=7)
    geo = read_geometry(folder)
    assert geo.shape[2] == 1 and geo.spacing[2] == pytest.approx(2.0)
    itk = sitk.ReadImage([str(p) for p in sorted(folder.glob("*.dcm"))])
    assert itk.GetSpacing()[2] == pytest.approx(1.0)  # ITK's convention for a single slice
    mask = sitk.Cast(itk * 0 + 1, sitk.sitkUInt8)
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"))
    vol = read_mask(tmp_path / "mask.nrrd", reference=read_image(folder).geometry)
    assert vol.array.shape == geo.shape and (vol.array == 1).all()
