"""Synthetic cohorts: determinism, contract conformance, image content and the truth."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index

from hccprog.cohort import load_cohort
from hccprog.synth import SynthConfig, draw_patient, synthesize, tree_digest

SMALL = dict(patients=3, shape=(32, 32, 16), spacing=(12.0, 12.0, 15.0), workers=1)


def test_same_seed_same_bytes(tmp_path):
    a = synthesize(tmp_path / "a", SynthConfig(seed=7, **SMALL))
    b = synthesize(tmp_path / "b", SynthConfig(seed=7, **{**SMALL, "workers": 2}))
    c = synthesize(tmp_path / "c", SynthConfig(seed=8, **SMALL))
    assert tree_digest(a) == tree_digest(b)
    assert tree_digest(a) != tree_digest(c)


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "precious.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        synthesize(tmp_path / "x", SynthConfig(**SMALL), overwrite=True)
    assert (tmp_path / "x" / "precious.txt").read_text() == "keep"


@pytest.mark.parametrize("modality", ["ct", "mri"])
def test_written_cohort_conforms(tmp_path, modality):
    out = synthesize(tmp_path / "c", SynthConfig(modality=modality, followups=2, **SMALL))
    result = load_cohort(out / "cohort.yaml")
    assert result.ok, [str(i) for i in result.report.errors]
    cohort = result.cohort
    assert len(cohort) == 3
    p = next(iter(cohort))
    assert [t.label for t in p.timepoints] == ["baseline", "fu1", "fu2"]
    expected = {"ct": {"CT_NC", "CT_ART", "CT_PV"}, "mri": {"MR_T2", "MR_ART", "MR_PV"}}[modality]
    assert set(p.timepoints[0].series) == expected
    truth = pd.read_csv(out / "truth.csv")
    assert list(truth.patient_id) == cohort.ids
    np.testing.assert_allclose(truth.log_hazard_os,
                               truth.log_hazard_os_imaging + truth.log_hazard_os_clinical, atol=1e-5)


def test_images_show_the_tumor(tmp_path):
    cfg = SynthConfig(patients=4, seed=11, shape=(64, 64, 32), spacing=(6.0, 6.0, 7.5), workers=1)
    out = synthesize(tmp_path / "c", cfg)
    truth = pd.read_csv(out / "truth.csv").set_index("patient_id")
    for pid in truth.index:
        mask = np.asanyarray(nib.load(out / f"images/{pid}/baseline_mask.nii.gz").dataobj)
        art = np.asanyarray(nib.load(out / f"images/{pid}/baseline_CT_ART.nii.gz").dataobj).astype(float)
        pv = np.asanyarray(nib.load(out / f"images/{pid}/baseline_CT_PV.nii.gz").dataobj).astype(float)
        liver, tumor = mask == 1, mask == 2
        assert tumor.sum() > 0 and liver.sum() > 10 * tumor.sum() / 10
        # viable tumor: the brightest tumor voxels in ART exceed liver (hyper-enhancement),
        # and in PV tumor falls below liver (washout); necrosis is dark in both
        assert np.percentile(art[tumor], 90) > np.median(art[liver]) + 20
        assert np.median(pv[tumor]) < np.median(pv[liver])
        # mask volume tracks the drawn tumors (voxels of 6x6x7.5 mm)
        ml = tumor.sum() * 6 * 6 * 7.5 / 1000
        assert ml > 0.3 * truth.loc[pid, "viable_ml_baseline"]
        # follow-up CT after TACE shows lipiodol where the tumor was treated
        fu_mask = np.asanyarray(nib.load(out / f"images/{pid}/fu1_mask.nii.gz").dataobj)
        fu_nc = np.asanyarray(nib.load(out / f"images/{pid}/fu1_CT_NC.nii.gz").dataobj).astype(float)
        if truth.loc[pid, "viable_log_change"] < -0.5:
            assert fu_nc[fu_mask == 2].max() > 300


def test_truth_risk_parts_are_informative():
    cfg = SynthConfig(patients=400, seed=0)
    draws = [draw_patient(cfg, i) for i in range(cfg.patients)]
    clin = pd.DataFrame([d.clinical for d in draws])
    truth = pd.DataFrame([d.truth for d in draws])

    def cindex(score):
        return concordance_index(clin.os_time, -score, clin.os_event)

    oracle = cindex(truth.log_hazard_os)
    imaging = cindex(truth.log_hazard_os_imaging)
    clinical = cindex(truth.log_hazard_os_clinical)
    assert oracle > imaging > 0.65 and oracle > clinical > 0.55
    assert 0.5 < clin.os_event.mean() < 0.9
    assert set(clin.response) == {"CR", "PR", "SD", "PD"}
    # imaging part is not a function of the clinical columns alone: AFP correlates weakly
    log_afp = np.log(clin.afp.fillna(clin.afp.median()))
    assert abs(np.corrcoef(log_afp, truth.log_hazard_os_imaging)[0, 1]) < 0.5
