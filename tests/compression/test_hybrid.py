import pytest
import torch
from torch import nn

from netprism.compression.hybrid import (
    HybridNet,
    LayerCost,
    compare_energy,
    energy,
    hybrid_precisions,
    layer_costs,
    mac_energy_pj,
    read_energy_pj_per_bit,
    significant_layers,
)
from netprism.nn.quant import QuantConv1d, QuantLinear

XNOR = (32, 1, 1, 1, 1, 32)


class Planted(nn.Module):
    """Three 1x1 convs on the same isotropic input with planted output ranks 2, 5, 3."""

    def __init__(self, ranks=(2, 5, 3), channels=8):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=gen))
        for name, r in zip("abc", ranks):
            conv = nn.Conv1d(channels, channels, 1, bias=False)
            with torch.no_grad():  # orthogonal projection of rank r: equal variances
                conv.weight.copy_((q[:, :r] @ q[:, :r].T)[:, :, None])
            self.add_module(name, conv)

    def forward(self, x):
        return self.a(x) + self.b(x) + self.c(x)


def test_planted_higher_rank_layer_is_flagged():
    x = torch.randn(400, 8, 6, generator=torch.Generator().manual_seed(1))  # (N, C, L)
    sig = significant_layers(Planted(), x, threshold=0.99, layers=["a", "b", "c"])
    assert sig.counts == [2, 5, 3]
    assert sig.significant == ["b"]
    sig = significant_layers(Planted((2, 3, 6)), x, layers=["a", "b", "c"])
    assert sig.counts == [2, 3, 6] and sig.significant == ["b", "c"]


def test_significant_layers_on_hybrid_net_both_lenses():
    torch.manual_seed(0)
    net = HybridNet((40,), 10, XNOR, widths=(4, 8, 8, 16, 16))
    x = torch.randn(64, 40)
    for where in ("pre", "post"):
        sig = significant_layers(net, x, where=where)
        assert sig.layers == ["conv1", "h1", "h2", "h3", "h4"] and sig.where == where
        assert all(1 <= c <= w for c, w in zip(sig.counts, (4, 8, 8, 16, 16)))
        rises = [n for i, n in enumerate(sig.layers[1:], 1) if sig.counts[i] > sig.counts[i - 1]]
        assert sig.significant == rises
    with pytest.raises(ValueError, match="where must be"):
        significant_layers(net, x, where="mid")
    with pytest.raises(ValueError, match=r"threshold must lie in \(0, 1\]"):
        significant_layers(net, x, threshold=1.5)
    with pytest.raises(ValueError, match="needs a HybridNet"):
        significant_layers(Planted(), torch.randn(4, 8, 3), where="post")


def test_hybrid_precisions():
    names = ("conv1", "h1", "h2", "h3", "h4", "fc")
    assert hybrid_precisions(names, [], 2) == XNOR
    assert hybrid_precisions(names, ["h2", "h4"], 4) == (32, 1, 4, 1, 4, 32)
    assert hybrid_precisions(names, ["h1"], 2, first_last=8, base=1) == (8, 2, 1, 1, 1, 8)
    with pytest.raises(ValueError, match="not hidden layers"):
        hybrid_precisions(names, ["fc"], 2)
    with pytest.raises(ValueError, match="bits must be"):
        hybrid_precisions(names, ["h1"], 64)


