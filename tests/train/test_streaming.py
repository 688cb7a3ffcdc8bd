"""The engine streams the user's data: per-sample identity, item and output forms, refusals."""

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from netprism.core.curvature import CurvatureTracker
from netprism.data import load_dataset
from netprism.memorization import TrainingDynamics
from netprism.train import (
    BatchKeys,
    Callback,
    TrainConfig,
    epoch_order,
    evaluate,
    fit,
    make_source,
)


def _cfg(**kw):
    base = dict(epochs=2, batch_size=16, lr=0.05, seed=0, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def _data(n=48, d=6, k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen), torch.randint(0, k, (n,), generator=gen)


class _Frozen(nn.Module):
    """A fixed function of its input with one trainable parameter that gets zero gradient:
    training cannot change what it computes, so records depend only on the sample."""

    def __init__(self, d=6, k=3):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(d, k).requires_grad_(False)
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.body(x) + 0.0 * self.unused


class _IndexLosses(Callback):
    def __init__(self, n):
        self.loss = torch.full((n,), float("nan"))

    def on_batch_end(self, ctx, batch):
        self.loss[batch.index] = batch.loss.float()


@pytest.mark.parametrize("workers", [0, 2])
def test_shuffled_and_ordered_loaders_give_the_same_records_at_each_index(workers):
    x, y = _data()
    runs = []
    for shuffle in (False, True):
        loader = DataLoader(
            torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=shuffle,
            num_workers=workers,
        )  # fmt: skip
        dyn, rec = TrainingDynamics(), _IndexLosses(len(y))
        fit(_Frozen(), loader, _cfg(), callbacks=[dyn, rec])
        runs.append((dyn.scores_, rec.loss))
    (ordered, loss_a), (shuffled, loss_b) = runs
    for name in ordered:  # scoring passes see identical batches: bit-identical records
        assert torch.equal(ordered[name], shuffled[name]), name
    # training-step losses are keyed by index too (batch composition differs: allclose)
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    assert not loss_a.isnan().any()


def test_a_loader_following_the_engine_order_equals_the_in_memory_run():
    x, y = _data(n=40)

    class EpochOrder:  # the engine's own order, as a user batch sampler
        def __init__(self):
            self.epoch = 0

        def __iter__(self):
            order = epoch_order(len(y), 0, self.epoch)
            self.epoch += 1
            return iter(order.split(16))

        def __len__(self):
            return 3

    def run(data):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
        tracker, dyn = CurvatureTracker(n_probes=2, keep_history=True), TrainingDynamics()
        out = fit(model, data, _cfg(epochs=3), callbacks=[tracker, dyn])
        return out.history, tracker.history_, dyn.loss_history_

    memory = run((x, y))
    loader = DataLoader(torch.utils.data.TensorDataset(x, y), batch_sampler=EpochOrder())
    streamed = run(loader)
    assert memory[0] == streamed[0]
    assert torch.equal(memory[1], streamed[1]) and torch.equal(memory[2], streamed[2])


class _NoisyView(Dataset):
    """Adds fresh noise on every read: a random augmentation."""

    def __init__(self, x, y):
        self.x, self.y, self.reads = x, y, {}

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        view = self.x[i] + torch.randn(self.x.shape[1])
        self.reads.setdefault(i, []).append(view)
        return view, self.y[i]


def test_random_augmentation_is_drawn_afresh_every_epoch():
    x, y = _data(n=20)
    ds = _NoisyView(x, y)
    fit(nn.Linear(6, 3), DataLoader(ds, batch_size=8, shuffle=True), _cfg(epochs=3))
    assert all(len(v) == 3 for v in ds.reads.values()) and len(ds.reads) == 20
    assert not torch.equal(ds.reads[0][0], ds.reads[0][1])


def test_plain_dataset_is_streamed_in_the_engine_order_like_tensors():
    x, y = _data(n=30)
    torch.manual_seed(0)
    a = fit(nn.Linear(6, 3), (x, y), _cfg())
    torch.manual_seed(0)
    b = fit(nn.Linear(6, 3), _ListDataset(x, y), _cfg())
    assert a.history == b.history


class _ListDataset(Dataset):
    def __init__(self, x, y, form="tuple"):
        self.x, self.y, self.form = x, y, form

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if self.form == "dict":
            return {"image": self.x[i], "label": self.y[i], "meta": "ignored"}
        if self.form == "custom":
            return {"img": self.x[i], "target": self.y[i]}
        if self.form == "indexed":
            return self.x[i], self.y[i], i
        return self.x[i], self.y[i]


def test_drop_last_marks_unseen_samples_and_warns():
    x, y = _data(n=40)
    loader = DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, drop_last=True)
    with pytest.warns(RuntimeWarning, match="8 of 40 samples were never drawn"):
        out = fit(nn.Linear(6, 3), loader, _cfg())
    assert out.seen.sum() == 32 and not out.seen[32:].any()


