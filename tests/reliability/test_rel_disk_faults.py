"""Disk full and read-only output folders: a clear ``OSError`` naming the path, raised before
work is lost -- the previous file or checkpoint intact and loadable, no temp file left.

Disk full is simulated by failing the low-level write/fsync with ``ENOSPC`` and, where this
process may mount, by a real 64 KiB tmpfs.  Read-only folders: ``chmod`` (not for root, who
ignores it), plus checks that hold for root too -- a file where the folder should be, a path
below a file, a read-only tmpfs mount and sysfs.
"""

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

import netprism.io as nio
import netprism.train.checkpoint as ck
from netprism.data import load_dataset
from netprism.io import atomic_write, atomic_write_bytes, ensure_writable_dir
from netprism.lm.lora import add_lora, load_lora, save_lora
from netprism.lm.model import ByteLM, LMConfig
from netprism.lm.train import load_lm, save_lm
from netprism.train import TrainConfig, fit, latest_checkpoint

ROOT = os.geteuid() == 0
TINY_LM = LMConfig(context=8, n_layers=2, d_model=8, n_heads=2, n_kv_heads=1)


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp") or "probe" in p.name]


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 64 KiB file system (root with mount rights only; skipped elsewhere, where the
    monkeypatched ENOSPC tests still run)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode()[:200]}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _remount_read_only(mnt: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)


# --- ensure_writable_dir --------------------------------------------------------------------


def _read_only_cases(tmp_path: Path) -> dict[str, Path]:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    return {"file_in_place": blocker, "below_a_file": blocker / "out"}


@pytest.mark.parametrize("case", ["file_in_place", "below_a_file"])
def test_rel_ensure_writable_dir_refuses_unusable_path(tmp_path, case):
    path = _read_only_cases(tmp_path)[case]
    with pytest.raises(OSError, match=str(path)):
        ensure_writable_dir(path)
    assert _no_temp_files(tmp_path)


@pytest.mark.skipif(ROOT, reason="root ignores chmod; the root-proof cases cover this")
def test_rel_ensure_writable_dir_refuses_chmod_read_only(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=f"output folder {folder} is not writable"):
            ensure_writable_dir(folder / "run")
        with pytest.raises(PermissionError, match=str(folder)):
            atomic_write_bytes(folder / "x.bin", b"data")
    finally:
        folder.chmod(0o755)


def test_rel_ensure_writable_dir_refuses_read_only_file_system(tiny_tmpfs):
    (tiny_tmpfs / "run").mkdir()
    _remount_read_only(tiny_tmpfs)
    with pytest.raises(OSError, match=f"{tiny_tmpfs / 'run'}") as info:
        ensure_writable_dir(tiny_tmpfs / "run")
    assert info.value.errno == errno.EROFS


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="no sysfs")
def test_rel_ensure_writable_dir_refuses_sysfs():
    # read-only for everyone, root included
    path = Path("/sys/kernel/netprism-out")
    with pytest.raises(OSError, match=str(path)):
        ensure_writable_dir(path)
    assert not path.exists()


def test_rel_ensure_writable_dir_reports_disk_full(tmp_path, monkeypatch):
    monkeypatch.setattr(nio.os, "write", _enospc)
    with pytest.raises(OSError, match=f"cannot write to output folder {tmp_path / 'run'}") as info:
        ensure_writable_dir(tmp_path / "run")
    assert info.value.errno == errno.ENOSPC
    assert _no_temp_files(tmp_path)


# --- atomic_write ---------------------------------------------------------------------------


def _half_then_enospc(data: bytes):
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            _enospc()

    return write


@pytest.mark.parametrize("stage", ["write", "fsync", "rename"])
def test_rel_atomic_write_disk_full_keeps_previous_file(tmp_path, monkeypatch, stage):
    target = tmp_path / "out" / "weights.bin"
    atomic_write_bytes(target, b"previous version")
    new = b"N" * 10_000
    if stage == "fsync":
        monkeypatch.setattr(nio.os, "fsync", _enospc)
    if stage == "rename":
        monkeypatch.setattr(nio.os, "replace", _enospc)
    write = _half_then_enospc(new) if stage == "write" else (lambda tmp: tmp.write_bytes(new))
    with pytest.raises(OSError, match=f"cannot write {target}") as info:
        atomic_write(target, write)
    assert info.value.errno == errno.ENOSPC and "No space left" in str(info.value)
    assert target.read_bytes() == b"previous version"
    assert sorted(p.name for p in target.parent.iterdir()) == ["weights.bin"]


def test_rel_atomic_write_real_disk_full(tiny_tmpfs):
    target = tiny_tmpfs / "weights.bin"
    atomic_write_bytes(target, b"previous version")
    with pytest.raises(OSError, match=f"cannot write {target}") as info:
        atomic_write_bytes(target, os.urandom(256 * 1024))
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"previous version"
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["weights.bin"]


# --- checkpoints ----------------------------------------------------------------------------


def _two_checkpoints(folder: Path) -> None:
    ck.save_checkpoint(folder, 0, {"w": torch.zeros(4)}, {"note": "first"})
    ck.save_checkpoint(folder, 1, {"w": torch.ones(4)}, {"note": "second"})


