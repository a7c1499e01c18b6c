"""Models resolved by name: ``get_model("crnn")`` gives its spec (config class, preprocessing,
builder, task). The names are the ones ``hccprog train --model`` accepts."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:  # the preprocessing package is heavy; the registry is read by --help
    from hccprog.preprocessing.kinds import PreprocessingKind


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str
    config: type[BaseModel]
    build: Callable[..., object]  # build(cfg, *, streams, channels[, clinical_features]) -> nn.Module
    defaults: dict = field(default_factory=dict)  # overrides of the config's defaults for this name
    task: str = "survival"
    # cox: one log-hazard; discrete: logits of interval hazards; classes: risk classes;
    # cox-progression: a log-hazard and the logit of progression within a horizon
    objective: str = "cox"
    clinical: bool = False  # the network also takes clinical inputs (forward(x, clin))
    # slices: SliceConfig tensors; volume: VolumeConfig tensors; features: FeatureConfig features, and
    # ``build(cfg, task=, seed=)`` gives a pipeline with ``fit(X, time, event, perturbed=)`` and ``predict_risk(X)``
    input: PreprocessingKind = "slices"
    # averages its encoder's features over the representative slices (order-free): training may then
    # draw a subset of them per step (``training.slices_per_step``)
    pools_slices: bool = False
    # the paper's ablation table: row label -> network overrides (``hccprog ablation``)
    ablations: dict[str, dict] = field(default_factory=dict)
    # named configurations of ``hccprog train`` (cpu, paper, tiny): every setting but the model's name,
    # kept as data in the model's module
    presets: dict[str, dict] = field(default_factory=dict)
    # whether the network, so configured, reads the follow-up time points (else a carried-forward
    # follow-up does not touch its score, and the fusion gets no LOCF indicator terms)
    reads_followups: Callable[[BaseModel], bool] = lambda cfg: True
    # the modules (``dict(net.named_modules())`` keys) whose activations Grad-CAM reads, and which slice
    # of the input each of their output rows comes from (``hccprog.explain``); networks say it themselves
    saliency_layers: Callable[[Any], list[str]] = lambda net: net.cam_layers()
    saliency_index: Callable[[Any, tuple[int, ...]], list[tuple[int, ...]]] = (
        lambda net, shape: net.saliency_index(shape))
    # check_input(network config, preprocessing config): raises ValueError for a size the network cannot
    # take (e.g. Swin-UNETR's), so that ``train`` refuses the configuration before any preprocessing runs
    check_input: Callable[[BaseModel, BaseModel], None] = lambda net, preprocessing: None
    # where the paper started its image encoder from ImageNet weights: its words and section. A ``paper``
    # run without ``network.encoder_weights`` (or the offline ``pretrained``) then warns that it does not
    paper_imagenet: str | None = None


_REGISTRY: dict[str, ModelSpec] = {}

#: What ``hccprog train`` trains and ``hccprog ablation`` ablates without ``--model``.
DEFAULT_MODEL = "crnn"
DEFAULT_ABLATION_MODEL = "dmmgnet"


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
    """Every registered name: the built-in models and any plugin's, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def builtin_model_names() -> list[str]:
    """The names the modules of ``hccprog.models`` declare (their ``SPECS``), sorted: no plugin's."""
    _load_builtin()
    return sorted(n for n in _BUILTINS["names"] if n in _REGISTRY)


_BUILTINS: dict[str, Any] = {"loaded": False, "names": set()}
_PACKAGE = __name__.rsplit(".", 1)[0]  # hccprog.models


def _load_builtin() -> None:
    """Register the built-in models once, on the first lookup: every module of ``hccprog.models`` that
    declares ``SPECS`` (a list of :class:`ModelSpec`) registers them. A plugin registered earlier does not
    hide them; a new built-in system needs no line here."""
    if _BUILTINS["loaded"]:
        return
    _BUILTINS["loaded"] = True
    # the model modules load torch/MONAI, hence only now, on the first lookup
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        module = importlib.import_module(f"{_PACKAGE}.{info.name}")
        for spec in getattr(module, "SPECS", ()):
            register(spec)
            _BUILTINS["names"].add(spec.name)
