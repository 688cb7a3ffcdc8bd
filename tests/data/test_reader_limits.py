"""Hardening of the data readers (issue 20, items 2-4), each failure reproduced with tiny files
written here:

- CIFAR pickles rebuild arrays only through the checked ``_reconstruct`` + state path: no
  ``numpy.ndarray(shape, dtype)`` (uninitialised memory), no zero strides, data bytes exactly
  the declared shape's;
- every reader refuses, before allocating, what does not fit the ``max_bytes`` budget;
- image folders refuse symlinks leaving the data folder (unless ``follow_symlinks=True``),
  scale 16-bit images by 65535, and check one size over every split before loading.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from netprism.data import load_dataset
from netprism.data.readers import (
    DEFAULT_MAX_BYTES,
    DataBudgetError,
    UnsafePickleError,
    load_images,
    load_pickle,
    read_idx,
)
from netprism.data.readers.limits import resolve_max_bytes

# ---------------------------------------------------------------------- CIFAR pickles


class Uninitialised:
    """Unpickles as ``numpy.ndarray((n, 3072), uint8)``: n images of whatever was in memory."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self):
        return np.ndarray, ((self.n, 3072), np.dtype("u1"))


class ZeroStrides(Uninitialised):
    """Unpickles as an (n, 3072) view of one byte: 144 bytes become a whole CIFAR."""

    def __reduce__(self):
        return np.ndarray, ((self.n, 3072), np.dtype("u1"), b"\x07", 0, (0, 0))


def _py2(value: object) -> bytes:
    """A bytes string or int as Python 2 pickles it."""
    if isinstance(value, int):
        return b"J" + struct.pack("<i", value)
    assert isinstance(value, bytes)
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<I", len(value)) + value


def array_pickle(shape: tuple[int, ...], raw: bytes, dtype: bytes = b"u1") -> bytes:
    """numpy's own pickling of an array, as in the real CIFAR files, with any declared
    ``shape`` and data bytes ``raw`` (protocol 2 opcodes, no PROTO/STOP)."""
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + _py2(0)
        + b"\x85"
        + _py2(b"b")
        + b"\x87R("
        + _py2(1)
        + b"("
        + b"".join(_py2(d) for d in shape)
        + b"tcnumpy\ndtype\n"
        + _py2(dtype)
        + _py2(0)
        + _py2(1)
        + b"\x87R("
        + _py2(3)
        + _py2(b"|")
        + b"NNN"
        + _py2(-1)
        + _py2(-1)
        + _py2(0)
        + b"tb\x89"
        + _py2(raw)
        + b"tb"
    )


def batch_pickle(data: bytes, n_labels: int) -> bytes:
    """A CIFAR-10 batch dict whose ``data`` is the pickled ``data`` opcodes."""
    labels = b"](" + b"".join(_py2(0) for _ in range(n_labels)) + b"e"
    return b"\x80\x02}(" + _py2(b"data") + data + _py2(b"labels") + labels + b"u."


def write_test_batch(root: Path, raw: bytes) -> Path:
    path = root / "cifar-10-batches-py" / "test_batch"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize("payload", [Uninitialised(100), ZeroStrides(50_000)])
