"""``hccprog predict``: apply a trained run's final model to new patients.

Reads ``models/<model>.pt`` (weights, loaded with ``weights_only=True``) and ``models/<model>.json``
(architecture, preprocessing, Breslow baseline, risk-group cut-offs learned on the training
cohort, and the fusion with the clinical Cox score: ``<model>+clinical``), preprocesses the new
cohort the same way and writes ``predictions.csv`` with a row per patient for the model and for
its fusion (fold -1: the models were not fitted on these patients). When the new cohort has the
run's endpoint, outcomes, metrics and a report are written too (external validation).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hccprog import __version__
from hccprog.cohort.model import Cohort
from hccprog.cohort.spec import unit_factor
from hccprog.errors import InputError, RunFolderError
from hccprog.evaluation.classification import response_metrics
from hccprog.evaluation.groups import assign_groups
from hccprog.experiment.engine import response_labels, surv_column
from hccprog.fills import covariate_fills, fill_notes, join_fills, split_fills, unseen_level_fills
from hccprog.models.registry import get_model
from hccprog.preprocessing.cache import preprocess_cohort, preprocessing_config
from hccprog.preprocessing.features import FeatureConfig, extract_features, feature_matrix
from hccprog.reports.report import evaluate_run
from hccprog.runs import staged_run, write_csv, write_json, write_unscored, write_yaml
from hccprog.safe_yaml import load_yaml
from hccprog.survival.breslow import BreslowSurvival
from hccprog.survival.cox import BivariateCoxFusion, CoxScore
from hccprog.survival.score_cox import SCORE, ScoreCoxModel
from hccprog.trained import read_trained_model
from hccprog.training.clinical import ClinicalEncoder, clinical_frame, response_codes
from hccprog.training.objectives import objective_from_state


def _damaged(path: Path, why: str) -> RunFolderError:
    return RunFolderError(f"this run folder is damaged or was not written by hccprog: {why}", file=path,
                          hint="train the model again (hccprog train), or point at an intact copy of the run folder")


def run_config(run: Path) -> dict:
    """A run folder's config.yaml, checked (a mapping with a ``command``)."""
    path = Path(run) / "config.yaml"
    if not path.is_file():
        raise RunFolderError(f"{path} is missing: not a run folder")
    try:
        conf = load_yaml(path)
    except InputError as exc:
        raise _damaged(path, exc.message) from None
    if not isinstance(conf, dict) or "command" not in conf:
        raise _damaged(path, "it is not a run's configuration (no `command:`)")
    return conf


def read_model_json(path: Path) -> dict:
    """A model description (``models/<model>.json``), checked as a :class:`~hccprog.trained.TrainedModel`,
    as the mapping the readers index."""
    return read_trained_model(path).as_dict()


