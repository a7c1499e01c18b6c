"""``hccprog import hcc-tace-seg``: the TCIA collection HCC-TACE-Seg as a cohort.

HCC-TACE-Seg (Moawad et al., Sci Data 2023; TCIA doi:10.7937/TCIA.5FNA-0924, CC BY 4.0): 105 patients
treated with TACE, multi-phase CT before and after treatment, a DICOM-SEG (liver, tumor, vessels) in the
pre-TACE study only, and a clinical table (``HCC-TACE-Seg_clinical_data-V2.xlsx``, OS and TTP in weeks).

What the importer does (input files are only read):

* reads the download tree header-only (:mod:`hccprog.importers.dicom_tree`);
* orders each patient's studies by date into time points: the baseline is the pre-TACE study, i.e. the
  earliest study holding a DICOM-SEG (the earliest study when none does); earlier studies are listed as
  not used; later ones are ``fu1``, ``fu2``, ...; ``day`` counts from the baseline;
* names each series' phase (CT_NC, CT_ART, CT_PV, CT_DEL) with a confidence; uncertain calls are listed
  in ``import/phases_uncertain.yaml``, which, edited, goes back in with ``--phases``; two series of one
  phase in a study: the one the DICOM-SEG references, else the one with more slices;
* puts each DICOM-SEG on the series it references as its mask (``mask_source: given``); time points
  without a mask are left for ``validate`` to report and for preprocessing to propagate (or treat as
  missing, ``missing_masks``);
* writes ``cohort.yaml`` (the table's endpoints, response, scores and covariates, weeks), ``images.csv``
  and ``import/series.csv`` (every series found, with what was done with it and why).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hccprog.errors import InputError
from hccprog.imaging.readers import LIVER, TUMOR
from hccprog.importers.common import cohort_path, nothing_imported
from hccprog.importers.dicom_tree import PhaseCall, SeriesInfo, classify_study, scan_tree, series_name
from hccprog.runs import staged_output, write_csv, write_yaml
from hccprog.safe_yaml import load_yaml

#: The real table's columns as the cohort contract reads them (as in the spec's real example).
TABLE_SPEC: dict = {
    "id_column": "TCIA_ID",
    "time_unit": "weeks",
    "endpoints": {"os": {"time": "OS", "event": "Death_1_StillAliveorLostToFU_0"},
                  "ttp": {"time": "TTP", "event": "Censored_0_progressed_1"}},
    "response": "1_mRECIST",
    "scores": {"clip": "CLIP_Score", "bclc": "BCLC", "okuda": "Okuda", "child_pugh": "CPS"},
    "covariates": {
        "age": {"type": "numeric", "unit": "years"},
        "Sex": {"type": "categorical"},
        "AFP": {"type": "numeric", "unit": "ng/mL", "transform": "log"},
        "Evidence_of_cirh": {"type": "categorical"},
        "Vascular invasion": {"type": "categorical"},
        "Portal Vein Thrombosis": {"type": "categorical"},
        "Metastasis": {"type": "categorical"},
        "tumor_nodul": {"type": "categorical"},
        "T_involvment": {"type": "categorical"},
        "PS_bclc_0_0_1-2_1_3-4_3": {"type": "ordinal", "levels": [0, 1, 3]},
    },
}
SHEET = "data table"
#: HCC-TACE-Seg is a CT collection: a series of another modality found in a download is listed, not used.
MODALITIES = ("CT",)


@dataclass
class ImportResult:
    out: Path
    patients: int
    timepoints: int
    images: int
    masks: int
    uncertain: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_overrides(path: Path | None) -> dict[str, str]:
    """A phases mapping file: ``{series: {UID or folder: NC|ART|PV|DEL|skip}}`` (or the mapping alone)."""
    if path is None:
        return {}
    data = load_yaml(path) or {}
    data = data.get("series", data)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of series (UID or folder) to NC, ART, PV, DEL or skip")
    bad = {k: v for k, v in data.items() if str(v).upper() not in ("NC", "ART", "PV", "DEL", "SKIP")}
    if bad:
        first = next(iter(bad))
        raise InputError(f"{path}: series {first!r}: {bad[first]!r} is not NC, ART, PV, DEL or skip")
    return {str(k): str(v) for k, v in data.items()}


def plan_patient(series: list[SeriesInfo], overrides: dict[str, str], root: Path,
                 out: Path | None = None) -> tuple[list[dict], list[dict]]:
    """images.csv rows of one patient and the series.csv rows of all its series; file paths are written
    relative to the cohort folder ``out`` (relative to the working folder when ``out`` is None)."""
    out = out if out is not None else Path.cwd()
    by_study: dict[str, list[SeriesInfo]] = defaultdict(list)
    for s in series:
        by_study[s.study_uid].append(s)
    segs = [s for s in series if s.is_seg]
    seg_for = {s.referenced_series: s for s in segs if s.referenced_series}
    studies = sorted(by_study, key=lambda u: (by_study[u][0].study_date or pd.Timestamp.max.date(),
                                              by_study[u][0].study_time))
    with_seg = [u for u in studies if any(s.is_seg for s in by_study[u])]
    base = with_seg[0] if with_seg else studies[0]
    base_date = by_study[base][0].study_date
    images, log = [], []
    k = 0
    for uid in studies:
        members = by_study[uid]
        before = studies.index(uid) < studies.index(base)
        label = None
        if not before:
            k += uid != base
            label = "baseline" if uid == base else f"fu{k}"
        calls: dict[str, PhaseCall] = classify_study(members, overrides, root, modalities=MODALITIES)
        chosen: dict[str, SeriesInfo] = {}
        for s in members:
            c = calls[s.series_uid]
            if c.phase is None or before:
                continue
            name = series_name(s.modality, c.phase)
            other = chosen.get(name)
            if other is None or (s.series_uid in seg_for) > (other.series_uid in seg_for) or (
                    (s.series_uid in seg_for) == (other.series_uid in seg_for) and s.files > other.files):
                chosen[name] = s
        if label is not None and chosen:
            day = None
            if base_date and members[0].study_date:
                day = (members[0].study_date - base_date).days
            for name, s in chosen.items():
                seg = seg_for.get(s.series_uid)
                images.append({"timepoint": label, "day": day, "series": name,
                               "image": cohort_path(s.folder, out),
                               "mask": cohort_path(seg.seg_file, out) if seg else "",
                               "mask_source": "given" if seg else ""})
        for s in members:
            c = calls[s.series_uid]
            name = series_name(s.modality, c.phase) if c.phase else ""
            if s.is_seg:
                target = next((x for x in series if x.series_uid == s.referenced_series), None)
                used = "mask of " + str(target.folder.relative_to(root)) if target else "referenced series not found"
            elif before:
                used = "no: study precedes the baseline (pre-TACE) study"
            elif c.phase is None:
                used = "no: " + c.reason
            elif chosen.get(name) is s:
                used = f"yes: {label}/{name}"
            else:
                used = f"no: another {name} series of this study was kept"
            log.append({"patient_id": s.patient, "study_date": s.study_date, "timepoint": label or "",
                        "folder": str(s.folder.relative_to(root)), "series_uid": s.series_uid,
                        "description": s.description, "modality": s.modality, "files": s.files,
                        "phase": c.phase or "", "confidence": c.confidence, "reason": c.reason, "used": used})
    return images, log


def _reasons(plog: list[dict]) -> str:
    """One patient's series.csv verdicts, counted: '3 x not an image series (SEG); 1 x ...'."""
    counts = Counter(r["used"].removeprefix("no: ") for r in plog)
    return "; ".join(f"{n} x {why}" if n > 1 else why for why, n in counts.most_common())


