"""``hccprog train``: cross-validate a deep model beside the clinical baselines, fuse it with the
clinical Cox score (RadCLN), refit it on every patient for ``predict``, and write the run folder.

Data flow: cohort -> preprocessed cache -> model per fold -> out-of-fold predictions -> metrics ->
report. Finished folds are kept in ``<out>.partial/`` until the run folder is written, so an
interrupted ``train`` with the same configuration resumes at the fold it stopped in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hccprog import __version__
from hccprog.cohort.model import Cohort
from hccprog.errors import InputError, OutputExistsError
from hccprog.evaluation.classification import os_severity_labels
from hccprog.evaluation.groups import assign_groups, learn_cutoffs
from hccprog.evaluation.thresholds import youden_threshold
from hccprog.experiment.baselines import BaselinesConfig, LogisticSpec, run_baselines
from hccprog.experiment.engine import ResponseTask
from hccprog.experiment.runfolder import write_run_files
from hccprog.fills import fill_notes
from hccprog.models.registry import get_model
from hccprog.preprocessing.cache import preprocess_cohort
from hccprog.reports.nomogram import covariate_info, fused_nomogram
from hccprog.reports.nomogram import draw as draw_nomogram
from hccprog.reports.report import evaluate_run
from hccprog.runs import save_figure, staged_run, write_csv, write_json, write_unscored
from hccprog.survival.breslow import BreslowSurvival
from hccprog.survival.cox import BivariateCoxFusion
from hccprog.survival.score_cox import ScoreCoxModel
from hccprog.trained import write_trained_model
from hccprog.training.clinical import clinical_frame
from hccprog.training.config import TrainRunConfig
from hccprog.training.features import FeatureLearner, prepare_features, selection_table
from hccprog.training.learners import DeepLearner, Progress
from hccprog.training.objectives import (
    CoxProgressionObjective,
    RiskClassObjective,
)
from hccprog.training.score_learner import CachedLearner, ScoreCoxLearner

log = logging.getLogger("hccprog")


def imagenet_warning(cfg: TrainRunConfig) -> str | None:
    """A ``paper`` run of a model whose paper started from ImageNet weights, given none: the warning
    (logged, and returned; None when there is nothing to say)."""
    spec = get_model(cfg.model)
    if cfg.preset != "paper" or not spec.paper_imagenet:
        return None
    net = cfg.network_config()
    if getattr(net, "encoder_weights", None) or getattr(net, "pretrained", False):
        return None
    text = (f"{cfg.model} --preset paper: the paper started the encoder from ImageNet weights ({spec.paper_imagenet}); "
            "this run starts from a random initialisation. Give network.encoder_weights: PATH (torchvision, timm or "
            "efficientnet-pytorch ImageNet weights; nothing is downloaded) in a --config file")
    log.warning(text)
    return text


def class_labels_from_column(cohort: Cohort, ids: list[str], column: str, k: int) -> np.ndarray:
    """Risk classes of ``ids`` from a column of the clinical table: 0 .. k-1, -1 where blank.
    Any other value is an error naming the file, row and column."""
    table = cohort.table
    if column not in table.columns:
        raise ValueError(f"{cohort.spec.clinical}: no column '{column}' for the risk classes "
                         f"(columns: {', '.join(map(str, table.columns))})")
    rows = {pid: i for i, pid in enumerate(table.index)}
    out = np.full(len(ids), -1, int)
    for j, pid in enumerate(ids):
        raw = table.at[pid, column]
        text = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw).strip()
        if text == "" or text.upper() in ("NA", "NAN"):
            continue
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value.is_integer() and 0 <= value < k):
            raise ValueError(f"{cohort.spec.clinical}, row {rows[pid] + 2}, column '{column}': '{text}' is not a "
                             f"risk class 0..{k - 1} (or blank for unknown)")
        out[j] = int(value)
    return out


_SEVERE = {"1": 1, "1.0": 1, "severe": 1, "high": 1, "yes": 1, "true": 1,
           "0": 0, "0.0": 0, "mild": 0, "milder": 0, "low": 0, "no": 0, "false": 0}


def severity_from_column(cohort: Cohort, ids: list[str], column: str) -> np.ndarray:
    """The expert imaging severity read of ``ids`` (Yao et al. 2025, Appendix 5) from a column of the
    clinical table: 1 (or severe / high / yes) or 0 (mild / low / no); NaN where blank. Any other
    value is an error naming the file, row and column."""
    table = cohort.table
    if column not in table.columns:
        raise InputError(f"{cohort.spec.clinical}: no column '{column}' with the expert imaging severity read that "
                         "the os-severity risk classes (Yao et al. 2025, Appendix 5) split each survival group by",
                         hint="add the column (1 = severe imaging features, 0 = milder, blank = unknown), name "
                              "yours with objective_params.severity_column, or use the OS-only rule: "
                              "objective_params: {class_rule: os-edges}")
    rows = {pid: i for i, pid in enumerate(table.index)}
    out = np.full(len(ids), np.nan)
    for j, pid in enumerate(ids):
        raw = table.at[pid, column]
        text = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw).strip().lower()
        if text in ("", "na", "nan"):
            continue
        if text not in _SEVERE:
            raise InputError(f"{cohort.spec.clinical}, row {rows[pid] + 2}, column '{column}': '{raw}' is not a "
                             "severity read (1 / severe or 0 / mild, blank for unknown)")
        out[j] = _SEVERE[text]
    return out


def risk_class_targets(cohort: Cohort, ids: list[str], t: np.ndarray, e: np.ndarray, objective: RiskClassObjective,
                       params: dict) -> tuple[np.ndarray, bool]:
    """The risk class of each of ``ids`` (-1 unknown) and whether it came from the clinical table
    (``class_column``, or the severity read of the ``os-severity`` rule) rather than from the time to
    event alone."""
    column = params.get("class_column")
    if column:
        return class_labels_from_column(cohort, ids, column, objective.outputs), True
    if objective.rule == "os-severity":
        severity = severity_from_column(cohort, ids, params["severity_column"])
        return os_severity_labels(t, e, severity, objective.edges[0], worst_first=objective.worst_first), True
    return objective.labels(t, e), False


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _state_key(marker: Path) -> str | None:
    """The key of a resumable state, or None when its marker is missing or damaged."""
    try:
        return json.loads(marker.read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def train_run(cohort: Cohort, cohort_path: Path, cfg: TrainRunConfig, out: Path, *, overwrite: bool = False,
              cache_dir: Path | None = None, extra_scores: pd.DataFrame | None = None,
              progress: Progress | None = None) -> tuple[Path, dict]:
    """Cross-validate ``cfg.model`` beside the clinical baselines of its endpoint on ``cohort`` (one
    engine for survival endpoints and the response); write the run folder ``out``.

    ``extra_scores`` (indexed by patient id) are reported as fixed scores beside the models, e.g.
    the true log-hazard of a synthetic cohort as the oracle."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError("exists; give --overwrite to replace it (an interrupted run resumes without it)",
                                file=out)
    response = cfg.endpoint == "response"
    clin_cfg = cfg.clinical
    if response:
        task = ResponseTask.of(cohort)
        ids, t, e = task.ids, np.ones(len(task.ids)), task.labels
        clin_cfg = cfg.clinical.model_copy(update={"screening": "none"})  # Cox screening needs survival outcomes
    else:
        outcomes = cohort.outcomes(cfg.endpoint, unit=cohort.time_unit)
        ids = list(outcomes.index)
        t = outcomes["time"].to_numpy(float)
        e = outcomes["event"].to_numpy(int)
    spec = get_model(cfg.model)
    imagenet_warning(cfg)
    objective = cfg.objective(cohort.time_unit)
    state_dir = out.parent / f".{out.name}.partial"
    labels: np.ndarray | None = None
    class_column = cfg.objective_params.get("class_column")
    if spec.input == "features":
        features = prepare_features(cohort, cfg.preprocessing, ids, cache_dir=cache_dir, progress=progress)
        skipped, imputed, stats = features.skipped, features.imputed, features.stats
        net_cfg = cfg.network_config()
        task = "response" if response else "classes" if isinstance(objective, RiskClassObjective) else "survival"
        if task == "classes":
            labels, _ = risk_class_targets(cohort, ids, t, e, objective, cfg.objective_params)
        learner = FeatureLearner(spec, net_cfg, features, ids, t, e, task=task, labels=labels,
                                 class_columns=objective.class_columns,
                                 worst_first=getattr(objective, "worst_first", False), progress=progress)
        state_dir.mkdir(parents=True, exist_ok=True)
    else:
        tick = (lambda d, n: progress(f"preprocessing {d}/{n} patients", d, n)) if progress else None
        data = preprocess_cohort(cohort, cfg.preprocessing, cache_dir=cache_dir, ids=ids, progress=tick)
        skipped, imputed, stats = data.skipped, data.imputed, data.stats
        key = _digest({"config": cfg.model_dump(mode="json"), "ids": ids, "data": data.ids,
                       "x": hashlib.sha256(data.x.tobytes()).hexdigest()})
        marker = state_dir / "state.json"
        if state_dir.exists() and _state_key(marker) != key:
            shutil.rmtree(state_dir)  # another configuration or cohort (or a damaged marker): start afresh
        state_dir.mkdir(parents=True, exist_ok=True)
        write_json(marker, {"key": key, "hccprog_version": __version__})
        run_cfg = cfg.model_copy(update={"clinical": clin_cfg})
        clinical = clinical_frame(cohort, ids, clin_cfg) if spec.clinical else None
        if isinstance(objective, RiskClassObjective):
            labels, from_table = risk_class_targets(cohort, ids, t, e, objective, cfg.objective_params)
            if not from_table:
                labels = None  # the loss derives them per batch from time and event
        learner = DeepLearner(run_cfg, data, ids, t, e, state_dir, progress, objective=objective, clinical=clinical,
                              labels=labels)
        net_cfg = learner.net_cfg
    if skipped:
        log.warning("%s cannot use %d of %d patients (scored by the clinical models only, listed in unscored.csv "
                    "and the report): %s", cfg.model, len(skipped), len(ids),
                    "; ".join(f"{p}: {why}" for p, why in list(skipped.items())[:10])
                    + (" ..." if len(skipped) > 10 else ""))
    name = cfg.model
    if response:
        bcfg = BaselinesConfig(endpoint="response", cv=cfg.cv, n_boot=cfg.n_boot, seed=cfg.seed,
                               logistic_models={"clinical_logistic": LogisticSpec(covariates=clin_cfg.covariates)},
                               reference="clinical_logistic")
        fusions = []
    else:
        bcfg = BaselinesConfig(endpoint=cfg.endpoint, cv=cfg.cv, horizons=cfg.horizons, risk_groups=cfg.risk_groups,
                               n_boot=cfg.n_boot, seed=cfg.seed, reference="clinical_cox")
        fusions = [(name, cfg.fuse_with, f"{name}+clinical")] if cfg.fuse_with else []
    learners: dict = {name: learner}
    score_cox = None
    if fusions and cfg.fusion == "multivariable":  # one Cox model of the score and the screened factors
        cached = CachedLearner(learner)
        score_cox = ScoreCoxLearner(cached, clinical_frame(cohort, ids, cfg.clinical), t, e,
                                    screening=cfg.fusion_screening)
        learners = {name: cached, f"{name}+clinical": score_cox}
        fusions = []
    res = run_baselines(cohort, bcfg, learners=learners, extra_scores=extra_scores, extra_fusions=fusions,
                        progress=(lambda label, d, n: progress(label, d, n)) if progress else None)
    saves = isinstance(learner, DeepLearner) or learner.saves_final
    final = (_final_model(learner, res, cfg, t, e, covariate_info(cohort),
                          factors=score_cox.X if score_cox is not None else None)
             if cfg.final_model and saves else None)
    with staged_run(out, overwrite=overwrite) as tmp:
        what = "response (PD vs disease control)" if response else cfg.endpoint
        extra = {
            "command": "train",
            "title": f"{name} and clinical baselines: {cohort.name}, {what}",
            "model": name,
            "train": cfg.model_dump(mode="json"),
            "network_resolved": net_cfg.model_dump(mode="json"),
            "preprocessing_stats": stats,
        }
        if response:  # the run itself never screens by Cox
            extra["clinical_resolved"] = clin_cfg.model_dump(mode="json")
        if isinstance(objective, RiskClassObjective):
            params = cfg.objective_params
            severity = params["class_rule"] == "os-severity"
            extra["risk_classes"] = {"model": name, "edges": objective.edges,
                                     "edges_months": ([params["os_threshold_months"]] if severity
                                                      else params["class_edges_months"]),
                                     "rule": params["class_rule"], "worst_first": objective.worst_first,
                                     "severity_column": params["severity_column"] if severity else None,
                                     "labels": f"column {class_column}" if class_column else "rule"}
            if labels is not None:  # classes read from the table travel with the outcomes (metrics read them)
                res.outcomes = res.outcomes.assign(risk_class=pd.Series(labels, index=ids).reindex(res.outcomes.index))
        if isinstance(objective, CoxProgressionObjective):
            extra["progression"] = {"model": name, "horizon": objective.horizon,
                                    "horizon_months": cfg.objective_params["progression_months"]}
        notes = [f"{name} could not use patient {p}: {why}" for p, why in skipped.items()]
        write_unscored(tmp, name, skipped)
        notes += fill_notes(imputed)
        if cfg.final_model and not saves:
            notes.append(f"{name}: no final model is saved (its learner cannot be written as plain JSON, and "
                         "predict loads nothing else); the cross-validated predictions are complete")
        extra["notes"] = notes
        if score_cox is not None:
            extra["notes"].append(f"{name}+clinical: one Cox model of the {name} score and the clinical factors "
                                  f"({'screened by univariable then multivariable Cox on each training part' if cfg.fusion_screening == 'cox' else 'all of them'}; "  # noqa: E501
                                  "training/fusion_selection.json lists them per fold)")
        write_run_files(tmp, cohort, Path(cohort_path), bcfg, res, extra=extra)
        if score_cox is not None:
            write_json(tmp / "training" / "fusion_selection.json", score_cox.selections)
        train_dir = tmp / "training"
        if isinstance(learner, FeatureLearner):
            write_csv(train_dir / "feature_selection.csv", selection_table(learner.steps), index=False)
            write_json(train_dir / "selected_features.json", {k: v["selected"] for k, v in learner.steps.items()})
        for fold, hist in learner.histories.items():
            write_json(train_dir / f"{fold}.json", {"history": hist})
            src = state_dir / f"{fold}.pt"
            if src.exists():
                (tmp / "models").mkdir(exist_ok=True)
                shutil.copy2(src, tmp / "models" / f"{name}_{fold}.pt")
        if final is not None:
            (tmp / "models").mkdir(exist_ok=True)
            if "state_dict" in final:  # a network's weights
                torch.save(final.pop("state_dict"), tmp / "models" / f"{name}.pt")
            write_trained_model(tmp / "models" / f"{name}.json", final)
            if final.get("fusion") and final["fusion"].get("kind", "bivariate") == "bivariate":
                nomo = fused_nomogram(final, unit=cohort.time_unit, endpoint=cfg.endpoint)
                save_figure(draw_nomogram(nomo, f"{name}+clinical nomogram (fitted on all patients)", res.horizons),
                            tmp / "figures" / f"nomogram_{name}+clinical.png")
        metrics = evaluate_run(tmp)
    shutil.rmtree(state_dir, ignore_errors=True)
    return out / "report.html", metrics


