"""Reusable layers: LIF neurons with surrogate gradients (DCT-SNN, arXiv 2010.01795), binary /
k-bit quantized layers (``netprism.nn.quant``, XNOR-Net and Hybrid-Net) and the library's one
uniform quantizer (``netprism.nn.uniform``, re-exported by ``netprism.nn.quant``)."""

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
