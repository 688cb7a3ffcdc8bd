"""MemorizationCallback on a real PyTorch Lightning Trainer (the `[lightning]` extra)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pl = pytest.importorskip("pytorch_lightning")
# Lightning 2.6's own pytree helper calls an API torch 2.13 deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*")

from netprism.core.metrics import auroc  # noqa: E402
from netprism.data import load_dataset, with_label_noise  # noqa: E402
from netprism.integrations.lightning import MemorizationCallback  # noqa: E402
from netprism.memorization import (  # noqa: E402
    DEFAULT_LABEL_ISSUE_METHOD,
    MemorizationMonitor,
    find_label_issues,
)


class Indexed(torch.utils.data.Dataset):
    """The user's dataset: items ``(x, y, index)``."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        return x, y, i


class Classifier(pl.LightningModule):
    def __init__(self, lr=3e-3, epochs=30, return_logits=False):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
        )
        self.lr, self.epochs, self.return_logits = lr, epochs, return_logits

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y, _ = batch
        logits = self(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        return {"loss": loss, "logits": logits} if self.return_logits else loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)]


def _trainer(epochs, callback, **kw):
    settings = dict(
        max_epochs=epochs, accelerator="cpu", devices=1, callbacks=[callback], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    return pl.Trainer(**{**settings, **kw})


@pytest.fixture(scope="module")
def digits_run():
    pl.seed_everything(0, verbose=False)
    noisy, flipped = with_label_noise(load_dataset("digits"), 0.1, seed=0)
    epochs = 30
    callback = MemorizationCallback(
        noisy, methods=("loss", "aum", "curvature"), every=5, n_probes=3
    )
    loader = torch.utils.data.DataLoader(Indexed(noisy), batch_size=64, shuffle=True)
    module = Classifier(epochs=epochs)
    _trainer(epochs, callback).fit(module, loader)
    return noisy, flipped, callback, module


def test_lightning_run_finds_planted_label_noise(digits_run):
    noisy, flipped, callback, _ = digits_run
    scores = callback.scores()
    assert len(scores[DEFAULT_LABEL_ISSUE_METHOD]) == len(noisy)
    assert auroc(flipped, scores[DEFAULT_LABEL_ISSUE_METHOD]) >= 0.95  # the issue's bar
    top = find_label_issues(scores, fraction=0.1)
    assert flipped[top].float().mean() > 0.7
    # Batches carry their index, so the training loss was observed for every sample.
    assert "train_loss" in scores.names and bool(torch.isfinite(scores["train_loss"]).all())
    assert auroc(flipped, scores["train_loss"]) > 0.9
    assert [int(m["epoch"]) for m in callback.history_] == list(range(30))
    assert scores.per_epoch["curvature"].shape == (6, len(noisy))  # epochs 0, 5, ..., 25


def test_scoring_leaves_lightnings_module_as_it_was(digits_run):
    _, _, callback, module = digits_run
    # The forward hook is gone after fit, and a second scoring changes nothing in the model.
    assert not module._forward_hooks
    before = [p.detach().clone() for p in module.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in module.parameters()]
    module.train()
    rng = torch.get_rng_state()
    callback.monitor.epoch_end(module, 30)
    assert module.training and torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))
    for g, p in zip(grads, module.parameters()):
        assert (g is None and p.grad is None) or torch.equal(g, p.grad)


