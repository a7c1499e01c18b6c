"""Labels derived from a survival endpoint."""

from __future__ import annotations

import numpy as np


def horizon_labels(time: np.ndarray, event: np.ndarray, horizon: float) -> np.ndarray:
    """Binary status at a fixed horizon (e.g. DMMGNet's 1-year progression).

    Parameters
    ----------
    time : numpy.ndarray
        Follow-up time per patient, in the unit of ``horizon``.
    event : numpy.ndarray
        1 for an observed event, 0 for censoring.
    horizon : float
        The horizon.

    Returns
    -------
    numpy.ndarray of int
        1: event at or before ``horizon``; 0: followed beyond it without the event by then (event
        later, or censored at or after it); -1: censored before it (unknown).

    Examples
    --------
    >>> import numpy as np
    >>> horizon_labels(np.array([100.0, 400, 200, 500]), np.array([1, 1, 0, 0]), 365).tolist()
    [1, 0, -1, 0]
    """
    t = np.asarray(time, float)
    e = np.asarray(event).astype(bool)
    return np.where(e & (t <= horizon), 1, np.where(t >= horizon, 0, -1)).astype(int)
