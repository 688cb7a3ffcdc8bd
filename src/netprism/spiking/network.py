"""ANN-to-SNN hybrid training: copy an ANN into a spiking network, balance thresholds, fine-tune.

Garg, Chowdhury, Roy, "DCT-SNN: Using DCT to Distribute Spatial Information over Time for
Low-Latency Spiking Neural Networks", ICCV 2021 (arXiv 2010.01795), following the hybrid recipe
of Rathi et al. (ICLR 2020): (a) train the ANN on pixels, (b) copy its weights into an SNN whose
ReLUs become LIF neurons and whose last layer integrates without leak (``logits = sum / T``),
(c) set each layer's threshold to the largest (over time steps) 99.9th percentile of its input
current, layer by layer, on one batch of training data, (d) fine-tune with surrogate-gradient
BPTT through all ``T`` steps.

The network runs **layer by layer over all time steps**: each synaptic layer is applied once to
the ``(T * B, ...)`` stack of its input spikes, then the neuron loops over time
(:func:`netprism.nn.lif_sequence`).  With ``delay=False`` neurons (the spike reacts to the same
step's input) this equals the step-by-step simulation exactly, and it is much faster.

Conversion rules (leaf modules in registration order, as the registry's MLP and VGG run):
``Linear`` / ``Conv2d`` are copied (a ``BatchNorm2d`` after a conv is folded into it with its
running statistics), ``ReLU`` -> LIF, ``Dropout(p)`` -> a mask drawn once per sample and held
over all steps (as in the official code), max pooling -> average pooling of the same size (the
official nets use average pooling), ``AdaptiveAvgPool2d`` / ``AvgPool2d`` / ``Flatten`` kept; a
4-D input to a ``Linear`` is flattened.  Other modules raise a clear error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from netprism.models import create_model, register_model
from netprism.nn.neurons import LIF, lif_sequence
from netprism.spiking.encoders import DirectEncoder

_SYNAPSES = (nn.Linear, nn.Conv2d)
_KEPT = (nn.Flatten, nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.Identity)


class TimeDropout(nn.Module):
    """Dropout with one mask per sample held over all time steps.

    ``forward(h, steps)`` with ``h`` of shape ``(T * B, ...)``; the mask has shape ``(B, ...)``.
    """

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must lie in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, h: torch.Tensor, steps: int) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return h
        seq = h.unflatten(0, (steps, -1))  # (T, B, ...)
        keep = torch.empty_like(seq[0]).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return (seq * keep).flatten(0, 1)


class MaybeAvgPool2d(nn.Module):
    """2x2 average pool that leaves a spatial dimension of size 1 alone (the SNN's max pool)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = (2 if x.shape[-2] >= 2 else 1), (2 if x.shape[-1] >= 2 else 1)
        return x if kh == kw == 1 else F.avg_pool2d(x, (kh, kw))


@dataclass
class LayerRecord:
    """What one LIF layer saw and did over a batch: all tensors (T, B, ...)."""

    current: torch.Tensor  # input current W x (+ b) at every step
    spikes: torch.Tensor
    membrane: torch.Tensor  # after the reset


class SpikingNetwork(nn.Module):
    """A feed-forward SNN: synapses, LIF neurons and an integrating output layer.

    Build it with :func:`ann_to_snn`.  ``forward(x_seq)`` takes the encoded input (T, B, ...)
    and returns logits (B, K) = the output layer's summed current / T.

    Attributes
    ----------
    body : nn.ModuleList
        The layers in order; :attr:`neurons` lists the LIF modules among them.
    """

    def __init__(self, body: list[nn.Module]) -> None:
        super().__init__()
        self.body = nn.ModuleList(body)
        if not any(isinstance(m, _SYNAPSES) for m in body):
            raise ValueError("a spiking network needs at least one Linear/Conv2d layer")

    @property
    def neurons(self) -> list[LIF]:
        return [m for m in self.body if isinstance(m, LIF)]

    def synapses(self) -> list[nn.Module]:
        """The Linear / Conv2d layers in order (the last one is the output layer)."""
        return [m for m in self.body if isinstance(m, _SYNAPSES)]

    def thresholds(self) -> list[float]:
        return [float(n.threshold) for n in self.neurons]

    def set_thresholds(self, values: list[float]) -> None:
        """Set every LIF layer's threshold (one positive value per layer)."""
        neurons = self.neurons
        if len(values) != len(neurons):
            raise ValueError(f"need {len(neurons)} thresholds, got {len(values)}")
        for n, v in zip(neurons, values):
            if not v > 0:
                raise ValueError(f"thresholds must be > 0, got {values}")
            with torch.no_grad():
                n.threshold.fill_(float(v))

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        logits, _ = self.run(x_seq, record=False)
        return logits

    def run(
        self, x_seq: torch.Tensor, *, record: bool = True, upto: int | None = None
    ) -> tuple[torch.Tensor, list[LayerRecord]]:
        """Logits (B, K) and, with ``record``, a :class:`LayerRecord` per LIF layer.

        ``upto=l`` stops after computing the input current of LIF layer ``l`` (its record
        then holds only the current; logits are empty).
        """
        if x_seq.ndim < 3:
            raise ValueError(f"x_seq must be (T, B, ...), got shape {tuple(x_seq.shape)}")
        steps = x_seq.shape[0]
        h = x_seq.flatten(0, 1)  # (T * B, ...)
        records: list[LayerRecord] = []
        for module in self.body:
            if isinstance(module, LIF):
                current = h.unflatten(0, (steps, -1))  # (T, B, ...)
                if upto is not None and len(records) == upto:
                    records.append(LayerRecord(current, current.new_empty(0), current.new_empty(0)))
                    return current.new_empty(0), records
                if record:
                    spikes, _, trace = lif_sequence(current, module, return_trace=True)
                    records.append(LayerRecord(current, spikes, trace))
                else:
                    spikes, _ = lif_sequence(current, module)
                h = spikes.flatten(0, 1)
            elif isinstance(module, TimeDropout):
                h = module(h, steps)
            else:
                if isinstance(module, nn.Linear) and h.ndim > 2:
                    h = h.flatten(1)
                h = module(h)
        return h.unflatten(0, (steps, -1)).sum(0) / steps, records


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv computing ``bn(conv(x))`` in eval mode (running statistics)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("batch norm without running statistics cannot be folded into a conv")
    fused = copy.deepcopy(conv)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)  # (C,)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
    fused.weight = nn.Parameter(conv.weight.detach() * scale[:, None, None, None])
    fused.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias.detach())
    return fused


