"""Cohorts whose images are DICOM series, DICOM-SEG masks and relabelled NIfTI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccprog.cohort import load_cohort
from hccprog.imaging import LIVER
from tests.conftest import shared_data


def _write(tmp_path, images: pd.DataFrame, labels=None) -> object:
    pd.DataFrame({"pid": images.pid.unique(), "os": 100, "dead": 1}).to_csv(tmp_path / "clinical.csv",
                                                                           index=False)
    images.to_csv(tmp_path / "images.csv", index=False)
    text = ("name: t\nclinical: clinical.csv\nimages: images.csv\nid_column: pid\ntime_unit: days\n"
            "endpoints:\n  os: {time: os, event: dead}\ncovariates: {}\n")
    if labels:
        text += f"labels: {labels}\n"
    (tmp_path / "cohort.yaml").write_text(text)
    return load_cohort(tmp_path / "cohort.yaml")


def test_dicom_series_with_dicom_seg_mask(tmp_path):
    folder = shared_data("dicom-seg-liver-3slice")
    images = pd.DataFrame({"pid": ["P1"], "timepoint": ["baseline"], "series": ["CT_PV"],
                           "image": [str(folder)], "mask": [str(folder / "liver.dcm")]})
    result = _write(tmp_path, images)
    assert result.ok, [str(i) for i in result.report.errors]
    assert "mask-no-tumor" in result.report.codes()
    image, mask = result.cohort["P1"].timepoints[0]["CT_PV"].load()
    assert mask.geometry.same_grid(image.geometry)
    assert (mask.array == LIVER).sum() == 107098


def test_nifti_with_relabelled_liver(tmp_path):
    ct = shared_data("nifti-ct-small", "example_ct_sm.nii.gz")
    seg = shared_data("nifti-ct-small", "example_seg.nii.gz")
    images = pd.DataFrame({"pid": ["P1"], "timepoint": ["baseline"], "series": ["CT_PV"],
                           "image": [str(ct)], "mask": [str(seg)]})
    result = _write(tmp_path, images, labels="{liver: 5}")
    assert result.ok
    codes = result.report.codes()
    assert {"mask-no-tumor", "mask-unmapped-labels"} <= codes and "mask-no-liver" not in codes
    _, mask = result.cohort["P1"].timepoints[0]["CT_PV"].load()
    assert 38_000 < (mask.array == LIVER).sum() < 39_500


def test_timepoints_ordered_by_day(tmp_path):
    ct = shared_data("nifti-ct-small", "example_ct_sm.nii.gz")
    images = pd.DataFrame({"pid": ["P1"] * 3, "timepoint": ["fu2", "baseline", "fu1"],
                           "day": [120, 0, 40], "series": ["CT_PV"] * 3, "image": [str(ct)] * 3})
    result = _write(tmp_path, images)
    assert [t.label for t in result.cohort["P1"].timepoints] == ["baseline", "fu1", "fu2"]
    assert [t.day for t in result.cohort["P1"].timepoints] == [0, 40, 120]


def test_mask_on_another_grid_needs_resample_flag(tmp_path):
    ct = shared_data("nifti-ct-small", "example_ct_sm.nii.gz")
    folder = shared_data("dicom-seg-liver-3slice")
    images = pd.DataFrame({"pid": ["P1"], "timepoint": ["baseline"], "series": ["CT_PV"],
                           "image": [str(ct)], "mask": [str(folder / "liver_seg.nrrd")]})
    result = _write(tmp_path, images)
    assert [i.code for i in result.report.errors] == ["geometry-mismatch"]
    message = result.report.errors[0].message
    assert "shape" in message and "spacing" in message


@pytest.mark.parametrize("n", [1])
def test_lazy_references_hold_no_voxels(tmp_path, n):
    ct = shared_data("nifti-ct-small", "example_ct_sm.nii.gz")
    images = pd.DataFrame({"pid": ["P1"] * n, "timepoint": ["baseline"], "series": ["CT_PV"],
                           "image": [str(ct)]})
    result = _write(tmp_path, images)
    series = result.cohort["P1"].timepoints[0]["CT_PV"]
    assert not hasattr(series.image, "array")
    assert series.image.geometry().shape == (122, 101, 30)
    assert np.isfinite(series.image.load().array).all()
