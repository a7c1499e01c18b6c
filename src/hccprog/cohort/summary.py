"""What a cohort holds, in numbers (printed by ``hccprog validate``)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from hccprog.cohort.model import Cohort


@dataclass
class EndpointSummary:
    patients: int
    events: int
    median_followup: float  # reverse Kaplan-Meier, cohort time unit; nan if not reached
    median_time: float  # Kaplan-Meier median of the endpoint itself; nan if not reached


@dataclass
class CohortSummary:
    name: str
    time_unit: str
    patients: int
    patients_with_images: int
    timepoints: dict[str, int]  # label -> patients having it
    series: dict[str, int]  # series name -> volumes
    volumes: int
    masks: int
    endpoints: dict[str, EndpointSummary]
    response: dict[str, int] = field(default_factory=dict)
    covariates: list[str] = field(default_factory=list)
    scores: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def km_median(time: np.ndarray, event: np.ndarray) -> float:
    """Kaplan-Meier median (lifelines); nan when the curve never falls to 0.5."""
    from lifelines import KaplanMeierFitter

    if len(time) == 0:
        return math.nan
    value = float(KaplanMeierFitter().fit(time, event).median_survival_time_)
    return value if math.isfinite(value) else math.nan


def summarize(cohort: Cohort) -> CohortSummary:
    tps: Counter[str] = Counter()
    series: Counter[str] = Counter()
    masks = 0
    for p in cohort:
        for t in p.timepoints:
            tps[t.label] += 1
            for s in t.series.values():
                series[s.name] += 1
                masks += s.mask is not None
    endpoints = {}
    for name in cohort.endpoints:
        o = cohort.outcomes(name, unit=cohort.time_unit)
        t, e = o["time"].to_numpy(float), o["event"].to_numpy(int)
        endpoints[name] = EndpointSummary(
            patients=len(o),
            events=int(e.sum()),
            median_followup=km_median(t, 1 - e),
            median_time=km_median(t, e),
        )
    responses = Counter(r for r in cohort.responses() if r is not None)
    first = next(iter(cohort), None)
    return CohortSummary(
        name=cohort.name,
        time_unit=cohort.time_unit,
        patients=len(cohort),
        patients_with_images=sum(p.has_images for p in cohort),
        timepoints=dict(tps),
        series=dict(series),
        volumes=sum(series.values()),
        masks=masks,
        endpoints=endpoints,
        response={k: responses[k] for k in ("CR", "PR", "SD", "PD") if k in responses},
        covariates=list(first.covariates) if first else [],
        scores=list(cohort.spec.scores),
    )
