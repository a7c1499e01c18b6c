"""The deep trainer: slice sampling (``training.slices_per_step``), precise batch norm (``recompute_bn``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hccprog.training.deep import SurvivalNetTrainer, TrainConfig, sample_slices


def _tagged(b=4, t=2, s=2, k=3) -> np.ndarray:
    """(B, T, S, K, C, H, W) whose every slice holds its own (patient, time, stream, slice) tag."""
    tags = np.arange(b * t * s * k, dtype=float).reshape(b, t, s, k)
    return np.broadcast_to(tags[..., None, None, None], (b, t, s, k, 2, 4, 4)).copy()


def test_sample_slices_draws_distinct_slices_per_patient_and_time_point():
    x = _tagged()
    out = sample_slices(x, 2, np.random.default_rng(0))
    assert out.shape == (4, 2, 2, 2, 2, 4, 4)
    k = x.shape[3]
    for i in range(4):
        for j in range(2):
            picked = out[i, j, :, :, 0, 0, 0]  # (S, k') tags
            slices = picked.astype(int) % k
            assert len(set(slices[0])) == 2  # without replacement
            assert (slices[0] == slices[1]).all()  # the same slices for every stream
            assert np.isin(picked, x[i, j, :, :, 0, 0, 0]).all()  # from this patient and time point


def test_sample_slices_varies_and_keeps_all_when_k_is_not_smaller():
    x = _tagged(b=64)
    out = sample_slices(x, 1, np.random.default_rng(1))
    chosen = out[:, :, 0, 0, 0, 0, 0].astype(int) % 3
    assert set(np.unique(chosen)) == {0, 1, 2}  # every slice gets drawn somewhere
    assert sample_slices(x, 3, np.random.default_rng(1)) is x
    with pytest.raises(ValueError, match="representative-slice inputs"):
        sample_slices(np.zeros((2, 3, 8, 8, 8)), 1, np.random.default_rng(0))


def test_only_slice_averaging_models_take_slices_per_step():
    from hccprog.training.config import resolve_config

    assert resolve_config("cpu", model="crnn", training={"slices_per_step": 1}).training.slices_per_step == 1
    with pytest.raises(ValueError, match="does not average over its slices"):
        resolve_config("cpu", model="cldca", training={"slices_per_step": 1})


def test_trainer_draws_slices_in_training_and_averages_all_in_evaluation():
    from torch import nn

    from hccprog.training.deep import SurvivalNetTrainer, TrainConfig

    seen: list[tuple[bool, int]] = []

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Linear(1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((self.training, x.shape[3]))
            return self.w(x.float().mean(dim=(1, 2, 3, 4, 5, 6))[:, None]).squeeze(-1)

    rng = np.random.default_rng(0)
    x = rng.random((12, 2, 1, 3, 1, 4, 4)).astype(np.float16)
    t, e = rng.exponential(1.0, 12), np.ones(12, int)
    cfg = TrainConfig(epochs=2, batch_size=6, val_fraction=0.0, augment=False, slices_per_step=1)
    tr = SurvivalNetTrainer(Probe, cfg).fit(x, t, e)
    assert {k for training, k in seen if training} == {1}
    seen.clear()
    tr.predict_risk(x)
    assert seen == [(False, 3)]


class _BNNet(torch.nn.Module):
    """Batch norm on the raw input, then a linear risk: the BN input is the data itself."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(3)
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.bn(x.float())).squeeze(-1)


@pytest.mark.parametrize("recompute", [False, True])
def test_recompute_bn_sets_running_statistics_of_the_final_weights(recompute):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(40, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 0.2]).astype(np.float32)
    t, e = rng.exponential(size=40), np.ones(40, int)
    cfg = TrainConfig(epochs=3, batch_size=64, val_fraction=0.0, augment=False, recompute_bn=recompute)
    tr = SurvivalNetTrainer(_BNNet, cfg).fit(x, t, e)
    bn = tr.model_.bn
    exact = np.allclose(bn.running_mean.numpy(), x.mean(0), atol=1e-5) and \
        np.allclose(bn.running_var.numpy(), x.var(0, ddof=1), rtol=1e-4)
    # one batch holds every patient: precise BN gives the data's own mean and variance, while the
    # default momentum (0.1) after 3 steps is still near the initial (0, 1)
    assert exact == recompute
    assert bn.momentum == 0.1


