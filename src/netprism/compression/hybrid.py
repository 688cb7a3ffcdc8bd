"""Hybrid-Net: PCA-chosen k-bit layers in an XNOR network, and its 45 nm energy model.

Chakraborty, Roy, Garg, Ankit & Roy, "Constructing Energy-efficient Mixed-precision Neural
Networks through Principal Component Analysis for Edge Intelligence", Nature Machine
Intelligence 2020, arXiv 1906.01493.  Recipe: train the binary (XNOR) network, run a centered
channel-wise PCA of each layer's outputs, mark the layers whose count of significant
dimensions rises over the previous layer, raise those layers' weights and input activations to
k bits and retrain.

The network is the one we calibrated on digits: ``conv1``
(full precision) -> ``h1..h4`` (quantized) -> ``fc`` (full precision); every block is
``conv(w_q) -> BN -> [maxpool] -> act_q(next layer's precision)``, so a layer's MACs run at one
precision for both its weights and its input activations.  Conv1d for 1-D signals (MNIST-1D),
Conv2d for images.

Energy model (``ENERGY_PJ``; 45 nm, Horowitz, "Computing's energy problem (and what we can do
about it)", ISSCC 2014): a full-precision MAC is an FP32 multiply + add (3.7 + 0.9 pJ); a k-bit
MAC is the INT8 MAC scaled as the calibration does, ``0.2 (k/8)^2 + 0.03 (k/8)`` pJ; a binary
MAC (XNOR + popcount) is **assumed** to cost an INT8 MAC / 64.  Memory: every stored weight bit
(and each filter's 32-bit scale) is read once per inference from an 8 KB SRAM at 10 pJ per
64-bit access (Horowitz's table), 0.156 pJ per bit; activations, BN and pooling are not
counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netprism.core.capture import capture
from netprism.core.subspace import StreamingCovariance, energy_rank
from netprism.core.validation import check_positive_int
from netprism.models import register_model
from netprism.nn.quant import (
    FULL_PRECISION,
    QuantAct,
    QuantConv1d,
    QuantConv2d,
    QuantLinear,
    check_bits,
)

# Per-operation energies in pJ at 45 nm, 0.9 V: the energy table of Horowitz, ISSCC 2014
# (memory: one 64-bit read from an 8 KB SRAM; 32 KB costs 20 pJ, 1 MB 100 pJ, DRAM 1.3-2.6 nJ).
ENERGY_PJ: dict[str, float] = {
    "fp32_mult": 3.7,
    "fp32_add": 0.9,
    "int8_mult": 0.2,
    "int8_add": 0.03,
    "sram_8kb_read_64bit": 10.0,
}
BINARY_MAC_DIVISOR = 64.0  # assumption: XNOR + popcount = INT8 MAC / 64 (the calibration's)
SCALE_BITS = 32  # one full-precision scale per output filter of a quantized layer


def mac_energy_pj(bits: int) -> float:
    """Energy of one multiply-accumulate at ``bits`` (1, 2..16 or 32), in pJ.

    Examples
    --------
    >>> [round(mac_energy_pj(b), 5) for b in (32, 8, 4, 2, 1)]
    [4.6, 0.23, 0.065, 0.02, 0.00359]
    """
    bits = check_bits(bits)
    if bits == FULL_PRECISION:
        return ENERGY_PJ["fp32_mult"] + ENERGY_PJ["fp32_add"]
    int8_mac = ENERGY_PJ["int8_mult"] + ENERGY_PJ["int8_add"]
    if bits == 1:
        return int8_mac / BINARY_MAC_DIVISOR
    r = bits / 8.0
    return ENERGY_PJ["int8_mult"] * r**2 + ENERGY_PJ["int8_add"] * r


def read_energy_pj_per_bit() -> float:
    """Energy of reading one stored bit from an 8 KB SRAM (10 pJ / 64 bits), in pJ."""
    return ENERGY_PJ["sram_8kb_read_64bit"] / 64.0


class HybridBlock(nn.Module):
    """``conv(w_q) -> BN -> [maxpool 2] -> act_q``; ``act_bits`` is the next layer's precision."""

    def __init__(
        self, conv: nn.Module, channels: int, dims: int, pool: bool, act: nn.Module
    ) -> None:
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm1d(channels) if dims == 1 else nn.BatchNorm2d(channels)
        pool_cls = nn.MaxPool1d if dims == 1 else nn.MaxPool2d
        self.pool = pool_cls(2) if pool else nn.Identity()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pool(self.bn(self.conv(x))))


