"""DMMGNet (Tang et al., PRCV 2024): a dual-sequence multi-modal graph network for progression
after TACE.

Input ``x``: (B, T, S, K, C, H, W) from the slice preprocessing with two streams (the liver crop
and the tumor crop, in that order) and two channels (the two MRI series, T2 and portal-venous in
the paper), K consecutive-by-area slices per time point. That gives the paper's four branches
(liver T2, tumor T2, liver PV, tumor PV); each is a 2D CNN (MONAI ``ResNet``, its own weights)
run on every slice. After each of the four stages the K slice maps of a branch are stacked into a
(C, K, h, w) volume and the graph modules of :mod:`hccprog.models.graph` act on it:

* SGCM (``sgcm``): per branch, the top-k positions of each slice (``node_selection="per-slice"``,
  Eq. 5) or of the whole stack, dilated kNN graph, graph convolution, put back;
* MMDFM (``mmdfm``): per series, fusion of the tumor and the liver branch through a similarity
  map and cross top-k selection (the same node selection);
* CMTFM (``cmtfm``): around the centre of the tumor (the largest 3x3x3 patch of the
  portal-venous tumor mask map when ``mask_inputs``, Eq. 4; else the strongest position of the
  first series' tumor map), its 26 first- and 98 second-order neighbours in the slice stack
  fused across the two series' tumor branches, one graph per ring (``cmtfm_rings="separate"``)
  or one for both.

With ``mask_inputs`` the input carries the liver and tumor masks as two channels after the two
series (``preprocessing.mask_channels``); they are resized to each stage's grid (the paper's
MLPV_i, MTPV_i) and never enter the CNN branches.

Each branch is then averaged over (h, w) per slice; the four branches are concatenated per slice
and an LSTM runs over the slices (time points after one another when T > 1). The head gives the
log-hazard (Cox partial likelihood, PFS) and, with ``progression_head``, the logit of
progression within the horizon (1 year in the paper). Every module is switchable, for the
paper's ablation table.
"""

from __future__ import annotations

from itertools import combinations
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from hccprog.models.graph import CrossSequenceTopologyModule, LiverTumorFusionModule, SpatialGraphModule
from hccprog.models.registry import ModelSpec


class DMMGNetConfig(BaseModel):
    """Architecture of DMMGNet (the preprocessing lives in ``SliceConfig``)."""

    model_config = ConfigDict(extra="forbid")
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)  # channels of the four stages (ResNet18)
    blocks: tuple[int, int, int, int] = (2, 2, 2, 2)  # residual blocks per stage
    sgcm: bool = True
    mmdfm: bool = True
    cmtfm: bool = True
    graph_stages: tuple[int, ...] = (1, 2, 3, 4)  # stages followed by the graph modules
    nodes: int = Field(16, ge=2)  # top-k positions that become graph nodes (SGCM, MMDFM)
    k: int = Field(4, ge=1)  # neighbours per node
    dilation: int = Field(2, ge=1)  # dilated kNN (SGCM)
    cmtfm_radius: int = Field(2, ge=1)  # 1: the 26 first-order neighbours; 2: also the 98 second-order
    # top-k positions of each slice (Eq. 5, the paper) or of the whole slice stack (SGCM, MMDFM)
    node_selection: Literal["per-slice", "stack"] = "per-slice"
    # CMTFM: one graph per neighbourhood ring (the paper) or one over the whole cube
    cmtfm_rings: Literal["separate", "joint"] = "separate"
    # the liver and tumor mask maps as inputs (the last two channels, preprocessing.mask_channels): CMTFM's
    # centre is the largest 3x3x3 patch of the portal-venous tumor mask (Eq. 4)
    mask_inputs: bool = True
    hidden: int = Field(128, ge=1)  # LSTM units
    dropout: float = Field(0.3, ge=0, lt=1)
    progression_head: bool = True  # a second output: the logit of progression within the horizon
    liver_stream: int = Field(0, ge=0)
    tumor_stream: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _check(self) -> DMMGNetConfig:
        if not set(self.graph_stages) <= {1, 2, 3, 4}:
            raise ValueError(f"graph_stages must be among 1..4, got {self.graph_stages}")
        if self.liver_stream == self.tumor_stream:
            raise ValueError("liver_stream and tumor_stream must differ")
        return self

    @property
    def modules_label(self) -> str:
        """The paper's ablation naming: 'baseline' or '+SGCM+MMDFM' etc."""
        on = [n for n, f in (("SGCM", self.sgcm), ("MMDFM", self.mmdfm), ("CMTFM", self.cmtfm)) if f]
        return "baseline" if not on else "+" + "+".join(on)


