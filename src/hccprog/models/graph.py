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


def top_k_positions(fmap: torch.Tensor, k: int, *, per_slice: bool = False) -> torch.Tensor:
    """Flat indices of the positions of ``fmap`` (B, C, *spatial) with the largest channel sum
    (ties: the lower index): (B, k) over the whole map, or with ``per_slice`` (a 3D map
    (B, C, D, H, W), DMMGNet's stack of D slice maps) the k largest of each slice, (B, D * k),
    slice by slice (Tang et al., Eq. 5: phi_i = gather(top_k(index_i), f_i), i = 1..d)."""
    score = fmap.flatten(2).sum(1)
    if not per_slice or fmap.ndim != 5:
        k = min(k, score.shape[1])
        return score.topk(k, dim=1, sorted=True).indices
    d = fmap.shape[2]
    plane = fmap.shape[3] * fmap.shape[4]
    k = min(k, plane)
    idx = score.view(score.shape[0], d, plane).topk(k, dim=2, sorted=True).indices  # (B, D, k)
    offset = torch.arange(d, device=fmap.device).view(1, d, 1) * plane
    return (idx + offset).reshape(score.shape[0], d * k)


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

    def __init__(self, channels: int, *, nodes: int = 16, k: int = 4, dilation: int = 1,
                 per_slice: bool = False) -> None:
        """``nodes``: top-k positions over the whole map, or of each slice with ``per_slice``."""
        super().__init__()
        self.nodes, self.k, self.dilation, self.per_slice = nodes, k, dilation, per_slice
        self.conv = MaxRelativeGraphConv(channels)
        self.norm = nn.LayerNorm(channels)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        c = fmap.shape[1]
        flat = fmap.flatten(2)  # (B, C, P)
        pos = top_k_positions(fmap, self.nodes, per_slice=self.per_slice)  # (B, n)
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

    def __init__(self, channels: int, *, nodes: int = 16, k: int = 4, per_slice: bool = False) -> None:
        super().__init__()
        self.nodes, self.k, self.per_slice = nodes, k, per_slice
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
        pt = top_k_positions(tumor, self.nodes, per_slice=self.per_slice)
        pl = top_k_positions(liver, self.nodes, per_slice=self.per_slice)
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


def mask_patch_center(mask: torch.Tensor, patch: int = 3) -> torch.Tensor:
    """(B, D) grid coordinates of the centre of the ``patch``-wide cube holding the most of ``mask``
    (B, 1, *spatial), ties to the lower index: Tang et al.'s CMTFM centre ("MTPV is decomposed into
    3*3*3 patches, finding the largest patch as the center patch of the tumor")."""
    dims = mask.ndim - 2
    pool = nn.functional.avg_pool3d if dims == 3 else nn.functional.avg_pool2d
    shape = tuple(mask.shape[2:])
    p = min(patch, *shape)
    share = pool(mask.float(), kernel_size=p, stride=1, padding=p // 2, count_include_pad=True)
    share = share[(..., *[slice(0, s) for s in shape])]  # an even patch pads one more
    top = share.flatten(1).argmax(dim=1)
    return torch.stack(torch.unravel_index(top, shape), dim=-1)


class CrossSequenceTopologyModule(nn.Module):
    """CMTFM: around the tumor's centre the first- and second-order neighbourhood (radius 2 cube) of
    BOTH sequences becomes a graph: each node links to its ``k`` nearest neighbours in feature
    space among the same sequence's nodes of its ring (dilated kNN) and to the same position in
    the other sequence; a graph convolution fuses them and the features are put back in place.

    The centre: the largest 3x3x3 patch of the portal-venous tumor mask when ``mask`` is given
    (Tang et al., CMTFM), else the largest channel sum of the first sequence's tumor map.
    ``separate_rings`` (the paper: "Feature fusion is performed using GCN for the first-order
    neighbors of the two sequences and the same is also done for the features of the second-order
    neighbors"): each ring (the centre joins the first) has its own graph and graph convolution;
    False: one graph and convolution over the whole cube."""

    def __init__(self, channels: int, *, radius: int = 2, k: int = 6, separate_rings: bool = False) -> None:
        super().__init__()
        self.radius, self.k, self.separate_rings = radius, k, separate_rings
        rings = radius if separate_rings else 1
        self.convs = nn.ModuleList(MaxRelativeGraphConv(channels) for _ in range(rings))
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(rings))

    def _fuse(self, na: torch.Tensor, nb: torch.Tensor, ring: int) -> torch.Tensor:
        """(B, 2M, C): ``na`` then ``nb`` (B, M, C) at the same positions, updated by one graph."""
        m = na.shape[1]
        nodes = torch.cat([na, nb], dim=1)
        k = min(self.k, m)
        own_a = dilated_knn(na.detach(), k)
        own_b = dilated_knn(nb.detach(), k) + m
        twin = torch.arange(m, device=na.device)
        cross = torch.cat([twin + m, twin]).view(1, 2 * m, 1).expand(na.shape[0], -1, -1)
        idx = torch.cat([torch.cat([own_a, own_b], dim=1), cross], dim=2)  # (B, 2M, k + 1)
        return nodes + self.convs[ring](self.norms[ring](nodes), idx)

    def forward(self, a: torch.Tensor, b: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``a``, ``b``: the two sequences' tumor maps (B, C, *spatial); ``mask``: the portal-venous
        tumor mask on their grid (B, 1, *spatial), or None."""
        if a.shape != b.shape:
            raise ValueError(f"the two sequences' maps differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        shape = tuple(a.shape[2:])
        fa, fb = a.flatten(2), b.flatten(2)
        if mask is not None and bool((mask > 0).any()):
            center = mask_patch_center(mask)
        else:
            top = fa.sum(1).argmax(dim=1)  # (B,) flat index of the centre
            center = torch.stack(torch.unravel_index(top, shape), dim=-1)
        pos, ring = neighbourhood(center, shape, self.radius)
        na, nb = _gather_positions(fa, pos), _gather_positions(fb, pos)
        if not self.separate_rings or int(ring.max()) < 1:
            fused = self._fuse(na, nb, 0)
            return _put_back(fa, pos, fused[:, :pos.shape[1]]).view_as(a), \
                _put_back(fb, pos, fused[:, pos.shape[1]:]).view_as(b)
        for r in range(1, int(ring.max()) + 1):
            sel = torch.nonzero((ring <= 1) if r == 1 else (ring == r)).flatten().to(a.device)
            fused = self._fuse(na[:, sel], nb[:, sel], r - 1)
            fa = _put_back(fa, pos[:, sel], fused[:, :len(sel)])
            fb = _put_back(fb, pos[:, sel], fused[:, len(sel):])
        return fa.view_as(a), fb.view_as(b)
