"""PCA-driven structured design: count the dimensions each layer's outputs use, then rebuild.

Garg, Panda, Roy, "A Low Effort Approach to Structured CNN Design Using PCA", IEEE Access 8
(2020) 1347-1360, arXiv 1812.06224.  Single shot: train once, run a channel-wise PCA of every
hidden layer's output activations (conv: rows ``(N*H*W, C)``, every position a sample and
every channel a feature; linear: ``(N, C)``), take the number of components that explain a
fraction ``threshold`` (default 99.9 %) of the variance as the layer's new width, cut the
layers that add no dimensions, and train the narrower network from scratch.

What follows the paper and what is ours
---------------------------------------
- Width: centered PCA of the *post-activation* outputs (what the next layer sees; the
  digits calibration also used post-ReLU), tapped at the first ``torch.nn.modules.activation``
  module after the layer and before the next Conv/Linear, else at the layer's own output.
  Count: :func:`~netprism.core.subspace.energy_rank` with rule ``"reach"`` (the smallest k
  whose cumulative ratio reaches the threshold).
- Depth (the paper plots counts against depth and removes layers after the count stops
  rising; the exact rule is our reconstruction): layers are grouped into *stages*, the runs
  of layers between two pooling modules (any module whose class name contains ``"Pool"``).
  Within a stage we keep the growing prefix: the first layer always, then each next layer
  while its count is strictly greater than the previous layer's; from the first layer whose
  count is <= its predecessor's, the rest of the stage is dropped (:func:`depth_keep`).
- MACs: ``torch_pruning.utils.count_ops_and_params`` when Torch-Pruning is installed (the
  L1-pruning baseline lives in :mod:`netprism.compression.l1_pruning`), else Conv/Linear hooks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
from torch import nn

from netprism.core.capture import _iter_batches, capture
from netprism.core.subspace import StreamingCovariance, energy_rank
from netprism.models import create_model
from netprism.models.vgg import _CONVS_PER_STAGE

_WEIGHTED = (nn.Conv2d, nn.Linear)


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float in (0, 1], or a ``ValueError`` naming the bad value."""
    ok = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    if not ok or math.isnan(threshold) or not 0.0 < threshold <= 1.0:
        raise ValueError(
            f"threshold must be a fraction of variance in (0, 1], e.g. 0.999; got {threshold!r}"
        )
    return float(threshold)


