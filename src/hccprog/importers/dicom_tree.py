"""A DICOM download tree (TCIA/NBIA layout) read header-only: series folders, studies, DICOM-SEG
objects, and the contrast phase of each CT or MR series.

Layout: ``<patient>/<study date-description>/<series number-description>/*.dcm``, with or without the
NBIA ``metadata.csv`` at the top (its ``File Location`` column then names the series folders). The
patient is the name of the series folder's grandparent (the TCIA subject id), never the PatientID tag,
which collections re-anonymise. One header is read per series folder; the files are only opened for
reading.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pydicom

from hccprog.imaging.dicom import SEG_SOP_CLASS_UID, is_dicom_file

PHASES = ("NC", "ART", "PV", "DEL")

#: Words in a series description (or protocol name) that name a contrast phase.
PHASE_WORDS: dict[str, re.Pattern] = {
    "NC": re.compile(r"\b(non[ -]?con(trast)?|noncontrast|pre[ -]?con(trast)?|precontrast|pre|plain|unenhanced|"
                     r"native|w/?o|without contrast|nc)\b", re.I),
    # not a bare "AP": in descriptions such as "LIVER 3 PHASE (AP)" it names the abdomen and pelvis
    "ART": re.compile(r"\b(art|arterial|arterial phase|late art(erial)?|early art(erial)?|hap|lap|"
                      r"hepatic art(erial)?)\b", re.I),
    "PV": re.compile(r"\b(portal|portal[ -]?ven(ous)?|pv|pvp|venous|portovenous)\b", re.I),
    "DEL": re.compile(r"\b(delay(ed)?|del|equilibrium|equil|transitional|late(?! ?art)|(3|4|5|10) ?min)\b", re.I),
}
#: A contrast series covering chest, abdomen and pelvis is acquired in the portal-venous phase.
WHOLE_BODY = re.compile(r"(\bc/a/p\b|chest[ /,-]*abd(omen)?[ /,-]*pelvis|\bcap\b)", re.I)
#: Series that are not diagnostic volumes.
NOT_A_VOLUME = re.compile(r"\b(scout|topogram|localizer|locator|survey|dose|report|screen ?save|bolus|"
                          r"smart ?prep|monitoring|tracker|test bolus|mip|3d|vr|volume rendering)\b", re.I)


@dataclass
class SeriesInfo:
    """One series folder, from its first DICOM header."""

    folder: Path
    patient: str
    study_uid: str
    study_date: date | None
    study_time: str
    study_description: str
    series_uid: str
    series_number: int | None
    description: str
    modality: str
    sop_class: str
    files: int
    image_type: str = ""
    contrast: str = ""  # ContrastBolusAgent, else "IV" when ContrastBolusRoute says so
    time: str = ""  # AcquisitionTime, else SeriesTime (orders contrast series)
    referenced_series: str | None = None  # a DICOM-SEG's source series
    segments: dict[int, str] = field(default_factory=dict)
    seg_file: Path | None = None

    @property
    def is_seg(self) -> bool:
        return self.sop_class == SEG_SOP_CLASS_UID


@dataclass
class PhaseCall:
    """The phase given to a series, how sure, and why."""

    phase: str | None  # NC, ART, PV, DEL, or None (not used)
    confidence: str  # high | medium | low | given (mapping file) | skipped
    reason: str

    @property
    def uncertain(self) -> bool:
        return self.confidence in ("low",)


def _date(text: str) -> date | None:
    text = (text or "").strip()
    for fmt in ("%Y%m%d", "%Y-%m-%d", "%m-%d-%Y"):
        try:
            return datetime.strptime(text[:10] if "-" in text else text[:8], fmt).date()
        except ValueError:
            continue
    return None


def _folder_date(name: str) -> date | None:
    m = re.match(r"(\d{2})-(\d{2})-(\d{4})", name)  # TCIA study folders: MM-DD-YYYY-description
    if not m:
        return None
    try:
        return date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
    except ValueError:
        return None


def _dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and (p.suffix.lower() == ".dcm" or is_dicom_file(p)))


def read_series_info(folder: Path, files: list[Path] | None = None) -> SeriesInfo | None:
    """The :class:`SeriesInfo` of a series folder (None when no file in it is DICOM)."""
    files = files if files is not None else _dicom_files(folder)
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # not DICOM after all: try the next file
            continue
        sop = str(ds.get("SOPClassUID", ""))
        info = SeriesInfo(
            folder=folder, patient=folder.parent.parent.name, study_uid=str(ds.get("StudyInstanceUID", "")),
            study_date=_date(str(ds.get("StudyDate", ""))) or _folder_date(folder.parent.name),
            study_time=str(ds.get("StudyTime", "")), study_description=str(ds.get("StudyDescription", "")),
            series_uid=str(ds.get("SeriesInstanceUID", "")),
            series_number=int(ds.SeriesNumber) if ds.get("SeriesNumber") not in (None, "") else None,
            description=str(ds.get("SeriesDescription", "") or ds.get("ProtocolName", "") or ""),
            modality=str(ds.get("Modality", "")), sop_class=sop, files=len(files),
            image_type="\\".join(map(str, ds.get("ImageType", []) or [])),
            contrast=str(ds.get("ContrastBolusAgent", "") or "") or
            ("IV" if "IV" in str(ds.get("ContrastBolusRoute", "")).upper().split() else ""),
            time=str(ds.get("AcquisitionTime", "") or ds.get("SeriesTime", "") or ""))
        if sop == SEG_SOP_CLASS_UID:
            info.seg_file = path
            ref = ds.get("ReferencedSeriesSequence")
            if ref:
                info.referenced_series = str(ref[0].SeriesInstanceUID)
            info.segments = {int(s.SegmentNumber): str(s.get("SegmentLabel", ""))
                             for s in ds.get("SegmentSequence", [])}
        return info
    return None


def metadata_folders(root: Path) -> list[Path] | None:
    """Series folders named by an NBIA ``metadata.csv`` at ``root`` (None when there is none)."""
    meta = root / "metadata.csv"
    if not meta.is_file():
        return None
    out = []
    with open(meta, newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            loc = (row.get("File Location") or "").replace("\\", "/").strip()
            if not loc:
                continue
            parts = [p for p in loc.split("/") if p not in ("", ".")]
            # the location starts at the download folder, sometimes with the collection's name first
            for k in range(len(parts)):
                cand = root.joinpath(*parts[k:])
                if cand.is_dir():
                    out.append(cand)
                    break
    return out


def scan_tree(root: str | os.PathLike, progress: Callable[[int, int], None] | None = None) -> tuple[list[SeriesInfo],
                                                                                                      list[str]]:
    """Every series folder under ``root`` with its header facts, and notes on what was not read."""
    root = Path(root)
    notes: list[str] = []
    listed = metadata_folders(root)
    walked = sorted({Path(d) for d, _, files in os.walk(root) if any(f.lower().endswith(".dcm") or
                                                                      is_dicom_file(Path(d) / f) for f in files)})
    if listed is not None:
        missing = sorted(set(walked) - set(listed))
        if missing:
            notes.append(f"{len(missing)} DICOM folder(s) not in metadata.csv were read too (e.g. "
                         f"{missing[0].relative_to(root)})")
        absent = len({str(p) for p in listed}) - len(set(listed) & set(walked))
        if absent:
            notes.append(f"{absent} series of metadata.csv have no DICOM files under {root}")
    infos: list[SeriesInfo] = []
    for n, folder in enumerate(walked):
        if progress:
            progress(n, len(walked))
        files = _dicom_files(folder)
        info = read_series_info(folder, files)
        if info is None:
            notes.append(f"{folder.relative_to(root)}: no readable DICOM file")
            continue
        if len(folder.relative_to(root).parts) < 3:
            notes.append(f"{folder.relative_to(root)}: not in <patient>/<study>/<series> layout; skipped")
            continue
        infos.append(info)
    if progress:
        progress(len(walked), len(walked))
    return infos, notes


# ----------------------------------------------------------------------------------- phases


def _words(info: SeriesInfo) -> set[str]:
    text = " ".join((info.description, info.image_type.replace("\\", " ")))
    return {phase for phase, pattern in PHASE_WORDS.items() if pattern.search(text)}


def classify_study(series: list[SeriesInfo], overrides: dict[str, str] | None = None,
                   root: Path | None = None, *, modalities: tuple[str, ...] = ("CT", "MR")) -> dict[str, PhaseCall]:
    """Phase of each image series of one study, keyed by SeriesInstanceUID.

    1. ``overrides`` (SeriesInstanceUID or folder relative to ``root`` -> phase or ``skip``) win;
    2. non-image objects (DICOM-SEG, reports, scouts, localizers), series of a modality outside
       ``modalities`` (an MR series in a CT collection) and series of fewer than 10 slices are not used;
    3. one phase named in the description: that phase (high);
    4. a contrast series covering chest, abdomen and pelvis without a phase word: PV (medium);
    5. otherwise, by contrast: no ContrastBolusAgent and no contrast word -> NC when other series of
       the study have contrast (medium); contrast series without a phase word take ART, PV, DEL in
       acquisition-time order among the study's contrast series (medium when two or more, low when
       alone); several phase words or nothing to go on -> low.
    """
    overrides = overrides or {}
    calls: dict[str, PhaseCall] = {}
    pending: list[SeriesInfo] = []
    for s in series:
        key_rel = str(s.folder.relative_to(root)) if root is not None else ""
        given = overrides.get(s.series_uid) or overrides.get(key_rel) or overrides.get(s.folder.name)
        if given:
            phase = None if str(given).lower() == "skip" else str(given).upper()
            calls[s.series_uid] = PhaseCall(phase, "given", "mapping file")
            continue
        if s.is_seg or s.modality not in ("CT", "MR"):
            calls[s.series_uid] = PhaseCall(None, "skipped", f"not an image series ({s.modality or s.sop_class})")
            continue
        if s.modality not in modalities:
            calls[s.series_uid] = PhaseCall(None, "skipped", f"modality {s.modality}: this collection is "
                                                             f"{'/'.join(modalities)}")
            continue
        if NOT_A_VOLUME.search(s.description) or "LOCALIZER" in s.image_type.upper():
            calls[s.series_uid] = PhaseCall(None, "skipped", f"not a diagnostic volume ({s.description!r})")
            continue
        if s.files < 10:
            calls[s.series_uid] = PhaseCall(None, "skipped", f"{s.files} slice(s): not a volume")
            continue
        words = _words(s)
        if len(words) == 1:
            phase = next(iter(words))
            calls[s.series_uid] = PhaseCall(phase, "high", f"description {s.description!r}")
        elif not words and s.contrast and WHOLE_BODY.search(s.description):
            calls[s.series_uid] = PhaseCall("PV", "medium", f"contrast series covering chest, abdomen and pelvis "
                                                            f"({s.description!r})")
        else:
            pending.append(s)
    has_contrast = any(s.contrast for s in series) or any(
        c.phase in ("ART", "PV", "DEL") for c in calls.values())
    timed = sorted((s for s in pending if (s.contrast or not has_contrast) and len(_words(s)) != 1),
                   key=lambda s: (s.time or "", s.series_number or 0))
    for s in pending:
        words = _words(s)
        if len(words) > 1:
            calls[s.series_uid] = PhaseCall(None, "low", f"description {s.description!r} names several phases "
                                                         f"({', '.join(sorted(words))})")
        elif not s.contrast and has_contrast:
            calls[s.series_uid] = PhaseCall("NC", "medium", "no ContrastBolusAgent while other series of the "
                                                            "study have contrast")
    rest = [s for s in timed if s.series_uid not in calls]
    taken = {c.phase for c in calls.values() if c.phase}
    free = [p for p in ("ART", "PV", "DEL") if p not in taken]
    for s, phase in zip(rest, free, strict=False):
        sure = "medium" if len(rest) >= 2 and s.contrast else "low"
        calls[s.series_uid] = PhaseCall(phase, sure, f"order of acquisition time among {len(rest)} contrast "
                                                     "series without a phase word")
    for s in rest:
        calls.setdefault(s.series_uid, PhaseCall(None, "low", "no phase word and no free phase by timing"))
    return calls


def series_name(modality: str, phase: str) -> str:
    """The cohort's series name: CT_PV, MR_ART, ..."""
    return f"{'MR' if modality == 'MR' else 'CT'}_{phase}"
