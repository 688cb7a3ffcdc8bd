"""Robust classification: lightweight OoD detection, hierarchical training, robust ensembles.

Papers: Ravikumar, Kodge, Garg & Roy, "Exploring Vicinal Risk Minimization for Lightweight
Out-of-Distribution Detection" (arXiv 2012.08398); Mukherjee, Garg & Roy, "Encoding
Hierarchical Information in Neural Networks helps in Subpopulation Shift" (arXiv 2112.10844,
IEEE TAI 2023); Ravikumar, Kodge, Garg & Roy, "TREND: Transferability based Robust ENsemble
Design" (arXiv 2008.01524, IEEE TAI 2023).

Modules: ``ood`` (detectors with one ``fit`` / ``score`` interface, VRM), ``ood_metrics``
(AUROC, AUPR, FPR95, overhead), ``hierarchy`` (label trees, BREEDS-style splits, graphical
distance), ``hierarchy_train`` (multi-head models, conditional training), ``vrm_train``
(plain, mixup and VRM training of the detectors' models), ``adversarial``
(FGSM, PGD, MI-FGSM, BPDA), ``transfer`` (transferability metric and matrix), ``ensemble`` (hard
vote, ensemble attacks, TREND design) and ``variants`` (model variants for the study).

>>> from netprism.robustness import VRMDetector, train_vrm, conditional_fit, pgd

Method notes (the papers, what we measured, where we differ from them):
``docs/methods/robustness.md`` in the repository.
"""

from netprism.robustness.adversarial import bpda, fgsm, halftone, mi_fgsm, pgd, quantize_input
from netprism.robustness.ensemble import (
    HardVoteEnsemble,
    design_robust_ensemble,
    ensemble_pgd,
    robust_accuracy,
)
from netprism.robustness.hierarchy import (
    LabelTree,
    graphical_distance,
    subpopulation_split,
)
from netprism.robustness.hierarchy_train import (
    HierarchicalMLP,
    conditional_config,
    conditional_fit,
    predict_leaves,
)
from netprism.robustness.ood import (
    DETECTORS,
    MSP,
    ODIN,
    Energy,
    Mahalanobis,
    MaxLogit,
    OODDetector,
    VRMDetector,
)
from netprism.robustness.ood_metrics import measure_overhead, ood_metrics
from netprism.robustness.transfer import transferability_matrix, transferability_metric
from netprism.robustness.variants import VariantSpec, build_variant, train_variant, variant_config
from netprism.robustness.vrm_train import (
    VRMSettings,
    train_mixup,
    train_plain,
    train_vrm,
    vrm_config,
)

__all__ = [
    "DETECTORS",
    "Energy",
    "HardVoteEnsemble",
    "HierarchicalMLP",
    "LabelTree",
    "MSP",
    "Mahalanobis",
    "MaxLogit",
    "ODIN",
    "OODDetector",
    "VRMDetector",
    "VRMSettings",
    "VariantSpec",
    "bpda",
    "build_variant",
    "conditional_config",
    "conditional_fit",
    "design_robust_ensemble",
    "ensemble_pgd",
    "fgsm",
    "graphical_distance",
    "halftone",
    "measure_overhead",
    "mi_fgsm",
    "ood_metrics",
    "pgd",
    "predict_leaves",
    "quantize_input",
    "robust_accuracy",
    "subpopulation_split",
    "train_mixup",
    "train_plain",
    "train_variant",
    "train_vrm",
    "transferability_matrix",
    "transferability_metric",
    "variant_config",
    "vrm_config",
]
