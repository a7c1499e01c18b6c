"""The registry: each model module declares its specs, the CLI's help lists them, and a spec's
``check_input`` refuses sizes its network cannot take before any preprocessing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hccprog.models import get_model, model_names, registry


def test_every_built_in_name_comes_from_its_module_s_specs():
    import importlib

    declared = {}
    for module in ("cldca", "crnn", "dlop", "dmmgnet", "progswin", "radiomics"):
        for spec in importlib.import_module(f"hccprog.models.{module}").SPECS:
            declared[spec.name] = module
    assert sorted(declared) == registry.builtin_model_names()
    assert set(declared) <= set(model_names())
    assert all(get_model(n).config.__module__.endswith(m) for n, m in declared.items() if m != "radiomics")


def test_train_and_ablation_help_list_the_registry_with_a_plugin(monkeypatch):
    from typer.testing import CliRunner

    from hccprog.cli import app

    builtin = get_model("crnn")
    monkeypatch.setitem(registry._REGISTRY, "my-plugin",
                        registry.ModelSpec("my-plugin", "a plugin", builtin.config, builtin.build))
    runner = CliRunner()
    text = " ".join(runner.invoke(app, ["train", "--help"], env={"COLUMNS": "400"}).output.split())
    for name in model_names():
        assert name in text
    assert "my-plugin" in text and "{models}" not in text
    text = " ".join(runner.invoke(app, ["ablation", "--help"], env={"COLUMNS": "400"}).output.split())
    assert "ablation table: cldca, dmmgnet." in text


@pytest.mark.parametrize(("override", "message"), [
    ({"preprocessing": {"size": 48}}, "preprocessing.size must be divisible by 32"),
    ({"network": {"feature_size": 18}}, "network.feature_size must be a multiple of 12"),
])
def test_progswin_size_rules_are_refused_in_the_configuration(override, message):
    from hccprog.training.config import resolve_config

    with pytest.raises(ValidationError, match=message):
        resolve_config("cpu", model="progswin", **override)
    assert resolve_config("cpu", model="progswin", preprocessing={"size": 64}).preprocessing.size == 64


def test_train_refuses_them_before_preprocessing(tiny_cohort, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from hccprog.cli import app

    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"model": "progswin", "preprocessing": {"kind": "volume", "size": 40}}}))
    cache = tmp_path / "cache"
    result = CliRunner().invoke(app, ["train", str(tiny_cohort / "cohort.yaml"), "--config", str(cfg),
                                      "--out", str(tmp_path / "run"), "--cache", str(cache)])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "divisible by 32" in text, result.output
    assert not cache.exists() and not (tmp_path / "run").exists()  # nothing preprocessed, nothing written
