"""Where masks live: which series carries a time point's mask (:func:`mask_series`), a mask for a time
point without one propagated by registration from the nearest masked time point (:func:`propagate_to`),
and ``hccprog propagate`` (:func:`propagate_cohort`), which writes such masks as files a person can check.

Training and prediction propagate missing masks on the fly (recorded per patient as ``mask-propagated``).
``hccprog propagate`` does the same registration once and writes the result as a new cohort folder beside the
old one: a mask file per propagated time point (``masks/``), ``images.csv`` with ``mask_source:
propagated from <time point>/<series>`` on those rows, a QC figure per patient and time point (``qc/``:
contours on both time points), and ``propagation.csv`` with the figure of merit of each pair (normalised
cross-correlation of the two scans inside the propagated liver, before and after registration). The
original cohort's files are only read; ``cohort.yaml`` is copied with its paths made absolute.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import pandas as pd

from hccprog.cohort.model import Cohort, Patient, TimePoint
from hccprog.imaging.modality import volume_modality
from hccprog.imaging.volume import Volume
from hccprog.preprocessing.register import Propagation, RegistrationConfig, propagate_mask, qc_figure
from hccprog.runs import save_figure, staged_output, write_csv, write_yaml
from hccprog.safe_yaml import load_yaml


def mask_series(tp: TimePoint, channels: list[str]) -> str | None:
    """The series of ``tp`` whose mask the model reads: the first of ``channels`` with a mask, else the
    first of the time point's series with one; None when the time point has no mask."""
    for name in channels + list(tp.series):
        if name in tp.series and tp.series[name].mask is not None:
            return name
    return None


@dataclass
class PropagatedMask:
    """A mask propagated to a time point without one: both scans, the series used, the result."""

    source: str  # time point / series of the given mask
    target: str  # time point / series of the propagated one
    series: str  # the target series that carries the propagated mask
    source_image: Volume
    source_mask: Volume
    image: Volume  # the target series' image (canonical)
    result: Propagation

    @property
    def note(self) -> str:
        """The ``mask-propagated`` fill entry, with the figure of merit."""
        q = self.result.quality()
        return (f"mask-propagated: {self.target} from {self.source} "
                f"({q['stages']}, liver NCC {q['ncc_before']:.2f} -> {q['ncc_after']:.2f})")


def propagate_to(patient: Patient, target: int, channels: list[str], cfg: RegistrationConfig) -> PropagatedMask:
    """A mask for time point ``target`` of ``patient`` (which has none), propagated from the nearest
    masked time point (the earlier one on a tie) onto the same series, else the first of ``channels``
    (else of the time point) that the target has."""
    tps = list(patient.timepoints)
    masked = [i for i, tp in enumerate(tps) if mask_series(tp, channels) is not None]
    if not masked:
        raise ValueError(f"{patient.id}: no time point has a mask to propagate from")
    src = min(masked, key=lambda i: (abs(i - target), i))
    src_tp, tgt_tp = tps[src], tps[target]
    src_name = mask_series(src_tp, channels)
    tgt_name = next((n for n in [src_name, *channels, *tgt_tp.series] if n in tgt_tp.series), None)
    if tgt_name is None:
        raise ValueError(f"{patient.id}: time point '{tgt_tp.label}' has no series")
    src_img, src_mask = src_tp.series[src_name].load()
    src_img, src_mask = src_img.to_canonical(), src_mask.to_canonical()
    tgt_img = tgt_tp.series[tgt_name].image.load().to_canonical()
    return PropagatedMask(f"{src_tp.label}/{src_name}", f"{tgt_tp.label}/{tgt_name}", tgt_name, src_img, src_mask,
                          tgt_img, propagate_mask(src_img, src_mask, tgt_img, cfg))


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
    todo = [(p, i) for p in cohort for i, tp in enumerate(p.timepoints) if mask_series(tp, []) is None]
    rows = []
    with staged_output(out, overwrite=overwrite, what="a cohort folder written by hccprog propagate",
                       replaceable=lambda p: (p / "propagation.csv").exists()) as tmp:
        for n, (patient, i) in enumerate(todo):
            if progress:
                progress(n, len(todo))
            if not any(mask_series(t, []) for t in patient.timepoints):
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
