"""The cross-validation protocol every model uses.

Patient-level folds stratified by event (survival) or class (classification), repeated with
recorded seeds (repeat r shuffles with ``seed + r``). Anything fitted from data (imputers,
scalers, selectors, tuned hyper-parameters, risk-group cut-offs) is fitted on the training part
of a fold only; tuning uses inner folds drawn from that training part (nested CV).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.model_selection import KFold, StratifiedKFold

from hccprog.errors import InputError


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


@dataclass
class FoldPrediction:
    """What a cross-validated learner returns for one split: risks of the training part (used to
    fit fusions and cut-offs) and of the test part, survival of the test part on the evaluation
    grid (survival tasks), and any further per-patient columns of the test part (``p_<class>``).
    NaN marks a patient the learner could not score."""

    train_risk: np.ndarray
    test_risk: np.ndarray
    test_surv: np.ndarray | None = None
    test_columns: dict[str, np.ndarray] = field(default_factory=dict)


def _splitter(n_splits: int, seed: int, strata: np.ndarray | None):
    if strata is not None:
        counts = pd.Series(strata).value_counts()
        if counts.min() >= n_splits:
            return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return KFold(n_splits=n_splits, shuffle=True, random_state=seed)


def make_splits(n: int, strata: np.ndarray | None, cfg: CVConfig) -> list[Split]:
    """Outer splits of ``n`` patients: ``cfg.repeats`` x ``cfg.folds``, stratified when possible
    (a stratum smaller than the number of folds falls back to plain shuffled folds).

    Parameters
    ----------
    n : int
        Number of patients (positions 0 .. n-1).
    strata : numpy.ndarray or None
        A label per patient to stratify on (the event indicator, the response), or None.
    cfg : CVConfig
        Folds, repeats, seed and whether to stratify; repeat ``r`` is shuffled with ``cfg.seed + r``.

    Returns
    -------
    list of Split
        In repeat-then-fold order; each patient is in the test part of exactly one fold per repeat.

    Examples
    --------
    >>> splits = make_splits(10, None, CVConfig(folds=5, repeats=2))
    >>> len(splits), splits[0].test.tolist()
    (10, [2, 8])
    >>> sorted(int(i) for s in splits[:5] for i in s.test) == list(range(10))
    True
    """
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


def check_cv_size(n: int, events: int | None, cfg: CVConfig, *, what: str, file: str | None = None,
                  column: str | None = None, classification: bool = False) -> list[str]:
    """The one minimum cohort size of hccprog (``validate``, ``baselines``, ``train`` all call it).

    Raise :class:`~hccprog.errors.InputError` when ``n`` patients (``events`` of them with the
    event, or in the positive class with ``classification``) cannot be cross-validated with
    ``cfg.folds`` folds: every test fold needs a patient (and, for a classification, each class
    needs one patient per fold); return warnings for a split that works but is thin. ``what``
    names the endpoint in messages."""
    if n < 2:
        raise InputError(f"{what}: {n} patient(s) with a known outcome; cross-validation needs at least "
                         f"{max(cfg.folds, 2)} (one per test fold)", file=file, column=column)
    if n < cfg.folds:
        raise InputError(f"{what}: {n} patients cannot be split into {cfg.folds} folds (each test fold needs a "
                         f"patient): use --folds {max(2, min(n // 2, 5))} or fewer", file=file, column=column)
    if events is not None and events == 0:
        raise InputError(f"{what}: no patient has the event (all {n} censored): there is nothing to learn or to "
                         "evaluate; check the event column's coding (1 = event, 0 = censored)", file=file,
                         column=column)
    if classification and events is not None and events == n:
        raise InputError(f"{what}: every one of the {n} patients is in the same class: there is nothing to "
                         "discriminate", file=file, column=column)
    if classification and events is not None and min(events, n - events) < cfg.folds:
        raise InputError(f"{what}: {events} PD and {n - events} disease-control patients; each class needs at "
                         f"least {cfg.folds} for {cfg.folds}-fold CV", file=file, column=column)
    warnings = []
    if n < 2 * cfg.folds:
        warnings.append(f"{what}: {n} patients in {cfg.folds} folds leaves fewer than 2 per test fold")
    if events is not None and events < cfg.folds:
        warnings.append(f"{what}: {events} event(s) for {cfg.folds} folds: some test folds hold none, and folds "
                        "are not stratified by event")
    return warnings
