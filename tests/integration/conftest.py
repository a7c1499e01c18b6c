"""Session-scoped runs that several integration modules read: trained once per test session.

Under pytest-xdist the workers share one copy: the first to need it trains it, under a file lock in
the session's common temporary folder, and the others wait and read it. A test that changes a run
copies it first (``shutil.copytree``); these folders stay as trained."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from filelock import FileLock

from tests.integration.helpers import invoke


def _shared_base(tmp_path_factory) -> Path:
    """A temporary folder every xdist worker of this session sees (its own one without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory, tiny_cohort_master) -> Path:
    """``hccprog train`` of CRNN (preset ``tiny``, 2 folds) on the 6-patient cohort: the run folder."""
    base = _shared_base(tmp_path_factory) / "tiny-trained"
    run = base / "run"
    base.mkdir(exist_ok=True)
    with FileLock(str(base) + ".lock"):
        if not (run / "metrics.json").exists():
            # the cohort itself is written per worker, with the same seed: the run reads only its folder
            code, output = invoke("train", tiny_cohort_master / "cohort.yaml", "--preset", "tiny", "--folds", "2",
                                  "--n-boot", "10", "--out", run, "--cache", base / "cache")
            assert code == 0, output
    return run
