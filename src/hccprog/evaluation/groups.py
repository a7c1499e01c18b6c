"""Risk groups with cut-offs learned on training data, Kaplan-Meier, log-rank and hazard ratios."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning
from lifelines.statistics import multivariate_logrank_test

from hccprog.evaluation.thresholds import youden_threshold

CutoffMethod = Literal["median", "tertiles", "youden"]
GROUP_LABELS = {2: ["low", "high"], 3: ["low", "intermediate", "high"]}


def learn_cutoffs(risk, time=None, event=None, *, method: CutoffMethod = "median",
                  horizon: float | None = None) -> list[float]:
    """Cut-offs on (training) risks: the median, the tertiles, or Youden's J for the event
    by ``horizon`` among patients whose status at the horizon is known."""
    r = np.asarray(risk, dtype=float)
    if method == "median":
        return [float(np.median(r))]
    if method == "tertiles":
        return [float(q) for q in np.quantile(r, [1 / 3, 2 / 3])]
    if method == "youden":
        if horizon is None or time is None or event is None:
            raise ValueError("the Youden cut-off needs time, event and a horizon")
        t = np.asarray(time, dtype=float)
        e = np.asarray(event).astype(bool)
        known = (t > horizon) | e
        y = (t <= horizon) & e
        if len(np.unique(y[known])) < 2:
            return [float(np.median(r))]
        return [youden_threshold(y[known], r[known])]
    raise ValueError(f"unknown cut-off method {method!r}")


def assign_groups(risk, cutoffs: list[float]) -> np.ndarray:
    """Group index 0..len(cutoffs): risk above a cut-off moves a patient up a group (a risk
    equal to the median cut-off stays low, so ordinal scores split as 'at most' vs 'above')."""
    r = np.asarray(risk, dtype=float)
    return np.searchsorted(np.asarray(cutoffs, dtype=float), r, side="left").astype(int)


def kaplan_meier_table(time, event, groups, labels: list[str], *, times=None) -> dict[str, pd.DataFrame]:
    """Per group the KM curve with its 95% (log-log) confidence band, from lifelines."""
    out = {}
    t = np.asarray(time, dtype=float)
    e = np.asarray(event).astype(int)
    g = np.asarray(groups)
    for k, label in enumerate(labels):
        sel = g == k
        if not sel.any():
            continue
        kmf = KaplanMeierFitter().fit(t[sel], e[sel], label=label)
        frame = pd.concat([kmf.survival_function_, kmf.confidence_interval_], axis=1)
        frame.columns = ["survival", "lower", "upper"]
        out[label] = frame
    return out


def logrank(time, event, groups) -> dict[str, float]:
    """Log-rank test across the groups present (chi-square with k-1 df)."""
    g = np.asarray(groups)
    if len(np.unique(g)) < 2:
        return {"chi2": float("nan"), "df": 0, "p_value": float("nan")}
    res = multivariate_logrank_test(np.asarray(time, float), g, np.asarray(event).astype(int))
    return {"chi2": float(res.test_statistic), "df": int(len(np.unique(g)) - 1), "p_value": float(res.p_value)}


def hazard_ratio(time, event, x, *, name: str = "x") -> dict[str, float]:
    """Univariable Cox hazard ratio of ``x`` (a group indicator or a standardised risk) with its
    Wald 95% CI and p-value (lifelines, Efron ties). Not estimable (NaN) when ``x`` is constant,
    there is no event, or the fit does not converge (e.g. every event in one group of a small
    cohort: the maximum-likelihood HR is infinite)."""
    frame = pd.DataFrame({name: np.asarray(x, dtype=float), "T": np.asarray(time, float),
                          "E": np.asarray(event).astype(int)})
    nan = {"hr": float("nan"), "ci_lower": float("nan"), "ci_upper": float("nan"), "p_value": float("nan")}
    if frame[name].nunique() < 2 or frame["E"].sum() == 0:
        return nan
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            cph = CoxPHFitter().fit(frame, "T", "E")
    except ConvergenceError:
        return nan
    s = cph.summary.loc[name]
    return {"hr": float(s["exp(coef)"]), "ci_lower": float(s["exp(coef) lower 95%"]),
            "ci_upper": float(s["exp(coef) upper 95%"]), "p_value": float(s["p"])}
