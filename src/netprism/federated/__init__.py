"""Federated learning with obfuscated updates: FedAvg, TOFU, gradient-leakage attacks, Flower.

Paper: Garg, Nagaraj & Roy, "TOFU: Towards Obfuscated Federated Updates by Encoding Weight
Updates into Gradients from Proxy Data" (arXiv 2201.08494, IEEE Access 2024).  Pure functions
below (aggregation, encoding, decoding, byte accounting, attacks), orchestration above (a
plain-PyTorch round loop for experiments, and a Flower strategy and client for real machines).

Modules: ``gradients`` (the gradient-matching code shared by the encoder and the attacks),
``aggregate`` (weighted average, coordinate median, trimmed mean, update screening), ``tofu``
(proxy sets, encode / decode, hybrid schedule, byte accounting), ``attacks`` (Inverting Gradients,
DLG, analytic first-layer inversion, PSNR), ``rounds`` (the in-process round loop) and ``flower``
(``TOFUStrategy``, ``TOFUClient``, ``python -m netprism.federated.flower server|client``; imported
on demand so ``netprism.federated`` does not pay for importing flwr).

>>> from netprism.federated import run_rounds, encode_update, decode_update, local_config

Method notes (the papers, what we measured, where we differ from them):
``docs/methods/federated.md`` in the repository.
"""

from netprism.federated.aggregate import (
    coordinate_median,
    screen_updates,
    trimmed_mean,
    weighted_average,
)
from netprism.federated.attacks import (
    analytic_fc_inversion,
    dlg,
    inverting_gradients,
    reconstruction_quality,
)
from netprism.federated.rounds import (
    EncoderConfig,
    RoundLog,
    check_local_config,
    local_config,
    local_update,
    run_rounds,
)
from netprism.federated.tofu import (
    ProxySet,
    decode_update,
    encode_update,
    fedavg_bytes,
    hybrid_schedule,
    tofu_bytes,
)

__all__ = [
    "EncoderConfig",
    "ProxySet",
    "RoundLog",
    "analytic_fc_inversion",
    "check_local_config",
    "coordinate_median",
    "decode_update",
    "dlg",
    "encode_update",
    "fedavg_bytes",
    "hybrid_schedule",
    "inverting_gradients",
    "local_config",
    "local_update",
    "reconstruction_quality",
    "run_rounds",
    "screen_updates",
    "tofu_bytes",
    "trimmed_mean",
    "weighted_average",
]
