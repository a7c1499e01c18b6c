"""Disk cache of preprocessed tensors, one file per patient, keyed by input content and config.

The key of a patient is the SHA-256 of the preprocessing version, the resolved preprocessing
config (:class:`SliceConfig` or :class:`VolumeConfig`), the channel list and the bytes of every
image and mask file it reads. A second run on the same cohort therefore reads tensors instead of
volumes; a changed file or config gives a new key. Each entry stores a checksum of its arrays: an
entry that cannot be read or whose checksum fails is rebuilt (and reported in
``stats['rebuilt']``). Entries are written atomically. The cohort's own files are only read.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hccprog.cohort.model import Cohort, Patient
from hccprog.preprocessing.kinds import preprocessing_kind
from hccprog.preprocessing.slices import InputTooThinError, SliceConfig, patient_slices
from hccprog.preprocessing.volumes import VolumeConfig, patient_volumes
from hccprog.runs import atomic_path

PreprocessConfig = SliceConfig | VolumeConfig

PREPROCESS_VERSION = 3  # 2: entries carry `imputed` (what was filled in); 3: the modality from the data


def default_cache_dir() -> Path:
    """``$HCCPROG_CACHE``, else ``~/.cache/hccprog``."""
    env = os.environ.get("HCCPROG_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hccprog"


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file, or of every file of a folder (DICOM series) by relative path and bytes."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        memo = (str(f.resolve()), st.st_size, st.st_mtime_ns)
        if memo not in _DIGESTS:
            fh = hashlib.sha256()
            with open(f, "rb") as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    fh.update(block)
            _DIGESTS[memo] = fh.hexdigest()
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(_DIGESTS[memo].encode())
    return h.hexdigest()


def preprocessing_config(data: dict) -> PreprocessConfig:
    """A saved preprocessing config (``kind: volume`` for volumes, slices otherwise)."""
    return VolumeConfig(**data) if preprocessing_kind(data) == "volume" else SliceConfig(**data)


def patient_key(patient: Patient, channels: list[str], cfg: PreprocessConfig) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": PREPROCESS_VERSION, "config": cfg.model_dump(mode="json"),
                         "channels": channels}, sort_keys=True).encode())
    for tp in list(patient.timepoints)[: cfg.timepoints]:
        for name in sorted(tp.series):
            if name in channels or tp.series[name].mask is not None:
                hash_series(h, tp, name)
    return h.hexdigest()


def hash_series(h, tp, name: str) -> None:
    """Add series ``name`` of time point ``tp`` to the hash ``h``: its label, the bytes of its image
    and mask, and the mask's label mapping."""
    s = tp.series[name]
    h.update(f"{tp.label}/{name}".encode())
    h.update(file_digest(s.image.path).encode())
    if s.image.modality:  # declared in cohort.yaml: it decides the normalisation
        h.update(f"modality={s.image.modality}".encode())
    if s.mask is not None:
        h.update(file_digest(s.mask.path).encode())
        h.update(json.dumps(s.mask.label_spec, sort_keys=True).encode())


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _entry(cache: Path, key: str) -> Path:
    return cache / key[:2] / f"{key}.npz"


