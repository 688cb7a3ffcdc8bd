"""Spatio-temporal pruning and quantization of spiking networks, and an energy proxy.

Chowdhury, Garg, Roy, "Spatio-Temporal Pruning and Quantization for Low-latency Spiking Neural
Networks", IJCNN 2021 (arXiv 2104.12528).  Only the abstract is public, so the details below
are our design, grounded in the group's predecessors (PCA-based network design, Garg, Panda
& Roy 2019; hybrid ANN-SNN conversion with spike-based fine-tuning, Rathi et al. 2020):

- **spatial**: per LIF layer, PCA (channel-wise for conv) of a per-sample time average over
  ``T`` steps; the new width is the energy rank at a threshold (Garg, Panda & Roy, IEEE Access
  2019).  The abstract names "the average accumulated membrane potential": ``quantity=
  "membrane"`` is the membrane *before* the reset, ``U_pre[t] = leak * U[t-1] + I[t]``
  (:func:`time_averaged`).  ``"membrane_after"`` (after the reset), ``"rate"`` and
  ``"current"`` are offered for comparison;
- **temporal**: train at ``T``, then fine-tune at a lower ``T`` starting from the higher-``T``
  network, stage by stage (the IIR-SNN recipe, Chowdhury et al., ECCV 2022);
- **quantization**: post-training symmetric uniform per-layer weight quantization,
  ``w_q = s clip(round(w / s), -(2^(b-1) - 1), 2^(b-1) - 1)``, ``s = max|w| / (2^(b-1) - 1)``;
- **energy**: synaptic operations per inference; an accumulate (AC) per input spike and
  outgoing synapse, a multiply-accumulate (MAC) per synapse and step for analog inputs, and MACs
  for the ANN, priced with the 45 nm figures below.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netprism.core.subspace import energy_rank
from netprism.nn.quant import fake_quantize, uniform_scale
from netprism.spiking.network import EncodedSNN, LayerRecord, SpikingNetwork

# Energy per operation, 45 nm CMOS, 32-bit float: Horowitz, "Computing's energy problem (and
# what we can do about it)", ISSCC 2014: FP add 0.9 pJ, FP mult 3.7 pJ -> MAC 4.6 pJ.  The
# convention of this group's SNN papers (DCT-SNN, STPQ).  Memory access is not counted.
ENERGY_PJ = {"mac": 4.6, "ac": 0.9}
QUANTITIES = ("membrane", "membrane_after", "rate", "current")


def time_averaged(record: LayerRecord, leak: float, quantity: str = "membrane") -> torch.Tensor:
    """Per-sample time average of one LIF layer's ``quantity`` over T steps, shape (B, ...).

    ``"membrane"``: ``mean_t U_pre[t]`` with ``U_pre[t] = leak * U[t-1] + I[t]`` (the
    accumulated potential before the reset, ``U[-1] = 0``); ``"membrane_after"``: ``mean_t
    U[t]``; ``"rate"``: spikes per step; ``"current"``: ``mean_t I[t]``.
    """
    if quantity == "membrane":
        before = torch.cat([torch.zeros_like(record.membrane[:1]), record.membrane[:-1]])
        return (leak * before + record.current).mean(0)
    if quantity == "membrane_after":
        return record.membrane.mean(0)
    if quantity == "rate":
        return record.spikes.mean(0)
    if quantity == "current":
        return record.current.mean(0)
    raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")


def _channel_rows(x: torch.Tensor) -> torch.Tensor:
    """(B, C) stays; (B, C, H, W) -> (B * H * W, C): every position a sample (channel PCA)."""
    if x.ndim == 2:
        return x
    return x.movedim(1, -1).reshape(-1, x.shape[1])


def pca_width(rows: torch.Tensor, threshold: float) -> int:
    """Smallest number of principal components holding ``threshold`` of the centered variance.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> latent = torch.randn(500, 8, generator=g) @ torch.randn(8, 64, generator=g)
    >>> pca_width(latent + 1e-4 * torch.randn(500, 64, generator=g), 0.999)
    8
    """
    rows = rows.double()
    centered = rows - rows.mean(0)
    s = torch.linalg.svdvals(centered)
    return max(1, energy_rank(s**2, threshold, rule="reach"))


@dataclass
class WidthReport:
    """Significant widths per LIF layer for one quantity and threshold."""

    quantity: str
    threshold: float
    widths: list[int]
    original: list[int]

    @property
    def ratio(self) -> list[float]:
        return [o / w for w, o in zip(self.widths, self.original)]


@torch.no_grad()
def significant_widths(
    snn: SpikingNetwork,
    x_seq: torch.Tensor,
    *,
    quantity: str = "membrane",
    threshold: float = 0.999,
) -> WidthReport:
    """PCA widths of every LIF layer from one batch (T, B, ...) of encoded training data.

    Returns a :class:`WidthReport` with one width per LIF layer (channels for conv layers).
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    was_training = snn.training
    snn.eval()
    _, records = snn.run(x_seq)
    snn.train(was_training)
    widths, original = [], []
    for record, neuron in zip(records, snn.neurons):
        rows = _channel_rows(time_averaged(record, neuron.leak, quantity))
        widths.append(pca_width(rows, threshold))
        original.append(int(rows.shape[1]))
    return WidthReport(quantity, threshold, widths, original)


