"""The clinical baselines of one endpoint, cross-validated by the engine (``experiment.engine``)
beside any models trained elsewhere (deep networks): fixed scores, penalised Cox models and
bivariate-Cox fusions for a survival endpoint; a penalised logistic model for the response."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from hccprog.baselines.learners import CoxLearner, CoxSpec, LogisticSpec
from hccprog.baselines.logistic import LogisticLearner
from hccprog.baselines.scores import compute_scores, score_gap
from hccprog.cohort.model import Cohort
from hccprog.evaluation.groups import CutoffMethod
from hccprog.experiment.engine import (
    Fusion,
    Learner,
    ResponseTask,
    SurvivalTask,
    cross_validate,
    default_horizons,
)
from hccprog.survival.cox import CoxModel
from hccprog.survival.cv import CVConfig, check_cv_size


class BaselinesConfig(BaseModel):
    """What ``hccprog baselines`` fits and how it evaluates."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str = "os"
    cv: CVConfig = Field(default_factory=lambda: CVConfig(folds=5, repeats=5, seed=0))
    # in the cohort's time unit; None: 1, 2, 3 years that fit
    horizons: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = Field(None, min_length=1)
    risk_groups: CutoffMethod = "median"
    cox_models: dict[str, CoxSpec] = Field(default_factory=lambda: {"clinical_cox": CoxSpec()})
    # the clinical models of the response endpoint (PD vs disease control)
    logistic_models: dict[str, LogisticSpec] = Field(default_factory=lambda: {"clinical_logistic": LogisticSpec()})
    scores: list[str] | None = None  # None: every score the cohort has or allows to compute
    # None: (best-known fixed score, clinical_cox); an optional third item names the fused model
    fusions: list[tuple[str, str] | tuple[str, str, str]] | None = None
    min_score_coverage: float = Field(0.5, gt=0, le=1)
    reference: str = "clinical_cox"  # the response endpoint: its first logistic model unless one of them is named
    n_boot: int = Field(1000, ge=0)
    seed: int = 0


@dataclass
class BaselinesResult:
    predictions: pd.DataFrame  # patient_id, model, repeat, fold, risk, risk_group, surv_<t>..., p_<c>..., imputed
    folds: pd.DataFrame
    outcomes: pd.DataFrame  # patient_id -> time, event (cohort unit); or label (response)
    horizons: list[float]
    survival_times: list[float]
    score_sources: dict[str, str]
    full_models: dict[str, CoxModel]  # refitted on every patient, for nomograms and forest plots
    covariates: pd.DataFrame
    cutoffs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: scores the cohort has or computes that were not evaluated -> why (shown in the terminal table)
    absent_scores: dict[str, str] = field(default_factory=dict)
    task: str = "survival"  # or "response"
    reference: str | None = None  # the clinical model the others are compared with


