"""A restricted unpickler for CIFAR's python-format files: data only, arrays checked.

CIFAR's python files are Python 2 pickles (protocol 2) of dicts, lists, bytes, ints and numpy
arrays.  numpy pickles an array as ``_reconstruct(ndarray, (0,), b"b")`` followed by a
``BUILD`` with the state ``(version, shape, dtype, is_fortran, raw bytes)`` and a dtype as
``dtype("u1", False, True)`` followed by a ``BUILD`` with its state.

:class:`RestrictedUnpickler` admits exactly those globals, and none of them as numpy's own
objects: ``numpy.ndarray`` resolves to an inert token (so ``ndarray(shape, dtype)`` -- an
uninitialised buffer -- or ``ndarray(shape, dtype, buffer, 0, strides)`` -- a zero-stride view
of a few bytes -- cannot be called), ``_reconstruct`` accepts only that token with the shape
``(0,)``, and the states are checked by :class:`_ArrayState` / :class:`_DtypeState`: a plain
numeric dtype, a shape of non-negative ints, and raw bytes of *exactly* ``prod(shape) *
itemsize``.  The array is then a contiguous copy of those bytes.  Every other global raises
:class:`UnsafePickleError` before it is resolved, so a crafted file cannot run code.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from netprism.data.readers.limits import check_budget, resolve_max_bytes

# numpy dtypes an array in a data pickle may have: bool, signed/unsigned ints, floats.
ARRAY_KINDS = frozenset("biuf")
MAX_NDIM = 32


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle referenced a global outside the allow-list (also a ``ValueError``)."""


def _text(value: Any, what: str) -> str:
    """A Python 2 ``str`` (``bytes`` under ``encoding="bytes"``) or a ``str`` as text."""
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, str):
        return value
    raise UnsafePickleError(f"{what} must be a string, got {type(value).__name__}")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What ``_codecs.encode`` is allowed to do: Python 3 pickles of bytes at protocol 2."""
    if encoding not in ("latin1", "latin-1"):  # what pickle writes; no codec lookup
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    if not isinstance(text, str):
        raise UnsafePickleError(f"_codecs.encode expects a str, got {type(text).__name__}")
    return text.encode("latin1")


class _Global:
    """An allowed global: calls ``fn`` (if any); a pickle cannot set its state or attributes
    (``BUILD`` on it is refused) nor use it as a class (``NEWOBJ`` needs a type)."""

    __slots__ = ("_fn", "_name")

    def __init__(self, name: str, fn: Any = None) -> None:
        self._fn = fn
        self._name = name

    def __call__(self, *args: Any) -> Any:
        if self._fn is None:
            raise UnsafePickleError(
                f"refusing to call {self._name}{args!r:.80}: it would make an array of "
                f"uninitialised memory or an arbitrary-stride view; only "
                f"_reconstruct(numpy.ndarray, (0,), b'b') with a checked state rebuilds one"
            )
        return self._fn(*args)

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"refusing to set the state of {self._name}")

    def __repr__(self) -> str:
        return self._name


NDARRAY = _Global("numpy.ndarray")  # only recognised by _reconstruct, never called


class _DtypeState:
    """A pickled ``numpy.dtype(spec, align, copy)``, checked when its state arrives."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        text = _text(spec, "a pickled dtype")
        try:
            dtype = np.dtype(text)
        except TypeError as err:
            raise UnsafePickleError(f"unknown pickled dtype {text!r}: {err}") from err
        if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype:
            raise UnsafePickleError(
                f"pickled dtype {text!r} is not a plain bool, integer or float type"
            )
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"numpy.dtype({self.dtype.str!r})"

    def __setstate__(self, state: Any) -> None:
        """numpy's dtype state ``(3, byteorder, None, None, None, -1, -1, 0)``; only the byte
        order may vary, and only to a valid one."""
        if not isinstance(state, tuple) or len(state) != 8 or state[0] not in (3, 4):
            raise UnsafePickleError(f"unexpected pickled dtype state {state!r:.80}")
        if state[2:] != (None, None, None, -1, -1, 0):
            raise UnsafePickleError(f"pickled dtype state {state!r:.80} is not a plain type")
        order = _text(state[1], "a dtype byte order")
        if order not in ("<", ">", "|", "="):
            raise UnsafePickleError(f"pickled dtype byte order {order!r} is not < > | =")
        if order == "<":
            self.dtype = self.dtype.newbyteorder("<")
        elif order == ">":
            self.dtype = self.dtype.newbyteorder(">")
        elif order == "=":
            self.dtype = self.dtype.newbyteorder("=")


