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

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from hccprog.models.encoders import COMPACT_WIDTHS, EncoderName, build_encoder


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
        feat = self.encoders[0].out_features * streams
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.recurrent:
            self.lstm = nn.LSTM(feat, cfg.hidden, batch_first=True)
            self.head = nn.Linear(cfg.hidden, 1)
        else:
            self.lstm = None
            self.head = nn.Linear(feat, 1)

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-hazard per patient, shape (B,)."""
        f = self.drop(self.features(x))
        if self.lstm is not None:
            h, _ = self.lstm(f)
            return self.head(self.drop(h[:, -1])).squeeze(-1)
        return self.head(f[:, 0]).squeeze(-1)
