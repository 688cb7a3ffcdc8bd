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
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        for f in logs:
            f.close()
    summary = json.loads(out.read_text())
    rounds = summary["rounds"]
    assert [r["kind"] for r in rounds] == ["tofu", "full"]
    for r in rounds:
        assert len(r["kept"]) == 2 and r["rejected"] == {} and r["failures"] == 0
        assert 0.0 <= r["accuracy"] <= 100.0
    n_params = summary["n_params"]
    assert rounds[0]["uplink_bytes"] == 2 * 4 * (8 * (64 + 10 + 1) + 1)  # two proxy sets
    assert rounds[1]["uplink_bytes"] == 2 * 4 * n_params  # two full updates
