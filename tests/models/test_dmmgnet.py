"""DMMGNet: shapes, module switches, what the graph modules connect, input checks, the
Cox + progression objective, and the paper configuration's forward and backward pass."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hccprog.models import get_model
from hccprog.models.dmmgnet import DMMGNet, DMMGNetConfig
from hccprog.survival.endpoints import horizon_labels
from hccprog.training.config import resolve_config
from hccprog.training.losses import cox_loss
from hccprog.training.objectives import CoxProgressionObjective, objective_from_state

SMALL = {"widths": (8, 8, 16, 16), "blocks": (1, 1, 1, 1), "nodes": 4, "k": 2, "hidden": 8, "dropout": 0.0}
SHAPE = (2, 1, 2, 6, 4, 32, 32)  # (B, T, streams liver/tumor, K slices, channels T2/PV + liver/tumor masks, H, W)


def _x(shape=SHAPE, *, corner: tuple[int, int] = (20, 20)) -> torch.Tensor:
    """Random T2/PV slices with their mask maps: the liver everywhere, the tumor a square at ``corner``."""
    torch.manual_seed(1)
    x = torch.rand(*shape)
    x[..., 2, :, :] = 1.0
    x[..., 3, :, :] = 0.0
    x[..., 3, corner[0]:corner[0] + 8, corner[1]:corner[1] + 8] = 1.0
    return x


def _net(**flags) -> DMMGNet:
    torch.manual_seed(0)
    return DMMGNet(DMMGNetConfig(**SMALL, **flags), streams=2, channels=2).eval()


@pytest.mark.parametrize(("sgcm", "mmdfm", "cmtfm"), list(itertools.product([False, True], repeat=3)))
def test_every_ablation_builds_and_back_propagates(sgcm, mmdfm, cmtfm):
    net = _net(sgcm=sgcm, mmdfm=mmdfm, cmtfm=cmtfm).train()
    out = net(_x())
    assert out.shape == (2, 2)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.branches.parameters()
               if p.requires_grad)
    assert (net.sgcm is not None) == sgcm and (net.mmdfm is not None) == mmdfm and (net.cmtfm is not None) == cmtfm
    label = net.cfg.modules_label
    assert label == "baseline" if not (sgcm or mmdfm or cmtfm) else label.startswith("+")


def _slice_features(net: DMMGNet, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.features(x)  # (B, K, 4F)


def test_baseline_keeps_slices_and_branches_apart():
    """Without graph modules a slice's features depend on that slice of that branch only."""
    net = _net(sgcm=False, mmdfm=False, cmtfm=False)
    x = _x()
    y = x.clone()
    y[:, :, 1, 3, 1] += 0.5  # tumor stream, slice 3, second series (tumor PV branch)
    a, b = _slice_features(net, x), _slice_features(net, y)
    changed = (a - b).abs().amax(dim=0) > 1e-6  # (K, 4F)
    f = a.shape[-1] // 4
    assert changed[3, 3 * f:].any()  # branch order: liver T2, liver PV, tumor T2, tumor PV
    assert not changed[[0, 1, 2, 4, 5]].any() and not changed[:, : 3 * f].any()


def test_graph_modules_link_branches():
    """CMTFM links the two series' tumor branches; MMDFM the tumor and liver branch of a series."""
    x = _x()
    y = x.clone()
    y[:, :, 1, :, 1] += 0.5  # the whole tumor PV branch
    f = None
    for flags, other in (({"cmtfm": True}, 2), ({"mmdfm": True}, 1)):  # tumor T2; liver PV
        net = _net(**{"sgcm": False, "mmdfm": False, "cmtfm": False, **flags})
        a, b = _slice_features(net, x), _slice_features(net, y)
        f = a.shape[-1] // 4
        assert not torch.allclose(a[..., other * f:(other + 1) * f], b[..., other * f:(other + 1) * f])
    net = _net(sgcm=False, mmdfm=False, cmtfm=False)
    a, b = _slice_features(net, x), _slice_features(net, y)
    assert torch.allclose(a[..., : 3 * f], b[..., : 3 * f])


