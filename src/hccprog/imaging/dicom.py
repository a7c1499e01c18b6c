"""DICOM series folders and DICOM-SEG masks, read with pydicom and highdicom.

A series folder is scanned header-only first (:func:`scan_series`), which is what
``validate`` needs; :func:`read_series` then decodes the pixels. The scan

* ignores files that are not DICOM (READMEs, DICOMDIR, licences) and DICOM-SEG objects;
* refuses folders holding several series, mixed orientations or pixel grids, or slices
  without a position;
* sorts slices by their position along the slice normal (``ImageOrientationPatient``
  cross product), never by file name or ``InstanceNumber``;
* reports duplicated positions (error) and uneven spacing, e.g. missing slices
  (warning: the volume is linearly interpolated onto a regular grid at the median step).

Pixel values: each slice's own ``RescaleSlope``/``RescaleIntercept`` (or modality LUT) is
applied; ``PixelPaddingValue`` (and ``PixelPaddingRangeLimit``) voxels are set to air
(-1024 HU) on CT and 0 elsewhere; on CT, values below -1024 HU (outside the scan field of
view on several vendors' scanners, stored as -2000, -2048 or -3024) are set to -1024 HU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from hccprog.errors import InputError
from hccprog.imaging.modality import dicom_image_problem
from hccprog.imaging.volume import LPS_TO_RAS, Geometry, Volume

SEG_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.4"
CT_AIR_HU = -1024.0


class DicomSeriesError(InputError):
    """A DICOM folder that cannot be read as one series; ``problems`` lists why."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = Path(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


@dataclass
class SeriesScan:
    """Header-only view of a series folder."""

    path: Path
    files: list[Path]  # sorted along the slice normal
    positions: np.ndarray  # mm along the normal, ascending
    geometry: Geometry  # native (not yet canonical) geometry, RAS world
    modality: str
    series_uid: str
    sop_instance_uids: list[str]
    warnings: list[str] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    interpolated: bool = False  # uneven spacing: read_series interpolates onto a regular grid


def is_dicom_file(path: Path) -> bool:
    """Cheap check for the DICM preamble."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _read_header(path: Path):
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError):
        return None


def read_header(path: str | os.PathLike):
    """A DICOM file's header (no pixels), or None when it is not a readable DICOM file."""
    return _read_header(Path(path))


def is_multiframe(path: str | os.PathLike) -> bool:
    """True for a DICOM file of more than one frame (enhanced CT/MR, a multi-frame export)."""
    ds = _read_header(Path(path))
    return ds is not None and int(ds.get("NumberOfFrames", 1) or 1) > 1


def _floats(value) -> np.ndarray:
    return np.asarray([float(v) for v in value], dtype=np.float64)


def _no_images_reason(folder: Path) -> str:
    """Why a folder holds no series: a study folder (series in sub-folders) says which to give."""
    subs = sorted(d for d in folder.iterdir() if d.is_dir()
                  and any(is_dicom_file(f) or f.suffix.lower() == ".dcm" for f in d.iterdir() if f.is_file()))
    if not subs:
        return "no DICOM image files found"
    shown = ", ".join(f"'{d.name}'" for d in subs[:12]) + (f", ... ({len(subs)} in all)" if len(subs) > 12 else "")
    return (f"no DICOM image files here, but {len(subs)} sub-folder(s) hold DICOM series ({shown}): this looks "
            "like a study folder; give one series folder per row of images.csv (or import the study tree with "
            "`hccprog import`)")


def scan_series(folder: str | os.PathLike) -> SeriesScan:
    """Scan the DICOM files of ``folder`` (not its sub-folders) without decoding pixels. ``folder`` may
    also be a single single-frame DICOM file, read as a series of one slice (like its folder)."""
    folder = Path(folder)
    if folder.is_file() and (is_dicom_file(folder) or folder.suffix.lower() == ".dcm"):
        return _scan_files(folder, [folder], single=True)
    if not folder.is_dir():
        raise DicomSeriesError(folder, ["not a folder"])
    return _scan_files(folder, sorted(p for p in folder.iterdir() if p.is_file()))


