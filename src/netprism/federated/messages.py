"""Checks of what a federated client sends: arrays, example counts, and their weight cap.

A client is untrusted: its reply may hold no arrays, the wrong number of them, strings or
objects instead of floats, bytes that are no ``.npy`` array, or a negative, zero, fractional
or absurd ``num_examples``.  Every function here returns the reason a reply is refused (or
``None`` when it is fine) instead of raising, so the server can log the reason, record it
and go on with the other clients.  Once updates are accepted, :func:`cap_weights` bounds
every client's weight in FedAvg's mean by ``factor`` times the median example count of the
round (a client claiming ``10**12`` examples cannot decide the mean alone); the robust
aggregators (``median``, ``trimmed_mean`` in :mod:`netprism.federated.aggregate`) remain the
defence against poisoned *values*.
"""

from __future__ import annotations

import io
import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# Above 2**53 an integer count is no longer exact as a float64 weight.
MAX_EXAMPLES = 2**53
DEFAULT_MAX_WEIGHT_FACTOR = 10.0
ARRAYS_PER_KIND = {"full": 1, "tofu": 4}  # an update (P,) / a proxy set [x, labels, alpha, scale]


@dataclass(eq=False)
class Reply:
    """One client's fit reply as the server read it: an update, or why it was refused."""

    cid: str
    name: str | None = None
    update: torch.Tensor | None = None
    reason: str | None = None
    num_examples: int = 0
    nbytes: int = 0


def short(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (client-chosen text in a log line)."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not escape either
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode_tensor(raw: object) -> np.ndarray | str:
    """The array in the ``.npy`` bytes ``raw``, or why it is refused.

    The header is read first; the array is built only when it is a floating-point dtype
    (no objects, strings or booleans; never a pickle) and the data bytes present match its
    shape exactly, so a header cannot make the server allocate what the message did not
    carry.  The result is a copy (as large as the message).

    Examples
    --------
    >>> buf = io.BytesIO(); np.save(buf, np.arange(3.0)); decode_tensor(buf.getvalue())
    array([0., 1., 2.])
    >>> buf = io.BytesIO(); np.save(buf, np.array(["a"])); decode_tensor(buf.getvalue())
    'dtype <U1 is not a floating-point type'
    >>> decode_tensor(b"")
    'not a .npy array (EOF: reading magic string, expected 8 bytes got 0)'
    """
    if not isinstance(raw, bytes | bytearray):
        return f"a tensor of type {type(raw).__name__}, expected bytes"
    buf = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            return f"unsupported .npy format version {version}"
    except Exception as err:  # numpy's header parser raises many types (tokenize.TokenError)
        return f"not a .npy array ({(str(err).strip() or type(err).__name__)[:200]})"
    if dtype.kind != "f":
        return f"dtype {dtype} is not a floating-point type"
    want = math.prod(shape) * dtype.itemsize
    got = len(raw) - buf.tell()
    if got != want:
        return f"header declares shape {shape} ({want} bytes of {dtype}), message holds {got}"
    flat = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=buf.tell())
    return flat.reshape(shape, order="F" if fortran else "C").copy()


def decode_tensors(tensors: object) -> list[np.ndarray] | str:
    """Every array of a Flower ``Parameters.tensors`` list, or why one is refused."""
    if not isinstance(tensors, list | tuple):
        return f"parameters are {type(tensors).__name__}, expected a list of tensors"
    arrays = []
    for i, raw in enumerate(tensors):
        got = decode_tensor(raw)
        if isinstance(got, str):
            return f"array {i}: {got}"
        arrays.append(got)
    return arrays


def arrays_problem(arrays: object, kind: str, max_proxy: int | None = None) -> str | None:
    """Why ``arrays`` cannot be a client's message in a ``kind`` round, or ``None``.

    A ``"full"`` round needs one array, a ``"tofu"`` round four (a proxy set, at most
    ``max_proxy`` samples when given), all numpy arrays of a floating-point dtype.  Shapes
    and finiteness are checked where the message is read (the proxy set) or screened.

    Examples
    --------
    >>> arrays_problem([], "full")
    'no arrays, expected 1 for a "full" round'
    >>> arrays_problem([np.array([True])], "full")
    'array 0 has dtype bool, expected a floating-point type'
    >>> arrays_problem([np.zeros(3)], "full") is None
    True
    """
    if not isinstance(arrays, list | tuple):
        return f"arrays are {type(arrays).__name__}, expected a list of numpy arrays"
    want = ARRAYS_PER_KIND[kind]
    if len(arrays) != want:
        count = "no arrays" if len(arrays) == 0 else f"{len(arrays)} arrays"
        return f'{count}, expected {want} for a "{kind}" round'
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray):
            return f"array {i} is a {type(a).__name__}, expected a numpy array"
        if a.dtype.kind != "f":
            return f"array {i} has dtype {a.dtype}, expected a floating-point type"
    if kind == "tofu" and max_proxy is not None:
        n = arrays[0].shape[0] if arrays[0].ndim else 0
        if n > max_proxy:
            return f"proxy set of {n} samples exceeds max_proxy {max_proxy}"
    return None


