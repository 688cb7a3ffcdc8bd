"""Readers of on-disk formats: tiny files written here in the exact formats, read back exactly.

Covers IDX (raw and gzip), CIFAR-10/100 python pickles (as Python 2 writes them and as
Python 3 writes protocol 2) and binary batches, image folders of PNGs, and the corrupted,
missing and malicious variants of each.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from netprism.data import load_dataset
from netprism.data.readers import UnsafePickleError, holdout_mask, load_pickle, read_idx

RNG = np.random.default_rng(0)

# ---------------------------------------------------------------------------------- IDX


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
    return header + arr.astype(dtype).tobytes()


def write_idx(
    folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool = False
) -> tuple[Path, Path]:
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
        data = idx_bytes(arr)
        path = folder / f"{prefix}-{kind}-ubyte{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(data) if gz else data)
        paths.append(path)
    return paths[0], paths[1]


def digits_like(n: int, h: int = 28, w: int = 28) -> tuple[np.ndarray, np.ndarray]:
    return RNG.integers(0, 256, (n, h, w), dtype=np.uint8), RNG.integers(0, 10, n).astype(np.uint8)


@pytest.mark.parametrize("code", [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_every_dtype_raw_and_gzip(tmp_path: Path, code: int, gz: bool) -> None:
    arr = (np.arange(24).reshape(2, 3, 4) - (0 if code == 0x08 else 5)).astype(np.float64)
    data = idx_bytes(arr, code)
    path = tmp_path / "plain-name"  # gzip must be detected by magic bytes, not the suffix
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.shape == (2, 3, 4) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_mnist_exact_pixels_and_labels(tmp_path: Path) -> None:
    images, labels = digits_like(5)
    write_idx(tmp_path, "train", images, labels)
    ds = load_dataset("mnist", split="train", data_dir=tmp_path)
    assert ds.x.shape == (5, 1, 28, 28) and ds.x.dtype == torch.float32
    assert ds.y.dtype == torch.int64
    torch.testing.assert_close(
        ds.x, torch.from_numpy(images).float().div(255).unsqueeze(1), rtol=0, atol=0
    )
    assert ds.y.tolist() == labels.tolist()
    assert ds.classes == tuple("0123456789") and ds.input_shape == (1, 28, 28)


def test_mnist_gzip_in_torchvision_layout_uses_file_hw(tmp_path: Path) -> None:
    images, labels = digits_like(4, 7, 5)
    write_idx(tmp_path / "MNIST" / "raw", "test", images, labels, gz=True)
    ds = load_dataset("mnist", split="test", data_dir=tmp_path)
    assert ds.x.shape == (4, 1, 7, 5)
    np.testing.assert_array_equal((ds.x[:, 0] * 255).round().numpy(), images)


def test_fashion_mnist_classes_and_search_order(tmp_path: Path) -> None:
    first, first_y = digits_like(3)
    second, second_y = digits_like(6)
    write_idx(tmp_path, "train", first, first_y)  # data_dir itself is searched first
    write_idx(tmp_path / "FashionMNIST" / "raw", "train", second, second_y)
    ds = load_dataset("fashion_mnist", data_dir=tmp_path)
    assert len(ds) == 3 and ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    write_idx(tmp_path / "elsewhere" / "fashion_mnist", "train", second, second_y, gz=True)
    assert len(load_dataset("fashion_mnist", data_dir=tmp_path / "elsewhere")) == 6
    assert len(load_dataset("kmnist", data_dir=tmp_path)) == 3


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:-3], "truncated"),
        (lambda b: b + b"\x00\x00", "trailing bytes"),
        (lambda b: b"\x01" + b[1:], "magic"),
        (lambda b: b[:2] + b"\x0a" + b[3:], "dtype code"),
        (lambda b: b[:5], "header"),
    ],
)
def test_idx_corruption_names_file(tmp_path: Path, damage, message: str) -> None:
    images_path, _ = write_idx(tmp_path, "train", *digits_like(3))
    images_path.write_bytes(damage(images_path.read_bytes()))
    with pytest.raises(ValueError, match=message) as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(images_path) in str(err.value)


def test_idx_truncated_reports_expected_and_actual_bytes(tmp_path: Path) -> None:
    path = tmp_path / "x.idx"
    path.write_bytes(idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-4])
    with pytest.raises(ValueError, match="need 18 bytes .* got 14"):
        read_idx(path)


def test_idx_corrupt_gzip(tmp_path: Path) -> None:
    images_path, _ = write_idx(tmp_path, "train", *digits_like(3), gz=True)
    images_path.write_bytes(images_path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="gzip"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_count_mismatch_and_label_range(tmp_path: Path) -> None:
    images, labels = digits_like(4)
    write_idx(tmp_path, "train", images, labels[:3])
    with pytest.raises(ValueError, match="4 images but .* 3 labels"):
        load_dataset("mnist", data_dir=tmp_path)
    labels[2] = 10
    _, labels_path = write_idx(tmp_path, "train", images, labels)
    with pytest.raises(ValueError, match=r"label 10 at index 2 outside \[0, 10\)") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(labels_path) in str(err.value)


def test_idx_missing_files_and_no_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--data-dir"):
        load_dataset("mnist")
    write_idx(tmp_path, "train", *digits_like(2))  # test files absent
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte") as err:
        load_dataset("mnist", split="test", data_dir=tmp_path)
    assert str(tmp_path / "MNIST" / "raw") in str(err.value) and "--data-dir" in str(err.value)


# -------------------------------------------------------------------------------- CIFAR


def py2_pickle(obj: object) -> bytes:
    """Protocol-2 bytes as Python 2 (cPickle) writes them: str as SHORT_BINSTRING/BINSTRING,
    numpy arrays through ``numpy.core.multiarray._reconstruct`` -- the real CIFAR files."""
    return b"\x80\x02" + _py2(obj) + b"."


def _py2(obj: object) -> bytes:
    if isinstance(obj, dict):
        return b"}(" + b"".join(_py2(k) + _py2(v) for k, v in obj.items()) + b"u"
    if isinstance(obj, list):
        return b"](" + b"".join(_py2(v) for v in obj) + b"e"
    if isinstance(obj, bytes):
        if len(obj) < 256:
            return b"U" + bytes([len(obj)]) + obj
        return b"T" + struct.pack("<i", len(obj)) + obj
    if isinstance(obj, int):
        return b"J" + struct.pack("<i", obj)
    assert isinstance(obj, np.ndarray) and obj.dtype == np.uint8
    shape = b"(" + b"".join(_py2(int(d)) for d in obj.shape) + b"t"
    dtype = (
        b"cnumpy\ndtype\n"
        + _py2(b"u1")
        + _py2(0)
        + _py2(1)
        + b"\x87R("
        + _py2(3)
        + _py2(b"|")
        + b"NNN"
        + _py2(-1)
        + _py2(-1)
        + _py2(0)
        + b"tb"
    )
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + _py2(0)
        + b"\x85"
        + _py2(b"b")
        + b"\x87R("
        + _py2(1)
        + shape
        + dtype
        + b"\x89"
        + _py2(obj.tobytes())
        + b"tb"
    )


def dump(path: Path, obj: dict, style: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(py2_pickle(obj) if style == "py2" else pickle.dumps(obj, protocol=2))


def cifar_batch(n: int, label_keys: dict[bytes, int]) -> dict[bytes, object]:
    batch: dict[bytes, object] = {
        b"batch_label": b"training batch",
        b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
    }
    for key, k in label_keys.items():
        batch[key] = [int(v) for v in RNG.integers(0, k, n)]
    batch[b"filenames"] = [f"img_{i}.png".encode() for i in range(n)]
    return batch


def write_cifar10(root: Path, style: str = "py2") -> dict[str, list[dict]]:
    folder = root / "cifar-10-batches-py"
    batches = {
        "train": [cifar_batch(3, {b"labels": 10}) for _ in range(5)],
        "test": [cifar_batch(4, {b"labels": 10})],
    }
    for i, batch in enumerate(batches["train"], start=1):
        dump(folder / f"data_batch_{i}", batch, style)
    dump(folder / "test_batch", batches["test"][0], style)
    names = [f"c10_{k}".encode() for k in range(10)]
    dump(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072}, style)
    return batches


def expected_images(batches: list[dict]) -> torch.Tensor:
    data = np.concatenate([b[b"data"] for b in batches])
    return torch.from_numpy(data).reshape(-1, 3, 32, 32).float().div(255)


@pytest.mark.parametrize("style", ["py2", "py3"])
def test_cifar10_python_batches_exact(tmp_path: Path, style: str) -> None:
    batches = write_cifar10(tmp_path, style)
    for split in ("train", "test"):
        ds = load_dataset("cifar10", split=split, data_dir=tmp_path)
        torch.testing.assert_close(ds.x, expected_images(batches[split]), rtol=0, atol=0)
        assert ds.y.tolist() == sum((b[b"labels"] for b in batches[split]), [])
        assert ds.input_shape == (3, 32, 32) and ds.classes[3] == "c10_3"
    assert len(load_dataset("cifar10", data_dir=tmp_path)) == 15


def write_cifar100(root: Path, style: str = "py2") -> dict[str, dict]:
    folder = root / "cifar-100-python"
    keys = {b"fine_labels": 100, b"coarse_labels": 20}
    batches = {"train": cifar_batch(6, keys), "test": cifar_batch(2, keys)}
    for split, batch in batches.items():
        dump(folder / split, batch, style)
    dump(
        folder / "meta",
        {
            b"fine_label_names": [f"f{k}".encode() for k in range(100)],
            b"coarse_label_names": [f"s{k}".encode() for k in range(20)],
        },
        style,
    )
    return batches


@pytest.mark.parametrize("style", ["py2", "py3"])
def test_cifar100_fine_and_coarse(tmp_path: Path, style: str) -> None:
    batch = write_cifar100(tmp_path, style)["train"]
    ds = load_dataset("cifar100", data_dir=tmp_path)
    torch.testing.assert_close(ds.x, expected_images([batch]), rtol=0, atol=0)
    assert ds.y.tolist() == batch[b"fine_labels"] and len(ds.classes) == 100
    assert ds.extras["coarse_y"].tolist() == batch[b"coarse_labels"]
    assert ds.info.extra["coarse_classes"] == tuple(f"s{k}" for k in range(20))
    coarse = load_dataset("cifar100", data_dir=tmp_path, label_mode="coarse")
    assert coarse.y.tolist() == batch[b"coarse_labels"] and coarse.classes[19] == "s19"
    assert coarse.extras["fine_y"].tolist() == batch[b"fine_labels"]
    with pytest.raises(ValueError, match="label_mode"):
        load_dataset("cifar100", data_dir=tmp_path, label_mode="medium")


def test_cifar_binary_formats(tmp_path: Path) -> None:
    bin10 = tmp_path / "cifar-10-batches-bin"
    bin10.mkdir()
    rows = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rows[name] = RNG.integers(0, 256, (2, 3073), dtype=np.uint8)
        rows[name][:, 0] %= 10
        (bin10 / name).write_bytes(rows[name].tobytes())
    ds = load_dataset("cifar10", split="test", data_dir=tmp_path)
    assert ds.y.tolist() == rows["test_batch.bin"][:, 0].tolist()
    expected = torch.from_numpy(rows["test_batch.bin"][:, 1:]).reshape(-1, 3, 32, 32)
    torch.testing.assert_close(ds.x, expected.float().div(255), rtol=0, atol=0)
    assert ds.classes == (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )  # no batches.meta.txt: standard names
    bin100 = tmp_path / "cifar-100-binary"
    bin100.mkdir()
    recs = RNG.integers(0, 256, (3, 3074), dtype=np.uint8)
    recs[:, 0] %= 20
    recs[:, 1] %= 100
    (bin100 / "train.bin").write_bytes(recs.tobytes())
    (bin100 / "coarse_label_names.txt").write_text("\n".join(f"s{k}" for k in range(20)) + "\n\n")
    (bin100 / "fine_label_names.txt").write_text("\n".join(f"f{k}" for k in range(100)))
    ds = load_dataset("cifar100", data_dir=tmp_path)
    assert ds.y.tolist() == recs[:, 1].tolist() and ds.classes[5] == "f5"
    assert ds.extras["coarse_y"].tolist() == recs[:, 0].tolist()
    (bin100 / "train.bin").write_bytes(recs.tobytes()[:-1])
    with pytest.raises(ValueError, match="3074-byte CIFAR record") as err:
        load_dataset("cifar100", data_dir=tmp_path)
    assert str(bin100 / "train.bin") in str(err.value)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: {**b, b"labels": b[b"labels"][:-1]}, "'labels' must be 3 integers"),
        (lambda b: {k: v for k, v in b.items() if k != b"labels"}, "missing key 'labels'"),
        (lambda b: {**b, b"labels": [0, 10, 1]}, r"value 10 at index 1 outside \[0, 10\)"),
        (lambda b: {**b, b"data": b[b"data"][:, :100]}, r"shape \(N, 3072\)"),
        (lambda b: {**b, b"data": b[b"data"].tobytes()}, "must be a uint8 array"),
    ],
)
def test_cifar_bad_batch_contents(tmp_path: Path, damage, message: str) -> None:
    batches = write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    dump(path, damage(batches["train"][1]), "py2")
    with pytest.raises(ValueError, match=message) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(path) in str(err.value)


def test_cifar_truncated_pickle_and_missing_files(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="corrupt or truncated") as err:
        load_dataset("cifar10", split="test", data_dir=tmp_path)
    assert str(path) in str(err.value)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        load_dataset("cifar10", data_dir=tmp_path)
    with pytest.raises(ValueError, match="--data-dir"):
        load_dataset("cifar100", data_dir=None)


class SystemCall:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class EvalCall(SystemCall):
    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


class PopenCall(SystemCall):
    def __reduce__(self):
        return subprocess.Popen, (["touch", str(self.marker)],)


@pytest.mark.parametrize("payload", [SystemCall, EvalCall, PopenCall])
@pytest.mark.parametrize("protocol", [2, 4])
def test_malicious_pickle_is_refused_before_running(tmp_path: Path, payload, protocol) -> None:
    batches = write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    evil = {**batches["train"][0], b"labels": payload(marker)}  # nested inside a real batch
    path.write_bytes(pickle.dumps(evil, protocol=protocol))
    with pytest.raises(UnsafePickleError, match="refusing to load global") as err:
        load_dataset("cifar10", data_dir=tmp_path)
    assert isinstance(err.value, ValueError) and str(path) in str(err.value)
    assert not marker.exists()


def test_the_malicious_payload_would_have_run(tmp_path: Path) -> None:
    """The marker test has teeth: the stdlib unpickler does run the payload."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(EvalCall(marker), protocol=2))
    assert marker.exists()


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x02c__builtin__\neval\nX\x04\x00\x00\x001+1\x85R.",
        b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00true\x85R.",
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00base64\x86R.",
    ],
)
def test_crafted_globals_are_refused(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "meta"
    path.write_bytes(raw)
    with pytest.raises(pickle.UnpicklingError, match="refusing") as err:
        load_pickle(path)
    assert isinstance(err.value, ValueError) and str(path) in str(err.value)


# -------------------------------------------------------------------------- image folders


def write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_imagefolder_split_layout_exact_rgb(tmp_path: Path) -> None:
    written = {}
    for split, n in (("train", 2), ("test", 1)):
        for cls in ("dog", "cat"):
            for i in range(n):
                arr = RNG.integers(0, 256, (5, 4, 3), dtype=np.uint8)
                write_png(tmp_path / split / cls / f"{i}.png", arr)
                written[(split, cls, i)] = arr
    (tmp_path / "test" / "bird").mkdir()  # only in test, empty: classes are a union
    write_png(tmp_path / "train" / "bird" / "0.png", written[("train", "cat", 0)])
    ds = load_dataset("imagefolder", split="train", data_dir=tmp_path)
    assert ds.classes == ("bird", "cat", "dog") and ds.x.shape == (5, 3, 5, 4)
    assert ds.y.tolist() == [0, 1, 1, 2, 2]
    expected = torch.from_numpy(written[("train", "dog", 1)]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(ds.x[4], expected, rtol=0, atol=0)
    assert ds.info.extra["files"][4].endswith(os.path.join("dog", "1.png"))
    test = load_dataset("imagefolder", split="test", data_dir=tmp_path)
    assert test.y.tolist() == [1, 2] and test.classes == ds.classes


def test_imagefolder_flat_layout_gray_split_by_seed(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        for i in range(10):
            write_png(
                tmp_path / cls / f"{i:02d}.png",
                np.full((3, 3), 10 * i + (cls == "b"), dtype=np.uint8),
            )
    train = load_dataset("imagefolder", split="train", data_dir=tmp_path, seed=1)
    test = load_dataset("imagefolder", split="test", data_dir=tmp_path, seed=1)
    assert train.x.shape == (16, 1, 3, 3) and len(test) == 4 and test.y.tolist() == [0, 0, 1, 1]
    files = set(train.info.extra["files"]) | set(test.info.extra["files"])
    assert len(files) == 20 and not set(train.info.extra["files"]) & set(test.info.extra["files"])
    again = load_dataset("imagefolder", split="test", data_dir=tmp_path, seed=1)
    assert again.info.extra["files"] == test.info.extra["files"]
    other = [
        load_dataset("imagefolder", split="test", data_dir=tmp_path, seed=s).info.extra["files"]
        for s in range(2, 6)
    ]
    assert any(f != test.info.extra["files"] for f in other)
    rgb = load_dataset("imagefolder", data_dir=tmp_path, mode="RGB", size=(6, 2))
    assert rgb.x.shape == (16, 3, 6, 2)
    half = load_dataset("imagefolder", split="test", data_dir=tmp_path, test_fraction=0.5)
    assert len(half) == 10


def test_holdout_mask_is_stratified() -> None:
    labels = np.repeat(np.arange(3), 10)
    mask = holdout_mask(labels, 3, 0.3, seed=0)
    assert np.bincount(labels[mask]).tolist() == [3, 3, 3]


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--data-dir"):
        load_dataset("imagefolder")
    with pytest.raises(FileNotFoundError):
        load_dataset("imagefolder", data_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no class folders"):
        load_dataset("imagefolder", data_dir=tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="hold no image"):
        load_dataset("imagefolder", data_dir=tmp_path)
    write_png(tmp_path / "empty_class" / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "empty_class" / "b.png", np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="b.png is 4x5 .* pass size"):
        load_dataset("imagefolder", data_dir=tmp_path, test_fraction=0.01)
    bad = tmp_path / "empty_class" / "b.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="cannot read image .*b.png"):
        load_dataset("imagefolder", data_dir=tmp_path, test_fraction=0.01)
    with pytest.raises(ValueError, match="size"):
        load_dataset("imagefolder", data_dir=tmp_path, size=(0, 3))
    with pytest.raises(TypeError, match="unexpected option"):
        load_dataset("imagefolder", data_dir=tmp_path, colour="red")


def test_imagefolder_truncated_png_and_missing_split(tmp_path: Path) -> None:
    write_png(tmp_path / "train" / "x" / "a.png", RNG.integers(0, 256, (16, 16, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="split 'test'"):
        load_dataset("imagefolder", split="test", data_dir=tmp_path)
    with pytest.raises(ValueError, match="test_fraction applies only"):
        load_dataset("imagefolder", data_dir=tmp_path, test_fraction=0.3)
    path = tmp_path / "train" / "x" / "a.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ValueError, match="cannot read image") as err:
        load_dataset("imagefolder", data_dir=tmp_path)
    assert str(path) in str(err.value)


# ----------------------------------------------------------------------------- no writes


def test_readers_never_write(tmp_path: Path) -> None:
    write_idx(tmp_path, "train", *digits_like(2), gz=True)
    write_cifar10(tmp_path)
    write_cifar100(tmp_path)
    write_png(tmp_path / "imgs" / "c" / "a.png", np.zeros((2, 2), np.uint8))
    write_png(tmp_path / "imgs" / "d" / "a.png", np.zeros((2, 2), np.uint8))

    def snapshot() -> dict[str, tuple[int, int]]:
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")}

    before = snapshot()
    load_dataset("mnist", data_dir=tmp_path)
    load_dataset("cifar10", data_dir=tmp_path)
    load_dataset("cifar100", split="test", data_dir=tmp_path)
    load_dataset("imagefolder", data_dir=tmp_path / "imgs")
    assert snapshot() == before
