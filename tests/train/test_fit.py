import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from netprism.data import load_dataset
from netprism.train import Callback, TrainConfig, evaluate, fit, latest_checkpoint, resolve_device
from netprism.train.checkpoint import save_checkpoint


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10)
    )


def _config(tmp_path=None, **kw):
    base = dict(epochs=4, batch_size=128, lr=0.05, seed=1, progress=False, device="cpu")
    if tmp_path is not None:
        base["checkpoint_dir"] = str(tmp_path)
    return TrainConfig(**{**base, **kw})


def test_fit_learns_and_evaluate_matches_history():
    ds = load_dataset("synthetic", n=300, num_classes=3, dim=8, seed=0)
    torch.manual_seed(0)  # the init is drawn before fit seeds anything
    model = nn.Linear(8, 3)
    out = fit(model, ds, _config(epochs=5), val=ds)
    assert out.final["accuracy"] > 0.95 and out.history[0]["loss"] > out.final["loss"]
    ev = evaluate(model, ds, device="cpu")
    assert ev["n"] == 300 and abs(ev["accuracy"] - out.final["val_accuracy"]) < 1e-12


def test_fit_accepts_plain_tensors_and_dataloader():
    x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=7)
    a = fit(nn.Linear(3, 2), (x, y), _config(epochs=1))
    b = fit(nn.Linear(3, 2), loader, _config(epochs=1))
    assert len(a.history) == len(b.history) == 1


class _Recorder(Callback):
    def __init__(self):
        self.seen, self.epochs = [], []

    def on_batch_end(self, ctx, batch):
        assert batch.loss.shape == batch.index.shape and batch.logits.shape[1] == 10
        self.seen.append(batch.index)

    def on_epoch_end(self, ctx, metrics):
        self.epochs.append(ctx.epoch)
        metrics["custom"] = 1.0


def test_callbacks_see_every_sample_once_per_epoch():
    ds = load_dataset("digits")
    rec = _Recorder()
    out = fit(_model(), ds, _config(epochs=2), callbacks=[rec])
    assert rec.epochs == [0, 1] and out.final["custom"] == 1.0
    per_epoch = torch.cat(rec.seen).reshape(2, -1)
    for row in per_epoch:
        assert torch.equal(row.sort().values, torch.arange(len(ds)))
    assert not torch.equal(per_epoch[0], per_epoch[1])  # reshuffled each epoch


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(epochs=-1), "epochs"),
        (dict(lr=0.0), "lr"),
        (dict(optimizer="rmsprop"), "optimizer"),
        (dict(scheduler="linear"), "scheduler"),
        (dict(resume=True), "checkpoint_dir"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_fit_rejects_bad_data():
    with pytest.raises(ValueError, match="finite"):
        fit(nn.Linear(2, 2), (torch.tensor([[float("nan"), 0.0]]), torch.tensor([0])), _config())
    with pytest.raises(ValueError, match="labels"):
        fit(nn.Linear(2, 2), (torch.zeros(2, 2), torch.tensor([0.0, 1.0])), _config())
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    assert resolve_device("auto").type in ("cpu", "cuda")


_SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch
    from torch import nn
    import netprism.train.checkpoint as ck
    from netprism.data import load_dataset
    from netprism.train import Callback, TrainConfig, fit
    torch.set_num_threads(1)
    mode, ckdir = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2),
                          nn.Linear(32, 10))

    class KillMidEpoch(Callback):
        def on_batch_end(self, ctx, batch):
            if ctx.epoch == 2 and batch.index.numel() and self.__dict__.setdefault("n", 0) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            self.n = self.__dict__.get("n", 0) + (ctx.epoch == 2)

    if mode == "save":  # die after the tensors are written, before the rename
        real = ck.save_file
        def dying_save(tensors, path):
            real(tensors, path)
            if any(k.startswith("model.") for k in tensors) and ck._checkpoints(
                    __import__("pathlib").Path(ckdir)).__len__() == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        ck.save_file = dying_save
    cbs = [KillMidEpoch()] if mode == "batch" else []
    cfg = TrainConfig(epochs=4, batch_size=128, lr=0.05, seed=1, progress=False, device="cpu",
                      checkpoint_dir=ckdir)
    fit(model, load_dataset("digits"), cfg, callbacks=cbs)
""")


@pytest.mark.parametrize("mode", ["batch", "save"])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, mode):
    ds = load_dataset("digits")
    reference = _model()
    ref = fit(reference, ds, _config())
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    ckdir = tmp_path / "ck"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        [sys.executable, str(script), mode, str(ckdir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr  # killed, not finished
    saved = sorted(p.name for p in ckdir.iterdir() if not p.name.startswith("."))
    assert saved == [
        "epoch_0000.json",
        "epoch_0000.safetensors",
        "epoch_0001.json",
        "epoch_0001.safetensors",
    ]
    tensors, meta = latest_checkpoint(ckdir)
    assert meta["epoch"] == 1 and "model.1.weight" in tensors
    resumed_model = _model()
    resumed = fit(resumed_model, ds, _config(ckdir, resume=True))
    assert resumed.resumed_from == 1
    assert resumed.history == ref.history
    for a, b in zip(reference.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    assert not list(ckdir.glob(".*.tmp"))  # the dead save's temp file was cleaned up


def test_checkpoint_with_bad_hash_is_skipped(tmp_path):
    save_checkpoint(tmp_path, 0, {"w": torch.zeros(2)}, {"note": "a"})
    save_checkpoint(tmp_path, 1, {"w": torch.ones(2)}, {"note": "b"})
    (tmp_path / "epoch_0001.safetensors").write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="SHA-256"):
        tensors, meta = latest_checkpoint(tmp_path)
    assert meta["epoch"] == 0 and torch.equal(tensors["w"], torch.zeros(2))
    meta_file = json.loads((tmp_path / "epoch_0000.json").read_text())
    assert meta_file["note"] == "a" and len(meta_file["sha256"]) == 64
    assert latest_checkpoint(tmp_path / "missing") is None


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    out = fit(_model(), load_dataset("digits"), _config(tmp_path, resume=True, epochs=1))
    assert out.resumed_from is None and len(out.history) == 1


def test_checkpoints_order_by_epoch_number_past_9999(tmp_path):
    for epoch in (9998, 9999, 10000):
        save_checkpoint(tmp_path, epoch, {"w": torch.full((1,), float(epoch))}, {})
    tensors, meta = latest_checkpoint(tmp_path)
    assert meta["epoch"] == 10000 and float(tensors["w"]) == 10000.0
    assert (tmp_path / "epoch_10000.json").exists()  # pruning kept the newest, by number
