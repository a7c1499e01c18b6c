"""Each survival metric against scikit-survival (independent reference, GPL, tests only) to 1e-6,
on the real datasets it ships: veterans lung cancer, GBSG2, WHAS500."""

from __future__ import annotations

import numpy as np
import pytest

try:  # GPL-3.0, tests only: the comparisons skip without it, the other tests run
    from sksurv import metrics as skm
    from sksurv.nonparametric import kaplan_meier_estimator
    from sksurv.util import Surv
except ImportError:  # pragma: no cover
    skm = kaplan_meier_estimator = Surv = None

from hccprog.evaluation import survival as S

TOL = 1e-6


def _surv(d):
    return Surv.from_arrays(d["event"], d["time"])


def test_harrell_matches_sksurv_lifelines_and_torchsurv(dataset):
    t, e, r = dataset["time"], dataset["event"], dataset["risk"]
    ours = S.harrell_c(t, e, r)
    assert abs(ours - skm.concordance_index_censored(e, t, r)[0]) < TOL
    from lifelines.utils import concordance_index

    assert abs(ours - concordance_index(t, -r, e)) < TOL
    import torch
    from torchsurv.metrics.cindex import ConcordanceIndex

    ts = ConcordanceIndex()(torch.tensor(r), torch.tensor(e), torch.tensor(t))
    assert abs(ours - float(ts)) < TOL


def test_harrell_with_tied_risks(dataset):
    t, e = dataset["time"], dataset["event"]
    r = np.round(dataset["risk"], 0)  # many ties
    assert abs(S.harrell_c(t, e, r) - skm.concordance_index_censored(e, t, r)[0]) < TOL


@pytest.mark.parametrize("quantile", [None, 50, 80])
def test_uno_matches_sksurv(dataset, quantile):
    t, e, r = dataset["time"], dataset["event"], dataset["risk"]
    tau = None if quantile is None else float(np.percentile(t, quantile))
    ref = skm.concordance_index_ipcw(_surv(dataset), _surv(dataset), r, tau=tau)[0]
    assert abs(S.uno_c(t, e, r, tau=tau) - ref) < TOL


def test_uno_with_separate_training_censoring(dataset):
    t, e, r = dataset["time"], dataset["event"], dataset["risk"]
    half = len(t) // 2
    ys = _surv(dataset)
    tau = float(np.percentile(t, 60))
    ref = skm.concordance_index_ipcw(ys, ys[half:][t[half:] < tau], r[half:][t[half:] < tau], tau=tau)[0]
    ours = S.uno_c(t[half:][t[half:] < tau], e[half:][t[half:] < tau], r[half:][t[half:] < tau], tau=tau,
                   train_time=t, train_event=e)
    assert abs(ours - ref) < TOL


def test_cumulative_dynamic_auc_matches_sksurv(dataset):
    t, e, r = dataset["time"], dataset["event"], dataset["risk"]
    times = np.percentile(t[e], [20, 40, 60, 75])
    ref, ref_mean = skm.cumulative_dynamic_auc(_surv(dataset), _surv(dataset), r, times)
    ours, mean = S.cumulative_dynamic_auc(t, e, r, times)
    np.testing.assert_allclose(ours, ref, atol=TOL)
    assert abs(mean - ref_mean) < TOL


def test_time_dependent_risk_auc_matches_sksurv(dataset):
    t, e = dataset["time"], dataset["event"]
    times = np.percentile(t[e], [25, 50, 75])
    surv = dataset["cph"].predict_survival_function(dataset["X"], times=times).to_numpy().T
    ref, _ = skm.cumulative_dynamic_auc(_surv(dataset), _surv(dataset), 1 - surv, times)
    ours, _ = S.cumulative_dynamic_auc(t, e, 1 - surv, times)
    np.testing.assert_allclose(ours, ref, atol=TOL)


