"""A download tree in the exact TCIA layout of HCC-TACE-Seg, for the importer's tests.

``<root>/<patient>/<MM-DD-YYYY-NA-study>/<n.000000-description-xxxxx>/1-NNN.dcm``. Patient HCC_048's
baseline is the real portal-venous series of ``../shared/data/hcc-tace-seg`` (copied unchanged) with a
DICOM-SEG written on it by highdicom; every other series is synthetic, made from the real series'
voxels (4x coarser in-plane, every second slice) so that it looks like an abdomen. A follow-up study is
the same anatomy displaced by a known translation (its slices' positions moved), with the tumor shrunk
and no mask, as in the real collection.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

LIVER_CENTER = (0.33, 0.46, 0.5)  # of columns, rows, slices of the real series
TUMOR_OFFSET_MM = (10.0, -8.0, 0.0)


def real_slices(folder: Path) -> list[pydicom.Dataset]:
    slices = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    return sorted(slices, key=lambda d: float(d.ImagePositionPatient[2]))


def real_hu(slices: list[pydicom.Dataset]) -> np.ndarray:
    """(rows, cols, n) in HU."""
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices], axis=-1)


class Anatomy:
    """Liver (ellipsoid) and tumor (sphere) in patient (LPS) coordinates of the real series."""

    def __init__(self, slices: list[pydicom.Dataset], tumor_mm: float = 14.0):
        first = slices[0]
        self.origin = np.array([float(v) for v in first.ImagePositionPatient])
        self.ps = float(first.PixelSpacing[0])
        self.dz = float(slices[1].ImagePositionPatient[2]) - float(first.ImagePositionPatient[2])
        rows, cols, n = int(first.Rows), int(first.Columns), len(slices)
        self.center = self.origin + np.array([LIVER_CENTER[0] * cols * self.ps, LIVER_CENTER[1] * rows * self.ps,
                                              LIVER_CENTER[2] * n * self.dz])
        self.axes = np.array([75.0, 65.0, 70.0])
        self.tumor = self.center + np.array(TUMOR_OFFSET_MM)
        self.tumor_mm = tumor_mm

    def labels(self, origin, ps: float, dz: float, shape, *, shift=(0.0, 0.0, 0.0), shrink: float = 1.0):
        """Label map (rows, cols, n) on a grid, the anatomy moved by ``shift`` mm."""
        rows, cols, n = shape
        x = origin[0] + ps * np.arange(cols)
        y = origin[1] + ps * np.arange(rows)
        z = origin[2] + dz * np.arange(n)
        yy, xx, zz = np.meshgrid(y, x, z, indexing="ij")
        c = self.center + np.asarray(shift)
        t = self.tumor + np.asarray(shift)
        liver = ((xx - c[0]) / self.axes[0]) ** 2 + ((yy - c[1]) / self.axes[1]) ** 2 + (
            (zz - c[2]) / self.axes[2]) ** 2 <= 1
        tumor = (xx - t[0]) ** 2 + (yy - t[1]) ** 2 + (zz - t[2]) ** 2 <= (self.tumor_mm * shrink) ** 2
        out = np.zeros(shape, np.uint8)
        out[liver] = 1
        out[tumor & liver] = 2
        return out


def write_series(folder: Path, hu: np.ndarray, *, origin, ps: float, dz: float, study: dict, number: int,
                 description: str, contrast: str = "IV", time: str = "101500") -> list[pydicom.Dataset]:
    """A CT series (rows, cols, n) in HU; returns the written datasets."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    frame_uid = study.setdefault("frame_uid", generate_uid())
    out = []
    for k in range(hu.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"1-{k + 1:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study["uid"], series_uid, frame_uid
        ds.StudyDate = study["date"].strftime("%Y%m%d")
        ds.StudyTime = "100000"
        ds.StudyDescription = study["description"]
        ds.SeriesDescription = description
        ds.SeriesNumber = number
        ds.AcquisitionTime = time
        ds.Modality = "CT"
        ds.PatientID = "anonymous"
        ds.PatientName = "anonymous"
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.Manufacturer = "hccprog tests"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        if contrast:
            ds.ContrastBolusAgent = contrast
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [float(origin[0]), float(origin[1]), float(origin[2] + k * dz)]
        ds.PixelSpacing = [ps, ps]
        ds.SliceThickness = abs(dz)
        ds.Rows, ds.Columns = hu.shape[:2]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = np.clip(np.round(hu[:, :, k] + 1024), -32768, 32767).astype(np.int16).tobytes()
        pydicom.dcmwrite(folder / f"1-{k + 1:03d}.dcm", ds, enforce_file_format=True)
        out.append(ds)
    return out


def write_seg(folder: Path, sources: list[pydicom.Dataset], labels: np.ndarray) -> Path:
    """A DICOM-SEG (segments 'Liver' and 'Mass', as in HCC-TACE-Seg) on ``sources`` (sorted by z)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    folder.mkdir(parents=True, exist_ok=True)
    descriptions = [
        hd.seg.SegmentDescription(segment_number=1, segment_label="Liver",
                                  segmented_property_category=codes.SCT.Organ,
                                  segmented_property_type=codes.SCT.Liver,
                                  algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL),
        hd.seg.SegmentDescription(segment_number=2, segment_label="Mass",
                                  segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                                  segmented_property_type=codes.SCT.Neoplasm,
                                  algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL),
    ]
    pixels = np.stack([labels[:, :, k] for k in range(labels.shape[2])]).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=300,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="hccprog tests",
        manufacturer_model_name="fixture", software_versions="0", device_serial_number="0",
        omit_empty_frames=True)
    path = folder / "1-1.dcm"
    seg.save_as(path)
    return path


def _study(root: Path, pid: str, when: date, description: str) -> tuple[Path, dict]:
    folder = root / pid / f"{when:%m-%d-%Y}-NA-{description}-{abs(hash((pid, when))) % 90000 + 10000}"
    return folder, {"uid": generate_uid(), "date": when, "description": description}


def build_tree(root: Path, real_folder: Path, patients: list[str], *, no_followup: tuple[str, ...] = (),
               earlier_study: tuple[str, ...] = (), seed: int = 0) -> dict:
    """Write the tree; returns per patient the follow-up's displacement (mm) and the anatomy."""
    rng = np.random.default_rng(seed)
    slices = real_slices(real_folder)
    hu_full = real_hu(slices)
    anatomy = Anatomy(slices)
    hu = hu_full[::4, ::4, ::2]
    ps, dz = anatomy.ps * 4, anatomy.dz * 2
    origin = anatomy.origin + np.array([1.5 * anatomy.ps, 1.5 * anatomy.ps, 0.0])  # centre of 4x4 pixel blocks
    truth = {}
    for n, pid in enumerate(patients):
        base_date = date(2001, 8, 12) + timedelta(days=37 * n)
        study_dir, study = _study(root, pid, base_date, "CT ABDOMEN PELVIS W CONTRAST")
        if pid == "HCC_048":  # the real series, unchanged, with a DICOM-SEG written on it
            study["uid"] = str(slices[0].StudyInstanceUID)
            study["date"] = date(2001, 8, 12)
            pv_dir = study_dir / f"6.000000-Recon 3 LIVER 2 PHASE CAP-{n:05d}"
            shutil.copytree(real_folder, pv_dir, ignore=shutil.ignore_patterns("*.md", "LICENSE*"))
            first = slices[0]
            labels = anatomy.labels(np.array([float(v) for v in first.ImagePositionPatient]), anatomy.ps,
                                    anatomy.dz, hu_full.shape)
            write_seg(study_dir / f"300.000000-Segmentation-{n:05d}", slices, labels)
            base_date = study["date"]
        else:
            labels = anatomy.labels(origin, ps, dz, hu.shape)
            art = np.where(labels == 2, hu + 60.0, hu)
            pv = np.where(labels == 2, hu - 25.0, hu)
            write_series(study_dir / f"1.000000-SCOUT-{n:05d}", hu[:, :, :2], origin=origin, ps=ps, dz=dz,
                         study=study, number=1, description="SCOUT", contrast="")
            write_series(study_dir / f"2.000000-LIVER ARTERIAL PHASE-{n:05d}", art, origin=origin, ps=ps, dz=dz,
                         study=study, number=2, description="LIVER ARTERIAL PHASE", time="101500")
            sources = write_series(study_dir / f"3.000000-PORTAL VENOUS-{n:05d}", pv, origin=origin, ps=ps, dz=dz,
                                   study=study, number=3, description="PORTAL VENOUS", time="101600")
            write_seg(study_dir / f"300.000000-Segmentation-{n:05d}", sources, labels)
        if pid in earlier_study:
            early_dir, early = _study(root, pid, base_date - timedelta(days=40), "CT CHEST")
            write_series(early_dir / "2.000000-CHEST PORTAL VENOUS-00001", hu, origin=origin, ps=ps, dz=dz,
                         study=early, number=2, description="CHEST PORTAL VENOUS")
        shift = np.zeros(3)
        if pid not in no_followup:
            shift = np.concatenate([rng.uniform(-8, 8, 2), rng.uniform(-5, 5, 1)])
            fu_dir, fu = _study(root, pid, base_date + timedelta(days=60 + 7 * n), "CT ABDOMEN PELVIS W CONTRAST")
            fu_labels = anatomy.labels(origin + shift, ps, dz, hu.shape, shift=shift, shrink=0.7)
            moved = np.where(fu_labels == 2, hu + 300.0, hu)  # lipiodol in the treated tumor
            # the anatomy moves with the slices: the same voxels written at positions moved by `shift`
            write_series(fu_dir / f"2.000000-Recon 2 LIVER 3 PHASE (AP)-{n:05d}", moved, origin=origin + shift,
                         ps=ps, dz=dz, study=fu, number=2, description="Recon 2: LIVER 3 PHASE (AP)")
        truth[pid] = {"shift_mm": shift.tolist()}
    return truth
