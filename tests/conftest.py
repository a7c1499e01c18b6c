"""Shared fixtures: a tiny synthetic cohort, DICOM series writers, the shared data folder."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def pytest_configure(config) -> None:
    """Under pytest-xdist each worker gets one core's worth of threads (two workers on two cores, not four
    threads fighting over them); the CLI's subprocesses inherit it."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.fixture(scope="session")
def tiny_cohort_master(tmp_path_factory) -> Path:
    from hccprog.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("tiny") / "cohort"
    cfg = SynthConfig(patients=6, seed=3, shape=(32, 32, 16), spacing=(12.0, 12.0, 15.0), workers=1)
    synthesize(out, cfg)
    return out


@pytest.fixture
def tiny_cohort(tiny_cohort_master, tmp_path) -> Path:
    """A fresh, writable copy of a 6-patient synthetic cohort; returns its folder."""
    dst = tmp_path / "cohort"
    shutil.copytree(tiny_cohort_master, dst)
    return dst


def tree_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_ct_slice(path: Path, pixels: np.ndarray, z: float, *, series_uid: str, study_uid: str,
                   spacing=(0.8, 0.7), slope=1.0, intercept=-1024.0, padding=None,
                   orientation=(1, 0, 0, 0, 1, 0), origin_xy=(-100.0, -120.0), instance=1,
                   modality="CT") -> None:
    """One CT slice (int16 stored values) with the geometry tags a series needs."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = study_uid
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = modality
    ds.PatientID = "TEST"
    ds.InstanceNumber = instance
    ds.ImageOrientationPatient = list(orientation)
    ds.ImagePositionPatient = [origin_xy[0], origin_xy[1], z]
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = 2.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    if padding is not None:
        ds.PixelPaddingValue = padding
    ds.PixelData = pixels.astype(np.int16).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


@pytest.fixture
def ct_series_writer():
    """write(folder, n=..., positions=..., ...) -> (folder, stored volume (rows, cols, n))."""

    def write(folder: Path, positions=None, n=5, rows=6, cols=7, shuffle_names=True, **kw):
        folder.mkdir(parents=True, exist_ok=True)
        positions = list(positions if positions is not None else [-50.0 + 2.5 * i for i in range(n)])
        rng = np.random.default_rng(0)
        series_uid, study_uid = kw.pop("series_uid", generate_uid()), generate_uid()
        stored = rng.integers(0, 2000, size=(rows, cols, len(positions))).astype(np.int16)
        names = list(range(len(positions)))
        if shuffle_names:
            rng.shuffle(names)
        for k, z in enumerate(positions):
            write_ct_slice(folder / f"{names[k]:04d}.dcm", stored[:, :, k], z, series_uid=series_uid,
                           study_uid=study_uid, instance=len(positions) - k, **kw)
        return folder, stored

    return write
