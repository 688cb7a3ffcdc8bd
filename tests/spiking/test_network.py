"""ANN -> SNN conversion: layer-by-layer == step-by-step simulation, BN folding, threshold
balancing at the stated percentile, output rescaling, time-fixed dropout, rate agreement."""

import numpy as np
import pytest
import torch
from torch import nn

from netprism.data import load_dataset
from netprism.models import create_model
from netprism.nn import LIF
from netprism.spiking import DirectEncoder
from netprism.spiking.network import (
    EncodedSNN,
    MaybeAvgPool2d,
    TimeDropout,
    ann_to_snn,
    balance_thresholds,
    convert_ann,
    match_output_scale,
)
from netprism.train.config import TrainConfig
from netprism.train.loop import evaluate, fit


def _mlp(seed=0, bias=False):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(6, 16, bias=bias),
        nn.ReLU(),
        nn.Linear(16, 12, bias=bias),
        nn.ReLU(),
        nn.Linear(12, 3, bias=bias),
    )


def test_layer_by_layer_equals_step_by_step_simulation():
    snn = ann_to_snn(_mlp(bias=True), leak=0.9)
    snn.set_thresholds([0.3, 0.5])
    x_seq = torch.rand(10, 4, 6)  # (T, B, D)
    fast = snn(x_seq)
    # reference: every layer advanced one step at a time, state carried explicitly
    lin1, lif1, lin2, lif2, head = [m for m in snn.body if not isinstance(m, nn.Flatten)]
    u1 = u2 = None
    total = torch.zeros(4, 3)
    for t in range(10):
        s1, u1 = lif1(lin1(x_seq[t]), u1)
        s2, u2 = lif2(lin2(s1), u2)
        total += head(s2)
    torch.testing.assert_close(fast, total / 10, rtol=1e-6, atol=1e-6)


def test_conversion_copies_weights_and_folds_batch_norm():
    torch.manual_seed(0)
    ann = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    )
    ann[1].running_mean.uniform_(-1, 1)
    ann[1].running_var.uniform_(0.5, 2)
    ann[1].weight.data.uniform_(0.5, 1.5)
    ann.eval()
    snn = ann_to_snn(ann)
    conv = snn.body[0]
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(conv(x), ann[1](ann[0](x)), rtol=1e-5, atol=1e-5)
    assert isinstance(snn.body[2], nn.AvgPool2d)  # max pooling -> average pooling
    conv.weight.data.zero_()  # a copy, not a view
    assert ann[0].weight.abs().sum() > 0
    vgg = create_model("vgg", input_shape=(3, 8, 8), num_classes=10, depth=11, width_mult=0.125)
    svgg = ann_to_snn(vgg.eval())
    assert any(isinstance(m, MaybeAvgPool2d) for m in svgg.body)
    assert svgg(torch.rand(4, 2, 3, 8, 8)).shape == (2, 10)


def test_conversion_errors():
    with pytest.raises(ValueError, match="cannot convert"):
        ann_to_snn(nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="no final ReLU"):
        ann_to_snn(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    with pytest.raises(ValueError, match="must follow a Conv2d"):
        ann_to_snn(nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 2, 1)))
    snn = ann_to_snn(_mlp())
    with pytest.raises(ValueError, match="need 2 thresholds"):
        snn.set_thresholds([1.0])
    with pytest.raises(ValueError, match="x_seq must be"):
        snn(torch.rand(4, 6))


def test_balancing_picks_the_stated_percentile_layer_by_layer():
    snn = ann_to_snn(_mlp(seed=1))
    x_seq = torch.rand(6, 200, 6)
    x_seq[3] *= 3.0  # one step with much larger currents: the max over t picks it
    thresholds = balance_thresholds(snn, x_seq, percentile=99.0)
    lin1 = snn.body[1]
    cur1 = lin1(x_seq.flatten(0, 1)).unflatten(0, (6, 200)).detach().double()
    want1 = max(np.percentile(cur1[t].numpy().ravel(), 99.0) for t in range(6))
    assert thresholds[0] == pytest.approx(want1, rel=1e-9)
    # layer 2 sees the spikes of layer 1 *with its balanced threshold*
    _, records = snn.run(x_seq)
    cur2 = records[1].current.detach().double()
    want2 = max(np.percentile(cur2[t].numpy().ravel(), 99.0) for t in range(6))
    assert thresholds[1] == pytest.approx(want2, rel=1e-9)
    assert snn.thresholds() == pytest.approx(thresholds)
    with pytest.raises(ValueError, match="percentile"):
        balance_thresholds(snn, x_seq, percentile=0.0)


def test_output_scale_is_least_squares_and_keeps_predictions():
    ann = _mlp(seed=2).eval()
    snn = ann_to_snn(ann)
    x = torch.rand(64, 6)
    x_seq = DirectEncoder(8)(x)
    balance_thresholds(snn, x_seq)
    before = snn(x_seq).detach()
    a = ann(x).detach()
    s = match_output_scale(snn, x_seq, a)
    after = snn(x_seq).detach()
    torch.testing.assert_close(after, s * before, rtol=1e-5, atol=1e-6)
    assert torch.equal(after.argmax(1), before.argmax(1))
    want = float((a * before).sum() / (before * before).sum())  # argmin_s ||a - s z||
    assert s == pytest.approx(want, rel=1e-5)


def test_time_dropout_holds_one_mask_over_time():
    drop = TimeDropout(0.5).train()
    h = torch.ones(5 * 3, 8)  # (T * B, units)
    out = drop(h, 5).unflatten(0, (5, 3))
    assert torch.equal(out[0], out[4]) and (out[0] == 0).any()
    assert torch.equal(drop.eval()(h, 5), h)
    with pytest.raises(ValueError, match="dropout p"):
        TimeDropout(1.0)


def test_converted_if_network_agrees_with_its_ann_at_long_T():
    torch.manual_seed(0)
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    ann = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(64,), bias=False)
    fit(ann, train, TrainConfig(epochs=8, batch_size=64, lr=1e-3, optimizer="adam", progress=False))
    ann.eval()
    snn = ann_to_snn(ann, leak=1.0)  # integrate-and-fire, soft reset: rates ~ ReLU / V_th
    enc = DirectEncoder(128)
    balance_thresholds(snn, enc(train.x[:256]), percentile=100.0)
    agree = (EncodedSNN(enc, snn)(test.x).argmax(1) == ann(test.x).argmax(1)).float().mean()
    assert float(agree) >= 0.95
    snn_acc = evaluate(EncodedSNN(enc, snn), test)["accuracy"]
    assert snn_acc >= evaluate(ann, test)["accuracy"] - 0.03
    assert isinstance(snn.neurons[0], LIF)


def test_convert_ann_is_the_three_steps_in_one_call():
    ann = _mlp(seed=3).eval()
    x = torch.rand(64, 6)
    enc = DirectEncoder(8)
    model, thresholds = convert_ann(ann, enc, x, leak=0.9, percentile=99.0)
    manual = ann_to_snn(ann, leak=0.9)
    want = balance_thresholds(manual, enc(x), percentile=99.0)
    match_output_scale(manual, enc(x), ann(x).detach())
    assert thresholds == pytest.approx(want)
    torch.testing.assert_close(model(x), manual(enc(x)))
