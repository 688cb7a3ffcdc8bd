"""Hypothesis fuzzing of the on-disk data readers (IDX, CIFAR pickles and binaries, image
folders) with malformed files: each input either reads into a valid array or is refused with a
``ValueError`` naming the file, quickly and without writing anything -- never a crash, hang,
``MemoryError``, raw ``struct.error``/``IndexError``/``EOFError`` or a partial result."""

import gzip
import io
import math
import pickle
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from netprism.data import load_dataset
from netprism.data.readers import load_pickle, read_binary_batch, read_idx, read_pickle_batch
from netprism.data.readers.idx import IDX_DTYPES, load_idx_pair
from netprism.data.readers.imagefolder import load_images

FUZZ = settings(
    max_examples=60,
    database=None,  # no .hypothesis folder in the work tree; seeds vary per run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _idx_bytes(code, dims, payload):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}i", *dims) + payload


def _mutate(raw: bytes, cut: int | None, flips: list[tuple[int, int]]) -> bytes:
    """``raw`` truncated to ``cut`` bytes and with ``(position, xor)`` byte flips."""
    data = bytearray(raw if cut is None else raw[: cut % (len(raw) + 1)])
    for pos, xor in flips:
        if data:
            data[pos % len(data)] ^= xor
    return bytes(data)


cuts = st.none() | st.integers(0, 1 << 20)
flips = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), max_size=3)


# --- IDX ------------------------------------------------------------------------------------


@st.composite
def idx_files(draw):
    """Headers with any dtype code (valid or not), 0..4 dims, sizes up to 2**31 - 1, a payload
    that may not match, optionally gzipped, then truncated/flipped."""
    code = draw(st.sampled_from([*IDX_DTYPES, 0x00, 0x0A, 0xFF]))
    dims = draw(st.lists(st.integers(0, 6) | st.integers(0, 2**31 - 1), max_size=4))
    itemsize = np.dtype(IDX_DTYPES.get(code, ">u1")).itemsize
    want = math.prod(dims) * itemsize if dims else 0  # Python ints: no int64 overflow
    size = want if want < 4096 and draw(st.booleans()) else draw(st.integers(0, 64))
    raw = _idx_bytes(code, dims, draw(st.binary(min_size=size, max_size=size)))
    if draw(st.booleans()):
        raw = gzip.compress(raw)
    return _mutate(raw, draw(cuts), draw(flips)) if draw(st.booleans()) else raw


@FUZZ
@given(raw=idx_files() | st.binary(max_size=80))
def test_rel_fuzz_read_idx(tmp_path, refuses, raw):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(raw)
    try:
        array = read_idx(path)
    except ValueError as err:
        assert str(path) in str(err)
        return
    # accepted: exactly the header's shape and dtype, nothing more or less
    plain = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    ndim = plain[3]
    dims = struct.unpack(f">{ndim}i", plain[4 : 4 + 4 * ndim])
    assert array.shape == dims and array.dtype == np.dtype(IDX_DTYPES[plain[2]]).newbyteorder("=")
    assert array.nbytes == len(plain) - 4 - 4 * ndim


