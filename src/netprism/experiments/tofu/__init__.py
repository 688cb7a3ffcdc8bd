"""``tofu``: TOFU's encoder fidelity, exact decode, uplink savings, privacy and robustness.

Garg, Nagaraj & Roy, "TOFU: Towards Obfuscated Federated Updates by Encoding Weight Updates
into Gradients from Proxy Data" (arXiv 2201.08494, IEEE Access 2024).  Small scale follows
our calibration: digits 8x8, 5 IID
clients, MLP 64-32-10 (2,410 parameters), 1 local epoch of SGD (lr 0.1, batch 32), 60 rounds;
TOFU with N = 8 proxies and a budgeted encoder (Adam, lr 0.1, 100 steps: 300 was too slow).

Measured per seed, from the same initial weights and partitions: FedAvg, TOFU-only, and the
hybrid (last ``full_rounds`` rounds full-precision); the fidelity sweep re-encodes FedAvg's
real updates of a few rounds with N in ``fidelity_proxies``; the privacy runs attack one
local SGD step on a true batch (B = ``attack_batch``, and B = 1, the paper's known failure)
at the initial weights with Inverting Gradients, DLG and the analytic FC inversion, against
the real and the TOFU-decoded update; the robustness run adds one malformed and one
sign-flipping client to FedAvg with the robust aggregator.  The ``privacy_faithful`` twin
(pre-registered, target unchanged) attacks updates of K local SGD steps (K in
``privacy_local_steps``, claim at ``privacy_faithful_k`` = 9) at the initial and FedAvg's
round-20 weights (``privacy_rounds``), with Inverting Gradients' one-step model; it runs on
``faithful_seeds`` (empty at small: opt-in there).

Decided up front: bytes are float32 payloads (no framing); the downlink is counted, full
precision unless ``downlink="tofu"``; the ``privacy`` claim uses Inverting Gradients' best-
match MSE ratio (DLG and the analytic control are reported next to it).

Method note: ``docs/methods/federated.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, register_experiment
from netprism.experiments.tofu.claims import claims_and_metrics
from netprism.experiments.tofu.config import MALFORMED, SCALES, TOFUExperimentConfig
from netprism.experiments.tofu.figures import draw
from netprism.experiments.tofu.run import measure, validate

STUDY = SeedStudy(
    "tofu",
    measure=measure,  # every seed, the netprism.federated logger at ERROR meanwhile
    claims=claims_and_metrics,
    figures=draw,
    validate=validate,
)
run = register_experiment(
    "tofu",
    config=TOFUExperimentConfig,
    scales=SCALES,
    demo=False,
    cost=8,  # rough CPU minutes at small
    paper="Garg, Nagaraj & Roy, TOFU: Towards Obfuscated Federated Updates by Encoding Weight "
    "Updates into Gradients from Proxy Data (IEEE Access 2024, arXiv 2201.08494)",
)(STUDY.run)

__all__ = ["MALFORMED", "SCALES", "STUDY", "TOFUExperimentConfig", "run"]
