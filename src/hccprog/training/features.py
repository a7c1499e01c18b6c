"""Models on tabular image features (a spec with ``input: features``): the features of every
patient are extracted once (cached), and the model's pipeline (``spec.build(cfg, task=, seed=)``,
with ``fit(X, time, event, perturbed=)`` and ``risk(X)``) is fitted on the training part of each
split by the cross-validation engine."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccprog.cohort.model import Cohort
from hccprog.preprocessing.features import FeatureConfig, ImageFeatures, extract_features, feature_matrix
from hccprog.training.breslow import BreslowSurvival
from hccprog.training.cv import Split
from hccprog.training.engine import FoldPrediction

PERTURBATIONS = ("eroded", "dilated")


class FeatureLearner:
    """Cross-validated by the engine: the pipeline refitted on each training part."""

    def __init__(self, spec, net_cfg, features: ImageFeatures, ids: list[str], time: np.ndarray,
                 event: np.ndarray, *, task: str, delta: bool, progress=None) -> None:
        self.spec, self.net_cfg, self.task = spec, net_cfg, task
        self.X = feature_matrix(features, delta=delta).reindex(ids)
        self.perturbed = [feature_matrix(features, delta=delta, perturbation=p).reindex(ids) for p in PERTURBATIONS
                          if (features.table["perturbation"] == p).any()]
        self.has = self.X.notna().any(axis=1).to_numpy()
        self.t, self.e = np.asarray(time, float), np.asarray(event, int)
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

    def fit(self, idx: np.ndarray, seed: int):
        ok = idx[self.has[idx]]
        pipe = self.spec.build(self.net_cfg, task=self.task, seed=seed)
        return pipe.fit(self.X.iloc[ok], self.t[ok], self.e[ok], perturbed=[p.iloc[ok] for p in self.perturbed])

    def risk(self, pipe, idx: np.ndarray) -> np.ndarray:
        out = np.full(len(idx), np.nan)
        ok = self.has[idx]
        if ok.any():
            out[ok] = pipe.risk(self.X.iloc[idx[ok]])
        return out

    def __call__(self, s: Split, grid: list[float]) -> FoldPrediction:
        pipe = self.fit(s.train, s.seed * 1000 + s.fold)
        self.steps[f"fold-{s.repeat}-{s.fold}"] = {**pipe.steps_, "selected": pipe.selected_}
        if self.progress:
            self.progress(f"repeat {s.repeat + 1}, fold {s.fold + 1}: {len(pipe.selected_)} features", 1, 1)
        train_risk, test_risk = self.risk(pipe, s.train), self.risk(pipe, s.test)
        surv = None
        if grid:
            ok, okt = np.isfinite(train_risk), np.isfinite(test_risk)
            base = BreslowSurvival().fit(train_risk[ok], self.t[s.train][ok], self.e[s.train][ok])
            surv = np.full((len(s.test), len(grid)), np.nan)
            surv[okt] = base.predict(test_risk[okt], grid)
        return FoldPrediction(train_risk, test_risk, surv)


def prepare_features(cohort: Cohort, cfg: FeatureConfig, ids: list[str], *, cache_dir=None,
                     progress=None) -> ImageFeatures:
    """The features of ``ids``, with progress lines."""
    tick = (lambda d, n: progress(f"image features {d}/{n} patients", d, n)) if progress else None
    return extract_features(cohort, cfg, cache_dir=cache_dir, ids=ids, progress=tick)


def selection_table(steps: dict[str, dict]) -> pd.DataFrame:
    """Per fold: the features left after each reduction step, and how often each was selected."""
    rows = [{"fold": k, **{s: v for s, v in d.items() if s != "selected"}} for k, d in steps.items()]
    return pd.DataFrame(rows)
