"""A multivariable Cox model of an image score and clinical factors screened by univariable and then
multivariable Cox regression on the training patients.

This is DLOP_Cox of Sun et al. 2024 ("The output of the DLOP_CTR model was used as a separate
variable and combined with clinical factors to build a multi-factor COX regression prediction
model"; the factors "after univariate and multivariate COX regression analysis") and the post-hoc
Cox model of Yao et al. 2025 (the ProgSwin-UNETR class beside age, sex, sorafenib, mRECIST and the
radiomic score). It differs from :class:`~hccprog.survival.cox.BivariateCoxFusion`, which joins
the image score with the clinical model's *score*: here every selected factor has its own
coefficient beside the image score.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from hccprog.survival.cox import CoxModel, CoxScore
from hccprog.survival.preprocess import TabularPreprocessor

SCORE = "image_score"


def _p_values(X: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> pd.Series:
    """Wald p-values of an (almost) unpenalised Cox model of ``X`` (raw covariates, encoded here)."""
    from lifelines import CoxPHFitter

    Z = TabularPreprocessor().fit(X).transform(X)
    data = Z.assign(_t=np.asarray(time, float), _e=np.asarray(event, int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CoxPHFitter(penalizer=1e-4).fit(data, "_t", "_e").summary["p"]


def _raw_p(p: pd.Series, covariate: str) -> float:
    """The smallest p-value of the encoded columns of ``covariate`` (its dummies, or itself)."""
    mine = [c for c in p.index if c == covariate or str(c).startswith(f"{covariate}=")]
    return float(p[mine].min()) if mine else 1.0


def screen_covariates(X: pd.DataFrame, time: np.ndarray, event: np.ndarray, *, p_univariable: float = 0.05,
                      p_multivariable: float = 0.05) -> tuple[list[str], dict[str, dict]]:
    """Covariates (raw columns of ``X``) with univariable Cox p < ``p_univariable`` that keep
    p < ``p_multivariable`` in the multivariable model of those; a categorical covariate counts by
    its best level. Returns the kept covariates and each one's p-values.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"strong": rng.normal(size=300), "noise": rng.normal(size=300)})
    >>> t = rng.exponential(np.exp(-X["strong"].to_numpy()))
    >>> screen_covariates(X, t, np.ones(300))[0]
    ['strong']
    """
    cols = list(X.columns)
    uni: dict[str, float] = {}
    for c in cols:
        try:
            uni[c] = _raw_p(_p_values(X[[c]], time, event), c)
        except Exception:  # a column lifelines cannot fit (a constant, separation): not selected
            uni[c] = 1.0
    kept = [c for c in cols if uni[c] < p_univariable]
    multi: dict[str, float] = {}
    if len(kept) > 1:
        try:
            p = _p_values(X[kept], time, event)
            multi = {c: _raw_p(p, c) for c in kept}
        except Exception:
            multi = {c: uni[c] for c in kept}
        kept = [c for c in kept if multi[c] < p_multivariable]
    return kept, {c: {"p_univariable": uni[c], "p_multivariable": multi.get(c)} for c in cols}


class ScoreCoxModel:
    """``fit(score, X, time, event)``: the clinical factors of ``X`` screened (``screening="cox"``,
    :func:`screen_covariates`) or all of them (``"none"``), then one Cox model of the image score
    (column ``image_score``) and those factors. Missing covariate values are imputed by the training
    median or mode (``TabularPreprocessor``); the score is standardised with the rest."""

    def __init__(self, *, screening: str = "cox", p_univariable: float = 0.05, p_multivariable: float = 0.05,
                 penalizer: float = 1e-4) -> None:
        if screening not in ("cox", "none"):
            raise ValueError(f"screening must be cox or none, got {screening!r}")
        self.screening, self.p_univariable, self.p_multivariable = screening, p_univariable, p_multivariable
        self.penalizer = penalizer

    def fit(self, score, X: pd.DataFrame, time, event) -> ScoreCoxModel:
        t, e = np.asarray(time, float), np.asarray(event, int)
        if self.screening == "cox":
            self.selected_, self.screen_ = screen_covariates(X, t, e, p_univariable=self.p_univariable,
                                                             p_multivariable=self.p_multivariable)
        else:
            self.selected_, self.screen_ = list(X.columns), {}
        frame = self._frame(score, X)
        self.model_ = CoxModel(penalizers=(self.penalizer,)).fit(frame, t, e)
        return self

    def _frame(self, score, X: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([pd.DataFrame({SCORE: np.asarray(score, float)}, index=X.index), X[self.selected_]], axis=1)

    def predict_risk(self, score, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_risk(self._frame(score, X))

    def predict_survival(self, score, X: pd.DataFrame, times) -> np.ndarray:
        return self.model_.predict_survival(self._frame(score, X), times)

    def hazard_ratios(self) -> pd.DataFrame:
        return self.model_.hazard_ratios()

    def state(self) -> dict:
        """Plain JSON: the selected factors, their screening p-values and the Cox model (``CoxScore``)."""
        return {"selected": list(self.selected_), "screening": self.screen_, "cox": self.model_.state()}

    @staticmethod
    def score_from_state(state: dict) -> CoxScore:
        """The fitted model as a :class:`CoxScore` over ``image_score`` and the selected factors."""
        return CoxScore.from_state(state["cox"])


__all__ = ["SCORE", "ScoreCoxModel", "screen_covariates"]
