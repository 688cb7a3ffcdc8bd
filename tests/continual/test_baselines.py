"""Baselines against their published update rules on hand-made cases."""

import pytest
import torch
from torch import nn

from netprism.continual.baselines import (
    AGEM,
    EWC,
    FineTune,
    agem_project,
    empirical_fisher,
    joint_training,
)
from netprism.continual.recipe import stream_config
from netprism.continual.runner import run_stream
from netprism.continual.streams import permuted_stream, split_stream
from netprism.data import DatasetInfo, TensorDataset
from netprism.models import create_model


class TwoParams(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, -2.0]))

    def forward(self, x):
        return x * self.w  # (B, 2) logits


def test_ewc_penalty_closed_form():
    model = TwoParams()
    ewc = EWC(lam=4.0)
    assert ewc.penalty(model) is None
    f1, a1 = torch.tensor([2.0, 0.5]), torch.tensor([0.0, 0.0])
    f2, a2 = torch.tensor([1.0, 3.0]), torch.tensor([1.0, -1.0])
    ewc.fishers_, ewc.anchors_ = [[f1], [f2]], [[a1], [a2]]
    theta = model.w.detach()
    expected = 4.0 / 2 * ((f1 * (theta - a1) ** 2).sum() + (f2 * (theta - a2) ** 2).sum())
    assert float(ewc.penalty(model).detach()) == pytest.approx(
        float(expected)
    )  # 2 * (2+2 + 0+3) = 14


def test_empirical_fisher_closed_form():
    # logits = x * w with one sample; d(-log softmax_y)/dw_k = x_k (p_k - [k == y])
    model = TwoParams()
    x, y = torch.tensor([[1.0, 0.5]]), torch.tensor([0])
    p = torch.softmax(x[0] * model.w.detach(), 0)
    grad = x[0] * (p - torch.tensor([1.0, 0.0]))
    (fisher,) = empirical_fisher(model, x, y)
    assert torch.allclose(fisher, grad**2, atol=1e-6)
    # and after_task stores it with the anchor
    info = DatasetInfo("one", ("a", "b"), (2,), "test")
    ewc = EWC(lam=1.0, fisher_samples=5)
    ewc.after_task(model, 0, TensorDataset(x, y, info))
    assert torch.allclose(ewc.fishers_[0][0], grad**2, atol=1e-6)
    assert torch.equal(ewc.anchors_[0][0], model.w.detach())


def test_agem_projection_closed_form():
    g, g_ref = torch.tensor([1.0, -3.0, 2.0]), torch.tensor([0.5, 1.0, 0.0])
    out = agem_project(g, g_ref)
    dot = float(g @ g_ref)  # -2.5 < 0: violating
    assert dot < 0
    assert torch.allclose(out, g - dot / float(g_ref @ g_ref) * g_ref)
    assert abs(float(out @ g_ref)) < 1e-6
    g_ok = torch.tensor([1.0, 1.0, -5.0])
    assert torch.equal(agem_project(g_ok, g_ref), g_ok)


def test_agem_hook_projects_model_gradient():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    info = DatasetInfo("toy", ("a", "b"), (3,), "test")
    old = TensorDataset(torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1]), info)
    agem = AGEM(memory_per_task=6, ref_batch_size=6)
    agem.after_task(model, 0, old)
    x, y = torch.randn(4, 3), torch.tensor([1, 0, 1, 0])
    nn.functional.cross_entropy(model(x), y).backward()
    ref = torch.autograd.grad(agem.reference_loss(model), list(model.parameters()))
    g_ref = torch.cat([r.flatten() for r in ref])
    g = torch.cat([p.grad.flatten() for p in model.parameters()])
    agem.after_backward(model, 1, (x, y))
    new = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.allclose(new, agem_project(g, g_ref), atol=1e-6)
    assert float(new @ g_ref) >= -1e-6


def test_methods_run_in_runner_and_heads_must_match():
    train, test = permuted_stream("digits", 2)
    for method in (FineTune(), EWC(lam=10.0, fisher_samples=20), AGEM(memory_per_task=20)):
        model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(16,))
        res = run_stream(
            model, train, test, method, config=stream_config(epochs=1, batch_size=32, lr=0.05)
        )
        assert res.R.shape == (2, 2) and res.method == method.name
    strain, stest = split_stream("digits", 5)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(16,))
    res = run_stream(
        model,
        strain[:2],
        stest[:2],
        AGEM(20, heads="multi"),
        config=stream_config(epochs=1),
        heads="multi",
    )
    assert res.R.shape == (2, 2)
    with pytest.raises(ValueError, match="heads"):
        run_stream(
            model, strain[:2], stest[:2], EWC(), config=stream_config(epochs=1), heads="multi"
        )
    with pytest.raises(ValueError):
        EWC(lam=-1.0)
    with pytest.raises(ValueError):
        AGEM(memory_per_task=0)


def test_joint_training_runs_and_learns():
    train, test = permuted_stream("digits", 2)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(32,))
    acc = joint_training(
        model, train, test, config=stream_config(epochs=2, batch_size=16, lr=0.05, device="cpu")
    )
    assert acc.shape == (2,)
    assert acc.min() > 0.8
