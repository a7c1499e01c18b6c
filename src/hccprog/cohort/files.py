"""The file checks of a cohort's images table: each image and mask exists, is readable, has a plausible
geometry, and fits its image; with ``check_pixels``, every voxel decoded once (a small thread pool reads
ahead of the in-order pass that reports) for truncated data, non-finite values, empty masks, unmapped
labels and the modality the intensities show. Input files are only ever opened for reading."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from hccprog.cohort.issues import Report
from hccprog.cohort.spec import CohortSpec
from hccprog.imaging import LIVER, TUMOR, Geometry, ImageReadError, image_format, read_geometry
from hccprog.imaging.dicom import is_multiframe, scan_series
from hccprog.imaging.modality import resolve_modality, settle_hint
from hccprog.imaging.readers import (
    implausible_geometry,
    label_map_problem,
    nifti_orientation_problem,
    pixel_stats,
    read_raw_mask,
    remap_labels,
    seg_fits,
    seg_label_spec,
    unmapped_values,
    value_counts,
)


class FileChecks:
    """The images table's file checks, reported into ``report`` (messages name files by ``rel``)."""

    def __init__(self, report: Report, rel: Callable[[Path], str], *, check_pixels: bool,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.report = report
        self.rel = rel
        self.check_pixels = check_pixels
        self.progress = progress
        self.voxels: dict[Path, Future] = {}
        self.modality_notes: dict[tuple[str, str], list[tuple[int, Path]]] = {}

    def run(self, spec: CohortSpec, checks, ifile: str) -> None:
        """Check every (row, given, image, mask, series, declared) of the images table; with
        ``check_pixels``, voxels are decoded ahead by a small thread pool."""
        if not self.check_pixels:
            self._check_files(spec, checks, ifile)
            return
        # voxels are decoded by a small thread pool (zlib and numpy release the GIL), ahead of the
        # in-order pass that reports on them; each file is read once
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            for _row, _given, image, mask, *_ in checks:
                if image.exists() and image not in self.voxels:
                    self.voxels[image] = pool.submit(_image_facts, image)
                if mask is not None and mask.exists() and mask not in self.voxels and mask != image:
                    self.voxels[mask] = pool.submit(_mask_facts, mask, spec.labels)
            try:
                self._check_files(spec, checks, ifile)
            finally:
                for f in self.voxels.values():
                    f.cancel()

    def _check_files(self, spec: CohortSpec, checks, ifile: str) -> None:
        geometry_cache: dict[Path, Geometry | str] = {}
        mask_done: set[Path] = set()
        pixels_done: set[Path] = set()

        def geometry_of(p: Path) -> Geometry | str:
            if p not in geometry_cache:
                facts = self.voxels[p].result() if p in self.voxels else None
                known = facts.get("geometry") if isinstance(facts, dict) else getattr(facts, "geometry", None)
                if known is not None:  # the voxel pass parsed the header already
                    geometry_cache[p] = known
                    return known
                try:
                    geometry_cache[p] = read_geometry(p)
                except ImageReadError as exc:
                    geometry_cache[p] = exc.reason
            return geometry_cache[p]

        for n, (row, _given, image, mask, series, declared) in enumerate(checks):
            if self.progress:
                self.progress(n, len(checks))
            if not image.exists():
                self.report.error("image-missing", ifile, f"image {self.rel(image)} does not exist",
                                  row, "image")
                image_geo = None
            else:
                g = geometry_of(image)
                if isinstance(g, str):
                    self.report.error("image-unreadable", ifile,
                                      _unreadable(f"image {self.rel(image)}", g), row, "image")
                    image_geo = None
                else:
                    image_geo = g
                    implausible = implausible_geometry(g)
                    if implausible:
                        self.report.error("spacing-implausible", ifile, f"image {self.rel(image)}: {implausible}",
                                          row, "image")
                        image_geo = None
                    elif self.check_pixels and image not in pixels_done:
                        pixels_done.add(image)
                        self.check_image_pixels(image, ifile, row, series, declared)
                if image_geo is not None:
                    orientation = nifti_orientation_problem(image)
                    if orientation:
                        self.report.warning("nifti-no-orientation", ifile, f"image {self.rel(image)}: {orientation}",
                                            row, "image")
                    if image_format(image) in ("dicom_series", "dicom_file"):
                        self.dicom_warnings(image, ifile, row, series, declared)
                    if g.shape[2] == 1:
                        self.report.warning("single-slice", ifile,
                                            f"image {self.rel(image)} holds a single axial slice: models that "
                                            "read a slab or a volume stop with an error on it; slice models "
                                            "repeat it (recorded as single-slice)", row, "image")
            if mask is None:
                continue
            if mask.exists() and image.exists() and os.path.samefile(mask, image):
                self.report.error("mask-is-image", ifile, f"mask {self.rel(mask)} is the image itself: give the "
                                                          "label file (liver and tumor labels) in 'mask'", row, "mask")
                continue
            if not mask.exists():
                self.report.error("mask-missing", ifile, f"mask {self.rel(mask)} does not exist",
                                  row, "mask")
                continue
            fmt = image_format(mask)
            mg = geometry_of(mask)
            if isinstance(mg, str):
                self.report.error("mask-unreadable", ifile,
                                  _unreadable(f"mask {self.rel(mask)}", mg), row, "mask")
                continue
            implausible = implausible_geometry(mg)
            if implausible:
                self.report.error("spacing-implausible", ifile, f"mask {self.rel(mask)}: {implausible}", row, "mask")
                continue
            if mask not in mask_done:
                orientation = nifti_orientation_problem(mask)
                if orientation:
                    self.report.warning("nifti-no-orientation", ifile, f"mask {self.rel(mask)}: {orientation}",
                                        row, "mask")
            if image_geo is None:
                continue
            if fmt == "dicom_seg":
                problems = seg_fits(mg, image_geo)
                if problems:
                    self.report.error("geometry-mismatch", ifile,
                                      f"DICOM-SEG {self.rel(mask)} does not fit image "
                                      f"{self.rel(image)}: {'; '.join(problems)}", row, "mask")
                    continue
            else:
                diffs = image_geo.differences(mg)
                if diffs and not spec.resample_masks:
                    self.report.error("geometry-mismatch", ifile,
                                      f"mask {self.rel(mask)} and image {self.rel(image)} differ: "
                                      + "; ".join(diffs), row, "mask")
                    continue
                if diffs:
                    self.report.warning("mask-resampled", ifile,
                                        f"mask {self.rel(mask)} is on another grid than image {self.rel(image)} "
                                        f"({'; '.join(diffs)}): resampled onto it (resample_masks; recorded as "
                                        "mask-resampled)", row, "mask")
            if self.check_pixels and mask not in mask_done:
                mask_done.add(mask)
                self.check_mask_content(mask, ifile, row)
        self.flush_modality(ifile)
        if self.progress:
            self.progress(len(checks), len(checks))

    def dicom_warnings(self, folder: Path, ifile: str, row: int, series: str, declared: str | None) -> None:

        if folder.is_file() and is_multiframe(folder):
            return
        try:
            scan = scan_series(folder)
        except ValueError:
            return
        for w in scan.warnings:
            self.report.warning("dicom-series", ifile, f"{self.rel(folder)}: {w}", row, "image")
        if not self.check_pixels:  # no voxels read: the tag against the name and the declaration
            self.modality_warnings(resolve_modality(series, declared=declared, tag=scan.modality), folder, ifile,
                                   row, series)

    def modality_warnings(self, decision, image: Path, ifile: str, row: int, series: str) -> None:
        """Collect the disagreements of one image; :meth:`flush_modality` reports one warning per series."""
        for note in decision.notes:
            self.modality_notes.setdefault((series, note), []).append((row, image))

    def flush_modality(self, ifile: str) -> None:
        for (series, note), hits in self.modality_notes.items():
            row, image = hits[0]
            more = f" and {len(hits) - 1} more image(s) of it" if len(hits) > 1 else ""
            self.report.warning("modality-mismatch", ifile, f"series '{series}' ({self.rel(image)}{more}): {note}; "
                                                            f"{settle_hint(series)}", row, "series")
        self.modality_notes.clear()

    def check_image_pixels(self, image: Path, ifile: str, row: int, series: str = "",
                           declared: str | None = None) -> None:
        """Every voxel decoded once: truncated or corrupt data, and non-finite values, are errors; the
        modality the data show is checked against the series name and any declaration."""
        facts = self.voxels[image].result()
        if isinstance(facts, ImageReadError):
            self.report.error("image-unreadable", ifile, f"image {self.rel(image)}: voxel data cannot be read: "
                                                         f"{facts.reason}", row, "image")
            return
        if facts.nonfinite:
            self.report.error("image-nonfinite", ifile, f"image {self.rel(image)} holds {facts.nonfinite} NaN or "
                                                        "infinite voxel(s)", row, "image")
            return
        decision = resolve_modality(series, declared=declared, tag=facts.tag, intensities=facts.intensities)
        self.modality_warnings(decision, image, ifile, row, series)

    def check_mask_content(self, mask: Path, ifile: str, row: int) -> None:
        """A mask's voxels (read once, whatever number of series share it): a label map with labels."""
        facts = self.voxels[mask].result()
        if isinstance(facts, ImageReadError):
            self.report.error("mask-unreadable", ifile, f"mask {self.rel(mask)}: voxel data cannot be read: "
                                                        f"{facts.reason}", row, "mask")
            return
        if facts["problem"]:
            code, message = facts["problem"]
            self.report.error(code, ifile, f"mask {self.rel(mask)} {message}", row, "mask")
            return
        counts = facts["counts"]
        if counts[1:].sum() == 0:
            self.report.error("mask-empty", ifile, f"mask {self.rel(mask)} has no voxel of any label in `labels`: "
                                                   "nothing to crop around", row, "mask")
            return
        if counts[LIVER] + counts[TUMOR] == 0:
            self.report.warning("mask-no-liver", ifile, f"mask {self.rel(mask)} has no liver label",
                                row, "mask")
        if counts[TUMOR] == 0:
            self.report.warning("mask-no-tumor", ifile, f"mask {self.rel(mask)} has no tumor label",
                                row, "mask")
        extra = facts["unmapped"]
        if extra:
            shown = ", ".join(map(str, extra[:8])) + (", ..." if len(extra) > 8 else "")
            self.report.warning("mask-unmapped-labels", ifile,
                                f"mask {self.rel(mask)} holds values not in `labels` "
                                f"({shown}): read as background", row, "mask")


def _unreadable(what: str, reason: str) -> str:
    """``<what> cannot be read: <reason>``, without saying it twice when the reason says it already."""
    reason = str(reason)
    return f"{what} {reason}" if reason.startswith("cannot be read") else f"{what} cannot be read: {reason}"


def _image_facts(image: Path):
    try:
        return pixel_stats(image)
    except ImageReadError as exc:
        return exc


def _mask_facts(mask: Path, labels):
    """What a mask's voxels say (read once): a problem (code, message), else label counts and values
    that no label covers; an :class:`ImageReadError` when they cannot be read."""
    try:
        raw = read_raw_mask(mask)
        array = np.asarray(raw.array)
        # the header's geometry, as read_geometry gives it (NIfTI: its affine is the file's own)
        geometry = raw.geometry.canonical() if image_format(mask) == "nifti" and array.ndim == 3 else None
        if np.issubdtype(array.dtype, np.floating):
            problem = label_map_problem(array)
            if problem:
                return {"problem": problem, "geometry": geometry}
            array = np.rint(array).astype(np.int32)
        values, hist = value_counts(array)  # one histogram answers every question below
        problem = label_map_problem(array, values)
        if problem:
            return {"problem": problem, "geometry": geometry}
        seg = image_format(mask) == "dicom_seg"
        spec = seg_label_spec(mask, labels) if seg else labels
        ids = remap_labels(values, spec)  # each value's voxels go to the label remap_labels gives it
        counts = np.bincount(ids, weights=hist, minlength=3).astype(np.int64)
        return {"problem": None, "counts": counts, "unmapped": [] if seg else unmapped_values(values, labels),
                "geometry": geometry}
    except ImageReadError as exc:
        return exc
    except Exception as exc:  # a corrupt file surfaces as many exception types
        return ImageReadError(mask, f"{type(exc).__name__}: {exc}")
