"""``hccprog import waw-tace``: the WAW-TACE dataset as a cohort.

WAW-TACE (233 patients with HCC treated with TACE; CC BY 4.0): four CT phases per patient as NIfTI,
per-lesion tumor masks as NRRD, liver (and other organs) segmented by TotalSegmentator, and a clinical
XLSX with a sheet of definitions. Layout::

    <root>/<id>/<id>_<k>_scan.nii.gz            k = 0 native, 1 arterial, 2 portal venous, 3 delayed
    <root>/tumor_masks_*/<id>/*.nrrd             one file per lesion, on the grid of any phase
    <root>/<...totalseg...>/<id>/...             TotalSegmentator output, when present
    <root>/*.xlsx                                clinical data and its definitions sheet

What the importer does (input files are only read):

* finds each patient's phases (``<id>_<k>_scan.nii.gz`` anywhere below the root) as CT_NC, CT_ART, CT_PV
  and CT_DEL of one time point, ``baseline`` (the pre-TACE scan);
* merges every lesion of a patient into the tumor label and resamples it (nearest neighbour, by world
  coordinates) onto each phase; adds the liver from TotalSegmentator (a ``liver.nii.gz`` or label 5 of a
  multi-label ``total`` output) where present; writes one mask per phase into ``masks/`` with
  ``mask_source`` saying where each part came from;
* reads the clinical XLSX: the id column is the one holding the patients' ids; the endpoint is the
  binary progression column with its follow-up time, found by their names and the definitions sheet
  (``--event-column``, ``--time-column`` and ``--time-unit`` override); the response column (mRECIST)
  and numeric or categorical covariates likewise; everything matched or not matched is printed and kept
  in ``import/notes.yaml``.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from hccprog.cohort.tables import normalize_category
from hccprog.errors import InputError
from hccprog.imaging import read_geometry
from hccprog.imaging.readers import LIVER, TUMOR, read_raw_mask
from hccprog.imaging.volume import Volume, resample_to
from hccprog.importers.common import cohort_path, nothing_imported
from hccprog.runs import staged_output, write_csv, write_yaml

PHASE_OF = {"0": "CT_NC", "1": "CT_ART", "2": "CT_PV", "3": "CT_DEL"}
SCAN = re.compile(r"^(?P<id>.+?)_(?P<k>[0-3])_scan\.nii(\.gz)?$", re.I)
TOTALSEG_LIVER = 5  # label of the liver in TotalSegmentator's multi-label "total" output

EVENT_WORDS = re.compile(r"progress|recurren|relapse", re.I)
TIME_WORDS = re.compile(r"follow|time|duration|ttp|pfs|months|days", re.I)
RESPONSE_WORDS = re.compile(r"mrecist|response", re.I)
UNIT_WORDS = {"days": re.compile(r"\bdays?\b", re.I), "weeks": re.compile(r"\bweeks?\b", re.I),
              "months": re.compile(r"\bmonths?\b", re.I), "years": re.compile(r"\byears?\b", re.I)}


@dataclass
class WawResult:
    out: Path
    patients: int
    timepoints: int
    images: int
    masks: int
    notes: list[str] = field(default_factory=list)
    matched: dict[str, str] = field(default_factory=dict)


def find_scans(root: Path) -> dict[str, dict[str, Path]]:
    """Patient id -> series name -> scan file."""
    out: dict[str, dict[str, Path]] = defaultdict(dict)
    for path in sorted(root.rglob("*_scan.nii*")):
        m = SCAN.match(path.name)
        if m:
            out[m.group("id")][PHASE_OF[m.group("k")]] = path
    return dict(out)


def find_lesions(root: Path, pid: str) -> list[Path]:
    """Per-lesion tumor masks of a patient: ``tumor_masks*/<id>/*.nrrd`` (any depth, any case)."""
    hits = []
    for folder in root.rglob(pid):
        if folder.is_dir() and any("tumor" in part.lower() and "mask" in part.lower() for part in folder.parts):
            hits += sorted(folder.glob("*.nrrd")) + sorted(folder.glob("*.nii.gz"))
    return hits


def find_liver(root: Path, pid: str) -> tuple[Path, str] | None:
    """A TotalSegmentator liver of a patient: (file, 'binary' or 'multilabel'), or None."""
    for folder in sorted(root.rglob(pid)):
        if not folder.is_dir() or not any("totalseg" in part.lower() for part in folder.parts):
            continue
        for cand in sorted(folder.rglob("liver.nii*")):
            return cand, "binary"
        for cand in sorted(folder.rglob("*.nii*")):
            return cand, "multilabel"
    return None


def _on_grid(path: Path, reference, select: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Boolean voxels of a label file (``select`` picks them) on ``reference``'s grid (nearest)."""
    raw = read_raw_mask(path)
    vol = Volume(select(np.asarray(raw.array)).astype(np.uint8), raw.affine).to_canonical()
    if not vol.geometry.differences(reference):
        return vol.array > 0
    return resample_to(vol, reference, order=0).array > 0


def _definitions(book: dict[str, pd.DataFrame], data_sheet: str) -> dict[str, str]:
    """Column -> definition text, from any other sheet with two text columns (name, definition)."""
    out: dict[str, str] = {}
    for name, sheet in book.items():
        if name == data_sheet or sheet.shape[1] < 2:
            continue
        for row in sheet.astype(str).itertuples(index=False):
            out[str(row[0]).strip()] = " ".join(str(v) for v in row[1:] if str(v) != "nan")
    return out


def _binary(col: pd.Series) -> bool:
    vals = {_flag(v) for v in col.dropna()}
    return bool(vals) and vals <= {"0", "1", "YES", "NO", "TRUE", "FALSE", "Y", "N"}


def _flag(value) -> str:
    return normalize_category(str(value)).upper()


def _numeric(col: pd.Series) -> bool:
    vals = pd.to_numeric(col.dropna(), errors="coerce")
    return len(vals) > 0 and vals.notna().mean() > 0.95


def read_clinical(xlsx: Path, ids: set[str], *, event: str | None, time: str | None, unit: str | None,
                  notes: list[str]) -> tuple[pd.DataFrame, dict, dict[str, str]]:
    """The clinical table (id column first, named ``patient_id``), the cohort.yaml entries it gives, and
    what was matched."""
    book = pd.read_excel(xlsx, sheet_name=None, dtype=object) if xlsx.suffix.lower() in (".xlsx", ".xls") else {
        "data": pd.read_csv(xlsx, dtype=object)}
    sheet_name, frame, id_col = None, None, None
    for name, sheet in book.items():
        for col in sheet.columns:
            values = {_id_text(v) for v in sheet[col].dropna()}
            if ids and len(values & ids) >= max(1, len(ids) // 2):
                sheet_name, frame, id_col = name, sheet, col
                break
        if frame is not None:
            break
    if frame is None:
        raise InputError(f"{xlsx}: no sheet has a column holding the patients' ids (e.g. {sorted(ids)[:3]})")
    defs = _definitions(book, sheet_name)
    frame = frame.rename(columns={id_col: "patient_id"})
    frame["patient_id"] = frame["patient_id"].map(_id_text)
    text = {c: f"{c} {defs.get(str(c), '')}" for c in frame.columns}
    matched = {"sheet": str(sheet_name), "id": str(id_col)}

    def pick(given, test, what):
        if given is not None:
            if given not in frame.columns:
                raise InputError(f"{xlsx}: no column {given!r} for the {what} "
                                 f"(columns: {', '.join(map(str, frame.columns))})")
            return given
        hits = [c for c in frame.columns if c != "patient_id" and test(c)]
        if len(hits) > 1:
            notes.append(f"{what}: several candidate columns {hits}; took {hits[0]!r} (override with the option)")
        return hits[0] if hits else None

    ev = pick(event, lambda c: bool(EVENT_WORDS.search(text[c])) and _binary(frame[c]), "progression event")
    tm = pick(time, lambda c: c != ev and bool(TIME_WORDS.search(text[c])) and _numeric(frame[c])
              and not _binary(frame[c]), "follow-up time")
    resp = pick(None, lambda c: bool(RESPONSE_WORDS.search(text[c])) and c not in (ev, tm), "response")
    spec: dict = {}
    if ev and tm:
        if unit is None:
            unit = next((u for u, p in UNIT_WORDS.items() if p.search(text[tm])), None)
        if unit is None:
            unit = "months"
            notes.append(f"follow-up time {tm!r}: no unit in its name or definition; months assumed "
                         "(override with --time-unit)")
        frame[ev] = frame[ev].map(lambda v: None if pd.isna(v) else int(_flag(v) in ("1", "YES", "TRUE", "Y")))
        spec["time_unit"] = unit
        spec["endpoints"] = {"pfs": {"time": str(tm), "event": str(ev)}}
        matched.update(event=str(ev), time=f"{tm} ({unit})")
    else:
        notes.append("no endpoint: no binary progression column with a follow-up time was recognised "
                     f"(columns: {', '.join(map(str, frame.columns))}); name them with --event-column and "
                     "--time-column")
    if resp:
        spec["response"] = str(resp)
        matched["response"] = str(resp)
    used = {"patient_id", ev, tm, resp}
    covariates = {}
    for c in frame.columns:
        if c in used or frame[c].isna().mean() > 0.5:
            continue
        if _binary(frame[c]) or (not _numeric(frame[c]) and frame[c].nunique() <= 10):
            covariates[str(c)] = {"type": "categorical"}
        elif _numeric(frame[c]):
            covariates[str(c)] = {"type": "numeric"}
    spec["covariates"] = covariates
    matched["covariates"] = ", ".join(covariates) or "none"
    return frame, spec, matched


def _id_text(value) -> str:
    text = str(value).strip()
    return text[:-2] if re.fullmatch(r"\d+\.0", text) else text


def import_waw_tace(root: str | os.PathLike, out: str | os.PathLike, *, clinical: str | os.PathLike | None = None,
                    event: str | None = None, time: str | None = None, unit: str | None = None,
                    overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> WawResult:
    """Write the cohort folder ``out`` from a WAW-TACE download folder."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (the WAW-TACE dataset folder expected)")
    scans = find_scans(root)
    if not scans:
        raise InputError(f"{root}: no <id>_<k>_scan.nii.gz files (k = 0..3) found below it")
    notes: list[str] = []
    books = [Path(clinical)] if clinical else sorted(root.glob("*.xlsx")) + sorted(root.glob("*/*.xlsx"))
    if not books:
        raise InputError(f"{root}: no clinical .xlsx found; give it with --clinical")
    frame, spec, matched = read_clinical(books[0], set(scans), event=event, time=time, unit=unit, notes=notes)
    known = set(frame["patient_id"])
    rows, masks = [], {}
    why_not: dict[str, str] = {}
    for n, pid in enumerate(sorted(scans)):
        if progress:
            progress(n, len(scans))
        if pid not in known:
            why_not[pid] = "scans found but the patient is not in the clinical table"
            notes.append(f"{pid}: {why_not[pid]}; left out")
            continue
        phases = scans[pid]
        missing = [s for s in PHASE_OF.values() if s not in phases]
        if missing:
            notes.append(f"{pid}: no {', '.join(missing)} scan")
        lesions = find_lesions(root, pid)
        liver = find_liver(root, pid)
        if not lesions:
            notes.append(f"{pid}: no tumor mask (tumor_masks_*/{pid}/*.nrrd)")
        if liver is None:
            notes.append(f"{pid}: no TotalSegmentator liver; masks hold the tumor only")
        for name, scan in phases.items():
            ref = read_geometry(scan)
            label = np.zeros(ref.shape, np.uint8)
            source = []
            if liver is not None:
                path, kind = liver
                pick = (lambda a: a > 0) if kind == "binary" else (lambda a: np.rint(a) == TOTALSEG_LIVER)
                label[_on_grid(path, ref, pick)] = LIVER
                source.append(f"liver: TotalSegmentator {path.name}")
            for lesion in lesions:
                label[_on_grid(lesion, ref, lambda a: a > 0)] = TUMOR
            if lesions:
                source.append(f"tumor: {len(lesions)} lesion file(s) merged")
            mask_rel = ""
            if label.any():
                mask_rel = f"masks/{pid}_{name}_mask.nii.gz"
                masks[mask_rel] = Volume(label, ref.affine)
            rows.append({"patient_id": pid, "timepoint": "baseline", "day": 0, "series": name,
                         "image": cohort_path(scan, out), "mask": mask_rel,
                         "mask_source": "; ".join(source)})
    if progress:
        progress(len(scans), len(scans))
    if not spec.get("endpoints"):
        raise InputError(f"{books[0]}: " + next(n for n in notes if n.startswith("no endpoint")))
    if not rows:
        raise nothing_imported(root, why_not, log="nothing was written")
    images = pd.DataFrame(rows, columns=["patient_id", "timepoint", "day", "series", "image", "mask", "mask_source"])
    cohort = {"name": "waw-tace", "clinical": "clinical.csv", "images": "images.csv", "id_column": "patient_id",
              "time_unit": spec.get("time_unit", "months"), "endpoints": spec.get("endpoints", {}),
              **({"response": spec["response"]} if "response" in spec else {}),
              "covariates": spec["covariates"], "labels": {"liver": LIVER, "tumor": TUMOR}}
    with staged_output(out, overwrite=overwrite, what="a cohort folder written by hccprog import",
                       replaceable=lambda p: (p / "import" / "notes.yaml").exists()) as tmp:
        for rel, vol in masks.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            nib.save(vol.to_nifti(), tmp / rel)
        write_csv(tmp / "clinical.csv", frame, index=False)
        write_csv(tmp / "images.csv", images, index=False)
        write_yaml(tmp / "cohort.yaml", cohort)
        write_yaml(tmp / "import" / "notes.yaml", {"source": cohort_path(root, out),
                                                   "clinical": cohort_path(books[0], out),
                                                   "matched": matched, "notes": notes})
    n_patients = int(images["patient_id"].nunique())
    return WawResult(out=out, patients=n_patients, timepoints=n_patients, images=len(images), masks=len(masks),
                     notes=notes, matched=matched)
