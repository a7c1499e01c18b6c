"""ProgSwin-UNETR: heads that read their input, gradients end to end, input checks, the risk-class
objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hccprog.models import get_model
from hccprog.models.progswin import ProgSwinConfig, ProgSwinUNETR
from hccprog.training.config import TrainRunConfig, resolve_config
from hccprog.training.objectives import RiskClassObjective, objective_from_state

TINY = {"feature_size": 12, "window_size": 4, "norm": "batch", "depths": (1, 1, 1, 1)}


def test_class_head_output_and_gradient():
    torch.manual_seed(0)
    net = ProgSwinUNETR(ProgSwinConfig(**TINY), streams=3, channels=1)
    x = torch.rand(2, 3, 1, 32, 32, 32)  # (B, T, C, D, H, W)
    out = net(x)
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])  # the logits depend on the patient's volumes
    obj = RiskClassObjective([12.0, 24.0, 36.0])
    event, time = torch.tensor([1, 1]), torch.tensor([5.0, 30.0])
    first = obj.loss(out, event, time)
    first.backward()
    grads = [p.grad for p in net.backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    # the gradient reaches both ends: the patch embedding of the input and the class head
    assert net.backbone.swinViT.patch_embed.proj.weight.grad.abs().sum() > 0
    assert net.head.weight.grad.abs().sum() > 0
    # and a few optimiser steps on these two patients lower their loss
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(3):
        opt.step()
        opt.zero_grad()
        obj.loss(net(x), event, time).backward()
    assert obj.loss(net(x), event, time).item() < first.item()


def test_cox_head_and_channel_check():
    net = get_model("progswin-cox").build(get_model("progswin-cox").config(**TINY, head="cox"), streams=2, channels=1)
    net.eval()
    with torch.no_grad():
        risk = net(torch.rand(3, 2, 1, 32, 32, 32))
    assert risk.shape == (3,) and torch.isfinite(risk).all() and risk.std() > 0  # one log-hazard per patient
    with pytest.raises(ValueError, match="input channels"):
        net(torch.rand(1, 3, 1, 32, 32, 32))
    with pytest.raises(ValueError, match="multiple of 12"):
        ProgSwinUNETR(ProgSwinConfig(feature_size=18), streams=3, channels=1)


def test_time_points_are_channels_in_order():
    """Swapping two time points changes the output: the model sees them as distinct channels."""
    torch.manual_seed(0)
    net = ProgSwinUNETR(ProgSwinConfig(**TINY), streams=3, channels=1).eval()
    x = torch.rand(2, 3, 1, 32, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(net(x), net(x[:, [1, 0, 2]]))


def test_risk_class_objective_matches_cross_entropy_on_known_patients():
    obj = RiskClassObjective([10.0, 20.0, 30.0])
    out = torch.randn(5, 4)
    time = torch.tensor([5.0, 15.0, 25.0, 40.0, 12.0])
    event = torch.tensor([1, 1, 1, 0, 0])  # the last one: censored before 30, class unknown
    expected = torch.nn.functional.cross_entropy(out[:4], torch.tensor([3, 2, 1, 0]))
    assert obj.loss(out, event, time).item() == pytest.approx(expected.item(), rel=1e-6)
    # no patient with a known class: zero loss that still back-propagates
    z = torch.randn(2, 4, requires_grad=True)
    loss = obj.loss(z, torch.tensor([0, 0]), torch.tensor([3.0, 4.0]))
    loss.backward()
    assert loss.item() == 0 and z.grad is not None
    # risk: the expected class; a state round trip keeps the edges
    p = obj.probabilities(out.numpy())
    assert np.allclose(p.sum(axis=1), 1) and np.allclose(obj.predict_risk(out.numpy()), p @ np.arange(4))
    assert objective_from_state(obj.state()).edges == obj.edges


def test_progswin_presets():
    cfg = resolve_config("cpu", model="progswin")
    assert cfg.preprocessing.kind == "volume" and cfg.preprocessing.size == 32
    assert cfg.network_config().classes == 4
    assert cfg.objective("months").edges == pytest.approx([12.0, 24.0, 36.0])
    assert cfg.objective("days").edges[-1] == pytest.approx(36 * 365.25 / 12)
    paper = resolve_config("paper", model="progswin")
    assert paper.preprocessing.size == 128 and paper.training.batch_size == 2 and paper.training.lr == 1e-3
    assert paper.training.weight_decay == 1e-4
    five = resolve_config("cpu", model="progswin", class_edges_months=[6, 12, 24, 36])
    assert five.network_config().classes == 5
    with pytest.raises(ValueError, match="needs volume preprocessing"):
        TrainRunConfig(model="progswin")  # the default preprocessing is representative slices
    with pytest.raises(ValueError, match="needs slices preprocessing"):
        TrainRunConfig(model="crnn", preprocessing={"kind": "volume"})


def test_worst_first_classes_and_risk():
    """Yao et al. number class 0 the worst: the labels turn round, the risk stays higher = worse."""
    late, early = RiskClassObjective([12.0, 24.0, 36.0]), RiskClassObjective([12.0, 24.0, 36.0], worst_first=True)
    time, event = np.array([6.0, 18.0, 30.0, 40.0, 20.0]), np.array([1, 1, 1, 0, 0])
    assert late.labels(time, event).tolist() == [3, 2, 1, 0, -1]
    assert early.labels(time, event).tolist() == [0, 1, 2, 3, -1]
    out = np.array([[5.0, 0, 0, 0], [0, 0, 0, 5.0]])  # sure of class 0, sure of class 3
    assert late.predict_risk(out)[0] < late.predict_risk(out)[1]
    assert early.predict_risk(out)[0] > early.predict_risk(out)[1]  # class 0 is the worst here
    assert torch.allclose(early.torch_risk(torch.as_tensor(out)), torch.as_tensor(early.predict_risk(out)))
    back = objective_from_state(early.state())
    assert back.worst_first and back.rule == "os-edges"
    sev = RiskClassObjective([36.0], worst_first=True, rule="os-severity")
    assert sev.outputs == 4
    with pytest.raises(ValueError, match="severity read"):
        sev.labels(time, event)
    with pytest.raises(ValueError, match="one survival threshold"):
        RiskClassObjective([12.0, 36.0], rule="os-severity")


def test_paper_head_is_relu_and_pooling_of_class_channels():
    torch.manual_seed(0)
    net = ProgSwinUNETR(ProgSwinConfig(**TINY, head_style="paper"), streams=3, channels=1)
    assert isinstance(net.head, torch.nn.Identity) and net.backbone.out.conv.conv.out_channels == 4
    x = torch.rand(2, 3, 1, 32, 32, 32)
    out = net(x)
    dense = torch.relu(net.backbone(x.reshape(2, 3, 32, 32, 32)))
    assert torch.allclose(out, dense.mean(dim=(2, 3, 4)), atol=1e-6) and (out >= 0).all()
    out.sum().backward()
    assert net.backbone.swinViT.patch_embed.proj.weight.grad.abs().sum() > 0


def test_sliding_window_inference_at_the_roi():
    """Inference over 32^3 windows of a 64^3 volume: what MONAI's sliding_window_inference of the dense
    output gives, then pooled; training (and any pass with gradients) reads the whole volume."""
    from monai.inferers import sliding_window_inference

    torch.manual_seed(0)
    net = ProgSwinUNETR(ProgSwinConfig(**TINY, head_style="paper", inference_roi=32), streams=1, channels=1).eval()
    x = torch.rand(1, 1, 1, 64, 64, 64)
    with torch.no_grad():
        got = net(x)
        want = sliding_window_inference(x[:, 0], (32, 32, 32), 1, net.dense, overlap=0.25, mode="gaussian")
        whole = torch.relu(net.backbone(x[:, 0])).mean(dim=(2, 3, 4))
    assert torch.allclose(got, want.mean(dim=(2, 3, 4)), atol=1e-5)
    assert not torch.allclose(got, whole, atol=1e-5)
    with torch.enable_grad():
        assert torch.allclose(net(x), whole, atol=1e-5)


@pytest.mark.slow
def test_paper_config_forward_at_128_cubed():
    """The paper's input, 3 time points x 128^3, one forward pass (about 30 s and 5 GB on 2 CPU cores;
    benchmarks/progswin_memory.py records time and peak memory)."""
    cfg = resolve_config("paper", model="progswin")
    net = get_model("progswin").build(cfg.network_config(), streams=3, channels=1).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 1, 128, 128, 128))
    assert out.shape == (1, 4) and torch.isfinite(out).all()
