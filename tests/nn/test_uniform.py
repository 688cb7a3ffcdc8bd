"""The uniform quantizer (``netprism.nn.quant``): bit-identity with every formula it replaced,
written out here in closed form, plus round trips, asymmetric grids, STE and clear errors."""

from __future__ import annotations

import pytest
import torch

from netprism.nn.quant import (
    Quantized,
    absmax,
    dequantize,
    fake_quantize,
    grid_max,
    quantize,
    uniform_scale,
)

TINY = 1e-12


def _tensors() -> list[torch.Tensor]:
    """Random tensors with an all-zero row, negative-only rows, huge and tiny ranges."""
    g = torch.Generator().manual_seed(0)
    out = []
    for shape in [(6, 17), (3, 4, 5, 7), (2, 3, 9, 8)]:
        x = (
            torch.randn(shape, generator=g)
            * torch.logspace(-3, 3, shape[0])[(...,) + (None,) * (len(shape) - 1)]
        )
        x[0] = 0.0  # an all-zero row / filter / batch
        x[1] = -x[1].abs()  # a negative range
        out.append(x)
    out.append(torch.zeros(4, 5))
    return out


XS = pytest.mark.parametrize("x", _tensors(), ids=lambda x: str(tuple(x.shape)))


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a, b)
    assert torch.equal(torch.signbit(a.float()), torch.signbit(b.float()))  # even -0.0


# --- old formulas, one per replaced copy --------------------------------------------------


@XS
def test_kv_cache_quantize_per_vector(x: torch.Tensor) -> None:
    """lm/kv_cache.py ``quantize_per_vector``: int8 codes, one scale per last-dim vector."""
    scale = (x.abs().amax(dim=-1, keepdim=True) / 127).clamp_min(1e-12)
    codes = torch.clamp(torch.round(x / scale), -127, 127).to(torch.int8)
    q = quantize(x, 8, axis=tuple(range(x.ndim - 1)))
    _same(q.codes, codes)
    _same(q.scale, scale)
    _same(q.dequantize(), codes.to(torch.float32) * scale)


@XS
def test_formats_quantize_kv_int8(x: torch.Tensor) -> None:
    """lm/formats.py ``quantize_kv_int8`` (removed): int8 codes, one scale per dim-1 slice."""
    dims = tuple(d for d in range(x.ndim) if d != 1)
    scale = (x.detach().abs().amax(dim=dims, keepdim=True) / 127).clamp_min(TINY)
    codes = torch.clamp(torch.round(x.detach() / scale), -127, 127).to(torch.int8)
    q = quantize(x, 8, axis=1)
    _same(q.codes, codes)
    _same(q.scale, scale)
    _same(dequantize(q.codes, q.scale), codes.to(scale.dtype) * scale)


@XS
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_lm_row_fake_quant_and_embedding_codes(x: torch.Tensor, bits: int) -> None:
    """lm/quant.py ``RowFakeQuant`` / ``row_scale`` and lm/formats.py 4-bit embedding codes."""
    w = x.reshape(x.shape[0], -1)
    qmax = 2 ** (bits - 1) - 1
    s = (w.detach().abs().amax(1, keepdim=True) / qmax).clamp_min(TINY)
    _same(uniform_scale(w, bits, axis=0), s)
    _same(absmax(w, axis=0) / grid_max(bits), w.abs().amax(1, keepdim=True) / qmax)
    _same(fake_quantize(w, bits, scale=s), torch.clamp(torch.round(w / s), -qmax, qmax) * s)
    q = torch.clamp(torch.round(w / s), -qmax, qmax)
    codes = quantize(w, bits, scale=s, signed=False)
    _same(codes.codes, (q + 2 ** (bits - 1)).to(torch.uint8))
    _same(codes.dequantize(), (codes.codes.to(s.dtype) - float(2 ** (bits - 1))) * s)


