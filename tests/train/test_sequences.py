"""The engine on sequence models and with a caller's optimizer: logits (B, T, K) against
labels (B, T) train on the mean per-position cross-entropy exactly as a hand-written loop,
metrics count positions, errors name samples, and a plan that samples windows raises no
"never drawn" warning."""

import functools
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprism.train import TrainConfig, evaluate, fit

V, T = 11, 6  # vocabulary, sequence length


class TinySeqModel(nn.Module):
    """(B, T) token ids -> (B, T, V) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, 8)
        self.mix = nn.Linear(8, 8)
        self.head = nn.Linear(8, V)

    def forward(self, x):
        return self.head(torch.tanh(self.mix(self.embed(x))))


def _data(n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (n, T), generator=g)
    return x, (x + 1) % V  # the next token is the id + 1


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _model(seed=0):
    torch.manual_seed(seed)
    return TinySeqModel()


def _cfg(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 4, "lr": 0.05, "scheduler": "none",
                          "progress": False, "device": "cpu", **kw})  # fmt: skip


def test_sequence_training_equals_a_hand_written_next_token_loop():
    x, y = _data()
    plan = [torch.tensor(b) for b in ([0, 3, 5, 7], [1, 1, 9, 2], [19, 4, 6, 8])]
    model = _model()
    adamw = functools.partial(torch.optim.AdamW, lr=0.01, betas=(0.9, 0.95), weight_decay=0.1)
    out = fit(model, _Pairs(x, y), _cfg(max_grad_norm=0.5), order=lambda e: plan, optimizer=adamw)

    ref = _model()
    opt = torch.optim.AdamW(ref.parameters(), lr=0.01, betas=(0.9, 0.95), weight_decay=0.1)
    losses = []
    for index in plan:
        logits = ref(x[index])  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, V), y[index].reshape(-1))  # fused mean
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        opt.step()
        losses.append(float(loss.detach()))
    for (name, a), b in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # the same gradients, bit for bit
    # the epoch loss is the mean over every position of every batch
    assert out.final["loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-6)


def test_metrics_and_evaluate_count_positions():
    x, y = _data(n=8)
    model = _model()
    with torch.no_grad():
        logits = model(x)
        want_loss = float(F.cross_entropy(logits.reshape(-1, V), y.reshape(-1)))
        want_acc = float((logits.argmax(-1) == y).float().mean())
    got = evaluate(model, _Pairs(x, y), batch_size=3, device="cpu")
    assert got["n"] == 8 * T
    assert got["loss"] == pytest.approx(want_loss, rel=1e-6)
    assert got["accuracy"] == pytest.approx(want_acc)
    # one epoch at a tiny lr: the history's accuracy is a per-position fraction
    out = fit(model, _Pairs(x, y), _cfg(lr=1e-9, batch_size=8), order=lambda e: [torch.arange(8)])
    assert out.final["accuracy"] == pytest.approx(want_acc)
    assert out.final["loss"] == pytest.approx(want_loss, rel=1e-5)


def test_bad_sequence_labels_name_the_sample():
    x, y = _data(n=8)
    y = y.clone()
    y[5, 2] = V  # one position out of range
    with pytest.raises(ValueError, match=r"samples \[5\] have labels \[11\]"):
        fit(_model(), _Pairs(x, y), _cfg(), order=lambda e: [torch.arange(8)])


def test_logits_that_do_not_match_the_labels_are_refused():
    x, y = _data(n=8)
    with pytest.raises(ValueError, match=r"logits of shape \(B, T, K\).*got \(8, 6, 11\)"):
        fit(_model(), _Pairs(x, y[:, :5]), _cfg(), order=lambda e: [torch.arange(8)])


def test_loss_fn_may_return_per_position_losses_but_not_other_shapes():
    x, y = _data(n=8)

    def per_position(output, batch):
        return F.cross_entropy(output.transpose(1, 2), batch.y, reduction="none")  # (B, T)

    out = fit(_model(), _Pairs(x, y), _cfg(), loss_fn=per_position)
    assert out.final["loss"] > 0
    with pytest.raises(ValueError, match=r"one per position, shape \(4, T\), got \(4, 6, 1\)"):
        fit(_model(), _Pairs(x, y), _cfg(), loss_fn=lambda o, b: per_position(o, b)[..., None])


def test_optimizer_factory_is_used_and_checked():
    x, y = _data(n=8)
    seen = {}

    class Spy:
        def on_fit_start(self, ctx):
            seen["opt"] = ctx.optimizer

    factory = functools.partial(torch.optim.AdamW, lr=0.003, betas=(0.8, 0.9))
    fit(_model(), _Pairs(x, y), _cfg(), optimizer=factory, callbacks=[Spy()])
    assert isinstance(seen["opt"], torch.optim.AdamW)
    assert seen["opt"].param_groups[0]["betas"] == (0.8, 0.9)
    with pytest.raises(TypeError, match="must return a torch.optim.Optimizer, got list"):
        fit(_model(), _Pairs(x, y), _cfg(), optimizer=lambda params: list(params))
    frozen = _model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(frozen, _Pairs(x, y), _cfg())


def test_frozen_parameters_are_left_out_of_the_factory():
    x, y = _data(n=8)
    model = _model()
    model.embed.requires_grad_(False)
    got = {}

    def factory(params):
        got["n"] = len(params)
        return torch.optim.SGD(params, lr=0.1)

    before = model.embed.weight.clone()
    fit(model, _Pairs(x, y), _cfg(), optimizer=factory)
    assert got["n"] == 4 and torch.equal(model.embed.weight, before)


def test_a_sampling_plan_raises_no_never_drawn_warning():
    x, y = _data(n=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fit(_model(), _Pairs(x, y), _cfg(), order=lambda e: [torch.tensor([0, 2, 2, 3])])
    assert int(out.seen.sum()) == 3  # still recorded
