"""The runner trains through the engine (netprism.train.fit): same steps as a plain SGD loop,
hooks through callbacks, per-task heads, shuffling and RNG as before, nothing distributed."""

import torch
import torch.nn.functional as F
from torch import nn

from netprism.continual import runner
from netprism.continual.baselines import AGEM, EWC, joint_loss, joint_training
from netprism.continual.recipe import stream_config, task_config
from netprism.continual.runner import (
    ContinualMethod,
    MethodCallback,
    run_stream,
    task_accuracy,
    task_head,
    train_task,
)
from netprism.continual.space import SPACE
from netprism.continual.streams import permuted_stream, split_stream
from netprism.core.seed import seed_everything
from netprism.models import create_model
from netprism.train import Batch, TrainConfig, fit


def _mlp(classes: int = 10, seed: int = 0) -> nn.Module:
    seed_everything(seed)
    return create_model("mlp", input_shape=(1, 8, 8), num_classes=classes, hidden=(16,))


def _plain_loop(model, data, task, method, class_ids, config, epochs, phase=0):
    """The runner's loop before the engine rebase, kept as the reference."""
    opt = torch.optim.SGD(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + task + 7_919 * phase)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=gen)
        for start in range(0, len(data), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, yb = data.x[idx], data.y[idx]
            opt.zero_grad(set_to_none=True)
            logits = model(xb) if class_ids is None else model(xb)[:, class_ids]
            loss = F.cross_entropy(logits, yb)
            extra = method.penalty(model)
            if extra is not None:
                loss = loss + extra
            loss.backward()
            method.after_backward(model, task, (xb, yb))
            opt.step()


def _config(batch_size: int = 10) -> TrainConfig:
    return TrainConfig(
        epochs=2, batch_size=batch_size, lr=0.05, momentum=0.0, weight_decay=0.0,
        scheduler="none", seed=3, device="cpu", progress=False,
    )  # fmt: skip


def test_train_task_is_bit_identical_to_the_plain_loop():
    train, _ = permuted_stream("digits", 2, seed=0)
    for method_factory in (
        lambda: EWC(lam=30.0, fisher_samples=20),
        lambda: AGEM(memory_per_task=30, ref_batch_size=16),
    ):
        models, methods = [_mlp(), _mlp()], [method_factory(), method_factory()]
        for model, method in zip(models, methods):
            method.after_task(model, 0, train[0])  # a memory / Fisher: penalty and projection act
        _plain_loop(models[0], train[1], 1, methods[0], None, _config(), epochs=2, phase=1)
        seed_everything(0)
        train_task(models[1], train[1], 1, methods[1], None, config=_config(), phase=1)
        for a, b in zip(models[0].parameters(), models[1].parameters()):
            assert torch.equal(a, b), type(methods[0]).__name__


def test_multi_head_task_is_bit_identical_to_the_plain_loop():
    train, _ = split_stream("digits", 5)
    ids = runner.task_class_ids(train[2])
    a, b = _mlp(), _mlp()
    _plain_loop(a, train[2], 2, ContinualMethod(), ids, _config(16), epochs=2)
    out = train_task(b, train[2], 2, ContinualMethod(), ids, config=_config(16))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert len(out.history) == 2 and out.final["accuracy"] > 0.5  # through the task's head


def test_every_task_phase_is_one_engine_fit(monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return fit(*args, **kwargs)

    monkeypatch.setattr(runner, "fit", spy)
    train, test = split_stream("digits", 5)
    space = SPACE(var_kept=0.9, head="head", samples=50, retrain_epochs=1)
    run_stream(
        _mlp(),
        train[:2],
        test[:2],
        space,
        config=stream_config(epochs=1, batch_size=64),
        heads="multi",
    )
    assert len(calls) == 4  # 2 tasks x (train, retrain)
    for kw in calls:
        assert kw["reseed"] is False and kw["distributed"] is False
        assert isinstance(kw["callbacks"][0], MethodCallback) and callable(kw["order"])
        assert kw["output_fn"](torch.zeros(3, 10)).shape == (3, 2)  # the task's 2 logits
    assert [kw["callbacks"][0].task for kw in calls] == [0, 0, 1, 1]


def test_task_config_honours_the_recipe_quietly_and_without_checkpoints(tmp_path):
    base = TrainConfig(scheduler="cosine", checkpoint_dir=str(tmp_path), resume=True)
    cfg = task_config(base, epochs=3, device="cpu")
    assert (cfg.scheduler, cfg.progress, cfg.checkpoint_dir, cfg.resume) == (
        "cosine",
        False,
        None,
        False,
    )
    assert (cfg.momentum, cfg.weight_decay) == (base.momentum, base.weight_decay)
    assert (cfg.epochs, cfg.device, cfg.lr) == (3, "cpu", base.lr)


def test_the_global_rng_is_not_reseeded_inside_a_task():
    train, _ = permuted_stream("digits", 2, seed=0)
    model = _mlp()
    seed_everything(5)
    train_task(model, train[0], 0, ContinualMethod(), None, config=_config(64))
    after = torch.rand(3)
    seed_everything(5)
    assert torch.equal(after, torch.rand(3))  # fit consumed nothing, reseeded nothing


def test_agem_reference_gradient_runs_inside_the_engine_step():
    seen = []

    class Checked(AGEM):
        def after_backward(self, model, task, batch):
            super().after_backward(model, task, batch)
            if getattr(self, "memory_", None):
                params = [p for p in model.parameters() if p.requires_grad]
                ref = torch.autograd.grad(self.reference_loss(model), params)
                dot = sum(float((p.grad * r).sum()) for p, r in zip(params, ref))
                seen.append(dot)

    train, test = permuted_stream("digits", 2, seed=0)
    run_stream(
        _mlp(),
        train,
        test,
        Checked(memory_per_task=40, ref_batch_size=40),
        config=stream_config(epochs=1),
    )
    assert seen  # the hook ran with a memory on task 1, inside fit's step


def test_method_callback_passes_the_batch_and_task():
    got = []

    class Record(ContinualMethod):
        def penalty(self, model):
            return 0.0 * next(model.parameters()).sum()

        def after_backward(self, model, task, batch):
            got.append((task, batch[0].shape, batch[1].shape))

    x, y = torch.randn(6, 4), torch.arange(6) % 2
    cfg = TrainConfig(epochs=1, batch_size=4, device="cpu", progress=False)
    fit(nn.Linear(4, 2), (x, y), cfg, callbacks=[MethodCallback(Record(), task=7)])
    assert got == [(7, (4, 4), (4,)), (7, (2, 4), (2,))]


def test_task_head_checks_width_and_follows_the_device():
    head = task_head(torch.tensor([3, 1]))
    assert head(torch.arange(8.0).view(2, 4)).tolist() == [[3.0, 1.0], [7.0, 5.0]]
    assert task_head(None)((torch.ones(2, 3), "aux")).shape == (2, 3)
    try:
        task_head(torch.tensor([5]))(torch.zeros(1, 4))
    except ValueError as err:
        assert "outputs" in str(err)
    else:
        raise AssertionError("a too-narrow head must be refused")


def test_task_accuracy_defaults_to_the_models_device():
    train, _ = permuted_stream("digits", 2, seed=0)
    model = _mlp()
    assert task_accuracy(model, train[0], None) == task_accuracy(
        model, train[0], None, torch.device("cpu")
    )


def test_joint_loss_is_each_samples_own_head():
    ids = [torch.tensor([0, 1]), torch.tensor([2, 3])]
    task_of = torch.tensor([0, 0, 1, 1, 1])
    logits = torch.randn(3, 4, requires_grad=True)
    batch = Batch(None, torch.tensor([1, 0, 1]), torch.tensor([4, 0, 2]))  # tasks 1, 0, 1
    losses = joint_loss(task_of, ids)(logits, batch)
    expected = torch.stack(
        [
            F.cross_entropy(logits[0:1, ids[1]], batch.y[0:1]),
            F.cross_entropy(logits[1:2, ids[0]], batch.y[1:2]),
            F.cross_entropy(logits[2:3, ids[1]], batch.y[2:3]),
        ]
    )
    assert torch.allclose(losses, expected)
    losses.sum().backward()  # gradients flow through the scattered losses
    assert logits.grad is not None and float(logits.grad[:, :2][[0, 2]].abs().sum()) == 0.0
    shared = joint_loss(task_of, [None, None])(logits, batch)
    assert torch.allclose(shared, F.cross_entropy(logits, batch.y, reduction="none"))


def test_joint_training_multi_head_learns_through_fit():
    train, test = split_stream("digits", 5)
    acc = joint_training(
        _mlp(), train, test, config=stream_config(epochs=2, batch_size=32, lr=0.1), heads="multi"
    )
    assert acc.shape == (5,) and float(acc.min()) > 0.8


def test_space_reinit_leaves_the_global_rng_alone():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    space = SPACE(var_kept=0.9, head="2")
    layers = space.unit_layers(net)
    state = torch.random.get_rng_state()
    space._reinit_tail(layers, {"0": 3}, task=0)
    assert torch.equal(state, torch.random.get_rng_state())
