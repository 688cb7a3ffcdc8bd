"""The public API of the continual area: one TrainConfig recipe, fitted attributes ending in
``_`` that exist only after fitting, methods that refuse recipes breaking them."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprism.continual import runner
from netprism.continual.baselines import AGEM, EWC, joint_training
from netprism.continual.gpm import GPM
from netprism.continual.recipe import resolve_config, stream_config
from netprism.continual.runner import ContinualMethod, run_stream, train_task
from netprism.continual.space import SPACE
from netprism.continual.streams import permuted_stream
from netprism.core.seed import seed_everything
from netprism.data import DatasetInfo, TensorDataset
from netprism.models import create_model
from netprism.train import TrainConfig, fit


def _mlp(seed: int = 0) -> nn.Module:
    seed_everything(seed)
    return create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(16,))


def _toy(n_tasks: int = 2) -> list[TensorDataset]:
    info = DatasetInfo("toy", ("a", "b"), (2,), "test")
    gen = torch.Generator().manual_seed(0)
    return [
        TensorDataset(torch.randn(12, 2, generator=gen), torch.arange(12) % 2, info)
        for _ in range(n_tasks)
    ]


def test_stream_config_defaults_are_the_old_loose_defaults():
    cfg = stream_config()
    expected = dict(
        epochs=5, batch_size=64, lr=0.01, optimizer="sgd", seed=0, device="auto",
        momentum=0.0, weight_decay=0.0, scheduler="none", progress=False,
        label_smoothing=0.0, max_grad_norm=None, checkpoint_dir=None,
    )  # fmt: skip
    assert {k: getattr(cfg, k) for k in expected} == expected
    assert stream_config(3, 10, 0.05, "adam", 2, torch.device("cpu")).device == "cpu"


def test_default_config_equals_the_explicit_default_recipe():
    train, test = permuted_stream("digits", 2, seed=0)
    a, b = _mlp(), _mlp()
    ra = run_stream(a, train, test, config=dataclasses.replace(stream_config(), epochs=1))
    rb = run_stream(b, train, test, config=stream_config(epochs=1, device="auto"))
    assert torch.equal(ra.R, rb.R)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_config_must_be_a_train_config_and_loose_keywords_are_gone():
    tasks = _toy()
    with pytest.raises(TypeError, match="run_stream takes config as a .*TrainConfig.*got dict"):
        run_stream(nn.Linear(2, 2), tasks, tasks, config={"epochs": 1})
    with pytest.raises(TypeError, match="joint_training takes config as a .*TrainConfig"):
        joint_training(nn.Linear(2, 2), tasks, tasks, config=5)
    saved = dataclasses.replace(stream_config(), checkpoint_dir="ckpt")
    with pytest.raises(ValueError, match="run_stream cannot honour TrainConfig.checkpoint_dir"):
        run_stream(nn.Linear(2, 2), tasks, tasks, config=saved)
    with pytest.raises(TypeError, match="epochs"):
        run_stream(nn.Linear(2, 2), tasks, tasks, epochs=1)  # type: ignore[call-arg]
    assert resolve_config(None).device in ("cpu", "cuda")


def test_a_recipe_with_momentum_is_honoured():
    """train_task with momentum / weight decay equals a plain loop with that optimizer."""
    train, _ = permuted_stream("digits", 2, seed=0)
    cfg = TrainConfig(
        epochs=2, batch_size=16, lr=0.05, momentum=0.9, weight_decay=1e-3, scheduler="none",
        seed=1, device="cpu", progress=False,
    )  # fmt: skip
    a, b = _mlp(), _mlp()
    opt = torch.optim.SGD(a.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 0)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(train[0]), generator=gen)
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(a(train[0].x[idx]), train[0].y[idx]).backward()
            opt.step()
    train_task(b, train[0], 0, ContinualMethod(), None, config=cfg)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_a_scheduler_is_honoured_per_task_fit(monkeypatch):
    seen = []

    def spy(*args, **kwargs):
        seen.append(args[2])
        return fit(*args, **kwargs)

    monkeypatch.setattr(runner, "fit", spy)
    tasks = _toy()
    cfg = dataclasses.replace(stream_config(epochs=2, device="cpu"), scheduler="cosine")
    run_stream(nn.Linear(2, 2), tasks, tasks, config=cfg)
    assert [c.scheduler for c in seen] == ["cosine", "cosine"]
    assert all(c.epochs == 2 and not c.progress for c in seen)


def test_space_refuses_weight_decay_and_gpm_warns():
    tasks = _toy()
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    decay = dataclasses.replace(stream_config(epochs=1, device="cpu"), weight_decay=1e-4)
    with pytest.raises(ValueError, match="SPACE needs weight_decay=0"):
        run_stream(net, tasks, tasks, SPACE(head="2"), config=decay)
    with pytest.warns(UserWarning, match="weight_decay"):
        run_stream(net, tasks, tasks, GPM(exclude=()), config=decay)


def test_fitted_attributes_exist_only_after_fitting():
    unfitted = {
        GPM(): ("memory_", "memory_size_", "thresholds_", "sizes_", "n_tasks_"),
        SPACE(head="2"): ("units_", "widths_", "exhausted_", "heads_", "n_tasks_"),
        EWC(): ("fishers_", "anchors_"),
        AGEM(): ("memory_",),
    }
    for method, names in unfitted.items():
        for name in names:
            assert not hasattr(method, name), (type(method).__name__, name)
    tasks = _toy()
    for method, names in unfitted.items():
        model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
        run_stream(model, tasks, tasks, method, config=stream_config(epochs=1, device="cpu"))
        for name in names:
            assert hasattr(method, name), (type(method).__name__, name)
    gpm, space = list(unfitted)[:2]
    assert isinstance(gpm, GPM) and isinstance(space, SPACE)
    assert gpm.n_tasks_ == 2 and gpm.sizes_[-1] == gpm.memory_size_
    assert {n: m.shape[1] for n, m in gpm.memory_.items()} == gpm.memory_size_
    assert space.n_tasks_ == 2 and space.widths_ == {"0": 4} and len(space.heads_) == 2
    assert space.heads_[0]["weight"].shape == (2, 4)


def test_project_gradients_underscore_is_a_deprecated_alias():
    net = nn.Sequential(nn.Linear(4, 3, bias=False))
    gpm = GPM(threshold=0.9, exclude=()).update(net, torch.randn(20, 4))
    net(torch.randn(5, 4)).sum().backward()
    expected = net[0].weight.grad.clone()
    gpm.project_gradients(net)
    projected = net[0].weight.grad.clone()
    net[0].weight.grad = expected.clone()
    with pytest.warns(DeprecationWarning, match="project_gradients"):
        gpm.project_gradients_(net)
    assert torch.equal(net[0].weight.grad, projected)
