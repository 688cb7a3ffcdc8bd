"""fit_dub is the engine's fit + DUBRegularizer and reproduces the hand-written loop it replaced."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprism.compression.dub import (
    DUBRegularizer,
    MaskCallback,
    fit_dub,
    hoyer_variance,
    layer_weights,
    magnitude_masks,
)
from netprism.core.seed import seed_everything
from netprism.train import TrainConfig, epoch_order, fit, make_optimizer, make_scheduler


def _reference_fit_dub(model, x, y, config, size, lam):
    """The loop fit_dub replaced (fused mean cross-entropy, reg summed as Python floats)."""
    seed_everything(config.seed)
    weights = list(layer_weights(model).values())
    opt = make_optimizer(model, config)
    sched = make_scheduler(opt, config)
    history = []
    for epoch in range(config.epochs):
        model.train()
        ce_sum, reg_sum, correct, steps = 0.0, 0.0, 0, 0
        for index in epoch_order(len(y), config.seed, epoch).split(config.batch_size):
            logits = model(x[index])
            ce = F.cross_entropy(logits, y[index])
            reg = hoyer_variance(weights, size)
            opt.zero_grad(set_to_none=True)
            (ce + lam * reg).backward()
            opt.step()
            ce_sum += float(ce.detach()) * len(index)
            reg_sum, steps = reg_sum + float(reg.detach()), steps + 1
            correct += int((logits.argmax(1) == y[index]).sum())
        sched.step()
        n = len(y)
        history.append({"loss": ce_sum / n, "reg": reg_sum / steps, "accuracy": correct / n})
    return history


def _data_and_model():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(100, 2, 6, 6, generator=g), torch.randint(0, 4, (100,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 12, 3, padding=1, bias=False),
        nn.BatchNorm2d(12),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(12 * 36, 4),
    )
    return x, y, model


def test_fit_dub_reproduces_the_reference_loop():
    x, y, model = _data_and_model()
    cfg = TrainConfig(
        epochs=3, batch_size=32, lr=1e-2, optimizer="adam", weight_decay=0.0, progress=False,
        device="cpu", seed=3,
    )  # fmt: skip
    ref_model = copy.deepcopy(model)
    want = _reference_fit_dub(ref_model, x, y, cfg, size=8, lam=0.1)
    got = fit_dub(model, (x, y), cfg, size=8, lam=0.1).history
    for a, b in zip(ref_model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)  # the same steps, bit for bit
    for w, h in zip(want, got):
        assert h["reg"] == w["reg"] and h["accuracy"] == w["accuracy"]
        # CE is reported as a sum of per-sample losses, not of batch means times B
        assert h["loss"] == pytest.approx(w["loss"], rel=1e-6)
        assert {"epoch", "loss", "reg", "accuracy"} <= set(h)


def test_regularizer_is_a_plain_callback_and_checks_its_arguments():
    x, y, model = _data_and_model()
    cfg = TrainConfig(epochs=2, lr=1e-2, optimizer="adam", progress=False, device="cpu")
    before = float(hoyer_variance([w.detach() for w in layer_weights(model).values()], 8))
    out = fit(model, (x, y), cfg, callbacks=[DUBRegularizer(8, lam=1.0)])
    after = float(hoyer_variance([w.detach() for w in layer_weights(model).values()], 8))
    assert after < before and all(h["reg"] > 0 for h in out.history)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        DUBRegularizer(8, lam=-1.0)
    with pytest.raises(ValueError, match="crossbar size must be"):
        DUBRegularizer(1)


def test_mask_callback_keeps_masks_through_every_step():
    x, y, model = _data_and_model()
    masks = magnitude_masks(layer_weights(model), 0.5)
    seen = []

    class Probe:
        def on_batch_end(self, ctx, batch):
            seen.append(all(float(w.detach()[~masks[n]].abs().max()) == 0.0
                            for n, w in layer_weights(ctx.model).items()))  # fmt: skip

    cfg = TrainConfig(epochs=1, batch_size=32, lr=1e-2, progress=False, device="cpu")
    fit(model, (x, y), cfg, callbacks=[MaskCallback(masks), Probe()])
    assert seen and all(seen)
