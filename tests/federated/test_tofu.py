"""TOFU encoding/decoding, the byte-accounting formula and the hybrid schedule."""

import numpy as np
import pytest
import torch

from netprism.federated.gradients import cosine, flat_params, weighted_gradient
from netprism.federated.tofu import (
    ProxySet,
    compression_ratio,
    decode_update,
    encode_update,
    fedavg_bytes,
    hybrid_schedule,
    tofu_bytes,
    tofu_floats,
)
from netprism.models import create_model


def _mlp(hidden=(32,), shape=(1, 8, 8)):
    torch.manual_seed(0)
    return create_model("mlp", input_shape=shape, num_classes=10, hidden=hidden)


def test_byte_accounting_formula():
    model = _mlp()
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 2410
    assert tofu_floats(8, 64, 10) == 8 * (64 + 10 + 1) + 1 == 601
    assert compression_ratio(n_params, 8, 64, 10) == pytest.approx(4.0, abs=0.02)
    assert fedavg_bytes(n_params) == 4 * 2410
    # MNIST-1D: 40-100-100-10 MLP, N = 16 -> 18.6x (the calibration's number)
    m1d = _mlp(hidden=(100, 100), shape=(40,))
    p1d = sum(p.numel() for p in m1d.parameters())
    assert p1d == 15210
    assert compression_ratio(p1d, 16, 40, 10) == pytest.approx(18.6, abs=0.05)
    # The wire format holds exactly the counted bytes.
    proxy = ProxySet(torch.rand(8, 1, 8, 8), torch.randn(8, 10), torch.ones(8), 1.5)
    assert proxy.nbytes() == tofu_bytes(8, 64, 10) == 4 * 601
    assert sum(a.nbytes for a in proxy.to_arrays()) == 2404


def test_encode_then_decode_is_deterministic_and_aligned():
    model = _mlp()
    w = flat_params(model)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    update = -0.1 * weighted_gradient(model, w, x, y)
    proxy, cos = encode_update(
        model, w, update, input_shape=(1, 8, 8), num_classes=10, n_proxy=8, steps=60
    )
    assert cos > 0.5
    # Round trip through the wire format, decoded "on the server" in a fresh model.
    wire = ProxySet.from_arrays(proxy.to_arrays(), (1, 8, 8), 10)
    other = _mlp()
    a, b = decode_update(model, w, proxy), decode_update(other, w.clone(), wire)
    assert float((a - b).abs().max()) <= 1e-6
    assert float(a.norm()) == pytest.approx(float(update.norm()), rel=1e-5)
    assert cosine(a, update) == pytest.approx(cos, abs=1e-6)


def test_more_proxies_fit_better():
    model = _mlp()
    w = flat_params(model)
    update = -0.1 * weighted_gradient(model, w, torch.rand(32, 1, 8, 8), torch.arange(32) % 10)
    cos = [
        encode_update(model, w, update, input_shape=(1, 8, 8), num_classes=10, n_proxy=n, steps=60)[
            1
        ]
        for n in (1, 32)
    ]
    assert cos[0] < cos[1]


def test_bad_proxy_sets_and_schedules_raise():
    good = ProxySet(torch.rand(2, 1, 8, 8), torch.randn(2, 10), torch.ones(2), 1.0).to_arrays()
    with pytest.raises(ValueError, match="proxy x must have shape"):
        ProxySet.from_arrays([good[0][:, :, :4], *good[1:]], (1, 8, 8), 10)
    bad = [a.copy() for a in good]
    bad[2][0] = np.inf
    with pytest.raises(ValueError, match="NaN/inf"):
        ProxySet.from_arrays(bad, (1, 8, 8), 10)
    with pytest.raises(ValueError, match="4 arrays"):
        ProxySet.from_arrays(good[:3], (1, 8, 8), 10)
    assert hybrid_schedule(5, 2) == ["tofu", "tofu", "tofu", "full", "full"]
    with pytest.raises(ValueError, match="0 <= n_full <= n_rounds"):
        hybrid_schedule(3, 4)
