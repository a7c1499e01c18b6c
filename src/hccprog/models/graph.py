"""Compact dense graph operations for DMMGNet (Tang et al., PRCV 2024), Vision-GNN style.

* :func:`dilated_knn`: the k nearest neighbours of every node (itself included, as in ViG) taken
  from its ``k * dilation`` nearest with stride ``dilation``.
* :func:`top_k_positions`: the k spatial positions of a feature map with the largest channel sum
  (the node selection of DMMGNet's graph modules).
* :class:`MaxRelativeGraphConv`: ViG's max-relative graph convolution,
  ``x_i' = W [x_i, max_j (x_j - x_i)]`` over the neighbours j of i.
* :class:`SpatialGraphModule` (SGCM): top-k positions of a feature map become graph nodes, a
  dilated kNN graph in feature space links them, a graph convolution updates them and the updated
  features are put back in place (residual); every other position is unchanged.

Dense tensors only (no torch-geometric): the graphs have tens to a few hundred nodes.
"""

from __future__ import annotations

import torch
from torch import nn


def pairwise_sq_distances(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N, M) squared euclidean distances between the rows of ``x`` (B, N, C) and ``y`` (B, M, C)."""
    y = x if y is None else y
    d = (x * x).sum(-1, keepdim=True) - 2 * x @ y.transpose(1, 2) + (y * y).sum(-1).unsqueeze(1)
    return d.clamp_min(0)


def dilated_knn(x: torch.Tensor, k: int, dilation: int = 1) -> torch.Tensor:
    """(B, N, k) neighbour indices: of the ``k * dilation`` nearest nodes of each node (itself
    first), every ``dilation``-th. Needs ``k * dilation <= N``."""
    n = x.shape[1]
    if k < 1 or dilation < 1 or k * dilation > n:
        raise ValueError(f"k * dilation must be in [1, {n}] nodes, got k={k}, dilation={dilation}")
    d = pairwise_sq_distances(x)
    # self first even with duplicate features: a node's distance to itself is set below all others
    d = d - torch.eye(n, dtype=d.dtype, device=d.device).unsqueeze(0)
    idx = d.topk(k * dilation, dim=-1, largest=False).indices
    return idx[:, :, ::dilation]


def gather_nodes(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(B, N, k, C) features of the neighbours ``idx`` (B, N, k) of ``x`` (B, M, C)."""
    b, n, k = idx.shape
    flat = idx.reshape(b, n * k)
    return torch.gather(x, 1, flat.unsqueeze(-1).expand(-1, -1, x.shape[-1])).view(b, n, k, -1)


def top_k_positions(fmap: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k) flat indices of the k positions of ``fmap`` (B, C, *spatial) with the largest
    channel sum (ties: the lower index)."""
    score = fmap.flatten(2).sum(1)
    k = min(k, score.shape[1])
    return score.topk(k, dim=1, sorted=True).indices


class MaxRelativeGraphConv(nn.Module):
    """ViG's max-relative graph convolution on node features (B, N, C) and neighbours (B, N, k)."""

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.lin = nn.Linear(2 * channels, out_channels or channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, idx: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """``source``: the features the neighbour indices point into (default ``x``)."""
        nb = gather_nodes(x if source is None else source, idx)
        rel = (nb - x.unsqueeze(2)).amax(dim=2)
        return self.act(self.lin(torch.cat([x, rel], dim=-1)))


class SpatialGraphModule(nn.Module):
    """SGCM: graph convolution over the top-k positions of a feature map, put back in place."""

    def __init__(self, channels: int, *, nodes: int = 16, k: int = 4, dilation: int = 1) -> None:
        super().__init__()
        self.nodes, self.k, self.dilation = nodes, k, dilation
        self.conv = MaxRelativeGraphConv(channels)
        self.norm = nn.LayerNorm(channels)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        c = fmap.shape[1]
        flat = fmap.flatten(2)  # (B, C, P)
        pos = top_k_positions(fmap, self.nodes)  # (B, n)
        n = pos.shape[1]
        nodes = torch.gather(flat, 2, pos.unsqueeze(1).expand(-1, c, -1)).transpose(1, 2)  # (B, n, C)
        k = min(self.k, n)
        dil = max(1, min(self.dilation, n // k))
        idx = dilated_knn(nodes.detach(), k, dil)
        updated = nodes + self.conv(self.norm(nodes), idx)
        out = flat.scatter(2, pos.unsqueeze(1).expand(-1, c, -1), updated.transpose(1, 2))
        return out.view_as(fmap)
