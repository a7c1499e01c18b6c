"""Saliency maps back on the original scan.

The model input is made of crops and resamplings of the scan (representative slices around the
tumor, or a masked volume resized to a cube). ``patient_slice_geometry`` / ``patient_volume_geometry``
push the world coordinates of every voxel through the very same transforms, so every input pixel
knows where it lies in the scanner's space. Those maps are affine (resampling, cropping and
resizing are), so each input slice or volume is fitted with one affine map from its pixel indices to
world millimetres, which is then inverted to sample the saliency map at every voxel of the
original scan: a NIfTI volume on the scan's own grid that a viewer overlays on it.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from hccprog.preprocessing.slices import GEOMETRY_CHANNELS

#: Index of each geometry channel, from ``preprocessing.slices.GEOMETRY_CHANNELS`` (the mask channels are
#: 0/1 images of the liver and the tumor, not label values).
WORLD = slice(GEOMETRY_CHANNELS.index("world_x"), GEOMETRY_CHANNELS.index("world_z") + 1)
VALID = GEOMETRY_CHANNELS.index("valid")
LIVER_CHANNEL = GEOMETRY_CHANNELS.index("liver")
TUMOR_CHANNEL = GEOMETRY_CHANNELS.index("tumor")


def fit_pixel_to_world(geometry: np.ndarray) -> tuple[np.ndarray, float]:
    """The affine map (3, n + 1) from the pixel indices of one input slice (n = 2) or volume (n = 3)
    to world millimetres, fitted on the valid pixels of ``geometry`` (6, *spatial), and the largest
    residual (mm): zero but for rounding after resampling, cropping and a linear resize; up to half a
    resampled pixel after the piecewise-constant `area` resize of a small crop."""
    spatial = geometry.shape[1:]
    valid = geometry[VALID] > 0.999
    if valid.sum() < len(spatial) + 1:
        raise ValueError("too few valid pixels to locate the input in the scan")
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in spatial], indexing="ij"))
    design = np.concatenate([idx[:, valid].T, np.ones((int(valid.sum()), 1))], axis=1)
    world = geometry[WORLD][:, valid].T
    coef, *_ = np.linalg.lstsq(design, world, rcond=None)
    residual = float(np.abs(design @ coef - world).max())
    return coef.T, residual


def _voxel_box(image_affine: np.ndarray, shape: tuple[int, ...], corners_world: np.ndarray) -> tuple[slice, ...]:
    """The index box of the scan that holds ``corners_world`` (k, 3), one voxel of margin."""
    inv = np.linalg.inv(image_affine)
    ijk = corners_world @ inv[:3, :3].T + inv[:3, 3]
    lo = np.clip(np.floor(ijk.min(axis=0)).astype(int) - 1, 0, np.array(shape[:3]) - 1)
    hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 2, 1, np.array(shape[:3]))
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


def _box_world(image_affine: np.ndarray, box: tuple[slice, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    grids = np.meshgrid(*[np.arange(s.start, s.stop, dtype=float) for s in box], indexing="ij")
    ijk = np.stack([g.ravel() for g in grids], axis=1)
    return ijk @ image_affine[:3, :3].T + image_affine[:3, 3], grids[0].shape


def slices_to_scan(heat: np.ndarray, geometry: np.ndarray, image_affine: np.ndarray, shape: tuple[int, ...], *,
                   thickness_mm: float) -> np.ndarray:
    """The saliency of the input slices of one time point on the scan's grid.

    ``heat`` (n, H, W) and ``geometry`` (n, 6, H, W): the n input slices (streams x representative
    slices) and their geometry. A scan voxel takes, from every slice whose plane passes within
    ``thickness_mm / 2`` of it, the bilinear value at its projection; the largest where slices overlap
    (the liver and tumor crops show the same place). Voxels no slice reaches are 0."""
    out = np.zeros(shape[:3], np.float32)
    for h, g in zip(heat, geometry, strict=True):
        if not np.isfinite(h).any():
            continue
        m, _ = fit_pixel_to_world(g)
        axes, origin = m[:, :2], m[:, 2]
        normal = np.cross(axes[:, 0], axes[:, 1])
        normal /= np.linalg.norm(normal)
        hh, ww = h.shape
        corners = np.array([origin + axes @ np.array([u, v]) + normal * d
                            for u in (-0.5, hh - 0.5) for v in (-0.5, ww - 0.5) for d in (-thickness_mm, thickness_mm)])
        box = _voxel_box(image_affine, shape, corners)
        world, box_shape = _box_world(image_affine, box)
        rel = world - origin
        dist = rel @ normal
        uv = np.linalg.lstsq(axes, (rel - np.outer(dist, normal)).T, rcond=None)[0]  # (2, N)
        values = map_coordinates(np.nan_to_num(h, nan=0.0), uv, order=1, mode="constant", cval=0.0)
        inside = (np.abs(dist) <= thickness_mm / 2) & (uv[0] >= -0.5) & (uv[0] <= hh - 0.5) \
            & (uv[1] >= -0.5) & (uv[1] <= ww - 0.5)
        values = np.where(inside, values, 0.0).reshape(box_shape).astype(np.float32)
        out[box] = np.maximum(out[box], values)
    return out


def volume_to_scan(heat: np.ndarray, geometry: np.ndarray, image_affine: np.ndarray,
                   shape: tuple[int, ...]) -> np.ndarray:
    """The saliency of an input volume (``heat`` (D, H, W), ``geometry`` (6, D, H, W)) on the scan's
    grid: trilinear at every voxel inside the input's box, 0 outside."""
    m, _ = fit_pixel_to_world(geometry)
    lin, origin = m[:, :3], m[:, 3]
    corners = np.array([origin + lin @ np.array([a, b, c]) for a in (-0.5, heat.shape[0] - 0.5)
                        for b in (-0.5, heat.shape[1] - 0.5) for c in (-0.5, heat.shape[2] - 0.5)])
    box = _voxel_box(image_affine, shape, corners)
    world, box_shape = _box_world(image_affine, box)
    uvw = np.linalg.solve(lin, (world - origin).T)
    values = map_coordinates(np.nan_to_num(heat, nan=0.0), uvw, order=1, mode="constant", cval=0.0)
    inside = np.all([(uvw[k] >= -0.5) & (uvw[k] <= heat.shape[k] - 0.5) for k in range(3)], axis=0)
    out = np.zeros(shape[:3], np.float32)
    out[box] = np.where(inside, values, 0.0).reshape(box_shape)
    return out
