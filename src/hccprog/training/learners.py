"""The deep learner: trains the configured network on the training part of a split (with its clinical
encoder), scores both parts, and keeps a resumable state per fold."""

from __future__ import annotations

import json
import logging
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from hccprog.experiment.engine import FoldPrediction
from hccprog.models.registry import get_model
from hccprog.preprocessing.cache import PreprocessedCohort
from hccprog.runs import write_json
from hccprog.survival.breslow import BreslowSurvival
from hccprog.survival.cv import Split
from hccprog.training.clinical import ClinicalEncoder
from hccprog.training.config import TrainRunConfig
from hccprog.training.deep import SurvivalNetTrainer
from hccprog.training.objectives import (
    CoxObjective,
)

Progress = Callable[[str, float, float], None]


log = logging.getLogger("hccprog")


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

    def predict_risk(self, tr: SurvivalNetTrainer, idx: np.ndarray) -> np.ndarray:
        out = np.full(len(idx), np.nan)
        ok, o = self.outputs(tr, idx)
        if ok.any():
            out[ok] = self.objective.predict_risk(o)
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
        train_risk = self.predict_risk(tr, s.train)
        okt, o_test = self.outputs(tr, s.test)  # one forward pass of the test part: risk and survival
        test_risk = np.full(len(s.test), np.nan)
        if okt.any():
            test_risk[okt] = self.objective.predict_risk(o_test)
        surv = None
        if grid:  # a survival task: the objective's own survival, or Breslow's on the training risks
            surv = np.full((len(s.test), len(grid)), np.nan)
            own = self.objective.predict_survival(o_test, grid) if okt.any() else None
            if own is not None:
                surv[okt] = own
            else:
                ok = np.isfinite(train_risk)
                base = BreslowSurvival().fit(train_risk[ok], self.t[s.train][ok], self.e[s.train][ok])
                surv[okt] = base.predict_survival(test_risk[okt], grid)
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
