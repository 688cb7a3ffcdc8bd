import pytest
import torch

from netprism.lm.kv_cache import Int8KVCache, KVCache, quantize_per_vector
from netprism.lm.model import ByteLM, LMConfig

CFG = LMConfig(context=32, n_layers=8, d_model=32, n_heads=4, n_kv_heads=2, kv_share=3 / 8)


def _model(cfg=CFG):
    torch.manual_seed(0)
    return ByteLM(cfg).eval()


def test_int8_cache_bytes_are_hd_plus_4_over_4hd_of_fp32():
    model = _model()
    fp, q = model.new_cache(3), model.new_cache(3, kv_bits=8)
    assert isinstance(q, Int8KVCache) and type(fp) is KVCache
    hd = CFG.hd
    assert q.nbytes() * 4 * hd == fp.nbytes() * (hd + 4)  # exact: codes + one fp32 scale
    assert all(t.dtype == torch.int8 for t in q.k + q.v)


def test_int8_prefill_equals_byte_by_byte_decoding_and_is_close_to_fp32():
    model = _model()
    idx = torch.randint(0, 256, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(idx)
        once = model(idx, cache=model.new_cache(2, kv_bits=8))
        cache = model.new_cache(2, kv_bits=8)
        steps = torch.cat([model(idx[:, t : t + 1], cache=cache) for t in range(20)], dim=1)
    torch.testing.assert_close(steps, once, atol=1e-5, rtol=0)  # per-token scales: no drift
    err = float((once - full).abs().max())
    assert 0 < err < 0.05 * float(full.abs().max())


def test_quantize_per_vector_round_trip_bound():
    x = torch.randn(4, 3, 7, 16)
    q, s = quantize_per_vector(x)
    assert q.dtype == torch.int8 and s.shape == (4, 3, 7, 1)
    assert bool(((q.float() * s - x).abs() <= s / 2 + 1e-7).all())


def test_generate_with_int8_cache_and_bad_bits():
    model = _model()
    prompt = torch.tensor([[1, 2, 3]])
    out = model.generate(prompt, 5, temperature=0, kv_bits=8)
    assert out.shape == (1, 8) and torch.equal(out[:, :3], prompt)
    with pytest.raises(ValueError, match="kv_bits must be None"):
        model.new_cache(1, kv_bits=4)
