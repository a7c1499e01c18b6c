"""The clinical models as learners of the cross-validation engine: their specifications (penalised Cox,
penalised logistic) and the Cox learner refitted per split."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from hccprog.fills import covariate_fills
from hccprog.survival.cox import CoxModel
from hccprog.survival.cv import FoldPrediction, Split


class CoxSpec(BaseModel):
    """A penalised Cox model: its covariates (None: every declared covariate) and penalty grid."""

    model_config = ConfigDict(extra="forbid")
    covariates: list[str] | None = None
    penalizers: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0])
    l1_ratio: float = Field(0.0, ge=0, le=1)


class LogisticSpec(BaseModel):
    """A penalised logistic model of the response: its covariates (None: every declared one)."""

    model_config = ConfigDict(extra="forbid")
    covariates: list[str] | None = None


class CoxLearner:
    """A penalised Cox model on ``covariates``, refitted (penalty tuned by inner CV) per split."""

    def __init__(self, spec: CoxSpec, covariates: list[str], X: pd.DataFrame, time: np.ndarray, event: np.ndarray,
                 *, inner_folds: int) -> None:
        self.spec, self.covariates, self.X, self.t, self.e = spec, covariates, X, time, event
        self.inner_folds = inner_folds
        self.imputed = covariate_fills(X, covariates)
        self.fusion_indicator = None

    def model(self, seed: int) -> CoxModel:
        return CoxModel(penalizers=tuple(self.spec.penalizers), l1_ratio=self.spec.l1_ratio,
                        inner_folds=self.inner_folds, seed=seed)

    def __call__(self, s: Split, grid: list[float]) -> FoldPrediction:
        model = self.model(s.seed).fit(self.X.iloc[s.train][self.covariates], self.t[s.train], self.e[s.train])
        return FoldPrediction(model.predict_risk(self.X.iloc[s.train]), model.predict_risk(self.X.iloc[s.test]),
                              model.predict_survival(self.X.iloc[s.test], grid))
