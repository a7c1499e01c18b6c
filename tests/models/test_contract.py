"""The contract every registered model keeps: it builds from its ``tiny`` preset, takes a training
step on a tiny synthetic cohort, saves its weights, loads them back with ``weights_only=True`` into a
freshly built network and predicts the same finite outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hccprog.cohort import load_cohort
from hccprog.models.registry import get_model, model_names
from hccprog.preprocessing.cache import preprocess_cohort
from hccprog.training.clinical import clinical_frame
from hccprog.training.config import resolve_config
from hccprog.training.learners import DeepLearner


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    """Tiny CT and MRI cohorts (8 patients each) and a preprocessing cache shared by the models."""
    from hccprog.synth import SynthConfig, synthesize

    base = tmp_path_factory.mktemp("contract")
    out = {}
    for modality in ("ct", "mri"):
        synthesize(base / modality, SynthConfig(patients=8, seed=5, modality=modality, shape=(32, 32, 16),
                                                spacing=(12.0, 12.0, 15.0), workers=1))
        out[modality] = load_cohort(base / modality / "cohort.yaml").cohort
    return out, base / "cache"


@pytest.mark.parametrize("name", model_names())
def test_every_model_trains_saves_loads_and_predicts(name, cohorts, tmp_path):
    by_modality, cache = cohorts
    spec = get_model(name)
    if spec.input == "features":
        _feature_model_contract(name, by_modality["ct"], cache)
        return
    cfg = resolve_config("tiny", model=name, endpoint="os",
                         training={"epochs": 1, "val_fraction": 0.0, "batch_size": 64, "augment": True})
    cohort = by_modality["mri" if name.startswith("dmmgnet") else "ct"]
    outcomes = cohort.outcomes("os")
    ids = list(outcomes.index)
    data = preprocess_cohort(cohort, cfg.preprocessing, cache_dir=cache, ids=ids)
    assert data.ids == ids and not data.skipped
    clinical = clinical_frame(cohort, ids, cfg.clinical) if spec.clinical else None
    learner = DeepLearner(cfg, data, ids, outcomes["time"].to_numpy(float), outcomes["event"].to_numpy(int),
                          tmp_path, objective=cfg.objective(cohort.time_unit), clinical=clinical)
    everyone = np.arange(len(ids))
    trainer = learner.fit(everyone, 0, "contract")  # one epoch: one step with every patient in the batch
    assert len(trainer.history_) == 1 and np.isfinite(trainer.history_[0]["train_loss"])
    path = tmp_path / f"{name}.pt"
    trainer.save(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    enc = getattr(trainer, "clinical_encoder_", None)
    net = learner.build_for(enc.n_features if enc is not None else 0)
    net.load_state_dict(state)
    net.eval()
    clin = None if enc is None else enc.transform(clinical)
    x = torch.as_tensor(data.x.astype(np.float32))
    with torch.no_grad():
        again = (net(x) if clin is None else net(x, torch.as_tensor(clin))).numpy()
    outputs = trainer.outputs(data.x, clin)
    assert np.all(np.isfinite(outputs)) and np.allclose(outputs, again, atol=1e-5)
    risk = learner.predict_risk(trainer, everyone)
    assert risk.shape == (len(ids),) and np.all(np.isfinite(risk))


def _feature_model_contract(name: str, cohort, cache) -> None:
    """A model on image features (no network, no weights): its pipeline fits on every patient and
    scores them with finite risks, the same again for the same seed."""
    from hccprog.training.features import FeatureLearner, prepare_features

    cfg = resolve_config("tiny", model=name, endpoint="os")
    outcomes = cohort.outcomes("os")
    ids = list(outcomes.index)
    t, e = outcomes["time"].to_numpy(float), outcomes["event"].to_numpy(int)
    features = prepare_features(cohort, cfg.preprocessing, ids, cache_dir=cache)
    assert features.ids == ids and not features.skipped
    net_cfg = cfg.network_config()
    objective = cfg.objective(cohort.time_unit)
    if objective.class_columns:  # a classifier: two risk classes in 8 patients, early death or not
        labels = (outcomes["time"] < outcomes["time"].median()).to_numpy(int)
        learner = FeatureLearner(get_model(name), net_cfg, features, ids, t, e, task="classes", labels=labels,
                                 class_columns=objective.class_columns)
    else:
        learner = FeatureLearner(get_model(name), net_cfg, features, ids, t, e, task="survival")
    everyone = np.arange(len(ids))
    risk = learner.predict_risk(learner.fit(everyone, 0), everyone)
    assert risk.shape == (len(ids),) and np.all(np.isfinite(risk))
    assert np.array_equal(risk, learner.predict_risk(learner.fit(everyone, 0), everyone))


def test_a_new_model_is_one_module_and_one_preset(tiny_cohort, tmp_path):
    """A toy model registered from its own module cross-validates beside the baselines, writes its final
    model and scores new patients through the command line, with no other file changed."""
    import pandas as pd
    from typer.testing import CliRunner

    from hccprog.cli import app
    from tests.models.toy_model import register_toy

    name = register_toy()
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tiny_cohort / "cohort.yaml"), "--model", name, "--preset", "tiny",
                                 "--folds", "2", "--n-boot", "10", "--out", str(run), "--cache", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    preds = pd.read_csv(run / "predictions.csv")
    assert {name, f"{name}+clinical", "clinical_cox"} <= set(preds["model"])
    assert (run / "models" / f"{name}.pt").exists()
    out = tmp_path / "pred"
    result = runner.invoke(app, ["predict", str(run), str(tiny_cohort / "cohort.yaml"), "--out", str(out),
                                 "--cache", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out / "predictions.csv")
    assert set(scored["model"]) == {name, f"{name}+clinical"} and scored["risk"].notna().all()
    pid = str(scored["patient_id"].iloc[0])
    result = runner.invoke(app, ["explain", str(run), str(tiny_cohort / "cohort.yaml"), "-p", pid, "--out",
                                 str(tmp_path / "why"), "--cache", str(tmp_path / "c"), "--no-nifti"])
    assert result.exit_code == 0, result.output  # its own cam_layers and saliency_index: explained too
    assert (tmp_path / "why" / pid / "overlay_gradcampp.png").exists()


@pytest.mark.parametrize("name", [n for n in model_names() if get_model(n).input != "features"])
def test_grad_cam_explains_every_network_on_its_own_input(name):
    """Every network (radiomics pipelines get contributions instead) names the layers Grad-CAM reads
    and maps their rows onto its input: the map has the input's shape, is finite where the network
    reads and NaN where it does not."""
    from hccprog.explain.saliency import grad_cam

    spec = get_model(name)
    cfg = resolve_config("tiny", model=name)
    pre = cfg.preprocessing
    kw = {"clinical_features": 3} if spec.clinical else {}
    if spec.input == "volume":
        t, c = pre.timepoints, 1
        shape = (1, t, c, *pre.size) if isinstance(pre.size, (tuple, list)) else (1, t, c, *(3 * [pre.size]))
        geo = {"streams": t, "channels": c}
    else:
        s, c = (2, 2) if name.startswith("dmm") else (len(pre.streams), 1)
        masks = 2 if getattr(pre, "mask_channels", False) else 0  # DMMGNet's mask maps follow the series
        shape = (1, pre.timepoints, s, pre.slices, c + masks, pre.size, pre.size)
        geo = {"streams": s, "channels": c}
    net = spec.build(cfg.network_config(), **geo, **kw).eval()
    objective = cfg.objective("days")
    clin = torch.randn(1, 3)
    torch.manual_seed(0)
    x = torch.rand(shape)

    def risk(v):
        return objective.torch_risk(net(v, clin) if spec.clinical else net(v))

    cam, score = grad_cam(net, x, risk, layers=spec.saliency_layers(net), index=spec.saliency_index(net, shape))
    assert cam.shape == shape[1:]
    read = np.isfinite(cam)
    assert read.any() and (cam[read] >= 0).all() and cam[read].max() <= 1
    with torch.no_grad():
        assert score == pytest.approx(float(risk(x)[0]), rel=1e-5, abs=1e-6)
    if spec.input == "slices" and not spec.reads_followups(cfg.network_config()):
        assert not read[1:].any()  # a baseline-only network has no map on the follow-ups
