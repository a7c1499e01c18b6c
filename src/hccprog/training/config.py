"""What ``hccprog train`` does, typed: the model, its preprocessing (slices, volume or features),
objective, training and cross-validation settings, and the named presets they start from."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from hccprog.models.registry import DEFAULT_MODEL, get_model
from hccprog.preprocessing.features import FeatureConfig
from hccprog.preprocessing.kinds import preprocessing_kind
from hccprog.preprocessing.slices import SliceConfig
from hccprog.preprocessing.volumes import VolumeConfig
from hccprog.survival.cv import CVConfig
from hccprog.training.clinical import ClinicalInputConfig
from hccprog.training.deep import TrainConfig
from hccprog.training.objectives import (
    PARAMETER_KINDS,
    RESPONSE_OBJECTIVE,
    ObjectiveKind,
    objective_kind,
)

#: Representative 2D slices (``SliceConfig``), masked 3D volumes (``VolumeConfig``, ``kind: volume``)
#: or radiomics features (``FeatureConfig``, ``kind: features``), as the model's ``input`` says.
Preprocessing = Annotated[Annotated[SliceConfig, Tag("slices")] | Annotated[VolumeConfig, Tag("volume")]
                          | Annotated[FeatureConfig, Tag("features")], Discriminator(preprocessing_kind)]


INPUT_CONFIGS = {"slices": (SliceConfig, "representative slices"), "volume": (VolumeConfig, "kind: volume"),
                 "features": (FeatureConfig, "kind: features")}


class TrainRunConfig(BaseModel):
    """Everything ``hccprog train`` does (saved as ``train:`` in the run's config.yaml)."""

    model_config = ConfigDict(extra="forbid")
    model: str = DEFAULT_MODEL
    preset: str = "cpu"
    endpoint: str = "os"
    cv: CVConfig = Field(default_factory=lambda: CVConfig(folds=5, repeats=1, seed=0))
    preprocessing: Preprocessing = Field(default_factory=SliceConfig)
    network: dict = Field(default_factory=dict)  # validated by the model's own config class
    training: TrainConfig = Field(default_factory=TrainConfig)
    fuse_with: str | None = "clinical_cox"  # the fused model is named '<model>+clinical'
    # the fusion also gets a LOCF indicator (follow-up carried forward) and its product with the
    # image score, for models that read the follow-up (see survival.cox.BivariateCoxFusion)
    fusion_locf: bool = False
    # how '<model>+clinical' joins the score and the clinical side: bivariate (a Cox model of the image score
    # and the fuse_with model's score, the RadCLN recipe) or multivariable (one Cox model of the image score
    # and the clinical factors of ``clinical``, screened by univariable then multivariable Cox on each training
    # part with fusion_screening "cox": DLOP_Cox of Sun et al. 2024, the post-hoc Cox of Yao et al. 2025)
    fusion: Literal["bivariate", "multivariable"] = "bivariate"
    fusion_screening: Literal["cox", "none"] = "cox"
    final_model: bool = True  # refit on every patient (used by `predict`)
    horizons: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = Field(None, min_length=1)
    risk_groups: str = "median"
    n_boot: int = Field(1000, ge=0)
    seed: int = 0
    # models with clinical inputs (ModelSpec.clinical): which columns, screened inside each training fold
    clinical: ClinicalInputConfig = Field(default_factory=ClinicalInputConfig)
    # the parameters of the model's objective (training.objectives.OBJECTIVES), defaults filled in
    objective_params: dict = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _objective_parameters(cls, data):
        """Parameters of the model's objective, validated by its own class; the top-level keys that
        configurations written before the objective registry held are moved in (and those of other
        objectives, which such files list with their defaults, are dropped)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        kind = _objective_of(str(data.get("model") or DEFAULT_MODEL), str(data.get("endpoint") or "os"))
        # a preset shared by models of different objectives (progswin and progswin-cox) may carry parameters of
        # the other's: dropped, as the top-level keys of other objectives below; unknown keys stay (and fail)
        params = {k: v for k, v in dict(data.get("objective_params") or {}).items()
                  if PARAMETER_KINDS.get(k, kind.name) == kind.name}
        for key in list(data):
            if key in PARAMETER_KINDS:
                value = data.pop(key)
                if PARAMETER_KINDS[key] == kind.name and value is not None:
                    params.setdefault(key, value)
        data["objective_params"] = kind.params.model_validate(params).model_dump()
        return data

    @model_validator(mode="after")
    def _input_matches_model(self) -> TrainRunConfig:
        spec = get_model(self.model)
        wanted, what = INPUT_CONFIGS[spec.input]
        if not isinstance(self.preprocessing, wanted):
            raise ValueError(f"model '{self.model}' needs {spec.input} preprocessing ({what}); "
                             f"got {type(self.preprocessing).__name__}")
        if self.training.slices_per_step and not spec.pools_slices:
            raise ValueError(f"training.slices_per_step: model '{self.model}' does not average over its slices "
                             "(a slice sequence or a volume); leave it unset")
        spec.check_input(self.network_config(), self.preprocessing)  # the network's size rules, before any work
        if self.endpoint == "response" and self.clinical.include_response:
            raise ValueError("clinical.include_response: the response is the label of the response endpoint; it "
                             "cannot also be an input")
        return self

    @property
    def objective_kind(self) -> ObjectiveKind:
        """The model's own objective; every model on the response endpoint: the logistic one."""
        return _objective_of(self.model, self.endpoint)

    def typed_objective_params(self) -> BaseModel:
        return self.objective_kind.params.model_validate(self.objective_params)

    def network_config(self) -> BaseModel:
        spec = get_model(self.model)
        # what the objective sizes (e.g. the number of risk classes), where the model's config has it
        extra = {k: v for k, v in self.objective_kind.network(self.typed_objective_params()).items()
                 if k in spec.config.model_fields}
        return spec.config(**{**spec.defaults, **self.network, **extra})

    def objective(self, time_unit: str):
        """The training objective of the model, with times in the cohort's unit."""
        return self.objective_kind.build(self.typed_objective_params(), time_unit, self.network_config())


def _objective_of(model: str, endpoint: str) -> ObjectiveKind:
    return objective_kind(RESPONSE_OBJECTIVE if endpoint == "response" else get_model(model).objective)


def resolve_config(preset: str = "cpu", **overrides) -> TrainRunConfig:
    """The model's named configuration (its spec's ``presets``) with keyword overrides (nested dicts
    merge into the preset's)."""
    spec = get_model(str(overrides.get("model") or DEFAULT_MODEL))
    if preset not in spec.presets:
        raise ValueError(f"unknown preset '{preset}'; known: {', '.join(spec.presets)}")
    base = json.loads(json.dumps(spec.presets[preset]))
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        elif value is not None:
            base[key] = value
    base.setdefault("model", spec.name)
    return TrainRunConfig(preset=preset, **base)
