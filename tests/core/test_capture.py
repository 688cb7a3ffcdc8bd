import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import TensorDataset as TorchTensorDataset

from netprism.core.capture import (
    capture,
    conv_patch_count,
    conv_patches,
    layer_covariances,
    linear_rows,
    select_layers,
)
from netprism.core.subspace import StreamingCovariance
from netprism.data.base import DatasetInfo, TensorDataset


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
        self.fc1 = nn.Linear(2, 3)
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc2(self.fc1(self.features(x).mean((2, 3))))


def _via_weights(conv, x):
    """Rebuild conv(x) from conv_patches: each group's filters times its patches."""
    rows = conv_patches(x, conv)  # (N*L*g, C_in/g*k*k)
    g = conv.groups
    w = conv.weight.reshape(g, conv.out_channels // g, -1)  # (g, C_out/g, F)
    per_pos = rows.reshape(-1, g, rows.shape[1])  # (N*L, g, F)
    out = torch.einsum("pgf,gof->pgo", per_pos, w).reshape(per_pos.shape[0], -1)
    return out + conv.bias  # (N*L, C_out)


def _out_rows(y):  # (N, C, H, W) or (N, C, L) -> (N*positions, C)
    return y.reshape(y.shape[0], y.shape[1], -1).permute(0, 2, 1).reshape(-1, y.shape[1])


# --- selection -----------------------------------------------------------------------


def test_select_layers_by_name_glob_type_and_list():
    net = _Net()
    assert list(select_layers(net, "fc1")) == ["fc1"]
    assert list(select_layers(net, "fc*")) == ["fc1", "fc2"]
    assert list(select_layers(net, "features.*")) == ["features.0", "features.1"]
    assert list(select_layers(net, nn.Linear)) == ["fc1", "fc2"]
    assert list(select_layers(net, (nn.Conv2d, nn.ReLU))) == ["features.0", "features.1"]
    assert list(select_layers(net, ["fc2", nn.Conv2d, "fc2"])) == ["features.0", "fc2"]
    assert list(select_layers(net, ("fc2", "features.0"))) == ["features.0", "fc2"]


def test_select_layers_errors_name_what_was_asked():
    net = _Net()
    with pytest.raises(ValueError, match=r"no layers selected by 'conv\*'.*available.*'fc1'"):
        select_layers(net, "conv*")
    with pytest.raises(ValueError, match=r"no layers selected by <class.*Conv1d"):
        select_layers(net, nn.Conv1d)
    with pytest.raises(
        ValueError, match=r"no layer named 'fc3' in _Net \(did you mean 'fc2', 'fc1'\?\)"
    ):
        select_layers(net, "fc3")
    with pytest.raises(ValueError, match="no layers selected"):
        capture(net, "conv*", torch.zeros(1, 1, 4, 4))
    with pytest.raises(TypeError, match="layers must be"):
        select_layers(net, 3)  # type: ignore[arg-type]
    wide = nn.Sequential(*[nn.Linear(2, 2) for _ in range(30)])
    with pytest.raises(ValueError, match=r"\.\.\. \(30 in all\)"):
        select_layers(wide, "fc*")


# --- rows ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=3, stride=2, padding=1, dilation=2),
        dict(kernel_size=(2, 3), stride=(1, 2), padding=(0, 1)),
        dict(kernel_size=3, padding=0),
    ],
)
def test_conv_capture_equals_unfold_rows(kwargs):
    conv = nn.Conv2d(3, 4, **kwargs)
    x = torch.randn(2, 3, 9, 9)
    rows = capture(nn.Sequential(conv), "0", x)["0"]
    k = conv.kernel_size
    cols = F.unfold(x, k, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
    expected = cols.transpose(1, 2).reshape(-1, 3 * k[0] * k[1])  # (N*L, C*kh*kw)
    torch.testing.assert_close(rows, expected, atol=0, rtol=0)
    torch.testing.assert_close(_via_weights(conv, x), _out_rows(conv(x)), atol=1e-5, rtol=1e-5)


def test_grouped_conv_rows_are_per_group_patches_stacked():
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2)
    x = torch.randn(2, 4, 5, 5)
    rows = capture(nn.Sequential(conv), "0", x)["0"]
    assert rows.shape == (2 * 25 * 2, 2 * 9)  # (N*H_out*W_out*g, C_in/g*k*k)
    cols = F.unfold(x, 3, padding=1)  # (N, C_in*k*k, L): group 0 is the first half of dim 1
    torch.testing.assert_close(rows[0::2], cols[:, :18].transpose(1, 2).reshape(-1, 18))
    torch.testing.assert_close(rows[1::2], cols[:, 18:].transpose(1, 2).reshape(-1, 18))
    per_group = conv_patches(x, conv, per_group=True)
    assert per_group.shape == (2, 50, 18)
    torch.testing.assert_close(per_group[1], rows[1::2])
    torch.testing.assert_close(_via_weights(conv, x), _out_rows(conv(x)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(2, 3, 4, padding="same"),  # asymmetric padding for an even kernel
        nn.Conv2d(2, 3, 3, padding="valid", stride=2),
        nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
        nn.Conv2d(2, 3, 3, padding=2, dilation=2, padding_mode="circular"),
        nn.Conv2d(2, 4, 3, padding=1, padding_mode="replicate", groups=2),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv_patches_reproduce_the_layer_for_every_padding(conv):
    x = torch.randn(2, 2, 7, 7)
    torch.testing.assert_close(_via_weights(conv, x), _out_rows(conv(x)), atol=1e-5, rtol=1e-5)


def test_conv1d_patches_and_outputs():
    conv = nn.Conv1d(3, 4, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 10)
    torch.testing.assert_close(_via_weights(conv, x), _out_rows(conv(x)), atol=1e-5, rtol=1e-5)
    got = capture(nn.Sequential(conv), "0", x, what="outputs")["0"]
    torch.testing.assert_close(got, _out_rows(conv(x)))
    unbatched = conv_patches(x[0], conv)
    torch.testing.assert_close(unbatched, conv_patches(x[:1], conv))


def test_conv_outputs_have_channels_as_features():
    conv = nn.Conv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 4, 4)
    got = capture(nn.Sequential(conv), "0", x, what="outputs")["0"]
    with torch.no_grad():
        expected = conv(x).permute(0, 2, 3, 1).reshape(-1, 5)  # (N*H*W, C_out)
    torch.testing.assert_close(got, expected)


def test_linear_capture_on_a_sequence_equals_reshape():
    lin = nn.Linear(4, 3)
    x = torch.randn(2, 5, 4)  # (B, T, D)
    rows = capture(nn.Sequential(lin), "0", x, what="both")
    torch.testing.assert_close(rows[("0", "inputs")], x.reshape(10, 4))
    with torch.no_grad():
        torch.testing.assert_close(rows[("0", "outputs")], lin(x).reshape(10, 3))
    torch.testing.assert_close(linear_rows(x), x.reshape(10, 4))


def test_other_layers_are_flattened_from_dim_1():
    rows = capture(_Net(), "features.1", torch.randn(3, 1, 5, 5))["features.1"]
    assert rows.shape == (3, 2 * 3 * 3)


# --- running -------------------------------------------------------------------------


class _Boom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        self.fc(x)  # the hook fires, then the forward fails
        raise RuntimeError("boom")


def test_hooks_removed_and_modes_restored_after_a_raising_forward():
    model = _Boom()
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        capture(model, "*", torch.zeros(3, 2), what="both")
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    assert model.training and model.fc.training


def test_non_finite_activations_name_the_layer_and_leave_no_hooks():
    net = _mlp()
    x = torch.randn(4, 4)
    x[2, 1] = math.nan
    with pytest.raises(ValueError, match=r"non-finite inputs at layer '0'"):
        capture(net, "0", x)
    with torch.no_grad():
        net[2].weight[0, 0] = math.inf
    with pytest.raises(ValueError, match=r"non-finite outputs at layer '2'"):
        capture(net, "2", torch.ones(2, 4), what="outputs")
    assert all(len(m._forward_hooks) == 0 for m in net.modules())


def test_eval_mode_by_default_and_previous_mode_restored():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    net.train()
    x = torch.randn(8, 4)
    a = capture(net, "1", x, what="outputs")["1"]
    b = capture(net, "1", x, what="outputs")["1"]
    torch.testing.assert_close(a, b)  # no dropout in eval mode
    assert net.training and net[1].training
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(a, net(x))


def test_all_data_forms_give_the_same_rows():
    net = _mlp()
    x, y = torch.randn(10, 4), torch.arange(10) % 2
    info = DatasetInfo("toy", ("a", "b"), (4,), "test")
    ref = capture(net, "2", x, batch_size=3)["2"]
    forms = [
        (x, y),
        TorchTensorDataset(x, y),
        TorchTensorDataset(x),
        TensorDataset(x, y, info),
        DataLoader(TorchTensorDataset(x, y), batch_size=4),
        [x[:6], x[6:]],
    ]
    for data in forms:
        torch.testing.assert_close(capture(net, "2", data, batch_size=3)["2"], ref)


def test_subsampling_is_capped_seeded_and_aligned():
    net = _mlp()
    x = torch.randn(40, 4)
    a = capture(net, "0", x, what="both", rows_per_batch=5, seed=1, batch_size=10)
    b = capture(net, "0", x, what="both", rows_per_batch=5, seed=1, batch_size=10)
    c = capture(net, "0", x, what="both", rows_per_batch=5, seed=2, batch_size=10)
    inputs, outputs = a[("0", "inputs")], a[("0", "outputs")]
    assert inputs.shape == (20, 4) and outputs.shape == (20, 8)
    torch.testing.assert_close(inputs, b[("0", "inputs")])
    assert not torch.equal(inputs, c[("0", "inputs")])
    with torch.no_grad():
        torch.testing.assert_close(outputs, net[0](inputs))  # same positions in and out
    alone = capture(net, "0", x, rows_per_batch=5, seed=1, batch_size=10)["0"]
    torch.testing.assert_close(alone, inputs)  # independent of what else is captured


def test_streaming_into_covariances_matches_stacked_rows():
    net = _Net()
    x = torch.randn(12, 1, 6, 6)
    covs = layer_covariances(net, ["features.0", "fc*"], x, batch_size=5)
    rows = capture(net, ["features.0", "fc*"], x)
    assert set(covs) == set(rows) == {"features.0", "fc1", "fc2"}
    for name, cov in covs.items():
        r = rows[name].double()
        assert cov.n == r.shape[0]
        torch.testing.assert_close(cov.second_moment, r.T @ r, atol=1e-10, rtol=0)
    both = layer_covariances(net, "fc1", x, what="both")
    assert set(both) == {("fc1", "inputs"), ("fc1", "outputs")}
    assert both[("fc1", "outputs")].dim == 3


def test_callable_consumer_gets_rows_batch_by_batch():
    seen = []
    out = capture(
        _mlp(),
        nn.Linear,
        torch.randn(7, 4),
        batch_size=3,
        consumer=lambda name, kind, rows: seen.append((name, kind, tuple(rows.shape))),
    )
    assert out is None
    assert seen[:2] == [("0", "inputs", (3, 4)), ("2", "inputs", (3, 8))]
    assert len(seen) == 6 and seen[-1] == ("2", "inputs", (1, 8))


class _Spare(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.spare = nn.Linear(2, 2), nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)  # spare never runs


def test_capture_bad_arguments():
    net = _mlp()
    with pytest.raises(ValueError, match=r"consumer has no entry for '2'"):
        capture(net, nn.Linear, torch.randn(2, 4), consumer={"0": StreamingCovariance()})
    with pytest.raises(ValueError, match="what must be"):
        capture(net, "0", torch.randn(2, 4), what="weights")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no batches"):
        capture(net, "0", torch.randn(0, 4))
    with pytest.raises(ValueError, match="rows_per_batch"):
        capture(net, "0", torch.randn(2, 4), rows_per_batch=0)
    unused = _Spare()
    with pytest.raises(ValueError, match=r"'spare'.* never ran"):
        capture(unused, nn.Linear, torch.randn(2, 2))
    assert capture(net, "0", torch.randn(2, 4), device="cpu")["0"].shape == (2, 4)


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(4, 8, 3, padding=1),
        nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=2),
        nn.Conv2d(4, 8, (3, 2), stride=(2, 1), padding=2, groups=2),
        nn.Conv2d(4, 8, 3, padding="same", dilation=2, padding_mode="reflect"),
        nn.Conv2d(4, 8, 2, padding="valid", groups=4),
        nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2),
    ],
)
def test_gathered_patches_equal_rows_of_the_full_unfold(conv):
    """Sub-sampled capture gathers only the chosen patches; they must be the same rows."""
    torch.manual_seed(0)
    x = torch.randn(3, 4, 9, 7) if isinstance(conv, nn.Conv2d) else torch.randn(3, 4, 11)
    full = conv_patches(x, conv)
    idx = torch.randperm(len(full))[:50]
    assert torch.equal(conv_patches(x, conv, rows=idx), full[idx])
    assert conv_patch_count(x, conv) == len(full)