class _ArrayState:
    """A pickled array: ``_reconstruct(ndarray, (0,), b"b")`` then its checked state."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        """``(version, shape, dtype, is_fortran, raw)`` (or without ``version``)."""
        if self.array is not None:
            raise UnsafePickleError("a pickled array's state was set twice")
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise UnsafePickleError(f"unexpected pickled array state of {type(state).__name__}")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(dtype, _DtypeState):
            raise UnsafePickleError(f"pickled array dtype must be a numpy.dtype, got {dtype!r:.80}")
        self.array = _array_from_bytes(_shape(shape), dtype.dtype, bool(fortran), raw)


def _shape(shape: Any) -> tuple[int, ...]:
    if (
        not isinstance(shape, tuple)
        or len(shape) > MAX_NDIM
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise UnsafePickleError(
            f"pickled array shape must be a tuple of at most {MAX_NDIM} non-negative ints, "
            f"got {shape!r:.80}"
        )
    return shape


def _array_from_bytes(
    shape: tuple[int, ...], dtype: np.dtype, fortran: bool, raw: Any
) -> np.ndarray:
    """A contiguous array copied from ``raw``, which must hold exactly the shape's bytes."""
    if not isinstance(raw, (bytes, bytearray)):
        raise UnsafePickleError(
            f"pickled array data must be bytes, got {type(raw).__name__} (object arrays and "
            f"out-of-band buffers are refused)"
        )
    need = math.prod(shape) * dtype.itemsize
    if len(raw) != need:
        raise UnsafePickleError(
            f"pickled array of shape {shape} and dtype {dtype.name} needs exactly {need} "
            f"data bytes, the file holds {len(raw)}"
        )
    flat = np.frombuffer(raw, dtype=dtype)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="C")


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArrayState:
    """What numpy's ``multiarray._reconstruct`` may be asked in a data pickle."""
    if cls is not NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise UnsafePickleError(
            f"refusing _reconstruct({cls!r:.40}, {shape!r:.40}, {typecode!r:.20}): only "
            f"_reconstruct(numpy.ndarray, (0,), b'b') rebuilds a plain array"
        )
    return _ArrayState()


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``: how Python 3 pickles ``b""`` at protocol 2 (an empty array's data)."""
    if args:
        raise UnsafePickleError(f"refusing bytes{args!r:.40}: only bytes() is allowed")
    return b""


_RECONSTRUCT = _Global("numpy multiarray._reconstruct", _reconstruct)
_BYTES = _Global("bytes", _empty_bytes)
ALLOWED_GLOBALS: dict[tuple[str, str], _Global] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): NDARRAY,
    ("numpy", "dtype"): _Global("numpy.dtype", _DtypeState),
    ("_codecs", "encode"): _Global("_codecs.encode", _latin1_encode),
    ("__builtin__", "bytes"): _BYTES,
    ("builtins", "bytes"): _BYTES,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits only checked stand-ins for numpy's array globals and
    ``_codecs.encode``.

    Every other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) raises
    :class:`UnsafePickleError` before it is resolved, so nothing it names can run.  Arrays come
    back as :class:`_ArrayState` stand-ins; :func:`load_pickle` swaps in the checked arrays.

    Parameters
    ----------
    file : binary file
        The open pickle.
    source : path
        Named in error messages.
    """

    def __init__(self, file: Any, source: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name} from "
                f"{self.source}: a CIFAR pickle only holds dicts, lists, "
                f"bytes, ints and numpy arrays"
            )
        return ALLOWED_GLOBALS[(module, name)]

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {pid!r:.40} in {self.source}")


def _resolve(value: Any, path: Path) -> Any:
    """``value`` with array stand-ins replaced by their arrays (in dicts and lists, to the
    depth CIFAR uses: a dict of arrays, lists and scalars)."""
    if isinstance(value, _ArrayState):
        if value.array is None:
            raise UnsafePickleError(f"{path}: a pickled array has no data (no state was set)")
        return value.array
    if isinstance(value, _DtypeState):
        raise UnsafePickleError(f"{path}: a bare pickled dtype where data was expected")
    if isinstance(value, list):
        stand_ins = (_ArrayState, _DtypeState)
        return [_resolve(v, path) if isinstance(v, stand_ins) else v for v in value]
    return value


def load_pickle(path: Path, max_bytes: int | None = None) -> dict[str, Any]:
    """Load one CIFAR python-format file with :class:`RestrictedUnpickler`.

    Parameters
    ----------
    path : path
        The file.
    max_bytes : int, optional
        Budget for the file's bytes, which are read whole (default
        ``$NETPRISM_MAX_DATA_BYTES`` or 4 GiB).

    Returns
    -------
    dict
        The file's dict with bytes keys decoded to ``str`` (``b"data"`` -> ``"data"``).

    Raises
    ------
    ValueError
        A refused global or array, a truncated or corrupt pickle, or a top level that is not
        a dict.
    """
    check_budget(path.stat().st_size, resolve_max_bytes(max_bytes), path, "the pickle file")
    # Read the file whole and unpickle from memory: a length field declaring 2**40 bytes then
    # fails as "truncated" instead of making the unpickler allocate a buffer of that size.
    raw = path.read_bytes()
    try:
        obj = RestrictedUnpickler(io.BytesIO(raw), path).load()
    except UnsafePickleError as err:
        if str(path) in str(err):
            raise
        raise UnsafePickleError(f"{err} in {path}") from err
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        UnicodeDecodeError,
        MemoryError,
        OverflowError,
        RecursionError,
    ) as err:
        raise ValueError(
            f"{path}: corrupt or truncated CIFAR pickle ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {
        k.decode("latin1") if isinstance(k, bytes) else str(k): _resolve(v, path)
        for k, v in obj.items()
    }
