"""Volumes and their geometry in the one canonical orientation of hccprog.

Canonical orientation
---------------------
Every image and mask that leaves :mod:`hccprog.imaging` is a :class:`Volume` whose
array axes ``(i, j, k)`` point, as closely as the acquisition allows, to the patient's
**R**\\ ight, **A**\\ nterior and **S**\\ uperior (``RAS``), the convention of nibabel and of
MONAI's ``Orientation(axcodes="RAS")``. ``affine`` maps voxel indices to millimetres in
RAS+ world coordinates (DICOM's LPS coordinates with x and y negated), so spacing,
origin and direction of the acquisition are kept exactly: reorienting only permutes and
flips axes, it never resamples. An axial slice is ``array[:, :, k]``; ``k`` grows towards
the head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
from nibabel import orientations as nio

CANONICAL_AXCODES = ("R", "A", "S")

#: LPS (DICOM, ITK) <-> RAS (NIfTI, MONAI) world coordinates: negate x and y.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class GeometryTolerance:
    """How far two grids may differ and still count as the same grid."""

    spacing_rtol: float = 1e-3
    origin_atol_mm: float = 1e-2
    origin_rtol_voxel: float = 1e-2  # fraction of the voxel size, added to origin_atol_mm
    direction_atol: float = 1e-3


@dataclass(frozen=True)
class Geometry:
    """A voxel grid: its shape and its voxel-to-world (RAS, mm) affine."""

    shape: tuple[int, int, int]
    affine: np.ndarray = field(repr=False)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def origin(self) -> tuple[float, float, float]:
        return tuple(float(o) for o in self.affine[:3, 3])  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        return self.affine[:3, :3] / np.asarray(self.spacing)

    @property
    def axcodes(self) -> tuple[str, str, str]:
        return tuple(nib.aff2axcodes(self.affine))  # type: ignore[return-value]

    def differences(self, other: Geometry, tol: GeometryTolerance | None = None) -> list[str]:
        """Human-readable list of the ways ``other`` is not on this grid (empty if same)."""
        tol = tol or GeometryTolerance()
        out: list[str] = []
        if tuple(self.shape) != tuple(other.shape):
            out.append(f"shape {tuple(other.shape)} != {tuple(self.shape)}")
        sp_a, sp_b = np.asarray(self.spacing), np.asarray(other.spacing)
        # along an axis one voxel thick the spacing is a convention, not a measurement: a single-slice
        # DICOM series takes its SliceThickness here, ITK-based tools write 1 mm; both are the same grid
        thick = np.array([a > 1 or b > 1 for a, b in zip(self.shape, other.shape, strict=True)])
        if not np.allclose(sp_a[thick], sp_b[thick], rtol=tol.spacing_rtol, atol=0):
            out.append(f"spacing {_fmt(sp_b)} mm != {_fmt(sp_a)} mm")
        atol = tol.origin_atol_mm + tol.origin_rtol_voxel * float(sp_a.min())
        if not np.allclose(self.origin, other.origin, atol=atol, rtol=0):
            out.append(f"origin {_fmt(other.origin)} mm != {_fmt(self.origin)} mm")
        if not np.allclose(self.direction, other.direction, atol=tol.direction_atol, rtol=0):
            out.append(f"direction {other.axcodes} != {self.axcodes}")
        return out

    def same_grid(self, other: Geometry, tol: GeometryTolerance | None = None) -> bool:
        return not self.differences(other, tol)

    def canonical(self) -> Geometry:
        """The geometry after reorientation to RAS (see :func:`canonical_transform`)."""
        transform = canonical_transform(self.affine)
        shape = tuple(int(self.shape[int(a)]) for a in transform[:, 0])
        new_affine = self.affine @ nio.inv_ornt_aff(transform, self.shape)
        return Geometry(shape=shape, affine=new_affine)  # type: ignore[arg-type]


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.3f}" for v in values) + ")"


def canonical_transform(affine: np.ndarray) -> np.ndarray:
    """nibabel orientation transform from ``affine``'s axes to RAS."""
    return nio.ornt_transform(nio.io_orientation(affine), nio.axcodes2ornt(CANONICAL_AXCODES))


@dataclass
class Volume:
    """A 3D array on a :class:`Geometry` (RAS world, mm)."""

    array: np.ndarray
    affine: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a Volume holds a 3D array, got shape {self.array.shape}")
        self.affine = np.asarray(self.affine, dtype=np.float64)

    @property
    def geometry(self) -> Geometry:
        return Geometry(shape=tuple(int(s) for s in self.array.shape), affine=self.affine)  # type: ignore[arg-type]

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.spacing

    @property
    def origin(self) -> tuple[float, float, float]:
        return self.geometry.origin

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def to_canonical(self) -> Volume:
        """Permute and flip the axes to RAS without resampling."""
        transform = canonical_transform(self.affine)
        if np.array_equal(transform, nio.axcodes2ornt(CANONICAL_AXCODES)):
            return self
        array = nio.apply_orientation(self.array, transform)
        affine = self.affine @ nio.inv_ornt_aff(transform, self.array.shape)
        return Volume(np.ascontiguousarray(array), affine, dict(self.meta))

    def with_array(self, array: np.ndarray) -> Volume:
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} != {self.array.shape}")
        return Volume(array, self.affine.copy(), dict(self.meta))

    def to_nifti(self) -> nib.Nifti1Image:
        img = nib.Nifti1Image(self.array, self.affine)
        img.set_qform(self.affine, code=1)
        img.set_sform(self.affine, code=1)
        return img

    def to_metatensor(self):
        """A channel-first MONAI ``MetaTensor`` (shape ``1 x I x J x K``) carrying the affine."""
        import torch
        from monai.data import MetaTensor

        return MetaTensor(
            torch.as_tensor(np.ascontiguousarray(self.array))[None],
            affine=torch.as_tensor(self.affine),
            meta={"space": "RAS", **{k: v for k, v in self.meta.items() if _is_plain(v)}},
        )


def _is_plain(value) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def resample_to(volume: Volume, reference: Geometry, *, order: int = 0, cval: float = 0.0) -> Volume:
    """Resample ``volume`` onto ``reference``'s grid (nearest neighbour by default, for masks).

    World coordinates are matched through both affines, so a mask covering only part of
    the reference (e.g. a DICOM-SEG with frames only where the organ is) lands in place.
    """
    from scipy import ndimage

    # voxel of reference -> world -> voxel of volume
    mapping = np.linalg.inv(volume.affine) @ reference.affine
    near = np.abs(mapping - np.round(mapping)) < 1e-6  # snap float noise (e.g. 0.99999999 mm)
    mapping[near] = np.round(mapping[near])
    out = ndimage.affine_transform(
        volume.array,
        mapping[:3, :3],
        offset=mapping[:3, 3],
        output_shape=tuple(reference.shape),
        order=order,
        mode="grid-constant",  # a voxel covers +-0.5 around its centre
        cval=cval,
        prefilter=order > 1,
    )
    return Volume(out.astype(volume.array.dtype, copy=False), reference.affine.copy(), dict(volume.meta))
