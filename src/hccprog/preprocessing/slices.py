"""Representative 2D slices per patient, time point and stream (the CRNN input).

For each of the first ``timepoints`` time points of a patient (in the cohort's order), every
channel series is read on the grid of the series that carries the mask, windowed (CT: width /
level per phase) or robustly z-scored inside the liver (MRI), resampled to ``spacing_mm`` with
MONAI ``Spacingd``; the ``slices`` axial slices with the largest tumor area are chosen (the largest
liver area when the mask has no tumor, as in Xia et al.), and each stream crops a square field
of view around its region of interest (``SpatialCrop`` + ``SpatialPad`` + ``Resize``).

A missing time point is filled by the last observation carried forward (LOCF, as in the CRNN
paper): its tensors are a copy of the previous time point's and ``observed`` marks it False. A time
point without a mask gets one propagated from the nearest masked time point of the same patient by
registration (:mod:`hccprog.preprocessing.register`), or, with ``missing_masks: missing``, is treated as
missing. Everything filled in is listed per patient in ``imputed`` (see :data:`FILL_KINDS`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hccprog.cohort.model import Patient, TimePoint
from hccprog.errors import InputError
from hccprog.imaging import LIVER, TUMOR, image_format, read_geometry
from hccprog.imaging.modality import volume_modality
from hccprog.imaging.volume import Volume, resample_to
from hccprog.preprocessing.kinds import preprocessing_kind
from hccprog.preprocessing.lung import lung_mask
from hccprog.preprocessing.masks import mask_series, propagate_to
from hccprog.preprocessing.register import RegistrationConfig

MissingMasks = Literal["propagate", "missing"]



class InputTooThinError(InputError):
    """A series too thin for the model's input (one slice where a slab or a volume is needed)."""


class StreamSpec(BaseModel):
    """One image stream: a square crop around a region of interest of the mask."""

    model_config = ConfigDict(extra="forbid")
    name: str
    # lung: the lungs (CT; a mask made from HU thresholds above the liver dome, preprocessing.lung): the
    # slices of largest lung area (Xia et al. 2024: no lung tumor label, so "the largest organ size")
    roi: Literal["liver", "tumor", "lung"] = "tumor"
    fov_mm: float | None = Field(128.0, gt=0)  # side of the square; None: the ROI's bounding box + margin
    margin_mm: float = Field(10.0, ge=0)
    mask: Literal["none", "liver", "tumor"] = "none"  # zero the pixels outside this mask region
    # the stream's own CT window (width, level HU), in place of the series' (ct_window / ct_windows): the
    # paper's lung slices read a chest window; None: the series' window. MRI series ignore it
    ct_window: tuple[float, float] | None = None


class SliceConfig(BaseModel):
    """How tensors are made from a cohort (part of the cache key)."""

    model_config = ConfigDict(extra="forbid")
    # channels, in order ("A|B": A, or B where the cohort has no A); None: the cohort's first 3 series
    series: list[str] | None = None
    timepoints: int = Field(2, ge=1)  # baseline + (timepoints - 1) follow-ups
    slices: int = Field(3, ge=1)  # representative slices per time point
    # top_area: the k slices of largest tumor area, repeated when fewer; top_area_fill (Xia et al.): the
    # tumor slices, then the slices of largest liver area; contiguous: k consecutive slices centred on
    # the slice of largest tumor area (a slab, DMMGNet's 10-slice input)
    selection: Literal["top_area", "top_area_fill", "contiguous"] = "top_area"
    size: int = Field(64, ge=8)  # output pixels per side
    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 5.0)  # resampling target (RAS)
    streams: list[StreamSpec] = Field(default_factory=lambda: [StreamSpec(name="tumor", roi="tumor", fov_mm=128.0)])
    ct_window: tuple[float, float] = (400.0, 40.0)  # width, level (HU)
    ct_windows: dict[str, tuple[float, float]] = Field(default_factory=dict)  # per series, overrides ct_window
    mri_clip: float = Field(5.0, gt=0)  # robust z-scores are clipped to +-mri_clip
    # each cropped slice, per channel, standardised to mean 0 and variance 1 after windowing and resizing
    # (Xia et al.); False: windowed values in [0, 1]
    standardize: bool = False
    context_mm: float = Field(24.0, ge=0)  # tissue kept around the liver before resampling (beyond: zero)
    # + the liver and tumor masks as two channels after the series' (the pixel's share of each, cropped and
    # resized with the image, never windowed or standardised): DMMGNet's mask maps (Tang et al., Eq. 4)
    mask_channels: bool = False
    # a time point without a mask: propagate one by registration, or treat the time point as missing;
    # None: as the cohort says (cohort.yaml `missing_masks`, default propagate)
    missing_masks: MissingMasks | None = None
    registration: RegistrationConfig = Field(default_factory=RegistrationConfig)

    @property
    def needs_lung(self) -> bool:
        """Whether a stream reads the lungs (their mask is made from the CT, preprocessing.lung)."""
        return any(st.roi == "lung" for st in self.streams)

    @property
    def stream_windows(self) -> list[tuple[float, float]]:
        """The streams' own CT windows, each once, in stream order: :func:`load_timepoint` adds the
        series windowed by each after the series' own channels."""
        out: list[tuple[float, float]] = []
        for st in self.streams:
            if st.ct_window is not None and tuple(st.ct_window) not in out:
                out.append(tuple(st.ct_window))
        return out

    def needs_depth(self) -> int:
        """Consecutive slices a series must hold (1 unless a contiguous slab is read)."""
        return self.slices if self.selection == "contiguous" else 1

    def channels(self, cohort_series: list[str]) -> list[str]:
        if self.series:
            return resolve_series(self.series, cohort_series)
        names = list(cohort_series)[:3]
        if not names:
            raise ValueError("the cohort has no image series")
        return names


