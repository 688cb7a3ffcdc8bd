"""A Flower client process that answers ``fit`` with a malformed reply (tests only).

``python misbehaving_client.py ADDRESS MODE`` joins the server at ``ADDRESS`` and, every
round, replies as ``MODE`` says (see ``MODES``); it names itself ``MODE`` in its metrics
(``{"client": MODE}``) so a test can find its record in the server's summary.
"""

import sys

import flwr as fl
import numpy as np
from flwr.common import Code, FitIns, FitRes, Parameters, Status

HUGE_STEP = 1e-3  # the "huge" client's full update: every coordinate HUGE_STEP
HUGE_COUNT = 10**12


def _valid_proxy(rng: np.random.Generator, n: int = 4) -> list[np.ndarray]:
    """A well-formed TOFU proxy set for the digits MLP (input (1, 8, 8), 10 classes)."""
    return [
        rng.normal(size=(n, 1, 8, 8)).astype(np.float32),
        rng.normal(size=(n, 10)).astype(np.float32),
        np.ones(n, dtype=np.float32),
        np.array([0.01], dtype=np.float32),
    ]


def reply(mode: str, p: int, kind: str) -> tuple[list[np.ndarray], int]:
    """The arrays and ``num_examples`` a client in ``mode`` sends for ``P = p`` weights."""
    zeros = np.zeros(p, dtype=np.float32)
    if mode == "empty":
        return [], 100
    if mode == "negative":
        return [zeros], -5
    if mode == "string":
        return [np.array(["a"] * p)], 100
    if mode == "bool":
        return [np.ones(p, dtype=bool)], 100
    if mode == "two_arrays":
        return [zeros, zeros], 100
    if mode == "huge":
        if kind == "tofu":
            return _valid_proxy(np.random.default_rng(0)), HUGE_COUNT
        return [np.full(p, HUGE_STEP, dtype=np.float32)], HUGE_COUNT
    raise ValueError(f"unknown mode {mode!r}")


class Misbehaving(fl.client.NumPyClient):
    def __init__(self, mode: str) -> None:
        self.mode = mode

    def fit(self, parameters, config):
        if self.mode == "raise":
            if int(config.get("round", 0)) >= 2:  # late, so earlier rounds are not stalled
                raise RuntimeError("this client fails on purpose")
            return [np.zeros(parameters[0].size, dtype=np.float32)], 100, {"client": "raise"}
        arrays, n = reply(self.mode, int(parameters[0].size), str(config.get("kind")))
        return arrays, n, {"client": self.mode}


class Garbage(fl.client.Client):
    """Sends bytes that are no ``.npy`` array at all (a raw Flower ``Client``)."""

    def fit(self, ins: FitIns) -> FitRes:
        return FitRes(
            status=Status(code=Code.OK, message="Success"),
            parameters=Parameters(tensors=[b"\x93NUMPY garbage"], tensor_type="numpy.ndarray"),
            num_examples=100,
            metrics={"client": "garbage"},
        )


def main() -> None:
    address, mode = sys.argv[1], sys.argv[2]
    client = Garbage() if mode == "garbage" else Misbehaving(mode).to_client()
    fl.client.start_client(server_address=address, client=client, insecure=True)


if __name__ == "__main__":
    main()
