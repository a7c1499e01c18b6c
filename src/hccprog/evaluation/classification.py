"""Classification metrics for response and fixed-horizon endpoints, and DeLong's test."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from hccprog.evaluation.bootstrap import bootstrap_ci
from hccprog.evaluation.groups import logrank
from hccprog.evaluation.thresholds import youden_threshold as youden_threshold  # re-exported (it lived here)


def binary_metrics(y_true, score, threshold: float) -> dict[str, float]:
    """ROC AUC of ``score`` and, at ``threshold`` (score >= threshold is positive),
    accuracy, F1, precision (positive predictive value), negative predictive value, recall
    (sensitivity) and specificity.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        The labels (1: positive, e.g. PD).
    score : array-like of float
        A score per patient, higher for the positive class.
    threshold : float
        Scores at or above it are called positive.

    Returns
    -------
    dict of str to float
        ``auc``, ``accuracy``, ``f1``, ``precision``, ``npv``, ``recall``, ``specificity`` and ``threshold``
        (``npv`` and ``specificity`` NaN when nobody is called, or is, negative).

    Examples
    --------
    >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9], 0.5)
    >>> m["auc"], m["accuracy"], m["recall"], m["specificity"], m["npv"]
    (1.0, 0.75, 1.0, 0.5, 1.0)
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    pred = (s >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    tn, fp, fn, _tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "auc": float(skm.roc_auc_score(y, s)) if both else float("nan"),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "npv": float(tn / (tn + fn)) if tn + fn else float("nan"),
        "threshold": float(threshold),
    }


def multiclass_metrics(y_true, proba: np.ndarray, classes: list) -> dict[str, Any]:
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


def risk_class_labels(time: np.ndarray, event: np.ndarray, edges: list[float], *,
                      worst_first: bool = False) -> np.ndarray:
    """Ordered risk classes from the time to event alone (hccprog's ``os-edges`` rule, for cohorts
    without an expert severity read); ``edges`` e_1 < ... < e_{K-1}.

    With ``worst_first=False`` (higher = worse) an event at t gets class ``K - 1 - #{e_j <= t}``
    (event before e_1: the worst class K - 1) and anyone observed to e_{K-1} or beyond (event then
    or later, or censored later) gets class 0; ``worst_first=True`` numbers the same classes the
    other way round (class 0 = worst, as Yao et al. 2025 do). A patient censored before e_{K-1}
    has an unknown class: -1 (left out of the loss and of the class metrics).

    Examples
    --------
    >>> risk_class_labels([6, 18, 30, 40, 20], [1, 1, 1, 0, 0], [12, 24, 36]).tolist()
    [3, 2, 1, 0, -1]
    >>> risk_class_labels([6, 18, 30, 40, 20], [1, 1, 1, 0, 0], [12, 24, 36], worst_first=True).tolist()
    [0, 1, 2, 3, -1]
    """
    t = np.asarray(time, float)
    e = np.asarray(event).astype(bool)
    edges_a = np.asarray(edges, float)
    k = len(edges_a) + 1
    labels = k - 1 - np.searchsorted(edges_a, t, side="right")
    labels = np.where(e | (t >= edges_a[-1]), labels, -1).astype(int)
    return orient_classes(labels, k, worst_first=worst_first)


def orient_classes(labels, k: int, *, worst_first: bool) -> np.ndarray:
    """Classes numbered worst-last (higher = worse) renumbered worst-first when asked (-1 kept)."""
    y = np.asarray(labels).astype(int)
    return np.where(y >= 0, k - 1 - y, -1).astype(int) if worst_first else y


