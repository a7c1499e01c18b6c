"""Masked 3D volumes (ProgSwin-UNETR input): masking, crop, resize, LOCF, cache."""

from __future__ import annotations

import numpy as np
import pytest

from hccprog.cohort import load_cohort
from hccprog.preprocessing import VolumeConfig, preprocess_cohort
from hccprog.preprocessing.volumes import masked_volume


def test_masked_volume_zeroes_outside_the_liver_and_crops_to_it():
    mask = np.zeros((40, 40, 20), np.uint8)
    mask[10:30, 5:25, 4:16] = 1
    mask[15:20, 10:15, 8:12] = 2
    image = np.ones((1, 40, 40, 20), np.float32)
    cfg = VolumeConfig(size=16, spacing_mm=(1.0, 1.0, 1.0), margin_mm=0.0)
    out = masked_volume(image, mask, cfg)
    assert out.shape == (1, 16, 16, 16)
    assert np.allclose(out, 1.0)  # cropped exactly to the liver box: every voxel is liver
    wide = masked_volume(image, mask, cfg.model_copy(update={"margin_mm": 5.0}))
    assert wide.min() == 0.0 and wide.max() == pytest.approx(1.0)  # the margin holds zeroed background
    tumor = masked_volume(image, mask, cfg.model_copy(update={"mask": "tumor", "crop": "tumor"}))
    assert np.allclose(tumor, 1.0)
    tumor_in_liver_box = masked_volume(image, mask, cfg.model_copy(update={"mask": "tumor"}))
    assert 0 < tumor_in_liver_box.mean() < 0.2  # tumor is 100 of 4800 liver voxels


def test_arterial_series_is_the_default_channel():
    assert VolumeConfig().channels(["MR_T2", "MR_ART", "MR_PV"]) == ["MR_ART"]
    assert VolumeConfig().channels(["CT_NC", "CT_PV"]) == ["CT_NC"]
    assert VolumeConfig(series=["MR_PV", "MR_T2"]).channels(["MR_T2", "MR_ART", "MR_PV"]) == ["MR_PV", "MR_T2"]


def test_cohort_volumes_with_locf_and_cache(tiny_cohort, tmp_path):
    cohort = load_cohort(tiny_cohort / "cohort.yaml").cohort  # CT, baseline + one follow-up
    cfg = VolumeConfig(size=16, spacing_mm=(12.0, 12.0, 12.0), timepoints=3)
    first = preprocess_cohort(cohort, cfg, cache_dir=tmp_path, workers=1)
    assert first.x.shape == (6, 3, 1, 16, 16, 16) and first.channels == ["CT_ART"]
    assert first.observed[:, :2].all() and not first.observed[:, 2].any()  # third time point carried forward
    assert np.array_equal(first.x[:, 2], first.x[:, 1])
    assert first.geometry() == {"streams": 3, "channels": 1}
    assert float(first.x.max()) <= 1.0 and float(first.x.min()) >= 0.0
    second = preprocess_cohort(cohort, cfg, cache_dir=tmp_path, workers=1)
    assert second.stats["cached"] == 6 and np.array_equal(second.x, first.x)
