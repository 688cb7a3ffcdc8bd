"""2-bit QAT and quantization: grid levels, clip search vs max-abs, STE gradients, bit-exact
packing, Q2_K vs per-tensor on heavy tails, a QAT ByteLM, exact size accounting, int4/int8."""

from fractions import Fraction

import pytest
import torch
from torch import nn

from netprism.lm.formats import q2k_quantize, quantize_embedding_4bit
from netprism.lm.model import ByteLM, LMConfig
from netprism.lm.quant import (
    LEVELS,
    QATLinear,
    RowFakeQuant,
    clip_search_scale,
    fake_quant_2bit,
    grid_codes,
    maxabs_scale,
    pack_2bit,
    pack_codes,
    ptq_2bit,
    quantize_model_qat,
    size_report,
    unpack_codes,
)
from netprism.nn.quant import (
    dequantize,
    quantize,
)

torch.set_num_threads(1)
TINY = {"context": 16, "n_layers": 2, "d_model": 16, "n_heads": 2, "n_kv_heads": 1}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _mse(a, b):
    return (a - b).pow(2).mean(1)


def test_fake_quant_values_are_exactly_the_four_levels_times_scale():
    w = torch.randn(6, 50, generator=_gen()) * 3
    scale = torch.rand(6, 1, generator=_gen(1)) + 0.1
    q = fake_quant_2bit(w, scale)
    for r in range(6):  # every value is one of the 4 levels of its row's scale, bit for bit
        levels = {float(torch.tensor(lv) * scale[r]) for lv in LEVELS}
        assert {float(v) for v in q[r]} <= levels and len(levels) == 4
    # nearest level: the error is at most half a step inside the clip range
    inside = (w / scale).abs() <= 1.5
    assert ((q - w).abs() <= scale / 2 + 1e-6)[inside].all()
    # codes agree with the levels
    assert torch.equal((grid_codes(w, scale).float() - 1.5) * scale, q)


def test_no_zero_level():
    assert fake_quant_2bit(torch.zeros(3), torch.tensor(1.0)).tolist() == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("per_channel", [True, False])
def test_clip_search_never_worse_than_maxabs(seed, per_channel):
    g = _gen(seed)
    w = torch.randn(8, 96, generator=g) * torch.rand(8, 1, generator=g)
    if seed % 2:  # heavy-tailed rows too
        w = w / torch.rand(8, 96, generator=g).clamp_min(0.05)
    rows = w if per_channel else w.reshape(1, -1)
    fq = lambda s: fake_quant_2bit(w, s).reshape(rows.shape)  # noqa: E731
    clip = _mse(fq(clip_search_scale(w, per_channel=per_channel)), rows)
    maxabs = _mse(fq(maxabs_scale(w, per_channel=per_channel)), rows)
    assert (clip <= maxabs).all()
    assert clip.mean() < maxabs.mean()  # and strictly better for gaussian-ish rows


def test_ste_gradients_reach_weight_and_scale():
    w = torch.randn(4, 10, generator=_gen(), requires_grad=True)
    scale = maxabs_scale(w.detach()).mul(0.5).requires_grad_(True)  # some weights clipped
    fake_quant_2bit(w, scale).sum().backward()
    assert w.grad is not None and scale.grad is not None
    x = w.detach() / scale.detach()
    inside = (x >= -2) & (x < 2)
    assert torch.equal(w.grad, inside.float())  # identity inside the clip range, 0 outside
    level = grid_codes(w, scale).float() - 1.5
    expect = torch.where(inside, level - x, level).sum(1, keepdim=True)  # LSQ gradient
    assert torch.allclose(scale.grad, expect, atol=1e-5)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 7, 1001])
@pytest.mark.parametrize("bits", [2, 4])
def test_pack_unpack_round_trip_bit_exact(n, bits):
    codes = torch.randint(0, 2**bits, (n,), generator=_gen(n), dtype=torch.uint8)
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-n * bits // 8)
    out = unpack_codes(packed, n, bits)
    assert out.dtype == torch.uint8 and torch.equal(out, codes)


