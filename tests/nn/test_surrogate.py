"""Spike functions: Heaviside forward, surrogate derivatives equal their formulas."""

import math

import pytest
import torch

from netprism.nn.surrogate import SURROGATES, resolve_surrogate, spike

Z = [-2.0, -1.0, -0.5, -0.04, 0.0, 0.04, 0.25, 0.5, 1.0, 1.5]


def formula(name: str, z: float, p: float) -> float:
    if name == "linear":
        return p * max(0.0, 1.0 - abs(z))
    if name == "fast_sigmoid":
        return 1.0 / (1.0 + p * abs(z)) ** 2
    return (p / 2) / (1.0 + (math.pi / 2 * p * z) ** 2)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_forward_is_strict_heaviside(name):
    z = torch.tensor(Z)
    s = spike(z, name)
    assert s.dtype == z.dtype
    assert s.tolist() == [1.0 if v > 0 else 0.0 for v in Z]  # z == 0 does not spike


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_backward_equals_formula(name, dtype):
    p = SURROGATES[name].default
    z = torch.tensor(Z, dtype=dtype, requires_grad=True)
    spike(z, name).sum().backward()
    expected = torch.tensor([formula(name, float(v), p) for v in z.detach()], dtype=dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(z.grad, expected, rtol=tol, atol=tol)


def test_backward_hand_picked_values_exact():
    """Points where every formula is exact in binary floating point."""
    z = torch.tensor([0.0, 1.0, -1.0, 2.0], requires_grad=True)
    spike(z, "linear").sum().backward()
    assert torch.equal(z.grad, torch.tensor([0.3, 0.0, 0.0, 0.0]))  # 0.3 - 0.3 * 0, exactly
    z = torch.tensor([0.0, 0.04, -0.12], dtype=torch.float64, requires_grad=True)
    spike(z, "fast_sigmoid", slope=25.0).sum().backward()
    torch.testing.assert_close(
        z.grad, torch.tensor([1.0, 0.25, 0.0625], dtype=torch.float64), rtol=1e-15, atol=0
    )
    z = torch.tensor([0.0, 1 / math.pi, -1 / math.pi], dtype=torch.float64, requires_grad=True)
    spike(z, "arctan", alpha=2.0).sum().backward()  # (pi z)^2 = 1 -> 1 / 2
    torch.testing.assert_close(
        z.grad, torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64), rtol=1e-15, atol=0
    )


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_chain_rule_with_upstream_gradient(name):
    """Like gradcheck: d(sum w * spike(z)) / dz = w * g(z), against the registry's grad."""
    torch.manual_seed(0)
    z = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 5, dtype=torch.float64)
    (spike(z, name) * w).sum().backward()
    sur = SURROGATES[name]
    torch.testing.assert_close(z.grad, w * sur.grad(z.detach(), sur.default))
    scratch = z.detach().clone()  # the in-place variant gives the same numbers
    torch.testing.assert_close(sur.grad_(scratch, sur.default), sur.grad(z.detach(), sur.default))


def test_parameters_change_the_slope():
    z = torch.tensor([0.5], requires_grad=True)
    spike(z, "linear", scale=1.0).backward()
    assert z.grad.item() == pytest.approx(0.5)
    z = torch.tensor([0.1], requires_grad=True)
    spike(z, "fast_sigmoid", slope=10.0).backward()
    assert z.grad.item() == pytest.approx(0.25)


def test_errors():
    z = torch.zeros(3)
    with pytest.raises(ValueError, match=r"surrogate must be one of .*'linear'.*got 'relu'"):
        spike(z, "relu")
    with pytest.raises(ValueError, match=r"takes only the keyword 'slope', got \['alpha'\]"):
        spike(z, "fast_sigmoid", alpha=2.0)
    with pytest.raises(ValueError, match=r"scale must be a finite float > 0, got -1"):
        resolve_surrogate("linear", scale=-1.0)
    with pytest.raises(ValueError, match="floating-point tensor"):
        spike(torch.zeros(3, dtype=torch.long))
