"""A file crafted to run code when unpickled, placed wherever netprism loads from (checkpoint
folder, saved-LM folder, LoRA adapter path, CIFAR folder, the mnist1d cache), is refused with a
clear ``ValueError`` and the code never runs (its marker file is never created).  A static
check keeps ``torch.load`` / ``pickle.load`` / ``np.load`` with pickles out of the package."""

import json
import os
import pickle
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

import netprism
from netprism.data import load_dataset
from netprism.data.embedded import _mnist1d_arrays
from netprism.data.readers import UnsafePickleError
from netprism.lm.lora import load_lora
from netprism.lm.model import ByteLM, LMConfig
from netprism.lm.train import load_lm
from netprism.train.checkpoint import CheckpointError, latest_checkpoint


class _Exploit:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def _payload(marker: Path, protocol: int = 2) -> bytes:
    return pickle.dumps({b"data": _Exploit(marker), b"labels": [0]}, protocol=protocol)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "the crafted pickle ran code"


def test_rel_payload_really_runs_code_when_unpickled(tmp_path):
    # the control: proves the refusals below are not vacuous
    path = tmp_path / "control"
    pickle.loads(_payload(path))
    assert path.exists()
    path.unlink()
    torch.save({"x": _Exploit(path)}, tmp_path / "control.pt")
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert path.exists()


def _torch_file(tmp_path: Path, marker: Path) -> bytes:
    torch.save({"model": _Exploit(marker)}, tmp_path / "evil.pt")
    return (tmp_path / "evil.pt").read_bytes()


@pytest.mark.parametrize("kind", ["pickle", "torch_zip"])
def test_rel_checkpoint_folder_refuses_pickles(tmp_path, marker, refuses, kind):
    folder = tmp_path / "ck"
    folder.mkdir()
    raw = _payload(marker, 4) if kind == "pickle" else _torch_file(tmp_path, marker)
    tensors = folder / "epoch_0007.safetensors"
    tensors.write_bytes(raw)
    (folder / "checkpoint.pt").write_bytes(raw)  # a name other tools use: never looked at
    meta = {"epoch": 7, "sha256": __import__("hashlib").sha256(raw).hexdigest()}
    (folder / "epoch_0007.json").write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning):
        err = refuses(lambda: latest_checkpoint(folder), tensors, folder, match="not a valid")
    assert isinstance(err, CheckpointError)


@pytest.mark.parametrize("kind", ["pickle", "torch_zip"])
def test_rel_lm_folder_refuses_pickles(tmp_path, marker, refuses, kind):
    folder = tmp_path / "lm"
    folder.mkdir()
    raw = _payload(marker, 4) if kind == "pickle" else _torch_file(tmp_path, marker)
    weights = folder / "model.safetensors"
    weights.write_bytes(raw)
    config = LMConfig(context=8, n_layers=2, d_model=8, n_heads=2, n_kv_heads=1)
    sha = __import__("hashlib").sha256(raw).hexdigest()
    (folder / "config.json").write_text(json.dumps({"config": config.to_dict(), "sha256": sha}))
    refuses(lambda: load_lm(folder), weights, folder, match="not a valid safetensors")


@pytest.mark.parametrize("kind", ["pickle", "torch_zip"])
def test_rel_lora_path_refuses_pickles(tmp_path, marker, refuses, kind):
    path = tmp_path / "adapter.safetensors"
    path.write_bytes(_payload(marker, 4) if kind == "pickle" else _torch_file(tmp_path, marker))
    model = ByteLM(LMConfig(context=8, n_layers=2, d_model=8, n_heads=2, n_kv_heads=1))
    refuses(lambda: load_lora(model, path), path, tmp_path, match="not a readable safetensors")


@pytest.mark.parametrize("protocol", [2, 4])
def test_rel_cifar_folder_refuses_pickles(tmp_path, marker, refuses, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    path = folder / "test_batch"
    path.write_bytes(_payload(marker, protocol))
    err = refuses(lambda: load_dataset("cifar10", split="test", data_dir=tmp_path), path, tmp_path)
    assert isinstance(err, UnsafePickleError) and "posix.system" in str(err)


def test_rel_mnist1d_cache_refuses_object_arrays(tmp_path, marker, monkeypatch):
    # a poisoned cache file is treated as corrupt (allow_pickle=False), never unpickled
    monkeypatch.setenv("NETPRISM_CACHE", str(tmp_path))
    path = tmp_path / "mnist1d_n200_split0.8.npz"
    evil = np.empty(1, dtype=object)
    evil[0] = _Exploit(marker)
    np.savez(path, x=evil, y=evil, x_test=evil, y_test=evil)
    arrays = _mnist1d_arrays(200, 0.8)
    assert arrays["x"].dtype != object and len(arrays["x"]) + len(arrays["x_test"]) == 200


def test_rel_package_never_unpickles_unrestricted():
    # the loaders above are the only ways in: no torch.load without weights_only=True, no bare
    # pickle.load(s), no np.load with pickles allowed, anywhere in the package
    src = Path(netprism.__file__).parent
    offenders = []
    for file in sorted(src.rglob("*.py")):
        text = file.read_text(encoding="utf-8")
        for m in re.finditer(r"torch\.load\((?![^)]*weights_only=True)", text):
            offenders.append(f"{file}:{text[: m.start()].count(chr(10)) + 1} torch.load")
        for m in re.finditer(r"pickle\.loads?\(|pickle\.Unpickler\((?!file)", text):
            offenders.append(f"{file}:{text[: m.start()].count(chr(10)) + 1} {m.group()}")
        for m in re.finditer(r"np\.load\((?![^)]*allow_pickle=False)", text):
            offenders.append(f"{file}:{text[: m.start()].count(chr(10)) + 1} np.load")
    assert not offenders, offenders


class _RawArray:
    """Unpickles through ``numpy.ndarray(*args)`` itself: no code runs, but the array is
    uninitialised memory (``(shape, dtype)``) or a zero-stride view of one byte."""

    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return np.ndarray, self.args


@pytest.mark.parametrize(
    "args",
    [((100, 3072), np.dtype("u1")), ((50_000, 3072), np.dtype("u1"), b"\x07", 0, (0, 0))],
    ids=["uninitialised", "zero_strides"],
)
def test_rel_cifar_folder_refuses_array_constructors(tmp_path, refuses, args):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    path = folder / "test_batch"
    n = args[0][0]
    path.write_bytes(pickle.dumps({b"data": _RawArray(*args), b"labels": [0] * n}, protocol=2))
    err = refuses(lambda: load_dataset("cifar10", split="test", data_dir=tmp_path), path, tmp_path)
    assert isinstance(err, UnsafePickleError) and "refusing to call numpy.ndarray" in str(err)