def test_cifar_ndarray_called_from_a_pickle_is_refused(tmp_path: Path, payload) -> None:
    raw = pickle.dumps({b"data": payload, b"labels": [0] * payload.n}, protocol=2)
    path = write_test_batch(tmp_path, raw)
    tracemalloc.start()
    try:
        with pytest.raises(UnsafePickleError, match="refusing to call numpy.ndarray") as err:
            load_dataset("cifar10", split="test", data_dir=tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(err.value) and "uninitialised" in str(err.value)
    assert peak < 4 << 20, peak  # no 50,000-image array was ever made


@pytest.mark.parametrize(
    ("shape", "n_bytes"),
    [((2, 3072), 3072), ((1, 3072), 3073), ((50_000, 3072), 1), ((1, 3072), 0)],
)
def test_cifar_declared_count_must_match_the_bytes(tmp_path: Path, shape, n_bytes) -> None:
    path = write_test_batch(tmp_path, batch_pickle(array_pickle(shape, bytes(n_bytes)), shape[0]))
    with pytest.raises(UnsafePickleError, match="needs exactly") as err:
        load_dataset("cifar10", split="test", data_dir=tmp_path)
    assert str(path) in str(err.value) and f"holds {n_bytes}" in str(err.value)


def test_cifar_exact_reconstruct_path_still_loads(tmp_path: Path) -> None:
    pixels = np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)
    write_test_batch(tmp_path, batch_pickle(array_pickle((2, 3072), pixels.tobytes()), 2))
    ds = load_dataset("cifar10", split="test", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.x.reshape(2, 3072).mul(255).round().numpy(), pixels)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.uint8).reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
        np.arange(6, dtype=">f8").reshape(2, 3),
        np.array([True, False]),
        np.zeros((0, 3072), np.uint8),
        np.arange(24, dtype=np.int64).reshape(2, 3, 4),
    ],
)
@pytest.mark.parametrize("protocol", [2, 4])
def test_numpy_pickles_load_exactly(tmp_path: Path, array: np.ndarray, protocol: int) -> None:
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"a": array, "l": [array, 3]}, protocol=protocol))
    out = load_pickle(path)
    for got in (out["a"], out["l"][0]):
        assert got.dtype == array.dtype and got.shape == array.shape and got.flags.writeable
        np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (pickle.dumps({"a": np.array([1, "x"], dtype=object)}, protocol=2), "not a plain"),
        (pickle.dumps({"a": np.zeros(2, dtype="u1,u1")}, protocol=2), "not a plain"),
        (pickle.dumps({"a": np.array(["ab"])}, protocol=2), "not a plain"),
        # BUILD on an allowed global, to set attributes on it
        (b"\x80\x02cnumpy\nndarray\n}(U\x01xK\x01ub.", "refusing to set the state"),
        # _reconstruct asked for anything but an empty plain array
        (
            b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x05\x85U\x01b\x87R.",
            "refusing _reconstruct",
        ),
        # an array stand-in that never got its state
        (
            b"\x80\x02}U\x01acnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
            b"K\x00\x85U\x01b\x87Rs.",
            "no data",
        ),
    ],
)
def test_crafted_arrays_are_refused(tmp_path: Path, raw: bytes, match: str) -> None:
    path = tmp_path / "batch"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=match) as err:
        load_pickle(path)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------------------- budgets


def idx_header(dims: tuple[int, ...], code: int = 0x08) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}i", *dims)


def test_gzip_idx_declaring_more_than_the_budget_is_refused_without_inflating(
    tmp_path: Path,
) -> None:
    # 64 MiB of zeros really are in the stream (a 64 KiB file); the budget is 1 MiB
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header((1024, 256, 256)) + bytes(64 << 20), 1))
    tracemalloc.start()
    try:
        with pytest.raises(DataBudgetError, match=f"max_bytes={1 << 20}") as err:
            read_idx(path, max_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(err.value) and "(1024, 256, 256)" in str(err.value)
    assert peak < 1 << 20, peak
    assert read_idx(path, max_bytes=64 << 20).shape == (1024, 256, 256)


def test_default_budget_refuses_a_gzip_idx_declaring_gigabytes(tmp_path: Path) -> None:
    # the probe: a small .gz declaring 2,000,000 28x28 images (7.3 GiB with the float32
    # copy); the stream holds only the header, nothing is inflated or allocated
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_header((2_000_000, 28, 28)))
    )
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_header((1,)) + b"\x00")
    with pytest.raises(DataBudgetError, match=f"max_bytes={DEFAULT_MAX_BYTES}") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(err.value)


def test_mnist_budget_is_a_load_dataset_option(tmp_path: Path) -> None:
    images = np.arange(4 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(4, 28, 28)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_header((4, 28, 28)) + images.tobytes())
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_header((4,)) + bytes(4))
    with pytest.raises(DataBudgetError, match="max_bytes=1000"):
        load_dataset("mnist", data_dir=tmp_path, max_bytes=1000)
    small = load_dataset("mnist", data_dir=tmp_path, max_bytes=5 * images.size)
    default = load_dataset("mnist", data_dir=tmp_path)
    assert small.x.equal(default.x) and small.y.equal(default.y)