@pytest.mark.parametrize("compress", [False, True])
def test_rel_idx_huge_declared_size_fails_fast_without_allocating(tmp_path, refuses, compress):
    # 2**31 - 1 images of 28x28 declared in a ~100-byte file (gzip: a few dozen bytes)
    raw = _idx_bytes(0x08, [2**31 - 1, 28, 28], bytes(84))
    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    tracemalloc.start()
    try:
        # raw: the file's size says "truncated"; gzip: the header alone is over the budget
        match = "max_bytes=" if compress else "truncated"
        refuses(lambda: read_idx(path), path, tmp_path, match=match)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_rel_idx_gzip_bomb_is_refused_without_inflating(tmp_path, refuses):
    # header says 3 bytes, the gzip stream inflates to 64 MiB of trailing zeros
    raw = _idx_bytes(0x08, [3], bytes(3) + bytes(64 << 20))
    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(raw, compresslevel=1))
    tracemalloc.start()
    try:
        refuses(lambda: read_idx(path), path, tmp_path, match="trailing bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # the 64 MiB were never materialised


@FUZZ
@given(
    img_code=st.sampled_from(list(IDX_DTYPES)),
    img_dims=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    lab_code=st.sampled_from(list(IDX_DTYPES)),
    n_labels=st.integers(0, 4),
    special=st.sampled_from([None, np.nan, np.inf, -1, 10, 2**31 - 1]),
)
def test_rel_fuzz_idx_pair_shapes_dtypes_values(
    tmp_path, refuses, img_code, img_dims, lab_code, n_labels, special
):
    img_dtype, lab_dtype = np.dtype(IDX_DTYPES[img_code]), np.dtype(IDX_DTYPES[lab_code])
    images = np.ones(img_dims, dtype=img_dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        labels = np.full(n_labels, 1).astype(lab_dtype)
        if special is not None and n_labels:
            labels[-1] = np.array(special).astype(lab_dtype)
    ip, lp = tmp_path / "images-idx", tmp_path / "labels-idx"
    ip.write_bytes(_idx_bytes(img_code, img_dims, images.tobytes()))
    lp.write_bytes(_idx_bytes(lab_code, [n_labels], labels.tobytes()))
    try:
        x, y = load_idx_pair(ip, lp, num_classes=10)
    except ValueError as err:
        assert str(ip) in str(err) or str(lp) in str(err), err
        return
    assert img_dtype == np.uint8 and len(img_dims) == 3 and np.issubdtype(lab_dtype, np.integer)
    assert x.shape == (img_dims[0], 1, *img_dims[1:]) and len(y) == len(x)
    assert bool(((y >= 0) & (y < 10)).all()) and bool(((x >= 0) & (x <= 1)).all())


# --- CIFAR ----------------------------------------------------------------------------------


@st.composite
def cifar_dicts(draw):
    """Pickled CIFAR-like dicts with wrong dtypes, shapes, NaN/inf, bad labels, missing keys."""
    n = draw(st.integers(0, 3))
    dtype = draw(st.sampled_from([np.uint8, np.float32, np.int64]))
    width = draw(st.sampled_from([3072, 3071, 1024]))
    data = np.zeros((n, width), dtype=dtype)
    if dtype is np.float32 and n and draw(st.booleans()):
        data[0, 0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if draw(st.booleans()):
        data = data.reshape(-1)  # wrong ndim
    label = st.integers(-3, 12) | st.sampled_from([2**40, 1.5, float("nan"), "cat", None])
    labels = draw(st.lists(label, min_size=max(0, n - 1), max_size=n + 1))
    obj = {b"data": data, b"labels": labels, b"batch_label": b"x"}
    for key in draw(st.lists(st.sampled_from([b"data", b"labels"]), max_size=1)):
        del obj[key]
    if draw(st.booleans()):
        obj[b"labels"] = np.asarray(labels if all(isinstance(v, int) for v in labels) else [])
    top = draw(st.sampled_from(["dict", "list", "int"]))
    value = obj if top == "dict" else list(obj) if top == "list" else 7
    return pickle.dumps(value, protocol=draw(st.sampled_from([2, 4])))


@FUZZ
@given(raw=cifar_dicts(), cut=cuts, flip=flips, mutate=st.booleans())
def test_rel_fuzz_cifar_pickle_batch(tmp_path, refuses, raw, cut, flip, mutate):
    path = tmp_path / "data_batch_1"
    path.write_bytes(_mutate(raw, cut, flip) if mutate else raw)
    try:
        out = read_pickle_batch(path, {"labels": 10})
    except ValueError as err:
        assert str(path) in str(err), err
        return
    data, labels = out["data"], out["labels"]
    assert data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
    assert labels.dtype == np.int64 and labels.shape == (len(data),)
    assert bool(((labels >= 0) & (labels < 10)).all())


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x8d", b"\x96", b"B"])  # *UNICODE8, BYTES8, ...
def test_rel_cifar_pickle_huge_declared_length_fails_fast(tmp_path, refuses, opcode):
    size = struct.pack("<I", 2**31 - 1) if opcode == b"B" else struct.pack("<Q", 2**40)
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x04" + opcode + size + bytes(100))
    refuses(lambda: load_pickle(path), path, tmp_path, match="corrupt or truncated")


def _p2(value):
    """An int or bytes as Python 2 pickles it (protocol 2 opcodes)."""
    if isinstance(value, int):
        return b"J" + struct.pack("<i", value)
    return b"T" + struct.pack("<I", len(value)) + value


def _array_opcodes(shape, spec, order, fortran, raw):
    """numpy's ``_reconstruct`` + state pickling of an array with any declared shape, dtype
    spec, byte order and data bytes (what a CIFAR file holds)."""
    dims = b"".join(_p2(d) for d in shape)
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + _p2(0) + b"\x85" + _p2(b"b") + b"\x87R(" + _p2(1) + b"(" + dims + b"t"
        + b"cnumpy\ndtype\n" + _p2(spec) + _p2(0) + _p2(1) + b"\x87R("
        + _p2(3) + _p2(order) + b"NNN" + _p2(-1) + _p2(-1) + _p2(0) + b"tb"
        + (b"\x88" if fortran else b"\x89") + _p2(raw) + b"tb"
    )  # fmt: skip


@FUZZ
@given(
    shape=st.lists(st.integers(0, 4) | st.integers(0, 2**31 - 1), max_size=3),
    spec=st.sampled_from([b"u1", b"i2", b"f8", b"b1", b"O", b"U3", b"V4", b"u1,u1", b"2u1", b"x"]),
    order=st.sampled_from([b"|", b"<", b">", b"=", b"!", b"ab"]),
    fortran=st.booleans(),
    extra=st.integers(-3, 3),
)
def test_rel_fuzz_cifar_array_states(tmp_path, refuses, shape, spec, order, fortran, extra):
    """Arrays rebuilt from a file hold exactly the file's bytes, or are refused."""
    try:
        itemsize = np.dtype(spec.decode()).itemsize
    except TypeError:
        itemsize = 1
    need = math.prod(shape) * itemsize
    raw = bytes(range(256)) * 8
    raw = raw[: max(0, need + extra)] if need < 1024 else raw[: max(0, extra + 3)]
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02}(" + _p2(b"a") + _array_opcodes(shape, spec, order, fortran, raw)
                     + b"u.")  # fmt: skip
    try:
        array = load_pickle(path)["a"]
    except ValueError as err:
        assert str(path) in str(err), err
        return
    assert array.shape == tuple(shape) and array.nbytes == len(raw) == need
    assert array.dtype.kind in "biuf" and array.flags.c_contiguous and array.flags.owndata


@FUZZ
@given(raw=st.binary(max_size=8000), labels=st.sampled_from([1, 2]))
def test_rel_fuzz_cifar_binary_batch(tmp_path, refuses, raw, labels):
    path = tmp_path / "test_batch.bin"
    path.write_bytes(raw)
    keys = {"labels": 10} if labels == 1 else {"coarse_labels": 20, "fine_labels": 100}
    try:
        out = read_binary_batch(path, keys)
    except ValueError as err:
        assert str(path) in str(err), err
        return
    assert out["data"].shape == (len(raw) // (3072 + labels), 3072)
    for key, k in keys.items():
        assert bool(((out[key] >= 0) & (out[key] < k)).all())


pickled_values = st.recursive(
    st.none() | st.integers() | st.floats() | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=11)
        | st.dictionaries(st.sampled_from([b"label_names", b"num_vis", "label_names"]), inner)
    ),
    max_leaves=24,
)


