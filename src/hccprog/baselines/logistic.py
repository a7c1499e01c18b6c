"""The clinical reference of the response endpoint: an L2-penalised logistic regression of PD on
the clinical covariates, its penalty chosen by inner cross-validation (ROC AUC), imputation,
encoding and scaling fitted on the training part of each split."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from hccprog.fills import covariate_fills
from hccprog.survival.cv import FoldPrediction, Split
from hccprog.survival.preprocess import TabularPreprocessor


def fit_logistic(x_train: pd.DataFrame, y: np.ndarray, seed: int, *, max_folds: int = 5):
    """``LogisticRegressionCV`` with 10 penalties, inner folds stratified by class (at most
    ``max_folds``, no more than the smaller class holds)."""
    from sklearn.linear_model import LogisticRegressionCV

    folds = int(min(max_folds, np.bincount(y).min()))
    with warnings.catch_warnings():  # scikit-learn 1.8 announces API changes of LogisticRegressionCV
        warnings.simplefilter("ignore", FutureWarning)
        return LogisticRegressionCV(Cs=10, cv=max(2, folds), scoring="roc_auc", max_iter=2000,
                                    random_state=seed).fit(x_train, y)


class LogisticLearner:
    """Cross-validated by the engine: ``risk`` is the logit of PD, ``p_PD`` its probability."""

    def __init__(self, frame: pd.DataFrame, labels: np.ndarray) -> None:
        self.frame = frame  # rows in the order of the task's patients
        self.labels = np.asarray(labels, int)
        self.imputed = covariate_fills(frame, list(frame.columns))
        self.fusion_indicator = None

    def __call__(self, s: Split, grid: list[float]) -> FoldPrediction:
        pre = TabularPreprocessor().fit(self.frame.iloc[s.train])
        x_train, x_test = pre.transform(self.frame.iloc[s.train]), pre.transform(self.frame.iloc[s.test])
        model = fit_logistic(x_train, self.labels[s.train], s.seed)
        test = model.decision_function(x_test)
        return FoldPrediction(model.decision_function(x_train), test, None,
                              {"p_PD": 1 / (1 + np.exp(-np.asarray(test, float)))})
