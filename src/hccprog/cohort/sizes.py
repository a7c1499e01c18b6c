"""How many patients and events each endpoint of a cohort has, and whether that is enough to
cross-validate it: the one rule that ``validate``, ``baselines`` and ``train`` apply
(:func:`hccprog.survival.cv.check_cv_size`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hccprog.cohort.model import Cohort
from hccprog.cohort.scores import PD_VALUES
from hccprog.errors import InputError
from hccprog.survival.cv import CVConfig, check_cv_size

#: The endpoint name of the mRECIST response task (PD against disease control).
RESPONSE_ENDPOINT = "response"


@dataclass(frozen=True)
class EndpointCounts:
    """Patients with a known outcome, those with the event (PD for the response), and the columns."""

    endpoint: str
    n: int
    events: int
    time_column: str | None  # the survival time column (None for the response)
    event_column: str  # the event column, or the response column
    classification: bool  # the response: PD against disease control


def endpoint_counts(cohort: Cohort, endpoint: str, *, file: str | os.PathLike | None = None) -> EndpointCounts:
    """The counts of ``endpoint`` (a survival endpoint of cohort.yaml, or ``response``); an endpoint the
    cohort does not have is an :class:`~hccprog.errors.InputError` naming those it has (and ``file``,
    the cohort file)."""
    if endpoint in cohort.endpoints:
        o = cohort.outcomes(endpoint)
        spec = cohort.spec.endpoints[endpoint]
        return EndpointCounts(endpoint, len(o), int(o["event"].sum()), spec.time, spec.event, False)
    if endpoint == RESPONSE_ENDPOINT and cohort.spec.response:
        known = [p.response for p in cohort.patients.values() if p.response is not None]
        return EndpointCounts(endpoint, len(known), sum(r in PD_VALUES for r in known), None,
                              cohort.spec.response, True)
    raise InputError(f"endpoint {endpoint!r} is not in the cohort (it has {', '.join(cohort.endpoints) or 'none'}"
                     + (", or `response`)" if cohort.spec.response else ")"), file=file)


def size_warnings(cohort: Cohort, endpoint: str, cv: CVConfig, *,
                  file: str | os.PathLike | None = None) -> list[str]:
    """Warnings for a thin split of ``endpoint`` under ``cv``; an :class:`~hccprog.errors.InputError`
    (naming the clinical table and column) when it cannot be cross-validated at all."""
    c = endpoint_counts(cohort, endpoint, file=file)
    return check_cv_size(c.n, c.events, cv, what=f"endpoint '{endpoint}'", file=cohort.spec.clinical,
                         column=c.event_column, classification=c.classification)


@dataclass(frozen=True)
class SizeIssue:
    """One finding of :func:`size_issues`: ``error`` or ``warning``, its code, the column, the text."""

    level: str
    code: str
    column: str | None
    message: str


def size_issues(cohort: Cohort, folds: int | None) -> list[SizeIssue]:
    """What ``validate`` says of every endpoint's size for ``folds``-fold CV (5 when not given): thin
    splits are ``cohort-small`` warnings; an impossible one is a ``cohort-too-small`` error when the
    user asked for ``folds``, else a warning. Endpoints without any event are left to the loader's own
    ``endpoint-no-events`` issue."""
    cv = CVConfig(folds=max(folds or 5, 2))
    names = list(cohort.endpoints) + ([RESPONSE_ENDPOINT] if cohort.spec.response else [])
    out = []
    for name in names:
        c = endpoint_counts(cohort, name)
        if (c.n == 0) if c.classification else (c.events == 0):
            continue  # no known response: nothing to say; no event: the loader's endpoint-no-events
        column = c.event_column if c.classification else c.time_column
        try:
            for w in check_cv_size(c.n, c.events, cv, what=f"endpoint '{name}'", classification=c.classification):
                out.append(SizeIssue("warning", "cohort-small", column, w))
        except InputError as exc:
            out.append(SizeIssue("error" if folds else "warning", "cohort-too-small", column, exc.message))
    return out