def _scan_files(folder: Path, files: list[Path], *, single: bool = False) -> SeriesScan:
    headers = []
    skipped: list[Path] = []
    for path in files:
        ds = _read_header(path) if (is_dicom_file(path) or path.suffix.lower() == ".dcm") else None
        if ds is None or "SOPClassUID" not in ds or ds.SOPClassUID == SEG_SOP_CLASS_UID:
            skipped.append(path)
            continue
        if path.name.upper() == "DICOMDIR":
            skipped.append(path)
            continue
        headers.append((path, ds))
    if not headers:
        if single:
            raise DicomSeriesError(folder, ["not a DICOM image (no readable header with a SOP class)"])
        raise DicomSeriesError(folder, [_no_images_reason(folder)])
    for path, ds in headers:  # not a CT or MR scan: say what it is, before any geometry question
        problem = dicom_image_problem(ds)
        if problem:
            where = "" if single else f"{path.name} "
            raise DicomSeriesError(folder, [f"{where}{problem}"])

    problems: list[str] = []
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in headers}
    if len(series) > 1:
        problems.append(
            f"{len(series)} series in one folder (SeriesInstanceUID {sorted(series)}); "
            "put each series in its own folder"
        )
    multi = [p for p, ds in headers if int(ds.get("NumberOfFrames", 1) or 1) > 1]
    if multi:
        if len(headers) == 1:
            raise DicomSeriesError(folder, ["multi-frame file: give its path, not its folder"] if not single
                                   else ["multi-frame file read as a single slice"])
        problems.append(f"{len(multi)} multi-frame file(s) mixed with single-frame slices")
    missing = [p.name for p, ds in headers if "ImagePositionPatient" not in ds
               or "ImageOrientationPatient" not in ds or "PixelSpacing" not in ds]
    if missing:
        problems.append(
            f"{len(missing)} file(s) without ImagePositionPatient/ImageOrientationPatient/"
            f"PixelSpacing (e.g. {missing[0]})"
        )
    if problems:
        raise DicomSeriesError(folder, problems)

    iop = np.stack([_floats(ds.ImageOrientationPatient) for _, ds in headers])
    if np.abs(iop - iop[0]).max() > 1e-4:
        raise DicomSeriesError(folder, ["slices have different ImageOrientationPatient"])
    grids = {(int(ds.Rows), int(ds.Columns), *(round(float(v), 5) for v in ds.PixelSpacing))
             for _, ds in headers}
    if len(grids) > 1:
        raise DicomSeriesError(folder, [f"slices have different Rows/Columns/PixelSpacing: {grids}"])

    row_cos, col_cos = iop[0, :3], iop[0, 3:]
    normal = np.cross(row_cos, col_cos)
    ipp = np.stack([_floats(ds.ImagePositionPatient) for _, ds in headers])
    pos = ipp @ normal
    order = np.argsort(pos, kind="stable")
    pos, ipp = pos[order], ipp[order]
    headers = [headers[i] for i in order]

    warnings: list[str] = []
    uneven = False
    if len(pos) > 1:
        steps = np.diff(pos)
        dup = np.flatnonzero(steps < 1e-3)
        if dup.size:
            names = ", ".join(f"{headers[i][0].name}/{headers[i + 1][0].name}" for i in dup[:3])
            raise DicomSeriesError(
                folder, [f"{dup.size} duplicated slice position(s) along the normal ({names})"]
            )
        step = float(np.median(steps))
        off_axis = ipp - ipp[0] - np.outer(pos - pos[0], normal)
        if np.abs(off_axis).max() > 0.05 * step + 1e-3:
            warnings.append("slice origins drift off the slice normal (gantry tilt?); "
                            "geometry uses the normal")
        if np.abs(steps - step).max() > 0.1 * step:
            uneven = True
            gaps = np.flatnonzero(steps > 1.5 * step)
            if gaps.size:
                where = ", ".join(f"{pos[i]:.2f}..{pos[i + 1]:.2f} mm" for i in gaps[:5])
                n_missing = int(np.round(steps[gaps] / step).sum() - gaps.size)
                warnings.append(f"about {n_missing} missing slice(s) between {where}; "
                                f"interpolated onto a regular {step:.3f} mm grid")
            else:
                warnings.append(f"uneven slice spacing ({steps.min():.3f}..{steps.max():.3f} mm); "
                                f"interpolated onto a regular {step:.3f} mm grid")
    else:
        step = float(headers[0][1].get("SpacingBetweenSlices", 0) or 0) or float(
            headers[0][1].get("SliceThickness", 1.0) or 1.0)

    first = headers[0][1]
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = row_cos * col_spacing  # i: along a row (columns index)
    lps[:3, 1] = col_cos * row_spacing  # j: down a column (rows index)
    lps[:3, 2] = normal * step
    lps[:3, 3] = ipp[0]
    n_slices = round((pos[-1] - pos[0]) / step) + 1 if uneven else len(headers)
    geometry = Geometry(shape=(int(first.Columns), int(first.Rows), n_slices), affine=LPS_TO_RAS @ lps)
    return SeriesScan(
        path=folder,
        files=[p for p, _ in headers],
        positions=pos,
        geometry=geometry,
        modality=str(first.get("Modality", "")),
        series_uid=str(first.get("SeriesInstanceUID", "")),
        sop_instance_uids=[str(ds.SOPInstanceUID) for _, ds in headers],
        warnings=warnings,
        skipped=skipped,
        interpolated=uneven,
    )


