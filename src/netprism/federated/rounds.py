"""A plain-PyTorch federated round loop: FedAvg, TOFU, hybrid schedules and bad clients.

Garg, Nagaraj & Roy, "TOFU: Towards Obfuscated Federated Updates by Encoding Weight Updates
into Gradients from Proxy Data" (arXiv 2201.08494).  Every round each client trains locally
(a :class:`~netprism.train.TrainConfig` recipe through :func:`netprism.train.fit`, by
default :func:`local_config`'s plain SGD) from the global weights, then sends either its
full update (``"full"`` round) or a TOFU proxy set (``"tofu"`` round); the server decodes,
screens (shape, NaN/inf, norm), aggregates and applies.  Bytes are counted from the float32
arrays that would cross the wire.  This is the in-process twin of
:mod:`netprism.federated.flower` for experiments and tests.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from netprism.data.base import TensorDataset
from netprism.federated.aggregate import aggregate, screen_updates
from netprism.federated.gradients import flat_params, load_flat_params
from netprism.federated.messages import arrays_problem
from netprism.federated.tofu import ProxySet, decode_update, encode_update, fedavg_bytes
from netprism.train import TrainConfig, fit, resolve_device
from netprism.train.config import require_train_config

BEHAVIOURS = ("honest", "sign_flip", "nan", "wrong_shape", "huge_norm")
DOWNLINKS = ("full", "tofu")


def local_config(*, epochs: int = 1, lr: float = 0.1, batch_size: int = 32) -> TrainConfig:
    """The default recipe of a client's local training (:func:`local_update`): plain SGD (no
    momentum, no weight decay) at a constant ``lr``, no progress bar.

    Examples
    --------
    >>> cfg = local_config(epochs=2)
    >>> cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.scheduler, cfg.batch_size
    ('sgd', 0.1, 0.0, 0.0, 'none', 32)
    """
    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=0.0,
        weight_decay=0.0,
        optimizer="sgd",
        scheduler="none",
        progress=False,
    )


# Fields of a local recipe that the federated loop sets itself: name -> (value, why).
_SET_BY_LOOP: dict[str, tuple[Any, str]] = {
    "seed": (0, "the sample order's seed is the seed= argument, per client and round"),
    "device": ("auto", "local training runs on the device= argument"),
    "checkpoint_dir": (None, "a client's local epochs are not checkpointed"),
    "resume": (False, "a client's local epochs are not checkpointed"),
}


def check_local_config(config: Any, owner: str = "local_update") -> TrainConfig:
    """``config`` as a client's local recipe (:func:`local_config` when None).

    Every :class:`~netprism.train.TrainConfig` field is honoured by
    :func:`netprism.train.fit` (optimizer, momentum, weight decay, scheduler, label
    smoothing, gradient clipping, progress) except those the loop sets itself: ``seed`` and
    ``device`` come from the ``seed=`` / ``device=`` arguments, and there are no
    checkpoints; setting any of them raises a ValueError naming the field.  A value that is
    not a ``TrainConfig`` raises a TypeError.
    """
    return require_train_config(config, local_config(), owner, _SET_BY_LOOP)


@dataclass(frozen=True)
class EncoderConfig:
    """TOFU's encoder budget: ``n_proxy`` samples, ``steps`` Adam steps of size ``lr``."""

    n_proxy: int = 8
    steps: int = 100
    lr: float = 0.1


