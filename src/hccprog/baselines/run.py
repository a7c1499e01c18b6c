"""Cross-validated clinical baselines for one endpoint: fixed scores, penalised Cox models and
bivariate-Cox fusions, all scored out of fold on the same splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from hccprog.baselines.cox import BivariateCoxFusion, CoxModel
from hccprog.baselines.scores import compute_scores
from hccprog.cohort.model import Cohort
from hccprog.evaluation.groups import CutoffMethod, assign_groups, learn_cutoffs
from hccprog.fills import covariate_fills, join_fills
from hccprog.training.cv import CVConfig, Split, check_cv_size, folds_frame, make_splits


class CoxSpec(BaseModel):
    """A penalised Cox model: its covariates (None: every declared covariate) and penalty grid."""

    model_config = ConfigDict(extra="forbid")
    covariates: list[str] | None = None
    penalizers: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0])
    l1_ratio: float = Field(0.0, ge=0, le=1)


class BaselinesConfig(BaseModel):
    """What ``hccprog baselines`` fits and how it evaluates."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str = "os"
    cv: CVConfig = Field(default_factory=lambda: CVConfig(folds=5, repeats=5, seed=0))
    # in the cohort's time unit; None: 1, 2, 3 years that fit
    horizons: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = Field(None, min_length=1)
    risk_groups: CutoffMethod = "median"
    cox_models: dict[str, CoxSpec] = Field(default_factory=lambda: {"clinical_cox": CoxSpec()})
    scores: list[str] | None = None  # None: every score the cohort has or allows to compute
    # None: (best-known fixed score, clinical_cox); an optional third item names the fused model
    fusions: list[tuple[str, str] | tuple[str, str, str]] | None = None
    min_score_coverage: float = Field(0.5, gt=0, le=1)
    reference: str = "clinical_cox"
    n_boot: int = Field(1000, ge=0)
    seed: int = 0


@dataclass
class FoldPrediction:
    """What a cross-validated learner returns for one split: risks of the training part (used to
    fit fusions and risk-group cut-offs) and of the test part, and survival of the test part on the
    evaluation grid. NaN marks a patient the learner could not score."""

    train_risk: np.ndarray
    test_risk: np.ndarray
    test_surv: np.ndarray


#: ``learner(split, grid) -> FoldPrediction``: a model trained outside this module (e.g. a CNN).
#: A learner may carry ``fusion_indicator``: a 0/1 array over the cohort's patients (in outcome
#: order) marking patients whose score rests on imputed input (a carried-forward follow-up); a
#: fusion with that learner as its first score then gets the indicator terms of
#: ``BivariateCoxFusion``. It may also carry ``imputed``: patient id -> what its input filled in
#: (``kind: detail`` strings), written to the ``imputed`` column of the predictions.
Learner = Callable[[Split, list[float]], FoldPrediction]


@dataclass
class BaselinesResult:
    predictions: pd.DataFrame  # patient_id, model, repeat, fold, risk, risk_group, surv_<t>...
    folds: pd.DataFrame
    outcomes: pd.DataFrame  # patient_id -> time, event (cohort unit)
    horizons: list[float]
    survival_times: list[float]
    score_sources: dict[str, str]
    full_models: dict[str, CoxModel]  # refitted on every patient, for nomograms and forest plots
    covariates: pd.DataFrame
    cutoffs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


YEAR_DAYS = 365.25


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


def surv_column(t: float) -> str:
    return f"surv_{t:g}"


def _risk_groups(name, s, *, train_risk, test_risk, t, e, cfg, cutoff_log) -> np.ndarray:
    """Risk groups of the test part of split ``s``, with cut-offs learned on its training part."""
    cut = learn_cutoffs(train_risk, t[s.train], e[s.train], method=cfg.risk_groups, horizon=max(cfg.horizons))
    cutoff_log.append({"model": name, "repeat": s.repeat, "fold": s.fold, "cutoffs": cut})
    return assign_groups(test_risk, cut)


def _fixed_score_rows(name, v, *, ids, splits, t, e, cfg, cutoff_log):
    """Fixed scores are not fitted: fold -1. Their risk-group cut-offs are still learned on the
    training part of each fold of repeat 0, so that groups never see the patient they label."""
    rows = []
    for s in splits:
        if s.repeat != 0:
            continue
        known = replace(s, train=s.train[np.isfinite(v[s.train])], test=s.test[np.isfinite(v[s.test])])
        if len(known.train) == 0 or len(known.test) == 0:
            continue
        groups = _risk_groups(name, known, train_risk=v[known.train], test_risk=v[known.test], t=t, e=e, cfg=cfg,
                              cutoff_log=cutoff_log)
        for i, g in zip(known.test, groups, strict=True):
            rows.append({"patient_id": ids[i], "model": name, "repeat": 0, "fold": -1, "risk": float(v[i]),
                         "risk_group": int(g)})
    return rows


