"""Masks for time points that have none: propagated from another time point of the same patient by
image registration (SimpleITK), rigid then affine, optionally B-spline, with a liver-region metric.

The time point without a mask is the *fixed* image and the masked one the *moving* image, so the
transform that registration finds maps points of the unmasked scan to points of the masked one, and
the mask is resampled onto the unmasked scan's own grid directly (nearest neighbour), without
inverting anything. The metric (Mattes mutual information by default, which tolerates the contrast
changes of lipiodol and necrosis after TACE) is evaluated only where the moving point falls inside the
masked scan's liver, dilated by ``liver_dilation_mm``: the liver is what must align, not the spine or
the bowel. Both scans are cropped around the liver (``margin_mm``, plus ``search_mm`` on the fixed
side) and resampled to an isotropic ``spacing_mm`` grid before registration.

The propagated tumor is the masked time point's tumor carried to the new scan: registration aligns the
anatomy, it does not segment the tumor's own change (growth, shrinkage, necrosis) after treatment.
Each propagation reports a figure of merit, the normalised cross-correlation of the two scans inside
the propagated liver before and after registration, and :func:`qc_figure` draws both time points with
their contours for a person to check.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hccprog.imaging.readers import LIVER, TUMOR
from hccprog.imaging.volume import LPS_TO_RAS, Volume


class RegistrationConfig(BaseModel):
    """How a mask is propagated between two scans of one patient (part of the preprocessing cache key)."""

    model_config = ConfigDict(extra="forbid")
    spacing_mm: float = Field(3.0, gt=0)  # isotropic working grid of the registration
    margin_mm: float = Field(20.0, ge=0)  # the masked scan's liver box is widened by this
    search_mm: float = Field(30.0, ge=0)  # ... and the unmasked scan's region by this much more
    liver_dilation_mm: float = Field(10.0, ge=0)  # metric region: the liver dilated by this
    metric: Literal["mattes", "correlation"] = "mattes"
    affine: bool = True  # rigid, then affine
    bspline: bool = False  # then a B-spline stage (mesh of ``bspline_mesh_mm``)
    bspline_mesh_mm: float = Field(60.0, gt=0)
    iterations: int = Field(200, ge=1)  # per resolution level
    sampling: float = Field(0.25, gt=0, le=1)  # share of the fixed region's voxels the metric samples
    seed: int = 0  # of the metric's random sampling: the same seed, the same mask


@dataclass
class Propagation:
    """A propagated mask (canonical labels, on the target image's grid) and how well it went."""

    mask: Volume
    stages: list[str]
    ncc_before: float  # normalised cross-correlation inside the propagated liver, identity transform
    ncc_after: float  # ... after registration
    seconds: float
    transform: object = field(repr=False, default=None)  # SimpleITK transform: target point -> source point

    def quality(self) -> dict[str, float | str]:
        return {"stages": "+".join(self.stages), "ncc_before": round(self.ncc_before, 4),
                "ncc_after": round(self.ncc_after, 4), "seconds": round(self.seconds, 2)}


# ------------------------------------------------------------------------------ conversions


def to_sitk(volume: Volume, dtype=None):
    """A canonical :class:`Volume` as a SimpleITK image (LPS physical space, same voxels)."""
    import SimpleITK as sitk

    array = np.asarray(volume.array if dtype is None else volume.array.astype(dtype))
    img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    lps = LPS_TO_RAS @ volume.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(v) for v in (lps[:3, :3] / spacing).ravel()])
    img.SetOrigin([float(v) for v in lps[:3, 3]])
    return img


