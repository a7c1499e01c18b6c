"""Radiomics features per patient, time point, series and region (PyRadiomics), cached by content.

Settings follow the IBSI recommendations and are written into every run's config: images and
the label map are cropped to the liver (with a margin) and resampled once to an isotropic grid
(``resample_mm``; B-spline for images, nearest neighbour for labels; the ring and the mask
perturbations are drawn on that grid), intensities are discretised with a fixed bin width per modality (CT in HU;
MRI after z-score normalisation, scaled by 100), and the features come from the original image
plus, optionally, Laplacian-of-Gaussian and wavelet filtered images.

Regions (on the canonical labels, liver 1 and tumor 2):

- ``tumor``: label 2;
- ``liver``: the liver without the tumor (label 1), the background parenchyma;
- ``ring``: a peritumoral ring, the tumor dilated by ``ring_mm`` minus the tumor, inside the liver.

Shape features (volume, sphericity, diameters...) depend on the region only and are computed
once per time point (``series`` = ``shape``). For the stability filter of the feature reduction,
the tumor's features are also extracted with the tumor mask eroded and dilated by one voxel
(``perturbation`` = ``eroded`` / ``dilated``).

A time point without a mask gets one propagated by registration (as for the networks), or is
left out with ``missing_masks: missing``; either is recorded in ``imputed``. Patients run in
parallel; each (patient, time point) is cached in ``<cache>/radiomics/`` under the SHA-256 of
the settings and the bytes of its files, so a second run reads instead of extracting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hccprog.cohort.model import Cohort, Patient
from hccprog.errors import InputError
from hccprog.imaging.modality import volume_modality
from hccprog.imaging.readers import LIVER, TUMOR
from hccprog.imaging.volume import Volume, resample_to
from hccprog.preprocessing.cache import default_cache_dir, hash_series
from hccprog.preprocessing.masks import mask_series, propagate_to
from hccprog.preprocessing.register import RegistrationConfig
from hccprog.runs import atomic_write_text

FEATURES_VERSION = 3  # 2: one isotropic resampling per time point; 3: the modality from the data
Region = Literal["tumor", "liver", "ring"]
FEATURE_CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


class FeatureConfig(BaseModel):
    """What is extracted, and how (IBSI-aligned; saved in the run's config)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["features"] = "features"
    timepoints: int = Field(2, ge=1)  # baseline and the first follow-up
    # the time point whose features the model reads: 0 the pre-TACE scan, 1 the first post-TACE one (the
    # radiomics comparators of Yao et al. 2025, "based on the first post-TACE Arterial Phase CE-MRI")
    read_timepoint: int = Field(0, ge=0)
    series: list[str] | None = None  # None: every series of the cohort
    regions: list[Region] = Field(default_factory=lambda: ["tumor", "liver", "ring"])
    ring_mm: float = Field(5.0, gt=0)
    resample_mm: float = Field(4.0, gt=0)  # isotropic grid of the extraction
    bin_width_ct: float = Field(25.0, gt=0)  # HU
    bin_width_mri: float = Field(5.0, gt=0)  # after z-score normalisation x 100
    filters: list[Literal["original", "log", "wavelet"]] = Field(default_factory=lambda: ["original"])
    log_sigma_mm: list[float] = Field(default_factory=lambda: [2.0, 4.0])
    stability: bool = True  # also extract the tumor with its mask eroded and dilated by one voxel
    missing_masks: Literal["propagate", "missing"] | None = None  # None: as the cohort says
    registration: RegistrationConfig = Field(default_factory=RegistrationConfig)

    @model_validator(mode="after")
    def _read_timepoint_extracted(self) -> FeatureConfig:
        if self.read_timepoint >= self.timepoints:
            raise ValueError(f"read_timepoint {self.read_timepoint} is not extracted (timepoints: {self.timepoints})")
        return self

    def channels(self, cohort_series: list[str]) -> list[str]:
        if self.series is None:
            return list(cohort_series)
        absent = [s for s in self.series if s not in cohort_series]
        if absent:
            raise InputError(f"radiomics series {absent} are not in the cohort (series: {', '.join(cohort_series)})")
        return list(self.series)


def is_ct(volume: Volume, series: str = "") -> bool:
    """Whether a series' volume is CT, from its data (see :mod:`hccprog.imaging.modality`), not its name."""
    return volume_modality(volume, series) == "CT"


def _settings(cfg: FeatureConfig, ct: bool) -> dict:
    """PyRadiomics settings on images already resampled to ``resample_mm`` (see ``_isotropic``)."""
    s = {"additionalInfo": False, "geometryTolerance": 1e-4, "correctMask": False, "minimumROIDimensions": 1,
         "minimumROISize": 1, "preCrop": True}
    if ct:
        s["binWidth"] = cfg.bin_width_ct
    else:
        s.update(binWidth=cfg.bin_width_mri, normalize=True, normalizeScale=100)
    return s


_EXTRACTORS: dict[str, object] = {}


def _extractor(cfg: FeatureConfig, ct: bool, *, shape: bool):
    """A configured extractor, built once per process and setting."""
    import radiomics
    from radiomics import featureextractor

    key = json.dumps([cfg.model_dump(mode="json"), ct, shape], sort_keys=True, default=str)
    if key in _EXTRACTORS:
        return _EXTRACTORS[key]
    radiomics.setVerbosity(logging.ERROR)
    ex = featureextractor.RadiomicsFeatureExtractor(**_settings(cfg, ct))
    ex.disableAllFeatures()
    ex.disableAllImageTypes()
    if shape:
        ex.enableImageTypeByName("Original")
        ex.enableFeatureClassByName("shape")
    else:
        for name in FEATURE_CLASSES:
            ex.enableFeatureClassByName(name)
        if "original" in cfg.filters:
            ex.enableImageTypeByName("Original")
        if "log" in cfg.filters:
            ex.enableImageTypeByName("LoG", customArgs={"sigma": list(cfg.log_sigma_mm)})
        if "wavelet" in cfg.filters:
            ex.enableImageTypeByName("Wavelet")
    _EXTRACTORS[key] = ex
    return ex


def _sitk(array: np.ndarray, spacing) -> object:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    img.SetSpacing(tuple(float(s) for s in spacing))
    return img


def _array(img) -> np.ndarray:
    import SimpleITK as sitk

    return np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0))


