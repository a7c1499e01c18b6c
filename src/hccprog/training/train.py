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
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from hccprog import __version__
from hccprog.cohort.model import Cohort
from hccprog.errors import OutputExistsError
from hccprog.evaluation.groups import assign_groups, learn_cutoffs
from hccprog.evaluation.thresholds import youden_threshold
from hccprog.experiment.baselines import BaselinesConfig, LogisticSpec, run_baselines
from hccprog.experiment.engine import FoldPrediction, ResponseTask
from hccprog.experiment.runfolder import write_run_files
from hccprog.fills import fill_notes
from hccprog.models.registry import DEFAULT_MODEL, get_model
from hccprog.preprocessing.cache import PreprocessedCohort, preprocess_cohort
from hccprog.preprocessing.features import FeatureConfig
from hccprog.preprocessing.slices import SliceConfig
from hccprog.preprocessing.volumes import VolumeConfig
from hccprog.reports.nomogram import covariate_info, fused_nomogram
from hccprog.reports.nomogram import draw as draw_nomogram
from hccprog.reports.report import evaluate_run
from hccprog.runs import save_figure, staged_run, write_csv, write_json, write_unscored
from hccprog.survival.breslow import BreslowSurvival
from hccprog.survival.cox import BivariateCoxFusion
from hccprog.survival.cv import CVConfig, Split
from hccprog.trained import write_trained_model
from hccprog.training.clinical import ClinicalEncoder, ClinicalInputConfig, clinical_frame
from hccprog.training.deep import SurvivalNetTrainer, TrainConfig
from hccprog.training.features import FeatureLearner, prepare_features, selection_table
from hccprog.training.objectives import (
    PARAMETER_KINDS,
    RESPONSE_OBJECTIVE,
    CoxObjective,
    CoxProgressionObjective,
    ObjectiveKind,
    RiskClassObjective,
    objective_kind,
)

Progress = Callable[[str, float, float], None]


def _preprocessing_kind(value) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if kind in ("volume", "features") else "slices"


#: Representative 2D slices (``SliceConfig``), masked 3D volumes (``VolumeConfig``, ``kind: volume``)
#: or radiomics features (``FeatureConfig``, ``kind: features``), as the model's ``input`` says.
Preprocessing = Annotated[Annotated[SliceConfig, Tag("slices")] | Annotated[VolumeConfig, Tag("volume")]
                          | Annotated[FeatureConfig, Tag("features")], Discriminator(_preprocessing_kind)]
INPUT_CONFIGS = {"slices": (SliceConfig, "representative slices"), "volume": (VolumeConfig, "kind: volume"),
                 "features": (FeatureConfig, "kind: features")}


log = logging.getLogger("hccprog")