def from_sitk(img, meta: dict | None = None) -> Volume:
    """A SimpleITK image as a :class:`Volume` (RAS affine)."""
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(img).transpose(2, 1, 0)
    d = np.asarray(img.GetDirection(), float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = d * np.asarray(img.GetSpacing(), float)
    lps[:3, 3] = img.GetOrigin()
    return Volume(np.ascontiguousarray(array), LPS_TO_RAS @ lps, dict(meta or {}))


def _box_grid(points_lps: np.ndarray, pad_mm: float, spacing: float):
    """An axis-aligned (LPS) reference grid covering ``points_lps`` widened by ``pad_mm``."""
    import SimpleITK as sitk

    lo, hi = points_lps.min(axis=0) - pad_mm, points_lps.max(axis=0) + pad_mm
    size = np.maximum(np.ceil((hi - lo) / spacing).astype(int) + 1, 4)
    ref = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    ref.SetSpacing([spacing] * 3)
    ref.SetOrigin([float(v) for v in lo])
    return ref


def _world_corners_of(mask: Volume, region: np.ndarray) -> np.ndarray:
    """LPS world coordinates of the corners of the bounding box of ``region`` (voxel indices)."""
    pts = np.argwhere(region)
    lo, hi = pts.min(axis=0) - 0.5, pts.max(axis=0) + 0.5
    corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    return ((LPS_TO_RAS @ mask.affine) @ corners.T)[:3].T


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


# ------------------------------------------------------------------------------ registration


def _method(cfg: RegistrationConfig, moving_mask, *, levels: tuple[int, ...]):
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    if cfg.metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    else:
        reg.SetMetricAsCorrelation()
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    # SimpleITK reads a seed of 0 as "the wall clock": shift by one so that every seed repeats
    reg.SetMetricSamplingPercentage(cfg.sampling, cfg.seed + 1)
    reg.SetNumberOfThreads(1)  # see _single_threaded
    reg.SetMetricMovingMask(moving_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel(list(levels))
    reg.SetSmoothingSigmasPerLevel([max(0.0, (f - 1) * cfg.spacing_mm / 2) for f in levels])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


@contextlib.contextmanager
def _single_threaded():
    """ITK's threaded metric sums in a varying order and the optimiser amplifies it: one thread makes a
    seed repeat exactly (the preprocessing already runs one patient per core)."""
    import SimpleITK as sitk

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def _register(fixed, moving, moving_mask, center, cfg: RegistrationConfig):
    """Rigid (+ affine) (+ B-spline) transform mapping fixed points to moving points."""
    import SimpleITK as sitk

    def gradient_descent(transform, levels: tuple[int, ...], learning_rate: float, min_step: float) -> None:
        reg = _method(cfg, moving_mask, levels=levels)
        reg.SetOptimizerAsRegularStepGradientDescent(learningRate=learning_rate, minStep=min_step,
                                                     numberOfIterations=cfg.iterations, relaxationFactor=0.6)
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetInitialTransform(transform, inPlace=True)
        reg.Execute(fixed, moving)

    stages = ["rigid"]
    rigid = sitk.Euler3DTransform()
    rigid.SetCenter([float(c) for c in center])
    gradient_descent(rigid, (4, 2, 1), 4.0, 0.01)
    transform = rigid
    if cfg.affine:
        affine = sitk.AffineTransform(3)
        affine.SetCenter(rigid.GetCenter())
        affine.SetMatrix(rigid.GetMatrix())
        affine.SetTranslation(rigid.GetTranslation())
        gradient_descent(affine, (2, 1), 1.0, 0.005)
        transform = affine
        stages.append("affine")
    if cfg.bspline:
        extent = np.asarray(fixed.GetSize()) * np.asarray(fixed.GetSpacing())
        mesh = [max(1, round(float(e) / cfg.bspline_mesh_mm)) for e in extent]
        bspline = sitk.BSplineTransformInitializer(fixed, mesh)
        reg = _method(cfg, moving_mask, levels=(2, 1))
        reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=min(cfg.iterations, 50))
        reg.SetMovingInitialTransform(transform)
        reg.SetInitialTransform(bspline, inPlace=True)
        reg.Execute(fixed, moving)
        transform = sitk.CompositeTransform([transform, bspline])
        stages.append("bspline")
    return transform, stages


def propagate_mask(source_image: Volume, source_mask: Volume, target_image: Volume,
                   cfg: RegistrationConfig | None = None) -> Propagation:
    """The mask of ``source_image`` (canonical labels on its grid) carried onto ``target_image``'s grid.

    Raises ``ValueError`` when the source mask has no liver or tumor voxel."""
    import SimpleITK as sitk

    cfg = cfg or RegistrationConfig()
    t0 = time.perf_counter()
    region = source_mask.array > 0
    if not region.any():
        raise ValueError("the masked time point's mask holds no liver or tumor voxel")
    src_img = to_sitk(source_image, np.float32)
    tgt_img = to_sitk(target_image, np.float32)
    src_lab = to_sitk(source_mask, np.uint8)
    corners = _world_corners_of(source_mask, region)
    moving_ref = _box_grid(corners, cfg.margin_mm, cfg.spacing_mm)
    fixed_ref = _box_grid(corners, cfg.margin_mm + cfg.search_mm, cfg.spacing_mm)
    background = float(min(np.min(source_image.array), np.min(target_image.array)))
    identity = sitk.Transform()
    moving = sitk.Resample(src_img, moving_ref, identity, sitk.sitkLinear, background, sitk.sitkFloat32)
    fixed = sitk.Resample(tgt_img, fixed_ref, identity, sitk.sitkLinear, background, sitk.sitkFloat32)
    liver = sitk.Resample(src_lab > 0, moving_ref, identity, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    radius = max(1, round(cfg.liver_dilation_mm / cfg.spacing_mm))
    moving_mask = sitk.BinaryDilate(liver, [radius] * 3)
    idx = np.argwhere(sitk.GetArrayFromImage(liver) > 0).mean(axis=0)[::-1]
    center = moving_ref.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx])
    with _single_threaded():
        transform, stages = _register(fixed, moving, moving_mask, center, cfg)

    labels = sitk.Resample(src_lab, tgt_img, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    mask = from_sitk(labels, {"source": "propagated"})
    mask = Volume(mask.array.astype(np.uint8), target_image.affine.copy(), mask.meta)

    # figure of merit on the working grid of the fixed (target) region
    warped_after = sitk.GetArrayFromImage(sitk.Resample(src_img, fixed, transform, sitk.sitkLinear, background))
    warped_before = sitk.GetArrayFromImage(sitk.Resample(src_img, fixed, identity, sitk.sitkLinear, background))
    prop_liver = sitk.GetArrayFromImage(sitk.Resample(src_lab > 0, fixed, transform, sitk.sitkNearestNeighbor, 0)) > 0
    fixed_arr = sitk.GetArrayFromImage(fixed)
    if prop_liver.any():
        before = _ncc(fixed_arr[prop_liver], warped_before[prop_liver])
        after = _ncc(fixed_arr[prop_liver], warped_after[prop_liver])
    else:
        before = after = float("nan")
    return Propagation(mask=mask, stages=stages, ncc_before=before, ncc_after=after,
                       seconds=time.perf_counter() - t0, transform=transform)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def qc_figure(source_image: Volume, source_mask: Volume, target_image: Volume, target_mask: Volume, *,
              title: str, source_label: str, target_label: str, window: tuple[float, float] | None = None):
    """Two panels: the masked time point with its contours and the other one with the propagated
    contours, each on the axial slice of its largest tumor (else liver) area, anterior up and the
    patient's right on the left (radiological convention); liver green, tumor red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.8))
    for ax, img, msk, label in ((axes[0], source_image, source_mask, source_label),
                                (axes[1], target_image, target_mask, target_label)):
        m = np.asarray(msk.array)
        area = (m == TUMOR).sum(axis=(0, 1))
        if area.max() == 0:
            area = (m > 0).sum(axis=(0, 1))
        z = int(np.argmax(area))
        sl = np.asarray(img.array[:, :, z], float).T  # rows: anterior-posterior, columns: right-left
        if window is not None:
            width, level = window
            lo, hi = level - width / 2, level + width / 2
        else:
            lo, hi = np.percentile(sl, [1, 99])
        ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, origin="lower")
        for value, color in ((LIVER, "#2ca02c"), (TUMOR, "#d62728")):
            sel = (m[:, :, z] >= value).T if value == LIVER else (m[:, :, z] == value).T
            if sel.any():
                ax.contour(sel.astype(float), levels=[0.5], colors=color, linewidths=1.2)
        ax.invert_xaxis()  # radiological convention: the patient's right on the left of the image
        ax.set_title(f"{label} (slice {z})", fontsize=10)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