def write_cifar_bin(root: Path, n: int) -> Path:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    path = folder / "test_batch.bin"
    path.write_bytes(bytes(n * 3073))
    return path


def test_cifar_budget_checked_before_reading(tmp_path: Path) -> None:
    write_cifar_bin(tmp_path / "bin", 3)
    with pytest.raises(DataBudgetError, match="max_bytes=10000") as err:
        load_dataset("cifar10", split="test", data_dir=tmp_path / "bin", max_bytes=10_000)
    assert "cifar-10-batches-bin" in str(err.value)
    assert len(load_dataset("cifar10", split="test", data_dir=tmp_path / "bin")) == 3
    data = array_pickle((3, 3072), bytes(3 * 3072))
    path = write_test_batch(tmp_path / "py", batch_pickle(data, 3))
    with pytest.raises(DataBudgetError, match="max_bytes=20000") as err:
        load_dataset("cifar10", split="test", data_dir=tmp_path / "py", max_bytes=20_000)
    assert str(path) in str(err.value)  # 9 KiB of file, then 3 images as float32: over
    with pytest.raises(DataBudgetError, match="max_bytes=100"):
        load_dataset("cifar10", split="test", data_dir=tmp_path / "py", max_bytes=100)


def test_budget_values_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETPRISM_MAX_DATA_BYTES", raising=False)
    assert resolve_max_bytes() == DEFAULT_MAX_BYTES == 4 << 30
    assert resolve_max_bytes(123) == 123
    monkeypatch.setenv("NETPRISM_MAX_DATA_BYTES", "5000")
    assert resolve_max_bytes() == 5000 and resolve_max_bytes(7) == 7
    for bad in (0, -5, True, 1.5, "10"):
        with pytest.raises(ValueError, match="max_bytes must be a positive integer"):
            resolve_max_bytes(bad)
    monkeypatch.setenv("NETPRISM_MAX_DATA_BYTES", "lots")
    with pytest.raises(ValueError, match="NETPRISM_MAX_DATA_BYTES must be .* got 'lots'"):
        resolve_max_bytes()


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def test_image_folder_total_pixels_over_the_budget_is_refused(tmp_path: Path) -> None:
    # six 32x32 gray PNGs of a few hundred bytes: 6 * 32 * 32 * 4 bytes as float32 > 10000
    paths = [write_png(tmp_path / "c" / f"{i}.png", np.zeros((32, 32), np.uint8)) for i in range(6)]
    with pytest.raises(DataBudgetError, match="max_bytes=10000") as err:
        load_dataset("imagefolder", data_dir=tmp_path, test_fraction=0.5, max_bytes=10_000)
    assert str(tmp_path) in str(err.value) and "32x32" in str(err.value)
    with pytest.raises(DataBudgetError, match="max_bytes=10000"):
        load_images(paths, "L", None, paths[0], max_bytes=10_000)
    # resized to 4x4 the tensor is small, but one 32x32 image is still decoded
    with pytest.raises(DataBudgetError, match="max_bytes=4000"):
        load_images(paths, "L", (4, 4), paths[0], max_bytes=4000)
    assert load_images(paths, "L", (4, 4), paths[0], max_bytes=5000).shape == (6, 1, 4, 4)
    ds = load_dataset("imagefolder", data_dir=tmp_path, test_fraction=0.5, max_bytes=20_000)
    assert ds.x.shape == (3, 1, 32, 32)


# ---------------------------------------------------------------------- image folders


def two_images(folder: Path, value: int = 0) -> None:
    for name in ("a.png", "b.png"):
        write_png(folder / name, np.full((2, 2), value, np.uint8))


def train_files(root: Path, **options) -> list[str]:
    """The train split's files, half of each class (two images per class here)."""
    ds = load_dataset("imagefolder", data_dir=root, test_fraction=0.5, **options)
    return [Path(f).name for f in ds.info.extra["files"]]


