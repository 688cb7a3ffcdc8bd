"""The VRM and hierarchical training recipes run on the engine (``netprism.train.fit``) and
reproduce their former hand-written loops bit for bit at a fixed seed.

The reference loops below are the pre-engine implementations, kept here only as oracles: the
same batch order, generator calls, global-RNG draws, optimiser and schedule must give the very
same weights (and loss history) through the engine's hooks.
"""

import copy
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprism.core.seed import make_generator, seed_everything
from netprism.robustness.hierarchy import LabelTree
from netprism.robustness.hierarchy_train import (
    HierarchicalMLP,
    bcnn_weights,
    conditional_config,
    conditional_fit,
    level_losses,
    predict_leaves,
)
from netprism.robustness.ood import (
    VRMDetector,
    VRMSettings,
    intra_class_mixup,
    noise_mixup,
    train_mixup,
    train_plain,
    train_vrm,
    vrm_config,
)

# ----------------------------------------------------------------------------- oracles


def _reference_mixup_loop(model, x, y, config, settings, mode):
    k = int(y.max()) + 1
    seed_everything(config.seed)
    gen = make_generator(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    model.train()
    for _ in range(config.epochs):
        for idx in torch.randperm(len(y), generator=gen).split(config.batch_size):
            xb, yb = x[idx], y[idx]
            if mode in ("mixup", "vrm"):
                xb, yb = intra_class_mixup(xb, yb, settings.alpha, gen)
            width = k + 1 if mode == "vrm" else k
            target = F.one_hot(yb, width).float()
            if mode == "vrm":
                m = max(1, round(settings.noise_fraction * len(yb)))
                xa, ta = noise_mixup(x[idx][:m], y[idx][:m], k, settings, gen)
                xb, target = torch.cat([xb, xa]), torch.cat([target, ta])
            loss = -(target * F.log_softmax(model(xb), dim=1)).sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _reference_conditional_fit(model, x, y, tree, mode, epochs, batch_size, seed):
    targets = [y] if mode == "flat" else tree.level_labels(y)
    seed_everything(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, [max(1, epochs // 3), max(2, 2 * epochs // 3)], 0.1
    )
    history = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=make_generator(seed * 1000 + epoch))
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            xb, ys = x[idx], [t[idx] for t in targets]
            levels = range(len(ys)) if mode == "sequential" else [None]
            for level in levels:
                out = model(xb)
                logits = [out] if isinstance(out, torch.Tensor) else list(out)
                if mode == "sequential":
                    loss = level_losses(logits, ys)[level]
                elif mode == "combined":
                    loss = torch.stack(level_losses(logits, ys)).sum()
                else:
                    parts = level_losses(logits, ys, masked=False)
                    weights = bcnn_weights(epoch, epochs, len(ys))
                    loss = sum((w * p for w, p in zip(weights, parts)), torch.zeros(()))
                opt.zero_grad()
                loss.backward()
                opt.step()
            total += float(F.cross_entropy(logits[-1].detach(), ys[-1]))
        history.append(total / -(-len(x) // batch_size))
        sched.step()
    model.eval()
    return history


def _rng_state():
    legacy = np.random.get_state()[1].copy()  # noqa: NPY002  (the global stream is the point)
    return torch.get_rng_state(), random.getstate(), legacy


def _same_rng(a, b):
    return torch.equal(a[0], b[0]) and a[1] == b[1] and bool((a[2] == b[2]).all())


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


# ----------------------------------------------------------------------------- VRM


@pytest.mark.parametrize("mode", ["plain", "mixup", "vrm"])
@pytest.mark.parametrize("aux_target", ["hard", "soft"])
def test_mixup_training_on_the_engine_is_bit_identical(mode, aux_target):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(75, 1, 6, 6, generator=gen), torch.arange(75) % 3  # last batch: 11
    config = vrm_config(epochs=3, batch_size=16, weight_decay=1e-4, seed=5, device="cpu")
    settings = VRMSettings(aux_target=aux_target)
    torch.manual_seed(0)
    width = 4 if mode == "vrm" else 3
    ref = nn.Sequential(
        nn.Flatten(), nn.Linear(36, 20), nn.ReLU(), nn.Dropout(0.2), nn.Linear(20, width)
    )
    net = copy.deepcopy(ref)
    _reference_mixup_loop(ref, x, y, config, settings, mode)
    after_ref = _rng_state()
    if mode == "plain":
        out = train_plain(net, (x, y), config)
    else:
        out = {"mixup": train_mixup, "vrm": train_vrm}[mode](net, (x, y), config, settings)
    assert out is net and not net.training
    assert _same_weights(ref, net)
    assert _same_rng(after_ref, _rng_state())  # dropout and Beta draws: the same global stream


def test_vrm_rejects_a_wrong_width_and_an_unavailable_device():
    x, y = torch.rand(8, 4), torch.arange(8) % 2
    with pytest.raises(ValueError, match="vrm training needs 3 outputs, got 2"):
        train_vrm(nn.Linear(4, 2), (x, y), vrm_config(epochs=1, device="cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            train_vrm(nn.Linear(4, 3), (x, y), vrm_config(epochs=1, device="cuda"))


# ----------------------------------------------------------------------------- hierarchy


def _tree_and_data(n: int):
    parents: dict[str, str | None] = {"root": None}
    for s in range(2):
        parents[f"s{s}"] = "root"
        for m in range(2):
            parents[f"s{s}m{m}"] = f"s{s}"
            for c in range(2):
                parents[f"s{s}m{m}c{c}"] = f"s{s}m{m}"
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 8
    x = 3.0 * torch.randn(8, 6, generator=gen)[y] + torch.randn(n, 6, generator=gen)
    return LabelTree(parents), x, y


@pytest.mark.parametrize("mode", ["sequential", "combined", "bcnn", "flat"])
@pytest.mark.parametrize("n", [200, 203])  # last batch 8 (a power of two) or 11
def test_conditional_fit_on_the_engine_is_bit_identical(mode, n):
    tree, x, y = _tree_and_data(n)
    torch.manual_seed(1)
    ref = HierarchicalMLP(6, (8,) if mode == "flat" else (2, 4, 8), hidden=(16, 16, 16))
    net = copy.deepcopy(ref)
    h_ref = _reference_conditional_fit(ref, x, y, tree, mode, epochs=4, batch_size=32, seed=3)
    after_ref = _rng_state()
    config = conditional_config(epochs=4, batch_size=32, seed=3, device="cpu")
    history = conditional_fit(net, (x, y), tree, mode=mode, config=config)
    assert _same_rng(after_ref, _rng_state())
    if mode == "bcnn" and n == 203:
        # BCNN's weighted levels: the engine back-propagates the per-sample mean (1/B, then
        # x w_l) where the loop did w_l / B; the two roundings agree when B is a power of two
        # but may differ by one ulp for the last batch of 11 samples.
        for p, q in zip(ref.state_dict().values(), net.state_dict().values()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        assert history == pytest.approx(h_ref, rel=1e-5)
        return
    assert _same_weights(ref, net)
    assert history == h_ref  # the returned history keeps its meaning


def test_sequential_takes_one_step_per_level_per_batch():
    tree, x, y = _tree_and_data(200)
    steps = {"n": 0}
    net = HierarchicalMLP(6, (2, 4, 8), hidden=(8,))
    hook = net.heads[0].register_forward_hook(lambda *_: steps.__setitem__("n", steps["n"] + 1))
    config = conditional_config(epochs=2, batch_size=64, device="cpu")
    conditional_fit(net, (x, y), tree, mode="sequential", config=config)
    hook.remove()
    assert steps["n"] == 2 * 4 * 3  # epochs x batches (200 / 64 -> 4) x levels


def test_predict_leaves_returns_cpu_predictions():
    tree, x, y = _tree_and_data(40)
    net = HierarchicalMLP(6, (2, 4, 8), hidden=(8,))
    conditional_fit(net, (x, y), tree, config=conditional_config(epochs=1, device="cpu"))
    pred = predict_leaves(net, x)
    assert pred.shape == (40,) and pred.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_and_scoring_on_cuda_match_the_cpu():
    tree, x, y = _tree_and_data(200)
    torch.manual_seed(1)
    cpu = HierarchicalMLP(6, (2, 4, 8), hidden=(16, 16))
    gpu = copy.deepcopy(cpu)
    h_cpu = conditional_fit(cpu, (x, y), tree, config=conditional_config(epochs=3, device="cpu"))
    h_gpu = conditional_fit(gpu, (x, y), tree, config=conditional_config(epochs=3, device="cuda"))
    assert next(gpu.parameters()).device.type == "cuda"
    assert h_gpu == pytest.approx(h_cpu, rel=1e-3, abs=1e-4)
    agree = (predict_leaves(gpu, x) == predict_leaves(cpu, x)).float().mean()
    assert agree > 0.95
    xi, yi = torch.rand(60, 4), torch.arange(60) % 2
    torch.manual_seed(0)
    net = train_vrm(nn.Linear(4, 3), (xi, yi), vrm_config(epochs=2, device="cuda"))
    scores = VRMDetector().fit(net).score(xi)
    assert scores.device.type == "cpu" and scores.shape == (60,)
