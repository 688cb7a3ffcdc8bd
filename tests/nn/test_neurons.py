"""LIF and Integrator: closed-form dynamics, both orderings, gradients, fused == loop, peers."""

import itertools

import pytest
import torch

from netprism.nn import LIF, Integrator, lif_sequence
from netprism.nn.neurons import _loop

F64 = torch.float64


def run(lif: LIF, xs: list[float]) -> tuple[list[float], list[float]]:
    """Drive one neuron with the inputs ``xs``; spikes and membranes per step (module calls)."""
    u, spikes, mems = None, [], []
    for x in xs:
        s, u = lif(torch.tensor([x], dtype=F64), u)
        spikes.append(s.item())
        mems.append(u.item())
    return spikes, mems


# Constant input I = 0.6, leak 0.5, threshold 1, U starts at 0.  Hand-computed:
# no delay:  h = 0.6, 0.9, 1.05 (spike), then soft 0.05 -> 0.625 / hard 0 -> 0.6
# delay:     U = 0.6, 0.9, 1.05, spike from 1.05 at step 3: soft 0.525 + 0.6 - 1 = 0.125,
#            then 0.6625 / hard 0 + 0.6 = 0.6, then 0.9
CLOSED_FORM = {
    ("soft", False): ([0, 0, 1, 0, 0], [0.6, 0.9, 0.05, 0.625, 0.9125]),
    ("hard", False): ([0, 0, 1, 0, 0], [0.6, 0.9, 0.0, 0.6, 0.9]),
    ("soft", True): ([0, 0, 0, 1, 0], [0.6, 0.9, 1.05, 0.125, 0.6625]),
    ("hard", True): ([0, 0, 0, 1, 0], [0.6, 0.9, 1.05, 0.6, 0.9]),
}


@pytest.mark.parametrize("reset,delay", list(CLOSED_FORM))
def test_closed_form_constant_input(reset, delay):
    want_s, want_u = CLOSED_FORM[(reset, delay)]
    lif = LIF(threshold=1.0, leak=0.5, reset=reset, delay=delay).double()
    spikes, mems = run(lif, [0.6] * 5)
    assert spikes == want_s
    assert mems == pytest.approx(want_u, abs=1e-12)
    x = torch.full((5, 1, 1), 0.6, dtype=F64)  # (T, B, N)
    s, u, trace = lif_sequence(x, lif, return_trace=True)
    assert s.flatten().tolist() == want_s
    assert trace.flatten().tolist() == pytest.approx(want_u, abs=1e-12)
    assert u.item() == pytest.approx(want_u[-1], abs=1e-12)


def test_threshold_is_per_layer():
    """leak 1, input 1.5: threshold 2 sees 1.5, 3 (fire), 2.5 (fire), 2.0 (= V_th: no spike);
    threshold 1 fires at every step and its membrane after the reset creeps up by 0.5."""
    hi, lo = LIF(threshold=2.0, leak=1.0).double(), LIF(threshold=1.0, leak=1.0).double()
    assert run(hi, [1.5] * 4) == ([0, 1, 1, 0], [1.5, 1.0, 0.5, 2.0])
    assert run(lo, [1.5] * 4) == ([1, 1, 1, 1], [0.5, 1.0, 1.5, 2.0])
    x = torch.tensor([1.5, 2.0], requires_grad=True)  # d s / d x = g(x / V_th - 1) / V_th
    LIF(threshold=2.0, leak=1.0)(x)[0].sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.3 * 0.75 / 2, 0.3 / 2]))


