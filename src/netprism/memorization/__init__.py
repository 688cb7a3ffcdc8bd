"""Memorized, mislabeled and conflicting samples through the curvature lens.

Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss Function Around
Samples", ICML 2024 (arXiv 2307.05831), with every peer a user would otherwise pick.

>>> import netprism as npm
>>> from netprism.memorization import memorization_scores, find_label_issues
>>> from netprism.memorization import MemorizationMonitor  # for your own training loop

Method notes (the papers, what we measured, where we differ from them):
``docs/methods/memorization.md`` in the repository.
"""

from netprism.memorization.dataset_audit import AuditReport, audit
from netprism.memorization.duplicates import duplicate_scores, penultimate_features
from netprism.memorization.dynamics import (
    DYNAMICS_SCORES,
    TRAINING_LOSS_SCORES,
    CumulativeLoss,
    TrainingDynamics,
    forgetting_events,
    learning_time,
)
from netprism.memorization.monitor import MemorizationMonitor
from netprism.memorization.names import EPOCH_METHODS
from netprism.memorization.noise import instance_dependent_noise, weak_model_confusion
from netprism.memorization.scores import (
    ALL_METHODS,
    CURVATURE_SCORES,
    MemorizationScores,
    default_config,
    memorization_scores,
)
from netprism.memorization.select import (
    DEFAULT_LABEL_ISSUE_METHOD,
    DuplicateGroup,
    find_conflicting_duplicates,
    find_label_issues,
)
from netprism.memorization.ssft import second_split_forgetting

__all__ = [
    "ALL_METHODS",
    "AuditReport",
    "CURVATURE_SCORES",
    "CumulativeLoss",
    "DEFAULT_LABEL_ISSUE_METHOD",
    "DYNAMICS_SCORES",
    "DuplicateGroup",
    "EPOCH_METHODS",
    "MemorizationMonitor",
    "MemorizationScores",
    "TRAINING_LOSS_SCORES",
    "TrainingDynamics",
    "audit",
    "default_config",
    "duplicate_scores",
    "find_conflicting_duplicates",
    "find_label_issues",
    "forgetting_events",
    "instance_dependent_noise",
    "learning_time",
    "memorization_scores",
    "penultimate_features",
    "second_split_forgetting",
    "weak_model_confusion",
]