def os_severity_labels(time, event, severity, threshold: float, *, worst_first: bool = True) -> np.ndarray:
    """The four risk classes of Yao et al. 2025 (ProgSwin-UNETR, Appendix 5): overall survival
    below or at least ``threshold`` (36 months in the paper), each split by an expert's imaging
    severity read (1 = severe features: rapid progression, necrosis, irregular margin, vascular
    invasion, satellite nodules; 0 = milder).

    With ``worst_first=True`` (the paper's numbering) class 0 = short survival and severe (high
    risk), 1 = short and milder (medium-to-high), 2 = long and severe (low-to-medium), 3 = long and
    milder (low risk); ``worst_first=False`` numbers them the other way round. Unknown (-1): a
    patient censored before ``threshold`` (short or long survival unknown) or without a severity
    read (NaN or a negative value).

    Examples
    --------
    >>> os_severity_labels([10, 10, 40, 50, 20, 12], [1, 1, 0, 1, 0, 1], [1, 0, 1, 0, 1, np.nan], 36).tolist()
    [0, 1, 2, 3, -1, -1]
    """
    t = np.asarray(time, float)
    e = np.asarray(event).astype(bool)
    sev = np.asarray(severity, float)
    short = e & (t < threshold)
    long_ = t >= threshold
    known = (short | long_) & np.isfinite(sev) & (sev >= 0)
    # worst-first: short & severe 0, short & mild 1, long & severe 2, long & mild 3
    labels = np.where(short, 0, 2) + np.where(sev > 0, 0, 1)
    labels = np.where(known, labels, -1).astype(int)
    return labels if worst_first else orient_classes(labels, 4, worst_first=True)


def horizon_progression_metrics(labels, probability, *, threshold: float = 0.5) -> dict:
    """A predicted probability of the event by a horizon against the known status there
    (``labels`` 1 / 0, -1 unknown and left out): AUC with DeLong's 95% CI, and accuracy, F1,
    sensitivity, specificity at ``threshold``."""
    y = np.asarray(labels).astype(int)
    p = np.asarray(probability, float)
    known = (y >= 0) & np.isfinite(p)
    yk, pk = y[known], p[known]
    out: dict = {"n_known": int(known.sum()), "n_unknown": int((~known).sum()), "events": int(yk.sum())}
    if len(yk):
        out.update(auc_and_classification(yk, pk, threshold))
    return _finite_or_none(out)


def auc_and_classification(y_true, score, threshold: float) -> dict:
    """ROC AUC with DeLong's 95% CI (``auc``, where both classes occur) and accuracy, F1,
    precision, recall, specificity at ``threshold`` (score >= threshold is positive)."""
    y = np.asarray(y_true).astype(int)
    out: dict = {k: v for k, v in binary_metrics(y, score, threshold).items() if k != "auc"}
    if len(np.unique(y)) == 2:
        auc, lo, hi = delong_auc_ci(y, score)
        out["auc"] = {"value": auc, "ci_lower": lo, "ci_upper": hi}
    return out


def per_class_metrics(y_true, proba: np.ndarray, classes: list[int]) -> dict[str, dict]:
    """Each class against the rest (Yao et al. 2025, Table 2 and Fig. 5): the one-vs-rest ROC AUC
    of its probability with DeLong's 95% CI, and sensitivity, specificity, precision, NPV and F1
    of the arg-max class being it.

    Examples
    --------
    >>> p = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    >>> m = per_class_metrics([0, 0, 1, 1], p, [0, 1])
    >>> m["1"]["auc"]["value"], m["1"]["specificity"], m["0"]["sensitivity"]
    (1.0, 1.0, 1.0)
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(proba, float)
    pred = np.asarray(classes)[np.argmax(p, axis=1)]
    out: dict[str, dict] = {}
    for k, c in enumerate(classes):
        yk = (y == c).astype(int)
        entry: dict[str, Any] = {"n": int(yk.sum())}
        bm = binary_metrics(yk, (pred == c).astype(float), 0.5) if len(yk) else {}
        entry.update({key: bm.get(key) for key in ("recall", "specificity", "precision", "npv", "f1")})
        entry["sensitivity"] = entry.pop("recall")
        if 2 <= yk.sum() <= len(yk) - 2:  # DeLong's variance needs two of each
            auc, lo, hi = delong_auc_ci(yk, p[:, k])
            entry["auc"] = {"value": auc, "ci_lower": lo, "ci_upper": hi, "method": "DeLong"}
        out[str(c)] = entry
    return out


def risk_class_metrics(labels, proba: np.ndarray, time, event, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Ordered risk classes: accuracy, macro F1 and one-vs-rest AUC (per class and macro) of the
    patients whose class is known, with percentile-bootstrap 95% CIs; per class the one-vs-rest AUC
    with DeLong's CI, sensitivity, specificity, precision, NPV and F1 (:func:`per_class_metrics`);
    the confusion matrix; the log-rank test of the predicted classes on every patient (censored
    ones included)."""

    y = np.asarray(labels).astype(int)
    p = np.asarray(proba, float)
    k = p.shape[1]
    classes = list(range(k))
    known = y >= 0
    yk, pk = y[known], p[known]
    point = multiclass_metrics(yk, pk, classes)

    def stat(name):
        def f(idx):
            if len(np.unique(yk[idx])) < 2:
                return float("nan")
            return float(multiclass_metrics(yk[idx], pk[idx], classes)[name])
        return f

    out = {"n_known": int(known.sum()), "n_unknown": int((~known).sum()),
           "class_counts": {str(c): int((yk == c).sum()) for c in classes},
           "auc_ovr": {str(c): point["auc_ovr"][c] for c in classes},
           "per_class": per_class_metrics(yk, pk, classes),
           "confusion": skm.confusion_matrix(yk, np.argmax(pk, axis=1), labels=classes).tolist()}
    for name in ("accuracy", "f1_macro", "auc_ovr_macro"):
        out[name] = bootstrap_ci(stat(name), len(yk), n_boot=n_boot, seed=seed).as_dict()
    predicted = np.argmax(p, axis=1)
    if len(np.unique(predicted)) > 1:
        out["logrank_predicted"] = logrank(np.asarray(time, float), np.asarray(event, int), predicted)
    out["predicted_counts"] = {str(c): int((predicted == c).sum()) for c in classes}
    return _finite_or_none(out)


