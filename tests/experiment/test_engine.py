"""The cross-validation engine (``experiment.engine``): the same splits, cut-offs per (repeat, fold)
learned on training patients only, fixed scores, fusions and fills, for both tasks."""

from __future__ import annotations

import numpy as np
import pytest

from hccprog.evaluation.groups import learn_cutoffs
from hccprog.evaluation.thresholds import youden_threshold
from hccprog.experiment.engine import FoldPrediction, ResponseTask, SurvivalTask, cross_validate, surv_column
from hccprog.survival.cv import CVConfig, Split


class _Score:
    """A learner that 'trains' by returning a fixed score, recording the training parts it saw."""

    def __init__(self, score: np.ndarray, *, imputed=None, surv: bool = False) -> None:
        self.score, self.seen, self.surv = score, [], surv
        self.imputed = imputed or {}
        self.fusion_indicator = None

    def __call__(self, s: Split, grid: list[float]) -> FoldPrediction:
        self.seen.append((s.repeat, s.fold, tuple(s.train)))
        surv = np.tile(np.linspace(0.9, 0.5, len(grid)), (len(s.test), 1)) if self.surv else None
        return FoldPrediction(self.score[s.train], self.score[s.test], surv,
                              {"p_PD": 1 / (1 + np.exp(-self.score[s.test]))})


@pytest.fixture
def response_task():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    return ResponseTask([f"P{i:02d}" for i in range(40)], y), rng


def test_response_cutoffs_per_repeat_and_fold_on_training_patients(response_task):
    task, rng = response_task
    score = task.labels + rng.normal(0, 1.0, 40)
    learner = _Score(score, imputed={"P03": ["covariate-imputed: afp"]})
    fixed = rng.normal(size=40)
    fixed[5] = np.nan
    res = cross_validate(task, CVConfig(folds=4, repeats=3, seed=2), learners={"m": learner},
                         fixed_scores={"fixed": fixed})
    preds = res.predictions
    # every split of every repeat, the test parts partitioning the patients per repeat
    assert len(learner.seen) == 12 and len(res.splits) == 12
    for r in range(3):
        sub = preds[(preds["model"] == "m") & (preds["repeat"] == r)]
        assert sorted(sub["patient_id"]) == task.ids
    by = {(c["model"], c["repeat"], c["fold"]): c["cutoffs"] for c in res.cutoffs}
    for s in res.splits:  # the cut-off is the Youden threshold of the training part, nothing else
        assert by[("m", s.repeat, s.fold)] == [youden_threshold(task.labels[s.train], score[s.train])]
        rows = preds[(preds["model"] == "m") & (preds["repeat"] == s.repeat) & (preds["fold"] == s.fold)]
        assert sorted(rows["patient_id"]) == sorted(task.ids[i] for i in s.test)
        thr = by[("m", s.repeat, s.fold)][0]
        assert (rows["risk_group"] == (rows["risk"] >= thr).astype(int)).all()
    # a fixed score: first repeat only, fold -1, its cut-offs learned on each training part without NaN
    f = preds[preds["model"] == "fixed"]
    assert (f["fold"] == -1).all() and (f["repeat"] == 0).all() and len(f) == 39 and "P05" not in set(f["patient_id"])
    assert {(r, k) for m, r, k in by if m == "fixed"} == {(0, k) for k in range(4)}
    # the learner's own columns and fills travel to its rows
    m = preds[preds["model"] == "m"]
    assert np.allclose(m["p_PD"], 1 / (1 + np.exp(-m["risk"])))
    assert set(m.loc[m["patient_id"] == "P03", "imputed"]) == {"covariate-imputed: afp"}
    assert set(m.loc[m["patient_id"] != "P03", "imputed"]) == {""}
    assert "surv_1" not in preds.columns and list(preds.columns[:6]) == ["patient_id", "model", "repeat", "fold",
                                                                          "risk", "risk_group"]


def test_response_task_has_no_fusion(response_task):
    task, rng = response_task
    learner = _Score(rng.normal(size=40))
    with pytest.raises(ValueError, match="survival endpoints"):
        cross_validate(task, CVConfig(folds=3), learners={"a": learner, "b": learner}, fusions=[("a", "b", "a+b")])


def test_unknown_fusion_part_is_named(response_task):
    task, _ = response_task
    with pytest.raises(ValueError, match="'nope'"):
        cross_validate(task, CVConfig(folds=3), fusions=[("nope", "x", "f")])


def test_survival_groups_survival_and_fusion():
    rng = np.random.default_rng(1)
    n = 60
    lp = rng.normal(size=n)
    time = rng.exponential(np.exp(-lp)) * 100
    event = (rng.random(n) < 0.7).astype(int)
    task = SurvivalTask([f"S{i}" for i in range(n)], time, event, horizons=[float(np.median(time))])
    a = _Score(lp + rng.normal(0, 0.5, n), imputed={"S1": ["locf: t1"]}, surv=True)
    clin = rng.normal(size=n)
    res = cross_validate(task, CVConfig(folds=3, repeats=2), learners={"a": a}, fixed_scores={"clin": clin},
                         fusions=[("a", "clin", "a+clin")])
    preds = res.predictions
    assert set(preds["model"]) == {"a", "clin", "a+clin"}
    surv_cols = [c for c in preds.columns if c.startswith("surv_")]
    assert surv_cols == [surv_column(g) for g in sorted(task.grid)]
    assert preds.loc[preds["model"] == "a", surv_cols].notna().all().all()
    by = {(c["model"], c["repeat"], c["fold"]): c["cutoffs"] for c in res.cutoffs}
    for s in res.splits:
        assert by[("a", s.repeat, s.fold)] == learn_cutoffs(a.score[s.train], time[s.train], event[s.train],
                                                            method="median", horizon=task.horizons[0])
    fused = preds[preds["model"] == "a+clin"]
    assert len(fused) == 2 * n and set(fused.loc[fused["patient_id"] == "S1", "imputed"]) == {"locf: t1"}
    # the fusion is a bivariate Cox model fitted on the training part: it ranks like the better score
    assert np.corrcoef(fused[fused["repeat"] == 0].sort_values("patient_id")["risk"],
                       lp[np.argsort([f"S{i}" for i in range(n)])])[0, 1] > 0.5
