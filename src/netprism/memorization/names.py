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
