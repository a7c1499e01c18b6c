"""The cross-validation protocol: disjoint, covering, stratified, seeded folds."""

from __future__ import annotations

import numpy as np
import pytest

from hccprog.survival.cv import CVConfig, folds_frame, inner_splits, make_splits


def test_folds_partition_each_repeat_and_are_stratified():
    rng = np.random.default_rng(0)
    strata = (rng.random(103) < 0.3).astype(int)
    cfg = CVConfig(folds=5, repeats=3, seed=11)
    splits = make_splits(103, strata, cfg)
    assert len(splits) == 15
    for r in range(3):
        tests = np.concatenate([s.test for s in splits if s.repeat == r])
        assert sorted(tests) == list(range(103))
        for s in (s for s in splits if s.repeat == r):
            assert not set(s.train) & set(s.test)
            assert abs(strata[s.test].mean() - strata.mean()) < 0.06
    assert {s.seed for s in splits} == {11, 12, 13}
    first = [tuple(s.test) for s in splits if s.repeat == 0]
    second = [tuple(s.test) for s in splits if s.repeat == 1]
    assert first != second
    again = make_splits(103, strata, cfg)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(splits, again, strict=True))


def test_folds_frame_records_fold_and_seed():
    ids = [f"P{i}" for i in range(20)]
    frame = folds_frame(ids, make_splits(20, None, CVConfig(folds=4, repeats=2, seed=3)))
    assert len(frame) == 40 and set(frame["fold"]) == {0, 1, 2, 3}
    assert frame.groupby("repeat")["patient_id"].nunique().tolist() == [20, 20]


def test_inner_splits_stay_inside_training_part():
    strata = np.array([0, 1] * 15)
    for tr, va in inner_splits(30, strata, 3, 0):
        assert len(set(tr) | set(va)) == 30 and not set(tr) & set(va)


def test_too_few_patients():
    with pytest.raises(ValueError, match="cannot be split"):
        make_splits(3, None, CVConfig(folds=5))
