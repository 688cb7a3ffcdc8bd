"""Compression to what the data uses, and to what the hardware rewards.

Modules: ``utilized_rank`` and ``factorize`` (Garg et al. 2024), ``grouped``, ``pca_design``
(Garg, Panda & Roy, IEEE Access 2019), ``hybrid`` (Hybrid-Net mixed-precision binary networks,
Chakraborty et al., Nature Machine Intelligence 2020), ``crossbar`` (mapping weights onto
analog crossbars and pricing their ADCs) and ``dub`` (D.U.B. pruning, Ibrayev et al. 2024).

>>> from netprism.compression import utilized_rank, decompose, design, dub_prune

Method notes (the papers, what we measured, where we differ from them):
``docs/methods/compression.md`` in the repository.
"""

from netprism.compression.crossbar import CrossbarReport, crossbar_report
from netprism.compression.dub import dub_prune, fit_dub, magnitude_masks, masked_finetune
from netprism.compression.hybrid import HybridNet, compare_energy, significant_layers
from netprism.compression.l1_pruning import l1_prune_to_macs
from netprism.compression.pca_design import DesignReport, build_model, design
from netprism.compression.utilized_rank import RankReport, decompose, skipped_layers, utilized_rank

__all__ = [
    "CrossbarReport",
    "DesignReport",
    "HybridNet",
    "RankReport",
    "build_model",
    "compare_energy",
    "crossbar_report",
    "decompose",
    "design",
    "dub_prune",
    "fit_dub",
    "l1_prune_to_macs",
    "magnitude_masks",
    "masked_finetune",
    "significant_layers",
    "skipped_layers",
    "utilized_rank",
]
