"""SPACE invariants: planted unit counts, zero forgetting bit for bit, used units monotone and
bounded, masked sub-network == the explicitly sliced narrow network, MACs in closed form, errors."""

import pytest
import torch
from torch import nn

from netprism.continual.recipe import stream_config
from netprism.continual.runner import run_stream
from netprism.continual.space import SPACE, added_units, first_task_units
from netprism.continual.streams import permuted_stream, split_stream
from netprism.core.validation import NotFittedError


def _planted(n, basis, gen, scale=None):
    """n rows spanned by ``basis`` (k, C) with per-direction scales, centered."""
    k = basis.shape[0]
    scale = torch.ones(k) if scale is None else scale
    A = (torch.randn(n, k, generator=gen, dtype=basis.dtype) * scale) @ basis
    return A - A.mean(0)


def test_first_task_units_recovers_planted_rank():
    gen = torch.Generator().manual_seed(0)
    q = torch.linalg.qr(torch.randn(12, 12, generator=gen)).Q
    A = _planted(400, q[:4].double(), gen)  # 4 equal directions out of 12
    assert first_task_units(A, 0.999, "reach") == 4
    assert first_task_units(A, 0.999, "below") == 3  # the code drops the crossing one
    assert first_task_units(A, 0.5, "reach") == 2


def test_added_units_counts_only_directions_outside_the_core():
    gen = torch.Generator().manual_seed(1)
    q = torch.linalg.qr(torch.randn(400, 400, generator=gen)).Q.double()
    core = torch.randn(400, 3, generator=gen).double()  # 3 Core units over 400 samples
    copies = core @ torch.randn(3, 2, generator=gen).double()  # residual units in the Core span
    fresh = q[:, :2] * 5.0  # two directions orthogonal-ish to everything else
    fresh = fresh - (core @ torch.linalg.lstsq(core, fresh).solution)
    A = torch.cat([core, copies, fresh, torch.zeros(400, 1, dtype=torch.float64)], 1)
    assert added_units(A[:, :5], 3, 0.99) == 0  # only copies of the Core
    assert added_units(A, 3, 0.999) == 2
    assert added_units(A, 8, 0.99) == 0  # a full layer adds nothing
    with pytest.raises(ValueError, match="n_core must lie in"):
        added_units(A, 0, 0.9)


def _stream(n_tasks=3, heads=None):
    if heads is None:
        return permuted_stream("digits", n_tasks, seed=0)
    return split_stream("digits", n_tasks, seed=0)


def _mlp(hidden=(32, 32), classes=10):
    torch.manual_seed(0)
    layers = [nn.Flatten()]
    width = 64
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    net = nn.Sequential(*layers)
    net.add_module("head", nn.Linear(width, classes))
    return net


@pytest.fixture(scope="module")
def learned():
    """A 3-task permuted stream with logits of task 0 recorded after every task."""
    train, test = _stream()
    net = _mlp()
    space = SPACE(var_kept=[0.9, 0.95], seed=0)
    logits, weights = [], []

    original = space.fit_task

    def fit_and_record(model, task, data, trainer):
        original(model, task, data, trainer)
        with space.subnetwork(model, 0), torch.no_grad():
            logits.append(model.eval()(test[0].x))
        n0 = space.units_[0]
        weights.append({n: m.weight[: n0[n]].clone() for n, m in space.unit_layers(model).items()})

    space.fit_task = fit_and_record  # type: ignore[method-assign]
    result = run_stream(
        net,
        train,
        test,
        space,
        config=stream_config(epochs=3, batch_size=16, lr=0.05, device="cpu"),
    )
    return net, space, result, logits, weights, test


def test_old_task_outputs_are_bit_identical_after_later_tasks(learned):
    _, _, result, logits, weights, _ = learned
    assert len(logits) == 3
    for later in logits[1:]:
        assert torch.equal(later, logits[0])
    for later in weights[1:]:
        assert all(torch.equal(later[n], weights[0][n]) for n in later)
    R = result.R
    for j in range(3):
        assert torch.equal(R[j:, j], R[j, j].expand(3 - j))  # R[t, j] == R[j, j] exactly
    assert result.bwt == 0.0
    assert result.acc > 0.5  # it learned something (chance 0.1)


def test_used_units_never_decrease_nor_exceed_width(learned):
    net, space, *_ = learned
    widths = {n: m.out_features for n, m in space.unit_layers(net).items()}
    for before, after in zip(space.units_, space.units_[1:]):
        for name in widths:
            assert 1 <= before[name] <= after[name] <= widths[name]


