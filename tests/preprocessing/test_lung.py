"""The HU lung mask: checked against a hand-drawn reference on a real portal-venous CT (HCC-TACE-Seg,
patient HCC_048), bowel gas left out by the liver-dome rule, and a clear error for a scan that stops
short of the lungs."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as MPath

from hccprog.errors import InputError
from hccprog.imaging.readers import read_image
from hccprog.imaging.volume import Volume
from hccprog.preprocessing.lung import dice, lung_mask
from tests.conftest import shared_data

#: The left lung base of HCC_048 on axial slice 70 (RAS-canonical voxel x, y), outlined by hand on a
#: -1000..400 HU rendering: along the chest wall, under the spleen and round the crescent beside it,
#: and along the aorta and spine (vessels inside the outline are lung).
HAND_DRAWN_Z70 = [(232, 262), (232, 248), (245, 240), (258, 225), (264, 205), (270, 180), (280, 160), (295, 140),
                  (330, 128), (360, 127), (390, 133), (405, 150), (420, 180), (432, 220), (434, 260), (430, 300),
                  (414, 330), (395, 345), (378, 347), (383, 320), (385, 290), (382, 265), (370, 258), (340, 258),
                  (300, 262), (262, 264)]


@pytest.fixture(scope="module")
def hcc048():
    return read_image(shared_data("hcc-tace-seg", "HCC_048-portal-venous")).to_canonical()


def test_lung_mask_matches_a_hand_drawn_outline_on_real_ct(hcc048):
    mask = lung_mask(hcc048, name="HCC_048")
    shape = mask.shape[:2]
    xx, yy = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    ref = MPath(HAND_DRAWN_Z70).contains_points(np.c_[xx.ravel(), yy.ravel()]).reshape(shape)
    assert dice(mask[:, :, 70], ref) > 0.85  # 0.90 measured
    # no lung in the abdomen: the stomach and colon gas of the lower slices stay out
    assert not mask[:, :, :35].any() and mask[:, :, 80:].any()
    volume_ml = mask.sum() * np.prod(hcc048.spacing) / 1000
    assert 300 < volume_ml < 4000  # the lung bases and lower lobes this scan covers (989 mL measured)


def test_a_scan_that_stops_short_of_the_lungs_is_a_clear_error(hcc048):
    abdomen = Volume(hcc048.array[:, :, :35].copy(), hcc048.affine)
    liver = np.zeros(abdomen.shape, bool)
    liver[150:250, 200:300, 5:35] = True  # the liver reaches the top slice: nothing above its dome
    with pytest.raises(InputError, match="does not reach the lungs: its top slice is at the liver dome"):
        lung_mask(abdomen, liver, name="HCC_048")
    liver[:, :, 25:] = False  # slices above the 'dome' hold bowel gas only, which is not lung
    with pytest.raises(InputError, match="no air-filled region"):
        lung_mask(abdomen, liver, name="HCC_048", min_volume_ml=2000)


def test_the_dome_rule_keeps_the_lung_and_drops_bowel_gas():
    a = np.full((40, 40, 40), -1000.0, np.float32)
    a[5:35, 5:35, :] = 40.0  # the body
    a[10:30, 10:25, 25:40] = -850.0  # a lung above and beside the dome
    a[12:20, 12:20, 2:8] = -900.0  # bowel gas below the liver
    liver = np.zeros(a.shape, bool)
    liver[10:30, 25:33, 10:30] = True  # the dome at slice 29: the lung base descends beside it
    m = lung_mask(Volume(a, np.diag([5.0, 5.0, 5.0, 1.0])), liver, min_volume_ml=10)
    assert m[15, 15, 27] and m[15, 15, 38] and not m[15, 15, 4]
    assert dice(m, a < -800) < 1 and m[10:30, 10:25, 25:40].all()


def test_a_lung_stream_reads_the_lungs_of_a_synthetic_ct(tmp_path):
    """The CRNN's lung slices: the slices of largest lung area, cropped round the lungs (their mask made
    from HU above the liver dome); the liver stream still follows the liver."""
    from hccprog.cohort import load_cohort
    from hccprog.preprocessing.slices import SliceConfig, patient_slice_geometry, patient_slices
    from hccprog.synth import SynthConfig, synthesize

    synthesize(tmp_path / "c", SynthConfig(patients=1, seed=5, workers=1))
    cohort = load_cohort(tmp_path / "c" / "cohort.yaml").cohort
    cfg = SliceConfig(series=["CT_PV"], size=32, spacing_mm=(4.0, 4.0, 5.0), slices=3, selection="top_area_fill",
                      timepoints=1, ct_window=(1500.0, -300.0),
                      streams=[{"name": "liver", "roi": "liver", "fov_mm": None},
                               {"name": "lung", "roi": "lung", "fov_mm": None}])
    patient = cohort[cohort.ids[0]]
    x = patient_slices(patient, ["CT_PV"], cfg)["x"].astype(float)
    assert x.shape == (1, 2, 3, 1, 32, 32)
    # air-dark lungs fill much of the lung crops (window -1050..450 HU: lung about 0.13), not of the liver ones
    dark = (x < 0.2).mean(axis=(2, 3, 4, 5))[0]
    assert dark[1] > 0.25 and dark[0] < dark[1]
    geo = patient_slice_geometry(patient, ["CT_PV"], cfg)["geometry"]
    z_liver, z_lung = geo[0, 0, :, 2].mean(), geo[0, 1, :, 2].mean()
    assert z_lung > z_liver  # the lung slices lie above the liver's
    synthesize(tmp_path / "m", SynthConfig(patients=1, seed=5, workers=1, modality="mri"))
    mri = load_cohort(tmp_path / "m" / "cohort.yaml").cohort
    with pytest.raises(ValueError, match="a lung stream reads CT"):
        patient_slices(mri[mri.ids[0]], ["MR_PV"], cfg.model_copy(update={"series": None}))


def test_a_stream_window_reads_its_stream_as_the_series_window_would(tmp_path):
    """The CRNN paper's chest window for the lung slices (WW 1200 / WL -600) beside the liver's
    (WW 400 / WL 0): each stream's crops equal those of a run whose series window is that stream's."""
    from hccprog.cohort import load_cohort
    from hccprog.preprocessing.slices import SliceConfig, patient_slices
    from hccprog.synth import SynthConfig, synthesize

    synthesize(tmp_path / "c", SynthConfig(patients=1, seed=6, workers=1))
    cohort = load_cohort(tmp_path / "c" / "cohort.yaml").cohort
    patient = cohort[cohort.ids[0]]

    def run(window, lung_window=None):
        lung = {"name": "lung", "roi": "lung", "fov_mm": None, "ct_window": lung_window}
        cfg = SliceConfig(series=["CT_PV"], size=32, spacing_mm=(4.0, 4.0, 5.0), slices=3,
                          selection="top_area_fill", timepoints=2, ct_window=window,
                          streams=[{"name": "liver", "roi": "liver", "fov_mm": None}, lung])
        return patient_slices(patient, ["CT_PV"], cfg)["x"].astype(float)

    both = run((400.0, 0.0), (1200.0, -600.0))
    liver_only, chest_only = run((400.0, 0.0)), run((1200.0, -600.0))
    assert both.shape == liver_only.shape == (2, 2, 3, 1, 32, 32)
    np.testing.assert_allclose(both[:, 0], liver_only[:, 0], atol=1e-6)
    np.testing.assert_allclose(both[:, 1], chest_only[:, 1], atol=1e-6)
    # the chest window shows the lung parenchyma (-1200..0 HU) that the liver window clips to black
    assert (both[:, 1] > 0.05).mean() > (liver_only[:, 1] > 0.05).mean() + 0.1
