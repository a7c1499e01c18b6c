"""Saliency maps of the networks: Grad-CAM, Grad-CAM++ and occlusion sensitivity, in 2D and 3D.

The networks see a patient as a stack of inputs (time points x ROI streams x representative slices,
or a multi-time-point volume), and their encoders run on it in one or several calls (the CRNN's
shared encoder runs once per stream, DMMGNet has four branches). MONAI's ``GradCAM`` keeps one
activation per layer, so hccprog records every call of the explained layers itself and applies
the same formulas (Selvaraju et al. 2017; Chattopadhay et al. 2018 for Grad-CAM++, as
``monai.visualize.GradCAMpp`` computes it; a test checks the two agree on a one-call network).
Each network says which layers to explain (``cam_layers``) and which input slice each row of
their output comes from (``saliency_index``): the maps are upsampled to that slice's pixels.

The explained quantity is the model's risk (``objective.torch_risk``: the log-hazard, the
expected risk class, 1 - S(horizon) of the discrete-time model, the logit of PD), so a map shows
what raised the risk. Maps are normalised by the patient's maximum over all its slices: the
relative weight of time points and streams is kept.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CamMethod = Literal["gradcam", "gradcam++"]
RiskFn = Callable[[torch.Tensor], torch.Tensor]


class _Recorder:
    """Forward hooks on ``layers`` keeping the output of every call, in call order."""

    def __init__(self, net: nn.Module, layers: list[str]) -> None:
        modules = dict(net.named_modules())
        names = [n for pattern in layers for n in modules if fnmatch.fnmatchcase(n, pattern)]
        if not names:
            raise ValueError(f"no module of {type(net).__name__} matches {layers}")
        self.acts: list[torch.Tensor] = []
        self.handles = [modules[n].register_forward_hook(self._hook) for n in dict.fromkeys(names)]

    def _hook(self, _module, _inputs, output) -> None:
        self.acts.append(output[0] if isinstance(output, (tuple, list)) else output)

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def cam_weights(acts: torch.Tensor, grads: torch.Tensor, method: CamMethod) -> torch.Tensor:
    """Per row and channel the weight of each activation map: the mean gradient (Grad-CAM) or the
    positive gradients weighted by Grad-CAM++'s alpha (Chattopadhay et al. 2018, eq. 19)."""
    b, k = acts.shape[:2]
    dims = acts.ndim - 2
    if method == "gradcam":
        return grads.reshape(b, k, -1).mean(-1)
    g2, g3 = grads.pow(2), grads.pow(3)
    denom = 2 * g2 + acts.reshape(b, k, -1).sum(-1).view(b, k, *[1] * dims) * g3
    alpha = g2 / (torch.where(denom != 0, denom, torch.ones_like(denom)) + 1e-7)
    return (alpha * F.relu(grads)).reshape(b, k, -1).sum(-1)


def cam_maps(acts: torch.Tensor, grads: torch.Tensor, method: CamMethod = "gradcam++") -> torch.Tensor:
    """(rows, *spatial) class-activation maps: ReLU of the weighted sum of the activation maps."""
    w = cam_weights(acts, grads, method)
    return F.relu((w.view(*w.shape, *[1] * (acts.ndim - 2)) * acts).sum(1))


def _upsample(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    mode = "bilinear" if len(size) == 2 else "trilinear"
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode=mode, align_corners=False)[:, 0]