def resolve_series(wanted: list[str], cohort_series: list[str]) -> list[str]:
    """The cohort's names of the ``wanted`` series, in order. An entry may give alternatives
    separated by ``|`` (``"MR_T2|MR_T2W"``): the first one the cohort has. A series that no
    patient of the cohort has is an error (never silently replaced by another series)."""
    have = list(cohort_series)
    out, missing = [], []
    for entry in wanted:
        options = [o.strip() for o in str(entry).split("|") if o.strip()]
        hit = next((o for o in options if o in have), None)
        (out if hit else missing).append(hit or entry)
    if missing:
        raise InputError(f"series {missing} not in the cohort (it has {', '.join(have) or 'none'}); map the "
                         "cohort's names with `series_aliases` in cohort.yaml (e.g. {PORTAL_VENOUS: CT_PV}) or "
                         "`hccprog predict --series-alias PORTAL_VENOUS=CT_PV`, or set preprocessing.series "
                         "when training")
    return out


def _intensity(array: np.ndarray, series: str, liver: np.ndarray, cfg: SliceConfig, *, ct: bool,
               window: tuple[float, float] | None = None) -> np.ndarray:
    """CT: window to [0, 1] (``window``, else the series' window); MRI: (x - median) / IQR inside the liver,
    clipped, mapped to [0, 1]. ``ct`` comes from the data (:func:`hccprog.imaging.modality.volume_modality`),
    never from the series name."""
    from monai.transforms import ScaleIntensityRange

    if ct:
        width, level = window if window is not None else cfg.ct_windows.get(series, cfg.ct_window)
        return np.asarray(ScaleIntensityRange(a_min=level - width / 2, a_max=level + width / 2, b_min=0.0, b_max=1.0,
                                              clip=True)(array), np.float32)
    ref = array[liver] if liver.any() else array[array > np.percentile(array, 50)]
    q25, q50, q75 = np.percentile(ref, [25, 50, 75])
    z = (array - q50) / max(q75 - q25, 1e-6)
    return ((np.clip(z, -cfg.mri_clip, cfg.mri_clip) + cfg.mri_clip) / (2 * cfg.mri_clip)).astype(np.float32)


def _mask_resampled(series, image: Volume) -> bool:
    """True when the series' mask is a plain label file on another grid than its image."""

    mask = series.mask
    if mask is None or not mask.resample or image_format(mask.path) == "dicom_seg":
        return False
    return bool(read_geometry(mask.path).differences(image.geometry))


def _check_depth(vol: Volume, where: str, cfg) -> list[str]:
    """An error for a single-slice series that the model cannot read; a fill note when it can."""
    if vol.array.shape[2] > 1:
        return []
    depth = cfg.needs_depth()
    if depth > 1:
        need = "a volume" if preprocessing_kind(cfg) == "volume" else f"a slab of {depth} consecutive slices"
        raise InputTooThinError(f"{where} is a single-slice series; this model needs {need}")
    return [f"single-slice: {where.split(': ')[-1]} holds one slice, repeated as the {cfg.slices} representative "
            "slices"]


