"""3D abdominal phantoms: anatomy, HCC tumors before and after TACE, and their rendering as
CT phases (NC, ART, PV; HU) or MRI sequences (T2, ART, PV; arbitrary units).

Geometry is drawn in world millimetres (RAS, origin at the volume centre) so that the same
patient renders consistently at any grid size. See ``docs/synthetic.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

# tissue ids of the internal label map
AIR, FAT, SOFT, LUNG, LIVER, SPLEEN, KIDNEY, AORTA, VEIN, BONE, TUMOR, NECROSIS, LIPIODOL, PVTT = range(14)

#: Mean intensity per tissue and series. CT in HU, MRI in arbitrary units (0..~1000).
INTENSITY: dict[str, dict[int, float]] = {
    "CT_NC": {AIR: -1000, FAT: -100, SOFT: 45, LUNG: -850, LIVER: 58, SPLEEN: 48, KIDNEY: 35,
              AORTA: 42, VEIN: 42, BONE: 420, TUMOR: 42, NECROSIS: 18, LIPIODOL: 650, PVTT: 42},
    "CT_ART": {AIR: -1000, FAT: -100, SOFT: 55, LUNG: -850, LIVER: 72, SPLEEN: 120, KIDNEY: 190,
               AORTA: 300, VEIN: 90, BONE: 420, TUMOR: 72, NECROSIS: 20, LIPIODOL: 650, PVTT: 72},
    "CT_PV": {AIR: -1000, FAT: -100, SOFT: 70, LUNG: -850, LIVER: 112, SPLEEN: 115, KIDNEY: 165,
              AORTA: 165, VEIN: 175, BONE: 420, TUMOR: 112, NECROSIS: 25, LIPIODOL: 650, PVTT: 112},
    "MR_T2": {AIR: 0, FAT: 420, SOFT: 130, LUNG: 20, LIVER: 150, SPLEEN: 300, KIDNEY: 360,
              AORTA: 30, VEIN: 30, BONE: 160, TUMOR: 280, NECROSIS: 650, LIPIODOL: 650, PVTT: 280},
    "MR_ART": {AIR: 0, FAT: 380, SOFT: 180, LUNG: 20, LIVER: 300, SPLEEN: 420, KIDNEY: 520,
               AORTA: 750, VEIN: 330, BONE: 240, TUMOR: 300, NECROSIS: 110, LIPIODOL: 110, PVTT: 300},
    "MR_PV": {AIR: 0, FAT: 380, SOFT: 220, LUNG: 20, LIVER: 420, SPLEEN: 430, KIDNEY: 480,
              AORTA: 480, VEIN: 520, BONE: 240, TUMOR: 420, NECROSIS: 120, LIPIODOL: 120, PVTT: 420},
}
NOISE_SD = {"CT": 10.0, "MR": 14.0}


@dataclass
class Tumor:
    """A lesion: centre (mm), radius (mm) of the whole tumor, necrotic fraction of its volume."""

    center: np.ndarray
    radius: float
    necrotic_fraction: float
    lipiodol: bool = False  # treated by TACE: lipiodol in the necrosis (CT)

    @property
    def volume_ml(self) -> float:
        return 4.0 / 3.0 * np.pi * self.radius**3 / 1000.0

    @property
    def viable_ml(self) -> float:
        return self.volume_ml * (1.0 - self.necrotic_fraction)


@dataclass
class Anatomy:
    """Patient anatomy (mm) that stays fixed across time points."""

    body_radii: tuple[float, float]
    fat_thickness: float
    liver_parts: list[tuple[np.ndarray, np.ndarray]]  # (center, radii) of ellipsoids
    spleen: tuple[np.ndarray, np.ndarray]
    kidneys: list[tuple[np.ndarray, np.ndarray]]
    lung_base_z: float
    shape_noise_seed: int
    pvtt: bool


@dataclass
class Enhancement:
    """Tumor contrast behaviour: arterial hyper-enhancement, portal-venous washout, rim."""

    arterial: float  # HU above the liver in ART (CT); scaled for MRI
    washout: float  # HU below the liver in PV
    rim: bool  # rim-like arterial enhancement (aggressive pattern)


@dataclass
class Scene:
    anatomy: Anatomy
    tumors: list[Tumor]
    enhancement: Enhancement
    shift_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))


def draw_anatomy(rng: np.random.Generator, pvtt: bool) -> Anatomy:
    j = lambda sd: rng.normal(0.0, sd)  # noqa: E731
    right = np.array([62 + j(5), 2 + j(5), -5 + j(6)])
    left = np.array([-12 + j(5), 30 + j(4), 8 + j(5)])
    return Anatomy(
        body_radii=(150 + j(12), 112 + j(9)),
        fat_thickness=float(np.clip(18 + j(5), 8, 32)),
        liver_parts=[
            (right, np.array([72 + j(5), 82 + j(5), 72 + j(6)])),
            (left, np.array([52 + j(4), 40 + j(3), 34 + j(3)])),
        ],
        spleen=(np.array([-88 + j(4), -38 + j(4), 12 + j(5)]), np.array([30.0, 45.0, 50.0]) + j(3)),
        kidneys=[
            (np.array([sx * (70 + j(3)), -58 + j(3), -82 + j(5)]), np.array([28.0, 28.0, 50.0]))
            for sx in (1, -1)
        ],
        lung_base_z=float(45 + j(6)),
        shape_noise_seed=int(rng.integers(2**31)),
        pvtt=pvtt,
    )


def _smooth_field(shape: tuple[int, ...], seed: int, cells: int = 6) -> np.ndarray:
    """A smooth random field in [-1, 1]-ish on ``shape`` (low-frequency, cheap)."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((cells, cells, max(2, cells // 2)))
    zoom = [s / c for s, c in zip(shape, coarse.shape, strict=True)]
    return ndimage.zoom(coarse, zoom, order=1, mode="nearest")[: shape[0], : shape[1], : shape[2]]


