"""Penalised multivariable Cox model on tabular covariates (lifelines), with nested tuning."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning

from hccprog.survival.cv import inner_splits
from hccprog.survival.estimators import harrell_c
from hccprog.survival.preprocess import TabularPreprocessor


class CoxModel:
    """Cox proportional-hazards model with an elastic-net penalty (lifelines ``CoxPHFitter``).

    The penalty strength is chosen from ``penalizers`` by inner cross-validation on the training
    data (Harrell's C of the held-out inner folds), then the model is refitted on all training
    data. Preprocessing (imputation, encoding, scaling) is fitted inside ``fit``.

    Parameters
    ----------
    penalizers : tuple of float
        Candidate penalty strengths (lifelines ``penalizer``).
    l1_ratio : float
        Elastic-net mix: 0 ridge, 1 LASSO.
    inner_folds : int
        Folds of the inner cross-validation that picks the penalty.
    seed : int
        Seed of the inner folds.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"size": rng.normal(5, 2, 80), "child_pugh": rng.choice(["A", "B"], 80)})
    >>> hazard = np.exp(0.5 * (X["size"] - 5) + 0.8 * (X["child_pugh"] == "B"))
    >>> time, event = rng.exponential(1 / hazard) * 365, (rng.random(80) < 0.8).astype(int)
    >>> model = CoxModel(seed=0).fit(X, time, event)
    >>> from hccprog.survival.estimators import harrell_c
    >>> round(harrell_c(time, event, model.predict_risk(X)), 2)
    0.7
    >>> model.predict_survival(X.iloc[:2], [180, 365]).shape
    (2, 2)
    """

    def __init__(self, *, penalizers: tuple[float, ...] = (0.01, 0.1, 1.0), l1_ratio: float = 0.0,
                 inner_folds: int = 3, seed: int = 0) -> None:
        self.penalizers = tuple(penalizers)
        self.l1_ratio = l1_ratio
        self.inner_folds = inner_folds
        self.seed = seed

    @staticmethod
    def _fit_one(X: pd.DataFrame, time, event, penalizer: float, l1_ratio: float) -> CoxPHFitter:
        frame = X.copy()
        frame["__T"] = np.asarray(time, float)
        frame["__E"] = np.asarray(event).astype(int)
        last: Exception | None = None
        for p in (penalizer, penalizer * 10, penalizer * 100):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    warnings.simplefilter("ignore", RuntimeWarning)
                    return CoxPHFitter(penalizer=p, l1_ratio=l1_ratio).fit(frame, "__T", "__E")
            except ConvergenceError as err:  # separation in a small fold: penalise more
                last = err
        raise RuntimeError(f"the Cox model did not converge even with penalizer {penalizer * 100:g}") from last

    def _score(self, X: pd.DataFrame, time, event, penalizer: float) -> float:
        e = np.asarray(event).astype(int)
        scores = []
        for tr, va in inner_splits(len(X), e, self.inner_folds, self.seed):
            prep = TabularPreprocessor().fit(X.iloc[tr])
            m = self._fit_one(prep.transform(X.iloc[tr]), np.asarray(time)[tr], e[tr], penalizer, self.l1_ratio)
            risk = m.predict_log_partial_hazard(prep.transform(X.iloc[va])).to_numpy()
            c = harrell_c(np.asarray(time)[va], e[va], risk)
            if np.isfinite(c):
                scores.append(c)
        return float(np.mean(scores)) if scores else float("nan")

    def fit(self, X: pd.DataFrame, time, event) -> CoxModel:
        if len(self.penalizers) > 1:
            scores = {p: self._score(X, time, event, p) for p in self.penalizers}
            finite = {p: s for p, s in scores.items() if np.isfinite(s)}
            # the strongest penalty among the best (ties -> simpler model)
            best = max(finite.values()) if finite else None
            self.penalizer_ = max(p for p, s in finite.items() if s == best) if finite else self.penalizers[-1]
            self.tuning_ = scores
        else:
            self.penalizer_ = self.penalizers[0]
            self.tuning_ = {}
        self.prep_ = TabularPreprocessor().fit(X)
        Xt = self.prep_.transform(X)
        self.model_ = self._fit_one(Xt, time, event, self.penalizer_, self.l1_ratio)
        self.linear_ = _linear_state(self.model_)
        # 1st-99th percentile of each encoded feature (unscaled: the covariate's model scale), for nomograms
        self.ranges_ = {c: tuple(float(v) for v in self.prep_.unscaled(c, Xt[c].quantile([0.01, 0.99]).to_numpy()))
                        for c in Xt.columns}
        self.covariates_ = list(X.columns)
        return self

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Log partial hazard (higher = worse)."""
        return linear_predictor(self.prep_.transform(X[self.covariates_]), self.linear_)

    def state(self) -> dict:
        """What scores new patients, as plain JSON: covariates, the fitted preprocessing and the
        coefficients (``CoxScore.from_state`` applies it without lifelines)."""
        return {"covariates": self.covariates_, "penalizer": float(self.penalizer_),
                "preprocessor": self.prep_.state(), **self.linear_,
                "ranges": {c: list(v) for c, v in self.ranges_.items()}}

    @classmethod
    def from_state(cls, state: dict) -> CoxScore:
        """What scores new patients from :meth:`state`: a :class:`CoxScore` (no lifelines needed)."""
        return CoxScore.from_state(state)

    def predict_survival(self, X: pd.DataFrame, times) -> np.ndarray:
        """S(t | x) at ``times``: (n, len(times)), Breslow baseline of the training data."""
        sf = self.model_.predict_survival_function(self.prep_.transform(X[self.covariates_]),
                                                   times=np.asarray(times, float))
        return sf.to_numpy().T

    def hazard_ratios(self) -> pd.DataFrame:
        """Per standardised feature: coefficient, HR per SD and its Wald 95% CI, p-value."""
        s = self.model_.summary
        return pd.DataFrame({"coef": s["coef"], "hr": s["exp(coef)"], "ci_lower": s["exp(coef) lower 95%"],
                             "ci_upper": s["exp(coef) upper 95%"], "p_value": s["p"]})


