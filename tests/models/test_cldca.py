"""CLDCA: shapes, the paper's ablation modes, masking of padded slices, the paper-size config."""

from __future__ import annotations

import pytest
import torch

from hccprog.models import get_model, model_names
from hccprog.models.cldca import CLDCA, CLDCAConfig
from hccprog.training.config import resolve_config


def _cfg(**kw) -> CLDCAConfig:
    return CLDCAConfig(encoder="efficientnet-lite0", d_model=16, heads=2, clinical_hidden=[8], mlp_hidden=8,
                       dropout=0.0, **kw)


def test_registry_names_the_ablation_modes():
    assert {"cldca", "cldca-mode5", "cldca-mode6", "cldca-mode7"} <= set(model_names())
    assert get_model("cldca-mode5").defaults == {"cross_attention": False}
    assert get_model("cldca-mode6").defaults == {"self_attention": False}
    assert get_model("cldca-mode7").defaults == {"lstm": False}
    assert resolve_config("cpu", model="cldca-mode7").network_config().lstm is False
    paper = resolve_config("paper", model="cldca")
    assert (paper.network_config().encoder, paper.network_config().d_model, paper.training.lr,
            paper.training.batch_size, paper.network_config().dropout) == ("resnet50", 128, 1e-4, 32, 0.1)


@pytest.mark.parametrize("mode", [{}, {"cross_attention": False}, {"self_attention": False}, {"lstm": False}])
def test_cldca_shapes_and_modes(mode):
    torch.manual_seed(0)
    net = CLDCA(_cfg(**mode), streams=1, channels=3, clinical_features=4).eval()
    x = torch.rand(3, 2, 1, 5, 3, 32, 32)
    clin = torch.randn(3, 4)
    with torch.no_grad():
        out = net(x, clin)
        assert out.shape == (3,)
        x2 = x.clone()
        x2[:, 1] = torch.rand_like(x2[:, 1])  # the baseline scan only
        assert torch.allclose(net(x2, clin), out)
        assert not torch.allclose(net(x, clin + 1.0), out)
    assert (net.cross is None) == (mode.get("cross_attention") is False)
    assert (net.self_attn is None) == (mode.get("self_attention") is False)
    assert isinstance(net.seq, torch.nn.LSTM) == (mode.get("lstm", True))
    with pytest.raises(ValueError, match="clinical"):
        net(x)


@pytest.mark.parametrize("mode", [{}, {"cross_attention": False}])
def test_padded_slices_are_ignored_when_masked(mode):
    """A patient with 3 real slices scores the same padded to 5 (masked) as alone with 3."""
    torch.manual_seed(1)
    net = CLDCA(_cfg(**mode), streams=1, channels=3, clinical_features=4).eval()
    real = torch.rand(1, 1, 1, 3, 3, 32, 32)
    padded = torch.cat([real, torch.rand(1, 1, 1, 2, 3, 32, 32)], dim=3)
    clin = torch.randn(1, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    with torch.no_grad():
        a = net(real, clin)
        b = net(padded, clin, slice_mask=mask)
        c = net(padded, clin)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, c, atol=1e-5)


def test_repeated_slices_are_masked_from_the_input_itself():
    """The preprocessing repeats a small tumor's slices to fill K: with mask_repeated_slices they are
    padding in every pass (training too), so the patient scores as with its real slices alone."""
    torch.manual_seed(2)
    net = CLDCA(_cfg(), streams=1, channels=3, clinical_features=4).eval()
    real = torch.rand(1, 1, 1, 2, 3, 32, 32)
    repeated = real[:, :, :, [0, 1, 0, 1, 0]]  # np.resize of two slices to five
    assert CLDCA.repeated_slices(repeated).tolist() == [[True, True, False, False, False]]
    clin = torch.randn(1, 4)
    with torch.no_grad():
        assert torch.allclose(net(real, clin), net(repeated, clin), atol=1e-5)
    plain = CLDCA(_cfg(mask_repeated_slices=False), streams=1, channels=3, clinical_features=4).eval()
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain(real, clin), plain(repeated, clin), atol=1e-5)
    # in training mode too, and the gradient reaches the encoder
    net.train()
    net(repeated, clin).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.encoder.parameters())


@pytest.mark.parametrize(("name", "fusion"), [("cldca-concat", "concat"), ("cldca-symmetric", "symmetric")])
def test_comparators_of_table_2(name, fusion):
    cfg = resolve_config("cpu", model=name).network_config()
    assert cfg.fusion == fusion
    torch.manual_seed(0)
    net = CLDCA(_cfg(fusion=fusion), streams=1, channels=3, clinical_features=4).eval()
    assert (net.cross is None) == (fusion == "concat") and (net.cross_back is not None) == (fusion == "symmetric")
    x, clin = torch.rand(2, 1, 1, 3, 3, 32, 32), torch.randn(2, 4)
    with torch.no_grad():
        out = net(x, clin)
        assert out.shape == (2,) and not torch.allclose(net(x, clin + 1.0), out)


def test_ct_only_of_table_4():
    spec = get_model("cldca-ct")
    assert not spec.clinical and spec.defaults == {"ct_only": True}
    torch.manual_seed(0)
    net = spec.build(spec.config(**{**_cfg().model_dump(), "ct_only": True}), streams=1, channels=3)
    assert net.clinical is None and net.mlp[0].in_features == 16
    x = torch.rand(2, 1, 1, 3, 3, 32, 32, requires_grad=True)
    out = net.eval()(x)
    assert out.shape == (2,) and torch.isfinite(out).all()
    out.sum().backward()
    assert x.grad.abs().sum() > 0  # the score reads the CT
