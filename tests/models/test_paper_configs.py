"""The papers' configurations build and train one step on paper-sized input (slow on CPU)."""

from __future__ import annotations

import pytest
import torch

from hccprog.models import get_model
from hccprog.training.config import resolve_config
from hccprog.training.objectives import BinaryObjective, DiscreteTimeObjective

CASES = {
    # DLOP_Combin: ResNet101 (2048 features) on 224 x 224, clinical MLP 16-32-64, 4 yearly intervals
    "dlop": (DiscreteTimeObjective([1.0, 2.0, 3.0, 4.0], horizon=3.0), (2, 4)),
    # CLDCA: ResNet50 on 224 x 224 slices, LSTM, d_model 128, clinical DNN, response logit
    "cldca": (BinaryObjective(), (2,)),
}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(CASES))
def test_paper_size_forward_backward(model):
    objective, shape = CASES[model]
    cfg = resolve_config("paper", model=model)
    assert cfg.preprocessing.size == 224
    net = get_model(model).build(cfg.network_config(), streams=1, channels=3, clinical_features=6)
    assert net.encoder.out_features == 2048
    x = torch.rand(2, 1, 1, cfg.preprocessing.slices, 3, 224, 224)
    out = net(x, torch.randn(2, 6))
    assert out.shape == shape
    objective.loss(out, torch.tensor([1, 0]), torch.tensor([1.5, 3.2])).backward()
    grads = [p.grad for p in net.encoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
