"""Each ``paper`` preset uses the values its paper gives (the section is quoted in the preset and in
``docs/models/<model>.md``)."""

from __future__ import annotations

import pytest

from hccprog.training.config import resolve_config


def test_dmmgnet_paper_optimiser():
    """Tang et al. Sec. 4.1: Adam, learning rate 5e-3, batch size 16, decayed by a factor of 0.8 when
    the loss did not decrease; 112 x 112 inputs of 10 slices."""
    cfg = resolve_config("paper", model="dmmgnet", endpoint="pfs")
    t = cfg.training
    assert (t.lr, t.batch_size, t.schedule, t.plateau_factor, t.plateau_patience) == (5e-3, 16, "plateau", 0.8, 0)
    assert cfg.preprocessing.size == 112 and cfg.preprocessing.slices == 10


def test_presets_without_a_plateau_keep_the_old_rule():
    """The plateau factor is configurable; the other presets keep 0.5 after a third of the patience."""
    cfg = resolve_config("cpu", model="dmmgnet", endpoint="pfs")
    assert cfg.training.plateau_factor == pytest.approx(0.5) and cfg.training.plateau_patience is None


def test_cldca_paper_clinical_dnn_and_encoding():
    """Tong et al., Clinical Data Extraction: hidden layers of 128, 256 and 128 neurons, a 128-neuron
    output; categorical data one-hot, continuous data scaled to [0, 1]; ResNet50 on 224 x 224."""
    cfg = resolve_config("paper", model="cldca", endpoint="response")
    net = cfg.network_config()
    assert net.clinical_hidden == [128, 256, 128] and net.d_model == 128 and net.encoder == "resnet50"
    assert (cfg.clinical.encoding, cfg.clinical.scaling) == ("one-hot", "minmax")
    assert cfg.preprocessing.size == 224
    # DLOP_Cox: the image score "as a separate variable" of a multi-factor Cox model with the screened factors
    ctr = resolve_config("paper", model="dlop-ctr")
    assert (ctr.fusion, ctr.fusion_screening, ctr.fuse_with) == ("multivariable", "cox", "clinical_cox")


def test_crnn_paper_without_imagenet_weights_warns(tmp_path, caplog):
    """Xia et al. used EfficientNet-b0 "with weights pretrained on ImageNet": a ``paper`` run given none
    says so; with ``network.encoder_weights`` (or another preset) it does not."""
    import logging

    import torch

    from hccprog.models.encoders import build_encoder
    from hccprog.training.run import imagenet_warning

    with caplog.at_level(logging.WARNING, logger="hccprog"):
        text = imagenet_warning(resolve_config("paper", model="crnn"))
    assert text and "ImageNet" in text and "encoder_weights" in text and text in caplog.text
    weights = tmp_path / "b0.pth"
    torch.save(build_encoder("efficientnet-b0").backbone.state_dict(), weights)
    given = resolve_config("paper", model="crnn", network={"encoder_weights": str(weights)})
    assert imagenet_warning(given) is None
    assert imagenet_warning(resolve_config("cpu", model="crnn")) is None
    assert imagenet_warning(resolve_config("paper", model="dlop")) is None  # DLOP's paper names no ImageNet start


def test_dlop_paper_screens_the_clinical_factors_with_the_response():
    """Sun et al.: clinical factors kept by univariate then multivariate Cox regression, the treatment
    response among them (Table 2); ResNet101 on 224 x 224; MLP of 16, 32 and 64 units."""
    cfg = resolve_config("paper", model="dlop")
    assert cfg.clinical.screening == "cox" and cfg.clinical.include_response
    assert cfg.risk_groups == "youden"  # "The Youden index was used to calculate the optimal cut-off point"
    assert cfg.network_config().encoder == "resnet101" and cfg.network_config().clinical_hidden == [16, 32, 64]
    assert cfg.preprocessing.size == 224


def test_crnn_paper_preset_reads_as_xia_et_al():
    """Xia et al., Methods: venous phase, WW 400 / WL 0, 5-mm sections, three slices of the largest tumor
    area filled with the largest organ slices, 224 x 224 standardised to mean 0 and variance 1, a random
    flip with probability 0.5; 200 epochs, batch 16, Adam with learning rate 5e-5."""
    cfg = resolve_config("paper", model="crnn")
    p, t = cfg.preprocessing, cfg.training
    assert p.series == ["CT_PV|PV"] and tuple(p.ct_window) == (400.0, 0.0) and p.standardize
    assert p.selection == "top_area_fill" and p.slices == 3 and p.size == 224 and p.spacing_mm[2] == 5.0
    assert (t.epochs, t.batch_size, t.lr, t.augmentation) == (200, 16, 5e-5, "flip")
    net = cfg.network_config()
    assert net.encoder == "efficientnet-b0" and net.temporal == "per-stream" and net.head_hidden
    # "three liver slices and three lung slices": a liver stream and a lung stream
    assert [(st.name, st.roi) for st in p.streams] == [("liver", "liver"), ("lung", "lung")] and p.needs_lung
    # "chest scans were normalized to WW 1200, WL -600": the lung stream's own window
    assert [st.ct_window for st in p.streams] == [None, (1200.0, -600.0)] and p.stream_windows == [(1200.0, -600.0)]


def test_progswin_paper_training():
    """Yao et al., Results: batch size 2, learning rate 0.001, weight decay 0.0001, up to 160 epochs;
    three time points of arterial-phase MRI, four output classes."""
    cfg = resolve_config("paper", model="progswin")
    t = cfg.training
    assert (t.batch_size, t.lr, t.weight_decay, t.epochs) == (2, 1e-3, 1e-4, 160)
    assert cfg.preprocessing.timepoints == 3 and cfg.network_config().classes == 4
    # Appendix 5: OS < 36 vs >= 36 months, each split by the expert severity read; class 0 = high risk
    params = cfg.typed_objective_params()
    assert (params.class_rule, params.os_threshold_months, params.class_order) == ("os-severity", 36.0, "worst-first")
    obj = cfg.objective("months")
    assert (obj.rule, obj.edges, obj.worst_first, obj.outputs) == ("os-severity", [36.0], True, 4)
    # Methods: ReLU and adaptive average pooling make the head; Results: 64^3 sliding-window inference
    net = cfg.network_config()
    assert (net.head_style, net.inference_roi) == ("paper", 64)
    # not the paper's: gradient checkpointing (same gradients) so that a 3 x 128^3 batch of 2 fits in memory
    assert net.checkpointing
