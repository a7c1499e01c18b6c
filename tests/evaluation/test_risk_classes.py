"""Ordered risk classes from the time to event, and their metrics."""

from __future__ import annotations

import numpy as np
import pytest

from hccprog.evaluation.classification import risk_class_labels, risk_class_metrics


def test_labels_follow_the_documented_rule():
    edges = [12.0, 24.0, 36.0]
    time = np.array([3, 12, 20, 30, 36, 50, 10, 40, 35.9])
    event = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0])
    #                 worst  edge  mid  late  at-threshold  late-event  censored<36  censored>=36  censored<36
    assert risk_class_labels(time, event, edges).tolist() == [3, 2, 2, 1, 0, 0, -1, 0, -1]


def test_two_classes_is_the_os_threshold_dichotomy():
    labels = risk_class_labels(np.array([10, 40, 20]), np.array([1, 1, 0]), [36.0])
    assert labels.tolist() == [1, 0, -1]


def test_metrics_of_perfect_and_of_uninformative_probabilities():
    rng = np.random.default_rng(0)
    n = 200
    time = rng.uniform(1, 60, n)
    event = rng.uniform(size=n) < 0.7
    y = risk_class_labels(time, event, [12.0, 24.0, 36.0])
    perfect = np.eye(4)[np.where(y >= 0, y, 0)]
    res = risk_class_metrics(y, perfect, time, event, n_boot=100, seed=0)
    assert res["accuracy"]["value"] == 1 and res["auc_ovr_macro"]["value"] == 1
    assert res["n_known"] + res["n_unknown"] == n and res["n_unknown"] == int((y < 0).sum())
    conf = np.array(res["confusion"])
    assert conf.trace() == conf.sum() == res["n_known"]
    assert res["logrank_predicted"]["p_value"] < 1e-6  # predicted classes separate the curves
    flat = np.full((n, 4), 0.25) + rng.normal(0, 1e-3, (n, 4))
    res = risk_class_metrics(y, flat, time, event, n_boot=100, seed=0)
    lo, hi = res["auc_ovr_macro"]["ci_lower"], res["auc_ovr_macro"]["ci_upper"]
    assert abs(res["auc_ovr_macro"]["value"] - 0.5) < 0.1 and lo < 0.5 < hi
    assert res["accuracy"]["ci_lower"] <= res["accuracy"]["value"] <= res["accuracy"]["ci_upper"]
    assert pytest.approx(sum(res["predicted_counts"].values())) == n
