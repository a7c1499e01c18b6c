"""The trained-model file (``models/<model>.json``, :mod:`hccprog.trained`): written in one place with a
schema version, read by predict and explain, damaged or newer files named with their field, and run
folders written before the schema version still load."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from hccprog.errors import RunFolderError
from hccprog.trained import SCHEMA_VERSION, TrainedModel, read_trained_model
from tests.integration.helpers import invoke


@pytest.fixture
def trained(tiny_trained_run):
    """The session's tiny CRNN run (tests/integration/conftest.py); read-only."""
    return tiny_trained_run


def _predict(run, cohort, out) -> pd.DataFrame:
    code, output = invoke("predict", run, cohort / "cohort.yaml", "--out", out)
    assert code == 0, output
    return pd.read_csv(out / "predictions.csv")


def test_written_with_a_schema_version_and_read_typed(trained):
    path = trained / "models" / "crnn.json"
    raw = json.loads(path.read_text())
    assert next(iter(raw)) == "schema_version" and raw["schema_version"] == SCHEMA_VERSION
    model = read_trained_model(path)
    assert isinstance(model, TrainedModel) and model.model == "crnn" and not model.uses_features
    assert model.channels == raw["channels"] and model.as_dict() == raw  # the file's own values, uncoerced


def test_a_run_folder_from_before_the_schema_version_still_loads(trained, tiny_cohort_master, tmp_path):
    """Today's writer wrote the same description without ``schema_version``: such a folder predicts the
    same numbers."""
    old = tmp_path / "old"
    shutil.copytree(trained, old)
    path = old / "models" / "crnn.json"
    raw = json.loads(path.read_text())
    raw.pop("schema_version")
    path.write_text(json.dumps(raw))
    assert read_trained_model(path).schema_version == SCHEMA_VERSION
    a = _predict(trained, tiny_cohort_master, tmp_path / "p-new")
    b = _predict(old, tiny_cohort_master, tmp_path / "p-old")
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(("change", "named"), [
    (lambda d: d.pop("horizons"), "lacks horizons"),
    (lambda d: d.update(channels=5), "field 'channels'"),
    (lambda d: d.update(network="dense"), "field 'network'"),
    (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "newer than this hccprog reads"),
])
def test_a_damaged_or_newer_file_names_the_file_and_the_field(trained, tiny_cohort_master, tmp_path, change,
                                                              named):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    path = run / "models" / "crnn.json"
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))
    with pytest.raises(RunFolderError, match=named) as err:
        read_trained_model(path)
    assert "crnn.json" in str(err.value)
    code, output = invoke("predict", run, tiny_cohort_master / "cohort.yaml", "--out", tmp_path / "p")
    text = " ".join(output.split())
    assert code == 1 and "crnn.json" in text and named in text and "bug" not in text
