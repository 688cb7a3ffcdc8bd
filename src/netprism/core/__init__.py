"""The lenses and shared math.  torch only; no I/O, no printing.

The curvature lens (:func:`input_curvature`, :class:`CurvatureTracker`: per-sample input-loss
curvature, Garg, Ravikumar & Roy, ICML 2024) and the subspace lens (:class:`StreamingCovariance`,
:func:`layer_covariances`, :func:`energy_rank`: what each layer's data occupies), with the
ranking metrics every method reports.

>>> from netprism.core import auroc, input_curvature, layer_covariances
"""

from netprism.core.basis import SubspaceEstimator, incremental_basis, principal_angles
from netprism.core.capture import layer_covariances, select_layers
from netprism.core.curvature import CurvatureScores, CurvatureTracker, input_curvature
from netprism.core.metrics import (
    auroc,
    cosine,
    pearson,
    precision_at_k,
    rankdata,
    roc_curve,
    spearman,
    top_k_overlap,
)
from netprism.core.mixture import TwoComponentMixture, fit_two_component_mixture
from netprism.core.per_sample import per_sample_losses
from netprism.core.seed import seed_everything
from netprism.core.subspace import (
    StreamingCovariance,
    Subspace,
    energy_rank,
    subspace_from_matrix,
)

__all__ = [
    "CurvatureScores",
    "CurvatureTracker",
    "StreamingCovariance",
    "Subspace",
    "SubspaceEstimator",
    "TwoComponentMixture",
    "auroc",
    "cosine",
    "energy_rank",
    "fit_two_component_mixture",
    "incremental_basis",
    "input_curvature",
    "layer_covariances",
    "pearson",
    "per_sample_losses",
    "precision_at_k",
    "principal_angles",
    "rankdata",
    "roc_curve",
    "seed_everything",
    "select_layers",
    "spearman",
    "subspace_from_matrix",
    "top_k_overlap",
]
