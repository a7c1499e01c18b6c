"""Patient-level bootstrap confidence intervals and paired comparisons."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile-bootstrap 95% CI (or another level)."""

    value: float
    lower: float
    upper: float
    n_boot: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        return {"value": _r(self.value), "ci_lower": _r(self.lower), "ci_upper": _r(self.upper),
                "n_boot": self.n_boot}

    def __str__(self) -> str:
        return f"{self.value:.3f} ({self.lower:.3f}-{self.upper:.3f})"


def _r(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def bootstrap_indices(n: int, n_boot: int, seed: int, strata: np.ndarray | None = None) -> np.ndarray:
    """(n_boot, n) resampled row indices, drawn within ``strata`` when given (e.g. events)."""
    rng = np.random.default_rng(seed)
    if strata is None:
        return rng.integers(0, n, size=(n_boot, n))
    out = np.empty((n_boot, n), dtype=int)
    col = 0
    for level in np.unique(strata):
        members = np.flatnonzero(strata == level)
        out[:, col:col + len(members)] = rng.choice(members, size=(n_boot, len(members)), replace=True)
        col += len(members)
    return out


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95, strata: np.ndarray | None = None) -> Estimate:
    """Percentile CI of ``statistic(indices)`` over patient resamples; NaN replicates dropped.

    Parameters
    ----------
    statistic : callable
        ``statistic(indices) -> float`` on the patients at ``indices`` (with repeats).
    n : int
        Number of patients; the point estimate is ``statistic(arange(n))``.
    n_boot : int, optional
        Resamples; 0 gives the point estimate with NaN bounds.
    seed : int, optional
        Seed of the resampling (the same seed, the same CI).
    level : float, optional
        Coverage of the interval.
    strata : numpy.ndarray, optional
        Resample within each stratum, keeping its size.

    Returns
    -------
    Estimate
        The value, the bounds and the number of finite replicates (NaN bounds when fewer than
        ``max(10, n_boot // 2)`` replicates are finite).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0.0, 1, 1, 0, 1, 1, 0, 1])
    >>> est = bootstrap_ci(lambda ix: float(x[ix].mean()), len(x), n_boot=200, seed=0)
    >>> est.as_dict()
    {'value': 0.625, 'ci_lower': 0.25, 'ci_upper': 1.0, 'n_boot': 200}
    """
    value = statistic(np.arange(n))
    if n_boot <= 0:
        return Estimate(value, float("nan"), float("nan"), 0)
    reps = np.array([statistic(ix) for ix in bootstrap_indices(n, n_boot, seed, strata)], dtype=float)
    reps = reps[np.isfinite(reps)]
    if len(reps) < max(10, n_boot // 2):
        return Estimate(value, float("nan"), float("nan"), len(reps))
    alpha = (1 - level) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return Estimate(float(value), float(lo), float(hi), len(reps))


def paired_bootstrap_difference(stat_a: Callable[[np.ndarray], float], stat_b: Callable[[np.ndarray], float],
                                n: int, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                                strata: np.ndarray | None = None) -> tuple[Estimate, float]:
    """CI of ``stat_a - stat_b`` on the same resamples, and a two-sided bootstrap p-value
    (twice the smaller tail share of replicates on either side of 0)."""
    full = np.arange(n)
    value = stat_a(full) - stat_b(full)
    diffs = []
    for ix in bootstrap_indices(n, n_boot, seed, strata):
        diffs.append(stat_a(ix) - stat_b(ix))
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < max(10, n_boot // 2):  # no (or too few) resamples: no interval, no p-value
        return Estimate(float(value), float("nan"), float("nan"), len(d)), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(d, [alpha, 1 - alpha])
    p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))
    return Estimate(float(value), float(lo), float(hi), len(d)), float(p)
