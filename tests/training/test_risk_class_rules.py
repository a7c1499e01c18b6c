"""The risk-class rules: Yao et al.'s OS x expert severity classes from the clinical table, hccprog's
OS-edge rule, the class order, and errors that name the file, row and column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from hccprog.cohort import load_cohort
from hccprog.errors import InputError
from hccprog.evaluation.classification import os_severity_labels, per_class_metrics, risk_class_metrics
from hccprog.training.config import resolve_config
from hccprog.training.run import risk_class_targets, severity_from_column


def _with_column(cohort_dir, values):
    spec = yaml.safe_load((cohort_dir / "cohort.yaml").read_text())
    path = cohort_dir / spec["clinical"]
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table["imaging_severity"] = values[: len(table)]
    table.to_csv(path, index=False)
    return load_cohort(cohort_dir / "cohort.yaml").cohort


def test_os_severity_rule_reads_the_table_and_orders_worst_first(tiny_cohort):
    cohort = _with_column(tiny_cohort, ["1", "0", "severe", "mild", "", "1"])
    ids = list(cohort.ids)
    sev = severity_from_column(cohort, ids, "imaging_severity")
    assert np.isnan(sev[4]) and sev[[0, 1, 2, 3, 5]].tolist() == [1, 0, 1, 0, 1]
    cfg = resolve_config("paper", model="progswin")
    obj = cfg.objective("months")
    t = np.array([10.0, 20.0, 40.0, 50.0, 30.0, 30.0])
    e = np.array([1, 1, 1, 0, 1, 0])  # the last: censored before 36 months, unknown
    labels, from_table = risk_class_targets(cohort, ids, t, e, obj, cfg.objective_params)
    assert from_table and labels.tolist() == [0, 1, 2, 3, -1, -1]  # class 0 = short survival and severe
    later = resolve_config("paper", model="progswin", objective_params={"class_order": "worst-last"})
    back, _ = risk_class_targets(cohort, ids, t, e, later.objective("months"), later.objective_params)
    assert back.tolist() == [3, 2, 1, 0, -1, -1]
    # the OS-edge rule needs no table
    edges = resolve_config("cpu", model="progswin")
    got, from_table = risk_class_targets(cohort, ids, t, e, edges.objective("months"), edges.objective_params)
    assert not from_table and got.tolist() == [3, 2, 0, 0, 1, -1]


def test_severity_errors_name_file_row_and_column(tiny_cohort):
    cohort = _with_column(tiny_cohort, ["1", "0", "maybe", "0", "1", "1"])
    with pytest.raises(InputError, match=r"row 4, column 'imaging_severity': 'maybe' is not a severity read"):
        severity_from_column(cohort, list(cohort.ids), "imaging_severity")
    with pytest.raises(InputError, match="no column 'radiologist'") as info:
        severity_from_column(cohort, list(cohort.ids), "radiologist")
    assert "class_rule: os-edges" in str(info.value.hint)


def test_os_severity_labels_censoring_and_threshold():
    # an event exactly at the threshold counts as long survival; censored after it too
    got = os_severity_labels([36, 37, 35, 35], [1, 0, 0, 1], [0, 1, 1, 0], 36.0)
    assert got.tolist() == [3, 2, -1, 1]


def test_per_class_auc_with_ci_and_specificity():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2, 3], 25)
    logits = rng.normal(size=(100, 4))
    logits[np.arange(100), y] += 2.0
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    per = per_class_metrics(y, p, [0, 1, 2, 3])
    pred = p.argmax(axis=1)
    for k in range(4):
        c = per[str(k)]
        assert c["auc"]["ci_lower"] < c["auc"]["value"] < c["auc"]["ci_upper"]
        tn = int(((pred != k) & (y != k)).sum())
        assert c["specificity"] == pytest.approx(tn / int((y != k).sum()))
        assert c["sensitivity"] == pytest.approx(((pred == k) & (y == k)).sum() / 25)
    res = risk_class_metrics(y, p, np.full(100, 10.0), np.ones(100), n_boot=20)
    assert res["per_class"]["2"]["auc"]["method"] == "DeLong"