def load_timepoint(tp: TimePoint, channels: list[str], cfg: SliceConfig, *,
                   propagated: tuple[str, Volume, Volume] | None = None,
                   patient: str = "", coords: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Channels (C, X, Y, Z) in [0, 1], the label map (X, Y, Z), resampled to ``cfg.spacing_mm``, and
    what was filled in (``kind: detail`` entries, see :data:`FILL_KINDS`). Streams with their own CT
    window (``cfg.stream_windows``) add the series windowed by each, in that order, after the series; with
    a lung stream (``cfg.needs_lung``) the lung mask (:func:`~hccprog.preprocessing.lung.lung_mask`)
    follows as one more channel (a voxel's lung share after resampling).

    Every channel is put on the grid of the series that carries the mask (or, for a time point without
    one, the series ``propagated = (name, image, mask)`` names); a channel that the time point lacks is
    filled with the first available one (and must exist for at least one)."""
    from monai.transforms import CropForegroundd, Spacingd

    who = f"{patient}: " if patient else ""
    fills: list[str] = []
    if propagated is not None:
        ref_name, ref_img, mask = propagated
    else:
        ref_name = mask_series(tp, channels)
        if ref_name is None:
            raise ValueError(f"{who}time point '{tp.label}' has no mask; representative slices need liver/tumor masks")
        ref_img, mask = tp.series[ref_name].load()
        if _mask_resampled(tp.series[ref_name], ref_img):
            fills.append(f"mask-resampled: {tp.label}/{ref_name} mask resampled onto its image's grid")
    ref_img, mask = ref_img.to_canonical(), mask.to_canonical()
    liver = mask.array > 0
    if not liver.any():
        raise ValueError(f"{who}time point '{tp.label}': the mask of {ref_name} holds no liver or tumor voxel on "
                         "its image's grid")
    stream_windows: list[tuple[float, float]] = getattr(cfg, "stream_windows", [])  # volumes have no streams
    arrays: dict[str, np.ndarray] = {}
    windowed: dict[str, list[np.ndarray]] = {}  # per series: its channels under the streams' windows
    for name in channels:
        if name not in tp.series:
            continue
        vol = ref_img if name == ref_name else tp.series[name].image.load().to_canonical()
        fills += _check_depth(vol, f"{who}{tp.label}/{name}", cfg)
        ct = volume_modality(vol, name) == "CT"
        if not vol.geometry.same_grid(ref_img.geometry):
            vol = resample_to(vol.with_array(vol.array.astype(np.float32)), ref_img.geometry, order=1,
                              cval=float(vol.array.min()))
        raw = np.asarray(vol.array, np.float32)
        arrays[name] = _intensity(raw, name, liver, cfg, ct=ct)
        windowed[name] = [_intensity(raw, name, liver, cfg, ct=ct, window=w) for w in stream_windows]
    if not arrays:
        raise ValueError(f"{who}time point '{tp.label}' has none of the series {channels}")
    first_name = next(iter(arrays))
    for name in channels:
        if name not in arrays:
            fills.append(f"series-filled: {tp.label}/{name} missing, filled with {first_name}")
    stack = np.stack([arrays.get(n, arrays[first_name]) for n in channels]
                     + [windowed.get(n, windowed[first_name])[k] for k in range(len(stream_windows))
                        for n in channels])
    foreground = mask.array > 0
    if getattr(cfg, "needs_lung", False):  # the lung mask rides as a channel after the series
        if volume_modality(ref_img, ref_name) != "CT":
            raise ValueError(f"{who}time point '{tp.label}': a lung stream reads CT (its mask comes from HU "
                             f"thresholds); {ref_name} is not CT")
        lung = lung_mask(ref_img, foreground, name=f"{who}{tp.label}/{ref_name}")
        stack = np.concatenate([stack, lung[None].astype(np.float32)])
        foreground = foreground | lung
    import torch
    from monai.data import MetaTensor

    affine = torch.as_tensor(ref_img.affine)
    data = {"image": MetaTensor(torch.as_tensor(stack), affine=affine),
            "mask": MetaTensor(torch.as_tensor(mask.array.astype(np.float32))[None], affine=affine.clone()),
            "fg": MetaTensor(torch.as_tensor(foreground.astype(np.float32))[None], affine=affine.clone())}
    # crop to the liver (and the lungs a stream reads) + margin before resampling: the rest is never used
    margin = [int(np.ceil(cfg.context_mm / abs(s))) for s in ref_img.spacing]
    data = CropForegroundd(keys=("image", "mask", "fg"), source_key="fg", margin=margin, allow_smaller=True)(data)
    del data["fg"]
    out = Spacingd(keys=("image", "mask"), pixdim=cfg.spacing_mm, mode=("bilinear", "nearest"))(data)
    image = out["image"].numpy().astype(np.float32)
    if coords:  # + world x, y, z (mm) of every voxel and a validity channel: they travel with the pixels
        image = np.concatenate([image, world_grid(np.asarray(out["image"].affine, float), image.shape[1:])])
    return image, out["mask"].numpy()[0].astype(np.uint8), fills


def world_grid(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(4, X, Y, Z) float32: the world coordinates (mm) of each voxel centre, then ones (a voxel
    that padding or interpolation at the border mixes with zeros reads below one)."""
    ijk = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape[:3]], indexing="ij"))
    world = np.tensordot(np.asarray(affine)[:3, :3], ijk, axes=1) + np.asarray(affine)[:3, 3].reshape(3, 1, 1, 1)
    return np.concatenate([world, np.ones((1, *shape[:3]))]).astype(np.float32)


