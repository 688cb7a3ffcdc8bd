"""TOFU and FedAvg on Flower (``flwr``): a strategy, a client, and a command line for hosts.

Garg, Nagaraj & Roy, "TOFU: Towards Obfuscated Federated Updates by Encoding Weight Updates
into Gradients from Proxy Data" (arXiv 2201.08494).  The same pure functions as the round
loop (:mod:`netprism.federated.rounds`) behind Flower's legacy gRPC API
(``flwr.server.start_server`` / ``flwr.client.start_client``), which runs without Ray:

- the global weights travel as one float32 array ``(P,)``;
- a client answers a ``"full"`` round with its update ``(P,)`` and a ``"tofu"`` round with the
  four arrays of a :class:`~netprism.federated.tofu.ProxySet`;
- :class:`TOFUStrategy` decodes at the weights it sent, screens every update (shape,
  NaN/inf, norm; a rejected client is logged and the round goes on), aggregates (mean,
  median or trimmed mean) and counts uplink / downlink bytes.  All-``"full"`` is FedAvg.

Across hosts::

    python -m netprism.federated.flower server --address 0.0.0.0:8080 --rounds 20 --full-rounds 3
    python -m netprism.federated.flower client --address SERVER:8080 --client-id 0 --n-clients 2
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flwr as fl
import numpy as np
import torch
from flwr.common import FitRes, Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_proxy import ClientProxy
from torch import nn

from netprism.data import load_dataset
from netprism.data.base import TensorDataset
from netprism.data.transforms import partition_clients
from netprism.federated.aggregate import aggregate, screen_updates
from netprism.federated.gradients import flat_params
from netprism.federated.rounds import (
    BEHAVIOURS,
    EncoderConfig,
    accuracy_at,
    check_local_config,
    client_message,
    local_update,
    server_decode,
)
from netprism.federated.tofu import fedavg_bytes, hybrid_schedule
from netprism.io import atomic_write_text
from netprism.models import create_model
from netprism.train import TrainConfig

logger = logging.getLogger(__name__)


class TOFUClient(fl.client.NumPyClient):
    """A Flower client that trains locally and sends a full update or a TOFU proxy set.

    Parameters
    ----------
    model : nn.Module
        The shared architecture (a scratch copy; its weights are overwritten).
    data : TensorDataset
        This client's private samples.
    config : TrainConfig, optional
        The local training recipe; default :func:`~netprism.federated.rounds.local_config`
        (its ``seed`` and ``device`` stay at their defaults, see
        :func:`~netprism.federated.rounds.check_local_config`).
    encoder : EncoderConfig, optional
        TOFU's encoder budget.
    behaviour : str
        "honest", or a planted fault from ``rounds.BEHAVIOURS`` (tests, robustness runs).
    """

    def __init__(
        self,
        model: nn.Module,
        data: TensorDataset,
        *,
        config: TrainConfig | None = None,
        encoder: EncoderConfig | None = None,
        behaviour: str = "honest",
        seed: int = 0,
    ) -> None:
        self.model = model
        self.data = data
        self.config = check_local_config(config, "TOFUClient")
        self.encoder = encoder or EncoderConfig()
        self.behaviour = behaviour
        self.seed = seed

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return [flat_params(self.model).numpy()]

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        weights = torch.from_numpy(np.asarray(parameters[0], dtype=np.float32))
        kind = str(config.get("kind", "full"))
        rnd = int(config.get("round", 0))
        seed = self.seed * 10_007 + rnd * 101
        update = local_update(self.model, weights, self.data, self.config, seed=seed)
        shape = (weights.numel(), tuple(self.data.input_shape), self.data.num_classes)
        arrays, cos, _ = client_message(
            kind, self.behaviour, update, self.model, weights, shape, self.encoder, seed
        )
        return arrays, len(self.data), {"kind": kind, "cosine": float(cos)}

    def evaluate(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        weights = torch.from_numpy(np.asarray(parameters[0], dtype=np.float32))
        acc = accuracy_at(self.model, weights, self.data)
        return 0.0, len(self.data), {"accuracy": acc}


class TOFUStrategy(fl.server.strategy.FedAvg):
    """FedAvg whose ``aggregate_fit`` decodes TOFU messages, screens and aggregates updates.

    Parameters
    ----------
    model : nn.Module
        The architecture and initial global weights.
    schedule : sequence of {"full", "tofu"}
        One kind per round; all "full" is FedAvg.
    input_shape, num_classes : the shape of one sample and ``K`` (to read proxy sets).
    aggregator : {"mean", "median", "trimmed_mean"}
    max_norm : float
        Larger decoded updates are rejected.
    test : TensorDataset, optional
        Evaluated on the server after every round.
    **kwargs : passed to ``flwr.server.strategy.FedAvg`` (e.g. ``min_fit_clients``).

    Attributes
    ----------
    weights : Tensor (P,)
        The current global weights.
    history : list of dict
        Per round: kind, uplink/downlink bytes, kept and rejected clients, accuracy.
    """

    def __init__(
        self,
        model: nn.Module,
        schedule: Sequence[str],
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        aggregator: str = "mean",
        max_norm: float = 1e3,
        test: TensorDataset | None = None,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.weights = flat_params(model)
        self.schedule = list(schedule)
        self.shape = (self.weights.numel(), tuple(input_shape), num_classes)
        self.aggregator = aggregator
        self.max_norm = max_norm
        self.test = test
        self.history: list[dict[str, Any]] = []
        kwargs.setdefault("fraction_evaluate", 0.0)
        kwargs.setdefault("min_evaluate_clients", 0)
        super().__init__(
            initial_parameters=ndarrays_to_parameters([self.weights.numpy()]),
            on_fit_config_fn=self._fit_config,
            **kwargs,
        )

    def _fit_config(self, server_round: int) -> dict[str, Any]:
        return {"kind": self._kind(server_round), "round": server_round}

    def _kind(self, server_round: int) -> str:
        return self.schedule[min(server_round, len(self.schedule)) - 1]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Any]]:
        kind = self._kind(server_round)
        received: list[torch.Tensor | str] = []
        sizes, ids, up = [], [], 0
        for proxy, res in results:
            arrays = parameters_to_ndarrays(res.parameters)
            up += sum(np.asarray(a).nbytes for a in arrays)
            received.append(server_decode(arrays, kind, self.model, self.weights, self.shape))
            sizes.append(res.num_examples)
            ids.append(proxy.cid)
        screened = screen_updates(received, sizes, self.shape[0], self.max_norm)
        rejected = {ids[c]: r for c, r in screened.rejected.items()}
        for c, item in enumerate(received):
            if isinstance(item, str):
                logger.warning("rejected the update of client %s: %s", ids[c], item)
                rejected[ids[c]] = item
        record: dict[str, Any] = {
            "round": server_round,
            "kind": kind,
            "uplink_bytes": up,
            "downlink_bytes": fedavg_bytes(self.shape[0]) * len(results),
            "kept": [ids[c] for c in screened.kept],
            "rejected": rejected,
            "failures": len(failures),
        }
        if screened.updates:
            step = aggregate(screened.updates, screened.weights, self.aggregator)
            self.weights = self.weights + step
        if self.test is not None:
            record["accuracy"] = accuracy_at(self.model, self.weights, self.test)
        self.history.append(record)
        params = ndarrays_to_parameters([self.weights.numpy()])
        return params, {"uplink_bytes": up, "rejected": len(rejected)}


def _digits_setup(hidden: Sequence[int], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=tuple(hidden))


def serve(args: argparse.Namespace) -> dict[str, Any]:
    """Run a Flower server for ``args.rounds`` rounds on digits; return its summary."""
    model = _digits_setup(args.hidden, args.seed)
    strategy = TOFUStrategy(
        model,
        hybrid_schedule(args.rounds, args.full_rounds),
        input_shape=(1, 8, 8),
        num_classes=10,
        aggregator=args.aggregator,
        test=load_dataset("digits", split="test"),
        min_fit_clients=args.min_clients,
        min_available_clients=args.min_clients,
    )
    fl.server.start_server(
        server_address=args.address,
        config=fl.server.ServerConfig(num_rounds=args.rounds),
        strategy=strategy,
    )
    summary = {"rounds": strategy.history, "n_params": int(strategy.weights.numel())}
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(summary, indent=1))
    return summary


def join(args: argparse.Namespace) -> None:
    """Run one Flower client holding shard ``client_id`` of an IID digits partition."""
    model = _digits_setup(args.hidden, args.seed)
    parts = partition_clients(load_dataset("digits"), args.n_clients, seed=args.seed)
    if not 0 <= args.client_id < args.n_clients:
        raise ValueError(f"client-id must lie in [0, {args.n_clients}), got {args.client_id}")
    client = TOFUClient(
        model,
        parts[args.client_id],
        encoder=EncoderConfig(n_proxy=args.n_proxy, steps=args.encoder_steps),
        behaviour=args.behaviour,
        seed=args.seed * 1000 + args.client_id,
    )
    fl.client.start_client(server_address=args.address, client=client.to_client(), insecure=True)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m netprism.federated.flower {server,client} ...`` (see the module doc)."""
    parser = argparse.ArgumentParser(prog="python -m netprism.federated.flower")
    sub = parser.add_subparsers(dest="role", required=True)
    srv = sub.add_parser("server", help="aggregate TOFU / FedAvg updates (digits MLP)")
    cli = sub.add_parser("client", help="train on one shard of digits and send updates")
    for p in (srv, cli):
        p.add_argument("--address", default="127.0.0.1:8080")
        p.add_argument("--hidden", type=int, nargs="*", default=[32])
        p.add_argument("--seed", type=int, default=0)
    srv.add_argument("--rounds", type=int, default=3)
    srv.add_argument("--full-rounds", type=int, default=1, help="FedAvg rounds at the end")
    srv.add_argument("--min-clients", type=int, default=2)
    srv.add_argument("--aggregator", default="mean", choices=["mean", "median", "trimmed_mean"])
    srv.add_argument("--out", default="", help="write the per-round summary (JSON) here")
    cli.add_argument("--client-id", type=int, required=True)
    cli.add_argument("--n-clients", type=int, default=2)
    cli.add_argument("--n-proxy", type=int, default=8)
    cli.add_argument("--encoder-steps", type=int, default=100)
    cli.add_argument("--behaviour", default="honest", choices=BEHAVIOURS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.role == "server":
        serve(args)
    else:
        join(args)


if __name__ == "__main__":
    main()