class Branch(nn.Module):
    """One CNN branch: a 2D MONAI ResNet whose stages are run one by one."""

    def __init__(self, cfg: DMMGNetConfig) -> None:
        super().__init__()
        from monai.networks.nets.resnet import ResNet

        self.net = ResNet("basic", list(cfg.blocks), list(cfg.widths), spatial_dims=2, n_input_channels=1,
                          conv1_t_stride=2, feed_forward=False)
        self.net.fc = None
        self.net.avgpool = nn.Identity()

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        return n.maxpool(n.act(n.bn1(n.conv1(x))))

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.net, f"layer{i}")(x)


class DMMGNet(nn.Module):
    def __init__(self, cfg: DMMGNetConfig, *, streams: int, channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.mmdfm and streams < 2:
            raise ValueError("MMDFM fuses a liver and a tumor stream: the preprocessing gives "
                             f"{streams} stream(s); add a liver and a tumor stream or set mmdfm: false")
        if cfg.mmdfm and max(cfg.liver_stream, cfg.tumor_stream) >= streams:
            raise ValueError(f"liver_stream / tumor_stream out of range for {streams} streams")
        if cfg.cmtfm and channels != 2:  # series (the mask channels are not counted)
            raise ValueError(f"CMTFM links two MRI series: the preprocessing gives {channels} channel(s); "
                             "select two series (e.g. T2 and portal-venous) or set cmtfm: false")
        self.streams, self.channels = streams, channels
        nb = streams * channels
        per_slice = cfg.node_selection == "per-slice"
        self.branches = nn.ModuleList(Branch(cfg) for _ in range(nb))
        stages = sorted(cfg.graph_stages)
        self.sgcm = nn.ModuleDict({
            str(i): nn.ModuleList(SpatialGraphModule(cfg.widths[i - 1], nodes=cfg.nodes, k=cfg.k,
                                                     dilation=cfg.dilation, per_slice=per_slice) for _ in range(nb))
            for i in stages}) if cfg.sgcm else None
        self.mmdfm = nn.ModuleDict({
            str(i): nn.ModuleList(LiverTumorFusionModule(cfg.widths[i - 1], nodes=cfg.nodes, k=cfg.k,
                                                         per_slice=per_slice)
                                  for _ in range(channels)) for i in stages}) if cfg.mmdfm else None
        self.cmtfm = nn.ModuleDict({
            str(i): CrossSequenceTopologyModule(cfg.widths[i - 1], radius=cfg.cmtfm_radius, k=cfg.k + 2,
                                                separate_rings=cfg.cmtfm_rings == "separate")
            for i in stages}) if cfg.cmtfm else None
        feat = cfg.widths[-1] * nb
        self.drop = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(feat, cfg.hidden, batch_first=True)
        self.head = nn.Linear(cfg.hidden, 2 if cfg.progression_head else 1)

    def _branch(self, s: int, c: int) -> int:
        return s * self.channels + c

    def _graph(self, i: int, maps: list[torch.Tensor], n: int, k: int,
               tumor_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Graph modules after stage ``i`` on (n * k, C, h, w) maps, seen as (n, C, k, h, w);
        ``tumor_mask``: (n * k, 1, H, W) the tumor mask of the input slices (CMTFM's centre)."""
        key = str(i)
        vols = [m.view(n, k, *m.shape[1:]).transpose(1, 2) for m in maps]
        if self.sgcm is not None and key in self.sgcm:
            vols = [mod(v) for mod, v in zip(self.sgcm[key], vols, strict=True)]
        lv, tu = self.cfg.liver_stream, self.cfg.tumor_stream
        if self.mmdfm is not None and key in self.mmdfm:
            for c in range(self.channels):
                bt, bl = self._branch(tu, c), self._branch(lv, c)
                vols[bt], vols[bl] = self.mmdfm[key][c](vols[bt], vols[bl])
        if self.cmtfm is not None and key in self.cmtfm:
            b0, b1 = self._branch(tu, 0), self._branch(tu, 1)
            mask = None
            if tumor_mask is not None:  # the mask map MTPV_i on this stage's grid
                h, w = maps[0].shape[-2:]
                small = nn.functional.adaptive_avg_pool2d(tumor_mask.float(), (h, w))
                mask = small.view(n, k, 1, h, w).transpose(1, 2)
            vols[b0], vols[b1] = self.cmtfm[key](vols[b0], vols[b1], mask)
        return [v.transpose(1, 2).reshape(n * k, *v.shape[1:2], *v.shape[3:]) for v in vols]

    def cam_layers(self) -> list[str]:
        """The layers Grad-CAM explains: the last stage of every branch (liver/tumor x series)."""
        return [f"branches.{i}.net.layer4" for i in range(len(self.branches))]

    def saliency_index(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The (t, s, k, c) slice of ``x[0]`` behind each row of the explained layers, in the order
        they run (branch by branch: stream, then series; rows time point by slice). The mask
        channels of ``mask_inputs`` have no map."""
        _, t, s, k = shape[:4]
        return [(ti, si, ki, ci) for si in range(s) for ci in range(self.channels) for ti in range(t)
                for ki in range(k)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T * K, branches * F): per slice, the four branches' pooled features."""
        b, t, s, k, c, h, w = x.shape
        extra = 2 if self.cfg.mask_inputs else 0  # the liver and tumor mask channels after the series
        if s != self.streams or c != self.channels + extra:
            raise ValueError(f"DMMGNet was built for {self.streams} streams x {self.channels} series"
                             + (" + 2 mask channels (mask_inputs; preprocessing.mask_channels: true)" if extra else "")
                             + f", got {s} x {c} channels")
        n = b * t
        tumor_mask = None
        if extra:  # the tumor stream's tumor mask (on the PV grid: every series shares the mask's grid)
            tumor_mask = x[:, :, self.cfg.tumor_stream, :, self.channels + 1].reshape(n * k, 1, h, w)
        maps = [self.branches[self._branch(si, ci)].stem(
            x[:, :, si, :, ci].reshape(n * k, 1, h, w).float()) for si in range(s) for ci in range(self.channels)]
        for i in range(1, 5):
            maps = [br.stage(i, m) for br, m in zip(self.branches, maps, strict=True)]
            if i in self.cfg.graph_stages:
                maps = self._graph(i, maps, n, k, tumor_mask)
        pooled = [m.mean(dim=(2, 3)).view(b, t * k, -1) for m in maps]
        return torch.cat(pooled, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2): log-hazard and progression logit; (B,) without the progression head."""
        h, _ = self.lstm(self.drop(self.features(x)))
        out = self.head(self.drop(h[:, -1]))
        return out if self.cfg.progression_head else out.squeeze(-1)


#: DMMGNet's two series under the names MRI cohorts commonly use (the first one a cohort has).
T2_PV = ["MR_T2|MR_T2W|T2|T2W", "MR_PV|PV|MR_PVP"]


def _input(*, size: int, spacing_mm: list[float], slices: int) -> dict:
    """DMMGNet's input: liver and tumor boxes (+10 mm) of T2 and PV, a slab of consecutive slices."""
    return {"series": T2_PV, "timepoints": 1, "slices": slices, "selection": "contiguous", "size": size,
            "spacing_mm": spacing_mm, "mask_channels": True,
            "streams": [{"name": "liver", "roi": "liver", "fov_mm": None, "margin_mm": 10.0},
                        {"name": "tumor", "roi": "tumor", "fov_mm": None, "margin_mm": 10.0}]}


#: Named configurations (see :data:`hccprog.models.crnn.PRESETS`). DMMGNet (Tang et al. 2024): liver and
#: tumor boxes (+10 mm) of T2 and portal-venous MRI (the first of the names MRI cohorts commonly use), 10
#: consecutive slices of 112 x 112, four ResNet branches. ``cpu``: 48 px, ResNet widths 16-128 with one block
#: per stage (the paper size costs ~1.5 s per forward of two patients on this CPU), as measured in
#: benchmarks/results/dmmgnet*.{json,md} (early stopping on an inner split).
PRESETS: dict[str, dict] = {
    "cpu": {
        "preprocessing": _input(size=48, spacing_mm=[2.0, 2.0, 5.0], slices=10),
        "network": {"widths": [16, 32, 64, 128],
                    "blocks": [1, 1, 1, 1],
                    "nodes": 8,
                    "k": 4,
                    "hidden": 32,
                    "dropout": 0.3},
        "training": {"epochs": 10,
                     "batch_size": 16,
                     "lr": 0.001,
                     "patience": 4,
                     "val_fraction": 0.2,
                     "slices_per_step": None},
        "fusion_locf": False,
    },
    "paper": {
        "preprocessing": _input(size=112, spacing_mm=[1.0, 1.0, 5.0], slices=10),
        "network": {"widths": [64, 128, 256, 512],
                    "blocks": [2, 2, 2, 2],
                    "nodes": 16,
                    "k": 4,
                    "hidden": 128,
                    "dropout": 0.3},
        # Tang et al. Sec. 4.1: "an Adam optimizer with a learning rate of 5e-3 and a batch size of 16 ...
        # decayed by a factor of 0.8 in case the loss did not decrease" (read: after one such epoch). The
        # paper gives no epoch count, weight decay or stopping rule: hccprog's 100 epochs, patience 15.
        "training": {"epochs": 100, "batch_size": 16, "lr": 0.005, "schedule": "plateau", "plateau_factor": 0.8,
                     "plateau_patience": 0, "patience": 15, "val_fraction": 0.2},
    },
    "tiny": {
        "preprocessing": _input(size=24, spacing_mm=[4.0, 4.0, 5.0], slices=4),
        "network": {"widths": [8, 8, 16, 16], "blocks": [1, 1, 1, 1], "nodes": 4, "k": 2, "hidden": 8},
        "training": {"epochs": 2, "batch_size": 16, "patience": 2, "val_fraction": 0.25, "augment": False},
    },
}


def check_input(net: DMMGNetConfig, preprocessing) -> None:
    """``mask_inputs`` reads the mask maps that ``preprocessing.mask_channels`` appends, and only then."""
    masks = getattr(preprocessing, "mask_channels", None)
    if masks is None:
        return
    if net.mask_inputs and not masks:
        raise ValueError("network.mask_inputs: DMMGNet reads the liver and tumor mask maps (Tang et al., Eq. 4); set "
                         "preprocessing.mask_channels: true, or network.mask_inputs: false")
    if masks and not net.mask_inputs:
        raise ValueError("preprocessing.mask_channels: the network does not read mask maps (network.mask_inputs: "
                         "false); set both, or neither")


def _ablations() -> dict[str, dict]:
    """Tang et al.'s ablation rows: the baseline, each module, each pair, all three."""
    names = ("sgcm", "mmdfm", "cmtfm")
    rows = {}
    for r in range(4):
        for on in combinations(names, r):
            label = "baseline" if not on else "DMMGNet" if r == 3 else "+" + "+".join(n.upper() for n in on)
            rows[label] = {n: n in on for n in names}
    return rows


#: The names ``hccprog train --model`` gives this module (collected by :mod:`hccprog.models.registry`).
SPECS = [
    ModelSpec("dmmgnet", "DMMGNet (Tang et al. 2024): liver/tumor x T2/portal-venous CNN branches, "
              "graph modules SGCM, MMDFM, CMTFM after each stage, LSTM over slices, Cox loss and a "
              "1-year progression head", DMMGNetConfig, DMMGNet, objective="cox-progression",
              ablations=_ablations(), presets=PRESETS, check_input=check_input),
]