def grid_coordinates(shape: tuple[int, int, int], spacing: tuple[float, float, float]):
    """World coordinates (mm) of voxel centres, volume centred on the origin (RAS axes)."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing, strict=True)]
    return np.meshgrid(*axes, indexing="ij", sparse=True)


def affine_for(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = [-(n - 1) / 2.0 * s for n, s in zip(shape, spacing, strict=True)]
    return aff


def _ellipsoid(x, y, z, center, radii, deform=None) -> np.ndarray:
    d = ((x - center[0]) / radii[0]) ** 2 + ((y - center[1]) / radii[1]) ** 2 + (
        (z - center[2]) / radii[2]
    ) ** 2
    return d < (1.0 if deform is None else (1.0 + deform) ** 2)


def render_labels(scene: Scene, shape, spacing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tissue label map, tumor radial position (0 centre .. 1 border; inf outside), liver mask."""
    x, y, z = grid_coordinates(shape, spacing)
    x, y, z = x - scene.shift_mm[0], y - scene.shift_mm[1], z - scene.shift_mm[2]
    a = scene.anatomy
    noise = _smooth_field(shape, a.shape_noise_seed)
    labels = np.full(shape, AIR, dtype=np.uint8)
    rx, ry = a.body_radii
    body_d = (x / rx) ** 2 + (y / ry) ** 2 + 0 * z
    body = body_d < 1.0 + 0.03 * noise
    inner = (x / (rx - a.fat_thickness)) ** 2 + (y / (ry - a.fat_thickness)) ** 2 + 0 * z < 1.0
    labels[body] = FAT
    labels[inner & body] = SOFT
    # lungs above a dome (higher on the left, where no liver pushes up)
    dome = a.lung_base_z - 20.0 * np.exp(-((x + 60.0) ** 2) / (2 * 60.0**2)) + 8.0 * noise
    lung_xy = (((np.abs(x) - 72) / 58) ** 2 + ((y + 8) / 78) ** 2) < 1.0 + 0.05 * noise
    lungs = inner & (z > dome) & lung_xy
    labels[lungs] = LUNG
    liver = np.zeros(shape, bool)
    for center, radii in a.liver_parts:
        liver |= _ellipsoid(x, y, z, center, radii, 0.08 * noise)
    liver &= inner & ~lungs
    spleen = _ellipsoid(x, y, z, *a.spleen, 0.06 * noise) & inner & ~lungs & ~liver
    labels[liver] = LIVER
    labels[spleen] = SPLEEN
    for center, radii in a.kidneys:
        labels[_ellipsoid(x, y, z, center, radii, 0.05 * noise) & inner & ~liver] = KIDNEY
    spine = ((x**2 + (y + 78) ** 2) < 22**2) & body
    labels[spine & np.ones(shape, bool)] = BONE
    aorta = (((x + 18) ** 2 + (y + 48) ** 2) < 12**2) & (z < dome) & np.ones(shape, bool)
    labels[aorta] = AORTA
    ivc = (((x - 22) ** 2 + (y + 40) ** 2) < 10**2) & (z < dome) & np.ones(shape, bool)
    labels[ivc] = VEIN
    portal = (((x - 28) ** 2 + (y - 0) ** 2) < 7**2) & (z > -45) & (z < 5) & liver
    labels[portal] = PVTT if a.pvtt else VEIN

    radial = np.full(shape, np.inf, dtype=np.float32)
    for t in scene.tumors:
        r = np.sqrt((x - t.center[0]) ** 2 + (y - t.center[1]) ** 2 + (z - t.center[2]) ** 2)
        rho = (r / (t.radius * (1.0 + 0.12 * noise))).astype(np.float32)
        inside = (rho < 1.0) & inner
        labels[inside] = TUMOR
        nec_rho = np.cbrt(t.necrotic_fraction)
        nec = inside & (rho < nec_rho * (1.0 + 0.15 * noise))
        labels[nec] = NECROSIS
        if t.lipiodol:
            blotch = _smooth_field(shape, a.shape_noise_seed + 7, cells=12) > 0.2
            labels[nec & blotch] = LIPIODOL
        radial = np.minimum(radial, np.where(inside, rho, np.inf))
    liver_mask = liver | np.isin(labels, (TUMOR, NECROSIS, LIPIODOL))
    return labels, radial, liver_mask