class TrainRunConfig(BaseModel):
    """Everything ``hccprog train`` does (saved as ``train:`` in the run's config.yaml)."""

    model_config = ConfigDict(extra="forbid")
    model: str = DEFAULT_MODEL
    preset: str = "cpu"
    endpoint: str = "os"
    cv: CVConfig = Field(default_factory=lambda: CVConfig(folds=5, repeats=1, seed=0))
    preprocessing: Preprocessing = Field(default_factory=SliceConfig)
    network: dict = Field(default_factory=dict)  # validated by the model's own config class
    training: TrainConfig = Field(default_factory=TrainConfig)
    fuse_with: str | None = "clinical_cox"  # the fused model is named '<model>+clinical'
    # the fusion also gets a LOCF indicator (follow-up carried forward) and its product with the
    # image score, for models that read the follow-up (see survival.cox.BivariateCoxFusion)
    fusion_locf: bool = False
    final_model: bool = True  # refit on every patient (used by `predict`)
    horizons: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = Field(None, min_length=1)
    risk_groups: str = "median"
    n_boot: int = Field(1000, ge=0)
    seed: int = 0
    # models with clinical inputs (ModelSpec.clinical): which columns, screened inside each training fold
    clinical: ClinicalInputConfig = Field(default_factory=ClinicalInputConfig)
    # the parameters of the model's objective (training.objectives.OBJECTIVES), defaults filled in
    objective_params: dict = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _objective_parameters(cls, data):
        """Parameters of the model's objective, validated by its own class; the top-level keys that
        configurations written before the objective registry held are moved in (and those of other
        objectives, which such files list with their defaults, are dropped)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        kind = _objective_of(str(data.get("model") or DEFAULT_MODEL), str(data.get("endpoint") or "os"))
        params = dict(data.get("objective_params") or {})
        for key in list(data):
            if key in PARAMETER_KINDS:
                value = data.pop(key)
                if PARAMETER_KINDS[key] == kind.name and value is not None:
                    params.setdefault(key, value)
        data["objective_params"] = kind.params.model_validate(params).model_dump()
        return data

    @model_validator(mode="after")
    def _input_matches_model(self) -> TrainRunConfig:
        spec = get_model(self.model)
        wanted, what = INPUT_CONFIGS[spec.input]
        if not isinstance(self.preprocessing, wanted):
            raise ValueError(f"model '{self.model}' needs {spec.input} preprocessing ({what}); "
                             f"got {type(self.preprocessing).__name__}")
        if self.training.slices_per_step and not spec.pools_slices:
            raise ValueError(f"training.slices_per_step: model '{self.model}' does not average over its slices "
                             "(a slice sequence or a volume); leave it unset")
        spec.check_input(self.network_config(), self.preprocessing)  # the network's size rules, before any work
        if self.endpoint == "response" and self.clinical.include_response:
            raise ValueError("clinical.include_response: the response is the label of the response endpoint; it "
                             "cannot also be an input")
        return self

    @property
    def objective_kind(self) -> ObjectiveKind:
        """The model's own objective; every model on the response endpoint: the logistic one."""
        return _objective_of(self.model, self.endpoint)

    def typed_objective_params(self) -> BaseModel:
        return self.objective_kind.params.model_validate(self.objective_params)

    def network_config(self) -> BaseModel:
        spec = get_model(self.model)
        # what the objective sizes (e.g. the number of risk classes), where the model's config has it
        extra = {k: v for k, v in self.objective_kind.network(self.typed_objective_params()).items()
                 if k in spec.config.model_fields}
        return spec.config(**{**spec.defaults, **self.network, **extra})

    def objective(self, time_unit: str):
        """The training objective of the model, with times in the cohort's unit."""
        return self.objective_kind.build(self.typed_objective_params(), time_unit, self.network_config())


def _objective_of(model: str, endpoint: str) -> ObjectiveKind:
    return objective_kind(RESPONSE_OBJECTIVE if endpoint == "response" else get_model(model).objective)


