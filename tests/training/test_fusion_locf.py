"""Which runs give their fusion a LOCF indicator, and for which patients."""

from __future__ import annotations

import numpy as np

from hccprog.preprocessing.cache import PreprocessedCohort
from hccprog.training.config import resolve_config
from hccprog.training.learners import DeepLearner


def _data(cfg, observed: np.ndarray) -> PreprocessedCohort:
    n, t = observed.shape
    x = np.zeros((n, t, 1, 3, 3, 8, 8), np.float16)
    return PreprocessedCohort([f"P{i}" for i in range(n)], x, observed, np.ones((n, t)), ["NC", "ART", "PV"],
                              cfg.preprocessing)


def test_presets_turn_the_locf_fusion_on_for_crnn_only():
    assert resolve_config("cpu").fusion_locf
    assert not resolve_config("paper").fusion_locf  # the paper's plain bivariate Cox model
    for model in ("dlop", "cldca", "progswin", "dmmgnet"):
        assert not resolve_config("cpu", model=model).fusion_locf


def test_learner_marks_carried_forward_patients(tmp_path):
    cfg = resolve_config("cpu")
    observed = np.array([[True, True], [True, False], [True, True], [True, False]])
    data = _data(cfg, observed)
    ids = ["P3", "P0", "X9", "P1"]  # X9 has no tensors
    learner = DeepLearner(cfg, data, ids, np.ones(4), np.ones(4, int), tmp_path)
    np.testing.assert_array_equal(learner.fusion_indicator, [1.0, 0.0, 0.0, 1.0])
    # Rad-S reads the baseline only: its score does not rest on the carried-forward follow-up
    rad_s = resolve_config("cpu", model="crnn-s")
    assert DeepLearner(rad_s, _data(rad_s, observed), ids, np.ones(4), np.ones(4, int),
                       tmp_path).fusion_indicator is None
    off = resolve_config("cpu", fusion_locf=False)
    assert DeepLearner(off, _data(off, observed), ids, np.ones(4), np.ones(4, int), tmp_path).fusion_indicator is None