def read_entry(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache entry, or None when it is missing, unreadable or fails its checksum."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError):
        return None
    stored = arrays.pop("checksum", None)
    if stored is None or str(stored) != _checksum(arrays):
        return None
    return arrays


def write_entry(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, checksum=np.array(_checksum(arrays)), **arrays)


@dataclass
class PreprocessedCohort:
    """Model-ready tensors of the patients that could be preprocessed."""

    ids: list[str]
    x: np.ndarray  # slices: (N, T, S, K, C, H, W); volumes: (N, T, C, D, H, W); float16
    observed: np.ndarray  # (N, T) bool; False: carried forward (LOCF)
    source: np.ndarray  # (N, T) 1: slices chosen by tumor area, 0: by liver area
    channels: list[str]
    config: PreprocessConfig
    skipped: dict[str, str] = field(default_factory=dict)  # patient -> reason
    stats: dict[str, float] = field(default_factory=dict)
    imputed: dict[str, list[str]] = field(default_factory=dict)  # patient -> what was filled in (``kind: detail``)

    def geometry(self) -> dict[str, int]:
        """What a model builder needs: ``streams`` (slices: image streams; volumes: time points,
        stacked as input channels) and ``channels`` (series per stream)."""
        if isinstance(self.config, VolumeConfig):
            return {"streams": int(self.x.shape[1]), "channels": int(self.x.shape[2])}
        return {"streams": int(self.x.shape[2]), "channels": len(self.channels)}  # mask channels are not series

    def subset(self, ids: list[str]) -> PreprocessedCohort:
        pos = {p: i for i, p in enumerate(self.ids)}
        idx = [pos[p] for p in ids]
        return PreprocessedCohort(list(ids), self.x[idx], self.observed[idx], self.source[idx], self.channels,
                                  self.config, {}, {}, {p: self.imputed.get(p, []) for p in ids})


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def patient_tensors(patient: Patient, channels: list[str], cfg: PreprocessConfig) -> dict[str, np.ndarray]:
    """The arrays of one patient: representative slices or masked volumes, by config type."""
    if isinstance(cfg, VolumeConfig):
        return patient_volumes(patient, channels, cfg)
    return patient_slices(patient, channels, cfg)


def _build(args) -> tuple[str, dict[str, np.ndarray] | None, str]:
    patient, channels, cfg, path = args
    try:
        arrays = patient_tensors(patient, channels, cfg)
    except InputTooThinError:
        raise  # the cohort cannot feed this model: an error, not a skipped patient
    except (ValueError, OSError) as err:
        return patient.id, None, str(err)
    write_entry(Path(path), arrays)
    return patient.id, arrays, ""


def preprocess_cohort(cohort: Cohort, cfg: PreprocessConfig, *, cache_dir: str | os.PathLike | None = None,
                      ids: list[str] | None = None, workers: int | None = None,
                      progress: Callable[[int, int], None] | None = None) -> PreprocessedCohort:
    """Tensors for ``ids`` (default: every patient with images), from the cache where possible."""
    t0 = time.perf_counter()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    channels = cfg.channels(cohort.series_names())
    # the same key whether series were named or defaulted; masks missing at a time point as the cohort says
    cfg = cfg.model_copy(update={"series": channels,
                                 "missing_masks": cfg.missing_masks or cohort.spec.missing_masks})
    wanted = [p for p in (ids or cohort.ids) if cohort[p].has_images]
    skipped = {p: "no images" for p in (ids or cohort.ids) if not cohort[p].has_images}
    got: dict[str, dict[str, np.ndarray]] = {}
    todo = []
    rebuilt = 0
    for pid in wanted:
        path = _entry(cache, patient_key(cohort[pid], channels, cfg))
        arrays = read_entry(path)
        if arrays is not None:
            got[pid] = arrays
        else:
            rebuilt += int(path.exists())
            todo.append((cohort[pid], channels, cfg, str(path)))
    cached = len(got)
    done = cached
    if progress:
        progress(done, len(wanted))
    workers = workers or min(2, os.cpu_count() or 1)
    if todo:
        if workers > 1 and len(todo) > 1:
            # spawn, not fork: a forked child inherits torch's thread pool in a state that can deadlock
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_worker_init)
            results = pool.map(_build, todo, chunksize=max(1, len(todo) // (8 * workers)))
        else:
            pool, results = None, map(_build, todo)
        try:
            for pid, arrays, why in results:
                done += 1
                if arrays is None:
                    skipped[pid] = why.removeprefix(f"{pid}: ")  # the patient is the key
                else:
                    got[pid] = arrays
                if progress:
                    progress(done, len(wanted))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    keep = [p for p in wanted if p in got]
    if not keep:
        raise ValueError("no patient could be preprocessed: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    x = np.stack([got[p]["x"] for p in keep])
    observed = np.stack([got[p]["observed"] for p in keep])
    source = np.stack([got[p]["source"] for p in keep])
    imputed = {p: [str(v) for v in got[p]["imputed"]] for p in keep}
    stats = {"patients": len(keep), "cached": cached, "built": len(todo), "rebuilt": rebuilt,
             "seconds": round(time.perf_counter() - t0, 3)}
    return PreprocessedCohort(keep, x, observed, source, channels, cfg, skipped, stats, imputed)
