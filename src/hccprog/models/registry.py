"""Models resolved by name: ``get_model("crnn")`` gives its spec (config class, preprocessing,
builder, task). The names are the ones ``hccprog train --model`` accepts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str
    config: type[BaseModel]
    build: Callable[..., object]  # build(cfg, *, streams, channels[, clinical_features]) -> nn.Module
    defaults: dict = field(default_factory=dict)  # overrides of the config's defaults for this name
    task: str = "survival"
    # cox: one log-hazard; discrete: logits of interval hazards; classes: risk classes;
    # cox-progression: a log-hazard and the logit of progression within a horizon
    objective: str = "cox"
    clinical: bool = False  # the network also takes clinical inputs (forward(x, clin))
    # slices: SliceConfig tensors; volume: VolumeConfig tensors; features: FeatureConfig features, and
    # ``build(cfg, task=, seed=)`` gives a pipeline with ``fit(X, time, event, perturbed=)`` and ``risk(X)``
    input: str = "slices"
    # averages its encoder's features over the representative slices (order-free): training may then
    # draw a subset of them per step (``training.slices_per_step``)
    pools_slices: bool = False
    # the paper's ablation table: row label -> network overrides (``hccprog ablation``)
    ablations: dict[str, dict] = field(default_factory=dict)
    # named configurations of ``hccprog train`` (cpu, paper, tiny): every setting but the model's name,
    # kept as data in the model's module
    presets: dict[str, dict] = field(default_factory=dict)
    # whether the network, so configured, reads the follow-up time points (else a carried-forward
    # follow-up does not touch its score, and the fusion gets no LOCF indicator terms)
    reads_followups: Callable[[BaseModel], bool] = lambda cfg: True
    # the modules (``dict(net.named_modules())`` keys) whose activations Grad-CAM reads, and which slice
    # of the input each of their output rows comes from (``hccprog.explain``); networks say it themselves
    saliency_layers: Callable[[Any], list[str]] = lambda net: net.cam_layers()
    saliency_index: Callable[[Any, tuple[int, ...]], list[tuple[int, ...]]] = (
        lambda net, shape: net.saliency_index(shape))


_REGISTRY: dict[str, ModelSpec] = {}

#: What ``hccprog train`` trains and ``hccprog ablation`` ablates without ``--model``.
DEFAULT_MODEL = "crnn"
DEFAULT_ABLATION_MODEL = "dmmgnet"


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model '{spec.name}' is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_model(name: str) -> ModelSpec:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model '{name}'; known: {', '.join(sorted(_REGISTRY))}") from None


def model_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


_BUILTINS = {"loaded": False}


def _load_builtin() -> None:
    """Register the built-in models once, on the first lookup (a plugin registered earlier does not
    hide them)."""
    if _BUILTINS["loaded"]:
        return
    _BUILTINS["loaded"] = True
    from hccprog.models import cldca, crnn, dlop, dmmgnet, progswin  # lazy: torch/MONAI load on the first lookup
    from hccprog.models.crnn import CRNN, CRNNConfig  # lazy: torch/MONAI load on the first lookup

    register(ModelSpec("crnn", "CRNN Rad-D (Xia et al. 2024): EfficientNet on representative slices, LSTM over "
                       "baseline and follow-up, Cox loss", CRNNConfig, CRNN, pools_slices=True,
                       presets=crnn.PRESETS, reads_followups=lambda cfg: cfg.recurrent))
    register(ModelSpec("crnn-s", "CRNN Rad-S: baseline slices only, no LSTM", CRNNConfig, CRNN,
                       defaults={"recurrent": False}, pools_slices=True,
                       presets=crnn.PRESETS, reads_followups=lambda cfg: cfg.recurrent))

    from hccprog.models.dlop import DLOP, DLOPConfig  # lazy: torch/MONAI load on the first lookup

    register(ModelSpec("dlop", "DLOP_Combin (Sun et al. 2024): ResNet101 on CT + clinical MLP (16-32-64), "
                       "discrete-time survival over yearly intervals", DLOPConfig, DLOP,
                       objective="discrete", clinical=True, pools_slices=True,
                       presets=dlop.PRESETS))
    register(ModelSpec("dlop-ctr", "DLOP_CTR: the image branch of DLOP_Combin alone", DLOPConfig, DLOP,
                       defaults={"variant": "ctr"}, objective="discrete", pools_slices=True,
                       presets=dlop.PRESETS))

    from hccprog.models.cldca import CLDCA, CLDCAConfig  # lazy: torch/MONAI load on the first lookup

    modes = {"cldca-mode5": ({"cross_attention": False}, "without cross-attention"),
             "cldca-mode6": ({"self_attention": False}, "without self-attention"),
             "cldca-mode7": ({"lstm": False}, "without the LSTM over slices")}
    register(ModelSpec("cldca", "CLDCA (Tong et al.): ResNet50 per CT slice, LSTM over slices, clinical DNN, "
                       "clinical-query cross-attention, self-attention, MLP", CLDCAConfig, CLDCA, clinical=True,
                       ablations={"Mode5 (no cross-attention)": {"cross_attention": False},
                                  "Mode6 (no self-attention)": {"self_attention": False},
                                  "Mode7 (no LSTM)": {"lstm": False},
                                  "CLDCA": {}},
                       presets=cldca.PRESETS))
    for name, (defaults, what) in modes.items():
        register(ModelSpec(name, f"CLDCA ablation {name[-5:]}: {what}", CLDCAConfig, CLDCA, defaults=defaults,
                           clinical=True, presets=cldca.PRESETS))

    from hccprog.models.progswin import ProgSwinConfig, ProgSwinUNETR  # lazy: torch/MONAI load on the first lookup

    register(ModelSpec("progswin", "ProgSwin-UNETR (Yao et al. 2025): Swin-UNETR on masked multi-time-point "
                       "arterial-phase volumes, pooled head, 4 risk classes, cross-entropy", ProgSwinConfig,
                       ProgSwinUNETR, objective="classes", input="volume",
                       presets=progswin.PRESETS))
    register(ModelSpec("progswin-cox", "ProgSwin-UNETR with a Cox head (one log-hazard, partial likelihood)",
                       ProgSwinConfig, ProgSwinUNETR, defaults={"head": "cox"}, input="volume",
                       presets=progswin.PRESETS))

    from hccprog.models.dmmgnet import DMMGNet, DMMGNetConfig  # lazy: torch/MONAI load on the first lookup

    register(ModelSpec("dmmgnet", "DMMGNet (Tang et al. 2024): liver/tumor x T2/portal-venous CNN branches, "
                       "graph modules SGCM, MMDFM, CMTFM after each stage, LSTM over slices, Cox loss and a "
                       "1-year progression head", DMMGNetConfig, DMMGNet, objective="cox-progression",
                       ablations=_dmmgnet_ablations(),
                       presets=dmmgnet.PRESETS))

    from hccprog.models import radiomics  # lazy: torch/MONAI load on the first lookup
    from hccprog.models.radiomics import RadiomicsModelConfig  # lazy: torch/MONAI load on the first lookup

    survival = {"cox": ("lasso", "LASSO-Cox (penalty by inner CV); on the response, L1 logistic regression"),
                "xgb": ("xgb", "gradient-boosted Cox (XGBoost survival:cox); on the response, XGBoost")}
    for delta in (False, True):
        for suffix, (learner, what) in survival.items():
            name = f"{'delta-' if delta else ''}radiomics-{suffix}"
            inputs = ("baseline features and their change to the first follow-up" if delta
                      else "baseline features")
            register(ModelSpec(name, f"Radiomics ({inputs}: tumor, liver, peritumoral ring; PyRadiomics), {what}",
                               RadiomicsModelConfig, radiomics.build,
                               # a boosted learner's in-sample scores overfit: its fusion and cut-offs are
                               # learned from inner-CV scores (docs/models/radiomics.md, tuning round 1)
                               defaults={"learner": learner, "delta": delta,
                                         "train_risk": "inner-cv" if learner == "xgb" else "in-sample"},
                               input="features", presets=radiomics.PRESETS, reads_followups=lambda cfg: cfg.delta))
    classifiers = {"logistic": "L2 logistic regression", "nb": "Gaussian naive Bayes", "rf": "random forest",
                   "svm": "SVM (RBF kernel)", "dt": "decision tree"}
    for learner, what in classifiers.items():
        register(ModelSpec(f"radiomics-{learner}", f"Radiomics classifier (ProgSwin-UNETR's comparators): {what} "
                           "on baseline features; ordered risk classes on a survival endpoint, PD on the response",
                           RadiomicsModelConfig, radiomics.build, defaults={"learner": learner, "delta": False},
                           objective="classes", input="features", presets=radiomics.PRESETS,
                           reads_followups=lambda cfg: cfg.delta))


def _dmmgnet_ablations() -> dict[str, dict]:
    """Tang et al.'s ablation rows: the baseline, each module, each pair, all three."""
    from itertools import combinations

    names = ("sgcm", "mmdfm", "cmtfm")
    rows = {}
    for r in range(4):
        for on in combinations(names, r):
            label = "baseline" if not on else "DMMGNet" if r == 3 else "+" + "+".join(n.upper() for n in on)
            rows[label] = {n: n in on for n in names}
    return rows