@pytest.mark.parametrize("stage", ["tensors", "json"])
def test_rel_checkpoint_save_disk_full_keeps_previous(tmp_path, monkeypatch, stage):
    folder = tmp_path / "ck"
    _two_checkpoints(folder)
    if stage == "tensors":
        real = ck.save_file

        def save_file(tensors, path):
            real(tensors, path)
            with open(path, "r+b") as fh:  # the disk filled up half-way through
                fh.truncate(os.path.getsize(path) // 2)
            _enospc()

        monkeypatch.setattr(ck, "save_file", save_file)
    else:
        real_fsync = os.fsync

        def fsync(fd):  # the tensors made it; the JSON commit marker does not
            if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp") and ".json." in os.readlink(
                f"/proc/self/fd/{fd}"
            ):
                _enospc()
            real_fsync(fd)

        monkeypatch.setattr(nio.os, "fsync", fsync)
    with pytest.raises(OSError, match="cannot save checkpoint epoch_0002") as info:
        ck.save_checkpoint(folder, 2, {"w": torch.full((4,), 2.0)}, {"note": "third"})
    assert info.value.errno == errno.ENOSPC
    assert str(folder) in str(info.value) and "intact" in str(info.value)
    monkeypatch.undo()
    tensors, meta = latest_checkpoint(folder)
    assert meta["epoch"] == 1 and torch.equal(tensors["w"], torch.ones(4))
    names = sorted(p.name for p in folder.iterdir() if p.suffix == ".json")
    assert names == ["epoch_0000.json", "epoch_0001.json"]  # nothing pruned on failure
    assert _no_temp_files(folder)


def test_rel_checkpoint_save_real_disk_full(tiny_tmpfs):
    ck.save_checkpoint(tiny_tmpfs, 0, {"w": torch.zeros(4)}, {"note": "small"})
    with pytest.raises(OSError, match="cannot save checkpoint epoch_0001") as info:
        ck.save_checkpoint(tiny_tmpfs, 1, {"w": torch.randn(64 * 1024)}, {"note": "big"})
    assert info.value.errno == errno.ENOSPC
    tensors, meta = latest_checkpoint(tiny_tmpfs)
    assert meta["epoch"] == 0 and torch.equal(tensors["w"], torch.zeros(4))
    assert _no_temp_files(tiny_tmpfs)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def _cfg(ckdir=None, resume=False):
    return TrainConfig(
        epochs=4,
        batch_size=256,
        lr=0.05,
        seed=2,
        progress=False,
        device="cpu",
        checkpoint_dir=None if ckdir is None else str(ckdir),
        resume=resume,
    )


def test_rel_fit_disk_full_mid_run_then_resume_loses_nothing_saved(tmp_path, monkeypatch):
    data = load_dataset("digits")
    reference = _model()
    ref = fit(reference, data, _cfg())
    real, calls = ck.save_file, []

    def save_file(tensors, path):
        calls.append(path)
        if len(calls) == 3:  # epoch 2's save hits a full disk
            _enospc()
        real(tensors, path)

    monkeypatch.setattr(ck, "save_file", save_file)
    with pytest.raises(OSError, match="cannot save checkpoint epoch_0002") as info:
        fit(_model(), data, _cfg(tmp_path / "ck"))
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    model = _model()
    out = fit(model, data, _cfg(tmp_path / "ck", resume=True))
    assert out.resumed_from == 1 and out.history == ref.history
    for a, b in zip(reference.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_rel_fit_unwritable_checkpoint_dir_is_named(tmp_path):
    blocker = tmp_path / "ck"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match=str(blocker)):
        fit(_model(), load_dataset("digits"), _cfg(blocker))


def test_rel_fit_unwritable_checkpoint_dir_fails_before_training(tmp_path):
    blocker = tmp_path / "ck"
    blocker.write_text("not a folder")
    epochs = []

    class Count:
        def on_epoch_start(self, ctx):
            epochs.append(ctx.epoch)

    with pytest.raises(OSError, match=str(blocker)):
        fit(_model(), load_dataset("digits"), _cfg(blocker), callbacks=[Count()])
    assert epochs == []


# --- saved LMs and adapters -----------------------------------------------------------------


def test_rel_save_lm_disk_full_keeps_previous(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = ByteLM(TINY_LM)
    folder = save_lm(model, TINY_LM, tmp_path / "lm")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    monkeypatch.setattr(nio.os, "fsync", _enospc)
    with pytest.raises(OSError, match=str(folder / "model.safetensors")) as info:
        save_lm(model, TINY_LM, folder)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    loaded, _ = load_lm(folder)  # the first save, intact and passing its checksum
    torch.manual_seed(0)
    for a, b in zip(ByteLM(TINY_LM).state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert _no_temp_files(folder)


def test_rel_save_lora_disk_full_keeps_previous(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = add_lora(ByteLM(TINY_LM), rank=2, alpha=2.0)
    path = save_lora(model, tmp_path / "adapter.safetensors")
    before = path.read_bytes()
    monkeypatch.setattr(nio.os, "fsync", _enospc)
    with pytest.raises(OSError, match=str(path)):
        save_lora(model, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    torch.manual_seed(0)
    load_lora(ByteLM(TINY_LM), path)
    assert _no_temp_files(tmp_path)
