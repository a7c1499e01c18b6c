"""Models on tabular image features (a spec with ``input: features``): the features of every
patient are extracted once (cached), and the model's pipeline (``spec.build(cfg, task=, seed=)``,
with ``fit(X, time, event, perturbed=)`` and ``predict_risk(X)``) is fitted on the training part of each
split by the cross-validation engine."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccprog.cohort.model import Cohort
from hccprog.experiment.engine import FoldPrediction
from hccprog.preprocessing.features import FeatureConfig, ImageFeatures, extract_features, feature_matrix
from hccprog.survival.breslow import BreslowSurvival
from hccprog.survival.cv import Split

PERTURBATIONS = ("eroded", "dilated")


class FeatureLearner:
    """Cross-validated by the engine: the pipeline refitted on each training part."""

    def __init__(self, spec, net_cfg, features: ImageFeatures, ids: list[str], time: np.ndarray,
                 event: np.ndarray, *, task: str, labels: np.ndarray | None = None,
                 class_columns: list[str] | None = None, worst_first: bool = False, progress=None) -> None:
        """``task``: survival, response (``event`` is the label) or classes (``labels``: the risk
        class of each patient, -1 unknown; ``class_columns`` names the ``p_<class>`` columns;
        ``worst_first``: class 0 is the worst, so the risk counts the classes from the last)."""
        self.worst_first = worst_first
        self.spec, self.net_cfg, self.task = spec, net_cfg, task
        self.labels = None if labels is None else np.asarray(labels, int)
        self.class_columns = list(class_columns or [])
        delta = spec.reads_followups(net_cfg)  # the change to the first follow-up is an input
        self.X = feature_matrix(features, delta=delta).reindex(ids)
        self.perturbed = [feature_matrix(features, delta=delta, perturbation=p).reindex(ids) for p in PERTURBATIONS
                          if (features.table["perturbation"] == p).any()]
        self.has = self.X.notna().any(axis=1).to_numpy()
        self.t, self.e = np.asarray(time, float), np.asarray(event, int)
        self.channels = list(features.channels)
        self.progress = progress
        self.steps: dict[str, dict] = {}  # fold -> features left after each reduction step, and those selected
        self.histories: dict[str, list[dict]] = {}  # no epochs
        self.fusion_indicator = None
        self.imputed = {p: list(v) for p, v in features.imputed.items()}
        missing = self.X[self.has].isna().sum(axis=1)
        for pid, k in missing[missing > 0].items():
            self.imputed.setdefault(str(pid), []).append(
                f"feature-imputed: {int(k)} of {self.X.shape[1]} features missing (e.g. no follow-up), imputed by "
                "the training median where the model uses them")

    @property
    def saves_final(self) -> bool:
        """Whether a final pipeline can be saved as plain JSON for ``predict``."""
        return bool(self.spec.build(self.net_cfg, task=self.task).saveable)

    def description(self, pipe, cfg, **extra) -> dict:
        """What ``predict`` needs to score new patients (``models/<model>.json``; no weights file)."""
        return {"model": cfg.model, "input": "features", "network": self.net_cfg.model_dump(mode="json"),
                "preprocessing": cfg.preprocessing.model_dump(mode="json"), "channels": self.channels,
                "pipeline": pipe.state(), "objective": {"kind": "binary" if self.task == "response" else "cox"},
                **extra}

    def fit(self, idx: np.ndarray, seed: int, label: str | None = None):
        """The pipeline fitted on the patients ``idx`` that have features."""
        ok = idx[self.has[idx]]
        pipe = self.spec.build(self.net_cfg, task=self.task, seed=seed)
        target = self.labels if self.task == "classes" else self.e
        return pipe.fit(self.X.iloc[ok], self.t[ok], target[ok], perturbed=[p.iloc[ok] for p in self.perturbed])

    def predict_risk(self, pipe, idx: np.ndarray) -> np.ndarray:
        out = np.full(len(idx), np.nan)
        ok = self.has[idx]
        if ok.any():
            out[ok] = pipe.predict_risk(self.X.iloc[idx[ok]])
            if self.task == "classes" and self.worst_first:  # the expected class counted from the best
                out[ok] = len(self.class_columns) - 1 - out[ok]
        return out

    def __call__(self, s: Split, grid: list[float]) -> FoldPrediction:
        pipe = self.fit(s.train, s.seed * 1000 + s.fold)
        self.steps[f"fold-{s.repeat}-{s.fold}"] = {**pipe.steps_, "selected": pipe.selected_}
        if self.progress:
            self.progress(f"repeat {s.repeat + 1}, fold {s.fold + 1}: {len(pipe.selected_)} features", 1, 1)
        train_risk, test_risk = self.predict_risk(pipe, s.train), self.predict_risk(pipe, s.test)
        if pipe.train_risk_ is not None:  # out-of-fold scores of the training part (fusion, cut-offs)
            ok = self.has[s.train]
            train_risk[ok] = pipe.train_risk_.reindex(self.X.index[s.train[ok]]).to_numpy()
        columns = {}
        if self.task == "classes":  # p_<class> of the test part
            probs = np.full((len(s.test), len(self.class_columns)), np.nan)
            ok = self.has[s.test]
            if ok.any():
                probs[ok] = pipe.probabilities(self.X.iloc[s.test[ok]], len(self.class_columns))
            columns = {f"p_{c}": probs[:, k] for k, c in enumerate(self.class_columns)}
        surv = None
        if grid:
            ok, okt = np.isfinite(train_risk), np.isfinite(test_risk)
            base = BreslowSurvival().fit(train_risk[ok], self.t[s.train][ok], self.e[s.train][ok])
            surv = np.full((len(s.test), len(grid)), np.nan)
            surv[okt] = base.predict_survival(test_risk[okt], grid)
        return FoldPrediction(train_risk, test_risk, surv, columns)


def prepare_features(cohort: Cohort, cfg: FeatureConfig, ids: list[str], *, cache_dir=None,
                     progress=None) -> ImageFeatures:
    """The features of ``ids``, with progress lines."""
    tick = (lambda d, n: progress(f"image features {d}/{n} patients", d, n)) if progress else None
    return extract_features(cohort, cfg, cache_dir=cache_dir, ids=ids, progress=tick)


def selection_table(steps: dict[str, dict]) -> pd.DataFrame:
    """Per fold: the features left after each reduction step, and how often each was selected."""
    rows = [{"fold": k, **{s: v for s, v in d.items() if s != "selected"}} for k, d in steps.items()]
    return pd.DataFrame(rows)
