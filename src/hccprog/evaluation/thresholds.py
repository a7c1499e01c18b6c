"""Cut-offs on a score, shared by classification metrics and risk groups (a module of its own, so
that neither imports the other)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def youden_threshold(y_true, score) -> float:
    """The score cut-off maximising sensitivity + specificity - 1 (ties: the lowest cut-off).

    Parameters
    ----------
    y_true : array-like of {0, 1}
        The labels.
    score : array-like of float
        The scores; at or above the cut-off is positive.

    Returns
    -------
    float
        The cut-off.

    Examples
    --------
    >>> youden_threshold([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9])
    0.7
    """
    fpr, tpr, thr = skm.roc_curve(np.asarray(y_true).astype(int), np.asarray(score, dtype=float))
    j = tpr - fpr
    k = int(np.argmax(j))
    return float(min(thr[k], np.max(score)))
