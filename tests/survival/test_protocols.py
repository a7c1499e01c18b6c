"""The one scoring vocabulary: each of the seven state/from_state pairs rebuilds a scorer that scores
as the fitted one did, and speaks the verbs of its Protocol."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hccprog.survival.breslow import BreslowSurvival
from hccprog.survival.cox import BivariateCoxFusion, CoxModel, CoxScore
from hccprog.survival.preprocess import TabularPreprocessor
from hccprog.survival.protocols import RiskScorer, Scorer, Stateful, SurvivalPredictor
from hccprog.training.clinical import ClinicalEncoder, ClinicalInputConfig
from hccprog.training.objectives import (
    BinaryObjective,
    CoxObjective,
    CoxProgressionObjective,
    DiscreteTimeObjective,
    RiskClassObjective,
    objective_from_state,
)


def _json(state: dict) -> dict:
    return json.loads(json.dumps(state))  # what a run folder holds: plain JSON


def _cohort(n=160, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"age": rng.normal(60, 10, n), "afp": rng.lognormal(3, 1, n),
                      "sex": rng.choice(["M", "F"], n)})
    X.loc[rng.random(n) < 0.1, "afp"] = np.nan
    lp = 0.04 * (X["age"] - 60) + 0.3 * (X["sex"] == "M")
    t = rng.exponential(365 * np.exp(-lp))
    c = rng.exponential(900, n)
    return X, np.minimum(t, c), (t <= c).astype(int)


def test_the_cox_model_is_a_scorer_and_its_state_scores_alike():
    X, t, e = _cohort()
    model = CoxModel(penalizers=(0.05,)).fit(X, t, e)
    assert isinstance(model, Scorer)
    again = CoxModel.from_state(_json(model.state()))
    assert isinstance(again, CoxScore) and isinstance(again, Stateful)
    np.testing.assert_allclose(again.predict_risk(X), model.predict_risk(X), atol=1e-10)
    np.testing.assert_allclose(CoxScore.from_state(_json(again.state())).predict_risk(X), model.predict_risk(X),
                               atol=1e-10)
    assert np.ptp(model.predict_risk(X)) > 0.5  # a real score, not a constant


def test_the_fusion_round_trips_risk_and_survival():
    X, t, e = _cohort(seed=1)
    a = np.random.default_rng(2).normal(size=len(t)) - 0.5 * np.log(t)
    b = CoxModel(penalizers=(0.05,)).fit(X, t, e).predict_risk(X)
    fus = BivariateCoxFusion().fit(a, b, t, e)
    assert isinstance(fus, Scorer)
    again = BivariateCoxFusion.from_state(_json(fus.state()))
    np.testing.assert_allclose(again.predict_risk(a, b), fus.predict_risk(a, b), atol=1e-10)
    s = fus.predict_survival(a[:5], b[:5], [200.0, 400.0])
    assert s.shape == (5, 2) and np.all(s[:, 1] <= s[:, 0])
    # the saved fusion's survival is the Breslow estimator saved beside it, as in a run folder
    with pytest.raises(ValueError, match="no baseline hazard"):
        again.predict_survival(a[:5], b[:5], [200.0, 400.0])
    base = BreslowSurvival.from_state(_json(BreslowSurvival().fit(fus.predict_risk(a, b), t, e).state()))
    np.testing.assert_allclose(base.predict_survival(again.predict_risk(a[:5], b[:5]), [200.0, 400.0]), s, atol=0.02)


def test_breslow_predicts_survival_and_no_risk_of_its_own():
    X, t, e = _cohort(seed=3)
    risk = CoxModel(penalizers=(0.05,)).fit(X, t, e).predict_risk(X)
    base = BreslowSurvival().fit(risk, t, e)
    assert isinstance(base, SurvivalPredictor) and not isinstance(base, RiskScorer)
    again = BreslowSurvival.from_state(_json(base.state()))
    s = again.predict_survival(risk[:10], [100.0, 300.0])
    np.testing.assert_allclose(s, base.predict_survival(risk[:10], [100.0, 300.0]), atol=1e-12)
    assert s.shape == (10, 2) and np.all(s[:, 1] <= s[:, 0]) and np.all((s > 0) & (s < 1))


def test_the_preprocessors_transform_alike_after_a_round_trip():
    X, t, e = _cohort(seed=4)
    prep = TabularPreprocessor().fit(X)
    assert isinstance(prep, Stateful)
    pd.testing.assert_frame_equal(TabularPreprocessor.from_state(_json(prep.state())).transform(X), prep.transform(X))
    enc = ClinicalEncoder(ClinicalInputConfig()).fit(X, t, e)
    assert isinstance(enc, Stateful)
    np.testing.assert_array_equal(ClinicalEncoder.from_state(_json(enc.state())).transform(X), enc.transform(X))


@pytest.mark.parametrize("objective", [CoxObjective(), BinaryObjective(), RiskClassObjective([12.0, 24.0, 36.0]),
                                       DiscreteTimeObjective([1.0, 2.0, 3.0], 3.0),
                                       CoxProgressionObjective(12.0, 0.5)])
def test_each_objective_comes_back_from_its_state(objective):
    rng = np.random.default_rng(5)
    out = rng.normal(size=(8, objective.outputs))
    assert isinstance(objective, Stateful)
    again = type(objective).from_state(_json(objective.state()))
    assert type(again) is type(objective) and again.state() == objective.state()
    np.testing.assert_array_equal(again.predict_risk(out), objective.predict_risk(out))
    assert type(objective_from_state(objective.state())) is type(objective)


def test_a_saved_objective_of_another_kind_is_refused():
    with pytest.raises(ValueError, match="'binary' objective is not a CoxObjective"):
        CoxObjective.from_state(BinaryObjective().state())
