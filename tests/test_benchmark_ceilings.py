"""benchmarks/ceilings.py splits each generator's imaging log-hazard into the terms a pre-TACE
scan shows and the change after TACE. Checked against the generators themselves: with the change
coefficient set to zero, a generator's imaging log-hazard must equal the script's pre-TACE term."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from hccprog.synth import SynthConfig, draw_patient
from hccprog.synth import generate as gen

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_hccprog_pre_tace_term_is_the_log_hazard_without_the_change(monkeypatch):
    ceilings = _load("ceilings")
    cfg = SynthConfig(patients=300, seed=3)
    truth = pd.DataFrame([draw_patient(cfg, i).truth for i in range(cfg.patients)])
    terms = ceilings.hccprog_terms(truth)
    np.testing.assert_allclose(terms["true_pre_tace"] + terms["true_change"], truth["log_hazard_os_imaging"],
                               atol=1e-9)
    monkeypatch.setitem(gen.OS_IMAGING, "change", 0.0)
    without = pd.DataFrame([draw_patient(cfg, i).truth for i in range(cfg.patients)])
    np.testing.assert_allclose(terms["true_pre_tace"], without["log_hazard_os_imaging"], atol=1e-9)
    # the change expected from aggressiveness leaves a residual unrelated to aggressiveness
    expected = terms["true_pre_tace_plus_expected_change"] - terms["true_pre_tace"]
    residual = terms["true_change"] - expected
    assert abs(residual.mean()) < 0.1
    assert np.corrcoef(residual, truth["aggressiveness"])[0, 1] ** 2 < 0.02


def test_independent_pre_tace_term_is_the_log_hazard_without_the_change(tmp_path, monkeypatch):
    ceilings = _load("ceilings")
    independent = _load("independent_cohort")
    truth = pd.DataFrame([independent.patient(i, 0, tmp_path / "a")[1] for i in range(4)])
    terms = ceilings.independent_terms(truth)
    monkeypatch.setitem(independent.IMG, "change", 0.0)
    without = pd.DataFrame([independent.patient(i, 0, tmp_path / "b")[1] for i in range(4)])
    np.testing.assert_allclose(terms["true_pre_tace"], without["log_hazard_imaging"], atol=1e-9)
    assert (terms["true_change"].abs() > 0).all()