def run_baselines(cohort: Cohort, cfg: BaselinesConfig, *, learners: dict[str, Learner] | None = None,
                  extra_scores: pd.DataFrame | None = None, extra_fusions: list[Fusion] | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> BaselinesResult:
    """Fit and score every baseline out of fold. ``progress(label, done, total)`` is called per fold.

    ``learners`` adds cross-validated models trained elsewhere (deep models): each is called once
    per split, its predictions are scored like the clinical models' and, for a survival endpoint,
    it may appear in ``fusions``. ``extra_fusions`` are added to ``cfg.fusions`` (or to the default
    fusion). ``extra_scores`` (patients x named columns, e.g. a known true risk) are evaluated as
    fixed scores."""
    if cfg.endpoint == "response":
        return _response_baselines(cohort, cfg, learners=learners or {}, extra_scores=extra_scores,
                                   extra_fusions=extra_fusions, progress=progress)
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
    task = SurvivalTask(ids, t, e, horizons=horizons, risk_groups=cfg.risk_groups)
    X_all = cohort.covariates().loc[ids]
    empty = [c for c in cohort.empty_covariates() if c in X_all.columns]
    if empty:  # nothing to impute from: left out, as validate warned (covariate-empty)
        X_all = X_all.drop(columns=empty)
        notes.append(f"covariate(s) {', '.join(empty)} have no value for any patient: left out of the clinical "
                     "models")
    scores, sources = compute_scores(cohort)
    scores = scores.loc[ids]
    absent: dict[str, str] = {}
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
            gap = score_gap(cohort, name, ids)
            absent[name] = gap or f"known for {cover:.0%} of patients (< {cfg.min_score_coverage:.0%})"
            notes.append(f"score '{name}' known for {cover:.0%} of patients (< {cfg.min_score_coverage:.0%})"
                         + (f": {gap}" if gap else "") + ": skipped")
            continue
        if scores[name].nunique() < 2:
            notes.append(f"score '{name}' takes a single value: skipped")
            continue
        usable.append(name)
        missing = int(scores[name].isna().sum())
        if missing:
            notes.append(f"score '{name}': {missing} patients without a value are not scored by it")

    cox: dict[str, CoxLearner] = {}
    for name, cspec in cfg.cox_models.items():
        covs = [c for c in cspec.covariates if c not in empty] if cspec.covariates else list(X_all.columns)
        undeclared = [c for c in covs if c not in X_all.columns]
        if undeclared:
            raise ValueError(f"Cox model '{name}': covariates {undeclared} are not declared in the cohort")
        if not covs:
            notes.append(f"Cox model '{name}' has no covariates: skipped")
            continue
        cox[name] = CoxLearner(cspec, covs, X_all, t, e, inner_folds=cfg.cv.inner_folds)
    fusions = cfg.fusions
    if fusions is None:
        first = next((s for s in ("clip", "bclc", "okuda", "hap", "albi", "child_pugh") if s in usable), None)
        fusions = [(first, "clinical_cox")] if first and "clinical_cox" in cox else []
    fusions = list(fusions) + list(extra_fusions or [])
    fusions = [(f[0], f[1], f[2] if len(f) > 2 else f"{f[0]}+{f[1]}") for f in fusions]

    res = cross_validate(task, cfg.cv, learners={**cox, **learners},
                         fixed_scores={name: scores[name].to_numpy(float) for name in usable}, fusions=fusions,
                         progress=progress)
    full_models = {name: c.model(cfg.cv.seed).fit(X_all[c.covariates], t, e) for name, c in cox.items()}
    models = set(res.predictions["model"])
    return BaselinesResult(res.predictions, res.folds, task.outcomes, horizons, task.grid,
                           {k: sources.get(k, "") for k in usable}, full_models, X_all, res.cutoffs,
                           notes + res.notes, absent_scores=absent,
                           reference=cfg.reference if cfg.reference in models else None)


def _response_baselines(cohort: Cohort, cfg: BaselinesConfig, *, learners: dict[str, Learner],
                        extra_scores: pd.DataFrame | None, extra_fusions: list[Fusion] | None,
                        progress) -> BaselinesResult:
    """The response endpoint (PD = 1 vs disease control): the logistic models and the given
    learners and fixed scores. The cohort's own scores are not used: mRECIST is the label itself,
    and the others are evaluated against survival."""
    task = ResponseTask.of(cohort)
    ids, y = task.ids, task.labels
    column = cohort.spec.response
    notes = check_cv_size(len(ids), int(y.sum()), cfg.cv, what="endpoint 'response'", file=cohort.spec.clinical,
                          column=column, classification=True)
    if cfg.fusions or extra_fusions:
        raise ValueError("fusions are defined for survival endpoints (a bivariate Cox model); the response "
                         "endpoint has none")
    X_all = cohort.covariates().loc[ids]
    empty = [c for c in cohort.empty_covariates() if c in X_all.columns]
    if empty:
        X_all = X_all.drop(columns=empty)
        notes.append(f"covariate(s) {', '.join(empty)} have no value for any patient: left out of the clinical "
                     "models")
    own: dict[str, Learner] = {}
    for name, lspec in cfg.logistic_models.items():
        covs = ([c for c in lspec.covariates if c not in empty] if lspec.covariates is not None
                else list(X_all.columns))
        absent = [c for c in covs if c not in X_all.columns]
        if absent:
            raise ValueError(f"logistic model '{name}': covariates {absent} are not declared in the cohort")
        if covs:
            own[name] = LogisticLearner(X_all[covs], y)
        else:
            notes.append(f"logistic model '{name}' has no covariates: skipped")
    fixed = {}
    if extra_scores is not None:
        frame = extra_scores.copy()
        frame.index = frame.index.astype(str)
        fixed = {str(c): frame[c].reindex(ids).astype(float).to_numpy() for c in frame.columns}
    res = cross_validate(task, cfg.cv, learners={**own, **learners}, fixed_scores=fixed, progress=progress)
    models = set(res.predictions["model"])
    reference = cfg.reference if cfg.reference in models else next((m for m in own if m in models), None)
    return BaselinesResult(res.predictions, res.folds, task.outcomes, [], [], {c: "given" for c in fixed}, {},
                           X_all, res.cutoffs, notes + res.notes, task="response", reference=reference)