def _isotropic(images: dict[str, Volume], labels: Volume, mm: float, pad_mm: float) -> tuple[dict, np.ndarray]:
    """The liver's box (+ ``pad_mm``) of every image (B-spline) and of the label map (nearest
    neighbour), resampled once to an isotropic ``mm`` grid."""
    import SimpleITK as sitk

    lab = np.asarray(labels.array)
    spacing = np.asarray(labels.spacing, float)
    idx = np.argwhere(lab > 0)
    pad = np.ceil(pad_mm / spacing).astype(int)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, lab.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    size = [max(1, round(float(n * s) / mm)) for n, s in zip(np.array(hi) - lo, spacing, strict=True)]

    def resample(array: np.ndarray, interp) -> np.ndarray:
        img = _sitk(array, spacing)
        f = sitk.ResampleImageFilter()
        f.SetOutputSpacing((mm, mm, mm))
        f.SetSize(size)
        f.SetOutputOrigin(img.GetOrigin())
        f.SetOutputDirection(img.GetDirection())
        f.SetInterpolator(interp)
        f.SetDefaultPixelValue(float(array.min()))
        return _array(f.Execute(img))

    out = {name: resample(np.asarray(v.array, np.float32)[box], sitk.sitkBSpline) for name, v in images.items()}
    return out, resample(lab[box].astype(np.uint8), sitk.sitkNearestNeighbor)


def region_masks(labels: np.ndarray, spacing, regions: list[str], ring_mm: float) -> dict[str, np.ndarray]:
    """Boolean masks of the regions on a canonical label map (liver 1, tumor 2)."""
    from scipy import ndimage

    tumor = labels == TUMOR
    liver_all = labels >= LIVER
    out = {}
    for r in regions:
        if r == "tumor":
            out[r] = tumor
        elif r == "liver":
            out[r] = labels == LIVER
        elif r == "ring":
            if not tumor.any():
                out[r] = np.zeros_like(tumor)
                continue
            # distance (mm) from the tumor
            dist = ndimage.distance_transform_edt(~tumor, sampling=[float(s) for s in spacing])
            out[r] = (dist > 0) & (dist <= ring_mm) & liver_all
    return out


def _perturbed(mask: np.ndarray) -> dict[str, np.ndarray]:
    from scipy import ndimage

    return {"eroded": ndimage.binary_erosion(mask), "dilated": ndimage.binary_dilation(mask)}


def _features(result: dict) -> dict[str, float]:
    out = {}
    for k, v in result.items():
        if k.startswith("diagnostics"):
            continue
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def timepoint_features(images: dict[str, Volume], labels: Volume, cfg: FeatureConfig) -> list[dict]:
    """Rows (series, region, perturbation, feature, value) of one time point: ``images`` (series ->
    volume on the grid of ``labels``, canonical orientation)."""
    if not (np.asarray(labels.array) > 0).any():
        return []
    with warnings.catch_warnings():  # PyRadiomics warns of empty percentile ranges in very small regions
        warnings.simplefilter("ignore", RuntimeWarning)
        return _timepoint_features(images, labels, cfg)


