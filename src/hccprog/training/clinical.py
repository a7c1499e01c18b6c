"""Clinical inputs of multimodal networks, learned on the training patients of a fold only.

``ClinicalEncoder`` imputes, encodes and standardises the declared covariates (the baselines'
``TabularPreprocessor``), optionally adds the treatment response (mRECIST, as an ordinal
CR < PR < SD < PD) and optionally screens the columns the way DLOP_Combin did (Sun et al. 2024):
univariable Cox models first, then one multivariable Cox model of the survivors; the columns with
p below the thresholds are kept. Everything is fitted on the training part of a split, so the
screening never sees the test patients. The fitted state is plain JSON (saved beside a trained
model for ``predict``).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from hccprog.cohort.model import Cohort
from hccprog.cohort.scores import RESPONSE_ORDER
from hccprog.survival.preprocess import TabularPreprocessor


class ClinicalInputConfig(BaseModel):
    """Which clinical columns a network gets and how they are screened."""

    model_config = ConfigDict(extra="forbid")
    covariates: list[str] | None = None  # None: every declared covariate
    include_response: bool = False  # add the treatment response (ordinal CR < PR < SD < PD)
    screening: Literal["none", "cox"] = "none"
    p_univariable: float = Field(0.05, gt=0, le=1)
    p_multivariable: float = Field(0.05, gt=0, le=1)
    min_features: int = Field(1, ge=1)  # keep the best univariable ones when fewer survive
    # numeric columns: standard (z-score) or minmax ([0, 1] on the training patients); categorical
    # columns: reference (k - 1 dummies, the most frequent level as reference) or one-hot (k columns)
    scaling: Literal["standard", "minmax"] = "standard"
    encoding: Literal["reference", "one-hot"] = "reference"


def clinical_frame(cohort: Cohort, ids: list[str], cfg: ClinicalInputConfig) -> pd.DataFrame:
    """The raw clinical columns of ``ids`` (covariates, and the response when asked)."""
    x = cohort.covariates()
    cols = cfg.covariates if cfg.covariates is not None else list(x.columns)
    absent = [c for c in cols if c not in x.columns]
    if absent:
        raise ValueError(f"clinical inputs {absent} are not declared covariates of the cohort")
    empty = set(cohort.empty_covariates())  # no value for anyone: nothing to learn or impute from
    cols = [c for c in cols if c not in empty]
    frame = x.loc[ids, cols].copy()
    if cfg.include_response:
        frame["response"] = response_codes(cohort, ids)
    return frame


def response_codes(cohort: Cohort, ids) -> pd.Series:
    """The treatment response of ``ids`` as the ordinal CR < PR < SD < PD (NaN where unknown)."""
    resp = cohort.responses().reindex(ids)
    return pd.to_numeric(resp.map(lambda v: RESPONSE_ORDER.get(str(v).strip().upper()) if pd.notna(v) else None))


def _cox_p(frame: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> pd.Series:
    from lifelines import CoxPHFitter

    data = frame.assign(_t=time, _e=event)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = CoxPHFitter(penalizer=1e-4).fit(data, "_t", "_e")
    return fit.summary["p"]


class ClinicalEncoder:
    """Fit on training rows: ``fit(frame, time, event)``; ``transform(frame)`` -> (N, P) float32."""

    def __init__(self, cfg: ClinicalInputConfig) -> None:
        self.cfg = cfg

    def fit(self, frame: pd.DataFrame, time: np.ndarray | None = None,
            event: np.ndarray | None = None) -> ClinicalEncoder:
        self.pre_ = TabularPreprocessor(scaling=self.cfg.scaling, one_hot=self.cfg.encoding == "one-hot").fit(frame)
        z = self.pre_.transform(frame)
        self.screen_: dict[str, dict] = {}
        selected = list(z.columns)
        if self.cfg.screening == "cox":
            if time is None or event is None:
                raise ValueError("Cox screening needs the training outcomes")
            uni = {}
            for c in z.columns:
                try:
                    uni[c] = float(_cox_p(z[[c]], time, event).iloc[0])
                except Exception:  # a column lifelines cannot fit (e.g. separation): not selected
                    uni[c] = 1.0
            kept = [c for c in z.columns if uni[c] < self.cfg.p_univariable]
            multi = {}
            if len(kept) > 1:
                try:
                    multi = {k: float(v) for k, v in _cox_p(z[kept], time, event).items()}
                except Exception:
                    multi = {c: uni[c] for c in kept}
                kept = [c for c in kept if multi[c] < self.cfg.p_multivariable]
            if len(kept) < self.cfg.min_features:
                best = sorted(uni, key=uni.get)[: self.cfg.min_features]
                kept = [c for c in z.columns if c in set(kept) | set(best)]
            selected = kept
            self.screen_ = {c: {"p_univariable": uni[c], "p_multivariable": multi.get(c)} for c in z.columns}
        self.selected_ = selected
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pre_.transform(frame)[self.selected_].to_numpy(np.float32)

    @property
    def n_features(self) -> int:
        return len(self.selected_)

    def state(self) -> dict:
        """JSON-serialisable fitted state (``from_state`` rebuilds the encoder)."""
        return {"config": self.cfg.model_dump(mode="json"), **self.pre_.state(), "selected": self.selected_,
                "screening": self.screen_}

    @classmethod
    def from_state(cls, state: dict) -> ClinicalEncoder:
        enc = cls(ClinicalInputConfig(**state["config"]))
        enc.pre_ = TabularPreprocessor.from_state(state)
        enc.selected_, enc.screen_ = state["selected"], state.get("screening", {})
        return enc
