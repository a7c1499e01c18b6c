"""Device selection of the trainer: CPU without a GPU, a clear error when CUDA is asked for but
absent, and checkpoints that are CPU tensors whatever the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hccprog.training.deep import SurvivalNetTrainer, TrainConfig, resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            resolve_device("cuda:0")
    with pytest.raises(ValueError):
        TrainConfig(device="gpu")


def test_state_dict_is_on_the_cpu_and_reproduces_the_outputs():
    rng = np.random.default_rng(0)
    x = rng.random((24, 5)).astype(np.float32)
    t, e = rng.uniform(1, 100, 24), (rng.random(24) < 0.7).astype(int)
    tr = SurvivalNetTrainer(lambda: torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.Flatten(0)),
                            TrainConfig(epochs=2, batch_size=8, augment=False, device="auto"))
    tr.fit(x, t, e)
    state = tr.state_dict()
    assert all(v.device.type == "cpu" for v in state.values())
    net = torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.Flatten(0))
    net.load_state_dict(state)
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.as_tensor(x)).numpy(), tr.outputs(x), atol=1e-5)