def import_hcc_tace_seg(download: str | os.PathLike, clinical: str | os.PathLike, out: str | os.PathLike, *,
                        phases: str | os.PathLike | None = None, overwrite: bool = False,
                        progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Write the cohort folder ``out`` from a TCIA download tree and the clinical XLSX (or CSV)."""
    download, clinical, out = Path(download), Path(clinical), Path(out)
    if not download.is_dir():
        raise InputError(f"{download}: not a folder (the TCIA download folder expected)")
    if not clinical.is_file():
        raise InputError(f"{clinical}: the clinical table does not exist")
    overrides = read_overrides(Path(phases) if phases else None)
    infos, notes = scan_tree(download, progress)
    if not infos:
        raise InputError(f"{download}: no DICOM series found in <patient>/<study>/<series> folders")
    table = pd.read_excel(clinical, sheet_name=SHEET, dtype=str) if clinical.suffix.lower() in (
        ".xlsx", ".xls") else pd.read_csv(clinical, dtype=str)
    known = {str(v).strip() for v in table.get(TABLE_SPEC["id_column"], pd.Series(dtype=str)).dropna()}
    if not known:
        raise InputError(f"{clinical}: no '{TABLE_SPEC['id_column']}' column (is this the HCC-TACE-Seg table?)")
    by_patient: dict[str, list[SeriesInfo]] = defaultdict(list)
    for s in infos:
        by_patient[s.patient].append(s)
    images, log = [], []
    why_not: dict[str, str] = {}  # patient -> why it is left out
    for pid in sorted(by_patient):
        rows, plog = plan_patient(by_patient[pid], overrides, download, out)
        log += plog
        if pid not in known:
            why_not[pid] = "images found but the patient is not in the clinical table"
            notes.append(f"{pid}: {why_not[pid]}; left out")
            continue
        if not rows:
            why_not[pid] = "no usable image series (" + _reasons(plog) + ")"
            notes.append(f"{pid}: {why_not[pid]}; left out of images.csv")
        images += [{"patient_id": pid, **r} for r in rows]
    if not images:
        raise nothing_imported(download, why_not, log="every series and what was done with it is listed when "
                                                      "at least one patient imports; nothing was written")
    uncertain = [r for r in log if r["confidence"] == "low"]
    spec = {"name": "hcc-tace-seg", "clinical": cohort_path(clinical, out)}
    if clinical.suffix.lower() in (".xlsx", ".xls"):
        spec["clinical_sheet"] = SHEET
    spec.update({"images": "images.csv", **TABLE_SPEC, "labels": {"liver": LIVER, "tumor": TUMOR},
                 "missing_masks": "propagate"})
    frame = pd.DataFrame(images, columns=["patient_id", "timepoint", "day", "series", "image", "mask", "mask_source"])
    frame["day"] = frame["day"].astype("Int64")
    with staged_output(out, overwrite=overwrite, what="a cohort folder written by hccprog import",
                       replaceable=lambda p: (p / "import" / "series.csv").exists()) as tmp:
        write_yaml(tmp / "cohort.yaml", spec)
        write_csv(tmp / "images.csv", frame, index=False)
        write_csv(tmp / "import" / "series.csv", pd.DataFrame(log), index=False)
        if uncertain:
            write_yaml(tmp / "import" / "phases_uncertain.yaml", {
                "series": {r["series_uid"]: r["phase"] or "skip" for r in uncertain},
                "_help": "Edit the phase (NC, ART, PV, DEL or skip) of each series and pass this file back with "
                         "--phases; keys are SeriesInstanceUIDs (folders relative to the download also work)."})
        write_yaml(tmp / "import" / "notes.yaml", {"source": cohort_path(download, out), "notes": notes})
    return ImportResult(out=out, patients=int(frame["patient_id"].nunique()),
                        timepoints=int(frame[["patient_id", "timepoint"]].drop_duplicates().shape[0]),
                        images=len(frame), masks=int((frame["mask"] != "").sum()), uncertain=uncertain, notes=notes)