class HybridNet(nn.Module):
    """The calibration's mixed-precision CNN with one precision per layer.

    Parameters
    ----------
    input_shape : tuple
        ``(L,)`` or ``(C, L)`` for 1-D signals (Conv1d), ``(C, H, W)`` for images (Conv2d).
    num_classes : int
    precisions : sequence of int
        One per layer, ``len(widths) + 1`` values (conv layers then ``fc``): 1, 2..16 or 32.
    widths : sequence of int
        Output channels of ``conv1, h1, h2, ...``; default ``(32, 64, 64, 128, 128)``.
    pool_after : sequence of int, optional
        Block indices (0 = ``conv1``) followed by a 2x max-pool; default ``(1, 3)`` for images
        and ``(1, 3, 4)`` for 1-D signals.
    kernel_size : int
        Odd; padding keeps the size.

    With every precision 32 the activations are ReLU (the FP net); otherwise a 32-bit next
    layer gets ``hardtanh`` (e.g. the ``fc`` input).

    Examples
    --------
    >>> net = HybridNet((40,), 10, (32, 1, 2, 1, 1, 32))
    >>> net.layer_names, net(torch.randn(3, 40)).shape
    (('conv1', 'h1', 'h2', 'h3', 'h4', 'fc'), torch.Size([3, 10]))
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        precisions: Sequence[int],
        *,
        widths: Sequence[int] = (32, 64, 64, 128, 128),
        pool_after: Sequence[int] | None = None,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if len(shape) not in (1, 2, 3) or min(shape, default=0) < 1:
            raise ValueError(f"input_shape must be (L,), (C, L) or (C, H, W), got {shape}")
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"widths must hold >= 2 positive ints, got {tuple(widths)}")
        if len(precisions) != len(widths) + 1:
            raise ValueError(
                f"precisions needs {len(widths) + 1} values (conv layers + fc), "
                f"got {len(precisions)}: {tuple(precisions)}"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
        self.precisions = tuple(check_bits(p, "precision") for p in precisions)
        self.input_shape = shape
        self.dims = 2 if len(shape) == 3 else 1
        channels = shape[0] if len(shape) > 1 else 1
        spatial = list(shape[1:] if len(shape) > 1 else shape)
        pools = (
            set((1, 3) if self.dims == 2 else (1, 3, 4)) if pool_after is None else set(pool_after)
        )
        if any(not 0 <= p < len(widths) for p in pools):
            raise ValueError(f"pool_after must index blocks 0..{len(widths) - 1}, got {pools}")
        full = all(p == FULL_PRECISION for p in self.precisions)
        conv_cls = QuantConv2d if self.dims == 2 else QuantConv1d
        names = ["conv1"] + [f"h{i}" for i in range(1, len(widths))]
        for i, (name, width) in enumerate(zip(names, widths)):
            conv = conv_cls(
                channels, width, kernel_size, padding=kernel_size // 2, bias=False,
                weight_bits=self.precisions[i],
            )  # fmt: skip
            act = QuantAct(self.precisions[i + 1], full_precision="relu" if full else "hardtanh")
            self.add_module(name, HybridBlock(conv, width, self.dims, i in pools, act))
            if i in pools:
                spatial = [s // 2 for s in spatial]
                if min(spatial) < 1:
                    raise ValueError(f"pool_after={sorted(pools)} pools {shape} below size 1")
            channels = width
        features = channels * int(torch.tensor(spatial).prod())
        self.fc = QuantLinear(features, num_classes, weight_bits=self.precisions[-1])
        self.layer_names: tuple[str, ...] = (*names, "fc")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.input_shape) == 1:
            x = x.reshape(x.shape[0], 1, -1)  # (N, L) -> (N, 1, L)
        for name in self.layer_names[:-1]:
            x = getattr(self, name)(x)
        return self.fc(x.flatten(1))  # (N, C * positions)


@register_model("hybrid_net", image_only=False)
def hybrid_net(
    *,
    input_shape: Sequence[int],
    num_classes: int,
    precisions: Sequence[int] | None = None,
    widths: Sequence[int] = (32, 64, 64, 128, 128),
    **kwargs: Any,
) -> HybridNet:
    """Registry factory of :class:`HybridNet`; ``precisions`` defaults to the XNOR network
    Hybrid-Net starts from: ``conv1`` and ``fc`` at 32 bits, every hidden layer binary.

    ``kwargs`` (``pool_after``, ``kernel_size``) go to :class:`HybridNet`.

    >>> hybrid_net(input_shape=(1, 8, 8), num_classes=3).precisions
    (32, 1, 1, 1, 1, 32)
    """
    check_positive_int(num_classes, "num_classes")
    if precisions is None:
        precisions = (FULL_PRECISION, *([1] * (len(widths) - 1)), FULL_PRECISION)
    return HybridNet(input_shape, num_classes, precisions, widths=widths, **kwargs)


def hybrid_precisions(
    layer_names: Sequence[str],
    significant: Sequence[str],
    bits: int,
    *,
    base: int = 1,
    first_last: int = FULL_PRECISION,
) -> tuple[int, ...]:
    """Per-layer precisions: first and last at ``first_last``, ``significant`` at ``bits``,
    the other hidden layers at ``base``.

    Examples
    --------
    >>> hybrid_precisions(("conv1", "h1", "h2", "h3", "fc"), ["h1", "h3"], 2)
    (32, 2, 1, 2, 32)
    """
    names = list(layer_names)
    if len(names) < 2:
        raise ValueError(f"need at least a first and a last layer, got {names}")
    unknown = [s for s in significant if s not in names[1:-1]]
    if unknown:
        raise ValueError(f"significant layers {unknown} are not hidden layers of {names}")
    hidden = [check_bits(bits, "bits") if n in significant else check_bits(base, "base")
              for n in names[1:-1]]  # fmt: skip
    edge = check_bits(first_last, "first_last")
    return (edge, *hidden, edge)


@dataclass
class SignificantLayers:
    """Counts of significant dimensions per layer and the layers where the count rises."""

    layers: list[str]  # in forward order; the first is only the reference
    counts: list[int]
    significant: list[str]
    threshold: float
    where: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _post_consumer(model: HybridNet, covs: dict[str, StreamingCovariance]) -> Any:
    def consume(name: str, kind: str, rows: torch.Tensor) -> None:
        c = getattr(model, name.split(".")[0]).conv.out_channels
        rows = rows.reshape(rows.shape[0], c, -1).transpose(1, 2).reshape(-1, c)  # (N*P, C)
        covs[name].update(rows)

    return consume


def significant_layers(
    model: nn.Module,
    data: Any,
    *,
    threshold: float = 0.99,
    where: str = "pre",
    layers: Sequence[str] | None = None,
    batch_size: int = 256,
) -> SignificantLayers:
    """Layers that raise the number of significant dimensions (Hybrid-Net's PCA rule).

    Each layer's outputs are captured channel-wise (rows ``(N*positions, C)``), centered, and
    the smallest count of principal components reaching ``threshold`` of the variance is taken;
    a layer whose count exceeds the previous layer's is significant.

    Parameters
    ----------
    model : nn.Module
        The trained binary network (any network with ``where="pre"``).
    data : Tensor (N, ...), ``(x, y)``, Dataset or DataLoader
    threshold : float in (0, 1]
    where : {"pre", "post"}
        ``"pre"``: the conv outputs before BN; ``"post"``: each block's quantized activation
        (a :class:`HybridNet` only).
    layers : sequence of str, optional
        Conv or linear module names in forward order (``"pre"``) or :class:`HybridNet` block
        names; default: a HybridNet's conv blocks (``conv1, h1, ...``) or every conv module.

    Returns
    -------
    SignificantLayers

    Examples
    --------
    >>> net = HybridNet((16,), 3, (32, 1, 1, 32), widths=(4, 8, 8), pool_after=())
    >>> sig = significant_layers(net, torch.randn(20, 16))
    >>> sig.layers, len(sig.counts)
    (['conv1', 'h1', 'h2'], 3)
    """
    if where not in ("pre", "post"):
        raise ValueError(f"where must be 'pre' or 'post', got {where!r}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold!r}")
    names = _lens_layers(model, where, layers)
    modules = [_lens_module(model, n, where) for n in names]
    covs = {m: StreamingCovariance() for m in modules}
    if where == "pre":
        capture(model, modules, data, what="outputs", consumer=covs, batch_size=batch_size)
    else:
        assert isinstance(model, HybridNet)
        consume = _post_consumer(model, covs)
        capture(model, modules, data, what="outputs", consumer=consume, batch_size=batch_size)
    counts = [energy_rank(covs[m].to_subspace(centered=True).spectrum, threshold) for m in modules]
    sig = [names[i] for i in range(1, len(names)) if counts[i] > counts[i - 1]]
    return SignificantLayers(list(names), counts, sig, float(threshold), where)


def _lens_layers(model: nn.Module, where: str, layers: Sequence[str] | None) -> list[str]:
    if layers is not None:
        names = list(layers)
    elif isinstance(model, HybridNet):
        names = list(model.layer_names[:-1])
    else:
        names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    if len(names) < 2:
        raise ValueError(f"need at least 2 layers to compare counts, got {names}")
    if where == "post" and not isinstance(model, HybridNet):
        raise ValueError(f"where='post' needs a HybridNet, got {type(model).__name__}")
    return names


def _lens_module(model: nn.Module, name: str, where: str) -> str:
    if isinstance(model, HybridNet) and name in model.layer_names[:-1]:
        return f"{name}.conv" if where == "pre" else f"{name}.act"
    if where == "post":
        raise ValueError(f"unknown HybridNet block {name!r}; expected one of {model.layer_names}")
    return name


@dataclass
class LayerCost:
    """One layer's work per sample: MACs, stored weights, per-filter scales, precision."""

    name: str
    macs: int
    weights: int
    filters: int
    bits: int


def layer_costs(model: nn.Module, input_shape: Sequence[int]) -> list[LayerCost]:
    """Per-sample MACs and weights of every conv / linear layer, from one forward pass.

    The precision is the layer's ``weight_bits`` (32 for plain layers); in a
    :class:`HybridNet` the layer's input activations share it.

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(4, 3))
    >>> costs = layer_costs(net, (1, 4))
    >>> [(c.name, c.macs, c.weights) for c in costs]
    [('0', 12, 6), ('2', 12, 12)]
    """
    costs: list[LayerCost] = []

    def hook(name: str) -> Any:
        def record(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            w = module.weight
            assert isinstance(w, torch.Tensor)
            per_out = w[0].numel()  # MACs per output value: C_in/g * prod(kernel) or D
            costs.append(
                LayerCost(name, out[0].numel() * per_out, w.numel(), int(w.shape[0]),
                          int(getattr(module, "weight_bits", FULL_PRECISION)))
            )  # fmt: skip

        return record

    kinds = (nn.Conv1d, nn.Conv2d, nn.Linear)
    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, kinds)]  # fmt: skip
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return costs


