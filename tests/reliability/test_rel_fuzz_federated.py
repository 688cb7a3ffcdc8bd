"""Hypothesis fuzzing of the federated message path: random client replies -- arrays of random
dtypes, shapes and counts, NaN/inf, garbage or flipped ``.npy`` bytes, random ``num_examples``
(negative, zero, huge, float, bool, text) and garbage metrics -- through
``TOFUStrategy.aggregate_fit``.  It never raises, rejects every malformed reply with a reason
naming the client, and aggregates exactly the valid ones (with capped example counts)."""

import io
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

pytest.importorskip("flwr")

from flwr.common import Code, FitRes, Parameters, Status  # noqa: E402

from netprism.federated.aggregate import AGGREGATORS, aggregate  # noqa: E402
from netprism.federated.flower import TOFUStrategy  # noqa: E402
from netprism.federated.messages import MAX_EXAMPLES, cap_weights, decode_tensor  # noqa: E402
from netprism.federated.tofu import ProxySet, decode_update  # noqa: E402

FUZZ = settings(
    max_examples=60,
    database=None,  # no .hypothesis folder in the work tree; seeds vary per run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
P, MAX_NORM, FAST_S = 15, 1e3, 5.0  # nn.Linear(4, 3)
DTYPES = ["float32"] * 4 + ["float64", "float16", "int64", "uint8", "bool", "complex64"]
DTYPES += ["<U3", "S2", "object"]
SHAPES = [(P,)] * 4 + [(P + 1,), (P - 1,), (0,), (), (1, P), (P, 1)]
VALUES = ["small"] * 4 + ["nan", "inf", "big", "huge"]


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)  # a hostile client may send pickled objects
    return buf.getvalue()


def _array(dtype: str, shape: tuple, values: str, seed: int) -> np.ndarray:
    seed %= 2**32
    base = np.random.default_rng(seed).normal(scale=0.01, size=shape)
    fill = {"nan": np.nan, "inf": -np.inf, "big": 1e5, "huge": 1e300}.get(values)
    if fill is not None and base.size:
        base.flat[seed % base.size] = fill
    with np.errstate(all="ignore"):
        return base.astype(dtype)


