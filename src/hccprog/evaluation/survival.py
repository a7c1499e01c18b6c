"""Survival discrimination and accuracy metrics for right-censored data.

Conventions (those of scikit-survival, against which the tests check every function to 1e-6):

- ``risk``: higher means worse prognosis (a log-hazard, a stage, 1 - S(t)).
- A pair (i, j) is comparable when i had the event and ``T_i < T_j``, or ``T_i == T_j`` and
  j was censored. Risks closer than ``tied_tol`` count as a half-concordant tie.
- The censoring distribution G is the reverse Kaplan-Meier estimate (events at a time are
  taken to precede censorings at that time), a right-continuous step function.

Vectorised NumPy, chunked so that memory stays bounded on large cohorts. torchsurv's
estimators are not used here because its IPCW weights are float32 and its
cumulative/dynamic AUC handles ties differently (docs/evaluation.md).
"""

from __future__ import annotations

import numpy as np

from hccprog.survival.estimators import (
    StepCurve,
    censoring_survival,
    check_scores,
    concordance_sums,
    harrell_c,
    kaplan_meier,
)
from hccprog.survival.estimators import survival_arrays as _as_arrays

__all__ = ["StepCurve", "brier_score", "censoring_survival", "check_scores", "cumulative_dynamic_auc",
           "cumulative_dynamic_roc", "harrell_c", "integrated_brier_score", "kaplan_meier", "uno_c"]


def _ipcw(train_time, train_event, time, event) -> np.ndarray:
    """1 / G(T_i) for events, 0 for censored patients."""
    g = censoring_survival(train_time, train_event)(time[event])
    if np.any(g <= 0):
        raise ValueError("the censoring survival function is zero at an event time; "
                         "truncate the evaluation (tau) before the last follow-up")
    w = np.zeros(len(time))
    w[event] = 1.0 / g
    return w


def _check_times(times) -> np.ndarray:
    out = np.atleast_1d(np.asarray(times, dtype=float))
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError("times: evaluation times must be finite and non-negative")
    return out


def uno_c(time, event, risk, *, tau: float | None = None, train_time=None, train_event=None,
          tied_tol: float = 1e-8) -> float:
    """Uno's IPCW concordance index, truncated at ``tau`` (events at or after tau ignored).

    The censoring distribution is estimated on ``train_*`` (default: the same patients).

    Parameters
    ----------
    time, event : array-like
        Follow-up time and event indicator (1 event, 0 censored) of the patients scored.
    risk : array-like of float
        Their risk scores (higher: earlier event).
    tau : float, optional
        Truncation time; default: the largest time.
    train_time, train_event : array-like, optional
        The patients on which the censoring distribution is estimated.
    tied_tol : float
        Risk differences at most this large are ties.

    Returns
    -------
    float
        The IPCW-weighted share of concordant comparable pairs; NaN when none is comparable.

    Examples
    --------
    >>> uno_c([5, 8, 12, 20], [1, 1, 0, 1], [4, 3, 2, 1])
    1.0
    """
    t, e = _as_arrays(time, event)
    r = check_scores(risk, len(t))
    tt, te = (t, e) if train_time is None else _as_arrays(train_time, train_event, ("train_time", "train_event"))
    keep = np.ones(len(t), bool) if tau is None else t < tau
    w = np.zeros(len(t))
    w[keep] = _ipcw(tt, te, t[keep], e[keep])
    num, den = concordance_sums(t, e, r, w ** 2, tied_tol)
    return num / den if den > 0 else float("nan")