def _linear_state(model: CoxPHFitter) -> dict:
    return {"coefficients": {str(k): float(v) for k, v in model.params_.items()},
            "center": {str(k): float(v) for k, v in model._norm_mean.items()}}


def linear_predictor(X: pd.DataFrame, state: dict) -> np.ndarray:
    """lifelines' log partial hazard, ``(X - training mean) @ coefficients``, from a fitted model's
    ``_linear_state``."""
    names = list(state["coefficients"])
    x = X[names].to_numpy(float) - np.array([state["center"][n] for n in names])
    return x @ np.array([state["coefficients"][n] for n in names])


class CoxScore:
    """A fitted ``CoxModel`` rebuilt from its ``state()`` (``CoxScore.from_state``): the log
    partial hazard of new patients."""

    def __init__(self, covariates: list[str], prep: TabularPreprocessor, linear: dict) -> None:
        self.covariates = list(covariates)
        self.prep = prep
        self.linear = linear

    @classmethod
    def from_state(cls, state: dict) -> CoxScore:
        return cls(state["covariates"], TabularPreprocessor.from_state(state["preprocessor"]),
                   {"coefficients": state["coefficients"], "center": state["center"]})

    def state(self) -> dict:
        """The state it was rebuilt from (what scores new patients)."""
        return {"covariates": list(self.covariates), "preprocessor": self.prep.state(), **self.linear}

    def missing(self, X: pd.DataFrame) -> list[str]:
        """Covariates of the model that ``X`` lacks."""
        return [c for c in self.covariates if c not in X.columns]

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        absent = self.missing(X)
        if absent:
            raise ValueError(f"the clinical Cox model needs covariates {absent}, which the cohort does not declare")
        return linear_predictor(self.prep.transform(X[self.covariates]), self.linear)