def test_volume_augmentation_is_3d_and_keeps_channels_aligned():
    """Volumes get 3D augmentation: flips along the slice axis too, one draw for every time point and
    channel (they stay aligned), the same draws for the same seed."""
    import numpy as np

    from hccprog.training.deep import augmenter

    x = np.zeros((2, 3, 8, 10, 12), np.float32)  # (T, C, D, H, W)
    x[..., 1:3, 2:4, 3:5] = 1.0  # a bright cube near a corner, at the same place in every channel
    depth = np.arange(8, dtype=float)
    moved_along_depth = False
    for seed in range(12):
        a, b = augmenter(seed, volume=True)(x), augmenter(seed, volume=True)(x)
        assert a.shape == x.shape and np.allclose(a, b)  # repeatable
        arr = a.numpy().reshape(6, 8, 10, 12)
        assert np.abs(arr - arr[0]).max() < 0.25  # one spatial draw for all: channels differ by noise only
        mass = np.clip(arr[0], 0, None).sum(axis=(1, 2))
        moved_along_depth |= abs(float((mass * depth).sum() / mass.sum()) - 1.5) > 2
    assert moved_along_depth  # the slice axis is augmented (a 2D augmentation never moves it)


class _MeanLinear(torch.nn.Module):
    """A linear risk of the input's mean: the smallest network the trainer can fit."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w(x.float().mean(dim=(1, 2, 3, 4, 5, 6))[:, None]).squeeze(-1)


def test_plateau_schedule_multiplies_the_rate_by_its_factor_after_a_loss_that_did_not_fall():
    """``schedule: plateau`` with ``plateau_factor`` and ``plateau_patience`` (DMMGNet's paper: x 0.8
    whenever the loss did not decrease): the rate of each epoch follows the losses before it."""
    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 1, 1, 1, 2, 2)).astype(np.float16)
    t, e = rng.exponential(1.0, 16), np.ones(16, int)
    cfg = TrainConfig(epochs=12, batch_size=4, lr=0.5, val_fraction=0.0, augment=False, schedule="plateau",
                      plateau_factor=0.8, plateau_patience=0)
    history = SurvivalNetTrainer(_MeanLinear, cfg).fit(x, t, e).history_
    lrs, losses = [h["lr"] for h in history], [h["train_loss"] for h in history]
    best = losses[0]
    for i in range(1, len(history)):
        expected = lrs[i - 1] * (1.0 if losses[i - 1] < best * (1 - 1e-4) or i == 1 else 0.8)
        best = min(best, losses[i - 1])
        assert lrs[i] == pytest.approx(expected), (i, lrs, losses)
    assert min(lrs) < 0.5  # the loss of a too-large rate stalls at least once: the factor was applied


def test_the_flip_augmentation_flips_left_right_or_not_and_nothing_else():
    """Xia et al.'s only augmentation: a random flip with probability 0.5, one draw per patient for all
    its slices, streams and time points."""
    from hccprog.training.deep import augmenter

    x = _tagged(b=1)[0] + np.arange(4)[None, None, None, None, None, :]  # (T, S, K, C, H, W), W distinct
    aug = augmenter(0, kind="flip")
    flips = 0
    for _ in range(40):
        out = aug(x).numpy()
        if np.array_equal(out, x):
            continue
        np.testing.assert_array_equal(out, x[..., ::-1])  # flipped along W as a whole, values untouched
        flips += 1
    assert 8 < flips < 32  # about half


def test_a_validation_c_without_comparable_pairs_is_recorded_as_none():
    """A tiny validation split with no event has no C (NaN); the history a run saves as JSON says None."""
    import json

    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 1, 1, 1, 2, 2)).astype(np.float16)
    t, e = rng.exponential(1.0, 8), np.zeros(8, int)  # no event at all: no comparable pair anywhere
    cfg = TrainConfig(epochs=2, batch_size=4, val_fraction=0.25, augment=False)
    history = SurvivalNetTrainer(_MeanLinear, cfg).fit(x, t, e).history_
    assert [h["val_c"] for h in history] == [None, None]
    json.dumps(history, allow_nan=False)  # what write_json does: no NaN left
