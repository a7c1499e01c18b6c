"""A sixth model written as a user would: one module (this file) with its config, network and
presets, registered by name; nothing else in hccprog changes."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from hccprog.models.registry import ModelSpec, register


class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 4


class ToyNet(nn.Module):
    """A 3x3 convolution on every representative slice, averaged over slices, streams and time points,
    then one log-hazard."""

    def __init__(self, cfg: ToyConfig, *, streams: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, cfg.width, 3, padding=1)
        self.head = nn.Linear(cfg.width, 1)

    @staticmethod
    def cam_layers() -> list[str]:
        """What ``hccprog explain`` reads: the convolution's output."""
        return ["conv"]

    @staticmethod
    def saliency_index(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The convolution runs once on every (time point, stream, slice) of a patient, in that order."""
        _, t, s, k = shape[:4]
        return [(ti, si, ki) for ti in range(t) for si in range(s) for ki in range(k)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, S, K, C, H, W)
        b = x.shape[0]
        f = torch.relu(self.conv(x.flatten(0, 3))).mean(dim=(2, 3))
        return self.head(f.view(b, -1, f.shape[-1]).mean(dim=1))


PRESETS = {"tiny": {"preprocessing": {"size": 16, "spacing_mm": [8.0, 8.0, 5.0], "slices": 2, "timepoints": 2},
                    "network": {"width": 4},
                    "training": {"epochs": 2, "batch_size": 16, "val_fraction": 0.0, "augment": False}}}


def register_toy() -> str:
    name = "toy-cox"
    from hccprog.models.registry import _REGISTRY, get_model

    get_model("crnn")  # the built-in models first
    if name not in _REGISTRY:
        register(ModelSpec(name, "A toy Cox network on representative slices", ToyConfig, ToyNet, presets=PRESETS))
    return name
