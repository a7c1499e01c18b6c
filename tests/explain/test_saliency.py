"""Grad-CAM, Grad-CAM++ and occlusion on networks whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hccprog.explain.saliency import grad_cam, occlusion


class BlobNet(nn.Module):
    """A bright-blob detector: averaging convolutions, a threshold, then global average pooling. Its
    output depends on the one known region where the input holds a blob, nowhere else."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.features = nn.Sequential(conv(1, 4, 3, padding=1), nn.ReLU(), conv(4, 8, 3, padding=1), nn.ReLU())
        with torch.no_grad():
            for layer, bias in ((self.features[0], -0.6), (self.features[2], -0.1)):
                layer.weight.fill_(1.0 / layer.weight[0].numel())
                layer.bias.fill_(bias)  # the background (< 0.3) gives nothing, the blob (1.0) passes
        self.head = nn.Linear(8, 1)
        with torch.no_grad():
            self.head.weight.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.head(f.mean(dim=tuple(range(2, f.ndim)))).reshape(-1)


def _blob_input(size: tuple[int, ...], region: tuple[slice, ...]) -> torch.Tensor:
    x = 0.3 * torch.rand(1, 1, *size, generator=torch.Generator().manual_seed(0))
    x[(0, 0, *region)] = 1.0
    return x


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
@pytest.mark.parametrize("dims", [2, 3])
def test_the_map_peaks_in_the_region_the_output_depends_on(dims, method):
    size = (24, 24) if dims == 2 else (16, 16, 16)
    region = (slice(4, 9), slice(14, 19)) if dims == 2 else (slice(3, 7), slice(9, 13), slice(2, 6))
    net = BlobNet(dims)
    x = _blob_input(size, region)
    cam, risk = grad_cam(net, x, net, layers=["features.3"], index=[()], method=method)
    assert cam.shape == x.shape[1:]
    with torch.no_grad():
        assert risk == pytest.approx(float(net(x)))
    peak = np.unravel_index(np.nanargmax(cam[0]), size)
    assert all(r.start <= p < r.stop for p, r in zip(peak, region, strict=True))
    near = np.zeros(size, bool)
    near[tuple(slice(r.start - 2, r.stop + 2) for r in region)] = True
    assert cam[0][near].sum() / cam[0].sum() > 0.95  # and the mass sits there


def _paper_gradcam_pp(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Grad-CAM++ written out pixel by pixel from Chattopadhay et al. (2018), eq. 19 with the
    exponential's derivatives (as their reference code): an independent check of the vectorised one."""
    k, h, w = acts.shape
    cam = np.zeros((h, w))
    for c in range(k):
        total = acts[c].sum()
        weight = 0.0
        for i in range(h):
            for j in range(w):
                g = grads[c, i, j]
                denom = 2 * g ** 2 + total * g ** 3
                alpha = g ** 2 / ((denom if denom != 0 else 1.0) + 1e-7)
                weight += alpha * max(g, 0.0)
        cam += weight * acts[c]
    return np.maximum(cam, 0)


def test_gradcam_matches_monai_and_gradcam_pp_matches_the_paper():
    from monai.visualize import GradCAM

    from hccprog.explain.saliency import cam_maps

    net = BlobNet(2).eval()
    x = _blob_input((32, 32), (slice(5, 11), slice(18, 25)))
    x[0, 0, 20:24, 4:9] = 0.8  # a second, fainter blob
    ours, _ = grad_cam(net, x, net, layers=["features.3"], index=[()], method="gradcam", normalize=False)
    logits = nn.Sequential()  # MONAI wants (B, classes) logits
    logits.net = net
    logits.forward = lambda v: net(v)[:, None]
    ref = GradCAM(nn_module=logits, target_layers="net.features.3")(x, class_idx=0)[0, 0].numpy()
    ours = ours[0]
    assert ours.max() > 0
    # MONAI's default normaliser maps (min, max) to (1, 0)
    np.testing.assert_allclose((ours.max() - ours) / (ours.max() - ours.min()), ref, atol=1e-5)

    # Grad-CAM++ as the paper writes it (MONAI's GradCAMpp sums A * g^3 in the denominator instead)
    acts, grads = {}, {}
    handle = net.features[3].register_forward_hook(lambda _m, _i, o: acts.setdefault("a", o))
    x = x.clone().requires_grad_(True)
    out = net(x)
    acts["a"].register_hook(lambda g: grads.setdefault("g", g))
    out.sum().backward()
    handle.remove()
    expected = _paper_gradcam_pp(acts["a"][0].detach().double().numpy(), grads["g"][0].double().numpy())
    got = cam_maps(acts["a"].detach(), grads["g"], "gradcam++")[0].numpy()
    assert expected.max() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7 * expected.max())