def grad_cam(net: nn.Module, x: torch.Tensor, risk: RiskFn, *, layers: list[str],
             index: list[tuple[int, ...]], method: CamMethod = "gradcam++",
             normalize: bool = True) -> tuple[np.ndarray, float]:
    """The Grad-CAM (or Grad-CAM++) map of one patient's risk.

    ``x``: the patient's input with a batch dimension of 1; ``risk(x)``: its risk, shape (1,);
    ``layers``: module names (or glob patterns) to explain; ``index``: for each row of their outputs,
    in call order, the position in ``x[0]`` of the input it came from. Returns a float32 array shaped
    like ``x[0]`` (the map broadcast over what a row covers, e.g. the series of a slice; NaN where no
    row reads, e.g. the follow-ups of a baseline-only model) and the risk."""
    if x.shape[0] != 1:
        raise ValueError(f"explain one patient at a time (got a batch of {x.shape[0]})")
    was_training = net.training
    net.eval()
    rec = _Recorder(net, layers)
    try:
        with torch.enable_grad():
            xin = x.detach().float().requires_grad_(True)  # a graph even where the encoder is frozen
            score = risk(xin).reshape(-1)[0]
            # gradients of the risk with respect to the explained maps only: the backward pass stops
            # there (for ProgSwin's decoder output it is the pooling head alone), parameters untouched
            tracked = [a for a in rec.acts if a.requires_grad]
            got = iter(torch.autograd.grad(score, tracked, allow_unused=True) if tracked else [])
            grads = [next(got) if a.requires_grad else None for a in rec.acts]
    finally:
        rec.close()
        net.train(was_training)
    rows = []
    for act, grad in zip(rec.acts, grads, strict=True):
        if grad is None:  # a call whose output does not reach the risk
            grad = torch.zeros_like(act)
        rows.append(cam_maps(act.detach().float(), grad.detach().float(), method))
    maps = torch.cat(rows) if rows else torch.zeros(0)
    if len(maps) != len(index):
        raise ValueError(f"the explained layers gave {len(maps)} maps for {len(index)} input slices: the "
                         "network's saliency_index does not match its cam_layers")
    dims = maps.ndim - 1
    size = tuple(x.shape[-dims:])
    maps = _upsample(maps, size).numpy()
    out = np.full(x.shape[1:], np.nan, np.float32)
    for m, idx in zip(maps, index, strict=True):
        target = out[idx]
        if target.ndim == dims:
            out[idx] = m
        else:  # broadcast over the series (and time points) this row covers
            out[idx] = np.broadcast_to(m, target.shape)
    if normalize:
        top = np.nanmax(out) if np.isfinite(out).any() else 0.0
        if top > 0:
            out /= top
    return out, float(score.detach())


def occlusion(risk: RiskFn, x: torch.Tensor, *, spatial_dims: int, mask_size: int | tuple[int, ...] = 8,
              overlap: float = 0.5, n_batch: int = 16, value: float = 0.0) -> tuple[np.ndarray, float]:
    """Occlusion sensitivity (``monai.visualize.OcclusionSensitivity``, model-agnostic): for each
    input slice (2D) or the whole volume (3D), patches of ``mask_size`` pixels are set to ``value``
    and the drop of the risk is recorded: positive where hiding the region lowers the risk. Returns
    an array shaped like ``x[0]`` and the risk.

    2D inputs (``x[0]``: (..., C, H, W)) are occluded one slice at a time, every series of the
    slice together; a 3D input (``x[0]``: (..., D, H, W)) as one volume over all its channels."""
    from monai.visualize import OcclusionSensitivity

    x = x.detach().float()
    with torch.no_grad():
        base = float(risk(x).reshape(-1)[0])
    lead = x.shape[1:-spatial_dims - (1 if spatial_dims == 2 else 0)]  # positions of the 2D slices
    out = np.zeros(x.shape[1:], np.float32)

    class _Probe(nn.Module):
        """The risk as a function of one slice (2D) or of the volume (3D), the rest held fixed."""

        def __init__(self, where: tuple[int, ...] | None) -> None:
            super().__init__()
            self.where = where

        def forward(self, part: torch.Tensor) -> torch.Tensor:
            if self.where is None:
                full = part.reshape(part.shape[0], *x.shape[1:])
            else:
                full = x.expand(part.shape[0], *x.shape[1:]).clone()
                full[(slice(None), *self.where)] = part
            return risk(full).reshape(-1, 1)

    with torch.no_grad():
        if spatial_dims == 3:
            vol = x.reshape(1, -1, *x.shape[-3:])
            occ, _ = OcclusionSensitivity(_Probe(None), mask_size=mask_size, n_batch=n_batch, verbose=False,
                                          mode=value, overlap=overlap, activate=False)(vol)
            out[...] = np.broadcast_to(base - occ[0, 0].numpy(), out.shape)
        else:
            for where in np.ndindex(*lead):
                part = x[(0, *where)][None]  # (1, C, H, W)
                occ, _ = OcclusionSensitivity(_Probe(where), mask_size=mask_size, n_batch=n_batch, verbose=False,
                                              mode=value, overlap=overlap, activate=False)(part)
                out[where] = np.broadcast_to(base - occ[0, 0].numpy(), out[where].shape)
    return out, base
