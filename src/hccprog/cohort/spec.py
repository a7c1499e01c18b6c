"""The typed form of ``cohort.yaml`` (see ``docs/cohort-format.md`` and the shared spec)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hccprog.imaging.readers import LIVER, TUMOR

TimeUnit = Literal["days", "weeks", "months", "years"]

#: Days per unit. Internally every time is in days; months are 365.25 / 12 days.
DAYS_PER_UNIT: dict[str, float] = {
    "days": 1.0,
    "weeks": 7.0,
    "months": 365.25 / 12.0,
    "years": 365.25,
}


def unit_factor(unit_from: str, unit_to: str) -> float:
    """Multiply a time in ``unit_from`` by this to get it in ``unit_to`` (days, weeks, months, years)."""
    return DAYS_PER_UNIT[unit_from] / DAYS_PER_UNIT[unit_to]

INTERNAL_TIME_UNIT = "days"


class EndpointSpec(BaseModel):
    """A time-to-event endpoint: the two columns that hold it."""

    model_config = ConfigDict(extra="forbid")
    time: str
    event: str


class CovariateSpec(BaseModel):
    """How to read one clinical column."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["numeric", "categorical", "ordinal", "binary"]
    unit: str | None = None
    transform: Literal["none", "log", "log1p", "log10", "log2", "sqrt"] = "none"
    levels: list[str | int | float] | None = None

    @model_validator(mode="after")
    def _check(self) -> CovariateSpec:
        if self.type == "ordinal" and not self.levels:
            raise ValueError("an ordinal covariate needs `levels` (lowest risk first)")
        if self.transform != "none" and self.type != "numeric":
            raise ValueError("`transform` applies to numeric covariates only")
        return self


class SeriesSpec(BaseModel):
    """What the cohort declares of one series (hccprog extension): its modality, which otherwise comes
    from the DICOM Modality tag or the intensities (never from the series name)."""

    model_config = ConfigDict(extra="forbid")
    modality: Literal["CT", "MR"] | None = None

    @field_validator("modality", mode="before")
    @classmethod
    def _modality(cls, value):
        if isinstance(value, str):
            value = {"MRI": "MR", "MR": "MR", "CT": "CT"}.get(value.strip().upper(), value)
        return value


class CohortSpec(BaseModel):
    """``cohort.yaml``. Unknown keys are kept and reported as warnings."""

    model_config = ConfigDict(extra="allow")

    name: str
    clinical: str
    clinical_sheet: str | int | None = None
    images: str | None = None
    id_column: str = "patient_id"
    time_unit: TimeUnit
    endpoints: dict[str, EndpointSpec] = Field(min_length=1)
    response: str | None = None
    covariates: dict[str, CovariateSpec] | None = None
    scores: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, int | list[int]] = Field(default_factory=lambda: {"liver": LIVER, "tumor": TUMOR})
    #: hccprog extension: resample masks whose grid differs from their image (nearest
    #: neighbour) instead of rejecting them.
    resample_masks: bool = False
    #: hccprog extension: a time point whose series have no mask gets one propagated from the nearest
    #: masked time point of the same patient by registration (``propagate``), or is treated as missing
    #: (``missing``: the previous time point carried forward). ``validate`` says which.
    missing_masks: Literal["propagate", "missing"] = "propagate"
    #: hccprog extension: other names of series and covariates -> the names a trained model knows, e.g.
    #: ``series_aliases: {PORTAL_VENOUS: CT_PV}``, ``covariate_aliases: {AFP: afp}``.
    series_aliases: dict[str, str] = Field(default_factory=dict)
    covariate_aliases: dict[str, str] = Field(default_factory=dict)
    #: hccprog extension: per series name, what the cohort declares of it, e.g. ``series: {PV: {modality: MR}}``.
    series: dict[str, SeriesSpec] = Field(default_factory=dict)

    def declared_modality(self, *names: str) -> str | None:
        """The modality declared for the first of ``names`` (a series' own name, its alias) that has one."""
        for name in names:
            spec = self.series.get(name)
            if spec is not None and spec.modality:
                return spec.modality
        return None

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, int | list[int]]) -> dict[str, int | list[int]]:
        for name, v in value.items():
            values = [v] if isinstance(v, int) else v
            if not values or any(x <= 0 for x in values):
                raise ValueError(f"label {name!r}: values must be positive integers (0 is background)")
        return value

    @property
    def days_per_unit(self) -> float:
        return DAYS_PER_UNIT[self.time_unit]
