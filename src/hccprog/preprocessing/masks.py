"""``hccprog propagate``: masks for every time point that has none, written as files a person can check.

Training and prediction propagate missing masks on the fly (recorded per patient as ``mask-propagated``).
This command does the same registration once and writes the result as a new cohort folder beside the
old one: a mask file per propagated time point (``masks/``), ``images.csv`` with ``mask_source:
propagated from <time point>/<series>`` on those rows, a QC figure per patient and time point (``qc/``:
contours on both time points), and ``propagation.csv`` with the figure of merit of each pair (normalised
cross-correlation of the two scans inside the propagated liver, before and after registration). The
original cohort's files are only read; ``cohort.yaml`` is copied with its paths made absolute.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import pandas as pd

from hccprog.cohort.model import Cohort
from hccprog.imaging.modality import volume_modality
from hccprog.preprocessing.register import RegistrationConfig, qc_figure
from hccprog.preprocessing.slices import _mask_series, propagate_to
from hccprog.runs import save_figure, staged_output, write_csv, write_yaml
from hccprog.safe_yaml import load_yaml


def _abs(root: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else Path(os.path.abspath(root / p)))


def propagate_cohort(cohort: Cohort, cohort_path: Path, out: Path, *, cfg: RegistrationConfig | None = None,
                     overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Write the new cohort folder ``out``; returns the figure-of-merit table (one row per propagated pair)."""
    cfg = cfg or RegistrationConfig()
    spec = load_yaml(cohort_path)
    root = Path(cohort_path).parent
    images = pd.read_csv(root / spec["images"], dtype=str, keep_default_na=False)
    if "mask_source" not in images.columns:
        images["mask_source"] = ["given" if m else "" for m in images.get("mask", "")]
    if "mask" not in images.columns:
        images["mask"] = ""
    for col in ("image", "mask"):
        images[col] = [_abs(root, v) if v else "" for v in images[col]]
    id_col = cohort.spec.id_column if cohort.spec.id_column in images.columns else "patient_id"
    todo = [(p, i) for p in cohort for i, tp in enumerate(p.timepoints) if _mask_series(tp, []) is None]
    rows = []
    with staged_output(out, overwrite=overwrite, what="a cohort folder written by hccprog propagate",
                       replaceable=lambda p: (p / "propagation.csv").exists()) as tmp:
        for n, (patient, i) in enumerate(todo):
            if progress:
                progress(n, len(todo))
            if not any(_mask_series(t, []) for t in patient.timepoints):
                rows.append({"patient_id": patient.id, "timepoint": patient.timepoints[i].label,
                             "status": "no masked time point"})
                continue
            got = propagate_to(patient, i, [], cfg)
            result, tgt_label, tgt_name = got.result, patient.timepoints[i].label, got.series
            rel = f"masks/{patient.id}_{tgt_label}_{tgt_name}_mask.nii.gz"
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(result.mask.array, result.mask.affine), tmp / rel)
            sel = ((images[id_col] == patient.id) & (images["timepoint"] == tgt_label)
                   & (images["series"].map(lambda n: cohort.spec.series_aliases.get(n, n)) == tgt_name))
            images.loc[sel, "mask"] = str(Path(os.path.abspath(out / rel)))
            images.loc[sel, "mask_source"] = f"propagated from {got.source}"
            fig = qc_figure(got.source_image, got.source_mask, got.image, result.mask,
                            title=f"{patient.id}: mask propagated {got.source} -> {got.target} "
                                  f"(liver NCC {result.ncc_before:.2f} -> {result.ncc_after:.2f})",
                            source_label=f"{got.source} (given)", target_label=f"{got.target} (propagated)",
                            window=(400.0, 40.0) if volume_modality(got.image, tgt_name) == "CT" else None)
            save_figure(fig, tmp / "qc" / f"{patient.id}_{tgt_label}.png")
            rows.append({"patient_id": patient.id, "timepoint": tgt_label, "series": tgt_name,
                         "source": got.source, "status": "propagated", **result.quality()})
        if progress:
            progress(len(todo), len(todo))
        merit = pd.DataFrame(rows)
        new_spec = {**spec, "clinical": _abs(root, spec["clinical"]), "images": "images.csv"}
        write_csv(tmp / "images.csv", images, index=False)
        write_yaml(tmp / "cohort.yaml", new_spec)
        write_csv(tmp / "propagation.csv", merit, index=False)
        write_yaml(tmp / "registration.yaml", {"source_cohort": str(Path(os.path.abspath(cohort_path))),
                                               "registration": cfg.model_dump(mode="json")})
    return merit
