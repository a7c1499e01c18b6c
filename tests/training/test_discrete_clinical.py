"""Discrete-time (logistic-hazard) loss and survival, and the fold-wise clinical encoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hccprog.training.clinical import ClinicalEncoder, ClinicalInputConfig
from hccprog.training.losses import interval_index, logistic_hazard_loss
from hccprog.training.objectives import DiscreteTimeObjective, objective_from_state


def _nll_by_hand(logits: np.ndarray, time: np.ndarray, event: np.ndarray, cuts: np.ndarray) -> float:
    """The likelihood written out patient by patient (pycox's convention for censoring)."""
    h = 1 / (1 + np.exp(-logits))
    total = 0.0
    for i in range(len(time)):
        j = int(np.searchsorted(cuts, time[i], side="left"))
        if j >= len(cuts):  # survived every interval
            total -= np.log(1 - h[i]).sum()
            continue
        total -= np.log(1 - h[i, :j]).sum()
        total -= np.log(h[i, j]) if event[i] else np.log(1 - h[i, j])
    return total / len(time)


def test_logistic_hazard_loss_equals_the_likelihood_by_hand():
    rng = np.random.default_rng(0)
    cuts = np.array([1.0, 2.0, 3.0, 4.0])
    logits = rng.normal(size=(40, 4))
    time = np.concatenate([rng.uniform(0.01, 5.0, 38), [2.0, 4.0]])  # two times exactly on a cut
    event = rng.integers(0, 2, 40)
    got = logistic_hazard_loss(torch.tensor(logits), torch.tensor(event), torch.tensor(time), torch.tensor(cuts))
    assert float(got) == pytest.approx(_nll_by_hand(logits, time, event, cuts), rel=1e-10)
    assert interval_index(torch.tensor([0.5, 1.0, 1.5, 4.0, 4.5]), torch.tensor(cuts)).tolist() == [0, 0, 1, 3, 4]


def test_logistic_hazard_loss_gradient_and_minimum():
    # one interval, no censoring: the MLE hazard is the event share, sigmoid(logit) = 0.3
    time = torch.full((10,), 0.5, dtype=torch.float64)
    event = torch.tensor([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    event_time = torch.where(event.bool(), time, torch.full_like(time, 2.0))  # censored ones outlive the cut
    logit = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logit], max_iter=50)

    def closure():
        opt.zero_grad()
        loss = logistic_hazard_loss(logit.expand(10, 1), event, event_time, torch.tensor([1.0]))
        loss.backward()
        return loss

    opt.step(closure)
    assert float(torch.sigmoid(logit.detach())) == pytest.approx(0.3, abs=1e-4)


def test_discrete_survival_matches_products_at_the_cuts_and_is_monotone():
    obj = DiscreteTimeObjective([1.0, 2.0, 3.0], horizon=3.0)
    logits = np.array([[-1.0, 0.0, 1.0], [-3.0, -3.0, -3.0]])
    h = 1 / (1 + np.exp(-logits))
    s = obj.predict_survival(logits, [0.0, 1.0, 1.5, 2.0, 3.0, 3.5])
    assert s[:, 0] == pytest.approx([1.0, 1.0])
    assert s[:, 1] == pytest.approx(1 - h[:, 0])
    assert s[:, 3] == pytest.approx((1 - h[:, 0]) * (1 - h[:, 1]))
    assert s[:, 4] == pytest.approx(np.prod(1 - h, axis=1))
    assert np.all(np.diff(s, axis=1) <= 1e-12)
    assert obj.predict_risk(logits) == pytest.approx(1 - np.prod(1 - h, axis=1))  # 1 - S(3)
    assert objective_from_state(obj.state()).cuts == obj.cuts
    with pytest.raises(ValueError, match="increasing"):
        DiscreteTimeObjective([2.0, 1.0], horizon=1.0)


def _toy(n=150, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "signal": rng.normal(size=n),
        "noise": rng.normal(size=n),
        "group": pd.Categorical(rng.choice(["a", "b"], n)),
    })
    frame.loc[frame.index[:5], "noise"] = np.nan
    t = rng.exponential(np.exp(-1.2 * frame["signal"].to_numpy()))
    c = rng.exponential(2.0, n)
    return frame, np.minimum(t, c), (t <= c).astype(int)


def test_clinical_encoder_cox_screening_keeps_the_prognostic_column():
    frame, t, e = _toy()
    enc = ClinicalEncoder(ClinicalInputConfig(screening="cox")).fit(frame, t, e)
    assert enc.selected_ == ["signal"]
    assert enc.screen_["signal"]["p_univariable"] < 1e-6
    assert enc.screen_["noise"]["p_univariable"] > 0.05
    x = enc.transform(frame)
    assert x.shape == (len(frame), 1) and x.dtype == np.float32
    assert abs(float(x.mean())) < 1e-6  # standardised on the fitting rows


def test_clinical_encoder_state_round_trip_and_no_screening():
    frame, _, _ = _toy(seed=1)
    enc = ClinicalEncoder(ClinicalInputConfig()).fit(frame.iloc[:100])
    ref = enc.pre_.fill_["group"]  # the most frequent level is the reference
    assert enc.selected_ == ["signal", "noise", f"group={'b' if ref == 'a' else 'a'}"]
    back = ClinicalEncoder.from_state(__import__("json").loads(__import__("json").dumps(enc.state())))
    np.testing.assert_allclose(back.transform(frame.iloc[100:]), enc.transform(frame.iloc[100:]))


def test_screening_needs_outcomes():
    frame, _, _ = _toy()
    with pytest.raises(ValueError, match="outcomes"):
        ClinicalEncoder(ClinicalInputConfig(screening="cox")).fit(frame)
