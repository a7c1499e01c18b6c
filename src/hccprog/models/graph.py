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
* :class:`LiverTumorFusionModule` (MMDFM): tumor and liver nodes, a cosine similarity map, cross
  top-k selection and message passing in both directions, fused with learned weights.
* :class:`CrossSequenceTopologyModule` (CMTFM): the first- and second-order neighbourhood of the
  tumor's strongest position in both MRI sequences, fused over one graph that links each node to
  its same-sequence neighbours and to its twin in the other sequence.

Every module works on 2D and 3D feature maps. Dense tensors only (no torch-geometric): the graphs
have tens to a few hundred nodes.
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


def _gather_positions(flat: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """(B, n, C) features of ``flat`` (B, C, P) at flat positions ``pos`` (B, n)."""
    return torch.gather(flat, 2, pos.unsqueeze(1).expand(-1, flat.shape[1], -1)).transpose(1, 2)


def _put_back(flat: torch.Tensor, pos: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
    return flat.scatter(2, pos.unsqueeze(1).expand(-1, flat.shape[1], -1), nodes.transpose(1, 2))


class LiverTumorFusionModule(nn.Module):
    """MMDFM: the top-``nodes`` positions of the tumor and of the liver feature maps become nodes;
    each tumor node draws on its ``k`` most similar liver nodes (cosine similarity map) and each
    liver node on its ``k`` most similar tumor nodes (cross top-k selection) through a max-relative
    graph convolution; the messages are added with learned weights and put back in place."""

    def __init__(self, channels: int, *, nodes: int = 16, k: int = 4) -> None:
        super().__init__()
        self.nodes, self.k = nodes, k
        self.to_tumor = MaxRelativeGraphConv(channels)
        self.to_liver = MaxRelativeGraphConv(channels)
        self.alpha = nn.Parameter(torch.tensor(0.5))  # weight of the liver -> tumor message
        self.beta = nn.Parameter(torch.tensor(0.5))  # weight of the tumor -> liver message

    @staticmethod
    def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B, n, m) cosine similarity of the rows of ``a`` (B, n, C) and ``b`` (B, m, C)."""
        return nn.functional.normalize(a, dim=-1) @ nn.functional.normalize(b, dim=-1).transpose(1, 2)

    def forward(self, tumor: torch.Tensor, liver: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ft, fl = tumor.flatten(2), liver.flatten(2)
        pt, pl = top_k_positions(tumor, self.nodes), top_k_positions(liver, self.nodes)
        nt, nl = _gather_positions(ft, pt), _gather_positions(fl, pl)
        sim = self.similarity(nt.detach(), nl.detach())
        k = min(self.k, nt.shape[1], nl.shape[1])
        t_idx = sim.topk(k, dim=2).indices  # liver nodes most like each tumor node
        l_idx = sim.transpose(1, 2).topk(k, dim=2).indices  # tumor nodes most like each liver node
        nt2 = nt + self.alpha * self.to_tumor(nt, t_idx, source=nl)
        nl2 = nl + self.beta * self.to_liver(nl, l_idx, source=nt)
        return _put_back(ft, pt, nt2).view_as(tumor), _put_back(fl, pl, nl2).view_as(liver)


def neighbourhood(center: torch.Tensor, shape: tuple[int, ...], radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat positions (B, M) of the cube of ``radius`` around ``center`` (B, D) in a grid of
    ``shape``, ordered by ring, and the ring (Chebyshev distance 0, 1, ..., radius) of each (M,).
    Radius 1 in 3D: the centre and its 26 first-order neighbours; radius 2 adds the 98
    second-order ones. At a border the cube is shifted inward (it keeps its M distinct voxels);
    the radius shrinks to fit a grid smaller than the cube."""
    dims = len(shape)
    radius = min(radius, (min(shape) - 1) // 2)
    axes = [torch.arange(-radius, radius + 1)] * dims
    offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, dims)
    ring = offsets.abs().amax(dim=1)
    order = torch.argsort(ring, stable=True)
    offsets, ring = offsets[order].to(center.device), ring[order]
    hi = torch.tensor(shape, device=center.device) - 1 - radius
    center = torch.minimum(center.clamp_min(radius), hi)
    coords = center.unsqueeze(1) + offsets.unsqueeze(0)  # (B, M, D)
    strides = torch.tensor([int(torch.tensor(shape[i + 1:]).prod()) for i in range(dims)], device=center.device)
    return (coords * strides).sum(-1), ring


class CrossSequenceTopologyModule(nn.Module):
    """CMTFM: around the tumor's strongest position (largest channel sum of the first sequence's
    tumor map) the first- and second-order neighbourhood (radius 2 cube) of BOTH sequences becomes
    one graph: each node links to its spatial neighbours of the same sequence (``k`` nearest in
    feature space among the cube, dilated kNN) and to the same position in the other sequence;
    a graph convolution fuses them and the features are put back in place."""

    def __init__(self, channels: int, *, radius: int = 2, k: int = 6) -> None:
        super().__init__()
        self.radius, self.k = radius, k
        self.conv = MaxRelativeGraphConv(channels)
        self.norm = nn.LayerNorm(channels)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if a.shape != b.shape:
            raise ValueError(f"the two sequences' maps differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        shape = tuple(a.shape[2:])
        fa, fb = a.flatten(2), b.flatten(2)
        top = fa.sum(1).argmax(dim=1)  # (B,) flat index of the centre
        center = torch.stack(torch.unravel_index(top, shape), dim=-1)
        pos, _ = neighbourhood(center, shape, self.radius)
        na, nb = _gather_positions(fa, pos), _gather_positions(fb, pos)
        m = na.shape[1]
        nodes = torch.cat([na, nb], dim=1)  # (B, 2M, C): sequence a, then b at the same positions
        k = min(self.k, m)
        own_a = dilated_knn(na.detach(), k)
        own_b = dilated_knn(nb.detach(), k) + m
        twin = torch.arange(m, device=a.device)
        cross = torch.cat([twin + m, twin]).view(1, 2 * m, 1).expand(a.shape[0], -1, -1)
        idx = torch.cat([torch.cat([own_a, own_b], dim=1), cross], dim=2)  # (B, 2M, k + 1)
        fused = nodes + self.conv(self.norm(nodes), idx)
        return _put_back(fa, pos, fused[:, :m]).view_as(a), _put_back(fb, pos, fused[:, m:]).view_as(b)
