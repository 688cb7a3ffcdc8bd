"""A real Flower server and two clients as separate processes on 127.0.0.1, two rounds."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("flwr")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"server did not listen on port {port} within {timeout} s")


def test_two_process_flower_round_on_loopback(tmp_path):
    port = _free_port()
    addr = f"127.0.0.1:{port}"
    out = tmp_path / "summary.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    mod = [sys.executable, "-m", "netprism.federated.flower"]
    procs: list[subprocess.Popen] = []
    logs = [open(tmp_path / f"p{i}.log", "w") for i in range(3)]  # noqa: SIM115
    try:
        server = subprocess.Popen(
            [
                *mod,
                "server",
                "--address",
                addr,
                "--rounds",
                "2",
                "--full-rounds",
                "1",
                "--out",
                str(out),
            ],
            stdout=logs[0],
            stderr=subprocess.STDOUT,
            env=env,
        )
        procs.append(server)
        _wait_listening(port, server, timeout=30)
        for cid in (0, 1):
            procs.append(
                subprocess.Popen(
                    [
                        *mod,
                        "client",
                        "--address",
                        addr,
                        "--client-id",
                        str(cid),
                        "--n-clients",
                        "2",
                        "--encoder-steps",
                        "20",
                    ],
                    stdout=logs[cid + 1],
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        assert server.wait(timeout=45) == 0, (tmp_path / "p0.log").read_text()[-3000:]
    finally:
        _stop(procs, logs)
    summary = json.loads(out.read_text())
    rounds = summary["rounds"]
    assert [r["kind"] for r in rounds] == ["tofu", "full"]
    for r in rounds:
        assert len(r["kept"]) == 2 and r["rejected"] == {} and r["failures"] == 0
        assert 0.0 <= r["accuracy"] <= 100.0
    n_params = summary["n_params"]
    assert rounds[0]["uplink_bytes"] == 2 * 4 * (8 * (64 + 10 + 1) + 1)  # two proxy sets
    assert rounds[1]["uplink_bytes"] == 2 * 4 * n_params  # two full updates


BAD_CLIENT = os.path.join(os.path.dirname(__file__), "misbehaving_client.py")
# mode -> a part of the reason the server must record for it (both rounds)
REJECTED = {
    "empty": "no arrays",
    "negative": "num_examples -5 must be at least 1",
    "string": "dtype <U1 is not a floating-point type",
    "bool": "dtype bool is not a floating-point type",
    "garbage": ".npy",
}


def test_flower_server_survives_misbehaving_clients(tmp_path):
    """One honest client and seven bad ones against a real server: it rejects, caps, goes on."""
    port = _free_port()
    addr = f"127.0.0.1:{port}"
    out = tmp_path / "summary.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    mod = [sys.executable, "-m", "netprism.federated.flower"]
    modes = [*REJECTED, "huge", "raise"]
    n = 1 + len(modes)
    procs: list[subprocess.Popen] = []
    logs = [open(tmp_path / f"p{i}.log", "w") for i in range(n + 1)]  # noqa: SIM115
    server_cmd = [*mod, "server", "--address", addr, "--rounds", "2", "--full-rounds", "1"]
    try:
        server = subprocess.Popen(
            [*server_cmd, "--min-clients", str(n), "--out", str(out)],
            stdout=logs[0],
            stderr=subprocess.STDOUT,
            env=env,
        )
        procs.append(server)
        _wait_listening(port, server, timeout=30)
        honest_cmd = [*mod, "client", "--address", addr, "--client-id", "0", "--n-clients", "2"]
        honest = subprocess.Popen(
            [*honest_cmd, "--encoder-steps", "20"],
            stdout=logs[1],
            stderr=subprocess.STDOUT,
            env=env,
        )
        procs.append(honest)
        for i, mode in enumerate(modes):
            procs.append(
                subprocess.Popen(
                    [sys.executable, BAD_CLIENT, addr, mode],
                    stdout=logs[i + 2],
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        assert server.wait(timeout=60) == 0, (tmp_path / "p0.log").read_text()[-3000:]
        assert honest.wait(timeout=15) == 0, (tmp_path / "p1.log").read_text()[-3000:]
    finally:
        _stop(procs, logs)
    server_log = (tmp_path / "p0.log").read_text()
    rounds = json.loads(out.read_text())["rounds"]
    assert [r["kind"] for r in rounds] == ["tofu", "full"]
    for r in rounds:
        cid = {name: c for c, name in r["names"].items()}
        assert r["skipped"] is None and 0.0 <= r["accuracy"] <= 100.0
        assert sorted(r["kept"]) == sorted([cid["client-0"], cid["huge"]])
        for mode, reason in REJECTED.items():
            assert reason in r["rejected"][cid[mode]], (mode, r["rejected"])
            assert cid[mode] in server_log  # the log line names the client
        # the "huge" client's 10**12 examples count as 10 x the lower median (the honest one)
        honest_n = r["weights"][cid["client-0"]]
        assert r["weights"][cid["huge"]] == 10 * honest_n
        assert "capped to" in r["capped"][cid["huge"]]
    # "raise" sends a full update in the tofu round (rejected), then raises in round 2
    assert "expected 4" in rounds[0]["rejected"][_cid(rounds[0], "raise")]
    assert rounds[1]["failures"] == 1 and len(rounds[1]["failure_reasons"]) == 1
    assert "raise" not in rounds[1]["names"].values()


def _cid(record: dict, name: str) -> str:
    return next(c for c, n in record["names"].items() if n == name)


def _stop(procs, logs) -> None:
    """Kill what still runs and close the log files (the test's cleanup, pass or fail)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
    for f in logs:
        f.close()
