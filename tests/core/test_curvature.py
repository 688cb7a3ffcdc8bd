"""The curvature lens against closed forms, against itself, and against naive loops."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprism.core import curvature
from netprism.core.curvature import (
    CurvatureTracker,
    input_curvature,
    probes_per_pass,
    rademacher,
    rademacher_stack,
)
from netprism.core.per_sample import (
    input_gradients,
    logit_margins,
    per_sample_grad_norms,
    per_sample_losses,
)


def _softmax_regression(d=6, k=4, seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(d, k).double()
    x = torch.randn(8, d, dtype=torch.float64)
    y = torch.randint(0, k, (8,))
    return model, x, y


def _exact_input_hessians(model, x):
    """H_i = W^T (diag p_i - p_i p_i^T) W for softmax regression, (N, D, D)."""
    w = model.weight.detach()  # (K, D)
    p = torch.softmax(model(x).detach(), dim=1)  # (N, K)
    middle = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)  # (N, K, K)
    return w.T @ middle @ w


def test_hutchinson_converges_to_closed_form_trace_of_h_squared():
    model, x, y = _softmax_regression()
    hess = _exact_input_hessians(model, x)
    tr_h2 = (hess @ hess).diagonal(dim1=1, dim2=2).sum(1)
    tr_h = hess.diagonal(dim1=1, dim2=2).sum(1)
    s = input_curvature(model, x, y, n_probes=1000, backend="hvp", seed=0)
    assert torch.allclose(s.sq_norm, tr_h2, rtol=0.05)
    assert torch.allclose(s.trace, tr_h, rtol=0.05)
    assert torch.all(s.norm**2 <= s.sq_norm + 1e-12)  # Jensen: mean ||Hv|| ^2 <= mean ||Hv||^2


def test_exact_hvp_equals_closed_form_hessian_times_probe():
    model, x, y = _softmax_regression(seed=1)
    hess = _exact_input_hessians(model, x)
    v = rademacher(torch.arange(len(x)), 0, (x.shape[1],), seed=3).double()
    hv = (hess @ v.unsqueeze(2)).squeeze(2)
    s = input_curvature(model, x, y, n_probes=1, backend="hvp", seed=3)
    assert torch.allclose(s.sq_norm, hv.pow(2).sum(1), rtol=1e-10)
    assert torch.allclose(s.trace, (v * hv).sum(1), rtol=1e-10)


@pytest.mark.parametrize("h", [1e-4, 1e-3])
def test_finite_difference_matches_exact_hvp_on_smooth_model(h):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 5)).double()
    x, y = torch.randn(32, 10, dtype=torch.float64), torch.randint(0, 5, (32,))
    fd = input_curvature(model, x, y, n_probes=4, h=h, seed=7)
    exact = input_curvature(model, x, y, n_probes=4, backend="hvp", seed=7)
    assert torch.allclose(fd.norm, exact.norm, rtol=0.01)
    assert torch.allclose(fd.sq_norm, exact.sq_norm, rtol=0.01)


def _convnet():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )


@pytest.mark.parametrize("backend", ["finite_difference", "hvp"])
def test_scores_equal_alone_or_in_a_batch_of_256(backend):
    # float64: in float32 the batched and single-sample conv kernels round differently, and the
    # finite difference divides that rounding by h (agreement is then ~1e-4, not 1e-6).
    model = _convnet().double()
    model.train()
    model(torch.randn(64, 1, 8, 8, dtype=torch.float64))  # move BN running stats off defaults
    x, y = torch.rand(256, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (256,))
    batch = input_curvature(model, x, y, n_probes=3, backend=backend, seed=5)
    picks = [0, 17, 128, 255]
    for i in picks:
        alone = input_curvature(
            model,
            x[i : i + 1],
            y[i : i + 1],
            n_probes=3,
            backend=backend,
            seed=5,
            sample_ids=torch.tensor([i]),
        )
        for a, b in zip(alone.to_dict().values(), batch.to_dict().values()):
            assert torch.allclose(a[0], b[i], rtol=1e-5, atol=1e-6)
    assert model.training  # mode restored


def test_per_sample_functions_equal_alone_or_in_batch_and_naive_loop():
    model = _convnet().eval()
    x, y = torch.rand(40, 1, 8, 8), torch.randint(0, 10, (40,))
    losses, margins = per_sample_losses(model, x, y), logit_margins(model, x, y)
    grads, norms = input_gradients(model, x, y), per_sample_grad_norms(model, x, y)
    for i in (0, 13, 39):
        xi, yi = x[i : i + 1], y[i : i + 1]
        logits = model(xi)
        loss = F.cross_entropy(logits, yi)
        assert torch.allclose(losses[i], loss.detach(), atol=1e-6)
        other = torch.cat([logits[0, : yi[0]], logits[0, yi[0] + 1 :]]).max()
        assert torch.allclose(margins[i], (logits[0, yi[0]] - other).detach(), atol=1e-6)
        xg = xi.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(F.cross_entropy(model(xg), yi), xg)
        assert torch.allclose(grads[i], gx[0], atol=1e-6)
        gp = torch.autograd.grad(loss, list(model.parameters()))
        naive = torch.sqrt(sum(g.pow(2).sum() for g in gp))
        assert torch.allclose(norms[i], naive, rtol=1e-4)


def _naive_finite_difference_scores(model, x, y, n_probes, h, seed):
    """One probe at a time, every gradient from scratch: (norm, sq_norm, trace), each (N,)."""

    def input_grad(inputs):
        leaf = inputs.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(leaf), y, reduction="sum"), leaf)
        return g

    g0 = input_grad(x)
    rows = []
    for j in range(n_probes):
        v = rademacher(torch.arange(len(x)), j, x.shape[1:], seed).to(x.dtype)
        hv = (input_grad(x + h * v) - g0) / h
        rows.append(torch.stack([hv.norm(dim=1), hv.pow(2).sum(1), (v * hv).sum(1)]))
    return torch.stack(rows).mean(0)  # (3, N)


@pytest.mark.parametrize("values_per_pass", [1, 16 * 10 * 3, 2**20])
def test_stacked_probes_equal_a_naive_one_probe_loop(monkeypatch, values_per_pass):
    # 1: one probe per pass; 480: three probes of a 16-sample batch per pass (7 = 3 + 3 + 1);
    # 2**20: all seven probes in one pass.  The scores must not depend on the grouping.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 5)).double()
    x, y = torch.randn(40, 10, dtype=torch.float64), torch.randint(0, 5, (40,))
    monkeypatch.setattr(curvature, "STACK_INPUT_VALUES", values_per_pass)
    assert probes_per_pass(x[:16]) == max(1, values_per_pass // 160)
    s = input_curvature(model, x, y, n_probes=7, h=1e-2, seed=3, batch_size=16)
    naive = _naive_finite_difference_scores(model, x, y, 7, 1e-2, seed=3)
    got = torch.stack([s.norm, s.sq_norm, s.trace])
    assert torch.allclose(got, naive, rtol=1e-9, atol=1e-12)


def test_rademacher_stack_rows_are_the_single_probes():
    ids = torch.tensor([5, 0, 9])
    stack = rademacher_stack(ids, [4, 0, 2], (2, 3), seed=8)
    assert stack.shape == (3, 3, 2, 3)
    for row, probe in zip(stack, [4, 0, 2]):
        assert torch.equal(row, rademacher(ids, probe, (2, 3), seed=8))


def test_rademacher_entries_balanced_and_probe_dependent():
    v = rademacher(torch.arange(100), 0, (64,), seed=0)
    assert set(v.unique().tolist()) == {-1.0, 1.0} and abs(float(v.mean())) < 0.05
    assert not torch.equal(v, rademacher(torch.arange(100), 1, (64,), seed=0))
    assert not torch.equal(v, rademacher(torch.arange(100), 0, (64,), seed=1))
    assert not torch.equal(v[0], v[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_probes=0), "n_probes"),
        (dict(n_probes=2.5), "n_probes"),
        (dict(h=0.0), "h must"),
        (dict(h=-1e-3), "h must"),
        (dict(h=float("nan")), "h must"),
        (dict(backend="exact"), "backend"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    model, x, y = _softmax_regression()
    with pytest.raises(ValueError, match=match):
        input_curvature(model, x, y, **kwargs)


def test_bad_data_raises():
    model, x, y = _softmax_regression()
    x[2, 1] = float("inf")
    with pytest.raises(ValueError, match="finite"):
        input_curvature(model, x, y)
    with pytest.raises(ValueError, match="y must have shape"):
        input_curvature(model, x[:3], y)


def test_tracker_averages_epochs_and_survives_resume(tmp_path):
    from netprism.train import TrainConfig, fit

    torch.manual_seed(0)
    x, y = torch.randn(30, 5), torch.randint(0, 3, (30,))
    tracker = CurvatureTracker(n_probes=2, keep_history=True, every=2)
    cfg = TrainConfig(
        epochs=5, progress=False, device="cpu", batch_size=8, checkpoint_dir=str(tmp_path)
    )
    out = fit(nn.Linear(5, 3), (x, y), cfg, callbacks=[tracker])
    assert tracker.epochs_scored_ == 3 and tracker.history_.shape == (3, 30)  # epochs 0, 2, 4
    assert torch.allclose(tracker.scores_.norm, tracker.history_.mean(0).double())
    assert "curvature_mean" in out.history[0] and "curvature_mean" not in out.history[1]
    resumed = CurvatureTracker(n_probes=2, keep_history=True, every=2)
    fit(
        nn.Linear(5, 3),
        (x, y),
        TrainConfig(**{**cfg.to_dict(), "resume": True}),
        callbacks=[resumed],
    )
    assert resumed.epochs_scored_ == 3  # restored from the last checkpoint, nothing re-run
    assert torch.equal(resumed.scores_.norm, tracker.scores_.norm)
    with pytest.raises(RuntimeError, match="not scored"):
        _ = CurvatureTracker().scores_
