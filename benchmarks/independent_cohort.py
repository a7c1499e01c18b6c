"""A contract-conforming HCC-TACE cohort written WITHOUT hccprog's generator.

Independent of ``hccprog.synth`` on purpose (it imports nothing from hccprog): other code, other
anatomy and intensities, other file formats and conventions, another survival model. It checks
that the toolkit's models learn from what images show, not from the quirks of the project's own
phantoms. Differences from ``hccprog synth``:

* images are MetaImage (``.mha``) written by SimpleITK, in ITK's LPS world with a non-identity
  direction (the x axis flipped) and anisotropic 3.5 x 3.5 x 6 mm voxels on a 72 x 72 x 36 grid;
* two contrast phases only (``ART``, ``PV``; series names without the ``CT_`` prefix), masks with
  labels liver = 7, tumor = 9;
* time points ``pre`` and ``post`` without a ``day`` column (order of appearance); 15% of the
  patients lack the post-TACE scan (the model must carry the baseline forward);
* times in months; an Excel-free CSV with other column names;
* tumors are lobulated blobs (a sum of Gaussians) whose viable part is a heterogeneous
  arterially enhancing region; the imaging log-hazard is made of the baseline viable diameter,
  its relative change after TACE and the share of the tumor that enhances (arterial
  heterogeneity); the clinical part of age, bilirubin, albumin, AFP, performance status and
  vascular invasion. The table holds the tumor count but no tumor size;
* the mRECIST response (column ``mrecist``) is PD for new lesions (more likely with vascular
  invasion and high AFP) or a viable-diameter growth of 20% or more, CR below -85%, PR from -30%;
  hypervascular tumors shrink more.

``truth.csv`` holds ``log_hazard`` (imaging + clinical) for the oracle comparison.

``--modality mri --followups 2`` writes MRI instead (series ``MR_T2W``, ``MR_ART``, ``MR_PV`` in
arbitrary positive units with Rician-like noise) at three time points ``pre``, ``post``,
``post2`` (the second follow-up continues the first one's change; 10% of those with a first
follow-up lack the second). The survival model is the same. The CT default is unchanged.

    .venv/bin/python benchmarks/independent_cohort.py OUT --patients 200 --seed 0
    .venv/bin/python benchmarks/independent_cohort.py OUT --modality mri --followups 2
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import zoom

SHAPE = (72, 72, 36)  # x, y, z voxels
SPACING = (3.5, 3.5, 6.0)
LIVER_LABEL, TUMOR_LABEL = 7, 9
HU = {"ART": {"body": 40, "liver": 75, "viable": 150, "dead": 15, "outside": -900},
      "PV": {"body": 55, "liver": 125, "viable": 85, "dead": 20, "outside": -900}}
MR = {"MR_T2W": {"body": 300, "liver": 240, "viable": 520, "dead": 380, "outside": 0},
      "MR_ART": {"body": 200, "liver": 260, "viable": 640, "dead": 150, "outside": 0},
      "MR_PV": {"body": 230, "liver": 430, "viable": 330, "dead": 160, "outside": 0}}
IMG = {"diameter": 0.6, "change": 0.8, "enhancing": 0.5}
CLIN = {"age": 0.2, "bilirubin": 0.45, "albumin": -0.35, "afp": 0.35, "ps": 0.4, "vascular": 0.6}


def _grid():
    idx = [np.arange(n) for n in SHAPE]
    x, y, z = np.meshgrid(*idx, indexing="ij")
    return x * SPACING[0], y * SPACING[1], z * SPACING[2]  # mm from the first voxel


def _blob(x, y, z, center, radius, lobes, rng) -> np.ndarray:
    """A lobulated tumor field > 1 inside."""
    field = np.exp(-((x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2) / (2 * (radius / 1.6) ** 2))
    for _ in range(lobes):
        off = rng.normal(0, radius * 0.45, 3)
        r = radius * rng.uniform(0.35, 0.6)
        field += 0.6 * np.exp(-((x - center[0] - off[0]) ** 2 + (y - center[1] - off[1]) ** 2
                                + (z - center[2] - off[2]) ** 2) / (2 * (r / 1.6) ** 2))
    return field / np.exp(-0.5)  # ~1 at distance `radius` for a single Gaussian


def _write(array: np.ndarray, path: Path, pixel) -> None:
    img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)).astype(pixel))
    img.SetSpacing(SPACING)
    img.SetDirection((-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))  # x flipped
    img.SetOrigin((120.0, -130.0, -90.0))
    sitk.WriteImage(img, str(path), useCompression=True)


def patient(i: int, seed: int, out: Path, modality: str = "ct", followups: int = 1) -> tuple[dict, dict, list[dict]]:
    rng = np.random.default_rng([seed, i, 77])
    pid = f"IND-{i:03d}"
    x, y, z = _grid()
    # liver: one tilted ellipsoid, shifted per patient
    c = np.array([130.0, 120.0, 100.0]) + rng.normal(0, 8, 3)
    ax = np.array([85.0, 70.0, 60.0]) * rng.uniform(0.9, 1.1, 3)
    liver = (((x - c[0]) / ax[0]) ** 2 + ((y - c[1]) / ax[1]) ** 2 + ((z - c[2]) / ax[2]) ** 2) < 1
    body = ((x - 126) / 120) ** 2 + ((y - 126) / 100) ** 2 < 1
    # tumors
    n_tumors = int(1 + rng.binomial(3, 0.25))
    main_r = float(np.clip(rng.lognormal(np.log(20), 0.35), 8, 45))
    enhancing = float(rng.beta(4, 2))  # share of the viable-looking tumor that enhances
    # relative change of the viable diameter after TACE: hypervascular tumors respond better
    change = float(np.clip(rng.normal(-0.35 - 0.12 * (enhancing - 0.67) / 0.18, 0.28), -0.9, 0.6))
    centers = [c + rng.uniform(-0.45, 0.45, 3) * ax for _ in range(n_tumors)]
    radii = [main_r] + [main_r * rng.uniform(0.3, 0.6) for _ in range(n_tumors - 1)]
    lobes = [int(rng.integers(0, 3)) for _ in range(n_tumors)]
    blob_seeds = [int(rng.integers(2**31)) for _ in range(n_tumors)]
    het_seed = int(rng.integers(2**31))
    has_post = rng.uniform() > 0.15

    def scene(scale: float, treated: bool):
        tumor = np.zeros(SHAPE, bool)
        for cc, r, lb, s in zip(centers, radii, lobes, blob_seeds, strict=True):
            tumor |= _blob(x, y, z, cc, r * scale if r == main_r else r * max(scale, 0.5), lb,
                           np.random.default_rng(s)) > 1.0
        tumor &= liver
        het = np.random.default_rng(het_seed).random((24, 24, 12))
        het = zoom(het, [s / h for s, h in zip(SHAPE, het.shape, strict=True)], order=1)
        het = het[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
        viable = tumor & (het < enhancing)
        if treated:  # lipiodol-free necrosis where the tumor shrank
            viable &= het < enhancing * min(1.0, scale)
        return tumor, viable

    rows = []
    scans = [("pre", 1.0, False)] + ([("post", 1.0 + change, True)] if has_post else [])
    if followups >= 2 and has_post and np.random.default_rng([seed, i, 91]).uniform() > 0.10:
        scans.append(("post2", float(np.clip(1.0 + 1.5 * change, 0.1, 2.0)), True))
    folder = out / "scans" / pid
    folder.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng([seed, i, 5])
    levels = MR if modality == "mri" else HU
    for tp, scale, treated in scans:
        tumor, viable = scene(scale, treated)
        mask = np.where(tumor, TUMOR_LABEL, np.where(liver, LIVER_LABEL, 0)).astype(np.uint8)
        _write(mask, folder / f"{tp}_seg.mha", np.uint8)
        for phase, hu in levels.items():
            img = np.full(SHAPE, hu["outside"], np.float32)
            img[body] = hu["body"]
            img[liver] = hu["liver"]
            img[tumor] = hu["dead"]
            img[viable] = hu["viable"]
            if modality == "mri":  # magnitude of a complex signal: Rician-like, never negative
                img = np.hypot(img + noise.normal(0, 18, SHAPE), noise.normal(0, 18, SHAPE)).astype(np.float32)
            else:
                img += noise.normal(0, 12, SHAPE).astype(np.float32)
            _write(np.clip(img, -1024, 3000), folder / f"{tp}_{phase}.mha", np.int16)
            rows.append({"pid": pid, "timepoint": tp, "series": phase, "image": f"scans/{pid}/{tp}_{phase}.mha",
                         "mask": f"scans/{pid}/{tp}_seg.mha"})
    # clinical variables (independent of the images)
    age = float(np.clip(rng.normal(62, 9), 35, 85))
    bili = float(np.exp(rng.normal(np.log(20), 0.45)))
    alb = float(np.clip(rng.normal(36, 5), 22, 50))
    afp = float(np.exp(rng.normal(4.0, 2.0)))
    ps = int(rng.choice([0, 1, 2], p=[0.55, 0.35, 0.10]))
    vasc = int(rng.uniform() < 0.15)
    # mRECIST after TACE: new lesions (more likely with vascular invasion and high AFP) or growth
    new_lesion = bool(rng.uniform() < 1 / (1 + np.exp(2.6 - 1.2 * vasc - 0.5 * (np.log(afp) - 4.0) / 2.0)))
    response = ("PD" if new_lesion or change >= 0.2 else "CR" if change <= -0.85 else "PR" if change <= -0.3
                else "SD")
    viable_diam = 2 * main_r * enhancing ** (1 / 3)
    eta_img = (IMG["diameter"] * (np.log(viable_diam) - 3.5) / 0.4 + IMG["change"] * (change + 0.35) / 0.3
               + IMG["enhancing"] * (enhancing - 0.67) / 0.18)
    eta_clin = (CLIN["age"] * (age - 62) / 9 + CLIN["bilirubin"] * (np.log(bili) - 3.0) / 0.45
                + CLIN["albumin"] * (alb - 36) / 5 + CLIN["afp"] * (np.log(afp) - 4.0) / 2.0
                + CLIN["ps"] * (ps - 0.55) + CLIN["vascular"] * (vasc - 0.15))
    eta = eta_img + eta_clin
    t_death = 24.0 * (-np.log(rng.uniform()) * np.exp(-eta)) ** (1 / 1.3)  # Weibull, months
    censor = min(rng.uniform(12, 60), rng.exponential(80))
    clinical = {"pid": pid, "age_years": round(age, 1), "bili_umol": round(bili, 1), "alb_gl": round(alb, 1),
                "afp_ngml": round(afp, 1) if rng.uniform() > 0.05 else "", "ps": ps, "vascular_invasion": vasc,
                "n_nodules": n_tumors, "surv_months": round(min(t_death, censor), 2),
                "death": int(t_death <= censor), "mrecist": response}
    truth = {"pid": pid, "log_hazard": eta, "log_hazard_imaging": eta_img, "log_hazard_clinical": eta_clin,
             "has_post": int(has_post), "new_lesion": int(new_lesion), "change": change}
    return clinical, truth, rows


COHORT_YAML = """\
name: independent-hcc-tace
clinical: table.csv
images: scans.csv
id_column: pid
time_unit: months
endpoints:
  os: {time: surv_months, event: death}
response: mrecist
covariates:
  age_years: {type: numeric, unit: years}
  bili_umol: {type: numeric, unit: umol/L, transform: log}
  alb_gl: {type: numeric, unit: g/L}
  afp_ngml: {type: numeric, unit: ng/mL, transform: log}
  ps: {type: ordinal, levels: [0, 1, 2]}
  vascular_invasion: {type: binary}
  n_nodules: {type: numeric}
labels: {liver: 7, tumor: 9}
"""


def _csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modality", choices=["ct", "mri"], default="ct")
    ap.add_argument("--followups", type=int, choices=[1, 2], default=1)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=False)
    res = [patient(i, a.seed, a.out, a.modality, a.followups) for i in range(a.patients)]
    _csv(a.out / "table.csv", [r[0] for r in res])
    _csv(a.out / "truth.csv", [r[1] for r in res])
    _csv(a.out / "scans.csv", [row for r in res for row in r[2]])
    (a.out / "cohort.yaml").write_text(COHORT_YAML, encoding="utf-8")
    print(a.out / "cohort.yaml")


if __name__ == "__main__":
    main()
