"""The survival estimators every layer above shares: the Kaplan-Meier step function (and the reverse
Kaplan-Meier of the censoring), Harrell's concordance, and the checks of (time, event, score) arrays.

Conventions (those of scikit-survival, against which the tests check them to 1e-6): ``risk`` higher
means worse prognosis; a pair (i, j) is comparable when i had the event and ``T_i < T_j``, or
``T_i == T_j`` and j was censored; risks closer than ``tied_tol`` count as a half-concordant tie.
This is the one in-house Kaplan-Meier; lifelines' is used only where a confidence interval is needed
(:func:`hccprog.evaluation.groups.kaplan_meier_table`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 512


@dataclass(frozen=True)
class StepCurve:
    """A right-continuous step function starting at 1: ``value(t)`` is the value at the
    largest jump time <= t."""

    times: np.ndarray
    values: np.ndarray

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        idx = np.searchsorted(self.times, t, side="right") - 1
        out = np.where(idx >= 0, self.values[np.clip(idx, 0, None)], 1.0)
        return out


def survival_arrays(time, event, names: tuple[str, str] = ("time", "event")) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) checked as torchsurv does: equal length, times finite and non-negative, events
    0/1 (or booleans); a ``ValueError`` names the argument."""
    tname, ename = names
    t = np.asarray(time, dtype=float).ravel()
    raw = np.asarray(event).ravel()
    if t.shape != raw.shape:
        raise ValueError(f"{tname} ({t.shape[0]}) and {ename} ({raw.shape[0]}) differ in length")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{tname}: {int(np.sum(~np.isfinite(t)))} value(s) are NaN or infinite")
    if np.any(t < 0):
        raise ValueError(f"{tname}: negative times (e.g. {t[t < 0][0]:g})")
    if raw.dtype != bool:
        try:
            values = raw.astype(float)
        except (TypeError, ValueError):
            raise ValueError(f"{ename}: expected 0 (censored) or 1 (event), got {raw.dtype} values") from None
        bad = ~np.isin(values, (0.0, 1.0))
        if bad.any():
            raise ValueError(f"{ename}: expected 0 (censored) or 1 (event), got {values[bad][0]:g}")
    return t, raw.astype(bool)


def check_scores(values, n: int, name: str = "risk", *, ndim: int = 1) -> np.ndarray:
    """A score array of ``n`` rows, every value finite; a ``ValueError`` names the argument."""
    r = np.asarray(values, dtype=float)
    r = r.ravel() if ndim == 1 else r
    if r.shape[0] != n:
        raise ValueError(f"{name} ({r.shape[0]}) and time ({n}) differ in length")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{name}: {int(np.sum(~np.isfinite(r)))} value(s) are NaN or infinite (drop the "
                         "patients a model could not score first)")
    return r


def event_counts(time, event) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct times, and at each: events, censorings, and patients at risk (time >= t)."""
    t, e = survival_arrays(time, event)
    uniq, inverse = np.unique(t, return_inverse=True)
    deaths = np.bincount(inverse, weights=e.astype(float), minlength=len(uniq))
    censored = np.bincount(inverse, weights=(~e).astype(float), minlength=len(uniq))
    at_risk = len(t) - np.concatenate([[0.0], np.cumsum(deaths + censored)[:-1]])
    return uniq, deaths, censored, at_risk


def product_limit(times: np.ndarray, drops: np.ndarray, at_risk: np.ndarray) -> StepCurve:
    ratio = np.divide(drops, at_risk, out=np.zeros_like(drops), where=drops > 0)
    return StepCurve(times, np.cumprod(1.0 - ratio))


def kaplan_meier(time, event) -> StepCurve:
    """Kaplan-Meier estimate of the event-free probability S(t).

    The in-house product-limit estimate, for where no confidence band is needed (lifelines'
    ``KaplanMeierFitter`` gives the bands of the reports' curves).

    Parameters
    ----------
    time : array-like of float
        Follow-up time per patient (any unit, non-negative).
    event : array-like of {0, 1}
        1 where the event was observed at ``time``, 0 where the patient was censored.

    Returns
    -------
    StepCurve
        Right-continuous step function: its ``times`` are the distinct event times, ``values`` the
        survival just after each, and calling it at ``t`` gives S(t) (1 before the first event).

    Examples
    --------
    >>> km = kaplan_meier([2, 3, 3, 5], [1, 1, 0, 1])
    >>> km.values.tolist()
    [0.75, 0.5, 0.0]
    >>> km([0.0, 2.5, 4.0]).tolist()
    [1.0, 0.75, 0.5]
    """
    uniq, deaths, _, at_risk = event_counts(time, event)
    return product_limit(uniq, deaths, at_risk)


def censoring_survival(time, event) -> StepCurve:
    """Reverse Kaplan-Meier estimate G(t) = P(C > t) of the censoring distribution."""
    uniq, deaths, censored, at_risk = event_counts(time, event)
    return product_limit(uniq, censored, at_risk - deaths)


def concordance_sums(t, e, r, weights, tied_tol) -> tuple[float, float]:
    num = den = 0.0
    cases = np.flatnonzero(e & (weights > 0))
    for start in range(0, len(cases), CHUNK):
        i = cases[start:start + CHUNK]
        ti, ri, wi = t[i, None], r[i, None], weights[i, None]
        comparable = (t[None, :] > ti) | ((t[None, :] == ti) & ~e[None, :])
        diff = ri - r[None, :]
        tied = np.abs(diff) <= tied_tol
        score = np.where(tied, 0.5, (diff > 0).astype(float))
        num += float(np.sum(wi * comparable * score))
        den += float(np.sum(wi * comparable))
    return num, den


def harrell_c(time, event, risk, *, tied_tol: float = 1e-8) -> float:
    """Harrell's concordance index. NaN when no pair is comparable.

    Parameters
    ----------
    time : array-like of float
        Follow-up time per patient.
    event : array-like of {0, 1}
        1 for an observed event, 0 for censoring.
    risk : array-like of float
        Risk score per patient: higher means an earlier event expected.
    tied_tol : float, optional
        Risk differences at most this large count as ties (half a concordant pair).

    Returns
    -------
    float
        The share of comparable pairs (the earlier time an event) whose earlier patient has the
        higher risk; 0.5 is chance, NaN when no pair is comparable.

    Examples
    --------
    >>> harrell_c([5, 8, 12, 20], [1, 1, 0, 1], [4, 3, 2, 1])
    1.0
    >>> harrell_c([5, 8, 12, 20], [1, 1, 0, 1], [1, 2, 3, 4])
    0.0
    """
    t, e = survival_arrays(time, event)
    r = check_scores(risk, len(t))
    num, den = concordance_sums(t, e, r, np.ones(len(t)), tied_tol)
    return num / den if den > 0 else float("nan")