def test_dict_batches_and_returned_logits_are_observed():
    x, y = torch.randn(40, 1, 8, 8), torch.randint(0, 10, (40,))

    class DictItems(torch.utils.data.Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return {"x": x[i], "y": y[i], "index": i}

    class DictModule(Classifier):
        def training_step(self, batch, batch_idx):
            logits = self(batch["x"]) + 0 * self(batch["x"])  # two forwards: needs "logits"
            loss = torch.nn.functional.cross_entropy(logits, batch["y"])
            return {"loss": loss, "logits": logits}

    cb = MemorizationCallback((x, y), methods=("loss",))
    loader = torch.utils.data.DataLoader(DictItems(), batch_size=16, shuffle=True)
    _trainer(2, cb).fit(DictModule(epochs=2), loader)
    s = cb.scores()
    assert s.names == ["loss", "csl", "train_loss"] and bool(torch.isfinite(s["train_loss"]).all())


def test_batches_without_index_still_give_epoch_scores():
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))

    class Plain(Classifier):
        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return torch.nn.functional.cross_entropy(self(xb), yb)

    cb = MemorizationCallback((x, y), methods=("loss", "curvature"), n_probes=1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    _trainer(2, cb).fit(Plain(epochs=2), loader)
    assert sorted(cb.scores().names) == ["curvature", "loss"]


def test_monitor_or_score_data_but_not_both():
    with pytest.raises(ValueError, match="score_data"):
        MemorizationCallback()
    monitor = MemorizationMonitor((torch.randn(4, 2), torch.tensor([0, 1, 0, 1])))
    with pytest.raises(ValueError, match="not both"):
        MemorizationCallback(monitor=monitor, n_probes=2)
    assert MemorizationCallback(monitor=monitor).monitor is monitor


_DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    import pytorch_lightning as pl
    sys.path.insert(0, {test_dir!r})
    from test_lightning import Classifier, Indexed
    from netprism.data import load_dataset, with_label_noise
    from netprism.integrations.lightning import MemorizationCallback
    from netprism.core.metrics import auroc
    from netprism.memorization import DEFAULT_LABEL_ISSUE_METHOD

    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    noisy, flipped = with_label_noise(load_dataset("digits"), 0.1, seed=0)
    cb = MemorizationCallback(noisy, methods=("loss", "aum", "curvature"), every=5, n_probes=3)
    loader = torch.utils.data.DataLoader(Indexed(noisy), batch_size=32, shuffle=True)
    trainer = pl.Trainer(
        max_epochs=30, accelerator="cpu", devices=2, strategy="ddp", callbacks=[cb],
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Classifier(epochs=30), loader)
    s = cb.scores()
    if trainer.global_rank == 0:
        default = s[DEFAULT_LABEL_ISSUE_METHOD]
        print("RESULT", len(default), auroc(flipped, default),
              int(torch.isfinite(s["train_loss"]).sum()), s.per_epoch["curvature"].shape[0])
    """
)


def test_ddp_two_cpu_processes(tmp_path):
    """DDP on 2 CPU processes (gloo): each rank trains and scores its shard; both ranks end
    with all N scores in index order.  Lightning's "ddp" strategy re-launches the running
    script for rank 1, so the run is a script, not a pytest process (about 20 s on 2 cores,
    mostly the two interpreters' imports)."""
    script = tmp_path / "ddp_run.py"
    script.write_text(_DDP_SCRIPT.format(test_dir=str(Path(__file__).parent)))
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    n, score, observed, curvature_epochs = line.split()[1:]
    noisy = load_dataset("digits")
    assert int(n) == len(noisy) and int(observed) == len(noisy)  # both ranks' shards merged
    assert int(curvature_epochs) == 6
    assert float(score) >= 0.95


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # a fresh folder on purpose
def test_checkpoint_resume_continues_the_scores(tmp_path):
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    loader = torch.utils.data.DataLoader(
        Indexed(torch.utils.data.TensorDataset(x, y)), batch_size=8, shuffle=True
    )
    first = MemorizationCallback((x, y), methods=("loss",))
    trainer = _trainer(2, first, enable_checkpointing=True, default_root_dir=tmp_path)
    trainer.fit(Classifier(epochs=4), loader)
    ckpt = next(tmp_path.rglob("*.ckpt"))
    resumed = MemorizationCallback((x, y), methods=("loss",))
    _trainer(4, resumed, enable_checkpointing=True, default_root_dir=tmp_path / "r").fit(
        Classifier(epochs=4), loader, ckpt_path=ckpt
    )
    assert [int(m["epoch"]) for m in resumed.history_] == [0, 1, 2, 3]
    assert resumed.monitor.scores().per_epoch["loss"].shape == (4, 32)
    assert torch.equal(resumed.scores().per_epoch["loss"][:2], first.scores().per_epoch["loss"])
