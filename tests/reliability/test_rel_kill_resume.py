"""SIGKILL a training run at several points -- mid-epoch and at every phase of a checkpoint
save -- once or twice in a row, resume, and require the exact weights and history of an
uninterrupted run.

``tests/train/test_fit.py`` already kills once mid-epoch (epoch 2) and once after the tensors'
temp file is written; these scenarios cover the other points: before the first checkpoint,
two kills in a row, a half-written tensors file, before the JSON commit marker, with the JSON
written but not renamed, and after the commit but before pruning.
"""

import multiprocessing
import os
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

import netprism.io as nio
import netprism.train.checkpoint as ck
from netprism.data import load_dataset
from netprism.train import TrainConfig, fit, latest_checkpoint


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Dropout(0.2), nn.Linear(24, 10)
    )


def make_config(ckdir=None, resume=False):
    return TrainConfig(
        epochs=4,
        batch_size=128,
        lr=0.05,
        seed=3,
        progress=False,
        device="cpu",
        checkpoint_dir=ckdir,
        resume=resume,
    )


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def reference(data):
    model = make_model()
    out = fit(model, data, make_config())
    return out.history, model.state_dict()


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _train_until_killed(ckdir: str, data, kind: str, at_epoch: int, arg) -> None:
    """Child process body: train with the kill point armed (its own copy of the modules, so
    the patches below never reach the test process)."""
    state = {"epoch": -1, "batch": -1}

    class KillPoint:
        def on_epoch_start(self, ctx):
            state["epoch"], state["batch"] = ctx.epoch, -1

        def on_batch_end(self, ctx, batch):
            state["batch"] += 1
            if kind == "batch" and ctx.epoch == at_epoch and state["batch"] == arg:
                _die()

    def saving(phase):
        return kind == "save" and state["epoch"] == at_epoch and arg == phase

    real_save_file, real_write_text, real_prune = ck.save_file, ck.atomic_write_text, ck._prune

    def save_file(tensors, path):
        real_save_file(tensors, path)
        if saving("tensors_partial"):  # the tensors' temp file only half on disk
            with open(path, "r+b") as fh:
                fh.truncate(os.path.getsize(path) // 2)
            _die()

    def atomic_write_text(path, text):
        if saving("before_json"):  # tensors renamed into place, no JSON yet
            _die()
        if saving("json_tmp"):  # JSON fully written to its temp file, not renamed

            def write(tmp):
                Path(tmp).write_text(text)
                _die()

            return nio.atomic_write(path, write)
        return real_write_text(path, text)

    def prune(directory):
        if saving("before_prune"):  # committed, older ones not yet pruned
            _die()
        real_prune(directory)

    ck.save_file, ck.atomic_write_text, ck._prune = save_file, atomic_write_text, prune
    resume = os.path.isdir(ckdir)
    fit(make_model(), data, make_config(ckdir, resume=resume), callbacks=[KillPoint()])
    os._exit(3)  # the kill point was never reached


def _kill_run(ckdir, data, kind, epoch, arg):
    # fork: a real separate process that SIGKILLs itself, without paying a fresh interpreter
    # and torch import per kill (tests/train/test_fit.py covers the fresh-interpreter case).
    proc = multiprocessing.get_context("fork").Process(
        target=_train_until_killed, args=(str(ckdir), data, kind, epoch, arg)
    )
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == -signal.SIGKILL, proc.exitcode


def _latest_epoch(ckdir):
    found = latest_checkpoint(ckdir)
    return None if found is None else found[1]["epoch"]


# Each scenario: the kills in order, each (kind, epoch, batch index or save phase, the
# newest valid checkpoint epoch expected afterwards).
SCENARIOS = {
    "before_first_checkpoint": [("batch", 0, 3, None)],
    "twice_mid_epoch": [("batch", 1, 0, 0), ("batch", 3, 6, 2)],
    "half_written_tensors_then_mid_epoch": [
        ("save", 1, "tensors_partial", 0),
        ("batch", 2, 2, 1),
    ],
    "before_json_then_json_not_renamed": [
        ("save", 2, "before_json", 1),
        ("save", 2, "json_tmp", 1),
    ],
    "after_commit_before_prune": [("save", 1, "before_prune", 1)],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_rel_sigkill_then_resume_matches_uninterrupted(tmp_path, data, reference, name):
    ref_history, ref_state = reference
    ckdir = tmp_path / "ck"
    for kind, epoch, arg, expect_latest in SCENARIOS[name]:
        _kill_run(ckdir, data, kind, epoch, arg)
        assert _latest_epoch(ckdir) == expect_latest
    model = make_model()
    out = fit(model, data, make_config(str(ckdir), resume=True))
    assert out.resumed_from == SCENARIOS[name][-1][3]
    assert out.history == ref_history
    state = model.state_dict()
    assert state.keys() == ref_state.keys()
    for key, value in ref_state.items():
        assert torch.equal(state[key], value), key
    names = sorted(p.name for p in ckdir.iterdir())
    assert names == [  # two newest kept, no temp file or orphan left
        "epoch_0002.json",
        "epoch_0002.safetensors",
        "epoch_0003.json",
        "epoch_0003.safetensors",
    ]


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "delete_tensors", "garbage_json"])
def test_rel_resume_skips_corrupted_newest_checkpoint(tmp_path, data, reference, damage):
    ref_history, ref_state = reference
    ckdir = tmp_path / "ck"
    _kill_run(ckdir, data, "batch", 3, 1)  # checkpoints of epochs 1 and 2 on disk
    tensors, meta = ckdir / "epoch_0002.safetensors", ckdir / "epoch_0002.json"
    raw = tensors.read_bytes()
    if damage == "truncate":
        tensors.write_bytes(raw[: len(raw) - 100])
    elif damage == "flip_byte":
        tensors.write_bytes(raw[:-9] + bytes([raw[-9] ^ 1]) + raw[-8:])
    elif damage == "delete_tensors":
        tensors.unlink()
    else:
        meta.write_text('{"epoch": 2, "sha256": ')
    model = make_model()
    with pytest.warns(RuntimeWarning, match="skipping invalid checkpoint") as caught:
        out = fit(model, data, make_config(str(ckdir), resume=True))
    assert str(meta if damage == "garbage_json" else tensors) in str(caught[0].message)
    assert out.resumed_from == 1 and out.history == ref_history
    for key, value in ref_state.items():
        assert torch.equal(model.state_dict()[key], value), key
