"""Interleaved local/global attention: exact KV-byte ratio with ring buffers, cached decoding
(ring wrap, prefill chunks) equals the full forward, the window band via gradients, NoPE
permutation invariance, the all-global baseline, longer-than-training inputs, training."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from netprism.lm.local_global import (
    LocalGlobalCache,
    LocalGlobalConfig,
    LocalGlobalLM,
    all_global_baseline,
    band_mask,
    kv_bytes_fraction,
    kv_bytes_ratio,
)
from netprism.lm.train import evaluate_bpb, train_lm

TINY = {"context": 16, "d_model": 16, "n_heads": 2, "n_kv_heads": 1}


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return LocalGlobalLM(LocalGlobalConfig(**{**TINY, **kw})).eval()


@pytest.mark.parametrize("T", [256, 1024, 4096, 16384])
@pytest.mark.parametrize("n_layers", [4, 8])
def test_kv_bytes_ratio_formula_exact(T, n_layers):
    cfg = LocalGlobalConfig(n_layers=n_layers, d_model=16, n_heads=2, n_kv_heads=1, window=64)
    expected = Fraction(1, 4) + Fraction(3, 4) * Fraction(min(64, T), T)
    assert kv_bytes_fraction(cfg, T) == expected
    assert kv_bytes_ratio(cfg, T) == float(expected)
    assert kv_bytes_ratio(all_global_baseline(cfg), T) == 1.0


def test_kv_ratio_table_values():
    cfg = LocalGlobalConfig(n_layers=4, d_model=16, n_heads=2, n_kv_heads=1, window=64)
    assert round(kv_bytes_ratio(cfg, 4096), 3) == 0.262  # the paper notes' example
    assert kv_bytes_ratio(cfg, 32) == 1.0  # T < W: local rings hold all T slots
    cache = LocalGlobalCache(cfg, 2, max_len=300)
    assert cache.slots == [64, 64, 64, 300]
    assert cache.nbytes() == sum(t.nbytes for t in cache.k + cache.v)


@pytest.mark.parametrize(
    "kw",
    [
        {"n_layers": 4, "window": 4},
        {"n_layers": 8, "window": 5, "local_per_global": 1},
        {"n_layers": 4, "window": None, "nope_global": False},
    ],
)
def test_cached_decoding_equals_full_forward(kw):
    model = _model(max_context=48, **kw)
    idx = torch.randint(0, 256, (2, 45), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(idx)  # 45 > training context 16 and > W: the ring wraps many times
        cache = model.new_cache(2)
        parts = [model(idx[:, :7], cache=cache)]  # prefill chunk longer than W
        for t in range(7, 30):
            parts.append(model(idx[:, t : t + 1], cache=cache))
        parts.append(model(idx[:, 30:33], cache=cache))  # a short chunk over a wrapped ring
        parts.append(model(idx[:, 33:], cache=cache))  # a long chunk
    assert cache.position == 45
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5, rtol=0)


def test_layer_pattern_and_nope():
    model = _model(n_layers=8, window=4)
    assert [layer.is_global for layer in model.layers] == [False, False, False, True] * 2
    assert [layer.attn.use_rope for layer in model.layers] == [True, True, True, False] * 2
    base = LocalGlobalLM(all_global_baseline(model.config))
    assert all(layer.is_global and layer.attn.use_rope for layer in base.layers)
    missing, unexpected = base.load_state_dict(model.state_dict())  # strict: same parameters
    assert not missing and not unexpected


@pytest.mark.parametrize("W", [1, 3, 6])
def test_window_band_by_gradients(W):
    model = _model(n_layers=1, window=W)  # one local layer
    layer = model.layers[0]
    assert not layer.is_global
    x = torch.randn(1, 12, 16, requires_grad=True)
    p = 9
    out = layer(x, torch.arange(12), (model.rope_cos, model.rope_sin))
    out[0, p].sum().backward()
    influence = x.grad[0].abs().sum(-1)  # (T,)
    for j in range(12):
        if p - W < j <= p:
            assert influence[j] > 0, j
        else:
            assert influence[j] == 0, j
    assert band_mask(torch.arange(12), torch.arange(12), W).sum(1)[p] == W


def test_nope_global_layer_is_permutation_invariant_over_the_prefix():
    nope = _model(n_layers=1, window=None, nope_global=True)
    rope = _model(n_layers=1, window=None, nope_global=False)
    idx = torch.randint(0, 256, (1, 10), generator=torch.Generator().manual_seed(3))
    perm = torch.cat(
        [torch.randperm(9, generator=torch.Generator().manual_seed(4)), torch.tensor([9])]
    )
    with torch.no_grad():
        a, b = nope(idx)[:, -1], nope(idx[:, perm])[:, -1]
        assert torch.allclose(a, b, atol=1e-5)  # the last byte sees a set, not a sequence
        assert not torch.allclose(rope(idx)[:, -1], rope(idx[:, perm])[:, -1], atol=1e-5)


def test_longer_than_training_context_and_errors():
    model = _model(n_layers=4, window=4, max_context=64)
    data = np.frombuffer(b"the quick brown fox. " * 40, dtype=np.uint8).copy()
    assert 7 < evaluate_bpb(model, data, 64, batches=1, seed=0) < 9  # 4x the context of 16
    with pytest.raises(ValueError, match="longer than the model's context of 64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    cache = model.new_cache(1, max_len=8)
    model(torch.zeros(1, 6, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="position 6 has room for 8"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="batch size 1"):
        model(torch.zeros(2, 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="window must be"):
        LocalGlobalConfig(window=0)
    with pytest.raises(ValueError, match="local_per_global"):
        LocalGlobalConfig(local_per_global=-1)


def test_trains_with_train_lm():
    data = np.frombuffer(b"abcabdabcabe hello world. " * 20, dtype=np.uint8).copy()
    model = _model(n_layers=4, window=4, d_model=32)
    hist = train_lm(model, data, steps=30, batch_size=8, context=16, lr=3e-3, seed=0)
    assert np.mean(hist.train_loss[-5:]) < np.mean(hist.train_loss[:5]) - 0.5