def _leaves(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, module in model.named_modules():
        if not list(module.children()):
            yield name, module


def ann_to_snn(
    ann: nn.Module,
    *,
    leak: float = 0.99,
    reset: str = "soft",
    surrogate: str = "linear",
    delay: bool = False,
) -> SpikingNetwork:
    """Copy a feed-forward ReLU ANN into a :class:`SpikingNetwork` (thresholds 1 until balanced).

    Parameters
    ----------
    ann : nn.Module
        Leaf modules run in registration order (the registry's ``mlp``, ``vgg``, ``lenet``-like
        chains).  Its weights are copied; the ANN is not modified.
    leak, reset, surrogate, delay
        Passed to every :class:`~netprism.nn.LIF` (the paper: leak 0.9901, soft reset,
        piecewise-linear surrogate).

    Examples
    --------
    >>> ann = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> snn = ann_to_snn(ann)
    >>> snn(torch.rand(5, 2, 4)).shape, len(snn.neurons)
    (torch.Size([2, 3]), 1)
    """
    leaves = list(_leaves(ann))
    body: list[nn.Module] = []
    for name, module in leaves:
        if isinstance(module, nn.BatchNorm2d):
            if not body or not isinstance(body[-1], nn.Conv2d):
                raise ValueError(f"batch norm {name!r} must follow a Conv2d to be folded")
            body[-1] = _fold_bn(body[-1], module)
        elif isinstance(module, _SYNAPSES):
            body.append(copy.deepcopy(module))
        elif isinstance(module, nn.ReLU):
            body.append(LIF(leak=leak, reset=reset, surrogate=surrogate, delay=delay))
        elif isinstance(module, nn.Dropout):
            body.append(TimeDropout(module.p))
        elif isinstance(module, nn.MaxPool2d):
            body.append(nn.AvgPool2d(module.kernel_size, module.stride, module.padding))
        elif type(module).__name__ == "MaybeMaxPool2d":
            body.append(MaybeAvgPool2d())
        elif isinstance(module, _KEPT):
            body.append(copy.deepcopy(module))
        else:
            raise ValueError(
                f"cannot convert {name!r} ({type(module).__name__}) to a spiking layer; "
                "supported: Linear, Conv2d (+BatchNorm2d), ReLU, Dropout, pooling, Flatten"
            )
    last = [m for m in body if isinstance(m, (*_SYNAPSES, LIF))]
    if not last or not isinstance(last[-1], _SYNAPSES):
        raise ValueError("the ANN must end with a Linear/Conv2d output layer (no final ReLU)")
    return SpikingNetwork(body)


@torch.no_grad()
def balance_thresholds(
    snn: SpikingNetwork,
    x_seq: torch.Tensor,
    *,
    percentile: float = 99.9,
) -> list[float]:
    """Set thresholds layer by layer: the max over steps of the ``percentile`` of input currents.

    Layer ``l`` is balanced with layers ``< l`` already set (the official code's order).

    Parameters
    ----------
    snn : SpikingNetwork
    x_seq : Tensor (T, B, ...)
        One encoded batch of training data (the paper: 512 images).
    percentile : float in (0, 100]

    Returns
    -------
    list of float
        The thresholds set, one per LIF layer.
    """
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile!r}")
    was_training = snn.training
    snn.eval()
    values: list[float] = []
    for layer, neuron in enumerate(snn.neurons):
        _, records = snn.run(x_seq, upto=layer)
        current = records[layer].current.flatten(1).double()  # (T, B * units)
        per_step = torch.quantile(current, percentile / 100.0, dim=1)  # (T,)
        value = float(per_step.max())
        if not value > 0.0:
            raise ValueError(
                f"layer {layer} never receives a positive current (max {value:g}); "
                "cannot balance its threshold"
            )
        neuron.threshold.fill_(value)
        values.append(value)
    snn.train(was_training)
    return values