@XS
def test_lm_balanced_2bit_grid(x: torch.Tensor) -> None:
    """lm/quant.py ``fake_quant_2bit``, ``grid_codes``, ``maxabs_scale`` (per row and tensor)."""
    w = x.reshape(x.shape[0], -1)
    for rows in (w, w.reshape(1, -1)):
        s_old = (rows.abs().amax(1).clamp_min(TINY) / 1.5).reshape(-1, 1)
        s = uniform_scale(rows, 2, axis=0, grid="balanced", eps=TINY, clamp_absmax=True)
        _same(s, s_old)
        for scale in (s_old, s_old * 0.37):
            sc = scale.clamp_min(TINY)
            old = torch.clamp(torch.floor(rows / sc) + 0.5, -1.5, 1.5) * sc
            _same(fake_quantize(rows, 2, scale=sc, grid="balanced"), old)
            codes = (torch.floor(rows / sc) + 2).clamp(0, 3).to(torch.uint8)
            q = quantize(rows, 2, scale=sc, grid="balanced")
            _same(q.codes, codes)
            _same(q.dequantize(), (codes.to(sc.dtype) - 1.5) * sc)
            _same(q.dequantize(), old)


@XS
@pytest.mark.parametrize("bits", [2, 3, 5, 8, 16, 32])
def test_spiking_quantize_weights(x: torch.Tensor, bits: int) -> None:
    """spiking/pruning.py ``quantize_weights``: per tensor, unclamped scale, skipped if 0."""
    levels = 2 ** (bits - 1) - 1
    scale = x.abs().max() / levels
    new_scale = uniform_scale(x, bits, eps=0.0)
    assert torch.equal(new_scale.reshape(()), scale)
    if scale > 0:
        old = torch.clamp(torch.round(x / scale), -levels, levels) * scale
        _same(fake_quantize(x, bits, scale=new_scale, ste=False), old)


@XS
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_hybrid_unit_levels_and_weights(x: torch.Tensor, bits: int) -> None:
    """nn/quant.py Hybrid-Net grids: ``2^k`` levels on [-1, 1]; per-filter ``[-max, max]``."""
    steps = 2**bits - 1
    u = torch.tanh(x) * 1.2  # inputs beyond [-1, 1] too
    c = u.clamp(-1.0, 1.0)
    old = torch.round((c + 1.0) * (steps / 2.0)) * (2.0 / steps) - 1.0
    _same(fake_quantize(c, bits, symmetric=False, bounds=(-1.0, 1.0), ste=False), old)
    _same(fake_quantize(u, bits, symmetric=False, bounds=(-1.0, 1.0), ste=False), old)
    dims = tuple(range(1, x.ndim))
    amax = x.abs().amax(dim=dims, keepdim=True)
    _same(absmax(x, axis=0), amax)


# --- behaviour of the new forms ------------------------------------------------------------


@pytest.mark.parametrize("grid", ["integer", "balanced"])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_symmetric_round_trip_bound_and_level_count(grid: str, bits: int) -> None:
    x = torch.randn(5, 300, generator=torch.Generator().manual_seed(1))
    q = quantize(x, bits, axis=0, grid=grid)
    fq = fake_quantize(x, bits, axis=0, grid=grid)
    assert torch.equal(q.dequantize(), fq)
    assert ((fq - x).abs() <= q.scale / 2 * (1 + 1e-5)).all()
    n_levels = 2**bits - 1 if grid == "integer" else 2**bits
    assert all(len(torch.unique(fq[r])) <= n_levels for r in range(5))
    if grid == "balanced":
        assert not (fq == 0).any()  # no zero level


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_asymmetric_per_channel_covers_each_range(bits: int) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 200, generator=g) * torch.tensor([[1.0], [5.0], [0.1]]) + torch.tensor(
        [[-3.0], [2.0], [0.0]]
    )
    fq = fake_quantize(x, bits, axis=0, symmetric=False)
    lo, hi = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
    step = (hi - lo) / (2**bits - 1)
    assert torch.allclose(fq.amin(1, keepdim=True), lo) and torch.allclose(fq.amax(1), hi[:, 0])
    assert ((fq - x).abs() <= step / 2 + 1e-5).all()
    q = quantize(x, bits, axis=0, symmetric=False)
    assert q.codes.dtype == torch.uint8 and int(q.codes.max()) == 2**bits - 1
    assert torch.allclose(q.dequantize(), fq, atol=1e-5)


