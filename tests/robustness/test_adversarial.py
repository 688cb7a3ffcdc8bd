"""Attacks stay in the eps-ball and [0, 1], PGD strength grows with steps, BPDA backward
passes, the model variants, and equivalence with torchattacks' PGD (when installed)."""

import pytest
import torch
from torch import nn

from netprism.data import load_dataset
from netprism.robustness.adversarial import (
    attack_success_rate,
    fgsm,
    halftone,
    input_gradient,
    mi_fgsm,
    pgd,
    quantize_input,
)
from netprism.robustness.ensemble import ensemble_pgd
from netprism.robustness.variants import (
    InputTransform,
    VariantSpec,
    build_variant,
    quantize_layers,
    train_variant,
    variant_config,
)

EPS = 0.1


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    ds = load_dataset("digits")
    x, y = ds.x[:600], ds.y[:600]
    spec = VariantSpec(model_kwargs=(("hidden", (32,)),))
    config = variant_config(spec.optimizer, epochs=8, seed=0)
    model = train_variant(spec, (x, y), num_classes=10, config=config)
    test = load_dataset("digits", split="test")
    return model, test.x[:120], test.y[:120]


def _linf(a, b):
    return float((a - b).abs().max())


@pytest.mark.parametrize(
    "attack",
    [
        lambda m, x, y: fgsm(m, x, y, eps=EPS),
        lambda m, x, y: pgd(m, x, y, eps=EPS, steps=5),
        lambda m, x, y: pgd(m, x, y, eps=EPS, steps=5, random_start=False),
        lambda m, x, y: mi_fgsm(m, x, y, eps=EPS, steps=5),
        lambda m, x, y: ensemble_pgd([m, m], x, y, eps=EPS, steps=3, mode="sign_avg"),
        lambda m, x, y: ensemble_pgd([m, m], x, y, eps=EPS, steps=3, mode="avg"),
        lambda m, x, y: ensemble_pgd([m, m], x, y, eps=EPS, steps=3, mode="sign_all"),
    ],
)
def test_linf_attacks_stay_in_ball_and_unit_box(trained, attack):
    model, x, y = trained
    adv = attack(model, x, y)
    assert adv.shape == x.shape
    assert _linf(adv, x) <= EPS + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_l2_pgd_stays_in_l2_ball(trained):
    model, x, y = trained
    eps = 1.0
    adv = pgd(model, x, y, eps=eps, steps=10, norm="l2")
    norms = (adv - x).reshape(len(x), -1).norm(dim=1)
    assert float(norms.max()) <= eps + 1e-5
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert attack_success_rate(model, x, adv, y) > 0.0


def test_pgd_with_more_steps_is_at_least_as_strong(trained):
    model, x, y = trained
    rates = [
        attack_success_rate(model, x, pgd(model, x, y, eps=EPS, steps=s, random_start=False), y)
        for s in (1, 10, 40)
    ]
    assert rates[0] <= rates[1] <= rates[2], rates
    assert rates[2] > rates[0]


def test_pgd_is_seeded(trained):
    model, x, y = trained
    assert torch.equal(pgd(model, x, y, eps=EPS, steps=2), pgd(model, x, y, eps=EPS, steps=2))
    assert not torch.equal(
        pgd(model, x, y, eps=EPS, steps=2, seed=0), pgd(model, x, y, eps=EPS, steps=2, seed=1)
    )


def test_attacks_reject_bad_inputs(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(model, x * 2 - 1, y, eps=EPS)
    with pytest.raises(ValueError, match="eps must be"):
        fgsm(model, x, y, eps=-0.1)
    with pytest.raises(ValueError, match="norm must be"):
        pgd(model, x, y, eps=EPS, norm="l1")
    with pytest.raises(ValueError, match="steps must be"):
        pgd(model, x, y, eps=EPS, steps=0)
    with pytest.raises(ValueError, match="y must be"):
        pgd(model, x, y[:-1], eps=EPS)


def test_quantize_input_bins_and_identity_backward():
    x = torch.rand(3, 1, 8, 8, requires_grad=True)
    for bits in (1, 2, 4, 8):
        q = quantize_input(x, bits)
        levels = q.detach().unique()
        assert len(levels) <= 2**bits
        assert float((q - x).detach().abs().max()) <= 0.5 / 2**bits + 1e-6  # mid-bin reconstruction
    (quantize_input(x, 2) * 3.0).sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, 3.0))
    with pytest.raises(ValueError, match="1..8"):
        quantize_input(x, 9)


def test_halftone_is_binary_with_sigmoid_surrogate_gradient():
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    out = halftone(x)
    assert set(out.detach().unique().tolist()) <= {0.0, 1.0}
    out.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        halftone(torch.rand(2, 64))


@pytest.mark.parametrize(
    "spec",
    [
        VariantSpec(),
        VariantSpec(arch="lenet"),
        VariantSpec(input="quant", input_bits=1),
        VariantSpec(input="halftone"),
        VariantSpec(weight_bits=2, act_bits=2),
        VariantSpec(arch="lenet", weight_bits=4, act_bits=4),
    ],
)
def test_variants_build_and_are_differentiable(spec):
    model = build_variant(spec, input_shape=(1, 8, 8), num_classes=10)
    x = torch.rand(4, 1, 8, 8)
    g = input_gradient(model, x, torch.zeros(4, dtype=torch.long))
    assert g.shape == x.shape and torch.isfinite(g).all() and float(g.abs().sum()) > 0


def test_quantize_layers_keeps_weights_and_variant_errors():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    w = net[0].weight.detach().clone()
    quantize_layers(net, 8, 32)
    assert torch.equal(net[0].weight, w) and isinstance(net[1], nn.ReLU)
    with pytest.raises(ValueError, match="input transform"):
        InputTransform("blur")
    with pytest.raises(ValueError, match="optimizer"):
        build_variant(VariantSpec(optimizer="lbfgs"), input_shape=(4,), num_classes=2)


@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_matches_torchattacks(trained, random_start, norm):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = trained
    eps, alpha, steps = (EPS, EPS / 4, 10) if norm == "linf" else (1.0, 0.2, 10)
    cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    atk = cls(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
    torch.manual_seed(7)
    theirs = atk(x, y)
    torch.manual_seed(7)
    ours = pgd(
        model,
        x,
        y,
        eps=eps,
        steps=steps,
        step_size=alpha,
        norm=norm,
        random_start=random_start,
        seed=None,
    )
    if norm == "linf" and random_start is False:
        assert torch.equal(ours, theirs)
    # round-off may flip a gradient sign near zero; adversarials agree almost everywhere
    assert float((ours - theirs).abs().gt(1e-5).float().mean()) < 0.01
    ta_rate = attack_success_rate(model, x, theirs, y)
    assert attack_success_rate(model, x, ours, y) == pytest.approx(ta_rate, abs=0.02)