def run_baselines(cohort: Cohort, cfg: BaselinesConfig, *, learners: dict[str, Learner] | None = None,
                  extra_scores: pd.DataFrame | None = None, extra_fusions: list[tuple[str, str, str]] | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> BaselinesResult:
    """Fit and score every baseline out of fold. ``progress(label, done, total)`` is called per fold.

    ``learners`` adds cross-validated models trained elsewhere (deep models): each is called once
    per split, its predictions are scored like the Cox models' and it may appear in ``fusions``.
    ``extra_fusions`` are added to ``cfg.fusions`` (or to the default fusion).
    ``extra_scores`` (patients x named columns, e.g. a known true risk) are evaluated as fixed scores."""
    learners = learners or {}
    out = cohort.outcomes(cfg.endpoint, unit=cohort.time_unit)
    ids = list(out.index)
    t = out["time"].to_numpy(float)
    e = out["event"].to_numpy(int)
    spec = cohort.spec.endpoints.get(cfg.endpoint)
    notes: list[str] = check_cv_size(len(ids), int(e.sum()), cfg.cv, what=f"endpoint '{cfg.endpoint}'",
                                     file=cohort.spec.clinical, column=spec.event if spec else None)
    horizons = cfg.horizons or default_horizons(cohort, t, e.astype(bool))
    cfg = cfg.model_copy(update={"horizons": horizons})
    grid = survival_grid(t, e.astype(bool), horizons)
    X_all = cohort.covariates().loc[ids]
    scores, sources = compute_scores(cohort)
    scores = scores.loc[ids]
    wanted = cfg.scores if cfg.scores is not None else list(scores.columns)
    if extra_scores is not None:
        scores = scores.join(extra_scores.reindex(ids).astype(float))
        wanted = wanted + [c for c in extra_scores.columns if c not in wanted]
        sources.update({c: "given" for c in extra_scores.columns})
    usable = []
    for name in wanted:
        if name not in scores.columns:
            notes.append(f"score '{name}' is neither in the table nor computable from it: skipped")
            continue
        cover = scores[name].notna().mean()
        if cover < cfg.min_score_coverage:
            notes.append(f"score '{name}' known for {cover:.0%} of patients (< {cfg.min_score_coverage:.0%}): skipped")
            continue
        if scores[name].nunique() < 2:
            notes.append(f"score '{name}' takes a single value: skipped")
            continue
        usable.append(name)
        missing = int(scores[name].isna().sum())
        if missing:
            notes.append(f"score '{name}': {missing} patients without a value are not scored by it")

    splits = make_splits(len(ids), e, cfg.cv)
    folds = folds_frame(ids, splits)
    cutoff_log: list[dict] = []
    rows: list[dict] = []
    for name in usable:
        rows += _fixed_score_rows(name, scores[name].to_numpy(float), ids=ids, splits=splits, t=t, e=e, cfg=cfg,
                                  cutoff_log=cutoff_log)

    cox_specs = {}
    for name, spec in cfg.cox_models.items():
        covs = spec.covariates or list(X_all.columns)
        absent = [c for c in covs if c not in X_all.columns]
        if absent:
            raise ValueError(f"Cox model '{name}': covariates {absent} are not declared in the cohort")
        if not covs:
            notes.append(f"Cox model '{name}' has no covariates: skipped")
            continue
        cox_specs[name] = (spec, covs)
    fusions = cfg.fusions
    if fusions is None:
        first = next((s for s in ("clip", "bclc", "okuda", "hap", "albi", "child_pugh") if s in usable), None)
        fusions = [(first, "clinical_cox")] if first and "clinical_cox" in cox_specs else []
    fusions = list(fusions) + list(extra_fusions or [])
    fusions = [(f[0], f[1], f[2] if len(f) > 2 else f"{f[0]}+{f[1]}") for f in fusions]
    for a, b, _ in fusions:
        for part in (a, b):
            if part not in usable and part not in cox_specs and part not in learners:
                raise ValueError(f"fusion {a}+{b}: '{part}' is neither a usable score nor a Cox model")

    indicators = {}
    for a, _, _ in fusions:
        flag = getattr(learners.get(a), "fusion_indicator", None)
        if flag is not None:
            indicators[a] = np.asarray(flag, float)
    indicator_used: dict[str, int] = {}
    common = {"ids": ids, "grid": grid, "t": t, "e": e, "cfg": cfg, "cutoff_log": cutoff_log}  # for every _cv_rows
    total = len(splits)
    for k, s in enumerate(splits):
        if progress:
            progress(f"repeat {s.repeat + 1}/{cfg.cv.repeats}, fold {s.fold + 1}/{cfg.cv.folds}", k, total)
        train_risk: dict[str, np.ndarray] = {}
        test_risk: dict[str, np.ndarray] = {}
        for name, (spec, covs) in cox_specs.items():
            model = CoxModel(penalizers=tuple(spec.penalizers), l1_ratio=spec.l1_ratio,
                             inner_folds=cfg.cv.inner_folds, seed=s.seed).fit(
                X_all.iloc[s.train][covs], t[s.train], e[s.train])
            train_risk[name] = model.predict_risk(X_all.iloc[s.train])
            test_risk[name] = model.predict_risk(X_all.iloc[s.test])
            surv = model.predict_survival(X_all.iloc[s.test], grid)
            rows += _cv_rows(name, s, train_risk=train_risk[name], test_risk=test_risk[name], surv=surv, **common)
        for name, learner in learners.items():
            pred = learner(s, grid)
            train_risk[name], test_risk[name] = np.asarray(pred.train_risk, float), np.asarray(pred.test_risk, float)
            ok_tr, ok_te = np.isfinite(train_risk[name]), np.isfinite(test_risk[name])
            sub = replace(s, train=s.train[ok_tr], test=s.test[ok_te])
            rows += _cv_rows(name, sub, train_risk=train_risk[name][ok_tr], test_risk=test_risk[name][ok_te],
                             surv=np.asarray(pred.test_surv)[ok_te], **common)
        for name in usable:
            v = scores[name].to_numpy(float)
            train_risk[name], test_risk[name] = v[s.train], v[s.test]
        for a, b, name in fusions:
            ok_tr = np.isfinite(train_risk[a]) & np.isfinite(train_risk[b])
            ok_te = np.isfinite(test_risk[a]) & np.isfinite(test_risk[b])
            ind = indicators.get(a)
            ind_tr = None if ind is None else ind[s.train][ok_tr]
            ind_te = None if ind is None else ind[s.test][ok_te]
            fus = BivariateCoxFusion().fit(train_risk[a][ok_tr], train_risk[b][ok_tr],
                                           t[s.train][ok_tr], e[s.train][ok_tr], indicator=ind_tr)
            if ind is not None:
                indicator_used[name] = indicator_used.get(name, 0) + int(fus.uses_indicator_)
            risk = fus.predict_risk(test_risk[a][ok_te], test_risk[b][ok_te], ind_te)
            surv = fus.predict_survival(test_risk[a][ok_te], test_risk[b][ok_te], grid, ind_te)
            tr_risk = fus.predict_risk(train_risk[a][ok_tr], train_risk[b][ok_tr], ind_tr)
            sub = replace(s, train=s.train[ok_tr], test=s.test[ok_te])
            rows += _cv_rows(name, sub, train_risk=tr_risk, test_risk=risk, surv=surv, **common)
    if progress:
        progress("done", total, total)
    for name, used in indicator_used.items():
        why = "" if used == total else " (the others: too few such patients or events in the training part)"
        notes.append(f"fusion '{name}': the imputed-input (LOCF) indicator and its product with the image score "
                     f"entered the fusion in {used} of {total} splits{why}")

    full_models = {}
    for name, (spec, covs) in cox_specs.items():
        full_models[name] = CoxModel(penalizers=tuple(spec.penalizers), l1_ratio=spec.l1_ratio,
                                     inner_folds=cfg.cv.inner_folds, seed=cfg.cv.seed).fit(X_all[covs], t, e)
    preds = pd.DataFrame(rows)
    ordered = ["patient_id", "model", "repeat", "fold", "risk", "risk_group"]
    surv_cols = [c for c in preds.columns if c.startswith("surv_")]
    preds = preds[ordered + sorted(surv_cols, key=lambda c: float(c[5:]))]
    inputs = {name: ("covariates", covs) for name, (_, covs) in cox_specs.items()}
    inputs.update({name: ("learner", name) for name in learners})
    fills = {name: _fills_of(inputs.get(name), X_all, learners) for name in inputs}
    for a, b, name in fusions:
        fills[name] = {p: fills.get(a, {}).get(p, []) + fills.get(b, {}).get(p, []) for p in ids}
    preds["imputed"] = [join_fills(fills.get(m, {}).get(p, [])) for p, m in zip(preds["patient_id"], preds["model"],
                                                                               strict=True)]
    outcomes = out.copy()
    return BaselinesResult(preds, folds, outcomes, horizons, grid, {k: sources.get(k, "") for k in usable},
                           full_models, X_all, cutoff_log, notes)


def _fills_of(source, X: pd.DataFrame, learners: dict) -> dict[str, list[str]]:
    """What a model's inputs filled in per patient: its covariates, or a learner's own ``imputed``."""
    if source is None:
        return {}
    kind, what = source
    if kind == "covariates":
        return covariate_fills(X, what)
    return dict(getattr(learners[what], "imputed", None) or {})


def _cv_rows(name, s, *, train_risk, test_risk, surv, ids, grid, t, e, cfg, cutoff_log) -> list[dict]:
    """The rows of ``s``'s test part: risk, risk group (cut-offs learned on ``train_risk``), survival."""
    groups = _risk_groups(name, s, train_risk=train_risk, test_risk=test_risk, t=t, e=e, cfg=cfg, cutoff_log=cutoff_log)
    rows = []
    for j, i in enumerate(s.test):
        row = {"patient_id": ids[i], "model": name, "repeat": s.repeat, "fold": s.fold,
               "risk": float(test_risk[j]), "risk_group": int(groups[j])}
        for k, g in enumerate(grid):
            row[surv_column(g)] = float(surv[j, k])
        rows.append(row)
    return rows
