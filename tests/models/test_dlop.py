"""DLOP_Combin: shapes, variants, the paper-size configuration, and learning on a tiny problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hccprog.models import get_model
from hccprog.models.dlop import DLOP, DLOPConfig
from hccprog.training.config import resolve_config
from hccprog.training.deep import SurvivalNetTrainer, TrainConfig
from hccprog.training.objectives import DiscreteTimeObjective


def test_registry_and_presets():
    spec = get_model("dlop")
    assert spec.objective == "discrete" and spec.clinical
    assert get_model("dlop-ctr").defaults == {"variant": "ctr"}
    cpu = resolve_config("cpu", model="dlop")
    assert cpu.network_config().encoder == "resnet-compact" and cpu.clinical.screening == "cox"
    paper = resolve_config("paper", model="dlop")
    net = paper.network_config()
    assert (net.encoder, net.clinical_hidden, net.intervals) == ("resnet101", [16, 32, 64], 4)
    assert paper.preprocessing.size == 224
    assert resolve_config("cpu").network_config().hidden == 32  # the CRNN's preset is untouched


def test_dlop_shapes_and_the_ctr_variant_ignores_clinical_inputs():
    x = torch.rand(3, 2, 1, 2, 3, 32, 32)
    clin = torch.randn(3, 5)
    net = DLOP(DLOPConfig(encoder="efficientnet-lite0", intervals=4), streams=1, channels=3,
               clinical_features=5).eval()
    with torch.no_grad():
        out = net(x, clin)
        assert out.shape == (3, 4)
        x2 = x.clone()
        x2[:, 1] = torch.rand_like(x2[:, 1])  # DLOP reads the baseline only
        assert torch.allclose(net(x2, clin), out)
        assert not torch.allclose(net(x, clin + 1.0), out)
    with pytest.raises(ValueError, match="clinical"):
        net(x)
    ctr = DLOP(DLOPConfig(encoder="efficientnet-lite0", variant="ctr", intervals=4), streams=1, channels=3,
               clinical_features=5).eval()
    with torch.no_grad():
        assert torch.allclose(ctr(x, clin), ctr(x, clin + 1.0))


def test_tiny_dlop_learns_from_clinical_and_image_inputs():
    """Training likelihood falls and the fitted risk orders a tiny cohort."""
    rng = np.random.default_rng(0)
    n = 48
    signal = rng.normal(size=n)
    x = np.zeros((n, 1, 1, 1, 1, 32, 32), np.float32)
    for i in range(n):  # image: a bright square whose size follows the signal
        r = int(np.clip(8 + 4 * signal[i], 2, 15))
        x[i, 0, 0, 0, 0, 16 - r:16 + r, 16 - r:16 + r] = 1.0
    clin = np.stack([signal + rng.normal(0, 0.5, n), rng.normal(size=n)], 1).astype(np.float32)
    t = rng.exponential(np.exp(-1.5 * signal)) * 2.0
    e = np.ones(n, int)
    obj = DiscreteTimeObjective([0.5, 1.0, 2.0, 4.0], horizon=2.0)
    cfg = DLOPConfig(encoder="efficientnet-lite0", pretrained=True, intervals=4, clinical_hidden=[8, 8, 8],
                     dropout=0.0)
    torch.manual_seed(0)
    tr = SurvivalNetTrainer(lambda: DLOP(cfg, streams=1, channels=1, clinical_features=2),
                            TrainConfig(epochs=25, batch_size=16, lr=3e-3, val_fraction=0, augment=False, seed=0),
                            obj).fit(x, t, e, clin=clin)
    losses = [h["train_loss"] for h in tr.history_]
    assert losses[-1] < 0.8 * losses[0]
    from hccprog.evaluation.survival import harrell_c

    assert harrell_c(t, e, tr.predict_risk(x, clin)) > 0.7
