"""Read images and masks of any supported format into canonical (RAS) volumes.

Formats: NIfTI (``.nii``, ``.nii.gz``; nibabel), NRRD/NHDR and MetaImage (``.mha``,
``.mhd``; SimpleITK), a folder holding one DICOM series (pydicom, see
:mod:`hccprog.imaging.dicom`), a multi-frame DICOM file (highdicom) and, as masks,
DICOM-SEG objects (highdicom), which are placed on their image's grid.

``read_geometry`` reads headers only; ``read_image``/``read_mask`` decode voxels.
"""

from __future__ import annotations

import io
import os
import zlib

try:  # ISA-L decodes gzip about twice as fast as zlib and releases the GIL (threads decode in parallel)
    from isal import isal_zlib as _gunzip
except ImportError:  # pragma: no cover - a declared dependency; zlib gives the same bytes
    _gunzip = zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from hccprog.errors import InputError
from hccprog.imaging import dicom
from hccprog.imaging.modality import AIR_HU, FAT_HU, modality_of_shares
from hccprog.imaging.volume import LPS_TO_RAS, Geometry, GeometryTolerance, Volume, resample_to

#: Canonical label values inside hccprog, whatever the cohort's mask files use.
BACKGROUND, LIVER, TUMOR = 0, 1, 2
CANONICAL_LABELS = {"liver": LIVER, "tumor": TUMOR}

_SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


class ImageReadError(InputError):
    """An image or mask that cannot be read; the message says why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(reason, file=path)


def image_format(path: str | os.PathLike) -> str:
    """'nifti', 'sitk', 'dicom_series', 'dicom_seg', 'dicom_file' or 'unknown'."""
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        return "dicom_series"
    if name.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(_SITK_SUFFIXES):
        return "sitk"
    if name.endswith(".dcm") or dicom.is_dicom_file(p):
        return "dicom_seg" if dicom.is_dicom_seg(p) else "dicom_file"
    return "unknown"


# ----------------------------------------------------------------------------- headers


def _sitk_reader(path: Path):
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader


def _sitk_affine(direction, spacing, origin) -> np.ndarray:
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = d * np.asarray(spacing, dtype=np.float64)
    lps[:3, 3] = origin
    return LPS_TO_RAS @ lps


def _native_geometry(path: Path, fmt: str) -> Geometry:
    if fmt == "nifti":
        img = nib.load(str(path))
        shape = img.shape
        if len(shape) == 4 and shape[3] == 1:
            shape = shape[:3]
        if len(shape) != 3:
            raise ImageReadError(path, f"expected a 3D volume, got shape {img.shape}")
        return Geometry(shape=tuple(int(s) for s in shape), affine=np.asarray(img.affine, float))
    if fmt == "sitk":
        reader = _sitk_reader(path)
        if reader.GetDimension() != 3:
            raise ImageReadError(path, f"expected a 3D volume, got {reader.GetDimension()}D")
        return Geometry(
            shape=tuple(int(s) for s in reader.GetSize()),
            affine=_sitk_affine(reader.GetDirection(), reader.GetSpacing(), reader.GetOrigin()),
        )
    if fmt == "dicom_series":
        return dicom.scan_series(path).geometry
    if fmt == "dicom_seg":
        return dicom.seg_geometry(path)
    if fmt == "dicom_file":
        if not dicom.is_multiframe(path):  # one slice: read like its folder
            return dicom.scan_series(path).geometry
        return _multiframe_geometry(path)
    raise ImageReadError(path, "unknown image format (NIfTI, NRRD, MHA, a DICOM series folder "
                               "or a DICOM file expected)")


def check_affine(affine: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """``affine`` when it maps voxels to the world (finite, invertible); else :class:`ImageReadError`."""
    affine = np.asarray(affine, float)
    if not np.isfinite(affine).all() or np.linalg.matrix_rank(affine[:3, :3], tol=1e-6) < 3:
        raise ImageReadError(path, "the header's voxel-to-world matrix (NIfTI sform/qform, or spacing and "
                                   "direction) is singular or not finite: neither orientation nor voxel size can "
                                   "be read from it; rewrite the file with its scanner geometry")
    return affine


def nifti_orientation_problem(path: str | os.PathLike) -> str | None:
    """Why a NIfTI header gives no orientation (qform_code and sform_code both 0), or None; such a file is
    read with nibabel's fallback (voxel size from pixdim, no rotation, the first axis flipped), so left and
    right cannot be trusted."""
    path = Path(path)
    if image_format(path) != "nifti":
        return None
    header = nib.load(str(path)).header
    if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        return ("the NIfTI header has no orientation (qform_code and sform_code are both 0): it is read with "
                "nibabel's fallback (voxel size from pixdim, no rotation, the first axis flipped), so left/right "
                "and the position in the scanner are guesses; rewrite it from the original scan (e.g. dcm2niix)")
    return None


def read_geometry(path: str | os.PathLike) -> Geometry:
    """Canonical (RAS) geometry from the header alone; raises :class:`ImageReadError`."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "does not exist")
    try:
        native = _native_geometry(path, image_format(path))
        check_affine(native.affine, path)
        return native.canonical()
    except ImageReadError:
        raise
    except dicom.DicomSeriesError as exc:
        raise ImageReadError(path, "; ".join(exc.problems)) from exc
    except Exception as exc:  # corrupt headers surface as many exception types
        raise ImageReadError(path, f"cannot be read ({type(exc).__name__}: {exc})") from exc


