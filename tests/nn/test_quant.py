import pytest
import torch
import torch.nn.functional as F

from netprism.nn.quant import (
    QuantAct,
    QuantConv1d,
    QuantConv2d,
    QuantLinear,
    binarize_weight,
    binary_act,
    check_bits,
    quantize_act,
    quantize_weight,
)


def test_binarize_weight_uses_per_filter_alpha_and_identity_ste():
    w = torch.tensor([[[1.0, -2.0, 3.0]], [[0.0, -0.5, 0.5]]], requires_grad=True)  # (2, 1, 3)
    out = binarize_weight(w)
    third = 1.0 / 3.0
    expected = torch.tensor([[[2.0, -2.0, 2.0]], [[third, -third, third]]])  # sign(0) = +1
    assert torch.allclose(out, expected)
    g = torch.tensor([[[0.1, -0.2, 5.0]], [[3.0, 0.0, -7.0]]])
    out.backward(g)
    assert torch.equal(w.grad, g)  # straight through, even outside [-1, 1]


def test_binary_act_values_and_ste_mask():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    y = binary_act(x)
    assert y.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    y.backward(torch.full_like(x, 2.0))
    assert x.grad.tolist() == [0.0, 2.0, 2.0, 2.0, 2.0, 2.0, 0.0]  # passes where |x| <= 1


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_kbit_activation_levels_error_and_ste(bits):
    x = torch.linspace(-2.0, 2.0, 4001, requires_grad=True)
    y = quantize_act(x, bits)
    levels = torch.unique(y.detach())
    assert len(levels) == 2**bits
    assert torch.allclose(levels, torch.linspace(-1.0, 1.0, 2**bits), atol=1e-6)
    inside = x.detach().abs() <= 1
    err = (y.detach() - x.detach().clamp(-1, 1)).abs()
    assert float(err.max()) <= 1.0 / (2**bits - 1) + 1e-6  # half a step of 2 / (2^k - 1)
    y.sum().backward()
    assert torch.equal(x.grad, inside.float())


@pytest.mark.parametrize("bits", [2, 4])
def test_kbit_weights_per_filter_levels_and_identity_ste(bits):
    torch.manual_seed(0)
    w = (torch.randn(3, 4, 5) * torch.tensor([0.1, 1.0, 10.0])[:, None, None]).requires_grad_()
    q = quantize_weight(w, bits)
    for f in range(3):
        scale = float(w[f].detach().abs().max())
        levels = torch.unique(q[f].detach())
        assert len(levels) <= 2**bits
        grid = torch.linspace(-scale, scale, 2**bits)
        assert all(torch.isclose(grid, v, rtol=1e-5).any() for v in levels)
        assert float((q[f] - w[f]).detach().abs().max()) <= scale / (2**bits - 1) + 1e-5
    g = torch.randn_like(w)
    q.backward(g)
    assert torch.equal(w.grad, g)


def test_full_precision_is_identity_and_bad_bits_raise():
    x = torch.randn(4, 3)
    assert quantize_act(x, 32) is x and quantize_weight(x, 32) is x
    for bad in (0, 17, 33, 2.5, True, "2"):
        with pytest.raises(ValueError, match="bits must be"):
            check_bits(bad)
    with pytest.raises(ValueError, match="weight_bits must be"):
        QuantConv1d(1, 2, 3, weight_bits=64)
    with pytest.raises(ValueError, match="bits must be"):
        QuantAct(0)
    with pytest.raises(ValueError, match="full_precision must be one of"):
        QuantAct(32, full_precision="tanh")
    with pytest.raises(ValueError, match=">= 2 dims"):
        binarize_weight(torch.ones(3))


def test_quant_layers_match_functional_with_quantized_weights():
    torch.manual_seed(1)
    conv = QuantConv1d(2, 3, 3, padding=1, bias=False, weight_bits=1)
    x = torch.randn(4, 2, 7)
    ref = F.conv1d(x, binarize_weight(conv.weight.detach()), padding=1)
    assert torch.allclose(conv(x), ref, atol=1e-6)
    conv(x).sum().backward()  # STE: the latent weights receive the effective weight's gradient
    w_eff = binarize_weight(conv.weight.detach()).requires_grad_()
    F.conv1d(x, w_eff, padding=1).sum().backward()
    assert torch.allclose(conv.weight.grad, w_eff.grad, atol=1e-5)

    conv2 = QuantConv2d(1, 2, 3, padding=1, weight_bits=2)
    x2 = torch.randn(2, 1, 5, 5)
    ref2 = F.conv2d(x2, quantize_weight(conv2.weight.detach(), 2), conv2.bias, padding=1)
    assert torch.allclose(conv2(x2), ref2, atol=1e-6)

    lin = QuantLinear(5, 3, weight_bits=32)
    plain = torch.nn.Linear(5, 3)
    plain.load_state_dict(lin.state_dict())
    xl = torch.randn(2, 5)
    assert torch.equal(lin(xl), plain(xl))


def test_quant_act_modes():
    x = torch.tensor([-3.0, -0.4, 0.4, 3.0])
    assert QuantAct(1)(x).tolist() == [-1.0, -1.0, 1.0, 1.0]
    assert QuantAct(32)(x).tolist() == [-1.0, -0.4000000059604645, 0.4000000059604645, 1.0]
    assert torch.equal(QuantAct(32, full_precision="identity")(x), x)
    assert QuantAct(32, full_precision="relu")(x).tolist()[:2] == [0.0, 0.0]
    assert len(torch.unique(QuantAct(2)(torch.linspace(-2, 2, 101)))) == 4


def test_quant_layers_keep_repr_and_state_dict_keys():
    conv1 = QuantConv1d(2, 3, 3, padding=1, bias=False, weight_bits=1)
    conv2 = QuantConv2d(1, 4, 3, padding=1, weight_bits=2)
    lin = QuantLinear(5, 3, weight_bits=4)
    assert conv1.extra_repr() == (
        "2, 3, kernel_size=(3,), stride=(1,), padding=(1,), bias=False, weight_bits=1"
    )
    assert (
        conv2.extra_repr()
        == "1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), weight_bits=2"
    )
    assert lin.extra_repr() == "in_features=5, out_features=3, bias=True, weight_bits=4"
    assert list(conv1.state_dict()) == ["weight"]
    assert list(conv2.state_dict()) == list(lin.state_dict()) == ["weight", "bias"]
    assert isinstance(conv1, torch.nn.Conv1d) and isinstance(conv2, torch.nn.Conv2d)