def test_masked_subnetwork_equals_sliced_narrow_network(learned):
    net, space, _, _, _, test = learned
    task = 1
    units = space.units_[task]
    narrow, prev = [nn.Flatten()], None
    for name, layer in space.unit_layers(net).items():
        n = units[name]
        cols = slice(None) if prev is None else slice(0, prev)
        lin = nn.Linear(layer.weight[:n, cols].shape[1], n)
        lin.weight.data, lin.bias.data = layer.weight[:n, cols].clone(), layer.bias[:n].clone()
        narrow += [lin, nn.ReLU()]
        prev = n
    head = nn.Linear(prev, 10)
    head.weight.data = space.heads_[task]["weight"][:, :prev].clone()
    head.bias.data = space.heads_[task]["bias"].clone()
    narrow_net = nn.Sequential(*narrow, head)
    with space.subnetwork(net, task), torch.no_grad():
        masked = net(test[task].x)
    torch.testing.assert_close(masked, narrow_net(test[task].x), rtol=1e-5, atol=1e-5)
    # the live head is back after the block
    assert not torch.equal(net.head.weight, space.heads_[task]["weight"])


def test_task_macs_in_closed_form(learned):
    net, space, _, _, _, test = learned
    x = test[0].x[:1]
    full = space.task_macs(net, x)
    assert full["total"] == 64 * 32 + 32 * 32 + 32 * 10
    for t, units in enumerate(space.units_):
        n1, n2 = units["1"], units["3"]
        assert space.task_macs(net, x, t)["total"] == 64 * n1 + n1 * n2 + n2 * 10
    with pytest.raises(NotFittedError):
        space.task_macs(net, x, 3)


def test_conv_chain_split_stream_multi_head_zero_forgetting():
    train, test = split_stream("digits", 2, seed=0)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
    )
    net.add_module("head", nn.Linear(8 * 4 * 4, 10))
    space = SPACE(var_kept=0.95, samples=100)
    result = run_stream(
        net,
        train,
        test,
        space,
        config=stream_config(epochs=1, batch_size=32, lr=0.05, device="cpu"),
        heads="multi",
    )
    assert result.R[1, 0] == result.R[0, 0]
    x = test[0].x[:1]
    n1, n2 = space.units_[0]["0"], space.units_[0]["2"]
    want = n1 * 9 * 64 + n2 * 9 * n1 * 16 + 10 * 128 * n2 // 8
    assert space.task_macs(net, x, 0)["total"] == want


def test_exhausted_layer_reuses_core_and_warns():
    train, test = _stream(n_tasks=3)
    net = _mlp(hidden=(4, 4))
    space = SPACE(var_kept=1.0, rule="reach", retrain_epochs=0)
    with pytest.warns(UserWarning, match="resource exhausted"):
        run_stream(
            net, train, test, space, config=stream_config(epochs=1, batch_size=64, device="cpu")
        )
    assert space.units_[-1] == {"1": 4, "3": 4}
    assert any(space.exhausted_[1:])


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\]"):
        SPACE(var_kept=0.0)
    with pytest.raises(ValueError, match=r"\[1\] must lie"):
        SPACE(var_kept=[0.9, 1.5])
    with pytest.raises(ValueError, match="rule"):
        SPACE(rule="above")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retrain_epochs"):
        SPACE(retrain_epochs=-1)
    bn = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="normalization layer '1'"):
        SPACE(head="3").unit_layers(bn)
    with pytest.raises(ValueError, match="no module named 'head'"):
        SPACE().unit_layers(nn.Sequential(nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="at least one hidden"):
        SPACE(head=None).unit_layers(nn.Sequential(nn.Linear(4, 2)))
    space = SPACE(head="2", retrain_epochs=0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(NotFittedError, match="no sub-network for task 0"), space.subnetwork(net, 0):
        pass
    with pytest.raises(ValueError, match="got task 1"):
        space.fit_task(net, 1, torch.randn(10, 4), train=lambda epochs=None: None)
    with pytest.raises(ValueError, match="3 entries but there are 2 layers"):
        SPACE(var_kept=[0.9, 0.9, 0.9], head="4").fit_task(
            nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)),
            0,
            torch.randn(10, 4),
            train=lambda epochs=None: None,
        )