class BivariateCoxFusion:
    """Cox model of two risk scores (the RadCLN recipe: image score + clinical score), each
    standardised on the training data. Unpenalised unless the fit fails to converge.

    ``indicator`` (optional, 0/1 per patient) marks patients whose first score was computed from
    imputed input, e.g. a follow-up carried forward (LOCF). When the training data hold at least
    ``min_indicated`` such patients with at least ``min_indicated_events`` events, and as many
    without, the model gets two more terms: the indicator (an offset) and its product with the
    first score (its own weight among the indicated patients). Otherwise the indicator is
    ignored (``uses_indicator_`` is False) and the model is the plain bivariate one."""

    def __init__(self, *, min_indicated: int = 10, min_indicated_events: int = 3) -> None:
        self.min_indicated = min_indicated
        self.min_indicated_events = min_indicated_events

    def fit(self, a, b, time, event, indicator=None) -> BivariateCoxFusion:
        self.uses_indicator_ = False
        if indicator is not None:
            m = np.asarray(indicator, float) > 0
            ev = np.asarray(event).astype(int)
            self.uses_indicator_ = bool(min(m.sum(), (~m).sum()) >= self.min_indicated
                                        and ev[m].sum() >= self.min_indicated_events)
        X = self._frame(a, b, indicator, fit=True)
        self.model_ = CoxModel._fit_one(X, time, event, 1e-6, 0.0)
        self.linear_ = _linear_state(self.model_)
        return self

    def _frame(self, a, b, indicator=None, *, fit: bool = False) -> pd.DataFrame:
        a = np.asarray(a, float)
        b = np.asarray(b, float)
        if fit:
            self.loc_ = (a.mean(), b.mean())
            self.scale_ = (a.std() or 1.0, b.std() or 1.0)
        X = pd.DataFrame({"score_a": (a - self.loc_[0]) / self.scale_[0],
                          "score_b": (b - self.loc_[1]) / self.scale_[1]})
        if self.uses_indicator_:
            if indicator is None:
                raise ValueError("this fusion was fitted with an indicator: pass it to predict as well")
            m = (np.asarray(indicator, float) > 0).astype(float)
            X["indicator"] = m
            X["score_a_indicated"] = X["score_a"] * m
        return X

    def predict_risk(self, a, b, indicator=None) -> np.ndarray:
        return linear_predictor(self._frame(a, b, indicator), self.linear_)

    def state(self) -> dict:
        """Plain JSON: standardisation, coefficients, whether the indicator terms entered
        (``from_state`` rebuilds what ``predict_risk`` needs)."""
        return {"loc": [float(v) for v in self.loc_], "scale": [float(v) for v in self.scale_],
                "uses_indicator": self.uses_indicator_, **self.linear_,
                "min_indicated": self.min_indicated, "min_indicated_events": self.min_indicated_events}

    @classmethod
    def from_state(cls, state: dict) -> BivariateCoxFusion:
        fus = cls(min_indicated=state.get("min_indicated", 10),
                  min_indicated_events=state.get("min_indicated_events", 3))
        fus.loc_, fus.scale_ = tuple(state["loc"]), tuple(state["scale"])
        fus.uses_indicator_ = bool(state["uses_indicator"])
        fus.linear_ = {"coefficients": dict(state["coefficients"]), "center": dict(state["center"])}
        return fus

    def predict_survival(self, a, b, times, indicator=None) -> np.ndarray:
        """S(t | a, b) at ``times``: (n, len(times)), with the Breslow baseline of the training data.

        Only the fitted fusion holds that baseline; a fusion rebuilt by :meth:`from_state` scores risk,
        and its survival comes from the :class:`~hccprog.survival.breslow.BreslowSurvival` saved beside
        it (as a run folder does)."""
        if not hasattr(self, "model_"):
            raise ValueError("a fusion rebuilt from its state has no baseline hazard: fit a BreslowSurvival on "
                             "its training risks (a run folder saves one beside the fusion)")
        return self.model_.predict_survival_function(self._frame(a, b, indicator),
                                                     times=np.asarray(times, float)).to_numpy().T

    @property
    def coefficients(self) -> dict[str, float]:
        return dict(self.linear_["coefficients"])