def num_examples_problem(n: object) -> str | None:
    """Why ``n`` is no valid example count (an int in ``[1, MAX_EXAMPLES]``), or ``None``.

    Examples
    --------
    >>> num_examples_problem(-5)
    'num_examples -5 must be at least 1'
    >>> num_examples_problem(2.5)
    'num_examples 2.5 is a float, expected an int'
    >>> num_examples_problem(10**12) is None
    True
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        return f"num_examples {short(n)} is a {type(n).__name__}, expected an int"
    if n < 1:
        return f"num_examples {n} must be at least 1"
    if n > MAX_EXAMPLES:
        return f"num_examples {n} exceeds {MAX_EXAMPLES} (2**53)"
    return None


def check_weight_factor(factor: float) -> float:
    """``factor`` as a weight cap factor: a number >= 1 (``inf``: no cap), else ValueError."""
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor >= 1:
        raise ValueError(f"max_weight_factor must be a number >= 1 (inf: no cap), got {factor!r}")
    return float(factor)


def weight_cap(counts: Sequence[int], factor: float) -> float:
    """``factor`` times the lower median of ``counts`` (the accepted clients' example counts).

    While at least half of the counts are honest, the *lower* median is no larger than the
    largest honest count; unlike the midpoint of two counts, one inflated count of two
    cannot raise it.

    Examples
    --------
    >>> weight_cap([100, 10**12], 10.0)
    1000.0
    """
    if not counts:
        raise ValueError("weight_cap needs at least one example count, got none")
    return check_weight_factor(factor) * float(statistics.median_low(counts))


def cap_weights(counts: Sequence[int], factor: float) -> tuple[list[float], dict[int, str]]:
    """FedAvg weights ``min(n_c, cap)`` (see :func:`weight_cap`) and why each capped one was.

    Examples
    --------
    >>> cap_weights([100, 120, 10**12], 10.0)
    ([100.0, 120.0, 1200.0], {2: 'num_examples 1000000000000 capped to 1200 (10 x median 120)'})
    """
    cap = weight_cap(counts, factor)
    weights = [min(float(n), cap) for n in counts]
    median = statistics.median_low(counts)
    capped = {
        c: f"num_examples {n} capped to {cap:.0f} ({factor:g} x median {median})"
        for c, n in enumerate(counts)
        if float(n) > cap
    }
    return weights, capped


def declared_name(metrics: object) -> str | None:
    """The name a client gives itself in its metrics (``"client"``), cut to 64 characters.

    Only a label for logs and summaries: the server identifies clients by their Flower id.
    """
    if not isinstance(metrics, dict):
        return None
    name = metrics.get("client")
    return name[:64] if isinstance(name, str) else None


def raw_bytes(tensors: object) -> int:
    """Bytes of the tensors of a reply that could not be decoded (0 if none are bytes)."""
    if not isinstance(tensors, list | tuple):
        return 0
    return sum(len(t) for t in tensors if isinstance(t, bytes | bytearray))


def failure_reasons(failures: Sequence[object], server_round: int = 0) -> dict[str, str]:
    """Why each of Flower's ``failures`` failed: key -> reason, each logged.

    A failure is an exception (a client that raised, disconnected or timed out; Flower gives
    no client id, the key is ``"failure i"``) or a ``(client, FitRes)`` pair whose status
    is not OK (the key is the client id).
    """
    out: dict[str, str] = {}
    for i, item in enumerate(failures):
        key = f"failure {i}"
        try:
            if isinstance(item, BaseException):
                text = str(item)
                why = type(item).__name__ + (f": {text[:200]}" if text else " (no message)")
            else:
                proxy, res = item if isinstance(item, tuple) and len(item) == 2 else (None, item)
                key = str(getattr(proxy, "cid", key))
                status = getattr(res, "status", None)
                why = f"status {short(getattr(status, 'code', None))}: "
                why += short(getattr(status, "message", None), 200)
        except Exception as err:  # whatever a failure holds, the server goes on
            why = f"unreadable failure ({type(err).__name__})"
        logger.warning("round %d: client %s failed: %s", server_round, key, why)
        out[key] = why
    return out
