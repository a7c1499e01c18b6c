"""Baselines on the real HCC-TACE-Seg table (shared data), and the no-leakage check."""

from __future__ import annotations

import numpy as np
import pytest

from hccprog.cohort import load_cohort
from hccprog.evaluation.metrics import survival_metrics
from hccprog.experiment.baselines import BaselinesConfig, run_baselines
from hccprog.experiment.engine import FoldPrediction
from hccprog.survival.cv import CVConfig
from tests.cohort.test_real_hcc_tace_seg import _cohort_file
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def hts(tmp_path_factory):
    shared_data("hcc-tace-seg", "clinical.csv")
    return _cohort_file(tmp_path_factory.mktemp("hts"), "clinical.csv")


def test_hcc_tace_seg_os_fixed_scores_and_cv_models(hts):
    hts = load_cohort(hts).cohort
    cfg = BaselinesConfig(endpoint="os", cv=CVConfig(folds=5, repeats=1), n_boot=200)
    res = run_baselines(hts, cfg)
    preds = res.predictions
    fixed = preds[preds["model"] == "clip"]
    assert (fixed["fold"] == -1).all() and len(fixed) == 105
    cox = preds[preds["model"] == "clinical_cox"]
    assert sorted(cox["fold"].unique()) == [0, 1, 2, 3, 4] and cox["patient_id"].is_unique
    assert not preds.duplicated(["patient_id", "model", "repeat"]).any()
    m = survival_metrics(preds, res.outcomes, horizons=res.horizons, n_boot=200, reference="clinical_cox")
    clip = m["models"]["clip"]["harrell_c"]
    assert clip["value"] == pytest.approx(0.61, abs=0.01)
    assert clip["ci_lower"] < clip["value"] < clip["ci_upper"]
    assert m["models"]["mrecist"]["n"] == 96  # nine patients without response readings
    assert set(res.score_sources) >= {"clip", "bclc", "okuda", "child_pugh", "mrecist"}


@pytest.mark.slow
def test_shuffled_outcomes_give_chance_performance(hts):
    """No leakage: with outcomes permuted, every cross-validated baseline's CI covers 0.5."""
    hts = load_cohort(hts).cohort  # a fresh copy: its outcomes are shuffled in place below
    rng = np.random.default_rng(2024)
    perm = rng.permutation(len(hts.ids))
    ids = hts.ids
    for ep in ("os",):
        original = {i: hts[i].outcomes[ep] for i in ids}
        for i, j in zip(ids, np.asarray(ids)[perm], strict=True):
            hts[i].outcomes[ep] = original[j]
    cfg = BaselinesConfig(endpoint="os", cv=CVConfig(folds=5, repeats=2), n_boot=300)
    res = run_baselines(hts, cfg)
    m = survival_metrics(res.predictions, res.outcomes, horizons=res.horizons, n_boot=300)
    cv_models = [k for k, v in m["models"].items() if v["kind"] == "cross-validated"]
    assert cv_models
    for name in cv_models:
        c = m["models"][name]["harrell_c"]
        assert c["ci_lower"] < 0.5 < c["ci_upper"], (name, c)


class _ScoreLearner:
    """A cross-validated 'learner' that returns a fixed score (noise here), with an optional
    imputed-input indicator for the fusion."""

    def __init__(self, score: np.ndarray, indicator: np.ndarray | None) -> None:
        self.score = score
        self.fusion_indicator = indicator
        self.imputed: dict[str, list[str]] = {}

    def __call__(self, s, grid):
        surv = np.exp(-np.outer(np.exp(self.score[s.test]), np.asarray(grid, float) / 100.0))
        return FoldPrediction(self.score[s.train], self.score[s.test], surv)


def test_fusion_gets_the_learners_indicator(hts):
    hts = load_cohort(hts).cohort
    n = len(hts.ids)
    rng = np.random.default_rng(5)
    score = rng.normal(size=n)
    ind = (np.arange(n) % 3 == 0).astype(float)  # a third of the patients "carried forward"
    cfg = BaselinesConfig(endpoint="os", cv=CVConfig(folds=5, repeats=1), n_boot=0, scores=[])
    fusion = [("img", "clinical_cox", "img+clinical")]
    with_ind = run_baselines(hts, cfg, learners={"img": _ScoreLearner(score, ind)}, extra_fusions=fusion)
    without = run_baselines(hts, cfg, learners={"img": _ScoreLearner(score, None)}, extra_fusions=fusion)
    note = [x for x in with_ind.notes if x.startswith("fusion 'img+clinical'")]
    assert len(note) == 1 and "in 5 of 5 splits" in note[0]
    assert not any(x.startswith("fusion 'img+clinical'") for x in without.notes)
    a = with_ind.predictions.query("model == 'img+clinical'").set_index("patient_id")["risk"]
    b = without.predictions.query("model == 'img+clinical'").set_index("patient_id")["risk"]
    assert len(a) == n and a.index.equals(b.index)
    # the indicator's offset moves the indicated patients' fused risks relative to the others
    shift = (a - b).to_numpy()
    assert np.abs(shift).max() > 1e-3