# ------------------------------------------------------------------------------ voxels


def _refuse_non_scan(path: Path) -> None:
    ds = dicom.read_header(path)
    problem = dicom.dicom_image_problem(ds) if ds is not None else None
    if problem:
        raise ImageReadError(path, problem)


def _multiframe_geometry(path: Path) -> Geometry:
    import highdicom as hd

    _refuse_non_scan(path)
    vg = hd.imread(str(path), lazy_frame_retrieval=True).get_volume_geometry()
    if vg is None:
        raise ImageReadError(path, "DICOM frames do not form a regular 3D volume")
    return Geometry(shape=tuple(int(s) for s in vg.spatial_shape), affine=LPS_TO_RAS @ vg.affine)


def _multiframe_volume(path: Path) -> Volume:
    import highdicom as hd

    _refuse_non_scan(path)
    image = hd.imread(str(path))
    vol = image.get_volume()
    modality = str(image.get("Modality", ""))
    array = np.asarray(vol.array, dtype=np.float32)
    if modality == "CT":
        np.maximum(array, dicom.CT_AIR_HU, out=array)
    return Volume(array, LPS_TO_RAS @ vol.affine, {"modality": modality, "source": str(path)})


def _native_volume(path: Path, fmt: str) -> Volume:
    if fmt == "nifti":
        img = nib.load(str(path))
        array = np.asanyarray(img.dataobj)
        if array.ndim == 4 and array.shape[3] == 1:
            array = array[..., 0]
        if array.ndim != 3:
            raise ImageReadError(path, f"expected a 3D volume, got shape {array.shape}")
        return Volume(array, np.asarray(img.affine, float), {"source": str(path)})
    if fmt == "sitk":
        import SimpleITK as sitk

        img = sitk.ReadImage(str(path))
        if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
            raise ImageReadError(path, "expected a scalar 3D volume")
        array = sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # (z, y, x) -> (i, j, k)
        affine = _sitk_affine(img.GetDirection(), img.GetSpacing(), img.GetOrigin())
        return Volume(np.ascontiguousarray(array), affine, {"source": str(path)})
    if fmt == "dicom_series":
        return dicom.read_series(path)
    if fmt == "dicom_seg":
        return dicom.read_seg(path)
    if fmt == "dicom_file":
        if not dicom.is_multiframe(path):  # one slice: read like its folder
            return dicom.read_series(path)
        return _multiframe_volume(path)
    raise ImageReadError(path, "unknown image format")


