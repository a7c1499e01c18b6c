"""The learnability contract (issue 37): every registered network, tiny preset, memorises a strong
single-quantity signal (the log tumor volume, visible to all of them) on 16 patients.

Full-batch training on the same 16 patients, then the network in evaluation mode must rank them
(Harrell C >= 0.75 against the outcomes drawn from the volume; class heads: accuracy >= 0.75 on
the classes drawn from it, more than one class predicted) with outputs that differ between
patients, after the training loss and the evaluation-mode loss (batch-norm statistics recomputed
for the final weights) fell by half. A network that cannot get there has a defect: a
detached branch, one output for everyone in evaluation mode, a loss or head at the wrong scale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from hccprog.models.registry import get_model, model_names
from hccprog.synth import SynthConfig, synthesize

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
NETWORKS = [n for n in model_names() if get_model(n).input != "features"]
MRI = {"dmmgnet", "progswin", "progswin-cox"}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    learn = _load("learnability")
    base = tmp_path_factory.mktemp("learn")
    out = {}
    for modality in ("ct", "mri"):
        synthesize(base / modality, SynthConfig(patients=16, seed=11, modality=modality, workers=1,
                                                followups=2 if modality == "mri" else 1))
        learn.learnability_cohort(base / modality, "volume", ("volume",), beta=2.0, seed=0)
        out[modality] = base / modality / "cohort-volume.yaml"
    return out, base / "cache"


@pytest.mark.slow
@pytest.mark.parametrize("model", NETWORKS)
def test_each_network_memorises_a_strong_image_signal(model, cohorts):
    from hccprog.training.diagnostics import overfit

    paths, cache = cohorts
    diag = _load("diagnose")
    params = {"class_column": "learn_class"} if model == "progswin" else None
    p = diag.Prepared(paths["mri" if model in MRI else "ct"], model, preset="tiny", cache=cache,
                      objective_params=params)
    args, kw = p.part(np.arange(len(p.x)))
    res = overfit(p.build, p.objective, *args, **kw, steps=100, lr=3e-3)
    assert res["last"] < 0.5 * res["first"] and res["eval_loss"] < 0.5 * res["first"], res
    assert res["eval_output_sd"] > 1e-3, res
    if "eval_accuracy" in res:  # class heads: the classes themselves, not one class for everyone
        assert res["eval_accuracy"] >= 0.75 and max(res["eval_predicted_counts"]) < len(p.x), res
    elif p.objective.kind != "discrete":
        # a memorised discrete-time head is certain of each death's interval: its score (the
        # probability of death by the horizon) saturates at 1 for every early death, so ties cap
        # its C; its evaluation-mode loss above is the check
        assert res["eval_validation"]["val_c"] >= 0.75, res