def _final_model(learner: DeepLearner | FeatureLearner, res, cfg: TrainRunConfig, t: np.ndarray,
                 e: np.ndarray, covariates_info: dict, factors: pd.DataFrame | None = None) -> dict:
    """Refit on every patient for ``predict``.

    Survival: the Breslow baseline and risk-group cut-offs are learned on all patients too, and so
    is the fusion with the clinical Cox score (RadCLN: ``<model>+clinical``), from the final
    network's risks and the clinical Cox model refitted on all patients; ``predict`` applies both.
    Response: the Youden cut-off of the refitted model on all patients (the one ``predict`` applies)."""
    idx = np.arange(len(t))
    tr = learner.fit(idx, cfg.seed, "final model (all patients)")
    risk = learner.predict_risk(tr, idx)
    ok = np.isfinite(risk)
    if res.task == "response":
        return learner.description(tr, cfg, task="response", positive_class="PD",
                                   threshold=youden_threshold(e[ok], risk[ok]))
    horizons = res.horizons
    extra = _score_description(risk[ok], t[ok], e[ok], cfg, horizons)
    clinical = res.full_models.get(cfg.fuse_with) if cfg.fuse_with else None
    if factors is not None:
        model = ScoreCoxModel(screening=cfg.fusion_screening).fit(risk[ok], factors.iloc[ok], t[ok], e[ok])
        fused = model.predict_risk(risk[ok], factors.iloc[ok])
        extra["fusion"] = {"name": f"{cfg.model}+clinical", "kind": "multivariable", "score_cox": model.state(),
                           "covariates_info": covariates_info,
                           "hazard_ratios": model.hazard_ratios().reset_index(names="term").to_dict(orient="records"),
                           **_score_description(fused, t[ok], e[ok], cfg, horizons)}
    elif clinical is not None:
        clin_risk = clinical.predict_risk(res.covariates)
        ind = None if learner.fusion_indicator is None else learner.fusion_indicator[ok]
        fus = BivariateCoxFusion().fit(risk[ok], clin_risk[ok], t[ok], e[ok], indicator=ind)
        fused = fus.predict_risk(risk[ok], clin_risk[ok], ind)
        extra["fusion"] = {"name": f"{cfg.model}+clinical", "clinical_model": cfg.fuse_with,
                           "clinical": clinical.state(), "fusion": fus.state(), "locf_indicator": ind is not None,
                           "covariates_info": covariates_info,
                           **_score_description(fused, t[ok], e[ok], cfg, horizons)}
    return learner.description(tr, cfg, horizons=horizons, **extra)


def _score_description(risk: np.ndarray, t: np.ndarray, e: np.ndarray, cfg: TrainRunConfig,
                       horizons: list[float]) -> dict:
    """Breslow baseline and risk-group cut-offs of one risk score, learned on the training patients."""
    base = BreslowSurvival().fit(risk, t, e)
    cut = learn_cutoffs(risk, t, e, method=cfg.risk_groups, horizon=max(horizons))
    return {"risk_groups": {"method": cfg.risk_groups, "cutoffs": [float(c) for c in cut]},
            "risk_range": [float(v) for v in np.quantile(risk, [0.01, 0.99])],
            "breslow": base.state(), "train_groups": np.bincount(assign_groups(risk, cut)).tolist()}
