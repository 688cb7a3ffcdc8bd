"""TOFUStrategy.aggregate_fit on hand-made Flower replies: every malformed one is rejected with
a reason naming the client, the round goes on with the others, example counts are capped."""

import io
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("flwr")

from flwr.common import Code, FitRes, Parameters, Status  # noqa: E402

from netprism.federated.aggregate import weighted_average  # noqa: E402
from netprism.federated.flower import TOFUStrategy  # noqa: E402
from netprism.federated.messages import MAX_EXAMPLES, cap_weights, decode_tensor  # noqa: E402
from netprism.federated.tofu import ProxySet, decode_update  # noqa: E402

P = 4 * 3 + 3  # nn.Linear(4, 3)
OK = Status(code=Code.OK, message="Success")


def _strategy(schedule=("full",), **kwargs) -> TOFUStrategy:
    torch.manual_seed(0)
    return TOFUStrategy(nn.Linear(4, 3), list(schedule), input_shape=(4,), num_classes=3, **kwargs)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)  # object arrays too: a hostile client may send them
    return buf.getvalue()


def _res(arrays, n=10, metrics=None) -> FitRes:
    tensors = [a if isinstance(a, bytes | str) else _npy(a) for a in arrays]
    params = Parameters(tensors=tensors, tensor_type="numpy.ndarray")
    return FitRes(status=OK, parameters=params, num_examples=n, metrics=metrics or {})


def _honest(value=0.01) -> np.ndarray:
    return np.full(P, value, dtype=np.float32)


def _proxy(n=2, x_shape=None, k=3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.normal(size=x_shape or (n, 4)).astype(np.float32),
        rng.normal(size=(n, k)).astype(np.float32),
        np.ones(n, dtype=np.float32),
        np.array([0.05], dtype=np.float32),
    ]


def _run(strategy, replies, server_round=1, failures=()):
    results = [(SimpleNamespace(cid=cid), res) for cid, res in replies.items()]
    params, metrics = strategy.aggregate_fit(server_round, results, list(failures))
    return strategy.history[-1], params


BAD_FULL = {
    "empty": ([], 10, "no arrays"),
    "two arrays": ([_honest(), _honest()], 10, "2 arrays, expected 1"),
    "string": ([np.array(["a"] * P)], 10, "dtype <U1"),
    "object": ([np.array([1.0] * P, dtype=object)], 10, "dtype object"),
    "bool": ([np.ones(P, dtype=bool)], 10, "dtype bool"),
    "int": ([np.ones(P, dtype=np.int64)], 10, "dtype int64"),
    "complex": ([np.ones(P, dtype=np.complex64)], 10, "dtype complex64"),
    "garbage bytes": ([b"not an npy array"], 10, "not a .npy array"),
    "truncated": ([_npy(_honest())[:-4]], 10, "message holds"),
    "text tensor": (["a string"], 10, "expected bytes"),
    "wrong shape": ([np.zeros(P + 1, dtype=np.float32)], 10, "wrong shape (16,)"),
    "2-D": ([np.zeros((1, P), dtype=np.float32)], 10, "wrong shape (1, 15)"),
    "nan": ([np.full(P, np.nan, dtype=np.float32)], 10, "non-finite"),
    "inf": ([np.full(P, np.inf, dtype=np.float32)], 10, "non-finite"),
    "overflow": ([np.full(P, 1e300)], 10, "non-finite"),
    "huge norm": ([np.full(P, 1e4, dtype=np.float32)], 10, "exceeds max_norm"),
    "negative n": ([_honest()], -5, "num_examples -5 must be at least 1"),
    "zero n": ([_honest()], 0, "num_examples 0 must be at least 1"),
    "float n": ([_honest()], 2.5, "is a float, expected an int"),
    "bool n": ([_honest()], True, "is a bool"),
    "none n": ([_honest()], None, "is a NoneType"),
    "absurd n": ([_honest()], MAX_EXAMPLES + 1, "exceeds"),
}


@pytest.mark.parametrize("case", list(BAD_FULL))
def test_malformed_full_reply_is_rejected_and_the_round_goes_on(case):
    arrays, n, reason = BAD_FULL[case]
    strategy = _strategy()
    start = strategy.weights.clone()
    record, params = _run(strategy, {"good": _res([_honest()], 10), "bad": _res(arrays, n)})
    assert reason in record["rejected"]["bad"], record["rejected"]
    assert record["kept"] == ["good"] and record["skipped"] is None
    assert torch.equal(strategy.weights, start + torch.from_numpy(_honest()))
    assert params is not None


BAD_TOFU = {
    "three arrays": (_proxy()[:3], "3 arrays, expected 4"),
    "inconsistent n": (_proxy(x_shape=(3, 4)), "proxy label_logits must have shape (3, 3)"),
    "wrong input": (_proxy(x_shape=(2, 5)), "proxy x must have shape (2, 4)"),
    "wrong classes": (_proxy(k=4), "proxy label_logits"),
    "no samples": (_proxy(n=0), "N >= 1"),
    "too many": (_proxy(n=9), "exceeds max_proxy 8"),
    "nan": ([*_proxy()[:3], np.array([np.nan], dtype=np.float32)], "NaN/inf"),
    "huge scale": ([*_proxy()[:3], np.array([1e9], dtype=np.float32)], "exceeds max_norm"),
    "string": ([*_proxy()[:3], np.array(["1.0"])], "dtype <U3"),
}


