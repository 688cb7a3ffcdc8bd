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
"""
