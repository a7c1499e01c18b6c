"""The one cross-validation engine: every model of a run (fixed clinical scores, clinical Cox or
logistic models, deep networks and their fusions) is scored out of fold on the same splits.

A *task* says what is predicted and how a risk score becomes a group:

- :class:`SurvivalTask` (an endpoint with time and event): risk groups with cut-offs learned by
  ``learn_cutoffs`` on the training part, survival on an evaluation grid, fusion by a bivariate
  Cox model (RadCLN);
- :class:`ResponseTask` (PD = 1 against disease control = 0): the group is the predicted class
  at the Youden cut-off of the training part (``risk_group`` 1 = predicted PD).

A *learner* is a callable ``learner(split, grid) -> FoldPrediction`` trained on the training
part of each split; a *fixed score* is an array that is not fitted (fold -1). Cut-offs are
learned per (repeat, fold) on training patients only and written to ``cutoffs.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd

from hccprog.cohort.model import Cohort
from hccprog.cohort.scores import CONTROL_VALUES, PD_VALUES
from hccprog.errors import InputError
from hccprog.evaluation.groups import CutoffMethod, assign_groups, learn_cutoffs
from hccprog.evaluation.thresholds import youden_threshold
from hccprog.fills import join_fills
from hccprog.survival.cox import BivariateCoxFusion
from hccprog.survival.cv import CVConfig, FoldPrediction, Split, folds_frame, make_splits

YEAR_DAYS = 365.25


class Learner(Protocol):
    """A model cross-validated by the engine, trained on the training part of each split."""

    #: patient id -> what its input filled in (``kind: detail`` strings, the ``imputed`` column)
    imputed: dict[str, list[str]]
    #: None, or 0/1 over the task's patients marking a score that rests on imputed input (a
    #: carried-forward follow-up): a fusion with this learner first gets the indicator terms of
    #: ``BivariateCoxFusion``
    fusion_indicator: np.ndarray | None

    def __call__(self, split: Split, grid: list[float]) -> FoldPrediction: ...


def surv_column(t: float) -> str:
    return f"surv_{t:g}"


def default_horizons(cohort: Cohort, time: np.ndarray, event: np.ndarray) -> list[float]:
    """1, 2 and 3 years in the cohort's unit, kept while at least 10% of patients remain at risk
    and at least 5 events precede them."""
    per_year = cohort.to_unit(YEAR_DAYS)
    out = []
    for years in (1, 2, 3):
        h = float(per_year * years)
        if np.mean(time > h) >= 0.10 and np.sum(event & (time <= h)) >= 5:
            out.append(round(h, 4))
    if not out and event.any():
        out = [float(np.round(np.quantile(time[event.astype(bool)], 0.5), 4))]
    if not out:
        raise ValueError("no event: default horizons need at least one (give --horizons)")
    return out


def survival_grid(time: np.ndarray, event: np.ndarray, horizons: list[float]) -> list[float]:
    """Horizons plus 10 evaluation times between the 10th and 80th percentile of follow-up (for the
    integrated Brier score), all strictly inside the observed range."""
    lo, hi = np.quantile(time, [0.1, 0.8])
    grid = np.linspace(lo, hi, 10)
    allv = np.unique(np.round(np.concatenate([grid, horizons]), 4))
    return [float(v) for v in allv if 0 < v < time.max()]


def response_labels(cohort: Cohort) -> pd.Series:
    """1 = progressive disease, 0 = disease control; patients without a response are dropped."""
    raw = cohort.responses().dropna().astype(str).str.strip().str.upper()
    raw = raw.str.replace(r"\.0$", "", regex=True)
    unknown = sorted(set(raw) - PD_VALUES - CONTROL_VALUES)
    if unknown:
        raise ValueError(f"response values {unknown} are not CR/PR/SD/PD or 1..4")
    return raw.isin(PD_VALUES).astype(int).rename("label")


class SurvivalTask:
    """A survival endpoint: ``time`` and ``event`` over ``ids`` (the cohort's unit)."""

    kind = "survival"

    def __init__(self, ids: list[str], time: np.ndarray, event: np.ndarray, *, horizons: list[float],
                 risk_groups: CutoffMethod = "median") -> None:
        self.ids = list(ids)
        self.time = np.asarray(time, float)
        self.event = np.asarray(event, int)
        self.horizons = [float(h) for h in horizons]
        self.risk_groups = risk_groups
        self.grid = survival_grid(self.time, self.event.astype(bool), self.horizons)

    @classmethod
    def of(cls, cohort: Cohort, endpoint: str, *, horizons: list[float] | None = None,
           risk_groups: CutoffMethod = "median") -> SurvivalTask:
        out = cohort.outcomes(endpoint, unit=cohort.time_unit)
        t, e = out["time"].to_numpy(float), out["event"].to_numpy(int)
        return cls(list(out.index), t, e, horizons=horizons or default_horizons(cohort, t, e.astype(bool)),
                   risk_groups=risk_groups)

    @property
    def strata(self) -> np.ndarray:
        return self.event

    @property
    def outcomes(self) -> pd.DataFrame:
        """``outcomes.csv``: time and event per patient."""
        return pd.DataFrame({"time": self.time, "event": self.event},
                            index=pd.Index(self.ids, name="patient_id"))

    def cutoffs(self, train_risk: np.ndarray, train: np.ndarray) -> list[float]:
        return learn_cutoffs(train_risk, self.time[train], self.event[train], method=self.risk_groups,
                             horizon=max(self.horizons))

    @staticmethod
    def groups(risk: np.ndarray, cutoffs: list[float]) -> np.ndarray:
        return assign_groups(risk, cutoffs)

    def fuse(self, train: np.ndarray, a: np.ndarray, b: np.ndarray, indicator: np.ndarray | None):
        """The bivariate Cox fusion of two scores, fitted on the training patients ``train``."""
        return BivariateCoxFusion().fit(a, b, self.time[train], self.event[train], indicator=indicator)


class ResponseTask:
    """Treatment response as a binary label over ``ids``: 1 = PD, 0 = disease control."""

    kind = "response"

    def __init__(self, ids: list[str], labels: np.ndarray) -> None:
        self.ids = list(ids)
        self.labels = np.asarray(labels, int)
        self.grid: list[float] = []  # no survival to predict
        self.horizons: list[float] = []

    @classmethod
    def of(cls, cohort: Cohort) -> ResponseTask:
        labels = response_labels(cohort)
        return cls(list(labels.index), labels.to_numpy(int))

    @property
    def strata(self) -> np.ndarray:
        return self.labels

    @property
    def outcomes(self) -> pd.DataFrame:
        """``outcomes.csv``: the label per patient."""
        return pd.DataFrame({"label": self.labels}, index=pd.Index(self.ids, name="patient_id"))

    def cutoffs(self, train_risk: np.ndarray, train: np.ndarray) -> list[float]:
        y = self.labels[train]
        if len(set(y.tolist())) < 2:  # one class in the training part: no ROC curve to cut
            return [float(np.median(train_risk))]
        return [youden_threshold(y, train_risk)]

    @staticmethod
    def groups(risk: np.ndarray, cutoffs: list[float]) -> np.ndarray:
        return (np.asarray(risk, float) >= cutoffs[0]).astype(int)

    def fuse(self, train, a, b, indicator):
        raise ValueError("fusions are defined for survival endpoints (a bivariate Cox model); the response "
                         "endpoint has none")


Task = SurvivalTask | ResponseTask
Fusion = tuple[str, str, str]  # (first score, second score, name of the fused model)


@dataclass
class CVResult:
    """Out-of-fold predictions of every model (all repeats), the folds, the cut-offs learned per
    (repeat, fold) and notes for the report."""

    predictions: pd.DataFrame  # patient_id, model, repeat, fold, risk, risk_group, surv_<t>..., p_<c>..., imputed
    folds: pd.DataFrame
    cutoffs: list[dict]
    notes: list[str]
    splits: list[Split]


def cross_validate(task: Task, cv: CVConfig, *, learners: dict[str, Learner] | None = None,
                   fixed_scores: dict[str, np.ndarray] | None = None, fusions: list[Fusion] | None = None,
                   imputed: dict[str, dict[str, list[str]]] | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> CVResult:
    """Score every learner, fixed score and fusion out of fold on ``cv``'s splits of ``task.ids``.

    Learners are called once per split in the order given; fusions are fitted on the training
    part's scores of their two parts. Fixed scores get rows for the first repeat only (fold -1),
    with groups at cut-offs learned on the training part of the patient's own fold. ``imputed``
    (model -> patient -> fills) completes what learners carry themselves; a fusion lists both
    parts' fills. ``progress(label, done, total)`` is called per split."""
    learners = learners or {}
    fixed_scores = {k: np.asarray(v, float) for k, v in (fixed_scores or {}).items()}
    fusions = list(fusions or [])
    for a, b, _ in fusions:
        for part in (a, b):
            if part not in fixed_scores and part not in learners:
                raise ValueError(f"fusion {a}+{b}: '{part}' is neither a usable score nor a cross-validated model")
    ids = task.ids
    splits = make_splits(len(ids), task.strata, cv)
    cutoff_log: list[dict] = []
    rows: list[dict] = []

    def score_rows(name: str, s: Split, train_risk: np.ndarray, test_risk: np.ndarray, *, fold: int | None = None,
                   surv: np.ndarray | None = None, columns: dict[str, np.ndarray] | None = None) -> None:
        cut = task.cutoffs(train_risk, s.train)
        cutoff_log.append({"model": name, "repeat": s.repeat, "fold": s.fold, "cutoffs": cut})
        groups = task.groups(test_risk, cut)
        for j, i in enumerate(s.test):
            row = {"patient_id": ids[i], "model": name, "repeat": s.repeat, "fold": s.fold if fold is None else fold,
                   "risk": float(test_risk[j]), "risk_group": int(groups[j])}
            if surv is not None:
                row.update({surv_column(g): float(surv[j, k]) for k, g in enumerate(task.grid)})
            for col, values in (columns or {}).items():
                row[col] = float(values[j])
            rows.append(row)

    for name, v in fixed_scores.items():  # not fitted: fold -1, cut-offs still learned per training part
        for s in splits:
            known = replace(s, train=s.train[np.isfinite(v[s.train])], test=s.test[np.isfinite(v[s.test])])
            if s.repeat == 0 and len(known.train) and len(known.test):
                score_rows(name, known, v[known.train], v[known.test], fold=-1)

    indicators = {a: np.asarray(learners[a].fusion_indicator, float) for a, _, _ in fusions
                  if a in learners and learners[a].fusion_indicator is not None}
    indicator_used: dict[str, int] = {}
    total = len(splits)
    for k, s in enumerate(splits):
        if progress:
            progress(f"repeat {s.repeat + 1}/{cv.repeats}, fold {s.fold + 1}/{cv.folds}", k, total)
        train_risk: dict[str, np.ndarray] = {}
        test_risk: dict[str, np.ndarray] = {}
        for name, learner in learners.items():
            pred = learner(s, task.grid)
            train_risk[name], test_risk[name] = np.asarray(pred.train_risk, float), np.asarray(pred.test_risk, float)
            ok_tr, ok_te = np.isfinite(train_risk[name]), np.isfinite(test_risk[name])
            sub = replace(s, train=s.train[ok_tr], test=s.test[ok_te])
            surv = None if pred.test_surv is None or not task.grid else np.asarray(pred.test_surv)[ok_te]
            score_rows(name, sub, train_risk[name][ok_tr], test_risk[name][ok_te], surv=surv,
                       columns={c: np.asarray(v, float)[ok_te] for c, v in pred.test_columns.items()})
        for name, v in fixed_scores.items():
            train_risk[name], test_risk[name] = v[s.train], v[s.test]
        for a, b, name in fusions:
            ok_tr = np.isfinite(train_risk[a]) & np.isfinite(train_risk[b])
            ok_te = np.isfinite(test_risk[a]) & np.isfinite(test_risk[b])
            ind = indicators.get(a)
            ind_tr = None if ind is None else ind[s.train][ok_tr]
            ind_te = None if ind is None else ind[s.test][ok_te]
            try:
                fus = task.fuse(s.train[ok_tr], train_risk[a][ok_tr], train_risk[b][ok_tr], ind_tr)
            except RuntimeError as exc:  # lifelines' non-convergence, re-raised by the Cox fitter
                events = int(task.strata[s.train[ok_tr]].sum())  # fusions are fitted for survival tasks only
                raise InputError(f"{name}: the Cox fusion of {a} and {b} cannot be fitted in repeat {s.repeat + 1}, "
                                 f"fold {s.fold + 1} ({int(ok_tr.sum())} training patients, {events} events): {exc}",
                                 hint="too few patients (or a constant score) for a fusion: give a larger cohort "
                                      "or fewer folds, or train without it (fuse_with: null in a --config "
                                      "file)") from None
            if ind is not None:
                indicator_used[name] = indicator_used.get(name, 0) + int(fus.uses_indicator_)
            risk = fus.predict_risk(test_risk[a][ok_te], test_risk[b][ok_te], ind_te)
            surv = fus.predict_survival(test_risk[a][ok_te], test_risk[b][ok_te], task.grid, ind_te)
            tr_risk = fus.predict_risk(train_risk[a][ok_tr], train_risk[b][ok_tr], ind_tr)
            score_rows(name, replace(s, train=s.train[ok_tr], test=s.test[ok_te]), tr_risk, risk, surv=surv)
    if progress:
        progress("done", total, total)
    notes = []
    for name, used in indicator_used.items():
        why = "" if used == total else " (the others: too few such patients or events in the training part)"
        notes.append(f"fusion '{name}': the imputed-input (LOCF) indicator and its product with the image score "
                     f"entered the fusion in {used} of {total} splits{why}")

    preds = pd.DataFrame(rows)
    ordered = ["patient_id", "model", "repeat", "fold", "risk", "risk_group"]
    surv_cols = sorted((c for c in preds.columns if c.startswith("surv_")), key=lambda c: float(c[5:]))
    extra_cols = [c for c in preds.columns if c not in ordered and c not in surv_cols]
    preds = preds[ordered + surv_cols + extra_cols]
    fills = {name: dict(learner.imputed) for name, learner in learners.items()}
    for name, by_patient in (imputed or {}).items():
        fills[name] = {**fills.get(name, {}), **by_patient}
    for a, b, name in fusions:
        fills[name] = {p: fills.get(a, {}).get(p, []) + fills.get(b, {}).get(p, []) for p in ids}
    preds["imputed"] = [join_fills(fills.get(m, {}).get(p, [])) for p, m in zip(preds["patient_id"], preds["model"],
                                                                               strict=True)]
    return CVResult(preds, folds_frame(ids, splits), cutoff_log, notes, splits)