def render_series(
    labels: np.ndarray,
    radial: np.ndarray,
    series: str,
    enhancement: Enhancement,
    rng: np.random.Generator,
    spacing: tuple[float, float, float],
) -> np.ndarray:
    """Intensities of one CT phase / MRI sequence as int16."""
    table = INTENSITY[series]
    lut = np.zeros(max(table) + 1, dtype=np.float32)
    for tissue, value in table.items():
        lut[tissue] = value
    img = lut[labels]
    mr = series.startswith("MR_")
    scale = 2.2 if mr else 1.0
    tumorish = (labels == TUMOR) | (labels == PVTT)
    if series.endswith("_ART"):
        weight = np.clip((radial - 0.55) / 0.3, 0.15, 1.0) if enhancement.rim else np.ones_like(radial)
        img[tumorish] += scale * enhancement.arterial * weight[tumorish]
    elif series.endswith("_PV"):
        img[tumorish] -= scale * enhancement.washout
    # partial volume: blur about half a 3 mm voxel whatever the spacing
    sigma = [max(0.3, 1.5 / s) for s in spacing]
    img = ndimage.gaussian_filter(img, sigma=sigma, mode="nearest")
    sd = NOISE_SD["MR" if mr else "CT"]
    if mr:
        bias = 1.0 + 0.12 * _smooth_field(labels.shape, int(rng.integers(2**31)), cells=3)
        re = img * bias + rng.normal(0, sd, img.shape).astype(np.float32)
        im = rng.normal(0, sd, img.shape).astype(np.float32)
        img = np.sqrt(re * re + im * im)  # Rician magnitude
        return np.clip(img, 0, 4000).astype(np.int16)
    img += rng.normal(0, sd, img.shape).astype(np.float32)
    return np.clip(img, -1024, 3071).astype(np.int16)
