"""The cohort contract: ``cohort.yaml``, clinical and image tables, typed patients."""

from hccprog.cohort.issues import CohortError, Issue, Report
from hccprog.cohort.load import LoadResult, load_cohort
from hccprog.cohort.model import (
    Cohort,
    ImageRef,
    MaskRef,
    Outcome,
    Patient,
    Series,
    TimePoint,
)
from hccprog.cohort.spec import DAYS_PER_UNIT, CohortSpec, CovariateSpec, EndpointSpec
from hccprog.cohort.summary import CohortSummary, summarize

__all__ = [
    "DAYS_PER_UNIT",
    "Cohort",
    "CohortError",
    "CohortSpec",
    "CohortSummary",
    "CovariateSpec",
    "EndpointSpec",
    "ImageRef",
    "Issue",
    "LoadResult",
    "MaskRef",
    "Outcome",
    "Patient",
    "Report",
    "Series",
    "TimePoint",
    "load_cohort",
    "summarize",
]
