"""Nomograms: points reproduce the model, axes read in original units, labels never overlap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccprog.reports.nomogram import Nomogram, cox_nomogram, draw, fused_nomogram, tick_sets
from hccprog.survival.breslow import BreslowSurvival
from hccprog.survival.cox import BivariateCoxFusion, CoxModel

INFO = {"afp": {"type": "numeric", "unit": "ng/mL", "transform": "log", "levels": None},
        "age": {"type": "numeric", "unit": "years", "transform": "none", "levels": None},
        "ascites": {"type": "ordinal", "unit": None, "transform": "none", "levels": ["none", "mild", "moderate"]},
        "etiology": {"type": "categorical", "unit": None, "transform": "none", "levels": None},
        "pvtt": {"type": "binary", "unit": None, "transform": "none", "levels": None}}


def _cohort(n: int = 160, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "afp": np.log(np.exp(rng.normal(3.5, 2.0, n))),  # the model's scale: log(ng/mL)
        "age": rng.normal(62, 9, n).round(),
        "ascites": rng.integers(0, 3, n).astype(float),
        "etiology": pd.Categorical(rng.choice(["HBV", "HCV", "alcohol", "NASH"], n)),
        "pvtt": pd.Categorical(rng.choice(["0", "1"], n, p=[0.7, 0.3])),
    })
    X.loc[rng.choice(n, 8, replace=False), "afp"] = np.nan  # imputed by the model's training median
    lp = 0.35 * X["afp"].fillna(3.5) + 0.03 * X["age"] + 0.4 * X["ascites"] + 0.8 * (X["pvtt"] == "1")
    t = rng.exponential(np.exp(-(lp - lp.mean())) * 700)
    c = rng.uniform(200, 1500, n)
    return X, np.minimum(t, c), (t <= c).astype(int)


def _values(nomo: Nomogram, X: pd.DataFrame) -> pd.DataFrame:
    return X[[t.name for t in nomo.terms if t.name in X]].astype(object).where(X.notna(), None)


def test_clinical_nomogram_points_reproduce_the_linear_predictor_and_survival():
    X, t, e = _cohort()
    model = CoxModel(penalizers=(0.05,)).fit(X, t, e)
    nomo = cox_nomogram(model, INFO, [365.25, 730.5], unit="days", endpoint="os")
    rows = X.sample(20, random_state=1)
    pts = nomo.patient_points(_values(nomo, rows))
    np.testing.assert_allclose(nomo.linear_predictor(pts["total"]), model.predict_risk(rows), atol=1e-6)
    np.testing.assert_allclose(np.c_[nomo.predict_survival(pts["total"], 365.25),
                                     nomo.predict_survival(pts["total"], 730.5)],
                               model.predict_survival(rows, [365.25, 730.5]), atol=1e-6)
    # the widest term spans 100 points; categorical and binary covariates are single terms
    assert max(max(nomo.points(term, v) for v in term.axis_values()) for term in nomo.terms) == pytest.approx(100)
    assert sorted(term.name for term in nomo.terms) == sorted(INFO)


def test_fused_nomogram_reproduces_the_fusion():
    X, t, e = _cohort(seed=2)
    clinical = CoxModel(penalizers=(0.05,)).fit(X, t, e)
    b = clinical.predict_risk(X)
    a = np.random.default_rng(3).normal(0, 1.5, len(t)) - 0.3 * np.log(t)  # an informative image score
    fus = BivariateCoxFusion().fit(a, b, t, e)
    fused = fus.predict_risk(a, b)
    base = BreslowSurvival().fit(fused, t, e)
    desc = {"model": "crnn", "horizons": [365.25, 730.5], "risk_range": [float(np.quantile(a, 0.01)),
                                                                          float(np.quantile(a, 0.99))],
            "fusion": {"clinical": clinical.state(), "fusion": fus.state(), "breslow": base.state(),
                       "covariates_info": INFO}}
    nomo = fused_nomogram(desc, unit="days", endpoint="os")
    # one term for the image score and one for each clinical covariate
    assert sorted(term.name for term in nomo.terms) == sorted([*INFO, "crnn"])
    idx = np.random.default_rng(4).choice(len(t), 20, replace=False)
    values = _values(nomo, X.iloc[idx]).assign(crnn=a[idx])
    pts = nomo.patient_points(values)
    np.testing.assert_allclose(nomo.linear_predictor(pts["total"]), fused[idx], atol=1e-6)
    np.testing.assert_allclose(nomo.predict_survival(pts["total"], 730.5),
                               base.predict_survival(fused[idx], [730.5])[:, 0], atol=1e-6)


def test_log_covariates_get_log_spaced_ticks_in_original_units():
    X, t, e = _cohort()
    nomo = cox_nomogram(CoxModel(penalizers=(0.05,)).fit(X, t, e), INFO, [365.25], unit="days", endpoint="os")
    afp = next(term for term in nomo.terms if term.name == "afp")
    assert afp.label == "afp (ng/mL)"
    labels = [text for _, text in tick_sets(afp)[0]]
    assert {"1", "10", "100"} <= set(labels)  # ng/mL, not log(ng/mL)
    assert nomo.horizon_label(365.25) == "1-year survival probability"
    ascites = next(term for term in nomo.terms if term.name == "ascites")
    assert [text for _, text in tick_sets(ascites)[0]] == ["none", "mild", "moderate"]
    pvtt = next(term for term in nomo.terms if term.name == "pvtt")
    assert sorted(pvtt.display(lv) for lv in pvtt.levels) == ["no", "yes"]


def _overlaps(boxes) -> list[tuple[str, str]]:
    hits = []
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            if a.overlaps(b):
                hits.append((ta, tb))
    return hits


def test_no_tick_labels_overlap():
    X, t, e = _cohort(n=300, seed=5)
    # a crowded categorical covariate: ten levels with near-equal effects
    X["site"] = pd.Categorical(np.random.default_rng(6).choice([f"centre {k}" for k in range(10)], len(t)))
    model = CoxModel(penalizers=(0.01,)).fit(X, t, e)
    fig = draw(cox_nomogram(model, INFO, [365.25, 730.5, 1095.75], unit="days", endpoint="os"), "test", [365.25,
                                                                                                      730.5, 1095.75])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    texts = [tx for tx in ax.texts if tx.get_text()]
    boxes = [(tx.get_text(), tx.get_window_extent(renderer).expanded(1.0, 1.0)) for tx in texts]
    assert len(texts) > 40
    assert _overlaps(boxes) == []
    assert "centre 3" in {tx.get_text() for tx in texts}  # every level keeps its label