def _finite_or_none(obj, digits: int | None = 6):
    """NaN/inf -> None, recursively (metrics.json is strict JSON); finite floats rounded to
    ``digits`` decimals (None: kept)."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v, digits) for v in obj]
    if isinstance(obj, float | np.floating):
        if not np.isfinite(obj):
            return None
        return float(obj) if digits is None else round(float(obj), digits)
    return obj


def response_metrics(y: np.ndarray, risk: np.ndarray, threshold: float) -> dict:
    """ROC AUC with DeLong's 95% CI, and the classification at a fixed logit threshold (a final
    model applied to new patients)."""
    out = {"n": len(y), "n_positive": int(np.sum(y)), **auc_and_classification(y, risk, threshold)}
    if "auc" in out:
        out["auc"]["method"] = "DeLong"
    return out


def response_run_metrics(preds, labels, *, reference: str | None) -> dict:
    """``metrics.json`` of a response run from its first repeat's out-of-fold predictions: per
    model ROC AUC with DeLong's 95% CI and accuracy, F1, precision, sensitivity (``recall``) and
    specificity of ``risk_group`` (the predicted class at the cut-off learned on the training part
    of the patient's own repeat and fold); DeLong's paired test of each model against
    ``reference`` on the patients both scored. ``labels``: patient id -> 1 (PD) / 0."""
    first = preds[preds["repeat"] == preds["repeat"].min()] if "repeat" in preds.columns else preds
    models: dict[str, dict[str, Any]] = {}
    risks: dict[str, Any] = {}
    for name, g in first.groupby("model", sort=False):
        g = g.set_index("patient_id")
        y = labels.loc[g.index].to_numpy(int)
        risks[name] = g["risk"]
        entry: dict[str, Any] = {"kind": "fixed score" if (g["fold"] == -1).all() else "cross-validated", "n": len(g),
                 "n_positive": int(y.sum())}
        if len(np.unique(y)) == 2:
            auc, lo, hi = delong_auc_ci(y, g["risk"].to_numpy(float))
            entry["auc"] = {"value": auc, "ci_lower": lo, "ci_upper": hi, "method": "DeLong"}
        bm = binary_metrics(y, g["risk_group"].to_numpy(float), 0.5)
        entry.update({k: bm[k] for k in ("accuracy", "f1", "precision", "npv", "recall", "specificity")})
        models[name] = entry
    comparisons = []
    if reference in risks:
        ref = risks[reference]
        for name, r in risks.items():
            if name == reference:
                continue
            common = r.index.intersection(ref.index)
            y = labels.loc[common].to_numpy(int)
            if y.sum() < 2 or (1 - y).sum() < 2:
                continue
            d = delong_test(y, r.loc[common], ref.loc[common])
            comparisons.append({"model": name, "reference": reference, "n": len(common),
                                "auc_difference": {"value": d["difference"], "ci_lower": d["ci_lower"],
                                                   "ci_upper": d["ci_upper"], "p_value": d["p_value"],
                                                   "method": "DeLong paired"}})
    return _finite_or_none({"schema": 1, "task": "response", "positive_class": "PD", "reference": reference,
                            "models": models, "comparisons": comparisons}, digits=None)
