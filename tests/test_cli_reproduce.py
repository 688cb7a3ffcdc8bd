"""``netprism reproduce --jobs``: experiments in parallel processes give what one after the
other gives; a failing one is reported and does not stop the others."""

from __future__ import annotations

import json

import pytest

from netprism.cli import main
from netprism.cli.reproduce import auto_jobs, run_in_processes


def _claims(folder):
    """Claims and metrics of a run, less its wall-clock timings (``*seconds*``)."""
    data = json.loads((folder / "result.json").read_text())
    metrics = {k: v for k, v in data["metrics"].items() if "seconds" not in k}
    claims = {c["id"]: c["measured"] for c in data["claims"]}
    return claims, metrics


def test_parallel_processes_give_the_sequential_results(tmp_path, capsys):
    names = ["train", "vrm_ood"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["reproduce", *names, "--scale", "tiny", "--jobs", "1", "--out", str(one)]) == 0
    assert main(["reproduce", *names, "--scale", "tiny", "--jobs", "2", "--out", str(two)]) == 0
    printed = capsys.readouterr().out
    assert "2 experiments, 2 at a time" in printed and "[2/2 done]" in printed
    for name in names:
        assert _claims(one / name) == _claims(two / name)  # seeded: bit-equal numbers
        assert (two / f"{name}.log").stat().st_size > 0  # the child's output went to its log
    assert (two / "report.html").exists()


def test_a_failing_experiment_is_reported_and_the_others_finish(tmp_path, capsys):
    seen = []
    failures = run_in_processes(["no_such_experiment", "train"], "tiny", tmp_path, 2, seen.append)
    assert failures == 1
    by_name = {r.name: r for r in seen}
    assert set(by_name) == {"no_such_experiment", "train"}
    assert [c.id for c in by_name["no_such_experiment"].claims] == ["ran"]
    assert not by_name["no_such_experiment"].claims[0].holds
    assert all(c.holds or c.id != "ran" for c in by_name["train"].claims)
    assert (tmp_path / "no_such_experiment" / "result.json").exists()
    err = capsys.readouterr().err
    assert "no_such_experiment failed" in err and "no_such_experiment" in err.split("end of")[1]


def test_jobs_option_is_checked_and_auto_is_sequential_at_full_scale(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:  # argparse's convention: status 2, one line
        main(["reproduce", "train", "--jobs", "0", "--out", str(tmp_path / "x")])
    assert stop.value.code == 2
    assert "--jobs" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert auto_jobs(16, "full") == 1
    assert 1 <= auto_jobs(16, "small") <= 4 and auto_jobs(1, "small") == 1
    with pytest.raises(ValueError, match="jobs must be >= 1, got 0"):
        run_in_processes(["train"], "tiny", tmp_path, 0, print)


def test_each_job_gets_its_share_of_the_cores(monkeypatch):
    import netprism.cli.reproduce as rep

    monkeypatch.setattr(rep, "_cores", lambda: 8)
    assert [rep.threads_per_job(j) for j in (1, 2, 3, 4, 16)] == [8, 4, 2, 2, 1]


def test_killing_reproduce_stops_its_running_experiments(tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "netprism", "reproduce", "memorization", "train"]
    parent = subprocess.Popen([*cmd, "--scale", "tiny", "--jobs", "2", "--out", str(out)])
    pids: list[int] = []
    deadline = time.monotonic() + 120
    while len(pids) < 2 and time.monotonic() < deadline:  # both children have started
        time.sleep(0.2)
        logs = [p.read_text() for p in out.glob("*.log")] if out.exists() else []
        pids = [int(m) for text in logs for m in re.findall(r"\(process (\d+)\)", text)]
    assert len(pids) == 2, "the children never wrote their logs' first line"
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=60) != 0
    for pid in pids:  # a child is gone once it can no longer be signalled (reaped by the parent)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"experiment process {pid} outlived the killed reproduce")


def test_parallel_runs_start_the_costliest_first(tmp_path, monkeypatch):
    """With several jobs the longest experiments start first, so a short one finishes last;
    the order given on the command line does not matter."""
    import netprism.cli as cli
    from netprism.experiments import EXPERIMENTS

    started: list[str] = []
    monkeypatch.setattr(cli, "run_in_processes", lambda names, *a: started.extend(names) or 0)
    names = ["train", "memorization_grid", "vrm_ood", "afm"]
    args = ["--scale", "tiny", "--jobs", "2", "--out", str(tmp_path)]
    assert main(["reproduce", *names, *args]) == 0
    costs = [EXPERIMENTS.get(n).cost for n in started]
    assert sorted(started) == sorted(names) and costs == sorted(costs, reverse=True)
    assert started[:2] == ["memorization_grid", "afm"]
