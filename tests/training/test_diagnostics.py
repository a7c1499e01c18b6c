"""training/diagnostics.py: each diagnostic measures what it says on toy networks with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hccprog.training.diagnostics import (
    branch_gradient_norms,
    class_balance,
    input_statistics,
    loss_at_initialisation,
    lr_range_test,
    overfit,
)
from hccprog.training.objectives import CoxObjective, RiskClassObjective


class _TwoBranch(nn.Module):
    """A volume network (N, T, C, D, H, W) with a live branch and one whose output is detached."""

    def __init__(self, outputs: int = 1) -> None:
        super().__init__()
        self.live = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4 * 4, 8), nn.ReLU())
        self.dead = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4 * 4, 8))
        self.head = nn.Linear(16, outputs)
        self.outputs = outputs

    def forward(self, x):
        out = self.head(torch.cat([self.live(x), self.dead(x).detach()], dim=1))
        return out.squeeze(-1) if self.outputs == 1 else out


def _cohort(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, 2, 4, 4, 4)).astype(np.float32)
    risk = x[:, 0, 0].mean(axis=(1, 2, 3)) * 4
    t = rng.exponential(np.exp(-risk)) * 100 + 1
    e = np.ones(n, int)
    return x, t, e


def test_input_statistics_per_channel_and_stream():
    x = np.zeros((3, 2, 2, 4, 4, 4), np.float32)
    x[:, :, 1] = 2.0
    x[0, 0, 0, 0, 0, 0] = 6.0
    rows = input_statistics(x)
    assert [r["channel"] for r in rows] == [0, 1]
    assert rows[1]["mean"] == pytest.approx(2.0) and rows[1]["sd"] == pytest.approx(0.0)
    assert rows[0]["max"] == 6.0 and rows[0]["zero_fraction"] == pytest.approx(1 - 1 / (3 * 2 * 64))
    slices = np.ones((2, 1, 2, 3, 1, 4, 4), np.float32)
    slices[:, :, 1] = 0
    assert [(r["stream"], r["zero_fraction"]) for r in input_statistics(slices)] == [(0, 0.0), (1, 1.0)]
    with pytest.raises(ValueError, match="7-D"):
        input_statistics(np.zeros((2, 3)))


def test_a_detached_branch_reads_zero_gradient():
    x, t, e = _cohort()
    torch.manual_seed(0)
    norms = branch_gradient_norms(_TwoBranch(), CoxObjective(), x, t, e)
    assert norms["dead"] == 0.0 and norms["live"] > 0 and norms["head"] > 0
    assert norms["total"] == pytest.approx(np.sqrt(norms["live"] ** 2 + norms["head"] ** 2))
    deeper = branch_gradient_norms(_TwoBranch(), CoxObjective(), x, t, e, depth=2)
    assert "live.1" in deeper and deeper["dead.1"] == 0.0


def test_loss_at_initialisation_against_a_constant_output():
    x, t, e = _cohort()
    obj = RiskClassObjective([30.0, 60.0, 120.0])
    torch.manual_seed(0)
    res = loss_at_initialisation(_TwoBranch(outputs=4), obj, x, t, e)
    assert res["constant_output_loss"] == pytest.approx(np.log(4), rel=1e-5)  # uniform probabilities
    big = _TwoBranch(outputs=4)
    with torch.no_grad():
        big.head.weight.mul_(100)
    assert loss_at_initialisation(big, obj, x, t, e)["ratio"] > 3 * res["ratio"]


def test_overfit_drives_the_loss_down_and_reports_the_eval_gap():
    x, t, e = _cohort()
    res = overfit(lambda: _TwoBranch(), CoxObjective(), x, t, e, steps=150, lr=1e-2)
    assert res["last"] < 0.3 * res["first"] and len(res["losses"]) == 150
    assert res["eval_loss"] == pytest.approx(res["last"], abs=0.05)  # no dropout or batch norm here
    assert res["eval_output_sd"] > 0.1 and res["eval_validation"]["val_c"] > 0.9  # memorised: ranked
    labels = np.arange(16) % 4
    cls = overfit(lambda: _TwoBranch(outputs=4), RiskClassObjective([30.0, 60.0, 120.0]), x, t, e, labels=labels,
                  steps=150, lr=1e-2)
    assert cls["eval_accuracy"] > 0.9 and sum(cls["eval_predicted_counts"]) == 16


def test_lr_range_test_finds_a_rate_inside_the_range():
    x, t, e = _cohort(n=32)
    res = lr_range_test(lambda: _TwoBranch(), CoxObjective(), x, t, e, steps=40, batch_size=16)
    assert 1e-6 <= res["steepest_lr"] <= 1.0 and len(res["lrs"]) == len(res["losses"]) <= 40
    assert np.all(np.diff(res["lrs"]) > 0) and np.isfinite(res["losses"]).all()
    with pytest.raises(ValueError, match="lr_min"):
        lr_range_test(lambda: _TwoBranch(), CoxObjective(), x, t, e, lr_min=1.0, lr_max=0.1)


def test_class_balance_weights_balance_the_counts():
    res = class_balance(np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, -1]), 4)
    assert res["counts"] == [6, 2, 1, 0] and res["unknown"] == 1
    assert res["majority_share"] == pytest.approx(6 / 9)
    w = np.asarray(res["weights"])
    assert w[3] == 0.0 and np.allclose(w[:3] * np.array([6, 2, 1]), w[0] * 6)


def test_recomputed_batchnorm_statistics_match_the_batch():
    from hccprog.training.diagnostics import recompute_batchnorm

    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = torch.randn(32, 3) * 5 + 2
    net.train()
    with torch.no_grad():
        train_out = net(x)
    assert recompute_batchnorm(net, x)
    net.eval()
    with torch.no_grad():  # the running variance is unbiased, the batch's biased: equal up to n / (n - 1)
        np.testing.assert_allclose(net(x).numpy(), train_out.numpy() * np.sqrt((32 - 1) / 32), atol=1e-4)
    assert not recompute_batchnorm(nn.Linear(3, 1), x)
