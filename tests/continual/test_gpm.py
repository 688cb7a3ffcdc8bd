"""GPM invariants: projected steps leave old input spaces alone, memories stay orthonormal, the
threshold rules count as planted, conv memories live in patch space, bad inputs error."""

import pytest
import torch
from torch import nn

from netprism.continual.gpm import GPM, first_task_basis
from netprism.core.validation import NotFittedError
from netprism.data.embedded import make_lowrank


def _convnet():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(4, 3, 3, stride=2, bias=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 3 * 3, 5, bias=False),
    )


def _task(seed, n=40, shape=(2, 8, 8), classes=5):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=gen) + 0.3 * seed
    return x, torch.randint(0, classes, (n,), generator=gen)


def _sgd_step(model, gpm, x, y, lr=0.1):
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    gpm.after_backward(model, 1, (x, y))
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= lr * p.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_projected_step_is_orthogonal_to_memory(dtype):
    # float64 weights so that the measured W_after - W_before is not float32 round-off of W
    model, gpm = _convnet().to(dtype), GPM(threshold=0.95, samples=30, conv_samples=10)
    for t in range(2):
        x, y = _task(t)
        gpm.after_task(model, t, (x.to(dtype), y))
    x, y = _task(2)
    gpm.before_task(model, 2, (x.to(dtype), y))
    layers = gpm.protected_layers(model)
    before = {n: m.weight.detach().clone() for n, m in layers.items()}
    _sgd_step(model, gpm, x.to(dtype), y, lr=1.0 if dtype == torch.float32 else 0.1)
    for name, module in layers.items():
        dW = (module.weight.detach() - before[name]).reshape(module.weight.shape[0], -1)
        M = gpm.memory_[name].to(dW.dtype)
        assert gpm.memory_size_[name] > 0
        assert float(dW.norm()) > 0
        assert float((dW @ M).norm()) <= 1e-5 * float(dW.norm())


def test_memory_stays_orthonormal_and_grows():
    model = _convnet()
    gpm = GPM(threshold=lambda i, t: 0.9 + 0.02 * t, samples=20, conv_samples=5)
    for t in range(4):
        gpm.update(model, _task(t))
    for name, M in gpm.memory_.items():
        K = M.shape[1]
        assert torch.allclose(M.T @ M, torch.eye(K, dtype=M.dtype), atol=1e-5), name
    sizes = [s["0"] for s in gpm.sizes_]
    assert sizes == sorted(sizes) and len(gpm.thresholds_) == 4
    assert gpm.thresholds_[2]["5"] == pytest.approx(0.94)
    # conv memory lives in patch space: D = C_in * k * k
    assert gpm.memory_["0"].shape[0] == 2 * 3 * 3
    assert gpm.memory_["2"].shape[0] == 4 * 3 * 3
    assert gpm.memory_["5"].shape[0] == 27


def test_threshold_one_keeps_old_outputs_of_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 8, bias=False), nn.Linear(8, 4, bias=False))
    x_old, _ = make_lowrank(30, 12, 5, seed=1)  # rank-5 inputs: memory is partial
    gpm = GPM(threshold=1.0, rule="reach", samples=30).update(model, x_old)
    assert gpm.memory_size_ == {"0": 5, "1": 5}
    out_old = model(x_old).detach().clone()
    w0 = model[0].weight.detach().clone()
    gpm.before_task(model, 1, None)
    gen = torch.Generator().manual_seed(3)
    x_new, y_new = torch.randn(50, 12, generator=gen), torch.randint(0, 4, (50,), generator=gen)
    for _ in range(20):
        _sgd_step(model, gpm, x_new, y_new, lr=0.2)
    assert float((model[0].weight.detach() - w0).norm()) > 1e-2  # it did learn
    assert torch.allclose(model(x_old), out_old, atol=1e-5)


@pytest.mark.parametrize("rule, expected", [("reach", 4), ("below", 3)])
def test_threshold_rules_on_planted_rank(rule, expected):
    x, _ = make_lowrank(200, 20, 4, seed=0)
    model = nn.Sequential(nn.Linear(20, 3, bias=False))
    gpm = GPM(threshold=0.999, rule=rule, samples=200).update(model, x)
    assert gpm.memory_size_ == {"0": expected}


def test_first_task_basis_matches_rules():
    x, planted = make_lowrank(100, 10, 3, seed=2)
    M = first_task_basis(x, 1.0, "reach")
    assert M.shape == (10, 3)  # round-off directions never count
    # span(M) == span(planted)
    P = planted.to(M.dtype)
    assert torch.allclose(M @ (M.T @ P), P, atol=1e-6)


def test_batchnorm_and_biases_frozen_after_first_task():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5, track_running_stats=False))
    model.add_module("head", nn.Linear(5, 2))
    x = torch.randn(30, 6)
    gpm = GPM(threshold=0.9, samples=30).update(model, x)
    assert list(gpm.memory_) == ["0"]  # the head is excluded
    model.zero_grad()
    model(x).sum().backward()
    gpm.after_backward(model, 1, None)
    assert float(model[0].bias.grad.abs().sum()) == 0.0
    assert float(model[1].weight.grad.abs().sum()) == 0.0
    assert float(model.head.bias.grad.abs().sum()) > 0.0  # heads are free


def test_running_stats_warn():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    with pytest.warns(UserWarning, match="running statistics"):
        GPM(samples=10).update(model, torch.randn(10, 4))


@pytest.mark.parametrize("bad", [0.0, 1.5, float("nan"), -0.1, True, [0.9, 1.2]])
def test_bad_thresholds(bad):
    with pytest.raises(ValueError, match="threshold"):
        GPM(threshold=bad)


def test_bad_inputs():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(NotFittedError, match="no memory"):
        GPM().project_gradients(model)
    with pytest.raises(ValueError, match="no layer named 'fc9'"):
        GPM(layers="fc9").update(model, torch.randn(5, 4))
    with pytest.raises(ValueError, match="there are 2 layers"):
        GPM(threshold=[0.9, 0.9, 0.9]).update(model, torch.randn(5, 4))
    with pytest.raises(ValueError, match="must lie in"):
        GPM(threshold=lambda i, t: 2.0).update(model, torch.randn(5, 4))
    with pytest.raises(ValueError, match="rule"):
        GPM(rule="top")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="samples"):
        GPM(samples=0)
    gpm = GPM(layers="0").update(model, torch.randn(5, 4))
    with pytest.raises(NotFittedError, match=r"\['2'\] have no memory"):
        gpm.layers = nn.Linear
        gpm.project_gradients(model)
    GPM().after_backward(model, 0, None)  # no memory yet: a no-op
