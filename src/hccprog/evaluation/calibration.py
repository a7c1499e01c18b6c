"""Calibration of predicted survival at a horizon, and decision-curve analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter


def _km_at(time, event, horizon: float) -> tuple[float, float, float]:
    kmf = KaplanMeierFitter().fit(np.asarray(time, float), np.asarray(event).astype(int))
    s = float(kmf.survival_function_at_times(horizon).iloc[0])
    ci = kmf.confidence_interval_survival_function_
    idx = ci.index.searchsorted(horizon, side="right") - 1
    lo, hi = (1.0, 1.0) if idx < 0 else (float(ci.iloc[idx, 0]), float(ci.iloc[idx, 1]))
    return s, lo, hi


def calibration_table(time, event, predicted_survival, horizon: float, *, n_groups: int = 4) -> pd.DataFrame:
    """Patients grouped by quantiles of predicted S(horizon); per group the mean prediction and
    the Kaplan-Meier observed S(horizon) with its 95% CI."""
    t = np.asarray(time, float)
    e = np.asarray(event).astype(int)
    p = np.asarray(predicted_survival, float)
    n_groups = max(1, min(n_groups, len(np.unique(p))))
    edges = np.quantile(p, np.linspace(0, 1, n_groups + 1))
    g = np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, n_groups - 1)
    rows = []
    for k in range(n_groups):
        sel = g == k
        if sel.sum() == 0:
            continue
        obs, lo, hi = _km_at(t[sel], e[sel], horizon)
        rows.append({"group": k + 1, "n": int(sel.sum()), "predicted": float(p[sel].mean()),
                     "observed": obs, "observed_lower": lo, "observed_upper": hi})
    return pd.DataFrame(rows)


def calibration_summary(table: pd.DataFrame, time, event, predicted_survival, horizon: float) -> dict[str, float]:
    """Calibration-in-the-large (mean predicted vs KM observed S(horizon)) and the mean absolute
    difference between predicted and observed over the groups, weighted by group size."""
    obs, _, _ = _km_at(time, event, horizon)
    mean_pred = float(np.mean(predicted_survival))
    w = table["n"] / table["n"].sum()
    return {"horizon": float(horizon), "mean_predicted": mean_pred, "observed": obs,
            "in_the_large": mean_pred - obs,
            "mean_abs_error": float(np.sum(w * np.abs(table["predicted"] - table["observed"])))}


def decision_curve(time, event, risk_probability, horizon: float, thresholds=None) -> pd.DataFrame:
    """Net benefit of treating patients whose predicted probability of the event by ``horizon``
    is at least the threshold, for censored data (Vickers et al. 2008): among those treated, the
    event proportion is 1 - KM(horizon). Also the 'treat all' reference; 'treat none' is 0."""
    t = np.asarray(time, float)
    e = np.asarray(event).astype(int)
    p = np.asarray(risk_probability, float)
    n = len(t)
    thresholds = np.arange(0.05, 0.96, 0.05) if thresholds is None else np.asarray(thresholds, float)
    all_event = 1 - _km_at(t, e, horizon)[0]
    rows = []
    for pt in thresholds:
        odds = pt / (1 - pt)
        treated = p >= pt
        if treated.any():
            ev = 1 - _km_at(t[treated], e[treated], horizon)[0]
            frac = treated.sum() / n
            nb = ev * frac - (1 - ev) * frac * odds
        else:
            nb = 0.0
        rows.append({"threshold": float(pt), "net_benefit": float(nb),
                     "treat_all": float(all_event - (1 - all_event) * odds)})
    return pd.DataFrame(rows)
