"""The multivariable Cox model of an image score and screened clinical factors (DLOP_Cox)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccprog.survival.cox import CoxScore
from hccprog.survival.score_cox import ScoreCoxModel, screen_covariates


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"albi": rng.normal(size=n), "noise": rng.normal(size=n),
                      "bclc": rng.choice(["B1", "B2", "B3"], size=n)})
    score = rng.normal(size=n)
    lp = 0.8 * score + 0.7 * X["albi"].to_numpy() + 0.9 * (X["bclc"] == "B3").to_numpy()
    t = rng.exponential(np.exp(-lp)) * 12
    e = (rng.random(n) < 0.85).astype(int)
    return score, X, t, e


def test_screening_keeps_the_factors_and_a_categorical_by_its_level():
    _, X, t, e = _data()
    kept, p = screen_covariates(X, t, e)
    assert kept == ["albi", "bclc"] and p["noise"]["p_univariable"] > 0.05
    assert p["albi"]["p_multivariable"] < 0.05


def test_one_cox_model_of_score_and_factors_and_its_state():
    score, X, t, e = _data()
    m = ScoreCoxModel().fit(score, X, t, e)
    assert m.selected_ == ["albi", "bclc"]
    hr = m.hazard_ratios()
    assert hr.loc["image_score", "p_value"] < 1e-6 and hr.loc["image_score", "hr"] > 1
    again = CoxScore.from_state(m.state()["cox"])
    frame = X[m.selected_].assign(image_score=score)
    assert np.allclose(again.predict_risk(frame), m.predict_risk(score, X))
    with pytest.raises(ValueError, match="cox or none"):
        ScoreCoxModel(screening="lasso")
    assert ScoreCoxModel(screening="none").fit(score, X, t, e).selected_ == ["albi", "noise", "bclc"]
