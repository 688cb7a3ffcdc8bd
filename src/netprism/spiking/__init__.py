"""Spiking networks: encoders (rate, direct, DCT), ANN-to-SNN conversion and fine-tuning.

Garg, Chowdhury, Roy, "DCT-SNN", ICCV 2021 (arXiv 2010.01795); Chowdhury, Garg, Roy,
"Spatio-Temporal Pruning and Quantization for Low-latency Spiking Neural Networks", IJCNN 2021
(arXiv 2104.12528).  Modules: ``dct`` (block DCT math), ``encoders``, ``network`` (ANN-to-SNN
conversion, threshold balancing), ``pruning`` (PCA widths, staged T, quantization, energy).

>>> from netprism.spiking import DCTEncoder, convert_ann, significant_widths, energy_proxy

Method notes (the papers, what we measured, where we differ from them):
``docs/methods/spiking.md`` in the repository.
"""

from netprism.spiking.dct import (
    block_tile,
    dct_basis_images,
    dct_matrix,
    frequency_images,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
    zigzag_order,
)
from netprism.spiking.encoders import (
    DCTEncoder,
    DirectEncoder,
    RateEncoder,
    accumulate_spikes,
    coding_statistics,
    decode_ternary,
    percentile_thresholds,
)
from netprism.spiking.network import EncodedSNN, SpikingNetwork, ann_to_snn, convert_ann
from netprism.spiking.pruning import (
    energy_proxy,
    quantize_weights,
    significant_widths,
    temporal_schedule,
)

__all__ = [
    "DCTEncoder",
    "DirectEncoder",
    "EncodedSNN",
    "RateEncoder",
    "SpikingNetwork",
    "accumulate_spikes",
    "ann_to_snn",
    "block_tile",
    "coding_statistics",
    "convert_ann",
    "dct_basis_images",
    "dct_matrix",
    "decode_ternary",
    "energy_proxy",
    "frequency_images",
    "percentile_thresholds",
    "quantize_weights",
    "rgb_to_ycbcr",
    "significant_widths",
    "temporal_schedule",
    "ycbcr_to_rgb",
    "zigzag_order",
]
