"""Resume checks that a checkpoint belongs to the run: the JSON sidecar is hash-covered, a
checkpoint of another architecture, optimizer or config is refused naming what differs,
``resume="weights-only"`` carries the weights across a deliberate change, and an epoch outside
the run is refused."""

import json
import re

import pytest
import torch
from torch import nn

from netprism.train import (
    Callback,
    CheckpointError,
    ResumeMismatchError,
    TrainConfig,
    fit,
    latest_checkpoint,
)
from netprism.train.checkpoint import save_checkpoint

X = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


def _config(ckdir, **kw):
    base = dict(epochs=2, batch_size=8, lr=0.1, seed=0, device="cpu", progress=False)
    return TrainConfig(**{**base, "checkpoint_dir": str(ckdir), **kw})


def _model(out=2):
    torch.manual_seed(0)
    return nn.Linear(4, out)


def _trained(ckdir, **kw):
    """A finished 2-epoch run in ``ckdir`` (checkpoints epoch_0000 and epoch_0001)."""
    model = _model()
    out = fit(model, (X, Y), _config(ckdir, **kw))
    return model, out


class _StopAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, ctx, metrics):
        ctx.stop = ctx.epoch == self.epoch


class _WeightsAtStart(Callback):
    def on_fit_start(self, ctx):
        self.weights = {k: v.clone() for k, v in ctx.model.state_dict().items()}
        self.epoch = ctx.epoch


# --- the JSON sidecar is covered by meta_sha256 ---------------------------------------------


def _edit(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))  # a hand edit that keeps the JSON valid


def test_edited_json_is_skipped_for_the_previous_checkpoint(tmp_path):
    _trained(tmp_path)
    newest = tmp_path / "epoch_0001.json"
    _edit(newest, lambda meta: meta["config"].update(lr=0.2))
    with pytest.warns(RuntimeWarning, match="edited or corrupted") as caught:
        _, loaded = latest_checkpoint(tmp_path)
    assert str(newest) in str(caught[0].message) and loaded["epoch"] == 0
    with pytest.warns(RuntimeWarning, match="edited or corrupted"):
        out = fit(_model(), (X, Y), _config(tmp_path, resume=True))
    assert out.resumed_from == 0 and [h["epoch"] for h in out.history] == [0, 1]


def test_all_edited_json_is_refused(tmp_path):
    _trained(tmp_path)
    _edit(tmp_path / "epoch_0000.json", lambda meta: meta["history"][0].update(loss=0.0))
    _edit(tmp_path / "epoch_0001.json", lambda meta: meta.update(epoch=1, extra=True))
    with pytest.warns(RuntimeWarning), pytest.raises(CheckpointError) as info:
        fit(_model(), (X, Y), _config(tmp_path, resume=True))
    message = str(info.value)
    for name in ("epoch_0000.json", "epoch_0001.json"):
        assert str(tmp_path / name) in message
    assert message.count("does not match its 'meta_sha256'") == 2


def test_reformatted_json_stays_valid_and_unverifiable_json_is_refused(tmp_path):
    _trained(tmp_path)
    newest = tmp_path / "epoch_0001.json"
    meta = json.loads(newest.read_text())
    newest.write_text(json.dumps(meta, indent=4, sort_keys=True))  # same content, new layout
    _, loaded = latest_checkpoint(tmp_path)
    assert loaded["epoch"] == 1
    for path in (tmp_path / "epoch_0000.json", newest):  # as written before meta_sha256
        legacy = json.loads(path.read_text())
        del legacy["meta_sha256"]
        path.write_text(json.dumps(legacy))
    with pytest.warns(RuntimeWarning), pytest.raises(CheckpointError) as info:
        latest_checkpoint(tmp_path)
    message = str(info.value)
    assert str(newest) in message and "no 'meta_sha256'" in message


# --- a checkpoint of another run is refused, naming every difference ------------------------


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(lr=0.2), {"config.lr: saved 0.1, now 0.2", "optimizer group 0 initial_lr"}),
        (dict(epochs=3), {"config.epochs: saved 2, now 3"}),
        (dict(seed=1), {"config.seed: saved 0, now 1"}),
        (dict(batch_size=16), {"config.batch_size: saved 8, now 16"}),
        (
            dict(optimizer="adam"),
            {
                "config.optimizer: saved 'sgd', now 'adam'",
                "optimizer class: saved 'SGD', now 'Adam'",
            },
        ),
    ],
)
def test_other_config_or_optimizer_is_refused_naming_fields(tmp_path, change, named):
    _trained(tmp_path)
    with pytest.raises(ResumeMismatchError) as info:
        fit(_model(), (X, Y), _config(tmp_path, resume=True, **change))
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    for text in named:
        assert text in message, message
    config_fields = set(re.findall(r"config\.(\w+):", message))
    assert config_fields == set(change), message  # exactly the changed fields, no others
    assert str(tmp_path / "epoch_0001.json") in message
    assert 'resume="weights-only"' in message and f"delete {tmp_path}" in message