def test_dict_items_default_and_custom_keys():
    x, y = _data(n=24)
    out = fit(nn.Linear(6, 3), _ListDataset(x, y, "dict"), _cfg(epochs=1))
    assert out.seen.all()
    custom = _ListDataset(x, y, "custom")
    out = fit(nn.Linear(6, 3), custom, _cfg(epochs=1), batch_keys=BatchKeys(input="img"))
    assert out.seen.all()
    with pytest.raises(KeyError, match=r"input keys .*'img', 'target'.*BatchKeys"):
        fit(nn.Linear(6, 3), custom, _cfg(epochs=1))


def test_items_carrying_their_index_are_recognised_and_checked():
    x, y = _data(n=24)
    rec = _IndexLosses(24)
    loader = DataLoader(_ListDataset(x, y, "indexed"), batch_size=5, shuffle=True)
    fit(nn.Linear(6, 3), loader, _cfg(epochs=1), callbacks=[rec])
    assert not rec.loss.isnan().any()

    class Shifted(_ListDataset):
        def __getitem__(self, i):
            return self.x[i], self.y[i], i + 100

    with pytest.raises(ValueError, match=r"index 1\d\d, but the dataset has 24 samples"):
        fit(nn.Linear(6, 3), Shifted(x, y), _cfg(epochs=1))


class _Stream(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x, self.y))


def test_iterable_dataset_trains_but_refuses_per_sample_methods():
    x, y = _data(n=24)
    out = fit(nn.Linear(6, 3), _Stream(x, y), _cfg(epochs=2))
    assert len(out.history) == 2 and out.seen is None
    with pytest.raises(ValueError, match="CurvatureTracker.*IterableDataset has no stable index"):
        fit(nn.Linear(6, 3), _Stream(x, y), _cfg(), callbacks=[CurvatureTracker(n_probes=1)])


class _Wrapped(nn.Module):
    def __init__(self, form):
        super().__init__()
        torch.manual_seed(0)
        self.lin, self.form = nn.Linear(6, 3), form

    def forward(self, x):
        z = self.lin(x)
        if self.form == "tuple":
            return z, z.sum()
        if self.form == "dict":
            return {"logits": z, "aux": z.mean()}
        if self.form == "object":
            return type("Out", (), {"logits": z})()
        if self.form == "custom":
            return {"scores": z}
        return z


@pytest.mark.parametrize("form", ["tensor", "tuple", "dict", "object"])
def test_model_output_forms_give_the_same_training(form):
    x, y = _data()
    ref = fit(_Wrapped("tensor"), (x, y), _cfg())
    tracker = CurvatureTracker(n_probes=1)
    out = fit(_Wrapped(form), (x, y), _cfg(), callbacks=[tracker])
    assert [h["loss"] for h in out.history] == [h["loss"] for h in ref.history]
    assert tracker.scores_.norm.shape == (48,)


def test_output_fn_overrides_and_missing_logits_are_explained():
    x, y = _data()
    with pytest.raises(TypeError, match=r"keys \['scores'\].*output_fn"):
        fit(_Wrapped("custom"), (x, y), _cfg())
    model = _Wrapped("custom")
    out = fit(model, (x, y), _cfg(), output_fn=lambda o: o["scores"])
    ev = evaluate(model, (x, y), device="cpu", output_fn=lambda o: o["scores"])
    assert out.final["accuracy"] > 0 and ev["n"] == 48


def test_labels_out_of_range_name_the_sample():
    x, y = _data(n=20)
    y[7] = 5
    with pytest.raises(ValueError, match=r"\[0, 3\).*samples \[7\] have labels \[5\]"):
        fit(nn.Linear(6, 3), _ListDataset(x, y), _cfg(batch_size=32))


def test_wrong_input_shape_names_the_expected_shape():
    x, y = _data(n=20)
    with pytest.raises(RuntimeError, match=r"shape \(16, 6\).*expects 5 features"):
        fit(nn.Linear(5, 3), (x, y), _cfg())

    class Ragged(_ListDataset):
        def __getitem__(self, i):
            return (self.x[i] if i < 10 else torch.zeros(7)), self.y[i]

    loader = DataLoader(Ragged(x, y), batch_size=10)
    with pytest.raises(ValueError, match=r"shape \(7,\), expected \(6,\)"):
        fit(nn.Linear(6, 3), loader, _cfg())


def test_non_finite_loss_names_the_samples_and_keeps_the_weights():
    x, y = _data(n=20)

    class Blows(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 3)

        def forward(self, x):
            z = self.lin(x)
            return torch.where(x[:, :1] > 100, z * float("inf"), z)

    x[13, 0] = 1000.0
    model = Blows()
    before = model.lin.weight.detach().clone()
    loader = DataLoader(_ListDataset(x, y), batch_size=20)
    with pytest.raises(FloatingPointError, match=r"samples \[13\].*intact"):
        fit(model, loader, _cfg(lr=0.1))
    assert torch.equal(model.lin.weight, before)


