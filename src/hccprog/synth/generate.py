"""Synthetic HCC-TACE cohorts written in the cohort contract, with a known truth.

The generative model (``docs/synthetic.md``) draws, per patient, a latent tumor
aggressiveness, clinical variables, baseline tumors, their course after TACE, and OS/PFS
from Weibull proportional-hazards models whose log-hazard is the sum of

* an **imaging part**, computed only from what the images show: baseline viable
  (enhancing, non-necrotic) tumor volume, its change after the first TACE, and the
  arterial enhancement pattern (rim-like vs homogeneous); and
* a **clinical part**, computed only from table columns: age, ECOG, ALBI, AFP, PVTT.

``truth.csv`` holds both parts per patient so the oracle C-index can be computed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hccprog import __version__
from hccprog.imaging.readers import LIVER, TUMOR
from hccprog.runs import staged_output
from hccprog.synth import phantom as ph

SERIES = {"ct": ("CT_NC", "CT_ART", "CT_PV"), "mri": ("MR_T2", "MR_ART", "MR_PV")}

# Log-hazard coefficients (per documented standardised feature); see docs/synthetic.md.
OS_IMAGING = {"viable": 0.55, "change": 0.75, "rim": 0.45}
OS_CLINICAL = {"age": 0.15, "ecog": 0.40, "albi": 0.45, "afp": 0.30, "pvtt": 0.70}
PFS_SCALE = {"imaging": 1.2, "clinical": 0.6}
WEIBULL_SHAPE = 1.2
OS_MEDIAN_DAYS = 1100.0
TTP_MEDIAN_DAYS = 300.0


class SynthConfig(BaseModel):
    """Everything that determines a synthetic cohort (same config, same bytes)."""

    model_config = ConfigDict(extra="forbid")

    patients: int = Field(200, ge=1)
    seed: int = 0
    modality: Literal["ct", "mri"] = "ct"
    series: tuple[str, ...] | None = None  # default: the modality's three series
    shape: tuple[int, int, int] = (96, 96, 48)
    spacing: tuple[float, float, float] = (4.0, 4.0, 5.0)
    followups: int = Field(1, ge=0, le=4)
    missing_rate: float = Field(0.04, ge=0, le=0.5)  # share of missing lab values
    workers: int = Field(default_factory=lambda: min(2, os.cpu_count() or 1), ge=1)
    compress_level: int = Field(1, ge=0, le=9)

    @field_validator("series")
    @classmethod
    def _series(cls, value):
        if value is not None:
            unknown = [s for s in value if s not in ph.INTENSITY]
            if unknown:
                raise ValueError(f"unknown series {unknown}; known: {sorted(ph.INTENSITY)}")
        return value

    @property
    def series_names(self) -> tuple[str, ...]:
        return self.series or SERIES[self.modality]


# ------------------------------------------------------------------------- patients


@dataclass
class PatientDraw:
    pid: str
    clinical: dict
    truth: dict
    scenes: list[tuple[str, float, ph.Scene]]  # (timepoint label, day, scene)


def _child_pugh(bili, alb, inr, ascites, enceph) -> tuple[int, str]:
    pts = 1 + (bili >= 34) + (bili > 50)
    pts += 1 + (alb <= 35) + (alb < 28)
    pts += 1 + (inr >= 1.7) + (inr > 2.3)
    pts += {"none": 1, "mild": 2, "moderate": 3}[ascites]
    pts += 1 + enceph
    pts = int(pts)
    return pts, ("A" if pts <= 6 else "B" if pts <= 9 else "C")


def _bclc(n_tumors, max_cm, pvtt, ecog, cp_class) -> str:
    if cp_class == "C" or ecog > 2:
        return "D"
    if pvtt or ecog >= 1:
        return "C"
    if n_tumors == 1 and max_cm <= 2 and cp_class == "A":
        return "0"
    if n_tumors == 1 or (n_tumors <= 3 and max_cm <= 3):
        return "A"
    return "B"


def _weibull_time(rng, median: float, eta: float) -> float:
    scale = median / np.log(2.0) ** (1.0 / WEIBULL_SHAPE)
    return float(scale * (-np.log(rng.uniform()) * np.exp(-eta)) ** (1.0 / WEIBULL_SHAPE))


def _place(rng, anatomy: ph.Anatomy, radius: float) -> np.ndarray:
    part = 0 if rng.uniform() < 0.8 else 1
    center, radii = anatomy.liver_parts[part]
    room = np.maximum(radii - 0.6 * radius, 5.0)
    while True:
        u = rng.uniform(-1, 1, 3)
        if (u**2).sum() <= 1:
            p = center + u * room
            if p[2] < anatomy.lung_base_z - 0.5 * radius:
                return p


def draw_patient(cfg: SynthConfig, index: int) -> PatientDraw:
    """All random draws of one patient (independent of the other patients)."""
    rng = np.random.default_rng([cfg.seed, index])
    pid = f"SYN{index + 1:04d}"
    aggressive = rng.normal()

    # clinical variables
    age = float(np.clip(rng.normal(64, 10), 30, 88))
    sex = "M" if rng.uniform() < 0.8 else "F"
    etiology = rng.choice(["HBV", "HCV", "alcohol", "NASH"], p=[0.4, 0.3, 0.2, 0.1])
    albumin = float(np.clip(rng.normal(37.5, 5.0), 20, 52))
    bilirubin = float(np.clip(np.exp(rng.normal(np.log(17), 0.5)), 4, 120))
    inr = float(np.clip(rng.normal(1.15, 0.12), 0.85, 2.6))
    ascites = rng.choice(["none", "mild", "moderate"],
                         p=[0.8, 0.15, 0.05] if albumin > 33 else [0.55, 0.3, 0.15])
    enceph = int(rng.uniform() < 0.03)
    cp_points, cp_class = _child_pugh(bilirubin, albumin, inr, ascites, enceph)
    albi = np.log10(bilirubin) * 0.66 - 0.085 * albumin
    ecog = int(rng.choice([0, 1, 2], p=[0.6, 0.3, 0.1]))
    pvtt = bool(rng.uniform() < 0.12)
    afp = float(np.exp(np.clip(3.2 + 0.9 * aggressive + rng.normal(0, 1.5), 0, 11.5)))

    # baseline tumors
    anatomy = ph.draw_anatomy(rng, pvtt)
    n_tumors = int(min(1 + rng.poisson(0.8), 6))
    radii = [float(np.clip(np.exp(rng.normal(np.log(24), 0.4)), 9, 60))]
    radii += [float(np.clip(radii[0] * rng.uniform(0.3, 0.8), 7, 60)) for _ in range(n_tumors - 1)]
    necrosis = float(np.clip(rng.beta(1.5, 4.0), 0, 0.7))
    tumors = [ph.Tumor(_place(rng, anatomy, r), r, necrosis) for r in radii]
    rim = bool(rng.uniform() < 1 / (1 + np.exp(-1.3 * aggressive)))
    enh = ph.Enhancement(
        arterial=float(np.clip(rng.normal(60 + 10 * aggressive, 12), 20, 120)),
        washout=float(np.clip(rng.normal(28, 8), 5, 60)),
        rim=rim,
    )
    viable0 = sum(t.viable_ml for t in tumors)
    total_ml = sum(t.volume_ml for t in tumors)
    liver_ml = sum(4 / 3 * np.pi * np.prod(r) for _, r in anatomy.liver_parts) / 1000 * 0.8
    max_cm = round(2 * radii[0] / 10.0, 1)

    # course after TACE: change of viable volume (log ratio), new lesions
    change = float(np.clip(rng.normal(-0.9 + 0.55 * aggressive, 0.75), -5.0, 1.5))
    new_lesion = bool(rng.uniform() < 1 / (1 + np.exp(-(aggressive - 1.8) * 1.5)))
    scenes = [("baseline", 0.0, ph.Scene(anatomy, tumors, enh))]
    day = 0.0
    for k in range(cfg.followups):
        day += float(rng.integers(35, 75))
        factor = np.exp(change * (k + 1) / max(1, cfg.followups) if k else change)
        fu = []
        for t in tumors:
            viable = t.viable_ml * factor
            radius = t.radius * float(np.clip(factor ** (1 / 3), 0.85, 1.6))
            vol = 4 / 3 * np.pi * radius**3 / 1000
            if viable > 0.97 * vol:
                radius = float(np.cbrt(viable / 0.97 * 1000 * 3 / (4 * np.pi)))
                vol = viable / 0.97
            fu.append(ph.Tumor(t.center, radius, float(np.clip(1 - viable / vol, 0.0, 0.995)),
                               lipiodol=cfg.modality == "ct"))
        if new_lesion:
            r = float(rng.uniform(7, 14))
            fu.append(ph.Tumor(_place(rng, anatomy, r), r, 0.0))
        shift = rng.normal(0, 0.35, 3) * np.asarray(cfg.spacing)
        scenes.append((f"fu{k + 1}", day, ph.Scene(anatomy, fu, enh, shift_mm=shift)))

    # mRECIST from viable diameters at the first follow-up
    viable1 = viable0 * np.exp(change)
    diam_ratio = np.cbrt(max(viable1, 0.0) / max(viable0, 1e-6))
    if new_lesion:
        response = "PD"
    elif viable1 < 0.1 * viable0 or viable1 < 0.2:
        response = "CR"
    elif diam_ratio <= 0.7:
        response = "PR"
    elif diam_ratio >= 1.2:
        response = "PD"
    else:
        response = "SD"

    # log-hazards: imaging part from image-visible features only, clinical part from columns
    f_viable = (np.log1p(viable0) - 3.0) / 1.0
    f_change = (change - (-0.9)) / 0.93 + (1.0 if new_lesion else 0.0)
    f_rim = float(rim) - 0.5
    eta_img = (OS_IMAGING["viable"] * f_viable + OS_IMAGING["change"] * f_change
               + OS_IMAGING["rim"] * f_rim)
    eta_clin = (OS_CLINICAL["age"] * (age - 64) / 10 + OS_CLINICAL["ecog"] * (ecog - 0.5)
                + OS_CLINICAL["albi"] * (albi + 2.6) / 0.45 + OS_CLINICAL["afp"] * (np.log(afp) - 3.2) / 1.8
                + OS_CLINICAL["pvtt"] * (float(pvtt) - 0.12))
    eta_os = eta_img + eta_clin
    eta_pfs = PFS_SCALE["imaging"] * eta_img + PFS_SCALE["clinical"] * eta_clin

    death = _weibull_time(rng, OS_MEDIAN_DAYS, eta_os)
    progression = _weibull_time(rng, TTP_MEDIAN_DAYS, eta_pfs)
    entry = rng.uniform(0, 3 * 365.25)
    censor = min(5 * 365.25 - entry, rng.exponential(365.25 / 0.08))
    os_time, os_event = min(death, censor), int(death <= censor)
    pfs_raw = min(death, progression)
    pfs_time, pfs_event = min(pfs_raw, censor), int(pfs_raw <= censor)

    def maybe(value, digits):
        return None if rng.uniform() < cfg.missing_rate else round(value, digits)

    clinical = {
        "patient_id": pid,
        "age": round(age),
        "sex": sex,
        "etiology": str(etiology),
        "ecog": ecog,
        "albumin": maybe(albumin, 1),
        "bilirubin": maybe(bilirubin, 1),
        "inr": maybe(inr, 2),
        "ascites": str(ascites),
        "encephalopathy": enceph,
        "child_pugh": cp_class,
        "child_pugh_points": cp_points,
        "afp": maybe(afp, 1),
        "pvtt": int(pvtt),
        "tumor_count": len(tumors),
        "tumor_size_cm": max_cm,
        "tumor_extent": ">50%" if total_ml > 0.5 * liver_ml else "<=50%",
        "bclc": _bclc(len(tumors), max_cm, pvtt, ecog, cp_class),
        "os_time": max(1, round(os_time)),
        "os_event": os_event,
        "pfs_time": max(1, round(pfs_time)),
        "pfs_event": pfs_event,
        "response": response,
    }
    truth = {
        "patient_id": pid,
        "log_hazard_os": eta_os,
        "log_hazard_os_imaging": eta_img,
        "log_hazard_os_clinical": eta_clin,
        "log_hazard_pfs": eta_pfs,
        "log_hazard_pfs_imaging": PFS_SCALE["imaging"] * eta_img,
        "log_hazard_pfs_clinical": PFS_SCALE["clinical"] * eta_clin,
        "aggressiveness": aggressive,
        "viable_ml_baseline": viable0,
        "viable_log_change": change,
        "new_lesion": int(new_lesion),
        "rim_enhancement": int(rim),
        "albi": albi,
        # image quantities that enter no log-hazard (benchmarks/learnability.py draws outcomes from them)
        "tumor_ml_baseline": total_ml,
        "necrotic_fraction": necrosis,
        "arterial_enhancement": enh.arterial,
    }
    return PatientDraw(pid, clinical, truth, scenes)


# --------------------------------------------------------------------------- writing


def _nifti_bytes(array: np.ndarray, affine: np.ndarray, level: int) -> bytes:
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    buf = io.BytesIO()
    buf.write(img.to_bytes())
    return gzip.compress(buf.getvalue(), compresslevel=level, mtime=0)  # mtime=0: same bytes


def render_patient(cfg: SynthConfig, index: int, out: Path) -> tuple[dict, dict, list[dict]]:
    """Draw and write one patient; returns clinical row, truth row and image rows."""
    draw = draw_patient(cfg, index)
    rng = np.random.default_rng([cfg.seed, index, 1])
    folder = out / "images" / draw.pid
    folder.mkdir(parents=True, exist_ok=True)
    affine = ph.affine_for(cfg.shape, cfg.spacing)
    rows = []
    for label, day, scene in draw.scenes:
        labels, radial, liver = ph.render_labels(scene, cfg.shape, cfg.spacing)
        mask = np.zeros(cfg.shape, np.uint8)
        mask[liver] = LIVER
        mask[np.isin(labels, (ph.TUMOR, ph.NECROSIS, ph.LIPIODOL))] = TUMOR
        mask_rel = f"images/{draw.pid}/{label}_mask.nii.gz"
        (out / mask_rel).write_bytes(_nifti_bytes(mask, affine, cfg.compress_level))
        for series in cfg.series_names:
            img = ph.render_series(labels, radial, series, scene.enhancement, rng, cfg.spacing)
            rel = f"images/{draw.pid}/{label}_{series}.nii.gz"
            (out / rel).write_bytes(_nifti_bytes(img, affine, cfg.compress_level))
            rows.append({"patient_id": draw.pid, "timepoint": label, "day": int(day),
                         "series": series, "image": rel, "mask": mask_rel})
    return draw.clinical, draw.truth, rows


def _render_chunk(args) -> list[tuple[dict, dict, list[dict]]]:
    cfg, indices, out = args
    return [render_patient(cfg, i, Path(out)) for i in indices]


def cohort_yaml(cfg: SynthConfig) -> dict:
    return {
        "name": f"hccprog-synthetic-{cfg.modality}-seed{cfg.seed}",
        "clinical": "clinical.csv",
        "images": "images.csv",
        "id_column": "patient_id",
        "time_unit": "days",
        "endpoints": {"os": {"time": "os_time", "event": "os_event"},
                      "pfs": {"time": "pfs_time", "event": "pfs_event"}},
        "response": "response",
        "covariates": {
            "age": {"type": "numeric", "unit": "years"},
            "sex": {"type": "categorical"},
            "etiology": {"type": "categorical"},
            "ecog": {"type": "ordinal", "levels": [0, 1, 2]},
            "albumin": {"type": "numeric", "unit": "g/L"},
            "bilirubin": {"type": "numeric", "unit": "umol/L", "transform": "log"},
            "inr": {"type": "numeric"},
            "ascites": {"type": "ordinal", "levels": ["none", "mild", "moderate"]},
            "encephalopathy": {"type": "binary"},
            "afp": {"type": "numeric", "unit": "ng/mL", "transform": "log"},
            "pvtt": {"type": "binary"},
            "tumor_count": {"type": "numeric"},
            "tumor_size_cm": {"type": "numeric", "unit": "cm"},
            "tumor_extent": {"type": "ordinal", "levels": ["<=50%", ">50%"]},
        },
        "scores": {"bclc": "bclc", "child_pugh": "child_pugh"},
        "labels": {"liver": LIVER, "tumor": TUMOR},
    }


def synthesize(
    out: str | os.PathLike,
    cfg: SynthConfig,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic cohort to ``out`` (atomically: built aside, then moved in place)."""
    out = Path(out)
    stage = staged_output(out, overwrite=overwrite, what="a synthetic cohort",
                          replaceable=lambda p: (p / "cohort.yaml").exists() and (p / "truth.csv").exists())
    with stage as tmp:
        n = cfg.patients
        chunk = max(1, min(8, n // (4 * cfg.workers) or 1))
        batches = [list(range(s, min(n, s + chunk))) for s in range(0, n, chunk)]
        results: list[tuple[dict, dict, list[dict]]] = []
        done = 0
        if cfg.workers > 1 and len(batches) > 1:
            with ProcessPoolExecutor(cfg.workers) as pool:
                for part in pool.map(_render_chunk, [(cfg, b, str(tmp)) for b in batches]):
                    results.extend(part)
                    done += len(part)
                    if progress:
                        progress(done, n)
        else:
            for b in batches:
                results.extend(_render_chunk((cfg, b, str(tmp))))
                done += len(b)
                if progress:
                    progress(done, n)
        clinical = pd.DataFrame([r[0] for r in results])
        truth = pd.DataFrame([r[1] for r in results])
        images = pd.DataFrame([row for r in results for row in r[2]])
        clinical.to_csv(tmp / "clinical.csv", index=False, lineterminator="\n")
        truth.to_csv(tmp / "truth.csv", index=False, float_format="%.6f", lineterminator="\n")
        images.to_csv(tmp / "images.csv", index=False, lineterminator="\n")
        with open(tmp / "cohort.yaml", "w", encoding="utf-8") as fh:
            fh.write(f"# Synthetic cohort written by hccprog {__version__} (hccprog synth).\n")
            fh.write("# truth.csv holds the true log-hazards: docs/synthetic.md.\n")
            yaml.safe_dump(cohort_yaml(cfg), fh, sort_keys=False)
        with open(tmp / "synth.yaml", "w", encoding="utf-8") as fh:
            yaml.safe_dump({"hccprog_version": __version__,
                            **cfg.model_dump(mode="json", exclude={"workers"})}, fh, sort_keys=False)
    return out


def tree_digest(folder: str | os.PathLike) -> str:
    """SHA-256 over every file's relative path and bytes (for reproducibility checks)."""
    h = hashlib.sha256()
    root = Path(folder)
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()
