"""Dense graph operations of DMMGNet against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hccprog.models.graph import (
    MaxRelativeGraphConv,
    SpatialGraphModule,
    dilated_knn,
    gather_nodes,
    pairwise_sq_distances,
    top_k_positions,
)


def brute_knn(x: np.ndarray, k: int, dilation: int) -> np.ndarray:
    out = np.empty((x.shape[0], k), int)
    for i in range(x.shape[0]):
        d = [float(((x[i] - x[j]) ** 2).sum()) if j != i else -1.0 for j in range(x.shape[0])]
        order = sorted(range(x.shape[0]), key=lambda j: (d[j], j))
        out[i] = order[: k * dilation : dilation]
    return out


@pytest.mark.parametrize(("k", "dilation"), [(1, 1), (4, 1), (3, 2), (2, 5)])
def test_dilated_knn_equals_brute_force(k, dilation):
    rng = np.random.default_rng(k * 10 + dilation)
    x = rng.normal(size=(2, 12, 5))
    idx = dilated_knn(torch.as_tensor(x), k, dilation).numpy()
    for b in range(2):
        np.testing.assert_array_equal(idx[b], brute_knn(x[b], k, dilation))
    assert (idx[:, :, 0] == np.arange(12)).all()  # every node is its own first neighbour


def test_distances_gather_and_limits():
    x = torch.randn(1, 6, 3, dtype=torch.float64)
    d = pairwise_sq_distances(x)
    for i, j in itertools.product(range(6), range(6)):
        assert d[0, i, j].item() == pytest.approx(float(((x[0, i] - x[0, j]) ** 2).sum()), abs=1e-9)
    idx = torch.tensor([[[1, 2], [0, 0], [5, 4], [3, 3], [2, 1], [4, 5]]])
    nb = gather_nodes(x, idx)
    assert torch.equal(nb[0, 2, 0], x[0, 5]) and torch.equal(nb[0, 4, 1], x[0, 1])
    with pytest.raises(ValueError, match="k \\* dilation"):
        dilated_knn(x, 4, 2)


def test_top_k_positions_by_channel_sum():
    fmap = torch.zeros(1, 2, 3, 3)
    fmap[0, 0, 2, 1] = 5.0
    fmap[0, 1, 0, 0] = 3.0
    fmap[0, :, 1, 1] = 1.0  # sum 2
    assert top_k_positions(fmap, 3)[0].tolist() == [7, 0, 4]


def test_max_relative_conv_matches_formula():
    torch.manual_seed(0)
    conv = MaxRelativeGraphConv(3, 4)
    x = torch.randn(1, 5, 3)
    idx = dilated_knn(x, 2)
    expected = []
    for i in range(5):
        rel = torch.stack([x[0, j] - x[0, i] for j in idx[0, i]]).amax(0)
        expected.append(torch.nn.functional.gelu(conv.lin(torch.cat([x[0, i], rel]))))
    torch.testing.assert_close(conv(x, idx)[0], torch.stack(expected))


def test_sgcm_changes_only_the_selected_positions_and_is_differentiable():
    torch.manual_seed(0)
    m = SpatialGraphModule(8, nodes=5, k=3, dilation=1)
    fmap = torch.randn(2, 8, 6, 6, requires_grad=True)
    out = m(fmap)
    assert out.shape == fmap.shape
    pos = top_k_positions(fmap.detach(), 5)
    changed = (out - fmap).abs().flatten(2).sum(1) > 0  # (B, P)
    for b in range(2):
        assert set(torch.nonzero(changed[b]).flatten().tolist()) <= set(pos[b].tolist())
    out.sum().backward()
    assert fmap.grad is not None and m.conv.lin.weight.grad is not None
    vol = m(torch.randn(1, 8, 4, 4, 4))  # dimension-agnostic: 3D maps too
    assert vol.shape == (1, 8, 4, 4, 4)


def test_neighbourhood_rings_and_borders():
    from hccprog.models.graph import neighbourhood

    shape = (7, 7, 7)
    pos, ring = neighbourhood(torch.tensor([[3, 3, 3]]), shape, 2)
    assert pos.shape == (1, 125) and torch.bincount(ring).tolist() == [1, 26, 98]
    assert pos[0, 0].item() == np.ravel_multi_index((3, 3, 3), shape)  # the centre first
    expected = {np.ravel_multi_index(c, shape) for c in itertools.product(range(1, 6), repeat=3)}
    assert set(pos[0].tolist()) == expected
    corner, _ = neighbourhood(torch.tensor([[0, 6, 0]]), shape, 1)  # shifted inward, still 27 voxels
    assert len(set(corner[0].tolist())) == 27
    assert set(corner[0].tolist()) == {np.ravel_multi_index(c, shape)
                                       for c in itertools.product(range(0, 3), range(4, 7), range(0, 3))}
    small, ring = neighbourhood(torch.tensor([[1, 1]]), (3, 3), 2)  # 2D, the radius shrinks to fit
    assert sorted(small[0].tolist()) == list(range(9)) and ring.max() == 1


def test_mmdfm_similarity_selection_and_put_back():
    from hccprog.models.graph import LiverTumorFusionModule

    torch.manual_seed(0)
    m = LiverTumorFusionModule(6, nodes=5, k=2)
    tumor, liver = torch.randn(2, 6, 4, 4, 3), torch.randn(2, 6, 4, 4, 3)
    a, b = torch.randn(2, 5, 6), torch.randn(2, 3, 6)
    sim = m.similarity(a, b)
    brute = torch.tensor([[[float(torch.nn.functional.cosine_similarity(a[i, r], b[i, c], dim=0))
                            for c in range(3)] for r in range(5)] for i in range(2)])
    torch.testing.assert_close(sim, brute)
    t2, l2 = m(tumor, liver)
    for before, after in ((tumor, t2), (liver, l2)):
        pos = top_k_positions(before, 5)
        changed = ((after - before).abs().flatten(2).sum(1) > 0)
        for i in range(2):
            assert set(torch.nonzero(changed[i]).flatten().tolist()) <= set(pos[i].tolist())
    with torch.no_grad():
        m.alpha.zero_()
        m.beta.zero_()
    t0, l0 = m(tumor, liver)
    assert torch.equal(t0, tumor) and torch.equal(l0, liver)  # zero weights: no fusion
    with torch.no_grad():
        m.alpha.fill_(0.5)
    m(tumor, liver)[0].sum().backward()
    assert m.alpha.grad is not None and m.alpha.grad != 0


def test_cmtfm_is_local_and_links_the_two_sequences():
    from hccprog.models.graph import CrossSequenceTopologyModule, neighbourhood

    torch.manual_seed(0)
    m = CrossSequenceTopologyModule(4, radius=1, k=3)
    a, b = torch.randn(1, 4, 6, 6, 6), torch.randn(1, 4, 6, 6, 6)
    a[0, :, 2, 3, 3] += 10.0  # the tumor's strongest position
    a2, b2 = m(a, b)
    pos, _ = neighbourhood(torch.tensor([[2, 3, 3]]), (6, 6, 6), 1)
    inside = torch.zeros(216, dtype=torch.bool)
    inside[pos[0]] = True
    for before, after in ((a, a2), (b, b2)):
        changed = (after - before).abs().flatten(2).sum(1)[0] > 0
        assert not changed[~inside].any() and changed[inside].any()
    b_other = b.clone()
    b_other[0, 0, 2, 3, 3] += 50.0  # change sequence b at the centre only ...
    a3, _ = m(a, b_other)
    assert not torch.allclose(a3[0, :, 2, 3, 3], a2[0, :, 2, 3, 3])  # ... and sequence a's centre hears it
    with pytest.raises(ValueError, match="differ in shape"):
        m(a, b[:, :, :5])
    flat2d = m(torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8))  # 2D maps, a batch
    assert flat2d[0].shape == (2, 4, 8, 8)
