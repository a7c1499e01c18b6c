"""Risk groups, log-rank, hazard ratios, classification metrics, DeLong, calibration, DCA, bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

try:  # GPL-3.0, tests only: the comparisons skip without it, the other tests run
    from sksurv.compare import compare_survival
    from sksurv.util import Surv
except ImportError:  # pragma: no cover
    compare_survival = Surv = None

from hccprog.evaluation import classification as C
from hccprog.evaluation import groups as G
from hccprog.evaluation.bootstrap import bootstrap_ci, bootstrap_indices, paired_bootstrap_difference
from hccprog.evaluation.calibration import calibration_table, decision_curve
from hccprog.evaluation.survival import harrell_c


def test_logrank_matches_sksurv(dataset):
    t, e, r = dataset["time"], dataset["event"], dataset["risk"]
    for cut in (G.learn_cutoffs(r, method="median"), G.learn_cutoffs(r, method="tertiles")):
        g = G.assign_groups(r, cut)
        chi2, p = compare_survival(Surv.from_arrays(e, t), g)
        ours = G.logrank(t, e, g)
        assert abs(ours["chi2"] - chi2) < 1e-6 and abs(ours["p_value"] - p) < 1e-6
        assert ours["df"] == len(cut)


def test_hazard_ratio_direction_and_ci(dataset):
    t, e, r = dataset["time"], dataset["event"], dataset["risk"]
    g = G.assign_groups(r, G.learn_cutoffs(r))
    hr = G.hazard_ratio(t, e, g, name="high")
    assert hr["hr"] > 1 and hr["ci_lower"] < hr["hr"] < hr["ci_upper"] and hr["p_value"] < 0.05


def test_youden_cutoff_maximises_j():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = y + rng.normal(0, 1, 300)
    thr = C.youden_threshold(y, s)
    j = lambda c: np.mean(s[y == 1] >= c) - np.mean(s[y == 0] >= c)  # noqa: E731
    assert all(j(thr) >= j(c) - 1e-12 for c in np.unique(s))


def test_youden_cutoff_at_horizon_uses_known_status_only():
    t = np.array([1, 2, 3, 10, 11, 12, 2.5, 0.5], float)
    e = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)  # the last two are censored before horizon 5: unknown
    r = np.array([5, 6, 7, 1, 2, 3, 100, -100], float)
    cut = G.learn_cutoffs(r, t, e, method="youden", horizon=5)
    assert 3 < cut[0] <= 5


def test_binary_and_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    s = y * 0.8 + rng.normal(0, 1, 200)
    m = C.binary_metrics(y, s, 0.4)
    assert abs(m["auc"] - roc_auc_score(y, s)) < 1e-12
    pred = s >= 0.4
    assert abs(m["recall"] - np.mean(pred[y == 1])) < 1e-12
    assert abs(m["specificity"] - np.mean(~pred[y == 0])) < 1e-12
    assert abs(m["npv"] - np.mean(y[~pred] == 0)) < 1e-12  # negative predictive value (DLOP reports it)
    assert abs(m["precision"] - np.mean(y[pred] == 1)) < 1e-12
    assert np.isnan(C.binary_metrics([0, 1, 1], [0.9, 0.8, 0.7], 0.5)["npv"])  # nobody called negative
    classes = ["CR", "PR", "SD", "PD"]
    yc = np.asarray(classes)[rng.integers(0, 4, 200)]
    p = rng.dirichlet(np.ones(4), 200)
    mm = C.multiclass_metrics(yc, p, classes)
    for k, c in enumerate(classes):
        assert abs(mm["auc_ovr"][c] - roc_auc_score(yc == c, p[:, k])) < 1e-12
    order = np.argsort(classes)  # sklearn wants sorted labels
    ref = roc_auc_score(yc, p[:, order], multi_class="ovr", labels=list(np.asarray(classes)[order]))
    assert abs(mm["auc_ovr_macro"] - ref) < 1e-12


def _delong_midrank_reference(y, a, b):
    """Sun & Xu (2014) fast DeLong via mid-ranks: an independent formulation."""
    from scipy.stats import rankdata

    y = np.asarray(y, bool)
    m, n = y.sum(), (~y).sum()
    out = []
    for s in (a, b):
        tx = rankdata(s[y])
        ty = rankdata(s[~y])
        tz = rankdata(np.r_[s[y], s[~y]])
        auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
        v01 = (tz[:m] - tx) / n
        v10 = 1 - (tz[m:] - ty) / m
        out.append((auc, v01, v10))
    sx = np.cov(np.vstack([out[0][1], out[1][1]]))
    sy = np.cov(np.vstack([out[0][2], out[1][2]]))
    cov = sx / m + sy / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    return out[0][0], out[1][0], (out[0][0] - out[1][0]) / np.sqrt(var)


def test_delong_matches_midrank_formulation():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 150).astype(bool)
    a = y * 1.0 + rng.normal(0, 1, 150)
    b = np.round(y * 0.5 + rng.normal(0, 1, 150), 1)  # ties
    res = C.delong_test(y, a, b)
    auc_a, auc_b, z = _delong_midrank_reference(y, a, b)
    assert abs(res["auc_a"] - auc_a) < 1e-10 and abs(res["auc_b"] - auc_b) < 1e-10
    assert abs(res["z"] - z) < 1e-8
    assert abs(res["auc_a"] - roc_auc_score(y, a)) < 1e-12
    assert 0 < res["p_value"] < 1
    auc, lo, hi = C.delong_auc_ci(y, a)
    assert lo < auc < hi


def test_bootstrap_ci_is_seeded_and_covers_estimate(dataset):
    t, e, r = dataset["time"], dataset["event"], dataset["risk"]

    def stat(ix):
        return harrell_c(t[ix], e[ix], r[ix])

    a = bootstrap_ci(stat, len(t), n_boot=200, seed=7)
    b = bootstrap_ci(stat, len(t), n_boot=200, seed=7)
    assert a == b and a.lower < a.value < a.upper
    strata = e.astype(int)
    ix = bootstrap_indices(len(t), 5, 0, strata)
    assert all(e[row].sum() == e.sum() for row in ix)  # stratified: event count preserved
    diff, p = paired_bootstrap_difference(stat, lambda ix: harrell_c(t[ix], e[ix], -r[ix]), len(t), n_boot=200)
    assert diff.lower > 0 and p < 0.05


def test_calibration_of_a_calibrated_model(dataset):
    t, e = dataset["time"], dataset["event"]
    h = float(np.percentile(t[e], 50))
    s = dataset["cph"].predict_survival_function(dataset["X"], times=[h]).to_numpy().ravel()
    tab = calibration_table(t, e, s, h)
    assert len(tab) == 4 and tab["n"].sum() == len(t)
    # an in-sample Cox model is close to calibrated: every group within 0.15
    assert np.all(np.abs(tab["predicted"] - tab["observed"]) < 0.15)
    dca = decision_curve(t, e, 1 - s, h, thresholds=[0.1, 0.3, 0.5])
    # a useful model is at least as good as treating all or none at every threshold
    assert np.all(dca["net_benefit"] >= np.maximum(dca["treat_all"], 0) - 0.01)
    assert dca["net_benefit"].iloc[0] > 0


@pytest.mark.parametrize("method", ["median", "tertiles"])
def test_groups_count(method):
    r = np.arange(30.0)
    g = G.assign_groups(r, G.learn_cutoffs(r, method=method))
    assert len(np.unique(g)) == (2 if method == "median" else 3)


def test_hazard_ratio_that_does_not_converge_is_nan_not_an_error(monkeypatch):
    """lifelines raises ConvergenceError ('delta contains nan') on some separated small folds;
    the run must go on with a non-estimable HR rather than stop."""
    from lifelines.exceptions import ConvergenceError

    class Failing:
        def fit(self, *args, **kwargs):
            raise ConvergenceError("delta contains nan value(s)")

    monkeypatch.setattr(G, "CoxPHFitter", Failing)
    t = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    e = np.array([1, 1, 1, 0, 0, 1])
    hr = G.hazard_ratio(t, e, np.array([1, 1, 1, 0, 0, 0]), name="high")
    assert all(np.isnan(v) for v in hr.values())


def test_no_import_cycle_between_classification_and_groups():
    """groups (risk groups) and classification (metrics) share the Youden cut-off through their own
    module; groups never imports classification."""
    from pathlib import Path

    import hccprog.evaluation.groups as groups_module

    text = Path(groups_module.__file__).read_text()
    assert "evaluation.classification" not in text and "from hccprog.evaluation import classification" not in text
    assert C.youden_threshold is G.youden_threshold


@pytest.mark.parametrize(("counts", "method", "groups"), [
    ({1: 9, 2: 26, 3: 1}, "median", [9, 27]),  # ALBI grades: the median (2) left 35 / 1
    ({1: 9, 2: 9, 3: 22}, "median", [18, 22]),  # BCLC A/B/C: the median (C) left everybody low
    ({1: 9, 2: 9, 3: 22}, "tertiles", [9, 9, 22]),
    ({0: 12, 1: 14, 2: 5, 3: 1}, "median", [12, 20]),
    ({0: 30, 1: 10}, "tertiles", [30, 10]),  # two classes: one cut-off
])
def test_discrete_scores_split_between_their_own_classes(counts, method, groups):
    risk = np.concatenate([np.full(n, float(v)) for v, n in counts.items()])
    cut = G.learn_cutoffs(risk, method=method)
    assert set(cut) <= set(counts)  # cut-offs are class values: a patient at one is in the lower group
    assert np.bincount(G.assign_groups(risk, cut)).tolist() == groups


def test_degenerate_splits_are_flagged():
    share, degenerate = G.group_shares(np.r_[np.zeros(159, int), 1])
    assert share == pytest.approx(1 / 160) and degenerate
    assert G.group_shares(np.r_[np.zeros(80, int), np.ones(80, int)]) == (0.5, False)
    assert G.group_shares(np.zeros(10, int))[1]  # one empty group
    assert not G.group_shares(np.r_[np.zeros(9, int), np.ones(81, int)])[1]  # 10 % exactly is not degenerate
