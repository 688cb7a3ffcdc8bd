"""TOFU and FedAvg on Flower (``flwr``): a strategy, a client, and a command line for hosts.

Garg, Nagaraj & Roy, "TOFU: Towards Obfuscated Federated Updates by Encoding Weight Updates
into Gradients from Proxy Data" (arXiv 2201.08494).  The same pure functions as the round
loop (:mod:`netprism.federated.rounds`) behind Flower's legacy gRPC API
(``flwr.server.start_server`` / ``flwr.client.start_client``), which runs without Ray:

- the global weights travel as one float32 array ``(P,)``;
- a client answers a ``"full"`` round with its update ``(P,)`` and a ``"tofu"`` round with the
  four arrays of a :class:`~netprism.federated.tofu.ProxySet`;
- :class:`TOFUStrategy` decodes at the weights it sent, checks every reply (arrays, dtype,
  example count; :mod:`netprism.federated.messages`) and screens every update (shape,
  NaN/inf, norm): a rejected client is logged and recorded and the round goes on, so no
  client can crash the server.  It caps each client's FedAvg weight (``--max-weight-factor``
  times the round's median example count), aggregates (mean, median or trimmed mean) and
  counts uplink / downlink bytes.  All-``"full"`` is FedAvg.

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
from flwr.common import FitRes, Parameters, ndarrays_to_parameters
from flwr.server.client_proxy import ClientProxy
from torch import nn

from netprism.data import load_dataset
from netprism.data.base import TensorDataset
from netprism.data.transforms import partition_clients
from netprism.federated.aggregate import AGGREGATORS, aggregate, screen_updates
from netprism.federated.gradients import flat_params
from netprism.federated.messages import (
    DEFAULT_MAX_WEIGHT_FACTOR,
    Reply,
    cap_weights,
    check_weight_factor,
    declared_name,
    decode_tensors,
    failure_reasons,
    num_examples_problem,
    raw_bytes,
    short,
)
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
    name : str
        A label sent in the metrics (``"client"``) for the server's logs; not an identity.
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
        name: str = "",
    ) -> None:
        self.model = model
        self.name = name
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
        metrics: dict[str, Any] = {"kind": kind, "cosine": float(cos)}
        if self.name:
            metrics["client"] = self.name  # a label for the server's logs and summary
        return arrays, len(self.data), metrics

    def evaluate(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        weights = torch.from_numpy(np.asarray(parameters[0], dtype=np.float32))
        acc = accuracy_at(self.model, weights, self.data)
        return 0.0, len(self.data), {"accuracy": acc}


class TOFUStrategy(fl.server.strategy.FedAvg):
    """FedAvg whose ``aggregate_fit`` decodes TOFU messages, screens and aggregates updates.

    No client reply can crash the server: a reply with no or too many arrays, a dtype that is
    not floating-point, bytes that are no ``.npy`` array, an invalid ``num_examples``
    (not an int in ``[1, 2**53]``), a malformed proxy set, NaN/inf, a wrong shape or an
    update norm above ``max_norm`` is rejected: logged with its reason and the client's
    Flower id, and recorded in :attr:`history`.  Clients that raised (Flower's
    ``failures``) are recorded too.  The round goes on with the accepted clients, or is
    skipped (weights unchanged, the reason recorded) when fewer than ``min_accepted`` remain.

    FedAvg's weights are capped: a client counts at most ``max_weight_factor`` times the
    lower median ``num_examples`` of the round's accepted clients (see
    :func:`~netprism.federated.messages.cap_weights`), so one client cannot claim ``10**12``
    examples and decide the mean.  This bounds a client's *weight*; against poisoned
    *values* use ``aggregator="median"`` or ``"trimmed_mean"``.

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
    max_weight_factor : float
        The weight cap's factor (>= 1; ``inf`` disables the cap).
    min_accepted : int
        Fewer accepted updates than this skip the round.
    max_proxy : int
        Proxy sets with more samples are rejected (bounds the server's decoding work).
    test : TensorDataset, optional
        Evaluated on the server after every round.
    **kwargs : passed to ``flwr.server.strategy.FedAvg`` (e.g. ``min_fit_clients``).

    Attributes
    ----------
    weights : Tensor (P,)
        The current global weights.
    history : list of dict
        Per round: kind, uplink/downlink bytes, ``kept`` client ids and their FedAvg
        ``weights``, ``capped`` and ``rejected`` clients (id -> reason), ``names`` (id -> the
        name a client declared in its metrics), ``failures`` (count) and ``failure_reasons``,
        ``skipped`` (None or why) and the server's accuracy.
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
        max_weight_factor: float = DEFAULT_MAX_WEIGHT_FACTOR,
        min_accepted: int = 1,
        max_proxy: int = 1024,
        test: TensorDataset | None = None,
        **kwargs: Any,
    ) -> None:
        if aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {aggregator!r}")
        if not max_norm > 0:
            raise ValueError(f"max_norm must be positive, got {max_norm!r}")
        for name, value in (("min_accepted", min_accepted), ("max_proxy", max_proxy)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.model = model
        self.weights = flat_params(model)
        self.schedule = list(schedule)
        self.shape = (self.weights.numel(), tuple(input_shape), num_classes)
        self.aggregator = aggregator
        self.max_norm = max_norm
        self.max_weight_factor = check_weight_factor(max_weight_factor)
        self.min_accepted = min_accepted
        self.max_proxy = max_proxy
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

    def read_reply(self, item: object, index: int, server_round: int) -> Reply:
        """What the server reads from ``results[index]`` of a round; never raises on it."""
        kind = self._kind(server_round)
        proxy, res = item if isinstance(item, tuple) and len(item) == 2 else (None, item)
        cid = str(getattr(proxy, "cid", f"result {index}"))
        try:
            reply = self._read(cid, res, kind)
        except Exception as err:  # a client's reply must never crash the server
            logger.exception("client %s: internal error while reading its reply", cid)
            reply = Reply(cid, reason=f"internal error while reading the reply: {short(err)}")
        if reply.reason is not None:
            logger.warning("round %d: rejected client %s: %s", server_round, cid, reply.reason)
        return reply

    def _read(self, cid: str, res: object, kind: str) -> Reply:
        reply = Reply(cid, name=declared_name(getattr(res, "metrics", None)))
        tensors = getattr(getattr(res, "parameters", None), "tensors", None)
        arrays = decode_tensors(tensors)
        if isinstance(arrays, str):
            reply.nbytes = raw_bytes(tensors)
            reply.reason = arrays
            return reply
        reply.nbytes = sum(a.nbytes for a in arrays)
        n = getattr(res, "num_examples", None)
        reply.reason = num_examples_problem(n)
        if reply.reason is not None:
            return reply
        assert isinstance(n, int | np.integer)
        reply.num_examples = int(n)
        got = server_decode(
            arrays, kind, self.model, self.weights, self.shape, max_proxy=self.max_proxy
        )
        if isinstance(got, str):
            reply.reason = got
        else:
            reply.update = got
        return reply

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Any]]:
        kind = self._kind(server_round)
        replies = [self.read_reply(item, i, server_round) for i, item in enumerate(results)]
        readable = [r for r in replies if r.reason is None]
        screened = screen_updates(
            [r.update for r in readable],
            [r.num_examples for r in readable],
            self.shape[0],
            self.max_norm,
            ids=[r.cid for r in readable],
        )
        for c, reason in screened.rejected.items():
            readable[c].reason = reason
        kept = [readable[c] for c in screened.kept]
        rejected = {r.cid: r.reason for r in replies if r.reason is not None}
        record: dict[str, Any] = {
            "round": server_round,
            "kind": kind,
            "uplink_bytes": sum(r.nbytes for r in replies),
            "downlink_bytes": fedavg_bytes(self.shape[0]) * len(results),
            "kept": [r.cid for r in kept],
            "rejected": rejected,
            "names": {r.cid: r.name for r in replies if r.name is not None},
            "failures": len(failures),
            "failure_reasons": failure_reasons(failures, server_round),
            **self._apply(server_round, kept),
        }
        if self.test is not None:
            record["accuracy"] = accuracy_at(self.model, self.weights, self.test)
        self.history.append(record)
        params = ndarrays_to_parameters([self.weights.numpy()])
        return params, {"uplink_bytes": record["uplink_bytes"], "rejected": len(rejected)}

    def _apply(self, server_round: int, kept: list[Reply]) -> dict[str, Any]:
        """Aggregate the ``kept`` updates into :attr:`weights`; the record's weight fields."""
        if len(kept) < self.min_accepted:
            skipped = f"{len(kept)} accepted updates, fewer than min_accepted {self.min_accepted}"
            logger.warning("round %d skipped: %s", server_round, skipped)
            return {"weights": {}, "capped": {}, "skipped": skipped}
        weights, capped = cap_weights([r.num_examples for r in kept], self.max_weight_factor)
        for c, why in capped.items():
            logger.warning("round %d: client %s: %s", server_round, kept[c].cid, why)
        updates = [r.update for r in kept if r.update is not None]
        self.weights = self.weights + aggregate(updates, weights, self.aggregator)
        return {
            "weights": {r.cid: w for r, w in zip(kept, weights, strict=True)},
            "capped": {kept[c].cid: why for c, why in capped.items()},
            "skipped": None,
        }


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
        max_weight_factor=args.max_weight_factor,
        min_accepted=args.min_accepted,
        test=load_dataset("digits", split="test"),
        min_fit_clients=args.min_clients,
        min_available_clients=args.min_clients,
    )
    fl.server.start_server(
        server_address=args.address,
        config=fl.server.ServerConfig(
            num_rounds=args.rounds, round_timeout=args.round_timeout or None
        ),
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
        name=f"client-{args.client_id}",
    )
    fl.client.start_client(server_address=args.address, client=client.to_client(), insecure=True)


def _factor(text: str) -> float:
    """``--max-weight-factor``: a number >= 1 or ``inf`` (an argparse error otherwise)."""
    try:
        return check_weight_factor(float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err} ({text!r})") from None


def _positive_int(text: str) -> int:
    """An int >= 1 (an argparse error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return value


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
    cap = "a client's FedAvg weight is at most this times the median example count (inf: no cap)"
    srv.add_argument(
        "--max-weight-factor", type=_factor, default=DEFAULT_MAX_WEIGHT_FACTOR, help=cap
    )
    skip = "skip a round with fewer accepted updates"
    srv.add_argument("--min-accepted", type=_positive_int, default=1, help=skip)
    late = "seconds to wait for a round's clients (0: no limit); late ones count as failures"
    srv.add_argument("--round-timeout", type=float, default=0.0, help=late)
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
