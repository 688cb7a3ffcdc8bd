"""Any torch Dataset, TensorDataset or (x, y) pair works where a netprism dataset does, with the
same results; metadata that cannot be inferred is asked for by name."""

import pytest
import torch
import torch.utils.data as tud
from torch import nn

from netprism.continual.recipe import stream_config
from netprism.continual.runner import run_stream
from netprism.continual.streams import permuted_stream, rotated_stream, split_stream
from netprism.core.seed import seed_everything
from netprism.data import (
    load_dataset,
    permuted_tasks,
    with_conflicting_duplicates,
    with_label_noise,
)
from netprism.data.base import TensorDataset, as_dataset, as_datasets
from netprism.models import create_model


class Items(tud.Dataset):
    """A plain map-style dataset of (x, y) items, y a Python int."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], int(self.y[i])


FORMS = {
    "netprism": lambda d: d,
    "torch_tensordataset": lambda d: tud.TensorDataset(d.x, d.y),
    "tuple": lambda d: (d.x, d.y),
    "numpy": lambda d: (d.x.numpy(), d.y.numpy()),
    "map_style": lambda d: Items(d.x, d.y),
    "dataloader": lambda d: tud.DataLoader(Items(d.x, d.y), batch_size=7, shuffle=True),
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def stream():
    return permuted_stream("digits", 2, seed=0)


def _mlp() -> nn.Module:
    seed_everything(0)
    return create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(16,))


@pytest.mark.parametrize("form", sorted(FORMS))
def test_as_dataset_infers_shape_and_classes(digits, form):
    ds = as_dataset(FORMS[form](digits))
    assert isinstance(ds, TensorDataset)
    assert (ds.input_shape, ds.num_classes) == ((1, 8, 8), 10)
    assert torch.equal(ds.x, digits.x) and torch.equal(ds.y, digits.y)
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64


@pytest.fixture(scope="module")
def reference(stream):
    train, test = stream
    model = _mlp()
    result = run_stream(model, train, test, config=stream_config(epochs=1, device="cpu"))
    return result.R, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("form", ["torch_tensordataset", "tuple", "numpy", "map_style"])
def test_run_stream_accepts_every_form_with_the_same_result(stream, reference, form):
    train, test = stream
    model = _mlp()
    to = FORMS[form]
    result = run_stream(
        model,
        [to(d) for d in train],
        [to(d) for d in test],
        config=stream_config(epochs=1, device="cpu"),
    )
    R, params = reference
    assert torch.equal(result.R, R)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
def test_with_label_noise_accepts_every_form_with_the_same_result(digits, form, kind):
    ref, ref_flipped = with_label_noise(digits, 0.2, kind=kind, seed=3)
    noisy, flipped = with_label_noise(FORMS[form](digits), 0.2, kind=kind, seed=3)
    assert torch.equal(noisy.y, ref.y) and torch.equal(flipped, ref_flipped)
    assert torch.equal(noisy.extras["clean_y"], digits.y) and noisy.num_classes == 10


def test_label_noise_on_few_classes_needs_the_true_class_count(digits):
    low = digits.subset((digits.y < 2).nonzero().squeeze(1))  # classes 0, 1 of 10
    pair = (low.x, low.y)
    inferred, flipped = with_label_noise(pair, 0.5, seed=0)
    assert inferred.num_classes == 2  # from the labels present: noise stays within {0, 1}
    assert set(inferred.y[flipped].tolist()) <= {0, 1}
    told, told_flipped = with_label_noise(pair, 0.5, seed=0, num_classes=10)
    ref, ref_flipped = with_label_noise(low, 0.5, seed=0)  # the netprism set knows K = 10
    assert told.num_classes == 10 and torch.equal(told.y, ref.y)
    assert torch.equal(told_flipped, ref_flipped)
    with pytest.raises(ValueError, match="at least 2 classes.*num_classes=K"):
        with_label_noise((low.x, torch.zeros_like(low.y)), 0.1)


@pytest.mark.parametrize("form", ["torch_tensordataset", "tuple", "numpy", "map_style"])
def test_stream_builders_accept_every_form(form):
    tr, te = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    to = FORMS[form]
    for build, args in ((permuted_stream, (2,)), (split_stream, (5,)), (rotated_stream, (2,))):
        ref = build((tr, te), *args, seed=1)
        got = build((to(tr), to(te)), *args, seed=1)
        for a, b in zip((*ref[0], *ref[1]), (*got[0], *got[1])):
            assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y), build.__name__
            assert a.num_classes == b.num_classes and a.input_shape == b.input_shape


def test_transforms_accept_pairs(digits):
    ref, ref_dup = with_conflicting_duplicates(digits, 5, seed=2)
    got, dup = with_conflicting_duplicates((digits.x, digits.y), 5, seed=2)
    assert torch.equal(got.y, ref.y) and torch.equal(dup, ref_dup)
    a, b = permuted_tasks(digits, 2, seed=1), permuted_tasks((digits.x, digits.y), 2, seed=1)
    assert all(torch.equal(p.x, q.x) for p, q in zip(a, b))


def test_one_class_count_across_a_stream_or_a_pair():
    x = torch.zeros(4, 3)
    first, second = as_datasets([(x, torch.tensor([0, 1, 1, 0])), (x, torch.tensor([0, 3, 2, 1]))])
    assert first.num_classes == second.num_classes == 4
    net = nn.Linear(3, 4)
    cfg = stream_config(epochs=1, device="cpu")
    tasks = [(x, torch.tensor([0, 1, 1, 0])), (x, torch.tensor([2, 3, 2, 3]))]
    assert run_stream(net, tasks, tasks, config=cfg).R.shape == (2, 2)  # shared 4-way head


def test_input_shape_and_num_classes_can_be_given():
    x, y = torch.randn(5, 64), torch.tensor([0, 1, 2, 1, 0])
    ds = as_dataset((x, y), input_shape=(1, 8, 8), num_classes=10, name="flat")
    assert (ds.input_shape, ds.num_classes, ds.name) == ((1, 8, 8), 10, "flat")
    assert torch.equal(ds.x.flatten(1), x)
    floats = as_dataset((x, y.float()), num_classes=3)
    assert floats.y.dtype == torch.int64 and torch.equal(floats.y, y)


@pytest.mark.parametrize(
    ("data", "kwargs", "error", "match"),
    [
        ((torch.zeros(3, 2), torch.tensor([0.0, 1.0, 1.0])), {}, ValueError,
         r"cannot infer num_classes .* float labels .*pass num_classes=K"),
        ((torch.zeros(3, 2), torch.tensor([0.5, 1.0, 1.0])), {"num_classes": 2}, ValueError,
         "whole class numbers"),
        ((torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), {}, ValueError,
         "is empty: no sample to infer input_shape and num_classes"),
        (tud.TensorDataset(torch.zeros(0, 2), torch.zeros(0)), {}, ValueError, "is empty"),
        ((torch.zeros(3, 2), torch.eye(3)), {}, ValueError, r"shape \(N,\).*one-hot"),
        ((torch.zeros(3, 2), torch.tensor([0, -1, 1])), {}, ValueError, r"must lie in \[0, "),
        ((torch.zeros(3, 2), torch.tensor([0, 4, 1])), {"num_classes": 3}, ValueError,
         r"must lie in \[0, 3\)"),
        ((torch.zeros(3, 2), torch.tensor([0, 1, 1])), {"input_shape": (3,)}, ValueError,
         r"input_shape=\(3,\) does not fit"),
        ("digits", {}, TypeError, "expected a netprism TensorDataset.*got str"),
        ([torch.zeros(3, 2), torch.zeros(3)], {}, TypeError, "got list"),
    ],
)  # fmt: skip
def test_clear_errors(data, kwargs, error, match):
    with pytest.raises(error, match=match):
        as_dataset(data, **kwargs)


def test_clear_errors_where_datasets_are_taken(digits):
    floats = (digits.x, digits.y.float())
    with pytest.raises(ValueError, match="pass num_classes=K"):
        with_label_noise(floats, 0.1)
    assert with_label_noise(floats, 0.1, num_classes=10)[0].num_classes == 10
    with pytest.raises(ValueError, match=r"as_datasets\(tasks, num_classes=K\)"):
        run_stream(nn.Linear(64, 10), [floats, floats], [floats, floats])
    with pytest.raises(TypeError, match=r"sequence of task datasets .*got TensorDataset"):
        run_stream(nn.Linear(64, 10), digits, digits)
    with pytest.raises(TypeError, match=r"\(train, test\) pair .*single set"):
        permuted_stream((digits.x, digits.y), 2)
    with pytest.raises(ValueError, match="contradicts dataset 'digits', which has 10 classes"):
        as_dataset(digits, num_classes=5)
    tr, te = permuted_stream((floats, floats), 2, num_classes=10)
    assert tr[0].num_classes == te[1].num_classes == 10
