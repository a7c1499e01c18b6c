"""The radiomics pipeline's reduction steps against independent computations, and its behaviour on
signal and on shuffled outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccprog.models.radiomics import (
    RadiomicsModelConfig,
    RadiomicsPipeline,
    cluster_representatives,
    cox_score_z,
    icc_1_1,
)
from hccprog.survival.protocols import RiskScorer


def _score_z_loop(x, time, event):
    """The Cox score test at beta = 0 (Breslow ties), one patient at a time."""
    u = info = 0.0
    for i in np.flatnonzero(event):
        at_risk = time >= time[i]
        m = x[at_risk].mean()
        u += x[i] - m
        info += ((x[at_risk] - m) ** 2).mean()
    return u / np.sqrt(info)


def test_cox_score_z_matches_a_loop_with_ties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 4))
    time = np.round(rng.exponential(np.exp(-x[:, 0])) * 5)  # many ties
    event = (rng.random(70) < 0.7).astype(int)
    z = cox_score_z(x, time, event)
    assert z == pytest.approx([_score_z_loop(x[:, j], time, event) for j in range(4)], rel=1e-9)
    assert z[0] > 3  # the column that drives the hazard


def test_icc_1_1_by_hand():
    # 3 subjects x 2 raters: MSB = 2 * var(means) with ddof 1, MSW = within-subject mean square
    r = np.array([[[1.0], [2.0], [3.0]], [[1.5], [2.5], [2.5]]])
    means = r.mean(axis=0)[:, 0]
    msb = 2 * np.var(means, ddof=1)
    msw = ((r[:, :, 0] - means) ** 2).sum() / 3
    assert icc_1_1(r)[0] == pytest.approx((msb - msw) / (msb + msw))


def test_cluster_representatives_keep_the_strongest_of_a_cluster():
    rng = np.random.default_rng(1)
    a = rng.normal(size=100)
    x = np.column_stack([a, a + rng.normal(0, 0.01, 100), rng.normal(size=100)])
    assert cluster_representatives(x, np.array([1.0, 2.0, 0.5]), 0.9, 10) == [1, 2]
    assert cluster_representatives(x, np.array([1.0, 2.0, 0.5]), 0.9, 1) == [1]


def _frame(n: int, p: int, seed: int):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"t0|CT|tumor|f{j}" for j in range(p)])
    X["t0|CT|tumor|f1"] = X["t0|CT|tumor|f0"] * 0.99 + rng.normal(0, 0.05, n)  # a near copy
    X["t0|CT|tumor|const"] = 1.0
    return X, rng


@pytest.mark.parametrize("learner", ["lasso", "xgb"])
def test_survival_pipeline_finds_the_signal(learner):
    X, rng = _frame(150, 30, 2)
    lp = 1.2 * X["t0|CT|tumor|f0"].to_numpy() - 0.8 * X["t0|CT|tumor|f5"].to_numpy()
    time = rng.exponential(np.exp(-lp)) * 100
    event = (rng.random(150) < 0.8).astype(int)
    cfg = RadiomicsModelConfig(learner=learner, trees=100, icc_min=0)
    pipe = RadiomicsPipeline(cfg, "survival").fit(X, time, event)
    assert "t0|CT|tumor|const" not in pipe.selected_
    assert len({"t0|CT|tumor|f0", "t0|CT|tumor|f1"} & set(pipe.selected_)) == 1  # one of the two near copies
    assert "t0|CT|tumor|f5" in pipe.selected_
    assert np.corrcoef(pipe.predict_risk(X), lp)[0, 1] > 0.6
    assert list(pipe.steps_) == ["extracted", "after missing and near-zero variance", "after stability (ICC)",
                                 "after univariate screening", "after correlation clustering"]


def test_unstable_features_are_dropped():
    X, rng = _frame(80, 6, 3)
    noisy = X + rng.normal(0, 0.01, X.shape)
    noisy["t0|CT|tumor|f2"] = rng.normal(size=80)  # unrelated under the perturbed masks
    time = rng.exponential(1, 80)
    event = np.ones(80, int)
    pipe = RadiomicsPipeline(RadiomicsModelConfig(screen_p=1.0, icc_min=0.75), "survival")
    pipe.fit(X, time, event, perturbed=[noisy, noisy])
    assert pipe.steps_["after stability (ICC)"] == pipe.steps_["after missing and near-zero variance"] - 1
    assert "t0|CT|tumor|f2" not in pipe.selected_


@pytest.mark.parametrize("learner", ["lasso", "logistic", "nb", "rf", "svm", "dt", "xgb"])
def test_response_classifiers(learner):
    X, rng = _frame(120, 10, 4)
    y = (X["t0|CT|tumor|f3"].to_numpy() + rng.normal(0, 0.7, 120) > 0).astype(int)
    pipe = RadiomicsPipeline(RadiomicsModelConfig(learner=learner, trees=50, icc_min=0), "response", seed=1)
    risk = pipe.fit(X, np.ones(120), y).predict_risk(X)
    from sklearn.metrics import roc_auc_score

    assert np.all(np.isfinite(risk)) and roc_auc_score(y, risk) > 0.7


def test_a_classifier_is_no_survival_model():
    with pytest.raises(ValueError, match="--endpoint response"):
        RadiomicsPipeline(RadiomicsModelConfig(learner="nb"), "survival")


@pytest.mark.slow
def test_shuffled_outcomes_give_chance_c(tmp_path):
    """Radiomics cross-validated on outcomes shuffled across patients: no C-index beyond chance."""
    from hccprog.cohort import load_cohort
    from hccprog.evaluation.survival import harrell_c
    from hccprog.experiment.engine import SurvivalTask, cross_validate
    from hccprog.models.registry import get_model
    from hccprog.survival.cv import CVConfig
    from hccprog.synth import SynthConfig, synthesize
    from hccprog.training.config import resolve_config
    from hccprog.training.features import FeatureLearner, prepare_features

    synthesize(tmp_path / "c", SynthConfig(patients=100, seed=21, shape=(32, 32, 16), spacing=(12.0, 12.0, 15.0),
                                           workers=2))
    cohort = load_cohort(tmp_path / "c" / "cohort.yaml").cohort
    out = cohort.outcomes("os")
    ids = list(out.index)
    cfg = resolve_config("tiny", model="delta-radiomics-cox")
    features = prepare_features(cohort, cfg.preprocessing, ids, cache_dir=tmp_path / "cache")
    cs = []
    for shuffle in range(3):
        perm = np.random.default_rng(100 + shuffle).permutation(len(ids))
        t, e = out["time"].to_numpy(float)[perm], out["event"].to_numpy(int)[perm]
        learner = FeatureLearner(get_model(cfg.model), cfg.network_config(), features, ids, t, e, task="survival")
        task = SurvivalTask(ids, t, e, horizons=[float(np.median(t))])
        res = cross_validate(task, CVConfig(folds=5, seed=shuffle), learners={"r": learner})
        p = res.predictions.set_index("patient_id").loc[ids]
        cs.append(harrell_c(t, e, p["risk"].to_numpy()))
    assert abs(np.mean(cs) - 0.5) <= 0.06 and all(abs(c - 0.5) <= 0.1 for c in cs), cs


@pytest.mark.parametrize(("learner", "task"), [("lasso", "survival"), ("xgb", "survival"), ("lasso", "response"),
                                               ("logistic", "response"), ("xgb", "response")])
def test_a_saved_pipeline_scores_as_the_fitted_one(learner, task):
    import json

    X, rng = _frame(120, 12, 5)
    if task == "survival":
        time, event = rng.exponential(np.exp(-X["t0|CT|tumor|f2"].to_numpy())), np.ones(120, int)
    else:
        time, event = np.ones(120), (X["t0|CT|tumor|f2"].to_numpy() > 0).astype(int)
    cfg = RadiomicsModelConfig(learner=learner, trees=40, icc_min=0)
    pipe = RadiomicsPipeline(cfg, task).fit(X, time, event)
    assert pipe.saveable
    state = json.loads(json.dumps(pipe.state()))  # plain JSON
    again = RadiomicsPipeline.from_state(state, config=cfg)
    Xn = X.copy()
    Xn.iloc[0, 2] = np.nan  # a missing value takes the training median in both
    assert np.allclose(again.predict_risk(Xn), pipe.predict_risk(Xn), atol=1e-4)
    # the saved learner is enough: without the configuration it scores alike
    assert np.allclose(RadiomicsPipeline.from_state(state).predict_risk(Xn), pipe.predict_risk(Xn), atol=1e-4)
    assert isinstance(pipe, RiskScorer) and isinstance(again, RiskScorer)
    # each selected feature's contribution (coefficient x z, or TreeSHAP) and the baseline add up to the risk
    parts = again.contributions(Xn)
    assert list(parts.columns) == [*again.selected_, "baseline"]
    assert np.allclose(parts.sum(axis=1), again.predict_risk(Xn), atol=1e-4)


def test_tree_classifiers_are_not_saved_as_json():
    X, _ = _frame(60, 6, 6)
    pipe = RadiomicsPipeline(RadiomicsModelConfig(learner="rf", trees=10, icc_min=0), "response")
    pipe.fit(X, np.ones(60), (X["t0|CT|tumor|f2"].to_numpy() > 0).astype(int))
    assert not pipe.saveable
    with pytest.raises(ValueError, match="cannot be saved"):
        pipe.state()


@pytest.mark.parametrize("learner", ["rf", "nb", "xgb", "svm"])
def test_risk_classes(learner):
    """Ordered risk classes (ProgSwin's task): patients of unknown class (-1) stay out of the fit, the
    probabilities cover every class (0 for one no training patient had), the risk is the expected class."""
    X, rng = _frame(160, 8, 7)
    score = X["t0|CT|tumor|f4"].to_numpy() + rng.normal(0, 0.5, 160)
    labels = np.digitize(score, [-0.7, 0.0, 0.7])  # classes 0..3
    labels[:20] = -1
    pipe = RadiomicsPipeline(RadiomicsModelConfig(learner=learner, trees=50, icc_min=0), "classes", seed=0)
    pipe.fit(X, np.ones(160), labels)
    probs = pipe.probabilities(X, 5)  # a fifth class that nobody has
    assert probs.shape == (160, 5) and np.allclose(probs.sum(axis=1), 1) and np.all(probs[:, 4] == 0)
    risk = pipe.predict_risk(X)
    assert np.allclose(risk, probs @ np.arange(5))
    known = labels >= 0
    assert np.corrcoef(risk[known], labels[known])[0, 1] > 0.5


def test_inner_cv_training_scores_are_out_of_fold():
    """With ``train_risk: inner-cv`` the training patients' scores come from pipelines that did not
    see them: less optimistic than the in-sample ones of a flexible learner."""
    from hccprog.evaluation.survival import harrell_c

    X, rng = _frame(150, 20, 8)
    lp = X["t0|CT|tumor|f3"].to_numpy()
    time, event = rng.exponential(np.exp(-lp)) * 100, (rng.random(150) < 0.8).astype(int)
    cfg = RadiomicsModelConfig(learner="xgb", trees=200, depth=3, icc_min=0, train_risk="inner-cv")
    pipe = RadiomicsPipeline(cfg, "survival").fit(X, time, event)
    oof = pipe.train_risk_.to_numpy()
    assert np.isfinite(oof).all() and len(oof) == 150
    assert harrell_c(time, event, pipe.predict_risk(X)) > harrell_c(time, event, oof) > 0.55
    assert RadiomicsPipeline(cfg.model_copy(update={"train_risk": "in-sample"}), "survival").fit(
        X, time, event).train_risk_ is None


def test_logistic_on_risk_classes_of_a_survival_endpoint():
    """``radiomics-logistic --endpoint os`` learns the ordered risk classes (four of them): the inner CV
    scores them one-vs-rest (was: "multi_class must be in ('ovo', 'ovr')", reported as a bug)."""
    X, rng = _frame(120, 10, 5)
    signal = X["t0|CT|tumor|f3"].to_numpy() + rng.normal(0, 0.5, 120)
    classes = np.digitize(signal, np.quantile(signal, [0.25, 0.5, 0.75]))
    pipe = RadiomicsPipeline(RadiomicsModelConfig(learner="logistic", icc_min=0), "classes", seed=1)
    risk = pipe.fit(X, np.ones(120), classes).predict_risk(X)
    assert np.all(np.isfinite(risk)) and np.corrcoef(risk, classes)[0, 1] > 0.5
