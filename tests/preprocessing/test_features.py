"""Radiomics extraction: hand-computed features on a phantom, regions, the content cache, and the
``hccprog features`` table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccprog.imaging.volume import Volume
from hccprog.preprocessing.features import FeatureConfig, region_masks, timepoint_features


def _phantom(mm: float = 2.0):
    """A 20^3 grid at ``mm`` isotropic: liver (label 1) a 12^3 cube, inside it a 4 x 5 x 6 tumor
    (label 2) whose intensities are 100 + k for k = 0..119 (mean 159.5); liver 40, outside -100."""
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[4:16, 4:16, 4:16] = 1
    labels[8:12, 7:12, 6:12] = 2
    image = np.full(labels.shape, -100.0, np.float32)
    image[labels == 1] = 40.0
    image[8:12, 7:12, 6:12] = (100 + np.arange(120, dtype=np.float32)).reshape(4, 5, 6)
    affine = np.diag([mm, mm, mm, 1.0])
    return {"CT_PV": Volume(image, affine)}, Volume(labels, affine)


def test_volume_and_mean_equal_hand_computed_values():
    images, labels = _phantom()
    cfg = FeatureConfig(resample_mm=2.0, regions=["tumor", "liver"], stability=False)
    rows = pd.DataFrame(timepoint_features(images, labels, cfg))
    get = rows.set_index(["series", "region", "feature"])["value"]
    # volume: 4 x 5 x 6 voxels of 2 mm = 120 x 8 mm3
    assert get[("shape", "tumor", "original_shape_VoxelVolume")] == pytest.approx(960.0)
    assert get[("CT_PV", "tumor", "original_firstorder_Mean")] == pytest.approx(159.5, abs=1e-3)
    assert get[("CT_PV", "tumor", "original_firstorder_Maximum")] == pytest.approx(219.0, abs=1e-3)
    # the liver region is the parenchyma without the tumor: 12^3 - 120 voxels, all 40 HU
    assert get[("shape", "liver", "original_shape_VoxelVolume")] == pytest.approx((12 ** 3 - 120) * 8.0)
    assert get[("CT_PV", "liver", "original_firstorder_Mean")] == pytest.approx(40.0, abs=1e-3)


def test_ring_is_around_the_tumor_inside_the_liver():
    _, labels = _phantom()
    lab = np.asarray(labels.array)
    masks = region_masks(lab, (2.0, 2.0, 2.0), ["tumor", "liver", "ring"], ring_mm=4.0)
    ring = masks["ring"]
    assert not (ring & masks["tumor"]).any() and (lab[ring] >= 1).all()
    # the voxels at 2 or 4 mm from the tumor along a face: the ring is 2 voxels thick there
    assert ring[12, 9, 8] and ring[13, 9, 8] and not ring[14, 9, 8]


def test_stability_rows_and_the_cache(tiny_cohort, tmp_path):
    from hccprog.cohort import load_cohort
    from hccprog.preprocessing.features import extract_features, feature_matrix

    cohort = load_cohort(tiny_cohort / "cohort.yaml").cohort
    cfg = FeatureConfig(resample_mm=6.0, regions=["tumor", "liver"])
    first = extract_features(cohort, cfg, cache_dir=tmp_path, workers=1)
    assert set(first.table["perturbation"]) == {"original", "eroded", "dilated"}
    assert set(first.table.query("perturbation != 'original'")["region"]) == {"tumor"}
    cached = sorted((tmp_path / "radiomics").rglob("*.json"))
    assert len(cached) == first.stats["timepoints"]
    written = {p: p.stat().st_mtime_ns for p in cached}
    again = extract_features(cohort, cfg, cache_dir=tmp_path, workers=1)
    assert {p: p.stat().st_mtime_ns for p in cached} == written  # read from the cache, nothing rewritten
    # what the cache gives is what a fresh extraction computes
    fresh = extract_features(cohort, cfg, cache_dir=tmp_path / "fresh", workers=1)
    pd.testing.assert_frame_equal(again.table, fresh.table)
    pd.testing.assert_frame_equal(first.table, again.table)
    m = feature_matrix(first, delta=True)
    base = [c for c in m.columns if c.startswith("t0|")]
    assert len(m.columns) == 3 * len(base) and list(m.index) == first.ids
    col = "CT_PV|tumor|original_firstorder_Mean"
    fu = first.table.query("perturbation == 'original' and timepoint_index == 1 and series == 'CT_PV' and "
                           "region == 'tumor' and feature == 'original_firstorder_Mean'").set_index("patient_id")
    pid = fu.index[0]
    assert m.loc[pid, f"delta|{col}"] == pytest.approx(fu.loc[pid, "value"] - m.loc[pid, f"t0|{col}"])


def test_features_command_writes_the_long_table(tiny_cohort, tmp_path):
    from typer.testing import CliRunner

    from hccprog.cli import app

    out = tmp_path / "f" / "features.csv"
    (tmp_path / "rad.yaml").write_text("resample_mm: 6.0\nregions: [tumor]\nstability: false\n")
    args = ["features", str(tiny_cohort / "cohort.yaml"), "--out", str(out), "--config", str(tmp_path / "rad.yaml"),
            "--cache", str(tmp_path / "c")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["patient_id", "timepoint", "series", "region", "feature", "value"]
    assert set(table["region"]) == {"tumor"} and table["value"].notna().all()
    assert "resample_mm: 6.0" in (out.parent / "features.settings.yaml").read_text()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "exists" in again.output


def test_the_model_reads_the_first_post_tace_time_point_when_asked():
    """Yao et al.'s radiomics comparators read the first post-TACE scan: ``read_timepoint: 1`` gives
    that time point's features (``t1|...``); a patient without it has no values."""
    import pandas as pd

    from hccprog.models import get_model
    from hccprog.preprocessing.features import FeatureConfig, ImageFeatures, feature_matrix
    from hccprog.training.config import resolve_config

    rows = [{"patient_id": p, "timepoint": f"tp{k}", "timepoint_index": k, "series": "MR_ART", "region": "tumor",
             "perturbation": "original", "feature": "volume", "value": v}
            for p, k, v in (("A", 0, 10.0), ("A", 1, 4.0), ("B", 0, 20.0), ("B", 1, 30.0), ("C", 0, 5.0))]
    table = pd.DataFrame(rows)
    post = feature_matrix(ImageFeatures(table, FeatureConfig(read_timepoint=1), ["MR_ART"]), delta=False)
    assert list(post.columns) == ["t1|MR_ART|tumor|volume"]
    assert post.loc[["A", "B"]].iloc[:, 0].tolist() == [4.0, 30.0] and post.loc["C"].isna().all()
    base = feature_matrix(ImageFeatures(table, FeatureConfig(), ["MR_ART"]), delta=False)
    assert base.iloc[:, 0].tolist() == [10.0, 20.0, 5.0]
    with pytest.raises(ValueError, match="read_timepoint must be 0"):
        feature_matrix(ImageFeatures(table, FeatureConfig(read_timepoint=1), ["MR_ART"]), delta=True)
    with pytest.raises(ValueError, match="is not extracted"):
        FeatureConfig(read_timepoint=2, timepoints=2)
    # the 4-class XGBoost comparator on the first post-TACE features
    cfg = resolve_config("post-tace", model="radiomics-xgb-classifier")
    assert cfg.preprocessing.read_timepoint == 1 and cfg.network_config().learner == "xgb"
    assert get_model("radiomics-xgb-classifier").objective == "classes"
