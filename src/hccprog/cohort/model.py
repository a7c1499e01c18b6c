"""The typed cohort: patient -> time points (ordered) -> series -> image and mask.

Nothing here holds voxels: :class:`ImageRef` and :class:`MaskRef` load on demand.
All times are in days (``Outcome.time``); :attr:`Cohort.time_unit` is the cohort's own
unit, used when results are shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from hccprog.cohort.spec import DAYS_PER_UNIT, CohortSpec
from hccprog.imaging import Geometry, Volume, read_geometry, read_image, read_mask
from hccprog.imaging.modality import ModalityDecision, intensity_modality, resolve_modality


@dataclass(frozen=True)
class ImageRef:
    """An image file or DICOM folder, read when asked.

    ``series`` is the name the cohort gives it and ``modality`` the modality declared for that series in
    cohort.yaml (None: from the data, see :mod:`hccprog.imaging.modality`)."""

    path: Path
    series: str = ""
    modality: str | None = None

    def geometry(self) -> Geometry:
        return read_geometry(self.path)

    def load(self) -> Volume:
        """The canonical volume; ``meta['modality']`` is the modality it is read as ('CT' or 'MR'),
        decided from the declaration, the DICOM tag and the intensities, never from the name alone."""
        volume = read_image(self.path)
        decision = self.modality_of(volume)
        volume.meta["modality"] = decision.modality
        volume.meta["modality_source"] = decision.source
        return volume

    def modality_of(self, volume: Volume) -> ModalityDecision:
        """How this image's modality is decided for ``volume`` (its voxels as read)."""
        tag = volume.meta.get("modality") if volume.meta.get("modality_source") is None else None
        return resolve_modality(self.series, declared=self.modality, tag=tag,
                                intensities=intensity_modality(volume.array))


@dataclass(frozen=True)
class MaskRef:
    """A label map (or DICOM-SEG); ``load`` returns canonical labels (liver 1, tumor 2)."""

    path: Path
    labels: tuple[tuple[str, tuple[int, ...]], ...]
    resample: bool = False

    @property
    def label_spec(self) -> dict[str, list[int]]:
        return {name: list(values) for name, values in self.labels}

    def load(self, reference: Geometry | None = None) -> Volume:
        return read_mask(self.path, self.label_spec, reference=reference, resample=self.resample)


@dataclass(frozen=True)
class Series:
    """One volume of a time point (``CT_PV``, ``MR_T2``, ...), with its optional mask."""

    name: str
    image: ImageRef
    mask: MaskRef | None = None
    source_row: int | None = None  # row of images.csv

    def load(self) -> tuple[Volume, Volume | None]:
        """Image and (if any) mask on the image's grid."""
        image = self.image.load()
        mask = self.mask.load(reference=image.geometry) if self.mask else None
        return image, mask


@dataclass(frozen=True)
class TimePoint:
    label: str
    day: float | None
    series: dict[str, Series]

    def __getitem__(self, name: str) -> Series:
        return self.series[name]


@dataclass(frozen=True)
class Outcome:
    """A time-to-event outcome; ``time`` in days."""

    time: float
    event: bool


@dataclass
class Patient:
    id: str
    row: int  # row of the clinical table
    outcomes: dict[str, Outcome | None]
    response: str | None = None
    covariates: dict[str, float | str | None] = field(default_factory=dict)
    scores: dict[str, float | None] = field(default_factory=dict)
    timepoints: tuple[TimePoint, ...] = ()

    @property
    def has_images(self) -> bool:
        return bool(self.timepoints)

    def timepoint(self, label: str) -> TimePoint | None:
        return next((t for t in self.timepoints if t.label == label), None)