@pytest.mark.parametrize("case", list(BAD_TOFU))
def test_malformed_proxy_set_is_rejected(case):
    arrays, reason = BAD_TOFU[case]
    strategy = _strategy(("tofu",), max_proxy=8)
    start = strategy.weights.clone()
    record, _ = _run(strategy, {"good": _res(_proxy()), "bad": _res(arrays)})
    assert reason in record["rejected"]["bad"], record["rejected"]
    assert record["kept"] == ["good"]
    proxy = ProxySet.from_arrays(_proxy(), (4,), 3)
    assert torch.allclose(strategy.weights, start + decode_update(strategy.model, start, proxy))


def test_example_counts_are_capped_at_factor_times_lower_median():
    strategy = _strategy()
    start = strategy.weights.clone()
    replies = {"a": _res([_honest(0.01)], 100), "b": _res([_honest(-0.02)], 10**12)}
    record, _ = _run(strategy, replies)
    assert record["weights"] == {"a": 100.0, "b": 1000.0}
    assert record["capped"] == {"b": "num_examples 1000000000000 capped to 1000 (10 x median 100)"}
    want = weighted_average([torch.full((P,), 0.01), torch.full((P,), -0.02)], [100, 1000])
    assert torch.allclose(strategy.weights - start, want)
    # without the cap the inflated client alone decides the mean
    uncapped = _strategy(max_weight_factor=math.inf)
    _run(uncapped, replies)
    assert torch.allclose(uncapped.weights - start, torch.full((P,), -0.02), atol=1e-8)


def test_cap_weights_leaves_honest_counts_alone():
    assert cap_weights([30, 40, 50], 10.0) == ([30.0, 40.0, 50.0], {})
    with pytest.raises(ValueError, match="max_weight_factor must be a number >= 1"):
        cap_weights([1], 0.5)


@pytest.mark.parametrize("factor", [0.5, float("nan"), "10", True])
def test_strategy_refuses_bad_settings(factor):
    with pytest.raises(ValueError, match="max_weight_factor"):
        _strategy(max_weight_factor=factor)
    with pytest.raises(ValueError, match="min_accepted must be an int >= 1, got 0"):
        _strategy(min_accepted=0)


def test_round_is_skipped_when_too_few_updates_remain():
    strategy = _strategy(min_accepted=2)
    start = strategy.weights.clone()
    record, params = _run(strategy, {"good": _res([_honest()]), "bad": _res([], 10)})
    assert record["skipped"] == "1 accepted updates, fewer than min_accepted 2"
    assert torch.equal(strategy.weights, start) and params is not None
    record, _ = _run(_strategy(), {"bad": _res([], 10)})  # none left at the default
    assert record["skipped"].startswith("0 accepted") and record["kept"] == []


def test_failures_and_unreadable_replies_do_not_crash_the_server():
    class Hostile:
        @property
        def metrics(self):
            raise RuntimeError("boom")

    strategy = _strategy()
    failed = FitRes(
        status=Status(code=Code.FIT_NOT_IMPLEMENTED, message="no"),
        parameters=Parameters(tensors=[], tensor_type=""),
        num_examples=0,
        metrics={},
    )
    failures = [ConnectionError("lost"), (SimpleNamespace(cid="x"), failed), RuntimeError()]
    replies = {"good": _res([_honest()], metrics={"client": "me" * 100}), "odd": Hostile()}
    results = [(SimpleNamespace(cid=c), r) for c, r in replies.items()] + ["not a pair"]
    strategy.aggregate_fit(1, results, failures)
    record = strategy.history[-1]
    assert record["kept"] == ["good"] and record["names"] == {"good": "me" * 32}
    assert (
        "internal error while reading the reply: RuntimeError('boom')" in record["rejected"]["odd"]
    )
    assert "result 2" in record["rejected"]
    assert record["failures"] == 3
    assert record["failure_reasons"] == {
        "failure 0": "ConnectionError: lost",
        "x": "status <Code.FIT_NOT_IMPLEMENTED: 3>: 'no'",
        "failure 2": "RuntimeError (no message)",
    }


def test_decode_tensor_never_allocates_what_the_header_claims():
    buf = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**13,)}  # 80 TB declared
    np.lib.format.write_array_header_1_0(buf, header)
    got = decode_tensor(buf.getvalue() + bytes(8))
    assert isinstance(got, str) and "message holds 8" in got


@pytest.mark.parametrize(
    "flag",
    [["--max-weight-factor", "0.5"], ["--max-weight-factor", "nan"], ["--min-accepted", "0"]],
)
def test_server_cli_refuses_bad_cap_settings_in_one_line(flag, capsys):
    from netprism.federated.flower import main

    with pytest.raises(SystemExit) as info:
        main(["server", *flag])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert flag[0] in err and flag[1] in err and "Traceback" not in err
