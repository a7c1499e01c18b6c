"""hccprog.fills: the ``imputed`` column's entries, written and read back, and their notes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccprog.fills import (
    FILL_KINDS,
    covariate_fills,
    fill_kind,
    fill_notes,
    join_fills,
    split_fills,
    unseen_level_fills,
)
from hccprog.survival.preprocess import TabularPreprocessor


def test_join_and_split_round_trip():
    entries = ["series-filled: CT_ART from CT_PV", "timepoint-carried-forward: follow-up 1"]
    cell = join_fills(entries)
    assert cell == "series-filled: CT_ART from CT_PV; timepoint-carried-forward: follow-up 1"
    assert split_fills(cell) == entries
    assert split_fills(join_fills(["mask-resampled: a; b"])) == ["mask-resampled: a, b"]  # the separator never leaks
    assert split_fills(float("nan")) == [] and split_fills(None) == [] and split_fills("") == []
    assert [fill_kind(e) for e in entries] == ["series-filled", "timepoint-carried-forward"]
    assert all(fill_kind(e) in FILL_KINDS for e in entries)


def test_covariate_fills_name_each_missing_covariate():
    X = pd.DataFrame({"age": [60, np.nan], "afp": [np.nan, np.nan], "sex": ["M", "F"]}, index=["P1", "P2"])
    assert covariate_fills(X, ["age", "afp", "sex"]) == {
        "P1": ["covariate-imputed: afp"], "P2": ["covariate-imputed: age", "covariate-imputed: afp"]}


def test_unseen_levels_are_read_as_the_reference_and_said():
    prep = TabularPreprocessor().fit(pd.DataFrame({"child_pugh": ["A", "A", "B"]}))
    new = pd.DataFrame({"child_pugh": ["C", "A"]}, index=["N1", "N2"])
    fills, notes = unseen_level_fills(prep, new, "cox")
    assert fills == {"N1": ["covariate-imputed: child_pugh 'C' unseen in training, read as 'A'"]}
    assert len(notes) == 1 and "cox: covariate 'child_pugh' has level(s) ['C']" in notes[0] and "N1" in notes[0]


def test_fill_notes_count_patients_per_kind():
    notes = fill_notes({"P1": ["mask-propagated: follow-up 1", "covariate-imputed: afp"],
                        "P2": ["mask-propagated: follow-up 2"], "P3": []})
    assert notes == [
        "mask-propagated: 2 patients (" + FILL_KINDS["mask-propagated"] + "; e.g. P1: follow-up 1)",
        "covariate-imputed: 1 patient (" + FILL_KINDS["covariate-imputed"] + "; e.g. P1: afp)",
    ]
