"""PCA-driven design (Garg, Panda, Roy 2020): planted ranks, the depth rule, designed widths."""

import math

import pytest
import torch
from torch import nn

from netprism.compression import l1_prune_to_macs
from netprism.compression.pca_design import (
    count_cost,
    depth_keep,
    design,
    hidden_layers,
    output_spectra,
    significant_dims,
)
from netprism.models import create_model


def _rank_r_linear(d_in: int, d_out: int, r: int, seed: int = 0) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(d_in, d_out)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(d_out, r, generator=g) @ torch.randn(r, d_in, generator=g))
    return layer


@pytest.mark.parametrize("r", [1, 3, 7])
def test_planted_rank_of_linear_outputs_is_recovered(r):
    net = nn.Sequential(_rank_r_linear(12, 16, r), nn.Linear(16, 3))
    x = torch.randn(500, 12, generator=torch.Generator().manual_seed(1))  # full rank input
    assert significant_dims(net, x, threshold=0.999) == {"0": r}


def test_planted_rank_of_conv_outputs_channelwise():
    # A 1x1 conv mixing 10 input channels into 12 outputs through a rank-4 map: every output
    # position lies in a 4-dim channel subspace (plus the bias, removed by centering).
    torch.manual_seed(0)
    conv = nn.Conv2d(10, 12, 1)
    with torch.no_grad():
        conv.weight.copy_((torch.randn(12, 4) @ torch.randn(4, 10)).reshape(12, 10, 1, 1))
    net = nn.Sequential(conv, nn.Flatten(), nn.Linear(12 * 5 * 5, 2))
    x = torch.randn(40, 10, 5, 5)
    assert significant_dims(net, x, threshold=0.999, post_activation=False) == {"0": 4}
    spectrum = output_spectra(net, x, post_activation=False)["0"]
    assert spectrum.shape == (12,) and float(spectrum[4:].max()) < 1e-8 * float(spectrum[0])


def test_post_activation_tap_is_used_and_rows_are_channelwise():
    torch.manual_seed(0)
    net = create_model("vgg", input_shape=(1, 8, 8), num_classes=3, depth=11, width_mult=0.125)
    _, report = design(net, torch.randn(16, 1, 8, 8), threshold=0.99)
    assert [ly.tap for ly in report.layers][:2] == ["features.act1", "features.act2"]
    assert [ly.width for ly in report.layers] == [8, 16, 32, 32, 64, 64, 64, 64]


def test_depth_rule_on_hand_made_counts():
    counts = [4, 9, 12, 10, 15, 20, 18, 30, 30, 5, 6]
    stages = [0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3]
    assert depth_keep(counts, stages) == [
        *[True, True, True, False, False],  # stage 0 stops at the first fall (10 <= 12)
        *[True, False],  # 18 <= 20
        *[True, False],  # a plateau stops growth too
        *[True, True],  # a new stage starts afresh: 5 is kept though < 30
    ]
    assert depth_keep([], []) == []
    with pytest.raises(ValueError, match="differ in length"):
        depth_keep([1, 2], [0])


@pytest.mark.parametrize("bad", [0, 0.0, 1.5, -0.1, math.nan, "0.9", True])
def test_bad_thresholds_raise_clear_errors(bad):
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"threshold must be .* \(0, 1\]"):
        significant_dims(net, torch.randn(10, 4), threshold=bad)
    with pytest.raises(ValueError, match="threshold"):
        design(net, torch.randn(10, 4), threshold=bad, arch="mlp")


def test_hidden_layers_excludes_head_and_needs_a_hidden_layer():
    net = create_model("mlp", input_shape=(4,), num_classes=2, hidden=(8, 6))
    assert list(hidden_layers(net)) == ["fc1", "fc2"]
    with pytest.raises(ValueError, match="no hidden"):
        hidden_layers(nn.Sequential(nn.Linear(4, 2)))


def test_mlp_design_widths_equal_counted_significant_dims():
    torch.manual_seed(0)
    net = create_model("mlp", input_shape=(10,), num_classes=3, hidden=(16, 16, 16))
    with torch.no_grad():  # fc1 planted at rank 5; the rest as counted
        net.fc1.weight.copy_(_rank_r_linear(10, 16, 5).weight)
    x = torch.randn(400, 10)
    dims = significant_dims(net, x, threshold=0.999, post_activation=False)
    assert dims["fc1"] == 5
    cfg, report = design(net, x, arch="mlp", post_activation=False)
    keep = depth_keep(list(dims.values()), [0, 0, 0])
    assert [ly.kept for ly in report.layers] == keep
    assert cfg["hidden"] == tuple(d for d, k in zip(dims.values(), keep) if k)
    designed = create_model(**cfg)
    assert [m.out_features for m in designed if isinstance(m, nn.Linear)] == [*cfg["hidden"], 3]
    assert report.params_after < report.params_before and report.macs_after < report.macs_before


def test_vgg_design_builds_counted_widths_and_is_cheaper():
    torch.manual_seed(0)
    net = create_model("vgg", input_shape=(1, 8, 8), num_classes=4, depth=11, width_mult=0.25)
    x = torch.randn(48, 1, 8, 8)
    cfg, report = design(net, x, threshold=0.9)
    designed = create_model(**cfg)
    kept = [ly for ly in report.layers if ly.kept]
    convs = [m for m in designed.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [ly.significant for ly in kept]
    counts = significant_dims(net, x, threshold=0.9)
    assert {ly.name: ly.significant for ly in report.layers} == counts
    assert designed(x[:2]).shape == (2, 4)
    macs, params, _ = count_cost(designed, x[:1])
    assert (macs, params) == (report.macs_after, report.params_after)
    assert params < report.params_before and macs < report.macs_before
    assert report.param_reduction > 1 and report.mac_reduction > 1


def test_vgg_design_without_depth_rule_is_a_registry_config():
    torch.manual_seed(0)
    net = create_model("vgg", input_shape=(1, 8, 8), num_classes=4, depth=11, width_mult=0.25)
    cfg, report = design(net, torch.randn(32, 1, 8, 8), threshold=0.95, apply_depth_rule=False)
    assert cfg["depth"] == 11 and cfg["channels"] == [ly.significant for ly in report.layers]
    designed = create_model(**cfg)  # no private path: the model registry builds it
    widths = [m.out_channels for m in designed.modules() if isinstance(m, nn.Conv2d)]
    assert widths == cfg["channels"]


def test_l1_pruning_matches_mac_budget():
    pytest.importorskip("torch_pruning")
    torch.manual_seed(0)
    net = create_model("vgg", input_shape=(1, 8, 8), num_classes=4, depth=11, width_mult=0.25)
    x = torch.randn(1, 1, 8, 8)
    macs0, params0, _ = count_cost(net, x)
    pruned, info = l1_prune_to_macs(net, x, macs0 // 3, ignored_layers=[net.head])
    assert abs(info["mac_error"]) <= 0.05 and info["params"] < params0
    assert count_cost(pruned, x)[:2] == (info["macs"], info["params"])
    assert count_cost(net, x)[0] == macs0  # the original is untouched
    assert pruned.eval()(x).shape == (1, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_macs": 0}, "target_macs"),
        ({"rel_tol": 0.0}, "rel_tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"ignored_layers": [nn.Linear(2, 2)]}, "not in model"),
    ],
)
def test_l1_pruning_refuses_bad_settings_by_name(kwargs, message):
    net = create_model("mlp", input_shape=(4,), num_classes=3, hidden=(8,))
    args = {"target_macs": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        l1_prune_to_macs(net, torch.randn(1, 4), **args)
