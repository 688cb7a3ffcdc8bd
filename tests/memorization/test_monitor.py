"""MemorizationMonitor: a hand-written loop and fit give memorization_scores' numbers; scoring
leaves the model and the random streams alone; observe keys training losses by index."""

from __future__ import annotations

import dataclasses
import random
import socket
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, SubsetRandomSampler, TensorDataset

from netprism.core.seed import seed_everything
from netprism.memorization import (
    ALL_METHODS,
    EPOCH_METHODS,
    MemorizationMonitor,
    default_config,
    memorization_scores,
)
from netprism.models import create_model
from netprism.train import epoch_order, fit

N, EPOCHS, SEED = 96, 3, 0


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(N, 1, 8, 8, generator=gen)
    return x, torch.randint(0, 10, (N,), generator=gen)


def _factory(dropout: float = 0.0) -> nn.Module:
    return create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(32,), dropout=dropout)


def _config() -> object:
    return dataclasses.replace(default_config(EPOCHS, seed=SEED, device="cpu"), progress=False)


def _reference(dropout: float = 0.0) -> object:
    factory = lambda: _factory(dropout)  # noqa: E731
    return memorization_scores(factory, _data(), config=_config(), n_probes=2, every=2)


def test_plain_loop_equals_memorization_scores() -> None:
    """The loop a user writes (fit's recipe spelled out) gives the same per-sample scores."""
    x, y = _data()
    seed_everything(SEED)
    model = _factory()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    monitor = MemorizationMonitor((x, y), n_probes=2, every=2, seed=SEED)
    loss_sum = torch.zeros(N, dtype=torch.float64)
    for epoch in range(EPOCHS):
        model.train()
        for idx in epoch_order(N, SEED, epoch).split(64):
            logits = model(x[idx])
            losses = F.cross_entropy(logits, y[idx], reduction="none")
            opt.zero_grad(set_to_none=True)
            losses.mean().backward()
            opt.step()
            monitor.observe(idx, logits, y[idx])
            loss_sum[idx] += losses.detach().double()
        sched.step()
        metrics = monitor.epoch_end(model, epoch)
        assert ("curvature_mean" in metrics) == (epoch % 2 == 0)
    got, ref = monitor.scores(), _reference()
    assert got.names == [*EPOCH_METHODS, "csl", "train_loss"]
    for name in ALL_METHODS:  # csl: the monitor's float64 loss vs the engine's float32 one
        torch.testing.assert_close(got[name], ref[name], rtol=0, atol=1e-5, msg=name)
    for name in ("curvature", "loss"):
        torch.testing.assert_close(got.per_epoch[name], ref.per_epoch[name], rtol=0, atol=1e-6)
    torch.testing.assert_close(got["train_loss"], loss_sum / EPOCHS, rtol=0, atol=1e-6)
    torch.testing.assert_close(got["csl"], loss_sum, rtol=0, atol=1e-5)
    assert got.model is None and [m["epoch"] for m in got.history] == [0, 1, 2]


class _MonitorCallback:
    """What a framework adapter does: epoch_end at each epoch's end, observe per batch."""

    def __init__(self, monitor: MemorizationMonitor) -> None:
        self.monitor = monitor

    def on_batch_end(self, ctx: object, out: object) -> None:
        self.monitor.observe(out.index, out.logits, out.y)  # type: ignore[attr-defined]

    def on_epoch_end(self, ctx: object, metrics: dict) -> None:
        self.monitor.epoch_end(ctx.model, ctx.epoch)  # type: ignore[attr-defined]


def test_monitor_inside_fit_is_bit_identical_even_with_dropout() -> None:
    # Dropout draws from torch's RNG: equality also shows scoring leaves the stream alone.
    seed_everything(SEED)
    model = _factory(dropout=0.2)
    monitor = MemorizationMonitor(_data(), n_probes=2, every=2, seed=SEED)
    fit(model, _data(), _config(), callbacks=[_MonitorCallback(monitor)])
    got, ref = monitor.scores(), _reference(dropout=0.2)
    for name in EPOCH_METHODS:
        assert torch.equal(got[name], ref[name]), name
    torch.testing.assert_close(got["csl"], ref["csl"], rtol=0, atol=1e-5)
    assert bool(torch.isfinite(got["train_loss"]).all())


