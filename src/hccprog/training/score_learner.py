"""The multivariable Cox model of a network's score and the screened clinical factors as a learner
of the cross-validation engine (DLOP_Cox, Sun et al. 2024; the post-hoc Cox model of Yao et al.
2025): per split, the network's out-of-fold-trained score of the training part and the clinical
factors of the same patients fit :class:`~hccprog.survival.score_cox.ScoreCoxModel`, applied to
the test part."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccprog.experiment.engine import FoldPrediction
from hccprog.fills import covariate_fills
from hccprog.survival.cv import Split
from hccprog.survival.score_cox import ScoreCoxModel


class CachedLearner:
    """A learner whose predictions of each split are kept, so that a second model built on its
    score (:class:`ScoreCoxLearner`) reads the same ones without training again."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.cache: dict[tuple[int, int], FoldPrediction] = {}

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __call__(self, s: Split, grid: list[float]) -> FoldPrediction:
        key = (s.repeat, s.fold)
        if key not in self.cache:
            self.cache[key] = self.inner(s, grid)
        return self.cache[key]


class ScoreCoxLearner:
    """One Cox model of ``image``'s score and the clinical factors ``X`` (rows in the task's patient
    order), the factors screened on each training part (``screening="cox"``)."""

    def __init__(self, image: CachedLearner, X: pd.DataFrame, time: np.ndarray, event: np.ndarray, *,
                 screening: str = "cox") -> None:
        self.image, self.X, self.t, self.e = image, X, np.asarray(time, float), np.asarray(event, int)
        self.screening = screening
        fills = covariate_fills(X, list(X.columns))
        self.imputed = {p: list(image.imputed.get(p, [])) + fills.get(p, []) for p in map(str, X.index)}
        self.fusion_indicator = None
        self.selections: dict[str, dict] = {}  # fold -> the factors kept and their p-values

    def fit(self, idx: np.ndarray, score: np.ndarray) -> ScoreCoxModel:
        return ScoreCoxModel(screening=self.screening).fit(score, self.X.iloc[idx], self.t[idx], self.e[idx])

    def __call__(self, s: Split, grid: list[float]) -> FoldPrediction:
        pred = self.image(s, grid)
        tr_ok, te_ok = np.isfinite(pred.train_risk), np.isfinite(pred.test_risk)
        model = self.fit(s.train[tr_ok], pred.train_risk[tr_ok])
        self.selections[f"fold-{s.repeat}-{s.fold}"] = {"selected": model.selected_, "screening": model.screen_}
        train_risk = np.full(len(s.train), np.nan)
        test_risk = np.full(len(s.test), np.nan)
        train_risk[tr_ok] = model.predict_risk(pred.train_risk[tr_ok], self.X.iloc[s.train[tr_ok]])
        test_risk[te_ok] = model.predict_risk(pred.test_risk[te_ok], self.X.iloc[s.test[te_ok]])
        surv = None
        if grid:
            surv = np.full((len(s.test), len(grid)), np.nan)
            if te_ok.any():
                surv[te_ok] = model.predict_survival(pred.test_risk[te_ok], self.X.iloc[s.test[te_ok]], grid)
        return FoldPrediction(train_risk, test_risk, surv)


__all__ = ["CachedLearner", "ScoreCoxLearner"]