#: Transfer syntaxes whose pixel data need a codec, and the packages that provide one for pydicom.
CODEC_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg with pylibjpeg-libjpeg, or Pillow",
    "1.2.840.10008.1.2.4.51": "pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pyjpegls, or pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.81": "pyjpegls, or pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.90": "pylibjpeg with pylibjpeg-openjpeg, or Pillow",
    "1.2.840.10008.1.2.4.91": "pylibjpeg with pylibjpeg-openjpeg, or Pillow",
    "1.2.840.10008.1.2.4.201": "pylibjpeg with pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg with pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg with pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pylibjpeg with pylibjpeg-rle (pydicom's own RLE decoder needs numpy only)",
}


class DicomDecodeError(DicomSeriesError):
    """The pixel data of a DICOM file cannot be decoded; the message names the file, its transfer
    syntax, the first reader's error and, for a missing codec, the package that provides one."""


def _transfer_syntax(ds) -> tuple[str, str]:
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is None:
        return "", "not given"
    return str(uid), f"{uid.name} ({uid})" if getattr(uid, "name", "") and uid.name != str(uid) else str(uid)


def _codec_missing(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, NotImplementedError) or any(w in text for w in ("plugin", "dependenc", "decoder"))


_QUIET = threading.Lock()
_quiet_state = {"depth": 0, "saved": None, "level": 0, "propagate": True}


@contextlib.contextmanager
def _quiet_codecs():
    """Keep codec chatter off the terminal while slices decode: pydicom logs a traceback for every
    plug-in that fails, and the C libraries behind ITK and Pillow (libjpeg) print on file descriptor 2.
    Re-entrant across threads: the first decoder in silences, the last one out restores."""
    with _QUIET:
        if _quiet_state["depth"] == 0:
            log = logging.getLogger("pydicom")
            _quiet_state.update(level=log.level, propagate=log.propagate, saved=None)
            log.setLevel(logging.CRITICAL + 1)
            log.propagate = False
            try:
                sys.stderr.flush()
                saved = os.dup(2)
                with open(os.devnull, "wb") as null:
                    os.dup2(null.fileno(), 2)
                _quiet_state["saved"] = saved
            except (OSError, ValueError):  # no real descriptor 2 (an embedding host): nothing to silence
                pass
        _quiet_state["depth"] += 1
    try:
        yield
    finally:
        with _QUIET:
            _quiet_state["depth"] -= 1
            if _quiet_state["depth"] == 0:
                saved = _quiet_state["saved"]
                if saved is not None:
                    os.dup2(saved, 2)
                    os.close(saved)
                log = logging.getLogger("pydicom")
                log.setLevel(_quiet_state["level"])
                log.propagate = _quiet_state["propagate"]


def _gdcm_decode(path: Path) -> np.ndarray | None:
    """Stored values of a one-frame file decoded by ITK's GDCM (it has codecs pydicom may lack), or None;
    ITK's own warnings are kept off stderr."""
    import SimpleITK as sitk

    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(str(path))
        return sitk.GetArrayFromImage(reader.Execute())[0]
    except RuntimeError:
        return None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _decode_slice(path: Path, modality: str) -> np.ndarray:
    """Pixels of one slice in output units (HU on CT), as float32 (rows x columns)."""
    import warnings

    from pydicom.pixels import apply_modality_lut

    with warnings.catch_warnings(), _quiet_codecs():  # codecs talk on stderr; what matters is raised below
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        try:
            stored = ds.pixel_array
        except Exception as first:  # a codec pydicom lacks: ITK's GDCM may have it; else say why
            stored = _gdcm_decode(path)
            if stored is None:
                uid, syntax = _transfer_syntax(ds)
                why = str(first).strip().splitlines()[0] if str(first).strip() else type(first).__name__
                text = f"the pixel data cannot be decoded (transfer syntax {syntax}): {why}"
                if _codec_missing(first) and uid in CODEC_PACKAGES:
                    text += f"; install {CODEC_PACKAGES[uid]} to decode it"
                raise DicomDecodeError(path, [text]) from first
            return _apply_padding(np.asarray(stored, np.float32), None, modality)
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    pad = None
    if "PixelPaddingValue" in ds:
        lo = _stored_value(ds.PixelPaddingValue, ds)
        hi = _stored_value(ds.get("PixelPaddingRangeLimit", ds.PixelPaddingValue), ds)
        lo, hi = min(lo, hi), max(lo, hi)
        pad = (stored >= lo) & (stored <= hi)
    return _apply_padding(values, pad, modality)