def test_gradient_one_neuron_three_steps():
    """BPTT by hand: no delay, soft reset, linear surrogate, threshold 1, leak 0.9."""
    lam, xs = 0.9, [0.8, 0.5, 0.4]
    h0 = xs[0]  # 0.8: no spike
    h1 = lam * h0 + xs[1]  # 1.22: spike, U = 0.22
    h2 = lam * (h1 - 1) + xs[2]  # 0.598
    sg = [0.3 * max(0.0, 1 - abs(h - 1)) for h in (h0, h1, h2)]
    # loss = s0 + s1 + s2;  G_t = dL/dh_t = sg_t + (1 - sg_t) * lam * G_{t+1}
    g2 = sg[2]
    g1 = sg[1] + (1 - sg[1]) * lam * g2
    g0 = sg[0] + (1 - sg[0]) * lam * g1
    want = torch.tensor([g0, g1, g2], dtype=F64)
    lif = LIF(leak=lam).double()
    for fused in (True, False):
        x = torch.tensor(xs, dtype=F64).reshape(3, 1, 1).requires_grad_()
        s, _ = lif_sequence(x, lif) if fused else _loop(x, lif, torch.zeros(1, 1, dtype=F64), False)
        assert s.flatten().tolist() == [0, 1, 0]
        s.sum().backward()
        torch.testing.assert_close(x.grad.flatten(), want, rtol=1e-12, atol=1e-12)


CASES = list(
    itertools.product(
        [1.0, 0.7], ["soft", "hard"], [False, True], ["linear", "arctan", "fast_sigmoid"]
    )
)


@pytest.mark.parametrize("threshold,reset,delay,surrogate", CASES)
def test_fused_sequence_equals_module_loop(threshold, reset, delay, surrogate):
    """Equivalence of two implementations: values bit-identical, gradients to round-off."""
    torch.manual_seed(0)
    lif = LIF(threshold, 0.9, reset, surrogate, delay=delay).double()
    x = (torch.randn(7, 3, 5, dtype=F64) * 0.8 + 0.3).requires_grad_()
    u0 = torch.randn(3, 5, dtype=F64).requires_grad_()
    fused = lif_sequence(x, lif, u0, return_trace=True)
    loop = _loop(x, lif, u0, True)
    for a, b in zip(fused, loop):
        assert torch.equal(a, b)
    weights = [torch.randn_like(t) for t in fused]
    for k in (2, 3):  # without / with a loss on the membrane trace
        ga = torch.autograd.grad(
            sum((t * w).sum() for t, w in zip(fused[:k], weights)), (x, u0), retain_graph=True
        )
        gb = torch.autograd.grad(
            sum((t * w).sum() for t, w in zip(loop[:k], weights)), (x, u0), retain_graph=True
        )
        for a, b in zip(ga, gb):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    x32 = torch.randn(20, 4, 50) * 0.8 + 0.3  # float32: still bit-identical forward
    lif32 = LIF(threshold, 0.9, reset, surrogate, delay=delay)
    for a, b in zip(lif_sequence(x32, lif32), _loop(x32, lif32, torch.zeros(4, 50), False)):
        assert torch.equal(a, b)


def test_state_round_trip():
    """Two chunks with the state passed along equal one run; T = 1 works."""
    torch.manual_seed(1)
    lif, x = LIF(threshold=0.8, leak=0.95), torch.randn(10, 2, 3) + 0.5
    s_all, u_all = lif_sequence(x, lif)
    s1, u1 = lif_sequence(x[:4], lif)
    s2, u2 = lif_sequence(x[4:], lif, u1)
    assert torch.equal(torch.cat([s1, s2]), s_all) and torch.equal(u2, u_all)
    u = None
    for t in range(10):
        s, u = lif_sequence(x[t : t + 1], lif, u)
        assert torch.equal(s[0], s_all[t])
    assert torch.equal(u, u_all)


def test_learn_threshold_gets_gradient():
    lif = LIF(threshold=1.5, leak=1.0, learn_threshold=True)
    assert isinstance(lif.threshold, torch.nn.Parameter)
    x = torch.tensor([[1.8]])  # one step: z = x / th - 1 = 0.2; ds/dth = -g(z) x / th^2
    s, _ = lif_sequence(x.unsqueeze(0), lif)
    s.sum().backward()
    assert lif.threshold.grad.item() == pytest.approx(-0.3 * 0.8 * 1.8 / 1.5**2, rel=1e-5)
    assert "threshold" not in dict(LIF().named_parameters())
    assert "threshold" in dict(LIF().named_buffers())


