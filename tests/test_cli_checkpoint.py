"""``netprism run train --checkpoint-dir DIR [--resume]``: an interrupted run resumes to the
same result; experiments that do not train one model refuse the two options."""

import importlib
import json

import pytest

from netprism.cli import main

# the package's ``run`` attribute is the registered function, so the modules by their names
train_run = importlib.import_module("netprism.experiments.train.run")
train_figures = importlib.import_module("netprism.experiments.train.figures")


@pytest.fixture
def fast_train(monkeypatch):
    """The ``train`` experiment without its baselines and figure (not what is tested here)."""
    baselines = {"majority_class": {"test_accuracy": 0.1}, "logistic_regression": {}}
    baselines["logistic_regression"]["test_accuracy"] = 0.9
    monkeypatch.setattr(train_run, "_baselines", lambda *args: baselines)
    monkeypatch.setattr(train_figures, "_plot_history", lambda history, out: "none.png")


def _run(out, *extra):
    argv = ["run", "train", "--scale", "tiny", "--out", str(out), "--data-dir", "none", *extra]
    assert main(argv) == 0
    return json.loads((out / "result.json").read_text())


def test_interrupted_run_resumes_to_the_same_result(tmp_path, fast_train, capsys):
    ckdir = tmp_path / "ck"
    whole = _run(tmp_path / "whole", "--checkpoint-dir", str(ckdir))
    assert whole["config"]["checkpoint_dir"] == str(ckdir) and not whole["config"]["resume"]
    assert "resumed_from_epoch" not in whole["metrics"]
    # a kill during the last epoch: its checkpoint was never committed
    (ckdir / "epoch_0002.json").unlink()
    resumed = _run(tmp_path / "resumed", "--checkpoint-dir", str(ckdir), "--resume")
    assert resumed["metrics"]["resumed_from_epoch"] == 1
    for key in ("test_accuracy", "test_loss", "train_accuracy"):
        assert resumed["metrics"][key] == whole["metrics"][key]  # bit for bit
    # another config in the same folder is refused, naming the field
    argv = ["run", "train", "--scale", "tiny", "--out", str(tmp_path / "x"), "--lr", "0.1"]
    capsys.readouterr()
    assert main([*argv, "--checkpoint-dir", str(ckdir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "config.lr: saved 0.05, now 0.1" in err and "weights-only" in err


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--checkpoint-dir", "ck"], "--checkpoint-dir"),
        (["--resume"], "--resume"),
        (["--checkpoint-dir=ck", "--resume"], "--checkpoint-dir/--resume"),
    ],
)
def test_experiment_without_the_fields_refuses_the_flags(tmp_path, capsys, flags, named):
    code = main(["run", "gpm", "--scale", "tiny", "--out", str(tmp_path / "o"), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert f"experiment 'gpm' does not take {named}" in err and "one model (train)" in err
    assert not (tmp_path / "o").exists()  # refused before any work


def test_resume_without_checkpoint_dir_is_a_clear_error(tmp_path, fast_train, capsys):
    assert main(["run", "train", "--scale", "tiny", "--out", str(tmp_path), "--resume"]) == 2
    assert "resume=True needs checkpoint_dir" in capsys.readouterr().err
