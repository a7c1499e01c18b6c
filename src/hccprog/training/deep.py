"""Training of deep survival models on preprocessed tensors: Adam, a learning-rate schedule,
early stopping on an inner validation split of the training data, augmentation on training
batches only, checkpoints loadable with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from hccprog.runs import atomic_path
from hccprog.survival.cv import inner_splits
from hccprog.training.objectives import CoxObjective


class TrainConfig(BaseModel):
    """Optimisation of one model fit."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["cosine", "plateau", "none"] = "cosine"
    patience: int = Field(8, ge=1)  # epochs without a better validation loss before stopping
    # ``schedule: plateau``: the learning rate is multiplied by ``plateau_factor`` after
    # ``plateau_patience`` + 1 epochs without a lower loss (default patience: a third of ``patience``)
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int | None = Field(None, ge=0)
    val_fraction: float = Field(0.2, ge=0, lt=0.5)  # 0: no early stopping, train every epoch
    augment: bool = True
    # standard: flips, 90-degree rotations, a small affine and intensity changes; flip: a random
    # left-right flip with probability 0.5 and nothing else (Xia et al.)
    augmentation: Literal["standard", "flip"] = "standard"
    # representative-slice inputs (N, T, S, K, C, H, W): slices drawn at random per patient and time
    # point for each training step (None: all K); evaluation always averages all K
    slices_per_step: int | None = Field(None, ge=1)
    # batch-norm running statistics recomputed with the current weights over the (un-augmented)
    # training patients before each validation and after the last epoch ("precise BN"); without it
    # a fast-changing network can be evaluated with stale statistics
    recompute_bn: bool = False
    seed: int = 0
    threads: int | None = None  # torch CPU threads; None: leave as is
    # auto: the first CUDA GPU when there is one, else the CPU; or cpu, cuda, cuda:N
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; an unavailable CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"training.device is {name!r} but PyTorch sees no CUDA GPU")
    return torch.device(name)


def augmenter(seed: int, *, volume: bool = False, kind: str = "standard"):
    """Random flips, 90-degree rotations, small affine moves and intensity changes, applied with
    the same draw to every slice, stream and time point of a patient (MONAI array transforms);
    ``volume``: the 3D versions for (T, C, D, H, W) inputs (see :func:`volume_augmenter`).
    ``kind="flip"``: a left-right flip with probability 0.5, nothing else."""
    if kind == "flip":
        return flip_augmenter(seed)
    if volume:
        return volume_augmenter(seed)
    from monai.transforms import (
        Compose,
        RandAffine,
        RandFlip,
        RandGaussianNoise,
        RandRotate90,
        RandScaleIntensity,
        RandShiftIntensity,
    )

    t = Compose([
        RandFlip(prob=0.5, spatial_axis=0),
        RandFlip(prob=0.5, spatial_axis=1),
        RandRotate90(prob=0.5),
        RandAffine(prob=0.5, rotate_range=0.2, translate_range=(3, 3), scale_range=(0.1, 0.1), padding_mode="zeros"),
        RandScaleIntensity(factors=0.1, prob=0.5),
        RandShiftIntensity(offsets=0.05, prob=0.5),
        RandGaussianNoise(prob=0.3, std=0.02),
    ])
    t.set_random_state(seed=seed)

    def apply(x: np.ndarray) -> torch.Tensor:
        shape = x.shape  # (T, S, K, C, H, W)
        flat = torch.as_tensor(x.reshape(-1, *shape[-2:]), dtype=torch.float32)
        out = t(flat)
        return torch.as_tensor(np.asarray(out)).reshape(shape)

    return apply


def flip_augmenter(seed: int):
    """A left-right flip (the last axis) of one patient's input with probability 0.5, the same draw
    for every slice, stream, channel and time point."""
    rng = np.random.default_rng(seed)

    def apply(x: np.ndarray) -> torch.Tensor:
        out = torch.as_tensor(np.asarray(x, np.float32))
        return torch.flip(out, dims=(-1,)) if rng.random() < 0.5 else out

    return apply