class _Indexed(Dataset):
    """A map-style dataset (so scoring goes through a DataLoader, which draws a seed)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def _snapshot(model: nn.Module) -> dict[str, object]:
    return {
        "modes": [m.training for m in model.modules()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state()[1].copy(),  # noqa: NPY002
        "python": random.getstate(),
    }


@pytest.mark.parametrize("train_mode", [True, False])
def test_epoch_end_leaves_mode_batchnorm_grads_and_rng_unchanged(train_mode: bool) -> None:
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3))
    model.append(nn.Linear(16, 3))
    F.cross_entropy(model(x), y).backward()  # grads and BatchNorm statistics exist
    model.train(train_mode)
    model[1].train()  # a mixed-mode model keeps its mix
    monitor = MemorizationMonitor(_Indexed(x, y), n_probes=2, batch_size=16)
    before = _snapshot(model)
    monitor.epoch_end(model)
    after = _snapshot(model)
    assert after["modes"] == before["modes"]
    for k, v in before["state"].items():  # running_mean/var and num_batches_tracked too
        assert torch.equal(after["state"][k], v), k
    assert all(torch.equal(a, b) for a, b in zip(after["grads"], before["grads"]))
    assert torch.equal(after["torch"], before["torch"])
    assert np.array_equal(after["numpy"], before["numpy"])
    assert after["python"] == before["python"]


def test_shuffled_loader_observe_lands_at_each_samples_index() -> None:
    """Planted truth: each sample's logits encode its index, so its loss is known by index."""
    n, k = 50, 4
    y = torch.arange(n) % k
    logit_of_label = torch.linspace(-2.0, 3.0, n)  # sample i's own loss is known from i
    data = TensorDataset(torch.arange(n), y)
    sampler = SubsetRandomSampler(range(40))  # shuffled; samples 40..49 are never drawn
    loader = DataLoader(data, batch_size=8, sampler=sampler)
    monitor = MemorizationMonitor((torch.randn(n, 3), y), methods=("loss",))
    drawn = torch.zeros(n, dtype=torch.bool)
    for _ in range(2):
        for idx, yb in loader:
            logits = torch.zeros(len(idx), k)
            logits[torch.arange(len(idx)), yb] = logit_of_label[idx]
            monitor.observe(idx, logits, yb)
            drawn[idx] = True
        monitor.epoch_end(nn.Linear(3, k))
    expected = F.cross_entropy(
        F.one_hot(y, k).double() * logit_of_label.double().unsqueeze(1), y, reduction="none"
    )
    got = monitor.scores()["train_loss"]
    assert int(drawn.sum()) == 40 and bool(got[~drawn].isnan().all())  # never drawn: NaN
    torch.testing.assert_close(got[drawn], expected[drawn], rtol=0, atol=1e-12)


def test_no_train_loss_without_observe_and_default_epochs_count_calls() -> None:
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    monitor = MemorizationMonitor((x, y), methods=("curvature",), every=2, n_probes=1)
    for _ in range(3):
        monitor.epoch_end(nn.Linear(3, 2))
    s = monitor.scores()
    assert s.names == ["curvature"]
    assert [m["epoch"] for m in s.history] == [0, 1, 2]
    assert monitor.tracker is not None and monitor.tracker.epochs_scored_ == 2  # epochs 0, 2


def test_state_dict_resumes_the_averages() -> None:
    x, y = torch.randn(30, 3), torch.randint(0, 2, (30,))
    models = [nn.Linear(3, 2) for _ in range(3)]
    full = MemorizationMonitor((x, y), n_probes=2)
    part = MemorizationMonitor((x, y), n_probes=2)
    for epoch, model in enumerate(models):
        full.observe(torch.arange(30), model(x), y)
        full.epoch_end(model, epoch)
        if epoch < 2:
            part.observe(torch.arange(30), model(x), y)
            part.epoch_end(model, epoch)
    resumed = MemorizationMonitor((x, y), n_probes=2)
    resumed.load_state_dict(part.state_dict())
    resumed.observe(torch.arange(30), models[2](x), y)
    resumed.epoch_end(models[2], 2)
    a, b = full.scores(), resumed.scores()
    assert a.names == b.names
    for name in a.names:
        assert torch.equal(a[name], b[name]), name


def test_scores_before_any_epoch_raises_a_clear_error() -> None:
    monitor = MemorizationMonitor((torch.randn(8, 3), torch.randint(0, 2, (8,))))
    with pytest.raises(RuntimeError, match="epoch_end"):
        monitor.scores()


@pytest.mark.parametrize("methods", [(), ("curvature", "nope"), ("train_loss",)])
def test_bad_methods_are_refused(methods: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="methods must be a non-empty subset"):
        MemorizationMonitor((torch.randn(8, 3), torch.randint(0, 2, (8,))), methods=methods)


def test_bad_observations_are_refused() -> None:
    monitor = MemorizationMonitor((torch.randn(8, 3), torch.randint(0, 2, (8,))))
    with pytest.raises(ValueError, match=r"outside \[0, 8\)"):
        monitor.observe(torch.tensor([3, 8]), torch.randn(2, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="logits"):
        monitor.observe(torch.tensor([3, 4]), torch.randn(3, 2), torch.tensor([0, 1]))


# --- two gloo ranks: each scores its shard, scores() is the single-process result --------

WORLD = 2


def _ddp_scenario(monitor: MemorizationMonitor, rank: int, world: int) -> dict:
    x, y = _data()
    seed_everything(SEED)
    models = [_factory() for _ in range(2)]
    for epoch, model in enumerate(models):
        idx = torch.arange(N)[rank::world]  # each rank trains on its own samples
        monitor.observe(idx, model(x[idx]), y[idx])
        monitor.epoch_end(model, epoch)
    return dict(monitor.scores().scores)


def _ddp_worker(rank: int, world: int, port: int, work_dir: str) -> None:
    torch_dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
        timeout=timedelta(seconds=60),
    )  # fmt: skip
    try:
        monitor = MemorizationMonitor(_data(), n_probes=2, batch_size=16)
        torch.save(_ddp_scenario(monitor, rank, world), Path(work_dir) / f"rank{rank}.pt")
    finally:
        torch_dist.destroy_process_group()


def test_two_ranks_gather_the_single_process_scores(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    ctx = mp.start_processes(
        _ddp_worker, args=(WORLD, port, str(tmp_path)), nprocs=WORLD, join=False,
        start_method="spawn",
    )  # fmt: skip
    start = time.monotonic()
    while not ctx.join(timeout=5):
        if time.monotonic() - start > 120.0:
            for p in ctx.processes:
                p.kill()
            pytest.fail("distributed workers did not finish within 120 s")
    single = _ddp_scenario(MemorizationMonitor(_data(), n_probes=2, batch_size=16), 0, 1)
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert sorted(got) == sorted(single)
        for name, value in single.items():
            torch.testing.assert_close(got[name], value, rtol=0, atol=1e-6, msg=name)
