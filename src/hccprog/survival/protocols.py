"""hccprog's one scoring vocabulary, as typing Protocols.

Every fitted thing that scores patients speaks the same five verbs, whatever its floor:

``fit(...)``
    learns from training patients and returns the fitted object;
``predict_risk(...)``
    a risk per patient, higher = worse (a log-hazard, a logit of PD, an expected risk class);
``predict_survival(..., times)``
    ``(n, len(times))`` probabilities of no event by each time;
``state()``
    what scores new patients, as plain JSON (what a run folder saves);
``from_state(state)``
    the class method that rebuilds a scorer from ``state()``; it scores as the fitted object did.

A class implements the verbs it can: the Breslow estimator turns risks into survival but has no risk of
its own; a radiomics pipeline scores risk and leaves survival to a Breslow estimator; a preprocessor
only transforms. No other verb (``risk``, ``predict``, ``survival``) names the same act:
``tests/test_architecture.py`` checks it.

The seven state/from_state pairs behind the vocabulary: :class:`~hccprog.survival.cox.CoxModel` (whose
state :class:`~hccprog.survival.cox.CoxScore` rebuilds), :class:`~hccprog.survival.cox.BivariateCoxFusion`,
:class:`~hccprog.survival.breslow.BreslowSurvival`, :class:`~hccprog.survival.preprocess.TabularPreprocessor`,
``training.clinical.ClinicalEncoder``, the objectives of ``training.objectives`` and
``models.radiomics.RadiomicsPipeline``.

Examples
--------
>>> from hccprog.survival.breslow import BreslowSurvival
>>> base = BreslowSurvival().fit([0.0, 0.5, 1.0], [1.0, 2.0, 3.0], [1, 1, 0])
>>> isinstance(base, Stateful) and isinstance(base, SurvivalPredictor)
True
>>> isinstance(base, RiskScorer)
False
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["RiskScorer", "Scorer", "Stateful", "SurvivalPredictor"]


@runtime_checkable
class Stateful(Protocol):
    """Saved as plain JSON and rebuilt from it: ``type(x).from_state(x.state())`` scores as ``x`` does."""

    def state(self) -> dict: ...

    @classmethod
    def from_state(cls, state: dict, /, **context: Any) -> Any: ...


@runtime_checkable
class RiskScorer(Stateful, Protocol):
    """Fitted on training patients; a risk per new patient (higher = worse)."""

    def fit(self, *args: Any, **kwargs: Any) -> Any: ...

    def predict_risk(self, *args: Any, **kwargs: Any) -> np.ndarray: ...


@runtime_checkable
class SurvivalPredictor(Stateful, Protocol):
    """Fitted on training patients; the probability of no event by each of ``times``."""

    def fit(self, *args: Any, **kwargs: Any) -> Any: ...

    def predict_survival(self, *args: Any, **kwargs: Any) -> np.ndarray: ...


@runtime_checkable
class Scorer(RiskScorer, SurvivalPredictor, Protocol):
    """The whole vocabulary: fit, predict_risk, predict_survival, state, from_state."""
