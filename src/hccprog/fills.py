"""What the toolkit may fill in for a patient, and how it is written down.

Every fill is an entry ``kind: detail`` (kinds below). Preprocessing returns them per patient, the
Cox models add ``covariate-imputed``; ``predictions.csv`` holds them in its ``imputed`` column (entries
joined by ``"; "``), reports count them per model and ``validate`` warns of them before any run.
"""

from __future__ import annotations

import pandas as pd

#: What preprocessing may fill in, as the first word of each ``imputed`` entry (``kind: detail``).
FILL_KINDS = {
    "series-filled": "a series the time point lacks, filled with another series of it",
    "timepoint-carried-forward": "a missing time point, the last observed one carried forward (LOCF)",
    "mask-propagated": "a time point without a mask, its mask propagated from another time point by registration",
    "mask-resampled": "a mask on another grid than its image, resampled (nearest neighbour)",
    "single-slice": "a single-slice series, its one slice repeated as the representative slices",
    "covariate-imputed": "a missing clinical covariate, imputed (training median or mode)",
}


def join_fills(entries: list[str]) -> str:
    """The ``imputed`` cell of a prediction: entries joined by ``"; "`` (which no entry may hold)."""
    return "; ".join(str(e).replace("; ", ", ") for e in entries)


def split_fills(cell) -> list[str]:
    """The entries of an ``imputed`` cell (empty, or NaN as pandas reads an empty cell: none)."""
    if cell is None or (isinstance(cell, float) and cell != cell):
        return []
    return [e for e in str(cell).split("; ") if e.strip()]


def fill_kind(entry: str) -> str:
    """The kind of an entry (``kind: detail``)."""
    return entry.partition(": ")[0]


def covariate_fills(X: pd.DataFrame, covariates: list[str]) -> dict[str, list[str]]:
    """Per patient, the ``covariate-imputed`` entries of the covariates it lacks (imputed by the
    model's training median or mode)."""
    missing = X[covariates].isna()
    return {str(p): [f"covariate-imputed: {c}" for c in covariates if row[c]] for p, row in missing.iterrows()}


def unseen_level_fills(prep, X: pd.DataFrame, model: str) -> tuple[dict[str, list[str]], list[str]]:
    """``covariate-imputed`` entries and notes for categorical values that ``model``'s training never
    saw (a :class:`~hccprog.survival.preprocess.TabularPreprocessor` reads them as its reference level)."""
    fills: dict[str, list[str]] = {}
    notes = []
    for column, hits in prep.unseen_levels(X).items():
        ref = prep.fill_[column]
        for pid, value in hits.items():
            fills.setdefault(pid, []).append(f"covariate-imputed: {column} '{value}' unseen in training, read as "
                                             f"'{ref}'")
        values = sorted(set(hits.values()))
        ids = sorted(hits)
        notes.append(f"{model}: covariate '{column}' has level(s) {values} that the training cohort never had "
                     f"(levels {sorted({*map(str, prep.levels_[column]), str(ref)})}); {len(ids)} patient(s) "
                     f"({', '.join(ids[:10])}{', ...' if len(ids) > 10 else ''}) read as the reference level "
                     f"'{ref}' (recorded as covariate-imputed)")
    return fills, notes


def fill_notes(imputed: dict[str, list[str]]) -> list[str]:
    """One note per kind of filled-in input: how many patients, and an example."""
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for pid, entries in imputed.items():
        for entry in entries:
            kind, _, detail = entry.partition(": ")
            by_kind.setdefault(kind, []).append((pid, detail))
    notes = []
    for kind, hits in by_kind.items():
        patients = len({p for p, _ in hits})
        pid, detail = hits[0]
        notes.append(f"{kind}: {patients} patient{'s' if patients != 1 else ''} "
                     f"({FILL_KINDS.get(kind, kind)}; e.g. {pid}: {detail})")
    return notes
