"""User-supplied ImageNet weights (``network.encoder_weights``) in the namings torchvision, timm and
efficientnet-pytorch save them, mapped onto hccprog's MONAI encoders; tested on small files written here."""

from __future__ import annotations

import pytest
import torch

from hccprog.models.encoders import build_encoder, load_state, map_state_dict


def _torchvision_style(enc) -> dict[str, torch.Tensor]:
    """The encoder's tensors as a torchvision ResNet checkpoint names them: no shortcut-convolution bias,
    a classifier ``fc``, saved from a DataParallel wrapper (``module.``) inside ``{"state_dict": ...}``."""
    state = {f"module.{k}": v.clone() for k, v in enc.backbone.state_dict().items()
             if not k.endswith("downsample.0.bias")}
    state["module.fc.weight"] = torch.randn(1000, 512)
    state["module.fc.bias"] = torch.randn(1000)
    return state


def test_a_torchvision_resnet_checkpoint_loads_by_name(tmp_path):
    torch.manual_seed(0)
    source = build_encoder("resnet18")
    for p in source.backbone.parameters():
        p.data.normal_()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save({"state_dict": _torchvision_style(source), "epoch": 90}, path)
    enc = build_encoder("resnet18", weights=path)
    got = enc.backbone.state_dict()
    for k, v in source.backbone.state_dict().items():
        if k.endswith("downsample.0.bias"):
            assert torch.equal(got[k], torch.zeros_like(v))  # torchvision's shortcut has no bias
        else:
            assert torch.equal(got[k], v), k
    assert enc.normalize  # ImageNet weights: ImageNet input statistics
    assert not build_encoder("resnet18").normalize


def test_an_rgb_first_convolution_is_adapted_to_one_channel(tmp_path):
    source = build_encoder("resnet18")
    path = tmp_path / "rgb.pth"
    torch.save(_torchvision_style(source), path)
    enc = build_encoder("resnet18", in_channels=1, weights=path).eval()
    rgb = source.backbone.state_dict()["conv1.weight"]
    assert torch.allclose(enc.backbone.state_dict()["conv1.weight"], rgb.sum(dim=1, keepdim=True))
    with torch.no_grad():
        assert enc(torch.rand(2, 1, 64, 64)).shape == (2, 512)


def test_an_efficientnet_checkpoint_in_another_naming_loads_in_order(tmp_path):
    """timm and torchvision name EfficientNet-B0's layers otherwise but register them in MONAI's order:
    the tensors are matched in order, each shape checked; the classifier is dropped."""
    torch.manual_seed(1)
    source = build_encoder("efficientnet-b0")
    for p in source.backbone.parameters():
        p.data.normal_()
    own = source.backbone.state_dict()
    renamed = {f"features.{i}.{k.rsplit('.', 1)[-1]}": v.clone() for i, (k, v) in enumerate(own.items())
               if not k.endswith("num_batches_tracked")}  # another naming, the same order
    renamed["classifier.1.weight"] = torch.randn(1000, 1280)
    renamed["classifier.1.bias"] = torch.randn(1000)
    path = tmp_path / "b0.pth"
    torch.save(renamed, path)
    assert map_state_dict(renamed, own)[1] == "order"
    enc = build_encoder("efficientnet-b0", weights=path)
    for k, v in own.items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(enc.backbone.state_dict()[k], v), k
    # the order is checked, not trusted: two tensors swapped give a clear error
    items = list(renamed.items())
    items[0], items[1] = items[1], items[0]
    torch.save(dict(items), path)
    with pytest.raises(ValueError, match=r"do not fit this encoder.*another architecture"):
        build_encoder("efficientnet-b0", weights=path)


def test_weights_of_another_architecture_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(build_encoder("resnet50").backbone.state_dict(), path)
    with pytest.raises(ValueError, match=r"resnet50\.pth: the weights do not fit this encoder"):
        build_encoder("resnet18", weights=path)


def test_the_encoders_own_state_round_trips_unchanged(tmp_path):
    enc = build_encoder("resnet-compact", in_channels=2)
    path = tmp_path / "own.pt"
    torch.save(enc.backbone.state_dict(), path)
    other = build_encoder("resnet-compact", in_channels=2)
    assert load_state(other.backbone, path) == "own" and not other.normalize