def select_slices(mask: np.ndarray, k: int, selection: str = "top_area") -> tuple[np.ndarray, str]:
    """Indices (ascending z) of the ``k`` axial slices with the largest tumor area, or the largest
    liver area when there is no tumor; fewer slices than ``k`` are repeated. ``top_area_fill`` (Xia et
    al.): with fewer than ``k`` tumor slices, the tumor slices and then the slices of largest liver area
    among the others (repeated only when the liver has fewer than ``k`` slices). ``contiguous``: the
    ``k`` consecutive slices centred on the slice of largest area (shifted inward at the volume's
    ends; a volume of fewer than ``k`` slices repeats its last one)."""
    if selection == "top_area_fill":
        tumor = (mask == TUMOR).sum(axis=(0, 1))
        organ = (mask > 0).sum(axis=(0, 1))
        if organ.max() == 0:
            raise ValueError("the mask holds no liver and no tumor voxel")
        chosen = list(np.argsort(-tumor, kind="stable")[: min(k, int((tumor > 0).sum()))])
        rest = [int(z) for z in np.argsort(-organ, kind="stable") if organ[z] > 0 and z not in chosen]
        chosen += rest[: k - len(chosen)]
        return np.resize(np.sort(np.asarray(chosen, int)), k), "tumor" if tumor.max() > 0 else "liver"
    for label, name in ((TUMOR, "tumor"), (LIVER, "liver")):
        area = (mask == label).sum(axis=(0, 1)) if label == TUMOR else (mask > 0).sum(axis=(0, 1))
        if area.max() > 0:
            if selection == "contiguous":
                nz = len(area)
                start = int(np.clip(int(np.argmax(area)) - (k - 1) // 2, 0, max(nz - k, 0)))
                return np.minimum(np.arange(start, start + k), nz - 1), name
            order = np.argsort(-area, kind="stable")[: min(k, int((area > 0).sum()))]
            idx = np.sort(order)
            return np.resize(idx, k), name
    raise ValueError("the mask holds no liver and no tumor voxel")


def _roi_box(mask2d: np.ndarray, roi: str) -> tuple[np.ndarray, np.ndarray] | None:
    sel = mask2d == TUMOR if roi == "tumor" else mask2d > 0
    if not sel.any():
        sel = mask2d > 0
    if not sel.any():
        return None
    pts = np.argwhere(sel)
    return pts.min(axis=0), pts.max(axis=0)


def crop_stream(image: np.ndarray, mask: np.ndarray, idx: np.ndarray, spec: StreamSpec, cfg: SliceConfig, *,
                unmasked: int = 0) -> np.ndarray:
    """(K, C, size, size) crops of the selected slices around the stream's ROI (the union of the
    ROI over the selected slices, so every slice of a time point shares one window). The last
    ``unmasked`` channels (geometry, masks) are cropped alike but never multiplied by the mask."""
    from monai.transforms import Resize, SpatialCrop, SpatialPad

    union = np.zeros(mask.shape[:2], np.uint8)
    for z in idx:
        labels = np.where(mask[..., z] == TUMOR, TUMOR, np.where(mask[..., z] > 0, LIVER, 0))
        union = np.maximum(union, labels.astype(np.uint8))
    box = _roi_box(union, spec.roi)
    sx, sy = cfg.spacing_mm[0], cfg.spacing_mm[1]
    if box is None:
        center = np.array(mask.shape[:2]) // 2
        side = np.array(mask.shape[:2])
    else:
        lo, hi = box
        center = (lo + hi + 1) // 2
        if spec.fov_mm is not None:
            side = np.array([round(spec.fov_mm / sx), round(spec.fov_mm / sy)])
        else:
            extent = (hi - lo + 1) * np.array([sx, sy]) + 2 * spec.margin_mm
            side_mm = float(extent.max())
            side = np.array([round(side_mm / sx), round(side_mm / sy)])
    side = np.maximum(side, 1)
    crops = []
    for z in idx:
        sl = image[..., z]  # (C, X, Y)
        if spec.mask != "none":
            keep = mask[..., z] > 0 if spec.mask == "liver" else mask[..., z] == TUMOR
            sl = sl.copy()
            sl[: sl.shape[0] - unmasked] *= keep
        # pad first so that the window never leaves the image (padding = 0 = below the window)
        pad = int(side.max())
        padded = SpatialPad(spatial_size=(sl.shape[1] + 2 * pad, sl.shape[2] + 2 * pad), mode="constant")(sl)
        crop = SpatialCrop(roi_center=(int(center[0]) + pad, int(center[1]) + pad),
                           roi_size=(int(side[0]), int(side[1])))(padded)
        crops.append(np.asarray(Resize(spatial_size=(cfg.size, cfg.size), mode="area")(crop), np.float32))
    out = np.stack(crops)
    if cfg.standardize:  # the image channels only, never geometry or masks
        n = out.shape[1] - unmasked
        img = out[:, :n]
        mean = img.mean(axis=(2, 3), keepdims=True)
        sd = img.std(axis=(2, 3), keepdims=True)
        out[:, :n] = (img - mean) / np.where(sd > 1e-6, sd, 1.0)
    return out


def stack_timepoints(patient: Patient, channels: list[str], cfg, make, *, coords: bool = False,
                     dtype=np.float16) -> dict[str, np.ndarray]:
    """Per time point ``make(image, mask) -> (array, by_tumor)``, stacked over the first
    ``cfg.timepoints`` time points; a missing one is the last observed one carried forward (LOCF).
    ``x``: (T, ...) float16; ``observed``: (T,) bool; ``source``: (T,) 1 when ``by_tumor``;
    ``imputed``: what was filled in (``kind: detail`` strings, see :data:`FILL_KINDS`)."""
    tps = list(patient.timepoints)[: cfg.timepoints]
    if not tps:
        raise ValueError(f"patient {patient.id} has no images")
    mode = cfg.missing_masks or "propagate"
    per_tp: list[np.ndarray | None] = []
    observed, source, fills = [], [], []
    for i, tp in enumerate(tps):
        propagated = None
        if mask_series(tp, channels) is None:
            if mode == "missing" or not any(mask_series(t, channels) for t in patient.timepoints):
                if i == 0:
                    raise ValueError(f"{patient.id}: the first time point '{tp.label}' has no mask "
                                     f"(missing_masks: {mode}); nothing to carry forward")
                per_tp.append(None)
                observed.append(False)
                source.append(source[-1])
                fills.append(f"timepoint-carried-forward: {tp.label} has no mask, treated as missing, "
                             f"{tps[i - 1].label} carried forward")
                continue
            got = propagate_to(patient, i, channels, cfg.registration)
            propagated = (got.series, got.image, got.result.mask)
            fills.append(got.note)
        image, mask, tp_fills = load_timepoint(tp, channels, cfg, propagated=propagated, patient=patient.id,
                                               coords=coords)
        array, by_tumor = make(image, mask)
        per_tp.append(array)
        observed.append(True)
        source.append(bool(by_tumor))
        fills += tp_fills
    for i, array in enumerate(per_tp):  # a masked-out time point: the previous one carried forward
        if array is None:
            per_tp[i] = per_tp[i - 1].copy()  # type: ignore[union-attr]
    last = tps[-1].label
    for k in range(len(per_tp), cfg.timepoints):  # LOCF
        per_tp.append(per_tp[-1].copy())  # type: ignore[union-attr]
        observed.append(False)
        source.append(source[-1])
        fills.append(f"timepoint-carried-forward: time point {k + 1} of {cfg.timepoints} absent, {last} carried "
                     "forward")
    return {"x": np.stack(per_tp).astype(dtype), "observed": np.array(observed),
            "source": np.array(source, np.uint8), "imputed": np.array(fills, dtype=str)}


def patient_slices(patient: Patient, channels: list[str], cfg: SliceConfig) -> dict[str, np.ndarray]:
    """``x``: (T, S, K, C, size, size) float16 (C: the series, then the liver and tumor masks with
    ``cfg.mask_channels``); ``observed``: (T,) bool (False: carried forward);
    ``source``: (T,) 1 when slices were chosen by tumor area, 0 by liver area (fallback)."""

    def make(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, bool]:
        images, lung = split_lung(image, len(channels), cfg)
        idx, by = select_slices(mask, cfg.slices, cfg.selection)
        full = [with_mask_channels(im, mask) if cfg.mask_channels else im for im in images]
        crops = stream_crops(full, mask, lung, idx, cfg, unmasked=2 if cfg.mask_channels else 0)
        return crops, by == "tumor"

    return stack_timepoints(patient, channels, cfg, make)


def split_lung(image: np.ndarray, n_series: int, cfg: SliceConfig) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The channels of :func:`load_timepoint` as each stream reads them (its series under its own window,
    then the trailing channels such as world coordinates; one array per ``cfg.streams``), and the lung
    mask (or None)."""
    windows = cfg.stream_windows
    blocks = [image[i * n_series:(i + 1) * n_series] for i in range(1 + len(windows))]
    end = n_series * (1 + len(windows))
    lung = image[end] >= 0.5 if cfg.needs_lung else None
    rest = image[end + (1 if cfg.needs_lung else 0):]
    per = [np.concatenate([blocks[0 if st.ct_window is None else 1 + windows.index(tuple(st.ct_window))], rest])
           for st in cfg.streams]
    return per, lung


def stream_crops(images: list[np.ndarray], mask: np.ndarray, lung: np.ndarray | None, idx: np.ndarray,
                 cfg: SliceConfig, *, unmasked: int = 0) -> np.ndarray:
    """(S, K, C, size, size): each stream's crops of its own channels (``images``, one per stream, as
    :func:`split_lung` gives them); a lung stream's slices are the ``cfg.slices`` of largest lung area,
    cropped round the lungs (and masked to them with ``mask: liver`` or ``lung``), the others' are ``idx``."""
    out = []
    for st, image in zip(cfg.streams, images, strict=True):
        if st.roi == "lung":
            if lung is None or not lung.any():
                raise ValueError("a lung stream found no lung in the scan")
            labels = lung.astype(np.uint8) * LIVER
            lidx, _ = select_slices(labels, cfg.slices, "top_area_fill")
            as_organ = st.model_copy(update={"roi": "liver", "mask": "none" if st.mask == "none" else "liver"})
            out.append(crop_stream(image, labels, lidx, as_organ, cfg, unmasked=unmasked))
        else:
            out.append(crop_stream(image, mask, idx, st, cfg, unmasked=unmasked))
    return np.stack(out)


#: Geometry channels appended by ``coords=True``: world x, y, z (mm), validity, liver, tumor.
GEOMETRY_CHANNELS = ("world_x", "world_y", "world_z", "valid", "liver", "tumor")


def with_mask_channels(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` (with its world-coordinate channels) plus liver and tumor indicator channels."""
    return np.concatenate([image, (mask > 0)[None].astype(np.float32), (mask == TUMOR)[None].astype(np.float32)])


def patient_slice_geometry(patient: Patient, channels: list[str], cfg: SliceConfig) -> dict[str, np.ndarray]:
    """What the model input of ``patient_slices`` shows, pixel by pixel: ``geometry`` (T, S, K, 6,
    size, size) with :data:`GEOMETRY_CHANNELS` (world coordinates of each pixel in mm, its validity,
    the liver and tumor share of the pixel), made by the same crops and resampling as the input;
    ``observed`` as in ``patient_slices``. Used to draw mask contours on explanations and to map
    saliency back onto the original scan."""
    n = len(GEOMETRY_CHANNELS)

    def make(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, bool]:
        images, lung = split_lung(image, len(channels), cfg)
        idx, by = select_slices(mask, cfg.slices, cfg.selection)
        full = [with_mask_channels(im, mask) for im in images]
        crops = stream_crops(full, mask, lung, idx, cfg, unmasked=n)
        return crops[:, :, -n:], by == "tumor"

    out = stack_timepoints(patient, channels, cfg, make, coords=True, dtype=np.float32)
    return {"geometry": out["x"], "observed": out["observed"]}
