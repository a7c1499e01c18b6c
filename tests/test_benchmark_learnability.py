"""benchmarks/learnability.py: outcomes drawn from one image quantity, covariates that carry nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hccprog.cohort import load_cohort
from hccprog.evaluation.survival import harrell_c
from hccprog.synth import SynthConfig, draw_patient, synthesize

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load():
    spec = importlib.util.spec_from_file_location("learnability", BENCH / "learnability.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_quantities_are_the_generators_own_draws():
    """tumor_ml_baseline is the volume of the drawn tumors; the quantities vary and enter no log-hazard."""
    cfg = SynthConfig(patients=200, seed=4)
    truth = pd.DataFrame([draw_patient(cfg, i).truth for i in range(cfg.patients)])
    assert (truth["tumor_ml_baseline"] >= truth["viable_ml_baseline"] - 1e-9).all()
    np.testing.assert_allclose(truth["viable_ml_baseline"],
                               truth["tumor_ml_baseline"] * (1 - truth["necrotic_fraction"]), rtol=1e-6)
    for col in ("necrotic_fraction", "arterial_enhancement"):
        assert truth[col].std() > 0


def test_the_oracle_orders_the_drawn_outcomes():
    mod = _load()
    rng = np.random.default_rng(0)
    eta = rng.normal(size=2000)
    t, e = mod.draw_outcomes(eta, rng)
    assert 0.55 < e.mean() < 0.95
    assert harrell_c(t, e, eta) > 0.7
    assert abs(harrell_c(t, e, rng.normal(size=2000)) - 0.5) < 0.03


def test_a_learnability_cohort_keeps_the_images_and_permutes_the_covariates(tmp_path):
    mod = _load()
    synthesize(tmp_path / "c", SynthConfig(patients=20, seed=2, workers=1))
    tmp_path = tmp_path / "c"
    truth = mod.learnability_cohort(tmp_path, "volume", ("volume",), beta=1.0, seed=0)
    cohort = load_cohort(tmp_path / "cohort-volume.yaml").cohort
    base = pd.read_csv(tmp_path / "clinical.csv", dtype=str, keep_default_na=False)
    new = pd.read_csv(tmp_path / "clinical-volume.csv", dtype=str, keep_default_na=False)
    assert list(cohort.ids) == list(base["patient_id"]) == list(new["patient_id"])
    # the covariate rows are the base table's rows, reordered (one permutation), so they carry nothing
    cov = [c for c in base.columns if c not in ("patient_id", *mod.OUTCOME_COLUMNS)]
    assert sorted(map(tuple, new[cov].to_numpy())) == sorted(map(tuple, base[cov].to_numpy()))
    assert (new[cov].to_numpy() != base[cov].to_numpy()).any()
    # the log-hazard is the standardised log tumor volume, and the classes are its noisy quartiles
    vol = np.log(pd.read_csv(tmp_path / "truth.csv")["tumor_ml_baseline"].to_numpy())
    np.testing.assert_allclose(truth["eta"], (vol - vol.mean()) / vol.std(), atol=1e-9)
    assert sorted(np.bincount(truth["classes"])) == [5, 5, 5, 5]
    assert new["os_time"].astype(int).tolist() == truth["time"].astype(int).tolist()
    with pytest.raises(KeyError):
        mod.log_hazard(pd.DataFrame({"x": [1.0]}), ("volume",), 1.0)
