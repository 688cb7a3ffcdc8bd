"""Leaky integrate-and-fire neurons and a non-spiking integrator, with explicit state.

Garg, Chowdhury, Roy, "DCT-SNN: Using DCT to Distribute Spatial Information over Time for
Low-Latency Spiking Neural Networks", ICCV 2021 (arXiv 2010.01795).  Hidden layers are LIF
neurons with a multiplicative leak ``lambda`` (0.9901 in the paper's code), a per-layer
threshold ``V_th`` and a soft reset; the output layer integrates its input without leak and
the logits are ``sum / T``.

Two update orderings are offered (``I`` is the input current of the step):

- ``delay=False`` (default; snnTorch ``Leaky(reset_delay=False)``, SpikingJelly ``LIFNode``):
  ``U <- lambda U + I``;  ``s = H(U / V_th - 1)``;  then reset ``U <- U - V_th s`` (soft) or
  ``U <- U (1 - s)`` (hard, to 0).  The spike reacts to this step's input.
- ``delay=True`` (the official DCT-SNN code): ``s = H(U / V_th - 1)`` from the membrane
  *before* the new input, then ``U <- lambda U + I - V_th s`` (soft) or
  ``U <- lambda U (1 - s) + I`` (hard).  Each layer adds a one-step delay; the reset is not
  leaked.  The membrane follows snnTorch ``Leaky``'s default (``reset_delay=True``) exactly,
  whose spikes come one step earlier.

``H`` is :func:`netprism.nn.surrogate.spike`, so ``d s / d U = g(U / V_th - 1) / V_th`` with
the chosen surrogate ``g``.  Gradients also flow through the reset (no detach).
:func:`lif_sequence` runs ``T`` steps over a ``(T, B, ...)`` tensor with a fused forward
(pre-allocated buffers, 3-4 kernels per step, no autograd graph) and a hand-written
backward (about 8 in-place kernels per step on (B, ...) buffers that stay in cache); it gives
bit-identical values to looping the module, and the same gradients up to round-off.
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import torch
from torch import nn

from netprism.nn.surrogate import Surrogate, resolve_surrogate

__all__ = ["LIF", "Integrator", "lif_sequence"]

RESETS = ("soft", "hard")


def _check_state(x: torch.Tensor, state: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
    """Zeros for ``None``; otherwise check that ``state`` has the expected ``shape``."""
    if state is None:
        return torch.zeros(shape, dtype=x.dtype, device=x.device)
    if not isinstance(state, torch.Tensor):
        raise ValueError(f"state must be a tensor or None, got {type(state).__name__}")
    if state.shape != shape:
        raise ValueError(
            f"state shape {tuple(state.shape)} does not match the input's neuron shape "
            f"{tuple(shape)}"
        )
    return state


class LIF(nn.Module):
    """Leaky integrate-and-fire neuron layer (one time step per call).

    Parameters
    ----------
    threshold : float > 0
        Firing threshold ``V_th`` of the layer (a 0-d buffer, or a Parameter).
    leak : float in (0, 1]
        Multiplicative membrane leak ``lambda`` (1 = no leak, an IF neuron).
    reset : {"soft", "hard"}
        Subtract ``V_th`` on a spike, or set the membrane to 0.
    surrogate : {"linear", "fast_sigmoid", "arctan"}
        Surrogate derivative of the spike (see :mod:`netprism.nn.surrogate`).
    learn_threshold : bool
        Make ``threshold`` a trainable Parameter.
    delay : bool
        ``True``: the official DCT-SNN ordering (spike from the membrane before the input).
    surrogate_kw : dict, optional
        The surrogate's parameter, e.g. ``{"slope": 25.0}`` for ``"fast_sigmoid"``.

    Call ``out, state = lif(x, state)`` with ``x`` (B, ...) the input current and ``state``
    the membrane (B, ...) or ``None`` (zeros); ``out`` is the spike tensor (B, ...).

    Examples
    --------
    >>> lif = LIF(threshold=1.0, leak=0.5)
    >>> s, u = lif(torch.tensor([0.8]))
    >>> s, u
    (tensor([0.]), tensor([0.8000]))
    >>> s, u = lif(torch.tensor([0.8]), u)  # 0.5 * 0.8 + 0.8 = 1.2 > 1: spike, soft reset
    >>> s, u
    (tensor([1.]), tensor([0.2000]))
    """

    threshold: torch.Tensor

    def __init__(
        self,
        threshold: float = 1.0,
        leak: float = 0.99,
        reset: str = "soft",
        surrogate: str = "linear",
        learn_threshold: bool = False,
        delay: bool = False,
        *,
        surrogate_kw: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ValueError(f"threshold must be a float > 0, got {threshold!r}")
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be a finite float > 0, got {threshold!r}")
        if isinstance(leak, bool) or not isinstance(leak, (int, float)) or not 0 < leak <= 1:
            raise ValueError(f"leak must be a float in (0, 1], got {leak!r}")
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        self.surrogate_kw = dict(surrogate_kw or {})
        self._sur, self._sur_param = resolve_surrogate(surrogate, **self.surrogate_kw)
        self.surrogate = surrogate
        self.leak = float(leak)
        self.reset = reset
        self.delay = bool(delay)
        t = torch.tensor(float(threshold))
        if learn_threshold:
            self.threshold = nn.Parameter(t)
        else:
            self.register_buffer("threshold", t)

    def extra_repr(self) -> str:
        learn = isinstance(self.threshold, nn.Parameter)
        return (
            f"threshold={float(self.threshold):.4g}, leak={self.leak}, reset={self.reset!r}, "
            f"surrogate={self.surrogate!r}, learn_threshold={learn}, delay={self.delay}"
        )

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``x`` (B, ...) input current, ``state`` (B, ...) membrane or None.

        Returns ``(spikes, membrane)``, both (B, ...); the membrane is after the reset.
        """
        u = _check_state(x, state, x.shape)
        th, fire = self.threshold, self._sur.function.apply  # fire(z, param) = H(z)
        if self.delay:
            s = fire(u / th - 1.0, self._sur_param)  # from the membrane before the input
            if self.reset == "soft":
                u = torch.add(x, u, alpha=self.leak) - th * s
            else:
                u = torch.add(x, u * (1.0 - s), alpha=self.leak)
        else:
            u = torch.add(x, u, alpha=self.leak)
            s = fire(u / th - 1.0, self._sur_param)
            u = u - th * s if self.reset == "soft" else u * (1.0 - s)
        return s, u