def test_symlinked_class_folder_out_of_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "system"
    two_images(outside, 9)
    root = tmp_path / "data"
    two_images(root / "cat")
    (root / "dog").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="follow_symlinks=True") as err:
        train_files(root)
    assert str(root / "dog") in str(err.value) and str(outside) in str(err.value)
    assert len(train_files(root, follow_symlinks=True)) == 2  # one cat, one foreign dog


def test_symlinks_inside_root_are_fine_and_linked_files_out_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    two_images(root / "cat")
    two_images(root / "store")
    (root / "dog").symlink_to(root / "store", target_is_directory=True)
    assert len(train_files(root)) == 3
    secret = write_png(tmp_path / "elsewhere.png", np.zeros((2, 2), np.uint8))
    (root / "cat" / "link.png").symlink_to(secret)
    with pytest.raises(ValueError, match="outside the data folder") as err:
        train_files(root)
    assert str(root / "cat" / "link.png") in str(err.value)


def test_follow_symlinks_survives_a_link_cycle(tmp_path: Path) -> None:
    two_images(tmp_path / "cat")
    two_images(tmp_path / "dog")
    (tmp_path / "cat" / "loop").symlink_to(tmp_path / "cat", target_is_directory=True)
    assert len(train_files(tmp_path)) == 2  # not entered by default, as before
    assert len(train_files(tmp_path, follow_symlinks=True)) == 2  # a link to itself: seen


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path, mode: str) -> None:
    values = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)
    path = write_png(tmp_path / "cls" / "deep.png", values)
    assert Image.open(path).mode == "I;16"
    x = load_images([path], mode, None, path)
    expected = values.astype(np.float32) / 65535.0
    for channel in x[0]:
        np.testing.assert_allclose(channel, expected, rtol=0, atol=1e-7)
    assert x.max() == 1.0 and abs(float(x[0, 0, 0, 1]) - 0.5) < 1e-4
    # resized in height only: every row is the 16-bit row, scaled (an 8-bit path gives 1.0s)
    resized = load_images([path], mode, (3, 4), path)
    assert resized.shape[2:] == (3, 4)
    np.testing.assert_allclose(resized[0, 0], np.repeat(expected, 3, axis=0), atol=1e-6)


@pytest.mark.parametrize("split", ["train", "test"])
def test_mixed_sizes_refused_in_every_split_before_loading(tmp_path: Path, split: str) -> None:
    for cls in ("a", "b"):
        for i in range(5):
            write_png(tmp_path / cls / f"{i}.png", np.zeros((4, 4), np.uint8))
    odd = write_png(tmp_path / "b" / "4.png", np.zeros((4, 6), np.uint8))  # lands in train
    with pytest.raises(ValueError, match="4x6 .* must have one size") as err:
        load_dataset("imagefolder", split=split, data_dir=tmp_path)
    assert str(odd) in str(err.value)
    ok = load_dataset("imagefolder", split=split, data_dir=tmp_path, size=(4, 4))
    assert ok.x.shape[1:] == (1, 4, 4)


def test_mixed_sizes_across_split_folders_refused(tmp_path: Path) -> None:
    write_png(tmp_path / "train" / "a" / "0.png", np.zeros((4, 4), np.uint8))
    odd = write_png(tmp_path / "test" / "a" / "0.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(ValueError, match="must have one size") as err:
        load_dataset("imagefolder", split="train", data_dir=tmp_path)
    assert str(odd) in str(err.value)


def test_zlib_bomb_png_header_is_checked_before_decoding(tmp_path: Path) -> None:
    # a 1x1 image's IHDR rewritten to 3000x3000: the header alone is over a 1 MB budget
    path = write_png(tmp_path / "c" / "a.png", np.zeros((1, 1), np.uint8))
    raw = bytearray(path.read_bytes())
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4 : ihdr + 12] = struct.pack(">II", 3000, 3000)
    raw[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(raw[ihdr : ihdr + 17])))
    path.write_bytes(bytes(raw))
    with pytest.raises(DataBudgetError, match="max_bytes=1000000"):
        load_dataset("imagefolder", data_dir=tmp_path, size=4, max_bytes=1_000_000)
