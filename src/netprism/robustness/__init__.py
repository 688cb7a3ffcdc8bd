"""Robust classification: lightweight OoD detection, hierarchical training, robust ensembles.

Papers: Ravikumar, Kodge, Garg & Roy, "Exploring Vicinal Risk Minimization for Lightweight
Out-of-Distribution Detection" (arXiv 2012.08398); Mukherjee, Garg & Roy, "Encoding
Hierarchical Information in Neural Networks helps in Subpopulation Shift" (arXiv 2112.10844,
IEEE TAI 2023); Ravikumar, Kodge, Garg & Roy, "TREND: Transferability based Robust ENsemble
Design" (arXiv 2008.01524, IEEE TAI 2023).

Modules: ``ood`` (detectors with one ``fit`` / ``score`` interface, VRM), ``ood_metrics``
(AUROC, AUPR, FPR95, overhead), ``hierarchy`` (label trees, BREEDS-style splits, graphical
distance), ``hierarchy_train`` (multi-head models, conditional training), ``adversarial``
(FGSM, PGD, MI-FGSM, BPDA), ``transfer`` (transferability metric and matrix), ``ensemble`` (hard
vote, ensemble attacks, TREND design) and ``variants`` (model variants for the study).
"""