@dataclass
class RoundLog:
    """Per-round record of a federated run (lists have one entry per round)."""

    kinds: list[str] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    uplink_bytes: list[int] = field(default_factory=list)
    downlink_bytes: list[int] = field(default_factory=list)
    cosines: list[list[float]] = field(default_factory=list)
    decode_errors: list[float] = field(default_factory=list)
    rejected: list[dict[int, str]] = field(default_factory=list)
    snapshots: dict[int, tuple[torch.Tensor, list[torch.Tensor]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kinds": self.kinds,
            "accuracy": self.accuracy,
            "uplink_bytes": self.uplink_bytes,
            "downlink_bytes": self.downlink_bytes,
            "cosines": self.cosines,
            "decode_errors": self.decode_errors,
            "rejected": [{str(k): v for k, v in r.items()} for r in self.rejected],
        }


def local_update(
    model: nn.Module,
    weights: torch.Tensor,
    data: TensorDataset,
    config: TrainConfig | None = None,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """``W_local - W_global`` ``(P,)`` after local training from ``weights`` on ``data``.

    ``config`` is the local recipe trained by :func:`netprism.train.fit`; default
    :func:`local_config` (plain SGD, no momentum, no weight decay, constant lr).  Its
    ``seed`` and ``device`` must stay at their defaults (see :func:`check_local_config`):
    the loop passes them as arguments.  The sample order of every local epoch comes from one
    generator seeded with ``seed`` that runs on across the epochs; the global RNGs are
    neither reseeded nor drawn from.  ``model`` is a scratch copy whose parameters are
    overwritten; it trains on ``device`` (default: where the loaded ``weights`` are), and
    the update is returned on ``weights``' device.  A client whose training diverges (a
    non-finite loss) returns an all-NaN update, which the server's screen rejects.

    Examples
    --------
    >>> from netprism.data.base import DatasetInfo
    >>> _ = torch.manual_seed(0)
    >>> info = DatasetInfo("toy", ("a", "b", "c"), (4,), "example")
    >>> data = TensorDataset(torch.randn(40, 4), torch.randint(0, 3, (40,)), info)
    >>> model = nn.Linear(4, 3)
    >>> update = local_update(model, flat_params(model), data, seed=1)
    >>> update.shape, bool(update.abs().sum() > 0)
    (torch.Size([15]), True)
    """
    config = check_local_config(config)
    load_flat_params(model, weights)  # the parameters now live on weights' device
    gen = torch.Generator().manual_seed(seed)
    n = len(data)

    def order(epoch: int) -> torch.Tensor:  # called once per epoch: one stream across them
        return torch.randperm(n, generator=gen)

    config = dataclasses.replace(
        config, seed=seed, device=str(weights.device) if device is None else str(device)
    )
    try:
        fit(model, data, config, order=order, reseed=False, distributed=False)
    except FloatingPointError:  # the engine stops before a non-finite step
        return torch.full_like(weights, float("nan"))
    finally:
        # No stale gradients left on the training device: the next load_flat_params may
        # put the parameters back on the CPU, where the wire-format weights live.
        model.zero_grad(set_to_none=True)
    return flat_params(model).to(weights.device) - weights


@torch.no_grad()
def accuracy_at(
    model: nn.Module,
    weights: torch.Tensor,
    data: TensorDataset,
    *,
    device: str | torch.device | None = None,
) -> float:
    """Test accuracy in percent of ``model`` at the flat ``weights``, computed on ``device``
    (default: where ``weights`` are)."""
    load_flat_params(model, weights)
    dev = weights.device if device is None else resolve_device(device)
    model.eval().to(dev)
    x, y = data.x.to(dev), data.y.to(dev)
    return 100.0 * float((model(x).argmax(1) == y).float().mean())


def client_message(
    kind: str,
    behaviour: str,
    update: torch.Tensor,
    model: nn.Module,
    weights: torch.Tensor,
    shape: tuple[int, tuple[int, ...], int],
    encoder: EncoderConfig,
    seed: int,
) -> tuple[list[np.ndarray], float, torch.Tensor | None]:
    """What one client sends: arrays, its encoder cosine (NaN for full), its own decode."""
    if behaviour == "sign_flip":
        update = -update
    elif behaviour == "huge_norm":
        update = update * 1e6
    if kind == "full":
        if behaviour == "nan":
            update = update.clone()
            update[0] = float("nan")
        if behaviour == "wrong_shape":
            update = torch.cat([update, torch.zeros(1)])
        return [update.detach().numpy().astype(np.float32)], float("nan"), None
    _, input_shape, k = shape
    proxy, cos = encode_update(
        model,
        weights,
        update,
        input_shape=input_shape,
        num_classes=k,
        n_proxy=encoder.n_proxy,
        steps=encoder.steps,
        lr=encoder.lr,
        seed=seed,
    )
    own = decode_update(model, weights, proxy)
    arrays = proxy.to_arrays()
    if behaviour == "nan":
        arrays[0][0] = np.nan
    if behaviour == "wrong_shape":
        arrays[0] = arrays[0][..., :-1]
    return arrays, cos, own


def server_decode(
    arrays: object,
    kind: str,
    model: nn.Module,
    weights: torch.Tensor,
    shape: tuple[int, tuple[int, ...], int],
    *,
    max_proxy: int | None = None,
) -> torch.Tensor | str:
    """The update the server reads from a client's ``arrays``, or why it cannot read one.

    Never raises on what a client sent: the wrong number of arrays, a dtype that is not
    floating-point (see :func:`~netprism.federated.messages.arrays_problem`), a proxy set of
    inconsistent sizes, more than ``max_proxy`` proxy samples or NaN/inf in it are returned
    as reasons.  A full update's shape, finiteness and norm are left to
    :func:`~netprism.federated.aggregate.screen_updates`.
    """
    problem = arrays_problem(arrays, kind, max_proxy)
    if problem is not None:
        return problem
    assert isinstance(arrays, list | tuple)
    with np.errstate(over="ignore"):  # float64 beyond float32 becomes inf, rejected later
        if kind == "full":
            return torch.from_numpy(np.array(arrays[0], dtype=np.float32))
        try:
            proxy = ProxySet.from_arrays(list(arrays), shape[1], shape[2])
        except ValueError as err:
            return f"bad proxy set: {err}"
    return decode_update(model, weights, proxy)


def run_rounds(
    model: nn.Module,
    clients: Sequence[TensorDataset],
    test: TensorDataset,
    *,
    schedule: Sequence[str],
    config: TrainConfig | None = None,
    encoder: EncoderConfig = EncoderConfig(),
    aggregator: str = "mean",
    trim: float = 0.2,
    behaviours: Sequence[str] | None = None,
    max_norm: float = 1e3,
    downlink: str = "full",
    seed: int = 0,
    keep_rounds: Sequence[int] = (),
    device: str | torch.device | None = None,
) -> RoundLog:
    """Run ``len(schedule)`` rounds from ``model``'s current weights (not modified).

    Parameters
    ----------
    schedule : sequence of {"full", "tofu"}
        The kind of each round (see :func:`~netprism.federated.tofu.hybrid_schedule`).
    config : TrainConfig, optional
        Every client's local recipe; default :func:`local_config`.  Its ``seed`` and
        ``device`` must stay at their defaults: the loop derives each client's order seed
        from ``seed`` and trains on ``device`` (see :func:`check_local_config`).
    encoder : EncoderConfig
        TOFU's encoder budget (not a training recipe: it fits proxy data, not the model).
    aggregator : {"mean", "median", "trimmed_mean"}
        FedAvg's sample-weighted mean or a robust rule.
    behaviours : one of ``BEHAVIOURS`` per client, optional
        Planted misbehaviour; "honest" for every client by default.
    max_norm : float
        Decoded updates with a larger L2 norm are rejected.
    downlink : {"full", "tofu"}
        Send the new global update to clients in full, or TOFU-encoded (all parties then
        apply the decoded update, so they stay in sync).
    keep_rounds : round indices whose start weights and honest updates are kept.
    device : str or torch.device, optional
        Where local training and the test evaluation run ("auto": CUDA when present;
        default: where ``model`` is).  Weight vectors, updates and TOFU's encoder stay on
        the CPU: they are what crosses the wire.
    """
    behaviours = list(behaviours or ["honest"] * len(clients))
    if len(behaviours) != len(clients) or any(b not in BEHAVIOURS for b in behaviours):
        raise ValueError(f"behaviours must be {len(clients)} of {BEHAVIOURS}, got {behaviours}")
    if downlink not in DOWNLINKS or any(k not in ("full", "tofu") for k in schedule):
        raise ValueError(
            f"downlink must be one of {DOWNLINKS} and rounds 'full'/'tofu', "
            f"got {downlink!r}, {sorted(set(schedule))}"
        )
    config = check_local_config(config, "run_rounds")
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    work = copy.deepcopy(model)
    weights = flat_params(model).cpu()
    n_params = weights.numel()
    shape = (n_params, tuple(test.input_shape), test.num_classes)
    log = RoundLog()
    for r, kind in enumerate(schedule):
        start = weights
        received: list[torch.Tensor | str] = []
        cosines: list[float] = []
        up, decode_err = 0, 0.0
        honest: list[torch.Tensor] = []
        for c, data in enumerate(clients):
            update = local_update(
                work, weights, data, config, seed=seed * 10_007 + r * 101 + c, device=dev
            )
            honest.append(update)
            msg_seed = seed * 10_007 + r * 101 + c
            arrays, cos, own = client_message(
                kind, behaviours[c], update, work, weights, shape, encoder, msg_seed
            )
            up += sum(a.nbytes for a in arrays)
            got = server_decode(arrays, kind, work, weights, shape)
            if own is not None and isinstance(got, torch.Tensor):
                decode_err = max(decode_err, float((got - own).abs().max()))
            if behaviours[c] == "honest" and cos == cos:
                cosines.append(cos)
            received.append(got)
        screened = screen_updates(received, [len(d) for d in clients], n_params, max_norm)
        rejected = dict(screened.rejected)
        for c, item in enumerate(received):
            if isinstance(item, str):
                rejected[c] = item
        if not screened.updates:
            raise RuntimeError(f"round {r}: every client update was rejected: {rejected}")
        step = aggregate(screened.updates, screened.weights, aggregator, trim=trim)
        weights, down = _downlink(step, weights, kind, downlink, work, shape, encoder, seed, r)
        if r in keep_rounds:
            log.snapshots[r] = (start, honest)
        log.kinds.append(kind)
        log.accuracy.append(accuracy_at(work, weights, test, device=dev))
        log.uplink_bytes.append(up)
        log.downlink_bytes.append((down or fedavg_bytes(n_params)) * len(clients))
        log.cosines.append(cosines)
        log.decode_errors.append(decode_err)
        log.rejected.append(dict(sorted(rejected.items())))
    return log


def _downlink(
    step: torch.Tensor,
    weights: torch.Tensor,
    kind: str,
    downlink: str,
    work: nn.Module,
    shape: tuple[int, tuple[int, ...], int],
    encoder: EncoderConfig,
    seed: int,
    r: int,
) -> tuple[torch.Tensor, int | None]:
    """New global weights and the downlink bytes per client (None: a full vector)."""
    if downlink == "full" or kind == "full":
        return weights + step, None
    proxy, _ = encode_update(
        work,
        weights,
        step,
        input_shape=shape[1],
        num_classes=shape[2],
        n_proxy=encoder.n_proxy,
        steps=encoder.steps,
        lr=encoder.lr,
        seed=seed * 7919 + r,
    )
    return weights + decode_update(work, weights, proxy), proxy.nbytes()