class Integrator(nn.Module):
    """Non-spiking, leak-free output layer: the membrane is the running sum of its input.

    ``out, state = integ(x, state)`` with ``x`` (B, ...) and ``state`` (B, ...) or ``None``;
    ``out`` is the new running sum (``out is state``).  After ``T`` steps the logits are
    ``out / T`` (as in DCT-SNN).  Over a whole sequence ``x_seq`` (T, B, ...) this is
    ``x_seq.sum(0)``.

    Examples
    --------
    >>> integ = Integrator()
    >>> out, st = integ(torch.tensor([1.0, 2.0]))
    >>> out, st = integ(torch.tensor([3.0, -1.0]), st)
    >>> out / 2  # logits after T = 2 steps
    tensor([2.0000, 0.5000])
    """

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add ``x`` (B, ...) to the running sum ``state`` (B, ...); return it twice."""
        total = x.clone() if state is None else _check_state(x, state, x.shape) + x
        return total, total


# --------------------------------------------------------------------------- multi-step


@overload
def lif_sequence(
    x_seq: torch.Tensor,
    lif: LIF,
    state: torch.Tensor | None = ...,
    *,
    return_trace: Literal[False] = ...,
) -> tuple[torch.Tensor, torch.Tensor]: ...


@overload
def lif_sequence(
    x_seq: torch.Tensor,
    lif: LIF,
    state: torch.Tensor | None = ...,
    *,
    return_trace: Literal[True],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


def lif_sequence(
    x_seq: torch.Tensor,
    lif: LIF,
    state: torch.Tensor | None = None,
    *,
    return_trace: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Run ``lif`` over all ``T`` time steps of ``x_seq``.

    Parameters
    ----------
    x_seq : Tensor (T, B, ...)
        Input currents, time first.
    lif : LIF
        The neuron layer (its threshold, leak, reset, surrogate and ordering).
    state : Tensor (B, ...), optional
        Initial membrane; ``None`` means zeros.
    return_trace : bool
        Also return the membrane after every step (T, B, ...).

    Returns
    -------
    spikes : Tensor (T, B, ...)
    state : Tensor (B, ...), the membrane after the last step
    trace : Tensor (T, B, ...), only with ``return_trace=True`` (``trace[-1]`` equals ``state``)

    Notes
    -----
    With a fixed threshold this runs a fused ``autograd.Function`` (no graph per step, a
    hand-written backward; not twice differentiable); with ``learn_threshold=True`` it loops
    the module, so autograd also reaches the threshold.  Both give the same spikes and states.

    Examples
    --------
    >>> lif = LIF(threshold=1.0, leak=1.0)
    >>> x = torch.full((4, 1, 1), 0.6)  # (T, B, N)
    >>> spikes, u = lif_sequence(x, lif)
    >>> spikes.flatten(), u.flatten()
    (tensor([0., 1., 0., 1.]), tensor([0.4000]))
    """
    if not isinstance(x_seq, torch.Tensor) or x_seq.dim() < 2 or len(x_seq) == 0:
        shape = tuple(x_seq.shape) if isinstance(x_seq, torch.Tensor) else type(x_seq).__name__
        raise ValueError(f"x_seq must be a tensor (T, B, ...) with T >= 1, got {shape}")
    if not x_seq.is_floating_point():
        raise ValueError(f"x_seq must be floating point, got {x_seq.dtype}")
    u0 = _check_state(x_seq, state, x_seq.shape[1:])
    if lif.threshold.requires_grad:
        return _loop(x_seq, lif, u0, return_trace)
    out = _FusedLIF.apply(
        x_seq,
        u0.to(x_seq.dtype),
        lif.threshold.detach(),
        lif.leak,
        lif.reset == "soft",
        lif.delay,
        lif._sur,
        lif._sur_param,
        return_trace,
    )
    spikes, u, trace = out
    return (spikes, u, trace) if return_trace else (spikes, u)


