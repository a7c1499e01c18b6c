"""Imaging I/O: NIfTI, NRRD, MHA, DICOM series and DICOM-SEG into canonical RAS volumes."""

from hccprog.imaging.readers import (
    BACKGROUND,
    LIVER,
    TUMOR,
    ImageReadError,
    image_format,
    read_geometry,
    read_image,
    read_mask,
    remap_labels,
)
from hccprog.imaging.volume import Geometry, GeometryTolerance, Volume, resample_to

__all__ = [
    "BACKGROUND",
    "LIVER",
    "TUMOR",
    "Geometry",
    "GeometryTolerance",
    "ImageReadError",
    "Volume",
    "image_format",
    "read_geometry",
    "read_image",
    "read_mask",
    "remap_labels",
    "resample_to",
]
