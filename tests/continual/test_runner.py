"""Runner: the accuracy matrix, GEM's ACC / BWT in closed form, forgetting, validation."""

import pytest
import torch
from torch import nn

from netprism.continual.recipe import stream_config
from netprism.continual.runner import ContinualMethod, acc_bwt, run_stream
from netprism.continual.streams import (
    permuted_stream,
    rotate_images,
    rotated_stream,
    split_stream,
)
from netprism.data import DatasetInfo, TensorDataset
from netprism.models import create_model


def _toy(n_tasks: int, shape: tuple[int, ...] = (2,), k: int = 2) -> list[TensorDataset]:
    info = DatasetInfo("toy", tuple("abcdefgh"[:k]), shape, "test")
    gen = torch.Generator().manual_seed(0)
    return [
        TensorDataset(torch.randn(12, *shape, generator=gen), torch.arange(12) % k, info)
        for _ in range(n_tasks)
    ]


class Recorder(ContinualMethod):
    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def before_task(self, model, task, data):
        self.calls.append(("before", task))

    def after_backward(self, model, task, batch):
        if not self.calls or self.calls[-1] != ("backward", task):
            self.calls.append(("backward", task))

    def after_task(self, model, task, data):
        self.calls.append(("after", task))


def test_acc_bwt_closed_form():
    R = torch.tensor([[0.9, 0.2, 0.1], [0.7, 0.8, 0.3], [0.5, 0.6, 0.95]], dtype=torch.float64)
    acc, bwt = acc_bwt(R)
    assert acc == pytest.approx((0.5 + 0.6 + 0.95) / 3)
    assert bwt == pytest.approx(((0.5 - 0.9) + (0.6 - 0.8)) / 2)
    with pytest.raises(ValueError, match="T >= 2"):
        acc_bwt(torch.ones(1, 1))


def test_shape_diagonal_and_hook_order():
    tasks = _toy(3)
    method = Recorder()
    res = run_stream(
        nn.Linear(2, 2),
        tasks,
        tasks,
        method,
        config=stream_config(epochs=1, batch_size=4, device="cpu"),
    )
    assert res.R.shape == (3, 3)
    assert ((res.R >= 0) & (res.R <= 1)).all()
    assert res.method == "recorder"
    expected = [(s, t) for t in range(3) for s in ("before", "backward", "after")]
    assert method.calls == expected
    d = res.to_dict()
    assert set(d) >= {"R", "acc", "bwt", "seconds", "method"}
    assert d["acc"] == pytest.approx(float(res.R[-1].mean()))


def test_finetune_forgets_on_permuted_digits():
    torch.manual_seed(0)
    train, test = permuted_stream("digits", 3, seed=0)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(64,))
    res = run_stream(
        model, train, test, config=stream_config(epochs=2, batch_size=16, lr=0.05, device="cpu")
    )
    assert res.R.diagonal().min() > 0.8  # each task is learned ...
    assert res.bwt < 0  # ... and partly forgotten
    assert res.seconds < 10


def test_multi_head_split_stream():
    train, test = split_stream("digits", 5)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(32,))
    res = run_stream(
        model, train, test, config=stream_config(epochs=1, batch_size=32, lr=0.1), heads="multi"
    )
    assert res.R.shape == (5, 5)
    assert res.R.diagonal().min() > 0.8  # 2-way tasks through their own logits


def test_rotation_and_streams():
    x = torch.rand(2, 1, 5, 5)
    assert torch.allclose(
        rotate_images(rotate_images(x, 90.0), -90.0)[..., 1:-1, 1:-1], x[..., 1:-1, 1:-1], atol=1e-5
    )
    train, test = rotated_stream("digits", 3, 180.0)
    assert torch.allclose(train[2].x, train[0].x.flip(-1).flip(-2), atol=1e-5)
    assert len(test) == 3 and test[0].input_shape == (1, 8, 8)
    with pytest.raises(ValueError, match="not applicable"):
        rotated_stream("mnist1d", 2, 90.0)
    ptrain, ptest = permuted_stream("digits", 2, seed=3)
    assert not torch.equal(ptrain[0].x, ptrain[1].x)
    for tasks in (ptrain, ptest):  # each task is a pixel permutation of the same images
        a, b = tasks[0].x.flatten(1).sort(1).values, tasks[1].x.flatten(1).sort(1).values
        assert torch.equal(a, b)
    assert abs(float(ptrain[0].x.mean())) < 1e-5  # globally standardized


def test_validation_errors():
    tasks = _toy(3)
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="at least 2 tasks"):
        run_stream(model, tasks[:1], tasks[:1])
    with pytest.raises(ValueError, match="same number of tasks"):
        run_stream(model, tasks, tasks[:2])
    odd = [tasks[0], _toy(1, shape=(3,))[0]]
    with pytest.raises(ValueError, match="input shape"):
        run_stream(model, odd, odd)
    with pytest.raises(ValueError, match="heads must be"):
        run_stream(model, tasks, tasks, heads="single")
    with pytest.raises(ValueError, match="global_y"):
        run_stream(model, tasks, tasks, heads="multi")
    mixed = [tasks[0], _toy(1, k=3)[0]]
    with pytest.raises(ValueError, match="same classes"):
        run_stream(model, mixed, mixed)
    train, test = split_stream("digits", 5)
    with pytest.raises(ValueError, match="outputs"):  # head too small for global classes
        run_stream(
            create_model("mlp", input_shape=(1, 8, 8), num_classes=2, hidden=(4,)),
            train,
            test,
            config=stream_config(epochs=1),
            heads="multi",
        )