class TwoCalls(nn.Module):
    """One blob detector run twice (as the CRNN's shared encoder runs once per stream); the risk
    reads the second call only."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = BlobNet(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (1, 2, 1, H, W)
        a = self.enc(x[:, 0])
        b = self.enc(x[:, 1])
        return 0 * a + b


def test_every_call_of_a_shared_layer_is_explained_on_its_own_input():
    net = TwoCalls()
    x = torch.stack([_blob_input((16, 16), (slice(10, 14), slice(10, 14))),
                     _blob_input((16, 16), (slice(2, 6), slice(3, 7)))], dim=1)
    cam, _ = grad_cam(net, x, net, layers=["enc.features.3"], index=[(0,), (1,)])
    assert cam.shape == (2, 1, 16, 16)
    assert np.nanmax(cam[0]) == 0  # the first input does not reach the risk
    peak = np.unravel_index(np.argmax(cam[1, 0]), (16, 16))
    assert 2 <= peak[0] < 6 and 3 <= peak[1] < 7


def test_a_layer_that_is_not_there_is_an_error():
    net = TwoCalls()
    with pytest.raises(ValueError, match="no module"):
        grad_cam(net, torch.rand(1, 2, 1, 8, 8), net, layers=["nowhere"], index=[(0,)])


@pytest.mark.parametrize("dims", [2, 3])
def test_occlusion_finds_the_region(dims):
    size = (24, 24) if dims == 2 else (16, 16, 16)
    region = (slice(4, 10), slice(14, 20)) if dims == 2 else (slice(4, 8), slice(8, 12), slice(2, 6))

    def risk(v: torch.Tensor) -> torch.Tensor:
        return v[(slice(None), 0, *region)].mean(dim=tuple(range(1, len(region) + 1)))

    x = torch.rand(1, 1, *size) + 0.5
    occ, base = occlusion(risk, x, spatial_dims=dims, mask_size=4)
    assert occ.shape == x.shape[1:]
    assert base == pytest.approx(float(risk(x)))
    peak = np.unravel_index(np.argmax(occ[0]), size)
    assert all(r.start - 2 <= p < r.stop + 2 for p, r in zip(peak, region, strict=True))
    outside = np.ones(size, bool)
    outside[tuple(slice(max(r.start - 4, 0), r.stop + 4) for r in region)] = False
    assert np.abs(occ[0][outside]).max() < 1e-6  # hiding what the risk never reads changes nothing


def test_per_class_targets_of_a_risk_class_model():
    """ProgSwin's Grad-CAM++ per target class: each class's logit has its own map; the targets a
    risk-class model accepts, and the error for a model without classes."""
    from hccprog.errors import ConfigError
    from hccprog.explain.run import class_targets
    from hccprog.models.progswin import ProgSwinConfig, ProgSwinUNETR
    from hccprog.training.objectives import CoxObjective, RiskClassObjective

    obj = RiskClassObjective([36.0], worst_first=True, rule="os-severity")
    assert class_targets("all", obj, None) == [0, 1, 2, 3]
    assert class_targets("predicted", obj, np.array([0.1, 0.2, 0.6, 0.1])) == [2]
    assert class_targets("1", obj, None) == [1] and class_targets("risk", obj, None) == [None]
    with pytest.raises(ConfigError, match=r"a class 0\.\.3"):
        class_targets("7", obj, None)
    with pytest.raises(ConfigError, match="only a risk-class model"):
        class_targets("all", CoxObjective(), None)
    torch.manual_seed(0)
    net = ProgSwinUNETR(ProgSwinConfig(feature_size=12, window_size=4, norm="batch", depths=(1, 1, 1, 1),
                                       head_style="paper"), streams=1, channels=1)
    x = torch.rand(1, 1, 1, 32, 32, 32)
    maps = [grad_cam(net, x, lambda v, k=k: net(v)[:, k], layers=net.cam_layers(), index=[()])[0] for k in range(4)]
    assert all(m.shape == (1, 1, 32, 32, 32) and np.isfinite(m).all() for m in maps)
    assert not np.allclose(maps[0], maps[3])  # each class has its own map
