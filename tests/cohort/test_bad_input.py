"""Every kind of bad input the contract lists is rejected with its own code, naming the
file, the row and the column; input files are never modified."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from hccprog.cohort import load_cohort
from tests.conftest import tree_hashes


def _edit_csv(path, edit):
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame)
    frame.to_csv(path, index=False)


def _edit_yaml(path, edit):
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _set(frame, row, column, value):
    frame.loc[row, column] = value


def _break(kind, folder):
    """Apply one kind of damage; returns (code, file name, row, column) expected."""
    clinical, images, cohort = folder / "clinical.csv", folder / "images.csv", folder / "cohort.yaml"
    if kind == "unknown-id":
        _edit_csv(images, lambda f: _set(f, 2, "patient_id", "NOBODY"))
        return "unknown-id", "images.csv", 4, "patient_id"
    if kind == "duplicate-id":
        frame = pd.read_csv(clinical, dtype=str, keep_default_na=False)
        pd.concat([frame, frame.iloc[[1]]]).to_csv(clinical, index=False)  # 6 patients + copy
        return "duplicate-id", "clinical.csv", 8, "patient_id"
    if kind == "image-missing":
        _edit_csv(images, lambda f: _set(f, 1, "image", "images/none.nii.gz"))
        return "image-missing", "images.csv", 3, "image"
    if kind == "image-unreadable":
        first = pd.read_csv(images).loc[0, "image"]
        (folder / first).write_bytes(b"this is not an image")
        return "image-unreadable", "images.csv", 2, "image"
    if kind == "mask-missing":
        _edit_csv(images, lambda f: _set(f, 4, "mask", "images/none_mask.nii.gz"))
        return "mask-missing", "images.csv", 6, "mask"
    if kind == "mask-unreadable":
        frame = pd.read_csv(images)
        bad = folder / "images" / "broken_mask.nii.gz"
        bad.write_bytes(b"\x1f\x8b garbage")
        _edit_csv(images, lambda f: _set(f, 5, "mask", str(bad.relative_to(folder))))
        return "mask-unreadable", "images.csv", 7, "mask"
    if kind == "geometry-mismatch":
        frame = pd.read_csv(images)
        src = folder / frame.loc[0, "mask"]
        img = nib.load(src)
        shifted = img.affine.copy()
        shifted[0, 3] += 30.0
        moved = folder / "images" / "moved_mask.nii.gz"
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), shifted), moved)
        _edit_csv(images, lambda f: _set(f, 0, "mask", str(moved.relative_to(folder))))
        return "geometry-mismatch", "images.csv", 2, "mask"
    if kind == "time-negative":
        _edit_csv(clinical, lambda f: _set(f, 0, "os_time", "-12"))
        return "time-negative", "clinical.csv", 2, "os_time"
    if kind == "time-non-numeric":
        _edit_csv(clinical, lambda f: _set(f, 2, "pfs_time", "about a year"))
        return "time-non-numeric", "clinical.csv", 4, "pfs_time"
    if kind == "event-invalid":
        _edit_csv(clinical, lambda f: _set(f, 1, "os_event", "2"))
        return "event-invalid", "clinical.csv", 3, "os_event"
    if kind == "response-invalid":
        _edit_csv(clinical, lambda f: _set(f, 4, "response", "excellent"))
        return "response-invalid", "clinical.csv", 6, "response"
    if kind == "covariate-absent":
        _edit_yaml(cohort, lambda d: d["covariates"].update({"child_pugh_score": {"type": "numeric"}}))
        return "covariate-absent", "clinical.csv", 1, "child_pugh_score"
    raise AssertionError(kind)


KINDS = ["unknown-id", "duplicate-id", "image-missing", "image-unreadable", "mask-missing",
         "mask-unreadable", "geometry-mismatch", "time-negative", "time-non-numeric",
         "event-invalid", "response-invalid", "covariate-absent"]


def test_clean_cohort_has_no_errors(tiny_cohort):
    result = load_cohort(tiny_cohort / "cohort.yaml")
    assert result.ok, [str(i) for i in result.report.errors]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_bad_input(tiny_cohort, kind):
    code, file, row, column = _break(kind, tiny_cohort)
    before = tree_hashes(tiny_cohort)
    result = load_cohort(tiny_cohort / "cohort.yaml")
    assert not result.ok
    matching = [i for i in result.report.errors if i.code == code]
    assert len(matching) == 1, [str(i) for i in result.report.issues]
    issue = matching[0]
    assert issue.file.endswith(file) and issue.row == row and issue.column == column
    assert file in str(issue) and f"row {row}" in str(issue) and f"'{column}'" in str(issue)
    # only this problem is an error, and the inputs are byte-for-byte unchanged
    assert {i.code for i in result.report.errors} == {code}
    assert tree_hashes(tiny_cohort) == before


def test_all_problems_reported_at_once(tiny_cohort):
    for kind in ("time-negative", "event-invalid", "image-missing", "unknown-id"):
        _break(kind, tiny_cohort)
    report = load_cohort(tiny_cohort / "cohort.yaml").report
    assert {"time-negative", "event-invalid", "image-missing", "unknown-id"} <= report.codes()


def test_warnings_for_what_a_study_can_live_with(tiny_cohort):
    frame = pd.read_csv(tiny_cohort / "images.csv")
    # a patient without images, a mask without tumor, a covariate mostly missing
    frame = frame[frame.patient_id != frame.patient_id.iloc[-1]]
    no_tumor = tiny_cohort / "images" / "no_tumor_mask.nii.gz"
    src = nib.load(tiny_cohort / frame.loc[0, "mask"])
    data = np.asanyarray(src.dataobj).copy()
    data[data == 2] = 1
    nib.save(nib.Nifti1Image(data, src.affine), no_tumor)
    frame.loc[0, "mask"] = str(no_tumor.relative_to(tiny_cohort))
    frame.to_csv(tiny_cohort / "images.csv", index=False)
    _edit_csv(tiny_cohort / "clinical.csv", lambda f: f.__setitem__("inr", ["", "", "", "", "1.1", ""]))
    result = load_cohort(tiny_cohort / "cohort.yaml")
    assert result.ok
    codes = {i.code for i in result.report.warnings}
    assert {"patient-without-images", "mask-no-tumor", "covariate-many-missing"} <= codes


def test_yaml_schema_errors_name_key_and_line(tiny_cohort):
    _edit_yaml(tiny_cohort / "cohort.yaml", lambda d: d.update({"time_unit": "fortnights"}))
    report = load_cohort(tiny_cohort / "cohort.yaml").report
    (issue,) = report.errors
    assert issue.code == "yaml-schema" and issue.column == "time_unit" and issue.row is not None
    lines = (tiny_cohort / "cohort.yaml").read_text().splitlines()
    assert lines[issue.row - 1].startswith("time_unit")


def test_missing_clinical_table_and_columns(tiny_cohort):
    _edit_yaml(tiny_cohort / "cohort.yaml", lambda d: d["endpoints"].update(
        {"ttp": {"time": "ttp_time", "event": "ttp_event"}}))
    report = load_cohort(tiny_cohort / "cohort.yaml").report
    assert {(i.code, i.column) for i in report.errors} == {
        ("column-missing", "ttp_time"), ("column-missing", "ttp_event")}
    shutil.move(tiny_cohort / "clinical.csv", tiny_cohort / "gone.csv")
    report = load_cohort(tiny_cohort / "cohort.yaml").report
    assert [i.code for i in report.errors] == ["file-missing"]


def test_duplicate_series_and_inconsistent_days(tiny_cohort):
    frame = pd.read_csv(tiny_cohort / "images.csv")
    dup = frame.iloc[[0]].copy()
    frame = pd.concat([frame, dup], ignore_index=True)
    frame.loc[1, "day"] = 5  # same patient/time point as row 0, other day
    frame.to_csv(tiny_cohort / "images.csv", index=False)
    report = load_cohort(tiny_cohort / "cohort.yaml").report
    codes = [i.code for i in report.errors]
    assert "duplicate-series" in codes and "day-inconsistent" in codes