def test_other_architecture_is_refused_naming_keys_and_shapes(tmp_path):
    _trained(tmp_path)
    with pytest.raises(ResumeMismatchError) as info:
        fit(_model(out=3), (X, Y), _config(tmp_path, resume=True))
    message = str(info.value)
    assert "model key 'weight': saved shape (2, 4) float32, now shape (3, 4) float32" in message
    assert "model key 'bias': saved shape (2,) float32, now shape (3,) float32" in message
    assert "config." not in message  # the config is the same


def test_fields_that_do_not_define_the_run_may_change(tmp_path):
    ref = fit(_model(), (X, Y), _config(tmp_path / "ref", epochs=3))
    stopped = _model()
    fit(stopped, (X, Y), _config(tmp_path / "ck", epochs=3), callbacks=[_StopAfter(0)])
    out = fit(_model(), (X, Y), _config(tmp_path / "ck", epochs=3, resume=True, progress=True))
    assert out.resumed_from == 0 and out.history == ref.history


def test_step_schedule_survives_resume(tmp_path):
    # JSON turns MultiStepLR's int milestones into strings; restored as ints the lr still drops
    ref = fit(_model(), (X, Y), _config(tmp_path / "ref", epochs=4, scheduler="step"))
    cfg = _config(tmp_path / "ck", epochs=4, scheduler="step")
    fit(_model(), (X, Y), cfg, callbacks=[_StopAfter(1)])
    out = fit(_model(), (X, Y), _config(tmp_path / "ck", epochs=4, scheduler="step", resume=True))
    assert out.resumed_from == 1
    assert [h["lr"] for h in out.history] == [h["lr"] for h in ref.history]
    assert out.history == ref.history


# --- resume="weights-only" ------------------------------------------------------------------


def test_weights_only_loads_weights_and_restarts_at_epoch_0(tmp_path):
    trained, _ = _trained(tmp_path)
    start = _WeightsAtStart()
    cfg = _config(tmp_path, resume="weights-only", lr=0.05, epochs=1, optimizer="adam")
    out = fit(_model(), (X, Y), cfg, callbacks=[start])
    assert start.epoch == 0 and out.resumed_from is None
    assert [h["epoch"] for h in out.history] == [0]
    for k, v in trained.state_dict().items():
        assert torch.equal(start.weights[k], v)
    # the new run's checkpoint replaced the old run's, and resume=True continues the new run
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["epoch_0000.json"]
    _, meta = latest_checkpoint(tmp_path)
    assert meta["config"]["lr"] == 0.05 and meta["config"]["optimizer"] == "adam"
    again = fit(
        _model(), (X, Y), _config(tmp_path, resume=True, lr=0.05, epochs=1, optimizer="adam")
    )
    assert again.resumed_from == 0 and again.history == out.history


def test_weights_only_refuses_another_architecture_and_an_empty_folder(tmp_path):
    _trained(tmp_path / "ck")
    with pytest.raises(ResumeMismatchError) as info:
        fit(_model(out=3), (X, Y), _config(tmp_path / "ck", resume="weights-only"))
    message = str(info.value)
    assert "weights-only" in message and "model key 'weight': saved shape (2, 4)" in message
    assert sorted(p.name for p in (tmp_path / "ck").glob("*.json")) == [
        "epoch_0000.json",
        "epoch_0001.json",
    ]  # nothing of the old run was touched
    with pytest.raises(CheckpointError, match="holds none"):
        fit(_model(), (X, Y), _config(tmp_path / "empty", resume="weights-only"))


# --- epochs outside the run -----------------------------------------------------------------


def test_epoch_outside_the_run_is_refused(tmp_path):
    _trained(tmp_path)
    tensors, meta = latest_checkpoint(tmp_path)
    body = {k: v for k, v in meta.items() if k not in ("epoch", "sha256", "meta_sha256")}
    save_checkpoint(tmp_path, 5, tensors, body)  # validly hashed, but a 2-epoch run ends at 1
    with pytest.raises(ResumeMismatchError, match=r"records epoch 5, expected one in \[0, 1\]"):
        fit(_model(), (X, Y), _config(tmp_path, resume=True))


def test_epoch_not_matching_its_file_name_is_skipped(tmp_path):
    _trained(tmp_path)
    for suffix in (".json", ".safetensors"):
        (tmp_path / f"epoch_0001{suffix}").rename(tmp_path / f"epoch_0007{suffix}")
    with pytest.warns(RuntimeWarning, match="records epoch 1, expected 7"):
        _, meta = latest_checkpoint(tmp_path)
    assert meta["epoch"] == 0


@pytest.mark.parametrize("resume", ["weights_only", "yes", 1, None])
def test_resume_mode_is_validated(tmp_path, resume):
    with pytest.raises(ValueError, match=r"resume must be one of \(False, True, 'weights-only'\)"):
        _config(tmp_path, resume=resume)
    with pytest.raises(ValueError, match="resume='weights-only' needs checkpoint_dir"):
        TrainConfig(resume="weights-only")
