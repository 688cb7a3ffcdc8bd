import importlib

import pytest
import torch
from torch import nn

from netprism.compression.factorize import Factorized, weighted_error
from netprism.compression.utilized_rank import (
    decompose,
    factors,
    layer_errors,
    layer_statistics,
    project,
    utilized_rank,
)
from netprism.data.embedded import make_lowrank

# the package exports the function utilized_rank, which hides the module as an attribute
ur = importlib.import_module("netprism.compression.utilized_rank")


def _mlp(d_in=12, width=24, d_out=5, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d_in, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, d_out),
    )


def _cnn(groups=1, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=groups),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=1, padding=1),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 4),
    )


def test_threshold_one_preserves_function_on_calibration_data_linear():
    x, _ = make_lowrank(200, 12, 6, seed=1)  # inputs in a rank-6 subspace of R^12
    net = _mlp().double()
    x = x.double()
    projected = project(net, x, threshold=1.0)
    assert torch.allclose(projected(x), net(x), atol=1e-9)
    # The first layer really was projected (held-out data off the subspace is not preserved).
    assert not torch.allclose(projected[0].weight, net[0].weight)


def test_threshold_one_preserves_function_on_calibration_data_conv():
    net = _cnn().double()
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    projected = project(net, x, threshold=1.0)
    assert torch.allclose(projected(x), net(x), atol=1e-9)


def test_k_s_is_full_for_full_rank_inputs_and_planted_rank_for_lowrank():
    net = _mlp()
    report = utilized_rank(net, torch.randn(300, 12), threshold=1.0)
    assert report.layers[0].k_s == 12 and report.layers[0].d_in == 12
    x, _ = make_lowrank(300, 12, 4, seed=3)
    report = utilized_rank(net, x, threshold=1.0)
    first = report.layers[0]
    assert first.k_s == 4 and first.rank <= 4 and first.utilization == first.rank / 12
    assert first.weight_rank == 12  # W is full rank; the data are not
    assert 0 < report.mlu <= 1 and report.to_dict()["layers"][0]["k_s"] == 4


@pytest.mark.parametrize("method", ["projection", "weight_svd", "whitened_svd"])
def test_factorized_layer_equals_product_of_factors(method):
    x = torch.randn(400, 12)
    net = _mlp(width=64)
    small = decompose(net, x, threshold=0.9, method=method)
    layer = small[2]
    assert isinstance(layer, Factorized)
    h = torch.relu(net[0](x[:20]))
    dense = h @ layer.dense_weight().T + layer.up.bias
    assert torch.allclose(layer(h), dense, atol=1e-5)
    # Same rank for every method: the utilized rank of the projection.
    assert layer.rank == utilized_rank(net, x, threshold=0.9).ranks["2"]


def test_factorized_conv_equals_projected_dense_conv():
    net = _cnn()
    x = torch.randn(8, 3, 8, 8)
    stats = layer_statistics(net, x)
    small = decompose(net, x, threshold=0.9, stats=stats, rank={"4": 3, "2": 2})
    conv = small[4]
    assert isinstance(conv, Factorized) and conv.rank == 3
    dense = nn.Conv2d(8, 16, 3, padding=1)
    dense.weight.data = conv.dense_weight().reshape(16, 8, 3, 3)
    dense.bias.data = net[4].bias.data
    h = torch.randn(2, 8, 4, 4)
    assert torch.allclose(conv(h), dense(h), atol=1e-5)
    up, down = factors(stats["4"], "projection", 3, 0.9)
    assert torch.allclose(conv.dense_weight().double(), up @ down, atol=1e-5)


def test_whitened_svd_is_the_optimum_at_equal_rank():
    x = torch.randn(500, 12) @ torch.randn(12, 12)  # correlated inputs
    net = _mlp(width=48)
    stats = layer_statistics(net, x)
    st = stats["2"]
    r = utilized_rank(net, x, threshold=0.95, stats=stats).ranks["2"]
    errs = {}
    for method in ("projection", "weight_svd", "whitened_svd"):
        up, down = factors(st, method, r, 0.95)
        errs[method] = weighted_error(st.weight, up @ down, st.second_moment)
    assert errs["whitened_svd"] <= errs["projection"] + 1e-9
    assert errs["whitened_svd"] <= errs["weight_svd"] + 1e-9
    small = decompose(net, x, threshold=0.95, method="whitened_svd", stats=stats)
    assert layer_errors(net, small, stats=stats)["2"] == pytest.approx(errs["whitened_svd"], 1e-4)


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.01, float("nan")])
def test_bad_threshold_raises(threshold):
    with pytest.raises(ValueError, match="threshold must lie in"):
        utilized_rank(_mlp(), torch.randn(10, 12), threshold=threshold)
    with pytest.raises(ValueError, match="threshold must lie in"):
        decompose(_mlp(), torch.randn(10, 12), threshold=threshold)


