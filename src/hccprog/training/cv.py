"""The cross-validation protocol every model uses.

Patient-level folds stratified by event (survival) or class (classification), repeated with
recorded seeds (repeat r shuffles with ``seed + r``). Anything fitted from data (imputers,
scalers, selectors, tuned hyper-parameters, risk-group cut-offs) is fitted on the training part
of a fold only; tuning uses inner folds drawn from that training part (nested CV).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.model_selection import KFold, StratifiedKFold


class CVConfig(BaseModel):
    """Outer folds, repeats and the seed; inner folds for tuning."""

    model_config = ConfigDict(extra="forbid")
    folds: int = Field(5, ge=2)
    repeats: int = Field(1, ge=1)
    seed: int = 0
    inner_folds: int = Field(3, ge=2)
    stratify: bool = True


@dataclass(frozen=True)
class Split:
    repeat: int
    fold: int
    seed: int
    train: np.ndarray  # positions into the id list
    test: np.ndarray


def _splitter(n_splits: int, seed: int, strata: np.ndarray | None):
    if strata is not None:
        counts = pd.Series(strata).value_counts()
        if counts.min() >= n_splits:
            return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return KFold(n_splits=n_splits, shuffle=True, random_state=seed)


def make_splits(n: int, strata: np.ndarray | None, cfg: CVConfig) -> list[Split]:
    """Outer splits of ``n`` patients: ``cfg.repeats`` x ``cfg.folds``, stratified when possible
    (a stratum smaller than the number of folds falls back to plain shuffled folds)."""
    if n < cfg.folds:
        raise ValueError(f"{n} patients cannot be split into {cfg.folds} folds")
    strata = strata if cfg.stratify else None
    out = []
    dummy = np.zeros(n)
    for r in range(cfg.repeats):
        seed = cfg.seed + r
        splitter = _splitter(cfg.folds, seed, strata)
        for k, (tr, te) in enumerate(splitter.split(dummy, strata if strata is not None else dummy)):
            out.append(Split(r, k, seed, np.sort(tr), np.sort(te)))
    return out


def folds_frame(ids: list[str], splits: list[Split]) -> pd.DataFrame:
    """One row per patient and repeat: the fold in which the patient was tested, and the seed."""
    rows = [(ids[i], s.repeat, s.fold, s.seed) for s in splits for i in s.test]
    frame = pd.DataFrame(rows, columns=["patient_id", "repeat", "fold", "seed"])
    return frame.sort_values(["repeat", "fold", "patient_id"]).reset_index(drop=True)


def inner_splits(n: int, strata: np.ndarray | None, n_splits: int,
                 seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Inner (tuning) folds over the ``n`` training patients of an outer fold."""
    splitter = _splitter(n_splits, seed, strata)
    yield from splitter.split(np.zeros(n), strata if strata is not None else np.zeros(n))
