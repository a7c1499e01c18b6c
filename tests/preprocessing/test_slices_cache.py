"""Representative slices, windowing, ROI crops, LOCF and the preprocessing cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccprog.cohort import load_cohort
from hccprog.preprocessing import SliceConfig, StreamSpec, preprocess_cohort
from hccprog.preprocessing.slices import _intensity, crop_stream, select_slices
from tests.conftest import tree_hashes

TINY = SliceConfig(size=16, spacing_mm=(6.0, 6.0, 15.0), slices=2, timepoints=2,
                   streams=[StreamSpec(name="tumor", roi="tumor", fov_mm=96.0),
                            StreamSpec(name="liver", roi="liver", fov_mm=None)])


def test_top_k_tumor_slices_then_liver_fallback():
    mask = np.zeros((8, 8, 6), np.uint8)
    mask[1:7, 1:7, :] = 1
    for z, n in enumerate([0, 5, 3, 9, 0, 1]):
        mask[:n // 3 + (n > 0), : min(n, 8), z][mask[:n // 3 + (n > 0), : min(n, 8), z] > 0] = 2
    area = (mask == 2).sum(axis=(0, 1))
    idx, by = select_slices(mask, 2)
    assert by == "tumor"
    assert list(idx) == sorted(np.argsort(-area, kind="stable")[:2].tolist())
    no_tumor = np.where(mask == 2, 1, mask)
    no_tumor[:, :, 4] = 0
    no_tumor[2:6, 2:4, 0] = 0  # slice 0 has the smallest liver area
    idx, by = select_slices(no_tumor, 3)
    assert by == "liver" and 4 not in idx and 0 not in idx
    with pytest.raises(ValueError, match="no liver"):
        select_slices(np.zeros((4, 4, 4), np.uint8), 2)


def test_contiguous_slab_centred_on_the_largest_tumor_slice():
    mask = np.zeros((6, 6, 12), np.uint8)
    mask[1:5, 1:5, 2:11] = 1
    for z, n in {3: 1, 4: 4, 5: 2}.items():
        mask[1:1 + n, 1, z] = 2
    idx, by = select_slices(mask, 4, "contiguous")
    assert by == "tumor" and idx.tolist() == [3, 4, 5, 6]  # centre 4, (k - 1) // 2 = 1 slice before
    assert select_slices(mask, 6, "contiguous")[0].tolist() == [2, 3, 4, 5, 6, 7]
    # shifted inward at the volume's ends; a volume shorter than k repeats its last slice
    edge = np.zeros((4, 4, 5), np.uint8)
    edge[1:3, 1:3, :] = 1
    edge[1, 1, 0] = 2
    assert select_slices(edge, 3, "contiguous")[0].tolist() == [0, 1, 2]
    assert select_slices(edge, 7, "contiguous")[0].tolist() == [0, 1, 2, 3, 4, 4, 4]
    liver_only = np.where(mask == 2, 1, mask)
    liver_only[1:5, 1:5, 8] = 0
    liver_only[0:6, 0:6, 9] = 1  # slice 9 has the largest liver area
    idx, by = select_slices(liver_only, 3, "contiguous")
    assert by == "liver" and idx.tolist() == [8, 9, 10]


def test_series_alternatives_and_a_series_the_cohort_lacks():
    from hccprog.preprocessing.slices import resolve_series

    assert resolve_series(["MR_T2|MR_T2W", "MR_PV"], ["MR_T2W", "MR_PV"]) == ["MR_T2W", "MR_PV"]
    assert SliceConfig(series=["CT_PV"]).channels(["CT_ART", "CT_PV"]) == ["CT_PV"]
    with pytest.raises(ValueError, match=r"\['MR_T2W'\] not in the cohort \(it has MR_T2, MR_PV\)"):
        SliceConfig(series=["MR_T2W", "MR_PV"]).channels(["MR_T2", "MR_PV"])


def test_ct_window_width_400_level_40():
    cfg = SliceConfig()
    values = _intensity(np.array([-1000.0, -160.0, 40.0, 240.0, 1000.0]), "CT_PV", np.ones(5, bool), cfg, ct=True)
    np.testing.assert_allclose(values, [0, 0, 0.5, 1, 1], atol=1e-6)
    mri = _intensity(np.array([10.0, 20.0, 30.0, 40.0, 50.0]), "MR_T2", np.ones(5, bool), cfg, ct=False)
    assert mri[2] == pytest.approx(0.5)  # the liver median maps to the centre of the range


def test_roi_crop_is_centred_on_the_tumor():
    image = np.zeros((1, 40, 40, 3), np.float32)
    mask = np.zeros((40, 40, 3), np.uint8)
    mask[5:35, 5:35] = 1
    mask[28:32, 8:12] = 2
    image[0][mask == 2] = 1.0
    cfg = SliceConfig(size=8, spacing_mm=(2.0, 2.0, 5.0))
    crops = crop_stream(image, mask, np.array([0, 1]), StreamSpec(name="t", roi="tumor", fov_mm=16.0), cfg)
    assert crops.shape == (2, 1, 8, 8)
    assert crops[0, 0, 3:5, 3:5].min() > 0.9 and crops[0, 0, 0, 0] == 0  # tumor in the centre, not the corner
    liver = crop_stream(image, mask, np.array([0]), StreamSpec(name="l", roi="liver", fov_mm=None, margin_mm=0),
                        cfg)
    assert liver.shape == (1, 1, 8, 8)


@pytest.mark.parametrize(("region", "kept"), [("none", {0, 1, 2}), ("liver", {1, 2}), ("tumor", {2})])
def test_stream_mask_zeroes_pixels_outside_the_region(region, kept):
    mask = np.zeros((16, 16, 1), np.uint8)
    mask[2:14, 2:14] = 1
    mask[6:10, 6:10] = 2
    image = np.ones((1, 16, 16, 1), np.float32)
    cfg = SliceConfig(size=16, spacing_mm=(1.0, 1.0, 5.0))
    spec = StreamSpec(name="t", roi="liver", fov_mm=16.0, mask=region)
    crop = crop_stream(image, mask, np.array([0]), spec, cfg)[0, 0]
    # the 16 mm window on the 16-pixel slice is the slice itself (centred on the liver box)
    inside = np.isin(mask[..., 0], list(kept))
    assert crop[inside].min() == 1.0
    assert (crop[~inside] == 0).all()


@pytest.fixture
def cohort_missing_followup(tiny_cohort):
    images = pd.read_csv(tiny_cohort / "images.csv")
    first = images["patient_id"].iloc[0]
    images = images[~((images["patient_id"] == first) & (images["timepoint"] == "fu1"))]
    images.to_csv(tiny_cohort / "images.csv", index=False)
    return tiny_cohort, first


def test_locf_and_shapes(cohort_missing_followup, tmp_path):
    folder, first = cohort_missing_followup
    cohort = load_cohort(folder / "cohort.yaml").cohort
    data = preprocess_cohort(cohort, TINY, cache_dir=tmp_path / "cache", workers=1)
    assert data.x.shape == (6, 2, 2, 2, 3, 16, 16) and data.x.dtype == np.float16
    assert data.channels == ["CT_NC", "CT_ART", "CT_PV"]
    i = data.ids.index(first)
    assert list(data.observed[i]) == [True, False]
    np.testing.assert_array_equal(data.x[i, 1], data.x[i, 0])  # carried forward
    assert data.observed[[j for j in range(6) if j != i]].all()
    assert float(data.x.min()) >= 0.0 and float(data.x.max()) <= 1.0


def test_cache_reuses_detects_corruption_and_config_changes(tiny_cohort, tmp_path):
    before = tree_hashes(tiny_cohort)
    cohort = load_cohort(tiny_cohort / "cohort.yaml").cohort
    cache = tmp_path / "cache"
    first = preprocess_cohort(cohort, TINY, cache_dir=cache, workers=1)
    assert first.stats["built"] == 6 and first.stats["cached"] == 0
    again = preprocess_cohort(cohort, TINY, cache_dir=cache, workers=1)
    assert again.stats["cached"] == 6 and again.stats["built"] == 0
    np.testing.assert_array_equal(again.x, first.x)
    # the cached tensors are those a fresh build computes (not only counted as reused)
    fresh = preprocess_cohort(cohort, TINY, cache_dir=tmp_path / "fresh", workers=1)
    assert fresh.stats["built"] == 6
    np.testing.assert_array_equal(again.x, fresh.x)
    np.testing.assert_array_equal(again.observed, fresh.observed)
    assert again.ids == fresh.ids and again.imputed == fresh.imputed
    entries = sorted(cache.rglob("*.npz"))
    assert len(entries) == 6
    entries[0].write_bytes(entries[0].read_bytes()[:200])  # truncated
    raw = bytearray(entries[1].read_bytes())
    raw[-300] ^= 0xFF  # one flipped byte
    entries[1].write_bytes(bytes(raw))
    repaired = preprocess_cohort(cohort, TINY, cache_dir=cache, workers=1)
    assert repaired.stats["rebuilt"] == 2 and repaired.stats["cached"] == 4
    np.testing.assert_array_equal(repaired.x, first.x)
    other = preprocess_cohort(cohort, TINY.model_copy(update={"size": 12}), cache_dir=cache, workers=1)
    assert other.stats["built"] == 6 and other.x.shape[-1] == 12
    assert tree_hashes(tiny_cohort) == before  # inputs never modified


def test_changed_image_gives_a_new_key(tiny_cohort, tmp_path):
    import nibabel as nib

    cohort = load_cohort(tiny_cohort / "cohort.yaml").cohort
    cache = tmp_path / "cache"
    before = preprocess_cohort(cohort, TINY, cache_dir=cache, workers=1)
    pid = cohort.ids[0]
    path = cohort[pid].timepoints[0].series["CT_ART"].image.path
    img = nib.load(path)
    arr = np.asarray(img.dataobj).copy()
    arr[arr.shape[0] // 2] += 100
    nib.save(nib.Nifti1Image(arr, img.affine, img.header), path)
    cohort = load_cohort(tiny_cohort / "cohort.yaml").cohort
    again = preprocess_cohort(cohort, TINY, cache_dir=cache, workers=1)
    assert again.stats["built"] == 1 and again.stats["cached"] == 5
    # the changed patient's tensors are rebuilt from the new image: those of a fresh build, not the old ones
    fresh = preprocess_cohort(cohort, TINY, cache_dir=tmp_path / "fresh", workers=1)
    np.testing.assert_array_equal(again.x, fresh.x)
    i = again.ids.index(pid)
    assert not np.array_equal(again.x[i], before.x[i])
    others = [j for j in range(len(again.ids)) if j != i]
    np.testing.assert_array_equal(again.x[others], before.x[others])


def test_top_area_fill_adds_the_largest_liver_slices_instead_of_repeating_tumor_ones():
    """Xia et al.: with fewer than three tumor slices, the tumor slices first, then the slices of
    largest organ area; a tumor slice is never repeated."""
    mask = np.zeros((10, 10, 8), np.uint8)
    for z, side in enumerate([2, 4, 9, 6, 8, 3, 0, 5]):  # liver area per slice
        mask[:side, :side, z] = 1
    mask[0, 0, 5] = mask[0:2, 0, 1] = 2  # tumor on slices 5 (1 voxel) and 1 (2 voxels)
    idx, by = select_slices(mask, 3, "top_area_fill")
    assert by == "tumor" and idx.tolist() == [1, 2, 5]  # both tumor slices, then slice 2 (largest liver)
    assert select_slices(mask, 3, "top_area")[0].tolist() == [1, 5, 1]  # the old rule repeats tumor slices
    no_tumor = np.where(mask == 2, 1, mask).astype(np.uint8)
    idx, by = select_slices(no_tumor, 3, "top_area_fill")  # no tumor: the three largest liver slices
    assert by == "liver" and idx.tolist() == [2, 3, 4] == select_slices(no_tumor, 3, "top_area")[0].tolist()
    tiny = np.zeros((4, 4, 3), np.uint8)
    tiny[0, 0, 1] = 1
    assert select_slices(tiny, 3, "top_area_fill")[0].tolist() == [1, 1, 1]  # one organ slice: repeated


def test_standardize_gives_each_slice_and_channel_zero_mean_unit_variance():
    rng = np.random.default_rng(0)
    image = rng.random((3, 40, 40, 2)).astype(np.float32)
    mask = np.zeros((40, 40, 2), np.uint8)
    mask[5:35, 5:35] = 1
    mask[15:25, 15:25] = 2
    spec = StreamSpec(name="t", roi="tumor", fov_mm=40.0)
    cfg = SliceConfig(size=8, spacing_mm=(2.0, 2.0, 5.0), standardize=True)
    crops = crop_stream(image, mask, np.array([0, 1]), spec, cfg, unmasked=1)
    img = crops[:, :2]
    np.testing.assert_allclose(img.mean(axis=(2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(img.std(axis=(2, 3)), 1, atol=1e-4)
    plain = crop_stream(image, mask, np.array([0, 1]), spec, SliceConfig(size=8, spacing_mm=(2.0, 2.0, 5.0)),
                        unmasked=1)
    np.testing.assert_array_equal(crops[:, 2], plain[:, 2])  # the unmasked (geometry) channel is left alone