def test_unfactorizable_layers_raise_or_are_skipped():
    net = _cnn(groups=2)
    x = torch.randn(4, 3, 8, 8)
    with pytest.raises(ValueError, match="cannot factorize grouped conv '2'"):
        utilized_rank(net, x, layers="2")
    report = utilized_rank(net, x)  # selected by type: the grouped conv is skipped
    assert list(report.skipped) == ["2"] and "2" not in report.ranks
    assert report.skipped["2"].startswith("grouped conv (groups=2): the two thin layers")
    with pytest.raises(ValueError, match="cannot factorize '1' of type ReLU"):
        decompose(net, x, layers="1")
    with pytest.raises(ValueError, match="no factorizable layers"):
        utilized_rank(nn.Sequential(nn.ReLU()), torch.randn(2, 3), layers=nn.ReLU)
    with pytest.raises(ValueError, match="method must be one of"):
        decompose(_mlp(), torch.randn(10, 12), method="svd")


def test_latency_objective_keeps_dense_layers_that_are_not_faster(monkeypatch):
    x = torch.randn(64, 12)
    net = _mlp(width=64)

    def fake_timer(dense, factored, inputs):
        return factored.down.in_features == factored.up.out_features == 64  # hidden layer only

    monkeypatch.setattr(ur, "faster_factorized", fake_timer)
    small = decompose(net, x, threshold=0.5, objective="latency")
    assert isinstance(small[2], Factorized)
    assert isinstance(small[0], nn.Linear) and isinstance(small[4], nn.Linear)
    plain = decompose(net, x, threshold=0.5)
    assert isinstance(plain[0], Factorized)


def test_latency_objective_is_not_slower_in_a_quick_measurement():
    from netprism.compression.factorize import time_module

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    x = torch.randn(256, 256)
    fast = decompose(net, x, threshold=0.9, objective="latency")
    t_dense = min(time_module(net, x, repeats=20) for _ in range(3))
    t_fast = min(time_module(fast, x, repeats=20) for _ in range(3))
    assert t_fast <= t_dense * 1.5  # shared CPU: allow timing noise, catch gross slowdowns


def test_decompose_returns_new_model_and_finetunes():
    net = _mlp(width=64)
    before = [p.clone() for p in net.parameters()]
    calls = []
    small = decompose(net, torch.randn(50, 12), threshold=0.8, finetune=calls.append)
    assert calls == [small] and small is not net
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())


def test_threshold_one_preserves_function_on_calibration_data_attention():
    from netprism.models import create_model

    torch.manual_seed(0)
    vit = create_model("vit_tiny", input_shape=(1, 8, 8), num_classes=10, depth=1, dim=32)
    vit = vit.double().eval()
    x = torch.randn(16, 1, 8, 8, dtype=torch.float64)  # 16 images x 17 tokens of calibration
    names = [f"blocks.0.attn.{p}" for p in ("q", "k", "v", "proj")]
    names += ["blocks.0.mlp.fc1", "blocks.0.mlp.fc2"]
    projected = project(vit, x, threshold=1.0, layers=names)
    with torch.no_grad():
        ref, out = vit(x), projected(x)
    # Exact up to rounding on the calibration inputs only (see the calibration notes).
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-9
    # Non-trivial: LayerNorm outputs sum to 0 over D, so q/k/v/fc1 see a (D-1)-dim subspace
    # and their weights really were projected.
    for name in ("blocks.0.attn.q", "blocks.0.attn.k", "blocks.0.attn.v", "blocks.0.mlp.fc1"):
        w0, w1 = vit.get_submodule(name).weight, projected.get_submodule(name).weight
        assert not torch.allclose(w0, w1)


def test_threshold_one_preserves_function_with_grouped_strided_padded_convs():
    """Grouped convs are projected group by group; at threshold 1.0 the calibration outputs are
    reproduced (float64), and a dead input channel is projected out of its group."""
    from netprism.compression.utilized_rank import project

    torch.manual_seed(0)
    model = (
        nn.Sequential(
            nn.Conv2d(2, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=4),
            nn.ReLU(),
            nn.Conv2d(8, 6, 2, stride=1, padding=0, groups=2),
            nn.Flatten(),
            nn.Linear(6 * 3 * 3, 5),
        )
        .double()
        .eval()
    )
    with torch.no_grad():  # channel 0 of the first conv is dead after the ReLU, so group 0 of
        model[0].weight[0] = 0.0  # the grouped conv sees a strict subspace of its patches
        model[0].bias[0] = -1.0
    x = torch.rand(12, 2, 8, 8, dtype=torch.float64)
    x[:, 1] = 0.0  # the second input channel is never excited: S is a strict subspace
    projected = project(model, x, threshold=1.0)
    with torch.no_grad():
        ref, out = model(x), projected(x)
    assert (out - ref).abs().max() / ref.abs().max() < 1e-9
    assert not torch.equal(projected[0].weight, model[0].weight)  # the unused channel dropped
    assert not torch.equal(projected[2].weight, model[2].weight)  # group 0 projected
    assert projected[2].weight[:2, 0].abs().max() < 1e-12  # group 0: dead channel dropped
