"""Breslow baseline hazard: survival probabilities from a risk score fitted by partial likelihood."""

from __future__ import annotations

import numpy as np


class BreslowSurvival:
    """S(t | r) = exp(-H0(t) exp(r)), H0 estimated on training risks, times and events."""

    def fit(self, risk, time, event) -> BreslowSurvival:
        r = np.asarray(risk, float)
        t = np.asarray(time, float)
        e = np.asarray(event).astype(bool)
        self.shift_ = float(np.max(r))  # numerical stability: exp(r - shift)
        w = np.exp(r - self.shift_)
        times = np.unique(t[e])
        at_risk = np.array([w[t >= u].sum() for u in times])
        deaths = np.array([np.sum(e & (t == u)) for u in times])
        self.times_ = times
        self.cumhaz_ = np.cumsum(deaths / at_risk)
        return self

    def predict(self, risk, times) -> np.ndarray:
        """(n, len(times)) survival probabilities."""
        idx = np.searchsorted(self.times_, np.asarray(times, float), side="right") - 1
        h0 = np.where(idx >= 0, self.cumhaz_[np.clip(idx, 0, None)], 0.0)
        w = np.exp(np.asarray(risk, float) - self.shift_)
        return np.exp(-np.outer(w, h0))
