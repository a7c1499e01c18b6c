"""Real survival datasets shipped with scikit-survival, each with a Cox model's risk (tests that use them
skip without scikit-survival; the others run)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest


def _load(name: str):
    """The data ship with scikit-survival: tests that use them skip without it (GPL-3.0, tests only)."""
    sksurv_datasets = pytest.importorskip("sksurv.datasets")
    loader = {"veterans": sksurv_datasets.load_veterans_lung_cancer, "gbsg2": sksurv_datasets.load_gbsg2,
              "whas500": sksurv_datasets.load_whas500}[name]
    X, y = loader()
    event_name, time_name = y.dtype.names
    e = y[event_name].astype(bool)
    t = y[time_name].astype(float)
    from lifelines import CoxPHFitter

    Xn = pd.get_dummies(X, drop_first=True).astype(float)
    frame = Xn.copy()
    frame["T"], frame["E"] = t, e.astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph = CoxPHFitter(penalizer=0.01).fit(frame, "T", "E")
    risk = cph.predict_log_partial_hazard(Xn).to_numpy()
    return {"name": name, "time": t, "event": e, "risk": risk, "y": y, "cph": cph, "X": Xn,
            "first_covariate": Xn.iloc[:, 0].to_numpy()}


@pytest.fixture(params=["veterans", "gbsg2", "whas500"], scope="session")
def dataset(request):
    return _load(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