def test_pack_layout_and_padding():
    packed = pack_codes(torch.tensor([3, 0, 1], dtype=torch.uint8))
    assert packed.tolist() == [3 + 0 * 4 + 1 * 16]  # low bits first, pad with zero code


def test_packed_weight_dequantizes_to_fake_quant_bit_for_bit():
    w = torch.randn(7, 13, generator=_gen(3))  # 91 weights: an odd length that needs a pad
    s = clip_search_scale(w)
    p = pack_2bit(w, s)
    assert p.packed.numel() == 23
    assert torch.equal(p.dequantize(), fake_quant_2bit(w, s))
    assert torch.equal(p.codes(), grid_codes(w, s))


def test_q2k_beats_per_tensor_on_heavy_tailed_weights():
    w = torch.distributions.StudentT(2.0).sample((64, 256))  # heavy tails
    q2k = q2k_quantize(w).dequantize()
    err = (q2k - w).pow(2).mean()
    for clip in ("maxabs", "mse"):
        assert err < (ptq_2bit(w, granularity="tensor", clip=clip) - w).pow(2).mean()


def test_q2k_reconstructs_within_block_range():
    w = torch.randn(3, 100, generator=_gen(4))  # 300 weights -> padded to 512
    q = q2k_quantize(w)
    rec = q.dequantize()
    assert rec.shape == w.shape and q.sub.numel() == 32 and q.d.numel() == 2
    blocks = torch.cat([w.reshape(-1), torch.zeros(212)]).view(-1, 16)
    span = (blocks.amax(1) - blocks.amin(1).clamp(max=0))[:, None].expand(-1, 16)
    err = (torch.cat([rec.reshape(-1), torch.zeros(212)]).view(-1, 16) - blocks).abs()
    assert (err <= span * 0.6).all()  # half a step plus 4-bit scale rounding


def test_ptq_channel_mse_beats_tensor_maxabs():
    w = torch.randn(16, 64, generator=_gen(5)) * torch.linspace(0.1, 3, 16)[:, None]
    e = lambda **kw: float((ptq_2bit(w, **kw) - w).pow(2).mean())  # noqa: E731
    assert e(granularity="channel", clip="mse") < e(granularity="channel", clip="maxabs")
    assert e(granularity="channel", clip="maxabs") < e(granularity="tensor", clip="maxabs")


def _tiny_lm(seed=0):
    torch.manual_seed(seed)
    return ByteLM(LMConfig(**TINY, kv_share=0.5))


def test_qat_bytelm_forward_backward():
    model = quantize_model_qat(_tiny_lm())
    assert not any(type(m) is nn.Linear for m in model.modules())
    qat = [m for m in model.modules() if isinstance(m, QATLinear)]
    assert len(qat) == 2 * 4 + 2 * 3 - 2  # second layer shares K/V: no k, v
    assert type(model.embed) is nn.Embedding  # excluded by default
    idx = torch.randint(0, 256, (2, 8), generator=_gen())
    logits = model(idx)
    assert logits.shape == (2, 8, 256) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits.reshape(-1, 256), idx.reshape(-1)).backward()
    for m in qat:
        assert m.weight.grad is not None and m.scale.grad is not None
        assert m.scale.grad.abs().sum() > 0


def test_qat_training_steps_lower_the_loss_and_move_the_scale():
    model = quantize_model_qat(_tiny_lm(1))
    idx = torch.randint(0, 256, (4, 12), generator=_gen(2))
    scale0 = model.layers[0].mlp.up.scale.detach().clone()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss():
        logits = model(idx[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 256), idx[:, 1:].reshape(-1))

    first = loss().item()
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < first
    assert not torch.equal(model.layers[0].mlp.up.scale, scale0)