def test_ste_gradients() -> None:
    x = torch.tensor([-5.0, -0.6, 0.2, 0.9, 7.0], requires_grad=True)
    s = torch.tensor(0.5, requires_grad=True)
    fake_quantize(x, 3, scale=s).sum().backward()  # q = 3: levels -1.5 .. 1.5
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # straight through inside the clip
    assert s.grad is not None
    y = torch.tensor([0.3], requires_grad=True)
    fake_quantize(y, 4, scale=torch.tensor(0.1), ste=False).sum().backward()
    assert y.grad.tolist() == [0.0]  # plain rounding: no gradient


def test_code_dtypes_and_per_tensor_scale_shape() -> None:
    x = torch.randn(2, 3, 4)
    assert quantize(x, 8).codes.dtype == torch.int8
    assert quantize(x, 8, signed=False).codes.dtype == torch.uint8
    assert quantize(x, 12).codes.dtype == torch.int16
    assert quantize(x, 12, signed=False).codes.dtype == torch.int32
    assert quantize(x, 4, dtype=torch.int32).codes.dtype == torch.int32
    assert quantize(x, 4).scale.shape == (1, 1, 1)
    assert isinstance(quantize(x, 4), Quantized)
    assert uniform_scale(x, 4, axis=(0, -1)).shape == (2, 1, 4)
    assert torch.equal(absmax(x, axis=(0, 1, 2)), x.abs())  # every element its own scale


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: quantize(torch.randn(2, 3), 8, axis=3), "axis 3 is out of range .* 2 dims"),
        (lambda: fake_quantize(torch.randn(3), 1), r"bits must be an int in \[2, 32\]"),
        (lambda: fake_quantize(torch.randn(3), 33, grid="balanced"), r"\[1, 32\]"),
        (lambda: quantize(torch.randn(3), 4, grid="ternary"), "grid must be one of"),
        (lambda: grid_max(True), "bits must be"),
        (lambda: dequantize(torch.randn(3), torch.tensor(1.0)), "integer tensor"),
    ],
)
def test_clear_errors(call, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bounds": (-1.0, 1.0)}, "bounds apply to the asymmetric grid only"),
        ({"symmetric": False, "scale": torch.tensor(1.0)}, "scale applies to the symmetric"),
        ({"symmetric": False, "grid": "balanced"}, "no 'balanced' variant"),
        ({"symmetric": False, "bounds": (1.0, 1.0)}, "lo < hi"),
    ],
)
def test_options_the_form_would_ignore_are_refused(kwargs: dict, message: str) -> None:
    x = torch.linspace(-1, 1, 7)
    for fn in (fake_quantize, quantize):
        with pytest.raises(ValueError, match=message):
            fn(x, 4, **kwargs)


def test_unsigned_codes_only_on_the_symmetric_integer_grid_and_at_most_16_bits() -> None:
    x = torch.linspace(-1, 1, 7)
    with pytest.raises(ValueError, match="signed=False applies"):
        quantize(x, 2, grid="balanced", signed=False)
    with pytest.raises(ValueError, match="at most 16 bits"):
        quantize(x, 24)
    assert quantize(x, 16).codes.dtype == torch.int16  # the widest codes still work
    wide = fake_quantize(x.double(), 32, ste=False)  # fake quantization goes wider than codes
    assert torch.allclose(wide, x.double(), atol=1.0 / (2**31 - 1))
