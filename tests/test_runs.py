"""hccprog.runs: atomic writes, staged run folders, stale staging, predictions read back."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

from hccprog.errors import OutputExistsError, RunFolderError
from hccprog.runs import (
    STAGING_MARKER,
    atomic_path,
    atomic_write_text,
    clean_stale_staging,
    read_predictions,
    run_name,
    staged_run,
    write_json,
    write_unscored,
)


def test_atomic_path_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".csv" and tmp != target
        tmp.write_text("a,b\n1,2\n")
        assert not target.exists()  # nothing in place until the block ends
    assert target.read_text() == "a,b\n1,2\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600

    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "a,b\n1,2\n"  # the old file stays
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]  # no temporary left


def test_text_and_json_writers(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x\ny")
    assert (tmp_path / "a.txt").read_bytes() == b"x\ny"
    write_json(tmp_path / "m.json", {"c": np.float64(0.5), "n": np.int64(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"c": 0.5, "n": 3}
    with pytest.raises(ValueError):
        write_json(tmp_path / "bad.json", {"c": float("nan")})  # JSON has no NaN: refused, not written
    assert not (tmp_path / "bad.json").exists()


def test_staged_run_moves_in_place_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "run"
    with staged_run(out) as stage:
        assert stage.name.startswith(".run.") and (stage / STAGING_MARKER).is_file()
        assert run_name(stage) == "run"
        (stage / "config.yaml").write_text("model: crnn\n")
    assert (out / "config.yaml").exists() and not (out / STAGING_MARKER).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]

    with pytest.raises(OutputExistsError, match="--overwrite"), staged_run(out):
        pass
    with staged_run(out, overwrite=True) as stage:
        (stage / "config.yaml").write_text("model: dlop\n")
    assert (out / "config.yaml").read_text() == "model: dlop\n"

    with pytest.raises(KeyError), staged_run(out, overwrite=True) as stage:
        (stage / "config.yaml").write_text("half")
        raise KeyError("crash")
    assert (out / "config.yaml").read_text() == "model: dlop\n"  # the finished run stays
    assert [p.name for p in tmp_path.iterdir()] == ["run"]

    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="not a run folder"), staged_run(other, overwrite=True):
        pass
    assert (other / "mine.txt").read_text() == "keep"


def test_stale_staging_of_a_dead_process_is_removed_a_live_one_kept(tmp_path):
    out = tmp_path / "run"
    dead, live, foreign = tmp_path / ".run.dead", tmp_path / ".run.live", tmp_path / ".run.user"
    for d in (dead, live, foreign):
        d.mkdir()
    (dead / STAGING_MARKER).write_text("999999999\n")  # no such process
    (live / STAGING_MARKER).write_text(f"{os.getppid()}\n")  # our parent: alive
    # `foreign` has no marker: not ours, never touched
    assert clean_stale_staging(out) == [dead]
    assert live.exists() and foreign.exists() and not dead.exists()


def test_read_predictions(tmp_path):
    frame = pd.DataFrame({"patient_id": ["007", "008"], "model": "cox", "fold": [0, 1], "risk": [0.1, 0.2]})
    frame.to_csv(tmp_path / "predictions.csv", index=False)
    got = read_predictions(tmp_path)
    assert got["patient_id"].tolist() == ["007", "008"]  # ids stay text
    assert got["repeat"].tolist() == [0, 0] and list(got.columns[:3]) == ["patient_id", "model", "repeat"]

    pd.concat([frame, frame.iloc[:1]]).to_csv(tmp_path / "predictions.csv", index=False)
    with pytest.raises(RunFolderError, match="patient 007 appears twice for model cox \\(row 4\\)"):
        read_predictions(tmp_path)
    frame.drop(columns="risk").to_csv(tmp_path / "predictions.csv", index=False)
    with pytest.raises(RunFolderError, match="missing columns \\['risk'\\]"):
        read_predictions(tmp_path)


def test_write_unscored(tmp_path):
    write_unscored(tmp_path, "crnn", {})
    assert not (tmp_path / "unscored.csv").exists()
    write_unscored(tmp_path, "crnn", {"P1": "no mask"})
    got = pd.read_csv(tmp_path / "unscored.csv")
    assert got.to_dict("records") == [{"patient_id": "P1", "model": "crnn", "reason": "no mask"}]