def test_input_checks():
    with pytest.raises(ValueError, match="MMDFM"):
        DMMGNet(DMMGNetConfig(**SMALL), streams=1, channels=2)
    with pytest.raises(ValueError, match="CMTFM"):
        DMMGNet(DMMGNetConfig(**SMALL), streams=2, channels=3)
    net = DMMGNet(DMMGNetConfig(**SMALL, mmdfm=False, cmtfm=False, mask_inputs=False), streams=1, channels=1).eval()
    assert net(torch.rand(1, 1, 1, 4, 1, 32, 32)).shape == (1, 2)
    with pytest.raises(ValueError, match="streams"):
        net(torch.rand(1, 1, 2, 4, 1, 32, 32))
    no_head = DMMGNet(DMMGNetConfig(**SMALL, progression_head=False), streams=2, channels=2).eval()
    assert no_head(_x()).shape == (2,)
    with pytest.raises(ValueError, match="2 mask channels"):
        no_head(torch.rand(2, 1, 2, 6, 2, 32, 32))  # the series without their mask maps
    with pytest.raises(ValueError, match="mask_channels: true"):
        resolve_config("cpu", model="dmmgnet", preprocessing={"mask_channels": False})
    with pytest.raises(ValueError, match="set both, or neither"):
        resolve_config("cpu", model="dmmgnet", network={"mask_inputs": False})


def test_cmtfm_centre_is_the_largest_patch_of_the_tumor_mask():
    """Tang et al.: the centre is the largest 3x3x3 patch of the portal-venous tumor mask. Moving the
    tumor mask moves what CMTFM changes; the image is the same."""
    from hccprog.models.graph import CrossSequenceTopologyModule, mask_patch_center

    mask = torch.zeros(1, 1, 6, 8, 8)
    mask[0, 0, 1:4, 5:8, 0:3] = 1.0  # a 3x3x3 block: its centre (2, 6, 1)
    mask[0, 0, 5, 0, 0] = 1.0  # a lone voxel elsewhere
    assert mask_patch_center(mask).tolist() == [[2, 6, 1]]
    torch.manual_seed(0)
    m = CrossSequenceTopologyModule(4, radius=1, k=3, separate_rings=True)
    a, b = torch.randn(1, 4, 6, 8, 8), torch.randn(1, 4, 6, 8, 8)
    out, _ = m(a, b, mask)
    changed = (out - a).abs().sum(1)[0] > 0
    assert changed[1:4, 5:8, 0:3].all() and changed.sum() == 27  # the centre and its 26 neighbours only
    # separate rings: one graph convolution for the first-order ring (with the centre), one for the second
    two = CrossSequenceTopologyModule(4, radius=2, k=3, separate_rings=True)
    assert len(two.convs) == 2
    out2, _ = two(a, b, mask)
    assert ((out2 - a).abs().sum(1)[0] > 0).sum() == 125
    # the network reads the mask channel: moving the tumor moves the features
    net = _net(sgcm=False, mmdfm=False, cmtfm=True)
    f1, f2 = _slice_features(net, _x(corner=(2, 2))), _slice_features(net, _x(corner=(20, 20)))
    assert not torch.allclose(f1, f2)


def test_sgcm_selects_top_k_per_slice():
    """Eq. 5: phi_i = gather(top_k(index_i), f_i) for every slice i, not over the whole stack."""
    from hccprog.models.graph import top_k_positions

    fmap = torch.zeros(1, 2, 3, 4, 4)
    fmap[0, :, 0] = 10.0  # slice 0 dominates the stack
    fmap[0, :, 0, 0, 1] = 11.0
    fmap[0, :, 1, 1, 2] = 1.0
    fmap[0, :, 2, 3, 3] = 1.0
    per = top_k_positions(fmap, 1, per_slice=True)
    assert per.tolist() == [[1, 16 + 1 * 4 + 2, 32 + 3 * 4 + 3]]  # one position of each slice
    assert (top_k_positions(fmap, 3) < 16).all()  # over the stack: all in slice 0


