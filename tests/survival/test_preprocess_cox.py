"""Preprocessing fitted on training data only; the penalised Cox model and the fusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccprog.evaluation.survival import harrell_c
from hccprog.survival.cox import BivariateCoxFusion, CoxModel
from hccprog.survival.preprocess import TabularPreprocessor


def test_preprocessor_learns_from_training_rows_only():
    train = pd.DataFrame({"age": [50.0, 60.0, np.nan, 70.0], "sex": pd.Categorical(["M", "F", "M", None])})
    test = pd.DataFrame({"age": [np.nan, 1000.0], "sex": pd.Categorical(["F", None])})
    prep = TabularPreprocessor().fit(train)
    out = prep.transform(test)
    # the median and the mode come from training: the test outlier does not move them
    assert prep.fill_["age"] == 60.0 and prep.fill_["sex"] == "M"
    assert out.loc[0, "age"] == (60.0 - prep.mean_["age"]) / prep.std_["age"]
    assert list(out.columns) == ["age", "sex=F"]
    assert out.loc[1, "sex=F"] == (0 - prep.mean_["sex=F"]) / prep.std_["sex=F"]


def test_cox_model_recovers_signal_and_tunes_penalty():
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "noise": rng.normal(size=n)})
    lp = 1.0 * X["x1"] - 0.5 * X["x2"]
    t = rng.exponential(np.exp(-lp))
    c = rng.exponential(2.0, n)
    time, event = np.minimum(t, c), (t <= c).astype(int)
    m = CoxModel(penalizers=(0.001, 0.1, 10.0)).fit(X, time, event)
    assert m.penalizer_ in (0.001, 0.1)
    hr = m.hazard_ratios()
    assert hr.loc["x1", "hr"] > 1 and hr.loc["x2", "hr"] < 1
    assert harrell_c(time, event, m.predict_risk(X)) > 0.7
    s = m.predict_survival(X, [0.1, 0.5, 1.0])
    assert s.shape == (n, 3) and np.all(np.diff(s, axis=1) <= 1e-12)


def test_bivariate_fusion_weights_the_informative_score():
    rng = np.random.default_rng(1)
    n = 400
    a = rng.normal(size=n)
    b = rng.normal(size=n)
    t = rng.exponential(np.exp(-(1.2 * a)))
    fus = BivariateCoxFusion().fit(a, b, t, np.ones(n))
    coef = fus.coefficients
    assert coef["score_a"] > 0.8 and abs(coef["score_b"]) < 0.2


def _locf_cohort(n: int, seed: int):
    """Score a informative only where the follow-up was seen; carried-forward patients (m = 1)
    have a lower hazard and an uninformative score a."""
    rng = np.random.default_rng(seed)
    m = (rng.uniform(size=n) < 0.25).astype(float)
    a = rng.normal(size=n)
    b = rng.normal(size=n)
    lp = np.where(m == 1, -1.0, 1.2 * a) + 0.8 * b
    t = rng.exponential(np.exp(-lp))
    c = rng.exponential(3.0, n)
    return a, b, m, np.minimum(t, c), (t <= c).astype(int)


def test_fusion_indicator_learns_offset_and_own_weight():
    a, b, m, t, e = _locf_cohort(600, 2)
    fus = BivariateCoxFusion().fit(a, b, t, e, indicator=m)
    assert fus.uses_indicator_
    coef = fus.coefficients
    assert coef["score_a"] > 0.8 and coef["score_b"] > 0.5
    assert coef["indicator"] < -0.5  # lower hazard of the carried-forward patients
    assert abs(coef["score_a"] + coef["score_a_indicated"]) < 0.35  # no weight for them
    # out of sample, the indicator terms rank better than the plain bivariate model
    a2, b2, m2, t2, e2 = _locf_cohort(600, 3)
    plain = BivariateCoxFusion().fit(a, b, t, e)
    c_plain = harrell_c(t2, e2, plain.predict_risk(a2, b2))
    c_ind = harrell_c(t2, e2, fus.predict_risk(a2, b2, m2))
    assert c_ind > c_plain + 0.01
    s = fus.predict_survival(a2, b2, [0.5, 1.0], m2)
    assert s.shape == (600, 2) and np.all(s[:, 1] <= s[:, 0] + 1e-12)
    with pytest.raises(ValueError, match="indicator"):
        fus.predict_risk(a2, b2)


def test_fusion_indicator_ignored_when_too_few_patients():
    a, b, m, t, e = _locf_cohort(200, 4)
    few = np.zeros_like(m)
    few[:5] = 1
    fus = BivariateCoxFusion().fit(a, b, t, e, indicator=few)
    plain = BivariateCoxFusion().fit(a, b, t, e)
    assert not fus.uses_indicator_
    assert set(fus.coefficients) == {"score_a", "score_b"}
    np.testing.assert_allclose(fus.predict_risk(a, b, few), plain.predict_risk(a, b))


def test_cox_model_state_scores_new_patients_like_lifelines():
    """``CoxModel.state()`` is plain JSON; rebuilt as ``CoxScore`` it gives lifelines' log partial
    hazard, with missing values and categorical levels handled as in training."""
    import json

    from hccprog.survival.cox import CoxScore

    rng = np.random.default_rng(5)
    n = 200
    X = pd.DataFrame({"x1": rng.normal(size=n), "grade": pd.Categorical(rng.choice(["a", "b", "c"], n)),
                      "x2": rng.normal(size=n)})
    t = rng.exponential(np.exp(-(0.8 * X["x1"] + 0.6 * (X["grade"] == "c"))))
    m = CoxModel(penalizers=(0.1,)).fit(X, t, np.ones(n))
    new = pd.DataFrame({"x1": [0.5, np.nan, -1.0], "grade": pd.Categorical(["c", None, "a"]), "x2": [1.0, 0.0, np.nan]})
    score = CoxScore.from_state(json.loads(json.dumps(m.state())))
    reference = m.model_.predict_log_partial_hazard(m.prep_.transform(new)).to_numpy()
    np.testing.assert_allclose(score.predict_risk(new), reference, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.predict_risk(new), reference, rtol=1e-10, atol=1e-12)
    assert score.missing(new.drop(columns="x2")) == ["x2"]
    with pytest.raises(ValueError, match="x2"):
        score.predict_risk(new.drop(columns="x2"))


@pytest.mark.parametrize("with_indicator", [False, True])
def test_fusion_state_round_trip(with_indicator):
    import json

    a, b, m, t, e = _locf_cohort(300, 6)
    fus = BivariateCoxFusion().fit(a, b, t, e, indicator=m if with_indicator else None)
    assert fus.uses_indicator_ == with_indicator
    again = BivariateCoxFusion.from_state(json.loads(json.dumps(fus.state())))
    ind = m if with_indicator else None
    reference = fus.model_.predict_log_partial_hazard(fus._frame(a, b, ind)).to_numpy()  # lifelines itself
    np.testing.assert_allclose(fus.predict_risk(a, b, ind), reference, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(again.predict_risk(a, b, ind), reference, rtol=1e-10, atol=1e-12)


def test_minmax_scaling_and_one_hot_levels():
    """CLDCA's clinical encoding: numeric columns to [0, 1] on the training rows, one column per level;
    a round trip keeps both, and an unseen level reads as the most frequent one."""
    train = pd.DataFrame({"age": [40.0, 50.0, 70.0, None], "sex": ["M", "F", "M", "M"]})
    prep = TabularPreprocessor(scaling="minmax", one_hot=True).fit(train)
    z = prep.transform(train)
    assert list(z.columns) == ["age", "sex=F", "sex=M"]
    assert z["age"].tolist() == [0.0, 1 / 3, 1.0, 1 / 3]  # the missing age takes the median, 50
    assert z["sex=F"].tolist() == [0.0, 1.0, 0.0, 0.0] and z["sex=M"].tolist() == [1.0, 0.0, 1.0, 1.0]
    new = pd.DataFrame({"age": [100.0], "sex": ["X"]})
    again = TabularPreprocessor.from_state(prep.state())
    assert again.transform(new).iloc[0].tolist() == [2.0, 0.0, 1.0]  # beyond training: above 1; X as M
    pd.testing.assert_frame_equal(again.transform(train), z)
    with pytest.raises(ValueError, match="'standard' or 'minmax'"):
        TabularPreprocessor(scaling="robust")