def volume_augmenter(seed: int):
    """3D augmentation of one patient's volumes (T, C, D, H, W), MONAI dictionary transforms: flips
    along each axis, 90-degree rotations in the axial plane, a small 3D affine (rotation about every
    axis, translation, scaling) and intensity changes, one draw for every time point and channel (they
    stay aligned, as the masks that made them are)."""
    from monai.transforms import (
        Compose,
        RandAffined,
        RandFlipd,
        RandGaussianNoised,
        RandRotate90d,
        RandScaleIntensityd,
        RandShiftIntensityd,
    )

    k = ["image"]
    t = Compose([
        RandFlipd(k, prob=0.5, spatial_axis=0),
        RandFlipd(k, prob=0.5, spatial_axis=1),
        RandFlipd(k, prob=0.5, spatial_axis=2),
        RandRotate90d(k, prob=0.5, spatial_axes=(1, 2)),
        RandAffined(k, prob=0.5, rotate_range=(0.1, 0.1, 0.2), translate_range=(2, 3, 3), scale_range=(0.1, 0.1, 0.1),
                    padding_mode="zeros"),
        RandScaleIntensityd(k, factors=0.1, prob=0.5),
        RandShiftIntensityd(k, offsets=0.05, prob=0.5),
        RandGaussianNoised(k, prob=0.3, std=0.02),
    ])
    t.set_random_state(seed=seed)

    def apply(x: np.ndarray) -> torch.Tensor:
        shape = x.shape  # (T, C, D, H, W): time points and series as channels of one 3D image
        flat = torch.as_tensor(x.reshape(-1, *shape[-3:]), dtype=torch.float32)
        out = t({"image": flat})["image"]
        return torch.as_tensor(np.asarray(out)).reshape(shape)

    return apply


