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


#: A score with at most this many distinct values is discrete: its groups follow its own classes.
DISCRETE_LEVELS = 10
#: A risk group with a smaller share of the patients makes a split degenerate (flagged in reports).
DEGENERATE_SHARE = 0.10


def learn_cutoffs(risk, time=None, event=None, *, method: CutoffMethod = "median",
                  horizon: float | None = None) -> list[float]:
    """Cut-offs on (training) risks: the median, the tertiles, or Youden's J for the event
    by ``horizon`` among patients whose status at the horizon is known.

    A discrete score (at most ``DISCRETE_LEVELS`` distinct values, e.g. BCLC or the ALBI grade) is
    cut between its own classes: at the class boundary whose share of patients at or below it is
    nearest 1/2 (median) or 1/3 and 2/3 (tertiles). The plain median of such a score can put every
    patient in one group (BCLC 9/9/22: median C, nobody above it).

    Parameters
    ----------
    risk : array-like of float
        Risk scores of the training patients.
    time, event : array-like, optional
        Their outcomes; needed by ``method="youden"`` only.
    method : {"median", "tertiles", "youden"}
        Two groups at the median or Youden's J, three at the tertiles.
    horizon : float, optional
        The horizon of Youden's J.

    Returns
    -------
    list of float
        Increasing cut-offs; ``assign_groups`` puts a patient at a cut-off in the lower group.

    Examples
    --------
    >>> risk = [0.11, 0.42, 0.23, 0.95, 0.51, 0.64, 0.37, 0.78, 0.29, 0.86, 0.55]
    >>> learn_cutoffs(risk)
    [0.51]
    >>> assign_groups(risk, [0.51]).tolist()
    [0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 1]
    """
    r = np.asarray(risk, dtype=float)
    levels = np.unique(r[np.isfinite(r)])
    if method in ("median", "tertiles") and 1 < len(levels) <= DISCRETE_LEVELS:
        return class_cutoffs(r, levels, [0.5] if method == "median" else [1 / 3, 2 / 3])
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


def class_cutoffs(risk: np.ndarray, levels: np.ndarray, targets: list[float]) -> list[float]:
    """Cut-offs among a discrete score's own class values (a patient at a cut-off is in the lower
    group): for each target share, in order, the unused class boundary whose share at or below it is
    nearest; one cut-off when the score has only two classes."""
    r = risk[np.isfinite(risk)]
    candidates = [float(v) for v in levels[:-1]]
    share = {c: float(np.mean(r <= c)) for c in candidates}
    if len(targets) > len(candidates):
        targets = [0.5]
    if len(targets) == 1:
        return [min(candidates, key=lambda c: (abs(share[c] - targets[0]), c))]
    best = min(((a, b) for i, a in enumerate(candidates) for b in candidates[i + 1:]),
               key=lambda ab: (sum(abs(share[c] - t) for c, t in zip(ab, targets, strict=True)), ab))
    return list(best)


def group_shares(groups) -> tuple[float, bool]:
    """The smallest group's share of the patients, and whether the split is degenerate (a group
    under ``DEGENERATE_SHARE`` of them, or an empty one)."""
    g = np.asarray(groups, int)
    if not len(g):
        return 0.0, True
    counts = np.bincount(g, minlength=max(int(g.max()) + 1, 2))
    smallest = float(counts.min() / len(g))
    return smallest, smallest < DEGENERATE_SHARE


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
    """Log-rank test across the groups present (chi-square with k-1 df; lifelines).

    Parameters
    ----------
    time, event : array-like
        Follow-up time and event indicator (1 event, 0 censored) per patient.
    groups : array-like
        Group label per patient.

    Returns
    -------
    dict
        ``chi2``, ``df`` and ``p_value``; NaN with ``df`` 0 when fewer than two groups are present.

    Examples
    --------
    >>> res = logrank([5, 8, 12, 20, 3, 4], [1, 1, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1])
    >>> res["df"], round(res["chi2"], 3), round(res["p_value"], 4)
    (1, 5.628, 0.0177)
    """
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