@dataclass
class Cohort:
    """A loaded, validated cohort. Iterate to get patients in table order."""

    spec: CohortSpec
    root: Path
    patients: dict[str, Patient]
    table: pd.DataFrame  # the clinical table as text, indexed by patient id

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def time_unit(self) -> str:
        return self.spec.time_unit

    @property
    def endpoints(self) -> list[str]:
        return list(self.spec.endpoints)

    def __iter__(self) -> Iterator[Patient]:
        return iter(self.patients.values())

    def __len__(self) -> int:
        return len(self.patients)

    def __getitem__(self, patient_id: str) -> Patient:
        return self.patients[patient_id]

    @property
    def ids(self) -> list[str]:
        return list(self.patients)

    def to_unit(self, days: float | np.ndarray) -> float | np.ndarray:
        """Days -> the cohort's time unit."""
        return days / DAYS_PER_UNIT[self.time_unit]

    def outcomes(self, endpoint: str, *, unit: str = "days") -> pd.DataFrame:
        """``time`` and ``event`` per patient (index: patient id); patients lacking it dropped."""
        if endpoint not in self.spec.endpoints:
            raise KeyError(f"unknown endpoint {endpoint!r}; the cohort has {self.endpoints}")
        rows = {p.id: (o.time / DAYS_PER_UNIT[unit], int(o.event))
                for p in self if (o := p.outcomes.get(endpoint)) is not None}
        frame = pd.DataFrame.from_dict(rows, orient="index", columns=["time", "event"])
        frame.index.name = "patient_id"
        return frame

    def covariates(self) -> pd.DataFrame:
        """Typed covariates: numeric (transformed) and ordinal (level index) as float,
        categorical and binary as pandas categoricals."""
        names = list(next(iter(self.patients.values())).covariates) if self.patients else []
        frame = pd.DataFrame([p.covariates for p in self], index=self.ids, columns=names)
        frame.index.name = "patient_id"
        for name in names:
            spec = (self.spec.covariates or {}).get(name)
            kind = spec.type if spec else _inferred_kind(frame[name])
            if kind in ("categorical", "binary"):
                frame[name] = frame[name].astype("category")
            else:
                frame[name] = pd.to_numeric(frame[name])
        return frame.rename(columns=self.spec.covariate_aliases)

    def empty_covariates(self) -> list[str]:
        """Covariates (as :meth:`covariates` names them) without a value for any patient: nothing to
        impute them from, so the models leave them out (``validate`` warns: ``covariate-empty``)."""
        frame = self.covariates()
        return [str(c) for c in frame.columns if len(frame) and frame[c].isna().all()]

    def with_aliases(self, *, series: dict[str, str] | None = None, covariates: dict[str, str] | None = None) -> Cohort:
        """The same cohort with series and covariates renamed (cohort's name -> the name a model knows),
        on top of the cohort.yaml's own ``series_aliases`` and ``covariate_aliases``."""
        series, covariates = dict(series or {}), dict(covariates or {})
        spec = self.spec.model_copy(update={"series_aliases": {**self.spec.series_aliases, **series},
                                            "covariate_aliases": {**self.spec.covariate_aliases, **covariates}})
        patients = {}
        for pid, p in self.patients.items():
            tps = tuple(replace(t, series={series.get(n, n): replace(s, name=series.get(n, n))
                                           for n, s in t.series.items()}) for t in p.timepoints)
            patients[pid] = replace(p, timepoints=tps)
        return Cohort(spec=spec, root=self.root, patients=patients, table=self.table)

    def scores(self) -> pd.DataFrame:
        frame = pd.DataFrame([p.scores for p in self], index=self.ids, columns=list(self.spec.scores))
        frame.index.name = "patient_id"
        return frame.astype(float)

    def responses(self) -> pd.Series:
        s = pd.Series({p.id: p.response for p in self}, name="response", dtype=object)
        s.index.name = "patient_id"
        return s

    def series_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for p in self:
            for t in p.timepoints:
                seen.update(dict.fromkeys(t.series))
        return list(seen)

    def timepoint_labels(self) -> list[str]:
        seen: dict[str, None] = {}
        for p in self:
            seen.update(dict.fromkeys(t.label for t in p.timepoints))
        return list(seen)


def _inferred_kind(column: pd.Series) -> str:
    values = column.dropna()
    return "numeric" if all(isinstance(v, int | float) for v in values) else "categorical"
