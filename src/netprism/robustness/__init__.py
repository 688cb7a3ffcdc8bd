"""Robust classification: lightweight out-of-distribution detection and hierarchical training.

Papers: Ravikumar, Kodge, Garg & Roy, "Exploring Vicinal Risk Minimization for Lightweight
Out-of-Distribution Detection" (arXiv 2012.08398); Mukherjee, Garg & Roy, "Encoding
Hierarchical Information in Neural Networks helps in Subpopulation Shift" (arXiv 2112.10844,
IEEE TAI 2023).  Modules: ``ood`` (detectors with one ``fit`` / ``score`` interface, VRM),
``ood_metrics`` (AUROC, AUPR, FPR95, overhead), ``hierarchy`` (label trees, BREEDS-style
splits, graphical distance) and ``hierarchy_train`` (multi-head models, conditional training).
"""