def quantize_weights(model: nn.Module, bits: int) -> nn.Module:
    """A copy of ``model`` with every Linear / Conv weight quantized to ``bits`` (symmetric,
    uniform, per layer); biases, thresholds and everything else unchanged.

    Examples
    --------
    >>> lin = nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 0.3]]))
    >>> quantize_weights(lin, 2).weight.tolist()  # levels {-1, 0, 1} x max|w|
    [[1.0, 0.0]]
    """
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 32:
        raise ValueError(f"bits must be an int in [2, 32], got {bits!r}")
    out = copy.deepcopy(model)
    with torch.no_grad():
        for module in out.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                w = module.weight
                scale = uniform_scale(w, bits, eps=0.0)  # max|w| / (2^(b-1) - 1), unclamped
                if scale > 0:
                    w.copy_(fake_quantize(w, bits, scale=scale, ste=False))
    return out


def _synapse_inputs(snn: SpikingNetwork, x_seq: torch.Tensor) -> list[torch.Tensor]:
    """The input (T * B, ...) each synaptic layer receives, in order."""
    seen: list[torch.Tensor] = []
    handles = [
        m.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
        for m in snn.synapses()
    ]
    try:
        snn.eval()(x_seq)
    finally:
        for h in handles:
            h.remove()
    return seen


def _fan_out_ops(layer: nn.Module, events: torch.Tensor) -> float:
    """Synaptic operations triggered by nonzero ``events`` (N, ...) through ``layer``."""
    mask = (events != 0).to(torch.float32)
    if isinstance(layer, nn.Linear):
        return float(mask.flatten(1).sum()) * layer.out_features
    assert isinstance(layer, nn.Conv2d)
    ones = torch.ones_like(layer.weight, dtype=torch.float32)
    reach = F.conv2d(mask, ones, None, layer.stride, layer.padding, layer.dilation, layer.groups)
    return float(reach.sum())


def _macs(layer: nn.Module, x: torch.Tensor) -> float:
    """Multiply-accumulates of ``layer`` on ``x`` (N, ...), dense."""
    if isinstance(layer, nn.Linear):
        return float(x.flatten(1).shape[0] * layer.in_features * layer.out_features)
    assert isinstance(layer, nn.Conv2d)
    out = F.conv2d(x[:1], layer.weight, None, layer.stride, layer.padding, layer.dilation)
    per_out = layer.weight[0].numel()
    return float(x.shape[0] * out[0].numel() * per_out)


@torch.no_grad()
def energy_proxy(snn: SpikingNetwork, x_seq: torch.Tensor) -> dict[str, float]:
    """Synaptic operations and energy per inference of ``snn`` on ``x_seq`` (T, B, ...).

    A layer whose input is spikes (values in {-1, 0, 1}) costs one AC per nonzero input event
    and outgoing synapse; an analog input (direct coding) costs dense MACs at every step.  The
    ANN equivalent runs every layer once, densely.  Pooling and neuron updates are not counted.

    Returns
    -------
    dict
        ``snn_ac``, ``snn_mac``, ``ann_mac`` (per sample), ``snn_pj``, ``ann_pj`` and
        ``ann_over_snn`` (the energy advantage).
    """
    steps, batch = x_seq.shape[0], x_seq.shape[1]
    inputs = _synapse_inputs(snn, x_seq)
    ac = mac = ann = 0.0
    for layer, x in zip(snn.synapses(), inputs):
        one_step = x.unflatten(0, (steps, batch))[0]
        if isinstance(layer, nn.Linear) and one_step.ndim > 2:
            one_step, x = one_step.flatten(1), x.flatten(1)
        ann += _macs(layer, one_step)
        if bool(((x == 0) | (x == 1) | (x == -1)).all()):
            ac += _fan_out_ops(layer, x)
        else:
            mac += _macs(layer, x)
    snn_pj = ENERGY_PJ["ac"] * ac + ENERGY_PJ["mac"] * mac
    ann_pj = ENERGY_PJ["mac"] * ann
    return {
        "snn_ac": ac / batch,
        "snn_mac": mac / batch,
        "ann_mac": ann / batch,
        "snn_pj": snn_pj / batch,
        "ann_pj": ann_pj / batch,
        "ann_over_snn": ann_pj / snn_pj if snn_pj > 0 else float("inf"),
    }


def temporal_schedule(
    model: EncodedSNN,
    make_encoder: Callable[[int], Callable[[torch.Tensor], torch.Tensor]],
    steps: Sequence[int],
    train_stage: Callable[[EncodedSNN, int], Any],
) -> list[EncodedSNN]:
    """Lower ``T`` in stages, each stage starting from the previous stage's network.

    Parameters
    ----------
    model : EncodedSNN
        Trained at the first (largest) T.
    make_encoder : callable T -> encoder
    steps : sequence of int
        The lower T values, in order (e.g. 16, 8, 4).
    train_stage : callable (model, T) -> Any
        Fine-tunes ``model`` at T in place (e.g. a few epochs of :func:`netprism.train.fit`).

    Returns
    -------
    list of EncodedSNN
        One network per stage (independent copies), the last at ``steps[-1]``.
    """
    if not steps or any(not isinstance(t, int) or t < 1 for t in steps):
        raise ValueError(f"steps must be positive ints, got {list(steps)!r}")
    stages = []
    current = model
    for t in steps:
        current = EncodedSNN(make_encoder(t), copy.deepcopy(current.snn))
        train_stage(current, t)
        stages.append(current)
    return stages
