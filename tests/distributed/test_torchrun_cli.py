"""End to end: ``torchrun --nproc-per-node 2 -m netprism run train --scale tiny`` on gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netprism.experiments import load_experiments
from netprism.experiments.base import execute

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside python")
def test_torchrun_train_writes_one_result_equal_to_single_process(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        str(TORCHRUN),
        "--standalone",  # rendezvous on a free local port
        "--nproc-per-node",
        "2",
        "-m",
        "netprism",
        "run",
        "train",
        "--scale",
        "tiny",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("running train at scale tiny") == 1  # rank 0 alone prints
    assert sorted(p.name for p in out.iterdir()) == ["result.json", "training_curves.png"]
    got = json.loads((out / "result.json").read_text())

    load_experiments()
    want = execute("train", scale="tiny", out_dir=tmp_path / "single")
    assert got["metrics"]["test_accuracy"] == pytest.approx(
        want.metrics["test_accuracy"], abs=2 / want.metrics["n_test"]
    )
    assert got["metrics"]["test_loss"] == pytest.approx(want.metrics["test_loss"], rel=1e-3)


def test_unwritable_output_fails_before_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    load_experiments()
    with pytest.raises(OSError, match="output folder"):
        execute("train", scale="tiny", out_dir=blocker / "out", epochs=10_000)


_TIMING = ("seconds", "time", "core-seconds", "cost ratio")  # wall-clock derived


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside python")
@pytest.mark.parametrize("name", ["gpm", "memorization"])
def test_torchrun_gpm_and_memorization_equal_single_process(tmp_path: Path, name: str) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "netprism", "run"]
    proc = subprocess.run(
        [*cmd, name, "--scale", "tiny", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(f"running {name} at scale tiny") == 1
    got = json.loads((out / "result.json").read_text())
    load_experiments()
    want = execute(name, scale="tiny", out_dir=tmp_path / "single")
    compared = 0
    for key, value in want.metrics.items():
        if any(t in key for t in _TIMING) or not isinstance(value, (int, float)):
            continue
        assert got["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        compared += 1
    assert compared >= 5
    timed = [c.id for c in want.claims if "cost" in c.id]  # wall-clock claims may differ
    assert {c["id"]: c["holds"] for c in got["claims"] if c["id"] not in timed} == {
        c.id: c.holds for c in want.claims if c.id not in timed
    }