def load_weights(path: Path) -> dict:
    """A checkpoint, loaded with ``weights_only=True``: anything else (a pickle that would run code,
    a truncated file, not a state dict) is a :class:`RunFolderError` naming the file."""
    if not path.is_file():
        raise RunFolderError(f"{path} is missing: the run was trained without a final model")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise _damaged(path, "the checkpoint holds objects other than tensors, which hccprog never writes; it "
                             "was not loaded") from None
    except Exception as exc:  # truncated zip, not a torch file, ...
        raise _damaged(path, f"the checkpoint cannot be read ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _damaged(path, "the checkpoint is not a dictionary of tensors")
    return state


def confined_network(network, run: Path, desc_path: Path) -> dict:
    """A model description's network settings, with any file it names (``encoder_weights``) resolved inside
    the run folder: a path that leads outside it is refused (a run folder names no file outside itself).
    The checkpoint holds every weight, so the encoder file is not read again when the model is loaded."""
    if not isinstance(network, dict):
        raise _damaged(desc_path, "the model description's `network` is not a mapping")
    network = dict(network)
    named = network.get("encoder_weights")
    if named:
        root = Path(run).resolve()
        target = (Path(run) / "models" / str(named)).resolve() if not Path(str(named)).is_absolute() \
            else Path(str(named)).resolve()
        if root != target and root not in target.parents:
            raise _damaged(desc_path, f"`network.encoder_weights` names {named!r}, a file outside the run folder; "
                                      "a run folder refers to no file outside itself, so it was not read")
        network["encoder_weights"] = None  # the weights are in the checkpoint
    return network


def load_trained(run: Path) -> tuple[dict, torch.nn.Module]:
    """The final model of a ``train`` run: (its JSON description, the network in eval mode).
    A damaged run folder raises :class:`RunFolderError` naming the file."""
    run = Path(run)
    conf = run_config(run)
    if conf.get("command") != "train":
        raise RunFolderError(f"{run}: not a `train` run folder (config.yaml command is {conf.get('command')!r})")
    name = str(conf.get("model"))
    desc_path, weights = run / "models" / f"{name}.json", run / "models" / f"{name}.pt"
    if not desc_path.exists():
        raise RunFolderError(f"{desc_path} is missing: the run was trained without a final model")
    trained = read_trained_model(desc_path)  # every field the task needs, typed, or an error naming it
    desc = trained.as_dict()
    if trained.uses_features:  # a pipeline on image features: plain JSON, no weights
        return desc, None
    if not weights.exists():
        raise RunFolderError(f"{weights} is missing: the run was trained without a final model")
    state = load_weights(weights)
    network = confined_network(desc.get("network"), run, desc_path)
    try:
        spec = get_model(name)
        kwargs = {"clinical_features": len(desc["clinical"]["selected"])} if desc.get("clinical") else {}
        net = spec.build(spec.config(**network), streams=desc["streams"], channels=len(desc["channels"]),
                         **kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        raise _damaged(desc_path, f"the model description is incomplete or altered ({type(exc).__name__}: "
                                  f"{exc})") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise _damaged(weights, f"the weights do not fit the model that {desc_path.name} describes ({first})") from None
    net.eval()
    return desc, net


def match_covariates(covariates: pd.DataFrame, wanted: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """``covariates`` with the columns a model wants found case-insensitively where the exact name is
    absent and exactly one column matches; notes say what was matched and what is ambiguous."""
    notes, renames = [], {}
    lower: dict[str, list[str]] = {}
    for c in covariates.columns:
        lower.setdefault(str(c).lower(), []).append(str(c))
    for name in wanted:
        if name in covariates.columns:
            continue
        hits = lower.get(name.lower(), [])
        if len(hits) == 1:
            renames[hits[0]] = name
            notes.append(f"covariate '{name}' read from the cohort's column '{hits[0]}' (case-insensitive match)")
        elif len(hits) > 1:
            notes.append(f"covariate '{name}': several columns match it case-insensitively ({', '.join(hits)}); "
                         "name one with covariate_aliases")
    return covariates.rename(columns=renames), notes


def predict_cohort(run: Path, cohort: Cohort, *, cache_dir: Path | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   trained: tuple[dict, torch.nn.Module | None] | None = None) -> tuple[pd.DataFrame, dict]:
    """Predictions of the run's final model for every patient of ``cohort`` with images.

    Survival columns are labelled in the cohort's time unit (``surv_<t>``, the run's horizons converted);
    ``imputed`` lists per patient what was filled in; ``stats['notes']`` says whatever could not be
    scored, and why. ``trained``: the run's ``load_trained`` result, where the caller has it already."""
    desc, net = trained or load_trained(run)
    conf = run_config(run)
    factor = unit_factor(conf.get("time_unit") or cohort.time_unit, cohort.time_unit)
    t0 = time.perf_counter()
    objective = objective_from_state(desc.get("objective", {"kind": "cox"}))
    clin = None
    if net is None:
        data, risk = _feature_risk(desc, cohort, cache_dir=cache_dir, progress=progress)
        out = risk[:, None]
    else:
        pre_cfg = preprocessing_config({**desc["preprocessing"], "series": desc["channels"]})
        data = preprocess_cohort(cohort, pre_cfg, cache_dir=cache_dir, progress=progress)
        if desc.get("clinical"):
            enc = ClinicalEncoder.from_state(desc["clinical"])
            clin = torch.as_tensor(enc.transform(clinical_frame(cohort, data.ids, enc.cfg)))
        outs = []
        with torch.no_grad():
            for i in range(0, len(data.ids), 64):
                xb = torch.as_tensor(data.x[i:i + 64].astype(np.float32))
                outs.append((net(xb) if clin is None else net(xb, clin[i:i + 64])).numpy())
        out = np.concatenate(outs).astype(float) if outs else np.zeros((0, 1))
        risk = objective.predict_risk(out)
    stats = {**data.stats, "seconds_total": round(time.perf_counter() - t0, 3),
             "seconds_per_patient": round((time.perf_counter() - t0) / max(1, len(data.ids)), 4),
             "skipped": data.skipped, "notes": [], "imputed": data.imputed}
    own_fills = [join_fills(data.imputed.get(p, [])) for p in data.ids]
    if clin is not None:
        frame_c = clinical_frame(cohort, data.ids, enc.cfg)
        fills = covariate_fills(frame_c, list(enc.state()["columns"]))
        unseen, notes = unseen_level_fills(enc.pre_, frame_c, desc["model"])
        stats["notes"] += notes
        own_fills = [join_fills(data.imputed.get(p, []) + fills.get(p, []) + unseen.get(p, [])) for p in data.ids]
    if desc.get("task") == "response":  # logit of PD; the group at the training cohort's Youden cut-off
        frame = pd.DataFrame({"patient_id": data.ids, "model": desc["model"], "fold": -1, "risk": risk,
                              "risk_group": (risk >= desc["threshold"]).astype(int),
                              "p_PD": 1.0 / (1.0 + np.exp(-risk)), "imputed": own_fills})
        return frame, stats
    horizons = [float(h) for h in desc["horizons"]]  # in the run's time unit
    surv = objective.predict_survival(out, horizons)
    if surv is None:
        surv = BreslowSurvival.from_state(desc["breslow"]).predict_survival(risk, horizons)
    labels = [h * factor for h in horizons]  # ... labelled in the cohort's unit
    frame = _score_frame(desc["model"], data.ids, risk, surv, desc["risk_groups"]["cutoffs"], labels)
    if objective.class_columns:  # classes: p_<class> as the run-outputs spec names them
        for name, col in zip(objective.class_columns, objective.probabilities(out).T, strict=True):
            frame[f"p_{name}"] = col
    frame["imputed"] = own_fills
    if desc.get("fusion"):
        fused, notes = _fused_frame(desc["fusion"], cohort, data, risk, horizons, labels)
        if fused is not None:
            frame = pd.concat([frame, fused], ignore_index=True)
        stats["notes"] += notes
        seconds = time.perf_counter() - t0  # the fusion is part of scoring a patient
        stats.update(seconds_total=round(seconds, 3), seconds_per_patient=round(seconds / max(1, len(data.ids)), 4))
    return frame, stats


@dataclass
class _FeatureInput:
    """The patients a feature-based model scored (what ``predict_cohort`` reads of preprocessed data)."""

    ids: list[str]
    imputed: dict[str, list[str]]
    skipped: dict[str, str]
    stats: dict
    observed: np.ndarray  # (n, 1): no carried-forward time point enters a feature model's fusion


def _feature_risk(desc: dict, cohort: Cohort, *, cache_dir, progress) -> tuple[_FeatureInput, np.ndarray]:
    """Image features of the new patients (as in training), and the saved pipeline's risk."""

    spec = get_model(desc["model"])
    try:
        net_cfg = spec.config(**desc["network"])
        cfg = FeatureConfig(**{**desc["preprocessing"], "series": desc["channels"]})
        pipe = spec.build(net_cfg, task=desc["pipeline"]["task"]).from_state(desc["pipeline"], config=net_cfg)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFolderError(f"the model description is incomplete or altered ({type(exc).__name__}: {exc})",
                             file=f"models/{desc['model']}.json") from None
    features = extract_features(cohort, cfg, cache_dir=cache_dir, progress=progress)
    X = feature_matrix(features, delta=spec.reads_followups(net_cfg))
    imputed = {p: list(v) for p, v in features.imputed.items()}
    missing = X.reindex(columns=pipe.selected_).isna().sum(axis=1)
    for pid, k in missing[missing > 0].items():
        imputed.setdefault(str(pid), []).append(f"feature-imputed: {int(k)} of the model's {len(pipe.selected_)} "
                                                "features missing, imputed by the training median")
    ids = list(X.index)
    data = _FeatureInput(ids, imputed, features.skipped, {**features.stats, "patients": len(ids)},
                         np.ones((len(ids), 1), bool))
    return data, pipe.predict_risk(X)


def _score_frame(model: str, ids: list[str], risk: np.ndarray, surv: np.ndarray, cutoffs: list[float],
                 horizons: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame({"patient_id": ids, "model": model, "fold": -1, "risk": risk,
                          "risk_group": assign_groups(risk, cutoffs).astype(int)})
    for j, h in enumerate(horizons):
        frame[surv_column(h)] = surv[:, j]
    return frame


def _fused_frame(fusion: dict, cohort: Cohort, data, risk: np.ndarray, horizons: list[float],
                 labels: list[float]) -> tuple[pd.DataFrame | None, list[str]]:
    """The fused model (``<model>+clinical``): the clinical Cox score and the bivariate Cox fusion
    learned on the training cohort, applied to the image risk and the new patients' covariates
    (missing values imputed as in training, and listed in ``imputed``). Covariates are matched by name,
    then case-insensitively; a cohort still without the model's covariates gets no fused rows, and a
    note says why and how to map them."""
    if fusion.get("kind") == "multivariable":
        return _score_cox_frame(fusion, cohort, data, risk, horizons, labels)
    clinical = CoxScore.from_state(fusion["clinical"])
    covariates, notes = match_covariates(cohort.covariates(), clinical.covariates)
    absent = clinical.missing(covariates)
    if absent:
        have = ", ".join(map(str, covariates.columns)) or "none"
        return None, [*notes, f"{fusion['name']}: not scored, the cohort lacks the covariates {absent} (it "
                      f"declares {have}); map names with covariate_aliases in cohort.yaml or --covariate-alias"]
    if not len(data.ids):
        return None, notes
    X = covariates.loc[data.ids]
    clin_risk = clinical.predict_risk(X)
    fus = BivariateCoxFusion.from_state(fusion["fusion"])
    indicator = (~data.observed.all(axis=1)).astype(float) if fus.uses_indicator_ else None
    fused = fus.predict_risk(risk, clin_risk, indicator)
    surv = BreslowSurvival.from_state(fusion["breslow"]).predict_survival(fused, horizons)
    frame = _score_frame(fusion["name"], data.ids, fused, surv, fusion["risk_groups"]["cutoffs"], labels)
    fills = covariate_fills(X, clinical.covariates)
    unseen, unseen_notes = unseen_level_fills(clinical.prep, X[clinical.covariates], fusion["name"])
    frame["imputed"] = [join_fills(data.imputed.get(p, []) + fills.get(p, []) + unseen.get(p, [])) for p in data.ids]
    return frame, notes + unseen_notes


def score_cox_factors(cohort: Cohort, factors: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The cohort's clinical factors of a multivariable fused model, matched by name as ``predict``
    matches covariates, with the treatment response coded as in training where it is a factor."""
    have = cohort.covariates()
    if "response" in factors and "response" not in have.columns:
        have = have.assign(response=response_codes(cohort, have.index))
    return match_covariates(have, factors)


def _score_cox_frame(fusion: dict, cohort: Cohort, data, risk: np.ndarray, horizons: list[float],
                     labels: list[float]) -> tuple[pd.DataFrame | None, list[str]]:
    """The multivariable fused model (DLOP_Cox): one Cox model of the image score and the clinical
    factors it selected in training, applied to the new patients (missing values imputed as in
    training, and listed in ``imputed``)."""
    cox = ScoreCoxModel.score_from_state(fusion["score_cox"])
    factors = [c for c in cox.covariates if c != SCORE]
    covariates, notes = score_cox_factors(cohort, factors)
    absent = [c for c in factors if c not in covariates.columns]
    if absent:
        return None, [*notes, f"{fusion['name']}: not scored, the cohort lacks the factors {absent}; map names with "
                      "covariate_aliases in cohort.yaml or --covariate-alias"]
    if not len(data.ids):
        return None, notes
    X = covariates.loc[data.ids, factors].assign(**{SCORE: risk})
    fused = cox.predict_risk(X)
    surv = BreslowSurvival.from_state(fusion["breslow"]).predict_survival(fused, horizons)
    frame = _score_frame(fusion["name"], data.ids, fused, surv, fusion["risk_groups"]["cutoffs"], labels)
    fills = covariate_fills(X, factors)
    frame["imputed"] = [join_fills(data.imputed.get(p, []) + fills.get(p, [])) for p in data.ids]
    return frame, notes


def write_predictions(run: Path, cohort: Cohort, cohort_path: Path, out: Path, *, overwrite: bool = False,
                      cache_dir: Path | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Write ``out`` with predictions.csv and config.yaml (+ outcomes, metrics and report when the
    cohort has the endpoint); returns timing and counts."""

    frame, stats = predict_cohort(run, cohort, cache_dir=cache_dir, progress=progress)
    conf = run_config(run)
    endpoint = conf.get("endpoint")
    run_unit = conf.get("time_unit") or cohort.time_unit
    if run_unit != cohort.time_unit:
        stats["notes"].append(f"times converted: the run was trained in {run_unit}, this cohort is in "
                              f"{cohort.time_unit}; survival columns and horizons are in {cohort.time_unit}")
    with staged_run(out, overwrite=overwrite) as tmp:
        write_csv(tmp / "predictions.csv", frame, index=False, float_format="%.6g")
        write_unscored(tmp, conf["model"], stats["skipped"])
        config = {"command": "predict", "title": f"{conf['model']} applied to {cohort.name}",
                  "hccprog_version": __version__, "run": str(Path(run).resolve()),
                  "cohort": str(Path(cohort_path).resolve()), "cohort_name": cohort.name, "endpoint": endpoint,
                  "time_unit": cohort.time_unit, "model": conf["model"],
                  "notes": [f"{p}: not scored ({why})" for p, why in stats["skipped"].items()]
                  + stats["notes"] + fill_notes(fills_by_patient(frame))}
        if conf.get("task") == "response":
            validated = _validate_response(tmp, run, cohort, frame, config)
            write_yaml(tmp / "config.yaml", config)
            stats["validated"] = validated
            return stats
        validated = endpoint in cohort.endpoints
        if not validated:
            config["notes"].append(f"no metrics: this cohort has no '{endpoint}' endpoint (it has "
                                   f"{', '.join(cohort.endpoints)})")
        else:
            outcomes = cohort.outcomes(endpoint, unit=cohort.time_unit).loc[lambda d: d.index.isin(frame.patient_id)]
            if outcomes["event"].sum() >= 2:
                write_csv(tmp / "outcomes.csv", outcomes, float_format="%.6g")
                config["evaluation"] = {"horizons": [float(c[5:]) for c in frame.columns if c.startswith("surv_")],
                                        "reference": None, "n_boot": 1000, "seed": 0}
            else:
                validated = False
                config["notes"].append(f"no metrics: {int(outcomes['event'].sum())} '{endpoint}' event(s) among the "
                                       "scored patients (at least 2 needed)")
        stats["notes"] = config["notes"]
        write_yaml(tmp / "config.yaml", config)
        if validated:
            evaluate_run(tmp)
    stats["validated"] = validated
    return stats


def fills_by_patient(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Every entry of the ``imputed`` column per patient, over all its rows, each once."""
    out: dict[str, list[str]] = {}
    for pid, cell in zip(frame["patient_id"], frame.get("imputed", pd.Series("", index=frame.index)), strict=True):
        entries = out.setdefault(str(pid), [])
        entries += [e for e in split_fills(cell) if e not in entries]
    return out


def _validate_response(tmp: Path, run: Path, cohort: Cohort, frame: pd.DataFrame, config: dict) -> bool:
    """External validation of a response model where the new cohort has responses: outcomes.csv
    (the label) and metrics.json (AUC with DeLong's CI; classification at the training cut-off)."""

    if cohort.spec.response is None:
        return False
    labels = response_labels(cohort)
    scored = frame[frame["patient_id"].isin(labels.index)]
    y = labels.loc[scored["patient_id"]].to_numpy(int)
    if len(np.unique(y)) < 2:
        return False
    desc = read_model_json(Path(run) / "models" / f"{config['model']}.json")
    write_csv(tmp / "outcomes.csv", labels.loc[scored["patient_id"]].rename_axis("patient_id").to_frame(),
              float_format="%.6g")
    metrics = {"schema": 1, "task": "response", "positive_class": "PD",
               "models": {config["model"]: response_metrics(y, scored["risk"].to_numpy(float), desc["threshold"])},
               "notes": ["classification at the cut-off learned on the training cohort"]}
    write_json(tmp / "metrics.json", metrics)
    return True