def test_calibration_network_macs_and_structure():
    one_d = layer_costs(HybridNet((40,), 10, XNOR), (40,))
    assert [c.macs for c in one_d] == [3840, 245760, 245760, 491520, 491520, 6400]
    two_d = layer_costs(HybridNet((1, 8, 8), 10, XNOR), (1, 8, 8))
    assert [c.macs for c in two_d] == [18432, 1179648, 589824, 1179648, 589824, 5120]
    assert [c.bits for c in two_d] == list(XNOR)
    net = HybridNet((40,), 10, (32, 2, 1, 4, 1, 32))
    assert [net.conv1.act.bits, net.h1.act.bits, net.h2.act.bits, net.h4.act.bits] == [2, 1, 4, 32]
    assert net.h4.act.full_precision == "hardtanh"
    assert HybridNet((40,), 10, (32,) * 6).h4.act.full_precision == "relu"
    with pytest.raises(ValueError, match="precisions needs 6 values"):
        HybridNet((40,), 10, (32, 1, 32))
    with pytest.raises(ValueError, match="input_shape must be"):
        HybridNet((1, 2, 3, 4), 10, XNOR)
    with pytest.raises(ValueError, match="below size 1"):
        HybridNet((1, 2, 2), 10, XNOR)


def test_pool_after_builds_the_deep_net_and_none_keeps_the_default():
    """The deep net of ``significant_layers_faithful``: two stages of four, pooled 40 -> 2."""
    torch.manual_seed(0)
    default = HybridNet((40,), 10, XNOR)
    torch.manual_seed(0)
    explicit = HybridNet((40,), 10, XNOR, pool_after=(1, 3, 4))
    x = torch.randn(5, 40)
    assert torch.equal(default.eval()(x), explicit.eval()(x))  # None is 1-D's (1, 3, 4)
    widths = (32, 64, 64, 64, 64, 128, 128, 128, 128)
    deep = HybridNet((40,), 10, (32, *[1] * 8, 32), widths=widths, pool_after=(1, 3, 5, 7))
    macs = [c.macs for c in layer_costs(deep, (40,))]
    assert macs == [3840, 245760, 245760, 245760, 122880, 245760, 245760, 245760, 98304, 2560]
    assert deep.fc.in_features == 128 * 2 and deep(x).shape == (5, 10)
    with pytest.raises(ValueError, match="below size 1"):
        HybridNet((40,), 10, (32, *[1] * 8, 32), widths=widths, pool_after=tuple(range(6)))


def test_energy_model_on_hand_computed_network():
    net = nn.Sequential(
        QuantConv1d(1, 2, 3, bias=False, weight_bits=1),
        nn.Flatten(),
        QuantLinear(4, 3, weight_bits=32),
    )
    costs = layer_costs(net, (1, 4))
    assert [(c.macs, c.weights, c.filters, c.bits) for c in costs] == [
        (12, 6, 2, 1),
        (12, 12, 3, 32),
    ]
    per_bit = 10.0 / 64.0  # 8 KB SRAM, 10 pJ per 64-bit read (Horowitz 2014)
    assert read_energy_pj_per_bit() == per_bit
    e = energy(costs)
    binary_mac = (0.2 + 0.03) / 64
    assert e.compute_pj == pytest.approx([12 * binary_mac, 12 * (3.7 + 0.9)])
    assert e.memory_pj == pytest.approx([(6 * 1 + 2 * 32) * per_bit, 12 * 32 * per_bit])
    assert e.total_pj == pytest.approx(sum(e.compute_pj) + sum(e.memory_pj))
    assert mac_energy_pj(2) == pytest.approx(0.2 / 16 + 0.03 / 4)
    assert mac_energy_pj(4) == pytest.approx(0.2 / 4 + 0.03 / 2)

    fp = energy([LayerCost("a", 12, 6, 2, 32), LayerCost("b", 12, 12, 3, 32)])
    k2 = energy([LayerCost("a", 12, 6, 2, 2), LayerCost("b", 12, 12, 3, 32)])
    cmp = compare_energy(k2, fp, e)
    assert cmp["efficiency_vs_fp"] == pytest.approx(fp.total_pj / k2.total_pj)
    assert cmp["fraction_of_xnor"] == pytest.approx(e.total_pj / k2.total_pj)
    assert 0 < cmp["fraction_of_xnor"] < 1 < cmp["efficiency_vs_fp"]
    assert compare_energy(e, fp, e)["fraction_of_xnor"] == 1.0
