"""Masked 3D volumes per patient and time point (the ProgSwin-UNETR input).

For each of the first ``timepoints`` time points of a patient, the chosen series (the arterial
phase by default, as in Yao et al. 2025) is read on the grid of the series that carries the mask,
normalised like the slice input (CT window, MRI robust z-score inside the liver), resampled to
``spacing_mm``, multiplied by its liver (or tumor) mask, cropped to the mask's bounding box plus a
margin and resized to ``size``\\ :sup:`3` (MONAI ``CropForeground`` + ``Resize``). A missing time
point is the last observed one carried forward (LOCF) and marked in ``observed``; a time point
without a mask is handled as in :mod:`hccprog.preprocessing.slices` (propagated or missing), and a
single-slice series is an error.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hccprog.cohort.model import Patient
from hccprog.imaging.readers import TUMOR
from hccprog.preprocessing.register import RegistrationConfig
from hccprog.preprocessing.slices import (
    GEOMETRY_CHANNELS,
    MissingMasks,
    resolve_series,
    stack_timepoints,
    with_mask_channels,
)


class VolumeConfig(BaseModel):
    """How 3D tensors are made from a cohort (part of the cache key)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["volume"] = "volume"
    series: list[str] | None = None  # channels, in order; None: the cohort's arterial series (else its first)
    timepoints: int = Field(3, ge=1)  # pre-treatment + (timepoints - 1) follow-ups
    size: int = Field(32, ge=8)  # output voxels per side (divisible by 32 for Swin-UNETR)
    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.0)  # resampling target before the crop (RAS)
    mask: Literal["liver", "tumor", "none"] = "liver"  # 'liver': liver and tumor; zero outside
    crop: Literal["liver", "tumor"] = "liver"  # bounding box the volume is cropped to
    margin_mm: float = Field(8.0, ge=0)
    ct_window: tuple[float, float] = (400.0, 40.0)  # width, level (HU)
    ct_windows: dict[str, tuple[float, float]] = Field(default_factory=dict)
    mri_clip: float = Field(5.0, gt=0)
    context_mm: float = Field(24.0, ge=0)  # tissue kept around the liver before resampling
    missing_masks: MissingMasks | None = None  # as in SliceConfig
    registration: RegistrationConfig = Field(default_factory=RegistrationConfig)

    def needs_depth(self) -> int:
        """A volume needs more than one slice."""
        return 2

    def channels(self, cohort_series: list[str]) -> list[str]:
        if self.series:
            return resolve_series(self.series, cohort_series)
        names = list(cohort_series)
        if not names:
            raise ValueError("the cohort has no image series")
        arterial = [n for n in names if "ART" in n.upper()]
        return arterial[:1] or names[:1]


def masked_volume(image: np.ndarray, mask: np.ndarray, cfg: VolumeConfig, *, unmasked: int = 0) -> np.ndarray:
    """(C, size, size, size): ``image`` (C, X, Y, Z) times the mask, cropped around the crop
    region and resized. The last ``unmasked`` channels (geometry) are never multiplied by the mask."""
    from monai.transforms import Resize, SpatialCrop

    keep = {"liver": mask > 0, "tumor": mask == TUMOR, "none": np.ones(mask.shape, bool)}[cfg.mask]
    vol = image * keep[None]
    if unmasked:
        vol[-unmasked:] = image[-unmasked:]
    region = mask == TUMOR if cfg.crop == "tumor" else mask > 0
    if not region.any():
        region = mask > 0
    if region.any():
        pts = np.argwhere(region)
        margin = np.ceil(cfg.margin_mm / np.asarray(cfg.spacing_mm)).astype(int)
        lo = np.maximum(pts.min(axis=0) - margin, 0)
        hi = np.minimum(pts.max(axis=0) + 1 + margin, mask.shape)
        vol = np.asarray(SpatialCrop(roi_start=lo.tolist(), roi_end=hi.tolist())(vol))
    return np.asarray(Resize(spatial_size=(cfg.size,) * 3, mode="trilinear")(vol), np.float32)


def patient_volumes(patient: Patient, channels: list[str], cfg: VolumeConfig) -> dict[str, np.ndarray]:
    """``x``: (T, C, size, size, size) float16; ``observed``: (T,) bool (False: carried forward);
    ``source``: (T,) 1 when the mask of the time point holds tumor voxels."""
    return stack_timepoints(patient, channels, cfg,
                            lambda image, mask: (masked_volume(image, mask, cfg), (mask == TUMOR).any()))


def patient_volume_geometry(patient: Patient, channels: list[str], cfg: VolumeConfig) -> dict[str, np.ndarray]:
    """``geometry`` (T, 6, size, size, size): world coordinates (mm), validity, liver and tumor share
    of every voxel of the ``patient_volumes`` input, made by the same crop and resize
    (:data:`~hccprog.preprocessing.slices.GEOMETRY_CHANNELS`); ``observed`` as there."""
    n = len(GEOMETRY_CHANNELS)

    def make(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, bool]:
        return masked_volume(with_mask_channels(image, mask), mask, cfg, unmasked=n)[-n:], (mask == TUMOR).any()

    out = stack_timepoints(patient, channels, cfg, make, coords=True, dtype=np.float32)
    return {"geometry": out["x"], "observed": out["observed"]}
