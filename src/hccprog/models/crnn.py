"""CRNN (Xia et al. 2024): a 2D encoder on representative slices, mean over slices, an LSTM over
time points, a linear risk head.

Input ``x``: (B, T, S, K, C, H, W) = batch, time points (baseline, follow-ups), streams (ROI
crops, e.g. liver and tumor; the paper's liver and lung), K representative slices, C channels
(series), pixels. Every slice goes through the encoder (one per stream, or one shared), features
are averaged over the K slices and concatenated over streams: one vector per time point. Rad-D
(``recurrent=True``) runs an LSTM over the T vectors and maps its last hidden state to the risk;
Rad-S (``recurrent=False``) maps the baseline vector directly. The risk is a log-hazard: higher
is worse.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from hccprog.models.encoders import COMPACT_WIDTHS, EncoderName, build_encoder
from hccprog.models.registry import ModelSpec


class CRNNConfig(BaseModel):
    """Architecture of the CRNN (the preprocessing lives in ``SliceConfig``)."""

    model_config = ConfigDict(extra="forbid")
    encoder: EncoderName = "efficientnet-b0"
    pretrained: bool = False  # efficientnet-lite0 only: offline ImageNet weights
    encoder_weights: str | None = None  # a user-supplied encoder state dict
    encoder_widths: tuple[int, int, int, int] = COMPACT_WIDTHS  # resnet-compact only: stage widths
    shared_encoder: bool = True  # one encoder for every stream
    freeze_encoder: bool = False
    hidden: int = Field(64, ge=1)  # LSTM units
    recurrent: bool = True  # True: Rad-D (LSTM over time points); False: Rad-S (baseline only)
    # joint: one LSTM over the streams' concatenated features; per-stream (Xia et al.): an LSTM per organ
    # stream, their last states concatenated
    temporal: Literal["joint", "per-stream"] = "joint"
    head_hidden: list[int] = Field(default_factory=list)  # hidden linear layers (ReLU) before the risk
    dropout: float = Field(0.3, ge=0, lt=1)


class CRNN(nn.Module):
    def __init__(self, cfg: CRNNConfig, *, streams: int, channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.streams = streams
        n_enc = 1 if cfg.shared_encoder else streams
        self.encoders = nn.ModuleList(
            build_encoder(cfg.encoder, in_channels=channels, pretrained=cfg.pretrained, weights=cfg.encoder_weights,
                          widths=cfg.encoder_widths)
            for _ in range(n_enc))
        if cfg.freeze_encoder:
            for p in self.encoders.parameters():
                p.requires_grad_(False)
        per = self.encoders[0].out_features
        feat = per * streams
        self.drop = nn.Dropout(cfg.dropout)
        self.lstms = None
        if cfg.recurrent and cfg.temporal == "per-stream":
            self.lstm = None
            self.lstms = nn.ModuleList(nn.LSTM(per, cfg.hidden, batch_first=True) for _ in range(streams))
            width = cfg.hidden * streams
        elif cfg.recurrent:
            self.lstm = nn.LSTM(feat, cfg.hidden, batch_first=True)
            width = cfg.hidden
        else:
            self.lstm = None
            width = feat
        layers: list[nn.Module] = []
        for h in cfg.head_hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = h
        self.hidden_layers = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, S * F): slice features averaged over the K slices, per time point."""
        b, t, s, k = x.shape[:4]
        if not self.cfg.recurrent:
            x, t = x[:, :1], 1
        out = []
        for j in range(s):
            enc = self.encoders[0 if self.cfg.shared_encoder else j]
            f = enc(x[:, :, j].reshape(b * t * k, *x.shape[4:]).float())
            out.append(f.view(b, t, k, -1).mean(dim=2))
        return torch.cat(out, dim=-1)

    def cam_layers(self) -> list[str]:
        """The layers Grad-CAM explains: the last feature map of each encoder in use."""
        n = 1 if self.cfg.shared_encoder else self.streams
        return [f"encoders.{j}.{self.encoders[j].cam_layer}" for j in range(n)]

    def saliency_index(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """For one patient (``shape`` = x's, B = 1), the (t, s, k) slice of ``x[0]`` behind each row
        of the explained layer's outputs, in the order the layer produces them (one call per
        stream, rows time point by slice)."""
        _, t, s, k = shape[:4]
        t = t if self.cfg.recurrent else 1
        return [(ti, j, ki) for j in range(s) for ti in range(t) for ki in range(k)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-hazard per patient, shape (B,)."""
        f = self.drop(self.features(x))
        if self.lstms is not None:  # one LSTM per stream, over its slice-averaged features
            per = f.shape[-1] // self.streams
            last = [lstm(f[..., j * per:(j + 1) * per])[0][:, -1] for j, lstm in enumerate(self.lstms)]
            z = self.drop(torch.cat(last, dim=-1))
        elif self.lstm is not None:
            h, _ = self.lstm(f)
            z = self.drop(h[:, -1])
        else:
            z = f[:, 0]
        return self.head(self.hidden_layers(z)).squeeze(-1)


#: Named configurations of ``hccprog train`` (everything but the model's name). ``cpu``: sized for a
#: 2-core machine (demo, tests, benchmarks): a compact ResNet from scratch, 20 epochs on every training
#: patient (no inner validation split), one of the 3 representative slices per time point and step (all 3
#: averaged in evaluation: the same out-of-fold C at a third of the time, docs/models/crnn.md), the fusion's
#: LOCF indicator terms (measured for crnn only); ``paper``: the sizes of Xia et al. (224 px slices of liver
#: and tumor, EfficientNet-b0 trained end to end); ``tiny``: smoke tests.
PRESETS: dict[str, dict] = {
    "cpu": {
        "preprocessing": {"size": 32,
                          "spacing_mm": [4.0, 4.0, 5.0],
                          "slices": 3,
                          "timepoints": 2,
                          "streams": [{"name": "tumor", "roi": "tumor", "fov_mm": 128.0}]},
        "network": {"encoder": "resnet-compact", "pretrained": False, "hidden": 32, "dropout": 0.3},
        "training": {"epochs": 20,
                     "batch_size": 32,
                     "lr": 0.001,
                     "patience": 4,
                     "val_fraction": 0.0,
                     "slices_per_step": 1},
        "fusion_locf": True,
    },
    # Xia et al., Methods: "Venous-phase CT images ... resampled and linearly interpolated to 5-mm
    # section thickness", "normalized to window width (WW) 400, window level (WL) 0, and chest scans were
    # normalized to WW 1200, WL -600" (the lung stream's own window), three slices of the
    # largest tumor area, "If there are fewer than three slices containing tumors, ... the remaining
    # slices were selected based on the largest organ size", "reshaped to 224x224 and standardized to the
    # mean of zero and variance of one", "randomly flipped with a probability of 0.5"; "trained 200 epochs
    # ... a batch size of 16, and the Adam optimizer with a learning rate of 5x10^-5"
    "paper": {
        "preprocessing": {"series": ["CT_PV|PV"],
                          "size": 224,
                          "spacing_mm": [0.8, 0.8, 5.0],
                          "slices": 3,
                          "selection": "top_area_fill",
                          "ct_window": [400.0, 0.0],
                          "standardize": True,
                          "timepoints": 2,
                          # "three liver slices and three lung slices from each 3D CT scan" (Methods); the lung
                          # mask from HU thresholds above the liver dome where the cohort has no lung label
                          "streams": [{"name": "liver", "roi": "liver", "fov_mm": None},
                                      {"name": "lung", "roi": "lung", "fov_mm": None,
                                       "ct_window": [1200.0, -600.0]}]},
        # "fed into the long short-term memory (LSTM) module ... Then, the liver and lung features were
        # concatenated, and linear layers were utilized to predict the risk score" (sizes not given)
        "network": {"encoder": "efficientnet-b0", "pretrained": False, "shared_encoder": False, "hidden": 128,
                    "temporal": "per-stream", "head_hidden": [128]},
        "training": {"epochs": 200, "batch_size": 16, "lr": 5e-5, "augmentation": "flip", "patience": 15,
                     "val_fraction": 0.2},
    },
    "tiny": {
        "preprocessing": {"size": 32, "spacing_mm": [4.0, 4.0, 5.0], "slices": 2, "timepoints": 2},
        "network": {"encoder": "efficientnet-lite0", "pretrained": True, "hidden": 8},
        "training": {"epochs": 2, "batch_size": 16, "patience": 2, "val_fraction": 0.25, "augment": False},
    },
}


#: The names ``hccprog train --model`` gives this module (collected by :mod:`hccprog.models.registry`).
#: Xia et al., Methods: the slices "were fed into EfficientNet-b0 with weights pretrained on ImageNet".
_IMAGENET = "Xia et al. (Methods): EfficientNet-b0 \"with weights pretrained on ImageNet\""

SPECS = [
    ModelSpec("crnn", "CRNN Rad-D (Xia et al. 2024): EfficientNet on representative slices, LSTM over "
              "baseline and follow-up, Cox loss", CRNNConfig, CRNN, pools_slices=True,
              presets=PRESETS, reads_followups=lambda cfg: cfg.recurrent, paper_imagenet=_IMAGENET),
    ModelSpec("crnn-s", "CRNN Rad-S: baseline slices only, no LSTM", CRNNConfig, CRNN,
              defaults={"recurrent": False}, pools_slices=True,
              presets=PRESETS, reads_followups=lambda cfg: cfg.recurrent, paper_imagenet=_IMAGENET),
]