def hidden_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every Conv2d and Linear of ``model`` except the last one (the output layer)."""
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, _WEIGHTED)]
    if len(named) < 2:
        raise ValueError(f"{type(model).__name__} has no hidden Conv2d/Linear layer to design")
    return dict(named[:-1])


def _is_activation(m: nn.Module) -> bool:
    return type(m).__module__ == "torch.nn.modules.activation"


def _taps_and_stages(
    model: nn.Module, layers: dict[str, nn.Module]
) -> tuple[dict[str, str], dict[str, int]]:
    """Per layer: the module whose output is measured, and the stage index (pools between)."""
    taps: dict[str, str] = {}
    stages: dict[str, int] = {}
    stage, current = 0, None
    for name, m in model.named_modules():
        if len(list(m.children())) > 0:
            continue  # leaves only: containers would repeat their children
        if "Pool" in type(m).__name__:
            stage, current = stage + 1, None
        elif isinstance(m, _WEIGHTED):
            current = name if name in layers else None
            if current is not None:
                taps[name], stages[name] = name, stage
        elif current is not None and _is_activation(m) and taps[current] == current:
            taps[current] = name
    return taps, stages


def output_spectra(
    model: nn.Module,
    data: Any,
    *,
    layers: Sequence[str] | None = None,
    centered: bool = True,
    post_activation: bool = True,
    **capture_kwargs: Any,
) -> dict[str, torch.Tensor]:
    """Channel-wise PCA spectra of each hidden layer's outputs, in one streaming pass.

    ``data``: Tensor (N, ...), (x, y), Dataset or DataLoader (as :func:`capture`, whose
    ``batch_size``, ``rows_per_batch``, ``seed``, ``device`` pass through); ``layers``:
    Conv2d/Linear names (default :func:`hidden_layers`); ``centered``: PCA of centered rows
    (the paper) or of the raw second moment; ``post_activation``: measure after the layer's
    activation (default) or at its own output.  Returns per layer the eigenvalues (C,) of
    the (C, C) channel covariance, descending, float64.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> {k: v.shape for k, v in output_spectra(net, torch.randn(20, 4)).items()}
    {'0': torch.Size([3])}
    """
    chosen = hidden_layers(model) if layers is None else {n: _layer(model, n) for n in layers}
    taps, _ = _taps_and_stages(model, chosen)
    if not post_activation:
        taps = {n: n for n in taps}
    by_tap = {tap: name for name, tap in taps.items()}
    covs = {name: StreamingCovariance() for name in chosen}
    spectra_width = {n: int(cast(torch.Tensor, m.weight).shape[0]) for n, m in chosen.items()}

    def consume(tap: str, kind: str, rows: torch.Tensor) -> None:
        name = by_tap[tap]
        layer = chosen[name]
        if tap != name:  # an activation's output, flattened from dim 1: (B, prod(rest))
            width = int(spectra_width[name])
            if isinstance(layer, nn.Conv2d):  # (B, C*H*W) -> (B, C, H*W) -> (B*H*W, C)
                rows = rows.reshape(rows.shape[0], width, -1).transpose(1, 2)
            rows = rows.reshape(-1, width)  # Linear: channels last already
        covs[name].update(rows)

    capture(model, list(by_tap), data, what="outputs", consumer=consume, **capture_kwargs)
    out = {}
    for name, cov in covs.items():
        scatter = cov.scatter(centered=centered)
        out[name] = torch.linalg.eigvalsh(0.5 * (scatter + scatter.T)).flip(0).clamp_min(0.0)
    return out


def _layer(model: nn.Module, name: str) -> nn.Module:
    module = dict(model.named_modules()).get(name)
    if not isinstance(module, _WEIGHTED):
        raise ValueError(f"{name!r} is not a Conv2d/Linear layer of {type(model).__name__}")
    return module


def significant_dims(
    model: nn.Module, data: Any, *, threshold: float = 0.999, **kwargs: Any
) -> dict[str, int]:
    """Significant dimensions of each hidden layer: PCA components reaching ``threshold``.

    ``kwargs`` go to :func:`output_spectra` (``layers``, ``centered``, ``post_activation``,
    ``batch_size``, ...).  Every count is at least 1.

    Examples
    --------
    >>> w = torch.randn(6, 2) @ torch.randn(2, 5)  # rank-2 weight (6, 5)
    >>> net = nn.Sequential(nn.Linear(5, 6), nn.Linear(6, 2))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(w)
    >>> significant_dims(net, torch.randn(100, 5), threshold=0.999)
    {'0': 2}
    """
    threshold = check_threshold(threshold)
    spectra = output_spectra(model, data, **kwargs)
    return {n: max(1, energy_rank(s, threshold, rule="reach")) for n, s in spectra.items()}


def depth_keep(counts: Sequence[int], stages: Sequence[int]) -> list[bool]:
    """The depth rule: in each stage keep the prefix where the count strictly grows.

    ``counts`` (L,): significant dimensions per layer in forward order; ``stages`` (L,): the
    stage of each layer (layers between the same two pools share one).  Returns L bools,
    True = keep; the first layer of each stage is always kept.

    Examples
    --------
    >>> depth_keep([4, 9, 12, 10, 15, 20, 18], [0, 0, 0, 0, 0, 1, 1])
    [True, True, True, False, False, True, False]
    """
    if len(counts) != len(stages):
        raise ValueError(f"counts and stages differ in length: {len(counts)} vs {len(stages)}")
    keep: list[bool] = []
    for i, (count, stage) in enumerate(zip(counts, stages)):
        first = i == 0 or stages[i - 1] != stage
        keep.append(first or (keep[-1] and count > counts[i - 1]))
    return keep


@dataclass
class LayerDesign:
    """One layer of a design: its original width, count, stage, and whether it stays."""

    name: str
    width: int
    significant: int
    stage: int
    kept: bool
    tap: str


@dataclass
class DesignReport:
    """Per-layer outcome of :func:`design` and the cost of both networks."""

    threshold: float
    layers: list[LayerDesign]
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    mac_counter: str = "torch_pruning"

    @property
    def param_reduction(self) -> float:  # params_before / params_after: 3.0 = 3x fewer
        return self.params_before / self.params_after

    @property
    def mac_reduction(self) -> float:
        return self.macs_before / self.macs_after

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(param_reduction=self.param_reduction, mac_reduction=self.mac_reduction)
        return d


def count_cost(model: nn.Module, example_inputs: torch.Tensor) -> tuple[int, int, str]:
    """``(macs, params, counter)`` of one forward pass on ``example_inputs`` (batch 1).

    MACs from ``torch_pruning.utils.count_ops_and_params`` when installed, else from hooks
    counting only Conv2d and Linear MACs (``counter`` says which).  Params are exact.
    """
    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    try:
        import torch_pruning as tp

        macs, _ = tp.utils.count_ops_and_params(model, example_inputs)
        counter = "torch_pruning"
    except ImportError:
        macs, counter = _hook_macs(model, example_inputs), "conv_linear_hooks"
    finally:
        model.train(was_training)
    return int(macs), int(params), counter


def _hook_macs(model: nn.Module, x: torch.Tensor) -> int:
    total = [0]

    def hook(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        # conv weight (C_out, C_in/g, kh, kw): MACs = output elements * C_in/g*kh*kw
        w = cast(torch.Tensor, m.weight)
        per_out = w[0].numel() if isinstance(m, nn.Conv2d) else w.shape[1]
        total[0] += out.numel() * per_out

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _WEIGHTED)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hs:
            h.remove()
    return total[0]


def build_model(config: dict[str, Any]) -> nn.Module:
    """Deprecated alias of ``netprism.models.create_model(**config)``, kept for old callers.

    A designed config is a plain registry call (a VGG whose conv counts per stage are no
    standard depth carries an explicit ``cfg``), so there is one model factory.
    """
    warnings.warn(
        "netprism.compression.build_model(config) is deprecated; "
        "use netprism.models.create_model(**config)",
        DeprecationWarning,
        stacklevel=2,
    )
    return create_model(**config)


def _new_config(
    arch: str, base: dict[str, Any], layers: list[LayerDesign], n_stages: int
) -> dict[str, Any]:
    kept = [ly for ly in layers if ly.kept]
    if arch == "mlp":
        return {**base, "name": "mlp", "hidden": tuple(ly.significant for ly in kept)}
    convs = [ly for ly in kept if ly.name.startswith("features.")]
    heads = [ly for ly in kept if not ly.name.startswith("features.")]
    new = {k: v for k, v in base.items() if k not in ("depth", "width_mult", "channels")}
    new["name"] = "vgg"
    if heads:
        new["head_hidden"] = heads[0].significant
    per_stage = tuple(sum(ly.stage == s for ly in convs) for s in range(n_stages))
    depth = next((d for d, c in _CONVS_PER_STAGE.items() if c == per_stage), None)
    if depth is not None:
        return {**new, "depth": depth, "channels": [ly.significant for ly in convs]}
    cfg: list[int | str] = []
    for s in range(n_stages):
        cfg += [ly.significant for ly in convs if ly.stage == s] + ["M"]
    return {**new, "cfg": cfg}


def design(
    model: nn.Module,
    data: Any,
    *,
    threshold: float = 0.999,
    arch: str = "vgg",
    base_config: dict[str, Any] | None = None,
    apply_depth_rule: bool = True,
    spectra: dict[str, torch.Tensor] | None = None,
    **kwargs: Any,
) -> tuple[dict[str, Any], DesignReport]:
    """Design a narrower (and shallower) network from a trained one's significant dimensions.

    Parameters
    ----------
    model : a trained registry ``vgg`` or ``mlp`` (named ``arch``)
    data : Tensor (N, ...), (x, y), Dataset or DataLoader of training inputs for the PCA
    threshold : float in (0, 1], fraction of variance kept (the paper: 0.999)
    base_config : the ``create_model`` kwargs of ``model``; else inferred from model and data
    apply_depth_rule : drop layers by :func:`depth_keep`; False changes widths only
    spectra : precomputed :func:`output_spectra` (one PCA pass for several thresholds)
    kwargs : passed to :func:`output_spectra`

    Returns
    -------
    new_config : dict, ``create_model(**new_config)`` gives the untrained designed network
    report : DesignReport

    Examples
    --------
    >>> net = create_model("mlp", input_shape=(4,), num_classes=2, hidden=(8, 8))
    >>> cfg, rep = design(net, torch.randn(64, 4), arch="mlp")
    >>> cfg["name"], len(rep.layers)
    ('mlp', 2)
    """
    threshold = check_threshold(threshold)
    if arch not in ("vgg", "mlp"):
        raise ValueError(f"arch must be 'vgg' or 'mlp', got {arch!r}")
    layers = hidden_layers(model)
    taps, stages = _taps_and_stages(model, layers)
    if spectra is None:
        spectra = output_spectra(model, data, **kwargs)
    counts = [max(1, energy_rank(spectra[n], threshold, rule="reach")) for n in layers]
    keep = depth_keep(counts, [stages[n] for n in layers]) if apply_depth_rule else None
    rows = [
        LayerDesign(n, int(spectra[n].numel()), c, stages[n], keep is None or keep[i], taps[n])
        for i, (n, c) in enumerate(zip(layers, counts))
    ]
    example = next(_iter_batches(data, 1))[:1]
    base = {"input_shape": tuple(example.shape[1:]), "num_classes": _num_classes(model)}
    if arch == "vgg":
        base["batch_norm"] = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    base.update(base_config or {})
    base.pop("name", None)
    n_stages = 1 + max((stages[n] for n in layers if n.startswith("features.")), default=0)
    new_config = _new_config(arch, base, rows, n_stages)
    macs0, params0, counter = count_cost(model, example)
    macs1, params1, _ = count_cost(create_model(**new_config), example)
    report = DesignReport(threshold, rows, params0, params1, macs0, macs1, counter)
    return new_config, report


def _num_classes(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, _WEIGHTED)][-1]
    return int(last.out_features if isinstance(last, nn.Linear) else last.out_channels)