def test_brier_and_integrated_brier_match_sksurv(dataset):
    t, e = dataset["time"], dataset["event"]
    times = np.percentile(t[e], np.linspace(10, 80, 12))
    surv = dataset["cph"].predict_survival_function(dataset["X"], times=times).to_numpy().T
    _, ref = skm.brier_score(_surv(dataset), _surv(dataset), surv, times)
    np.testing.assert_allclose(S.brier_score(t, e, surv, times), ref, atol=TOL)
    ref_ibs = skm.integrated_brier_score(_surv(dataset), _surv(dataset), surv, times)
    assert abs(S.integrated_brier_score(t, e, surv, times) - ref_ibs) < TOL


def test_kaplan_meier_and_censoring_match_sksurv(dataset):
    t, e = dataset["time"], dataset["event"]
    times, surv = kaplan_meier_estimator(e, t)
    np.testing.assert_allclose(S.kaplan_meier(t, e)(times), surv, atol=TOL)
    times_c, cens = kaplan_meier_estimator(e, t, reverse=True)
    np.testing.assert_allclose(S.censoring_survival(t, e)(times_c), cens, atol=TOL)


def test_roc_curve_area_equals_auc(dataset):
    t, e, r = dataset["time"], dataset["event"], dataset["risk"]
    h = float(np.percentile(t[e], 50))
    fpr, tpr = S.cumulative_dynamic_roc(t, e, r, h)
    assert fpr[0] == 0 and tpr[0] == 0 and abs(fpr[-1] - 1) < 1e-12 and abs(tpr[-1] - 1) < 1e-12
    auc = S.cumulative_dynamic_auc(t, e, r, [h])[0][0]
    assert abs(np.trapezoid(tpr, fpr) - auc) < TOL


def test_perfect_and_reversed_risk():
    t = np.arange(1.0, 21.0)
    e = np.ones(20, bool)
    assert S.harrell_c(t, e, -t) == 1.0
    assert S.harrell_c(t, e, t) == 0.0
    assert S.harrell_c(t, e, np.zeros(20)) == 0.5


def test_bad_input_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        S.harrell_c([1, 2], [1], [0.1, 0.2])
    with pytest.raises(ValueError, match="time: negative"):
        S.harrell_c([-1, 2], [1, 1], [0.1, 0.2])


@pytest.mark.parametrize("metric", ["harrell", "uno", "auc", "roc", "brier"])
@pytest.mark.parametrize("case", ["event-2", "event-0.3", "nan-risk", "inf-time", "nan-time", "short-risk",
                                  "negative-time"])
def test_every_metric_validates_its_inputs(metric, case):
    """As torchsurv does: an event outside {0, 1}, NaN or infinite risks or times, negative times, or
    lengths that differ raise a ValueError naming the argument (one NaN risk used to move C to 0.5)."""
    t = np.array([5.0, 8.0, 3.0, 9.0, 4.0, 7.0])
    e = np.array([1, 0, 1, 1, 0, 1], float)
    r = np.array([0.2, -0.1, 0.9, -0.5, 0.4, 0.0])
    named = {"event-2": "event", "event-0.3": "event", "nan-risk": "risk", "inf-time": "time", "nan-time": "time",
             "short-risk": "risk", "negative-time": "time"}[case]
    if case == "event-2":
        e[0] = 2
    elif case == "event-0.3":
        e[1] = 0.3
    elif case == "nan-risk":
        r[2] = np.nan
    elif case == "inf-time":
        t[3] = np.inf
    elif case == "nan-time":
        t[3] = np.nan
    elif case == "short-risk":
        r = r[:-1]
    else:
        t[0] = -1.0
    call = {"harrell": lambda: S.harrell_c(t, e, r), "uno": lambda: S.uno_c(t, e, r),
            "auc": lambda: S.cumulative_dynamic_auc(t, e, r, [6.0]),
            "roc": lambda: S.cumulative_dynamic_roc(t, e, r, 6.0),
            "brier": lambda: S.brier_score(t, e, 1 / (1 + np.exp(r)) if metric == "brier" else r, [6.0])}[metric]
    if metric == "brier" and named == "risk":
        named = "survival"
    with pytest.raises(ValueError, match=f"^{named}"):
        call()


def test_boolean_events_are_accepted():
    t = np.array([1.0, 2.0, 3.0])
    assert S.harrell_c(t, np.array([True, False, True]), -t) == 1.0