arrays = st.builds(
    _array,
    st.sampled_from(DTYPES),
    st.sampled_from(SHAPES),
    st.sampled_from(VALUES),
    st.integers(0, 99),
)
# a tensor: a .npy array, raw garbage, or a .npy array with flipped bytes
tensors = st.one_of(
    arrays.map(_npy),
    arrays.map(_npy),
    arrays.map(_npy),
    st.binary(max_size=80),
    st.tuples(arrays.map(_npy), st.integers(0, 200), st.integers(1, 255)).map(
        lambda t: bytes(b ^ t[2] if i == t[1] % len(t[0]) else b for i, b in enumerate(t[0]))
    ),
)
bad_counts = st.one_of(
    st.integers(-10, 0),
    st.sampled_from([MAX_EXAMPLES + 1, 2**70]),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
# mostly valid counts (so the arrays' checks are reached), some inflated ones (capped)
counts = st.one_of(*[st.integers(1, 1000)] * 5, st.sampled_from([10**12, MAX_EXAMPLES]), bad_counts)
metrics = st.one_of(
    st.none(),
    st.integers(),
    st.dictionaries(
        st.sampled_from(["client", "kind", "cosine", "x"]),
        st.none() | st.integers() | st.floats() | st.text(max_size=80) | st.binary(max_size=8),
    ),
)
good_arrays = st.builds(
    _array, st.sampled_from(["float32", "float64"]), st.just((P,)), st.just("small"), st.integers()
)
good_reply = st.tuples(st.tuples(good_arrays.map(_npy)), st.integers(1, 1000), metrics)
any_reply = st.tuples(
    st.lists(tensors, min_size=1, max_size=1) | st.lists(tensors, max_size=3), counts, metrics
)
replies = st.lists(good_reply | any_reply | any_reply, min_size=1, max_size=6)


def _res(tensor_list, n, meta) -> FitRes:
    params = Parameters(tensors=list(tensor_list), tensor_type="numpy.ndarray")
    return FitRes(
        status=Status(code=Code.OK, message=""), parameters=params, num_examples=n, metrics=meta
    )


def _full_update(tensor_list, n) -> torch.Tensor | None:
    """The oracle: the update a valid full reply carries, or None when it is malformed."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_EXAMPLES:
        return None
    decoded = [decode_tensor(t) for t in tensor_list]
    if len(decoded) != 1 or isinstance(decoded[0], str):
        return None
    a = decoded[0]
    if a.dtype.kind != "f" or a.shape != (P,):
        return None
    with np.errstate(over="ignore"):
        u = torch.from_numpy(a.astype(np.float32))
    if not bool(torch.isfinite(u).all()) or float(u.norm()) > MAX_NORM:
        return None
    return u


def _check(strategy, results, valid, aggregator):
    start = strategy.weights.clone()
    t0 = time.perf_counter()
    strategy.aggregate_fit(1, [(_Proxy(str(c)), r) for c, r in enumerate(results)], [])
    assert time.perf_counter() - t0 < FAST_S
    record = strategy.history[-1]
    good = [c for c, u in enumerate(valid) if u is not None]
    assert record["kept"] == [str(c) for c in good]
    assert sorted(record["rejected"]) == sorted(str(c) for c, u in enumerate(valid) if u is None)
    for reason in record["rejected"].values():
        assert isinstance(reason, str) and reason and "internal error" not in reason
    if not good:
        assert record["skipped"] and torch.equal(strategy.weights, start)
        return
    ns = [results[c].num_examples for c in good]
    weights, _ = cap_weights(ns, 10.0)
    want = start + aggregate([valid[c] for c in good], weights, aggregator)
    assert torch.equal(strategy.weights, want)


class _Proxy:
    def __init__(self, cid: str) -> None:
        self.cid = cid


def _strategy(schedule, aggregator) -> TOFUStrategy:
    torch.manual_seed(0)
    return TOFUStrategy(
        nn.Linear(4, 3),
        schedule,
        input_shape=(4,),
        num_classes=3,
        aggregator=aggregator,
        max_proxy=8,
    )


@FUZZ
@given(batch=replies, aggregator=st.sampled_from(AGGREGATORS))
def test_rel_fuzz_full_round_rejects_malformed_and_aggregates_the_rest(batch, aggregator):
    strategy = _strategy(["full"], aggregator)
    results = [_res(t, n, m) for t, n, m in batch]
    valid = [_full_update(t, n) for t, n, _ in batch]
    _check(strategy, results, valid, aggregator)


@FUZZ
@given(raw=tensors)
def test_rel_fuzz_decode_tensor_agrees_with_numpy(raw):
    got = decode_tensor(raw)
    if isinstance(got, str):
        return
    assert got.dtype.kind == "f" and got.flags.writeable
    ref = np.load(io.BytesIO(raw), allow_pickle=False)
    np.testing.assert_array_equal(got, ref)


# --- TOFU rounds: proxy sets [x (N, 4), label_logits (N, 3), alpha (N,), scale (1,)] ------

MUTATIONS = ["none"] * 4 + [
    "labels_n",
    "x_shape",
    "alpha_shape",
    "scale_shape",
    "nan_x",
    "drop",
    "extra",
    "int_alpha",
    "too_many",
    "huge_scale",
]


def _proxy_arrays(n: int, mutation: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 9 if mutation == "too_many" else n
    x = rng.normal(size=(n, 5 if mutation == "x_shape" else 4)).astype(np.float32)
    logits = rng.normal(size=(n + (mutation == "labels_n"), 3)).astype(np.float32)
    alpha = rng.uniform(0.5, 1.5, size=(n, 2) if mutation == "alpha_shape" else n)
    alpha = alpha.astype(np.int32 if mutation == "int_alpha" else np.float32)
    scale = np.array(
        [1e9 if mutation == "huge_scale" else rng.uniform(0.01, 1.0)]
        * (2 if mutation == "scale_shape" else 1),
        dtype=np.float32,
    )
    if mutation == "nan_x":
        x.flat[0] = np.nan
    out = [x, logits, alpha, scale]
    return out[:3] if mutation == "drop" else out + [scale] if mutation == "extra" else out


good_proxy = st.tuples(st.integers(1, 4), st.just("none"), st.integers(0, 99), st.integers(1, 1000))
any_proxy = st.tuples(st.integers(1, 4), st.sampled_from(MUTATIONS), st.integers(0, 99), counts)
proxies = st.lists(good_proxy | any_proxy, min_size=1, max_size=5)


@settings(FUZZ, max_examples=30)
@given(batch=proxies, aggregator=st.sampled_from(AGGREGATORS))
def test_rel_fuzz_tofu_round_rejects_malformed_proxy_sets(batch, aggregator):
    strategy = _strategy(["tofu"], aggregator)
    start = strategy.weights.clone()
    results, valid = [], []
    for n, mutation, seed, count in batch:
        arrays = _proxy_arrays(n, mutation, seed)
        results.append(_res([_npy(a) for a in arrays], count, {}))
        ok = mutation == "none" and not isinstance(count, bool) and isinstance(count, int)
        ok = ok and 1 <= count <= MAX_EXAMPLES
        proxy = ProxySet.from_arrays(arrays, (4,), 3) if ok else None
        valid.append(decode_update(strategy.model, start, proxy) if proxy is not None else None)
    _check(strategy, results, valid, aggregator)
