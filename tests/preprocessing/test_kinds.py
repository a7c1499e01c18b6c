"""One answer to "which preprocessing is this?", for config objects and their saved dictionaries."""

from __future__ import annotations

import pytest

from hccprog.preprocessing.features import FeatureConfig
from hccprog.preprocessing.kinds import PREPROCESSING_KINDS, preprocessing_kind
from hccprog.preprocessing.slices import SliceConfig
from hccprog.preprocessing.volumes import VolumeConfig


@pytest.mark.parametrize(("config", "kind"), [(SliceConfig(), "slices"), (VolumeConfig(), "volume"),
                                              (FeatureConfig(), "features")])
def test_objects_and_saved_dicts_agree(config, kind):
    assert preprocessing_kind(config) == kind
    assert preprocessing_kind(config.model_dump()) == kind
    assert kind in PREPROCESSING_KINDS


def test_an_unknown_or_absent_kind_is_slices():
    assert preprocessing_kind(None) == "slices"
    assert preprocessing_kind({"kind": "something-else"}) == "slices"


def test_the_run_config_parses_each_kind():
    from hccprog.training.config import resolve_config

    assert type(resolve_config("tiny", model="progswin").preprocessing) is VolumeConfig
    assert type(resolve_config("tiny", model="crnn").preprocessing) is SliceConfig
    assert type(resolve_config("cpu", model="radiomics-cox").preprocessing) is FeatureConfig