@torch.no_grad()
def match_output_scale(snn: SpikingNetwork, x_seq: torch.Tensor, ann_logits: torch.Tensor) -> float:
    """Rescale the output layer so the SNN's logits match the ANN's in least squares.

    Balanced thresholds shrink the logits (roughly by the input scale over the product of the
    thresholds), which leaves the softmax nearly flat: fine-tuning would first spend its steps
    growing every weight.  One positive scale ``s = <a, z> / <z, z>`` (``a`` the ANN's logits,
    ``z`` the SNN's, on the balancing batch) multiplies the output layer's weight and bias;
    predictions are unchanged.  Not in the paper: a documented addition of ours.

    Parameters
    ----------
    snn : SpikingNetwork
    x_seq : Tensor (T, B, ...)
    ann_logits : Tensor (B, K)

    Returns
    -------
    float
        The scale applied.
    """
    was_training = snn.training
    snn.eval()
    z = snn(x_seq).double()
    snn.train(was_training)
    if z.shape != ann_logits.shape:
        raise ValueError(f"SNN logits {tuple(z.shape)} and ANN logits {tuple(ann_logits.shape)}")
    denom = float((z * z).sum())
    scale = float((ann_logits.double() * z).sum()) / denom if denom > 0 else 1.0
    if not scale > 0:
        raise ValueError(f"the SNN's logits anti-correlate with the ANN's (scale {scale:g})")
    head = snn.synapses()[-1]
    for param in (head.weight, getattr(head, "bias", None)):
        if isinstance(param, torch.Tensor):
            param.mul_(scale)
    return scale