def read_image(path: str | os.PathLike) -> Volume:
    """An image as a canonical float32 :class:`Volume` (HU on CT)."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "does not exist")
    fmt = image_format(path)
    if fmt == "dicom_seg":
        raise ImageReadError(path, "is a DICOM-SEG: give it as a mask, not an image")
    try:
        vol = _native_volume(path, fmt)
        check_affine(vol.affine, path)
    except ImageReadError:
        raise
    except dicom.DicomSeriesError as exc:
        raise ImageReadError(path, "; ".join(exc.problems)) from exc
    except Exception as exc:
        raise ImageReadError(path, f"cannot be read ({type(exc).__name__}: {exc})") from exc
    vol = vol.with_array(np.asarray(vol.array, dtype=np.float32))
    bad = image_content_problem(vol.array)
    if bad:  # the check validate makes, wherever an image is read
        raise ImageReadError(path, bad)
    return vol.to_canonical()


def image_content_problem(array: np.ndarray) -> str | None:
    """Why an image's voxels cannot be used (NaN or infinite values), or None."""
    if np.issubdtype(array.dtype, np.floating):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            return f"holds {bad} NaN or infinite voxel(s)"
    return None


# ------------------------------------------------------------------------- plausibility

#: Voxel spacing (mm) and extent (mm) that human anatomy allows; outside, a header is wrong.
SPACING_RANGE_MM = (0.1, 20.0)
MAX_EXTENT_MM = 2000.0


def implausible_geometry(geometry: Geometry) -> str | None:
    """Why a geometry cannot be a human scan (spacing outside 0.1-20 mm on an axis with more than one
    voxel, or an extent over 2 m), or None."""
    spacing = np.asarray(geometry.spacing, float)
    shape = np.asarray(geometry.shape)
    lo, hi = SPACING_RANGE_MM
    multi = shape > 1
    if (multi & ((spacing < lo) | (spacing > hi))).any():
        sp = " x ".join(f"{s:g}" for s in spacing)
        return (f"voxel spacing {sp} mm is implausible for human anatomy (expected {lo:g} to {hi:g} mm per axis): "
                "check the header's units (spacing written in micrometres or metres?)")
    extent = spacing * shape
    if extent.max() > MAX_EXTENT_MM:
        ex = " x ".join(f"{e:.0f}" for e in extent)
        return (f"extent {ex} mm exceeds {MAX_EXTENT_MM / 1000:g} m: the header's spacing or size is wrong")
    return None


class PixelStats:
    """What decoding every voxel of an image found."""

    def __init__(self) -> None:
        self.voxels = 0
        self.nonfinite = 0
        self.air = 0  # voxels at or below modality.AIR_HU (air or lung in HU)
        self.fat = 0  # voxels at or below modality.FAT_HU (fat or air in HU)
        self.tag: str | None = None  # the DICOM Modality tag, for DICOM
        self.geometry: Geometry | None = None  # canonical, when the pass read the header too (NIfTI)

    def add(self, block: np.ndarray) -> None:
        self.voxels += block.size
        if block.dtype.kind == "f":
            self.nonfinite += int(block.size - np.count_nonzero(np.isfinite(block)))
        self.air += int(np.count_nonzero(block <= AIR_HU))
        self.fat += int(np.count_nonzero(block <= FAT_HU))

    @property
    def intensities(self) -> str:
        """What the intensities say of the modality (see :func:`hccprog.imaging.modality.intensity_modality`)."""
        if not self.voxels:
            return "MR"
        return modality_of_shares(self.air / self.voxels, self.fat / self.voxels)


