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
