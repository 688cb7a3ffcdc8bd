"""Non-finite numbers are refused or warned about where they arise (NaN weights, overflowing
rows, boolean labels), naming the sample, the parameter or the layer."""

import pytest
import torch
from torch import nn

from netprism.core.capture import layer_covariances
from netprism.core.curvature import CurvatureTracker, input_curvature
from netprism.core.per_sample import per_sample_losses
from netprism.core.subspace import StreamingCovariance
from netprism.data.base import DatasetInfo, TensorDataset, as_dataset
from netprism.train import Callback, TrainConfig, fit


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def test_nan_weights_give_a_warning_naming_samples_and_parameters():
    net = _net()
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        net[2].weight[1, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match=r"NaN/inf for 6 of 6 samples.*\['2.weight'\]"):
        scores = input_curvature(net, x, y, seed=0)
    assert not bool(torch.isfinite(scores.norm).any())  # reported, not hidden


def test_finite_model_scores_without_warning(recwarn):
    input_curvature(_net(), torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]), seed=0)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_tracker_warns_with_the_epoch():
    class Poison(Callback):  # breaks the model after the last step of epoch 0
        def on_epoch_end(self, ctx, metrics):
            with torch.no_grad():
                ctx.model[0].bias.fill_(float("nan"))

    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    tracker = CurvatureTracker(n_probes=1)
    cfg = TrainConfig(epochs=1, batch_size=8, progress=False, device="cpu")
    with pytest.warns(RuntimeWarning, match=r"CurvatureTracker, epoch 0.*'0.bias'"):
        fit(_net(), (x, y), cfg, callbacks=[Poison(), tracker])


def test_overflowing_rows_are_refused_and_leave_the_covariance_unchanged():
    cov = StreamingCovariance().update(torch.ones(3, 2, dtype=torch.float64))
    before = cov.covariance(centered=False).clone()
    with pytest.raises(ValueError, match=r"largest \|value\| is 1e\+200"):
        cov.update(torch.full((2, 2), 1e200, dtype=torch.float64))
    assert torch.equal(cov.covariance(centered=False), before) and cov.n == 3


def test_overflow_inside_a_model_names_the_layer():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)).double()
    with torch.no_grad():
        net[0].weight.fill_(1e160)  # its outputs' squares overflow float64
        net[0].bias.zero_()
    x = torch.ones(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"layer '1'.*too large"):
        layer_covariances(net, ["0", "1"], x)


def test_boolean_labels_are_refused_everywhere():
    x, y = torch.randn(4, 3), torch.tensor([True, False, True, False])
    with pytest.raises(ValueError, match="booleans"):
        as_dataset((x, y))
    with pytest.raises(ValueError, match="booleans"):
        TensorDataset(x, y, DatasetInfo("toy", ("a", "b"), (3,), "x"))
    with pytest.raises(ValueError, match="integer class indices"):
        per_sample_losses(nn.Linear(3, 2), x, y)
    with pytest.raises(ValueError, match="integer class indices"):
        fit(nn.Linear(3, 2), (x, y), TrainConfig(epochs=1, progress=False, device="cpu"))