def _byte_stream(path: Path, chunk: int = 1 << 20):
    """A file's bytes in pieces of at most ``chunk``, gunzipped on the fly for ``.gz`` (ISA-L or zlib
    directly: large pieces keep the GIL released, so threads decode in parallel); a gzip stream is
    checked to its end (CRC and length)."""
    with open(path, "rb") as fh:
        if not path.name.lower().endswith(".gz"):
            while piece := fh.read(chunk):
                yield piece
            return
        d = _gunzip.decompressobj(zlib.MAX_WBITS | 16)
        pending = b""
        while True:
            if not pending:
                pending = fh.read(chunk)
                if not pending:  # the file ended: drain what the decompressor still holds
                    while out := d.decompress(b"", chunk):
                        yield out
                    if not d.eof:
                        raise EOFError("compressed data ends before its end-of-stream marker (a truncated file)")
                    return
            out = d.decompress(pending, chunk)
            pending = d.unconsumed_tail
            if out:
                yield out
            if d.eof:  # a member ended: another may follow (concatenated gzip)
                pending = d.unused_data + pending or fh.read(chunk)
                if not pending:
                    return
                d = _gunzip.decompressobj(zlib.MAX_WBITS | 16)


def _nifti_stream(path: Path):
    """(header, blocks): a NIfTI file's header, parsed from the start of its (decompressed) stream, and its
    stored voxels as consecutive flat blocks of about 1 MB, in one pass: nothing is decoded twice and
    memory holds one block."""
    stream = _byte_stream(path)
    head = b""
    for piece in stream:
        head += piece
        if len(head) >= 544:
            break
    size = int.from_bytes(head[:4], "little")
    klass = nib.Nifti2Header if size in (540, 0x1C020000) else nib.Nifti1Header
    header = klass.from_fileobj(io.BytesIO(head[:klass.sizeof_hdr]))
    dtype = header.get_data_dtype()
    total = int(np.prod(header.get_data_shape())) * dtype.itemsize
    offset = max(int(header.get_data_offset()), klass.sizeof_hdr + 4)

    def blocks():
        done, carry, pending = 0, b"", head[offset:]
        for piece in _chain(pending, stream):
            if carry:
                piece, carry = carry + piece, b""
            piece = piece[: total - done]
            usable = len(piece) - len(piece) % dtype.itemsize
            if usable < len(piece):
                carry = piece[usable:]
            if usable:
                yield np.frombuffer(piece, dtype=dtype, count=usable // dtype.itemsize)
                done += usable
            if done >= total:
                for _ in stream:  # to the end: a gzip stream checks its CRC there
                    pass
                return
        raise ImageReadError(path, f"voxel data ends early: {done:,} of {total:,} bytes (a truncated or partly "
                                   "copied file)")

    return header, blocks()


def _chain(first: bytes, rest):
    if first:
        yield first
    yield from rest


def _nifti_volume(path: Path) -> Volume | None:
    """A NIfTI volume's stored voxels read fast (one pass, ISA-L or zlib directly), in its native
    orientation, or None when it is scaled (scl_slope/scl_inter) or not 3D, for nibabel to read instead."""
    header, blocks = _nifti_stream(path)
    slope, inter = header.get_slope_inter()
    shape = _nifti_shape(header)
    if len(shape) != 3 or (slope not in (None, 1.0) and not np.isnan(slope)) or inter not in (None, 0.0):
        return None
    array = np.concatenate(list(blocks)).reshape(shape, order="F")
    return Volume(array, np.asarray(header.get_best_affine(), float), {"source": str(path)})


def _nifti_shape(header) -> tuple[int, ...]:
    shape = tuple(int(s) for s in header.get_data_shape())
    return shape[:3] if len(shape) == 4 and shape[3] == 1 else shape


def pixel_stats(path: str | os.PathLike) -> PixelStats:
    """Decode every voxel once (NIfTI: streamed in blocks of about 1 MB, so memory stays small);
    raises :class:`ImageReadError` on truncated or corrupt voxel data."""
    path = Path(path)
    stats = PixelStats()
    fmt = image_format(path)
    try:
        if fmt == "nifti":
            header, blocks = _nifti_stream(path)
            for block in blocks:
                stats.add(block)
            shape = _nifti_shape(header)
            if len(shape) == 3:  # the header's geometry, as read_geometry gives it
                affine = check_affine(header.get_best_affine(), path)
                stats.geometry = Geometry(shape=shape, affine=affine).canonical()
        else:
            vol = _native_volume(path, fmt)
            stats.add(np.asarray(vol.array))
            stats.tag = str(vol.meta.get("modality", "") or "") or None
    except ImageReadError:
        raise
    except dicom.DicomSeriesError as exc:
        raise ImageReadError(path, "; ".join(exc.problems)) from exc
    except Exception as exc:  # truncated gzip, short DICOM pixel data, ...
        raise ImageReadError(path, f"{type(exc).__name__}: {exc}") from exc
    return stats


#: A label map with more distinct values than this, or any negative one, is taken for an image.
MAX_LABEL_VALUES = 64


def value_counts(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, voxels holding each): one histogram for small non-negative integers,
    much faster than a sort."""
    flat = np.ravel(array, order="K")  # no copy for a Fortran-ordered volume
    if flat.size and np.issubdtype(flat.dtype, np.integer) and flat.dtype.itemsize <= 2:
        lo, hi = int(flat.min()), int(flat.max())
        if lo >= 0 and hi < 4096:
            hist = np.bincount(flat, minlength=hi + 1)
            values = np.flatnonzero(hist)
            return values.astype(flat.dtype), hist[values]
    return np.unique(flat, return_counts=True)


def distinct_values(array: np.ndarray) -> np.ndarray:
    """Sorted distinct values of ``array``."""
    return value_counts(array)[0]


def label_map_problem(array: np.ndarray, values: np.ndarray | None = None) -> tuple[str, str] | None:
    """(code, what is wrong) when ``array`` cannot be a label map, or None (``values``: its distinct
    values, when already known)."""
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        bad = int(array.size - np.count_nonzero(finite))
        if bad:
            return "mask-nan", f"holds {bad} NaN or infinite voxel(s): a label map holds whole numbers"
        frac = np.abs(array - np.rint(array))
        if (frac > 1e-3).any():
            example = float(array.flat[int(np.argmax(frac))])
            return ("mask-non-integer", f"holds non-integer values (e.g. {example:.3g}): a probability map? "
                                        "threshold it into label values first")
    values = distinct_values(array) if values is None else values
    if len(values) > MAX_LABEL_VALUES or (len(values) and values[0] < 0):
        return ("mask-not-labels", f"is not a label map: {len(values)} distinct values from {values[0]:g} to "
                                   f"{values[-1]:g} (an image given as a mask?)")
    if len(values) == 1 and values[0] == 0:
        return "mask-empty", "is all zero: no liver or tumor label"
    return None


# ------------------------------------------------------------------------------ labels


LabelSpec = Mapping[str, int | Sequence[int]]


def canonical_label_ids(labels: LabelSpec) -> dict[str, int]:
    """Canonical id per label name: liver 1, tumor 2, any further names 3, 4, ... in order."""
    ids = dict(CANONICAL_LABELS)
    for name in labels:
        if name not in ids:
            ids[name] = max(ids.values()) + 1
    return ids


def remap_labels(array: np.ndarray, labels: LabelSpec) -> np.ndarray:
    """Map the file's label values to canonical ids (uint8); unlisted values become 0.

    Later names win where value sets overlap, except that ``tumor`` always wins over
    ``liver`` (a tumor voxel lies inside the liver).
    """
    ids = canonical_label_ids(labels)
    out = np.zeros(array.shape, dtype=np.uint8)
    order = [n for n in labels if n != "tumor"] + (["tumor"] if "tumor" in labels else [])
    for name in order:
        values = labels[name]
        values = [values] if isinstance(values, int | np.integer) else list(values)
        out[np.isin(array, values)] = ids[name]
    return out


def unmapped_values(array: np.ndarray, labels: LabelSpec) -> list[int]:
    """Non-zero values of a label file that no label name covers."""
    known: set[int] = set()
    for values in labels.values():
        known.update([values] if isinstance(values, int | np.integer) else values)
    present = distinct_values(array)
    return [int(v) for v in present if v != 0 and int(v) not in known]


def seg_label_spec(path: str | os.PathLike, labels: LabelSpec) -> dict[str, list[int]]:
    """Label spec for a DICOM-SEG: segments named like a role take it, others go by number."""
    spec: dict[str, list[int]] = {}
    for number, name in dicom.seg_segments(path).items():
        role = dicom.seg_role(name)
        if role is None:
            role = next((n for n, v in labels.items()
                         if number in ([v] if isinstance(v, int) else list(v))), None)
        if role is not None:
            spec.setdefault(role, []).append(number)
    return spec


def seg_fits(seg: Geometry, reference: Geometry, tol: float = 0.05) -> list[str]:
    """Problems placing a DICOM-SEG's frames onto ``reference``'s voxels (empty if it fits)."""
    m = np.linalg.inv(reference.affine) @ seg.affine
    problems = []
    if not np.allclose(m[:3, :3], np.round(m[:3, :3]), atol=tol) or not np.allclose(
        m[:3, 3], np.round(m[:3, 3]), atol=tol
    ):
        problems.append("its frames do not fall on the image's voxels")
    corners = np.array([[i, j, k, 1] for i in (0, seg.shape[0] - 1)
                        for j in (0, seg.shape[1] - 1) for k in (0, seg.shape[2] - 1)], float)
    idx = (m @ corners.T)[:3].T
    if (idx < -0.5).any() or (idx > np.asarray(reference.shape) - 0.5).any():
        problems.append("its frames lie outside the image")
    return problems


def read_raw_mask(path: str | os.PathLike) -> Volume:
    """A mask file's voxels as stored (native orientation, file's own label values)."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "does not exist")
    try:
        fmt = image_format(path)
        vol = _nifti_volume(path) if fmt == "nifti" else None
        vol = vol if vol is not None else _native_volume(path, fmt)
        check_affine(vol.affine, path)
        return vol
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(path, f"cannot be read ({type(exc).__name__}: {exc})") from exc


