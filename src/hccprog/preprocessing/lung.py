"""A lung mask from CT intensities, for cohorts without a lung label (the CRNN of Xia et al. 2024
reads three lung slices beside the liver's; the paper segments the lung with nnU-Net, which
hccprog cannot ship).

The method (classic threshold segmentation, as in Hu et al., IEEE TMI 2001, reduced to what a
portal-venous liver CT needs):

1. **Body.** Voxels above ``body_hu`` (-500 HU), the largest 3D connected component (the patient,
   not the table or the air around), its holes filled slice by slice: the inside of the body.
2. **Air inside the body.** Voxels below ``lung_hu`` (-400 HU) inside the body: lungs, airways and
   bowel gas.
3. **Above the liver dome.** The 3D connected components of that air which reach the slices above
   the liver's highest voxel (``liver`` given), or the top ``top_mm`` of the scan (no liver mask):
   the lungs, whose bases may descend beside the liver, and never bowel gas, which the diaphragm
   separates from them. Components smaller than ``min_volume_ml`` are dropped.
4. **Vessels.** Holes of the mask are filled slice by slice (the pulmonary vessels inside the
   lung are lung tissue for slice selection).

A scan that does not reach the lungs (no slice above the liver dome, or no air component of
``min_volume_ml`` there) is an :class:`~hccprog.errors.InputError` saying so.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hccprog.errors import InputError
from hccprog.imaging.volume import Volume


def _fill_slices(mask: np.ndarray) -> np.ndarray:
    """Holes filled in every axial slice (the last axis: RAS-canonical z)."""
    out = np.empty_like(mask)
    for z in range(mask.shape[2]):
        out[:, :, z] = ndimage.binary_fill_holes(mask[:, :, z])
    return out


def lung_mask(volume: Volume, liver: np.ndarray | None = None, *, body_hu: float = -500.0, lung_hu: float = -400.0,
              min_volume_ml: float = 100.0, top_mm: float = 25.0, name: str = "") -> np.ndarray:
    """The lung mask (bool, the volume's grid) of a CT ``volume`` in RAS-canonical orientation.

    Parameters
    ----------
    volume : Volume
        A CT volume in Hounsfield units, canonical (``Volume.to_canonical``: the last axis runs from
        feet to head).
    liver : ndarray of bool, optional
        The liver (and tumor) mask on the same grid; the lungs are the air components that reach above
        its highest slice. None: those that reach the top ``top_mm`` of the scan.
    body_hu, lung_hu : float
        The thresholds of the body and of air-filled lung.
    min_volume_ml : float
        The smallest air component kept.
    name : str
        How errors name the scan.

    Returns
    -------
    ndarray of bool
    """
    a = np.asarray(volume.array, np.float32)
    who = f"{name}: " if name else ""
    voxel_ml = float(np.prod(np.abs(volume.spacing))) / 1000.0
    if liver is not None:
        if liver.shape != a.shape:
            raise ValueError(f"{who}the liver mask {liver.shape} is not on the scan's grid {a.shape}")
        zs = np.flatnonzero(np.asarray(liver, bool).any(axis=(0, 1)))
        if not len(zs):
            raise InputError(f"{who}the liver mask is empty: no liver dome to find the lungs above")
        dome = int(zs.max())
        if dome >= a.shape[2] - 1:
            raise InputError(f"{who}the scan does not reach the lungs: its top slice is at the liver dome "
                             f"(slice {dome + 1} of {a.shape[2]})",
                             hint="a lung stream needs a scan that covers the lung bases, or a lung label in the "
                                  "cohort's masks")
        seed_from = dome + 1
    else:
        seed_from = max(0, a.shape[2] - max(1, round(top_mm / abs(volume.spacing[2]))))
    labels, n = ndimage.label(a > body_hu)
    if n == 0:
        raise InputError(f"{who}no body in the scan (nothing above {body_hu:g} HU)")
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    body = _fill_slices(labels == (int(np.argmax(sizes)) + 1))
    air = (a < lung_hu) & body
    comp, m = ndimage.label(air)
    keep = np.zeros(m + 1, bool)
    if m:
        above = np.unique(comp[:, :, seed_from:])
        counts = np.bincount(comp.ravel(), minlength=m + 1)
        for c in above[above > 0]:
            keep[c] = counts[c] * voxel_ml >= min_volume_ml
    lung = keep[comp]
    if not lung.any():
        where = "above the liver dome" if liver is not None else f"in the top {top_mm:g} mm of the scan"
        raise InputError(f"{who}the scan does not reach the lungs: no air-filled region of {min_volume_ml:g} mL or "
                         f"more inside the body {where}",
                         hint="a lung stream needs a scan that covers the lung bases, or a lung label in the "
                              "cohort's masks")
    return _fill_slices(lung)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty).

    Examples
    --------
    >>> dice(np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 0], bool))
    0.6666666666666666
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


__all__ = ["dice", "lung_mask"]
