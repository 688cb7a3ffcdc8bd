"""The names of the per-sample scores one :func:`~netprism.memorization.memorization_scores`
run computes: curvature (Garg, Ravikumar & Roy, ICML 2024, arXiv 2307.05831) and the
training-dynamics peers of :mod:`netprism.memorization.dynamics`."""

from __future__ import annotations

from netprism.memorization.dynamics import DYNAMICS_SCORES, TRAINING_LOSS_SCORES

CURVATURE_SCORES = ("curvature", "curvature_final", "curvature_sq")
#: Scores measured after each epoch (what :class:`~netprism.memorization.MemorizationMonitor`
#: computes in any loop); CSL is read from the training batches themselves.
EPOCH_METHODS = CURVATURE_SCORES + DYNAMICS_SCORES
ALL_METHODS = EPOCH_METHODS + TRAINING_LOSS_SCORES
DEFAULT_METHODS = ALL_METHODS

#: The one call's curvature settings, chosen by a rule written down before the measurement
#: (2026-12-03; ``benchmarks/curvature_sensitivity.py``: digits, seeds 0-2; in each sweep the
#: settings within 0.005 mislabel AUROC of the best, of those the ones within 0.02 Pearson
#: correlation with Feldman-Zhang memorization of the best, of those the cheapest).  Measured:
#: h = 1e-2 (AUROC 0.988, Pearson 0.514) against the paper's 1e-3 (0.989, 0.408); 10 probes;
#: scoring every 2nd epoch (0.990, 0.456, scoring 1.7x the training time) against every
#: epoch (0.991, 0.472, 3.5x).
DEFAULT_H = 1e-2
DEFAULT_N_PROBES = 10
DEFAULT_EVERY = 2
