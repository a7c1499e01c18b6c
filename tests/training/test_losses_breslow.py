"""The Cox loss against lifelines' partial likelihood; the Breslow baseline against lifelines."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from lifelines import CoxPHFitter

from hccprog.survival.breslow import BreslowSurvival
from hccprog.training.losses import cox_loss


def _toy(ties: bool):
    rng = np.random.default_rng(0)
    n = 40
    x = rng.normal(size=n)
    t = rng.exponential(10, size=n) * np.exp(-0.7 * x)
    t = np.round(t) + 1 if ties else t
    e = (rng.uniform(size=n) < 0.7).astype(int)
    return x, t, e


@pytest.mark.parametrize("ties", [False, True])
def test_cox_loss_equals_lifelines_partial_likelihood(ties):
    x, t, e = _toy(ties)
    frame = pd.DataFrame({"x": x, "T": t, "E": e})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = CoxPHFitter().fit(frame, "T", "E")  # Efron ties, unpenalised
    beta = float(fit.params_["x"])
    loss = cox_loss(torch.tensor(beta * x), torch.tensor(e), torch.tensor(t))
    # lifelines' log-likelihood at its optimum = -(loss * number of events)
    assert float(loss) * e.sum() == pytest.approx(-fit.log_likelihood_, rel=1e-6)
    # and the optimum of our loss is lifelines' beta (the gradient vanishes there)
    b = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    cox_loss(b * torch.tensor(x), torch.tensor(e), torch.tensor(t)).backward()
    assert abs(float(b.grad)) < 1e-5


def test_cox_loss_without_events_is_zero_and_differentiable():
    r = torch.randn(5, requires_grad=True)
    loss = cox_loss(r, torch.zeros(5), torch.arange(1.0, 6.0))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(r.grad == 0)
    one = cox_loss(r.detach(), torch.tensor([0, 0, 1, 0, 0]), torch.arange(1.0, 6.0))
    assert np.isfinite(one.item()) and one.item() > 0


def test_breslow_survival_equals_lifelines():
    x, t, e = _toy(True)
    frame = pd.DataFrame({"x": x, "T": t, "E": e})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = CoxPHFitter(baseline_estimation_method="breslow").fit(frame, "T", "E")
    beta = float(fit.params_["x"])
    times = [2.0, 5.0, 10.0, 20.0]
    ours = BreslowSurvival().fit(beta * x, t, e).predict_survival(beta * x[:6], times)
    ref = fit.predict_survival_function(frame.iloc[:6][["x"]], times=times).to_numpy().T
    np.testing.assert_allclose(ours, ref, atol=1e-6)