def test_integrator_accumulates():
    integ = Integrator()
    x = torch.randn(6, 2, 4)
    out, st = None, None
    for t in range(6):
        out, st = integ(x[t], st)
    torch.testing.assert_close(out, x.sum(0))
    assert out is st


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"threshold": 0.0}, r"threshold must be a finite float > 0, got 0.0"),
        ({"threshold": float("nan")}, r"threshold must be a finite float > 0, got nan"),
        ({"leak": 0.0}, r"leak must be a float in \(0, 1\], got 0.0"),
        ({"leak": 1.5}, r"leak must be a float in \(0, 1\], got 1.5"),
        ({"reset": "zero"}, r"reset must be one of \('soft', 'hard'\), got 'zero'"),
        ({"surrogate": "sigmoid"}, r"surrogate must be one of"),
        ({"surrogate_kw": {"slope": 5.0}}, r"'linear' takes only the keyword 'scale'"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LIF(**kwargs)


def test_state_shape_errors():
    lif = LIF()
    with pytest.raises(ValueError, match=r"state shape \(2, 4\) does not match .* \(2, 3\)"):
        lif(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"state shape \(3,\) does not match .* \(2, 3\)"):
        lif_sequence(torch.zeros(5, 2, 3), lif, torch.zeros(3))
    with pytest.raises(ValueError, match=r"state shape"):
        Integrator()(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"x_seq must be a tensor \(T, B, ...\) with T >= 1"):
        lif_sequence(torch.zeros(5), lif)


# --------------------------------------------------------------------------- snnTorch


def _snntorch_run(leaky, x):
    mem, spk_all, mem_all = torch.zeros_like(x[0]), [], []
    for t in range(len(x)):
        spk, mem = leaky(x[t], mem)
        spk_all.append(spk)
        mem_all.append(mem)
    return torch.stack(spk_all), torch.stack(mem_all)


@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_delay_ordering_matches_snntorch_leaky(reset):
    """snnTorch ``Leaky`` (default ``reset_delay=True``) has our ``delay=True`` membrane
    exactly; its spike at t is ours at t + 1 (we emit the spike one step later)."""
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(2)
    x = torch.rand(30, 8, 16) * 1.2 - 0.2  # (T, B, N)
    mech = {"soft": "subtract", "hard": "zero"}[reset]
    leaky = snn.Leaky(beta=0.9, threshold=1.0, reset_mechanism=mech)
    spk_ref, mem_ref = _snntorch_run(leaky, x)
    ours, _, trace = lif_sequence(x, LIF(1.0, 0.9, reset, delay=True), return_trace=True)
    torch.testing.assert_close(trace, mem_ref, rtol=0, atol=1e-6)
    assert torch.equal(ours[1:], spk_ref[:-1])
    assert spk_ref.sum() > 20  # the comparison saw spikes


def test_default_ordering_matches_snntorch_without_reset_delay():
    """Our default ordering equals ``Leaky(reset_delay=False)`` whenever the membrane after a
    reset stays below threshold (snnTorch then never applies its double-reset guard); inputs
    below ``(1 - leak) V_th + V_th`` guarantee that."""
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(3)
    x = torch.rand(40, 8, 16) * 1.0 - 0.1
    leaky = snn.Leaky(beta=0.9, threshold=1.0, reset_mechanism="subtract", reset_delay=False)
    spk_ref, mem_ref = _snntorch_run(leaky, x)
    ours, _, trace = lif_sequence(x, LIF(1.0, 0.9, "soft"), return_trace=True)
    assert torch.equal(ours, spk_ref)
    torch.testing.assert_close(trace, mem_ref, rtol=0, atol=1e-6)
    assert spk_ref.sum() > 20