def resolve_config(preset: str = "cpu", **overrides) -> TrainRunConfig:
    """The model's named configuration (its spec's ``presets``) with keyword overrides (nested dicts
    merge into the preset's)."""
    spec = get_model(str(overrides.get("model") or DEFAULT_MODEL))
    if preset not in spec.presets:
        raise ValueError(f"unknown preset '{preset}'; known: {', '.join(spec.presets)}")
    base = json.loads(json.dumps(spec.presets[preset]))
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        elif value is not None:
            base[key] = value
    base.setdefault("model", spec.name)
    return TrainRunConfig(preset=preset, **base)


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


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class DeepLearner:
    """Trains the configured network on the training part of a split and scores both parts.

    Models with clinical inputs get them through a ``ClinicalEncoder`` fitted (imputation,
    scaling, optional Cox screening) on the same training patients as the network."""

    def __init__(self, cfg: TrainRunConfig, data: PreprocessedCohort, ids: list[str], time_: np.ndarray,
                 event: np.ndarray, state_dir: Path, progress: Progress | None = None, *,
                 objective=None, clinical: pd.DataFrame | None = None, labels: np.ndarray | None = None) -> None:
        self.cfg = cfg
        self.data = data
        self.pos = np.array([data.ids.index(p) if p in data.ids else -1 for p in ids])
        self.t = time_
        self.e = event
        self.state_dir = state_dir
        self.progress = progress
        self.histories: dict[str, list[dict]] = {}
        self.fold_seconds: dict[str, float] = {}
        self.spec = spec = get_model(cfg.model)
        self.net_cfg = cfg.network_config()
        self.objective = objective or CoxObjective()
        self.clinical = clinical if spec.clinical else None  # rows in the order of ``ids``
        geo = data.geometry()
        self.build_for = (lambda p: spec.build(self.net_cfg, **geo, clinical_features=p)) if spec.clinical else \
            (lambda p: spec.build(self.net_cfg, **geo))
        self.labels = labels  # user-given class labels in the order of ``ids`` (-1 unknown), or None
        self.imputed = data.imputed  # patient -> what preprocessing filled in (the engine writes it)
        # 1 where a follow-up was carried forward (LOCF): the fusion's indicator (the engine's)
        self.fusion_indicator = None
        reads_followups = data.observed.shape[1] > 1 and spec.reads_followups(self.net_cfg)
        if cfg.fusion_locf and reads_followups:
            locf = ~data.observed.all(axis=1)
            self.fusion_indicator = np.where(self.pos >= 0, locf[np.maximum(self.pos, 0)], False).astype(float)

    def description(self, tr: SurvivalNetTrainer, cfg: TrainRunConfig, **extra) -> dict:
        """What ``predict`` needs to rebuild the final network (see ``model_description``)."""
        return model_description(self, tr, cfg, **extra)

    def fit(self, idx: np.ndarray, seed: int, label: str) -> SurvivalNetTrainer:
        """Train on cohort positions ``idx`` that have tensors."""
        ok = idx[self.pos[idx] >= 0]

        def tick(epoch, total, rec):
            if self.progress:
                msg = f"{label}: epoch {epoch}/{total}, loss {rec['train_loss']:.3f}"
                if "val_c" in rec:
                    msg += f", validation C {rec['val_c']:.3f}"
                if "val_auc" in rec:
                    msg += f", validation AUC {rec['val_auc']:.3f}"
                self.progress(msg, epoch, total)

        encoder, clin = None, None
        if self.clinical is not None:
            encoder = ClinicalEncoder(self.cfg.clinical).fit(self.clinical.iloc[ok], self.t[ok], self.e[ok])
            clin = encoder.transform(self.clinical.iloc[ok])
        n_clin = encoder.n_features if encoder is not None else 0
        trainer = SurvivalNetTrainer(lambda: self.build_for(n_clin),
                                     self.cfg.training.model_copy(update={"seed": seed}), self.objective)
        trainer.clinical_encoder_ = encoder
        labels = None if self.labels is None else self.labels[ok]
        return trainer.fit(self.data.x[self.pos[ok]], self.t[ok], self.e[ok], clin=clin, labels=labels,
                           progress=tick)

    def _clin(self, tr: SurvivalNetTrainer, idx: np.ndarray) -> np.ndarray | None:
        enc = getattr(tr, "clinical_encoder_", None)
        return None if enc is None else enc.transform(self.clinical.iloc[idx])

    def outputs(self, tr: SurvivalNetTrainer, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of ``idx`` with tensors, raw network outputs of those)."""
        ok = self.pos[idx] >= 0
        if not ok.any():
            return ok, np.zeros((0, self.objective.outputs))
        clin = self._clin(tr, idx[ok])
        return ok, tr.outputs(self.data.x[self.pos[idx[ok]]], clin)

    def risk(self, tr: SurvivalNetTrainer, idx: np.ndarray) -> np.ndarray:
        out = np.full(len(idx), np.nan)
        ok, o = self.outputs(tr, idx)
        if ok.any():
            out[ok] = self.objective.risk(o)
        return out

    def _columns(self, probs: np.ndarray | None) -> dict[str, np.ndarray]:
        """``p_<class>`` columns of the test part, for objectives that classify."""
        if probs is None or not self.objective.class_columns:
            return {}
        return {f"p_{c}": probs[:, k] for k, c in enumerate(self.objective.class_columns)}

    def __call__(self, s: Split, grid: list[float]) -> FoldPrediction:
        name = f"fold-{s.repeat}-{s.fold}"
        saved = self.state_dir / f"{name}.npz"
        if saved.exists():
            try:
                with np.load(saved, allow_pickle=False) as z:
                    surv = z["test_surv"] if z["test_surv"].ndim == 2 else None
                    pred = FoldPrediction(z["train_risk"], z["test_risk"], surv,
                                          self._columns(z["test_probs"] if "test_probs" in z.files else None))
                history = json.loads((self.state_dir / f"{name}.json").read_text())["history"]
                if len(pred.train_risk) != len(s.train) or len(pred.test_risk) != len(s.test):
                    raise ValueError("saved for another split")
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, TypeError) as exc:
                log.warning("%s: the saved state of %s is damaged (%s: %s); discarded, the fold is trained again",
                            self.state_dir, name, type(exc).__name__, exc)
                for suffix in (".npz", ".json", ".pt"):
                    (self.state_dir / f"{name}{suffix}").unlink(missing_ok=True)
            else:
                self.histories[name] = history
                if self.progress:
                    self.progress(f"{name}: resumed from {saved.name}", 1, 1)
                return pred
        t0 = time.perf_counter()
        tr = self.fit(s.train, s.seed * 1000 + s.fold, f"repeat {s.repeat + 1}, fold {s.fold + 1}")
        train_risk = self.risk(tr, s.train)
        okt, o_test = self.outputs(tr, s.test)  # one forward pass of the test part: risk and survival
        test_risk = np.full(len(s.test), np.nan)
        if okt.any():
            test_risk[okt] = self.objective.risk(o_test)
        surv = None
        if grid:  # a survival task: the objective's own survival, or Breslow's on the training risks
            surv = np.full((len(s.test), len(grid)), np.nan)
            own = self.objective.survival(o_test, grid) if okt.any() else None
            if own is not None:
                surv[okt] = own
            else:
                ok = np.isfinite(train_risk)
                base = BreslowSurvival().fit(train_risk[ok], self.t[s.train][ok], self.e[s.train][ok])
                surv[okt] = base.predict(test_risk[okt], grid)
        self.fold_seconds[name] = time.perf_counter() - t0
        self.histories[name] = tr.history_
        tr.save(self.state_dir / f"{name}.pt")
        write_json(self.state_dir / f"{name}.json", {"history": tr.history_, "best_epoch": tr.best_epoch_,
                                                     "seconds": self.fold_seconds[name]})
        extra, probs = {}, None
        if self.objective.class_columns:
            probs = np.full((len(s.test), len(self.objective.class_columns)), np.nan)
            if okt.any():
                probs[okt] = self.objective.probabilities(o_test)
            extra["test_probs"] = probs
        tmp = self.state_dir / f".{name}.tmp.npz"
        np.savez(tmp, train_risk=train_risk, test_risk=test_risk,
                 test_surv=surv if surv is not None else np.zeros(0), **extra)
        tmp.replace(saved)
        return FoldPrediction(train_risk, test_risk, surv, self._columns(probs))


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
    objective = cfg.objective(cohort.time_unit)
    state_dir = out.parent / f".{out.name}.partial"
    labels = None
    class_column = cfg.objective_params.get("class_column")
    if spec.input == "features":
        features = prepare_features(cohort, cfg.preprocessing, ids, cache_dir=cache_dir, progress=progress)
        skipped, imputed, stats = features.skipped, features.imputed, features.stats
        net_cfg = cfg.network_config()
        task = "response" if response else "classes" if isinstance(objective, RiskClassObjective) else "survival"
        if task == "classes":
            labels = (class_labels_from_column(cohort, ids, class_column, objective.outputs) if class_column
                      else objective.labels(t, e))
        learner = FeatureLearner(spec, net_cfg, features, ids, t, e, task=task, labels=labels,
                                 class_columns=objective.class_columns, progress=progress)
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
        if class_column and isinstance(objective, RiskClassObjective):
            labels = class_labels_from_column(cohort, ids, class_column, objective.outputs)
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
    res = run_baselines(cohort, bcfg, learners={name: learner}, extra_scores=extra_scores, extra_fusions=fusions,
                        progress=(lambda label, d, n: progress(label, d, n)) if progress else None)
    saves = isinstance(learner, DeepLearner) or learner.saves_final
    final = _final_model(learner, res, cfg, t, e, covariate_info(cohort)) if cfg.final_model and saves else None
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
            extra["risk_classes"] = {"model": name, "edges": objective.edges,
                                     "edges_months": cfg.objective_params["class_edges_months"],
                                     "labels": f"column {class_column}" if class_column else "rule"}
            if class_column:  # the user's classes travel with the outcomes (metrics read them there)
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
        write_run_files(tmp, cohort, Path(cohort_path), bcfg, res, extra=extra)
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
            if final.get("fusion"):
                nomo = fused_nomogram(final, unit=cohort.time_unit, endpoint=cfg.endpoint)
                save_figure(draw_nomogram(nomo, f"{name}+clinical nomogram (fitted on all patients)", res.horizons),
                            tmp / "figures" / f"nomogram_{name}+clinical.png")
        metrics = evaluate_run(tmp)
    shutil.rmtree(state_dir, ignore_errors=True)
    return out / "report.html", metrics


def _final_model(learner: DeepLearner | FeatureLearner, res, cfg: TrainRunConfig, t: np.ndarray,
                 e: np.ndarray, covariates_info: dict) -> dict:
    """Refit on every patient for ``predict``.

    Survival: the Breslow baseline and risk-group cut-offs are learned on all patients too, and so
    is the fusion with the clinical Cox score (RadCLN: ``<model>+clinical``), from the final
    network's risks and the clinical Cox model refitted on all patients; ``predict`` applies both.
    Response: the Youden cut-off of the refitted model on all patients (the one ``predict`` applies)."""
    idx = np.arange(len(t))
    tr = learner.fit(idx, cfg.seed, "final model (all patients)")
    risk = learner.risk(tr, idx)
    ok = np.isfinite(risk)
    if res.task == "response":
        return learner.description(tr, cfg, task="response", positive_class="PD",
                                   threshold=youden_threshold(e[ok], risk[ok]))
    horizons = res.horizons
    extra = _score_description(risk[ok], t[ok], e[ok], cfg, horizons)
    clinical = res.full_models.get(cfg.fuse_with) if cfg.fuse_with else None
    if clinical is not None:
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


def model_description(learner: DeepLearner, tr: SurvivalNetTrainer, cfg: TrainRunConfig, **extra) -> dict:
    """What ``predict`` needs to rebuild a final model (``models/<model>.json``; ``state_dict``
    goes to ``models/<model>.pt``), plus the task's own ``extra`` entries."""
    return {
        "model": cfg.model,
        "network": learner.net_cfg.model_dump(mode="json"),
        "preprocessing": cfg.preprocessing.model_dump(mode="json"),
        "channels": learner.data.channels,
        "streams": learner.data.geometry()["streams"],
        "best_epoch": tr.best_epoch_,
        "objective": learner.objective.state(),
        "clinical": tr.clinical_encoder_.state() if tr.clinical_encoder_ is not None else None,
        **extra,
        "state_dict": tr.state_dict(),
    }