def cumulative_dynamic_auc(time, event, risk, times, *, train_time=None, train_event=None,
                           tied_tol: float = 1e-8) -> tuple[np.ndarray, float]:
    """Cumulative/dynamic time-dependent AUC (Uno et al. 2007; Hung & Chiang 2010).

    Cases: event at or before t (weighted 1/G(T_i)); controls: still event-free after t.
    ``risk`` is (n,) or (n, len(times)) for time-dependent risks. Returns the AUC per time and
    their mean weighted by the Kaplan-Meier drop in S between the times.
    """
    t, e = _as_arrays(time, event)
    times = _check_times(times)
    r = check_scores(risk, len(t), ndim=2)
    r = np.repeat(r.reshape(-1, 1), len(times), axis=1) if r.ndim == 1 else r
    if r.shape != (len(t), len(times)):
        raise ValueError("risk must be (n,) or (n, len(times))")
    tt, te = (t, e) if train_time is None else _as_arrays(train_time, train_event, ("train_time", "train_event"))
    ipcw = _ipcw(tt, te, t, e)
    aucs = np.empty(len(times))
    for k, horizon in enumerate(times):
        case = (t <= horizon) & e
        control = t > horizon
        if not case.any() or not control.any():
            aucs[k] = np.nan
            continue
        rc, wc, rn = r[case, k], ipcw[case], r[control, k]
        diff = rc[:, None] - rn[None, :]
        score = np.where(np.abs(diff) <= tied_tol, 0.5, (diff > 0).astype(float))
        aucs[k] = float(np.sum(wc[:, None] * score) / (wc.sum() * control.sum()))
    if len(times) == 1:
        return aucs, float(aucs[0])
    s = kaplan_meier(t, e)(times)
    d = -np.diff(np.r_[1.0, s])
    return aucs, float(np.sum(aucs * d) / (1.0 - s[-1]))


def brier_score(time, event, survival, times, *, train_time=None, train_event=None) -> np.ndarray:
    """IPCW Brier score (Graf et al. 1999) of predicted survival S(t | x), (n, len(times))."""
    t, e = _as_arrays(time, event)
    times = _check_times(times)
    s = check_scores(survival, len(t), "survival", ndim=2).reshape(len(t), len(times))
    if np.any((s < 0) | (s > 1)):
        raise ValueError("survival: probabilities must lie in [0, 1]")
    tt, te = (t, e) if train_time is None else _as_arrays(train_time, train_event, ("train_time", "train_event"))
    g = censoring_survival(tt, te)
    if times.max() > tt.max() and g.values[-1] > 0:
        raise ValueError(f"Brier times must lie before the last follow-up ({tt.max():g})")
    g_t = g(times)
    g_y = g(t)
    out = np.empty(len(times))
    for k, horizon in enumerate(times):
        case = (t <= horizon) & e
        control = t > horizon
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(case, s[:, k] ** 2 / np.where(case, g_y, 1.0), 0.0)
            term += np.where(control, (1.0 - s[:, k]) ** 2 / g_t[k], 0.0)
        out[k] = float(np.mean(term))
    return out


def integrated_brier_score(time, event, survival, times, *, train_time=None, train_event=None) -> float:
    """Trapezoidal integral of the Brier score over ``times``, divided by their range."""
    times = np.asarray(times, dtype=float)
    if len(times) < 2:
        raise ValueError("the integrated Brier score needs at least two time points")
    bs = brier_score(time, event, survival, times, train_time=train_time, train_event=train_event)
    return float(np.trapezoid(bs, times) / (times[-1] - times[0]))


def cumulative_dynamic_roc(time, event, risk, horizon: float, *, train_time=None,
                           train_event=None) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) of the cumulative/dynamic ROC curve at ``horizon``
    (IPCW-weighted cases, as in :func:`cumulative_dynamic_auc`), from (0, 0) to (1, 1)."""
    t, e = _as_arrays(time, event)
    r = check_scores(risk, len(t))
    tt, te = (t, e) if train_time is None else _as_arrays(train_time, train_event, ("train_time", "train_event"))
    w = _ipcw(tt, te, t, e)
    case = (t <= horizon) & e
    control = t > horizon
    thresholds = np.unique(r)[::-1]
    tp = np.array([np.sum(w[case] * (r[case] >= c)) for c in thresholds]) / max(w[case].sum(), 1e-300)
    fp = np.array([np.sum(r[control] >= c) for c in thresholds]) / max(control.sum(), 1)
    return np.r_[0.0, fp], np.r_[0.0, tp]