@FUZZ
@given(meta=st.binary(max_size=200) | st.builds(pickle.dumps, pickled_values))
def test_rel_fuzz_cifar10_meta_file_through_load_dataset(tmp_path, refuses, meta):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    good = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 9]}
    (folder / "test_batch").write_bytes(pickle.dumps(good, protocol=2))
    meta_path = folder / "batches.meta"
    meta_path.write_bytes(meta)
    try:
        ds = load_dataset("cifar10", split="test", data_dir=tmp_path)
    except ValueError as err:
        assert str(meta_path) in str(err), err
        return
    assert len(ds) == 2 and len(ds.info.classes) == 10


# --- image folders --------------------------------------------------------------------------


def _png(h=4, w=5, mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, (w, h), 128).save(buf, format="PNG")
    return buf.getvalue()


@FUZZ
@given(
    raw=st.sampled_from([_png(), _png(mode="L"), _png(mode="RGBA"), b""]) | st.binary(max_size=64),
    cut=cuts,
    flip=flips,
    mode=st.sampled_from(["L", "RGB"]),
)
def test_rel_fuzz_image_files(tmp_path, refuses, raw, cut, flip, mode):
    ref = tmp_path / "ref.png"
    ref.write_bytes(_png())
    bad = tmp_path / "bad.png"
    bad.write_bytes(_mutate(raw, cut, flip))
    try:
        x = load_images([ref, bad], mode, None, ref)
    except ValueError as err:
        assert str(bad) in str(err), err
        return
    assert x.shape == (2, 1 if mode == "L" else 3, 4, 5)
    assert np.isfinite(x).all() and ((x >= 0) & (x <= 1)).all()


def test_rel_image_declaring_huge_size_is_refused_before_decoding(tmp_path, refuses):
    # a valid-looking PNG header declaring 20000 x 20000 pixels (over PIL's bomb limit / 2,
    # where PIL itself only warns) followed by almost no data
    raw = bytearray(_png())
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4 : ihdr + 12] = struct.pack(">II", 20000, 20000)
    raw[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(raw[ihdr : ihdr + 17])))
    folder = tmp_path / "cls"
    folder.mkdir()
    (folder / "a.png").write_bytes(bytes(raw))
    start = time.perf_counter()
    refuses(
        lambda: load_dataset("imagefolder", data_dir=tmp_path, size=8),
        folder / "a.png",
        tmp_path,
    )
    assert time.perf_counter() - start < 2.0


def test_rel_empty_files_refused_everywhere(tmp_path, refuses):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    refuses(lambda: read_idx(empty), empty, tmp_path, match="empty")
    refuses(lambda: load_pickle(empty), empty, tmp_path)
    refuses(lambda: read_binary_batch(empty, {"labels": 10}), empty, tmp_path)
    png = tmp_path / "empty.png"
    png.write_bytes(b"")
    refuses(lambda: load_images([png], "L", None, png), png, tmp_path)


def test_rel_idx_zero_sized_but_unshapeable_dimensions_are_refused(tmp_path, refuses):
    # found by the fuzzer: 0 items in total, yet the other dimensions overflow numpy's shape
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x0e\x04\x00\x00\x00\x00\x00\x00\x00\x06\x1a o\xa5\x1a!\x0b<")
    refuses(lambda: read_idx(path), path, tmp_path)