def _loop(x_seq: torch.Tensor, lif: LIF, u: torch.Tensor, trace: bool) -> tuple[torch.Tensor, ...]:
    """Reference path: call the module at each step (autograd records every op)."""
    spikes, states = [], []
    for x in x_seq:
        s, u = lif(x, u)
        spikes.append(s)
        states.append(u)
    out = torch.stack(spikes)
    return (out, u, torch.stack(states)) if trace else (out, u)


class _FusedLIF(torch.autograd.Function):
    """All ``T`` LIF steps as one autograd node (fixed threshold and leak).

    Saved for backward: ``r`` (T, B, ...), the membrane that was compared with the threshold,
    divided by ``V_th`` (pre-reset ``U_t`` without delay, ``U_{t-1}`` with delay), and the
    spikes.  The backward recomputes the surrogate one step at a time (see
    :func:`_backward_loop`).
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        u0: torch.Tensor,
        th_t: torch.Tensor,
        leak: float,
        soft: bool,
        delay: bool,
        sur: Surrogate,
        param: float,
        store_trace: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T, th = x.shape[0], float(th_t)  # divide by the 0-d tensor, as LIF.forward does
        spikes = torch.empty_like(x, memory_format=torch.contiguous_format)  # (T, B, ...)
        # r: U / V_th, compared with 1 at each step (U itself when V_th == 1: U / 1 is exact)
        r = spikes.new_empty(0) if th == 1.0 else torch.empty_like(spikes)
        if delay:
            v = torch.empty((T + 1, *x.shape[1:]), dtype=x.dtype, device=x.device)
            v[0] = u0  # v[t] = membrane before step t; v[1:] is the trace
            for t in range(T):
                rt = v[t] if th == 1.0 else torch.div(v[t], th_t, out=r[t])
                torch.gt(rt, 1.0, out=spikes[t])
                if soft:
                    torch.add(x[t], v[t], alpha=leak, out=v[t + 1])
                    v[t + 1].sub_(spikes[t], alpha=th)
                else:  # U (1 - s) written as U - U s
                    m = torch.addcmul(v[t], v[t], spikes[t], value=-1.0)
                    torch.add(x[t], m, alpha=leak, out=v[t + 1])
            if th == 1.0:
                r = v[:-1]
            trace, u = v[1:], v[T].clone()
        else:
            h = torch.empty_like(spikes)  # pre-reset membrane
            trace = torch.empty_like(spikes) if store_trace else spikes.new_empty(0)
            u = u0
            for t in range(T):
                torch.add(x[t], u, alpha=leak, out=h[t])
                rt = h[t] if th == 1.0 else torch.div(h[t], th_t, out=r[t])
                torch.gt(rt, 1.0, out=spikes[t])
                nxt = trace[t] if store_trace else (u if t > 0 else torch.empty_like(u0))
                if soft:
                    torch.sub(h[t], spikes[t], alpha=th, out=nxt)
                else:
                    torch.addcmul(h[t], h[t], spikes[t], value=-1.0, out=nxt)
                u = nxt
            if th == 1.0:
                r = h
            u = u.clone() if store_trace else u
        ctx.save_for_backward(r, spikes)
        ctx.cfg = (th, leak, soft, delay, sur, param, store_trace)
        ctx.set_materialize_grads(False)
        return spikes, u, trace if store_trace else trace.new_empty(0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any, g_s: torch.Tensor | None, g_u: torch.Tensor | None, g_tr: torch.Tensor | None
    ) -> tuple[Any, ...]:
        r, s = ctx.saved_tensors
        th, leak, soft, delay, sur, param, store_trace = ctx.cfg
        gx = _backward_loop(
            r, s, g_s, g_u, g_tr if store_trace else None, th, leak, soft, delay, sur, param
        )
        return *gx, None, None, None, None, None, None, None


def _backward_loop(
    r: torch.Tensor,
    s: torch.Tensor,
    g_s: torch.Tensor | None,
    g_u: torch.Tensor | None,
    g_tr: torch.Tensor | None,
    th: float,
    leak: float,
    soft: bool,
    delay: bool,
    sur: Surrogate,
    param: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Back-propagation through time, step by step on (B, ...) buffers that stay in cache.

    ``r`` (T, B, ...) is the membrane compared with the threshold, over ``V_th``; ``s`` the
    spikes; ``g_*`` the incoming gradients (``None`` = zero).  With ``sg = g(r_t - 1)`` and
    ``c`` the gradient arriving at the compared membrane through the leak, one step is

    - soft: ``out = c - sg (b - g_s / V_th)`` with ``b = c`` (no delay) or ``b = c / leak``
      (delay: the reset bypasses the leak);
    - hard: ``out = c - s c - sg (r c - g_s / V_th)``.

    Without delay ``out`` is the input gradient of step ``t`` and ``c = leak out_{t+1}``; with
    delay the input gradient of step ``t`` is ``G_t`` (membrane gradient), ``c = leak G_t``
    and ``out = G_{t-1}``.  Returns ``(grad x (T, B, ...), grad U_init (B, ...))``.
    """
    T = r.shape[0]
    gx = torch.empty_like(r)
    sg, c, tmp = torch.empty_like(r[0]), torch.empty_like(r[0]), torch.empty_like(r[0])
    zero = torch.zeros_like(r[0])
    if delay:  # G_{T-1}: gradient of the final membrane
        gx[T - 1] = zero if g_u is None else g_u
        if g_tr is not None:
            gx[T - 1] += g_tr[T - 1]
    g0 = torch.empty_like(r[0])
    for t in range(T - 1, -1, -1):
        if delay:
            torch.mul(gx[t], leak, out=c)
            dst = gx[t - 1] if t > 0 else g0
        else:
            if t == T - 1:
                c.copy_(zero if g_u is None else g_u)
            else:
                torch.mul(gx[t + 1], leak, out=c)
            if g_tr is not None:
                c.add_(g_tr[t])
            dst = gx[t]
        sur.grad_(torch.sub(r[t], 1.0, out=sg), param)
        if soft:
            b = gx[t] if delay else c
            m = b if g_s is None else torch.sub(b, g_s[t], alpha=1.0 / th, out=tmp)
            torch.addcmul(c, sg, m, value=-1.0, out=dst)
        else:
            m = torch.mul(r[t], c, out=tmp)
            if g_s is not None:
                m.sub_(g_s[t], alpha=1.0 / th)
            torch.addcmul(c, s[t], c, value=-1.0, out=dst).addcmul_(sg, m, value=-1.0)
        if delay and t > 0 and g_tr is not None:
            dst.add_(g_tr[t - 1])
    if not delay:
        torch.mul(gx[0], leak, out=g0)
    return gx, g0