def test_hooks_run_in_order_and_custom_loss_is_checked():
    x, y = _data(n=16)
    calls = []

    class Spy(Callback):
        def on_batch_start(self, ctx, batch):
            calls.append("start")

        def penalty(self, ctx, batch):
            calls.append("penalty")
            return ctx.model.weight.pow(2).sum()

        def on_after_backward(self, ctx, batch):
            calls.append("backward")
            assert ctx.model.weight.grad is not None

        def on_after_step(self, ctx, batch):
            calls.append("step")

        def on_batch_end(self, ctx, out):
            calls.append("end")

    fit(nn.Linear(6, 3), (x, y), _cfg(epochs=1, batch_size=16), callbacks=[Spy()])
    assert calls == ["start", "penalty", "backward", "step", "end"]
    with pytest.raises(ValueError, match=r"one loss per sample, shape \(16,\)"):
        fit(nn.Linear(6, 3), (x, y), _cfg(epochs=1), loss_fn=lambda out, b: out.sum())


def test_penalty_changes_training_like_weight_decay():
    x, y = _data()

    class L2(Callback):
        def penalty(self, ctx, batch):
            return 0.5 * 0.01 * ctx.model.weight.pow(2).sum()

    torch.manual_seed(0)
    a = nn.Linear(6, 3)
    b = nn.Linear(6, 3)
    b.load_state_dict(a.state_dict())
    a.bias.requires_grad_(False), b.bias.requires_grad_(False)
    fit(a, (x, y), _cfg(momentum=0.0, weight_decay=0.01, scheduler="none"))
    fit(b, (x, y), _cfg(momentum=0.0, weight_decay=0.0, scheduler="none"), callbacks=[L2()])
    assert torch.allclose(a.weight, b.weight, atol=1e-6)


def test_score_data_must_match_train_sample_for_sample():
    x, y = _data(n=20)
    with pytest.raises(ValueError, match="score_data .* 10 samples, train has 20"):
        fit(nn.Linear(6, 3), (x, y), _cfg(), score_data=(x[:10], y[:10]))


def test_netprism_datasets_keep_training_exactly_as_before():
    # the in-memory path is the engine order over tensors: TensorDataset == (x, y)
    ds = load_dataset("synthetic", n=64, num_classes=3, dim=6, seed=0)
    torch.manual_seed(0)
    a = fit(nn.Linear(6, 3), ds, _cfg())
    torch.manual_seed(0)
    b = fit(nn.Linear(6, 3), (ds.x, ds.y), _cfg())
    torch.manual_seed(0)
    c = fit(nn.Linear(6, 3), torch.utils.data.TensorDataset(ds.x, ds.y), _cfg())
    assert a.history == b.history == c.history
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every sample seen: no warning
        fit(nn.Linear(6, 3), ds, _cfg(epochs=1))


def test_materializing_a_shuffled_loader_keeps_dataset_order():
    from netprism.data.base import as_tensors

    x, y = _data(n=30)
    loader = DataLoader(_ListDataset(x, y, "indexed"), batch_size=7, shuffle=True)
    got_x, got_y = as_tensors(loader)
    assert torch.equal(got_x, x) and torch.equal(got_y, y)


def test_a_replaced_batch_must_index_each_sample():
    from netprism.train import Batch

    class Doubles(Callback):
        def on_batch_start(self, ctx, batch):
            return Batch(torch.cat([batch.x, batch.x]), torch.cat([batch.y, batch.y]), batch.index)

    x, y = _data(n=16)
    with pytest.raises(ValueError, match="Doubles.on_batch_start returned a batch of 32 samples"):
        fit(nn.Linear(6, 3), (x, y), _cfg(), callbacks=[Doubles()])


def test_scoring_a_dataset_leaves_the_global_random_stream_alone():
    x, y = _data(n=20)
    state = torch.get_rng_state()
    list(make_source(_ListDataset(x, y)).ordered(8))
    assert torch.equal(torch.get_rng_state(), state)


def test_eval_mode_restores_each_submodule():
    from netprism.core.per_sample import eval_mode

    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    net[1].eval()  # a frozen BatchNorm inside a training model
    with eval_mode(net):
        assert not net.training
    assert net.training and not net[1].training


def test_integer_token_inputs_keep_their_dtype():
    tokens = torch.randint(0, 20, (24, 5))
    y = torch.randint(0, 3, (24,))
    model = nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(20, 3))
    out = fit(model, (tokens, y), _cfg(epochs=1))
    assert out.seen.all()


def test_order_may_return_the_whole_plan():
    x, y = _data(n=10)
    plan = [torch.tensor([3, 1]), torch.tensor([3, 1]), torch.tensor([0, 2, 4, 5, 6, 7, 8, 9])]
    rec = []

    class Seen(Callback):
        def on_batch_end(self, ctx, out):
            rec.append(out.index.tolist())

    out = fit(nn.Linear(6, 3), (x, y), _cfg(epochs=1), order=lambda e: plan, callbacks=[Seen()])
    assert rec == [b.tolist() for b in plan] and out.seen.all()
