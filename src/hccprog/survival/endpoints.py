"""Labels derived from a survival endpoint."""

from __future__ import annotations

import numpy as np


def horizon_labels(time: np.ndarray, event: np.ndarray, horizon: float) -> np.ndarray:
    """1: event at or before ``horizon``; 0: followed beyond it without the event by then
    (event later, or censored at or after it); -1: censored before it (unknown)."""
    t = np.asarray(time, float)
    e = np.asarray(event).astype(bool)
    return np.where(e & (t <= horizon), 1, np.where(t >= horizon, 0, -1)).astype(int)