def sample_slices(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` of the K representative slices of every patient and time point, drawn without
    replacement (the same ones for every stream): (B, T, S, K, ...) -> (B, T, S, k, ...)."""
    if x.ndim != 7:
        raise ValueError(f"slices_per_step needs representative-slice inputs (B, T, S, K, C, H, W), got {x.shape}")
    b, t, _, n = x.shape[:4]
    if k >= n:
        return x
    idx = np.argsort(rng.random((b, t, n)), axis=2)[:, :, :k]  # a random k-subset per patient and time point
    return np.take_along_axis(x, idx[:, :, None, :, None, None, None], axis=3)


def _batches(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    out = [order[i:i + size] for i in range(0, n, size)]
    if len(out) > 1 and len(out[-1]) < 2:  # a one-patient batch has no partial likelihood
        out[-2] = np.concatenate([out[-2], out.pop()])
    return out


def recompute_batchnorm(model: nn.Module, passes: Callable[[], None]) -> bool:
    """Running mean and variance of every batch-norm layer as the plain average over the
    training-mode forward passes that ``passes`` makes (without gradients) with the current
    weights ("precise BN"); the momenta are restored. False when the network has no batch norm."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        passes()
    for bn, m in zip(bns, momenta, strict=True):
        bn.momentum = m
    return True


class SurvivalNetTrainer:
    """Fit a network on (N, ...) image tensors (and optional (N, P) clinical inputs) with the
    objective's survival likelihood (default: Cox partial likelihood on one log-hazard)."""

    def __init__(self, build: Callable[[], nn.Module], cfg: TrainConfig, objective=None) -> None:
        self.build = build
        self.cfg = cfg
        self.objective = objective or CoxObjective()

    device_: torch.device = torch.device("cpu")

    def _forward(self, model: nn.Module, xb: torch.Tensor, cb: np.ndarray | None) -> torch.Tensor:
        xb = xb.to(self.device_)
        if cb is None:
            return model(xb)
        return model(xb, torch.as_tensor(cb, dtype=torch.float32, device=self.device_))

    def _outputs(self, model: nn.Module, x: np.ndarray, clin: np.ndarray | None, batch: int = 64) -> np.ndarray:
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                xb = torch.as_tensor(x[i:i + batch].astype(np.float32))
                out.append(self._forward(model, xb, None if clin is None else clin[i:i + batch]).cpu().numpy())
        return np.concatenate(out).astype(float)

    def fit(self, x: np.ndarray, time_: np.ndarray, event: np.ndarray, *, clin: np.ndarray | None = None,
            labels: np.ndarray | None = None,
            progress: Callable[[int, int, dict], None] | None = None) -> SurvivalNetTrainer:
        """``labels``: per-patient class labels given by the user (-1 unknown), passed to the
        objective's loss instead of labels derived from time and event."""
        cfg = self.cfg
        obj = self.objective
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        e = np.asarray(event).astype(int)
        t = np.asarray(time_, float)
        if cfg.val_fraction > 0 and len(x) >= 4:  # early-stopping split; fewer patients: train on all
            k = min(max(2, round(1 / cfg.val_fraction)), len(x) // 2)
            tr, va = next(iter(inner_splits(len(x), e, k, cfg.seed)))
        else:
            tr, va = np.arange(len(x)), np.array([], int)
        self.device_ = resolve_device(cfg.device)
        model = self.build().to(self.device_)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
        elif cfg.schedule == "plateau":
            wait = cfg.plateau_patience if cfg.plateau_patience is not None else max(1, cfg.patience // 3)
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.plateau_factor, patience=wait)
        else:
            sched = None
        # (N, T, C, D, H, W): volumes
        aug = augmenter(cfg.seed, volume=x.ndim == 6, kind=cfg.augmentation) if cfg.augment else None
        t_tr, e_tr = torch.as_tensor(t[tr]), torch.as_tensor(e[tr])
        best, best_state, best_epoch, waited = np.inf, None, 0, 0
        history = []
        for epoch in range(cfg.epochs):
            t0 = time.perf_counter()
            model.train()
            losses = []
            for b in _batches(len(tr), cfg.batch_size, rng):
                xb = x[tr[b]]
                if cfg.slices_per_step:
                    xb = sample_slices(xb, cfg.slices_per_step, rng)
                xb = torch.stack([aug(v) for v in xb]) if aug else torch.as_tensor(xb.astype(np.float32))
                cb = None if clin is None else clin[tr[b]]
                extra = {} if labels is None else {"labels": labels[tr[b]]}
                loss = obj.loss(self._forward(model, xb, cb), e_tr[b].to(self.device_), t_tr[b].to(self.device_),
                                **extra)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            rec = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "lr": opt.param_groups[0]["lr"]}
            if cfg.recompute_bn and (len(va) or epoch + 1 == cfg.epochs):
                self._recompute_bn(model, x, clin, tr, rng)
            if len(va):
                o = self._outputs(model, x[va], None if clin is None else clin[va])
                extra = {} if labels is None else {"labels": labels[va]}
                val_loss = float(obj.loss(torch.as_tensor(o), torch.as_tensor(e[va]), torch.as_tensor(t[va]),
                                          **extra).cpu())
                rec.update(val_loss=val_loss, **obj.validation(t[va], e[va], obj.predict_risk(o)))
                if val_loss < best - 1e-4:
                    best, best_state, best_epoch, waited = val_loss, self._cpu_state(model), epoch + 1, 0
                else:
                    waited += 1
            rec["seconds"] = time.perf_counter() - t0
            history.append(rec)
            if progress:
                progress(epoch + 1, cfg.epochs, rec)
            if sched is not None:
                sched.step(rec.get("val_loss", rec["train_loss"])) if cfg.schedule == "plateau" else sched.step()
            if len(va) and waited >= cfg.patience:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        else:
            best_epoch = len(history)
        self.model_ = model
        # a validation C without a comparable pair is NaN: recorded as None (JSON has no NaN)
        self.history_ = [{k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in rec.items()}
                         for rec in history]
        self.best_epoch_ = best_epoch
        self.train_idx_, self.val_idx_ = tr, va
        return self

    def _recompute_bn(self, model: nn.Module, x: np.ndarray, clin: np.ndarray | None, idx: np.ndarray,
                      rng: np.random.Generator) -> None:
        """Batch-norm statistics of the current weights over the (un-augmented) patients ``idx``
        (:func:`recompute_batchnorm`, one pass per batch); leaves the model in evaluation mode."""

        def passes() -> None:
            for b in _batches(len(idx), self.cfg.batch_size, rng):
                rows = idx[np.sort(b)]
                self._forward(model, torch.as_tensor(x[rows].astype(np.float32)),
                              None if clin is None else clin[rows])

        recompute_batchnorm(model, passes)
        model.eval()

    @staticmethod
    def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fitted weights on the CPU (checkpoints load anywhere)."""
        return self._cpu_state(self.model_)

    def outputs(self, x: np.ndarray, clin: np.ndarray | None = None) -> np.ndarray:
        """The network's raw outputs: (N,) log-hazards or (N, J) interval logits."""
        return self._outputs(self.model_, x, clin)

    def predict_risk(self, x: np.ndarray, clin: np.ndarray | None = None) -> np.ndarray:
        """Risk scores (N,), higher = worse (the log-hazard for a Cox objective)."""
        return self.objective.predict_risk(self.outputs(x, clin))

    def save(self, path: str | Path) -> None:
        """The weights only (``torch.load(path, weights_only=True)`` reads them back)."""
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)
