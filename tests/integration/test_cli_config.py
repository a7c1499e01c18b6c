"""``hccprog config``: the resolved configuration of a preset, exactly as a run saves it."""

from __future__ import annotations

import yaml

from hccprog.models.registry import get_model, model_names
from hccprog.training.config import TrainRunConfig
from tests.integration.helpers import invoke


def test_config_prints_what_the_run_saved(tiny_trained_run):
    """The shared run is ``train --preset tiny --folds 2 --n-boot 10`` of CRNN: the same options print
    its config.yaml's ``train:`` and ``network_resolved:``, to the byte."""
    code, output = invoke("config", "--model", "crnn", "--preset", "tiny", "--folds", "2", "--n-boot", "10")
    assert code == 0, output
    printed = yaml.safe_load(output)
    saved = yaml.safe_load((tiny_trained_run / "config.yaml").read_text())
    assert printed == {"train": saved["train"], "network_resolved": saved["network_resolved"]}
    assert output == yaml.safe_dump(printed, sort_keys=False, allow_unicode=True)  # plain YAML, no markup
    assert TrainRunConfig(**printed["train"]).model_dump(mode="json") == saved["train"]  # a valid --config


def test_config_of_every_model_and_preset_resolves():
    for name in model_names():
        for preset in get_model(name).presets:
            endpoint = "response" if get_model(name).task == "response" else "os"
            code, output = invoke("config", "--model", name, "--preset", preset, "--endpoint", endpoint)
            assert code == 0, (name, preset, output)
            printed = yaml.safe_load(output)
            assert printed["train"]["model"] == name and printed["train"]["preset"] == preset


def test_config_refuses_an_unknown_preset_or_model():
    code, output = invoke("config", "--model", "crnn", "--preset", "huge")
    assert code == 1 and "unknown preset 'huge'" in output and "cpu" in output
    code, output = invoke("config", "--model", "no-such-model")
    assert code == 1 and "unknown model 'no-such-model'" in output