def read_mask(
    path: str | os.PathLike,
    labels: LabelSpec | None = None,
    *,
    reference: Geometry | None = None,
    resample: bool = False,
    tol: GeometryTolerance | None = None,
    raw: Volume | None = None,
) -> Volume:
    """A mask as a canonical uint8 :class:`Volume` with canonical label ids.

    ``reference`` is the image's canonical geometry: a DICOM-SEG is always placed onto it;
    any other mask must already share it, unless ``resample`` asks for nearest-neighbour
    resampling. Raises :class:`ImageReadError` on a geometry mismatch. ``raw`` reuses
    voxels already read by :func:`read_raw_mask`.
    """
    path = Path(path)
    labels = dict(labels or CANONICAL_LABELS)
    raw = raw if raw is not None else read_raw_mask(path)
    fmt = image_format(path)
    spec = seg_label_spec(path, labels) if fmt == "dicom_seg" else labels
    array = np.asarray(raw.array)
    problem = label_map_problem(array)  # the check validate makes, wherever a mask is read
    if problem:
        raise ImageReadError(path, f"mask {problem[1]}")
    if np.issubdtype(array.dtype, np.floating):
        array = np.rint(array).astype(np.int32)
    vol = Volume(remap_labels(array, spec), raw.affine, raw.meta).to_canonical()
    if reference is None:
        return vol
    if fmt == "dicom_seg":
        problems = seg_fits(vol.geometry, reference)
        if problems:
            raise ImageReadError(path, "DICOM-SEG does not fit its image: " + "; ".join(problems))
        return resample_to(vol, reference, order=0)
    diffs = reference.differences(vol.geometry, tol)
    if diffs:
        if not resample:
            raise ImageReadError(path, "mask and image differ in geometry: " + "; ".join(diffs))
        return resample_to(vol, reference, order=0)
    # same grid within tolerance: adopt the image's affine exactly
    return Volume(vol.array, reference.affine.copy(), vol.meta)
