"""Spatio-temporal pruning tools: planted PCA widths, the pre-reset membrane, quantization
levels and error bound, the energy proxy in closed form, the staged-T schedule."""

import pytest
import torch
from torch import nn

from netprism.spiking import DirectEncoder, RateEncoder
from netprism.spiking.network import EncodedSNN, ann_to_snn
from netprism.spiking.pruning import (
    ENERGY_PJ,
    energy_proxy,
    pca_width,
    quantize_weights,
    significant_widths,
    temporal_schedule,
    time_averaged,
)


def _snn(seed=0, rank=None):
    torch.manual_seed(seed)
    first = nn.Linear(10, 16, bias=False)
    if rank is not None:
        with torch.no_grad():
            first.weight.copy_(torch.randn(16, rank) @ torch.randn(rank, 10) / 3)
    ann = nn.Sequential(first, nn.ReLU(), nn.Linear(16, 4, bias=False))
    snn = ann_to_snn(ann, leak=0.9)
    snn.set_thresholds([0.5])
    return snn


def test_pca_width_recovers_planted_rank_and_channel_rows():
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(400, 8, generator=g) @ torch.randn(8, 64, generator=g)
    noisy = latent + 1e-4 * torch.randn(400, 64, generator=g)
    assert pca_width(noisy, 0.999) == 8
    assert pca_width(noisy, 0.5) < 8


def test_membrane_before_reset_matches_a_step_by_step_simulation():
    snn = _snn()
    x_seq = torch.rand(7, 5, 10)
    _, records = snn.run(x_seq)
    lif, lin = snn.neurons[0], snn.body[0]
    u, pre = torch.zeros(5, 16), []
    for t in range(7):
        u = 0.9 * u + lin(x_seq[t])
        pre.append(u.clone())
        u = u - 0.5 * (u > 0.5).float()
    want = torch.stack(pre).mean(0)
    got = time_averaged(records[0], lif.leak, "membrane")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        time_averaged(records[0], 0.9, "current"), lin(x_seq.flatten(0, 1)).view(7, 5, 16).mean(0)
    )
    with pytest.raises(ValueError, match="quantity"):
        time_averaged(records[0], 0.9, "voltage")


def test_significant_widths_see_a_planted_low_rank_layer():
    snn = _snn(rank=3)
    x_seq = DirectEncoder(6)(torch.rand(300, 10))
    report = significant_widths(snn, x_seq, quantity="current", threshold=0.999)
    assert report.widths == [3] and report.original == [16]
    assert report.ratio == [16 / 3]
    membrane = significant_widths(snn, x_seq, quantity="membrane", threshold=0.999)
    assert 3 <= membrane.widths[0] <= 16


def test_quantized_weights_have_the_stated_levels_and_error():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Conv1d(1, 2, 3))
    for bits in (2, 3, 5, 8):
        q = quantize_weights(net, bits)
        for orig, quant in ((net[0], q[0]), (net[2], q[2])):
            scale = float(orig.weight.detach().abs().max()) / (2 ** (bits - 1) - 1)
            assert quant.weight.unique().numel() <= 2**bits - 1
            assert float((quant.weight - orig.weight).detach().abs().max()) <= scale / 2 + 1e-7
            assert torch.equal(quant.bias, orig.bias)  # biases untouched
    assert net[0].weight.unique().numel() > 100  # the original is not modified
    with pytest.raises(ValueError, match="bits"):
        quantize_weights(net, 1)


def test_energy_proxy_in_closed_form():
    snn = _snn()
    x = (torch.rand(8, 3, 10) > 0.6).float()  # binary input spikes (T, B, D)
    with torch.no_grad():
        _, records = snn.run(x)
    hidden_events = float(records[0].spikes.sum())
    e = energy_proxy(snn, x)
    assert e["snn_ac"] == pytest.approx((float(x.sum()) * 16 + hidden_events * 4) / 3)
    assert e["snn_mac"] == 0.0
    assert e["ann_mac"] == pytest.approx(10 * 16 + 16 * 4)
    assert e["snn_pj"] == pytest.approx(ENERGY_PJ["ac"] * e["snn_ac"])
    analog = DirectEncoder(8)(torch.rand(3, 10))  # direct coding: the first layer does MACs
    e2 = energy_proxy(snn, analog)
    assert e2["snn_mac"] == pytest.approx(8 * 10 * 16)
    conv = ann_to_snn(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Linear(32, 2)))
    spikes = torch.zeros(1, 1, 1, 4, 4)
    spikes[0, 0, 0, 0, 0] = 1.0  # a corner pixel reaches 2 x 4 outputs through 3x3 kernels
    assert energy_proxy(conv, spikes)["snn_ac"] == pytest.approx(8.0 + 0.0)


def test_temporal_schedule_starts_each_stage_from_the_previous():
    snn = _snn()
    model = EncodedSNN(RateEncoder(8), snn)
    seen = []

    def train_stage(stage, t):
        seen.append((t, float(stage.snn.synapses()[0].weight.detach().sum())))
        with torch.no_grad():
            stage.snn.synapses()[0].weight.add_(1.0)

    stages = temporal_schedule(model, RateEncoder, [4, 2], train_stage)
    assert [s.encoder.timesteps for s in stages] == [4, 2]
    w0 = float(snn.synapses()[0].weight.detach().sum())
    assert seen[0][1] == pytest.approx(w0)  # stage 1 starts from the input model
    assert seen[1][1] == pytest.approx(w0 + 160.0)  # stage 2 starts from stage 1 (+1 on 160)
    assert float(snn.synapses()[0].weight.detach().sum()) == pytest.approx(w0)  # input left alone
    with pytest.raises(ValueError, match="positive ints"):
        temporal_schedule(model, RateEncoder, [0], train_stage)
