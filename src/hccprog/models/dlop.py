"""DLOP_Combin (Sun et al., J Hepatocell Carcinoma 2024): a CT image network and a clinical MLP
joined by a fully connected layer that outputs discrete-time survival over yearly intervals.

Input ``x``: (B, T, S, K, C, H, W) as for the CRNN; DLOP reads the baseline (``T = 0``) only.
Each of the K representative slices goes through the encoder (ResNet101 with global average
pooling to 2048 in the paper), features are averaged over slices and concatenated over streams.
``clin`` (B, P): the screened clinical covariates (``hccprog.training.clinical``), through an MLP of
16, 32 and 64 units. The two vectors are concatenated and mapped to one logit per interval (the
conditional event probability of each yearly interval); ``variant="ctr"`` (DLOP_CTR) uses the
image branch only.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from hccprog.models.encoders import COMPACT_WIDTHS, EncoderName, build_encoder
from hccprog.models.registry import ModelSpec


class DLOPConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    encoder: EncoderName = "resnet101"
    pretrained: bool = False
    encoder_weights: str | None = None
    encoder_widths: tuple[int, int, int, int] = COMPACT_WIDTHS  # resnet-compact only: stage widths
    variant: Literal["combin", "ctr"] = "combin"  # combin: image + clinical; ctr: image only
    clinical_hidden: list[int] = Field(default_factory=lambda: [16, 32, 64])
    image_features: int | None = None  # optional linear projection of the image vector (None: as is)
    dropout: float = Field(0.3, ge=0, lt=1)
    intervals: int = Field(4, ge=1)  # outputs: one logit per interval (set from the cuts)


class DLOP(nn.Module):
    def __init__(self, cfg: DLOPConfig, *, streams: int, channels: int, clinical_features: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = build_encoder(cfg.encoder, in_channels=channels, pretrained=cfg.pretrained,
                                     weights=cfg.encoder_weights,
                                     widths=cfg.encoder_widths)
        feat = self.encoder.out_features * streams
        self.project = None
        if cfg.image_features:
            self.project = nn.Sequential(nn.Linear(feat, cfg.image_features), nn.ReLU())
            feat = cfg.image_features
        self.use_clinical = cfg.variant == "combin" and clinical_features > 0
        width = feat
        if self.use_clinical:
            layers: list[nn.Module] = []
            prev = clinical_features
            for h in cfg.clinical_hidden:
                layers += [nn.Linear(prev, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
                prev = h
            self.clinical = nn.Sequential(*layers)
            width += prev
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(width, cfg.intervals)

    def cam_layers(self) -> list[str]:
        """The layer Grad-CAM explains: the encoder's last feature map."""
        return [f"encoder.{self.encoder.cam_layer}"]

    @staticmethod
    def saliency_index(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The (t, s, k) slice of ``x[0]`` behind each row of the explained layer (the baseline's
        slices, stream by slice)."""
        _, _, s, k = shape[:4]
        return [(0, j, ki) for j in range(s) for ki in range(k)]

    def image_vector(self, x: torch.Tensor) -> torch.Tensor:
        b, _, s, k = x.shape[:4]
        base = x[:, 0]  # (B, S, K, C, H, W): the pre-treatment scan
        f = self.encoder(base.reshape(b * s * k, *x.shape[4:]).float()).view(b, s, k, -1).mean(dim=2)
        f = f.reshape(b, -1)
        return self.project(f) if self.project is not None else f

    def forward(self, x: torch.Tensor, clin: torch.Tensor | None = None) -> torch.Tensor:
        """Interval-hazard logits (B, intervals)."""
        f = self.image_vector(x)
        if self.use_clinical:
            if clin is None:
                raise ValueError("DLOP_Combin needs the clinical inputs")
            f = torch.cat([f, self.clinical(clin.float())], dim=1)
        return self.head(self.drop(f))


#: Named configurations (see :data:`hccprog.models.crnn.PRESETS`); ``paper``: ResNet101 on 224 x 224 CT
#: slices (Sun et al. 2024), clinical variables screened by univariable and multivariable Cox.
PRESETS: dict[str, dict] = {
    "cpu": {
        "preprocessing": {"size": 32,
                          "spacing_mm": [4.0, 4.0, 5.0],
                          "slices": 3,
                          "timepoints": 2,
                          "streams": [{"name": "tumor", "roi": "tumor", "fov_mm": 128.0}]},
        "network": {"encoder": "resnet-compact", "pretrained": False, "dropout": 0.3},
        "training": {"epochs": 20,
                     "batch_size": 32,
                     "lr": 0.001,
                     "patience": 4,
                     "val_fraction": 0.0,
                     "slices_per_step": None},
        "fusion_locf": False,
        "clinical": {"screening": "cox"},
    },
    "paper": {
        "preprocessing": {"size": 224,
                          "spacing_mm": [0.8, 0.8, 5.0],
                          "slices": 3,
                          "timepoints": 2,
                          "streams": [{"name": "tumor", "roi": "tumor", "fov_mm": 160.0}]},
        "network": {"encoder": "resnet101", "pretrained": False, "dropout": 0.3},
        "training": {"epochs": 100, "batch_size": 16, "lr": 0.0001, "patience": 15, "val_fraction": 0.2},
        # Sun et al., Methods: clinical factors "after univariate and multivariate COX regression analysis";
        # treatment response (mRECIST) is among the factors that survive it (Results, Table 2)
        "clinical": {"screening": "cox", "include_response": True},
        # "The Youden index was used to calculate the optimal cut-off point and to classify patients into
        # high-risk and low-risk classes" (Statistical analysis): Youden's J for death by the last horizon
        "risk_groups": "youden",
        # DLOP_Cox (Methods): "The output of the DLOP_CTR model was used as a separate variable and combined with
        # clinical factors to build a multi-factor COX regression prediction model" (and so for DLOP_Combin's
        # output, Statistical analysis): '<model>+clinical' is that multivariable Cox model
        "fusion": "multivariable",
        "fusion_screening": "cox",
    },
    "tiny": {
        "preprocessing": {"size": 32, "spacing_mm": [4.0, 4.0, 5.0], "slices": 2, "timepoints": 2},
        "network": {"encoder": "efficientnet-lite0", "pretrained": True, "clinical_hidden": [8, 8, 8]},
        "training": {"epochs": 2, "batch_size": 16, "patience": 2, "val_fraction": 0.25, "augment": False},
    },
}


#: The names ``hccprog train --model`` gives this module (collected by :mod:`hccprog.models.registry`).
SPECS = [
    ModelSpec("dlop", "DLOP_Combin (Sun et al. 2024): ResNet101 on CT + clinical MLP (16-32-64), "
              "discrete-time survival over yearly intervals", DLOPConfig, DLOP,
              objective="discrete", clinical=True, pools_slices=True, presets=PRESETS),
    ModelSpec("dlop-ctr", "DLOP_CTR: the image branch of DLOP_Combin alone", DLOPConfig, DLOP,
              defaults={"variant": "ctr"}, objective="discrete", pools_slices=True, presets=PRESETS),
]