def test_qat_embeddings_when_asked_quantize_the_tied_head():
    model = quantize_model_qat(_tiny_lm(), embeddings=True)
    raw = model.embed.parametrizations.weight.original
    p = quantize_embedding_4bit(raw)
    assert torch.equal(model.embed.weight, p.dequantize())  # tied uses see the 4-bit table
    idx = torch.randint(0, 256, (1, 6), generator=_gen())
    model(idx).sum().backward()
    assert raw.grad is not None


def test_size_report_bits_per_weight_exact():
    model = quantize_model_qat(_tiny_lm())
    rep = size_report(model)
    qat = [m for m in model.modules() if isinstance(m, QATLinear)]
    n = sum(m.weight.numel() for m in qat)
    code = sum(-(-m.weight.numel() // 4) for m in qat)
    scale = sum(4 * m.out_features for m in qat)  # fp32 scales
    assert (rep.n_quantized, rep.code_bytes, rep.scale_bytes) == (n, code, scale)
    assert Fraction(rep.bits_per_weight).limit_denominator(10**9) == Fraction(8 * (code + scale), n)
    others = sum(p.numel() for name, p in model.named_parameters() if "scale" not in name) - n
    assert rep.other_bytes == 4 * others
    # one layer: 2 bits + 32 / in_features
    lin = QATLinear.from_linear(nn.Linear(64, 8))
    assert lin.pack().bits_per_weight == 2 + 32 / 64


def test_q2k_bits_per_weight_exact():
    q = q2k_quantize(torch.randn(1024))
    assert q.nbytes == 4 * 84 and q.bits_per_weight == 2.625


def test_embedding_4bit_error_bound_and_size():
    w = torch.randn(256, 16, generator=_gen(6))
    p = quantize_embedding_4bit(w)
    assert (p.codes() >= 1).all() and (p.codes() <= 15).all()
    assert ((p.dequantize() - w).abs() <= p.scale / 2 * (1 + 1e-5)).all()
    assert p.bits_per_weight == 4 + 32 / 16
    assert torch.equal(RowFakeQuant(4)(w), p.dequantize())


def test_kv_int8_error_bound_per_head():
    x = torch.randn(2, 3, 9, 8, generator=_gen(7)) * torch.tensor([0.1, 1.0, 10.0])[:, None, None]
    codes, scale, zero_point = quantize(x, 8, axis=1)  # one scale per KV head
    assert zero_point == 0
    assert codes.dtype == torch.int8 and scale.shape == (1, 3, 1, 1)
    assert codes.abs().max() == 127
    err = (dequantize(codes, scale) - x).abs()
    assert (err <= scale / 2 * (1 + 1e-5)).all()
    assert codes.nbytes * 4 == x.nbytes


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: pack_codes(torch.tensor([4], dtype=torch.uint8)), "< 4"),
        (lambda: pack_codes(torch.tensor([1])), "uint8"),
        (lambda: pack_codes(torch.tensor([1], dtype=torch.uint8), 3), "bits"),
        (lambda: unpack_codes(torch.zeros(2, dtype=torch.uint8), 9), "do not fit"),
        (lambda: ptq_2bit(torch.randn(3, 3), granularity="row"), "granularity"),
        (lambda: ptq_2bit(torch.randn(3, 3), clip="p99"), "clip"),
        (lambda: clip_search_scale(torch.arange(4)), "floating"),
        (lambda: quantize_model_qat(nn.Sequential(nn.ReLU())), "no nn.Linear"),
        (lambda: size_report(nn.Linear(2, 2)), "quantize_model_qat"),
        (lambda: quantize(torch.randn(2, 3), 8, axis=3), "dims"),
        (lambda: quantize_embedding_4bit(torch.randn(2, 3, 4)), r"\(V, C\)"),
        (lambda: RowFakeQuant(1), "bits"),
        (lambda: QATLinear.from_linear(nn.Conv1d(2, 2, 1)), "nn.Linear"),
    ],
)
def test_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