@dataclass
class EnergyReport:
    """Energy per inference in pJ, per layer and in total (compute + memory)."""

    layers: list[str]
    compute_pj: list[float]
    memory_pj: list[float]
    total_pj: float = field(init=False)
    compute_total_pj: float = field(init=False)

    def __post_init__(self) -> None:
        self.compute_total_pj = float(sum(self.compute_pj))
        self.total_pj = self.compute_total_pj + float(sum(self.memory_pj))

    def layer_pj(self) -> list[float]:
        return [c + m for c, m in zip(self.compute_pj, self.memory_pj)]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def energy(costs: Sequence[LayerCost]) -> EnergyReport:
    """Energy per inference of layers with the given costs (see the module docstring).

    Examples
    --------
    >>> e = energy([LayerCost("a", macs=10, weights=4, filters=2, bits=32)])
    >>> round(e.compute_pj[0], 6), e.memory_pj  # 10 x 4.6; 4 x 32 bits x 10 / 64
    (46.0, [20.0])
    """
    per_bit = read_energy_pj_per_bit()
    compute = [c.macs * mac_energy_pj(c.bits) for c in costs]
    memory = []
    for c in costs:
        bits = c.weights * c.bits + (c.filters * SCALE_BITS if c.bits != FULL_PRECISION else 0)
        memory.append(bits * per_bit)
    return EnergyReport([c.name for c in costs], compute, memory)


def compare_energy(model: EnergyReport, full: EnergyReport, xnor: EnergyReport) -> dict[str, float]:
    """Efficiency of ``model`` vs full precision (``E_fp / E``) and as a fraction of XNOR's
    efficiency (``E_xnor / E``), for compute + memory and for compute alone.

    Examples
    --------
    >>> a, b = EnergyReport(["l"], [2.0], [0.0]), EnergyReport(["l"], [8.0], [0.0])
    >>> compare_energy(a, b, EnergyReport(["l"], [1.0], [0.0]))["fraction_of_xnor"]
    0.5
    """
    return {
        "energy_pj": model.total_pj,
        "efficiency_vs_fp": full.total_pj / model.total_pj,
        "fraction_of_xnor": xnor.total_pj / model.total_pj,
        "compute_energy_pj": model.compute_total_pj,
        "compute_efficiency_vs_fp": full.compute_total_pj / model.compute_total_pj,
        "compute_fraction_of_xnor": xnor.compute_total_pj / model.compute_total_pj,
    }
