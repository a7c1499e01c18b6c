"""Saliency back on the scan: the model input's geometry round-trips onto the original grid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hccprog.cohort import load_cohort
from hccprog.explain.geometry import TUMOR_CHANNEL, fit_pixel_to_world, slices_to_scan, volume_to_scan
from hccprog.preprocessing.slices import SliceConfig, StreamSpec, patient_slice_geometry
from hccprog.preprocessing.volumes import VolumeConfig, patient_volume_geometry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lps_cohort(tmp_path_factory) -> Path:
    """Two patients of the independent generator: MetaImage in ITK's LPS world, x axis flipped,
    anisotropic voxels, tumor label 9."""
    out = tmp_path_factory.mktemp("lps") / "cohort"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "independent_cohort.py"), str(out), "--patients", "2",
                    "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(1, int(a.sum() + b.sum()))


def _patient(folder: Path):
    """The first patient of a cohort, its first series, and the scan and mask of its first time point."""
    cohort = load_cohort(folder / "cohort.yaml").cohort
    patient = cohort[cohort.ids[0]]
    series = next(s for s in patient.timepoints[0].series.values() if s.mask is not None)
    image, mask = series.load()
    return patient, [cohort.series_names()[0]], image, mask.array == mask.array.max()  # tumor label: 2 or 9


@pytest.mark.parametrize("which", ["synthetic", "lps"])
def test_the_input_slices_map_back_onto_the_scan(which, tiny_cohort, lps_cohort):
    patient, channels, image, tumor = _patient(tiny_cohort if which == "synthetic" else lps_cohort)
    cfg = SliceConfig(size=32, spacing_mm=(4.0, 4.0, 5.0), slices=3, timepoints=1,
                      streams=[StreamSpec(name="tumor", roi="tumor", fov_mm=96.0),
                               StreamSpec(name="liver", roi="liver")])
    geo = patient_slice_geometry(patient, channels, cfg)["geometry"][0]  # (S, K, 6, H, W)
    s, k = geo.shape[:2]
    for g in geo.reshape(s * k, *geo.shape[2:]):
        _, residual = fit_pixel_to_world(g)
        # resampling and cropping are affine; the 'area' resize of a crop smaller than the input is piecewise
        # constant: within half a resampled pixel of the fitted map
        assert residual <= 0.5 * max(cfg.spacing_mm[:2]) + 1e-6
    heat = geo[:, :, TUMOR_CHANNEL].reshape(s * k, *geo.shape[-2:])  # the tumor share of every input pixel
    back = slices_to_scan(heat, geo.reshape(s * k, *geo.shape[2:]), image.affine, image.shape,
                          thickness_mm=cfg.spacing_mm[2])
    assert back.shape == image.shape[:3]
    reached = np.zeros(tumor.shape, bool)
    z = np.where((back > 0).any(axis=(0, 1)))[0]
    reached[..., z] = True
    assert _dice(back > 0.5, tumor & reached) > 0.85


@pytest.mark.parametrize("which", ["synthetic", "lps"])
def test_the_input_volume_maps_back_onto_the_scan(which, tiny_cohort, lps_cohort):
    patient, channels, image, tumor = _patient(tiny_cohort if which == "synthetic" else lps_cohort)
    cfg = VolumeConfig(size=32, spacing_mm=(2.0, 2.0, 2.0), timepoints=1)
    geo = patient_volume_geometry(patient, channels, cfg)["geometry"][0]  # (6, D, H, W)
    assert fit_pixel_to_world(geo)[1] < 1e-3
    back = volume_to_scan(geo[TUMOR_CHANNEL], geo, image.affine, image.shape)
    assert _dice(back > 0.5, tumor) > 0.8