def test_horizon_labels():
    t = np.array([5.0, 12.0, 20.0, 8.0, 12.0, 30.0])
    e = np.array([1, 1, 1, 0, 0, 0])
    assert horizon_labels(t, e, 12.0).tolist() == [1, 1, 0, -1, 0, 0]


def test_cox_progression_objective():
    obj = CoxProgressionObjective(12.0, weight=0.5)
    out = torch.randn(6, 2)
    t = torch.tensor([5.0, 12.0, 20.0, 8.0, 12.0, 30.0])
    e = torch.tensor([1, 1, 1, 0, 0, 0])
    known = torch.tensor([0, 1, 2, 4, 5])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out[known, 1], torch.tensor([1.0, 1, 0, 0, 0]))
    expected = cox_loss(out[:, 0], e, t) + 0.5 * bce
    assert obj.loss(out, e, t).item() == pytest.approx(expected.item(), rel=1e-6)
    assert CoxProgressionObjective(12.0, weight=0.0).loss(out, e, t).item() == pytest.approx(
        cox_loss(out[:, 0], e, t).item(), rel=1e-6)
    o = out.numpy().astype(float)
    assert np.allclose(obj.predict_risk(o), o[:, 0])
    assert np.allclose(obj.probabilities(o)[:, 0], 1 / (1 + np.exp(-o[:, 1])))
    back = objective_from_state(obj.state())
    assert isinstance(back, CoxProgressionObjective) and back.horizon == 12.0 and back.weight == 0.5


def test_registry_and_presets():
    spec = get_model("dmmgnet")
    assert spec.objective == "cox-progression" and spec.input == "slices"
    cfg = resolve_config("paper", model="dmmgnet")
    pre = cfg.preprocessing
    assert (pre.size, pre.slices, pre.selection) == (112, 10, "contiguous")
    assert pre.channels(["MR_T2W", "MR_ART", "MR_PV"]) == ["MR_T2W", "MR_PV"]
    assert pre.channels(["MR_PV", "MR_T2"]) == ["MR_T2", "MR_PV"]
    assert [s.roi for s in pre.streams] == ["liver", "tumor"]
    assert cfg.network_config().widths == (64, 128, 256, 512)
    assert cfg.objective("months").horizon == pytest.approx(12.0)
    # an ablation switches modules through the network config
    off = resolve_config("cpu", model="dmmgnet", network={"sgcm": False, "cmtfm": False}).network_config()
    assert (off.sgcm, off.mmdfm, off.cmtfm) == (False, True, False) and off.modules_label == "+MMDFM"
    # without the progression head the objective is the plain Cox likelihood
    assert resolve_config("cpu", model="dmmgnet", network={"progression_head": False}).objective("days").kind == "cox"


def test_paper_config_forward_and_backward_on_paper_sized_input():
    """Four ResNet18 branches on 10 slices of 112 x 112 (liver/tumor x T2/PV), batch of 2."""
    cfg = resolve_config("paper", model="dmmgnet")
    torch.manual_seed(0)
    net = get_model("dmmgnet").build(cfg.network_config(), streams=2, channels=2).train()
    assert sum(p.numel() for p in net.parameters()) > 40_000_000
    x = _x((2, 1, 2, 10, 4, 112, 112))
    out = net(x)
    assert out.shape == (2, 2)
    loss = CoxProgressionObjective(365.25).loss(out, torch.tensor([1, 0]), torch.tensor([100.0, 400.0]))
    loss.backward()
    unused = [n for n, p in net.named_parameters() if p.grad is None]
    # the last stage's grid (10 x 4 x 4) holds no second-order ring: CMTFM's second graph is not run there
    assert unused and all(n.startswith(("cmtfm.4.convs.1", "cmtfm.4.norms.1")) for n in unused), unused
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
