"""ProgSwin-UNETR (Yao et al., Radiol Med 2025): a Swin-UNETR encoder and decoder on masked
multi-time-point arterial-phase volumes, with an adaptive average pooling head.

Input ``x``: (B, T, C, D, H, W) from :mod:`hccprog.preprocessing.volumes` (the paper: T = 3 time
points, pre-treatment and after the first and second TACE, C = 1 arterial series, 128\\ :sup:`3`);
the time points (times series) are stacked as ``T * C`` input channels of MONAI's ``SwinUNETR``,
whose decoder output is turned into the risk-class logits (cross-entropy, the paper) or one
log-hazard (``head="cox"``, an option of hccprog) by one of two heads:

- ``head_style="paper"``, as Yao et al. draw it (Methods and Appendix 4: "an output head applying
  ReLU activation and adaptive average pooling", "4 output channels corresponding to survival
  classification"): the decoder's output block has one channel per class, and the logits are
  the adaptive average pool of its ReLU;
- ``head_style="linear"``: the decoder gives ``feature_size`` channels, average-pooled to one
  vector, dropout, and a linear layer (hccprog's; a linear read-out of pooled features trains
  better on small cohorts, docs/models/progswin.md).

``inference_roi`` (the paper: 64): at inference (evaluation mode without gradients) a volume
larger than the ROI is scored by MONAI's ``sliding_window_inference`` of the dense decoder output
over ROI-sized windows (the paper's "region of interest (ROI) size of (64, 64, 64) during the
sliding window inference process"), pooled afterwards; training and Grad-CAM (which needs one
activation map of the whole volume) read the whole volume.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from hccprog.models.registry import ModelSpec


class ProgSwinConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feature_size: int = Field(24, ge=12)  # Swin-UNETR embedding size (multiple of 12)
    depths: tuple[int, int, int, int] = (2, 2, 2, 2)
    num_heads: tuple[int, int, int, int] = (3, 6, 12, 24)
    window_size: int = Field(7, ge=2)
    norm: Literal["instance", "batch"] = "instance"  # batch: needed when the bottleneck is 1 voxel (32^3 input)
    dropout: float = Field(0.1, ge=0, lt=1)  # before the head
    head: Literal["classes", "cox"] = "classes"
    head_style: Literal["linear", "paper"] = "linear"
    classes: int = Field(4, ge=2)
    inference_roi: int | None = Field(None, ge=32)  # sliding-window inference (the paper: 64); None: whole volume
    sw_overlap: float = Field(0.25, ge=0, lt=1)
    checkpointing: bool = False  # gradient checkpointing inside Swin (memory for time)


class ProgSwinUNETR(nn.Module):
    def __init__(self, cfg: ProgSwinConfig, *, streams: int, channels: int) -> None:
        super().__init__()
        from monai.networks.nets import SwinUNETR

        check_input(cfg, None)  # the same rule train checks before preprocessing
        self.cfg = cfg
        self.in_channels = streams * channels
        outputs = cfg.classes if cfg.head == "classes" else 1
        paper = cfg.head_style == "paper"
        self.backbone = SwinUNETR(in_channels=self.in_channels, out_channels=outputs if paper else cfg.feature_size,
                                  feature_size=cfg.feature_size, depths=cfg.depths, num_heads=cfg.num_heads,
                                  window_size=cfg.window_size, norm_name=cfg.norm, spatial_dims=3,
                                  use_checkpoint=cfg.checkpointing)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Identity() if paper else nn.Linear(cfg.feature_size, outputs)

    @staticmethod
    def cam_layers() -> list[str]:
        """The layer Grad-CAM explains: the Swin-UNETR decoder's full-resolution output, the map
        that the head pools (the ProgSwin paper's Grad-CAM++ on the volume)."""
        return ["backbone"]

    @staticmethod
    def saliency_index(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """One map per patient, shared by every time point and series of ``x[0]`` (they are stacked
        as the input channels)."""
        return [()]

    def dense(self, v: torch.Tensor) -> torch.Tensor:
        """The decoder's full-resolution output (B, channels, D, H, W); ReLU'd for the paper's head."""
        out = self.backbone(v)
        return torch.relu(out) if self.cfg.head_style == "paper" else out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, channels): the pooled decoder output (the logits themselves with the paper's head)."""
        b = x.shape[0]
        v = x.reshape(b, -1, *x.shape[-3:]).float()
        if v.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels (time points x series), got {v.shape[1]}")
        roi = self.cfg.inference_roi
        # inference (evaluation mode, no gradients): ROI windows; training and Grad-CAM: the whole volume
        if (not self.training and not torch.is_grad_enabled() and roi is not None
                and any(s > roi for s in v.shape[-3:])):
            from monai.inferers import sliding_window_inference

            dense = sliding_window_inference(v, (roi,) * 3, sw_batch_size=max(1, b), predictor=self.dense,
                                             overlap=self.cfg.sw_overlap, mode="gaussian")
        else:
            dense = self.dense(v)
        return self.pool(dense).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, classes) logits, or (B,) log-hazards with ``head="cox"``."""
        feats = self.features(x)
        out = feats if self.cfg.head_style == "paper" else self.head(self.drop(feats))
        return out.squeeze(-1) if self.cfg.head == "cox" else out


#: Named configurations (see :data:`hccprog.models.crnn.PRESETS`). ProgSwin-UNETR (Yao et al. 2025):
#: 3 x 128^3 masked arterial volumes, batch 2, lr 1e-3, wd 1e-4. ``cpu``: 32^3 at 4 mm, a 12-wide Swin with
#: 4-voxel windows (a 16^3 token grid; 7 would pad it to 21^3) and batch norm (the bottleneck of a 32^3 input is
#: one voxel, where instance norm is undefined), batch 8 and batch-norm statistics recomputed from the final
#: weights (without it the eval-mode outputs barely vary between patients, docs/models/progswin.md).
PRESETS: dict[str, dict] = {
    "cpu": {
        "preprocessing": {"kind": "volume", "size": 32, "spacing_mm": [4.0, 4.0, 4.0], "timepoints": 3},
        "network": {"feature_size": 12, "window_size": 4, "norm": "batch", "dropout": 0.1},
        "training": {"epochs": 10,
                     "batch_size": 8,
                     "lr": 0.001,
                     "patience": 4,
                     "val_fraction": 0.0,
                     "slices_per_step": None,
                     "recompute_bn": True},
        "fusion_locf": False,
    },
    "paper": {
        "preprocessing": {"kind": "volume", "size": 128, "spacing_mm": [1.5, 1.5, 1.5], "timepoints": 3},
        # Yao et al., Methods: "an output head applying ReLU activation and adaptive average pooling";
        # Results: "a region of interest (ROI) size of (64, 64, 64) during the sliding window inference process"
        "network": {"feature_size": 24, "window_size": 7, "norm": "instance", "dropout": 0.1,
                    "head_style": "paper", "inference_roi": 64,
                    # not in the paper: gradient checkpointing inside Swin (the same gradients, recomputed). One
                    # 3 x 128^3 step at batch 2 peaks at 10.7 GB resident with it; without it, over 24 GiB
                    "checkpointing": True},
        # Appendix 5: OS < 36 vs >= 36 months, each split by the expert severity read; class 0 = high risk
        "objective_params": {"class_rule": "os-severity", "os_threshold_months": 36.0, "class_order": "worst-first"},
        # Yao et al., Results: "a batch size of 2, a learning rate of 0.001, a weight decay of 0.0001";
        # the training loss "stabilizes near the end of training (up to 160 epochs)"
        "training": {"epochs": 160,
                     "batch_size": 2,
                     "lr": 0.001,
                     "patience": 15,
                     "val_fraction": 0.2,
                     "weight_decay": 0.0001},
    },
    "tiny": {
        "preprocessing": {"kind": "volume", "size": 32, "spacing_mm": [4.0, 4.0, 4.0], "timepoints": 3},
        "network": {"feature_size": 12, "window_size": 4, "norm": "batch", "depths": [1, 1, 1, 1]},
        "training": {"epochs": 2, "batch_size": 8, "patience": 2, "val_fraction": 0.25, "augment": False},
    },
}


def check_input(net: ProgSwinConfig, preprocessing) -> None:
    """Swin-UNETR's size rules, checked before any preprocessing: ``feature_size`` a multiple of 12 (its
    attention heads split it) and the volume's side divisible by 32 (five 2x patch-merging stages)."""
    if net.feature_size % 12:
        raise ValueError(f"network.feature_size must be a multiple of 12 (Swin-UNETR), got {net.feature_size}")
    size = getattr(preprocessing, "size", None)
    if size is not None and size % 32:
        raise ValueError(f"preprocessing.size must be divisible by 32 for Swin-UNETR (32, 64, 96, 128, ...), got "
                         f"{size}")


#: The names ``hccprog train --model`` gives this module (collected by :mod:`hccprog.models.registry`).
SPECS = [
    ModelSpec("progswin", "ProgSwin-UNETR (Yao et al. 2025): Swin-UNETR on masked multi-time-point "
              "arterial-phase volumes, pooled head, 4 risk classes, cross-entropy", ProgSwinConfig,
              ProgSwinUNETR, objective="classes", input="volume", presets=PRESETS, check_input=check_input),
    ModelSpec("progswin-cox", "ProgSwin-UNETR with a Cox head (one log-hazard, partial likelihood)",
              ProgSwinConfig, ProgSwinUNETR, defaults={"head": "cox"}, input="volume", presets=PRESETS,
              check_input=check_input),
]