def _timepoint_features(images: dict[str, Volume], labels: Volume, cfg: FeatureConfig) -> list[dict]:
    mm = cfg.resample_mm
    iso, lab = _isotropic(images, labels, mm, pad_mm=cfg.ring_mm + 3 * mm)
    spacing = (mm, mm, mm)
    masks = region_masks(lab, spacing, cfg.regions, cfg.ring_mm)
    rows: list[dict] = []
    shape_ex = _extractor(cfg, True, shape=True)
    cts = {name: is_ct(images[name], name) for name in iso}
    extractors = {ct: _extractor(cfg, ct, shape=False) for ct in set(cts.values())}
    sitk_images = {name: _sitk(a, spacing) for name, a in iso.items()}
    first = next(iter(sitk_images.values()))
    for region, mask in masks.items():
        if mask.sum() < 2:  # nothing to describe (no tumor, or a one-voxel region)
            continue
        variants = {"original": mask}
        if cfg.stability and region == "tumor":
            variants.update({k: v for k, v in _perturbed(mask).items() if v.sum() >= 2})
        for pert, mk in variants.items():
            m = _sitk(mk.astype(np.uint8), spacing)
            for k, v in _features(shape_ex.execute(first, m, label=1)).items():
                rows.append({"series": "shape", "region": region, "perturbation": pert, "feature": k, "value": v})
            for series, img in sitk_images.items():
                for k, v in _features(extractors[cts[series]].execute(img, m, label=1)).items():
                    rows.append({"series": series, "region": region, "perturbation": pert, "feature": k, "value": v})
    return rows


def _timepoint_inputs(patient: Patient, i: int, channels: list[str], cfg: FeatureConfig,
                      mode: str) -> tuple[dict[str, Volume], Volume, list[str]] | None:
    """The series of time point ``i`` on its mask's grid, the mask, and what was filled in; None
    for a time point left out (no mask, ``missing_masks: missing``)."""

    tp = list(patient.timepoints)[i]
    fills: list[str] = []
    ref = mask_series(tp, channels)
    if ref is None:
        if mode == "missing" or not any(mask_series(t, channels) for t in patient.timepoints):
            return None
        got = propagate_to(patient, i, channels, cfg.registration)
        ref, ref_img, mask = got.series, got.image, got.result.mask.to_canonical()
        fills.append(got.note)
    else:
        ref_img, mask = tp.series[ref].load()
        ref_img, mask = ref_img.to_canonical(), mask.to_canonical()
    images = {}
    for name in channels:
        if name not in tp.series:
            continue
        vol = ref_img if name == ref else tp.series[name].image.load().to_canonical()
        if not vol.geometry.same_grid(ref_img.geometry):
            vol = resample_to(vol.with_array(vol.array.astype(np.float32)), ref_img.geometry, order=1,
                              cval=float(vol.array.min()))
        images[name] = vol
    if not images:
        raise ValueError(f"{patient.id}: time point '{tp.label}' has none of the series {channels}")
    return images, mask, fills


def _patient_digest(patient: Patient) -> str:
    """Every file of the patient (a propagated mask depends on the other time points too)."""
    h = hashlib.sha256()
    for tp in patient.timepoints:
        for name in sorted(tp.series):
            hash_series(h, tp, name)
    return h.hexdigest()


def _key(files: str, i: int, channels: list[str], cfg: FeatureConfig, mode: str) -> str:
    return hashlib.sha256(json.dumps({"version": FEATURES_VERSION, "config": cfg.model_dump(mode="json"),
                                      "channels": channels, "mode": mode, "timepoint": i, "files": files},
                                     sort_keys=True).encode()).hexdigest()


def _checksum(rows) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("checksum") == _checksum(data.get("rows")) else None


def _write(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps({**data, "checksum": _checksum(data["rows"])}))


def _extract_patient(args) -> tuple[str, list[dict] | None, list[str], str]:
    """Worker: every time point of one patient, from the cache where possible."""
    patient, channels, cfg, mode, cache = args
    rows: list[dict] = []
    fills: list[str] = []
    try:
        files = _patient_digest(patient)  # once per patient, for every time point's key
        for i, tp in enumerate(list(patient.timepoints)[: cfg.timepoints]):
            key = _key(files, i, channels, cfg, mode)
            path = Path(cache) / "radiomics" / key[:2] / f"{key}.json"
            data = _read(path)
            if data is None:
                got = _timepoint_inputs(patient, i, channels, cfg, mode)
                if got is None:
                    data = {"rows": [], "fills": [f"timepoint-missing: {tp.label} has no mask (missing_masks: "
                                                  "missing); its radiomics features are absent"]}
                else:
                    images, mask, tp_fills = got
                    data = {"rows": timepoint_features(images, mask, cfg), "fills": tp_fills}
                _write(path, data)
            fills += data["fills"]
            rows += [{"timepoint": tp.label, "timepoint_index": i, **r} for r in data["rows"]]
    except (ValueError, OSError, RuntimeError) as err:
        return patient.id, None, fills, str(err).removeprefix(f"{patient.id}: ")
    return patient.id, rows, fills, ""


