"""Breslow baseline hazard: survival probabilities from a risk score fitted by partial likelihood."""

from __future__ import annotations

import numpy as np


class BreslowSurvival:
    """S(t | r) = exp(-H0(t) exp(r)), H0 estimated on training risks, times and events.

    ``fit(risk, time, event)`` estimates the Breslow baseline cumulative hazard H0 on the training
    patients; ``predict_survival(risk, times)`` gives the (n, len(times)) survival of new risks;
    ``state()``/``from_state()`` round-trip it as plain JSON.

    Examples
    --------
    >>> base = BreslowSurvival().fit([0.0, 0.5, 1.0, -0.5], [2, 3, 5, 8], [1, 1, 0, 1])
    >>> base.predict_survival([0.0, 1.0], [1, 4]).round(3).tolist()
    [[1.0, 0.692], [1.0, 0.367]]
    >>> BreslowSurvival.from_state(base.state()).predict_survival([0.0], [4]).round(3).tolist()
    [[0.692]]
    """

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
        # the baseline's variance (Breslow), the risk score held fixed
        self.var_: np.ndarray | None = np.cumsum(deaths / at_risk**2)
        return self

    def state(self) -> dict:
        """Plain JSON (``from_state`` rebuilds the baseline)."""
        return {"shift": float(self.shift_), "times": self.times_.tolist(), "cumhaz": self.cumhaz_.tolist(),
                "var": None if self.var_ is None else self.var_.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> BreslowSurvival:
        base = cls()
        base.shift_ = float(state["shift"])
        base.times_ = np.asarray(state["times"], float)
        base.cumhaz_ = np.asarray(state["cumhaz"], float)
        # runs before hccprog 0.1.1 saved no variance
        base.var_ = np.asarray(state["var"], float) if state.get("var") is not None else None
        return base

    def band(self, risk: float, times, *, z: float = 1.96) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """S(t | risk) at ``times`` with a pointwise 95% band from the variance of the baseline
        hazard (log transform of the cumulative hazard); the uncertainty of the risk score itself is
        not in it. None for a baseline saved without its variance."""
        var = getattr(self, "var_", None)
        if var is None:
            return None
        idx = np.searchsorted(self.times_, np.asarray(times, float), side="right") - 1
        h0 = np.where(idx >= 0, self.cumhaz_[np.clip(idx, 0, None)], 0.0)
        v0 = np.where(idx >= 0, var[np.clip(idx, 0, None)], 0.0)
        w = float(np.exp(risk - self.shift_))
        with np.errstate(divide="ignore", invalid="ignore"):
            se_log = np.where(h0 > 0, np.sqrt(v0) / h0, 0.0)
        s = np.exp(-w * h0)
        return s, np.exp(-w * h0 * np.exp(z * se_log)), np.exp(-w * h0 * np.exp(-z * se_log))

    def predict_survival(self, risk, times) -> np.ndarray:
        """(n, len(times)) survival probabilities."""
        idx = np.searchsorted(self.times_, np.asarray(times, float), side="right") - 1
        h0 = np.where(idx >= 0, self.cumhaz_[np.clip(idx, 0, None)], 0.0)
        w = np.exp(np.asarray(risk, float) - self.shift_)
        return np.exp(-np.outer(w, h0))
