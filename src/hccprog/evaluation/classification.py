"""Classification metrics for response and fixed-horizon endpoints, and DeLong's test."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn import metrics as skm


def binary_metrics(y_true, score, threshold: float) -> dict[str, float]:
    """ROC AUC of ``score`` and, at ``threshold`` (score >= threshold is positive),
    accuracy, F1, precision, recall (sensitivity) and specificity."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    pred = (s >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    tn, fp, _fn, _tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "auc": float(skm.roc_auc_score(y, s)) if both else float("nan"),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "threshold": float(threshold),
    }


def multiclass_metrics(y_true, proba: np.ndarray, classes: list[str]) -> dict[str, float | dict]:
    """Accuracy and macro F1 of the arg-max class; one-vs-rest ROC AUC per class and macro."""
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=float)
    pred = np.asarray(classes)[np.argmax(p, axis=1)]
    per_class = {}
    for k, c in enumerate(classes):
        yk = (y == c).astype(int)
        per_class[c] = float(skm.roc_auc_score(yk, p[:, k])) if 0 < yk.sum() < len(yk) else float("nan")
    finite = [v for v in per_class.values() if np.isfinite(v)]
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "f1_macro": float(skm.f1_score(y, pred, labels=classes, average="macro", zero_division=0)),
        "auc_ovr_macro": float(np.mean(finite)) if finite else float("nan"),
        "auc_ovr": per_class,
    }


def youden_threshold(y_true, score) -> float:
    """The score cut-off maximising sensitivity + specificity - 1 (ties: the lowest cut-off)."""
    fpr, tpr, thr = skm.roc_curve(np.asarray(y_true).astype(int), np.asarray(score, dtype=float))
    j = tpr - fpr
    k = int(np.argmax(j))
    return float(min(thr[k], np.max(score)))


def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    # psi(x, y) = 1 if x > y, 0.5 if equal; V10: per positive, V01: per negative
    cmp = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    return cmp.mean(axis=1), cmp.mean(axis=0), float(cmp.mean())


def delong_test(y_true, score_a, score_b) -> dict[str, float]:
    """DeLong, DeLong & Clarke-Pearson (1988) test of two correlated ROC AUCs on the same patients.

    Returns both AUCs, their difference with its 95% CI, and the two-sided p-value.
    """
    y = np.asarray(y_true).astype(bool)
    a = np.asarray(score_a, dtype=float)
    b = np.asarray(score_b, dtype=float)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ValueError("DeLong's test needs at least two positives and two negatives")
    v10a, v01a, auc_a = _placements(a[y], a[~y])
    v10b, v01b, auc_b = _placements(b[y], b[~y])
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = auc_a - auc_b
    if var <= 0:
        return {"auc_a": auc_a, "auc_b": auc_b, "difference": diff, "ci_lower": diff, "ci_upper": diff,
                "z": float("nan"), "p_value": 1.0 if diff == 0 else 0.0}
    se = float(np.sqrt(var))
    z = diff / se
    return {"auc_a": auc_a, "auc_b": auc_b, "difference": diff,
            "ci_lower": diff - 1.959963984540054 * se, "ci_upper": diff + 1.959963984540054 * se,
            "z": float(z), "p_value": float(2 * stats.norm.sf(abs(z)))}


def delong_auc_ci(y_true, score, level: float = 0.95) -> tuple[float, float, float]:
    """AUC with DeLong's variance and a Wald CI (clipped to [0, 1])."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=float)
    v10, v01, auc = _placements(s[y], s[~y])
    se = float(np.sqrt(np.var(v10, ddof=1) / y.sum() + np.var(v01, ddof=1) / (~y).sum()))
    zq = stats.norm.ppf(0.5 + level / 2)
    return auc, max(0.0, auc - zq * se), min(1.0, auc + zq * se)