@dataclass
class ImageFeatures:
    """Long table of features of the patients that could be read."""

    table: pd.DataFrame  # patient_id, timepoint, timepoint_index, series, region, perturbation, feature, value
    config: FeatureConfig
    channels: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    imputed: dict[str, list[str]] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return list(dict.fromkeys(self.table["patient_id"]))


def extract_features(cohort: Cohort, cfg: FeatureConfig, *, cache_dir: str | os.PathLike | None = None,
                     ids: list[str] | None = None, workers: int | None = None,
                     progress: Callable[[int, int], None] | None = None) -> ImageFeatures:
    """Features of ``ids`` (default every patient with images), in parallel over patients, from the
    cache where possible. A patient whose files cannot be read is skipped with the reason."""
    t0 = time.perf_counter()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    channels = cfg.channels(cohort.series_names())
    mode = cfg.missing_masks or cohort.spec.missing_masks or "propagate"
    wanted = [p for p in (ids or cohort.ids) if cohort[p].has_images]
    skipped = {p: "no images" for p in (ids or cohort.ids) if not cohort[p].has_images}
    todo = [(cohort[p], channels, cfg, mode, str(cache)) for p in wanted]
    workers = workers or min(2, os.cpu_count() or 1)
    if workers > 1 and len(todo) > 1:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_extract_patient, todo, chunksize=max(1, len(todo) // (8 * workers)))
    else:
        pool, results = None, map(_extract_patient, todo)
    frames, imputed = [], {}
    done = 0
    if progress:
        progress(0, len(todo))
    try:
        for pid, rows, fills, why in results:
            done += 1
            if rows is None:
                skipped[pid] = why
            elif not rows:
                skipped[pid] = "no region with voxels at any time point"
            else:
                frames.append(pd.DataFrame(rows).assign(patient_id=pid))
                if fills:
                    imputed[pid] = fills
            if progress:
                progress(done, len(todo))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if not frames:
        raise ValueError("no patient's radiomics features could be extracted: "
                         + "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:10]))
    cols = ["patient_id", "timepoint", "timepoint_index", "series", "region", "perturbation", "feature", "value"]
    table = pd.concat(frames, ignore_index=True)[cols]
    seconds = time.perf_counter() - t0
    stats = {"patients": len(frames), "timepoints": int(table.groupby("patient_id")["timepoint_index"].nunique().sum()),
             "seconds": round(seconds, 3), "features": int(table["feature"].nunique())}
    return ImageFeatures(table, cfg, channels, skipped, imputed, stats)


def feature_matrix(features: ImageFeatures, *, delta: bool, perturbation: str = "original") -> pd.DataFrame:
    """Patients x features: the baseline's ``t0|series|region|feature`` (time point k's ``tk|...``
    with ``config.read_timepoint = k``; a patient without it has no values), and with ``delta`` the
    change to the first follow-up, ``delta|...`` (follow-up minus baseline) and ``rel|...``
    ((follow-up - baseline) / |baseline|, where the baseline is not 0). A patient without a
    follow-up has NaN deltas (imputed by the learner, and so recorded)."""
    t = features.table
    t = t[t["perturbation"] == perturbation]
    t = t.assign(column=t["series"] + "|" + t["region"] + "|" + t["feature"])
    read = features.config.read_timepoint
    if delta and read:
        raise ValueError(f"delta radiomics read the change from the baseline: read_timepoint must be 0, got {read}")
    base = t[t["timepoint_index"] == read].pivot_table(index="patient_id", columns="column", values="value",
                                                       aggfunc="first")
    base.columns = [f"t{read}|{c}" for c in base.columns]
    out = base
    if delta:
        fu = t[t["timepoint_index"] == 1].pivot_table(index="patient_id", columns="column", values="value",
                                                      aggfunc="first")
        b = base.copy()
        b.columns = [c[3:] for c in b.columns]
        fu = fu.reindex(index=b.index, columns=b.columns)
        d = fu - b
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = d / b.abs().where(b.abs() > 1e-12)
        out = pd.concat([base, d.add_prefix("delta|"), rel.add_prefix("rel|")], axis=1)
    out.index.name = "patient_id"
    return out.reindex(features.ids)