class EncodedSNN(nn.Module):
    """``x -> snn(encoder(x))``: a classifier of images for the training loop and evaluation.

    ``encoder`` maps images (B, ...) to an input sequence (T, B, ...), e.g. a
    :class:`~netprism.spiking.DCTEncoder` or :class:`~netprism.spiking.RateEncoder`.
    """

    def __init__(self, encoder: Callable[[torch.Tensor], torch.Tensor], snn: SpikingNetwork):
        super().__init__()
        self.encoder = encoder
        self.snn = snn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x_seq = self.encoder(x)
        return self.snn(x_seq)

    def extra_repr(self) -> str:
        return f"encoder={self.encoder!r}"


def convert_ann(
    ann: nn.Module,
    encoder: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    leak: float = 0.99,
    reset: str = "soft",
    surrogate: str = "linear",
    percentile: float = 99.9,
    rescale: bool = True,
) -> tuple[EncodedSNN, list[float]]:
    """The hybrid recipe's conversion in one call: copy, balance, rescale the output.

    Parameters
    ----------
    ann : nn.Module
        A trained ReLU network (see :func:`ann_to_snn`); not modified.
    encoder : callable
        Images (B, ...) -> input sequence (T, B, ...), e.g. a ``DCTEncoder``.
    x : Tensor (B, ...)
        Training images to balance on (the paper: 512).
    leak, reset, surrogate
        Of every LIF layer.
    percentile : float
        Threshold balancing percentile (:func:`balance_thresholds`).
    rescale : bool
        Match the output scale to the ANN's logits (:func:`match_output_scale`).

    Returns
    -------
    (EncodedSNN, list of float)
        The image classifier ready for fine-tuning with :func:`netprism.train.fit`, and the
        thresholds set per LIF layer.

    Examples
    --------
    >>> ann = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> model, thresholds = convert_ann(ann, lambda x: x.expand(6, *x.shape), torch.rand(32, 4))
    >>> model(torch.rand(2, 4)).shape, len(thresholds)
    (torch.Size([2, 3]), 1)
    """
    snn = ann_to_snn(ann, leak=leak, reset=reset, surrogate=surrogate)
    x_seq = encoder(x)
    thresholds = balance_thresholds(snn, x_seq, percentile=percentile)
    if rescale:
        was_training = ann.training
        with torch.no_grad():
            match_output_scale(snn, x_seq, ann.eval()(x))
        ann.train(was_training)
    return EncodedSNN(encoder, snn), thresholds


@register_model("spiking_mlp", image_only=False)
def spiking_mlp(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    hidden: tuple[int, ...] = (256, 128),
    timesteps: int = 4,
    leak: float = 0.99,
    reset: str = "soft",
    surrogate: str = "linear",
    dropout: float = 0.0,
) -> EncodedSNN:
    """Registry factory: the registry's ``mlp`` as a spiking network on direct (analog) input.

    ``x (B, *input_shape) -> DirectEncoder(timesteps) -> (T, B, ...)`` through
    :func:`ann_to_snn` of a freshly initialised ``mlp`` (LIF neurons with thresholds 1, an
    integrating output layer); logits ``(B, K)``.  Train it with surrogate gradients, or use
    :func:`convert_ann` to start from a trained ANN.

    >>> spiking_mlp(input_shape=(40,), num_classes=3, hidden=(16,))(torch.rand(2, 40)).shape
    torch.Size([2, 3])
    """
    ann = create_model(
        "mlp", input_shape=input_shape, num_classes=num_classes, hidden=hidden, dropout=dropout
    )
    snn = ann_to_snn(ann, leak=leak, reset=reset, surrogate=surrogate)
    return EncodedSNN(DirectEncoder(timesteps), snn)
