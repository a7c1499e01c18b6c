"""CLDCA (Tong et al.): CT slice sequence and clinical data joined by asymmetric cross-attention.

Input ``x``: (B, T, S, K, C, H, W); CLDCA reads the baseline (``T = 0``) and treats its K slices
(of every stream, in order) as a sequence. Each slice goes through the encoder (ResNet50 in the
paper); an LSTM runs over the slice features (``slice_mask`` (B, L) marks real slices: padded
ones are packed away and never attended to). The clinical vector goes through a DNN to
``d_model`` (128). Cross-attention takes the clinical feature as the query and the LSTM outputs
as keys and values (asymmetric: CT never queries the clinical side). The attended CT vector and
the clinical vector form a two-token sequence for self-attention; its flattened output goes
through a two-layer MLP to the output: one logit (disease control vs progression, or a
log-hazard with a Cox objective).

Ablations of the paper: ``cross_attention=False`` (Mode5: the mean of the CT tokens replaces
the attended vector), ``self_attention=False`` (Mode6), ``lstm=False`` (Mode7: a linear map of the
slice features replaces the LSTM). Comparators (Tables 2 and 4): ``fusion="concat"`` (after Mode1,
Venugopalan et al.: the CT and clinical features concatenated; hccprog's MLP head in place of their
random forest), ``fusion="symmetric"`` (after Mode2, Zhang et al.: cross-attention both ways, each
side querying the other) and ``ct_only`` ("Only CT": the CT vector alone, no clinical input).

Slices: the paper's sequences vary in length ("the dynamic variation in the number of CT slices").
hccprog's preprocessing gives K slices and repeats a small tumor's slices to fill them; with
``mask_repeated_slices`` the network marks every slice identical to an earlier one of the same
patient as padding (in training and at inference, from the input itself), packs the real slices
first through the LSTM and never attends to the padding.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from hccprog.models.encoders import COMPACT_WIDTHS, EncoderName, build_encoder
from hccprog.models.registry import ModelSpec


class CLDCAConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    encoder: EncoderName = "resnet50"
    pretrained: bool = False
    encoder_weights: str | None = None
    encoder_widths: tuple[int, int, int, int] = COMPACT_WIDTHS  # resnet-compact only: stage widths
    d_model: int = Field(128, ge=8)
    heads: int = Field(4, ge=1)
    clinical_hidden: list[int] = Field(default_factory=lambda: [64])  # DNN hidden layers before d_model
    mlp_hidden: int = Field(64, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    lstm: bool = True  # False: Mode7
    cross_attention: bool = True  # False: Mode5
    self_attention: bool = True  # False: Mode6
    # how CT and clinical features meet: asymmetric cross-attention (CLDCA), concatenation (after Mode1) or
    # cross-attention both ways (after Mode2)
    fusion: Literal["asymmetric", "concat", "symmetric"] = "asymmetric"
    ct_only: bool = False  # Table 4's "Only CT": no clinical input
    # repeated slices (a small tumor's, repeated to fill the K slices) are padding, masked in every pass
    mask_repeated_slices: bool = True


class CLDCA(nn.Module):
    def __init__(self, cfg: CLDCAConfig, *, streams: int, channels: int, clinical_features: int = 0) -> None:
        super().__init__()
        if cfg.d_model % cfg.heads:
            raise ValueError(f"d_model ({cfg.d_model}) must be a multiple of heads ({cfg.heads})")
        if clinical_features < 1 and not cfg.ct_only:
            raise ValueError("CLDCA needs at least one clinical input (or ct_only: true)")
        self.cfg = cfg
        self.encoder = build_encoder(cfg.encoder, in_channels=channels, pretrained=cfg.pretrained,
                                     weights=cfg.encoder_weights,
                                     widths=cfg.encoder_widths)
        f = self.encoder.out_features
        self.seq = nn.LSTM(f, cfg.d_model, batch_first=True) if cfg.lstm else nn.Linear(f, cfg.d_model)
        layers: list[nn.Module] = []
        prev = clinical_features
        for h in [*cfg.clinical_hidden, cfg.d_model]:
            layers += [nn.Linear(prev, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            prev = h
        self.clinical = nn.Sequential(*layers) if not cfg.ct_only else None
        self.cross = nn.MultiheadAttention(cfg.d_model, cfg.heads, dropout=cfg.dropout, batch_first=True) \
            if cfg.cross_attention and not cfg.ct_only and cfg.fusion != "concat" else None
        self.cross_back = nn.MultiheadAttention(cfg.d_model, cfg.heads, dropout=cfg.dropout, batch_first=True) \
            if self.cross is not None and cfg.fusion == "symmetric" else None
        self.self_attn = nn.MultiheadAttention(cfg.d_model, cfg.heads, dropout=cfg.dropout, batch_first=True) \
            if cfg.self_attention else None
        self.norm = nn.LayerNorm(cfg.d_model)
        width = cfg.d_model if cfg.ct_only else 2 * cfg.d_model
        self.mlp = nn.Sequential(nn.Linear(width, cfg.mlp_hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.mlp_hidden, 1))

    def cam_layers(self) -> list[str]:
        """The layer Grad-CAM explains: the slice encoder's last feature map."""
        return [f"encoder.{self.encoder.cam_layer}"]

    @staticmethod
    def saliency_index(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The (t, s, k) slice of ``x[0]`` behind each row of the explained layer (the baseline's
        slices in sequence order: stream by slice)."""
        _, _, s, k = shape[:4]
        return [(0, j, ki) for j in range(s) for ki in range(k)]

    @staticmethod
    def repeated_slices(x: torch.Tensor) -> torch.Tensor:
        """(B, L) True for each baseline slice that is not identical to an earlier one of the patient
        (the real slices; a repeat fills a short sequence)."""
        b = x.shape[0]
        base = x[:, 0].reshape(b, -1, x[0, 0, 0, 0].numel())  # (B, L, pixels)
        same = (base[:, :, None] == base[:, None, :]).all(-1)  # (B, L, L)
        earlier = torch.tril(torch.ones(same.shape[1:], dtype=torch.bool, device=x.device), diagonal=-1)
        return ~(same & earlier).any(dim=2)

    def ct_tokens(self, x: torch.Tensor, slice_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, L, d_model) sequence features of the baseline slices (L = streams x K), in the order
        of ``x`` (``slice_mask``: the real slices, packed first through the LSTM)."""
        b = x.shape[0]
        base = x[:, 0].reshape(b, -1, *x.shape[4:])  # (B, L, C, H, W)
        length = base.shape[1]
        f = self.encoder(base.reshape(b * length, *x.shape[4:]).float()).view(b, length, -1)
        if not self.cfg.lstm:
            return self.seq(f)
        if slice_mask is None:
            return self.seq(f)[0]
        # the real slices first (in their order), then the padding: what packing needs
        order = torch.argsort((~slice_mask).to(torch.int8), dim=1, stable=True)
        back = torch.argsort(order, dim=1)
        f = torch.gather(f, 1, order[..., None].expand_as(f))
        lengths = slice_mask.sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(f, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.seq(packed)
        out = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=length)[0]
        return torch.gather(out, 1, back[..., None].expand_as(out))

    def forward(self, x: torch.Tensor, clin: torch.Tensor | None = None,
                slice_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One output per patient (B,): a logit (response) or a log-hazard (Cox)."""
        if clin is None and not self.cfg.ct_only:
            raise ValueError("CLDCA needs the clinical inputs")
        if slice_mask is None and self.cfg.mask_repeated_slices:
            slice_mask = self.repeated_slices(x)
        if slice_mask is not None:
            slice_mask = slice_mask.bool()
        tokens = self.ct_tokens(x, slice_mask)  # keys and values
        pad = None if slice_mask is None else ~slice_mask
        if slice_mask is None:
            mean = tokens.mean(dim=1)
        else:
            w = slice_mask.float()[..., None]
            mean = (tokens * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
        if self.clinical is None:  # Only CT
            return self.mlp(mean).squeeze(-1)
        q = self.clinical(clin.float())  # (B, d)
        if self.cross is not None:
            ct, _ = self.cross(q[:, None], tokens, tokens, key_padding_mask=pad)
            ct = ct[:, 0]
            if self.cross_back is not None:  # symmetric: the CT tokens query the clinical feature too
                back, _ = self.cross_back(tokens, q[:, None], q[:, None])
                w = torch.ones_like(back[..., :1]) if slice_mask is None else slice_mask.float()[..., None]
                q = q + (back * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
        else:
            ct = mean
        pair = torch.stack([q, ct], dim=1)  # (B, 2, d): clinical and attended CT
        if self.self_attn is not None and self.cfg.fusion != "concat":
            att, _ = self.self_attn(pair, pair, pair)
            pair = self.norm(pair + att)
        return self.mlp(pair.flatten(1)).squeeze(-1)


#: Named configurations (see :data:`hccprog.models.crnn.PRESETS`). CLDCA (Tong et al.): ResNet50 on
#: 224 x 224 slices, lr 1e-4, batch 32, dropout 0.1, Adam; ``cpu`` as measured in
#: benchmarks/results/models.json (early stopping on an inner split).
PRESETS: dict[str, dict] = {
    "cpu": {
        "preprocessing": {"size": 32,
                          "spacing_mm": [4.0, 4.0, 5.0],
                          "slices": 6,
                          "timepoints": 2,
                          "streams": [{"name": "tumor", "roi": "tumor", "fov_mm": 128.0}]},
        # mask_repeated_slices off: the configuration benchmarks/results/models.json measured
        "network": {"encoder": "efficientnet-lite0", "pretrained": True, "d_model": 64, "dropout": 0.1,
                    "mask_repeated_slices": False},
        "training": {"epochs": 10,
                     "batch_size": 32,
                     "lr": 0.001,
                     "patience": 4,
                     "val_fraction": 0.2,
                     "slices_per_step": None},
        "fusion_locf": False,
    },
    "paper": {
        "preprocessing": {"size": 224,
                          "spacing_mm": [0.8, 0.8, 5.0],
                          "slices": 8,
                          "timepoints": 2,
                          "streams": [{"name": "tumor", "roi": "tumor", "fov_mm": 160.0}]},
        # Tong et al., "Clinical Data Extraction": "The three hidden layers comprise 128, 256, and 128
        # neurons ... The output layer consists of 128 neurons"; categorical data one-hot encoded,
        # continuous data scaled "into the interval [0,1]"
        "network": {"encoder": "resnet50", "pretrained": False, "d_model": 128, "dropout": 0.1,
                    "clinical_hidden": [128, 256, 128]},
        "clinical": {"scaling": "minmax", "encoding": "one-hot"},
        "training": {"epochs": 100, "batch_size": 32, "lr": 0.0001, "patience": 15, "val_fraction": 0.2},
    },
    "tiny": {
        "preprocessing": {"size": 32, "spacing_mm": [4.0, 4.0, 5.0], "slices": 2, "timepoints": 2},
        "network": {"encoder": "efficientnet-lite0",
                    "pretrained": True,
                    "d_model": 16,
                    "heads": 2,
                    "clinical_hidden": [16],
                    "mlp_hidden": 8},
        "training": {"epochs": 2, "batch_size": 16, "patience": 2, "val_fraction": 0.25, "augment": False},
    },
}


_MODES = {"cldca-mode5": ({"cross_attention": False}, "without cross-attention"),
          "cldca-mode6": ({"self_attention": False}, "without self-attention"),
          "cldca-mode7": ({"lstm": False}, "without the LSTM over slices")}

#: Comparators of Tables 2 and 4 that hccprog builds from CLDCA's parts.
_COMPARATORS = {"cldca-concat": ({"fusion": "concat"}, "after Mode1 (Venugopalan et al.): CT and clinical features "
                                 "concatenated, MLP head"),
                "cldca-symmetric": ({"fusion": "symmetric"}, "after Mode2 (Zhang et al.): cross-attention both "
                                    "ways")}

#: The names ``hccprog train --model`` gives this module (collected by :mod:`hccprog.models.registry`).
SPECS = [
    ModelSpec("cldca", "CLDCA (Tong et al.): ResNet50 per CT slice, LSTM over slices, clinical DNN, "
              "clinical-query cross-attention, self-attention, MLP", CLDCAConfig, CLDCA, clinical=True,
              ablations={"Mode5 (no cross-attention)": {"cross_attention": False},
                         "Mode6 (no self-attention)": {"self_attention": False},
                         "Mode7 (no LSTM)": {"lstm": False},
                         "CLDCA": {}},
              presets=PRESETS),
    *(ModelSpec(name, f"CLDCA ablation {name[-5:]}: {what}", CLDCAConfig, CLDCA, defaults=defaults,
                clinical=True, presets=PRESETS) for name, (defaults, what) in _MODES.items()),
    *(ModelSpec(name, f"CLDCA comparator {what}", CLDCAConfig, CLDCA, defaults=defaults, clinical=True,
                presets=PRESETS) for name, (defaults, what) in _COMPARATORS.items()),
    ModelSpec("cldca-ct", "CLDCA's CT path alone (Table 4, 'Only CT'): ResNet50 per slice, LSTM, MLP",
              CLDCAConfig, CLDCA, defaults={"ct_only": True}, presets=PRESETS),
]