def _stored_value(value, ds) -> int:
    """Padding values are stored like pixels: re-read unsigned values as two's complement."""
    value = int(value)
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1 and value >= 2 ** (bits - 1):
        value -= 2**bits
    return value


def _apply_padding(values: np.ndarray, pad: np.ndarray | None, modality: str) -> np.ndarray:
    fill = CT_AIR_HU if modality == "CT" else 0.0
    if pad is not None and pad.any():
        values[pad] = fill
    if modality == "CT":
        np.maximum(values, CT_AIR_HU, out=values)
    return values


def read_series(folder: str | os.PathLike, scan: SeriesScan | None = None) -> Volume:
    """Decode a series folder into a (native-orientation) :class:`Volume` in RAS world."""
    scan = scan or scan_series(folder)
    slices = []
    for p in scan.files:
        try:
            slices.append(_decode_slice(p, scan.modality).T)  # -> (columns, rows)
        except DicomDecodeError as exc:
            where = f"{p.name}: " if scan.path.is_dir() else ""
            raise DicomDecodeError(scan.path, [where + "; ".join(exc.problems)]) from exc
    array = np.stack(slices, axis=-1)
    if scan.interpolated:
        target = scan.positions[0] + np.arange(scan.geometry.shape[2]) * scan.geometry.spacing[2]
        idx = np.clip(np.searchsorted(scan.positions, target, side="right") - 1, 0, len(scan.positions) - 2)
        w = ((target - scan.positions[idx]) / (scan.positions[idx + 1] - scan.positions[idx]))
        w = np.clip(w, 0, 1).astype(np.float32)
        array = array[..., idx] * (1 - w) + array[..., idx + 1] * w
    meta = {"modality": scan.modality, "series_uid": scan.series_uid, "source": str(scan.path)}
    return Volume(array.astype(np.float32, copy=False), scan.geometry.affine.copy(), meta)


# --------------------------------------------------------------------------- DICOM-SEG

#: Segment names (label, property type) that identify hccprog's roles.
_ROLE_WORDS = {
    "liver": ("liver",),
    "tumor": ("tumor", "tumour", "neoplasm", "lesion", "mass", "carcinoma", "hcc", "nodule"),
}


def is_dicom_seg(path: str | os.PathLike) -> bool:
    path = Path(path)
    if not path.is_file():
        return False
    ds = _read_header(path)
    return ds is not None and ds.get("SOPClassUID", "") == SEG_SOP_CLASS_UID


def seg_segments(path: str | os.PathLike) -> dict[int, str]:
    """Segment number -> ``SegmentLabel`` (falling back to the property type's meaning)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    out = {}
    for item in ds.SegmentSequence:
        name = str(item.get("SegmentLabel", "") or "")
        if not name and "SegmentedPropertyTypeCodeSequence" in item:
            name = str(item.SegmentedPropertyTypeCodeSequence[0].CodeMeaning)
        out[int(item.SegmentNumber)] = name
    return out


def seg_role(name: str) -> str | None:
    """'liver', 'tumor' or None from a segment's name."""
    lowered = name.lower()
    if any(w in lowered for w in _ROLE_WORDS["tumor"]):
        return "tumor"
    if any(w in lowered for w in _ROLE_WORDS["liver"]):
        return "liver"
    return None


def seg_geometry(path: str | os.PathLike) -> Geometry:
    """Native geometry of a DICOM-SEG's frames, without decoding its pixels."""
    import highdicom as hd

    seg = hd.seg.segread(path, lazy_frame_retrieval=True)
    vg = seg.get_volume_geometry(allow_missing_positions=True)
    if vg is None:
        raise ValueError(f"{path}: DICOM-SEG frames do not form a regular volume")
    return Geometry(shape=tuple(int(s) for s in vg.spatial_shape), affine=LPS_TO_RAS @ vg.affine)


def read_seg(path: str | os.PathLike) -> Volume:
    """A DICOM-SEG as a label volume whose values are the segment numbers (native grid)."""
    import highdicom as hd

    seg = hd.seg.segread(path)
    vol = seg.get_volume(combine_segments=True, relabel=False, allow_missing_positions=True)
    return Volume(
        np.asarray(vol.array, dtype=np.int16),
        LPS_TO_RAS @ vol.affine,
        {"source": str(path), "segments": seg_segments(path)},
    )
