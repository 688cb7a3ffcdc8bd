"""Reusable layers: LIF neurons with surrogate gradients (DCT-SNN, arXiv 2010.01795) and binary /
k-bit quantized layers (``netprism.nn.quant``, XNOR-Net and Hybrid-Net)."""

from netprism.nn.neurons import LIF, Integrator, lif_sequence
from netprism.nn.surrogate import SURROGATES, Surrogate, resolve_surrogate, spike

__all__ = [
    "LIF",
    "SURROGATES",
    "Integrator",
    "Surrogate",
    "lif_sequence",
    "resolve_surrogate",
    "spike",
]
