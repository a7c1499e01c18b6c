"""Models resolved by name: ``get_model("crnn")`` gives its spec (config class, preprocessing,
builder, task). The names are the ones ``hccprog train --model`` accepts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str
    config: type[BaseModel]
    build: Callable[..., object]  # build(cfg, *, streams, channels) -> nn.Module
    defaults: dict = field(default_factory=dict)  # overrides of the config's defaults for this name
    task: str = "survival"


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model '{spec.name}' is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_model(name: str) -> ModelSpec:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model '{name}'; known: {', '.join(sorted(_REGISTRY))}") from None


def model_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    if _REGISTRY:
        return
    from hccprog.models.crnn import CRNN, CRNNConfig

    register(ModelSpec("crnn", "CRNN Rad-D (Xia et al. 2024): EfficientNet on representative slices, LSTM over "
                       "baseline and follow-up, Cox loss", CRNNConfig, CRNN))
    register(ModelSpec("crnn-s", "CRNN Rad-S: baseline slices only, no LSTM", CRNNConfig, CRNN,
                       defaults={"recurrent": False}))
